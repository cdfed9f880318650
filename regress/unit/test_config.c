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
 * Unit tests of the configuration language (parse.c) and of the
 * configuration transfer over imsg (config.c).
 *
 * Every case writes a small file to a temporary directory and parses
 * it with stderr captured, so that refusals can be checked for their
 * "file:line: reason".
 */

#include <sys/types.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <netinet/in.h>

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <syslog.h>
#include <unistd.h>

#include <tls.h>

#include "imaprelayd.h"
#include "unit.h"

static char	 dir[512];
static char	 path[PATH_MAX];
static char	 logbuf[8192];

static void
writefile(const char *name, const char *text)
{
	char	 p[PATH_MAX];
	FILE	*fp;

	snprintf(p, sizeof(p), "%s/%s", dir, name);
	if ((fp = fopen(p, "w")) == NULL || fputs(text, fp) == EOF ||
	    fclose(fp) == EOF) {
		perror(p);
		exit(2);
	}
}

/* parse text as dir/name.conf; what was logged lands in logbuf */
static struct config *
parse(const char *name, const char *text)
{
	struct config	*conf;
	char		 logpath[PATH_MAX];
	int		 fd, saved;
	ssize_t		 n;

	snprintf(path, sizeof(path), "%s/%s.conf", dir, name);
	writefile(strrchr(path, '/') + 1, text);
	snprintf(logpath, sizeof(logpath), "%s/log", dir);
	fflush(stderr);
	if ((fd = open(logpath, O_RDWR | O_CREAT | O_TRUNC, 0600)) == -1 ||
	    (saved = dup(STDERR_FILENO)) == -1 ||
	    dup2(fd, STDERR_FILENO) == -1) {
		perror("capture");
		exit(2);
	}
	conf = parse_config(path);
	fflush(stderr);
	dup2(saved, STDERR_FILENO);
	close(saved);
	lseek(fd, 0, SEEK_SET);
	n = read(fd, logbuf, sizeof(logbuf) - 1);
	logbuf[n > 0 ? n : 0] = '\0';
	close(fd);
	return (conf);
}

/* refused, and the log says "<file>:<line>: <reason...>" */
static void
refused(const char *name, const char *text, int line, const char *reason)
{
	struct config	*conf;
	char		 want[PATH_MAX + 256];

	conf = parse(name, text);
	if (line > 0)
		snprintf(want, sizeof(want), "%s:%d: %s", path, line, reason);
	else
		snprintf(want, sizeof(want), "%s: %s", path, reason);
	CHECK(name, conf == NULL && strstr(logbuf, want) != NULL);
	if (conf != NULL || strstr(logbuf, want) == NULL)
		fprintf(stderr, "# want: %s\n# got: %s", want, logbuf);
	config_free(conf);
}

#define SERVER	"  server { listen 127.0.0.1:10143; }\n"
#define AUTH	"  auth_http 127.0.0.1:9000/auth;\n"

/* a mail{} with one directive at line 2 and one server */
static struct server_conf *
onedirective(const char *name, const char *directive, struct config **confp)
{
	char	 text[1024];

	snprintf(text, sizeof(text), "mail {\n  %s\n" AUTH SERVER "}\n",
	    directive);
	*confp = parse(name, text);
	if (*confp == NULL) {
		fprintf(stderr, "# %s", logbuf);
		return (NULL);
	}
	return (TAILQ_FIRST(&(*confp)->servers));
}

static const char typical[] =
    "# an nginx mail{} for IMAP, unchanged\n"			/* 1 */
    "user nobody nogroup;\n"					/* 2 */
    "worker_processes auto;\n"					/* 3 */
    "error_log /var/log/imaprelayd.log info;\n"			/* 4 */
    "pid /var/run/imaprelayd.pid;\n"				/* 5 */
    "events {\n"						/* 6 */
    "    worker_connections 1024;\n"				/* 7 */
    "    use epoll; multi_accept on;\n"				/* 8 */
    "}\n"							/* 9 */
    "mail {\n"							/* 10 */
    "    server_name mail.example.com;\n"			/* 11 */
    "    auth_http http://127.0.0.1:9000/auth;\n"		/* 12 */
    "    auth_http_header X-Auth-Key \"secret key\";\n"		/* 13 */
    "    imap_capabilities IMAP4rev1 UIDPLUS IDLE LITERAL+ QUOTA;\n"
    "    imap_auth plain login;\n"				/* 15 */
    "    imap_client_buffer 8k;\n"				/* 16 */
    "    proxy_pass_error_message on;\n"			/* 17 */
    "    timeout 30s;\n"					/* 18 */
    "    server {\n"						/* 19 */
    "        listen 127.0.0.1:10143;\n"				/* 20 */
    "        protocol imap;\n"					/* 21 */
    "    }\n"							/* 22 */
    "}\n";

static void
test_typical(void)
{
	struct config		*conf;
	struct server_conf	*s;
	struct listen_conf	*lc;
	struct auth_header	*h;
	int			 ok;

	conf = parse("typical", typical);
	CHECK("typical nginx mail config is accepted", conf != NULL);
	if (conf == NULL) {
		fprintf(stderr, "# %s", logbuf);
		return;
	}
	s = TAILQ_FIRST(&conf->servers);
	lc = TAILQ_FIRST(&conf->listens);
	h = TAILQ_FIRST(&s->auth_headers);
	CHECK("typical: main values",
	    strcmp(conf->user, "nobody") == 0 &&
	    conf->worker_processes == 0 &&
	    strcmp(conf->error_log.file, "/var/log/imaprelayd.log") == 0 &&
	    conf->error_log.level == LOG_INFO &&
	    strcmp(conf->pid, "/var/run/imaprelayd.pid") == 0 &&
	    conf->worker_connections == 1024 &&
	    conf->isolation == ISOLATION_CONNECTION &&
	    conf->spare_workers == 4);
	ok = s != NULL && TAILQ_NEXT(s, entry) == NULL && s->id == 1 &&
	    strcmp(s->server_name, "mail.example.com") == 0 &&
	    s->server_name_set &&
	    s->auth_http_set &&
	    strcmp(s->auth_http.url, "http://127.0.0.1:9000/auth") == 0 &&
	    strcmp(s->auth_http.host, "127.0.0.1") == 0 &&
	    s->auth_http.port == 9000 &&
	    strcmp(s->auth_http.addrs, "127.0.0.1") == 0 &&
	    strcmp(s->imap_capabilities,
	    "IMAP4rev1 UIDPLUS IDLE LITERAL+ QUOTA") == 0 &&
	    s->imap_auth == (MECH_PLAIN | MECH_LOGIN) &&
	    s->imap_client_buffer == 8192 &&
	    s->proxy_pass_error_message == 1 &&
	    s->timeout_ms == 30000 &&
	    s->proxy_timeout_ms == 86400000 &&
	    s->auth_http_timeout_ms == 60000 &&
	    s->proxy_buffer == 16384 && s->max_errors == 5 &&
	    !s->proxy_pass_set;
	CHECK("typical: server values inherited from mail", ok);
	CHECK("typical: auth_http_header",
	    h != NULL && strcmp(h->name, "X-Auth-Key") == 0 &&
	    strcmp(h->value, "secret key") == 0 && h->server_id == 1 &&
	    TAILQ_NEXT(h, entry) == NULL);
	CHECK("typical: listen",
	    lc != NULL && TAILQ_NEXT(lc, entry) == NULL &&
	    strcmp(lc->name, "127.0.0.1:10143") == 0 &&
	    lc->server_id == 1 && lc->backlog == -1 && lc->fd == -1 &&
	    lc->ss.ss_family == AF_INET && lc->line == 20 &&
	    lc->file != NULL && strcmp(lc->file, path) == 0);
	config_free(conf);
}

static void
test_defaults(void)
{
	struct config		*conf;
	struct server_conf	*s;

	conf = parse("defaults", "mail {\n" AUTH SERVER "}\n");
	CHECK("minimal config is accepted", conf != NULL);
	if (conf == NULL)
		return;
	s = TAILQ_FIRST(&conf->servers);
	CHECK("defaults: main",
	    strcmp(conf->user, "_imaprelayd") == 0 &&
	    conf->worker_processes == 1 && conf->worker_connections == 512 &&
	    conf->error_log.file[0] == '\0' &&
	    conf->error_log.syslog_server[0] == '\0' &&
	    conf->error_log.level == LOG_INFO && conf->daemonize == 1 &&
	    conf->rlimit_nofile == 0 &&
	    conf->pid[0] == '\0' && conf->spare_workers == 4 &&
	    conf->isolation == ISOLATION_CONNECTION);
	CHECK("defaults: server",
	    s->timeout_ms == 60000 && s->auth_http_timeout_ms == 60000 &&
	    s->proxy_timeout_ms == 86400000 && s->imap_auth == MECH_PLAIN &&
	    strcmp(s->imap_capabilities, "auto") == 0 &&
	    s->imap_client_buffer == 4096 && s->proxy_buffer == 16384 &&
	    s->max_errors == 5 && !s->proxy_pass_error_message &&
	    !s->server_name_set && s->server_name[0] != '\0' &&
	    TAILQ_EMPTY(&s->auth_headers));
	config_free(conf);
}

static void
test_inherit(void)
{
	struct config		*conf;
	struct server_conf	*s1, *s2;
	struct auth_header	*h;
	struct listen_conf	*lc;

	conf = parse("inherit",
	    "isolation shared;\n"
	    "mail {\n"
	    "  timeout 30s;\n"
	    "  spare_workers 2;\n"
	    "  auth_http_header X-A 1;\n"
	    "  auth_http_header X-B 2;\n"
	    AUTH
	    "  server { listen 127.0.0.1:10143; }\n"
	    "  server {\n"
	    "    listen 127.0.0.1:10144;\n"
	    "    timeout 5m;\n"
	    "    auth_http_header X-C 3;\n"
	    "    imap_capabilities IMAP4rev1;\n"
	    "    imap_capabilities IDLE;\n"
	    "    imap_auth cram-md5;\n"
	    "    imap_auth external;\n"
	    "    server_name other.example;\n"
	    "  }\n"
	    "}\n");
	CHECK("inheritance config is accepted", conf != NULL);
	if (conf == NULL) {
		fprintf(stderr, "# %s", logbuf);
		return;
	}
	s1 = TAILQ_FIRST(&conf->servers);
	s2 = TAILQ_NEXT(s1, entry);
	CHECK("inherit: ids 1..n", s1->id == 1 && s2 != NULL && s2->id == 2);
	CHECK("inherit: isolation and spare_workers",
	    conf->isolation == ISOLATION_SHARED && conf->spare_workers == 2);
	CHECK("inherit: a server that sets nothing takes mail's",
	    s1->timeout_ms == 30000 && s1->auth_http_set &&
	    strcmp(s1->imap_capabilities, "auto") == 0);
	h = TAILQ_FIRST(&s1->auth_headers);
	CHECK("inherit: mail's headers when the server has none",
	    h != NULL && strcmp(h->name, "X-A") == 0 && h->server_id == 1 &&
	    (h = TAILQ_NEXT(h, entry)) != NULL &&
	    strcmp(h->name, "X-B") == 0 && TAILQ_NEXT(h, entry) == NULL);
	CHECK("inherit: a server's own values win",
	    s2->timeout_ms == 300000 && s2->auth_http_set &&
	    strcmp(s2->server_name, "other.example") == 0 &&
	    s2->server_name_set && !s1->server_name_set);
	h = TAILQ_FIRST(&s2->auth_headers);
	CHECK("inherit: a server's own headers replace mail's",
	    h != NULL && strcmp(h->name, "X-C") == 0 && h->server_id == 2 &&
	    TAILQ_NEXT(h, entry) == NULL);
	CHECK("inherit: imap_capabilities replaces, repeats append",
	    strcmp(s2->imap_capabilities, "IMAP4rev1 IDLE") == 0);
	CHECK("inherit: imap_auth replaces, repeats add",
	    s2->imap_auth == (MECH_CRAM_MD5 | MECH_EXTERNAL));
	lc = TAILQ_LAST(&conf->listens, listen_list);
	CHECK("inherit: listen of the second server", lc != NULL &&
	    lc->server_id == 2 && strcmp(lc->name, "127.0.0.1:10144") == 0);
	config_free(conf);
}

static void
test_units(void)
{
	static const struct {
		const char	*directive;
		unsigned int	 ms;
	} times[] = {
		{ "timeout 500ms;", 500 },
		{ "timeout 60s;", 60000 },
		{ "timeout 60;", 60000 },
		{ "timeout 5m;", 300000 },
		{ "timeout 24h;", 86400000 },
		{ "timeout 1d;", 86400000 },
		{ "timeout 1h30m;", 5400000 },
		{ "timeout \"1m 30s\";", 90000 },
		{ "timeout 1m500ms;", 60500 },
	};
	static const struct {
		const char	*directive;
		size_t		 size;
	} sizes[] = {
		{ "imap_client_buffer 8k;", 8192 },
		{ "imap_client_buffer 8K;", 8192 },
		{ "imap_client_buffer 1m;", 1048576 },
		{ "imap_client_buffer 1000;", 1000 },
	};
	struct config		*conf;
	struct server_conf	*s;
	char			 name[128];
	size_t			 i;

	for (i = 0; i < sizeof(times) / sizeof(times[0]); i++) {
		snprintf(name, sizeof(name), "time %s", times[i].directive);
		s = onedirective("time", times[i].directive, &conf);
		CHECK(name, s != NULL && s->timeout_ms == times[i].ms);
		config_free(conf);
	}
	for (i = 0; i < sizeof(sizes) / sizeof(sizes[0]); i++) {
		snprintf(name, sizeof(name), "size %s", sizes[i].directive);
		s = onedirective("size", sizes[i].directive, &conf);
		CHECK(name, s != NULL &&
		    s->imap_client_buffer == sizes[i].size);
		config_free(conf);
	}
	s = onedirective("ptime", "proxy_timeout 1w;", &conf);
	CHECK("time proxy_timeout 1w", s != NULL &&
	    s->proxy_timeout_ms == 7U * 86400000);
	config_free(conf);
	s = onedirective("psize", "proxy_buffer 32k;", &conf);
	CHECK("size proxy_buffer 32k", s != NULL && s->proxy_buffer == 32768);
	config_free(conf);
}

/* client certificate directives: values, defaults, inheritance */
static void
test_ccert(void)
{
	struct config		*conf;
	struct server_conf	*s;

	s = onedirective("ccert", "ssl_verify_client optional_no_ca;", &conf);
	CHECK("ccert: ssl_verify_client inherited, depth 1 by default",
	    s != NULL && s->ccert_verify == CCERT_VERIFY_NO_CA &&
	    s->ccert_depth == 1 && s->ccert_pass_cert == 0);
	config_free(conf);
	s = onedirective("ccert", "ssl_verify_depth 3;", &conf);
	CHECK("ccert: ssl_verify_depth", s != NULL && s->ccert_depth == 3 &&
	    s->ccert_verify == CCERT_VERIFY_OFF);
	config_free(conf);
	s = onedirective("ccert", "auth_http_pass_client_cert on;", &conf);
	CHECK("ccert: auth_http_pass_client_cert", s != NULL &&
	    s->ccert_pass_cert == 1);
	config_free(conf);
	s = onedirective("ccert", "ssl_client_certificate /etc/ca.pem;",
	    &conf);
	CHECK("ccert: ssl_client_certificate", s != NULL &&
	    strcmp(s->ccert_ca_file, "/etc/ca.pem") == 0 &&
	    s->ccert_trusted_file[0] == '\0');
	config_free(conf);
}

static void
test_listen(void)
{
	struct config		*conf;
	struct listen_conf	*lc;
	struct sockaddr_in6	*sin6;

	conf = parse("listen",
	    "mail {\n" AUTH
	    "  server {\n"
	    "    listen 10143;\n"
	    "    listen *:10144 backlog=10 rcvbuf=8k sndbuf=16k bind;\n"
	    "    listen [::1]:10145 so_keepalive=30m::10;\n"
	    "    listen [::]:10146 ipv6only=on so_keepalive=on;\n"
	    "  }\n"
	    "}\n");
	CHECK("listen forms are accepted", conf != NULL);
	if (conf == NULL) {
		fprintf(stderr, "# %s", logbuf);
		return;
	}
	lc = TAILQ_FIRST(&conf->listens);
	CHECK("listen PORT is 0.0.0.0:PORT",
	    strcmp(lc->name, "0.0.0.0:10143") == 0 && lc->backlog == -1 &&
	    lc->rcvbuf == -1 && lc->keepalive == -1 && lc->ipv6only == -1);
	lc = TAILQ_NEXT(lc, entry);
	CHECK("listen *:PORT with backlog rcvbuf sndbuf bind",
	    strcmp(lc->name, "0.0.0.0:10144") == 0 && lc->backlog == 10 &&
	    lc->rcvbuf == 8192 && lc->sndbuf == 16384 && lc->bind);
	lc = TAILQ_NEXT(lc, entry);
	sin6 = (struct sockaddr_in6 *)&lc->ss;
	CHECK("listen [::1]:PORT so_keepalive=30m::10",
	    strcmp(lc->name, "[::1]:10145") == 0 &&
	    lc->ss.ss_family == AF_INET6 && ntohs(sin6->sin6_port) == 10145 &&
	    lc->keepalive == 1 && lc->keepidle == 1800 &&
	    lc->keepintvl == 0 && lc->keepcnt == 10);
	lc = TAILQ_NEXT(lc, entry);
	CHECK("listen [::]:PORT ipv6only=on so_keepalive=on",
	    strcmp(lc->name, "[::]:10146") == 0 && lc->ipv6only == 1 &&
	    lc->keepalive == 1 && lc->bind);
	config_free(conf);
}

static void
test_accepted(void)
{
	struct config		*conf;
	struct server_conf	*s;
	struct auth_header	*h;

	conf = parse("quoting",
	    "# comment\n"
	    "mail { # comment after a brace\n"
	    "  'auth_http' \"127.0.0.1:9000/a\";  # trailing\n"
	    "  auth_http_header X-Q 'it\\'s \"q\"';\n"
	    "  auth_http_header X-E a\\;b;\n"
	    "  server{listen 127.0.0.1:10143;}\n"
	    "}");
	s = conf ? TAILQ_FIRST(&conf->servers) : NULL;
	h = s ? TAILQ_FIRST(&s->auth_headers) : NULL;
	CHECK("quotes, escapes and comments", h != NULL &&
	    strcmp(h->value, "it's \"q\"") == 0 &&
	    (h = TAILQ_NEXT(h, entry)) != NULL &&
	    strcmp(h->value, "a\\;b") == 0);
	config_free(conf);

	conf = parse("static",
	    "mail {\n"
	    "  proxy_pass 127.0.0.1:1143;\n"
	    "  server { listen 127.0.0.1:10143; }\n"
	    "}\n");
	s = conf ? TAILQ_FIRST(&conf->servers) : NULL;
	CHECK("proxy_pass without auth_http", s != NULL &&
	    s->proxy_pass_set && !s->auth_http_set &&
	    s->proxy_pass.n == 1 && s->proxy_pass.ss[0].ss_family == AF_INET &&
	    ntohs(((struct sockaddr_in *)&s->proxy_pass.ss[0])->sin_port) ==
	    1143 &&
	    strcmp(s->proxy_pass_name, "127.0.0.1:1143") == 0);
	config_free(conf);

	conf = parse("unixauth",
	    "mail {\n"
	    "  auth_http unix:/tmp/auth.sock:/auth;\n"
	    "  server { listen 127.0.0.1:10143; }\n"
	    "}\n");
	s = conf ? TAILQ_FIRST(&conf->servers) : NULL;
	CHECK("auth_http unix: is not resolved", s != NULL &&
	    strcmp(s->auth_http.unix_path, "/tmp/auth.sock") == 0 &&
	    s->auth_http.addrs[0] == '\0');
	config_free(conf);

	conf = parse("ignored",
	    "daemon off;\n"
	    "worker_processes 2;\n"
	    "error_log stderr;\n"
	    "events { worker_connections 64; accept_mutex off; }\n"
	    "mail {\n"
	    "  resolver 127.0.0.1 valid=30s;\n"
	    "  resolver_timeout 5s;\n"
	    "  proxy on;\n"
	    "  auth_http_pass_client_cert off;\n"
	    "  so_keepalive on;\n"
	    "  max_errors 3;\n"
	    "  auth_http_timeout 5s;\n"
	    "  " AUTH SERVER
	    "}\n");
	s = conf ? TAILQ_FIRST(&conf->servers) : NULL;
	CHECK("nginx directives accepted and ignored", s != NULL &&
	    conf->worker_processes == 2 && conf->worker_connections == 64 &&
	    strcmp(conf->error_log.file, "stderr") == 0 &&
	    conf->error_log.level == LOG_ERR && conf->daemonize == 0 &&
	    s->so_keepalive == 1 &&
	    s->max_errors == 3 && s->auth_http_timeout_ms == 5000);
	config_free(conf);

	writefile("included.inc", "auth_http 127.0.0.1:9000/inc;\n");
	conf = parse("include",
	    "mail {\n"
	    "  include included.inc;\n"
	    SERVER
	    "}\n");
	s = conf ? TAILQ_FIRST(&conf->servers) : NULL;
	CHECK("include FILE (relative)", s != NULL &&
	    strcmp(s->auth_http.url, "127.0.0.1:9000/inc") == 0);
	config_free(conf);

	conf = parse("syslog", "error_log syslog:server=unix:/dev/log warn;\n"
	    "mail {\n" AUTH SERVER "}\n");
	CHECK("error_log syslog:", conf != NULL &&
	    conf->error_log.file[0] == '\0' &&
	    strcmp(conf->error_log.syslog_server, "unix:/dev/log") == 0 &&
	    conf->error_log.syslog_ss.ss_family == AF_UNIX &&
	    conf->error_log.facility == 23 &&
	    strcmp(conf->error_log.tag, "imaprelayd") == 0 &&
	    conf->error_log.level == LOG_WARNING);
	config_free(conf);
}

/* error_log at every level, as nginx; syslog: with its parameters */
static void
test_error_log(void)
{
	struct config		*conf;
	struct server_conf	*s1, *s2, *s3;
	struct sockaddr_in	*sin;

	conf = parse("error_log",
	    "error_log /tmp/main.log warn;\n"
	    "worker_rlimit_nofile 4096;\n"
	    "mail {\n"
	    "  error_log /tmp/mail.log info;\n"
	    AUTH
	    "  server { listen 127.0.0.1:10143; }\n"
	    "  server { listen 127.0.0.1:10144;\n"
	    "    error_log syslog:server=127.0.0.1:5514,facility=mail,"
	    "tag=relay_1,severity=info,nohostname debug; }\n"
	    "  server { listen 127.0.0.1:10145;\n"
	    "    error_log syslog:server=[::1] notice; }\n"
	    "}\n");
	s1 = conf ? TAILQ_FIRST(&conf->servers) : NULL;
	s2 = s1 ? TAILQ_NEXT(s1, entry) : NULL;
	s3 = s2 ? TAILQ_NEXT(s2, entry) : NULL;
	CHECK("error_log at every level is accepted", s3 != NULL);
	if (s3 == NULL) {
		fprintf(stderr, "# %s", logbuf);
		config_free(conf);
		return;
	}
	CHECK("error_log: the top level's is the daemon's",
	    strcmp(conf->error_log.file, "/tmp/main.log") == 0 &&
	    conf->error_log.level == LOG_WARNING && conf->error_log.fd == -1 &&
	    conf->rlimit_nofile == 4096);
	CHECK("error_log: a server without one takes mail's",
	    s1->error_log_set && strcmp(s1->error_log.file,
	    "/tmp/mail.log") == 0 && s1->error_log.level == LOG_INFO);
	sin = (struct sockaddr_in *)&s2->error_log.syslog_ss;
	CHECK("error_log: syslog:server=host:port and its parameters",
	    s2->error_log_set && s2->error_log.file[0] == '\0' &&
	    sin->sin_family == AF_INET && ntohs(sin->sin_port) == 5514 &&
	    s2->error_log.facility == 2 &&
	    strcmp(s2->error_log.tag, "relay_1") == 0 &&
	    s2->error_log.nohostname && s2->error_log.level == LOG_DEBUG);
	CHECK("error_log: syslog:server=[v6] is UDP 514",
	    s3->error_log.syslog_ss.ss_family == AF_INET6 &&
	    ntohs(((struct sockaddr_in6 *)&s3->error_log.syslog_ss)->
	    sin6_port) == 514 && s3->error_log.level == LOG_NOTICE);
	config_free(conf);

	conf = parse("noerrorlog", "mail {\n" AUTH SERVER "}\n");
	s1 = conf ? TAILQ_FIRST(&conf->servers) : NULL;
	CHECK("error_log: none below the top level, the main one is used",
	    s1 != NULL && !s1->error_log_set);
	config_free(conf);

	refused("syslog without server", "error_log syslog:facility=mail;\n",
	    1, "no syslog server specified");
	refused("syslog bad facility",
	    "error_log syslog:server=unix:/dev/log,facility=nope;\n",
	    1, "unknown syslog facility \"nope\"");
	refused("syslog bad tag",
	    "error_log syslog:server=unix:/dev/log,tag=a-b;\n",
	    1, "syslog \"tag\" only allows alphanumeric characters and "
	    "underscore");
	refused("syslog long tag",
	    "error_log syslog:server=unix:/dev/log,"
	    "tag=abcdefghijabcdefghijabcdefghijabc;\n",
	    1, "syslog tag length exceeds 32");
	refused("syslog unknown parameter",
	    "error_log syslog:server=unix:/dev/log,loud;\n",
	    1, "unknown syslog parameter \"loud\"");
	refused("syslog two servers",
	    "error_log syslog:server=unix:/a,server=unix:/b;\n",
	    1, "duplicate syslog \"server\"");
	refused("error_log memory:", "error_log memory:32m debug;\n",
	    1, "\"error_log memory:\" is for nginx's debugging builds only");
	refused("error_log in events", "events {\n  error_log x;\n}\n",
	    2, "\"error_log\" directive is not allowed here");
}

static void
test_refused(void)
{
	refused("unknown directive", "mail {\n  bogus on;\n" AUTH SERVER "}\n",
	    2, "unknown directive \"bogus\"");
	refused("listen in mail", "mail {\n  listen 143;\n" AUTH SERVER "}\n",
	    2, "\"listen\" directive is not allowed here");
	refused("user in mail", "mail {\n" AUTH "  user x;\n" SERVER "}\n",
	    3, "\"user\" directive is not allowed here");
	refused("worker_connections in main", "worker_connections 10;\n",
	    1, "\"worker_connections\" directive is not allowed here");
	refused("protocol in mail", "mail {\n  protocol imap;\n}\n",
	    2, "\"protocol\" directive is not allowed here");
	refused("timeout with two arguments",
	    "mail {\n" AUTH "  timeout 1s 2s;\n" SERVER "}\n",
	    3, "invalid number of arguments in \"timeout\" directive");
	refused("auth_http_header with one argument",
	    "mail {\n  auth_http_header X-A;\n}\n",
	    2, "invalid number of arguments in \"auth_http_header\" directive");
	refused("user with no argument", "user;\n",
	    1, "invalid number of arguments in \"user\" directive");
	refused("bad time", "mail {\n  timeout 5x;\n}\n",
	    2, "invalid value \"5x\" in \"timeout\" directive");
	refused("bad time order", "mail {\n  timeout 1s1h;\n}\n",
	    2, "invalid value \"1s1h\" in \"timeout\" directive");
	refused("bad size", "mail {\n  imap_client_buffer 8q;\n}\n",
	    2, "invalid value \"8q\" in \"imap_client_buffer\" directive");
	refused("bad flag", "mail {\n  proxy_pass_error_message yes;\n}\n",
	    2, "invalid value \"yes\" in \"proxy_pass_error_message\" "
	    "directive, it must be \"on\" or \"off\"");
	refused("bad number", "mail {\n  max_errors many;\n}\n",
	    2, "invalid value \"many\" in \"max_errors\" directive");
	refused("bad worker_processes", "worker_processes 0;\n",
	    1, "invalid value \"0\" in \"worker_processes\" directive");
	refused("bad imap_auth", "mail {\n  imap_auth plain xoauth2;\n}\n",
	    2, "invalid value \"xoauth2\" in \"imap_auth\" directive");
	refused("bad isolation", "isolation some;\n",
	    1, "invalid value \"some\" in \"isolation\" directive");
	refused("bad error_log level", "error_log stderr loud;\n",
	    1, "invalid value \"loud\" in \"error_log\" directive");
	refused("bad auth_http url", "mail {\n  auth_http ftp://x/;\n}\n",
	    2, "invalid value \"ftp://x/\" in \"auth_http\" directive: ");
	refused("bad header name",
	    "mail {\n  auth_http_header \"X A\" 1;\n}\n",
	    2, "invalid value \"X A\" in \"auth_http_header\" directive");
	refused("duplicate timeout",
	    "mail {\n  timeout 1s;\n  timeout 2s;\n}\n",
	    3, "\"timeout\" directive is duplicate");
	refused("http without a block", "http;\n",
	    1, "directive \"http\" has no opening \"{\"");
	refused("unknown pop3 directive", "mail {\n  pop3_bogus on;\n}\n",
	    2, "unknown directive \"pop3_bogus\"");
	refused("only pop3 servers",
	    "mail {\n" AUTH "  server {\n    listen 10110;\n"
	    "    protocol pop3;\n  }\n}\n",
	    0, "no IMAP server is defined, only pop3 or smtp ones");
	refused("ssl on and starttls at one level",
	    "mail {\n  starttls on;\n  ssl on;\n}\n",
	    3, "\"starttls\" directive conflicts with \"ssl on\"");
	refused("ssl_protocols with nothing libtls offers",
	    "mail {\n  ssl_protocols SSLv2 SSLv3;\n}\n",
	    2, "\"ssl_protocols\" leaves no protocol libtls can offer");
	refused("a refusal in an imap server is held to its line",
	    "mail {\n" AUTH "  server {\n    listen 10143;\n"
	    "    ssl_conf_command Foo bar;\n    protocol imap;\n  }\n}\n",
	    5, "TLS \"ssl_conf_command\" is not supported yet");
	refused("duplicate mail block",
	    "mail {\n" AUTH SERVER "}\nmail {\n}\n",
	    5, "\"mail\" directive is duplicate");
	refused("server without listen",
	    "mail {\n" AUTH "  server {\n    protocol imap;\n  }\n}\n",
	    3, "server has no \"listen\" directive");
	refused("two servers on one address",
	    "mail {\n" AUTH
	    "  server { listen 127.0.0.1:10143; }\n"
	    "  server { listen 127.0.0.1:10143; }\n}\n",
	    4, "duplicate \"127.0.0.1:10143\" address and port pair");
	refused("server without auth_http or proxy_pass",
	    "mail {\n" SERVER "}\n",
	    2, "server has neither \"auth_http\" nor \"proxy_pass\"");
	refused("no server", "events { worker_connections 10; }\n",
	    0, "no mail server is defined");
	refused("missing closing brace", "mail {\n" AUTH SERVER,
	    4, "unexpected end of file, expecting \"}\"");
	refused("unexpected end of file", "mail {\n" AUTH "  timeout 1s",
	    3, "unexpected end of file, expecting \";\" or \"}\"");
	refused("missing semicolon", "mail {\n" AUTH "  timeout 1s }\n",
	    3, "unexpected \"}\"");
	refused("stray closing brace", "mail {\n" AUTH SERVER "}\n}\n",
	    5, "unexpected \"}\"");
	refused("block without brace", "mail;\n",
	    1, "directive \"mail\" has no opening \"{\"");
	refused("directive with a brace", "pid /x {\n}\n",
	    1, "directive \"pid\" is not terminated by \";\"");
	refused("unterminated quote", "mail {\n  server_name \"x;\n}\n",
	    4, "unexpected end of file, expecting \"");
	refused("ssl_verify_client without a CA list",
	    "mail {\n" AUTH "  ssl_verify_client on;\n  server {\n"
	    "    listen 993 ssl;\n  }\n}\n",
	    4, "no ssl_client_certificate or ssl_trusted_certificate for "
	    "ssl_verify_client");
	refused("ssl_verify_client bad value",
	    "mail {\n  ssl_verify_client maybe;\n}\n",
	    2, "invalid value \"maybe\" in \"ssl_verify_client\" directive");
	refused("ssl_crl takes one file",
	    "mail {\n  ssl_crl /etc/ssl/crl.pem /x;\n}\n",
	    2, "invalid number of arguments in \"ssl_crl\" directive");
	refused("proxy_ssl value", "mail {\n  proxy_ssl maybe;\n}\n",
	    2, "invalid value \"maybe\" in \"proxy_ssl\" directive");
	refused("proxy_ssl duplicate", "mail {\n  proxy_ssl_verify on;\n"
	    "  proxy_ssl_verify off;\n}\n", 3,
	    "\"proxy_ssl_verify\" directive is duplicate");
	refused("ssl_password_file takes one file",
	    "mail {\n  ssl_password_file /etc/ssl/pass /x;\n}\n",
	    2, "invalid number of arguments in \"ssl_password_file\" "
	    "directive");
	refused("starttls bad value", "mail {\n  starttls yes;\n}\n",
	    2, "invalid value \"yes\" in \"starttls\" directive");
	refused("starttls without certificate",
	    "mail {\n" AUTH "  starttls on;\n  server {\n"
	    "    listen 143;\n  }\n}\n",
	    4, "no \"ssl_certificate\" is defined for \"starttls\"");
	refused("listen ssl without certificate",
	    "mail {\n" AUTH "  server {\n    listen 993 ssl;\n  }\n}\n",
	    4, "no \"ssl_certificate\" is defined for the \"listen ... "
	    "ssl\" directive");
	refused("ssl_certificate missing file",
	    "mail {\n" AUTH "  server {\n    listen 993 ssl;\n"
	    "    ssl_certificate /nonexistent/x.crt;\n"
	    "    ssl_certificate_key /nonexistent/x.key;\n  }\n}\n",
	    3, "cannot read \"/nonexistent/x.crt\"");
	refused("ssl_certificate without key",
	    "mail {\n" AUTH "  server {\n    listen 993 ssl;\n"
	    "    ssl_certificate /nonexistent/x.crt;\n  }\n}\n",
	    3, "no \"ssl_certificate_key\" is defined for certificate");
	refused("ssl_ciphers garbage",
	    "mail {\n  ssl_ciphers NOSUCHCIPHER;\n}\n",
	    2, "invalid value \"NOSUCHCIPHER\" in \"ssl_ciphers\" directive");
	refused("listen bad parameter",
	    "mail {\n" AUTH "  server {\n    listen 143 fast;\n  }\n}\n",
	    4, "invalid parameter \"fast\" in \"listen\"");
	refused("listen bad port",
	    "mail {\n" AUTH "  server {\n    listen 127.0.0.1:99999;\n"
	    "  }\n}\n",
	    4, "invalid value \"127.0.0.1:99999\" in \"listen\": invalid port");
	refused("listen ipv6only on IPv4",
	    "mail {\n" AUTH "  server {\n    listen 143 ipv6only=on;\n"
	    "  }\n}\n",
	    4, "ipv6only is not supported on \"143\"");
	refused("proxy_pass that does not resolve",
	    "mail {\n  proxy_pass nonexistent.invalid:143;\n}\n",
	    2, "host \"nonexistent.invalid\" of \"proxy_pass\" not found: ");
	refused("proxy_pass without port",
	    "mail {\n  proxy_pass 127.0.0.1;\n}\n",
	    2, "invalid value \"127.0.0.1\" in \"proxy_pass\" directive: "
	    "no port");
	refused("include of a missing file", "include nothere.conf;\n",
	    1, "cannot open \"");
	refused("proxy_protocol v3", "mail {\n  proxy_protocol v3;\n}\n",
	    2, "invalid value \"v3\" in \"proxy_protocol\"");
	refused("set_real_ip_from a name",
	    "mail {\n  set_real_ip_from lb.example;\n}\n",
	    2, "invalid value \"lb.example\" in \"set_real_ip_from\": an "
	    "address or CIDR is expected");
	refused("set_real_ip_from prefix too long",
	    "mail {\n  set_real_ip_from 10.0.0.0/33;\n}\n",
	    2, "invalid value \"10.0.0.0/33\" in \"set_real_ip_from\"");
}

/* the PROXY protocol: listen ... proxy_protocol, set_real_ip_from */
static void
test_proxy_protocol(void)
{
	struct config		*conf;
	struct server_conf	*s;
	struct listen_conf	*lc;

	conf = parse("proxy protocol",
	    "mail {\n" AUTH
	    "  proxy_protocol v2;\n"
	    "  set_real_ip_from 10.1.2.3/8;\n"
	    "  set_real_ip_from 2001:db8::/32;\n"
	    "  set_real_ip_from unix:;\n"
	    "  server { listen 127.0.0.1:10143 proxy_protocol; }\n"
	    "  server { listen 127.0.0.1:10144;\n"
	    "    proxy_protocol on; set_real_ip_from 192.0.2.1; }\n"
	    "}\n");
	CHECK("proxy_protocol, set_real_ip_from accepted", conf != NULL);
	if (conf == NULL) {
		fprintf(stderr, "# %s", logbuf);
		return;
	}
	s = TAILQ_FIRST(&conf->servers);
	lc = TAILQ_FIRST(&conf->listens);
	CHECK("listen ... proxy_protocol", lc->proxy_protocol == 1 &&
	    TAILQ_NEXT(lc, entry)->proxy_protocol == 0);
	CHECK("set_real_ip_from inherited, host bits cleared",
	    s->proxy_protocol == PROXY_PROTOCOL_V2 && s->nrealip == 3 &&
	    s->realip[0].family == AF_INET && s->realip[0].prefix == 8 &&
	    s->realip[0].addr[0] == 10 && s->realip[0].addr[1] == 0 &&
	    s->realip[1].family == AF_INET6 && s->realip[1].prefix == 32 &&
	    s->realip[2].family == AF_UNIX);
	s = TAILQ_NEXT(s, entry);
	CHECK("a server's set_real_ip_from replaces mail's",
	    s->proxy_protocol == PROXY_PROTOCOL_V1 && s->nrealip == 1 &&
	    s->realip[0].prefix == 32);
	config_free(conf);
}

/* count of needle in haystack */
static int
count(const char *hay, const char *needle)
{
	int	 n = 0;

	while ((hay = strstr(hay, needle)) != NULL) {
		n++;
		hay += strlen(needle);
	}
	return (n);
}

/* what nginx 1.22 accepts around an IMAP mail{}: accepted, noted */
static void
test_nginx_leftovers(void)
{
	struct config		*conf;
	struct server_conf	*s;
	struct listen_conf	*lc;
	char			 text[4096], ciphers[1200];
	size_t			 n;

	conf = parse("leftovers",
	    "http {\n"						/* 1 */
	    "  server { listen 80; location / { return 200 '}'; } }\n"
	    "}\n"
	    "stream { upstream x { server 127.0.0.1:1; } }\n"	/* 4 */
	    "mail {\n"						/* 5 */
	    "  pop3_auth plain apop;\n"				/* 6 */
	    "  pop3_capabilities TOP USER;\n"
	    "  smtp_auth login plain;\n"
	    "  smtp_capabilities SIZE 10485760;\n"
	    "  xclient off;\n"
	    "  proxy_smtp_auth on;\n"
	    "  smtp_greeting_delay 1s;\n"
	    AUTH
	    "  server { listen 127.0.0.1:10110; protocol pop3;\n"	/* 14 */
	    "    ssl_password_file /nonexistent;\n"
	    "    listen 127.0.0.1:10995 proxy_protocol; }\n"
	    "  server { listen 127.0.0.1:25; }\n"			/* 17 */
	    "  server { listen 127.0.0.1:587; smtp_auth none; }\n"
	    "  server { listen 127.0.0.1:10143; }\n"		/* 19 */
	    "  server { listen 127.0.0.1:110; protocol imap; }\n"
	    "}\n");
	s = conf ? TAILQ_FIRST(&conf->servers) : NULL;
	CHECK("http, stream, pop3/smtp servers and directives accepted",
	    s != NULL);
	if (s == NULL) {
		fprintf(stderr, "# %s", logbuf);
		return;
	}
	CHECK("only the imap servers are kept, numbered in order",
	    TAILQ_NEXT(s, entry) != NULL &&
	    TAILQ_NEXT(TAILQ_NEXT(s, entry), entry) == NULL);
	lc = TAILQ_FIRST(&conf->listens);
	CHECK("their listens only",
	    lc != NULL && strcmp(lc->name, "127.0.0.1:10143") == 0 &&
	    (lc = TAILQ_NEXT(lc, entry)) != NULL &&
	    strcmp(lc->name, "127.0.0.1:110") == 0 &&
	    TAILQ_NEXT(lc, entry) == NULL);
	CHECK("one notice per block",
	    count(logbuf, "[notice]") == 6 &&
	    strstr(logbuf, ":1: \"http\" block skipped") != NULL &&
	    strstr(logbuf, ":4: \"stream\" block skipped") != NULL);
	CHECK("one notice for the pop3/smtp directives",
	    count(logbuf, "pop3/smtp directives have no effect") == 1 &&
	    strstr(logbuf, ":6: \"pop3_auth\" and the other") != NULL);
	CHECK("a notice per skipped server, by protocol or port",
	    strstr(logbuf, ":14: pop3 server skipped") != NULL &&
	    strstr(logbuf, ":17: smtp server skipped") != NULL &&
	    strstr(logbuf, ":18: smtp server skipped") != NULL);
	CHECK("a skipped server's refusals are not reported",
	    strstr(logbuf, "[error]") == NULL);
	config_free(conf);

	conf = parse("sslon", "mail {\n  ssl on;\n" AUTH SERVER "}\n");
	CHECK("ssl on is accepted, with nginx's warning",
	    strstr(logbuf, ":2: the \"ssl\" directive is deprecated, use "
	    "the \"listen ... ssl\" directive instead") != NULL &&
	    strstr(logbuf, "[warn]") != NULL);
	CHECK("ssl on makes every listen of the server TLS",
	    conf == NULL && strstr(logbuf, "no \"ssl_certificate\" is "
	    "defined for the \"listen ... ssl\" directive") != NULL);
	config_free(conf);

	s = onedirective("sslv3", "ssl_protocols SSLv3 TLSv1.2;", &conf);
	CHECK("SSLv3 is accepted and not offered", s != NULL &&
	    s->tls_protocols == TLS_PROTOCOL_TLSv1_2 &&
	    strstr(logbuf, ":2: \"SSLv3\" in \"ssl_protocols\" is not "
	    "offered") != NULL);
	config_free(conf);

	/* a long list, as Certbot's options-ssl-nginx.conf has */
	ciphers[0] = '\0';
	for (n = 0; strlen(ciphers) < 1000; n++)
		strlcat(ciphers, n % 2 ? "ECDHE-RSA-AES128-GCM-SHA256:" :
		    "ECDHE-ECDSA-AES256-GCM-SHA384:", sizeof(ciphers));
	strlcat(ciphers, "DHE-RSA-AES128-GCM-SHA256", sizeof(ciphers));
	snprintf(text, sizeof(text), "mail {\n  ssl_ciphers \"%s\";\n" AUTH
	    SERVER "}\n", ciphers);
	conf = parse("ciphers", text);
	s = conf ? TAILQ_FIRST(&conf->servers) : NULL;
	CHECK("ssl_ciphers of any length", s != NULL &&
	    strcmp(s->tls_ciphers, ciphers) == 0);
	config_free(conf);
}

static int
test_dispatch(struct imsgev *iev, struct imsg *imsg)
{
	return (0);
}

static const struct proc_peer test_peer = {
	"test", test_dispatch, NULL, NULL, 1
};

/* conf sent over a socketpair as the parent sends it, and read back */
static struct config *
imsg_roundtrip(struct config *conf, int with_listeners)
{
	struct config		*got;
	struct imsgev		 iev;
	struct imsgbuf		 ibuf;
	struct imsg		 imsg;
	int			 sv[2], done = 0, bufsz;
	ssize_t			 n;

	if (socketpair(AF_UNIX, SOCK_STREAM, 0, sv) == -1) {
		perror("socketpair");
		exit(2);
	}
	/* the whole configuration is flushed before it is read */
	bufsz = 4 * 1024 * 1024;
	(void)setsockopt(sv[0], SOL_SOCKET, SO_SNDBUF, &bufsz, sizeof(bufsz));
	proc_channel(&iev, sv[0], &test_peer, NULL);
	config_send(&iev, conf, with_listeners);
	if (imsgbuf_flush(&iev.ibuf) == -1) {
		perror("imsgbuf_flush");
		exit(2);
	}
	if (imsgbuf_init(&ibuf, sv[1]) == -1 ||
	    imsgbuf_set_maxsize(&ibuf, 256 * 1024) == -1)	/* as proc.c */
		exit(2);
	imsgbuf_allow_fdpass(&ibuf);
	got = config_new();
	while (!done) {
		if ((n = imsgbuf_read(&ibuf)) != 1)
			break;
		while (!done && (n = imsg_get(&ibuf, &imsg)) > 0) {
			done = config_recv(got, &imsg);
			imsg_free(&imsg);
		}
	}
	CHECK("imsg: the configuration arrives complete", done == 1);
	imsgbuf_clear(&ibuf);
	close(sv[1]);
	imsgev_clear(&iev);
	return (got);
}

static void
test_imsg(void)
{
	struct config		*conf, *got;
	struct server_conf	*s;
	struct listen_conf	*lc;
	struct auth_header	*h;
	int			 fdok;

	conf = parse("imsg", typical);
	if (conf == NULL)
		return;
	lc = TAILQ_FIRST(&conf->listens);
	lc->fd = socket(AF_INET, SOCK_STREAM, 0);
	event_init();

	/* the auth process: the auth service's address and headers */
	got = imsg_roundtrip(conf, 0);
	s = TAILQ_FIRST(&got->servers);
	h = s ? TAILQ_FIRST(&s->auth_headers) : NULL;
	CHECK("imsg: global values",
	    strcmp(got->user, "nobody") == 0 &&
	    got->worker_connections == 1024 &&
	    strcmp(got->pid, "/var/run/imaprelayd.pid") == 0);
	CHECK("imsg: server and header", s != NULL && s->id == 1 &&
	    strcmp(s->server_name, "mail.example.com") == 0 &&
	    strcmp(s->auth_http.addrs, "127.0.0.1") == 0 &&
	    s->imap_client_buffer == 8192 && h != NULL &&
	    strcmp(h->value, "secret key") == 0 &&
	    config_server_byid(got, 1) == s &&
	    config_server_byid(got, 2) == NULL);
	CHECK("imsg: no listener for auth", TAILQ_EMPTY(&got->listens));
	config_free(got);

	/* an imap worker: the listeners, nothing to reach auth_http with */
	got = imsg_roundtrip(conf, 1);
	s = TAILQ_FIRST(&got->servers);
	CHECK("imsg: a worker gets no auth_http_header, URL or address",
	    s != NULL && s->auth_http_set && TAILQ_EMPTY(&s->auth_headers) &&
	    s->auth_http.url[0] == '\0' && s->auth_http.addrs[0] == '\0' &&
	    s->auth_http.host[0] == '\0' && s->auth_http.port == 0 &&
	    s->imap_client_buffer == 8192);
	lc = TAILQ_FIRST(&got->listens);
	fdok = lc != NULL && lc->fd != -1 && fcntl(lc->fd, F_GETFD) != -1;
	CHECK("imsg: listener with its socket", fdok &&
	    strcmp(lc->name, "127.0.0.1:10143") == 0 && lc->server_id == 1 &&
	    lc->file == NULL);
	config_free(got);
	config_free(conf);
}

static void
cleanup(void)
{
	char	 cmd[PATH_MAX + 16];

	snprintf(cmd, sizeof(cmd), "rm -rf '%s'", dir);
	if (system(cmd) == -1)
		perror("rm");
}

int
main(void)
{
	snprintf(dir, sizeof(dir), "%s/test_config.XXXXXX",
	    getenv("TMPDIR") ? getenv("TMPDIR") : "/tmp");
	if (mkdtemp(dir) == NULL) {
		perror("mkdtemp");
		return (2);
	}
	log_init(1, LOG_DAEMON);
	log_procinit("test");

	test_typical();
	test_defaults();
	test_inherit();
	test_units();
	test_listen();
	test_proxy_protocol();
	test_ccert();
	test_accepted();
	test_refused();
	test_error_log();
	test_nginx_leftovers();
	test_imsg();

	cleanup();
	UNIT_EXIT();
}
