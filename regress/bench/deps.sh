#!/bin/sh
#
# nginx with its mail module for `make bench` (Debian, as root): installed
# when missing, not started (policy-rc.d, as regress/deps.sh does).  The
# benchmark runs its own nginx on a free port and skips nginx when this
# could not install it.

MODULE=/usr/lib/nginx/modules/ngx_mail_module.so

command -v nginx >/dev/null 2>&1 && [ -f "$MODULE" ] && exit 0
if [ "$(id -u)" -ne 0 ] || ! command -v apt-get >/dev/null 2>&1; then
	echo "bench: nginx with the mail module missing; install it to" \
	    "compare (Debian: nginx-light libnginx-mod-mail)" >&2
	exit 0
fi
echo "bench: installing nginx-light libnginx-mod-mail"
export DEBIAN_FRONTEND=noninteractive
policy=
if [ ! -e /usr/sbin/policy-rc.d ]; then
	policy=/usr/sbin/policy-rc.d
	printf '#!/bin/sh\nexit 101\n' > "$policy" && chmod 755 "$policy"
fi
apt-get -qq -y --no-install-recommends install nginx-light \
    libnginx-mod-mail >/dev/null 2>&1 ||
    { apt-get -qq update >/dev/null 2>&1 &&
    apt-get -qq -y --no-install-recommends install nginx-light \
    libnginx-mod-mail >/dev/null 2>&1; } ||
    echo "bench: apt-get install nginx failed" >&2
[ -n "$policy" ] && rm -f "$policy"
exit 0
