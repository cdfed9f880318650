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
 * The imap worker process: its channels to the parent and to auth, its
 * configuration, the listening sockets and accept, and the admission of
 * new clients (the parent's cap, and the limits the auth process
 * keeps: limit_conn_per_ip, limit_prelogin_per_ip, limit_conn_rate).  A client becomes
 * a session (session.c), speaks the pre-login dialogue (prelogin.c), and
 * is handed to proxy.c for the backend.
 */

#include <sys/types.h>
#include <sys/socket.h>
#include <sys/time.h>

#include <errno.h>
#include <event.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <unistd.h>
#include <tls.h>

#include "imaprelayd.h"
#include "imap.h"

#define IMAP_DEFAULT_CAPS	"IMAP4 IMAP4rev1 UIDPLUS"
#define BYE_TOO_MANY		"* BYE [UNAVAILABLE] too many connections\r\n"
#define SHUTDOWN_FLUSH_SEC	2	/* BYE sent: clients that do not read */

struct imap_listener {
	TAILQ_ENTRY(imap_listener)	 entry;
	struct listen_conf		*lc;
	struct imap_server		*srv;
	struct event			 ev;
	struct event			 ev_pause;	/* EMFILE back-off */
};

static int	imap_dispatch_parent(struct imsgev *, struct imsg *);
static void	imap_configure(void);
static void	imap_auth_channel(struct imsg *);
static void	imap_auth_lost(void);
static int	imap_dispatch_auth(struct imsgev *, struct imsg *);
static void	imap_auth_gone(struct imsgev *);
static void	imap_drain(void);
static void	imap_shutdown(void);
static void	imap_shutdown_done(int, short, void *);
static void	server_caps(struct imap_server *);
static int	caps_learned(struct imsg *);
static void	listeners_start(void);
static void	listeners_pause(int);
static void	listeners_stop(void);
static void	listeners_hold(int);
static void	imap_accept_resume(int, short, void *);
static void	imap_accept(int, short, void *);
static void	imap_refuse(int);
static int	conn_gone(int);
static void	conn_admitted(struct session *);
static void	conn_spend(struct session *);
static void	conn_send(struct session *, int);
static void	conn_verdict(struct imsg *);
static int	sni_listen_dup(struct listen_conf *);

/* the worker's state, shared by session.c and prelogin.c (imap.h) */
struct config			*imap_conf;
struct imsgev			 iev_parent;
struct imsgev			*iev_auth;	/* NULL: auth restarting */
struct session_list		 imap_sessions =
    TAILQ_HEAD_INITIALIZER(imap_sessions);
struct imap_server_list		 imap_servers =
    TAILQ_HEAD_INITIALIZER(imap_servers);
unsigned int			 imap_nsessions;
int				 imap_draining;

/*
 * The worker's peers.  When the parent is gone nothing may outlive it;
 * the parent and auth are trusted: nonsense from them is fatal.
 */
static const struct proc_peer peer_parent = {
	"parent", imap_dispatch_parent, NULL, NULL, 1
};
/* auth hands over the backend sockets it connected */
static const struct proc_peer peer_auth = {
	"auth", imap_dispatch_auth, imap_auth_gone, NULL, 1
};

static TAILQ_HEAD(, imap_listener) listeners =
    TAILQ_HEAD_INITIALIZER(listeners);
static int			 admission;	/* enum admission */
static int			 listening;
static int			 holding;	/* a client awaits admission */
static int			 configured;
static int			 started;	/* listeners_start() was called */
static uint32_t			 conn_next_id;	/* auth's count */
static struct event		 ev_shutdown;

void
imap_main(int debug, int verbose, const char *user)
{
	log_procinit("imap");
	log_setverbose(verbose);
	if ((imap_conf = config_new()) == NULL)
		fatal("config_new");
	/* libtls reads its configuration while files are still in view */
	if (tls_init() == -1)
		fatalx("tls_init");
	proc_privdrop(user, "imap", 1);
	/* a peer closing under a write must not kill the whole worker */
	signal(SIGPIPE, SIG_IGN);

	event_init();
	proc_parent_channel(&iev_parent, &peer_parent);
	sandbox_imap();
	event_dispatch();
	fatalx("event loop ended");
}

/*
 * Channels to the parent and to auth.
 */

/* the parent: configuration, auth channels, admissions, keys */
static int
imap_dispatch_parent(struct imsgev *iev, struct imsg *imsg)
{
	int	 v;

	switch (imsg_get_type(imsg)) {
	case IMSG_CFG_GLOBAL:
	case IMSG_CFG_SERVER:
	case IMSG_CFG_AUTH_HEADER:
	case IMSG_CFG_LISTEN:
	case IMSG_CFG_TLS_CERT:
	case IMSG_CFG_TLS_KEY:
	case IMSG_CFG_LOG:
	case IMSG_CFG_DONE:
		if (config_recv(imap_conf, imsg) == 1)
			imap_configure();
		break;
	case IMSG_CTL_AUTH_CHANNEL:
		imap_auth_channel(imsg);
		break;
	case IMSG_CTL_ADMISSION:
		if (imsg_get_data(imsg, &admission, sizeof(admission)) == -1)
			return (-1);
		listeners_pause(admission == ADMIT_PAUSE);
		break;
	case IMSG_CTL_DRAIN:
		imap_drain();
		break;
	case IMSG_CTL_SHUTDOWN:
		imap_shutdown();
		break;
	case IMSG_CTL_LOG_FD:
		log_recvfd(imsg);
		break;
	case IMSG_CTL_VERBOSE:
		if (imsg_get_data(imsg, &v, sizeof(v)) == -1)
			return (-1);
		log_setverbose(v);
		break;
	case IMSG_CTL_TICKET_KEY:
		ctls_ticket_key(imsg);
		break;
	default:
		return (-1);
	}
	return (0);
}

/*
 * Servers, their TLS contexts and the listeners, from imap_conf; the
 * keys then live in the TLS contexts only.  The template does this
 * once for all the workers it forks.
 */
void
imap_setup(void)
{
	struct server_conf	*sc;
	struct listen_conf	*lc;
	struct imap_server	*srv;
	struct imap_listener	*l;

	TAILQ_FOREACH(sc, &imap_conf->servers, entry) {
		if ((srv = calloc(1, sizeof(*srv))) == NULL)
			fatal(__func__);
		srv->conf = sc;
		server_caps(srv);
		if (sc->tls_npairs > 0 &&
		    (srv->tls = ctls_server(imap_conf, sc)) == NULL)
			fatalx("%s: server %s: no TLS", __func__,
			    sc->server_name);
		TAILQ_INSERT_TAIL(&imap_servers, srv, entry);
	}
	ptls_configure(imap_conf);
	/* the keys live in the TLS contexts only */
	ctls_wipe(imap_conf);
	TAILQ_FOREACH(lc, &imap_conf->listens, entry) {
		if (sni_listen_dup(lc))
			continue;
		if ((l = calloc(1, sizeof(*l))) == NULL)
			fatal(__func__);
		l->lc = lc;
		TAILQ_FOREACH(srv, &imap_servers, entry)
			if (srv->conf->id == lc->server_id)
				l->srv = srv;
		if (l->srv == NULL || lc->fd == -1 ||
		    (lc->ssl && l->srv->tls == NULL))
			fatalx("%s: listener %s without server, socket or TLS",
			    __func__, lc->name);
		set_nonblock(lc->fd);
		/* armed by listeners_start(), in the worker only */
		event_set(&l->ev, lc->fd, EV_READ | EV_PERSIST, imap_accept, l);
		evtimer_set(&l->ev_pause, imap_accept_resume, l);
		TAILQ_INSERT_TAIL(&listeners, l, entry);
	}
}

/* an exec'd (shared) worker: configured, it serves */
static void
imap_configure(void)
{
	imap_setup();
	imsgev_compose(&iev_parent, IMSG_CTL_READY, 0, -1, NULL, 0);
	configured = 1;
	/* no client before the auth process can count it */
	if (iev_auth != NULL)
		listeners_start();
}

/*
 * A worker the template just forked (template.c has reset the event
 * base).  It holds the template's configuration and TLS contexts and
 * nothing else; its channel to the parent is fd.  It tightens its
 * sandbox before a client can reach it, and accepts only as admitted:
 * admit is what the parent said when it asked for the fork.
 */
void
imap_forked(int fd, int admit)
{
	log_procinit("imap");
	setproctitle("imap");
	admission = admit;
	proc_channel(&iev_parent, fd, &peer_parent, NULL);
	sandbox_worker();
	/* no client before the auth process can count it: the parent
	   sends the auth channel next */
	configured = 1;
	if (iev_auth != NULL)
		listeners_start();
	event_dispatch();
	fatalx("event loop ended");
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
	proc_channel(iev_auth, fd, &peer_auth, NULL);

	TAILQ_FOREACH_SAFE(s, &imap_sessions, entry, next) {
		/* a new auth process counts them for its limits */
		if (s->conn_id != 0) {
			conn_send(s, s->state != S_ADMIT);
			n++;
		}
		/* logins that waited for a channel go now */
		if (s->state == S_AUTH_WAIT && s->auth_id == 0 &&
		    auth_send(s) != -1)
			session_update(s);
	}
	if (n > 0)
		log_info("limits: %u sessions counted again", n);
	if (configured && !started)
		listeners_start();
}

static void
imap_auth_lost(void)
{
	struct session	*s, *next;

	imsgev_clear(iev_auth);
	free(iev_auth);
	iev_auth = NULL;
	TAILQ_FOREACH_SAFE(s, &imap_sessions, entry, next) {
		if (s->state == S_AUTH_WAIT && s->auth_id != 0) {
			s->auth_id = 0;
			session_unavailable(s,
			    "authentication service unavailable",
			    "auth process restarted", "auth unavailable");
		} else if (s->state == S_ADMIT)
			/* no one to count: clients waiting go on */
			conn_admitted(s);
	}
}

static int
imap_dispatch_auth(struct imsgev *iev, struct imsg *imsg)
{
	switch (imsg_get_type(imsg)) {
	case IMSG_AUTH_RESULT:
		auth_result(imsg);
		break;
	case IMSG_AUTH_CONN_VERDICT:
		conn_verdict(imsg);
		break;
	case IMSG_AUTH_CAPS:
		return (caps_learned(imsg));
	default:
		return (-1);
	}
	return (0);
}

/* the auth process went away; a new one sends a new channel */
static void
imap_auth_gone(struct imsgev *iev)
{
	log_warnx("auth channel closed");
	imap_auth_lost();
}

static void
imap_drain(void)
{
	imap_draining = 1;
	listeners_stop();
	if (imap_nsessions == 0) {
		imsgbuf_flush(&iev_parent.ibuf);
		exit(0);
	}
}

/*
 * The daemon stops: every session is told BYE and logged; those whose
 * client does not take the BYE are closed a little later.
 */
static void
imap_shutdown(void)
{
	struct session	*s, *next;
	struct timeval	 tv = { SHUTDOWN_FLUSH_SEC, 0 };

	imap_drain();
	evtimer_set(&ev_shutdown, imap_shutdown_done, NULL);
	evtimer_add(&ev_shutdown, &tv);
	/* the last session's end may exit the worker */
	TAILQ_FOREACH_SAFE(s, &imap_sessions, entry, next)
		session_shutdown(s);
}

static void
imap_shutdown_done(int fd, short event, void *arg)
{
	struct session	*s;

	while ((s = TAILQ_FIRST(&imap_sessions)) != NULL)
		session_close(s, s->reason != NULL ? s->reason : "shutdown");
	imsgbuf_flush(&iev_parent.ibuf);
	exit(0);
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
caps_build(struct imap_server *srv, int tls, char *caps, size_t len)
{
	struct server_conf	*sc = srv->conf;
	char			 tokens[CAPS_MAX_LEN], *p, *tok;
	const char		*base = sc->imap_capabilities;
	int			 only = !tls && sc->starttls == STARTTLS_ONLY;

	/* auto: the backend's list once learned, today's default before */
	if (caps_auto(sc))
		base = srv->learned[0] != '\0' ? srv->learned :
		    IMAP_DEFAULT_CAPS;
	if (strlcpy(tokens, base, sizeof(tokens)) >= sizeof(tokens))
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
	caps_build(srv, 0, srv->caps, sizeof(srv->caps));
	caps_build(srv, 1, srv->caps_tls, sizeof(srv->caps_tls));
}

/* imap_capabilities auto: the auth process learned a backend's list */
static int
caps_learned(struct imsg *imsg)
{
	struct auth_caps	 ac;
	struct imap_server	*srv;
	const char		*tok;
	size_t			 n;

	if (imsg_get_data(imsg, &ac, sizeof(ac)) == -1 ||
	    memchr(ac.caps, '\0', sizeof(ac.caps)) == NULL)
		return (-1);
	for (tok = ac.caps; *tok != '\0'; tok += n + (tok[n] == ' '))
		if (!caps_atom(tok, n = strcspn(tok, " ")))
			return (-1);
	TAILQ_FOREACH(srv, &imap_servers, entry)
		if (srv->conf->id == ac.server_id && caps_auto(srv->conf)) {
			strlcpy(srv->learned, ac.caps, sizeof(srv->learned));
			server_caps(srv);
		}
	return (0);
}

/*
 * Listeners and accept.
 */

static void
listeners_start(void)
{
	struct imap_listener	*l;

	if (imap_draining)
		return;
	started = listening = 1;
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

	if (!listening || holding)
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

	if (listening && !holding && admission != ADMIT_PAUSE)
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

	if (holding)
		return;
	log_select(0);
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
	/* a client that left while queued is none: no session, no worker */
	if (conn_gone(cfd)) {
		close(cfd);
		return;
	}
	if (admission != ADMIT_SERVE ||
	    (imap_conf->isolation == ISOLATION_SHARED &&
	    imap_nsessions >= imap_conf->worker_connections)) {
		imap_refuse(cfd);
		return;
	}
	/*
	 * Connection mode: the worker is spent on this client only once
	 * the auth process admitted it (conn_spend()); until then it
	 * reads no byte of it and takes no other, and a refusal leaves it
	 * a spare.
	 */
	if (imap_conf->isolation == ISOLATION_CONNECTION)
		listeners_hold(1);
	else
		imsgev_compose(&iev_parent, IMSG_CTL_ACCEPTED, 0, -1, NULL, 0);
	if (session_new(l->srv, cfd, &ss, len, l->lc->ssl,
	    l->lc->proxy_protocol) == -1) {
		close(cfd);
		if (imap_conf->isolation == ISOLATION_CONNECTION)
			conn_unspent();
		else
			session_gone();
	}
}

/*
 * The connection was closed or reset before we accepted it (a burst of
 * connects dropped at once): nothing was read from it, nothing is kept.
 */
static int
conn_gone(int fd)
{
	char	 b;
	ssize_t	 n;

	n = recv(fd, &b, 1, MSG_PEEK | MSG_DONTWAIT);
	return (n == 0 || (n == -1 && errno != EAGAIN &&
	    errno != EWOULDBLOCK && errno != EINTR));
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
 * Admission.  Only the auth process sees every worker's clients, so it
 * keeps the limits on them: limit_conn_per_ip, limit_prelogin_per_ip,
 * limit_conn_rate.  Until it answers, the client is not read.  With
 * no auth process (it is being restarted) the client goes on and is
 * counted once the new one is there.
 */
void
conn_admit_ask(struct session *s)
{
	struct server_conf	*sc = s->conf;

	/* shared mode told the parent at accept */
	if (imap_conf->isolation == ISOLATION_SHARED)
		s->spent = 1;
	if (sc->limit_conn_per_ip == 0 && sc->limit_prelogin_per_ip == 0 &&
	    sc->limit_conn_rate == 0) {
		conn_admitted(s);
		return;
	}
	if (++conn_next_id == 0)
		conn_next_id = 1;
	s->conn_id = conn_next_id;
	if (iev_auth == NULL) {
		conn_admitted(s);
		return;
	}
	s->state = S_ADMIT;
	session_timer(s, s->conf->timeout_ms);
	conn_send(s, 0);
	session_update(s);
}

/*
 * listen ... proxy_protocol: the header comes before the admission
 * (the limits count the address it gives), and may take the server's
 * timeout; a worker of connection mode does not keep the others from
 * accepting that long: it is the client's from now on.
 */
void
conn_take(struct session *s)
{
	if (imap_conf->isolation == ISOLATION_SHARED)
		s->spent = 1;
	else
		conn_spend(s);
}

static void
conn_admitted(struct session *s)
{
	conn_spend(s);
	session_begin(s);
}

/*
 * Connection mode: this worker is the client's now.  One client per
 * worker: nobody else may ever reach this one, and the parent forks
 * another spare.
 */
static void
conn_spend(struct session *s)
{
	if (s->spent)
		return;
	s->spent = 1;
	holding = 0;
	listeners_stop();
	imsgev_compose(&iev_parent, IMSG_CTL_ACCEPTED, 0, -1, NULL, 0);
}

/* connection mode: a client refused before it was served is gone */
void
conn_unspent(void)
{
	if (imap_draining && imap_nsessions == 0) {
		imsgbuf_flush(&iev_parent.ibuf);
		exit(0);
	}
	listeners_hold(0);
}

/* stop accepting while a client awaits admission, or go on */
static void
listeners_hold(int hold)
{
	struct imap_listener	*l;

	holding = hold;
	if (!listening)
		return;
	TAILQ_FOREACH(l, &listeners, entry) {
		if (hold) {
			event_del(&l->ev);
			evtimer_del(&l->ev_pause);
		} else if (admission != ADMIT_PAUSE)
			event_add(&l->ev, NULL);
	}
}

static void
conn_send(struct session *s, int recount)
{
	struct auth_conn	 c;

	memset(&c, 0, sizeof(c));
	c.id = s->conn_id;
	c.server_id = s->conf->id;
	c.recount = recount;
	c.prelogin = !s->conn_login;
	strlcpy(c.client_ip, s->client_ip, sizeof(c.client_ip));
	imsgev_compose(iev_auth, IMSG_AUTH_CONN_OPEN, 0, -1, &c, sizeof(c));
}

static void
conn_verdict(struct imsg *imsg)
{
	static const struct {
		const char	*bye;
		const char	*reason;
	} refusals[] = {
		[CONN_LIMIT_PER_IP] = { "too many connections from your "
		    "address", "limit_conn_per_ip" },
		[CONN_LIMIT_PRELOGIN] = { "too many unauthenticated "
		    "connections from your address", "limit_prelogin_per_ip" },
		[CONN_LIMIT_RATE] = { "too many new connections from your "
		    "address, try again later", "limit_conn_rate" },
	};
	struct auth_conn_verdict	 v;
	struct session			*s;

	if (imsg_get_data(imsg, &v, sizeof(v)) == -1 ||
	    v.limit > CONN_LIMIT_RATE)
		fatalx("%s: bad message", __func__);
	TAILQ_FOREACH(s, &imap_sessions, entry)
		if (s->state == S_ADMIT && s->conn_id == v.id)
			break;
	if (s == NULL)
		return;
	log_select(s->conf->id);
	if (v.limit == CONN_ADMIT) {
		conn_admitted(s);
		return;
	}
	/* not counted: nothing to take back when it closes */
	s->conn_id = 0;
	/* a TLS client would take a line in the clear for garbage */
	if (!s->implicit_tls)
		client_reply(s, "* BYE [UNAVAILABLE] %s", refusals[v.limit].bye);
	session_finish(s, refusals[v.limit].reason);
}

/* logged in: it counts no more for limit_prelogin_per_ip */
void
conn_logged_in(struct session *s)
{
	if (s->conn_id != 0 && iev_auth != NULL)
		imsgev_compose(iev_auth, IMSG_AUTH_CONN_LOGIN, 0, -1,
		    &s->conn_id, sizeof(s->conn_id));
	s->conn_login = 1;
}

/* the session ends: the auth process counts one less */
void
conn_release(struct session *s)
{
	if (s->conn_id != 0 && iev_auth != NULL)
		imsgev_compose(iev_auth, IMSG_AUTH_CONN_CLOSE, 0, -1,
		    &s->conn_id, sizeof(s->conn_id));
	s->conn_id = 0;
}

/*
 * Servers told apart by SNI share one listening socket (the parent
 * gave each a copy); the first server's listener serves them all.
 */
static int
sni_listen_dup(struct listen_conf *lc)
{
	struct listen_conf	*l;

	TAILQ_FOREACH(l, &imap_conf->listens, entry) {
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

#ifdef REGRESS_TRIGGERS
/*
 * Test-only (obj/regress/imaprelayd-regress): what a compromised
 * worker could send its parent or the auth process.  Neither may exit
 * for it; the parent kills the worker and forgets its sessions.
 */
static void
regress_raw(struct imsgev *iev)
{
	struct imsg_hdr	 hdr;

	/* a header whose length is shorter than the header itself */
	memset(&hdr, 0, sizeof(hdr));
	hdr.type = IMSG_CTL_ACCEPTED;
	hdr.len = 1;
	imsgbuf_flush(&iev->ibuf);
	if (write(iev->ibuf.fd, &hdr, sizeof(hdr)) == -1)
		log_warn("%s", __func__);
}

static int
regress_forge(const char *what, struct imsgev *iev)
{
	uint32_t	 junk = 0;
	int		 i;

	if (strcmp(what, "unknown") == 0)
		imsgev_compose(iev, 9999, 0, -1, NULL, 0);
	else if (strcmp(what, "accepted50") == 0)
		for (i = 0; i < 50; i++)
			imsgev_compose(iev, IMSG_CTL_ACCEPTED, 0, -1, NULL, 0);
	else if (strcmp(what, "closed2") == 0)
		for (i = 0; i < 2; i++)
			imsgev_compose(iev, IMSG_CTL_CLOSED, 0, -1, NULL, 0);
	else if (strcmp(what, "payload") == 0)
		imsgev_compose(iev, IMSG_CTL_ACCEPTED, 0, -1, &junk,
		    sizeof(junk));
	else if (strcmp(what, "garbage") == 0)
		regress_raw(iev);
	else
		return (-1);
	imsgbuf_flush(&iev->ibuf);
	return (0);
}

/* "imsg-<what>" to the parent, "auth-<what>" to auth, else sandbox.c's */
int
imap_regress_try(const char *what, char *buf, size_t len)
{
	struct imsgev	*iev = NULL;
	const char	*forged = NULL;

	if (strncmp(what, "imsg-", 5) == 0) {
		iev = &iev_parent;
		forged = what + 5;
	} else if (strncmp(what, "auth-", 5) == 0) {
		iev = iev_auth;
		forged = what + 5;
	}
	if (forged == NULL)
		return (sandbox_regress_try(what, buf, len));
	if (iev == NULL || regress_forge(forged, iev) == -1) {
		snprintf(buf, len, "%s refused: unknown trigger", what);
		return (-1);
	}
	snprintf(buf, len, "%s sent", what);
	return (0);
}
#endif /* REGRESS_TRIGGERS */
