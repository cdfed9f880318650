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
 * realip.c: the PROXY protocol in an imap worker, both ways.
 *
 * On a "listen ... proxy_protocol" socket a load balancer's header
 * comes before any byte of the client.  It is read first, never past
 * its own end (what follows is the client's: a TLS ClientHello, or
 * nothing), without blocking, within the server's timeout; a missing,
 * slow or malformed header closes the connection without a word, as
 * nginx does: no IMAP was spoken yet, and a load balancer that speaks
 * no PROXY protocol would relay our BYE to a client that never sent one.
 * The header's source address then stands for the client's -- in
 * Client-IP, the per-address limits (the admission is asked only once
 * it is known), the backend's ID and the logs -- only when the
 * connection comes from a network of set_real_ip_from (nginx's realip
 * module); otherwise the connection's own address is kept.  The auth
 * service hears what the header said either way (Proxy-Protocol-*).
 *
 * With proxy_protocol on (or v2) the worker puts its own header before
 * the first byte to the backend.  The auth process connected that
 * socket, but only the worker knows the client's address after realip
 * and its TLS (version, cipher, SNI: the TLVs of version 2).
 */

#include <sys/types.h>
#include <sys/queue.h>
#include <sys/socket.h>
#include <netinet/in.h>

#include <errno.h>
#include <event.h>
#include <netdb.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "imaprelayd.h"
#include "imap.h"
#include "proxyproto.h"

static void	realip_header(struct session *, const struct pp_info *);
static int	realip_trusted(const struct server_conf *,
		    const struct sockaddr_storage *);
static int	net_match(const struct realip_net *, const uint8_t *, int);
static void	addr_text(const struct sockaddr_storage *, char *, size_t,
		    uint16_t *);

/* the worker is the client's now: its header may take the timeout */
void
realip_start(struct session *s)
{
	conn_take(s);
	if ((s->pp_buf = malloc(PP_HDR_MAX)) == NULL) {
		log_warn(__func__);
		session_close(s, "out of memory");
		return;
	}
	s->pp_len = 0;
	s->state = S_PROXY_HEADER;
	session_timer(s, s->conf->timeout_ms);
	session_update(s);
}

/*
 * The socket is readable.  What came is looked at without taking it
 * (MSG_PEEK); only bytes of the header are then taken, so the client's
 * own first bytes stay in the socket for the session.
 */
void
realip_read(struct session *s)
{
	struct pp_info	 info;
	const char	*why;
	char		 reason[128];
	size_t		 used, take;
	ssize_t		 n;
	int		 r;

	n = recv(s->cfd, s->pp_buf + s->pp_len, PP_HDR_MAX - s->pp_len,
	    MSG_PEEK);
	if (n == -1 && (errno == EAGAIN || errno == EINTR))
		return;
	if (n <= 0) {
		session_close(s, "proxy protocol: closed before the header");
		return;
	}
	r = proxyproto_parse(s->pp_buf, s->pp_len + n, &info, &used, &why);
	if (r == PP_BAD) {
		snprintf(reason, sizeof(reason), "proxy protocol: %s", why);
		session_close(s, reason);
		return;
	}
	take = r == PP_OK ? used - s->pp_len : (size_t)n;
	if (recv(s->cfd, s->pp_buf + s->pp_len, take, 0) != (ssize_t)take) {
		session_close(s, "proxy protocol: read failed");
		return;
	}
	s->pp_len += take;
	if (r == PP_MORE) {
		if (s->pp_len == PP_HDR_MAX)
			session_close(s, "proxy protocol: header too long");
		return;
	}
	freezero(s->pp_buf, PP_HDR_MAX);
	s->pp_buf = NULL;
	realip_header(s, &info);
	conn_admit_ask(s);
}

/* a header came: what it says, and whether to believe it */
static void
realip_header(struct session *s, const struct pp_info *info)
{
	char	 peer[ADDR_STR_LEN];

	/* LOCAL, UNKNOWN: a health check, or no address to speak of */
	if (info->local) {
		log_debug("session=%s: PROXY header without an address, "
		    "client=%s kept", s->id, s->client);
		return;
	}
	s->pp_set = 1;
	addr_text(&info->src, s->pp_addr, sizeof(s->pp_addr), &s->pp_port);
	addr_text(&info->dst, s->pp_server_addr, sizeof(s->pp_server_addr),
	    &s->pp_server_port);
	if (!realip_trusted(s->conf, &s->client_ss)) {
		log_info("session=%s: PROXY header from client=%s, not in "
		    "set_real_ip_from: its own address is used (the header "
		    "says %s)", s->id, s->client, s->pp_addr);
		return;
	}
	strlcpy(peer, s->client, sizeof(peer));
	memcpy(&s->client_ss, &info->src, sizeof(s->client_ss));
	sockaddr_str((struct sockaddr *)&s->client_ss, s->client,
	    sizeof(s->client));
	strlcpy(s->client_ip, s->pp_addr, sizeof(s->client_ip));
	s->client_port = s->pp_port;
	log_debug("session=%s: client=%s by PROXY header of %s", s->id,
	    s->client, peer);
}

/* the text of an address without its port, and the port */
static void
addr_text(const struct sockaddr_storage *ss, char *buf, size_t len,
    uint16_t *port)
{
	socklen_t	 sl;

	sl = ss->ss_family == AF_INET6 ? sizeof(struct sockaddr_in6) :
	    sizeof(struct sockaddr_in);
	if (getnameinfo((const struct sockaddr *)ss, sl, buf, len, NULL, 0,
	    NI_NUMERICHOST) != 0)
		strlcpy(buf, "unknown", len);
	if (ss->ss_family == AF_INET6)
		*port = ntohs(((const struct sockaddr_in6 *)ss)->sin6_port);
	else
		*port = ntohs(((const struct sockaddr_in *)ss)->sin_port);
}

/* set_real_ip_from: is the connection's own address one to believe? */
static int
realip_trusted(const struct server_conf *conf,
    const struct sockaddr_storage *ss)
{
	const struct sockaddr_in6	*sin6;
	const struct sockaddr_in	*sin;
	const uint8_t			*a;
	unsigned int			 i;
	int				 family = ss->ss_family;

	if (family == AF_INET) {
		sin = (const struct sockaddr_in *)ss;
		a = (const uint8_t *)&sin->sin_addr;
	} else if (family == AF_INET6) {
		sin6 = (const struct sockaddr_in6 *)ss;
		a = sin6->sin6_addr.s6_addr;
		/* an IPv4 client on an IPv6 socket is an IPv4 one */
		if (IN6_IS_ADDR_V4MAPPED(&sin6->sin6_addr)) {
			family = AF_INET;
			a += 12;
		}
	} else
		return (0);
	for (i = 0; i < conf->nrealip; i++)
		if (net_match(&conf->realip[i], a, family))
			return (1);
	return (0);
}

static int
net_match(const struct realip_net *net, const uint8_t *a, int family)
{
	unsigned int	 full = net->prefix / 8, rest = net->prefix % 8;
	uint8_t		 mask;

	if (net->family != family)
		return (0);
	if (memcmp(net->addr, a, full) != 0)
		return (0);
	if (rest == 0)
		return (1);
	mask = 0xff << (8 - rest);
	return ((a[full] & mask) == net->addr[full]);
}

/* listen ... proxy_protocol: what the auth service is told */
void
realip_request(struct session *s, struct auth_request *req)
{
	if (!s->pp_set)
		return;
	req->flags |= AUTH_REQ_PP;
	strlcpy(req->pp_addr, s->pp_addr, sizeof(req->pp_addr));
	req->pp_port = s->pp_port;
	strlcpy(req->pp_server_addr, s->pp_server_addr,
	    sizeof(req->pp_server_addr));
	req->pp_server_port = s->pp_server_port;
}

/*
 * proxy_protocol on | v2: our header, the first bytes to the backend,
 * in one send as nginx (a fresh socket has room for it).  The source
 * is the client (after realip), the destination the address it
 * reached here.  0: sent or not wanted; -1: why says why.
 */
int
realip_backend(struct session *s, const char **why)
{
	struct pp_info		 info;
	struct sockaddr_storage	 local;
	socklen_t		 len = sizeof(local);
	unsigned char		 buf[PP_HDR_MAX];
	const char		*sni;
	int			 n;

	*why = NULL;
	if (s->conf->proxy_protocol == PROXY_PROTOCOL_OFF)
		return (0);
	if (getsockname(s->cfd, (struct sockaddr *)&local, &len) == -1) {
		*why = "PROXY header: no local address";
		return (-1);
	}
	if (s->conf->proxy_protocol == PROXY_PROTOCOL_V1)
		n = proxyproto_v1((char *)buf, sizeof(buf),
		    (struct sockaddr *)&s->client_ss,
		    (struct sockaddr *)&local);
	else {
		memset(&info, 0, sizeof(info));
		if (s->tls_state == TLSS_ON) {
			info.ssl = 1;
			ctls_info(s, info.ssl_version, sizeof(info.ssl_version),
			    info.ssl_cipher, sizeof(info.ssl_cipher));
			if ((sni = ctls_servername(s)) != NULL)
				strlcpy(info.authority, sni,
				    sizeof(info.authority));
		}
		n = proxyproto_v2(buf, sizeof(buf),
		    (struct sockaddr *)&s->client_ss,
		    (struct sockaddr *)&local, &info);
	}
	if (n == -1) {
		*why = "PROXY header: no address family it can carry";
		return (-1);
	}
	if (send(s->bfd, buf, n, MSG_NOSIGNAL) != n) {
		*why = "PROXY header not sent in one piece";
		return (-1);
	}
	return (0);
}
