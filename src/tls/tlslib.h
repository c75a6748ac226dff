/* tlslib.h: the internals libpqota-tls's files share (include/pqota/tls.h is its API).
 * Compiled only into the shared library, with hidden visibility. */
#ifndef PQOTA_TLS_TLSLIB_H
#define PQOTA_TLS_TLSLIB_H

#include <stdbool.h>

#include <openssl/ssl.h>

#include "core/err.h"
#include "pqota/tls.h"
#include "tls/tls.h"

#define TLSLIB_TIMEOUT_DEFAULT_MS 30000
#define TLSLIB_TIMEOUT_MAX_MS     3600000

struct pqota_tls_ctx {
	SSL_CTX *ssl;
	bool server;
	int timeout_ms;
};

struct pqota_tls_conn {
	SSL *ssl;
	int fd;
	bool owns_fd;
	int timeout_ms;
	bool shut;   /* pqota_tls_shutdown was called */
	bool failed; /* a fatal error: no more I/O, no close_notify */
	tls_info info;
	bool has_peer;
	char peer_subject[256];
	char peer_sha256[65];
};

/* Records the detail (as pq_err_set does) and returns the public status. */
int tlslib__fail(int status, const char *fmt, ...) PQ_PRINTF(2, 3);

#endif
