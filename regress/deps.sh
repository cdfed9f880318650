#!/bin/sh
#
# Install what `make regress` and `make demo` need.  On Debian, as root,
# missing packages are installed with apt-get; elsewhere we only say what
# to install and carry on.  Also creates the daemon's unprivileged user.
# Idempotent, and quick when everything is present.

PKGS="gcc make pkg-config libbsd-dev libevent-dev libtls-dev \
libcurl4-openssl-dev dovecot-imapd python3 curl openssl mandoc"
DAEMON_USER=_imaprelayd

is_root() {
	[ "$(id -u)" -eq 0 ]
}

is_debian() {
	[ -f /etc/debian_version ] && command -v dpkg >/dev/null 2>&1 &&
	    command -v apt-get >/dev/null 2>&1
}

missing_pkgs() {
	for p in $PKGS; do
		dpkg -s "$p" >/dev/null 2>&1 || printf '%s ' "$p"
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
	apt-get -qq update >/dev/null ||
	    echo "deps: apt-get update failed" >&2
	# shellcheck disable=SC2086
	apt-get -qq -y --no-install-recommends install $missing >/dev/null ||
	    echo "deps: apt-get install failed for: $missing" >&2
	# dovecot's package starts a system instance; the tests run their
	# own on free ports, so the system one only gets in the way.
	case "$missing" in
	*dovecot-imapd*)
		if command -v systemctl >/dev/null 2>&1; then
			systemctl stop dovecot >/dev/null 2>&1
			systemctl disable dovecot >/dev/null 2>&1
		fi
		;;
	esac
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
