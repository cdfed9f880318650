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

"""The relay phase: bytes both ways until either side closes, with
proxy_timeout, half-close, bounded buffers and backpressure, and one
"session end" log line per session.  Every test runs twice: one worker
per connection (isolation connection) and shared workers (isolation
shared, worker_processes 2).  In plaintext both ways the relay splices
through pipes (Linux); under TLS it goes through buffers: the tests of
RelayChecks run for both, RelayTlsTests with an implicit TLS client.

Memory is judged by the VmRSS of the imap worker that serves the
connection, found through /proc (Linux only; skipped elsewhere).
"""

import os
import re
import signal
import socket
import threading
import time
import unittest
import uuid

from lib import daemon as daemonlib
from lib import util
from lib.case import DaemonTestCase
from lib.imapclient import RawImap
from test_tls import TlsCase

MiB = 1024 * 1024
SANITIZED = os.environ.get("IMAPRELAYD_SANITIZE") == "1"


def message(subject, body):
    return (b"From: regress@example.org\r\nTo: alice@example.org\r\n"
            b"Subject: " + subject.encode() + b"\r\n\r\n" + body)


def big_message(size):
    line = b"y" * 74 + b"\r\n"
    body = line * (size // len(line))
    return message("relay-%s" % uuid.uuid4(), body)


def queues(local_port, remote_port):
    """(tx_queue, rx_queue) of the socket local_port <-> remote_port."""
    for lp, rp, tx, rx, _ in util.tcp_entries():
        if lp == local_port and rp == remote_port:
            return tx, rx
    return None


def socket_inodes(pid):
    found = set()
    d = "/proc/%d/fd" % pid
    try:
        fds = os.listdir(d)
    except OSError:
        return found
    for fd in fds:
        try:
            link = os.readlink(os.path.join(d, fd))
        except OSError:
            continue
        m = re.match(r"socket:\[(\d+)\]$", link)
        if m:
            found.add(m.group(1))
    return found


def local_ports_to(pid, remote_port):
    """Local ports of pid's TCP connections to remote_port."""
    inodes = socket_inodes(pid)
    return {lp for lp, rp, _, _, ino in util.tcp_entries()
            if rp == remote_port and ino in inodes}


class SmallRcvbufImap(RawImap):
    """A raw client whose receive buffer is set small before connect, so
    that the kernel cannot hide a proxy that would not stop."""

    def __init__(self, port, rcvbuf, host="127.0.0.1", timeout=10):
        self.timeout = timeout
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, rcvbuf)
        self.sock.settimeout(timeout)
        self.sock.connect((host, port))
        self.buf = b""
        self.eof = False
        self.transcript = []


class RelayChecks:
    """What the relay tests share, whatever the transport."""

    def setUp(self):
        super().setUp()
        if not os.path.isdir("/proc/self/fd") or \
                not os.path.exists("/proc/net/tcp"):
            self.skipTest("needs Linux /proc")

    def start(self, *args, **kw):
        d = super().start(*args, **kw)
        self.addCleanup(self._no_crash, d)
        return d

    def _no_crash(self, d):
        """A session's end, whatever its cause, never takes a process."""
        m = re.search(r"^.*(killed by signal|fatal|exited with status "
                      r"[1-9]).*$", d.log(), re.M)
        self.assertIsNone(m, m and m.group(0))

    # helpers

    def _worker_of(self, d, c):
        """The imap worker that holds client c's connection."""
        pids = util.wait_until(
            lambda: util.pids_holding_connection(d.port, c.local_port,
                                                 d.pids("imap")),
            5, what="the worker of %s" % c.client_addr)
        self.assertEqual(len(pids), 1, "worker of %s: %s"
                         % (c.client_addr, pids))
        return pids[0]

    def _append(self, c, tag, msg):
        """APPEND msg to INBOX with a synchronising literal; the uid."""
        c.cmd("%s APPEND INBOX {%d}" % (tag, len(msg)))
        c.expect_prefix("+ ")
        c.send(msg + b"\r\n")
        lines = c.read_until_tagged(tag, timeout=120)
        self.assertTrue(lines[-1].startswith(tag + " OK"), lines)
        m = re.search(r"\[APPENDUID \d+ (\d+)\]", lines[-1])
        self.assertTrue(m, lines)
        return int(m.group(1))

    def _expunge(self, c, uid):
        c.cmd(r"e1 UID STORE %d +FLAGS.SILENT (\Deleted)" % uid)
        lines = c.read_until_tagged("e1")
        self.assertTrue(lines[-1].startswith("e1 OK"), lines)
        c.cmd("e2 EXPUNGE")
        lines = c.read_until_tagged("e2")
        self.assertTrue(lines[-1].startswith("e2 OK"), lines)

    def _read_literal(self, c, n, timeout=120):
        """n bytes from c, collected in chunks (RawImap.read_exact would
        copy its buffer on every recv)."""
        chunks = [c.buf[:n]]
        got = len(chunks[0])
        c.buf = c.buf[n:]
        deadline = time.monotonic() + timeout
        while got < n:
            c.sock.settimeout(max(0.01, deadline - time.monotonic()))
            data = c.sock.recv(min(1 << 20, max(65536, n - got)))
            if not data:
                raise AssertionError("EOF after %d of %d literal bytes"
                                     % (got, n))
            if got + len(data) > n:
                c.buf = data[n - got:]
                data = data[:n - got]
            chunks.append(data)
            got += len(data)
        return b"".join(chunks)

    def _sample_until_still(self, pid, conns, rss0, deadline_s=30,
                            still_s=1.0):
        """Sample pid's RSS and the queues of the given connections
        ((local, remote) port pairs) until none of them changed for
        still_s seconds.  Returns (peak RSS kB, last queue values)."""
        peak = rss0
        last = None
        since = time.monotonic()
        deadline = since + deadline_s
        while True:
            rss = util.proc_status(pid, "VmRSS")
            self.assertIsNotNone(rss, "worker %d gone" % pid)
            peak = max(peak, rss)
            now = (rss, tuple(queues(*c) for c in conns))
            t = time.monotonic()
            if now != last:
                last, since = now, t
            elif t - since >= still_s:
                return peak, now[1]
            if t > deadline:
                raise AssertionError("still moving after %ds: rss %d kB, "
                                     "queues %s" % (deadline_s, rss,
                                                    now[1]))
            time.sleep(0.05)

    # 1. proxy_timeout

    def test_proxy_timeout_closes_idle_session(self):
        d = self.start(server={"proxy_timeout": "1s"})
        c = self.connect()
        self.login(c)
        # traffic before the deadline keeps the session open
        t_end = time.monotonic() + 2.0
        i = 0
        while time.monotonic() < t_end:
            c.cmd("n%d NOOP" % i)
            lines = c.read_until_tagged("n%d" % i)
            self.assertTrue(lines[-1].startswith("n%d OK" % i), lines)
            last = time.monotonic()
            i += 1
            time.sleep(0.5)
        self.assertGreaterEqual(i, 4)
        self.assertTrue(c.still_open(), "closed while traffic flowed")
        # then idle: closed by the proxy about a second after the last
        # byte, well within the bound, with a BYE (RFC 3501 7.1.5)
        c.expect("* BYE autologout; idle for too long", timeout=5)
        c.expect_closed(timeout=5)
        idle = time.monotonic() - last
        self.assertGreaterEqual(idle, 0.9)
        self.assertLess(idle, 5)
        kv = self.session_end(c.client_addr, d)
        self.assertEqual(kv["reason"], "proxy timeout")
        self.assertEqual(kv["user"], "alice")

    # 3. backpressure after login (the test of each transport below)

    def _pipes(self, pid):
        """How many pipe descriptors pid holds."""
        n = 0
        for fd in os.listdir("/proc/%d/fd" % pid):
            try:
                if os.readlink("/proc/%d/fd/%s" % (pid, fd)).startswith(
                        "pipe:"):
                    n += 1
            except OSError:
                pass
        return n

    def _stalled_fetch(self, d, c, size=20 * MiB):
        """A FETCH of a big message that c does not read: once everything
        stands still, the worker's RSS has grown by less than 4 MB, it
        has stopped reading the backend, and far less than the message
        is on its way to c.  Then c reads it all, intact.  Returns the
        number of pipes the worker held while it stood still."""
        c.cmd("s SELECT INBOX")
        lines = c.read_until_tagged("s")
        self.assertTrue(lines[-1].startswith("s OK"), lines)
        msg = big_message(size)
        uid = self._append(c, "p", msg)
        worker = self._worker_of(d, c)
        bports = local_ports_to(worker, self.dovecot.port)
        self.assertEqual(len(bports), 1, bports)
        bport = bports.pop()
        rss0 = util.proc_status(worker, "VmRSS")
        c.cmd("f UID FETCH %d BODY[]" % uid)
        # not reading: wait until everything stands still
        conns = [(c.local_port, d.port),          # our receive queue
                 (d.port, c.local_port),          # the proxy's send queue
                 (bport, self.dovecot.port)]      # proxy <- backend
        peak, q = self._sample_until_still(worker, conns, rss0)
        pipes = self._pipes(worker)
        # ASan keeps freed memory in quarantine on purpose: there the
        # queues below are the proof
        if not SANITIZED:
            self.assertLess(peak - rss0, 4 * 1024,
                            "worker RSS grew from %d to %d kB while the "
                            "client did not read" % (rss0, peak))
        # the proxy stopped reading the backend: bytes wait unread in
        # its receive queue, and far less than the message is on the way
        # to us
        self.assertIsNotNone(q[2])
        self.assertGreater(q[2][1], 0, "proxy's backend socket has "
                           "nothing queued: %s" % (q,))
        self.assertLess(q[0][1] + q[1][0], len(msg), q)
        # now read it all
        line = c.readline(timeout=60)
        m = re.match(r"^\* \d+ FETCH \(.*BODY\[\] \{(\d+)\}$", line)
        self.assertTrue(m, line)
        self.assertEqual(int(m.group(1)), len(msg))
        got = self._read_literal(c, len(msg))
        self.assertEqual(len(got), len(msg))
        self.assertTrue(got == msg, "fetched message differs")
        lines = c.read_until_tagged("f", timeout=60)
        self.assertTrue(lines[-1].startswith("f OK"), lines)
        self._expunge(c, uid)
        c.cmd("z LOGOUT")
        c.read_until_tagged("z")
        return pipes

    # 6. byte counts of the session end line

    def test_session_end_counts_bytes(self):
        d = self.start()
        c = self.connect()
        received = {"n": 0}

        def line(timeout=None):
            s = c.readline_bytes(timeout)
            received["n"] += len(s) + 2
            return s.decode("latin-1")

        def until(tag):
            while True:
                s = line(timeout=60)
                if s.startswith(tag + " "):
                    return s
        c.cmd('a LOGIN alice "%s"' % self.password("alice"))
        self.assertTrue(until("a").startswith("a OK"))
        from_login = received["n"]      # the backend's login reply
        received["n"] = 0
        msg = big_message(256 * 1024)
        n = len(msg)
        sent = []

        def send(data):
            sent.append(len(data))
            c.send(data)
        send(b"b APPEND INBOX {%d}\r\n" % n)
        self.assertTrue(line().startswith("+ "))
        send(msg + b"\r\n")
        tagged = until("b")
        self.assertTrue(tagged.startswith("b OK"), tagged)
        uid = int(re.search(r"\[APPENDUID \d+ (\d+)\]", tagged).group(1))
        send(b"c SELECT INBOX\r\n")
        until("c")
        send(b"d UID FETCH %d BODY.PEEK[]\r\n" % uid)
        s = line()
        m = re.search(r"\{(\d+)\}$", s)
        self.assertTrue(m, s)
        self.assertEqual(int(m.group(1)), n)
        self.assertEqual(self._read_literal(c, n), msg)
        received["n"] += n
        until("d")
        send(b"e UID STORE %d +FLAGS.SILENT (\\Deleted)\r\n" % uid)
        until("e")
        send(b"f EXPUNGE\r\n")
        until("f")
        send(b"z LOGOUT\r\n")
        until("z")
        c.expect_closed(timeout=5)
        kv = self.session_end(c.client_addr, d)
        bin_, bout = int(kv["in"]), int(kv["out"])
        self.assertGreaterEqual(bin_, n)
        # every byte the client sent after its login reached the backend
        self.assertEqual(bin_, sum(sent), kv)
        # and every byte the backend sent reached the client: its login
        # reply and all that followed
        self.assertGreaterEqual(bout, received["n"])
        self.assertEqual(bout, from_login + received["n"], kv)

class RelayTests(RelayChecks, DaemonTestCase):
    ISOLATION = "connection"
    WORKER_PROCESSES = 1

    def test_backpressure_client_not_reading_fetch(self):
        d = self.start(args=["-v", "-v"])
        c = self.connect(timeout=120)
        # libevent's own pipe, before this session used any
        pipes0 = self._pipes(self._worker_of(d, c))
        self.login(c)
        # plaintext both ways: the relay splices on Linux, and the bytes
        # that wait for the client wait in a pipe, not in the worker
        d.wait_for_log(r"login client=%s backend=\S+ relay=splice$"
                       % re.escape(c.client_addr))
        pipes = self._stalled_fetch(d, c)
        self.assertGreater(pipes, pipes0, "no pipe in the worker while "
                           "the FETCH waited for the client")
        kv = self.session_end(c.client_addr, d)
        self.assertGreater(int(kv["out"]), 20 * MiB)

    def test_login_pipelined_commands_go_first(self):
        # what the client sent after LOGIN in the same packet was read
        # into a buffer before the relay began: it reaches the backend
        # before anything spliced after it, in order
        d = self.start(args=["-v", "-v"])
        c = self.connect()
        c.send(('a LOGIN alice "%s"\r\nb NOOP\r\nc SELECT INBOX\r\n'
                % self.password("alice")).encode())
        self.assertTrue(c.read_until_tagged("a")[-1].startswith("a OK"))
        self.assertTrue(c.read_until_tagged("b")[-1].startswith("b OK"))
        lines = c.read_until_tagged("c")
        self.assertTrue(lines[-1].startswith("c OK [READ-WRITE]"), lines)
        d.wait_for_log(r"login client=%s backend=\S+ relay=splice$"
                       % re.escape(c.client_addr))
        c.cmd("d NOOP")
        self.assertTrue(c.read_until_tagged("d")[-1].startswith("d OK"))
        c.cmd("z LOGOUT")
        c.read_until_tagged("z")
        c.expect_closed(timeout=5)
        kv = self.session_end(c.client_addr, d)
        self.assertEqual(int(kv["in"]), len(b"b NOOP\r\nc SELECT INBOX\r\n"
                                            b"d NOOP\r\nz LOGOUT\r\n"))

    # 2. half-close

    def test_half_close_logout_still_answered(self):
        d = self.start()
        c = self.connect()
        self.login(c)
        c.send(b"x LOGOUT\r\n")
        c.sock.shutdown(socket.SHUT_WR)
        lines = c.read_until_tagged("x")
        self.assertTrue(lines[0].startswith("* BYE"), lines)
        self.assertTrue(lines[-1].startswith("x OK"), lines)
        c.expect_closed(timeout=5)
        kv = self.session_end(c.client_addr, d)
        self.assertEqual(kv["user"], "alice")
        self.assertGreaterEqual(int(kv["in"]), len(b"x LOGOUT\r\n"))

    # 4. backend closes

    def _dovecot_imap_of(self, bport):
        """The Dovecot imap process holding the backend side of the
        proxy's connection from local port bport."""
        if not self.dovecot.pid:
            self.skipTest("Dovecot's pid unknown")
        cands = [p[0] for p in util.descendants(self.dovecot.pid)
                 if re.search(r"/imap(\s|$)", p[3])]
        pids = util.pids_holding_connection(self.dovecot.port, bport, cands)
        self.assertEqual(len(pids), 1, "imap process of port %d: %s"
                         % (bport, pids))
        return pids[0]

    def test_backend_closes_mid_session(self):
        d = self.start()
        c = self.connect()
        self.login(c)
        c.cmd("s SELECT INBOX")
        c.read_until_tagged("s")
        worker = self._worker_of(d, c)
        # the only backend connection so far is c's
        bports = local_ports_to(worker, self.dovecot.port)
        self.assertEqual(len(bports), 1, bports)
        victim = self._dovecot_imap_of(bports.pop())
        others = []
        for i in range(3):
            o = self.connect()
            self.login(o, user="bob", tag="o%d" % i)
            others.append(o)
        mark = d.mark()
        t0 = time.monotonic()
        os.kill(victim, signal.SIGKILL)
        # the backend said nothing: the proxy says BYE before it closes
        c.expect("* BYE [UNAVAILABLE] backend closed the connection",
                 timeout=5)
        c.expect_closed(timeout=5)
        self.assertLess(time.monotonic() - t0, 5)
        kv = self.session_end(c.client_addr, d)
        self.assertEqual(kv["reason"], "backend closed")
        self.assertEqual(kv["user"], "alice")
        for i, o in enumerate(others):
            o.cmd("q%d NOOP" % i)
            lines = o.read_until_tagged("q%d" % i)
            self.assertTrue(lines[-1].startswith("q%d OK" % i), lines)
        self.assertNotRegex(d.log()[mark:], r"session end client=(%s) "
                            % "|".join(re.escape(o.client_addr)
                                       for o in others))

    # 5. client closes

    def _client_closes(self, rst):
        d = self.start()
        c = self.connect()
        self.login(c)
        c.cmd("s SELECT INBOX")
        c.read_until_tagged("s")
        worker = self._worker_of(d, c)
        addr = c.client_addr
        if rst:
            c.sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER,
                              b"\x01\x00\x00\x00\x00\x00\x00\x00")
        c.close()
        kv = self.session_end(addr, d, timeout=5)
        self.assertEqual(kv["reason"], "client closed")
        self.assertEqual(kv["user"], "alice")
        self.assertEqual(kv["backend"], "127.0.0.1:%d" % self.dovecot.port)
        if self.ISOLATION == "connection":
            util.wait_until(lambda: not util.pid_alive(worker) or
                            worker not in d.pids("imap"), 5,
                            what="worker %d to exit" % worker)
        else:
            self.assertTrue(util.pid_alive(worker))
            self.assertIn(worker, d.pids("imap"))
        # the proxy goes on serving
        c2 = self.connect()
        self.login(c2, tag="b")
        return kv

    def test_client_closes_mid_session(self):
        self._client_closes(rst=False)

    def test_client_resets_mid_session(self):
        self._client_closes(rst=True)

    # 7. pre-login output backpressure

    def _noops_unread(self, n):
        """n NOOPs pipelined by a client that reads nothing back, sent
        from a thread; once the worker's RSS and the socket queues stand
        still, the RSS must have grown by less than 2 MB.  Returns the
        client, the writer thread, its errors and the queues."""
        # far past the default budget of commands before login
        d = self.start(server={"login_max_commands": 1000000})
        c = SmallRcvbufImap(d.port, 4096, timeout=60)
        self._clients.append(c)
        c.expect_prefix("* OK ")
        worker = self._worker_of(d, c)
        rss0 = util.proc_status(worker, "VmRSS")
        data = b"".join(b"a%d NOOP\r\n" % i for i in range(n))
        errors = []

        def writer():
            try:
                c.sock.sendall(data)
            except Exception as e:     # reported below
                errors.append(e)
        t = threading.Thread(target=writer, daemon=True)
        t.start()
        conns = [(c.local_port, d.port), (d.port, c.local_port)]
        peak, q = self._sample_until_still(worker, conns, rss0)
        self.assertLess(peak - rss0, 2 * 1024,
                        "worker RSS grew from %d to %d kB while the client "
                        "did not read" % (rss0, peak))
        return c, t, errors, q

    def test_prelogin_pipelined_noops_bounded(self):
        n = 10000
        c, t, errors, _ = self._noops_unread(n)
        for i in range(n):
            c.expect("a%d OK NOOP completed" % i, timeout=30)
        t.join(30)
        self.assertFalse(t.is_alive())
        self.assertEqual(errors, [])
        self.assertEqual(c.buf, b"")
        c.cmd("z NOOP")
        c.expect("z OK NOOP completed")
        self.assertTrue(c.still_open())

    def test_prelogin_pipelined_noops_stop_reading(self):
        # 10,000 replies fit the kernel's socket buffers; 300,000 (8 MB)
        # do not, so the worker itself must stop reading commands
        n = 300000
        want = b"".join(b"a%d OK NOOP completed\r\n" % i for i in range(n))
        c, t, errors, q = self._noops_unread(n)
        # our commands wait in the worker's receive queue or our send
        # queue: it stopped reading them
        self.assertGreater(q[1][1] + q[0][0], 0,
                           "the worker read everything: %s" % (q,))
        got = self._read_literal(c, len(want), timeout=60)
        self.assertTrue(got == want, "replies differ from %d NOOP "
                        "completions in order" % n)
        t.join(30)
        self.assertFalse(t.is_alive())
        self.assertEqual(errors, [])
        c.cmd("z NOOP")
        c.expect("z OK NOOP completed")



class RelaySharedTests(RelayTests):
    ISOLATION = "shared"
    WORKER_PROCESSES = 2


class TlsClients:
    """Daemons that listen with "ssl" (TlsCase's certificates) and raw
    clients that speak TLS to them."""

    def start(self, args=(), server=None, **kw):
        port = util.free_port()
        srv = self.tls_server(**(server or {}))
        srv["listen"] = ("127.0.0.1:%d" % port, "ssl")
        text = self.config(port=port, server=srv, **kw)
        d = daemonlib.Daemon(self.tmp, text, port,
                             name="imaprelayd%d" % len(self._daemons),
                             args=args)
        self._daemons.append(d)
        d.start()
        if self._daemon is None:
            self._daemon = d
        return d

    def connect(self, port=None, greeting=True, timeout=10, source=None):
        c = RawImap(port or self.port, timeout=timeout)
        self._clients.append(c)
        self.raw_tls(c)
        if greeting:
            c.expect_prefix("* OK ")
        return c


class RelayTlsTests(RelayChecks, TlsClients, TlsCase):
    """A TLS client (listen ... ssl): the relay goes through buffers,
    with the same bounds, counts and timeout as the splice."""
    ISOLATION = "connection"
    WORKER_PROCESSES = 1

    def test_backpressure_client_not_reading_fetch(self):
        d = self.start(args=["-v", "-v"])
        c = self.connect(timeout=120)
        pipes0 = self._pipes(self._worker_of(d, c))
        self.login(c)
        d.wait_for_log(r"login client=%s backend=\S+ relay=buffers$"
                       % re.escape(c.client_addr))
        self.assertEqual(self._stalled_fetch(d, c, 10 * MiB), pipes0)
        kv = self.session_end(c.client_addr, d)
        self.assertGreater(int(kv["out"]), 10 * MiB)


class RelayTlsSharedTests(RelayTlsTests):
    ISOLATION = "shared"
    WORKER_PROCESSES = 2


if __name__ == "__main__":
    unittest.main()
