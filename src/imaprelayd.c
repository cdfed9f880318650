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
 * imaprelayd: the privileged parent.
 *
 * It parses the configuration, binds the listening sockets, and
 * fork+execs the children: one auth process and the imap workers.  It
 * hands them their configuration and sockets over imsg, restarts
 * children that die, and answers signals: SIGHUP reloads, SIGUSR1
 * reopens error_log, SIGTERM stops gracefully, SIGQUIT and SIGINT stop
 * fast.  It never parses a byte that came from the network.
 *
 * Children belong to a generation: the configuration they were started
 * with.  A reload starts a new generation and drains the old one, so
 * established sessions keep running on the configuration they began
 * with while new clients get the new one.
 */

#include <sys/types.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <sys/wait.h>

#include <netinet/in.h>
#include <netinet/tcp.h>

#include <errno.h>
#include <fcntl.h>
#include <paths.h>
#include <poll.h>
#include <pwd.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <syslog.h>
#include <unistd.h>

#include "imaprelayd.h"

#define SHUTDOWN_GRACE_SEC	10	/* SIGTERM default, shutdown_timeout */
#define SHUTDOWN_KILL_SEC	5	/* workers told BYE: then SIGKILL */
#define READY_WAIT_SEC		60	/* daemonize: the first process waits */
#define NOFILE_SPARE		64	/* descriptors beside the clients' */
#define RESPAWN_BACKOFF_SEC	1	/* a child that keeps dying */

enum child_kind {
	CHILD_AUTH,
	CHILD_IMAP,
	CHILD_TEMPLATE		/* isolation connection: forks the workers */
};

struct generation;

struct child {
	TAILQ_ENTRY(child)	 entry;
	pid_t			 pid;
	enum child_kind		 kind;
	uint32_t		 id;		/* worker id, auth channels */
	struct generation	*gen;
	struct imsgev		 iev;
	int			 ready;
	int			 sessions;	/* open client sessions */
	int			 accepted;	/* connection mode: not spare */
	int			 admit;		/* enum admission */
	int			 admit_sent;
	int			 draining;
	int			 killed;	/* it misbehaved: SIGKILL sent */
	const char		*why;		/* what was wrong with its imsg */
	/* a worker forked by a template: that template, NULL once gone */
	int			 forked;
	struct child		*tpl;
	/* a template */
	unsigned int		 forking;	/* forks asked, not yet seen */
	unsigned int		 forking_serve;	/* ... of them admitted */
	unsigned int		 forks;		/* workers it forked */
	int			 retiring;	/* a fresh one replaces it */
	struct event		 ev_age;	/* template_max_age */
};
TAILQ_HEAD(child_list, child);

struct generation {
	TAILQ_ENTRY(generation)	 entry;
	uint32_t		 id;
	struct config		*conf;
	struct child		*auth;
	struct child		*tpl;		/* the template that forks */
	struct child		*tpl_old;	/* it replaces this one */
	int			 draining;
	int			 nworkers;	/* shared mode target */
	unsigned int		 cap;		/* concurrent clients */
};
TAILQ_HEAD(generation_list, generation);

static struct child_list	 children = TAILQ_HEAD_INITIALIZER(children);
static struct generation_list	 generations =
    TAILQ_HEAD_INITIALIZER(generations);
static struct generation	*current;

static const char	*conffile = IMAPRELAYD_CONF;
static const char	*self_path;
static int		 debug;
static int		 verbose;
/* a child's -U: the auth_http unix: sockets it must reach */
#define UNIX_PATHS_MAX		16
static char		*unix_paths[UNIX_PATHS_MAX + 1];
static int		 nunix_paths;
static int		 shutting_down;
static int		 started;	/* "startup" logged */
static int		 ready_fd = -1;	/* daemonize: tells the first process */
static int		 overloaded;
static int		 subreaper;	/* orphaned workers come back to us */
static uint32_t		 next_child_id = 1;
static uint32_t		 next_gen_id = 1;
static struct event	 ev_sigterm, ev_sigint, ev_sigquit, ev_sighup;
static struct event	 ev_sigusr1, ev_sigusr2, ev_sigchld;
static struct event	 ev_shutdown, ev_kill, ev_respawn;

/* TLS session ticket keys: [0] older (decrypts), [1] newest */
static struct ticket_key ticket_keys[2];
static int		 ticket_nkeys;
static uint32_t		 ticket_rev;
static uint8_t		 ticket_sid[TICKET_SID_LEN];
static struct event	 ev_ticket;

__attribute__((noreturn)) static void usage(void);
static void	 parent_sig_handler(int, short, void *);
static int	 parent_dispatch_imap(struct imsgev *, struct imsg *);
static int	 parent_dispatch_auth(struct imsgev *, struct imsg *);
static void	 child_gone(struct imsgev *);
static void	 child_bad(struct imsgev *, struct imsg *);
static int	 child_ready(struct child *, struct imsg *);
static int	 child_accepted(struct child *, struct imsg *);
static int	 child_closed(struct child *, struct imsg *);
static int	 child_worker_bad(struct child *, struct imsg *);
static void	 child_kill(struct child *);
static int	 parent_dispatch_template(struct imsgev *, struct imsg *);
static int	 template_worker(struct child *, struct imsg *);
static int	 template_exited(struct child *, struct imsg *);
static void	 template_ready(struct child *);
static void	 template_rotate(struct generation *, const char *);
static void	 template_aged(int, short, void *);
static void	 child_exited(struct child *, int);
static struct child *child_find(pid_t);
static void	 child_drain(struct child *);
static void	 generation_drain_auth(struct generation *);
static int	 child_empty(struct child *, struct imsg *);
static int	 generation_want(struct generation *);
static int	 generation_spares(struct generation *);
static int	 pending_serve(void);
static int	 serve_room(void);
static int	 spare_is_current(struct child *);
static struct child *child_spawn(struct generation *, enum child_kind);
static void	 child_give_auth_channel(struct child *, struct child *);
static void	 generation_fill(struct generation *);
static void	 generation_drain(struct generation *);
static void	 parent_admission(void);
static void	 parent_shutdown_check(void);
static void	 ticket_init(void);
static void	 ticket_rotate(int, short, void *);
static void	 ticket_arm(void);
static void	 ticket_new(void);
static void	 ticket_send(struct child *, struct ticket_key *);

/* the parent's peers, one kind of child each */
static const struct proc_peer parent_peers[] = {
	[CHILD_AUTH] =	{ "auth process", parent_dispatch_auth, child_gone,
			    child_bad, 1 },
	[CHILD_IMAP] =	{ "imap worker", parent_dispatch_imap, child_gone,
			    child_bad, 1 },
	[CHILD_TEMPLATE] = { "template", parent_dispatch_template, child_gone,
			    child_bad, 1 },
};

static void
usage(void)
{
	extern char	*__progname;

	fprintf(stderr, "usage: %s [-dnv] [-f file]\n", __progname);
	exit(1);
}

/* the path to re-exec ourselves for each child */
static const char *
find_self_path(const char *argv0)
{
	static char	 path[PATH_MAX];
	ssize_t		 n;

	n = readlink("/proc/self/exe", path, sizeof(path) - 1);
	if (n > 0) {
		path[n] = '\0';
		return (path);
	}
	if (argv0[0] == '/')
		return (argv0);
	if (strchr(argv0, '/') != NULL && realpath(argv0, path) != NULL)
		return (path);
	fatalx("need an absolute path to re-exec, run as %s from PATH "
	    "with its full name", argv0);
}

/*
 * Into the background as a service manager expects of Type=forking:
 * the first process exits only once the daemon serves (pid file
 * written, every child configured), 1 if it never got there.
 */
static void
daemonize(void)
{
	struct pollfd	 pfd;
	char		 c;
	int		 p[2], null;

	if (pipe2(p, O_CLOEXEC) == -1)
		fatal("pipe");
	switch (fork()) {
	case -1:
		fatal("fork");
	case 0:
		break;
	default:
		close(p[1]);
		pfd.fd = p[0];
		pfd.events = POLLIN;
		if (poll(&pfd, 1, READY_WAIT_SEC * 1000) == 1 &&
		    read(p[0], &c, 1) == 1)
			_exit(0);
		fprintf(stderr, "imaprelayd: not ready after %d seconds or "
		    "exited, see the log\n", READY_WAIT_SEC);
		_exit(1);
	}
	close(p[0]);
	ready_fd = p[1];
	if (setsid() == -1)
		fatal("setsid");
	if (chdir("/") == -1)
		fatal("chdir /");
	if ((null = open("/dev/null", O_RDWR)) == -1)
		fatal("/dev/null");
	dup2(null, STDIN_FILENO);
	dup2(null, STDOUT_FILENO);
	dup2(null, STDERR_FILENO);
	if (null > STDERR_FILENO)
		close(null);
}

/* a relative -f made absolute, not resolved: a symlink may change */
static const char *
conf_abspath(const char *path)
{
	static char	 abs[PATH_MAX];
	char		 cwd[PATH_MAX];

	if (path[0] == '/')
		return (path);
	if (getcwd(cwd, sizeof(cwd)) == NULL)
		fatal("getcwd");
	if ((size_t)snprintf(abs, sizeof(abs), "%s/%s", cwd, path) >=
	    sizeof(abs))
		fatalx("%s/%s: path too long", cwd, path);
	return (abs);
}

static int
worker_count(struct config *conf)
{
	long	 ncpu;

	if (conf->worker_processes > 0)
		return (conf->worker_processes);
	ncpu = sysconf(_SC_NPROCESSORS_ONLN);
	return (ncpu > 0 ? (int)ncpu : 1);
}

static int
listen_same(struct listen_conf *a, struct listen_conf *b)
{
	return (a->sslen == b->sslen && memcmp(&a->ss, &b->ss, a->sslen) == 0);
}

static void
listen_setopts(struct listen_conf *lc, int s)
{
	int	 on = 1;

	if (setsockopt(s, SOL_SOCKET, SO_REUSEADDR, &on, sizeof(on)) == -1)
		fatal("setsockopt SO_REUSEADDR");
	if (lc->ss.ss_family == AF_INET6 && lc->ipv6only != -1 &&
	    setsockopt(s, IPPROTO_IPV6, IPV6_V6ONLY, &lc->ipv6only,
	    sizeof(lc->ipv6only)) == -1)
		fatal("setsockopt IPV6_V6ONLY");
	if (lc->rcvbuf > 0 && setsockopt(s, SOL_SOCKET, SO_RCVBUF,
	    &lc->rcvbuf, sizeof(lc->rcvbuf)) == -1)
		log_warn("%s: setsockopt SO_RCVBUF", lc->name);
	if (lc->sndbuf > 0 && setsockopt(s, SOL_SOCKET, SO_SNDBUF,
	    &lc->sndbuf, sizeof(lc->sndbuf)) == -1)
		log_warn("%s: setsockopt SO_SNDBUF", lc->name);
	if (lc->keepalive == 1 && setsockopt(s, SOL_SOCKET, SO_KEEPALIVE,
	    &on, sizeof(on)) == -1)
		log_warn("%s: setsockopt SO_KEEPALIVE", lc->name);
#ifdef TCP_KEEPIDLE
	if (lc->keepalive == 1 && lc->keepidle > 0)
		setsockopt(s, IPPROTO_TCP, TCP_KEEPIDLE, &lc->keepidle,
		    sizeof(lc->keepidle));
	if (lc->keepalive == 1 && lc->keepintvl > 0)
		setsockopt(s, IPPROTO_TCP, TCP_KEEPINTVL, &lc->keepintvl,
		    sizeof(lc->keepintvl));
	if (lc->keepalive == 1 && lc->keepcnt > 0)
		setsockopt(s, IPPROTO_TCP, TCP_KEEPCNT, &lc->keepcnt,
		    sizeof(lc->keepcnt));
#endif
}

/* servers told apart by SNI (parse.c) share the first one's socket */
static int
sni_listen_fd(struct config *conf, struct listen_conf *lc)
{
	struct listen_conf	*l;
	int			 fd;

	TAILQ_FOREACH(l, &conf->listens, entry) {
		if (l == lc)
			break;
		if (l->fd == -1 || strcmp(l->name, lc->name) != 0)
			continue;
		if ((fd = fcntl(l->fd, F_DUPFD_CLOEXEC, 0)) == -1)
			fatal("dup");
		return (fd);
	}
	return (-1);
}

/*
 * Bind every listen of conf, reusing the sockets of old (the running
 * configuration) for addresses both have, so a reload never refuses a
 * client.  Returns -1 with the reason logged if one cannot be bound.
 */
static int
listen_bind_all(struct config *conf, struct config *old)
{
	struct listen_conf	*lc, *olc;
	int			 s;

	TAILQ_FOREACH(lc, &conf->listens, entry) {
		lc->fd = -1;
		if (old != NULL) {
			TAILQ_FOREACH(olc, &old->listens, entry) {
				if (olc->fd != -1 && listen_same(lc, olc)) {
					lc->fd = olc->fd;
					olc->fd = -1;
					break;
				}
			}
		}
		if (lc->fd != -1 || (lc->fd = sni_listen_fd(conf, lc)) != -1)
			continue;
		s = socket(lc->ss.ss_family, SOCK_STREAM | SOCK_NONBLOCK |
		    SOCK_CLOEXEC, 0);
		if (s == -1) {
			log_warn("listen %s: socket", lc->name);
			return (-1);
		}
		listen_setopts(lc, s);
		if (bind(s, (struct sockaddr *)&lc->ss, lc->sslen) == -1) {
			log_warn("listen %s: bind", lc->name);
			close(s);
			return (-1);
		}
		if (listen(s, lc->backlog > 0 ? lc->backlog : 511) == -1) {
			log_warn("listen %s", lc->name);
			close(s);
			return (-1);
		}
		lc->fd = s;
	}
	return (0);
}

static void
listen_close_all(struct config *conf)
{
	struct listen_conf	*lc;

	TAILQ_FOREACH(lc, &conf->listens, entry) {
		if (lc->fd != -1)
			close(lc->fd);
		lc->fd = -1;
	}
}

/*
 * Logs.  The parent opens every error_log of a configuration -- files,
 * stderr, sockets connected to syslog servers -- and each child gets a
 * copy of the descriptors with its configuration: children never open
 * anything.
 */

static void	start_warning(const char *, ...)
		    __attribute__((format(printf, 1, 2)));

/*
 * What the operator must hear at start, before the daemon leaves the
 * terminal: on stderr as well as in the log.
 */
static void
start_warning(const char *fmt, ...)
{
	char	 msg[1024];
	va_list	 ap;

	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	if (!debug && !started)
		fprintf(stderr, "imaprelayd: %s\n", msg);
	log_warning("%s", msg);
}

/* syslog(3) writes to /dev/log: without it every line is lost, silently */
static void
syslog_check(struct config *conf)
{
	struct sockaddr_un	 sun;
	int			 fd;

	if (conf->error_log.file[0] != '\0' ||
	    conf->error_log.syslog_server[0] != '\0')
		return;
	memset(&sun, 0, sizeof(sun));
	sun.sun_family = AF_UNIX;
	strlcpy(sun.sun_path, _PATH_LOG, sizeof(sun.sun_path));
	if ((fd = socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0)) == -1)
		return;
	if (connect(fd, (struct sockaddr *)&sun, sizeof(sun)) == -1)
		start_warning("syslog: %s: %s: log lines are lost; set "
		    "error_log (a file, or syslog:server=) or run with -d",
		    _PATH_LOG, strerror(errno));
	close(fd);
}

/* one destination; 0, or -1 with the reason said if it cannot be */
static int
log_dest_open(struct log_dest *dest)
{
	int	 fd;

	if (dest->syslog_server[0] != '\0') {
		if ((fd = socket(dest->syslog_ss.ss_family, SOCK_DGRAM |
		    SOCK_CLOEXEC | SOCK_NONBLOCK, 0)) == -1 ||
		    connect(fd, (struct sockaddr *)&dest->syslog_ss,
		    dest->syslog_sslen) == -1) {
			/* as nginx: not fatal, the lines are lost */
			start_warning("error_log syslog:server=%s: %s: its log "
			    "lines are lost", dest->syslog_server,
			    strerror(errno));
			if (fd != -1)
				close(fd);
			fd = -1;
		}
	} else if (dest->file[0] == '\0')
		fd = -1;	/* syslog(3) */
	else if (strcmp(dest->file, "stderr") == 0)
		fd = fcntl(STDERR_FILENO, F_DUPFD_CLOEXEC, 0);
	else if ((fd = open(dest->file, O_WRONLY | O_APPEND | O_CREAT |
	    O_CLOEXEC, 0640)) == -1) {
		log_warn("error_log %s", dest->file);
		return (-1);
	}
	if (dest->fd != -1)
		close(dest->fd);
	dest->fd = fd;
	return (0);
}

/* every error_log of a configuration: the main one, each server's */
static int
logs_open(struct config *conf)
{
	struct server_conf	*srv;

	if (log_dest_open(&conf->error_log) == -1)
		return (-1);
	TAILQ_FOREACH(srv, &conf->servers, entry)
		if (srv->error_log_set && log_dest_open(&srv->error_log) == -1)
			return (-1);
	return (0);
}

/* the parent's own lines go to the main error_log (not with -d) */
static void
logs_use(struct config *conf)
{
	int	 fd = -1;

	if (debug)
		return;
	log_sethostname(conf->hostname);
	if (conf->error_log.fd != -1 &&
	    (fd = fcntl(conf->error_log.fd, F_DUPFD_CLOEXEC, 0)) == -1)
		fatal("%s: dup", __func__);
	log_setdest(0, &conf->error_log, fd);
}

/* a copy of a destination reopened, to every child that uses it */
static void
children_send_log(struct generation *gen, uint32_t id,
    struct log_dest *dest)
{
	struct child	*c;
	int		 fd;

	TAILQ_FOREACH(c, &children, entry) {
		if (c->gen != gen)
			continue;
		if ((fd = fcntl(dest->fd, F_DUPFD_CLOEXEC, 0)) == -1) {
			log_warn("%s: dup", __func__);
			return;
		}
		imsgev_compose(&c->iev, IMSG_CTL_LOG_FD, 0, fd, &id,
		    sizeof(id));
	}
}

static int
reopen_log(struct generation *gen, uint32_t id, struct log_dest *dest)
{
	if (log_dest_open(dest) == -1)
		return (-1);
	if (dest->fd != -1)
		children_send_log(gen, id, dest);
	return (0);
}

/*
 * SIGUSR1, as nginx: logrotate moved the files away, write new ones.
 * Every generation's: children draining an old one log too.
 */
static void
parent_reopen_logs(void)
{
	struct generation	*gen;
	struct server_conf	*srv;

	TAILQ_FOREACH(gen, &generations, entry) {
		if (reopen_log(gen, 0, &gen->conf->error_log) == -1)
			continue;
		TAILQ_FOREACH(srv, &gen->conf->servers, entry)
			if (srv->error_log_set)
				reopen_log(gen, srv->id, &srv->error_log);
	}
	if (current != NULL)
		logs_use(current->conf);
	if (current != NULL && current->conf->error_log.file[0] != '\0')
		log_info("reopened error_log %s", current->conf->error_log.file);
	else
		log_info("reopened error_log");
}

static void
write_pidfile(struct config *conf)
{
	FILE	*fp;

	if (conf->pid[0] == '\0')
		return;
	if ((fp = fopen(conf->pid, "w")) == NULL) {
		log_warn("pid %s", conf->pid);
		return;
	}
	fprintf(fp, "%d\n", (int)getpid());
	fclose(fp);
}

/*
 * What a process may need at the cap: the parent and the auth process
 * hold a descriptor per worker (isolation connection: one per client),
 * a shared worker two per client.  The soft limit is raised as far as
 * the hard one allows (children inherit it); short of that, say so, on
 * stderr too at start.  worker_rlimit_nofile sets both limits, as
 * nginx's does (root may raise the hard one).
 */
static void
nofile_check(struct config *conf)
{
	struct rlimit	 rl;
	rlim_t		 need, cap;

	cap = (rlim_t)worker_count(conf) * conf->worker_connections;
	if (conf->rlimit_nofile != 0) {
		rl.rlim_cur = rl.rlim_max = conf->rlimit_nofile;
		if (setrlimit(RLIMIT_NOFILE, &rl) == -1)
			start_warning("worker_rlimit_nofile %u: setrlimit: %s",
			    conf->rlimit_nofile, strerror(errno));
		return;
	}
	if (conf->isolation == ISOLATION_CONNECTION)
		need = cap + NOFILE_SPARE;
	else
		need = 2 * (rlim_t)conf->worker_connections + NOFILE_SPARE;
	if (getrlimit(RLIMIT_NOFILE, &rl) == -1 || rl.rlim_cur >= need)
		return;
	rl.rlim_cur = rl.rlim_max != RLIM_INFINITY && rl.rlim_max < need ?
	    rl.rlim_max : need;
	if (setrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur >= need)
		return;
	getrlimit(RLIMIT_NOFILE, &rl);
	start_warning("open files limit %llu is below the %llu a process may "
	    "need at the cap of %llu clients: raise it (systemd LimitNOFILE=, "
	    "ulimit -n, login.conf openfiles) or set worker_rlimit_nofile",
	    (unsigned long long)rl.rlim_cur, (unsigned long long)need,
	    (unsigned long long)cap);
}

static struct generation *
generation_new(struct config *conf)
{
	struct generation	*gen;

	if ((gen = calloc(1, sizeof(*gen))) == NULL)
		fatal("calloc");
	gen->id = next_gen_id++;
	gen->conf = conf;
	gen->nworkers = worker_count(conf);
	gen->cap = (unsigned int)gen->nworkers * conf->worker_connections;
	/* the first is checked before the daemon leaves the terminal */
	if (started)
		nofile_check(conf);
	TAILQ_INSERT_TAIL(&generations, gen, entry);
	return (gen);
}

static int
generation_children(struct generation *gen)
{
	struct child	*c;
	int		 n = 0;

	TAILQ_FOREACH(c, &children, entry)
		if (c->gen == gen)
			n++;
	return (n);
}

/* an old generation is gone once its last child has exited */
static void
generation_reap(struct generation *gen)
{
	if (gen == current || generation_children(gen) > 0)
		return;
	TAILQ_REMOVE(&generations, gen, entry);
	listen_close_all(gen->conf);
	config_free(gen->conf);
	free(gen);
}

/* the distinct auth_http unix: paths of a configuration, as -U args */
static int
unix_path_args(struct config *conf, char **argv, int argc)
{
	struct server_conf	*sc;
	int			 i, n = 0;

	TAILQ_FOREACH(sc, &conf->servers, entry) {
		if (sc->auth_http.unix_path[0] == '\0')
			continue;
		for (i = 0; i < n; i++)
			if (strcmp(argv[argc + 2 * i + 1],
			    sc->auth_http.unix_path) == 0)
				break;
		if (i < n || n == UNIX_PATHS_MAX)
			continue;
		argv[argc + 2 * n] = "-U";
		argv[argc + 2 * n + 1] = sc->auth_http.unix_path;
		n++;
	}
	return (argc + 2 * n);
}

static pid_t
child_exec(enum child_kind kind, int chan, struct config *conf)
{
	char	*argv[12 + 2 * UNIX_PATHS_MAX];
	int	 argc = 0, i, logfd;

	/*
	 * A short argv[0]: libbsd's setproctitle() marks a title shorter
	 * than the original argv[0] with a trailing "." in ps.
	 */
	argv[argc++] = "imaprelayd";
	argv[argc++] = "-P";
	argv[argc++] = kind == CHILD_AUTH ? "auth" :
	    kind == CHILD_TEMPLATE ? "template" : "imap";
	argv[argc++] = "-u";
	argv[argc++] = conf->user;
	if (debug)
		argv[argc++] = "-d";
	/* a file: the child logs there before its configuration comes */
	logfd = conf->error_log.file[0] != '\0' &&
	    conf->error_log.syslog_server[0] == '\0' ? conf->error_log.fd : -1;
	if (logfd != -1)
		argv[argc++] = "-L";
	for (i = 0; i < verbose && i < 2; i++)
		argv[argc++] = "-v";
	if (kind == CHILD_AUTH)
		argc = unix_path_args(conf, argv, argc);
	argv[argc] = NULL;
	return (proc_exec(self_path, argv, chan, logfd));
}

static struct child *
child_spawn(struct generation *gen, enum child_kind kind)
{
	struct child	*c;
	int		 sp[2];

	if (proc_socketpair(sp) == -1)
		return (NULL);
	if ((c = calloc(1, sizeof(*c))) == NULL)
		fatal("calloc");
	c->kind = kind;
	c->gen = gen;
	c->id = next_child_id++;
	if ((c->pid = child_exec(kind, sp[1], gen->conf)) == -1) {
		log_warn("fork");
		close(sp[0]);
		close(sp[1]);
		free(c);
		return (NULL);
	}
	close(sp[1]);
	set_nonblock(sp[0]);
	proc_channel(&c->iev, sp[0], &parent_peers[kind], c);
	TAILQ_INSERT_TAIL(&children, c, entry);
	/* before the configuration: it must not accept without knowing */
	if (kind == CHILD_IMAP)
		parent_admission();
	/* the ticket keys first: the worker builds its TLS with them */
	if (kind != CHILD_AUTH) {
		ticket_send(c, &ticket_keys[0]);
		ticket_send(c, &ticket_keys[1]);
	}
	config_send(&c->iev, gen->conf, kind != CHILD_AUTH);
	if (kind == CHILD_AUTH)
		gen->auth = c;
	else if (kind == CHILD_TEMPLATE) {
		gen->tpl = c;
		evtimer_set(&c->ev_age, template_aged, c);
	} else if (gen->auth != NULL)
		child_give_auth_channel(gen->auth, c);
	log_debug("started %s pid %d", parent_peers[kind].name, (int)c->pid);
	return (c);
}

/* one socketpair per worker: the worker talks to auth directly */
static void
child_give_auth_channel(struct child *auth, struct child *worker)
{
	int	 sp[2];

	if (proc_socketpair(sp) == -1)
		return;
	imsgev_compose(&auth->iev, IMSG_CTL_AUTH_CHANNEL, worker->id, sp[0],
	    &worker->id, sizeof(worker->id));
	imsgev_compose(&worker->iev, IMSG_CTL_AUTH_CHANNEL, worker->id, sp[1],
	    &worker->id, sizeof(worker->id));
}

static int
generation_spares(struct generation *gen)
{
	struct child	*c;
	int		 n = 0;

	TAILQ_FOREACH(c, &children, entry)
		if (c->gen == gen && c->kind == CHILD_IMAP &&
		    !c->accepted && !c->draining)
			n++;
	return (n);
}

/* idle workers a generation keeps: its spares, or its shared workers */
static int
generation_want(struct generation *gen)
{
	int	 want;

	want = gen->conf->isolation == ISOLATION_CONNECTION ?
	    (int)gen->conf->spare_workers : gen->nworkers;
	return (want < 1 ? 1 : want);
}

/*
 * Bring a generation to strength: its auth process, and either the
 * spare per-connection workers or the shared workers.
 */
static void
generation_fill(struct generation *gen)
{
	struct config	*conf = gen->conf;
	struct child	*tpl;
	int		 want, have, admit;

	if (shutting_down || gen->draining)
		return;
	if (gen->auth == NULL && child_spawn(gen, CHILD_AUTH) == NULL)
		goto later;
	want = generation_want(gen);
	if (conf->isolation == ISOLATION_SHARED) {
		for (have = generation_spares(gen); have < want; have++)
			if (child_spawn(gen, CHILD_IMAP) == NULL)
				goto later;
		return;
	}
	/* connection: spares forked by the template, once it is ready */
	if (gen->tpl == NULL && child_spawn(gen, CHILD_TEMPLATE) == NULL)
		goto later;
	/* a fresh template forks once ready; the one it replaces till then */
	tpl = gen->tpl->ready ? gen->tpl : gen->tpl_old;
	if (tpl == NULL || !tpl->ready)
		return;
	have = generation_spares(gen) + (int)gen->tpl->forking;
	if (gen->tpl_old != NULL)
		have += gen->tpl_old->forking;
	for (; have < want; have++) {
		/*
		 * Admitted at birth while there is room: the worker
		 * accepts at once, one round trip sooner in a burst.
		 */
		admit = gen == current && serve_room() > 0 ? ADMIT_SERVE :
		    ADMIT_PAUSE;
		if (imsgev_compose(&tpl->iev, IMSG_TPL_FORK, 0, -1, &admit,
		    sizeof(admit)) == -1)
			goto later;
		tpl->forking++;
		if (admit == ADMIT_SERVE)
			tpl->forking_serve++;
	}
	return;
 later:
	if (!evtimer_pending(&ev_respawn, NULL)) {
		struct timeval	 tv = { RESPAWN_BACKOFF_SEC, 0 };

		evtimer_add(&ev_respawn, &tv);
	}
}

static void
parent_respawn(int fd, short event, void *arg)
{
	if (current != NULL)
		generation_fill(current);
}

static void
child_drain(struct child *c)
{
	if (c->draining)
		return;
	c->draining = 1;
	imsgev_compose(&c->iev, IMSG_CTL_DRAIN, 0, -1, NULL, 0);
}

static void
generation_drain(struct generation *gen)
{
	struct child	*c;

	gen->draining = 1;
	TAILQ_FOREACH(c, &children, entry)
		if (c->gen == gen && c != gen->auth)
			child_drain(c);
	generation_drain_auth(gen);
}

/*
 * A draining auth process exits once no worker has a channel to it.
 * A worker its template forked before the drain may have a client
 * already (admitted at birth) and still be on its way to us: the auth
 * process is drained only once no such fork is outstanding.
 */
static void
generation_drain_auth(struct generation *gen)
{
	struct child	*c;

	if (!gen->draining || gen->auth == NULL)
		return;
	TAILQ_FOREACH(c, &children, entry)
		if (c->kind == CHILD_TEMPLATE && c->gen == gen &&
		    c->forking > 0)
			return;
	child_drain(gen->auth);
}

static int
active_sessions(void)
{
	struct child	*c;
	int		 n = 0;

	TAILQ_FOREACH(c, &children, entry)
		n += c->sessions;
	return (n);
}

static int
spare_is_current(struct child *c)
{
	return (c->kind == CHILD_IMAP && c->gen == current && !c->accepted &&
	    !c->draining);
}

static void
spare_admit(struct child *c, int admit)
{
	if (c->admit_sent && c->admit == admit)
		return;
	c->admit = admit;
	c->admit_sent = 1;
	imsgev_compose(&c->iev, IMSG_CTL_ADMISSION, 0, -1, &admit,
	    sizeof(admit));
}

/*
 * In connection mode the cap is global and only the parent can count.
 * While there is room, room spares serve and the others pause, so the
 * cap holds even when several spares accept at the same instant; at
 * the cap every spare answers new clients with a BYE.  Admissions
 * already given are kept first: one is only taken back when the cap
 * itself shrank.
 */
static void
parent_admission(void)
{
	struct child	*c;
	int		 room, over;

	if (current == NULL ||
	    current->conf->isolation != ISOLATION_CONNECTION)
		return;
	room = (int)current->cap - active_sessions();
	over = room <= 0;
	/* workers being forked admitted hold their room already */
	room -= pending_serve();
	/* keep the admissions already given, as far as room allows */
	TAILQ_FOREACH(c, &children, entry) {
		if (!spare_is_current(c) || !c->admit_sent ||
		    c->admit != ADMIT_SERVE)
			continue;
		if (room > 0)
			room--;
		else
			spare_admit(c, over ? ADMIT_REFUSE : ADMIT_PAUSE);
	}
	TAILQ_FOREACH(c, &children, entry) {
		if (!spare_is_current(c) || (c->admit_sent &&
		    c->admit == ADMIT_SERVE))
			continue;
		if (room > 0) {
			spare_admit(c, ADMIT_SERVE);
			room--;
		} else
			spare_admit(c, over ? ADMIT_REFUSE : ADMIT_PAUSE);
	}
	if (over && !overloaded)
		log_warning("%d clients: at the cap, new clients are refused",
		    active_sessions());
	overloaded = over;
}

/*
 * Room held by admissions the loops of parent_admission() do not see:
 * forks of the current generation asked with ADMIT_SERVE, and spares
 * admitted before they were drained (a rotated template's, an old
 * generation's), which may still accept before they read the drain.
 */
static int
pending_serve(void)
{
	struct child	*c;
	int		 n = 0;

	TAILQ_FOREACH(c, &children, entry) {
		if (c->kind == CHILD_TEMPLATE && c->gen == current)
			n += c->forking_serve;
		else if (c->kind == CHILD_IMAP && !spare_is_current(c) &&
		    !c->accepted && !c->killed && c->admit_sent &&
		    c->admit == ADMIT_SERVE &&
		    c->gen->conf->isolation == ISOLATION_CONNECTION)
			n++;
	}
	return (n);
}

/* room under the cap that no admission holds yet */
static int
serve_room(void)
{
	struct child	*c;
	int		 room;

	room = (int)current->cap - active_sessions() - pending_serve();
	TAILQ_FOREACH(c, &children, entry)
		if (spare_is_current(c) && c->admit_sent &&
		    c->admit == ADMIT_SERVE)
			room--;
	return (room);
}

static void
parent_check_startup(void)
{
	struct child	*c;

	if (started || current == NULL)
		return;
	TAILQ_FOREACH(c, &children, entry)
		if (c->gen == current && !c->ready)
			return;
	/* connection mode: the template's first spares are there */
	if (current->tpl == NULL || generation_spares(current) <
	    generation_want(current))
		if (current->conf->isolation == ISOLATION_CONNECTION)
			return;
	started = 1;
	log_info("startup");
	if (ready_fd != -1) {
		if (write(ready_fd, "", 1) == -1)
			log_warn("%s: write", __func__);
		close(ready_fd);
		ready_fd = -1;
	}
}

/*
 * What children say.  A child is not trusted: a message of a type it
 * may not send, of the wrong length, or accounting it cannot hold gets
 * it killed (child_bad()), never the parent.
 */
static int
parent_dispatch_imap(struct imsgev *iev, struct imsg *imsg)
{
	struct child	*c = iev->data;

	switch (imsg_get_type(imsg)) {
	case IMSG_CTL_READY:
		return (child_ready(c, imsg));
	case IMSG_CTL_ACCEPTED:
		return (child_accepted(c, imsg));
	case IMSG_CTL_CLOSED:
		return (child_closed(c, imsg));
	default:
		c->why = "a message it may not send";
		return (-1);
	}
}

static int
parent_dispatch_auth(struct imsgev *iev, struct imsg *imsg)
{
	struct child	*c = iev->data;

	switch (imsg_get_type(imsg)) {
	case IMSG_CTL_READY:
		return (child_ready(c, imsg));
	case IMSG_CTL_WORKER_BAD:
		return (child_worker_bad(c, imsg));
	default:
		c->why = "a message it may not send";
		return (-1);
	}
}

static int
child_empty(struct child *c, struct imsg *imsg)
{
	if (imsg_get_len(imsg) == 0)
		return (0);
	c->why = "a payload where none belongs";
	return (-1);
}

static int
child_ready(struct child *c, struct imsg *imsg)
{
	if (child_empty(c, imsg) == -1)
		return (-1);
	c->ready = 1;
	parent_check_startup();
	return (0);
}

/*
 * A session started.  A connection-mode worker serves one client in
 * its life, a shared one at most worker_connections at a time: more is
 * a lie that would fill the cap for everyone.
 */
static int
child_accepted(struct child *c, struct imsg *imsg)
{
	struct config	*conf = c->gen->conf;

	if (child_empty(c, imsg) == -1)
		return (-1);
	if (conf->isolation == ISOLATION_CONNECTION ? c->accepted :
	    (unsigned int)c->sessions >= conf->worker_connections) {
		c->why = "more sessions than it may hold";
		return (-1);
	}
	c->sessions++;
	if (conf->isolation == ISOLATION_CONNECTION) {
		c->accepted = 1;
		generation_fill(c->gen);
	}
	parent_admission();
	return (0);
}

static int
child_closed(struct child *c, struct imsg *imsg)
{
	if (child_empty(c, imsg) == -1)
		return (-1);
	if (c->sessions == 0) {
		c->why = "a session closed that it never opened";
		return (-1);
	}
	c->sessions--;
	parent_admission();
	return (0);
}

/*
 * The auth process dropped a worker of its generation for what it
 * sent: without an auth channel it is of no use, and it lies.
 */
static int
child_worker_bad(struct child *auth, struct imsg *imsg)
{
	struct child	*c;
	uint32_t	 id;

	if (imsg_get_data(imsg, &id, sizeof(id)) == -1) {
		auth->why = "a malformed message";
		return (-1);
	}
	TAILQ_FOREACH(c, &children, entry)
		if (c->kind == CHILD_IMAP && c->id == id &&
		    c->gen == auth->gen && !c->killed)
			break;
	if (c == NULL)
		return (0);	/* gone already */
	log_warnx("imap worker pid %d: refused by the auth process, killed",
	    (int)c->pid);
	child_kill(c);
	return (0);
}

/*
 * The child sent something it must not: kill it, forget its sessions
 * at once (the cap is everyone's), and let SIGCHLD replace it.
 */
static void
child_bad(struct imsgev *iev, struct imsg *imsg)
{
	struct child	*c = iev->data;
	const char	*what = iev->peer->name;

	if (imsg == NULL)
		log_warnx("%s pid %d: a malformed message, killed", what,
		    (int)c->pid);
	else
		log_warnx("%s pid %d: %s (imsg %u, %zu bytes), killed", what,
		    (int)c->pid, c->why != NULL ? c->why :
		    "a message it may not send", imsg_get_type(imsg),
		    imsg_get_len(imsg));
	child_kill(c);
}

static void
child_kill(struct child *c)
{
	if (kill(c->pid, SIGKILL) == -1)
		log_warn("kill %d", (int)c->pid);
	imsgev_clear(&c->iev);
	c->killed = 1;
	c->draining = 1;
	c->sessions = 0;
	if (c->kind == CHILD_IMAP && !shutting_down && c->gen == current)
		generation_fill(c->gen);
	parent_admission();
}

/*
 * The template (isolation connection): it forks the workers we ask
 * for and says how they end.  Nothing else; it is a child like any
 * other and is killed for anything more.
 */
static int
parent_dispatch_template(struct imsgev *iev, struct imsg *imsg)
{
	struct child	*c = iev->data;
	int		 admit;

	switch (imsg_get_type(imsg)) {
	case IMSG_CTL_READY:
		if (c->ready || child_ready(c, imsg) == -1) {
			c->why = "a second ready";
			return (-1);
		}
		template_ready(c);
		break;
	case IMSG_TPL_WORKER:
		return (template_worker(c, imsg));
	case IMSG_TPL_FORK_FAILED:
		if (imsg_get_data(imsg, &admit, sizeof(admit)) == -1 ||
		    c->forking == 0 || (admit == ADMIT_SERVE ?
		    c->forking_serve == 0 : admit != ADMIT_PAUSE)) {
			c->why = "a fork it was not asked for";
			return (-1);
		}
		c->forking--;
		if (admit == ADMIT_SERVE)
			c->forking_serve--;
		parent_admission();
		generation_drain_auth(c->gen);
		log_warnx("template pid %d: fork failed", (int)c->pid);
		if (!evtimer_pending(&ev_respawn, NULL)) {
			struct timeval	 tv = { RESPAWN_BACKOFF_SEC, 0 };

			evtimer_add(&ev_respawn, &tv);
		}
		break;
	case IMSG_TPL_EXITED:
		return (template_exited(c, imsg));
	default:
		c->why = "a message it may not send";
		return (-1);
	}
	return (0);
}

/* a spare it forked: from now on a worker like an exec'd one */
static int
template_worker(struct child *tpl, struct imsg *imsg)
{
	struct tpl_worker	 w;
	struct child		*c;
	int			 fd;

	fd = imsg_get_fd(imsg);
	if (imsg_get_data(imsg, &w, sizeof(w)) == -1 || fd == -1 ||
	    tpl->forking == 0 || w.pid <= 1 || child_find(w.pid) != NULL ||
	    (w.admit == ADMIT_SERVE ? tpl->forking_serve == 0 :
	    tpl->forking - tpl->forking_serve == 0 || w.admit != ADMIT_PAUSE)) {
		if (fd != -1)
			close(fd);
		tpl->why = "a worker it was not asked for";
		return (-1);
	}
	tpl->forking--;
	if (w.admit == ADMIT_SERVE)
		tpl->forking_serve--;
	tpl->forks++;
	if ((c = calloc(1, sizeof(*c))) == NULL)
		fatal("calloc");
	c->kind = CHILD_IMAP;
	c->gen = tpl->gen;
	c->id = next_child_id++;
	c->pid = w.pid;
	c->forked = 1;
	c->tpl = tpl;
	c->ready = 1;		/* configured by birth */
	c->admit = w.admit;	/* and admitted by its fork */
	c->admit_sent = 1;
	set_nonblock(fd);
	proc_channel(&c->iev, fd, &parent_peers[CHILD_IMAP], c);
	TAILQ_INSERT_TAIL(&children, c, entry);
	log_debug("template pid %d: imap worker pid %d", (int)tpl->pid,
	    (int)c->pid);
	if (c->gen->auth != NULL)
		child_give_auth_channel(c->gen->auth, c);
	/* keys made since it was forked; those it has are ignored */
	ticket_send(c, &ticket_keys[0]);
	ticket_send(c, &ticket_keys[1]);
	if (tpl->retiring || c->gen->draining || shutting_down)
		child_drain(c);
	else
		parent_admission();
	generation_drain_auth(c->gen);
	parent_check_startup();
	if (tpl == c->gen->tpl && c->gen->conf->template_max_forks > 0 &&
	    tpl->forks >= c->gen->conf->template_max_forks)
		template_rotate(c->gen, "template_max_forks reached");
	return (0);
}

/* one of its workers ended: as if we had reaped it ourselves */
static int
template_exited(struct child *tpl, struct imsg *imsg)
{
	struct tpl_exited	 e;
	struct child		*c;

	if (imsg_get_data(imsg, &e, sizeof(e)) == -1) {
		tpl->why = "a malformed message";
		return (-1);
	}
	if ((c = child_find(e.pid)) != NULL && c->tpl == tpl)
		child_exited(c, e.status);
	return (0);
}

/*
 * A template is ready: the one it replaces goes, with the spares it
 * forked (a client of theirs would get the old layout), and spares
 * are forked from the new one.
 */
static void
template_ready(struct child *tpl)
{
	struct generation	*gen = tpl->gen;
	struct child		*old = gen->tpl_old, *w;
	struct timeval		 tv;
	unsigned int		 ms = gen->conf->template_max_age_ms;

	if (gen->tpl == tpl && old != NULL) {
		gen->tpl_old = NULL;
		child_drain(old);
		TAILQ_FOREACH(w, &children, entry)
			if (w->tpl == old && !w->accepted)
				child_drain(w);
	}
	if (ms > 0) {
		tv.tv_sec = ms / 1000;
		tv.tv_usec = (ms % 1000) * 1000;
		evtimer_add(&tpl->ev_age, &tv);
	}
	generation_fill(gen);
	parent_admission();
}

/* a fresh exec: a new address-space layout for the workers to come */
static void
template_rotate(struct generation *gen, const char *why)
{
	struct child	*old = gen->tpl;

	if (old == NULL || gen->tpl_old != NULL || gen != current ||
	    gen->draining || shutting_down)
		return;
	log_info("template pid %d: %s after %u workers, starting a fresh one",
	    (int)old->pid, why, old->forks);
	old->retiring = 1;
	gen->tpl_old = old;
	gen->tpl = NULL;
	if (child_spawn(gen, CHILD_TEMPLATE) == NULL) {
		gen->tpl = old;
		gen->tpl_old = NULL;
		old->retiring = 0;
	}
}

static void
template_aged(int fd, short event, void *arg)
{
	struct child	*tpl = arg;
	struct timeval	 tv = { 60, 0 };

	/* nothing forked from it yet: no layout given away */
	if (tpl->forks == 0) {
		evtimer_add(&tpl->ev_age, &tv);
		return;
	}
	template_rotate(tpl->gen, "template_max_age reached");
}

/*
 * It is exiting; SIGCHLD does the rest.  A worker whose template died
 * is no child of ours unless we are a subreaper: then its channel is
 * all we hear of its end.
 */
static void
child_gone(struct imsgev *iev)
{
	struct child	*c = iev->data;

	event_del(&iev->ev);
	if (c->kind == CHILD_IMAP && c->forked && c->tpl == NULL &&
	    !subreaper)
		child_exited(c, 0);
}

static struct child *
child_find(pid_t pid)
{
	struct child	*c;

	TAILQ_FOREACH(c, &children, entry)
		if (c->pid == pid)
			return (c);
	return (NULL);
}

/* auth died: a new one, and a fresh channel to it for every worker */
static void
auth_restart(struct generation *gen)
{
	struct child	*c;

	gen->auth = NULL;
	if (shutting_down || generation_children(gen) == 0)
		return;
	if (gen->draining && gen != current) {
		/* its workers may still have clients logging in */
		if (child_spawn(gen, CHILD_AUTH) == NULL)
			return;
	} else if (child_spawn(gen, CHILD_AUTH) == NULL) {
		generation_fill(gen);
		return;
	}
	TAILQ_FOREACH(c, &children, entry)
		if (c->gen == gen && c->kind == CHILD_IMAP)
			child_give_auth_channel(gen->auth, c);
	/* after the channels: with none it would exit at once */
	generation_drain_auth(gen);
}

static void
child_exited(struct child *c, int status)
{
	struct generation	*gen = c->gen;
	const char		*what = parent_peers[c->kind].name;
	struct child		*w;
	int			 abnormal;
	int			 was_tpl = c->kind == CHILD_TEMPLATE;

	abnormal = WIFSIGNALED(status) || (WIFEXITED(status) &&
	    WEXITSTATUS(status) != 0);
	if (shutting_down && WIFSIGNALED(status) &&
	    WTERMSIG(status) == SIGKILL)
		log_info("%s pid %d ended", what, (int)c->pid);
	else if (WIFSIGNALED(status))
		log_warnx("%s pid %d killed by signal %d%s", what,
		    (int)c->pid, WTERMSIG(status),
		    shutting_down || c->draining ? "" : ", restarting");
	else if (abnormal)
		log_warnx("%s pid %d exited with status %d%s", what,
		    (int)c->pid, WEXITSTATUS(status),
		    shutting_down || c->draining ? "" : ", restarting");
	else
		log_debug("%s pid %d exited", what, (int)c->pid);

	TAILQ_REMOVE(&children, c, entry);
	if (c->iev.ibuf.fd != -1)
		imsgev_clear(&c->iev);
	if (c->kind == CHILD_TEMPLATE) {
		evtimer_del(&c->ev_age);
		/* its workers live on; their exits now reach us directly */
		TAILQ_FOREACH(w, &children, entry)
			if (w->tpl == c)
				w->tpl = NULL;
		if (gen->tpl == c)
			gen->tpl = NULL;
		if (gen->tpl_old == c)
			gen->tpl_old = NULL;
	}
	free(c);
	if (was_tpl)
		generation_drain_auth(gen);

	if (gen->auth == c)
		auth_restart(gen);
	else if (!shutting_down && gen == current)
		generation_fill(gen);
	parent_admission();
	if (gen != current)
		generation_reap(gen);
	parent_shutdown_check();
}

static void
parent_reap(void)
{
	struct child	*c;
	pid_t		 pid;
	int		 status;

	while ((pid = waitpid(-1, &status, WNOHANG)) > 0) {
		if ((c = child_find(pid)) != NULL)
			child_exited(c, status);
	}
}

static void
parent_reload(void)
{
	struct generation	*old = current;
	struct config		*conf;

	log_info("reloading configuration from %s", conffile);
	if ((conf = parse_config(conffile)) == NULL) {
		log_warnx("reload failed, keeping the running configuration");
		return;
	}
	if (ctls_check(conf) == -1 || logs_open(conf) == -1) {
		log_warnx("reload failed, keeping the running configuration");
		config_free(conf);
		return;
	}
	if (listen_bind_all(conf, old->conf) == -1) {
		log_warnx("reload failed, keeping the running configuration");
		/* give back the sockets taken over from the old one */
		listen_bind_all(old->conf, conf);
		listen_close_all(conf);
		config_free(conf);
		return;
	}
	listen_close_all(old->conf);
	logs_use(conf);
	current = generation_new(conf);
	overloaded = 0;
	generation_fill(current);
	generation_drain(old);
	generation_reap(old);
	log_info("reloaded configuration from %s", conffile);
}

/*
 * Session ticket keys, made here and shared by every worker so that a
 * ticket resumes in any worker process.  A new key every
 * ssl_session_timeout (the shortest of the servers'); the previous one
 * still decrypts the tickets issued under it until they expire.
 */
static void
ticket_init(void)
{
	arc4random_buf(ticket_sid, sizeof(ticket_sid));
	ticket_rev = arc4random();
	ticket_new();
	ticket_new();
	evtimer_set(&ev_ticket, ticket_rotate, NULL);
	ticket_arm();
}

static void
ticket_new(void)
{
	struct ticket_key	*tk;

	if (ticket_nkeys == 2) {
		ticket_keys[0] = ticket_keys[1];
		ticket_nkeys--;
	}
	tk = &ticket_keys[ticket_nkeys++];
	explicit_bzero(tk, sizeof(*tk));
	tk->keyrev = ticket_rev++;
	arc4random_buf(tk->key, sizeof(tk->key));
	memcpy(tk->sid, ticket_sid, sizeof(tk->sid));
}

static void
ticket_send(struct child *c, struct ticket_key *tk)
{
	imsgev_compose(&c->iev, IMSG_CTL_TICKET_KEY, 0, -1, tk, sizeof(*tk));
}

static void
ticket_rotate(int fd, short event, void *arg)
{
	struct child	*c;

	ticket_new();
	TAILQ_FOREACH(c, &children, entry)
		if (c->kind != CHILD_AUTH)
			ticket_send(c, &ticket_keys[1]);
	log_debug("new session ticket key %u", ticket_keys[1].keyrev);
	ticket_arm();
}

static void
ticket_arm(void)
{
	struct server_conf	*sc;
	struct timeval		 tv = { 0, 0 };

	if (current != NULL)
		TAILQ_FOREACH(sc, &current->conf->servers, entry)
			if (sc->tls_npairs > 0 && sc->tls_session_tickets &&
			    (tv.tv_sec == 0 ||
			    sc->tls_session_timeout < tv.tv_sec))
				tv.tv_sec = sc->tls_session_timeout;
	if (tv.tv_sec == 0)
		tv.tv_sec = 300;
	evtimer_add(&ev_ticket, &tv);
}

static void
parent_shutdown_check(void)
{
	if (!shutting_down || !TAILQ_EMPTY(&children))
		return;
	log_info("exiting");
	if (current != NULL && current->conf->pid[0] != '\0')
		unlink(current->conf->pid);
	exit(0);
}

/* workers that did not say BYE and exit in time */
static void
parent_shutdown_kill(int fd, short event, void *arg)
{
	struct child	*c;

	TAILQ_FOREACH(c, &children, entry) {
		log_warnx("%s pid %d still running, killed",
		    parent_peers[c->kind].name, (int)c->pid);
		kill(c->pid, SIGKILL);
	}
}

/*
 * Sessions still open are ended: every worker says BYE to its clients,
 * logs their end and exits.
 */
static void
parent_shutdown_sessions(int fd, short event, void *arg)
{
	struct timeval	 tv = { SHUTDOWN_KILL_SEC, 0 };
	struct child	*c;

	if (evtimer_pending(&ev_kill, NULL))
		return;
	evtimer_del(&ev_shutdown);
	if (active_sessions() > 0)
		log_info("ending %d open sessions", active_sessions());
	TAILQ_FOREACH(c, &children, entry)
		if (c->kind == CHILD_IMAP)
			imsgev_compose(&c->iev, IMSG_CTL_SHUTDOWN, 0, -1,
			    NULL, 0);
	evtimer_add(&ev_kill, &tv);
}

/*
 * SIGTERM, what service managers send, is the graceful stop: no new
 * clients, sessions finish for up to shutdown_timeout, then BYE.
 * SIGQUIT and SIGINT are the fast one: BYE to every session now.  A
 * fast stop during a graceful one cuts the grace time short.  (nginx
 * has them the other way round: QUIT graceful, TERM and INT fast.)
 */
static void
parent_shutdown(int fast)
{
	struct generation	*gen;
	struct timeval		 tv = { SHUTDOWN_GRACE_SEC, 0 };
	unsigned int		 ms;

	if (shutting_down) {
		if (fast)
			parent_shutdown_sessions(-1, 0, NULL);
		return;
	}
	if (current != NULL && (ms = current->conf->shutdown_timeout_ms) > 0) {
		tv.tv_sec = ms / 1000;
		tv.tv_usec = (ms % 1000) * 1000;
	}
	if (fast)
		log_info("shutting down: no new clients, %d sessions open",
		    active_sessions());
	else
		log_info("draining: no new clients, %d sessions open",
		    active_sessions());
	shutting_down = 1;
	TAILQ_FOREACH(gen, &generations, entry) {
		generation_drain(gen);
		listen_close_all(gen->conf);
	}
	evtimer_set(&ev_shutdown, parent_shutdown_sessions, NULL);
	evtimer_set(&ev_kill, parent_shutdown_kill, NULL);
	if (fast)
		parent_shutdown_sessions(-1, 0, NULL);
	else
		evtimer_add(&ev_shutdown, &tv);
	parent_shutdown_check();
}

static void
parent_sig_handler(int sig, short event, void *arg)
{
	switch (sig) {
	case SIGTERM:
		parent_shutdown(0);
		break;
	case SIGQUIT:
	case SIGINT:
		parent_shutdown(1);
		break;
	case SIGHUP:
		if (!shutting_down)
			parent_reload();
		break;
	case SIGUSR1:
		parent_reopen_logs();
		break;
	case SIGUSR2:
		log_warning("SIGUSR2: no binary upgrade here, ignored");
		break;
	case SIGCHLD:
		parent_reap();
		break;
	}
}

/* the user must exist where it is used (as root), and for -n */
static int
check_user(struct config *conf, int noaction)
{
	if (!noaction && geteuid() != 0) {
		log_warning("running as an unprivileged user: no chroot and no "
		    "privilege drop for the children");
		return (0);
	}
	if (getpwnam(conf->user) != NULL)
		return (0);
	if (conf->user_line > 0)
		log_warnx("%s:%d: user \"%s\" does not exist: create it "
		    "(e.g. useradd -r -d /var/empty -s /usr/sbin/nologin %s)",
		    conf->user_file, conf->user_line, conf->user, conf->user);
	else
		log_warnx("%s: user \"%s\" (the default) does not exist: "
		    "create it (e.g. useradd -r -d /var/empty -s "
		    "/usr/sbin/nologin %s) or set \"user\"", conffile,
		    conf->user, conf->user);
	return (-1);
}

/*
 * The signals a terminal or a careless pkill sends to every process of
 * the daemon are the parent's: it tells the children what to do.
 */
static void
child_signals(void)
{
	signal(SIGINT, SIG_IGN);
	signal(SIGQUIT, SIG_IGN);
	signal(SIGHUP, SIG_IGN);
	signal(SIGUSR1, SIG_IGN);
	signal(SIGUSR2, SIG_IGN);
}

static __attribute__((noreturn)) void
child_main(const char *proc, const char *user, int logfd)
{
	child_signals();
	if (logfd)
		log_setfd(PROC_LOG_FD);
	if (strcmp(proc, "auth") == 0)
		auth_main(debug, verbose, user, unix_paths);
	if (strcmp(proc, "imap") == 0)
		imap_main(debug, verbose, user);
	if (strcmp(proc, "template") == 0)
		template_main(debug, verbose, user);
	fatalx("unknown process %s", proc);
}

int
main(int argc, char *argv[])
{
	struct config	*conf;
	const char	*proc = NULL, *user = IMAPRELAYD_USER;
	int		 ch, noaction = 0, logfd = 0;

	log_init(1, LOG_DAEMON);	/* errors to stderr until we run */
	while ((ch = getopt(argc, argv, "df:LnP:u:U:v")) != -1) {
		switch (ch) {
		case 'd':
			debug = 1;
			break;
		case 'f':
			conffile = optarg;
			break;
		case 'L':
			logfd = 1;
			break;
		case 'n':
			noaction = 1;
			break;
		case 'P':
			proc = optarg;
			break;
		case 'u':
			user = optarg;
			break;
		case 'U':
			if (nunix_paths == UNIX_PATHS_MAX)
				fatalx("too many -U");
			unix_paths[nunix_paths++] = optarg;
			break;
		case 'v':
			verbose++;
			break;
		default:
			usage();
		}
	}
	if (optind != argc)
		usage();
	signal(SIGPIPE, SIG_IGN);

	if (proc != NULL) {
		log_init(debug, LOG_DAEMON);
		log_setverbose(verbose + debug);
		child_main(proc, user, logfd);
	}

	/* daemon() changes to /: a reload must find the same file */
	conffile = conf_abspath(conffile);
	/* TLS setups too: a key that does not fit its certificate */
	if ((conf = parse_config(conffile)) == NULL ||
	    check_user(conf, noaction) == -1 || ctls_check(conf) == -1)
		exit(1);
	if (noaction) {
		fprintf(stderr, "configuration OK\n");
		config_free(conf);
		exit(0);
	}
	self_path = find_self_path(argv[0]);
	if (listen_bind_all(conf, NULL) == -1)
		exit(1);

	log_init(debug, LOG_DAEMON);
	log_setverbose(verbose + debug);
	if (logs_open(conf) == -1)
		exit(1);
	if (!debug)
		syslog_check(conf);
	nofile_check(conf);
	logs_use(conf);
	/* daemon off, as nginx's: the foreground, logging as configured */
	if (!debug && conf->daemonize)
		daemonize();
	setproctitle("parent");
	write_pidfile(conf);
	/* workers of a template that died are still ours to reap */
	subreaper = proc_subreaper() == 0;

	event_init();
	signal_set(&ev_sigterm, SIGTERM, parent_sig_handler, NULL);
	signal_set(&ev_sigint, SIGINT, parent_sig_handler, NULL);
	signal_set(&ev_sigquit, SIGQUIT, parent_sig_handler, NULL);
	signal_set(&ev_sighup, SIGHUP, parent_sig_handler, NULL);
	signal_set(&ev_sigusr1, SIGUSR1, parent_sig_handler, NULL);
	signal_set(&ev_sigusr2, SIGUSR2, parent_sig_handler, NULL);
	signal_set(&ev_sigchld, SIGCHLD, parent_sig_handler, NULL);
	signal_add(&ev_sigterm, NULL);
	signal_add(&ev_sigint, NULL);
	signal_add(&ev_sigquit, NULL);
	signal_add(&ev_sighup, NULL);
	signal_add(&ev_sigusr1, NULL);
	signal_add(&ev_sigusr2, NULL);
	signal_add(&ev_sigchld, NULL);
	evtimer_set(&ev_respawn, parent_respawn, NULL);

	current = generation_new(conf);
	ticket_init();
	generation_fill(current);
	sandbox_parent();

	event_dispatch();
	fatalx("event loop ended");
}
