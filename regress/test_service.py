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

"""What an operator installs and checks: make install and uninstall
into a DESTDIR (GNUmakefile), the systemd unit as systemd-analyze
reads it, the rc.d scripts' syntax, and what -n says of a user that
does not exist.  Runs without Dovecot."""

import os
import pwd
import re
import shutil
import subprocess
import tempfile
import unittest

from lib import daemon as daemonlib
from lib import util

ROOT = daemonlib.ROOT


def make(*args, **kw):
    return subprocess.run(["make", "--no-print-directory", "-C", ROOT] +
                          list(args), capture_output=True, text=True,
                          timeout=300, **kw)


class Install(unittest.TestCase):

    def setUp(self):
        self.dest = tempfile.mkdtemp(prefix="install-")
        self.addCleanup(shutil.rmtree, self.dest, ignore_errors=True)

    def install(self, *extra):
        r = make("install", "DESTDIR=" + self.dest, *extra)
        self.assertEqual(r.returncode, 0, r.stdout + r.stderr)
        return r

    def uninstall(self, *extra):
        r = make("uninstall", "DESTDIR=" + self.dest, *extra)
        self.assertEqual(r.returncode, 0, r.stdout + r.stderr)
        return r

    def files(self):
        out = []
        for d, _, names in os.walk(self.dest):
            out += [os.path.relpath(os.path.join(d, n), self.dest)
                    for n in names]
        return sorted(out)

    def test_install_layout_and_uninstall(self):
        self.install("PREFIX=/usr")
        self.assertEqual(self.files(), [
            "etc/imaprelayd.conf",
            "etc/systemd/system/imaprelayd.service",
            "usr/sbin/imaprelayd",
            "usr/share/man/man5/imaprelayd.conf.5",
            "usr/share/man/man8/imaprelayd.8"])
        with open(os.path.join(self.dest, "etc/systemd/system/"
                               "imaprelayd.service")) as f:
            unit = f.read()
        # the unit names the binary where PREFIX put it
        self.assertIn("\nExecStart=/usr/sbin/imaprelayd -f "
                      "/etc/imaprelayd.conf\n", unit)
        self.assertNotIn("/usr/local", unit)
        self.uninstall("PREFIX=/usr")
        self.assertEqual(self.files(), [])

    def test_existing_configuration_is_kept(self):
        conf = os.path.join(self.dest, "etc/imaprelayd.conf")
        os.makedirs(os.path.dirname(conf))
        with open(conf, "w") as f:
            f.write("# mine\n")
        r = self.install()
        self.assertIn("exists, left as it is", r.stdout)
        with open(conf) as f:
            self.assertEqual(f.read(), "# mine\n")
        r = self.uninstall()
        self.assertIn("was changed, left as it is", r.stdout)
        self.assertEqual(self.files(), ["etc/imaprelayd.conf"])

    def test_installed_sample_configuration_checks(self):
        self.install()
        conf = os.path.join(self.dest, "etc/imaprelayd.conf")
        with open(conf) as f:
            text = f.read()
        # the user directive aside (the test machine may lack it)
        self.assertRegex(text, r"(?m)^pid /var/run/imaprelayd\.pid;$")
        r = subprocess.run([daemonlib.binary(), "-n", "-f", conf],
                           capture_output=True, text=True, timeout=30)
        try:
            pwd.getpwnam("_imaprelayd")
            self.assertEqual(r.returncode, 0, r.stderr)
        except KeyError:
            self.assertRegex(r.stderr, r'imaprelayd\.conf:\d+: user '
                             r'"_imaprelayd" does not exist')


@unittest.skipUnless(shutil.which("systemd-analyze"),
                     "no systemd-analyze (Debian: apt-get install systemd)")
class SystemdUnit(unittest.TestCase):

    def setUp(self):
        self.prefix = tempfile.mkdtemp(prefix="unit-")
        self.addCleanup(shutil.rmtree, self.prefix, ignore_errors=True)
        # installed for real under a prefix: the unit's ExecStart exists
        r = make("install", "PREFIX=" + self.prefix,
                 "SYSCONFDIR=" + self.prefix + "/etc",
                 "UNITDIR=" + self.prefix + "/unit")
        self.assertEqual(r.returncode, 0, r.stdout + r.stderr)
        self.unit = os.path.join(self.prefix, "unit", "imaprelayd.service")

    def test_verify(self):
        r = subprocess.run(["systemd-analyze", "verify", "--man=no",
                            self.unit], capture_output=True, text=True,
                           timeout=60)
        self.assertEqual(r.returncode, 0, r.stdout + r.stderr)
        self.assertEqual(r.stderr.strip(), "")

    def test_security_exposure_at_most_4(self):
        r = subprocess.run(["systemd-analyze", "security", "--offline=true",
                            self.unit], capture_output=True, text=True,
                           timeout=60)
        m = re.search(r"Overall exposure level for \S+: ([\d.]+)",
                      r.stdout)
        if m is None and "--offline" in r.stderr:
            self.skipTest("systemd-analyze security has no --offline")
        self.assertIsNotNone(m, r.stdout + r.stderr)
        self.assertLessEqual(float(m.group(1)), 4.0, r.stdout)

    def test_unit_matches_the_daemon(self):
        with open(self.unit) as f:
            unit = f.read()
        # the daemon forks and its first process exits when it serves;
        # the pid file is the one the sample configuration writes
        self.assertIn("\nType=forking\n", unit)
        self.assertIn("\nPIDFile=/run/imaprelayd.pid\n", unit)
        self.assertIn("\nRestart=on-failure\n", unit)
        self.assertIn("\nKillMode=mixed\n", unit)


class RcScripts(unittest.TestCase):

    def test_syntax(self):
        for script, shell in (("imaprelayd.freebsd", "sh"),
                              ("imaprelayd.openbsd", "bash")):
            with self.subTest(script=script):
                path = os.path.join(ROOT, "etc", "rc.d", script)
                r = subprocess.run([shell, "-n", path],
                                   capture_output=True, text=True)
                self.assertEqual(r.returncode, 0, r.stderr)

    def test_openbsd_pexp_is_the_parent_title(self):
        with open(os.path.join(ROOT, "etc/rc.d/imaprelayd.openbsd")) as f:
            text = f.read()
        self.assertIn('\npexp="imaprelayd: parent"\n', text)
        # rc.subr sets pexp from daemon: ours must come after it
        self.assertLess(text.index(". /etc/rc.d/rc.subr"),
                        text.index("pexp="))

    def test_freebsd_order(self):
        with open(os.path.join(ROOT, "etc/rc.d/imaprelayd.freebsd")) as f:
            text = f.read()
        # rc.subr(8): variables computed from rc.conf after load_rc_config
        load = text.index("load_rc_config $name")
        self.assertLess(load, text.index("command_args="))
        self.assertLess(load, text.index("pidfile="))
        self.assertIn("configtest", text)


class ConfigCheck(unittest.TestCase):
    """-n finds what would only fail at start, with file:line."""

    def setUp(self):
        self.tmp = tempfile.mkdtemp(prefix="check-")
        self.addCleanup(shutil.rmtree, self.tmp, ignore_errors=True)

    def check(self, top=None, server=None):
        path = os.path.join(self.tmp, "c.conf")
        srv = {"proxy_pass": "127.0.0.1:143"}
        srv.update(server or {})
        with open(path, "w") as f:
            f.write(daemonlib.make_config(util.free_port(), top=top,
                                          server=srv))
        return path, daemonlib.check_config(path)

    def openssl(self, *args):
        subprocess.run(["openssl"] + list(args), cwd=self.tmp, check=True,
                       capture_output=True, timeout=60)

    def test_key_not_matching_certificate(self):
        self.openssl("req", "-x509", "-newkey", "rsa:2048", "-nodes",
                     "-subj", "/CN=localhost", "-days", "1",
                     "-keyout", "a.key", "-out", "a.crt")
        self.openssl("genrsa", "-out", "b.key", "2048")
        cert = os.path.join(self.tmp, "a.crt")
        key = os.path.join(self.tmp, "b.key")
        path, (code, out) = self.check(server={
            "ssl_certificate": cert, "ssl_certificate_key": key,
            "starttls": "on"})
        self.assertEqual(code, 1, out)
        # the server block's line
        self.assertRegex(out, r'%s:\d+: key "%s" does not match '
                         r'certificate "%s"' % (re.escape(path),
                                                re.escape(key),
                                                re.escape(cert)))
        # the right key passes
        path, (code, out) = self.check(server={
            "ssl_certificate": cert, "starttls": "on",
            "ssl_certificate_key": os.path.join(self.tmp, "a.key")})
        self.assertEqual(code, 0, out)

    def test_missing_default_user(self):
        path = os.path.join(self.tmp, "c.conf")
        text = daemonlib.make_config(util.free_port(), server={
            "proxy_pass": "127.0.0.1:143"})
        try:
            pwd.getpwnam("_imaprelayd")
            self.skipTest("_imaprelayd exists here")
        except KeyError:
            pass
        with open(path, "w") as f:
            f.write(re.sub(r"(?m)^user .*\n", "", text))
        code, out = daemonlib.check_config(path)
        self.assertEqual(code, 1, out)
        self.assertIn('%s: user "_imaprelayd" (the default) does not exist'
                      % path, out)

    def test_missing_user(self):
        path, (code, out) = self.check({"user": "no_such_user_xyz"})
        self.assertEqual(code, 1, out)
        self.assertRegex(out, r'%s:\d+: user "no_such_user_xyz" does not '
                         r'exist' % re.escape(path))


class OpenFiles(unittest.TestCase):
    """The open files limit a configuration needs at its cap: raised as
    far as the hard limit allows, and said when that is not enough."""

    def setUp(self):
        self.tmp = tempfile.mkdtemp(prefix="nofile-")
        self.addCleanup(shutil.rmtree, self.tmp, ignore_errors=True)

    def run_with(self, soft, hard, **kw):
        import resource
        import signal
        import time
        path = os.path.join(self.tmp, "n.conf")
        with open(path, "w") as f:
            f.write(daemonlib.make_config(util.free_port(), server={
                "proxy_pass": "127.0.0.1:143"}, **kw))
        log = os.path.join(self.tmp, "n.log")

        def limits():
            resource.setrlimit(resource.RLIMIT_NOFILE, (soft, hard))
        with open(log, "wb") as out:
            p = subprocess.Popen([daemonlib.binary(), "-d", "-f", path],
                                 stdin=subprocess.DEVNULL, stdout=out,
                                 stderr=subprocess.STDOUT,
                                 preexec_fn=limits)
        try:
            util.wait_until(lambda: "startup" in open(log).read(), 15,
                            what="startup")
            with open("/proc/%d/limits" % p.pid) as f:
                m = re.search(r"Max open files\s+(\d+)", f.read())
            return int(m.group(1)), open(log).read()
        finally:
            p.send_signal(signal.SIGQUIT)
            p.wait(15)
            time.sleep(0)

    def test_raised_to_what_the_cap_needs(self):
        # shared: two per client of a worker, and some to spare
        got, log = self.run_with(256, 8192, isolation="shared",
                                 worker_connections=2000)
        self.assertGreaterEqual(got, 2 * 2000)
        self.assertNotIn("open files limit", log)

    def test_said_when_the_hard_limit_is_too_low(self):
        got, log = self.run_with(256, 512, isolation="shared",
                                 worker_connections=2000)
        self.assertEqual(got, 512)
        self.assertRegex(log, r"open files limit 512 is below the 4064 a "
                         r"process may need at the cap of \d+ clients")
