/* test_notify.c: the service-manager notifications (core/notify.h) against real AF_UNIX
 * datagram sockets the test binds: a path and an abstract name, the variables unset, names
 * and messages refused, and the watchdog interval's parsing. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include "core/notify.h"
#include "testutil.h"

/* A datagram socket bound to NAME ("/path" or "@abstract"). */
static int listen_on(const char *name)
{
	struct sockaddr_un a = {.sun_family = AF_UNIX};
	size_t n = strlen(name);
	assert_true(n < sizeof(a.sun_path));
	memcpy(a.sun_path, name, n);
	if (name[0] == '@')
		a.sun_path[0] = '\0';
	else
		n++;
	int fd = socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0);
	assert_true(fd >= 0);
	assert_int_equal(bind(fd, (struct sockaddr *)&a,
	                      (socklen_t)(offsetof(struct sockaddr_un, sun_path) + n)),
	                 0);
	return fd;
}

/* The next datagram on FD, as a string. */
static void expect_datagram(int fd, const char *want)
{
	char buf[PQ_NOTIFY_MAX + 1];
	ssize_t n = recv(fd, buf, sizeof(buf) - 1, MSG_DONTWAIT);
	assert_true(n >= 0);
	buf[n] = '\0';
	assert_string_equal(buf, want);
}

static void test_path_socket(void **state)
{
	(void)state;
	char *dir = tu_tmpdir("notify");
	char path[512];
	tu_join(path, sizeof(path), dir, "notify.sock");
	int fd = listen_on(path);
	setenv("NOTIFY_SOCKET", path, 1);
	assert_int_equal(pq_notify("READY=1\nSTATUS=listening"), PQ_OK);
	expect_datagram(fd, "READY=1\nSTATUS=listening");
	assert_int_equal(pq_notifyf("STATUS=%d workers", 4), PQ_OK);
	expect_datagram(fd, "STATUS=4 workers");
	close(fd);
	/* nobody listens any more: an error naming the socket */
	unlink(path);
	assert_int_equal(pq_notify("WATCHDOG=1"), PQ_ERR_IO);
	unsetenv("NOTIFY_SOCKET");
	tu_rmtree(dir);
	free(dir);
}

static void test_abstract_socket(void **state)
{
	(void)state;
	char name[64];
	snprintf(name, sizeof(name), "@pqota-test-notify/%ld", (long)getpid());
	int fd = listen_on(name);
	setenv("NOTIFY_SOCKET", name, 1);
	assert_int_equal(pq_notify("WATCHDOG=1"), PQ_OK);
	expect_datagram(fd, "WATCHDOG=1");
	assert_int_equal(pq_notify("STOPPING=1"), PQ_OK);
	expect_datagram(fd, "STOPPING=1");
	unsetenv("NOTIFY_SOCKET");
	close(fd);
}

static void test_refusals(void **state)
{
	(void)state;
	unsetenv("NOTIFY_SOCKET");
	assert_int_equal(pq_notify("READY=1"), PQ_OK); /* no manager: nothing to do */
	setenv("NOTIFY_SOCKET", "", 1);
	assert_int_equal(pq_notify("READY=1"), PQ_OK);
	setenv("NOTIFY_SOCKET", "relative/path", 1);
	assert_int_equal(pq_notify("READY=1"), PQ_ERR_INVAL);
	char longname[200];
	memset(longname, 'a', sizeof(longname) - 1);
	longname[0] = '/';
	longname[sizeof(longname) - 1] = '\0';
	setenv("NOTIFY_SOCKET", longname, 1);
	assert_int_equal(pq_notify("READY=1"), PQ_ERR_INVAL);
	setenv("NOTIFY_SOCKET", "@pqota-test-notify-unused", 1);
	char big[PQ_NOTIFY_MAX + 8];
	memset(big, 'x', sizeof(big) - 1);
	big[sizeof(big) - 1] = '\0';
	assert_int_equal(pq_notify(big), PQ_ERR_RANGE);
	assert_int_equal(pq_notifyf("%s", big), PQ_ERR_RANGE);
	unsetenv("NOTIFY_SOCKET");
}

static void test_watchdog_usec(void **state)
{
	(void)state;
	char pid[32];
	unsetenv("WATCHDOG_USEC");
	unsetenv("WATCHDOG_PID");
	assert_int_equal(pq_notify_watchdog_usec(), 0);
	setenv("WATCHDOG_USEC", "30000000", 1);
	assert_int_equal(pq_notify_watchdog_usec(), 30000000);
	snprintf(pid, sizeof(pid), "%ld", (long)getpid());
	setenv("WATCHDOG_PID", pid, 1);
	assert_int_equal(pq_notify_watchdog_usec(), 30000000);
	snprintf(pid, sizeof(pid), "%ld", (long)getpid() + 1);
	setenv("WATCHDOG_PID", pid, 1); /* meant for another process */
	assert_int_equal(pq_notify_watchdog_usec(), 0);
	unsetenv("WATCHDOG_PID");
	const char *bad[] = {"", "-5", "12s", " 5", "99999999999999999999999", NULL};
	for (int i = 0; bad[i]; i++) {
		setenv("WATCHDOG_USEC", bad[i], 1);
		assert_int_equal(pq_notify_watchdog_usec(), 0);
	}
	unsetenv("WATCHDOG_USEC");
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_path_socket),
	    cmocka_unit_test(test_abstract_socket),
	    cmocka_unit_test(test_refusals),
	    cmocka_unit_test(test_watchdog_usec),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
