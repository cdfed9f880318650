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

"""CPU time and memory of a process tree, read from /proc (Linux).

CPU: a process's utime+stime, plus cutime+cstime, the time of the
children it has waited for.  Summed over every live process of a tree,
that counts each process that ever ran in it exactly once, whether it
is still alive (its own times) or was reaped by a parent in the tree
(in that parent's cutime).  A delta of two snapshots is the tree's CPU
time in between, short-lived workers included.

Memory: PSS (proportional set size, /proc/PID/smaps_rollup) shares the
pages that several processes map (the binary, libraries, copy-on-write
pages after fork) among them, so a sum over processes is the memory
the tree really costs; the sum of RSS counts those pages once per
process and overstates a forking server.
"""

import os

CLK_TCK = os.sysconf("SC_CLK_TCK")


def _children_map():
    """ppid -> [pid] for every process."""
    kids = {}
    for name in os.listdir("/proc"):
        if not name.isdigit():
            continue
        try:
            with open("/proc/%s/stat" % name) as f:
                fields = f.read().rsplit(")", 1)[1].split()
        except OSError:
            continue            # exited while we looked
        kids.setdefault(int(fields[1]), []).append(int(name))
    return kids


def tree(root):
    """root and every live process below it."""
    kids = _children_map()
    out, todo = [], [root]
    while todo:
        pid = todo.pop()
        out.append(pid)
        todo.extend(kids.get(pid, []))
    return out


def _stat_fields(pid):
    with open("/proc/%d/stat" % pid) as f:
        # the command name may hold spaces and parentheses
        return f.read().rsplit(")", 1)[1].split()


def cpu_seconds(roots):
    """user+sys seconds of the trees below roots, reaped children
    included (see the module's comment)."""
    ticks = 0
    for root in roots:
        for pid in tree(root):
            try:
                f = _stat_fields(pid)
            except OSError:
                continue
            # after ")": state=0 ... utime=11 stime=12 cutime=13 cstime=14
            ticks += sum(int(x) for x in f[11:15])
    return ticks / CLK_TCK


def _kib(path, key):
    with open(path) as f:
        for line in f:
            if line.startswith(key):
                return int(line.split()[1])
    return 0


def memory_kib(roots):
    """(PSS, RSS, number of processes) of the trees below roots, KiB."""
    pss = rss = n = 0
    for root in roots:
        for pid in tree(root):
            try:
                pss += _kib("/proc/%d/smaps_rollup" % pid, "Pss:")
                rss += _kib("/proc/%d/status" % pid, "VmRSS:")
                n += 1
            except OSError:
                continue
    return pss, rss, n
