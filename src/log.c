/*
 * Logging: syslog by default, stderr in the foreground (-d), or the
 * error_log file the parent opened for us (an inherited descriptor).
 * Every line carries the process name so one log reads as one story.
 */

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <syslog.h>
#include <time.h>
#include <unistd.h>

#include "imaprelayd.h"

static int		 log_debug_mode;	/* log to stderr */
static int		 log_fd = -1;		/* error_log file */
static int		 log_verbose;
static const char	*log_procname = "parent";

void
log_init(int debug, int facility)
{
	log_debug_mode = debug;
	log_verbose = debug;
	if (!debug)
		openlog("imaprelayd", LOG_PID | LOG_NDELAY, facility);
	tzset();
}

/* error_log FILE: the descriptor stays open across chroot and exec */
void
log_setfd(int fd)
{
	log_fd = fd;
}

/* SIGUSR1: the parent reopened error_log and sent us the new file */
void
log_replacefd(int fd)
{
	if (log_fd != -1 && log_fd != fd)
		close(log_fd);
	log_fd = fd;
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

void
vlog(int pri, const char *fmt, va_list ap)
{
	char		 msg[2048], stamp[32];
	struct tm	 tm;
	time_t		 now;
	int		 saved_errno = errno;

	vsnprintf(msg, sizeof(msg), fmt, ap);
	if (log_debug_mode || log_fd != -1) {
		now = time(NULL);
		localtime_r(&now, &tm);
		strftime(stamp, sizeof(stamp), "%Y/%m/%d %H:%M:%S", &tm);
		dprintf(log_debug_mode ? STDERR_FILENO : log_fd,
		    "%s [%s] %d %s: %s\n", stamp, log_levelname(pri),
		    (int)getpid(), log_procname, msg);
	} else
		syslog(pri, "%s: %s", log_procname, msg);
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

	if (log_verbose < 2)
		return;
	va_start(ap, fmt);
	vlog(LOG_DEBUG, fmt, ap);
	va_end(ap);
}

static __attribute__((noreturn)) void
vfatalc(int code, const char *fmt, va_list ap)
{
	char	 buf[1800];

	vsnprintf(buf, sizeof(buf), fmt, ap);
	if (code)
		log_warnx("fatal: %s: %s", buf, strerror(code));
	else
		log_warnx("fatal: %s", buf);
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
