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

"""TLS from the proxy to the backend: proxy_ssl on (Dovecot's implicit
TLS port) and starttls (its plain port), certificate and name checks,
proxy_ssl_verify off, the Auth-Proxy-SSL override of the auth service
and a client certificate to the backend.  The backend's PKI is made by
the Dovecot fixture (regress/lib/dovecot.py)."""

import imaplib
import os
import socket
import subprocess
import time
import unittest

from lib import daemon as daemonlib
from lib.case import DaemonTestCase


class BackendTls(DaemonTestCase):

    @classmethod
    def setUpClass(cls):
        super().setUpClass()
        if not cls.dovecot.tls_port:
            raise unittest.SkipTest("the Dovecot fixture has no TLS "
                                    "(no openssl)")

    def ca(self, name="ca.crt"):
        return self.dovecot.pki(name)

    def tls_backend(self):
        self.auth.backend = ("127.0.0.1", self.dovecot.tls_port)

    def mailbox_roundtrip(self, user="alice"):
        """imaplib through the proxy: login, SELECT, APPEND, FETCH."""
        c = self.imap()
        typ, _ = c.login(user, self.password(user))
        self.assertEqual("OK", typ)
        typ, data = c.select("INBOX")
        self.assertEqual("OK", typ, data)
        subject = "backend-tls-%d" % time.monotonic_ns()
        msg = ("From: a@example.org\r\nSubject: %s\r\n\r\nbody\r\n"
               % subject).encode()
        typ, data = c.append("INBOX", None, None, msg)
        self.assertEqual("OK", typ, data)
        typ, data = c.search(None, "SUBJECT", subject)
        self.assertEqual("OK", typ, data)
        num = data[0].split()[-1]
        typ, data = c.fetch(num, "(BODY[HEADER.FIELDS (SUBJECT)])")
        self.assertEqual("OK", typ, data)
        self.assertIn(subject.encode(), data[0][1])
        c.logout()

    def refused(self, reason_re, user="alice"):
        """The login fails with UNAVAILABLE and a log line with why."""
        c = self.connect()
        c.cmd('a LOGIN %s "%s"' % (user, self.password(user)))
        lines = c.read_until_tagged("a")
        self.assertEqual("a NO [UNAVAILABLE] backend unavailable",
                         lines[-1])
        m = self.daemon.wait_for_log(r"login unavailable .*reason=\"("
                                     r"backend [^\"]*)\"")
        self.assertRegex(m.group(1), reason_re)
        return m.group(1)

    def test_on_verified(self):
        self.tls_backend()
        self.start(mail={"proxy_ssl": "on",
                         "proxy_ssl_trusted_certificate": self.ca()})
        self.mailbox_roundtrip()
        self.assertNotIn("tls handshake failed", self.daemon.log())

    def test_on_server_level_and_name(self):
        self.tls_backend()
        self.start(server={"proxy_ssl": "on",
                           "proxy_ssl_name": "backend.test",
                           "proxy_ssl_trusted_certificate": self.ca()})
        self.mailbox_roundtrip("carol")

    def test_starttls(self):
        self.start(mail={"proxy_ssl": "starttls",
                         "proxy_ssl_trusted_certificate": self.ca()})
        since = len(self.dovecot.log())
        self.mailbox_roundtrip()
        self.mailbox_roundtrip("carol")
        # Dovecot logs both logins on its plain port as over TLS
        logins = [l for l in self.dovecot.log()[since:].splitlines()
                  if "Login: user=<" in l and
                  "lip=127.0.0.1," in l and
                  ("<alice>" in l or "<carol>" in l)]
        self.assertTrue(logins)
        for l in logins:
            self.assertIn(", TLS", l)

    def test_large_message_relay(self):
        # bigger than proxy_buffer many times: libtls holds decrypted
        # bytes that no socket event announces
        self.tls_backend()
        self.start(mail={"proxy_ssl": "on", "proxy_buffer": "4k",
                         "proxy_ssl_trusted_certificate": self.ca()})
        c = self.imap()
        c.login("alice", self.password("alice"))
        c.select("INBOX")
        subject = "big-%d" % time.monotonic_ns()
        body = b"".join(b"line %06d of a large message over TLS\r\n" % i
                        for i in range(40000))
        msg = b"Subject: " + subject.encode() + b"\r\n\r\n" + body
        typ, data = c.append("INBOX", None, None, msg)
        self.assertEqual("OK", typ, data)
        typ, data = c.search(None, "SUBJECT", subject)
        num = data[0].split()[-1]
        typ, data = c.fetch(num, "(BODY[])")
        self.assertEqual("OK", typ, data)
        self.assertEqual(msg, data[0][1])
        c.logout()

    def test_half_close_logout_still_answered(self):
        # close_notify then SHUT_WR to the backend; its BYE still comes
        self.tls_backend()
        d = self.start(mail={"proxy_ssl": "on",
                             "proxy_ssl_trusted_certificate": self.ca()})
        c = self.connect()
        self.login(c)
        c.send(b"x LOGOUT\r\n")
        c.sock.shutdown(socket.SHUT_WR)
        lines = c.read_until_tagged("x")
        self.assertTrue(lines[0].startswith("* BYE"), lines)
        self.assertTrue(lines[-1].startswith("x OK"), lines)
        c.expect_closed(timeout=5)
        kv = self.session_end(c.client_addr, d)
        self.assertEqual(kv["user"], "alice")

    def test_wrong_ca(self):
        self.tls_backend()
        self.start(mail={"proxy_ssl": "on",
                         "proxy_ssl_trusted_certificate":
                         self.ca("other-ca.crt")})
        self.refused(r"tls handshake failed: .*verif")

    def test_starttls_wrong_ca(self):
        self.start(mail={"proxy_ssl": "starttls",
                         "proxy_ssl_trusted_certificate":
                         self.ca("other-ca.crt")})
        self.refused(r"tls handshake failed: .*verif")

    def test_verify_off(self):
        self.tls_backend()
        self.start(mail={"proxy_ssl": "on", "proxy_ssl_verify": "off",
                         "proxy_ssl_trusted_certificate":
                         self.ca("other-ca.crt")})
        self.mailbox_roundtrip()

    def test_name_mismatch(self):
        self.tls_backend()
        self.start(mail={"proxy_ssl": "on",
                         "proxy_ssl_name": "wrong.test",
                         "proxy_ssl_trusted_certificate": self.ca()})
        self.refused(r"tls handshake failed: .*wrong\.test")

    def test_plaintext_backend_refuses_tls(self):
        # proxy_ssl on against the plain port: no TLS there
        self.start(mail={"proxy_ssl": "on",
                         "proxy_ssl_trusted_certificate": self.ca()})
        self.refused(r"tls handshake failed|timeout|closed")

    def test_auth_header_turns_tls_on(self):
        tls_port = self.dovecot.tls_port

        def hook(req):
            ok, _ = self.auth.check(req)
            if not ok:
                return None
            if req.user == "bob":
                return [("Auth-Status", "OK"),
                        ("Auth-Server", "127.0.0.1"),
                        ("Auth-Port", str(tls_port)),
                        ("Auth-Proxy-SSL", "on"),
                        ("Auth-Proxy-SSL-Name", "backend.test")]
            return None
        self.auth.hook = hook
        self.start(mail={"proxy_ssl_trusted_certificate": self.ca()})
        self.mailbox_roundtrip("bob")     # TLS, by the header
        self.mailbox_roundtrip("alice")   # plaintext, as configured

    def test_auth_header_name_mismatch(self):
        tls_port = self.dovecot.tls_port

        def hook(req):
            return [("Auth-Status", "OK"), ("Auth-Server", "127.0.0.1"),
                    ("Auth-Port", str(tls_port)),
                    ("Auth-Proxy-SSL", "on"),
                    ("Auth-Proxy-SSL-Name", "other.test")]
        self.auth.hook = hook
        self.start(mail={"proxy_ssl_trusted_certificate": self.ca()})
        self.refused(r"tls handshake failed: .*other\.test")

    def test_auth_header_tls_without_ca(self):
        # proxy_ssl off: no CA bundle was read, verification cannot be
        tls_port = self.dovecot.tls_port

        def hook(req):
            return [("Auth-Status", "OK"), ("Auth-Server", "127.0.0.1"),
                    ("Auth-Port", str(tls_port)),
                    ("Auth-Proxy-SSL", "on")]
        self.auth.hook = hook
        d = self.start()
        self.refused(r"tls setup failed")
        d.wait_for_log(r"set proxy_ssl_trusted_certificate")

    def test_auth_header_turns_tls_off(self):
        def hook(req):
            return [("Auth-Status", "OK"), ("Auth-Server", "127.0.0.1"),
                    ("Auth-Port", str(self.dovecot.port)),
                    ("Auth-Proxy-SSL", "off")]
        self.auth.hook = hook
        self.start(mail={"proxy_ssl": "on",
                         "proxy_ssl_trusted_certificate": self.ca()})
        self.mailbox_roundtrip()

    def test_client_certificate(self):
        if not self.dovecot.cert_port:
            self.skipTest("127.0.0.2 not usable for the client "
                          "certificate listener")
        self.auth.backend = ("127.0.0.2", self.dovecot.cert_port)
        self.start(mail={"proxy_ssl": "on",
                         "proxy_ssl_name": "backend.test",
                         "proxy_ssl_trusted_certificate": self.ca(),
                         "proxy_ssl_certificate": self.ca("client.crt"),
                         "proxy_ssl_certificate_key":
                         self.ca("client.key")})
        self.mailbox_roundtrip("demo")
        self.assertIn("Received valid SSL certificate: /CN=client.test",
                      self.dovecot.log())

    def test_config_refusals(self):
        for mail, why in (
                ({"proxy_ssl": "maybe"}, "must be"),
                ({"proxy_ssl": "on", "proxy_ssl_certificate":
                  self.ca("client.crt")}, "go together"),
                ({"proxy_ssl": "on", "proxy_ssl_trusted_certificate":
                  "/nonexistent/ca.crt"}, "cannot read"),
                ({"proxy_ssl_ciphers": "NO-SUCH-CIPHER"}, "invalid value")):
            path = os.path.join(self.tmp, "check.conf")
            with open(path, "w") as f:
                f.write(self.config(mail=mail))
            r = subprocess.run([daemonlib.binary(), "-n", "-f", path],
                               capture_output=True, text=True, timeout=30)
            self.assertNotEqual(0, r.returncode, mail)
            self.assertIn(why, r.stdout + r.stderr, mail)


class BackendTlsShared(BackendTls):
    ISOLATION = "shared"
    WORKER_PROCESSES = 2


if __name__ == "__main__":
    unittest.main()
