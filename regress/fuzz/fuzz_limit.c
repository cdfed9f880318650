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
 * libFuzzer target for the limit tables (src/limit.c), built with
 * tables of 8 keys so that full tables are reached.  The input is a
 * program: each step is an opcode and its operands, with time moving
 * forward.  Beside memory safety, what a hostile client must not be
 * able to break is checked against a model kept here:
 *
 * - the session counts per address equal the model's, the
 *   unauthenticated ones too, and a refusal names a limit that was
 *   reached;
 * - a rate bucket never lets more through than its burst plus its
 *   rate since the key was first seen;
 * - with limit_auth_fail at 1, where a key blocks at its first failure
 *   and its window is known, a blocked key stays blocked until its
 *   window ends, however many new keys come (unless its user logged
 *   in); and a table is full of blocked keys when it says so.
 */

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "imaprelayd.h"
#include "limit.h"

int	LLVMFuzzerTestOneInput(const uint8_t *, size_t);

#define REQUIRE(c)	do { if (!(c)) abort(); } while (0)

#define NKEYS		16	/* addresses and users used */
#define NCHANS		3
#define NIDS		16

struct input {
	const uint8_t	*p;
	size_t		 len;
};

static int	 chans[NCHANS];

/* the model */
static struct {
	int		 open;
	int		 key;
	int		 prelogin;
} refs[NCHANS][NIDS];

static struct {
	uint64_t	 first_ms;	/* first take */
	uint64_t	 taken;
	int		 seen;
} rates[NKEYS];

static struct {
	uint64_t	 until_ms;	/* blocked before this, 0: not known */
} blocks[2][NKEYS];		/* [address, user] */

static uint8_t
next(struct input *in)
{
	uint8_t	 b;

	if (in->len == 0)
		return (0);
	b = in->p[0];
	in->p++;
	in->len--;
	return (b);
}

static const char *
key_name(int k)
{
	static char	 names[NKEYS][32];

	snprintf(names[k], sizeof(names[k]), "2001:db8:%x::/64", k);
	return (names[k]);
}

static const char *
user_name(int k)
{
	static char	 names[NKEYS][16];

	snprintf(names[k], sizeof(names[k]), "User%d", k);
	return (names[k]);
}

static void
check_counts(void)
{
	unsigned int	 count[NKEYS], pre[NKEYS];
	int		 c, i;

	memset(count, 0, sizeof(count));
	memset(pre, 0, sizeof(pre));
	for (c = 0; c < NCHANS; c++)
		for (i = 0; i < NIDS; i++)
			if (refs[c][i].open) {
				count[refs[c][i].key]++;
				pre[refs[c][i].key] += refs[c][i].prelogin;
			}
	for (i = 0; i < NKEYS; i++) {
		REQUIRE(limit_conn_count(key_name(i)) == count[i]);
		REQUIRE(limit_prelogin_count(key_name(i)) == pre[i]);
	}
}

static void
op_conn_open(struct input *in)
{
	struct limit_conn_req	 req;
	int			 c = next(in) % NCHANS, id = next(in) % NIDS;
	int			 k = next(in) % NKEYS, flags = next(in), r;
	unsigned int		 count = limit_conn_count(key_name(k));
	unsigned int		 pre = limit_prelogin_count(key_name(k));

	memset(&req, 0, sizeof(req));
	req.chan = &chans[c];
	req.id = id;
	req.key = key_name(k);
	req.max = flags & 3;
	req.max_prelogin = (flags >> 2) & 3;
	req.prelogin = (flags >> 4) & 1;
	req.recount = (flags >> 5) & 1;
	r = limit_conn_open(&req);
	if (refs[c][id].open) {
		/* counted already: admitted, counted once */
		REQUIRE(r == CONN_ADMIT);
		return;
	}
	switch (r) {
	case CONN_ADMIT:
		REQUIRE(req.recount || req.max == 0 || count < req.max);
		REQUIRE(req.recount || !req.prelogin ||
		    req.max_prelogin == 0 || pre < req.max_prelogin);
		refs[c][id].open = 1;
		refs[c][id].key = k;
		refs[c][id].prelogin = req.prelogin;
		break;
	case CONN_LIMIT_PER_IP:
		REQUIRE(!req.recount && req.max > 0 && count >= req.max);
		break;
	case CONN_LIMIT_PRELOGIN:
		REQUIRE(!req.recount && req.prelogin &&
		    req.max_prelogin > 0 && pre >= req.max_prelogin);
		break;
	default:
		REQUIRE(0);
	}
}

static void
op_conn(struct input *in, int op)
{
	int	 c = next(in) % NCHANS, id = next(in) % NIDS, i;

	switch (op) {
	case 0:
		limit_conn_login(&chans[c], id);
		refs[c][id].prelogin = 0;
		break;
	case 1:
		limit_conn_close(&chans[c], id);
		refs[c][id].open = 0;
		break;
	default:
		limit_conn_drop(&chans[c]);
		for (i = 0; i < NIDS; i++)
			refs[c][i].open = 0;
		break;
	}
}

/*
 * Keys of rc fit its table: none is forgotten before it is full, so
 * the bound holds.  rc2 has more keys than room, for the code that
 * makes room; no bound there, a forgotten bucket starts full.
 */
static void
op_rate(struct input *in, const struct limit_rate_conf *rc,
    const struct limit_rate_conf *rc2, uint64_t now)
{
	int	 k = next(in) % NKEYS;

	if (k >= LIMIT_RATE_KEYS) {
		(void)limit_rate_take(rc2, key_name(k), now);
		REQUIRE(limit_rate_keys(rc2, now) <= LIMIT_RATE_KEYS);
		return;
	}
	if (!limit_rate_take(rc, key_name(k), now))
		return;
	if (!rates[k].seen) {
		rates[k].seen = 1;
		rates[k].first_ms = now;
	}
	rates[k].taken++;
	/* a token bucket: its burst, then its rate */
	REQUIRE(rates[k].taken <= rc->burst +
	    (now - rates[k].first_ms) * rc->rate / 1000 + 1);
	REQUIRE(limit_rate_keys(rc, now) <= LIMIT_RATE_KEYS);
}

static void
op_fail(struct input *in, const struct limit_fail_conf *lc, uint64_t now)
{
	int		 a = next(in) % NKEYS, u = next(in) % (NKEYS + 1);
	const char	*user = u == NKEYS ? "" : user_name(u);
	size_t		 n, nb;
	int		 by;

	by = limit_fail_record(lc, key_name(a), user, now);
	n = limit_fail_keys(lc, &nb);
	REQUIRE(n <= LIMIT_FAIL_KEYS && nb <= n);
	if (by & LIMIT_FULL)
		REQUIRE(nb == LIMIT_FAIL_KEYS);
	if (lc->max != 1)
		return;
	/* at 1 a key blocks at its first failure: its window is known */
	if (by & LIMIT_BY_ADDR)
		blocks[0][a].until_ms = now + lc->window_ms;
	if ((by & LIMIT_BY_USER) && u < NKEYS)
		blocks[1][u].until_ms = now + lc->window_ms;
}

static void
op_check(struct input *in, const struct limit_fail_conf *lc, uint64_t now)
{
	int	 a = next(in) % NKEYS, u = next(in) % NKEYS, by;

	by = limit_fail_check(lc, key_name(a), user_name(u), now);
	if (now < blocks[0][a].until_ms)
		REQUIRE(by & LIMIT_BY_ADDR);
	if (now < blocks[1][u].until_ms)
		REQUIRE(by & LIMIT_BY_USER);
}

static void
op_key(struct input *in)
{
	char		 ip[64], key[LIMIT_ADDR_LEN];
	unsigned int	 prefix = next(in) % 130;
	size_t		 n = next(in) % sizeof(ip), i;

	for (i = 0; i < n; i++)
		ip[i] = next(in);
	ip[n] = '\0';
	if (n == sizeof(ip))
		ip[n - 1] = '\0';
	if (limit_addr_key(ip, prefix, key, sizeof(key)) == 0)
		REQUIRE(memchr(key, '\0', sizeof(key)) != NULL);
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct input		 in = { data, size };
	struct limit_rate_conf	 rc, rc2;
	struct limit_fail_conf	 lc;
	uint64_t		 now = 0;
	int			 c, u;

	memset(refs, 0, sizeof(refs));
	memset(rates, 0, sizeof(rates));
	memset(blocks, 0, sizeof(blocks));
	rc.server_id = 1;
	rc.rate = 1 + next(&in) % 100;
	rc.burst = 1 + next(&in) % 10;
	rc2 = rc;
	rc2.server_id = 2;
	lc.server_id = 1;
	lc.max = 1 + next(&in) % 3;
	lc.window_ms = 1 + next(&in) * 10;
	while (in.len > 0) {
		now += next(&in) % 64;
		switch (next(&in) % 9) {
		case 0:
			op_conn_open(&in);
			break;
		case 1:
		case 2:
		case 3:
			op_conn(&in, next(&in) % 3);
			break;
		case 4:
			op_rate(&in, &rc, &rc2, now);
			break;
		case 5:
			op_fail(&in, &lc, now);
			break;
		case 6:
			op_check(&in, &lc, now);
			break;
		case 7:
			u = next(&in) % NKEYS;
			limit_fail_forget_user(&lc, user_name(u));
			blocks[1][u].until_ms = 0;
			break;
		default:
			op_key(&in);
			break;
		}
		check_counts();
	}
	/* nothing outlives one input */
	for (c = 0; c < NCHANS; c++)
		limit_conn_drop(&chans[c]);
	memset(refs, 0, sizeof(refs));
	check_counts();
	limit_rate_clear();
	limit_fail_clear();
	return (0);
}
