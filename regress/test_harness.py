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

"""The harness itself, without imaprelayd: the Dovecot backend and the
auth service behave as the other tests assume.  When these fail, the
environment is broken, not the daemon."""

import hashlib
import hmac
import http.client
import imaplib
import socket
import threading
import time
import unittest

from lib import dovecot
from lib.case import auth_service
from lib.imapclient import RawImap


class DovecotBackend(unittest.TestCase):

    @classmethod
    def setUpClass(cls):
        try:
            cls.dv = dovecot.get()
        except dovecot.SkipDovecot as e:
            raise unittest.SkipTest("no Dovecot backend: %s" % e)

    def test_login_select_append_fetch(self):
        m = imaplib.IMAP4("127.0.0.1", self.dv.port, timeout=10)
        try:
            self.assertEqual(m.login("bob", "hunter2")[0], "OK")
            self.assertEqual(m.select("INBOX")[0], "OK")
            msg = b"Subject: harness\r\n\r\nbody\r\n"
            typ, data = m.append("INBOX", None, None, msg)
            self.assertEqual(typ, "OK")
            uid = data[0].split()[2].rstrip(b"]").decode()
            typ, data = m.uid("FETCH", uid, "(BODY.PEEK[])")
            self.assertEqual(data[0][1], msg)
        finally:
            m.logout()

    def test_password_with_space_quote_backslash(self):
        m = imaplib.IMAP4("127.0.0.1", self.dv.port, timeout=10)
        try:
            self.assertEqual(m.login("carol", dovecot.USERS["carol"])[0],
                             "OK")
        finally:
            m.logout()

    def test_login_literals_like_the_proxy(self):
        # the proxy logs in with synchronising literals
        c = RawImap(self.dv.port)
        try:
            c.expect_prefix("* OK ")
            c.cmd("a LOGIN {2}")
            c.expect_prefix("+ ")
            c.cmd("u7 {4}")
            c.expect_prefix("+ ")
            c.cmd("pw-7")
            lines = c.read_until_tagged("a")
            self.assertRegex(lines[-1], r"^a OK \[CAPABILITY ")
        finally:
            c.close()

    def test_wrong_passwords_are_not_penalised(self):
        # Dovecot 2.3 batches failures every 0.5 s even with
        # auth_failure_delay = 0; the growing per-IP auth penalty
        # (2, 4, 8... s) must be off or the fault tests crawl
        for i in range(3):
            c = RawImap(self.dv.port)
            try:
                c.expect_prefix("* OK ")
                t0 = time.monotonic()
                c.cmd("a LOGIN alice wrong")
                c.expect_prefix("a NO [AUTHENTICATIONFAILED]")
                self.assertLess(time.monotonic() - t0, 1.5)
            finally:
                c.close()


class AuthService(unittest.TestCase):

    @classmethod
    def setUpClass(cls):
        try:
            cls.svc = auth_service()
        except dovecot.SkipDovecot as e:
            raise unittest.SkipTest("no Dovecot backend: %s" % e)

    def setUp(self):
        self.svc.reset()

    def _get(self, conn, headers):
        """A request the way nginx/imaprelayd sends it."""
        conn.putrequest("GET", "/auth", skip_accept_encoding=True)
        for n, v in headers:
            conn.putheader(n, v)
        conn.endheaders()
        r = conn.getresponse()
        r.read()
        return r

    def _conn(self):
        return http.client.HTTPConnection(self.svc.host, self.svc.port,
                                          timeout=10)

    def _plain(self, user, password, attempt=1):
        return [("Auth-Method", "plain"),
                ("Auth-User", authd_escape(user)),
                ("Auth-Pass", authd_escape(password)),
                ("Auth-Protocol", "imap"),
                ("Auth-Login-Attempt", str(attempt)),
                ("Client-IP", "127.0.0.1")]

    def test_ok_names_backend(self):
        conn = self._conn()
        r = self._get(conn, self._plain("alice", "secret"))
        self.assertEqual(r.getheader("Auth-Status"), "OK")
        self.assertEqual(r.getheader("Auth-Server"), "127.0.0.1")
        self.assertEqual(int(r.getheader("Auth-Port")),
                         dovecot.get().port)
        self.assertIsNone(r.getheader("Auth-Pass"))

    def test_escaped_password_decoded(self):
        conn = self._conn()
        r = self._get(conn, self._plain("carol", dovecot.USERS["carol"]))
        self.assertEqual(r.getheader("Auth-Status"), "OK")
        req = self.svc.last()
        self.assertEqual(req.get("Auth-Pass"), 's%20p"a\\ce')
        self.assertIn(b'Auth-Pass: s%20p"a\\ce', req.raw_lines)
        self.assertEqual(req.raw_lines[0], b"GET /auth HTTP/1.1")

    def test_plus_is_not_a_space(self):
        self.svc.users["plus"] = "a+b"
        conn = self._conn()
        r = self._get(conn, self._plain("plus", "a b"))
        self.assertNotEqual(r.getheader("Auth-Status"), "OK")
        r = self._get(conn, self._plain("plus", "a+b"))
        self.assertEqual(r.getheader("Auth-Status"), "OK")

    def test_refusal_and_wait(self):
        self.svc.fail_wait = 3
        conn = self._conn()
        r = self._get(conn, self._plain("alice", "wrong"))
        self.assertEqual(r.getheader("Auth-Status"),
                         "Invalid login or password")
        self.assertEqual(r.getheader("Auth-Wait"), "3")

    def test_header_order_recorded(self):
        conn = self._conn()
        self._get(conn, self._plain("alice", "secret") +
                  [("X-Extra", "1")])
        req = self.svc.last()
        self.assertEqual(req.auth_headers(extras=("X-Extra",)),
                         self._plain("alice", "secret") +
                         [("X-Extra", "1")])
        self.assertEqual(req.names()[0], "Host")

    def test_keep_alive_one_connection(self):
        conn = self._conn()
        for _ in range(3):
            self._get(conn, self._plain("alice", "secret"))
        self.assertEqual(self.svc.connections_opened, 1)
        self.assertEqual(len(self.svc.requests), 3)

    def test_wait_then_ok(self):
        self.svc.wait_replies = 1
        conn = self._conn()
        r = self._get(conn, self._plain("alice", "secret"))
        self.assertEqual(r.getheader("Auth-Status"), "WAIT")
        r = self._get(conn, self._plain("alice", "secret"))
        self.assertEqual(r.getheader("Auth-Status"), "OK")

    def test_cram_md5_verified(self):
        salt = "<12345.678@imap.example.org>"
        digest = hmac.new(b"hunter2", salt.encode(),
                          hashlib.md5).hexdigest()
        conn = self._conn()
        h = [("Auth-Method", "cram-md5"), ("Auth-User", "bob"),
             ("Auth-Pass", digest), ("Auth-Salt", salt),
             ("Auth-Protocol", "imap"), ("Auth-Login-Attempt", "1"),
             ("Client-IP", "127.0.0.1")]
        r = self._get(conn, h)
        self.assertEqual(r.getheader("Auth-Status"), "OK")
        self.assertEqual(r.getheader("Auth-Pass"), "hunter2")
        h[2] = ("Auth-Pass", "0" * 32)
        r = self._get(conn, h)
        self.assertNotEqual(r.getheader("Auth-Status"), "OK")

    def test_override(self):
        self.svc.override_user = "bob"
        self.svc.override_pass = "hunter2"
        r = self._get(self._conn(), self._plain("alice", "secret"))
        self.assertEqual(r.getheader("Auth-User"), "bob")
        self.assertEqual(r.getheader("Auth-Pass"), "hunter2")

    def test_status500_has_no_auth_status(self):
        self.svc.mode = "status500"
        r = self._get(self._conn(), self._plain("alice", "secret"))
        self.assertEqual(r.status, 500)
        self.assertIsNone(r.getheader("Auth-Status"))

    def test_garbage(self):
        self.svc.mode = "garbage"
        with self.assertRaises((http.client.HTTPException, OSError)):
            self._get(self._conn(), self._plain("alice", "secret"))

    def test_close_mid_reply(self):
        self.svc.mode = "close"
        s = socket.create_connection((self.svc.host, self.svc.port), 10)
        with s:
            s.sendall(b"GET /auth HTTP/1.1\r\nHost: x\r\n"
                      b"Auth-User: alice\r\nAuth-Pass: secret\r\n\r\n")
            data = b""
            while True:
                chunk = s.recv(4096)
                if not chunk:
                    break
                data += chunk
        self.assertEqual(data, b"HTTP/1.1 200 OK\r\nAuth-Sta")

    def test_delay_released_by_reset(self):
        self.svc.delay = 30
        conn = self._conn()
        result = []
        t = threading.Thread(target=lambda: result.append(
            self._get(conn, self._plain("alice", "secret"))))
        t0 = time.monotonic()
        t.start()
        self.svc.wait_requests(1)
        self.svc.reset()
        t.join(10)
        self.assertLess(time.monotonic() - t0, 10)
        self.assertEqual(result[0].getheader("Auth-Status"), "OK")

    def test_closed_port_refuses(self):
        from lib import util
        with self.assertRaises(ConnectionRefusedError):
            socket.create_connection(("127.0.0.1", util.free_port()), 2)


def authd_escape(s):
    from lib import util
    return util.pct_encode(s).decode("latin-1")


if __name__ == "__main__":
    unittest.main()
