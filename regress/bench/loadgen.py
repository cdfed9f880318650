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

"""The client side of the benchmark: IMAP sessions against one port.

    loadgen.py login --port P --sessions N --concurrency C [--procs K]
    loadgen.py fetch --port P --user U --password W --sessions S --repeat R
    loadgen.py idle  --port P --sessions N --concurrency C
    loadgen.py greet --port P --connections N
    (each with --tls: implicit TLS, a full handshake per connection)

login: N sessions of connect / greeting / LOGIN / SELECT INBOX / LOGOUT,
C at a time, spread over K processes, each an asyncio loop (one Python
process tops out at a few thousand sessions a second; K processes keep
the client from being what is measured).  Prints one JSON object:
wall time, sessions done, errors, login and session latencies.

fetch: S sessions in threads (blocking recv_into releases the GIL, so
threads copy in parallel), each logged in, then together R times
FETCH 1 BODY.PEEK[]; prints bytes and wall time.

idle: opens N logged-in sessions, prints "ready OK ERR", holds them
until a line (or EOF) on stdin, then logs them out.

greet: opens N connections at once and reads each greeting; prints
the slowest and the median time from connect to greeting.

--tls: TLS from the first byte, certificate not verified (its cost is
the client's), no session resumption: every connection makes a full
handshake.

The users are the regress harness's load users u0..u199 (passwords
pw-0...), used round-robin; Dovecot lets a user log in many times.
"""

import argparse
import asyncio
import json
import multiprocessing
import os
import socket
import ssl
import sys
import threading
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)),
                                ".."))
from lib import dovecot  # noqa: E402

HOST = "127.0.0.1"
TIMEOUT = 60
TLS = None      # an SSLContext with --tls


def tls_context():
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    ctx.check_hostname = False
    ctx.verify_mode = ssl.CERT_NONE
    return ctx


class ImapError(Exception):
    pass


def creds(i):
    user, password = dovecot.load_user(i % dovecot.LOAD_USERS)
    return user.encode(), password.encode()


# ---- asyncio sessions (login, idle) ---------------------------------

async def tagged(reader, tag):
    """Read lines up to the tagged answer to tag; it must be OK."""
    while True:
        line = await reader.readline()
        if not line:
            raise ImapError("closed while waiting for %s" % tag.decode())
        if line.startswith(tag + b" "):
            if not line.startswith(tag + b" OK"):
                raise ImapError(line.decode("latin-1").strip())
            return line


async def open_session(port, i):
    """Connect, greeting, LOGIN, SELECT INBOX: (reader, writer, t0,
    greeting time, login time)."""
    t0 = time.monotonic()
    reader, writer = await asyncio.open_connection(HOST, port, ssl=TLS)
    try:
        greeting = await reader.readline()
        if not greeting.startswith(b"* OK"):
            raise ImapError("greeting %r" % greeting[:80])
        t1 = time.monotonic()
        user, password = creds(i)
        writer.write(b'a LOGIN "%s" "%s"\r\n' % (user, password))
        await tagged(reader, b"a")
        t2 = time.monotonic()
        writer.write(b"b SELECT INBOX\r\n")
        await tagged(reader, b"b")
    except BaseException:
        writer.close()
        raise
    return reader, writer, t0, t1, t2


async def logout(reader, writer):
    try:
        writer.write(b"c LOGOUT\r\n")
        await tagged(reader, b"c")
    finally:
        writer.close()


async def one_login(port, i):
    reader, writer, t0, t1, t2 = await open_session(port, i)
    await logout(reader, writer)
    return t2 - t1, time.monotonic() - t0


async def login_loop(port, indexes, concurrency, out):
    """concurrency tasks take session numbers from indexes until none
    are left; results go to out (login latency, session time) or to
    out["errors"]."""
    it = iter(indexes)

    async def worker():
        for i in it:
            try:
                lat, total = await asyncio.wait_for(one_login(port, i),
                                                    TIMEOUT)
                out["login"].append(lat)
                out["session"].append(total)
            except Exception as e:
                out["errors"] += 1
                if len(out["messages"]) < 5:
                    out["messages"].append("%s: %r" % (i, e))
    await asyncio.gather(*(worker() for _ in range(concurrency)))


def login_proc(port, indexes, concurrency, go, results):
    """One load process: wait for go, run, report with the end time."""
    out = {"login": [], "session": [], "errors": 0, "messages": []}
    try:
        go.wait()
        asyncio.run(login_loop(port, indexes, concurrency, out))
    except KeyboardInterrupt:
        return                  # the parent got it too and gives up
    out["end"] = time.monotonic()
    results.put(out)


def pct(values, p):
    if not values:
        return None
    v = sorted(values)
    return v[min(len(v) - 1, int(round(p / 100.0 * (len(v) - 1))))]


def cmd_login(args):
    procs = max(1, min(args.procs, args.concurrency))
    ctx = multiprocessing.get_context("fork")
    go, results = ctx.Event(), ctx.Queue()
    workers = []
    for k in range(procs):
        # session k, k+procs, ... in process k; concurrency split evenly
        conc = args.concurrency // procs + (k < args.concurrency % procs)
        p = ctx.Process(target=login_proc,
                        args=(args.port, range(k, args.sessions, procs),
                              conc, go, results))
        p.start()
        workers.append(p)
    time.sleep(0.2)             # let every process reach go.wait()
    t0 = time.monotonic()
    go.set()
    parts = [results.get() for _ in workers]
    for p in workers:
        p.join()
    login = sum((p["login"] for p in parts), [])
    session = sum((p["session"] for p in parts), [])
    report = {
        "wall": max(p["end"] for p in parts) - t0,
        "done": len(login),
        "errors": sum(p["errors"] for p in parts),
        "messages": sum((p["messages"] for p in parts), [])[:5],
        "login_p50": pct(login, 50), "login_p99": pct(login, 99),
        "session_p50": pct(session, 50), "session_p99": pct(session, 99),
    }
    print(json.dumps(report), flush=True)


async def idle_main(args):
    sessions, errors, messages = [], 0, []
    sem = asyncio.Semaphore(args.concurrency)

    async def opener(i):
        nonlocal errors
        async with sem:
            try:
                s = await asyncio.wait_for(open_session(args.port, i),
                                           TIMEOUT)
                sessions.append(s)
            except Exception as e:
                errors += 1
                if len(messages) < 5:
                    messages.append(repr(e))
    await asyncio.gather(*(opener(i) for i in range(args.sessions)))
    print("ready %d %d" % (len(sessions), errors), flush=True)
    # hold the sessions until the bench has looked at the memory
    await asyncio.get_running_loop().run_in_executor(None,
                                                     sys.stdin.readline)
    closers = [logout(r, w) for r, w, *_ in sessions]
    done = await asyncio.gather(*closers, return_exceptions=True)
    print(json.dumps({"open": len(sessions), "errors": errors,
                      "messages": messages,
                      "logout_errors": sum(isinstance(d, Exception)
                                           for d in done)}), flush=True)


def cmd_idle(args):
    asyncio.run(idle_main(args))


# ---- blocking sessions (fetch) -------------------------------------

class Conn:
    """A blocking IMAP connection that reads lines and skips literals
    without copying them around."""

    def __init__(self, port):
        self.sock = socket.create_connection((HOST, port), timeout=TIMEOUT)
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 1 << 20)
        if TLS is not None:
            self.sock = TLS.wrap_socket(self.sock)
        self.buf = b""
        self.scratch = bytearray(1 << 20)

    def readline(self):
        while b"\r\n" not in self.buf:
            data = self.sock.recv(65536)
            if not data:
                raise ImapError("closed; unread %r" % self.buf[:80])
            self.buf += data
        line, self.buf = self.buf.split(b"\r\n", 1)
        return line

    def skip(self, n):
        """Consume n bytes (a literal), buffered ones first."""
        take = min(n, len(self.buf))
        self.buf = self.buf[take:]
        n -= take
        view = memoryview(self.scratch)
        while n:
            got = self.sock.recv_into(view, min(n, len(view)))
            if not got:
                raise ImapError("closed inside a literal")
            n -= got

    def command(self, tag, line):
        """Send; return the bytes of literals read up to the tagged OK."""
        self.sock.sendall(tag + b" " + line + b"\r\n")
        literal = 0
        while True:
            line = self.readline()
            if line.endswith(b"}") and b"{" in line:
                n = int(line[line.rindex(b"{") + 1:-1])
                self.skip(n)
                literal += n
                continue
            if line.startswith(tag + b" "):
                if not line.startswith(tag + b" OK"):
                    raise ImapError(line.decode("latin-1"))
                return literal

    def close(self):
        self.sock.close()


def cmd_fetch(args):
    conns = []
    for _ in range(args.sessions):
        c = Conn(args.port)
        c.readline()                            # greeting
        c.command(b"a", b'LOGIN "%s" "%s"' % (args.user.encode(),
                                              args.password.encode()))
        c.command(b"b", b"SELECT INBOX")
        conns.append(c)
    barrier = threading.Barrier(len(conns) + 1)
    got, errors, times = [0] * len(conns), [], []

    def run(k, c):
        barrier.wait()
        try:
            for r in range(args.repeat):
                t0 = time.monotonic()
                got[k] += c.command(b"f%d" % r, b"FETCH 1 BODY.PEEK[]")
                times.append(time.monotonic() - t0)
        except Exception as e:
            errors.append(repr(e))
    threads = [threading.Thread(target=run, args=(k, c))
               for k, c in enumerate(conns)]
    for t in threads:
        t.start()
    barrier.wait()
    t0 = time.monotonic()
    for t in threads:
        t.join()
    wall = time.monotonic() - t0
    for c in conns:
        c.close()
    # one FETCH at a time: a stall (a delayed ACK, a full buffer)
    # shows in the spread of these
    print(json.dumps({"bytes": sum(got), "wall": wall, "errors": errors,
                      "fetch_min": min(times, default=None),
                      "fetch_p50": pct(times, 50),
                      "fetch_max": max(times, default=None)}), flush=True)


async def greet_one(port):
    t0 = time.monotonic()
    reader, writer = await asyncio.open_connection(HOST, port, ssl=TLS)
    try:
        line = await reader.readline()
        if not line.startswith(b"* OK"):
            raise ImapError("greeting %r" % line[:80])
        return time.monotonic() - t0
    finally:
        writer.close()


async def greet_main(args):
    done = await asyncio.gather(*(asyncio.wait_for(greet_one(args.port),
                                                   TIMEOUT)
                                  for _ in range(args.connections)),
                                return_exceptions=True)
    times = [d for d in done if not isinstance(d, BaseException)]
    errors = [repr(d) for d in done if isinstance(d, BaseException)]
    print(json.dumps({"done": len(times), "errors": len(errors),
                      "messages": errors[:5], "max": max(times, default=None),
                      "p50": pct(times, 50)}), flush=True)


def cmd_greet(args):
    asyncio.run(greet_main(args))


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    sub = ap.add_subparsers(dest="mode", required=True)
    p = sub.add_parser("login")
    p.add_argument("--port", type=int, required=True)
    p.add_argument("--sessions", type=int, default=2000)
    p.add_argument("--concurrency", type=int, default=16)
    p.add_argument("--procs", type=int, default=os.cpu_count() or 1)
    p.set_defaults(func=cmd_login)
    p = sub.add_parser("fetch")
    p.add_argument("--port", type=int, required=True)
    p.add_argument("--user", required=True)
    p.add_argument("--password", required=True)
    p.add_argument("--sessions", type=int, default=1)
    p.add_argument("--repeat", type=int, default=3)
    p.set_defaults(func=cmd_fetch)
    p = sub.add_parser("idle")
    p.add_argument("--port", type=int, required=True)
    p.add_argument("--sessions", type=int, default=1000)
    p.add_argument("--concurrency", type=int, default=32)
    p.set_defaults(func=cmd_idle)
    p = sub.add_parser("greet")
    p.add_argument("--port", type=int, required=True)
    p.add_argument("--connections", type=int, default=100)
    p.set_defaults(func=cmd_greet)
    for p in sub.choices.values():
        p.add_argument("--tls", action="store_true")
    args = ap.parse_args(argv)
    global TLS
    if args.tls:
        TLS = tls_context()
    try:
        args.func(args)
    except KeyboardInterrupt:
        # the bench stops us (Ctrl-C reaches the whole process group)
        return 130
    return 0


if __name__ == "__main__":
    sys.exit(main())
