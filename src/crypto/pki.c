/* pki.c: creating a deployment's PKI and vehicle identities on disk. */
#include "crypto/pki.h"

#include <errno.h>
#include <limits.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "core/fileio.h"
#include "core/time.h"
#include "crypto/cert.h"
#include "crypto/key.h"

/* traversable but not listable: a broker running as another user can open ca.crt and a
 * key file it was given (keys stay 0600) */
#define PKI_DIR_MODE 0711

const char *const pq_uptane_roles[4] = {"root", "targets", "snapshot", "timestamp"};

static const char *const default_dns[] = {"localhost", NULL};
static const char *const default_ips[] = {"127.0.0.1", "::1", NULL};

/* Generates a key of `alg`, issues a certificate for it and writes both. */
static int make_leaf(const char *dir, const char *sub, const char *stem, pq_cert_req *req,
                     pq_alg alg, const pq_cert *ca, const pq_key *ca_key, bool overwrite)
{
	char d[PATH_MAX], p[PATH_MAX + 16];
	pq_key *k = NULL;
	pq_cert *c = NULL;
	int rc = pq_path_join(d, sizeof(d), dir, sub);
	if (rc == PQ_OK)
		rc = pq_mkdirs(d, PKI_DIR_MODE);
	if (rc == PQ_OK)
		rc = pq_key_generate(alg, &k);
	if (rc == PQ_OK)
		rc = pq_cert_issue(req, k, ca, ca_key, &c);
	if (rc == PQ_OK) {
		snprintf(p, sizeof(p), "%s/%s.key", d, stem);
		rc = pq_key_save_private(k, p, overwrite);
	}
	if (rc == PQ_OK) {
		snprintf(p, sizeof(p), "%s/%s.crt", d, stem);
		rc = pq_cert_save(c, p, overwrite);
	}
	pq_key_free(k);
	pq_cert_free(c);
	if (rc != PQ_OK)
		return pq_err_wrap(rc, "%s/%s", sub, stem);
	return PQ_OK;
}

static int make_keypair(const char *d, const char *stem, pq_alg alg, bool overwrite)
{
	char p[PATH_MAX + 64];
	pq_key *k = NULL;
	int rc = pq_key_generate(alg, &k);
	if (rc == PQ_OK) {
		snprintf(p, sizeof(p), "%s/%s.key", d, stem);
		rc = pq_key_save_private(k, p, overwrite);
	}
	if (rc == PQ_OK) {
		snprintf(p, sizeof(p), "%s/%s.pub", d, stem);
		rc = pq_key_save_public(k, p, overwrite);
	}
	pq_key_free(k);
	return rc;
}

static int write_index(const char *dir, const pq_pki_opts *o, const pq_alg *algs, int nalg)
{
	char p[PATH_MAX], buf[2048], when[PQ_ISO_TIME_LEN];
	int rc = pq_iso_time(pq_real_ms() / 1000, when);
	if (rc != PQ_OK)
		return rc;
	int n = snprintf(buf, sizeof(buf),
	                 "{\n  \"format\": \"pqota-pki-v1\",\n  \"created\": \"%s\",\n"
	                 "  \"profile\": {\"id\": %d, \"name\": \"%s\", \"tls_group\": \"%s\", "
	                 "\"certificate_alg\": \"%s\"},\n"
	                 "  \"signing_policy\": \"%s\",\n  \"uptane_key_algs\": [\"%s\"%s%s%s],\n"
	                 "  \"server_client_cn\": \"%s\"\n}\n",
	                 when, o->profile->id, o->profile->name, o->profile->tls_group,
	                 pq_alg_name(o->profile->cert_alg), pq_policy_name(o->policy),
	                 pq_alg_name(algs[0]), nalg > 1 ? ", \"" : "",
	                 nalg > 1 ? pq_alg_name(algs[1]) : "", nalg > 1 ? "\"" : "",
	                 PQ_SERVER_CLIENT_CN);
	if (n < 0 || n >= (int)sizeof(buf))
		return pq_err_set(PQ_ERR_RANGE, "pki.json too long");
	if ((rc = pq_path_join(p, sizeof(p), dir, "pki.json")) != PQ_OK)
		return rc;
	return pq_file_write_atomic(p, buf, (size_t)n, 0644, true);
}

/* The options with their defaults filled in. */
static pq_pki_opts pki_defaults(const pq_pki_opts *opts)
{
	pq_pki_opts o = {0};
	if (opts)
		o = *opts;
	if (!o.profile)
		o.profile = pq_profile_by_id(PQ_PROFILE_DEFAULT);
	if (!o.organization)
		o.organization = "pqota";
	if (o.classical != PQ_ALG_ED25519)
		o.classical = PQ_ALG_ECDSA_P256;
	return o;
}

/* The server's and broker's subject alternative names: the defaults, then up to 15 in all
 * of each kind from the options; both lists NULL-terminated. */
static void san_lists(const pq_pki_opts *o, const char *dns[16], const char *ips[16])
{
	size_t nd = 0, ni = 0;
	for (size_t i = 0; default_dns[i]; i++)
		dns[nd++] = default_dns[i];
	for (size_t i = 0; o->extra_dns && o->extra_dns[i] && nd < 15; i++)
		dns[nd++] = o->extra_dns[i];
	for (size_t i = 0; default_ips[i]; i++)
		ips[ni++] = default_ips[i];
	for (size_t i = 0; o->extra_ips && o->extra_ips[i] && ni < 15; i++)
		ips[ni++] = o->extra_ips[i];
	dns[nd] = NULL;
	ips[ni] = NULL;
}

/* DIR/ca/ca.key and ca.crt: the self-signed root CA, kept in *ca_key and *ca. */
static int make_root_ca(const char *dir, const pq_pki_opts *o, pq_key **ca_key, pq_cert **ca)
{
	char d[PATH_MAX], p[PATH_MAX];
	pq_cert_req req = {
	    .kind = PQ_CERT_CA, .common_name = "pqota root CA", .organization = o->organization};
	int rc = pq_path_join(d, sizeof(d), dir, "ca");
	if (rc == PQ_OK)
		rc = pq_mkdirs(d, PKI_DIR_MODE);
	if (rc == PQ_OK)
		rc = pq_key_generate(o->profile->cert_alg, ca_key);
	if (rc == PQ_OK)
		rc = pq_cert_issue(&req, *ca_key, NULL, *ca_key, ca);
	if (rc == PQ_OK && (rc = pq_path_join(p, sizeof(p), d, "ca.key")) == PQ_OK)
		rc = pq_key_save_private(*ca_key, p, o->force);
	if (rc == PQ_OK && (rc = pq_path_join(p, sizeof(p), d, "ca.crt")) == PQ_OK)
		rc = pq_cert_save(*ca, p, o->force);
	return rc == PQ_OK ? PQ_OK : pq_err_wrap(rc, "root CA");
}

/* The server's, the broker's and the server's MQTT client certificates, issued by the CA. */
static int make_service_certs(const char *dir, const pq_pki_opts *o, const pq_cert *ca,
                              const pq_key *ca_key)
{
	const char *dns[16], *ips[16];
	san_lists(o, dns, ips);
	pq_cert_req server = {.kind = PQ_CERT_SERVER,
	                      .common_name = "pqota-server",
	                      .organization = o->organization,
	                      .dns = dns,
	                      .ips = ips};
	pq_cert_req broker = server;
	broker.common_name = "pqota-broker";
	pq_cert_req sclient = {.kind = PQ_CERT_CLIENT,
	                       .common_name = PQ_SERVER_CLIENT_CN,
	                       .organization = o->organization};
	pq_alg alg = o->profile->cert_alg;
	int rc = make_leaf(dir, "server", "server", &server, alg, ca, ca_key, o->force);
	if (rc == PQ_OK)
		rc = make_leaf(dir, "broker", "broker", &broker, alg, ca, ca_key, o->force);
	if (rc == PQ_OK)
		rc = make_leaf(dir, "server-client", "client", &sclient, alg, ca, ca_key, o->force);
	return rc;
}

/* DIR/uptane/{image,director}/<role>-<alg>: one key per algorithm the policy requires, per
 * role and repository. */
static int make_uptane_keys(const char *dir, const pq_pki_opts *o, const pq_alg *algs, int nalg)
{
	static const char *const repos[2] = {"uptane/image", "uptane/director"};
	for (int repo = 0; repo < 2; repo++) {
		char d[PATH_MAX];
		int rc = pq_path_join(d, sizeof(d), dir, repos[repo]);
		if (rc == PQ_OK)
			rc = pq_mkdirs(d, PKI_DIR_MODE);
		for (int r = 0; rc == PQ_OK && r < 4; r++) {
			for (int a = 0; rc == PQ_OK && a < nalg; a++) {
				char stem[64];
				snprintf(stem, sizeof(stem), "%s-%s", pq_uptane_roles[r],
				         pq_alg_name(algs[a]));
				rc = make_keypair(d, stem, algs[a], o->force);
			}
		}
		if (rc != PQ_OK)
			return pq_err_wrap(rc, "Uptane %s keys", repo == 0 ? "image" : "director");
	}
	return PQ_OK;
}

int pq_pki_init(const char *dir, const pq_pki_opts *opts)
{
	pq_pki_opts o = pki_defaults(opts);
	char p[PATH_MAX];
	pq_key *ca_key = NULL;
	pq_cert *ca = NULL;
	pq_alg algs[2];
	int rc = pq_path_join(p, sizeof(p), dir, "pki.json");
	if (rc != PQ_OK)
		return rc;
	if (!o.force && access(p, F_OK) == 0)
		return pq_err_set(PQ_ERR_EXISTS,
		                  "%s already holds a PKI (use --force to replace it)", dir);
	if ((rc = pq_mkdirs(dir, PKI_DIR_MODE)) != PQ_OK)
		return rc;
	int nalg = pq_policy_algs(o.policy, o.classical, algs);
	if ((rc = make_root_ca(dir, &o, &ca_key, &ca)) == PQ_OK &&
	    (rc = make_service_certs(dir, &o, ca, ca_key)) == PQ_OK &&
	    (rc = make_uptane_keys(dir, &o, algs, nalg)) == PQ_OK &&
	    (rc = pq_path_join(p, sizeof(p), dir, "vehicles")) == PQ_OK &&
	    (rc = pq_mkdirs(p, PKI_DIR_MODE)) == PQ_OK)
		rc = write_index(dir, &o, algs, nalg);
	pq_key_free(ca_key);
	pq_cert_free(ca);
	return rc;
}

int pq_vin_check(const char *vin)
{
	size_t n = vin ? strlen(vin) : 0;
	if (n == 0 || n > PQ_VIN_MAX)
		return pq_err_set(PQ_ERR_INVAL, "a VIN has 1..%d characters", PQ_VIN_MAX);
	for (size_t i = 0; i < n; i++) {
		char c = vin[i];
		if (!((c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') ||
		      c == '-' || c == '_'))
			return pq_err_set(PQ_ERR_INVAL,
			                  "VIN '%s': character '%c' not allowed (A-Z a-z 0-9 - _)",
			                  vin, c);
	}
	/* the deployment's own identities (pqota-server, pqota-broker, ...) are not VINs */
	if (strncasecmp(vin, "pqota", 5) == 0)
		return pq_err_set(PQ_ERR_INVAL,
		                  "VIN '%s': names starting with 'pqota' are reserved", vin);
	return PQ_OK;
}

int pq_pki_vehicle(const char *dir, const char *vin, bool force)
{
	char p[PATH_MAX + 64], d[PATH_MAX];
	pq_key *ca_key = NULL;
	pq_cert *ca = NULL;
	int rc = pq_vin_check(vin);
	if (rc != PQ_OK)
		return rc;
	snprintf(p, sizeof(p), "%s/ca/ca.crt", dir);
	rc = pq_cert_load(p, &ca);
	if (rc != PQ_OK) {
		rc = pq_err_wrap(rc, "no PKI in %s (run 'pqota keys init %s' first)", dir, dir);
		goto out;
	}
	snprintf(p, sizeof(p), "%s/ca/ca.key", dir);
	rc = pq_key_load(p, &ca_key);
	if (rc != PQ_OK)
		goto out;
	if (snprintf(d, sizeof(d), "%s/vehicles/%s", dir, vin) >= (int)sizeof(d)) {
		rc = pq_err_set(PQ_ERR_RANGE, "path too long");
		goto out;
	}
	snprintf(p, sizeof(p), "%s/client.crt", d);
	if (!force && access(p, F_OK) == 0) {
		rc = pq_err_set(PQ_ERR_EXISTS, "vehicle %s already has an identity (use --force)",
		                vin);
		goto out;
	}
	pq_cert_req req = {.kind = PQ_CERT_CLIENT, .common_name = vin, .organization = "pqota"};
	snprintf(p, sizeof(p), "vehicles/%s", vin);
	rc = make_leaf(dir, p, "client", &req, pq_key_alg(ca_key), ca, ca_key, force);
	if (rc == PQ_OK)
		rc = make_keypair(d, "kem-x25519", PQ_ALG_X25519, force);
	if (rc == PQ_OK)
		rc = make_keypair(d, "kem-ml-kem-768", PQ_ALG_MLKEM768, force);
out:
	pq_key_free(ca_key);
	pq_cert_free(ca);
	return rc;
}
