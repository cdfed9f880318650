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
 * chello.c: a strict reader of a TLS ClientHello as it comes off the
 * socket (records, then the handshake message), for what libtls does
 * not let a server decide: which certificate type the client can
 * verify, and whether its ALPN list names imap.  No allocation, no
 * system call: it is fuzzed alone (regress/fuzz/fuzz_chello.c).
 */

#ifndef CHELLO_H
#define CHELLO_H

#include <stddef.h>
#include <stdint.h>

/*
 * The largest ClientHello read.  OpenSSL takes up to 128 KB, but no
 * real client sends more than a few KB: a larger one is refused, never
 * passed on unread (its ALPN list would go unchecked).
 */
#define CHELLO_MSG_MAX		(4 + 16384)
/* the records that carry it: a few splits, not one byte per record */
#define CHELLO_RAW_MAX		(CHELLO_MSG_MAX + 5 * 64)

#define CHELLO_MORE		0	/* a complete hello needs more bytes */
#define CHELLO_OK		1
#define CHELLO_BAD		(-1)	/* TLS records, but no hello we read */
#define CHELLO_TOOBIG		(-2)	/* a hello larger than CHELLO_MSG_MAX */
#define CHELLO_NOTTLS		(-3)	/* no TLS record at all */

/* a list from the hello: NULL when its extension was not sent */
struct chello_list {
	const unsigned char	*p;
	size_t			 len;
};

/*
 * The parsed hello.  The lists point into msg: a struct chello is
 * never copied.
 */
struct chello {
	unsigned char		 msg[CHELLO_MSG_MAX];
	size_t			 msglen;
	size_t			 rawlen;	/* bytes of its records */
	uint16_t		 version;	/* legacy_version */
	struct chello_list	 ciphers;	/* 2 bytes each */
	struct chello_list	 sigalgs;	/* 2 bytes each */
	struct chello_list	 groups;	/* 2 bytes each */
	struct chello_list	 versions;	/* 2 bytes each */
	struct chello_list	 alpn;		/* ProtocolNameList */
	char			 sni[256];	/* "": none */
};

int	chello_parse(const unsigned char *, size_t, struct chello *);
int	chello_alpn_has(const struct chello *, const char *);
int	chello_tls13(const struct chello *);
int	chello_ecdsa_ok(const struct chello *, int, int);

#endif /* CHELLO_H */
