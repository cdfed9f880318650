/*
 * limit.c: the counters behind limit_conn_per_ip and limit_auth_fail.
 *
 * They live in the auth process, the one process every imap worker
 * talks to, so that a limit holds across workers and isolation modes.
 * Plain data structures: no I/O, time passed in, so that they can be
 * tested alone (regress/unit/test_limit.c).
 */

#ifndef LIMIT_H
#define LIMIT_H

#include <stdint.h>

/* at most this many addresses and users remembered per server */
#define LIMIT_FAIL_KEYS		50000

/* limit_fail_check() and limit_fail_record(): which key is blocked */
#define LIMIT_BY_ADDR		0x01
#define LIMIT_BY_USER		0x02

/* limit_conn_per_ip: open sessions, by the worker channel they run on */
int	limit_conn_open(const void *, uint32_t, const char *, unsigned int,
	    int);
void	limit_conn_close(const void *, uint32_t);
void	limit_conn_drop(const void *);
unsigned int limit_conn_count(const char *);

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
void	limit_fail_clear(void);

#endif /* LIMIT_H */
