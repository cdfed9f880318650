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

"""Configured names with several addresses: every address is kept and
tried in turn (issue 13).

A stock Debian maps localhost to ::1 and 127.0.0.1, and getaddrinfo
gives ::1 first; the run's auth service and Dovecot listen on 127.0.0.1
only.  The daemon runs in a mount namespace of its own whose /etc/hosts
is that stock file (bind-mounted there by unshare(1), so the machine's
file is never touched): auth_http and proxy_pass name localhost, the
first address refuses, the second answers.
"""

import os
import shutil
import socket
import subprocess
import tempfile
import unittest

from lib import daemon as daemonlib
from lib import util
from lib.case import DaemonTestCase, run_tmpdir

STOCK_HOSTS = """127.0.0.1\tlocalhost
::1\t\tlocalhost ip6-localhost ip6-loopback
"""

# exec the daemon with the file $0 mounted over /etc/hosts
WRAP = 'mount --bind "$0" /etc/hosts && exec "$@"'


def namespace_order(hosts):
    """The addresses localhost has inside such a namespace, in
    getaddrinfo's order, or None with the reason it cannot be made."""
    if os.geteuid() != 0:
        return None, "needs root for a mount namespace"
    if shutil.which("unshare") is None:
        return None, "no unshare(1) (Debian: util-linux)"
    probe = ("import socket; print(' '.join(a[4][0] for a in "
             "socket.getaddrinfo('localhost', 143, 0, "
             "socket.SOCK_STREAM)))")
    r = subprocess.run(["unshare", "--mount", "sh", "-c", WRAP, hosts,
                        "python3", "-c", probe],
                       capture_output=True, text=True, timeout=30)
    if r.returncode != 0:
        return None, "unshare --mount failed: %s" % r.stderr.strip()
    return r.stdout.split(), None


class SeveralAddresses(DaemonTestCase):

    @classmethod
    def setUpClass(cls):
        super().setUpClass()
        cls.hostsdir = tempfile.mkdtemp(prefix="resolve-", dir=run_tmpdir())
        cls.hosts = os.path.join(cls.hostsdir, "hosts")
        with open(cls.hosts, "w") as f:
            f.write(STOCK_HOSTS)
        os.chmod(cls.hosts, 0o644)
        order, why = namespace_order(cls.hosts)
        if order is None:
            shutil.rmtree(cls.hostsdir, ignore_errors=True)
            raise unittest.SkipTest(why)
        # the case of the issue: the unreachable address comes first
        if order[:2] != ["::1", "127.0.0.1"]:
            shutil.rmtree(cls.hostsdir, ignore_errors=True)
            raise unittest.SkipTest("localhost resolves to %s here, not "
                                    "::1 then 127.0.0.1" % order)

    @classmethod
    def tearDownClass(cls):
        shutil.rmtree(cls.hostsdir, ignore_errors=True)
        super().tearDownClass()

    def start_stock(self, **kw):
        """imaprelayd under the stock /etc/hosts."""
        port = util.free_port()
        d = daemonlib.Daemon(self.tmp, self.config(port=port, **kw), port,
                             name="imaprelayd%d" % len(self._daemons))
        d.wrapper = ["unshare", "--mount", "sh", "-c", WRAP, self.hosts]
        self._daemons.append(d)
        d.start()
        self._daemon = self._daemon or d
        return d

    def test_auth_http_falls_back_to_the_next_address(self):
        url = self.auth.url.replace("127.0.0.1", "localhost")
        self.assertIn("localhost", url)
        d = self.start_stock(auth_url=url)
        c = self.connect(port=d.port)
        self.login(c)
        c.cmd("b LOGOUT")
        c.read_until_tagged("b")
        end = self.session_end("127.0.0.1:%d" % c.local_port, d=d)
        self.assertEqual(end["user"], "alice")
        self.assertNotIn("auth unavailable", d.log())

    def test_auth_http_every_address_refuses(self):
        dead = util.free_port()
        d = self.start_stock(auth_url="http://localhost:%d/auth" % dead)
        c = self.connect(port=d.port)
        c.cmd('a LOGIN alice "%s"' % self.password("alice"))
        line = c.read_until_tagged("a")[-1]
        self.assertTrue(line.startswith("a NO [UNAVAILABLE]"), line)
        # the log says which addresses were tried
        d.wait_for_log(r"auth service localhost:%d \(tried "
                       r"\[::1\],127\.0\.0\.1\): Connection refused" % dead)

    def test_proxy_pass_falls_back_to_the_next_address(self):
        port = self.dovecot.port
        d = self.start_stock(no_auth=True,
                             server={"proxy_pass": "localhost:%d" % port})
        c = self.connect(port=d.port)
        self.login(c)
        d.wait_for_log(r"backend \[::1\]:%d: connect: Connection refused, "
                       r"trying the next address of localhost:%d$"
                       % (port, port))
        c.cmd("b LOGOUT")
        c.read_until_tagged("b")
        end = self.session_end("127.0.0.1:%d" % c.local_port, d=d)
        # the log names the address that answered
        self.assertEqual(end["backend"], "127.0.0.1:%d" % port)

    def test_proxy_pass_every_address_refuses(self):
        dead = util.free_port()
        d = self.start_stock(no_auth=True,
                             server={"proxy_pass": "localhost:%d" % dead})
        c = self.connect(port=d.port)
        c.cmd('a LOGIN alice "%s"' % self.password("alice"))
        line = c.read_until_tagged("a")[-1]
        self.assertTrue(line.startswith("a NO [UNAVAILABLE]"), line)
        d.wait_for_log(r"backend \[::1\]:%d: connect: Connection refused, "
                       r"trying the next address" % dead)
        d.wait_for_log(r"backend 127\.0\.0\.1:%d: connect: Connection "
                       r"refused" % dead)


if __name__ == "__main__":
    unittest.main()
