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
 * proxyproto.c: the PROXY protocol, versions 1 and 2 (HAProxy's
 * doc/proxy-protocol.txt): a strict reader of the header a load
 * balancer puts before a client's bytes, and the writer of the one we
 * put before ours to a backend.  No allocation, no system call: it is
 * fuzzed alone (regress/fuzz/fuzz_proxyproto.c).
 */

#ifndef PROXYPROTO_H
#define PROXYPROTO_H

#include <sys/types.h>
#include <sys/socket.h>

#include <stddef.h>

#define PP_V1_MAX	107	/* the longest version 1 line, CRLF included */
#define PP_V2_MIN	16	/* signature, command, family, length */
#define PP_HDR_MAX	4096	/* a longer header is refused, as nginx does */

#define PP_MORE		0	/* what came so far is a header's start */
#define PP_OK		1
#define PP_BAD		(-1)	/* not a header we accept; why says why */

/* what a header said; the strings are "" when not sent */
struct pp_info {
	int			 version;	/* 1 or 2 */
	int			 local;		/* no client address: v1 UNKNOWN,
						   v2 LOCAL, UNSPEC or UNIX */
	struct sockaddr_storage	 src;		/* the client */
	struct sockaddr_storage	 dst;		/* where it connected to */
	socklen_t		 srclen;
	socklen_t		 dstlen;
	/* version 2 TLVs */
	char			 authority[256];	/* the client's SNI */
	int			 ssl;		/* PP2_TYPE_SSL, client bit set */
	char			 ssl_version[32];	/* "TLSv1.3" */
	char			 ssl_cipher[64];
};

/*
 * The header at the start of buf, of len bytes so far.  PP_OK: the
 * header is the first *used bytes; PP_MORE: every byte of buf belongs
 * to a header not complete yet (the caller may consume them all and
 * read more); PP_BAD: refused, *why a static reason.
 */
int	proxyproto_parse(const unsigned char *, size_t, struct pp_info *,
	    size_t *, const char **);

/*
 * The header for a connection from src to dst (the address the client
 * reached); the TLVs of info are sent when set (version 2 only).  The
 * length written, or -1 when it does not fit or the addresses are of
 * no family the protocol knows.
 */
int	proxyproto_v1(char *, size_t, const struct sockaddr *,
	    const struct sockaddr *);
int	proxyproto_v2(unsigned char *, size_t, const struct sockaddr *,
	    const struct sockaddr *, const struct pp_info *);

#endif /* PROXYPROTO_H */
