/* sock.c: blocking TCP connect within a deadline, socket timeouts. */
#include "tls/sock.h"

#include <errno.h>
#include <fcntl.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <unistd.h>

void tls_sock_timeouts(int fd, int ms)
{
	struct timeval tv = {.tv_sec = ms / 1000, .tv_usec = (ms % 1000) * 1000};
	(void)setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
	(void)setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof(tv));
}

int tls_tcp_connect(const char *host, const char *port, int timeout_ms, int *out)
{
	struct addrinfo hints = {0}, *ai = NULL, *p;
	int fd = -1, rc, last_errno = 0;
	hints.ai_socktype = SOCK_STREAM;
	hints.ai_family = AF_UNSPEC;
	rc = getaddrinfo(host, port, &hints, &ai);
	if (rc != 0)
		return pq_err_set(PQ_ERR_NOTFOUND, "resolving %s:%s: %s", host, port,
		                  gai_strerror(rc));
	for (p = ai; p; p = p->ai_next) {
		fd = socket(p->ai_family, p->ai_socktype | SOCK_CLOEXEC, p->ai_protocol);
		if (fd < 0)
			continue;
		int fl = fcntl(fd, F_GETFL);
		(void)fcntl(fd, F_SETFL, fl | O_NONBLOCK);
		if (connect(fd, p->ai_addr, p->ai_addrlen) == 0 || errno == EINPROGRESS) {
			struct pollfd pfd = {.fd = fd, .events = POLLOUT};
			int err = 0;
			socklen_t el = sizeof(err);
			if (poll(&pfd, 1, timeout_ms) == 1 &&
			    getsockopt(fd, SOL_SOCKET, SO_ERROR, &err, &el) == 0 && err == 0) {
				(void)fcntl(fd, F_SETFL, fl);
				int one = 1;
				(void)setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
				tls_sock_timeouts(fd, timeout_ms);
				*out = fd;
				freeaddrinfo(ai);
				return PQ_OK;
			}
			last_errno = err ? err : ETIMEDOUT;
		} else {
			last_errno = errno;
		}
		close(fd);
		fd = -1;
	}
	freeaddrinfo(ai);
	return pq_err_set(last_errno == ETIMEDOUT ? PQ_ERR_TIMEOUT : PQ_ERR_IO,
	                  "connecting to %s:%s: %s", host, port, strerror(last_errno));
}
