#!/usr/bin/env python3
"""Side-by-side benchmark: imaprelayd (isolation shared and connection)
and nginx's mail proxy in front of the same IMAP backend and the same
auth_http service, with the backend itself as the baseline.

    python3 regress/bench/bench.py [--quick] [--out FILE]
        [--backend dovecot|stub] [--sessions N] [--concurrency 1,16,64]
        [--idle N] [--message-mib M] [--repeat R] [--proxy-buffer SIZE]
        [--targets backend,shared,connection,nginx]
    make bench BENCH_ARGS="--quick"

Measures, per target: login rate and latency (connect, greeting, LOGIN,
SELECT INBOX, LOGOUT) at each concurrency, relay throughput of a large
FETCH (one session and 8 in parallel), memory (PSS and RSS of the whole
process tree) without sessions and with N idle logged-in ones, and CPU
time of the process tree during the login and fetch runs.  Prints one
markdown table and writes it to --out (the raw numbers to --out.json).

Everything runs on this machine, so the client, the auth service and
the backend share the CPUs with the proxy: rates say how fast the whole
chain goes, CPU time per session what the proxy itself costs.  The
backend is the regress harness's Dovecot, or with --backend stub a
minimal IMAP server (stubimap.py) that makes the proxy the bottleneck.
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
PARALLEL_FETCH = 8


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

def measure_login(stack, t, others, sessions, conc, procs):
    with Cpu(t.roots()) as cpu, Cpu(others) as other:
        r, client_cpu = loadgen(stack, "login", "--port", t.port,
                                "--sessions", sessions,
                                "--concurrency", conc, "--procs", procs)
    r.update(conc=conc, rate=r["done"] / r["wall"], cpu=cpu.seconds,
             other_cpu=other.seconds, client_cpu=client_cpu)
    log("  %-22s C=%-3d %6.0f sessions/s  login p50 %.1f ms p99 %.1f ms"
        "  cpu %.2fs (backend+auth %.2fs, client %.2fs)  errors %d"
        % (t.name, conc, r["rate"], 1000 * (r["login_p50"] or 0),
           1000 * (r["login_p99"] or 0), cpu.seconds, other.seconds,
           client_cpu, r["errors"]))
    if r["messages"]:
        log("    first errors: %s" % r["messages"])
    return r


def measure_fetch(stack, t, nsess, repeat):
    with Cpu(t.roots()) as cpu:
        r, _ = loadgen(stack, "fetch", "--port", t.port, "--user", BIG_USER,
                       "--password", dovecot.USERS[BIG_USER],
                       "--sessions", nsess, "--repeat", repeat)
    r.update(mbs=r["bytes"] / r["wall"] / 1e6, cpu=cpu.seconds)
    log("  %-22s FETCH x%d  %6.0f MB/s  cpu %.2fs  one FETCH min %s "
        "p50 %s max %s ms %s"
        % (t.name, nsess, r["mbs"], cpu.seconds, ms(r["fetch_min"]),
           ms(r["fetch_p50"]), ms(r["fetch_max"]), r["errors"] or ""))
    return r


def measure_idle(stack, t, n):
    """Memory with n idle logged-in sessions open; the client holds
    them until we have read /proc."""
    proc = spawn(stack, [sys.executable, LOADGEN, "idle", "--port", t.port,
                         "--sessions", n, "--concurrency", 32],
                 stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    ready = proc.stdout.readline().split()
    if not ready or ready[0] != "ready":
        raise RuntimeError("idle client: %r" % ready)
    time.sleep(1)       # spare workers started, the log written
    pss, rss, nproc = procstat.memory_kib(t.roots())
    proc.stdin.write("\n")
    proc.stdin.flush()
    done = json.loads(proc.stdout.readline())
    proc.wait()
    log("  %-22s %d idle sessions: PSS %.1f MiB RSS %.1f MiB in %d "
        "processes" % (t.name, int(ready[1]), pss / 1024, rss / 1024, nproc))
    return {"open": int(ready[1]), "errors": int(ready[2]) +
            done["logout_errors"], "pss": pss, "rss": rss, "nproc": nproc}


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


def measure(stack, t, others, args):
    res = {"name": t.name, "login": [], "fetch": {}}
    settle(t)
    pss, rss, nproc = procstat.memory_kib(t.roots())
    res["idle0"] = {"pss": pss, "rss": rss, "nproc": nproc}
    log("  %-22s no sessions: PSS %.1f MiB RSS %.1f MiB in %d processes"
        % (t.name, pss / 1024, rss / 1024, nproc))
    # warm-up, not counted: first connections, worker pools, caches
    loadgen(stack, "login", "--port", t.port, "--sessions", 100,
            "--concurrency", 8, "--procs", args.procs)
    for c in args.concurrency:
        settle(t)
        res["login"].append(measure_login(stack, t, others, args.sessions,
                                          c, args.procs))
    for n in (1, PARALLEL_FETCH):
        settle(t)
        res["fetch"][n] = measure_fetch(stack, t, n, args.repeat)
    settle(t)
    res["idleN"] = measure_idle(stack, t, args.idle)
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


def fmt(v, spec):
    return "-" if v is None else format(v, spec)


def ms(v):
    return "-" if v is None else "%.1f" % (1000 * v)


def per_session(r, key, sessions):
    total = sum(x[key] for x in r["login"])
    return fmt(1000 * total / (sessions * len(r["login"])), ".2f")


def table(results, args):
    """One markdown table: a row per metric, a column per target."""
    rows = []

    def row(label, f):
        rows.append([label] + [f(r) for r in results])

    for i, c in enumerate(args.concurrency):
        row("logins/s, C=%d" % c, lambda r: fmt(r["login"][i]["rate"], ".0f"))
        row("login p50 / p99 ms, C=%d" % c,
            lambda r: "%s / %s" % (ms(r["login"][i]["login_p50"]),
                                   ms(r["login"][i]["login_p99"])))
        row("target CPU ms/session, C=%d" % c,
            lambda r: fmt(1000 * r["login"][i]["cpu"] / args.sessions,
                          ".2f"))
    row("backend+auth CPU ms/session, all C",
        lambda r: per_session(r, "other_cpu", args.sessions))
    row("client CPU ms/session, all C",
        lambda r: per_session(r, "client_cpu", args.sessions))
    row("failed sessions", lambda r: str(
        sum(x["errors"] for x in r["login"]) + r["idleN"]["errors"]))
    for n in (1, PARALLEL_FETCH):
        s = "s" if n > 1 else ""
        row("FETCH %d MiB, %d session%s: MB/s" % (args.message_mib, n, s),
            lambda r: fmt(r["fetch"][n]["mbs"], ".0f"))
        row("target CPU s/GB relayed, %d session%s" % (n, s),
            lambda r: fmt(r["fetch"][n]["cpu"] /
                          (r["fetch"][n]["bytes"] / 1e9), ".2f"))

    def mem(m):
        return "%.1f / %.1f (%d)" % (m["pss"] / 1024, m["rss"] / 1024,
                                     m["nproc"])

    def kib(r):
        a, b = r["idle0"], r["idleN"]
        if not b["open"]:
            return "-"
        return "%.1f / %.1f" % ((b["pss"] - a["pss"]) / b["open"],
                                (b["rss"] - a["rss"]) / b["open"])
    row("PSS / RSS MiB (processes), no session", lambda r: mem(r["idle0"]))
    row("PSS / RSS MiB (processes), %d idle" % args.idle,
        lambda r: mem(r["idleN"]))
    row("PSS / RSS KiB per idle session", kib)
    out = ["| metric | " + " | ".join(r["name"] for r in results) + " |",
           "|---|" + "---:|" * len(results)]
    out += ["| " + " | ".join(r) + " |" for r in rows]
    return "\n".join(out)


def report(results, info, args):
    with open("/proc/loadavg") as f:
        info["loadavg_end"] = f.read().split()[:3]
    return "\n".join([
        "# imaprelayd benchmark", "",
        "%s; %d CPUs (%s), Linux %s, load average at start %s, at end %s; "
        "imaprelayd %s, nginx %s, backend %s, Python %s." % (
            info["date"], info["nproc"], info["cpu"], info["kernel"],
            " ".join(info["loadavg"]), " ".join(info["loadavg_end"]),
            info["imaprelayd"], info["nginx"],
            info["backend"], info["python"]),
        "",
        "Login runs: %d sessions each (connect, greeting, LOGIN, SELECT "
        "INBOX, LOGOUT), C at a time from %d client processes. FETCH: "
        "one %d MiB message, %d times per session. Memory: the sum over "
        "the target's process tree. Proxies: worker_processes %d, the "
        "auth_http service regress/lib/authd.py in its own process%s."
        % (args.sessions, args.procs, args.message_mib, args.repeat,
           args.workers, ", proxy_buffer %s" % args.proxy_buffer
           if args.proxy_buffer else ""),
        "", table(results, args), ""])


# ---- main ---------------------------------------------------------------

def parse_args(argv):
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--quick", action="store_true",
                    help="small sizes, about a minute")
    ap.add_argument("--sessions", type=int, help="per login run")
    ap.add_argument("--concurrency", help="comma-separated, e.g. 1,16,64")
    ap.add_argument("--idle", type=int, help="idle sessions for memory")
    ap.add_argument("--message-mib", type=int)
    ap.add_argument("--repeat", type=int, help="FETCHes per session")
    ap.add_argument("--procs", type=int, default=os.cpu_count() or 1,
                    help="client processes for the login runs")
    ap.add_argument("--workers", type=int, default=os.cpu_count() or 1,
                    help="worker_processes of the proxies")
    ap.add_argument("--backend", choices=("dovecot", "stub"),
                    default="dovecot",
                    help="stub: a minimal IMAP server instead of Dovecot, "
                    "so that the login runs measure the proxies")
    ap.add_argument("--targets", default="backend,shared,connection,nginx")
    ap.add_argument("--proxy-buffer", metavar="SIZE",
                    help="proxy_buffer for both proxies (default: each "
                    "one's own, imaprelayd 16k, nginx one page)")
    ap.add_argument("--out", help="write the table here (and .json)")
    args = ap.parse_args(argv)
    quick = {"sessions": 100, "concurrency": "1,16", "idle": 100,
             "message_mib": 5, "repeat": 3}
    full = {"sessions": 2000, "concurrency": "1,16,64", "idle": 1000,
            "message_mib": 20, "repeat": 5}
    for k, v in (quick if args.quick else full).items():
        if getattr(args, k) is None:
            setattr(args, k, v)
    args.concurrency = [int(c) for c in str(args.concurrency).split(",")]
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


def make_targets(args, tmp, base, auth_url):
    todo, nginx = [], None
    for name in args.targets:
        if name == "backend":
            todo.append(base)
        elif name in ("shared", "connection"):
            todo.append(targets.Imaprelayd(tmp, auth_url, name,
                                           args.workers, args.proxy_buffer))
        elif name == "nginx":
            if targets.Nginx.available():
                nginx = targets.Nginx(tmp, auth_url, args.workers,
                                      args.proxy_buffer)
                todo.append(nginx)
            else:
                log("nginx or its mail module missing (Debian: apt-get "
                    "install nginx-light libnginx-mod-mail); skipped")
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
    todo, nginx = make_targets(args, tmp, base, auth_url)
    info = machine_info(base, nginx)
    results = []
    for t in todo:
        # what the target makes the others spend: the backend and the
        # auth service (the backend alone has nobody else)
        others = [authd.pid] if t is base else [base.pid, authd.pid]
        with t:
            log("%s on port %d, pid %d" % (t.name, t.port, t.roots()[0]))
            results.append(measure(stack, t, others, args))
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
