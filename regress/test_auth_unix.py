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

"""auth_http unix:/path:/uri: the auth service on a unix socket.  As
root the auth process is chrooted, so the parent tells it to stay out
of the chroot when the configuration names such a socket; its sandbox
still holds."""

import os
import unittest

from lib import authd
from lib import dovecot
from lib.case import DaemonTestCase


class AuthUnix(DaemonTestCase):

    def unix_service(self):
        path = os.path.join(self.tmp, "auth.sock")
        svc = authd.AuthService(dovecot.get().port, dovecot.all_users(),
                                unix_path=path)
        self.addCleanup(svc.close)
        return svc

    def test_login_through_a_unix_socket(self):
        svc = self.unix_service()
        d = self.start(auth_url=svc.url)
        c = self.connect()
        self.login(c)
        req = svc.wait_requests(1)[0]
        self.assertEqual(req.path, "/auth")
        self.assertEqual(req.get("Auth-User"), "alice")
        self.assertEqual(req.get("Auth-Method"), "plain")
        self.assertEqual(len(self.auth.requests), 0)
        if os.geteuid() == 0:
            d.wait_for_log(r"auth_http %s: the auth process is not "
                           r"chrooted" % svc.unix_path)

    def test_sandbox_still_holds(self):
        if os.geteuid() != 0 or not os.path.isdir("/proc/self"):
            self.skipTest("needs root and /proc")
        if os.environ.get("IMAPRELAYD_SANITIZE") == "1":
            self.skipTest("sanitizer build: the sandbox is off there")
        svc = self.unix_service()
        d = self.start(auth_url=svc.url)
        pid = d.pids("auth")[0]
        with open("/proc/%d/status" % pid) as f:
            status = f.read()
        self.assertIn("Seccomp:\t2", status)
        self.assertIn("NoNewPrivs:\t1", status)
        # and it runs as the unprivileged user
        uid = [l for l in status.splitlines() if l.startswith("Uid:")][0]
        self.assertNotEqual(uid.split()[1], "0")

    def test_tcp_auth_http_stays_chrooted(self):
        if os.geteuid() != 0:
            self.skipTest("needs root")
        if os.environ.get("IMAPRELAYD_SANITIZE") == "1":
            self.skipTest("sanitizer build: the chroot is off there")
        d = self.start()
        pid = d.pids("auth")[0]
        self.assertEqual(os.readlink("/proc/%d/root" % pid), "/var/empty")


if __name__ == "__main__":
    unittest.main()
