/*
 * Copyright (c) 2026 The imaprelayd authors
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
 * imap_capabilities auto: the auth process, the one process every
 * worker talks to, learns what a server's backend advertises before
 * login and tells every worker, so that the greeting and CAPABILITY
 * hide none of the backend's features (ENABLE, IDLE, ...).
 *
 * A probe connects without blocking, reads the greeting's
 * [CAPABILITY ...] (or asks CAPABILITY when the greeting has none),
 * says LOGOUT and closes, all within CAPS_PROBE_MS.  The backend is the
 * server's proxy_pass, or for auth_http the first Auth-Server seen.
 * Every CAPS_REFRESH_SEC the probes run again; a list that changed
 * goes to every worker, and every new worker channel gets the lists
 * known so far.  What the proxy does itself before login (AUTH=,
 * STARTTLS, LOGINDISABLED, SASL-IR, LITERAL+) is dropped: the worker
 * adds its own.
 */

#include <sys/types.h>
#include <sys/queue.h>
#include <sys/socket.h>

#include <errno.h>
#include <event.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <unistd.h>

#include "imaprelayd.h"

#define CAPS_PROBE_MS		5000
#define CAPS_REFRESH_SEC	300
#define CAPS_LINE_MAX		4096

struct caps_probe {
	TAILQ_ENTRY(caps_probe)	 entry;
	uint32_t		 server_id;
	struct host_addrs	 addrs;		/* tried in turn */
	int			 cur;
	int			 connected;	/* the greeting began */
	char			 name[ADDR_STR_LEN];
	char			 caps[CAPS_MAX_LEN];	/* learned, filtered */
	int			 learned;
	int			 fd;		/* -1: idle */
	int			 asked;		/* CAPABILITY sent */
	struct event		 ev;
	struct event		 timer;
	char			 buf[CAPS_LINE_MAX];
	size_t			 len;
};
TAILQ_HEAD(caps_probe_list, caps_probe);

static struct caps_probe_list	 probes = TAILQ_HEAD_INITIALIZER(probes);
static struct event		 ev_refresh;
static int			 refresh_armed;
static void			(*caps_sendall)(struct auth_caps *);

static void	probe_start(struct caps_probe *);
static void	probe_next(struct caps_probe *, const char *);
static void	probe_event(int, short, void *);
static void	probe_timeout(int, short, void *);
static void	probe_end(struct caps_probe *, const char *);
static int	probe_line(struct caps_probe *, char *);
static void	probe_learn(struct caps_probe *, const char *);
static void	caps_refresh(int, short, void *);

/* "" or "auto": the server learns its capabilities from the backend */
int
caps_auto(const struct server_conf *sc)
{
	return (sc->imap_capabilities[0] == '\0' ||
	    strcasecmp(sc->imap_capabilities, "auto") == 0);
}

/* an IMAP atom: what a capability name may be made of */
int
caps_atom(const char *tok, size_t len)
{
	size_t	 i;

	if (len == 0)
		return (0);
	for (i = 0; i < len; i++)
		if ((unsigned char)tok[i] <= 0x20 ||
		    (unsigned char)tok[i] >= 0x7f ||
		    strchr("(){%*\"\\]", tok[i]) != NULL)
			return (0);
	return (1);
}

/*
 * The configuration took effect (start, or a new auth process): probe
 * the proxy_pass backend of every server that learns.  send is how a
 * list reaches every worker.
 */
void
caps_init(struct config *conf, void (*send)(struct auth_caps *))
{
	struct server_conf	*sc;

	caps_sendall = send;
	TAILQ_FOREACH(sc, &conf->servers, entry) {
		if (!caps_auto(sc) || !sc->proxy_pass_set ||
		    sc->auth_http_set)
			continue;
		caps_backend(sc, &sc->proxy_pass, 0);
	}
}

/*
 * A backend of server sc (its proxy_pass addresses, or an
 * Auth-Server): probed if the server learns and has none yet.
 * Backends spoken to over TLS from the first byte are not probed:
 * their list stays the default.
 */
void
caps_backend(struct server_conf *sc, const struct host_addrs *ha, int tls)
{
	struct caps_probe	*p;

	if (!caps_auto(sc) || ha->n < 1 || ha->n > HOST_ADDRS_MAX)
		return;
	TAILQ_FOREACH(p, &probes, entry)
		if (p->server_id == sc->id)
			return;
	if (tls || sc->proxy_ssl == PTLS_ON) {
		log_info("imap_capabilities auto: server %s: a TLS backend "
		    "is not probed, the default list stays",
		    sc->server_name);
		return;
	}
	if ((p = calloc(1, sizeof(*p))) == NULL)
		fatal(__func__);
	p->server_id = sc->id;
	p->addrs = *ha;
	p->fd = -1;
	evtimer_set(&p->timer, probe_timeout, p);
	TAILQ_INSERT_TAIL(&probes, p, entry);
	probe_start(p);
	if (!refresh_armed) {
		struct timeval	 tv = { CAPS_REFRESH_SEC, 0 };

		evtimer_set(&ev_refresh, caps_refresh, NULL);
		evtimer_add(&ev_refresh, &tv);
		refresh_armed = 1;
	}
}

/* a new worker channel: every list learned so far */
void
caps_send_known(void (*send)(void *, struct auth_caps *), void *arg)
{
	struct caps_probe	*p;
	struct auth_caps	 ac;

	TAILQ_FOREACH(p, &probes, entry) {
		if (!p->learned)
			continue;
		memset(&ac, 0, sizeof(ac));
		ac.server_id = p->server_id;
		strlcpy(ac.caps, p->caps, sizeof(ac.caps));
		send(arg, &ac);
	}
}

static void
caps_refresh(int fd, short event, void *arg)
{
	struct caps_probe	*p;
	struct timeval		 tv = { CAPS_REFRESH_SEC, 0 };

	TAILQ_FOREACH(p, &probes, entry)
		if (p->fd == -1)
			probe_start(p);
	evtimer_add(&ev_refresh, &tv);
}

static void
probe_start(struct caps_probe *p)
{
	struct timeval	 tv = { CAPS_PROBE_MS / 1000,
			    (CAPS_PROBE_MS % 1000) * 1000 };

	struct sockaddr	*sa = (struct sockaddr *)&p->addrs.ss[p->cur];

	p->len = 0;
	p->asked = 0;
	p->connected = 0;
	sockaddr_str(sa, p->name, sizeof(p->name));
	if ((p->fd = bconn_socket(sa, p->addrs.len[p->cur], 0)) == -1) {
		probe_next(p, strerror(errno));
		return;
	}
	/* readable once connected and greeted; a refusal reads an error */
	event_set(&p->ev, p->fd, EV_READ | EV_PERSIST, probe_event, p);
	event_add(&p->ev, NULL);
	evtimer_add(&p->timer, &tv);
}

/* not connected: the configured name's next address, if any */
static void
probe_next(struct caps_probe *p, const char *why)
{
	if (p->connected || p->cur + 1 >= p->addrs.n) {
		probe_end(p, why);
		p->cur = 0;
		return;
	}
	log_debug("imap_capabilities auto: backend %s: %s, trying the next "
	    "address", p->name, why);
	probe_end(p, NULL);
	p->cur++;
	probe_start(p);
}

static void
probe_timeout(int fd, short event, void *arg)
{
	probe_end(arg, "timeout");
}

/* why: NULL when the list was read, else why it was not */
static void
probe_end(struct caps_probe *p, const char *why)
{
	if (p->fd != -1) {
		event_del(&p->ev);
		close(p->fd);
		p->fd = -1;
	}
	evtimer_del(&p->timer);
	if (why != NULL)
		log_warnx("imap_capabilities auto: backend %s: %s%s", p->name,
		    why, p->learned ? ", the last list stays" :
		    ", the default list stays until it answers");
}

static void
probe_event(int fd, short event, void *arg)
{
	struct caps_probe	*p = arg;
	char			*lf, line[CAPS_LINE_MAX];
	ssize_t			 n;
	size_t			 len;

	n = read(fd, p->buf + p->len, sizeof(p->buf) - 1 - p->len);
	if (n == -1 && (errno == EAGAIN || errno == EINTR))
		return;
	if (n == -1) {
		probe_next(p, strerror(errno));
		return;
	}
	if (n == 0) {
		probe_end(p, "connection closed");
		return;
	}
	p->connected = 1;
	p->len += n;
	while ((lf = memchr(p->buf, '\n', p->len)) != NULL) {
		len = lf - p->buf + 1;
		memcpy(line, p->buf, len);
		line[len] = '\0';
		memmove(p->buf, p->buf + len, p->len - len);
		p->len -= len;
		if (probe_line(p, line) == 1)
			return;
	}
	if (p->len == sizeof(p->buf) - 1)
		probe_end(p, "line too long");
}

/* 1: the probe is over */
static int
probe_line(struct caps_probe *p, char *line)
{
	static const char	 logout[] = "c1 LOGOUT\r\n";
	static const char	 ask[] = "c0 CAPABILITY\r\n";
	const char		*list = NULL;
	char			*end;

	line[strcspn(line, "\r\n")] = '\0';
	if (!p->asked) {
		if (strncasecmp(line, "* OK ", 5) != 0) {
			probe_end(p, "no greeting");
			return (1);
		}
		if (strncasecmp(line + 5, "[CAPABILITY ", 12) == 0 &&
		    (end = strchr(line + 17, ']')) != NULL) {
			*end = '\0';
			list = line + 17;
		}
	} else if (strncasecmp(line, "* CAPABILITY ", 13) == 0)
		list = line + 13;
	else if (strncasecmp(line, "c0 ", 3) == 0) {
		probe_end(p, "no CAPABILITY answer");
		return (1);
	} else
		return (0);
	if (list == NULL) {
		/* the greeting had none: ask */
		p->asked = 1;
		if (write(p->fd, ask, strlen(ask)) != (ssize_t)strlen(ask)) {
			probe_end(p, "write failed");
			return (1);
		}
		return (0);
	}
	probe_learn(p, list);
	/* a courtesy: the list is ours whether or not it arrives */
	if (write(p->fd, logout, strlen(logout)) == -1)
		log_debug("%s: %s: %s", __func__, p->name, strerror(errno));
	probe_end(p, NULL);
	return (1);
}

/* what the proxy does itself before login is not the backend's */
static int
caps_proxy_own(const char *tok, size_t len)
{
	static const char	*own[] = { "STARTTLS", "LOGINDISABLED",
				    "SASL-IR", "LITERAL+", "LITERAL-",
				    "XCLIENT", NULL };
	int			 i;

	if (len > 5 && strncasecmp(tok, "AUTH=", 5) == 0)
		return (1);
	for (i = 0; own[i] != NULL; i++)
		if (len == strlen(own[i]) && strncasecmp(tok, own[i], len) == 0)
			return (1);
	return (0);
}

static void
probe_learn(struct caps_probe *p, const char *list)
{
	struct auth_caps	 ac;
	char			 caps[CAPS_MAX_LEN];
	const char		*tok;
	size_t			 len;

	caps[0] = '\0';
	for (tok = list; *tok != '\0'; tok += len) {
		tok += strspn(tok, " ");
		if ((len = strcspn(tok, " ")) == 0)
			break;
		if (!caps_atom(tok, len) || caps_proxy_own(tok, len))
			continue;
		if (strlen(caps) + len + 2 > sizeof(caps))
			break;
		if (caps[0] != '\0')
			strlcat(caps, " ", sizeof(caps));
		strncat(caps, tok, len);
	}
	if (caps[0] == '\0') {
		log_warnx("imap_capabilities auto: backend %s: an empty list, "
		    "ignored", p->name);
		return;
	}
	if (p->learned && strcmp(p->caps, caps) == 0)
		return;
	strlcpy(p->caps, caps, sizeof(p->caps));
	p->learned = 1;
	log_info("imap_capabilities auto: backend %s: %s", p->name, caps);
	memset(&ac, 0, sizeof(ac));
	ac.server_id = p->server_id;
	strlcpy(ac.caps, caps, sizeof(ac.caps));
	caps_sendall(&ac);
}
