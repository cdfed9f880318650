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
 * An imap worker's client sessions: their life from accept to close,
 * the one timer of each phase, which events they wait for
 * (backpressure), the byte buffers and all client I/O, TLS included.
 */

#include <sys/types.h>
#include <sys/socket.h>
#include <sys/time.h>

#include <netinet/in.h>

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
#include "proxyproto.h"

static void	session_id(char *);
static void	session_greet(struct session *);
static int	sni_select(struct session *);
static int	session_tls_start(struct session *);
static void	session_tls_step(struct session *);
static void	session_log_end(struct session *, const char *);
static void	session_timeout(int, short, void *);
static void	client_read_cb(int, short, void *);
static int	client_eof(struct session *);
static void	client_write_cb(int, short, void *);

/* a TLS connection (or one being set up) is never offered STARTTLS */
const char *
session_caps(struct session *s)
{
	return (s->tls != NULL ? s->srv->caps_tls : s->srv->caps);
}

/*
 * Sessions.
 */

int
session_new(struct imap_server *srv, int fd, struct sockaddr_storage *ss,
    socklen_t len, int ssl, int proxy_protocol)
{
	struct session		*s;
	struct sockaddr_storage	 local;
	socklen_t		 llen = sizeof(local);
	size_t			 bufsz = srv->conf->imap_client_buffer;

	if ((s = calloc(1, sizeof(*s))) == NULL ||
	    iobuf_alloc(&s->in, bufsz) == -1 ||
	    (s->cmd = calloc(1, sizeof(*s->cmd))) == NULL ||
	    (s->scratch = calloc(1, bufsz)) == NULL) {
		log_warn(__func__);
		if (s != NULL) {
			iobuf_free(&s->in);
			free(s->cmd);
			free(s);
		}
		return (-1);
	}
	session_id(s->id);
	s->srv = srv;
	s->conf = srv->conf;
	/* its lines go to its server's error_log, if it has one */
	log_select(s->conf->id);
	s->cfd = fd;
	s->bfd = -1;
	spipe_init(&s->c2bp);
	spipe_init(&s->b2cp);
	s->start_ms = now_ms();
	memcpy(&s->client_ss, ss, sizeof(s->client_ss));
	sockaddr_str((struct sockaddr *)ss, s->client, sizeof(s->client));
	if (getnameinfo((struct sockaddr *)ss, len, s->client_ip,
	    sizeof(s->client_ip), NULL, 0, NI_NUMERICHOST) != 0)
		strlcpy(s->client_ip, "unknown", sizeof(s->client_ip));
	if (ss->ss_family == AF_INET)
		s->client_port = ntohs(((struct sockaddr_in *)ss)->sin_port);
	else if (ss->ss_family == AF_INET6)
		s->client_port = ntohs(((struct sockaddr_in6 *)ss)->sin6_port);
	/* the listener it came on, for the login line */
	if (getsockname(fd, (struct sockaddr *)&local, &llen) == 0)
		sockaddr_str((struct sockaddr *)&local, s->listener,
		    sizeof(s->listener));
	else
		strlcpy(s->listener, "-", sizeof(s->listener));
	imap_cmd_init(s->cmd, s->scratch, bufsz);
	event_set(&s->ev_cread, fd, EV_READ | EV_PERSIST, client_read_cb, s);
	event_set(&s->ev_cwrite, fd, EV_WRITE | EV_PERSIST, client_write_cb,
	    s);
	evtimer_set(&s->ev_timer, session_timeout, s);
	TAILQ_INSERT_TAIL(&imap_sessions, s, entry);
	imap_nsessions++;
	log_debug("session start client=%s session=%s", s->client, s->id);

	s->implicit_tls = ssl;
	if (proxy_protocol)
		realip_start(s);
	else
		conn_admit_ask(s);
	return (0);
}

/*
 * 72 random bits in 12 characters of base64's URL alphabet: no two
 * sessions of any worker share one, and it fits a log line and an ID
 * field as it is.
 */
static void
session_id(char *id)
{
	static const char	 alphabet[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZ"
				    "abcdefghijklmnopqrstuvwxyz0123456789-_";
	unsigned char		 r[SESSION_ID_LEN];
	size_t			 i;

	arc4random_buf(r, sizeof(r));
	for (i = 0; i < SESSION_ID_LEN; i++)
		id[i] = alphabet[r[i] & 63];
	id[SESSION_ID_LEN] = '\0';
}

/* admitted: TLS or the greeting */
void
session_begin(struct session *s)
{
	s->state = S_PRELOGIN;
	/* implicit TLS: the greeting waits for the handshake and its SNI */
	if (s->implicit_tls && session_tls_start(s) == -1)
		return;
	if (s->implicit_tls)
		s->sni_greet = 1;
	else
		session_greet(s);
	session_timer(s, s->conf->timeout_ms);
	if (client_flush(s) != -1)
		session_update(s);
}

/* the handshake begins; -1 when it cannot and the session is closed */
static void
session_greet(struct session *s)
{
	if (s->conf->server_name_set)
		client_reply(s, "* OK [CAPABILITY %s] %s IMAP4 ready",
		    session_caps(s), s->conf->server_name);
	else
		client_reply(s, "* OK [CAPABILITY %s] IMAP4 ready",
		    session_caps(s));
}

/*
 * TLS is up: the server block whose server_name the client asked for
 * (SNI) serves the session from now on; without one, or with a name no
 * server on this address has, the first server goes on.
 */
static int
sni_select(struct session *s)
{
	struct imap_server	*srv;
	const char		*name;
	size_t			 bufsz;

	if ((name = ctls_servername(s)) == NULL)
		return (0);
	TAILQ_FOREACH(srv, &imap_servers, entry)
		if (srv != s->srv && srv->conf->server_name_set &&
		    strcasecmp(srv->conf->server_name, name) == 0 &&
		    sni_sibling(imap_conf, s->srv->conf, srv->conf))
			break;
	if (srv == NULL)
		return (0);
	s->srv = srv;
	s->conf = srv->conf;
	log_select(s->conf->id);
	bufsz = s->conf->imap_client_buffer;
	/*
	 * Nothing was read under TLS yet (plaintext left from before
	 * STARTTLS is discarded anyway): the buffers take its size.
	 */
	if (bufsz != s->in.size) {
		freezero(s->scratch, s->in.size);
		s->scratch = NULL;
		iobuf_free(&s->in);
		if (iobuf_alloc(&s->in, bufsz) == -1 ||
		    (s->scratch = calloc(1, bufsz)) == NULL) {
			log_warn(__func__);
			session_close(s, "out of memory");
			return (-1);
		}
		imap_cmd_init(s->cmd, s->scratch, bufsz);
	}
	session_timer(s, s->conf->timeout_ms);
	log_debug("client=%s: server %s (sni)", s->client,
	    s->conf->server_name);
	return (0);
}

static int
session_tls_start(struct session *s)
{
	if (ctls_start(s) == -1) {
		session_close(s, "tls setup failed");
		return (-1);
	}
	return (0);
}

/* one step of the handshake; once done, what waited goes out */
static void
session_tls_step(struct session *s)
{
	const char	*bye;
	int		 r;

	if ((r = ctls_handshake(s)) == -1)
		return;
	if (r == 1 && sni_select(s) == -1)
		return;
	if (r == 1 && s->sni_greet) {
		s->sni_greet = 0;
		session_greet(s);
	}
	/* ssl_verify_client: as nginx, a BYE instead of the greeting */
	if (r == 1 && (bye = ccert_inspect(s)) != NULL) {
		if (IOBUF_LEN(&s->out) > 0)
			iobuf_drain(&s->out, IOBUF_LEN(&s->out));
		client_reply(s, "* BYE %s", bye);
		session_finish(s, "client certificate refused");
		return;
	}
	if (r == 1 && client_flush(s) == -1)
		return;
	session_update(s);
}

/* the ending half of a session's bookkeeping, also for failed starts */
void
session_gone(void)
{
	imsgev_compose(&iev_parent, IMSG_CTL_CLOSED, 0, -1, NULL, 0);
	if (imap_conf->isolation == ISOLATION_CONNECTION ||
	    (imap_draining && imap_nsessions == 0)) {
		if (iev_auth != NULL)
			imsgbuf_flush(&iev_auth->ibuf);
		imsgbuf_flush(&iev_parent.ibuf);
		/*
		 * A worker forked by the template shares its pages: the
		 * libraries' exit-time cleanup would copy each one it
		 * frees (half of a short session's CPU time).
		 */
		if (imap_conf->isolation == ISOLATION_CONNECTION)
			_exit(0);
		exit(0);
	}
}

void
session_close(struct session *s, const char *reason)
{
	int	 spent = s->spent;

	auth_cancel(s);
	conn_release(s);
	session_log_end(s, reason);
	proxy_close_backend(s);
	event_del(&s->ev_cread);
	event_del(&s->ev_cwrite);
	evtimer_del(&s->ev_timer);
	ctls_free(s);
	ccert_free(s);
	close(s->cfd);
	iobuf_free(&s->in);
	iobuf_free(&s->out);
	iobuf_free(&s->c2b);
	iobuf_free(&s->b2c);
	session_parser_free(s);
	session_wipe_creds(s);
	free(s->user);
	free(s->id_params);
	free(s->failtext);
	free(s->salt);
	free(s->bssl_auth_name);
	if (s->pp_buf != NULL)
		freezero(s->pp_buf, PP_HDR_MAX);
	TAILQ_REMOVE(&imap_sessions, s, entry);
	imap_nsessions--;
	freezero(s, sizeof(*s));
	/* a client refused before it was served spent no worker */
	if (spent)
		session_gone();
	else
		conn_unspent();
}

/*
 * The daemon stops: BYE after what the client was already owed (in the
 * relay, the backend's bytes not yet written), then close.  Nothing
 * can be said in the clear to a TLS client before its handshake ends.
 */
void
session_shutdown(struct session *s)
{
	const char	*bye = "* BYE Server shutting down\r\n";

	if (s->state == S_CLOSING)
		return;
	/* nothing may reach a client before its load balancer's header */
	if (s->state == S_PROXY_HEADER) {
		session_close(s, "shutdown");
		return;
	}
	if (s->tls_state == TLSS_HANDSHAKE || s->tls_state == TLSS_PENDING ||
	    (s->implicit_tls && s->tls_state != TLSS_ON)) {
		session_close(s, "shutdown");
		return;
	}
	if (s->state == S_RELAY && proxy_relay_owed(s) == -1)
		return;
	if (client_send(s, bye, strlen(bye)) == -1)
		return;
	session_finish(s, "shutdown");
}

/*
 * Can a line of ours reach the client now?  Not in the middle of a TLS
 * handshake or before one a client expects (implicit TLS, STARTTLS
 * answered), nor once our side was shut down.
 */
static int
client_can_hear(struct session *s)
{
	return (!s->client_shut && s->tls_state != TLSS_HANDSHAKE &&
	    s->tls_state != TLSS_PENDING &&
	    (!s->implicit_tls || s->tls_state == TLSS_ON));
}

/*
 * The proxy ends the session: after the replies already queued,
 * "* BYE text" (RFC 3501 7.1.5: a server that closes says BYE first),
 * then the close once they are written.  -1: the session is ending.
 */
int
session_bye(struct session *s, const char *text, const char *reason)
{
	if (client_can_hear(s))
		client_reply(s, "* BYE %s", text);
	return (session_finish(s, reason));
}

/* stop reading, send what is queued (the final reply), then close */
int
session_finish(struct session *s, const char *reason)
{
	auth_cancel(s);
	proxy_close_backend(s);
	if (s->cmd != NULL)
		imap_cmd_clear(s->cmd);
	s->state = S_CLOSING;
	s->reason = reason;
	if (client_flush(s) == -1)
		return (-1);
	session_timer(s, s->conf->timeout_ms);
	session_update(s);
	return (-1);
}

/*
 * The login line: who, from where, through which listener to which
 * backend, how, and over what.  Its session id is the end line's.
 */
void
session_log_login(struct session *s)
{
	char	 user[128], server[NAME_MAX_LEN * 2], ver[32], cipher[64];

	ctls_info(s, ver, sizeof(ver), cipher, sizeof(cipher));
	log_info("session login user=%s client=%s listener=%s server=%s "
	    "backend=%s mech=%s tls=%s cipher=%s auth_ms=%u session=%s",
	    log_safe(user, sizeof(user), s->user,
	    s->user ? strlen(s->user) : 0), s->client, s->listener,
	    s->conf->server_name_set ? log_safe(server, sizeof(server),
	    s->conf->server_name, strlen(s->conf->server_name)) : "-",
	    s->backend[0] != '\0' ? s->backend : "-",
	    s->mech != NULL ? s->mech : "-",
	    s->tls == NULL ? "plain" : ver[0] != '\0' ? ver : "-",
	    cipher[0] != '\0' ? cipher : "-",
	    s->auth_ms, s->id);
}

static void
session_log_end(struct session *s, const char *reason)
{
	char	 user[128], why[512];

	/* LOGOUT answered: whichever side closed first, it was no drop */
	if (s->state == S_RELAY && reason != NULL &&
	    (strcmp(reason, "client closed") == 0 ||
	    strcmp(reason, "backend closed") == 0) && proxy_logged_out(s))
		reason = "client logout";
	log_info("session end client=%s user=%s backend=%s auth_ms=%u "
	    "in=%llu out=%llu duration_ms=%llu reason=\"%s\" session=%s",
	    s->client, log_safe(user, sizeof(user), s->user,
	    s->user ? strlen(s->user) : 0),
	    s->backend[0] != '\0' ? s->backend : "-", s->auth_ms,
	    (unsigned long long)s->bytes_in, (unsigned long long)s->bytes_out,
	    (unsigned long long)(now_ms() - s->start_ms),
	    log_quoted(why, sizeof(why), reason), s->id);
}

/* a login that cannot go on for lack of a service: tell, log, close */
int
session_unavailable(struct session *s, const char *text, const char *why,
    const char *reason)
{
	char	 user[128], quoted[512];

	log_warnx("login unavailable client=%s user=%s reason=\"%s\"",
	    s->client, log_safe(user, sizeof(user), s->user,
	    s->user ? strlen(s->user) : 0),
	    log_quoted(quoted, sizeof(quoted), why));
	client_reply(s, "%s NO [UNAVAILABLE] %s", s->tag, text);
	return (session_bye(s, text, reason));
}

/* back to the pre-login dialogue after a refused login */
int
session_resume(struct session *s)
{
	s->state = S_PRELOGIN;
	s->sasl = SASL_NONE;
	session_wipe_creds(s);
	session_timer(s, s->conf->timeout_ms);
	if (session_parse(s) == -1 || client_flush(s) == -1)
		return (-1);
	session_update(s);
	return (0);
}

/* logged in (or gone): no command is parsed any more */
void
session_parser_free(struct session *s)
{
	size_t	 size = s->conf->imap_client_buffer;

	if (s->cmd != NULL) {
		size = s->cmd->scratchsz;	/* grown for a long ID */
		imap_cmd_clear(s->cmd);
		freezero(s->cmd, sizeof(*s->cmd));
		s->cmd = NULL;
	}
	freezero(s->scratch, size);
	s->scratch = NULL;
}

void
session_wipe_creds(struct session *s)
{
	if (s->pass != NULL)
		freezero(s->pass, s->pass_len + 1);
	s->pass = NULL;
	s->pass_len = 0;
	if (s->buser != NULL)
		freezero(s->buser, s->buser_len + 1);
	if (s->bpass != NULL)
		freezero(s->bpass, s->bpass_len + 1);
	s->buser = s->bpass = NULL;
	s->buser_len = s->bpass_len = 0;
	iobuf_free(&s->login);
}

/* one timer per session; each phase arms it for its own limit */
void
session_timer(struct session *s, unsigned int ms)
{
	struct timeval	 tv;

	evtimer_del(&s->ev_timer);
	ms = login_timer(s, ms);
	if (ms == 0)
		return;
	tv.tv_sec = ms / 1000;
	tv.tv_usec = (ms % 1000) * 1000;
	evtimer_add(&s->ev_timer, &tv);
}

static void
session_timeout(int fd, short event, void *arg)
{
	struct session	*s = arg;

	log_select(s->conf->id);
	/* a stalled handshake: nothing can be said in the clear any more */
	if (s->tls_state == TLSS_HANDSHAKE) {
		session_close(s, "tls handshake timeout");
		return;
	}
	if (login_expired(s))
		return;
	switch (s->state) {
	case S_PRELOGIN:
	case S_AUTHENTICATE:
		session_bye(s, BYE_IDLE, "idle timeout");
		break;
	case S_AUTH_WAIT:
		session_unavailable(s, "authentication service unavailable",
		    "auth service: timeout", "auth unavailable");
		break;
	case S_AUTH_DELAY:
		auth_delay_done(s);
		break;
	case S_BACKEND_GREETING:
	case S_BACKEND_LOGIN:
		proxy_timeout(s);
		break;
	case S_RELAY:
		proxy_relay_bye(s, BYE_IDLE, "proxy timeout");
		break;
	case S_CLOSING:
		session_close(s, s->reason);
		break;
	case S_PROXY_HEADER:
		/* as nginx: no IMAP was spoken, nothing is said */
		session_close(s, "proxy protocol: no header within timeout");
		break;
	case S_ADMIT:
		/* no greeting yet: a BYE may take its place */
		session_bye(s, "[UNAVAILABLE] server busy, try again later",
		    "admission: no answer from auth");
		break;
	}
}

static void
ev_want(struct event *ev, int on)
{
	int	 pending = event_pending(ev, EV_READ | EV_WRITE, NULL);

	if (on && !pending)
		event_add(ev, NULL);
	else if (!on && pending)
		event_del(ev);
}

/*
 * Which sides to read and write, from the state and the buffers: a side
 * is read only while its destination has room (backpressure).
 */
void
session_update(struct session *s)
{
	int	 cr = 0, cw, br = 0, bw = 0;
	int	 outfull = IOBUF_LEN(&s->out) >= IMAP_OUT_HIWAT;

	if (s->tls_state == TLSS_HANDSHAKE) {
		ev_want(&s->ev_cread, s->tls_want == CTLS_WANT_READ);
		ev_want(&s->ev_cwrite, s->tls_want == CTLS_WANT_WRITE);
		return;
	}
	cw = IOBUF_LEN(&s->out) > 0;
	switch (s->state) {
	case S_PRELOGIN:
	case S_AUTHENTICATE:
		cr = !outfull && iobuf_room(&s->in) > 0;
		break;
	case S_AUTH_WAIT:
	case S_AUTH_DELAY:
		cr = iobuf_room(&s->in) > 0;
		break;
	case S_BACKEND_GREETING:
	case S_BACKEND_LOGIN:
		cr = iobuf_room(&s->in) > 0;
		br = !outfull && iobuf_room(&s->b2c) > 0;
		bw = proxy_login_pending(s);
		break;
	case S_RELAY:
		proxy_relay_events(s, &cr, &cw, &br, &bw);
		break;
	case S_PROXY_HEADER:
		cr = 1;
		break;
	case S_CLOSING:
	case S_ADMIT:
		break;
	}
	/* after STARTTLS, nothing more is read in the clear */
	if (s->tls_state == TLSS_PENDING)
		cr = 0;
	ev_want(&s->ev_cread, cr || s->tls_wwantr);
	ev_want(&s->ev_cwrite, cw || s->tls_rwantw);
	/* bytes libtls decrypted already raise no event on the socket */
	if (cr && s->tls_more)
		event_active(&s->ev_cread, EV_READ, 1);
	if (s->bfd != -1) {
		proxy_events(s, &br, &bw);	/* TLS to the backend */
		ev_want(&s->ev_bread, br);
		ev_want(&s->ev_bwrite, bw);
		if (br && s->btls_more)
			event_active(&s->ev_bread, EV_READ, 1);
	}
}

/*
 * Byte buffers.  Drained bytes are wiped: before login they may hold a
 * password, after it another user's mail must not linger in a shared
 * worker.
 */

/* a copy with a NUL after it; data may hold NULs of its own */
char *
memdup0(const void *data, size_t len)
{
	char	*p;

	if ((p = malloc(len + 1)) == NULL)
		return (NULL);
	memcpy(p, data, len);
	p[len] = '\0';
	return (p);
}

/*
 * Not zeroed, and not wiped whole when freed: nothing is read past len,
 * and no byte past len ever held data (iobuf_drain() and
 * iobuf_compact() wipe what they give up), so wiping up to len is
 * enough, also for what a writer consumed by moving off (the login
 * with its password).  A page of an idle session's buffer that data
 * never reached is never touched and costs no memory.
 */
int
iobuf_alloc(struct iobuf *b, size_t size)
{
	if ((b->data = malloc(size)) == NULL)
		return (-1);
	b->size = size;
	b->off = b->len = 0;
	return (0);
}

void
iobuf_free(struct iobuf *b)
{
	if (b->data != NULL) {
		explicit_bzero(b->data, b->len);
		free(b->data);
	}
	memset(b, 0, sizeof(*b));
}

static void
iobuf_compact(struct iobuf *b)
{
	size_t	 n = b->len - b->off;

	memmove(b->data, b->data + b->off, n);
	explicit_bzero(b->data + n, b->len - n);
	b->off = 0;
	b->len = n;
}

/* free space at the end, moving pending data to the front if needed */
size_t
iobuf_room(struct iobuf *b)
{
	if (b->data == NULL)
		return (0);
	if (b->len == b->size && b->off > 0)
		iobuf_compact(b);
	return (b->size - b->len);
}

/* append, growing the buffer when it is too small */
int
iobuf_add(struct iobuf *b, const void *data, size_t len)
{
	size_t	 need, size;
	void	*p;

	if (b->size - b->len < len && b->off > 0)
		iobuf_compact(b);
	if (b->size - b->len < len) {
		need = b->len + len;
		size = b->size ? b->size : 1024;
		while (size < need)
			size *= 2;
		if ((p = recallocarray(b->data, b->size, size, 1)) == NULL)
			return (-1);
		b->data = p;
		b->size = size;
	}
	memcpy(b->data + b->len, data, len);
	b->len += len;
	return (0);
}

void
iobuf_drain(struct iobuf *b, size_t n)
{
	explicit_bzero(b->data + b->off, n);
	b->off += n;
	if (b->off == b->len)
		b->off = b->len = 0;
}

/*
 * Client I/O.  Every byte to and from the client passes through
 * client_read() and client_write(), where TLS plugs in.
 */

ssize_t
client_read(struct session *s, void *buf, size_t len)
{
	if (s->tls_state == TLSS_ON)
		return (ctls_read(s, buf, len));
	return (read(s->cfd, buf, len));
}

ssize_t
client_write(struct session *s, const void *buf, size_t len)
{
	if (s->tls_state == TLSS_ON)
		return (ctls_write(s, buf, len));
	return (write(s->cfd, buf, len));
}

void
client_shutdown(struct session *s)
{
	ctls_close(s);
	shutdown(s->cfd, SHUT_WR);
	s->client_shut = 1;
}

int
client_send(struct session *s, const void *data, size_t len)
{
	if (iobuf_add(&s->out, data, len) == -1) {
		log_warn(__func__);
		session_close(s, "out of memory");
		return (-1);
	}
	return (0);
}

/* queue one reply line; CRLF is added here */
int
client_reply(struct session *s, const char *fmt, ...)
{
	va_list	 ap;
	char	 line[4096];
	int	 len;

	va_start(ap, fmt);
	len = vsnprintf(line, sizeof(line) - 2, fmt, ap);
	va_end(ap);
	/* every reply fits: the longest carries an Auth-Status text */
	if (len < 0 || (size_t)len >= sizeof(line) - 2)
		fatalx("%s: reply too long", __func__);
	memcpy(line + len, "\r\n", 2);
	if (iobuf_add(&s->out, line, len + 2) == -1) {
		log_warn(__func__);
		return (-1);
	}
	return (0);
}

/*
 * Write queued replies, then relayed bytes (b2c, then the pipe); -1 when
 * the session ended.
 */
int
client_flush(struct session *s)
{
	struct iobuf	*b;
	ssize_t		 n;

	/* replies queued during a handshake wait for its end */
	if (s->tls_state == TLSS_HANDSHAKE)
		return (0);
	for (;;) {
		b = &s->out;
		if (IOBUF_LEN(b) == 0 && s->state == S_RELAY)
			b = &s->b2c;
		if (IOBUF_LEN(b) == 0)
			break;
		if ((n = client_write(s, IOBUF_DATA(b), IOBUF_LEN(b))) == -1) {
			if (errno == EAGAIN || errno == EINTR)
				break;
			session_close(s, "client closed");
			return (-1);
		}
		if (b == &s->b2c) {
			s->bytes_out += n;
			session_timer(s, s->conf->proxy_timeout_ms);
		}
		iobuf_drain(b, n);
	}
	if (s->state == S_RELAY && IOBUF_LEN(&s->out) == 0) {
		/* the login's reply went out: no more replies */
		iobuf_free(&s->out);
		if (proxy_client_flush(s) == -1)
			return (-1);
	}
	if (s->state == S_CLOSING && IOBUF_LEN(&s->out) == 0) {
		session_close(s, s->reason);
		return (-1);
	}
	/* STARTTLS's OK went out in the clear: the handshake may begin */
	if (s->tls_state == TLSS_PENDING && IOBUF_LEN(&s->out) == 0)
		return (session_tls_start(s));
	return (0);
}

static void
client_read_cb(int fd, short event, void *arg)
{
	struct session	*s = arg;
	size_t		 room;
	ssize_t		 n;

	log_select(s->conf->id);
	if (s->state == S_PROXY_HEADER) {
		realip_read(s);
		return;
	}
	if (s->tls_state == TLSS_HANDSHAKE) {
		session_tls_step(s);
		return;
	}
	/* a TLS write that waited for this event goes first */
	if (s->tls_wwantr) {
		s->tls_wwantr = 0;
		if (client_flush(s) == -1)
			return;
	}
	if (s->state == S_RELAY) {
		if (proxy_client_read(s) != -1)
			session_update(s);
		return;
	}
	if ((room = iobuf_room(&s->in)) == 0) {
		session_update(s);
		return;
	}
	if ((n = client_read(s, s->in.data + s->in.len, room)) == -1) {
		if (errno != EAGAIN && errno != EINTR)
			session_close(s, "client closed");
		else
			session_update(s);	/* TLS may wait for POLLOUT */
		return;
	}
	if (n == 0) {
		client_eof(s);
		return;
	}
	/*
	 * The idle timer runs from the first byte of a command to its end
	 * (session_parse() re-arms it per command), not from the last
	 * byte: a command dribbled in byte by byte must not hold the slot.
	 */
	if (IOBUF_LEN(&s->in) == 0 &&
	    (s->state == S_PRELOGIN || s->state == S_AUTHENTICATE))
		session_timer(s, s->conf->timeout_ms);
	s->in.len += n;
	if (session_parse(s) == -1 || client_flush(s) == -1)
		return;
	session_update(s);
}

/* EOF before the relay: answer what was read, unless a login is in flight */
static int
client_eof(struct session *s)
{
	if (s->state == S_PRELOGIN || s->state == S_AUTHENTICATE)
		return (session_finish(s, "client closed"));
	session_close(s, "client closed");
	return (-1);
}

static void
client_write_cb(int fd, short event, void *arg)
{
	struct session	*s = arg;

	log_select(s->conf->id);
	if (s->tls_state == TLSS_HANDSHAKE) {
		session_tls_step(s);
		return;
	}
	/* a TLS read that waited for this event */
	if (s->tls_rwantw) {
		s->tls_rwantw = 0;
		client_read_cb(fd, EV_READ, s);
		return;
	}
	if (client_flush(s) == -1)
		return;
	if (s->state == S_RELAY) {
		if (proxy_relay_check(s) == -1)
			return;
	} else if (session_parse(s) == -1 || client_flush(s) == -1)
		return;
	session_update(s);
}

/* a user name fit for a log line: no spaces, quotes or control bytes */
const char *
log_safe(char *dst, size_t dstsz, const char *src, size_t len)
{
	size_t	 i;

	if (src == NULL || len == 0)
		return ("-");
	for (i = 0; i < len && i < dstsz - 1; i++)
		dst[i] = ((unsigned char)src[i] <= 0x20 || src[i] == 0x7f ||
		    src[i] == '"' || src[i] == '\\') ? '?' : src[i];
	dst[i] = '\0';
	return (dst);
}

/*
 * A reason="..." value: it may quote what a backend or the auth service
 * said, so nothing in it may end the quotes or the line.
 */
const char *
log_quoted(char *dst, size_t dstsz, const char *src)
{
	size_t	 i;

	if (src == NULL)
		return ("-");
	for (i = 0; src[i] != '\0' && i < dstsz - 1; i++)
		dst[i] = ((unsigned char)src[i] < 0x20 || src[i] == 0x7f ||
		    src[i] == '"' || src[i] == '\\') ? '?' : src[i];
	dst[i] = '\0';
	return (dst);
}
