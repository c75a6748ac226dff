/* cmd_supervise.c: `pqota supervise`, the fallback for machines without systemd (containers,
 * other init systems): runs a command and restarts it when it fails, with the notification
 * protocol of Type=notify units (core/notify.h) on a socket of its own, READY=1 logged and
 * WATCHDOG=1 enforced. docs/operations.md "Services". */
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <unistd.h>

#include "cli/cli.h"
#include "core/log.h"
#include "core/notify.h"
#include "core/time.h"

#define LOGC          "supervise"
#define START_WINDOW  60000 /* ms: --start-limit counts the restarts within it */
#define SUPERVISE_MAX 64    /* arguments of the command */

typedef struct {
	long restart_ms, watchdog_ms, start_limit;
	char **cmd;
	int notify_fd;
	pid_t child;
	bool ready;
	int64_t last_ping;
} sup;

static volatile sig_atomic_t g_sig_term, g_sig_hup;
static int g_wake_wr = -1;

static void on_signal(int sig)
{
	int e = errno;
	if (sig == SIGHUP)
		g_sig_hup = 1;
	else if (sig != SIGCHLD)
		g_sig_term = sig;
	if (g_wake_wr >= 0)
		(void)!write(g_wake_wr, "x", 1);
	errno = e;
}

static void usage(FILE *f)
{
	fputs("usage: pqota supervise [--restart-sec S] [--watchdog-sec S] [--start-limit N]\n"
	      "                       -- COMMAND [ARG]...\n"
	      "\n"
	      "Runs COMMAND and restarts it whenever it fails (exits with a non-zero status or\n"
	      "is killed), like a systemd unit with Restart=on-failure, for machines without\n"
	      "systemd. COMMAND gets NOTIFY_SOCKET (a socket of this supervisor's) and, with\n"
	      "--watchdog-sec, WATCHDOG_USEC: `pqota server` and `pqota vehicle` report READY=1\n"
	      "there and then ping WATCHDOG=1; a command silent longer than the watchdog after\n"
	      "its READY=1 is killed (SIGKILL) and restarted. SIGTERM and SIGINT stop COMMAND\n"
	      "and the supervisor; SIGHUP is passed on (the server reloads).\n"
	      "  --restart-sec S   wait S seconds before a restart (default 1)\n"
	      "  --watchdog-sec S  the watchdog interval (default 0: no watchdog)\n"
	      "  --start-limit N   give up after N restarts within 60 s (default 5)\n"
	      "\n"
	      "Exit status: 0 (COMMAND exited 0, or was stopped), 1 (start limit reached or\n"
	      "COMMAND could not be started), 64 (usage).\n",
	      f);
}

/* The notification socket: abstract, named after this process; NOTIFY_SOCKET for the child. */
static int notify_open(sup *s)
{
	struct sockaddr_un a;
	socklen_t alen = 0;
	char name[80];
	int one = 1;
	snprintf(name, sizeof(name), "@pqota-supervise/%ld/%lld", (long)getpid(),
	         (long long)pq_mono_ns());
	int rc = pq_notify_sockaddr(name, &a, &alen);
	if (rc != PQ_OK)
		return rc;
	s->notify_fd = socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
	if (s->notify_fd < 0 ||
	    setsockopt(s->notify_fd, SOL_SOCKET, SO_PASSCRED, &one, sizeof(one)) != 0 ||
	    bind(s->notify_fd, (struct sockaddr *)&a, alen) != 0)
		return pq_err_set(PQ_ERR_IO, "notification socket: %s", strerror(errno));
	if (setenv("NOTIFY_SOCKET", name, 1) != 0)
		return pq_err_set(PQ_ERR_NOMEM, "NOTIFY_SOCKET");
	if (s->watchdog_ms > 0) {
		char us[32];
		snprintf(us, sizeof(us), "%lld", (long long)s->watchdog_ms * 1000);
		if (setenv("WATCHDOG_USEC", us, 1) != 0)
			return pq_err_set(PQ_ERR_NOMEM, "WATCHDOG_USEC");
	}
	return PQ_OK;
}

static int start_child(sup *s)
{
	pid_t pid = fork();
	if (pid < 0)
		return pq_err_set(PQ_ERR_IO, "fork: %s", strerror(errno));
	if (pid == 0) {
		char p[24];
		snprintf(p, sizeof(p), "%ld", (long)getpid());
		setenv("WATCHDOG_PID", p, 1);
		sigset_t none;
		sigemptyset(&none);
		sigprocmask(SIG_SETMASK, &none, NULL);
		execvp(s->cmd[0], s->cmd);
		fprintf(stderr, "pqota supervise: cannot run %s: %s\n", s->cmd[0], strerror(errno));
		_exit(127);
	}
	s->child = pid;
	s->ready = false;
	s->last_ping = pq_mono_ms();
	pq_log(PQ_LOG_INFO, LOGC, "started %s (pid %ld)", s->cmd[0], (long)pid);
	return PQ_OK;
}

/* Reads the pending notifications; only the child's (its credentials) count. */
static void read_notifications(sup *s)
{
	char buf[PQ_NOTIFY_MAX + 1];
	union {
		struct cmsghdr h;
		char b[CMSG_SPACE(sizeof(struct ucred))];
	} ctl;
	for (;;) {
		struct iovec iov = {.iov_base = buf, .iov_len = sizeof(buf) - 1};
		struct msghdr m = {.msg_iov = &iov,
		                   .msg_iovlen = 1,
		                   .msg_control = &ctl,
		                   .msg_controllen = sizeof(ctl)};
		ssize_t n = recvmsg(s->notify_fd, &m, MSG_DONTWAIT | MSG_CMSG_CLOEXEC);
		if (n < 0)
			return;
		struct cmsghdr *c = CMSG_FIRSTHDR(&m);
		struct ucred cred;
		if (!c || c->cmsg_type != SCM_CREDENTIALS ||
		    c->cmsg_len != CMSG_LEN(sizeof(struct ucred)))
			continue;
		memcpy(&cred, CMSG_DATA(c), sizeof(cred));
		if (cred.pid != s->child)
			continue; /* NotifyAccess=main */
		buf[n] = '\0';
		for (char *line = buf, *next; line && *line; line = next) {
			next = strchr(line, '\n');
			if (next)
				*next++ = '\0';
			if (strcmp(line, "WATCHDOG=1") == 0) {
				s->last_ping = pq_mono_ms();
			} else if (strcmp(line, "READY=1") == 0 && !s->ready) {
				s->ready = true;
				s->last_ping = pq_mono_ms();
				pq_log(PQ_LOG_INFO, LOGC, "pid %ld is ready", (long)s->child);
			} else if (strncmp(line, "STATUS=", 7) == 0) {
				pq_log(PQ_LOG_INFO, LOGC, "pid %ld: %.200s", (long)s->child,
				       line + 7);
			}
		}
	}
}

/* The child ended (STATUS): whether to restart it. */
static bool failed(const sup *s, int status)
{
	if (WIFEXITED(status)) {
		if (WEXITSTATUS(status) == 0) {
			pq_log(PQ_LOG_INFO, LOGC, "pid %ld exited 0", (long)s->child);
			return false;
		}
		pq_log(PQ_LOG_ERROR, LOGC, "pid %ld exited with status %d", (long)s->child,
		       WEXITSTATUS(status));
	} else {
		pq_log(PQ_LOG_ERROR, LOGC, "pid %ld was killed by signal %d", (long)s->child,
		       WTERMSIG(status));
	}
	return true;
}

/* Waits for signals, notifications and the child; returns the exit status. */
static int supervise(sup *s, int wake_rd)
{
	int64_t restart_at = -1, window[64] = {0};
	long restarts = 0;
	for (;;) {
		struct pollfd p[2] = {{.fd = wake_rd, .events = POLLIN},
		                      {.fd = s->notify_fd, .events = POLLIN}};
		char drain[64];
		if (poll(p, 2, 100) > 0 && (p[0].revents & POLLIN))
			while (read(wake_rd, drain, sizeof(drain)) > 0)
				;
		read_notifications(s);
		if (g_sig_hup && s->child > 0)
			kill(s->child, SIGHUP);
		g_sig_hup = 0;
		if (g_sig_term && s->child > 0) {
			kill(s->child, SIGTERM);
			int st;
			while (waitpid(s->child, &st, 0) < 0 && errno == EINTR)
				;
			pq_log(PQ_LOG_INFO, LOGC, "stopped (signal %d)", (int)g_sig_term);
			return CLI_EXIT_OK;
		}
		if (g_sig_term)
			return CLI_EXIT_OK;
		int64_t now = pq_mono_ms();
		if (s->child > 0 && s->ready && s->watchdog_ms > 0 &&
		    now - s->last_ping > s->watchdog_ms) {
			pq_log(PQ_LOG_ERROR, LOGC,
			       "pid %ld sent no WATCHDOG=1 for %lld ms: killing it", (long)s->child,
			       (long long)(now - s->last_ping));
			kill(s->child, SIGKILL);
			s->ready = false;
		}
		int st;
		if (s->child > 0 && waitpid(s->child, &st, WNOHANG) == s->child) {
			if (!failed(s, st))
				return CLI_EXIT_OK;
			s->child = 0;
			window[restarts % 64] = now;
			restarts++;
			/* the oldest of the last start_limit restarts was within the window */
			if (restarts >= s->start_limit &&
			    now - window[(restarts - s->start_limit) % 64] < START_WINDOW) {
				pq_log(PQ_LOG_ERROR, LOGC, "%ld restarts within %d s: giving up",
				       s->start_limit, START_WINDOW / 1000);
				return CLI_EXIT_FAIL;
			}
			pq_log(PQ_LOG_INFO, LOGC, "restarting in %ld ms", s->restart_ms);
			restart_at = now + s->restart_ms;
		}
		if (s->child == 0 && restart_at >= 0 && now >= restart_at) {
			restart_at = -1;
			if (start_child(s) != PQ_OK)
				return cli_error(PQ_ERR_IO, "restart");
		}
	}
}

static int parse_args(int argc, char **argv, sup *s)
{
	static const struct option opts[] = {{"restart-sec", required_argument, NULL, 'r'},
	                                     {"watchdog-sec", required_argument, NULL, 'w'},
	                                     {"start-limit", required_argument, NULL, 'l'},
	                                     {"help", no_argument, NULL, 'h'},
	                                     {NULL, 0, NULL, 0}};
	long v;
	int c;
	optind = 1;
	while ((c = getopt_long(argc, argv, "+h", opts, NULL)) != -1) {
		if (c == 'h') {
			usage(stdout);
			return CLI_EXIT_OK;
		}
		if (c == '?' ||
		    cli_parse_long(optarg, c == 'l' ? 1 : 0, c == 'l' ? 64 : 3600, &v) != PQ_OK)
			return c == '?' ? cli_usage_error("supervise", "bad option")
			                : cli_usage_error("supervise", "--%s: %s",
			                                  c == 'r'   ? "restart-sec"
			                                  : c == 'w' ? "watchdog-sec"
			                                             : "start-limit",
			                                  pq_err_detail());
		if (c == 'r')
			s->restart_ms = v * 1000;
		else if (c == 'w')
			s->watchdog_ms = v * 1000;
		else
			s->start_limit = v;
	}
	if (optind >= argc)
		return cli_usage_error("supervise",
		                       "no command given (pqota supervise -- CMD ...)");
	if (argc - optind > SUPERVISE_MAX)
		return cli_usage_error("supervise", "more than %d arguments", SUPERVISE_MAX);
	s->cmd = argv + optind;
	return -1;
}

int cmd_supervise(int argc, char **argv)
{
	sup s = {.restart_ms = 1000, .start_limit = 5, .notify_fd = -1};
	int st = parse_args(argc, argv, &s);
	if (st >= 0)
		return st;
	int fds[2];
	if (pipe2(fds, O_CLOEXEC | O_NONBLOCK) != 0)
		return cli_error(PQ_ERR_IO, "pipe: %s", strerror(errno));
	g_wake_wr = fds[1];
	struct sigaction sa;
	memset(&sa, 0, sizeof(sa));
	sa.sa_handler = on_signal;
	sa.sa_flags = SA_RESTART | SA_NOCLDSTOP;
	sigaction(SIGTERM, &sa, NULL);
	sigaction(SIGINT, &sa, NULL);
	sigaction(SIGHUP, &sa, NULL);
	sigaction(SIGCHLD, &sa, NULL);
	int rc = notify_open(&s);
	if (rc == PQ_OK)
		rc = start_child(&s);
	st = rc == PQ_OK ? supervise(&s, fds[0]) : cli_error(rc, "supervise");
	g_wake_wr = -1;
	close(fds[0]);
	close(fds[1]);
	if (s.notify_fd >= 0)
		close(s.notify_fd);
	return st == CLI_EXIT_ERROR ? CLI_EXIT_FAIL : st;
}
