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
 * libFuzzer target for the imsg framing (src/compat) and config_recv.
 * The input is what a peer writes on a channel: it goes through a
 * socketpair into imsgbuf_read, set up as proc_channel sets up every
 * channel, and the messages imsg_get hands out are compared with a
 * straightforward reading of the same bytes.
 *
 * Messages of the configuration types that are well formed as far as
 * config_recv checks them go to config_recv.  The others it would
 * refuse with fatalx: a peer process is trusted code, and a daemon that
 * exits on a broken peer is what we want, but not here.  What is left
 * to fuzz is their content: strings that are not terminated, odd
 * numbers.  The length checks of auth.c and imap.c on IMSG_AUTH_*
 * are static there and not reached from here.
 *
 * FUZZ_IMSG_SEEDS=dir writes seed inputs into dir and exits.
 */

#include <sys/types.h>
#include <sys/socket.h>
#include <sys/queue.h>

#include <netinet/in.h>

#include <errno.h>
#include <fcntl.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "imaprelayd.h"

int	LLVMFuzzerInitialize(int *, char ***);
int	LLVMFuzzerTestOneInput(const uint8_t *, size_t);

#define REQUIRE(c)	do { if (!(c)) abort(); } while (0)
#define TERMINATED(a)	(memchr((a), '\0', sizeof(a)) != NULL)

#define MAXSIZE		(256 * 1024)	/* as proc_channel sets it */
#define FD_MARK		0x80000000U

/* proxy_pass's addresses as config_recv accepts them */
static int
addrs_ok(const struct host_addrs *ha)
{
	int	 i;

	if (ha->n < 0 || ha->n > HOST_ADDRS_MAX)
		return (0);
	for (i = 0; i < ha->n; i++)
		if (ha->len[i] > sizeof(ha->ss[i]))
			return (0);
	return (1);
}

/* config_recv's own refusals, checked first so it never exits */
static int
cfg_acceptable(struct config *conf, struct imsg *imsg)
{
	size_t			 len = imsg_get_len(imsg);
	struct server_conf	 srv, *sp;
	struct auth_header	 h;
	struct listen_conf	 lc;
	uint32_t		 id;

	switch (imsg_get_type(imsg)) {
	case IMSG_CFG_GLOBAL:
		return (len == sizeof(struct config));
	case IMSG_CFG_SERVER:
		if (len != sizeof(srv))
			return (0);
		memcpy(&srv, imsg->data, sizeof(srv));
		return (config_server_byid(conf, srv.id) == NULL &&
		    addrs_ok(&srv.proxy_pass));
	case IMSG_CFG_AUTH_HEADER:
		if (len != sizeof(h))
			return (0);
		memcpy(&h, imsg->data, sizeof(h));
		return (config_server_byid(conf, h.server_id) != NULL);
	case IMSG_CFG_LISTEN:
		if (len != sizeof(lc))
			return (0);
		memcpy(&lc, imsg->data, sizeof(lc));
		return (config_server_byid(conf, lc.server_id) != NULL &&
		    lc.sslen <= sizeof(lc.ss));
	case IMSG_CFG_LOG:
		if (len != sizeof(id))
			return (0);
		memcpy(&id, imsg->data, sizeof(id));
		return (id == 0 || ((sp = config_server_byid(conf, id)) !=
		    NULL && sp->error_log_set));
	case IMSG_CFG_DONE:
		return (len == 0);
	default:
		return (0);
	}
}

static void
check_config(struct config *conf)
{
	struct server_conf	*srv;
	struct auth_header	*h;
	struct listen_conf	*lc;

	REQUIRE(TERMINATED(conf->user) && TERMINATED(conf->error_log.file) &&
	    TERMINATED(conf->error_log.tag) && conf->error_log.fd == -1 &&
	    TERMINATED(conf->pid));
	TAILQ_FOREACH(srv, &conf->servers, entry) {
		REQUIRE(TERMINATED(srv->server_name) &&
		    TERMINATED(srv->imap_capabilities) &&
		    TERMINATED(srv->proxy_pass_name) &&
		    TERMINATED(srv->auth_http.url) &&
		    TERMINATED(srv->auth_http.curl_url) &&
		    TERMINATED(srv->auth_http.unix_path) &&
		    TERMINATED(srv->auth_http.host) &&
		    TERMINATED(srv->auth_http.addrs));
		REQUIRE(addrs_ok(&srv->proxy_pass));
		REQUIRE(TERMINATED(srv->error_log.file) &&
		    TERMINATED(srv->error_log.syslog_server) &&
		    srv->error_log.fd == -1);
		TAILQ_FOREACH(h, &srv->auth_headers, entry)
			REQUIRE(TERMINATED(h->name) && TERMINATED(h->value));
	}
	TAILQ_FOREACH(lc, &conf->listens, entry) {
		REQUIRE(config_server_byid(conf, lc->server_id) != NULL);
		REQUIRE(TERMINATED(lc->name) && lc->sslen <= sizeof(lc->ss) &&
		    lc->fd == -1 && lc->file == NULL);
	}
}

/*
 * The reference reading of the stream: the next message at *off, 1 if
 * one is complete, 0 if the bytes end inside it, -1 if its header is
 * one the reader must refuse.
 */
static int
ref_next(const uint8_t *data, size_t size, size_t *off, struct imsg_hdr *hdr)
{
	uint32_t	 len;

	if (size - *off < sizeof(*hdr))
		return (0);
	memcpy(hdr, data + *off, sizeof(*hdr));
	len = hdr->len & ~FD_MARK;
	if (len < sizeof(*hdr) || len > MAXSIZE + sizeof(*hdr))
		return (-1);
	if (size - *off < len)
		return (0);
	*off += len;
	return (1);
}

static void
check_msg(const uint8_t *data, size_t size, size_t *refoff,
    struct imsg *imsg, ssize_t n)
{
	struct imsg_hdr	 hdr;
	size_t		 start = *refoff, len = imsg_get_len(imsg);
	unsigned char	 c[2];

	REQUIRE(ref_next(data, size, refoff, &hdr) == 1);
	REQUIRE(n > 0 && (size_t)n == len + sizeof(hdr) &&
	    (size_t)n == *refoff - start);
	REQUIRE(imsg_get_type(imsg) == hdr.type &&
	    imsg_get_id(imsg) == hdr.peerid &&
	    imsg_get_pid(imsg) == (pid_t)hdr.pid);
	REQUIRE(len == 0 ? imsg->data == NULL :
	    memcmp(imsg->data, data + start + sizeof(hdr), len) == 0);
	/* nothing was passed, whatever the header claims */
	REQUIRE(imsg_get_fd(imsg) == -1);
	/* the exact length or nothing */
	if (len > 0)
		REQUIRE(imsg_get_data(imsg, c, len == 1 ? 2 : 1) == -1 &&
		    errno == EBADMSG);
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct imsgbuf	 ibuf;
	struct imsg	 imsg;
	struct imsg_hdr	 hdr;
	struct config	*conf;
	size_t		 woff = 0, refoff = 0;
	ssize_t		 w, n;
	int		 sp[2], r = 1, shut = 0, expect, rounds = 0;

	if (socketpair(AF_UNIX, SOCK_STREAM, 0, sp) == -1)
		abort();
	if (fcntl(sp[0], F_SETFL, O_NONBLOCK) == -1 ||
	    fcntl(sp[1], F_SETFL, O_NONBLOCK) == -1)
		abort();
	if (imsgbuf_init(&ibuf, sp[1]) == -1 ||
	    imsgbuf_set_maxsize(&ibuf, MAXSIZE) == -1)
		abort();
	imsgbuf_allow_fdpass(&ibuf);
	conf = config_new();

	while (r == 1) {
		REQUIRE(++rounds < 1000000);
		if (woff < size) {
			w = write(sp[0], data + woff, size - woff);
			REQUIRE(w > 0 || (w == -1 && errno == EAGAIN));
			if (w > 0)
				woff += w;
		}
		if (woff == size && !shut) {
			shutdown(sp[0], SHUT_WR);
			shut = 1;
		}
		r = imsgbuf_read(&ibuf);
		REQUIRE(r == 1 || r == 0 || (r == -1 && errno == ERANGE));
		while ((n = imsg_get(&ibuf, &imsg)) != 0) {
			check_msg(data, size, &refoff, &imsg, n);
			if (cfg_acceptable(conf, &imsg)) {
				config_recv(conf, &imsg);
				check_config(conf);
			}
			imsg_free(&imsg);
		}
	}
	/* the reader stopped where the reference reading stops */
	expect = ref_next(data, size, &refoff, &hdr);
	REQUIRE(r == 0 ? expect == 0 : expect == -1);

	config_free(conf);
	imsgbuf_clear(&ibuf);
	close(sp[0]);
	close(sp[1]);
	return (0);
}

/* seeds: what the parent really sends, framed by imsg_compose */

static void
seed_write(const char *dir, const char *name, struct imsgbuf *wb, int rfd)
{
	char	 path[1024], buf[65536];
	ssize_t	 n;
	FILE	*fp;

	while (imsgbuf_queuelen(wb) > 0)
		if (imsgbuf_write(wb) == -1)
			abort();
	snprintf(path, sizeof(path), "%s/%s", dir, name);
	if ((fp = fopen(path, "w")) == NULL)
		abort();
	while ((n = read(rfd, buf, sizeof(buf))) > 0)
		fwrite(buf, n, 1, fp);
	fclose(fp);
}

static void
seeds(const char *dir)
{
	struct imsgbuf		 wb;
	struct config		*conf = config_new();
	struct server_conf	*srv = config_server_new(conf), s;
	struct auth_header	 h;
	struct listen_conf	 lc;
	struct sockaddr_in	*sin = (struct sockaddr_in *)&lc.ss;
	struct config		 c;
	uint32_t		 id = 7;
	int			 sp[2];

	if (socketpair(AF_UNIX, SOCK_STREAM, 0, sp) == -1 ||
	    fcntl(sp[1], F_SETFL, O_NONBLOCK) == -1 ||
	    imsgbuf_init(&wb, sp[0]) == -1 ||
	    imsgbuf_set_maxsize(&wb, MAXSIZE) == -1)
		abort();
	c = *conf;
	memset(&c.servers, 0, sizeof(c.servers));
	memset(&c.listens, 0, sizeof(c.listens));
	s = *srv;
	memset(&s.entry, 0, sizeof(s.entry));
	memset(&s.auth_headers, 0, sizeof(s.auth_headers));
	strlcpy(s.auth_http.url, "127.0.0.1:9000/auth",
	    sizeof(s.auth_http.url));
	s.auth_http_set = 1;
	memset(&h, 0, sizeof(h));
	h.server_id = srv->id;
	strlcpy(h.name, "X-Auth-Key", sizeof(h.name));
	strlcpy(h.value, "secret", sizeof(h.value));
	memset(&lc, 0, sizeof(lc));
	lc.server_id = srv->id;
	sin->sin_family = AF_INET;
	sin->sin_port = htons(143);
	sin->sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	lc.sslen = sizeof(*sin);
	strlcpy(lc.name, "127.0.0.1:143", sizeof(lc.name));
	lc.fd = -1;

	imsg_compose(&wb, IMSG_CFG_GLOBAL, 0, 0, -1, &c, sizeof(c));
	imsg_compose(&wb, IMSG_CFG_SERVER, 0, 0, -1, &s, sizeof(s));
	imsg_compose(&wb, IMSG_CFG_AUTH_HEADER, 0, 0, -1, &h, sizeof(h));
	imsg_compose(&wb, IMSG_CFG_LISTEN, 0, 0, -1, &lc, sizeof(lc));
	imsg_compose(&wb, IMSG_CFG_DONE, 0, 0, -1, NULL, 0);
	seed_write(dir, "config-all", &wb, sp[1]);
	imsg_compose(&wb, IMSG_CFG_SERVER, 0, 0, -1, &s, sizeof(s));
	imsg_compose(&wb, IMSG_CFG_AUTH_HEADER, 0, 0, -1, &h, sizeof(h));
	seed_write(dir, "server-header", &wb, sp[1]);
	imsg_compose(&wb, IMSG_CFG_DONE, 0, 0, -1, NULL, 0);
	seed_write(dir, "done", &wb, sp[1]);
	imsg_compose(&wb, IMSG_CTL_AUTH_CHANNEL, 3, 0, -1, &id, sizeof(id));
	imsg_compose(&wb, IMSG_AUTH_CANCEL, 1, 0, -1, &id, sizeof(id));
	imsg_compose(&wb, IMSG_CTL_DRAIN, 0, 0, -1, NULL, 0);
	seed_write(dir, "ctl", &wb, sp[1]);
	imsgbuf_clear(&wb);
	close(sp[0]);
	close(sp[1]);
	config_free(conf);
}

int
LLVMFuzzerInitialize(int *argc, char ***argv)
{
	const char	*dir;
	int		 fd;

	if ((fd = open("/dev/null", O_WRONLY)) == -1)
		abort();
	log_setfd(fd);
	if ((dir = getenv("FUZZ_IMSG_SEEDS")) != NULL) {
		seeds(dir);
		exit(0);
	}
	return (0);
}
