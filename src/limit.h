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
 * limit.c: the counters behind limit_conn_per_ip, limit_prelogin_per_ip,
 * limit_conn_rate and limit_auth_fail.
 *
 * They live in the auth process, the one process every imap worker
 * talks to, so that a limit holds across workers and isolation modes.
 * Plain data structures: no I/O, time passed in, so that they can be
 * tested alone (regress/unit/test_limit.c) and fuzzed
 * (regress/fuzz/fuzz_limit.c).
 */

#ifndef LIMIT_H
#define LIMIT_H

#include <stddef.h>
#include <stdint.h>

/*
 * At most this many addresses and users remembered per server, and
 * addresses with a rate bucket (the fuzz target builds with small
 * tables, to reach what happens when they are full).
 */
#ifndef LIMIT_FAIL_KEYS
#define LIMIT_FAIL_KEYS		50000
#endif
#ifndef LIMIT_RATE_KEYS
#define LIMIT_RATE_KEYS		50000
#endif
/* room for limit_addr_key(): an IPv6 network with its "/prefix" */
#define LIMIT_ADDR_LEN		48

/* limit_fail_check() and limit_fail_record() */
#define LIMIT_BY_ADDR		0x01	/* the address is blocked */
#define LIMIT_BY_USER		0x02	/* the user is blocked */
#define LIMIT_EVICTED		0x04	/* full: an unblocked key forgotten */
#define LIMIT_FULL		0x08	/* full of blocked keys: not counted */

/* what a client is counted as: its address, an IPv6 one per network */
int	limit_addr_key(const char *, unsigned int, char *, size_t);

/*
 * limit_conn_per_ip and limit_prelogin_per_ip: open sessions, and
 * those not logged in yet, by the worker channel they run on.
 */
struct limit_conn_req {
	const void	*chan;
	uint32_t	 id;		/* the worker's number for it */
	const char	*key;		/* limit_addr_key() */
	unsigned int	 max;		/* sessions, 0: no limit */
	unsigned int	 max_prelogin;	/* not logged in, 0: no limit */
	int		 prelogin;	/* not logged in yet */
	int		 recount;	/* counted before: no question */
};
int	limit_conn_open(const struct limit_conn_req *);
void	limit_conn_login(const void *, uint32_t);
void	limit_conn_close(const void *, uint32_t);
void	limit_conn_drop(const void *);
unsigned int limit_conn_count(const char *);
unsigned int limit_prelogin_count(const char *);

/* limit_conn_rate: new sessions per address, a token bucket per server */
struct limit_rate_conf {
	uint32_t	 server_id;
	unsigned int	 rate;		/* per second, 0: no limit */
	unsigned int	 burst;		/* the bucket's size */
};
int	limit_rate_take(const struct limit_rate_conf *, const char *,
	    uint64_t);
size_t	limit_rate_keys(const struct limit_rate_conf *, uint64_t);
void	limit_rate_clear(void);

/* limit_auth_fail: failed logins in a window, per server */
struct limit_fail_conf {
	uint32_t	 server_id;
	unsigned int	 max;		/* failures that block */
	uint64_t	 window_ms;	/* counted from the first failure */
};
int	limit_fail_check(const struct limit_fail_conf *, const char *,
	    const char *, uint64_t);
int	limit_fail_record(const struct limit_fail_conf *, const char *,
	    const char *, uint64_t);
void	limit_fail_forget_user(const struct limit_fail_conf *, const char *);
size_t	limit_fail_keys(const struct limit_fail_conf *, size_t *);
void	limit_fail_clear(void);

#endif /* LIMIT_H */
