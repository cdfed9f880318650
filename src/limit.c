/*
 * Limits the proxy keeps by itself, to protect the backends and the
 * auth service (auth process; see limit.h):
 *
 * - limit_conn_per_ip: the sessions open from each client address.
 *   Each is known by the worker channel it runs on and the worker's
 *   number for it, so that a worker that dies takes its sessions out
 *   of the count (limit_conn_drop).
 * - limit_auth_fail: failed logins per client address and per user,
 *   counted in a window that starts with the first failure.  Memory is
 *   bounded: past LIMIT_FAIL_KEYS the oldest entry goes first.
 */

#include <sys/types.h>
#include <sys/queue.h>
#include <sys/tree.h>

#include <ctype.h>
#include <netdb.h>
#include <arpa/inet.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "limit.h"
#include "imaprelayd.h"

#define LIMIT_KEY_LEN		258	/* kind + 256 bytes of user + NUL */

/*
 * limit_conn_per_ip
 */

struct conn_addr {
	RB_ENTRY(conn_addr)	 entry;
	unsigned int		 count;
	char			 ip[INET6_ADDRSTRLEN];
};

struct conn_ref {
	RB_ENTRY(conn_ref)	 entry;
	const void		*chan;
	uint32_t		 id;
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

/* the number of sessions open from ip (for logs and tests) */
unsigned int
limit_conn_count(const char *ip)
{
	struct conn_addr	*a;

	return ((a = conn_addr_find(ip)) != NULL ? a->count : 0);
}

/*
 * A session from ip wants in: 1 if it may (it is counted), 0 if max
 * (0: no limit) are open already.  A session admitted before (the auth
 * process restarted, recount) is counted without a question.
 */
int
limit_conn_open(const void *chan, uint32_t id, const char *ip,
    unsigned int max, int recount)
{
	struct conn_ref		 key, *ref;
	struct conn_addr	*a;

	key.chan = chan;
	key.id = id;
	if (RB_FIND(conn_ref_tree, &conn_refs, &key) != NULL)
		return (1);
	if ((a = conn_addr_find(ip)) == NULL) {
		if ((a = calloc(1, sizeof(*a))) == NULL)
			fatal("%s", __func__);
		strlcpy(a->ip, ip, sizeof(a->ip));
		RB_INSERT(conn_addr_tree, &conn_addrs, a);
	}
	if (!recount && max > 0 && a->count >= max) {
		if (a->count == 0) {
			RB_REMOVE(conn_addr_tree, &conn_addrs, a);
			free(a);
		}
		return (0);
	}
	if ((ref = calloc(1, sizeof(*ref))) == NULL)
		fatal("%s", __func__);
	ref->chan = chan;
	ref->id = id;
	ref->addr = a;
	RB_INSERT(conn_ref_tree, &conn_refs, ref);
	a->count++;
	return (1);
}

static void
conn_ref_free(struct conn_ref *ref)
{
	struct conn_addr	*a = ref->addr;

	RB_REMOVE(conn_ref_tree, &conn_refs, ref);
	free(ref);
	if (--a->count == 0) {
		RB_REMOVE(conn_addr_tree, &conn_addrs, a);
		free(a);
	}
}

void
limit_conn_close(const void *chan, uint32_t id)
{
	struct conn_ref		 key, *ref;

	key.chan = chan;
	key.id = id;
	if ((ref = RB_FIND(conn_ref_tree, &conn_refs, &key)) != NULL)
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
 * limit_auth_fail
 */

struct fail_entry {
	RB_ENTRY(fail_entry)	 entry;
	TAILQ_ENTRY(fail_entry)	 age;		/* oldest first */
	unsigned int		 count;
	uint64_t		 first_ms;
	char			 key[LIMIT_KEY_LEN];
};

RB_HEAD(fail_tree, fail_entry);
TAILQ_HEAD(fail_ages, fail_entry);

/*
 * One per server, since servers have their own window: with one
 * window, the oldest entry is also the first to expire.
 */
struct fail_table {
	TAILQ_ENTRY(fail_table)	 entry;
	uint32_t		 server_id;
	struct fail_tree	 tree;
	struct fail_ages	 ages;
	size_t			 n;
};

static TAILQ_HEAD(, fail_table) fail_tables =
    TAILQ_HEAD_INITIALIZER(fail_tables);

static int
fail_cmp(struct fail_entry *a, struct fail_entry *b)
{
	return (strcmp(a->key, b->key));
}

RB_PROTOTYPE(fail_tree, fail_entry, entry, fail_cmp)
RB_GENERATE(fail_tree, fail_entry, entry, fail_cmp)

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
	TAILQ_INIT(&t->ages);
	TAILQ_INSERT_TAIL(&fail_tables, t, entry);
	return (t);
}

static void
fail_remove(struct fail_table *t, struct fail_entry *e)
{
	RB_REMOVE(fail_tree, &t->tree, e);
	TAILQ_REMOVE(&t->ages, e, age);
	t->n--;
	free(e);
}

/* windows that closed are forgotten */
static void
fail_expire(struct fail_table *t, const struct limit_fail_conf *lc,
    uint64_t now)
{
	struct fail_entry	*e;

	while ((e = TAILQ_FIRST(&t->ages)) != NULL &&
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
	if ((e = fail_find(t, 'a', ip)) != NULL && e->count >= lc->max)
		by |= LIMIT_BY_ADDR;
	if (user[0] != '\0' && (e = fail_find(t, 'u', user)) != NULL &&
	    e->count >= lc->max)
		by |= LIMIT_BY_USER;
	return (by);
}

/* one more failure for a key; 1 when this one makes it blocked */
static int
fail_count(struct fail_table *t, const struct limit_fail_conf *lc,
    int kind, const char *value, uint64_t now)
{
	struct fail_entry	*e;

	if ((e = fail_find(t, kind, value)) == NULL) {
		if (t->n >= LIMIT_FAIL_KEYS)
			fail_remove(t, TAILQ_FIRST(&t->ages));
		if ((e = calloc(1, sizeof(*e))) == NULL)
			fatal("%s", __func__);
		fail_key(e->key, kind, value);
		e->first_ms = now;
		RB_INSERT(fail_tree, &t->tree, e);
		TAILQ_INSERT_TAIL(&t->ages, e, age);
		t->n++;
	}
	return (++e->count == lc->max);
}

/* a failed login; LIMIT_BY_* bits of the keys it blocked just now */
int
limit_fail_record(const struct limit_fail_conf *lc, const char *ip,
    const char *user, uint64_t now)
{
	struct fail_table	*t;
	int			 by = 0;

	if (lc->max == 0)
		return (0);
	t = fail_table(lc, 1);
	fail_expire(t, lc, now);
	if (fail_count(t, lc, 'a', ip, now))
		by |= LIMIT_BY_ADDR;
	if (user[0] != '\0' && fail_count(t, lc, 'u', user, now))
		by |= LIMIT_BY_USER;
	return (by);
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

void
limit_fail_clear(void)
{
	struct fail_table	*t;
	struct fail_entry	*e;

	while ((t = TAILQ_FIRST(&fail_tables)) != NULL) {
		while ((e = TAILQ_FIRST(&t->ages)) != NULL)
			fail_remove(t, e);
		TAILQ_REMOVE(&fail_tables, t, entry);
		free(t);
	}
}
