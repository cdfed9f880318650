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

"""A compromised imap worker against the parent and the auth process
(issue 9, item 7): whatever a worker sends, neither exits.  A worker
that sends a type it may not send, a malformed message or accounting
it cannot hold (a second session in connection mode, more than
worker_connections in shared mode, a close it never opened) is killed
by the parent, logged with its pid, and its sessions stop counting:
the cap stays exact for everyone else.

The attacks need obj/regress/imaprelayd-regress, the daemon built with
-DREGRESS_TRIGGERS (make regress-build): its worker answers a pre-login
"XREGRESS imsg-<what>" by sending the parent a forged message, and
"XREGRESS auth-<what>" by sending it to the auth process."""

import os
import shutil
import unittest

from lib import daemon as daemonlib
from lib import util
from lib.case import DaemonTestCase
from lib.imapclient import Closed

REGRESS_BIN = os.environ.get("IMAPRELAYD_REGRESS", os.path.join(
    daemonlib.ROOT, "obj", "regress", "imaprelayd-regress"))
BYE_TOO_MANY = "* BYE [UNAVAILABLE] too many connections"


class ForgedCase(DaemonTestCase):
    CAP = 3

    def setUp(self):
        if not os.access(REGRESS_BIN, os.X_OK):
            self.skipTest("%s not built (make regress-build)" % REGRESS_BIN)
        super().setUp()
        # under its own name: process titles are "imaprelayd: ..."
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

    def start_capped(self):
        if self.ISOLATION == "connection":
            return self.start(worker_connections=self.CAP,
                              top={"spare_workers": 2})
        return self.start(worker_connections=self.CAP)

    def worker_of(self, d, c):
        pids = util.pids_holding_connection(d.port, c.local_port,
                                            d.pids("imap"))
        self.assertEqual(len(pids), 1, pids)
        return pids[0]

    def attack(self, what, logged):
        """A client whose worker sends the forged message; returns the
        worker's pid once the parent logged its kill (logged: the
        regex of the reason)."""
        d = self.daemon
        c = self.connect()
        pid = self.worker_of(d, c)
        mark = d.mark()
        c.cmd("x XREGRESS imsg-%s" % what)
        d.wait_for_log(r"imap worker pid %d: %s \(imsg \d+, \d+ bytes\), "
                       r"killed$" % (pid, logged) if logged else
                       r"imap worker pid %d: a malformed message, killed$"
                       % pid, since=mark)
        d.wait_for_log(r"imap worker pid %d killed by signal 9" % pid,
                       since=mark)
        # its answer may have left before the kill; then nothing more
        try:
            while True:
                c.readline(timeout=10)
        except Closed:
            pass
        self.assertTrue(d.running())
        return pid

    def check_cap(self, held):
        """With `held` sessions open, exactly CAP - held more are
        greeted and the next one is refused."""
        d = self.daemon
        more = []

        def room():
            # the parent's admissions reach the spares a moment later
            for c in more:
                c.close()
            more[:] = []
            for _ in range(self.CAP - held):
                c = self.connect(greeting=False)
                more.append(c)
                if not c.readline().startswith("* OK "):
                    return False
            return True
        util.wait_until(room, 10, interval=0.2,
                        what="%d clients greeted" % (self.CAP - held))
        extra = self.connect(greeting=False)
        self.assertEqual(extra.readline(), BYE_TOO_MANY)
        self.login(more[-1], tag="m")
        for c in more:
            c.close()

    def still_works(self, c):
        c.cmd("o2 NOOP")
        lines = c.read_until_tagged("o2")
        self.assertTrue(lines[-1].startswith("o2 OK"), lines)

    def _kill_and_check(self, what, logged):
        d = self.start_capped()
        other = self.connect()
        self.login(other, tag="o")
        self.attack(what, logged)
        # the session before goes on, the cap counts it and no more
        self.still_works(other)
        self.check_cap(1)
        self.assertTrue(d.running())

    def test_unknown_type(self):
        self._kill_and_check("unknown", "a message it may not send")

    def test_50_accepted(self):
        self._kill_and_check("accepted50", "more sessions than it may hold")

    def test_closed_without_accepted(self):
        self._kill_and_check("closed2",
                             "a session closed that it never opened")

    def test_payload_where_none_belongs(self):
        self._kill_and_check("payload", "a payload where none belongs")

    def test_malformed_header(self):
        self._kill_and_check("garbage", None)

    def _auth_attack(self, what, logged):
        d = self.start_capped()
        other = self.connect()
        self.login(other, tag="o")
        auth = d.pids("auth")
        self.assertEqual(len(auth), 1, d.children())
        c = self.connect()
        pid = self.worker_of(d, c)
        mark = d.mark()
        c.cmd("x XREGRESS auth-%s" % what)
        d.wait_for_log(r"worker \d+: %s, channel dropped" % logged,
                       since=mark)
        # the parent hears of it and kills the worker
        d.wait_for_log(r"imap worker pid %d: refused by the auth process, "
                       r"killed" % pid, since=mark)
        # the auth process is the same one and serves everyone else
        self.assertEqual(d.pids("auth"), auth)
        c2 = self.connect()
        self.login(c2, tag="n")
        self.still_works(other)

    def test_auth_survives_unknown_type(self):
        self._auth_attack("unknown", r"refused imsg 9999 \(0 bytes\)")

    def test_auth_survives_malformed_header(self):
        self._auth_attack("garbage", "malformed imsg")


class ForgedConnection(ForgedCase):
    ISOLATION = "connection"


class ForgedShared(ForgedCase):
    """One shared worker (with two the kernel, not the cap, would pick
    which one refuses): the attacker's worker holds every session, so
    what is checked is the cap and the clients after it."""
    ISOLATION = "shared"

    def _kill_and_check(self, what, logged):
        d = self.start_capped()
        pid = self.attack(what, logged)
        util.wait_until(lambda: [p for p in d.pids("imap") if p != pid],
                        10, what="the worker replaced")
        self.check_cap(0)
        self.assertTrue(d.running())

    def _auth_attack(self, what, logged):
        d = self.start_capped()
        auth = d.pids("auth")
        c = self.connect()
        pid = self.worker_of(d, c)
        mark = d.mark()
        c.cmd("x XREGRESS auth-%s" % what)
        d.wait_for_log(r"worker \d+: %s, channel dropped" % logged,
                       since=mark)
        # the parent hears of it and replaces the worker
        d.wait_for_log(r"imap worker pid %d: refused by the auth process, "
                       r"killed" % pid, since=mark)
        self.assertEqual(d.pids("auth"), auth)
        util.wait_until(lambda: [p for p in d.pids("imap") if p != pid],
                        10, what="the worker replaced")
        c2 = self.connect()
        self.login(c2, tag="n")


del ForgedCase

if __name__ == "__main__":
    unittest.main()
