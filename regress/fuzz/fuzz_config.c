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
 * libFuzzer target for the configuration parser.  The input is written
 * to a file (always the same one: parse.c keeps every file name it
 * read) and parsed.  A configuration that is accepted must be
 * consistent, and must come through the parent -> child imsg transfer
 * (config_send, config_recv) unchanged.
 *
 * Two things are kept away from the parser: "include", which would let
 * the fuzzer read or glob the whole file system, and name resolution:
 * getaddrinfo() below accepts numeric hosts and "localhost" only, so no
 * DNS query is ever sent.  Log lines go to /dev/null.
 */

#include <sys/types.h>
#include <sys/socket.h>
#include <sys/queue.h>

#include <netdb.h>

#include <dlfcn.h>
#include <fcntl.h>
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

static char	 dir[64], path[96];

int
getaddrinfo(const char *node, const char *service,
    const struct addrinfo *hints, struct addrinfo **res)
{
	static int	(*real)(const char *, const char *,
			    const struct addrinfo *, struct addrinfo **);
	struct addrinfo	 h;

	if (real == NULL &&
	    (real = (int (*)(const char *, const char *,
	    const struct addrinfo *, struct addrinfo **))dlsym(RTLD_NEXT,
	    "getaddrinfo")) == NULL)
		abort();
	if (hints != NULL)
		h = *hints;
	else {
		memset(&h, 0, sizeof(h));
		h.ai_family = AF_UNSPEC;
	}
	if (node == NULL || strcmp(node, "localhost") != 0)
		h.ai_flags |= AI_NUMERICHOST;
	return (real(node, service, &h, res));
}

static void
cleanup(void)
{
	unlink(path);
	rmdir(dir);
}

int
LLVMFuzzerInitialize(int *argc, char ***argv)
{
	const char	*tmp;
	int		 fd;

	if ((tmp = getenv("TMPDIR")) == NULL || *tmp == '\0')
		tmp = "/tmp";
	snprintf(dir, sizeof(dir), "%s/fuzz_config.XXXXXX", tmp);
	if (mkdtemp(dir) == NULL)
		abort();
	snprintf(path, sizeof(path), "%s/imaprelayd.conf", dir);
	atexit(cleanup);
	if ((fd = open("/dev/null", O_WRONLY)) == -1)
		abort();
	log_setfd(fd);
	event_init();
	return (0);
}

static void
check_config(struct config *conf)
{
	struct server_conf	*srv;
	struct auth_header	*h;
	struct listen_conf	*lc;
	uint32_t		 last = 0;

	REQUIRE(TERMINATED(conf->user) && TERMINATED(conf->error_log.file) &&
	    TERMINATED(conf->pid));
	REQUIRE(!TAILQ_EMPTY(&conf->servers));
	TAILQ_FOREACH(srv, &conf->servers, entry) {
		REQUIRE(srv->id > last);
		last = srv->id;
		REQUIRE(TERMINATED(srv->server_name) &&
		    TERMINATED(srv->imap_capabilities) &&
		    TERMINATED(srv->proxy_pass_name) &&
		    TERMINATED(srv->auth_http.url) &&
		    TERMINATED(srv->auth_http.curl_url) &&
		    TERMINATED(srv->auth_http.host));
		REQUIRE(srv->auth_http_set || srv->proxy_pass_set);
		REQUIRE(srv->imap_client_buffer >= 64 &&
		    srv->proxy_buffer >= 64 && srv->max_errors >= 1);
		REQUIRE(srv->proxy_pass.n >= (srv->proxy_pass_set ? 1 : 0) &&
		    srv->proxy_pass.n <= HOST_ADDRS_MAX);
		TAILQ_FOREACH(h, &srv->auth_headers, entry)
			REQUIRE(h->server_id == srv->id &&
			    TERMINATED(h->name) && TERMINATED(h->value));
	}
	TAILQ_FOREACH(lc, &conf->listens, entry) {
		REQUIRE(config_server_byid(conf, lc->server_id) != NULL);
		REQUIRE(lc->sslen > 0 && lc->sslen <= sizeof(lc->ss) &&
		    TERMINATED(lc->name));
	}
}

static int
dummy_dispatch(struct imsgev *iev, struct imsg *imsg)
{
	return (0);
}

static const struct proc_peer dummy_peer = {
	"fuzz", dummy_dispatch, NULL, NULL, 0
};

/* what config_recv rebuilt equals what was sent, listeners aside */
static void
check_same(struct config *a, struct config *b)
{
	struct server_conf	*sa, *sb, ta, tb;
	struct auth_header	*ha, *hb, xa, xb;

	REQUIRE(strcmp(a->user, b->user) == 0 &&
	    strcmp(a->error_log.file, b->error_log.file) == 0 &&
	    strcmp(a->error_log.syslog_server,
	    b->error_log.syslog_server) == 0 &&
	    a->error_log.facility == b->error_log.facility &&
	    strcmp(a->pid, b->pid) == 0 &&
	    a->worker_processes == b->worker_processes &&
	    a->worker_connections == b->worker_connections &&
	    a->isolation == b->isolation &&
	    a->spare_workers == b->spare_workers &&
	    a->error_log.level == b->error_log.level &&
	    a->daemonize == b->daemonize &&
	    a->rlimit_nofile == b->rlimit_nofile);
	sb = TAILQ_FIRST(&b->servers);
	TAILQ_FOREACH(sa, &a->servers, entry) {
		REQUIRE(sb != NULL);
		ta = *sa;
		tb = *sb;
		memset(&ta.entry, 0, sizeof(ta.entry));
		memset(&tb.entry, 0, sizeof(tb.entry));
		memset(&ta.auth_headers, 0, sizeof(ta.auth_headers));
		memset(&tb.auth_headers, 0, sizeof(tb.auth_headers));
		REQUIRE(memcmp(&ta, &tb, sizeof(ta)) == 0);
		hb = TAILQ_FIRST(&sb->auth_headers);
		TAILQ_FOREACH(ha, &sa->auth_headers, entry) {
			REQUIRE(hb != NULL);
			xa = *ha;
			xb = *hb;
			memset(&xa.entry, 0, sizeof(xa.entry));
			memset(&xb.entry, 0, sizeof(xb.entry));
			REQUIRE(memcmp(&xa, &xb, sizeof(xa)) == 0);
			hb = TAILQ_NEXT(hb, entry);
		}
		REQUIRE(hb == NULL);
		sb = TAILQ_NEXT(sb, entry);
	}
	REQUIRE(sb == NULL);
}

static void
roundtrip(struct config *conf)
{
	struct imsgev	 iev;
	struct imsgbuf	 rd;
	struct imsg	 imsg;
	struct config	*got;
	int		 sp[2], done = 0, rounds = 0;
	ssize_t		 n;

	if (socketpair(AF_UNIX, SOCK_STREAM, 0, sp) == -1)
		abort();
	set_nonblock(sp[0]);
	set_nonblock(sp[1]);
	proc_channel(&iev, sp[0], &dummy_peer, NULL);
	if (imsgbuf_init(&rd, sp[1]) == -1 ||
	    imsgbuf_set_maxsize(&rd, 256 * 1024) == -1)
		abort();
	got = config_new();
	config_send(&iev, conf, 0);
	while (!done) {
		REQUIRE(++rounds < 100000);
		if (imsgbuf_queuelen(&iev.ibuf) > 0)
			REQUIRE(imsgbuf_write(&iev.ibuf) == 0);
		REQUIRE(imsgbuf_read(&rd) == 1);
		while (!done && (n = imsg_get(&rd, &imsg)) != 0) {
			REQUIRE(n > 0);
			REQUIRE(imsg_get_fd(&imsg) == -1);
			done = config_recv(got, &imsg);
			imsg_free(&imsg);
		}
	}
	REQUIRE(imsgbuf_queuelen(&iev.ibuf) == 0);
	check_same(conf, got);
	config_free(got);
	imsgev_clear(&iev);
	imsgbuf_clear(&rd);
	close(sp[1]);
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct config	*conf;
	FILE		*fp;

	if (memmem(data, size, "include", 7) != NULL)
		return (0);
	if ((fp = fopen(path, "w")) == NULL)
		abort();
	if (size > 0 && fwrite(data, size, 1, fp) != 1)
		abort();
	if (fclose(fp) == EOF)
		abort();
	if ((conf = parse_config(path)) == NULL)
		return (0);
	check_config(conf);
	roundtrip(conf);
	config_free(conf);
	return (0);
}
