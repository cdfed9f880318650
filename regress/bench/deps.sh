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
