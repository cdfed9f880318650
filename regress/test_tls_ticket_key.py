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

"""ssl_session_ticket_key (issue 10 item 3), as nginx: tickets are
encrypted with the keys of the files (80 bytes: AES-256, 48: AES-128),
the first key encrypts and every one decrypts, so a ticket outlives a
restart of the daemon and is taken by every worker.  A daemon is
stopped and another started with the files; the session a client kept
resumes there, or not, by the keys it has."""

import os
import ssl

from lib import daemon as daemonlib
from lib import util
from test_tls_resume import ResumeCase


class TicketKeyFiles(ResumeCase):

    @classmethod
    def setUpClass(cls):
        super().setUpClass()
        for name, size in (("a80.key", 80), ("b80.key", 80),
                           ("a48.key", 48), ("bad.key", 64)):
            with open(os.path.join(cls.pki, name), "wb") as f:
                f.write(os.urandom(size))
            os.chmod(os.path.join(cls.pki, name), 0o644)

    def restart(self, d, **server):
        """d stopped, another daemon on the same port started."""
        port = self.port
        d.stop()
        srv = self.tls_server(**server)
        srv["listen"] = ("127.0.0.1:%d" % port, "ssl")
        n = daemonlib.Daemon(self.tmp, self.config(port=port, server=srv),
                             port, name="imaprelayd%d" % len(self._daemons),
                             args=["-v", "-v"])
        self._daemons.append(n)
        n.start()
        self._daemon = n
        return n

    def across_restart(self, version, before, after):
        """Whether a session from a daemon with the files before
        resumes on a new daemon with the files after."""
        d = self.start_resume(ssl_session_ticket_key=[
            self.pem(f) for f in before])
        ctx = self.context()
        ctx.minimum_version = ctx.maximum_version = version
        first, (_, resumed) = self.tls_connect(ctx)
        self.assertFalse(resumed)
        session = first.session
        first.close()
        self.restart(d, ssl_session_ticket_key=[self.pem(f) for f in after])
        t, (_, resumed) = self.tls_connect(ctx, session)
        self.assertEqual(t.session_reused, resumed)
        return resumed

    def test_tls12_ticket_survives_restart(self):
        self.assertTrue(self.across_restart(ssl.TLSVersion.TLSv1_2,
                                            ["a80.key"], ["a80.key"]))

    def test_tls13_ticket_survives_restart(self):
        self.assertTrue(self.across_restart(ssl.TLSVersion.TLSv1_3,
                                            ["a80.key"], ["a80.key"]))

    def test_48_byte_key(self):
        self.assertTrue(self.across_restart(ssl.TLSVersion.TLSv1_2,
                                            ["a48.key"], ["a48.key"]))

    def test_older_key_still_decrypts(self):
        self.assertTrue(self.across_restart(ssl.TLSVersion.TLSv1_2,
                                            ["a80.key"],
                                            ["b80.key", "a80.key"]))

    def test_other_key_does_not_decrypt(self):
        # and without files a restart makes new keys: no resumption
        self.assertFalse(self.across_restart(ssl.TLSVersion.TLSv1_2,
                                             ["a80.key"], ["b80.key"]))

    def test_without_files_restart_loses_sessions(self):
        d = self.start_resume()
        ctx = self.context()
        ctx.minimum_version = ctx.maximum_version = ssl.TLSVersion.TLSv1_2
        first, _ = self.tls_connect(ctx)
        session = first.session
        first.close()
        self.restart(d)
        _, (_, resumed) = self.tls_connect(ctx, session)
        self.assertFalse(resumed)

    def test_resumed_in_another_worker(self):
        self.start_resume(ssl_session_ticket_key=self.pem("a80.key"))
        resumed, pid1, pid2 = self.resume(ssl.TLSVersion.TLSv1_3)
        self.assertNotEqual(pid1, pid2)
        self.assertTrue(resumed)

    def test_wrong_size_fails_at_start(self):
        path = os.path.join(self.tmp, "check.conf")
        with open(path, "w") as f:
            f.write(self.config(server=self.tls_server(
                listen=("127.0.0.1:%d" % util.free_port(), "ssl"),
                ssl_session_ticket_key=self.pem("bad.key"))))
        rc, out = daemonlib.check_config(path)
        self.assertEqual(1, rc, out)
        self.assertRegex(out, r'check\.conf:\d+: "%s" must be 48 or 80 '
                         r'bytes' % self.pem("bad.key"))


if __name__ == "__main__":
    import unittest
    unittest.main()
