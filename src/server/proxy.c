/* proxy.c: the proxy listener (docs/operations.md "Behind a load balancer"): plain HTTP on
 * a Unix socket or a loopback port, for a reverse proxy (nginx, HAProxy) that terminates the
 * PQC TLS connection itself. Every request on it must carry the proxy's shared secret
 * (X-Pqota-Proxy-Secret); the proxy forwards the client's address (X-Forwarded-For), its
 * certificate (X-Client-Cert: URL-encoded PEM as nginx's $ssl_client_escaped_cert, or base64
 * DER as HAProxy's ssl_c_der,base64) and the negotiated group (X-Client-TLS-Group). The
 * certificate is verified again here against tls.ca before its CN counts as a vehicle. */
#include <arpa/inet.h>
#include <errno.h>
#include <stdbool.h>
#include <pthread.h>
#include <netdb.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include <event2/http.h>
#include <event2/keyvalq_struct.h>
#include <event2/util.h>
#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/x509.h>
#include <openssl/x509_vfy.h>
#include <openssl/x509v3.h>

#include "core/fileio.h"
#include "core/text.h"
#include "server/server_int.h"

#define SECRET_MIN      32
#define SECRET_MAX      256
#define CERT_HEADER_MAX (16 * 1024)
#define UNIX_PREFIX     "unix:"

/* ---- the listener ---------------------------------------------------------------------- */

static int bind_unix(const char *path, int *out)
{
	struct sockaddr_un sa = {.sun_family = AF_UNIX};
	struct stat st;
	if (strlen(path) == 0 || strlen(path) >= sizeof(sa.sun_path))
		return pq_err_set(PQ_ERR_INVAL, "proxy.listen: a socket path of 1..%zu bytes",
		                  sizeof(sa.sun_path) - 1);
	memcpy(sa.sun_path, path, strlen(path) + 1);
	int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
	if (fd < 0)
		return pq_err_set(PQ_ERR_IO, "socket: %s", strerror(errno));
	/* a stale socket of an earlier run is replaced; one a running server answers on, or
	 * anything that is not a socket, is not touched */
	if (lstat(path, &st) == 0 && S_ISSOCK(st.st_mode)) {
		int probe = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
		bool live = probe >= 0 && connect(probe, (struct sockaddr *)&sa, sizeof(sa)) == 0;
		if (probe >= 0)
			close(probe);
		if (live) {
			close(fd);
			return pq_err_set(PQ_ERR_IO,
			                  "proxy.listen %s: another server listens there", path);
		}
		unlink(path);
	}
	/* the socket's mode before it has a name: never group or world writable in between */
	(void)fchmod(fd, 0660);
	if (bind(fd, (struct sockaddr *)&sa, sizeof(sa)) != 0 || chmod(path, 0660) != 0 ||
	    listen(fd, 1024) != 0) {
		int e = errno;
		close(fd);
		return pq_err_set(PQ_ERR_IO, "proxy.listen %s: %s", path, strerror(e));
	}
	*out = fd;
	return PQ_OK;
}

/* HOST:PORT, HOST a loopback address. */
static int bind_loopback(const char *hostport, int *out)
{
	char host[64], port[16];
	const char *colon = strrchr(hostport, ':');
	struct addrinfo hints = {.ai_socktype = SOCK_STREAM,
	                         .ai_flags = AI_NUMERICHOST | AI_NUMERICSERV},
	                *ai = NULL;
	if (!colon || colon == hostport || (size_t)(colon - hostport) >= sizeof(host) ||
	    strlen(colon + 1) >= sizeof(port))
		return pq_err_set(PQ_ERR_INVAL, "proxy.listen '%s': unix:PATH or HOST:PORT",
		                  hostport);
	snprintf(host, sizeof(host), "%.*s", (int)(colon - hostport), hostport);
	snprintf(port, sizeof(port), "%s", colon + 1);
	if (host[0] == '[' && host[strlen(host) - 1] == ']') {
		memmove(host, host + 1, strlen(host));
		host[strlen(host) - 1] = '\0';
	}
	if (getaddrinfo(host, port, &hints, &ai) != 0)
		return pq_err_set(PQ_ERR_INVAL, "proxy.listen '%s': not an address", hostport);
	bool loop = (ai->ai_family == AF_INET &&
	             (ntohl(((struct sockaddr_in *)ai->ai_addr)->sin_addr.s_addr) >> 24) == 127) ||
	            (ai->ai_family == AF_INET6 &&
	             IN6_IS_ADDR_LOOPBACK(&((struct sockaddr_in6 *)ai->ai_addr)->sin6_addr));
	int fd = loop ? socket(ai->ai_family, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0) : -1;
	int one = 1, rc = PQ_OK;
	if (!loop)
		rc = pq_err_set(PQ_ERR_INVAL,
		                "proxy.listen %s: plain HTTP listens on a loopback address or a "
		                "Unix socket only",
		                hostport);
	else if (fd < 0 || setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one)) != 0 ||
	         bind(fd, ai->ai_addr, ai->ai_addrlen) != 0 || listen(fd, 1024) != 0)
		rc = pq_err_set(PQ_ERR_IO, "proxy.listen %s: %s", hostport, strerror(errno));
	freeaddrinfo(ai);
	if (rc != PQ_OK && fd >= 0)
		close(fd);
	if (rc == PQ_OK)
		*out = fd;
	return rc;
}

/* The shared secret: the file's first line, SECRET_MIN..SECRET_MAX printable bytes. */
static int load_secret(srv *s, const char *file)
{
	char *data = NULL;
	size_t len = 0;
	if (!file)
		return pq_err_set(PQ_ERR_INVAL, "proxy.listen needs proxy.secret_file");
	int rc = pq_file_read(file, SECRET_MAX + 2, &data, &len);
	if (rc != PQ_OK)
		return pq_err_wrap(rc, "proxy.secret_file");
	while (len > 0 && (data[len - 1] == '\n' || data[len - 1] == '\r'))
		len--;
	bool ok = len >= SECRET_MIN && len <= SECRET_MAX;
	for (size_t i = 0; ok && i < len; i++)
		ok = data[i] > ' ' && data[i] < 0x7f;
	if (ok) {
		memcpy(s->proxy_secret, data, len);
		s->proxy_secret_len = len;
	}
	OPENSSL_cleanse(data, len);
	free(data);
	return ok ? PQ_OK
	          : pq_err_set(PQ_ERR_FORMAT,
	                       "proxy.secret_file %s: one line of %d..%d printable characters",
	                       file, SECRET_MIN, SECRET_MAX);
}

int srv__proxy_ca(const char *ca_file, X509_STORE **out)
{
	*out = NULL;
	if (!ca_file)
		return PQ_OK;
	X509_STORE *st = X509_STORE_new();
	if (!st || X509_STORE_load_file(st, ca_file) != 1) {
		X509_STORE_free(st);
		return pq_err_set(PQ_ERR_FORMAT, "proxy: cannot load the CA %s", ca_file);
	}
	*out = st;
	return PQ_OK;
}

int srv__proxy_open(srv *s)
{
	const char *l = s->o.proxy_listen;
	s->proxy_fd = -1;
	if (!l)
		return PQ_OK;
	int rc = load_secret(s, s->o.proxy_secret_file);
	if (rc == PQ_OK)
		rc = srv__proxy_ca(s->o.ca_file, &s->proxy_ca); /* none: no vehicle identity */
	if (rc == PQ_OK)
		rc = strncmp(l, UNIX_PREFIX, strlen(UNIX_PREFIX)) == 0
		         ? bind_unix(l + strlen(UNIX_PREFIX), &s->proxy_fd)
		         : bind_loopback(l, &s->proxy_fd);
	return rc == PQ_OK ? PQ_OK : pq_err_wrap(rc, "proxy listener");
}

void srv__proxy_free(srv *s)
{
	if (s->proxy_fd >= 0)
		close(s->proxy_fd);
	s->proxy_fd = -1;
	X509_STORE_free(s->proxy_ca);
	s->proxy_ca = NULL;
	OPENSSL_cleanse(s->proxy_secret, sizeof(s->proxy_secret));
}

/* ---- a request from the proxy ------------------------------------------------------------- */

static int hex_digit(char c)
{
	return c >= '0' && c <= '9'   ? c - '0'
	       : c >= 'a' && c <= 'f' ? c - 'a' + 10
	       : c >= 'A' && c <= 'F' ? c - 'A' + 10
	                              : -1;
}

/* %XX decoded into out (at most cap - 1 bytes); false on a bad escape, a NUL or overflow. */
static bool url_decode(const char *in, char *out, size_t cap)
{
	size_t o = 0;
	for (const char *p = in; *p; p++) {
		int ch = (unsigned char)*p;
		if (*p == '%') {
			int hi = hex_digit(p[1]), lo = hi < 0 ? -1 : hex_digit(p[2]);
			if (lo < 0 || (hi == 0 && lo == 0))
				return false;
			ch = hi * 16 + lo;
			p += 2;
		}
		if (o + 1 >= cap)
			return false;
		out[o++] = (char)ch;
	}
	out[o] = '\0';
	return true;
}

/* The forwarded certificate: URL-encoded (or plain) PEM, or base64 DER. */
static X509 *parse_cert(const char *h)
{
	char *buf = malloc(CERT_HEADER_MAX + 1);
	X509 *x = NULL;
	if (!buf)
		return NULL;
	if (strncmp(h, "-----", 5) == 0 || strncmp(h, "%2D", 3) == 0 || strncmp(h, "%2d", 3) == 0) {
		if (url_decode(h, buf, CERT_HEADER_MAX + 1)) {
			BIO *b = BIO_new_mem_buf(buf, -1);
			x = b ? PEM_read_bio_X509(b, NULL, NULL, NULL) : NULL;
			BIO_free(b);
		}
	} else {
		int n =
		    EVP_DecodeBlock((unsigned char *)buf, (const unsigned char *)h, (int)strlen(h));
		const unsigned char *p = (const unsigned char *)buf;
		x = n > 0 ? d2i_X509(NULL, &p, n) : NULL;
	}
	free(buf);
	return x;
}

/* The TLS group the proxy names: an OpenSSL group name as is, or a TLS code point in hex
 * (nginx's $ssl_curve for groups it has no name for, "0x11ec") as its name; NULL when it is
 * neither. */
static const char *group_name(const char *g)
{
	static const struct {
		unsigned id;
		const char *name;
	} named[] = {{0x11ec, "X25519MLKEM768"},
	             {0x11eb, "SecP256r1MLKEM768"},
	             {0x11ed, "SecP384r1MLKEM1024"},
	             {0x0200, "MLKEM512"},
	             {0x0201, "MLKEM768"},
	             {0x0202, "MLKEM1024"},
	             {0x001d, "X25519"},
	             {0x001e, "X448"},
	             {0x0017, "secp256r1"},
	             {0x0018, "secp384r1"},
	             {0x0019, "secp521r1"}};
	size_t n = g ? strlen(g) : 0;
	if (n == 0 || n > 64)
		return NULL;
	if (strncmp(g, "0x", 2) == 0) {
		char *end = NULL;
		unsigned long id = strtoul(g + 2, &end, 16);
		for (size_t i = 0; end && !*end && i < sizeof(named) / sizeof(named[0]); i++)
			if (named[i].id == id)
				return named[i].name;
		return NULL;
	}
	return strspn(g, "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789_-") == n
	           ? g
	           : NULL;
}

/* Whether x chains to the CA and may authenticate a client, now. */
static bool cert_verifies(srv *s, X509 *x)
{
	pthread_mutex_lock(&s->ssl_lock); /* a reload may replace the store */
	X509_STORE *ca = s->proxy_ca;
	if (ca && X509_STORE_up_ref(ca) != 1)
		ca = NULL;
	pthread_mutex_unlock(&s->ssl_lock);
	X509_STORE_CTX *ctx = ca ? X509_STORE_CTX_new() : NULL;
	bool ok = ctx && X509_STORE_CTX_init(ctx, ca, x, NULL) == 1 &&
	          X509_STORE_CTX_set_purpose(ctx, X509_PURPOSE_SSL_CLIENT) == 1 &&
	          X509_verify_cert(ctx) == 1;
	X509_STORE_CTX_free(ctx);
	X509_STORE_free(ca);
	return ok;
}

/* How many headers of that name the request has. */
static int header_count(struct evkeyvalq *h, const char *name)
{
	int n = 0;
	for (struct evkeyval *kv = h->tqh_first; kv; kv = kv->next.tqe_next)
		n += evutil_ascii_strcasecmp(kv->key, name) == 0;
	return n;
}

int srv__proxy_request(srv_ctx *c, X509 **cert)
{
	static const char *const trusted[] = {"X-Pqota-Proxy-Secret", "X-Forwarded-For",
	                                      "X-Client-Cert", "X-Client-TLS-Group"};
	struct evkeyvalq *h = evhttp_request_get_input_headers(c->req);
	/* one of each at most: a proxy that appends instead of replacing would otherwise let a
	 * client's own header come first */
	for (size_t i = 0; i < sizeof(trusted) / sizeof(trusted[0]); i++)
		if (header_count(h, trusted[i]) > 1)
			return pq_err_set(PQ_ERR_VERIFY,
			                  "%s more than once: the proxy must replace it",
			                  trusted[i]);
	const char *secret = evhttp_find_header(h, "X-Pqota-Proxy-Secret");
	const char *fwd = evhttp_find_header(h, "X-Forwarded-For");
	const char *pem = evhttp_find_header(h, "X-Client-Cert");
	const char *group = evhttp_find_header(h, "X-Client-TLS-Group");
	srv *s = c->s;
	*cert = NULL;
	if (!secret || strlen(secret) != s->proxy_secret_len ||
	    CRYPTO_memcmp(secret, s->proxy_secret, s->proxy_secret_len) != 0)
		return pq_err_set(PQ_ERR_VERIFY, "the proxy listener serves the proxy only "
		                                 "(X-Pqota-Proxy-Secret)");
	unsigned char addr[sizeof(struct in6_addr)];
	if (fwd && strlen(fwd) < sizeof(c->forwarded) &&
	    (inet_pton(AF_INET, fwd, addr) == 1 || inet_pton(AF_INET6, fwd, addr) == 1)) {
		snprintf(c->forwarded, sizeof(c->forwarded), "%s", fwd);
		snprintf(c->client, sizeof(c->client), "ip:%s", fwd);
	}
	c->tls_group = group_name(group);
	if (!pem || !*pem || strlen(pem) > CERT_HEADER_MAX)
		return PQ_OK;
	X509 *x = parse_cert(pem);
	if (x && cert_verifies(s, x))
		*cert = x;
	else
		X509_free(x); /* no vehicle identity, as a failed handshake check gives none */
	return PQ_OK;
}
