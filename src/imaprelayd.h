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
 * imaprelayd: shared declarations of every process.
 *
 * Payloads exchanged over imsg are fixed-size structs (strings in
 * fixed arrays, always NUL-terminated by the receiver) plus, where a
 * value is unbounded, a length-counted tail.  Never pointers.
 */

#ifndef IMAPRELAYD_H
#define IMAPRELAYD_H

#include <sys/types.h>
#include <sys/queue.h>
#include <sys/socket.h>

#include <event.h>
#include <netdb.h>
#include <stdarg.h>
#include <stdint.h>
#include <limits.h>

#include <imsg.h>

#define IMAPRELAYD_CONF		"/etc/imaprelayd.conf"
#define IMAPRELAYD_USER		"_imaprelayd"
#define IMAPRELAYD_CHROOT	"/var/empty"
#define PROC_PARENT_FD		3	/* a child's imsg channel to the parent */
#define PROC_LOG_FD		4	/* error_log file, when one is set */

#define NAME_MAX_LEN		256	/* server_name, host names */
#define URL_MAX_LEN		1024
#define CAPS_MAX_LEN		1024
#define HEADER_NAME_LEN		128
#define HEADER_VALUE_LEN	1024
#define ADDR_STR_LEN		(INET6_ADDRSTRLEN + 8)	/* "[addr]:port" */
#define HOST_ADDRS_MAX		8	/* addresses kept of a configured name */

/* imap_auth mechanisms, in the fixed order they are advertised */
#define MECH_PLAIN		0x01
#define MECH_LOGIN		0x02
#define MECH_CRAM_MD5		0x04
#define MECH_EXTERNAL		0x08

/* TLS towards clients (tls.c) */
#define TLS_MAX_PAIRS		4	/* ssl_certificate: RSA, ECDSA, ... */
#define TLS_PEM_MAX		(1024 * 1024)	/* one certificate or key file */
#define TLS_CHUNK_MAX		(128 * 1024)	/* PEM bytes per imsg */
#define TLS_PATH_MAX		1024	/* keeps struct server_conf small */
#define TLS_CIPHERS_MAX		4096	/* a cipher list: nginx's token */

/* ssl_verify_client; the CA files travel as certificate pairs past the last */
#define CCERT_VERIFY_OFF	0
#define CCERT_VERIFY_ON		1
#define CCERT_VERIFY_OPTIONAL	2
#define CCERT_VERIFY_NO_CA	3	/* optional_no_ca */
#define CCERT_PAIR_CA		TLS_MAX_PAIRS		/* client_certificate */
#define CCERT_PAIR_TRUSTED	(TLS_MAX_PAIRS + 1)	/* trusted_certificate */
#define CCERT_PAIR_CRL		(TLS_MAX_PAIRS + 2)	/* ssl_crl */
/* ssl_session_ticket_key files, as tls_pem keys: TICKET_PEM + i */
#define TICKET_FILES_MAX	4
#define TICKET_PEM		0x300
#define CCERT_FIELD_MAX		4096	/* subject or issuer, as text */

/* proxy_protocol towards the backend */
#define PROXY_PROTOCOL_OFF	0
#define PROXY_PROTOCOL_V1	1	/* "on", as nginx */
#define PROXY_PROTOCOL_V2	2	/* with TLVs: TLS version, cipher, SNI */
#define REALIP_MAX		64	/* set_real_ip_from entries per level */

/* set_real_ip_from: a network whose PROXY headers are believed */
struct realip_net {
	int		 family;	/* AF_INET, AF_INET6; AF_UNIX: "unix:" */
	unsigned int	 prefix;	/* bits */
	uint8_t		 addr[16];
};

enum starttls_mode {
	STARTTLS_OFF = 0,
	STARTTLS_ON,		/* offered */
	STARTTLS_ONLY,		/* required before LOGIN and AUTHENTICATE */
};

/* proxy_ssl, and Auth-Proxy-SSL (there 0 means "as configured", else +1) */
enum ptls_mode {
	PTLS_OFF = 0,
	PTLS_ON,		/* TLS from the first byte */
	PTLS_STARTTLS,		/* plaintext greeting, then STARTTLS */
};
/* struct tls_pem.pair of the backend side's files, beyond the pairs */
#define PTLS_PEM_CLIENT		0x100	/* proxy_ssl_certificate (+ _key) */
#define PTLS_PEM_CA		0x101	/* proxy_ssl_trusted_certificate */
/* ... and of auth_http's over https, for the auth process only */
#define ATLS_PEM_CA		0x200	/* auth_http_trusted_certificate */
#define ATLS_PEM_CLIENT		0x201	/* auth_http_certificate (+ _key) */
#define ATLS_KEY_FLAG		0x1000	/* IMSG_CFG_AUTH_TLS: the key */

/*
 * error_log: a file, "stderr", or syslog.  The parent opens it and
 * hands every child a copy of the descriptor (fd); children never open
 * files.  No file and no syslog server: syslog(3) to /dev/log.
 */
#define LOG_TAG_MAX		33	/* RFC 3164: 32 characters */
struct log_dest {
	char			 file[PATH_MAX];	/* or "stderr" */
	int			 level;		/* LOG_EMERG .. LOG_DEBUG */
	/* syslog:server=...: "unix:/path" or host[:port] (UDP) */
	char			 syslog_server[NAME_MAX_LEN + 16];
	struct sockaddr_storage	 syslog_ss;
	socklen_t		 syslog_sslen;
	int			 facility;	/* 0 .. 23, local7 */
	char			 tag[LOG_TAG_MAX];
	int			 nohostname;
	int			 fd;		/* parent: opened; else -1 */
};

enum isolation {
	ISOLATION_CONNECTION = 0,	/* one worker process per client */
	ISOLATION_SHARED		/* worker_processes workers, many each */
};

/*
 * Configuration.  The parent parses the file into a struct config and
 * sends it to every child (config.c); children get no file access.
 */

struct listen_conf {
	TAILQ_ENTRY(listen_conf)	 entry;
	uint32_t			 server_id;
	struct sockaddr_storage		 ss;
	socklen_t			 sslen;
	char				 name[ADDR_STR_LEN];	/* for logs */
	int				 backlog;	/* -1: default 511 */
	int				 rcvbuf;	/* -1: unset */
	int				 sndbuf;	/* -1: unset */
	int				 keepalive;	/* -1 unset, 0 off, 1 on */
	int				 keepidle;	/* seconds, 0: system */
	int				 keepintvl;
	int				 keepcnt;
	int				 bind;
	int				 ipv6only;	/* -1 unset */
	int				 ssl;		/* reserved for tls.c */
	int				 proxy_protocol; /* a PROXY header first */
	int				 fd;		/* parent: bound socket */
	const char			*file;		/* parent: for errors */
	int				 line;
};
TAILQ_HEAD(listen_list, listen_conf);

struct auth_header {
	TAILQ_ENTRY(auth_header)	 entry;
	uint32_t			 server_id;
	char				 name[HEADER_NAME_LEN];
	char				 value[HEADER_VALUE_LEN];
};
TAILQ_HEAD(auth_header_list, auth_header);

/*
 * A configured host:port and every address it resolved to, in the
 * order getaddrinfo gave them: each is tried in turn.
 */
struct host_addrs {
	int			 n;
	socklen_t		 len[HOST_ADDRS_MAX];
	struct sockaddr_storage	 ss[HOST_ADDRS_MAX];
};

/* where auth_http points, parsed and resolved by the parent */
struct auth_url {
	char		 url[URL_MAX_LEN];	/* as given in the config */
	char		 curl_url[URL_MAX_LEN];	/* the URL handed to libcurl */
	char		 unix_path[108];	/* unix:/path:/uri form */
	char		 host[NAME_MAX_LEN];	/* for CURLOPT_RESOLVE */
	int		 port;
	/* every address host resolved to, as CURLOPT_RESOLVE lists them:
	   "192.0.2.1,[2001:db8::1]" */
	char		 addrs[HOST_ADDRS_MAX * (INET6_ADDRSTRLEN + 3)];
	int		 https;
};

struct server_conf {
	TAILQ_ENTRY(server_conf)	 entry;
	uint32_t			 id;
	int				 error_log_set;	/* else the main one */
	struct log_dest			 error_log;
	char				 server_name[NAME_MAX_LEN];
	int				 server_name_set;
	unsigned int			 timeout_ms;		/* 60s */
	unsigned int			 proxy_timeout_ms;	/* 24h */
	unsigned int			 auth_http_timeout_ms;	/* 60s */
	int				 auth_http_set;
	struct auth_url			 auth_http;
	struct auth_header_list		 auth_headers;
	unsigned int			 imap_auth;	/* MECH_* */
	char				 imap_capabilities[CAPS_MAX_LEN];
	size_t				 imap_client_buffer;	/* 4k */
	size_t				 proxy_buffer;		/* 16k */
	int				 proxy_pass_error_message;
	unsigned int			 max_errors;		/* 5 */
	int				 so_keepalive;		/* backend */
	int				 proxy_pass_set;
	struct host_addrs		 proxy_pass;
	char				 proxy_pass_name[NAME_MAX_LEN + 8];
	/* TLS towards clients; the PEM bytes reach imap workers only */
	int				 listen_ssl;	/* "ssl on": every listen */
	int				 starttls;	/* enum starttls_mode */
	int				 tls_npairs;
	char				 tls_cert_file[TLS_MAX_PAIRS][TLS_PATH_MAX];
	char				 tls_key_file[TLS_MAX_PAIRS][TLS_PATH_MAX];
	char				 tls_password_file[TLS_PATH_MAX];
	uint32_t			 tls_protocols;	/* TLS_PROTOCOL_* */
	char				 tls_ciphers[TLS_CIPHERS_MAX];
	int				 tls_prefer_server_ciphers;
	char				 tls_ecdh_curve[256];
	char				 tls_dhparams[16];	/* libtls keyword */
	unsigned int			 tls_session_timeout;	/* seconds */
	int				 tls_session_tickets;
	char				 tls_ticket_file[TICKET_FILES_MAX][TLS_PATH_MAX];
	/* client certificates (ccert_ in tls.c) */
	int				 ccert_verify;	/* CCERT_VERIFY_* */
	int				 ccert_depth;	/* ssl_verify_depth */
	int				 ccert_pass_cert; /* Auth-SSL-Cert */
	char				 ccert_ca_file[TLS_PATH_MAX];
	char				 ccert_trusted_file[TLS_PATH_MAX];
	char				 ccert_crl_file[TLS_PATH_MAX];
	/* TLS to the backend (ptls.c); PEM bytes as tls_pem, PTLS_PEM_* */
	int				 proxy_ssl;	/* enum ptls_mode */
	int				 proxy_ssl_verify;	/* on */
	uint32_t			 proxy_ssl_protocols;
	char				 proxy_ssl_ciphers[TLS_CIPHERS_MAX];
	char				 proxy_ssl_name[NAME_MAX_LEN];	/* "": addr */
	char				 proxy_ssl_ca_file[TLS_PATH_MAX];
	char				 proxy_ssl_cert_file[TLS_PATH_MAX];
	char				 proxy_ssl_key_file[TLS_PATH_MAX];
	/* auth_http over https (atls_ in parse.c, auth.c): ATLS_PEM_* */
	char				 auth_tls_ca_file[TLS_PATH_MAX];
	char				 auth_tls_cert_file[TLS_PATH_MAX];
	char				 auth_tls_key_file[TLS_PATH_MAX];
	/* kept by the auth process for every worker (limit.c); 0: off */
	unsigned int			 limit_conn_per_ip;
	unsigned int			 limit_auth_fail;	/* failures */
	unsigned int			 limit_auth_fail_window_ms;
	unsigned int			 limit_auth_fail_delay_ms;
	/* a refused login is answered after it (auth.c); 0: at once */
	unsigned int			 auth_fail_delay_ms;	/* 2s */
	unsigned int			 limit_prelogin_per_ip;	/* 20 */
	unsigned int			 limit_conn_rate;	/* 20/s */
	unsigned int			 limit_conn_burst;	/* 100 */
	unsigned int			 limit_ipv6_prefix;	/* 64 */
	/* hostile clients before login (prelogin.c) */
	unsigned int			 login_timeout_ms;	/* 30s */
	unsigned int			 login_max_commands;	/* 20 */
	/* x-originating-ip and friends in the backend's ID (proxy.c) */
	int				 proxy_forward_client_ip;	/* on */
	/* the PROXY protocol (realip.c): to the backend, and whom to
	   believe on a "listen ... proxy_protocol" */
	int				 proxy_protocol;	/* PROXY_PROTOCOL_* */
	unsigned int			 nrealip;
	struct realip_net		 realip[REALIP_MAX];
};
TAILQ_HEAD(server_list, server_conf);

/*
 * A certificate chain or key file the parent read, for the imap
 * workers: no worker ever sees the file, and the auth process never
 * gets the bytes.
 */
struct tls_pem {
	TAILQ_ENTRY(tls_pem)	 entry;
	uint32_t		 server_id;
	uint32_t		 pair;		/* index of the cert/key pair */
	int			 key;		/* 0: certificate, 1: key */
	uint8_t			*data;
	size_t			 len;
	size_t			 got;		/* receiver: bytes so far */
};
TAILQ_HEAD(tls_pem_list, tls_pem);

struct config {
	char			 user[LOGIN_NAME_MAX];	/* _imaprelayd */
	char			 user_file[PATH_MAX];	/* where "user" was */
	int			 user_line;		/* 0: not given */
	int			 worker_processes;	/* 0: auto (ncpu) */
	unsigned int		 worker_connections;	/* 512 */
	enum isolation		 isolation;
	unsigned int		 spare_workers;	/* preforked idle workers (4) */
	/* isolation connection: a fresh template after so many forks or ms */
	unsigned int		 template_max_forks;	/* 1000, 0: no limit */
	unsigned int		 template_max_age_ms;	/* 1h, 0: no limit */
	unsigned int		 shutdown_timeout_ms;	/* SIGTERM grace, 0: 10s */
	struct log_dest		 error_log;
	char			 hostname[NAME_MAX_LEN];	/* for syslog */
	int			 daemonize;	/* "daemon off": foreground */
	unsigned int		 rlimit_nofile;	/* worker_rlimit_nofile, 0 */
	char			 pid[PATH_MAX];
	struct server_list	 servers;
	struct listen_list	 listens;
	struct tls_pem_list	 tls_pems;
};

/* imsg types, grouped by prefix; the comment says who sends to whom */
enum imsg_type {
	IMSG_NONE,
	/* parent -> children: configuration, then IMSG_CFG_DONE */
	IMSG_CFG_GLOBAL,	/* struct config (lists empty) */
	IMSG_CFG_SERVER,	/* struct server_conf (list heads zeroed) */
	IMSG_CFG_AUTH_HEADER,	/* struct auth_header */
	IMSG_CFG_LISTEN,	/* struct listen_conf + fd (imap only) */
	IMSG_CFG_TLS_CERT,	/* struct tls_pem_chunk + bytes (imap only) */
	IMSG_CFG_TLS_KEY,	/* struct tls_pem_chunk + bytes (imap only) */
	IMSG_CFG_DONE,
	IMSG_CFG_LOG,		/* uint32_t server id (0: main) + fd or
				   none: its error_log destination */
	IMSG_CFG_AUTH_TLS,	/* struct tls_pem_chunk + bytes (auth only):
				   ATLS_PEM_*; the key is ATLS_PEM_CLIENT
				   with pair | ATLS_KEY_FLAG */
	/* parent -> children: control */
	IMSG_CTL_AUTH_CHANNEL,	/* fd: one end of an imap<->auth pair;
				   payload uint32_t worker id */
	IMSG_CTL_ADMISSION,	/* parent -> imap: int, enum admission */
	IMSG_CTL_DRAIN,		/* stop accepting, exit when idle */
	IMSG_CTL_VERBOSE,	/* int: log verbosity */
	IMSG_CTL_TICKET_KEY,	/* parent -> imap: struct ticket_key */
	IMSG_CTL_SHUTDOWN,	/* parent -> imap: BYE to every session, exit */
	IMSG_CTL_LOG_FD,	/* uint32_t server id (0: main) + fd:
				   an error_log reopened (SIGUSR1) */
	/* children -> parent; anything else from a child gets it killed */
	IMSG_CTL_READY,		/* configured, serving */
	IMSG_CTL_ACCEPTED,	/* imap: a client session started */
	IMSG_CTL_CLOSED,	/* imap: a client session ended */
	IMSG_CTL_WORKER_BAD,	/* auth: uint32_t worker id; that worker sent
				   nonsense, its channel was dropped */
	/*
	 * parent <-> template (isolation connection).  The template gets
	 * the imap configuration (IMSG_CFG_*, listeners and TLS included),
	 * the ticket keys, DRAIN (it exits: its workers live on) and
	 * VERBOSE, and answers READY once its TLS contexts are built.
	 */
	IMSG_TPL_FORK,		/* parent -> template: int, enum admission:
				   fork one spare worker, admitted so */
	IMSG_TPL_WORKER,	/* template -> parent: struct tpl_worker + fd,
				   the new worker's channel to the parent */
	IMSG_TPL_FORK_FAILED,	/* template -> parent: int, the admission of
				   a fork asked for that failed */
	IMSG_TPL_EXITED,	/* template -> parent: struct tpl_exited, one
				   of its workers ended */
	/* imap <-> auth, over the channel the parent created */
	IMSG_AUTH_REQUEST,	/* imap -> auth: struct auth_request + tail */
	IMSG_AUTH_CANCEL,	/* imap -> auth: uint32_t request id: nothing
				   more is needed for that login */
	IMSG_AUTH_RESULT,	/* auth -> imap: struct auth_result + tail;
				   on OK with the connected backend socket */
	IMSG_AUTH_CONN_OPEN,	/* imap -> auth: struct auth_conn */
	IMSG_AUTH_CONN_VERDICT,	/* auth -> imap: struct auth_conn_verdict */
	IMSG_AUTH_CONN_CLOSE,	/* imap -> auth: uint32_t session number */
	IMSG_AUTH_CAPS,		/* auth -> imap: struct auth_caps */
	IMSG_AUTH_CONN_LOGIN,	/* imap -> auth: uint32_t session number */
	IMSG_AUTH_BACKEND,	/* imap -> auth: struct auth_backend: connect
				   to the server's proxy_pass (no auth_http) */
	IMSG_AUTH_NEXT,		/* imap -> auth: struct auth_next: the backend
				   of the socket given said BYE, the next one */
};

/* IMSG_CFG_TLS_*: one piece of a PEM file, followed by its bytes */
struct tls_pem_chunk {
	uint32_t	 server_id;
	uint32_t	 pair;		/* index of the certificate/key pair */
	uint32_t	 total;		/* length of the whole file */
	uint32_t	 offset;	/* of this piece */
};

/*
 * IMSG_CTL_TICKET_KEY: a TLS session ticket key made by the parent, so
 * that every worker decrypts every other worker's tickets.  The newest
 * key encrypts, the one before still decrypts.
 */
#define TICKET_KEY_LEN		48	/* libtls: TLS_TICKET_KEY_SIZE */
#define TICKET_SID_LEN		32	/* TLS_MAX_SESSION_ID_LENGTH */
struct ticket_key {
	uint32_t	 keyrev;
	uint8_t		 key[TICKET_KEY_LEN];
	uint8_t		 sid[TICKET_SID_LEN];	/* same in every key */
};

/*
 * What a connection-mode spare does with its next client.  Only the
 * parent can count sessions across processes, so it tells each spare.
 */
enum admission {
	ADMIT_SERVE = 0,	/* accept and serve */
	ADMIT_REFUSE,		/* at the cap: accept, answer BYE, close */
	ADMIT_PAUSE,		/* others hold the room left: do not accept */
};

/* IMSG_TPL_WORKER and IMSG_TPL_EXITED */
struct tpl_worker {
	int32_t		 pid;
	int32_t		 admit;		/* as asked in IMSG_TPL_FORK */
};

struct tpl_exited {
	int32_t		 pid;
	int32_t		 status;	/* as waitpid(2) has it */
};

/* how the client authenticated, as sent in Auth-Method */
enum auth_method {
	AUTH_METHOD_PLAIN = 0,	/* LOGIN, AUTHENTICATE PLAIN and LOGIN */
	AUTH_METHOD_CRAM_MD5,
	AUTH_METHOD_EXTERNAL,
};

/*
 * IMSG_AUTH_REQUEST payload.  Followed by user_len bytes of user,
 * pass_len bytes of password and salt_len bytes of salt (CRAM-MD5).
 * The password is wiped by both sides as soon as it was used.
 */
struct auth_request {
	uint32_t	 id;		/* chosen by the worker, echoed */
	uint32_t	 server_id;
	uint32_t	 method;	/* enum auth_method */
	uint32_t	 attempt;	/* Auth-Login-Attempt, from 1 */
	char		 client_ip[INET6_ADDRSTRLEN];
	uint16_t	 client_port;
	uint32_t	 flags;		/* AUTH_REQ_* */
	char		 ssl_protocol[32];	/* Auth-SSL-Protocol */
	char		 ssl_cipher[64];	/* Auth-SSL-Cipher */
	uint32_t	 user_len;
	uint32_t	 pass_len;
	uint32_t	 salt_len;
	/* client certificate (ssl_verify_client): empty = not sent */
	char		 ssl_verify[128];	/* Auth-SSL-Verify */
	char		 ssl_serial[128];	/* Auth-SSL-Serial */
	char		 ssl_fingerprint[64];	/* Auth-SSL-Fingerprint */
	/* tail after the salt: subject, issuer, then the escaped PEM */
	uint32_t	 subject_len;
	uint32_t	 issuer_len;
	uint32_t	 cert_len;
	/* listen ... proxy_protocol: what the header said (Proxy-Protocol-*) */
	char		 pp_addr[INET6_ADDRSTRLEN];
	uint16_t	 pp_port;
	char		 pp_server_addr[INET6_ADDRSTRLEN];
	uint16_t	 pp_server_port;
};

#define AUTH_REQ_SSL	0x01	/* the client connection is TLS */
#define AUTH_REQ_PP	0x02	/* pp_* are set: the client came with a
				   PROXY header that named addresses */

enum auth_status {
	AUTH_STATUS_OK = 0,		/* logged in: here is the backend */
	AUTH_STATUS_FAIL,		/* wrong credentials: text, wait */
	AUTH_STATUS_UNAVAILABLE,	/* service down, timeout, garbage */
	AUTH_STATUS_BACKEND,		/* no backend could be connected to */
};

/*
 * IMSG_AUTH_RESULT payload, followed by user_len bytes of user,
 * pass_len bytes of password and text_len bytes of the failure text
 * (Auth-Status) or, for AUTH_STATUS_UNAVAILABLE and _BACKEND, the
 * reason for logs.  AUTH_STATUS_OK comes with the backend socket,
 * connected by the auth process: workers open no connection.  The
 * answer to an IMSG_AUTH_NEXT carries no user or password.
 */
struct auth_result {
	uint32_t	 id;
	uint32_t	 status;	/* enum auth_status */
	uint32_t	 wait;		/* Auth-Wait seconds, 0 = close */
	uint32_t	 elapsed_ms;	/* time the auth service took */
	struct sockaddr_storage server;	/* the backend the socket reaches */
	socklen_t	 server_len;
	uint32_t	 backend;	/* its index among the answer's ... */
	uint32_t	 nbackends;	/* ... backends (Auth-Server, proxy_pass) */
	uint32_t	 user_set;	/* Auth-User given */
	uint32_t	 pass_set;	/* Auth-Pass given */
	uint32_t	 user_len;
	uint32_t	 pass_len;
	uint32_t	 text_len;
	uint32_t	 proxy_ssl;	/* Auth-Proxy-SSL: 0 unset, PTLS_* + 1 */
	char		 proxy_ssl_name[NAME_MAX_LEN];	/* Auth-Proxy-SSL-Name */
	uint32_t	 limited;	/* refused by limit_auth_fail */
};

/*
 * IMSG_AUTH_BACKEND: a login on a server with proxy_pass and no
 * auth_http; the backend checks the password, which stays in the
 * worker.  The answer is an IMSG_AUTH_RESULT with the same id.
 */
struct auth_backend {
	uint32_t	 id;
	uint32_t	 server_id;
	char		 client_ip[INET6_ADDRSTRLEN];	/* for logs */
};

/*
 * IMSG_AUTH_NEXT: the backend of the socket given for login id greeted
 * with BYE (or closed): connect to the answer's backend number backend
 * or a later one.  A worker names only an index into the list the auth
 * process keeps, never an address.
 */
struct auth_next {
	uint32_t	 id;
	uint32_t	 backend;
};

/*
 * limit_conn_per_ip, limit_prelogin_per_ip, limit_conn_rate: a worker
 * asks the auth process before it greets a client of a server with a
 * limit, says when the session logged in (IMSG_AUTH_CONN_LOGIN) and
 * when it ends (IMSG_AUTH_CONN_CLOSE).  After an auth restart a worker
 * counts its sessions again (recount: no verdict is sent).
 */
struct auth_conn {
	uint32_t	 id;		/* the worker's number for the session */
	uint32_t	 server_id;
	uint32_t	 recount;
	uint32_t	 prelogin;	/* not logged in yet */
	char		 client_ip[INET6_ADDRSTRLEN];
};

/* auth_conn_verdict.limit: admitted, or the limit that refused */
enum conn_limit {
	CONN_ADMIT = 0,
	CONN_LIMIT_PER_IP,	/* limit_conn_per_ip */
	CONN_LIMIT_PRELOGIN,	/* limit_prelogin_per_ip */
	CONN_LIMIT_RATE,	/* limit_conn_rate */
};

struct auth_conn_verdict {
	uint32_t	 id;
	uint32_t	 limit;		/* enum conn_limit */
};

/*
 * imap_capabilities auto: what a server's backend advertises before
 * login, less what the proxy does itself (auth_caps.c).
 */
struct auth_caps {
	uint32_t	 server_id;
	char		 caps[CAPS_MAX_LEN];	/* atoms, one space apart */
};

/* a channel to a peer process, driven by libevent (proc.c) */
struct imsgev;
struct proc_peer {
	const char	*name;		/* for logs */
	/* one message: a switch on its type; -1: refused */
	int		(*dispatch)(struct imsgev *, struct imsg *);
	/* end of file or a broken channel; NULL: exit(0) */
	void		(*gone)(struct imsgev *);
	/* a refused or malformed (NULL) message; NULL: fatal, we trust it */
	void		(*bad)(struct imsgev *, struct imsg *);
	int		 fdpass;	/* descriptors travel on it */
};

struct imsgev {
	struct imsgbuf		 ibuf;
	const struct proc_peer	*peer;
	struct event		 ev;
	void			*data;
	short			 events;
};

/* log.c */
void	log_init(int, int);
void	log_setfd(int);
void	log_sethostname(const char *);
void	log_setdest(uint32_t, const struct log_dest *, int);
void	log_replacefd(uint32_t, int);
void	log_recvfd(struct imsg *);
void	log_select(uint32_t);
void	log_procinit(const char *);
void	log_setverbose(int);
int	log_getverbose(void);
void	log_warn(const char *, ...) __attribute__((format(printf, 1, 2)));
void	log_warnx(const char *, ...) __attribute__((format(printf, 1, 2)));
void	log_warning(const char *, ...) __attribute__((format(printf, 1, 2)));
void	log_notice(const char *, ...) __attribute__((format(printf, 1, 2)));
void	log_info(const char *, ...) __attribute__((format(printf, 1, 2)));
void	log_debug(const char *, ...) __attribute__((format(printf, 1, 2)));
void	vlog(int, const char *, va_list) __attribute__((format(printf, 2, 0)));
__attribute__((noreturn)) void
	fatal(const char *, ...) __attribute__((format(printf, 1, 2)));
__attribute__((noreturn)) void
	fatalx(const char *, ...) __attribute__((format(printf, 1, 2)));

/* parse.c: the configuration language */
struct config	*parse_config(const char *);	/* NULL: errors logged */

/* config.c: configuration objects and their transfer over imsg */
struct config	*config_new(void);
void		 config_free(struct config *);
struct server_conf *config_server_new(struct config *);
struct server_conf *config_server_byid(struct config *, uint32_t);
void		 config_server_drop(struct config *, struct server_conf *);
void		 log_dest_init(struct log_dest *, int);
struct tls_pem	*config_pem(struct config *, uint32_t, uint32_t, int);
void		 config_send(struct imsgev *, struct config *, int);
int		 config_recv(struct config *, struct imsg *);

/* proc.c: spawning, channels, privilege drop, the imsg loop */
int		 proc_socketpair(int [2]);
void		 proc_channel(struct imsgev *, int, const struct proc_peer *,
		    void *);
void		 proc_parent_channel(struct imsgev *,
		    const struct proc_peer *);
void		 proc_dispatch(int, short, void *);
void		 imsgev_add(struct imsgev *);
void		 imsgev_clear(struct imsgev *);
int		 imsgev_compose(struct imsgev *, uint32_t, uint32_t, int,
		    const void *, size_t);
pid_t		 proc_exec(const char *, char *const [], int, int);
int		 proc_subreaper(void);
/* resolve user, chroot (when root and asked), setproctitle, drop ids */
void		 proc_privdrop(const char *, const char *, int);

/* util.c */
const char	*sockaddr_str(const struct sockaddr *, char *, size_t);
void		 set_nonblock(int);
uint64_t	 now_ms(void);	/* monotonic clock, milliseconds */

/* sandbox.c: the last step of every process's setup */
void		 sandbox_parent(void);
void		 sandbox_auth(char *const *);	/* auth_http unix: paths */
void		 sandbox_imap(void);
void		 sandbox_template(void);
void		 sandbox_worker(void);	/* a worker forked by the template */
#ifdef REGRESS_TRIGGERS
int		 sandbox_regress_try(const char *, char *, size_t);
#endif

/* tls.c: the parent's check of a server's TLS setup */
int		 ctls_check(struct config *);
/* ptls.c: the parent's check of the backend TLS settings */
int		 ptls_check(struct config *);

/* auth.c */
__attribute__((noreturn)) void auth_main(int, int, const char *,
		    char *const *);

/*
 * auth_backend.c: the auth process connects to backends for the
 * workers, each address of a list in turn, without blocking.
 */
struct bconn {
	struct host_addrs	 addrs;		/* tried in turn */
	int			 cur;		/* the one tried, or connected */
	int			 fd;		/* -1: none in progress */
	int			 keepalive;	/* so_keepalive */
	unsigned int		 timeout_ms;	/* per address */
	uint32_t		 log_id;	/* whose error_log (log_select) */
	char			 next[NAME_MAX_LEN + 32];	/* "the next ..." */
	char			 name[ADDR_STR_LEN];	/* of addrs.ss[cur] */
	char			 why[256];	/* the last failure */
	struct event		 ev;
	/* connected (fd), or every address failed (-1, why says) */
	void			(*done)(struct bconn *, int);
	void			*arg;
};
int		 bconn_socket(const struct sockaddr *, socklen_t, int);
void		 bconn_init(struct bconn *, void (*)(struct bconn *, int),
		    void *);
void		 bconn_start(struct bconn *, int);
void		 bconn_stop(struct bconn *);

/* auth_caps.c: imap_capabilities auto, in the auth process */
int		 caps_auto(const struct server_conf *);
int		 caps_atom(const char *, size_t);
void		 caps_init(struct config *, void (*)(struct auth_caps *));
void		 caps_backend(struct server_conf *, const struct host_addrs *,
		    int);
void		 caps_send_known(void (*)(void *, struct auth_caps *), void *);

/* imap.c */
__attribute__((noreturn)) void imap_main(int, int, const char *);

/* template.c */
__attribute__((noreturn)) void template_main(int, int, const char *);

#endif /* IMAPRELAYD_H */
