/* tlslib_conn.c: libpqota-tls connections: accept, connect, read, write, shutdown, close,
 * and the session and peer facts fixed at the handshake. Blocking sockets, each bounded by
 * its context's timeout; SIGPIPE is held back around every call that may write. */
#include "tls/tlslib.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/x509.h>

#include "core/text.h"
#include "tls/sock.h"

/* ---- SIGPIPE: a write to a peer that has gone must fail, not end the process ---------- */

/* Blocks SIGPIPE in this thread for the duration of one OpenSSL call; a SIGPIPE the call
 * raises stays pending, and sigpipe_end consumes it (only if it was not pending before:
 * then it is someone else's) before restoring the mask. */
typedef struct {
	sigset_t old;
	bool pending_before;
} sigpipe_guard;

static void sigpipe_begin(sigpipe_guard *g)
{
	sigset_t s, pending;
	sigemptyset(&s);
	sigaddset(&s, SIGPIPE);
	pthread_sigmask(SIG_BLOCK, &s, &g->old);
	g->pending_before = sigpending(&pending) == 0 && sigismember(&pending, SIGPIPE) == 1;
}

static void sigpipe_end(sigpipe_guard *g)
{
	sigset_t s, pending;
	sigemptyset(&s);
	sigaddset(&s, SIGPIPE);
	if (!g->pending_before && sigpending(&pending) == 0 &&
	    sigismember(&pending, SIGPIPE) == 1) {
		const struct timespec zero = {0, 0};
		while (sigtimedwait(&s, NULL, &zero) < 0 && errno == EINTR)
			;
	}
	pthread_sigmask(SIG_SETMASK, &g->old, NULL);
}

/* ---- failures ------------------------------------------------------------------------- */

/* The status of an SSL call that returned ret <= 0, with its detail recorded; `what` says
 * what was being done ("handshake", "read", "write"). Clears OpenSSL's error queue. */
static int ssl_failure(pqota_tls_conn *c, int ret, const char *what)
{
	int saved_errno = errno;
	int e = SSL_get_error(c->ssl, ret);
	unsigned long q = ERR_peek_last_error();
	bool handshake = strcmp(what, "handshake") == 0;
	char reason[256];

	if (e == SSL_ERROR_WANT_READ || e == SSL_ERROR_WANT_WRITE ||
	    (e == SSL_ERROR_SYSCALL && (saved_errno == EAGAIN || saved_errno == EWOULDBLOCK))) {
		ERR_clear_error();
		return tlslib__fail(PQOTA_TLS_ERR_TIMEOUT, "%s: no progress within %d ms", what,
		                    c->timeout_ms);
	}
	c->failed = true;
	if (e == SSL_ERROR_SSL && ERR_GET_REASON(q) == SSL_R_UNEXPECTED_EOF_WHILE_READING) {
		ERR_clear_error();
		return tlslib__fail(handshake ? PQOTA_TLS_ERR_HANDSHAKE : PQOTA_TLS_ERR_EOF,
		                    "%s: the peer closed the connection without close_notify",
		                    what);
	}
	if (e == SSL_ERROR_SYSCALL && saved_errno != 0 && q == 0)
		return tlslib__fail(PQOTA_TLS_ERR_IO, "%s: %s", what, strerror(saved_errno));
	if (q && ERR_SYSTEM_ERROR(q)) { /* OpenSSL 3 queues the socket's errno */
		ERR_clear_error();
		return tlslib__fail(PQOTA_TLS_ERR_IO, "%s: %s", what, strerror(ERR_GET_REASON(q)));
	}
	errno = saved_errno;
	tls_ssl_reason(c->ssl, ret, reason, sizeof(reason));
	long v = SSL_get_verify_result(c->ssl);
	if (handshake && v != X509_V_OK)
		return tlslib__fail(PQOTA_TLS_ERR_HANDSHAKE, "handshake: %s (%s)",
		                    X509_verify_cert_error_string(v), reason);
	return tlslib__fail(handshake ? PQOTA_TLS_ERR_HANDSHAKE : PQOTA_TLS_ERR_TLS, "%s: %s", what,
	                    reason);
}

/* ---- the session facts ---------------------------------------------------------------- */

static void peer_facts(pqota_tls_conn *c)
{
	X509 *peer = SSL_get0_peer_certificate(c->ssl);
	unsigned char md[EVP_MAX_MD_SIZE];
	unsigned int n = 0;

	tls_conn_info(c->ssl, &c->info);
	if (!peer)
		return;
	c->has_peer = true;
	tls_name_line(X509_get_subject_name(peer), c->peer_subject, sizeof(c->peer_subject));
	if (X509_digest(peer, EVP_sha256(), md, &n) == 1 && n == 32)
		pq_hex_encode(md, n, c->peer_sha256);
	ERR_clear_error();
}

/* ---- making connections --------------------------------------------------------------- */

/* A socket the caller gives must be open and blocking: on a non-blocking one, every
 * would-block would read as a timeout. */
static int caller_fd(int fd)
{
	int fl = fd < 0 ? -1 : fcntl(fd, F_GETFL);
	if (fl < 0)
		return tlslib__fail(PQOTA_TLS_ERR_INVAL, "bad socket %d", fd);
	if (fl & O_NONBLOCK)
		return tlslib__fail(PQOTA_TLS_ERR_INVAL,
		                    "socket %d is non-blocking: libpqota-tls needs a blocking one",
		                    fd);
	return PQOTA_TLS_OK;
}

static int conn_new(pqota_tls_ctx *ctx, int fd, bool owns_fd, pqota_tls_conn **out)
{
	pqota_tls_conn *c = calloc(1, sizeof(*c));
	if (!c)
		return tlslib__fail(PQOTA_TLS_ERR_NOMEM, "connection");
	c->fd = fd;
	c->owns_fd = owns_fd;
	c->timeout_ms = ctx->timeout_ms;
	c->ssl = SSL_new(ctx->ssl);
	if (!c->ssl || SSL_set_fd(c->ssl, fd) != 1) {
		SSL_free(c->ssl);
		free(c);
		ERR_clear_error();
		return tlslib__fail(PQOTA_TLS_ERR_NOMEM, "TLS connection object");
	}
	tls_sock_timeouts(fd, ctx->timeout_ms);
	*out = c;
	return PQOTA_TLS_OK;
}

/* Frees a connection whose handshake failed; closes the socket only if it owns it. */
static void conn_discard(pqota_tls_conn *c)
{
	SSL_free(c->ssl);
	if (c->owns_fd)
		close(c->fd);
	free(c);
	ERR_clear_error();
}

static int handshake(pqota_tls_ctx *ctx, pqota_tls_conn *c, pqota_tls_conn **out)
{
	sigpipe_guard g;
	sigpipe_begin(&g);
	int r = ctx->server ? SSL_accept(c->ssl) : SSL_connect(c->ssl);
	int rc = r == 1 ? PQOTA_TLS_OK : ssl_failure(c, r, "handshake");
	sigpipe_end(&g);
	if (rc != PQOTA_TLS_OK) {
		conn_discard(c);
		return rc;
	}
	peer_facts(c);
	*out = c;
	return PQOTA_TLS_OK;
}

static int start_args(pqota_tls_ctx *ctx, bool server, pqota_tls_conn **out)
{
	if (!out)
		return tlslib__fail(PQOTA_TLS_ERR_INVAL,
		                    "no place for the connection (out is NULL)");
	*out = NULL;
	if (!ctx)
		return tlslib__fail(PQOTA_TLS_ERR_INVAL, "no context");
	if (ctx->server != server)
		return tlslib__fail(PQOTA_TLS_ERR_INVAL, "a %s context cannot %s",
		                    ctx->server ? "server" : "client",
		                    server ? "accept" : "connect");
	return PQOTA_TLS_OK;
}

PQOTA_TLS_API int pqota_tls_accept_fd(pqota_tls_ctx *ctx, int fd, pqota_tls_conn **out)
{
	pqota_tls_conn *c = NULL;
	int rc = start_args(ctx, true, out);
	if (rc != PQOTA_TLS_OK)
		return rc;
	if ((rc = caller_fd(fd)) != PQOTA_TLS_OK)
		return rc;
	rc = conn_new(ctx, fd, false, &c);
	if (rc != PQOTA_TLS_OK)
		return rc;
	return handshake(ctx, c, out);
}

PQOTA_TLS_API int pqota_tls_accept(pqota_tls_ctx *ctx, int listen_fd, pqota_tls_conn **out)
{
	pqota_tls_conn *c = NULL;
	int rc = start_args(ctx, true, out);
	if (rc != PQOTA_TLS_OK)
		return rc;
	if (listen_fd < 0)
		return tlslib__fail(PQOTA_TLS_ERR_INVAL, "bad listening socket %d", listen_fd);
	int fd = accept4(listen_fd, NULL, NULL, SOCK_CLOEXEC);
	if (fd < 0)
		return tlslib__fail(PQOTA_TLS_ERR_IO, "accept: %s", strerror(errno));
	int one = 1;
	(void)setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
	rc = conn_new(ctx, fd, true, &c);
	if (rc != PQOTA_TLS_OK) {
		close(fd);
		return rc;
	}
	return handshake(ctx, c, out);
}

PQOTA_TLS_API int pqota_tls_connect_fd(pqota_tls_ctx *ctx, int fd, const char *server_name,
                                       pqota_tls_conn **out)
{
	pqota_tls_conn *c = NULL;
	int rc = start_args(ctx, false, out);
	if (rc != PQOTA_TLS_OK)
		return rc;
	if ((rc = caller_fd(fd)) != PQOTA_TLS_OK)
		return rc;
	if (!server_name || !*server_name)
		return tlslib__fail(PQOTA_TLS_ERR_INVAL, "the server name to verify is required");
	rc = conn_new(ctx, fd, false, &c);
	if (rc != PQOTA_TLS_OK)
		return rc;
	if (tls_set_peer_name(c->ssl, server_name) != PQ_OK) {
		conn_discard(c);
		return PQOTA_TLS_ERR_INVAL;
	}
	return handshake(ctx, c, out);
}

/* The public status of a tls_tcp_connect failure. */
static int connect_status(int rc)
{
	switch (rc) {
	case PQ_ERR_TIMEOUT:
		return PQOTA_TLS_ERR_TIMEOUT;
	case PQ_ERR_NOMEM:
		return PQOTA_TLS_ERR_NOMEM;
	default:
		return PQOTA_TLS_ERR_IO;
	}
}

PQOTA_TLS_API int pqota_tls_connect(pqota_tls_ctx *ctx, const char *host, const char *port,
                                    const char *server_name, pqota_tls_conn **out)
{
	pqota_tls_conn *c = NULL;
	int fd = -1;
	int rc = start_args(ctx, false, out);
	if (rc != PQOTA_TLS_OK)
		return rc;
	if (!host || !*host || !port || !*port)
		return tlslib__fail(PQOTA_TLS_ERR_INVAL, "connect needs a host and a port");
	if (!server_name || !*server_name)
		server_name = host;
	rc = tls_tcp_connect(host, port, ctx->timeout_ms, &fd);
	if (rc != PQ_OK)
		return connect_status(rc);
	rc = conn_new(ctx, fd, true, &c);
	if (rc != PQOTA_TLS_OK) {
		close(fd);
		return rc;
	}
	if (tls_set_peer_name(c->ssl, server_name) != PQ_OK) {
		conn_discard(c);
		return PQOTA_TLS_ERR_INVAL;
	}
	return handshake(ctx, c, out);
}

/* ---- I/O ------------------------------------------------------------------------------ */

/* Whether c may still read or write; the detail says why not. */
static int io_ready(const pqota_tls_conn *c)
{
	if (!c)
		return tlslib__fail(PQOTA_TLS_ERR_INVAL, "no connection");
	if (c->shut)
		return tlslib__fail(PQOTA_TLS_ERR_CLOSED, "the connection was shut down");
	if (c->failed)
		return tlslib__fail(PQOTA_TLS_ERR_CLOSED, "the connection failed earlier");
	return PQOTA_TLS_OK;
}

PQOTA_TLS_API long pqota_tls_read(pqota_tls_conn *c, void *buf, size_t len)
{
	size_t got = 0;
	int rc = io_ready(c);
	if (rc != PQOTA_TLS_OK)
		return rc;
	if (!buf || len == 0)
		return tlslib__fail(PQOTA_TLS_ERR_INVAL, "read needs a buffer of at least 1 byte");
	if (len > LONG_MAX)
		len = LONG_MAX;
	sigpipe_guard g;
	sigpipe_begin(&g);
	int r = SSL_read_ex(c->ssl, buf, len, &got);
	if (r != 1) {
		if (SSL_get_error(c->ssl, r) == SSL_ERROR_ZERO_RETURN) {
			ERR_clear_error();
			got = 0; /* close_notify: the clean end of the stream */
		} else {
			rc = ssl_failure(c, r, "read");
		}
	}
	sigpipe_end(&g);
	return rc != PQOTA_TLS_OK ? rc : (long)got;
}

PQOTA_TLS_API long pqota_tls_write(pqota_tls_conn *c, const void *buf, size_t len)
{
	size_t put = 0;
	int rc = io_ready(c);
	if (rc != PQOTA_TLS_OK)
		return rc;
	if (len == 0)
		return 0;
	if (!buf)
		return tlslib__fail(PQOTA_TLS_ERR_INVAL, "write of %zu bytes from NULL", len);
	if (len > LONG_MAX)
		return tlslib__fail(PQOTA_TLS_ERR_INVAL, "write of %zu bytes: too long", len);
	sigpipe_guard g;
	sigpipe_begin(&g);
	/* blocking, without SSL_MODE_ENABLE_PARTIAL_WRITE: all of it, or a failure */
	int r = SSL_write_ex(c->ssl, buf, len, &put);
	if (r != 1) {
		rc = ssl_failure(c, r, "write");
		c->failed = true; /* a record may be half sent: the stream is unusable */
	}
	sigpipe_end(&g);
	return rc != PQOTA_TLS_OK ? rc : (long)put;
}

PQOTA_TLS_API int pqota_tls_shutdown(pqota_tls_conn *c)
{
	if (!c)
		return tlslib__fail(PQOTA_TLS_ERR_INVAL, "no connection");
	if (c->shut)
		return PQOTA_TLS_OK;
	c->shut = true;
	if (c->failed)
		return PQOTA_TLS_OK; /* OpenSSL forbids close_notify after a fatal error */
	sigpipe_guard g;
	sigpipe_begin(&g);
	int r = SSL_shutdown(c->ssl); /* 0: ours sent, the peer's not awaited */
	int rc = r >= 0 ? PQOTA_TLS_OK : ssl_failure(c, r, "shutdown");
	sigpipe_end(&g);
	return rc;
}

PQOTA_TLS_API void pqota_tls_close(pqota_tls_conn *c)
{
	if (!c)
		return;
	(void)pqota_tls_shutdown(c);
	conn_discard(c);
}

PQOTA_TLS_API int pqota_tls_fd(const pqota_tls_conn *c)
{
	return c ? c->fd : PQOTA_TLS_ERR_INVAL;
}

/* ---- the session and the peer --------------------------------------------------------- */

PQOTA_TLS_API const char *pqota_tls_group(const pqota_tls_conn *c)
{
	return c ? c->info.group : NULL;
}

PQOTA_TLS_API const char *pqota_tls_protocol(const pqota_tls_conn *c)
{
	return c ? c->info.protocol : NULL;
}

PQOTA_TLS_API const char *pqota_tls_cipher(const pqota_tls_conn *c)
{
	return c ? c->info.cipher : NULL;
}

PQOTA_TLS_API const char *pqota_tls_peer_sigalg(const pqota_tls_conn *c)
{
	return c ? c->info.peer_sigalg : NULL;
}

PQOTA_TLS_API int pqota_tls_quantum_safe(const pqota_tls_conn *c)
{
	return c && c->info.pq_kex ? 1 : 0;
}

PQOTA_TLS_API const char *pqota_tls_peer_cn(const pqota_tls_conn *c)
{
	return c && c->has_peer && c->info.peer_cn[0] ? c->info.peer_cn : NULL;
}

PQOTA_TLS_API const char *pqota_tls_peer_subject(const pqota_tls_conn *c)
{
	return c && c->has_peer ? c->peer_subject : NULL;
}

PQOTA_TLS_API const char *pqota_tls_peer_sha256(const pqota_tls_conn *c)
{
	return c && c->has_peer && c->peer_sha256[0] ? c->peer_sha256 : NULL;
}
