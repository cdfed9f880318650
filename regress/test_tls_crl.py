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

"""ssl_crl (issue 10 item 3), as nginx: client certificates are checked
against the revocation lists of the file, for every certificate of
the chain; a revoked one is refused with nginx's BYE, and so is one
whose CA has no list in the file.  The PKI of test_client_cert.py, a
client bob the CA revokes, and two lists the CA signs with
cryptography (an empty one and one naming bob)."""

import datetime
import os
import unittest

from lib import daemon as daemonlib
from lib import util
from test_client_cert import ClientCertCase
from test_tls import _openssl

try:
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
except ImportError:     # pragma: no cover
    x509 = None


def make_crl(d, name, revoked_certs, ca_name="ca"):
    """name: a CRL signed by ca_name.key revoking the given
    certificates."""
    with open(os.path.join(d, ca_name + ".crt"), "rb") as f:
        ca = x509.load_pem_x509_certificate(f.read())
    with open(os.path.join(d, ca_name + ".key"), "rb") as f:
        key = serialization.load_pem_private_key(f.read(), None)
    now = datetime.datetime.now(datetime.timezone.utc)
    b = x509.CertificateRevocationListBuilder().issuer_name(
        ca.subject).last_update(now - datetime.timedelta(minutes=5)
                                ).next_update(now + datetime.timedelta(days=1))
    for c in revoked_certs:
        with open(os.path.join(d, c + ".crt"), "rb") as f:
            serial = x509.load_pem_x509_certificate(f.read()).serial_number
        b = b.add_revoked_certificate(
            x509.RevokedCertificateBuilder().serial_number(serial)
            .revocation_date(now - datetime.timedelta(minutes=1)).build())
    crl = b.sign(key, hashes.SHA256())
    path = os.path.join(d, name)
    with open(path, "wb") as f:
        f.write(crl.public_bytes(serialization.Encoding.PEM))
    os.chmod(path, 0o644)


class Crl(ClientCertCase):

    @classmethod
    def setUpClass(cls):
        if x509 is None:
            raise unittest.SkipTest("no python3-cryptography to sign CRLs")
        super().setUpClass()
        d = cls.pki
        _openssl("req", "-new", "-nodes", "-newkey", "rsa:2048", "-subj",
                 "/O=imaprelayd regress/CN=bob", "-keyout", "bob.key",
                 "-out", "bob.csr", cwd=d)
        _openssl("x509", "-req", "-in", "bob.csr", "-CA", "ca.crt",
                 "-CAkey", "ca.key", "-CAcreateserial", "-days", "2",
                 "-out", "bob.crt", cwd=d)
        for f in ("bob.crt", "bob.key"):
            os.chmod(os.path.join(d, f), 0o644)
        make_crl(d, "revoked.crl", ["bob"])
        make_crl(d, "empty.crl", [])
        make_crl(d, "other.crl", [], ca_name="other")

    def test_revoked_certificate_gets_bye(self):
        d = self.start_cc("on", ssl_crl=self.pem("revoked.crl"))
        mark = d.mark()
        c = self.tls_client("bob")
        self.expect_bye(c, "SSL certificate error")
        d.wait_for_log(r"client=%s client SSL certificate verify error: "
                       r"\(23:certificate revoked\)" % c.client_addr,
                       since=mark)

    def test_revoked_refused_under_optional_too(self):
        self.start_cc("optional", ssl_crl=self.pem("revoked.crl"))
        c = self.tls_client("bob")
        self.expect_bye(c, "SSL certificate error")

    def test_certificate_not_revoked_logs_in(self):
        self.start_cc("on", ssl_crl=self.pem("revoked.crl"))
        c = self.tls_client("alice")
        c.expect_prefix("* OK ")
        self.login(c)
        self.assertEqual("SUCCESS", self.auth.last().get("Auth-SSL-Verify"))

    def test_empty_list_lets_bob_in(self):
        # the BYE above comes from the list, not from bob's certificate
        self.start_cc("on", ssl_crl=self.pem("empty.crl"))
        c = self.tls_client("bob")
        c.expect_prefix("* OK ")
        self.login(c)

    def test_ca_without_list_refused(self):
        # as nginx (X509_V_FLAG_CRL_CHECK_ALL): a CA the file has no
        # list for cannot vouch for anyone
        d = self.start_cc("on", ssl_crl=self.pem("other.crl"))
        mark = d.mark()
        c = self.tls_client("alice")
        self.expect_bye(c, "SSL certificate error")
        d.wait_for_log(r"client=%s client SSL certificate verify error: "
                       r"\(3:unable to get certificate CRL\)" %
                       c.client_addr, since=mark)

    def test_crl_inherited_from_mail(self):
        # revoked.crl at mail level, the server inherits it
        port = util.free_port()
        srv = self.tls_server(ssl_verify_client="on",
                              ssl_client_certificate=self.pem("ca.crt"))
        srv["listen"] = ("127.0.0.1:%d" % port, "ssl")
        text = self.config(port=port, server=srv).replace(
            "mail {", "mail {\n    ssl_crl %s;" % self.pem("revoked.crl"),
            1)
        self.assertIn("ssl_crl", text)

        d = daemonlib.Daemon(self.tmp, text, port, name="imaprelayd-crl")
        self._daemons.append(d)
        d.start()
        self._daemon = d
        c = self.tls_client("bob")
        self.expect_bye(c, "SSL certificate error")

    def test_file_without_list_fails_at_start(self):
        path = os.path.join(self.tmp, "check.conf")
        with open(path, "w") as f:
            f.write(self.config(server=self.tls_server(
                listen=("127.0.0.1:%d" % util.free_port(), "ssl"),
                ssl_verify_client="on",
                ssl_client_certificate=self.pem("ca.crt"),
                ssl_crl=self.pem("bob.key"))))

        rc, out = daemonlib.check_config(path)
        self.assertEqual(1, rc, out)
        self.assertRegex(out, r'check\.conf:\d+: no certificate revocation '
                         r'list in "%s"' % self.pem("bob.key"))


if __name__ == "__main__":
    unittest.main()
