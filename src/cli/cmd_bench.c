/* cmd_bench.c: `pqota bench crypto`: throughput of each primitive and full TLS handshakes
 * per profile over loopback, as a table (or JSON); the `pqota bench` dispatcher and the JSON
 * helpers of every benchmark. `pqota bench pack` is cmd_bench_pack.c and cmd_bench_delta.c.
 * The measuring is src/bench/ (pqota_bench); these files parse the arguments, choose what to
 * run and print. */
#include <errno.h>
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "bench/bench.h"
#include "cli/bench_out.h"
#include "cli/cli.h"
#include "tls/tls.h"

/* ---- output -------------------------------------------------------------------------------- */

bool cli_bench_json;
static int rows;

/* One crypto row (bench_row_fn). */
static void row(void *user, const char *group, const char *name, double ops, double bytes_per_op)
{
	(void)user;
	if (ops < 0) {
		printf(cli_bench_json ? "%s{\"group\":\"%s\",\"name\":\"%s\",\"error\":\"%s\"}"
		                      : "%-10s %-30s FAILED: %s\n",
		       cli_bench_json ? (rows ? ",\n " : " ") : "", group, name, pq_err_detail());
		rows++;
		return;
	}
	if (cli_bench_json) {
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
void cli_json_row(const char *group)
{
	printf("%s{\"group\":\"%s\"", rows++ ? ",\n " : " ", group);
}

/* Prints ,"key":"value" with value escaped for JSON. */
void cli_json_field(const char *key, const char *v)
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

/* ---- pqota bench crypto ---------------------------------------------------------------------- */

static void usage(FILE *f)
{
	fprintf(
	    f,
	    "usage: pqota bench crypto [--seconds S] [--only primitives|handshakes] [--json]\n"
	    "       pqota bench pack [--quick|--large] [--pair NAME]... [--json] [...]\n"
	    "\n"
	    "crypto: measures each primitive (hashes, AEAD, signatures, KEMs, hybrid signature\n"
	    "and key wrap) and full TLS 1.3 handshakes per PQC profile over loopback (client and\n"
	    "responder in one process, one connection at a time), and prints a table.\n"
	    "  --seconds S   time per row (default 0.5)\n"
	    "pack: package build/verify/extract throughput per codec, and deltas next to bsdiff,\n"
	    "xdelta3 and zstd --patch-from with ratios and issue 13's targets\n"
	    "('pqota bench pack --help').\n");
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
			cli_bench_json = true;
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
	if (cli_bench_json)
		printf("{\"openssl\":\"%s\",\"rows\":[\n", tls_openssl_version());
	else
		printf("pqota bench crypto: %s, %.2f s per row\n%-10s %-30s %18s %16s\n",
		       tls_openssl_version(), secs, "group", "operation", "rate", "latency");
	rc = PQ_OK;
	if (!only || strcmp(only, "primitives") == 0)
		rc = bench_crypto_primitives(secs, row, NULL);
	if (rc == PQ_OK && (!only || strcmp(only, "handshakes") == 0))
		rc = crypto_handshakes(secs);
	if (cli_bench_json)
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
