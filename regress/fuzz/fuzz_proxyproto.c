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
 * libFuzzer target for proxyproto.c: the first bytes a load balancer
 * sends on a "listen ... proxy_protocol" socket.  Beyond memory
 * safety: an accepted header lies within the input and every shorter
 * prefix of it asks for more (the worker consumes what a PP_MORE saw,
 * so none of it may belong to the client); what it said writes out and
 * reads back the same.
 */

#include <sys/types.h>
#include <sys/socket.h>

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "proxyproto.h"

int	LLVMFuzzerTestOneInput(const uint8_t *, size_t);

#define REQUIRE(c)	do { if (!(c)) abort(); } while (0)

static void
check_strings(const struct pp_info *pi)
{
	REQUIRE(memchr(pi->authority, '\0', sizeof(pi->authority)) != NULL);
	REQUIRE(memchr(pi->ssl_version, '\0', sizeof(pi->ssl_version)) !=
	    NULL);
	REQUIRE(memchr(pi->ssl_cipher, '\0', sizeof(pi->ssl_cipher)) !=
	    NULL);
}

/* a header of ours for what was read says the same again */
static void
round_trip(const struct pp_info *pi)
{
	struct pp_info	 back;
	unsigned char	 buf[1024];
	const char	*why;
	size_t		 used;
	int		 n;

	if (pi->local)
		return;
	n = proxyproto_v2(buf, sizeof(buf), (const struct sockaddr *)&pi->src,
	    (const struct sockaddr *)&pi->dst, pi);
	REQUIRE(n > 0);
	REQUIRE(proxyproto_parse(buf, n, &back, &used, &why) == PP_OK);
	REQUIRE(used == (size_t)n && back.srclen == pi->srclen &&
	    memcmp(&back.src, &pi->src, pi->srclen) == 0 &&
	    memcmp(&back.dst, &pi->dst, pi->dstlen) == 0 &&
	    back.ssl == pi->ssl &&
	    strcmp(back.authority, pi->authority) == 0);
	/* the TLS details go out only for a client that spoke TLS */
	REQUIRE(!pi->ssl || (strcmp(back.ssl_version, pi->ssl_version) == 0 &&
	    strcmp(back.ssl_cipher, pi->ssl_cipher) == 0));
	n = proxyproto_v1((char *)buf, sizeof(buf),
	    (const struct sockaddr *)&pi->src,
	    (const struct sockaddr *)&pi->dst);
	REQUIRE(n > 0 && n <= PP_V1_MAX);
	REQUIRE(proxyproto_parse(buf, n, &back, &used, &why) == PP_OK &&
	    used == (size_t)n);
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct pp_info	 pi, again;
	const char	*why;
	size_t		 used, used2, k;
	int		 r;

	r = proxyproto_parse(data, size, &pi, &used, &why);
	REQUIRE(r == PP_OK || r == PP_MORE || r == PP_BAD);
	REQUIRE((r == PP_BAD) == (why != NULL));
	if (r == PP_MORE)
		REQUIRE(size < PP_HDR_MAX && used == 0);
	if (r != PP_OK)
		return (0);
	REQUIRE(used >= 15 && used <= size && used <= PP_HDR_MAX);
	REQUIRE(pi.version == 1 || pi.version == 2);
	REQUIRE(pi.local || (pi.srclen > 0 && pi.dstlen > 0 &&
	    pi.src.ss_family == pi.dst.ss_family));
	check_strings(&pi);
	for (k = 0; k < used; k += 1 + k / 4)
		REQUIRE(proxyproto_parse(data, k, &again, &used2, &why) ==
		    PP_MORE);
	REQUIRE(proxyproto_parse(data, used - 1, &again, &used2, &why) ==
	    PP_MORE);
	REQUIRE(proxyproto_parse(data, used, &again, &used2, &why) ==
	    PP_OK && used2 == used);
	round_trip(&pi);
	return (0);
}
