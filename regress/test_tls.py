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

"""TLS towards clients: implicit TLS (listen ... ssl), STARTTLS and
starttls only, ALPN (and its refusal, against ALPACA), the certificate
chosen by the key types a client can verify, the Auth-SSL headers,
handshake limits and the certificate checks at start.  A CA and server
certificates (RSA and ECDSA) are made with openssl for the whole
class."""

import imaplib
import os
import shutil
import socket
import ssl
import subprocess
import tempfile
import unittest

from lib import daemon as daemonlib
from lib import util
from lib.case import DaemonTestCase, caps, run_tmpdir


def _openssl(*args, cwd):
    subprocess.run(["openssl"] + list(args), cwd=cwd, check=True,
                   stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                   timeout=60)


def make_pki(d):
    """ca.crt, and rsa.crt/rsa.key (CN localhost, SAN localhost and
    127.0.0.1), ecdsa.crt/ecdsa.key (SAN ecdsa.test) and
    ecdsa-local.crt/ecdsa-local.key (P-256, the same names as rsa.crt),
    all signed by the CA."""
    _openssl("req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "2",
             "-subj", "/CN=imaprelayd regress CA", "-keyout", "ca.key",
             "-out", "ca.crt", cwd=d)
    for name, key, san in (
            ("rsa", ["-newkey", "rsa:2048"],
             "subjectAltName=DNS:localhost,IP:127.0.0.1"),
            ("ecdsa", ["-newkey", "ec", "-pkeyopt",
                       "ec_paramgen_curve:prime256v1"],
             "subjectAltName=DNS:ecdsa.test"),
            ("ecdsa-local", ["-newkey", "ec", "-pkeyopt",
                             "ec_paramgen_curve:prime256v1"],
             "subjectAltName=DNS:localhost,IP:127.0.0.1")):
        _openssl("req", "-new", "-nodes", *key, "-subj",
                 "/CN=%s" % ("ecdsa.test" if name == "ecdsa" else
                             "localhost"),
                 "-keyout", name + ".key", "-out", name + ".csr", cwd=d)
        with open(os.path.join(d, name + ".ext"), "w") as f:
            f.write(san + "\n")
        _openssl("x509", "-req", "-in", name + ".csr", "-CA", "ca.crt",
                 "-CAkey", "ca.key", "-CAcreateserial", "-days", "2",
                 "-extfile", name + ".ext", "-out", name + ".crt", cwd=d)
    for f in os.listdir(d):
        os.chmod(os.path.join(d, f), 0o644)


class TlsCase(DaemonTestCase):

    @classmethod
    def setUpClass(cls):
        super().setUpClass()
        if shutil.which("openssl") is None:
            raise unittest.SkipTest("no openssl (Debian: apt-get install "
                                    "openssl)")
        cls.pki = tempfile.mkdtemp(prefix="tls-pki-", dir=run_tmpdir())
        os.chmod(cls.pki, 0o755)
        make_pki(cls.pki)

    @classmethod
    def tearDownClass(cls):
        shutil.rmtree(cls.pki, ignore_errors=True)
        super().tearDownClass()

    def pem(self, name):
        return os.path.join(self.pki, name)

    def tls_server(self, **extra):
        s = {"ssl_certificate": [self.pem("rsa.crt"), self.pem("ecdsa.crt")],
             "ssl_certificate_key": [self.pem("rsa.key"),
                                     self.pem("ecdsa.key")]}
        s.update(extra)
        return s

    def start_tls(self, ssl_listen=True, **server):
        """A daemon whose server listens with "ssl" (or in the clear
        for STARTTLS); server adds directives."""
        port = util.free_port()
        srv = self.tls_server(**server)
        srv["listen"] = ("127.0.0.1:%d" % port, "ssl") if ssl_listen \
            else "127.0.0.1:%d" % port
        text = self.config(port=port, server=srv)
        d = daemonlib.Daemon(self.tmp, text, port,
                             name="imaprelayd%d" % len(self._daemons))
        self._daemons.append(d)
        d.start()
        if self._daemon is None:
            self._daemon = d
        return d

    def context(self, alpn=None):
        ctx = ssl.create_default_context(cafile=self.pem("ca.crt"))
        if alpn is not None:
            ctx.set_alpn_protocols(alpn)
        return ctx

    def imaps(self, port=None, alpn=None, hostname="localhost"):
        """A TLS socket to the proxy, handshake done."""
        sock = socket.create_connection(("127.0.0.1", port or self.port),
                                        timeout=30)
        t = self.context(alpn).wrap_socket(sock, server_hostname=hostname)
        self._clients.append(t)
        return t

    def raw_tls(self, c, hostname="localhost", alpn=None):
        """Turn a RawImap (its buffer empty) into a TLS client."""
        self.assertEqual(b"", c.buf)
        c.sock = self.context(alpn).wrap_socket(c.sock,
                                                server_hostname=hostname)
        return c


class ImplicitTls(TlsCase):

    def test_imaplib_ssl_login_select(self):
        self.start_tls()
        ctx = self.context()
        # imaplib checks the name against 127.0.0.1: the SAN has it
        c = imaplib.IMAP4_SSL("127.0.0.1", self.port, ssl_context=ctx,
                              timeout=30)
        self._clients.append(c)
        self.assertNotIn("STARTTLS", c.capabilities)
        c.login("alice", self.password("alice"))
        typ, _ = c.select("INBOX")
        self.assertEqual("OK", typ)
        c.logout()

    def test_large_message_both_ways(self):
        # records larger than the room left in a buffer: libtls keeps
        # the rest, which no socket event announces
        self.start_tls(proxy_buffer="4k")
        c = imaplib.IMAP4_SSL("127.0.0.1", self.port,
                              ssl_context=self.context(), timeout=30)
        self._clients.append(c)
        c.login("alice", self.password("alice"))
        body = b"Subject: big\r\n\r\n" + b"".join(
            b"%06d %s\r\n" % (i, b"x" * 70) for i in range(3000))
        self.assertEqual("OK", c.append("INBOX", None, None, body)[0])
        typ, data = c.select("INBOX")
        n = data[0].decode()
        typ, data = c.fetch(n, "(BODY.PEEK[])")
        self.assertEqual("OK", typ)
        self.assertEqual(body, data[0][1])
        c.logout()

    def test_greeting_after_handshake_with_tls_caps(self):
        self.start_tls(starttls="on")
        c = self.connect(greeting=False)
        self.raw_tls(c)
        c.expect("* OK [CAPABILITY %s] IMAP4 ready" % caps())

    def test_openssl_s_client_sees_greeting(self):
        self.start_tls()
        r = subprocess.run(["openssl", "s_client", "-connect",
                            "127.0.0.1:%d" % self.port, "-quiet",
                            "-CAfile", self.pem("ca.crt")],
                           input=b"a LOGOUT\r\n", capture_output=True,
                           timeout=30)
        self.assertIn(b"* OK [CAPABILITY", r.stdout)
        self.assertIn(b"a OK LOGOUT completed", r.stdout)

    def test_curl_imaps_lists_inbox(self):
        if shutil.which("curl") is None:
            self.skipTest("no curl (Debian: apt-get install curl)")
        self.start_tls()
        r = subprocess.run(["curl", "-sS", "--max-time", "20", "--cacert",
                            self.pem("ca.crt"), "--user",
                            "alice:" + self.password("alice"),
                            "imaps://localhost:%d/" % self.port],
                           capture_output=True, timeout=30)
        self.assertEqual(0, r.returncode, r.stderr)
        self.assertIn(b"INBOX", r.stdout)

    def test_ecdsa_pair_chosen_by_name(self):
        self.start_tls()
        t = self.imaps(hostname="ecdsa.test")
        cert = t.getpeercert()
        names = [v for k, v in cert.get("subjectAltName", ())]
        self.assertIn("ecdsa.test", names)
        self.assertIn(b"* OK", t.recv(4096))

    def test_auth_request_says_ssl(self):
        self.start_tls()
        c = self.connect(greeting=False)
        self.raw_tls(c)
        c.expect_prefix("* OK ")
        self.login(c)
        req = self.auth.last()
        self.assertEqual("on", req.get("Auth-SSL"))
        self.assertTrue(req.get("Auth-SSL-Protocol", "").startswith("TLSv1"),
                        req)
        self.assertTrue(req.get("Auth-SSL-Cipher"), req)
        names = [n for n, _ in req.auth_headers()]
        i = names.index("Client-IP")
        self.assertEqual(["Auth-SSL", "Auth-SSL-Protocol", "Auth-SSL-Cipher"],
                         names[i + 1:i + 4])

    def test_plaintext_auth_request_has_no_ssl_headers(self):
        self.start_tls(ssl_listen=False, starttls="on")
        c = self.connect()
        self.login(c)
        self.assertIsNone(self.auth.last().get("Auth-SSL"))

    def test_alpn_imap_selected(self):
        self.start_tls()
        t = self.imaps(alpn=["imap"])
        self.assertEqual("imap", t.selected_alpn_protocol())
        self.assertIn(b"* OK", t.recv(4096))

    def test_alpn_without_imap_fails(self):
        # ALPACA: a connection meant for another protocol is refused
        # with no_application_protocol, never answered as IMAP
        d = self.start_tls()
        mark = d.mark()
        r = s_client(self.port, "-alpn", "h2")
        self.assertNotEqual(0, r.returncode)
        self.assertIn(b"no application protocol", r.stderr)
        self.assertNotIn(b"* OK", r.stdout)
        d.wait_for_log(r'session end client=127\.0\.0\.1:\d+ .*'
                       r'reason="tls: client ALPN lacks imap"', since=mark)

    def test_alpn_without_imap_fails_python(self):
        self.start_tls()
        with self.assertRaisesRegex(ssl.SSLError,
                                    "no application protocol"):
            self.imaps(alpn=["h2", "http/1.1"])

    def test_alpn_list_with_imap_selects_imap(self):
        self.start_tls()
        r = s_client(self.port, "-alpn", "h2,imap", "-CAfile",
                     self.pem("ca.crt"))
        self.assertEqual(0, r.returncode, r.stderr)
        self.assertIn(b"ALPN protocol: imap", r.stdout)
        self.assertIn(b"a OK LOGOUT completed", r.stdout)

    def test_no_alpn_still_works(self):
        self.start_tls()
        r = s_client(self.port, "-CAfile", self.pem("ca.crt"))
        self.assertEqual(0, r.returncode, r.stderr)
        self.assertIn(b"No ALPN negotiated", r.stdout)
        self.assertIn(b"a OK LOGOUT completed", r.stdout)

    def test_alpn_refused_after_starttls(self):
        d = self.start_tls(ssl_listen=False, starttls="on")
        mark = d.mark()
        r = s_client(self.port, "-starttls", "imap", "-alpn", "h2")
        self.assertNotEqual(0, r.returncode)
        self.assertIn(b"no application protocol", r.stderr)
        d.wait_for_log(r'reason="tls: client ALPN lacks imap"', since=mark)

    def test_fragmented_hello_is_read(self):
        # a ClientHello split into one-byte records and sent in pieces
        # reaches libtls whole; the session then goes on as usual
        self.start_tls()
        s = socket.create_connection(("127.0.0.1", self.port), timeout=10)
        self._clients.append(s)
        hello = client_hello_records(self.context(alpn=["imap"]), 1)
        for i in range(0, len(hello), 50):
            s.sendall(hello[i:i + 50])
        s.settimeout(10)
        # the server's flight begins with a handshake record
        self.assertEqual(22, s.recv(1)[0])

    def test_alpn_refused_past_inserted_records(self):
        # records a man in the middle can add without breaking the
        # handshake (a warning alert, an empty record) do not hide
        # the ALPN list
        d = self.start_tls()
        mark = d.mark()
        s = socket.create_connection(("127.0.0.1", self.port), timeout=10)
        self._clients.append(s)
        hello = client_hello_records(self.context(alpn=["h2"]), 200)
        s.sendall(b"\x15\x03\x03\x00\x02\x01\x5a" +
                  b"\x16\x03\x01\x00\x00" + hello)
        s.settimeout(10)
        self.assertEqual(b"\x15\x03\x03\x00\x02\x02\x78", s.recv(100))
        d.wait_for_log(r'session end client=%s:%d .*reason="tls: client '
                       r'ALPN lacks imap"' % s.getsockname()[:2],
                       since=mark)

    def test_hello_in_too_many_records_refused(self):
        # bounded: a hello of 16000 bytes in one-byte records does not
        # fit the buffer, and is not passed to libtls unread either
        d = self.start_tls()
        mark = d.mark()
        s = socket.create_connection(("127.0.0.1", self.port), timeout=10)
        self._clients.append(s)
        msg = b"\x01\x00\x3e\x80" + b"\x03\x03" + b"\x00" * 3000
        try:
            s.sendall(b"".join(b"\x16\x03\x01\x00\x01" + msg[i:i + 1]
                               for i in range(len(msg))))
        except (BrokenPipeError, ConnectionResetError):
            pass
        d.wait_for_log(r'session end client=%s:%d .*reason="tls: client '
                       r'hello too fragmented"' % s.getsockname()[:2],
                       since=mark)

    def test_stalled_handshake_closed_after_timeout(self):
        d = self.start_tls(timeout="1s")
        mark = d.mark()
        stalled = socket.create_connection(("127.0.0.1", self.port),
                                           timeout=10)
        self._clients.append(stalled)
        # another session works meanwhile
        t = self.imaps()
        self.assertIn(b"* OK", t.recv(4096))
        d.wait_for_log(r'session end client=%s:%d .*reason="tls handshake '
                       r'timeout"' % stalled.getsockname()[:2], since=mark)
        stalled.settimeout(5)
        self.assertEqual(b"", stalled.recv(100))

    def test_handshake_failure_closes_session_with_reason(self):
        d = self.start_tls()
        s = socket.create_connection(("127.0.0.1", self.port), timeout=10)
        self._clients.append(s)
        s.sendall(b"a CAPABILITY\r\n")
        s.settimeout(10)
        try:
            while s.recv(4096):
                pass
        except ConnectionResetError:
            pass
        d.wait_for_log(r'session end client=%s:%d .*reason="tls handshake '
                       r'failed: ' % s.getsockname()[:2])


def s_client(port, *args):
    """openssl s_client to the proxy, saying LOGOUT; the result."""
    cmd = ["openssl", "s_client", "-connect", "127.0.0.1:%d" % port,
           "-ign_eof"] + list(args)
    return subprocess.run(cmd, input=b"a LOGOUT\r\n", capture_output=True,
                          timeout=30)


def client_hello_records(ctx, size):
    """The ClientHello ctx sends, cut into records of size bytes."""
    inc, out = ssl.MemoryBIO(), ssl.MemoryBIO()
    obj = ctx.wrap_bio(inc, out, server_hostname="localhost")
    try:
        obj.do_handshake()
    except ssl.SSLWantReadError:
        pass
    raw = out.read()
    assert raw[0] == 22
    msg = raw[5:5 + int.from_bytes(raw[3:5], "big")]
    recs = b""
    for i in range(0, len(msg), size):
        part = msg[i:i + size]
        recs += raw[:3] + len(part).to_bytes(2, "big") + part
    return recs


class KeyType(TlsCase):
    """An RSA and an ECDSA pair for the same names: each client gets the
    certificate it can verify, as with nginx."""

    def start_pairs(self, first="rsa", **extra):
        other = "ecdsa-local" if first == "rsa" else "rsa"
        return self.start_tls(
            ssl_certificate=[self.pem(first + ".crt"),
                             self.pem(other + ".crt")],
            ssl_certificate_key=[self.pem(first + ".key"),
                                 self.pem(other + ".key")], **extra)

    def key_type(self, *args):
        """The public key algorithm of the certificate s_client saw."""
        r = s_client(self.port, "-CAfile", self.pem("ca.crt"),
                     "-verify_return_error", *args)
        self.assertEqual(0, r.returncode, r.stderr)
        self.assertIn(b"a OK LOGOUT completed", r.stdout)
        pem = r.stdout[r.stdout.index(b"-----BEGIN CERTIFICATE-----"):
                       r.stdout.index(b"-----END CERTIFICATE-----") + 25]
        t = subprocess.run(["openssl", "x509", "-noout", "-text"],
                           input=pem, capture_output=True, check=True,
                           timeout=30)
        for line in t.stdout.decode().splitlines():
            if "Public Key Algorithm:" in line:
                alg = line.split(":", 1)[1].strip()
                return {"rsaEncryption": "rsa",
                        "id-ecPublicKey": "ecdsa"}.get(alg, alg)
        self.fail("no key algorithm in %r" % t.stdout)

    def test_tls13_ecdsa_sigalgs_get_ecdsa(self):
        self.start_pairs()
        self.assertEqual("ecdsa", self.key_type("-tls1_3", "-sigalgs",
                                                "ECDSA+SHA256"))

    def test_tls13_rsa_sigalgs_get_rsa(self):
        self.start_pairs(first="ecdsa-local")
        self.assertEqual("rsa", self.key_type(
            "-tls1_3", "-sigalgs", "RSA-PSS+SHA256:RSA+SHA256"))

    def test_tls12_ecdhe_rsa_gets_rsa(self):
        self.start_pairs(first="ecdsa-local")
        self.assertEqual("rsa", self.key_type(
            "-tls1_2", "-cipher", "ECDHE-RSA-AES128-GCM-SHA256"))

    def test_tls12_ecdhe_ecdsa_gets_ecdsa(self):
        self.start_pairs()
        self.assertEqual("ecdsa", self.key_type(
            "-tls1_2", "-cipher", "ECDHE-ECDSA-AES128-GCM-SHA256"))

    def test_default_client_gets_ecdsa(self):
        self.start_pairs()
        self.assertEqual("ecdsa", self.key_type())

    def test_tls12_only_server_decides_by_cipher(self):
        # the client offers TLS 1.3 with ECDSA schemes, but the server
        # speaks TLS 1.2 only: the cipher suites decide
        self.start_pairs(first="ecdsa-local", ssl_protocols="TLSv1.2")
        self.assertEqual("rsa", self.key_type(
            "-cipher", "ECDHE-RSA-AES128-GCM-SHA256"))

    def test_other_names_stay_for_sni(self):
        # rsa.crt for localhost, ecdsa.crt for ecdsa.test: no stand-ins,
        # a client without SNI gets the first pair whatever it verifies
        self.start_tls()
        self.assertEqual("rsa", self.key_type("-sigalgs",
                                              "ECDSA+SHA256:RSA-PSS+SHA256"))

    def test_imaplib_login_with_both_pairs(self):
        self.start_pairs()
        c = imaplib.IMAP4_SSL("127.0.0.1", self.port,
                              ssl_context=self.context(), timeout=30)
        self._clients.append(c)
        c.login("alice", self.password("alice"))
        self.assertEqual("OK", c.select("INBOX")[0])
        c.logout()


class StartTls(TlsCase):

    def test_caps_offer_starttls(self):
        self.start_tls(ssl_listen=False, starttls="on")
        c = self.connect(greeting=False)
        want = caps() + " STARTTLS"
        c.expect("* OK [CAPABILITY %s] IMAP4 ready" % want)
        c.cmd("a CAPABILITY")
        c.expect("* CAPABILITY " + want)
        c.expect("a OK CAPABILITY completed")

    def test_imaplib_starttls_then_login(self):
        self.start_tls(ssl_listen=False, starttls="on")
        c = self.imap()
        self.assertIn("STARTTLS", c.capabilities)
        c.starttls(ssl_context=self.context())
        c.capability()
        self.assertNotIn("STARTTLS", c.capabilities)
        c.login("alice", self.password("alice"))
        self.assertEqual("OK", c.select("INBOX")[0])
        c.logout()
        self.assertEqual("on", self.auth.last().get("Auth-SSL"))

    def test_after_starttls_caps_and_no_new_greeting(self):
        self.start_tls(ssl_listen=False, starttls="on")
        c = self.connect()
        c.cmd("a STARTTLS")
        c.expect("a OK Begin TLS negotiation now")
        self.raw_tls(c)
        c.cmd("b CAPABILITY")
        # the first line after the handshake is our answer, not a greeting
        c.expect("* CAPABILITY " + caps())
        c.expect("b OK CAPABILITY completed")

    def test_pipelined_plaintext_discarded(self):
        self.start_tls(ssl_listen=False, starttls="on")
        c = self.connect()
        c.send(b"a STARTTLS\r\nb NOOP\r\n")
        c.expect("a OK Begin TLS negotiation now")
        self.raw_tls(c)
        c.cmd("c NOOP")
        lines = c.read_until_tagged("c")
        self.assertEqual(["c OK NOOP completed"], lines)

    def test_starttls_inside_tls_is_bad(self):
        self.start_tls(ssl_listen=False, starttls="on")
        c = self.connect()
        c.cmd("a STARTTLS")
        c.expect("a OK Begin TLS negotiation now")
        self.raw_tls(c)
        c.cmd("b STARTTLS")
        c.expect("b BAD invalid command")

    def test_starttls_on_implicit_tls_is_bad(self):
        self.start_tls(starttls="on")
        c = self.connect(greeting=False)
        self.raw_tls(c)
        c.expect_prefix("* OK ")
        c.cmd("a STARTTLS")
        c.expect("a BAD invalid command")

    def test_starttls_off_is_bad(self):
        self.start()
        c = self.connect()
        c.cmd("a STARTTLS")
        c.expect("a BAD invalid command")


class StartTlsOnly(TlsCase):

    def test_caps_exact(self):
        self.start_tls(ssl_listen=False, starttls="only")
        want = "IMAP4 IMAP4rev1 UIDPLUS SASL-IR LITERAL+ ID STARTTLS " \
               "LOGINDISABLED"
        c = self.connect(greeting=False)
        c.expect("* OK [CAPABILITY %s] IMAP4 ready" % want)
        c.cmd("a CAPABILITY")
        c.expect("* CAPABILITY " + want)
        c.expect("a OK CAPABILITY completed")

    def test_login_before_tls_refused(self):
        self.start_tls(ssl_listen=False, starttls="only")
        c = self.connect()
        c.cmd('a LOGIN alice "%s"' % self.password("alice"))
        c.expect("a NO [PRIVACYREQUIRED] TLS is required")
        c.cmd("b AUTHENTICATE PLAIN")
        c.expect("b NO [PRIVACYREQUIRED] TLS is required")
        c.cmd("c NOOP")
        c.expect("c OK NOOP completed")

    def test_login_after_starttls(self):
        self.start_tls(ssl_listen=False, starttls="only")
        c = self.connect()
        c.cmd("a STARTTLS")
        c.expect("a OK Begin TLS negotiation now")
        self.raw_tls(c)
        c.cmd("b CAPABILITY")
        c.expect("* CAPABILITY " + caps())
        c.expect("b OK CAPABILITY completed")
        self.login(c, tag="c")


class Configuration(TlsCase):

    def check(self, server):
        text = self.config(server=server)
        path = os.path.join(self.tmp, "check.conf")
        with open(path, "w") as f:
            f.write(text)
        return daemonlib.check_config(path)

    def test_unreadable_key_named(self):
        missing = os.path.join(self.tmp, "missing.key")
        rc, out = self.check(self.tls_server(
            listen=("127.0.0.1:%d" % util.free_port(), "ssl"),
            ssl_certificate=self.pem("rsa.crt"),
            ssl_certificate_key=missing))
        self.assertNotEqual(0, rc)
        self.assertIn('cannot read "%s"' % missing, out)

    def test_key_not_matching_certificate(self):
        rc, out = self.check(self.tls_server(
            listen=("127.0.0.1:%d" % util.free_port(), "ssl"),
            ssl_certificate=self.pem("rsa.crt"),
            ssl_certificate_key=self.pem("ecdsa.key")))
        self.assertNotEqual(0, rc)
        self.assertIn("rsa.crt", out)

    def test_listen_ssl_without_certificate(self):
        rc, out = self.check({"listen": ("127.0.0.1:%d" % util.free_port(),
                                         "ssl")})
        self.assertNotEqual(0, rc)
        self.assertRegex(out, r'check\.conf:\d+: no "ssl_certificate" is '
                         r'defined for the "listen \.\.\. ssl" directive')

    def test_valid_tls_configuration(self):
        rc, out = self.check(self.tls_server(
            listen=("127.0.0.1:%d" % util.free_port(), "ssl"),
            ssl_protocols=("TLSv1.2", "TLSv1.3"),
            ssl_ciphers="HIGH:!aNULL:!MD5", ssl_prefer_server_ciphers="on",
            ssl_ecdh_curve="prime256v1:secp384r1",
            ssl_session_timeout="10m", ssl_session_tickets="off",
            ssl_session_cache="shared:SSL:10m"))
        self.assertEqual(0, rc, out)


if __name__ == "__main__":
    unittest.main()
