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
 * The privilege separation framework, one copy for every process:
 * spawning a child (fork + exec, its channel to us on fd 3), channels
 * (socketpairs driven by libevent), the privilege drop, and the one
 * imsg read and dispatch loop.
 *
 * Each process declares a table of its peers (struct proc_peer): a
 * name for logs, a handler that switches on the message type, what to
 * do when the peer goes away and what to do when it sends something
 * invalid.  A handler returns -1 for a message it refuses; the loop
 * then stops reading that channel and calls the peer's "bad" function,
 * or exits if the peer is one we trust (the parent).  Generations,
 * respawn and admissions are the parent's business (imaprelayd.c).
 */

#include <sys/types.h>
#include <sys/socket.h>
#include <sys/wait.h>
#if defined(__linux__)
#include <sys/prctl.h>
#elif defined(__FreeBSD__)
#include <sys/procctl.h>
#endif

#include <errno.h>
#include <fcntl.h>
#include <grp.h>
#include <pwd.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "imaprelayd.h"

/* auth requests carry a client_buffer-sized user and password */
#define PROC_IMSG_MAX		(256 * 1024)

static void	proc_gone(struct imsgev *);
static void	proc_refuse(struct imsgev *, struct imsg *);

/*
 * Channels.
 */

/* a socketpair for a channel; both ends close on exec */
int
proc_socketpair(int sp[2])
{
	if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, PF_UNSPEC,
	    sp) == -1) {
		log_warn("socketpair");
		return (-1);
	}
	return (0);
}

/*
 * Start reading fd as a channel to peer; data is the caller's.  The
 * caller chose whether fd blocks: a child's end towards the parent
 * does, so that a final message is written before it exits.
 */
void
proc_channel(struct imsgev *iev, int fd, const struct proc_peer *peer,
    void *data)
{
	if (imsgbuf_init(&iev->ibuf, fd) == -1)
		fatal("imsgbuf_init");
	/* a descriptor a peer sends unasked is closed by imsg_free() */
	if (peer->fdpass)
		imsgbuf_allow_fdpass(&iev->ibuf);
	if (imsgbuf_set_maxsize(&iev->ibuf, PROC_IMSG_MAX) == -1)
		fatal("imsgbuf_set_maxsize");
	iev->peer = peer;
	iev->data = data;
	iev->events = EV_READ;
	event_set(&iev->ev, fd, iev->events, proc_dispatch, iev);
	event_add(&iev->ev, NULL);
}

/* re-arm: read always, write while something is queued */
void
imsgev_add(struct imsgev *iev)
{
	if (iev->ibuf.fd == -1)
		return;
	iev->events = EV_READ;
	if (imsgbuf_queuelen(&iev->ibuf) > 0)
		iev->events |= EV_WRITE;
	event_del(&iev->ev);
	event_set(&iev->ev, iev->ibuf.fd, iev->events, proc_dispatch, iev);
	event_add(&iev->ev, NULL);
}

/* close the channel, dropping whatever was queued either way */
void
imsgev_clear(struct imsgev *iev)
{
	if (iev->ibuf.fd == -1)
		return;
	event_del(&iev->ev);
	imsgbuf_clear(&iev->ibuf);
	close(iev->ibuf.fd);
	iev->ibuf.fd = -1;
}

int
imsgev_compose(struct imsgev *iev, uint32_t type, uint32_t peerid, int fd,
    const void *data, size_t len)
{
	int	 ret;

	if (iev->ibuf.fd == -1) {
		/* the peer is gone: a descriptor given to us still closes */
		if (fd != -1)
			close(fd);
		return (-1);
	}
	ret = imsg_compose(&iev->ibuf, type, peerid, 0, fd, data, len);
	if (ret != -1)
		imsgev_add(iev);
	return (ret);
}

/*
 * The one read and dispatch loop.  Every message goes to the peer's
 * handler; a refused one ends the channel through proc_refuse().
 */
void
proc_dispatch(int fd, short event, void *arg)
{
	struct imsgev		*iev = arg;
	const struct proc_peer	*peer = iev->peer;
	struct imsg		 imsg;
	ssize_t			 n;

	if (event & EV_READ) {
		n = imsgbuf_read(&iev->ibuf);
		if (n == -1 && (errno == EBADMSG || errno == ERANGE ||
		    errno == EOVERFLOW)) {
			/* a header whose length cannot be */
			proc_refuse(iev, NULL);
			return;
		}
		if (n == -1 || n == 0) {
			if (n == -1)
				log_debug("%s channel: %s", peer->name,
				    strerror(errno));
			proc_gone(iev);
			return;
		}
	}
	if ((event & EV_WRITE) && imsgbuf_write(&iev->ibuf) == -1) {
		log_debug("%s channel: %s", peer->name, strerror(errno));
		proc_gone(iev);
		return;
	}
	for (;;) {
		if ((n = imsg_get(&iev->ibuf, &imsg)) == -1) {
			proc_refuse(iev, NULL);
			return;
		}
		if (n == 0)
			break;
		/* the process's own lines; a session's handler says whose */
		log_select(0);
		if (peer->dispatch(iev, &imsg) == -1) {
			proc_refuse(iev, &imsg);
			imsg_free(&imsg);
			return;
		}
		imsg_free(&imsg);
		/* the handler may have closed this very channel */
		if (iev->ibuf.fd == -1)
			return;
	}
	imsgev_add(iev);
}

/* end of file or a broken channel; by default the process ends too */
static void
proc_gone(struct imsgev *iev)
{
	const struct proc_peer	*peer = iev->peer;

	if (peer->gone != NULL) {
		peer->gone(iev);
		return;
	}
	log_debug("%s channel closed, exiting", peer->name);
	exit(0);
}

static void
proc_refuse(struct imsgev *iev, struct imsg *imsg)
{
	const struct proc_peer	*peer = iev->peer;

	if (peer->bad != NULL) {
		peer->bad(iev, imsg);
		return;
	}
	/* a peer we trust (the parent) does not send nonsense */
	if (imsg == NULL)
		fatalx("malformed imsg from %s", peer->name);
	fatalx("invalid imsg %u (%zu bytes) from %s", imsg_get_type(imsg),
	    imsg_get_len(imsg), peer->name);
}

/* a child's end of its channel to the parent */
void
proc_parent_channel(struct imsgev *iev, const struct proc_peer *peer)
{
	proc_channel(iev, PROC_PARENT_FD, peer, NULL);
}

/* fd at a fixed number across exec (dup2 to itself keeps CLOEXEC) */
static void
fd_at(int fd, int at)
{
	if (fd == at) {
		if (fcntl(fd, F_SETFD, 0) == -1)
			fatal("fcntl");
	} else if (dup2(fd, at) == -1)
		fatal("dup2");
}

/*
 * Spawning.  Fork and exec path with argv, the child's channel to us on
 * fd 3 and the error_log file, if any, on fd 4; nothing else stays
 * open.  A fresh exec gives the child a fresh address space: no copy
 * of the parent's memory.  Returns the pid, or -1 with errno set.
 */
pid_t
proc_exec(const char *path, char *const argv[], int chan, int logfd)
{
	pid_t	 pid;

	switch (pid = fork()) {
	case -1:
		return (-1);
	case 0:
		break;
	default:
		return (pid);
	}
	if (logfd == PROC_PARENT_FD && (logfd = dup(logfd)) == -1)
		fatal("dup");
	fd_at(chan, PROC_PARENT_FD);
	if (logfd != -1)
		fd_at(logfd, PROC_LOG_FD);
	closefrom(logfd != -1 ? PROC_LOG_FD + 1 : PROC_PARENT_FD + 1);
	execv(path, argv);
	fatal("execv %s", path);
}

/*
 * Become the reaper of our descendants: a worker whose template died
 * is then reparented to us, not to init, and we see how it ends.  -1
 * where the system has no such thing (OpenBSD); the parent then counts
 * such a worker gone when its channel closes.
 */
int
proc_subreaper(void)
{
#if defined(__linux__)
	return (prctl(PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0));
#elif defined(__FreeBSD__)
	return (procctl(P_PID, getpid(), PROC_REAP_ACQUIRE, NULL));
#else
	errno = ENOSYS;
	return (-1);
#endif
}

/*
 * The fixed order of a child's setup: resolve the user while /etc is
 * still visible, chroot, set the title, then give up the ids.  Started
 * by a non-root user there is nothing to give up; the parent says so.
 */
void
proc_privdrop(const char *user, const char *title, int dochroot)
{
	struct passwd	*pw;
	const char	*root = IMAPRELAYD_CHROOT;

	if (geteuid() != 0) {
		setproctitle("%s", title);
		return;
	}
	if ((pw = getpwnam(user)) == NULL)
		fatalx("unknown user %s", user);
#ifdef SANITIZE_BUILD
	/* the leak scan at exit reads /proc/self/task: keep / in sight */
	dochroot = 0;
#endif
	if (dochroot) {
		if (pw->pw_dir != NULL && pw->pw_dir[0] == '/' &&
		    strcmp(pw->pw_dir, "/") != 0 &&
		    strcmp(pw->pw_dir, "/nonexistent") != 0 &&
		    access(pw->pw_dir, X_OK) == 0)
			root = pw->pw_dir;
		if (chroot(root) == -1)
			fatal("chroot %s", root);
		if (chdir("/") == -1)
			fatal("chdir /");
	}
	setproctitle("%s", title);
	if (setgroups(1, &pw->pw_gid) == -1 ||
	    setresgid(pw->pw_gid, pw->pw_gid, pw->pw_gid) == -1 ||
	    setresuid(pw->pw_uid, pw->pw_uid, pw->pw_uid) == -1)
		fatal("cannot drop privileges to %s", user);
}
