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

"""error_log as nginx has it (issue 10 item 1, issue 14 item 3, issue
11 item 3): at the top level, in mail{} and in every server{}, with
its level applied; a server's sessions logged to the server's own
destination, by the imap workers and by the auth process alike, from
descriptors the parent opened; syslog:server= datagrams formatted as
nginx's; SIGUSR1 reopens every file; a missing /dev/log said on stderr
at start; RLIMIT_NOFILE raised to fit the connection cap, or a clear
word that it cannot be.

The daemon runs with "daemon off;" and without -d, so that it logs as
its configuration says, not to stderr."""

import os
import re
import shutil
import signal
import socket
import subprocess
import time
import unittest

from lib import daemon as daemonlib
from lib import util
from lib.case import DaemonTestCase


def read(path):
    try:
        with open(path, errors="replace") as f:
            return f.read()
    except FileNotFoundError:
        return ""


def wait_for(path, regex, timeout=10):
    pat = re.compile(regex, re.M)
    try:
        return util.wait_until(lambda: pat.search(read(path)), timeout,
                               interval=0.01, what="/%s/ in %s"
                               % (regex, path))
    except TimeoutError as e:
        raise AssertionError("%s:\n%s" % (e, util.tail(read(path))))


class ErrorLog(DaemonTestCase):

    def start_logged(self, servers, top=None, **kw):
        """No -d, daemon off, the main error_log at info in the file the
        harness reads for "startup"; servers: extra server blocks."""
        port = util.free_port()
        name = "imaprelayd%d" % len(self._daemons)
        log = os.path.join(self.tmp, name + ".log")
        t = {"daemon": "off", "error_log": (log, "info")}
        t.update(top or {})
        text = self.config(port=port, top=t, servers=servers, **kw)
        d = daemonlib.Daemon(self.tmp, text, port, name=name)
        d.flags = []
        self._daemons.append(d)
        d.start()
        self._daemon = self._daemon or d
        return d

    def session(self, port, user="alice"):
        c = self.connect(port=port)
        local = c.local_port
        self.login(c, user=user)
        c.cmd("b LOGOUT")
        c.read_until_tagged("b")
        c.close()
        return local

    def test_levels_and_servers_own_logs(self):
        a_log = os.path.join(self.tmp, "a.log")
        b_log = os.path.join(self.tmp, "b.log")
        a_port, b_port = util.free_port(), util.free_port()
        dead = util.free_port()
        d = self.start_logged([
            {"listen": "127.0.0.1:%d" % a_port,
             "auth_http": "http://127.0.0.1:%d/auth" % dead,
             "error_log": (a_log, "warn")},
            {"listen": "127.0.0.1:%d" % b_port,
             "auth_http": self.auth.url,
             "error_log": (b_log, "info")}])
        # server b: an info line, in b's file only
        cport = self.session(b_port)
        wait_for(b_log, r"\[info\] \d+ imap: session end client=127\.0\.0"
                 r"\.1:%d user=alice" % cport)
        # server a: its auth service is down; error lines of both the
        # auth process and the worker land in a's file
        c = self.connect(port=a_port)
        c.cmd('a LOGIN alice "%s"' % self.password("alice"))
        self.assertTrue(c.read_until_tagged("a")[-1].startswith(
            "a NO [UNAVAILABLE]"))
        c.close()
        wait_for(a_log, r"\[error\] \d+ auth: auth unavailable "
                 r"client=127\.0\.0\.1 user=alice")
        wait_for(a_log, r"\[error\] \d+ imap: login unavailable")
        # a's level is warn: its info line (session end) is not written
        cport = self.session(d.port)      # the first server: main log
        wait_for(d.log_path, r"session end client=127\.0\.0\.1:%d" % cport)
        self.assertNotIn("[info]", read(a_log))
        # and the main log has none of a's or b's lines
        main = read(d.log_path)
        self.assertNotIn("login unavailable", main)
        self.assertEqual(len(re.findall(r"session end", main)), 1, main)
        self.assertNotIn("session end", read(a_log))

    def test_mail_level_error_log_is_inherited(self):
        m_log = os.path.join(self.tmp, "mail.log")
        d = self.start_logged([], mail={"error_log": (m_log, "info")})
        cport = self.session(d.port)
        wait_for(m_log, r"session end client=127\.0\.0\.1:%d" % cport)
        self.assertNotIn("session end", read(d.log_path))

    def test_main_level_applied(self):
        """error_log FILE warn: the info lines are not written."""
        port = util.free_port()
        log = os.path.join(self.tmp, "warn.log")
        text = self.config(port=port, top={"daemon": "off",
                                           "error_log": (log, "warn")})
        d = daemonlib.Daemon(self.tmp, text, port, name="warn")
        d.flags = []
        d.log_path = log
        self._daemons.append(d)
        # no "startup" line at warn: start it by hand, wait for the port
        d.proc = subprocess.Popen([daemonlib.binary(), "-f", d.conf],
                                  stdin=subprocess.DEVNULL,
                                  stdout=subprocess.DEVNULL,
                                  stderr=subprocess.PIPE, cwd=self.tmp)
        util.wait_until(lambda: util.port_accepts("127.0.0.1", port), 10,
                        what="port %d" % port)
        self.session(port)
        # a warn line to prove the file is written: SIGUSR2 is refused
        d.signal(signal.SIGUSR2)
        wait_for(log, r"\[warn\] \d+ parent: SIGUSR2: no binary upgrade")
        self.assertNotIn("[info]", read(log))

    def syslog_socket(self, family, addr):
        s = socket.socket(family, socket.SOCK_DGRAM)
        s.bind(addr)
        s.settimeout(10)
        self.addCleanup(s.close)
        return s

    def datagrams(self, s, regex, timeout=10):
        """The datagrams until one matches regex; that one."""
        deadline = time.monotonic() + timeout
        seen = []
        while time.monotonic() < deadline:
            try:
                data = s.recv(4096).decode("utf-8", "replace")
            except socket.timeout:
                break
            seen.append(data)
            if re.search(regex, data):
                return data
        self.fail("no datagram /%s/ in %s" % (regex, seen))

    def test_syslog_udp_as_nginx(self):
        s = self.syslog_socket(socket.AF_INET, ("127.0.0.1", 0))
        port = s.getsockname()[1]
        sport = util.free_port()
        self.start_logged([{
            "listen": "127.0.0.1:%d" % sport,
            "auth_http": self.auth.url,
            "error_log": ("syslog:server=127.0.0.1:%d,facility=local3,"
                          "tag=relay,severity=error" % port, "info")}])
        cport = self.session(sport)
        line = self.datagrams(s, r"session end client=127\.0\.0\.1:%d"
                              % cport)
        # <local3 * 8 + info>Mmm dd hh:mm:ss HOST TAG: nginx's line
        self.assertRegex(line, r"^<158>[A-Z][a-z]{2} [ \d]\d "
                         r"\d\d:\d\d:\d\d %s relay: "
                         r"\d{4}/\d\d/\d\d \d\d:\d\d:\d\d \[info\] \d+ "
                         r"imap: session end " % re.escape(
                             socket.gethostname()))

    def test_syslog_unix_nohostname(self):
        path = os.path.join(self.tmp, "log.sock")
        s = self.syslog_socket(socket.AF_UNIX, path)
        os.chmod(path, 0o666)
        sport = util.free_port()
        self.start_logged([{
            "listen": "127.0.0.1:%d" % sport,
            "auth_http": self.auth.url,
            "error_log": ("syslog:server=unix:%s,nohostname" % path,
                          "info")}])
        cport = self.session(sport)
        line = self.datagrams(s, r"session end client=127\.0\.0\.1:%d"
                              % cport)
        # local7 and the tag by default, no host name
        self.assertRegex(line, r"^<190>[A-Z][a-z]{2} [ \d]\d "
                         r"\d\d:\d\d:\d\d imaprelayd: \d{4}/")

    def test_sigusr1_reopens_a_servers_file(self):
        a_log = os.path.join(self.tmp, "a.log")
        a_port = util.free_port()
        d = self.start_logged([{"listen": "127.0.0.1:%d" % a_port,
                                "auth_http": self.auth.url,
                                "error_log": (a_log, "info")}])
        cport = self.session(a_port)
        wait_for(a_log, r"session end client=127\.0\.0\.1:%d" % cport)
        os.rename(a_log, a_log + ".1")
        mark = d.mark()
        d.signal(signal.SIGUSR1)
        d.wait_for_log(r"reopened error_log", since=mark)
        cport = self.session(a_port)
        wait_for(a_log, r"session end client=127\.0\.0\.1:%d" % cport)
        self.assertNotIn("127.0.0.1:%d" % cport, read(a_log + ".1"))

    def test_missing_dev_log_said_on_stderr(self):
        """Without error_log lines go to syslog: with no /dev/log that
        is nowhere, and the operator hears it at start."""
        wrap = []
        if os.path.exists("/dev/log"):
            if os.geteuid() != 0 or shutil.which("unshare") is None:
                self.skipTest("/dev/log exists and no mount namespace to "
                              "hide it")
            empty = os.path.join(self.tmp, "not-a-socket")
            open(empty, "w").close()
            wrap = ["unshare", "--mount", "sh", "-c",
                    'mount --bind "$0" /dev/log && exec "$@"', empty]
        port = util.free_port()
        conf = os.path.join(self.tmp, "nolog.conf")
        with open(conf, "w") as f:
            f.write(self.config(port=port, top={"daemon": "off"}))
        errpath = os.path.join(self.tmp, "nolog.stderr")
        with open(errpath, "wb") as err:
            p = subprocess.Popen(wrap + [daemonlib.binary(), "-f", conf],
                                 stdin=subprocess.DEVNULL,
                                 stdout=subprocess.DEVNULL, stderr=err,
                                 cwd=self.tmp)
        try:
            wait_for(errpath, r"^imaprelayd: syslog: /dev/log: .*: log "
                     r"lines are lost; set error_log")
        finally:
            p.send_signal(signal.SIGTERM)
            p.wait(timeout=20)


class ErrorLogShared(ErrorLog):
    """The same with isolation shared: one worker, many servers'
    sessions, each line to its own server's destination."""
    ISOLATION = "shared"


def nofile(pid):
    """The soft RLIMIT_NOFILE of a process, from /proc."""
    with open("/proc/%d/limits" % pid) as f:
        for line in f:
            if line.startswith("Max open files"):
                return int(line.split()[3])
    return None


class Rlimit(DaemonTestCase):

    def start_limited(self, soft, hard=None, **kw):
        """The daemon started with a low soft limit, as a shell has."""
        port = util.free_port()
        d = daemonlib.Daemon(self.tmp, self.config(port=port, **kw), port)
        limits = 'ulimit -Sn "$0"' if hard is None else \
            'ulimit -Sn "$0" && ulimit -Hn %d' % hard
        d.wrapper = ["sh", "-c", limits + ' && exec "$@"', str(soft)]
        self._daemons.append(d)
        d.start()
        self._daemon = d
        return d

    def test_raised_to_fit_the_cap(self):
        # isolation connection: the parent and auth hold one per client
        d = self.start_limited(256, hard=8192, worker_connections=3000)
        for pid in [d.pid] + d.pids("auth") + d.pids("imap"):
            self.assertEqual(nofile(pid), 3000 + 64, pid)

    def test_worker_rlimit_nofile(self):
        # as nginx: both limits, exactly, whatever the cap
        d = self.start_limited(256, top={"worker_rlimit_nofile": 3000})
        for pid in [d.pid] + d.pids("imap"):
            self.assertEqual(nofile(pid), 3000, pid)

    def test_cannot_raise_says_so(self):
        d = self.start_limited(256, hard=4096, worker_connections=10000)
        d.wait_for_log(r"\[warn\] \d+ parent: open files limit 4096 is "
                       r"below the 10064 a process may need at the cap of "
                       r"10000 clients")
        self.assertEqual(nofile(d.pid), 4096)


if __name__ == "__main__":
    unittest.main()
