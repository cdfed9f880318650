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
 * The client's first flight, read before libtls sees it (RFC 8446
 * 4.1.2, RFC 5246 7.4.1.2).  The parser is as strict as the TLS
 * libraries behind libtls where it matters for the decision, and what
 * it cannot read the caller refuses: a hello that reached libtls
 * unread would have its ALPN list unchecked.  Only bytes that are no
 * TLS record at all (CHELLO_NOTTLS: a client speaking IMAP in the
 * clear, an SSLv2-style hello, which carries no extensions) go to
 * libtls, whose error says what they were.
 */

#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include "chello.h"

#define REC_ALERT		21
#define REC_HANDSHAKE		22
#define REC_HDR			5
#define REC_MAX			16384
#define HS_CLIENT_HELLO		1

#define EXT_SERVER_NAME		0
#define EXT_GROUPS		10
#define EXT_SIGALGS		13
#define EXT_ALPN		16
#define EXT_VERSIONS		43

/* a read position in the message; every get checks the bounds */
struct cur {
	const unsigned char	*p;
	size_t			 len;
};

static int	get_u8(struct cur *, unsigned int *);
static int	get_u16(struct cur *, unsigned int *);
static int	get_vec(struct cur *, int, struct cur *);
static int	rec_skip(const unsigned char *, size_t);
static int	reassemble(const unsigned char *, size_t, struct chello *);
static int	parse_body(struct chello *);
static int	parse_exts(struct cur *, struct chello *);
static unsigned int ext_bit(unsigned int);
static int	parse_ext(unsigned int, struct cur *, struct chello *);
static int	parse_list16(struct cur *, int, struct chello_list *);
static int	parse_alpn(struct cur *, struct chello *);
static int	parse_sni(struct cur *, struct chello *);
static int	list_has(const struct chello_list *, unsigned int);

static int
get_u8(struct cur *c, unsigned int *v)
{
	if (c->len < 1)
		return (-1);
	*v = c->p[0];
	c->p++;
	c->len--;
	return (0);
}

static int
get_u16(struct cur *c, unsigned int *v)
{
	if (c->len < 2)
		return (-1);
	*v = (c->p[0] << 8) | c->p[1];
	c->p += 2;
	c->len -= 2;
	return (0);
}

/* a vector with a 1- or 2-byte length in front of it */
static int
get_vec(struct cur *c, int lenbytes, struct cur *v)
{
	unsigned int	 n;

	if ((lenbytes == 1 ? get_u8(c, &n) : get_u16(c, &n)) == -1 ||
	    n > c->len)
		return (-1);
	v->p = c->p;
	v->len = n;
	c->p += n;
	c->len -= n;
	return (0);
}

/*
 * Records the libraries pass over before the hello is whole: empty
 * ones and warning alerts other than close_notify.  Skipping them here
 * too keeps a man in the middle, who can add records but not change
 * the hello, from making it CHELLO_BAD and so unread.
 */
static int
rec_skip(const unsigned char *rec, size_t rlen)
{
	if (rlen == 0)
		return (rec[0] == REC_HANDSHAKE);
	return (rec[0] == REC_ALERT && rlen == 2 && rec[REC_HDR] == 1 &&
	    rec[REC_HDR + 1] != 0);
}

/*
 * The handshake message from the records it may be split across.
 * Records after it are left for libtls: nothing is consumed here.
 */
static int
reassemble(const unsigned char *buf, size_t len, struct chello *ch)
{
	size_t	 off = 0, rlen, n, need = 0;

	ch->msglen = 0;
	for (;;) {
		/* fail early on what is no handshake record at all */
		if (off < len && buf[off] != REC_HANDSHAKE &&
		    buf[off] != REC_ALERT)
			return (off == 0 ? CHELLO_NOTTLS : CHELLO_BAD);
		if (off + 1 < len && buf[off + 1] != 3)
			return (off == 0 ? CHELLO_NOTTLS : CHELLO_BAD);
		if (off + REC_HDR > len)
			return (CHELLO_MORE);
		rlen = (buf[off + 3] << 8) | buf[off + 4];
		if (rlen > REC_MAX)
			return (CHELLO_BAD);
		if (off + REC_HDR + rlen > len)
			return (CHELLO_MORE);
		if (rec_skip(buf + off, rlen)) {
			off += REC_HDR + rlen;
			continue;
		}
		if (buf[off] != REC_HANDSHAKE)
			return (CHELLO_BAD);
		n = sizeof(ch->msg) - ch->msglen;
		if (n > rlen)
			n = rlen;
		memcpy(ch->msg + ch->msglen, buf + off + REC_HDR, n);
		ch->msglen += n;
		off += REC_HDR + rlen;
		if (need == 0 && ch->msglen >= 4) {
			if (ch->msg[0] != HS_CLIENT_HELLO)
				return (CHELLO_BAD);
			need = 4 + ((ch->msg[1] << 16) | (ch->msg[2] << 8) |
			    ch->msg[3]);
			if (need > sizeof(ch->msg))
				return (CHELLO_TOOBIG);
		}
		if (need != 0 && ch->msglen >= need) {
			ch->msglen = need;
			ch->rawlen = off;
			return (CHELLO_OK);
		}
	}
}

/*
 * buf holds what the client sent so far.  CHELLO_MORE: not the whole
 * hello yet; CHELLO_OK: ch describes it; CHELLO_BAD: TLS records that
 * hold no hello we can read; CHELLO_TOOBIG: a hello too large to
 * read; CHELLO_NOTTLS: no TLS record at all.
 */
int
chello_parse(const unsigned char *buf, size_t len, struct chello *ch)
{
	int	 r;

	memset(&ch->version, 0, sizeof(*ch) - offsetof(struct chello,
	    version));
	ch->rawlen = 0;
	if ((r = reassemble(buf, len, ch)) != CHELLO_OK)
		return (r);
	return (parse_body(ch));
}

static int
parse_body(struct chello *ch)
{
	struct cur	 c, v;
	unsigned int	 version;

	c.p = ch->msg + 4;
	c.len = ch->msglen - 4;
	if (get_u16(&c, &version) == -1 || (version >> 8) != 3)
		return (CHELLO_BAD);
	ch->version = version;
	/* random */
	if (c.len < 32)
		return (CHELLO_BAD);
	c.p += 32;
	c.len -= 32;
	if (get_vec(&c, 1, &v) == -1 || v.len > 32)
		return (CHELLO_BAD);
	if (get_vec(&c, 2, &v) == -1 || v.len < 2 || v.len % 2 != 0)
		return (CHELLO_BAD);
	ch->ciphers.p = v.p;
	ch->ciphers.len = v.len;
	/* compression methods */
	if (get_vec(&c, 1, &v) == -1 || v.len < 1)
		return (CHELLO_BAD);
	/* a TLS 1.2 hello may end here, without extensions */
	if (c.len == 0)
		return (CHELLO_OK);
	return (parse_exts(&c, ch));
}

static int
parse_exts(struct cur *c, struct chello *ch)
{
	struct cur	 all, data;
	unsigned int	 type, seen = 0, bit;

	if (get_vec(c, 2, &all) == -1 || c->len != 0)
		return (CHELLO_BAD);
	while (all.len > 0) {
		if (get_u16(&all, &type) == -1 ||
		    get_vec(&all, 2, &data) == -1)
			return (CHELLO_BAD);
		/* one of each: a second ALPN list must not decide */
		bit = ext_bit(type);
		if (bit != 0 && (seen & bit))
			return (CHELLO_BAD);
		seen |= bit;
		if (parse_ext(type, &data, ch) == -1)
			return (CHELLO_BAD);
	}
	return (CHELLO_OK);
}

/* the extensions read here, one bit each; 0 for the others */
static unsigned int
ext_bit(unsigned int type)
{
	switch (type) {
	case EXT_SERVER_NAME:
		return (0x01);
	case EXT_GROUPS:
		return (0x02);
	case EXT_SIGALGS:
		return (0x04);
	case EXT_ALPN:
		return (0x08);
	case EXT_VERSIONS:
		return (0x10);
	}
	return (0);
}

static int
parse_ext(unsigned int type, struct cur *data, struct chello *ch)
{
	switch (type) {
	case EXT_SERVER_NAME:
		return (parse_sni(data, ch));
	case EXT_GROUPS:
		return (parse_list16(data, 2, &ch->groups));
	case EXT_SIGALGS:
		return (parse_list16(data, 2, &ch->sigalgs));
	case EXT_ALPN:
		return (parse_alpn(data, ch));
	case EXT_VERSIONS:
		return (parse_list16(data, 1, &ch->versions));
	}
	return (0);
}

/* a non-empty list of 16-bit values filling the extension */
static int
parse_list16(struct cur *data, int lenbytes, struct chello_list *l)
{
	struct cur	 v;

	if (get_vec(data, lenbytes, &v) == -1 || data->len != 0 ||
	    v.len < 2 || v.len % 2 != 0)
		return (-1);
	l->p = v.p;
	l->len = v.len;
	return (0);
}

/* RFC 7301: a non-empty list of non-empty names */
static int
parse_alpn(struct cur *data, struct chello *ch)
{
	struct cur	 list, name;

	if (get_vec(data, 2, &list) == -1 || data->len != 0 ||
	    list.len < 2)
		return (-1);
	ch->alpn.p = list.p;
	ch->alpn.len = list.len;
	while (list.len > 0)
		if (get_vec(&list, 1, &name) == -1 || name.len == 0)
			return (-1);
	return (0);
}

/* RFC 6066 3, as the libraries take it: one host_name, no NUL in it */
static int
parse_sni(struct cur *data, struct chello *ch)
{
	struct cur	 list, name;
	unsigned int	 type;

	if (get_vec(data, 2, &list) == -1 || data->len != 0 ||
	    get_u8(&list, &type) == -1 || type != 0 ||
	    get_vec(&list, 2, &name) == -1 || list.len != 0 ||
	    name.len >= sizeof(ch->sni) ||
	    memchr(name.p, '\0', name.len) != NULL)
		return (-1);
	memcpy(ch->sni, name.p, name.len);
	ch->sni[name.len] = '\0';
	return (0);
}

static int
list_has(const struct chello_list *l, unsigned int v)
{
	size_t	 i;

	for (i = 0; i + 1 < l->len; i += 2)
		if ((unsigned int)((l->p[i] << 8) | l->p[i + 1]) == v)
			return (1);
	return (0);
}

/* 1: the ALPN list names proto, 0: it does not, -1: no ALPN sent */
int
chello_alpn_has(const struct chello *ch, const char *proto)
{
	size_t	 i, n, plen = strlen(proto);

	if (ch->alpn.p == NULL)
		return (-1);
	for (i = 0; i < ch->alpn.len; i += 1 + n) {
		n = ch->alpn.p[i];
		if (i + 1 + n > ch->alpn.len)
			break;
		if (n == plen && memcmp(ch->alpn.p + i + 1, proto, n) == 0)
			return (1);
	}
	return (0);
}

/* whether the client offers TLS 1.3 */
int
chello_tls13(const struct chello *ch)
{
	return (list_has(&ch->versions, 0x0304));
}

/*
 * Whether the client can verify a signature by an ECDSA key on the
 * NIST curve of curvebits bits (256, 384, 521).  In TLS 1.3 the
 * signature scheme names the curve; in TLS 1.2 the cipher suite must
 * be ECDHE-ECDSA, the hash one the libraries still allow, the curve
 * among the client's groups.
 */
int
chello_ecdsa_ok(const struct chello *ch, int tls13, int curvebits)
{
	static const unsigned int suites[] = {
		0xc006, 0xc007, 0xc008, 0xc009, 0xc00a, 0xc023, 0xc024,
		0xc02b, 0xc02c, 0xc048, 0xc049, 0xc05c, 0xc05d, 0xc072,
		0xc073, 0xc086, 0xc087, 0xc0ac, 0xc0ad, 0xc0ae, 0xc0af,
		0xcca9,
	};
	unsigned int	 scheme, group;
	size_t		 i;

	switch (curvebits) {
	case 256:
		scheme = 0x0403;
		group = 23;
		break;
	case 384:
		scheme = 0x0503;
		group = 24;
		break;
	case 521:
		scheme = 0x0603;
		group = 25;
		break;
	default:
		return (0);
	}
	if (tls13)
		return (list_has(&ch->sigalgs, scheme));
	for (i = 0; i < sizeof(suites) / sizeof(suites[0]); i++)
		if (list_has(&ch->ciphers, suites[i]))
			break;
	if (i == sizeof(suites) / sizeof(suites[0]))
		return (0);
	if (ch->groups.p != NULL && !list_has(&ch->groups, group))
		return (0);
	/* without the extension TLS 1.2 means SHA-1, which is allowed */
	if (ch->sigalgs.p == NULL)
		return (1);
	return (list_has(&ch->sigalgs, 0x0303) ||
	    list_has(&ch->sigalgs, 0x0403) ||
	    list_has(&ch->sigalgs, 0x0503) ||
	    list_has(&ch->sigalgs, 0x0603));
}
