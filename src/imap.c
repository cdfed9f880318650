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
 * The imap worker process: accepts clients on the listening sockets the
 * parent passed, speaks the pre-login IMAP dialogue, asks the auth
 * process, then hands the session to proxy.c for the backend.
 */

#include <sys/types.h>
#include <sys/socket.h>
#include <sys/time.h>

#include <netinet/in.h>

#include <errno.h>
#include <event.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>
#include <unistd.h>

#include <tls.h>

#include "imaprelayd.h"
#include "imap.h"
#include "sasl.h"

#define IMAP_DEFAULT_CAPS	"IMAP4 IMAP4rev1 UIDPLUS"
#define BYE_TOO_MANY		"* BYE [UNAVAILABLE] too many connections\r\n"

struct imap_listener {
	TAILQ_ENTRY(imap_listener)	 entry;
	struct listen_conf		*lc;
	struct imap_server		*srv;
	struct event			 ev;
	struct event			 ev_pause;	/* EMFILE back-off */
};

static void	imap_dispatch_parent(int, short, void *);
static void	imap_dispatch_auth(int, short, void *);
static void	imap_configure(void);
static void	imap_auth_channel(struct imsg *);
static void	imap_auth_lost(void);
static void	imap_drain(void);
static void	imap_exit(void);
static void	server_caps(struct imap_server *);
static const char *session_caps(struct session *);
static void	listeners_start(void);
static void	listeners_stop(void);
static void	listeners_pause(int);
static void	imap_accept(int, short, void *);
static void	imap_accept_resume(int, short, void *);
static void	imap_refuse(int);
static int	session_new(struct imap_server *, int,
		    struct sockaddr_storage *, socklen_t, int);
static int	session_tls_start(struct session *);
static void	session_greet(struct session *);
static void	session_begin(struct session *);
static void	conn_admit_ask(struct session *);
static void	conn_send(struct session *, int);
static void	conn_verdict(struct imsg *);
static void	conn_release(struct session *);
static int	sni_listen_dup(struct listen_conf *);
static int	sni_select(struct session *);
static void	session_tls_step(struct session *);
static void	session_gone(void);
static void	session_log_end(struct session *, const char *);
static void	session_timeout(int, short, void *);
static void	client_read_cb(int, short, void *);
static void	client_write_cb(int, short, void *);
static int	client_eof(struct session *);
static int	session_parse(struct session *);
static int	parse_command(struct session *);
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
static int	auth_send(struct session *);
static void	auth_cancel(struct session *);
static void	auth_result(struct imsg *);
static int	auth_ok(struct session *, struct auth_result *,
		    const char *, const char *);
static int	auth_fail(struct session *, struct auth_result *, const char *,
		    size_t);
static int	auth_unavailable(struct session *, const char *, size_t);
static void	auth_fail_reply(struct session *);
static int	auth_delay_done(struct session *);

static struct config		*conf;
static struct imsgev		 iev_parent;
static struct imsgev		*iev_auth;
static TAILQ_HEAD(, session)	 sessions = TAILQ_HEAD_INITIALIZER(sessions);
static TAILQ_HEAD(, imap_server) servers = TAILQ_HEAD_INITIALIZER(servers);
static TAILQ_HEAD(, imap_listener) listeners =
    TAILQ_HEAD_INITIALIZER(listeners);
static unsigned int		 nsessions;
static int			 admission;	/* enum admission */
static int			 draining;
static int			 listening;
static uint32_t			 auth_next_id;
static uint32_t			 conn_next_id;	/* limit_conn_per_ip */

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

void
imap_main(int debug, int verbose, const char *user)
{
	log_procinit("imap");
	log_setverbose(verbose);
	if ((conf = config_new()) == NULL)
		fatal("config_new");
	/* libtls reads its configuration while files are still in view */
	if (tls_init() == -1)
		fatalx("tls_init");
	proc_privdrop(user, "imap", 1);
	/* a peer closing under a write must not kill the whole worker */
	signal(SIGPIPE, SIG_IGN);

	event_init();
	imsgev_init(&iev_parent, PROC_PARENT_FD, imap_dispatch_parent, NULL);
	sandbox_imap();
	event_dispatch();
	fatalx("event loop ended");
}

/*
 * Channels to the parent and to auth.
 */

static void
imap_dispatch_parent(int fd, short event, void *arg)
{
	struct imsgev	*iev = &iev_parent;
	struct imsg	 imsg;
	ssize_t		 n;
	int		 v;

	if (event & EV_READ) {
		if ((n = imsgbuf_read(&iev->ibuf)) == -1)
			fatal("imsgbuf_read");
		if (n == 0)
			imap_exit();
	}
	if ((event & EV_WRITE) && imsgbuf_write(&iev->ibuf) == -1)
		imap_exit();
	for (;;) {
		if ((n = imsg_get(&iev->ibuf, &imsg)) == -1)
			fatal("imsg_get");
		if (n == 0)
			break;
		switch (imsg_get_type(&imsg)) {
		case IMSG_CFG_GLOBAL:
		case IMSG_CFG_SERVER:
		case IMSG_CFG_AUTH_HEADER:
		case IMSG_CFG_LISTEN:
		case IMSG_CFG_TLS_CERT:
		case IMSG_CFG_TLS_KEY:
		case IMSG_CFG_DONE:
			if (config_recv(conf, &imsg) == 1)
				imap_configure();
			break;
		case IMSG_CTL_AUTH_CHANNEL:
			imap_auth_channel(&imsg);
			break;
		case IMSG_CTL_ADMISSION:
			if (imsg_get_data(&imsg, &admission,
			    sizeof(admission)) == -1)
				fatal("IMSG_CTL_ADMISSION");
			listeners_pause(admission == ADMIT_PAUSE);
			break;
		case IMSG_CTL_DRAIN:
			imap_drain();
			break;
		case IMSG_CTL_VERBOSE:
			if (imsg_get_data(&imsg, &v, sizeof(v)) == -1)
				fatal("IMSG_CTL_VERBOSE");
			log_setverbose(v);
			break;
		case IMSG_CTL_TICKET_KEY:
			ctls_ticket_key(&imsg);
			break;
		default:
			fatalx("%s: unexpected imsg %d", __func__,
			    imsg_get_type(&imsg));
		}
		imsg_free(&imsg);
	}
	imsgev_add(iev);
}

/* the parent is gone: nothing may outlive it */
static void
imap_exit(void)
{
	log_debug("parent channel closed, exiting");
	exit(0);
}

static void
imap_configure(void)
{
	struct server_conf	*sc;
	struct listen_conf	*lc;
	struct imap_server	*srv;
	struct imap_listener	*l;

	TAILQ_FOREACH(sc, &conf->servers, entry) {
		if ((srv = calloc(1, sizeof(*srv))) == NULL)
			fatal(__func__);
		srv->conf = sc;
		server_caps(srv);
		if (sc->tls_npairs > 0 &&
		    (srv->tls = ctls_server(conf, sc)) == NULL)
			fatalx("%s: server %s: no TLS", __func__,
			    sc->server_name);
		TAILQ_INSERT_TAIL(&servers, srv, entry);
	}
	ptls_configure(conf);
	/* the keys live in the TLS contexts only */
	ctls_wipe(conf);
	TAILQ_FOREACH(lc, &conf->listens, entry) {
		if (sni_listen_dup(lc))
			continue;
		if ((l = calloc(1, sizeof(*l))) == NULL)
			fatal(__func__);
		l->lc = lc;
		TAILQ_FOREACH(srv, &servers, entry)
			if (srv->conf->id == lc->server_id)
				l->srv = srv;
		if (l->srv == NULL || lc->fd == -1 ||
		    (lc->ssl && l->srv->tls == NULL))
			fatalx("%s: listener %s without server, socket or TLS",
			    __func__, lc->name);
		set_nonblock(lc->fd);
		event_set(&l->ev, lc->fd, EV_READ | EV_PERSIST, imap_accept, l);
		evtimer_set(&l->ev_pause, imap_accept_resume, l);
		TAILQ_INSERT_TAIL(&listeners, l, entry);
	}
	imsgev_compose(&iev_parent, IMSG_CTL_READY, 0, -1, NULL, 0);
	listeners_start();
}

/*
 * A channel to auth arrives after the configuration and again each time
 * auth was restarted.  Requests sent on the old channel are lost.
 */
static void
imap_auth_channel(struct imsg *imsg)
{
	struct session	*s, *next;
	uint32_t	 wid;
	unsigned int	 n = 0;
	int		 fd;

	if ((fd = imsg_get_fd(imsg)) == -1)
		fatalx("%s: no fd", __func__);
	if (imsg_get_data(imsg, &wid, sizeof(wid)) == -1)
		fatal("IMSG_CTL_AUTH_CHANNEL");
	if (iev_auth != NULL)
		imap_auth_lost();
	if ((iev_auth = calloc(1, sizeof(*iev_auth))) == NULL)
		fatal(__func__);
	imsgev_init(iev_auth, fd, imap_dispatch_auth, NULL);

	/* logins that waited for a channel go now */
	TAILQ_FOREACH_SAFE(s, &sessions, entry, next)
		if (s->state == S_AUTH_WAIT && s->auth_id == 0 &&
		    auth_send(s) != -1)
			session_update(s);
	/* a new auth process counts our clients for limit_conn_per_ip */
	TAILQ_FOREACH(s, &sessions, entry)
		if (s->conn_id != 0) {
			conn_send(s, s->state != S_ADMIT);
			n++;
		}
	if (n > 0)
		log_info("limit_conn_per_ip: %u sessions counted again", n);
}

static void
imap_auth_lost(void)
{
	struct session	*s, *next;

	imsgev_clear(iev_auth);
	free(iev_auth);
	iev_auth = NULL;
	TAILQ_FOREACH_SAFE(s, &sessions, entry, next) {
		if (s->state != S_AUTH_WAIT || s->auth_id == 0)
			continue;
		s->auth_id = 0;
		session_unavailable(s, "authentication service unavailable",
		    "auth process restarted", "auth unavailable");
	}
	/* no one to count: clients waiting for a verdict go on */
	TAILQ_FOREACH_SAFE(s, &sessions, entry, next)
		if (s->state == S_ADMIT)
			session_begin(s);
}

static void
imap_dispatch_auth(int fd, short event, void *arg)
{
	struct imsgev	*iev = iev_auth;
	struct imsg	 imsg;
	ssize_t		 n;

	if (event & EV_READ) {
		if ((n = imsgbuf_read(&iev->ibuf)) == -1 || n == 0) {
			log_warnx("auth channel closed");
			imap_auth_lost();
			return;
		}
	}
	if ((event & EV_WRITE) && imsgbuf_write(&iev->ibuf) == -1) {
		log_warn("auth channel write");
		imap_auth_lost();
		return;
	}
	for (;;) {
		if ((n = imsg_get(&iev->ibuf, &imsg)) == -1)
			fatal("imsg_get");
		if (n == 0)
			break;
		switch (imsg_get_type(&imsg)) {
		case IMSG_AUTH_RESULT:
			auth_result(&imsg);
			break;
		case IMSG_AUTH_CONN_VERDICT:
			conn_verdict(&imsg);
			break;
		default:
			fatalx("%s: unexpected imsg %d", __func__,
			    imsg_get_type(&imsg));
		}
		imsg_free(&imsg);
	}
	imsgev_add(iev);
}

static void
imap_drain(void)
{
	draining = 1;
	listeners_stop();
	if (nsessions == 0) {
		imsgbuf_flush(&iev_parent.ibuf);
		exit(0);
	}
}

/*
 * Capabilities: the configured tokens, then what the proxy itself
 * implements before login, then the enabled mechanisms.
 */

static int
caps_has(const char *caps, const char *tok)
{
	size_t	 n = strlen(tok);

	while (*caps != '\0') {
		if (strncasecmp(caps, tok, n) == 0 &&
		    (caps[n] == ' ' || caps[n] == '\0'))
			return (1);
		if ((caps = strchr(caps, ' ')) == NULL)
			break;
		caps++;
	}
	return (0);
}

static void
caps_add(char *caps, size_t len, const char *tok)
{
	if (caps_has(caps, tok))
		return;
	if (caps[0] != '\0')
		strlcat(caps, " ", len);
	strlcat(caps, tok, len);
}

/*
 * Before TLS, "starttls on" adds STARTTLS after the mechanisms, and
 * "starttls only" STARTTLS LOGINDISABLED instead of them (as nginx).
 */
static void
caps_build(struct server_conf *sc, int tls, char *caps, size_t len)
{
	char	 tokens[CAPS_MAX_LEN], *p, *tok;
	int	 only = !tls && sc->starttls == STARTTLS_ONLY;

	if (strlcpy(tokens, sc->imap_capabilities[0] != '\0' ?
	    sc->imap_capabilities : IMAP_DEFAULT_CAPS, sizeof(tokens)) >=
	    sizeof(tokens))
		fatalx("%s: capabilities too long", __func__);
	caps[0] = '\0';
	for (p = tokens; (tok = strsep(&p, " \t")) != NULL; )
		if (*tok != '\0')
			caps_add(caps, len, tok);
	caps_add(caps, len, "SASL-IR");
	caps_add(caps, len, "LITERAL+");
	caps_add(caps, len, "ID");
	if ((sc->imap_auth & MECH_PLAIN) && !only)
		caps_add(caps, len, "AUTH=PLAIN");
	if ((sc->imap_auth & MECH_LOGIN) && !only)
		caps_add(caps, len, "AUTH=LOGIN");
	if ((sc->imap_auth & MECH_CRAM_MD5) && !only)
		caps_add(caps, len, "AUTH=CRAM-MD5");
	if ((sc->imap_auth & MECH_EXTERNAL) && !only)
		caps_add(caps, len, "AUTH=EXTERNAL");
	if (!tls && sc->starttls != STARTTLS_OFF)
		caps_add(caps, len, "STARTTLS");
	if (only)
		caps_add(caps, len, "LOGINDISABLED");
}

static void
server_caps(struct imap_server *srv)
{
	caps_build(srv->conf, 0, srv->caps, sizeof(srv->caps));
	caps_build(srv->conf, 1, srv->caps_tls, sizeof(srv->caps_tls));
}

/* a TLS connection (or one being set up) is never offered STARTTLS */
static const char *
session_caps(struct session *s)
{
	return (s->tls != NULL ? s->srv->caps_tls : s->srv->caps);
}

/*
 * Listeners and accept.
 */

static void
listeners_start(void)
{
	struct imap_listener	*l;

	if (draining)
		return;
	listening = 1;
	if (admission == ADMIT_PAUSE)
		return;
	TAILQ_FOREACH(l, &listeners, entry)
		event_add(&l->ev, NULL);
}

/* connection mode: another spare holds the room left under the cap */
static void
listeners_pause(int pause)
{
	struct imap_listener	*l;

	if (!listening)
		return;
	TAILQ_FOREACH(l, &listeners, entry) {
		if (pause) {
			event_del(&l->ev);
			evtimer_del(&l->ev_pause);
		} else
			event_add(&l->ev, NULL);
	}
}

/* a worker that stops accepting closes the sockets: it never resumes */
static void
listeners_stop(void)
{
	struct imap_listener	*l;

	TAILQ_FOREACH(l, &listeners, entry) {
		event_del(&l->ev);
		evtimer_del(&l->ev_pause);
		if (l->lc->fd != -1) {
			close(l->lc->fd);
			l->lc->fd = -1;
		}
	}
	listening = 0;
}

static void
imap_accept_resume(int fd, short event, void *arg)
{
	struct imap_listener	*l = arg;

	if (listening && admission != ADMIT_PAUSE)
		event_add(&l->ev, NULL);
}

static void
imap_accept(int fd, short event, void *arg)
{
	struct imap_listener	*l = arg;
	struct sockaddr_storage	 ss;
	socklen_t		 len = sizeof(ss);
	struct timeval		 tv = { 1, 0 };
	int			 cfd;

	if ((cfd = accept4(fd, (struct sockaddr *)&ss, &len,
	    SOCK_NONBLOCK | SOCK_CLOEXEC)) == -1) {
		if (errno == EMFILE || errno == ENFILE) {
			/* out of descriptors: let sessions end first */
			log_warn("accept");
			event_del(&l->ev);
			evtimer_add(&l->ev_pause, &tv);
		} else if (errno != EAGAIN && errno != EINTR &&
		    errno != ECONNABORTED)
			log_warn("accept");
		return;
	}
	if (admission != ADMIT_SERVE || (conf->isolation == ISOLATION_SHARED &&
	    nsessions >= conf->worker_connections)) {
		imap_refuse(cfd);
		return;
	}
	/* one client per worker: nobody else may ever reach this one */
	if (conf->isolation == ISOLATION_CONNECTION)
		listeners_stop();
	imsgev_compose(&iev_parent, IMSG_CTL_ACCEPTED, 0, -1, NULL, 0);
	if (session_new(l->srv, cfd, &ss, len, l->lc->ssl) == -1) {
		close(cfd);
		session_gone();
	}
}

/* a fresh socket has room for one line: a failed write changes nothing */
static void
imap_refuse(int fd)
{
	if (write(fd, BYE_TOO_MANY, strlen(BYE_TOO_MANY)) == -1)
		log_debug("%s: write: %s", __func__, strerror(errno));
	close(fd);
}

/*
 * Sessions.
 */

uint64_t
imap_now_ms(void)
{
	struct timespec	 ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return ((uint64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000);
}

static int
session_new(struct imap_server *srv, int fd, struct sockaddr_storage *ss,
    socklen_t len, int ssl)
{
	struct session	*s;
	size_t		 bufsz = srv->conf->imap_client_buffer;

	if ((s = calloc(1, sizeof(*s))) == NULL ||
	    iobuf_alloc(&s->in, bufsz) == -1 ||
	    (s->scratch = calloc(1, bufsz)) == NULL) {
		log_warn(__func__);
		if (s != NULL) {
			iobuf_free(&s->in);
			free(s);
		}
		return (-1);
	}
	s->srv = srv;
	s->conf = srv->conf;
	s->cfd = fd;
	s->bfd = -1;
	s->start_ms = imap_now_ms();
	sockaddr_str((struct sockaddr *)ss, s->client, sizeof(s->client));
	if (getnameinfo((struct sockaddr *)ss, len, s->client_ip,
	    sizeof(s->client_ip), NULL, 0, NI_NUMERICHOST) != 0)
		strlcpy(s->client_ip, "unknown", sizeof(s->client_ip));
	if (ss->ss_family == AF_INET)
		s->client_port = ntohs(((struct sockaddr_in *)ss)->sin_port);
	else if (ss->ss_family == AF_INET6)
		s->client_port = ntohs(((struct sockaddr_in6 *)ss)->sin6_port);
	imap_cmd_init(&s->cmd, s->scratch, bufsz);
	event_set(&s->ev_cread, fd, EV_READ | EV_PERSIST, client_read_cb, s);
	event_set(&s->ev_cwrite, fd, EV_WRITE | EV_PERSIST, client_write_cb,
	    s);
	evtimer_set(&s->ev_timer, session_timeout, s);
	TAILQ_INSERT_TAIL(&sessions, s, entry);
	nsessions++;
	log_debug("session start client=%s", s->client);

	s->implicit_tls = ssl;
	if (s->conf->limit_conn_per_ip > 0)
		conn_admit_ask(s);
	else
		session_begin(s);
	return (0);
}

/* admitted: TLS or the greeting */
static void
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

/*
 * limit_conn_per_ip: only the auth process sees every worker's clients,
 * so it counts them.  Until it answers, the client is not read.  With
 * no auth process (it is being restarted) the client goes on and is
 * counted once the new one is there.
 */
static void
conn_admit_ask(struct session *s)
{
	if (++conn_next_id == 0)
		conn_next_id = 1;
	s->conn_id = conn_next_id;
	if (iev_auth == NULL) {
		session_begin(s);
		return;
	}
	s->state = S_ADMIT;
	session_timer(s, s->conf->timeout_ms);
	conn_send(s, 0);
	session_update(s);
}

static void
conn_send(struct session *s, int recount)
{
	struct auth_conn	 c;

	memset(&c, 0, sizeof(c));
	c.id = s->conn_id;
	c.server_id = s->conf->id;
	c.recount = recount;
	strlcpy(c.client_ip, s->client_ip, sizeof(c.client_ip));
	imsgev_compose(iev_auth, IMSG_AUTH_CONN_OPEN, 0, -1, &c, sizeof(c));
}

static void
conn_verdict(struct imsg *imsg)
{
	struct auth_conn_verdict	 v;
	struct session			*s;

	if (imsg_get_data(imsg, &v, sizeof(v)) == -1)
		fatalx("%s: bad message", __func__);
	TAILQ_FOREACH(s, &sessions, entry)
		if (s->state == S_ADMIT && s->conn_id == v.id)
			break;
	if (s == NULL)
		return;
	if (v.admit) {
		session_begin(s);
		return;
	}
	/* not counted: nothing to take back when it closes */
	s->conn_id = 0;
	/* a TLS client would take a line in the clear for garbage */
	if (!s->implicit_tls)
		client_reply(s, "* BYE [UNAVAILABLE] too many connections "
		    "from your address");
	session_finish(s, "limit_conn_per_ip");
}

/* the session ends: the auth process counts one less */
static void
conn_release(struct session *s)
{
	if (s->conn_id != 0 && iev_auth != NULL)
		imsgev_compose(iev_auth, IMSG_AUTH_CONN_CLOSE, 0, -1,
		    &s->conn_id, sizeof(s->conn_id));
	s->conn_id = 0;
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
 * Servers told apart by SNI share one listening socket (the parent
 * gave each a copy); the first server's listener serves them all.
 */
static int
sni_listen_dup(struct listen_conf *lc)
{
	struct listen_conf	*l;

	TAILQ_FOREACH(l, &conf->listens, entry) {
		if (l == lc)
			return (0);
		if (strcmp(l->name, lc->name) == 0)
			break;
	}
	if (l == NULL)
		return (0);
	close(lc->fd);
	lc->fd = -1;
	return (1);
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
	TAILQ_FOREACH(srv, &servers, entry)
		if (srv != s->srv && srv->conf->server_name_set &&
		    strcasecmp(srv->conf->server_name, name) == 0 &&
		    sni_sibling(conf, s->srv->conf, srv->conf))
			break;
	if (srv == NULL)
		return (0);
	s->srv = srv;
	s->conf = srv->conf;
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
		imap_cmd_init(&s->cmd, s->scratch, bufsz);
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
static void
session_gone(void)
{
	imsgev_compose(&iev_parent, IMSG_CTL_CLOSED, 0, -1, NULL, 0);
	if (conf->isolation == ISOLATION_CONNECTION ||
	    (draining && nsessions == 0)) {
		if (iev_auth != NULL)
			imsgbuf_flush(&iev_auth->ibuf);
		imsgbuf_flush(&iev_parent.ibuf);
		exit(0);
	}
}

void
session_close(struct session *s, const char *reason)
{
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
	imap_cmd_clear(&s->cmd);
	freezero(s->scratch, s->conf->imap_client_buffer);
	session_wipe_creds(s);
	free(s->user);
	free(s->id_params);
	free(s->failtext);
	TAILQ_REMOVE(&sessions, s, entry);
	nsessions--;
	freezero(s, sizeof(*s));
	session_gone();
}

/* stop reading, send what is queued (the final reply), then close */
int
session_finish(struct session *s, const char *reason)
{
	auth_cancel(s);
	proxy_close_backend(s);
	imap_cmd_clear(&s->cmd);
	s->state = S_CLOSING;
	s->reason = reason;
	if (client_flush(s) == -1)
		return (-1);
	session_timer(s, s->conf->timeout_ms);
	session_update(s);
	return (-1);
}

static void
session_log_end(struct session *s, const char *reason)
{
	char	 user[128], why[512];

	log_info("session end client=%s user=%s backend=%s auth_ms=%u "
	    "in=%llu out=%llu duration_ms=%llu reason=\"%s\"", s->client,
	    log_safe(user, sizeof(user), s->user,
	    s->user ? strlen(s->user) : 0),
	    s->backend[0] != '\0' ? s->backend : "-", s->auth_ms,
	    (unsigned long long)s->bytes_in, (unsigned long long)s->bytes_out,
	    (unsigned long long)(imap_now_ms() - s->start_ms),
	    log_quoted(why, sizeof(why), reason));
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
	return (session_finish(s, reason));
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

	/* a stalled handshake: nothing can be said in the clear any more */
	if (s->tls_state == TLSS_HANDSHAKE) {
		session_close(s, "tls handshake timeout");
		return;
	}
	switch (s->state) {
	case S_PRELOGIN:
	case S_AUTHENTICATE:
		client_reply(s, "* BYE autologout; idle for too long");
		session_finish(s, "idle timeout");
		break;
	case S_AUTH_WAIT:
		session_unavailable(s, "authentication service unavailable",
		    "auth service: timeout", "auth unavailable");
		break;
	case S_AUTH_DELAY:
		auth_delay_done(s);
		break;
	case S_BACKEND_CONNECT:
	case S_BACKEND_GREETING:
	case S_BACKEND_LOGIN:
		proxy_timeout(s);
		break;
	case S_RELAY:
		session_close(s, "proxy timeout");
		break;
	case S_CLOSING:
		session_close(s, s->reason);
		break;
	case S_ADMIT:
		session_close(s, "limit_conn_per_ip: no answer from auth");
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
	case S_BACKEND_CONNECT:
		cr = iobuf_room(&s->in) > 0;
		bw = 1;
		break;
	case S_BACKEND_GREETING:
	case S_BACKEND_LOGIN:
		cr = iobuf_room(&s->in) > 0;
		br = !outfull && iobuf_room(&s->b2c) > 0;
		bw = proxy_login_pending(s);
		break;
	case S_RELAY:
		cr = !s->client_eof && iobuf_room(&s->c2b) > 0;
		br = !s->backend_eof && iobuf_room(&s->b2c) > 0;
		cw = cw || IOBUF_LEN(&s->b2c) > 0;
		bw = IOBUF_LEN(&s->c2b) > 0;
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

int
iobuf_alloc(struct iobuf *b, size_t size)
{
	if ((b->data = calloc(1, size)) == NULL)
		return (-1);
	b->size = size;
	b->off = b->len = 0;
	return (0);
}

void
iobuf_free(struct iobuf *b)
{
	if (b->data != NULL)
		freezero(b->data, b->size);
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

/* write queued replies, then relayed bytes; -1 when the session ended */
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

/*
 * The pre-login dialogue.  Commands are handled in order as long as
 * the client reads our replies; a login stops the parser until the
 * auth process answered.
 */

static int
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
		if (r == 0)
			break;
		/* a complete command: the next one gets a full timeout */
		if (s->state == S_PRELOGIN || s->state == S_AUTHENTICATE)
			session_timer(s, s->conf->timeout_ms);
	}
	return (0);
}

/* 1: a command was handled, 0: need more input, -1: session ended */
static int
parse_command(struct session *s)
{
	struct imap_cmd		*cmd = &s->cmd;
	enum imap_parse_status	 st;
	size_t			 consumed, i;

	st = imap_parse(cmd, (char *)IOBUF_DATA(&s->in), IOBUF_LEN(&s->in),
	    s->conf->imap_client_buffer, &consumed);
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
	if (st == IMAP_PARSE_BAD || st == IMAP_PARSE_TOOBIG)
		return (client_bad(s, cmd->tag, cmd->error, !cmd->close ? NULL :
		    st == IMAP_PARSE_BAD ? "bad command" :
		    cmd->lit_len ? "literal too big" : "line too long"));

#ifdef REGRESS_TRIGGERS
	if (strcmp(cmd->name, "XREGRESS") == 0 && cmd->nargs == 1) {
		char	 buf[128];
		int	 rv;

		rv = sandbox_regress_try(cmd->args[0].data, buf, sizeof(buf));
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
	imap_cmd_clear(&s->cmd);
	if (close_reason != NULL)
		return (session_finish(s, close_reason));
	if (++s->errors >= s->conf->max_errors) {
		client_reply(s, "* BYE too many invalid commands");
		return (session_finish(s, "too many errors"));
	}
	return (1);
}

static int
cmd_capability(struct session *s)
{
	if (s->cmd.nargs != 0)
		return (client_bad(s, s->cmd.tag, "invalid arguments", NULL));
	client_reply(s, "* CAPABILITY %s", session_caps(s));
	client_reply(s, "%s OK CAPABILITY completed", s->cmd.tag);
	return (0);
}

static int
cmd_noop(struct session *s)
{
	if (s->cmd.nargs != 0)
		return (client_bad(s, s->cmd.tag, "invalid arguments", NULL));
	client_reply(s, "%s OK NOOP completed", s->cmd.tag);
	return (0);
}

static int
cmd_logout(struct session *s)
{
	if (s->cmd.nargs != 0)
		return (client_bad(s, s->cmd.tag, "invalid arguments", NULL));
	client_reply(s, "* BYE logging out");
	client_reply(s, "%s OK LOGOUT completed", s->cmd.tag);
	return (session_finish(s, "client logout"));
}

/* can an ID field travel as an IMAP quoted string? */
static int
id_quotable(const struct imap_arg *a)
{
	size_t	 i;

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
 * ID NIL or ID ("name" "value" ...).  The list is kept to be passed on
 * to the backend; a field that cannot be quoted is left out (a name)
 * or sent as NIL (a value).
 */
static int
cmd_id(struct session *s)
{
	struct imap_cmd		*cmd = &s->cmd;
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
	iobuf_add(&b, "(", 1);
	for (i = 1; i < n - 1; i += 2) {
		k = &cmd->args[i];
		v = &cmd->args[i + 1];
		if (!id_quotable(k))
			continue;
		if (b.len > 1)
			iobuf_add(&b, " ", 1);
		id_quote(&b, k);
		iobuf_add(&b, " ", 1);
		if (id_nil(v) || !id_quotable(v))
			iobuf_add(&b, "NIL", 3);
		else
			id_quote(&b, v);
	}
	iobuf_add(&b, ")\0", 2);
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
		return (client_bad(s, s->cmd.tag, "invalid command", NULL));
	if (s->cmd.nargs != 0)
		return (client_bad(s, s->cmd.tag, "invalid arguments", NULL));
	client_reply(s, "%s OK Begin TLS negotiation now", s->cmd.tag);
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
	client_reply(s, "%s NO [PRIVACYREQUIRED] TLS is required", s->cmd.tag);
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
	struct imap_cmd		*cmd = &s->cmd;
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
	struct imap_cmd	*cmd = &s->cmd;
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
	char	 b64[sizeof(s->salt) * 2];

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
		if (sasl_cram_md5_salt(s->salt, sizeof(s->salt),
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

	st = imap_parse_line((char *)IOBUF_DATA(&s->in), IOBUF_LEN(&s->in),
	    s->conf->imap_client_buffer, &linelen, &consumed);
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
		return (0);
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
			r = s->user == NULL ? sasl_fail(s, "internal error") : 0;
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

/*
 * Login: keep the credentials, then ask auth, or with a static
 * proxy_pass and no auth_http go straight to the backend.
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
	s->sasl = SASL_NONE;
	s->attempt++;

	if (!s->conf->auth_http_set) {
		if (!s->conf->proxy_pass_set)
			return (session_unavailable(s,
			    "authentication service unavailable",
			    "no auth_http and no proxy_pass", "auth unavailable"));
		s->auth_ms = 0;
		return (proxy_connect(s,
		    (struct sockaddr *)&s->conf->proxy_pass,
		    s->conf->proxy_pass_len, s->user, strlen(s->user),
		    s->pass, s->pass_len));
	}
	s->state = S_AUTH_WAIT;
	s->auth_start_ms = imap_now_ms();
	/* auth enforces auth_http_timeout; this only guards against a hang */
	session_timer(s, s->conf->auth_http_timeout_ms + s->conf->timeout_ms);
	if (iev_auth == NULL)
		return (0);	/* sent when the channel arrives */
	return (auth_send(s));
}

static int
auth_send(struct session *s)
{
	struct auth_request	 req;
	unsigned char		*msg, *p;
	size_t			 ulen = strlen(s->user), len;
	size_t			 slen = s->method == AUTH_METHOD_CRAM_MD5 ?
				    strlen(s->salt) : 0;
	int			 r;

	memset(&req, 0, sizeof(req));
	if (++auth_next_id == 0)
		auth_next_id = 1;
	req.id = auth_next_id;
	req.server_id = s->conf->id;
	req.method = s->method;
	req.attempt = s->attempt;
	strlcpy(req.client_ip, s->client_ip, sizeof(req.client_ip));
	req.client_port = s->client_port;
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

/* the client left or the session ends while auth works for it */
static void
auth_cancel(struct session *s)
{
	if (s->auth_id != 0 && iev_auth != NULL)
		imsgev_compose(iev_auth, IMSG_AUTH_CANCEL, 0, -1,
		    &s->auth_id, sizeof(s->auth_id));
	s->auth_id = 0;
}

static void
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
	    len - sizeof(res) || res.server_len > sizeof(res.server))
		fatalx("%s: bad lengths", __func__);
	user = (char *)imsg->data + sizeof(res);
	pass = user + res.user_len;
	text = pass + res.pass_len;

	TAILQ_FOREACH(s, &sessions, entry)
		if (s->state == S_AUTH_WAIT && s->auth_id == res.id)
			break;
	if (s != NULL) {
		s->auth_id = 0;
		s->auth_ms = imap_now_ms() - s->auth_start_ms;
		switch (res.status) {
		case AUTH_STATUS_OK:
			auth_ok(s, &res, user, pass);
			break;
		case AUTH_STATUS_FAIL:
			auth_fail(s, &res, text, res.text_len);
			break;
		default:
			auth_unavailable(s, text, res.text_len);
			break;
		}
	}
	explicit_bzero(imsg->data, len);
}

static int
auth_unavailable(struct session *s, const char *text, size_t len)
{
	char	 why[256];
	size_t	 i;

	strlcpy(why, "auth service: ", sizeof(why));
	for (i = strlen(why); len > 0 && i < sizeof(why) - 1; i++, text++, len--)
		why[i] = (unsigned char)*text < 0x20 || *text == '"' ?
		    '?' : *text;
	why[i] = '\0';
	return (session_unavailable(s, "authentication service unavailable",
	    why, "auth unavailable"));
}

/* proxy_connect() copies the credentials it is given */
static int
auth_ok(struct session *s, struct auth_result *res, const char *user,
    const char *pass)
{
	if (s->method == AUTH_METHOD_CRAM_MD5 && !res->pass_set)
		return (session_unavailable(s,
		    "authentication service unavailable",
		    "auth service gave no Auth-Pass for CRAM-MD5",
		    "auth unavailable"));
	if (res->server_len == 0)
		return (session_unavailable(s, "backend unavailable",
		    "auth service gave no backend", "backend unavailable"));
	/* Auth-Proxy-SSL and Auth-Proxy-SSL-Name, for this login only */
	s->bssl_auth = res->proxy_ssl;
	memcpy(s->bssl_auth_name, res->proxy_ssl_name,
	    sizeof(s->bssl_auth_name));
	s->bssl_auth_name[sizeof(s->bssl_auth_name) - 1] = '\0';
	return (proxy_connect(s, (struct sockaddr *)&res->server,
	    res->server_len,
	    res->user_set ? user : s->user,
	    res->user_set ? res->user_len : strlen(s->user),
	    res->pass_set ? pass : s->pass,
	    res->pass_set ? res->pass_len : s->pass_len));
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
		return (session_finish(s, res->limited ? "limit_auth_fail" :
		    "login failed"));
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

static int
auth_delay_done(struct session *s)
{
	auth_fail_reply(s);
	return (session_resume(s));
}
