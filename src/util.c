/*
 * Small helpers shared by every process: imsg channels on libevent,
 * address formatting, the privilege drop.
 */

#include <sys/types.h>
#include <sys/socket.h>

#include <netinet/in.h>
#include <arpa/inet.h>

#include <errno.h>
#include <fcntl.h>
#include <grp.h>
#include <pwd.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "imaprelayd.h"

void
imsgev_init(struct imsgev *iev, int fd, void (*handler)(int, short, void *),
    void *data)
{
	if (imsgbuf_init(&iev->ibuf, fd) == -1)
		fatal("imsgbuf_init");
	imsgbuf_allow_fdpass(&iev->ibuf);
	/* auth requests carry a client_buffer-sized user and password */
	if (imsgbuf_set_maxsize(&iev->ibuf, 256 * 1024) == -1)
		fatal("imsgbuf_set_maxsize");
	iev->handler = handler;
	iev->data = data;
	iev->events = EV_READ;
	event_set(&iev->ev, fd, iev->events, handler, iev);
	event_add(&iev->ev, NULL);
}

void
imsgev_add(struct imsgev *iev)
{
	iev->events = EV_READ;
	if (imsgbuf_queuelen(&iev->ibuf) > 0)
		iev->events |= EV_WRITE;
	event_del(&iev->ev);
	event_set(&iev->ev, iev->ibuf.fd, iev->events, iev->handler, iev);
	event_add(&iev->ev, NULL);
}

void
imsgev_clear(struct imsgev *iev)
{
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

	ret = imsg_compose(&iev->ibuf, type, peerid, 0, fd, data, len);
	if (ret != -1)
		imsgev_add(iev);
	return (ret);
}

const char *
sockaddr_str(const struct sockaddr *sa, char *buf, size_t len)
{
	char	 host[INET6_ADDRSTRLEN];

	switch (sa->sa_family) {
	case AF_INET: {
		const struct sockaddr_in *sin = (const void *)sa;

		inet_ntop(AF_INET, &sin->sin_addr, host, sizeof(host));
		snprintf(buf, len, "%s:%u", host, ntohs(sin->sin_port));
		break;
	}
	case AF_INET6: {
		const struct sockaddr_in6 *sin6 = (const void *)sa;

		inet_ntop(AF_INET6, &sin6->sin6_addr, host, sizeof(host));
		snprintf(buf, len, "[%s]:%u", host, ntohs(sin6->sin6_port));
		break;
	}
	case AF_UNIX:
		strlcpy(buf, "unix", len);
		break;
	default:
		strlcpy(buf, "?", len);
		break;
	}
	return (buf);
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

void
set_nonblock(int fd)
{
	int	 flags;

	if ((flags = fcntl(fd, F_GETFL)) == -1)
		fatal("fcntl F_GETFL");
	if (fcntl(fd, F_SETFL, flags | O_NONBLOCK) == -1)
		fatal("fcntl F_SETFL");
}

uint64_t
now_ms(void)
{
	struct timespec	 ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return ((uint64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000);
}
