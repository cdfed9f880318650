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
 * libFuzzer target for sasl.c: the client's AUTHENTICATE lines go
 * through base64_decode and then one of the mechanism parsers.  The
 * input is used as base64 text, as a decoded PLAIN message, as a
 * decoded CRAM-MD5 response and as an XOAUTH2 or OAUTHBEARER message.  Base64 is strict, so every
 * accepted text must be the one encoding of what it decodes to.
 */

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "sasl.h"

int	LLVMFuzzerTestOneInput(const uint8_t *, size_t);

#define REQUIRE(c)	do { if (!(c)) abort(); } while (0)

static void
fuzz_base64(const uint8_t *data, size_t size)
{
	unsigned char	*dst;
	char		*enc;
	size_t		 dstlen = size / 4 * 3, enclen = size + 1;
	int		 n, m;

	if ((dst = malloc(dstlen + 1)) == NULL ||
	    (enc = malloc(enclen)) == NULL)
		abort();
	n = base64_decode((const char *)data, size, dst, dstlen);
	REQUIRE(n >= -1 && (n == -1 || (size_t)n <= dstlen));
	if (n >= 0) {
		REQUIRE(size % 4 == 0 && (size_t)n + 2 >= dstlen);
		m = base64_encode(dst, n, enc, enclen);
		REQUIRE(m >= 0 && (size_t)m == size &&
		    memcmp(enc, data, size) == 0 && enc[m] == '\0');
		/* one byte too few: refused, never overrun */
		if (n > 0)
			REQUIRE(base64_decode((const char *)data, size, dst,
			    n - 1) == -1);
	}
	free(dst);
	free(enc);
}

/* encode then decode: the identity */
static void
fuzz_roundtrip(const uint8_t *data, size_t size)
{
	unsigned char	*dec;
	char		*enc;
	size_t		 enclen = (size + 2) / 3 * 4 + 1;
	int		 m, n;

	if ((enc = malloc(enclen)) == NULL || (dec = malloc(size + 1)) == NULL)
		abort();
	REQUIRE(base64_encode(data, size, enc, enclen - 1) == -1);
	m = base64_encode(data, size, enc, enclen);
	REQUIRE(m >= 0 && (size_t)m == enclen - 1 && strlen(enc) == (size_t)m);
	n = base64_decode(enc, m, dec, size);
	REQUIRE(n >= 0 && (size_t)n == size && memcmp(dec, data, size) == 0);
	free(enc);
	free(dec);
}

static void
fuzz_plain(const uint8_t *data, size_t size)
{
	struct sasl_plain	 sp;
	const uint8_t		*end = data + size;

	if (sasl_plain_parse(data, size, &sp) == -1)
		return;
	REQUIRE(sp.authzid == (const char *)data);
	REQUIRE(sp.user == sp.authzid + sp.authzid_len + 1 &&
	    sp.pass == sp.user + sp.user_len + 1);
	REQUIRE((const uint8_t *)sp.pass + sp.pass_len == end);
	REQUIRE(sp.user_len > 0);
	REQUIRE(data[sp.authzid_len] == '\0' &&
	    sp.user[sp.user_len] == '\0');
	REQUIRE(memchr(sp.authzid, '\0', sp.authzid_len) == NULL &&
	    memchr(sp.user, '\0', sp.user_len) == NULL &&
	    memchr(sp.pass, '\0', sp.pass_len) == NULL);
}

static void
fuzz_cram(const uint8_t *data, size_t size)
{
	const char	*user, *digest;
	size_t		 userlen, i;

	if (sasl_cram_md5_parse(data, size, &user, &userlen, &digest) == -1)
		return;
	REQUIRE(user == (const char *)data && userlen > 0 &&
	    userlen + 33 == size);
	REQUIRE(user[userlen] == ' ' && digest == user + userlen + 1);
	REQUIRE(memchr(user, '\0', userlen) == NULL);
	for (i = 0; i < 32; i++)
		REQUIRE(strchr("0123456789abcdefABCDEF", digest[i]) != NULL &&
		    digest[i] != '\0');
}

/* the user and the token lie in the message; made again, read the same */
static void
check_oauth(const struct sasl_oauth *so, const uint8_t *msg, size_t size,
    int bearer)
{
	struct sasl_oauth	 again;
	unsigned char		*buf;
	size_t			 len = size * 3 + 64, i;
	int			 n;

	REQUIRE(so->user_len > 0 && so->token_len > 0);
	REQUIRE((const uint8_t *)so->user >= msg &&
	    (const uint8_t *)so->user + so->user_len <= msg + size);
	REQUIRE((const uint8_t *)so->token >= msg &&
	    (const uint8_t *)so->token + so->token_len <= msg + size);
	for (i = 0; i < so->user_len; i++)
		REQUIRE((unsigned char)so->user[i] >= 0x20 &&
		    so->user[i] != 0x7f);
	if ((buf = malloc(len)) == NULL)
		abort();
	if (bearer)
		n = sasl_oauthbearer_make((char *)buf, len, so->user,
		    so->user_len, so->token, so->token_len);
	else
		n = sasl_xoauth2_make((char *)buf, len, so->user, so->user_len,
		    so->token, so->token_len);
	REQUIRE(n > 0);
	if (bearer)
		REQUIRE(sasl_oauthbearer_parse(buf, n, &again) == 0);
	else
		REQUIRE(sasl_xoauth2_parse(buf, n, &again) == 0);
	REQUIRE(again.user_len == so->user_len &&
	    memcmp(again.user, so->user, so->user_len) == 0 &&
	    again.token_len == so->token_len &&
	    memcmp(again.token, so->token, so->token_len) == 0);
	free(buf);
}

static void
fuzz_oauth(const uint8_t *data, size_t size)
{
	struct sasl_oauth	 so;
	unsigned char		*copy;

	if (sasl_xoauth2_parse(data, size, &so) == 0)
		check_oauth(&so, data, size, 0);
	/* OAUTHBEARER decodes the user in place */
	if ((copy = malloc(size + 1)) == NULL)
		abort();
	memcpy(copy, data, size);
	if (sasl_oauthbearer_parse(copy, size, &so) == 0)
		check_oauth(&so, copy, size, 1);
	free(copy);
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	fuzz_base64(data, size);
	fuzz_roundtrip(data, size);
	fuzz_plain(data, size);
	fuzz_cram(data, size);
	fuzz_oauth(data, size);
	return (0);
}
