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
 * Unit tests of the counters behind limit_conn_per_ip,
 * limit_prelogin_per_ip, limit_conn_rate and limit_auth_fail
 * (src/limit.c), with time passed in.
 */

#include <stdio.h>
#include <string.h>

#include "imaprelayd.h"
#include "limit.h"
#include "unit.h"

static int	 chan_a, chan_b;	/* two workers' channels */

/* limit_conn_open() with the fields that vary */
static int
conn(const void *chan, uint32_t id, const char *key, unsigned int max,
    unsigned int max_pre, int prelogin, int recount)
{
	struct limit_conn_req	 req;

	memset(&req, 0, sizeof(req));
	req.chan = chan;
	req.id = id;
	req.key = key;
	req.max = max;
	req.max_prelogin = max_pre;
	req.prelogin = prelogin;
	req.recount = recount;
	return (limit_conn_open(&req));
}

static int
key_is(const char *ip, unsigned int prefix, const char *want)
{
	char	 key[LIMIT_ADDR_LEN];

	if (limit_addr_key(ip, prefix, key, sizeof(key)) == -1)
		return (0);
	if (strcmp(key, want) != 0) {
		printf("# %s /%u: %s, not %s\n", ip, prefix, key, want);
		return (0);
	}
	return (1);
}

static void
test_key(void)
{
	char	 small[8];

	CHECK("key: IPv4 as it is", key_is("192.0.2.1", 64, "192.0.2.1"));
	CHECK("key: IPv6 per /64", key_is("2001:db8:1:2:aaaa:bbbb:cccc:dddd",
	    64, "2001:db8:1:2::/64"));
	CHECK("key: another host of the /64, same key",
	    key_is("2001:DB8:1:2::99", 64, "2001:db8:1:2::/64"));
	CHECK("key: the next /64 apart",
	    key_is("2001:db8:1:3::1", 64, "2001:db8:1:3::/64"));
	CHECK("key: /56", key_is("2001:db8:1:2ff::1", 56,
	    "2001:db8:1:200::/56"));
	CHECK("key: /61 cuts inside a group",
	    key_is("2001:db8:1:ffff::1", 61, "2001:db8:1:fff8::/61"));
	CHECK("key: /128 is the address", key_is("2001:db8::1:0:0:1", 128,
	    "2001:db8::1:0:0:1"));
	CHECK("key: mapped IPv4 is IPv4", key_is("::ffff:192.0.2.7", 64,
	    "192.0.2.7"));
	CHECK("key: no address stays", key_is("unknown", 64, "unknown"));
	CHECK("key: too small a buffer", limit_addr_key("2001:db8::1", 64,
	    small, sizeof(small)) == -1);
}

static void
test_conn(void)
{
	CHECK("conn: first admitted",
	    conn(&chan_a, 1, "192.0.2.1", 2, 0, 0, 0) == CONN_ADMIT);
	CHECK("conn: second admitted",
	    conn(&chan_b, 1, "192.0.2.1", 2, 0, 0, 0) == CONN_ADMIT);
	CHECK("conn: third refused",
	    conn(&chan_a, 2, "192.0.2.1", 2, 0, 0, 0) == CONN_LIMIT_PER_IP);
	CHECK("conn: refused one not counted",
	    limit_conn_count("192.0.2.1") == 2);
	CHECK("conn: other address admitted",
	    conn(&chan_a, 3, "2001:db8::/64", 2, 0, 0, 0) == CONN_ADMIT);
	CHECK("conn: the same session twice counts once",
	    conn(&chan_a, 3, "2001:db8::/64", 2, 0, 0, 0) == CONN_ADMIT &&
	    limit_conn_count("2001:db8::/64") == 1);
	CHECK("conn: no limit",
	    conn(&chan_a, 4, "192.0.2.1", 0, 0, 0, 0) == CONN_ADMIT &&
	    limit_conn_count("192.0.2.1") == 3);
	limit_conn_close(&chan_a, 4);
	limit_conn_close(&chan_b, 1);
	CHECK("conn: a close makes room",
	    limit_conn_count("192.0.2.1") == 1 &&
	    conn(&chan_b, 5, "192.0.2.1", 2, 0, 0, 0) == CONN_ADMIT);
	CHECK("conn: recount ignores the limit",
	    conn(&chan_b, 6, "192.0.2.1", 2, 0, 0, 1) == CONN_ADMIT &&
	    limit_conn_count("192.0.2.1") == 3);
	limit_conn_close(&chan_b, 999);		/* unknown: no effect */
	limit_conn_drop(&chan_b);
	CHECK("conn: a worker gone takes its sessions",
	    limit_conn_count("192.0.2.1") == 1 &&
	    limit_conn_count("2001:db8::/64") == 1);
	limit_conn_drop(&chan_a);
	CHECK("conn: all gone", limit_conn_count("192.0.2.1") == 0 &&
	    limit_conn_count("2001:db8::/64") == 0);
}

static void
test_prelogin(void)
{
	const char	*ip = "198.51.100.7";

	CHECK("prelogin: 1", conn(&chan_a, 1, ip, 0, 2, 1, 0) == CONN_ADMIT);
	CHECK("prelogin: 2", conn(&chan_b, 1, ip, 0, 2, 1, 0) == CONN_ADMIT);
	CHECK("prelogin: 3rd unauthenticated refused",
	    conn(&chan_a, 2, ip, 0, 2, 1, 0) == CONN_LIMIT_PRELOGIN);
	CHECK("prelogin: counts", limit_conn_count(ip) == 2 &&
	    limit_prelogin_count(ip) == 2);
	limit_conn_login(&chan_a, 1);
	limit_conn_login(&chan_a, 1);		/* twice: once */
	CHECK("prelogin: a login makes room", limit_prelogin_count(ip) == 1 &&
	    limit_conn_count(ip) == 2 &&
	    conn(&chan_a, 3, ip, 0, 2, 1, 0) == CONN_ADMIT);
	CHECK("prelogin: full again",
	    conn(&chan_a, 4, ip, 0, 2, 1, 0) == CONN_LIMIT_PRELOGIN);
	CHECK("prelogin: per_ip says first",
	    conn(&chan_a, 4, ip, 3, 2, 1, 0) == CONN_LIMIT_PER_IP);
	CHECK("prelogin: a recount of one logged in is not prelogin",
	    conn(&chan_b, 7, ip, 0, 2, 0, 1) == CONN_ADMIT &&
	    limit_prelogin_count(ip) == 2 && limit_conn_count(ip) == 4);
	limit_conn_close(&chan_a, 3);
	CHECK("prelogin: a close of one not logged in makes room",
	    limit_prelogin_count(ip) == 1);
	limit_conn_drop(&chan_b);
	CHECK("prelogin: a worker gone takes its unauthenticated ones",
	    limit_prelogin_count(ip) == 0 && limit_conn_count(ip) == 1);
	limit_conn_close(&chan_a, 1);
	CHECK("prelogin: all gone", limit_conn_count(ip) == 0);
}

static void
test_rate(void)
{
	struct limit_rate_conf	 rc = { 1, 10, 5 };	/* 10/s, burst 5 */
	struct limit_rate_conf	 off = { 2, 0, 5 };
	struct limit_rate_conf	 huge = { 3, 4000000000U, 4000000000U };
	const char		*ip = "203.0.113.1";
	int			 i, n;

	for (i = n = 0; i < 20; i++)
		n += limit_rate_take(&rc, ip, 1000);
	CHECK("rate: the burst at once", n == 5);
	CHECK("rate: other address has its own",
	    limit_rate_take(&rc, "203.0.113.2", 1000) == 1);
	CHECK("rate: 100 ms later, one more",
	    limit_rate_take(&rc, ip, 1100) == 1 &&
	    limit_rate_take(&rc, ip, 1100) == 0);
	CHECK("rate: 50 ms, not yet", limit_rate_take(&rc, ip, 1150) == 0);
	CHECK("rate: refused tries took nothing",
	    limit_rate_take(&rc, ip, 1200) == 1);
	for (i = n = 0; i < 100; i++)
		n += limit_rate_take(&rc, ip, 2000 + i * 50);
	CHECK("rate: the burst, then 10/s", n == 54);
	CHECK("rate: a full bucket is forgotten",
	    limit_rate_keys(&rc, 6950) == 1);
	CHECK("rate: full buckets are forgotten",
	    limit_rate_keys(&rc, 60000) == 0);
	CHECK("rate: off", limit_rate_take(&off, ip, 0) == 1 &&
	    limit_rate_take(&off, ip, 0) == 1);
	CHECK("rate: time going back does not refill",
	    limit_rate_take(&rc, ip, 70000) == 1 &&
	    limit_rate_keys(&rc, 70000) == 1);
	for (i = 0; i < 4; i++)
		limit_rate_take(&rc, ip, 70000);
	CHECK("rate: empty", limit_rate_take(&rc, ip, 70000) == 0);
	CHECK("rate: earlier time, still empty",
	    limit_rate_take(&rc, ip, 10) == 0);
	CHECK("rate: no overflow in a large refill",
	    limit_rate_take(&huge, ip, 0) == 1 &&
	    limit_rate_take(&huge, ip, UINT64_MAX) == 1);
	limit_rate_clear();
}

/* memory stays bounded: past LIMIT_RATE_KEYS the least used goes */
static void
test_rate_bound(void)
{
	struct limit_rate_conf	 rc = { 1, 1, 1 };
	char			 ip[32];
	int			 i;

	CHECK("rate bound: first", limit_rate_take(&rc, "10.0.0.0", 0) == 1 &&
	    limit_rate_take(&rc, "10.0.0.0", 0) == 0);
	for (i = 1; i <= LIMIT_RATE_KEYS; i++) {
		snprintf(ip, sizeof(ip), "10.%d.%d.%d", i >> 16,
		    (i >> 8) & 255, i & 255);
		limit_rate_take(&rc, ip, 1);
	}
	CHECK("rate bound: at most LIMIT_RATE_KEYS",
	    limit_rate_keys(&rc, 1) == LIMIT_RATE_KEYS);
	CHECK("rate bound: the least used went",
	    limit_rate_take(&rc, "10.0.0.0", 1) == 1);
	limit_rate_clear();
}

static void
test_fail(void)
{
	struct limit_fail_conf	 lc = { 1, 3, 10000 };
	struct limit_fail_conf	 other = { 2, 3, 10000 };

	CHECK("fail: nothing known", limit_fail_check(&lc, "192.0.2.1",
	    "alice", 0) == 0);
	CHECK("fail: 1", limit_fail_record(&lc, "192.0.2.1", "alice", 0) == 0);
	CHECK("fail: 2", limit_fail_record(&lc, "192.0.2.2", "alice",
	    100) == 0);
	CHECK("fail: 2 is below 3", limit_fail_check(&lc, "192.0.2.1",
	    "alice", 200) == 0);
	CHECK("fail: the 3rd blocks the user, not the addresses",
	    limit_fail_record(&lc, "192.0.2.3", "ALICE", 300) ==
	    LIMIT_BY_USER);
	CHECK("fail: user blocked, any case", limit_fail_check(&lc,
	    "192.0.2.9", "Alice", 400) == LIMIT_BY_USER);
	CHECK("fail: other user free", limit_fail_check(&lc, "192.0.2.9",
	    "bob", 400) == 0);
	CHECK("fail: other server has its own count",
	    limit_fail_check(&other, "192.0.2.1", "alice", 400) == 0);
	CHECK("fail: still blocked just before the window ends",
	    limit_fail_check(&lc, "192.0.2.9", "alice", 9999) ==
	    LIMIT_BY_USER);
	CHECK("fail: free when the window from the first failure ends",
	    limit_fail_check(&lc, "192.0.2.9", "alice", 10100) == 0);

	limit_fail_record(&lc, "198.51.100.1", "u1", 20000);
	limit_fail_record(&lc, "198.51.100.1", "u2", 20001);
	CHECK("fail: the address blocks at 3 over users",
	    limit_fail_record(&lc, "198.51.100.1", "u3", 20002) ==
	    LIMIT_BY_ADDR);
	CHECK("fail: blocked address, any user",
	    limit_fail_check(&lc, "198.51.100.1", "bob", 20003) ==
	    LIMIT_BY_ADDR);
	CHECK("fail: a 4th failure blocks nothing new",
	    limit_fail_record(&lc, "198.51.100.1", "u4", 20004) == 0);

	limit_fail_record(&lc, "203.0.113.1", "carol", 30000);
	limit_fail_record(&lc, "203.0.113.2", "carol", 30000);
	limit_fail_forget_user(&lc, "Carol");
	limit_fail_record(&lc, "203.0.113.3", "carol", 30000);
	limit_fail_record(&lc, "203.0.113.4", "carol", 30000);
	CHECK("fail: a good login forgets the user's failures",
	    limit_fail_check(&lc, "203.0.113.5", "carol", 30001) == 0);
	CHECK("fail: empty user counts the address only",
	    limit_fail_record(&lc, "203.0.113.9", "", 30002) == 0 &&
	    limit_fail_check(&lc, "203.0.113.9", "", 30002) == 0);
	limit_fail_record(&lc, "203.0.113.20", "dave", 30003);
	limit_fail_record(&lc, "203.0.113.20", "dave", 30004);
	limit_fail_record(&lc, "203.0.113.20", "dave", 30005);
	limit_fail_forget_user(&lc, "dave");
	CHECK("fail: a good login forgets a blocked user, not the address",
	    limit_fail_check(&lc, "203.0.113.20", "dave", 30006) ==
	    LIMIT_BY_ADDR);
	limit_fail_clear();
}

static void
fail_fill(const struct limit_fail_conf *lc, int first, int n, uint64_t now)
{
	char	 ip[32];
	int	 i;

	for (i = first; i < first + n; i++) {
		snprintf(ip, sizeof(ip), "10.%d.%d.%d", i >> 16,
		    (i >> 8) & 255, i & 255);
		limit_fail_record(lc, ip, "", now);
	}
}

/*
 * Memory stays bounded, and a flood of new keys cannot flush one that
 * blocks: past LIMIT_FAIL_KEYS the oldest key that does not block
 * goes, and when all block, new keys are not counted.
 */
static void
test_fail_bound(void)
{
	struct limit_fail_conf	 lc = { 1, 2, 3600000 };
	size_t			 n, nb;

	limit_fail_record(&lc, "192.0.2.1", "", 0);
	CHECK("bound: first blocked", limit_fail_record(&lc, "192.0.2.1",
	    "", 0) == LIMIT_BY_ADDR);
	limit_fail_record(&lc, "192.0.2.2", "", 0);
	fail_fill(&lc, 0, LIMIT_FAIL_KEYS - 2, 1);
	n = limit_fail_keys(&lc, &nb);
	CHECK("bound: full", n == LIMIT_FAIL_KEYS && nb == 1);
	CHECK("bound: one more forgets the oldest unblocked",
	    limit_fail_record(&lc, "192.0.2.3", "", 2) == LIMIT_EVICTED);
	CHECK("bound: the oldest unblocked was forgotten",
	    limit_fail_record(&lc, "192.0.2.2", "", 3) == LIMIT_EVICTED);
	CHECK("bound: ... so it starts again at one",
	    limit_fail_check(&lc, "192.0.2.2", "", 3) == 0);
	fail_fill(&lc, 100000, 2 * LIMIT_FAIL_KEYS, 4);
	CHECK("bound: the blocked key outlived a flood of new keys",
	    limit_fail_check(&lc, "192.0.2.1", "", 5) == LIMIT_BY_ADDR);
	n = limit_fail_keys(&lc, &nb);
	CHECK("bound: still full, one blocked", n == LIMIT_FAIL_KEYS &&
	    nb == 1);
	CHECK("bound: free when its window ends",
	    limit_fail_check(&lc, "192.0.2.1", "", 3600000) == 0);
	limit_fail_clear();
}

static void
test_fail_full(void)
{
	struct limit_fail_conf	 lc = { 1, 1, 3600000 };
	size_t			 n, nb;

	/* max 1: every key blocks at its first failure */
	fail_fill(&lc, 0, LIMIT_FAIL_KEYS, 0);
	n = limit_fail_keys(&lc, &nb);
	CHECK("full: all blocked", n == LIMIT_FAIL_KEYS &&
	    nb == LIMIT_FAIL_KEYS);
	CHECK("full: a new key is not counted",
	    limit_fail_record(&lc, "192.0.2.1", "", 1) == LIMIT_FULL &&
	    limit_fail_check(&lc, "192.0.2.1", "", 1) == 0);
	CHECK("full: the first is still blocked",
	    limit_fail_check(&lc, "10.0.0.0", "", 2) == LIMIT_BY_ADDR);
	CHECK("full: when the windows end there is room",
	    limit_fail_record(&lc, "192.0.2.1", "", 3600000) == LIMIT_BY_ADDR);
	n = limit_fail_keys(&lc, &nb);
	CHECK("full: the old ones are gone", n == 1 && nb == 1);
	limit_fail_clear();
}

int
main(void)
{
	test_key();
	test_conn();
	test_prelogin();
	test_rate();
	test_rate_bound();
	test_fail();
	test_fail_bound();
	test_fail_full();
	UNIT_EXIT();
}
