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
 * The Linux sandboxes, in the order they are put in place:
 *
 * 1. no_new_privs: nothing we could exec gains privileges, and it is
 *    what lets an unprivileged process install the two layers below.
 * 2. Landlock (children only): every filesystem access right the kernel
 *    knows is handled and no rule grants any, so no path can be opened,
 *    executed, listed or created; from ABI 4 TCP bind is handled the
 *    same way, and in the imap workers (and the template they are
 *    forked from) TCP connect too: the auth process connects to the
 *    backends for them and to the auth service, so it alone keeps
 *    connect; from ABI 6 abstract unix sockets and signals are scoped
 *    to the process.
 * 3. seccomp-bpf (children only): an allow-list of system calls per
 *    process; anything else kills the whole process (SIGSYS).  Calls
 *    that ask for a resource rather than a capability -- open, bind,
 *    a socket of a kind we never make -- are answered with an error,
 *    by Landlock when it enforces that resource, else by the filter,
 *    so that a library trying a file it would like gets an error, not
 *    a dead process.
 *
 * With -DSANDBOX_DEBUG the filter traps instead of killing and a SIGSYS
 * handler writes the number of the refused call to stderr: run the
 * regress suite with such a build to see what a change needs.
 *
 * The parent gets no_new_privs only.  It forks, execs, binds, reads
 * the configuration and certificates again on SIGHUP wherever they
 * are, writes the pid file: an allow-list that fits would be as wide
 * as the system, and it never reads a byte from the network.
 */

#ifdef __linux__

#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/syscall.h>

#include <linux/audit.h>
#include <linux/filter.h>
#include <linux/seccomp.h>

#include <errno.h>
#include <signal.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>
#include <ucontext.h>
#include <unistd.h>

#include "imaprelayd.h"

#if defined(__x86_64__)
#define SC_ARCH		AUDIT_ARCH_X86_64
#elif defined(__aarch64__)
#define SC_ARCH		AUDIT_ARCH_AARCH64
#else
#define SC_ARCH		0	/* no syscall table known here: no filter */
#endif

#if __BYTE_ORDER__ == __ORDER_BIG_ENDIAN__
#define SC_ARG_LO(n)	(offsetof(struct seccomp_data, args[n]) + 4)
#else
#define SC_ARG_LO(n)	offsetof(struct seccomp_data, args[n])
#endif

#ifdef SANDBOX_DEBUG
#define SC_DEFAULT	SECCOMP_RET_TRAP
#else
#define SC_DEFAULT	SECCOMP_RET_KILL_PROCESS
#endif
#define SC_ERRNO(e)	(SECCOMP_RET_ERRNO | ((e) & SECCOMP_RET_DATA))
#define SC_MAX_INSNS	256

/* Landlock, for headers older than the kernel (Debian 12 knows ABI 2) */
#ifndef __NR_landlock_create_ruleset
#define __NR_landlock_create_ruleset	444
#define __NR_landlock_add_rule		445
#define __NR_landlock_restrict_self	446
#endif
#define LL_CREATE_VERSION	(1U << 0)
#define LL_FS_ABI1		((1ULL << 13) - 1)	/* EXECUTE..MAKE_SYM */
#define LL_FS_REFER		(1ULL << 13)		/* ABI 2 */
#define LL_FS_TRUNCATE		(1ULL << 14)		/* ABI 3 */
#define LL_FS_IOCTL_DEV		(1ULL << 15)		/* ABI 5 */
#define LL_NET_BIND_TCP		(1ULL << 0)		/* ABI 4 */
#define LL_NET_CONNECT_TCP	(1ULL << 1)		/* ABI 4 */
#define LL_SCOPE_ABSTRACT_UNIX	(1ULL << 0)		/* ABI 6 */
#define LL_SCOPE_SIGNAL		(1ULL << 1)		/* ABI 6 */

/* struct landlock_ruleset_attr; the kernel is given the size it knows */
struct ll_attr {
	uint64_t	 fs;
	uint64_t	 net;
	uint64_t	 scoped;
};

/* what Landlock enforces, so that the filter need not */
struct ll_state {
	int		 abi;		/* 0: none */
	int		 fs;		/* no file access at all */
	int		 bind;		/* no TCP bind */
	int		 connect;	/* no TCP connect */
};

/* how the filter treats one system call */
enum sc_what {
	SC_ALLOW,
	SC_FS,		/* reaches a path: Landlock refuses, else EACCES */
	SC_BIND,	/* binds: Landlock refuses, else EACCES */
	SC_ARG0,	/* allowed when its first argument is arg0, else EPERM */
	SC_NOSYS,	/* ENOSYS: the caller falls back to an older call */
};

struct sc_rule {
	int		 nr;
	enum sc_what	 what;
	uint32_t	 arg0;		/* SC_ARG0 */
};

/* a socket(2) domain and type (without SOCK_NONBLOCK/CLOEXEC) allowed */
struct sc_sock {
	int		 domain;
	int		 type;
};

struct sc_prog {
	struct sock_filter	 insn[SC_MAX_INSNS];
	unsigned short		 len;
};

#define A(n)		{ __NR_##n, SC_ALLOW, 0 }

/*
 * What every child does after its setup: the libevent loop (epoll),
 * imsg with the parent and peers (recvmsg/sendmsg carrying fds, writev),
 * glibc's allocator, logging (stderr or the error_log fd, or syslog
 * over the /dev/log socket opened before the chroot, which glibc
 * reconnects with socket+connect when syslogd restarted), time for log
 * lines and timers.
 */
static const struct sc_rule sc_common[] = {
	/* descriptors: sockets, imsg channels, the log */
	A(read), A(write), A(readv), A(writev), A(close), A(fcntl),
	A(recvmsg), A(sendmsg), A(recvfrom), A(sendto),
	A(shutdown), A(getsockopt), A(setsockopt), A(getsockname),
	A(getpeername), A(connect),
	/* libevent: epoll; its signal handling (SIGPIPE ignored, etc.) */
	A(epoll_ctl), A(epoll_pwait),
#ifdef __NR_epoll_wait
	A(epoll_wait),
#endif
	A(rt_sigaction), A(rt_sigprocmask), A(rt_sigreturn),
	/* memory: malloc, large buffers, glibc's own tuning */
	A(brk), A(mmap), A(munmap), A(mremap), A(mprotect), A(madvise),
	/* glibc locks, time for timers and log stamps, getpid in log lines */
	A(futex), A(clock_gettime), A(gettimeofday), A(getpid),
	A(restart_syscall),
	/* arc4random (libbsd), CRAM-MD5 challenges, TLS */
	A(getrandom),
	/*
	 * dprintf() to stderr or the error_log fd: fstat, then lseek;
	 * glibc's fstat() is newfstatat(fd, "", AT_EMPTY_PATH)
	 */
	A(lseek), A(fstat),
#ifdef __NR_newfstatat
	A(newfstatat),
#endif
	A(exit), A(exit_group),
	/* resources, not capabilities: refused with an error */
	{ __NR_openat, SC_FS, 0 },
#ifdef __NR_open
	{ __NR_open, SC_FS, 0 },
#endif
	{ __NR_bind, SC_BIND, 0 },
	{ -1, SC_ALLOW, 0 }
};

/*
 * The imap worker: clients come from accept4, backend sockets from the
 * auth process over imsg (recvmsg); connect(2) is left for syslog's
 * unix socket, the only kind it can make.
 */
static const struct sc_rule sc_imap[] = {
	A(accept4), A(accept),
	/* the plaintext relay: splice through pipes (splice.c) */
	A(pipe2), A(splice),
	{ -1, SC_ALLOW, 0 }
};

/*
 * The template: what its workers will do (it cannot grant them more
 * than it has), and forking them: clone (glibc's fork; clone3 gets
 * ENOSYS), set_robust_list in the child, wait4 to reap, socketpair for
 * each worker's channel, and in the child event_reinit's new epoll set
 * and signal pipe (libevent asks getuid and friends whether it runs
 * set-id before it reads its environment), and the prctl that installs
 * the worker's own filter.
 */
static const struct sc_rule sc_template[] = {
	A(accept4), A(accept),
	A(clone), A(set_robust_list), A(wait4), A(epoll_create1), A(pipe2),
	A(splice),
	A(getuid), A(geteuid), A(getgid), A(getegid),
	{ __NR_clone3, SC_NOSYS, 0 },
	{ __NR_socketpair, SC_ARG0, AF_UNIX },
	{ __NR_prctl, SC_ARG0, PR_SET_SECCOMP },
	{ -1, SC_ALLOW, 0 }
};

/*
 * No TCP socket at all: a worker (and the template it comes from)
 * opens no network connection.  A datagram unix socket for syslog.
 */
static const struct sc_sock sock_imap[] = {
	{ AF_UNIX, SOCK_DGRAM },
	{ -1, 0 }
};

/*
 * The auth process: libcurl's multi interface checks the connections it
 * keeps alive with poll (ppoll where there is no poll(2), aarch64).  Its
 * wakeup pipe, if any, was made by curl_multi_init before the sandbox,
 * and it resolves nothing: the parent pinned the address.
 */
static const struct sc_rule sc_auth[] = {
	A(ppoll),
#ifdef __NR_poll
	A(poll),
#endif
	{ -1, SC_ALLOW, 0 }
};

/* TCP and unix: (auth_http unix:/path), a datagram unix for syslog */
static const struct sc_sock sock_auth[] = {
	{ AF_INET, SOCK_STREAM },
	{ AF_INET6, SOCK_STREAM },
	{ AF_UNIX, SOCK_STREAM },
	{ AF_UNIX, SOCK_DGRAM },
	{ -1, 0 }
};

#undef A

static const char	*sandbox_proc = "parent";
static struct ll_state	 sandbox_ll;	/* what Landlock enforces for us */

static void
sc_emit(struct sc_prog *p, uint16_t code, uint32_t k, uint8_t jt, uint8_t jf)
{
	struct sock_filter	 insn = BPF_JUMP(code, k, jt, jf);

	if (p->len >= SC_MAX_INSNS)
		fatalx("%s: seccomp filter too long", __func__);
	p->insn[p->len++] = insn;
}

/* a foreign architecture (i386 or x32 on amd64) would be another table */
static void
sc_arch(struct sc_prog *p)
{
	sc_emit(p, BPF_LD | BPF_W | BPF_ABS, offsetof(struct seccomp_data,
	    arch), 0, 0);
	sc_emit(p, BPF_JMP | BPF_JEQ | BPF_K, SC_ARCH, 1, 0);
	sc_emit(p, BPF_RET | BPF_K, SECCOMP_RET_KILL_PROCESS, 0, 0);
	sc_emit(p, BPF_LD | BPF_W | BPF_ABS, offsetof(struct seccomp_data,
	    nr), 0, 0);
#ifdef __x86_64__
	sc_emit(p, BPF_JMP | BPF_JGE | BPF_K, 0x40000000, 0, 1);
	sc_emit(p, BPF_RET | BPF_K, SECCOMP_RET_KILL_PROCESS, 0, 0);
#endif
}

static uint32_t
sc_action(enum sc_what what, const struct ll_state *ll)
{
	switch (what) {
	case SC_ALLOW:
		return (SECCOMP_RET_ALLOW);
	case SC_FS:
		return (ll->fs ? SECCOMP_RET_ALLOW : SC_ERRNO(EACCES));
	case SC_NOSYS:
		return (SC_ERRNO(ENOSYS));
	case SC_BIND:
	default:
		return (ll->bind ? SECCOMP_RET_ALLOW : SC_ERRNO(EACCES));
	}
}

/* one "nr == N: return action" pair per system call */
static void
sc_rules(struct sc_prog *p, const struct sc_rule *r, const struct ll_state *ll)
{
	for (; r->nr != -1; r++) {
		if (r->what == SC_ARG0) {
			/* the accumulator holds nr again only if not taken */
			sc_emit(p, BPF_JMP | BPF_JEQ | BPF_K, r->nr, 0, 4);
			sc_emit(p, BPF_LD | BPF_W | BPF_ABS, SC_ARG_LO(0), 0, 0);
			sc_emit(p, BPF_JMP | BPF_JEQ | BPF_K, r->arg0, 0, 1);
			sc_emit(p, BPF_RET | BPF_K, SECCOMP_RET_ALLOW, 0, 0);
			sc_emit(p, BPF_RET | BPF_K, SC_ERRNO(EPERM), 0, 0);
			continue;
		}
		sc_emit(p, BPF_JMP | BPF_JEQ | BPF_K, r->nr, 0, 1);
		sc_emit(p, BPF_RET | BPF_K, sc_action(r->what, ll), 0, 0);
	}
}

/*
 * socket(domain, type): six instructions per allowed pair, then an
 * error for any other kind (glibc's syslog must not kill us when it
 * tries to reconnect); the accumulator is reloaded by each pair.
 */
static void
sc_socket(struct sc_prog *p, const struct sc_sock *s)
{
	const struct sc_sock	*t;
	unsigned int		 n = 0;

	for (t = s; t->domain != -1; t++)
		n++;
	sc_emit(p, BPF_JMP | BPF_JEQ | BPF_K, __NR_socket, 0, n * 6 + 1);
	for (t = s; t->domain != -1; t++) {
		sc_emit(p, BPF_LD | BPF_W | BPF_ABS, SC_ARG_LO(0), 0, 0);
		sc_emit(p, BPF_JMP | BPF_JEQ | BPF_K, t->domain, 0, 4);
		sc_emit(p, BPF_LD | BPF_W | BPF_ABS, SC_ARG_LO(1), 0, 0);
		sc_emit(p, BPF_ALU | BPF_AND | BPF_K,
		    ~(uint32_t)(SOCK_NONBLOCK | SOCK_CLOEXEC), 0, 0);
		sc_emit(p, BPF_JMP | BPF_JEQ | BPF_K, t->type, 0, 1);
		sc_emit(p, BPF_RET | BPF_K, SECCOMP_RET_ALLOW, 0, 0);
	}
	sc_emit(p, BPF_RET | BPF_K, SC_ERRNO(EACCES), 0, 0);
}

#ifdef SANDBOX_DEBUG
static size_t
sc_fmt_num(char *buf, unsigned long v)
{
	char	 tmp[24];
	size_t	 n = 0, i;

	do {
		tmp[n++] = '0' + v % 10;
		v /= 10;
	} while (v != 0 && n < sizeof(tmp));
	for (i = 0; i < n; i++)
		buf[i] = tmp[n - 1 - i];
	return (n);
}

static size_t
sc_fmt_str(char *buf, const char *s)
{
	size_t	 n = strlen(s);

	memcpy(buf, s, n);
	return (n);
}

/* async-signal-safe: build the line by hand, write(2) it, carry on */
static void
sc_sigsys(int sig, siginfo_t *si, void *arg)
{
	ucontext_t	*uc = arg;
	char		 line[160];
	size_t		 n = 0;
	int		 saved_errno = errno;

	n += sc_fmt_str(line + n, "sandbox: ");
	n += sc_fmt_str(line + n, sandbox_proc);
	n += sc_fmt_str(line + n, " pid ");
	n += sc_fmt_num(line + n, (unsigned long)getpid());
	n += sc_fmt_str(line + n, ": system call ");
	n += sc_fmt_num(line + n, (unsigned long)si->si_syscall);
	n += sc_fmt_str(line + n, " not allowed\n");
	(void)write(STDERR_FILENO, line, n);
	/* the call fails with ENOSYS instead of running */
#if defined(__x86_64__)
	uc->uc_mcontext.gregs[REG_RAX] = -ENOSYS;
#elif defined(__aarch64__)
	uc->uc_mcontext.regs[0] = -ENOSYS;
#else
	(void)uc;
#endif
	errno = saved_errno;
}

static void
sc_trap_init(void)
{
	struct sigaction	 sa;

	memset(&sa, 0, sizeof(sa));
	sa.sa_sigaction = sc_sigsys;
	sa.sa_flags = SA_SIGINFO;
	sigemptyset(&sa.sa_mask);
	if (sigaction(SIGSYS, &sa, NULL) == -1)
		fatal("sigaction SIGSYS");
}
#endif /* SANDBOX_DEBUG */

static void
sc_install(const struct sc_rule *rules, const struct sc_sock *socks,
    const struct ll_state *ll)
{
	struct sc_prog		 p;
	struct sock_fprog	 fprog;

	if (SC_ARCH == 0) {
		log_warning("%s: no seccomp filter for this architecture: "
		    "sandbox reduced to landlock, chroot and privilege drop",
		    sandbox_proc);
		return;
	}
	memset(&p, 0, sizeof(p));
	sc_arch(&p);
	sc_rules(&p, sc_common, ll);
	sc_rules(&p, rules, ll);
	sc_socket(&p, socks);
	sc_emit(&p, BPF_RET | BPF_K, SC_DEFAULT, 0, 0);
#ifdef SANDBOX_DEBUG
	sc_trap_init();
#endif
	fprog.len = p.len;
	fprog.filter = p.insn;
	if (prctl(PR_SET_SECCOMP, SECCOMP_MODE_FILTER, &fprog) == -1)
		fatal("%s: seccomp filter", sandbox_proc);
}

/* every FS right the running kernel knows, and the network ones */
static void
ll_attr_for(int abi, int noconnect, struct ll_attr *attr, size_t *size)
{
	memset(attr, 0, sizeof(*attr));
	attr->fs = LL_FS_ABI1;
	if (abi >= 2)
		attr->fs |= LL_FS_REFER;
	if (abi >= 3)
		attr->fs |= LL_FS_TRUNCATE;
	if (abi >= 5)
		attr->fs |= LL_FS_IOCTL_DEV;
	*size = sizeof(attr->fs);
	if (abi >= 4) {
		attr->net = LL_NET_BIND_TCP;
		if (noconnect)
			attr->net |= LL_NET_CONNECT_TCP;
		*size = offsetof(struct ll_attr, scoped);
	}
	if (abi >= 6) {
		attr->scoped = LL_SCOPE_ABSTRACT_UNIX | LL_SCOPE_SIGNAL;
		*size = sizeof(*attr);
	}
}

/* noconnect: no TCP connect either (the imap roles) */
static void
ll_restrict(struct ll_state *ll, int noconnect)
{
	struct ll_attr	 attr;
	size_t		 size;
	int		 abi, fd;

	memset(ll, 0, sizeof(*ll));
	abi = syscall(__NR_landlock_create_ruleset, NULL, 0,
	    LL_CREATE_VERSION);
	if (abi <= 0) {
		log_warning("%s: no landlock in this kernel (%s): sandbox "
		    "reduced to seccomp, chroot and privilege drop",
		    sandbox_proc, strerror(errno));
		return;
	}
	ll_attr_for(abi, noconnect, &attr, &size);
	if ((fd = syscall(__NR_landlock_create_ruleset, &attr, size,
	    0)) == -1)
		fatal("%s: landlock_create_ruleset", sandbox_proc);
	/* no landlock_add_rule: nothing handled is granted */
	if (syscall(__NR_landlock_restrict_self, fd, 0) == -1)
		fatal("%s: landlock_restrict_self", sandbox_proc);
	close(fd);
	ll->abi = abi;
	ll->fs = 1;
	ll->bind = abi >= 4;
	ll->connect = noconnect && abi >= 4;
}

static void
sandbox_nnp(void)
{
	if (prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) == -1)
		fatal("%s: PR_SET_NO_NEW_PRIVS", sandbox_proc);
}

static void
sandbox_linux(const char *proc, const struct sc_rule *rules,
    const struct sc_sock *socks, int noconnect)
{
	struct ll_state	 ll;

	sandbox_proc = proc;
	sandbox_nnp();
#ifdef SANITIZE_BUILD
	/* LeakSanitizer stops the world with clone+ptrace, reads /proc */
	log_warning("%s: sanitizer build: seccomp and landlock are off", proc);
	return;
#endif
	ll_restrict(&ll, noconnect);
	sc_install(rules, socks, &ll);
	sandbox_ll = ll;
	log_debug("%s: sandbox: no_new_privs, landlock abi %d%s, seccomp %s",
	    proc, ll.abi, ll.connect ? " (no tcp connect)" : "",
	    SC_ARCH == 0 ? "none" : "filter");
#ifdef SANDBOX_DEBUG
	/* loud: such a build must not pass for a sandboxed one */
	log_warning("%s: SANDBOX_DEBUG build: refused system calls are "
	    "trapped and logged, not killed", proc);
#endif
}

void
sandbox_parent(void)
{
	sandbox_proc = "parent";
	sandbox_nnp();
}

/*
 * auth_http unix:/path needs no rule: Landlock (up to ABI 6) does not
 * govern connect(2) to a pathname socket, only the chroot hid it, and
 * the parent left that out (auth_main()).
 */
void
sandbox_auth(char *const *unix_paths)
{
	sandbox_linux("auth", sc_auth, sock_auth, 0);
}

void
sandbox_imap(void)
{
	sandbox_linux("imap", sc_imap, sock_imap, 1);
}

void
sandbox_template(void)
{
	sandbox_linux("template", sc_template, sock_imap, 1);
}

/*
 * A worker the template forked inherits its Landlock domain and filter;
 * before any client it stacks the imap filter on top, which has no
 * clone, wait4, socketpair, prctl or exec: filters stack, the stricter
 * answer wins.
 */
void
sandbox_worker(void)
{
	sandbox_proc = "imap";
#ifdef SANITIZE_BUILD
	return;
#endif
	sc_install(sc_imap, sock_imap, &sandbox_ll);
}

#endif /* __linux__ */
