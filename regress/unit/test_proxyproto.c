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
 * proxyproto.c: PROXY headers of both versions as HAProxy writes them
 * (the examples of doc/proxy-protocol.txt), every prefix of them, the
 * bytes that follow them, and each way a header can be wrong; what the
 * writer makes reads back the same.
 */

#include <sys/types.h>
#include <sys/socket.h>

#include <netinet/in.h>
#include <arpa/inet.h>

#include <stdint.h>

#include "proxyproto.h"
#include "unit.h"

static struct pp_info	 info;
static size_t		 used;
static const char	*why;

static int
parse(const void *buf, size_t len)
{
	return (proxyproto_parse(buf, len, &info, &used, &why));
}

static int
parse_str(const char *s)
{
	return (parse(s, strlen(s)));
}

/* "addr port" of a parsed address */
static const char *
addr(const struct sockaddr_storage *ss)
{
	static char		 buf[2][80];
	static int		 n;
	const struct sockaddr_in	*sin = (const void *)ss;
	const struct sockaddr_in6	*sin6 = (const void *)ss;
	char			 a[INET6_ADDRSTRLEN];
	char			*b = buf[n++ % 2];

	if (ss->ss_family == AF_INET) {
		inet_ntop(AF_INET, &sin->sin_addr, a, sizeof(a));
		snprintf(b, 80, "%s %u", a, ntohs(sin->sin_port));
	} else if (ss->ss_family == AF_INET6) {
		inet_ntop(AF_INET6, &sin6->sin6_addr, a, sizeof(a));
		snprintf(b, 80, "%s %u", a, ntohs(sin6->sin6_port));
	} else
		snprintf(b, 80, "none");
	return (b);
}

/* every shorter prefix of a good header asks for more */
static int
prefixes_more(const void *buf, size_t len)
{
	size_t	 i;

	for (i = 0; i < len; i++)
		if (parse(buf, i) != PP_MORE)
			return (0);
	return (1);
}

static void
sa4(struct sockaddr_storage *ss, const char *a, int port)
{
	struct sockaddr_in	*sin = (struct sockaddr_in *)ss;

	memset(ss, 0, sizeof(*ss));
	sin->sin_family = AF_INET;
	inet_pton(AF_INET, a, &sin->sin_addr);
	sin->sin_port = htons(port);
}

static void
sa6(struct sockaddr_storage *ss, const char *a, int port)
{
	struct sockaddr_in6	*sin6 = (struct sockaddr_in6 *)ss;

	memset(ss, 0, sizeof(*ss));
	sin6->sin6_family = AF_INET6;
	inet_pton(AF_INET6, a, &sin6->sin6_addr);
	sin6->sin6_port = htons(port);
}

static void
test_v1(void)
{
	const char	*h = "PROXY TCP4 192.0.2.1 198.51.100.2 56324 143\r\n";
	const char	*h6 = "PROXY TCP6 2001:db8::1 2001:db8::2 1 65535\r\n";
	const char	*max = "PROXY TCP6 ffff:ffff:ffff:ffff:ffff:ffff:ffff:"
	    "ffff ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff 65535 65535\r\n";
	char		 buf[512];

	CHECK("v1 tcp4", parse_str(h) == PP_OK && used == strlen(h) &&
	    info.version == 1 && !info.local &&
	    strcmp(addr(&info.src), "192.0.2.1 56324") == 0 &&
	    strcmp(addr(&info.dst), "198.51.100.2 143") == 0);
	CHECK("v1 prefixes", prefixes_more(h, strlen(h)));
	snprintf(buf, sizeof(buf), "%s\x16\x03\x01", h);
	CHECK("v1 then a ClientHello: the header alone is used",
	    parse_str(buf) == PP_OK && used == strlen(h));
	CHECK("v1 tcp6", parse_str(h6) == PP_OK && used == strlen(h6) &&
	    strcmp(addr(&info.src), "2001:db8::1 1") == 0 &&
	    strcmp(addr(&info.dst), "2001:db8::2 65535") == 0);
	CHECK("v1 longest", strlen(max) <= PP_V1_MAX &&
	    parse_str(max) == PP_OK);
	CHECK("v1 unknown", parse_str("PROXY UNKNOWN\r\n") == PP_OK &&
	    info.local && used == 15);
	CHECK("v1 unknown with addresses ignored",
	    parse_str("PROXY UNKNOWN ffff::1 ffff::2 1 2\r\nx") == PP_OK &&
	    info.local && used == 35);
	CHECK("v1 port 0", parse_str("PROXY TCP4 1.2.3.4 5.6.7.8 0 0\r\n") ==
	    PP_OK);

	CHECK("v1 bare LF", parse_str("PROXY TCP4 1.2.3.4 5.6.7.8 1 2\n") ==
	    PP_BAD && why != NULL);
	CHECK("v1 two spaces",
	    parse_str("PROXY TCP4 1.2.3.4  5.6.7.8 1 2\r\n") == PP_BAD);
	CHECK("v1 trailing space",
	    parse_str("PROXY TCP4 1.2.3.4 5.6.7.8 1 2 \r\n") == PP_BAD);
	CHECK("v1 leading zero port",
	    parse_str("PROXY TCP4 1.2.3.4 5.6.7.8 0143 2\r\n") == PP_BAD);
	CHECK("v1 port too big",
	    parse_str("PROXY TCP4 1.2.3.4 5.6.7.8 65536 2\r\n") == PP_BAD);
	CHECK("v1 six-digit port",
	    parse_str("PROXY TCP4 1.2.3.4 5.6.7.8 000001 2\r\n") == PP_BAD);
	CHECK("v1 tcp4 with an IPv6 address",
	    parse_str("PROXY TCP4 ::1 5.6.7.8 1 2\r\n") == PP_BAD);
	CHECK("v1 tcp6 with an IPv4 address",
	    parse_str("PROXY TCP6 1.2.3.4 ::1 1 2\r\n") == PP_BAD);
	CHECK("v1 leading zero in an address",
	    parse_str("PROXY TCP4 01.2.3.4 5.6.7.8 1 2\r\n") == PP_BAD);
	CHECK("v1 unknown family",
	    parse_str("PROXY TCP5 1.2.3.4 5.6.7.8 1 2\r\n") == PP_BAD);
	CHECK("v1 a field missing",
	    parse_str("PROXY TCP4 1.2.3.4 5.6.7.8 1\r\n") == PP_BAD);
	CHECK("v1 a field more",
	    parse_str("PROXY TCP4 1.2.3.4 5.6.7.8 1 2 3\r\n") == PP_BAD);
	CHECK("v1 NUL in an address",
	    parse("PROXY TCP4 1.2.3.4\0 5.6.7.8 1 2\r\n", 33) == PP_BAD);
	memset(buf, 'x', sizeof(buf));
	memcpy(buf, "PROXY UNKNOWN ", 14);
	CHECK("v1 no LF in 106 bytes: more", parse(buf, PP_V1_MAX - 1) ==
	    PP_MORE);
	CHECK("v1 no LF in 107 bytes: too long", parse(buf, PP_V1_MAX) ==
	    PP_BAD);
	CHECK("an IMAP command is no header", parse_str("a CAPABILITY") ==
	    PP_BAD);
	CHECK("a ClientHello is no header", parse("\x16\x03\x01", 3) ==
	    PP_BAD);
	CHECK("PROXX", parse_str("PROXX") == PP_BAD);
	CHECK("PROX: more", parse_str("PROX") == PP_MORE);
}

/* doc/proxy-protocol.txt's CRC-32C, for a header made here */
static uint32_t
crc32c(const unsigned char *p, size_t len)
{
	uint32_t	 crc = 0xffffffff;
	int		 i;

	while (len-- > 0) {
		crc ^= *p++;
		for (i = 0; i < 8; i++)
			crc = crc & 1 ? (crc >> 1) ^ 0x82f63b78 : crc >> 1;
	}
	return (crc ^ 0xffffffff);
}

static const unsigned char sig[12] = {
	0x0d, 0x0a, 0x0d, 0x0a, 0x00, 0x0d, 0x0a, 0x51, 0x55, 0x49, 0x54, 0x0a
};

/* a v2 header by hand: command, family, then body bytes */
static size_t
v2(unsigned char *buf, int cmd, int fam, const void *body, size_t blen)
{
	memcpy(buf, sig, 12);
	buf[12] = cmd;
	buf[13] = fam;
	buf[14] = blen >> 8;
	buf[15] = blen & 0xff;
	memcpy(buf + 16, body, blen);
	return (16 + blen);
}

static void
test_v2_written(void)
{
	struct sockaddr_storage	 src, dst;
	struct pp_info		 tls;
	unsigned char		 buf[600];
	int			 n;

	sa4(&src, "192.0.2.1", 56324);
	sa4(&dst, "198.51.100.2", 143);
	n = proxyproto_v2(buf, sizeof(buf), (struct sockaddr *)&src,
	    (struct sockaddr *)&dst, NULL);
	CHECK("v2 tcp4 written", n == 16 + 12 && buf[12] == 0x21 &&
	    buf[13] == 0x11);
	CHECK("v2 tcp4 read back", parse(buf, n) == PP_OK && used ==
	    (size_t)n && info.version == 2 && !info.local &&
	    strcmp(addr(&info.src), "192.0.2.1 56324") == 0 &&
	    strcmp(addr(&info.dst), "198.51.100.2 143") == 0 && !info.ssl);
	CHECK("v2 prefixes", prefixes_more(buf, n));
	buf[n] = 'x';
	CHECK("v2 then more bytes", parse(buf, n + 1) == PP_OK &&
	    used == (size_t)n);

	sa6(&dst, "2001:db8::2", 993);
	n = proxyproto_v2(buf, sizeof(buf), (struct sockaddr *)&src,
	    (struct sockaddr *)&dst, NULL);
	CHECK("v2 IPv4 beside IPv6: both mapped", n == 16 + 36 &&
	    parse(buf, n) == PP_OK &&
	    strcmp(addr(&info.src), "::ffff:192.0.2.1 56324") == 0 &&
	    strcmp(addr(&info.dst), "2001:db8::2 993") == 0);

	memset(&tls, 0, sizeof(tls));
	tls.ssl = 1;
	strlcpy(tls.ssl_version, "TLSv1.3", sizeof(tls.ssl_version));
	strlcpy(tls.ssl_cipher, "TLS_AES_256_GCM_SHA384",
	    sizeof(tls.ssl_cipher));
	strlcpy(tls.authority, "imap.example.org", sizeof(tls.authority));
	n = proxyproto_v2(buf, sizeof(buf), (struct sockaddr *)&src,
	    (struct sockaddr *)&dst, &tls);
	CHECK("v2 TLVs read back", n > 16 + 36 && parse(buf, n) == PP_OK &&
	    used == (size_t)n && info.ssl &&
	    strcmp(info.ssl_version, "TLSv1.3") == 0 &&
	    strcmp(info.ssl_cipher, "TLS_AES_256_GCM_SHA384") == 0 &&
	    strcmp(info.authority, "imap.example.org") == 0);
	CHECK("v2 TLVs prefixes", prefixes_more(buf, n));
	CHECK("v2 does not fit", proxyproto_v2(buf, 60,
	    (struct sockaddr *)&src, (struct sockaddr *)&dst, &tls) == -1);

	n = proxyproto_v1((char *)buf, sizeof(buf), (struct sockaddr *)&src,
	    (struct sockaddr *)&dst);
	CHECK("v1 written, mapped",
	    n > 0 && strcmp((char *)buf, "PROXY TCP6 ::ffff:192.0.2.1 "
	    "2001:db8::2 56324 993\r\n") == 0 && parse(buf, n) == PP_OK);
	sa4(&dst, "198.51.100.2", 143);
	n = proxyproto_v1((char *)buf, sizeof(buf), (struct sockaddr *)&src,
	    (struct sockaddr *)&dst);
	CHECK("v1 written", n > 0 && strcmp((char *)buf,
	    "PROXY TCP4 192.0.2.1 198.51.100.2 56324 143\r\n") == 0);
	CHECK("v1 does not fit", proxyproto_v1((char *)buf, 20,
	    (struct sockaddr *)&src, (struct sockaddr *)&dst) == -1);
	src.ss_family = AF_UNIX;
	CHECK("v1 of no known family", proxyproto_v1((char *)buf,
	    sizeof(buf), (struct sockaddr *)&src, (struct sockaddr *)&dst) ==
	    -1);
	CHECK("v2 of no known family", proxyproto_v2(buf, sizeof(buf),
	    (struct sockaddr *)&src, (struct sockaddr *)&dst, NULL) == -1);
}

static void
test_v2_crafted(void)
{
	static const unsigned char	 a4[12] = {
		192, 0, 2, 1, 198, 51, 100, 2, 0xdc, 0x04, 0x00, 0x8f
	};
	unsigned char			 body[600], buf[5000];
	size_t				 n;
	uint32_t			 crc;

	n = v2(buf, 0x20, 0x00, "", 0);
	CHECK("v2 local", parse(buf, n) == PP_OK && info.local &&
	    used == 16);
	n = v2(buf, 0x20, 0x77, "junk", 4);
	CHECK("v2 local: its block is ignored", parse(buf, n) == PP_OK &&
	    info.local && used == 20);
	n = v2(buf, 0x21, 0x00, "", 0);
	CHECK("v2 proxy unspec: no address", parse(buf, n) == PP_OK &&
	    info.local);
	memset(body, 0, sizeof(body));
	n = v2(buf, 0x21, 0x31, body, 216);
	CHECK("v2 unix stream: no address", parse(buf, n) == PP_OK &&
	    info.local);

	n = v2(buf, 0x21, 0x11, a4, sizeof(a4));
	CHECK("v2 tcp4 by hand", parse(buf, n) == PP_OK &&
	    strcmp(addr(&info.src), "192.0.2.1 56324") == 0);
	buf[12] = 0x11;
	CHECK("v2 with version 1", parse(buf, n) == PP_BAD);
	buf[12] = 0x22;
	CHECK("v2 command 2", parse(buf, n) == PP_BAD);
	buf[12] = 0x21;
	buf[13] = 0x12;
	CHECK("v2 udp", parse(buf, n) == PP_BAD);
	buf[13] = 0x41;
	CHECK("v2 family 4", parse(buf, n) == PP_BAD);
	CHECK("v2 judged before the whole header", parse(buf, 16) == PP_BAD);
	n = v2(buf, 0x21, 0x11, a4, 8);
	CHECK("v2 too short for its addresses", parse(buf, n) == PP_BAD);
	n = v2(buf, 0x21, 0x21, a4, sizeof(a4));
	CHECK("v2 tcp6 too short", parse(buf, 16) == PP_BAD);
	buf[5] = 'x';
	CHECK("v2 signature", parse(buf, 12) == PP_BAD);
	buf[14] = 0x10;
	buf[15] = 0x00;
	memcpy(buf, sig, 12);
	buf[12] = 0x21;
	buf[13] = 0x11;
	CHECK("v2 longer than 4096", parse(buf, 16) == PP_BAD);
	buf[14] = 0x0f;
	buf[15] = 0xf0;
	CHECK("v2 4096: more", parse(buf, 16) == PP_MORE);

	/* TLVs after the addresses */
	memcpy(body, a4, 12);
	memcpy(body + 12, "\x02\x00\x05mx.ex", 8);
	n = v2(buf, 0x21, 0x11, body, 20);
	CHECK("v2 authority", parse(buf, n) == PP_OK &&
	    strcmp(info.authority, "mx.ex") == 0);
	n = v2(buf, 0x21, 0x11, body, 19);
	CHECK("v2 TLV overruns", parse(buf, n) == PP_BAD);
	n = v2(buf, 0x21, 0x11, body, 14);
	CHECK("v2 TLV header cut", parse(buf, n) == PP_BAD);
	memcpy(body + 12, "\x02\x00\x05mx ex", 8);
	n = v2(buf, 0x21, 0x11, body, 20);
	CHECK("v2 authority with a space", parse(buf, n) == PP_BAD);
	memcpy(body + 12, "\x02\x00\x00", 3);
	n = v2(buf, 0x21, 0x11, body, 15);
	CHECK("v2 empty authority", parse(buf, n) == PP_BAD);
	memcpy(body + 12, "\x05\x00\x00", 3);
	n = v2(buf, 0x21, 0x11, body, 15);
	CHECK("v2 other TLV skipped", parse(buf, n) == PP_OK);
	memcpy(body + 12, "\x20\x00\x04\x01\x00\x00\x00", 7);
	n = v2(buf, 0x21, 0x11, body, 19);
	CHECK("v2 SSL TLV too short", parse(buf, n) == PP_BAD);
	memcpy(body + 12, "\x20\x00\x0c\x01\x00\x00\x00\x00"
	    "\x21\x00\x04TLS1", 15);
	n = v2(buf, 0x21, 0x11, body, 27);
	CHECK("v2 SSL TLV", parse(buf, n) == PP_OK && info.ssl &&
	    strcmp(info.ssl_version, "TLS1") == 0);
	memcpy(body + 12, "\x20\x00\x0c\x00\x00\x00\x00\x00"
	    "\x21\x00\x05TLS1", 15);
	n = v2(buf, 0x21, 0x11, body, 27);
	CHECK("v2 SSL sub-TLV overruns", parse(buf, n) == PP_BAD);

	/* a checksum over the whole header, its own bytes zero */
	CHECK("crc32c check value", crc32c((const unsigned char *)
	    "123456789", 9) == 0xe3069283);
	memcpy(body + 12, "\x03\x00\x04\x00\x00\x00\x00", 7);
	n = v2(buf, 0x21, 0x11, body, 19);
	crc = crc32c(buf, n);
	buf[n - 4] = crc >> 24;
	buf[n - 3] = crc >> 16;
	buf[n - 2] = crc >> 8;
	buf[n - 1] = crc;
	CHECK("v2 checksum", parse(buf, n) == PP_OK);
	buf[16] ^= 1;
	CHECK("v2 checksum mismatch", parse(buf, n) == PP_BAD);
	buf[16] ^= 1;
	buf[n - 1] ^= 1;
	CHECK("v2 checksum wrong", parse(buf, n) == PP_BAD);
	memcpy(body + 12, "\x03\x00\x03\x00\x00\x00", 6);
	n = v2(buf, 0x21, 0x11, body, 18);
	CHECK("v2 checksum of 3 bytes", parse(buf, n) == PP_BAD);
}

int
main(void)
{
	test_v1();
	test_v2_written();
	test_v2_crafted();
	UNIT_EXIT();
}
