/* main.c: the pqota command: dispatches to subcommands (like git). */
#include <stdio.h>
#include <string.h>

#include "cli/cli.h"
#include "tls/tls.h"

#ifndef PQOTA_VERSION
#define PQOTA_VERSION "0.1.0"
#endif

static void usage(FILE *f)
{
	fprintf(f, "usage: pqota <command> [options]\n"
	           "\n"
	           "Post-quantum-secure over-the-air updates for zonal vehicles.\n"
	           "\n"
	           "commands:\n"
	           "  keys     make a deployment's PKI and vehicle identities\n"
	           "  tls      probe a TLS endpoint (check) or run a TLS responder (serve)\n"
	           "  pack     build, verify, inspect, extract SWPG packages; deltas\n"
	           "  server   the OEM server (HTTPS API, downloads); API keys\n"
	           "  broker   write a mosquitto configuration (TLS group, ACL) for a PKI\n"
	           "  diag     remote diagnostics: UDS requests to vehicles through the server\n"
	           "  vehicle  the vehicle gateway (VMG) agent of one simulated vehicle\n"
	           "  bench    benchmarks (crypto, pack)\n"
	           "  version  print versions (pqota and the OpenSSL actually loaded)\n"
	           "\n"
	           "'pqota <command> --help' describes each command.\n");
}

int main(int argc, char **argv)
{
	if (argc < 2) {
		usage(stderr);
		return CLI_EXIT_USAGE;
	}
	const char *cmd = argv[1];
	if (strcmp(cmd, "keys") == 0)
		return cmd_keys(argc - 1, argv + 1);
	if (strcmp(cmd, "tls") == 0)
		return cmd_tls(argc - 1, argv + 1);
	if (strcmp(cmd, "server") == 0)
		return cmd_server(argc - 1, argv + 1);
	if (strcmp(cmd, "broker") == 0)
		return cmd_broker(argc - 1, argv + 1);
	if (strcmp(cmd, "diag") == 0)
		return cmd_diag(argc - 1, argv + 1);
	if (strcmp(cmd, "vehicle") == 0)
		return cmd_vehicle(argc - 1, argv + 1);
	if (strcmp(cmd, "pack") == 0)
		return cmd_pack(argc - 1, argv + 1);
	if (strcmp(cmd, "bench") == 0)
		return cmd_bench(argc - 1, argv + 1);
	if (strcmp(cmd, "version") == 0 || strcmp(cmd, "--version") == 0) {
		printf("pqota %s\nOpenSSL %s (ML-KEM/ML-DSA: %s)\n", PQOTA_VERSION,
		       tls_openssl_version(), tls_openssl_has_pqc() ? "yes" : "NO");
		return tls_openssl_has_pqc() ? CLI_EXIT_OK : CLI_EXIT_FAIL;
	}
	if (strcmp(cmd, "help") == 0 || strcmp(cmd, "--help") == 0 || strcmp(cmd, "-h") == 0) {
		usage(stdout);
		return CLI_EXIT_OK;
	}
	fprintf(stderr, "pqota: unknown command '%s'\n", cmd);
	usage(stderr);
	return CLI_EXIT_USAGE;
}
