/* pqota/tls.h: libpqota-tls, post-quantum TLS 1.3 for programs in any language.
 *
 * A small, stable C API over the TLS layer of pqota (OpenSSL >= 3.5): server and client
 * contexts for any of pqota's 13 PQC profiles (key-exchange group x certificate signature),
 * blocking connections over TCP sockets, the peer's identity and the negotiated group. No
 * OpenSSL type appears here, so a program (or a ctypes/cffi/FFI binding) needs only this
 * header and libpqota-tls.so.1. docs/tls-library.md is the reference with examples.
 *
 * Conventions
 *   - Functions that can fail return int: PQOTA_TLS_OK (0) or a negative pqota_tls_status.
 *     pqota_tls_last_error() then describes the failure (the file, the peer, OpenSSL's
 *     reason). It is per thread: read it right after the failing call, as later calls on
 *     the thread may change it.
 *   - Handles are opaque. Every *_new / accept / connect that returns PQOTA_TLS_OK hands the
 *     caller one handle to free exactly once (pqota_tls_ctx_free, pqota_tls_close); on
 *     failure *out is NULL. The free functions accept NULL.
 *   - Strings the library returns are NUL-terminated UTF-8, owned by the library: static
 *     ones live forever, a connection's live until pqota_tls_close on it.
 *   - Sockets are blocking; each context has a timeout (default 30 s) that bounds every
 *     handshake, read and write on its connections.
 *   - The library never prints, never exits, and does not change signal dispositions: a
 *     write to a peer that has gone returns PQOTA_TLS_ERR_IO instead of raising SIGPIPE.
 *
 * Thread safety
 *   - Any function may be called from any thread.
 *   - A context is immutable once made (except pqota_tls_ctx_set_timeout, which must not
 *     race with accept/connect on it): many threads may accept or connect with one context.
 *   - A connection belongs to one thread at a time: calls on one connection must not
 *     overlap (serialise them, or give the connection to a thread).
 *   - A context may be freed while its connections are open: they keep what they need.
 *
 * Stability: the ABI is versioned by the soname (libpqota-tls.so.PQOTA_TLS_ABI) and symbol
 * versions; within one ABI, functions and codes are only added, never changed or removed. */
#ifndef PQOTA_TLS_H
#define PQOTA_TLS_H

#include <stddef.h>

#ifdef __cplusplus
extern "C" {
#endif

#ifdef PQOTA_TLS_BUILDING
#define PQOTA_TLS_API __attribute__((visibility("default")))
#else
#define PQOTA_TLS_API
#endif

/* The ABI version: the soname's number (libpqota-tls.so.1). */
#define PQOTA_TLS_ABI 1

/* Status codes: 0 success, negative failure. Values never change within one ABI. */
typedef enum {
	PQOTA_TLS_OK = 0,
	PQOTA_TLS_ERR_INVAL = -1,       /* a bad argument: NULL handle, unknown flag, ... */
	PQOTA_TLS_ERR_NOMEM = -2,       /* out of memory */
	PQOTA_TLS_ERR_PROFILE = -3,     /* no such profile (ids 0..12 or a profile name) */
	PQOTA_TLS_ERR_FILE = -4,        /* a certificate, key or CA file missing, unreadable,
	                                 * malformed, not matching, or not of the profile */
	PQOTA_TLS_ERR_UNSUPPORTED = -5, /* the loaded OpenSSL lacks ML-KEM/ML-DSA (< 3.5) */
	PQOTA_TLS_ERR_IO = -6,          /* socket error: resolve, connect, accept, send, receive */
	PQOTA_TLS_ERR_TIMEOUT = -7,     /* the context's timeout passed */
	PQOTA_TLS_ERR_HANDSHAKE = -8,   /* the TLS handshake failed: no common group, a
	                                 * certificate not verified, the wrong name, ... */
	PQOTA_TLS_ERR_TLS = -9,         /* a TLS error after the handshake (an alert: the server
	                                 * refused our client certificate, a bad record) */
	PQOTA_TLS_ERR_CLOSED = -10,     /* this connection was shut down or failed earlier */
	PQOTA_TLS_ERR_EOF = -11,        /* the peer closed TCP without TLS close_notify: what
	                                 * was read so far may be truncated */
} pqota_tls_status;

/* Flags of pqota_tls_server_new (client contexts take 0). */
enum {
	/* mutual TLS: every client must present a certificate issued by ca_file */
	PQOTA_TLS_CLIENT_CERT_REQUIRED = 1u << 0,
	/* ask for a client certificate and verify it when sent, but also accept clients
	 * without one (then pqota_tls_peer_cn is NULL) */
	PQOTA_TLS_CLIENT_CERT_OPTIONAL = 1u << 1,
};

typedef struct pqota_tls_ctx pqota_tls_ctx;
typedef struct pqota_tls_conn pqota_tls_conn;

/* ---- library ------------------------------------------------------------------------- */

/* The pqota release this library comes from ("0.1.0"). */
PQOTA_TLS_API const char *pqota_tls_version(void);
/* PQOTA_TLS_ABI of the library actually loaded. */
PQOTA_TLS_API int pqota_tls_abi(void);
/* OpenSSL's version string of the libcrypto actually loaded ("OpenSSL 3.5.7 ..."). */
PQOTA_TLS_API const char *pqota_tls_openssl_version(void);
/* A static description of a status code ("TLS handshake failed"). */
PQOTA_TLS_API const char *pqota_tls_strerror(int status);
/* What the last failing call on this thread reported ("" if nothing failed). */
PQOTA_TLS_API const char *pqota_tls_last_error(void);

/* ---- profiles ------------------------------------------------------------------------ */

/* How many profiles there are (13); their ids are 0 .. count-1. */
PQOTA_TLS_API int pqota_tls_profile_count(void);
/* The id of a profile given as its id ("2") or name ("mlkem768-ecdsa-p256", any case);
 * PQOTA_TLS_ERR_PROFILE when there is none. */
PQOTA_TLS_API int pqota_tls_profile_find(const char *id_or_name);
/* A profile's name ("mlkem768-ecdsa-p256"), key-exchange group ("X25519MLKEM768") and TLS
 * signature scheme ("ecdsa_secp256r1_sha256", "mldsa65"); NULL for an id out of range. */
PQOTA_TLS_API const char *pqota_tls_profile_name(int id);
PQOTA_TLS_API const char *pqota_tls_profile_group(int id);
PQOTA_TLS_API const char *pqota_tls_profile_sigalg(int id);

/* ---- contexts ------------------------------------------------------------------------ */

/* A server context: TLS 1.3 only, exactly the profile's group and signature scheme.
 * profile: id or name (pqota_tls_profile_find). cert_file: PEM certificate chain, whose key
 * must be of the profile's signature algorithm; key_file: its PEM private key. ca_file: the
 * CA that issues client certificates, needed (only) with a CLIENT_CERT flag; NULL without.
 * flags: 0 or one PQOTA_TLS_CLIENT_CERT_* flag. */
PQOTA_TLS_API int pqota_tls_server_new(const char *profile, const char *cert_file,
                                       const char *key_file, const char *ca_file, unsigned flags,
                                       pqota_tls_ctx **out);

/* A client context: TLS 1.3 only, offering exactly the profile's group and scheme. Server
 * certificates are always verified against ca_file (required) and the name given to
 * connect. cert_file and key_file: a client certificate for mutual TLS, both or neither
 * (NULL). flags: 0. */
PQOTA_TLS_API int pqota_tls_client_new(const char *profile, const char *ca_file,
                                       const char *cert_file, const char *key_file, unsigned flags,
                                       pqota_tls_ctx **out);

/* Bounds every later handshake, read and write of connections made with ctx, in ms:
 * 1 .. 3,600,000, or 0 for no limit (a silent peer then blocks forever). Default 30,000. */
PQOTA_TLS_API int pqota_tls_ctx_set_timeout(pqota_tls_ctx *ctx, int timeout_ms);

/* Frees a context (NULL is fine). Open connections stay usable. */
PQOTA_TLS_API void pqota_tls_ctx_free(pqota_tls_ctx *ctx);

/* ---- connections --------------------------------------------------------------------- */

/* Server: accepts one TCP connection on listen_fd (a listening socket the caller owns) and
 * does the handshake. The connection owns the accepted socket (pqota_tls_close closes
 * it). A failed handshake closes the accepted socket and returns its reason: keep
 * accepting. */
PQOTA_TLS_API int pqota_tls_accept(pqota_tls_ctx *ctx, int listen_fd, pqota_tls_conn **out);

/* Server: the handshake on fd, a connected socket the caller accepted (blocking: a
 * non-blocking one is PQOTA_TLS_ERR_INVAL). The caller keeps fd: it stays open after
 * pqota_tls_close, and the caller closes it afterwards. The context's timeout is set on
 * it (SO_RCVTIMEO, SO_SNDTIMEO). */
PQOTA_TLS_API int pqota_tls_accept_fd(pqota_tls_ctx *ctx, int fd, pqota_tls_conn **out);

/* Client: connects to host:port (name or address; port as text, "443") and does the
 * handshake, verifying that the certificate is issued by the context's CA and names
 * server_name (DNS name or IP address; NULL means host), which is also sent as SNI. The
 * connection owns its socket. */
PQOTA_TLS_API int pqota_tls_connect(pqota_tls_ctx *ctx, const char *host, const char *port,
                                    const char *server_name, pqota_tls_conn **out);

/* Client: the handshake on fd, a blocking socket the caller connected, verifying
 * server_name (required). The caller keeps fd, as with pqota_tls_accept_fd. */
PQOTA_TLS_API int pqota_tls_connect_fd(pqota_tls_ctx *ctx, int fd, const char *server_name,
                                       pqota_tls_conn **out);

/* Reads up to len bytes (len >= 1) into buf: returns how many (> 0), 0 when the peer
 * closed the connection cleanly (close_notify), or a negative status. Blocks until some
 * data, the close, or the timeout. */
PQOTA_TLS_API long pqota_tls_read(pqota_tls_conn *c, void *buf, size_t len);

/* Writes all len bytes of buf: returns len, or a negative status (nothing is known about
 * how much the peer received then). len 0 returns 0. */
PQOTA_TLS_API long pqota_tls_write(pqota_tls_conn *c, const void *buf, size_t len);

/* Ends the TLS session: sends close_notify (without waiting for the peer's). Later reads
 * and writes return PQOTA_TLS_ERR_CLOSED; the peer-identity functions keep working.
 * Shutting down twice is fine. */
PQOTA_TLS_API int pqota_tls_shutdown(pqota_tls_conn *c);

/* Shuts down (if not yet), closes the socket the connection owns, frees c (NULL is fine). */
PQOTA_TLS_API void pqota_tls_close(pqota_tls_conn *c);

/* The connection's socket (still the caller's after *_fd calls). */
PQOTA_TLS_API int pqota_tls_fd(const pqota_tls_conn *c);

/* ---- the session and the peer (fixed at the handshake; NULL for a NULL connection) ---- */

/* The negotiated key-exchange group ("X25519MLKEM768"), protocol ("TLSv1.3"), cipher
 * suite ("TLS_AES_256_GCM_SHA384"), and the peer's CertificateVerify scheme ("mldsa65"). */
PQOTA_TLS_API const char *pqota_tls_group(const pqota_tls_conn *c);
PQOTA_TLS_API const char *pqota_tls_protocol(const pqota_tls_conn *c);
PQOTA_TLS_API const char *pqota_tls_cipher(const pqota_tls_conn *c);
PQOTA_TLS_API const char *pqota_tls_peer_sigalg(const pqota_tls_conn *c);
/* 1 when the key exchange includes ML-KEM (quantum-safe), 0 otherwise. */
PQOTA_TLS_API int pqota_tls_quantum_safe(const pqota_tls_conn *c);

/* The peer certificate's common name (a vehicle's VIN), its subject on one line
 * ("CN = VIN123, O = pqota"), and the SHA-256 of its DER encoding as 64 lowercase hex
 * digits. NULL when the peer sent no certificate (the CN also when it has none). A peer
 * certificate is always verified (chain, and name on clients) before a handshake
 * succeeds. */
PQOTA_TLS_API const char *pqota_tls_peer_cn(const pqota_tls_conn *c);
PQOTA_TLS_API const char *pqota_tls_peer_subject(const pqota_tls_conn *c);
PQOTA_TLS_API const char *pqota_tls_peer_sha256(const pqota_tls_conn *c);

#ifdef __cplusplus
}
#endif

#endif
