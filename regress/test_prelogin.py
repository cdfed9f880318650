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

"""The IMAP dialogue before login: greeting, commands, syntax errors,
literals, limits.  The exact texts are those of the team brief."""

import base64
import time
import unittest

from lib.case import DaemonTestCase, DEFAULT_CAPS, caps


class Greeting(DaemonTestCase):

    def test_greeting_exact_text(self):
        c = self.connect(greeting=False)
        c.expect("* OK [CAPABILITY %s] IMAP4 ready" % DEFAULT_CAPS)

    def test_greeting_with_server_name(self):
        self.start(server={"server_name": "imap.example.org"})
        c = self.connect(greeting=False)
        c.expect("* OK [CAPABILITY %s] imap.example.org IMAP4 ready"
                 % DEFAULT_CAPS)

    def test_capability_exact(self):
        c = self.connect()
        c.cmd("a CAPABILITY")
        c.expect("* CAPABILITY " + DEFAULT_CAPS)
        c.expect("a OK CAPABILITY completed")

    def test_capability_auth_mechanisms_in_fixed_order(self):
        self.start(server={"imap_auth": ("cram-md5", "login", "plain")})
        c = self.connect()
        c.cmd("a CAPABILITY")
        c.expect("* CAPABILITY " + caps(auth=("PLAIN", "LOGIN",
                                              "CRAM-MD5")))
        c.expect("a OK CAPABILITY completed")

    def test_capability_list_replaces_defaults(self):
        self.start(server={"imap_capabilities": ("IMAP4rev1", "IDLE",
                                                 "ID")})
        c = self.connect(greeting=False)
        want = "IMAP4rev1 IDLE ID SASL-IR LITERAL+ AUTH=PLAIN"
        self.assertEqual(want, caps(base="IMAP4rev1 IDLE ID"))
        c.expect("* OK [CAPABILITY %s] IMAP4 ready" % want)
        c.cmd("a CAPABILITY")
        c.expect("* CAPABILITY " + want)
        c.expect("a OK CAPABILITY completed")


class Commands(DaemonTestCase):

    def test_noop(self):
        c = self.connect()
        c.cmd("a1 NOOP")
        c.expect("a1 OK NOOP completed")

    def test_command_names_case_insensitive(self):
        c = self.connect()
        c.cmd("a1 noop")
        c.expect("a1 OK NOOP completed")

    def test_logout_bye_ok_and_close(self):
        c = self.connect()
        c.cmd("z LOGOUT")
        c.expect("* BYE logging out")
        c.expect("z OK LOGOUT completed")
        c.expect_closed()

    def test_id_nil(self):
        c = self.connect()
        c.cmd("a ID NIL")
        c.expect("* ID NIL")
        c.expect("a OK ID completed")

    def test_id_with_list(self):
        c = self.connect()
        c.cmd('a ID ("name" "regress" "version" "1.0")')
        c.expect("* ID NIL")
        c.expect("a OK ID completed")

    def test_unknown_command(self):
        c = self.connect()
        c.cmd("a FROBNICATE")
        c.expect("a BAD invalid command")
        c.cmd("b NOOP")
        c.expect("b OK NOOP completed")

    def test_select_before_login_is_invalid(self):
        c = self.connect()
        c.cmd("a SELECT INBOX")
        c.expect("a BAD invalid command")

    def test_login_with_one_argument(self):
        c = self.connect()
        c.cmd("a LOGIN alice")
        c.expect("a BAD invalid arguments")

    def test_login_with_three_arguments(self):
        c = self.connect()
        c.cmd("a LOGIN alice secret extra")
        c.expect("a BAD invalid arguments")

    def test_login_with_empty_user(self):
        c = self.connect()
        c.cmd('a LOGIN "" secret')
        c.expect("a BAD invalid arguments")

    def test_unreadable_tag_gets_untagged_bad(self):
        c = self.connect()
        c.cmd("(x NOOP")
        c.expect_prefix("* BAD ")
        c.cmd("b NOOP")
        c.expect("b OK NOOP completed")

    def test_empty_line_gets_untagged_bad(self):
        c = self.connect()
        c.send(b"\r\n")
        c.expect_prefix("* BAD ")
        c.cmd("b NOOP")
        c.expect("b OK NOOP completed")

    def test_max_errors_closes_after_third_bad(self):
        self.start(server={"max_errors": 3})
        c = self.connect()
        c.cmd("a1 FOO")
        c.expect("a1 BAD invalid command")
        c.cmd("a2 FOO")
        c.expect("a2 BAD invalid command")
        c.cmd("a3 FOO")
        c.expect("a3 BAD invalid command")
        c.expect("* BYE too many invalid commands")
        c.expect_closed()

    def test_max_errors_pipelined(self):
        self.start(server={"max_errors": 3})
        c = self.connect()
        c.send(b"a1 FOO\r\n\r\na3 BAR\r\na4 NOOP\r\n")
        c.expect("a1 BAD invalid command")
        c.expect_prefix("* BAD ")
        c.expect("a3 BAD invalid command")
        c.expect("* BYE too many invalid commands")
        c.expect_closed()

    def test_max_errors_default_is_five(self):
        c = self.connect()
        for i in range(1, 5):
            c.cmd("a%d FOO" % i)
            c.expect("a%d BAD invalid command" % i)
        c.cmd("n NOOP")
        c.expect("n OK NOOP completed")
        c.cmd("a5 FOO")
        c.expect("a5 BAD invalid command")
        c.expect("* BYE too many invalid commands")
        c.expect_closed()

    def test_pipelined_commands_answered_in_order(self):
        c = self.connect()
        c.send(b"a NOOP\r\nb CAPABILITY\r\nc ID NIL\r\nd NOOP\r\n")
        c.expect("a OK NOOP completed")
        c.expect("* CAPABILITY " + DEFAULT_CAPS)
        c.expect("b OK CAPABILITY completed")
        c.expect("* ID NIL")
        c.expect("c OK ID completed")
        c.expect("d OK NOOP completed")

    def test_idle_timeout_bye(self):
        self.start(server={"timeout": "1s"})
        c = self.connect()
        t0 = time.monotonic()
        c.expect("* BYE autologout; idle for too long", timeout=10)
        elapsed = time.monotonic() - t0
        self.assertGreaterEqual(elapsed, 0.8)
        self.assertLess(elapsed, 5)
        c.expect_closed()


class Literals(DaemonTestCase):

    def test_quoted_password_reaches_auth_escaped(self):
        # carol's password is: s p"a\ce
        c = self.connect()
        c.cmd(r'a LOGIN carol "s p\"a\\ce"')
        lines = c.read_until_tagged("a")
        req = self.auth.wait_requests(1)[0]
        self.assertEqual(req.get("Auth-User"), "carol")
        self.assertEqual(req.get("Auth-Pass"), 's%20p"a\\ce')
        self.assertIn(b'Auth-Pass: s%20p"a\\ce', req.raw_lines)
        self.assertTrue(lines[-1].startswith("a OK"), lines)

    def test_percent_and_control_bytes_escaped(self):
        c = self.connect()
        c.cmd('a LOGIN "a%b" "x\tx+y"')
        c.read_until_tagged("a")
        req = self.auth.wait_requests(1)[0]
        self.assertEqual(req.get("Auth-User"), "a%25b")
        self.assertEqual(req.get("Auth-Pass"), "x%09x+y")

    def test_sync_literal_gets_continuation(self):
        c = self.connect()
        c.cmd("a LOGIN {5}")
        c.expect("+ Ready for literal data")
        c.cmd('alice "secret"')
        lines = c.read_until_tagged("a")
        self.assertTrue(lines[-1].startswith("a OK"), lines)
        self.assertEqual(self.auth.last().user, "alice")

    def test_two_sync_literals(self):
        c = self.connect()
        c.cmd("a LOGIN {5}")
        c.expect("+ Ready for literal data")
        c.cmd("alice {6}")
        c.expect("+ Ready for literal data")
        c.cmd("secret")
        lines = c.read_until_tagged("a")
        self.assertTrue(lines[-1].startswith("a OK"), lines)

    def test_nonsync_literal_needs_no_continuation(self):
        c = self.connect()
        c.send(b"a LOGIN {5+}\r\nalice {6+}\r\nsecret\r\n")
        lines = c.read_until_tagged("a")
        self.assertFalse([l for l in lines if l.startswith("+")], lines)
        self.assertTrue(lines[-1].startswith("a OK"), lines)

    def test_zero_length_literal_is_empty_password(self):
        c = self.connect()
        c.send(b"a LOGIN alice {0+}\r\n\r\n")
        c.expect("a NO [AUTHENTICATIONFAILED] Invalid login or password")
        req = self.auth.wait_requests(1)[0]
        self.assertEqual(req.get("Auth-Pass"), "")
        self.assertEqual(req.get("Auth-User"), "alice")

    def test_zero_length_literal_is_empty_user(self):
        c = self.connect()
        c.send(b"a LOGIN {0+}\r\n secret\r\n")
        c.expect("a BAD invalid arguments")
        c.cmd("b NOOP")
        c.expect("b OK NOOP completed")

    def test_sync_literal_too_big_session_goes_on(self):
        c = self.connect()
        c.cmd("a LOGIN alice {100000}")
        c.expect("a BAD [TOOBIG] literal too big")
        c.cmd("b NOOP")
        c.expect("b OK NOOP completed")

    def test_nonsync_literal_too_big_closes(self):
        c = self.connect()
        c.cmd("a LOGIN alice {100000+}")
        c.expect("a BAD [TOOBIG] literal too big")
        c.expect("* BYE literal too big")
        c.expect_closed()

    def test_line_longer_than_buffer_closes(self):
        self.start(server={"imap_client_buffer": "1k"})
        c = self.connect()
        c.send(b"a NOOP " + b"x" * 1100 + b"\r\n")
        line = c.readline()
        self.assertIn(line, ("a BAD [TOOBIG] line too long",
                             "* BAD [TOOBIG] line too long"))
        c.expect("* BYE line too long")
        c.expect_closed()

    def test_literal_within_buffer_accepted(self):
        self.start(server={"imap_client_buffer": "1k"})
        c = self.connect()
        c.cmd("a LOGIN alice {600}")
        c.expect("+ Ready for literal data")
        c.cmd("p" * 600)
        c.expect("a NO [AUTHENTICATIONFAILED] Invalid login or password")
        self.assertEqual(self.auth.last().password, "p" * 600)


class Authenticate(DaemonTestCase):

    def test_plain_without_initial_response_gets_plus_space(self):
        c = self.connect()
        c.cmd("a AUTHENTICATE PLAIN")
        c.expect("+ ")
        c.cmd(base64.b64encode(b"\0alice\0secret").decode())
        lines = c.read_until_tagged("a")
        self.assertTrue(lines[-1].startswith("a OK"), lines)

    def test_login_challenges(self):
        c = self.connect()
        c.cmd("a AUTHENTICATE LOGIN")
        c.expect("+ VXNlcm5hbWU6")
        c.cmd(base64.b64encode(b"alice").decode())
        c.expect("+ UGFzc3dvcmQ6")
        c.cmd(base64.b64encode(b"secret").decode())
        lines = c.read_until_tagged("a")
        self.assertTrue(lines[-1].startswith("a OK"), lines)

    def test_login_initial_response_skips_username_prompt(self):
        c = self.connect()
        c.cmd("a AUTHENTICATE LOGIN " + base64.b64encode(b"alice").decode())
        c.expect("+ UGFzc3dvcmQ6")
        c.cmd(base64.b64encode(b"secret").decode())
        lines = c.read_until_tagged("a")
        self.assertTrue(lines[-1].startswith("a OK"), lines)

    def test_cancel_with_star(self):
        c = self.connect()
        c.cmd("a AUTHENTICATE PLAIN")
        c.expect("+ ")
        c.cmd("*")
        c.expect("a BAD authentication cancelled")
        c.cmd("b NOOP")
        c.expect("b OK NOOP completed")

    def test_invalid_base64(self):
        c = self.connect()
        c.cmd("a AUTHENTICATE PLAIN")
        c.expect("+ ")
        c.cmd("!!!not-base64!!!")
        c.expect("a BAD invalid base64")

    def test_invalid_plain_message(self):
        c = self.connect()
        c.cmd("a AUTHENTICATE PLAIN " +
              base64.b64encode(b"no-nul-bytes-here").decode())
        c.expect("a BAD invalid SASL message")

    def test_unknown_mechanism(self):
        c = self.connect()
        c.cmd("a AUTHENTICATE X-UNKNOWN")
        c.expect("a NO unsupported authentication mechanism")

    def test_cram_md5_not_enabled(self):
        c = self.connect()
        c.cmd("a AUTHENTICATE CRAM-MD5")
        c.expect("a NO unsupported authentication mechanism")

    def test_cram_md5_challenge(self):
        self.start(server={"imap_auth": ("plain", "cram-md5"),
                           "server_name": "imap.example.org"})
        c = self.connect()
        c.cmd("a AUTHENTICATE CRAM-MD5")
        line = c.expect_prefix("+ ")
        salt = base64.b64decode(line[2:], validate=True).decode()
        self.assertRegex(salt, r"^<[^<>@\s]+\.[0-9]+@imap\.example\.org>$")


class ClientCap(DaemonTestCase):

    def _over_the_cap(self, isolation):
        self.start(isolation=isolation, worker_processes=1,
                   worker_connections=2)
        a = self.connect()
        b = self.connect()
        if isolation == "connection":
            # Only the parent counts sessions across workers and tells
            # the spares over imsg: a client that races that message
            # is admitted.  Allow a short window, then the cap holds.
            deadline = time.monotonic() + 2
            while True:
                c = self.connect(greeting=False)
                line = c.readline()
                if line.startswith("* BYE") or \
                        time.monotonic() > deadline:
                    break
                c.close()
        else:
            c = self.connect(greeting=False)
            line = c.readline()
        self.assertEqual(line, "* BYE [UNAVAILABLE] too many connections",
                         "admitted: %s %s, last: %s" % (a.client_addr,
                                                        b.client_addr,
                                                        c.client_addr))
        c.expect_closed()
        # the two admitted clients are unaffected
        a.cmd("a NOOP")
        a.expect("a OK NOOP completed")
        b.cmd("b NOOP")
        b.expect("b OK NOOP completed")

    def test_over_the_cap_shared(self):
        self._over_the_cap("shared")

    def test_over_the_cap_connection(self):
        self._over_the_cap("connection")

    def test_below_the_cap_again_after_a_client_left(self):
        d = self.start(isolation="shared", worker_processes=1,
                       worker_connections=2)
        a = self.connect()
        b = self.connect()
        a.cmd("a LOGOUT")
        a.expect("* BYE logging out")
        a.expect("a OK LOGOUT completed")
        a.expect_closed()
        d.wait_for_log(r"session end client=%s " % a.client_addr)
        c = self.connect(greeting=False)
        c.expect_prefix("* OK [CAPABILITY ")
        b.cmd("b NOOP")
        b.expect("b OK NOOP completed")


if __name__ == "__main__":
    unittest.main()
