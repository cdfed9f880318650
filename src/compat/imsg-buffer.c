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
 * Buffers and buffer queues under imsg: struct ibuf (a growable byte
 * buffer with separate read and write positions and an optional file
 * descriptor), struct ibufqueue, and struct msgbuf (a write queue plus
 * a reader that cuts a byte stream into messages).
 *
 * Implements the OpenBSD libutil API of the same names; only built
 * where the system does not have it.
 */

/*
 * Why this is not OpenBSD's own file with its $OpenBSD$ tag: the
 * project writes its code itself and takes nothing verbatim from
 * other trees (README, "Layout").  What must stay identical is kept
 * identical and tested: the API (the 7.7+ imsgbuf generation and the
 * 7.8 additions, so src/ compiles unchanged against OpenBSD's libutil,
 * where this file is not built) and the wire format (struct imsg_hdr,
 * the length with its fd bit), which regress/unit/test_imsg.c and
 * regress/fuzz/fuzz_imsg.c check.  A fix made upstream is carried over
 * by reading its diff against the API's behaviour, not by patching.
 */

#ifndef __OpenBSD__

#include <sys/types.h>
#include <sys/queue.h>
#include <sys/socket.h>
#include <sys/uio.h>

#ifdef __FreeBSD__
#include <sys/endian.h>
#else
#include <endian.h>
#endif
#include <errno.h>
#include <limits.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "imsg.h"

#ifndef IOV_MAX
#define IOV_MAX			1024
#endif
#ifndef MSG_NOSIGNAL
#define MSG_NOSIGNAL		0	/* rely on SIGPIPE being ignored */
#endif

/* fd values with a meaning of their own; real fds are >= 0 */
#define IBUF_FD_NONE		-1
#define IBUF_FD_ON_STACK	-2	/* ibuf_from_buffer() view: never freed */
#define IBUF_FD_LOST		-3	/* the kernel dropped an fd sent to us */

/*
 * File descriptors received but not yet matched with a message header.
 * An fd arrives with the first bytes of its message, so at most one
 * header can still be incomplete when the next fd comes in.
 */
#define MSGBUF_PENDING_FDS	2

struct ibufqueue {
	TAILQ_HEAD(, ibuf)	 bufs;
	uint32_t		 queued;
};

struct msgbuf {
	struct ibufqueue	 wq;		/* waiting to be written */
	struct ibufqueue	 rq;		/* complete messages read */
	unsigned char		*rbuf;		/* bytes read, not yet parsed */
	size_t			 roff;
	size_t			 hdrsize;
	struct ibuf		*rmsg;		/* message being received */
	struct ibuf		*(*readhdr)(struct ibuf *, void *, int *);
	void			*rarg;
	int			 rfds[MSGBUF_PENDING_FDS];
	int			 nrfds;
	int			 rerror;	/* sticky: the stream is broken */
};

static void	ibufq_init(struct ibufqueue *);
static void	msgbuf_drain(struct msgbuf *, size_t);
static void	msgbuf_fd_push(struct msgbuf *, int);
static void	msgbuf_fd_flush(struct msgbuf *);
static int	msgbuf_process(struct msgbuf *);
static int	msgbuf_gather(struct msgbuf *, struct iovec *, int,
		    struct ibuf **);
static ssize_t	msgbuf_send(int, struct msghdr *);
static int	msgbuf_read_ready(struct msgbuf *);

/*
 * Payloads carry passwords: memory is wiped before it is released.
 * Done by hand rather than with freezero/recallocarray, which not
 * every system without imsg has.
 */
static void
ibuf_wipe_free(void *p, size_t len)
{
	if (p == NULL)
		return;
	explicit_bzero(p, len);
	free(p);
}

/* Creating, growing, inspecting. */

struct ibuf *
ibuf_open(size_t len)
{
	struct ibuf	*buf;

	if ((buf = calloc(1, sizeof(*buf))) == NULL)
		return (NULL);
	if (len > 0 && (buf->buf = calloc(len, 1)) == NULL) {
		free(buf);
		return (NULL);
	}
	buf->size = buf->max = len;
	buf->fd = IBUF_FD_NONE;
	return (buf);
}

struct ibuf *
ibuf_dynamic(size_t len, size_t max)
{
	struct ibuf	*buf;

	if (max == 0 || max < len) {
		errno = EINVAL;
		return (NULL);
	}
	if ((buf = ibuf_open(len)) == NULL)
		return (NULL);
	buf->max = max;
	return (buf);
}

void *
ibuf_reserve(struct ibuf *buf, size_t len)
{
	unsigned char	*nb;
	size_t		 need, nsize;
	void		*p;

	if (buf->fd == IBUF_FD_ON_STACK) {
		/* a view of someone else's memory cannot grow */
		errno = EINVAL;
		return (NULL);
	}
	if (len > SIZE_MAX - buf->wpos || buf->wpos + len > buf->max) {
		errno = ERANGE;
		return (NULL);
	}
	need = buf->wpos + len;
	if (need > buf->size) {
		/* grow geometrically, so that many small adds stay cheap */
		nsize = buf->size > buf->max / 2 ? buf->max : buf->size * 2;
		if (nsize < need)
			nsize = need;
		if ((nb = calloc(nsize, 1)) == NULL)
			return (NULL);
		if (buf->wpos > 0)
			memcpy(nb, buf->buf, buf->wpos);
		ibuf_wipe_free(buf->buf, buf->size);
		buf->buf = nb;
		buf->size = nsize;
	}
	p = buf->buf + buf->wpos;
	buf->wpos = need;
	return (p);
}

int
ibuf_add(struct ibuf *buf, const void *data, size_t len)
{
	void	*p;

	if (len == 0)
		return (0);
	if ((p = ibuf_reserve(buf, len)) == NULL)
		return (-1);
	memcpy(p, data, len);
	return (0);
}

int
ibuf_add_ibuf(struct ibuf *buf, const struct ibuf *from)
{
	return (ibuf_add(buf, ibuf_data(from), ibuf_size(from)));
}

int
ibuf_add_zero(struct ibuf *buf, size_t len)
{
	void	*p;

	if (len == 0)
		return (0);
	if ((p = ibuf_reserve(buf, len)) == NULL)
		return (-1);
	memset(p, 0, len);
	return (0);
}

/*
 * The fixed width adds take a uint64_t so callers need no casts; a
 * value that does not fit the width is refused, not truncated.
 */
static int
ibuf_fits(uint64_t value, uint64_t limit)
{
	if (value > limit) {
		errno = EINVAL;
		return (0);
	}
	return (1);
}

int
ibuf_add_n8(struct ibuf *buf, uint64_t value)
{
	uint8_t	 v = value;

	if (!ibuf_fits(value, UINT8_MAX))
		return (-1);
	return (ibuf_add(buf, &v, sizeof(v)));
}

int
ibuf_add_n16(struct ibuf *buf, uint64_t value)
{
	uint16_t v = htobe16((uint16_t)value);

	if (!ibuf_fits(value, UINT16_MAX))
		return (-1);
	return (ibuf_add(buf, &v, sizeof(v)));
}

int
ibuf_add_n32(struct ibuf *buf, uint64_t value)
{
	uint32_t v = htobe32((uint32_t)value);

	if (!ibuf_fits(value, UINT32_MAX))
		return (-1);
	return (ibuf_add(buf, &v, sizeof(v)));
}

int
ibuf_add_n64(struct ibuf *buf, uint64_t value)
{
	uint64_t v = htobe64(value);

	return (ibuf_add(buf, &v, sizeof(v)));
}

int
ibuf_add_h16(struct ibuf *buf, uint64_t value)
{
	uint16_t v = value;

	if (!ibuf_fits(value, UINT16_MAX))
		return (-1);
	return (ibuf_add(buf, &v, sizeof(v)));
}

int
ibuf_add_h32(struct ibuf *buf, uint64_t value)
{
	uint32_t v = value;

	if (!ibuf_fits(value, UINT32_MAX))
		return (-1);
	return (ibuf_add(buf, &v, sizeof(v)));
}

int
ibuf_add_h64(struct ibuf *buf, uint64_t value)
{
	return (ibuf_add(buf, &value, sizeof(value)));
}

/* Add str in a field of exactly len bytes, NUL padded. */
int
ibuf_add_strbuf(struct ibuf *buf, const char *str, size_t len)
{
	size_t	 slen;

	slen = strlen(str);
	if (slen >= len) {
		/* also refuses len == 0: there is no room for the NUL */
		errno = EOVERFLOW;
		return (-1);
	}
	if (ibuf_add(buf, str, slen) == -1)
		return (-1);
	if (ibuf_add_zero(buf, len - slen) == -1) {
		buf->wpos -= slen;
		return (-1);
	}
	return (0);
}

/* Positions are relative to the read position, within the data. */
void *
ibuf_seek(struct ibuf *buf, size_t pos, size_t len)
{
	if (pos > ibuf_size(buf) || len > ibuf_size(buf) - pos) {
		errno = ERANGE;
		return (NULL);
	}
	return (buf->buf + buf->rpos + pos);
}

int
ibuf_set(struct ibuf *buf, size_t pos, const void *data, size_t len)
{
	void	*p;

	if ((p = ibuf_seek(buf, pos, len)) == NULL)
		return (-1);
	if (len > 0)
		memcpy(p, data, len);
	return (0);
}

int
ibuf_set_n8(struct ibuf *buf, size_t pos, uint64_t value)
{
	uint8_t	 v = value;

	if (!ibuf_fits(value, UINT8_MAX))
		return (-1);
	return (ibuf_set(buf, pos, &v, sizeof(v)));
}

int
ibuf_set_n16(struct ibuf *buf, size_t pos, uint64_t value)
{
	uint16_t v = htobe16((uint16_t)value);

	if (!ibuf_fits(value, UINT16_MAX))
		return (-1);
	return (ibuf_set(buf, pos, &v, sizeof(v)));
}

int
ibuf_set_n32(struct ibuf *buf, size_t pos, uint64_t value)
{
	uint32_t v = htobe32((uint32_t)value);

	if (!ibuf_fits(value, UINT32_MAX))
		return (-1);
	return (ibuf_set(buf, pos, &v, sizeof(v)));
}

int
ibuf_set_n64(struct ibuf *buf, size_t pos, uint64_t value)
{
	uint64_t v = htobe64(value);

	return (ibuf_set(buf, pos, &v, sizeof(v)));
}

int
ibuf_set_h16(struct ibuf *buf, size_t pos, uint64_t value)
{
	uint16_t v = value;

	if (!ibuf_fits(value, UINT16_MAX))
		return (-1);
	return (ibuf_set(buf, pos, &v, sizeof(v)));
}

int
ibuf_set_h32(struct ibuf *buf, size_t pos, uint64_t value)
{
	uint32_t v = value;

	if (!ibuf_fits(value, UINT32_MAX))
		return (-1);
	return (ibuf_set(buf, pos, &v, sizeof(v)));
}

int
ibuf_set_h64(struct ibuf *buf, size_t pos, uint64_t value)
{
	return (ibuf_set(buf, pos, &value, sizeof(value)));
}

/* Lower the growth limit; it can never be raised. */
int
ibuf_set_maxsize(struct ibuf *buf, size_t max)
{
	if (buf->fd == IBUF_FD_ON_STACK) {
		errno = EINVAL;
		return (-1);
	}
	if (max > buf->max || max < buf->wpos) {
		errno = ERANGE;
		return (-1);
	}
	buf->max = max;
	return (0);
}

void *
ibuf_data(const struct ibuf *buf)
{
	return (buf->buf + buf->rpos);
}

size_t
ibuf_size(const struct ibuf *buf)
{
	return (buf->wpos - buf->rpos);
}

size_t
ibuf_left(const struct ibuf *buf)
{
	if (buf->fd == IBUF_FD_ON_STACK)
		return (0);
	return (buf->max - buf->wpos);
}

int
ibuf_truncate(struct ibuf *buf, size_t len)
{
	if (len <= ibuf_size(buf)) {
		buf->wpos = buf->rpos + len;
		return (0);
	}
	if (buf->fd == IBUF_FD_ON_STACK) {
		errno = ERANGE;
		return (-1);
	}
	return (ibuf_add_zero(buf, len - ibuf_size(buf)));
}

void
ibuf_rewind(struct ibuf *buf)
{
	buf->rpos = 0;
}

void
ibuf_close(struct msgbuf *msgbuf, struct ibuf *buf)
{
	ibufq_push(&msgbuf->wq, buf);
}

/* A read-only view of existing memory, typically on the stack. */
void
ibuf_from_buffer(struct ibuf *buf, void *data, size_t len)
{
	memset(buf, 0, sizeof(*buf));
	buf->buf = data;
	buf->size = buf->wpos = len;
	buf->fd = IBUF_FD_ON_STACK;
}

void
ibuf_from_ibuf(struct ibuf *buf, const struct ibuf *from)
{
	ibuf_from_buffer(buf, ibuf_data(from), ibuf_size(from));
}

/* Reading: every get consumes from the read position. */

int
ibuf_get(struct ibuf *buf, void *data, size_t len)
{
	if (len > ibuf_size(buf)) {
		errno = EBADMSG;
		return (-1);
	}
	if (len > 0)
		memcpy(data, ibuf_data(buf), len);
	buf->rpos += len;
	return (0);
}

int
ibuf_get_ibuf(struct ibuf *buf, size_t len, struct ibuf *view)
{
	if (len > ibuf_size(buf)) {
		errno = EBADMSG;
		return (-1);
	}
	ibuf_from_buffer(view, ibuf_data(buf), len);
	buf->rpos += len;
	return (0);
}

int
ibuf_get_n8(struct ibuf *buf, uint8_t *value)
{
	return (ibuf_get(buf, value, sizeof(*value)));
}

int
ibuf_get_n16(struct ibuf *buf, uint16_t *value)
{
	if (ibuf_get(buf, value, sizeof(*value)) == -1)
		return (-1);
	*value = be16toh(*value);
	return (0);
}

int
ibuf_get_n32(struct ibuf *buf, uint32_t *value)
{
	if (ibuf_get(buf, value, sizeof(*value)) == -1)
		return (-1);
	*value = be32toh(*value);
	return (0);
}

int
ibuf_get_n64(struct ibuf *buf, uint64_t *value)
{
	if (ibuf_get(buf, value, sizeof(*value)) == -1)
		return (-1);
	*value = be64toh(*value);
	return (0);
}

int
ibuf_get_h16(struct ibuf *buf, uint16_t *value)
{
	return (ibuf_get(buf, value, sizeof(*value)));
}

int
ibuf_get_h32(struct ibuf *buf, uint32_t *value)
{
	return (ibuf_get(buf, value, sizeof(*value)));
}

int
ibuf_get_h64(struct ibuf *buf, uint64_t *value)
{
	return (ibuf_get(buf, value, sizeof(*value)));
}

/* A field of len bytes as a new NUL terminated string (free it). */
char *
ibuf_get_string(struct ibuf *buf, size_t len)
{
	char	*s;

	if (len > ibuf_size(buf)) {
		errno = EBADMSG;
		return (NULL);
	}
	if ((s = strndup(ibuf_data(buf), len)) == NULL)
		return (NULL);
	buf->rpos += len;
	return (s);
}

/* A field of exactly len bytes that must hold a NUL terminated string. */
int
ibuf_get_strbuf(struct ibuf *buf, char *str, size_t len)
{
	if (len == 0) {
		errno = EINVAL;
		return (-1);
	}
	if (ibuf_get(buf, str, len) == -1)
		return (-1);
	if (memchr(str, '\0', len) == NULL) {
		str[len - 1] = '\0';
		errno = EOVERFLOW;
		return (-1);
	}
	return (0);
}

int
ibuf_skip(struct ibuf *buf, size_t len)
{
	if (len > ibuf_size(buf)) {
		errno = EBADMSG;
		return (-1);
	}
	buf->rpos += len;
	return (0);
}

/* Freeing and file descriptors. */

void
ibuf_free(struct ibuf *buf)
{
	int	 saved_errno;

	if (buf == NULL)
		return;
	/* freeing memory we do not own would corrupt the heap: stop now */
	if (buf->fd == IBUF_FD_ON_STACK)
		abort();
	saved_errno = errno;
	if (buf->fd >= 0)
		close(buf->fd);
	ibuf_wipe_free(buf->buf, buf->size);
	free(buf);
	errno = saved_errno;
}

int
ibuf_fd_avail(struct ibuf *buf)
{
	return (buf->fd >= 0);
}

/* Hand the fd over to the caller; the buffer forgets it. */
int
ibuf_fd_get(struct ibuf *buf)
{
	int	 fd;

	if (buf->fd < 0)
		return (-1);
	fd = buf->fd;
	buf->fd = IBUF_FD_NONE;
	return (fd);
}

/* The buffer owns fd from now on; a previous one is closed. */
void
ibuf_fd_set(struct ibuf *buf, int fd)
{
	if (buf->fd == IBUF_FD_ON_STACK)
		abort();
	if (buf->fd >= 0)
		close(buf->fd);
	buf->fd = fd >= 0 ? fd : IBUF_FD_NONE;
}

/* Queues of buffers. */

static void
ibufq_init(struct ibufqueue *q)
{
	TAILQ_INIT(&q->bufs);
	q->queued = 0;
}

struct ibufqueue *
ibufq_new(void)
{
	struct ibufqueue	*q;

	if ((q = calloc(1, sizeof(*q))) == NULL)
		return (NULL);
	ibufq_init(q);
	return (q);
}

void
ibufq_free(struct ibufqueue *q)
{
	if (q == NULL)
		return;
	ibufq_flush(q);
	free(q);
}

struct ibuf *
ibufq_pop(struct ibufqueue *q)
{
	struct ibuf	*buf;

	if ((buf = TAILQ_FIRST(&q->bufs)) == NULL)
		return (NULL);
	TAILQ_REMOVE(&q->bufs, buf, entry);
	q->queued--;
	return (buf);
}

void
ibufq_push(struct ibufqueue *q, struct ibuf *buf)
{
	if (buf->fd == IBUF_FD_ON_STACK)
		abort();
	TAILQ_INSERT_TAIL(&q->bufs, buf, entry);
	q->queued++;
}

uint32_t
ibufq_queuelen(struct ibufqueue *q)
{
	return (q->queued);
}

void
ibufq_concat(struct ibufqueue *to, struct ibufqueue *from)
{
	TAILQ_CONCAT(&to->bufs, &from->bufs, entry);
	to->queued += from->queued;
	from->queued = 0;
}

void
ibufq_flush(struct ibufqueue *q)
{
	struct ibuf	*buf;

	while ((buf = ibufq_pop(q)) != NULL)
		ibuf_free(buf);
}

/* Message buffers. */

struct msgbuf *
msgbuf_new(void)
{
	struct msgbuf	*mb;

	if ((mb = calloc(1, sizeof(*mb))) == NULL)
		return (NULL);
	ibufq_init(&mb->wq);
	ibufq_init(&mb->rq);
	return (mb);
}

/*
 * A msgbuf that can also read: readhdr is called with each complete
 * header of hdrsz bytes and returns a buffer sized for the whole
 * message (header included), or NULL to declare the stream broken.
 * If the message carries the pending fd, readhdr takes it from *fd
 * and sets *fd to -1.
 */
struct msgbuf *
msgbuf_new_reader(size_t hdrsz,
    struct ibuf *(*readhdr)(struct ibuf *, void *, int *), void *arg)
{
	struct msgbuf	*mb;

	if (hdrsz == 0 || hdrsz > IBUF_READ_SIZE / 2 || readhdr == NULL) {
		errno = EINVAL;
		return (NULL);
	}
	if ((mb = msgbuf_new()) == NULL)
		return (NULL);
	if ((mb->rbuf = malloc(IBUF_READ_SIZE)) == NULL) {
		free(mb);
		return (NULL);
	}
	mb->hdrsize = hdrsz;
	mb->readhdr = readhdr;
	mb->rarg = arg;
	return (mb);
}

void
msgbuf_free(struct msgbuf *mb)
{
	if (mb == NULL)
		return;
	msgbuf_clear(mb);
	ibuf_wipe_free(mb->rbuf, IBUF_READ_SIZE);
	free(mb);
}

/* Drop everything queued in both directions, closing their fds. */
void
msgbuf_clear(struct msgbuf *mb)
{
	ibufq_flush(&mb->wq);
	ibufq_flush(&mb->rq);
	ibuf_free(mb->rmsg);
	mb->rmsg = NULL;
	if (mb->rbuf != NULL)
		explicit_bzero(mb->rbuf, mb->roff);
	mb->roff = 0;
	msgbuf_fd_flush(mb);
	mb->rerror = 0;
}

uint32_t
msgbuf_queuelen(struct msgbuf *mb)
{
	return (ibufq_queuelen(&mb->wq));
}

struct ibuf *
msgbuf_get(struct msgbuf *mb)
{
	return (ibufq_pop(&mb->rq));
}

void
msgbuf_concat(struct msgbuf *mb, struct ibufqueue *from)
{
	ibufq_concat(&mb->wq, from);
}

/* Writing. */

/*
 * Fill iov from the head of the write queue.  At most one buffer with
 * an fd goes per call, and only as the first one: the receiver gets
 * the fd with the first bytes of its message.
 */
static int
msgbuf_gather(struct msgbuf *mb, struct iovec *iov, int fdpass,
    struct ibuf **fdbuf)
{
	struct ibuf	*buf;
	int		 n = 0;

	*fdbuf = NULL;
	TAILQ_FOREACH(buf, &mb->wq.bufs, entry) {
		if (n == IOV_MAX)
			break;
		if (fdpass && buf->fd >= 0) {
			if (n > 0)
				break;
			*fdbuf = buf;
		}
		iov[n].iov_base = ibuf_data(buf);
		iov[n].iov_len = ibuf_size(buf);
		n++;
	}
	return (n);
}

/* sendmsg without SIGPIPE; plain writev when fd is not a socket. */
static ssize_t
msgbuf_send(int fd, struct msghdr *msg)
{
	ssize_t	 n;

	for (;;) {
		n = sendmsg(fd, msg, MSG_NOSIGNAL);
		if (n == -1 && errno == ENOTSOCK && msg->msg_control == NULL)
			n = writev(fd, msg->msg_iov, msg->msg_iovlen);
		if (n != -1 || errno != EINTR)
			return (n);
	}
}

static int
msgbuf_write_common(int fd, struct msgbuf *mb, int fdpass)
{
	struct iovec	 iov[IOV_MAX];
	struct msghdr	 msg;
	struct cmsghdr	*cmsg;
	union {
		struct cmsghdr	hdr;
		char		buf[CMSG_SPACE(sizeof(int))];
	}		 cmsgbuf;
	struct ibuf	*fdbuf;
	ssize_t		 n;
	int		 niov;

	if ((niov = msgbuf_gather(mb, iov, fdpass, &fdbuf)) == 0)
		return (0);

	memset(&msg, 0, sizeof(msg));
	msg.msg_iov = iov;
	msg.msg_iovlen = niov;
	if (fdbuf != NULL) {
		memset(&cmsgbuf, 0, sizeof(cmsgbuf));
		msg.msg_control = cmsgbuf.buf;
		msg.msg_controllen = sizeof(cmsgbuf.buf);
		cmsg = CMSG_FIRSTHDR(&msg);
		cmsg->cmsg_len = CMSG_LEN(sizeof(int));
		cmsg->cmsg_level = SOL_SOCKET;
		cmsg->cmsg_type = SCM_RIGHTS;
		memcpy(CMSG_DATA(cmsg), &fdbuf->fd, sizeof(int));
	}

	if ((n = msgbuf_send(fd, &msg)) == -1) {
		if (errno == EAGAIN || errno == EWOULDBLOCK ||
		    errno == ENOBUFS)
			return (0);	/* try again when writable */
		return (-1);
	}

	/*
	 * Anything sent means the fd went with it; the peer has its own
	 * copy now, so ours is closed.
	 */
	if (fdbuf != NULL) {
		close(fdbuf->fd);
		fdbuf->fd = IBUF_FD_NONE;
	}
	msgbuf_drain(mb, n);
	return (0);
}

/* Write without fd passing; queued fds are closed, not sent. */
int
ibuf_write(int fd, struct msgbuf *mb)
{
	return (msgbuf_write_common(fd, mb, 0));
}

int
msgbuf_write(int fd, struct msgbuf *mb)
{
	return (msgbuf_write_common(fd, mb, 1));
}

static void
msgbuf_drain(struct msgbuf *mb, size_t n)
{
	struct ibuf	*buf;

	while (n > 0 && (buf = TAILQ_FIRST(&mb->wq.bufs)) != NULL) {
		if (n < ibuf_size(buf)) {
			buf->rpos += n;
			return;
		}
		n -= ibuf_size(buf);
		ibuf_free(ibufq_pop(&mb->wq));
	}
	/* empty buffers at the head have nothing left to send either */
	while ((buf = TAILQ_FIRST(&mb->wq.bufs)) != NULL &&
	    ibuf_size(buf) == 0 && buf->fd < 0)
		ibuf_free(ibufq_pop(&mb->wq));
}

/* Reading. */

/* Remember a received fd (or IBUF_FD_LOST) until its header is parsed. */
static void
msgbuf_fd_push(struct msgbuf *mb, int fd)
{
	if (mb->nrfds == MSGBUF_PENDING_FDS) {
		/* only a misbehaving peer gets here: drop the oldest */
		if (mb->rfds[0] >= 0)
			close(mb->rfds[0]);
		memmove(&mb->rfds[0], &mb->rfds[1],
		    (MSGBUF_PENDING_FDS - 1) * sizeof(int));
		mb->nrfds--;
	}
	mb->rfds[mb->nrfds++] = fd;
}

static void
msgbuf_fd_flush(struct msgbuf *mb)
{
	int	 i;

	for (i = 0; i < mb->nrfds; i++)
		if (mb->rfds[i] >= 0)
			close(mb->rfds[i]);
	mb->nrfds = 0;
}

/* Pass the next complete header to readhdr; 0 ok, -1 broken stream. */
static int
msgbuf_start_msg(struct msgbuf *mb, struct ibuf *raw)
{
	struct ibuf	 hdr;
	int		 fd;

	ibuf_from_buffer(&hdr, ibuf_data(raw), mb->hdrsize);
	fd = mb->nrfds > 0 ? mb->rfds[0] : IBUF_FD_NONE;
	if ((mb->rmsg = mb->readhdr(&hdr, mb->rarg, &fd)) == NULL)
		return (-1);
	if (mb->nrfds > 0 && fd != mb->rfds[0]) {
		/* taken by this message */
		mb->nrfds--;
		memmove(&mb->rfds[0], &mb->rfds[1], mb->nrfds * sizeof(int));
	}
	/* the message holds its own header: anything less cannot end */
	if (ibuf_left(mb->rmsg) < mb->hdrsize) {
		ibuf_free(mb->rmsg);
		mb->rmsg = NULL;
		errno = EBADMSG;
		return (-1);
	}
	return (0);
}

/* Cut what was read into messages; the rest waits for more bytes. */
static int
msgbuf_process(struct msgbuf *mb)
{
	struct ibuf	 raw;
	size_t		 n, oldoff = mb->roff;
	void		*p;

	ibuf_from_buffer(&raw, mb->rbuf, mb->roff);
	while (ibuf_size(&raw) > 0) {
		if (mb->rmsg == NULL) {
			if (ibuf_size(&raw) < mb->hdrsize)
				break;
			if (msgbuf_start_msg(mb, &raw) == -1) {
				mb->rerror = errno;
				return (-1);
			}
		}
		n = ibuf_left(mb->rmsg);
		if (n > ibuf_size(&raw))
			n = ibuf_size(&raw);
		if ((p = ibuf_reserve(mb->rmsg, n)) == NULL) {
			mb->rerror = errno;
			return (-1);
		}
		memcpy(p, ibuf_data(&raw), n);
		ibuf_skip(&raw, n);
		if (ibuf_left(mb->rmsg) == 0) {
			ibufq_push(&mb->rq, mb->rmsg);
			mb->rmsg = NULL;
		}
	}

	mb->roff = ibuf_size(&raw);
	if (mb->roff > 0)
		memmove(mb->rbuf, ibuf_data(&raw), mb->roff);
	/* payloads may be secrets: leave no stale copy behind */
	explicit_bzero(mb->rbuf + mb->roff, oldoff - mb->roff);

	/* with no header waiting, no message can claim a pending fd */
	if (mb->roff == 0)
		msgbuf_fd_flush(mb);
	return (1);
}

static int
msgbuf_read_ready(struct msgbuf *mb)
{
	if (mb->rbuf == NULL) {
		errno = EINVAL;
		return (-1);
	}
	if (mb->rerror != 0) {
		errno = mb->rerror;
		return (-1);
	}
	return (0);
}

/* Read without fd passing: the kernel discards any fd sent to us. */
int
ibuf_read(int fd, struct msgbuf *mb)
{
	ssize_t	 n;

	if (msgbuf_read_ready(mb) == -1)
		return (-1);
	do {
		n = read(fd, mb->rbuf + mb->roff, IBUF_READ_SIZE - mb->roff);
	} while (n == -1 && errno == EINTR);
	if (n == -1)
		return (errno == EAGAIN || errno == EWOULDBLOCK ? 1 : -1);
	if (n == 0)
		return (0);
	mb->roff += n;
	return (msgbuf_process(mb));
}

/*
 * Keep the first fd of the SCM_RIGHTS data, close any other.  Returns
 * the fd, IBUF_FD_LOST when the kernel could not give us one (no slot
 * left in our fd table: Linux truncates the control data and drops the
 * fd), or -1 when none came.
 */
static int
msgbuf_take_fds(struct msghdr *msg)
{
	struct cmsghdr	*cmsg;
	size_t		 i, nfds;
	int		 fd, keep = -1;

	for (cmsg = CMSG_FIRSTHDR(msg); cmsg != NULL;
	    cmsg = CMSG_NXTHDR(msg, cmsg)) {
		if (cmsg->cmsg_level != SOL_SOCKET ||
		    cmsg->cmsg_type != SCM_RIGHTS ||
		    cmsg->cmsg_len < CMSG_LEN(0))
			continue;
		nfds = (cmsg->cmsg_len - CMSG_LEN(0)) / sizeof(int);
		for (i = 0; i < nfds; i++) {
			memcpy(&fd, CMSG_DATA(cmsg) + i * sizeof(int),
			    sizeof(int));
			if (keep == -1)
				keep = fd;
			else
				close(fd);
		}
	}
	if (keep == -1 && (msg->msg_flags & MSG_CTRUNC))
		return (IBUF_FD_LOST);
	return (keep);
}

int
msgbuf_read(int fd, struct msgbuf *mb)
{
	struct msghdr	 msg;
	struct iovec	 iov;
	union {
		struct cmsghdr	hdr;
		char		buf[CMSG_SPACE(sizeof(int))];
	}		 cmsgbuf;
	ssize_t		 n;
	int		 rfd, tries = 0;

	if (msgbuf_read_ready(mb) == -1)
		return (-1);
	for (;;) {
		memset(&msg, 0, sizeof(msg));
		memset(&cmsgbuf, 0, sizeof(cmsgbuf));
		iov.iov_base = mb->rbuf + mb->roff;
		iov.iov_len = IBUF_READ_SIZE - mb->roff;
		msg.msg_iov = &iov;
		msg.msg_iovlen = 1;
		msg.msg_control = cmsgbuf.buf;
		msg.msg_controllen = sizeof(cmsgbuf.buf);
		if ((n = recvmsg(fd, &msg, 0)) != -1)
			break;
		if (errno == EINTR)
			continue;
		/* BSD: no fd slot left; the retry gets the data alone */
		if (errno == EMSGSIZE && ++tries < 4)
			continue;
		if (errno == EAGAIN || errno == EWOULDBLOCK)
			return (1);
		return (-1);
	}

	rfd = msgbuf_take_fds(&msg);
	if (n == 0) {
		if (rfd >= 0)
			close(rfd);
		return (0);
	}
	mb->roff += n;
	if (rfd != -1)
		msgbuf_fd_push(mb, rfd);
	return (msgbuf_process(mb));
}

#endif /* !__OpenBSD__ */
