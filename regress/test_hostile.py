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

"""Hostile clients: huge lines and literals, NUL bytes, bytes that are
not UTF-8, bad base64, a client dribbling a command byte by byte, and a
flood of connections past the cap.  Each time the offending client gets
the documented answer, and a client that logged in through the proxy
before keeps working (the tests run in shared mode with one worker, so
a crash or a stuck worker would also end that other session).
"""

import os
import re
import shutil
import socket
import tempfile
import threading
import time
import unittest

from lib import dovecot as dovecotlib
from lib import util
from lib.case import DaemonTestCase, run_tmpdir
from lib.imapclient import Closed, RawImap
from test_tls import TlsCase, client_hello_records

MiB = 1024 * 1024
BYE_TOO_MANY = "* BYE [UNAVAILABLE] too many connections"
BYE_IDLE = "* BYE autologout; idle for too long"


def send_quietly(sock, data):
    """sendall that tolerates the server closing while we write."""
    try:
        sock.sendall(data)
    except OSError:
        pass


class HostileTestCase(DaemonTestCase):
    ISOLATION = "shared"
    WORKER_PROCESSES = 1

    def setUp(self):
        super().setUp()
        if not os.path.isdir("/proc/self/fd"):
            self.skipTest("needs /proc")

    def bystander(self, tag="z"):
        """A session logged in through the proxy before the attack."""
        c = self.connect()
        self.login(c, tag=tag)
        return c

    def assert_alive(self, c, tag="y"):
        c.cmd("%s NOOP" % tag)
        lines = c.read_until_tagged(tag)
        self.assertTrue(lines[-1].startswith(tag + " OK"), lines)

    def assert_no_crash(self, d):
        self.assertNotRegex(d.log(), r"signal \d+|core dumped|fatal")
        self.assertTrue(d.running())


class BigInput(HostileTestCase):

    def test_1mib_without_newline(self):
        d = self.start()
        other = self.bystander()
        worker = d.pids("imap")
        self.assertEqual(len(worker), 1, worker)
        worker = worker[0]
        hwm0 = util.proc_status(worker, "VmHWM")
        c = self.connect()
        t = threading.Thread(target=send_quietly,
                             args=(c.sock, b"a" * MiB), daemon=True)
        t.start()
        line = c.readline(timeout=10)
        self.assertRegex(line, r"^\S+ BAD \[TOOBIG\] line too long$")
        c.expect("* BYE line too long")
        c.expect_closed()
        t.join(10)
        # the worker never held more than its buffer: its peak RSS grew
        # by far less than the 1 MiB that was sent
        hwm1 = util.proc_status(worker, "VmHWM")
        self.assertLess(hwm1 - hwm0, 512, "VmHWM %d -> %d kB"
                        % (hwm0, hwm1))
        self.assert_alive(other)
        self.assert_no_crash(d)

    def test_literal_of_2_pow_63(self):
        d = self.start()
        other = self.bystander()
        for n in ("9223372036854775808", "18446744073709551616",
                  "99999999999999999999999999"):
            with self.subTest(literal=n, sync=True):
                c = self.connect()
                c.cmd("a LOGIN {%s}" % n)
                c.expect("a BAD [TOOBIG] literal too big")
                # synchronising: nothing was sent, the session goes on
                c.cmd("b NOOP")
                c.expect("b OK NOOP completed")
                c.close()
            with self.subTest(literal=n, sync=False):
                c = self.connect()
                c.cmd("a LOGIN {%s+}" % n)
                c.expect("a BAD [TOOBIG] literal too big")
                c.expect("* BYE literal too big")
                c.expect_closed()
        self.assert_alive(other)
        self.assert_no_crash(d)


class Pipelining(HostileTestCase):

    N = 10000

    def _pipeline(self, c, read_late):
        data = b"".join(b"p%d NOOP\r\n" % i for i in range(self.N))
        t = threading.Thread(target=send_quietly, args=(c.sock, data),
                             daemon=True)
        t.start()
        if read_late:
            time.sleep(1)
        for i in range(self.N):
            c.expect("p%d OK NOOP completed" % i, timeout=20)
        t.join(10)

    def test_10000_pipelined_commands(self):
        # (past the default budget of commands before login)
        d = self.start(server={"login_max_commands": 100000})
        other = self.bystander()
        worker = d.pids("imap")[0]
        hwm0 = util.proc_status(worker, "VmHWM")
        c = self.connect()
        self._pipeline(c, read_late=False)
        # a client that sends them all and reads only later: the worker
        # stops reading it instead of queueing 10,000 replies
        c2 = self.connect()
        self._pipeline(c2, read_late=True)
        hwm1 = util.proc_status(worker, "VmHWM")
        self.assertLess(hwm1 - hwm0, 1024, "VmHWM %d -> %d kB"
                        % (hwm0, hwm1))
        self.assert_alive(c)
        self.assert_alive(other)
        self.assert_no_crash(d)


class Bytes(HostileTestCase):

    def test_nul_bytes(self):
        d = self.start()
        other = self.bystander()
        cases = [
            ("command", b"a NO\x00OP\r\n"),
            ("tag", b"a\x00b NOOP\r\n"),
            ("quoted", b'a LOGIN "al\x00ice" "secret"\r\n'),
            ("quoted password", b'a LOGIN alice "sec\x00ret"\r\n'),
        ]
        for name, data in cases:
            with self.subTest(where=name):
                c = self.connect()
                c.send(data)
                line = c.readline()
                self.assertRegex(line, r"^(a|\*) BAD ", line)
                c.close()
        with self.subTest(where="LOGIN literal"):
            c = self.connect()
            c.cmd("a LOGIN {6}")
            c.expect("+ Ready for literal data")
            c.send(b"al\x00ice secret\r\n")
            c.expect("a BAD invalid arguments")
            c.cmd("b NOOP")
            c.expect("b OK NOOP completed")
            c.close()
        with self.subTest(where="LOGIN literal+ password"):
            c = self.connect()
            c.send(b"a LOGIN alice {6+}\r\nse\x00ret\r\n")
            c.expect("a BAD invalid arguments")
            c.close()
        # nothing of it reached the auth service
        self.assertEqual(len(self.auth.requests), 1)
        self.assert_alive(other)
        self.assert_no_crash(d)

    def test_invalid_utf8_user_reaches_auth_escaped(self):
        # the proxy does not judge the bytes of a user name: like nginx
        # it escapes CTLs, SP and % for auth_http and passes the rest
        d = self.start()
        other = self.bystander()
        c = self.connect()
        user = b"\xc3(x\xff\xfe y%"
        c.send(b'a LOGIN "' + user + b'" "secret"\r\n')
        c.expect_prefix("a NO [AUTHENTICATIONFAILED] ")
        c.expect("* BYE authentication failed")
        c.expect_closed()
        req = self.auth.last()
        raw = req.get("Auth-User").encode("latin-1")
        self.assertEqual(raw, b"\xc3(x\xff\xfe%20y%25")
        self.assertEqual(util.pct_decode(raw), user)
        # the session end line has no raw control or space bytes
        m = self.session_end(c.client_addr)
        self.assertNotIn(" ", m["user"])
        self.assert_alive(other)
        self.assert_no_crash(d)

    def test_invalid_base64(self):
        d = self.start()
        other = self.bystander()
        for name, lines in [
                ("continuation", ["a AUTHENTICATE PLAIN", "!!!!"]),
                ("initial response", ["a AUTHENTICATE PLAIN #AB$"]),
                ("truncated", ["a AUTHENTICATE PLAIN", "AGFsaWNl="]),
                ("nul in base64", ["a AUTHENTICATE PLAIN", "AG\x00Fs"])]:
            with self.subTest(case=name):
                c = self.connect()
                c.cmd(lines[0])
                if len(lines) > 1:
                    c.expect("+ ")
                    c.cmd(lines[1])
                c.expect("a BAD invalid base64")
                # back to the pre-login dialogue
                c.cmd("b NOOP")
                c.expect("b OK NOOP completed")
                c.close()
        self.assertEqual(len(self.auth.requests), 1)
        self.assert_alive(other)
        self.assert_no_crash(d)


class SlowClients(HostileTestCase):

    def test_slowloris_cut_by_timeout(self):
        """timeout 2s runs from the first byte of a command: a client
        dribbling "a NOOP" one byte per 0.5 s is cut about 2 s after its
        first byte, although it never stays silent for 2 s.  A client
        whose complete commands come 1.5 s apart is not cut."""
        d = self.start(server={"timeout": "2s"})
        other = self.bystander()
        slow = self.connect()
        steady = self.connect()
        data = b"a NOOP" + b" " * 20
        t0 = time.monotonic()
        cut = None
        for i, byte in enumerate(data):
            if i in (2, 5, 8):      # t = 1.0, 2.5, 4.0
                steady.cmd("s%d NOOP" % i)
                steady.expect("s%d OK NOOP completed" % i)
            try:
                slow.sock.sendall(bytes([byte]))
            except OSError:
                pass
            tick = t0 + (i + 1) * 0.5
            while cut is None and time.monotonic() < tick:
                left = max(0.0, tick - time.monotonic())
                if not slow.still_open(left) or slow.buf:
                    cut = time.monotonic() - t0
            if cut is not None or time.monotonic() - t0 > 6:
                break
        if cut is None:
            cut = time.monotonic() - t0
        self.assertEqual(slow.readline(timeout=2), BYE_IDLE,
                         "no idle BYE after %.1fs" % cut)
        slow.expect_closed(timeout=3)
        self.assertGreater(cut, 1.5)
        self.assertLess(cut, 3.5, "cut after %.1fs" % cut)
        m = self.session_end(slow.client_addr)
        self.assertEqual(m["reason"], "idle timeout")
        # meanwhile everybody else was served
        self.assertTrue(steady.still_open())
        self.assert_alive(steady, "t")
        self.assert_alive(other)
        fresh = self.connect()
        self.login(fresh, tag="f")
        self.assert_no_crash(d)

    def test_slow_literal_is_part_of_the_command(self):
        # a literal announced, then its bytes dribbled: same deadline
        d = self.start(server={"timeout": "2s"})
        c = self.connect()
        c.cmd("a LOGIN alice {40}")
        c.expect("+ Ready for literal data")
        t0 = time.monotonic()
        while time.monotonic() - t0 < 6:
            try:
                c.sock.sendall(b"x")
            except OSError:
                break
            if not c.still_open(0.4) or c.buf:
                break
        c.expect(BYE_IDLE, timeout=2)
        self.assertLess(time.monotonic() - t0, 3.5)
        self.assert_no_crash(d)


class Flood(HostileTestCase):

    def _flood(self, isolation, cap):
        extra = 20
        if isolation == "connection":
            d = self.start(isolation="connection", worker_processes=1,
                           worker_connections=cap,
                           top={"spare_workers": 2})
        else:
            d = self.start(isolation="shared", worker_processes=1,
                           worker_connections=cap)
        parent = d.pid
        # settled: spares forked, nothing in flight
        time.sleep(0.5)
        imap0 = len(d.pids("imap"))
        fds0 = util.fd_count(parent)
        socks = []
        for _ in range(cap + extra):
            s = socket.create_connection(("127.0.0.1", d.port), timeout=15)
            socks.append(s)
        clients = []
        for s in socks:
            r = RawImap.__new__(RawImap)
            r.timeout, r.sock, r.buf, r.eof, r.transcript = 15, s, b"", \
                False, []
            clients.append(r)
            self._clients.append(r)
        firsts = [c.readline(timeout=15) for c in clients]
        byes = [f for f in firsts if f == BYE_TOO_MANY]
        oks = [f for f in firsts if f.startswith("* OK [CAPABILITY ")]
        self.assertEqual(len(byes), extra, firsts)
        self.assertEqual(len(oks), cap, firsts)
        for c, f in zip(clients, firsts):
            if f == BYE_TOO_MANY:
                self.assertTrue(c.is_closed(5))
        # the admitted ones work
        served = [c for c, f in zip(clients, firsts) if f != BYE_TOO_MANY]
        served[0].cmd("n NOOP")
        served[0].expect("n OK NOOP completed")
        for c in clients:
            c.close()
        # after they are gone, a full cap of new clients is served
        def all_served():
            new = []
            try:
                for _ in range(cap):
                    c = RawImap(d.port, timeout=10)
                    new.append(c)
                lines = [c.readline() for c in new]
                if not all(l.startswith("* OK ") for l in lines):
                    return False
                self.login(new[-1])
                return True
            except (Closed, OSError):
                return False
            finally:
                for c in new:
                    c.close()
        # (the worker sees the closes of a failed round a bit later)
        util.wait_until(all_served, 15, interval=0.3,
                        what="a full cap served again")
        # no process or descriptor left behind
        util.wait_until(lambda: len(d.pids("imap")) == imap0 and
                        util.fd_count(parent) == fds0, 10, interval=0.1,
                        what="imap processes %d (now %d), parent fds %d "
                        "(now %d)" % (imap0, len(d.pids("imap")), fds0,
                                      util.fd_count(parent)))
        self.assert_no_crash(d)

    def test_flood_past_cap_connection_mode(self):
        self._flood("connection", 8)

    def test_flood_past_cap_shared_mode(self):
        self._flood("shared", 10)


BYE_COMMANDS = "* BYE too many commands before login"
BYE_PRELOGIN = ("* BYE [UNAVAILABLE] too many unauthenticated connections "
                "from your address")


class HoldingSlots(HostileTestCase):
    """One address must not hold every pre-login slot for ever: a
    budget of commands before login, a hard limit on the pre-login
    phase (login_timeout), and a cap on the connections not logged in
    from one address (limit_prelogin_per_ip), all on by default."""

    def test_command_budget_before_login(self):
        d = self.start()
        c = self.connect()
        for i in range(20):
            c.cmd("n%d NOOP" % i if i % 2 else "n%d CAPABILITY" % i)
            self.assertTrue(c.read_until_tagged("n%d" % i)[-1]
                            .startswith("n%d OK" % i))
        c.cmd("x NOOP")
        c.expect(BYE_COMMANDS)
        c.expect_closed()
        end = self.session_end(c.client_addr)
        self.assertEqual(end["reason"], "too many commands before login")
        # a login is not a command of the budget
        c = self.connect()
        for i in range(20):
            c.cmd("n%d NOOP" % i)
            c.expect("n%d OK NOOP completed" % i)
        self.login(c, tag="l")
        self.assert_no_crash(d)

    def test_cancelled_authenticate_spends_the_budget(self):
        self.start()
        c = self.connect()
        for i in range(20):
            c.cmd("a%d AUTHENTICATE PLAIN" % i)
            c.expect("+ ")
            c.cmd("*")
            c.expect("a%d BAD authentication cancelled" % i)
        c.cmd("x AUTHENTICATE PLAIN")
        c.expect("+ ")
        c.cmd("*")
        c.expect("x BAD authentication cancelled")
        c.expect(BYE_COMMANDS)
        c.expect_closed()

    def test_invalid_commands_spend_the_budget_too(self):
        self.start(server={"max_errors": 100})
        c = self.connect()
        for i in range(20):
            c.cmd("b%d FOO" % i)
            c.expect("b%d BAD invalid command" % i)
        c.cmd("x ID NIL")
        c.expect(BYE_COMMANDS)
        c.expect_closed()

    def test_busy_client_cut_by_login_timeout(self):
        """A client that sends a NOOP every 0.4 s is never idle for
        timeout (1 s), but login_timeout (2 s) runs from its connect
        whatever it does.  One that logged in meanwhile is not cut."""
        d = self.start(server={"timeout": "1s", "login_timeout": "2s",
                               "login_max_commands": 1000})
        busy = self.connect()
        t0 = time.monotonic()
        done = self.connect()
        self.login(done)
        lines = []
        i = 0
        while time.monotonic() - t0 < 6:
            try:
                busy.cmd("n%d NOOP" % i)
                line = busy.readline()
            except (OSError, Closed):
                break
            if line != "n%d OK NOOP completed" % i:
                lines.append(line)
                break
            if not busy.still_open(0.4) or busy.buf:
                break
            i += 1
        took = time.monotonic() - t0
        try:
            while True:
                lines.append(busy.readline(timeout=3))
        except Closed:
            pass
        self.assertIn("* BYE login timeout, too long without logging in",
                      lines)
        self.assertGreater(took, 1.5)
        self.assertLess(took, 3.5, "cut after %.1fs" % took)
        end = self.session_end(busy.client_addr)
        self.assertEqual(end["reason"], "login timeout")
        # the session that logged in outlives login_timeout
        self.assert_alive(done)
        self.assert_no_crash(d)

    def test_login_timeout_covers_a_slow_auth_service(self):
        d = self.start(server={"login_timeout": "1s",
                               "auth_http_timeout": "10s"})
        self.auth.delay = 5
        c = self.connect()
        c.cmd("a LOGIN alice secret")
        t0 = time.monotonic()
        c.expect("* BYE login timeout, too long without logging in",
                 timeout=5)
        c.expect_closed()
        self.assertLess(time.monotonic() - t0, 2.5)
        self.assertEqual(self.session_end(c.client_addr)["reason"],
                         "login timeout")


BYE_RATE = ("* BYE [UNAVAILABLE] too many new connections from your "
            "address, try again later")


class ConnRate:
    """limit_conn_rate: new connections per address, counted by the
    auth process before a worker is spent on them."""

    def burst(self, source, n):
        """n connections at once: the greeted clients, and the
        addresses of the refused ones."""
        greeted, refused = [], []
        for _ in range(n):
            c = self.connect(greeting=False, source=source)
            line = c.readline()
            if line.startswith("* OK "):
                greeted.append(c)
            else:
                self.assertEqual(line, BYE_RATE)
                c.expect_closed()
                refused.append(c.client_addr)
                c.close()
        return greeted, refused

    def test_burst_then_refused(self):
        d = self.start(server={"limit_conn_rate": (1, 5)})
        greeted, refused = self.burst("127.0.0.21", 30)
        # 5 at once, and perhaps one more refilled meanwhile
        self.assertIn(len(greeted), (5, 6))
        end = self.session_end(refused[0])
        self.assertEqual(end["reason"], "limit_conn_rate")
        # another address has its own bucket
        self.login(self.connect(source="127.0.0.22"))
        # 1/s: a new one is let in within a second
        def again():
            c = self.connect(greeting=False, source="127.0.0.21")
            return c if c.readline().startswith("* OK ") else None
        self.login(util.wait_until(again, 3, interval=0.1,
                                   what="a token again"))
        self.assert_no_crash(d)


class ConnRateShared(ConnRate, HostileTestCase):
    ISOLATION = "shared"


class ConnRateConnection(ConnRate, HostileTestCase):
    ISOLATION = "connection"

    def test_flood_spends_no_worker(self):
        """Bare connects from one address cost no worker past the
        burst: each refusal is answered by a spare that goes on."""
        d = self.start(top={"spare_workers": 2},
                       server={"limit_conn_rate": (1, 2)})
        mark = d.mark()
        greeted, refused = self.burst("127.0.0.23", 40)
        self.assertIn(len(greeted), (2, 3))
        pids = util.wait_until(lambda: _ends(d, mark, len(refused),
                                             "limit_conn_rate"),
                               10, what="the refusals logged")
        self.assertLessEqual(len(set(pids)), 2, pids)


class PreloginPerIp:
    """limit_prelogin_per_ip, on by default (20), in both modes."""

    def test_21st_unauthenticated_from_one_address_refused(self):
        d = self.start()
        held = [self.connect(source="127.0.0.12") for _ in range(20)]
        c = self.connect(greeting=False, source="127.0.0.12")
        c.expect(BYE_PRELOGIN)
        c.expect_closed()
        end = self.session_end(c.client_addr)
        self.assertEqual(end["reason"], "limit_prelogin_per_ip")
        # another address is not affected
        self.login(self.connect(source="127.0.0.13"))
        # one that logs in is no longer unauthenticated: room for one
        # (its worker tells the auth process, which may hear of it a
        # moment after the client did)
        self.login(held[0])
        c = util.wait_until(lambda: self.greeted("127.0.0.12"), 10,
                            interval=0.05, what="room after a login")
        c.cmd("n NOOP")
        c.expect("n OK NOOP completed")
        # and the next is refused again
        c = self.connect(greeting=False, source="127.0.0.12")
        c.expect(BYE_PRELOGIN)
        # one that leaves makes room too
        held[1].cmd("z LOGOUT")
        held[1].read_until_tagged("z")
        self.session_end(held[1].client_addr)
        util.wait_until(lambda: self.greeted("127.0.0.12"), 10,
                        interval=0.05, what="room after a logout")
        self.assert_no_crash(d)

    def greeted(self, source):
        """A client from source if it is greeted; else it was refused
        for limit_prelogin_per_ip, and None."""
        c = self.connect(greeting=False, source=source)
        line = c.readline()
        if line.startswith("* OK "):
            return c
        self.assertEqual(line, BYE_PRELOGIN)
        c.close()
        return None


class PreloginPerIpShared(PreloginPerIp, HostileTestCase):
    ISOLATION = "shared"


class PreloginPerIpConnection(PreloginPerIp, HostileTestCase):
    ISOLATION = "connection"

    def test_refusal_spends_no_worker(self):
        # a refused client was never read: the spare that accepted it
        # answers, closes and goes on accepting; it does not exit
        d = self.start(top={"spare_workers": 2})
        for _ in range(20):
            self.connect(source="127.0.0.14")
        mark = d.mark()
        for _ in range(30):
            c = self.connect(greeting=False, source="127.0.0.14")
            c.expect(BYE_PRELOGIN)
            c.expect_closed()
            c.close()
        ends = util.wait_until(lambda: _ends(d, mark, 30), 10,
                               what="30 refusals logged")
        # the log line's pid: the two spares took them all
        self.assertLessEqual(len(set(ends)), 2, ends)
        self.login(self.connect(source="127.0.0.15"))


def _ends(d, mark, n, reason="limit_prelogin_per_ip"):
    """The pids of the refusals for reason logged since mark, once
    there are n."""
    pids = re.findall(r"\] (\d+) imap: session end .*reason=\"%s\""
                      % reason, d.log()[mark:])
    return pids if len(pids) >= n else None


class PasswordGuessing(HostileTestCase):
    """proxy_pass without auth_http: the backend judges passwords, and
    the proxy counts its refusals toward max_errors, else one
    connection could guess for ever."""

    def start_static(self, **server):
        server["proxy_pass"] = "127.0.0.1:%d" % self.dovecot.port
        return self.start(no_auth=True, server=server)

    def guess_until_closed(self, c, n=50):
        """Wrong passwords until the proxy closes; how many NOs."""
        refused = 0
        for i in range(n):
            c.cmd("g%d LOGIN alice wrong%d" % (i, i))
            line = c.readline()
            self.assertTrue(line.startswith("g%d NO " % i), line)
            refused += 1
            if c.buf or not c.still_open(0.2):
                break
        c.expect("* BYE too many failed logins")
        c.expect_closed()
        return refused

    def test_wrong_passwords_close_after_max_errors(self):
        d = self.start_static()
        c = self.connect()
        self.assertEqual(5, self.guess_until_closed(c))
        end = self.session_end(c.client_addr)
        self.assertEqual(end["reason"], "too many failed logins")
        self.assertEqual(len(re.findall(r"login failed client=%s "
                                        r"user=alice"
                                        % re.escape(c.client_addr),
                                        d.log())), 5)
        # the right password on a new connection still works
        self.login(self.connect())

    def test_max_errors_counts_both(self):
        # invalid commands and failed logins share the one budget
        self.start_static(max_errors=3)
        c = self.connect()
        c.cmd("a FOO")
        c.expect("a BAD invalid command")
        self.assertEqual(2, self.guess_until_closed(c))

    def test_sasl_guesses_count_too(self):
        self.start_static(max_errors=2)
        c = self.connect()
        for i in range(2):
            c.cmd("s%d AUTHENTICATE PLAIN AGFsaWNlAHdyb25n" % i)
            self.assertTrue(c.readline().startswith("s%d NO " % i))
        c.expect("* BYE too many failed logins")
        c.expect_closed()


class TrustedBackend(HostileTestCase):
    """A Dovecot that trusts the proxy (login_trusted_networks, as its
    documentation asks for proxies) believes the x-originating-ip of
    the ID before the login: it logs it, and its allow_nets and rate
    limits judge it.  Only the proxy may say who the client is; a
    client's own "x-" fields never reach the backend.  This class has a
    Dovecot of its own: the run's does not trust the proxy."""

    @classmethod
    def setUpClass(cls):
        super().setUpClass()
        tmp = tempfile.mkdtemp(prefix="dovecot-trusted-", dir=run_tmpdir())
        try:
            cls.trusted = dovecotlib.start(
                tmpdir=tmp,
                extra_conf="login_trusted_networks = 127.0.0.0/8\n"
                           "imap_id_log = *\n",
                extra_users={
                    # allowed only from where an attacker would claim
                    "netuser": ("netpass", "allow_nets=203.0.113.0/24"),
                    # allowed only from the test's client address
                    "localuser": ("localpass", "allow_nets=127.0.0.7/32"),
                })
        except dovecotlib.SkipDovecot as e:
            shutil.rmtree(tmp, ignore_errors=True)
            raise unittest.SkipTest("no trusted Dovecot: %s" % e)

    @classmethod
    def tearDownClass(cls):
        cls.trusted.stop()
        super().tearDownClass()

    def start_trusted(self, **server):
        server["proxy_pass"] = "127.0.0.1:%d" % self.trusted.port
        return self.start(no_auth=True, server=server)

    def dovecot_login(self, session, timeout=10):
        """Dovecot's log line of the login whose session id is ours."""
        pat = re.compile(r"^.*imap-login: .*Login: .*session=<%s>.*$"
                         % re.escape(session), re.M)
        return util.wait_until(lambda: pat.search(self.trusted.log()),
                               timeout, what="dovecot login of session %s"
                               % session).group(0)

    def login_as(self, c, user, password, tag="l"):
        c.cmd('%s LOGIN %s "%s"' % (tag, user, password))
        return c.read_until_tagged(tag)[-1]

    def end(self, c):
        c.cmd("z LOGOUT")
        c.read_until_tagged("z")
        return self.session_end(c.client_addr)

    def test_forged_originating_ip_never_reaches_the_backend(self):
        self.start_trusted()
        c = self.connect(source="127.0.0.7")
        c.cmd('i ID ("x-originating-ip" "203.0.113.66" '
              '"X-Originating-Port" "4711" "x-connected-ip" "192.0.2.1" '
              '"x-session-id" "forged" "X-FORWARD-user" "root" '
              '"name" "evil-client")')
        c.expect("* ID NIL")
        c.expect("i OK ID completed")
        line = self.login_as(c, "alice", self.password("alice"))
        self.assertTrue(line.startswith("l OK"), line)
        end = self.end(c)
        self.assertRegex(end["session"], r"^[A-Za-z0-9_-]{12}$")
        # Dovecot saw the real client, and took our session id
        login = self.dovecot_login(end["session"])
        self.assertIn("rip=127.0.0.7,", login)
        self.assertIn("lip=127.0.0.1,", login)
        log = self.trusted.log()
        for forged in ("203.0.113.66", "x-originating-port=4711,",
                       "192.0.2.1", "forged", "=root"):
            self.assertNotIn(forged, log)
        # the client's other fields are passed on after ours
        self.assertRegex(self.id_sent(end["session"]),
                         r"ID sent: x-originating-ip=127\.0\.0\.7, .*"
                         r"name=evil-client")

    def test_allow_nets_judges_the_real_address(self):
        self.start_trusted()
        c = self.connect(source="127.0.0.8")
        c.cmd('i ID ("x-originating-ip" "203.0.113.66")')
        c.read_until_tagged("i")
        line = self.login_as(c, "netuser", "netpass")
        self.assertTrue(line.startswith("l NO "), line)
        # and allow_nets sees the client, not the proxy's 127.0.0.1
        c = self.connect(source="127.0.0.7")
        line = self.login_as(c, "localuser", "localpass")
        self.assertTrue(line.startswith("l OK"), line)
        c = self.connect(source="127.0.0.9")
        line = self.login_as(c, "localuser", "localpass")
        self.assertTrue(line.startswith("l NO "), line)

    def id_sent(self, session):
        """Dovecot's log line of the ID it got in that session."""
        m = re.search(r"^.*imap-login: .*ID sent: .*session=<%s>.*$"
                      % re.escape(session), self.trusted.log(), re.M)
        self.assertIsNotNone(m, "no ID logged for session %s" % session)
        return m.group(0)

    def test_forward_off_sends_no_address(self):
        self.start_trusted(proxy_forward_client_ip=False)
        mark = len(self.trusted.log())
        c = self.connect(source="127.0.0.7")
        c.cmd('i ID ("x-originating-ip" "203.0.113.66" "name" "mua")')
        c.read_until_tagged("i")
        self.login(c)
        self.end(c)
        log = util.wait_until(
            lambda: (lambda t: t if "Login: user=<alice>" in t else None)(
                self.trusted.log()[mark:]), 10, what="dovecot's login")
        # Dovecot saw the proxy, and the client's own fields only
        self.assertRegex(log, r"Login: user=<alice>, .*rip=127\.0\.0\.1,")
        self.assertRegex(log, r"ID sent: name=mua:")
        self.assertNotIn("x-originating", log)
        self.assertNotIn("203.0.113.66", log)

    def test_client_address_sent_without_client_id(self):
        d = self.start_trusted()
        c = self.connect(source="127.0.0.7")
        self.login(c)
        end = self.end(c)
        self.assertIn("rip=127.0.0.7,", self.dovecot_login(end["session"]))
        self.assertIn("ID sent: x-originating-ip=127.0.0.7, "
                      "x-originating-port=%d, x-connected-ip=127.0.0.1, "
                      "x-connected-port=%d, x-session-id=%s:"
                      % (c.local_port, d.port, end["session"]),
                      self.id_sent(end["session"]))


def padded_hello(msg, pad):
    """The handshake message msg (a ClientHello) with an extension of a
    reserved type (GREASE, RFC 8701: servers ignore it) of pad zero
    bytes first among its extensions, its lengths fixed."""
    off = 4 + 2 + 32
    off += 1 + msg[off]                                     # session id
    off += 2 + int.from_bytes(msg[off:off + 2], "big")      # ciphers
    off += 1 + msg[off]                                     # compression
    exts = msg[off + 2:]
    exts = b"\x7a\x7a" + pad.to_bytes(2, "big") + b"\x00" * pad + exts
    body = msg[4:off] + len(exts).to_bytes(2, "big") + exts
    return b"\x01" + len(body).to_bytes(3, "big") + body


def records(msg, size=16384):
    """msg cut into handshake records of at most size bytes."""
    return b"".join(b"\x16\x03\x01" + len(msg[i:i + size]).to_bytes(2, "big")
                    + msg[i:i + size] for i in range(0, len(msg), size))


class BigHello(TlsCase):
    """A ClientHello larger than the worker's parser can hold (16 KB)
    is refused, not handed to libtls unchecked: else its ALPN list
    (ALPACA) would never be looked at."""

    def assert_alert(self, s, desc):
        """The proxy answers with this fatal alert, or, when it closed
        with our bytes unread, a reset that may overtake the alert."""
        s.settimeout(10)
        try:
            reply = s.recv(100)
        except ConnectionResetError:
            return
        self.assertEqual(b"\x15\x03\x03\x00\x02\x02" + bytes([desc]),
                         reply)

    def test_hello_over_16k_refused(self):
        d = self.start_tls()
        wire = client_hello_records(self.context(alpn=["h2"]), 16384)
        msg = wire[5:]
        self.assertEqual(len(msg), int.from_bytes(wire[3:5], "big"))
        for pad in (100, 17000, 60000):
            with self.subTest(pad=pad):
                mark = d.mark()
                s = socket.create_connection(("127.0.0.1", self.port),
                                             timeout=10)
                self._clients.append(s)
                big = padded_hello(msg, pad)
                send_quietly(s, records(big))
                reason, alert = ("ALPN lacks imap", 120) if pad < 16000 \
                    else ("hello too big", 50)
                # a fatal alert, never a ServerHello
                self.assert_alert(s, alert)
                d.wait_for_log(r'session end client=%s:%d .*reason="tls: '
                               r'client %s"' % (s.getsockname()[:2] +
                                                (reason,)), since=mark)

    def test_hello_that_cannot_be_parsed_refused(self):
        # a handshake record whose ClientHello is cut short inside:
        # the lengths disagree, so the hello cannot be read
        d = self.start_tls()
        wire = client_hello_records(self.context(alpn=["h2"]), 16384)
        msg = bytearray(wire[5:])
        # the extensions block claims one byte more than there is
        off = 4 + 2 + 32
        off += 1 + msg[off]
        off += 2 + int.from_bytes(msg[off:off + 2], "big")
        off += 1 + msg[off]
        n = int.from_bytes(msg[off:off + 2], "big") - 1
        msg[off:off + 2] = n.to_bytes(2, "big")
        mark = d.mark()
        s = socket.create_connection(("127.0.0.1", self.port), timeout=10)
        self._clients.append(s)
        send_quietly(s, records(bytes(msg)))
        self.assert_alert(s, 50)
        d.wait_for_log(r'session end client=%s:%d .*reason="tls: client '
                       r'hello unreadable"' % s.getsockname()[:2],
                       since=mark)


if __name__ == "__main__":
    unittest.main()
