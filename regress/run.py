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

"""Run every imaprelayd test.

    python3 regress/run.py [-j N] [-v] [NAME...]

(a) the C unit test programs obj/regress/test_*: each prints "ok - name"
    and "not ok - name" lines, which are counted; a program that exits
    non-zero without a "not ok" line, or crashes, counts one failure;
(b) the integration tests regress/test_*.py (unittest): every test method
    counts; skips are counted as skipped;
(c) the libFuzzer targets obj/fuzz/fuzz_* (make fuzz): each runs for
    FUZZ_TIME seconds (default 10) from its seed corpus and counts one
    test; skipped when clang or libFuzzer is missing (obj/fuzz/SKIP).

NAME selects tests whose name contains it (a C program's file name or
a Python test id such as test_login.LoginTests.test_imaplib_session).
Every test is limited in time.  The last line is always
"N passed, N failed, N skipped"; the exit status is 1 if any failed.
"""

import argparse
import glob
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import unittest

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
sys.path.insert(0, HERE)

from lib import dovecot  # noqa: E402
from lib import case  # noqa: E402

TEST_TIMEOUT = int(os.environ.get("TEST_TIMEOUT", "120"))
UNIT_TIMEOUT = 120


class Tally:
    def __init__(self, verbose):
        self.passed = self.failed = self.skipped = 0
        self.failures = []      # (name, detail)
        self.verbose = verbose

    def record(self, name, status, detail="", seconds=None):
        t = "" if seconds is None else " (%.1fs)" % seconds
        if status == "pass":
            self.passed += 1
            print("ok - %s%s" % (name, t), flush=True)
        elif status == "skip":
            self.skipped += 1
            print("skip - %s: %s" % (name, detail.strip().splitlines()[0]
                                     if detail.strip() else ""),
                  flush=True)
        else:
            self.failed += 1
            self.failures.append((name, detail))
            print("not ok - %s%s" % (name, t), flush=True)
            if self.verbose:
                print(detail, flush=True)


def selected(name, filters):
    return not filters or any(f in name for f in filters)


# (a) C unit tests

def unit_binaries():
    out = []
    for p in sorted(glob.glob(os.path.join(ROOT, "obj", "regress", "test_*"))):
        if os.path.isfile(p) and os.access(p, os.X_OK) and \
                not p.endswith((".o", ".d", ".c")):
            out.append(p)
    return out


def run_unit(path, tally):
    name = os.path.basename(path)
    try:
        r = subprocess.run([path], cwd=ROOT, stdin=subprocess.DEVNULL,
                           stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                           timeout=UNIT_TIMEOUT)
        output, code = r.stdout.decode("utf-8", "replace"), r.returncode
    except subprocess.TimeoutExpired as e:
        output = (e.stdout or b"").decode("utf-8", "replace")
        code = None
    nots = 0
    for line in output.splitlines():
        if line.startswith("ok - "):
            tally.record("%s: %s" % (name, line[5:]), "pass")
        elif line.startswith("not ok - "):
            nots += 1
            tally.record("%s: %s" % (name, line[9:]), "fail",
                         "%s\n--- output of %s\n%s"
                         % (line, name, output[-4000:]))
    if code is None:
        tally.record(name, "fail", "timed out after %ds\n%s"
                     % (UNIT_TIMEOUT, output[-4000:]))
    elif code < 0:
        tally.record(name, "fail", "crashed: signal %d\n%s"
                     % (-code, output[-4000:]))
    elif code != 0 and nots == 0:
        tally.record(name, "fail", "exited %d without a 'not ok' line\n%s"
                     % (code, output[-4000:]))


# (c) fuzz targets (obj/fuzz, built by make fuzz): each runs briefly on
# a copy of its seed corpus in the temporary directory, all at once

FUZZ_TARGETS = ("fuzz_imapparse", "fuzz_sasl", "fuzz_authhttp",
                "fuzz_config", "fuzz_imsg", "fuzz_chello", "fuzz_limit",
                "fuzz_proxyproto")
FUZZ_TIME = int(os.environ.get("FUZZ_TIME", "10"))


def fuzz_start(name, workdir):
    corpus = os.path.join(workdir, "fuzz", name)
    shutil.copytree(os.path.join(HERE, "fuzz", "corpus", name), corpus)
    out = open(corpus + ".out", "wb")
    cmd = [os.path.join(ROOT, "obj", "fuzz", name),
           "-max_total_time=%d" % FUZZ_TIME, "-runs=%d" % (FUZZ_TIME * 500000),
           "-timeout=10", "-rss_limit_mb=2048", "-print_final_stats=1",
           "-artifact_prefix=%s/" % corpus, corpus]
    env = dict(os.environ, TMPDIR=workdir)
    proc = subprocess.Popen(cmd, cwd=corpus, env=env, stdin=subprocess.DEVNULL,
                            stdout=out, stderr=subprocess.STDOUT,
                            start_new_session=True)
    out.close()
    return {"name": name, "proc": proc, "out": corpus + ".out",
            "t0": time.monotonic()}


def run_fuzz(names, tally, workdir):
    skipfile = os.path.join(ROOT, "obj", "fuzz", "SKIP")
    jobs = []
    for name in FUZZ_TARGETS:
        if not selected(name, names):
            continue
        if os.path.exists(skipfile):
            with open(skipfile) as f:
                tally.record(name, "skip", "not built: " + f.read())
        elif not os.access(os.path.join(ROOT, "obj", "fuzz", name), os.X_OK):
            tally.record(name, "skip", "not built: run make fuzz")
        else:
            jobs.append(fuzz_start(name, workdir))
    for job in jobs:
        try:
            job["proc"].wait(timeout=FUZZ_TIME + 120 -
                             (time.monotonic() - job["t0"]))
            code = job["proc"].returncode
        except subprocess.TimeoutExpired:
            kill_group(job["proc"])
            code = None
        with open(job["out"], errors="replace") as f:
            out = f.read()
        secs = time.monotonic() - job["t0"]
        if code == 0 and "\nDone " in out:
            tally.record(job["name"], "pass", seconds=secs)
        else:
            why = "timed out" if code is None else "exited %s" % code
            tally.record(job["name"], "fail", "%s (crash input and log in "
                         "the temporary directory: run.py -k)\n%s"
                         % (why, out[-6000:]), secs)


# (b) integration tests

def integration_tests(filters):
    """{module: [test ids]} of the selected tests, in file order."""
    loader = unittest.TestLoader()
    loader.sortTestMethodsUsing = None
    mods = {}
    errors = []
    for path in sorted(glob.glob(os.path.join(HERE, "test_*.py"))):
        mod = os.path.basename(path)[:-3]
        try:
            suite = loader.loadTestsFromName(mod)
        except Exception as e:
            errors.append((mod, "cannot load %s: %s" % (mod, e)))
            continue
        ids = [t.id() for t in _flat(suite)]
        for t in _flat(suite):
            # loader failures come back as tests that raise
            if type(t).__name__ == "_FailedTest":
                errors.append((t.id(), "cannot load %s" % mod))
        ids = [i for i in ids if selected(i, filters) and
               not i.startswith("unittest.loader")]
        if ids:
            mods[mod] = ids
    return mods, errors


def _flat(suite):
    for t in suite:
        if isinstance(t, unittest.TestSuite):
            yield from _flat(t)
        else:
            yield t


def start_module(mod, ids, env, workdir):
    results = os.path.join(workdir, mod + ".results")
    outfile = os.path.join(workdir, mod + ".out")
    out = open(outfile, "wb")
    # a new process group so that a hung module and every process it
    # started (imaprelayd and its children) can be killed together
    proc = subprocess.Popen([sys.executable, "-m", "lib.runner", results,
                             str(TEST_TIMEOUT)] + ids, cwd=HERE, env=env,
                            stdin=subprocess.DEVNULL, stdout=out,
                            stderr=subprocess.STDOUT, start_new_session=True)
    out.close()
    limit = TEST_TIMEOUT * (len(ids) + 1) + 60
    return {"mod": mod, "ids": ids, "proc": proc, "results": results,
            "out": outfile, "deadline": time.monotonic() + limit,
            "seen": set(), "pos": 0}


def drain_results(job, tally):
    try:
        with open(job["results"]) as f:
            f.seek(job["pos"])
            data = f.read()
    except OSError:
        return
    # only complete lines
    end = data.rfind("\n")
    if end < 0:
        return
    job["pos"] += len(data[:end + 1].encode())
    for line in data[:end + 1].splitlines():
        r = json.loads(line)
        job["seen"].add(r["id"])
        tally.record(r["id"], r["status"], r["detail"], r["seconds"])


def finish_module(job, tally, killed):
    drain_results(job, tally)
    try:
        with open(job["out"], errors="replace") as f:
            out = f.read()
    except OSError:
        out = ""
    code = job["proc"].returncode
    for tid in job["ids"]:
        if tid not in job["seen"]:
            why = "module runner timed out" if killed else \
                "module runner exited %s before this test reported" % code
            tally.record(tid, "fail", "%s\n--- runner output\n%s"
                         % (why, out[-4000:]))
    if code not in (0, None) and not killed and job["ids"] and \
            job["seen"] >= set(job["ids"]):
        tally.record(job["mod"] + " (runner)", "fail",
                     "runner exited %s\n%s" % (code, out[-4000:]))


def kill_group(proc):
    try:
        os.killpg(proc.pid, signal.SIGKILL)
    except OSError:
        pass
    proc.wait()


def run_integration(mods, tally, jobs, workdir):
    env = dict(os.environ)
    dv = None
    try:
        dv = dovecot.start(tmpdir=os.path.join(workdir, "dovecot"))
        env[dovecot.ENV] = dv.to_env()
    except dovecot.SkipDovecot as e:
        for ids in mods.values():
            for tid in ids:
                tally.record(tid, "skip", "no Dovecot backend: %s" % e)
        return
    env[case.TMP_ENV] = os.path.join(workdir, "tests")
    env["PYTHONDONTWRITEBYTECODE"] = "1"
    pending = list(mods.items())
    running = []
    try:
        while pending or running:
            while pending and len(running) < jobs:
                mod, ids = pending.pop(0)
                running.append(start_module(mod, ids, env, workdir))
            time.sleep(0.05)
            for job in list(running):
                drain_results(job, tally)
                killed = False
                if job["proc"].poll() is None:
                    if time.monotonic() < job["deadline"]:
                        continue
                    killed = True
                    kill_group(job["proc"])
                else:
                    # whatever the module left behind in its group
                    try:
                        os.killpg(job["proc"].pid, signal.SIGKILL)
                    except OSError:
                        pass
                running.remove(job)
                finish_module(job, tally, killed)
    finally:
        for job in running:
            kill_group(job["proc"])
        if dv is not None:
            dv.stop()


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("-j", "--jobs", type=int,
                    default=int(os.environ.get("REGRESS_JOBS", "1")),
                    help="integration modules run in parallel")
    ap.add_argument("-v", "--verbose", action="store_true",
                    help="print failure details as they happen")
    ap.add_argument("-k", "--keep", action="store_true",
                    help="keep the temporary directory")
    ap.add_argument("names", nargs="*")
    args = ap.parse_args()
    tally = Tally(args.verbose)

    def on_signal(signum, frame):
        raise KeyboardInterrupt
    signal.signal(signal.SIGTERM, on_signal)

    workdir = tempfile.mkdtemp(prefix="imaprelayd-regress-")
    os.chmod(workdir, 0o755)
    if args.keep:
        os.environ["KEEP_TMP"] = "1"
    t0 = time.monotonic()
    interrupted = False
    try:
        for path in unit_binaries():
            if selected(os.path.basename(path), args.names):
                run_unit(path, tally)
        run_fuzz(args.names, tally, workdir)
        mods, errors = integration_tests(args.names)
        for name, detail in errors:
            tally.record(name, "fail", detail)
        if mods:
            run_integration(mods, tally, max(1, args.jobs), workdir)
    except KeyboardInterrupt:
        interrupted = True
        tally.record("run.py", "fail", "interrupted")
    finally:
        if tally.failures and not interrupted:
            print("\n==== failures ====")
            for name, detail in tally.failures:
                print("\n---- %s\n%s" % (name, detail.rstrip()))
            print()
        if args.keep or (tally.failed and os.environ.get("KEEP_TMP")):
            print("temporary files kept in %s" % workdir)
        else:
            shutil.rmtree(workdir, ignore_errors=True)
        print("(%.0fs)" % (time.monotonic() - t0))
        print("%d passed, %d failed, %d skipped"
              % (tally.passed, tally.failed, tally.skipped), flush=True)
    return 1 if tally.failed else 0


if __name__ == "__main__":
    sys.exit(main())
