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
 * Logging, as nginx's error_log: a file, stderr, syslog(3), or
 * syslog datagrams of our own to syslog:server=... (unix or UDP).  The
 * parent opens every destination and hands each child a copy of the
 * descriptor: children never open anything.  Besides the main one,
 * each server may have its own destination (error_log in mail{} or
 * server{}): a process says whose lines it writes with log_select().
 * Every line carries the process name so one log reads as one story.
 * In the foreground (-d) everything goes to stderr.
 */

#include <sys/types.h>
#include <sys/socket.h>

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <syslog.h>
#include <time.h>
#include <unistd.h>

#include "imaprelayd.h"

/* where a destination's lines go */
enum log_kind {
	LOGK_SYSLOG,		/* syslog(3): /dev/log, opened at log_init */
	LOGK_FILE,		/* a file or stderr */
	LOGK_DGRAM,		/* syslog:server=: our datagrams */
};

struct log_out {
	uint32_t	 id;		/* 0: the main error_log, else server */
	enum log_kind	 kind;
	int		 fd;		/* -1: none (lines dropped) */
	int		 level;		/* lines above it are dropped */
	int		 facility;	/* LOGK_DGRAM */
	char		 tag[LOG_TAG_MAX];
	int		 nohostname;
};

static int		 log_debug_mode;	/* log to stderr */
static int		 log_verbose;
static const char	*log_procname = "parent";
static char		 log_hostname[NAME_MAX_LEN] = "localhost";
static struct log_out	 log_main = { 0, LOGK_SYSLOG, -1, LOG_INFO,
			    0, "", 0 };
static struct log_out	*log_servers;		/* error_log of a server */
static size_t		 log_nservers;
static struct log_out	*log_cur = &log_main;

void
log_init(int debug, int facility)
{
	log_debug_mode = debug;
	log_verbose = debug;
	if (!debug)
		openlog("imaprelayd", LOG_PID | LOG_NDELAY, facility);
	tzset();
}

/* error_log FILE before the configuration arrives (-L, fd 4) */
void
log_setfd(int fd)
{
	log_main.kind = LOGK_FILE;
	log_main.fd = fd;
}

/* the name syslog:server= lines carry: children cannot ask for it */
void
log_sethostname(const char *name)
{
	if (name[0] != '\0')
		strlcpy(log_hostname, name, sizeof(log_hostname));
}

static struct log_out *
log_find(uint32_t id, int create)
{
	struct log_out	*o;
	uint32_t	 cur;
	size_t		 i;

	if (id == 0)
		return (&log_main);
	for (i = 0; i < log_nservers; i++)
		if (log_servers[i].id == id)
			return (&log_servers[i]);
	if (!create)
		return (NULL);
	cur = log_cur->id;
	if ((o = reallocarray(log_servers, log_nservers + 1,
	    sizeof(*o))) == NULL)
		fatal(__func__);
	log_servers = o;
	/* log_cur may have pointed into the old array */
	log_cur = &log_main;
	for (i = 0; i < log_nservers; i++)
		if (log_servers[i].id == cur)
			log_cur = &log_servers[i];
	o = &log_servers[log_nservers++];
	memset(o, 0, sizeof(*o));
	o->id = id;
	o->fd = -1;
	return (o);
}

/*
 * A destination of the configuration (id 0: the main one) and the
 * descriptor the parent opened for it, which is now ours; -1 for
 * syslog(3).
 */
void
log_setdest(uint32_t id, const struct log_dest *dest, int fd)
{
	struct log_out	*o = log_find(id, 1);

	if (o->fd != -1 && o->fd != fd)
		close(o->fd);
	o->fd = fd;
	o->level = dest->level;
	o->facility = dest->facility;
	strlcpy(o->tag, dest->tag, sizeof(o->tag));
	o->nohostname = dest->nohostname;
	if (dest->syslog_server[0] != '\0')
		o->kind = LOGK_DGRAM;
	else if (dest->file[0] != '\0')
		o->kind = LOGK_FILE;
	else
		o->kind = LOGK_SYSLOG;
}

/* SIGUSR1: the parent reopened a destination and sent us the new one */
void
log_replacefd(uint32_t id, int fd)
{
	struct log_out	*o;

	if ((o = log_find(id, 0)) == NULL) {
		close(fd);
		return;
	}
	if (o->fd != -1 && o->fd != fd)
		close(o->fd);
	o->fd = fd;
}

/* IMSG_CTL_LOG_FD: a server's id (none: the main one) and the fd */
void
log_recvfd(struct imsg *imsg)
{
	uint32_t	 id = 0;
	int		 fd;

	if ((fd = imsg_get_fd(imsg)) == -1)
		return;
	if (imsg_get_len(imsg) != 0 &&
	    imsg_get_data(imsg, &id, sizeof(id)) == -1) {
		close(fd);
		return;
	}
	log_replacefd(id, fd);
}

/*
 * Whose lines follow: a server with an error_log of its own, or the
 * main one (0, or a server without).  Every entry point of work done
 * for a server's session selects it.
 */
void
log_select(uint32_t id)
{
	struct log_out	*o;

	log_cur = (o = log_find(id, 0)) != NULL ? o : &log_main;
}

void
log_procinit(const char *name)
{
	if (name != NULL)
		log_procname = name;
}

void
log_setverbose(int v)
{
	log_verbose = v;
}

int
log_getverbose(void)
{
	return (log_verbose);
}

static const char *
log_levelname(int pri)
{
	switch (pri) {
	case LOG_EMERG:
		return ("emerg");
	case LOG_ALERT:
		return ("alert");
	case LOG_CRIT:
		return ("crit");
	case LOG_ERR:
		return ("error");
	case LOG_WARNING:
		return ("warn");
	case LOG_NOTICE:
		return ("notice");
	case LOG_INFO:
		return ("info");
	default:
		return ("debug");
	}
}

/* nginx's error line: "2026/01/02 03:04:05 [level] pid proc: msg" */
static int
log_line(char *buf, size_t size, int pri, const char *msg)
{
	char		 stamp[32];
	struct tm	 tm;
	time_t		 now;

	now = time(NULL);
	localtime_r(&now, &tm);
	strftime(stamp, sizeof(stamp), "%Y/%m/%d %H:%M:%S", &tm);
	return (snprintf(buf, size, "%s [%s] %d %s: %s", stamp,
	    log_levelname(pri), (int)getpid(), log_procname, msg));
}

/*
 * As nginx's syslog writer: "<PRI>Mmm dd hh:mm:ss HOST TAG: " and the
 * error line, in one datagram to the server the parent connected.
 */
static void
log_dgram(struct log_out *o, int pri, const char *msg)
{
	static const char	*months[] = { "Jan", "Feb", "Mar", "Apr",
				    "May", "Jun", "Jul", "Aug", "Sep", "Oct",
				    "Nov", "Dec" };
	char			 buf[2400];
	struct tm		 tm;
	time_t			 now;
	int			 n, m;

	now = time(NULL);
	localtime_r(&now, &tm);
	n = snprintf(buf, sizeof(buf), "<%d>%s %2d %02d:%02d:%02d %s%s%s: ",
	    o->facility * 8 + pri, months[tm.tm_mon], tm.tm_mday, tm.tm_hour,
	    tm.tm_min, tm.tm_sec, o->nohostname ? "" : log_hostname,
	    o->nohostname ? "" : " ", o->tag);
	if (n < 0 || (size_t)n >= sizeof(buf))
		return;
	m = log_line(buf + n, sizeof(buf) - n, pri, msg);
	if (m < 0)
		return;
	n = (size_t)(n + m) >= sizeof(buf) ? (int)sizeof(buf) - 1 : n + m;
	/* a lost datagram is lost, as nginx's: never block for it */
	(void)send(o->fd, buf, n, MSG_DONTWAIT | MSG_NOSIGNAL);
}

void
vlog(int pri, const char *fmt, va_list ap)
{
	struct log_out	*o = log_cur;
	char		 msg[2048], line[2200];
	int		 saved_errno = errno;

	vsnprintf(msg, sizeof(msg), fmt, ap);
	if (log_debug_mode) {
		log_line(line, sizeof(line), pri, msg);
		dprintf(STDERR_FILENO, "%s\n", line);
	} else if (pri <= o->level || (pri == LOG_DEBUG && log_verbose >= 2)) {
		switch (o->kind) {
		case LOGK_FILE:
			if (o->fd == -1)
				break;
			log_line(line, sizeof(line), pri, msg);
			dprintf(o->fd, "%s\n", line);
			break;
		case LOGK_DGRAM:
			if (o->fd != -1)
				log_dgram(o, pri, msg);
			break;
		case LOGK_SYSLOG:
			syslog(pri, "%s: %s", log_procname, msg);
			break;
		}
	}
	errno = saved_errno;
}

void
log_warn(const char *fmt, ...)
{
	char	 buf[1800];
	va_list	 ap;
	int	 saved_errno = errno;

	va_start(ap, fmt);
	vsnprintf(buf, sizeof(buf), fmt, ap);
	va_end(ap);
	log_warnx("%s: %s", buf, strerror(saved_errno));
	errno = saved_errno;
}

void
log_warnx(const char *fmt, ...)
{
	va_list	 ap;

	va_start(ap, fmt);
	vlog(LOG_ERR, fmt, ap);
	va_end(ap);
}

/* something works, but not as the operator may think: nginx's "warn" */
void
log_warning(const char *fmt, ...)
{
	va_list	 ap;

	va_start(ap, fmt);
	vlog(LOG_WARNING, fmt, ap);
	va_end(ap);
}

void
log_notice(const char *fmt, ...)
{
	va_list	 ap;

	va_start(ap, fmt);
	vlog(LOG_NOTICE, fmt, ap);
	va_end(ap);
}

void
log_info(const char *fmt, ...)
{
	va_list	 ap;

	va_start(ap, fmt);
	vlog(LOG_INFO, fmt, ap);
	va_end(ap);
}

void
log_debug(const char *fmt, ...)
{
	va_list	 ap;

	if (log_verbose < 2 && (log_debug_mode || log_cur->level < LOG_DEBUG))
		return;
	va_start(ap, fmt);
	vlog(LOG_DEBUG, fmt, ap);
	va_end(ap);
}

static void	log_crit(const char *, ...)
		    __attribute__((format(printf, 1, 2)));

static void
log_crit(const char *fmt, ...)
{
	va_list	 ap;

	va_start(ap, fmt);
	vlog(LOG_CRIT, fmt, ap);
	va_end(ap);
}

static __attribute__((noreturn)) void
vfatalc(int code, const char *fmt, va_list ap)
{
	char	 buf[1800];

	vsnprintf(buf, sizeof(buf), fmt, ap);
	if (code)
		log_crit("fatal: %s: %s", buf, strerror(code));
	else
		log_crit("fatal: %s", buf);
	exit(1);
}

void
fatal(const char *fmt, ...)
{
	va_list	 ap;

	va_start(ap, fmt);
	vfatalc(errno, fmt, ap);
}

void
fatalx(const char *fmt, ...)
{
	va_list	 ap;

	va_start(ap, fmt);
	vfatalc(0, fmt, ap);
}
