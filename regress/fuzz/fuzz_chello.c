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
 * libFuzzer target for chello.c: the first bytes a TLS client sends,
 * read by the imap worker before libtls sees them.  Beyond memory
 * safety: an accepted hello lies within the input and its lists
 * within the message, and every shorter prefix of it asks for more.
 */

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "chello.h"

int	LLVMFuzzerTestOneInput(const uint8_t *, size_t);

#define REQUIRE(c)	do { if (!(c)) abort(); } while (0)

static struct chello	 ch;

static void
check_list(const struct chello_list *l)
{
	if (l->p == NULL) {
		REQUIRE(l->len == 0);
		return;
	}
	REQUIRE(l->p >= ch.msg && l->p + l->len <= ch.msg + ch.msglen);
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	size_t	 rawlen;
	int	 r;

	r = chello_parse(data, size, &ch);
	REQUIRE(r == CHELLO_OK || r == CHELLO_MORE || r == CHELLO_BAD ||
	    r == CHELLO_TOOBIG || r == CHELLO_NOTTLS);
	/* only what does not begin as a TLS record goes to libtls */
	if (r == CHELLO_NOTTLS)
		REQUIRE(size > 0 && ((data[0] != 21 && data[0] != 22) ||
		    (size > 1 && data[1] != 3)));
	if (r != CHELLO_OK)
		return (0);
	REQUIRE(ch.rawlen > 0 && ch.rawlen <= size);
	REQUIRE(ch.msglen >= 4 && ch.msglen <= sizeof(ch.msg));
	REQUIRE(memchr(ch.sni, '\0', sizeof(ch.sni)) != NULL);
	check_list(&ch.ciphers);
	check_list(&ch.sigalgs);
	check_list(&ch.groups);
	check_list(&ch.versions);
	check_list(&ch.alpn);
	(void)chello_alpn_has(&ch, "imap");
	(void)chello_tls13(&ch);
	(void)chello_ecdsa_ok(&ch, 0, 256);
	(void)chello_ecdsa_ok(&ch, 1, 384);
	rawlen = ch.rawlen;
	REQUIRE(chello_parse(data, rawlen - 1, &ch) == CHELLO_MORE);
	REQUIRE(chello_parse(data, rawlen, &ch) == CHELLO_OK &&
	    ch.rawlen == rawlen);
	return (0);
}
