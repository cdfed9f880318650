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

"""A raw, line-based IMAP client for the protocol tests: send exact
bytes, read exact lines, see when the server closes."""

import errno
import select
import socket
import time

DEFAULT_TIMEOUT = 10


class Closed(Exception):
    """The server closed the connection (EOF or reset)."""


class RawImap:
    def __init__(self, port, host="127.0.0.1", timeout=DEFAULT_TIMEOUT,
                 source=None):
        """source: the local address to connect from (any 127.x.y.z
        works on Linux's loopback, to be another client address)."""
        self.timeout = timeout
        self.sock = socket.create_connection(
            (host, port), timeout=timeout,
            source_address=(source, 0) if source else None)
        self.buf = b""
        self.eof = False
        self.transcript = []    # ("C"|"S", bytes) for failure messages

    # addresses

    @property
    def local_port(self):
        return self.sock.getsockname()[1]

    @property
    def client_addr(self):
        """How the proxy sees us: "127.0.0.1:port"."""
        h, p = self.sock.getsockname()[:2]
        return "%s:%d" % (h, p)

    # I/O

    def send(self, data):
        if isinstance(data, str):
            data = data.encode("utf-8")
        self.transcript.append(("C", data))
        self.sock.sendall(data)

    def cmd(self, line):
        """Send one line, CRLF appended."""
        if isinstance(line, str):
            line = line.encode("utf-8")
        self.send(line + b"\r\n")

    def _fill(self, deadline):
        left = deadline - time.monotonic()
        if left <= 0:
            raise socket.timeout("read timed out; got so far: %r"
                                 % self.buf[:200])
        self.sock.settimeout(left)
        try:
            data = self.sock.recv(65536)
        except socket.timeout:
            raise socket.timeout("read timed out; got so far: %r"
                                 % self.buf[:200])
        except ConnectionResetError:
            data = b""
        if not data:
            self.eof = True
            raise Closed("server closed the connection; unread: %r"
                         % self.buf[:200])
        self.buf += data

    def readline_bytes(self, timeout=None):
        """One line without its CRLF (bytes)."""
        deadline = time.monotonic() + (timeout or self.timeout)
        while b"\r\n" not in self.buf:
            self._fill(deadline)
        line, self.buf = self.buf.split(b"\r\n", 1)
        self.transcript.append(("S", line))
        return line

    def readline(self, timeout=None):
        """One line without its CRLF, as str (latin-1, lossless)."""
        return self.readline_bytes(timeout).decode("latin-1")

    def read_exact(self, n, timeout=None):
        deadline = time.monotonic() + (timeout or self.timeout)
        while len(self.buf) < n:
            self._fill(deadline)
        data, self.buf = self.buf[:n], self.buf[n:]
        return data

    def expect(self, want, timeout=None):
        """Read one line and check it is exactly want."""
        got = self.readline(timeout)
        if got != want:
            raise AssertionError("expected %r\n     got %r" % (want, got))
        return got

    def expect_prefix(self, prefix, timeout=None):
        got = self.readline(timeout)
        if not got.startswith(prefix):
            raise AssertionError("expected a line starting %r\n     got %r"
                                 % (prefix, got))
        return got

    def read_until_tagged(self, tag, timeout=None):
        """Lines up to and including the one starting with "tag "."""
        deadline = time.monotonic() + (timeout or self.timeout)
        lines = []
        while True:
            left = max(0.001, deadline - time.monotonic())
            line = self.readline(left)
            lines.append(line)
            if line.startswith(tag + " "):
                return lines

    def greeting(self):
        return self.readline()

    def is_closed(self, timeout=None):
        """True when the server closes before timeout with nothing more
        to say; False when it is still open (or sent something)."""
        if self.buf:
            return False
        deadline = time.monotonic() + (timeout or self.timeout)
        try:
            self._fill(deadline)
        except Closed:
            return True
        except socket.timeout:
            return False
        return False

    def expect_closed(self, timeout=None):
        if not self.is_closed(timeout):
            raise AssertionError("server did not close the connection; "
                                 "pending: %r" % self.buf[:200])

    def still_open(self, wait=0.0):
        """No EOF (and nothing unexpected) right now, or within wait."""
        if self.eof:
            return False
        r, _, _ = select.select([self.sock], [], [], wait)
        if not r:
            return True
        try:
            self.sock.setblocking(False)
            data = self.sock.recv(65536)
        except BlockingIOError:
            return True
        except OSError as e:
            if e.errno in (errno.ECONNRESET,):
                self.eof = True
                return False
            raise
        finally:
            self.sock.setblocking(True)
        if not data:
            self.eof = True
            return False
        self.buf += data
        return True

    def close(self):
        try:
            self.sock.close()
        except OSError:
            pass

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()
