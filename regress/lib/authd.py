#!/usr/bin/env python3
# Copyright (c) 2025 The imaprelayd authors
#
# Permission to use, copy, modify, and distribute this software for any
# purpose with or without fee is hereby granted, provided that the above
# copyright notice and this permission notice appear in all copies.
#
# THE SOFTWARE IS PROVIDED "AS IS" AND THE AUTHOR DISCLAIMS ALL WARRANTIES
# WITH REGARD TO THIS SOFTWARE INCLUDING ALL IMPLIED WARRANTIES OF
# MERCHANTABILITY AND FITNESS. IN NO EVENT SHALL THE AUTHOR BE LIABLE FOR
# ANY SPECIAL, DIRECT, INDIRECT, OR CONSEQUENTIAL DAMAGES OR ANY DAMAGES
# WHATSOEVER RESULTING FROM LOSS OF USE, DATA OR PROFITS, WHETHER IN AN
# ACTION OF CONTRACT, NEGLIGENCE OR OTHER TORTIOUS ACTION, ARISING OUT OF
# OR IN CONNECTION WITH THE USE OR PERFORMANCE OF THIS SOFTWARE.

"""A test auth service speaking nginx's auth_http protocol.

Used in-process by the integration tests (AuthService, a thread with a
ThreadingHTTPServer) and standalone by regress/demo.sh:

    python3 regress/lib/authd.py --port P --backend-port Q --user demo:demo

Protocol (nginx ngx_mail_auth_http_module): a GET whose headers carry
Auth-Method, Auth-User, Auth-Pass (escaped: CTLs, SP and % as %XX),
[Auth-Salt], Auth-Protocol, Auth-Login-Attempt, Client-IP and the
auth_http_header extras.  The answer is in the reply headers:
Auth-Status: OK + Auth-Server + Auth-Port [+ Auth-User, Auth-Pass], or
Auth-Status: <error text> [+ Auth-Wait: N], or Auth-Status: WAIT.

Every request is recorded (header list in order, raw lines) so tests
can assert what the proxy sent; behaviours are switched per test with
the attributes of AuthService (see reset()).
"""

import argparse
import hashlib
import hmac
import http.server
import os
import re
import socket
import socketserver
import sys
import threading
import time

FAIL_TEXT = "Invalid login or password"

_pct = re.compile(rb"%([0-9A-Fa-f]{2})")


def pct_decode(value):
    """Only %XX sequences are decoded; '+' is not a space."""
    if isinstance(value, str):
        value = value.encode("latin-1")
    return _pct.sub(lambda m: bytes([int(m.group(1), 16)]), value)


class Request:
    """One auth request as the service saw it."""

    def __init__(self, method, path, version, headers, raw_lines, conn_id):
        self.method = method            # "GET"
        self.path = path
        self.version = version          # "HTTP/1.1"
        self.headers = headers          # [(name, value)] in order, raw
        self.raw_lines = raw_lines      # [bytes] incl. the request line
        self.conn_id = conn_id          # which TCP connection
        self.time = time.monotonic()

    def get(self, name, default=None):
        for n, v in self.headers:
            if n.lower() == name.lower():
                return v
        return default

    def names(self):
        return [n for n, _ in self.headers]

    @property
    def user(self):
        v = self.get("Auth-User")
        return None if v is None else pct_decode(v).decode("utf-8",
                                                           "surrogateescape")

    @property
    def password(self):
        v = self.get("Auth-Pass")
        return None if v is None else pct_decode(v).decode("utf-8",
                                                           "surrogateescape")

    def auth_headers(self, extras=()):
        """The headers of the auth_http protocol, in order: Auth-*,
        Client-* and the given extra names; transport headers that the
        HTTP client adds (Host, Accept, User-Agent...) are left out."""
        extras = {e.lower() for e in extras}
        return [(n, v) for n, v in self.headers
                if n.lower().startswith(("auth-", "client-"))
                or n.lower() in extras]

    def __repr__(self):
        return "<Request %s %r>" % (self.path, self.headers)


class _Recorder:
    """Wraps rfile while the headers are parsed, keeping the raw lines."""

    def __init__(self, f):
        self.f = f
        self.lines = []

    def readline(self, *args):
        line = self.f.readline(*args)
        self.lines.append(line)
        return line

    def __getattr__(self, name):
        return getattr(self.f, name)


class Handler(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server_version = "imaprelayd-regress-authd"

    def log_message(self, fmt, *args):
        if self.server.service.verbose:
            sys.stderr.write("authd: " + (fmt % args) + "\n")

    def setup(self):
        super().setup()
        self.conn_id = self.server.service._new_connection(self.connection)

    def finish(self):
        try:
            super().finish()
        finally:
            self.server.service._end_connection(self.connection)

    def parse_request(self):
        real = self.rfile
        rec = _Recorder(real)
        self.rfile = rec
        try:
            ok = super().parse_request()
        finally:
            self.rfile = real
        self.raw_header_lines = [l.rstrip(b"\r\n") for l in rec.lines
                                 if l not in (b"\r\n", b"\n", b"")]
        return ok

    def do_GET(self):
        svc = self.server.service
        headers = list(self.headers.items())
        raw = [self.raw_requestline.rstrip(b"\r\n")] + self.raw_header_lines
        req = Request(self.command, self.path, self.request_version,
                      headers, raw, self.conn_id)
        svc._record(req)
        svc.decide(self, req)

    # the proxy only sends GET; anything else is recorded and answered
    # the same way so that a wrong method shows up in the assertions
    do_POST = do_GET
    do_HEAD = do_GET

    def send_auth(self, fields, status=200):
        self.send_response_only(status)
        for name, value in fields:
            self.send_header(name, value)
        self.send_header("Content-Length", "0")
        self.end_headers()
        self.wfile.flush()


class _Server(http.server.ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = True
    request_queue_size = 1024


class _UnixServer(socketserver.ThreadingMixIn, socketserver.UnixStreamServer):
    """The same service on a unix socket (auth_http unix:/path:/uri)."""
    daemon_threads = True
    request_queue_size = 1024


class AuthService:
    """The auth_http service, running in a thread of the test process."""

    def __init__(self, backend_port, users, backend_host="127.0.0.1",
                 host="127.0.0.1", port=0, verbose=False, ssl_context=None,
                 unix_path=None):
        self.default_backend = (backend_host, backend_port)
        self.users = dict(users)
        self.verbose = verbose
        self.lock = threading.Lock()
        self.cond = threading.Condition(self.lock)
        self._release = threading.Event()
        self.reset()
        self.unix_path = unix_path
        if unix_path:
            self.server = _UnixServer(unix_path, Handler)
            # the proxy's auth process runs as the unprivileged user
            os.chmod(unix_path, 0o666)
            self.host, self.port = None, None
        else:
            self.server = _Server((host, port), Handler)
            self.host, self.port = self.server.server_address[:2]
        self.server.service = self
        # https: an ssl.SSLContext for the server side
        self.https = ssl_context is not None
        if self.https:
            self.server.socket = ssl_context.wrap_socket(
                self.server.socket, server_side=True)
        self.thread = threading.Thread(target=self.server.serve_forever,
                                       name="authd", daemon=True)
        self.thread.start()

    @property
    def url(self):
        if self.unix_path:
            return "unix:%s:/auth" % self.unix_path
        return "%s://%s:%d/auth" % ("https" if self.https else "http",
                                    self.host, self.port)

    def reset(self):
        """Back to the default behaviour, forget what was recorded."""
        with self.lock:
            self.requests = []
            self.connections_opened = 0
            self.open_conns = set()
            # behaviours
            self.backend = self.default_backend  # Auth-Server, Auth-Port
            self.delay = 0.0            # seconds before answering
            self.mode = "normal"        # normal, status500, garbage,
                                        # close, noserver, hook
            self.fail_text = FAIL_TEXT  # Auth-Status on a refusal
            self.fail_wait = None       # Auth-Wait on a refusal
            self.wait_replies = 0       # this many Auth-Status: WAIT first
            self.wait_seconds = None    # Auth-Wait sent with WAIT
            self.override_user = None   # Auth-User in an OK answer
            self.override_pass = None   # Auth-Pass in an OK answer
            self.always_fail = False
            self.hook = None            # f(req) -> [(name, value)] or None
        self._release.set()
        self._release = threading.Event()

    def close(self):
        self._release.set()
        self.server.shutdown()
        self.server.server_close()
        if self.unix_path and os.path.exists(self.unix_path):
            os.unlink(self.unix_path)
        with self.lock:
            conns = list(self.open_conns)
        for c in conns:
            try:
                c.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass

    # bookkeeping, called from handler threads

    def _new_connection(self, conn):
        with self.lock:
            self.connections_opened += 1
            self.open_conns.add(conn)
            return self.connections_opened

    def _end_connection(self, conn):
        with self.lock:
            self.open_conns.discard(conn)

    def _record(self, req):
        with self.cond:
            self.requests.append(req)
            self.cond.notify_all()

    def wait_requests(self, n, timeout=10):
        """Block until n requests were recorded; returns them."""
        deadline = time.monotonic() + timeout
        with self.cond:
            while len(self.requests) < n:
                left = deadline - time.monotonic()
                if left <= 0:
                    raise TimeoutError("auth service got %d of %d requests"
                                       % (len(self.requests), n))
                self.cond.wait(left)
            return list(self.requests)

    def last(self):
        with self.lock:
            return self.requests[-1] if self.requests else None

    # the answer

    def check(self, req):
        """(ok, cleartext password) for the credentials in req."""
        user = req.user
        if user is None or user not in self.users:
            return False, None
        want = self.users[user]
        method = (req.get("Auth-Method") or "").lower()
        if method == "cram-md5":
            salt = (req.get("Auth-Salt") or "").strip()
            digest = hmac.new(want.encode(), salt.encode("latin-1"),
                              hashlib.md5).hexdigest()
            got = (req.password or "").lower()
            return hmac.compare_digest(digest, got), want
        return req.password == want, want

    def decide(self, h, req):
        with self.lock:
            mode = self.mode
            delay = self.delay
            release = self._release
            hook = self.hook
        if delay:
            release.wait(delay)
        if mode == "garbage":
            h.wfile.write(b"\x00\x01garbage that is not HTTP\r\n\r\n\xff")
            h.wfile.flush()
            h.close_connection = True
            return
        if mode == "close":
            # the reply starts and the connection drops mid-header
            h.wfile.write(b"HTTP/1.1 200 OK\r\nAuth-Sta")
            h.wfile.flush()
            h.close_connection = True
            h.connection.shutdown(socket.SHUT_RDWR)
            return
        if mode == "status500":
            h.send_auth([("Content-Type", "text/plain")], status=500)
            return
        if hook is not None:
            fields = hook(req)
            if fields is not None:
                h.send_auth(fields)
                return
        with self.lock:
            waiting = self.wait_replies > 0
            if waiting:
                self.wait_replies -= 1
        if waiting:
            fields = [("Auth-Status", "WAIT")]
            if self.wait_seconds is not None:
                fields.append(("Auth-Wait", str(self.wait_seconds)))
            h.send_auth(fields)
            return
        ok, cleartext = self.check(req)
        if ok and not self.always_fail:
            fields = [("Auth-Status", "OK"),
                      ("Auth-Server", self.backend[0]),
                      ("Auth-Port", str(self.backend[1]))]
            if self.override_user is not None:
                fields.append(("Auth-User", self.override_user))
            if self.override_pass is not None:
                fields.append(("Auth-Pass", self.override_pass))
            elif (req.get("Auth-Method") or "").lower() != "plain":
                # cram-md5, external: the proxy has no cleartext
                fields.append(("Auth-Pass", cleartext))
        else:
            fields = [("Auth-Status", self.fail_text)]
            if self.fail_wait is not None:
                fields.append(("Auth-Wait", str(self.fail_wait)))
        h.send_auth(fields)


def main(argv=None):
    ap = argparse.ArgumentParser(description="test auth_http service")
    ap.add_argument("--host", default="127.0.0.1")
    ap.add_argument("--port", type=int, required=True)
    ap.add_argument("--backend-host", default="127.0.0.1")
    ap.add_argument("--backend-port", type=int, required=True)
    ap.add_argument("--user", action="append", default=[],
                    metavar="NAME:PASSWORD")
    ap.add_argument("-v", "--verbose", action="store_true")
    args = ap.parse_args(argv)
    users = {}
    for u in args.user:
        name, sep, password = u.partition(":")
        if not sep:
            ap.error("--user wants NAME:PASSWORD")
        users[name] = password
    svc = AuthService(args.backend_port, users,
                      backend_host=args.backend_host, host=args.host,
                      port=args.port, verbose=args.verbose)
    print("authd: listening on %s, backend %s:%d, %d users"
          % (svc.url, args.backend_host, args.backend_port, len(users)),
          flush=True)
    try:
        svc.thread.join()
    except KeyboardInterrupt:
        pass
    return 0


if __name__ == "__main__":
    sys.exit(main())
