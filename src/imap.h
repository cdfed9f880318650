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
 * The imap worker: one struct session per client, shared by imap.c
 * (channels, accept, admission), session.c (a session's life and I/O),
 * prelogin.c (pre-login dialogue, login through auth) and proxy.c
 * (backend login, relay); TLS in tls.c, ccert.c and ptls.c.
 *
 * Functions that may end or close a session return -1; the caller must
 * then stop touching it (it may already be freed).
 */

#ifndef IMAP_H
#define IMAP_H

#include "imapparse.h"

/* a CRAM-MD5 challenge: <random.time@server_name> */
#define SASL_SALT_LEN		(NAME_MAX_LEN + 64)

/*
 * ID and AUTHENTICATE lines may be this long whatever
 * imap_client_buffer says: the largest ID RFC 2971 allows (30 fields of
 * 30 octets with values of 1024, quoted or as literals) and an OAuth
 * token's SASL message fit.  The buffers grow for such a line only.
 */
#define IMAP_LONG_LINE		(32 * 1024)

/* what an idle client is told before it is closed, before login or after */
#define BYE_IDLE		"autologout; idle for too long"

/* pending replies above this stop the parser and reading (backpressure) */
#define IMAP_OUT_HIWAT		(64 * 1024)

/* in the splice relay, what the backend says between streams is copied */
#define RELAY_COPY_MAX		2048

/* the least relay buffer under TLS: four full records */
#define RELAY_TLS_BUFFER	(64 * 1024)

enum session_state {
	S_PRELOGIN,		/* reading and answering commands */
	S_AUTHENTICATE,		/* AUTHENTICATE waits for a client line */
	S_AUTH_WAIT,		/* the auth process asks, connects: we wait */
	S_AUTH_DELAY,		/* login refused: Auth-Wait before the NO */
	S_BACKEND_GREETING,	/* waiting for the backend's "* OK" */
	S_BACKEND_LOGIN,	/* login sent, waiting for its tagged reply */
	S_RELAY,		/* logged in: bytes both ways */
	S_CLOSING,		/* flushing the last replies, then close */
	S_ADMIT,		/* limit_*: auth counts, we wait */
	S_PROXY_HEADER,		/* listen ... proxy_protocol: its header */
};

/* where an AUTHENTICATE exchange stands */
enum sasl_step {
	SASL_NONE,
	SASL_PLAIN,		/* waiting for the PLAIN message */
	SASL_LOGIN_USER,	/* waiting for the base64 user name */
	SASL_LOGIN_PASS,	/* waiting for the base64 password */
	SASL_CRAM_MD5,		/* waiting for "user digest" */
	SASL_EXTERNAL,		/* waiting for the base64 user name */
};

/* where a client connection stands with TLS (tls.c) */
enum tls_state {
	TLSS_NONE,		/* plaintext */
	TLSS_PENDING,		/* STARTTLS answered: handshake once sent */
	TLSS_HANDSHAKE,
	TLSS_ON,
};
#define CTLS_WANT_READ		1
#define CTLS_WANT_WRITE		2

struct tls;
struct tls_config;

/* a byte buffer: pending data is data[off..len) */
struct iobuf {
	unsigned char	*data;
	size_t		 size;
	size_t		 off;
	size_t		 len;
};
#define IOBUF_DATA(b)	((b)->data + (b)->off)
#define IOBUF_LEN(b)	((b)->len - (b)->off)

/* splice.c: a pipe between two sockets, held only while bytes are in it */
struct spipe {
	int		 fd[2];		/* -1: none held */
	size_t		 len;		/* bytes in it */
	int		 full;		/* the kernel took no more */
};

/* per server: its configuration and the strings built once from it */
struct imap_server {
	TAILQ_ENTRY(imap_server)	 entry;
	struct server_conf		*conf;
	char				 caps[CAPS_MAX_LEN + 64];
	char				 caps_tls[CAPS_MAX_LEN + 64];
	char				 learned[CAPS_MAX_LEN];	/* auto */
	struct tls			*tls;	/* NULL: no TLS set up */
};

/* what the backend's greeting advertised */
#define BCAP_SASL_IR		0x01
#define BCAP_AUTH_PLAIN		0x02
#define BCAP_LITERALPLUS	0x04
#define BCAP_ID			0x08
#define BCAP_STARTTLS		0x10
#define BCAP_LISTED		0x20	/* the greeting had a list */

/* a session's id: in its log lines and, as x-session-id, the backend's */
#define SESSION_ID_LEN		12

struct session {
	TAILQ_ENTRY(session)	 entry;
	char			 id[SESSION_ID_LEN + 1];
	enum session_state	 state;
	struct imap_server	*srv;
	struct server_conf	*conf;
	uint64_t		 start_ms;
	const char		*reason;	/* why it ends, for the log */

	/* the client */
	int			 cfd;
	char			 client[ADDR_STR_LEN];	/* addr:port */
	char			 listener[ADDR_STR_LEN];	/* ours: addr:port */
	char			 client_ip[INET6_ADDRSTRLEN];
	uint16_t		 client_port;
	int			 implicit_tls;	/* came on a "listen ... ssl" */
	uint32_t		 conn_id;	/* counted by the auth process */
	int			 conn_login;	/* auth told it logged in */
	int			 spent;		/* the parent was told */
	struct event		 ev_cread;
	struct event		 ev_cwrite;
	struct event		 ev_timer;	/* the one timer of a phase */
	int			 client_eof;
	int			 client_shut;	/* our write side shut down */
	struct tls		*tls;		/* NULL: plaintext */
	int			 tls_state;	/* enum tls_state */
	int			 tls_want;	/* handshake: CTLS_WANT_* */
	int			 tls_more;	/* libtls may hold read data */
	int			 tls_rwantw;	/* a read waits for POLLOUT */
	int			 tls_wwantr;	/* a write waits for POLLIN */
	int			 tls_closed;	/* close_notify sent */
	struct ctls_hello	*tls_hello;	/* ClientHello read before libtls */
	int			 sni_greet;	/* greet once TLS is up (SNI) */
	struct ccert		*ccert;		/* client certificate, or NULL */
	/* the PROXY protocol (realip.c) */
	struct sockaddr_storage	 client_ss;	/* the client, after realip */
	unsigned char		*pp_buf;	/* the header so far, or NULL */
	size_t			 pp_len;
	int			 pp_set;	/* a header named addresses */
	char			 pp_addr[INET6_ADDRSTRLEN];
	uint16_t		 pp_port;
	char			 pp_server_addr[INET6_ADDRSTRLEN];
	uint16_t		 pp_server_port;

	/* pre-login */
	struct iobuf		 in;	/* imap_client_buffer bytes */
	struct iobuf		 out;	/* replies, soft bound IMAP_OUT_HIWAT */
	char			*scratch;	/* the parser's argument space */
	struct imap_cmd		*cmd;		/* both only before login */
	size_t			 lit_acked;	/* literal already sent "+" */
	unsigned int		 errors;
	unsigned int		 commands;	/* other than logins */
	int			 login_cut;	/* the timer is login_timeout's */
	char			 tag[IMAP_NAMELEN * 2 + 1];	/* login's */
	enum sasl_step		 sasl;
	char			*salt;		/* CRAM-MD5's, SASL_SALT_LEN */
	char			*id_params;	/* client's ID list, or NULL */

	/* login */
	char			*user;		/* client's user name */
	char			*pass;		/* client's password: wiped */
	size_t			 pass_len;
	uint32_t		 method;	/* enum auth_method */
	const char		*mech;		/* how it logged in, for the log */
	uint32_t		 attempt;
	uint32_t		 auth_id;	/* pending request, 0: none */
	uint64_t		 auth_start_ms;
	unsigned int		 auth_ms;
	char			*failtext;	/* NO text held for Auth-Wait */

	/* the backend */
	int			 bfd;		/* connected by the auth process */
	char			 backend[ADDR_STR_LEN];
	uint32_t		 backend_id;	/* auth keeps the list: its id */
	uint32_t		 bindex;	/* this one's number in the list */
	uint32_t		 bcount;	/* the list's length */
	int			 bnext;		/* IMSG_AUTH_NEXT sent */
	struct event		 ev_bread;
	struct event		 ev_bwrite;
	char			*buser;		/* credentials for the backend */
	size_t			 buser_len;
	char			*bpass;		/* wiped once sent */
	size_t			 bpass_len;
	unsigned int		 bcaps;		/* BCAP_* */
	struct iobuf		 login;		/* login command; off = sent */
	size_t			 login_seg[3];	/* ends of its parts */
	int			 login_nseg;
	int			 login_cur;	/* part being sent */
	int			 id_pending;	/* our ID's reply not seen yet */
	int			 backend_eof;
	int			 backend_shut;
	/* TLS to the backend (ptls.c) */
	struct tls		*btls;		/* NULL: plaintext */
	int			 bssl;		/* enum ptls_mode of this login */
	int			 bssl_auth;	/* Auth-Proxy-SSL: PTLS_* + 1 */
	char			*bssl_auth_name;	/* or NULL */
	char			*bssl_name;	/* verified; NULL: none */
	int			 btls_state;	/* enum tls_state */
	int			 btls_want;	/* handshake: CTLS_WANT_* */
	int			 btls_more;	/* libtls may hold read data */
	int			 btls_rwantw;	/* a read waits for POLLOUT */
	int			 btls_wwantr;	/* a write waits for POLLIN */
	int			 bstarttls;	/* our STARTTLS awaits its OK */

	/* relay: buffers and pipes exist only while they hold bytes */
	int			 splice;	/* plaintext both ways: pipes */
	struct iobuf		 c2b;
	struct iobuf		 b2c;
	struct spipe		 c2bp;
	struct spipe		 b2cp;
	int			 bstream;	/* the backend streams: splice */
	uint64_t		 bytes_in;	/* client -> backend */
	uint64_t		 bytes_out;	/* backend -> client */
	char			 btail[120];	/* its last bytes: a LOGOUT? */
	uint8_t			 btail_len;
	uint8_t			 bunseen;	/* the last ones were spliced */
};

TAILQ_HEAD(session_list, session);
TAILQ_HEAD(imap_server_list, imap_server);

/* imap.c: the worker's state, and the admission of new clients */
extern struct config		*imap_conf;
extern struct imsgev		 iev_parent;
extern struct imsgev		*iev_auth;	/* NULL: auth restarting */
extern struct session_list	 imap_sessions;
extern struct imap_server_list	 imap_servers;
extern unsigned int		 imap_nsessions;
extern int			 imap_draining;
void		 imap_setup(void);
__attribute__((noreturn)) void imap_forked(int, int);
void		 conn_admit_ask(struct session *);
void		 conn_take(struct session *);
void		 conn_logged_in(struct session *);
void		 conn_release(struct session *);
void		 conn_unspent(void);
#ifdef REGRESS_TRIGGERS
int		 imap_regress_try(const char *, char *, size_t);
#endif

/* session.c */
int		 session_new(struct imap_server *, int,
		    struct sockaddr_storage *, socklen_t, int, int);
void		 session_begin(struct session *);
void		 session_gone(void);
const char	*session_caps(struct session *);
char		*memdup0(const void *, size_t);
int		 iobuf_alloc(struct iobuf *, size_t);
void		 iobuf_free(struct iobuf *);
size_t		 iobuf_room(struct iobuf *);
int		 iobuf_add(struct iobuf *, const void *, size_t);
void		 iobuf_drain(struct iobuf *, size_t);
ssize_t		 client_read(struct session *, void *, size_t);
ssize_t		 client_write(struct session *, const void *, size_t);
int		 client_flush(struct session *);
void		 client_shutdown(struct session *);
int		 client_reply(struct session *, const char *, ...)
		    __attribute__((format(printf, 2, 3)));
int		 client_send(struct session *, const void *, size_t);
void		 session_update(struct session *);
void		 session_timer(struct session *, unsigned int);
int		 session_bye(struct session *, const char *, const char *);
int		 session_finish(struct session *, const char *);
void		 session_close(struct session *, const char *);
void		 session_shutdown(struct session *);
int		 session_resume(struct session *);
int		 session_unavailable(struct session *, const char *,
		    const char *, const char *);
void		 session_parser_free(struct session *);
void		 session_wipe_creds(struct session *);
void		 session_log_login(struct session *);
const char	*log_safe(char *, size_t, const char *, size_t);
const char	*log_quoted(char *, size_t, const char *);

/* prelogin.c */
int		 session_parse(struct session *);
unsigned int	 login_timer(struct session *, unsigned int);
int		 login_expired(struct session *);
int		 auth_send(struct session *);
void		 auth_cancel(struct session *);
int		 auth_next(struct session *);
void		 auth_release(struct session *);
void		 auth_result(struct imsg *);
int		 auth_delay_done(struct session *);

/* tls.c */
struct tls	*ctls_server(struct config *, struct server_conf *);
void		 ctls_wipe(struct config *);
int		 ctls_start(struct session *);
int		 ctls_handshake(struct session *);
ssize_t		 tlsio_read(struct tls *, void *, size_t, int *, int *,
		    const char *, const char *);
ssize_t		 tlsio_write(struct tls *, const void *, size_t, int *,
		    const char *, const char *);
ssize_t		 ctls_read(struct session *, void *, size_t);
ssize_t		 ctls_write(struct session *, const void *, size_t);
void		 ctls_close(struct session *);
void		 ctls_free(struct session *);
void		 ctls_info(struct session *, char *, size_t, char *, size_t);
void		 ctls_ticket_key(struct imsg *);
const char	*ctls_servername(struct session *);
int		 sni_sibling(struct config *, struct server_conf *,
		    struct server_conf *);

/*
 * ccert.c: client certificates (ssl_verify_client).  What the auth
 * request says about the client's certificate, found after the
 * handshake; empty strings are headers not sent.
 */
struct ccert {
	char		 verify[128];		/* SUCCESS, FAILED:..., NONE */
	char		 serial[128];
	char		 fingerprint[64];	/* SHA-1, hex, as nginx */
	char		*subject;		/* RFC 2253, as nginx */
	char		*issuer;
	char		*cert;			/* PEM, escaped as Auth-User */
};
int		 ccert_config(struct tls_config *, struct config *,
		    struct server_conf *);
const char	*ccert_inspect(struct session *);
void		 ccert_request(struct session *, struct auth_request *);
void		 ccert_free(struct session *);

/* proxy.c */
int		 proxy_creds(struct session *, const char *, size_t,
		    const char *, size_t);
int		 proxy_backend(struct session *, int, const struct sockaddr *,
		    socklen_t);
int		 proxy_client_read(struct session *);
int		 proxy_client_flush(struct session *);
int		 proxy_relay_owed(struct session *);
int		 proxy_relay_check(struct session *);
void		 proxy_relay_bye(struct session *, const char *, const char *);
void		 proxy_relay_events(struct session *, int *, int *, int *,
		    int *);
int		 proxy_login_pending(struct session *);
void		 proxy_timeout(struct session *);
void		 proxy_close_backend(struct session *);
void		 proxy_events(struct session *, int *, int *);
int		 proxy_logged_out(struct session *);

/* realip.c: the PROXY protocol, from a load balancer and to the backend */
void		 realip_start(struct session *);
void		 realip_read(struct session *);
void		 realip_request(struct session *, struct auth_request *);
int		 realip_backend(struct session *, const char **);

/* splice.c */
int		 spipe_supported(void);
void		 spipe_init(struct spipe *);
size_t		 spipe_room(struct spipe *, size_t);
ssize_t		 spipe_in(struct spipe *, int, size_t, size_t);
ssize_t		 spipe_out(struct spipe *, int);
ssize_t		 spipe_read(struct spipe *, void *, size_t);
void		 spipe_release(struct spipe *);

/* ptls.c: TLS to the backend */
void		 ptls_configure(struct config *);
int		 ptls_start(struct session *);
int		 ptls_handshake(struct session *, char *, size_t);
ssize_t		 ptls_read(struct session *, void *, size_t);
ssize_t		 ptls_write(struct session *, const void *, size_t);
void		 ptls_close(struct session *);
void		 ptls_free(struct session *);

#endif /* IMAP_H */
