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
 * Client certificates with nginx's semantics (ssl_verify_client).
 *
 * nginx lets the handshake complete whatever the client presents and
 * judges afterwards: "* BYE No required SSL certificate" or "* BYE SSL
 * certificate error" instead of the greeting, and the verification
 * result in Auth-SSL-Verify.  libtls would fail the handshake instead,
 * so libtls is told to ask for a certificate and accept any, and the
 * chain is verified here with libcrypto against the CA lists the
 * parent read (ssl_client_certificate, ssl_trusted_certificate).  The
 * same code then gives nginx's header values: the subject and issuer
 * in RFC 2253 form, the serial in hex, the SHA-1 fingerprint and the
 * PEM of the certificate.
 *
 * Nothing here touches a file: the stores are built from memory, so
 * the sandboxed worker needs no new system call.
 */

#include <sys/types.h>
#include <sys/queue.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <tls.h>

#include <openssl/bio.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/x509.h>
#include <openssl/x509_vfy.h>

#include "imaprelayd.h"
#include "imap.h"

#define BYE_NO_CERT	"No required SSL certificate"
#define BYE_CERT_ERROR	"SSL certificate error"

/* the CA certificates of one server */
struct ccert_store {
	TAILQ_ENTRY(ccert_store) entry;
	uint32_t		 server_id;
	X509_STORE		*store;
};
static TAILQ_HEAD(, ccert_store) ccert_stores =
    TAILQ_HEAD_INITIALIZER(ccert_stores);

static int	ccert_load(X509_STORE *, struct config *, uint32_t, uint32_t,
		    const char *);
static struct ccert_store *ccert_store(uint32_t);
static STACK_OF(X509) *ccert_chain(struct tls *);
static int	ccert_verify(struct session *, STACK_OF(X509) *, int *);
static int	ccert_optional_error(int);
static char	*ccert_bio_str(BIO *, long);
static char	*ccert_name(X509_NAME *);
static void	ccert_fields(struct session *, X509 *);

static struct ccert_store *
ccert_store(uint32_t id)
{
	struct ccert_store	*cs;

	TAILQ_FOREACH(cs, &ccert_stores, entry)
		if (cs->server_id == id)
			return (cs);
	return (NULL);
}

/* every certificate of one CA file the parent sent; -1 (logged) if none */
static int
ccert_load(X509_STORE *store, struct config *conf, uint32_t id,
    uint32_t pair, const char *file)
{
	struct tls_pem		*pem;
	STACK_OF(X509_INFO)	*infos;
	X509_INFO		*xi;
	BIO			*bio;
	int			 i, n = 0;

	if (file[0] == '\0')
		return (0);
	if ((pem = config_pem(conf, id, pair, 0)) == NULL) {
		log_warnx("certificate \"%s\": not received", file);
		return (-1);
	}
	if ((bio = BIO_new_mem_buf(pem->data, pem->len)) == NULL)
		fatalx("BIO_new_mem_buf");
	infos = PEM_X509_INFO_read_bio(bio, NULL, NULL, NULL);
	BIO_free(bio);
	for (i = 0; infos != NULL && i < sk_X509_INFO_num(infos); i++) {
		xi = sk_X509_INFO_value(infos, i);
		if (xi->x509 != NULL && X509_STORE_add_cert(store,
		    xi->x509) == 1)
			n++;
		if (xi->crl != NULL && X509_STORE_add_crl(store,
		    xi->crl) == 1)
			n++;
	}
	sk_X509_INFO_pop_free(infos, X509_INFO_free);
	if (n == 0) {
		log_warnx("\"%s\": no certificate could be read", file);
		return (-1);
	}
	return (0);
}

/*
 * A server's client certificate settings in libtls's terms, and its
 * CA store here.  -1 (logged) when a CA file holds no certificate.
 */
int
ccert_config(struct tls_config *tc, struct config *conf,
    struct server_conf *sc)
{
	struct ccert_store	*cs;
	X509_STORE		*store;

	if (sc->ccert_verify == CCERT_VERIFY_OFF)
		return (0);
	if ((store = X509_STORE_new()) == NULL)
		fatalx("X509_STORE_new");
	if (ccert_load(store, conf, sc->id, CCERT_PAIR_CA,
	    sc->ccert_ca_file) == -1 ||
	    ccert_load(store, conf, sc->id, CCERT_PAIR_TRUSTED,
	    sc->ccert_trusted_file) == -1 ||
	    ccert_load(store, conf, sc->id, CCERT_PAIR_CRL,
	    sc->ccert_crl_file) == -1) {
		X509_STORE_free(store);
		return (-1);
	}
	/* ssl_crl, as nginx: every certificate of the chain is checked */
	if (sc->ccert_crl_file[0] != '\0')
		X509_STORE_set_flags(store, X509_V_FLAG_CRL_CHECK |
		    X509_V_FLAG_CRL_CHECK_ALL);
	/* ask for a certificate, take any: the verdict is ours, later */
	tls_config_verify_client_optional(tc);
	tls_config_insecure_noverifycert(tc);
	if ((cs = ccert_store(sc->id)) == NULL) {
		if ((cs = calloc(1, sizeof(*cs))) == NULL)
			fatal(__func__);
		cs->server_id = sc->id;
		TAILQ_INSERT_TAIL(&ccert_stores, cs, entry);
	} else
		X509_STORE_free(cs->store);
	cs->store = store;
	return (0);
}

/* the client's chain, its own certificate first; NULL if none */
static STACK_OF(X509) *
ccert_chain(struct tls *tls)
{
	STACK_OF(X509)	*chain;
	const uint8_t	*pem;
	size_t		 len;
	BIO		*bio;
	X509		*x;

	if ((pem = tls_peer_cert_chain_pem(tls, &len)) == NULL)
		return (NULL);
	if ((bio = BIO_new_mem_buf(pem, len)) == NULL ||
	    (chain = sk_X509_new_null()) == NULL) {
		BIO_free(bio);
		return (NULL);
	}
	while ((x = PEM_read_bio_X509(bio, NULL, NULL, NULL)) != NULL)
		if (sk_X509_push(chain, x) == 0) {
			X509_free(x);
			break;
		}
	BIO_free(bio);
	if (sk_X509_num(chain) == 0) {
		sk_X509_free(chain);
		return (NULL);
	}
	return (chain);
}

/* what optional_no_ca forgives: an issuer that is not known (as nginx) */
static int
ccert_optional_error(int err)
{
	return (err == X509_V_ERR_DEPTH_ZERO_SELF_SIGNED_CERT ||
	    err == X509_V_ERR_SELF_SIGNED_CERT_IN_CHAIN ||
	    err == X509_V_ERR_UNABLE_TO_GET_ISSUER_CERT ||
	    err == X509_V_ERR_UNABLE_TO_GET_ISSUER_CERT_LOCALLY ||
	    err == X509_V_ERR_UNABLE_TO_VERIFY_LEAF_SIGNATURE);
}

/* OpenSSL's verification of the chain; its X509_V_* result in *err */
static int
ccert_verify(struct session *s, STACK_OF(X509) *chain, int *err)
{
	struct ccert_store	*cs = ccert_store(s->conf->id);
	X509_STORE_CTX		*ctx;
	STACK_OF(X509)		*untrusted;

	*err = X509_V_ERR_UNSPECIFIED;
	if (cs == NULL || (ctx = X509_STORE_CTX_new()) == NULL)
		return (-1);
	untrusted = sk_X509_dup(chain);
	if (untrusted != NULL)
		(void)sk_X509_shift(untrusted);
	if (X509_STORE_CTX_init(ctx, cs->store, sk_X509_value(chain, 0),
	    untrusted) != 1) {
		sk_X509_free(untrusted);
		X509_STORE_CTX_free(ctx);
		return (-1);
	}
	/* what a TLS server checks of a client: purpose sslclient */
	X509_STORE_CTX_set_default(ctx, "ssl_client");
	X509_VERIFY_PARAM_set_depth(X509_STORE_CTX_get0_param(ctx),
	    s->conf->ccert_depth);
	(void)X509_verify_cert(ctx);
	*err = X509_STORE_CTX_get_error(ctx);
	X509_STORE_CTX_free(ctx);
	sk_X509_free(untrusted);
	return (0);
}

/* what was written to a memory BIO, as a C string; the BIO is freed */
static char *
ccert_bio_str(BIO *bio, long max)
{
	char	*data, *str = NULL;
	long	 len;

	if (bio == NULL)
		return (NULL);
	len = BIO_get_mem_data(bio, &data);
	if (len == 0)
		str = strdup("");
	else if (len > 0 && len <= max)
		str = memdup0(data, len);
	BIO_free(bio);
	return (str);
}

static char *
ccert_name(X509_NAME *name)
{
	BIO	*bio;
	char	*s;

	if (name == NULL || (bio = BIO_new(BIO_s_mem())) == NULL)
		return (NULL);
	if (X509_NAME_print_ex(bio, name, 0, XN_FLAG_RFC2253) < 0) {
		BIO_free(bio);
		return (NULL);
	}
	/* RFC 2253 escapes control and 8-bit bytes: this is ASCII */
	s = ccert_bio_str(bio, CCERT_FIELD_MAX * 4);
	if (s != NULL && strlen(s) >= CCERT_FIELD_MAX)
		s[CCERT_FIELD_MAX - 1] = '\0';
	return (s);
}

/* nginx's Auth-SSL-Subject, -Issuer, -Serial, -Fingerprint and -Cert */
static void
ccert_fields(struct session *s, X509 *x)
{
	struct ccert	*c = s->ccert;
	unsigned char	 md[EVP_MAX_MD_SIZE];
	unsigned int	 mdlen, i;
	char		*serial;
	BIO		*bio;

	c->subject = ccert_name(X509_get_subject_name(x));
	c->issuer = ccert_name(X509_get_issuer_name(x));
	if ((bio = BIO_new(BIO_s_mem())) != NULL &&
	    i2a_ASN1_INTEGER(bio, X509_get_serialNumber(x)) < 0) {
		BIO_free(bio);
		bio = NULL;
	}
	if ((serial = ccert_bio_str(bio, sizeof(c->serial))) != NULL) {
		strlcpy(c->serial, serial, sizeof(c->serial));
		free(serial);
	}
	if (X509_digest(x, EVP_sha1(), md, &mdlen) == 1)
		for (i = 0; i < mdlen && i * 2 + 2 < sizeof(c->fingerprint);
		    i++)
			snprintf(c->fingerprint + i * 2, 3, "%02x", md[i]);
	if (!s->conf->ccert_pass_cert || s->conf->auth_http_set == 0)
		return;
	if ((bio = BIO_new(BIO_s_mem())) != NULL &&
	    PEM_write_bio_X509(bio, x) != 1) {
		BIO_free(bio);
		bio = NULL;
	}
	c->cert = ccert_bio_str(bio, TLS_PEM_MAX);
}

/*
 * After the handshake: NULL when the session goes on, else the text of
 * the BYE that replaces the greeting (nginx's ngx_mail_verify_cert).
 */
const char *
ccert_inspect(struct session *s)
{
	STACK_OF(X509)	*chain;
	struct ccert	*c;
	int		 err;

	if (s->conf->ccert_verify == CCERT_VERIFY_OFF || s->ccert != NULL)
		return (NULL);
	if ((c = calloc(1, sizeof(*c))) == NULL) {
		log_warn(__func__);
		return (BYE_CERT_ERROR);
	}
	s->ccert = c;
	if (!tls_peer_cert_provided(s->tls)) {
		if (s->conf->ccert_verify == CCERT_VERIFY_ON) {
			log_info("client=%s sent no required SSL certificate",
			    s->client);
			return (BYE_NO_CERT);
		}
		strlcpy(c->verify, "NONE", sizeof(c->verify));
		return (NULL);
	}
	if ((chain = ccert_chain(s->tls)) == NULL ||
	    ccert_verify(s, chain, &err) == -1) {
		log_warnx("client=%s: cannot read the client certificate",
		    s->client);
		if (chain != NULL)
			sk_X509_pop_free(chain, X509_free);
		return (BYE_CERT_ERROR);
	}
	if (err != X509_V_OK) {
		log_info("client=%s client SSL certificate verify error: "
		    "(%d:%s)", s->client, err,
		    X509_verify_cert_error_string(err));
		if (s->conf->ccert_verify != CCERT_VERIFY_NO_CA ||
		    !ccert_optional_error(err)) {
			sk_X509_pop_free(chain, X509_free);
			return (BYE_CERT_ERROR);
		}
		snprintf(c->verify, sizeof(c->verify), "FAILED:%s",
		    X509_verify_cert_error_string(err));
	} else
		strlcpy(c->verify, "SUCCESS", sizeof(c->verify));
	ccert_fields(s, sk_X509_value(chain, 0));
	sk_X509_pop_free(chain, X509_free);
	return (NULL);
}

/* the certificate part of an auth request: fixed fields and tail lengths */
void
ccert_request(struct session *s, struct auth_request *req)
{
	struct ccert	*c = s->ccert;

	if (c == NULL)
		return;
	strlcpy(req->ssl_verify, c->verify, sizeof(req->ssl_verify));
	strlcpy(req->ssl_serial, c->serial, sizeof(req->ssl_serial));
	strlcpy(req->ssl_fingerprint, c->fingerprint,
	    sizeof(req->ssl_fingerprint));
	req->subject_len = c->subject != NULL ? strlen(c->subject) : 0;
	req->issuer_len = c->issuer != NULL ? strlen(c->issuer) : 0;
	req->cert_len = c->cert != NULL ? strlen(c->cert) : 0;
}

void
ccert_free(struct session *s)
{
	struct ccert	*c = s->ccert;

	if (c == NULL)
		return;
	free(c->subject);
	free(c->issuer);
	free(c->cert);
	free(c);
	s->ccert = NULL;
}
