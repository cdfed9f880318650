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
 * nginx's auth_http protocol without any I/O, so that all of it can be
 * unit tested: the URL forms of the auth_http directive, the escaping of
 * Auth-User and Auth-Pass, and the parsing of the response headers.
 *
 * Response values are taken raw: nginx does not percent-decode
 * Auth-User, Auth-Pass or Auth-Status, and neither do we.
 */

#include <sys/types.h>
#include <sys/socket.h>
#include <sys/un.h>

#include <netinet/in.h>
#include <arpa/inet.h>

#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "imaprelayd.h"
#include "authhttp.h"

static int	url_error(char *, size_t, const char *);
static int	url_unix(const char *, struct auth_url *, char *, size_t);
static int	url_host(const char *, struct auth_url *, char *, size_t);
static int	url_uri_ok(const char *);
static int	url_name_ok(const char *);
static int	reply_error(struct authhttp_reply *, const char *);
static int	reply_set(struct authhttp_reply *, char *, size_t, int *,
		    const char *, size_t);
static int	finish_ok(struct authhttp_reply *, int, struct auth_result *);

static int
url_error(char *err, size_t errlen, const char *reason)
{
	if (err != NULL && errlen > 0)
		strlcpy(err, reason, errlen);
	return (-1);
}

/* an URI as we pass it to libcurl: no controls, no spaces */
static int
url_uri_ok(const char *uri)
{
	const unsigned char	*p;

	if (*uri != '/' && *uri != '?')
		return (0);
	for (p = (const unsigned char *)uri; *p != '\0'; p++)
		if (*p <= 0x20 || *p == 0x7f)
			return (0);
	return (1);
}

/* a host name or IPv4 literal */
static int
url_name_ok(const char *host)
{
	const unsigned char	*p;

	if (*host == '\0')
		return (0);
	for (p = (const unsigned char *)host; *p != '\0'; p++)
		if (!isalnum(*p) && *p != '-' && *p != '.' && *p != '_')
			return (0);
	return (1);
}

/* "unix:/path[:/uri]": nginx talks to the socket with Host: localhost */
static int
url_unix(const char *s, struct auth_url *au, char *err, size_t errlen)
{
	const char	*colon, *uri = "/";
	size_t		 len;
	int		 n;

	if ((colon = strchr(s, ':')) != NULL) {
		len = colon - s;
		uri = colon + 1;
	} else
		len = strlen(s);
	if (len == 0)
		return (url_error(err, errlen, "empty unix socket path"));
	if (len >= sizeof(au->unix_path) ||
	    len >= sizeof(((struct sockaddr_un *)0)->sun_path))
		return (url_error(err, errlen, "unix socket path too long"));
	memcpy(au->unix_path, s, len);
	au->unix_path[len] = '\0';
	if (*uri == '\0')
		uri = "/";
	if (*uri != '/' || !url_uri_ok(uri))
		return (url_error(err, errlen, "invalid uri"));
	strlcpy(au->host, "localhost", sizeof(au->host));
	au->port = 80;
	n = snprintf(au->curl_url, sizeof(au->curl_url), "http://localhost%s",
	    uri);
	if (n < 0 || (size_t)n >= sizeof(au->curl_url))
		return (url_error(err, errlen, "url too long"));
	return (0);
}

/* "host[:port][/uri]" with host a name, an IPv4 or a [IPv6] literal */
static int
url_host(const char *s, struct auth_url *au, char *err, size_t errlen)
{
	char		 hostport[NAME_MAX_LEN + 16], portstr[16];
	struct in6_addr	 in6;
	const char	*uri, *p, *errstr;
	size_t		 len;
	int		 n, v6 = 0;

	uri = s + strcspn(s, "/?");
	len = uri - s;
	if (len == 0)
		return (url_error(err, errlen, "missing host"));
	if (len >= sizeof(hostport))
		return (url_error(err, errlen, "host too long"));
	memcpy(hostport, s, len);
	hostport[len] = '\0';

	portstr[0] = '\0';
	if (hostport[0] == '[') {
		if ((p = strchr(hostport, ']')) == NULL)
			return (url_error(err, errlen,
			    "missing ] in IPv6 address"));
		len = p - hostport - 1;
		if (len >= sizeof(au->host))
			return (url_error(err, errlen, "host too long"));
		memcpy(au->host, hostport + 1, len);
		au->host[len] = '\0';
		if (inet_pton(AF_INET6, au->host, &in6) != 1)
			return (url_error(err, errlen, "invalid IPv6 address"));
		v6 = 1;
		p++;
		if (*p == ':')
			strlcpy(portstr, p + 1, sizeof(portstr));
		else if (*p != '\0')
			return (url_error(err, errlen, "invalid host"));
		else
			p = NULL;
	} else {
		if ((p = strchr(hostport, ':')) != NULL) {
			if (strlcpy(portstr, p + 1, sizeof(portstr)) >=
			    sizeof(portstr))
				return (url_error(err, errlen, "invalid port"));
			hostport[p - hostport] = '\0';
		}
		if (!url_name_ok(hostport))
			return (url_error(err, errlen, "invalid host"));
		strlcpy(au->host, hostport, sizeof(au->host));
	}
	if (p != NULL) {
		au->port = strtonum(portstr, 1, 65535, &errstr);
		if (errstr != NULL)
			return (url_error(err, errlen, "invalid port"));
	} else
		au->port = au->https ? 443 : 80;

	if (*uri == '\0')
		uri = "/";
	if (!url_uri_ok(uri))
		return (url_error(err, errlen, "invalid uri"));
	n = snprintf(au->curl_url, sizeof(au->curl_url), "%s://%s%s%s:%d%s%s",
	    au->https ? "https" : "http", v6 ? "[" : "", au->host,
	    v6 ? "]" : "", au->port, *uri == '?' ? "/" : "", uri);
	if (n < 0 || (size_t)n >= sizeof(au->curl_url))
		return (url_error(err, errlen, "url too long"));
	return (0);
}

int
authhttp_parse_url(const char *url, struct auth_url *au, char *err,
    size_t errlen)
{
	memset(au, 0, sizeof(*au));
	if (strlcpy(au->url, url, sizeof(au->url)) >= sizeof(au->url))
		return (url_error(err, errlen, "url too long"));

	if (strncasecmp(url, "unix:", 5) == 0)
		return (url_unix(url + 5, au, err, errlen));
	if (strncasecmp(url, "http://", 7) == 0)
		url += 7;
	else if (strncasecmp(url, "https://", 8) == 0) {
		url += 8;
		au->https = 1;
	} else if (strstr(url, "://") != NULL)
		return (url_error(err, errlen, "unsupported url scheme"));
	return (url_host(url, au, err, errlen));
}

int
authhttp_escape(char *dst, size_t dstlen, const char *src, size_t srclen)
{
	static const char	 hex[] = "0123456789ABCDEF";
	const unsigned char	*s = (const unsigned char *)src;
	size_t			 i, o = 0;

	for (i = 0; i < srclen; i++) {
		if (s[i] <= 0x20 || s[i] == '%') {
			if (o + 3 >= dstlen)
				return (-1);
			dst[o++] = '%';
			dst[o++] = hex[s[i] >> 4];
			dst[o++] = hex[s[i] & 0x0f];
		} else {
			if (o + 1 >= dstlen)
				return (-1);
			dst[o++] = s[i];
		}
	}
	if (o >= dstlen)
		return (-1);
	dst[o] = '\0';
	return ((int)o);
}

void
authhttp_reply_init(struct authhttp_reply *r)
{
	explicit_bzero(r, sizeof(*r));
}

static int
reply_error(struct authhttp_reply *r, const char *reason)
{
	if (r->error[0] == '\0')
		strlcpy(r->error, reason, sizeof(r->error));
	return (-1);
}

static int
reply_set(struct authhttp_reply *r, char *dst, size_t dstlen, int *isset,
    const char *v, size_t vlen)
{
	if (vlen >= dstlen)
		return (reply_error(r, "header value too long in response"));
	/* a previous, longer value may be a password: wipe it */
	explicit_bzero(dst, dstlen);
	memcpy(dst, v, vlen);
	*isset = 1;
	return (0);
}

/*
 * Auth-Server and Auth-Port may come several times: the backends to
 * try in turn, in the order given (nginx keeps only the last; no nginx
 * auth service sends two).
 */
static int
reply_backend(struct authhttp_reply *r, int isport, const char *v,
    size_t vlen)
{
	int	*n = isport ? &r->nports : &r->nservers;
	int	 isset;

	if (*n >= HOST_ADDRS_MAX)
		return (reply_error(r, "too many backends in response"));
	if ((isport ? reply_set(r, r->port[*n], sizeof(r->port[0]), &isset,
	    v, vlen) : reply_set(r, r->server[*n], sizeof(r->server[0]),
	    &isset, v, vlen)) == -1)
		return (-1);
	(*n)++;
	return (0);
}

/* Auth-Proxy-SSL: on, starttls or off; anything else is an error */
static int
reply_proxy_ssl(struct authhttp_reply *r, const char *v, size_t vlen)
{
	static const struct {
		const char	*name;
		int		 mode;
	} modes[] = {
		{ "on",		PTLS_ON },
		{ "starttls",	PTLS_STARTTLS },
		{ "off",	PTLS_OFF },
	};
	size_t	 i;

	for (i = 0; i < sizeof(modes) / sizeof(modes[0]); i++)
		if (vlen == strlen(modes[i].name) &&
		    strncasecmp(v, modes[i].name, vlen) == 0) {
			r->proxy_ssl = modes[i].mode + 1;
			return (0);
		}
	return (reply_error(r, "invalid Auth-Proxy-SSL in response"));
}

int
authhttp_parse_header(struct authhttp_reply *r, const char *line, size_t len)
{
	const char	*name, *v, *errstr;
	size_t		 namelen, vlen, i;
	char		 num[16];

	if (r->error[0] != '\0')
		return (-1);
	r->total += len;
	if (r->total > AUTHHTTP_MAX_RESPONSE)
		return (reply_error(r, "response too long"));

	if (len > 0 && line[len - 1] == '\n')
		len--;
	if (len > 0 && line[len - 1] == '\r')
		len--;
	if (len == 0)
		return (0);	/* the end of the headers */
	/* the status line and its code are ignored, as nginx does */
	if (len >= 5 && strncmp(line, "HTTP/", 5) == 0)
		return (0);

	name = line;
	for (i = 0; i < len && line[i] != ':'; i++)
		if (!isalnum((unsigned char)line[i]) && line[i] != '-')
			return (reply_error(r, "invalid header in response"));
	if (i == len || i == 0)
		return (reply_error(r, "invalid header in response"));
	namelen = i;
	v = line + i + 1;
	vlen = len - i - 1;
	for (i = 0; i < vlen; i++)
		if (v[i] == '\r' || v[i] == '\n' || v[i] == '\0')
			return (reply_error(r, "invalid header in response"));
	while (vlen > 0 && (*v == ' ' || *v == '\t')) {
		v++;
		vlen--;
	}
	while (vlen > 0 && (v[vlen - 1] == ' ' || v[vlen - 1] == '\t'))
		vlen--;

#define IS(s)	(namelen == sizeof(s) - 1 && strncasecmp(name, s, namelen) == 0)
	if (IS("Auth-Status"))
		return (reply_set(r, r->status, sizeof(r->status),
		    &r->status_set, v, vlen));
	if (IS("Auth-Server"))
		return (reply_backend(r, 0, v, vlen));
	if (IS("Auth-Port"))
		return (reply_backend(r, 1, v, vlen));
	if (IS("Auth-User"))
		return (reply_set(r, r->user, sizeof(r->user),
		    &r->user_set, v, vlen));
	if (IS("Auth-Pass"))
		return (reply_set(r, r->pass, sizeof(r->pass),
		    &r->pass_set, v, vlen));
	if (IS("Auth-Proxy-SSL"))
		return (reply_proxy_ssl(r, v, vlen));
	if (IS("Auth-Proxy-SSL-Name")) {
		for (i = 0; i < vlen; i++)
			if (!isalnum((unsigned char)v[i]) &&
			    strchr("-._:", v[i]) == NULL)
				return (reply_error(r,
				    "invalid Auth-Proxy-SSL-Name in response"));
		if (vlen == 0)
			return (reply_error(r,
			    "invalid Auth-Proxy-SSL-Name in response"));
		return (reply_set(r, r->proxy_ssl_name,
		    sizeof(r->proxy_ssl_name), &r->proxy_ssl_name_set, v,
		    vlen));
	}
	if (IS("Auth-Wait")) {
		/* like nginx, a value that is no number is ignored */
		if (vlen >= sizeof(num))
			return (0);
		memcpy(num, v, vlen);
		num[vlen] = '\0';
		r->wait = strtonum(num, 0, 86400, &errstr);
		r->wait_set = errstr == NULL;
		if (!r->wait_set)
			r->wait = 0;
		return (0);
	}
#undef IS
	return (0);
}

/* one Auth-Server with its Auth-Port, an IP literal: we never resolve */
static int
backend_parse(struct authhttp_reply *r, const char *server,
    const char *portstr, struct sockaddr_storage *ss, socklen_t *sslen)
{
	struct sockaddr_in	*sin = (struct sockaddr_in *)ss;
	struct sockaddr_in6	*sin6 = (struct sockaddr_in6 *)ss;
	char			 addr[NAME_MAX_LEN];
	const char		*errstr;
	size_t			 len;
	int			 port;

	port = strtonum(portstr, 1, 65535, &errstr);
	if (errstr != NULL)
		return (reply_error(r, "invalid Auth-Port in response"));
	strlcpy(addr, server, sizeof(addr));
	len = strlen(addr);
	if (len > 2 && addr[0] == '[' && addr[len - 1] == ']') {
		addr[len - 1] = '\0';
		memmove(addr, addr + 1, len - 1);
	}
	memset(ss, 0, sizeof(*ss));
	if (inet_pton(AF_INET, addr, &sin->sin_addr) == 1) {
		sin->sin_family = AF_INET;
		sin->sin_port = htons(port);
		*sslen = sizeof(*sin);
	} else if (inet_pton(AF_INET6, addr, &sin6->sin6_addr) == 1) {
		sin6->sin6_family = AF_INET6;
		sin6->sin6_port = htons(port);
		*sslen = sizeof(*sin6);
	} else
		return (reply_error(r,
		    "invalid Auth-Server address in response"));
	return (0);
}

/*
 * Auth-Status: OK.  Several Auth-Server headers each take the
 * Auth-Port of the same rank, or the only Auth-Port if one was given.
 */
static int
finish_ok(struct authhttp_reply *r, int needpass, struct auth_result *res)
{
	struct host_addrs	*ha = &r->backends;
	int			 i;

	res->status = AUTH_STATUS_UNAVAILABLE;
	memset(ha, 0, sizeof(*ha));
	if (r->nservers == 0 || r->nports == 0) {
		reply_error(r, "did not send server or port");
		return (AUTH_STATUS_UNAVAILABLE);
	}
	if (r->nports != 1 && r->nports != r->nservers) {
		reply_error(r, "Auth-Port count differs from Auth-Server's");
		return (AUTH_STATUS_UNAVAILABLE);
	}
	for (i = 0; i < r->nservers; i++)
		if (backend_parse(r, r->server[i],
		    r->port[r->nports == 1 ? 0 : i], &ha->ss[i],
		    &ha->len[i]) == -1) {
			memset(ha, 0, sizeof(*ha));
			return (AUTH_STATUS_UNAVAILABLE);
		}
	ha->n = r->nservers;
	if (needpass && !r->pass_set) {
		reply_error(r, "did not send password");
		memset(ha, 0, sizeof(*ha));
		return (AUTH_STATUS_UNAVAILABLE);
	}
	memcpy(&res->server, &ha->ss[0], ha->len[0]);
	res->server_len = ha->len[0];
	res->user_set = r->user_set;
	res->pass_set = r->pass_set;
	res->proxy_ssl = r->proxy_ssl;
	if (r->proxy_ssl_name_set)
		strlcpy(res->proxy_ssl_name, r->proxy_ssl_name,
		    sizeof(res->proxy_ssl_name));
	res->status = AUTH_STATUS_OK;
	return (AUTH_STATUS_OK);
}

int
authhttp_finish(struct authhttp_reply *r, int needpass,
    struct auth_result *res)
{
	res->wait = 0;
	res->user_set = res->pass_set = 0;
	res->server_len = 0;
	res->proxy_ssl = 0;
	res->proxy_ssl_name[0] = '\0';
	if (r->error[0] != '\0') {
		res->status = AUTH_STATUS_UNAVAILABLE;
		return (AUTH_STATUS_UNAVAILABLE);
	}
	if (!r->status_set) {
		reply_error(r, "no Auth-Status in response");
		res->status = AUTH_STATUS_UNAVAILABLE;
		return (AUTH_STATUS_UNAVAILABLE);
	}
	if (strcmp(r->status, "OK") == 0)
		return (finish_ok(r, needpass, res));
	if (strcmp(r->status, "WAIT") == 0) {
		res->wait = r->wait_set ? r->wait : 0;
		return (-2);
	}
	res->status = AUTH_STATUS_FAIL;
	res->wait = r->wait_set ? r->wait : 0;
	return (AUTH_STATUS_FAIL);
}
