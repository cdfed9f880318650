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
 * The floor under isolation connection: the CPU time (parent and child,
 * user and system) of a fork whose child calls _exit at once, and the
 * number of mappings the forking process has.  bench.py builds it bare
 * and linked with imaprelayd's libraries (which every worker's fork has
 * to copy the page tables of), so the table shows what no code in the
 * daemon can go below on this machine.
 *
 *	forkfloor [count]	prints "<microseconds per fork> <mappings>"
 */

#include <sys/resource.h>
#include <sys/wait.h>

#include <stdio.h>
#include <stdlib.h>
#include <unistd.h>

static double
cpu_usec(int who)
{
	struct rusage	ru;

	if (getrusage(who, &ru) == -1) {
		perror("getrusage");
		exit(1);
	}
	return ((ru.ru_utime.tv_sec + ru.ru_stime.tv_sec) * 1e6 +
	    ru.ru_utime.tv_usec + ru.ru_stime.tv_usec);
}

static int
mappings(void)
{
	FILE	*f;
	int	 c, n = 0;

	if ((f = fopen("/proc/self/maps", "r")) == NULL)
		return (-1);
	while ((c = getc(f)) != EOF)
		if (c == '\n')
			n++;
	fclose(f);
	return (n);
}

int
main(int argc, char *argv[])
{
	double	 before;
	pid_t	 pid;
	int	 i, count = 1000, status;

	if (argc > 1 && (count = atoi(argv[1])) <= 0)
		count = 1000;
	before = cpu_usec(RUSAGE_SELF) + cpu_usec(RUSAGE_CHILDREN);
	for (i = 0; i < count; i++) {
		if ((pid = fork()) == -1) {
			perror("fork");
			return (1);
		}
		if (pid == 0)
			_exit(0);
		if (waitpid(pid, &status, 0) == -1) {
			perror("waitpid");
			return (1);
		}
	}
	printf("%.1f %d\n", (cpu_usec(RUSAGE_SELF) +
	    cpu_usec(RUSAGE_CHILDREN) - before) / count, mappings());
	return (0);
}
