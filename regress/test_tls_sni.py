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

"""Beyond nginx: several server blocks on one address, told apart by
the TLS server name (SNI).  Each gets its certificate and serves with
its own settings; a client without SNI, or with a name no server has,
gets the first server."""

import os
import shutil
import socket
import ssl
import subprocess
import tempfile
import unittest

from lib import daemon as daemonlib
from lib import util
from lib.case import DaemonTestCase, run_tmpdir
from test_tls import _openssl, make_pki


def make_names(d):
    """a.crt/a.key for a.test and b.crt/b.key for b.test, by ca.crt."""
    for name in ("a", "b"):
        _openssl("req", "-new", "-nodes", "-newkey", "rsa:2048", "-subj",
                 "/CN=%s.test" % name, "-keyout", name + ".key",
                 "-out", name + ".csr", cwd=d)
        with open(os.path.join(d, name + ".ext"), "w") as f:
            f.write("subjectAltName=DNS:%s.test\n" % name)
        _openssl("x509", "-req", "-in", name + ".csr", "-CA", "ca.crt",
                 "-CAkey", "ca.key", "-CAcreateserial", "-days", "2",
                 "-extfile", name + ".ext", "-out", name + ".crt", cwd=d)
    for f in os.listdir(d):
        os.chmod(os.path.join(d, f), 0o644)


class SniCase(DaemonTestCase):

    @classmethod
    def setUpClass(cls):
        super().setUpClass()
        if shutil.which("openssl") is None:
            raise unittest.SkipTest("no openssl")
        cls.pki = tempfile.mkdtemp(prefix="sni-pki-", dir=run_tmpdir())
        os.chmod(cls.pki, 0o755)
        make_pki(cls.pki)
        make_names(cls.pki)

    @classmethod
    def tearDownClass(cls):
        shutil.rmtree(cls.pki, ignore_errors=True)
        super().tearDownClass()

    def pem(self, name):
        return os.path.join(self.pki, name)

    def start_sni(self, ssl_listen=True, b_extra=None, a_extra=None):
        port = util.free_port()
        listen = ("127.0.0.1:%d" % port, "ssl") if ssl_listen \
            else "127.0.0.1:%d" % port
        a = {"listen": listen, "server_name": "a.test",
             "imap_capabilities": "IMAP4rev1 ALPHA",
             "ssl_certificate": self.pem("a.crt"),
             "ssl_certificate_key": self.pem("a.key")}
        b = {"listen": listen, "server_name": "b.test",
             "imap_capabilities": "IMAP4rev1 BRAVO",
             "ssl_certificate": self.pem("b.crt"),
             "ssl_certificate_key": self.pem("b.key"),
             "auth_http": self.auth.url, "protocol": "imap"}
        if not ssl_listen:
            a["starttls"] = "on"
            b["starttls"] = "on"
        a.update(a_extra or {})
        b.update(b_extra or {})
        d = daemonlib.Daemon(self.tmp, self.config(port=port, server=a,
                                                   servers=[b]),
                             port, name="imaprelayd%d" % len(self._daemons))
        self._daemons.append(d)
        d.start()
        if self._daemon is None:
            self._daemon = d
        return d

    def s_client(self, servername=None, starttls=False):
        """openssl s_client: (peer certificate subject, what the server
        said first)."""
        args = ["openssl", "s_client", "-connect",
                "127.0.0.1:%d" % self.port, "-CAfile", self.pem("ca.crt"),
                "-ign_eof"]
        args += ["-servername", servername] if servername else ["-noservername"]
        if starttls:
            args += ["-starttls", "imap"]
        p = subprocess.run(args, input=b"a CAPABILITY\r\nb LOGOUT\r\n",
                           stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                           timeout=30)
        out = p.stdout.decode("utf-8", "replace")
        subject = [l for l in out.splitlines()
                   if l.startswith("subject=")]
        return (subject[0] if subject else ""), out

    def tls_imap(self, servername):
        ctx = ssl.create_default_context(cafile=self.pem("ca.crt"))
        sock = socket.create_connection(("127.0.0.1", self.port),
                                        timeout=30)
        t = ctx.wrap_socket(sock, server_hostname=servername)
        self._clients.append(t)
        return t


class SniImplicit(SniCase):

    def test_each_name_its_certificate_and_server(self):
        self.start_sni()
        for name, caps in (("a.test", "ALPHA"), ("b.test", "BRAVO")):
            subject, out = self.s_client(name)
            self.assertIn("CN = %s" % name, subject)
            self.assertIn("* OK [CAPABILITY IMAP4rev1 %s " % caps, out)
            self.assertIn("] %s IMAP4 ready" % name, out)
            self.assertIn("* CAPABILITY IMAP4rev1 %s " % caps, out)
            self.assertIn("Verify return code: 0 (ok)", out)

    def test_no_sni_or_unknown_name_gets_the_first(self):
        self.start_sni()
        for name in (None, "c.test"):
            subject, out = self.s_client(name)
            self.assertIn("CN = a.test", subject)
            self.assertIn("IMAP4rev1 ALPHA", out)
            self.assertIn("] a.test IMAP4 ready", out)

    def test_login_uses_the_chosen_server(self):
        # a's auth service is down: only b's works
        self.start_sni(a_extra={"auth_http": "http://127.0.0.1:1/auth"})
        t = self.tls_imap("b.test")
        self.assertIn(b"BRAVO", t.recv(4096))
        pw = self.password("alice")
        t.sendall(b"a LOGIN alice %s\r\n" % pw.encode())
        buf = b""
        while b"a OK" not in buf and b"a NO" not in buf:
            chunk = t.recv(4096)
            if not chunk:
                break
            buf += chunk
        self.assertIn(b"a OK", buf)


class SniStarttls(SniCase):

    def test_starttls_selects_the_server(self):
        self.start_sni(ssl_listen=False)
        subject, out = self.s_client("b.test", starttls=True)
        self.assertIn("CN = b.test", subject)
        self.assertIn("* CAPABILITY IMAP4rev1 BRAVO ", out)
        subject, out = self.s_client("a.test", starttls=True)
        self.assertIn("CN = a.test", subject)
        self.assertIn("* CAPABILITY IMAP4rev1 ALPHA ", out)


class SniRefused(unittest.TestCase):
    """What stays refused: a shared address without distinct names
    or without TLS."""

    def check(self, b_extra, drop=()):
        d = tempfile.mkdtemp(dir=run_tmpdir())
        try:
            port = util.free_port()
            a = {"listen": "127.0.0.1:%d" % port, "server_name": "a.test",
                 "proxy_pass": "127.0.0.1:1"}
            b = dict(a, **b_extra)
            for k in drop:
                a.pop(k, None)
                b.pop(k, None)
            text = daemonlib.make_config(port, server=a, servers=[b])
            path = os.path.join(d, "c.conf")
            with open(path, "w") as f:
                f.write(text)
            rc, out = daemonlib.check_config(path)
            self.assertNotEqual(0, rc)
            self.assertIn("duplicate", out)
        finally:
            shutil.rmtree(d, ignore_errors=True)

    def test_plaintext_shared_address_refused(self):
        self.check({"server_name": "b.test"})

    def test_same_name_refused(self):
        self.check({})
