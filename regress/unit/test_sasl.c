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
 * Unit tests of base64 and the SASL message parsers (src/sasl.c).
 */

#include <stdio.h>
#include <string.h>

#include "sasl.h"
#include "unit.h"

static int
dec_is(const char *in, const char *want)
{
	unsigned char	 out[64];
	int		 n;

	n = base64_decode(in, strlen(in), out, sizeof(out));
	return (n == (int)strlen(want) && memcmp(out, want, n) == 0);
}

static int
dec_bad(const char *in)
{
	unsigned char	 out[64];

	return (base64_decode(in, strlen(in), out, sizeof(out)) == -1);
}

static int
enc_is(const char *in, const char *want)
{
	char	 out[64];
	int	 n;

	n = base64_encode((const unsigned char *)in, strlen(in), out,
	    sizeof(out));
	return (n == (int)strlen(want) && strcmp(out, want) == 0);
}

static void
test_base64(void)
{
	/* RFC 4648 section 10 */
	static const char *vec[][2] = {
		{ "", "" }, { "f", "Zg==" }, { "fo", "Zm8=" },
		{ "foo", "Zm9v" }, { "foob", "Zm9vYg==" },
		{ "fooba", "Zm9vYmE=" }, { "foobar", "Zm9vYmFy" },
	};
	unsigned char	 out[8];
	char		 eout[8];
	size_t		 i;
	int		 encok = 1, decok = 1;

	for (i = 0; i < sizeof(vec) / sizeof(vec[0]); i++) {
		if (!enc_is(vec[i][0], vec[i][1]))
			encok = 0;
		if (!dec_is(vec[i][1], vec[i][0]))
			decok = 0;
	}
	CHECK("base64 encode rfc4648 vectors", encok);
	CHECK("base64 decode rfc4648 vectors", decok);
	CHECK("base64 decode binary", base64_decode("AP8A", 4, out, 8) == 3 &&
	    out[0] == 0 && out[1] == 0xff && out[2] == 0);
	CHECK("base64 decode +/", base64_decode("+/+/", 4, out, 8) == 3 &&
	    out[0] == 0xfb && out[1] == 0xff && out[2] == 0xbf);

	CHECK("base64 missing padding", dec_bad("Zg"));
	CHECK("base64 length not multiple of 4", dec_bad("Zm9vY"));
	CHECK("base64 whitespace", dec_bad("Zm9v Yg=="));
	CHECK("base64 newline", dec_bad("Zm9v\nYg="));
	CHECK("base64 bad char", dec_bad("Zm9*"));
	CHECK("base64 url alphabet", dec_bad("Zm9-"));
	CHECK("base64 padding in the middle", dec_bad("Zg==Zm9v"));
	CHECK("base64 three pads", dec_bad("Z==="));
	CHECK("base64 all pads", dec_bad("===="));
	CHECK("base64 pad then char", dec_bad("Zg=v"));
	CHECK("base64 non-zero padding bits 2", dec_bad("Zh=="));
	CHECK("base64 non-zero padding bits 1", dec_bad("Zm9="));
	CHECK("base64 NUL", base64_decode("Zm\0v", 4, out, 8) == -1);
	CHECK("base64 dst too small", base64_decode("Zm9vYmFy", 8, out, 5) ==
	    -1);
	CHECK("base64 dst exact", base64_decode("Zm9vYmFy", 8, out, 6) == 6);
	CHECK("base64 encode dst too small",
	    base64_encode((const unsigned char *)"foo", 3, eout, 4) == -1);
	CHECK("base64 encode dst exact",
	    base64_encode((const unsigned char *)"foo", 3, eout, 5) == 4 &&
	    strcmp(eout, "Zm9v") == 0);
	CHECK("base64 encode Username:", enc_is("Username:", "VXNlcm5hbWU6"));
	CHECK("base64 encode Password:", enc_is("Password:", "UGFzc3dvcmQ6"));
}

static int
plain(const char *m, size_t len, struct sasl_plain *sp)
{
	return (sasl_plain_parse((const unsigned char *)m, len, sp));
}

static void
test_plain(void)
{
	struct sasl_plain	 sp;

	CHECK("plain no authzid", plain("\0bob\0pass word", 14, &sp) == 0 &&
	    sp.authzid_len == 0 && sp.user_len == 3 &&
	    memcmp(sp.user, "bob", 3) == 0 && sp.pass_len == 9 &&
	    memcmp(sp.pass, "pass word", 9) == 0);
	CHECK("plain with authzid", plain("admin\0bob\0pw", 12, &sp) == 0 &&
	    sp.authzid_len == 5 && memcmp(sp.authzid, "admin", 5) == 0 &&
	    sp.user_len == 3 && sp.pass_len == 2);
	CHECK("plain empty password passed on", plain("\0bob\0", 5, &sp) ==
	    0 && sp.pass_len == 0);
	CHECK("plain empty user", plain("\0\0pass", 6, &sp) == -1);
	CHECK("plain one NUL", plain("bob\0pass", 8, &sp) == -1);
	CHECK("plain no NUL", plain("bobpass", 7, &sp) == -1);
	CHECK("plain three NULs", plain("\0bob\0pa\0ss", 10, &sp) == -1);
	CHECK("plain empty message", plain("", 0, &sp) == -1);
}

static void
test_cram(void)
{
	char		 salt[128];
	const char	*user, *digest, *p;
	size_t		 ulen;
	int		 n, shape;
	const char	*good = "tim b913a602c7eda7a495b4e6e7334d3890";
	const char	*spaced = "tim smith B913A602C7EDA7A495B4E6E7334D3890";

	n = sasl_cram_md5_salt(salt, sizeof(salt), "mail.example.org");
	shape = n > 0 && (size_t)n == strlen(salt) && salt[0] == '<' &&
	    salt[n - 1] == '>' && strstr(salt, "@mail.example.org>") != NULL;
	for (p = salt + 1; shape && *p != '.'; p++)
		if (*p < '0' || *p > '9')
			shape = 0;
	for (p++; shape && *p != '@'; p++)
		if (*p < '0' || *p > '9')
			shape = 0;
	CHECK("cram salt shape", shape);
	CHECK("cram salt too small", sasl_cram_md5_salt(salt, 10,
	    "mail.example.org") == -1);

	CHECK("cram parse", sasl_cram_md5_parse((const unsigned char *)good,
	    strlen(good), &user, &ulen, &digest) == 0 && ulen == 3 &&
	    memcmp(user, "tim", 3) == 0 && digest == good + 4);
	CHECK("cram parse uppercase and space in user",
	    sasl_cram_md5_parse((const unsigned char *)spaced, strlen(spaced),
	    &user, &ulen, &digest) == 0 && ulen == 9);
	CHECK("cram empty user", sasl_cram_md5_parse((const unsigned char *)
	    good + 3, strlen(good) - 3, &user, &ulen, &digest) == -1);
	CHECK("cram short digest", sasl_cram_md5_parse((const unsigned char *)
	    good, strlen(good) - 1, &user, &ulen, &digest) == -1);
	CHECK("cram non-hex digest", sasl_cram_md5_parse((const unsigned char *)
	    "tim b913a602c7eda7a495b4e6e7334d389g", 36, &user, &ulen,
	    &digest) == -1);
	CHECK("cram NUL in digest", sasl_cram_md5_parse((const unsigned char *)
	    "tim b913a602c7eda7a495b4e6e7334d389\0", 36, &user, &ulen,
	    &digest) == -1);
	CHECK("cram NUL in user", sasl_cram_md5_parse((const unsigned char *)
	    "t\0m b913a602c7eda7a495b4e6e7334d3890", 36, &user, &ulen,
	    &digest) == -1);
	CHECK("cram no space", sasl_cram_md5_parse((const unsigned char *)
	    "timxb913a602c7eda7a495b4e6e7334d3890", 36, &user, &ulen,
	    &digest) == -1);
}

/* parse a message given as a C string (it may hold \001) */
static struct sasl_oauth	 so;

static int
xo(const char *m)
{
	return (sasl_xoauth2_parse((const unsigned char *)m, strlen(m), &so));
}

static int
ob(const char *m)
{
	static unsigned char	 buf[512];

	strlcpy((char *)buf, m, sizeof(buf));
	return (sasl_oauthbearer_parse(buf, strlen(m), &so));
}

static int
so_is(const char *user, const char *token)
{
	return (so.user_len == strlen(user) &&
	    memcmp(so.user, user, so.user_len) == 0 &&
	    so.token_len == strlen(token) &&
	    memcmp(so.token, token, so.token_len) == 0);
}

static void
test_xoauth2(void)
{
	char	 buf[128];

	CHECK("xoauth2", xo("user=alice@example.com\001auth=Bearer "
	    "ya29.vF9dft4qmTc2Nvb3RlckBhdHRhdmlzdGEuY29tCg\001\001") == 0 &&
	    so_is("alice@example.com",
	    "ya29.vF9dft4qmTc2Nvb3RlckBhdHRhdmlzdGEuY29tCg"));
	CHECK("xoauth2 scheme case", xo("user=a\001auth=bearer t0k==\001\001")
	    == 0 && so_is("a", "t0k=="));
	CHECK("xoauth2 one ^A at the end", xo("user=a\001auth=Bearer t\001")
	    == -1);
	CHECK("xoauth2 trailing bytes",
	    xo("user=a\001auth=Bearer t\001\001x") == -1);
	CHECK("xoauth2 no user=", xo("usr=a\001auth=Bearer t\001\001") == -1);
	CHECK("xoauth2 empty user", xo("user=\001auth=Bearer t\001\001") ==
	    -1);
	CHECK("xoauth2 control in user",
	    xo("user=a\rb\001auth=Bearer t\001\001") == -1);
	CHECK("xoauth2 not bearer", xo("user=a\001auth=Basic t\001\001") ==
	    -1);
	CHECK("xoauth2 empty token", xo("user=a\001auth=Bearer \001\001") ==
	    -1);
	CHECK("xoauth2 space in token",
	    xo("user=a\001auth=Bearer t t\001\001") == -1);
	CHECK("xoauth2 = inside token",
	    xo("user=a\001auth=Bearer t=t\001\001") == -1);
	CHECK("xoauth2 NUL in token", sasl_xoauth2_parse((const unsigned char *)
	    "user=a\001auth=Bearer t\0t\001\001", 22, &so) == -1);
	CHECK("xoauth2 made", sasl_xoauth2_make(buf, sizeof(buf), "bob", 3,
	    "tok", 3) == 26 && memcmp(buf, "user=bob\001auth=Bearer tok"
	    "\001\001", 26) == 0 && xo(buf) == 0 && so_is("bob", "tok"));
	CHECK("xoauth2 make: too small", sasl_xoauth2_make(buf, 26, "bob", 3,
	    "tok", 3) == -1);
}

static void
test_oauthbearer(void)
{
	char	 buf[128];

	CHECK("oauthbearer (RFC 7628 example)", ob("n,a=user@example.com,"
	    "\001host=server.example.com\001port=143\001auth=Bearer "
	    "vF9dft4qmTc2Nvb3RlckBhbHRhdmlzdGEuY29tCg==\001\001") == 0 &&
	    so_is("user@example.com",
	    "vF9dft4qmTc2Nvb3RlckBhbHRhdmlzdGEuY29tCg=="));
	CHECK("oauthbearer y flag", ob("y,a=u,\001auth=Bearer t\001\001") ==
	    0 && so_is("u", "t"));
	CHECK("oauthbearer escaped user",
	    ob("n,a=te=3Dst=2C@ex,\001auth=Bearer t\001\001") == 0 &&
	    so_is("te=st,@ex", "t"));
	CHECK("oauthbearer bad escape",
	    ob("n,a=te=3st,\001auth=Bearer t\001\001") == -1);
	CHECK("oauthbearer escape cut", ob("n,a=te=2,\001auth=Bearer t\001\001")
	    == -1);
	CHECK("oauthbearer no authzid", ob("n,,\001auth=Bearer t\001\001") ==
	    -1);
	CHECK("oauthbearer channel binding",
	    ob("p=tls-unique,a=u,\001auth=Bearer t\001\001") == -1);
	CHECK("oauthbearer no auth", ob("n,a=u,\001host=h\001\001") == -1);
	CHECK("oauthbearer two auth",
	    ob("n,a=u,\001auth=Bearer t\001auth=Bearer s\001\001") == -1);
	CHECK("oauthbearer no final ^A", ob("n,a=u,\001auth=Bearer t\001") ==
	    -1);
	CHECK("oauthbearer trailing bytes",
	    ob("n,a=u,\001auth=Bearer t\001\001x") == -1);
	CHECK("oauthbearer no ^A after gs2",
	    ob("n,a=u,auth=Bearer t\001\001") == -1);
	CHECK("oauthbearer key not alpha",
	    ob("n,a=u,\001h0st=x\001auth=Bearer t\001\001") == -1);
	CHECK("oauthbearer empty key", ob("n,a=u,\001=x\001auth=Bearer t\001"
	    "\001") == -1);
	CHECK("oauthbearer pair without =",
	    ob("n,a=u,\001host\001auth=Bearer t\001\001") == -1);
	CHECK("oauthbearer Auth is not auth",
	    ob("n,a=u,\001Auth=Bearer t\001\001") == -1);
	CHECK("oauthbearer made", sasl_oauthbearer_make(buf, sizeof(buf),
	    "a,b=c", 5, "tok", 3) == 32 && memcmp(buf, "n,a=a=2Cb=3Dc,\001"
	    "auth=Bearer tok\001\001", 32) == 0 && ob(buf) == 0 &&
	    so_is("a,b=c", "tok"));
	CHECK("oauthbearer make: too small", sasl_oauthbearer_make(buf, 32,
	    "a,b=c", 5, "tok", 3) == -1);
	CHECK("oauthbearer make: no room to escape", sasl_oauthbearer_make(buf,
	    9, ",,,,,", 5, "t", 1) == -1);
}

int
main(void)
{
	test_base64();
	test_plain();
	test_cram();
	test_xoauth2();
	test_oauthbearer();
	UNIT_EXIT();
}
