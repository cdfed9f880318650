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
 * Unit tests of authhttp.c: nginx's auth_http URL forms, the escaping
 * of Auth-User/Auth-Pass and the parsing of the response headers.
 */

#include <sys/types.h>
#include <sys/socket.h>

#include <netinet/in.h>
#include <arpa/inet.h>

#include <stdarg.h>

#include "imaprelayd.h"
#include "authhttp.h"
#include "unit.h"

static struct auth_url	 au;
static char		 err[256];

static int
url(const char *s)
{
	err[0] = '\0';
	return (authhttp_parse_url(s, &au, err, sizeof(err)));
}

static void
test_url(void)
{
	CHECK("url host only", url("auth.example") == 0 &&
	    strcmp(au.host, "auth.example") == 0 && au.port == 80 &&
	    !au.https && au.unix_path[0] == '\0' &&
	    strcmp(au.curl_url, "http://auth.example:80/") == 0 &&
	    strcmp(au.url, "auth.example") == 0);
	CHECK("url host port uri", url("127.0.0.1:8080/auth") == 0 &&
	    strcmp(au.host, "127.0.0.1") == 0 && au.port == 8080 &&
	    strcmp(au.curl_url, "http://127.0.0.1:8080/auth") == 0);
	CHECK("url host uri default port", url("localhost/a/b") == 0 &&
	    au.port == 80 &&
	    strcmp(au.curl_url, "http://localhost:80/a/b") == 0);
	CHECK("url http scheme", url("http://auth:9000/mail?x=1") == 0 &&
	    strcmp(au.host, "auth") == 0 && au.port == 9000 && !au.https &&
	    strcmp(au.curl_url, "http://auth:9000/mail?x=1") == 0);
	CHECK("url query without path", url("auth:81?x") == 0 &&
	    strcmp(au.curl_url, "http://auth:81/?x") == 0);
	CHECK("url https default port", url("https://auth/check") == 0 &&
	    au.https && au.port == 443 &&
	    strcmp(au.curl_url, "https://auth:443/check") == 0);
	CHECK("url https explicit port", url("https://auth:8443") == 0 &&
	    au.https && au.port == 8443 &&
	    strcmp(au.curl_url, "https://auth:8443/") == 0);
	CHECK("url unix with uri", url("unix:/run/auth.sock:/auth") == 0 &&
	    strcmp(au.unix_path, "/run/auth.sock") == 0 &&
	    strcmp(au.host, "localhost") == 0 &&
	    strcmp(au.curl_url, "http://localhost/auth") == 0);
	CHECK("url unix without uri", url("unix:/run/auth.sock") == 0 &&
	    strcmp(au.unix_path, "/run/auth.sock") == 0 &&
	    strcmp(au.curl_url, "http://localhost/") == 0);
	CHECK("url ipv6 port uri", url("[::1]:8080/auth") == 0 &&
	    strcmp(au.host, "::1") == 0 && au.port == 8080 &&
	    strcmp(au.curl_url, "http://[::1]:8080/auth") == 0);
	CHECK("url ipv6 http default port", url("http://[2001:db8::5]") == 0 &&
	    strcmp(au.host, "2001:db8::5") == 0 && au.port == 80 &&
	    strcmp(au.curl_url, "http://[2001:db8::5]:80/") == 0);

	CHECK("url error empty", url("") == -1 && err[0] != '\0');
	CHECK("url error no host", url("http:///auth") == -1);
	CHECK("url error port 0", url("auth:0/x") == -1 &&
	    strcmp(err, "invalid port") == 0);
	CHECK("url error port 65536", url("auth:65536") == -1);
	CHECK("url error port text", url("auth:http/x") == -1);
	CHECK("url error empty port", url("auth:/x") == -1);
	CHECK("url error scheme", url("ftp://auth/x") == -1 &&
	    strcmp(err, "unsupported url scheme") == 0);
	CHECK("url error ipv6 no bracket", url("[::1:80/x") == -1);
	CHECK("url error ipv6 bad", url("[zz::1]:80") == -1);
	CHECK("url error ipv6 trailing", url("[::1]x/y") == -1);
	CHECK("url error host chars", url("us@er:80/x") == -1);
	CHECK("url error unix empty", url("unix::/x") == -1);
	CHECK("url error unix path too long", url("unix:/aaaaaaaaaaaaaaaaaaaaa"
	    "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa"
	    "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa:/x") == -1);
	CHECK("url error unix relative uri", url("unix:/s:auth") == -1);
	CHECK("url error control in uri", url("auth/a\tb") == -1);
}

static int
esc(const char *in, size_t len, const char *want)
{
	char	 buf[128];
	int	 n;

	n = authhttp_escape(buf, sizeof(buf), in, len);
	return (n == (int)strlen(want) && strcmp(buf, want) == 0);
}

static void
test_escape(void)
{
	char	 small[4];

	CHECK("escape plain", esc("user", 4, "user"));
	CHECK("escape space", esc("a b", 3, "a%20b"));
	CHECK("escape percent", esc("50%", 3, "50%25"));
	CHECK("escape crlf", esc("a\r\nb", 4, "a%0D%0Ab"));
	CHECK("escape nul and tab", esc("a\0\t", 3, "a%00%09"));
	CHECK("escape plus untouched", esc("a+b", 3, "a+b"));
	CHECK("escape quote and del untouched", esc("\"\x7f", 2, "\"\x7f"));
	CHECK("escape 8-bit untouched", esc("\xc3\xa9", 2, "\xc3\xa9"));
	CHECK("escape too small", authhttp_escape(small, sizeof(small),
	    "a b", 3) == -1);
	CHECK("escape exact fit", authhttp_escape(small, sizeof(small),
	    "abc", 3) == 3);
	CHECK("escape empty", esc("", 0, ""));
}

static struct authhttp_reply	 r;
static struct auth_result	 res;

/* feed lines (NULL terminated) as libcurl would, then decide */
static int
reply(int needpass, ...)
{
	va_list		 ap;
	const char	*l;
	int		 rv = 0;

	authhttp_reply_init(&r);
	memset(&res, 0, sizeof(res));
	va_start(ap, needpass);
	while ((l = va_arg(ap, const char *)) != NULL)
		if (authhttp_parse_header(&r, l, strlen(l)) == -1)
			rv = -1;
	va_end(ap);
	if (rv == -1)
		return (-100);
	return (authhttp_finish(&r, needpass, &res));
}

static int
server_is(const char *addr, int port)
{
	struct sockaddr_in	*sin = (struct sockaddr_in *)&res.server;
	struct sockaddr_in6	*sin6 = (struct sockaddr_in6 *)&res.server;
	char			 buf[INET6_ADDRSTRLEN];

	if (res.server.ss_family == AF_INET) {
		inet_ntop(AF_INET, &sin->sin_addr, buf, sizeof(buf));
		return (res.server_len == sizeof(*sin) &&
		    ntohs(sin->sin_port) == port && strcmp(buf, addr) == 0);
	}
	if (res.server.ss_family == AF_INET6) {
		inet_ntop(AF_INET6, &sin6->sin6_addr, buf, sizeof(buf));
		return (res.server_len == sizeof(*sin6) &&
		    ntohs(sin6->sin6_port) == port && strcmp(buf, addr) == 0);
	}
	return (0);
}

static void
test_reply_ok(void)
{
	CHECK("reply ok server port", reply(0, "HTTP/1.0 200 OK\r\n",
	    "Auth-Status: OK\r\n", "Auth-Server: 127.0.0.1\r\n",
	    "Auth-Port: 143\r\n", "\r\n", NULL) == AUTH_STATUS_OK &&
	    res.status == AUTH_STATUS_OK && server_is("127.0.0.1", 143) &&
	    !res.user_set && !res.pass_set);
	CHECK("reply ok ipv6 server", reply(0, "Auth-Status: OK\r\n",
	    "Auth-Server: ::1\r\n", "Auth-Port: 10143\r\n", NULL) ==
	    AUTH_STATUS_OK && server_is("::1", 10143));
	CHECK("reply ok status code ignored", reply(0,
	    "HTTP/1.1 500 Internal\r\n", "Auth-Status: OK\r\n",
	    "Auth-Server: 10.0.0.1\r\n", "Auth-Port: 1\r\n", NULL) ==
	    AUTH_STATUS_OK && server_is("10.0.0.1", 1));
	CHECK("reply ok port 65535", reply(0, "Auth-Status: OK\r\n",
	    "Auth-Server: 10.0.0.1\r\n", "Auth-Port: 65535\r\n", NULL) ==
	    AUTH_STATUS_OK);
	CHECK("reply ok hostname is unavailable", reply(0,
	    "Auth-Status: OK\r\n",
	    "Auth-Server: imap.example\r\n", "Auth-Port: 143\r\n", NULL) ==
	    AUTH_STATUS_UNAVAILABLE && res.status == AUTH_STATUS_UNAVAILABLE &&
	    strstr(r.error, "invalid Auth-Server address") != NULL);
	CHECK("reply ok missing port", reply(0, "Auth-Status: OK\r\n",
	    "Auth-Server: 127.0.0.1\r\n", NULL) == AUTH_STATUS_UNAVAILABLE &&
	    strcmp(r.error, "did not send server or port") == 0);
	CHECK("reply ok missing server", reply(0, "Auth-Status: OK\r\n",
	    "Auth-Port: 143\r\n", NULL) == AUTH_STATUS_UNAVAILABLE);
	CHECK("reply ok port 0", reply(0, "Auth-Status: OK\r\n",
	    "Auth-Server: 127.0.0.1\r\n", "Auth-Port: 0\r\n", NULL) ==
	    AUTH_STATUS_UNAVAILABLE &&
	    strstr(r.error, "invalid Auth-Port") != NULL);
	CHECK("reply ok port 65536", reply(0, "Auth-Status: OK\r\n",
	    "Auth-Server: 127.0.0.1\r\n", "Auth-Port: 65536\r\n", NULL) ==
	    AUTH_STATUS_UNAVAILABLE);
	CHECK("reply ok user pass override", reply(0, "Auth-Status: OK\r\n",
	    "Auth-Server: 127.0.0.1\r\n", "Auth-Port: 143\r\n",
	    "Auth-User: backend%20user\r\n", "Auth-Pass: s3cr+t \r\n", NULL) ==
	    AUTH_STATUS_OK && res.user_set && res.pass_set &&
	    strcmp(r.user, "backend%20user") == 0 &&
	    strcmp(r.pass, "s3cr+t") == 0);
	CHECK("reply ok empty pass is set", reply(1, "Auth-Status: OK\r\n",
	    "Auth-Server: 127.0.0.1\r\n", "Auth-Port: 143\r\n",
	    "Auth-Pass:\r\n", NULL) == AUTH_STATUS_OK && res.pass_set &&
	    r.pass[0] == '\0');
	CHECK("reply needpass without pass", reply(1, "Auth-Status: OK\r\n",
	    "Auth-Server: 127.0.0.1\r\n", "Auth-Port: 143\r\n", NULL) ==
	    AUTH_STATUS_UNAVAILABLE &&
	    strcmp(r.error, "did not send password") == 0);
	CHECK("reply needpass with pass", reply(1, "Auth-Status: OK\r\n",
	    "Auth-Server: 127.0.0.1\r\n", "Auth-Port: 143\r\n",
	    "Auth-Pass: x\r\n", NULL) == AUTH_STATUS_OK);
	CHECK("reply without status line", reply(0, "Auth-Status: OK",
	    "Auth-Server: 127.0.0.1", "Auth-Port: 143", NULL) ==
	    AUTH_STATUS_OK);
}

/* the port of backend i of the answer */
static int
backend_port(int i)
{
	const struct sockaddr_storage	*ss = &r.backends.ss[i];

	if (ss->ss_family == AF_INET)
		return (ntohs(((const struct sockaddr_in *)ss)->sin_port));
	if (ss->ss_family == AF_INET6)
		return (ntohs(((const struct sockaddr_in6 *)ss)->sin6_port));
	return (-1);
}

/* repeated Auth-Server/Auth-Port: the backends to try, in order */
static void
test_reply_backends(void)
{
	CHECK("reply one backend", reply(0, "Auth-Status: OK\r\n",
	    "Auth-Server: 127.0.0.1\r\n", "Auth-Port: 143\r\n", NULL) ==
	    AUTH_STATUS_OK && r.backends.n == 1 && backend_port(0) == 143);
	CHECK("reply two backends in order", reply(0, "Auth-Status: OK\r\n",
	    "Auth-Server: 127.0.0.2\r\n", "Auth-Port: 1143\r\n",
	    "Auth-Server: ::1\r\n", "Auth-Port: 2143\r\n", NULL) ==
	    AUTH_STATUS_OK && r.backends.n == 2 &&
	    server_is("127.0.0.2", 1143) && backend_port(0) == 1143 &&
	    r.backends.ss[1].ss_family == AF_INET6 &&
	    backend_port(1) == 2143);
	CHECK("reply servers first then ports", reply(0,
	    "Auth-Status: OK\r\n", "Auth-Server: 10.0.0.1\r\n",
	    "Auth-Server: 10.0.0.2\r\n", "Auth-Server: 10.0.0.3\r\n",
	    "Auth-Port: 1\r\n", "Auth-Port: 2\r\n", "Auth-Port: 3\r\n",
	    NULL) == AUTH_STATUS_OK && r.backends.n == 3 &&
	    backend_port(0) == 1 && backend_port(1) == 2 &&
	    backend_port(2) == 3);
	CHECK("reply one port for every server", reply(0,
	    "Auth-Status: OK\r\n", "Auth-Server: 10.0.0.1\r\n",
	    "Auth-Server: 10.0.0.2\r\n", "Auth-Port: 993\r\n", NULL) ==
	    AUTH_STATUS_OK && r.backends.n == 2 && backend_port(0) == 993 &&
	    backend_port(1) == 993);
	CHECK("reply port count differs", reply(0, "Auth-Status: OK\r\n",
	    "Auth-Server: 10.0.0.1\r\n", "Auth-Server: 10.0.0.2\r\n",
	    "Auth-Server: 10.0.0.3\r\n", "Auth-Port: 1\r\n",
	    "Auth-Port: 2\r\n", NULL) == AUTH_STATUS_UNAVAILABLE &&
	    strcmp(r.error, "Auth-Port count differs from Auth-Server's") ==
	    0 && r.backends.n == 0);
	CHECK("reply a bad second backend", reply(0, "Auth-Status: OK\r\n",
	    "Auth-Server: 10.0.0.1\r\n", "Auth-Server: mail.example\r\n",
	    "Auth-Port: 143\r\n", NULL) == AUTH_STATUS_UNAVAILABLE &&
	    r.backends.n == 0);
	CHECK("reply eight backends", reply(0, "Auth-Status: OK\r\n",
	    "Auth-Server: 10.0.0.1\r\n", "Auth-Server: 10.0.0.2\r\n",
	    "Auth-Server: 10.0.0.3\r\n", "Auth-Server: 10.0.0.4\r\n",
	    "Auth-Server: 10.0.0.5\r\n", "Auth-Server: 10.0.0.6\r\n",
	    "Auth-Server: 10.0.0.7\r\n", "Auth-Server: 10.0.0.8\r\n",
	    "Auth-Port: 143\r\n", NULL) == AUTH_STATUS_OK &&
	    r.backends.n == 8);
	CHECK("reply nine backends", reply(0, "Auth-Status: OK\r\n",
	    "Auth-Server: 10.0.0.1\r\n", "Auth-Server: 10.0.0.2\r\n",
	    "Auth-Server: 10.0.0.3\r\n", "Auth-Server: 10.0.0.4\r\n",
	    "Auth-Server: 10.0.0.5\r\n", "Auth-Server: 10.0.0.6\r\n",
	    "Auth-Server: 10.0.0.7\r\n", "Auth-Server: 10.0.0.8\r\n",
	    "Auth-Server: 10.0.0.9\r\n", "Auth-Port: 143\r\n", NULL) ==
	    -100 && strcmp(r.error, "too many backends in response") == 0);
}

static void
test_reply_other(void)
{
	char	 big[600];

	CHECK("reply wait", reply(0, "Auth-Status: WAIT\r\n",
	    "Auth-Wait: 3\r\n", NULL) == -2 && res.wait == 3);
	CHECK("reply wait immediately", reply(0, "Auth-Status: WAIT\r\n",
	    NULL) == -2 && res.wait == 0);
	CHECK("reply failure text and wait", reply(0,
	    "Auth-Status: [AUTHENTICATIONFAILED] Invalid login\r\n",
	    "Auth-Wait: 2\r\n", NULL) == AUTH_STATUS_FAIL &&
	    res.status == AUTH_STATUS_FAIL && res.wait == 2 &&
	    strcmp(r.status, "[AUTHENTICATIONFAILED] Invalid login") == 0);
	CHECK("reply failure without wait", reply(0,
	    "Auth-Status: Invalid login\r\n", NULL) == AUTH_STATUS_FAIL &&
	    res.wait == 0);
	CHECK("reply status ok is case sensitive", reply(0,
	    "Auth-Status: ok\r\n", "Auth-Server: 127.0.0.1\r\n",
	    "Auth-Port: 143\r\n", NULL) == AUTH_STATUS_FAIL);
	CHECK("reply bad wait ignored", reply(0, "Auth-Status: no\r\n",
	    "Auth-Wait: soon\r\n", NULL) == AUTH_STATUS_FAIL && res.wait == 0);
	CHECK("reply missing status", reply(0, "HTTP/1.0 200 OK\r\n",
	    "Auth-Server: 127.0.0.1\r\n", "\r\n", NULL) ==
	    AUTH_STATUS_UNAVAILABLE && r.error[0] != '\0');
	CHECK("reply invalid header char", reply(0, "Auth_Status: OK\r\n",
	    NULL) == -100 &&
	    strcmp(r.error, "invalid header in response") == 0);
	CHECK("reply header without colon", reply(0, "Garbage\r\n", NULL) ==
	    -100);
	CHECK("reply folded header", reply(0, "Auth-Status: x\r\n",
	    " continued\r\n", NULL) == -100);
	CHECK("reply cr in value", reply(0, "Auth-Status: a\rb\r\n", NULL) ==
	    -100);
	CHECK("reply error sticks", reply(0, "Bad Header: x\r\n",
	    "Auth-Status: OK\r\n", NULL) == -100 &&
	    authhttp_finish(&r, 0, &res) == AUTH_STATUS_UNAVAILABLE);
	CHECK("reply header names case-insensitive", reply(0,
	    "AUTH-STATUS: OK\r\n", "auth-server: 127.0.0.1\r\n",
	    "aUtH-pOrT: 143\r\n", "auth-user: bob\r\n", NULL) ==
	    AUTH_STATUS_OK && res.user_set && strcmp(r.user, "bob") == 0);
	CHECK("reply unknown headers ignored", reply(0, "X-Foo: bar\r\n",
	    "Content-Length: 0\r\n", "Auth-Status: nope\r\n", NULL) ==
	    AUTH_STATUS_FAIL);
	CHECK("reply value trimmed", reply(0, "Auth-Status:   OK  \r\n",
	    "Auth-Server:\t127.0.0.1\r\n", "Auth-Port: 143 \r\n", NULL) ==
	    AUTH_STATUS_OK);

	/* Auth-Status holds 511 bytes */
	memcpy(big, "Auth-Status: ", 13);
	memset(big + 13, 'x', sizeof(big) - 14);
	big[sizeof(big) - 1] = '\0';
	authhttp_reply_init(&r);
	CHECK("reply value too long", authhttp_parse_header(&r, big,
	    strlen(big)) == -1 && strstr(r.error, "too long") != NULL);

	memcpy(big, "X-Padding: ", 11);
	CHECK("reply oversize", reply(0, big, big, big, big, big, big, big,
	    big, big, big, big, big, big, big, big, big, big, big, big, big,
	    big, big, big, big, big, big, big, big, "Auth-Status: OK\r\n",
	    NULL) == -100 && strcmp(r.error, "response too long") == 0 &&
	    r.total > AUTHHTTP_MAX_RESPONSE);
	CHECK("reply oversize then finish", authhttp_finish(&r, 0, &res) ==
	    AUTH_STATUS_UNAVAILABLE);
}

/* Auth-Proxy-SSL and Auth-Proxy-SSL-Name: TLS to the backend per user */
static void
test_proxy_ssl(void)
{
	CHECK("proxy ssl unset", reply(0, "Auth-Status: OK\r\n",
	    "Auth-Server: 127.0.0.1\r\n", "Auth-Port: 143\r\n", NULL) ==
	    AUTH_STATUS_OK && res.proxy_ssl == 0 &&
	    res.proxy_ssl_name[0] == '\0');
	CHECK("proxy ssl on with name", reply(0, "Auth-Status: OK\r\n",
	    "Auth-Server: 127.0.0.1\r\n", "Auth-Port: 993\r\n",
	    "Auth-Proxy-SSL: on\r\n", "Auth-Proxy-SSL-Name: imap.example\r\n",
	    NULL) == AUTH_STATUS_OK && res.proxy_ssl == PTLS_ON + 1 &&
	    strcmp(res.proxy_ssl_name, "imap.example") == 0);
	CHECK("proxy ssl starttls, case-insensitive", reply(0,
	    "Auth-Status: OK\r\n", "Auth-Server: 127.0.0.1\r\n",
	    "Auth-Port: 143\r\n", "auth-proxy-ssl: STARTTLS\r\n", NULL) ==
	    AUTH_STATUS_OK && res.proxy_ssl == PTLS_STARTTLS + 1);
	CHECK("proxy ssl off", reply(0, "Auth-Status: OK\r\n",
	    "Auth-Server: 127.0.0.1\r\n", "Auth-Port: 143\r\n",
	    "Auth-Proxy-SSL: off\r\n", NULL) == AUTH_STATUS_OK &&
	    res.proxy_ssl == PTLS_OFF + 1);
	CHECK("proxy ssl bad value", reply(0, "Auth-Status: OK\r\n",
	    "Auth-Server: 127.0.0.1\r\n", "Auth-Port: 143\r\n",
	    "Auth-Proxy-SSL: yes\r\n", NULL) == -100 &&
	    strstr(r.error, "Auth-Proxy-SSL") != NULL);
	CHECK("proxy ssl name bad chars", reply(0,
	    "Auth-Proxy-SSL-Name: a b\r\n", NULL) == -100);
	CHECK("proxy ssl name empty", reply(0,
	    "Auth-Proxy-SSL-Name:\r\n", NULL) == -100);
	CHECK("proxy ssl not on a refusal", reply(0,
	    "Auth-Status: wrong\r\n", "Auth-Proxy-SSL: on\r\n", NULL) ==
	    AUTH_STATUS_FAIL && res.proxy_ssl == 0);
}

int
main(void)
{
	test_url();
	test_escape();
	test_reply_ok();
	test_reply_backends();
	test_reply_other();
	test_proxy_ssl();
	UNIT_EXIT();
}
