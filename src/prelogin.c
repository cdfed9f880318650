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
 * The pre-login dialogue: the commands a client may send before it is
 * logged in, SASL, and the login itself through the auth process.
 */

#include <sys/types.h>
#include <sys/socket.h>
#include <sys/time.h>

#include <event.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <unistd.h>

#include "imaprelayd.h"
#include "imap.h"
#include "sasl.h"

static int	parse_command(struct session *);
static int	login_phase(struct session *);
static int	command_budget(struct session *, const char *);
static int	parse_shrink(struct session *);
static int	client_bad(struct session *, const char *, const char *,
		    const char *);
static int	cmd_capability(struct session *);
static int	cmd_noop(struct session *);
static int	cmd_logout(struct session *);
static int	cmd_id(struct session *);
static int	cmd_starttls(struct session *);
static int	tls_required(struct session *);
static int	arg_is_string(const struct imap_arg *);
static int	cmd_login(struct session *);
static int	cmd_authenticate(struct session *);
static int	sasl_start(struct session *, const struct imap_arg *);
static int	sasl_line(struct session *);
static int	sasl_step(struct session *, const unsigned char *, size_t);
static int	login_start(struct session *, const char *, size_t,
		    const char *, size_t, uint32_t);
static int	backend_request(struct session *);
static uint32_t	auth_new_id(void);
static unsigned int auth_wait_ms(struct session *);
static int	auth_unavailable(struct session *, const char *, size_t);
static int	backend_unavailable(struct session *, const char *, size_t);
static int	auth_ok(struct session *, struct auth_result *,
		    const char *, const char *, int);
static int	auth_fail(struct session *, struct auth_result *, const char *,
		    size_t);
static void	auth_fail_reply(struct session *);

/* RFC 2971's bounds of an ID field */
#define ID_NAME_MAX	30
#define ID_VALUE_MAX	1024

static uint32_t		 auth_next_id;

static const struct {
	const char	*name;
	int		(*fn)(struct session *);
} commands[] = {
	{ "CAPABILITY",		cmd_capability },
	{ "NOOP",		cmd_noop },
	{ "LOGOUT",		cmd_logout },
	{ "ID",			cmd_id },
	{ "LOGIN",		cmd_login },
	{ "AUTHENTICATE",	cmd_authenticate },
	{ "STARTTLS",		cmd_starttls },
};

/*
 * The pre-login dialogue.  Commands are handled in order as long as
 * the client reads our replies; a login stops the parser until the
 * auth process answered.
 */

int
session_parse(struct session *s)
{
	int	 r;

	while (IOBUF_LEN(&s->out) < IMAP_OUT_HIWAT && IOBUF_LEN(&s->in) > 0) {
		if (s->state == S_PRELOGIN)
			r = parse_command(s);
		else if (s->state == S_AUTHENTICATE)
			r = sasl_line(s);
		else
			break;
		if (r == -1)
			return (-1);
		/* a long line was handled: its space is given back */
		if (parse_shrink(s) == -1)
			return (-1);
		if (r == 0)
			break;
		/* a complete command: the next one gets a full timeout */
		if (s->state == S_PRELOGIN || s->state == S_AUTHENTICATE)
			session_timer(s, s->conf->timeout_ms);
	}
	return (0);
}

/*
 * login_timeout: the whole pre-login phase, from accept to the login's
 * answer, is bounded, whatever the client does.  The idle timer of
 * each step (timeout, auth_http_timeout, Auth-Wait) restarts with
 * every command; a client that keeps busy could hold its slot for
 * ever otherwise.
 */
static int
login_phase(struct session *s)
{
	switch (s->state) {
	case S_PRELOGIN:
	case S_AUTHENTICATE:
	case S_AUTH_WAIT:
	case S_AUTH_DELAY:
		return (1);
	default:
		return (0);
	}
}

/*
 * A phase's timer, cut to what is left of login_timeout; login_cut
 * says that the timer is login_timeout's (the clock the timer runs on
 * may see it go off a little before now_ms() reaches the end).
 */
unsigned int
login_timer(struct session *s, unsigned int ms)
{
	uint64_t	 end = s->start_ms + s->conf->login_timeout_ms;
	uint64_t	 now;

	s->login_cut = 0;
	/* the relay re-arms its timer often: no clock read there */
	if (!login_phase(s) || s->conf->login_timeout_ms == 0)
		return (ms);
	now = now_ms();
	if (ms != 0 && now + ms < end)
		return (ms);
	s->login_cut = 1;
	return (now >= end ? 1 : end - now);
}

/* the timer went off: 1 if login_timeout ended the session */
int
login_expired(struct session *s)
{
	if (!s->login_cut || !login_phase(s))
		return (0);
	session_bye(s, "login timeout, too long without logging in",
	    "login timeout");
	return (1);
}

/*
 * login_max_commands: what a client may ask before it logs in, logins
 * and LOGOUT aside (an AUTHENTICATE the client cancels counts).  A
 * client that only keeps the connection busy is told to go.  0: within
 * the budget, -1: the session ends.
 */
static int
command_budget(struct session *s, const char *name)
{
	if (strcmp(name, "LOGIN") == 0 || strcmp(name, "AUTHENTICATE") == 0 ||
	    strcmp(name, "LOGOUT") == 0 ||
	    ++s->commands <= s->conf->login_max_commands)
		return (0);
	imap_cmd_clear(s->cmd);
	return (session_bye(s, "too many commands before login",
	    "too many commands before login"));
}

/*
 * IMAP_LONG_LINE: the buffer and the parser's space grow for the one
 * line that needs it, and come back to imap_client_buffer after it.
 * -1: out of memory, the session is closed.
 */
static int
parse_resize(struct session *s, size_t size)
{
	struct iobuf	 in;
	char		*scratch;

	if (iobuf_alloc(&in, size) == -1 ||
	    (scratch = calloc(1, size)) == NULL) {
		iobuf_free(&in);
		log_warn(__func__);
		session_close(s, "out of memory");
		return (-1);
	}
	iobuf_add(&in, IOBUF_DATA(&s->in), IOBUF_LEN(&s->in));
	iobuf_free(&s->in);
	s->in = in;
	imap_cmd_clear(s->cmd);
	freezero(s->scratch, s->cmd->scratchsz);
	s->scratch = scratch;
	imap_cmd_init(s->cmd, scratch, size);
	return (0);
}

/* a line too long for imap_client_buffer that may be longer: 1 */
static int
parse_long(struct session *s, const char *name)
{
	return (s->in.size < IMAP_LONG_LINE &&
	    (strcmp(name, "ID") == 0 || strcmp(name, "AUTHENTICATE") == 0));
}

/* the long line was read: back to imap_client_buffer when it fits */
static int
parse_shrink(struct session *s)
{
	size_t	 size = s->conf->imap_client_buffer;

	if (s->in.size <= size || IOBUF_LEN(&s->in) >= size)
		return (0);
	return (parse_resize(s, size));
}

/* 1: a command was handled, 0: need more input, -1: session ended */
static int
parse_command(struct session *s)
{
	struct imap_cmd		*cmd = s->cmd;
	enum imap_parse_status	 st;
	size_t			 consumed, i;

 again:
	st = imap_parse(cmd, (char *)IOBUF_DATA(&s->in), IOBUF_LEN(&s->in),
	    s->in.size, &consumed);
	if (st == IMAP_PARSE_TOOBIG && parse_long(s, cmd->name)) {
		if (parse_resize(s, IMAP_LONG_LINE) == -1)
			return (-1);
		goto again;
	}
	switch (st) {
	case IMAP_PARSE_MORE:
		return (0);
	case IMAP_PARSE_LITERAL:
		/* the parser starts over each time: say "+" only once */
		if (cmd->lit_offset != s->lit_acked) {
			s->lit_acked = cmd->lit_offset;
			client_reply(s, "+ Ready for literal data");
		}
		return (0);
	default:
		break;
	}
	iobuf_drain(&s->in, consumed);
	s->lit_acked = 0;
	if (command_budget(s, cmd->name) == -1)
		return (-1);
	if (st == IMAP_PARSE_BAD || st == IMAP_PARSE_TOOBIG)
		return (client_bad(s, cmd->tag, cmd->error, !cmd->close ? NULL :
		    st == IMAP_PARSE_BAD ? "bad command" :
		    cmd->lit_len ? "literal too big" : "line too long"));

#ifdef REGRESS_TRIGGERS
	if (strcmp(cmd->name, "XREGRESS") == 0 && cmd->nargs == 1) {
		char	 buf[128];
		int	 rv;

		rv = imap_regress_try(cmd->args[0].data, buf, sizeof(buf));
		client_reply(s, "%s %s %s", cmd->tag, rv == 0 ? "OK" : "NO",
		    buf);
		imap_cmd_clear(cmd);
		return (1);
	}
#endif
	for (i = 0; i < sizeof(commands) / sizeof(commands[0]); i++)
		if (strcmp(cmd->name, commands[i].name) == 0)
			break;
	if (i == sizeof(commands) / sizeof(commands[0]))
		return (client_bad(s, cmd->tag, "invalid command", NULL));
	if (commands[i].fn(s) == -1)
		return (-1);
	imap_cmd_clear(cmd);
	return (1);
}

/* a BAD reply; it counts toward max_errors.  1, or -1 when closing */
static int
client_bad(struct session *s, const char *tag, const char *text,
    const char *close_reason)
{
	client_reply(s, "%s BAD %s", tag[0] != '\0' ? tag : "*", text);
	imap_cmd_clear(s->cmd);
	if (close_reason != NULL)
		return (session_bye(s, close_reason, close_reason));
	if (++s->errors >= s->conf->max_errors)
		return (session_bye(s, "too many invalid commands",
		    "too many errors"));
	return (1);
}

static int
cmd_capability(struct session *s)
{
	if (s->cmd->nargs != 0)
		return (client_bad(s, s->cmd->tag, "invalid arguments", NULL));
	client_reply(s, "* CAPABILITY %s", session_caps(s));
	client_reply(s, "%s OK CAPABILITY completed", s->cmd->tag);
	return (0);
}

static int
cmd_noop(struct session *s)
{
	if (s->cmd->nargs != 0)
		return (client_bad(s, s->cmd->tag, "invalid arguments", NULL));
	client_reply(s, "%s OK NOOP completed", s->cmd->tag);
	return (0);
}

static int
cmd_logout(struct session *s)
{
	if (s->cmd->nargs != 0)
		return (client_bad(s, s->cmd->tag, "invalid arguments", NULL));
	client_reply(s, "* BYE logging out");
	client_reply(s, "%s OK LOGOUT completed", s->cmd->tag);
	return (session_finish(s, "client logout"));
}

/*
 * Can an ID field travel as an IMAP quoted string, within RFC 2971's
 * bounds (names of 30 octets, values of 1024)?
 */
static int
id_quotable(const struct imap_arg *a, size_t max)
{
	size_t	 i;

	if (a->len > max)
		return (0);
	for (i = 0; i < a->len; i++)
		if ((unsigned char)a->data[i] < 0x20 || a->data[i] == 0x7f)
			return (0);
	return (1);
}

static void
id_quote(struct iobuf *b, const struct imap_arg *a)
{
	size_t	 i;

	iobuf_add(b, "\"", 1);
	for (i = 0; i < a->len; i++) {
		if (a->data[i] == '"' || a->data[i] == '\\')
			iobuf_add(b, "\\", 1);
		iobuf_add(b, &a->data[i], 1);
	}
	iobuf_add(b, "\"", 1);
}

static int
id_nil(const struct imap_arg *a)
{
	return (a->type == IMAP_ARG_ATOM && strcasecmp(a->data, "NIL") == 0);
}

/*
 * Fields a client may not set: "x-originating-ip" and its kin tell a
 * backend that trusts the proxy (Dovecot's login_trusted_networks)
 * who the client is.  Only the proxy says that (proxy.c).
 */
static int
id_reserved(const struct imap_arg *k)
{
	return (k->len >= 2 && strncasecmp(k->data, "x-", 2) == 0);
}

/*
 * ID NIL or ID ("name" "value" ...).  The fields are kept to be
 * passed on to the backend, without the list's parentheses; a field
 * that cannot be quoted is left out (a name) or sent as NIL (a value),
 * and so is every "x-" field.
 */
static int
cmd_id(struct session *s)
{
	struct imap_cmd		*cmd = s->cmd;
	struct iobuf		 b;
	const struct imap_arg	*k, *v;
	int			 i, n = cmd->nargs;

	if (n == 1 && id_nil(&cmd->args[0]))
		goto done;
	if (n < 2 || cmd->args[0].type != IMAP_ARG_LIST_OPEN ||
	    cmd->args[n - 1].type != IMAP_ARG_LIST_CLOSE || n % 2 != 0 ||
	    n > 2 + 2 * 30)
		return (client_bad(s, cmd->tag, "invalid arguments", NULL));
	for (i = 1; i < n - 1; i++)
		if (!arg_is_string(&cmd->args[i]))
			return (client_bad(s, cmd->tag, "invalid arguments",
			    NULL));
	memset(&b, 0, sizeof(b));
	for (i = 1; i < n - 1; i += 2) {
		k = &cmd->args[i];
		v = &cmd->args[i + 1];
		if (!id_quotable(k, ID_NAME_MAX) || id_reserved(k))
			continue;
		if (b.len > 0)
			iobuf_add(&b, " ", 1);
		id_quote(&b, k);
		iobuf_add(&b, " ", 1);
		if (id_nil(v) || !id_quotable(v, ID_VALUE_MAX))
			iobuf_add(&b, "NIL", 3);
		else
			id_quote(&b, v);
	}
	iobuf_add(&b, "\0", 1);
	free(s->id_params);
	s->id_params = (char *)b.data;	/* NULL if out of memory: no ID */
 done:
	client_reply(s, "* ID NIL");
	client_reply(s, "%s OK ID completed", cmd->tag);
	return (0);
}

/*
 * STARTTLS.  What the client pipelined after it in the clear is
 * dropped, never read as if it came under TLS (CVE-2014-3556); no new
 * greeting follows the handshake.
 */
static int
cmd_starttls(struct session *s)
{
	if (s->tls != NULL || s->srv->tls == NULL ||
	    s->conf->starttls == STARTTLS_OFF)
		return (client_bad(s, s->cmd->tag, "invalid command", NULL));
	if (s->cmd->nargs != 0)
		return (client_bad(s, s->cmd->tag, "invalid arguments", NULL));
	client_reply(s, "%s OK Begin TLS negotiation now", s->cmd->tag);
	iobuf_drain(&s->in, IOBUF_LEN(&s->in));
	s->tls_state = TLSS_PENDING;
	return (0);
}

/* starttls only: no credentials in the clear (RFC 5530's code) */
static int
tls_required(struct session *s)
{
	if (s->conf->starttls != STARTTLS_ONLY || s->tls != NULL)
		return (0);
	client_reply(s, "%s NO [PRIVACYREQUIRED] TLS is required", s->cmd->tag);
	return (1);
}

static int
arg_is_string(const struct imap_arg *a)
{
	return (a->type == IMAP_ARG_ATOM || a->type == IMAP_ARG_QUOTED ||
	    a->type == IMAP_ARG_LITERAL);
}

static int
cmd_login(struct session *s)
{
	struct imap_cmd		*cmd = s->cmd;
	const struct imap_arg	*u = &cmd->args[0], *p = &cmd->args[1];

	if (cmd->nargs != 2 || !arg_is_string(u) || !arg_is_string(p) ||
	    u->len == 0 || memchr(u->data, '\0', u->len) != NULL ||
	    memchr(p->data, '\0', p->len) != NULL)
		return (client_bad(s, cmd->tag, "invalid arguments", NULL));
	if (tls_required(s))
		return (0);
	strlcpy(s->tag, cmd->tag, sizeof(s->tag));
	return (login_start(s, u->data, u->len, p->data, p->len,
	    AUTH_METHOD_PLAIN));
}

static int
cmd_authenticate(struct session *s)
{
	struct imap_cmd	*cmd = s->cmd;
	const char	*mech;
	unsigned int	 flag = 0;

	if (tls_required(s))
		return (0);
	if (cmd->nargs < 1 || cmd->nargs > 2 ||
	    cmd->args[0].type != IMAP_ARG_ATOM ||
	    (cmd->nargs == 2 && cmd->args[1].type != IMAP_ARG_ATOM))
		return (client_bad(s, cmd->tag, "invalid arguments", NULL));
	mech = cmd->args[0].data;
	if (strcasecmp(mech, "PLAIN") == 0)
		flag = MECH_PLAIN;
	else if (strcasecmp(mech, "LOGIN") == 0)
		flag = MECH_LOGIN;
	else if (strcasecmp(mech, "CRAM-MD5") == 0)
		flag = MECH_CRAM_MD5;
	else if (strcasecmp(mech, "EXTERNAL") == 0)
		flag = MECH_EXTERNAL;
	/*
	 * As in nginx, PLAIN and LOGIN are always accepted (clients use
	 * them unadvertised); CRAM-MD5 and EXTERNAL must be enabled, and
	 * need the auth service to hand out the real password.
	 */
	if (flag == 0 || ((flag == MECH_CRAM_MD5 || flag == MECH_EXTERNAL) &&
	    (!(s->conf->imap_auth & flag) || !s->conf->auth_http_set))) {
		client_reply(s, "%s NO unsupported authentication mechanism",
		    cmd->tag);
		return (0);
	}
	if (flag == MECH_CRAM_MD5 && cmd->nargs == 2)
		return (client_bad(s, cmd->tag, "invalid arguments", NULL));
	strlcpy(s->tag, cmd->tag, sizeof(s->tag));
	s->sasl = flag == MECH_PLAIN ? SASL_PLAIN : flag == MECH_LOGIN ?
	    SASL_LOGIN_USER : flag == MECH_EXTERNAL ? SASL_EXTERNAL :
	    SASL_CRAM_MD5;
	return (sasl_start(s, cmd->nargs == 2 ? &cmd->args[1] : NULL));
}

static int
sasl_start(struct session *s, const struct imap_arg *ir)
{
	char	 b64[SASL_SALT_LEN * 2];

	if (ir != NULL) {
		/* SASL-IR: the initial response is the first line */
		s->state = S_AUTHENTICATE;
		return (sasl_step(s, (const unsigned char *)ir->data,
		    ir->len));
	}
	switch (s->sasl) {
	case SASL_PLAIN:
		client_reply(s, "+ ");
		break;
	case SASL_LOGIN_USER:
	case SASL_EXTERNAL:	/* nginx asks EXTERNAL for "Username:" too */
		client_reply(s, "+ VXNlcm5hbWU6");
		break;
	default:
		if ((s->salt == NULL &&
		    (s->salt = calloc(1, SASL_SALT_LEN)) == NULL) ||
		    sasl_cram_md5_salt(s->salt, SASL_SALT_LEN,
		    s->conf->server_name) == -1 ||
		    base64_encode((unsigned char *)s->salt, strlen(s->salt),
		    b64, sizeof(b64)) == -1) {
			s->sasl = SASL_NONE;
			return (client_bad(s, s->tag, "internal error", NULL));
		}
		client_reply(s, "+ %s", b64);
		break;
	}
	s->state = S_AUTHENTICATE;
	return (0);
}

/* a continuation line of AUTHENTICATE: 1 handled, 0 more, -1 ended */
static int
sasl_line(struct session *s)
{
	enum imap_parse_status	 st;
	size_t			 linelen, consumed;
	char			*line;
	int			 r;

	/* an OAuth token in base64 may be longer than imap_client_buffer */
	while ((st = imap_parse_line((char *)IOBUF_DATA(&s->in),
	    IOBUF_LEN(&s->in), s->in.size, &linelen, &consumed)) ==
	    IMAP_PARSE_TOOBIG && s->in.size < IMAP_LONG_LINE)
		if (parse_resize(s, IMAP_LONG_LINE) == -1)
			return (-1);
	if (st == IMAP_PARSE_MORE)
		return (0);
	if (st != IMAP_PARSE_COMPLETE)
		return (client_bad(s, s->tag, "[TOOBIG] line too long",
		    "line too long"));
	/* the line may hold a password: copy it out, wipe the buffer */
	if ((line = malloc(linelen + 1)) == NULL) {
		log_warn(__func__);
		session_close(s, "out of memory");
		return (-1);
	}
	memcpy(line, IOBUF_DATA(&s->in), linelen);
	line[linelen] = '\0';
	iobuf_drain(&s->in, consumed);
	r = sasl_step(s, (unsigned char *)line, linelen);
	freezero(line, linelen + 1);
	return (r == -1 ? -1 : 1);
}

static int
sasl_fail(struct session *s, const char *text)
{
	s->state = S_PRELOGIN;
	s->sasl = SASL_NONE;
	return (client_bad(s, s->tag, text, NULL));
}

/* one client response of the exchange in s->sasl; 0 or -1 */
static int
sasl_step(struct session *s, const unsigned char *line, size_t len)
{
	struct sasl_plain	 pl;
	unsigned char		*dec;
	const char		*u, *digest;
	size_t			 declen = len / 4 * 3 + 3, ulen;
	int			 n, r;

	if (len == 1 && line[0] == '*') {
		s->state = S_PRELOGIN;
		s->sasl = SASL_NONE;
		client_reply(s, "%s BAD authentication cancelled", s->tag);
		/* no login was tried: it spends the budget of commands */
		return (command_budget(s, "") == -1 ? -1 : 0);
	}
	if ((dec = malloc(declen)) == NULL) {
		log_warn(__func__);
		session_close(s, "out of memory");
		return (-1);
	}
	/* "=" is an empty initial response (RFC 4959) */
	n = (len == 1 && line[0] == '=') || len == 0 ? 0 :
	    base64_decode((const char *)line, len, dec, declen);
	if (n == -1)
		r = sasl_fail(s, "invalid base64");
	else if (s->sasl == SASL_PLAIN) {
		if (sasl_plain_parse(dec, n, &pl) == -1)
			r = sasl_fail(s, "invalid SASL message");
		else
			r = login_start(s, pl.user, pl.user_len, pl.pass,
			    pl.pass_len, AUTH_METHOD_PLAIN);
	} else if (s->sasl == SASL_LOGIN_USER) {
		if (n == 0 || memchr(dec, '\0', n) != NULL)
			r = sasl_fail(s, "invalid SASL message");
		else {
			free(s->user);
			s->user = strndup((char *)dec, n);
			s->sasl = SASL_LOGIN_PASS;
			client_reply(s, "+ UGFzc3dvcmQ6");
			r = s->user == NULL ?
			    sasl_fail(s, "internal error") : 0;
		}
	} else if (s->sasl == SASL_EXTERNAL) {
		/* the name to log in as; the auth service knows the rest */
		if (n == 0 || memchr(dec, '\0', n) != NULL)
			r = sasl_fail(s, "invalid SASL message");
		else
			r = login_start(s, (char *)dec, n, "", 0,
			    AUTH_METHOD_EXTERNAL);
	} else if (s->sasl == SASL_LOGIN_PASS) {
		if (memchr(dec, '\0', n) != NULL)
			r = sasl_fail(s, "invalid SASL message");
		else
			r = login_start(s, s->user, strlen(s->user),
			    (char *)dec, n, AUTH_METHOD_PLAIN);
	} else {
		if (sasl_cram_md5_parse(dec, n, &u, &ulen, &digest) == -1)
			r = sasl_fail(s, "invalid SASL message");
		else
			r = login_start(s, u, ulen, digest, 32,
			    AUTH_METHOD_CRAM_MD5);
	}
	freezero(dec, declen);
	return (r == -1 ? -1 : 0);
}

/* the LOGIN command, or the SASL mechanism whose last step this is */
static const char *
login_mech(enum sasl_step step)
{
	switch (step) {
	case SASL_NONE:
		return ("login");
	case SASL_PLAIN:
		return ("plain");
	case SASL_LOGIN_USER:
	case SASL_LOGIN_PASS:
		return ("sasl-login");
	case SASL_CRAM_MD5:
		return ("cram-md5");
	case SASL_EXTERNAL:
		return ("external");
	}
	return ("-");
}

/*
 * Login: keep the credentials, then ask auth, which asks the auth
 * service and connects to the backend it names; with a static
 * proxy_pass and no auth_http auth only connects, and the backend
 * judges the credentials, which never leave this process.
 */
static int
login_start(struct session *s, const char *user, size_t ulen,
    const char *pass, size_t plen, uint32_t method)
{
	char	*u, *p;

	if ((u = strndup(user, ulen)) == NULL ||
	    (p = malloc(plen + 1)) == NULL) {
		free(u);
		log_warn(__func__);
		session_close(s, "out of memory");
		return (-1);
	}
	memcpy(p, pass, plen);
	p[plen] = '\0';
	session_wipe_creds(s);
	free(s->user);
	s->user = u;
	s->pass = p;
	s->pass_len = plen;
	s->method = method;
	s->mech = login_mech(s->sasl);
	s->sasl = SASL_NONE;
	s->attempt++;

	if (!s->conf->auth_http_set) {
		if (!s->conf->proxy_pass_set)
			return (session_unavailable(s,
			    "authentication service unavailable",
			    "no auth_http and no proxy_pass",
			    "auth unavailable"));
		s->auth_ms = 0;
		if (proxy_creds(s, s->user, strlen(s->user), s->pass,
		    s->pass_len) == -1)
			return (-1);
	}
	s->state = S_AUTH_WAIT;
	s->auth_start_ms = now_ms();
	/* auth enforces every timeout; this only guards against a hang */
	session_timer(s, auth_wait_ms(s));
	if (iev_auth == NULL)
		return (0);	/* sent when the channel arrives */
	return (auth_send(s));
}

/*
 * The longest the auth process may take: the auth service's timeout,
 * then the server's timeout for each backend address it tries.
 */
static unsigned int
auth_wait_ms(struct session *s)
{
	uint64_t	 ms = s->conf->timeout_ms;
	int		 n = HOST_ADDRS_MAX;

	if (!s->conf->auth_http_set && s->conf->proxy_pass.n > 0)
		n = s->conf->proxy_pass.n;
	ms = ms * n + 1000;
	if (s->conf->auth_http_set)
		ms += s->conf->auth_http_timeout_ms;
	return (ms > UINT_MAX ? UINT_MAX : ms);
}

static uint32_t
auth_new_id(void)
{
	if (++auth_next_id == 0)
		auth_next_id = 1;
	return (auth_next_id);
}

int
auth_send(struct session *s)
{
	struct auth_request	 req;
	unsigned char		*msg, *p;
	size_t			 ulen = strlen(s->user), len;
	size_t			 slen = s->method == AUTH_METHOD_CRAM_MD5 ?
				    strlen(s->salt) : 0;
	int			 r;

	if (!s->conf->auth_http_set)
		return (backend_request(s));
	memset(&req, 0, sizeof(req));
	req.id = auth_new_id();
	req.server_id = s->conf->id;
	req.method = s->method;
	req.attempt = s->attempt;
	strlcpy(req.client_ip, s->client_ip, sizeof(req.client_ip));
	req.client_port = s->client_port;
	realip_request(s, &req);
	if (s->tls_state == TLSS_ON) {
		req.flags |= AUTH_REQ_SSL;
		ctls_info(s, req.ssl_protocol, sizeof(req.ssl_protocol),
		    req.ssl_cipher, sizeof(req.ssl_cipher));
	}
	req.user_len = ulen;
	req.pass_len = s->pass_len;
	req.salt_len = slen;
	ccert_request(s, &req);
	len = sizeof(req) + ulen + s->pass_len + slen + req.subject_len +
	    req.issuer_len + req.cert_len;
	if ((msg = malloc(len)) == NULL) {
		log_warn(__func__);
		session_close(s, "out of memory");
		return (-1);
	}
	memcpy(msg, &req, sizeof(req));
	memcpy(msg + sizeof(req), s->user, ulen);
	memcpy(msg + sizeof(req) + ulen, s->pass, s->pass_len);
	if (slen > 0)	/* no salt is allocated but for CRAM-MD5 */
		memcpy(msg + sizeof(req) + ulen + s->pass_len, s->salt, slen);
	if (s->ccert != NULL) {
		p = msg + sizeof(req) + ulen + s->pass_len + slen;
		/* a NULL field has length 0 and is not copied */
		if (req.subject_len > 0)
			memcpy(p, s->ccert->subject, req.subject_len);
		if (req.issuer_len > 0)
			memcpy(p + req.subject_len, s->ccert->issuer,
			    req.issuer_len);
		if (req.cert_len > 0)
			memcpy(p + req.subject_len + req.issuer_len,
			    s->ccert->cert, req.cert_len);
	}
	r = imsgev_compose(iev_auth, IMSG_AUTH_REQUEST, 0, -1, msg, len);
	freezero(msg, len);
	if (r == -1)
		return (session_unavailable(s,
		    "authentication service unavailable",
		    "auth request not sent", "auth unavailable"));
	s->auth_id = req.id;
	return (0);
}

/* proxy_pass without auth_http: auth connects, nothing more */
static int
backend_request(struct session *s)
{
	struct auth_backend	 b;

	memset(&b, 0, sizeof(b));
	b.id = auth_new_id();
	b.server_id = s->conf->id;
	strlcpy(b.client_ip, s->client_ip, sizeof(b.client_ip));
	if (imsgev_compose(iev_auth, IMSG_AUTH_BACKEND, 0, -1, &b,
	    sizeof(b)) == -1)
		return (session_unavailable(s, "backend unavailable",
		    "backend request not sent", "backend unavailable"));
	s->auth_id = b.id;
	return (0);
}

/* the client left or the session ends while auth works for it */
void
auth_cancel(struct session *s)
{
	if (s->auth_id != 0 && iev_auth != NULL)
		imsgev_compose(iev_auth, IMSG_AUTH_CANCEL, 0, -1,
		    &s->auth_id, sizeof(s->auth_id));
	s->auth_id = 0;
	auth_release(s);
}

/*
 * The backend handed greeted with BYE: the auth process connects to
 * the next of the login's list and answers as for the first, with
 * the socket alone (auth_ok).
 */
int
auth_next(struct session *s)
{
	struct auth_next	 n;

	if (s->backend_id == 0 || iev_auth == NULL)
		return (session_unavailable(s, "backend unavailable",
		    "auth process gone before the next backend",
		    "backend unavailable"));
	memset(&n, 0, sizeof(n));
	n.id = s->backend_id;
	n.backend = s->bindex + 1;
	imsgev_compose(iev_auth, IMSG_AUTH_NEXT, 0, -1, &n, sizeof(n));
	s->auth_id = s->backend_id;
	s->bnext = 1;
	s->state = S_AUTH_WAIT;
	session_timer(s, auth_wait_ms(s));
	session_update(s);
	return (0);
}

/* the backend greeted: auth may forget the list of this login */
void
auth_release(struct session *s)
{
	if (s->backend_id != 0 && iev_auth != NULL)
		imsgev_compose(iev_auth, IMSG_AUTH_CANCEL, 0, -1,
		    &s->backend_id, sizeof(s->backend_id));
	s->backend_id = 0;
}

void
auth_result(struct imsg *imsg)
{
	struct auth_result	 res;
	struct session		*s;
	char			*user, *pass, *text;
	size_t			 len = imsg_get_len(imsg);

	if (len < sizeof(res))
		fatalx("%s: short message", __func__);
	memcpy(&res, imsg->data, sizeof(res));
	if ((uint64_t)res.user_len + res.pass_len + res.text_len !=
	    len - sizeof(res) || res.server_len > sizeof(res.server) ||
	    res.nbackends > HOST_ADDRS_MAX ||
	    (res.status == AUTH_STATUS_OK && (res.server_len == 0 ||
	    res.backend >= res.nbackends)))
		fatalx("%s: bad lengths", __func__);
	user = (char *)imsg->data + sizeof(res);
	pass = user + res.user_len;
	text = pass + res.pass_len;

	TAILQ_FOREACH(s, &imap_sessions, entry)
		if (s->state == S_AUTH_WAIT && s->auth_id == res.id)
			break;
	if (s != NULL) {
		log_select(s->conf->id);
		s->auth_id = 0;
		/* the time the auth service took, backend connect included */
		if (s->conf->auth_http_set && !s->bnext)
			s->auth_ms = now_ms() - s->auth_start_ms;
		switch (res.status) {
		case AUTH_STATUS_OK:
			/* the socket is ours; imsg_free() closes an unclaimed one */
			auth_ok(s, &res, user, pass, imsg_get_fd(imsg));
			break;
		case AUTH_STATUS_FAIL:
			auth_fail(s, &res, text, res.text_len);
			break;
		case AUTH_STATUS_BACKEND:
			backend_unavailable(s, text, res.text_len);
			break;
		default:
			auth_unavailable(s, text, res.text_len);
			break;
		}
	}
	explicit_bzero(imsg->data, len);
}

/* a reason from the auth process, fit for a log line */
static void
reason_copy(char *why, size_t size, const char *prefix, const char *text,
    size_t len)
{
	size_t	 i;

	strlcpy(why, prefix, size);
	for (i = strlen(why); len > 0 && i < size - 1; i++, text++, len--)
		why[i] = (unsigned char)*text < 0x20 || *text == '"' ?
		    '?' : *text;
	why[i] = '\0';
}

/* no backend of the list answered: the auth process says which failed */
static int
backend_unavailable(struct session *s, const char *text, size_t len)
{
	char	 why[256];

	reason_copy(why, sizeof(why), "", text, len);
	return (session_unavailable(s, "backend unavailable", why,
	    "backend unavailable"));
}

static int
auth_unavailable(struct session *s, const char *text, size_t len)
{
	char	 why[256];

	reason_copy(why, sizeof(why), "auth service: ", text, len);
	return (session_unavailable(s, "authentication service unavailable",
	    why, "auth unavailable"));
}

/*
 * The login is good and fd is connected to its backend.  The first
 * answer brings the credentials for the backend (proxy_creds() copies
 * them: Auth-User and Auth-Pass, else the client's own); an answer to
 * IMSG_AUTH_NEXT only another socket, the credentials are kept.
 */
static int
auth_ok(struct session *s, struct auth_result *res, const char *user,
    const char *pass, int fd)
{
	const struct sockaddr	*sa = (struct sockaddr *)&res->server;

	if (fd == -1)
		return (session_unavailable(s, "backend unavailable",
		    "auth process gave no backend socket",
		    "backend unavailable"));
	s->backend_id = res->id;
	s->bindex = res->backend;
	s->bcount = res->nbackends;
	if (s->bnext) {
		s->bnext = 0;
		return (proxy_backend(s, fd, sa, res->server_len));
	}
	if (s->method == AUTH_METHOD_CRAM_MD5 && s->conf->auth_http_set &&
	    !res->pass_set) {
		close(fd);
		return (session_unavailable(s,
		    "authentication service unavailable",
		    "auth service gave no Auth-Pass for CRAM-MD5",
		    "auth unavailable"));
	}
	/* Auth-Proxy-SSL and Auth-Proxy-SSL-Name, for this login only */
	s->bssl_auth = res->proxy_ssl;
	free(s->bssl_auth_name);
	if ((s->bssl_auth_name = strndup(res->proxy_ssl_name,
	    sizeof(res->proxy_ssl_name) - 1)) == NULL) {
		close(fd);
		log_warn(__func__);
		session_close(s, "out of memory");
		return (-1);
	}
	if (s->conf->auth_http_set && proxy_creds(s,
	    res->user_set ? user : s->user,
	    res->user_set ? res->user_len : strlen(s->user),
	    res->pass_set ? pass : s->pass,
	    res->pass_set ? res->pass_len : s->pass_len) == -1) {
		close(fd);
		return (-1);
	}
	return (proxy_backend(s, fd, sa, res->server_len));
}

/* refused: Auth-Wait seconds before the NO slow down password guessing */
static int
auth_fail(struct session *s, struct auth_result *res, const char *text,
    size_t len)
{
	char		 user[128];
	size_t		 i;
	uint32_t	 wait = res->wait;

	log_info("login failed client=%s user=%s%s", s->client,
	    log_safe(user, sizeof(user), s->user, strlen(s->user)),
	    res->limited ? " (limit_auth_fail)" : "");
	session_wipe_creds(s);
	free(s->failtext);
	if (len > HEADER_VALUE_LEN)
		len = HEADER_VALUE_LEN;		/* one reply line */
	if ((s->failtext = memdup0(len ? text : "authentication failed",
	    len ? len : strlen("authentication failed"))) == NULL) {
		log_warn(__func__);
		session_close(s, "out of memory");
		return (-1);
	}
	/* the text goes on one reply line */
	for (i = 0; s->failtext[i] != '\0'; i++)
		if ((unsigned char)s->failtext[i] < 0x20)
			s->failtext[i] = ' ';
	if (wait == 0) {
		auth_fail_reply(s);
		return (session_bye(s, "authentication failed", res->limited ?
		    "limit_auth_fail" : "login failed"));
	}
	s->state = S_AUTH_DELAY;
	session_timer(s, wait > 3600 ? 3600 * 1000 : wait * 1000);
	return (0);
}

static void
auth_fail_reply(struct session *s)
{
	if (s->failtext[0] == '[')
		client_reply(s, "%s NO %s", s->tag, s->failtext);
	else
		client_reply(s, "%s NO [AUTHENTICATIONFAILED] %s", s->tag,
		    s->failtext);
	free(s->failtext);
	s->failtext = NULL;
}

int
auth_delay_done(struct session *s)
{
	auth_fail_reply(s);
	return (session_resume(s));
}
