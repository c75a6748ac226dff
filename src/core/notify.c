/* notify.c: sd_notify without libsystemd (notify.h): one datagram per notification. */
#include "core/notify.h"

#include <errno.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

int pq_notify_sockaddr(const char *name, struct sockaddr_un *addr, socklen_t *len)
{
	size_t n = strlen(name);
	if (name[0] != '/' && name[0] != '@')
		return pq_err_set(PQ_ERR_INVAL,
		                  "NOTIFY_SOCKET '%.64s' is neither a path nor an abstract name",
		                  name);
	if (n >= sizeof(addr->sun_path))
		return pq_err_set(PQ_ERR_INVAL, "NOTIFY_SOCKET is too long (%zu bytes)", n);
	memset(addr, 0, sizeof(*addr));
	addr->sun_family = AF_UNIX;
	memcpy(addr->sun_path, name, n);
	if (name[0] == '@')
		addr->sun_path[0] = '\0'; /* abstract: no terminating NUL counts */
	else
		n++;
	*len = (socklen_t)(offsetof(struct sockaddr_un, sun_path) + n);
	return PQ_OK;
}

int pq_notify(const char *state)
{
	const char *name = getenv("NOTIFY_SOCKET");
	struct sockaddr_un addr;
	socklen_t alen = 0;
	size_t n = strlen(state);
	if (!name || !name[0])
		return PQ_OK;
	if (n > PQ_NOTIFY_MAX)
		return pq_err_set(PQ_ERR_RANGE, "notification of %zu bytes (at most %d)", n,
		                  PQ_NOTIFY_MAX);
	int rc = pq_notify_sockaddr(name, &addr, &alen);
	if (rc != PQ_OK)
		return rc;
	int fd = socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0);
	if (fd < 0)
		return pq_err_set(PQ_ERR_IO, "notify socket: %s", strerror(errno));
	ssize_t w;
	do
		w = sendto(fd, state, n, MSG_NOSIGNAL, (struct sockaddr *)&addr, alen);
	while (w < 0 && errno == EINTR);
	int e = errno;
	close(fd);
	if (w != (ssize_t)n)
		return pq_err_set(PQ_ERR_IO, "notifying %s: %s", name,
		                  w < 0 ? strerror(e) : "short send");
	return PQ_OK;
}

int pq_notifyf(const char *fmt, ...)
{
	char state[PQ_NOTIFY_MAX + 2];
	va_list ap;
	va_start(ap, fmt);
	int n = vsnprintf(state, sizeof(state), fmt, ap);
	va_end(ap);
	if (n < 0 || (size_t)n > PQ_NOTIFY_MAX)
		return pq_err_set(PQ_ERR_RANGE, "notification too long (at most %d bytes)",
		                  PQ_NOTIFY_MAX);
	return pq_notify(state);
}

/* A positive decimal number without sign, spaces or overflow; 0 when S is not one. */
static uint64_t parse_u64(const char *s)
{
	uint64_t v = 0;
	if (!s || !*s)
		return 0;
	for (; *s; s++) {
		if (*s < '0' || *s > '9' || v > (UINT64_MAX - 9) / 10)
			return 0;
		v = v * 10 + (uint64_t)(*s - '0');
	}
	return v;
}

uint64_t pq_notify_watchdog_usec(void)
{
	const char *pid = getenv("WATCHDOG_PID");
	if (pid && *pid && parse_u64(pid) != (uint64_t)getpid())
		return 0;
	return parse_u64(getenv("WATCHDOG_USEC"));
}
