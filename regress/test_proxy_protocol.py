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

"""The PROXY protocol (issue 10 item 2): "listen ... proxy_protocol"
with set_real_ip_from, the Proxy-Protocol-* headers to auth_http, and
"proxy_protocol on" towards a Dovecot that reads PROXY headers; a real
HAProxy spreading clients over two imaprelayd with send-proxy-v2."""

import os
import re
import shutil
import socket
import struct
import subprocess
import time
import unittest

from lib import dovecot as dovecotlib
from lib import util
from lib.case import DaemonTestCase
from lib.imapclient import RawImap

PP_V1 = "PROXY TCP4 203.0.113.7 127.0.0.1 40001 143\r\n"
V2_SIG = b"\r\n\r\n\x00\r\nQUIT\n"


def v2_header(src, dst, sport, dport):
    """A version 2 PROXY header for TCP over IPv4."""
    body = socket.inet_aton(src) + socket.inet_aton(dst) + \
        struct.pack("!HH", sport, dport)
    return V2_SIG + b"\x21\x11" + struct.pack("!H", len(body)) + body


class ProxyProtocolListen(DaemonTestCase):

    def start_pp(self, trusted="127.0.0.0/8", **kw):
        server = {"timeout": "3s"}
        if trusted:
            server["set_real_ip_from"] = trusted
        server.update(kw.pop("server", {}))
        return self.start(listen_params="proxy_protocol", server=server,
                          **kw)

    def pp_connect(self, header, source=None):
        c = RawImap(self.port, source=source)
        self._clients.append(c)
        c.send(header)
        return c

    def test_v1_trusted_real_address(self):
        self.start_pp()
        c = self.pp_connect(PP_V1)
        c.expect_prefix("* OK ")
        self.login(c)
        req = self.auth.last()
        self.assertEqual(req.get("Client-IP"), "203.0.113.7")
        self.assertEqual(req.get("Proxy-Protocol-Addr"), "203.0.113.7")
        self.assertEqual(req.get("Proxy-Protocol-Port"), "40001")
        self.assertEqual(req.get("Proxy-Protocol-Server-Addr"), "127.0.0.1")
        self.assertEqual(req.get("Proxy-Protocol-Server-Port"), "143")
        # the headers come right after Client-IP, as nginx sends them
        names = req.names()
        i = names.index("Client-IP")
        self.assertEqual(names[i + 1:i + 5], [
            "Proxy-Protocol-Addr", "Proxy-Protocol-Port",
            "Proxy-Protocol-Server-Addr", "Proxy-Protocol-Server-Port"])
        c.cmd("z LOGOUT")
        c.read_until_tagged("z")
        self.session_end("203.0.113.7:40001")

    def test_v2_trusted_real_address(self):
        self.start_pp()
        c = self.pp_connect(v2_header("198.51.100.9", "192.0.2.1", 5555,
                                      993))
        c.expect_prefix("* OK ")
        self.login(c)
        req = self.auth.last()
        self.assertEqual(req.get("Client-IP"), "198.51.100.9")
        self.assertEqual(req.get("Proxy-Protocol-Port"), "5555")
        self.assertEqual(req.get("Proxy-Protocol-Server-Addr"), "192.0.2.1")
        self.assertEqual(req.get("Proxy-Protocol-Server-Port"), "993")

    def test_header_and_command_in_one_packet(self):
        """Bytes after the header are the client's: nothing is lost."""
        self.start_pp()
        c = self.pp_connect(PP_V1 + "n NOOP\r\n")
        c.expect_prefix("* OK ")
        self.assertEqual(c.read_until_tagged("n")[-1], "n OK NOOP completed")

    def test_untrusted_sender_own_address(self):
        d = self.start_pp(trusted="192.0.2.0/24")
        c = self.pp_connect(PP_V1)
        c.expect_prefix("* OK ")
        self.login(c)
        req = self.auth.last()
        self.assertEqual(req.get("Client-IP"), "127.0.0.1")
        # the auth service hears what the header said either way
        self.assertEqual(req.get("Proxy-Protocol-Addr"), "203.0.113.7")
        d.wait_for_log(r"PROXY header from client=127\.0\.0\.1:\d+, not "
                       r"in set_real_ip_from: its own address is used")

    def test_no_header_refused(self):
        """Silence: closed at the timeout without a word."""
        d = self.start_pp()
        c = RawImap(self.port)
        self._clients.append(c)
        c.expect_closed(timeout=10)
        self.assertEqual(c.buf, b"")
        d.wait_for_log(r'reason="proxy protocol: no header within '
                       r'timeout"')

    def test_imap_instead_of_header_refused(self):
        d = self.start_pp()
        c = self.pp_connect("a LOGIN alice secret\r\n")
        c.expect_closed()
        self.assertEqual(c.buf, b"")
        d.wait_for_log(r'reason="proxy protocol: not a PROXY protocol '
                       r'header"')

    def test_garbage_header_refused(self):
        d = self.start_pp()
        c = self.pp_connect("PROXY TCP4 203.0.113.777 127.0.0.1 1 2\r\n")
        c.expect_closed()
        self.assertEqual(c.buf, b"")
        d.wait_for_log(r'reason="proxy protocol: ')
        self.assertTrue(d.running())

    def test_limit_counts_real_address(self):
        """limit_conn_per_ip counts the address of the header."""
        self.start_pp(server={"limit_conn_per_ip": 1})
        a = self.pp_connect(PP_V1)
        a.expect_prefix("* OK ")
        b = self.pp_connect(PP_V1.replace("40001", "40002"))
        b.expect("* BYE [UNAVAILABLE] too many connections from your "
                 "address")
        other = self.pp_connect(PP_V1.replace("203.0.113.7",
                                              "203.0.113.8"))
        other.expect_prefix("* OK ")


class ProxyProtocolListenShared(ProxyProtocolListen):
    """The same with isolation shared: many clients per worker."""
    ISOLATION = "shared"


class ProxyProtocolDovecot(DaemonTestCase):
    """proxy_protocol on: a Dovecot with haproxy_trusted_networks logs
    the client's real address."""

    def test_dovecot_logs_real_client(self):
        hport = util.free_port()
        extra = """
haproxy_trusted_networks = 127.0.0.0/8
service imap-login {
  inet_listener imap-haproxy {
    address = 127.0.0.1
    port = %d
    haproxy = yes
  }
}
""" % hport
        try:
            dv = dovecotlib.start(extra_conf=extra)
        except dovecotlib.SkipDovecot as e:
            self.skipTest(str(e))
        self.addCleanup(dv.stop)
        for proto in ("on", "v2"):
            self.start(no_auth=True, listen_params="proxy_protocol",
                       server={"set_real_ip_from": "127.0.0.1",
                               "proxy_pass": "127.0.0.1:%d" % hport,
                               "proxy_protocol": proto})
            c = RawImap(self.port)
            self._clients.append(c)
            src = "203.0.113.%d" % (50 if proto == "on" else 51)
            c.send("PROXY TCP4 %s 127.0.0.1 41000 143\r\n" % src)
            c.expect_prefix("* OK ")
            c.cmd('a LOGIN alice "%s"' % dv.users["alice"])
            self.assertTrue(c.read_until_tagged("a")[-1].startswith("a OK"))
            deadline = time.monotonic() + 10
            while not re.search(r"Login: user=<alice>.*rip=%s"
                                % re.escape(src), dv.log()):
                self.assertLess(time.monotonic(), deadline, dv.log())
                time.sleep(0.05)
            c.close()
            self._daemon.stop()
            self._daemon = None


@unittest.skipUnless(shutil.which("haproxy"), "haproxy not installed "
                     "(apt-get install haproxy)")
class HaproxyScaleOut(DaemonTestCase):
    """A real HAProxy spreads clients over two imaprelayd with
    send-proxy-v2; the auth service sees the client's address."""

    def test_two_instances_behind_haproxy(self):
        ds = [self.start(listen_params="proxy_protocol",
                         server={"set_real_ip_from": "127.0.0.1"})
              for _ in range(2)]
        front = util.free_port()
        cfg = os.path.join(self.tmp, "haproxy.cfg")
        with open(cfg, "w") as f:
            f.write("""global
    maxconn 100
defaults
    mode tcp
    timeout connect 5s
    timeout client 30s
    timeout server 30s
frontend imap
    bind 127.0.0.1:%d
    default_backend relays
backend relays
    balance roundrobin
    server relay0 127.0.0.1:%d send-proxy-v2
    server relay1 127.0.0.1:%d send-proxy-v2
""" % (front, ds[0].port, ds[1].port))
        hp = subprocess.Popen(["haproxy", "-db", "-f", cfg],
                              stdin=subprocess.DEVNULL,
                              stdout=subprocess.DEVNULL,
                              stderr=subprocess.DEVNULL)
        self.addCleanup(hp.wait)
        self.addCleanup(hp.terminate)
        deadline = time.monotonic() + 20
        while not util.port_accepts("127.0.0.1", front):
            self.assertIsNone(hp.poll(), "haproxy exited")
            self.assertLess(time.monotonic(), deadline)
            time.sleep(0.05)
        sources = ["127.0.0.%d" % i for i in (11, 12, 13, 14)]
        for i, src in enumerate(sources):
            c = RawImap(front, source=src)
            self._clients.append(c)
            c.expect_prefix("* OK ")
            self.login(c, tag="a%d" % i)
            req = self.auth.last()
            self.assertEqual(req.get("Client-IP"), src)
            self.assertEqual(req.get("Proxy-Protocol-Addr"), src)
            self.assertEqual(req.get("Proxy-Protocol-Server-Port"),
                             str(front))
            c.cmd("z LOGOUT")
            c.read_until_tagged("z")
        # both instances served, each seeing the real client addresses
        for d in ds:
            d.wait_for_log(r"session end client=127\.0\.0\.1[1-4]:\d+ "
                           r"user=alice")


if __name__ == "__main__":
    unittest.main()
