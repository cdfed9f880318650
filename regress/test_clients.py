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

"""What real clients and operators trip over (issue 14), against the
run's Dovecot with real clients: the end line tells a completed LOGOUT
from a dropped connection; the capabilities advertised before login are
the backend's (imap_capabilities auto)."""

import imaplib
import re
import socket
import threading
import time

from lib import util
from lib.case import DEFAULT_CAPS, DaemonTestCase


class Logout(DaemonTestCase):

    def test_imaplib_logout_says_client_logout(self):
        m = self.imap()
        m.login("alice", self.password("alice"))
        m.select("INBOX")
        addr = "127.0.0.1:%d" % m.sock.getsockname()[1]
        self.assertEqual(m.logout()[0], "BYE")
        end = self.session_end(addr)
        self.assertEqual(end["reason"], "client logout")
        self.assertEqual(end["user"], "alice")

    def test_raw_logout_then_client_closes_first(self):
        # the client closes as soon as it has the OK, before Dovecot
        c = self.connect()
        self.login(c)
        c.cmd("l LOGOUT")
        lines = c.read_until_tagged("l")
        self.assertTrue(lines[0].startswith("* BYE"), lines)
        addr = c.client_addr
        c.sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER,
                          b"\x01\x00\x00\x00\x00\x00\x00\x00")
        c.close()
        self.assertEqual(self.session_end(addr)["reason"],
                         "client logout")

    def test_dropped_connection_is_not_a_logout(self):
        c = self.connect()
        self.login(c)
        c.cmd("n NOOP")
        c.read_until_tagged("n")
        addr = c.client_addr
        c.close()
        self.assertEqual(self.session_end(addr)["reason"],
                         "client closed")

    def test_prelogin_logout(self):
        m = imaplib.IMAP4("127.0.0.1", self.port, timeout=10)
        addr = "127.0.0.1:%d" % m.sock.getsockname()[1]
        m.logout()
        self.assertEqual(self.session_end(addr)["reason"], "client logout")


class LogoutShared(Logout):
    ISOLATION = "shared"


class Capabilities(DaemonTestCase):
    """imap_capabilities auto, the default: the greeting and CAPABILITY
    carry what the backend advertises before login (ENABLE, IDLE...),
    with the proxy's own STARTTLS, AUTH= and LITERAL+."""

    AUTO = {"imap_capabilities": None}    # the daemon's default

    def greeting_once_learned(self, port, want="ENABLE", timeout=10):
        # a worker hears of the list a moment after the auth process
        # logged it
        deadline = time.monotonic() + timeout
        while True:
            c = self.connect(port=port, greeting=False)
            g = c.greeting()
            if want in g.split() or time.monotonic() > deadline:
                return g
            c.close()
            time.sleep(0.05)

    def learned_line(self, d):
        return d.wait_for_log(r"imap_capabilities auto: backend "
                              r"127\.0\.0\.1:%d: (.*)$" % self.dovecot.port)

    def test_imaplib_enable_works(self):
        d = self.start(mail=self.AUTO)
        # before any login nothing is known: today's default list
        c = self.connect(greeting=False)
        self.assertEqual(c.greeting(), "* OK [CAPABILITY %s] IMAP4 ready"
                         % DEFAULT_CAPS)
        # the first Auth-Server is probed
        m = self.imap()
        m.login("alice", self.password("alice"))
        m.logout()
        learned = self.learned_line(d).group(1).split()
        for tok in ("IMAP4rev1", "ENABLE", "IDLE"):
            self.assertIn(tok, learned)
        # what the proxy does itself is not taken from the backend
        for tok in learned:
            self.assertFalse(tok.startswith("AUTH="), learned)
            self.assertNotIn(tok, ("STARTTLS", "LOGINDISABLED", "SASL-IR",
                                   "LITERAL+"))
        g = self.greeting_once_learned(self.port)
        self.assertEqual(g, "* OK [CAPABILITY %s SASL-IR LITERAL+ AUTH=PLAIN]"
                         " IMAP4 ready" % " ".join(
                             learned + ([] if "ID" in learned else ["ID"])))
        m = self.imap()
        self.assertIn("ENABLE", m.capabilities)
        m.login("alice", self.password("alice"))
        typ, data = m.enable("UTF8=ACCEPT")
        self.assertEqual(typ, "OK", data)
        m.select("INBOX")
        m.logout()

    def test_proxy_pass_backend_probed_at_start(self):
        d = self.start(no_auth=True, mail=self.AUTO, server={
            "proxy_pass": "127.0.0.1:%d" % self.dovecot.port})
        self.learned_line(d)
        g = self.greeting_once_learned(self.port)
        self.assertIn("IDLE", g.split())
        c = self.connect(greeting=False)
        c.greeting()
        c.cmd("c CAPABILITY")
        lines = c.read_until_tagged("c")
        self.assertIn("ENABLE", lines[0].split())

    def test_explicit_list_is_kept(self):
        d = self.start(no_auth=True, mail={
            "imap_capabilities": ("IMAP4rev1", "X-MINE")}, server={
            "proxy_pass": "127.0.0.1:%d" % self.dovecot.port})
        c = self.connect(greeting=False)
        self.assertEqual(c.greeting(), "* OK [CAPABILITY IMAP4rev1 X-MINE "
                         "SASL-IR LITERAL+ ID AUTH=PLAIN] IMAP4 ready")
        self.assertNotIn("imap_capabilities auto", d.log())

    def test_backend_down_keeps_the_default(self):
        port = util.free_port()
        d = self.start(no_auth=True, mail={"imap_capabilities": "auto"},
                       server={"proxy_pass": "127.0.0.1:%d" % port})
        d.wait_for_log(r"imap_capabilities auto: backend 127\.0\.0\.1:%d: "
                       r".*the default list stays until it answers" % port)
        c = self.connect(greeting=False)
        self.assertEqual(c.greeting(), "* OK [CAPABILITY %s] IMAP4 ready"
                         % DEFAULT_CAPS)


class CapabilitiesShared(Capabilities):
    ISOLATION = "shared"


class BackendRefusal(DaemonTestCase):
    """A backend's refusal after auth_http said yes: its RFC 5530 code
    reaches the client, its own words the log."""

    def backend_at(self, port, host="127.0.0.1", password=None):
        def hook(req):
            h = [("Auth-Status", "OK"), ("Auth-Server", host),
                 ("Auth-Port", str(port))]
            if password is not None:
                h.append(("Auth-Pass", password))
            return h
        self.auth.hook = hook

    def test_dovecot_limit_is_relayed(self):
        if not self.dovecot.limit_port:
            self.skipTest("no 127.0.0.3 listener in this Dovecot")
        self.backend_at(self.dovecot.limit_port, "127.0.0.3")
        d = self.start()
        first = self.imap()
        first.login("dora", self.password("dora"))
        second = self.imap()
        with self.assertRaises(imaplib.IMAP4.error) as e:
            second.login("dora", self.password("dora"))
        self.assertEqual(str(e.exception),
                         "b'[LIMIT] backend rejected the login'")
        m = d.wait_for_log(r"backend 127\.0\.0\.3:%d rejected the login "
                           r"client=\S+ user=dora reply=\"(.*)\"$"
                           % self.dovecot.limit_port)
        self.assertRegex(m.group(1), r"^NO \[LIMIT\] Maximum number of "
                         r"connections from user\+IP exceeded")
        first.logout()

    def test_dovecot_authenticationfailed_is_relayed(self):
        # the auth service vouches for a password Dovecot refuses
        self.backend_at(self.dovecot.port, password="not-hers")
        d = self.start()
        c = self.connect()
        c.cmd("a LOGIN alice %s" % self.password("alice"))
        c.expect("a NO [AUTHENTICATIONFAILED] backend rejected the login")
        m = d.wait_for_log(r"rejected the login client=%s user=alice "
                           r"reply=\"(.*)\"$" % re.escape(c.client_addr))
        self.assertRegex(m.group(1), r"^NO \[AUTHENTICATIONFAILED\] ")

    def test_refusal_without_a_code_is_unavailable(self):
        fb = socket.socket()
        fb.bind(("127.0.0.1", 0))
        fb.listen(4)
        self.addCleanup(fb.close)

        def serve():
            conn, _ = fb.accept()
            with conn:
                conn.sendall(b"* OK ready\r\n")
                f = conn.makefile("rb")
                tag = f.readline().split(b" ")[0]
                conn.sendall(tag + b" NO go away\r\n")
                f.readline()
        t = threading.Thread(target=serve, daemon=True)
        t.start()
        self.backend_at(fb.getsockname()[1])
        d = self.start()
        c = self.connect()
        c.cmd("a LOGIN alice %s" % self.password("alice"))
        c.expect("a NO [UNAVAILABLE] backend rejected the login")
        d.wait_for_log(r'rejected the login client=%s user=alice '
                       r'reply="NO go away"$' % re.escape(c.client_addr))


class FailDelay(DaemonTestCase):
    """auth_fail_delay: a refused login is answered after a delay, 2s
    by default (the harness sets 0 for every other test)."""

    def refused_after(self, d):
        m = self.imap(port=d.port)
        t0 = time.monotonic()
        with self.assertRaises(imaplib.IMAP4.error) as e:
            m.login("alice", "wrong")
        elapsed = time.monotonic() - t0
        self.assertIn("[AUTHENTICATIONFAILED]", str(e.exception))
        return elapsed

    def test_default_is_two_seconds(self):
        d = self.start(mail={"auth_fail_delay": None})
        elapsed = self.refused_after(d)
        self.assertGreaterEqual(elapsed, 1.9)
        self.assertLess(elapsed, 5)
        # a good login is not slowed down
        m = self.imap(port=d.port)
        t0 = time.monotonic()
        m.login("alice", self.password("alice"))
        self.assertLess(time.monotonic() - t0, 1.5)

    def test_configured_and_off(self):
        d = self.start(mail={"auth_fail_delay": "700ms"})
        elapsed = self.refused_after(d)
        self.assertGreaterEqual(elapsed, 0.65)
        self.assertLess(elapsed, 1.9)
        d = self.start(mail={"auth_fail_delay": 0})
        self.assertLess(self.refused_after(d), 0.6)

    def test_auth_wait_is_not_added_to(self):
        # with Auth-Wait the worker waits that long, then the client
        # may try again: no second delay on top
        self.auth.fail_wait = 1
        d = self.start(mail={"auth_fail_delay": "5s"})
        c = self.connect(port=d.port)
        t0 = time.monotonic()
        c.cmd("a LOGIN alice wrong")
        c.expect_prefix("a NO ")
        self.assertLess(time.monotonic() - t0, 3)

    def test_value_checked(self):
        from lib import daemon as daemonlib
        import os
        for value, ok in (("0", True), ("2s", True), ("1m", True),
                          ("61s", False), ("soon", False)):
            with self.subTest(value=value):
                path = os.path.join(self.tmp, "d.conf")
                with open(path, "w") as f:
                    f.write(self.config(mail={"auth_fail_delay": value}))
                code, err = daemonlib.check_config(path)
                self.assertEqual(code, 0 if ok else 1, err)
                if not ok:
                    self.assertRegex(err, r'd\.conf:\d+: .*auth_fail_delay')
