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
 * imapparse: the pre-login IMAP command parser (RFC 3501/9051, with
 * LITERAL+ non-synchronising literals, RFC 7888).
 *
 * The parser is stateless: it is handed everything buffered so far and
 * parses the first command from the start.  It never reads past len and
 * refuses anything that would need more than max bytes of buffer
 * *before* the caller buffers it.
 *
 * Lines end in CRLF or a bare LF (accepted, as nginx does).  Tags are
 * 1-64 ASTRING-CHARs other than "+" (7-bit).  Arguments: atoms (8-bit
 * and "]" allowed; NIL is an atom), quoted strings (only \\ and \"
 * escapes), literals {n} / {n+} followed by SP, CRLF or ")", and one
 * level of parentheses.  Runs of spaces between tokens are tolerated.
 * A NUL outside a literal is a syntax error.
 */

#ifndef IMAPPARSE_H
#define IMAPPARSE_H

#include <stddef.h>

#define IMAP_MAXARGS	64	/* ID takes up to 30 pairs plus ( and ) */
#define IMAP_NAMELEN	32

enum imap_argtype {
	IMAP_ARG_ATOM,		/* NIL is an atom too */
	IMAP_ARG_QUOTED,
	IMAP_ARG_LITERAL,
	IMAP_ARG_LIST_OPEN,	/* "(" */
	IMAP_ARG_LIST_CLOSE,	/* ")" */
};

struct imap_arg {
	enum imap_argtype	 type;
	const char		*data;	/* into cmd->scratch, NUL-terminated;
					   "(" / ")" static for LIST_* */
	size_t			 len;	/* may contain NULs for literals */
};

/*
 * On every status but COMPLETE, nargs is 0.  tag is set whenever it was
 * read (else ""), error is set for BAD and TOOBIG (the reply text after
 * "<tag> BAD "), and close says the session cannot go on after the reply.
 */
enum imap_parse_status {
	IMAP_PARSE_COMPLETE,	/* one command; *consumed bytes used */
	IMAP_PARSE_MORE,	/* incomplete, read more; consumed 0 */
	IMAP_PARSE_LITERAL,	/* synchronising literal waits for "+":
				   lit_offset, lit_len set, consumed 0;
				   returned again (same offset) until the
				   data and the byte after it are in, so
				   send "+" once per offset; {0} too */
	IMAP_PARSE_BAD,		/* syntax error; consumed through the LF
				   of the physical line holding the error;
				   close set when that line ends in a
				   non-sync literal {n+} */
	IMAP_PARSE_TOOBIG,	/* literal: lit_len (SIZE_MAX if it
				   overflowed) does not fit max; lit_sync;
				   consumed = lit_offset, through "{n}\r\n";
				   close = !lit_sync; error "[TOOBIG]
				   literal too big".  line: no LF within
				   max bytes; lit_len 0, consumed = len,
				   close 1, error "[TOOBIG] line too long" */
};

struct imap_cmd {
	char		 tag[IMAP_NAMELEN * 2 + 1];	/* "" if unreadable */
	char		 name[IMAP_NAMELEN + 1];	/* upper-cased */
	int		 nargs;
	struct imap_arg	 args[IMAP_MAXARGS];
	size_t		 lit_offset;	/* where the literal data starts */
	size_t		 lit_len;
	int		 lit_sync;
	int		 close;		/* BAD/TOOBIG that must close */
	const char	*error;		/* static text for the BAD reply */
	char		*scratch;	/* caller-owned, size max */
	size_t		 scratchsz;
};

void	imap_cmd_init(struct imap_cmd *, char *, size_t);
void	imap_cmd_clear(struct imap_cmd *);	/* wipes scratch, args */
enum imap_parse_status
	imap_parse(struct imap_cmd *, const char *, size_t, size_t, size_t *);
/*
 * a bare line (AUTHENTICATE continuation): COMPLETE (linelen without
 * the CRLF or LF, consumed with it), MORE, or TOOBIG (no LF in max)
 */
enum imap_parse_status
	imap_parse_line(const char *, size_t, size_t, size_t *, size_t *);
int	imap_valid_tag(const char *, size_t);	/* 1 valid, 0 not */

#endif /* IMAPPARSE_H */
