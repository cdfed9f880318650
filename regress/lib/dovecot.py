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

"""A throwaway Dovecot for the integration tests.

One instance per test run: regress/run.py starts it and hands it to the
test processes through the environment (IMAPRELAYD_REGRESS_DOVECOT);
a test module run on its own starts its own with get().

The instance listens on 127.0.0.1 on a free port (plaintext, STARTTLS
offered, plaintext LOGIN allowed), on a second port with implicit TLS
(tls_port) and, when 127.0.0.2 is usable, on 127.0.0.2:tls_port with
implicit TLS that asks for a client certificate and logs it
(cert_port), and on 127.0.0.3:limit_port in plaintext with
mail_max_userip_connections = 1 there, so that a second login of a user
gets Dovecot's "NO [LIMIT]" (limit_port), with a
passwd-file of test users and maildirs under its temporary directory.
Its PKI, made with openssl in pki/ of that directory: ca.crt (the CA),
backend.crt for IP 127.0.0.1 and DNS backend.test, client.crt/.key (a
client certificate of that CA), other-ca.crt (an unrelated CA).
As root, mail is stored under the uid of the "dovecot" system user
(Dovecot refuses to run mail processes as root); as another user,
Dovecot runs "rootless" with every service under that user.
"""

import atexit
import json
import os
import pwd
import grp
import shutil
import signal
import subprocess
import tempfile
import time

from . import util

ENV = "IMAPRELAYD_REGRESS_DOVECOT"

# the users both Dovecot and the auth service know
USERS = {
    "alice": "secret",
    "bob": "hunter2",
    # a password that needs quoting and escaping in IMAP and %20 in
    # auth_http: space, double quote, backslash
    "carol": 's p"a\\ce',
    "demo": "demo",
    # logs in only through limit_port, where Dovecot allows one session
    # per user and address: no other test may hold one of hers
    "dora": "dora-pw",
}
LOAD_USERS = 200


def load_user(i):
    return "u%d" % i, "pw-%d" % i


def all_users():
    users = dict(USERS)
    for i in range(LOAD_USERS):
        u, p = load_user(i)
        users[u] = p
    return users


class SkipDovecot(Exception):
    """Dovecot cannot run here; the message says why."""


def find_dovecot():
    path = shutil.which("dovecot")
    if path:
        return path
    for d in ("/usr/sbin", "/usr/local/sbin", "/opt/local/sbin"):
        p = os.path.join(d, "dovecot")
        if os.access(p, os.X_OK):
            return p
    return None


class Dovecot:
    def __init__(self, port, tmpdir, users, pid=None, owned=False,
                 tls_port=None, cert_port=None, limit_port=None):
        self.host = "127.0.0.1"
        self.port = port
        self.tls_port = tls_port
        self.cert_port = cert_port
        self.limit_port = limit_port
        self.tmpdir = tmpdir
        self.users = users
        self.pid = pid
        self.owned = owned
        self.proc = None

    @property
    def log_path(self):
        return os.path.join(self.tmpdir, "dovecot.log")

    def to_env(self):
        return json.dumps({"port": self.port, "tmpdir": self.tmpdir,
                           "pid": self.pid, "tls_port": self.tls_port,
                           "cert_port": self.cert_port,
                           "limit_port": self.limit_port})

    @classmethod
    def from_env(cls, value):
        d = json.loads(value)
        return cls(d["port"], d["tmpdir"], all_users(), pid=d.get("pid"),
                   tls_port=d.get("tls_port"), cert_port=d.get("cert_port"),
                   limit_port=d.get("limit_port"))

    def pki(self, name):
        """A file of the backend's PKI (see the module's comment)."""
        return os.path.join(self.tmpdir, "pki", name)

    def log(self):
        try:
            with open(self.log_path, errors="replace") as f:
                return f.read()
        except OSError:
            return ""

    def stop(self):
        if not self.owned or self.proc is None:
            return
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self.proc = None
        if os.environ.get("KEEP_TMP") != "1":
            shutil.rmtree(self.tmpdir, ignore_errors=True)


def _ids():
    """(uid, gid, login_user, internal_user, rootless) for the config."""
    if os.geteuid() == 0:
        try:
            pw = pwd.getpwnam("dovecot")
        except KeyError:
            raise SkipDovecot("no 'dovecot' system user")
        try:
            pwd.getpwnam("dovenull")
            login = "dovenull"
        except KeyError:
            login = "dovecot"
        return pw.pw_uid, pw.pw_gid, login, "dovecot", False
    pw = pwd.getpwuid(os.geteuid())
    return pw.pw_uid, os.getegid(), pw.pw_name, pw.pw_name, True


def _openssl(d, *args):
    subprocess.run(["openssl"] + list(args), cwd=d, check=True,
                   stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                   timeout=60)


def _make_pki(tmp):
    """The backend's certificates (see the module's comment)."""
    d = os.path.join(tmp, "pki")
    os.makedirs(d, exist_ok=True)
    for ca in ("ca", "other-ca"):
        _openssl(d, "req", "-x509", "-newkey", "rsa:2048", "-nodes",
                 "-days", "2", "-subj", "/CN=imaprelayd regress %s" % ca,
                 "-keyout", ca + ".key", "-out", ca + ".crt")
    for name, san in (("backend", "subjectAltName=IP:127.0.0.1,"
                       "DNS:backend.test\n"),
                      ("client", "extendedKeyUsage=clientAuth\n")):
        _openssl(d, "req", "-new", "-newkey", "rsa:2048", "-nodes",
                 "-subj", "/CN=%s.test" % name, "-keyout", name + ".key",
                 "-out", name + ".csr")
        with open(os.path.join(d, name + ".ext"), "w") as f:
            f.write(san)
        _openssl(d, "x509", "-req", "-in", name + ".csr", "-CA", "ca.crt",
                 "-CAkey", "ca.key", "-CAcreateserial", "-days", "2",
                 "-extfile", name + ".ext", "-out", name + ".crt")
    for f in os.listdir(d):
        os.chmod(os.path.join(d, f), 0o644)
    return d


def _loopback2():
    """127.0.0.2 can be bound (Linux: all of 127/8 is loopback)."""
    import socket
    try:
        with socket.socket() as s:
            s.bind(("127.0.0.2", 0))
        return True
    except OSError:
        return False


def _tls_config(tmp, tls_port, cert_port):
    pki = os.path.join(tmp, "pki")
    text = f"""
ssl = yes
ssl_cert = <{pki}/backend.crt
ssl_key = <{pki}/backend.key
ssl_min_protocol = TLSv1.2
"""
    if cert_port:
        # a client certificate is asked for there, and logged
        text += f"""
local 127.0.0.2 {{
  ssl_ca = <{pki}/ca.crt
  ssl_verify_client_cert = yes
  verbose_ssl = yes
}}
"""
    return text


def _config(tmp, port, uid, gid, login_user, internal_user, rootless,
            tls_port=0, cert_port=0, limit_port=0):
    # chroot of the login processes needs root; rootless runs them as
    # ourselves, unchrooted
    chroot = "  chroot =\n" if rootless else ""
    return f"""# generated by regress/lib/dovecot.py
base_dir = {tmp}/run
state_dir = {tmp}/state
instance_name = imaprelayd-regress-{port}
protocols = imap
listen = 127.0.0.1
{_tls_config(tmp, tls_port, cert_port) if tls_port else "ssl = no"}
disable_plaintext_auth = no
auth_mechanisms = plain login cram-md5
auth_failure_delay = 0
auth_cache_size = 0
log_path = {tmp}/dovecot.log
info_log_path = {tmp}/dovecot.log
debug_log_path = {tmp}/dovecot.log
mail_location = maildir:{tmp}/mail/%u
mail_max_userip_connections = 100000
first_valid_uid = {uid}
last_valid_uid = 0
first_valid_gid = {gid}
default_login_user = {login_user}
default_internal_user = {internal_user}
{"default_internal_group = " + grp.getgrgid(gid).gr_name if rootless else ""}
default_process_limit = 2000
default_client_limit = 10000
default_vsz_limit = 1G
login_trusted_networks =
mail_plugins =
shutdown_clients = yes
verbose_proctitle = no

passdb {{
  driver = passwd-file
  args = scheme=PLAIN username_format=%u {tmp}/users
}}
userdb {{
  driver = passwd-file
  args = username_format=%u {tmp}/users
}}

service imap-login {{
  inet_listener imap {{
    address = 127.0.0.1
    port = {port}
  }}
  inet_listener imaps {{
    address = 127.0.0.1
    port = {tls_port}
{"    ssl = yes" if tls_port else ""}
  }}
{cert_listener(cert_port)}
{limit_listener(limit_port)}
  # one process, many clients: 200 parallel logins need no forks
  service_count = 0
  process_min_avail = 2
  client_limit = 2000
{chroot}}}
service imap {{
  process_limit = 2000
}}
service auth {{
  client_limit = 10000
}}
service anvil {{
  client_limit = 10000
  # no socket, no auth penalty: failed logins are not slowed down
  unix_listener anvil-auth-penalty {{
    mode = 0
  }}
{chroot}}}
service stats {{
  client_limit = 10000
}}
service imap-urlauth-login {{
  inet_listener imap-urlauth {{
    port = 0
  }}
{chroot}}}
"""


def limit_listener(limit_port):
    if not limit_port:
        return ""
    return f"""  inet_listener imap-limit {{
    address = 127.0.0.3
    port = {limit_port}
  }}"""


def limit_config(limit_port):
    if not limit_port:
        return ""
    return """
local 127.0.0.3 {
  protocol imap {
    mail_max_userip_connections = 1
  }
}
"""


def cert_listener(cert_port):
    if not cert_port:
        return ""
    return f"""  inet_listener imaps-cert {{
    address = 127.0.0.2
    port = {cert_port}
    ssl = yes
  }}"""


def _write_users(path, tmp, users, uid, gid, extra_users=None):
    with open(path, "w") as f:
        for user, password in users.items():
            # user:password:uid:gid:gecos:home:shell
            f.write(f"{user}:{{PLAIN}}{password}:{uid}:{gid}::"
                    f"{tmp}/mail/{user}::\n")
        for user, (password, fields) in (extra_users or {}).items():
            # ...:extra fields of the passdb (allow_nets=...)
            f.write(f"{user}:{{PLAIN}}{password}:{uid}:{gid}::"
                    f"{tmp}/mail/{user}::{fields}\n")
    os.chmod(path, 0o644)


def start(tmpdir=None, timeout=20, extra_conf="", extra_users=None):
    """Start a Dovecot and wait until its port accepts connections.
    A test that needs a Dovecot of its own gives extra_conf (settings
    after the usual ones, which they override) and extra_users
    ({user: (password, "passdb extra fields")})."""
    binary = find_dovecot()
    if binary is None:
        raise SkipDovecot("dovecot not installed (apt-get install "
                          "dovecot-imapd)")
    uid, gid, login_user, internal_user, rootless = _ids()
    tmp = tmpdir or tempfile.mkdtemp(prefix="imaprelayd-dovecot-")
    os.makedirs(tmp, exist_ok=True)
    os.chmod(tmp, 0o755)
    for d in ("run", "state"):
        os.makedirs(os.path.join(tmp, d), exist_ok=True)
    mail = os.path.join(tmp, "mail")
    os.makedirs(mail, exist_ok=True)
    if os.geteuid() == 0:
        os.chown(mail, uid, gid)
        # every directory above the maildirs must be searchable by uid
        p = os.path.dirname(tmp)
        while p != "/":
            if not os.stat(p).st_mode & 0o001:
                raise SkipDovecot("%s is not searchable by the mail uid; "
                                  "set TMPDIR elsewhere" % p)
            p = os.path.dirname(p)
    port = util.free_port()
    tls_port = cert_port = limit_port = 0
    if _loopback2():
        limit_port = util.free_port("127.0.0.3")
    if shutil.which("openssl") is not None:
        _make_pki(tmp)
        tls_port = util.free_port()
        if _loopback2():
            cert_port = util.free_port("127.0.0.2")
    users = all_users()
    _write_users(os.path.join(tmp, "users"), tmp, users, uid, gid,
                 extra_users)
    for user, (password, _) in (extra_users or {}).items():
        users[user] = password
    conf = os.path.join(tmp, "dovecot.conf")
    with open(conf, "w") as f:
        f.write(_config(tmp, port, uid, gid, login_user, internal_user,
                        rootless, tls_port, cert_port, limit_port) +
                limit_config(limit_port) + extra_conf)
    logf = open(os.path.join(tmp, "dovecot.stderr"), "wb")
    proc = subprocess.Popen([binary, "-F", "-c", conf], stdin=subprocess.DEVNULL,
                            stdout=logf, stderr=subprocess.STDOUT)
    logf.close()
    dv = Dovecot(port, tmp, users, pid=proc.pid, owned=True,
                 tls_port=tls_port or None, cert_port=cert_port or None,
                 limit_port=limit_port or None)
    dv.proc = proc
    deadline = time.monotonic() + timeout
    while True:
        if proc.poll() is not None:
            with open(os.path.join(tmp, "dovecot.stderr"),
                      errors="replace") as f:
                err = f.read()
            msg = "dovecot exited with %d: %s %s" % (proc.returncode,
                                                      err.strip(),
                                                      dv.log().strip())
            shutil.rmtree(tmp, ignore_errors=True)
            raise SkipDovecot(msg)
        if util.port_accepts(dv.host, port) and _greets(dv.host, port):
            break
        if time.monotonic() > deadline:
            dv.stop()
            raise SkipDovecot("dovecot did not accept on port %d" % port)
        time.sleep(0.02)
    return dv


def _greets(host, port):
    """The login process answers with its greeting, not just accept()."""
    import socket
    try:
        with socket.create_connection((host, port), timeout=2) as s:
            return s.recv(512).startswith(b"* OK")
    except OSError:
        return False


_instance = None


def get():
    """The run's Dovecot: the one run.py started, else our own."""
    global _instance
    if _instance is not None:
        return _instance
    value = os.environ.get(ENV)
    if value:
        _instance = Dovecot.from_env(value)
    else:
        _instance = start()
        atexit.register(_instance.stop)
    return _instance
