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

"""The base class of the integration tests.

Every test gets the run's Dovecot, the process's auth service (reset to
its default behaviour), a temporary directory, and an imaprelayd started
on first use of self.daemon (or explicitly with self.start(...) for a
test that needs its own configuration).  Clients opened with
self.connect() / self.imap() are closed and the daemon stopped at the
end of the test.
"""

import imaplib
import os
import re
import shutil
import tempfile
import unittest

from . import authd
from . import daemon as daemonlib
from . import dovecot
from . import util
from .imapclient import RawImap

DEFAULT_CAPS = "IMAP4 IMAP4rev1 UIDPLUS SASL-IR LITERAL+ ID AUTH=PLAIN"
TMP_ENV = "IMAPRELAYD_REGRESS_TMP"

_auth = None


def auth_service():
    global _auth
    if _auth is None:
        _auth = authd.AuthService(dovecot.get().port, dovecot.all_users())
    return _auth


def run_tmpdir():
    d = os.environ.get(TMP_ENV)
    if d:
        os.makedirs(d, exist_ok=True)
        return d
    return tempfile.gettempdir()


class DaemonTestCase(unittest.TestCase):
    # subclasses may change these
    ISOLATION = "connection"
    WORKER_PROCESSES = 1

    @classmethod
    def setUpClass(cls):
        try:
            cls.dovecot = dovecot.get()
        except dovecot.SkipDovecot as e:
            raise unittest.SkipTest("no Dovecot backend: %s" % e)
        cls.auth = auth_service()

    def setUp(self):
        self.auth.reset()
        self.tmp = tempfile.mkdtemp(prefix=self.id().split(".")[-1][:40]
                                    + "-", dir=run_tmpdir())
        os.chmod(self.tmp, 0o755)
        self._daemons = []
        self._clients = []
        self._daemon = None
        self.addCleanup(self._cleanup)

    def _cleanup(self):
        for c in self._clients:
            try:
                if isinstance(c, imaplib.IMAP4):
                    c.shutdown()
                else:
                    c.close()
            except Exception:
                pass
        problems = []
        for d in self._daemons:
            d.stop()
            if d.leftover_children:
                problems.append("children outlived the parent: %s"
                                % d.leftover_children)
            m = re.search(r"(ERROR: AddressSanitizer|runtime error:|"
                          r"LeakSanitizer).*", d.log())
            if m:
                problems.append("sanitizer report in %s: %s"
                                % (d.log_path, m.group(0)))
        if not os.environ.get(TMP_ENV) and not os.environ.get("KEEP_TMP"):
            # run on its own (not under run.py, which removes its tree)
            shutil.rmtree(self.tmp, ignore_errors=True)
        if problems:
            self.fail("; ".join(problems))

    def log_tails(self):
        """For the runner's failure report."""
        out = []
        for d in getattr(self, "_daemons", []):
            out.append("--- %s (last lines)\n%s"
                       % (d.log_path, util.tail(d.log(), 30)))
        return "\n".join(out)

    # the daemon

    def config(self, port=None, **kw):
        """The configuration text; keyword arguments as make_config."""
        kw.setdefault("isolation", self.ISOLATION)
        kw.setdefault("worker_processes", self.WORKER_PROCESSES)
        if kw.pop("no_auth", False):
            kw["auth_url"] = None
        else:
            kw.setdefault("auth_url", self.auth.url)
        return daemonlib.make_config(port or util.free_port(), **kw)

    def start(self, args=(), **kw):
        """Start an imaprelayd with this configuration (see config())
        and wait for its startup line."""
        port = util.free_port()
        text = self.config(port=port, **kw)
        d = daemonlib.Daemon(self.tmp, text, port,
                             name="imaprelayd%d" % len(self._daemons),
                             args=args)
        self._daemons.append(d)
        d.start()
        if self._daemon is None:
            self._daemon = d
        return d

    @property
    def daemon(self):
        if self._daemon is None:
            self.start()
        return self._daemon

    @property
    def port(self):
        return self.daemon.port

    # clients

    def connect(self, port=None, greeting=True, timeout=10, source=None):
        """A raw client; by default its greeting is read and checked.
        source: connect from this local address (127.0.0.x)."""
        c = RawImap(port or self.port, timeout=timeout, source=source)
        self._clients.append(c)
        if greeting:
            c.expect_prefix("* OK ")
        return c

    def imap(self, port=None, timeout=30):
        c = imaplib.IMAP4("127.0.0.1", port or self.port, timeout=timeout)
        self._clients.append(c)
        return c

    def backend(self, timeout=10):
        """A raw client straight to Dovecot, for comparisons."""
        c = RawImap(self.dovecot.port, timeout=timeout)
        self._clients.append(c)
        c.expect_prefix("* OK ")
        return c

    def password(self, user):
        return self.dovecot.users[user]

    def login(self, c, user="alice", tag="a"):
        """LOGIN over a raw client; returns the lines up to the tagged
        reply, which must be OK."""
        c.cmd('%s LOGIN %s "%s"' % (tag, user, self.password(user)))
        lines = c.read_until_tagged(tag)
        self.assertTrue(lines[-1].startswith(tag + " OK"), lines)
        return lines

    def session_end(self, client_addr, d=None, timeout=10):
        """The 'session end' log line of this client, as a dict."""
        d = d or self.daemon
        m = d.wait_for_log(r"session end client=%s .*$"
                           % re.escape(client_addr), timeout)
        return parse_kv(m.group(0))


_kv = re.compile(r'(\w+)=("(?:[^"\\]|\\.)*"|\S+)')


def parse_kv(line):
    out = {}
    for k, v in _kv.findall(line):
        if v.startswith('"'):
            v = v[1:-1]
        out[k] = v
    return out


def caps(auth=("PLAIN",), base="IMAP4 IMAP4rev1 UIDPLUS"):
    """The capability string the brief specifies."""
    toks = base.split()
    for t in ("SASL-IR", "LITERAL+", "ID"):
        if t not in toks:
            toks.append(t)
    for m in ("PLAIN", "LOGIN", "CRAM-MD5"):
        if m in auth:
            toks.append("AUTH=" + m)
    return " ".join(toks)
