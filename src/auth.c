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
 * The auth process: imap workers ask it whether a login is good and
 * where the user's backend is; it asks the auth_http service (nginx's
 * protocol) with the libcurl multi interface, driven by libevent, so
 * that any number of requests are in flight and connections to the
 * service are kept alive between them.  It never resolves a name: the
 * parent resolved the auth_http host and CURLOPT_RESOLVE pins it.
 *
 * For a good login it then connects to the backend (auth_backend.c)
 * and hands the socket to the worker with the answer: workers open no
 * connection.  A server with proxy_pass and no auth_http asks only for
 * that connection (IMSG_AUTH_BACKEND).  The list of backends stays
 * here until the worker saw a greeting it takes, so that one that says
 * BYE can be followed by the next (IMSG_AUTH_NEXT).
 */

#include <sys/types.h>
#include <sys/queue.h>
#include <sys/socket.h>
#include <sys/stat.h>

#include <netinet/in.h>
#include <arpa/inet.h>

#include <ctype.h>
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <curl/curl.h>
#include "compat/curl_features.h"

#include "imaprelayd.h"
#include "authhttp.h"
#include "limit.h"

#define AUTH_MAX_WAIT_ROUNDS	16	/* Auth-Status: WAIT re-queries */
#define AUTH_MAX_BODY		65536	/* response body bytes discarded */
#define AUTH_MAXCONNECTS	64	/* idle connections kept alive */
#define AUTH_MAX_CA		(4 * 1024 * 1024)
/* the NO of limit_auth_fail; RFC 5530: a temporary failure */
#define LIMIT_AUTH_FAIL_TEXT	"[UNAVAILABLE] too many failed logins, " \
				"try again later"

/* one imap worker's channel */
struct auth_chan {
	TAILQ_ENTRY(auth_chan)	 entry;
	struct imsgev		 iev;
	uint32_t		 worker_id;
};
TAILQ_HEAD(auth_chan_list, auth_chan);

/*
 * Where a login stands in the auth process: asking the auth service,
 * connecting to the backend it named (or to proxy_pass), or handed:
 * the worker has the socket and may still ask for the next backend,
 * if the one it got greets with BYE, until it says it is done.
 */
enum auth_phase {
	REQ_HTTP = 0,
	REQ_CONNECT,
	REQ_HANDED,
};

/* one login question, from its IMSG_AUTH_REQUEST to its answer */
struct auth_req {
	TAILQ_ENTRY(auth_req)	 entry;
	struct auth_chan	*chan;
	struct auth_request	 hdr;		/* lens, ids, client ip */
	char			*user;		/* NUL-terminated copies */
	char			*pass;
	char			*salt;
	char			*subject;	/* client certificate's */
	char			*issuer;
	char			*cert;		/* its PEM, not escaped */
	struct timespec		 start;
	unsigned int		 rounds;	/* WAIT answers so far */
	struct event		 waitev;
	int			 waiting;
	int			 limited;	/* limit_auth_fail: refuse */
	int			 delayed;	/* auth_fail_delay: held */
	struct auth_result	 held;		/* ... this answer */
	/* the transfer in progress */
	CURL			*easy;
	struct curl_slist	*headers;
	struct curl_slist	*resolve;
	struct authhttp_reply	 reply;
	int			 hdr_error;
	size_t			 body;
	char			 service[NAME_MAX_LEN + 16 +
				    sizeof(((struct auth_url *)0)->addrs)];
	unsigned int		 timeout_ms;
	char			 errbuf[CURL_ERROR_SIZE];
	/* the backend, once the login is good (auth_backend.c) */
	enum auth_phase		 phase;
	struct bconn		 bc;
	struct auth_result	 ok;		/* the answer, less the socket */
	unsigned int		 handed;	/* sockets given so far */
	struct event		 expire;	/* REQ_HANDED: no NEXT after it */
	int			 expiring;
};
TAILQ_HEAD(auth_req_list, auth_req);

/* a socket libcurl asked us to watch */
struct auth_sock {
	struct event		 ev;
	curl_socket_t		 fd;
};

static struct imsgev		 iev_parent;
static struct config		*conf;		/* the one in effect */
static struct config		*newconf;	/* the one being received */
static struct auth_chan_list	 chans = TAILQ_HEAD_INITIALIZER(chans);
static struct auth_req_list	 reqs = TAILQ_HEAD_INITIALIZER(reqs);
static CURLM			*multi;
static struct event		 curl_timer;
static int			 draining;
#ifdef HAVE_CURL_BLOBS
static struct curl_blob		 ca_blob;	/* read before the chroot */
#endif

static int	auth_dispatch_parent(struct imsgev *, struct imsg *);
static int	auth_dispatch_imap(struct imsgev *, struct imsg *);
static void	auth_imap_gone(struct imsgev *);
static void	auth_imap_bad(struct imsgev *, struct imsg *);
static void	auth_chan_new(int, uint32_t);
static void	auth_chan_free(struct auth_chan *);
static void	auth_check_drain(void);
static void	auth_caps_all(struct auth_caps *);
static void	auth_caps_chan(void *, struct auth_caps *);
static struct auth_req *auth_req_new(struct auth_chan *);
static int	auth_request_recv(struct auth_chan *, struct imsg *);
static int	auth_cancel_recv(struct auth_chan *, struct imsg *);
static int	auth_backend_recv(struct auth_chan *, struct imsg *);
static int	auth_next_recv(struct auth_chan *, struct imsg *);
static void	auth_connect(struct auth_req *, struct auth_result *,
		    const struct host_addrs *, const char *);
static void	auth_connected(struct bconn *, int);
static void	auth_req_expire(int, short, void *);
static void	auth_req_start(struct auth_req *);
static int	auth_req_limited(struct auth_req *);
static void	auth_fail_count(struct auth_req *, int);
static int	auth_fail_delay(struct auth_req *, struct auth_result *);
static struct server_conf *limit_fail_conf(struct limit_fail_conf *,
		    uint32_t);
static int	auth_conn_recv(struct auth_chan *, struct imsg *);
static int	auth_conn_rate(struct server_conf *, const char *);
static int	auth_conn_close_recv(struct auth_chan *, struct imsg *);
static int	auth_conn_login_recv(struct auth_chan *, struct imsg *);
static void	limit_client_key(uint32_t, const char *, char *, size_t);
static void	limit_fail_full(int, const struct limit_fail_conf *);
static int	auth_req_issue(struct auth_req *);
static int	auth_req_setopt(struct auth_req *, struct auth_url *);
static int	auth_req_headers(struct auth_req *, struct server_conf *);
static int	hdr_add_escaped(struct curl_slist **, const char *,
		    const char *, size_t);
static int	ccert_headers(struct curl_slist **, struct auth_req *);
static char	*tail_copy(const uint8_t *, size_t);
static const char *user_log(const char *, char *, size_t);
static void	auth_req_done(struct auth_req *, CURLcode);
static void	auth_req_wait(int, short, void *);
static void	auth_req_cleanup(struct auth_req *);
static void	auth_req_free(struct auth_req *);
static void	auth_reply(struct auth_req *, struct auth_result *,
		    const char *, const char *, const char *);
static void	auth_send_result(struct auth_req *, struct auth_result *,
		    const char *, const char *, const char *, int);
static void	auth_result_send(struct auth_chan *, struct auth_result *,
		    const char *, const char *, const char *, int);
static void	auth_unavailable(struct auth_req *, const char *, ...)
		    __attribute__((format(printf, 2, 3)));
static int	hdr_add(struct curl_slist **, const char *, const char *);
static int	hdr_value_ok(const char *, size_t);
static int	tail_value_ok(const uint8_t *, size_t);
static int	ccert_request_ok(const struct auth_request *,
		    const uint8_t *);
static void	slist_free_wipe(struct curl_slist *);
static void	load_ca(void);
#ifdef HAVE_CURL_BLOBS
static int	atls_setopt(struct auth_req *);
#endif
static int	curl_sock_cb(CURL *, curl_socket_t, int, void *, void *);
static int	curl_timer_cb(CURLM *, long, void *);
static void	curl_sock_event(int, short, void *);
static void	curl_timer_event(int, short, void *);
static void	curl_check_info(void);
static size_t	curl_header_cb(char *, size_t, size_t, void *);
static size_t	curl_body_cb(char *, size_t, size_t, void *);

/* the parent is trusted and outlives us; workers are not */
static const struct proc_peer	 peer_parent = {
	"parent", auth_dispatch_parent, NULL, NULL, 1
};
/* backend sockets go to workers; one a worker sends is closed unread */
static const struct proc_peer	 peer_imap = {
	"imap", auth_dispatch_imap, auth_imap_gone, auth_imap_bad, 1
};

/*
 * unix_paths: the auth_http unix: sockets of the configuration, from
 * the parent's command line.  A socket outside the chroot could not be
 * reached, so with any the process stays out of it; the sandbox still
 * denies every file and lets only those paths be connected to.
 */
void
auth_main(int debug, int verbose, const char *user, char *const *unix_paths)
{
	int	 dochroot = unix_paths[0] == NULL;

	log_procinit("auth");

	/* libcurl reads its own files (and the CA bundle) only here */
	if (curl_global_init(CURL_GLOBAL_DEFAULT) != 0)
		fatalx("curl_global_init failed");
	load_ca();

	if (!dochroot && geteuid() == 0)
		log_info("auth_http %s: the auth process is not chrooted",
		    unix_paths[0]);
	proc_privdrop(user, "auth", dochroot);

	event_init();
	signal(SIGPIPE, SIG_IGN);
	if ((multi = curl_multi_init()) == NULL)
		fatalx("curl_multi_init failed");
	curl_multi_setopt(multi, CURLMOPT_SOCKETFUNCTION, curl_sock_cb);
	curl_multi_setopt(multi, CURLMOPT_TIMERFUNCTION, curl_timer_cb);
	curl_multi_setopt(multi, CURLMOPT_MAXCONNECTS, (long)AUTH_MAXCONNECTS);
	evtimer_set(&curl_timer, curl_timer_event, NULL);

	proc_parent_channel(&iev_parent, &peer_parent);
	sandbox_auth(unix_paths);

	event_dispatch();
	fatalx("event loop ended");
}

/*
 * The CA bundle libcurl would read lazily, loaded now: after the chroot
 * it is out of reach.  Without it https verification fails, loudly.
 */
static void
load_ca(void)
{
#ifdef HAVE_CURL_BLOBS
	curl_version_info_data	*vi;
	struct stat		 st;
	const char		*path;
	char			*buf;
	int			 fd;

	vi = curl_version_info(CURLVERSION_NOW);
	if ((path = vi->cainfo) == NULL)
		return;
	if ((fd = open(path, O_RDONLY)) == -1) {
		log_debug("%s: %s: %s", __func__, path, strerror(errno));
		return;
	}
	if (fstat(fd, &st) == -1 || st.st_size <= 0 ||
	    st.st_size > AUTH_MAX_CA || (buf = malloc(st.st_size)) == NULL) {
		close(fd);
		return;
	}
	if (read(fd, buf, st.st_size) != st.st_size) {
		log_debug("%s: short read of %s", __func__, path);
		free(buf);
		close(fd);
		return;
	}
	close(fd);
	ca_blob.data = buf;
	ca_blob.len = st.st_size;
	ca_blob.flags = CURL_BLOB_NOCOPY;
#endif
}

/* the parent: configuration, worker channels, drain, verbosity */
static int
auth_dispatch_parent(struct imsgev *iev, struct imsg *imsg)
{
	int		 cfd, verbose;
	uint32_t	 id;

	switch (imsg_get_type(imsg)) {
	case IMSG_CFG_GLOBAL:
	case IMSG_CFG_SERVER:
	case IMSG_CFG_AUTH_HEADER:
	case IMSG_CFG_LISTEN:
	case IMSG_CFG_AUTH_TLS:
	case IMSG_CFG_LOG:
	case IMSG_CFG_DONE:
		if (newconf == NULL && (newconf = config_new()) == NULL)
			fatal("config_new");
		if (config_recv(newconf, imsg) == 1) {
			/* requests keep no pointer into a config */
			if (conf != NULL)
				config_free(conf);
			conf = newconf;
			newconf = NULL;
			caps_init(conf, auth_caps_all);
			imsgev_compose(iev, IMSG_CTL_READY, 0, -1, NULL, 0);
		}
		break;
	case IMSG_CTL_AUTH_CHANNEL:
		cfd = imsg_get_fd(imsg);
		if (imsg_get_data(imsg, &id, sizeof(id)) == -1)
			id = imsg_get_peerid(imsg);
		if (cfd == -1)
			fatalx("auth channel without a descriptor");
		auth_chan_new(cfd, id);
		break;
	case IMSG_CTL_DRAIN:
		draining = 1;
		auth_check_drain();
		break;
	case IMSG_CTL_LOG_FD:
		log_recvfd(imsg);
		break;
	case IMSG_CTL_VERBOSE:
		if (imsg_get_data(imsg, &verbose, sizeof(verbose)) == -1)
			return (-1);
		log_setverbose(verbose);
		break;
	default:
		return (-1);
	}
	return (0);
}

static void
auth_chan_new(int fd, uint32_t id)
{
	struct auth_chan	*ch;

	if ((ch = calloc(1, sizeof(*ch))) == NULL)
		fatal("%s", __func__);
	ch->worker_id = id;
	set_nonblock(fd);
	proc_channel(&ch->iev, fd, &peer_imap, ch);
	TAILQ_INSERT_TAIL(&chans, ch, entry);
	log_debug("%s: worker %u", __func__, id);
	caps_send_known(auth_caps_chan, ch);
}

/* imap_capabilities auto: a list learned or changed, for every worker */
static void
auth_caps_all(struct auth_caps *ac)
{
	struct auth_chan	*ch;

	TAILQ_FOREACH(ch, &chans, entry)
		auth_caps_chan(ch, ac);
}

static void
auth_caps_chan(void *arg, struct auth_caps *ac)
{
	struct auth_chan	*ch = arg;

	imsgev_compose(&ch->iev, IMSG_AUTH_CAPS, 0, -1, ac, sizeof(*ac));
}

/* the worker went away: its questions have no one left to answer */
static void
auth_chan_free(struct auth_chan *ch)
{
	struct auth_req	*r, *next;

	TAILQ_FOREACH_SAFE(r, &reqs, entry, next)
		if (r->chan == ch)
			auth_req_free(r);
	limit_conn_drop(ch);
	TAILQ_REMOVE(&chans, ch, entry);
	imsgev_clear(&ch->iev);
	log_debug("%s: worker %u", __func__, ch->worker_id);
	free(ch);
	auth_check_drain();
}

static void
auth_check_drain(void)
{
	if (draining && TAILQ_EMPTY(&chans)) {
		log_debug("drained");
		exit(0);
	}
}

/* an imap worker; the functions log what they refuse */
static int
auth_dispatch_imap(struct imsgev *iev, struct imsg *imsg)
{
	struct auth_chan	*ch = iev->data;

	switch (imsg_get_type(imsg)) {
	case IMSG_AUTH_REQUEST:
		return (auth_request_recv(ch, imsg));
	case IMSG_AUTH_CANCEL:
		return (auth_cancel_recv(ch, imsg));
	case IMSG_AUTH_CONN_OPEN:
		return (auth_conn_recv(ch, imsg));
	case IMSG_AUTH_CONN_CLOSE:
		return (auth_conn_close_recv(ch, imsg));
	case IMSG_AUTH_CONN_LOGIN:
		return (auth_conn_login_recv(ch, imsg));
	case IMSG_AUTH_BACKEND:
		return (auth_backend_recv(ch, imsg));
	case IMSG_AUTH_NEXT:
		return (auth_next_recv(ch, imsg));
	default:
		return (-1);
	}
}

static void
auth_imap_gone(struct imsgev *iev)
{
	auth_chan_free(iev->data);
}

/*
 * A worker talks to clients; should one go astray, drop its channel
 * (and its limit_conn_per_ip counts) rather than the auth service of
 * every other worker.
 */
static void
auth_imap_bad(struct imsgev *iev, struct imsg *imsg)
{
	struct auth_chan	*ch = iev->data;

	if (imsg == NULL)
		log_warnx("worker %u: malformed imsg, channel dropped",
		    ch->worker_id);
	else
		log_warnx("worker %u: refused imsg %u (%zu bytes), channel "
		    "dropped", ch->worker_id, imsg_get_type(imsg),
		    imsg_get_len(imsg));
	/* the parent ends the worker: it has no auth channel left */
	imsgev_compose(&iev_parent, IMSG_CTL_WORKER_BAD, 0, -1,
	    &ch->worker_id, sizeof(ch->worker_id));
	auth_chan_free(ch);
}

static char *
tail_copy(const uint8_t *p, size_t len)
{
	char	*s;

	if ((s = malloc(len + 1)) == NULL)
		return (NULL);
	memcpy(s, p, len);
	s[len] = '\0';
	return (s);
}

/* a worker's string for a header line: terminated, printable ASCII */
static int
hdr_value_ok(const char *v, size_t size)
{
	size_t	 i;

	for (i = 0; i < size && v[i] != '\0'; i++)
		if ((unsigned char)v[i] < 0x20 || (unsigned char)v[i] >= 0x7f)
			return (0);
	return (i < size);
}

/* a header value in a tail: printable ASCII only */
static int
tail_value_ok(const uint8_t *v, size_t len)
{
	size_t	 i;

	for (i = 0; i < len; i++)
		if (v[i] < 0x20 || v[i] >= 0x7f)
			return (0);
	return (1);
}

/*
 * The client certificate fields of a request, its tail after the salt
 * given (the total length was checked): header-safe, sanely sized.
 */
static int
ccert_request_ok(const struct auth_request *hdr, const uint8_t *tail)
{
	if (hdr->subject_len > CCERT_FIELD_MAX ||
	    hdr->issuer_len > CCERT_FIELD_MAX || hdr->cert_len > TLS_PEM_MAX)
		return (0);
	if (!hdr_value_ok(hdr->ssl_verify, sizeof(hdr->ssl_verify)) ||
	    !hdr_value_ok(hdr->ssl_serial, sizeof(hdr->ssl_serial)) ||
	    !hdr_value_ok(hdr->ssl_fingerprint, sizeof(hdr->ssl_fingerprint)))
		return (0);
	return (tail_value_ok(tail, hdr->subject_len) &&
	    tail_value_ok(tail + hdr->subject_len, hdr->issuer_len));
}

/* -1: a malformed message, the channel is dropped */
static int
auth_request_recv(struct auth_chan *ch, struct imsg *imsg)
{
	struct auth_req		*r;
	const uint8_t		*p = imsg->data;
	size_t			 len = imsg_get_len(imsg);
	uint64_t		 tail;

	if (len < sizeof(r->hdr)) {
		log_warnx("%s: worker %u: short request", __func__,
		    ch->worker_id);
		return (-1);
	}
	r = auth_req_new(ch);
	memcpy(&r->hdr, p, sizeof(r->hdr));
	p += sizeof(r->hdr);
	tail = (uint64_t)r->hdr.user_len + r->hdr.pass_len + r->hdr.salt_len +
	    r->hdr.subject_len + r->hdr.issuer_len + r->hdr.cert_len;
	if (tail != len - sizeof(r->hdr) ||
	    memchr(r->hdr.client_ip, '\0', sizeof(r->hdr.client_ip)) == NULL ||
	    !hdr_value_ok(r->hdr.ssl_protocol, sizeof(r->hdr.ssl_protocol)) ||
	    !hdr_value_ok(r->hdr.ssl_cipher, sizeof(r->hdr.ssl_cipher)) ||
	    !hdr_value_ok(r->hdr.pp_addr, sizeof(r->hdr.pp_addr)) ||
	    !hdr_value_ok(r->hdr.pp_server_addr,
	    sizeof(r->hdr.pp_server_addr)) ||
	    !ccert_request_ok(&r->hdr, p + r->hdr.user_len + r->hdr.pass_len +
	    r->hdr.salt_len)) {
		log_warnx("%s: worker %u: invalid request", __func__,
		    ch->worker_id);
		explicit_bzero(imsg->data, len);
		free(r);
		return (-1);
	}
	r->user = tail_copy(p, r->hdr.user_len);
	r->pass = tail_copy(p + r->hdr.user_len, r->hdr.pass_len);
	r->salt = tail_copy(p + r->hdr.user_len + r->hdr.pass_len,
	    r->hdr.salt_len);
	p += r->hdr.user_len + r->hdr.pass_len + r->hdr.salt_len;
	r->subject = tail_copy(p, r->hdr.subject_len);
	r->issuer = tail_copy(p + r->hdr.subject_len, r->hdr.issuer_len);
	r->cert = tail_copy(p + r->hdr.subject_len + r->hdr.issuer_len,
	    r->hdr.cert_len);
	/* the copy in the imsg buffer is the only other one */
	explicit_bzero(imsg->data, len);
	if (r->user == NULL || r->pass == NULL || r->salt == NULL ||
	    r->subject == NULL || r->issuer == NULL || r->cert == NULL)
		fatal("%s", __func__);
	TAILQ_INSERT_TAIL(&reqs, r, entry);
	auth_req_start(r);
	return (0);
}

/* a request of ch, its strings still to be set, not yet in reqs */
static struct auth_req *
auth_req_new(struct auth_chan *ch)
{
	struct auth_req	*r;

	if ((r = calloc(1, sizeof(*r))) == NULL)
		fatal("%s", __func__);
	r->chan = ch;
	clock_gettime(CLOCK_MONOTONIC, &r->start);
	evtimer_set(&r->waitev, auth_req_wait, r);
	evtimer_set(&r->expire, auth_req_expire, r);
	bconn_init(&r->bc, auth_connected, r);
	return (r);
}

/*
 * A login on a server with proxy_pass and no auth_http: the backend
 * judges the password, which stays in the worker; we only connect.
 */
static int
auth_backend_recv(struct auth_chan *ch, struct imsg *imsg)
{
	static const uint8_t	 empty[1];
	struct auth_backend	 b;
	struct auth_result	 res;
	struct auth_req		*r;
	struct server_conf	*srv;
	char			 next[NAME_MAX_LEN + 32];

	if (imsg_get_data(imsg, &b, sizeof(b)) == -1 ||
	    memchr(b.client_ip, '\0', sizeof(b.client_ip)) == NULL) {
		log_warnx("%s: worker %u: invalid message", __func__,
		    ch->worker_id);
		return (-1);
	}
	log_select(b.server_id);
	r = auth_req_new(ch);
	r->hdr.id = b.id;
	r->hdr.server_id = b.server_id;
	strlcpy(r->hdr.client_ip, b.client_ip, sizeof(r->hdr.client_ip));
	if ((r->user = tail_copy(empty, 0)) == NULL ||
	    (r->pass = tail_copy(empty, 0)) == NULL ||
	    (r->salt = tail_copy(empty, 0)) == NULL ||
	    (r->subject = tail_copy(empty, 0)) == NULL ||
	    (r->issuer = tail_copy(empty, 0)) == NULL ||
	    (r->cert = tail_copy(empty, 0)) == NULL)
		fatal("%s", __func__);
	TAILQ_INSERT_TAIL(&reqs, r, entry);
	if (conf == NULL ||
	    (srv = config_server_byid(conf, b.server_id)) == NULL ||
	    !srv->proxy_pass_set || srv->auth_http_set ||
	    srv->proxy_pass.n < 1) {
		auth_unavailable(r, "no proxy_pass for server %u",
		    b.server_id);
		return (0);
	}
	memset(&res, 0, sizeof(res));
	res.status = AUTH_STATUS_OK;
	snprintf(next, sizeof(next), "the next address of %s",
	    srv->proxy_pass_name);
	auth_connect(r, &res, &srv->proxy_pass, next);
	return (0);
}

/*
 * The backend of the socket handed greeted with BYE or closed: the
 * next one of the same answer.  The worker names an index into the
 * list kept here, which only moves forward: it can make us connect to
 * no address of its choosing, nor to one twice.
 */
static int
auth_next_recv(struct auth_chan *ch, struct imsg *imsg)
{
	struct auth_next	 n;
	struct auth_result	 res;
	struct auth_req		*r;

	if (imsg_get_data(imsg, &n, sizeof(n)) == -1) {
		log_warnx("%s: worker %u: invalid message", __func__,
		    ch->worker_id);
		return (-1);
	}
	TAILQ_FOREACH(r, &reqs, entry)
		if (r->chan == ch && r->hdr.id == n.id)
			break;
	memset(&res, 0, sizeof(res));
	res.status = AUTH_STATUS_BACKEND;
	if (r == NULL) {
		/* expired: the worker's own timer ends such a login too */
		res.id = n.id;
		auth_result_send(ch, &res, "", "", "backend list expired",
		    -1);
		return (0);
	}
	log_select(r->hdr.server_id);
	if (r->phase != REQ_HANDED || n.backend <= (uint32_t)r->bc.cur ||
	    n.backend >= (uint32_t)r->bc.addrs.n) {
		log_warnx("worker %u: backend %u of %d asked after %d",
		    ch->worker_id, n.backend, r->bc.addrs.n, r->bc.cur);
		auth_reply(r, &res, "", "", "no such backend");
		return (0);
	}
	evtimer_del(&r->expire);
	r->expiring = 0;
	r->phase = REQ_CONNECT;
	bconn_start(&r->bc, n.backend);
	return (0);
}

/* -1: a malformed message, the channel is dropped */
static int
auth_cancel_recv(struct auth_chan *ch, struct imsg *imsg)
{
	struct auth_req	*r;
	uint32_t	 id;

	if (imsg_get_data(imsg, &id, sizeof(id)) == -1) {
		log_warnx("%s: worker %u: invalid cancel", __func__,
		    ch->worker_id);
		return (-1);
	}
	TAILQ_FOREACH(r, &reqs, entry)
		if (r->chan == ch && r->hdr.id == id) {
			auth_req_free(r);
			break;
		}
	return (0);
}

/* issue the HTTP request, or answer at once why it cannot be */
static void
auth_req_start(struct auth_req *r)
{
	struct in6_addr	 in6;
	size_t		 len = r->hdr.salt_len;

	log_select(r->hdr.server_id);
#ifdef REGRESS_TRIGGERS
	if (strncmp(r->user, "xregress-", 9) == 0) {
		struct auth_result	 res;
		char			 buf[128];

		memset(&res, 0, sizeof(res));
		res.status = AUTH_STATUS_FAIL;
		sandbox_regress_try(r->user + 9, buf, sizeof(buf));
		auth_reply(r, &res, "", "", buf);
		return;
	}
#endif
	/* nginx's salt ends in CRLF; the header line gets its own */
	while (len > 0 && (r->salt[len - 1] == '\n' ||
	    r->salt[len - 1] == '\r'))
		r->salt[--len] = '\0';

	if (r->hdr.method > AUTH_METHOD_EXTERNAL)
		auth_unavailable(r, "invalid method in request");
	else if (inet_pton(AF_INET, r->hdr.client_ip, &in6) != 1 &&
	    inet_pton(AF_INET6, r->hdr.client_ip, &in6) != 1)
		auth_unavailable(r, "invalid client address in request");
	else if (strlen(r->salt) != len || strpbrk(r->salt, "\r\n") != NULL)
		auth_unavailable(r, "invalid salt in request");
	else if (!auth_req_limited(r))
		auth_req_issue(r);
}

/*
 * limit_auth_fail: an address or a user with too many failures in the
 * window gets its NO here, after the delay, and the auth service is not
 * asked.  1: so refused.
 */
static int
auth_req_limited(struct auth_req *r)
{
	struct limit_fail_conf	 lc;
	struct server_conf	*srv;
	struct timeval		 tv;
	char			 ubuf[65], key[LIMIT_ADDR_LEN];
	int			 by;

	if ((srv = limit_fail_conf(&lc, r->hdr.server_id)) == NULL ||
	    lc.max == 0)
		return (0);
	limit_client_key(r->hdr.server_id, r->hdr.client_ip, key,
	    sizeof(key));
	if ((by = limit_fail_check(&lc, key, r->user, now_ms())) == 0)
		return (0);
	log_debug("login refused client=%s user=%s: limit_auth_fail (%s)",
	    key, user_log(r->user, ubuf, sizeof(ubuf)),
	    by & LIMIT_BY_ADDR ? "address" : "user");
	r->limited = 1;
	r->waiting = 1;
	timerclear(&tv);
	tv.tv_sec = srv->limit_auth_fail_delay_ms / 1000;
	tv.tv_usec = (srv->limit_auth_fail_delay_ms % 1000) * 1000;
	evtimer_add(&r->waitev, &tv);
	return (1);
}

/* a server's limit_auth_fail in limit.c's terms (max 0: off) */
static struct server_conf *
limit_fail_conf(struct limit_fail_conf *lc, uint32_t server_id)
{
	struct server_conf	*srv;

	memset(lc, 0, sizeof(*lc));
	lc->server_id = server_id;
	if (conf == NULL || (srv = config_server_byid(conf, server_id)) == NULL)
		return (NULL);
	lc->max = srv->limit_auth_fail;
	lc->window_ms = srv->limit_auth_fail_window_ms;
	return (srv);
}

/* what the auth service said, for limit_auth_fail */
static void
auth_fail_count(struct auth_req *r, int status)
{
	struct limit_fail_conf	 lc;
	char			 ubuf[65], key[LIMIT_ADDR_LEN];
	int			 by;

	limit_fail_conf(&lc, r->hdr.server_id);
	if (lc.max == 0)
		return;
	if (status == AUTH_STATUS_OK) {
		limit_fail_forget_user(&lc, r->user);
		return;
	}
	limit_client_key(r->hdr.server_id, r->hdr.client_ip, key,
	    sizeof(key));
	by = limit_fail_record(&lc, key, r->user, now_ms());
	if (by & LIMIT_BY_ADDR)
		log_warnx("limit_auth_fail: client=%s refused for %llu s "
		    "after %u failed logins", key,
		    (unsigned long long)lc.window_ms / 1000, lc.max);
	if (by & LIMIT_BY_USER)
		log_warnx("limit_auth_fail: user=%s refused for %llu s "
		    "after %u failed logins", user_log(r->user, ubuf,
		    sizeof(ubuf)), (unsigned long long)lc.window_ms / 1000,
		    lc.max);
	limit_fail_full(by, &lc);
}

/*
 * The table of limit_auth_fail is full.  A key that blocks is never
 * forgotten before its window ends, so the oldest that does not goes;
 * when every key blocks, new failures are not counted until windows
 * end.  Either is worth a line, at most one a minute.
 */
static void
limit_fail_full(int by, const struct limit_fail_conf *lc)
{
	static uint64_t	 last_ms;
	uint64_t	 now = now_ms();
	size_t		 n, nblocked;

	if ((by & (LIMIT_EVICTED | LIMIT_FULL)) == 0 ||
	    (last_ms != 0 && now - last_ms < 60 * 1000))
		return;
	last_ms = now;
	n = limit_fail_keys(lc, &nblocked);
	if (by & LIMIT_FULL)
		log_warnx("limit_auth_fail: %zu keys, all blocked: new "
		    "failures are not counted until a window ends", n);
	else
		log_warnx("limit_auth_fail: %zu keys (%zu blocked): the "
		    "oldest that block nothing are forgotten", n, nblocked);
}

/* the key a server counts a client address under (limit_ipv6_prefix) */
static void
limit_client_key(uint32_t server_id, const char *ip, char *key, size_t len)
{
	struct server_conf	*srv;
	unsigned int		 prefix = 64;

	if (conf != NULL && (srv = config_server_byid(conf, server_id)) != NULL)
		prefix = srv->limit_ipv6_prefix;
	if (limit_addr_key(ip, prefix, key, len) == -1)
		strlcpy(key, "invalid", len);
}

/*
 * limit_conn_per_ip, limit_prelogin_per_ip, limit_conn_rate: may this
 * worker's new session go on?  The rate is asked first: every new
 * session takes from it, admitted or not.
 */
static int
auth_conn_recv(struct auth_chan *ch, struct imsg *imsg)
{
	static const char		*names[] = { "", "limit_conn_per_ip",
					    "limit_prelogin_per_ip",
					    "limit_conn_rate" };
	struct auth_conn		 c;
	struct auth_conn_verdict	 v;
	struct limit_conn_req		 req;
	struct server_conf		*srv = NULL;
	char				 key[LIMIT_ADDR_LEN];

	if (imsg_get_data(imsg, &c, sizeof(c)) == -1 ||
	    memchr(c.client_ip, '\0', sizeof(c.client_ip)) == NULL) {
		log_warnx("%s: worker %u: invalid message", __func__,
		    ch->worker_id);
		return (-1);
	}
	memset(&req, 0, sizeof(req));
	if (conf != NULL &&
	    (srv = config_server_byid(conf, c.server_id)) != NULL) {
		req.max = srv->limit_conn_per_ip;
		req.max_prelogin = srv->limit_prelogin_per_ip;
	}
	limit_client_key(c.server_id, c.client_ip, key, sizeof(key));
	req.chan = ch;
	req.id = c.id;
	req.key = key;
	req.prelogin = c.prelogin != 0;
	req.recount = c.recount != 0;
	memset(&v, 0, sizeof(v));
	v.id = c.id;
	if (!c.recount && srv != NULL && !auth_conn_rate(srv, key))
		v.limit = CONN_LIMIT_RATE;
	else
		v.limit = limit_conn_open(&req);
	if (v.limit != CONN_ADMIT)
		log_debug("client=%s: %s reached", key, names[v.limit]);
	if (!c.recount)
		imsgev_compose(&ch->iev, IMSG_AUTH_CONN_VERDICT, 0, -1, &v,
		    sizeof(v));
	return (0);
}

/* limit_conn_rate: 1 if one more session from key may start now */
static int
auth_conn_rate(struct server_conf *srv, const char *key)
{
	struct limit_rate_conf	 rc;

	rc.server_id = srv->id;
	rc.rate = srv->limit_conn_rate;
	rc.burst = srv->limit_conn_burst;
	return (limit_rate_take(&rc, key, now_ms()));
}

/* -1: a malformed message, the channel is dropped */
static int
auth_conn_login_recv(struct auth_chan *ch, struct imsg *imsg)
{
	uint32_t	 id;

	if (imsg_get_data(imsg, &id, sizeof(id)) == -1) {
		log_warnx("%s: worker %u: invalid message", __func__,
		    ch->worker_id);
		return (-1);
	}
	limit_conn_login(ch, id);
	return (0);
}

/* -1: a malformed message, the channel is dropped */
static int
auth_conn_close_recv(struct auth_chan *ch, struct imsg *imsg)
{
	uint32_t	 id;

	if (imsg_get_data(imsg, &id, sizeof(id)) == -1) {
		log_warnx("%s: worker %u: invalid message", __func__,
		    ch->worker_id);
		return (-1);
	}
	limit_conn_close(ch, id);
	return (0);
}

/* -1: r was answered and freed */
static int
auth_req_issue(struct auth_req *r)
{
	struct server_conf	*srv;
	struct auth_url		*au;
	char			 buf[NAME_MAX_LEN + sizeof(au->addrs) + 16];
	int			 v6;

	if (conf == NULL ||
	    (srv = config_server_byid(conf, r->hdr.server_id)) == NULL) {
		auth_unavailable(r, "unknown server %u in request",
		    r->hdr.server_id);
		return (-1);
	}
	au = &srv->auth_http;
	if (!srv->auth_http_set) {
		auth_unavailable(r, "no auth_http for this server");
		return (-1);
	}
	v6 = strchr(au->host, ':') != NULL;
	if (au->unix_path[0] != '\0')
		snprintf(r->service, sizeof(r->service), "unix:%s",
		    au->unix_path);
	else
		snprintf(r->service, sizeof(r->service), "%s%s%s:%d",
		    v6 ? "[" : "", au->host, v6 ? "]" : "", au->port);
	r->timeout_ms = srv->auth_http_timeout_ms;
	authhttp_reply_init(&r->reply);
	r->hdr_error = 0;
	r->body = 0;
	r->errbuf[0] = '\0';

	if (auth_req_headers(r, srv) == -1)
		goto fail;
	/*
	 * Pin every address the parent resolved, so that libcurl tries
	 * them in turn as it would a name's: we never resolve.
	 */
	if (au->unix_path[0] == '\0' && au->addrs[0] != '\0' && !v6 &&
	    inet_pton(AF_INET, au->host, buf) != 1) {
		snprintf(buf, sizeof(buf), "%s:%d:%s", au->host, au->port,
		    au->addrs);
		if ((r->resolve = curl_slist_append(NULL, buf)) == NULL)
			goto fail;
	}
	if ((r->easy = curl_easy_init()) == NULL)
		goto fail;
	if (auth_req_setopt(r, au) == -1)
		goto fail;
	if (curl_multi_add_handle(multi, r->easy) != CURLM_OK) {
		curl_easy_cleanup(r->easy);
		r->easy = NULL;
		goto fail;
	}
	return (0);
 fail:
	auth_unavailable(r, "cannot set up the auth request");
	return (-1);
}

static int
auth_req_setopt(struct auth_req *r, struct auth_url *au)
{
	CURL		*e = r->easy;
	CURLcode	 rc = CURLE_OK;

#define SET(o, v)	do {						\
	if (rc == CURLE_OK)						\
		rc = curl_easy_setopt(e, o, v);				\
} while (0)
	SET(CURLOPT_URL, au->curl_url);
	if (au->unix_path[0] != '\0')
		SET(CURLOPT_UNIX_SOCKET_PATH, au->unix_path);
	if (r->resolve != NULL)
		SET(CURLOPT_RESOLVE, r->resolve);
	SET(CURLOPT_HTTPHEADER, r->headers);
	SET(CURLOPT_HTTPGET, 1L);
	SET(CURLOPT_HTTP_VERSION, (long)CURL_HTTP_VERSION_1_1);
	SET(CURLOPT_TIMEOUT_MS, (long)r->timeout_ms);
	SET(CURLOPT_CONNECTTIMEOUT_MS, (long)r->timeout_ms);
	SET(CURLOPT_NOSIGNAL, 1L);
	SET(CURLOPT_PROXY, "");		/* never one from the environment */
#ifdef HAVE_CURLOPT_PROTOCOLS_STR
	SET(CURLOPT_PROTOCOLS_STR, "http,https");
#else
	SET(CURLOPT_PROTOCOLS, (long)(CURLPROTO_HTTP | CURLPROTO_HTTPS));
#endif
	SET(CURLOPT_FOLLOWLOCATION, 0L);
	SET(CURLOPT_HEADERFUNCTION, curl_header_cb);
	SET(CURLOPT_HEADERDATA, r);
	SET(CURLOPT_WRITEFUNCTION, curl_body_cb);
	SET(CURLOPT_WRITEDATA, r);
	SET(CURLOPT_PRIVATE, r);
	SET(CURLOPT_ERRORBUFFER, r->errbuf);
#ifdef HAVE_CURL_BLOBS
	if (au->https && atls_setopt(r) == -1)
		return (-1);
	if (au->https && ca_blob.data != NULL &&
	    config_pem(conf, r->hdr.server_id, ATLS_PEM_CA, 0) == NULL) {
		SET(CURLOPT_CAINFO_BLOB, &ca_blob);
		SET(CURLOPT_CAINFO, NULL);
		SET(CURLOPT_CAPATH, NULL);
	}
#endif
#undef SET
	if (rc != CURLE_OK) {
		log_warnx("%s: %s", __func__, curl_easy_strerror(rc));
		return (-1);
	}
	return (0);
}

#ifdef HAVE_CURL_BLOBS
/*
 * auth_http_trusted_certificate and _certificate: bytes from the
 * parent.  libcurl copies the blobs: a reload may free the config
 * meanwhile.
 */
static int
atls_setopt(struct auth_req *r)
{
	struct tls_pem		*ca, *cert, *key;
	struct curl_blob	 b;
	CURLcode		 rc = CURLE_OK;
	uint32_t		 id = r->hdr.server_id;

	ca = config_pem(conf, id, ATLS_PEM_CA, 0);
	cert = config_pem(conf, id, ATLS_PEM_CLIENT, 0);
	key = config_pem(conf, id, ATLS_PEM_CLIENT, 1);
	b.flags = CURL_BLOB_COPY;
	if (ca != NULL) {
		b.data = ca->data;
		b.len = ca->len;
		if ((rc = curl_easy_setopt(r->easy, CURLOPT_CAINFO_BLOB,
		    &b)) == CURLE_OK)
			rc = curl_easy_setopt(r->easy, CURLOPT_CAINFO, NULL);
		if (rc == CURLE_OK)
			rc = curl_easy_setopt(r->easy, CURLOPT_CAPATH, NULL);
	}
	if (rc == CURLE_OK && cert != NULL && key != NULL) {
		b.data = cert->data;
		b.len = cert->len;
		if ((rc = curl_easy_setopt(r->easy, CURLOPT_SSLCERT_BLOB,
		    &b)) == CURLE_OK) {
			b.data = key->data;
			b.len = key->len;
			rc = curl_easy_setopt(r->easy, CURLOPT_SSLKEY_BLOB, &b);
		}
	}
	if (rc != CURLE_OK) {
		log_warnx("%s: %s", __func__, curl_easy_strerror(rc));
		return (-1);
	}
	return (0);
}
#endif

/* "Name: value"; curl drops "Name:", an empty value is "Name;" */
static int
hdr_add(struct curl_slist **list, const char *name, const char *value)
{
	struct curl_slist	*l;
	char			*line;
	size_t			 len;

	len = strlen(name) + strlen(value) + 3;
	if ((line = malloc(len)) == NULL)
		return (-1);
	if (*value == '\0')
		snprintf(line, len, "%s;", name);
	else
		snprintf(line, len, "%s: %s", name, value);
	l = curl_slist_append(*list, line);
	freezero(line, len);
	if (l == NULL)
		return (-1);
	*list = l;
	return (0);
}

/* an escaped Auth-User or Auth-Pass, the escaped copy wiped at once */
static int
hdr_add_escaped(struct curl_slist **list, const char *name, const char *v,
    size_t vlen)
{
	char	*esc;
	size_t	 esclen = vlen * 3 + 1;
	int	 rv = -1;

	if ((esc = malloc(esclen)) == NULL)
		return (-1);
	if (authhttp_escape(esc, esclen, v, vlen) != -1)
		rv = hdr_add(list, name, esc);
	freezero(esc, esclen);
	return (rv);
}

/*
 * ssl_verify_client: what the worker found of the client certificate,
 * in nginx's order; an empty value is a header nginx would not send.
 */
static int
ccert_headers(struct curl_slist **l, struct auth_req *r)
{
	int	 rv = 0;

	if (r->hdr.ssl_verify[0] != '\0')
		rv |= hdr_add(l, "Auth-SSL-Verify", r->hdr.ssl_verify);
	if (r->subject[0] != '\0')
		rv |= hdr_add(l, "Auth-SSL-Subject", r->subject);
	if (r->issuer[0] != '\0')
		rv |= hdr_add(l, "Auth-SSL-Issuer", r->issuer);
	if (r->hdr.ssl_serial[0] != '\0')
		rv |= hdr_add(l, "Auth-SSL-Serial", r->hdr.ssl_serial);
	if (r->hdr.ssl_fingerprint[0] != '\0')
		rv |= hdr_add(l, "Auth-SSL-Fingerprint",
		    r->hdr.ssl_fingerprint);
	/* the PEM escaped as Auth-User: %0A for its line ends */
	if (r->hdr.cert_len > 0)
		rv |= hdr_add_escaped(l, "Auth-SSL-Cert", r->cert,
		    r->hdr.cert_len);
	return (rv);
}

/* nginx's header order, then auth_http_header lines in config order */
static int
auth_req_headers(struct auth_req *r, struct server_conf *srv)
{
	static const char	*methods[] = {
		"plain", "cram-md5", "external"
	};
	struct auth_url		*au = &srv->auth_http;
	struct auth_header	*h;
	struct curl_slist	*l = NULL, *nl;
	char			 host[NAME_MAX_LEN + 2], num[16];
	int			 rv = 0;

	if (au->unix_path[0] != '\0')
		strlcpy(host, "localhost", sizeof(host));
	else if (strchr(au->host, ':') != NULL)
		snprintf(host, sizeof(host), "[%s]", au->host);
	else
		strlcpy(host, au->host, sizeof(host));
	snprintf(num, sizeof(num), "%u", r->hdr.attempt);

	/* nginx's Host carries no port */
	rv |= hdr_add(&l, "Host", host);
	rv |= hdr_add(&l, "Auth-Method", methods[r->hdr.method]);
	rv |= hdr_add_escaped(&l, "Auth-User", r->user, r->hdr.user_len);
	rv |= hdr_add_escaped(&l, "Auth-Pass", r->pass, r->hdr.pass_len);
	if (r->salt[0] != '\0')
		rv |= hdr_add(&l, "Auth-Salt", r->salt);
	rv |= hdr_add(&l, "Auth-Protocol", "imap");
	rv |= hdr_add(&l, "Auth-Login-Attempt", num);
	rv |= hdr_add(&l, "Client-IP", r->hdr.client_ip);
	/* as nginx: what the load balancer's PROXY header said */
	if (r->hdr.flags & AUTH_REQ_PP) {
		rv |= hdr_add(&l, "Proxy-Protocol-Addr", r->hdr.pp_addr);
		snprintf(num, sizeof(num), "%u", r->hdr.pp_port);
		rv |= hdr_add(&l, "Proxy-Protocol-Port", num);
		rv |= hdr_add(&l, "Proxy-Protocol-Server-Addr",
		    r->hdr.pp_server_addr);
		snprintf(num, sizeof(num), "%u", r->hdr.pp_server_port);
		rv |= hdr_add(&l, "Proxy-Protocol-Server-Port", num);
	}
	/* as nginx 1.21.2+: whether, and how, the client speaks TLS */
	if (r->hdr.flags & AUTH_REQ_SSL) {
		rv |= hdr_add(&l, "Auth-SSL", "on");
		if (r->hdr.ssl_protocol[0] != '\0')
			rv |= hdr_add(&l, "Auth-SSL-Protocol",
			    r->hdr.ssl_protocol);
		if (r->hdr.ssl_cipher[0] != '\0')
			rv |= hdr_add(&l, "Auth-SSL-Cipher", r->hdr.ssl_cipher);
		rv |= ccert_headers(&l, r);
	}
	TAILQ_FOREACH(h, &srv->auth_headers, entry) {
		if (strpbrk(h->name, "\r\n:") != NULL ||
		    strpbrk(h->value, "\r\n") != NULL)
			continue;	/* the parser refuses these */
		rv |= hdr_add(&l, h->name, h->value);
	}
	if ((nl = curl_slist_append(l, "Accept:")) == NULL)
		rv = -1;
	else
		l = nl;
	r->headers = l;
	return (rv == 0 ? 0 : -1);
}

static void
slist_free_wipe(struct curl_slist *list)
{
	struct curl_slist	*l;

	for (l = list; l != NULL; l = l->next)
		explicit_bzero(l->data, strlen(l->data));
	curl_slist_free_all(list);
}

/*
 * A name's addresses are all pinned and libcurl tries them in turn:
 * the log says which one answered, or which were tried.
 */
static void
auth_req_where(struct auth_req *r, CURLcode rc)
{
	char		*ip = NULL;
	const char	*pins;
	size_t		 len = strlen(r->service);

	if (r->resolve == NULL || r->easy == NULL)
		return;
	if (curl_easy_getinfo(r->easy, CURLINFO_PRIMARY_IP, &ip) ==
	    CURLE_OK && ip != NULL && *ip != '\0')
		snprintf(r->service + len, sizeof(r->service) - len, " (%s)",
		    ip);
	else if (rc == CURLE_COULDNT_CONNECT &&
	    (pins = strchr(r->resolve->data, ':')) != NULL &&
	    (pins = strchr(pins + 1, ':')) != NULL)
		/* "host:port:addresses", host a name without ':' */
		snprintf(r->service + len, sizeof(r->service) - len,
		    " (tried %s)", pins + 1);
}

static void
auth_req_done(struct auth_req *r, CURLcode rc)
{
	struct auth_result	 res;
	struct server_conf	*srv;
	struct host_addrs	 ha;
	struct timeval		 tv;
	char			 reason[CURL_ERROR_SIZE + 64];
	long			 oserr = 0;
	int			 st;

	log_select(r->hdr.server_id);
	auth_req_where(r, rc);
	if (rc != CURLE_OK) {
		if (r->hdr_error)
			strlcpy(reason, r->reply.error, sizeof(reason));
		else if (rc == CURLE_OPERATION_TIMEDOUT)
			snprintf(reason, sizeof(reason),
			    "timed out after %u ms", r->timeout_ms);
		else if (rc == CURLE_COULDNT_CONNECT &&
		    curl_easy_getinfo(r->easy, CURLINFO_OS_ERRNO,
		    &oserr) == CURLE_OK && oserr != 0)
			strlcpy(reason, strerror(oserr), sizeof(reason));
		else
			strlcpy(reason, r->errbuf[0] != '\0' ? r->errbuf :
			    curl_easy_strerror(rc), sizeof(reason));
		auth_req_cleanup(r);
		auth_unavailable(r, "auth service %s: %s", r->service, reason);
		return;
	}

	memset(&res, 0, sizeof(res));
	st = authhttp_finish(&r->reply, r->hdr.method != AUTH_METHOD_PLAIN,
	    &res);
	auth_req_cleanup(r);
	switch (st) {
	case -2:
		if (++r->rounds > AUTH_MAX_WAIT_ROUNDS) {
			auth_unavailable(r, "auth service %s: too many WAIT "
			    "answers", r->service);
			return;
		}
		log_debug("%s: request %u: WAIT %u s", __func__, r->hdr.id,
		    res.wait);
		timerclear(&tv);
		tv.tv_sec = res.wait;
		r->waiting = 1;
		evtimer_add(&r->waitev, &tv);
		return;
	case AUTH_STATUS_OK:
		auth_fail_count(r, st);
		/* the Auth-Server answers, tried in turn */
		ha = r->reply.backends;
		/* imap_capabilities auto: the first backend seen is probed */
		if (conf != NULL && ha.n > 0 &&
		    (srv = config_server_byid(conf, r->hdr.server_id)) != NULL)
			caps_backend(srv, &ha, res.proxy_ssl == PTLS_ON + 1);
		auth_connect(r, &res, &ha, "the next Auth-Server");
		return;
	case AUTH_STATUS_FAIL:
		auth_fail_count(r, st);
		if (auth_fail_delay(r, &res) == 0)
			auth_reply(r, &res, "", "", r->reply.status);
		return;
	default:
		auth_unavailable(r, "auth service %s: %s", r->service,
		    r->reply.error);
		return;
	}
}

/*
 * The login is good: connect to its backend, each address of the list
 * in turn, for the server's timeout each.  The password the worker
 * sent has served its purpose; the answer waits in r->ok (and the
 * Auth-User and Auth-Pass in r->reply) until the socket goes with it.
 */
static void
auth_connect(struct auth_req *r, struct auth_result *res,
    const struct host_addrs *ha, const char *next)
{
	struct server_conf	*srv;

	explicit_bzero(r->pass, r->hdr.pass_len);
	if (conf == NULL ||
	    (srv = config_server_byid(conf, r->hdr.server_id)) == NULL) {
		auth_unavailable(r, "unknown server %u in request",
		    r->hdr.server_id);
		return;
	}
	if (ha->n < 1 || ha->n > HOST_ADDRS_MAX) {
		auth_unavailable(r, "no backend address");
		return;
	}
	r->ok = *res;
	r->phase = REQ_CONNECT;
	r->bc.addrs = *ha;
	r->bc.keepalive = srv->so_keepalive;
	r->bc.timeout_ms = srv->timeout_ms;
	r->bc.log_id = srv->id;
	strlcpy(r->bc.next, next, sizeof(r->bc.next));
	bconn_start(&r->bc, 0);
}

/*
 * A backend answered (fd), or none did.  The first socket goes with
 * the answer's Auth-User and Auth-Pass, which are then wiped; a later
 * one (IMSG_AUTH_NEXT) alone.  The request stays, handed, until the
 * worker is done with it, or the server's timeout passed: by then the
 * worker gave up on that backend's greeting too.
 */
static void
auth_connected(struct bconn *bc, int fd)
{
	struct auth_req		*r = bc->arg;
	struct auth_result	 res;
	struct server_conf	*srv;
	struct timeval		 tv;
	unsigned int		 ms = 60 * 1000;

	if (fd == -1) {
		memset(&res, 0, sizeof(res));
		res.status = AUTH_STATUS_BACKEND;
		res.nbackends = bc->addrs.n;
		auth_reply(r, &res, "", "", bc->why);
		return;
	}
	res = r->ok;
	res.backend = bc->cur;
	res.nbackends = bc->addrs.n;
	res.server_len = bc->addrs.len[bc->cur];
	memcpy(&res.server, &bc->addrs.ss[bc->cur], res.server_len);
	if (r->handed++ == 0)
		auth_send_result(r, &res, r->reply.user_set ? r->reply.user :
		    "", r->reply.pass_set ? r->reply.pass : "", "", fd);
	else
		auth_send_result(r, &res, "", "", "", fd);
	authhttp_reply_init(&r->reply);
	r->phase = REQ_HANDED;
	if (conf != NULL &&
	    (srv = config_server_byid(conf, r->hdr.server_id)) != NULL)
		ms = srv->timeout_ms;
	/* a second more: the worker's timer, if any, goes off first */
	ms += 1000;
	tv.tv_sec = ms / 1000;
	tv.tv_usec = (ms % 1000) * 1000;
	evtimer_add(&r->expire, &tv);
	r->expiring = 1;
}

static void
auth_req_expire(int fd, short event, void *arg)
{
	struct auth_req	*r = arg;

	r->expiring = 0;
	auth_req_free(r);
}

/*
 * auth_fail_delay: a refusal the service gave without Auth-Wait is
 * answered a little later, as Dovecot does, so that guessing passwords
 * is slow.  With Auth-Wait the worker waits itself.  1: held.
 */
static int
auth_fail_delay(struct auth_req *r, struct auth_result *res)
{
	struct server_conf	*srv;
	struct timeval		 tv;

	if (res->wait != 0 || conf == NULL ||
	    (srv = config_server_byid(conf, r->hdr.server_id)) == NULL ||
	    srv->auth_fail_delay_ms == 0)
		return (0);
	r->held = *res;
	r->delayed = 1;
	r->waiting = 1;
	tv.tv_sec = srv->auth_fail_delay_ms / 1000;
	tv.tv_usec = (srv->auth_fail_delay_ms % 1000) * 1000;
	evtimer_add(&r->waitev, &tv);
	return (1);
}

static void
auth_req_wait(int fd, short event, void *arg)
{
	struct auth_req		*r = arg;
	struct auth_result	 res;

	log_select(r->hdr.server_id);
	r->waiting = 0;
	if (r->delayed) {
		res = r->held;
		auth_reply(r, &res, "", "", r->reply.status);
		return;
	}
	if (!r->limited) {
		auth_req_issue(r);
		return;
	}
	memset(&res, 0, sizeof(res));
	res.status = AUTH_STATUS_FAIL;
	res.limited = 1;
	auth_reply(r, &res, "", "", LIMIT_AUTH_FAIL_TEXT);
}

/* the end of one HTTP exchange; the request itself lives on */
static void
auth_req_cleanup(struct auth_req *r)
{
	if (r->easy != NULL) {
		curl_multi_remove_handle(multi, r->easy);
		curl_easy_cleanup(r->easy);
		r->easy = NULL;
	}
	slist_free_wipe(r->headers);
	r->headers = NULL;
	slist_free_wipe(r->resolve);
	r->resolve = NULL;
}

static void
auth_req_free(struct auth_req *r)
{
	auth_req_cleanup(r);
	bconn_stop(&r->bc);
	if (r->expiring)
		evtimer_del(&r->expire);
	if (r->waiting)
		evtimer_del(&r->waitev);
	TAILQ_REMOVE(&reqs, r, entry);
	freezero(r->user, r->hdr.user_len + 1);
	freezero(r->pass, r->hdr.pass_len + 1);
	freezero(r->salt, r->hdr.salt_len + 1);
	free(r->subject);
	free(r->issuer);
	free(r->cert);
	explicit_bzero(r, sizeof(*r));
	free(r);
}

/* answer the worker, then forget the request */
static void
auth_reply(struct auth_req *r, struct auth_result *res, const char *user,
    const char *pass, const char *text)
{
	auth_send_result(r, res, user, pass, text, -1);
	auth_req_free(r);
}

/* r's answer, with the backend socket fd if not -1 */
static void
auth_send_result(struct auth_req *r, struct auth_result *res,
    const char *user, const char *pass, const char *text, int fd)
{
	struct timespec	 now;

	clock_gettime(CLOCK_MONOTONIC, &now);
	res->id = r->hdr.id;
	res->elapsed_ms = (now.tv_sec - r->start.tv_sec) * 1000 +
	    (now.tv_nsec - r->start.tv_nsec) / 1000000;
	auth_result_send(r->chan, res, user, pass, text, fd);
}

/* the payload is wiped: it may carry Auth-Pass; fd is ours no more */
static void
auth_result_send(struct auth_chan *ch, struct auth_result *res,
    const char *user, const char *pass, const char *text, int fd)
{
	uint8_t		*buf;
	size_t		 ulen = strlen(user), plen = strlen(pass);
	size_t		 tlen = strlen(text), len;

	res->user_len = ulen;
	res->pass_len = plen;
	res->text_len = tlen;
	len = sizeof(*res) + ulen + plen + tlen;
	if ((buf = malloc(len)) == NULL)
		fatal("%s", __func__);
	memcpy(buf, res, sizeof(*res));
	memcpy(buf + sizeof(*res), user, ulen);
	memcpy(buf + sizeof(*res) + ulen, pass, plen);
	memcpy(buf + sizeof(*res) + ulen + plen, text, tlen);
	if (imsgev_compose(&ch->iev, IMSG_AUTH_RESULT, res->id, fd, buf,
	    len) == -1) {
		log_warn("%s: worker %u", __func__, ch->worker_id);
		/* a closed channel took the socket; a full one did not */
		if (fd != -1 && ch->iev.ibuf.fd != -1)
			close(fd);
	}
	freezero(buf, len);
}

/* a user name as it may appear in a log line */
static const char *
user_log(const char *user, char *buf, size_t len)
{
	size_t	 i;

	for (i = 0; user[i] != '\0' && i + 1 < len; i++)
		buf[i] = isprint((unsigned char)user[i]) && user[i] != '"' &&
		    user[i] != '\\' ? user[i] : '?';
	buf[i] = '\0';
	return (i == 0 ? "-" : buf);
}

static void
auth_unavailable(struct auth_req *r, const char *fmt, ...)
{
	struct auth_result	 res;
	va_list			 ap;
	char			 reason[512], ubuf[65];

	va_start(ap, fmt);
	vsnprintf(reason, sizeof(reason), fmt, ap);
	va_end(ap);
	log_warnx("auth unavailable client=%s user=%s: %s", r->hdr.client_ip,
	    user_log(r->user, ubuf, sizeof(ubuf)), reason);
	memset(&res, 0, sizeof(res));
	res.status = AUTH_STATUS_UNAVAILABLE;
	auth_reply(r, &res, "", "", reason);
}

/*
 * libcurl <-> libevent: curl says which sockets to watch and when to
 * wake it up; every event hands control back to
 * curl_multi_socket_action, after which finished transfers are read.
 */
static int
curl_sock_cb(CURL *e, curl_socket_t s, int what, void *userp, void *socketp)
{
	struct auth_sock	*as = socketp;
	short			 ev = EV_PERSIST;

	if (what == CURL_POLL_REMOVE) {
		if (as != NULL) {
			event_del(&as->ev);
			free(as);
		}
		return (0);
	}
	if (as == NULL) {
		if ((as = calloc(1, sizeof(*as))) == NULL)
			fatal("%s", __func__);
		as->fd = s;
		curl_multi_assign(multi, s, as);
	} else
		event_del(&as->ev);
	if (what & CURL_POLL_IN)
		ev |= EV_READ;
	if (what & CURL_POLL_OUT)
		ev |= EV_WRITE;
	event_set(&as->ev, s, ev, curl_sock_event, as);
	event_add(&as->ev, NULL);
	return (0);
}

static int
curl_timer_cb(CURLM *m, long timeout_ms, void *userp)
{
	struct timeval	 tv;

	evtimer_del(&curl_timer);
	if (timeout_ms >= 0) {
		tv.tv_sec = timeout_ms / 1000;
		tv.tv_usec = (timeout_ms % 1000) * 1000;
		evtimer_add(&curl_timer, &tv);
	}
	return (0);
}

static void
curl_sock_event(int fd, short event, void *arg)
{
	int	 running, action = 0;

	if (event & EV_READ)
		action |= CURL_CSELECT_IN;
	if (event & EV_WRITE)
		action |= CURL_CSELECT_OUT;
	/* arg may be freed by curl_sock_cb from here on */
	curl_multi_socket_action(multi, fd, action, &running);
	curl_check_info();
}

static void
curl_timer_event(int fd, short event, void *arg)
{
	int	 running;

	curl_multi_socket_action(multi, CURL_SOCKET_TIMEOUT, 0, &running);
	curl_check_info();
}

static void
curl_check_info(void)
{
	CURLMsg		*msg;
	CURL		*e;
	CURLcode	 rc;
	char		*priv;
	int		 left;

	while ((msg = curl_multi_info_read(multi, &left)) != NULL) {
		if (msg->msg != CURLMSG_DONE)
			continue;
		e = msg->easy_handle;
		rc = msg->data.result;
		if (curl_easy_getinfo(e, CURLINFO_PRIVATE, &priv) != CURLE_OK ||
		    priv == NULL)
			fatalx("%s: transfer without a request", __func__);
		auth_req_done((struct auth_req *)priv, rc);
	}
}

static size_t
curl_header_cb(char *buf, size_t size, size_t n, void *arg)
{
	struct auth_req	*r = arg;
	size_t		 len = size * n;

	if (authhttp_parse_header(&r->reply, buf, len) == -1) {
		r->hdr_error = 1;
		return (0);	/* aborts the transfer */
	}
	return (len);
}

/* the body means nothing to the protocol: count it and drop it */
static size_t
curl_body_cb(char *buf, size_t size, size_t n, void *arg)
{
	struct auth_req	*r = arg;
	size_t		 len = size * n;

	r->body += len;
	if (r->body > AUTH_MAX_BODY) {
		strlcpy(r->reply.error, "response too long",
		    sizeof(r->reply.error));
		r->hdr_error = 1;
		return (0);
	}
	return (len);
}
