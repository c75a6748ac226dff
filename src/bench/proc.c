/* proc.c: measured child processes (an external tool through fork and exec, or a function in
 * a forked child), the peak RSS of this process, and finding tools in $PATH. */
#include "bench/bench.h"

#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include "core/buf.h"
#include "core/time.h"

#define DETAIL_MAX 1024 /* a forked child's failure detail */

static double child_timeout_s; /* 0: none (bench_set_timeout) */

void bench_set_timeout(double secs)
{
	child_timeout_s = secs > 0 ? secs : 0;
}

long bench_peak_rss_kib(void)
{
	struct rusage ru;
	return getrusage(RUSAGE_SELF, &ru) == 0 ? ru.ru_maxrss : -1;
}

void bench_reset_peak_rss(void)
{
	int fd = open("/proc/self/clear_refs", O_WRONLY | O_CLOEXEC);
	if (fd >= 0) {
		ssize_t n = write(fd, "5", 1);
		(void)n;
		close(fd);
	}
}

bool bench_find_tool(const char *name, char *out, size_t len)
{
	const char *path = getenv("PATH");
	if (!path || !*path)
		path = "/usr/local/bin:/usr/bin:/bin";
	while (*path) {
		size_t dl = strcspn(path, ":");
		struct stat st;
		if (dl > 0 && (size_t)snprintf(out, len, "%.*s/%s", (int)dl, path, name) < len &&
		    stat(out, &st) == 0 && S_ISREG(st.st_mode) && access(out, X_OK) == 0)
			return true;
		path += dl;
		if (*path == ':')
			path++;
	}
	return false;
}

/* Waits until pid ends or the timeout passes (then kills it); true when it was killed. A
 * kernel without pidfd_open (< 5.3) waits without a deadline. */
static bool deadline_kill(pid_t pid, double t0)
{
	if (child_timeout_s <= 0)
		return false;
	int fd = (int)syscall(SYS_pidfd_open, pid, 0);
	if (fd < 0)
		return false;
	bool killed = false;
	for (;;) {
		double left = child_timeout_s - (pq_mono_s() - t0);
		struct pollfd p = {.fd = fd, .events = POLLIN};
		int n = left > 0 ? poll(&p, 1, (int)(left * 1000) + 1) : 0;
		if (n > 0 || (n < 0 && errno != EINTR))
			break;
		if (n == 0 && pq_mono_s() - t0 >= child_timeout_s) {
			killed = kill(pid, SIGKILL) == 0;
			break;
		}
	}
	close(fd);
	return killed;
}

/* Reaps pid, filling *cost from t0 (pq_mono_s at its start) and its rusage. */
static int wait_child(pid_t pid, const char *what, double t0, bench_proc_cost *cost)
{
	struct rusage ru;
	int st;
	bool killed = deadline_kill(pid, t0);
	while (wait4(pid, &st, 0, &ru) < 0)
		if (errno != EINTR)
			return pq_err_set(PQ_ERR_IO, "waiting for %s: %s", what, strerror(errno));
	cost->secs = pq_mono_s() - t0;
	cost->rss_kib = ru.ru_maxrss;
	if (killed)
		return pq_err_set(PQ_ERR_TIMEOUT, "%s stopped after the %.0f s time limit", what,
		                  child_timeout_s);
	if (WIFSIGNALED(st))
		return pq_err_set(PQ_ERR_IO, "%s was killed by signal %d", what, WTERMSIG(st));
	if (!WIFEXITED(st) || WEXITSTATUS(st) != 0)
		return pq_err_set(PQ_ERR_IO, "%s exited with status %d", what,
		                  WIFEXITED(st) ? WEXITSTATUS(st) : -1);
	return PQ_OK;
}

int bench_run_tool(char *const argv[], bench_proc_cost *cost)
{
	/* fork + exec, not posix_spawn: a vfork-style spawn execs from this process's memory, and
	 * Linux then carries this process's peak RSS into the tool's ru_maxrss; a forked child
	 * starts with only the anonymous pages it copied (bench_fork_baseline_kib) */
	int err[2];
	if (pipe2(err, O_CLOEXEC) != 0)
		return pq_err_set(PQ_ERR_IO, "pipe: %s", strerror(errno));
	fflush(stdout);
	fflush(stderr);
	double t0 = pq_mono_s();
	pid_t pid = fork();
	if (pid < 0) {
		close(err[0]);
		close(err[1]);
		return pq_err_set(PQ_ERR_IO, "fork: %s", strerror(errno));
	}
	if (pid == 0) {
		int fd = open("/dev/null", O_WRONLY | O_CLOEXEC);
		if (fd >= 0)
			dup2(fd, STDOUT_FILENO);
		execv(argv[0], argv);
		int e = errno;
		ssize_t w = write(err[1], &e, sizeof(e));
		(void)w;
		_exit(127);
	}
	close(err[1]);
	int rc = wait_child(pid, argv[0], t0, cost), e = 0;
	if (read(err[0], &e, sizeof(e)) == (ssize_t)sizeof(e))
		rc = pq_err_set(PQ_ERR_IO, "cannot run %s: %s", argv[0], strerror(e));
	close(err[0]);
	return rc;
}

/* The child's side: runs fn and, on failure, writes its detail to fd; never returns. */
_Noreturn static void child_run(bench_child_fn fn, const void *arg, int fd)
{
	int rc = fn(arg);
	if (rc != PQ_OK) {
		const char *d = pq_err_detail();
		size_t n = strlen(d);
		ssize_t w = write(fd, d, n < DETAIL_MAX - 1 ? n : DETAIL_MAX - 1);
		(void)w;
	}
	_exit(rc == PQ_OK ? 0 : 1);
}

/* Reads what the child writes to fd until it closes it, keeping the first DETAIL_MAX - 1
 * bytes in detail (NUL-terminated); returns how many were kept. */
static size_t read_detail(int fd, char detail[DETAIL_MAX])
{
	pq_buf b;
	pq_buf_init_fixed(&b, detail, DETAIL_MAX);
	for (;;) {
		char tmp[256];
		ssize_t n = read(fd, tmp, sizeof(tmp));
		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0)
			break;
		pq_buf_add(&b, tmp, (size_t)n);
	}
	return b.len;
}

int bench_run_forked(bench_child_fn fn, const void *arg, bench_proc_cost *cost)
{
	char detail[DETAIL_MAX];
	int p[2];
	if (pipe2(p, O_CLOEXEC) != 0)
		return pq_err_set(PQ_ERR_IO, "pipe: %s", strerror(errno));
	/* nothing buffered may be written twice (the child exits with _exit, but be sure) */
	fflush(stdout);
	fflush(stderr);
	double t0 = pq_mono_s();
	pid_t pid = fork();
	if (pid < 0) {
		close(p[0]);
		close(p[1]);
		return pq_err_set(PQ_ERR_IO, "fork: %s", strerror(errno));
	}
	if (pid == 0) {
		close(p[0]);
		child_run(fn, arg, p[1]);
	}
	close(p[1]);
	/* the detail is at most DETAIL_MAX bytes, which the pipe holds: read it once reaped */
	int rc = wait_child(pid, "pqota", t0, cost);
	size_t got = read_detail(p[0], detail);
	close(p[0]);
	if (rc != PQ_OK && rc != PQ_ERR_TIMEOUT && got)
		rc = pq_err_set(PQ_ERR_VERIFY, "%s", detail);
	return rc;
}

static int noop(const void *arg)
{
	(void)arg;
	return PQ_OK;
}

long bench_fork_baseline_kib(void)
{
	bench_proc_cost c = {0};
	return bench_run_forked(noop, NULL, &c) == PQ_OK ? c.rss_kib : -1;
}
