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

"""What a process holds in memory: every readable mapping of
/proc/PID/mem searched for byte strings, as an attacker who compromised
that process (or root) would.  Needs root (ptrace access to processes
of another user) and Linux."""

import os
import sys

CHUNK = 16 * 1024 * 1024
# the sanitizers' shadow memory: terabytes reserved, never holding data
MAX_REGION = 1 << 30


def why_not():
    """None if memory can be searched here, else the reason."""
    if not sys.platform.startswith("linux"):
        return "Linux /proc/PID/mem only"
    if os.geteuid() != 0:
        return "needs root to read another user's /proc/PID/mem"
    return None


def _regions(pid):
    with open("/proc/%d/maps" % pid) as f:
        for line in f:
            parts = line.split()
            start, end = (int(x, 16) for x in parts[0].split("-"))
            name = parts[5] if len(parts) > 5 else ""
            if parts[1][0] != "r" or name in ("[vvar]", "[vsyscall]"):
                continue
            if end - start > MAX_REGION:
                continue
            yield start, end, name


def find(pid, needles):
    """{needle: [region name or "anon@address"]} for every needle found
    anywhere in pid's readable memory; a process that went away holds
    nothing."""
    found = {}
    longest = max(len(n) for n in needles)
    try:
        mem = open("/proc/%d/mem" % pid, "rb", 0)
    except (FileNotFoundError, ProcessLookupError):
        return found
    with mem:
        try:
            regions = list(_regions(pid))
        except (FileNotFoundError, ProcessLookupError):
            return found
        for start, end, name in regions:
            pos, tail = start, b""
            while pos < end:
                n = min(CHUNK, end - pos)
                try:
                    mem.seek(pos)
                    data = mem.read(n)
                except (OSError, ValueError):
                    break
                if not data:
                    break
                buf = tail + data
                for needle in needles:
                    i = buf.find(needle)
                    if i != -1:
                        where = name or "anon"
                        found.setdefault(needle, []).append(
                            "%s@%x" % (where, pos - len(tail) + i))
                tail = buf[-(longest - 1):] if longest > 1 else b""
                pos += len(data)
    return found


def token(prefix="zq"):
    """A string nothing else in any process holds: random, printable,
    safe in IMAP quoted strings and auth_http values unescaped."""
    return prefix + os.urandom(12).hex()


def describe(found):
    return "; ".join("%r at %s" % (k, ", ".join(v[:4]))
                     for k, v in found.items())
