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

"""Real nginx mail configurations, collected from public sources, are
read by `imaprelayd -n` (issue 10 item 1): a file nginx 1.22 accepts
for its IMAP part is accepted.

Each regress/nginx-conf/*.conf says where it came from and what was
changed (certificate paths pointed at files this test makes, nothing
else).  Header lines tell the expected outcome when it is not a plain
acceptance:

    # imaprelayd: refuses: <reason>   a directive we cannot honour
    # nginx: refuses: <reason>        nginx 1.22 refuses the file too
    # requires-user: <name>           the file's "user" must exist

Files ending in .inc are included by others.  When nginx with its mail
module is installed (regress/bench/deps.sh), `nginx -t` checks every
file as well, so that the corpus stays one nginx accepts.
"""

import glob
import os
import pwd
import re
import shutil
import subprocess
import tempfile
import unittest

from lib import daemon as daemonlib
from lib.case import run_tmpdir

HERE = os.path.dirname(os.path.abspath(__file__))
CORPUS = os.path.join(HERE, "nginx-conf")
MAIL_MODULE = "/usr/lib/nginx/modules/ngx_mail_module.so"

# the files a configuration names for TLS, made here
FILE_RE = re.compile(r"^\s*(ssl_certificate_key|ssl_certificate|"
                     r"ssl_client_certificate|ssl_trusted_certificate|"
                     r"ssl_dhparam|ssl_password_file)\s+([^;\s]+)\s*;",
                     re.M)
# a user that exists only inside a mount namespace (see requires-user)
WRAP_USER = ('mount --bind "$0" /etc/passwd && mount --bind "$1" '
             '/etc/group && shift && exec "$@"')


def headers(path):
    """The expectations of a corpus file, from its leading comments."""
    h = {"source": None, "changes": None, "imaprelayd": None,
         "nginx": None, "user": None}
    with open(path) as f:
        for line in f:
            if not line.startswith("#"):
                break
            m = re.match(r"#\s*(Source|Changes|imaprelayd|nginx|"
                         r"requires-user):\s*(.*)", line)
            if m:
                key = {"Source": "source", "Changes": "changes",
                       "requires-user": "user"}.get(m.group(1),
                                                    m.group(1))
                value = m.group(2).strip()
                if key in ("imaprelayd", "nginx"):
                    value = re.sub(r"^refuses:\s*", "", value)
                h[key] = value
    return h


def openssl(*args, cwd):
    subprocess.run(["openssl"] + list(args), cwd=cwd, check=True,
                   stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                   timeout=120)


def nginx_with_mail():
    """nginx and the load_module line its mail module needs, or None."""
    nginx = shutil.which("nginx") or (
        "/usr/sbin/nginx" if os.access("/usr/sbin/nginx", os.X_OK)
        else None)
    if nginx is None:
        return None
    r = subprocess.run([nginx, "-V"], capture_output=True, text=True)
    if "--with-mail=dynamic" in r.stderr and os.path.exists(MAIL_MODULE):
        return nginx, "load_module %s;\n" % MAIL_MODULE
    if "--with-mail " in r.stderr + " ":
        return nginx, ""
    return None


class NginxCorpus(unittest.TestCase):

    @classmethod
    def setUpClass(cls):
        if shutil.which("openssl") is None:
            raise unittest.SkipTest("no openssl")
        cls.dir = tempfile.mkdtemp(prefix="nginx-conf-", dir=run_tmpdir())
        os.chmod(cls.dir, 0o755)
        for f in glob.glob(os.path.join(CORPUS, "*")):
            shutil.copy(f, cls.dir)
        cls.make_files()
        cls.nginx = nginx_with_mail()

    @classmethod
    def tearDownClass(cls):
        shutil.rmtree(cls.dir, ignore_errors=True)

    @classmethod
    def make_files(cls):
        """One key pair for every certificate a file names (nginx
        checks the key fits), a DH group, a password file."""
        d = cls.dir
        openssl("req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days",
                "2", "-subj", "/CN=localhost", "-keyout", "pair.key",
                "-out", "pair.crt", cwd=d)
        openssl("dhparam", "-dsaparam", "-out", "pair.dh", "1024", cwd=d)
        with open(os.path.join(d, "pair.crt")) as f:
            crt = f.read()
        with open(os.path.join(d, "pair.key")) as f:
            key = f.read()
        with open(os.path.join(d, "pair.dh")) as f:
            dh = f.read()
        wanted = {}
        for conf in glob.glob(os.path.join(d, "*.conf")) + \
                glob.glob(os.path.join(d, "*.inc")):
            with open(conf) as f:
                for what, name in FILE_RE.findall(f.read()):
                    if name.startswith("/"):
                        raise AssertionError("%s names %s: corpus files "
                                             "use names the test makes"
                                             % (conf, name))
                    wanted.setdefault(name, set()).add(what)
        for name, whats in wanted.items():
            text = ""
            if "ssl_dhparam" in whats:
                text = dh
            elif "ssl_password_file" in whats:
                text = "not used\n"
            else:
                if whats & {"ssl_certificate", "ssl_client_certificate",
                            "ssl_trusted_certificate"}:
                    text += crt
                if "ssl_certificate_key" in whats:
                    text += key
            with open(os.path.join(d, name), "w") as f:
                f.write(text)

    def wrapper(self, user):
        """A command prefix under which user exists, or None."""
        if user is None:
            return []
        try:
            pwd.getpwnam(user)
            return []
        except KeyError:
            pass
        if os.geteuid() != 0 or shutil.which("unshare") is None:
            return None
        passwd = os.path.join(self.dir, "passwd-" + user)
        group = os.path.join(self.dir, "group-" + user)
        with open("/etc/passwd") as f, open(passwd, "w") as out:
            out.write(f.read() + "%s:x:64999:64999::/nonexistent:"
                      "/usr/sbin/nologin\n" % user)
        with open("/etc/group") as f, open(group, "w") as out:
            out.write(f.read() + "%s:x:64999:\n" % user)
        return ["unshare", "--mount", "sh", "-c", WRAP_USER, passwd, group]

    def check(self, name):
        path = os.path.join(self.dir, name)
        h = headers(path)
        with open(path) as f:
            mine = "written for this corpus" in f.read().lower()
        self.assertTrue(h["source"] or mine, "%s: no Source:" % name)
        wrap = self.wrapper(h["user"])
        if wrap is None:
            self.skipTest("user %s missing and no mount namespace to add "
                          "it" % h["user"])
        r = subprocess.run(wrap + [daemonlib.binary(), "-n", "-f", path],
                           capture_output=True, text=True, timeout=60)
        out = r.stdout + r.stderr
        if h["imaprelayd"] is None:
            self.assertEqual(r.returncode, 0, out)
            self.assertIn("configuration OK", out)
        else:
            self.assertEqual(r.returncode, 1, out)
            # the reason, at a file:line
            self.assertRegex(out, r"%s/[^:]+:\d+: .*%s" % (
                re.escape(self.dir), re.escape(h["imaprelayd"])))
        if self.nginx is not None:
            self.nginx_check(name, h, wrap)
        return out

    def nginx_check(self, name, h, wrap):
        """nginx -t on the same file, the module loaded, an empty
        events{} added if the file has none (nginx needs one)."""
        nginx, load = self.nginx
        with open(os.path.join(self.dir, name)) as f:
            text = f.read()
        if not re.search(r"^\s*events\s*\{", text, re.M):
            text += "\nevents {\n}\n"
        test = os.path.join(self.dir, "nginx-t-" + name)
        with open(test, "w") as f:
            f.write(load + text)
        r = subprocess.run(wrap + [nginx, "-t", "-q", "-p", self.dir + "/",
                                   "-c", test],
                           capture_output=True, text=True, timeout=60)
        if h["nginx"] is None:
            self.assertEqual(r.returncode, 0, "nginx -t: " + r.stderr)
        else:
            self.assertNotEqual(r.returncode, 0, "nginx -t accepted it")
            self.assertIn(h["nginx"], r.stderr)

    # a few say what they skipped, once

    def test_notices_nginx_org_example(self):
        out = self.check("nginx-org-mail-core.conf")
        self.assertEqual(out.count("pop3/smtp directives have no effect"),
                         1, out)
        self.assertRegex(out, r"\[notice\] .*:20: \"pop3_auth\" and the "
                         r"other pop3/smtp directives have no effect")
        for line, proto in ((27, "smtp"), (31, "pop3"), (40, "smtp")):
            self.assertRegex(out, r"\[notice\] .*:%d: %s server skipped"
                             % (line, proto))

    def test_notices_http_block(self):
        out = self.check("nginx-tests-mail-imap.conf")
        self.assertEqual(out.count("[notice]"), 1, out)
        self.assertRegex(out, r":24: \"http\" block skipped")

    def test_notices_ssl_on(self):
        out = self.check("deependhulla-limit-email-access.conf")
        self.assertRegex(out, r"\[warn\] .*:19: the \"ssl\" directive is "
                         r"deprecated")

    def test_notices_stream_block(self):
        out = self.check("cyrus-howto-nginx-proxy.conf")
        self.assertRegex(out, r":18: \"http\" block skipped")
        self.assertRegex(out, r":63: \"stream\" block skipped")


def _add_corpus_tests():
    """One test per corpus file, named after it."""
    for path in sorted(glob.glob(os.path.join(CORPUS, "*.conf"))):
        name = os.path.basename(path)
        meth = "test_" + re.sub(r"\W", "_", name[:-len(".conf")])

        def test(self, name=name):
            self.check(name)
        test.__doc__ = "imaprelayd -n (and nginx -t): %s" % name
        setattr(NginxCorpus, meth, test)


_add_corpus_tests()


if __name__ == "__main__":
    unittest.main()
