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

"""What goes wrong around the proxy: the auth service or the backend
down, slow or talking nonsense; load; processes killed; reload; the
process titles and users; configuration checking."""

import imaplib
import os
import re
import signal
import threading
import time
import unittest

from lib import daemon as daemonlib
from lib import dovecot
from lib import util
from lib.case import DaemonTestCase, caps

UNAVAILABLE_AUTH = "a NO [UNAVAILABLE] authentication service unavailable"
UNAVAILABLE_BACKEND = "a NO [UNAVAILABLE] backend unavailable"


class AuthServiceFaults(DaemonTestCase):

    def _login_unavailable(self, bound, **kw):
        d = self.start(**kw)
        c = self.connect()
        mark = d.mark()
        t0 = time.monotonic()
        c.cmd("a LOGIN alice secret")
        c.expect(UNAVAILABLE_AUTH, timeout=bound + 10)
        elapsed = time.monotonic() - t0
        c.expect("* BYE authentication service unavailable")
        c.expect_closed()
        m = d.wait_for_log(r"login unavailable client=%s user=alice "
                           r'reason=".+"' % re.escape(c.client_addr),
                           since=mark)
        return elapsed, m.group(0)

    def test_auth_service_down(self):
        port = util.free_port()
        elapsed, _ = self._login_unavailable(
            5, auth_url="http://127.0.0.1:%d/auth" % port)
        self.assertLess(elapsed, 5)

    def test_auth_service_slow_past_timeout(self):
        self.auth.delay = 5
        elapsed, _ = self._login_unavailable(
            4, server={"auth_http_timeout": "1s"})
        self.assertGreaterEqual(elapsed, 0.9)
        self.assertLess(elapsed, 4)

    def test_auth_service_garbage(self):
        self.auth.mode = "garbage"
        elapsed, _ = self._login_unavailable(5)
        self.assertLess(elapsed, 5)

    def test_auth_service_500_without_auth_status(self):
        self.auth.mode = "status500"
        elapsed, _ = self._login_unavailable(5)
        self.assertLess(elapsed, 5)

    def test_auth_service_closes_mid_reply(self):
        self.auth.mode = "close"
        elapsed, _ = self._login_unavailable(5)
        self.assertLess(elapsed, 5)

    def test_auth_ok_without_server_or_port(self):
        self.auth.hook = lambda req: [("Auth-Status", "OK")]
        self._login_unavailable(5)

    def test_auth_ok_with_hostname_server(self):
        self.auth.hook = lambda req: [("Auth-Status", "OK"),
                                      ("Auth-Server", "not an address"),
                                      ("Auth-Port", "143")]
        self._login_unavailable(5)

    def test_auth_ok_with_port_out_of_range(self):
        self.auth.hook = lambda req: [("Auth-Status", "OK"),
                                      ("Auth-Server", "127.0.0.1"),
                                      ("Auth-Port", "65536")]
        self._login_unavailable(5)

    def test_auth_service_back_after_failure(self):
        # one bad answer closes that session only; the next one works
        self.auth.mode = "garbage"
        d = self.start()
        c = self.connect()
        c.cmd("a LOGIN alice secret")
        c.expect(UNAVAILABLE_AUTH)
        self.auth.mode = "normal"
        c2 = self.connect()
        self.login(c2)


class BackendFaults(DaemonTestCase):

    def test_backend_down(self):
        d = self.start()
        self.auth.backend = ("127.0.0.1", util.free_port())
        c = self.connect()
        mark = d.mark()
        t0 = time.monotonic()
        c.cmd("a LOGIN alice secret")
        c.expect(UNAVAILABLE_BACKEND)
        self.assertLess(time.monotonic() - t0, 5)
        c.expect("* BYE backend unavailable")
        c.expect_closed()
        d.wait_for_log(r'login unavailable client=%s user=alice reason=".+"'
                       % re.escape(c.client_addr), since=mark)

    def test_backend_not_imap(self):
        # the "backend" is the auth service: an HTTP server, no greeting
        # an IMAP client would accept
        self.start(server={"timeout": "2s"})
        self.auth.backend = ("127.0.0.1", self.auth.port)
        c = self.connect()
        c.cmd("a LOGIN alice secret")
        c.expect(UNAVAILABLE_BACKEND, timeout=15)
        c.expect("* BYE backend unavailable")
        c.expect_closed()

    def test_backend_rejects_login(self):
        self.auth.override_pass = "not-the-password"
        c = self.connect()
        c.cmd("a LOGIN alice secret")
        # Dovecot's RFC 5530 code goes on to the client
        c.expect("a NO [AUTHENTICATIONFAILED] backend rejected the login")
        c.expect("* BYE backend rejected the login")
        c.expect_closed()

    def test_backend_rejects_login_error_message_passed(self):
        self.start(server={"proxy_pass_error_message": True})
        self.auth.override_pass = "not-the-password"
        b = self.backend()
        b.cmd("a LOGIN alice not-the-password")
        want = b.readline()
        self.assertTrue(want.startswith("a NO "), want)
        c = self.connect()
        c.cmd("a LOGIN alice secret")
        c.expect(want)
        c.expect("* BYE backend rejected the login")
        c.expect_closed()


class Load(DaemonTestCase):

    def _many(self, n, isolation, workers):
        # n clients at once from one address: the limits against a
        # hostile address (on by default) are off here
        self.start(isolation=isolation, worker_processes=workers,
                   worker_connections=1024,
                   server={"limit_prelogin_per_ip": "off",
                           "limit_conn_rate": "off"})
        port = self.port
        errors = []
        done = []
        lock = threading.Lock()
        start = threading.Barrier(n, timeout=60)

        def session(i):
            user, password = dovecot.load_user(i)
            try:
                start.wait()
                m = imaplib.IMAP4("127.0.0.1", port, timeout=60)
                try:
                    typ, _ = m.login(user, password)
                    assert typ == "OK", typ
                    typ, _ = m.select("INBOX")
                    assert typ == "OK", typ
                except BaseException:
                    m.shutdown()
                    raise
                typ, _ = m.logout()     # closes the socket too
                assert typ == "BYE", typ
                with lock:
                    done.append(i)
            except Exception as e:
                with lock:
                    errors.append("%s: %r" % (user, e))
        threads = [threading.Thread(target=session, args=(i,), daemon=True)
                   for i in range(n)]
        for t in threads:
            t.start()
        deadline = time.monotonic() + 100
        for t in threads:
            t.join(max(0.1, deadline - time.monotonic()))
        self.assertEqual(errors, [])
        self.assertEqual(len(done), n)

    def test_200_concurrent_sessions_connection(self):
        self._many(200, "connection", 1)

    def test_200_concurrent_sessions_shared(self):
        self._many(200, "shared", 2)


class Processes(DaemonTestCase):

    def _logged_in(self, tag="a"):
        c = self.connect()
        self.login(c, tag=tag)
        return c

    def _worker_of(self, d, c):
        """The imap worker that holds client c's connection."""
        pids = util.pids_holding_connection(d.port, c.local_port,
                                            d.pids("imap"))
        self.assertEqual(len(pids), 1, "worker of %s: %s"
                         % (c.client_addr, pids))
        return pids[0]

    def _kill_worker(self, isolation):
        if not os.path.isdir("/proc/self/fd"):
            self.skipTest("needs /proc to find a session's worker")
        # bursts of clients kept open, not logged in, from one address
        d = self.start(isolation=isolation, worker_processes=2,
                       server={"limit_prelogin_per_ip": "off"})
        a = self._logged_in("a")
        victim = self._worker_of(d, a)
        others = []
        # In shared mode which worker accepts is the kernel's choice and
        # one worker may win every accept of clients that come one by
        # one; a burst of connections opened together, kept open,
        # reaches both.
        for burst in range(5):
            pending = [self.connect(greeting=False) for i in range(12)]
            for b in pending:
                b.expect_prefix("* OK ")
                if self._worker_of(d, b) != victim:
                    others.append(b)
            if others:
                break
        self.assertTrue(others, "no session on another worker")
        b = others[0]
        self.login(b, tag="b")
        before = set(d.pids("imap"))
        mark = d.mark()
        os.kill(victim, signal.SIGKILL)
        d.wait_for_log(r"\b%d\b.*(signal 9|killed)|(signal 9|killed).*\b%d\b"
                       % (victim, victim), since=mark)
        self.assertTrue(a.is_closed(10))
        # the other session keeps working
        b.cmd("x NOOP")
        lines = b.read_until_tagged("x")
        self.assertTrue(lines[-1].startswith("x OK"), lines)
        if isolation == "shared":
            # the parent restarts the worker: two of them again
            util.wait_until(lambda: len(set(d.pids("imap")) - {victim}) >=
                            len(before), 10, what="a new imap worker")
            self.assertNotIn(victim, d.pids("imap"))
        c = self.connect()
        self.login(c, tag="c")

    def test_sigkill_worker_connection_mode(self):
        self._kill_worker("connection")

    def test_sigkill_worker_shared_mode(self):
        self._kill_worker("shared")

    def test_sigkill_auth_process_restarted(self):
        d = self.start()
        old = d.pids("auth")
        self.assertEqual(len(old), 1, d.children())
        mark = d.mark()
        os.kill(old[0], signal.SIGKILL)
        d.wait_for_log(r"\b%d\b" % old[0], since=mark)
        new = util.wait_until(lambda: [p for p in d.pids("auth")
                                       if p != old[0]], 10,
                              what="a new auth process")
        self.assertEqual(len(new), 1)
        # the workers get the new channel through the parent; the first
        # login may still race it, so allow a few seconds
        deadline = time.monotonic() + 5
        while True:
            c = self.connect()
            c.cmd("a LOGIN alice secret")
            line = c.read_until_tagged("a")[-1]
            if line.startswith("a OK") or time.monotonic() > deadline:
                break
            c.close()
        self.assertTrue(line.startswith("a OK"), line)

    def test_sighup_reload_keeps_sessions_and_applies_config(self):
        d = self.start()
        old = self._logged_in("a")
        pre = self.connect()        # not logged in yet, old config
        new_caps = "IMAP4rev1 X-RELOADED"
        d.write_config(self.config(port=d.port, server={
            "imap_capabilities": tuple(new_caps.split())}))
        mark = d.mark()
        d.signal(signal.SIGHUP)
        d.wait_for_log(r"reload", since=mark)
        want = "* OK [CAPABILITY %s] IMAP4 ready" % caps(base=new_caps)
        deadline = time.monotonic() + 10
        while True:
            c = self.connect(greeting=False)
            g = c.readline()
            if g == want or time.monotonic() > deadline:
                break
            c.close()
        self.assertEqual(g, want)
        # the established sessions run on
        old.cmd("b NOOP")
        lines = old.read_until_tagged("b")
        self.assertTrue(lines[-1].startswith("b OK"), lines)
        self.login(pre, tag="p")
        self.assertTrue(d.running())

    def test_sighup_with_broken_config_keeps_running(self):
        d = self.start()
        with open(d.conf, "a") as f:
            f.write("this is not a directive;\n")
        mark = d.mark()
        d.signal(signal.SIGHUP)
        d.wait_for_log(r"reload", since=mark)
        self.assertTrue(d.running())
        c = self.connect()
        self.login(c)

    def test_process_titles_and_users(self):
        d = self.start(isolation="shared", worker_processes=2)
        procs = {p[0]: p for p in d.children()}
        titles = [p[3] for p in procs.values()]
        self.assertEqual(d.pids("parent"), [d.pid])
        self.assertEqual(len(d.pids("auth")), 1, titles)
        self.assertEqual(len(d.pids("imap")), 2, titles)
        # exactly the title, nothing after it (libbsd may add a ".")
        self.assertEqual(sorted(t.strip() for t in titles),
                         ["imaprelayd: auth", "imaprelayd: imap",
                          "imaprelayd: imap"])
        if os.geteuid() == 0:
            for pid in d.pids("auth") + d.pids("imap"):
                self.assertNotEqual(procs[pid][2], "root", procs[pid])

    def test_process_titles_connection_mode(self):
        # the template forks the spares; it is no imap worker itself
        d = self.start(top={"spare_workers": 2})
        util.wait_until(lambda: len(d.pids("imap")) == 2, 10,
                        what="two spares")
        titles = sorted(p[3].strip() for p in d.children())
        self.assertEqual(titles, ["imaprelayd: auth", "imaprelayd: imap",
                                  "imaprelayd: imap",
                                  "imaprelayd: template"])
        if os.geteuid() == 0:
            procs = {p[0]: p for p in d.children()}
            for pid in d.pids("template") + d.pids("imap"):
                self.assertNotEqual(procs[pid][2], "root", procs[pid])

    def test_sigterm_exits_zero(self):
        d = self.start()
        c = self.connect()
        c.cmd("a NOOP")
        c.expect("a OK NOOP completed")
        c.close()
        self.assertEqual(d.stop(), 0)


class ConfigCheck(DaemonTestCase):

    def _write(self, name, text):
        path = os.path.join(self.tmp, name)
        with open(path, "w") as f:
            f.write(text)
        return path

    def test_check_good_config(self):
        path = self._write("good.conf", self.config())
        code, err = daemonlib.check_config(path)
        self.assertEqual(code, 0, err)

    def _bad(self, text, line):
        path = self._write("bad.conf", text)
        code, err = daemonlib.check_config(path)
        self.assertEqual(code, 1, err)
        self.assertIn("%s:%d:" % (path, line), err)

    def test_check_unknown_directive(self):
        text = self.config().replace("\tserver {\n",
                                     "\tno_such_directive on;\n\tserver {\n",
                                     1)
        line = text.splitlines().index("\tno_such_directive on;") + 1
        self._bad(text, line)

    def _noted(self, text, line, note):
        """Accepted as nginx accepts it, with a notice at its line."""
        path = self._write("noted.conf", text)
        code, err = daemonlib.check_config(path)
        self.assertEqual(code, 0, err)
        self.assertIn("[notice]", err)
        self.assertIn("%s:%d: %s" % (path, line, note), err)

    def test_check_smtp_directive_noted(self):
        text = self.config().replace("\tserver {\n",
                                     "\tsmtp_auth login;\n\tserver {\n", 1)
        line = text.splitlines().index("\tsmtp_auth login;") + 1
        self._noted(text, line, '"smtp_auth" and the other pop3/smtp '
                    'directives have no effect')

    def test_check_http_block_noted(self):
        text = self.config() + "http {\n}\n"
        line = text.splitlines().index("http {") + 1
        self._noted(text, line, '"http" block skipped')

    def test_check_missing_semicolon(self):
        path = self._write("bad.conf", "worker_processes 1\nevents {\n}\n")
        code, err = daemonlib.check_config(path)
        self.assertEqual(code, 1, err)
        self.assertRegex(err, re.escape(path) + r":[12]:")


if __name__ == "__main__":
    unittest.main()
