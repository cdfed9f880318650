/*
 * Copyright (c) 2025 The imaprelayd authors
 *
 * Permission to use, copy, modify, and distribute this software for any
 * purpose with or without fee is hereby granted, provided that the above
 * copyright notice and this permission notice appear in all copies.
 *
 * THE SOFTWARE IS PROVIDED "AS IS" AND THE AUTHOR DISCLAIMS ALL WARRANTIES
 * WITH REGARD TO THIS SOFTWARE INCLUDING ALL IMPLIED WARRANTIES OF
 * MERCHANTABILITY AND FITNESS. IN NO EVENT SHALL THE AUTHOR BE LIABLE FOR
 * ANY SPECIAL, DIRECT, INDIRECT, OR CONSEQUENTIAL DAMAGES OR ANY DAMAGES
 * WHATSOEVER RESULTING FROM LOSS OF USE, DATA OR PROFITS, WHETHER IN AN
 * ACTION OF CONTRACT, NEGLIGENCE OR OTHER TORTIOUS ACTION, ARISING OUT OF
 * OR IN CONNECTION WITH THE USE OR PERFORMANCE OF THIS SOFTWARE.
 */

/*
 * SASL message decoding for the mechanisms the proxy terminates itself.
 * Everything here works on client bytes: lengths are checked before
 * every access and nothing is assumed to be NUL-terminated.
 */

#include <limits.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "sasl.h"

static const char b64chars[] =
    "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";

static int
b64value(unsigned char c)
{
	if (c >= 'A' && c <= 'Z')
		return (c - 'A');
	if (c >= 'a' && c <= 'z')
		return (c - 'a' + 26);
	if (c >= '0' && c <= '9')
		return (c - '0' + 52);
	if (c == '+')
		return (62);
	if (c == '/')
		return (63);
	return (-1);
}

/*
 * Decode one group of four characters into up to three bytes; padding
 * is allowed only in the last group, and the bits it drops must be zero
 * so that every byte string has exactly one accepted encoding.
 */
static int
b64quad(const unsigned char *s, int last, unsigned char *out)
{
	int	 v[4], i, pad = 0;

	if (last && s[3] == '=')
		pad = s[2] == '=' ? 2 : 1;
	for (i = 0; i < 4 - pad; i++)
		if ((v[i] = b64value(s[i])) == -1)
			return (-1);
	if (pad == 2 && (v[1] & 0x0f) != 0)
		return (-1);
	if (pad == 1 && (v[2] & 0x03) != 0)
		return (-1);
	out[0] = v[0] << 2 | v[1] >> 4;
	if (pad < 2)
		out[1] = (v[1] & 0x0f) << 4 | v[2] >> 2;
	if (pad < 1)
		out[2] = (v[2] & 0x03) << 6 | v[3];
	return (3 - pad);
}

int
base64_decode(const char *src, size_t srclen, unsigned char *dst,
    size_t dstlen)
{
	const unsigned char	*s = (const unsigned char *)src;
	unsigned char		 out[3];
	size_t			 i, n = 0;
	int			 r;

	if (srclen % 4 != 0 || srclen / 4 * 3 > INT_MAX)
		return (-1);
	for (i = 0; i < srclen; i += 4) {
		if ((r = b64quad(s + i, i + 4 == srclen, out)) == -1 ||
		    (size_t)r > dstlen - n) {
			explicit_bzero(out, sizeof(out));
			return (-1);
		}
		memcpy(dst + n, out, r);
		n += r;
	}
	explicit_bzero(out, sizeof(out));
	return (n);
}

int
base64_encode(const unsigned char *src, size_t srclen, char *dst,
    size_t dstlen)
{
	size_t		 i, n = 0;
	uint32_t	 v;

	if (srclen > (size_t)INT_MAX / 4 * 3 - 3 ||
	    dstlen < (srclen + 2) / 3 * 4 + 1)
		return (-1);
	for (i = 0; i + 2 < srclen; i += 3) {
		v = (uint32_t)src[i] << 16 | src[i + 1] << 8 | src[i + 2];
		dst[n++] = b64chars[v >> 18];
		dst[n++] = b64chars[(v >> 12) & 0x3f];
		dst[n++] = b64chars[(v >> 6) & 0x3f];
		dst[n++] = b64chars[v & 0x3f];
	}
	if (i < srclen) {
		v = (uint32_t)src[i] << 16;
		if (i + 1 < srclen)
			v |= src[i + 1] << 8;
		dst[n++] = b64chars[v >> 18];
		dst[n++] = b64chars[(v >> 12) & 0x3f];
		dst[n++] = i + 1 < srclen ? b64chars[(v >> 6) & 0x3f] : '=';
		dst[n++] = '=';
	}
	dst[n] = '\0';
	return (n);
}

/*
 * RFC 4616: [authzid] NUL authcid NUL passwd.  A third NUL is refused
 * since the password would be cut short at it somewhere downstream.  An
 * empty password is passed on: the auth service is the one to refuse it.
 */
int
sasl_plain_parse(const unsigned char *msg, size_t len, struct sasl_plain *sp)
{
	const unsigned char	*nul1, *nul2;

	memset(sp, 0, sizeof(*sp));
	if ((nul1 = memchr(msg, '\0', len)) == NULL)
		return (-1);
	nul2 = memchr(nul1 + 1, '\0', len - (nul1 + 1 - msg));
	if (nul2 == NULL || nul2 == nul1 + 1 ||
	    memchr(nul2 + 1, '\0', len - (nul2 + 1 - msg)) != NULL)
		return (-1);
	sp->authzid = (const char *)msg;
	sp->authzid_len = nul1 - msg;
	sp->user = (const char *)nul1 + 1;
	sp->user_len = nul2 - (nul1 + 1);
	sp->pass = (const char *)nul2 + 1;
	sp->pass_len = len - (nul2 + 1 - msg);
	return (0);
}

int
sasl_cram_md5_salt(char *buf, size_t len, const char *server_name)
{
	int	 n;

	n = snprintf(buf, len, "<%u.%lld@%s>", arc4random(),
	    (long long)time(NULL), server_name);
	if (n < 0 || (size_t)n >= len)
		return (-1);
	return (n);
}

/*
 * RFC 2195: "user SP digest", the digest 32 hex digits.  The digest is
 * taken from the end so a user name may hold spaces.
 */
int
sasl_cram_md5_parse(const unsigned char *msg, size_t len, const char **user,
    size_t *userlen, const char **digest)
{
	size_t	 i, ulen;

	if (len < 34)
		return (-1);
	ulen = len - 33;
	if (msg[ulen] != ' ' || memchr(msg, '\0', ulen) != NULL)
		return (-1);
	for (i = ulen + 1; i < len; i++)
		if (strchr("0123456789abcdefABCDEF", msg[i]) == NULL ||
		    msg[i] == '\0')
			return (-1);
	*user = (const char *)msg;
	*userlen = ulen;
	*digest = (const char *)msg + ulen + 1;
	return (0);
}
