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
 * The backend side of a session: take the socket the auth process
 * connected (a worker opens no connection itself), read the greeting,
 * log in on the client's behalf with as few round trips as the backend
 * allows, then relay bytes both ways, bounded in each direction.
 */

#include <sys/types.h>
#include <sys/socket.h>

#include <errno.h>
#include <event.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <unistd.h>

#include "imaprelayd.h"
#include "imap.h"
#include "sasl.h"

static void	proxy_backend_read(int, short, void *);
static void	proxy_backend_write(int, short, void *);
static int	backend_fail(struct session *, const char *, ...)
		    __attribute__((format(printf, 2, 3)));
static int	backend_lines(struct session *);
static int	backend_greeting(struct session *, const char *, size_t);
static void	backend_caps(struct session *, const char *);
static int	backend_login_line(struct session *, const char *, size_t);
static void	login_add_id(struct session *, struct iobuf *);
static int	login_build(struct session *);
static int	login_write(struct session *);
static int	login_ok(struct session *, const char *, size_t);
static int	login_rejected(struct session *, const char *, size_t);
static void	relay_start(struct session *);
static int	backend_flush(struct session *);
static int	relay_backend_read(struct session *);
static void	relay_tail(struct session *, const unsigned char *, size_t);
static ssize_t	backend_read(struct session *, void *, size_t);
static ssize_t	backend_write(struct session *, const void *, size_t);
static void	backend_tls_name(struct session *, const struct sockaddr *,
		    socklen_t);
static int	backend_tls_start(struct session *);
static void	backend_tls_step(struct session *);
static int	backend_starttls(struct session *);
static int	backend_starttls_line(struct session *, const char *, size_t);

/* the backend gets its own copy: the client's is wiped here */
int
proxy_creds(struct session *s, const char *user, size_t ulen,
    const char *pass, size_t plen)
{
	char	*u, *p;

	if ((u = memdup0(user, ulen)) == NULL ||
	    (p = memdup0(pass, plen)) == NULL) {
		free(u);
		log_warn(__func__);
		session_close(s, "out of memory");
		return (-1);
	}
	session_wipe_creds(s);
	s->buser = u;
	s->buser_len = ulen;
	s->bpass = p;
	s->bpass_len = plen;
	return (0);
}

/*
 * A socket the auth process connected to the backend at sa (named by
 * the auth service, or proxy_pass): the greeting is next, within the
 * server's timeout, as is the login after it.
 */
int
proxy_backend(struct session *s, int fd, const struct sockaddr *sa,
    socklen_t salen)
{
	const char	*why;

	s->bcaps = 0;
	sockaddr_str(sa, s->backend, sizeof(s->backend));
	backend_tls_name(s, sa, salen);
	if (s->b2c.data == NULL &&
	    iobuf_alloc(&s->b2c, s->conf->proxy_buffer) == -1) {
		close(fd);
		return (backend_fail(s, "backend %s: %s", s->backend,
		    strerror(errno)));
	}
	s->bfd = fd;
	event_set(&s->ev_bread, s->bfd, EV_READ | EV_PERSIST,
	    proxy_backend_read, s);
	event_set(&s->ev_bwrite, s->bfd, EV_WRITE | EV_PERSIST,
	    proxy_backend_write, s);
	s->state = S_BACKEND_GREETING;
	session_timer(s, s->conf->timeout_ms);
	/* proxy_protocol: our PROXY header goes first, TLS or not */
	if (realip_backend(s, &why) == -1)
		return (backend_fail(s, "backend %s: %s", s->backend, why));
	/* proxy_ssl on: the greeting comes over TLS */
	if (s->bssl == PTLS_ON)
		return (backend_tls_start(s));
	session_update(s);
	return (0);
}

void
proxy_close_backend(struct session *s)
{
	ptls_free(s);
	s->bstarttls = 0;
	if (s->bfd != -1) {
		event_del(&s->ev_bread);
		event_del(&s->ev_bwrite);
		close(s->bfd);
		s->bfd = -1;
	}
	iobuf_free(&s->b2c);
	iobuf_free(&s->login);
	free(s->bssl_name);
	s->bssl_name = NULL;
	spipe_release(&s->c2bp);
	spipe_release(&s->b2cp);
	s->id_pending = 0;
}

/* the backend could not take the login: tell the client, close */
static int
backend_fail(struct session *s, const char *fmt, ...)
{
	char	 why[256];
	va_list	 ap;
	size_t	 i;

	va_start(ap, fmt);
	vsnprintf(why, sizeof(why), fmt, ap);
	va_end(ap);
	/* the reason may quote a backend line: keep the log line sane */
	for (i = 0; why[i] != '\0'; i++)
		if ((unsigned char)why[i] < 0x20 || why[i] == '"')
			why[i] = '?';
	return (session_unavailable(s, "backend unavailable", why,
	    "backend unavailable"));
}

void
proxy_timeout(struct session *s)
{
	backend_fail(s, "backend timeout");
}

/* a backend line for a log: without its CRLF */
static int
linelen(const char *line, size_t len)
{
	while (len > 0 && (line[len - 1] == '\n' || line[len - 1] == '\r'))
		len--;
	return (len > 200 ? 200 : (int)len);
}

static void
proxy_backend_write(int fd, short event, void *arg)
{
	struct session	*s = arg;

	log_select(s->conf->id);
	if (s->btls_state == TLSS_HANDSHAKE) {
		backend_tls_step(s);
		return;
	}
	/* a TLS read that waited for this event */
	if (s->btls_rwantw) {
		s->btls_rwantw = 0;
		proxy_backend_read(fd, EV_READ, s);
		return;
	}
	switch (s->state) {
	case S_BACKEND_LOGIN:
		if (login_write(s) == -1)
			return;
		break;
	case S_RELAY:
		if (backend_flush(s) == -1 || proxy_relay_check(s) == -1)
			return;
		break;
	default:
		break;
	}
	session_update(s);
}

static void
proxy_backend_read(int fd, short event, void *arg)
{
	struct session	*s = arg;
	size_t		 room;
	ssize_t		 n;

	log_select(s->conf->id);
	if (s->btls_state == TLSS_HANDSHAKE) {
		backend_tls_step(s);
		return;
	}
	/* a TLS write that waited for this event goes first */
	if (s->btls_wwantr) {
		s->btls_wwantr = 0;
		if (s->state == S_BACKEND_LOGIN && login_write(s) == -1)
			return;
		if (s->state == S_RELAY && (backend_flush(s) == -1 ||
		    proxy_relay_check(s) == -1))
			return;
	}
	if (s->state == S_RELAY) {
		if (relay_backend_read(s) != -1)
			session_update(s);
		return;
	}
	if ((room = iobuf_room(&s->b2c)) == 0) {
		session_update(s);
		return;
	}
	if ((n = backend_read(s, s->b2c.data + s->b2c.len, room)) == -1) {
		if (errno != EAGAIN && errno != EINTR)
			backend_fail(s, "backend %s: read: %s", s->backend,
			    strerror(errno));
		else
			session_update(s);	/* TLS may wait for POLLOUT */
		return;
	}
	if (n == 0) {
		backend_fail(s, "backend %s: connection closed", s->backend);
		return;
	}
	s->b2c.len += n;
	if (backend_lines(s) == -1 || client_flush(s) == -1)
		return;
	if (s->state == S_RELAY && (backend_flush(s) == -1 ||
	    proxy_relay_check(s) == -1))
		return;
	session_update(s);
}

/* complete lines of the greeting and login phase, one at a time */
static int
backend_lines(struct session *s)
{
	unsigned char	*lf;
	char		*line;
	size_t		 len;
	int		 r;

	while (s->state == S_BACKEND_GREETING || s->state == S_BACKEND_LOGIN) {
		/* untagged lines are queued for the client: bound them */
		if (IOBUF_LEN(&s->out) >= IMAP_OUT_HIWAT)
			return (0);
		lf = memchr(IOBUF_DATA(&s->b2c), '\n', IOBUF_LEN(&s->b2c));
		if (lf == NULL) {
			if (IOBUF_LEN(&s->b2c) == s->b2c.size)
				return (backend_fail(s,
				    "backend %s: line too long", s->backend));
			return (0);
		}
		/* a copy: the handler may close the backend and its buffer */
		len = lf - IOBUF_DATA(&s->b2c) + 1;
		if ((line = memdup0(IOBUF_DATA(&s->b2c), len)) == NULL) {
			log_warn(__func__);
			session_close(s, "out of memory");
			return (-1);
		}
		iobuf_drain(&s->b2c, len);
		if (s->state == S_BACKEND_GREETING)
			r = backend_greeting(s, line, len);
		else
			r = backend_login_line(s, line, len);
		free(line);
		if (r == -1)
			return (-1);
	}
	return (0);
}

/*
 * proxy_pass_error_message: a backend that greets with BYE (too many
 * connections, maintenance) has its words passed on, in the NO of the
 * client's login (with its RFC 5530 code if it gave one) and as the
 * BYE that ends the session.
 */
static int
greeting_bye(struct session *s, const char *line, size_t len)
{
	char	 text[256], user[128], why[300];
	int	 i, n = linelen(line, len) - 6;

	snprintf(text, sizeof(text), "%.*s", n, line + 6);
	for (i = 0; text[i] != '\0'; i++)
		if ((unsigned char)text[i] < 0x20 || text[i] == 0x7f)
			text[i] = ' ';
	snprintf(why, sizeof(why), "backend greeting: * BYE %s", text);
	log_warnx("login unavailable client=%s user=%s reason=\"%s\"",
	    s->client, log_safe(user, sizeof(user), s->user,
	    s->user ? strlen(s->user) : 0), log_quoted(why, sizeof(why), why));
	if (text[0] == '[')
		client_reply(s, "%s NO %s", s->tag, text);
	else
		client_reply(s, "%s NO [UNAVAILABLE] %s", s->tag, text);
	return (session_bye(s, text, "backend unavailable"));
}

/*
 * A backend that greets with BYE while the login's list (the Auth-Server
 * answers, the addresses of proxy_pass) has more: it is dropped, and
 * the auth process connects to the next one, within the same login.
 */
static int
backend_next(struct session *s, const char *line, size_t len)
{
	char	 text[256];
	int	 i;

	snprintf(text, sizeof(text), "%.*s", linelen(line, len), line);
	for (i = 0; text[i] != '\0'; i++)
		if ((unsigned char)text[i] < 0x20 || text[i] == 0x7f)
			text[i] = '?';
	log_warning("backend %s greeted \"%s\", trying backend %u of %u",
	    s->backend, text, s->bindex + 2, s->bcount);
	proxy_close_backend(s);
	return (auth_next(s));
}

static int
backend_greeting(struct session *s, const char *line, size_t len)
{
	if (len >= 5 && strncasecmp(line, "* BYE", 5) == 0 &&
	    s->bindex + 1 < s->bcount)
		return (backend_next(s, line, len));
	if (s->conf->proxy_pass_error_message && len > 6 &&
	    strncasecmp(line, "* BYE ", 6) == 0)
		return (greeting_bye(s, line, len));
	if (len < 5 || strncasecmp(line, "* OK", 4) != 0)
		return (backend_fail(s, "backend greeting: %.*s",
		    linelen(line, len), line));
	/* this backend serves the login: no other will be asked for */
	auth_release(s);
	backend_caps(s, line);
	if (s->bssl == PTLS_STARTTLS && s->btls == NULL)
		return (backend_starttls(s));
	if (login_build(s) == -1)
		return (-1);
	s->state = S_BACKEND_LOGIN;
	return (login_write(s));
}

/* what "[CAPABILITY ...]" in the greeting allows us to use */
static void
backend_caps(struct session *s, const char *line)
{
	static const struct {
		const char	*name;
		unsigned int	 flag;
	} caps[] = {
		{ "SASL-IR",	BCAP_SASL_IR },
		{ "AUTH=PLAIN",	BCAP_AUTH_PLAIN },
		{ "LITERAL+",	BCAP_LITERALPLUS },
		{ "ID",		BCAP_ID },
		{ "STARTTLS",	BCAP_STARTTLS },
	};
	const char	*p, *end;
	size_t		 n, i;

	if ((p = strcasestr(line, "[CAPABILITY ")) == NULL)
		return;
	p += strlen("[CAPABILITY ");
	if ((end = strchr(p, ']')) == NULL)
		return;
	s->bcaps |= BCAP_LISTED;
	while (p < end) {
		n = strcspn(p, " ]");
		for (i = 0; i < sizeof(caps) / sizeof(caps[0]); i++)
			if (n == strlen(caps[i].name) &&
			    strncasecmp(p, caps[i].name, n) == 0)
				s->bcaps |= caps[i].flag;
		p += n;
		p += strspn(p, " ");
	}
}

static int
login_quotable(const char *str, size_t len)
{
	size_t	 i;

	for (i = 0; i < len; i++)
		if (str[i] < 0x20 || str[i] == 0x7f)	/* also 8-bit */
			return (0);
	return (1);
}

static void
login_add_quoted(struct iobuf *b, const char *str, size_t len)
{
	size_t	 i;

	iobuf_add(b, "\"", 1);
	for (i = 0; i < len; i++) {
		if (str[i] == '"' || str[i] == '\\')
			iobuf_add(b, "\\", 1);
		iobuf_add(b, &str[i], 1);
	}
	iobuf_add(b, "\"", 1);
}

static void
login_add(struct iobuf *b, const char *fmt, ...)
{
	char	 buf[128];
	va_list	 ap;
	int	 n;

	va_start(ap, fmt);
	n = vsnprintf(buf, sizeof(buf), fmt, ap);
	va_end(ap);
	if (n < 0 || (size_t)n >= sizeof(buf))
		fatalx("%s: too long", __func__);
	iobuf_add(b, buf, n);
}

/* "AUTHENTICATE PLAIN <base64(\0user\0pass)>", one round trip */
static int
login_add_plain(struct session *s, struct iobuf *b)
{
	size_t		 rawlen = s->buser_len + s->bpass_len + 2;
	size_t		 b64len = (rawlen + 2) / 3 * 4 + 1;
	unsigned char	*raw;
	char		*b64;
	int		 r = -1;

	raw = malloc(rawlen);
	b64 = malloc(b64len);
	if (raw != NULL && b64 != NULL) {
		raw[0] = '\0';
		memcpy(raw + 1, s->buser, s->buser_len);
		raw[s->buser_len + 1] = '\0';
		memcpy(raw + s->buser_len + 2, s->bpass, s->bpass_len);
		if (base64_encode(raw, rawlen, b64, b64len) != -1) {
			login_add(b, "%s AUTHENTICATE PLAIN ", s->tag);
			iobuf_add(b, b64, strlen(b64));
			iobuf_add(b, "\r\n", 2);
			r = 0;
		}
	}
	freezero(raw, rawlen);
	freezero(b64, b64len);
	return (r);
}

/*
 * The ID before the login: who the client is, for a backend that
 * trusts the proxy to say it (Dovecot's login_trusted_networks: its
 * logs, allow_nets and rate limits then see the client, not the
 * proxy), and the session's id, which the backend logs with ours; then
 * the client's own fields, none of them "x-" (prelogin.c).
 */
static void
login_add_id(struct session *s, struct iobuf *b)
{
	struct sockaddr_storage	 ss;
	socklen_t		 len = sizeof(ss);
	char			 lip[INET6_ADDRSTRLEN], lport[8];
	size_t			 start = b->len;
	int			 fields = 0;

	login_add(b, "%s.id ID (", s->tag);
	if (s->conf->proxy_forward_client_ip) {
		if (getsockname(s->cfd, (struct sockaddr *)&ss, &len) == -1 ||
		    getnameinfo((struct sockaddr *)&ss, len, lip, sizeof(lip),
		    lport, sizeof(lport), NI_NUMERICHOST | NI_NUMERICSERV) != 0)
			lip[0] = lport[0] = '\0';
		login_add(b, "\"x-originating-ip\" \"%s\" "
		    "\"x-originating-port\" \"%u\"", s->client_ip,
		    (unsigned int)s->client_port);
		if (lip[0] != '\0')
			login_add(b, " \"x-connected-ip\" \"%s\" "
			    "\"x-connected-port\" \"%s\"", lip, lport);
		login_add(b, " \"x-session-id\" \"%s\"", s->id);
		fields++;
	}
	if (s->id_params != NULL && s->id_params[0] != '\0') {
		if (fields++ > 0)
			iobuf_add(b, " ", 1);
		iobuf_add(b, s->id_params, strlen(s->id_params));
	}
	if (fields == 0) {
		/* nothing to say: no ID at all */
		explicit_bzero(b->data + start, b->len - start);
		b->len = start;
		return;
	}
	iobuf_add(b, ")\r\n", 3);
	s->id_pending = 1;
}

/*
 * The login command, with the client's tag so that the backend's tagged
 * reply can go to the client as it is.  Its parts are sent one by one
 * only for synchronising literals, where each waits for a "+".
 */
static int
login_build(struct session *s)
{
	struct iobuf	*b = &s->login;
	size_t		 ulen = s->buser_len, plen = s->bpass_len;

	memset(b, 0, sizeof(*b));
	s->login_nseg = s->login_cur = 0;
	if (s->bcaps & BCAP_ID)
		login_add_id(s, b);
	if ((s->bcaps & (BCAP_SASL_IR | BCAP_AUTH_PLAIN)) ==
	    (BCAP_SASL_IR | BCAP_AUTH_PLAIN)) {
		if (login_add_plain(s, b) == -1)
			goto fail;
	} else if (s->bcaps & BCAP_LITERALPLUS) {
		login_add(b, "%s LOGIN {%zu+}\r\n", s->tag, ulen);
		iobuf_add(b, s->buser, ulen);
		login_add(b, " {%zu+}\r\n", plen);
		iobuf_add(b, s->bpass, plen);
		iobuf_add(b, "\r\n", 2);
	} else if (login_quotable(s->buser, ulen) &&
	    login_quotable(s->bpass, plen)) {
		login_add(b, "%s LOGIN ", s->tag);
		login_add_quoted(b, s->buser, ulen);
		iobuf_add(b, " ", 1);
		login_add_quoted(b, s->bpass, plen);
		iobuf_add(b, "\r\n", 2);
	} else {
		login_add(b, "%s LOGIN {%zu}\r\n", s->tag, ulen);
		s->login_seg[s->login_nseg++] = b->len;
		iobuf_add(b, s->buser, ulen);
		login_add(b, " {%zu}\r\n", plen);
		s->login_seg[s->login_nseg++] = b->len;
		iobuf_add(b, s->bpass, plen);
		iobuf_add(b, "\r\n", 2);
	}
	s->login_seg[s->login_nseg++] = b->len;
	if (b->data != NULL)
		return (0);
 fail:
	return (backend_fail(s, "backend %s: login: out of memory",
	    s->backend));
}

int
proxy_login_pending(struct session *s)
{
	return (s->login.data != NULL && s->login_cur < s->login_nseg &&
	    s->login.off < s->login_seg[s->login_cur]);
}

/* send the current part; once all is sent, wipe the password */
static int
login_write(struct session *s)
{
	struct iobuf	*b = &s->login;
	size_t		 end;
	ssize_t		 n;

	while (proxy_login_pending(s)) {
		end = s->login_seg[s->login_cur];
		if ((n = backend_write(s, b->data + b->off,
		    end - b->off)) == -1) {
			if (errno == EAGAIN || errno == EINTR)
				return (0);
			return (backend_fail(s, "backend %s: write: %s",
			    s->backend, strerror(errno)));
		}
		b->off += n;
	}
	if (b->data != NULL && b->off == b->len && !s->bstarttls)
		session_wipe_creds(s);
	return (0);
}

static int
tag_match(const char *line, size_t len, const char *tag, const char *suffix)
{
	size_t	 t = strlen(tag), x = strlen(suffix);

	return (len > t + x && strncmp(line, tag, t) == 0 &&
	    strncmp(line + t, suffix, x) == 0);
}

static int
backend_login_line(struct session *s, const char *line, size_t len)
{
	const char	*st;

	if (s->bstarttls)
		return (backend_starttls_line(s, line, len));
	if (line[0] == '+') {
		/* go on with the next synchronising literal */
		if (s->login.data == NULL || s->login_cur + 1 >= s->login_nseg)
			return (backend_fail(s, "backend %s: unexpected "
			    "continuation", s->backend));
		s->login_cur++;
		return (login_write(s));
	}
	if (s->id_pending && (strncasecmp(line, "* ID ", 5) == 0 ||
	    tag_match(line, len, s->tag, ".id "))) {
		if (line[0] != '*')
			s->id_pending = 0;
		return (0);
	}
	if (len > 2 && line[0] == '*' && line[1] == ' ') {
		s->bytes_out += len;
		return (client_send(s, line, len));
	}
	if (!tag_match(line, len, s->tag, " "))
		return (backend_fail(s, "backend %s: unexpected reply: %.*s",
		    s->backend, linelen(line, len), line));
	st = line + strlen(s->tag) + 1;
	if (strncasecmp(st, "OK", 2) == 0 && (st[2] == ' ' || st[2] == '\r' ||
	    st[2] == '\n'))
		return (login_ok(s, line, len));
	return (login_rejected(s, line, len));
}

/*
 * Logged in: the client gets the tagged OK, the backend what the client
 * pipelined after its login command, and the relay begins.
 */
static int
login_ok(struct session *s, const char *line, size_t len)
{
	size_t	 n = IOBUF_LEN(&s->in);

	s->bytes_out += len;
	if (client_send(s, line, len) == -1)
		return (-1);
	session_wipe_creds(s);
	if (n > 0 && (iobuf_alloc(&s->c2b, n) == -1 ||
	    iobuf_add(&s->c2b, IOBUF_DATA(&s->in), n) == -1)) {
		log_warn(__func__);
		session_close(s, "out of memory");
		return (-1);
	}
	iobuf_free(&s->in);
	session_parser_free(s);
	relay_start(s);
	conn_logged_in(s);
	return (0);
}

/*
 * The backend's last bytes, kept to tell a session that ended with a
 * completed LOGOUT ("* BYE ...", then the tagged OK) from one that was
 * dropped, whichever side closed first.
 */
static void
relay_tail(struct session *s, const unsigned char *data, size_t n)
{
	size_t	 keep, size = sizeof(s->btail);

	s->bunseen = 0;
	if (n >= size) {
		memcpy(s->btail, data + n - size, size);
		s->btail_len = size;
		return;
	}
	keep = s->btail_len + n > size ? size - n : s->btail_len;
	memmove(s->btail, s->btail + s->btail_len - keep, keep);
	memcpy(s->btail + keep, data, n);
	s->btail_len = keep + n;
}

/* the backend's last two lines were "* BYE ..." and "<tag> OK ..." */
int
proxy_logged_out(struct session *s)
{
	const char	*t = s->btail, *end = s->btail + s->btail_len;
	const char	*last, *prev;

	if (s->btail_len < 2 || end[-1] != '\n')
		return (0);
	/* the start of the last line and of the one before */
	for (last = end - 1; last > t && last[-1] != '\n'; last--)
		;
	if (last == t)
		return (0);
	for (prev = last - 1; prev > t && prev[-1] != '\n'; prev--)
		;
	if (prev == t && s->btail_len == sizeof(s->btail))
		return (0);	/* the line before may be cut */
	if (end - prev < 6 || strncasecmp(prev, "* BYE", 5) != 0 ||
	    (prev[5] != ' ' && prev[5] != '\r'))
		return (0);
	if (*last == '*' || *last == '+' || *last == ' ')
		return (0);
	while (last < end && *last != ' ')
		last++;
	return (end - last > 3 && strncasecmp(last, " OK", 3) == 0 &&
	    (last[3] == ' ' || last[3] == '\r' || last[3] == '\n'));
}

/*
 * Did the backend's last bytes end a line (nothing since the login
 * counts: its reply did)?  Between lines a line of ours may go to the
 * client; inside one, a literal's bytes say, it would corrupt the
 * response and none can be sent.
 */
static int
relay_at_line(struct session *s)
{
	return (!s->bunseen && (s->btail_len == 0 ||
	    s->btail[s->btail_len - 1] == '\n'));
}

/* one of the backend's last lines is its own BYE */
static int
relay_said_bye(struct session *s)
{
	const char	*p = s->btail, *end = s->btail + s->btail_len;

	while (p < end) {
		if (end - p >= 5 && strncasecmp(p, "* BYE", 5) == 0)
			return (1);
		if ((p = memchr(p, '\n', end - p)) == NULL)
			break;
		p++;
	}
	return (0);
}

/*
 * The proxy ends a session in the relay: what the relay holds for the
 * client goes first, then "* BYE", when that is between the backend's
 * lines; else the client sees the connection close.
 */
void
proxy_relay_bye(struct session *s, const char *text, const char *reason)
{
	if (!relay_at_line(s)) {
		session_close(s, reason);
		return;
	}
	if (proxy_relay_owed(s) == -1)
		return;
	session_bye(s, text, reason);
}

/*
 * The RFC 5530 code of a refusal ("NO [LIMIT] ..."), to be relayed: it
 * tells the client whether to retry, and when.  NULL: none we know.
 */
static const char *
login_code(const char *st, size_t len)
{
	static const char	*codes[] = { "UNAVAILABLE", "AUTHENTICATIONFAILED",
				    "AUTHORIZATIONFAILED", "EXPIRED",
				    "PRIVACYREQUIRED", "CONTACTADMIN", "NOPERM",
				    "INUSE", "EXPUNGEISSUED", "CORRUPTION",
				    "SERVERBUG", "CLIENTBUG", "CANNOT", "LIMIT",
				    "OVERQUOTA", "ALREADYEXISTS", "NONEXISTENT",
				    NULL };
	const char		*p, *end = st + len;
	size_t			 n;
	int			 i;

	if ((p = memchr(st, ' ', len)) == NULL || end - p < 3 || p[1] != '[')
		return (NULL);
	p += 2;
	n = strcspn(p, " ]\r\n");
	for (i = 0; codes[i] != NULL; i++)
		if (n == strlen(codes[i]) && strncasecmp(p, codes[i], n) == 0)
			return (codes[i]);
	return (NULL);
}

static int
login_rejected(struct session *s, const char *line, size_t len)
{
	char		 user[128], reply[512];
	const char	*st = line + strlen(s->tag) + 1, *code;

	if (!s->conf->auth_http_set) {
		/*
		 * A static backend judges passwords: the client may retry,
		 * but its refusals count toward max_errors with its invalid
		 * commands, or one connection could guess for ever.
		 */
		log_info("login failed client=%s user=%s", s->client,
		    log_safe(user, sizeof(user), s->user,
		    s->user ? strlen(s->user) : 0));
		s->bytes_out += len;
		if (client_send(s, line, len) == -1)
			return (-1);
		proxy_close_backend(s);
		if (++s->errors >= s->conf->max_errors) {
			client_reply(s, "* BYE too many failed logins");
			return (session_finish(s, "too many failed logins"));
		}
		return (session_resume(s));
	}
	/* the backend's own words, for the log only */
	snprintf(reply, sizeof(reply), "%.*s", linelen(st, len -
	    (st - line)), st);
	log_warnx("backend %s rejected the login client=%s user=%s "
	    "reply=\"%s\"", s->backend, s->client, log_safe(user,
	    sizeof(user), s->user, s->user ? strlen(s->user) : 0),
	    log_quoted(reply, sizeof(reply), reply));
	code = login_code(st, len - (st - line));
	if (s->conf->proxy_pass_error_message)
		client_send(s, line, len);
	else
		client_reply(s, "%s NO [%s] backend rejected the login",
		    s->tag, code != NULL ? code : "UNAVAILABLE");
	return (session_bye(s, "backend rejected the login",
	    "backend rejected login"));
}

/*
 * The relay.  Each direction is bounded: a side is read only while its
 * direction has room, in a pipe (splice, plaintext both ways on Linux)
 * or a buffer.  What the client pipelined after its login (c2b) and what
 * the backend sent after its OK (b2c) when the relay began go first.
 * Pipes and buffers are held only while bytes are in them, so an idle
 * session keeps neither.  EOF on one side is passed on as a half-close
 * once what it sent was delivered.
 */

/*
 * A buffer for one direction.  Under TLS it is never smaller than
 * RELAY_TLS_BUFFER: a record holds up to 16k, and what one read brings
 * is what one write sends, so a small buffer would make small records
 * and bind the throughput to it.  It is held only while data flows.
 */
static size_t
relay_bufsize(struct session *s)
{
	size_t	 size = s->conf->proxy_buffer;

	if ((s->tls != NULL || s->btls != NULL) && size < RELAY_TLS_BUFFER)
		size = RELAY_TLS_BUFFER;
	return (size);
}

static void
relay_start(struct session *s)
{
	s->splice = s->tls == NULL && s->btls == NULL && spipe_supported();
	if (IOBUF_LEN(&s->b2c) == 0)
		iobuf_free(&s->b2c);
	s->state = S_RELAY;
	session_timer(s, s->conf->proxy_timeout_ms);
	session_log_login(s);
	log_debug("login client=%s backend=%s relay=%s", s->client,
	    s->backend, s->splice ? "splice" : "buffers");
}

/* bytes on their way to the backend, and to the client */
static size_t
relay_c2b_len(struct session *s)
{
	return (IOBUF_LEN(&s->c2b) + s->c2bp.len);
}

static size_t
relay_b2c_len(struct session *s)
{
	return (IOBUF_LEN(&s->b2c) + s->b2cp.len);
}

/* how many bytes one side may send now: the room of its direction */
static size_t
relay_room(struct session *s, struct iobuf *b, struct spipe *p)
{
	/* b2c is written first: while it holds bytes, the pipe waits */
	if (s->splice)
		return (IOBUF_LEN(b) > 0 && b == &s->b2c ? 0 :
		    spipe_room(p, s->conf->proxy_buffer));
	if (b->data == NULL)
		return (relay_bufsize(s));
	return (iobuf_room(b));
}

/*
 * No pipe could be had (descriptors or memory short): while neither
 * direction holds one, this session goes on with buffers.
 */
static int
relay_unspliced(struct session *s)
{
	if (s->c2bp.fd[0] != -1 || s->b2cp.fd[0] != -1)
		return (0);
	log_warn("client=%s: no pipe for splice, relaying through buffers",
	    s->client);
	s->splice = 0;
	return (1);
}

/*
 * What the backend sends while it does not stream is read into b2c, a
 * reply line at a time costing no more copied than through a pipe: the
 * end of a session is told by the backend's last lines (relay_tail),
 * which only a copy shows.  A read that fills RELAY_COPY_MAX starts a
 * stream, spliced until a splice finds the socket drained.  A copy is
 * made only while the pipe is empty: b2c is written before it.
 */
static ssize_t
relay_read(struct session *s, int fd, struct iobuf *b, struct spipe *p,
    size_t room)
{
	ssize_t	 n;
	int	 copy = !s->splice ||
		    (p == &s->b2cp && p->len == 0 && !s->bstream);

	if (!copy) {
		n = spipe_in(p, fd, room, s->conf->proxy_buffer);
		if (n == -1 && (errno == EMFILE || errno == ENFILE ||
		    errno == ENOMEM) && relay_unspliced(s))
			errno = EAGAIN;		/* read again, into a buffer */
		if (n > 0 && p == &s->b2cp) {
			s->btail_len = 0;	/* unseen: not a LOGOUT's */
			s->bunseen = 1;
			s->bstream = (size_t)n == room;
		}
		return (n);
	}
	if (s->splice)
		room = b->data == NULL || iobuf_room(b) > RELAY_COPY_MAX ?
		    RELAY_COPY_MAX : iobuf_room(b);
	if (b->data == NULL && iobuf_alloc(b, room) == -1)
		return (-1);
	if (b == &s->c2b)
		n = client_read(s, b->data + b->len, room);
	else
		n = backend_read(s, b->data + b->len, room);
	if (n > 0 && b == &s->b2c) {
		relay_tail(s, b->data + b->len, n);
		s->bstream = s->splice && (size_t)n == room;
	}
	if (n > 0)
		b->len += n;
	if (IOBUF_LEN(b) == 0)
		iobuf_free(b);
	return (n);
}

int
proxy_client_read(struct session *s)
{
	size_t	 room;
	ssize_t	 n;

	if ((room = relay_room(s, &s->c2b, &s->c2bp)) == 0)
		return (0);
	if ((n = relay_read(s, s->cfd, &s->c2b, &s->c2bp, room)) == -1) {
		if (errno == EAGAIN || errno == EINTR)
			return (0);
		log_debug("client=%s: read: %s", s->client, strerror(errno));
		session_close(s, "client closed");
		return (-1);
	}
	if (n == 0) {
		s->client_eof = 1;
		if (s->reason == NULL)
			s->reason = "client closed";
	} else
		session_timer(s, s->conf->proxy_timeout_ms);
	if (backend_flush(s) == -1)
		return (-1);
	return (proxy_relay_check(s));
}

static int
relay_backend_read(struct session *s)
{
	size_t	 room;
	ssize_t	 n;

	if ((room = relay_room(s, &s->b2c, &s->b2cp)) == 0)
		return (0);
	if ((n = relay_read(s, s->bfd, &s->b2c, &s->b2cp, room)) == -1) {
		if (errno == EAGAIN || errno == EINTR)
			return (0);
		log_debug("backend %s: read: %s", s->backend, strerror(errno));
		session_close(s, "backend closed");
		return (-1);
	}
	if (n == 0) {
		s->backend_eof = 1;
		if (s->reason == NULL)
			s->reason = "backend closed";
	} else
		session_timer(s, s->conf->proxy_timeout_ms);
	if (client_flush(s) == -1)
		return (-1);
	return (proxy_relay_check(s));
}

/* what was read from the client, to the backend: buffer, then pipe */
static int
backend_flush(struct session *s)
{
	ssize_t	 n;

	while (relay_c2b_len(s) > 0) {
		if (IOBUF_LEN(&s->c2b) > 0)
			n = backend_write(s, IOBUF_DATA(&s->c2b),
			    IOBUF_LEN(&s->c2b));
		else
			n = spipe_out(&s->c2bp, s->bfd);
		if (n == -1) {
			if (errno == EAGAIN || errno == EINTR)
				break;
			log_debug("backend %s: write: %s", s->backend,
			    strerror(errno));
			session_close(s, "backend closed");
			return (-1);
		}
		s->bytes_in += n;
		if (IOBUF_LEN(&s->c2b) > 0) {
			iobuf_drain(&s->c2b, n);
			if (IOBUF_LEN(&s->c2b) == 0)
				iobuf_free(&s->c2b);
		}
		session_timer(s, s->conf->proxy_timeout_ms);
	}
	return (0);
}

/*
 * client_flush(): what the backend sent, once the buffers before it
 * (the replies, b2c) were written: the pipe.
 */
int
proxy_client_flush(struct session *s)
{
	ssize_t	 n;

	if (IOBUF_LEN(&s->b2c) == 0)
		iobuf_free(&s->b2c);
	while (s->b2cp.len > 0) {
		if ((n = spipe_out(&s->b2cp, s->cfd)) == -1) {
			if (errno == EAGAIN || errno == EINTR)
				break;
			log_debug("client=%s: write: %s", s->client,
			    strerror(errno));
			session_close(s, "client closed");
			return (-1);
		}
		s->bytes_out += n;
		session_timer(s, s->conf->proxy_timeout_ms);
	}
	return (0);
}

/*
 * The session ends with a reply of ours (a shutdown's BYE): what the
 * relay holds for the client, in b2c or its pipe, goes before it.
 */
int
proxy_relay_owed(struct session *s)
{
	char	 buf[4096];
	ssize_t	 n;

	if (IOBUF_LEN(&s->b2c) > 0) {
		s->bytes_out += IOBUF_LEN(&s->b2c);
		if (client_send(s, IOBUF_DATA(&s->b2c),
		    IOBUF_LEN(&s->b2c)) == -1)
			return (-1);
		iobuf_drain(&s->b2c, IOBUF_LEN(&s->b2c));
	}
	while (s->b2cp.len > 0 && (n = spipe_read(&s->b2cp, buf,
	    sizeof(buf))) > 0) {
		s->bytes_out += n;
		if (client_send(s, buf, n) == -1) {
			explicit_bzero(buf, sizeof(buf));
			return (-1);
		}
	}
	explicit_bzero(buf, sizeof(buf));
	return (0);
}

/* session_update(): which events the relay waits for (backpressure) */
void
proxy_relay_events(struct session *s, int *cr, int *cw, int *br, int *bw)
{
	*cr = !s->client_eof && relay_room(s, &s->c2b, &s->c2bp) > 0;
	*br = !s->backend_eof && relay_room(s, &s->b2c, &s->b2cp) > 0;
	*cw = *cw || relay_b2c_len(s) > 0;
	*bw = relay_c2b_len(s) > 0;
}

/*
 * EOFs.  The client's is passed on as a half-close once its data reached
 * the backend, whose replies still flow back (a client that sends LOGOUT
 * and shuts down its side still gets the BYE).  The backend's ends the
 * session once its data reached the client: an IMAP server that closed
 * takes nothing more, and a client that keeps its socket open must not
 * pin the session until proxy_timeout.
 */
int
proxy_relay_check(struct session *s)
{
	if (s->client_eof && !s->backend_shut && relay_c2b_len(s) == 0) {
		s->backend_shut = 1;
		/*
		 * Over TLS a close_notify makes a backend (Dovecot) drop
		 * what it still had to answer, LOGOUT's BYE included: the
		 * backend closes by itself, or `timeout` ends the session.
		 */
		if (s->btls != NULL)
			session_timer(s, s->conf->timeout_ms);
		else
			shutdown(s->bfd, SHUT_WR);
	}
	if (s->backend_eof && relay_b2c_len(s) == 0 &&
	    IOBUF_LEN(&s->out) == 0) {
		/* a backend gone without a word (killed): ours, then close */
		if (!s->client_eof && !proxy_logged_out(s) &&
		    !relay_said_bye(s) && relay_at_line(s)) {
			session_bye(s, "[UNAVAILABLE] backend closed the "
			    "connection", s->reason);
			return (-1);
		}
		client_shutdown(s);
		session_close(s, s->reason);
		return (-1);
	}
	return (0);
}

/*
 * TLS to the backend (proxy_ssl, Auth-Proxy-SSL).  Every backend byte
 * passes through backend_read() and backend_write(); libtls is in
 * ptls.c.
 */

static ssize_t
backend_read(struct session *s, void *buf, size_t len)
{
	if (s->btls != NULL)
		return (ptls_read(s, buf, len));
	return (read(s->bfd, buf, len));
}

static ssize_t
backend_write(struct session *s, const void *buf, size_t len)
{
	if (s->btls != NULL)
		return (ptls_write(s, buf, len));
	return (write(s->bfd, buf, len));
}

/*
 * This login's mode and the name to verify and send as SNI: the auth
 * service's, else proxy_ssl_name, else the address (an IP literal must
 * then be in the certificate's subjectAltName).
 */
static void
backend_tls_name(struct session *s, const struct sockaddr *sa,
    socklen_t salen)
{
	char	 host[NI_MAXHOST];

	s->bssl = s->bssl_auth > 0 && s->bssl_auth <= PTLS_STARTTLS + 1 ?
	    s->bssl_auth - 1 : s->conf->proxy_ssl;
	s->bstarttls = 0;
	free(s->bssl_name);
	s->bssl_name = NULL;
	if (s->bssl == PTLS_OFF)
		return;
	if (s->bssl_auth_name != NULL && s->bssl_auth_name[0] != '\0')
		s->bssl_name = strdup(s->bssl_auth_name);
	else if (s->conf->proxy_ssl_name[0] != '\0')
		s->bssl_name = strdup(s->conf->proxy_ssl_name);
	else if (getnameinfo(sa, salen, host, sizeof(host), NULL, 0,
	    NI_NUMERICHOST) == 0)
		s->bssl_name = strdup(host);
	else
		s->bssl_name = strdup("");
	/* without a name ptls_start() fails, and the login with it */
}

static int
backend_tls_start(struct session *s)
{
	if (ptls_start(s) == -1)
		return (backend_fail(s, "backend %s: tls setup failed",
		    s->backend));
	session_update(s);
	return (0);
}

/* one step of the handshake, driven by the backend socket's events */
static void
backend_tls_step(struct session *s)
{
	char	 why[200];
	int	 r;

	if ((r = ptls_handshake(s, why, sizeof(why))) == -1) {
		backend_fail(s, "backend %s: tls handshake failed: %s",
		    s->backend, why);
		return;
	}
	if (r == 1 && s->bstarttls) {
		/*
		 * What the backend said before TLS is not to be trusted:
		 * log in without its capabilities, with LOGIN.
		 */
		s->bstarttls = 0;
		s->bcaps = 0;
		if (login_build(s) == -1)
			return;
		s->state = S_BACKEND_LOGIN;
		if (login_write(s) == -1)
			return;
	}
	session_update(s);
}

/* proxy_ssl starttls: the greeting was read in the clear */
static int
backend_starttls(struct session *s)
{
	struct iobuf	*b = &s->login;

	if ((s->bcaps & BCAP_LISTED) && !(s->bcaps & BCAP_STARTTLS))
		return (backend_fail(s, "backend %s: no STARTTLS in its "
		    "capabilities", s->backend));
	iobuf_free(b);
	login_add(b, "%s.tls STARTTLS\r\n", s->tag);
	if (b->data == NULL)
		return (backend_fail(s, "backend %s: out of memory",
		    s->backend));
	s->login_seg[0] = b->len;
	s->login_nseg = 1;
	s->login_cur = 0;
	s->bstarttls = 1;
	s->state = S_BACKEND_LOGIN;
	return (login_write(s));
}

/* the reply to our STARTTLS; then the handshake */
static int
backend_starttls_line(struct session *s, const char *line, size_t len)
{
	const char	*st;

	if (len > 2 && line[0] == '*' && line[1] == ' ')
		return (0);	/* not for the client: it is pre-TLS */
	if (!tag_match(line, len, s->tag, ".tls "))
		return (backend_fail(s, "backend %s: unexpected reply: %.*s",
		    s->backend, linelen(line, len), line));
	st = line + strlen(s->tag) + strlen(".tls ");
	if (strncasecmp(st, "OK", 2) != 0 || (st[2] != ' ' && st[2] != '\r' &&
	    st[2] != '\n'))
		return (backend_fail(s, "backend %s: STARTTLS refused: %.*s",
		    s->backend, linelen(line, len), line));
	/* bytes after the OK were sent in the clear: an injection */
	if (IOBUF_LEN(&s->b2c) > 0)
		return (backend_fail(s, "backend %s: data after STARTTLS",
		    s->backend));
	iobuf_free(&s->login);
	s->state = S_BACKEND_GREETING;
	return (backend_tls_start(s));
}

/* session_update(): which backend events TLS needs on top of the data's */
void
proxy_events(struct session *s, int *br, int *bw)
{
	if (s->btls_state == TLSS_HANDSHAKE) {
		*br = s->btls_want == CTLS_WANT_READ;
		*bw = s->btls_want == CTLS_WANT_WRITE;
		return;
	}
	*br = *br || s->btls_wwantr;
	*bw = *bw || s->btls_rwantw;
}
