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
# Install what `make regress` and `make demo` need.  On Debian, as root,
# missing packages are installed with apt-get; elsewhere we only say what
# to install and carry on.  Also creates the daemon's unprivileged user.
# Idempotent, and quick when everything is present.

# clang and libclang-rt-dev (libFuzzer, ASan, UBSan) for the fuzz targets;
# systemd for systemd-analyze (test_service: the unit is verified and
# its exposure measured; nothing is started); iproute2 for ip, which
# test_limits uses to give lo IPv6 addresses of one /64; haproxy, in
# front of two imaprelayd in test_proxyproto (send-proxy-v2)
PKGS="gcc make pkg-config libbsd-dev libevent-dev libtls-dev \
libcurl4-openssl-dev dovecot-imapd python3 curl openssl mandoc procps \
clang libclang-rt-dev libssl-dev systemd iproute2 haproxy"
DAEMON_USER=_imaprelayd

is_root() {
	[ "$(id -u)" -eq 0 ]
}

is_debian() {
	[ -f /etc/debian_version ] && command -v dpkg >/dev/null 2>&1 &&
	    command -v apt-get >/dev/null 2>&1
}

# dpkg -s also knows removed packages that left their configuration
installed() {
	dpkg -s "$1" 2>/dev/null | grep -q '^Status: install ok installed'
}

missing_pkgs() {
	for p in $PKGS; do
		installed "$p" || printf '%s ' "$p"
	done
}

install_pkgs() {
	missing=$(missing_pkgs)
	[ -z "$missing" ] && return 0
	if ! is_root; then
		echo "deps: not root; please install: $missing" >&2
		return 0
	fi
	echo "deps: installing $missing"
	export DEBIAN_FRONTEND=noninteractive
	# dovecot's package would start a system instance; the tests run
	# their own on free ports.  policy-rc.d keeps services from being
	# started during the installation (containers, CI).
	policy=
	if [ ! -e /usr/sbin/policy-rc.d ]; then
		policy=/usr/sbin/policy-rc.d
		printf '#!/bin/sh\nexit 101\n' > "$policy" && chmod 755 "$policy"
	fi
	apt-get -qq update >/dev/null ||
	    echo "deps: apt-get update failed" >&2
	# shellcheck disable=SC2086
	apt-get -qq -y --no-install-recommends install $missing >/dev/null ||
	    echo "deps: apt-get install failed for: $missing" >&2
	[ -n "$policy" ] && rm -f "$policy"
	still=$(missing_pkgs)
	[ -n "$still" ] && echo "deps: still missing: $still" >&2
	return 0
}

advise() {
	echo "deps: not Debian; make sure these are installed:" >&2
	echo "  a C compiler, make, pkg-config, libbsd (Linux only)," >&2
	echo "  libevent, libtls (LibreSSL or libretls), libcurl," >&2
	echo "  dovecot (imapd), python3, curl, openssl, mandoc" >&2
}

make_user() {
	is_root || return 0
	[ -d /var/empty ] || { mkdir -p /var/empty && chmod 755 /var/empty; }
	id "$DAEMON_USER" >/dev/null 2>&1 && return 0
	echo "deps: creating user $DAEMON_USER"
	if command -v useradd >/dev/null 2>&1; then
		useradd -r -M -d /var/empty -s /usr/sbin/nologin \
		    -c "imaprelayd unprivileged user" "$DAEMON_USER" ||
		    echo "deps: useradd $DAEMON_USER failed" >&2
	elif command -v adduser >/dev/null 2>&1; then
		adduser -S -H -h /var/empty -s /sbin/nologin \
		    "$DAEMON_USER" ||
		    echo "deps: adduser $DAEMON_USER failed" >&2
	else
		echo "deps: please create the user $DAEMON_USER" >&2
	fi
}

if is_debian; then
	install_pkgs
else
	advise
fi
if is_root; then
	make_user
elif ! id "$DAEMON_USER" >/dev/null 2>&1; then
	echo "deps: user $DAEMON_USER missing; the daemon run as root needs it" >&2
fi
exit 0
