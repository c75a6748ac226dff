/* cmd_bench_pack.c: `pqota bench pack`: package build, verify and extract throughput per
 * codec on real code, then the delta benchmark (cmd_bench_delta.c): pqota next to bsdiff,
 * xdelta3 and zstd --patch-from on firmware, system libraries, synthetic images and an
 * incompressible pair. This file parses the options, runs the package part and prints it. */
#include <errno.h>
#include <getopt.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <zlib.h>
#include <zstd.h>

#include "bench/bench.h"
#include "cli/bench_out.h"
#include "cli/cli.h"
#include "core/fileio.h"
#include "pkg/swpg.h"
#include "tls/tls.h"

#define TIMEOUT_DEFAULT     900.0 /* s, per measured step */
#define BSDIFF_MAX_DEFAULT  256   /* MiB */
#define APPLY_LIMIT_DEFAULT 64    /* MiB */

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
	if (cli_bench_json) {
		cli_json_row("pack");
		cli_json_field("codec", swpg_comp_name(comp));
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
	if (cli_bench_json) {
		cli_json_row("image");
		cli_json_field("source", BENCH_LIB_DIR);
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
	if (cli_bench_json) {
		cli_json_row("memory");
		cli_json_field("after", when);
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

/* ---- options and the run ------------------------------------------------------------------- */

static void pack_usage(FILE *f)
{
	fprintf(
	    f,
	    "usage: pqota bench pack [--quick | --large] [--pair NAME]... [--list] [--json]\n"
	    "                        [--timeout S] [--bsdiff-max MIB] [--apply-limit MIB]\n"
	    "\n"
	    "1. Package throughput: images of 10 MB and 100 MB (2 MB with --quick) made of the\n"
	    "   shared libraries of " BENCH_LIB_DIR "; for none, zlib and zstd: build, open +\n"
	    "   deep verify and extract throughput, the package/image ratio and the peak RSS.\n"
	    "2. Deltas side by side: pqota (pkg_build_leaf with a base, pkg_apply_delta), bsdiff,\n"
	    "   xdelta3 -9 (-B: the base, <= 1 GiB) and zstd --ultra -%d --single-thread\n"
	    "   --long=W --patch-from (W: the smallest window holding base + new, <= 31),\n"
	    "   each step in its own process: delta\n"
	    "   size, encode and apply time and peak RSS; every output must be byte-identical.\n"
	    "   Then pqota's ratios to each tool and to the best of them, issue 13's targets\n"
	    "   (met / NOT met) and a markdown summary. Pairs (--list shows them):\n"
	    "   - firmware from Debian (scripts/fetch-firmware caches it once);\n"
	    "   - libcrypto (Debian's to pqota's OpenSSL), libLLVM 14 -> 15 (not --quick);\n"
	    "   - synthetic images (seeded): 100 MB with edits, insertions, moved blocks;\n"
	    "     random-32m, an incompressible pair; --quick: 4 MB ones; --large adds 1 GB.\n"
	    "   For bsdiff, xdelta3, zstd: " BOOTSTRAP_HINT ".\n"
	    "  --quick            small pairs only, no 100 MB image (~1 min)\n"
	    "  --large            also the 1 GB images (slow; needs ~5 GB in TMPDIR)\n"
	    "  --pair NAME        only this pair (repeatable; skips the package part)\n"
	    "  --list             list the pairs and exit\n"
	    "  --make DIR         write the --pair synthetic pairs into DIR (NAME.old, NAME.new)\n"
	    "                     and exit, to try other tools on them\n"
	    "  --json             machine-readable output\n"
	    "  --timeout S        stop a step after S seconds (default %.0f; 0: never)\n"
	    "  --bsdiff-max MIB   skip bsdiff on files above MIB (default %d; 0: no cap)\n"
	    "  --apply-limit MIB  the apply memory target (default %d)\n",
	    BENCH_ZSTD_LEVEL, TIMEOUT_DEFAULT, BSDIFF_MAX_DEFAULT, APPLY_LIMIT_DEFAULT);
}

static void pack_header(bool quick)
{
	if (cli_bench_json) {
		printf(
		    "{\"openssl\":\"%s\",\"zstd\":\"%s\",\"zlib\":\"%s\",\"quick\":%s,\"rows\":[\n",
		    tls_openssl_version(), ZSTD_versionString(), zlibVersion(),
		    quick ? "true" : "false");
		cli_json_row("memory");
		cli_json_field("after", "start");
		printf(",\"peak_rss_kib\":%ld}", bench_peak_rss_kib());
	} else {
		printf("pqota bench pack%s: %s, zstd %s, zlib %s\n", quick ? " --quick" : "",
		       tls_openssl_version(), ZSTD_versionString(), zlibVersion());
	}
	fflush(stdout);
}

static void throughput_header(void)
{
	if (cli_bench_json)
		return;
	printf("build: pkg_build_leaf; verify: pkg_open + pkg_verify; extract: "
	       "pkg_extract_image\n"
	       "(MB/s of image bytes, each includes its fsync; ratio: package/image bytes)\n"
	       "memory peak RSS %.1f MiB at start\n"
	       "%-6s %10s %-5s %5s %14s %7s %11s %11s %12s\n",
	       mib(bench_peak_rss_kib()), "group", "image", "codec", "level", "package bytes",
	       "ratio", "build MB/s", "verify MB/s", "extract MB/s");
}

/* The package throughput part in the temporary directory dir. */
static int throughput_run(const char *dir, bool quick)
{
	static const uint64_t full_sizes[] = {10000000, 100000000}, quick_sizes[] = {2000000};
	const uint64_t *sizes = quick ? quick_sizes : full_sizes;
	size_t nsizes = quick ? 1 : 2;
	int rc = PQ_OK;
	throughput_header();
	for (size_t i = 0; rc == PQ_OK && i < nsizes; i++) {
		char when[32];
		rc = pack_size(dir, sizes[i]);
		snprintf(when, sizeof(when), "%.0f MB runs", (double)sizes[i] / 1e6);
		if (rc == PQ_OK)
			print_rss(when, sizes[i]);
	}
	return rc;
}

/* A number option within lo..hi into *out. */
static int num_opt(const char *name, const char *s, double lo, double hi, double *out)
{
	char *end;
	errno = 0;
	*out = strtod(s, &end);
	if (errno || end == s || *end || *out < lo || *out > hi)
		return cli_usage_error("bench", "%s takes %g..%g", name, lo, hi);
	return CLI_EXIT_OK;
}

typedef struct {
	bool quick, large, list;
	const char *make_dir; /* --make DIR: write the --pair synthetic pairs there and exit */
	size_t npairs;
	double timeout, bsdiff_max, apply_limit;
	cli_delta_run run;
} pack_args;

/* One option c (getopt's) into a; CLI_EXIT_OK or a usage error's exit status. */
static int pack_opt(int c, pack_args *a)
{
	switch (c) {
	case 'q':
		a->quick = true;
		return CLI_EXIT_OK;
	case 'L':
		a->large = true;
		return CLI_EXIT_OK;
	case 'l':
		a->list = true;
		return CLI_EXIT_OK;
	case 'm':
		a->make_dir = optarg;
		return CLI_EXIT_OK;
	case 'j':
		cli_bench_json = true;
		return CLI_EXIT_OK;
	case 'p':
		if (a->npairs + 1 >= sizeof(a->run.only) / sizeof(a->run.only[0]))
			return cli_usage_error("bench", "too many --pair options");
		a->run.only[a->npairs++] = optarg;
		return CLI_EXIT_OK;
	case 't':
		return num_opt("--timeout", optarg, 0, 86400, &a->timeout);
	case 'b':
		return num_opt("--bsdiff-max", optarg, 0, 1 << 20, &a->bsdiff_max);
	case 'a':
		return num_opt("--apply-limit", optarg, 1, 1 << 20, &a->apply_limit);
	default:
		return cli_usage_error("bench", "bad option");
	}
}

static int pack_parse(int argc, char **argv, pack_args *a)
{
	static const struct option lo[] = {{"quick", no_argument, NULL, 'q'},
	                                   {"large", no_argument, NULL, 'L'},
	                                   {"list", no_argument, NULL, 'l'},
	                                   {"make", required_argument, NULL, 'm'},
	                                   {"json", no_argument, NULL, 'j'},
	                                   {"pair", required_argument, NULL, 'p'},
	                                   {"timeout", required_argument, NULL, 't'},
	                                   {"bsdiff-max", required_argument, NULL, 'b'},
	                                   {"apply-limit", required_argument, NULL, 'a'},
	                                   {"help", no_argument, NULL, 'h'},
	                                   {NULL, 0, NULL, 0}};
	int c, st;
	*a = (pack_args){.timeout = TIMEOUT_DEFAULT,
	                 .bsdiff_max = BSDIFF_MAX_DEFAULT,
	                 .apply_limit = APPLY_LIMIT_DEFAULT};
	optind = 1;
	while ((c = getopt_long(argc, argv, "h", lo, NULL)) != -1) {
		if (c == 'h') {
			pack_usage(stdout);
			return -1;
		}
		if ((st = pack_opt(c, a)) != CLI_EXIT_OK)
			return st;
	}
	if (optind != argc)
		return cli_usage_error("bench", "unexpected argument '%s'", argv[optind]);
	if (a->make_dir && !a->npairs)
		return cli_usage_error("bench", "--make DIR needs --pair NAME");
	if (a->quick && a->large)
		return cli_usage_error("bench", "--quick and --large exclude each other");
	a->run.sets = a->npairs  ? BENCH_SET_QUICK | BENCH_SET_FULL | BENCH_SET_LARGE
	              : a->quick ? BENCH_SET_QUICK
	              : a->large ? BENCH_SET_FULL | BENCH_SET_LARGE
	                         : BENCH_SET_FULL;
	a->run.opts.bsdiff_max = (uint64_t)a->bsdiff_max << 20;
	a->run.apply_limit_kib = (long)a->apply_limit * 1024;
	bench_set_timeout(a->timeout);
	return CLI_EXIT_OK;
}

int cmd_bench_pack(int argc, char **argv)
{
	pack_args a;
	char dir[PATH_MAX];
	int rc = pack_parse(argc, argv, &a);
	if (rc != CLI_EXIT_OK)
		return rc < 0 ? CLI_EXIT_OK : rc;
	if (a.make_dir) {
		rc = cli_bench_make_pairs(&a.run, a.make_dir);
		return rc == PQ_OK ? CLI_EXIT_OK : cli_error(rc, "bench pack --make");
	}
	if (a.list) {
		rc = cli_bench_list_pairs(
		    a.quick ? BENCH_SET_QUICK : BENCH_SET_QUICK | BENCH_SET_FULL | BENCH_SET_LARGE);
		return rc == PQ_OK ? CLI_EXIT_OK : cli_error(rc, "bench pack");
	}
	rc = bench_tmpdir_make(dir, sizeof(dir));
	if (rc != PQ_OK)
		return cli_error(rc, "bench pack");
	pack_header(a.quick);
	if (!a.npairs)
		rc = throughput_run(dir, a.quick);
	if (rc == PQ_OK) {
		/* the delta tools' peaks are their own, not this process's */
		bench_reset_peak_rss();
		rc = cli_bench_deltas(dir, &a.run);
	}
	char detail[512];
	snprintf(detail, sizeof(detail), "%s", pq_err_detail());
	if (bench_tmpdir_remove(dir) != PQ_OK)
		fprintf(stderr, "pqota: warning: %s\n", pq_err_detail());
	if (cli_bench_json)
		printf("\n]}\n");
	if (rc != PQ_OK)
		return cli_error(pq_err_set(rc, "%s", detail), "bench pack");
	return CLI_EXIT_OK;
}
