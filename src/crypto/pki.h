/* pki.h: a deployment's PKI on disk: root CA, TLS certificates for the server, the broker
 * and the server's MQTT client identity, Uptane role keys per signing policy, and vehicle
 * identities (client certificate with CN = VIN, and X25519 + ML-KEM-768 key-wrap keys).
 *
 * Layout (docs/security.md, "Key files"):
 *   DIR/pki.json                      what was made, with which profile and policy
 *   DIR/ca/ca.crt, ca.key             root CA (the profile's certificate algorithm)
 *   DIR/server/server.crt, .key       HTTPS server (serverAuth; SAN localhost, 127.0.0.1, ::1)
 *   DIR/broker/broker.crt, .key       MQTT broker (serverAuth; same SANs)
 *   DIR/server-client/client.crt,.key the server's MQTT identity (clientAuth, CN pqota-server)
 *   DIR/uptane/{image,director}/<role>-<alg>.key, .pub   role keys
 *   DIR/vehicles/<VIN>/client.crt, client.key, kem-x25519.key/.pub, kem-ml-kem-768.key/.pub
 * Private keys are mode 0600, in directories of mode 0711 (traversable, not listable).
 * Vehicle certificates carry O=pqota; the others the organization given to init. */
#ifndef PQOTA_CRYPTO_PKI_H
#define PQOTA_CRYPTO_PKI_H

#include <stdbool.h>

#include "core/err.h"
#include "crypto/profile.h"

#define PQ_SERVER_CLIENT_CN "pqota-server"
#define PQ_VIN_MAX          32

typedef struct {
	const pq_profile *profile;    /* certificate algorithm; default profile 2 */
	pq_sign_policy policy;        /* Uptane role keys; default hybrid */
	pq_alg classical;             /* classical half: PQ_ALG_ECDSA_P256 (default) or ED25519 */
	const char *const *extra_dns; /* more SAN DNS names for server and broker (NULL-term.) */
	const char *const *extra_ips; /* more SAN IPs */
	const char *organization;     /* O= in the CA, server, broker and server-client
	                               * certificates (default "pqota") */
	bool force;                   /* replace an existing PKI */
} pq_pki_opts;

/* Creates the PKI in dir. Refuses when dir already holds one, unless force. */
int pq_pki_init(const char *dir, const pq_pki_opts *opts) PQ_MUST_CHECK;

/* Checks a VIN: 1..32 characters of [A-Za-z0-9_-] (safe as a CN and an MQTT topic level),
 * not starting with "pqota" (reserved for the deployment's own identities). */
int pq_vin_check(const char *vin) PQ_MUST_CHECK;

/* Issues a vehicle identity under dir/vehicles/<VIN>/, signed by dir/ca. The certificate
 * key uses the CA's algorithm. Refuses to replace an existing identity unless force. */
int pq_pki_vehicle(const char *dir, const char *vin, bool force) PQ_MUST_CHECK;

/* The Uptane role names, in order. */
extern const char *const pq_uptane_roles[4];

#endif
