"""ssl_password_file (issue 10 item 3), as nginx: the key files are
encrypted, each line of the password file is tried in turn, the parent
decrypts and the workers get the key decrypted, in memory; the
passwords are wiped.  A file with no password that fits stops the
start with file:line and the key's name."""

import imaplib
import os
import subprocess

from lib import daemon as daemonlib
from lib import procmem
from lib import util
from test_tls import TlsCase, _openssl


class PasswordFile(TlsCase):

    @classmethod
    def setUpClass(cls):
        super().setUpClass()
        cls.secret = procmem.token("pw")
        for name in ("rsa", "ecdsa"):
            _openssl("pkey", "-in", name + ".key", "-aes256", "-passout",
                     "pass:" + cls.secret, "-out", name + "-enc.key",
                     cwd=cls.pki)
        with open(cls.pem("pw"), "w") as f:
            # nginx's format: one password a line, CRLF or LF
            f.write("wrong-one\r\n\n%s\n" % cls.secret)
        with open(cls.pem("badpw"), "w") as f:
            f.write("wrong-one\nwrong-two\n")
        for f in ("rsa-enc.key", "ecdsa-enc.key", "pw", "badpw"):
            os.chmod(cls.pem(f), 0o644)

    @classmethod
    def pem(cls, name):
        return os.path.join(cls.pki, name)

    def encrypted(self, pwfile="pw", **extra):
        s = {"ssl_certificate": [self.pem("rsa.crt"), self.pem("ecdsa.crt")],
             "ssl_certificate_key": [self.pem("rsa-enc.key"),
                                     self.pem("ecdsa-enc.key")],
             "ssl_password_file": self.pem(pwfile)}
        s.update(extra)
        return s

    def check(self, server):
        path = os.path.join(self.tmp, "check.conf")
        with open(path, "w") as f:
            f.write(self.config(server=server))
        return daemonlib.check_config(path)

    def test_encrypted_keys_serve_tls_logins(self):
        self.start_tls(**self.encrypted())
        c = imaplib.IMAP4_SSL("127.0.0.1", self.port,
                              ssl_context=self.context(), timeout=30)
        self._clients.append(c)
        c.login("alice", self.password("alice"))
        self.assertEqual("OK", c.select("INBOX")[0])
        c.logout()
        # the ECDSA key, decrypted too, by name (TLS 1.2 and 1.3)
        for proto in ("-tls1_2", "-tls1_3"):
            r = subprocess.run(["openssl", "s_client", "-connect",
                                "127.0.0.1:%d" % self.port, proto,
                                "-servername", "ecdsa.test", "-CAfile",
                                self.pem("ca.crt"), "-verify_return_error",
                                "-quiet"], input=b"a LOGOUT\r\n",
                               capture_output=True, timeout=30)
            self.assertIn(b"a OK LOGOUT completed", r.stdout, r.stderr)

    def test_starttls_with_encrypted_key(self):
        self.start_tls(ssl_listen=False, starttls="only",
                       **self.encrypted())
        c = imaplib.IMAP4("127.0.0.1", self.port, timeout=30)
        self._clients.append(c)
        c.starttls(ssl_context=self.context())
        c.login("alice", self.password("alice"))
        c.logout()

    def test_wrong_passwords_fail_at_start(self):
        rc, out = self.check(self.encrypted(
            pwfile="badpw",
            listen=("127.0.0.1:%d" % util.free_port(), "ssl")))
        self.assertEqual(1, rc, out)
        self.assertRegex(out, r'check\.conf:\d+: cannot load certificate '
                         r'key "%s": no password in "%s" decrypts it' % (
                             self.pem("rsa-enc.key"), self.pem("badpw")))

    def test_encrypted_key_without_password_file_refused(self):
        s = self.encrypted(listen=("127.0.0.1:%d" % util.free_port(),
                                   "ssl"))
        del s["ssl_password_file"]
        rc, out = self.check(s)
        self.assertEqual(1, rc, out)
        self.assertRegex(out, r'check\.conf:\d+: no private key in "%s"' %
                         self.pem("rsa-enc.key"))

    def test_missing_password_file_named(self):
        s = self.encrypted(pwfile="nonexistent",
                           listen=("127.0.0.1:%d" % util.free_port(), "ssl"))
        rc, out = self.check(s)
        self.assertEqual(1, rc, out)
        self.assertIn('cannot read "%s"' % self.pem("nonexistent"), out)

    def test_unencrypted_key_with_password_file_taken(self):
        # nginx never asks for a password a key does not need
        rc, out = self.check(self.tls_server(
            listen=("127.0.0.1:%d" % util.free_port(), "ssl"),
            ssl_password_file=self.pem("badpw")))
        self.assertEqual(0, rc, out)

    def test_password_wiped_everywhere(self):
        why = procmem.why_not()
        if why:
            self.skipTest(why)
        d = self.start_tls(**self.encrypted())
        c = imaplib.IMAP4_SSL("127.0.0.1", self.port,
                              ssl_context=self.context(), timeout=30)
        self._clients.append(c)
        c.login("alice", self.password("alice"))
        held = {}
        for title in ("parent", "auth", "template", "imap"):
            for pid in d.pids(title):
                if procmem.find(pid, [self.secret.encode()]):
                    held.setdefault(title, []).append(pid)
        self.assertTrue(d.pids("imap"))
        self.assertEqual({}, held, "the key's password is still in %s" %
                         held)
        c.logout()


if __name__ == "__main__":
    import unittest
    unittest.main()
