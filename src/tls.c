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
 * TLS towards clients, with libtls: implicit TLS (listen ... ssl) and
 * STARTTLS.  The parent read the certificates and keys; the imap
 * worker gets their bytes over imsg, builds one libtls server context
 * per server from memory and wipes every copy it holds.  The parent
 * builds the same contexts once as a check, so that a key that does not
 * match its certificate stops the start instead of every worker.
 *
 * Everything libtls is here; imap.c calls these through client_read()
 * and client_write() and drives the handshake from its events.
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

static struct tls_config *ctls_config(struct config *, struct server_conf *);
static int	ctls_keypairs(struct tls_config *, struct config *,
		    struct server_conf *);
static struct tls_pem *ctls_pem(struct config *, uint32_t, uint32_t, int);
static int	ctls_pairs(struct tls_config *, struct config *,
		    struct server_conf *, int);
static int	ticket_config(struct tls_config *, struct server_conf *);
static void	ticket_keep(struct tls_config *);

/*
 * Session tickets.  The parent makes the keys and sends them to every
 * worker (IMSG_CTL_TICKET_KEY), so a ticket one worker issued resumes
 * in any other.  A worker holds the newest keys, oldest first, and
 * the libtls configurations that use them, to add the keys that come
 * later; the contexts keep those configurations alive.
 */
#define TICKET_KEYS_MAX		2
static struct ticket_key	 ticket_keys[TICKET_KEYS_MAX];
static int			 ticket_nkeys;
static struct tls_config	**ticket_cfgs;
static size_t			 ticket_ncfgs;

static struct tls_pem *
ctls_pem(struct config *conf, uint32_t id, uint32_t pair, int key)
{
	struct tls_pem	*pem;

	TAILQ_FOREACH(pem, &conf->tls_pems, entry)
		if (pem->server_id == id && pem->pair == pair &&
		    pem->key == key && pem->got == pem->len)
			return (pem);
	return (NULL);
}

/*
 * The first pair is the default; libtls picks a further pair only by
 * the name a client asks for (SNI), not by its key type.
 */
static int
ctls_keypairs(struct tls_config *tc, struct config *conf,
    struct server_conf *sc)
{
	struct server_conf	*o;

	if (ctls_pairs(tc, conf, sc, 0) == -1)
		return (-1);
	/* servers told apart by SNI on one address: all their pairs */
	TAILQ_FOREACH(o, &conf->servers, entry)
		if (o != sc && sni_sibling(conf, sc, o) &&
		    ctls_pairs(tc, conf, o, 1) == -1)
			return (-1);
	return (0);
}

/* whether a and b share a listen address (parse.c allowed it for SNI) */
int
sni_sibling(struct config *conf, struct server_conf *a,
    struct server_conf *b)
{
	struct listen_conf	*la, *lb;

	TAILQ_FOREACH(la, &conf->listens, entry) {
		if (la->server_id != a->id)
			continue;
		TAILQ_FOREACH(lb, &conf->listens, entry)
			if (lb->server_id == b->id &&
			    strcmp(la->name, lb->name) == 0)
				return (1);
	}
	return (0);
}

static int
ctls_pairs(struct tls_config *tc, struct config *conf,
    struct server_conf *sc, int add)
{
	struct tls_pem	*cert, *key;
	int		 i, rv;

	for (i = 0; i < sc->tls_npairs; i++) {
		cert = ctls_pem(conf, sc->id, i, 0);
		key = ctls_pem(conf, sc->id, i, 1);
		if (cert == NULL || key == NULL) {
			log_warnx("certificate \"%s\": not received",
			    sc->tls_cert_file[i]);
			return (-1);
		}
		if (i == 0 && !add)
			rv = tls_config_set_keypair_mem(tc, cert->data,
			    cert->len, key->data, key->len);
		else
			rv = tls_config_add_keypair_mem(tc, cert->data,
			    cert->len, key->data, key->len);
		if (rv == -1) {
			log_warnx("certificate \"%s\", key \"%s\": %s",
			    sc->tls_cert_file[i], sc->tls_key_file[i],
			    tls_config_error(tc));
			return (-1);
		}
	}
	return (0);
}

/* a server's settings in libtls's terms; NULL (logged) if refused */
static struct tls_config *
ctls_config(struct config *conf, struct server_conf *sc)
{
	struct tls_config	*tc;
	const char		*what;

	if ((tc = tls_config_new()) == NULL)
		fatal("tls_config_new");
	what = "protocols";
	if (tls_config_set_protocols(tc, sc->tls_protocols) == -1)
		goto fail;
	what = "ssl_ciphers";
	if (tls_config_set_ciphers(tc, sc->tls_ciphers) == -1)
		goto fail;
	/* libtls prefers the server's order by default, nginx does not */
	if (sc->tls_prefer_server_ciphers)
		tls_config_prefer_ciphers_server(tc);
	else
		tls_config_prefer_ciphers_client(tc);
	what = "ssl_ecdh_curve";
	if (tls_config_set_ecdhecurves(tc, sc->tls_ecdh_curve) == -1)
		goto fail;
	what = "ssl_dhparam";
	if (tls_config_set_dheparams(tc, sc->tls_dhparams) == -1)
		goto fail;
	/* resumption is by tickets, whose keys come from the parent */
	what = "ssl_session_timeout";
	if (ticket_config(tc, sc) == -1)
		goto fail;
	/* ALPACA: a client that says which protocol it speaks says imap */
	what = "alpn";
	if (tls_config_set_alpn(tc, "imap") == -1)
		goto fail;
	/* ssl_verify_client: libcrypto verifies after the handshake */
	if (ccert_config(tc, conf, sc) == -1) {
		tls_config_free(tc);
		return (NULL);
	}
	if (ctls_keypairs(tc, conf, sc) == -1) {
		tls_config_free(tc);
		return (NULL);
	}
	return (tc);
 fail:
	log_warnx("server %s: %s: %s", sc->server_name, what,
	    tls_config_error(tc));
	tls_config_free(tc);
	return (NULL);
}

/* a configured libtls server context, keys wiped; NULL (logged) if not */
struct tls *
ctls_server(struct config *conf, struct server_conf *sc)
{
	struct tls_config	*tc;
	struct tls		*ctx;

	if ((tc = ctls_config(conf, sc)) == NULL)
		return (NULL);
	if ((ctx = tls_server()) == NULL)
		fatal("tls_server");
	if (tls_configure(ctx, tc) == -1) {
		log_warnx("server %s, certificate \"%s\": %s",
		    sc->server_name, sc->tls_cert_file[0], tls_error(ctx));
		tls_free(ctx);
		ctx = NULL;
	}
	/* the context holds what it needs; libtls's copies go now */
	tls_config_clear_keys(tc);
	if (ctx != NULL && sc->tls_session_tickets && ticket_nkeys > 0)
		ticket_keep(tc);
	tls_config_free(tc);
	return (ctx);
}

/*
 * The session id context must be the same in every worker, or a
 * client's session is refused where it did not start; one per server.
 * Without keys from the parent (its own check) anything will do.
 */
static int
ticket_config(struct tls_config *tc, struct server_conf *sc)
{
	struct ticket_key	*tk;
	unsigned char		 sid[TLS_MAX_SESSION_ID_LENGTH];
	uint32_t		 id = sc->id;
	int			 i;

	if (ticket_nkeys > 0)
		memcpy(sid, ticket_keys[0].sid, sizeof(sid));
	else
		arc4random_buf(sid, sizeof(sid));
	for (i = 0; i < (int)sizeof(id); i++)
		sid[i] ^= (id >> (8 * i)) & 0xff;
	if (tls_config_set_session_id(tc, sid, sizeof(sid)) == -1 ||
	    tls_config_set_session_lifetime(tc, sc->tls_session_tickets ?
	    (int)sc->tls_session_timeout : 0) == -1)
		return (-1);
	explicit_bzero(sid, sizeof(sid));
	if (!sc->tls_session_tickets)
		return (0);
	for (i = 0; i < ticket_nkeys; i++) {
		tk = &ticket_keys[i];
		if (tls_config_add_ticket_key(tc, tk->keyrev, tk->key,
		    sizeof(tk->key)) == -1)
			return (-1);
	}
	return (0);
}

static void
ticket_keep(struct tls_config *tc)
{
	struct tls_config	**p;

	if ((p = reallocarray(ticket_cfgs, ticket_ncfgs + 1,
	    sizeof(*p))) == NULL)
		fatal(__func__);
	ticket_cfgs = p;
	ticket_cfgs[ticket_ncfgs++] = tc;
}

/* a new key from the parent: it encrypts from now on, the last decrypts */
void
ctls_ticket_key(struct imsg *imsg)
{
	struct ticket_key	 tk;
	size_t			 i;

	if (imsg_get_data(imsg, &tk, sizeof(tk)) == -1)
		fatal("IMSG_CTL_TICKET_KEY");
	if (ticket_nkeys == TICKET_KEYS_MAX) {
		memmove(&ticket_keys[0], &ticket_keys[1],
		    sizeof(ticket_keys) - sizeof(ticket_keys[0]));
		ticket_nkeys--;
	}
	ticket_keys[ticket_nkeys++] = tk;
	for (i = 0; i < ticket_ncfgs; i++)
		if (tls_config_add_ticket_key(ticket_cfgs[i], tk.keyrev,
		    tk.key, sizeof(tk.key)) == -1)
			log_warnx("ticket key %u: %s", tk.keyrev,
			    tls_config_error(ticket_cfgs[i]));
	log_debug("ticket key %u", tk.keyrev);
	explicit_bzero(&tk, sizeof(tk));
	explicit_bzero(imsg->data, imsg_get_len(imsg));
}

/* once configured, a worker keeps no key bytes of its own */
void
ctls_wipe(struct config *conf)
{
	struct tls_pem	*pem;

	while ((pem = TAILQ_FIRST(&conf->tls_pems)) != NULL) {
		TAILQ_REMOVE(&conf->tls_pems, pem, entry);
		freezero(pem->data, pem->len + 1);
		free(pem);
	}
}

/* the parent: build every TLS server as a worker will; -1 if one fails */
int
ctls_check(struct config *conf)
{
	struct server_conf	*sc;
	struct tls		*ctx;

	if (tls_init() == -1) {
		log_warnx("tls_init failed");
		return (-1);
	}
	TAILQ_FOREACH(sc, &conf->servers, entry) {
		if (sc->tls_npairs == 0)
			continue;
		if ((ctx = ctls_server(conf, sc)) == NULL)
			return (-1);
		tls_free(ctx);
	}
	return (ptls_check(conf));
}

/*
 * Per session.
 */

/* the TLS side of a new or STARTTLS client; the handshake follows */
int
ctls_start(struct session *s)
{
	if (tls_accept_socket(s->srv->tls, &s->tls, s->cfd) == -1) {
		log_warnx("client=%s: tls_accept_socket: %s", s->client,
		    tls_error(s->srv->tls));
		s->tls = NULL;
		return (-1);
	}
	s->tls_state = TLSS_HANDSHAKE;
	s->tls_want = CTLS_WANT_READ;	/* the client speaks first */
	return (0);
}

/* 1: done, 0: call again when tls_want says, -1: failed, session closed */
int
ctls_handshake(struct session *s)
{
	char	 reason[256];
	size_t	 i;
	int	 r;

	r = tls_handshake(s->tls);
	if (r == TLS_WANT_POLLIN || r == TLS_WANT_POLLOUT) {
		s->tls_want = r == TLS_WANT_POLLIN ? CTLS_WANT_READ :
		    CTLS_WANT_WRITE;
		return (0);
	}
	if (r == -1) {
		snprintf(reason, sizeof(reason), "tls handshake failed: %s",
		    tls_error(s->tls) ? tls_error(s->tls) : "unknown error");
		/* the reason goes into a quoted log field */
		for (i = 0; reason[i] != '\0'; i++)
			if (reason[i] == '"' || (unsigned char)reason[i] < 0x20)
				reason[i] = '\'';
		session_close(s, reason);
		return (-1);
	}
	s->tls_state = TLSS_ON;
	s->tls_want = 0;
	/* application data may already wait inside libtls */
	s->tls_more = 1;
	log_debug("tls client=%s version=%s cipher=%s alpn=%s resumed=%s",
	    s->client, tls_conn_version(s->tls), tls_conn_cipher(s->tls),
	    tls_conn_alpn_selected(s->tls) ? tls_conn_alpn_selected(s->tls) :
	    "-", tls_conn_session_resumed(s->tls) ? "yes" : "no");
	return (1);
}

/*
 * read(2) and write(2) semantics over libtls, for the client and the
 * backend side alike: libtls's "try again" is EAGAIN; a wait for the
 * other direction is remembered for session_update().
 */
ssize_t
tlsio_read(struct tls *ctx, void *buf, size_t len, int *more, int *wantw,
    const char *side, const char *peer)
{
	ssize_t	 n;

	n = tls_read(ctx, buf, len);
	if (n == TLS_WANT_POLLIN || n == TLS_WANT_POLLOUT) {
		*more = 0;
		if (n == TLS_WANT_POLLOUT)
			*wantw = 1;
		errno = EAGAIN;
		return (-1);
	}
	if (n == -1) {
		log_debug("%s=%s: tls_read: %s", side, peer, tls_error(ctx));
		*more = 0;
		errno = EIO;
		return (-1);
	}
	/* a full buffer: libtls may hold more than the socket shows */
	*more = n > 0 && (size_t)n == len;
	return (n);
}

ssize_t
tlsio_write(struct tls *ctx, const void *buf, size_t len, int *wantr,
    const char *side, const char *peer)
{
	ssize_t	 n;

	n = tls_write(ctx, buf, len);
	if (n == TLS_WANT_POLLIN || n == TLS_WANT_POLLOUT) {
		if (n == TLS_WANT_POLLIN)
			*wantr = 1;
		errno = EAGAIN;
		return (-1);
	}
	if (n == -1) {
		log_debug("%s=%s: tls_write: %s", side, peer, tls_error(ctx));
		errno = EPIPE;
		return (-1);
	}
	return (n);
}

ssize_t
ctls_read(struct session *s, void *buf, size_t len)
{
	return (tlsio_read(s->tls, buf, len, &s->tls_more, &s->tls_rwantw,
	    "client", s->client));
}

ssize_t
ctls_write(struct session *s, const void *buf, size_t len)
{
	return (tlsio_write(s->tls, buf, len, &s->tls_wwantr, "client",
	    s->client));
}

/* close_notify, once, without waiting for the client's */
void
ctls_close(struct session *s)
{
	if (s->tls == NULL || s->tls_closed)
		return;
	s->tls_closed = 1;
	if (s->tls_state == TLSS_ON)
		(void)tls_close(s->tls);
}

void
ctls_free(struct session *s)
{
	if (s->tls == NULL)
		return;
	ctls_close(s);
	tls_free(s->tls);
	s->tls = NULL;
}

/* the name the client asked for (SNI), NULL if none */
const char *
ctls_servername(struct session *s)
{
	return (s->tls != NULL ? tls_conn_servername(s->tls) : NULL);
}

/* for Auth-SSL-Protocol and Auth-SSL-Cipher */
void
ctls_info(struct session *s, char *proto, size_t plen, char *cipher,
    size_t clen)
{
	const char	*v, *c;

	v = s->tls != NULL ? tls_conn_version(s->tls) : NULL;
	c = s->tls != NULL ? tls_conn_cipher(s->tls) : NULL;
	strlcpy(proto, v != NULL ? v : "", plen);
	strlcpy(cipher, c != NULL ? c : "", clen);
}

#if defined(__linux__) && !defined(__OpenBSD__)
/*
 * libretls (libtls on OpenSSL, Linux) returns 0 from its ticket key
 * callback when it made a ticket, which LibreSSL takes for success but
 * OpenSSL 1.1.1 and later for "issue an empty ticket": no session ever
 * resumes.  The callback is set through SSL_CTX_callback_ctrl(), so the
 * one here stands in for OpenSSL's, wraps that callback and passes
 * everything on.  A libtls built on LibreSSL never goes through this.
 */
#include <dlfcn.h>
#include <openssl/opensslv.h>

#ifndef LIBRESSL_VERSION_NUMBER
#include <openssl/ssl.h>

typedef int	(*ticket_cb_t)(SSL *, unsigned char *, unsigned char *,
		    EVP_CIPHER_CTX *, HMAC_CTX *, int);
typedef long	(*callback_ctrl_t)(SSL_CTX *, int, void (*)(void));

static ticket_cb_t	 ticket_cb_libtls;

static int
ticket_cb_fix(SSL *ssl, unsigned char *name, unsigned char *iv,
    EVP_CIPHER_CTX *cctx, HMAC_CTX *hctx, int enc)
{
	int	 r;

	r = ticket_cb_libtls(ssl, name, iv, cctx, hctx, enc);
	/* encrypting, libtls's 0 is a ticket made */
	return (enc && r == 0 ? 1 : r);
}

long
SSL_CTX_callback_ctrl(SSL_CTX *ctx, int cmd, void (*fp)(void))
{
	static callback_ctrl_t	 real;

	if (real == NULL && (real = (callback_ctrl_t)dlsym(RTLD_NEXT,
	    "SSL_CTX_callback_ctrl")) == NULL)
		fatalx("SSL_CTX_callback_ctrl: %s", dlerror());
	if (cmd == SSL_CTRL_SET_TLSEXT_TICKET_KEY_CB && fp != NULL &&
	    OpenSSL_version_num() >= 0x10101000L) {
		ticket_cb_libtls = (ticket_cb_t)fp;
		fp = (void (*)(void))ticket_cb_fix;
	}
	return (real(ctx, cmd, fp));
}
#endif /* !LIBRESSL_VERSION_NUMBER */
#endif /* __linux__ */
