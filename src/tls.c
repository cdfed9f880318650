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
 * Everything libtls is here; session.c calls these through
 * client_read() and client_write() and drives the handshake from its
 * events.
 */

#include <sys/types.h>
#include <sys/socket.h>

#include <errno.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <tls.h>
#include <unistd.h>

#include <openssl/bio.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/x509.h>

#include "imaprelayd.h"
#include "imap.h"
#include "chello.h"

static struct tls_config *ctls_config(struct config *, struct server_conf *,
		    int);
static struct tls *ctls_context(struct config *, struct server_conf *, int);
static int	ctls_keypairs(struct tls_config *, struct config *,
		    struct server_conf *, int);
static int	ctls_pair_add(struct tls_config *, struct config *,
		    struct server_conf *, int, int);
static int	ctls_pair_type(struct config *, struct server_conf *, int,
		    int *);
static int	ctls_pair_pass(struct config *, struct server_conf *, int,
		    int, int);
static int	ctls_first(struct config *, struct server_conf *, int);
static int	ctls_keytypes(struct config *, struct server_conf *, int *);
static void	ctls_server_free(struct tls *);
static int	ctls_hello(struct session *);
static struct tls *ctls_pick(struct session *, struct chello *);
static void	ctls_alert(struct session *, unsigned char);
static void	ctls_hello_free(struct session *);
static ssize_t	ctls_cb_read(struct tls *, void *, size_t, void *);
static ssize_t	ctls_cb_write(struct tls *, const void *, size_t, void *);
static int	ticket_config(struct tls_config *, struct config *,
		    struct server_conf *);
static struct ticket_file_set *ticket_files_load(struct config *,
		    struct server_conf *);
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

/*
 * ssl_session_ticket_key: keys from files, as nginx uses them, so that
 * tickets outlive a restart and work with nginx's.  libtls cannot take
 * them (it names its keys at random), so the ticket callback libtls
 * sets is replaced by ticket_cb_file() on the contexts of a server
 * with files: the first key encrypts, every one decrypts.  Each
 * context is remembered with its server's keys (ticket_ctxs).
 */
struct ticket_file_key {
	unsigned char	 name[16];
	unsigned char	 aes[32];
	unsigned char	 hmac[32];
	size_t		 size;		/* 48 or 80: AES-128 or AES-256 */
};
struct ticket_file_set {
	uint32_t		 server_id;
	int			 nkeys;
	struct ticket_file_key	 keys[TICKET_FILES_MAX];
};
static struct ticket_file_set	**ticket_sets;
static size_t			 ticket_nsets;
/* the set of the server tls_configure() is building, for the callback */
static struct ticket_file_set	*ticket_set_building;

/*
 * Key types.  libtls picks a further pair only by the name a client
 * asks for (SNI), never by what the client can verify.  A server whose
 * pairs (its own and its SNI siblings') hold both RSA and ECDSA keys
 * gets two contexts, one preferring each type, and ctls_hello() picks
 * one from the ClientHello, as OpenSSL does for nginx.  A context's
 * default pair is the server's first, or a pair of its type for the
 * same names; after it the preferred type's pairs come first, so that
 * a name both types carry selects the preferred one by SNI too.
 */
#define KEY_RSA		1
#define KEY_EC		2

struct ctls_alt {
	struct tls	*deflt;		/* the server's srv->tls */
	struct tls	*ctx[3];	/* by KEY_* */
	int		 ecbits;	/* the ECDSA pair's curve */
};
static struct ctls_alt	*ctls_alts;
static size_t		 ctls_nalts;

/* a pair's certificate, parsed; NULL if it has none */
static X509 *
ctls_pair_x509(struct config *conf, struct server_conf *sc, int i)
{
	struct tls_pem	*cert;
	BIO		*bio;
	X509		*x;

	if ((cert = config_pem(conf, sc->id, i, 0)) == NULL ||
	    cert->len > INT_MAX)
		return (NULL);
	if ((bio = BIO_new_mem_buf(cert->data, (int)cert->len)) == NULL)
		fatalx("%s: BIO_new_mem_buf", __func__);
	x = PEM_read_bio_X509(bio, NULL, NULL, NULL);
	BIO_free(bio);
	/* what failed here libtls says when it loads the pair */
	ERR_clear_error();
	return (x);
}

/* KEY_* of a pair's certificate, 0 for others; bits of an EC curve */
static int
ctls_pair_type(struct config *conf, struct server_conf *sc, int i,
    int *bits)
{
	X509		*x;
	EVP_PKEY	*pk;
	int		 type = 0;

	if ((x = ctls_pair_x509(conf, sc, i)) == NULL)
		return (0);
	if ((pk = X509_get0_pubkey(x)) != NULL) {
		switch (EVP_PKEY_base_id(pk)) {
		case EVP_PKEY_RSA:
			type = KEY_RSA;
			break;
		case EVP_PKEY_EC:
			type = KEY_EC;
			if (bits != NULL)
				*bits = EVP_PKEY_bits(pk);
			break;
		}
	}
	X509_free(x);
	return (type);
}

/*
 * Whether two pairs are for the same names (the same subjectAltName,
 * or without one the same subject): only then is one the other's
 * stand-in for clients of the other key type.  Pairs for other names
 * stay for SNI alone.
 */
static int
ctls_same_names(struct config *conf, struct server_conf *sc, int i, int j)
{
	X509			*a, *b;
	ASN1_OCTET_STRING	*sa, *sb;
	int			 ia, ib, same = 0;

	a = ctls_pair_x509(conf, sc, i);
	b = ctls_pair_x509(conf, sc, j);
	if (a != NULL && b != NULL) {
		ia = X509_get_ext_by_NID(a, NID_subject_alt_name, -1);
		ib = X509_get_ext_by_NID(b, NID_subject_alt_name, -1);
		if (ia >= 0 && ib >= 0) {
			sa = X509_EXTENSION_get_data(X509_get_ext(a, ia));
			sb = X509_EXTENSION_get_data(X509_get_ext(b, ib));
			same = ASN1_STRING_cmp(sa, sb) == 0;
		} else if (ia < 0 && ib < 0)
			same = X509_NAME_cmp(X509_get_subject_name(a),
			    X509_get_subject_name(b)) == 0;
	}
	X509_free(a);
	X509_free(b);
	return (same);
}

/* which pair types a server's context holds: KEY_* bits */
static int
ctls_keytypes(struct config *conf, struct server_conf *sc, int *ecbits)
{
	struct server_conf	*o;
	int			 i, bits, types = 0;

	TAILQ_FOREACH(o, &conf->servers, entry) {
		if (o != sc && !sni_sibling(conf, sc, o))
			continue;
		for (i = 0; i < o->tls_npairs; i++)
			types |= ctls_pair_type(conf, o, i,
			    (types & KEY_EC) ? NULL : ecbits);
	}
	/*
	 * With both types, the ECDSA context's default pair says which
	 * curve counts (a single type, the usual case, needs no more
	 * parsing: every worker that starts comes through here).
	 */
	if (types == (KEY_RSA | KEY_EC) &&
	    (i = ctls_first(conf, sc, KEY_EC)) != -1 &&
	    ctls_pair_type(conf, sc, i, &bits) == KEY_EC)
		*ecbits = bits;
	return (types);
}

/*
 * The default pair of a context preferring a key type: the server's
 * first, or the first of that type for the same names; -1 if none.
 */
static int
ctls_first(struct config *conf, struct server_conf *sc, int prefer)
{
	int	 i;

	if (sc->tls_npairs == 0)
		return (-1);
	if (prefer == 0 || ctls_pair_type(conf, sc, 0, NULL) == prefer)
		return (0);
	for (i = 1; i < sc->tls_npairs; i++)
		if (ctls_pair_type(conf, sc, i, NULL) == prefer &&
		    ctls_same_names(conf, sc, 0, i))
			return (i);
	return (0);
}

/* pass 0 takes the preferred type's pairs, pass 1 the others */
static int
ctls_pair_pass(struct config *conf, struct server_conf *sc, int i,
    int prefer, int pass)
{
	if (prefer == 0)
		return (pass == 0);
	return ((ctls_pair_type(conf, sc, i, NULL) == prefer) == (pass == 0));
}

/*
 * The default pair first (ctls_first()), then the rest, the servers
 * told apart by SNI on one address included.
 */
static int
ctls_keypairs(struct tls_config *tc, struct config *conf,
    struct server_conf *sc, int prefer)
{
	struct server_conf	*o;
	int			 first, i, pass;

	if ((first = ctls_first(conf, sc, prefer)) == -1)
		first = 0;
	if (ctls_pair_add(tc, conf, sc, first, 1) == -1)
		return (-1);
	for (pass = 0; pass < 2; pass++) {
		for (i = 0; i < sc->tls_npairs; i++)
			if (i != first &&
			    ctls_pair_pass(conf, sc, i, prefer, pass) &&
			    ctls_pair_add(tc, conf, sc, i, 0) == -1)
				return (-1);
		TAILQ_FOREACH(o, &conf->servers, entry) {
			if (o == sc || !sni_sibling(conf, sc, o))
				continue;
			for (i = 0; i < o->tls_npairs; i++)
				if (ctls_pair_pass(conf, o, i, prefer, pass) &&
				    ctls_pair_add(tc, conf, o, i, 0) == -1)
					return (-1);
		}
	}
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
ctls_pair_add(struct tls_config *tc, struct config *conf,
    struct server_conf *sc, int i, int deflt)
{
	struct tls_pem	*cert, *key;
	int		 rv;

	cert = config_pem(conf, sc->id, i, 0);
	key = config_pem(conf, sc->id, i, 1);
	if (cert == NULL || key == NULL) {
		log_warnx("certificate \"%s\": not received",
		    sc->tls_cert_file[i]);
		return (-1);
	}
	if (deflt)
		rv = tls_config_set_keypair_mem(tc, cert->data, cert->len,
		    key->data, key->len);
	else
		rv = tls_config_add_keypair_mem(tc, cert->data, cert->len,
		    key->data, key->len);
	if (rv == -1) {
		log_warnx("certificate \"%s\", key \"%s\": %s",
		    sc->tls_cert_file[i], sc->tls_key_file[i],
		    tls_config_error(tc));
		return (-1);
	}
	return (0);
}

/* a server's settings in libtls's terms; NULL (logged) if refused */
static struct tls_config *
ctls_config(struct config *conf, struct server_conf *sc, int prefer)
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
	if (ticket_config(tc, conf, sc) == -1)
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
	if (ctls_keypairs(tc, conf, sc, prefer) == -1) {
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
static struct tls *
ctls_context(struct config *conf, struct server_conf *sc, int prefer)
{
	struct tls_config	*tc;
	struct tls		*ctx;
	int			 first, r;

	if ((tc = ctls_config(conf, sc, prefer)) == NULL)
		return (NULL);
	if ((ctx = tls_server()) == NULL)
		fatal("tls_server");
	ticket_set_building = sc->tls_session_tickets ?
	    ticket_files_load(conf, sc) : NULL;
	r = tls_configure(ctx, tc);
	ticket_set_building = NULL;
	if (r == -1) {
		if ((first = ctls_first(conf, sc, prefer)) == -1)
			first = 0;
		log_warnx("server %s, certificate \"%s\": %s",
		    sc->server_name, sc->tls_cert_file[first], tls_error(ctx));
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
 * The server's context: that of its first pair.  With both key types
 * a second one is kept aside for ctls_pick().
 */
struct tls *
ctls_server(struct config *conf, struct server_conf *sc)
{
	struct ctls_alt	*a;
	struct tls	*ec, *rsa;
	int		 ecbits = 0;

	if (ctls_keytypes(conf, sc, &ecbits) != (KEY_RSA | KEY_EC))
		return (ctls_context(conf, sc, 0));
	if ((ec = ctls_context(conf, sc, KEY_EC)) == NULL)
		return (NULL);
	if ((rsa = ctls_context(conf, sc, KEY_RSA)) == NULL) {
		tls_free(ec);
		return (NULL);
	}
	if ((a = reallocarray(ctls_alts, ctls_nalts + 1,
	    sizeof(*a))) == NULL)
		fatal(__func__);
	ctls_alts = a;
	a = &ctls_alts[ctls_nalts++];
	memset(a, 0, sizeof(*a));
	a->ctx[KEY_EC] = ec;
	a->ctx[KEY_RSA] = rsa;
	a->ecbits = ecbits;
	a->deflt = ctls_pair_type(conf, sc, 0, NULL) == KEY_EC ? ec : rsa;
	log_debug("server %s: rsa and ecdsa certificates (ecdsa %d bits)",
	    sc->server_name, ecbits);
	return (a->deflt);
}

/* a context from ctls_server(), and its sibling if it has one */
static void
ctls_server_free(struct tls *ctx)
{
	size_t	 i;

	for (i = 0; i < ctls_nalts; i++)
		if (ctls_alts[i].deflt == ctx)
			break;
	if (i == ctls_nalts) {
		tls_free(ctx);
		return;
	}
	tls_free(ctls_alts[i].ctx[KEY_EC]);
	tls_free(ctls_alts[i].ctx[KEY_RSA]);
	ctls_alts[i] = ctls_alts[--ctls_nalts];
}

/*
 * The session id context must be the same in every worker, or a
 * client's session is refused where it did not start; one per server.
 * Without keys from the parent (its own check) anything will do.
 */
static int
ticket_config(struct tls_config *tc, struct config *conf,
    struct server_conf *sc)
{
	struct ticket_key	*tk;
	struct tls_pem		*cert;
	unsigned char		 sid[TLS_MAX_SESSION_ID_LENGTH];
	unsigned char		 md[EVP_MAX_MD_SIZE];
	unsigned int		 mdlen;
	uint32_t		 id = sc->id;
	int			 i;

	/*
	 * With key files a ticket outlives this start: the context is
	 * the server's first certificate then, as stable as the keys.
	 */
	if (sc->tls_ticket_file[0][0] != '\0' &&
	    (cert = config_pem(conf, sc->id, 0, 0)) != NULL &&
	    EVP_Digest(cert->data, cert->len, md, &mdlen, EVP_sha256(),
	    NULL) == 1 && mdlen >= sizeof(sid))
		memcpy(sid, md, sizeof(sid));
	else if (ticket_nkeys > 0)
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

/* a server's ssl_session_ticket_key files, laid out as nginx does */
static struct ticket_file_set *
ticket_files_load(struct config *conf, struct server_conf *sc)
{
	struct ticket_file_set	*set;
	struct ticket_file_key	*k;
	struct tls_pem		*pem;
	size_t			 i;
	int			 n;

	for (i = 0; i < ticket_nsets; i++)
		if (ticket_sets[i]->server_id == sc->id)
			return (ticket_sets[i]);
	if ((set = calloc(1, sizeof(*set))) == NULL)
		fatal(__func__);
	set->server_id = sc->id;
	for (n = 0; n < TICKET_FILES_MAX; n++) {
		if ((pem = config_pem(conf, sc->id, TICKET_PEM + n, 1)) ==
		    NULL || (pem->len != 48 && pem->len != 80))
			break;
		k = &set->keys[set->nkeys++];
		k->size = pem->len;
		memcpy(k->name, pem->data, 16);
		if (k->size == 48) {
			memcpy(k->aes, pem->data + 16, 16);
			memcpy(k->hmac, pem->data + 32, 16);
		} else {
			memcpy(k->hmac, pem->data + 16, 32);
			memcpy(k->aes, pem->data + 48, 32);
		}
	}
	if (set->nkeys == 0) {
		free(set);
		return (NULL);
	}
	if ((ticket_sets = reallocarray(ticket_sets, ticket_nsets + 1,
	    sizeof(*ticket_sets))) == NULL)
		fatal(__func__);
	ticket_sets[ticket_nsets++] = set;
	return (set);
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
	/* a forked worker is sent again what its template had */
	for (i = 0; i < (size_t)ticket_nkeys; i++)
		if (ticket_keys[i].keyrev == tk.keyrev) {
			explicit_bzero(&tk, sizeof(tk));
			explicit_bzero(imsg->data, imsg_get_len(imsg));
			return;
		}
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
		ctls_server_free(ctx);
	}
	return (ptls_check(conf));
}

/*
 * Per session.
 */

/*
 * The client's first bytes, read (not peeked: the read event is level
 * triggered) until the ClientHello is whole, then handed to libtls
 * through its I/O callbacks before anything more from the socket.
 */
struct ctls_hello {
	unsigned char	 buf[CHELLO_RAW_MAX];
	size_t		 len;
	size_t		 off;		/* handed to libtls */
	int		 err;		/* errno of a failed read, for libtls */
};

/* the TLS side of a new or STARTTLS client; the handshake follows */
int
ctls_start(struct session *s)
{
	if ((s->tls_hello = calloc(1, sizeof(*s->tls_hello))) == NULL) {
		log_warn("client=%s: %s", s->client, __func__);
		return (-1);
	}
	s->tls = NULL;
	s->tls_state = TLSS_HANDSHAKE;
	s->tls_want = CTLS_WANT_READ;	/* the client speaks first */
	return (0);
}

/*
 * Read the ClientHello, refuse an ALPN list without imap (ALPACA: a
 * connection meant for another protocol must fail, not be answered as
 * IMAP), choose the context and let libtls accept.  A hello that
 * cannot be read is refused: libtls would take it with its ALPN list
 * unchecked.  What is no TLS at all goes to libtls with the server's
 * context: its error is the one the log has always shown.  1: libtls
 * goes on, 0: more to read, -1: the session is closed.
 */
static int
ctls_hello(struct session *s)
{
	struct ctls_hello	*h = s->tls_hello;
	struct chello		 ch;
	struct tls		*ctx = s->srv->tls;
	ssize_t			 n;
	int			 r;

	n = read(s->cfd, h->buf + h->len, sizeof(h->buf) - h->len);
	if (n == -1 && (errno == EAGAIN || errno == EINTR))
		return (0);
	if (n == -1)
		h->err = errno;
	else
		h->len += n;
	/* EOF or an error: libtls fails on it and says which */
	r = n > 0 ? chello_parse(h->buf, h->len, &ch) : CHELLO_NOTTLS;
	if (r == CHELLO_MORE && h->len < sizeof(h->buf))
		return (0);
	/* real clients never split a hello so finely: no way round ALPN */
	if (r == CHELLO_MORE) {
		session_close(s, "tls: client hello too fragmented");
		return (-1);
	}
	if (r == CHELLO_BAD || r == CHELLO_TOOBIG) {
		ctls_alert(s, 50);	/* decode_error */
		session_close(s, r == CHELLO_BAD ?
		    "tls: client hello unreadable" :
		    "tls: client hello too big");
		return (-1);
	}
	if (r == CHELLO_OK && chello_alpn_has(&ch, "imap") == 0) {
		ctls_alert(s, 120);	/* no_application_protocol */
		session_close(s, "tls: client ALPN lacks imap");
		return (-1);
	}
	if (r == CHELLO_OK)
		ctx = ctls_pick(s, &ch);
	if (tls_accept_cbs(ctx, &s->tls, ctls_cb_read, ctls_cb_write,
	    s) == -1) {
		log_warnx("client=%s: tls_accept_cbs: %s", s->client,
		    tls_error(ctx));
		s->tls = NULL;
		session_close(s, "tls setup failed");
		return (-1);
	}
	return (1);
}

/* the context whose default certificate the client can verify */
static struct tls *
ctls_pick(struct session *s, struct chello *ch)
{
	struct ctls_alt	*a = NULL;
	size_t		 i;
	int		 tls13, ec;

	for (i = 0; i < ctls_nalts; i++)
		if (ctls_alts[i].deflt == s->srv->tls)
			a = &ctls_alts[i];
	if (a == NULL)
		return (s->srv->tls);
	tls13 = chello_tls13(ch) &&
	    (s->srv->conf->tls_protocols & TLS_PROTOCOL_TLSv1_3);
	ec = chello_ecdsa_ok(ch, tls13, a->ecbits);
	log_debug("client=%s: hello sni=%s tls13=%s certificate=%s",
	    s->client, ch->sni[0] != '\0' ? ch->sni : "-",
	    tls13 ? "yes" : "no", ec ? "ecdsa" : "rsa");
	return (a->ctx[ec ? KEY_EC : KEY_RSA]);
}

/* a fatal alert in a plaintext record, before any ServerHello */
static void
ctls_alert(struct session *s, unsigned char desc)
{
	unsigned char	 rec[7] = { 21, 3, 3, 0, 2, 2, 0 };

	rec[6] = desc;
	/* a fresh socket has room for 7 bytes; else the close says it */
	if (write(s->cfd, rec, sizeof(rec)) != (ssize_t)sizeof(rec))
		log_debug("client=%s: tls alert not sent", s->client);
}

static void
ctls_hello_free(struct session *s)
{
	free(s->tls_hello);
	s->tls_hello = NULL;
}

/* libtls reads the hello's bytes first, then the socket */
static ssize_t
ctls_cb_read(struct tls *ctx, void *buf, size_t len, void *arg)
{
	struct session		*s = arg;
	struct ctls_hello	*h = s->tls_hello;
	ssize_t			 n;
	int			 err;

	if (h != NULL && h->off < h->len) {
		if (len > h->len - h->off)
			len = h->len - h->off;
		memcpy(buf, h->buf + h->off, len);
		h->off += len;
		return (len);
	}
	if (h != NULL) {
		err = h->err;
		ctls_hello_free(s);
		if (err != 0) {
			errno = err;
			return (-1);
		}
	}
	if ((n = read(s->cfd, buf, len)) == -1 &&
	    (errno == EAGAIN || errno == EINTR))
		return (TLS_WANT_POLLIN);
	return (n);
}

static ssize_t
ctls_cb_write(struct tls *ctx, const void *buf, size_t len, void *arg)
{
	struct session	*s = arg;
	ssize_t		 n;

	if ((n = write(s->cfd, buf, len)) == -1 &&
	    (errno == EAGAIN || errno == EINTR))
		return (TLS_WANT_POLLOUT);
	return (n);
}

/* 1: done, 0: call again when tls_want says, -1: failed, session closed */
int
ctls_handshake(struct session *s)
{
	char	 reason[256];
	size_t	 i;
	int	 r;

	if (s->tls == NULL && (r = ctls_hello(s)) != 1) {
		if (r == 0)
			s->tls_want = CTLS_WANT_READ;
		return (r);
	}
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
	ssize_t	 n;

	n = tlsio_read(s->tls, buf, len, &s->tls_more, &s->tls_rwantw,
	    "client", s->client);
	/* bytes read with the hello announce themselves no more */
	if (s->tls_hello != NULL)
		s->tls_more = 1;
	return (n);
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
	ctls_hello_free(s);
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
#include <openssl/hmac.h>
#include <openssl/rand.h>
#include <openssl/ssl.h>

typedef int	(*ticket_cb_t)(SSL *, unsigned char *, unsigned char *,
		    EVP_CIPHER_CTX *, HMAC_CTX *, int);
typedef long	(*callback_ctrl_t)(SSL_CTX *, int, void (*)(void));

static ticket_cb_t	 ticket_cb_libtls;

/* the SSL_CTXs of servers with ssl_session_ticket_key, and their keys */
struct ticket_ctx {
	SSL_CTX			*ctx;
	struct ticket_file_set	*set;
};
static struct ticket_ctx	*ticket_ctxs;
static size_t			 ticket_nctxs;

typedef SSL_CTX	*(*get_ctx_t)(const SSL *);

/* the context of a connection (libssl is libtls's, not linked here) */
static struct ticket_file_set *
ticket_ctx_set(SSL *ssl)
{
	static get_ctx_t	 get_ctx;
	SSL_CTX			*ctx;
	size_t			 i;

	if (get_ctx == NULL && (get_ctx = (get_ctx_t)dlsym(RTLD_NEXT,
	    "SSL_get_SSL_CTX")) == NULL)
		return (NULL);
	ctx = get_ctx(ssl);
	for (i = 0; i < ticket_nctxs; i++)
		if (ticket_ctxs[i].ctx == ctx)
			return (ticket_ctxs[i].set);
	return (NULL);
}

static void
ticket_ctx_add(SSL_CTX *ctx, struct ticket_file_set *set)
{
	struct ticket_ctx	*t;
	size_t			 i;

	for (i = 0; i < ticket_nctxs; i++)
		if (ticket_ctxs[i].ctx == ctx) {
			/* an address freed and reused */
			ticket_ctxs[i].set = set;
			return;
		}
	if ((t = reallocarray(ticket_ctxs, ticket_nctxs + 1,
	    sizeof(*t))) == NULL)
		fatal(__func__);
	ticket_ctxs = t;
	ticket_ctxs[ticket_nctxs].ctx = ctx;
	ticket_ctxs[ticket_nctxs++].set = set;
}

/*
 * nginx's ticket callback (ngx_ssl_ticket_key_callback): AES-CBC and
 * HMAC-SHA256 with the file's keys; 1: a ticket made or taken, 2:
 * taken under an older key (a new one is sent), 0: not ours.
 */
static int
ticket_cb_file(SSL *ssl, unsigned char *name, unsigned char *iv,
    EVP_CIPHER_CTX *cctx, HMAC_CTX *hctx, int enc)
{
	struct ticket_file_set	*set;
	struct ticket_file_key	*k;
	const EVP_CIPHER	*cipher;
	int			 i, hmaclen;

	if ((set = ticket_ctx_set(ssl)) == NULL)
		return (-1);
	hmaclen = set->keys[0].size == 48 ? 16 : 32;
/*
 * OpenSSL 3 deprecates HMAC_Init_ex, but the callback libtls sets, the
 * one that replaces it here, is handed an HMAC_CTX.
 */
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wdeprecated-declarations"
	if (enc) {
		k = &set->keys[0];
		cipher = k->size == 48 ? EVP_aes_128_cbc() : EVP_aes_256_cbc();
		if (RAND_bytes(iv, EVP_CIPHER_iv_length(cipher)) != 1 ||
		    EVP_EncryptInit_ex(cctx, cipher, NULL, k->aes, iv) != 1 ||
		    HMAC_Init_ex(hctx, k->hmac, hmaclen, EVP_sha256(),
		    NULL) != 1)
			return (-1);
		memcpy(name, k->name, sizeof(k->name));
		return (1);
	}
	for (i = 0; i < set->nkeys; i++)
		if (memcmp(name, set->keys[i].name, 16) == 0)
			break;
	if (i == set->nkeys)
		return (0);
	k = &set->keys[i];
	cipher = k->size == 48 ? EVP_aes_128_cbc() : EVP_aes_256_cbc();
	hmaclen = k->size == 48 ? 16 : 32;
	if (HMAC_Init_ex(hctx, k->hmac, hmaclen, EVP_sha256(), NULL) != 1 ||
	    EVP_DecryptInit_ex(cctx, cipher, NULL, k->aes, iv) != 1)
		return (-1);
	return (i == 0 ? 1 : 2);
#pragma GCC diagnostic pop
}

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
	    ticket_set_building != NULL) {
		ticket_ctx_add(ctx, ticket_set_building);
		fp = (void (*)(void))ticket_cb_file;
	} else if (cmd == SSL_CTRL_SET_TLSEXT_TICKET_KEY_CB && fp != NULL &&
	    OpenSSL_version_num() >= 0x10101000L) {
		ticket_cb_libtls = (ticket_cb_t)fp;
		fp = (void (*)(void))ticket_cb_fix;
	}
	return (real(ctx, cmd, fp));
}

/*
 * libtls keeps OpenSSL's 16k read and write buffers of a connection for
 * its whole life: an idle IMAP session would hold 34k for nothing.
 * Every connection libtls (or libcurl, in the auth process) makes comes
 * from SSL_new(): the one here passes it on and releases the buffers
 * whenever they are empty.
 */
typedef SSL	*(*ssl_new_t)(SSL_CTX *);
typedef long	(*ssl_ctrl_t)(SSL *, int, long, void *);

SSL *
SSL_new(SSL_CTX *ctx)
{
	static ssl_new_t	 real;
	static ssl_ctrl_t	 ctrl;	/* libssl is libtls's, not linked here */
	SSL			*ssl;

	if (real == NULL && ((real = (ssl_new_t)dlsym(RTLD_NEXT,
	    "SSL_new")) == NULL || (ctrl = (ssl_ctrl_t)dlsym(RTLD_NEXT,
	    "SSL_ctrl")) == NULL))
		fatalx("SSL_new: %s", dlerror());
	if ((ssl = real(ctx)) != NULL)
		ctrl(ssl, SSL_CTRL_MODE, SSL_MODE_RELEASE_BUFFERS, NULL);
	return (ssl);
}
#endif /* !LIBRESSL_VERSION_NUMBER */
#endif /* __linux__ */
