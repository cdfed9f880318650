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

"""Secrets where they belong (issue 9): what a compromised process
could read in its own memory, searched for as root in /proc/PID/mem
of every process of the real daemon.

- The auth_http_header values (often the shared secret of the auth
  service), the auth_http URL and its TLS files reach the auth process
  only: an imap worker (or the template it is forked from) that a
  client took over holds nothing to reach the auth service with.
"""

import os
import unittest

from lib import procmem
from lib.case import DaemonTestCase


class Holders(DaemonTestCase):
    """Which of the daemon's processes hold a given string."""

    def setUp(self):
        why = procmem.why_not()
        if why:
            self.skipTest(why)
        super().setUp()

    def holders(self, d, needle, titles=("auth", "template", "imap")):
        """{title: [pid, ...]} of the processes holding needle."""
        out = {}
        for title in titles:
            for pid in d.pids(title):
                if procmem.find(pid, [needle]):
                    out.setdefault(title, []).append(pid)
        return out


class AuthHeaderSecret(Holders):

    def _only_auth_holds_it(self, isolation):
        secret = procmem.token("hdr")
        d = self.start(isolation=isolation,
                       server={"auth_http_header": ("X-Auth-Key", secret)})
        # a session in the relay: a worker that served a login
        c = self.connect(port=d.port)
        self.login(c)
        self.assertEqual(self.auth.last().get("X-Auth-Key"), secret)
        self.assertTrue(d.pids("imap"), d.children())
        held = self.holders(d, secret.encode())
        # the search works: the auth process, which sends it, has it
        self.assertIn("auth", held, held)
        self.assertEqual(sorted(held), ["auth"],
                         "auth_http_header value in %s" % held)

    def test_connection_mode_workers_lack_auth_http_header(self):
        self._only_auth_holds_it("connection")

    def test_shared_mode_workers_lack_auth_http_header(self):
        self._only_auth_holds_it("shared")


if __name__ == "__main__":
    unittest.main()
