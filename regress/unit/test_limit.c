/*
 * Unit tests of the counters behind limit_conn_per_ip and
 * limit_auth_fail (src/limit.c), with time passed in.
 */

#include <stdio.h>
#include <string.h>

#include "limit.h"
#include "unit.h"

static int	 chan_a, chan_b;	/* two workers' channels */

static void
test_conn(void)
{
	CHECK("conn: first admitted",
	    limit_conn_open(&chan_a, 1, "192.0.2.1", 2, 0) == 1);
	CHECK("conn: second admitted",
	    limit_conn_open(&chan_b, 1, "192.0.2.1", 2, 0) == 1);
	CHECK("conn: third refused",
	    limit_conn_open(&chan_a, 2, "192.0.2.1", 2, 0) == 0);
	CHECK("conn: refused one not counted",
	    limit_conn_count("192.0.2.1") == 2);
	CHECK("conn: other address admitted",
	    limit_conn_open(&chan_a, 3, "2001:db8::1", 2, 0) == 1);
	CHECK("conn: the same session twice counts once",
	    limit_conn_open(&chan_a, 3, "2001:db8::1", 2, 0) == 1 &&
	    limit_conn_count("2001:db8::1") == 1);
	CHECK("conn: no limit",
	    limit_conn_open(&chan_a, 4, "192.0.2.1", 0, 0) == 1 &&
	    limit_conn_count("192.0.2.1") == 3);
	limit_conn_close(&chan_a, 4);
	limit_conn_close(&chan_b, 1);
	CHECK("conn: a close makes room",
	    limit_conn_count("192.0.2.1") == 1 &&
	    limit_conn_open(&chan_b, 5, "192.0.2.1", 2, 0) == 1);
	CHECK("conn: recount ignores the limit",
	    limit_conn_open(&chan_b, 6, "192.0.2.1", 2, 1) == 1 &&
	    limit_conn_count("192.0.2.1") == 3);
	limit_conn_close(&chan_b, 999);		/* unknown: no effect */
	limit_conn_drop(&chan_b);
	CHECK("conn: a worker gone takes its sessions",
	    limit_conn_count("192.0.2.1") == 1 &&
	    limit_conn_count("2001:db8::1") == 1);
	limit_conn_drop(&chan_a);
	CHECK("conn: all gone", limit_conn_count("192.0.2.1") == 0 &&
	    limit_conn_count("2001:db8::1") == 0);
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
	limit_fail_clear();
}

/* memory stays bounded: past LIMIT_FAIL_KEYS the oldest go */
static void
test_fail_bound(void)
{
	struct limit_fail_conf	 lc = { 1, 1, 3600000 };
	char			 ip[32];
	int			 i;

	CHECK("bound: first blocked", limit_fail_record(&lc, "10.0.0.0",
	    "", 0) == LIMIT_BY_ADDR);
	for (i = 1; i <= LIMIT_FAIL_KEYS; i++) {
		snprintf(ip, sizeof(ip), "10.%d.%d.%d", i >> 16,
		    (i >> 8) & 255, i & 255);
		limit_fail_record(&lc, ip, "", 1);
	}
	CHECK("bound: the oldest was dropped",
	    limit_fail_check(&lc, "10.0.0.0", "", 2) == 0);
	CHECK("bound: the newest is kept",
	    limit_fail_check(&lc, ip, "", 2) == LIMIT_BY_ADDR);
	limit_fail_clear();
}

int
main(void)
{
	test_conn();
	test_fail();
	test_fail_bound();
	UNIT_EXIT();
}
