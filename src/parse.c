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
 * parse.c: the configuration language.
 *
 * nginx's syntax, so that an nginx mail {} block for IMAP runs
 * unchanged: words and quoted strings, directives ending in ";",
 * blocks in "{}".
 *
 * The table directives[] below is the whole language, as nginx's
 * ngx_command_t arrays are: each row names a directive, where it may
 * appear, how many arguments it takes, and where its value goes -- a
 * field of struct config or of struct server_conf and the typed slot
 * that reads it (flag, number, time, size, string, path, enum, bits,
 * words).  A special setter appears only where a directive is truly
 * special.  Each level (main, mail{}, every server{}) keeps one "set
 * here" bitmap indexed by row: it refuses duplicates, and once the
 * file is read one loop over the table gives each server what mail{}
 * set and it did not, as nginx merges.  Adding a directive is one row
 * (and its entry in imaprelayd.conf(5)).
 *
 * The parser stops at the first error and logs it as "file:line:
 * reason".
 */

#include <sys/types.h>
#include <sys/socket.h>
#include <sys/queue.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <netinet/in.h>
#include <arpa/inet.h>

#include <ctype.h>
#include <errno.h>
#include <fcntl.h>
#include <glob.h>
#include <libgen.h>
#include <limits.h>
#include <netdb.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <syslog.h>
#include <unistd.h>

#include <openssl/err.h>
#include <openssl/pem.h>
#include <openssl/x509.h>
#include <tls.h>

#include "imaprelayd.h"
#include "authhttp.h"

#define C_MAIN		0x01
#define C_EVENTS	0x02
#define C_MAIL		0x04
#define C_SERVER	0x08
#define C_MS		(C_MAIL | C_SERVER)
#define C_MM		(C_MAIN | C_MAIL)
#define C_ALL		(C_MAIN | C_MAIL | C_SERVER)
#define C_ANY		(C_MAIN | C_EVENTS | C_MAIL | C_SERVER)

#define D_BLOCK		0x01	/* takes a { } body */
#define D_REFUSE	0x02	/* refused wherever it is: skip the checks */
#define D_GLOBAL	0x04	/* the field is in struct config */
#define D_MULTI		0x08	/* may be repeated at one level */
#define D_WORD		0x10	/* S_STRING: printable, no space */
#define D_PAIR		0x20	/* merged with the next row as one */
#define D_PAIRED	0x40	/* ... the second row of such a pair */

#define LETTERS		"abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ"
#define MAXARGS		128
#define TOKEN_MAX	4096
#define INCLUDE_DEPTH	16
#define NITEMS(a)	(sizeof(a) / sizeof((a)[0]))

/* a server's protocol, as nginx learns it: "protocol" or the port */
#define PROTO_IMAP	1
#define PROTO_POP3	2
#define PROTO_SMTP	3

/* how a row reads its arguments into its field */
enum slot {
	S_SPECIAL,	/* the row's own setter */
	S_NONE,		/* arguments counted, value kept nowhere */
	S_BLOCK,	/* a { } body, read in context .lo */
	S_FLAG,		/* int: on | off */
	S_ENUM,		/* int: one of .vals */
	S_NUMBER,	/* int within [.lo, .hi], or a keyword of .vals */
	S_TIME,		/* unsigned int: milliseconds, above 0, or
			   within [.lo, .hi] when .hi is set */
	S_SIZE,		/* size_t: bytes, at least .lo */
	S_STRING,	/* char[]: not empty; D_WORD: printable, no space */
	S_PATH,		/* char[]: a file, relative to the file naming it */
	S_PATHS,	/* char[][TLS_PATH_MAX]: one more each time */
	S_BITS,		/* unsigned int: .vals ORed; repeats add */
	S_WORDS,	/* char[]: words joined by spaces; repeats add */
};

/* a name an enum, bits or number slot accepts, and its value */
struct keyword {
	const char	*name;
	int		 value;
};

struct parser;
struct psrv;
struct directive;

/* base: the struct config, or the server_conf of the level */
typedef int (*setter)(struct parser *, const struct directive *, void *,
    int, char **);
typedef void (*merger)(const struct directive *, struct psrv *,
    struct psrv *);

struct directive {
	const char		*name;
	int			 ctx;
	int			 min;	/* arguments after the name */
	int			 max;	/* -1: any number */
	int			 flags;
	enum slot		 slot;
	size_t			 off;	/* of the field in its struct */
	size_t			 size;	/* of the field; 0: none */
	size_t			 given;	/* an int set when given; 0: none */
	long long		 lo;
	long long		 hi;
	const struct keyword	*vals;	/* ends with a NULL name */
	setter			 set;	/* S_SPECIAL, D_REFUSE */
	merger			 merge;	/* NULL: copy the field */
};

/* a field of struct server_conf, or of struct config (D_GLOBAL) */
#define SRV(s, f)	.slot = (s), \
			.off = offsetof(struct server_conf, f), \
			.size = sizeof(((struct server_conf *)0)->f)
#define GLB(s, f)	.slot = (s), \
			.off = offsetof(struct config, f), \
			.size = sizeof(((struct config *)0)->f)
/* several adjacent fields of struct server_conf that go together */
#define SPAN(s, a, b)	.slot = (s), \
			.off = offsetof(struct server_conf, a), \
			.size = offsetof(struct server_conf, b) + \
			    sizeof(((struct server_conf *)0)->b) - \
			    offsetof(struct server_conf, a)
#define GIVEN(f)	.given = offsetof(struct server_conf, f)
#define SPECIAL(fn)	.slot = S_SPECIAL, .set = (fn)
#define NONE		.slot = S_NONE

static int	set_user(struct parser *, const struct directive *, void *,
		    int, char **);
static int	pair_check(struct parser *, struct psrv *, int);
static int	key_decrypt(struct parser *, struct psrv *, int);
static int	key_try(struct tls_pem *, const char *, size_t);
static char	*read_passwords(struct parser *, struct psrv *, size_t *);
static int	set_error_log(struct parser *, const struct directive *, void *,
		    int, char **);
static const char *split_hostport(const char *, char *, size_t, char *,
		    size_t);
static int	set_include(struct parser *, const struct directive *, void *,
		    int, char **);
static int	set_server(struct parser *, const struct directive *, void *,
		    int, char **);
static int	set_auth_http(struct parser *, const struct directive *,
		    void *, int, char **);
static int	set_auth_header(struct parser *, const struct directive *,
		    void *, int, char **);
static int	set_proxy_pass(struct parser *, const struct directive *,
		    void *, int, char **);
static int	set_limit_auth_fail(struct parser *, const struct directive *,
		    void *, int, char **);
static int	set_limit_conn_rate(struct parser *, const struct directive *,
		    void *, int, char **);
static int	set_realip(struct parser *, const struct directive *, void *,
		    int, char **);
static int	set_listen(struct parser *, const struct directive *, void *,
		    int, char **);
static int	set_protocol(struct parser *, const struct directive *, void *,
		    int, char **);
static int	set_other_protocol(struct parser *, const struct directive *,
		    void *, int, char **);
static int	skip_block(struct parser *, const struct directive *, void *,
		    int, char **);
static int	set_ssl(struct parser *, const struct directive *, void *,
		    int, char **);
static int	set_starttls(struct parser *, const struct directive *, void *,
		    int, char **);
static int	set_ciphers(struct parser *, const struct directive *, void *,
		    int, char **);
static int	set_curve(struct parser *, const struct directive *, void *,
		    int, char **);
static int	set_dhparam(struct parser *, const struct directive *, void *,
		    int, char **);
static int	set_session_timeout(struct parser *, const struct directive *,
		    void *, int, char **);
static int	set_host_name(struct parser *, const struct directive *,
		    void *, int, char **);
static int	deny_tls(struct parser *, const struct directive *, void *,
		    int, char **);
static void	merge_headers(const struct directive *, struct psrv *,
		    struct psrv *);

static int	tls_finish(struct parser *, struct psrv *);
static int	ccert_finish(struct parser *, struct psrv *);
static int	ccert_check(struct psrv *);
static int	crl_check(struct parser *, struct psrv *);
static int	ticket_files(struct parser *, struct psrv *);
static int	atls_finish(struct parser *, struct psrv *);
static int	ptls_finish(struct parser *, struct psrv *);
static int	sni_shared(struct config *, struct listen_conf *,
		    struct listen_conf *);

static const struct keyword isolations[] = {
	{ "connection", ISOLATION_CONNECTION }, { "shared", ISOLATION_SHARED },
	{ NULL, 0 }
};
static const struct keyword autonum[] = { { "auto", 0 }, { NULL, 0 } };
static const struct keyword offnum[] = { { "off", 0 }, { NULL, 0 } };
static const struct keyword mechs[] = {
	{ "plain", MECH_PLAIN }, { "login", MECH_LOGIN },
	{ "cram-md5", MECH_CRAM_MD5 }, { "external", MECH_EXTERNAL },
	{ NULL, 0 }
};
static const struct keyword protos[] = {
	{ "imap", PROTO_IMAP }, { "pop3", PROTO_POP3 }, { "smtp", PROTO_SMTP },
	{ NULL, 0 }
};
static const struct keyword starttls_modes[] = {
	{ "on", STARTTLS_ON }, { "only", STARTTLS_ONLY },
	{ "off", STARTTLS_OFF }, { NULL, 0 }
};
/* nginx's names: its "TLSv1" is TLS 1.0 alone, libtls's all of 1.x */
static const struct keyword protocols[] = {
	{ "TLSv1", TLS_PROTOCOL_TLSv1_0 }, { "TLSv1.1", TLS_PROTOCOL_TLSv1_1 },
	{ "TLSv1.2", TLS_PROTOCOL_TLSv1_2 },
	{ "TLSv1.3", TLS_PROTOCOL_TLSv1_3 },
	/* words nginx knows that libtls cannot offer: value 0 */
	{ "SSLv2", 0 }, { "SSLv3", 0 }, { NULL, 0 }
};
static const struct keyword verify_modes[] = {
	{ "on", CCERT_VERIFY_ON }, { "off", CCERT_VERIFY_OFF },
	{ "optional", CCERT_VERIFY_OPTIONAL },
	{ "optional_no_ca", CCERT_VERIFY_NO_CA }, { NULL, 0 }
};
static const struct keyword pp_modes[] = {
	{ "on", PROXY_PROTOCOL_V1 }, { "v2", PROXY_PROTOCOL_V2 },
	{ "off", PROXY_PROTOCOL_OFF }, { NULL, 0 }
};
static const struct keyword ptls_modes[] = {
	{ "on", PTLS_ON }, { "starttls", PTLS_STARTTLS }, { "off", PTLS_OFF },
	{ NULL, 0 }
};

/* The language. */
static const struct directive directives[] = {
	/* main */
	{ "user",		C_MAIN,	1, 2,	D_GLOBAL | D_WORD,
	    GLB(S_STRING, user), .set = set_user },
	{ "worker_processes",	C_MAIN,	1, 1,	D_GLOBAL,
	    GLB(S_NUMBER, worker_processes), .lo = 1, .hi = 1024,
	    .vals = autonum },
	/* main: struct config's; mail and server: the server's own */
	{ "error_log",		C_ALL,	1, 2,	D_MULTI,
	    SRV(S_SPECIAL, error_log), GIVEN(error_log_set),
	    .set = set_error_log },
	{ "pid",		C_MAIN,	1, 1,	D_GLOBAL, GLB(S_STRING, pid) },
	{ "events",		C_MAIN,	0, 0,	D_GLOBAL | D_BLOCK,
	    .slot = S_BLOCK, .lo = C_EVENTS },
	{ "mail",		C_MAIN,	0, 0,	D_GLOBAL | D_BLOCK,
	    .slot = S_BLOCK, .lo = C_MAIL },
	{ "isolation",		C_MM,	1, 1,	D_GLOBAL,
	    GLB(S_ENUM, isolation), .vals = isolations },
	{ "spare_workers",	C_MM,	1, 1,	D_GLOBAL,
	    GLB(S_NUMBER, spare_workers), .lo = 0, .hi = 1024 },
	{ "shutdown_timeout",	C_MAIN,	1, 1,	D_GLOBAL,
	    GLB(S_TIME, shutdown_timeout_ms) },
	/* isolation connection: a fresh template, a fresh layout (ours) */
	{ "template_max_forks",	C_MM,	1, 1,	D_GLOBAL,
	    GLB(S_NUMBER, template_max_forks), .lo = 0, .hi = 100000000 },
	{ "template_max_age",	C_MM,	1, 1,	D_GLOBAL,
	    GLB(S_TIME, template_max_age_ms) },
	{ "include",		C_ANY,	1, 1,	D_GLOBAL | D_MULTI,
	    SPECIAL(set_include) },
	/* off: the foreground, logging as error_log says (not -d) */
	{ "daemon",		C_MAIN,	1, 1,	D_GLOBAL,
	    GLB(S_FLAG, daemonize) },
	{ "worker_rlimit_nofile", C_MAIN, 1, 1,	D_GLOBAL,
	    GLB(S_NUMBER, rlimit_nofile), .lo = 1, .hi = 1048576 },
	/* nginx main directives that mean nothing here */
	{ "master_process",	C_MAIN,	1, 1,	D_GLOBAL | D_MULTI, NONE },
	{ "load_module",	C_MAIN,	1, 1,	D_GLOBAL | D_MULTI, NONE },
	{ "pcre_jit",		C_MAIN,	1, 1,	D_GLOBAL | D_MULTI, NONE },
	/* events */
	{ "worker_connections",	C_EVENTS, 1, 1,	D_GLOBAL,
	    GLB(S_NUMBER, worker_connections), .lo = 1, .hi = 1048576 },
	{ "use",		C_EVENTS, 1, 1,	D_GLOBAL | D_MULTI, NONE },
	{ "multi_accept",	C_EVENTS, 1, 1,	D_GLOBAL | D_MULTI, NONE },
	{ "accept_mutex",	C_EVENTS, 1, 1,	D_GLOBAL | D_MULTI, NONE },
	{ "accept_mutex_delay",	C_EVENTS, 1, 1,	D_GLOBAL | D_MULTI, NONE },

	/* mail, and server (inherited from mail) */
	{ "server",		C_MAIL,	0, 0,	D_BLOCK | D_MULTI,
	    SPECIAL(set_server) },
	{ "server_name",	C_MS,	1, 1,	D_WORD,
	    SRV(S_STRING, server_name), GIVEN(server_name_set) },
	{ "timeout",		C_MS,	1, 1,	0, SRV(S_TIME, timeout_ms) },
	{ "auth_http",		C_MS,	1, 1,	0,
	    SRV(S_SPECIAL, auth_http), GIVEN(auth_http_set),
	    .set = set_auth_http },
	{ "auth_http_header",	C_MS,	2, 2,	D_MULTI,
	    SPECIAL(set_auth_header), .merge = merge_headers },
	{ "auth_http_timeout",	C_MS,	1, 1,	0,
	    SRV(S_TIME, auth_http_timeout_ms) },
	{ "auth_http_pass_client_cert", C_MS, 1, 1, 0,
	    SRV(S_FLAG, ccert_pass_cert) },
	{ "auth_http_trusted_certificate", C_MS, 1, 1, 0,
	    SRV(S_PATH, auth_tls_ca_file) },
	{ "auth_http_certificate", C_MS, 1, 1,	D_PAIR,
	    SRV(S_PATH, auth_tls_cert_file) },
	{ "auth_http_certificate_key", C_MS, 1, 1, D_PAIRED,
	    SRV(S_PATH, auth_tls_key_file) },
	{ "imap_auth",		C_MS,	1, -1,	D_MULTI,
	    SRV(S_BITS, imap_auth), .vals = mechs },
	{ "imap_capabilities",	C_MS,	1, -1,	D_MULTI,
	    SRV(S_WORDS, imap_capabilities) },
	{ "imap_client_buffer",	C_MS,	1, 1,	0,
	    SRV(S_SIZE, imap_client_buffer), .lo = 64 },
	{ "proxy_buffer",	C_MS,	1, 1,	0,
	    SRV(S_SIZE, proxy_buffer), .lo = 64 },
	{ "proxy_timeout",	C_MS,	1, 1,	0,
	    SRV(S_TIME, proxy_timeout_ms) },
	{ "proxy_pass_error_message", C_MS, 1, 1, 0,
	    SRV(S_FLAG, proxy_pass_error_message) },
	{ "max_errors",		C_MS,	1, 1,	0,
	    SRV(S_NUMBER, max_errors), .lo = 1, .hi = 1000000 },
	{ "so_keepalive",	C_MS,	1, 1,	0,
	    SRV(S_FLAG, so_keepalive) },
	/* nginx parses it and never uses it */
	{ "proxy",		C_MS,	1, 1,	0, .slot = S_FLAG },
	{ "proxy_pass",		C_MS,	1, 1,	0,
	    SPAN(S_SPECIAL, proxy_pass, proxy_pass_name),
	    GIVEN(proxy_pass_set), .set = set_proxy_pass },
	{ "resolver",		C_MS,	1, -1,	D_MULTI, NONE },
	{ "resolver_timeout",	C_MS,	1, 1,	0, .slot = S_TIME },
	/* limits the proxy keeps by itself (beyond nginx) */
	{ "limit_conn_per_ip",	C_MS,	1, 1,	0,
	    SRV(S_NUMBER, limit_conn_per_ip), .lo = 0, .hi = 1000000 },
	{ "auth_fail_delay",	C_MS,	1, 1,	0,
	    SRV(S_TIME, auth_fail_delay_ms), .lo = 0, .hi = 60 * 1000 },
	{ "limit_auth_fail",	C_MS,	1, 3,	0,
	    SPAN(S_SPECIAL, limit_auth_fail, limit_auth_fail_delay_ms),
	    .set = set_limit_auth_fail },
	{ "limit_prelogin_per_ip", C_MS, 1, 1,	0,
	    SRV(S_NUMBER, limit_prelogin_per_ip), .lo = 0, .hi = 1000000,
	    .vals = offnum },
	{ "limit_conn_rate",	C_MS,	1, 2,	0,
	    SPAN(S_SPECIAL, limit_conn_rate, limit_conn_burst),
	    .set = set_limit_conn_rate },
	{ "limit_ipv6_prefix",	C_MS,	1, 1,	0,
	    SRV(S_NUMBER, limit_ipv6_prefix), .lo = 1, .hi = 128 },
	/* hostile clients before login (beyond nginx) */
	{ "login_timeout",	C_MS,	1, 1,	0,
	    SRV(S_TIME, login_timeout_ms) },
	{ "login_max_commands",	C_MS,	1, 1,	0,
	    SRV(S_NUMBER, login_max_commands), .lo = 1, .hi = 1000000 },
	{ "proxy_forward_client_ip", C_MS, 1, 1, 0,
	    SRV(S_FLAG, proxy_forward_client_ip) },
	/* TLS towards clients */
	/* ssl then starttls: each setter looks at the other's row */
	{ "ssl",		C_MS,	1, 1,	0,
	    SRV(S_FLAG, listen_ssl), .set = set_ssl },
	{ "starttls",		C_MS,	1, 1,	0,
	    SRV(S_ENUM, starttls), .vals = starttls_modes,
	    .set = set_starttls },
	{ "ssl_certificate",	C_MS,	1, 1,	D_MULTI | D_PAIR,
	    SRV(S_PATHS, tls_cert_file) },
	{ "ssl_certificate_key", C_MS,	1, 1,	D_MULTI | D_PAIRED,
	    SRV(S_PATHS, tls_key_file) },
	{ "ssl_protocols",	C_MS,	1, -1,	0,
	    SRV(S_BITS, tls_protocols), .vals = protocols },
	{ "ssl_ciphers",	C_MS,	1, 1,	0,
	    SRV(S_SPECIAL, tls_ciphers), .set = set_ciphers },
	{ "ssl_ecdh_curve",	C_MS,	1, 1,	0,
	    SRV(S_SPECIAL, tls_ecdh_curve), .set = set_curve },
	{ "ssl_prefer_server_ciphers", C_MS, 1, 1, 0,
	    SRV(S_FLAG, tls_prefer_server_ciphers) },
	{ "ssl_dhparam",	C_MS,	1, 1,	0,
	    SRV(S_SPECIAL, tls_dhparams), .set = set_dhparam },
	{ "ssl_session_timeout", C_MS,	1, 1,	0,
	    SRV(S_SPECIAL, tls_session_timeout), .set = set_session_timeout },
	{ "ssl_session_tickets", C_MS,	1, 1,	0,
	    SRV(S_FLAG, tls_session_tickets) },
	{ "ssl_session_ticket_key", C_MS, 1, 1,	D_MULTI,
	    SRV(S_PATHS, tls_ticket_file) },
	/* accepted and ignored: libtls resumes with tickets only */
	{ "ssl_session_cache",	C_MS,	1, -1,	0, NONE },
	{ "ssl_verify_client",	C_MS,	1, 1,	0,
	    SRV(S_ENUM, ccert_verify), .vals = verify_modes },
	{ "ssl_verify_depth",	C_MS,	1, 1,	0,
	    SRV(S_NUMBER, ccert_depth), .lo = 0, .hi = 100 },
	{ "ssl_client_certificate", C_MS, 1, 1,	0,
	    SRV(S_PATH, ccert_ca_file) },
	{ "ssl_trusted_certificate", C_MS, 1, 1, 0,
	    SRV(S_PATH, ccert_trusted_file) },
	{ "ssl_crl",		C_MS,	1, 1,	0,
	    SRV(S_PATH, ccert_crl_file) },
	{ "ssl_password_file",	C_MS,	1, 1,	0,
	    SRV(S_PATH, tls_password_file) },
	/* TLS to the backend */
	{ "proxy_ssl",		C_MS,	1, 1,	0,
	    SRV(S_ENUM, proxy_ssl), .vals = ptls_modes },
	{ "proxy_ssl_verify",	C_MS,	1, 1,	0,
	    SRV(S_FLAG, proxy_ssl_verify) },
	{ "proxy_ssl_trusted_certificate", C_MS, 1, 1, 0,
	    SRV(S_PATH, proxy_ssl_ca_file) },
	{ "proxy_ssl_name",	C_MS,	1, 1,	0,
	    SRV(S_SPECIAL, proxy_ssl_name), .set = set_host_name },
	{ "proxy_ssl_certificate", C_MS, 1, 1,	D_PAIR,
	    SRV(S_PATH, proxy_ssl_cert_file) },
	{ "proxy_ssl_certificate_key", C_MS, 1, 1, D_PAIRED,
	    SRV(S_PATH, proxy_ssl_key_file) },
	{ "proxy_ssl_protocols", C_MS,	1, -1,	0,
	    SRV(S_BITS, proxy_ssl_protocols), .vals = protocols },
	{ "proxy_ssl_ciphers",	C_MS,	1, 1,	0,
	    SRV(S_SPECIAL, proxy_ssl_ciphers), .set = set_ciphers },
	/* server only */
	{ "listen",		C_SERVER, 1, -1, D_MULTI, SPECIAL(set_listen) },
	{ "protocol",		C_SERVER, 1, 1,	0, SPECIAL(set_protocol) },
	/* the PROXY protocol: to the backend, and whom to believe */
	{ "proxy_protocol",	C_MS,	1, 1,	0,
	    SRV(S_ENUM, proxy_protocol), .vals = pp_modes },
	{ "set_real_ip_from",	C_MS,	1, 1,	D_MULTI,
	    SPAN(S_SPECIAL, nrealip, realip), .set = set_realip },

	/* nginx serves these from the same file: accepted, no effect */
	{ "http",		C_MAIN,	0, 0,	D_GLOBAL | D_BLOCK,
	    SPECIAL(skip_block) },
	{ "stream",		C_MAIN,	0, 0,	D_GLOBAL | D_BLOCK,
	    SPECIAL(skip_block) },
	{ "pop3_auth",		C_MS,	1, -1,	D_MULTI,
	    SPECIAL(set_other_protocol) },
	{ "pop3_capabilities",	C_MS,	1, -1,	D_MULTI,
	    SPECIAL(set_other_protocol) },
	{ "smtp_auth",		C_MS,	1, -1,	D_MULTI,
	    SPECIAL(set_other_protocol) },
	{ "smtp_capabilities",	C_MS,	1, -1,	D_MULTI,
	    SPECIAL(set_other_protocol) },
	{ "smtp_client_buffer",	C_MS,	1, 1,	0,
	    SPECIAL(set_other_protocol) },
	{ "smtp_greeting_delay", C_MS,	1, 1,	0,
	    SPECIAL(set_other_protocol) },
	{ "xclient",		C_MS,	1, 1,	0,
	    SPECIAL(set_other_protocol) },
	{ "proxy_smtp_auth",	C_MS,	1, 1,	0,
	    SPECIAL(set_other_protocol) },
};

#define NDIRECTIVES	NITEMS(directives)
#define SETWORDS	((NDIRECTIVES + 31) / 32)

/* a whole family by prefix: the other ssl_* */
static const struct {
	const char	*prefix;
	setter		 set;
} prefixes[] = {
	{ "ssl_",	deny_tls },
};

enum token {
	T_ERROR = -1,
	T_EOF,
	T_WORD,
	T_SEMI,
	T_LBRACE,
	T_RBRACE,
};

struct pfile {
	FILE		*fp;
	const char	*name;		/* interned: outlives the parse */
	int		 line;
	int		 ungot;		/* a pushed back char, or -2 */
};

/* a server{} (or the mail{} level) and the rows it set itself */
struct psrv {
	TAILQ_ENTRY(psrv)	 entry;
	struct server_conf	*srv;
	uint32_t		 set[SETWORDS];
	int			 nlisten;
	int			 proto;		/* PROTO_*: 0 until known */
	const char		*file;
	int			 line;
};


struct parser {
	struct config		*conf;
	struct pfile		*f;
	int			 depth;		/* include nesting */
	int			 line;		/* of the current statement */
	int			 ctx;		/* of the current statement */
	int			 first;		/* row not yet set at this level */
	uint32_t		 mainset[SETWORDS];	/* D_GLOBAL rows */
	struct psrv		 mail;		/* srv not in conf->servers */
	struct psrv		*cur;		/* the server{} being read */
	TAILQ_HEAD(, psrv)	 psrvs;
	int			 nskipped;	/* pop3/smtp servers */
	int			 noted_proto;	/* pop3/smtp directive noted */
	/*
	 * Inside a server{}, the first error is held until the server's
	 * end: a pop3 or smtp server, known only from its "protocol" or
	 * its port, is skipped with whatever it holds that we refuse.
	 */
	int			 holding;
	char			 held[1200];
};

static int	parse_file(struct parser *, const char *, int);
static int	parse_block(struct parser *, int, int);
static int	skip_body(struct parser *);

static void	perr(struct parser *, const char *, ...)
		    __attribute__((format(printf, 2, 3)));
static void	lerr(struct parser *, const char *, ...)
		    __attribute__((format(printf, 2, 3)));
static void	pnotice(struct parser *, const char *, ...)
		    __attribute__((format(printf, 2, 3)));

static int
row_isset(const uint32_t *set, const struct directive *d)
{
	size_t	 i = d - directives;

	return ((set[i / 32] >> (i % 32)) & 1);
}

static void
row_set(uint32_t *set, const struct directive *d)
{
	size_t	 i = d - directives;

	set[i / 32] |= 1U << (i % 32);
}

static void
perr(struct parser *p, const char *fmt, ...)
{
	va_list	 ap;
	char	 msg[1024];

	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	if (!p->holding)
		log_warnx("%s:%d: %s", p->f->name, p->line, msg);
	else if (p->held[0] == '\0')
		snprintf(p->held, sizeof(p->held), "%s:%d: %s", p->f->name,
		    p->line, msg);
}

/* the error held in a server{}, if any, is said now */
static void
unhold(struct parser *p)
{
	if (p->held[0] != '\0')
		log_warnx("%s", p->held);
	p->held[0] = '\0';
	p->holding = 0;
}

/* the lexer's errors are at the line it is reading, and end the parse */
static void
lerr(struct parser *p, const char *fmt, ...)
{
	va_list	 ap;
	char	 msg[1024];

	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	unhold(p);
	p->line = p->f->line;
	log_warnx("%s:%d: %s", p->f->name, p->line, msg);
}

/* what is accepted and means nothing here, said once */
static void
pnotice(struct parser *p, const char *fmt, ...)
{
	va_list	 ap;
	char	 msg[1024];

	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	log_notice("%s:%d: %s", p->f->name, p->line, msg);
}

/*
 * File names live as long as the process: listen_conf keeps one for
 * the bind errors the parent reports later.  Bounded by the number of
 * distinct files ever read.
 */
static const char *
intern(const char *name)
{
	static char	**names;
	static size_t	  nnames;
	char		**n;
	size_t		  i;

	for (i = 0; i < nnames; i++)
		if (strcmp(names[i], name) == 0)
			return (names[i]);
	if ((n = reallocarray(names, nnames + 1, sizeof(*n))) == NULL)
		fatal(__func__);
	names = n;
	if ((names[nnames] = strdup(name)) == NULL)
		fatal(__func__);
	return (names[nnames++]);
}

/*
 * The lexer.
 */

static int
lgetc(struct pfile *f)
{
	int	 c;

	if (f->ungot != -2) {
		c = f->ungot;
		f->ungot = -2;
	} else
		c = getc(f->fp);
	if (c == '\n')
		f->line++;
	return (c);
}

static void
lungetc(struct pfile *f, int c)
{
	if (c == '\n')
		f->line--;
	f->ungot = c;
}

/*
 * What ends a word, as nginx reads: not "}", which is a word's own
 * character unless a word starts with it ("a}" is one word).
 */
static int
isdelim(int c)
{
	return (c == EOF || c == ' ' || c == '\t' || c == '\r' ||
	    c == '\n' || c == ';' || c == '{');
}

/* after a backslash: nginx's escapes, others keep the backslash */
static int
lescape(struct parser *p, char *buf, size_t *len)
{
	int	 c;

	if ((c = lgetc(p->f)) == EOF) {
		lerr(p, "unexpected end of file after \"\\\"");
		return (-1);
	}
	switch (c) {
	case 't':
		c = '\t';
		break;
	case 'r':
		c = '\r';
		break;
	case 'n':
		c = '\n';
		break;
	case '"':
	case '\'':
	case '\\':
		break;
	default:
		if (*len + 1 >= TOKEN_MAX)
			return (-2);
		buf[(*len)++] = '\\';
		break;
	}
	if (*len + 1 >= TOKEN_MAX)
		return (-2);
	buf[(*len)++] = c;
	return (0);
}

/* a quoted string, the opening quote q already read */
static int
lquoted(struct parser *p, int q, char *buf)
{
	size_t	 len = 0;
	int	 c, r;

	for (;;) {
		if ((c = lgetc(p->f)) == EOF) {
			lerr(p, "unexpected end of file, expecting %c", q);
			return (T_ERROR);
		}
		if (c == q)
			break;
		if (c == '\\') {
			if ((r = lescape(p, buf, &len)) == -1)
				return (T_ERROR);
			if (r == -2)
				goto toolong;
			continue;
		}
		if (c == '\0')
			goto nul;
		if (len + 1 >= TOKEN_MAX)
			goto toolong;
		buf[len++] = c;
	}
	buf[len] = '\0';
	c = lgetc(p->f);
	/* ")" may follow, as in http's if ($a = 'b') {: it starts a word */
	if (!isdelim(c) && c != ')') {
		lerr(p, "unexpected \"%c\" after a quoted string", c);
		return (T_ERROR);
	}
	lungetc(p->f, c);
	return (T_WORD);
 toolong:
	lerr(p, "too long token");
	return (T_ERROR);
 nul:
	lerr(p, "unexpected nul byte");
	return (T_ERROR);
}

static int
lword(struct parser *p, int c, char *buf)
{
	size_t	 len = 0;
	int	 r;

	/* "${name}" is a variable in http{}: its "{" does not end the word */
	for (; !isdelim(c) || (c == '{' && len > 0 && buf[len - 1] == '$');
	    c = lgetc(p->f)) {
		if (c == '\0') {
			lerr(p, "unexpected nul byte");
			return (T_ERROR);
		}
		if (c == '\\') {
			if ((r = lescape(p, buf, &len)) == -1)
				return (T_ERROR);
			if (r == -2)
				goto toolong;
			continue;
		}
		if (len + 1 >= TOKEN_MAX)
			goto toolong;
		buf[len++] = c;
	}
	lungetc(p->f, c);
	buf[len] = '\0';
	return (T_WORD);
 toolong:
	lerr(p, "too long token");
	return (T_ERROR);
}

/* the next token; a word is left in buf (TOKEN_MAX bytes) */
static int
ltoken(struct parser *p, char *buf)
{
	int	 c;

	for (;;) {
		c = lgetc(p->f);
		if (c == ' ' || c == '\t' || c == '\r' || c == '\n')
			continue;
		if (c != '#')
			break;
		while ((c = lgetc(p->f)) != '\n' && c != EOF)
			;
		if (c == EOF)
			break;
	}
	switch (c) {
	case EOF:
		return (T_EOF);
	case ';':
		return (T_SEMI);
	case '{':
		return (T_LBRACE);
	case '}':
		return (T_RBRACE);
	case '"':
	case '\'':
		return (lquoted(p, c, buf));
	default:
		return (lword(p, c, buf));
	}
}

/*
 * Statements and blocks.
 */

static void
freeargs(int argc, char **argv)
{
	while (argc > 0)
		free(argv[--argc]);
}

/* words up to a terminator; the terminator is returned, argc set */
static int
lstatement(struct parser *p, char **argv, int *argc)
{
	char	 buf[TOKEN_MAX];
	int	 t;

	*argc = 0;
	for (;;) {
		if ((t = ltoken(p, buf)) != T_WORD)
			break;
		if (*argc == 0)
			p->line = p->f->line;
		if (*argc == MAXARGS) {
			perr(p, "too many arguments in \"%s\" directive",
			    argv[0]);
			return (T_ERROR);
		}
		if ((argv[(*argc)++] = strdup(buf)) == NULL)
			fatal(__func__);
	}
	if (*argc == 0)
		p->line = p->f->line;
	return (t);
}


static const struct directive *
lookup(const char *name)
{
	size_t	 i;

	for (i = 0; i < NDIRECTIVES; i++)
		if (strcmp(directives[i].name, name) == 0)
			return (&directives[i]);
	return (NULL);
}

static int	set_slot(struct parser *, const struct directive *, void *,
		    int, char **);

/* the level a mail/server row applies to */
static struct psrv *
level(struct parser *p)
{
	return (p->ctx == C_SERVER ? p->cur : &p->mail);
}

static int
directive(struct parser *p, int ctx, int argc, char **argv, int block)
{
	const struct directive	*d;
	uint32_t		*set;
	void			*base;
	size_t			 i;

	if ((d = lookup(argv[0])) == NULL) {
		for (i = 0; i < NITEMS(prefixes); i++)
			if (strncmp(argv[0], prefixes[i].prefix,
			    strlen(prefixes[i].prefix)) == 0)
				return (prefixes[i].set(p, NULL, NULL, argc,
				    argv));
		perr(p, "unknown directive \"%s\"", argv[0]);
		return (-1);
	}
	p->ctx = ctx;
	if (d->flags & D_REFUSE)
		return (d->set(p, d, NULL, argc, argv));
	if ((d->ctx & ctx) == 0) {
		perr(p, "\"%s\" directive is not allowed here", argv[0]);
		return (-1);
	}
	if ((d->flags & D_BLOCK) && !block) {
		perr(p, "directive \"%s\" has no opening \"{\"", argv[0]);
		return (-1);
	}
	if (!(d->flags & D_BLOCK) && block) {
		perr(p, "directive \"%s\" is not terminated by \";\"",
		    argv[0]);
		return (-1);
	}
	if (argc - 1 < d->min || (d->max != -1 && argc - 1 > d->max)) {
		perr(p, "invalid number of arguments in \"%s\" directive",
		    argv[0]);
		return (-1);
	}
	/* at the top level a row's value is struct config's */
	if ((d->flags & D_GLOBAL) || (ctx & (C_MAIN | C_EVENTS))) {
		set = p->mainset;
		base = p->conf;
	} else {
		set = level(p)->set;
		base = level(p)->srv;
	}
	p->first = !row_isset(set, d);
	if (!p->first && !(d->flags & D_MULTI)) {
		perr(p, "\"%s\" directive is duplicate", argv[0]);
		return (-1);
	}
	row_set(set, d);
	if (d->given != 0 && base != p->conf)
		*(int *)((char *)base + d->given) = 1;
	return (d->set != NULL ? d->set(p, d, base, argc, argv) :
	    set_slot(p, d, base, argc, argv));
}

/*
 * Statements and blocks.
 */

/*
 * Statements of one context until "}" (inblock) or the end of the
 * file.  Block directives parse their own body by calling back here.
 */
static int
parse_block(struct parser *p, int ctx, int inblock)
{
	char	*argv[MAXARGS];
	int	 argc, t, rv;

	for (;;) {
		t = lstatement(p, argv, &argc);
		switch (t) {
		case T_ERROR:
			freeargs(argc, argv);
			unhold(p);
			return (-1);
		case T_EOF:
			p->line = p->f->line;
			if (argc > 0)
				perr(p, "unexpected end of file, "
				    "expecting \";\" or \"}\"");
			else if (inblock)
				perr(p, "unexpected end of file, "
				    "expecting \"}\"");
			freeargs(argc, argv);
			return (argc > 0 || inblock ? -1 : 0);
		case T_RBRACE:
			if (argc > 0 || !inblock) {
				perr(p, "unexpected \"}\"");
				freeargs(argc, argv);
				return (-1);
			}
			return (0);
		default:
			if (argc == 0) {
				perr(p, "unexpected \"%s\"",
				    t == T_SEMI ? ";" : "{");
				return (-1);
			}
			rv = directive(p, ctx, argc, argv, t == T_LBRACE);
			freeargs(argc, argv);
			if (rv == -1 && !p->holding)
				return (-1);
			/* held: a refused block's body is not ours to read */
			if (rv == -1 && t == T_LBRACE && skip_body(p) == -1)
				return (-1);
		}
	}
}

/* a { } body read and thrown away, blocks within it included */
static int
skip_body(struct parser *p)
{
	char	 buf[TOKEN_MAX];
	int	 depth = 1;

	while (depth > 0) {
		switch (ltoken(p, buf)) {
		case T_ERROR:
			return (-1);
		case T_EOF:
			lerr(p, "unexpected end of file, expecting \"}\"");
			return (-1);
		case T_LBRACE:
			depth++;
			break;
		case T_RBRACE:
			depth--;
			break;
		default:
			break;
		}
	}
	return (0);
}

static int
parse_file(struct parser *p, const char *path, int ctx)
{
	struct pfile	 f, *saved = p->f;
	int		 savedline = p->line, rv;

	memset(&f, 0, sizeof(f));
	if ((f.fp = fopen(path, "r")) == NULL) {
		if (saved != NULL)
			perr(p, "cannot open \"%s\": %s", path,
			    strerror(errno));
		else
			log_warn("%s", path);
		return (-1);
	}
	f.name = intern(path);
	f.line = 1;
	f.ungot = -2;
	p->f = &f;
	rv = parse_block(p, ctx, 0);
	fclose(f.fp);
	p->f = saved;
	p->line = savedline;
	return (rv);
}

/*
 * Values: numbers, flags, sizes and times as nginx writes them.
 */

static int
badvalue(struct parser *p, char **argv, const char *value)
{
	perr(p, "invalid value \"%s\" in \"%s\" directive", value, argv[0]);
	return (-1);
}

/* "8k", "1m", "1g", or bytes */
static int
parse_size(const char *s, size_t *out)
{
	unsigned long long	 v;
	char			*end;
	size_t			 mult = 1;

	if (!isdigit((unsigned char)s[0]))
		return (-1);
	errno = 0;
	v = strtoull(s, &end, 10);
	if (errno != 0)
		return (-1);
	if (*end != '\0') {
		switch (*end) {
		case 'k':
		case 'K':
			mult = 1024;
			break;
		case 'm':
		case 'M':
			mult = 1024 * 1024;
			break;
		case 'g':
		case 'G':
			mult = 1024 * 1024 * 1024;
			break;
		default:
			return (-1);
		}
		if (end[1] != '\0')
			return (-1);
	}
	if (v > SIZE_MAX / mult || v * mult > INT_MAX)
		return (-1);
	*out = v * mult;
	return (0);
}

/*
 * nginx's times: "500ms", "60s", "5m", "24h", "1d", "1w", "1M",
 * "1y", combined largest unit first ("1h30m"); a plain number is
 * seconds.  Milliseconds out; must fit an unsigned int.
 */
static int
parse_time(const char *s, unsigned int *out)
{
	static const struct {
		const char		*unit;
		unsigned long long	 ms;
	} units[] = {
		{ "y", 365ULL * 86400000 }, { "M", 30ULL * 86400000 },
		{ "w", 7ULL * 86400000 }, { "d", 86400000 },
		{ "h", 3600000 }, { "m", 60000 }, { "s", 1000 },
		{ "ms", 1 },
	};
	unsigned long long	 total = 0, v;
	size_t			 i, ulen, next = 0;
	size_t			 n = sizeof(units) / sizeof(units[0]);
	char			*end;

	if (*s == '\0')
		return (-1);
	while (*s != '\0') {
		if (*s == ' ') {
			s++;
			continue;
		}
		if (!isdigit((unsigned char)*s))
			return (-1);
		errno = 0;
		v = strtoull(s, &end, 10);
		if (errno != 0 || v > UINT_MAX)
			return (-1);
		s = end;
		ulen = strspn(s, LETTERS);
		if (ulen == 0)
			i = 6;		/* no unit: seconds */
		else
			for (i = 0; i < n; i++)
				if (strlen(units[i].unit) == ulen &&
				    strncmp(s, units[i].unit, ulen) == 0)
					break;
		/* each unit once, largest first */
		if (i == n || i < next)
			return (-1);
		next = i + 1;
		s += ulen;
		total += v * units[i].ms;
		if (total > UINT_MAX)
			return (-1);
	}
	*out = total;
	return (0);
}


/* nothing outside printable ASCII, no space: the value reaches the wire */
static int
isprintword(const char *s)
{
	if (*s == '\0')
		return (0);
	for (; *s != '\0'; s++)
		if ((unsigned char)*s <= ' ' || (unsigned char)*s >= 0x7f)
			return (0);
	return (1);
}


static int
parse_number(struct parser *p, char **argv, long long min, long long max,
    long long *out)
{
	const char	*errstr;

	*out = strtonum(argv[1], min, max, &errstr);
	if (errstr != NULL) {
		perr(p, "invalid value \"%s\" in \"%s\" directive: %s",
		    argv[1], argv[0], errstr);
		return (-1);
	}
	return (0);
}

/* a relative path is taken from the directory of the file that names it */
static int
ssl_path(struct parser *p, const char *arg, char *path, size_t size)
{
	char	 dir[PATH_MAX];
	int	 n;

	if (strncmp(arg, "engine:", 7) == 0 || strncmp(arg, "store:", 6) == 0 ||
	    strncmp(arg, "data:", 5) == 0) {
		perr(p, "\"%s\": only files are supported", arg);
		return (-1);
	}
	if (arg[0] == '/')
		n = snprintf(path, size, "%s", arg);
	else {
		strlcpy(dir, p->f->name, sizeof(dir));
		n = snprintf(path, size, "%s/%s", dirname(dir), arg);
	}
	if (arg[0] == '\0' || n < 0 || (size_t)n >= size) {
		perr(p, "invalid file name \"%s\"", arg);
		return (-1);
	}
	return (0);
}

/*
 * The typed slots.  field is where the row's value goes; d->size its
 * size, 0 for a value that is checked and kept nowhere.
 */

static const struct keyword onoff[] = {
	{ "on", 1 }, { "off", 0 }, { NULL, 0 }
};

static const struct keyword *
keyword(const struct keyword *k, const char *word)
{
	for (; k != NULL && k->name != NULL; k++)
		if (strcasecmp(k->name, word) == 0)
			return (k);
	return (NULL);
}

static void
store_int(const struct directive *d, void *field, int v)
{
	if (d->size == sizeof(int))
		memcpy(field, &v, sizeof(int));
}

/* flag and enum: the message lists what the value may be */
static int
slot_enum(struct parser *p, const struct directive *d, void *field,
    char **argv)
{
	const struct keyword	*vals = d->slot == S_FLAG ? onoff : d->vals;
	const struct keyword	*k;
	char			 list[256];
	size_t			 i, n;

	if ((k = keyword(vals, argv[1])) != NULL) {
		store_int(d, field, k->value);
		return (0);
	}
	for (n = 0; vals[n].name != NULL; n++)
		;
	list[0] = '\0';
	for (i = 0; i < n; i++) {
		if (i > 0)
			strlcat(list, i == n - 1 ? " or " : ", ",
			    sizeof(list));
		strlcat(list, "\"", sizeof(list));
		strlcat(list, vals[i].name, sizeof(list));
		strlcat(list, "\"", sizeof(list));
	}
	perr(p, "invalid value \"%s\" in \"%s\" directive, it must be %s",
	    argv[1], argv[0], list);
	return (-1);
}

static int
slot_number(struct parser *p, const struct directive *d, void *field,
    char **argv)
{
	const struct keyword	*k;
	long long		 n;

	if ((k = keyword(d->vals, argv[1])) != NULL)
		n = k->value;
	else if (parse_number(p, argv, d->lo, d->hi, &n) == -1)
		return (-1);
	store_int(d, field, n);
	return (0);
}

/* like nginx's bitmask: the first line at a level clears the default */
static int
slot_bits(struct parser *p, const struct directive *d, void *field,
    int argc, char **argv)
{
	const struct keyword	*k;
	unsigned int		 bits = 0;
	int			 i;

	if (!p->first)
		memcpy(&bits, field, sizeof(bits));
	for (i = 1; i < argc; i++) {
		if ((k = keyword(d->vals, argv[i])) == NULL)
			return (badvalue(p, argv, argv[i]));
		/* a word nginx knows that libtls cannot offer */
		if (k->value == 0)
			pnotice(p, "\"%s\" in \"%s\" is not offered: libtls "
			    "has no such protocol", argv[i], argv[0]);
		bits |= k->value;
	}
	if (bits == 0) {
		perr(p, "\"%s\" leaves no protocol libtls can offer",
		    argv[0]);
		return (-1);
	}
	memcpy(field, &bits, sizeof(bits));
	return (0);
}

/* replaces the default list; repeated lines append, as in nginx */
static int
slot_words(struct parser *p, const struct directive *d, char *field,
    int argc, char **argv)
{
	int	 i;

	if (p->first)
		field[0] = '\0';
	for (i = 1; i < argc; i++) {
		if (!isprintword(argv[i]))
			return (badvalue(p, argv, argv[i]));
		if ((field[0] != '\0' &&
		    strlcat(field, " ", d->size) >= d->size) ||
		    strlcat(field, argv[i], d->size) >= d->size) {
			perr(p, "too long \"%s\" list", argv[0]);
			return (-1);
		}
	}
	return (0);
}

/* ssl_certificate and ssl_certificate_key pair up in the order given */
static int
slot_paths(struct parser *p, const struct directive *d, char *field,
    char **argv)
{
	size_t	 i, n = d->size / TLS_PATH_MAX;

	for (i = 0; i < n; i++)
		if (field[i * TLS_PATH_MAX] == '\0')
			break;
	if (i == n) {
		perr(p, "too many \"%s\" directives, at most %zu", argv[0], n);
		return (-1);
	}
	return (ssl_path(p, argv[1], field + i * TLS_PATH_MAX,
	    TLS_PATH_MAX));
}

static int
set_slot(struct parser *p, const struct directive *d, void *base,
    int argc, char **argv)
{
	char		*field = (char *)base + d->off;
	unsigned int	 ms;
	size_t		 size;

	switch (d->slot) {
	case S_NONE:
		log_debug("%s:%d: \"%s\" ignored", p->f->name, p->line,
		    argv[0]);
		return (0);
	case S_BLOCK:
		return (parse_block(p, d->lo, 1));
	case S_FLAG:
	case S_ENUM:
		return (slot_enum(p, d, field, argv));
	case S_NUMBER:
		return (slot_number(p, d, field, argv));
	case S_TIME:
		if (parse_time(argv[1], &ms) == -1 || (d->hi == 0 && ms == 0) ||
		    (d->hi != 0 && (ms < d->lo || ms > d->hi)))
			return (badvalue(p, argv, argv[1]));
		if (d->size == sizeof(ms))
			memcpy(field, &ms, sizeof(ms));
		return (0);
	case S_SIZE:
		if (parse_size(argv[1], &size) == -1 || size < (size_t)d->lo)
			return (badvalue(p, argv, argv[1]));
		memcpy(field, &size, sizeof(size));
		return (0);
	case S_STRING:
		if (argv[1][0] == '\0' ||
		    ((d->flags & D_WORD) && !isprintword(argv[1])) ||
		    strlcpy(field, argv[1], d->size) >= d->size)
			return (badvalue(p, argv, argv[1]));
		return (0);
	case S_PATH:
		return (ssl_path(p, argv[1], field, d->size));
	case S_PATHS:
		return (slot_paths(p, d, field, argv));
	case S_BITS:
		return (slot_bits(p, d, field, argc, argv));
	case S_WORDS:
		return (slot_words(p, d, field, argc, argv));
	case S_SPECIAL:
		break;
	}
	fatalx("%s: %s has no setter", __func__, d->name);
}

/*
 * The special setters: directives whose value is more than a slot.
 */

static int
loglevel(const char *s)
{
	static const struct keyword	 levels[] = {
		{ "debug", LOG_DEBUG }, { "info", LOG_INFO },
		{ "notice", LOG_NOTICE }, { "warn", LOG_WARNING },
		{ "error", LOG_ERR }, { "crit", LOG_CRIT },
		{ "alert", LOG_ALERT }, { "emerg", LOG_EMERG },
		{ NULL, 0 }
	};
	const struct keyword		*k;

	for (k = levels; k->name != NULL; k++)
		if (strcmp(s, k->name) == 0)
			return (k->value);
	return (-1);
}

/* a slot, and where it was given: the parent checks the user exists */
static int
set_user(struct parser *p, const struct directive *d, void *base, int argc,
    char **argv)
{
	if (set_slot(p, d, base, argc, argv) == -1)
		return (-1);
	strlcpy(p->conf->user_file, p->f->name, sizeof(p->conf->user_file));
	p->conf->user_line = p->line;
	return (0);
}

/*
 * syslog:server=ADDR[,facility=F][,severity=S][,tag=T][,nohostname],
 * as nginx reads it: the server a unix: path or host[:port], UDP 514
 * by default, resolved now; severity is nginx's for access logs and
 * unused (a line's severity is its level).
 */
static int
syslog_server(struct parser *p, const char *v, struct log_dest *dest)
{
	struct sockaddr_un	*sun = (struct sockaddr_un *)&dest->syslog_ss;
	struct addrinfo		 hints, *res;
	char			 host[NAME_MAX_LEN], port[8] = "514";
	const char		*why = NULL;
	int			 error;

	if (dest->syslog_server[0] != '\0') {
		perr(p, "duplicate syslog \"server\"");
		return (-1);
	}
	if (strlcpy(dest->syslog_server, v, sizeof(dest->syslog_server)) >=
	    sizeof(dest->syslog_server))
		why = "too long";
	else if (strncmp(v, "unix:", 5) == 0) {
		sun->sun_family = AF_UNIX;
		if (v[5] == '\0' || strlcpy(sun->sun_path, v + 5,
		    sizeof(sun->sun_path)) >= sizeof(sun->sun_path))
			why = "invalid path";
		dest->syslog_sslen = sizeof(*sun);
	} else if (strchr(v, ':') == NULL || (v[0] == '[' &&
	    strstr(v, "]:") == NULL)) {
		/* no port: 514 */
		if (strlcpy(host, v[0] == '[' ? v + 1 : v, sizeof(host)) >=
		    sizeof(host))
			why = "invalid host";
		else if (v[0] == '[')
			host[strcspn(host, "]")] = '\0';
	} else
		why = split_hostport(v, host, sizeof(host), port,
		    sizeof(port));
	if (why == NULL && strncmp(v, "unix:", 5) != 0) {
		memset(&hints, 0, sizeof(hints));
		hints.ai_family = AF_UNSPEC;
		hints.ai_socktype = SOCK_DGRAM;
		hints.ai_flags = AI_NUMERICSERV;
		if ((error = getaddrinfo(host, port, &hints, &res)) != 0) {
			perr(p, "host \"%s\" of syslog server not found: %s",
			    host, gai_strerror(error));
			return (-1);
		}
		/* as nginx: the first address */
		memcpy(&dest->syslog_ss, res->ai_addr, res->ai_addrlen);
		dest->syslog_sslen = res->ai_addrlen;
		freeaddrinfo(res);
	}
	if (why != NULL) {
		perr(p, "%s in syslog server \"%s\"", why, v);
		return (-1);
	}
	return (0);
}

static int
syslog_params(struct parser *p, char *v, struct log_dest *dest)
{
	static const char	*facilities[] = { "kern", "user", "mail",
				    "daemon", "auth", "intern", "lpr", "news",
				    "uucp", "clock", "authpriv", "ftp", "ntp",
				    "audit", "alert", "cron", "local0",
				    "local1", "local2", "local3", "local4",
				    "local5", "local6", "local7" };
	char			*param;
	int			 facility = -1, severity = 0, tag = 0;
	size_t			 i;

	while ((param = strsep(&v, ",")) != NULL) {
		if (strncmp(param, "server=", 7) == 0) {
			if (syslog_server(p, param + 7, dest) == -1)
				return (-1);
		} else if (strncmp(param, "facility=", 9) == 0) {
			for (i = 0; i < NITEMS(facilities); i++)
				if (strcmp(param + 9, facilities[i]) == 0)
					break;
			if (facility != -1 || i == NITEMS(facilities)) {
				perr(p, facility != -1 ? "duplicate syslog "
				    "\"facility\"" : "unknown syslog facility "
				    "\"%s\"", param + 9);
				return (-1);
			}
			dest->facility = facility = i;
		} else if (strncmp(param, "severity=", 9) == 0) {
			if (severity++ || loglevel(param + 9) == -1) {
				perr(p, severity > 1 ? "duplicate syslog "
				    "\"severity\"" : "unknown syslog severity "
				    "\"%s\"", param + 9);
				return (-1);
			}
		} else if (strncmp(param, "tag=", 4) == 0) {
			if (tag++) {
				perr(p, "duplicate syslog \"tag\"");
				return (-1);
			}
			/* RFC 3164: at most 32 alphanumeric characters */
			if (strlen(param + 4) >= sizeof(dest->tag)) {
				perr(p, "syslog tag length exceeds 32");
				return (-1);
			}
			if (strspn(param + 4, LETTERS "0123456789_") !=
			    strlen(param + 4)) {
				perr(p, "syslog \"tag\" only allows "
				    "alphanumeric characters and underscore");
				return (-1);
			}
			strlcpy(dest->tag, param + 4, sizeof(dest->tag));
		} else if (strcmp(param, "nohostname") == 0)
			dest->nohostname = 1;
		else {
			perr(p, "unknown syslog parameter \"%s\"", param);
			return (-1);
		}
	}
	if (dest->syslog_server[0] == '\0') {
		perr(p, "no syslog server specified");
		return (-1);
	}
	return (0);
}

/*
 * error_log FILE|stderr|syslog:... [LEVEL], at every level as nginx:
 * the top level's is the daemon's, a server's (or mail's, inherited)
 * gets the lines of its sessions.  Given twice, the last one is used.
 */
static int
set_error_log(struct parser *p, const struct directive *d, void *base,
    int argc, char **argv)
{
	struct log_dest	*dest, tmp;
	char		 v[TOKEN_MAX];

	dest = base == p->conf ? &p->conf->error_log :
	    &((struct server_conf *)base)->error_log;
	log_dest_init(&tmp, LOG_ERR);
	if (argc == 3 && (tmp.level = loglevel(argv[2])) == -1)
		return (badvalue(p, argv, argv[2]));
	if (strncmp(argv[1], "syslog:", 7) == 0) {
		strlcpy(v, argv[1] + 7, sizeof(v));
		if (syslog_params(p, v, &tmp) == -1)
			return (-1);
	} else if (strncmp(argv[1], "memory:", 7) == 0) {
		perr(p, "\"error_log memory:\" is for nginx's debugging "
		    "builds only");
		return (-1);
	} else if (argv[1][0] == '\0' || strlcpy(tmp.file, argv[1],
	    sizeof(tmp.file)) >= sizeof(tmp.file))
		return (badvalue(p, argv, argv[1]));
	*dest = tmp;
	return (0);
}

/* relative to the including file; a pattern may match nothing */
static int
set_include(struct parser *p, const struct directive *d, void *base,
    int argc, char **argv)
{
	char	 path[PATH_MAX], dir[PATH_MAX];
	glob_t	 g;
	size_t	 i;
	int	 rv = 0, ctx = p->ctx;

	if (p->depth >= INCLUDE_DEPTH) {
		perr(p, "too deep include of \"%s\"", argv[1]);
		return (-1);
	}
	if (argv[1][0] == '/')
		strlcpy(path, argv[1], sizeof(path));
	else {
		strlcpy(dir, p->f->name, sizeof(dir));
		snprintf(path, sizeof(path), "%s/%s", dirname(dir), argv[1]);
	}
	p->depth++;
	if (strpbrk(path, "*?[") == NULL)
		rv = parse_file(p, path, ctx);
	else {
		if (glob(path, 0, NULL, &g) == 0) {
			for (i = 0; i < g.gl_pathc && rv == 0; i++)
				rv = parse_file(p, g.gl_pathv[i], ctx);
		}
		globfree(&g);
	}
	p->depth--;
	return (rv);
}

static int
set_server(struct parser *p, const struct directive *d, void *base,
    int argc, char **argv)
{
	struct psrv	*ps;
	int		 rv;

	if ((ps = calloc(1, sizeof(*ps))) == NULL)
		fatal(__func__);
	ps->srv = config_server_new(p->conf);
	ps->file = p->f->name;
	ps->line = p->line;
	TAILQ_INSERT_TAIL(&p->psrvs, ps, entry);
	p->cur = ps;
	p->holding = 1;
	rv = parse_block(p, C_SERVER, 1);
	p->cur = NULL;
	if (rv == 0 && (ps->proto == PROTO_POP3 || ps->proto == PROTO_SMTP)) {
		/* nginx serves it; we are not the one to */
		p->held[0] = '\0';
		p->holding = 0;
		log_notice("%s:%d: %s server skipped: imaprelayd proxies IMAP "
		    "only", ps->file, ps->line, ps->proto == PROTO_POP3 ?
		    "pop3" : "smtp");
		TAILQ_REMOVE(&p->psrvs, ps, entry);
		config_server_drop(p->conf, ps->srv);
		free(ps);
		p->nskipped++;
		return (0);
	}
	rv = rv == -1 || p->held[0] != '\0' ? -1 : 0;
	unhold(p);
	return (rv);
}

/* limit_auth_fail number window [delay], or off */
static int
set_limit_auth_fail(struct parser *p, const struct directive *d,
    void *base, int argc, char **argv)
{
	struct server_conf	*srv = base;
	long long		 n;
	unsigned int		 window, delay = 2000;

	if (argc == 2 && strcmp(argv[1], "off") == 0) {
		srv->limit_auth_fail = 0;
		return (0);
	}
	if (argc == 2) {
		perr(p, "\"%s\" directive needs a number and a window, "
		    "or off", argv[0]);
		return (-1);
	}
	if (parse_number(p, argv, 1, 1000000, &n) == -1)
		return (-1);
	if (parse_time(argv[2], &window) == -1 || window < 1000)
		return (badvalue(p, argv, argv[2]));
	/* default 2s, as Dovecot's auth_failure_delay */
	if (argc == 4 && (parse_time(argv[3], &delay) == -1 ||
	    delay > 60000))
		return (badvalue(p, argv, argv[3]));
	srv->limit_auth_fail = n;
	srv->limit_auth_fail_window_ms = window;
	srv->limit_auth_fail_delay_ms = delay;
	return (0);
}

/*
 * limit_conn_rate rate [burst], or off: new sessions per second from
 * one address, with a burst (default five seconds' worth) taken at
 * once.
 */
static int
set_limit_conn_rate(struct parser *p, const struct directive *d,
    void *base, int argc, char **argv)
{
	struct server_conf	*srv = base;
	const char		*errstr;
	long long		 rate, burst;

	if (argc == 2 && strcmp(argv[1], "off") == 0) {
		srv->limit_conn_rate = 0;
		return (0);
	}
	if (parse_number(p, argv, 1, 1000000, &rate) == -1)
		return (-1);
	burst = rate * 5 > 1000000 ? 1000000 : rate * 5;
	if (argc == 3) {
		burst = strtonum(argv[2], 1, 1000000, &errstr);
		if (errstr != NULL)
			return (badvalue(p, argv, argv[2]));
	}
	srv->limit_conn_rate = rate;
	srv->limit_conn_burst = burst;
	return (0);
}

/*
 * set_real_ip_from address | CIDR | unix: -- one more network whose
 * PROXY headers are believed.  As nginx, host bits set in a CIDR are
 * ignored with a warning.
 */
static int
set_realip(struct parser *p, const struct directive *d, void *base,
    int argc, char **argv)
{
	struct server_conf	*srv = base;
	struct realip_net	 net;
	char			 addr[INET6_ADDRSTRLEN], *slash;
	const char		*errstr;
	unsigned int		 i, bits;

	memset(&net, 0, sizeof(net));
	if (strcmp(argv[1], "unix:") == 0)
		net.family = AF_UNIX;
	else {
		if (strlcpy(addr, argv[1], sizeof(addr)) >= sizeof(addr))
			return (badvalue(p, argv, argv[1]));
		if ((slash = strchr(addr, '/')) != NULL)
			*slash++ = '\0';
		if (inet_pton(AF_INET, addr, net.addr) == 1)
			net.family = AF_INET;
		else if (inet_pton(AF_INET6, addr, net.addr) == 1)
			net.family = AF_INET6;
		else {
			perr(p, "invalid value \"%s\" in \"%s\": an address "
			    "or CIDR is expected", argv[1], argv[0]);
			return (-1);
		}
		bits = net.family == AF_INET ? 32 : 128;
		net.prefix = bits;
		if (slash != NULL) {
			net.prefix = strtonum(slash, 0, bits, &errstr);
			if (errstr != NULL)
				return (badvalue(p, argv, argv[1]));
		}
		for (i = net.prefix; i < bits; i++)
			if (net.addr[i / 8] & (0x80 >> (i % 8))) {
				pnotice(p, "low address bits of \"%s\" are "
				    "meaningless", argv[1]);
				break;
			}
		for (i = net.prefix; i < bits; i++)
			net.addr[i / 8] &= ~(0x80 >> (i % 8));
	}
	if (srv->nrealip >= REALIP_MAX) {
		perr(p, "too many \"%s\" (at most %d at one level)", argv[0],
		    REALIP_MAX);
		return (-1);
	}
	srv->realip[srv->nrealip++] = net;
	return (0);
}

/* "host:port" or "[v6]:port"; NULL or the reason it is not */
static const char *
split_hostport(const char *s, char *host, size_t hsize, char *port,
    size_t psize)
{
	const char	*colon, *end;
	size_t		 hlen;

	if (s[0] == '[') {
		if ((end = strchr(s, ']')) == NULL)
			return ("missing \"]\"");
		if (end[1] != ':')
			return ("no port");
		colon = end + 1;
		s++;
		hlen = end - s;
	} else {
		if ((colon = strrchr(s, ':')) == NULL)
			return ("no port");
		if (strchr(s, ':') != colon)
			return ("IPv6 address without []");
		hlen = colon - s;
	}
	if (hlen == 0 || hlen >= hsize)
		return ("invalid host");
	memcpy(host, s, hlen);
	host[hlen] = '\0';
	if (strlcpy(port, colon + 1, psize) >= psize)
		return ("invalid port");
	if (port[0] == '\0' || strspn(port, "0123456789") != strlen(port) ||
	    strtol(port, NULL, 10) < 1 || strtol(port, NULL, 10) > 65535)
		return ("invalid port");
	return (NULL);
}

static int
resolve(struct parser *p, const char *what, const char *host,
    const char *port, int passive, struct addrinfo **res)
{
	struct addrinfo	 hints;
	int		 error;

	memset(&hints, 0, sizeof(hints));
	hints.ai_family = AF_UNSPEC;
	hints.ai_socktype = SOCK_STREAM;
	hints.ai_flags = AI_NUMERICSERV | (passive ? AI_PASSIVE : 0);
	if (host == NULL)
		hints.ai_family = AF_INET;	/* "*:143", "143" */
	if ((error = getaddrinfo(host, port, &hints, res)) != 0) {
		perr(p, "host \"%s\" of \"%s\" not found: %s",
		    host ? host : "*", what, gai_strerror(error));
		return (-1);
	}
	return (0);
}

/*
 * Every address of a name, in getaddrinfo's order, once each: a
 * service that listens on one family only (localhost is ::1 first on
 * most systems) is reached on the next.
 */
static void
keep_addrs(struct addrinfo *res, struct host_addrs *ha)
{
	struct addrinfo	*ai;
	int		 i;

	memset(ha, 0, sizeof(*ha));
	for (ai = res; ai != NULL && ha->n < HOST_ADDRS_MAX;
	    ai = ai->ai_next) {
		if (ai->ai_addrlen > sizeof(ha->ss[0]))
			continue;
		for (i = 0; i < ha->n; i++)
			if (ha->len[i] == ai->ai_addrlen &&
			    memcmp(&ha->ss[i], ai->ai_addr,
			    ai->ai_addrlen) == 0)
				break;
		if (i < ha->n)
			continue;
		memcpy(&ha->ss[ha->n], ai->ai_addr, ai->ai_addrlen);
		ha->len[ha->n++] = ai->ai_addrlen;
	}
}

static int
set_proxy_pass(struct parser *p, const struct directive *d, void *base,
    int argc, char **argv)
{
	struct server_conf	*srv = base;
	struct addrinfo		*res;
	char			 host[NAME_MAX_LEN], port[8];
	const char		*why;

	if ((why = split_hostport(argv[1], host, sizeof(host), port,
	    sizeof(port))) != NULL) {
		perr(p, "invalid value \"%s\" in \"%s\" directive: %s",
		    argv[1], argv[0], why);
		return (-1);
	}
	if (resolve(p, argv[0], host, port, 0, &res) == -1)
		return (-1);
	keep_addrs(res, &srv->proxy_pass);
	freeaddrinfo(res);
	if (strlcpy(srv->proxy_pass_name, argv[1],
	    sizeof(srv->proxy_pass_name)) >= sizeof(srv->proxy_pass_name))
		return (badvalue(p, argv, argv[1]));
	return (0);
}

/*
 * nginx resolves the auth service once, at load time; so do we.  Every
 * address is pinned (CURLOPT_RESOLVE): libcurl tries them in turn.
 */
static int
set_auth_http(struct parser *p, const struct directive *d, void *base,
    int argc, char **argv)
{
	struct server_conf	*srv = base;
	struct auth_url		*au = &srv->auth_http;
	struct host_addrs	 ha;
	struct addrinfo		*res;
	char			 err[256], port[8], addr[INET6_ADDRSTRLEN];
	int			 error, i;

	memset(au, 0, sizeof(*au));
	err[0] = '\0';
	if (authhttp_parse_url(argv[1], au, err, sizeof(err)) == -1) {
		perr(p, "invalid value \"%s\" in \"%s\" directive: %s",
		    argv[1], argv[0], err);
		return (-1);
	}
	if (strlcpy(au->url, argv[1], sizeof(au->url)) >= sizeof(au->url))
		return (badvalue(p, argv, argv[1]));
	if (au->unix_path[0] != '\0')
		return (0);
	snprintf(port, sizeof(port), "%d", au->port);
	if (resolve(p, argv[0], au->host, port, 0, &res) == -1)
		return (-1);
	keep_addrs(res, &ha);
	freeaddrinfo(res);
	for (i = 0; i < ha.n; i++) {
		if ((error = getnameinfo((struct sockaddr *)&ha.ss[i],
		    ha.len[i], addr, sizeof(addr), NULL, 0,
		    NI_NUMERICHOST)) != 0) {
			perr(p, "\"%s\": %s", argv[0], gai_strerror(error));
			return (-1);
		}
		/* fits: HOST_ADDRS_MAX of them, brackets and commas */
		snprintf(au->addrs + strlen(au->addrs),
		    sizeof(au->addrs) - strlen(au->addrs), "%s%s%s%s",
		    i > 0 ? "," : "", strchr(addr, ':') ? "[" : "", addr,
		    strchr(addr, ':') ? "]" : "");
	}
	return (0);
}

static int
set_auth_header(struct parser *p, const struct directive *d, void *base,
    int argc, char **argv)
{
	struct server_conf	*srv = base;
	struct auth_header	*h;
	const char		*s;

	/* a header name is a token; the value must not break the request */
	if (argv[1][0] == '\0' ||
	    strspn(argv[1], LETTERS "0123456789-_") != strlen(argv[1]) ||
	    strlen(argv[1]) >= HEADER_NAME_LEN)
		return (badvalue(p, argv, argv[1]));
	for (s = argv[2]; *s != '\0'; s++)
		if ((unsigned char)*s < ' ' || *s == 0x7f)
			return (badvalue(p, argv, argv[2]));
	if (strlen(argv[2]) >= HEADER_VALUE_LEN)
		return (badvalue(p, argv, argv[2]));
	if ((h = calloc(1, sizeof(*h))) == NULL)
		fatal(__func__);
	h->server_id = srv->id;
	strlcpy(h->name, argv[1], sizeof(h->name));
	strlcpy(h->value, argv[2], sizeof(h->value));
	TAILQ_INSERT_TAIL(&srv->auth_headers, h, entry);
	return (0);
}

/* headers: all of mail's, only if the server has none */
static void
merge_headers(const struct directive *d, struct psrv *mail, struct psrv *ps)
{
	struct server_conf	*m = mail->srv, *s = ps->srv;
	struct auth_header	*h, *nh;

	if (!TAILQ_EMPTY(&s->auth_headers))
		return;
	TAILQ_FOREACH(h, &m->auth_headers, entry) {
		if ((nh = malloc(sizeof(*nh))) == NULL)
			fatal(__func__);
		*nh = *h;
		nh->server_id = s->id;
		TAILQ_INSERT_TAIL(&s->auth_headers, nh, entry);
	}
}

/* a pop3 or smtp server is skipped once read (set_server) */
static int
set_protocol(struct parser *p, const struct directive *d, void *base,
    int argc, char **argv)
{
	const struct keyword	*k;

	if ((k = keyword(protos, argv[1])) == NULL) {
		perr(p, "unknown protocol \"%s\"", argv[1]);
		return (-1);
	}
	p->cur->proto = k->value;
	return (0);
}

/* nginx takes the protocol from a well-known port when none is given */
static void
listen_protocol(struct parser *p, const struct sockaddr *sa)
{
	static const struct {
		in_port_t	 port;
		int		 proto;
	} ports[] = {
		{ 143, PROTO_IMAP }, { 993, PROTO_IMAP },
		{ 110, PROTO_POP3 }, { 995, PROTO_POP3 },
		{ 25, PROTO_SMTP }, { 465, PROTO_SMTP }, { 587, PROTO_SMTP },
	};
	in_port_t	 port;
	size_t		 i;

	if (p->cur->proto != 0)
		return;
	port = ntohs(sa->sa_family == AF_INET6 ?
	    ((const struct sockaddr_in6 *)sa)->sin6_port :
	    ((const struct sockaddr_in *)sa)->sin_port);
	for (i = 0; i < NITEMS(ports); i++)
		if (ports[i].port == port)
			p->cur->proto = ports[i].proto;
}

/* pop3_*, smtp_*, xclient: accepted as nginx does, one notice */
static int
set_other_protocol(struct parser *p, const struct directive *d,
    void *base, int argc, char **argv)
{
	if (!p->noted_proto)
		pnotice(p, "\"%s\" and the other pop3/smtp directives have "
		    "no effect: imaprelayd proxies IMAP only", argv[0]);
	p->noted_proto = 1;
	return (0);
}

/* http {} and stream {}: nginx may serve them from this very file */
static int
skip_block(struct parser *p, const struct directive *d, void *base,
    int argc, char **argv)
{
	pnotice(p, "\"%s\" block skipped: imaprelayd reads the mail block "
	    "only", argv[0]);
	return (skip_body(p));
}

/* deprecated, valid up to nginx 1.25: every listen of the server is TLS */
static int
set_ssl(struct parser *p, const struct directive *d, void *base,
    int argc, char **argv)
{
	struct server_conf	*srv = base;

	if (set_slot(p, d, base, argc, argv) == -1)
		return (-1);
	if (srv->listen_ssl && row_isset(level(p)->set, d + 1) &&
	    srv->starttls != STARTTLS_OFF) {
		perr(p, "\"starttls\" directive conflicts with \"ssl on\"");
		return (-1);
	}
	log_warning("%s:%d: the \"ssl\" directive is deprecated, use the "
	    "\"listen ... ssl\" directive instead", p->f->name, p->line);
	return (0);
}

static int
set_starttls(struct parser *p, const struct directive *d, void *base,
    int argc, char **argv)
{
	struct server_conf	*srv = base;

	if (set_slot(p, d, base, argc, argv) == -1)
		return (-1);
	if (srv->listen_ssl && row_isset(level(p)->set, d - 1) &&
	    srv->starttls != STARTTLS_OFF) {
		perr(p, "\"ssl\" directive conflicts with \"starttls\"");
		return (-1);
	}
	return (0);
}

/* ssl_ciphers, proxy_ssl_ciphers: libtls says now whether it takes them */
static int
set_ciphers(struct parser *p, const struct directive *d, void *base,
    int argc, char **argv)
{
	struct tls_config	*tc;
	int			 rv;

	if ((tc = tls_config_new()) == NULL)
		fatal("tls_config_new");
	if ((rv = tls_config_set_ciphers(tc, argv[1])) == -1)
		perr(p, "invalid value \"%s\" in \"%s\" directive: %s",
		    argv[1], argv[0], tls_config_error(tc));
	tls_config_free(tc);
	if (rv == -1)
		return (-1);
	if (strlcpy((char *)base + d->off, argv[1], d->size) >= d->size)
		return (badvalue(p, argv, argv[1]));
	return (0);
}

static int
set_curve(struct parser *p, const struct directive *d, void *base,
    int argc, char **argv)
{
	struct tls_config	*tc;
	const char		*v = argv[1];
	int			 rv;

	if (strcmp(v, "auto") == 0)
		v = "default";
	if ((tc = tls_config_new()) == NULL)
		fatal("tls_config_new");
	if ((rv = tls_config_set_ecdhecurves(tc, v)) == -1)
		perr(p, "invalid value \"%s\" in \"%s\" directive: %s",
		    argv[1], argv[0], tls_config_error(tc));
	tls_config_free(tc);
	if (rv == -1)
		return (-1);
	if (strlcpy((char *)base + d->off, v, d->size) >= d->size)
		return (badvalue(p, argv, argv[1]));
	return (0);
}

/*
 * libtls picks its DH parameters by keyword only: a dhparam file turns
 * on "auto" (sized to the key), which is what a file of good
 * parameters is for.  The file must still be readable.
 */
static int
set_dhparam(struct parser *p, const struct directive *d, void *base,
    int argc, char **argv)
{
	char	 path[PATH_MAX];

	if (ssl_path(p, argv[1], path, sizeof(path)) == -1)
		return (-1);
	if (access(path, R_OK) == -1) {
		perr(p, "cannot read \"%s\": %s", path, strerror(errno));
		return (-1);
	}
	strlcpy((char *)base + d->off, "auto", d->size);
	return (0);
}

/* seconds, within the bounds libtls sets on a session lifetime */
static int
set_session_timeout(struct parser *p, const struct directive *d,
    void *base, int argc, char **argv)
{
	struct server_conf	*srv = base;
	unsigned int		 ms;

	if (parse_time(argv[1], &ms) == -1)
		return (badvalue(p, argv, argv[1]));
	ms /= 1000;
	srv->tls_session_timeout = ms < 4 ? 4 : ms > 86400 ? 86400 : ms;
	return (0);
}

/* proxy_ssl_name: a host name or an address, sent as SNI */
static int
set_host_name(struct parser *p, const struct directive *d, void *base,
    int argc, char **argv)
{
	size_t	 i;

	for (i = 0; argv[1][i] != '\0'; i++)
		if (!isalnum((unsigned char)argv[1][i]) &&
		    strchr("-._:", argv[1][i]) == NULL)
			return (badvalue(p, argv, argv[1]));
	if (i == 0 || strlcpy((char *)base + d->off, argv[1], d->size) >=
	    d->size)
		return (badvalue(p, argv, argv[1]));
	return (0);
}


/*
 * listen.
 */

/* so_keepalive=on|off|[idle]:[intvl]:[cnt] */
static int
listen_keepalive(const char *v, struct listen_conf *lc)
{
	char		 buf[64], *s, *part[3];
	unsigned int	 ms;
	const char	*errstr;
	int		 i;

	if (strcmp(v, "on") == 0 || strcmp(v, "off") == 0) {
		lc->keepalive = (strcmp(v, "on") == 0);
		return (0);
	}
	if (strlcpy(buf, v, sizeof(buf)) >= sizeof(buf))
		return (-1);
	s = buf;
	for (i = 0; i < 3; i++)
		if ((part[i] = strsep(&s, ":")) == NULL)
			return (-1);
	if (s != NULL)
		return (-1);
	if (part[0][0] != '\0') {
		if (parse_time(part[0], &ms) == -1 || ms < 1000)
			return (-1);
		lc->keepidle = ms / 1000;
	}
	if (part[1][0] != '\0') {
		if (parse_time(part[1], &ms) == -1 || ms < 1000)
			return (-1);
		lc->keepintvl = ms / 1000;
	}
	if (part[2][0] != '\0') {
		lc->keepcnt = strtonum(part[2], 1, 1000, &errstr);
		if (errstr != NULL)
			return (-1);
	}
	if (lc->keepidle == 0 && lc->keepintvl == 0 && lc->keepcnt == 0)
		return (-1);
	lc->keepalive = 1;
	return (0);
}

/* the parameters after the address, into a template listen_conf */
static int
listen_params(struct parser *p, int argc, char **argv,
    struct listen_conf *lc)
{
	const char	*errstr;
	size_t		 size;
	int		 i;

	for (i = 2; i < argc; i++) {
		if (strcmp(argv[i], "ssl") == 0)
			lc->ssl = 1;
		else if (strcmp(argv[i], "proxy_protocol") == 0)
			lc->proxy_protocol = 1;
		else if (strcmp(argv[i], "bind") == 0)
			lc->bind = 1;
		else if (strncmp(argv[i], "backlog=", 8) == 0) {
			lc->backlog = strtonum(argv[i] + 8, 1, 65535, &errstr);
			if (errstr != NULL)
				goto bad;
		} else if (strncmp(argv[i], "rcvbuf=", 7) == 0) {
			if (parse_size(argv[i] + 7, &size) == -1 || size == 0)
				goto bad;
			lc->rcvbuf = size;
		} else if (strncmp(argv[i], "sndbuf=", 7) == 0) {
			if (parse_size(argv[i] + 7, &size) == -1 || size == 0)
				goto bad;
			lc->sndbuf = size;
		} else if (strncmp(argv[i], "so_keepalive=", 13) == 0) {
			if (listen_keepalive(argv[i] + 13, lc) == -1)
				goto bad;
			lc->bind = 1;
		} else if (strncmp(argv[i], "ipv6only=", 9) == 0) {
			if (strcmp(argv[i] + 9, "on") == 0)
				lc->ipv6only = 1;
			else if (strcmp(argv[i] + 9, "off") == 0)
				lc->ipv6only = 0;
			else
				goto bad;
			lc->bind = 1;
		} else if (strcmp(argv[i], "multipath") == 0) {
			perr(p, "\"listen ... multipath\" is not supported");
			return (-1);
		} else {
			perr(p, "invalid parameter \"%s\" in \"listen\"",
			    argv[i]);
			return (-1);
		}
	}
	return (0);
 bad:
	perr(p, "invalid value \"%s\" in \"listen\"", argv[i]);
	return (-1);
}

/* "ADDR:PORT", "[V6]:PORT", "*:PORT", "PORT" */
static int
listen_resolve(struct parser *p, const char *spec, struct addrinfo **res)
{
	char		 host[NAME_MAX_LEN], port[8];
	const char	*why;

	if (strncmp(spec, "unix:", 5) == 0) {
		perr(p, "\"listen unix:\" is not supported");
		return (-1);
	}
	if (spec[0] != '\0' && strspn(spec, "0123456789") == strlen(spec)) {
		if (strlcpy(port, spec, sizeof(port)) >= sizeof(port) ||
		    strtol(port, NULL, 10) < 1 ||
		    strtol(port, NULL, 10) > 65535)
			goto bad;
		return (resolve(p, "listen", NULL, port, 1, res));
	}
	if ((why = split_hostport(spec, host, sizeof(host), port,
	    sizeof(port))) != NULL) {
		perr(p, "invalid value \"%s\" in \"listen\": %s", spec, why);
		return (-1);
	}
	return (resolve(p, "listen", strcmp(host, "*") == 0 ? NULL : host,
	    port, 1, res));
 bad:
	perr(p, "invalid value \"%s\" in \"listen\": invalid port", spec);
	return (-1);
}

static int
set_listen(struct parser *p, const struct directive *d, void *base,
    int argc, char **argv)
{
	struct listen_conf	 tmpl, *lc, *l;
	struct addrinfo		*res, *ai;
	char			 name[ADDR_STR_LEN];

	memset(&tmpl, 0, sizeof(tmpl));
	tmpl.backlog = tmpl.rcvbuf = tmpl.sndbuf = -1;
	tmpl.keepalive = tmpl.ipv6only = -1;
	tmpl.fd = -1;
	if (listen_params(p, argc, argv, &tmpl) == -1 ||
	    listen_resolve(p, argv[1], &res) == -1)
		return (-1);
	listen_protocol(p, res->ai_addr);
	/* a host name listens on every address it has, as nginx does */
	for (ai = res; ai != NULL; ai = ai->ai_next) {
		if (tmpl.ipv6only != -1 && ai->ai_family != AF_INET6) {
			perr(p, "ipv6only is not supported on \"%s\"",
			    argv[1]);
			freeaddrinfo(res);
			return (-1);
		}
		sockaddr_str(ai->ai_addr, name, sizeof(name));
		TAILQ_FOREACH(l, &p->conf->listens, entry)
			if (l->server_id == p->cur->srv->id &&
			    strcmp(l->name, name) == 0 && l->line == p->line &&
			    l->file == p->f->name)
				break;
		if (l != NULL)
			continue;
		if ((lc = malloc(sizeof(*lc))) == NULL)
			fatal(__func__);
		*lc = tmpl;
		memcpy(&lc->ss, ai->ai_addr, ai->ai_addrlen);
		lc->sslen = ai->ai_addrlen;
		strlcpy(lc->name, name, sizeof(lc->name));
		lc->server_id = p->cur->srv->id;
		lc->file = p->f->name;
		lc->line = p->line;
		TAILQ_INSERT_TAIL(&p->conf->listens, lc, entry);
		p->cur->nlisten++;
	}
	freeaddrinfo(res);
	return (0);
}

/*
 * Refusals.
 */

/* the other ssl_* directives */
static int
deny_tls(struct parser *p, const struct directive *d, void *base,
    int argc, char **argv)
{
	perr(p, "TLS \"%s\" is not supported yet", argv[0]);
	return (-1);
}

/*
 * After the file: inherit, check, read the files.
 */

/*
 * nginx's merge, over the whole table: what a server did not set comes
 * from mail{}.  The two rows of a pair (a certificate and its key) come
 * together, and only when the server set neither.
 */
static void
merge(struct psrv *mail, struct psrv *ps)
{
	const struct directive	*d, *other;
	char			*m = (char *)mail->srv, *s = (char *)ps->srv;
	size_t			 i;

	for (i = 0; i < NDIRECTIVES; i++) {
		d = &directives[i];
		if (d->flags & (D_GLOBAL | D_REFUSE))
			continue;
		if (d->merge != NULL) {
			d->merge(d, mail, ps);
			continue;
		}
		if (d->size == 0 || row_isset(ps->set, d))
			continue;
		other = d->flags & D_PAIR ? d + 1 :
		    d->flags & D_PAIRED ? d - 1 : NULL;
		if (other != NULL ? row_isset(ps->set, other) :
		    !row_isset(mail->set, d))
			continue;
		memcpy(s + d->off, m + d->off, d->size);
		if (d->given != 0)
			memcpy(s + d->given, m + d->given, sizeof(int));
	}
}

/* the file of a certificate or key the workers (or auth) get */
static const char *
pem_path(struct server_conf *srv, int pair, int key)
{
	switch (pair) {
	case ATLS_PEM_CA:
		return (srv->auth_tls_ca_file);
	case ATLS_PEM_CLIENT:
		return (key ? srv->auth_tls_key_file : srv->auth_tls_cert_file);
	case PTLS_PEM_CA:
		return (srv->proxy_ssl_ca_file);
	case PTLS_PEM_CLIENT:
		return (key ? srv->proxy_ssl_key_file :
		    srv->proxy_ssl_cert_file);
	case CCERT_PAIR_CA:
		return (srv->ccert_ca_file);
	case CCERT_PAIR_TRUSTED:
		return (srv->ccert_trusted_file);
	case CCERT_PAIR_CRL:
		return (srv->ccert_crl_file);
	default:
		if (pair >= TICKET_PEM)
			return (srv->tls_ticket_file[pair - TICKET_PEM]);
		return (key ? srv->tls_key_file[pair] :
		    srv->tls_cert_file[pair]);
	}
}

/* one certificate or key file into memory, for the imap workers */
static int
read_pem(struct parser *p, struct psrv *ps, int pair, int key)
{
	const char	*path = pem_path(ps->srv, pair, key);
	struct tls_pem	*pem;
	struct stat	 st;
	ssize_t		 n;
	int		 fd;

	if ((fd = open(path, O_RDONLY | O_CLOEXEC)) == -1 ||
	    fstat(fd, &st) == -1) {
		log_warnx("%s:%d: cannot read \"%s\": %s", ps->file,
		    ps->line, path, strerror(errno));
		if (fd != -1)
			close(fd);
		return (-1);
	}
	if (!S_ISREG(st.st_mode) || st.st_size == 0 ||
	    st.st_size > TLS_PEM_MAX) {
		log_warnx("%s:%d: \"%s\": not a file of a sane size",
		    ps->file, ps->line, path);
		close(fd);
		return (-1);
	}
	if ((pem = calloc(1, sizeof(*pem))) == NULL ||
	    (pem->data = calloc(1, st.st_size + 1)) == NULL)
		fatal(__func__);
	pem->server_id = ps->srv->id;
	pem->pair = pair;
	pem->key = key;
	pem->len = st.st_size;
	/* in the list at once: config_free wipes it on any error */
	TAILQ_INSERT_TAIL(&p->conf->tls_pems, pem, entry);
	while (pem->got < pem->len) {
		if ((n = read(fd, pem->data + pem->got,
		    pem->len - pem->got)) <= 0) {
			log_warnx("%s:%d: cannot read \"%s\": %s", ps->file,
			    ps->line, path, n == 0 ? "file shrank" :
			    strerror(errno));
			close(fd);
			return (-1);
		}
		pem->got += n;
	}
	close(fd);
	return (0);
}

/* how many paths an S_PATHS field holds */
static int
npaths(const char *field, size_t size)
{
	size_t	 n;

	for (n = 0; n < size / TLS_PATH_MAX; n++)
		if (field[n * TLS_PATH_MAX] == '\0')
			break;
	return (n);
}

/*
 * A server that speaks TLS needs its pairs, read now so that a missing
 * file stops the start; one that does not never has its keys read.
 */
static int
tls_finish(struct parser *p, struct psrv *ps)
{
	struct server_conf	*srv = ps->srv;
	struct listen_conf	*lc, *ssl = NULL;
	int			 i, ncert, nkey;

	TAILQ_FOREACH(lc, &p->conf->listens, entry)
		if (lc->server_id == srv->id && lc->ssl && ssl == NULL)
			ssl = lc;
	if (ssl == NULL && srv->starttls == STARTTLS_OFF)
		return (0);
	if (ccert_check(ps) == -1)
		return (-1);
	ncert = npaths(srv->tls_cert_file[0], sizeof(srv->tls_cert_file));
	nkey = npaths(srv->tls_key_file[0], sizeof(srv->tls_key_file));
	if (ncert == 0) {
		if (ssl != NULL)
			log_warnx("%s:%d: no \"ssl_certificate\" is defined "
			    "for the \"listen ... ssl\" directive", ssl->file,
			    ssl->line);
		else
			log_warnx("%s:%d: no \"ssl_certificate\" is defined "
			    "for \"starttls\"", ps->file, ps->line);
		return (-1);
	}
	if (nkey < ncert) {
		log_warnx("%s:%d: no \"ssl_certificate_key\" is defined for "
		    "certificate \"%s\"", ps->file, ps->line,
		    srv->tls_cert_file[nkey]);
		return (-1);
	}
	if (nkey > ncert) {
		log_warnx("%s:%d: no \"ssl_certificate\" is defined for key "
		    "\"%s\"", ps->file, ps->line, srv->tls_key_file[ncert]);
		return (-1);
	}
	srv->tls_npairs = ncert;
	for (i = 0; i < srv->tls_npairs; i++)
		if (read_pem(p, ps, i, 0) == -1 ||
		    read_pem(p, ps, i, 1) == -1 ||
		    key_decrypt(p, ps, i) == -1 || pair_check(p, ps, i) == -1)
			return (-1);
	if (ticket_files(p, ps) == -1)
		return (-1);
	return (ccert_finish(p, ps));
}

/* PEM_read_bio_PrivateKey's password: one line of ssl_password_file */
struct key_pass {
	const char	*pw;
	size_t		 len;
};

static int
pem_pass(char *buf, int size, int rwflag, void *u)
{
	struct key_pass	*kp = u;

	if (kp == NULL || kp->len > (size_t)size)
		return (0);
	memcpy(buf, kp->pw, kp->len);
	return ((int)kp->len);
}

/*
 * The key opened with one password; on success the PEM bytes become
 * the key unencrypted (PKCS#8), the encrypted bytes wiped.  BIO_s_secmem
 * clears its buffer when freed, so no decrypted copy is left behind.
 */
static int
key_try(struct tls_pem *pem, const char *pw, size_t len)
{
	struct key_pass	 kp = { pw, len };
	BIO		*in, *out = NULL;
	EVP_PKEY	*k;
	BUF_MEM		*bm;
	uint8_t		*data;
	int		 rv = -1;

	if ((in = BIO_new_mem_buf(pem->data, (int)pem->len)) == NULL)
		fatalx("%s: out of memory", __func__);
	k = PEM_read_bio_PrivateKey(in, NULL, pem_pass, pw ? &kp : NULL);
	BIO_free(in);
	ERR_clear_error();
	if (k == NULL)
		return (-1);
	if ((out = BIO_new(BIO_s_secmem())) == NULL)
		fatalx("%s: out of memory", __func__);
	if (PEM_write_bio_PKCS8PrivateKey(out, k, NULL, NULL, 0, NULL,
	    NULL) == 1 && BIO_get_mem_ptr(out, &bm) == 1 && bm->length > 0) {
		if ((data = calloc(1, bm->length + 1)) == NULL)
			fatal(__func__);
		memcpy(data, bm->data, bm->length);
		freezero(pem->data, pem->len + 1);
		pem->data = data;
		pem->len = pem->got = bm->length;
		rv = 0;
	}
	BIO_free(out);
	EVP_PKEY_free(k);
	ERR_clear_error();
	return (rv);
}

/* the whole ssl_password_file, NUL-terminated; NULL (logged) if not */
static char *
read_passwords(struct parser *p, struct psrv *ps, size_t *lenp)
{
	const char	*path = ps->srv->tls_password_file;
	struct stat	 st;
	char		*buf;
	ssize_t		 n;
	size_t		 got = 0;
	int		 fd;

	if ((fd = open(path, O_RDONLY | O_CLOEXEC)) == -1 ||
	    fstat(fd, &st) == -1) {
		log_warnx("%s:%d: cannot read \"%s\": %s", ps->file, ps->line,
		    path, strerror(errno));
		if (fd != -1)
			close(fd);
		return (NULL);
	}
	if (!S_ISREG(st.st_mode) || st.st_size > TLS_PEM_MAX) {
		log_warnx("%s:%d: \"%s\": not a file of a sane size",
		    ps->file, ps->line, path);
		close(fd);
		return (NULL);
	}
	if ((buf = calloc(1, st.st_size + 1)) == NULL)
		fatal(__func__);
	while (got < (size_t)st.st_size) {
		if ((n = read(fd, buf + got, st.st_size - got)) <= 0) {
			log_warnx("%s:%d: cannot read \"%s\": %s", ps->file,
			    ps->line, path, n == 0 ? "file shrank" :
			    strerror(errno));
			freezero(buf, st.st_size + 1);
			close(fd);
			return (NULL);
		}
		got += n;
	}
	close(fd);
	*lenp = st.st_size + 1;
	return (buf);
}

/*
 * ssl_password_file, as nginx: each line of the file is a password,
 * tried in turn; a key that needs none is taken as it is.  The parent
 * decrypts, the key goes on decrypted and in memory only, and the
 * passwords are wiped.  No password that fits stops the start.
 */
static int
key_decrypt(struct parser *p, struct psrv *ps, int pair)
{
	struct server_conf	*srv = ps->srv;
	struct tls_pem		*kp;
	char			*buf, *line, *next;
	size_t			 size, len;
	int			 rv = -1;

	if (srv->tls_password_file[0] == '\0' ||
	    (kp = config_pem(p->conf, srv->id, pair, 1)) == NULL ||
	    kp->len > INT_MAX)
		return (0);
	if (key_try(kp, NULL, 0) == 0)
		return (0);
	if ((buf = read_passwords(p, ps, &size)) == NULL)
		return (-1);
	for (line = buf; rv == -1 && line != NULL && *line != '\0';
	    line = next) {
		len = strcspn(line, "\r\n");
		next = line[len] != '\0' ? line + len + 1 : NULL;
		/* CRLF and blank lines are no passwords */
		if (len > 0)
			rv = key_try(kp, line, len);
	}
	freezero(buf, size);
	if (rv == -1)
		log_warnx("%s:%d: cannot load certificate key \"%s\": no "
		    "password in \"%s\" decrypts it", ps->file, ps->line,
		    srv->tls_key_file[pair], srv->tls_password_file);
	return (rv);
}

static int
pem_nopass(char *buf, int size, int rwflag, void *u)
{
	return (0);
}

/* a key that is not the certificate's fails here, not at start */
static int
pair_check(struct parser *p, struct psrv *ps, int pair)
{
	struct server_conf	*srv = ps->srv;
	struct tls_pem		*cp, *kp;
	BIO			*cb = NULL, *kb = NULL;
	X509			*x = NULL;
	EVP_PKEY		*k = NULL;
	int			 rv = -1;

	cp = config_pem(p->conf, srv->id, pair, 0);
	kp = config_pem(p->conf, srv->id, pair, 1);
	if (cp == NULL || kp == NULL)
		return (0);
	if ((cb = BIO_new_mem_buf(cp->data, cp->len)) == NULL ||
	    (kb = BIO_new_mem_buf(kp->data, kp->len)) == NULL)
		fatalx("%s: out of memory", __func__);
	if ((x = PEM_read_bio_X509(cb, NULL, pem_nopass, NULL)) == NULL)
		log_warnx("%s:%d: no certificate in \"%s\"", ps->file,
		    ps->line, srv->tls_cert_file[pair]);
	else if ((k = PEM_read_bio_PrivateKey(kb, NULL, pem_nopass,
	    NULL)) == NULL)
		log_warnx("%s:%d: no private key in \"%s\" (or one with a "
		    "password)", ps->file, ps->line, srv->tls_key_file[pair]);
	else if (X509_check_private_key(x, k) != 1)
		log_warnx("%s:%d: key \"%s\" does not match certificate "
		    "\"%s\"", ps->file, ps->line, srv->tls_key_file[pair],
		    srv->tls_cert_file[pair]);
	else
		rv = 0;
	EVP_PKEY_free(k);
	X509_free(x);
	BIO_free(cb);
	BIO_free(kb);
	ERR_clear_error();
	return (rv);
}

/* the CA lists of ssl_verify_client, read now for the imap workers */
static int
ccert_finish(struct parser *p, struct psrv *ps)
{
	struct server_conf	*srv = ps->srv;

	if (srv->ccert_verify == CCERT_VERIFY_OFF)
		return (0);
	if (srv->ccert_ca_file[0] != '\0' &&
	    read_pem(p, ps, CCERT_PAIR_CA, 0) == -1)
		return (-1);
	if (srv->ccert_trusted_file[0] != '\0' &&
	    read_pem(p, ps, CCERT_PAIR_TRUSTED, 0) == -1)
		return (-1);
	if (srv->ccert_crl_file[0] != '\0' &&
	    (read_pem(p, ps, CCERT_PAIR_CRL, 0) == -1 ||
	    crl_check(p, ps) == -1))
		return (-1);
	return (0);
}

/*
 * ssl_session_ticket_key, as nginx: 48 or 80 bytes of a name, an AES
 * and an HMAC key; the workers get them with the server's keys.
 */
static int
ticket_files(struct parser *p, struct psrv *ps)
{
	struct server_conf	*srv = ps->srv;
	struct tls_pem		*pem;
	int			 i, n;

	n = npaths(srv->tls_ticket_file[0], sizeof(srv->tls_ticket_file));
	for (i = 0; i < n; i++) {
		if (read_pem(p, ps, TICKET_PEM + i, 1) == -1)
			return (-1);
		pem = config_pem(p->conf, srv->id, TICKET_PEM + i, 1);
		if (pem == NULL || (pem->len != 48 && pem->len != 80)) {
			log_warnx("%s:%d: \"%s\" must be 48 or 80 bytes",
			    ps->file, ps->line, srv->tls_ticket_file[i]);
			return (-1);
		}
	}
	return (0);
}

/* ssl_crl: a file with no CRL in it fails here, as nginx's load does */
static int
crl_check(struct parser *p, struct psrv *ps)
{
	struct tls_pem		*pem;
	STACK_OF(X509_INFO)	*infos;
	BIO			*bio;
	int			 i, n = 0;

	if ((pem = config_pem(p->conf, ps->srv->id, CCERT_PAIR_CRL, 0)) ==
	    NULL || pem->len > INT_MAX)
		return (-1);
	if ((bio = BIO_new_mem_buf(pem->data, (int)pem->len)) == NULL)
		fatalx("%s: out of memory", __func__);
	infos = PEM_X509_INFO_read_bio(bio, NULL, NULL, NULL);
	BIO_free(bio);
	ERR_clear_error();
	for (i = 0; infos != NULL && i < sk_X509_INFO_num(infos); i++)
		if (sk_X509_INFO_value(infos, i)->crl != NULL)
			n++;
	sk_X509_INFO_pop_free(infos, X509_INFO_free);
	if (n == 0) {
		log_warnx("%s:%d: no certificate revocation list in \"%s\"",
		    ps->file, ps->line, ps->srv->ccert_crl_file);
		return (-1);
	}
	return (0);
}

/* as nginx: verification needs a CA list, except optional_no_ca */
static int
ccert_check(struct psrv *ps)
{
	struct server_conf	*srv = ps->srv;

	if (srv->ccert_verify != CCERT_VERIFY_OFF &&
	    srv->ccert_verify != CCERT_VERIFY_NO_CA &&
	    srv->ccert_ca_file[0] == '\0' &&
	    srv->ccert_trusted_file[0] == '\0') {
		log_warnx("%s:%d: no ssl_client_certificate or "
		    "ssl_trusted_certificate for ssl_verify_client",
		    ps->file, ps->line);
		return (-1);
	}
	return (0);
}


static int
finish(struct parser *p, const char *file)
{
	struct psrv		*ps;
	struct listen_conf	*lc, *l;

	if (TAILQ_EMPTY(&p->psrvs)) {
		if (p->nskipped > 0)
			log_warnx("%s: no IMAP server is defined, only pop3 "
			    "or smtp ones", file);
		else
			log_warnx("%s: no mail server is defined", file);
		return (-1);
	}
	TAILQ_FOREACH(ps, &p->psrvs, entry) {
		merge(&p->mail, ps);
		if (ps->srv->listen_ssl)
			TAILQ_FOREACH(lc, &p->conf->listens, entry)
				if (lc->server_id == ps->srv->id)
					lc->ssl = 1;
		if (ptls_finish(p, ps) == -1 || atls_finish(p, ps) == -1)
			return (-1);
		if (ps->nlisten == 0) {
			log_warnx("%s:%d: server has no \"listen\" directive",
			    ps->file, ps->line);
			return (-1);
		}
		if (!ps->srv->auth_http_set && !ps->srv->proxy_pass_set) {
			log_warnx("%s:%d: server has neither \"auth_http\" "
			    "nor \"proxy_pass\"", ps->file, ps->line);
			return (-1);
		}
		/* the failures counted are auth_http's refusals */
		if (ps->srv->limit_auth_fail > 0 && !ps->srv->auth_http_set) {
			log_warnx("%s:%d: \"limit_auth_fail\" needs "
			    "\"auth_http\" (\"limit_auth_fail off\" in this "
			    "server)", ps->file, ps->line);
			return (-1);
		}
		if (tls_finish(p, ps) == -1)
			return (-1);
	}
	TAILQ_FOREACH(lc, &p->conf->listens, entry) {
		for (l = TAILQ_FIRST(&p->conf->listens); l != lc;
		    l = TAILQ_NEXT(l, entry))
			if (strcmp(l->name, lc->name) == 0)
				break;
		if (l != lc && sni_shared(p->conf, l, lc) == -1) {
			log_warnx("%s:%d: duplicate \"%s\" address and port "
			    "pair", lc->file, lc->line, lc->name);
			return (-1);
		}
	}
	return (0);
}

static int
atls_finish(struct parser *p, struct psrv *ps)
{
	struct server_conf	*s = ps->srv;
	int			 ca = s->auth_tls_ca_file[0] != '\0';
	int			 cert = s->auth_tls_cert_file[0] != '\0';
	int			 key = s->auth_tls_key_file[0] != '\0';

	if (!ca && !cert && !key)
		return (0);
	if (cert != key) {
		log_warnx("%s:%d: \"auth_http_certificate\" and "
		    "\"auth_http_certificate_key\" go together",
		    ps->file, ps->line);
		return (-1);
	}
	/* a plain http service would silently ignore them */
	if (!s->auth_http_set || !s->auth_http.https) {
		log_warnx("%s:%d: \"auth_http_trusted_certificate\" and "
		    "\"auth_http_certificate\" need an https auth_http",
		    ps->file, ps->line);
		return (-1);
	}
	if (ca && read_pem(p, ps, ATLS_PEM_CA, 0) == -1)
		return (-1);
	if (cert && (read_pem(p, ps, ATLS_PEM_CLIENT, 0) == -1 ||
	    read_pem(p, ps, ATLS_PEM_CLIENT, 1) == -1))
		return (-1);
	return (0);
}

/*
 * Beyond nginx: servers may share an address when the client's TLS
 * server name (SNI) tells them apart, that is each has its own
 * server_name and certificates, and all use TLS there the same way.
 * The first server on the address is the default.
 */
static int
sni_shared(struct config *conf, struct listen_conf *first,
    struct listen_conf *lc)
{
	struct server_conf	*a, *b;
	struct listen_conf	*l;

	for (l = first; l != NULL; l = TAILQ_NEXT(l, entry)) {
		if (l == lc)
			return (0);
		if (strcmp(l->name, lc->name) != 0)
			continue;
		a = config_server_byid(conf, l->server_id);
		b = config_server_byid(conf, lc->server_id);
		if (a == NULL || b == NULL || a == b ||
		    !a->server_name_set || !b->server_name_set ||
		    strcasecmp(a->server_name, b->server_name) == 0 ||
		    a->tls_npairs == 0 || b->tls_npairs == 0 ||
		    l->ssl != lc->ssl ||
		    l->proxy_protocol != lc->proxy_protocol || (!lc->ssl &&
		    (a->starttls == STARTTLS_OFF ||
		    b->starttls == STARTTLS_OFF)))
			return (-1);
	}
	return (0);
}

/*
 * The files are read when TLS to the backend may be used: proxy_ssl
 * on, or an auth service that can turn it on per user
 * (Auth-Proxy-SSL).  The system's CA bundle is read for proxy_ssl on
 * only: every worker would get a copy, for nothing most of the time.
 */
static int
ptls_finish(struct parser *p, struct psrv *ps)
{
	struct server_conf	*srv = ps->srv;
	const char		*ca;
	int			 cert, key;

	if (srv->proxy_ssl == PTLS_OFF && !srv->auth_http_set)
		return (0);
	cert = srv->proxy_ssl_cert_file[0] != '\0';
	key = srv->proxy_ssl_key_file[0] != '\0';
	if (cert != key) {
		log_warnx("%s:%d: \"proxy_ssl_certificate\" and "
		    "\"proxy_ssl_certificate_key\" go together", ps->file,
		    ps->line);
		return (-1);
	}
	if (cert && (read_pem(p, ps, PTLS_PEM_CLIENT, 0) == -1 ||
	    read_pem(p, ps, PTLS_PEM_CLIENT, 1) == -1))
		return (-1);
	if (!srv->proxy_ssl_verify)
		return (0);
	if (srv->proxy_ssl_ca_file[0] != '\0')
		return (read_pem(p, ps, PTLS_PEM_CA, 0));
	if (srv->proxy_ssl == PTLS_OFF)
		return (0);
	ca = tls_default_ca_cert_file();
	if (strlcpy(srv->proxy_ssl_ca_file, ca,
	    sizeof(srv->proxy_ssl_ca_file)) >= sizeof(srv->proxy_ssl_ca_file)) {
		log_warnx("%s: path too long", ca);
		return (-1);
	}
	return (read_pem(p, ps, PTLS_PEM_CA, 0));
}

static void
parser_free(struct parser *p)
{
	struct psrv		*ps;
	struct auth_header	*h;

	while ((ps = TAILQ_FIRST(&p->psrvs)) != NULL) {
		TAILQ_REMOVE(&p->psrvs, ps, entry);
		free(ps);
	}
	if (p->mail.srv == NULL)
		return;
	while ((h = TAILQ_FIRST(&p->mail.srv->auth_headers)) != NULL) {
		TAILQ_REMOVE(&p->mail.srv->auth_headers, h, entry);
		free(h);
	}
	free(p->mail.srv);
}

struct config *
parse_config(const char *file)
{
	struct parser	 p;
	int		 rv;

	memset(&p, 0, sizeof(p));
	TAILQ_INIT(&p.psrvs);
	p.conf = config_new();
	/* for syslog:server= lines: children cannot ask the system */
	if (gethostname(p.conf->hostname, sizeof(p.conf->hostname)) == -1)
		strlcpy(p.conf->hostname, "localhost",
		    sizeof(p.conf->hostname));
	p.conf->hostname[sizeof(p.conf->hostname) - 1] = '\0';
	/* the mail{} level: a server's defaults, kept off the list */
	p.mail.srv = config_server_new(p.conf);
	TAILQ_REMOVE(&p.conf->servers, p.mail.srv, entry);

	rv = parse_file(&p, file, C_MAIN);
	if (rv == 0)
		rv = finish(&p, file);
	parser_free(&p);
	if (rv == -1) {
		config_free(p.conf);
		return (NULL);
	}
	return (p.conf);
}
