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
 * The template (isolation connection): exec'd by the parent once per
 * configuration generation, it drops privileges, chroots, sandboxes
 * itself, receives the configuration with the listening sockets and
 * the TLS material, builds every TLS context once, then forks one imap
 * worker each time the parent asks for a spare.  A fork costs a small
 * fraction of an exec, a dynamic link and a TLS set-up.
 *
 * It never accepts a client and reads no byte from the network or from
 * a worker: nothing of any session enters it.  Each worker gets a
 * fresh channel to the parent, whose far end the template hands over
 * with the worker's pid; the parent gives the worker its auth channel
 * and admissions.  The template reaps its workers and tells the parent
 * how each ended.  All workers of one template share its address-space
 * layout: the parent replaces it after template_max_forks forks or
 * template_max_age.
 */

#include <sys/types.h>
#include <sys/wait.h>

#include <errno.h>
#include <event.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <tls.h>

#include "imaprelayd.h"
#include "imap.h"

static int	tpl_dispatch_parent(struct imsgev *, struct imsg *);
static void	tpl_fork(int);
static void	tpl_sigchld(int, short, void *);

static const struct proc_peer peer_parent = {
	"parent", tpl_dispatch_parent, NULL, NULL, 1
};

static struct imsgev	 tpl_parent;
static struct event_base *tpl_base;
static struct event	 ev_sigchld;
static int		 configured;
static int		 worker_fd = -1;	/* in a forked worker: its channel */
static int		 worker_admit;		/* ... and its first admission */

void
template_main(int debug, int verbose, const char *user)
{
	log_procinit("template");
	log_setverbose(verbose);
	if ((imap_conf = config_new()) == NULL)
		fatal("config_new");
	/* libtls reads its configuration while files are still in view */
	if (tls_init() == -1)
		fatalx("tls_init");
	proc_privdrop(user, "template", 1);
	signal(SIGPIPE, SIG_IGN);

	tpl_base = event_init();
	signal_set(&ev_sigchld, SIGCHLD, tpl_sigchld, NULL);
	signal_add(&ev_sigchld, NULL);
	proc_parent_channel(&tpl_parent, &peer_parent);
	sandbox_template();
	event_dispatch();
	/* the loop a fork broke, in the child: it runs a worker's own */
	if (worker_fd == -1)
		fatalx("event loop ended");
	imap_forked(worker_fd, worker_admit);
}

static int
tpl_dispatch_parent(struct imsgev *iev, struct imsg *imsg)
{
	int	 v;

	switch (imsg_get_type(imsg)) {
	case IMSG_CFG_GLOBAL:
	case IMSG_CFG_SERVER:
	case IMSG_CFG_AUTH_HEADER:
	case IMSG_CFG_LISTEN:
	case IMSG_CFG_TLS_CERT:
	case IMSG_CFG_TLS_KEY:
	case IMSG_CFG_LOG:
	case IMSG_CFG_DONE:
		/* one configuration per template: a reload execs another */
		if (configured)
			return (-1);
		if (config_recv(imap_conf, imsg) == 1) {
			imap_setup();
			configured = 1;
			imsgev_compose(iev, IMSG_CTL_READY, 0, -1, NULL, 0);
		}
		break;
	case IMSG_CTL_TICKET_KEY:
		ctls_ticket_key(imsg);
		break;
	case IMSG_TPL_FORK:
		if (!configured || imsg_get_data(imsg, &v, sizeof(v)) == -1 ||
		    (v != ADMIT_SERVE && v != ADMIT_PAUSE))
			return (-1);
		tpl_fork(v);
		break;
	case IMSG_CTL_DRAIN:
		/* the workers live on without us */
		imsgbuf_flush(&iev->ibuf);
		exit(0);
	case IMSG_CTL_LOG_FD:
		/* workers forked from now on write to the new file */
		log_recvfd(imsg);
		break;
	case IMSG_CTL_VERBOSE:
		if (imsg_get_data(imsg, &v, sizeof(v)) == -1)
			return (-1);
		log_setverbose(v);
		break;
	default:
		return (-1);
	}
	return (0);
}

/*
 * One spare worker.  The child leaves the template's event base (the
 * epoll set is shared until event_reinit), its channel and its signal
 * handler behind, and leaves the template's event loop, which is
 * running: template_main() then makes it an imap worker.
 */
static void
tpl_fork(int admit)
{
	struct tpl_worker	 w;
	int			 sp[2];
	pid_t			 pid;

	if (proc_socketpair(sp) == -1) {
		imsgev_compose(&tpl_parent, IMSG_TPL_FORK_FAILED, 0, -1,
		    &admit, sizeof(admit));
		return;
	}
	switch (pid = fork()) {
	case -1:
		log_warn("fork");
		close(sp[0]);
		close(sp[1]);
		imsgev_compose(&tpl_parent, IMSG_TPL_FORK_FAILED, 0, -1,
		    &admit, sizeof(admit));
		return;
	case 0:
		if (event_reinit(tpl_base) == -1)
			fatalx("event_reinit");
		signal_del(&ev_sigchld);
		signal(SIGCHLD, SIG_DFL);
		imsgev_clear(&tpl_parent);
		close(sp[0]);
		worker_fd = sp[1];
		worker_admit = admit;
		event_loopbreak();
		return;
	}
	close(sp[1]);
	memset(&w, 0, sizeof(w));
	w.pid = pid;
	w.admit = admit;
	imsgev_compose(&tpl_parent, IMSG_TPL_WORKER, 0, sp[0], &w, sizeof(w));
}

/* the parent learns how each worker ended, as if it had forked it */
static void
tpl_sigchld(int sig, short event, void *arg)
{
	struct tpl_exited	 e;
	pid_t			 pid;
	int			 status;

	while ((pid = waitpid(-1, &status, WNOHANG)) > 0) {
		memset(&e, 0, sizeof(e));
		e.pid = pid;
		e.status = status;
		imsgev_compose(&tpl_parent, IMSG_TPL_EXITED, 0, -1, &e,
		    sizeof(e));
	}
}
