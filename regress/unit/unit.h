/*
 * A tiny test harness for the C unit tests.  Each check prints
 * "ok - name" or "not ok - name"; regress/run.py counts them.
 */

#ifndef UNIT_H
#define UNIT_H

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static int unit_failed;

#define CHECK(name, cond) do {						\
	if (cond)							\
		printf("ok - %s\n", (name));				\
	else {								\
		printf("not ok - %s (%s:%d: %s)\n", (name), __FILE__,	\
		    __LINE__, #cond);					\
		unit_failed++;						\
	}								\
	fflush(stdout);							\
} while (0)

#define UNIT_EXIT()	return (unit_failed ? 1 : 0)

#endif /* UNIT_H */
