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

"""TLS session resumption by tickets whose keys the parent makes and
shares with every worker: a session resumes whichever worker process
takes the second connection, in both isolation modes; with
ssl_session_tickets off it does not."""

import os
import re
import signal
import socket
import ssl

from lib import daemon as daemonlib
from lib import util
from test_tls import TlsCase


class ResumeCase(TlsCase):

    def start_resume(self, **server):
        """An implicit TLS daemon run with -vv: its debug lines say
        which worker served a handshake and whether it resumed."""
        port = util.free_port()
        srv = self.tls_server(**server)
        srv["listen"] = ("127.0.0.1:%d" % port, "ssl")
        d = daemonlib.Daemon(self.tmp, self.config(port=port, server=srv),
                             port, name="imaprelayd%d" % len(self._daemons),
                             args=["-v", "-v"])
        self._daemons.append(d)
        d.start()
        if self._daemon is None:
            self._daemon = d
        return d

    def tls_connect(self, ctx, session=None):
        """A TLS connection that read the greeting: (sslsocket, (the
        worker pid that served it, resumed))."""
        sock = socket.create_connection(("127.0.0.1", self.port),
                                        timeout=30)
        t = ctx.wrap_socket(sock, server_hostname="localhost",
                            session=session)
        self._clients.append(t)
        greeting = t.recv(4096)
        self.assertTrue(greeting.startswith(b"* OK "), greeting)
        # TLS 1.3 tickets come after the handshake: a round trip
        t.sendall(b"a NOOP\r\n")
        self.assertIn(b"a OK", t.recv(4096))
        return t, self.worker_pid(t)

    def worker_pid(self, t):
        addr = "%s:%d" % t.getsockname()
        m = self.daemon.wait_for_log(
            r"^.* (\d+) imap: tls client=%s .*resumed=(yes|no)$"
            % re.escape(addr))
        return int(m.group(1)), m.group(2) == "yes"

    def resume(self, version, tickets=True, tries=1):
        """First connection, then up to tries more with its session
        until one lands on another worker: (reused, first pid, pid)."""
        # a session belongs to the context that made it
        ctx = self.context()
        ctx.minimum_version = version
        ctx.maximum_version = version
        first, (pid1, resumed1) = self.tls_connect(ctx)
        self.assertFalse(resumed1)
        session = first.session
        self.assertIsNotNone(session)
        first.close()
        # Shared workers all wait on one socket and the kernel may give
        # every accept to the same one: stop that one meanwhile, so the
        # next connection must land on another.
        if self.ISOLATION == "shared":
            os.kill(pid1, signal.SIGSTOP)
        try:
            for _ in range(tries):
                t, (pid, resumed) = self.tls_connect(ctx, session)
                self.assertEqual(t.session_reused, resumed)
                t.close()
                if pid != pid1:
                    break
        finally:
            if self.ISOLATION == "shared":
                os.kill(pid1, signal.SIGCONT)
        return resumed, pid1, pid

    def check(self, version, tickets=True, tries=1):
        self.start_resume(**({} if tickets else
                          {"ssl_session_tickets": "off"}))
        resumed, pid1, pid2 = self.resume(version, tickets, tries)
        self.assertNotEqual(pid1, pid2, "both landed on one worker")
        self.assertEqual(tickets, resumed)


class ResumeConnection(ResumeCase):
    """One worker per connection: the second is always another."""

    def test_tls12_resumed_in_another_worker(self):
        self.check(ssl.TLSVersion.TLSv1_2)

    def test_tls13_resumed_in_another_worker(self):
        self.check(ssl.TLSVersion.TLSv1_3)

    def test_tickets_off_not_resumed(self):
        self.check(ssl.TLSVersion.TLSv1_2, tickets=False)

    def test_rotated_key_reaches_running_workers(self):
        # the parent makes a new key every ssl_session_timeout and sends
        # it to the spares already running: a ticket made under it by
        # one resumes in another
        d = self.start_resume(ssl_session_timeout="4s")
        mark = d.mark()
        d.wait_for_log(r"parent: new session ticket key \d+", timeout=10,
                       since=mark)
        resumed, pid1, pid2 = self.resume(ssl.TLSVersion.TLSv1_2)
        self.assertNotEqual(pid1, pid2)
        self.assertTrue(resumed)

    def test_tickets_off_not_resumed_tls13(self):
        self.check(ssl.TLSVersion.TLSv1_3, tickets=False)


class ResumeShared(ResumeCase):
    """Two shared workers: try until the second lands on the other."""
    ISOLATION = "shared"
    WORKER_PROCESSES = 2

    def test_tls12_resumed_in_another_worker(self):
        self.check(ssl.TLSVersion.TLSv1_2, tries=40)

    def test_tls13_resumed_in_another_worker(self):
        self.check(ssl.TLSVersion.TLSv1_3, tries=40)

    def test_tickets_off_not_resumed(self):
        self.check(ssl.TLSVersion.TLSv1_2, tickets=False, tries=40)
