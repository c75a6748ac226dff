/* tlslib.c: libpqota-tls (include/pqota/tls.h): version, errors, profiles and contexts.
 * Connections are in tlslib_conn.c. */
#include "tls/tlslib.h"

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/err.h>

#include "crypto/profile.h"

#ifndef PQOTA_VERSION
#error "PQOTA_VERSION must be defined by the build"
#endif

int tlslib__fail(int status, const char *fmt, ...)
{
	char buf[1024];
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(buf, sizeof(buf), fmt, ap);
	va_end(ap);
	(void)pq_err_set(PQ_ERR_INVAL, "%s", buf);
	return status;
}

PQOTA_TLS_API const char *pqota_tls_version(void)
{
	return PQOTA_VERSION;
}

PQOTA_TLS_API int pqota_tls_abi(void)
{
	return PQOTA_TLS_ABI;
}

PQOTA_TLS_API const char *pqota_tls_openssl_version(void)
{
	return tls_openssl_version();
}

PQOTA_TLS_API const char *pqota_tls_strerror(int status)
{
	switch (status) {
	case PQOTA_TLS_OK:
		return "success";
	case PQOTA_TLS_ERR_INVAL:
		return "invalid argument";
	case PQOTA_TLS_ERR_NOMEM:
		return "out of memory";
	case PQOTA_TLS_ERR_PROFILE:
		return "unknown profile";
	case PQOTA_TLS_ERR_FILE:
		return "certificate, key or CA file unusable";
	case PQOTA_TLS_ERR_UNSUPPORTED:
		return "OpenSSL without post-quantum algorithms";
	case PQOTA_TLS_ERR_IO:
		return "socket error";
	case PQOTA_TLS_ERR_TIMEOUT:
		return "timed out";
	case PQOTA_TLS_ERR_HANDSHAKE:
		return "TLS handshake failed";
	case PQOTA_TLS_ERR_TLS:
		return "TLS error";
	case PQOTA_TLS_ERR_CLOSED:
		return "connection closed";
	case PQOTA_TLS_ERR_EOF:
		return "connection closed without close_notify";
	default:
		return "unknown status";
	}
}

PQOTA_TLS_API const char *pqota_tls_last_error(void)
{
	return pq_err_detail();
}

/* ---- profiles ------------------------------------------------------------------------ */

PQOTA_TLS_API int pqota_tls_profile_count(void)
{
	return PQ_PROFILE_COUNT;
}

PQOTA_TLS_API int pqota_tls_profile_find(const char *id_or_name)
{
	const pq_profile *p = NULL;
	if (pq_profile_find(id_or_name, &p) != PQ_OK)
		return PQOTA_TLS_ERR_PROFILE; /* the detail names the ids and a name */
	return p->id;
}

PQOTA_TLS_API const char *pqota_tls_profile_name(int id)
{
	const pq_profile *p = pq_profile_by_id(id);
	return p ? p->name : NULL;
}

PQOTA_TLS_API const char *pqota_tls_profile_group(int id)
{
	const pq_profile *p = pq_profile_by_id(id);
	return p ? p->tls_group : NULL;
}

PQOTA_TLS_API const char *pqota_tls_profile_sigalg(int id)
{
	const pq_profile *p = pq_profile_by_id(id);
	return p ? p->tls_sigalg : NULL;
}

/* ---- contexts ------------------------------------------------------------------------ */

/* A file the context needs must be readable: OpenSSL's own message for a missing file is
 * a queue of three entries; errno says it better. */
static int check_file(const char *path, const char *what)
{
	if (!path || !*path)
		return tlslib__fail(PQOTA_TLS_ERR_INVAL, "no %s file given", what);
	FILE *f = fopen(path, "rb");
	if (!f)
		return tlslib__fail(PQOTA_TLS_ERR_FILE, "%s %s: %s", what, path, strerror(errno));
	fclose(f);
	return PQOTA_TLS_OK;
}

/* The public status of a tls_*_ctx_new failure: the arguments were checked before, so
 * what remains is about the files (unreadable, malformed, key not matching) or OpenSSL. */
static int ctx_status(int rc)
{
	switch (rc) {
	case PQ_ERR_NOMEM:
		return PQOTA_TLS_ERR_NOMEM;
	case PQ_ERR_UNSUPPORTED:
		return PQOTA_TLS_ERR_UNSUPPORTED;
	case PQ_ERR_INVAL:
	case PQ_ERR_NOTFOUND:
	case PQ_ERR_FORMAT:
		return PQOTA_TLS_ERR_FILE;
	default: /* OpenSSL refused the profile's group or signature scheme */
		return PQOTA_TLS_ERR_UNSUPPORTED;
	}
}

/* Builds the SSL_CTX of o, checks its certificate's key against the profile (when it has
 * a certificate), and wraps it. */
static int ctx_build(const tls_opts *o, bool server, pqota_tls_ctx **out)
{
	SSL_CTX *ssl = NULL;
	int rc = server ? tls_server_ctx_new(o, &ssl) : tls_client_ctx_new(o, &ssl);
	if (rc == PQ_OK && o->cert_file)
		rc = tls_ctx_check_key(ssl, o->profile, o->cert_file);
	if (rc != PQ_OK) {
		SSL_CTX_free(ssl);
		return ctx_status(rc);
	}
	pqota_tls_ctx *c = calloc(1, sizeof(*c));
	if (!c) {
		SSL_CTX_free(ssl);
		return tlslib__fail(PQOTA_TLS_ERR_NOMEM, "TLS context");
	}
	c->ssl = ssl;
	c->server = server;
	c->timeout_ms = TLSLIB_TIMEOUT_DEFAULT_MS;
	*out = c;
	return PQOTA_TLS_OK;
}

/* The arguments every context takes: where it goes (reset to NULL) and the profile. */
static int ctx_args(const char *profile, pqota_tls_ctx **out, const pq_profile **p)
{
	if (!out)
		return tlslib__fail(PQOTA_TLS_ERR_INVAL, "no place for the context (out is NULL)");
	*out = NULL;
	if (!profile)
		return tlslib__fail(PQOTA_TLS_ERR_PROFILE, "no profile given (ids 0..%d)",
		                    PQ_PROFILE_COUNT - 1);
	if (pq_profile_find(profile, p) != PQ_OK)
		return PQOTA_TLS_ERR_PROFILE; /* the detail names the ids and a name */
	return PQOTA_TLS_OK;
}

/* Checks the arguments of pqota_tls_server_new; the files must be readable. */
static int server_args(const char *cert_file, const char *key_file, const char *ca_file,
                       unsigned flags)
{
	const unsigned mtls = PQOTA_TLS_CLIENT_CERT_REQUIRED | PQOTA_TLS_CLIENT_CERT_OPTIONAL;
	int rc;
	if (flags & ~mtls)
		return tlslib__fail(PQOTA_TLS_ERR_INVAL, "unknown server flags 0x%x",
		                    flags & ~mtls);
	if ((flags & mtls) == mtls)
		return tlslib__fail(PQOTA_TLS_ERR_INVAL,
		                    "client certificates cannot be both required and optional");
	if ((rc = check_file(cert_file, "certificate")) != PQOTA_TLS_OK ||
	    (rc = check_file(key_file, "private key")) != PQOTA_TLS_OK)
		return rc;
	if (!(flags & mtls))
		return PQOTA_TLS_OK;
	if (!ca_file)
		return tlslib__fail(PQOTA_TLS_ERR_INVAL,
		                    "client certificates need the CA that issues them (ca_file)");
	return check_file(ca_file, "CA");
}

/* Checks the arguments of pqota_tls_client_new; the files must be readable. */
static int client_args(const char *ca_file, const char *cert_file, const char *key_file,
                       unsigned flags)
{
	int rc;
	if (flags)
		return tlslib__fail(PQOTA_TLS_ERR_INVAL, "unknown client flags 0x%x", flags);
	if ((cert_file == NULL) != (key_file == NULL))
		return tlslib__fail(PQOTA_TLS_ERR_INVAL,
		                    "a client certificate needs both cert_file and key_file");
	if ((rc = check_file(ca_file, "CA")) != PQOTA_TLS_OK || !cert_file)
		return rc;
	if ((rc = check_file(cert_file, "certificate")) != PQOTA_TLS_OK)
		return rc;
	return check_file(key_file, "private key");
}

PQOTA_TLS_API int pqota_tls_server_new(const char *profile, const char *cert_file,
                                       const char *key_file, const char *ca_file, unsigned flags,
                                       pqota_tls_ctx **out)
{
	const pq_profile *p = NULL;
	int rc;
	if ((rc = ctx_args(profile, out, &p)) != PQOTA_TLS_OK ||
	    (rc = server_args(cert_file, key_file, ca_file, flags)) != PQOTA_TLS_OK)
		return rc;
	tls_opts o = {.profile = p,
	              .cert_file = cert_file,
	              .key_file = key_file,
	              .ca_file = ca_file,
	              .require_client_cert = (flags & PQOTA_TLS_CLIENT_CERT_REQUIRED) != 0,
	              .request_client_cert = (flags & PQOTA_TLS_CLIENT_CERT_OPTIONAL) != 0};
	return ctx_build(&o, true, out);
}

PQOTA_TLS_API int pqota_tls_client_new(const char *profile, const char *ca_file,
                                       const char *cert_file, const char *key_file, unsigned flags,
                                       pqota_tls_ctx **out)
{
	const pq_profile *p = NULL;
	int rc;
	if ((rc = ctx_args(profile, out, &p)) != PQOTA_TLS_OK ||
	    (rc = client_args(ca_file, cert_file, key_file, flags)) != PQOTA_TLS_OK)
		return rc;
	tls_opts o = {.profile = p,
	              .cert_file = cert_file,
	              .key_file = key_file,
	              .ca_file = ca_file,
	              .verify_peer = true};
	return ctx_build(&o, false, out);
}

PQOTA_TLS_API int pqota_tls_ctx_set_timeout(pqota_tls_ctx *ctx, int timeout_ms)
{
	if (!ctx)
		return tlslib__fail(PQOTA_TLS_ERR_INVAL, "no context");
	if (timeout_ms < 0 || timeout_ms > TLSLIB_TIMEOUT_MAX_MS)
		return tlslib__fail(PQOTA_TLS_ERR_INVAL, "timeout %d ms out of range 0..%d",
		                    timeout_ms, TLSLIB_TIMEOUT_MAX_MS);
	ctx->timeout_ms = timeout_ms;
	return PQOTA_TLS_OK;
}

PQOTA_TLS_API void pqota_tls_ctx_free(pqota_tls_ctx *ctx)
{
	if (!ctx)
		return;
	SSL_CTX_free(ctx->ssl); /* reference counted: open connections keep it */
	free(ctx);
	ERR_clear_error();
}
