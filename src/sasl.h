/*
 * sasl: decoding of the SASL mechanisms the proxy speaks itself
 * (RFC 4616 PLAIN, draft LOGIN, RFC 2195 CRAM-MD5, RFC 4422 EXTERNAL)
 * and base64 (RFC 4648, strict: no whitespace, padding required).
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

#endif /* SASL_H */
