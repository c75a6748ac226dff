/* cmd_bench.c: `pqota bench crypto`: throughput of each primitive and full TLS handshakes
 * per profile over loopback; `pqota bench pack`: package build, verify and extract
 * throughput per codec on real code, and deltas next to bsdiff and xdelta3. Both print a
 * table (or JSON). */
#include <dirent.h>
#include <dlfcn.h>
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <limits.h>
#include <spawn.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <openssl/crypto.h>
#include <openssl/ssl.h>
#include <zlib.h>
#include <zstd.h>

#include "cli/cli.h"
#include "core/fileio.h"
#include "crypto/aead.h"
#include "crypto/cert.h"
#include "crypto/hash.h"
#include "crypto/kem.h"
#include "crypto/profile.h"
#include "crypto/sig.h"
#include "pkg/codec.h"
#include "pkg/pkg.h"
#include "tls/probe.h"
#include "tls/tls.h"

static double now_s(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

typedef int (*op_fn)(void *arg);

/* Runs fn repeatedly for about `secs`; returns operations per second (negative on error). */
static double measure(op_fn fn, void *arg, double secs)
{
	double t0 = now_s(), t;
	long n = 0;
	do {
		for (int i = 0; i < 4; i++, n++)
			if (fn(arg) != PQ_OK)
				return -1;
		t = now_s();
	} while (t - t0 < secs);
	return (double)n / (t - t0);
}

static bool json_out;
static int rows;

static void row(const char *group, const char *name, double ops, double bytes_per_op)
{
	if (ops < 0) {
		printf(json_out ? "%s{\"group\":\"%s\",\"name\":\"%s\",\"error\":\"%s\"}"
		                : "%-10s %-30s FAILED: %s\n",
		       json_out ? (rows ? ",\n " : " ") : "", group, name, pq_err_detail());
		rows++;
		return;
	}
	if (json_out) {
		printf("%s{\"group\":\"%s\",\"name\":\"%s\",\"ops_per_s\":%.1f",
		       rows ? ",\n " : " ", group, name, ops);
		if (bytes_per_op > 0)
			printf(",\"mb_per_s\":%.1f", ops * bytes_per_op / 1e6);
		printf("}");
	} else if (bytes_per_op > 0) {
		printf("%-10s %-30s %12.1f ops/s %10.1f us/op %9.1f MB/s\n", group, name, ops,
		       1e6 / ops, ops * bytes_per_op / 1e6);
	} else {
		printf("%-10s %-30s %12.1f ops/s %10.1f us/op\n", group, name, ops, 1e6 / ops);
	}
	rows++;
	fflush(stdout);
}

/* ---- primitives ------------------------------------------------------------------------ */

struct buf_arg {
	uint8_t *buf;
	size_t len;
	pq_hash_alg alg;
	pq_aead *aead;
	uint64_t next; /* next chunk index: chunks are sealed in order */
	uint8_t *out;
};

static int op_hash(void *a)
{
	struct buf_arg *b = a;
	uint8_t d[PQ_HASH_MAX];
	return pq_hash(b->alg, b->buf, b->len, d);
}

static int op_crc(void *a)
{
	struct buf_arg *b = a;
	volatile uint32_t c = pq_crc32(0, b->buf, b->len);
	(void)c;
	return PQ_OK;
}

static int op_aead(void *a)
{
	struct buf_arg *b = a;
	return pq_aead_seal_chunk(b->aead, b->next++, b->buf, b->len, b->out);
}

struct sig_arg {
	pq_alg alg;
	pq_key *key;
	uint8_t msg[1024];
	uint8_t sig[PQ_HYBRID_SIG_MAX];
	size_t sig_len;
	pq_hybrid_key hyb;
};

static int op_keygen(void *a)
{
	struct sig_arg *s = a;
	pq_key *k = NULL;
	int rc = pq_key_generate(s->alg, &k);
	pq_key_free(k);
	return rc;
}

static int op_sign(void *a)
{
	struct sig_arg *s = a;
	s->sig_len = sizeof(s->sig);
	return pq_sign(s->key, NULL, s->msg, sizeof(s->msg), s->sig, &s->sig_len);
}

static int op_verify(void *a)
{
	struct sig_arg *s = a;
	return pq_verify(s->key, NULL, s->msg, sizeof(s->msg), s->sig, s->sig_len);
}

static int op_hsign(void *a)
{
	struct sig_arg *s = a;
	s->sig_len = sizeof(s->sig);
	return pq_hybrid_sign(&s->hyb, NULL, 0, s->msg, sizeof(s->msg), s->sig, &s->sig_len);
}

static int op_hverify(void *a)
{
	struct sig_arg *s = a;
	return pq_hybrid_verify(&s->hyb, NULL, 0, s->msg, sizeof(s->msg), s->sig, s->sig_len);
}

struct kem_arg {
	pq_key *key;
	uint8_t ct[PQ_KEM_CT_MAX];
	size_t ct_len;
	pq_wrap_recipient rcpt;
	uint8_t blob[PQ_WRAP_MAX];
	size_t blob_len;
};

static int op_encap(void *a)
{
	struct kem_arg *k = a;
	uint8_t ss[32];
	k->ct_len = sizeof(k->ct);
	return pq_kem_encap(k->key, NULL, 0, k->ct, &k->ct_len, ss);
}

static int op_decap(void *a)
{
	struct kem_arg *k = a;
	uint8_t ss[32];
	return pq_kem_decap(k->key, k->ct, k->ct_len, ss);
}

static int op_wrap(void *a)
{
	struct kem_arg *k = a;
	uint8_t key[32] = {1};
	k->blob_len = sizeof(k->blob);
	return pq_wrap(&k->rcpt, (const uint8_t *)"VIN", 3, key, 32, k->blob, &k->blob_len);
}

static int op_unwrap(void *a)
{
	struct kem_arg *k = a;
	uint8_t key[64];
	size_t kl = sizeof(key);
	return pq_unwrap(&k->rcpt, (const uint8_t *)"VIN", 3, k->blob, k->blob_len, key, &kl);
}

static int bench_primitives(double secs)
{
	static const pq_alg sig_algs[] = {PQ_ALG_ED25519, PQ_ALG_ECDSA_P256, PQ_ALG_MLDSA44,
	                                  PQ_ALG_MLDSA65, PQ_ALG_MLDSA87};
	static const pq_alg kem_algs[] = {PQ_ALG_X25519, PQ_ALG_MLKEM512, PQ_ALG_MLKEM768,
	                                  PQ_ALG_MLKEM1024};
	struct buf_arg b = {0};
	uint8_t hdr[PQ_AEAD_HDR_LEN], key[32] = {7};
	char name[64];
	int rc = PQ_OK;

	b.len = 1 << 20;
	b.buf = calloc(1, b.len);
	b.out = malloc(b.len + 16);
	if (!b.buf || !b.out) {
		rc = PQ_ERR_NOMEM;
		goto out;
	}
	for (int h = 0; h < 4; h++) {
		b.alg = (pq_hash_alg)h;
		snprintf(name, sizeof(name), "%s (1 MiB)", pq_hash_name(b.alg));
		row("hash", name, measure(op_hash, &b, secs), (double)b.len);
	}
	row("hash", "crc32 (1 MiB)", measure(op_crc, &b, secs), (double)b.len);
	b.len = PQ_AEAD_CHUNK_DEFAULT;
	/* a stream long enough for any run: 2^31 chunks of 64 KiB */
	rc = pq_aead_seal_init(key, (uint64_t)b.len << 31, (uint32_t)b.len, hdr, &b.aead);
	if (rc != PQ_OK)
		goto out;
	row("aead", "aes-256-gcm chunk (64 KiB)", measure(op_aead, &b, secs), (double)b.len);
	pq_aead_free(b.aead);

	for (size_t i = 0; i < sizeof(sig_algs) / sizeof(sig_algs[0]); i++) {
		struct sig_arg s = {.alg = sig_algs[i]};
		const char *n = pq_alg_name(s.alg);
		snprintf(name, sizeof(name), "%s keygen", n);
		row("sign", name, measure(op_keygen, &s, secs), 0);
		rc = pq_key_generate(s.alg, &s.key);
		if (rc != PQ_OK)
			goto out;
		snprintf(name, sizeof(name), "%s sign (1 KiB)", n);
		row("sign", name, measure(op_sign, &s, secs), 0);
		snprintf(name, sizeof(name), "%s verify (1 KiB)", n);
		row("sign", name, measure(op_verify, &s, secs), 0);
		pq_key_free(s.key);
	}
	{
		struct sig_arg s = {0};
		pq_key *c = NULL, *q = NULL;
		rc = pq_key_generate(PQ_ALG_ECDSA_P256, &c);
		if (rc == PQ_OK)
			rc = pq_key_generate(PQ_ALG_MLDSA65, &q);
		if (rc != PQ_OK) {
			pq_key_free(c);
			goto out;
		}
		s.hyb.classical = c;
		s.hyb.pq = q;
		row("sign", "hybrid ecdsa+ml-dsa-65 sign", measure(op_hsign, &s, secs), 0);
		row("sign", "hybrid ecdsa+ml-dsa-65 verify", measure(op_hverify, &s, secs), 0);
		pq_key_free(c);
		pq_key_free(q);
	}
	for (size_t i = 0; i < sizeof(kem_algs) / sizeof(kem_algs[0]); i++) {
		struct sig_arg s = {.alg = kem_algs[i]};
		struct kem_arg k = {0};
		const char *n = pq_alg_name(s.alg);
		snprintf(name, sizeof(name), "%s keygen", n);
		row("kem", name, measure(op_keygen, &s, secs), 0);
		rc = pq_key_generate(s.alg, &k.key);
		if (rc != PQ_OK)
			goto out;
		snprintf(name, sizeof(name), "%s encap", n);
		row("kem", name, measure(op_encap, &k, secs), 0);
		snprintf(name, sizeof(name), "%s decap", n);
		row("kem", name, measure(op_decap, &k, secs), 0);
		pq_key_free(k.key);
	}
	{
		struct kem_arg k = {0};
		pq_key *x = NULL, *m = NULL;
		rc = pq_key_generate(PQ_ALG_X25519, &x);
		if (rc == PQ_OK)
			rc = pq_key_generate(PQ_ALG_MLKEM768, &m);
		if (rc != PQ_OK) {
			pq_key_free(x);
			goto out;
		}
		k.rcpt.x25519 = x;
		k.rcpt.mlkem = m;
		row("kem", "hybrid key wrap (x25519+ml-kem-768)", measure(op_wrap, &k, secs), 0);
		row("kem", "hybrid key unwrap", measure(op_unwrap, &k, secs), 0);
		pq_key_free(x);
		pq_key_free(m);
	}
out:
	free(b.buf);
	free(b.out);
	return rc;
}

/* ---- handshakes ------------------------------------------------------------------------- */

struct hs_arg {
	SSL_CTX *cctx;
	char port[16];
};

static int op_handshake(void *a)
{
	struct hs_arg *h = a;
	tls_probe_result res;
	return tls_probe(h->cctx, "127.0.0.1", h->port, NULL, 5000, 0, &res);
}

static int write_pki(const char *dir, pq_alg alg)
{
	pq_key *cak = NULL, *sk = NULL;
	pq_cert *ca = NULL, *sc = NULL;
	char p[600];
	pq_cert_req careq = {.kind = PQ_CERT_CA, .common_name = "bench CA"};
	pq_cert_req sreq = {.kind = PQ_CERT_SERVER, .common_name = "localhost"};
	int rc = pq_key_generate(alg, &cak);
	if (rc == PQ_OK)
		rc = pq_cert_issue(&careq, cak, NULL, cak, &ca);
	if (rc == PQ_OK)
		rc = pq_key_generate(alg, &sk);
	if (rc == PQ_OK)
		rc = pq_cert_issue(&sreq, sk, ca, cak, &sc);
	if (rc == PQ_OK) {
		snprintf(p, sizeof(p), "%s/%s.crt", dir, pq_alg_name(alg));
		rc = pq_cert_save(sc, p, true);
	}
	if (rc == PQ_OK) {
		snprintf(p, sizeof(p), "%s/%s.key", dir, pq_alg_name(alg));
		rc = pq_key_save_private(sk, p, true);
	}
	pq_key_free(cak);
	pq_key_free(sk);
	pq_cert_free(ca);
	pq_cert_free(sc);
	return rc;
}

static int bench_handshakes(double secs)
{
	char dir[] = "/tmp/pqota-bench-XXXXXX";
	static const pq_alg algs[] = {PQ_ALG_ECDSA_P256, PQ_ALG_MLDSA44, PQ_ALG_MLDSA65,
	                              PQ_ALG_MLDSA87};
	int rc = PQ_OK;
	if (!mkdtemp(dir))
		return pq_err_set(PQ_ERR_IO, "temporary directory");
	for (size_t i = 0; rc == PQ_OK && i < 4; i++)
		rc = write_pki(dir, algs[i]);
	for (int id = 0; rc == PQ_OK && id < PQ_PROFILE_COUNT; id++) {
		const pq_profile *p = pq_profile_by_id(id);
		char cert[600], key[600], name[64];
		SSL_CTX *sctx = NULL;
		tls_responder *r = NULL;
		struct hs_arg h = {0};
		snprintf(cert, sizeof(cert), "%s/%s.crt", dir, pq_alg_name(p->cert_alg));
		snprintf(key, sizeof(key), "%s/%s.key", dir, pq_alg_name(p->cert_alg));
		tls_opts so = {.profile = p, .cert_file = cert, .key_file = key};
		tls_opts co = {.profile = p};
		rc = tls_server_ctx_new(&so, &sctx);
		if (rc == PQ_OK)
			rc = tls_client_ctx_new(&co, &h.cctx);
		/* full handshakes only: no session cache on either side */
		if (rc == PQ_OK) {
			SSL_CTX_set_session_cache_mode(sctx, SSL_SESS_CACHE_OFF);
			SSL_CTX_set_options(sctx, SSL_OP_NO_TICKET);
			SSL_CTX_set_session_cache_mode(h.cctx, SSL_SESS_CACHE_OFF);
			rc = tls_responder_new(sctx, "127.0.0.1", "0", &r);
		}
		if (rc == PQ_OK)
			rc = tls_responder_start(r, NULL, NULL);
		if (rc == PQ_OK) {
			snprintf(h.port, sizeof(h.port), "%d", tls_responder_port(r));
			snprintf(name, sizeof(name), "%2d %s", id, p->name);
			row("handshake", name, measure(op_handshake, &h, secs), 0);
		}
		tls_responder_free(r);
		SSL_CTX_free(sctx);
		SSL_CTX_free(h.cctx);
	}
	char cmd[64];
	snprintf(cmd, sizeof(cmd), "rm -rf %s", dir);
	if (system(cmd) != 0)
		fprintf(stderr, "pqota: warning: could not remove %s\n", dir);
	return rc;
}

/* ---- packages: pqota bench pack ---------------------------------------------------------- */

#define LIB_DIR        "/usr/lib/x86_64-linux-gnu"
#define IMG_FILE_MAX   (16u << 20) /* larger libraries are left out: no one file dominates */
#define BENCH_IO_BUF   (1u << 20)
#define DELTA_LEVEL    19
#define BENCH_ECU      0x1011 /* ECU_011 */
#define BOOTSTRAP_HINT "run scripts/bootstrap --with bench"

extern char **environ;

static const uint8_t pack_comps[] = {SWPG_COMP_NONE, SWPG_COMP_ZLIB, SWPG_COMP_ZSTD};

static double mb_per_s(uint64_t bytes, double secs)
{
	return secs > 0 ? (double)bytes / 1e6 / secs : 0;
}

static double mib(long kib)
{
	return (double)kib / 1024.0;
}

static long peak_rss_kib(void)
{
	struct rusage ru;
	return getrusage(RUSAGE_SELF, &ru) == 0 ? ru.ru_maxrss : -1;
}

/* Resets this process's RSS high-water mark (Linux >= 4.0) so that children started later
 * do not inherit it as their own peak (it is carried across fork and exec). */
static void reset_peak_rss(void)
{
	int fd = open("/proc/self/clear_refs", O_WRONLY | O_CLOEXEC);
	if (fd >= 0) {
		ssize_t n = write(fd, "5", 1);
		(void)n;
		close(fd);
	}
}

/* Starts a JSON row: {"group":"<group>" (the caller adds fields and the closing brace). */
static void json_row(const char *group)
{
	printf("%s{\"group\":\"%s\"", rows++ ? ",\n " : " ", group);
}

/* Prints ,"key":"value" with value escaped for JSON. */
static void json_field(const char *key, const char *v)
{
	printf(",\"%s\":\"", key);
	for (const unsigned char *p = (const unsigned char *)v; *p; p++) {
		if (*p == '"' || *p == '\\')
			printf("\\%c", *p);
		else if (*p < 0x20)
			printf("\\u%04x", *p);
		else
			putchar(*p);
	}
	putchar('"');
}

static int join(char *out, size_t len, const char *dir, const char *name)
{
	if (snprintf(out, len, "%s/%s", dir, name) >= (int)len)
		return pq_err_set(PQ_ERR_RANGE, "path too long: %s/%s", dir, name);
	return PQ_OK;
}

static int tmp_dir_make(char *dir, size_t len)
{
	const char *t = getenv("TMPDIR");
	if (!t || !*t)
		t = "/tmp";
	if (snprintf(dir, len, "%s/pqota-bench-XXXXXX", t) >= (int)len)
		return pq_err_set(PQ_ERR_RANGE, "TMPDIR too long");
	if (!mkdtemp(dir))
		return pq_err_set(PQ_ERR_IO, "temporary directory in %s: %s", t, strerror(errno));
	return PQ_OK;
}

/* Removes the (flat) temporary directory and whatever is left in it. */
static void tmp_dir_remove(const char *dir)
{
	DIR *d = opendir(dir);
	if (d) {
		struct dirent *de;
		while ((de = readdir(d)) != NULL)
			if (strcmp(de->d_name, ".") != 0 && strcmp(de->d_name, "..") != 0)
				unlinkat(dirfd(d), de->d_name, 0);
		closedir(d);
	}
	if (rmdir(dir) != 0)
		fprintf(stderr, "pqota: warning: could not remove %s: %s\n", dir, strerror(errno));
}

/* Compares two files byte for byte. */
static int files_equal(const char *a, const char *b, bool *equal)
{
	int fa = open(a, O_RDONLY | O_CLOEXEC), fb = open(b, O_RDONLY | O_CLOEXEC);
	uint8_t *ba = malloc(BENCH_IO_BUF), *bb = malloc(BENCH_IO_BUF);
	struct stat sa, sb;
	int rc = PQ_OK;

	*equal = false;
	if (fa < 0 || fb < 0)
		rc = pq_err_set(PQ_ERR_IO, "%s: %s", fa < 0 ? a : b, strerror(errno));
	else if (!ba || !bb)
		rc = pq_err_set(PQ_ERR_NOMEM, "comparison buffers");
	else if (fstat(fa, &sa) != 0 || fstat(fb, &sb) != 0)
		rc = pq_err_set(PQ_ERR_IO, "stat: %s", strerror(errno));
	if (rc == PQ_OK && sa.st_size == sb.st_size) {
		*equal = true;
		for (;;) {
			size_t ga = 0, gb = 0;
			rc = pq_read_full(fa, ba, BENCH_IO_BUF, &ga);
			if (rc == PQ_OK)
				rc = pq_read_full(fb, bb, BENCH_IO_BUF, &gb);
			if (rc != PQ_OK || ga != gb || memcmp(ba, bb, ga) != 0) {
				*equal = false;
				break;
			}
			if (ga < BENCH_IO_BUF)
				break;
		}
	}
	if (fa >= 0)
		close(fa);
	if (fb >= 0)
		close(fb);
	free(ba);
	free(bb);
	return rc;
}

static int by_name(const struct dirent **a, const struct dirent **b)
{
	return strcmp((*a)->d_name, (*b)->d_name);
}

static int is_lib_name(const struct dirent *de)
{
	return strstr(de->d_name, ".so") != NULL;
}

/* Writes an image of exactly `size` bytes to `path`: the shared libraries of LIB_DIR (regular
 * files of at most IMG_FILE_MAX bytes, each inode once) concatenated in strcmp order of their
 * names, the last one cut short. Real code, so compression ratios mean something. */
static int make_image(const char *path, uint64_t size, size_t *nfiles)
{
	struct dirent **names = NULL;
	ino_t *seen = NULL;
	size_t nseen = 0;
	uint8_t *buf = NULL;
	uint64_t done = 0;
	int out = -1, rc = PQ_OK;
	int n = scandir(LIB_DIR, &names, is_lib_name, by_name);

	*nfiles = 0;
	if (n < 0)
		return pq_err_set(PQ_ERR_IO, "%s: %s", LIB_DIR, strerror(errno));
	seen = calloc((size_t)n + 1, sizeof(*seen));
	buf = malloc(BENCH_IO_BUF);
	if (!seen || !buf)
		rc = pq_err_set(PQ_ERR_NOMEM, "image buffers");
	if (rc == PQ_OK) {
		out = open(path, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
		if (out < 0)
			rc = pq_err_set(PQ_ERR_IO, "%s: %s", path, strerror(errno));
	}
	for (int i = 0; rc == PQ_OK && i < n && done < size; i++) {
		char p[PATH_MAX];
		struct stat st;
		bool dup = false;
		if (join(p, sizeof(p), LIB_DIR, names[i]->d_name) != PQ_OK || lstat(p, &st) != 0 ||
		    !S_ISREG(st.st_mode) || st.st_size == 0 || st.st_size > IMG_FILE_MAX)
			continue;
		for (size_t k = 0; k < nseen && !dup; k++)
			dup = seen[k] == st.st_ino;
		if (dup)
			continue;
		seen[nseen++] = st.st_ino;
		int fd = open(p, O_RDONLY | O_CLOEXEC);
		if (fd < 0)
			continue; /* unreadable: not part of the image */
		(*nfiles)++;
		while (rc == PQ_OK && done < size) {
			size_t want =
			    size - done < BENCH_IO_BUF ? (size_t)(size - done) : BENCH_IO_BUF;
			size_t got = 0;
			rc = pq_read_full(fd, buf, want, &got);
			if (rc == PQ_OK)
				rc = pq_write_all(out, buf, got);
			done += got;
			if (got < want)
				break;
		}
		close(fd);
	}
	if (rc == PQ_OK && done < size)
		rc = pq_err_set(PQ_ERR_NOTFOUND,
		                "%s holds only %llu bytes of shared libraries, %llu wanted",
		                LIB_DIR, (unsigned long long)done, (unsigned long long)size);
	if (out >= 0 && close(out) != 0 && rc == PQ_OK)
		rc = pq_err_set(PQ_ERR_IO, "%s: %s", path, strerror(errno));
	if (rc != PQ_OK && out >= 0)
		unlink(path);
	for (int i = 0; i < n; i++)
		free(names[i]);
	free(names);
	free(seen);
	free(buf);
	return rc;
}

static int comp_level(uint8_t comp)
{
	return comp == SWPG_COMP_ZLIB   ? PKG_ZLIB_LEVEL_DEFAULT
	       : comp == SWPG_COMP_ZSTD ? PKG_ZSTD_LEVEL_DEFAULT
	                                : 0;
}

/* One codec on one image: build, open + deep verify, extract, then check the extracted
 * image is the input. */
static int bench_pack_codec(const char *dir, const char *img, uint64_t size, uint8_t comp)
{
	char pkg[PATH_MAX], out[PATH_MAX];
	pkg_leaf_opts o = {.ecu = BENCH_ECU,
	                   .type = SWPG_TYPE_APP,
	                   .version = {2, 1, 0, 0},
	                   .timestamp = 1,
	                   .compression = comp};
	pkg_unit u;
	pkg_reader *r = NULL;
	pkg_verify_report rep;
	const pkg_entry *all = NULL;
	size_t n = 0;
	bool same = false;
	double t0, t1, t2, t3;
	int rc = join(pkg, sizeof(pkg), dir, "image.swpg");
	if (rc == PQ_OK)
		rc = join(out, sizeof(out), dir, "image.out");
	if (rc != PQ_OK)
		return rc;

	t0 = now_s();
	rc = pkg_build_leaf(img, &o, pkg, &u);
	t1 = now_s();
	if (rc == PQ_OK)
		rc = pkg_open(pkg, &r);
	if (rc == PQ_OK)
		rc = pkg_verify(r, &rep, NULL);
	t2 = now_s();
	if (rc == PQ_OK)
		rc = pkg_list(r, &all, &n);
	if (rc == PQ_OK)
		rc = pkg_extract_image(r, &all[0], NULL, out, NULL);
	t3 = now_s();
	pkg_close(r);
	if (rc == PQ_OK)
		rc = files_equal(img, out, &same);
	if (rc == PQ_OK && !same)
		rc = pq_err_set(PQ_ERR_VERIFY, "the extracted image differs from the input");
	if (rc == PQ_OK && u.image_size != size)
		rc = pq_err_set(PQ_ERR_VERIFY, "built %llu image bytes, not %llu",
		                (unsigned long long)u.image_size, (unsigned long long)size);
	unlink(pkg);
	unlink(out);
	if (rc != PQ_OK)
		return pq_err_wrap(rc, "%s, %llu-byte image", swpg_comp_name(comp),
		                   (unsigned long long)size);

	double ratio = (double)u.size / (double)size;
	char lv[8] = "";
	if (comp_level(comp))
		snprintf(lv, sizeof(lv), "%d", comp_level(comp));
	if (json_out) {
		json_row("pack");
		json_field("codec", swpg_comp_name(comp));
		printf(
		    ",\"level\":%s,\"image_bytes\":%llu,\"package_bytes\":%llu,\"ratio\":%.4f,"
		    "\"build_s\":%.4f,\"verify_s\":%.4f,\"extract_s\":%.4f,"
		    "\"build_mb_per_s\":%.1f,\"verify_mb_per_s\":%.1f,\"extract_mb_per_s\":%.1f}",
		    lv[0] ? lv : "null", (unsigned long long)size, (unsigned long long)u.size,
		    ratio, t1 - t0, t2 - t1, t3 - t2, mb_per_s(size, t1 - t0),
		    mb_per_s(size, t2 - t1), mb_per_s(size, t3 - t2));
	} else {
		printf("%-6s %7.0f MB %-5s %5s %14llu %7.3f %11.1f %11.1f %12.1f\n", "pack",
		       (double)size / 1e6, swpg_comp_name(comp), lv[0] ? lv : "-",
		       (unsigned long long)u.size, ratio, mb_per_s(size, t1 - t0),
		       mb_per_s(size, t2 - t1), mb_per_s(size, t3 - t2));
	}
	fflush(stdout);
	return PQ_OK;
}

static int bench_pack_size(const char *dir, uint64_t size)
{
	char img[PATH_MAX];
	size_t nfiles = 0;
	int rc = join(img, sizeof(img), dir, "image.bin");
	if (rc == PQ_OK)
		rc = make_image(img, size, &nfiles);
	if (rc != PQ_OK)
		return pq_err_wrap(rc, "making a %llu-byte image", (unsigned long long)size);
	if (json_out) {
		json_row("image");
		json_field("source", LIB_DIR);
		printf(",\"image_bytes\":%llu,\"files\":%zu}", (unsigned long long)size, nfiles);
	} else {
		printf(
		    "%-6s %7.0f MB image: %zu shared libraries of %s (<= %u MiB each, by name)\n",
		    "image", (double)size / 1e6, nfiles, LIB_DIR, IMG_FILE_MAX >> 20);
	}
	for (size_t i = 0; rc == PQ_OK && i < sizeof(pack_comps); i++)
		rc = bench_pack_codec(dir, img, size, pack_comps[i]);
	unlink(img);
	return rc;
}

static void print_rss(const char *when, uint64_t image)
{
	long kib = peak_rss_kib();
	if (json_out) {
		json_row("memory");
		json_field("after", when);
		printf(",\"peak_rss_kib\":%ld,\"largest_image_bytes\":%llu}", kib,
		       (unsigned long long)image);
	} else {
		printf(
		    "%-6s peak RSS %.1f MiB after the %s (largest image %.0f MB: RSS is %.1f%% of "
		    "it)\n",
		    "memory", mib(kib), when, (double)image / 1e6,
		    100.0 * (double)kib * 1024.0 / (double)image);
	}
	fflush(stdout);
}

/* ---- deltas against bsdiff and xdelta3 --------------------------------------------------- */

typedef struct {
	bool bsdiff, xdelta3;
	char bsdiff_path[PATH_MAX], bspatch_path[PATH_MAX], xdelta3_path[PATH_MAX];
} bench_tools;

/* Finds an executable in $PATH. */
static bool find_tool(const char *name, char *out, size_t len)
{
	const char *path = getenv("PATH");
	if (!path || !*path)
		path = "/usr/local/bin:/usr/bin:/bin";
	while (*path) {
		size_t dl = strcspn(path, ":");
		struct stat st;
		if (dl > 0 && snprintf(out, len, "%.*s/%s", (int)dl, path, name) < (int)len &&
		    stat(out, &st) == 0 && S_ISREG(st.st_mode) && access(out, X_OK) == 0)
			return true;
		path += dl;
		if (*path == ':')
			path++;
	}
	return false;
}

static int wait_child(pid_t pid, const char *what, double t0, double *secs, long *rss_kib)
{
	struct rusage ru;
	int st;
	while (wait4(pid, &st, 0, &ru) < 0)
		if (errno != EINTR)
			return pq_err_set(PQ_ERR_IO, "waiting for %s: %s", what, strerror(errno));
	*secs = now_s() - t0;
	*rss_kib = ru.ru_maxrss;
	if (WIFSIGNALED(st))
		return pq_err_set(PQ_ERR_IO, "%s was killed by signal %d", what, WTERMSIG(st));
	if (!WIFEXITED(st) || WEXITSTATUS(st) != 0)
		return pq_err_set(PQ_ERR_IO, "%s exited with status %d", what,
		                  WIFEXITED(st) ? WEXITSTATUS(st) : -1);
	return PQ_OK;
}

/* Runs argv (argv[0] an absolute path; no shell) with stdout on /dev/null and waits. */
static int run_tool(char *const argv[], double *secs, long *rss_kib)
{
	posix_spawn_file_actions_t fa;
	pid_t pid;
	int err = posix_spawn_file_actions_init(&fa);
	if (err != 0)
		return pq_err_set(PQ_ERR_IO, "posix_spawn: %s", strerror(err));
	err = posix_spawn_file_actions_addopen(&fa, STDOUT_FILENO, "/dev/null", O_WRONLY, 0);
	double t0 = now_s();
	if (err == 0)
		err = posix_spawn(&pid, argv[0], &fa, NULL, argv, environ);
	posix_spawn_file_actions_destroy(&fa);
	if (err != 0)
		return pq_err_set(PQ_ERR_IO, "cannot run %s: %s", argv[0], strerror(err));
	return wait_child(pid, argv[0], t0, secs, rss_kib);
}

typedef int (*child_fn)(const void *arg);

/* Runs fn in a forked child, like the external tools, so that its time and peak RSS are
 * measured the same way; a failure's detail comes back through a pipe. */
static int run_forked(child_fn fn, const void *arg, double *secs, long *rss_kib)
{
	char detail[1024];
	size_t got = 0;
	int p[2];
	if (pipe2(p, O_CLOEXEC) != 0)
		return pq_err_set(PQ_ERR_IO, "pipe: %s", strerror(errno));
	fflush(stdout);
	fflush(stderr);
	double t0 = now_s();
	pid_t pid = fork();
	if (pid < 0) {
		close(p[0]);
		close(p[1]);
		return pq_err_set(PQ_ERR_IO, "fork: %s", strerror(errno));
	}
	if (pid == 0) {
		close(p[0]);
		int rc = fn(arg);
		if (rc != PQ_OK) {
			const char *d = pq_err_detail();
			ssize_t w = write(p[1], d, strlen(d));
			(void)w;
		}
		_exit(rc == PQ_OK ? 0 : 1);
	}
	close(p[1]);
	for (;;) {
		char tmp[256];
		ssize_t n = read(p[0], tmp, sizeof(tmp));
		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0)
			break;
		size_t take =
		    (size_t)n < sizeof(detail) - 1 - got ? (size_t)n : sizeof(detail) - 1 - got;
		memcpy(detail + got, tmp, take);
		got += take;
	}
	detail[got] = '\0';
	close(p[0]);
	int rc = wait_child(pid, "pqota", t0, secs, rss_kib);
	if (rc != PQ_OK && got)
		rc = pq_err_set(PQ_ERR_VERIFY, "%s", detail);
	return rc;
}

typedef struct {
	const char *old_path, *new_path;
	char patch[PATH_MAX], out[PATH_MAX];
} delta_files;

static int pqota_delta_create(const void *a)
{
	const delta_files *d = a;
	pkg_leaf_opts o = {.ecu = BENCH_ECU,
	                   .type = SWPG_TYPE_APP,
	                   .version = {2, 0, 0, 0},
	                   .timestamp = 1,
	                   .level = DELTA_LEVEL,
	                   .base_path = d->old_path,
	                   .base_version = {1, 0, 0, 0}};
	pkg_unit u;
	return pkg_build_leaf(d->new_path, &o, d->patch, &u);
}

static int pqota_delta_apply(const void *a)
{
	const delta_files *d = a;
	pkg_reader *r = NULL;
	const pkg_entry *all = NULL;
	size_t n = 0;
	int rc = pkg_open(d->patch, &r);
	if (rc == PQ_OK)
		rc = pkg_list(r, &all, &n);
	if (rc == PQ_OK)
		rc = pkg_apply_delta(r, &all[0], d->old_path, d->out, NULL);
	pkg_close(r);
	return rc;
}

enum {
	TOOL_PQOTA,
	TOOL_BSDIFF,
	TOOL_XDELTA3,
	TOOL_COUNT
};
static const char *const tool_names[TOOL_COUNT] = {"pqota", "bsdiff", "xdelta3"};

typedef struct {
	bool ran;
	int rc;
	uint64_t size;
	double create_s, apply_s;
	long create_rss, apply_rss;
} tool_result;

/* Creates and applies one tool's delta from old to new, then checks the output is new. */
static int delta_tool(int tool, const bench_tools *t, delta_files *d, tool_result *res)
{
	struct stat st;
	bool same = false;
	int rc;
	char *o = (char *)d->old_path, *nw = (char *)d->new_path;

	memset(res, 0, sizeof(*res));
	res->ran = true;
	unlink(d->patch);
	unlink(d->out);
	switch (tool) {
	case TOOL_PQOTA:
		rc = run_forked(pqota_delta_create, d, &res->create_s, &res->create_rss);
		if (rc == PQ_OK)
			rc = run_forked(pqota_delta_apply, d, &res->apply_s, &res->apply_rss);
		break;
	case TOOL_BSDIFF: {
		char *mk[] = {(char *)t->bsdiff_path, o, nw, d->patch, NULL};
		char *ap[] = {(char *)t->bspatch_path, o, d->out, d->patch, NULL};
		rc = run_tool(mk, &res->create_s, &res->create_rss);
		if (rc == PQ_OK)
			rc = run_tool(ap, &res->apply_s, &res->apply_rss);
		break;
	}
	default: {
		char *x = (char *)t->xdelta3_path;
		char *mk[] = {x, "-e", "-9", "-s", o, nw, d->patch, NULL};
		char *ap[] = {x, "-d", "-s", o, d->patch, d->out, NULL};
		rc = run_tool(mk, &res->create_s, &res->create_rss);
		if (rc == PQ_OK)
			rc = run_tool(ap, &res->apply_s, &res->apply_rss);
		break;
	}
	}
	if (rc == PQ_OK) {
		if (stat(d->patch, &st) == 0)
			res->size = (uint64_t)st.st_size;
		else
			rc = pq_err_set(PQ_ERR_IO, "%s: %s", d->patch, strerror(errno));
	}
	if (rc == PQ_OK)
		rc = files_equal(d->out, d->new_path, &same);
	if (rc == PQ_OK && !same)
		rc = pq_err_set(PQ_ERR_VERIFY, "the patched output is not byte-identical to %s",
		                d->new_path);
	unlink(d->patch);
	unlink(d->out);
	if (rc != PQ_OK)
		rc = pq_err_wrap(rc, "%s", tool_names[tool]);
	res->rc = rc;
	return rc;
}

static void delta_row(const char *pair, int tool, const tool_result *r, uint64_t new_size)
{
	if (json_out) {
		json_row("delta");
		json_field("pair", pair);
		json_field("tool", tool_names[tool]);
		if (!r->ran)
			json_field("skipped", "not installed: " BOOTSTRAP_HINT);
		else if (r->rc != PQ_OK)
			json_field("error", pq_err_detail());
		else
			printf(",\"delta_bytes\":%llu,\"create_s\":%.4f,\"apply_s\":%.4f,"
			       "\"create_rss_kib\":%ld,\"apply_rss_kib\":%ld,\"identical\":true",
			       (unsigned long long)r->size, r->create_s, r->apply_s, r->create_rss,
			       r->apply_rss);
		printf("}");
	} else if (!r->ran) {
		printf("  %-8s skipped: not installed (%s)\n", tool_names[tool], BOOTSTRAP_HINT);
	} else if (r->rc != PQ_OK) {
		printf("  %-8s FAILED: %s\n", tool_names[tool], pq_err_detail());
	} else {
		printf("  %-8s %12llu %8.2f %% %9.2f %8.3f %6.1f MiB %6.1f MiB  identical\n",
		       tool_names[tool], (unsigned long long)r->size,
		       100.0 * (double)r->size / (double)new_size, r->create_s, r->apply_s,
		       mib(r->create_rss), mib(r->apply_rss));
	}
	fflush(stdout);
}

static void ratio_row(const char *pair, int vs, const tool_result *p, const tool_result *o)
{
	double sz = (double)p->size / (double)o->size, ct = p->create_s / o->create_s,
	       at = p->apply_s / o->apply_s;
	if (json_out) {
		json_row("delta-ratio");
		json_field("pair", pair);
		json_field("vs", tool_names[vs]);
		printf(",\"size\":%.4f,\"create_time\":%.4f,\"apply_time\":%.4f}", sz, ct, at);
	} else {
		printf("  pqota/%-8s size %.3f   create time %.3f   apply time %.3f\n",
		       tool_names[vs], sz, ct, at);
	}
}

static int bench_delta_pair(const char *dir, const bench_tools *t, const char *pair,
                            const char *old_path, const char *new_path)
{
	delta_files d = {.old_path = old_path, .new_path = new_path};
	tool_result res[TOOL_COUNT] = {{0}};
	struct stat so, sn;
	int rc = join(d.patch, sizeof(d.patch), dir, "delta.patch");
	if (rc == PQ_OK)
		rc = join(d.out, sizeof(d.out), dir, "delta.out");
	if (rc != PQ_OK)
		return rc;
	if (stat(old_path, &so) != 0 || stat(new_path, &sn) != 0)
		return pq_err_set(PQ_ERR_NOTFOUND, "%s: %s", pair, strerror(errno));
	if (json_out) {
		json_row("delta-pair");
		json_field("pair", pair);
		json_field("old", old_path);
		json_field("new", new_path);
		printf(",\"old_bytes\":%lld,\"new_bytes\":%lld,\"level\":%d}",
		       (long long)so.st_size, (long long)sn.st_size, DELTA_LEVEL);
	} else {
		printf("\ndelta  %s\n  old %s (%lld bytes)\n  new %s (%lld bytes)\n"
		       "  %-8s %12s %10s %9s %8s %10s %10s  %s\n",
		       pair, old_path, (long long)so.st_size, new_path, (long long)sn.st_size,
		       "tool", "delta bytes", "% of new", "create s", "apply s", "create RSS",
		       "apply RSS", "output");
	}
	fflush(stdout);
	int first_err = PQ_OK;
	for (int i = 0; i < TOOL_COUNT; i++) {
		bool have = i == TOOL_PQOTA || (i == TOOL_BSDIFF ? t->bsdiff : t->xdelta3);
		if (have && delta_tool(i, t, &d, &res[i]) != PQ_OK && first_err == PQ_OK)
			first_err = res[i].rc;
		delta_row(pair, i, &res[i], (uint64_t)sn.st_size);
	}
	for (int i = TOOL_BSDIFF; i < TOOL_COUNT; i++)
		if (res[TOOL_PQOTA].ran && res[TOOL_PQOTA].rc == PQ_OK && res[i].ran &&
		    res[i].rc == PQ_OK)
			ratio_row(pair, i, &res[TOOL_PQOTA], &res[i]);
	if (!json_out)
		printf(
		    "  (pqota: zstd level %d patched from the base; its create and apply include\n"
		    "  SHA-256 checks and fsync; RSS: the peak of each tool's process)\n",
		    DELTA_LEVEL);
	fflush(stdout);
	return first_err;
}

/* The libcrypto.so.3 this process runs on (OpenSSL >= 3.5): found through the loaded library,
 * else where scripts/bootstrap puts it. */
static int loaded_libcrypto(char *out)
{
	Dl_info info;
	void *sym = dlsym(RTLD_DEFAULT, "OpenSSL_version");
	char p[PATH_MAX];
	if (sym && dladdr(sym, &info) && info.dli_fname && strstr(info.dli_fname, "libcrypto") &&
	    realpath(info.dli_fname, out))
		return PQ_OK;
	const char *c = getenv("PQOTA_CACHE"), *x = getenv("XDG_CACHE_HOME"), *h = getenv("HOME");
	int n = c && *c   ? snprintf(p, sizeof(p), "%s", c)
	        : x && *x ? snprintf(p, sizeof(p), "%s/pqota", x)
	                  : snprintf(p, sizeof(p), "%s/.cache/pqota", h ? h : "");
	if (n < 0 || (size_t)n >= sizeof(p) ||
	    strlen(p) + sizeof("/openssl-current/lib/libcrypto.so.3") > sizeof(p))
		return pq_err_set(PQ_ERR_RANGE, "cache path too long");
	strcat(p, "/openssl-current/lib/libcrypto.so.3");
	if (!realpath(p, out))
		return pq_err_set(PQ_ERR_NOTFOUND, "cannot locate the loaded libcrypto (%s: %s)", p,
		                  strerror(errno));
	return PQ_OK;
}

static int bench_deltas(const char *dir, bool quick)
{
	static const char sys_crypto[] = LIB_DIR "/libcrypto.so.3";
	static const char llvm_old[] = LIB_DIR "/libLLVM-14.so.1",
	                  llvm_new[] = LIB_DIR "/libLLVM-15.so.1";
	bench_tools t = {0};
	char cur[PATH_MAX], sys_real[PATH_MAX], pair[128];
	int rc, first_err = PQ_OK;

	t.bsdiff = find_tool("bsdiff", t.bsdiff_path, sizeof(t.bsdiff_path)) &&
	           find_tool("bspatch", t.bspatch_path, sizeof(t.bspatch_path));
	t.xdelta3 = find_tool("xdelta3", t.xdelta3_path, sizeof(t.xdelta3_path));
	if (!t.bsdiff)
		fprintf(stderr, "pqota: bsdiff/bspatch not found, skipping them: %s\n",
		        BOOTSTRAP_HINT);
	if (!t.xdelta3)
		fprintf(stderr, "pqota: xdelta3 not found, skipping it: %s\n", BOOTSTRAP_HINT);

	rc = loaded_libcrypto(cur);
	if (rc != PQ_OK)
		return rc;
	if (!realpath(sys_crypto, sys_real))
		return pq_err_set(PQ_ERR_NOTFOUND, "%s: %s", sys_crypto, strerror(errno));
	if (strcmp(cur, sys_real) == 0) {
		fprintf(stderr, "pqota: pqota runs on the system's libcrypto: no OpenSSL pair\n");
	} else {
		snprintf(pair, sizeof(pair), "libcrypto.so.3: system (Debian) -> OpenSSL %s",
		         OpenSSL_version(OPENSSL_VERSION_STRING));
		first_err = bench_delta_pair(dir, &t, pair, sys_crypto, cur);
	}
	if (quick)
		return first_err;
	if (access(llvm_old, R_OK) == 0 && access(llvm_new, R_OK) == 0) {
		rc = bench_delta_pair(dir, &t,
		                      "libLLVM: Debian libllvm14 (14.0.6) -> libllvm15 (15.0.6)",
		                      llvm_old, llvm_new);
		if (first_err == PQ_OK)
			first_err = rc;
	} else if (json_out) {
		json_row("delta-pair");
		json_field("note",
		           "no second pair: libLLVM-14.so.1 and libLLVM-15.so.1 not both present");
		printf("}");
	} else {
		printf("\ndelta  no second pair: %s and %s are not both present (one pair only)\n",
		       llvm_old, llvm_new);
	}
	return first_err;
}

static void pack_usage(FILE *f)
{
	fprintf(
	    f,
	    "usage: pqota bench pack [--quick] [--json]\n"
	    "\n"
	    "Package throughput and deltas, on real code:\n"
	    " - images of 10 MB and 100 MB (2 MB with --quick) made of the shared libraries of\n"
	    "   " LIB_DIR " (by name) in a temporary directory; for each of\n"
	    "   none, zlib and zstd (default levels): build, open + deep verify and extract\n"
	    "   throughput (MB/s of image), the package/image size ratio, and the peak RSS;\n"
	    " - deltas (zstd level %d patched from the base) next to bsdiff and xdelta3 -9 on\n"
	    "   the same pairs: the system's libcrypto.so.3 to the OpenSSL pqota runs on, and\n"
	    "   libLLVM-14 to libLLVM-15 when present (not with --quick): sizes, create and\n"
	    "   apply times, peak RSS; every output must be byte-identical to the new file.\n"
	    "   For bsdiff and xdelta3: " BOOTSTRAP_HINT ".\n"
	    "A full run takes about 10 minutes on 2 cores (bsdiff on libLLVM takes 5 of them).\n"
	    "  --quick   a fast smoke run (2 MB images, the libcrypto pair only: ~15 s)\n"
	    "  --json    machine-readable output\n",
	    DELTA_LEVEL);
}

static int cmd_bench_pack(int argc, char **argv)
{
	static const struct option lo[] = {{"quick", no_argument, NULL, 'q'},
	                                   {"json", no_argument, NULL, 'j'},
	                                   {"help", no_argument, NULL, 'h'},
	                                   {NULL, 0, NULL, 0}};
	static const uint64_t full_sizes[] = {10000000, 100000000}, quick_sizes[] = {2000000};
	bool quick = false;
	char dir[PATH_MAX];
	int c, rc;

	optind = 1;
	while ((c = getopt_long(argc, argv, "h", lo, NULL)) != -1) {
		switch (c) {
		case 'q':
			quick = true;
			break;
		case 'j':
			json_out = true;
			break;
		case 'h':
			pack_usage(stdout);
			return CLI_EXIT_OK;
		default:
			return cli_usage_error("bench", "bad option");
		}
	}
	if (optind != argc)
		return cli_usage_error("bench", "unexpected argument '%s'", argv[optind]);
	const uint64_t *sizes = quick ? quick_sizes : full_sizes;
	size_t nsizes = quick ? 1 : 2;

	rc = tmp_dir_make(dir, sizeof(dir));
	if (rc != PQ_OK)
		return cli_error(rc, "bench pack");
	if (json_out) {
		printf(
		    "{\"openssl\":\"%s\",\"zstd\":\"%s\",\"zlib\":\"%s\",\"quick\":%s,\"rows\":[\n",
		    tls_openssl_version(), ZSTD_versionString(), zlibVersion(),
		    quick ? "true" : "false");
		json_row("memory");
		json_field("after", "start");
		printf(",\"peak_rss_kib\":%ld}", peak_rss_kib());
	} else {
		printf(
		    "pqota bench pack%s: %s, zstd %s, zlib %s\n"
		    "build: pkg_build_leaf; verify: pkg_open + pkg_verify; extract: "
		    "pkg_extract_image\n"
		    "(MB/s of image bytes, each includes its fsync; ratio: package/image bytes)\n"
		    "memory peak RSS %.1f MiB at start\n"
		    "%-6s %10s %-5s %5s %14s %7s %11s %11s %12s\n",
		    quick ? " --quick" : "", tls_openssl_version(), ZSTD_versionString(),
		    zlibVersion(), mib(peak_rss_kib()), "group", "image", "codec", "level",
		    "package bytes", "ratio", "build MB/s", "verify MB/s", "extract MB/s");
	}
	fflush(stdout);
	for (size_t i = 0; rc == PQ_OK && i < nsizes; i++) {
		char when[32];
		rc = bench_pack_size(dir, sizes[i]);
		snprintf(when, sizeof(when), "%.0f MB runs", (double)sizes[i] / 1e6);
		if (rc == PQ_OK)
			print_rss(when, sizes[i]);
	}
	if (rc == PQ_OK) {
		/* the delta tools' peaks are their own, not this process's */
		reset_peak_rss();
		rc = bench_deltas(dir, quick);
	}
	tmp_dir_remove(dir);
	if (json_out)
		printf("\n]}\n");
	if (rc != PQ_OK)
		return cli_error(rc, "bench pack");
	return CLI_EXIT_OK;
}

static void usage(FILE *f)
{
	fprintf(
	    f,
	    "usage: pqota bench crypto [--seconds S] [--only primitives|handshakes] [--json]\n"
	    "       pqota bench pack [--quick] [--json]\n"
	    "\n"
	    "crypto: measures each primitive (hashes, AEAD, signatures, KEMs, hybrid signature\n"
	    "and key wrap) and full TLS 1.3 handshakes per PQC profile over loopback (client and\n"
	    "responder in one process, one connection at a time), and prints a table.\n"
	    "  --seconds S   time per row (default 0.5)\n"
	    "pack: package build/verify/extract throughput per codec and deltas next to bsdiff\n"
	    "and xdelta3 ('pqota bench pack --help').\n");
}

int cmd_bench(int argc, char **argv)
{
	static const struct option lo[] = {{"seconds", required_argument, NULL, 's'},
	                                   {"only", required_argument, NULL, 'o'},
	                                   {"json", no_argument, NULL, 'j'},
	                                   {"help", no_argument, NULL, 'h'},
	                                   {NULL, 0, NULL, 0}};
	double secs = 0.5;
	const char *only = NULL;
	int c, rc;
	if (argc < 2 || strcmp(argv[1], "--help") == 0 || strcmp(argv[1], "-h") == 0) {
		usage(argc < 2 ? stderr : stdout);
		return argc < 2 ? CLI_EXIT_USAGE : CLI_EXIT_OK;
	}
	if (strcmp(argv[1], "pack") == 0)
		return cmd_bench_pack(argc - 1, argv + 1);
	if (strcmp(argv[1], "crypto") != 0)
		return cli_usage_error("bench", "unknown benchmark '%s' (crypto, pack)", argv[1]);
	argc--;
	argv++;
	optind = 1;
	while ((c = getopt_long(argc, argv, "h", lo, NULL)) != -1) {
		switch (c) {
		case 's': {
			char *end;
			secs = strtod(optarg, &end);
			if (*end || secs < 0.01 || secs > 60)
				return cli_usage_error("bench", "--seconds takes 0.01..60");
			break;
		}
		case 'o':
			if (strcmp(optarg, "primitives") && strcmp(optarg, "handshakes"))
				return cli_usage_error("bench", "--only primitives|handshakes");
			only = optarg;
			break;
		case 'j':
			json_out = true;
			break;
		case 'h':
			usage(stdout);
			return CLI_EXIT_OK;
		default:
			return cli_usage_error("bench", "bad option");
		}
	}
	if (optind != argc)
		return cli_usage_error("bench", "unexpected argument '%s'", argv[optind]);
	if (json_out)
		printf("{\"openssl\":\"%s\",\"rows\":[\n", tls_openssl_version());
	else
		printf("pqota bench crypto: %s, %.2f s per row\n%-10s %-30s %18s %16s\n",
		       tls_openssl_version(), secs, "group", "operation", "rate", "latency");
	rc = PQ_OK;
	if (!only || strcmp(only, "primitives") == 0)
		rc = bench_primitives(secs);
	if (rc == PQ_OK && (!only || strcmp(only, "handshakes") == 0))
		rc = bench_handshakes(secs);
	if (json_out)
		printf("\n]}\n");
	if (rc != PQ_OK)
		return cli_error(rc, "bench crypto");
	return CLI_EXIT_OK;
}
