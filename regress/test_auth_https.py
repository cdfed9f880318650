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

"""auth_http over https: the auth service verified with
auth_http_trusted_certificate (a CA bundle the parent reads and hands
to the auth process in memory), and a client certificate presented to
it with auth_http_certificate / auth_http_certificate_key."""

import os
import shutil
import ssl
import tempfile
import unittest

from lib import authd, dovecot
from lib import daemon as daemonlib
from lib import util
from lib.case import DaemonTestCase, run_tmpdir
from test_tls import _openssl, make_pki

UNAVAILABLE = "a NO [UNAVAILABLE] authentication service unavailable"


class AuthHttps(DaemonTestCase):

    @classmethod
    def setUpClass(cls):
        super().setUpClass()
        if shutil.which("openssl") is None:
            raise unittest.SkipTest("no openssl")
        cls.pki = tempfile.mkdtemp(prefix="atls-pki-", dir=run_tmpdir())
        os.chmod(cls.pki, 0o755)
        make_pki(cls.pki)
        # a second CA that signed nothing of the service's
        _openssl("req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days",
                 "2", "-subj", "/CN=other CA", "-keyout", "other.key",
                 "-out", "other.crt", cwd=cls.pki)
        for f in os.listdir(cls.pki):
            os.chmod(os.path.join(cls.pki, f), 0o644)
        cls.services = []

    @classmethod
    def tearDownClass(cls):
        for s in cls.services:
            s.close()
        shutil.rmtree(cls.pki, ignore_errors=True)
        super().tearDownClass()

    def pem(self, name):
        return os.path.join(self.pki, name)

    def https_service(self, client_cert=False):
        ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        ctx.load_cert_chain(self.pem("rsa.crt"), self.pem("rsa.key"))
        if client_cert:
            ctx.verify_mode = ssl.CERT_REQUIRED
            ctx.load_verify_locations(self.pem("ca.crt"))
        svc = authd.AuthService(dovecot.get().port, dovecot.all_users(),
                                ssl_context=ctx)
        self.services.append(svc)
        return svc

    def start_https(self, svc, **server):
        return self.start(auth_url=svc.url.replace("127.0.0.1",
                                                   "localhost"),
                          server=server)

    def test_right_ca_login_works(self):
        svc = self.https_service()
        self.start_https(svc, auth_http_trusted_certificate=self.pem(
            "ca.crt"))
        c = self.connect()
        self.login(c)

    def test_wrong_ca_unavailable_with_reason(self):
        svc = self.https_service()
        d = self.start_https(svc, auth_http_trusted_certificate=self.pem(
            "other.crt"))
        c = self.connect()
        c.cmd('a LOGIN alice "%s"' % self.password("alice"))
        c.expect(UNAVAILABLE)
        m = d.wait_for_log(r"login unavailable .*reason=\"[^\"]*"
                           r"certificate[^\"]*\"")
        self.assertIn("user=alice", m.group(0))

    def test_client_certificate_presented(self):
        svc = self.https_service(client_cert=True)
        self.start_https(svc,
                         auth_http_trusted_certificate=self.pem("ca.crt"),
                         auth_http_certificate=self.pem("rsa.crt"),
                         auth_http_certificate_key=self.pem("rsa.key"))
        c = self.connect()
        self.login(c)

    def test_client_certificate_missing(self):
        svc = self.https_service(client_cert=True)
        self.start_https(svc,
                         auth_http_trusted_certificate=self.pem("ca.crt"))
        c = self.connect()
        c.cmd('a LOGIN alice "%s"' % self.password("alice"))
        c.expect(UNAVAILABLE)

    def refused(self, **server):
        port = util.free_port()
        text = self.config(port=port, server=server)
        path = os.path.join(self.tmp, "refused.conf")
        with open(path, "w") as f:
            f.write(text)
        rc, out = daemonlib.check_config(path)
        self.assertNotEqual(0, rc, out)
        return out

    def test_config_refusals(self):
        # over plain http the files would be ignored: refused
        out = self.refused(auth_http_trusted_certificate=self.pem(
            "ca.crt"))
        self.assertIn("need an https auth_http", out)
        out = self.refused(auth_http="https://localhost:1/auth",
                           auth_http_certificate=self.pem("rsa.crt"))
        self.assertIn("go together", out)
        out = self.refused(auth_http="https://localhost:1/auth",
                           auth_http_trusted_certificate="/nonexistent")
        self.assertIn("cannot read", out)
