/*
 * Sandboxes, one function per process, the last step of its setup.
 * Call sites carry no #ifdef: what each system can enforce lives here.
 *
 * OpenBSD: pledge(2) with the promises of DESIGN.md.  Elsewhere the
 * sandbox is for now the chroot and privilege drop done before; the
 * Linux seccomp-bpf and Landlock filters come with their own change.
 */

#include <unistd.h>

#include "imaprelayd.h"

#ifdef __OpenBSD__

void
sandbox_parent(void)
{
	if (pledge("stdio rpath wpath cpath inet proc exec id sendfd "
	    "recvfd unix", NULL) == -1)
		fatal("pledge");
}

void
sandbox_auth(void)
{
	if (unveil("/", "") == -1 || pledge("stdio inet dns recvfd",
	    NULL) == -1)
		fatal("pledge");
}

void
sandbox_imap(void)
{
	if (pledge("stdio inet recvfd", NULL) == -1)
		fatal("pledge");
}

#else

static int	 sandbox_warned;

static void
sandbox_reduced(const char *proc)
{
	if (sandbox_warned++ == 0)
		log_debug("%s: sandbox reduced to chroot and privilege drop",
		    proc);
}

void
sandbox_parent(void)
{
}

void
sandbox_auth(void)
{
	sandbox_reduced("auth");
}

void
sandbox_imap(void)
{
	sandbox_reduced("imap");
}

#endif
