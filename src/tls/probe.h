/* probe.h: blocking TLS client probe and a minimal TLS responder, over TCP.
 *
 * The probe backs `pqota tls check` and the handshake benchmark; the responder backs
 * `pqota tls serve` and the loopback tests. Both are plain blocking sockets: they are
 * diagnostic tools, not the product's servers (those run on libevent). */
#ifndef PQOTA_TLS_PROBE_H
#define PQOTA_TLS_PROBE_H

#include <stdbool.h>
#include <stddef.h>

#include "core/err.h"
#include "tls/tls.h"

struct ssl_ctx_st;

typedef struct {
	tls_info info;
	char peer_subject[256];
	char peer_issuer[256];
	char peer_not_after[32];
	char peer_cert_sig[48]; /* the certificate's own signature algorithm */
	long verify_result;     /* X509_V_OK when the chain verified (or was not checked) */
	char greeting[256];     /* first line the server sent, if asked for */
	double handshake_ms;
} tls_probe_result;

/* Connects to host:port, handshakes with `ctx`, fills `res`. server_name (may be NULL)
 * is sent as SNI and, when the context verifies peers, checked against the certificate
 * (DNS name or IP). Then waits up to wait_ms for a first line from the server: a TLS 1.3
 * server rejects a client certificate only after the client's handshake completed, so
 * an alert in that window is a failure (PQ_ERR_TLS); silence is not. */
int tls_probe(struct ssl_ctx_st *ctx, const char *host, const char *port, const char *server_name,
              int timeout_ms, int wait_ms, tls_probe_result *res) PQ_MUST_CHECK;

/* ---- responder ------------------------------------------------------------------------ */

typedef struct tls_responder tls_responder;

/* Called after each handshake (or failure, with err != 0 and the reason). From the
 * background thread, a fatal accept error is reported with info == NULL. */
typedef void (*tls_responder_cb)(const tls_info *info, int err, const char *reason, void *user);

/* Binds host:port (port "0" picks a free one) and listens. */
int tls_responder_new(struct ssl_ctx_st *ctx, const char *host, const char *port,
                      tls_responder **out) PQ_MUST_CHECK;
int tls_responder_port(const tls_responder *r);

/* Serves connections one at a time: handshake, send one line describing the session,
 * close. Returns after `max_conns` connections (0 = until tls_responder_stop). */
int tls_responder_run(tls_responder *r, unsigned long max_conns, tls_responder_cb cb,
                      void *user) PQ_MUST_CHECK;

/* Runs tls_responder_run in a background thread (for tests and benchmarks). */
int tls_responder_start(tls_responder *r, tls_responder_cb cb, void *user) PQ_MUST_CHECK;

/* Stops serving (from any thread), joins the background thread if any, frees. */
void tls_responder_free(tls_responder *r);

#endif
