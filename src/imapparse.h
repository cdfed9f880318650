/*
 * imapparse: the pre-login IMAP command parser (RFC 3501/9051, with
 * LITERAL+ non-synchronising literals, RFC 7888).
 *
 * The parser is stateless: it is handed everything buffered so far and
 * parses the first command from the start.  It never reads past len and
 * refuses anything that would need more than max bytes of buffer
 * *before* the caller buffers it.
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
	const char		*data;	/* into cmd->scratch, NUL-terminated */
	size_t			 len;	/* may contain NULs for literals */
};

enum imap_parse_status {
	IMAP_PARSE_COMPLETE,	/* one command; *consumed bytes used */
	IMAP_PARSE_MORE,	/* incomplete, read more */
	IMAP_PARSE_LITERAL,	/* synchronising literal waits for "+":
				   lit_offset, lit_len set */
	IMAP_PARSE_BAD,		/* syntax error; consumed through the CRLF
				   of the bad line; close set when the
				   line ended in a non-sync literal */
	IMAP_PARSE_TOOBIG,	/* line or literal exceeds max; lit_sync
				   tells which literal; consumed through
				   the literal's "{n}\r\n" when sync */
};

struct imap_cmd {
	char		 tag[IMAP_NAMELEN * 2 + 1];	/* "" if unreadable */
	char		 name[IMAP_NAMELEN + 1];	/* upper-cased */
	int		 nargs;
	struct imap_arg	 args[IMAP_MAXARGS];
	size_t		 lit_offset;	/* where the literal data starts */
	size_t		 lit_len;
	int		 lit_sync;
	int		 close;		/* BAD that must close the session */
	const char	*error;		/* static text for the BAD reply */
	char		*scratch;	/* caller-owned, size max */
	size_t		 scratchsz;
};

void	imap_cmd_init(struct imap_cmd *, char *, size_t);
void	imap_cmd_clear(struct imap_cmd *);	/* wipes scratch */
enum imap_parse_status
	imap_parse(struct imap_cmd *, const char *, size_t, size_t, size_t *);
/* a bare line (AUTHENTICATE continuation): COMPLETE, MORE or TOOBIG */
enum imap_parse_status
	imap_parse_line(const char *, size_t, size_t, size_t *, size_t *);
int	imap_valid_tag(const char *, size_t);

#endif /* IMAPPARSE_H */
