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

"""A stub IMAP backend for the benchmark: as little work per session as
an IMAP server can do, so that a login run measures the proxy and not
Dovecot (which spends tens of milliseconds of CPU on each login here:
an imap process per session, its auth and index work).

    stubimap.py --port P [--procs K] [--message-mib M]

Any LOGIN or AUTHENTICATE PLAIN succeeds (the proxy asked the auth
service already); SELECT shows one message; FETCH sends it, an M MiB
text kept in memory; LOGOUT ends the session.  Literals, synchronising
or not, are read and dropped.  K processes share one listening socket,
each an asyncio loop.  Prints "listening" when ready; SIGTERM stops
every process.
"""

import argparse
import asyncio
import ctypes
import os
import re
import signal
import socket
import sys

CAPS = b"IMAP4rev1 SASL-IR LITERAL+ ID AUTH=PLAIN"
GREETING = b"* OK [CAPABILITY " + CAPS + b"] stub ready\r\n"
LITERAL = re.compile(rb"\{(\d+)(\+?)\}$")
PR_SET_PDEATHSIG = 1


def message(mib):
    line = b"x" * 76 + b"\r\n"
    return (b"Subject: big\r\n\r\n" +
            line * (max(1, mib) * 1024 * 1024 // len(line)))


async def read_command(reader, writer):
    """One command, its literals read and replaced by a placeholder."""
    parts = []
    while True:
        line = await reader.readline()
        if not line:
            return None
        line = line.rstrip(b"\r\n")
        m = LITERAL.search(line)
        if not m:
            parts.append(line)
            return b"".join(parts)
        parts.append(line[:m.start()] + b'"x"')
        if not m.group(2):
            writer.write(b"+ go ahead\r\n")
        await reader.readexactly(int(m.group(1)))


SELECT = (b"* FLAGS (\\Answered \\Flagged \\Deleted \\Seen \\Draft)\r\n"
          b"* 1 EXISTS\r\n* 0 RECENT\r\n"
          b"* OK [UIDVALIDITY 1] UIDs valid\r\n"
          b"* OK [UIDNEXT 2] Predicted next UID\r\n")


async def answer(tag, name, args, reader, writer, msg):
    """Write the answer to one command; False ends the session."""
    if name == b"LOGOUT":
        writer.write(b"* BYE logging out\r\n%s OK LOGOUT completed\r\n" % tag)
        return False
    if name == b"AUTHENTICATE" and len(args.split()) < 2:
        writer.write(b"+ \r\n")                 # no initial response
        if not await reader.readline():
            return False
    if name in (b"LOGIN", b"AUTHENTICATE"):
        writer.write(b"%s OK [CAPABILITY %s] Logged in\r\n" % (tag, CAPS))
    elif name in (b"SELECT", b"EXAMINE"):
        writer.write(SELECT + b"%s OK [READ-WRITE] SELECT completed\r\n"
                     % tag)
    elif name in (b"FETCH", b"UID"):
        writer.write(b"* 1 FETCH (BODY[] {%d}\r\n" % len(msg))
        writer.write(msg)
        writer.write(b")\r\n%s OK FETCH completed\r\n" % tag)
    elif name == b"CAPABILITY":
        writer.write(b"* CAPABILITY %s\r\n%s OK done\r\n" % (CAPS, tag))
    else:
        writer.write(b"%s OK done\r\n" % tag)
    return True


async def session(reader, writer, msg):
    try:
        writer.write(GREETING)
        while True:
            cmd = await read_command(reader, writer)
            if cmd is None:
                break
            tag, _, rest = cmd.partition(b" ")
            name, _, args = rest.partition(b" ")
            if not await answer(tag, name.upper(), args, reader, writer,
                                msg):
                break
            await writer.drain()
        await writer.drain()
    except (ConnectionError, asyncio.IncompleteReadError):
        pass
    finally:
        writer.close()


async def serve(sock, msg):
    server = await asyncio.start_server(
        lambda r, w: session(r, w, msg), sock=sock)
    async with server:
        await server.serve_forever()


def child(sock, msg):
    # die with the parent, whatever killed it
    libc = ctypes.CDLL(None, use_errno=True)
    libc.prctl(PR_SET_PDEATHSIG, signal.SIGKILL)
    signal.signal(signal.SIGTERM, signal.SIG_DFL)
    signal.signal(signal.SIGINT, signal.SIG_DFL)
    try:
        asyncio.run(serve(sock, msg))
    finally:
        os._exit(0)


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--port", type=int, required=True)
    ap.add_argument("--procs", type=int, default=os.cpu_count() or 1)
    ap.add_argument("--message-mib", type=int, default=20)
    args = ap.parse_args(argv)
    msg = message(args.message_mib)
    sock = socket.socket()
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind(("127.0.0.1", args.port))
    sock.listen(4096)
    sock.setblocking(False)
    kids = []
    for _ in range(args.procs):
        pid = os.fork()
        if pid == 0:
            child(sock, msg)
        kids.append(pid)
    print("stubimap: listening on 127.0.0.1:%d, %d processes"
          % (args.port, len(kids)), flush=True)

    def stop(signum, frame):
        for pid in kids:
            try:
                os.kill(pid, signal.SIGTERM)
            except ProcessLookupError:
                pass
    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)
    for pid in kids:
        while True:
            try:
                os.waitpid(pid, 0)
                break
            except ChildProcessError:
                break
            except InterruptedError:
                continue
    return 0


if __name__ == "__main__":
    sys.exit(main())
