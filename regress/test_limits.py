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

"""limit_conn_per_ip and limit_auth_fail: limits the proxy keeps by
itself, across every worker, to protect the backends and the auth
service.  Clients use other loopback addresses (127.0.0.x) to be other
client addresses."""

import os
import re
import shutil
import signal
import socket
import ssl
import subprocess
import time
import unittest

from lib import daemon as daemonlib
from lib import util
from lib.case import DaemonTestCase
from lib.imapclient import RawImap

BYE_PER_IP = "* BYE [UNAVAILABLE] too many connections from your address"
NO_LIMITED = "NO [UNAVAILABLE] too many failed logins, try again later"
NO_FAILED = "NO [AUTHENTICATIONFAILED]"


class ConnPerIp:
    """limit_conn_per_ip, run in both isolation modes."""

    def start_limited(self, n=2, **kw):
        return self.start(server={"limit_conn_per_ip": n}, **kw)

    def refused(self, source="127.0.0.1"):
        c = self.connect(greeting=False, source=source)
        c.expect(BYE_PER_IP)
        c.expect_closed()
        return c

    def test_third_from_one_address_refused(self):
        d = self.start_limited(2)
        a = self.connect(source="127.0.0.1")
        b = self.connect(source="127.0.0.1")
        c = self.refused("127.0.0.1")
        end = self.session_end(c.client_addr)
        self.assertEqual(end["reason"], "limit_conn_per_ip")
        # another address is not affected, and the first two work
        other = self.connect(source="127.0.0.2")
        self.login(other, tag="o")
        self.login(a)
        b.cmd("n NOOP")
        self.assertEqual(b.read_until_tagged("n")[-1],
                         "n OK NOOP completed")
        # one leaves: its place is free again
        a.cmd("z LOGOUT")
        a.read_until_tagged("z")
        self.session_end(a.client_addr)
        again = self.connect(source="127.0.0.1")
        self.login(again, tag="g")
        self.assertTrue(d.running())

    def test_logged_in_sessions_count(self):
        self.start_limited(1)
        a = self.connect(source="127.0.0.3")
        self.login(a)
        self.refused("127.0.0.3")


class ConnPerIpConnection(ConnPerIp, DaemonTestCase):
    ISOLATION = "connection"

    def test_killed_worker_gives_its_place_back(self):
        if not os.path.isdir("/proc/self/fd"):
            self.skipTest("needs /proc to find a session's worker")
        d = self.start_limited(1)
        a = self.connect(source="127.0.0.4")
        self.refused("127.0.0.4")
        pids = util.pids_holding_connection(d.port, a.local_port,
                                            d.pids("imap"))
        self.assertEqual(len(pids), 1)
        mark = d.mark()
        os.kill(pids[0], signal.SIGKILL)
        d.wait_for_log(r"\b%d\b.*(signal 9|killed)" % pids[0], since=mark)
        self.assertTrue(a.is_closed(10))
        # the auth process saw the worker's channel close
        b = util.wait_until(lambda: self._greeted("127.0.0.4"), 10,
                            what="a place for 127.0.0.4 again")
        self.login(b)

    def _greeted(self, source):
        c = self.connect(greeting=False, source=source)
        line = c.readline()
        if line.startswith("* OK "):
            return c
        self.assertEqual(line, BYE_PER_IP)
        c.close()
        return None

    def test_auth_restart_counts_open_sessions_again(self):
        d = self.start_limited(2)
        a = self.connect(source="127.0.0.5")
        self.login(a)
        old = d.pids("auth")
        self.assertEqual(len(old), 1)
        mark = d.mark()
        os.kill(old[0], signal.SIGKILL)
        util.wait_until(lambda: [p for p in d.pids("auth") if p != old[0]],
                        10, what="a new auth process")
        # the worker of a tells the new auth process about it
        d.wait_for_log(r"limits: 1 sessions counted again",
                       since=mark)
        # so a and one newcomer make two, and the next is refused
        self.connect(source="127.0.0.5")
        self.refused("127.0.0.5")
        # and the session itself was never disturbed
        a.cmd("n NOOP")
        self.assertTrue(a.read_until_tagged("n")[-1].startswith("n OK"))


class ConnPerIpShared(ConnPerIp, DaemonTestCase):
    ISOLATION = "shared"
    WORKER_PROCESSES = 2


class ConnPerIpTls(DaemonTestCase):
    """On an implicit TLS port a refusal is a close: a line in the
    clear would only be garbage to a TLS client."""

    def test_tls_port_refusal_closes(self):
        if shutil.which("openssl") is None:
            self.skipTest("no openssl (Debian: apt-get install openssl)")
        crt = os.path.join(self.tmp, "s.crt")
        key = os.path.join(self.tmp, "s.key")
        subprocess.run(["openssl", "req", "-x509", "-newkey", "ec",
                        "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes",
                        "-days", "2", "-subj", "/CN=localhost",
                        "-keyout", key, "-out", crt],
                       check=True, capture_output=True)
        os.chmod(key, 0o644)
        port = util.free_port()
        self.start(server={"listen": "127.0.0.1:%d ssl" % port,
                               "limit_conn_per_ip": 1,
                               "ssl_certificate": crt,
                               "ssl_certificate_key": key})
        ctx = ssl.create_default_context()
        ctx.check_hostname = False
        ctx.verify_mode = ssl.CERT_NONE
        first = socket.create_connection(("127.0.0.1", port), timeout=10)
        self.addCleanup(first.close)
        tls = ctx.wrap_socket(first)
        self.assertTrue(tls.recv(100).startswith(b"* OK "))
        second = socket.create_connection(("127.0.0.1", port),
                                          timeout=10)
        self.addCleanup(second.close)
        # no ServerHello and no clear text: the proxy just closes
        self.assertEqual(second.recv(100), b"")
        end = self.session_end("127.0.0.1:%d" % second.getsockname()[1])
        self.assertEqual(end["reason"], "limit_conn_per_ip")


class AuthFail(DaemonTestCase):
    """limit_auth_fail: too many failed logins, then a delayed NO from
    the proxy itself, without asking the auth service."""

    def start_limited(self, spec=(3, "60s", "1s")):
        return self.start(server={"limit_auth_fail": spec})

    def attempt(self, source, user, password, tag="a"):
        c = self.connect(source=source)
        c.cmd('%s LOGIN %s "%s"' % (tag, user, password))
        t0 = time.monotonic()
        line = c.read_until_tagged(tag)[-1]
        return c, line, time.monotonic() - t0

    def test_address_blocked_after_failures(self):
        d = self.start_limited()
        for i, user in enumerate(("alice", "bob", "nosuchuser")):
            c, line, _ = self.attempt("127.0.0.10", user, "wrong")
            self.assertTrue(line.startswith("a " + NO_FAILED), line)
        d.wait_for_log(r"limit_auth_fail: client=127\.0\.0\.10 refused "
                       r"for 60 s after 3 failed logins")
        asked = len(self.auth.requests)
        # even the right password is refused now, after the delay
        c, line, took = self.attempt("127.0.0.10", "alice",
                                     self.password("alice"))
        self.assertEqual(line, "a " + NO_LIMITED)
        self.assertGreaterEqual(took, 0.9)
        c.expect("* BYE authentication failed")
        c.expect_closed()
        self.assertEqual(len(self.auth.requests), asked,
                         "the auth service was asked")
        end = self.session_end(c.client_addr)
        self.assertEqual(end["reason"], "limit_auth_fail")
        # other addresses log in
        c, line, _ = self.attempt("127.0.0.11", "alice",
                                  self.password("alice"))
        self.assertTrue(line.startswith("a OK"), line)

    def test_user_blocked_from_any_address_any_case(self):
        d = self.start_limited()
        for i in range(3):
            c, line, _ = self.attempt("127.0.0.%d" % (20 + i), "bob", "x")
            self.assertTrue(line.startswith("a " + NO_FAILED), line)
        d.wait_for_log(r"limit_auth_fail: user=bob refused for 60 s "
                       r"after 3 failed logins")
        c, line, _ = self.attempt("127.0.0.30", "BOB",
                                  self.password("bob"))
        self.assertEqual(line, "a " + NO_LIMITED)
        # another user from the same addresses is fine
        c, line, _ = self.attempt("127.0.0.20", "alice",
                                  self.password("alice"))
        self.assertTrue(line.startswith("a OK"), line)

    def test_good_login_forgets_the_users_failures(self):
        self.start_limited()
        for src in ("127.0.0.40", "127.0.0.41"):
            c, line, _ = self.attempt(src, "carol", "x")
            self.assertTrue(line.startswith("a " + NO_FAILED), line)
        c, line, _ = self.attempt("127.0.0.42", "carol",
                                  self.password("carol").replace(
                                      "\\", "\\\\").replace('"', '\\"'))
        self.assertTrue(line.startswith("a OK"), line)
        for src in ("127.0.0.43", "127.0.0.44"):
            c, line, _ = self.attempt(src, "carol", "x")
            self.assertTrue(line.startswith("a " + NO_FAILED), line)
        # 4 failures in all, but 2 since the good login
        c, line, _ = self.attempt("127.0.0.45", "carol", "x")
        self.assertTrue(line.startswith("a " + NO_FAILED), line)

    def test_off_by_default(self):
        self.start()
        for i in range(5):
            c, line, _ = self.attempt("127.0.0.50", "alice", "wrong")
            self.assertTrue(line.startswith("a " + NO_FAILED), line)
        self.assertEqual(len(self.auth.requests), 5)


class Ipv6Prefix(DaemonTestCase):
    """An IPv6 client is counted by its /64 (limit_ipv6_prefix): a host
    with a network of its own must not count as 2^64 clients.  Its
    addresses are made on lo for the class (root, iproute2)."""

    @classmethod
    def setUpClass(cls):
        super().setUpClass()
        if os.geteuid() != 0 or shutil.which("ip") is None:
            raise unittest.SkipTest("needs root and ip (Debian: apt-get "
                                    "install iproute2) to add IPv6 "
                                    "addresses to lo")
        # two /64s of our own, apart from any other run's
        tag = "%x" % (os.getpid() & 0xffff)
        cls.net1 = "fd69:%s:1:1" % tag
        cls.net2 = "fd69:%s:1:2" % tag
        cls.addrs = ["%s::%s" % (cls.net1, h) for h in "abcd"] + \
            ["%s::a" % cls.net2]
        cls.added = []
        for a in cls.addrs:
            r = subprocess.run(["ip", "-6", "addr", "add", a + "/128",
                                "dev", "lo", "nodad"], capture_output=True)
            if r.returncode != 0:
                cls.tearDownClass()
                raise unittest.SkipTest("cannot add %s to lo: %s"
                                        % (a, r.stderr.decode().strip()))
            cls.added.append(a)

    @classmethod
    def tearDownClass(cls):
        for a in cls.added:
            subprocess.run(["ip", "-6", "addr", "del", a + "/128", "dev",
                            "lo"], capture_output=True)
        cls.added = []
        super().tearDownClass()

    def start6(self, **server):
        port = util.free_port()
        server["listen"] = "[::1]:%d" % port
        d = self.start(server=server)
        d.port6 = port
        return d

    def connect6(self, d, source, greeting=True):
        c = RawImap(d.port6, host="::1", source=source)
        self._clients.append(c)
        if greeting:
            c.expect_prefix("* OK ")
        return c

    def test_conn_per_ip_counts_a_64(self):
        d = self.start6(limit_conn_per_ip=2)
        self.connect6(d, self.addrs[0])
        self.connect6(d, self.addrs[1])
        c = self.connect6(d, self.addrs[2], greeting=False)
        c.expect(BYE_PER_IP)
        c.expect_closed()
        # another /64 is another client
        self.login(self.connect6(d, self.addrs[4]))

    def test_prefix_128_counts_addresses(self):
        d = self.start6(limit_conn_per_ip=1, limit_ipv6_prefix=128)
        for a in self.addrs[:3]:
            self.connect6(d, a)
        c = self.connect6(d, self.addrs[0], greeting=False)
        c.expect(BYE_PER_IP)

    def test_auth_fail_counts_a_64(self):
        d = self.start6(limit_auth_fail=(3, "60s", "100ms"))
        for a, user in zip(self.addrs[:3], ("alice", "bob", "nosuchuser")):
            c = self.connect6(d, a)
            c.cmd("a LOGIN %s wrong" % user)
            self.assertTrue(c.read_until_tagged("a")[-1]
                            .startswith("a " + NO_FAILED))
        d.wait_for_log(r"limit_auth_fail: client=%s::/64 refused for 60 s "
                       r"after 3 failed logins" % re.escape(self.net1))
        c = self.connect6(d, self.addrs[3])
        c.cmd('a LOGIN alice "%s"' % self.password("alice"))
        self.assertEqual(c.read_until_tagged("a")[-1], "a " + NO_LIMITED)
        c = self.connect6(d, self.addrs[4])
        self.login(c)


class Config(DaemonTestCase):
    def check(self, server):
        path = os.path.join(self.tmp, "c.conf")
        with open(path, "w") as f:
            f.write(self.config(server=server))
        return daemonlib.check_config(path)

    def test_bad_values_refused_with_line(self):
        for server, why in (
                ({"limit_conn_per_ip": "many"},
                 r'invalid value "many" in "limit_conn_per_ip" directive'),
                ({"limit_auth_fail": "5"},
                 r'"limit_auth_fail" directive needs a number and a '
                 r'window, or off'),
                ({"limit_auth_fail": ("5", "0s")},
                 r'invalid value "0s" in "limit_auth_fail" directive'),
                ({"limit_auth_fail": ("5", "10m", "2h")},
                 r'invalid value "2h" in "limit_auth_fail" directive'),
                ({"limit_conn_rate": "fast"},
                 r'invalid value "fast" in "limit_conn_rate" directive'),
                ({"limit_conn_rate": ("5", "0")},
                 r'invalid value "0" in "limit_conn_rate" directive'),
                ({"limit_conn_rate": ("1", "2", "3")},
                 r'invalid number of arguments in "limit_conn_rate"'),
                ({"limit_prelogin_per_ip": "-1"},
                 r'invalid value "-1" in "limit_prelogin_per_ip"'),
                ({"limit_ipv6_prefix": "129"},
                 r'invalid value "129" in "limit_ipv6_prefix"'),
                ({"limit_ipv6_prefix": "0"},
                 r'invalid value "0" in "limit_ipv6_prefix"'),
                ({"login_timeout": "0"},
                 r'invalid value "0" in "login_timeout" directive'),
                ({"login_max_commands": "0"},
                 r'invalid value "0" in "login_max_commands"'),
                ({"proxy_forward_client_ip": "maybe"},
                 r'invalid value "maybe" in "proxy_forward_client_ip"')):
            rc, out = self.check(server)
            self.assertNotEqual(rc, 0, server)
            self.assertRegex(out, r"c\.conf:\d+: " + why)

    def test_auth_fail_needs_auth_http(self):
        path = os.path.join(self.tmp, "c.conf")
        proxy_pass = "127.0.0.1:%d" % self.dovecot.port
        with open(path, "w") as f:
            f.write(self.config(no_auth=True, mail={
                "limit_auth_fail": ("5", "10m")},
                server={"proxy_pass": proxy_pass}))
        rc, out = daemonlib.check_config(path)
        self.assertNotEqual(rc, 0)
        self.assertRegex(out, r'c\.conf:\d+: "limit_auth_fail" needs '
                         r'"auth_http" \("limit_auth_fail off" in this '
                         r'server\)')
        with open(path, "w") as f:
            f.write(self.config(no_auth=True, mail={
                "limit_auth_fail": ("5", "10m")},
                server={"proxy_pass": proxy_pass,
                        "limit_auth_fail": "off"}))
        rc, out = daemonlib.check_config(path)
        self.assertEqual(rc, 0, out)

    def test_good_values_accepted(self):
        for server in ({"limit_conn_per_ip": 0},
                       {"limit_auth_fail": "off"},
                       {"limit_auth_fail": ("5", "10m")},
                       {"limit_auth_fail": ("5", "10m", "500ms")},
                       {"limit_conn_rate": "off"},
                       {"limit_conn_rate": "50"},
                       {"limit_conn_rate": ("10", "1000")},
                       {"limit_prelogin_per_ip": "off"},
                       {"limit_prelogin_per_ip": 5},
                       {"limit_ipv6_prefix": 48},
                       {"login_timeout": "2m"},
                       {"login_max_commands": 5},
                       {"proxy_forward_client_ip": False}):
            rc, out = self.check(server)
            self.assertEqual(rc, 0, (server, out))
