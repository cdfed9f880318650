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

"""The sandboxes of the children, on Linux: what /proc says about them
(seccomp filter, no_new_privs, user, chroot), and what a child that
tries to open a file, exec a program or bind a port gets: an error
from the sandbox or death by SIGSYS, after which the parent restarts it
and the other sessions run on.

The attempts need obj/regress/imaprelayd-regress, the daemon built with
-DREGRESS_TRIGGERS (make regress-build): its imap worker answers a
pre-login "XREGRESS open|exec|bind", its auth process a login as
xregress-open|exec|bind.  ./imaprelayd has no such thing."""

import os
import pwd
import re
import shutil
import sys
import time
import unittest

from lib import daemon as daemonlib
from lib import util
from lib.case import DaemonTestCase

REGRESS_BIN = os.environ.get("IMAPRELAYD_REGRESS", os.path.join(
    daemonlib.ROOT, "obj", "regress", "imaprelayd-regress"))
SIGSYS = 31
# Landlock answers EACCES, the filter's own refusals EACCES too; EPERM
# would be a seccomp or capability refusal
REFUSED = r"(Permission denied|Operation not permitted)"


def proc_status(pid):
    """/proc/PID/status as a dict of str."""
    out = {}
    with open("/proc/%d/status" % pid) as f:
        for line in f:
            k, _, v = line.partition(":")
            out[k] = v.strip()
    return out


def need_linux(test):
    if not sys.platform.startswith("linux"):
        test.skipTest("the Linux sandbox (seccomp, Landlock) only")
    if os.environ.get("IMAPRELAYD_SANITIZE") == "1":
        test.skipTest("sanitizer build: its leak scan needs what the "
                      "sandbox refuses, so the sandbox is off there")


def need_root(test):
    if os.geteuid() != 0:
        test.skipTest("not root: the children keep our user and no "
                      "chroot happens")


class SandboxState(DaemonTestCase):
    """What every child looks like from /proc."""

    def setUp(self):
        need_linux(self)
        super().setUp()

    def _children(self, d):
        # a logged-in client: one worker serving, spares beside it
        c = self.connect()
        self.login(c)
        auth, imap = d.pids("auth"), d.pids("imap")
        self.assertEqual(len(auth), 1, d.children())
        self.assertGreaterEqual(len(imap), 1, d.children())
        return auth + imap

    def test_children_have_seccomp_filter_and_no_new_privs(self):
        d = self.start()
        for pid in self._children(d):
            st = proc_status(pid)
            self.assertEqual(st.get("Seccomp"), "2", (pid, st))
            self.assertEqual(st.get("NoNewPrivs"), "1", (pid, st))

    def test_parent_has_no_new_privs_and_no_filter(self):
        # forks, execs, binds and reads files on reload: no allow-list
        d = self.start()
        st = proc_status(d.pid)
        self.assertEqual(st.get("NoNewPrivs"), "1", st)
        self.assertEqual(st.get("Seccomp"), "0", st)

    def test_children_run_as_the_unprivileged_user(self):
        need_root(self)
        d = self.start()
        pw = pwd.getpwnam(daemonlib.DAEMON_USER)
        for pid in self._children(d):
            st = proc_status(pid)
            uids = st["Uid"].split()
            gids = st["Gid"].split()
            self.assertEqual(set(uids), {str(pw.pw_uid)}, (pid, uids))
            self.assertEqual(set(gids), {str(pw.pw_gid)}, (pid, gids))
            self.assertEqual(st["Groups"].split(), [str(pw.pw_gid)])

    def test_children_are_chrooted(self):
        need_root(self)
        d = self.start()
        pw = pwd.getpwnam(daemonlib.DAEMON_USER)
        roots = {"/var/empty", pw.pw_dir}
        for pid in self._children(d):
            root = os.readlink("/proc/%d/root" % pid)
            self.assertIn(root, roots, pid)
            self.assertNotEqual(root, "/", pid)


class SandboxAttempts(DaemonTestCase):
    """A child doing what a compromised one would: the regress build's
    triggers open /etc/passwd (or / when chrooted), exec /bin/sh, bind
    TCP 127.0.0.1:0, connect to 127.0.0.1:PORT.  The imap worker is one
    the template forked (isolation connection)."""

    def setUp(self):
        need_linux(self)
        if not os.access(REGRESS_BIN, os.X_OK):
            self.skipTest("%s not built (make regress-build)"
                          % REGRESS_BIN)
        super().setUp()
        # under its own name: process titles are "imaprelayd: imap"
        bindir = os.path.join(self.tmp, "bin")
        os.mkdir(bindir)
        os.chmod(bindir, 0o755)
        path = os.path.join(bindir, "imaprelayd")
        shutil.copy2(REGRESS_BIN, path)
        old = os.environ.get("IMAPRELAYD")
        os.environ["IMAPRELAYD"] = path

        def restore():
            if old is None:
                os.environ.pop("IMAPRELAYD", None)
            else:
                os.environ["IMAPRELAYD"] = old
        self.addCleanup(restore)

    def _started(self, what):
        d = self.daemon
        if what == "exec" and "SANDBOX_DEBUG build" in d.log():
            self.skipTest("a SANDBOX_DEBUG build traps refused calls "
                          "instead of killing")
        return d

    def _session(self, tag="s"):
        """A session logged in through the proxy and relaying."""
        c = self.connect()
        self.login(c, tag=tag)
        c.cmd("%s1 SELECT INBOX" % tag)
        lines = c.read_until_tagged("%s1" % tag)
        self.assertTrue(lines[-1].startswith("%s1 OK" % tag), lines)
        return c

    def _still_works(self, c, tag="s"):
        c.cmd("%s2 NOOP" % tag)
        lines = c.read_until_tagged("%s2" % tag)
        self.assertTrue(lines[-1].startswith("%s2 OK" % tag), lines)

    def _killed(self, d, what, pid, mark):
        d.wait_for_log(r"%s pid %d killed by signal %d, restarting"
                       % (what, pid, SIGSYS), since=mark)

    # the imap worker

    def _imap_attempt(self, what):
        """('refused', text) or ('killed', None); fails if allowed."""
        d = self._started(what)
        other = self._session()
        c = self.connect()
        pids = util.pids_holding_connection(d.port, c.local_port,
                                            d.pids("imap"))
        self.assertEqual(len(pids), 1, pids)
        mark = d.mark()
        c.cmd("x XREGRESS %s" % what)
        if c.is_closed(10):
            self._killed(d, "imap worker", pids[0], mark)
            result = ("killed", None)
        else:
            line = c.readline()
            self.assertNotRegex(line, r"^x OK", "%s allowed" % what)
            self.assertRegex(line, r"^x NO %s refused: %s$"
                             % (what, REFUSED))
            result = ("refused", line)
        self._still_works(other)
        # and new clients are served
        c2 = self.connect()
        self.login(c2, tag="n")
        return result

    def test_imap_worker_cannot_open_files(self):
        self._imap_attempt("open")

    def test_imap_worker_cannot_exec(self):
        self.assertEqual(self._imap_attempt("exec")[0], "killed")

    def test_imap_worker_cannot_bind(self):
        self._imap_attempt("bind")

    def test_imap_worker_cannot_connect(self):
        # issue 9: a compromised worker that would reach the auth
        # service itself, past the auth process and its limits; the
        # auth process connects to the backends for it
        self.assertEqual(
            self._imap_attempt("connect-%d" % self.auth.port)[0],
            "refused")

    def test_unknown_trigger_answers(self):
        # the trigger itself answers: an unknown one is refused, the
        # session goes on (so a silent close above means a kill)
        c = self.connect()
        c.cmd("x XREGRESS nothing")
        c.expect("x NO nothing refused: unknown trigger")
        c.cmd("y NOOP")
        c.expect("y OK NOOP completed")

    # the auth process

    def _login_again(self, d):
        # the workers get the new auth channel through the parent; the
        # first login may race it
        deadline = time.monotonic() + 10
        while True:
            c = self.connect()
            c.cmd("n LOGIN alice %s" % self.password("alice"))
            line = c.read_until_tagged("n")[-1]
            if line.startswith("n OK") or time.monotonic() > deadline:
                break
            c.close()
            time.sleep(0.1)
        self.assertTrue(line.startswith("n OK"), line)

    def _auth_attempt(self, what):
        d = self._started(what)
        other = self._session()
        auth = d.pids("auth")
        self.assertEqual(len(auth), 1, d.children())
        c = self.connect()
        mark = d.mark()
        c.cmd("a LOGIN xregress-%s secret" % what)
        line = c.read_until_tagged("a")[-1]
        self.assertNotRegex(line, r"allowed", "%s allowed" % what)
        if re.match(r"a NO \[UNAVAILABLE\]", line):
            self._killed(d, "auth process", auth[0], mark)
            util.wait_until(lambda: [p for p in d.pids("auth")
                                     if p != auth[0]], 10,
                            what="a new auth process")
            result = ("killed", line)
        else:
            self.assertRegex(line, r"^a NO \[AUTHENTICATIONFAILED\] "
                             r"%s refused: %s$" % (what, REFUSED))
            self.assertEqual(d.pids("auth"), auth)
            result = ("refused", line)
        self._still_works(other)
        self._login_again(d)
        return result

    def test_auth_process_cannot_open_files(self):
        self._auth_attempt("open")

    def test_auth_process_cannot_exec(self):
        self.assertEqual(self._auth_attempt("exec")[0], "killed")

    def test_auth_process_cannot_bind(self):
        self._auth_attempt("bind")


class SandboxAttemptsShared(SandboxAttempts):
    """The same, in an exec'd worker of isolation shared (the imap
    role's own filter rather than the one a forked worker stacks)."""
    ISOLATION = "shared"

    # a kill takes every session of a shared worker with it
    test_imap_worker_cannot_exec = None
    # the auth process is the same in both modes
    test_auth_process_cannot_open_files = None
    test_auth_process_cannot_exec = None
    test_auth_process_cannot_bind = None
    test_unknown_trigger_answers = None


if __name__ == "__main__":
    unittest.main()
