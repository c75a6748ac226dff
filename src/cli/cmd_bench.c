/* cmd_bench.c: `pqota bench crypto`: throughput of each primitive and full TLS handshakes
 * per profile over loopback; `pqota bench pack`: package build, verify and extract
 * throughput per codec on real code, and deltas next to bsdiff and xdelta3. Both print a
 * table (or JSON). The measuring is src/bench/ (pqota_bench); this file parses the
 * arguments, chooses what to run and prints. */
#include <errno.h>
#include <getopt.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <openssl/crypto.h>
#include <zlib.h>
#include <zstd.h>

#include "bench/bench.h"
#include "cli/cli.h"
#include "core/fileio.h"
#include "pkg/swpg.h"
#include "tls/tls.h"

#define BOOTSTRAP_HINT "run scripts/bootstrap --with bench"

static bool json_out;
static int rows;

/* ---- output -------------------------------------------------------------------------------- */

/* One crypto row (bench_row_fn). */
static void row(void *user, const char *group, const char *name, double ops, double bytes_per_op)
{
	(void)user;
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

static double mb_per_s(uint64_t bytes, double secs)
{
	return secs > 0 ? (double)bytes / 1e6 / secs : 0;
}

static double mib(long kib)
{
	return (double)kib / 1024.0;
}

/* ---- pqota bench pack: packages ------------------------------------------------------------ */

static const uint8_t pack_comps[] = {SWPG_COMP_NONE, SWPG_COMP_ZLIB, SWPG_COMP_ZSTD};

static void pack_row(uint64_t size, uint8_t comp, const bench_pack_result *r)
{
	double ratio = (double)r->package_bytes / (double)size;
	char lv[8] = "";
	if (bench_comp_level(comp))
		snprintf(lv, sizeof(lv), "%d", bench_comp_level(comp));
	if (json_out) {
		json_row("pack");
		json_field("codec", swpg_comp_name(comp));
		printf(
		    ",\"level\":%s,\"image_bytes\":%llu,\"package_bytes\":%llu,\"ratio\":%.4f,"
		    "\"build_s\":%.4f,\"verify_s\":%.4f,\"extract_s\":%.4f,"
		    "\"build_mb_per_s\":%.1f,\"verify_mb_per_s\":%.1f,\"extract_mb_per_s\":%.1f}",
		    lv[0] ? lv : "null", (unsigned long long)size,
		    (unsigned long long)r->package_bytes, ratio, r->build_s, r->verify_s,
		    r->extract_s, mb_per_s(size, r->build_s), mb_per_s(size, r->verify_s),
		    mb_per_s(size, r->extract_s));
	} else {
		printf("%-6s %7.0f MB %-5s %5s %14llu %7.3f %11.1f %11.1f %12.1f\n", "pack",
		       (double)size / 1e6, swpg_comp_name(comp), lv[0] ? lv : "-",
		       (unsigned long long)r->package_bytes, ratio, mb_per_s(size, r->build_s),
		       mb_per_s(size, r->verify_s), mb_per_s(size, r->extract_s));
	}
	fflush(stdout);
}

static void image_row(uint64_t size, size_t nfiles)
{
	if (json_out) {
		json_row("image");
		json_field("source", BENCH_LIB_DIR);
		printf(",\"image_bytes\":%llu,\"files\":%zu}", (unsigned long long)size, nfiles);
	} else {
		printf(
		    "%-6s %7.0f MB image: %zu shared libraries of %s (<= %u MiB each, by name)\n",
		    "image", (double)size / 1e6, nfiles, BENCH_LIB_DIR, BENCH_IMG_FILE_MAX >> 20);
	}
}

/* One image of `size` bytes, then each codec on it. */
static int pack_size(const char *dir, uint64_t size)
{
	char img[PATH_MAX];
	size_t nfiles = 0;
	int rc = pq_path_join(img, sizeof(img), dir, "image.bin");
	if (rc == PQ_OK)
		rc = bench_make_image(BENCH_LIB_DIR, img, size, &nfiles);
	if (rc != PQ_OK)
		return pq_err_wrap(rc, "making a %llu-byte image", (unsigned long long)size);
	image_row(size, nfiles);
	for (size_t i = 0; rc == PQ_OK && i < sizeof(pack_comps); i++) {
		bench_pack_result r;
		rc = bench_pack_codec(dir, img, size, pack_comps[i], &r);
		if (rc == PQ_OK)
			pack_row(size, pack_comps[i], &r);
	}
	unlink(img);
	return rc;
}

static void print_rss(const char *when, uint64_t image)
{
	long kib = bench_peak_rss_kib();
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

/* ---- pqota bench pack: deltas next to bsdiff and xdelta3 ------------------------------------ */

static void delta_row(const char *pair, bench_tool tool, const bench_delta_result *r,
                      uint64_t new_size)
{
	const char *name = bench_tool_name(tool);
	if (json_out) {
		json_row("delta");
		json_field("pair", pair);
		json_field("tool", name);
		if (!r->ran)
			json_field("skipped", "not installed: " BOOTSTRAP_HINT);
		else if (r->rc != PQ_OK)
			json_field("error", r->error);
		else
			printf(",\"delta_bytes\":%llu,\"create_s\":%.4f,\"apply_s\":%.4f,"
			       "\"create_rss_kib\":%ld,\"apply_rss_kib\":%ld,\"identical\":true",
			       (unsigned long long)r->size, r->create_s, r->apply_s, r->create_rss,
			       r->apply_rss);
		printf("}");
	} else if (!r->ran) {
		printf("  %-8s skipped: not installed (%s)\n", name, BOOTSTRAP_HINT);
	} else if (r->rc != PQ_OK) {
		printf("  %-8s FAILED: %s\n", name, r->error);
	} else {
		printf("  %-8s %12llu %8.2f %% %9.2f %8.3f %6.1f MiB %6.1f MiB  identical\n", name,
		       (unsigned long long)r->size, 100.0 * (double)r->size / (double)new_size,
		       r->create_s, r->apply_s, mib(r->create_rss), mib(r->apply_rss));
	}
	fflush(stdout);
}

static void ratio_row(const char *pair, bench_tool vs, const bench_delta_result *p,
                      const bench_delta_result *o)
{
	double sz = (double)p->size / (double)o->size, ct = p->create_s / o->create_s,
	       at = p->apply_s / o->apply_s;
	if (json_out) {
		json_row("delta-ratio");
		json_field("pair", pair);
		json_field("vs", bench_tool_name(vs));
		printf(",\"size\":%.4f,\"create_time\":%.4f,\"apply_time\":%.4f}", sz, ct, at);
	} else {
		printf("  pqota/%-8s size %.3f   create time %.3f   apply time %.3f\n",
		       bench_tool_name(vs), sz, ct, at);
	}
}

static void pair_header(const char *pair, const char *old_path, uint64_t old_size,
                        const char *new_path, uint64_t new_size)
{
	if (json_out) {
		json_row("delta-pair");
		json_field("pair", pair);
		json_field("old", old_path);
		json_field("new", new_path);
		printf(",\"old_bytes\":%lld,\"new_bytes\":%lld,\"level\":%d}", (long long)old_size,
		       (long long)new_size, BENCH_DELTA_LEVEL);
	} else {
		printf("\ndelta  %s\n  old %s (%lld bytes)\n  new %s (%lld bytes)\n"
		       "  %-8s %12s %10s %9s %8s %10s %10s  %s\n",
		       pair, old_path, (long long)old_size, new_path, (long long)new_size, "tool",
		       "delta bytes", "% of new", "create s", "apply s", "create RSS", "apply RSS",
		       "output");
	}
	fflush(stdout);
}

/* Every available tool on one pair; the first tool's failure (the others still run). */
static int delta_pair(const char *dir, const bench_tools *t, const char *pair, const char *old_path,
                      const char *new_path)
{
	bench_delta_result res[BENCH_TOOL_COUNT] = {{0}};
	uint64_t old_size, new_size;
	int rc = bench_file_size(old_path, &old_size);
	if (rc == PQ_OK)
		rc = bench_file_size(new_path, &new_size);
	if (rc != PQ_OK)
		return pq_err_wrap(rc, "%s", pair);
	pair_header(pair, old_path, old_size, new_path, new_size);
	int first_failed = -1;
	for (int i = 0; i < BENCH_TOOL_COUNT; i++) {
		if (bench_tool_available(i, t) &&
		    bench_delta_run(i, t, dir, old_path, new_path, &res[i]) != PQ_OK &&
		    first_failed < 0)
			first_failed = i;
		delta_row(pair, i, &res[i], new_size);
	}
	const bench_delta_result *p = &res[BENCH_TOOL_PQOTA];
	for (int i = BENCH_TOOL_BSDIFF; i < BENCH_TOOL_COUNT; i++)
		if (p->ran && p->rc == PQ_OK && res[i].ran && res[i].rc == PQ_OK)
			ratio_row(pair, i, p, &res[i]);
	if (!json_out)
		printf(
		    "  (pqota: zstd level %d patched from the base; its create and apply include\n"
		    "  SHA-256 checks and fsync; RSS: the peak of each tool's process)\n",
		    BENCH_DELTA_LEVEL);
	fflush(stdout);
	if (first_failed >= 0)
		return pq_err_set(res[first_failed].rc, "%s", res[first_failed].error);
	return PQ_OK;
}

/* The system's libcrypto.so.3 to the one pqota runs on, when they differ. */
static int delta_openssl_pair(const char *dir, const bench_tools *t)
{
	static const char sys_crypto[] = BENCH_LIB_DIR "/libcrypto.so.3";
	char cur[PATH_MAX], sys_real[PATH_MAX], pair[128];
	int rc = bench_loaded_libcrypto(cur, sizeof(cur));
	if (rc != PQ_OK)
		return rc;
	if (!realpath(sys_crypto, sys_real))
		return pq_err_set(PQ_ERR_NOTFOUND, "%s: %s", sys_crypto, strerror(errno));
	if (strcmp(cur, sys_real) == 0) {
		fprintf(stderr, "pqota: pqota runs on the system's libcrypto: no OpenSSL pair\n");
		return PQ_OK;
	}
	snprintf(pair, sizeof(pair), "libcrypto.so.3: system (Debian) -> OpenSSL %s",
	         OpenSSL_version(OPENSSL_VERSION_STRING));
	return delta_pair(dir, t, pair, sys_crypto, cur);
}

/* Debian's libLLVM 14 to 15, when both are installed. */
static int delta_llvm_pair(const char *dir, const bench_tools *t)
{
	static const char llvm_old[] = BENCH_LIB_DIR "/libLLVM-14.so.1",
	                  llvm_new[] = BENCH_LIB_DIR "/libLLVM-15.so.1";
	if (access(llvm_old, R_OK) == 0 && access(llvm_new, R_OK) == 0)
		return delta_pair(dir, t,
		                  "libLLVM: Debian libllvm14 (14.0.6) -> libllvm15 (15.0.6)",
		                  llvm_old, llvm_new);
	if (json_out) {
		json_row("delta-pair");
		json_field("note",
		           "no second pair: libLLVM-14.so.1 and libLLVM-15.so.1 not both present");
		printf("}");
	} else {
		printf("\ndelta  no second pair: %s and %s are not both present (one pair only)\n",
		       llvm_old, llvm_new);
	}
	return PQ_OK;
}

static int deltas(const char *dir, bool quick)
{
	bench_tools t;
	bench_tools_find(&t);
	if (!t.bsdiff)
		fprintf(stderr, "pqota: bsdiff/bspatch not found, skipping them: %s\n",
		        BOOTSTRAP_HINT);
	if (!t.xdelta3)
		fprintf(stderr, "pqota: xdelta3 not found, skipping it: %s\n", BOOTSTRAP_HINT);
	int first_err = delta_openssl_pair(dir, &t);
	if (quick)
		return first_err;
	char detail[512];
	snprintf(detail, sizeof(detail), "%s", pq_err_detail());
	int rc = delta_llvm_pair(dir, &t);
	if (first_err != PQ_OK) /* the first failure is the one reported */
		return pq_err_set(first_err, "%s", detail);
	return rc;
}

/* ---- pqota bench pack ------------------------------------------------------------------------ */

static void pack_usage(FILE *f)
{
	fprintf(
	    f,
	    "usage: pqota bench pack [--quick] [--json]\n"
	    "\n"
	    "Package throughput and deltas, on real code:\n"
	    " - images of 10 MB and 100 MB (2 MB with --quick) made of the shared libraries of\n"
	    "   " BENCH_LIB_DIR " (by name) in a temporary directory; for each of\n"
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
	    BENCH_DELTA_LEVEL);
}

static void pack_header(bool quick)
{
	if (json_out) {
		printf(
		    "{\"openssl\":\"%s\",\"zstd\":\"%s\",\"zlib\":\"%s\",\"quick\":%s,\"rows\":[\n",
		    tls_openssl_version(), ZSTD_versionString(), zlibVersion(),
		    quick ? "true" : "false");
		json_row("memory");
		json_field("after", "start");
		printf(",\"peak_rss_kib\":%ld}", bench_peak_rss_kib());
	} else {
		printf(
		    "pqota bench pack%s: %s, zstd %s, zlib %s\n"
		    "build: pkg_build_leaf; verify: pkg_open + pkg_verify; extract: "
		    "pkg_extract_image\n"
		    "(MB/s of image bytes, each includes its fsync; ratio: package/image bytes)\n"
		    "memory peak RSS %.1f MiB at start\n"
		    "%-6s %10s %-5s %5s %14s %7s %11s %11s %12s\n",
		    quick ? " --quick" : "", tls_openssl_version(), ZSTD_versionString(),
		    zlibVersion(), mib(bench_peak_rss_kib()), "group", "image", "codec", "level",
		    "package bytes", "ratio", "build MB/s", "verify MB/s", "extract MB/s");
	}
	fflush(stdout);
}

/* The whole pack benchmark in the temporary directory dir. */
static int pack_run(const char *dir, bool quick)
{
	static const uint64_t full_sizes[] = {10000000, 100000000}, quick_sizes[] = {2000000};
	const uint64_t *sizes = quick ? quick_sizes : full_sizes;
	size_t nsizes = quick ? 1 : 2;
	int rc = PQ_OK;
	for (size_t i = 0; rc == PQ_OK && i < nsizes; i++) {
		char when[32];
		rc = pack_size(dir, sizes[i]);
		snprintf(when, sizeof(when), "%.0f MB runs", (double)sizes[i] / 1e6);
		if (rc == PQ_OK)
			print_rss(when, sizes[i]);
	}
	if (rc == PQ_OK) {
		/* the delta tools' peaks are their own, not this process's */
		bench_reset_peak_rss();
		rc = deltas(dir, quick);
	}
	return rc;
}

static int cmd_bench_pack(int argc, char **argv)
{
	static const struct option lo[] = {{"quick", no_argument, NULL, 'q'},
	                                   {"json", no_argument, NULL, 'j'},
	                                   {"help", no_argument, NULL, 'h'},
	                                   {NULL, 0, NULL, 0}};
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
	rc = bench_tmpdir_make(dir, sizeof(dir));
	if (rc != PQ_OK)
		return cli_error(rc, "bench pack");
	pack_header(quick);
	rc = pack_run(dir, quick);
	if (bench_tmpdir_remove(dir) != PQ_OK)
		fprintf(stderr, "pqota: warning: %s\n", pq_err_detail());
	if (json_out)
		printf("\n]}\n");
	if (rc != PQ_OK)
		return cli_error(rc, "bench pack");
	return CLI_EXIT_OK;
}

/* ---- pqota bench crypto ---------------------------------------------------------------------- */

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

/* The handshakes, with their certificates in a temporary directory. */
static int crypto_handshakes(double secs)
{
	char dir[PATH_MAX];
	int rc = bench_tmpdir_make(dir, sizeof(dir));
	if (rc != PQ_OK)
		return rc;
	rc = bench_crypto_handshakes(dir, secs, row, NULL);
	char detail[512];
	snprintf(detail, sizeof(detail), "%s", pq_err_detail());
	if (bench_tmpdir_remove(dir) != PQ_OK)
		fprintf(stderr, "pqota: warning: %s\n", pq_err_detail());
	return rc == PQ_OK ? PQ_OK : pq_err_set(rc, "%s", detail);
}

static int cmd_bench_crypto(int argc, char **argv)
{
	static const struct option lo[] = {{"seconds", required_argument, NULL, 's'},
	                                   {"only", required_argument, NULL, 'o'},
	                                   {"json", no_argument, NULL, 'j'},
	                                   {"help", no_argument, NULL, 'h'},
	                                   {NULL, 0, NULL, 0}};
	double secs = 0.5;
	const char *only = NULL;
	int c, rc;
	optind = 1;
	while ((c = getopt_long(argc, argv, "h", lo, NULL)) != -1) {
		switch (c) {
		case 's': {
			char *end;
			errno = 0;
			secs = strtod(optarg, &end);
			if (errno || end == optarg || *end || secs < 0.01 || secs > 60)
				return cli_usage_error("bench", "--seconds takes 0.01..60");
			break;
		}
		case 'o':
			if (strcmp(optarg, "primitives") != 0 && strcmp(optarg, "handshakes") != 0)
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
		rc = bench_crypto_primitives(secs, row, NULL);
	if (rc == PQ_OK && (!only || strcmp(only, "handshakes") == 0))
		rc = crypto_handshakes(secs);
	if (json_out)
		printf("\n]}\n");
	if (rc != PQ_OK)
		return cli_error(rc, "bench crypto");
	return CLI_EXIT_OK;
}

int cmd_bench(int argc, char **argv)
{
	if (argc < 2 || strcmp(argv[1], "--help") == 0 || strcmp(argv[1], "-h") == 0) {
		usage(argc < 2 ? stderr : stdout);
		return argc < 2 ? CLI_EXIT_USAGE : CLI_EXIT_OK;
	}
	if (strcmp(argv[1], "pack") == 0)
		return cmd_bench_pack(argc - 1, argv + 1);
	if (strcmp(argv[1], "crypto") == 0)
		return cmd_bench_crypto(argc - 1, argv + 1);
	return cli_usage_error("bench", "unknown benchmark '%s' (crypto, pack)", argv[1]);
}
