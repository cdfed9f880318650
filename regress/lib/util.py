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

"""Small helpers shared by the regress harness."""

import os
import re
import socket
import subprocess
import time


def free_port(host="127.0.0.1"):
    """A port nobody listens on right now (bind to 0, take the number)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind((host, 0))
        return s.getsockname()[1]


def port_accepts(host, port, timeout=1.0):
    try:
        with socket.create_connection((host, port), timeout=timeout):
            return True
    except OSError:
        return False


def wait_until(pred, timeout, interval=0.02, what="condition"):
    """Poll pred() until it returns something true; return that value.
    Raises TimeoutError after timeout seconds."""
    deadline = time.monotonic() + timeout
    while True:
        v = pred()
        if v:
            return v
        if time.monotonic() >= deadline:
            raise TimeoutError("timed out after %.1fs waiting for %s"
                               % (timeout, what))
        time.sleep(interval)


def processes():
    """[(pid, ppid, user, args)] of every process, from ps."""
    out = subprocess.run(["ps", "-e", "-o", "pid=,ppid=,user:32=,args="],
                         capture_output=True, text=True, check=True).stdout
    procs = []
    for line in out.splitlines():
        parts = line.split(None, 3)
        if len(parts) < 3:
            continue
        if len(parts) == 3:
            parts.append("")
        procs.append((int(parts[0]), int(parts[1]), parts[2], parts[3]))
    return procs


def descendants(pid):
    """Every process below pid: [(pid, ppid, user, args)]."""
    procs = processes()
    children = {}
    for p in procs:
        children.setdefault(p[1], []).append(p)
    out, todo = [], [pid]
    while todo:
        for c in children.get(todo.pop(), []):
            out.append(c)
            todo.append(c[0])
    return out


def pid_alive(pid):
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    # a zombie is not alive for our purposes
    try:
        with open("/proc/%d/stat" % pid) as f:
            return f.read().rsplit(")", 1)[1].split()[0] != "Z"
    except OSError:
        return True


def tcp_entries():
    """[(local_port, remote_port, tx_queue, rx_queue, inode)] of every
    TCP socket (/proc/net/tcp{,6})."""
    out = []
    for name in ("/proc/net/tcp", "/proc/net/tcp6"):
        try:
            with open(name) as f:
                lines = f.readlines()[1:]
        except OSError:
            continue
        for line in lines:
            f = line.split()
            tx, rx = (int(x, 16) for x in f[4].split(":"))
            out.append((int(f[1].rsplit(":", 1)[1], 16),
                        int(f[2].rsplit(":", 1)[1], 16), tx, rx, f[9]))
    return out


def _socket_inodes(local_port, remote_port):
    """inodes of TCP sockets local_port <-> remote_port (/proc/net/tcp)."""
    return {ino for lp, rp, _, _, ino in tcp_entries()
            if lp == local_port and rp == remote_port}


def proc_status(pid, field):
    """A kB value of /proc/PID/status (VmRSS, VmHWM), None if gone."""
    try:
        with open("/proc/%d/status" % pid) as f:
            for line in f:
                if line.startswith(field + ":"):
                    return int(line.split()[1])
    except OSError:
        return None
    return None


def fd_count(pid):
    """Open descriptors of pid (/proc/PID/fd)."""
    return len(os.listdir("/proc/%d/fd" % pid))


def pids_holding_connection(local_port, remote_port, candidates):
    """Which of the candidate pids hold the TCP socket whose local port
    is local_port and peer port remote_port (Linux /proc only)."""
    inodes = _socket_inodes(local_port, remote_port)
    if not inodes:
        return []
    want = {"socket:[%s]" % i for i in inodes}
    found = []
    for pid in candidates:
        d = "/proc/%d/fd" % pid
        try:
            fds = os.listdir(d)
        except OSError:
            continue
        for fd in fds:
            try:
                if os.readlink(os.path.join(d, fd)) in want:
                    found.append(pid)
                    break
            except OSError:
                pass
    return found


def tail(text, n=40):
    lines = text.splitlines()
    return "\n".join(lines[-n:])


_pct = re.compile(rb"%([0-9A-Fa-f]{2})")


def pct_decode(value):
    """nginx auth_http unescaping: only %XX sequences; '+' stays."""
    if isinstance(value, str):
        value = value.encode("latin-1")
    return _pct.sub(lambda m: bytes([int(m.group(1), 16)]), value)


def pct_encode(value):
    """nginx NGX_ESCAPE_MAIL_AUTH: CTLs, SP and % as uppercase %XX."""
    if isinstance(value, str):
        value = value.encode("utf-8")
    out = bytearray()
    for b in value:
        if b <= 0x20 or b == 0x25:
            out += b"%%%02X" % b
        else:
            out.append(b)
    return bytes(out)
