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
 * Limits the proxy keeps by itself, to protect the backends and the
 * auth service (auth process; see limit.h).  A client is counted by
 * its address, an IPv6 client by its network (limit_ipv6_prefix, /64
 * by default): a host that holds a /64 must not count as 2^64 clients.
 *
 * - limit_conn_per_ip and limit_prelogin_per_ip: the sessions open
 *   from each address, and those of them not logged in yet.  Each is
 *   known by the worker channel it runs on and the worker's number for
 *   it, so that a worker that dies takes its sessions out of the count
 *   (limit_conn_drop).
 * - limit_conn_rate: new sessions per address, a token bucket per
 *   address that refills at the rate up to the burst.  A bucket that
 *   is full again is forgotten; past LIMIT_RATE_KEYS the one unused
 *   longest goes (it is the fullest).
 * - limit_auth_fail: failed logins per client address and per user,
 *   counted in a window that starts with the first failure.  Memory is
 *   bounded, and a key that blocks is never forgotten before its
 *   window ends: past LIMIT_FAIL_KEYS the oldest key that does not
 *   block goes, and when every key blocks, new ones are not counted
 *   (the caller logs both).
 */

#include <sys/types.h>
#include <sys/queue.h>
#include <sys/socket.h>
#include <sys/tree.h>

#include <netinet/in.h>
#include <arpa/inet.h>

#include <ctype.h>
#include <netdb.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "limit.h"
#include "imaprelayd.h"

#define LIMIT_KEY_LEN		258	/* kind + 256 bytes of user + NUL */
#define TOKEN			1000	/* a bucket counts thousandths */

/*
 * An IPv4 address (also one mapped into IPv6) as it is, an IPv6
 * address as its network of prefix bits, "2001:db8:1:2::/64", written
 * the one way inet_ntop writes it.  What is no address (a worker
 * says "unknown" when it could not tell) stays as it is.  -1: it does
 * not fit len.
 */
int
limit_addr_key(const char *ip, unsigned int prefix, char *key, size_t len)
{
	struct in6_addr	 a6;
	struct in_addr	 a4;
	char		 net[INET6_ADDRSTRLEN];
	unsigned int	 i;
	int		 n;

	if (inet_pton(AF_INET6, ip, &a6) != 1)
		return (strlcpy(key, ip, len) < len ? 0 : -1);
	if (IN6_IS_ADDR_V4MAPPED(&a6)) {
		memcpy(&a4, &a6.s6_addr[12], sizeof(a4));
		return (inet_ntop(AF_INET, &a4, key, len) != NULL ? 0 : -1);
	}
	if (prefix >= 128)
		return (inet_ntop(AF_INET6, &a6, key, len) != NULL ? 0 : -1);
	for (i = prefix; i < 128; i++)
		a6.s6_addr[i / 8] &= ~(0x80 >> (i % 8));
	if (inet_ntop(AF_INET6, &a6, net, sizeof(net)) == NULL)
		return (-1);
	n = snprintf(key, len, "%s/%u", net, prefix);
	return (n < 0 || (size_t)n >= len ? -1 : 0);
}

/*
 * limit_conn_per_ip, limit_prelogin_per_ip
 */

struct conn_addr {
	RB_ENTRY(conn_addr)	 entry;
	unsigned int		 count;
	unsigned int		 prelogin;	/* of count, not logged in */
	char			 ip[LIMIT_ADDR_LEN];
};

struct conn_ref {
	RB_ENTRY(conn_ref)	 entry;
	const void		*chan;
	uint32_t		 id;
	int			 prelogin;
	struct conn_addr	*addr;
};

RB_HEAD(conn_addr_tree, conn_addr);
RB_HEAD(conn_ref_tree, conn_ref);

static int
conn_addr_cmp(struct conn_addr *a, struct conn_addr *b)
{
	return (strcmp(a->ip, b->ip));
}

static int
conn_ref_cmp(struct conn_ref *a, struct conn_ref *b)
{
	if ((uintptr_t)a->chan != (uintptr_t)b->chan)
		return ((uintptr_t)a->chan < (uintptr_t)b->chan ? -1 : 1);
	if (a->id != b->id)
		return (a->id < b->id ? -1 : 1);
	return (0);
}

/* not static: libbsd's tree.h would warn about the functions unused */
RB_PROTOTYPE(conn_addr_tree, conn_addr, entry, conn_addr_cmp)
RB_PROTOTYPE(conn_ref_tree, conn_ref, entry, conn_ref_cmp)
RB_GENERATE(conn_addr_tree, conn_addr, entry, conn_addr_cmp)
RB_GENERATE(conn_ref_tree, conn_ref, entry, conn_ref_cmp)

static struct conn_addr_tree	 conn_addrs = RB_INITIALIZER(&conn_addrs);
static struct conn_ref_tree	 conn_refs = RB_INITIALIZER(&conn_refs);

static struct conn_addr *
conn_addr_find(const char *ip)
{
	struct conn_addr	 key;

	strlcpy(key.ip, ip, sizeof(key.ip));
	return (RB_FIND(conn_addr_tree, &conn_addrs, &key));
}

/* the number of sessions open from an address key (for tests) */
unsigned int
limit_conn_count(const char *ip)
{
	struct conn_addr	*a;

	return ((a = conn_addr_find(ip)) != NULL ? a->count : 0);
}

/* of those, the ones not logged in */
unsigned int
limit_prelogin_count(const char *ip)
{
	struct conn_addr	*a;

	return ((a = conn_addr_find(ip)) != NULL ? a->prelogin : 0);
}

static struct conn_ref *
conn_ref_find(const void *chan, uint32_t id)
{
	struct conn_ref		 key;

	key.chan = chan;
	key.id = id;
	return (RB_FIND(conn_ref_tree, &conn_refs, &key));
}

/*
 * A session wants in: CONN_ADMIT (it is counted) or the CONN_LIMIT_*
 * it would pass.  A session admitted before (the auth process
 * restarted, recount) is counted without a question, and one counted
 * already is not counted twice.
 */
int
limit_conn_open(const struct limit_conn_req *req)
{
	struct conn_ref		*ref;
	struct conn_addr	*a;
	int			 why = CONN_ADMIT;

	if (conn_ref_find(req->chan, req->id) != NULL)
		return (CONN_ADMIT);
	if ((a = conn_addr_find(req->key)) == NULL) {
		if ((a = calloc(1, sizeof(*a))) == NULL)
			fatal("%s", __func__);
		strlcpy(a->ip, req->key, sizeof(a->ip));
		RB_INSERT(conn_addr_tree, &conn_addrs, a);
	}
	if (!req->recount && req->max > 0 && a->count >= req->max)
		why = CONN_LIMIT_PER_IP;
	else if (!req->recount && req->prelogin && req->max_prelogin > 0 &&
	    a->prelogin >= req->max_prelogin)
		why = CONN_LIMIT_PRELOGIN;
	if (why != CONN_ADMIT) {
		if (a->count == 0) {
			RB_REMOVE(conn_addr_tree, &conn_addrs, a);
			free(a);
		}
		return (why);
	}
	if ((ref = calloc(1, sizeof(*ref))) == NULL)
		fatal("%s", __func__);
	ref->chan = req->chan;
	ref->id = req->id;
	ref->addr = a;
	ref->prelogin = req->prelogin != 0;
	RB_INSERT(conn_ref_tree, &conn_refs, ref);
	a->count++;
	if (ref->prelogin)
		a->prelogin++;
	return (CONN_ADMIT);
}

/* the session logged in: it no longer counts as unauthenticated */
void
limit_conn_login(const void *chan, uint32_t id)
{
	struct conn_ref		*ref;

	if ((ref = conn_ref_find(chan, id)) == NULL || !ref->prelogin)
		return;
	ref->prelogin = 0;
	ref->addr->prelogin--;
}

static void
conn_ref_free(struct conn_ref *ref)
{
	struct conn_addr	*a = ref->addr;

	RB_REMOVE(conn_ref_tree, &conn_refs, ref);
	if (ref->prelogin)
		a->prelogin--;
	free(ref);
	if (--a->count == 0) {
		RB_REMOVE(conn_addr_tree, &conn_addrs, a);
		free(a);
	}
}

void
limit_conn_close(const void *chan, uint32_t id)
{
	struct conn_ref		*ref;

	if ((ref = conn_ref_find(chan, id)) != NULL)
		conn_ref_free(ref);
}

/* a worker went away, and with it every session it had */
void
limit_conn_drop(const void *chan)
{
	struct conn_ref		 key, *ref, *next;

	key.chan = chan;
	key.id = 0;
	for (ref = RB_NFIND(conn_ref_tree, &conn_refs, &key);
	    ref != NULL && ref->chan == chan; ref = next) {
		next = RB_NEXT(conn_ref_tree, &conn_refs, ref);
		conn_ref_free(ref);
	}
}

/*
 * limit_conn_rate
 */

struct rate_entry {
	RB_ENTRY(rate_entry)	 entry;
	TAILQ_ENTRY(rate_entry)	 lru;		/* unused longest first */
	uint64_t		 last_ms;
	uint64_t		 tokens;	/* thousandths */
	char			 key[LIMIT_ADDR_LEN];
};

RB_HEAD(rate_tree, rate_entry);
TAILQ_HEAD(rate_lru, rate_entry);

/* one per server: each has its own rate and burst */
struct rate_table {
	TAILQ_ENTRY(rate_table)	 entry;
	uint32_t		 server_id;
	struct rate_tree	 tree;
	struct rate_lru		 lru;
	size_t			 n;
};

static TAILQ_HEAD(, rate_table) rate_tables =
    TAILQ_HEAD_INITIALIZER(rate_tables);

static int
rate_cmp(struct rate_entry *a, struct rate_entry *b)
{
	return (strcmp(a->key, b->key));
}

RB_PROTOTYPE(rate_tree, rate_entry, entry, rate_cmp)
RB_GENERATE(rate_tree, rate_entry, entry, rate_cmp)

static struct rate_table *
rate_table(const struct limit_rate_conf *rc)
{
	struct rate_table	*t;

	TAILQ_FOREACH(t, &rate_tables, entry)
		if (t->server_id == rc->server_id)
			return (t);
	if ((t = calloc(1, sizeof(*t))) == NULL)
		fatal("%s", __func__);
	t->server_id = rc->server_id;
	RB_INIT(&t->tree);
	TAILQ_INIT(&t->lru);
	TAILQ_INSERT_TAIL(&rate_tables, t, entry);
	return (t);
}

static uint64_t
rate_cap(const struct limit_rate_conf *rc)
{
	return ((uint64_t)(rc->burst > 0 ? rc->burst : 1) * TOKEN);
}

/* the bucket's tokens at now, never above the burst */
static uint64_t
rate_level(const struct rate_entry *e, const struct limit_rate_conf *rc,
    uint64_t now)
{
	uint64_t	 cap = rate_cap(rc), elapsed;

	if (now <= e->last_ms || e->tokens >= cap)
		return (e->tokens < cap ? e->tokens : cap);
	elapsed = now - e->last_ms;
	/* compared first: elapsed * rate may not fit 64 bits */
	if (elapsed >= (cap - e->tokens) / rc->rate + 1)
		return (cap);
	return (e->tokens + elapsed * rc->rate < cap ?
	    e->tokens + elapsed * rc->rate : cap);
}

static void
rate_remove(struct rate_table *t, struct rate_entry *e)
{
	RB_REMOVE(rate_tree, &t->tree, e);
	TAILQ_REMOVE(&t->lru, e, lru);
	t->n--;
	free(e);
}

/* full buckets are as good as none; the least used fill first */
static void
rate_expire(struct rate_table *t, const struct limit_rate_conf *rc,
    uint64_t now)
{
	struct rate_entry	*e;

	while ((e = TAILQ_FIRST(&t->lru)) != NULL &&
	    rate_level(e, rc, now) == rate_cap(rc))
		rate_remove(t, e);
}

/* a new session from key: 1 if the rate allows it (a token is taken) */
int
limit_rate_take(const struct limit_rate_conf *rc, const char *key,
    uint64_t now)
{
	struct rate_table	*t;
	struct rate_entry	 find, *e;

	if (rc->rate == 0)
		return (1);
	t = rate_table(rc);
	rate_expire(t, rc, now);
	strlcpy(find.key, key, sizeof(find.key));
	if ((e = RB_FIND(rate_tree, &t->tree, &find)) == NULL) {
		if (t->n >= LIMIT_RATE_KEYS)
			rate_remove(t, TAILQ_FIRST(&t->lru));
		if ((e = calloc(1, sizeof(*e))) == NULL)
			fatal("%s", __func__);
		strlcpy(e->key, key, sizeof(e->key));
		e->tokens = rate_cap(rc);
		e->last_ms = now;
		RB_INSERT(rate_tree, &t->tree, e);
		TAILQ_INSERT_TAIL(&t->lru, e, lru);
		t->n++;
	}
	e->tokens = rate_level(e, rc, now);
	if (now > e->last_ms)
		e->last_ms = now;
	TAILQ_REMOVE(&t->lru, e, lru);
	TAILQ_INSERT_TAIL(&t->lru, e, lru);
	if (e->tokens < TOKEN)
		return (0);
	e->tokens -= TOKEN;
	return (1);
}

/* buckets that are not full (for tests) */
size_t
limit_rate_keys(const struct limit_rate_conf *rc, uint64_t now)
{
	struct rate_table	*t;

	TAILQ_FOREACH(t, &rate_tables, entry)
		if (t->server_id == rc->server_id) {
			rate_expire(t, rc, now);
			return (t->n);
		}
	return (0);
}

void
limit_rate_clear(void)
{
	struct rate_table	*t;
	struct rate_entry	*e;

	while ((t = TAILQ_FIRST(&rate_tables)) != NULL) {
		while ((e = TAILQ_FIRST(&t->lru)) != NULL)
			rate_remove(t, e);
		TAILQ_REMOVE(&rate_tables, t, entry);
		free(t);
	}
}

/*
 * limit_auth_fail
 */

struct fail_entry {
	RB_ENTRY(fail_entry)	 entry;
	RB_ENTRY(fail_entry)	 bentry;	/* in blocked, if blocking */
	TAILQ_ENTRY(fail_entry)	 age;		/* in ages, if not */
	int			 blocking;
	unsigned int		 count;
	uint64_t		 first_ms;
	char			 key[LIMIT_KEY_LEN];
};

RB_HEAD(fail_tree, fail_entry);
RB_HEAD(fail_btree, fail_entry);
TAILQ_HEAD(fail_ages, fail_entry);

/*
 * One per server, since servers have their own window: with one
 * window, the oldest entry is also the first to expire.  Keys that
 * block are apart, ordered by the end of their window, so that the
 * ones that do not are found first when room is needed.
 */
struct fail_table {
	TAILQ_ENTRY(fail_table)	 entry;
	uint32_t		 server_id;
	struct fail_tree	 tree;		/* every key */
	struct fail_ages	 ages;		/* not blocking, oldest first */
	struct fail_btree	 blocked;	/* blocking, by first_ms */
	size_t			 n;
	size_t			 nblocked;
};

static TAILQ_HEAD(, fail_table) fail_tables =
    TAILQ_HEAD_INITIALIZER(fail_tables);

static int
fail_cmp(struct fail_entry *a, struct fail_entry *b)
{
	return (strcmp(a->key, b->key));
}

/* keys are unique in a table: this is a total order */
static int
fail_bcmp(struct fail_entry *a, struct fail_entry *b)
{
	if (a->first_ms != b->first_ms)
		return (a->first_ms < b->first_ms ? -1 : 1);
	return (strcmp(a->key, b->key));
}

RB_PROTOTYPE(fail_tree, fail_entry, entry, fail_cmp)
RB_GENERATE(fail_tree, fail_entry, entry, fail_cmp)
RB_PROTOTYPE(fail_btree, fail_entry, bentry, fail_bcmp)
RB_GENERATE(fail_btree, fail_entry, bentry, fail_bcmp)

static struct fail_table *
fail_table(const struct limit_fail_conf *lc, int create)
{
	struct fail_table	*t;

	TAILQ_FOREACH(t, &fail_tables, entry)
		if (t->server_id == lc->server_id)
			return (t);
	if (!create)
		return (NULL);
	if ((t = calloc(1, sizeof(*t))) == NULL)
		fatal("%s", __func__);
	t->server_id = lc->server_id;
	RB_INIT(&t->tree);
	RB_INIT(&t->blocked);
	TAILQ_INIT(&t->ages);
	TAILQ_INSERT_TAIL(&fail_tables, t, entry);
	return (t);
}

static void
fail_remove(struct fail_table *t, struct fail_entry *e)
{
	RB_REMOVE(fail_tree, &t->tree, e);
	if (e->blocking) {
		RB_REMOVE(fail_btree, &t->blocked, e);
		t->nblocked--;
	} else
		TAILQ_REMOVE(&t->ages, e, age);
	t->n--;
	free(e);
}

/* windows that closed are forgotten, blocking or not */
static void
fail_expire(struct fail_table *t, const struct limit_fail_conf *lc,
    uint64_t now)
{
	struct fail_entry	*e;

	while ((e = TAILQ_FIRST(&t->ages)) != NULL &&
	    e->first_ms + lc->window_ms <= now)
		fail_remove(t, e);
	while ((e = RB_MIN(fail_btree, &t->blocked)) != NULL &&
	    e->first_ms + lc->window_ms <= now)
		fail_remove(t, e);
}

/*
 * The key of an address or a user.  User names are compared without
 * case, as IMAP servers mostly do: "Bob" and "bob" are one target.
 */
static void
fail_key(char *key, int kind, const char *value)
{
	size_t	 i;

	key[0] = kind;
	for (i = 0; value[i] != '\0' && i + 2 < LIMIT_KEY_LEN; i++)
		key[i + 1] = tolower((unsigned char)value[i]);
	key[i + 1] = '\0';
}

static struct fail_entry *
fail_find(struct fail_table *t, int kind, const char *value)
{
	struct fail_entry	 key;

	fail_key(key.key, kind, value);
	return (RB_FIND(fail_tree, &t->tree, &key));
}

/* LIMIT_BY_* bits of the keys that are blocked now */
int
limit_fail_check(const struct limit_fail_conf *lc, const char *ip,
    const char *user, uint64_t now)
{
	struct fail_table	*t;
	struct fail_entry	*e;
	int			 by = 0;

	if (lc->max == 0 || (t = fail_table(lc, 0)) == NULL)
		return (0);
	fail_expire(t, lc, now);
	if ((e = fail_find(t, 'a', ip)) != NULL && e->blocking)
		by |= LIMIT_BY_ADDR;
	if (user[0] != '\0' && (e = fail_find(t, 'u', user)) != NULL &&
	    e->blocking)
		by |= LIMIT_BY_USER;
	return (by);
}

/*
 * Room for a new key: the oldest key that does not block goes
 * (LIMIT_EVICTED); when every key blocks, none does and the new key is
 * not counted (LIMIT_FULL).  0: there was room.
 */
static int
fail_room(struct fail_table *t)
{
	if (t->n < LIMIT_FAIL_KEYS)
		return (0);
	if (TAILQ_EMPTY(&t->ages))
		return (LIMIT_FULL);
	fail_remove(t, TAILQ_FIRST(&t->ages));
	return (LIMIT_EVICTED);
}

/*
 * One more failure for a key: LIMIT_BY_ADDR or LIMIT_BY_USER (as
 * kind) when this one makes it block, and LIMIT_EVICTED or LIMIT_FULL
 * as fail_room() said.
 */
static int
fail_count(struct fail_table *t, const struct limit_fail_conf *lc,
    int kind, const char *value, uint64_t now)
{
	struct fail_entry	*e;
	int			 r = 0;

	if ((e = fail_find(t, kind, value)) == NULL) {
		if ((r = fail_room(t)) == LIMIT_FULL)
			return (r);
		if ((e = calloc(1, sizeof(*e))) == NULL)
			fatal("%s", __func__);
		fail_key(e->key, kind, value);
		e->first_ms = now;
		RB_INSERT(fail_tree, &t->tree, e);
		TAILQ_INSERT_TAIL(&t->ages, e, age);
		t->n++;
	}
	if (e->count < lc->max)
		e->count++;
	if (e->count == lc->max && !e->blocking) {
		TAILQ_REMOVE(&t->ages, e, age);
		e->blocking = 1;
		RB_INSERT(fail_btree, &t->blocked, e);
		t->nblocked++;
		r |= kind == 'a' ? LIMIT_BY_ADDR : LIMIT_BY_USER;
	}
	return (r);
}

/*
 * A failed login: LIMIT_BY_* bits of the keys it blocked just now,
 * with LIMIT_EVICTED or LIMIT_FULL when the table had no room.
 */
int
limit_fail_record(const struct limit_fail_conf *lc, const char *ip,
    const char *user, uint64_t now)
{
	struct fail_table	*t;
	int			 r;

	if (lc->max == 0)
		return (0);
	t = fail_table(lc, 1);
	fail_expire(t, lc, now);
	r = fail_count(t, lc, 'a', ip, now);
	if (user[0] != '\0')
		r |= fail_count(t, lc, 'u', user, now);
	return (r);
}

/*
 * The user proved the password: its failures are forgotten.  The
 * address's are not, or one good account would let an address guess
 * at every other.
 */
void
limit_fail_forget_user(const struct limit_fail_conf *lc, const char *user)
{
	struct fail_table	*t;
	struct fail_entry	*e;

	if (lc->max == 0 || (t = fail_table(lc, 0)) == NULL)
		return;
	if ((e = fail_find(t, 'u', user)) != NULL)
		fail_remove(t, e);
}

/* keys known, and of them blocking (for logs and tests) */
size_t
limit_fail_keys(const struct limit_fail_conf *lc, size_t *nblocked)
{
	struct fail_table	*t;

	*nblocked = 0;
	if ((t = fail_table(lc, 0)) == NULL)
		return (0);
	*nblocked = t->nblocked;
	return (t->n);
}

void
limit_fail_clear(void)
{
	struct fail_table	*t;
	struct fail_entry	*e;

	while ((t = TAILQ_FIRST(&fail_tables)) != NULL) {
		while ((e = RB_ROOT(&t->tree)) != NULL)
			fail_remove(t, e);
		TAILQ_REMOVE(&fail_tables, t, entry);
		free(t);
	}
}
