"""What real clients and operators trip over (issue 14), against the
run's Dovecot with real clients: the end line tells a completed LOGOUT
from a dropped connection."""

import imaplib
import socket

from lib.case import DaemonTestCase


class Logout(DaemonTestCase):

    def test_imaplib_logout_says_client_logout(self):
        m = self.imap()
        m.login("alice", self.password("alice"))
        m.select("INBOX")
        addr = "127.0.0.1:%d" % m.sock.getsockname()[1]
        self.assertEqual(m.logout()[0], "BYE")
        end = self.session_end(addr)
        self.assertEqual(end["reason"], "client logout")
        self.assertEqual(end["user"], "alice")

    def test_raw_logout_then_client_closes_first(self):
        # the client closes as soon as it has the OK, before Dovecot
        c = self.connect()
        self.login(c)
        c.cmd("l LOGOUT")
        lines = c.read_until_tagged("l")
        self.assertTrue(lines[0].startswith("* BYE"), lines)
        addr = c.client_addr
        c.sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER,
                          b"\x01\x00\x00\x00\x00\x00\x00\x00")
        c.close()
        self.assertEqual(self.session_end(addr)["reason"],
                         "client logout")

    def test_dropped_connection_is_not_a_logout(self):
        c = self.connect()
        self.login(c)
        c.cmd("n NOOP")
        c.read_until_tagged("n")
        addr = c.client_addr
        c.close()
        self.assertEqual(self.session_end(addr)["reason"],
                         "client closed")

    def test_prelogin_logout(self):
        m = imaplib.IMAP4("127.0.0.1", self.port, timeout=10)
        addr = "127.0.0.1:%d" % m.sock.getsockname()[1]
        m.logout()
        self.assertEqual(self.session_end(addr)["reason"], "client logout")


class LogoutShared(Logout):
    ISOLATION = "shared"
