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
 * Unit tests for src/compat/imsg*.c: round trips over a socketpair,
 * fd passing, reassembly of split messages, rejection of bad headers.
 */

#include <sys/types.h>
#include <sys/queue.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/uio.h>

#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "compat/imsg.h"
#include "unit.h"

struct chan {
	int		 sv[2];
	struct imsgbuf	 a;	/* writer side */
	struct imsgbuf	 b;	/* reader side */
};

static void
set_nonblock_fd(int fd)
{
	int	 fl;

	if ((fl = fcntl(fd, F_GETFL)) == -1 ||
	    fcntl(fd, F_SETFL, fl | O_NONBLOCK) == -1) {
		perror("fcntl");
		exit(2);
	}
}

static void
set_bufsize(int fd)
{
	int	 sz = 1024 * 1024;

	setsockopt(fd, SOL_SOCKET, SO_SNDBUF, &sz, sizeof(sz));
	setsockopt(fd, SOL_SOCKET, SO_RCVBUF, &sz, sizeof(sz));
}

static void
chan_open(struct chan *c, uint32_t maxpayload)
{
	if (socketpair(AF_UNIX, SOCK_STREAM, 0, c->sv) == -1) {
		perror("socketpair");
		exit(2);
	}
	set_nonblock_fd(c->sv[0]);
	set_nonblock_fd(c->sv[1]);
	/*
	 * Tests write everything before they read, in one process: the
	 * socket must hold it all or imsgbuf_flush waits forever.
	 */
	set_bufsize(c->sv[0]);
	set_bufsize(c->sv[1]);
	if (imsgbuf_init(&c->a, c->sv[0]) == -1 ||
	    imsgbuf_init(&c->b, c->sv[1]) == -1) {
		perror("imsgbuf_init");
		exit(2);
	}
	imsgbuf_allow_fdpass(&c->a);
	imsgbuf_allow_fdpass(&c->b);
	if (maxpayload != 0 &&
	    (imsgbuf_set_maxsize(&c->a, maxpayload) == -1 ||
	    imsgbuf_set_maxsize(&c->b, maxpayload) == -1)) {
		perror("imsgbuf_set_maxsize");
		exit(2);
	}
}

static void
chan_close(struct chan *c)
{
	imsgbuf_clear(&c->a);
	imsgbuf_clear(&c->b);
	close(c->sv[0]);
	close(c->sv[1]);
}

/*
 * Move bytes from a to b until b has a complete message or nothing
 * moves any more.  Returns imsg_get's result (or -1 on a read error).
 */
static ssize_t
chan_get(struct chan *c, struct imsg *imsg)
{
	ssize_t	 n;
	int	 i;

	for (i = 0; i < 1000; i++) {
		if ((n = imsg_get(&c->b, imsg)) != 0)
			return (n);
		if (imsgbuf_write(&c->a) == -1)
			return (-1);
		if (imsgbuf_read(&c->b) == -1)
			return (-1);
	}
	return (0);
}

static void
fill(unsigned char *p, size_t len, unsigned int seed)
{
	size_t	 i;

	for (i = 0; i < len; i++)
		p[i] = (unsigned char)(i * 31 + seed);
}

/* 1 if every write end of the pipe read end rfd is closed */
static int
pipe_at_eof(int rfd)
{
	char	 ch;

	set_nonblock_fd(rfd);
	return (read(rfd, &ch, 1) == 0);
}

static void
test_payload_sizes(void)
{
	struct chan	 c;
	struct imsg	 imsg;
	static unsigned char out[MAX_IMSGSIZE], in[MAX_IMSGSIZE];
	size_t		 sizes[] = { 0, 1, 1000, MAX_IMSGSIZE - IMSG_HEADER_SIZE };
	size_t		 i;
	ssize_t		 n;
	int		 ok;

	chan_open(&c, 0);
	fill(out, sizeof(out), 7);
	for (i = 0; i < 4; i++)
		if (imsg_compose(&c.a, 100 + i, 1000 + i, 4242 + i, -1,
		    sizes[i] ? out : NULL, sizes[i]) != 1)
			break;
	CHECK("compose 0, 1, 1000 and max size payloads", i == 4);
	CHECK("queuelen counts queued messages", imsgbuf_queuelen(&c.a) == 4);
	CHECK("compose above max size fails with ERANGE",
	    imsg_compose(&c.a, 1, 0, 0, -1, out,
	    MAX_IMSGSIZE - IMSG_HEADER_SIZE + 1) == -1 && errno == ERANGE);

	for (i = 0; i < 4; i++) {
		n = chan_get(&c, &imsg);
		ok = n == (ssize_t)(sizes[i] + IMSG_HEADER_SIZE) &&
		    imsg_get_type(&imsg) == 100 + i &&
		    imsg_get_id(&imsg) == 1000 + i &&
		    imsg_get_peerid(&imsg) == 1000 + i &&
		    imsg_get_pid(&imsg) == (pid_t)(4242 + i) &&
		    imsg.hdr.len == sizes[i] + IMSG_HEADER_SIZE &&
		    imsg_get_len(&imsg) == sizes[i] &&
		    imsg_get_fd(&imsg) == -1;
		if (ok && sizes[i] == 0)
			ok = imsg.data == NULL;
		else if (ok)
			ok = memcmp(imsg.data, out, sizes[i]) == 0 &&
			    imsg_get_data(&imsg, in, sizes[i]) == 0 &&
			    memcmp(in, out, sizes[i]) == 0 &&
			    imsg_get_len(&imsg) == 0;
		switch (i) {
		case 0:
			CHECK("0 byte payload round trip", ok);
			break;
		case 1:
			CHECK("1 byte payload round trip", ok);
			break;
		case 2:
			CHECK("1000 byte payload round trip", ok);
			break;
		default:
			CHECK("max size payload round trip", ok);
			break;
		}
		imsg_free(&imsg);
	}
	CHECK("queue drained after writing", imsgbuf_queuelen(&c.a) == 0);
	CHECK("no further message", imsg_get(&c.b, &imsg) == 0);
	chan_close(&c);
}

static void
test_get_data_exact(void)
{
	struct chan	 c;
	struct imsg	 imsg;
	unsigned char	 out[1000], in[1001];

	chan_open(&c, 0);
	fill(out, sizeof(out), 3);
	imsg_compose(&c.a, 5, 6, 0, -1, out, sizeof(out));
	imsg_compose(&c.a, 7, 0, 0, -1, NULL, 0);
	CHECK("get 1000 byte message", chan_get(&c, &imsg) > 0);
	CHECK("pid 0 means the sender's pid",
	    imsg_get_pid(&imsg) == getpid());
	CHECK("imsg_get_data shorter than payload: EBADMSG",
	    imsg_get_data(&imsg, in, 999) == -1 && errno == EBADMSG);
	CHECK("imsg_get_data longer than payload: EBADMSG",
	    imsg_get_data(&imsg, in, 1001) == -1 && errno == EBADMSG);
	CHECK("imsg_get_data of 0 bytes: EINVAL",
	    imsg_get_data(&imsg, in, 0) == -1 && errno == EINVAL);
	CHECK("failed imsg_get_data consumed nothing",
	    imsg_get_len(&imsg) == 1000);
	CHECK("imsg_get_data exact length",
	    imsg_get_data(&imsg, in, 1000) == 0 &&
	    memcmp(in, out, 1000) == 0);
	CHECK("second imsg_get_data fails: payload consumed",
	    imsg_get_data(&imsg, in, 1000) == -1 && errno == EBADMSG);
	imsg_free(&imsg);
	CHECK("get empty message", chan_get(&c, &imsg) > 0);
	CHECK("imsg_get_data on empty payload fails",
	    imsg_get_data(&imsg, in, 4) == -1 && errno == EBADMSG);
	imsg_free(&imsg);
	chan_close(&c);
}

static void
test_create_add_close(void)
{
	struct chan	 c;
	struct imsg	 imsg;
	struct ibuf	*wbuf;
	struct iovec	 iov[3];
	uint32_t	 v32;
	char		 s[16];

	chan_open(&c, 0);
	wbuf = imsg_create(&c.a, 20, 21, 0, 8);
	CHECK("imsg_create", wbuf != NULL);
	CHECK("imsg_add", imsg_add(wbuf, "abcd", 4) == 4 &&
	    imsg_add(wbuf, "efgh", 4) == 4);
	imsg_close(&c.a, wbuf);

	iov[0].iov_base = "12";
	iov[0].iov_len = 2;
	iov[1].iov_base = "";
	iov[1].iov_len = 0;
	iov[2].iov_base = "345";
	iov[2].iov_len = 3;
	CHECK("imsg_composev", imsg_composev(&c.a, 22, 23, 0, -1, iov, 3) == 1);

	CHECK("get created message", chan_get(&c, &imsg) > 0 &&
	    imsg_get_type(&imsg) == 20 && imsg_get_len(&imsg) == 8 &&
	    memcmp(imsg.data, "abcdefgh", 8) == 0);
	CHECK("ibuf_get_h32 consumes 4 bytes",
	    ibuf_get_h32(imsg.buf, &v32) == 0 && imsg_get_len(&imsg) == 4);
	CHECK("imsg_forward sends the whole payload",
	    imsg_forward(&c.a, &imsg) == 1);
	imsg_free(&imsg);
	CHECK("get composev message", chan_get(&c, &imsg) > 0 &&
	    imsg_get_type(&imsg) == 22 && imsg_get_len(&imsg) == 5 &&
	    memcmp(imsg.data, "12345", 5) == 0);
	imsg_free(&imsg);
	CHECK("get forwarded message", chan_get(&c, &imsg) > 0 &&
	    imsg_get_type(&imsg) == 20 && imsg_get_id(&imsg) == 21 &&
	    imsg_get_len(&imsg) == 8 &&
	    memcmp(imsg.data, "abcdefgh", 8) == 0);
	imsg_free(&imsg);

	wbuf = ibuf_dynamic(4, 64);
	CHECK("ibuf_add_strbuf pads with NULs",
	    wbuf != NULL && ibuf_add_strbuf(wbuf, "hi", 16) == 0 &&
	    ibuf_size(wbuf) == 16);
	CHECK("ibuf_add_strbuf refuses a string that does not fit",
	    ibuf_add_strbuf(wbuf, "toolong", 4) == -1 &&
	    errno == EOVERFLOW && ibuf_size(wbuf) == 16);
	CHECK("ibuf_get_strbuf", ibuf_get_strbuf(wbuf, s, 16) == 0 &&
	    strcmp(s, "hi") == 0);
	CHECK("ibuf_add past max fails with ERANGE",
	    ibuf_add_zero(wbuf, 49) == -1 && errno == ERANGE);
	CHECK("ibuf_left", ibuf_left(wbuf) == 48);
	ibuf_free(wbuf);
	chan_close(&c);
}

static void
test_large_payload(void)
{
	struct chan	 c;
	struct imsg	 imsg;
	size_t		 len = 128 * 1024;
	unsigned char	*out;

	if ((out = malloc(len)) == NULL)
		exit(2);
	fill(out, len, 11);
	chan_open(&c, 128 * 1024);
	CHECK("128 KiB payload composes after imsgbuf_set_maxsize",
	    imsg_compose(&c.a, 9, 9, 0, -1, out, len) == 1);
	CHECK("one byte more does not",
	    imsg_compose(&c.a, 9, 9, 0, -1, out, len + 1) == -1 &&
	    errno == ERANGE);
	CHECK("128 KiB payload round trip", chan_get(&c, &imsg) > 0 &&
	    imsg_get_len(&imsg) == len && memcmp(imsg.data, out, len) == 0);
	imsg_free(&imsg);
	CHECK("imsgbuf_set_maxsize refuses sizes touching the fd mark",
	    imsgbuf_set_maxsize(&c.a, UINT32_MAX) == -1 &&
	    imsgbuf_set_maxsize(&c.a, 0x80000000U) == -1);
	chan_close(&c);
	free(out);
}

/* A raw message written in pieces, some cutting through the header. */
static void
test_split_writes(void)
{
	struct chan	 c;
	struct imsg	 imsg;
	struct imsg_hdr	 hdr;
	unsigned char	 wire[sizeof(hdr) + 300];
	size_t		 cuts[] = { 5, 11, 100, 190, 10 };	/* sum 316 */
	size_t		 off = 0, i;
	int		 early = 0;

	chan_open(&c, 0);
	hdr.type = 77;
	hdr.len = sizeof(wire);
	hdr.peerid = 78;
	hdr.pid = 79;
	memcpy(wire, &hdr, sizeof(hdr));
	fill(wire + sizeof(hdr), 300, 5);

	for (i = 0; i < 5; i++) {
		if (write(c.sv[0], wire + off, cuts[i]) != (ssize_t)cuts[i])
			exit(2);
		off += cuts[i];
		if (imsgbuf_read(&c.b) != 1)
			early = -1;
		if (i < 4 && imsg_get(&c.b, &imsg) != 0)
			early = 1;
	}
	CHECK("split message wrote all bytes", off == sizeof(wire));
	CHECK("no message before its last byte", early == 0);
	CHECK("split message reassembled",
	    imsg_get(&c.b, &imsg) == (ssize_t)sizeof(wire) &&
	    imsg_get_type(&imsg) == 77 && imsg_get_id(&imsg) == 78 &&
	    imsg_get_pid(&imsg) == 79 && imsg_get_len(&imsg) == 300 &&
	    memcmp(imsg.data, wire + sizeof(hdr), 300) == 0);
	imsg_free(&imsg);
	CHECK("read with nothing to read returns 1", imsgbuf_read(&c.b) == 1);
	chan_close(&c);
}

static void
test_fd_pass(void)
{
	struct chan	 c;
	struct imsg	 imsg;
	int		 p[2], fd;
	char		 buf[16];

	chan_open(&c, 0);
	if (pipe(p) == -1)
		exit(2);
	CHECK("compose with fd", imsg_compose(&c.a, 1, 2, 0, p[1], "x", 1) == 1);
	CHECK("get message with fd", chan_get(&c, &imsg) > 0 &&
	    imsg_get_type(&imsg) == 1 && imsg_get_len(&imsg) == 1);
	fd = imsg_get_fd(&imsg);
	CHECK("imsg_get_fd returns the fd", fd >= 0);
	CHECK("imsg_get_fd a second time returns -1", imsg_get_fd(&imsg) == -1);
	imsg_free(&imsg);
	CHECK("passed fd is usable (write to the pipe through it)",
	    write(fd, "hello", 5) == 5 && read(p[0], buf, sizeof(buf)) == 5 &&
	    memcmp(buf, "hello", 5) == 0);
	CHECK("taken fd survives imsg_free", fcntl(fd, F_GETFD) != -1);
	close(fd);
	CHECK("sender closed its copy after sending", pipe_at_eof(p[0]));
	close(p[0]);

	if (pipe(p) == -1)
		exit(2);
	imsg_compose(&c.a, 3, 0, 0, p[1], NULL, 0);
	CHECK("get message with an fd nobody takes", chan_get(&c, &imsg) > 0);
	imsg_free(&imsg);
	CHECK("imsg_free closes an untaken fd", pipe_at_eof(p[0]));
	close(p[0]);

	if (pipe(p) == -1)
		exit(2);
	imsg_compose(&c.a, 4, 0, 0, p[1], NULL, 0);
	imsgbuf_clear(&c.a);
	CHECK("imsgbuf_clear closes the fd of a queued message",
	    pipe_at_eof(p[0]));
	close(p[0]);
	imsgbuf_init(&c.a, c.sv[0]);
	chan_close(&c);
}

/* Several fds and plain messages interleaved: each fd to its message. */
static void
test_fd_order(void)
{
	struct chan	 c;
	struct imsg	 imsg;
	int		 p[3][2], i, fd, ok = 1;
	char		 ch;

	chan_open(&c, 0);
	for (i = 0; i < 3; i++) {
		if (pipe(p[i]) == -1)
			exit(2);
		imsg_compose(&c.a, 50, i, 0, -1, "plain", 5);
		imsg_compose(&c.a, 51, i, 0, p[i][1], &i, sizeof(i));
	}
	/* everything sent first, so one read sees many messages */
	if (imsgbuf_flush(&c.a) == -1)
		ok = 0;
	for (i = 0; i < 6 && ok; i++) {
		if (chan_get(&c, &imsg) <= 0) {
			ok = 0;
			break;
		}
		fd = imsg_get_fd(&imsg);
		if (imsg_get_type(&imsg) == 50)
			ok = fd == -1;
		else {
			ok = fd >= 0 && write(fd, "k", 1) == 1 &&
			    read(p[imsg_get_id(&imsg)][0], &ch, 1) == 1;
			close(fd);
		}
		imsg_free(&imsg);
	}
	CHECK("interleaved fds reach their own messages", ok);
	for (i = 0; i < 3; i++)
		close(p[i][0]);
	chan_close(&c);
}

/*
 * Fill the reader's 64 KiB buffer so that the header of the message
 * carrying the fd is cut in two; the fd must still reach it.
 */
static void
test_fd_split_header(void)
{
	struct chan	 c;
	struct imsg	 imsg;
	size_t		 big = IBUF_READ_SIZE - 5 - IMSG_HEADER_SIZE;
	unsigned char	*out;
	int		 p[2], fd = -1;

	if ((out = calloc(1, big)) == NULL || pipe(p) == -1)
		exit(2);
	chan_open(&c, 128 * 1024);
	imsg_compose(&c.a, 60, 0, 0, -1, out, big);
	imsg_compose(&c.a, 61, 0, 0, p[1], "fd", 2);
	if (imsgbuf_flush(&c.a) == -1)
		exit(2);
	if (chan_get(&c, &imsg) > 0 && imsg_get_type(&imsg) == 60)
		imsg_free(&imsg);
	if (chan_get(&c, &imsg) > 0 && imsg_get_type(&imsg) == 61) {
		fd = imsg_get_fd(&imsg);
		imsg_free(&imsg);
	}
	CHECK("fd survives a header cut across two reads", fd >= 0);
	if (fd >= 0)
		close(fd);
	CHECK("no copy of that fd left open", pipe_at_eof(p[0]));
	close(p[0]);
	chan_close(&c);
	free(out);
}

/*
 * Out of fd slots on the receiving side: the message must arrive
 * without its fd, and nothing may leak or crash.
 */
static void
test_fd_exhaustion(void)
{
	struct chan	 c;
	struct imsg	 imsg;
	struct rlimit	 old, rl;
	int		 p[2], q[2], fillers[64], nfill = 0, fd, i;
	int		 got, gotfd, nofd;

	memset(&imsg, 0, sizeof(imsg));
	chan_open(&c, 0);
	if (pipe(p) == -1 || pipe(q) == -1 || getrlimit(RLIMIT_NOFILE, &old))
		exit(2);
	imsg_compose(&c.a, 70, 0, 0, p[1], "a", 1);
	imsg_compose(&c.a, 71, 0, 0, q[1], "b", 1);
	/* send the first only: the second must come with a free slot */
	imsgbuf_write(&c.a);

	rl = old;
	rl.rlim_cur = 64;
	if (setrlimit(RLIMIT_NOFILE, &rl) == -1)
		exit(2);
	while (nfill < 64 && (fd = open("/dev/null", O_RDONLY)) != -1)
		fillers[nfill++] = fd;
	got = imsgbuf_read(&c.b) == 1 && imsg_get(&c.b, &imsg) > 0;
	fd = got ? imsg_get_fd(&imsg) : -1;
	nofd = got && imsg_get_type(&imsg) == 70 && fd == -1;
	if (fd != -1)
		close(fd);	/* the limit did not bite (valgrind fakes it) */
	imsg_free(&imsg);
	for (i = 0; i < nfill; i++)
		close(fillers[i]);
	setrlimit(RLIMIT_NOFILE, &old);

	CHECK("fd table full: message still arrives, without fd", nofd);
	CHECK("fd table full: the dropped fd is not leaked",
	    pipe_at_eof(p[0]));
	gotfd = chan_get(&c, &imsg) > 0 && imsg_get_type(&imsg) == 71 &&
	    (fd = imsg_get_fd(&imsg)) >= 0;
	if (gotfd) {
		gotfd = write(fd, "z", 1) == 1;
		close(fd);
	}
	imsg_free(&imsg);
	CHECK("next fd message gets its own fd", gotfd);
	close(p[0]);
	close(q[0]);
	chan_close(&c);
}

static int
bad_header(uint32_t len)
{
	struct chan	 c;
	struct imsg	 imsg;
	struct imsg_hdr	 hdr;
	unsigned char	 junk[64];
	int		 ok;

	chan_open(&c, 0);
	memset(&hdr, 0, sizeof(hdr));
	hdr.type = 1;
	hdr.len = len;
	memset(junk, 'J', sizeof(junk));
	if (write(c.sv[0], &hdr, sizeof(hdr)) != sizeof(hdr) ||
	    write(c.sv[0], junk, sizeof(junk)) != sizeof(junk))
		exit(2);
	ok = imsgbuf_read(&c.b) == -1 && errno == ERANGE &&
	    imsg_get(&c.b, &imsg) == 0 &&
	    imsgbuf_read(&c.b) == -1;
	chan_close(&c);
	return (ok);
}

static void
test_bad_headers(void)
{
	struct chan	 c;
	struct imsg	 imsg;
	unsigned char	 garbage[256];
	int		 r;

	CHECK("header len 0 rejected", bad_header(0));
	CHECK("header len below header size rejected",
	    bad_header(IMSG_HEADER_SIZE - 1));
	CHECK("header len above max size rejected",
	    bad_header(MAX_IMSGSIZE + 1));
	CHECK("header len with fd mark and huge size rejected",
	    bad_header(0xffffffffU));
	CHECK("header len 0 with only the fd mark rejected",
	    bad_header(0x80000000U));

	chan_open(&c, 0);
	memset(garbage, 0xff, sizeof(garbage));
	if (write(c.sv[0], garbage, sizeof(garbage)) != sizeof(garbage))
		exit(2);
	r = imsgbuf_read(&c.b);
	CHECK("garbage bytes rejected with -1", r == -1 &&
	    imsg_get(&c.b, &imsg) == 0);
	chan_close(&c);
}

static void
test_eof(void)
{
	struct chan	 c;
	struct imsg	 imsg;

	chan_open(&c, 0);
	imsg_compose(&c.a, 90, 0, 0, -1, "last", 4);
	imsgbuf_flush(&c.a);
	close(c.sv[0]);
	CHECK("data before EOF is read", imsgbuf_read(&c.b) == 1 &&
	    imsg_get(&c.b, &imsg) > 0 && imsg_get_type(&imsg) == 90);
	imsg_free(&imsg);
	CHECK("EOF returns 0", imsgbuf_read(&c.b) == 0);
	c.sv[0] = open("/dev/null", O_RDONLY);
	chan_close(&c);
}

static void
test_write_to_closed_peer(void)
{
	struct chan	 c;

	chan_open(&c, 0);
	close(c.sv[1]);
	imsg_compose(&c.a, 91, 0, 0, -1, "gone", 4);
	CHECK("write to a closed peer fails without SIGPIPE",
	    imsgbuf_write(&c.a) == -1 && errno == EPIPE);
	c.sv[1] = open("/dev/null", O_RDONLY);
	chan_close(&c);
}

static int
count_open_fds(void)
{
	int	 fd, n = 0;

	for (fd = 0; fd < 1024; fd++)
		if (fcntl(fd, F_GETFD) != -1)
			n++;
	return (n);
}

int
main(void)
{
	int	 nfds;

	nfds = count_open_fds();
	test_payload_sizes();
	test_get_data_exact();
	test_create_add_close();
	test_large_payload();
	test_split_writes();
	test_fd_pass();
	test_fd_order();
	test_fd_split_header();
	test_fd_exhaustion();
	test_bad_headers();
	test_eof();
	test_write_to_closed_peer();
	CHECK("no fd leaked by the whole run", count_open_fds() == nfds);
	UNIT_EXIT();
}
