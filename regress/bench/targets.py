"""What the benchmark measures: Dovecot directly, imaprelayd in both
isolation modes, nginx's mail proxy.  Each target knows its port and
the roots of its process tree (for CPU and memory), and is a context
manager that starts and stops what it owns.

The proxies get the same nginx configuration text; only the few
top-level lines that one of them does not know differ (nginx has no
`isolation`, imaprelayd logs to stderr under -d where the harness
waits for its "startup" line)."""

import os
import shutil
import signal
import subprocess
import time

from lib import daemon, util

NGINX_MAIL_MODULE = "/usr/lib/nginx/modules/ngx_mail_module.so"
# room for 1000 idle sessions (two sockets each) and more
WORKER_CONNECTIONS = 4096


def mail_config(port, auth_url, workers, proxy_buffer=None):
    """The part both proxies read unchanged."""
    return """worker_processes %d;
events {
	worker_connections %d;
}
mail {
	auth_http %s;
%s	server {
		listen 127.0.0.1:%d;
		protocol imap;
	}
}
""" % (workers, WORKER_CONNECTIONS, auth_url,
       "\tproxy_buffer %s;\n" % proxy_buffer if proxy_buffer else "", port)


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

    def __init__(self, name, port, pid, version):
        self.name = name + " direct"
        self.port = port
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

    def __init__(self, tmpdir, auth_url, isolation, workers,
                 proxy_buffer=None):
        self.name = "imaprelayd %s" % isolation
        self.port = util.free_port()
        self.isolation = isolation
        d = os.path.join(tmpdir, "imaprelayd-" + isolation)
        os.makedirs(d, exist_ok=True)
        user = daemon.daemon_user()
        text = ("isolation %s;\n" % isolation +
                ("user %s;\n" % user if user else "") +
                mail_config(self.port, auth_url, workers, proxy_buffer))
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
    name = "nginx"
    kind = "proxy"

    def __init__(self, tmpdir, auth_url, workers, proxy_buffer=None):
        self.binary = shutil.which("nginx") or "/usr/sbin/nginx"
        self.port = util.free_port()
        self.dir = os.path.join(tmpdir, "nginx")
        os.makedirs(self.dir, exist_ok=True)
        self.conf = os.path.join(self.dir, "nginx.conf")
        self.log_path = os.path.join(self.dir, "error.log")
        with open(self.conf, "w") as f:
            f.write("load_module %s;\n" % NGINX_MAIL_MODULE +
                    "daemon off;\nmaster_process on;\n" +
                    "pid %s/nginx.pid;\n" % self.dir +
                    "error_log %s warn;\n" % self.log_path +
                    "worker_rlimit_nofile %d;\n" % (4 * WORKER_CONNECTIONS) +
                    mail_config(self.port, auth_url, workers,
                                proxy_buffer))
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
