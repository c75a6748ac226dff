/* cmd_keys.c: `pqota keys init DIR` and `pqota keys vehicle VIN`. */
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli/cli.h"
#include "crypto/pki.h"
#include "crypto/profile.h"

#define MAX_SAN 8

static void usage(FILE *f)
{
	fprintf(f,
	        "usage: pqota keys init DIR [options]\n"
	        "       pqota keys vehicle VIN [--dir DIR] [--force]\n"
	        "       pqota keys profiles\n"
	        "\n"
	        "init: make a deployment's PKI in DIR: root CA; server, broker and server-client\n"
	        "certificates for the TLS profile; Uptane role keys for the signing policy.\n"
	        "  --profile ID|NAME     TLS profile (certificate algorithm), default %d (%s)\n"
	        "  --policy P            Uptane signing policy: hybrid (default), pq, classical\n"
	        "  --classical ALG       classical half: ecdsa-p256 (default) or ed25519\n"
	        "  --san-dns NAME        extra DNS name for server and broker (repeatable)\n"
	        "  --san-ip IP           extra IP address for server and broker (repeatable)\n"
	        "  --force               replace an existing PKI in DIR\n"
	        "\n"
	        "vehicle: issue a vehicle identity under DIR/vehicles/VIN: a client certificate\n"
	        "(CN = VIN, signed by DIR's CA) and X25519 + ML-KEM-768 key-wrap key pairs.\n"
	        "  --dir DIR             the PKI directory (default: $PQOTA_PKI or ./pki)\n"
	        "  --force               replace an existing identity\n"
	        "\n"
	        "profiles: list the 13 TLS profiles.\n"
	        "Private keys are written with mode 0600.\n",
	        PQ_PROFILE_DEFAULT, pq_profiles[PQ_PROFILE_DEFAULT].name);
}

static int list_profiles(void)
{
	printf("%-3s %-22s %-12s %-20s %-11s %s\n", "id", "name", "kem", "tls group", "cert",
	       "note");
	for (int i = 0; i < PQ_PROFILE_COUNT; i++) {
		const pq_profile *p = &pq_profiles[i];
		printf("%-3d %-22s %-12s %-20s %-11s %s\n", p->id, p->name, p->kem, p->tls_group,
		       pq_alg_name(p->cert_alg),
		       !p->pq_kex        ? "classical"
		       : p->hybrid_group ? (i == PQ_PROFILE_DEFAULT ? "hybrid (default)" : "hybrid")
		                         : "pure ML-KEM");
	}
	return CLI_EXIT_OK;
}

static int keys_init(int argc, char **argv)
{
	static const struct option lo[] = {{"profile", required_argument, NULL, 'p'},
	                                   {"policy", required_argument, NULL, 'P'},
	                                   {"classical", required_argument, NULL, 'c'},
	                                   {"san-dns", required_argument, NULL, 'd'},
	                                   {"san-ip", required_argument, NULL, 'i'},
	                                   {"force", no_argument, NULL, 'f'},
	                                   {"help", no_argument, NULL, 'h'},
	                                   {NULL, 0, NULL, 0}};
	pq_pki_opts o = {0};
	const char *dns[MAX_SAN + 1] = {0}, *ips[MAX_SAN + 1] = {0};
	int nd = 0, ni = 0, c, rc;

	o.profile = pq_profile_by_id(PQ_PROFILE_DEFAULT);
	o.policy = PQ_POLICY_HYBRID;
	o.classical = PQ_ALG_ECDSA_P256;
	optind = 1;
	while ((c = getopt_long(argc, argv, "h", lo, NULL)) != -1) {
		switch (c) {
		case 'p':
			if (pq_profile_find(optarg, &o.profile) != PQ_OK)
				return cli_usage_error("keys", "%s", pq_err_detail());
			break;
		case 'P':
			if (pq_policy_from_name(optarg, &o.policy) != PQ_OK)
				return cli_usage_error("keys", "%s", pq_err_detail());
			break;
		case 'c':
			if (pq_alg_from_name(optarg, &o.classical) != PQ_OK ||
			    (o.classical != PQ_ALG_ECDSA_P256 && o.classical != PQ_ALG_ED25519))
				return cli_usage_error("keys",
				                       "--classical takes ecdsa-p256 or ed25519");
			break;
		case 'd':
			if (nd == MAX_SAN)
				return cli_usage_error("keys", "at most %d --san-dns", MAX_SAN);
			dns[nd++] = optarg;
			break;
		case 'i':
			if (ni == MAX_SAN)
				return cli_usage_error("keys", "at most %d --san-ip", MAX_SAN);
			ips[ni++] = optarg;
			break;
		case 'f':
			o.force = true;
			break;
		case 'h':
			usage(stdout);
			return CLI_EXIT_OK;
		default:
			return cli_usage_error("keys", "bad option");
		}
	}
	if (optind + 1 != argc)
		return cli_usage_error("keys", "keys init takes exactly one directory");
	o.extra_dns = dns;
	o.extra_ips = ips;
	const char *dir = argv[optind];
	rc = pq_pki_init(dir, &o);
	if (rc != PQ_OK)
		return cli_error(rc, "keys init %s", dir);
	printf("PKI created in %s\n"
	       "  profile        %d %s (group %s, certificates %s)\n"
	       "  CA             %s/ca/ca.crt\n"
	       "  server         %s/server/server.crt\n"
	       "  broker         %s/broker/broker.crt\n"
	       "  server client  %s/server-client/client.crt (CN %s)\n"
	       "  Uptane keys    %s/uptane/{image,director} (policy %s)\n"
	       "Issue vehicle identities with: pqota keys vehicle VIN --dir %s\n",
	       dir, o.profile->id, o.profile->name, o.profile->tls_group,
	       pq_alg_name(o.profile->cert_alg), dir, dir, dir, dir, PQ_SERVER_CLIENT_CN, dir,
	       pq_policy_name(o.policy), dir);
	return CLI_EXIT_OK;
}

static int keys_vehicle(int argc, char **argv)
{
	static const struct option lo[] = {{"dir", required_argument, NULL, 'd'},
	                                   {"force", no_argument, NULL, 'f'},
	                                   {"help", no_argument, NULL, 'h'},
	                                   {NULL, 0, NULL, 0}};
	const char *dir = getenv("PQOTA_PKI");
	bool force = false;
	int c, rc;
	if (!dir || !*dir)
		dir = "pki";
	optind = 1;
	while ((c = getopt_long(argc, argv, "h", lo, NULL)) != -1) {
		switch (c) {
		case 'd':
			dir = optarg;
			break;
		case 'f':
			force = true;
			break;
		case 'h':
			usage(stdout);
			return CLI_EXIT_OK;
		default:
			return cli_usage_error("keys", "bad option");
		}
	}
	if (optind + 1 != argc)
		return cli_usage_error("keys", "keys vehicle takes exactly one VIN");
	const char *vin = argv[optind];
	rc = pq_pki_vehicle(dir, vin, force);
	if (rc != PQ_OK)
		return cli_error(rc, "keys vehicle %s", vin);
	printf("vehicle %s: %s/vehicles/%s/{client.crt,client.key,kem-x25519.*,kem-ml-kem-768.*}\n",
	       vin, dir, vin);
	return CLI_EXIT_OK;
}

int cmd_keys(int argc, char **argv)
{
	if (argc < 2) {
		usage(stderr);
		return CLI_EXIT_USAGE;
	}
	if (strcmp(argv[1], "init") == 0)
		return keys_init(argc - 1, argv + 1);
	if (strcmp(argv[1], "vehicle") == 0)
		return keys_vehicle(argc - 1, argv + 1);
	if (strcmp(argv[1], "profiles") == 0)
		return list_profiles();
	if (strcmp(argv[1], "--help") == 0 || strcmp(argv[1], "-h") == 0) {
		usage(stdout);
		return CLI_EXIT_OK;
	}
	return cli_usage_error("keys", "unknown keys command '%s'", argv[1]);
}
