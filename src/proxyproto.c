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
 * The PROXY protocol.  The reader is strict: whatever a sender may
 * vary (spaces, leading zeros, a bare LF, a datagram family, a TLV
 * that overruns its header, a checksum that does not match) is
 * refused, since a header is where a client's address comes from.
 * It keeps no state between calls: it is handed everything read so
 * far and parses from the start.
 */

#include <sys/types.h>
#include <sys/socket.h>

#include <netinet/in.h>
#include <arpa/inet.h>

#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include "proxyproto.h"

#define V2_LOCAL		0x20
#define V2_PROXY		0x21
#define V2_UNSPEC		0x00
#define V2_TCP4			0x11
#define V2_TCP6			0x21
#define V2_UNIX_STREAM		0x31
#define V2_ADDR4_LEN		12
#define V2_ADDR6_LEN		36
#define V2_ADDRUNIX_LEN		216

#define TLV_AUTHORITY		0x02
#define TLV_CRC32C		0x03
#define TLV_SSL			0x20
#define TLV_SSL_VERSION		0x21
#define TLV_SSL_CIPHER		0x23
#define TLV_CLIENT_SSL		0x01

static const unsigned char v2sig[12] = {
	0x0d, 0x0a, 0x0d, 0x0a, 0x00, 0x0d, 0x0a, 0x51, 0x55, 0x49, 0x54, 0x0a
};

static int
bad(const char **why, const char *reason)
{
	*why = reason;
	return (PP_BAD);
}

/*
 * Version 1.
 */

/* the next space-separated field of [*p, end): one space exactly */
static int
v1_field(const unsigned char **p, const unsigned char *end, char *out,
    size_t outsz, int last)
{
	const unsigned char	*q = *p;
	size_t			 n;

	/* addresses and ports: hex digits, dots and colons only */
	while (q < end && *q != ' ') {
		if (strchr("0123456789abcdefABCDEF.:", *q) == NULL || *q == '\0')
			return (-1);
		q++;
	}
	n = q - *p;
	if (n == 0 || n >= outsz || (last ? q != end : q == end))
		return (-1);
	memcpy(out, *p, n);
	out[n] = '\0';
	*p = last ? q : q + 1;
	return (0);
}

/* a decimal port, 0-65535, without leading zeros */
static int
v1_port(const char *s, in_port_t *port)
{
	unsigned long	 v = 0;
	size_t		 i;

	for (i = 0; s[i] != '\0'; i++) {
		if (s[i] < '0' || s[i] > '9' || i >= 5)
			return (-1);
		v = v * 10 + (s[i] - '0');
	}
	if (i == 0 || (s[0] == '0' && i > 1) || v > 65535)
		return (-1);
	*port = htons(v);
	return (0);
}

static int
v1_addr(int family, const char *a, const char *port,
    struct sockaddr_storage *ss, socklen_t *len)
{
	struct sockaddr_in	*sin = (struct sockaddr_in *)ss;
	struct sockaddr_in6	*sin6 = (struct sockaddr_in6 *)ss;
	in_port_t		 p;

	if (v1_port(port, &p) == -1)
		return (-1);
	if (family == AF_INET) {
		if (inet_pton(AF_INET, a, &sin->sin_addr) != 1)
			return (-1);
		sin->sin_family = AF_INET;
		sin->sin_port = p;
		*len = sizeof(*sin);
	} else {
		if (inet_pton(AF_INET6, a, &sin6->sin6_addr) != 1)
			return (-1);
		sin6->sin6_family = AF_INET6;
		sin6->sin6_port = p;
		*len = sizeof(*sin6);
	}
	return (0);
}

/* "PROXY TCP4|TCP6 src dst sport dport\r\n", "PROXY UNKNOWN ...\r\n" */
static int
v1_parse(const unsigned char *buf, size_t len, struct pp_info *info,
    size_t *used, const char **why)
{
	const unsigned char	*lf, *p, *end;
	char			 src[INET6_ADDRSTRLEN], dst[INET6_ADDRSTRLEN];
	char			 sport[8], dport[8];
	int			 family;

	if (memcmp(buf, "PROXY ", len < 6 ? len : 6) != 0)
		return (bad(why, "not a PROXY protocol header"));
	if ((lf = memchr(buf, '\n', len < PP_V1_MAX ? len : PP_V1_MAX)) ==
	    NULL)
		return (len >= PP_V1_MAX ?
		    bad(why, "PROXY header too long") : PP_MORE);
	if (lf - buf < 7 || lf[-1] != '\r')
		return (bad(why, "PROXY header without CRLF"));
	p = buf + 6;
	end = lf - 1;
	info->version = 1;
	*used = lf - buf + 1;
	/* the sender knows nothing: whatever follows is to be ignored */
	if (end - p >= 7 && memcmp(p, "UNKNOWN", 7) == 0 &&
	    (end - p == 7 || p[7] == ' ')) {
		info->local = 1;
		return (PP_OK);
	}
	if (end - p >= 5 && memcmp(p, "TCP4 ", 5) == 0)
		family = AF_INET;
	else if (end - p >= 5 && memcmp(p, "TCP6 ", 5) == 0)
		family = AF_INET6;
	else
		return (bad(why, "invalid PROXY protocol family"));
	p += 5;
	if (v1_field(&p, end, src, sizeof(src), 0) == -1 ||
	    v1_field(&p, end, dst, sizeof(dst), 0) == -1 ||
	    v1_field(&p, end, sport, sizeof(sport), 0) == -1 ||
	    v1_field(&p, end, dport, sizeof(dport), 1) == -1 ||
	    v1_addr(family, src, sport, &info->src, &info->srclen) == -1 ||
	    v1_addr(family, dst, dport, &info->dst, &info->dstlen) == -1)
		return (bad(why, "invalid address in PROXY header"));
	return (PP_OK);
}

/*
 * Version 2.
 */

/* CRC-32C (Castagnoli), bit by bit: a header is a few hundred bytes */
static uint32_t
crc32c(uint32_t crc, const unsigned char *p, size_t len)
{
	int	 i;

	while (len-- > 0) {
		crc ^= *p++;
		for (i = 0; i < 8; i++)
			crc = (crc >> 1) ^ (0x82f63b78 & -(crc & 1));
	}
	return (crc);
}

/* the checksum of the header with its own four bytes zero */
static int
v2_crc_ok(const unsigned char *hdr, size_t total, const unsigned char *v)
{
	static const unsigned char	 zero[4];
	size_t				 off = v - hdr;
	uint32_t			 crc, want;

	crc = crc32c(0xffffffff, hdr, off);
	crc = crc32c(crc, zero, sizeof(zero));
	crc = crc32c(crc, v + 4, total - off - 4);
	crc ^= 0xffffffff;
	want = (uint32_t)v[0] << 24 | (uint32_t)v[1] << 16 |
	    (uint32_t)v[2] << 8 | v[3];
	return (crc == want);
}

/* a TLV's text: printable, no space, fits */
static int
tlv_str(char *dst, size_t dstsz, const unsigned char *v, size_t len)
{
	size_t	 i;

	if (len == 0 || len >= dstsz)
		return (-1);
	for (i = 0; i < len; i++)
		if (v[i] <= 0x20 || v[i] >= 0x7f)
			return (-1);
	memcpy(dst, v, len);
	dst[len] = '\0';
	return (0);
}

/*
 * The TLVs of [p, p + len), exactly filling it; ssl: those inside
 * PP2_TYPE_SSL.  Types we do not use are skipped, well-formed.
 */
static int
v2_tlvs(const unsigned char *p, size_t len, int ssl, struct pp_info *info,
    const unsigned char *hdr, size_t total, const char **why)
{
	const unsigned char	*v;
	size_t			 vlen;
	int			 r = 0;

	while (len > 0) {
		if (len < 3 || (vlen = (size_t)p[1] << 8 | p[2]) > len - 3)
			return (bad(why, "truncated TLV in PROXY header"));
		v = p + 3;
		if (ssl && p[0] == TLV_SSL_VERSION)
			r = tlv_str(info->ssl_version,
			    sizeof(info->ssl_version), v, vlen);
		else if (ssl && p[0] == TLV_SSL_CIPHER)
			r = tlv_str(info->ssl_cipher,
			    sizeof(info->ssl_cipher), v, vlen);
		else if (!ssl && p[0] == TLV_AUTHORITY)
			r = tlv_str(info->authority,
			    sizeof(info->authority), v, vlen);
		else if (!ssl && p[0] == TLV_CRC32C) {
			if (vlen != 4 || !v2_crc_ok(hdr, total, v))
				return (bad(why, "PROXY header checksum "
				    "mismatch"));
		} else if (!ssl && p[0] == TLV_SSL) {
			/* client flags, verify result, then sub-TLVs */
			if (vlen < 5)
				return (bad(why, "truncated TLV in PROXY "
				    "header"));
			info->ssl = (v[0] & TLV_CLIENT_SSL) != 0;
			if (v2_tlvs(v + 5, vlen - 5, 1, info, hdr, total,
			    why) == PP_BAD)
				return (PP_BAD);
		}
		if (r == -1)
			return (bad(why, "invalid TLV in PROXY header"));
		p += 3 + vlen;
		len -= 3 + vlen;
	}
	return (PP_OK);
}

static void
v2_addrs(const unsigned char *a, int family, struct pp_info *info)
{
	struct sockaddr_in	*s4 = (struct sockaddr_in *)&info->src;
	struct sockaddr_in	*d4 = (struct sockaddr_in *)&info->dst;
	struct sockaddr_in6	*s6 = (struct sockaddr_in6 *)&info->src;
	struct sockaddr_in6	*d6 = (struct sockaddr_in6 *)&info->dst;

	if (family == V2_TCP4) {
		s4->sin_family = d4->sin_family = AF_INET;
		memcpy(&s4->sin_addr, a, 4);
		memcpy(&d4->sin_addr, a + 4, 4);
		memcpy(&s4->sin_port, a + 8, 2);
		memcpy(&d4->sin_port, a + 10, 2);
		info->srclen = info->dstlen = sizeof(*s4);
	} else {
		s6->sin6_family = d6->sin6_family = AF_INET6;
		memcpy(&s6->sin6_addr, a, 16);
		memcpy(&d6->sin6_addr, a + 16, 16);
		memcpy(&s6->sin6_port, a + 32, 2);
		memcpy(&d6->sin6_port, a + 34, 2);
		info->srclen = info->dstlen = sizeof(*s6);
	}
}

static int
v2_parse(const unsigned char *buf, size_t len, struct pp_info *info,
    size_t *used, const char **why)
{
	size_t	 total, alen;
	int	 family;

	if (memcmp(buf, v2sig, len < 12 ? len : 12) != 0)
		return (bad(why, "not a PROXY protocol header"));
	if (len < PP_V2_MIN)
		return (PP_MORE);
	/* what can be judged is, before the rest of the header comes */
	total = PP_V2_MIN + ((size_t)buf[14] << 8 | buf[15]);
	if (total > PP_HDR_MAX)
		return (bad(why, "PROXY header too long"));
	if (buf[12] != V2_LOCAL && buf[12] != V2_PROXY)
		return (bad(why, "invalid PROXY protocol version or command"));
	family = buf[13];
	switch (family) {
	case V2_UNSPEC:
		alen = 0;
		break;
	case V2_TCP4:
		alen = V2_ADDR4_LEN;
		break;
	case V2_TCP6:
		alen = V2_ADDR6_LEN;
		break;
	case V2_UNIX_STREAM:
		alen = V2_ADDRUNIX_LEN;
		break;
	default:
		/* a LOCAL header's family means nothing */
		if (buf[12] == V2_PROXY)
			return (bad(why, "invalid PROXY protocol family"));
		alen = 0;
		break;
	}
	if (buf[12] == V2_PROXY && total - PP_V2_MIN < alen)
		return (bad(why, "PROXY header too short for its addresses"));
	if (len < total)
		return (PP_MORE);
	info->version = 2;
	*used = total;
	/* a health check of the proxy itself: the block is to be ignored */
	if (buf[12] == V2_LOCAL) {
		info->local = 1;
		return (PP_OK);
	}
	if (family == V2_TCP4 || family == V2_TCP6)
		v2_addrs(buf + PP_V2_MIN, family, info);
	else
		info->local = 1;
	return (v2_tlvs(buf + PP_V2_MIN + alen, total - PP_V2_MIN - alen, 0,
	    info, buf, total, why));
}

int
proxyproto_parse(const unsigned char *buf, size_t len, struct pp_info *info,
    size_t *used, const char **why)
{
	memset(info, 0, sizeof(*info));
	*used = 0;
	*why = NULL;
	if (len == 0)
		return (PP_MORE);
	if (buf[0] == 'P')
		return (v1_parse(buf, len, info, used, why));
	if (buf[0] == '\r')
		return (v2_parse(buf, len, info, used, why));
	return (bad(why, "not a PROXY protocol header"));
}

/*
 * Writing.  An IPv4 address beside an IPv6 one goes as IPv4-mapped.
 */

static int
to_v6(const struct sockaddr *sa, struct sockaddr_in6 *sin6)
{
	const struct sockaddr_in	*sin = (const struct sockaddr_in *)sa;

	memset(sin6, 0, sizeof(*sin6));
	sin6->sin6_family = AF_INET6;
	if (sa->sa_family == AF_INET6) {
		memcpy(sin6, sa, sizeof(*sin6));
		return (0);
	}
	if (sa->sa_family != AF_INET)
		return (-1);
	sin6->sin6_addr.s6_addr[10] = sin6->sin6_addr.s6_addr[11] = 0xff;
	memcpy(&sin6->sin6_addr.s6_addr[12], &sin->sin_addr, 4);
	sin6->sin6_port = sin->sin_port;
	return (0);
}

/* both IPv4: 4, else both as IPv6: 6, or 0 for no family we know */
static int
pp_family(const struct sockaddr *src, const struct sockaddr *dst,
    struct sockaddr_in6 *s6, struct sockaddr_in6 *d6)
{
	if (src->sa_family == AF_INET && dst->sa_family == AF_INET)
		return (4);
	if (to_v6(src, s6) == -1 || to_v6(dst, d6) == -1)
		return (0);
	return (6);
}

int
proxyproto_v1(char *buf, size_t len, const struct sockaddr *src,
    const struct sockaddr *dst)
{
	const struct sockaddr_in	*s4 = (const struct sockaddr_in *)src;
	const struct sockaddr_in	*d4 = (const struct sockaddr_in *)dst;
	struct sockaddr_in6		 s6, d6;
	char				 sa[INET6_ADDRSTRLEN];
	char				 da[INET6_ADDRSTRLEN];
	int				 n;

	switch (pp_family(src, dst, &s6, &d6)) {
	case 4:
		inet_ntop(AF_INET, &s4->sin_addr, sa, sizeof(sa));
		inet_ntop(AF_INET, &d4->sin_addr, da, sizeof(da));
		n = snprintf(buf, len, "PROXY TCP4 %s %s %u %u\r\n", sa, da,
		    ntohs(s4->sin_port), ntohs(d4->sin_port));
		break;
	case 6:
		inet_ntop(AF_INET6, &s6.sin6_addr, sa, sizeof(sa));
		inet_ntop(AF_INET6, &d6.sin6_addr, da, sizeof(da));
		n = snprintf(buf, len, "PROXY TCP6 %s %s %u %u\r\n", sa, da,
		    ntohs(s6.sin6_port), ntohs(d6.sin6_port));
		break;
	default:
		return (-1);
	}
	if (n < 0 || (size_t)n >= len)
		return (-1);
	return (n);
}

/* one TLV at buf[*off]; -1 when it does not fit */
static int
tlv_put(unsigned char *buf, size_t len, size_t *off, int type,
    const void *v, size_t vlen)
{
	if (vlen > 0xffff || len < *off || len - *off < 3 + vlen)
		return (-1);
	buf[*off] = type;
	buf[*off + 1] = vlen >> 8;
	buf[*off + 2] = vlen & 0xff;
	memcpy(buf + *off + 3, v, vlen);
	*off += 3 + vlen;
	return (0);
}

/* PP2_TYPE_SSL: the client spoke TLS; no certificate is vouched for */
static int
tlv_ssl(unsigned char *buf, size_t len, size_t *off,
    const struct pp_info *info)
{
	static const unsigned char	 head[5] = {
		TLV_CLIENT_SSL, 0, 0, 0, 1	/* verify: non-zero */
	};
	size_t				 start = *off, vlen;

	if (tlv_put(buf, len, off, TLV_SSL, head, sizeof(head)) == -1 ||
	    (info->ssl_version[0] != '\0' && tlv_put(buf, len, off,
	    TLV_SSL_VERSION, info->ssl_version,
	    strlen(info->ssl_version)) == -1) ||
	    (info->ssl_cipher[0] != '\0' && tlv_put(buf, len, off,
	    TLV_SSL_CIPHER, info->ssl_cipher,
	    strlen(info->ssl_cipher)) == -1))
		return (-1);
	/* the sub-TLVs are part of its value */
	vlen = *off - start - 3;
	buf[start + 1] = vlen >> 8;
	buf[start + 2] = vlen & 0xff;
	return (0);
}

int
proxyproto_v2(unsigned char *buf, size_t len, const struct sockaddr *src,
    const struct sockaddr *dst, const struct pp_info *info)
{
	const struct sockaddr_in	*s4 = (const struct sockaddr_in *)src;
	const struct sockaddr_in	*d4 = (const struct sockaddr_in *)dst;
	struct sockaddr_in6		 s6, d6;
	size_t				 off = PP_V2_MIN;

	if (len < PP_V2_MIN + V2_ADDR6_LEN)
		return (-1);
	memcpy(buf, v2sig, sizeof(v2sig));
	buf[12] = V2_PROXY;
	switch (pp_family(src, dst, &s6, &d6)) {
	case 4:
		buf[13] = V2_TCP4;
		memcpy(buf + off, &s4->sin_addr, 4);
		memcpy(buf + off + 4, &d4->sin_addr, 4);
		memcpy(buf + off + 8, &s4->sin_port, 2);
		memcpy(buf + off + 10, &d4->sin_port, 2);
		off += V2_ADDR4_LEN;
		break;
	case 6:
		buf[13] = V2_TCP6;
		memcpy(buf + off, &s6.sin6_addr, 16);
		memcpy(buf + off + 16, &d6.sin6_addr, 16);
		memcpy(buf + off + 32, &s6.sin6_port, 2);
		memcpy(buf + off + 34, &d6.sin6_port, 2);
		off += V2_ADDR6_LEN;
		break;
	default:
		return (-1);
	}
	if (info != NULL && info->authority[0] != '\0' &&
	    tlv_put(buf, len, &off, TLV_AUTHORITY, info->authority,
	    strlen(info->authority)) == -1)
		return (-1);
	if (info != NULL && info->ssl && tlv_ssl(buf, len, &off, info) == -1)
		return (-1);
	buf[14] = (off - PP_V2_MIN) >> 8;
	buf[15] = (off - PP_V2_MIN) & 0xff;
	return (off);
}
