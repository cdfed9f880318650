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
 * authhttp: nginx's auth_http protocol, without I/O: the URL forms,
 * the escaping of user and password, the request headers and the
 * parsing of the response headers.  auth.c drives it with libcurl.
 */

#ifndef AUTHHTTP_H
#define AUTHHTTP_H

#include <stddef.h>

#include "imaprelayd.h"

#define AUTHHTTP_MAX_RESPONSE	16384	/* header bytes accepted */

/*
 * Parse an auth_http URL: "host[:port][/uri]", "http://host[:port][/uri]",
 * "https://...", "unix:/path[:/uri]", IPv6 as "[::1]:8080/auth".  Fills
 * everything but addr (the caller resolves host; host is stored without
 * brackets; for unix: host is "localhost", port 80 and nothing is to be
 * resolved).  0 ok, -1 with a reason in err.
 */
int	authhttp_parse_url(const char *, struct auth_url *, char *, size_t);

/*
 * nginx's NGX_ESCAPE_MAIL_AUTH: bytes 0x00-0x20 and % as %XX (uppercase),
 * the rest raw.  NUL-terminates; returns the length, -1 if too small
 * (3 * srclen + 1 always fits).
 */
int	authhttp_escape(char *, size_t, const char *, size_t);

/*
 * The response, as far as parsed.  Values are kept raw: nginx does not
 * percent-decode Auth-User, Auth-Pass or Auth-Status, nor do we.
 */
struct authhttp_reply {
	char		 status[512];	/* Auth-Status value */
	int		 status_set;
	/* Auth-Server and Auth-Port, each may be repeated: backends in order */
	char		 server[HOST_ADDRS_MAX][NAME_MAX_LEN];
	int		 nservers;
	char		 port[HOST_ADDRS_MAX][16];
	int		 nports;
	struct host_addrs backends;	/* OK: the addresses, parsed */
	char		 user[1024];
	int		 user_set;
	char		 pass[1024];
	int		 pass_set;
	unsigned int	 wait;		/* Auth-Wait */
	int		 wait_set;
	int		 proxy_ssl;	/* Auth-Proxy-SSL: 0, PTLS_* + 1 */
	char		 proxy_ssl_name[NAME_MAX_LEN];	/* Auth-Proxy-SSL-Name */
	int		 proxy_ssl_name_set;
	size_t		 total;		/* bytes seen, for the limit */
	char		 error[128];	/* why parsing failed */
};

void	authhttp_reply_init(struct authhttp_reply *);
/*
 * One header line (status line or "Name: value", CRLF optional; the
 * empty line and "HTTP/..." lines are ignored): 0, or -1 with the
 * reason in error (sticky: later calls fail too).
 */
int	authhttp_parse_header(struct authhttp_reply *, const char *, size_t);
/*
 * After the last header: decide.  Fills res (status, server, wait)
 * and returns AUTH_STATUS_*, or -2 for Auth-Status: WAIT.
 * needpass: the method gave no cleartext (CRAM-MD5, EXTERNAL).
 * AUTH_STATUS_UNAVAILABLE: the reason is in reply->error; FAIL: the
 * text is reply->status; OK: reply->backends (res->server/server_len
 * is the first of them), user_set, pass_set (the values in
 * reply->user, reply->pass).
 */
int	authhttp_finish(struct authhttp_reply *, int, struct auth_result *);

#endif /* AUTHHTTP_H */
