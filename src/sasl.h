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
 * sasl: decoding of the SASL mechanisms the proxy speaks itself
 * (RFC 4616 PLAIN, draft LOGIN, RFC 2195 CRAM-MD5, RFC 4422 EXTERNAL,
 * RFC 7628 OAUTHBEARER, Google's XOAUTH2) and base64 (RFC 4648,
 * strict: no whitespace, padding required).
 */

#ifndef SASL_H
#define SASL_H

#include <stddef.h>

/*
 * -1 on invalid input or when dst is too small; else decoded length.
 * Length a multiple of 4, "=" padding required, unused bits zero.
 */
int	base64_decode(const char *, size_t, unsigned char *, size_t);
/* -1 when dst is too small; else encoded length (NUL-terminated) */
int	base64_encode(const unsigned char *, size_t, char *, size_t);

struct sasl_plain {
	const char	*authzid;	/* point into the decoded message */
	size_t		 authzid_len;
	const char	*user;
	size_t		 user_len;
	const char	*pass;
	size_t		 pass_len;
};

/*
 * "authzid\0authcid\0passwd": 0 ok, -1 malformed (not exactly two NULs)
 * or empty user.  An empty password is accepted.  The fields are not
 * NUL-terminated: use the lengths.
 */
int	sasl_plain_parse(const unsigned char *, size_t, struct sasl_plain *);

/* "<random.time@server_name>" into buf: its length, -1 if it does not fit */
int	sasl_cram_md5_salt(char *, size_t, const char *);
/*
 * "user SP digest", digest the last 32 bytes, hex of either case; user
 * non-empty, may hold SP but no NUL.  0 ok (user, userlen, digest point
 * into the message, not NUL-terminated), -1 malformed.
 */
int	sasl_cram_md5_parse(const unsigned char *, size_t,
	    const char **, size_t *, const char **);

/*
 * An OAuth 2.0 bearer token and who it is for.  user points into the
 * message (for OAUTHBEARER decoded there in place: =2C and =3D), token
 * too; neither is NUL-terminated.
 */
struct sasl_oauth {
	const char	*user;
	size_t		 user_len;
	const char	*token;
	size_t		 token_len;
};

/*
 * XOAUTH2: "user=" user ^A "auth=Bearer " token ^A ^A.
 * OAUTHBEARER (RFC 7628): gs2-header ("n" or "y", never channel
 * binding, and an authzid "a=user", required as Angie does) ^A, then
 * key=value pairs each ending in ^A, one of them "auth=Bearer token",
 * then ^A.  The token is an RFC 6750 b64token, the user has no control
 * byte.  0 ok, -1 malformed.
 */
int	sasl_xoauth2_parse(const unsigned char *, size_t, struct sasl_oauth *);
int	sasl_oauthbearer_parse(unsigned char *, size_t, struct sasl_oauth *);

/*
 * The client's message for the backend: -1 when it does not fit in
 * the buffer (1024 bytes more than user and token always fit).
 */
int	sasl_xoauth2_make(char *, size_t, const char *, size_t, const char *,
	    size_t);
int	sasl_oauthbearer_make(char *, size_t, const char *, size_t,
	    const char *, size_t);

#endif /* SASL_H */
