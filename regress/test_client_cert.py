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

"""TLS client certificates with nginx's semantics: ssl_verify_client
on | optional | optional_no_ca, ssl_client_certificate,
ssl_trusted_certificate, ssl_verify_depth, the Auth-SSL-Verify,
-Subject, -Issuer, -Serial, -Fingerprint and -Cert headers, and
AUTHENTICATE EXTERNAL.  The PKI of test_tls.py plus client
certificates: alice's from the same CA, one from another CA and an
expired one."""

import base64
import hashlib
import os
import socket
import ssl
import subprocess
import time

from lib import authd
from lib import util
from lib.case import caps
from test_tls import TlsCase, _openssl


def make_client_pki(d):
    """alice.crt (CA of test_tls), stranger.crt (another CA) and
    expired.crt (the CA, valid for no time at all)."""
    _openssl("req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "2",
             "-subj", "/CN=other CA", "-keyout", "other.key",
             "-out", "other.crt", cwd=d)
    for name, ca, days in (("alice", "ca", "2"), ("stranger", "other", "2"),
                           ("expired", "ca", "0")):
        _openssl("req", "-new", "-nodes", "-newkey", "rsa:2048", "-subj",
                 "/O=imaprelayd regress/CN=%s" % name, "-keyout",
                 name + ".key", "-out", name + ".csr", cwd=d)
        _openssl("x509", "-req", "-in", name + ".csr", "-CA", ca + ".crt",
                 "-CAkey", ca + ".key", "-CAcreateserial", "-days", days,
                 "-out", name + ".crt", cwd=d)
    for f in os.listdir(d):
        os.chmod(os.path.join(d, f), 0o644)
    # -days 0: expired from the next second on
    time.sleep(1.1)


class ClientCertCase(TlsCase):

    @classmethod
    def setUpClass(cls):
        super().setUpClass()
        make_client_pki(cls.pki)

    def start_cc(self, verify, ssl_listen=True, **server):
        server.setdefault("ssl_client_certificate", self.pem("ca.crt"))
        server["ssl_verify_client"] = verify
        return self.start_tls(ssl_listen=ssl_listen, **server)

    def client_context(self, cert=None):
        ctx = self.context()
        if cert is not None:
            ctx.load_cert_chain(self.pem(cert + ".crt"),
                                self.pem(cert + ".key"))
        return ctx

    def tls_client(self, cert=None):
        """A RawImap over TLS with the given client certificate."""
        c = self.connect(greeting=False)
        c.sock = self.client_context(cert).wrap_socket(
            c.sock, server_hostname="localhost")
        return c

    def expect_bye(self, c, text):
        c.expect("* BYE " + text)
        c.expect_closed()

    def fingerprint(self, name):
        with open(self.pem(name + ".crt")) as f:
            der = ssl.PEM_cert_to_DER_cert(f.read())
        return hashlib.sha1(der).hexdigest()

    def serial(self, name):
        r = subprocess.run(["openssl", "x509", "-in", self.pem(name + ".crt"),
                            "-noout", "-serial"], capture_output=True,
                           check=True, text=True)
        return r.stdout.strip().split("=", 1)[1]

    def ssl_headers(self, req):
        return [(n, v) for n, v in req.headers
                if n.lower().startswith("auth-ssl")]


class Required(ClientCertCase):

    def test_good_certificate_logs_in_with_headers(self):
        self.start_cc("on")
        c = self.tls_client("alice")
        c.expect_prefix("* OK [CAPABILITY ")
        self.login(c)
        req = self.auth.last()
        names = [n for n, _ in self.ssl_headers(req)]
        self.assertEqual(["Auth-SSL", "Auth-SSL-Protocol", "Auth-SSL-Cipher",
                          "Auth-SSL-Verify", "Auth-SSL-Subject",
                          "Auth-SSL-Issuer", "Auth-SSL-Serial",
                          "Auth-SSL-Fingerprint"], names)
        self.assertEqual("SUCCESS", req.get("Auth-SSL-Verify"))
        self.assertEqual("CN=alice,O=imaprelayd regress",
                         req.get("Auth-SSL-Subject"))
        self.assertEqual("CN=imaprelayd regress CA",
                         req.get("Auth-SSL-Issuer"))
        self.assertEqual(self.serial("alice").upper(),
                         req.get("Auth-SSL-Serial").upper())
        self.assertEqual(self.fingerprint("alice"),
                         req.get("Auth-SSL-Fingerprint"))
        self.assertIsNone(req.get("Auth-SSL-Cert"))
        # the certificate headers come before the auth_http_header lines
        self.assertEqual("Client-IP", req.auth_headers()[
            [n for n, _ in req.auth_headers()].index("Auth-SSL") - 1][0])

    def test_no_certificate_gets_bye(self):
        d = self.start_cc("on")
        mark = d.mark()
        c = self.tls_client()
        self.expect_bye(c, "No required SSL certificate")
        d.wait_for_log(r'session end client=%s .*reason="client '
                       r'certificate refused"' % c.client_addr, since=mark)

    def test_unknown_ca_gets_bye(self):
        self.start_cc("on")
        c = self.tls_client("stranger")
        self.expect_bye(c, "SSL certificate error")

    def test_expired_gets_bye(self):
        self.start_cc("on")
        c = self.tls_client("expired")
        self.expect_bye(c, "SSL certificate error")

    def test_trusted_certificate_alone_verifies(self):
        self.start_tls(ssl_verify_client="on",
                       ssl_trusted_certificate=self.pem("ca.crt"))
        c = self.tls_client("alice")
        c.expect_prefix("* OK ")
        self.login(c)
        self.assertEqual("SUCCESS", self.auth.last().get("Auth-SSL-Verify"))

    def test_verify_depth_counts_intermediates(self):
        # OpenSSL's depth (and so nginx's): intermediates between the
        # certificate and the CA; 0 still takes one the CA signed
        self.start_cc("on", ssl_verify_depth="0")
        c = self.tls_client("alice")
        c.expect_prefix("* OK ")

    def test_openssl_s_client(self):
        self.start_cc("on")
        base = ["openssl", "s_client", "-connect", "127.0.0.1:%d" % self.port,
                "-quiet", "-CAfile", self.pem("ca.crt")]
        r = subprocess.run(base + ["-cert", self.pem("alice.crt"), "-key",
                                   self.pem("alice.key")],
                           input=b"a LOGOUT\r\n", capture_output=True,
                           timeout=30)
        self.assertIn(b"* OK [CAPABILITY", r.stdout)
        self.assertIn(b"a OK LOGOUT completed", r.stdout)
        r = subprocess.run(base, input=b"", capture_output=True, timeout=30)
        self.assertEqual(b"* BYE No required SSL certificate\r\n", r.stdout)
        r = subprocess.run(base + ["-cert", self.pem("stranger.crt"), "-key",
                                   self.pem("stranger.key")],
                           input=b"", capture_output=True, timeout=30)
        self.assertEqual(b"* BYE SSL certificate error\r\n", r.stdout)

    def test_resumed_session_keeps_certificate(self):
        # a resumed session has the certificate of the first handshake
        self.start_cc("on")
        ctx = self.client_context("alice")
        ctx.maximum_version = ssl.TLSVersion.TLSv1_2
        first = ctx.wrap_socket(socket.create_connection(
            ("127.0.0.1", self.port), timeout=10), server_hostname="localhost")
        self._clients.append(first)
        self.assertTrue(first.recv(4096).startswith(b"* OK "))
        sess = first.session
        c = self.connect(greeting=False)
        c.sock = ctx.wrap_socket(c.sock, server_hostname="localhost",
                                 session=sess)
        c.expect_prefix("* OK ")
        self.assertTrue(c.sock.session_reused)
        self.login(c)
        req = self.auth.last()
        self.assertEqual("SUCCESS", req.get("Auth-SSL-Verify"))
        self.assertEqual(self.fingerprint("alice"),
                         req.get("Auth-SSL-Fingerprint"))

    def test_starttls_without_certificate_gets_bye(self):
        self.start_cc("on", ssl_listen=False, starttls="on")
        c = self.connect()
        c.cmd("a STARTTLS")
        c.expect("a OK Begin TLS negotiation now")
        c.sock = self.client_context().wrap_socket(
            c.sock, server_hostname="localhost")
        self.expect_bye(c, "No required SSL certificate")

    def test_starttls_with_certificate(self):
        self.start_cc("on", ssl_listen=False, starttls="on")
        c = self.connect()
        c.cmd("a STARTTLS")
        c.expect("a OK Begin TLS negotiation now")
        c.sock = self.client_context("alice").wrap_socket(
            c.sock, server_hostname="localhost")
        self.login(c, tag="b")
        self.assertEqual("SUCCESS", self.auth.last().get("Auth-SSL-Verify"))


class SharedWorkers(ClientCertCase):
    """Many sessions per worker: each keeps its own verdict."""

    ISOLATION = "shared"

    def test_good_and_refused_in_one_worker(self):
        self.start_cc("on")
        bad = self.tls_client()
        good = self.tls_client("alice")
        self.expect_bye(bad, "No required SSL certificate")
        good.expect_prefix("* OK ")
        self.login(good)
        self.assertEqual("CN=alice,O=imaprelayd regress",
                         self.auth.last().get("Auth-SSL-Subject"))


class Optional(ClientCertCase):

    def test_no_certificate_is_none(self):
        self.start_cc("optional")
        c = self.tls_client()
        c.expect_prefix("* OK ")
        self.login(c)
        req = self.auth.last()
        self.assertEqual("NONE", req.get("Auth-SSL-Verify"))
        self.assertEqual(["Auth-SSL", "Auth-SSL-Protocol", "Auth-SSL-Cipher",
                          "Auth-SSL-Verify"],
                         [n for n, _ in self.ssl_headers(req)])

    def test_good_certificate(self):
        self.start_cc("optional")
        c = self.tls_client("alice")
        c.expect_prefix("* OK ")
        self.login(c)
        self.assertEqual("SUCCESS", self.auth.last().get("Auth-SSL-Verify"))

    def test_unknown_ca_gets_bye(self):
        self.start_cc("optional")
        c = self.tls_client("stranger")
        self.expect_bye(c, "SSL certificate error")

    def test_no_ca_unknown_ca_passes_as_failed(self):
        self.start_tls(ssl_verify_client="optional_no_ca")
        c = self.tls_client("stranger")
        c.expect_prefix("* OK ")
        self.login(c)
        req = self.auth.last()
        self.assertTrue(req.get("Auth-SSL-Verify", "").startswith("FAILED:"),
                        req)
        self.assertEqual("CN=stranger,O=imaprelayd regress",
                         req.get("Auth-SSL-Subject"))
        self.assertEqual("CN=other CA", req.get("Auth-SSL-Issuer"))
        self.assertEqual(self.fingerprint("stranger"),
                         req.get("Auth-SSL-Fingerprint"))

    def test_no_ca_with_ca_verifies(self):
        self.start_cc("optional_no_ca")
        c = self.tls_client("alice")
        c.expect_prefix("* OK ")
        self.login(c)
        self.assertEqual("SUCCESS", self.auth.last().get("Auth-SSL-Verify"))

    def test_no_ca_expired_still_refused(self):
        # as nginx: optional_no_ca forgives an unknown issuer only
        self.start_cc("optional_no_ca")
        c = self.tls_client("expired")
        self.expect_bye(c, "SSL certificate error")

    def test_verify_off_sends_no_verify_header(self):
        self.start_tls()
        c = self.tls_client("alice")
        c.expect_prefix("* OK ")
        self.login(c)
        self.assertEqual(["Auth-SSL", "Auth-SSL-Protocol", "Auth-SSL-Cipher"],
                         [n for n, _ in self.ssl_headers(self.auth.last())])


class PassCert(ClientCertCase):

    def test_pass_client_cert_sends_escaped_pem(self):
        self.start_cc("on", auth_http_pass_client_cert="on")
        c = self.tls_client("alice")
        c.expect_prefix("* OK ")
        self.login(c)
        req = self.auth.last()
        raw = req.get("Auth-SSL-Cert")
        self.assertIsNotNone(raw, req)
        self.assertTrue(raw.startswith("-----BEGIN%20CERTIFICATE-----%0A"),
                        raw[:60])
        self.assertNotIn(" ", raw)
        with open(self.pem("alice.crt")) as f:
            want = ssl.PEM_cert_to_DER_cert(f.read())
        got = ssl.PEM_cert_to_DER_cert(authd.pct_decode(raw).decode())
        self.assertEqual(want, got)
        self.assertEqual("Auth-SSL-Cert", self.ssl_headers(req)[-1][0])

    def test_pass_client_cert_inherited_from_mail(self):
        port = util.free_port()
        srv = self.tls_server(ssl_verify_client="optional",
                              ssl_client_certificate=self.pem("ca.crt"))
        srv["listen"] = ("127.0.0.1:%d" % port, "ssl")
        from lib import daemon as daemonlib
        text = self.config(port=port, server=srv,
                           mail={"auth_http_pass_client_cert": "on"})
        d = daemonlib.Daemon(self.tmp, text, port, name="imaprelayd-pc")
        self._daemons.append(d)
        d.start()
        self._daemon = self._daemon or d
        c = self.connect(port=port, greeting=False)
        c.sock = self.client_context("alice").wrap_socket(
            c.sock, server_hostname="localhost")
        c.expect_prefix("* OK ")
        self.login(c)
        self.assertIsNotNone(self.auth.last().get("Auth-SSL-Cert"))

    def test_no_cert_header_without_certificate(self):
        self.start_cc("optional", auth_http_pass_client_cert="on")
        c = self.tls_client()
        c.expect_prefix("* OK ")
        self.login(c)
        self.assertIsNone(self.auth.last().get("Auth-SSL-Cert"))


class External(ClientCertCase):

    def external_hook(self):
        users = self.dovecot.users
        backend = self.auth.default_backend

        def hook(req):
            if (req.get("Auth-Method") or "") != "external":
                return None
            if req.password != "" or req.user not in users:
                return [("Auth-Status", "Invalid login or password")]
            return [("Auth-Status", "OK"), ("Auth-Server", backend[0]),
                    ("Auth-Port", str(backend[1])),
                    ("Auth-Pass", users[req.user])]
        self.auth.hook = hook

    def test_caps_advertise_external_last(self):
        self.start_cc("on", imap_auth=("plain", "login", "cram-md5",
                                       "external"))
        c = self.tls_client("alice")
        want = caps(auth=("PLAIN", "LOGIN", "CRAM-MD5")) + " AUTH=EXTERNAL"
        c.expect("* OK [CAPABILITY %s] IMAP4 ready" % want)

    def test_external_not_enabled(self):
        self.start_cc("on")
        c = self.tls_client("alice")
        c.expect_prefix("* OK ")
        c.cmd("a AUTHENTICATE EXTERNAL " +
              base64.b64encode(b"alice").decode())
        c.expect("a NO unsupported authentication mechanism")

    def test_external_sasl_ir_end_to_end(self):
        self.external_hook()
        self.start_cc("on", imap_auth=("plain", "external"))
        c = self.tls_client("alice")
        c.expect_prefix("* OK ")
        c.cmd("a AUTHENTICATE EXTERNAL " +
              base64.b64encode(b"alice").decode())
        lines = c.read_until_tagged("a")
        self.assertTrue(lines[-1].startswith("a OK"), lines)
        c.cmd("b SELECT INBOX")
        lines = c.read_until_tagged("b")
        self.assertTrue(lines[-1].startswith("b OK"), lines)
        req = self.auth.last()
        self.assertEqual("external", req.get("Auth-Method"))
        self.assertEqual("alice", req.user)
        self.assertEqual("", req.get("Auth-Pass"))
        self.assertEqual("SUCCESS", req.get("Auth-SSL-Verify"))

    def test_external_with_continuation(self):
        self.external_hook()
        self.start_cc("on", imap_auth=("plain", "external"))
        c = self.tls_client("alice")
        c.expect_prefix("* OK ")
        c.cmd("a AUTHENTICATE EXTERNAL")
        c.expect("+ VXNlcm5hbWU6")
        c.cmd(base64.b64encode(b"alice").decode())
        lines = c.read_until_tagged("a")
        self.assertTrue(lines[-1].startswith("a OK"), lines)

    def test_external_empty_name_refused(self):
        self.start_cc("on", imap_auth=("plain", "external"))
        c = self.tls_client("alice")
        c.expect_prefix("* OK ")
        c.cmd("a AUTHENTICATE EXTERNAL =")
        c.expect("a BAD invalid SASL message")

    def test_external_without_auth_pass_unavailable(self):
        # the auth service must return the password: without it the
        # proxy cannot log in to the backend
        self.start_cc("on", imap_auth=("plain", "external"))
        self.auth.hook = lambda req: [
            ("Auth-Status", "OK"),
            ("Auth-Server", self.auth.default_backend[0]),
            ("Auth-Port", str(self.auth.default_backend[1]))]
        c = self.tls_client("alice")
        c.expect_prefix("* OK ")
        c.cmd("a AUTHENTICATE EXTERNAL " +
              base64.b64encode(b"alice").decode())
        c.expect("a NO [UNAVAILABLE] authentication service unavailable")


class Configuration(ClientCertCase):

    def check(self, server):
        from lib import daemon as daemonlib
        text = self.config(server=server)
        path = os.path.join(self.tmp, "check.conf")
        with open(path, "w") as f:
            f.write(text)
        return daemonlib.check_config(path)

    def listen_ssl(self, **extra):
        s = self.tls_server(listen=("127.0.0.1:%d" % util.free_port(),
                                    "ssl"))
        s.update(extra)
        return s

    def test_verify_without_ca_refused(self):
        rc, out = self.check(self.listen_ssl(ssl_verify_client="on"))
        self.assertNotEqual(0, rc)
        self.assertRegex(out, r'check\.conf:\d+: no ssl_client_certificate '
                         r'or ssl_trusted_certificate for ssl_verify_client')

    def test_optional_no_ca_without_ca_accepted(self):
        rc, out = self.check(self.listen_ssl(
            ssl_verify_client="optional_no_ca"))
        self.assertEqual(0, rc, out)

    def test_ca_file_without_certificate_refused(self):
        rc, out = self.check(self.listen_ssl(
            ssl_verify_client="on",
            ssl_client_certificate=self.pem("alice.key")))
        self.assertNotEqual(0, rc)
        self.assertIn("alice.key", out)

    def test_missing_ca_file_named(self):
        missing = os.path.join(self.tmp, "missing-ca.crt")
        rc, out = self.check(self.listen_ssl(ssl_verify_client="on",
                                             ssl_client_certificate=missing))
        self.assertNotEqual(0, rc)
        self.assertIn('cannot read "%s"' % missing, out)

    def test_full_configuration(self):
        rc, out = self.check(self.listen_ssl(
            ssl_verify_client="optional", ssl_verify_depth="2",
            ssl_client_certificate=self.pem("ca.crt"),
            ssl_trusted_certificate=self.pem("other.crt"),
            auth_http_pass_client_cert="on",
            imap_auth=("plain", "external")))
        self.assertEqual(0, rc, out)


if __name__ == "__main__":
    import unittest
    unittest.main()
