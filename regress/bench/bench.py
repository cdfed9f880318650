#!/usr/bin/env python3
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

"""Side-by-side benchmark: imaprelayd (isolation connection and
shared), nginx's mail proxy, Dovecot itself as a proxy (one process per
login, and its shared high-performance mode) and Dovecot directly, in
front of the same IMAP backend; imaprelayd and nginx with the same
nginx mail {} configuration and the same auth_http service.

    python3 regress/bench/bench.py [--quick] [--out FILE]
        [--targets LIST] [--sessions N] [--tls-sessions N] [--idle N]
        [--greet N] [--message-mib M] [--repeat R] [--backend dovecot|stub]
    make bench [BENCH_ARGS="--quick --out /tmp/bench.md"]

Measures, per proxy: its CPU time per plain login and per TLS login
(RSA-2048, a full handshake each, no resumption) while logins run 50 at
a time, and that rate; the PSS of its whole process tree per idle
logged-in session, plaintext and TLS; with those plaintext sessions
held, the slowest greeting of 100 connections opened at once; the
throughput of a FETCH of a 10 MiB message through one session,
plaintext (against Dovecot directly) and over TLS (against nginx with
proxy_buffer 64k).  Prints a table of the figures and their ratios to
the reference, with the targets of issue 8 for imaprelayd, and writes
it to --out (the raw numbers to --out.json).

Everything runs on this machine, so the clients, the auth service and
the backend share the CPUs with the proxy: CPU time per login and PSS
are the figures to trust; rates say how fast the whole chain goes on a
shared machine and move from run to run.
"""

import argparse
import contextlib
import json
import os
import platform
import resource
import shutil
import signal
import subprocess
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
REGRESS = os.path.dirname(HERE)
ROOT = os.path.dirname(REGRESS)
sys.path.insert(0, REGRESS)
sys.path.insert(0, HERE)

from lib import dovecot, util  # noqa: E402
import procstat  # noqa: E402
import targets  # noqa: E402

LOADGEN = os.path.join(HERE, "loadgen.py")
STUB = os.path.join(HERE, "stubimap.py")
AUTHD = os.path.join(REGRESS, "lib", "authd.py")
BIG_USER = "alice"


def log(msg):
    print("bench: " + msg, file=sys.stderr, flush=True)


def stop_proc(proc):
    if proc.poll() is None:
        proc.terminate()
        try:
            proc.wait(5)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def spawn(stack, cmd, **kw):
    """A child process that the stack stops, whatever happens."""
    proc = subprocess.Popen([str(c) for c in cmd], **kw)
    stack.callback(stop_proc, proc)
    return proc


# ---- the shared pieces: backend, auth service -------------------------

def start_authd(stack, backend_port):
    """regress/lib/authd.py in its own process: its threads and GIL do
    not share the bench's, and its CPU time can be read apart."""
    port = util.free_port()
    cmd = [sys.executable, AUTHD, "--port", port,
           "--backend-port", backend_port]
    for user, password in dovecot.all_users().items():
        cmd += ["--user", "%s:%s" % (user, password)]
    proc = spawn(stack, cmd, stdin=subprocess.DEVNULL,
                 stdout=subprocess.PIPE, text=True)
    line = proc.stdout.readline()
    if "listening" not in line:
        raise RuntimeError("authd did not start: %r" % line)
    return proc, "127.0.0.1:%d/auth" % port


def big_message(mib):
    """A plain text message of about mib MiB, CRLF lines."""
    line = b"x" * 76 + b"\r\n"
    body = line * (mib * 1024 * 1024 // len(line))
    return (b"From: bench@example.org\r\nTo: alice@example.org\r\n"
            b"Subject: big\r\n\r\n" + body)


def append_big(dv, mib):
    import imaplib
    m = imaplib.IMAP4(dv.host, dv.port)
    m.login(BIG_USER, dovecot.USERS[BIG_USER])
    typ, _ = m.append("INBOX", None, None, big_message(mib))
    m.logout()
    if typ != "OK":
        raise RuntimeError("APPEND of the big message: %s" % typ)


def start_dovecot(stack, args):
    """The regress harness's Dovecot with the big message in alice's
    INBOX, warmed up: the first login of each user creates its mailbox
    and indexes, which no target should pay for."""
    log("starting Dovecot")
    dv = dovecot.start()
    stack.callback(dv.stop)
    append_big(dv, args.message_mib)
    log("warming Dovecot up: every load user's mailbox once")
    loadgen(stack, "login", "--port", dv.port, "--sessions",
            dovecot.LOAD_USERS, "--concurrency", 16, "--procs", args.procs)
    version = subprocess.run([dovecot.find_dovecot(), "--version"],
                             capture_output=True, text=True).stdout.strip()
    return targets.Backend("dovecot", dv.port, dv.pid, "Dovecot " + version)


def start_stub(stack, args):
    port = util.free_port()
    proc = spawn(stack, [sys.executable, STUB, "--port", port,
                         "--procs", args.procs,
                         "--message-mib", args.message_mib],
                 stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, text=True)
    if "listening" not in proc.stdout.readline():
        raise RuntimeError("stubimap did not start")
    return targets.Backend("stub", port, proc.pid,
                           "stubimap.py (%d processes)" % args.procs)


# ---- running the client ---------------------------------------------

def loadgen(stack, *args):
    """Run loadgen.py to the end: (its JSON result, its CPU seconds)."""
    proc = spawn(stack, [sys.executable, LOADGEN] + list(args),
                 stdin=subprocess.DEVNULL, stdout=subprocess.PIPE)
    out = proc.stdout.read()
    # wait4: the rusage of the client and of its load processes
    _, status, ru = os.wait4(proc.pid, 0)
    proc.returncode = os.waitstatus_to_exitcode(status)
    if proc.returncode != 0:
        raise RuntimeError("loadgen %s failed (%d)" % (args[0],
                                                       proc.returncode))
    return json.loads(out.decode().strip().splitlines()[-1]), \
        ru.ru_utime + ru.ru_stime


class Cpu:
    """CPU seconds spent by some process trees between enter and exit."""

    def __init__(self, roots):
        self.roots = roots

    def __enter__(self):
        self.start = procstat.cpu_seconds(self.roots)
        return self

    def __exit__(self, *exc):
        self.seconds = procstat.cpu_seconds(self.roots) - self.start
        return False


# ---- the measurements -----------------------------------------------

def measure_login(stack, t, others, sessions, conc, procs, tls):
    port = t.tls_port if tls else t.port
    extra = ["--tls"] if tls else []
    with Cpu(t.roots()) as cpu, Cpu(others) as other:
        r, client_cpu = loadgen(stack, "login", "--port", port,
                                "--sessions", sessions,
                                "--concurrency", conc, "--procs", procs,
                                *extra)
    r.update(conc=conc, rate=r["done"] / r["wall"], cpu=cpu.seconds,
             cpu_ms=1000 * cpu.seconds / max(1, r["done"]),
             other_cpu=other.seconds, client_cpu=client_cpu)
    log("  %-28s %s C=%d %5.0f logins/s  p50 %.1f ms p99 %.1f ms  "
        "proxy cpu %.2f ms/login (backend+auth %.2fs)  errors %d"
        % (t.name, "tls" if tls else "plain", conc, r["rate"],
           1000 * (r["login_p50"] or 0), 1000 * (r["login_p99"] or 0),
           r["cpu_ms"], other.seconds, r["errors"]))
    if r["messages"]:
        log("    first errors: %s" % r["messages"])
    return r


def measure_fetch(stack, t, repeat, tls):
    port = t.tls_port if tls else t.port
    extra = ["--tls"] if tls else []
    with Cpu(t.roots()) as cpu:
        r, _ = loadgen(stack, "fetch", "--port", port, "--user", BIG_USER,
                       "--password", dovecot.USERS[BIG_USER],
                       "--sessions", 1, "--repeat", repeat, *extra)
    r.update(mbs=r["bytes"] / r["wall"] / 1e6, cpu=cpu.seconds)
    log("  %-28s FETCH %s %6.0f MB/s  cpu %.2fs  one FETCH min %s "
        "p50 %s max %s ms %s"
        % (t.name, "tls" if tls else "plain", r["mbs"], cpu.seconds,
           ms(r["fetch_min"]), ms(r["fetch_p50"]), ms(r["fetch_max"]),
           r["errors"] or ""))
    return r


def measure_idle(stack, t, n, tls, greet=0):
    """PSS per idle logged-in session: the tree's PSS with n sessions
    held against none.  With greet, while they are held, greet
    connections are opened at once: the slowest greeting."""
    settle(t)
    pss0, rss0, nproc0 = procstat.memory_kib(t.roots())
    cmd = [sys.executable, LOADGEN, "idle", "--port",
           t.tls_port if tls else t.port, "--sessions", n,
           "--concurrency", 32] + (["--tls"] if tls else [])
    proc = spawn(stack, cmd, stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                 text=True)
    ready = proc.stdout.readline().split()
    if not ready or ready[0] != "ready":
        raise RuntimeError("idle client: %r" % ready)
    time.sleep(1)       # spare workers started, the log written
    pss, rss, nproc = procstat.memory_kib(t.roots())
    res = {"open": int(ready[1]), "errors": int(ready[2]), "pss0": pss0,
           "pss": pss, "rss": rss, "nproc": nproc,
           "per_session": (pss - pss0) / max(1, int(ready[1]))}
    if greet:
        g, _ = loadgen(stack, "greet", "--port", t.port, "--connections",
                       greet)
        res["greet"] = g
    proc.stdin.write("\n")
    proc.stdin.flush()
    done = json.loads(proc.stdout.readline())
    proc.wait()
    res["errors"] += done["logout_errors"]
    log("  %-28s %d idle %s sessions: PSS %.1f -> %.1f MiB in %d "
        "processes, %.1f KiB per session%s"
        % (t.name, res["open"], "tls" if tls else "plain", pss0 / 1024,
           pss / 1024, nproc, res["per_session"],
           "; %d connects, slowest greeting %s ms" % (greet,
                                                      ms(g["max"]))
           if greet else ""))
    return res


def settle(t, timeout=10):
    """Wait until the tree stops changing: in connection mode the
    workers of the last step's sessions exit, spares are refilled."""
    deadline = time.monotonic() + timeout
    last = None
    while time.monotonic() < deadline:
        n = len(procstat.tree(t.roots()[0]))
        if n == last:
            return
        last = n
        time.sleep(0.3)


def measure(stack, t, others, args, what):
    res = {"name": t.name}
    settle(t)
    if "login" in what or "idle" in what:
        # warm-up, not counted: first connections, worker pools, caches
        loadgen(stack, "login", "--port", t.port, "--sessions", 50,
                "--concurrency", 8, "--procs", args.procs)
        loadgen(stack, "login", "--port", t.tls_port, "--sessions", 20,
                "--concurrency", 8, "--procs", args.procs, "--tls")
    # memory first: the login runs' 50 sessions at a time leave freed
    # memory behind that idle sessions would fill unseen
    if "idle" in what:
        res["idle"] = measure_idle(stack, t, args.idle, False, args.greet)
        res["idle_tls"] = measure_idle(stack, t, args.idle, True)
    if "login" in what:
        settle(t)
        res["login"] = measure_login(stack, t, others, args.sessions,
                                     CONCURRENCY, args.procs, False)
        settle(t)
        res["login_tls"] = measure_login(stack, t, others,
                                         args.tls_sessions, CONCURRENCY,
                                         args.procs, True)
    if "fetch" in what:
        settle(t)
        res["fetch"] = measure_fetch(stack, t, args.repeat, False)
    if "fetch_tls" in what:
        settle(t)
        res["fetch_tls"] = measure_fetch(stack, t, args.repeat, True)
    return res


# ---- the report -------------------------------------------------------

def machine_info(backend, nginx):
    def run(*cmd, **kw):
        try:
            r = subprocess.run(cmd, capture_output=True, text=True,
                               cwd=ROOT, **kw)
            return (r.stdout or r.stderr).strip()
        except OSError:
            return "?"
    model = "?"
    with open("/proc/cpuinfo") as f:
        for line in f:
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    # GIT_OPTIONAL_LOCKS=0: git status must not write the index
    env = dict(os.environ, GIT_OPTIONAL_LOCKS="0")
    dirty = run("git", "status", "--porcelain", "--untracked-files=no",
                "--", "src", env=env)
    with open("/proc/loadavg") as f:
        loadavg = f.read().split()[:3]
    return {
        "date": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()),
        "nproc": os.cpu_count(),
        "cpu": model,
        "kernel": platform.release(),
        "loadavg": loadavg,
        "imaprelayd": run("git", "rev-parse", "--short", "HEAD") +
        (" (src/ modified)" if dirty else ""),
        "nginx": nginx.version() if nginx else "not run",
        "backend": backend.version(),
        "python": platform.python_version(),
    }


def fork_floor(tmp, count=1000):
    """The CPU time of a bare fork+_exit on this machine, built without
    libraries and with imaprelayd's (as the template maps them): what a
    connection-mode login cannot cost less than.  None if no compiler."""
    src = os.path.join(HERE, "forkfloor.c")
    # make bench passes the daemon's link line
    libs = os.environ.get("FORKFLOOR_LDLIBS", "").split()
    cc = os.environ.get("CC", "cc")
    out = {}
    builds = [("bare", [])]
    if libs:
        builds.append(("linked", ["-Wl,-z,now", "-Wl,--no-as-needed"] +
                       libs))
    for name, extra in builds:
        exe = os.path.join(tmp, "forkfloor-" + name)
        try:
            subprocess.run([cc, "-O2", "-o", exe, src] + extra, check=True,
                           capture_output=True)
            r = subprocess.run([exe, str(count)], check=True,
                               capture_output=True, text=True)
        except (OSError, subprocess.CalledProcessError) as e:
            log("fork floor (%s) not measured: %s" % (name, e))
            return None
        usec, maps = r.stdout.split()
        out[name] = {"ms": float(usec) / 1000, "mappings": int(maps)}
    return out


def fork_floor_text(ff):
    if ff is None:
        return "Fork floor: not measured (no C compiler)."
    if "linked" not in ff:
        return ("Fork floor on this machine (regress/bench/forkfloor.c): "
                "%.2f ms CPU per bare fork+_exit (%d mappings)." % (
                    ff["bare"]["ms"], ff["bare"]["mappings"]))
    return ("Fork floor on this machine (regress/bench/forkfloor.c, 1000 "
            "forks whose child calls _exit at once, CPU of parent and "
            "child): %.2f ms bare (%d mappings), %.2f ms linked with "
            "imaprelayd's libraries (%d mappings, as the template).  No "
            "connection-mode login costs less than that." % (
                ff["bare"]["ms"], ff["bare"]["mappings"],
                ff["linked"]["ms"], ff["linked"]["mappings"]))


def fmt(v, spec):
    return "-" if v is None else format(v, spec)


def ms(v):
    return "-" if v is None else "%.1f" % (1000 * v)


def get(r, *keys):
    for k in keys:
        if r is None or k not in r:
            return None
        r = r[k]
    return r


# The rows: label, how to read the figure, its format, which column it
# is compared with, whether more is better, and issue 8's targets for
# imaprelayd (connection, shared) as (kind, bound): kind "ratio" is a
# ratio to the reference, "abs" the figure itself.
ROWS = [
    ("proxy CPU per plain login, ms", ("login", "cpu_ms"), ".2f", "nginx",
     False, (("ratio", 2.0), ("ratio", 0.65))),
    ("proxy CPU per TLS login (RSA-2048, full handshake), ms",
     ("login_tls", "cpu_ms"), ".2f", "nginx", False,
     (("ratio", 1.5), ("ratio", 0.8))),
    ("logins/s, 50 concurrent (plain)", ("login", "rate"), ".0f", "nginx",
     True, (("ratio", 0.8), ("ratio", 1.15))),
    ("PSS per idle logged-in session, plain, KiB",
     ("idle", "per_session"), ".1f", "nginx", False,
     (("abs", 96), ("abs", 6))),
    ("PSS per idle logged-in session, TLS, KiB",
     ("idle_tls", "per_session"), ".1f", "nginx", False,
     (("abs", 128), ("abs", 18))),
    ("idle sessions held, then 100 connects at once: slowest greeting, ms",
     ("idle", "greet", "max"), ".0f", "nginx", False,
     (("abs", 1.0), ("abs", 1.0))),
    ("FETCH 10 MiB, 1 session, plain, MB/s", ("fetch", "mbs"), ".0f",
     "Dovecot direct", True, (("ratio", 0.9), ("ratio", 0.9))),
    ("FETCH 10 MiB, 1 session, TLS, MB/s", ("fetch_tls", "mbs"), ".0f",
     "nginx proxy_buffer 64k", True, (("ratio", 1.2), ("ratio", 1.2))),
]


def reference(results, name):
    for r in results:
        if r["name"] == name or (name == "Dovecot direct" and
                                 r["name"].endswith(" direct")):
            return r
    return None


def cell(r, row, results):
    label, keys, spec, refname, more, targets = row
    v = get(r, *keys)
    if v is None:
        return "", None
    scale = 1000 if keys[-1] == "max" else 1
    text = format(v * scale, spec)
    ref = get(reference(results, refname), *keys)
    ratio = v / ref if ref else None
    if ratio is not None and reference(results, refname) is not r:
        text += " (%.2fx)" % ratio
    verdict = None
    if r["name"].startswith("imaprelayd "):
        kind, bound = targets[0 if r["name"].endswith("connection") else 1]
        x = ratio if kind == "ratio" else v
        if x is not None:
            verdict = x >= bound if more else x <= bound
            text += " ok" if verdict else " MISSED"
    return text, verdict


def target_text(row):
    label, keys, spec, refname, more, targets = row
    op = ">=" if more else "<="

    def one(t):
        kind, bound = t
        if kind == "ratio":
            return "%s %gx %s" % (op, bound, refname)
        if keys[-1] == "max":
            return "%s %g s" % (op, bound)
        return "%s %g" % (op, bound)
    return "%s / %s" % (one(targets[0]), one(targets[1]))


def table(results):
    """One markdown table: a row per measure, a column per target; each
    figure with its ratio to the row's reference (nginx, or Dovecot
    directly, or nginx with proxy_buffer 64k)."""
    out = ["| measure | issue 8 target (connection / shared) | " +
           " | ".join(r["name"] for r in results) + " |",
           "|---|---|" + "---:|" * len(results)]
    for row in ROWS:
        cells = [cell(r, row, results)[0] for r in results]
        if not any(cells):
            continue
        out.append("| %s | %s | %s |" % (row[0], target_text(row),
                                         " | ".join(c or "-" for c in cells)))
    return "\n".join(out)


def errors(results):
    """Failed sessions per target: a figure from a run with errors is
    not to be trusted."""
    lines = []
    for r in results:
        n = sum(get(r, k, "errors") or 0 for k in ("login", "login_tls",
                                                    "idle", "idle_tls"))
        n += len(get(r, "fetch", "errors") or [])
        n += len(get(r, "fetch_tls", "errors") or [])
        n += get(r, "idle", "greet", "errors") or 0
        if n:
            lines.append("%s: %d failed sessions" % (r["name"], n))
    return lines


def report(results, info, args):
    with open("/proc/loadavg") as f:
        info["loadavg_end"] = f.read().split()[:3]
    bad = errors(results)
    return "\n".join([
        "# imaprelayd benchmark", "",
        "%s; %d CPUs (%s), Linux %s, load average at start %s, at end %s; "
        "imaprelayd %s, nginx %s, backend %s, Python %s." % (
            info["date"], info["nproc"], info["cpu"], info["kernel"],
            " ".join(info["loadavg"]), " ".join(info["loadavg_end"]),
            info["imaprelayd"], info["nginx"],
            info["backend"], info["python"]),
        "",
        "Logins: %d plain and %d TLS sessions (connect, greeting, LOGIN, "
        "SELECT INBOX, LOGOUT), %d at a time from %d client processes. "
        "Idle: %d logged-in sessions held; %d connects at once. FETCH: "
        "one %d MiB message, %d times. Memory: PSS summed over the "
        "target's process tree. worker_processes %d for every proxy."
        % (args.sessions, args.tls_sessions, CONCURRENCY, args.procs,
           args.idle, args.greet, args.message_mib, args.repeat,
           args.workers),
        "", fork_floor_text(info.get("fork_floor")),
        "", table(results), ""] + (["Errors: " + "; ".join(bad), ""]
                                   if bad else []))


# ---- main ---------------------------------------------------------------

ALL_TARGETS = ("nginx,connection,shared,dovecot-per-login,dovecot-shared,"
               "backend,nginx64k")


def parse_args(argv):
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--quick", action="store_true",
                    help="small sizes, a few minutes")
    ap.add_argument("--sessions", type=int, help="plain logins per run")
    ap.add_argument("--tls-sessions", type=int, help="TLS logins per run")
    ap.add_argument("--idle", type=int, help="idle sessions for memory")
    ap.add_argument("--greet", type=int, default=100,
                    help="connections opened at once with the idle ones")
    ap.add_argument("--message-mib", type=int, default=10)
    ap.add_argument("--repeat", type=int, help="FETCHes of the message")
    ap.add_argument("--procs", type=int, default=os.cpu_count() or 1,
                    help="client processes for the login runs")
    ap.add_argument("--workers", type=int, default=os.cpu_count() or 1,
                    help="worker_processes of the proxies")
    ap.add_argument("--backend", choices=("dovecot", "stub"),
                    default="dovecot",
                    help="stub: a minimal IMAP server instead of Dovecot")
    ap.add_argument("--targets", default=ALL_TARGETS,
                    help="comma-separated, default " + ALL_TARGETS)
    ap.add_argument("--out", help="write the table here (and .json)")
    args = ap.parse_args(argv)
    quick = {"sessions": 200, "tls_sessions": 100, "idle": 100,
             "repeat": 2}
    full = {"sessions": 1000, "tls_sessions": 500, "idle": 1000,
            "repeat": 5}
    for k, v in (quick if args.quick else full).items():
        if getattr(args, k) is None:
            setattr(args, k, v)
    args.targets = args.targets.split(",")
    return args


def interrupted(signum, frame):
    raise KeyboardInterrupt("signal %d" % signum)


def raise_nofile():
    """Each idle session is a socket here and two in a proxy, which
    inherits our limit (imaprelayd does not raise its own)."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    want = hard
    if os.geteuid() == 0 and hard != resource.RLIM_INFINITY:
        want = max(hard, 65536)
    try:
        resource.setrlimit(resource.RLIMIT_NOFILE, (want, want))
    except (ValueError, OSError):
        pass


CONCURRENCY = 50
# what each kind of target is measured for
EVERYTHING = ("login", "idle", "fetch", "fetch_tls")


def make_targets(args, tmp, base, auth_url, users):
    """[(target, what to measure)] in the order of --targets."""
    cert = targets.make_cert(tmp)
    todo, nginx = [], None
    for name in args.targets:
        if name == "backend":
            todo.append((base, ("fetch",)))
        elif name in ("shared", "connection"):
            todo.append((targets.Imaprelayd(tmp, auth_url, name,
                                            args.workers, cert),
                         EVERYTHING))
        elif name in ("nginx", "nginx64k"):
            if not targets.Nginx.available():
                log("nginx or its mail module missing (Debian: apt-get "
                    "install nginx-light libnginx-mod-mail); skipped")
                continue
            t = targets.Nginx(tmp, auth_url, args.workers, cert,
                              "64k" if name == "nginx64k" else None)
            nginx = nginx or t
            todo.append((t, EVERYTHING if name == "nginx" else
                         ("fetch_tls",)))
        elif name in ("dovecot-per-login", "dovecot-shared"):
            todo.append((targets.DovecotProxy(tmp, name.split("-", 1)[1],
                                              base.port, users, cert,
                                              args.workers), EVERYTHING))
        else:
            raise SystemExit("unknown target %r" % name)
    return todo, nginx


def run(args, stack):
    tmp = tempfile.mkdtemp(prefix="imaprelayd-bench-")
    os.chmod(tmp, 0o755)
    stack.callback(shutil.rmtree, tmp, ignore_errors=True)
    # a copy, so that a rebuild of ./imaprelayd during the run does not
    # change what is measured
    binary = os.path.join(tmp, "imaprelayd")
    shutil.copy2(os.environ.get("IMAPRELAYD",
                                os.path.join(ROOT, "imaprelayd")), binary)
    os.environ["IMAPRELAYD"] = binary

    if args.backend == "stub":
        base = start_stub(stack, args)
    else:
        base = start_dovecot(stack, args)
    authd, auth_url = start_authd(stack, base.port)
    todo, nginx = make_targets(args, tmp, base, auth_url,
                               dovecot.all_users())
    info = machine_info(base, nginx)
    info["fork_floor"] = fork_floor(tmp)
    results = []
    for t, what in todo:
        # what the target makes the others spend: the backend and the
        # auth service (the backend alone has nobody else)
        others = [authd.pid] if t is base else [base.pid, authd.pid]
        with t:
            log("%s on ports %s/%s, pid %d" % (t.name, t.port, t.tls_port,
                                               t.roots()[0]))
            results.append(measure(stack, t, others, args, what))
    return report(results, info, args), results, info


def main(argv=None):
    args = parse_args(argv)
    signal.signal(signal.SIGTERM, interrupted)
    signal.signal(signal.SIGHUP, interrupted)
    raise_nofile()
    try:
        with contextlib.ExitStack() as stack:
            text, results, info = run(args, stack)
            log("stopping")
    except KeyboardInterrupt:
        log("interrupted; everything stopped")
        return 130
    except dovecot.SkipDovecot as e:
        log("cannot start Dovecot: %s" % e)
        return 1
    print(text)
    if args.out:
        with open(args.out, "w") as f:
            f.write(text)
        with open(args.out + ".json", "w") as f:
            json.dump({"info": info, "args": vars(args),
                       "results": results}, f, indent=1)
    return 0


if __name__ == "__main__":
    sys.exit(main())
