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

"""What the benchmark measures: Dovecot directly, imaprelayd in both
isolation modes, nginx's mail proxy, and Dovecot itself as a proxy in
its two login modes.  Each target knows its plaintext port, its TLS
port (implicit TLS, the bench's RSA-2048 certificate) and the roots of
its process tree (for CPU and memory), and is a context manager that
starts and stops what it owns.

imaprelayd and nginx get the same nginx configuration text; only the
few lines that one of them does not know differ (nginx has no
`isolation`, imaprelayd logs to stderr under -d where the harness
waits for its "startup" line, and its limits against one hostile
address are turned off: all the load comes from 127.0.0.1).  Dovecot
cannot ask an auth_http service: as a proxy it reads the same users,
with proxy=y and the backend's address, from a passwd-file, as its
operators configure it."""

import os
import shutil
import signal
import subprocess
import time

from lib import daemon, dovecot, util

NGINX_MAIL_MODULE = "/usr/lib/nginx/modules/ngx_mail_module.so"
# room for 1000 idle sessions (two sockets each) and more
WORKER_CONNECTIONS = 4096


def mail_config(port, tls_port, auth_url, workers, cert, proxy_buffer=None):
    """The part both proxies read unchanged."""
    return """worker_processes %d;
events {
	worker_connections %d;
}
mail {
	auth_http %s;
%s	ssl_certificate %s;
	ssl_certificate_key %s;
	server {
		listen 127.0.0.1:%d;
		protocol imap;
	}
	server {
		listen 127.0.0.1:%d ssl;
		protocol imap;
	}
}
""" % (workers, WORKER_CONNECTIONS, auth_url,
       "\tproxy_buffer %s;\n" % proxy_buffer if proxy_buffer else "",
       cert[0], cert[1], port, tls_port)


def make_cert(d):
    """The proxies' certificate: RSA-2048, self-signed; (cert, key)."""
    cert, key = os.path.join(d, "rsa.crt"), os.path.join(d, "rsa.key")
    subprocess.run(["openssl", "req", "-x509", "-newkey", "rsa:2048",
                    "-nodes", "-days", "2", "-subj", "/CN=localhost",
                    "-keyout", key, "-out", cert], check=True,
                   stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    for f in (cert, key):
        os.chmod(f, 0o644)
    return cert, key


def _alive(pid, name):
    """pid still runs a process whose command line mentions name (a pid
    may have been reused)."""
    try:
        with open("/proc/%d/cmdline" % pid, "rb") as f:
            return name.encode() in f.read()
    except OSError:
        return False


def _greets(port):
    import socket
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=2) as s:
            return s.recv(512).startswith(b"* OK")
    except OSError:
        return False


class Backend:
    """The backend itself, as the baseline: no proxy in the way."""

    kind = "backend"

    def __init__(self, name, port, pid, version, tls_port=None):
        self.name = name + " direct"
        self.port = port
        self.tls_port = tls_port
        self.pid = pid
        self._version = version

    def roots(self):
        return [self.pid]

    def version(self):
        return self._version

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        return False


class Imaprelayd:
    kind = "proxy"

    def __init__(self, tmpdir, auth_url, isolation, workers, cert,
                 proxy_buffer=None):
        self.name = "imaprelayd %s" % isolation
        self.port = util.free_port()
        self.tls_port = util.free_port()
        self.isolation = isolation
        d = os.path.join(tmpdir, "imaprelayd-" + isolation)
        os.makedirs(d, exist_ok=True)
        user = daemon.daemon_user()
        # the load comes from one address: imaprelayd's limits against
        # a hostile one (on by default, nginx has none) are turned off
        text = ("isolation %s;\n" % isolation +
                ("user %s;\n" % user if user else "") +
                mail_config(self.port, self.tls_port, auth_url, workers,
                            cert, proxy_buffer)
                .replace("mail {\n", "mail {\n\tlimit_conn_rate off;\n"
                         "\tlimit_prelogin_per_ip off;\n", 1))
        self.d = daemon.Daemon(d, text, self.port)

    def roots(self):
        return [self.d.pid]

    def __enter__(self):
        try:
            self.d.start()
            util.wait_until(lambda: _greets(self.port), 15,
                            what="imaprelayd greeting")
        except BaseException:
            self.d.stop()       # a parent that did not say "startup"
            raise
        return self

    def __exit__(self, *exc):
        self.d.stop()
        return False


class Nginx:
    kind = "proxy"

    def __init__(self, tmpdir, auth_url, workers, cert, proxy_buffer=None):
        self.name = "nginx" + (" proxy_buffer %s" % proxy_buffer
                               if proxy_buffer else "")
        self.binary = shutil.which("nginx") or "/usr/sbin/nginx"
        self.port = util.free_port()
        self.tls_port = util.free_port()
        self.dir = os.path.join(tmpdir, "nginx" + (proxy_buffer or ""))
        os.makedirs(self.dir, exist_ok=True)
        self.conf = os.path.join(self.dir, "nginx.conf")
        self.log_path = os.path.join(self.dir, "error.log")
        with open(self.conf, "w") as f:
            f.write("load_module %s;\n" % NGINX_MAIL_MODULE +
                    "daemon off;\nmaster_process on;\n" +
                    "pid %s/nginx.pid;\n" % self.dir +
                    "error_log %s warn;\n" % self.log_path +
                    "worker_rlimit_nofile %d;\n" % (4 * WORKER_CONNECTIONS) +
                    mail_config(self.port, self.tls_port, auth_url, workers,
                                cert, proxy_buffer))
        self.proc = None
        self.seen = set()

    def _cmd(self, *extra):
        # -e: the log before the configuration is read is ours too
        return [self.binary, "-p", self.dir + "/", "-e", self.log_path,
                "-c", self.conf] + list(extra)

    @staticmethod
    def available():
        return (shutil.which("nginx") is not None and
                os.path.exists(NGINX_MAIL_MODULE))

    def roots(self):
        return [self.proc.pid]

    def version(self):
        r = subprocess.run([self.binary, "-v"], capture_output=True,
                           text=True)
        return (r.stderr or r.stdout).strip().replace("nginx version: ", "")

    def __enter__(self):
        check = subprocess.run(self._cmd("-t", "-q"), capture_output=True,
                               text=True)
        if check.returncode != 0:
            raise RuntimeError("nginx -t: %s" % check.stderr.strip())
        logf = open(os.path.join(self.dir, "stderr"), "wb")
        self.proc = subprocess.Popen(self._cmd(), stdin=subprocess.DEVNULL,
                                     stdout=logf, stderr=subprocess.STDOUT)
        logf.close()
        try:
            util.wait_until(lambda: self.proc.poll() is not None or
                            _greets(self.port), 15, what="nginx greeting")
        except TimeoutError:
            self.__exit__()
            raise
        if self.proc.poll() is not None:
            raise RuntimeError("nginx exited: %s" % util.tail(
                open(self.log_path, errors="replace").read()))
        self.seen.update(p[0] for p in util.descendants(self.proc.pid))
        return self

    def __exit__(self, *exc):
        if self.proc is None:
            return False
        self.seen.update(p[0] for p in util.descendants(self.proc.pid))
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)   # fast shutdown
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        # a worker that outlived its master would keep the port
        deadline = time.monotonic() + 5
        for pid in self.seen:
            while _alive(pid, "nginx") and time.monotonic() < deadline:
                time.sleep(0.01)
            if _alive(pid, "nginx"):
                os.kill(pid, signal.SIGKILL)
        self.proc = None
        return False


class DovecotProxy:
    """Dovecot as an IMAP proxy in front of the backend, the way its
    operators run it: "per-login" is one imap-login process per
    connection (service_count = 1, formerly login_process_per_connection
    = yes), which then proxies that session for its whole life;
    "shared" is the high-performance mode (service_count = 0,
    process_min_avail = one per CPU), each process many clients."""

    kind = "proxy"

    def __init__(self, tmpdir, mode, backend_port, users, cert, workers):
        self.name = "Dovecot proxy %s" % mode
        self.port = util.free_port()
        self.tls_port = util.free_port()
        self.dir = os.path.join(tmpdir, "dovecot-proxy-" + mode)
        for sub in ("run", "state"):
            os.makedirs(os.path.join(self.dir, sub), exist_ok=True)
        os.chmod(self.dir, 0o755)
        uid, gid, login_user, internal_user, rootless = dovecot._ids()
        passwd = os.path.join(self.dir, "users")
        with open(passwd, "w") as f:
            for user, password in users.items():
                # user:password:uid:gid:gecos:home:shell:extra fields
                f.write("%s:{PLAIN}%s::::::proxy=y host=127.0.0.1 "
                        "port=%d\n" % (user, password, backend_port))
        os.chmod(passwd, 0o644)
        if mode == "per-login":
            login = "  service_count = 1\n  process_limit = 3000\n"
        else:
            login = ("  service_count = 0\n  process_min_avail = %d\n"
                     "  client_limit = 4000\n" % workers)
        self.conf = os.path.join(self.dir, "dovecot.conf")
        with open(self.conf, "w") as f:
            f.write(DOVECOT_PROXY_CONF % {
                "dir": self.dir, "port": self.port,
                "tls_port": self.tls_port, "cert": cert[0],
                "key": cert[1], "passwd": passwd, "uid": uid, "gid": gid,
                "login_user": login_user, "internal_user": internal_user,
                "login": login,
                "chroot": "  chroot =\n" if rootless else "",
                "group": ("default_internal_group = %s" % __import__(
                    "grp").getgrgid(gid).gr_name) if rootless else ""})
        self.proc = None

    def roots(self):
        return [self.proc.pid]

    def version(self):
        return subprocess.run([dovecot.find_dovecot(), "--version"],
                              capture_output=True, text=True).stdout.strip()

    def __enter__(self):
        logf = open(os.path.join(self.dir, "stderr"), "wb")
        self.proc = subprocess.Popen([dovecot.find_dovecot(), "-F", "-c",
                                      self.conf], stdin=subprocess.DEVNULL,
                                     stdout=logf, stderr=subprocess.STDOUT)
        logf.close()
        try:
            util.wait_until(lambda: self.proc.poll() is not None or
                            _greets(self.port), 20,
                            what="Dovecot proxy greeting")
        except TimeoutError:
            self.__exit__()
            raise
        if self.proc.poll() is not None:
            raise RuntimeError("Dovecot proxy exited: %s" % util.tail(
                open(os.path.join(self.dir, "dovecot.log"),
                     errors="replace").read()))
        return self

    def __exit__(self, *exc):
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(15)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self.proc = None
        return False


DOVECOT_PROXY_CONF = """# generated by regress/bench/targets.py
base_dir = %(dir)s/run
state_dir = %(dir)s/state
instance_name = imaprelayd-bench-proxy-%(port)d
protocols = imap
listen = 127.0.0.1
ssl = yes
ssl_cert = <%(cert)s
ssl_key = <%(key)s
ssl_min_protocol = TLSv1.2
disable_plaintext_auth = no
auth_mechanisms = plain login
auth_failure_delay = 0
auth_cache_size = 0
log_path = %(dir)s/dovecot.log
info_log_path = %(dir)s/dovecot.log
first_valid_uid = %(uid)d
last_valid_uid = 0
first_valid_gid = %(gid)d
default_login_user = %(login_user)s
default_internal_user = %(internal_user)s
%(group)s
default_process_limit = 3000
default_client_limit = 10000
default_vsz_limit = 1G
shutdown_clients = yes
verbose_proctitle = no
login_trusted_networks =

passdb {
  driver = passwd-file
  args = scheme=PLAIN username_format=%%u %(passwd)s
}
userdb {
  driver = static
  args = uid=%(uid)d gid=%(gid)d home=%(dir)s/home/%%u
}

service imap-login {
  inet_listener imap {
    address = 127.0.0.1
    port = %(port)d
  }
  inet_listener imaps {
    address = 127.0.0.1
    port = %(tls_port)d
    ssl = yes
  }
%(login)s%(chroot)s}
service auth {
  client_limit = 10000
}
service anvil {
  client_limit = 10000
  unix_listener anvil-auth-penalty {
    mode = 0
  }
%(chroot)s}
service stats {
  client_limit = 10000
}
service imap-urlauth-login {
  inet_listener imap-urlauth {
    port = 0
  }
%(chroot)s}
"""
