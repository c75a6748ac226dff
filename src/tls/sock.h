/* sock.h: the blocking TCP helpers of the TLS layer: connect within a deadline, socket
 * timeouts. Used by the probe (`pqota tls check`) and by libpqota-tls. */
#ifndef PQOTA_TLS_SOCK_H
#define PQOTA_TLS_SOCK_H

#include "core/err.h"

/* Connects to host:port (any address family getaddrinfo returns, in its order) within
 * timeout_ms per address; on success *out is a blocking socket with TCP_NODELAY, close-on-
 * exec and send/receive timeouts of timeout_ms. PQ_ERR_NOTFOUND when the name does not
 * resolve, PQ_ERR_TIMEOUT when no address answered in time, PQ_ERR_IO otherwise. */
int tls_tcp_connect(const char *host, const char *port, int timeout_ms, int *out) PQ_MUST_CHECK;

/* Sets the send and receive timeouts of a socket (0 = wait forever); a blocked read or write
 * then fails with EAGAIN, which OpenSSL reports as SSL_ERROR_WANT_READ/WRITE. */
void tls_sock_timeouts(int fd, int ms);

#endif
