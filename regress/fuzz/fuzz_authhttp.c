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
 * libFuzzer target for authhttp.c.  The input is an auth service's
 * response: split into lines as libcurl's header callback hands them
 * over (each with its LF), parsed, then decided on.  The same bytes are
 * also tried as an auth_http URL from the configuration and as a user
 * name or password to escape.
 */

#include <sys/types.h>
#include <sys/socket.h>

#include <netinet/in.h>

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "imaprelayd.h"
#include "authhttp.h"

int	LLVMFuzzerTestOneInput(const uint8_t *, size_t);

#define REQUIRE(c)	do { if (!(c)) abort(); } while (0)
#define TERMINATED(a)	(memchr((a), '\0', sizeof(a)) != NULL)

static void
check_reply(const struct authhttp_reply *r)
{
	int	 i;

	REQUIRE(r->nservers >= 0 && r->nservers <= HOST_ADDRS_MAX &&
	    r->nports >= 0 && r->nports <= HOST_ADDRS_MAX);
	for (i = 0; i < HOST_ADDRS_MAX; i++)
		REQUIRE(TERMINATED(r->server[i]) && TERMINATED(r->port[i]));
	REQUIRE(TERMINATED(r->status) && TERMINATED(r->user) &&
	    TERMINATED(r->pass) && TERMINATED(r->error));
	REQUIRE(r->wait <= 86400 && (r->wait_set || r->wait == 0));
}

static void
fuzz_response(const uint8_t *data, size_t size, int needpass)
{
	struct authhttp_reply	 r;
	struct auth_result	 res;
	const uint8_t		*lf;
	size_t			 off = 0, n, total = 0;
	int			 failed = 0, rv;

	authhttp_reply_init(&r);
	while (off < size) {
		lf = memchr(data + off, '\n', size - off);
		n = lf == NULL ? size - off : (size_t)(lf - data) - off + 1;
		rv = authhttp_parse_header(&r, (const char *)data + off, n);
		REQUIRE(rv == 0 || rv == -1);
		if (failed)
			REQUIRE(rv == -1);	/* sticky */
		else
			total += n;
		if (rv == -1) {
			REQUIRE(r.error[0] != '\0');
			failed = 1;
		}
		REQUIRE(r.total == total);
		check_reply(&r);
		off += n;
	}

	memset(&res, 0xa5, sizeof(res));
	rv = authhttp_finish(&r, needpass, &res);
	check_reply(&r);
	switch (rv) {
	case AUTH_STATUS_OK:
		REQUIRE(!failed && res.status == AUTH_STATUS_OK);
		REQUIRE(r.nservers > 0 && r.backends.n == r.nservers &&
		    (r.nports == 1 || r.nports == r.nservers) &&
		    (!needpass || r.pass_set));
		REQUIRE(res.user_set == (uint32_t)r.user_set &&
		    res.pass_set == (uint32_t)r.pass_set);
		if (res.server.ss_family == AF_INET)
			REQUIRE(res.server_len == sizeof(struct sockaddr_in) &&
			    ((struct sockaddr_in *)&res.server)->sin_port != 0);
		else
			REQUIRE(res.server.ss_family == AF_INET6 &&
			    res.server_len == sizeof(struct sockaddr_in6) &&
			    ((struct sockaddr_in6 *)&res.server)->sin6_port
			    != 0);
		break;
	case AUTH_STATUS_FAIL:
		REQUIRE(!failed && res.status == AUTH_STATUS_FAIL &&
		    r.status_set && res.wait <= 86400);
		break;
	case AUTH_STATUS_UNAVAILABLE:
		REQUIRE(res.status == AUTH_STATUS_UNAVAILABLE &&
		    r.error[0] != '\0');
		break;
	case -2:
		REQUIRE(!failed && strcmp(r.status, "WAIT") == 0 &&
		    res.wait <= 86400);
		break;
	default:
		abort();
	}
}

static void
fuzz_url(const uint8_t *data, size_t size)
{
	struct auth_url	 au;
	char		*url, err[128];
	size_t		 i;

	if ((url = malloc(size + 1)) == NULL)
		abort();
	memcpy(url, data, size);
	url[size] = '\0';
	err[0] = '\0';
	if (authhttp_parse_url(url, &au, err, sizeof(err)) == -1)
		REQUIRE(err[0] != '\0' && memchr(err, '\0', sizeof(err)));
	else {
		REQUIRE(TERMINATED(au.url) && TERMINATED(au.curl_url) &&
		    TERMINATED(au.unix_path) && TERMINATED(au.host));
		REQUIRE(strcmp(au.url, url) == 0);
		REQUIRE(au.port >= 1 && au.port <= 65535 &&
		    au.host[0] != '\0');
		REQUIRE(strncmp(au.curl_url, "http://", 7) == 0 ||
		    (au.https && strncmp(au.curl_url, "https://", 8) == 0));
		/* what libcurl gets has no controls and no spaces */
		for (i = 0; au.curl_url[i] != '\0'; i++)
			REQUIRE((unsigned char)au.curl_url[i] > 0x20 &&
			    au.curl_url[i] != 0x7f);
	}
	free(url);
}

static int
hexval(char c)
{
	if (c >= '0' && c <= '9')
		return (c - '0');
	REQUIRE(c >= 'A' && c <= 'F');
	return (c - 'A' + 10);
}

static void
fuzz_escape(const uint8_t *data, size_t size)
{
	char	*dst;
	size_t	 dstlen = 3 * size + 1, i, o;
	int	 n, m;

	if ((dst = malloc(dstlen)) == NULL)
		abort();
	n = authhttp_escape(dst, dstlen, (const char *)data, size);
	REQUIRE(n >= 0 && (size_t)n < dstlen && dst[n] == '\0' &&
	    strlen(dst) == (size_t)n);
	/* nothing a header line could be split on; decodes back */
	for (i = o = 0; i < (size_t)n; o++) {
		REQUIRE(o < size);
		REQUIRE((unsigned char)dst[i] > 0x20);
		if (dst[i] == '%') {
			REQUIRE(i + 2 < (size_t)n);
			REQUIRE(data[o] == (hexval(dst[i + 1]) << 4 |
			    hexval(dst[i + 2])));
			REQUIRE(data[o] <= 0x20 || data[o] == '%');
			i += 3;
		} else {
			REQUIRE(data[o] == (unsigned char)dst[i]);
			i++;
		}
	}
	REQUIRE(o == size);
	/* exactly one byte short: refused */
	m = authhttp_escape(dst, (size_t)n, (const char *)data, size);
	REQUIRE(m == -1);
	free(dst);
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	fuzz_response(data, size, 0);
	fuzz_response(data, size, 1);
	fuzz_url(data, size);
	fuzz_escape(data, size);
	return (0);
}
