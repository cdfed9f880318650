#!/bin/sh
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

#
# Run imaprelayd against a throwaway Dovecot and the test auth service.
#
#   sh regress/demo.sh          start everything, show a login via curl
#   sh regress/demo.sh stop     stop what the last start left running
#
# `make demo` installs what is missing and builds ./imaprelayd first;
# this script builds nothing.

DIR=${DEMO_DIR:-/tmp/imaprelayd-demo}
PORT=${DEMO_PORT:-10143}
ROOT=$(cd "$(dirname "$0")/.." && pwd)
BIN=${IMAPRELAYD:-$ROOT/imaprelayd}

stop() {
	[ -f "$DIR/pids" ] || { echo "demo: nothing running"; return 0; }
	# imaprelayd first (it drains its children), then auth, then Dovecot
	while read -r name pid; do
		if kill -0 "$pid" 2>/dev/null; then
			echo "demo: stopping $name ($pid)"
			kill -TERM "$pid" 2>/dev/null
			i=0
			while kill -0 "$pid" 2>/dev/null && [ $i -lt 100 ]; do
				sleep 0.1
				i=$((i + 1))
			done
			kill -0 "$pid" 2>/dev/null && kill -KILL "$pid"
		fi
	done < "$DIR/pids"
	rm -rf "$DIR"
}

# wait until $1 contains a line matching $2, at most $3 tenths of a second
wait_log() {
	i=0
	while [ $i -lt "$3" ]; do
		grep -q "$2" "$1" 2>/dev/null && return 0
		sleep 0.1
		i=$((i + 1))
	done
	return 1
}

case "$1" in
stop)
	stop
	exit 0
	;;
""|start)
	;;
*)
	echo "usage: sh regress/demo.sh [start | stop]" >&2
	exit 1
	;;
esac

[ -x "$BIN" ] || { echo "demo: $BIN not built; run make demo" >&2; exit 1; }
[ -f "$DIR/pids" ] && stop
mkdir -p "$DIR" && chmod 755 "$DIR"
: > "$DIR/pids"

cd "$ROOT/regress" || exit 1

# Dovecot, as the tests run it (free port, maildirs under $DIR)
if ! python3 -c '
import sys
from lib import dovecot
try:
    d = dovecot.start(tmpdir=sys.argv[1])
except dovecot.SkipDovecot as e:
    sys.exit("demo: cannot start Dovecot: %s" % e)
print(d.port, d.pid)
' "$DIR/dovecot" > "$DIR/dovecot.info"; then
	stop
	exit 1
fi
read -r DPORT DPID < "$DIR/dovecot.info"
echo "dovecot $DPID" >> "$DIR/pids"
echo "demo: dovecot on 127.0.0.1:$DPORT (pid $DPID)"

# the auth service
APORT=$(python3 -c 'from lib import util; print(util.free_port())')
nohup python3 "$ROOT/regress/lib/authd.py" --port "$APORT" \
    --backend-port "$DPORT" --user demo:demo > "$DIR/authd.log" 2>&1 &
APID=$!
echo "authd $APID" >> "$DIR/pids"
if ! wait_log "$DIR/authd.log" listening 100; then
	echo "demo: the auth service did not start:" >&2
	cat "$DIR/authd.log" >&2
	stop
	exit 1
fi
echo "demo: auth service on http://127.0.0.1:$APORT/auth (pid $APID)"

# imaprelayd
python3 -c '
import sys
from lib import daemon
sys.stdout.write(daemon.make_config(int(sys.argv[1]), auth_url=sys.argv[2],
                                    isolation="connection"))
' "$PORT" "http://127.0.0.1:$APORT/auth" > "$DIR/imaprelayd.conf"
if ! "$BIN" -n -f "$DIR/imaprelayd.conf"; then
	echo "demo: the generated configuration does not check" >&2
	stop
	exit 1
fi
nohup "$BIN" -d -f "$DIR/imaprelayd.conf" > "$DIR/imaprelayd.log" 2>&1 &
IPID=$!
# first in the file: stop() ends it before the services it uses
{ echo "imaprelayd $IPID"; cat "$DIR/pids"; } > "$DIR/pids.new" &&
    mv "$DIR/pids.new" "$DIR/pids"
if ! wait_log "$DIR/imaprelayd.log" startup 150; then
	echo "demo: imaprelayd did not start:" >&2
	tail -20 "$DIR/imaprelayd.log" >&2
	stop
	exit 1
fi
echo "demo: imaprelayd on 127.0.0.1:$PORT (pid $IPID)"

echo
echo "\$ curl -s imap://demo:demo@127.0.0.1:$PORT/INBOX -X 'EXAMINE INBOX'"
curl -s --max-time 20 "imap://demo:demo@127.0.0.1:$PORT/INBOX" \
    -X 'EXAMINE INBOX'
echo "(curl exit status $?)"

cat <<EOF

The demo is running.
  log in:     curl imap://demo:demo@127.0.0.1:$PORT/INBOX
  by hand:    python3 -c 'import socket,sys; s=socket.create_connection(("127.0.0.1",$PORT)); print(s.recv(512).decode())'
              or: nc 127.0.0.1 $PORT   then   a LOGIN demo demo
  the log:    tail -f $DIR/imaprelayd.log
  processes:  ps -o pid,user,args -p $IPID --ppid $IPID
  stop it:    sh regress/demo.sh stop
              (or: kill $IPID $APID $DPID)
EOF
