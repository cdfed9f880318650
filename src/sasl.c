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

#include <ctype.h>
#include <limits.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
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

/*
 * OAuth 2.0 (RFC 7628, and XOAUTH2 as Google and Microsoft define it).
 */

#define KVSEP	0x01

/* RFC 6750: b64token = 1*( ALPHA / DIGIT / "-" / "." / "_" / "~" /
   "+" / "/" ) *"=" */
static int
oauth_token_ok(const unsigned char *t, size_t len)
{
	size_t	 i = 0;

	while (i < len && (isalnum(t[i]) || strchr("-._~+/", t[i]) != NULL) &&
	    t[i] != '\0')
		i++;
	if (i == 0)
		return (0);
	while (i < len && t[i] == '=')
		i++;
	return (i == len);
}

/* a user name as it goes to the auth service and a log: no controls */
static int
oauth_user_ok(const unsigned char *u, size_t len)
{
	size_t	 i;

	if (len == 0)
		return (0);
	for (i = 0; i < len; i++)
		if (u[i] < 0x20 || u[i] == 0x7f)
			return (0);
	return (1);
}

/* "auth=Bearer <token>": the scheme is case-insensitive (RFC 7235) */
static int
oauth_auth_value(const unsigned char *v, size_t len, struct sasl_oauth *so)
{
	if (len < 8 || strncasecmp((const char *)v, "Bearer ", 7) != 0 ||
	    !oauth_token_ok(v + 7, len - 7))
		return (-1);
	so->token = (const char *)v + 7;
	so->token_len = len - 7;
	return (0);
}

int
sasl_xoauth2_parse(const unsigned char *msg, size_t len,
    struct sasl_oauth *so)
{
	const unsigned char	*sep, *a;
	size_t			 alen;

	memset(so, 0, sizeof(*so));
	if (len < 5 || memcmp(msg, "user=", 5) != 0 ||
	    (sep = memchr(msg, KVSEP, len)) == NULL)
		return (-1);
	so->user = (const char *)msg + 5;
	so->user_len = sep - msg - 5;
	if (!oauth_user_ok(msg + 5, so->user_len))
		return (-1);
	a = sep + 1;
	alen = msg + len - a;
	/* "auth=Bearer token" ^A ^A, and nothing after */
	if (alen < 7 || memcmp(a, "auth=", 5) != 0 || a[alen - 1] != KVSEP ||
	    a[alen - 2] != KVSEP ||
	    oauth_auth_value(a + 5, alen - 7, so) == -1)
		return (-1);
	return (0);
}

/* saslname (RFC 5801): "=2C" is ",", "=3D" is "=", no other "=" */
static int
oauth_saslname(unsigned char *p, size_t len, size_t *outlen)
{
	size_t	 i, o = 0;

	for (i = 0; i < len; i++) {
		if (p[i] != '=') {
			p[o++] = p[i];
			continue;
		}
		if (len - i < 3)
			return (-1);
		if (p[i + 1] == '2' && (p[i + 2] == 'C' || p[i + 2] == 'c'))
			p[o++] = ',';
		else if (p[i + 1] == '3' && (p[i + 2] == 'D' ||
		    p[i + 2] == 'd'))
			p[o++] = '=';
		else
			return (-1);
		i += 2;
	}
	*outlen = o;
	return (0);
}

/* "n,a=user," or "y,a=user,": the user is decoded in place */
static int
oauth_gs2(unsigned char *msg, size_t len, size_t *hdrlen,
    struct sasl_oauth *so)
{
	unsigned char	*comma;
	size_t		 ulen;

	if (len < 2 || (msg[0] != 'n' && msg[0] != 'y') || msg[1] != ',')
		return (-1);
	if (len < 4 || memcmp(msg + 2, "a=", 2) != 0 ||
	    (comma = memchr(msg + 4, ',', len - 4)) == NULL)
		return (-1);
	*hdrlen = comma - msg + 1;
	if (oauth_saslname(msg + 4, comma - (msg + 4), &ulen) == -1 ||
	    !oauth_user_ok(msg + 4, ulen))
		return (-1);
	so->user = (const char *)msg + 4;
	so->user_len = ulen;
	return (0);
}

int
sasl_oauthbearer_parse(unsigned char *msg, size_t len, struct sasl_oauth *so)
{
	const unsigned char	*p, *end = msg + len, *kv, *eq;
	size_t			 hdrlen, klen;
	int			 seen = 0;

	memset(so, 0, sizeof(*so));
	if (oauth_gs2(msg, len, &hdrlen, so) == -1)
		return (-1);
	p = msg + hdrlen;
	if (p >= end || *p++ != KVSEP)
		return (-1);
	/* key=value ^A, until the ^A that ends the message */
	while (p < end && *p != KVSEP) {
		if ((kv = memchr(p, KVSEP, end - p)) == NULL ||
		    (eq = memchr(p, '=', kv - p)) == NULL)
			return (-1);
		for (klen = 0; p + klen < eq; klen++)
			if (!isalpha(p[klen]))
				return (-1);
		if (klen == 0)
			return (-1);
		if (klen == 4 && memcmp(p, "auth", 4) == 0) {
			if (seen++ ||
			    oauth_auth_value(eq + 1, kv - eq - 1, so) == -1)
				return (-1);
		}
		p = kv + 1;
	}
	if (!seen || p + 1 != end)
		return (-1);
	return (0);
}

int
sasl_xoauth2_make(char *buf, size_t len, const char *user, size_t ulen,
    const char *token, size_t tlen)
{
	int	 n;

	n = snprintf(buf, len, "user=%.*s\001auth=Bearer %.*s\001\001",
	    (int)ulen, user, (int)tlen, token);
	if (n < 0 || (size_t)n >= len)
		return (-1);
	return (n);
}

/* the user as a saslname: "," and "=" escaped */
int
sasl_oauthbearer_make(char *buf, size_t len, const char *user, size_t ulen,
    const char *token, size_t tlen)
{
	size_t	 o, i;
	int	 n;

	if (len < 5)
		return (-1);
	memcpy(buf, "n,a=", 4);
	o = 4;
	for (i = 0; i < ulen; i++) {
		if (len - o < 4)
			return (-1);
		if (user[i] == ',' || user[i] == '=') {
			memcpy(buf + o, user[i] == ',' ? "=2C" : "=3D", 3);
			o += 3;
		} else
			buf[o++] = user[i];
	}
	n = snprintf(buf + o, len - o, ",\001auth=Bearer %.*s\001\001",
	    (int)tlen, token);
	if (n < 0 || (size_t)n >= len - o)
		return (-1);
	return (o + n);
}
