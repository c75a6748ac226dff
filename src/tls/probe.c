/* probe.c: blocking TLS probe (client) and one-line TLS responder (server) over TCP. */
#include "tls/probe.h"

#include <errno.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include <openssl/err.h>
#include <openssl/ssl.h>
#include <openssl/x509.h>

#include "core/time.h"
#include "tls/sock.h"

static void time_line(const ASN1_TIME *t, char *buf, size_t len)
{
	struct tm tm;
	buf[0] = '\0';
	if (t && ASN1_TIME_to_tm(t, &tm) == 1)
		strftime(buf, len, "%Y-%m-%dT%H:%M:%SZ", &tm);
}

int tls_probe(SSL_CTX *ctx, const char *host, const char *port, const char *server_name,
              int timeout_ms, int wait_ms, tls_probe_result *res)
{
	SSL *ssl = NULL;
	int fd = -1, rc, r;
	char reason[256];
	double t0;

	memset(res, 0, sizeof(*res));
	rc = tls_tcp_connect(host, port, timeout_ms > 0 ? timeout_ms : 5000, &fd);
	if (rc != PQ_OK)
		return rc;
	ssl = SSL_new(ctx);
	if (!ssl || SSL_set_fd(ssl, fd) != 1) {
		rc = pq_err_ssl(PQ_ERR_TLS, "TLS connection object");
		goto out;
	}
	if (server_name && *server_name) {
		rc = tls_set_peer_name(ssl, server_name);
		if (rc != PQ_OK)
			goto out;
	}
	t0 = pq_mono_s() * 1e3;
	r = SSL_connect(ssl);
	res->handshake_ms = pq_mono_s() * 1e3 - t0;
	res->verify_result = SSL_get_verify_result(ssl);
	if (r != 1) {
		tls_ssl_reason(ssl, r, reason, sizeof(reason));
		if (res->verify_result != X509_V_OK)
			rc = pq_err_set(PQ_ERR_TLS, "handshake with %s:%s failed: %s (%s)", host,
			                port, X509_verify_cert_error_string(res->verify_result),
			                reason);
		else
			rc = pq_err_set(PQ_ERR_TLS, "handshake with %s:%s failed: %s", host, port,
			                reason);
		goto out;
	}
	tls_conn_info(ssl, &res->info);
	X509 *peer = SSL_get0_peer_certificate(ssl);
	if (peer) {
		tls_name_line(X509_get_subject_name(peer), res->peer_subject,
		              sizeof(res->peer_subject));
		tls_name_line(X509_get_issuer_name(peer), res->peer_issuer,
		              sizeof(res->peer_issuer));
		time_line(X509_get0_notAfter(peer), res->peer_not_after,
		          sizeof(res->peer_not_after));
		const char *sn = OBJ_nid2sn(X509_get_signature_nid(peer));
		snprintf(res->peer_cert_sig, sizeof(res->peer_cert_sig), "%s", sn ? sn : "?");
	}
	if (wait_ms > 0) {
		size_t used = 0;
		tls_sock_timeouts(fd, wait_ms);
		while (used + 1 < sizeof(res->greeting)) {
			r = SSL_read(ssl, res->greeting + used,
			             (int)(sizeof(res->greeting) - 1 - used));
			if (r <= 0) {
				int e = SSL_get_error(ssl, r);
				if (e == SSL_ERROR_SSL) {
					tls_ssl_reason(ssl, r, reason, sizeof(reason));
					rc = pq_err_set(PQ_ERR_TLS,
					                "%s:%s rejected the session after the "
					                "handshake: %s",
					                host, port, reason);
					goto out;
				}
				ERR_clear_error();
				break; /* timeout, or closed: no (more) greeting */
			}
			used += (size_t)r;
			res->greeting[used] = '\0';
			if (memchr(res->greeting, '\n', used))
				break;
		}
		char *nl = strchr(res->greeting, '\n');
		if (nl)
			*nl = '\0';
	}
	(void)SSL_shutdown(ssl);
	rc = PQ_OK;
out:
	ERR_clear_error();
	SSL_free(ssl);
	if (fd >= 0)
		close(fd);
	return rc;
}

/* ---- responder ------------------------------------------------------------------------ */

struct tls_responder {
	SSL_CTX *ctx;
	int fd;
	int port;
	atomic_bool stop;
	bool threaded;
	pthread_t thread;
	tls_responder_cb cb;
	void *user;
};

int tls_responder_new(SSL_CTX *ctx, const char *host, const char *port, tls_responder **out)
{
	struct addrinfo hints = {0}, *ai = NULL;
	tls_responder *r = NULL;
	int fd = -1, one = 1, rc;
	struct sockaddr_storage ss;
	socklen_t sl = sizeof(ss);

	*out = NULL;
	/* a client that leaves before our greeting must not kill the process */
	signal(SIGPIPE, SIG_IGN);
	hints.ai_socktype = SOCK_STREAM;
	hints.ai_flags = AI_PASSIVE | AI_NUMERICSERV;
	rc = getaddrinfo(host, port, &hints, &ai);
	if (rc != 0)
		return pq_err_set(PQ_ERR_INVAL, "listen address %s:%s: %s", host, port,
		                  gai_strerror(rc));
	fd = socket(ai->ai_family, ai->ai_socktype | SOCK_CLOEXEC, ai->ai_protocol);
	if (fd < 0) {
		rc = pq_err_set(PQ_ERR_IO, "socket: %s", strerror(errno));
		goto fail;
	}
	(void)setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
	if (bind(fd, ai->ai_addr, ai->ai_addrlen) != 0) {
		rc = pq_err_set(PQ_ERR_IO, "bind %s:%s: %s", host, port, strerror(errno));
		goto fail;
	}
	if (listen(fd, 128) != 0 || getsockname(fd, (struct sockaddr *)&ss, &sl) != 0) {
		rc = pq_err_set(PQ_ERR_IO, "listen %s:%s: %s", host, port, strerror(errno));
		goto fail;
	}
	r = calloc(1, sizeof(*r));
	if (!r) {
		rc = pq_err_set(PQ_ERR_NOMEM, "responder");
		goto fail;
	}
	r->ctx = ctx;
	r->fd = fd;
	r->port = ntohs(ss.ss_family == AF_INET6 ? ((struct sockaddr_in6 *)&ss)->sin6_port
	                                         : ((struct sockaddr_in *)&ss)->sin_port);
	atomic_init(&r->stop, false);
	freeaddrinfo(ai);
	*out = r;
	return PQ_OK;
fail:
	if (fd >= 0)
		close(fd);
	freeaddrinfo(ai);
	return rc;
}

int tls_responder_port(const tls_responder *r)
{
	return r->port;
}

static void serve_one(tls_responder *r, int cfd)
{
	SSL *ssl = SSL_new(r->ctx);
	tls_info info;
	char reason[256], line[512];
	int ret;

	memset(&info, 0, sizeof(info));
	tls_sock_timeouts(cfd, 5000);
	if (!ssl || SSL_set_fd(ssl, cfd) != 1) {
		if (r->cb)
			r->cb(&info, PQ_ERR_TLS, "no TLS object", r->user);
		goto out;
	}
	ret = SSL_accept(ssl);
	if (ret != 1) {
		tls_ssl_reason(ssl, ret, reason, sizeof(reason));
		if (r->cb)
			r->cb(&info, PQ_ERR_TLS, reason, r->user);
		goto out;
	}
	tls_conn_info(ssl, &info);
	int n = snprintf(line, sizeof(line),
	                 "pqota-tls-serve protocol=%s group=%s cipher=%s sigalg=%s client=%s "
	                 "quantum_safe_kex=%s\n",
	                 info.protocol, info.group, info.cipher, info.local_sigalg,
	                 info.peer_cn[0] ? info.peer_cn : "-", info.pq_kex ? "yes" : "no");
	if (n > 0)
		(void)SSL_write(ssl, line, n < (int)sizeof(line) ? n : (int)sizeof(line) - 1);
	(void)SSL_shutdown(ssl);
	if (r->cb)
		r->cb(&info, PQ_OK, "", r->user);
out:
	ERR_clear_error();
	SSL_free(ssl);
	close(cfd);
}

int tls_responder_run(tls_responder *r, unsigned long max_conns, tls_responder_cb cb, void *user)
{
	unsigned long served = 0;
	r->cb = cb;
	r->user = user;
	while (!atomic_load(&r->stop) && (max_conns == 0 || served < max_conns)) {
		int cfd = accept4(r->fd, NULL, NULL, SOCK_CLOEXEC);
		if (cfd < 0) {
			if (errno == EINTR || errno == ECONNABORTED)
				continue;
			if (atomic_load(&r->stop))
				break;
			return pq_err_set(PQ_ERR_IO, "accept: %s", strerror(errno));
		}
		int one = 1;
		(void)setsockopt(cfd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
		serve_one(r, cfd);
		served++;
	}
	return PQ_OK;
}

static void *responder_thread(void *arg)
{
	tls_responder *r = arg;
	int rc = tls_responder_run(r, 0, r->cb, r->user);
	if (rc != PQ_OK && r->cb)
		r->cb(NULL, rc, pq_err_detail(), r->user);
	return NULL;
}

int tls_responder_start(tls_responder *r, tls_responder_cb cb, void *user)
{
	r->cb = cb;
	r->user = user;
	if (pthread_create(&r->thread, NULL, responder_thread, r) != 0)
		return pq_err_set(PQ_ERR_IO, "starting the responder thread");
	r->threaded = true;
	return PQ_OK;
}

void tls_responder_free(tls_responder *r)
{
	if (!r)
		return;
	atomic_store(&r->stop, true);
	/* wakes a blocked accept() */
	(void)shutdown(r->fd, SHUT_RDWR);
	if (r->threaded)
		pthread_join(r->thread, NULL);
	close(r->fd);
	free(r);
}
