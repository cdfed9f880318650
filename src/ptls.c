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
 * TLS to the backend, with libtls client contexts (proxy_ssl).  The
 * parent read the CA bundle and the client certificate; an imap worker
 * builds one libtls configuration per server from those bytes, keeps it
 * (each backend connection is configured from it) and drops the PEM
 * copies with ctls_wipe().  No file is opened after the sandbox.
 *
 * proxy.c reads and writes the backend only through ptls_read() and
 * ptls_write() once the handshake is done; they have read(2) and
 * write(2) semantics, as ctls_read() and ctls_write() for clients.
 */

#include <sys/types.h>
#include <sys/socket.h>

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <tls.h>

#include "imaprelayd.h"
#include "imap.h"

struct ptls_server {
	TAILQ_ENTRY(ptls_server)	 entry;
	uint32_t			 id;
	struct tls_config		*tc;
	int				 noca;	/* verify, without a CA */
};
static TAILQ_HEAD(, ptls_server) ptls_servers =
    TAILQ_HEAD_INITIALIZER(ptls_servers);

/* a server's backend settings in libtls's terms; NULL (logged) if not */
static struct tls_config *
ptls_config(struct config *conf, struct server_conf *sc)
{
	struct tls_config	*tc;
	struct tls_pem		*ca, *cert, *key;
	const char		*what;

	if ((tc = tls_config_new()) == NULL)
		fatal("tls_config_new");
	what = "proxy_ssl_protocols";
	if (tls_config_set_protocols(tc, sc->proxy_ssl_protocols) == -1)
		goto fail;
	what = "proxy_ssl_ciphers";
	if (tls_config_set_ciphers(tc, sc->proxy_ssl_ciphers) == -1)
		goto fail;
	if (!sc->proxy_ssl_verify) {
		tls_config_insecure_noverifycert(tc);
		tls_config_insecure_noverifyname(tc);
	} else if ((ca = config_pem(conf, sc->id, PTLS_PEM_CA, 0)) != NULL) {
		what = "proxy_ssl_trusted_certificate";
		if (tls_config_set_ca_mem(tc, ca->data, ca->len) == -1)
			goto fail;
	}
	cert = config_pem(conf, sc->id, PTLS_PEM_CLIENT, 0);
	key = config_pem(conf, sc->id, PTLS_PEM_CLIENT, 1);
	what = "proxy_ssl_certificate";
	if (cert != NULL && key != NULL && tls_config_set_keypair_mem(tc,
	    cert->data, cert->len, key->data, key->len) == -1)
		goto fail;
	return (tc);
 fail:
	log_warnx("server %s: %s: %s", sc->server_name, what,
	    tls_config_error(tc));
	tls_config_free(tc);
	return (NULL);
}

/*
 * The parent: build every configuration as a worker will, so that a
 * bad bundle or a key that does not match stops the start.
 */
int
ptls_check(struct config *conf)
{
	struct server_conf	*sc;
	struct tls_config	*tc;
	struct tls		*ctx;
	int			 rv = 0;

	TAILQ_FOREACH(sc, &conf->servers, entry) {
		if (sc->proxy_ssl == PTLS_OFF && !sc->auth_http_set)
			continue;
		if ((tc = ptls_config(conf, sc)) == NULL)
			return (-1);
		if ((ctx = tls_client()) == NULL)
			fatal("tls_client");
		if (tls_configure(ctx, tc) == -1) {
			log_warnx("server %s: proxy_ssl: %s", sc->server_name,
			    tls_error(ctx));
			rv = -1;
		}
		tls_free(ctx);
		tls_config_clear_keys(tc);
		tls_config_free(tc);
		if (rv == -1)
			return (-1);
	}
	return (0);
}

/* an imap worker, before ctls_wipe(): one configuration per server */
void
ptls_configure(struct config *conf)
{
	struct server_conf	*sc;
	struct ptls_server	*ps;

	while ((ps = TAILQ_FIRST(&ptls_servers)) != NULL) {
		TAILQ_REMOVE(&ptls_servers, ps, entry);
		tls_config_free(ps->tc);
		free(ps);
	}
	TAILQ_FOREACH(sc, &conf->servers, entry) {
		if (sc->proxy_ssl == PTLS_OFF && !sc->auth_http_set)
			continue;
		if ((ps = calloc(1, sizeof(*ps))) == NULL)
			fatal(__func__);
		ps->id = sc->id;
		ps->noca = sc->proxy_ssl_verify &&
		    config_pem(conf, sc->id, PTLS_PEM_CA, 0) == NULL;
		if ((ps->tc = ptls_config(conf, sc)) == NULL)
			fatalx("%s: server %s: no backend TLS", __func__,
			    sc->server_name);
		TAILQ_INSERT_TAIL(&ptls_servers, ps, entry);
	}
}

/* the TLS side of the backend socket; the handshake follows */
int
ptls_start(struct session *s)
{
	struct ptls_server	*ps;

	TAILQ_FOREACH(ps, &ptls_servers, entry)
		if (ps->id == s->conf->id)
			break;
	if (ps == NULL || ps->noca) {
		/* libtls would look for a CA file the sandbox hides */
		log_warnx("backend %s: no CA to verify it: set "
		    "proxy_ssl_trusted_certificate", s->backend);
		errno = ENOENT;
		return (-1);
	}
	/* no name (out of memory): never connect unverified */
	if (s->bssl_name == NULL) {
		errno = ENOMEM;
		return (-1);
	}
	if ((s->btls = tls_client()) == NULL)
		return (-1);
	if (tls_configure(s->btls, ps->tc) == -1 ||
	    tls_connect_socket(s->btls, s->bfd, s->bssl_name) == -1) {
		log_warnx("backend %s: %s", s->backend, tls_error(s->btls));
		tls_free(s->btls);
		s->btls = NULL;
		errno = EPROTO;
		return (-1);
	}
	s->btls_state = TLSS_HANDSHAKE;
	s->btls_want = CTLS_WANT_WRITE;		/* the client speaks first */
	return (0);
}

/* 1: done, 0: again when btls_want says, -1: failed with why filled */
int
ptls_handshake(struct session *s, char *why, size_t len)
{
	int	 r;

	r = tls_handshake(s->btls);
	if (r == TLS_WANT_POLLIN || r == TLS_WANT_POLLOUT) {
		s->btls_want = r == TLS_WANT_POLLIN ? CTLS_WANT_READ :
		    CTLS_WANT_WRITE;
		return (0);
	}
	if (r == -1) {
		snprintf(why, len, "%s", tls_error(s->btls) ?
		    tls_error(s->btls) : "unknown error");
		return (-1);
	}
	s->btls_state = TLSS_ON;
	s->btls_want = 0;
	s->btls_more = 1;
	log_debug("tls backend=%s name=%s version=%s cipher=%s", s->backend,
	    s->bssl_name, tls_conn_version(s->btls), tls_conn_cipher(s->btls));
	return (1);
}

ssize_t
ptls_read(struct session *s, void *buf, size_t len)
{
	return (tlsio_read(s->btls, buf, len, &s->btls_more, &s->btls_rwantw,
	    "backend", s->backend));
}

ssize_t
ptls_write(struct session *s, const void *buf, size_t len)
{
	return (tlsio_write(s->btls, buf, len, &s->btls_wwantr, "backend",
	    s->backend));
}

/* close_notify without waiting for the backend's, when it is dropped */
void
ptls_close(struct session *s)
{
	if (s->btls != NULL && s->btls_state == TLSS_ON)
		(void)tls_close(s->btls);
}

void
ptls_free(struct session *s)
{
	if (s->btls == NULL)
		return;
	ptls_close(s);
	tls_free(s->btls);
	s->btls = NULL;
	s->btls_state = TLSS_NONE;
	s->btls_want = s->btls_more = 0;
	s->btls_rwantw = s->btls_wwantr = 0;
}
