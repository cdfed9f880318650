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

"""Runs integration tests of one module in a child of regress/run.py.

    python3 -m lib.runner RESULTS_FILE TIMEOUT TEST_ID...

(cwd regress/).  Writes one JSON object per test to RESULTS_FILE:
{"id", "status": pass|fail|skip, "detail", "seconds"}.  Each test is
limited to TIMEOUT seconds (or its class's TIME_LIMIT, if longer) by
SIGALRM, which raises in the test so its cleanups still stop the daemon
it started.
"""

import json
import signal
import sys
import time
import traceback
import unittest


class TestTimeout(BaseException):
    pass


def _alarm(signum, frame):
    raise TestTimeout("test took longer than its time limit")


class Result(unittest.TestResult):
    def __init__(self):
        super().__init__()
        self.outcomes = []   # (status, detail)

    def _detail(self, test, err):
        text = self._exc_info_to_string(err, test)
        tails = getattr(test, "log_tails", None)
        if tails:
            try:
                extra = tails()
            except Exception as e:      # the report must not fail
                extra = "(log tails unavailable: %s)" % e
            if extra:
                text += "\n" + extra
        return text

    def addSuccess(self, test):
        super().addSuccess(test)
        self.outcomes.append(("pass", ""))

    def addFailure(self, test, err):
        super().addFailure(test, err)
        self.outcomes.append(("fail", self._detail(test, err)))

    def addError(self, test, err):
        super().addError(test, err)
        self.outcomes.append(("fail", self._detail(test, err)))

    def addSkip(self, test, reason):
        super().addSkip(test, reason)
        self.outcomes.append(("skip", reason))

    def addExpectedFailure(self, test, err):
        super().addExpectedFailure(test, err)
        self.outcomes.append(("pass", "expected failure"))

    def addUnexpectedSuccess(self, test):
        super().addUnexpectedSuccess(test)
        self.outcomes.append(("fail", "unexpected success"))

    def addSubTest(self, test, subtest, err):
        super().addSubTest(test, subtest, err)
        if err is not None:
            status = "skip" if issubclass(err[0], unittest.SkipTest) \
                else "fail"
            self.outcomes.append((status, "%s: %s"
                                  % (subtest, self._detail(test, err))))


def _verdict(outcomes):
    """One status for a test: a failure anywhere (cleanups included)
    wins, then success, then skip."""
    if not outcomes:
        return "fail", "no result recorded"
    fails = [d for s, d in outcomes if s == "fail"]
    if fails:
        return "fail", "\n".join(fails)
    if any(s == "pass" for s, _ in outcomes):
        return "pass", ""
    return "skip", outcomes[0][1]


def _flat(suite):
    for t in suite:
        if isinstance(t, unittest.TestSuite):
            yield from _flat(t)
        else:
            yield t


def main(argv):
    results_path, timeout, ids = argv[0], int(argv[1]), argv[2:]
    out = open(results_path, "a")

    def emit(tid, status, detail, seconds):
        out.write(json.dumps({"id": tid, "status": status,
                              "detail": detail,
                              "seconds": round(seconds, 3)}) + "\n")
        out.flush()

    signal.signal(signal.SIGALRM, _alarm)
    loader = unittest.TestLoader()
    tests = []
    for tid in ids:
        try:
            tests.extend(_flat(loader.loadTestsFromName(tid)))
        except Exception:
            emit(tid, "fail", traceback.format_exc(), 0)
    by_class = {}
    for t in tests:
        by_class.setdefault(type(t), []).append(t)
    for cls, members in by_class.items():
        t0 = time.monotonic()
        try:
            signal.alarm(timeout)
            cls.setUpClass()
            signal.alarm(0)
        except unittest.SkipTest as e:
            signal.alarm(0)
            for t in members:
                emit(t.id(), "skip", str(e), 0)
            continue
        except BaseException:
            signal.alarm(0)
            detail = "setUpClass failed:\n" + traceback.format_exc()
            for t in members:
                emit(t.id(), "fail", detail, time.monotonic() - t0)
            continue
        for t in members:
            res = Result()
            t0 = time.monotonic()
            # a test class may need longer (TIME_LIMIT, in seconds)
            signal.alarm(max(timeout, int(getattr(t, "TIME_LIMIT", 0))))
            try:
                t.run(res)
            except TestTimeout:
                res.outcomes.append(("fail", "timed out after %ds "
                                     "(outside the test body)" % timeout))
            finally:
                signal.alarm(0)
            status, detail = _verdict(res.outcomes)
            emit(t.id(), status, detail, time.monotonic() - t0)
        try:
            signal.alarm(timeout)
            cls.tearDownClass()
        except BaseException:
            pass
        finally:
            signal.alarm(0)
    out.close()
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
