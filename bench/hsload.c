/* hsload.c: full-handshake load generator for bench/server-vs-nginx.sh.
 *
 * C client threads each loop: TCP connect, a fresh TLS 1.3 handshake (a new SSL object
 * with no session set and the client session cache off, so every handshake is a full
 * one: certificate, CertificateVerify and a new key exchange), one HTTP/1.1 GET with
 * "Connection: close", read the answer until the server closes. Every connection checks
 * that the negotiated group is the expected one and that the session was not resumed.
 *
 * usage: hsload --connect HOST:PORT --path PATH --group GROUP
 *               [--clients C] [--duration SECONDS | --requests N]
 *               [--ciphersuites LIST] [--header "Name: value"]...
 *
 * Prints one line of key=value pairs on stdout:
 *   ok errors reused wrong_group non_200 elapsed_s rate_per_s p50_ms p99_ms max_ms
 * and the first error of each kind on stderr. Exit 0 when it ran (whatever the counts),
 * 2 on set-up failure, 64 on usage errors. Built by the benchmark script against the
 * OpenSSL it benchmarks (>= 3.5, for X25519MLKEM768 and SSL_get0_group_name). */
#define _GNU_SOURCE
#include <errno.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include <openssl/err.h>
#include <openssl/ssl.h>

#define MAX_HEADERS 8

static const char *host = "127.0.0.1", *port_s, *path = "/", *group;
static const char *ciphersuites;
static const char *headers[MAX_HEADERS];
static int nheaders;
static int clients = 32;
static double duration_s;
static long max_requests;
static SSL_CTX *ctx;
static struct addrinfo *addr;
static char request[4096];
static size_t request_len;

static atomic_long issued;
static atomic_long n_ok, n_err, n_reused, n_wrong_group, n_non200;
static atomic_int reported_err, reported_group, reported_status;
static double t_start, t_stop;

typedef struct {
	double *lat; /* per-connection latency, ms */
	size_t n, cap;
} thread_state;

static double now_s(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static void usage(FILE *f)
{
	fputs("usage: hsload --connect HOST:PORT --path PATH --group GROUP\n"
	      "              [--clients C] [--duration SECONDS | --requests N]\n"
	      "              [--ciphersuites LIST] [--header \"Name: value\"]...\n"
	      "One full TLS 1.3 handshake and one GET per connection, C connections at a "
	      "time.\n",
	      f);
}

/* Claims the next request; false when the run is over. */
static bool claim(void)
{
	if (max_requests > 0)
		return atomic_fetch_add(&issued, 1) < max_requests;
	return now_s() < t_stop;
}

static void report_once(atomic_int *flag, const char *what, const char *detail)
{
	if (atomic_exchange(flag, 1) == 0)
		fprintf(stderr, "hsload: first %s: %s\n", what, detail);
}

static void ssl_error_text(char *buf, size_t len, const char *where)
{
	unsigned long e = ERR_get_error();
	char es[256] = "no OpenSSL error queued";
	if (e)
		ERR_error_string_n(e, es, sizeof(es));
	ERR_clear_error();
	snprintf(buf, len, "%s: %s (errno %s)", where, es, strerror(errno));
}

/* One connection: returns true when it got a complete 200 answer. */
static bool one_connection(thread_state *ts)
{
	char err[512];
	double t0 = now_s();
	bool good = false;
	SSL *ssl = NULL;
	int fd = socket(addr->ai_family, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (fd < 0) {
		snprintf(err, sizeof(err), "socket: %s", strerror(errno));
		goto fail;
	}
	int one = 1;
	(void)setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
	if (connect(fd, addr->ai_addr, addr->ai_addrlen) != 0) {
		snprintf(err, sizeof(err), "connect: %s", strerror(errno));
		goto fail;
	}
	ssl = SSL_new(ctx);
	if (!ssl || SSL_set_fd(ssl, fd) != 1) {
		ssl_error_text(err, sizeof(err), "SSL_new");
		goto fail;
	}
	(void)SSL_set_tlsext_host_name(ssl, host);
	if (SSL_connect(ssl) != 1) {
		ssl_error_text(err, sizeof(err), "handshake");
		goto fail;
	}
	if (SSL_session_reused(ssl))
		atomic_fetch_add(&n_reused, 1);
	const char *g = SSL_get0_group_name(ssl);
	if (!g || strcmp(g, group) != 0) {
		atomic_fetch_add(&n_wrong_group, 1);
		report_once(&reported_group, "unexpected group", g ? g : "(none)");
	}
	size_t off = 0;
	while (off < request_len) {
		size_t w = 0;
		if (SSL_write_ex(ssl, request + off, request_len - off, &w) != 1) {
			ssl_error_text(err, sizeof(err), "write");
			goto fail;
		}
		off += w;
	}
	/* read the whole answer (until the server closes); keep its first bytes */
	char head[4096], buf[16384];
	size_t head_len = 0, total = 0;
	for (;;) {
		size_t r = 0;
		if (SSL_read_ex(ssl, buf, sizeof(buf), &r) != 1) {
			if (SSL_get_error(ssl, 0) == SSL_ERROR_ZERO_RETURN)
				break; /* closed, with or without close_notify */
			ssl_error_text(err, sizeof(err), "read");
			goto fail;
		}
		size_t room = sizeof(head) - 1 - head_len;
		size_t take = room < r ? room : r;
		memcpy(head + head_len, buf, take);
		head_len += take;
		total += r;
	}
	head[head_len] = '\0';
	/* a complete 200: status line, then as many body bytes as Content-Length says */
	char *eoh = strstr(head, "\r\n\r\n");
	const char *cl = strcasestr(head, "\r\ncontent-length:");
	long want = cl && (!eoh || cl < eoh) ? atol(cl + 17) : -1;
	bool status_ok =
	    strncmp(head, "HTTP/1.1 200 ", 13) == 0 || strncmp(head, "HTTP/1.0 200 ", 13) == 0;
	if (!status_ok) {
		atomic_fetch_add(&n_non200, 1);
		char *nl = strpbrk(head, "\r\n");
		if (nl)
			*nl = '\0';
		report_once(&reported_status, "non-200 answer", head_len ? head : "(empty)");
	} else if (!eoh || (want >= 0 && (long)(total - (size_t)(eoh + 4 - head)) != want)) {
		snprintf(err, sizeof(err), "truncated answer: %zu bytes in all, Content-Length %ld",
		         total, want);
		goto fail;
	} else {
		good = true;
	}
	SSL_free(ssl);
	close(fd);
	if (good) {
		atomic_fetch_add(&n_ok, 1);
		if (ts->n == ts->cap) {
			size_t cap = ts->cap ? ts->cap * 2 : 4096;
			double *p = realloc(ts->lat, cap * sizeof(double));
			if (p) {
				ts->lat = p;
				ts->cap = cap;
			}
		}
		if (ts->n < ts->cap)
			ts->lat[ts->n++] = (now_s() - t0) * 1000.0;
	}
	return good;
fail:
	atomic_fetch_add(&n_err, 1);
	report_once(&reported_err, "connection error", err);
	if (ssl)
		SSL_free(ssl);
	if (fd >= 0)
		close(fd);
	return false;
}

static void *client_main(void *arg)
{
	thread_state *ts = arg;
	while (claim())
		(void)one_connection(ts);
	return NULL;
}

static int cmp_double(const void *a, const void *b)
{
	double x = *(const double *)a, y = *(const double *)b;
	return x < y ? -1 : x > y;
}

int main(int argc, char **argv)
{
	const char *connect_to = NULL;
	for (int i = 1; i < argc; i++) {
		const char *a = argv[i];
		const char *v = i + 1 < argc ? argv[i + 1] : NULL;
		if (strcmp(a, "--help") == 0 || strcmp(a, "-h") == 0) {
			usage(stdout);
			return 0;
		}
		if (!v) {
			usage(stderr);
			return 64;
		}
		if (strcmp(a, "--connect") == 0)
			connect_to = v;
		else if (strcmp(a, "--path") == 0)
			path = v;
		else if (strcmp(a, "--group") == 0)
			group = v;
		else if (strcmp(a, "--clients") == 0)
			clients = atoi(v);
		else if (strcmp(a, "--duration") == 0)
			duration_s = atof(v);
		else if (strcmp(a, "--requests") == 0)
			max_requests = atol(v);
		else if (strcmp(a, "--ciphersuites") == 0)
			ciphersuites = v;
		else if (strcmp(a, "--header") == 0 && nheaders < MAX_HEADERS)
			headers[nheaders++] = v;
		else {
			usage(stderr);
			return 64;
		}
		i++;
	}
	if (!connect_to || !group || clients < 1 || clients > 4096 ||
	    (duration_s <= 0 && max_requests <= 0)) {
		usage(stderr);
		return 64;
	}
	static char hostbuf[256];
	const char *colon = strrchr(connect_to, ':');
	if (!colon || (size_t)(colon - connect_to) >= sizeof(hostbuf)) {
		usage(stderr);
		return 64;
	}
	memcpy(hostbuf, connect_to, (size_t)(colon - connect_to));
	hostbuf[colon - connect_to] = '\0';
	host = hostbuf;
	port_s = colon + 1;

	struct addrinfo hints = {0};
	hints.ai_socktype = SOCK_STREAM;
	hints.ai_flags = AI_NUMERICSERV;
	int rc = getaddrinfo(host, port_s, &hints, &addr);
	if (rc != 0) {
		fprintf(stderr, "hsload: %s: %s\n", connect_to, gai_strerror(rc));
		return 2;
	}
	ctx = SSL_CTX_new(TLS_client_method());
	if (!ctx || SSL_CTX_set_min_proto_version(ctx, TLS1_3_VERSION) != 1 ||
	    SSL_CTX_set1_groups_list(ctx, group) != 1 ||
	    (ciphersuites && SSL_CTX_set_ciphersuites(ctx, ciphersuites) != 1)) {
		fprintf(stderr, "hsload: TLS set-up failed (group %s): ", group);
		ERR_print_errors_fp(stderr);
		return 2;
	}
	/* no client session cache and no tickets kept: nothing to resume */
	SSL_CTX_set_session_cache_mode(ctx, SSL_SESS_CACHE_OFF);
	SSL_CTX_set_options(ctx, SSL_OP_NO_TICKET | SSL_OP_IGNORE_UNEXPECTED_EOF);
	/* the benchmark measures the server's handshake cost, so the client does not verify
	 * the chain (both servers present the same certificate anyway) */
	SSL_CTX_set_verify(ctx, SSL_VERIFY_NONE, NULL);

	int n = snprintf(request, sizeof(request),
	                 "GET %s HTTP/1.1\r\nHost: %s\r\nUser-Agent: pqota-hsload\r\n", path, host);
	for (int i = 0; i < nheaders && n > 0 && (size_t)n < sizeof(request); i++)
		n += snprintf(request + n, sizeof(request) - (size_t)n, "%s\r\n", headers[i]);
	if (n > 0 && (size_t)n < sizeof(request))
		n +=
		    snprintf(request + n, sizeof(request) - (size_t)n, "Connection: close\r\n\r\n");
	if (n <= 0 || (size_t)n >= sizeof(request)) {
		fprintf(stderr, "hsload: request too long\n");
		return 64;
	}
	request_len = (size_t)n;

	pthread_t *th = calloc((size_t)clients, sizeof(*th));
	thread_state *ts = calloc((size_t)clients, sizeof(*ts));
	if (!th || !ts) {
		fprintf(stderr, "hsload: out of memory\n");
		return 2;
	}
	t_start = now_s();
	t_stop = t_start + duration_s;
	int started = 0;
	for (; started < clients; started++) {
		pthread_attr_t at;
		pthread_attr_init(&at);
		pthread_attr_setstacksize(&at, 256 * 1024);
		rc = pthread_create(&th[started], &at, client_main, &ts[started]);
		pthread_attr_destroy(&at);
		if (rc != 0) {
			fprintf(stderr, "hsload: thread %d: %s\n", started, strerror(rc));
			break;
		}
	}
	for (int i = 0; i < started; i++)
		pthread_join(th[i], NULL);
	double elapsed = now_s() - t_start;

	size_t total = 0;
	for (int i = 0; i < started; i++)
		total += ts[i].n;
	double *all = malloc((total ? total : 1) * sizeof(double));
	size_t k = 0;
	for (int i = 0; i < started && all; i++) {
		memcpy(all + k, ts[i].lat, ts[i].n * sizeof(double));
		k += ts[i].n;
		free(ts[i].lat);
	}
	double p50 = 0, p99 = 0, mx = 0;
	if (all && k) {
		qsort(all, k, sizeof(double), cmp_double);
		p50 = all[k / 2];
		p99 = all[(k * 99) / 100 < k ? (k * 99) / 100 : k - 1];
		mx = all[k - 1];
	}
	long ok = atomic_load(&n_ok);
	printf("ok=%ld errors=%ld reused=%ld wrong_group=%ld non_200=%ld elapsed_s=%.3f "
	       "rate_per_s=%.1f p50_ms=%.2f p99_ms=%.2f max_ms=%.2f clients=%d\n",
	       ok, atomic_load(&n_err), atomic_load(&n_reused), atomic_load(&n_wrong_group),
	       atomic_load(&n_non200), elapsed, elapsed > 0 ? (double)ok / elapsed : 0.0, p50, p99,
	       mx, started);
	free(all);
	free(th);
	free(ts);
	SSL_CTX_free(ctx);
	freeaddrinfo(addr);
	return 0;
}
