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
 * chello.c: ClientHellos made by hand, byte by byte, as a TLS 1.2 or
 * 1.3 client sends them, whole, cut short, split across records, and
 * things that are no ClientHello at all.
 */

#include <stdint.h>

#include "chello.h"
#include "unit.h"

/* what a hand-made hello carries; NULL or 0: not sent */
struct spec {
	const uint16_t	*ciphers;
	size_t		 nciphers;
	const uint16_t	*sigalgs;
	size_t		 nsigalgs;
	const uint16_t	*groups;
	size_t		 ngroups;
	int		 tls13;
	const char	*alpn[4];	/* NULL-terminated; alpn[0] NULL: none */
	int		 alpn_dup;	/* a second ALPN extension */
	const char	*sni;
	int		 noext;		/* no extensions block at all */
	int		 trailing;	/* a byte after the extensions */
};

static unsigned char	 msg[20000];
static size_t		 msglen;

static void
put8(unsigned int v)
{
	msg[msglen++] = v & 0xff;
}

static void
put16(unsigned int v)
{
	put8(v >> 8);
	put8(v);
}

static void
put(const void *p, size_t n)
{
	memcpy(msg + msglen, p, n);
	msglen += n;
}

/* a 2-byte length at pos, filled in when its contents are written */
static void
fix16(size_t pos)
{
	size_t	 n = msglen - pos - 2;

	msg[pos] = n >> 8;
	msg[pos + 1] = n & 0xff;
}

static void
ext_list16(unsigned int type, const uint16_t *v, size_t n, int lenbytes)
{
	size_t	 i;

	put16(type);
	put16(n * 2 + lenbytes);
	if (lenbytes == 1)
		put8(n * 2);
	else
		put16(n * 2);
	for (i = 0; i < n; i++)
		put16(v[i]);
}

static void
ext_alpn(const struct spec *sp)
{
	size_t	 ext, list;
	int	 i;

	put16(16);
	ext = msglen;
	put16(0);
	list = msglen;
	put16(0);
	for (i = 0; sp->alpn[i] != NULL; i++) {
		put8(strlen(sp->alpn[i]));
		put(sp->alpn[i], strlen(sp->alpn[i]));
	}
	fix16(list);
	fix16(ext);
}

static void
ext_sni(const char *name)
{
	put16(0);
	put16(strlen(name) + 5);
	put16(strlen(name) + 3);
	put8(0);
	put16(strlen(name));
	put(name, strlen(name));
}

static void
extensions(const struct spec *sp)
{
	static const uint16_t	 v13[] = { 0x0304, 0x0303 };
	size_t			 exts;

	exts = msglen;
	put16(0);
	if (sp->sni != NULL)
		ext_sni(sp->sni);
	if (sp->groups != NULL)
		ext_list16(10, sp->groups, sp->ngroups, 2);
	if (sp->sigalgs != NULL)
		ext_list16(13, sp->sigalgs, sp->nsigalgs, 2);
	if (sp->alpn[0] != NULL)
		ext_alpn(sp);
	if (sp->alpn_dup)
		ext_alpn(sp);
	if (sp->tls13)
		ext_list16(43, v13, 2, 1);
	/* an extension nobody here knows: skipped */
	put16(0xff01);
	put16(1);
	put8(0);
	fix16(exts);
}

/* the handshake message (type, 24-bit length, body) into msg */
static void
build(const struct spec *sp)
{
	size_t	 i, body;

	msglen = 0;
	put8(1);
	put8(0);
	put16(0);
	body = msglen;
	put16(0x0303);
	for (i = 0; i < 32; i++)
		put8(i);
	put8(32);
	for (i = 0; i < 32; i++)
		put8(0xa0 + i);
	put16(sp->nciphers * 2);
	for (i = 0; i < sp->nciphers; i++)
		put16(sp->ciphers[i]);
	put8(1);
	put8(0);
	if (!sp->noext)
		extensions(sp);
	if (sp->trailing)
		put8(0);
	msg[1] = (msglen - body) >> 16;
	msg[2] = ((msglen - body) >> 8) & 0xff;
	msg[3] = (msglen - body) & 0xff;
}

/* msg as records of at most recmax bytes each; the wire length */
static size_t
records(unsigned char *out, size_t recmax)
{
	size_t	 off, n, len = 0;

	for (off = 0; off < msglen; off += n) {
		n = msglen - off < recmax ? msglen - off : recmax;
		out[len++] = 22;
		out[len++] = 3;
		out[len++] = 1;
		out[len++] = n >> 8;
		out[len++] = n & 0xff;
		memcpy(out + len, msg + off, n);
		len += n;
	}
	return (len);
}

static const uint16_t	 c13[] = { 0x1301, 0x1302, 0xc02b, 0xc02f };
static const uint16_t	 c12rsa[] = { 0xc02f, 0xc030, 0x009e };
static const uint16_t	 c12ec[] = { 0xc02f, 0xc02b };
static const uint16_t	 s_ec[] = { 0x0403, 0x0804 };
static const uint16_t	 s_rsa[] = { 0x0804, 0x0401 };
static const uint16_t	 g_std[] = { 29, 23, 24 };
static const uint16_t	 g_x25519[] = { 29 };

static struct chello	 ch;
static unsigned char	 wire[40000];

static void
test_tls13(void)
{
	struct spec	 sp = { c13, 4, s_ec, 2, g_std, 3, 1,
			    { "h2", "imap", NULL }, 0, "mail.example", 0, 0 };
	size_t		 len, i;
	int		 more = 1;

	build(&sp);
	len = records(wire, 16384);
	CHECK("tls13 parsed", chello_parse(wire, len, &ch) == CHELLO_OK);
	CHECK("tls13 rawlen", ch.rawlen == len);
	CHECK("tls13 version", ch.version == 0x0303);
	CHECK("tls13 offered", chello_tls13(&ch));
	CHECK("tls13 sni", strcmp(ch.sni, "mail.example") == 0);
	CHECK("tls13 alpn has imap", chello_alpn_has(&ch, "imap") == 1);
	CHECK("tls13 alpn has h2", chello_alpn_has(&ch, "h2") == 1);
	CHECK("tls13 alpn lacks ima", chello_alpn_has(&ch, "ima") == 0);
	CHECK("tls13 ecdsa p256", chello_ecdsa_ok(&ch, 1, 256));
	CHECK("tls13 no ecdsa p384", !chello_ecdsa_ok(&ch, 1, 384));
	CHECK("tls13 no ecdsa other curve", !chello_ecdsa_ok(&ch, 1, 255));
	/* bytes after the hello are libtls's, not the hello's */
	wire[len] = 23;
	CHECK("tls13 more after it", chello_parse(wire, len + 1, &ch) ==
	    CHELLO_OK && ch.rawlen == len);
	for (i = 0; i < len; i++)
		if (chello_parse(wire, i, &ch) != CHELLO_MORE)
			more = 0;
	CHECK("tls13 every prefix wants more", more);
}

static void
test_tls13_rsa_only(void)
{
	struct spec	 sp = { c13, 4, s_rsa, 2, g_std, 3, 1,
			    { NULL }, 0, NULL, 0, 0 };
	size_t		 len;

	build(&sp);
	len = records(wire, 16384);
	CHECK("rsa parsed", chello_parse(wire, len, &ch) == CHELLO_OK);
	CHECK("rsa no alpn", chello_alpn_has(&ch, "imap") == -1);
	CHECK("rsa no sni", ch.sni[0] == '\0');
	CHECK("rsa no ecdsa", !chello_ecdsa_ok(&ch, 1, 256));
	/* as TLS 1.2 the ECDHE-ECDSA suite and ECDSA+SHA256 are missing */
	CHECK("rsa tls12 view", !chello_ecdsa_ok(&ch, 0, 256));
}

static void
test_tls12(void)
{
	struct spec	 rsa = { c12rsa, 3, s_ec, 2, g_std, 3, 0,
			    { "imap", NULL }, 0, NULL, 0, 0 };
	struct spec	 ec = { c12ec, 2, s_ec, 2, g_std, 3, 0,
			    { NULL }, 0, NULL, 0, 0 };
	struct spec	 x = { c12ec, 2, s_ec, 2, g_x25519, 1, 0,
			    { NULL }, 0, NULL, 0, 0 };
	struct spec	 bare = { c12ec, 2, NULL, 0, NULL, 0, 0,
			    { NULL }, 0, NULL, 1, 0 };
	size_t		 len;

	build(&rsa);
	len = records(wire, 16384);
	CHECK("tls12 parsed", chello_parse(wire, len, &ch) == CHELLO_OK);
	CHECK("tls12 not tls13", !chello_tls13(&ch));
	CHECK("tls12 rsa suites: no ecdsa", !chello_ecdsa_ok(&ch, 0, 256));
	CHECK("tls12 alpn imap", chello_alpn_has(&ch, "imap") == 1);
	build(&ec);
	len = records(wire, 16384);
	CHECK("tls12 ecdsa suite", chello_parse(wire, len, &ch) ==
	    CHELLO_OK && chello_ecdsa_ok(&ch, 0, 256));
	CHECK("tls12 ecdsa p384 group", chello_ecdsa_ok(&ch, 0, 384));
	CHECK("tls12 no p521 group", !chello_ecdsa_ok(&ch, 0, 521));
	build(&x);
	len = records(wire, 16384);
	CHECK("tls12 curve not offered", chello_parse(wire, len, &ch) ==
	    CHELLO_OK && !chello_ecdsa_ok(&ch, 0, 256));
	build(&bare);
	len = records(wire, 16384);
	CHECK("tls12 without extensions", chello_parse(wire, len, &ch) ==
	    CHELLO_OK && chello_alpn_has(&ch, "imap") == -1 &&
	    chello_ecdsa_ok(&ch, 0, 256));
}

static void
test_split(void)
{
	struct spec	 sp = { c13, 4, s_ec, 2, g_std, 3, 1,
			    { "h2", NULL }, 0, "a.example", 0, 0 };
	size_t		 len;

	build(&sp);
	len = records(wire, 7);
	CHECK("split parsed", chello_parse(wire, len, &ch) == CHELLO_OK);
	CHECK("split rawlen", ch.rawlen == len);
	CHECK("split alpn lacks imap", chello_alpn_has(&ch, "imap") == 0);
	CHECK("split sni", strcmp(ch.sni, "a.example") == 0);
	CHECK("split short", chello_parse(wire, len - 1, &ch) ==
	    CHELLO_MORE);
	/* a record that is not part of it in the middle: no hello */
	wire[5 + 7] = 23;
	CHECK("split by data", chello_parse(wire, len, &ch) == CHELLO_BAD);
	wire[5 + 7] = 21;
	CHECK("split by fatal alert", chello_parse(wire, len, &ch) ==
	    CHELLO_BAD);
}

/*
 * Records a man in the middle may add without touching the hello,
 * which the libraries pass over: they must not hide its ALPN list.
 */
static void
test_inserted(void)
{
	struct spec	 sp = { c13, 4, s_ec, 2, g_std, 3, 1,
			    { "h2", NULL }, 0, NULL, 0, 0 };
	static const unsigned char warn[] = { 21, 3, 3, 0, 2, 1, 90 };
	static const unsigned char notify[] = { 21, 3, 3, 0, 2, 1, 0 };
	static const unsigned char empty[] = { 22, 3, 1, 0, 0 };
	unsigned char	 one[20000];
	size_t		 len, n;

	build(&sp);
	n = records(one, 100);
	memcpy(wire, warn, sizeof(warn));
	memcpy(wire + sizeof(warn), empty, sizeof(empty));
	len = sizeof(warn) + sizeof(empty);
	memcpy(wire + len, one, 105);
	len += 105;
	memcpy(wire + len, warn, sizeof(warn));
	len += sizeof(warn);
	memcpy(wire + len, one + 105, n - 105);
	len += n - 105;
	CHECK("inserted records skipped", chello_parse(wire, len, &ch) ==
	    CHELLO_OK && ch.rawlen == len);
	CHECK("inserted records: alpn seen", chello_alpn_has(&ch, "imap") ==
	    0);
	memcpy(wire, notify, sizeof(notify));
	CHECK("close_notify first", chello_parse(wire, len, &ch) ==
	    CHELLO_BAD);
}

static void
test_bad(void)
{
	struct spec	 dup = { c13, 4, s_ec, 2, g_std, 3, 1,
			    { "imap", NULL }, 1, NULL, 0, 0 };
	struct spec	 empty = { c13, 4, s_ec, 2, g_std, 3, 1,
			    { "", NULL }, 0, NULL, 0, 0 };
	struct spec	 trail = { c13, 4, s_ec, 2, g_std, 3, 1,
			    { NULL }, 0, NULL, 0, 1 };
	static const unsigned char v2[] = {
		0x80, 0x2e, 0x01, 0x03, 0x01, 0x00, 0x15, 0x00, 0x00,
		0x00, 0x10, 0x07, 0x00, 0xc0, 0x05, 0x00, 0x80,
	};
	static const unsigned char zero[] = { 22, 3, 1, 0, 0 };
	static const unsigned char shello[] = { 22, 3, 3, 0, 4, 2, 0, 0, 0 };
	static const unsigned char huge[] = { 22, 3, 1, 0, 4, 1, 0, 0x40, 1 };
	/* its length in a second record: still known before the body */
	static const unsigned char huge2[] = { 22, 3, 1, 0, 2, 1, 1,
			    22, 3, 1, 0, 2, 0, 0 };
	/* an empty record, then no TLS: no hello, but TLS was begun */
	static const unsigned char after[] = { 22, 3, 1, 0, 0, 'a', ' ' };
	size_t		 len;

	/* no TLS record: libtls is left to say what it is */
	CHECK("garbage", chello_parse((const unsigned char *)
	    "a CAPABILITY\r\n", 14, &ch) == CHELLO_NOTTLS);
	CHECK("garbage, one byte", chello_parse((const unsigned char *)"a",
	    1, &ch) == CHELLO_NOTTLS);
	CHECK("sslv2 hello", chello_parse(v2, sizeof(v2), &ch) ==
	    CHELLO_NOTTLS);
	CHECK("version 4", chello_parse((const unsigned char *)"\x16\x04",
	    2, &ch) == CHELLO_NOTTLS);
	CHECK("empty record: passed over", chello_parse(zero, sizeof(zero),
	    &ch) == CHELLO_MORE);
	CHECK("server hello", chello_parse(shello, sizeof(shello), &ch) ==
	    CHELLO_BAD);
	CHECK("hello over 16k", chello_parse(huge, sizeof(huge), &ch) ==
	    CHELLO_TOOBIG);
	CHECK("hello over 16k, split", chello_parse(huge2, sizeof(huge2),
	    &ch) == CHELLO_TOOBIG);
	CHECK("garbage after a record", chello_parse(after,
	    sizeof(after), &ch) == CHELLO_BAD);
	CHECK("nothing yet", chello_parse(zero, 0, &ch) == CHELLO_MORE);
	build(&dup);
	len = records(wire, 16384);
	CHECK("two alpn extensions", chello_parse(wire, len, &ch) ==
	    CHELLO_BAD);
	build(&empty);
	len = records(wire, 16384);
	CHECK("empty alpn name", chello_parse(wire, len, &ch) ==
	    CHELLO_BAD);
	build(&trail);
	len = records(wire, 16384);
	CHECK("byte after extensions", chello_parse(wire, len, &ch) ==
	    CHELLO_BAD);
}

int
main(void)
{
	test_tls13();
	test_tls13_rsa_only();
	test_tls12();
	test_split();
	test_inserted();
	test_bad();
	UNIT_EXIT();
}
