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
 * The pre-login command parser.  It keeps no state between calls: the
 * caller hands it everything buffered so far and it parses the first
 * command again from the start.  Pre-login commands are short, so the
 * rescan costs little and a client cannot desynchronise a state machine.
 *
 * A line may end in CRLF or in a bare LF (as nginx accepts); a CR that
 * is not followed by LF is a syntax error.
 */

#include <stdint.h>
#include <string.h>

#include "imapparse.h"

#define P_OK		(-1)	/* token parsed, go on */
#define P_NOROOM	(-2)	/* scratch exhausted: treat as too long */

struct parser {
	struct imap_cmd	*cmd;
	const unsigned char *buf;
	size_t		 len;
	size_t		 max;
	size_t		 pos;
	size_t		 errpos;	/* where a syntax error was found */
	size_t		 sused;		/* bytes of cmd->scratch in use */
	size_t		*consumed;
};

/* ASTRING-CHAR (RFC 3501) minus "+", which would read as a continuation */
static int
tag_char(unsigned char c)
{
	if (c <= 0x20 || c >= 0x7f)
		return (0);
	return (strchr("(){%*\"\\+", c) == NULL);
}

/*
 * Arguments are lenient: ']', list wildcards and 8-bit bytes pass,
 * as clients put UTF-8 user names in atoms.
 */
static int
atom_char(unsigned char c)
{
	if (c <= 0x20 || c == 0x7f)
		return (0);
	return (strchr("(){\"\\", c) == NULL);
}

static int
bad(struct parser *p, const char *reason)
{
	p->errpos = p->pos;
	p->cmd->error = reason;
	return (IMAP_PARSE_BAD);
}

static int
scratch_put(struct parser *p, const unsigned char *s, size_t n)
{
	struct imap_cmd	*cmd = p->cmd;

	if (cmd->scratch == NULL || n >= cmd->scratchsz - p->sused)
		return (P_NOROOM);
	memcpy(cmd->scratch + p->sused, s, n);
	p->sused += n;
	return (P_OK);
}

static int
arg_begin(struct parser *p, enum imap_argtype type)
{
	struct imap_cmd	*cmd = p->cmd;
	struct imap_arg	*arg;

	if (cmd->nargs >= IMAP_MAXARGS)
		return (bad(p, "too many arguments"));
	arg = &cmd->args[cmd->nargs];
	arg->type = type;
	arg->data = cmd->scratch + p->sused;
	arg->len = 0;
	return (P_OK);
}

/* NUL-terminate the argument begun by arg_begin() and count it */
static int
arg_end(struct parser *p)
{
	struct imap_cmd	*cmd = p->cmd;
	struct imap_arg	*arg = &cmd->args[cmd->nargs];

	if (cmd->scratch == NULL || p->sused >= cmd->scratchsz)
		return (P_NOROOM);
	arg->len = cmd->scratch + p->sused - arg->data;
	cmd->scratch[p->sused++] = '\0';
	cmd->nargs++;
	return (P_OK);
}

static int
parse_eol(struct parser *p)
{
	if (p->buf[p->pos] == '\n') {
		p->pos++;
		return (P_OK);
	}
	/* a CR */
	if (p->pos + 1 >= p->len)
		return (IMAP_PARSE_MORE);
	if (p->buf[p->pos + 1] != '\n')
		return (bad(p, "invalid line ending"));
	p->pos += 2;
	return (P_OK);
}

static int
parse_tag(struct parser *p)
{
	struct imap_cmd	*cmd = p->cmd;
	size_t		 start = p->pos, n;
	unsigned char	 c;

	while (p->pos < p->len && tag_char(p->buf[p->pos]))
		p->pos++;
	if (p->pos >= p->len)
		return (IMAP_PARSE_MORE);
	c = p->buf[p->pos];
	n = p->pos - start;
	if (n == 0 && (c == '\r' || c == '\n'))
		return (bad(p, "empty line"));
	if (n == 0 || (c != ' ' && c != '\r' && c != '\n') ||
	    !imap_valid_tag((const char *)p->buf + start, n))
		return (bad(p, "invalid tag"));
	memcpy(cmd->tag, p->buf + start, n);
	cmd->tag[n] = '\0';
	if (c != ' ')
		return (bad(p, "missing command"));
	return (P_OK);
}

static int
parse_name(struct parser *p)
{
	struct imap_cmd	*cmd = p->cmd;
	size_t		 start, i, n;
	unsigned char	 c;

	while (p->pos < p->len && p->buf[p->pos] == ' ')
		p->pos++;
	start = p->pos;
	while (p->pos < p->len && atom_char(p->buf[p->pos]))
		p->pos++;
	if (p->pos >= p->len)
		return (IMAP_PARSE_MORE);
	n = p->pos - start;
	if (n == 0) {
		c = p->buf[p->pos];
		return (bad(p, c == '\r' || c == '\n' ?
		    "missing command" : "invalid command"));
	}
	if (n > IMAP_NAMELEN)
		return (bad(p, "invalid command"));
	for (i = 0; i < n; i++) {
		c = p->buf[start + i];
		if (c >= 0x80)
			return (bad(p, "invalid command"));
		cmd->name[i] = (c >= 'a' && c <= 'z') ? c - 'a' + 'A' : c;
	}
	cmd->name[n] = '\0';
	return (P_OK);
}

static int
parse_atom(struct parser *p)
{
	size_t	 start = p->pos;
	int	 r;

	while (p->pos < p->len && atom_char(p->buf[p->pos]))
		p->pos++;
	if (p->pos >= p->len)
		return (IMAP_PARSE_MORE);
	if ((r = arg_begin(p, IMAP_ARG_ATOM)) != P_OK ||
	    (r = scratch_put(p, p->buf + start, p->pos - start)) != P_OK)
		return (r);
	return (arg_end(p));
}

/* RFC 3501 quoted: only \" and \\ escapes, no CR, LF or NUL */
static int
parse_quoted(struct parser *p)
{
	unsigned char	 c;
	int		 r;

	if ((r = arg_begin(p, IMAP_ARG_QUOTED)) != P_OK)
		return (r);
	for (p->pos++; p->pos < p->len; p->pos++) {
		c = p->buf[p->pos];
		if (c == '"') {
			p->pos++;
			return (arg_end(p));
		}
		if (c == '\\') {
			if (p->pos + 1 >= p->len)
				return (IMAP_PARSE_MORE);
			c = p->buf[++p->pos];
			if (c != '\\' && c != '"')
				return (bad(p, "invalid escape in quoted string"));
		} else if (c == '\0' || c == '\r' || c == '\n')
			return (bad(p, "invalid quoted string"));
		if ((r = scratch_put(p, &c, 1)) != P_OK)
			return (r);
	}
	return (IMAP_PARSE_MORE);
}

/* "{" digits ["+"] "}" CRLF; saturates instead of overflowing */
static int
parse_literal_header(struct parser *p, size_t *np, int *syncp)
{
	size_t		 n = 0, digits = 0;
	unsigned char	 c;

	for (p->pos++; p->pos < p->len; p->pos++, digits++) {
		c = p->buf[p->pos];
		if (c < '0' || c > '9')
			break;
		if (n > (SIZE_MAX - 9) / 10)
			n = SIZE_MAX;
		else
			n = n * 10 + (c - '0');
	}
	if (p->pos >= p->len)
		return (IMAP_PARSE_MORE);
	if (digits == 0)
		return (bad(p, "invalid literal"));
	*syncp = 1;
	if (p->buf[p->pos] == '+') {
		*syncp = 0;
		if (++p->pos >= p->len)
			return (IMAP_PARSE_MORE);
	}
	if (p->buf[p->pos] != '}')
		return (bad(p, "invalid literal"));
	if (++p->pos >= p->len)
		return (IMAP_PARSE_MORE);
	c = p->buf[p->pos];
	if (c != '\r' && c != '\n')
		return (bad(p, "invalid literal"));
	*np = n;
	return (parse_eol(p));
}

static int
parse_literal(struct parser *p)
{
	struct imap_cmd	*cmd = p->cmd;
	size_t		 n, off;
	int		 sync, r;

	if ((r = parse_literal_header(p, &n, &sync)) != P_OK)
		return (r);
	off = p->pos;
	/* room for the data and at least the CRLF after it */
	if (n > p->max || p->max - n < off + 2) {
		cmd->lit_offset = off;
		cmd->lit_len = n;
		cmd->lit_sync = sync;
		cmd->close = !sync;
		cmd->error = "[TOOBIG] literal too big";
		*p->consumed = off;
		return (IMAP_PARSE_TOOBIG);
	}
	/*
	 * Wait for the data and the byte after it.  A sync literal asks
	 * for "+" even when {0} has no data: the client waits for it.
	 */
	if (p->len - off <= n) {
		if (!sync)
			return (IMAP_PARSE_MORE);
		cmd->lit_offset = off;
		cmd->lit_len = n;
		cmd->lit_sync = 1;
		return (IMAP_PARSE_LITERAL);
	}
	if ((r = arg_begin(p, IMAP_ARG_LITERAL)) != P_OK ||
	    (r = scratch_put(p, p->buf + off, n)) != P_OK)
		return (r);
	p->pos += n;
	return (arg_end(p));
}

static int
parse_list_mark(struct parser *p, enum imap_argtype type)
{
	int	 r;

	if ((r = arg_begin(p, type)) != P_OK)
		return (r);
	p->cmd->args[p->cmd->nargs].data = type == IMAP_ARG_LIST_OPEN ?
	    "(" : ")";
	p->cmd->args[p->cmd->nargs].len = 1;
	p->cmd->nargs++;
	p->pos++;
	return (P_OK);
}

static int
parse_args(struct parser *p)
{
	unsigned char	 c;
	int		 depth = 0, sep = 0, r;

	for (;;) {
		if (p->pos >= p->len)
			return (IMAP_PARSE_MORE);
		c = p->buf[p->pos];
		if (c == ' ') {
			p->pos++;
			sep = 1;
			continue;
		}
		if (c == '\r' || c == '\n') {
			if (depth)
				return (bad(p, "unterminated list"));
			if ((r = parse_eol(p)) != P_OK)
				return (r);
			return (IMAP_PARSE_COMPLETE);
		}
		if (c == '\0')
			return (bad(p, "NUL byte in command"));
		if (c == ')') {
			if (!depth)
				return (bad(p, "unexpected )"));
			depth--;
			r = parse_list_mark(p, IMAP_ARG_LIST_CLOSE);
			sep = 0;
		} else if (!sep)
			return (bad(p, "missing space between arguments"));
		else if (c == '(') {
			if (depth++)
				return (bad(p, "nested list"));
			r = parse_list_mark(p, IMAP_ARG_LIST_OPEN);
			/* sep stays set: "(" may touch its first item */
		} else {
			if (c == '"')
				r = parse_quoted(p);
			else if (c == '{')
				r = parse_literal(p);
			else if (atom_char(c))
				r = parse_atom(p);
			else
				r = bad(p, "invalid character");
			sep = 0;
		}
		if (r != P_OK)
			return (r);
	}
}

/* does the line ending at the LF at buf[lf] end in "{digits+}"? */
static int
ends_nonsync_literal(const unsigned char *buf, size_t lf)
{
	size_t	 i = lf;

	if (i > 0 && buf[i - 1] == '\r')
		i--;
	if (i < 4 || buf[i - 1] != '}' || buf[i - 2] != '+')
		return (0);
	i -= 2;
	if (buf[i - 1] < '0' || buf[i - 1] > '9')
		return (0);
	while (i > 0 && buf[i - 1] >= '0' && buf[i - 1] <= '9')
		i--;
	return (i > 0 && buf[i - 1] == '{');
}

static enum imap_parse_status
toobig_line(struct parser *p)
{
	p->cmd->close = 1;
	p->cmd->error = "[TOOBIG] line too long";
	*p->consumed = p->len;
	return (IMAP_PARSE_TOOBIG);
}

/* skip the rest of the physical line holding the error */
static enum imap_parse_status
bad_line(struct parser *p)
{
	const unsigned char	*lf;

	lf = memchr(p->buf + p->errpos, '\n', p->len - p->errpos);
	if (lf == NULL)
		return (p->len >= p->max ? toobig_line(p) : IMAP_PARSE_MORE);
	*p->consumed = lf - p->buf + 1;
	p->cmd->close = ends_nonsync_literal(p->buf, lf - p->buf);
	return (IMAP_PARSE_BAD);
}

enum imap_parse_status
imap_parse(struct imap_cmd *cmd, const char *buf, size_t len, size_t max,
    size_t *consumed)
{
	struct parser	 p;
	int		 r;

	cmd->tag[0] = cmd->name[0] = '\0';
	cmd->nargs = 0;
	cmd->lit_offset = cmd->lit_len = 0;
	cmd->lit_sync = cmd->close = 0;
	cmd->error = NULL;
	*consumed = 0;

	memset(&p, 0, sizeof(p));
	p.cmd = cmd;
	p.buf = (const unsigned char *)buf;
	p.len = len;
	p.max = max;
	p.consumed = consumed;

	if ((r = parse_tag(&p)) == P_OK &&
	    (r = parse_name(&p)) == P_OK)
		r = parse_args(&p);

	switch (r) {
	case IMAP_PARSE_COMPLETE:
		*consumed = p.pos;
		return (IMAP_PARSE_COMPLETE);
	case IMAP_PARSE_BAD:
		cmd->nargs = 0;
		return (bad_line(&p));
	case IMAP_PARSE_MORE:
		cmd->nargs = 0;
		return (len >= max ? toobig_line(&p) : IMAP_PARSE_MORE);
	case P_NOROOM:
		cmd->nargs = 0;
		return (toobig_line(&p));
	default:	/* LITERAL, TOOBIG: fields already set */
		cmd->nargs = 0;
		return (r);
	}
}

enum imap_parse_status
imap_parse_line(const char *buf, size_t len, size_t max, size_t *linelen,
    size_t *consumed)
{
	const char	*lf;
	size_t		 n;

	*linelen = *consumed = 0;
	if ((lf = memchr(buf, '\n', len)) == NULL)
		return (len >= max ? IMAP_PARSE_TOOBIG : IMAP_PARSE_MORE);
	n = lf - buf;
	*consumed = n + 1;
	if (n > 0 && buf[n - 1] == '\r')
		n--;
	*linelen = n;
	return (IMAP_PARSE_COMPLETE);
}

int
imap_valid_tag(const char *tag, size_t len)
{
	size_t	 i;

	if (len == 0 || len >= sizeof(((struct imap_cmd *)0)->tag))
		return (0);
	for (i = 0; i < len; i++)
		if (!tag_char((unsigned char)tag[i]))
			return (0);
	return (1);
}

void
imap_cmd_init(struct imap_cmd *cmd, char *scratch, size_t scratchsz)
{
	memset(cmd, 0, sizeof(*cmd));
	cmd->scratch = scratch;
	cmd->scratchsz = scratchsz;
}

/* arguments may hold a password: wipe them once the command is handled */
void
imap_cmd_clear(struct imap_cmd *cmd)
{
	if (cmd->scratch != NULL)
		explicit_bzero(cmd->scratch, cmd->scratchsz);
	explicit_bzero(cmd->args, sizeof(cmd->args));
	cmd->nargs = 0;
	cmd->lit_offset = cmd->lit_len = 0;
	cmd->lit_sync = cmd->close = 0;
	cmd->error = NULL;
}
