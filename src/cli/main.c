/* main.c: the pqota command: dispatches to subcommands (like git) through one table that
 * also makes the usage text. */
#include <stdio.h>
#include <string.h>

#include "cli/cli.h"
#include "tls/tls.h"

/* From CMake's project(pqota VERSION ...) (CMakeLists.txt). */
#ifndef PQOTA_VERSION
#error "PQOTA_VERSION is defined by CMakeLists.txt from project(pqota VERSION ...)"
#endif

static int cmd_version(int argc, char **argv);
static int cmd_help(int argc, char **argv);

typedef struct {
	const char *name;
	int (*fn)(int argc, char **argv); /* argv[0] is the command's name */
	const char *summary;              /* NULL: an alias, left out of the usage text */
} command;

static const command commands[] = {
    {"keys", cmd_keys, "make a deployment's PKI and vehicle identities"},
    {"tls", cmd_tls, "probe a TLS endpoint (check) or run a TLS responder (serve)"},
    {"pack", cmd_pack, "build, verify, inspect, extract SWPG packages; deltas"},
    {"server", cmd_server, "the OEM server (HTTPS API, downloads); API keys"},
    {"broker", cmd_broker, "write a mosquitto configuration (TLS group, ACL) for a PKI"},
    {"diag", cmd_diag, "remote diagnostics: UDS requests to vehicles through the server"},
    {"vehicle", cmd_vehicle,
     "the vehicle gateway (VMG) agent; register, import, list, show, vci, readiness"},
    {"release", cmd_release, "upload firmware releases (resumable), list, show"},
    {"bundle", cmd_bundle, "upload pack build bundles (resumable) as release sets, list, show"},
    {"campaign", cmd_campaign, "create, start, pause, resume, cancel and watch campaigns"},
    {"apikey", cmd_apikey, "API keys over the API: create, list, revoke (admin)"},
    {"bench", cmd_bench, "benchmarks (crypto, pack)"},
    {"supervise", cmd_supervise, "run a command, restart it when it fails (no systemd)"},
    {"version", cmd_version, "print versions (pqota and the OpenSSL actually loaded)"},
    {"--version", cmd_version, NULL},
    {"help", cmd_help, NULL},
    {"--help", cmd_help, NULL},
    {"-h", cmd_help, NULL},
};

static void usage(FILE *f)
{
	fputs("usage: pqota <command> [options]\n"
	      "\n"
	      "Post-quantum-secure over-the-air updates for zonal vehicles.\n"
	      "\n"
	      "commands:\n",
	      f);
	for (size_t i = 0; i < sizeof(commands) / sizeof(commands[0]); i++)
		if (commands[i].summary)
			fprintf(f, "  %-9s %s\n", commands[i].name, commands[i].summary);
	fputs("\n'pqota <command> --help' describes each command.\n", f);
}

static int cmd_version(int argc, char **argv)
{
	(void)argc;
	(void)argv;
	printf("pqota %s\nOpenSSL %s (ML-KEM/ML-DSA: %s)\n", PQOTA_VERSION, tls_openssl_version(),
	       tls_openssl_has_pqc() ? "yes" : "NO");
	return tls_openssl_has_pqc() ? CLI_EXIT_OK : CLI_EXIT_FAIL;
}

static int cmd_help(int argc, char **argv)
{
	(void)argc;
	(void)argv;
	usage(stdout);
	return CLI_EXIT_OK;
}

int main(int argc, char **argv)
{
	if (argc < 2) {
		usage(stderr);
		return CLI_EXIT_USAGE;
	}
	for (size_t i = 0; i < sizeof(commands) / sizeof(commands[0]); i++)
		if (strcmp(argv[1], commands[i].name) == 0)
			return commands[i].fn(argc - 1, argv + 1);
	fprintf(stderr, "pqota: unknown command '%s'\n", argv[1]);
	usage(stderr);
	return CLI_EXIT_USAGE;
}
