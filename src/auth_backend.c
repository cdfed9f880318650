/*
 * Copyright (c) 2026 The imaprelayd authors
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
 * Backend connections, made by the auth process for the imap workers,
 * which open none themselves: a worker that a client compromised can
 * reach no address on the network, only the backend socket it was
 * given.  A list of addresses (the Auth-Server answers, or every
 * address of a proxy_pass name) is tried in turn, each for the
 * server's timeout, without blocking; the first that connects is
 * handed to the caller, which passes it to the worker.  The backend
 * socket options (so_keepalive) are set here, since the worker cannot.
 * The capability probes of auth_caps.c make their sockets here too.
 */

#include <sys/types.h>
#include <sys/socket.h>

#include <errno.h>
#include <event.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "imaprelayd.h"

static void	bconn_try(struct bconn *);
static void	bconn_event(int, short, void *);
static void	bconn_failed(struct bconn *, const char *);

/*
 * A non-blocking TCP socket whose connect to sa has begun; -1 with
 * errno set when it could not (a family this host lacks is one).
 */
int
bconn_socket(const struct sockaddr *sa, socklen_t salen, int keepalive)
{
	int	 fd, on = 1, saved_errno;

	if ((fd = socket(sa->sa_family, SOCK_STREAM | SOCK_NONBLOCK |
	    SOCK_CLOEXEC, 0)) == -1)
		return (-1);
	if (keepalive && setsockopt(fd, SOL_SOCKET, SO_KEEPALIVE, &on,
	    sizeof(on)) == -1)
		log_warn("%s: SO_KEEPALIVE", __func__);
	if (connect(fd, sa, salen) == -1 && errno != EINPROGRESS) {
		saved_errno = errno;
		close(fd);
		errno = saved_errno;
		return (-1);
	}
	return (fd);
}

void
bconn_init(struct bconn *bc, void (*done)(struct bconn *, int), void *arg)
{
	memset(bc, 0, sizeof(*bc));
	bc->fd = -1;
	bc->done = done;
	bc->arg = arg;
}

/*
 * Try the addresses from number from on.  done() may be called before
 * this returns (nothing left to try, or none could even start).
 */
void
bconn_start(struct bconn *bc, int from)
{
	bconn_stop(bc);
	bc->cur = from;
	bc->why[0] = '\0';
	bconn_try(bc);
}

/* an attempt in progress is dropped; the caller keeps what it has */
void
bconn_stop(struct bconn *bc)
{
	if (bc->fd == -1)
		return;
	event_del(&bc->ev);
	close(bc->fd);
	bc->fd = -1;
}

static void
bconn_try(struct bconn *bc)
{
	const struct sockaddr	*sa;
	struct timeval		 tv;

	for (; bc->cur < bc->addrs.n; bc->cur++) {
		sa = (const struct sockaddr *)&bc->addrs.ss[bc->cur];
		sockaddr_str(sa, bc->name, sizeof(bc->name));
		if ((bc->fd = bconn_socket(sa, bc->addrs.len[bc->cur],
		    bc->keepalive)) == -1) {
			bconn_failed(bc, strerror(errno));
			continue;
		}
		/* writable once connected, or refused */
		tv.tv_sec = bc->timeout_ms / 1000;
		tv.tv_usec = (bc->timeout_ms % 1000) * 1000;
		event_set(&bc->ev, bc->fd, EV_WRITE, bconn_event, bc);
		event_add(&bc->ev, bc->timeout_ms > 0 ? &tv : NULL);
		return;
	}
	bc->done(bc, -1);
}

static void
bconn_event(int fd, short event, void *arg)
{
	struct bconn	*bc = arg;
	socklen_t	 len = sizeof(int);
	int		 err = 0;

	log_select(bc->log_id);
	if (event & EV_TIMEOUT)
		err = ETIMEDOUT;
	else if (getsockopt(fd, SOL_SOCKET, SO_ERROR, &err, &len) == -1)
		err = errno;
	if (err == 0) {
		/* the socket is the caller's from now on */
		bc->fd = -1;
		bc->done(bc, fd);
		return;
	}
	close(bc->fd);
	bc->fd = -1;
	bconn_failed(bc, err == ETIMEDOUT ? "timed out" : strerror(err));
	bc->cur++;
	bconn_try(bc);
}

/* one address did not answer: say so, and whether another is tried */
static void
bconn_failed(struct bconn *bc, const char *err)
{
	snprintf(bc->why, sizeof(bc->why), "backend %s: connect: %s",
	    bc->name, err);
	if (bc->cur + 1 < bc->addrs.n)
		log_warning("%s, trying %s", bc->why, bc->next);
}
