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
 * The plaintext relay without copies: bytes go from one socket into a
 * pipe and from the pipe to the other socket with splice(2), and never
 * enter the worker's memory.  Linux only; elsewhere spipe_supported()
 * says no and proxy.c relays through its buffers.
 *
 * A session holds a pipe only while bytes are in it: a drained pipe goes
 * back to the worker's spare, shared by all its sessions, so that an
 * idle session costs no descriptor and a busy one no pipe2(2) per read.
 */

#include <sys/types.h>

#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <unistd.h>

#include "imaprelayd.h"
#include "imap.h"

#if defined(__linux__)

/*
 * One spare is enough to spare a busy session its pipe2(2) per burst;
 * more would only hold descriptors.
 */
#define SPIPE_SPARES	1
#define PIPE_DEFAULT	(64 * 1024)	/* a new pipe's size on Linux */

static int	spares[SPIPE_SPARES][2];
static int	nspares;

int
spipe_supported(void)
{
	return (1);
}

/* a pipe for p: a spare, or a new one of about cap bytes */
static int
spipe_get(struct spipe *p, size_t cap)
{
	if (nspares > 0) {
		nspares--;
		p->fd[0] = spares[nspares][0];
		p->fd[1] = spares[nspares][1];
		return (0);
	}
	if (pipe2(p->fd, O_NONBLOCK | O_CLOEXEC) == -1) {
		p->fd[0] = p->fd[1] = -1;
		return (-1);
	}
	/*
	 * The relay never puts more than cap bytes in: the pipe needs to
	 * grow only for a larger cap (the kernel may refuse: then it is
	 * full earlier, which is harmless).
	 */
	if (cap > PIPE_DEFAULT)
		(void)fcntl(p->fd[1], F_SETPIPE_SZ, (int)cap);
	return (0);
}

/*
 * Move up to max bytes from the socket fd into the pipe.  Like read(2):
 * 0 at EOF, -1 with EAGAIN when nothing moved.  The pipe may hold fewer
 * bytes than its size (a page per socket fragment): EAGAIN with bytes
 * in it marks it full until spipe_out() took some.
 */
ssize_t
spipe_in(struct spipe *p, int fd, size_t max, size_t cap)
{
	ssize_t	 n;

	if (p->fd[0] == -1 && spipe_get(p, cap) == -1)
		return (-1);
	n = splice(fd, NULL, p->fd[1], NULL, max,
	    SPLICE_F_MOVE | SPLICE_F_NONBLOCK);
	if (n > 0)
		p->len += n;
	else if (n == -1 && errno == EAGAIN && p->len > 0)
		p->full = 1;
	if (p->len == 0)
		spipe_release(p);
	return (n);
}

/* move what the pipe holds to the socket fd; like write(2) */
ssize_t
spipe_out(struct spipe *p, int fd)
{
	ssize_t	 n;

	n = splice(p->fd[0], NULL, fd, NULL, p->len,
	    SPLICE_F_MOVE | SPLICE_F_NONBLOCK);
	if (n > 0) {
		p->len -= n;
		p->full = 0;
		if (p->len == 0)
			spipe_release(p);
	}
	return (n);
}

/* what the pipe holds, into memory after all (the session ends) */
ssize_t
spipe_read(struct spipe *p, void *buf, size_t len)
{
	ssize_t	 n;

	if (len > p->len)
		len = p->len;
	if ((n = read(p->fd[0], buf, len)) > 0) {
		p->len -= n;
		p->full = 0;
		if (p->len == 0)
			spipe_release(p);
	}
	return (n);
}

/* give the pipe up: an empty one is kept as a spare */
void
spipe_release(struct spipe *p)
{
	if (p->fd[0] != -1) {
		if (p->len == 0 && nspares < SPIPE_SPARES) {
			spares[nspares][0] = p->fd[0];
			spares[nspares][1] = p->fd[1];
			nspares++;
		} else {
			close(p->fd[0]);
			close(p->fd[1]);
		}
	}
	spipe_init(p);
}

#else /* !__linux__ */

int
spipe_supported(void)
{
	return (0);
}

ssize_t
spipe_in(struct spipe *p, int fd, size_t max, size_t cap)
{
	errno = ENOSYS;
	return (-1);
}

ssize_t
spipe_out(struct spipe *p, int fd)
{
	errno = ENOSYS;
	return (-1);
}

ssize_t
spipe_read(struct spipe *p, void *buf, size_t len)
{
	errno = ENOSYS;
	return (-1);
}

void
spipe_release(struct spipe *p)
{
	spipe_init(p);
}

#endif /* __linux__ */

void
spipe_init(struct spipe *p)
{
	p->fd[0] = p->fd[1] = -1;
	p->len = 0;
	p->full = 0;
}

/* how many more bytes the relay may put in: 0 while it is full */
size_t
spipe_room(struct spipe *p, size_t cap)
{
	if (p->full || p->len >= cap)
		return (0);
	return (cap - p->len);
}
