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

"""Signals against the live daemon: SIGUSR1 reopens error_log
(logrotate moved the file), SIGHUP reloads (also when -f was a relative
path and the daemon changed to /), SIGTERM stops gracefully and
SIGQUIT and SIGINT fast (nginx has TERM and QUIT the other way round),
and every session a stop ends gets "* BYE" and its "session end" line.

The reopen and relative -f tests run the daemon as it runs in
production: without -d, so that it daemonizes, writes its pid file and
logs to the error_log file."""

import os
import re
import signal
import subprocess
import time

from lib import daemon as daemonlib
from lib import util
from lib.case import DaemonTestCase

BYE = "* BYE Server shutting down"


class DetachedDaemon:
    """imaprelayd without -d: it forks into the background.  Its pid
    comes from the pid file, its log is the error_log file."""

    def __init__(self, tmpdir, config_text, port, conf_arg):
        self.tmpdir = tmpdir
        self.port = port
        self.conf = os.path.join(tmpdir, "detached.conf")
        self.log_path = os.path.join(tmpdir, "error.log")
        self.pid_path = os.path.join(tmpdir, "imaprelayd.pid")
        self.conf_arg = conf_arg
        self.pid = None
        self.known_children = set()
        self.leftover_children = []
        self.write_config(config_text)

    def write_config(self, text):
        with open(self.conf, "w") as f:
            f.write(text)

    def start(self):
        r = subprocess.run([daemonlib.binary(), "-f", self.conf_arg],
                           cwd=self.tmpdir, stdin=subprocess.DEVNULL,
                           capture_output=True, timeout=30)
        if r.returncode != 0:
            raise AssertionError("imaprelayd exited %d: %s" % (
                r.returncode, r.stderr.decode(errors="replace")))
        self.wait_for_log(r"\bstartup\b", timeout=15)
        with open(self.pid_path) as f:
            self.pid = int(f.read())
        self.known_children.update(p[0] for p in util.descendants(self.pid))
        return self

    def log(self, path=None):
        try:
            with open(path or self.log_path, "rb") as f:
                return f.read().decode("utf-8", "replace")
        except OSError:
            return ""

    def mark(self):
        return len(self.log())

    def wait_for_log(self, regex, timeout=10, since=0, path=None):
        pat = re.compile(regex, re.M)
        try:
            return util.wait_until(
                lambda: pat.search(self.log(path)[since:]), timeout,
                interval=0.01, what="log line /%s/" % regex)
        except TimeoutError as e:
            raise AssertionError("%s; log:\n%s" % (
                e, util.tail(self.log(path)[since:])))

    def signal(self, sig):
        os.kill(self.pid, sig)

    def stop(self):
        if self.pid is None:
            return
        self.known_children.update(p[0] for p in util.descendants(self.pid))
        if util.pid_alive(self.pid):
            os.kill(self.pid, signal.SIGTERM)
            deadline = time.monotonic() + 15
            while util.pid_alive(self.pid) and time.monotonic() < deadline:
                time.sleep(0.01)
            if util.pid_alive(self.pid):
                os.kill(self.pid, signal.SIGKILL)
        deadline = time.monotonic() + 5
        for pid in self.known_children:
            while util.pid_alive(pid) and time.monotonic() < deadline:
                time.sleep(0.01)
        self.leftover_children = sorted(
            p for p in self.known_children if util.pid_alive(p))
        for p in self.leftover_children:
            os.kill(p, signal.SIGKILL)
        self.pid = None


class Detached(DaemonTestCase):

    def detached(self, **kw):
        port = util.free_port()
        # info: the session and reopen lines (nginx's default is error)
        top = {"error_log": (os.path.join(self.tmp, "error.log"), "info"),
               "pid": os.path.join(self.tmp, "imaprelayd.pid")}
        top.update(kw.pop("top", {}))
        d = DetachedDaemon(self.tmp, self.config(port=port, top=top, **kw),
                           port, "detached.conf")
        self._daemons.append(d)
        return d.start()

    def test_usr1_reopens_error_log(self):
        d = self.detached()
        auth_pids = self.titled(d, "auth")
        rotated = d.log_path + ".1"
        os.rename(d.log_path, rotated)
        d.signal(signal.SIGUSR1)
        d.wait_for_log(r"reopened error_log %s$" % re.escape(d.log_path))
        # every child writes to the new file: a session through a
        # worker that existed before the signal, and the auth process
        m = self.imap(port=d.port)
        m.login("alice", self.password("alice"))
        m.logout()
        d.wait_for_log(r"session end client=\S+ user=alice ")
        self.assertNotIn("session end", d.log(rotated))
        # the auth process too: it logs a service that is down
        self.auth.mode = "status500"
        m = self.imap(port=d.port)
        self.assertRaises(Exception, m.login, "alice", "secret")
        m.shutdown()
        d.wait_for_log(r"auth unavailable client=")
        self.assertNotIn("auth unavailable", d.log(rotated))
        # the signal stopped nothing
        self.assertEqual(auth_pids, self.titled(d, "auth"))

    def test_first_process_exits_once_the_daemon_serves(self):
        # what systemd's Type=forking relies on: when the command
        # returns, the pid file is there and clients are served
        d = self.detached()
        with open(d.pid_path) as f:
            self.assertEqual(int(f.read()), d.pid)
        self.assertRegex(d.log(), r"\bstartup\b")
        m = self.imap(port=d.port)
        m.login("alice", self.password("alice"))
        m.logout()

    def titled(self, d, title):
        return [p[0] for p in util.descendants(d.pid)
                if p[3].startswith("imaprelayd: " + title)]

    def test_relative_f_then_sighup_reloads(self):
        d = self.detached()
        c = self.connect(port=d.port, greeting=False)
        self.assertNotIn("reloaded.example", c.greeting())
        mark = d.mark()
        port = d.port
        d.write_config(self.config(port=port, top={
            "error_log": (d.log_path, "info"), "pid": d.pid_path},
            server={"server_name": "reloaded.example"}))
        d.signal(signal.SIGHUP)
        d.wait_for_log(r"reloaded configuration from %s$"
                       % re.escape(d.conf), since=mark)
        # spares of the old generation may take a client or two
        # before they read that they drain
        deadline = time.monotonic() + 10
        while True:
            c = self.connect(port=d.port, greeting=False)
            g = c.greeting()
            if "reloaded.example" in g or time.monotonic() > deadline:
                break
            c.close()
        self.assertRegex(g, r"^\* OK .*reloaded\.example")

    def test_children_ignore_signals_meant_for_the_parent(self):
        # pkill -HUP imaprelayd reaches every process: only the parent
        # acts on it
        d = self.detached()
        kids = [p[0] for p in util.descendants(d.pid)]
        mark = d.mark()
        for sig in (signal.SIGHUP, signal.SIGUSR1, signal.SIGQUIT,
                    signal.SIGINT):
            for pid in kids:
                os.kill(pid, sig)
        m = self.imap(port=d.port)
        m.login("alice", self.password("alice"))
        # a connection-mode worker ends with its session: not that one
        served = util.pids_holding_connection(
            d.port, m.sock.getsockname()[1], kids)
        m.logout()
        for pid in kids:
            if pid not in served:
                self.assertTrue(util.pid_alive(pid), pid)
        self.assertNotRegex(d.log()[mark:], r"killed by signal")


class Stop(DaemonTestCase):
    """Every session a stop ends is told BYE and logged."""

    def stop_with(self, sig, **kw):
        d = self.start(**kw)
        relayed = self.connect()
        self.login(relayed, tag="a")
        relayed.cmd("s SELECT INBOX")
        relayed.read_until_tagged("s")
        prelogin = self.connect()
        mark = d.mark()
        t0 = time.monotonic()
        d.signal(sig)
        for c in (relayed, prelogin):
            c.expect(BYE, timeout=5)
            c.expect_closed(5)
        self.assertEqual(d.proc.wait(10), 0)
        for c in (relayed, prelogin):
            end = self.session_end(c.client_addr)
            self.assertEqual(end["reason"], "shutdown")
        self.assertEqual(self.session_end(relayed.client_addr)["user"],
                         "alice")
        self.assertRegex(d.log()[mark:], r"\bexiting\b")
        return time.monotonic() - t0

    def test_sigquit_is_fast_and_says_bye(self):
        elapsed = self.stop_with(signal.SIGQUIT,
                                 top={"shutdown_timeout": "30s"})
        self.assertLess(elapsed, 5)

    def test_sigint_is_fast_and_says_bye(self):
        elapsed = self.stop_with(signal.SIGINT,
                                 top={"shutdown_timeout": "30s"})
        self.assertLess(elapsed, 5)

    def test_sigterm_says_bye_at_the_end_of_the_grace_time(self):
        elapsed = self.stop_with(signal.SIGTERM,
                                 top={"shutdown_timeout": "1500ms"})
        self.assertGreater(elapsed, 1.4)

    def test_sigquit_during_sigterm_cuts_the_grace_time(self):
        d = self.start(top={"shutdown_timeout": "60s"})
        c = self.connect()
        self.login(c)
        mark = d.mark()
        d.signal(signal.SIGTERM)
        d.wait_for_log(r"draining: no new clients", since=mark)
        c.cmd("n NOOP")
        self.assertTrue(c.read_until_tagged("n")[-1].startswith("n OK"))
        d.signal(signal.SIGQUIT)
        c.expect(BYE, timeout=5)
        self.assertEqual(d.proc.wait(10), 0)
        self.assertEqual(self.session_end(c.client_addr)["reason"],
                         "shutdown")

    def test_sigusr2_is_ignored(self):
        d = self.start()
        mark = d.mark()
        d.signal(signal.SIGUSR2)
        d.wait_for_log(r"SIGUSR2: no binary upgrade here, ignored",
                       since=mark)
        c = self.connect()
        self.login(c)
        self.assertTrue(d.running())


class StopShared(Stop):
    ISOLATION = "shared"
    WORKER_PROCESSES = 2
