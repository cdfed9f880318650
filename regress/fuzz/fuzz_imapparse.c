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
 * libFuzzer target for the pre-login parser.  The first two bytes pick
 * the buffer size (imap_client_buffer) and the size of the pieces the
 * "client" sends; the rest is the client's byte stream.  It is fed the
 * way imap.c's worker feeds it: into a buffer of exactly that size,
 * parse, drain what was consumed, read more.  Besides the sanitizers'
 * checks, every answer of the parser is held to its contract in
 * imapparse.h.
 */

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "imapparse.h"

int	LLVMFuzzerTestOneInput(const uint8_t *, size_t);

#define REQUIRE(c)	do { if (!(c)) abort(); } while (0)

static int
is_tag_ok(const char *tag)
{
	return (imap_valid_tag(tag, strlen(tag)));
}

static void
check_complete(struct imap_cmd *cmd, const char *buf, size_t len,
    size_t max, size_t consumed)
{
	struct imap_cmd	 again;
	char		*scratch2;
	size_t		 c2, i;
	int		 depth = 0;

	REQUIRE(consumed > 0 && consumed <= len);
	REQUIRE(buf[consumed - 1] == '\n');
	REQUIRE(is_tag_ok(cmd->tag));
	REQUIRE(cmd->name[0] != '\0' && strlen(cmd->name) <= IMAP_NAMELEN);
	for (i = 0; cmd->name[i] != '\0'; i++)
		REQUIRE(!(cmd->name[i] >= 'a' && cmd->name[i] <= 'z') &&
		    (unsigned char)cmd->name[i] < 0x80);
	REQUIRE(cmd->nargs >= 0 && cmd->nargs <= IMAP_MAXARGS);
	REQUIRE(cmd->error == NULL && !cmd->close);
	for (i = 0; i < (size_t)cmd->nargs; i++) {
		struct imap_arg	*a = &cmd->args[i];

		switch (a->type) {
		case IMAP_ARG_LIST_OPEN:
			REQUIRE(depth++ == 0);
			continue;
		case IMAP_ARG_LIST_CLOSE:
			REQUIRE(depth-- == 1);
			continue;
		case IMAP_ARG_ATOM:
			REQUIRE(a->len > 0);
			/* FALLTHROUGH */
		case IMAP_ARG_QUOTED:
			REQUIRE(memchr(a->data, '\0', a->len) == NULL);
			/* FALLTHROUGH */
		case IMAP_ARG_LITERAL:
			REQUIRE(a->data >= cmd->scratch &&
			    a->len < cmd->scratchsz &&
			    (size_t)(a->data - cmd->scratch) <
			    cmd->scratchsz - a->len);
			REQUIRE(a->data[a->len] == '\0');
			break;
		default:
			abort();
		}
	}
	REQUIRE(depth == 0);

	/* stateless: the command alone parses the same, to the byte */
	if ((scratch2 = malloc(max)) == NULL)
		abort();
	imap_cmd_init(&again, scratch2, max);
	REQUIRE(imap_parse(&again, buf, consumed, max, &c2) ==
	    IMAP_PARSE_COMPLETE);
	REQUIRE(c2 == consumed && again.nargs == cmd->nargs &&
	    strcmp(again.tag, cmd->tag) == 0 &&
	    strcmp(again.name, cmd->name) == 0);
	for (i = 0; i < (size_t)cmd->nargs; i++)
		REQUIRE(again.args[i].type == cmd->args[i].type &&
		    again.args[i].len == cmd->args[i].len &&
		    memcmp(again.args[i].data, cmd->args[i].data,
		    cmd->args[i].len) == 0);
	free(scratch2);
}

/* 1: the session goes on, 0: it would be closed or must wait forever */
static int
check_status(struct imap_cmd *cmd, enum imap_parse_status st,
    const char *buf, size_t len, size_t max, size_t consumed)
{
	REQUIRE(consumed <= len);
	if (st != IMAP_PARSE_COMPLETE)
		REQUIRE(cmd->nargs == 0);
	switch (st) {
	case IMAP_PARSE_COMPLETE:
		check_complete(cmd, buf, len, max, consumed);
		return (1);
	case IMAP_PARSE_MORE:
		/* a full buffer that asks for more would hang the session */
		REQUIRE(consumed == 0 && len < max);
		return (1);
	case IMAP_PARSE_LITERAL:
		REQUIRE(consumed == 0 && len < max && cmd->lit_sync == 1);
		REQUIRE(cmd->lit_offset <= len && cmd->lit_len <= max &&
		    cmd->lit_offset + cmd->lit_len + 2 <= max &&
		    len - cmd->lit_offset <= cmd->lit_len);
		REQUIRE(buf[cmd->lit_offset - 1] == '\n');
		REQUIRE(is_tag_ok(cmd->tag));
		return (1);
	case IMAP_PARSE_BAD:
		REQUIRE(consumed > 0 && buf[consumed - 1] == '\n');
		REQUIRE(cmd->error != NULL);
		REQUIRE(cmd->tag[0] == '\0' || is_tag_ok(cmd->tag));
		return (!cmd->close);
	case IMAP_PARSE_TOOBIG:
		REQUIRE(cmd->error != NULL);
		/* lit_len is 0 for a line, but also for a {0} too big */
		if (strcmp(cmd->error, "[TOOBIG] line too long") == 0) {
			REQUIRE(consumed == len && len >= max && cmd->close &&
			    cmd->lit_len == 0 && cmd->lit_offset == 0);
			return (0);
		}
		REQUIRE(strcmp(cmd->error, "[TOOBIG] literal too big") == 0);
		REQUIRE(consumed == cmd->lit_offset && consumed > 0 &&
		    buf[consumed - 1] == '\n');
		REQUIRE(cmd->close == !cmd->lit_sync);
		REQUIRE(cmd->lit_len > max ||
		    cmd->lit_offset + cmd->lit_len + 2 > max);
		return (!cmd->close);
	}
	abort();
}

/* imap_parse_line on what is buffered, as sasl_line() calls it */
static void
check_line(const char *buf, size_t len, size_t max)
{
	enum imap_parse_status	 st;
	size_t			 linelen, consumed;

	st = imap_parse_line(buf, len, max, &linelen, &consumed);
	switch (st) {
	case IMAP_PARSE_COMPLETE:
		REQUIRE(consumed > 0 && consumed <= len &&
		    buf[consumed - 1] == '\n' &&
		    memchr(buf, '\n', consumed - 1) == NULL);
		REQUIRE(linelen == consumed - 1 ||
		    (linelen == consumed - 2 && buf[linelen] == '\r'));
		break;
	case IMAP_PARSE_MORE:
		REQUIRE(len < max && consumed == 0 && linelen == 0 &&
		    memchr(buf, '\n', len) == NULL);
		break;
	case IMAP_PARSE_TOOBIG:
		REQUIRE(len >= max && consumed == 0 &&
		    memchr(buf, '\n', len) == NULL);
		break;
	default:
		abort();
	}
}

/*
 * The worker's loop: the buffer holds at most max bytes; each round
 * the client sends up to chunk more, then the parser runs until it
 * needs more.
 */
static void
feed(const uint8_t *data, size_t size, size_t max, size_t chunk)
{
	struct imap_cmd		 cmd;
	enum imap_parse_status	 st;
	char			*buf, *scratch;
	size_t			 len = 0, off = 0, n, consumed;
	int			 rounds = 0;

	if ((buf = malloc(max)) == NULL || (scratch = malloc(max)) == NULL)
		abort();
	imap_cmd_init(&cmd, scratch, max);
	while (off < size || len > 0) {
		n = size - off;
		if (n > chunk)
			n = chunk;
		if (n > max - len)
			n = max - len;
		memcpy(buf + len, data + off, n);
		len += n;
		off += n;
		check_line(buf, len, max);
		for (;;) {
			st = imap_parse(&cmd, buf, len, max, &consumed);
			if (!check_status(&cmd, st, buf, len, max, consumed))
				goto done;
			if (st == IMAP_PARSE_MORE || st == IMAP_PARSE_LITERAL)
				break;
			imap_cmd_clear(&cmd);
			REQUIRE(cmd.nargs == 0);
			memmove(buf, buf + consumed, len - consumed);
			len -= consumed;
			if (++rounds > 100000)
				abort();
		}
		if (n == 0)
			break;		/* the client sent all it had */
	}
 done:
	free(buf);
	free(scratch);
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	size_t	 max, chunk;

	if (size < 2)
		return (0);
	/* below 64 the configuration refuses it, but the parser copes */
	max = 16 + (data[0] | (data[1] & 0x0f) << 8);
	chunk = 1 + (data[1] >> 4) * (data[1] >> 4) * 16;
	data += 2;
	size -= 2;
	feed(data, size, max, chunk);
	/* all at once, in a buffer that just holds it */
	if (size > 0)
		feed(data, size, size, size);
	return (0);
}
