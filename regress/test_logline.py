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

"""The log lines an operator searches: one at login with who, from
where, through which listener to which backend, how and over what,
and the end line with the same session id.  Every test runs in both
isolation modes."""

import base64
import re
import unittest

from lib.case import DaemonTestCase, parse_kv
from test_tls import TlsCase

LOGIN = r"session login user=\S+ client=%s .*$"


class LogLineTests(DaemonTestCase):
    ISOLATION = "connection"
    WORKER_PROCESSES = 1

    def login_line(self, d, c):
        m = d.wait_for_log(LOGIN % re.escape(c.client_addr))
        return parse_kv(m.group(0))

    def test_login_command_plain(self):
        d = self.start(server={"server_name": "imap.example.org"})
        c = self.connect()
        self.login(c, "alice")
        kv = self.login_line(d, c)
        self.assertEqual(kv["user"], "alice")
        self.assertEqual(kv["client"], c.client_addr)
        self.assertEqual(kv["listener"], "127.0.0.1:%d" % d.port)
        self.assertEqual(kv["server"], "imap.example.org")
        self.assertEqual(kv["backend"], "127.0.0.1:%d" % self.dovecot.port)
        self.assertEqual(kv["mech"], "login")
        self.assertEqual(kv["tls"], "plain")
        self.assertEqual(kv["cipher"], "-")
        self.assertRegex(kv["auth_ms"], r"^\d+$")
        self.assertRegex(kv["session"], r"^[A-Za-z0-9_-]{12}$")
        c.cmd("z LOGOUT")
        c.read_until_tagged("z")
        end = self.session_end(c.client_addr, d)
        self.assertEqual(end["session"], kv["session"])
        self.assertEqual(end["reason"], "client logout")

    def test_authenticate_plain_mech(self):
        d = self.start()
        c = self.connect()
        ir = base64.b64encode(b"\0bob\0" +
                              self.password("bob").encode()).decode()
        c.cmd("a AUTHENTICATE PLAIN " + ir)
        self.assertTrue(c.read_until_tagged("a")[-1].startswith("a OK"))
        kv = self.login_line(d, c)
        self.assertEqual(kv["user"], "bob")
        self.assertEqual(kv["mech"], "plain")
        self.assertEqual(kv["server"], "-")

    def test_failed_login_has_no_login_line(self):
        d = self.start()
        c = self.connect()
        c.cmd('a LOGIN alice "wrong"')
        self.assertTrue(c.read_until_tagged("a")[-1].startswith("a NO"))
        end = self.session_end(c.client_addr, d)
        self.assertNotRegex(d.log(), r"session login .*session=%s"
                            % re.escape(end["session"]))


class LogLineSharedTests(LogLineTests):
    ISOLATION = "shared"
    WORKER_PROCESSES = 2


class LogLineTlsTests(TlsCase):
    ISOLATION = "connection"
    WORKER_PROCESSES = 1

    def test_login_line_names_tls_version_and_cipher(self):
        d = self.start_tls()
        c = self.connect(greeting=False)
        self.raw_tls(c)
        c.expect_prefix("* OK ")
        self.login(c, "alice")
        m = d.wait_for_log(LOGIN % re.escape(c.client_addr))
        kv = parse_kv(m.group(0))
        self.assertEqual(kv["tls"], c.sock.version())
        self.assertEqual(kv["cipher"], c.sock.cipher()[0])
        self.assertEqual(kv["mech"], "login")


class LogLineTlsSharedTests(LogLineTlsTests):
    ISOLATION = "shared"
    WORKER_PROCESSES = 2


if __name__ == "__main__":
    unittest.main()
