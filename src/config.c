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
 * config.c: configuration objects, and how the parent hands them to
 * its children over imsg.
 *
 * Order on the wire: IMSG_CFG_GLOBAL, then every IMSG_CFG_SERVER with
 * (auth only) its IMSG_CFG_AUTH_HEADERs, then (imap workers only) every
 * IMSG_CFG_LISTEN with a socket, then an IMSG_CFG_LOG per error_log
 * destination with its descriptor, then IMSG_CFG_DONE.  Payloads are the
 * structs themselves with their list heads and pointers zeroed; the
 * receiver checks every length and terminates every string itself.
 *
 * What talks to the auth service and the backends stays in the auth
 * process: the imap workers (and the template) never get the
 * auth_http URL and addresses, its headers (a shared secret, often),
 * its TLS files, nor the proxy_pass addresses.  A worker a client
 * compromised learns nothing there to reach either with.
 */

#include <sys/types.h>
#include <sys/socket.h>
#include <sys/queue.h>

#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <syslog.h>
#include <unistd.h>

#include <tls.h>

#include "imaprelayd.h"

/* learned from the backend (auth_caps.c); IMAP4 IMAP4rev1 UIDPLUS before */
#define DEFAULT_CAPS	"auto"

/* force a fixed array to be a C string */
#define TERMINATE(a)	((a)[sizeof(a) - 1] = '\0')

static void	config_purge(struct config *);
static void	send_logs(struct imsgev *, struct config *);

/* a destination of nginx's defaults: error level, syslog local7 */
void
log_dest_init(struct log_dest *dest, int level)
{
	memset(dest, 0, sizeof(*dest));
	dest->level = level;
	dest->facility = 23;
	strlcpy(dest->tag, "imaprelayd", sizeof(dest->tag));
	dest->fd = -1;
}

/* the descriptors the parent opened for a configuration's logs */
static void
log_dest_close(struct log_dest *dest)
{
	if (dest->fd != -1)
		close(dest->fd);
	dest->fd = -1;
}

struct config *
config_new(void)
{
	struct config	*conf;

	if ((conf = calloc(1, sizeof(*conf))) == NULL)
		fatal(__func__);
	strlcpy(conf->user, IMAPRELAYD_USER, sizeof(conf->user));
	conf->worker_processes = 1;
	conf->worker_connections = 512;
	conf->isolation = ISOLATION_CONNECTION;
	conf->spare_workers = 4;
	conf->template_max_forks = 1000;
	conf->template_max_age_ms = 3600 * 1000;
	/* no error_log: syslog(3), info and above (nginx has a file) */
	log_dest_init(&conf->error_log, LOG_INFO);
	conf->daemonize = 1;
	conf->pid[0] = '\0';		/* no pid file */
	TAILQ_INIT(&conf->servers);
	TAILQ_INIT(&conf->listens);
	TAILQ_INIT(&conf->tls_pems);
	return (conf);
}

static void
server_free(struct server_conf *srv)
{
	struct auth_header	*h;

	while ((h = TAILQ_FIRST(&srv->auth_headers)) != NULL) {
		TAILQ_REMOVE(&srv->auth_headers, h, entry);
		/* may carry a shared secret for the auth service */
		freezero(h, sizeof(*h));
	}
	freezero(srv, sizeof(*srv));
}

/* empty the lists; listening sockets still held are closed */
static void
config_purge(struct config *conf)
{
	struct server_conf	*srv;
	struct listen_conf	*lc;
	struct tls_pem		*pem;

	while ((pem = TAILQ_FIRST(&conf->tls_pems)) != NULL) {
		TAILQ_REMOVE(&conf->tls_pems, pem, entry);
		/* private keys */
		freezero(pem->data, pem->len + 1);
		free(pem);
	}
	log_dest_close(&conf->error_log);
	while ((srv = TAILQ_FIRST(&conf->servers)) != NULL) {
		TAILQ_REMOVE(&conf->servers, srv, entry);
		log_dest_close(&srv->error_log);
		server_free(srv);
	}
	while ((lc = TAILQ_FIRST(&conf->listens)) != NULL) {
		TAILQ_REMOVE(&conf->listens, lc, entry);
		if (lc->fd != -1)
			close(lc->fd);
		free(lc);
	}
}

void
config_free(struct config *conf)
{
	if (conf == NULL)
		return;
	config_purge(conf);
	free(conf);
}

/* a server with nginx's defaults, appended, numbered after the last */
struct server_conf *
config_server_new(struct config *conf)
{
	struct server_conf	*srv, *last;

	if ((srv = calloc(1, sizeof(*srv))) == NULL)
		fatal(__func__);
	last = TAILQ_LAST(&conf->servers, server_list);
	srv->id = last == NULL ? 1 : last->id + 1;
	/* nginx's default server_name is the machine's name */
	if (gethostname(srv->server_name, sizeof(srv->server_name)) == -1)
		strlcpy(srv->server_name, "localhost",
		    sizeof(srv->server_name));
	TERMINATE(srv->server_name);
	log_dest_init(&srv->error_log, LOG_ERR);
	srv->timeout_ms = 60 * 1000;
	srv->proxy_timeout_ms = 24 * 3600 * 1000;
	srv->auth_http_timeout_ms = 60 * 1000;
	srv->auth_fail_delay_ms = 2 * 1000;	/* Dovecot's, about */
	TAILQ_INIT(&srv->auth_headers);
	srv->imap_auth = MECH_PLAIN;
	strlcpy(srv->imap_capabilities, DEFAULT_CAPS,
	    sizeof(srv->imap_capabilities));
	srv->imap_client_buffer = 4096;
	srv->proxy_buffer = 16384;
	srv->max_errors = 5;
	/* against hostile clients: on unless turned off */
	srv->limit_prelogin_per_ip = 20;
	srv->limit_conn_rate = 20;
	srv->limit_conn_burst = 100;
	srv->limit_ipv6_prefix = 64;
	srv->login_timeout_ms = 30 * 1000;
	srv->login_max_commands = 20;
	srv->proxy_forward_client_ip = 1;
	/* nginx's ssl_* defaults, in libtls's words */
	srv->tls_protocols = TLS_PROTOCOL_TLSv1_2 | TLS_PROTOCOL_TLSv1_3;
	strlcpy(srv->tls_ciphers, "HIGH:!aNULL:!MD5", sizeof(srv->tls_ciphers));
	strlcpy(srv->tls_ecdh_curve, "default", sizeof(srv->tls_ecdh_curve));
	strlcpy(srv->tls_dhparams, "none", sizeof(srv->tls_dhparams));
	srv->tls_session_timeout = 300;
	srv->tls_session_tickets = 1;
	srv->ccert_depth = 1;
	/* a proxy that logs users in must know whom it talks to */
	srv->proxy_ssl_verify = 1;
	srv->proxy_ssl_protocols = TLS_PROTOCOL_TLSv1_2 | TLS_PROTOCOL_TLSv1_3;
	strlcpy(srv->proxy_ssl_ciphers, "secure",
	    sizeof(srv->proxy_ssl_ciphers));
	TAILQ_INSERT_TAIL(&conf->servers, srv, entry);
	return (srv);
}

/* a server the parser read and will not serve, and its listens */
void
config_server_drop(struct config *conf, struct server_conf *srv)
{
	struct listen_conf	*lc, *next;

	for (lc = TAILQ_FIRST(&conf->listens); lc != NULL; lc = next) {
		next = TAILQ_NEXT(lc, entry);
		if (lc->server_id != srv->id)
			continue;
		TAILQ_REMOVE(&conf->listens, lc, entry);
		if (lc->fd != -1)
			close(lc->fd);
		free(lc);
	}
	TAILQ_REMOVE(&conf->servers, srv, entry);
	log_dest_close(&srv->error_log);
	server_free(srv);
}

/* a certificate or key file the parent read, once whole; NULL if not */
struct tls_pem *
config_pem(struct config *conf, uint32_t id, uint32_t pair, int key)
{
	struct tls_pem	*pem;

	TAILQ_FOREACH(pem, &conf->tls_pems, entry)
		if (pem->server_id == id && pem->pair == pair &&
		    pem->key == key && pem->got == pem->len)
			return (pem);
	return (NULL);
}

struct server_conf *
config_server_byid(struct config *conf, uint32_t id)
{
	struct server_conf	*srv;

	TAILQ_FOREACH(srv, &conf->servers, entry)
		if (srv->id == id)
			return (srv);
	return (NULL);
}

static void
compose(struct imsgev *iev, uint32_t type, int fd, const void *data,
    size_t len)
{
	if (imsgev_compose(iev, type, 0, fd, data, len) == -1)
		fatal("%s: imsgev_compose", __func__);
}

/* auth_http's https files, which only the auth process gets */
static int
atls_pem(struct tls_pem *pem)
{
	return (pem->pair == ATLS_PEM_CA || pem->pair == ATLS_PEM_CLIENT);
}

/* a PEM file in pieces that fit an imsg; the copies are wiped */
static void
send_pem(struct imsgev *iev, struct tls_pem *pem)
{
	struct tls_pem_chunk	 hdr;
	uint8_t			*buf;
	size_t			 off = 0, n;

	if ((buf = malloc(sizeof(hdr) + TLS_CHUNK_MAX)) == NULL)
		fatal(__func__);
	do {
		n = pem->len - off > TLS_CHUNK_MAX ? TLS_CHUNK_MAX :
		    pem->len - off;
		hdr.server_id = pem->server_id;
		hdr.pair = pem->pair;
		hdr.total = pem->len;
		hdr.offset = off;
		memcpy(buf, &hdr, sizeof(hdr));
		memcpy(buf + sizeof(hdr), pem->data + off, n);
		if (atls_pem(pem)) {
			/* auth only; the key is marked in the pair */
			if (pem->key)
				hdr.pair |= ATLS_KEY_FLAG;
			memcpy(buf, &hdr, sizeof(hdr));
			compose(iev, IMSG_CFG_AUTH_TLS, -1, buf,
			    sizeof(hdr) + n);
		} else
			compose(iev, pem->key ? IMSG_CFG_TLS_KEY :
			    IMSG_CFG_TLS_CERT, -1, buf, sizeof(hdr) + n);
		off += n;
	} while (off < pem->len);
	freezero(buf, sizeof(hdr) + TLS_CHUNK_MAX);
}

/* a server as an imap worker sees it: what it needs to serve clients */
static void
server_for_imap(struct server_conf *s)
{
	int	 n = s->proxy_pass.n;

	explicit_bzero(&s->auth_http, sizeof(s->auth_http));
	explicit_bzero(s->auth_tls_ca_file, sizeof(s->auth_tls_ca_file));
	explicit_bzero(s->auth_tls_cert_file, sizeof(s->auth_tls_cert_file));
	explicit_bzero(s->auth_tls_key_file, sizeof(s->auth_tls_key_file));
	/* how many: the worker's guard timer; not where */
	explicit_bzero(&s->proxy_pass, sizeof(s->proxy_pass));
	s->proxy_pass.n = n;
}

/*
 * with_listeners: an imap worker or the template, which also get a
 * dup of every listening socket and the TLS files of the listeners;
 * else the auth process, which gets what reaches the auth service.
 */
void
config_send(struct imsgev *iev, struct config *conf, int with_listeners)
{
	struct config		 c;
	struct server_conf	*srv, s;
	struct auth_header	*h;
	struct listen_conf	*lc, l;
	struct tls_pem		*pem;
	int			 fd;

	c = *conf;
	memset(&c.servers, 0, sizeof(c.servers));
	memset(&c.listens, 0, sizeof(c.listens));
	memset(&c.tls_pems, 0, sizeof(c.tls_pems));
	compose(iev, IMSG_CFG_GLOBAL, -1, &c, sizeof(c));

	TAILQ_FOREACH(srv, &conf->servers, entry) {
		s = *srv;
		memset(&s.entry, 0, sizeof(s.entry));
		memset(&s.auth_headers, 0, sizeof(s.auth_headers));
		if (with_listeners)
			server_for_imap(&s);
		compose(iev, IMSG_CFG_SERVER, -1, &s, sizeof(s));
		if (!with_listeners)
			TAILQ_FOREACH(h, &srv->auth_headers, entry)
				compose(iev, IMSG_CFG_AUTH_HEADER, -1, h,
				    sizeof(*h));
		explicit_bzero(&s, sizeof(s));
	}

	if (with_listeners) {
		TAILQ_FOREACH(lc, &conf->listens, entry) {
			l = *lc;
			memset(&l.entry, 0, sizeof(l.entry));
			l.file = NULL;
			l.fd = -1;
			/* the imsg closes the copy it sent; ours stays */
			if ((fd = dup(lc->fd)) == -1)
				fatal("%s: dup", __func__);
			compose(iev, IMSG_CFG_LISTEN, fd, &l, sizeof(l));
		}
		TAILQ_FOREACH(pem, &conf->tls_pems, entry)
			if (!atls_pem(pem))
				send_pem(iev, pem);
	} else {
		/* the auth process: auth_http's https files, nothing else */
		TAILQ_FOREACH(pem, &conf->tls_pems, entry)
			if (atls_pem(pem))
				send_pem(iev, pem);
	}
	send_logs(iev, conf);
	compose(iev, IMSG_CFG_DONE, -1, NULL, 0);
}

/* a copy of a destination's descriptor, or -1: syslog(3), or none */
static int
log_dest_dup(struct log_dest *dest)
{
	int	 fd;

	if (dest->fd == -1)
		return (-1);
	if ((fd = fcntl(dest->fd, F_DUPFD_CLOEXEC, 0)) == -1)
		fatal("%s: dup", __func__);
	return (fd);
}

/* every error_log: the main one (0), then each server's own */
static void
send_logs(struct imsgev *iev, struct config *conf)
{
	struct server_conf	*srv;
	uint32_t		 id = 0;

	compose(iev, IMSG_CFG_LOG, log_dest_dup(&conf->error_log), &id,
	    sizeof(id));
	TAILQ_FOREACH(srv, &conf->servers, entry)
		if (srv->error_log_set)
			compose(iev, IMSG_CFG_LOG,
			    log_dest_dup(&srv->error_log), &srv->id,
			    sizeof(srv->id));
}

/* what the parent sent: its descriptor numbers mean nothing here */
static void
log_dest_sane(struct log_dest *dest)
{
	TERMINATE(dest->file);
	TERMINATE(dest->syslog_server);
	TERMINATE(dest->tag);
	if (dest->level < LOG_EMERG || dest->level > LOG_DEBUG)
		dest->level = LOG_ERR;
	if (dest->facility < 0 || dest->facility > 23)
		dest->facility = 23;
	if (dest->syslog_sslen > sizeof(dest->syslog_ss))
		dest->syslog_sslen = 0;
	dest->fd = -1;
}

static void
recv_global(struct config *conf, struct imsg *imsg)
{
	struct config	 c;

	if (imsg_get_data(imsg, &c, sizeof(c)) == -1)
		fatalx("%s: bad length", __func__);
	/* a new configuration replaces the old one entirely */
	config_purge(conf);
	TERMINATE(c.user);
	TERMINATE(c.pid);
	TERMINATE(c.hostname);
	log_dest_sane(&c.error_log);
	c.servers = conf->servers;
	c.listens = conf->listens;
	*conf = c;
	TAILQ_INIT(&conf->servers);
	TAILQ_INIT(&conf->listens);
	TAILQ_INIT(&conf->tls_pems);
}

static int
host_addrs_check(const struct host_addrs *ha)
{
	int	 i;

	if (ha->n < 0 || ha->n > HOST_ADDRS_MAX)
		return (-1);
	for (i = 0; i < ha->n; i++)
		if (ha->len[i] > sizeof(ha->ss[i]))
			return (-1);
	return (0);
}

static void
recv_server(struct config *conf, struct imsg *imsg)
{
	struct server_conf	*srv;
	int			 i;

	if ((srv = malloc(sizeof(*srv))) == NULL)
		fatal(__func__);
	if (imsg_get_data(imsg, srv, sizeof(*srv)) == -1)
		fatalx("%s: bad length", __func__);
	if (config_server_byid(conf, srv->id) != NULL)
		fatalx("%s: duplicate server %u", __func__, srv->id);
	if (host_addrs_check(&srv->proxy_pass) == -1)
		fatalx("%s: bad proxy_pass address", __func__);
	TERMINATE(srv->server_name);
	TERMINATE(srv->imap_capabilities);
	TERMINATE(srv->proxy_pass_name);
	TERMINATE(srv->auth_http.url);
	TERMINATE(srv->auth_http.curl_url);
	TERMINATE(srv->auth_http.unix_path);
	TERMINATE(srv->auth_http.host);
	TERMINATE(srv->auth_http.addrs);
	TERMINATE(srv->tls_ciphers);
	TERMINATE(srv->tls_ecdh_curve);
	TERMINATE(srv->tls_dhparams);
	TERMINATE(srv->proxy_ssl_ciphers);
	TERMINATE(srv->proxy_ssl_name);
	TERMINATE(srv->proxy_ssl_ca_file);
	TERMINATE(srv->proxy_ssl_cert_file);
	TERMINATE(srv->proxy_ssl_key_file);
	for (i = 0; i < TLS_MAX_PAIRS; i++) {
		TERMINATE(srv->tls_cert_file[i]);
		TERMINATE(srv->tls_key_file[i]);
	}
	TERMINATE(srv->ccert_ca_file);
	TERMINATE(srv->ccert_trusted_file);
	TERMINATE(srv->ccert_crl_file);
	log_dest_sane(&srv->error_log);
	/* nonsense from the parent: no TLS rather than an overrun */
	if (srv->tls_npairs < 0 || srv->tls_npairs > TLS_MAX_PAIRS)
		srv->tls_npairs = 0;
	TAILQ_INIT(&srv->auth_headers);
	TAILQ_INSERT_TAIL(&conf->servers, srv, entry);
}

static void
recv_auth_header(struct config *conf, struct imsg *imsg)
{
	struct auth_header	*h;
	struct server_conf	*srv;

	if ((h = malloc(sizeof(*h))) == NULL)
		fatal(__func__);
	if (imsg_get_data(imsg, h, sizeof(*h)) == -1)
		fatalx("%s: bad length", __func__);
	if ((srv = config_server_byid(conf, h->server_id)) == NULL)
		fatalx("%s: unknown server %u", __func__, h->server_id);
	TERMINATE(h->name);
	TERMINATE(h->value);
	TAILQ_INSERT_TAIL(&srv->auth_headers, h, entry);
}

static void
recv_listen(struct config *conf, struct imsg *imsg)
{
	struct listen_conf	*lc;

	if ((lc = malloc(sizeof(*lc))) == NULL)
		fatal(__func__);
	if (imsg_get_data(imsg, lc, sizeof(*lc)) == -1)
		fatalx("%s: bad length", __func__);
	if (config_server_byid(conf, lc->server_id) == NULL)
		fatalx("%s: unknown server %u", __func__, lc->server_id);
	if (lc->sslen > sizeof(lc->ss))
		fatalx("%s: bad address", __func__);
	TERMINATE(lc->name);
	lc->file = NULL;	/* the sender's pointer */
	lc->fd = imsg_get_fd(imsg);
	TAILQ_INSERT_TAIL(&conf->listens, lc, entry);
}

/* a piece of a PEM file; the first one says how long the file is */
static void
recv_pem(struct config *conf, struct imsg *imsg)
{
	struct tls_pem_chunk	 hdr;
	struct tls_pem		*pem;
	size_t			 len = imsg_get_len(imsg), n;
	int			 key = imsg_get_type(imsg) == IMSG_CFG_TLS_KEY;
	int			 atls = imsg_get_type(imsg) == IMSG_CFG_AUTH_TLS;

	if (len < sizeof(hdr))
		fatalx("%s: bad length", __func__);
	memcpy(&hdr, imsg->data, sizeof(hdr));
	n = len - sizeof(hdr);
	if (atls) {
		key = (hdr.pair & ATLS_KEY_FLAG) != 0;
		hdr.pair &= ~ATLS_KEY_FLAG;
		if (hdr.pair != ATLS_PEM_CA && hdr.pair != ATLS_PEM_CLIENT)
			fatalx("%s: bad piece", __func__);
	}
	if (config_server_byid(conf, hdr.server_id) == NULL ||
	    (atls ? key && hdr.pair != ATLS_PEM_CLIENT :
	    ((hdr.pair > CCERT_PAIR_CRL && hdr.pair != PTLS_PEM_CLIENT &&
	    hdr.pair != PTLS_PEM_CA && (hdr.pair < TICKET_PEM ||
	    hdr.pair >= TICKET_PEM + TICKET_FILES_MAX)) ||
	    (key && hdr.pair >= TLS_MAX_PAIRS && hdr.pair != PTLS_PEM_CLIENT &&
	    hdr.pair < TICKET_PEM))) ||
	    hdr.total > TLS_PEM_MAX ||
	    hdr.offset > hdr.total || n > hdr.total - hdr.offset)
		fatalx("%s: bad piece", __func__);
	TAILQ_FOREACH(pem, &conf->tls_pems, entry)
		if (pem->server_id == hdr.server_id && pem->pair == hdr.pair &&
		    pem->key == key)
			break;
	if (pem == NULL) {
		if (hdr.offset != 0 || (pem = calloc(1, sizeof(*pem))) == NULL ||
		    (pem->data = calloc(1, hdr.total + 1)) == NULL)
			fatalx("%s: cannot start a file", __func__);
		pem->server_id = hdr.server_id;
		pem->pair = hdr.pair;
		pem->key = key;
		pem->len = hdr.total;
		TAILQ_INSERT_TAIL(&conf->tls_pems, pem, entry);
	}
	if (hdr.total != pem->len || hdr.offset != pem->got)
		fatalx("%s: pieces out of order", __func__);
	memcpy(pem->data + pem->got, (uint8_t *)imsg->data + sizeof(hdr), n);
	pem->got += n;
	explicit_bzero(imsg->data, len);
}

/* an error_log destination and its descriptor: logging goes there */
static void
recv_log(struct config *conf, struct imsg *imsg)
{
	struct server_conf	*srv = NULL;
	uint32_t		 id;
	int			 fd = imsg_get_fd(imsg);

	if (imsg_get_data(imsg, &id, sizeof(id)) == -1 ||
	    (id != 0 && ((srv = config_server_byid(conf, id)) == NULL ||
	    !srv->error_log_set)))
		fatalx("%s: bad error_log", __func__);
	if (id == 0)
		log_sethostname(conf->hostname);
	log_setdest(id, srv != NULL ? &srv->error_log : &conf->error_log, fd);
}

/* one IMSG_CFG_* message; 1 once the configuration is complete */
int
config_recv(struct config *conf, struct imsg *imsg)
{
	switch (imsg_get_type(imsg)) {
	case IMSG_CFG_GLOBAL:
		recv_global(conf, imsg);
		break;
	case IMSG_CFG_SERVER:
		recv_server(conf, imsg);
		break;
	case IMSG_CFG_AUTH_HEADER:
		recv_auth_header(conf, imsg);
		break;
	case IMSG_CFG_LISTEN:
		recv_listen(conf, imsg);
		break;
	case IMSG_CFG_TLS_CERT:
	case IMSG_CFG_TLS_KEY:
	case IMSG_CFG_AUTH_TLS:
		recv_pem(conf, imsg);
		break;
	case IMSG_CFG_LOG:
		recv_log(conf, imsg);
		break;
	case IMSG_CFG_DONE:
		if (imsg_get_len(imsg) != 0)
			fatalx("%s: bad length", __func__);
		return (1);
	default:
		fatalx("%s: unexpected imsg %u", __func__,
		    imsg_get_type(imsg));
	}
	return (0);
}
