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

"""Logging in through the proxy with real clients (imaplib, curl) and
the auth_http exchange behind it.  Every test runs twice: one worker
per connection (isolation connection) and shared workers (isolation
shared, worker_processes 2)."""

import base64
import imaplib
import re
import shutil
import subprocess
import time
import unittest
import uuid

from lib.case import DaemonTestCase


def message(subject, body=b"hello\r\n"):
    return (b"From: regress@example.org\r\nTo: alice@example.org\r\n"
            b"Subject: " + subject.encode() + b"\r\n\r\n" + body)


def appenduid(resp):
    """uid from an APPEND answer: [APPENDUID validity uid]."""
    m = re.search(rb"\[APPENDUID \d+ (\d+)\]", resp[1][0])
    assert m, resp
    return m.group(1).decode()


class LoginTests(DaemonTestCase):
    ISOLATION = "connection"
    WORKER_PROCESSES = 1

    # real clients

    def test_imaplib_login_select_append_fetch_logout(self):
        m = self.imap()
        typ, _ = m.login("alice", "secret")
        self.assertEqual(typ, "OK")
        typ, _ = m.select("INBOX")
        self.assertEqual(typ, "OK")
        body = ("imaplib %s\r\n" % uuid.uuid4()).encode()
        resp = m.append("INBOX", None, None, message("imaplib", body))
        self.assertEqual(resp[0], "OK", resp)
        uid = appenduid(resp)
        typ, data = m.uid("FETCH", uid, "(BODY.PEEK[])")
        self.assertEqual(typ, "OK")
        self.assertEqual(data[0][1], message("imaplib", body))
        typ, _ = m.logout()
        self.assertEqual(typ, "BYE")

    def test_imaplib_authenticate_plain(self):
        m = self.imap()
        typ, _ = m.authenticate("PLAIN", lambda _: b"\0bob\0hunter2")
        self.assertEqual(typ, "OK")
        self.assertEqual(m.select("INBOX")[0], "OK")
        m.logout()
        req = self.auth.last()
        self.assertEqual(req.get("Auth-Method"), "plain")
        self.assertEqual(req.user, "bob")

    def test_authenticate_plain_sasl_ir(self):
        c = self.connect()
        ir = base64.b64encode(b"\0alice\0secret").decode()
        c.cmd("a AUTHENTICATE PLAIN " + ir)
        lines = c.read_until_tagged("a")
        self.assertTrue(lines[-1].startswith("a OK"), lines)
        c.cmd("b SELECT INBOX")
        lines = c.read_until_tagged("b")
        self.assertTrue(lines[-1].startswith("b OK"), lines)

    def test_imaplib_authenticate_login(self):
        answers = {b"Username:": b"alice", b"Password:": b"secret"}
        seen = []

        def respond(challenge):
            seen.append(challenge)
            return answers[challenge]
        m = self.imap()
        typ, _ = m.authenticate("LOGIN", respond)
        self.assertEqual(typ, "OK")
        self.assertEqual(seen, [b"Username:", b"Password:"])
        self.assertEqual(m.select("INBOX")[0], "OK")
        m.logout()
        self.assertEqual(self.auth.last().get("Auth-Method"), "plain")

    def test_imaplib_cram_md5(self):
        self.start(server={"imap_auth": ("plain", "login", "cram-md5")})
        m = self.imap()
        self.assertIn("AUTH=CRAM-MD5", m.capabilities)
        typ, _ = m.login_cram_md5("bob", "hunter2")
        self.assertEqual(typ, "OK")
        self.assertEqual(m.select("INBOX")[0], "OK")
        m.logout()
        req = self.auth.last()
        names = [n for n, _ in req.auth_headers()]
        self.assertEqual(names, ["Auth-Method", "Auth-User", "Auth-Pass",
                                 "Auth-Salt", "Auth-Protocol",
                                 "Auth-Login-Attempt", "Client-IP"])
        self.assertEqual(req.get("Auth-Method"), "cram-md5")
        self.assertRegex(req.get("Auth-Pass"), r"^[0-9a-f]{32}$")

    def test_imaplib_cram_md5_wrong_password(self):
        self.start(server={"imap_auth": ("plain", "cram-md5")})
        m = self.imap()
        with self.assertRaises(imaplib.IMAP4.error) as cm:
            m.login_cram_md5("bob", "wrong")
        self.assertIn("[AUTHENTICATIONFAILED] Invalid login or password",
                      str(cm.exception))

    def _curl(self, *args):
        if not shutil.which("curl"):
            self.skipTest("curl not installed")
        r = subprocess.run(["curl", "-sS", "--max-time", "30"] + list(args),
                           capture_output=True, text=True, timeout=60)
        return r

    def test_curl_list_inbox(self):
        r = self._curl("imap://alice:secret@127.0.0.1:%d/INBOX" % self.port)
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertRegex(r.stdout, r'(?m)^\* LIST \(.*\) "." INBOX\r?$')

    # (curl before 8.x cannot be told to use the LOGIN command while
    # the server offers SASL; imaplib covers LOGIN)

    def test_curl_authenticate_login(self):
        # curl only uses a mechanism the server advertises
        self.start(server={"imap_auth": ("plain", "login")})
        r = self._curl("--login-options", "AUTH=LOGIN",
                       "imap://alice:secret@127.0.0.1:%d/INBOX" % self.port)
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertIn("INBOX", r.stdout)

    def test_curl_cram_md5(self):
        self.start(server={"imap_auth": ("plain", "cram-md5")})
        r = self._curl("--login-options", "AUTH=CRAM-MD5",
                       "imap://bob:hunter2@127.0.0.1:%d/INBOX" % self.port)
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertIn("INBOX", r.stdout)
        self.assertEqual(self.auth.last().get("Auth-Method"), "cram-md5")

    def test_curl_auth_plain_examine(self):
        r = self._curl("--login-options", "AUTH=PLAIN",
                       "imap://alice:secret@127.0.0.1:%d/INBOX" % self.port,
                       "-X", "EXAMINE INBOX")
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertRegex(r.stdout, r"(?m)^\* \d+ EXISTS\r?$")

    def test_curl_wrong_password_fails(self):
        r = self._curl("imap://alice:wrong@127.0.0.1:%d/INBOX" % self.port)
        self.assertNotEqual(r.returncode, 0)

    # the auth_http exchange

    def test_auth_request_headers_exact_order(self):
        self.start(server={"auth_http_header": [("X-Auth-Key", "k3y"),
                                                ("X-Second", "two")]})
        c = self.connect()
        self.login(c)
        req = self.auth.wait_requests(1)[0]
        self.assertEqual(req.method, "GET")
        self.assertEqual(req.path, "/auth")
        self.assertEqual(req.auth_headers(extras=("X-Auth-Key",
                                                  "X-Second")),
                         [("Auth-Method", "plain"),
                          ("Auth-User", "alice"),
                          ("Auth-Pass", "secret"),
                          ("Auth-Protocol", "imap"),
                          ("Auth-Login-Attempt", "1"),
                          ("Client-IP", "127.0.0.1"),
                          ("X-Auth-Key", "k3y"),
                          ("X-Second", "two")])

    def test_auth_connection_kept_alive(self):
        for i in range(3):
            c = self.connect()
            self.login(c, tag="a%d" % i)
            c.cmd("z LOGOUT")
            c.read_until_tagged("z")
        self.assertEqual(len(self.auth.wait_requests(3)), 3)
        self.assertEqual(self.auth.connections_opened, 1)

    def test_wrong_password_no_then_close(self):
        c = self.connect()
        c.cmd("a LOGIN alice wrong")
        c.expect("a NO [AUTHENTICATIONFAILED] Invalid login or password")
        c.expect("* BYE authentication failed")
        c.expect_closed()

    def test_failure_text_with_response_code_sent_verbatim(self):
        self.auth.fail_text = "[ALERT] account locked"
        c = self.connect()
        c.cmd("a LOGIN alice wrong")
        c.expect("a NO [ALERT] account locked")
        c.expect("* BYE authentication failed")
        c.expect_closed()

    def test_auth_wait_delays_no_and_keeps_session(self):
        self.auth.fail_wait = 1
        c = self.connect()
        t0 = time.monotonic()
        c.cmd("a LOGIN alice wrong")
        c.expect("a NO [AUTHENTICATIONFAILED] Invalid login or password")
        self.assertGreaterEqual(time.monotonic() - t0, 0.9)
        c.cmd("b NOOP")
        c.expect("b OK NOOP completed")
        self.login(c, tag="c")
        reqs = self.auth.wait_requests(2)
        self.assertEqual([r.get("Auth-Login-Attempt") for r in reqs],
                         ["1", "2"])

    def test_auth_status_wait_then_ok(self):
        self.auth.wait_replies = 1
        c = self.connect()
        self.login(c)
        reqs = self.auth.wait_requests(2)
        self.assertEqual(len(reqs), 2)
        self.assertEqual([r.get("Auth-Login-Attempt") for r in reqs],
                         ["1", "1"])

    def test_auth_user_and_pass_override(self):
        dport = self.dovecot.port

        def hook(req):
            if req.user == "nick":
                return [("Auth-Status", "OK"),
                        ("Auth-Server", "127.0.0.1"),
                        ("Auth-Port", str(dport)),
                        ("Auth-User", "alice"),
                        ("Auth-Pass", "secret")]
            return None
        self.auth.hook = hook
        subject = "override-%s" % uuid.uuid4()
        m = self.imap()
        self.assertEqual(m.login("nick", "anything")[0], "OK")
        self.assertEqual(m.append("INBOX", None, None,
                                  message(subject))[0], "OK")
        m.logout()
        # the message is in alice's mailbox
        b = imaplib.IMAP4("127.0.0.1", dport, timeout=10)
        try:
            b.login("alice", "secret")
            b.select("INBOX", readonly=True)
            typ, data = b.search(None, "HEADER", "Subject", subject)
            self.assertEqual(typ, "OK")
            self.assertEqual(len(data[0].split()), 1)
        finally:
            b.logout()

    # the backend login

    def test_backend_ok_carries_capability(self):
        c = self.connect()
        lines = self.login(c)
        self.assertRegex(lines[-1], r"^a OK \[CAPABILITY [^]]*IMAP4rev1")

    def test_commands_pipelined_after_login(self):
        c = self.connect()
        c.send(b"a LOGIN alice secret\r\nb SELECT INBOX\r\nc NOOP\r\n")
        lines = c.read_until_tagged("a")
        self.assertTrue(lines[-1].startswith("a OK"), lines)
        lines = c.read_until_tagged("b")
        self.assertTrue(lines[-1].startswith("b OK [READ-WRITE]"), lines)
        self.assertTrue([l for l in lines if l.endswith(" EXISTS")], lines)
        lines = c.read_until_tagged("c")
        self.assertTrue(lines[-1].startswith("c OK"), lines)

    def test_append_10mib_and_fetch_identical(self):
        line = b"x" * 74 + b"\r\n"
        body = line * (10 * 1024 * 1024 // len(line))
        msg = message("big-%s" % uuid.uuid4(), body)
        self.assertGreaterEqual(len(msg), 10 * 1024 * 1024 - 76)
        m = self.imap(timeout=120)
        m.login("alice", "secret")
        m.select("INBOX")
        resp = m.append("INBOX", None, None, msg)
        self.assertEqual(resp[0], "OK", resp)
        uid = appenduid(resp)
        typ, data = m.uid("FETCH", uid, "(BODY.PEEK[])")
        self.assertEqual(typ, "OK")
        got = data[0][1]
        self.assertEqual(len(got), len(msg))
        self.assertTrue(got == msg, "fetched message differs")
        m.uid("STORE", uid, "+FLAGS", r"(\Deleted)")
        m.expunge()
        m.logout()

    def test_idle_sees_append_from_another_connection(self):
        c = self.connect()
        self.login(c)
        c.cmd("b SELECT INBOX")
        lines = c.read_until_tagged("b")
        exists = [int(l.split()[1]) for l in lines
                  if re.match(r"^\* \d+ EXISTS$", l)]
        self.assertEqual(len(exists), 1, lines)
        c.cmd("c IDLE")
        c.expect("+ idling")        # Dovecot's continuation, relayed
        other = self.imap()
        other.login("alice", "secret")
        self.assertEqual(other.append("INBOX", None, None,
                                      message("idle"))[0], "OK")
        other.logout()
        want = "* %d EXISTS" % (exists[0] + 1)
        deadline = time.monotonic() + 20
        while True:
            line = c.readline(timeout=max(0.1, deadline - time.monotonic()))
            if line == want:
                break
        c.cmd("DONE")
        lines = c.read_until_tagged("c")
        self.assertTrue(lines[-1].startswith("c OK"), lines)

    def test_session_end_log_line(self):
        c = self.connect()
        self.login(c)
        c.cmd("b NOOP")
        c.read_until_tagged("b")
        c.cmd("z LOGOUT")
        c.read_until_tagged("z")
        c.expect_closed()
        kv = self.session_end(c.client_addr)
        self.assertEqual(kv["user"], "alice")
        self.assertEqual(kv["backend"], "127.0.0.1:%d" % self.dovecot.port)
        self.assertGreaterEqual(int(kv["in"]), len(b"b NOOP\r\nz LOGOUT\r\n"))
        self.assertGreater(int(kv["out"]), 0)
        for k in ("auth_ms", "duration_ms"):
            self.assertRegex(kv[k], r"^\d+$")
        self.assertIn("reason", kv)

    def test_session_end_before_login(self):
        c = self.connect()
        c.cmd("z LOGOUT")
        c.read_until_tagged("z")
        kv = self.session_end(c.client_addr)
        self.assertEqual(kv["user"], "-")
        self.assertEqual(kv["backend"], "-")

    # static backend, no auth service

    def _static(self):
        return self.start(no_auth=True, server={
            "proxy_pass": "127.0.0.1:%d" % self.dovecot.port})

    def test_static_proxy_pass_login(self):
        self._static()
        m = self.imap()
        self.assertEqual(m.login("alice", "secret")[0], "OK")
        self.assertEqual(m.select("INBOX")[0], "OK")
        m.logout()
        self.assertEqual(self.auth.requests, [])

    def test_static_proxy_pass_wrong_password_backend_no_and_retry(self):
        self._static()
        b = self.backend()
        b.cmd("a LOGIN alice wrong")
        want = b.readline()
        self.assertTrue(want.startswith("a NO "), want)
        c = self.connect()
        c.cmd("a LOGIN alice wrong")
        c.expect(want)
        c.cmd("b NOOP")
        c.expect("b OK NOOP completed")
        self.login(c, tag="c")
        c.cmd("d SELECT INBOX")
        lines = c.read_until_tagged("d")
        self.assertTrue(lines[-1].startswith("d OK"), lines)


class LoginSharedTests(LoginTests):
    ISOLATION = "shared"
    WORKER_PROCESSES = 2


if __name__ == "__main__":
    unittest.main()
