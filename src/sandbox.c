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
 * Sandboxes, one function per process, the last step of its setup.
 * Call sites carry no #ifdef: what each system can enforce lives here.
 *
 * OpenBSD: pledge(2) and unveil(2) with the promises of DESIGN.md.
 * Linux: no_new_privs, Landlock and seccomp-bpf, in sandbox_linux.c.
 * Elsewhere the sandbox is the chroot and privilege drop done before,
 * and the process says so once.
 */

#include <sys/types.h>
#include <sys/socket.h>
#include <sys/wait.h>

#include <netinet/in.h>
#include <arpa/inet.h>

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "imaprelayd.h"

#if defined(__OpenBSD__)

void
sandbox_parent(void)
{
	if (pledge("stdio rpath wpath cpath inet proc exec id sendfd "
	    "recvfd unix", NULL) == -1)
		fatal("pledge");
}

/*
 * No "dns": the parent resolves the auth service and the request pins
 * the address (CURLOPT_RESOLVE).  "unix" and the sockets' paths alone
 * for auth_http unix:/path.  "inet" for the auth service and the
 * backends, "sendfd" to hand each backend socket to its worker,
 * "recvfd" for the worker channels.
 */
void
sandbox_auth(char *const *unix_paths)
{
	if (unveil("/", "") == -1)
		fatal("unveil /");
	for (; *unix_paths != NULL; unix_paths++)
		if (unveil(*unix_paths, "rw") == -1)
			fatal("unveil %s", *unix_paths);
	if (pledge("stdio inet unix recvfd sendfd", NULL) == -1)
		fatal("pledge");
}

/*
 * A worker connects nowhere: its backend sockets come from the auth
 * process ("recvfd").  It keeps "inet" only because it accept(2)s its
 * clients itself on the inet listeners, which pledge(2) allows under
 * "inet" alone; without it OpenBSD cannot refuse a socket(2) that
 * Linux's filter refuses.
 */
void
sandbox_imap(void)
{
	if (pledge("stdio inet recvfd", NULL) == -1)
		fatal("pledge");
}

/*
 * "proc" to fork workers, "sendfd" to hand their channels to the
 * parent; "inet" only because a worker, which can only narrow its
 * promises, accepts its clients itself.
 */
void
sandbox_template(void)
{
	if (pledge("stdio inet recvfd sendfd proc", NULL) == -1)
		fatal("pledge");
}

/* a forked worker drops "proc" and "sendfd" before any client */
void
sandbox_worker(void)
{
	sandbox_imap();
}

#elif !defined(__linux__)

static void
sandbox_reduced(const char *proc)
{
	static int	 warned;

	if (warned++ == 0)
		log_info("%s: sandbox reduced to chroot and privilege drop",
		    proc);
}

void
sandbox_parent(void)
{
}

void
sandbox_auth(char *const *unix_paths)
{
	sandbox_reduced("auth");
}

void
sandbox_imap(void)
{
	sandbox_reduced("imap");
}

void
sandbox_template(void)
{
	sandbox_reduced("template");
}

void
sandbox_worker(void)
{
}

#endif

#ifdef REGRESS_TRIGGERS
/*
 * Test-only (obj/regress/imaprelayd-regress, never ./imaprelayd): do
 * what a compromised child would try, so that the regress suite sees
 * the sandbox refuse it or kill the process.
 */
static int
regress_open(void)
{
	int	 fd;

	/* chrooted, /etc/passwd is not there: try the root itself */
	if ((fd = open("/etc/passwd", O_RDONLY)) == -1 && errno == ENOENT)
		fd = open("/", O_RDONLY | O_DIRECTORY);
	if (fd == -1)
		return (-1);
	close(fd);
	return (0);
}

static int
regress_exec(void)
{
	char	*argv[] = { "sh", "-c", "exit 0", NULL };
	char	*envp[] = { NULL };

	return (execve("/bin/sh", argv, envp));
}

static int
regress_bind(void)
{
	struct sockaddr_in	 sin;
	int			 s, rv, saved_errno;

	if ((s = socket(AF_INET, SOCK_STREAM, 0)) == -1)
		return (-1);
	memset(&sin, 0, sizeof(sin));
	sin.sin_family = AF_INET;
	sin.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	rv = bind(s, (struct sockaddr *)&sin, sizeof(sin));
	saved_errno = errno;
	close(s);
	errno = saved_errno;
	return (rv);
}

/*
 * A TCP connection to 127.0.0.1:port, as a worker would open to reach
 * the auth service or any host: workers open none (socket(2) refused).
 */
static int
regress_connect(const char *port)
{
	struct sockaddr_in	 sin;
	const char		*errstr;
	int			 s, rv, saved_errno;

	memset(&sin, 0, sizeof(sin));
	sin.sin_family = AF_INET;
	sin.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	sin.sin_port = htons(strtonum(port, 1, 65535, &errstr));
	if (errstr != NULL) {
		errno = EINVAL;
		return (-1);
	}
	if ((s = socket(AF_INET, SOCK_STREAM, 0)) == -1)
		return (-1);
	rv = connect(s, (struct sockaddr *)&sin, sizeof(sin));
	saved_errno = errno;
	close(s);
	errno = saved_errno;
	return (rv);
}

/* a forked imap worker may not fork again (Linux: SIGSYS) */
static int
regress_fork(void)
{
	pid_t	 pid;
	int	 status;

	if ((pid = fork()) == -1)
		return (-1);
	if (pid == 0)
		_exit(0);
	return (waitpid(pid, &status, 0) == -1 ? -1 : 0);
}

/* 0 and "<what> allowed", or -1 and "<what> refused: <why>" */
int
sandbox_regress_try(const char *what, char *buf, size_t len)
{
	int	 rv;

	if (strcmp(what, "open") == 0)
		rv = regress_open();
	else if (strcmp(what, "exec") == 0)
		rv = regress_exec();
	else if (strcmp(what, "bind") == 0)
		rv = regress_bind();
	else if (strcmp(what, "fork") == 0)
		rv = regress_fork();
	else if (strncmp(what, "connect-", 8) == 0)
		rv = regress_connect(what + 8);
	else {
		snprintf(buf, len, "%s refused: unknown trigger", what);
		return (-1);
	}
	if (rv == -1)
		snprintf(buf, len, "%s refused: %s", what, strerror(errno));
	else
		snprintf(buf, len, "%s allowed", what);
	return (rv == -1 ? -1 : 0);
}
#endif /* REGRESS_TRIGGERS */
