# Copyright (c) 2026 The imaprelayd authors
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

"""Backend failover (issue 10 item 6): the auth service names several
backends with repeated Auth-Server (and Auth-Port) headers; one that
refuses the connection or greets with BYE is followed by the next
within the same login, and the session's end line names the one that
answered.  The BYE backend is a tiny real TCP server of the test; the
good one is the run's Dovecot."""

import socket
import threading
import unittest

from lib import util
from lib.case import DaemonTestCase


class ByeServer:
    """Greets every connection with '* BYE ...' and closes it."""

    def __init__(self, text=b"* BYE [UNAVAILABLE] maintenance\r\n"):
        self.text = text
        self.accepted = 0
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(16)
        self.port = self.sock.getsockname()[1]
        self.thread = threading.Thread(target=self._run, daemon=True)
        self.thread.start()

    def _run(self):
        while True:
            try:
                c, _ = self.sock.accept()
            except OSError:
                return
            self.accepted += 1
            try:
                c.sendall(self.text)
            finally:
                c.close()

    def close(self):
        try:
            self.sock.shutdown(socket.SHUT_RDWR)
        except OSError:
            pass
        self.sock.close()
        self.thread.join(5)


class Failover(DaemonTestCase):

    def answer(self, *backends, port_per_server=True):
        """The auth service answers alice with these (host, port)."""
        def hook(req):
            if req.user != "alice" or req.password != self.password("alice"):
                return None
            h = [("Auth-Status", "OK")]
            for host, port in backends:
                h.append(("Auth-Server", host))
                if port_per_server:
                    h.append(("Auth-Port", str(port)))
            if not port_per_server:
                h.append(("Auth-Port", str(backends[0][1])))
            return h
        self.auth.hook = hook

    def bye_server(self, **kw):
        b = ByeServer(**kw)
        self.addCleanup(b.close)
        return b

    def login_and_end(self, d):
        c = self.connect(port=d.port)
        self.login(c)
        c.cmd("b LOGOUT")
        c.read_until_tagged("b")
        return self.session_end("127.0.0.1:%d" % c.local_port, d=d)

    def test_closed_port_then_dovecot(self):
        dead = util.free_port()
        good = self.dovecot.port
        self.answer(("127.0.0.1", dead), ("127.0.0.1", good))
        d = self.start()
        end = self.login_and_end(d)
        self.assertEqual(end["user"], "alice")
        self.assertEqual(end["backend"], "127.0.0.1:%d" % good)
        # the failed one is logged at warn, with what comes next
        d.wait_for_log(r"\[warn\] \d+ auth: backend 127\.0\.0\.1:%d: "
                       r"connect: Connection refused, trying the next "
                       r"Auth-Server$" % dead)

    def test_bye_greeting_then_dovecot(self):
        bye = self.bye_server()
        good = self.dovecot.port
        self.answer(("127.0.0.1", bye.port), ("127.0.0.1", good))
        d = self.start()
        end = self.login_and_end(d)
        self.assertEqual(end["backend"], "127.0.0.1:%d" % good)
        self.assertEqual(bye.accepted, 1)
        d.wait_for_log(r'\[warn\] \d+ imap: backend 127\.0\.0\.1:%d '
                       r'greeted "\* BYE \[UNAVAILABLE\] maintenance", '
                       r'trying backend 2 of 2$' % bye.port)
        self.assertNotIn("login unavailable", d.log())

    def test_bye_then_closed_then_dovecot(self):
        """Three backends, each with its own port: the third answers."""
        bye = self.bye_server()
        dead = util.free_port()
        good = self.dovecot.port
        self.answer(("127.0.0.1", bye.port), ("127.0.0.1", dead),
                    ("127.0.0.1", good))
        d = self.start()
        end = self.login_and_end(d)
        self.assertEqual(end["backend"], "127.0.0.1:%d" % good)
        d.wait_for_log(r"trying backend 2 of 3$")
        d.wait_for_log(r"backend 127\.0\.0\.1:%d: connect: Connection "
                       r"refused, trying the next Auth-Server$" % dead)

    def test_one_port_for_every_server(self):
        # 127.0.0.2 refuses on Dovecot's port (Dovecot listens on
        # 127.0.0.1 only): the next address with the same port answers
        good = self.dovecot.port
        if util.port_accepts("127.0.0.2", good):
            self.skipTest("Dovecot answers on 127.0.0.2 too")
        self.answer(("127.0.0.2", good), ("127.0.0.1", good),
                    port_per_server=False)
        d = self.start()
        end = self.login_and_end(d)
        self.assertEqual(end["backend"], "127.0.0.1:%d" % good)

    def test_every_backend_fails(self):
        bye = self.bye_server()
        dead = util.free_port()
        self.answer(("127.0.0.1", dead), ("127.0.0.1", bye.port))
        d = self.start()
        c = self.connect(port=d.port)
        c.cmd('a LOGIN alice "%s"' % self.password("alice"))
        lines = c.read_until_tagged("a", timeout=10)
        self.assertRegex(lines[-1], r"^a NO \[UNAVAILABLE\] ")
        self.assertEqual(bye.accepted, 1)
        # every close the proxy starts says BYE first
        c.expect_prefix("* BYE ")
        c.expect_closed()

    def test_every_connect_refused(self):
        dead1, dead2 = util.free_port(), util.free_port()
        self.answer(("127.0.0.1", dead1), ("127.0.0.1", dead2))
        d = self.start()
        c = self.connect(port=d.port)
        c.cmd('a LOGIN alice "%s"' % self.password("alice"))
        lines = c.read_until_tagged("a", timeout=10)
        self.assertEqual(lines[-1], "a NO [UNAVAILABLE] backend unavailable")
        d.wait_for_log(r"login unavailable client=127\.0\.0\.1:%d user=alice "
                       r'reason="backend 127\.0\.0\.1:%d: connect: '
                       r'Connection refused"' % (c.local_port, dead2))

    def test_count_mismatch_is_unavailable(self):
        def hook(req):
            return [("Auth-Status", "OK"),
                    ("Auth-Server", "127.0.0.1"),
                    ("Auth-Server", "127.0.0.1"),
                    ("Auth-Server", "127.0.0.1"),
                    ("Auth-Port", str(self.dovecot.port)),
                    ("Auth-Port", str(self.dovecot.port))]
        self.auth.hook = hook
        d = self.start()
        c = self.connect(port=d.port)
        c.cmd('a LOGIN alice "%s"' % self.password("alice"))
        lines = c.read_until_tagged("a", timeout=10)
        self.assertRegex(lines[-1], r"^a NO \[UNAVAILABLE\] ")
        d.wait_for_log(r"Auth-Port count differs from Auth-Server's")


if __name__ == "__main__":
    unittest.main()
