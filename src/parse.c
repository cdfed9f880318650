/*
 * parse.c: the configuration language.
 *
 * nginx's syntax, so that an nginx mail {} block for IMAP runs
 * unchanged: words and quoted strings, directives ending in ";",
 * blocks in "{}".  Every directive is in one table below (name,
 * contexts, argument count, setter); the whole language is there.
 *
 * The parser stops at the first error and logs it as "file:line:
 * reason".  mail-level values are merged into the servers that did
 * not set them once the file is read, as nginx does.
 */

#include <sys/types.h>
#include <sys/socket.h>
#include <sys/queue.h>
#include <sys/stat.h>
#include <netinet/in.h>

#include <ctype.h>
#include <errno.h>
#include <fcntl.h>
#include <glob.h>
#include <libgen.h>
#include <limits.h>
#include <netdb.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <syslog.h>
#include <unistd.h>

#include <tls.h>

#include "imaprelayd.h"
#include "authhttp.h"

#define C_MAIN	0x01
#define C_EVENTS	0x02
#define C_MAIL	0x04
#define C_SERVER	0x08
#define C_MS		(C_MAIL | C_SERVER)
#define C_MM		(C_MAIN | C_MAIL)
#define C_ALL		(C_MAIN | C_MAIL | C_SERVER)
#define C_ANY		(C_MAIN | C_EVENTS | C_MAIL | C_SERVER)

#define D_BLOCK		0x01	/* takes a { } body */
#define D_REFUSE	0x02	/* refused wherever it is: skip the checks */

#define LETTERS		"abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ"
#define MAXARGS		128
#define TOKEN_MAX	4096
#define INCLUDE_DEPTH	16

/* bits of psrv.set: which directives a level set itself */
#define F_SERVER_NAME		0x0001
#define F_TIMEOUT		0x0002
#define F_AUTH_HTTP		0x0004
#define F_AUTH_HTTP_TIMEOUT	0x0008
#define F_PASS_CLIENT_CERT	0x0010
#define F_IMAP_AUTH		0x0020
#define F_IMAP_CAPS		0x0040
#define F_CLIENT_BUFFER		0x0080
#define F_PROXY_BUFFER		0x0100
#define F_PROXY_TIMEOUT		0x0200
#define F_PASS_ERROR		0x0400
#define F_MAX_ERRORS		0x0800
#define F_SO_KEEPALIVE		0x1000
#define F_PROXY			0x2000
#define F_PROXY_PASS		0x4000
#define F_RESOLVER_TIMEOUT	0x8000
#define F_STARTTLS		0x00010000
#define F_SSL_PROTOCOLS		0x00020000
#define F_SSL_CIPHERS		0x00040000
#define F_SSL_PREFER		0x00080000
#define F_SSL_CURVE		0x00100000
#define F_SSL_DHPARAM		0x00200000
#define F_SSL_SESS_TIMEOUT	0x00400000
#define F_SSL_TICKETS		0x00800000
#define F_SSL_SESS_CACHE	0x01000000

/* bits of psrv.ptls_set: TLS to the backend */
#define PTLS_F_MODE		0x01
#define PTLS_F_VERIFY		0x02
#define PTLS_F_CA		0x04
#define PTLS_F_NAME		0x08
#define PTLS_F_CERT		0x10
#define PTLS_F_KEY		0x20
#define PTLS_F_PROTOCOLS	0x40
#define PTLS_F_CIPHERS		0x80

/* bits of parser.mainset */
/* bits of psrv.ccert_set: client certificate directives */
#define CCERT_F_VERIFY		0x01
#define CCERT_F_DEPTH		0x02
#define CCERT_F_CA		0x04
#define CCERT_F_TRUSTED		0x08
#define CCERT_F_PASS		0x10

/* bits of psrv.limit_set */
#define LIMIT_F_CONN		0x01
#define LIMIT_F_AUTH_FAIL	0x02

#define M_USER			0x01
#define M_WORKERS		0x02
#define M_PID			0x04
#define M_CONNECTIONS		0x08
#define M_ISOLATION		0x10
#define M_SPARE			0x20
#define M_EVENTS		0x40
#define M_MAIL			0x80
#define M_SHUTDOWN		0x100

enum token {
	T_ERROR = -1,
	T_EOF,
	T_WORD,
	T_SEMI,
	T_LBRACE,
	T_RBRACE,
};

struct pfile {
	FILE		*fp;
	const char	*name;		/* interned: outlives the parse */
	int		 line;
	int		 ungot;		/* a pushed back char, or -2 */
};

/* a server{} (or the mail{} level) and what it set itself */
struct psrv {
	TAILQ_ENTRY(psrv)	 entry;
	struct server_conf	*srv;
	unsigned int		 set;
	int			 nlisten;
	int			 ncert;		/* ssl_certificate given */
	int			 nkey;		/* ssl_certificate_key given */
	unsigned int		 ccert_set;	/* CCERT_F_*: set here */
	unsigned int		 ptls_set;	/* PTLS_F_*: set here */
	unsigned int		 limit_set;	/* LIMIT_F_*: set here */
	const char		*file;
	int			 line;
};

struct parser {
	struct config		*conf;
	struct pfile		*f;
	int			 depth;		/* include nesting */
	int			 line;		/* of the current statement */
	unsigned int		 mainset;
	struct psrv		 mail;		/* srv not in conf->servers */
	struct psrv		*cur;		/* the server{} being read */
	TAILQ_HEAD(, psrv)	 psrvs;
};

typedef int (*setter)(struct parser *, int, int, char **);

struct directive {
	const char	*name;
	int		 ctx;
	int		 min;		/* arguments after the name */
	int		 max;		/* -1: any number */
	int		 flags;
	setter		 set;
};

static int	set_user(struct parser *, int, int, char **);
static int	set_atls(struct parser *, int, int, char **);
static void	atls_merge(struct psrv *, struct psrv *);
static int	atls_finish(struct parser *, struct psrv *);
static const char *atls_pem_path(struct psrv *, int, int);
static int	sni_shared(struct config *, struct listen_conf *,
		    struct listen_conf *);
static int	set_workers(struct parser *, int, int, char **);
static int	set_error_log(struct parser *, int, int, char **);
static int	set_pid(struct parser *, int, int, char **);
static int	set_events(struct parser *, int, int, char **);
static int	set_connections(struct parser *, int, int, char **);
static int	set_isolation(struct parser *, int, int, char **);
static int	set_spare(struct parser *, int, int, char **);
static int	set_shutdown_timeout(struct parser *, int, int, char **);
static int	set_include(struct parser *, int, int, char **);
static int	set_ignore(struct parser *, int, int, char **);
static int	set_mail(struct parser *, int, int, char **);
static int	set_server(struct parser *, int, int, char **);
static int	set_server_name(struct parser *, int, int, char **);
static int	set_timeout(struct parser *, int, int, char **);
static int	set_auth_http(struct parser *, int, int, char **);
static int	set_auth_header(struct parser *, int, int, char **);
static int	set_flag(struct parser *, int, int, char **);
static int	set_imap_auth(struct parser *, int, int, char **);
static int	set_imap_caps(struct parser *, int, int, char **);
static int	set_size(struct parser *, int, int, char **);
static int	set_max_errors(struct parser *, int, int, char **);
static int	set_proxy_pass(struct parser *, int, int, char **);
static int	set_listen(struct parser *, int, int, char **);
static int	set_protocol(struct parser *, int, int, char **);
static int	set_starttls(struct parser *, int, int, char **);
static int	set_ssl_file(struct parser *, int, int, char **);
static int	set_ssl_protocols(struct parser *, int, int, char **);
static int	set_ssl_string(struct parser *, int, int, char **);
static int	set_ssl_dhparam(struct parser *, int, int, char **);
static int	set_ssl_session(struct parser *, int, int, char **);
static int	set_ccert(struct parser *, int, int, char **);
static int	set_ptls(struct parser *, int, int, char **);
static void	ptls_merge(struct psrv *, struct psrv *);
static int	ptls_finish(struct parser *, struct psrv *);
static const char *ptls_pem_path(struct psrv *, int, int);
static void	ccert_merge(struct psrv *, struct psrv *);
static int	ccert_finish(struct parser *, struct psrv *);
static int	ccert_check(struct psrv *);
static int	set_limit_conn(struct parser *, int, int, char **);
static int	set_limit_auth_fail(struct parser *, int, int, char **);
static void	limit_merge(struct psrv *, struct psrv *);
static int	deny_tls(struct parser *, int, int, char **);
static int	deny_ssl(struct parser *, int, int, char **);
static int	deny_proto(struct parser *, int, int, char **);
static int	deny_block(struct parser *, int, int, char **);
static int	deny_later(struct parser *, int, int, char **);

/* The language. */
static const struct directive directives[] = {
	/* main */
	{ "user",			C_MAIN,	1, 2,	0, set_user },
	{ "worker_processes",		C_MAIN,	1, 1,	0, set_workers },
	{ "error_log",			C_ALL,	1, 2,	0, set_error_log },
	{ "pid",			C_MAIN,	1, 1,	0, set_pid },
	{ "events",			C_MAIN,	0, 0,	D_BLOCK, set_events },
	{ "mail",			C_MAIN,	0, 0,	D_BLOCK, set_mail },
	{ "isolation",			C_MM,	1, 1,	0, set_isolation },
	{ "spare_workers",		C_MM,	1, 1,	0, set_spare },
	{ "shutdown_timeout",		C_MAIN,	1, 1,	0, set_shutdown_timeout },
	{ "include",			C_ANY,	1, 1,	0, set_include },
	/* nginx main directives that mean nothing here */
	{ "daemon",			C_MAIN,	1, 1,	0, set_ignore },
	{ "master_process",		C_MAIN,	1, 1,	0, set_ignore },
	{ "worker_rlimit_nofile",	C_MAIN,	1, 1,	0, set_ignore },
	{ "load_module",		C_MAIN,	1, 1,	0, set_ignore },
	{ "pcre_jit",			C_MAIN,	1, 1,	0, set_ignore },
	/* events */
	{ "worker_connections",		C_EVENTS, 1, 1,	0, set_connections },
	{ "use",			C_EVENTS, 1, 1,	0, set_ignore },
	{ "multi_accept",		C_EVENTS, 1, 1,	0, set_ignore },
	{ "accept_mutex",		C_EVENTS, 1, 1,	0, set_ignore },
	{ "accept_mutex_delay",		C_EVENTS, 1, 1,	0, set_ignore },
	/* mail, and server (inherited from mail) */
	{ "server",			C_MAIL,	0, 0,	D_BLOCK, set_server },
	{ "server_name",		C_MS,	1, 1,	0, set_server_name },
	{ "timeout",			C_MS,	1, 1,	0, set_timeout },
	{ "auth_http",			C_MS,	1, 1,	0, set_auth_http },
	{ "auth_http_header",		C_MS,	2, 2,	0, set_auth_header },
	{ "auth_http_timeout",		C_MS,	1, 1,	0, set_timeout },
	{ "auth_http_pass_client_cert",	C_MS,	1, 1,	0, set_ccert },
	{ "auth_http_trusted_certificate", C_MS, 1, 1,	0, set_atls },
	{ "auth_http_certificate",	C_MS,	1, 1,	0, set_atls },
	{ "auth_http_certificate_key",	C_MS,	1, 1,	0, set_atls },
	{ "imap_auth",			C_MS,	1, -1,	0, set_imap_auth },
	{ "imap_capabilities",		C_MS,	1, -1,	0, set_imap_caps },
	{ "imap_client_buffer",		C_MS,	1, 1,	0, set_size },
	{ "proxy_buffer",		C_MS,	1, 1,	0, set_size },
	{ "proxy_timeout",		C_MS,	1, 1,	0, set_timeout },
	{ "proxy_pass_error_message",	C_MS,	1, 1,	0, set_flag },
	{ "max_errors",			C_MS,	1, 1,	0, set_max_errors },
	{ "so_keepalive",		C_MS,	1, 1,	0, set_flag },
	{ "proxy",			C_MS,	1, 1,	0, set_flag },
	{ "proxy_pass",			C_MS,	1, 1,	0, set_proxy_pass },
	{ "resolver",			C_MS,	1, -1,	0, set_ignore },
	{ "resolver_timeout",		C_MS,	1, 1,	0, set_timeout },
	/* limits the proxy keeps by itself (beyond nginx) */
	{ "limit_conn_per_ip",		C_MS,	1, 1,	0, set_limit_conn },
	{ "limit_auth_fail",		C_MS,	1, 3,	0, set_limit_auth_fail },
	/* TLS towards clients */
	{ "starttls",			C_MS,	1, 1,	0, set_starttls },
	{ "ssl_certificate",		C_MS,	1, 1,	0, set_ssl_file },
	{ "ssl_certificate_key",	C_MS,	1, 1,	0, set_ssl_file },
	{ "ssl_protocols",		C_MS,	1, -1,	0, set_ssl_protocols },
	{ "ssl_ciphers",		C_MS,	1, 1,	0, set_ssl_string },
	{ "ssl_ecdh_curve",		C_MS,	1, 1,	0, set_ssl_string },
	{ "ssl_prefer_server_ciphers",	C_MS,	1, 1,	0, set_ssl_session },
	{ "ssl_dhparam",		C_MS,	1, 1,	0, set_ssl_dhparam },
	{ "ssl_session_timeout",	C_MS,	1, 1,	0, set_ssl_session },
	{ "ssl_session_tickets",	C_MS,	1, 1,	0, set_ssl_session },
	{ "ssl_session_cache",		C_MS,	1, -1,	0, set_ssl_session },
	{ "ssl_verify_client",		C_MS,	1, 1,	0, set_ccert },
	{ "ssl_verify_depth",		C_MS,	1, 1,	0, set_ccert },
	{ "ssl_client_certificate",	C_MS,	1, 1,	0, set_ccert },
	{ "ssl_trusted_certificate",	C_MS,	1, 1,	0, set_ccert },
	{ "ssl_password_file",		C_ANY,	0, -1,	D_REFUSE, deny_ssl },
	/* TLS to the backend */
	{ "proxy_ssl",			C_MS,	1, 1,	0, set_ptls },
	{ "proxy_ssl_verify",		C_MS,	1, 1,	0, set_ptls },
	{ "proxy_ssl_trusted_certificate", C_MS, 1, 1,	0, set_ptls },
	{ "proxy_ssl_name",		C_MS,	1, 1,	0, set_ptls },
	{ "proxy_ssl_certificate",	C_MS,	1, 1,	0, set_ptls },
	{ "proxy_ssl_certificate_key",	C_MS,	1, 1,	0, set_ptls },
	{ "proxy_ssl_protocols",	C_MS,	1, -1,	0, set_ssl_protocols },
	{ "proxy_ssl_ciphers",		C_MS,	1, 1,	0, set_ptls },
	/* server only */
	{ "listen",			C_SERVER, 1, -1, 0, set_listen },
	{ "protocol",			C_SERVER, 1, 1,	0, set_protocol },
	/* not (yet) for imaprelayd: refused with a reason */
	{ "proxy_protocol",		C_ANY,	0, -1,	D_REFUSE, deny_later },
	{ "set_real_ip_from",		C_ANY,	0, -1,	D_REFUSE, deny_later },
	{ "ssl",			C_ANY,	0, -1,	D_REFUSE, deny_ssl },
	{ "xclient",			C_ANY,	0, -1,	D_REFUSE, deny_proto },
	{ "proxy_smtp_auth",		C_ANY,	0, -1,	D_REFUSE, deny_proto },
	{ "http",			C_ANY,	0, -1,	D_REFUSE, deny_block },
	{ "stream",			C_ANY,	0, -1,	D_REFUSE, deny_block },
	{ NULL,				0,	0, 0,	0, NULL }
};

/* whole families refused by prefix: other ssl_*, proxy_ssl_*, pop3_*... */
static const struct {
	const char	*prefix;
	setter		 set;
} prefixes[] = {
	{ "ssl_",	deny_tls },
	{ "pop3_",	deny_proto },
	{ "smtp_",	deny_proto },
};

static int	parse_file(struct parser *, const char *, int);
static int	parse_block(struct parser *, int, int);

static void	perr(struct parser *, const char *, ...)
		    __attribute__((format(printf, 2, 3)));
static void	lerr(struct parser *, const char *, ...)
		    __attribute__((format(printf, 2, 3)));

static void
perr(struct parser *p, const char *fmt, ...)
{
	va_list	 ap;
	char	 msg[1024];

	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	log_warnx("%s:%d: %s", p->f->name, p->line, msg);
}

/* the lexer's errors are at the line it is reading */
static void
lerr(struct parser *p, const char *fmt, ...)
{
	va_list	 ap;
	char	 msg[1024];

	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	p->line = p->f->line;
	log_warnx("%s:%d: %s", p->f->name, p->line, msg);
}

/*
 * File names live as long as the process: listen_conf keeps one for
 * the bind errors the parent reports later.  Bounded by the number of
 * distinct files ever read.
 */
static const char *
intern(const char *name)
{
	static char	**names;
	static size_t	  nnames;
	char		**n;
	size_t		  i;

	for (i = 0; i < nnames; i++)
		if (strcmp(names[i], name) == 0)
			return (names[i]);
	if ((n = reallocarray(names, nnames + 1, sizeof(*n))) == NULL)
		fatal(__func__);
	names = n;
	if ((names[nnames] = strdup(name)) == NULL)
		fatal(__func__);
	return (names[nnames++]);
}

/*
 * The lexer.
 */

static int
lgetc(struct pfile *f)
{
	int	 c;

	if (f->ungot != -2) {
		c = f->ungot;
		f->ungot = -2;
	} else
		c = getc(f->fp);
	if (c == '\n')
		f->line++;
	return (c);
}

static void
lungetc(struct pfile *f, int c)
{
	if (c == '\n')
		f->line--;
	f->ungot = c;
}

static int
isdelim(int c)
{
	return (c == EOF || c == ' ' || c == '\t' || c == '\r' ||
	    c == '\n' || c == ';' || c == '{' || c == '}');
}

/* after a backslash: nginx's escapes, others keep the backslash */
static int
lescape(struct parser *p, char *buf, size_t *len)
{
	int	 c;

	if ((c = lgetc(p->f)) == EOF) {
		lerr(p, "unexpected end of file after \"\\\"");
		return (-1);
	}
	switch (c) {
	case 't':
		c = '\t';
		break;
	case 'r':
		c = '\r';
		break;
	case 'n':
		c = '\n';
		break;
	case '"':
	case '\'':
	case '\\':
		break;
	default:
		if (*len + 1 >= TOKEN_MAX)
			return (-2);
		buf[(*len)++] = '\\';
		break;
	}
	if (*len + 1 >= TOKEN_MAX)
		return (-2);
	buf[(*len)++] = c;
	return (0);
}

/* a quoted string, the opening quote q already read */
static int
lquoted(struct parser *p, int q, char *buf)
{
	size_t	 len = 0;
	int	 c, r;

	for (;;) {
		if ((c = lgetc(p->f)) == EOF) {
			lerr(p, "unexpected end of file, expecting %c", q);
			return (T_ERROR);
		}
		if (c == q)
			break;
		if (c == '\\') {
			if ((r = lescape(p, buf, &len)) == -1)
				return (T_ERROR);
			if (r == -2)
				goto toolong;
			continue;
		}
		if (c == '\0')
			goto nul;
		if (len + 1 >= TOKEN_MAX)
			goto toolong;
		buf[len++] = c;
	}
	buf[len] = '\0';
	c = lgetc(p->f);
	if (!isdelim(c)) {
		lerr(p, "unexpected \"%c\" after a quoted string", c);
		return (T_ERROR);
	}
	lungetc(p->f, c);
	return (T_WORD);
 toolong:
	lerr(p, "too long token");
	return (T_ERROR);
 nul:
	lerr(p, "unexpected nul byte");
	return (T_ERROR);
}

static int
lword(struct parser *p, int c, char *buf)
{
	size_t	 len = 0;
	int	 r;

	for (; !isdelim(c); c = lgetc(p->f)) {
		if (c == '\0') {
			lerr(p, "unexpected nul byte");
			return (T_ERROR);
		}
		if (c == '\\') {
			if ((r = lescape(p, buf, &len)) == -1)
				return (T_ERROR);
			if (r == -2)
				goto toolong;
			continue;
		}
		if (len + 1 >= TOKEN_MAX)
			goto toolong;
		buf[len++] = c;
	}
	lungetc(p->f, c);
	buf[len] = '\0';
	return (T_WORD);
 toolong:
	lerr(p, "too long token");
	return (T_ERROR);
}

/* the next token; a word is left in buf (TOKEN_MAX bytes) */
static int
ltoken(struct parser *p, char *buf)
{
	int	 c;

	for (;;) {
		c = lgetc(p->f);
		if (c == ' ' || c == '\t' || c == '\r' || c == '\n')
			continue;
		if (c != '#')
			break;
		while ((c = lgetc(p->f)) != '\n' && c != EOF)
			;
		if (c == EOF)
			break;
	}
	switch (c) {
	case EOF:
		return (T_EOF);
	case ';':
		return (T_SEMI);
	case '{':
		return (T_LBRACE);
	case '}':
		return (T_RBRACE);
	case '"':
	case '\'':
		return (lquoted(p, c, buf));
	default:
		return (lword(p, c, buf));
	}
}

/*
 * Statements and blocks.
 */

static void
freeargs(int argc, char **argv)
{
	while (argc > 0)
		free(argv[--argc]);
}

/* words up to a terminator; the terminator is returned, argc set */
static int
lstatement(struct parser *p, char **argv, int *argc)
{
	char	 buf[TOKEN_MAX];
	int	 t;

	*argc = 0;
	for (;;) {
		if ((t = ltoken(p, buf)) != T_WORD)
			break;
		if (*argc == 0)
			p->line = p->f->line;
		if (*argc == MAXARGS) {
			perr(p, "too many arguments in \"%s\" directive",
			    argv[0]);
			return (T_ERROR);
		}
		if ((argv[(*argc)++] = strdup(buf)) == NULL)
			fatal(__func__);
	}
	if (*argc == 0)
		p->line = p->f->line;
	return (t);
}

static const struct directive *
lookup(const char *name)
{
	const struct directive	*d;

	for (d = directives; d->name != NULL; d++)
		if (strcmp(d->name, name) == 0)
			return (d);
	return (NULL);
}

static int
directive(struct parser *p, int ctx, int argc, char **argv, int block)
{
	const struct directive	*d;
	size_t			 i;

	if ((d = lookup(argv[0])) == NULL) {
		for (i = 0; i < sizeof(prefixes) / sizeof(prefixes[0]); i++)
			if (strncmp(argv[0], prefixes[i].prefix,
			    strlen(prefixes[i].prefix)) == 0)
				return (prefixes[i].set(p, ctx, argc, argv));
		perr(p, "unknown directive \"%s\"", argv[0]);
		return (-1);
	}
	if (d->flags & D_REFUSE)
		return (d->set(p, ctx, argc, argv));
	if ((d->ctx & ctx) == 0) {
		perr(p, "\"%s\" directive is not allowed here", argv[0]);
		return (-1);
	}
	if ((d->flags & D_BLOCK) && !block) {
		perr(p, "directive \"%s\" has no opening \"{\"", argv[0]);
		return (-1);
	}
	if (!(d->flags & D_BLOCK) && block) {
		perr(p, "directive \"%s\" is not terminated by \";\"",
		    argv[0]);
		return (-1);
	}
	if (argc - 1 < d->min || (d->max != -1 && argc - 1 > d->max)) {
		perr(p, "invalid number of arguments in \"%s\" directive",
		    argv[0]);
		return (-1);
	}
	return (d->set(p, ctx, argc, argv));
}

/*
 * Statements of one context until "}" (inblock) or the end of the
 * file.  Block directives parse their own body by calling back here.
 */
static int
parse_block(struct parser *p, int ctx, int inblock)
{
	char	*argv[MAXARGS];
	int	 argc, t, rv;

	for (;;) {
		t = lstatement(p, argv, &argc);
		switch (t) {
		case T_ERROR:
			freeargs(argc, argv);
			return (-1);
		case T_EOF:
			p->line = p->f->line;
			if (argc > 0)
				perr(p, "unexpected end of file, "
				    "expecting \";\" or \"}\"");
			else if (inblock)
				perr(p, "unexpected end of file, "
				    "expecting \"}\"");
			freeargs(argc, argv);
			return (argc > 0 || inblock ? -1 : 0);
		case T_RBRACE:
			if (argc > 0 || !inblock) {
				perr(p, "unexpected \"}\"");
				freeargs(argc, argv);
				return (-1);
			}
			return (0);
		default:
			if (argc == 0) {
				perr(p, "unexpected \"%s\"",
				    t == T_SEMI ? ";" : "{");
				return (-1);
			}
			rv = directive(p, ctx, argc, argv, t == T_LBRACE);
			freeargs(argc, argv);
			if (rv == -1)
				return (-1);
		}
	}
}

static int
parse_file(struct parser *p, const char *path, int ctx)
{
	struct pfile	 f, *saved = p->f;
	int		 savedline = p->line, rv;

	memset(&f, 0, sizeof(f));
	if ((f.fp = fopen(path, "r")) == NULL) {
		if (saved != NULL)
			perr(p, "cannot open \"%s\": %s", path,
			    strerror(errno));
		else
			log_warn("%s", path);
		return (-1);
	}
	f.name = intern(path);
	f.line = 1;
	f.ungot = -2;
	p->f = &f;
	rv = parse_block(p, ctx, 0);
	fclose(f.fp);
	p->f = saved;
	p->line = savedline;
	return (rv);
}

/*
 * Values: numbers, flags, sizes and times as nginx writes them.
 */

static int
badvalue(struct parser *p, char **argv, const char *value)
{
	perr(p, "invalid value \"%s\" in \"%s\" directive", value, argv[0]);
	return (-1);
}

/* "8k", "1m", "1g", or bytes */
static int
parse_size(const char *s, size_t *out)
{
	unsigned long long	 v;
	char			*end;
	size_t			 mult = 1;

	if (!isdigit((unsigned char)s[0]))
		return (-1);
	errno = 0;
	v = strtoull(s, &end, 10);
	if (errno != 0)
		return (-1);
	if (*end != '\0') {
		switch (*end) {
		case 'k':
		case 'K':
			mult = 1024;
			break;
		case 'm':
		case 'M':
			mult = 1024 * 1024;
			break;
		case 'g':
		case 'G':
			mult = 1024 * 1024 * 1024;
			break;
		default:
			return (-1);
		}
		if (end[1] != '\0')
			return (-1);
	}
	if (v > SIZE_MAX / mult || v * mult > INT_MAX)
		return (-1);
	*out = v * mult;
	return (0);
}

/*
 * nginx's times: "500ms", "60s", "5m", "24h", "1d", "1w", "1M",
 * "1y", combined largest unit first ("1h30m"); a plain number is
 * seconds.  Milliseconds out; must fit an unsigned int.
 */
static int
parse_time(const char *s, unsigned int *out)
{
	static const struct {
		const char		*unit;
		unsigned long long	 ms;
	} units[] = {
		{ "y", 365ULL * 86400000 }, { "M", 30ULL * 86400000 },
		{ "w", 7ULL * 86400000 }, { "d", 86400000 },
		{ "h", 3600000 }, { "m", 60000 }, { "s", 1000 },
		{ "ms", 1 },
	};
	unsigned long long	 total = 0, v;
	size_t			 i, ulen, next = 0;
	size_t			 n = sizeof(units) / sizeof(units[0]);
	char			*end;

	if (*s == '\0')
		return (-1);
	while (*s != '\0') {
		if (*s == ' ') {
			s++;
			continue;
		}
		if (!isdigit((unsigned char)*s))
			return (-1);
		errno = 0;
		v = strtoull(s, &end, 10);
		if (errno != 0 || v > UINT_MAX)
			return (-1);
		s = end;
		ulen = strspn(s, LETTERS);
		if (ulen == 0)
			i = 6;		/* no unit: seconds */
		else
			for (i = 0; i < n; i++)
				if (strlen(units[i].unit) == ulen &&
				    strncmp(s, units[i].unit, ulen) == 0)
					break;
		/* each unit once, largest first */
		if (i == n || i < next)
			return (-1);
		next = i + 1;
		s += ulen;
		total += v * units[i].ms;
		if (total > UINT_MAX)
			return (-1);
	}
	*out = total;
	return (0);
}

static int
parse_flag(struct parser *p, char **argv, int *out)
{
	if (strcmp(argv[1], "on") == 0)
		*out = 1;
	else if (strcmp(argv[1], "off") == 0)
		*out = 0;
	else {
		perr(p, "invalid value \"%s\" in \"%s\" directive, "
		    "it must be \"on\" or \"off\"", argv[1], argv[0]);
		return (-1);
	}
	return (0);
}

static int
parse_number(struct parser *p, char **argv, long long min, long long max,
    long long *out)
{
	const char	*errstr;

	*out = strtonum(argv[1], min, max, &errstr);
	if (errstr != NULL) {
		perr(p, "invalid value \"%s\" in \"%s\" directive: %s",
		    argv[1], argv[0], errstr);
		return (-1);
	}
	return (0);
}

/* a main-level directive given twice is an error, as in nginx */
static int
mainonce(struct parser *p, char **argv, unsigned int bit)
{
	if (p->mainset & bit) {
		perr(p, "\"%s\" directive is duplicate", argv[0]);
		return (-1);
	}
	p->mainset |= bit;
	return (0);
}

/* the level a mail/server directive applies to */
static struct psrv *
level(struct parser *p, int ctx)
{
	return (ctx == C_SERVER ? p->cur : &p->mail);
}

static int
levelonce(struct parser *p, int ctx, char **argv, unsigned int bit)
{
	struct psrv	*ps = level(p, ctx);

	if (ps->set & bit) {
		perr(p, "\"%s\" directive is duplicate", argv[0]);
		return (-1);
	}
	ps->set |= bit;
	return (0);
}

/* nothing outside printable ASCII, no space: the value reaches the wire */
static int
isprintword(const char *s)
{
	if (*s == '\0')
		return (0);
	for (; *s != '\0'; s++)
		if ((unsigned char)*s <= ' ' || (unsigned char)*s >= 0x7f)
			return (0);
	return (1);
}

/*
 * main and events.
 */

static int
set_user(struct parser *p, int ctx, int argc, char **argv)
{
	if (mainonce(p, argv, M_USER) == -1)
		return (-1);
	if (!isprintword(argv[1]) || strlcpy(p->conf->user, argv[1],
	    sizeof(p->conf->user)) >= sizeof(p->conf->user))
		return (badvalue(p, argv, argv[1]));
	/* the group is the user's own: proc_privdrop uses its gid */
	return (0);
}

static int
set_workers(struct parser *p, int ctx, int argc, char **argv)
{
	long long	 n;

	if (mainonce(p, argv, M_WORKERS) == -1)
		return (-1);
	if (strcmp(argv[1], "auto") == 0) {
		p->conf->worker_processes = 0;
		return (0);
	}
	if (parse_number(p, argv, 1, 1024, &n) == -1)
		return (-1);
	p->conf->worker_processes = n;
	return (0);
}

static int
loglevel(const char *s)
{
	static const struct {
		const char	*name;
		int		 level;
	} levels[] = {
		{ "debug", LOG_DEBUG }, { "info", LOG_INFO },
		{ "notice", LOG_NOTICE }, { "warn", LOG_WARNING },
		{ "error", LOG_ERR }, { "crit", LOG_CRIT },
		{ "alert", LOG_ALERT }, { "emerg", LOG_EMERG },
	};
	size_t	 i;

	for (i = 0; i < sizeof(levels) / sizeof(levels[0]); i++)
		if (strcmp(s, levels[i].name) == 0)
			return (levels[i].level);
	return (-1);
}

static int
set_error_log(struct parser *p, int ctx, int argc, char **argv)
{
	struct config	*conf = p->conf;
	int		 lvl = LOG_ERR;

	if (argc == 3 && (lvl = loglevel(argv[2])) == -1)
		return (badvalue(p, argv, argv[2]));
	if (ctx != C_MAIN) {
		/* nginx allows one per server; we have one for all */
		log_warnx("%s:%d: \"error_log\" is only used at the top "
		    "level, ignored here", p->f->name, p->line);
		return (0);
	}
	/* several error_log lines are fine in nginx: the last one wins */
	if (strncmp(argv[1], "syslog:", 7) == 0)
		conf->error_log[0] = '\0';
	else if (strncmp(argv[1], "memory:", 7) == 0)
		return (badvalue(p, argv, argv[1]));
	else if (argv[1][0] == '\0' || strlcpy(conf->error_log, argv[1],
	    sizeof(conf->error_log)) >= sizeof(conf->error_log))
		return (badvalue(p, argv, argv[1]));
	conf->log_level = lvl;
	return (0);
}

static int
set_pid(struct parser *p, int ctx, int argc, char **argv)
{
	if (mainonce(p, argv, M_PID) == -1)
		return (-1);
	if (argv[1][0] == '\0' || strlcpy(p->conf->pid, argv[1],
	    sizeof(p->conf->pid)) >= sizeof(p->conf->pid))
		return (badvalue(p, argv, argv[1]));
	return (0);
}

static int
set_events(struct parser *p, int ctx, int argc, char **argv)
{
	if (mainonce(p, argv, M_EVENTS) == -1)
		return (-1);
	return (parse_block(p, C_EVENTS, 1));
}

static int
set_connections(struct parser *p, int ctx, int argc, char **argv)
{
	long long	 n;

	if (mainonce(p, argv, M_CONNECTIONS) == -1 ||
	    parse_number(p, argv, 1, 1048576, &n) == -1)
		return (-1);
	p->conf->worker_connections = n;
	return (0);
}

static int
set_isolation(struct parser *p, int ctx, int argc, char **argv)
{
	if (mainonce(p, argv, M_ISOLATION) == -1)
		return (-1);
	if (strcmp(argv[1], "connection") == 0)
		p->conf->isolation = ISOLATION_CONNECTION;
	else if (strcmp(argv[1], "shared") == 0)
		p->conf->isolation = ISOLATION_SHARED;
	else
		return (badvalue(p, argv, argv[1]));
	return (0);
}

static int
set_spare(struct parser *p, int ctx, int argc, char **argv)
{
	long long	 n;

	if (mainonce(p, argv, M_SPARE) == -1 ||
	    parse_number(p, argv, 0, 1024, &n) == -1)
		return (-1);
	p->conf->spare_workers = n;
	return (0);
}

/* ours: how long SIGTERM lets open sessions run before ending them */
static int
set_shutdown_timeout(struct parser *p, int ctx, int argc, char **argv)
{
	unsigned int	 ms;

	if (mainonce(p, argv, M_SHUTDOWN) == -1)
		return (-1);
	if (parse_time(argv[1], &ms) == -1 || ms == 0)
		return (badvalue(p, argv, argv[1]));
	p->conf->shutdown_timeout_ms = ms;
	return (0);
}

static int
set_ignore(struct parser *p, int ctx, int argc, char **argv)
{
	log_debug("%s:%d: \"%s\" ignored", p->f->name, p->line, argv[0]);
	return (0);
}

/* relative to the including file; a pattern may match nothing */
static int
set_include(struct parser *p, int ctx, int argc, char **argv)
{
	char	 path[PATH_MAX], dir[PATH_MAX];
	glob_t	 g;
	size_t	 i;
	int	 rv = 0;

	if (p->depth >= INCLUDE_DEPTH) {
		perr(p, "too deep include of \"%s\"", argv[1]);
		return (-1);
	}
	if (argv[1][0] == '/')
		strlcpy(path, argv[1], sizeof(path));
	else {
		strlcpy(dir, p->f->name, sizeof(dir));
		snprintf(path, sizeof(path), "%s/%s", dirname(dir), argv[1]);
	}
	p->depth++;
	if (strpbrk(path, "*?[") == NULL)
		rv = parse_file(p, path, ctx);
	else {
		if (glob(path, 0, NULL, &g) == 0) {
			for (i = 0; i < g.gl_pathc && rv == 0; i++)
				rv = parse_file(p, g.gl_pathv[i], ctx);
		}
		globfree(&g);
	}
	p->depth--;
	return (rv);
}

/*
 * mail and server.
 */

static int
set_mail(struct parser *p, int ctx, int argc, char **argv)
{
	if (mainonce(p, argv, M_MAIL) == -1)
		return (-1);
	return (parse_block(p, C_MAIL, 1));
}

static int
set_server(struct parser *p, int ctx, int argc, char **argv)
{
	struct psrv	*ps;
	int		 rv;

	if ((ps = calloc(1, sizeof(*ps))) == NULL)
		fatal(__func__);
	ps->srv = config_server_new(p->conf);
	ps->file = p->f->name;
	ps->line = p->line;
	TAILQ_INSERT_TAIL(&p->psrvs, ps, entry);
	p->cur = ps;
	rv = parse_block(p, C_SERVER, 1);
	p->cur = NULL;
	return (rv);
}

static int
set_server_name(struct parser *p, int ctx, int argc, char **argv)
{
	struct server_conf	*srv = level(p, ctx)->srv;

	if (levelonce(p, ctx, argv, F_SERVER_NAME) == -1)
		return (-1);
	if (!isprintword(argv[1]) || strlcpy(srv->server_name, argv[1],
	    sizeof(srv->server_name)) >= sizeof(srv->server_name))
		return (badvalue(p, argv, argv[1]));
	srv->server_name_set = 1;
	return (0);
}

static int
set_timeout(struct parser *p, int ctx, int argc, char **argv)
{
	struct server_conf	*srv = level(p, ctx)->srv;
	unsigned int		 ms, bit, *field;

	if (strcmp(argv[0], "timeout") == 0) {
		bit = F_TIMEOUT;
		field = &srv->timeout_ms;
	} else if (strcmp(argv[0], "auth_http_timeout") == 0) {
		bit = F_AUTH_HTTP_TIMEOUT;
		field = &srv->auth_http_timeout_ms;
	} else if (strcmp(argv[0], "proxy_timeout") == 0) {
		bit = F_PROXY_TIMEOUT;
		field = &srv->proxy_timeout_ms;
	} else {
		/* resolver_timeout: checked, then unused */
		bit = F_RESOLVER_TIMEOUT;
		field = &ms;
	}
	if (levelonce(p, ctx, argv, bit) == -1)
		return (-1);
	if (parse_time(argv[1], &ms) == -1 || ms == 0)
		return (badvalue(p, argv, argv[1]));
	*field = ms;
	return (0);
}

static int
set_flag(struct parser *p, int ctx, int argc, char **argv)
{
	struct server_conf	*srv = level(p, ctx)->srv;
	int			 on, *field, unused;
	unsigned int		 bit;

	if (strcmp(argv[0], "proxy_pass_error_message") == 0) {
		bit = F_PASS_ERROR;
		field = &srv->proxy_pass_error_message;
	} else if (strcmp(argv[0], "so_keepalive") == 0) {
		bit = F_SO_KEEPALIVE;
		field = &srv->so_keepalive;
	} else if (strcmp(argv[0], "proxy") == 0) {
		/* nginx parses it and never uses it */
		bit = F_PROXY;
		field = &unused;
	} else
		fatalx("%s: %s", __func__, argv[0]);
	if (levelonce(p, ctx, argv, bit) == -1 ||
	    parse_flag(p, argv, &on) == -1)
		return (-1);
	*field = on;
	return (0);
}

static int
set_size(struct parser *p, int ctx, int argc, char **argv)
{
	struct server_conf	*srv = level(p, ctx)->srv;
	size_t			 size, *field;
	unsigned int		 bit;

	if (strcmp(argv[0], "imap_client_buffer") == 0) {
		bit = F_CLIENT_BUFFER;
		field = &srv->imap_client_buffer;
	} else {
		bit = F_PROXY_BUFFER;
		field = &srv->proxy_buffer;
	}
	if (levelonce(p, ctx, argv, bit) == -1)
		return (-1);
	/* a command line or a backend line must fit: below 64 is silly */
	if (parse_size(argv[1], &size) == -1 || size < 64)
		return (badvalue(p, argv, argv[1]));
	*field = size;
	return (0);
}

/* limit_conn_per_ip number; 0 turns off what mail{} set */
static int
set_limit_conn(struct parser *p, int ctx, int argc, char **argv)
{
	struct psrv	*ps = level(p, ctx);
	long long	 n;

	if (ps->limit_set & LIMIT_F_CONN) {
		perr(p, "\"%s\" directive is duplicate", argv[0]);
		return (-1);
	}
	if (parse_number(p, argv, 0, 1000000, &n) == -1)
		return (-1);
	ps->limit_set |= LIMIT_F_CONN;
	ps->srv->limit_conn_per_ip = n;
	return (0);
}

/*
 * limit_auth_fail number window [delay], or off: after number failed
 * logins from one address, or for one user, within window, logins are
 * refused for the rest of the window, after delay (default 2s, as
 * Dovecot's auth_failure_delay), without asking the auth service.
 */
static int
set_limit_auth_fail(struct parser *p, int ctx, int argc, char **argv)
{
	struct psrv		*ps = level(p, ctx);
	struct server_conf	*srv = ps->srv;
	long long		 n;
	unsigned int		 window, delay = 2000;

	if (ps->limit_set & LIMIT_F_AUTH_FAIL) {
		perr(p, "\"%s\" directive is duplicate", argv[0]);
		return (-1);
	}
	ps->limit_set |= LIMIT_F_AUTH_FAIL;
	if (argc == 2 && strcmp(argv[1], "off") == 0) {
		srv->limit_auth_fail = 0;
		return (0);
	}
	if (argc == 2) {
		perr(p, "\"%s\" directive needs a number and a window, "
		    "or off", argv[0]);
		return (-1);
	}
	if (parse_number(p, argv, 1, 1000000, &n) == -1)
		return (-1);
	if (parse_time(argv[2], &window) == -1 || window < 1000)
		return (badvalue(p, argv, argv[2]));
	if (argc == 4 && (parse_time(argv[3], &delay) == -1 ||
	    delay > 60000))
		return (badvalue(p, argv, argv[3]));
	srv->limit_auth_fail = n;
	srv->limit_auth_fail_window_ms = window;
	srv->limit_auth_fail_delay_ms = delay;
	return (0);
}

/* a server{} takes the limits of mail{} it does not set itself */
static void
limit_merge(struct psrv *mail, struct psrv *ps)
{
	struct server_conf	*s = ps->srv, *m = mail->srv;

	if ((ps->limit_set & LIMIT_F_CONN) == 0)
		s->limit_conn_per_ip = m->limit_conn_per_ip;
	if ((ps->limit_set & LIMIT_F_AUTH_FAIL) == 0) {
		s->limit_auth_fail = m->limit_auth_fail;
		s->limit_auth_fail_window_ms = m->limit_auth_fail_window_ms;
		s->limit_auth_fail_delay_ms = m->limit_auth_fail_delay_ms;
	}
}

static int
set_max_errors(struct parser *p, int ctx, int argc, char **argv)
{
	long long	 n;

	if (levelonce(p, ctx, argv, F_MAX_ERRORS) == -1 ||
	    parse_number(p, argv, 1, 1000000, &n) == -1)
		return (-1);
	level(p, ctx)->srv->max_errors = n;
	return (0);
}

/* like nginx's bitmask: repeatable, the first one clears the default */
static int
set_imap_auth(struct parser *p, int ctx, int argc, char **argv)
{
	struct psrv	*ps = level(p, ctx);
	unsigned int	 mech = 0;
	int		 i;

	if ((ps->set & F_IMAP_AUTH) == 0) {
		ps->srv->imap_auth = 0;
		ps->set |= F_IMAP_AUTH;
	}
	for (i = 1; i < argc; i++) {
		if (strcasecmp(argv[i], "plain") == 0)
			mech = MECH_PLAIN;
		else if (strcasecmp(argv[i], "login") == 0)
			mech = MECH_LOGIN;
		else if (strcasecmp(argv[i], "cram-md5") == 0)
			mech = MECH_CRAM_MD5;
		else if (strcasecmp(argv[i], "external") == 0)
			mech = MECH_EXTERNAL;
		else
			return (badvalue(p, argv, argv[i]));
		ps->srv->imap_auth |= mech;
	}
	return (0);
}

/* replaces the default list; repeated lines append, as in nginx */
static int
set_imap_caps(struct parser *p, int ctx, int argc, char **argv)
{
	struct psrv	*ps = level(p, ctx);
	char		*caps = ps->srv->imap_capabilities;
	size_t		 size = sizeof(ps->srv->imap_capabilities);
	int		 i;

	if ((ps->set & F_IMAP_CAPS) == 0) {
		caps[0] = '\0';
		ps->set |= F_IMAP_CAPS;
	}
	for (i = 1; i < argc; i++) {
		if (!isprintword(argv[i]))
			return (badvalue(p, argv, argv[i]));
		if ((caps[0] != '\0' && strlcat(caps, " ", size) >= size) ||
		    strlcat(caps, argv[i], size) >= size) {
			perr(p, "too long \"%s\" list", argv[0]);
			return (-1);
		}
	}
	return (0);
}

/* "host:port" or "[v6]:port"; NULL or the reason it is not */
static const char *
split_hostport(const char *s, char *host, size_t hsize, char *port,
    size_t psize)
{
	const char	*colon, *end;
	size_t		 hlen;

	if (s[0] == '[') {
		if ((end = strchr(s, ']')) == NULL)
			return ("missing \"]\"");
		if (end[1] != ':')
			return ("no port");
		colon = end + 1;
		s++;
		hlen = end - s;
	} else {
		if ((colon = strrchr(s, ':')) == NULL)
			return ("no port");
		if (strchr(s, ':') != colon)
			return ("IPv6 address without []");
		hlen = colon - s;
	}
	if (hlen == 0 || hlen >= hsize)
		return ("invalid host");
	memcpy(host, s, hlen);
	host[hlen] = '\0';
	if (strlcpy(port, colon + 1, psize) >= psize)
		return ("invalid port");
	if (port[0] == '\0' || strspn(port, "0123456789") != strlen(port) ||
	    strtol(port, NULL, 10) < 1 || strtol(port, NULL, 10) > 65535)
		return ("invalid port");
	return (NULL);
}

static int
resolve(struct parser *p, const char *what, const char *host,
    const char *port, int passive, struct addrinfo **res)
{
	struct addrinfo	 hints;
	int		 error;

	memset(&hints, 0, sizeof(hints));
	hints.ai_family = AF_UNSPEC;
	hints.ai_socktype = SOCK_STREAM;
	hints.ai_flags = AI_NUMERICSERV | (passive ? AI_PASSIVE : 0);
	if (host == NULL)
		hints.ai_family = AF_INET;	/* "*:143", "143" */
	if ((error = getaddrinfo(host, port, &hints, res)) != 0) {
		perr(p, "host \"%s\" of \"%s\" not found: %s",
		    host ? host : "*", what, gai_strerror(error));
		return (-1);
	}
	return (0);
}

static int
set_proxy_pass(struct parser *p, int ctx, int argc, char **argv)
{
	struct server_conf	*srv = level(p, ctx)->srv;
	struct addrinfo		*res;
	char			 host[NAME_MAX_LEN], port[8];
	const char		*why;

	if (levelonce(p, ctx, argv, F_PROXY_PASS) == -1)
		return (-1);
	if ((why = split_hostport(argv[1], host, sizeof(host), port,
	    sizeof(port))) != NULL) {
		perr(p, "invalid value \"%s\" in \"%s\" directive: %s",
		    argv[1], argv[0], why);
		return (-1);
	}
	if (resolve(p, argv[0], host, port, 0, &res) == -1)
		return (-1);
	/* like nginx, the first address only */
	memcpy(&srv->proxy_pass, res->ai_addr, res->ai_addrlen);
	srv->proxy_pass_len = res->ai_addrlen;
	freeaddrinfo(res);
	if (strlcpy(srv->proxy_pass_name, argv[1],
	    sizeof(srv->proxy_pass_name)) >= sizeof(srv->proxy_pass_name))
		return (badvalue(p, argv, argv[1]));
	srv->proxy_pass_set = 1;
	return (0);
}

/* nginx resolves the auth service once, at load time; so do we */
static int
set_auth_http(struct parser *p, int ctx, int argc, char **argv)
{
	struct server_conf	*srv = level(p, ctx)->srv;
	struct auth_url		*au = &srv->auth_http;
	struct addrinfo		*res;
	char			 err[256], port[8];
	int			 error;

	if (levelonce(p, ctx, argv, F_AUTH_HTTP) == -1)
		return (-1);
	memset(au, 0, sizeof(*au));
	err[0] = '\0';
	if (authhttp_parse_url(argv[1], au, err, sizeof(err)) == -1) {
		perr(p, "invalid value \"%s\" in \"%s\" directive: %s",
		    argv[1], argv[0], err);
		return (-1);
	}
	if (strlcpy(au->url, argv[1], sizeof(au->url)) >= sizeof(au->url))
		return (badvalue(p, argv, argv[1]));
	if (au->unix_path[0] == '\0') {
		snprintf(port, sizeof(port), "%d", au->port);
		if (resolve(p, argv[0], au->host, port, 0, &res) == -1)
			return (-1);
		error = getnameinfo(res->ai_addr, res->ai_addrlen, au->addr,
		    sizeof(au->addr), NULL, 0, NI_NUMERICHOST);
		freeaddrinfo(res);
		if (error != 0) {
			perr(p, "\"%s\": %s", argv[0], gai_strerror(error));
			return (-1);
		}
	}
	srv->auth_http_set = 1;
	return (0);
}

static int
set_auth_header(struct parser *p, int ctx, int argc, char **argv)
{
	struct server_conf	*srv = level(p, ctx)->srv;
	struct auth_header	*h;
	const char		*s;

	/* a header name is a token; the value must not break the request */
	if (argv[1][0] == '\0' ||
	    strspn(argv[1], LETTERS "0123456789-_") != strlen(argv[1]) ||
	    strlen(argv[1]) >= HEADER_NAME_LEN)
		return (badvalue(p, argv, argv[1]));
	for (s = argv[2]; *s != '\0'; s++)
		if ((unsigned char)*s < ' ' || *s == 0x7f)
			return (badvalue(p, argv, argv[2]));
	if (strlen(argv[2]) >= HEADER_VALUE_LEN)
		return (badvalue(p, argv, argv[2]));
	if ((h = calloc(1, sizeof(*h))) == NULL)
		fatal(__func__);
	h->server_id = srv->id;
	strlcpy(h->name, argv[1], sizeof(h->name));
	strlcpy(h->value, argv[2], sizeof(h->value));
	TAILQ_INSERT_TAIL(&srv->auth_headers, h, entry);
	return (0);
}

static int
set_protocol(struct parser *p, int ctx, int argc, char **argv)
{
	if (strcmp(argv[1], "imap") == 0)
		return (0);
	if (strcmp(argv[1], "pop3") == 0 || strcmp(argv[1], "smtp") == 0)
		perr(p, "protocol \"%s\" is not supported: imaprelayd "
		    "proxies IMAP only", argv[1]);
	else
		perr(p, "unknown protocol \"%s\"", argv[1]);
	return (-1);
}

/*
 * TLS towards clients.
 */

static int
set_starttls(struct parser *p, int ctx, int argc, char **argv)
{
	struct server_conf	*srv = level(p, ctx)->srv;

	if (levelonce(p, ctx, argv, F_STARTTLS) == -1)
		return (-1);
	if (strcmp(argv[1], "on") == 0)
		srv->starttls = STARTTLS_ON;
	else if (strcmp(argv[1], "only") == 0)
		srv->starttls = STARTTLS_ONLY;
	else if (strcmp(argv[1], "off") == 0)
		srv->starttls = STARTTLS_OFF;
	else {
		perr(p, "invalid value \"%s\" in \"%s\" directive, it must "
		    "be \"on\", \"only\" or \"off\"", argv[1], argv[0]);
		return (-1);
	}
	return (0);
}

/* a relative path is taken from the directory of the file that names it */
static int
ssl_path(struct parser *p, const char *arg, char *path, size_t size)
{
	char	 dir[PATH_MAX];
	int	 n;

	if (strncmp(arg, "engine:", 7) == 0 || strncmp(arg, "store:", 6) == 0 ||
	    strncmp(arg, "data:", 5) == 0) {
		perr(p, "\"%s\": only files are supported", arg);
		return (-1);
	}
	if (arg[0] == '/')
		n = snprintf(path, size, "%s", arg);
	else {
		strlcpy(dir, p->f->name, sizeof(dir));
		n = snprintf(path, size, "%s/%s", dirname(dir), arg);
	}
	if (arg[0] == '\0' || n < 0 || (size_t)n >= size) {
		perr(p, "invalid file name \"%s\"", arg);
		return (-1);
	}
	return (0);
}

/* ssl_certificate and ssl_certificate_key pair up in the order given */
static int
set_ssl_file(struct parser *p, int ctx, int argc, char **argv)
{
	struct psrv	*ps = level(p, ctx);
	int		 key = strcmp(argv[0], "ssl_certificate_key") == 0;
	int		*n = key ? &ps->nkey : &ps->ncert;

	if (*n == TLS_MAX_PAIRS) {
		perr(p, "too many \"%s\" directives, at most %d", argv[0],
		    TLS_MAX_PAIRS);
		return (-1);
	}
	if (ssl_path(p, argv[1], key ? ps->srv->tls_key_file[*n] :
	    ps->srv->tls_cert_file[*n], TLS_PATH_MAX) == -1)
		return (-1);
	(*n)++;
	return (0);
}

/* nginx's names: its "TLSv1" is TLS 1.0 alone, libtls's all of 1.x */
static int
set_ssl_protocols(struct parser *p, int ctx, int argc, char **argv)
{
	static const struct {
		const char	*name;
		uint32_t	 proto;
	} protos[] = {
		{ "TLSv1",	TLS_PROTOCOL_TLSv1_0 },
		{ "TLSv1.1",	TLS_PROTOCOL_TLSv1_1 },
		{ "TLSv1.2",	TLS_PROTOCOL_TLSv1_2 },
		{ "TLSv1.3",	TLS_PROTOCOL_TLSv1_3 },
	};
	struct server_conf	*srv = level(p, ctx)->srv;
	uint32_t		 mask = 0;
	size_t			 j, n = sizeof(protos) / sizeof(protos[0]);
	int			 i;

	if (strcmp(argv[0], "proxy_ssl_protocols") == 0) {
		if (level(p, ctx)->ptls_set & PTLS_F_PROTOCOLS) {
			perr(p, "\"%s\" directive is duplicate", argv[0]);
			return (-1);
		}
		level(p, ctx)->ptls_set |= PTLS_F_PROTOCOLS;
	} else if (levelonce(p, ctx, argv, F_SSL_PROTOCOLS) == -1)
		return (-1);
	for (i = 1; i < argc; i++) {
		if (strcmp(argv[i], "SSLv2") == 0 ||
		    strcmp(argv[i], "SSLv3") == 0) {
			perr(p, "\"%s\" is not supported", argv[i]);
			return (-1);
		}
		for (j = 0; j < n; j++)
			if (strcmp(argv[i], protos[j].name) == 0)
				break;
		if (j == n)
			return (badvalue(p, argv, argv[i]));
		mask |= protos[j].proto;
	}
	if (strcmp(argv[0], "proxy_ssl_protocols") == 0)
		srv->proxy_ssl_protocols = mask;
	else
		srv->tls_protocols = mask;
	return (0);
}

/* ssl_ciphers, ssl_ecdh_curve: libtls says now whether it takes them */
static int
set_ssl_string(struct parser *p, int ctx, int argc, char **argv)
{
	struct server_conf	*srv = level(p, ctx)->srv;
	struct tls_config	*tc;
	int			 curve = strcmp(argv[0], "ssl_ecdh_curve") == 0;
	const char		*v = argv[1];
	char			*dst = curve ? srv->tls_ecdh_curve :
				    srv->tls_ciphers;
	size_t			 len = curve ? sizeof(srv->tls_ecdh_curve) :
				    sizeof(srv->tls_ciphers);
	int			 rv;

	if (levelonce(p, ctx, argv, curve ? F_SSL_CURVE : F_SSL_CIPHERS) == -1)
		return (-1);
	if (curve && strcmp(v, "auto") == 0)
		v = "default";
	if ((tc = tls_config_new()) == NULL)
		fatal("tls_config_new");
	rv = curve ? tls_config_set_ecdhecurves(tc, v) :
	    tls_config_set_ciphers(tc, v);
	if (rv == -1)
		perr(p, "invalid value \"%s\" in \"%s\" directive: %s",
		    argv[1], argv[0], tls_config_error(tc));
	tls_config_free(tc);
	if (rv == -1)
		return (-1);
	if (strlcpy(dst, v, len) >= len)
		return (badvalue(p, argv, argv[1]));
	return (0);
}

/*
 * libtls picks its DH parameters by keyword only: a dhparam file turns
 * on "auto" (sized to the key), which is what a file of good
 * parameters is for.  The file must still be readable.
 */
static int
set_ssl_dhparam(struct parser *p, int ctx, int argc, char **argv)
{
	struct server_conf	*srv = level(p, ctx)->srv;
	char			 path[PATH_MAX];

	if (levelonce(p, ctx, argv, F_SSL_DHPARAM) == -1 ||
	    ssl_path(p, argv[1], path, sizeof(path)) == -1)
		return (-1);
	if (access(path, R_OK) == -1) {
		perr(p, "cannot read \"%s\": %s", path, strerror(errno));
		return (-1);
	}
	strlcpy(srv->tls_dhparams, "auto", sizeof(srv->tls_dhparams));
	return (0);
}

/* session resumption, and ssl_prefer_server_ciphers */
static int
set_ssl_session(struct parser *p, int ctx, int argc, char **argv)
{
	struct server_conf	*srv = level(p, ctx)->srv;
	unsigned int		 ms;

	if (strcmp(argv[0], "ssl_session_cache") == 0)
		/* accepted and ignored: libtls resumes with tickets only */
		return (levelonce(p, ctx, argv, F_SSL_SESS_CACHE));
	if (strcmp(argv[0], "ssl_prefer_server_ciphers") == 0)
		return (levelonce(p, ctx, argv, F_SSL_PREFER) == -1 ? -1 :
		    parse_flag(p, argv, &srv->tls_prefer_server_ciphers));
	if (strcmp(argv[0], "ssl_session_tickets") == 0)
		return (levelonce(p, ctx, argv, F_SSL_TICKETS) == -1 ? -1 :
		    parse_flag(p, argv, &srv->tls_session_tickets));
	if (levelonce(p, ctx, argv, F_SSL_SESS_TIMEOUT) == -1)
		return (-1);
	if (parse_time(argv[1], &ms) == -1)
		return (badvalue(p, argv, argv[1]));
	/* the bounds libtls sets on a session lifetime */
	ms /= 1000;
	srv->tls_session_timeout = ms < 4 ? 4 : ms > 86400 ? 86400 : ms;
	return (0);
}

/*
 * Client certificates: ssl_verify_client, ssl_verify_depth,
 * ssl_client_certificate, ssl_trusted_certificate and
 * auth_http_pass_client_cert.  Set once per level, inherited.
 */
static int
set_ccert(struct parser *p, int ctx, int argc, char **argv)
{
	static const char	*modes[] = { "off", "on", "optional",
				    "optional_no_ca" };
	struct psrv		*ps = level(p, ctx);
	struct server_conf	*srv = ps->srv;
	unsigned int		 bit;
	long long		 n;
	int			 i;

	bit = strcmp(argv[0], "ssl_verify_client") == 0 ? CCERT_F_VERIFY :
	    strcmp(argv[0], "ssl_verify_depth") == 0 ? CCERT_F_DEPTH :
	    strcmp(argv[0], "ssl_client_certificate") == 0 ? CCERT_F_CA :
	    strcmp(argv[0], "ssl_trusted_certificate") == 0 ?
	    CCERT_F_TRUSTED : CCERT_F_PASS;
	if (ps->ccert_set & bit) {
		perr(p, "\"%s\" directive is duplicate", argv[0]);
		return (-1);
	}
	ps->ccert_set |= bit;
	switch (bit) {
	case CCERT_F_VERIFY:
		for (i = 0; i < 4; i++)
			if (strcmp(argv[1], modes[i]) == 0) {
				srv->ccert_verify = i;
				return (0);
			}
		perr(p, "invalid value \"%s\" in \"%s\" directive, it must "
		    "be \"on\", \"off\", \"optional\" or \"optional_no_ca\"",
		    argv[1], argv[0]);
		return (-1);
	case CCERT_F_DEPTH:
		if (parse_number(p, argv, 0, 100, &n) == -1)
			return (-1);
		srv->ccert_depth = n;
		return (0);
	case CCERT_F_CA:
		return (ssl_path(p, argv[1], srv->ccert_ca_file, TLS_PATH_MAX));
	case CCERT_F_TRUSTED:
		return (ssl_path(p, argv[1], srv->ccert_trusted_file,
		    TLS_PATH_MAX));
	default:
		return (parse_flag(p, argv, &srv->ccert_pass_cert));
	}
}

/*
 * listen.
 */

/* so_keepalive=on|off|[idle]:[intvl]:[cnt] */
static int
listen_keepalive(const char *v, struct listen_conf *lc)
{
	char		 buf[64], *s, *part[3];
	unsigned int	 ms;
	const char	*errstr;
	int		 i;

	if (strcmp(v, "on") == 0 || strcmp(v, "off") == 0) {
		lc->keepalive = (strcmp(v, "on") == 0);
		return (0);
	}
	if (strlcpy(buf, v, sizeof(buf)) >= sizeof(buf))
		return (-1);
	s = buf;
	for (i = 0; i < 3; i++)
		if ((part[i] = strsep(&s, ":")) == NULL)
			return (-1);
	if (s != NULL)
		return (-1);
	if (part[0][0] != '\0') {
		if (parse_time(part[0], &ms) == -1 || ms < 1000)
			return (-1);
		lc->keepidle = ms / 1000;
	}
	if (part[1][0] != '\0') {
		if (parse_time(part[1], &ms) == -1 || ms < 1000)
			return (-1);
		lc->keepintvl = ms / 1000;
	}
	if (part[2][0] != '\0') {
		lc->keepcnt = strtonum(part[2], 1, 1000, &errstr);
		if (errstr != NULL)
			return (-1);
	}
	if (lc->keepidle == 0 && lc->keepintvl == 0 && lc->keepcnt == 0)
		return (-1);
	lc->keepalive = 1;
	return (0);
}

/* the parameters after the address, into a template listen_conf */
static int
listen_params(struct parser *p, int argc, char **argv,
    struct listen_conf *lc)
{
	const char	*errstr;
	size_t		 size;
	int		 i;

	for (i = 2; i < argc; i++) {
		if (strcmp(argv[i], "ssl") == 0)
			lc->ssl = 1;
		else if (strcmp(argv[i], "proxy_protocol") == 0) {
			perr(p, "\"listen ... proxy_protocol\" is not "
			    "supported yet");
			return (-1);
		} else if (strcmp(argv[i], "bind") == 0)
			lc->bind = 1;
		else if (strncmp(argv[i], "backlog=", 8) == 0) {
			lc->backlog = strtonum(argv[i] + 8, 1, 65535, &errstr);
			if (errstr != NULL)
				goto bad;
		} else if (strncmp(argv[i], "rcvbuf=", 7) == 0) {
			if (parse_size(argv[i] + 7, &size) == -1 || size == 0)
				goto bad;
			lc->rcvbuf = size;
		} else if (strncmp(argv[i], "sndbuf=", 7) == 0) {
			if (parse_size(argv[i] + 7, &size) == -1 || size == 0)
				goto bad;
			lc->sndbuf = size;
		} else if (strncmp(argv[i], "so_keepalive=", 13) == 0) {
			if (listen_keepalive(argv[i] + 13, lc) == -1)
				goto bad;
			lc->bind = 1;
		} else if (strncmp(argv[i], "ipv6only=", 9) == 0) {
			if (strcmp(argv[i] + 9, "on") == 0)
				lc->ipv6only = 1;
			else if (strcmp(argv[i] + 9, "off") == 0)
				lc->ipv6only = 0;
			else
				goto bad;
			lc->bind = 1;
		} else if (strcmp(argv[i], "multipath") == 0) {
			perr(p, "\"listen ... multipath\" is not supported");
			return (-1);
		} else {
			perr(p, "invalid parameter \"%s\" in \"listen\"",
			    argv[i]);
			return (-1);
		}
	}
	return (0);
 bad:
	perr(p, "invalid value \"%s\" in \"listen\"", argv[i]);
	return (-1);
}

/* "ADDR:PORT", "[V6]:PORT", "*:PORT", "PORT" */
static int
listen_resolve(struct parser *p, const char *spec, struct addrinfo **res)
{
	char		 host[NAME_MAX_LEN], port[8];
	const char	*why;

	if (strncmp(spec, "unix:", 5) == 0) {
		perr(p, "\"listen unix:\" is not supported");
		return (-1);
	}
	if (spec[0] != '\0' && strspn(spec, "0123456789") == strlen(spec)) {
		if (strlcpy(port, spec, sizeof(port)) >= sizeof(port) ||
		    strtol(port, NULL, 10) < 1 ||
		    strtol(port, NULL, 10) > 65535)
			goto bad;
		return (resolve(p, "listen", NULL, port, 1, res));
	}
	if ((why = split_hostport(spec, host, sizeof(host), port,
	    sizeof(port))) != NULL) {
		perr(p, "invalid value \"%s\" in \"listen\": %s", spec, why);
		return (-1);
	}
	return (resolve(p, "listen", strcmp(host, "*") == 0 ? NULL : host,
	    port, 1, res));
 bad:
	perr(p, "invalid value \"%s\" in \"listen\": invalid port", spec);
	return (-1);
}

static int
set_listen(struct parser *p, int ctx, int argc, char **argv)
{
	struct listen_conf	 tmpl, *lc, *l;
	struct addrinfo		*res, *ai;
	char			 name[ADDR_STR_LEN];

	memset(&tmpl, 0, sizeof(tmpl));
	tmpl.backlog = tmpl.rcvbuf = tmpl.sndbuf = -1;
	tmpl.keepalive = tmpl.ipv6only = -1;
	tmpl.fd = -1;
	if (listen_params(p, argc, argv, &tmpl) == -1 ||
	    listen_resolve(p, argv[1], &res) == -1)
		return (-1);
	/* a host name listens on every address it has, as nginx does */
	for (ai = res; ai != NULL; ai = ai->ai_next) {
		if (tmpl.ipv6only != -1 && ai->ai_family != AF_INET6) {
			perr(p, "ipv6only is not supported on \"%s\"",
			    argv[1]);
			freeaddrinfo(res);
			return (-1);
		}
		sockaddr_str(ai->ai_addr, name, sizeof(name));
		TAILQ_FOREACH(l, &p->conf->listens, entry)
			if (l->server_id == p->cur->srv->id &&
			    strcmp(l->name, name) == 0 && l->line == p->line &&
			    l->file == p->f->name)
				break;
		if (l != NULL)
			continue;
		if ((lc = malloc(sizeof(*lc))) == NULL)
			fatal(__func__);
		*lc = tmpl;
		memcpy(&lc->ss, ai->ai_addr, ai->ai_addrlen);
		lc->sslen = ai->ai_addrlen;
		strlcpy(lc->name, name, sizeof(lc->name));
		lc->server_id = p->cur->srv->id;
		lc->file = p->f->name;
		lc->line = p->line;
		TAILQ_INSERT_TAIL(&p->conf->listens, lc, entry);
		p->cur->nlisten++;
	}
	freeaddrinfo(res);
	return (0);
}

/*
 * Refusals.
 */

/* the ssl_* directives not implemented (yet), each with what it is */
static int
deny_tls(struct parser *p, int ctx, int argc, char **argv)
{
	static const struct {
		const char	*name;
		const char	*what;
	} later[] = {
		{ "ssl_crl",			"with client certificates" },
	};
	size_t	 i;

	for (i = 0; i < sizeof(later) / sizeof(later[0]); i++)
		if (strncmp(argv[0], later[i].name,
		    strlen(later[i].name)) == 0) {
			perr(p, "TLS %s is not supported yet (\"%s\")",
			    later[i].what, argv[0]);
			return (-1);
		}
	perr(p, "TLS \"%s\" is not supported yet", argv[0]);
	return (-1);
}

static int
deny_ssl(struct parser *p, int ctx, int argc, char **argv)
{
	if (strcmp(argv[0], "ssl") == 0)
		perr(p, "the \"ssl\" directive was removed in nginx 1.25.1, "
		    "use \"listen ... ssl\"");
	else
		perr(p, "\"%s\" is not supported: keys must not be "
		    "encrypted", argv[0]);
	return (-1);
}

static int
deny_proto(struct parser *p, int ctx, int argc, char **argv)
{
	perr(p, "\"%s\" is for pop3/smtp; imaprelayd proxies IMAP only",
	    argv[0]);
	return (-1);
}

static int
deny_block(struct parser *p, int ctx, int argc, char **argv)
{
	perr(p, "%s is not supported: imaprelayd is an IMAP proxy", argv[0]);
	return (-1);
}

static int
deny_later(struct parser *p, int ctx, int argc, char **argv)
{
	perr(p, "\"%s\" is not supported yet", argv[0]);
	return (-1);
}

/*
 * After the file: inherit, check, number.
 */

/* nginx's merge: what a server did not set comes from mail{} */
static void
merge(struct psrv *mail, struct psrv *ps)
{
	struct server_conf	*m = mail->srv, *s = ps->srv;
	struct auth_header	*h, *nh;
	unsigned int		 inherit = mail->set & ~ps->set;

	if (inherit & F_SERVER_NAME) {
		memcpy(s->server_name, m->server_name, sizeof(s->server_name));
		s->server_name_set = m->server_name_set;
	}
	if (inherit & F_TIMEOUT)
		s->timeout_ms = m->timeout_ms;
	if (inherit & F_AUTH_HTTP) {
		s->auth_http = m->auth_http;
		s->auth_http_set = m->auth_http_set;
	}
	if (inherit & F_AUTH_HTTP_TIMEOUT)
		s->auth_http_timeout_ms = m->auth_http_timeout_ms;
	if (inherit & F_IMAP_AUTH)
		s->imap_auth = m->imap_auth;
	if (inherit & F_IMAP_CAPS)
		memcpy(s->imap_capabilities, m->imap_capabilities,
		    sizeof(s->imap_capabilities));
	if (inherit & F_CLIENT_BUFFER)
		s->imap_client_buffer = m->imap_client_buffer;
	if (inherit & F_PROXY_BUFFER)
		s->proxy_buffer = m->proxy_buffer;
	if (inherit & F_PROXY_TIMEOUT)
		s->proxy_timeout_ms = m->proxy_timeout_ms;
	if (inherit & F_PASS_ERROR)
		s->proxy_pass_error_message = m->proxy_pass_error_message;
	if (inherit & F_MAX_ERRORS)
		s->max_errors = m->max_errors;
	if (inherit & F_SO_KEEPALIVE)
		s->so_keepalive = m->so_keepalive;
	if (inherit & F_PROXY_PASS) {
		s->proxy_pass = m->proxy_pass;
		s->proxy_pass_len = m->proxy_pass_len;
		memcpy(s->proxy_pass_name, m->proxy_pass_name,
		    sizeof(s->proxy_pass_name));
		s->proxy_pass_set = m->proxy_pass_set;
	}
	if (inherit & F_STARTTLS)
		s->starttls = m->starttls;
	if (inherit & F_SSL_PROTOCOLS)
		s->tls_protocols = m->tls_protocols;
	if (inherit & F_SSL_CIPHERS)
		memcpy(s->tls_ciphers, m->tls_ciphers, sizeof(s->tls_ciphers));
	if (inherit & F_SSL_PREFER)
		s->tls_prefer_server_ciphers = m->tls_prefer_server_ciphers;
	if (inherit & F_SSL_CURVE)
		memcpy(s->tls_ecdh_curve, m->tls_ecdh_curve,
		    sizeof(s->tls_ecdh_curve));
	if (inherit & F_SSL_DHPARAM)
		memcpy(s->tls_dhparams, m->tls_dhparams,
		    sizeof(s->tls_dhparams));
	if (inherit & F_SSL_SESS_TIMEOUT)
		s->tls_session_timeout = m->tls_session_timeout;
	if (inherit & F_SSL_TICKETS)
		s->tls_session_tickets = m->tls_session_tickets;
	ccert_merge(mail, ps);
	limit_merge(mail, ps);
	/* certificates: all of mail's, only if the server names none */
	if (ps->ncert == 0 && ps->nkey == 0) {
		memcpy(s->tls_cert_file, m->tls_cert_file,
		    sizeof(s->tls_cert_file));
		memcpy(s->tls_key_file, m->tls_key_file,
		    sizeof(s->tls_key_file));
		ps->ncert = mail->ncert;
		ps->nkey = mail->nkey;
	}
	/* headers: all of mail's, only if the server has none */
	if (!TAILQ_EMPTY(&s->auth_headers))
		return;
	TAILQ_FOREACH(h, &m->auth_headers, entry) {
		if ((nh = malloc(sizeof(*nh))) == NULL)
			fatal(__func__);
		*nh = *h;
		nh->server_id = s->id;
		TAILQ_INSERT_TAIL(&s->auth_headers, nh, entry);
	}
}

static void
ccert_merge(struct psrv *mail, struct psrv *ps)
{
	struct server_conf	*m = mail->srv, *s = ps->srv;
	unsigned int		 inherit = mail->ccert_set & ~ps->ccert_set;

	if (inherit & CCERT_F_VERIFY)
		s->ccert_verify = m->ccert_verify;
	if (inherit & CCERT_F_DEPTH)
		s->ccert_depth = m->ccert_depth;
	if (inherit & CCERT_F_CA)
		memcpy(s->ccert_ca_file, m->ccert_ca_file,
		    sizeof(s->ccert_ca_file));
	if (inherit & CCERT_F_TRUSTED)
		memcpy(s->ccert_trusted_file, m->ccert_trusted_file,
		    sizeof(s->ccert_trusted_file));
	if (inherit & CCERT_F_PASS)
		s->ccert_pass_cert = m->ccert_pass_cert;
	ps->ccert_set |= inherit;
}

/* one certificate or key file into memory, for the imap workers */
static int
read_pem(struct parser *p, struct psrv *ps, int pair, int key)
{
	const char	*path = atls_pem_path(ps, pair, key) != NULL ?
			    atls_pem_path(ps, pair, key) :
			    ptls_pem_path(ps, pair, key) != NULL ?
			    ptls_pem_path(ps, pair, key) :
			    pair == CCERT_PAIR_CA ? ps->srv->ccert_ca_file :
			    pair == CCERT_PAIR_TRUSTED ?
			    ps->srv->ccert_trusted_file : key ?
			    ps->srv->tls_key_file[pair] :
			    ps->srv->tls_cert_file[pair];
	struct tls_pem	*pem;
	struct stat	 st;
	ssize_t		 n;
	int		 fd;

	if ((fd = open(path, O_RDONLY | O_CLOEXEC)) == -1 ||
	    fstat(fd, &st) == -1) {
		log_warnx("%s:%d: cannot read \"%s\": %s", ps->file,
		    ps->line, path, strerror(errno));
		if (fd != -1)
			close(fd);
		return (-1);
	}
	if (!S_ISREG(st.st_mode) || st.st_size == 0 ||
	    st.st_size > TLS_PEM_MAX) {
		log_warnx("%s:%d: \"%s\": not a file of a sane size",
		    ps->file, ps->line, path);
		close(fd);
		return (-1);
	}
	if ((pem = calloc(1, sizeof(*pem))) == NULL ||
	    (pem->data = calloc(1, st.st_size + 1)) == NULL)
		fatal(__func__);
	pem->server_id = ps->srv->id;
	pem->pair = pair;
	pem->key = key;
	pem->len = st.st_size;
	/* in the list at once: config_free wipes it on any error */
	TAILQ_INSERT_TAIL(&p->conf->tls_pems, pem, entry);
	while (pem->got < pem->len) {
		if ((n = read(fd, pem->data + pem->got,
		    pem->len - pem->got)) <= 0) {
			log_warnx("%s:%d: cannot read \"%s\": %s", ps->file,
			    ps->line, path, n == 0 ? "file shrank" :
			    strerror(errno));
			close(fd);
			return (-1);
		}
		pem->got += n;
	}
	close(fd);
	return (0);
}

/*
 * A server that speaks TLS needs its pairs, read now so that a missing
 * file stops the start; one that does not never has its keys read.
 */
static int
tls_finish(struct parser *p, struct psrv *ps)
{
	struct server_conf	*srv = ps->srv;
	struct listen_conf	*lc, *ssl = NULL;
	int			 i;

	TAILQ_FOREACH(lc, &p->conf->listens, entry)
		if (lc->server_id == srv->id && lc->ssl && ssl == NULL)
			ssl = lc;
	if (ssl == NULL && srv->starttls == STARTTLS_OFF)
		return (0);
	if (ccert_check(ps) == -1)
		return (-1);
	if (ps->ncert == 0) {
		if (ssl != NULL)
			log_warnx("%s:%d: no \"ssl_certificate\" is defined "
			    "for the \"listen ... ssl\" directive", ssl->file,
			    ssl->line);
		else
			log_warnx("%s:%d: no \"ssl_certificate\" is defined "
			    "for \"starttls\"", ps->file, ps->line);
		return (-1);
	}
	if (ps->nkey < ps->ncert) {
		log_warnx("%s:%d: no \"ssl_certificate_key\" is defined for "
		    "certificate \"%s\"", ps->file, ps->line,
		    srv->tls_cert_file[ps->nkey]);
		return (-1);
	}
	if (ps->nkey > ps->ncert) {
		log_warnx("%s:%d: no \"ssl_certificate\" is defined for key "
		    "\"%s\"", ps->file, ps->line, srv->tls_key_file[ps->ncert]);
		return (-1);
	}
	srv->tls_npairs = ps->ncert;
	for (i = 0; i < srv->tls_npairs; i++)
		if (read_pem(p, ps, i, 0) == -1 || read_pem(p, ps, i, 1) == -1)
			return (-1);
	return (ccert_finish(p, ps));
}

/* the CA lists of ssl_verify_client, read now for the imap workers */
static int
ccert_finish(struct parser *p, struct psrv *ps)
{
	struct server_conf	*srv = ps->srv;

	if (srv->ccert_verify == CCERT_VERIFY_OFF)
		return (0);
	if (srv->ccert_ca_file[0] != '\0' &&
	    read_pem(p, ps, CCERT_PAIR_CA, 0) == -1)
		return (-1);
	if (srv->ccert_trusted_file[0] != '\0' &&
	    read_pem(p, ps, CCERT_PAIR_TRUSTED, 0) == -1)
		return (-1);
	return (0);
}

/* as nginx: verification needs a CA list, except optional_no_ca */
static int
ccert_check(struct psrv *ps)
{
	struct server_conf	*srv = ps->srv;

	if (srv->ccert_verify != CCERT_VERIFY_OFF &&
	    srv->ccert_verify != CCERT_VERIFY_NO_CA &&
	    srv->ccert_ca_file[0] == '\0' &&
	    srv->ccert_trusted_file[0] == '\0') {
		log_warnx("%s:%d: no ssl_client_certificate or "
		    "ssl_trusted_certificate for ssl_verify_client",
		    ps->file, ps->line);
		return (-1);
	}
	return (0);
}

static int
finish(struct parser *p, const char *file)
{
	struct psrv		*ps;
	struct listen_conf	*lc, *l;

	if (TAILQ_EMPTY(&p->psrvs)) {
		log_warnx("%s: no mail server is defined", file);
		return (-1);
	}
	TAILQ_FOREACH(ps, &p->psrvs, entry) {
		merge(&p->mail, ps);
		ptls_merge(&p->mail, ps);
		if (ptls_finish(p, ps) == -1)
			return (-1);
		atls_merge(&p->mail, ps);
		if (atls_finish(p, ps) == -1)
			return (-1);
		if (ps->nlisten == 0) {
			log_warnx("%s:%d: server has no \"listen\" directive",
			    ps->file, ps->line);
			return (-1);
		}
		if (!ps->srv->auth_http_set && !ps->srv->proxy_pass_set) {
			log_warnx("%s:%d: server has neither \"auth_http\" "
			    "nor \"proxy_pass\"", ps->file, ps->line);
			return (-1);
		}
		/* the failures counted are auth_http's refusals */
		if (ps->srv->limit_auth_fail > 0 && !ps->srv->auth_http_set) {
			log_warnx("%s:%d: \"limit_auth_fail\" needs "
			    "\"auth_http\" (\"limit_auth_fail off\" in this "
			    "server)", ps->file, ps->line);
			return (-1);
		}
		if (tls_finish(p, ps) == -1)
			return (-1);
	}
	TAILQ_FOREACH(lc, &p->conf->listens, entry) {
		for (l = TAILQ_FIRST(&p->conf->listens); l != lc;
		    l = TAILQ_NEXT(l, entry))
			if (strcmp(l->name, lc->name) == 0)
				break;
		if (l != lc && sni_shared(p->conf, l, lc) == -1) {
			log_warnx("%s:%d: duplicate \"%s\" address and port "
			    "pair", lc->file, lc->line, lc->name);
			return (-1);
		}
	}
	return (0);
}

/*
 * auth_http over https: the CA bundle that verifies the auth service
 * and a client certificate for it.  The parent reads the files; only
 * the auth process gets their bytes (IMSG_CFG_AUTH_TLS).
 */
static int
set_atls(struct parser *p, int ctx, int argc, char **argv)
{
	struct server_conf	*srv = level(p, ctx)->srv;
	char			*dst;
	size_t			 len = TLS_PATH_MAX;

	if (strcmp(argv[0], "auth_http_trusted_certificate") == 0)
		dst = srv->auth_tls_ca_file;
	else if (strcmp(argv[0], "auth_http_certificate") == 0)
		dst = srv->auth_tls_cert_file;
	else
		dst = srv->auth_tls_key_file;
	if (dst[0] != '\0') {
		perr(p, "\"%s\" directive is duplicate", argv[0]);
		return (-1);
	}
	return (ssl_path(p, argv[1], dst, len));
}

static void
atls_merge(struct psrv *mail, struct psrv *ps)
{
	struct server_conf	*m = mail->srv, *s = ps->srv;

	if (s->auth_tls_ca_file[0] == '\0')
		memcpy(s->auth_tls_ca_file, m->auth_tls_ca_file,
		    sizeof(s->auth_tls_ca_file));
	/* the certificate and its key go together */
	if (s->auth_tls_cert_file[0] == '\0' &&
	    s->auth_tls_key_file[0] == '\0') {
		memcpy(s->auth_tls_cert_file, m->auth_tls_cert_file,
		    sizeof(s->auth_tls_cert_file));
		memcpy(s->auth_tls_key_file, m->auth_tls_key_file,
		    sizeof(s->auth_tls_key_file));
	}
}

static const char *
atls_pem_path(struct psrv *ps, int pair, int key)
{
	if (pair == ATLS_PEM_CA)
		return (ps->srv->auth_tls_ca_file);
	if (pair == ATLS_PEM_CLIENT)
		return (key ? ps->srv->auth_tls_key_file :
		    ps->srv->auth_tls_cert_file);
	return (NULL);
}

static int
atls_finish(struct parser *p, struct psrv *ps)
{
	struct server_conf	*s = ps->srv;
	int			 ca = s->auth_tls_ca_file[0] != '\0';
	int			 cert = s->auth_tls_cert_file[0] != '\0';
	int			 key = s->auth_tls_key_file[0] != '\0';

	if (!ca && !cert && !key)
		return (0);
	if (cert != key) {
		log_warnx("%s:%d: \"auth_http_certificate\" and "
		    "\"auth_http_certificate_key\" go together",
		    ps->file, ps->line);
		return (-1);
	}
	/* a plain http service would silently ignore them */
	if (!s->auth_http_set || !s->auth_http.https) {
		log_warnx("%s:%d: \"auth_http_trusted_certificate\" and "
		    "\"auth_http_certificate\" need an https auth_http",
		    ps->file, ps->line);
		return (-1);
	}
	if (ca && read_pem(p, ps, ATLS_PEM_CA, 0) == -1)
		return (-1);
	if (cert && (read_pem(p, ps, ATLS_PEM_CLIENT, 0) == -1 ||
	    read_pem(p, ps, ATLS_PEM_CLIENT, 1) == -1))
		return (-1);
	return (0);
}

/*
 * Beyond nginx: servers may share an address when the client's TLS
 * server name (SNI) tells them apart, that is each has its own
 * server_name and certificates, and all use TLS there the same way.
 * The first server on the address is the default.
 */
static int
sni_shared(struct config *conf, struct listen_conf *first,
    struct listen_conf *lc)
{
	struct server_conf	*a, *b;
	struct listen_conf	*l;

	for (l = first; l != NULL; l = TAILQ_NEXT(l, entry)) {
		if (l == lc)
			return (0);
		if (strcmp(l->name, lc->name) != 0)
			continue;
		a = config_server_byid(conf, l->server_id);
		b = config_server_byid(conf, lc->server_id);
		if (a == NULL || b == NULL || a == b ||
		    !a->server_name_set || !b->server_name_set ||
		    strcasecmp(a->server_name, b->server_name) == 0 ||
		    a->tls_npairs == 0 || b->tls_npairs == 0 ||
		    l->ssl != lc->ssl || (!lc->ssl &&
		    (a->starttls == STARTTLS_OFF ||
		    b->starttls == STARTTLS_OFF)))
			return (-1);
	}
	return (0);
}

/*
 * TLS to the backend: proxy_ssl_*.  The parent reads the CA bundle and
 * the client certificate; the imap workers get the bytes in memory.
 */

static int
set_ptls_mode(struct parser *p, struct server_conf *srv, char **argv)
{
	if (strcmp(argv[1], "on") == 0)
		srv->proxy_ssl = PTLS_ON;
	else if (strcmp(argv[1], "starttls") == 0)
		srv->proxy_ssl = PTLS_STARTTLS;
	else if (strcmp(argv[1], "off") == 0)
		srv->proxy_ssl = PTLS_OFF;
	else {
		perr(p, "invalid value \"%s\" in \"%s\" directive, it must "
		    "be \"on\", \"starttls\" or \"off\"", argv[1], argv[0]);
		return (-1);
	}
	return (0);
}

/* proxy_ssl_ciphers: libtls says now whether it takes them */
static int
set_ptls_ciphers(struct parser *p, struct server_conf *srv, char **argv)
{
	struct tls_config	*tc;
	int			 rv;

	if ((tc = tls_config_new()) == NULL)
		fatal("tls_config_new");
	if ((rv = tls_config_set_ciphers(tc, argv[1])) == -1)
		perr(p, "invalid value \"%s\" in \"%s\" directive: %s",
		    argv[1], argv[0], tls_config_error(tc));
	tls_config_free(tc);
	if (rv == -1)
		return (-1);
	if (strlcpy(srv->proxy_ssl_ciphers, argv[1],
	    sizeof(srv->proxy_ssl_ciphers)) >= sizeof(srv->proxy_ssl_ciphers))
		return (badvalue(p, argv, argv[1]));
	return (0);
}

static int
set_ptls(struct parser *p, int ctx, int argc, char **argv)
{
	struct psrv		*ps = level(p, ctx);
	struct server_conf	*srv = ps->srv;
	const char		*n = argv[0];
	unsigned int		 bit;
	size_t			 i;

	bit = strcmp(n, "proxy_ssl") == 0 ? PTLS_F_MODE :
	    strcmp(n, "proxy_ssl_verify") == 0 ? PTLS_F_VERIFY :
	    strcmp(n, "proxy_ssl_trusted_certificate") == 0 ? PTLS_F_CA :
	    strcmp(n, "proxy_ssl_name") == 0 ? PTLS_F_NAME :
	    strcmp(n, "proxy_ssl_certificate") == 0 ? PTLS_F_CERT :
	    strcmp(n, "proxy_ssl_certificate_key") == 0 ? PTLS_F_KEY :
	    PTLS_F_CIPHERS;
	if (ps->ptls_set & bit) {
		perr(p, "\"%s\" directive is duplicate", n);
		return (-1);
	}
	ps->ptls_set |= bit;
	switch (bit) {
	case PTLS_F_MODE:
		return (set_ptls_mode(p, srv, argv));
	case PTLS_F_VERIFY:
		return (parse_flag(p, argv, &srv->proxy_ssl_verify));
	case PTLS_F_CA:
		return (ssl_path(p, argv[1], srv->proxy_ssl_ca_file,
		    sizeof(srv->proxy_ssl_ca_file)));
	case PTLS_F_CERT:
		return (ssl_path(p, argv[1], srv->proxy_ssl_cert_file,
		    sizeof(srv->proxy_ssl_cert_file)));
	case PTLS_F_KEY:
		return (ssl_path(p, argv[1], srv->proxy_ssl_key_file,
		    sizeof(srv->proxy_ssl_key_file)));
	case PTLS_F_CIPHERS:
		return (set_ptls_ciphers(p, srv, argv));
	}
	/* proxy_ssl_name: a host name or an address, sent as SNI */
	for (i = 0; argv[1][i] != '\0'; i++)
		if (!isalnum((unsigned char)argv[1][i]) &&
		    strchr("-._:", argv[1][i]) == NULL)
			return (badvalue(p, argv, argv[1]));
	if (i == 0 || strlcpy(srv->proxy_ssl_name, argv[1],
	    sizeof(srv->proxy_ssl_name)) >= sizeof(srv->proxy_ssl_name))
		return (badvalue(p, argv, argv[1]));
	return (0);
}

/* what a server did not set comes from mail{}, as for the others */
static void
ptls_merge(struct psrv *mail, struct psrv *ps)
{
	struct server_conf	*m = mail->srv, *s = ps->srv;
	unsigned int		 inherit = mail->ptls_set & ~ps->ptls_set;

	if (inherit & PTLS_F_MODE)
		s->proxy_ssl = m->proxy_ssl;
	if (inherit & PTLS_F_VERIFY)
		s->proxy_ssl_verify = m->proxy_ssl_verify;
	if (inherit & PTLS_F_PROTOCOLS)
		s->proxy_ssl_protocols = m->proxy_ssl_protocols;
	if (inherit & PTLS_F_CIPHERS)
		memcpy(s->proxy_ssl_ciphers, m->proxy_ssl_ciphers,
		    sizeof(s->proxy_ssl_ciphers));
	if (inherit & PTLS_F_NAME)
		memcpy(s->proxy_ssl_name, m->proxy_ssl_name,
		    sizeof(s->proxy_ssl_name));
	if (inherit & PTLS_F_CA)
		memcpy(s->proxy_ssl_ca_file, m->proxy_ssl_ca_file,
		    sizeof(s->proxy_ssl_ca_file));
	/* the client certificate and its key go together */
	if ((ps->ptls_set & (PTLS_F_CERT | PTLS_F_KEY)) == 0) {
		memcpy(s->proxy_ssl_cert_file, m->proxy_ssl_cert_file,
		    sizeof(s->proxy_ssl_cert_file));
		memcpy(s->proxy_ssl_key_file, m->proxy_ssl_key_file,
		    sizeof(s->proxy_ssl_key_file));
	}
}

static const char *
ptls_pem_path(struct psrv *ps, int pair, int key)
{
	if (pair == PTLS_PEM_CA)
		return (ps->srv->proxy_ssl_ca_file);
	if (pair == PTLS_PEM_CLIENT)
		return (key ? ps->srv->proxy_ssl_key_file :
		    ps->srv->proxy_ssl_cert_file);
	return (NULL);
}

/*
 * The files are read when TLS to the backend may be used: proxy_ssl
 * on, or an auth service that can turn it on per user
 * (Auth-Proxy-SSL).  The system's CA bundle is read for proxy_ssl on
 * only: every worker would get a copy, for nothing most of the time.
 */
static int
ptls_finish(struct parser *p, struct psrv *ps)
{
	struct server_conf	*srv = ps->srv;
	const char		*ca;
	int			 cert, key;

	if (srv->proxy_ssl == PTLS_OFF && !srv->auth_http_set)
		return (0);
	cert = srv->proxy_ssl_cert_file[0] != '\0';
	key = srv->proxy_ssl_key_file[0] != '\0';
	if (cert != key) {
		log_warnx("%s:%d: \"proxy_ssl_certificate\" and "
		    "\"proxy_ssl_certificate_key\" go together", ps->file,
		    ps->line);
		return (-1);
	}
	if (cert && (read_pem(p, ps, PTLS_PEM_CLIENT, 0) == -1 ||
	    read_pem(p, ps, PTLS_PEM_CLIENT, 1) == -1))
		return (-1);
	if (!srv->proxy_ssl_verify)
		return (0);
	if (srv->proxy_ssl_ca_file[0] != '\0')
		return (read_pem(p, ps, PTLS_PEM_CA, 0));
	if (srv->proxy_ssl == PTLS_OFF)
		return (0);
	ca = tls_default_ca_cert_file();
	if (strlcpy(srv->proxy_ssl_ca_file, ca,
	    sizeof(srv->proxy_ssl_ca_file)) >= sizeof(srv->proxy_ssl_ca_file)) {
		log_warnx("%s: path too long", ca);
		return (-1);
	}
	return (read_pem(p, ps, PTLS_PEM_CA, 0));
}

static void
parser_free(struct parser *p)
{
	struct psrv		*ps;
	struct auth_header	*h;

	while ((ps = TAILQ_FIRST(&p->psrvs)) != NULL) {
		TAILQ_REMOVE(&p->psrvs, ps, entry);
		free(ps);
	}
	if (p->mail.srv == NULL)
		return;
	while ((h = TAILQ_FIRST(&p->mail.srv->auth_headers)) != NULL) {
		TAILQ_REMOVE(&p->mail.srv->auth_headers, h, entry);
		free(h);
	}
	free(p->mail.srv);
}

struct config *
parse_config(const char *file)
{
	struct parser	 p;
	int		 rv;

	memset(&p, 0, sizeof(p));
	TAILQ_INIT(&p.psrvs);
	p.conf = config_new();
	/* the mail{} level: a server's defaults, kept off the list */
	p.mail.srv = config_server_new(p.conf);
	TAILQ_REMOVE(&p.conf->servers, p.mail.srv, entry);

	rv = parse_file(&p, file, C_MAIN);
	if (rv == 0)
		rv = finish(&p, file);
	parser_free(&p);
	if (rv == -1) {
		config_free(p.conf);
		return (NULL);
	}
	return (p.conf);
}
