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

"""Every close the proxy starts is preceded by "* BYE" (RFC 3501 7.1.5),
and the protocol details of issue 10 item 4: an ID as large as RFC 2971
allows under the default imap_client_buffer, and a backend's BYE
greeting passed on under proxy_pass_error_message.

The closes other modules prove with their own assertions: idle and
too many errors (test_prelogin), a too long line or literal
(test_prelogin, test_hostile), the auth service or the backend
unavailable (test_faults, test_resilience), a refused login without
Auth-Wait (test_login), the backend's refusal (test_faults), the
connection caps (test_limits, test_hostile), shutdown (test_signals),
an idle relay and a backend killed under it (test_relay).
Closed without a word, because nothing can be said: a TLS client
before or during its handshake, a session out of memory.
"""

import os
import signal

from lib.case import DaemonTestCase
from test_resilience import FakeBackend


class Closes(DaemonTestCase):

    def test_authenticate_line_too_long(self):
        self.start(mail={"imap_client_buffer": 256})
        c = self.connect()
        c.cmd("a AUTHENTICATE LOGIN")
        c.expect("+ VXNlcm5hbWU6")
        c.cmd("x" * 40000)
        c.expect("a BAD [TOOBIG] line too long")
        c.expect("* BYE line too long")
        c.expect_closed()

    def test_bad_command_before_a_nonsync_literal(self):
        """The literal's bytes follow unasked: they cannot be told from
        commands, the session cannot go on."""
        c = self.connect()
        c.send(b"a LOGIN ) {5+}\r\nhello\r\n")
        c.expect("a BAD unexpected )")
        c.expect("* BYE bad command")
        c.expect_closed()

    def test_backend_bye_not_repeated(self):
        """A backend that says BYE itself is not followed by ours."""
        def bye_after_login(fb, conn):
            conn.sendall(b"* OK [CAPABILITY IMAP4rev1] fake\r\n")
            line = fb.readline(conn)
            tag = line.split(b" ", 1)[0]
            conn.sendall(tag + b" OK logged in\r\n")
            fb.readline(conn)
            conn.sendall(b"* BYE going away\r\n")
            conn.close()
        fb = FakeBackend(bye_after_login)
        self.addCleanup(fb.close)
        self.auth.backend = ("127.0.0.1", fb.port)
        c = self.connect()
        self.login(c)
        c.cmd("n NOOP")
        c.expect("* BYE going away")
        c.expect_closed()

    def test_no_answer_to_admission(self):
        """limit_conn_per_ip asks the auth process before the greeting;
        an auth process that never answers gets the client a BYE in its
        place."""
        d = self.start(mail={"limit_conn_per_ip": 5, "timeout": "1s"})
        auth = d.pids("auth")
        self.assertEqual(len(auth), 1, auth)
        os.kill(auth[0], signal.SIGSTOP)
        try:
            c = self.connect(greeting=False)
            c.expect("* BYE [UNAVAILABLE] server busy, try again later",
                     timeout=10)
            c.expect_closed()
        finally:
            os.kill(auth[0], signal.SIGCONT)


class Id(DaemonTestCase):
    """RFC 2971: up to 30 fields, names of 30 octets, values of 1024."""

    def _fields(self, literal=False):
        out = []
        for i in range(30):
            name = "x%02d-" % i + "n" * 26
            value = ("v%02d" % i) * 341 + "v"
            self.assertEqual((len(name), len(value)), (30, 1024))
            if literal:
                out.append('"%s" {1024+}\r\n%s' % (name, value))
            else:
                out.append('"%s" "%s"' % (name, value))
        return out

    def test_largest_id_quoted(self):
        c = self.connect()
        line = "i ID (" + " ".join(self._fields()) + ")"
        self.assertGreater(len(line), 31000)
        c.cmd(line)
        c.expect("* ID NIL")
        c.expect("i OK ID completed")
        # the buffer is back to its size: a long NOOP is still too long
        c.cmd("n NOOP " + "x" * 5000)
        c.expect("n BAD [TOOBIG] line too long")
        c.expect("* BYE line too long")
        c.expect_closed()

    def test_largest_id_literals_then_login(self):
        c = self.connect()
        c.send("i ID (" + " ".join(self._fields(literal=True)) + ")\r\n")
        c.expect("* ID NIL")
        c.expect("i OK ID completed")
        # the backend gets it, and the login goes on
        self.login(c)
        c.cmd("n NOOP")
        lines = c.read_until_tagged("n")
        self.assertTrue(lines[-1].startswith("n OK"), lines)

    def test_id_pipelined_with_login(self):
        c = self.connect()
        c.send("i ID (" + " ".join(self._fields()) + ")\r\n" +
               'a LOGIN alice "%s"\r\n' % self.password("alice"))
        c.expect("* ID NIL")
        c.expect("i OK ID completed")
        lines = c.read_until_tagged("a")
        self.assertTrue(lines[-1].startswith("a OK"), lines)

    def test_id_longer_than_rfc_2971(self):
        c = self.connect()
        c.cmd('i ID ("name" "' + "v" * 40000 + '")')
        c.expect("i BAD [TOOBIG] line too long")
        c.expect("* BYE line too long")
        c.expect_closed()

    def test_other_command_not_grown(self):
        c = self.connect()
        c.cmd("a LOGIN alice " + "p" * 5000)
        c.expect("a BAD [TOOBIG] line too long")
        c.expect("* BYE line too long")
        c.expect_closed()


class GreetingBye(DaemonTestCase):

    def _bye_backend(self, text):
        def bye(fb, conn):
            conn.sendall(b"* BYE " + text + b"\r\n")
            conn.close()
        fb = FakeBackend(bye)
        self.addCleanup(fb.close)
        self.auth.backend = ("127.0.0.1", fb.port)

    def test_text_passed_on(self):
        self._bye_backend(b"Too many connections, try again in 5 minutes")
        d = self.start(mail={"proxy_pass_error_message": True})
        c = self.connect()
        c.cmd('a LOGIN alice "%s"' % self.password("alice"))
        c.expect("a NO [UNAVAILABLE] Too many connections, try again in "
                 "5 minutes")
        c.expect("* BYE Too many connections, try again in 5 minutes")
        c.expect_closed()
        d.wait_for_log(r'login unavailable client=%s user=alice '
                       r'reason="backend greeting: \* BYE Too many'
                       % c.client_addr)

    def test_code_kept(self):
        self._bye_backend(b"[UNAVAILABLE] maintenance until 10:00")
        self.start(mail={"proxy_pass_error_message": True})
        c = self.connect()
        c.cmd('a LOGIN alice "%s"' % self.password("alice"))
        c.expect("a NO [UNAVAILABLE] maintenance until 10:00")
        c.expect("* BYE [UNAVAILABLE] maintenance until 10:00")
        c.expect_closed()

    def test_imaplib_sees_the_text(self):
        import imaplib
        self._bye_backend(b"Too many connections")
        self.start(mail={"proxy_pass_error_message": True})
        m = self.imap()
        with self.assertRaises(imaplib.IMAP4.error) as e:
            m.login("alice", self.password("alice"))
        self.assertIn("Too many connections", str(e.exception))

    def test_text_kept_back_by_default(self):
        self._bye_backend(b"internal host db7 overloaded")
        self.start()
        c = self.connect()
        c.cmd('a LOGIN alice "%s"' % self.password("alice"))
        c.expect("a NO [UNAVAILABLE] backend unavailable")
        c.expect("* BYE backend unavailable")
        c.expect_closed()
