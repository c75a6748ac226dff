/* meta.h: Uptane metadata model: role names, key objects and key ids, the signed envelope,
 * signing, and verification of one role's signatures against a root's keys and thresholds.
 *
 * The formats are defined in docs/security.md, "Uptane metadata". In short:
 *   envelope  {"signatures":[{"keyid":K,"method":M,"sig":HEX}...],"signed":{...}}
 *   signed {"_type":ROLE,"spec_version":"1.0.0","version":N,"expires":"YYYY-MM-DDTHH:MM:SSZ",...}
 *   key       {"keytype":ALG,"keyval":{"public":HEX(raw public key)},"scheme":ALG}
 *   keyid     lowercase hex SHA-256 of the canonical JSON (cjson.h) of the key object
 *   message   the canonical JSON of "signed"; ML-DSA signs it under the context
 *             "pqota-uptane-v1:ROLE", Ed25519/ECDSA sign "pqota-uptane-v1:ROLE" || 0x00 || it.
 * Every metadata file is itself canonical JSON, and verifiers refuse any other spelling.
 *
 * Errors follow core/err.h: PQ_ERR_FORMAT malformed metadata, PQ_ERR_VERIFY signatures or
 * thresholds not met, PQ_ERR_RANGE a size or count bound. Thread-safe (no shared state). */
#ifndef PQOTA_UPTANE_META_H
#define PQOTA_UPTANE_META_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <jansson.h>

#include "core/err.h"
#include "crypto/key.h"
#include "crypto/profile.h"

#define UP_SPEC_VERSION  "1.0.0"
#define UP_SIG_DOMAIN    "pqota-uptane-v1"
#define UP_KEYID_LEN     64 /* hex characters of a key id */
#define UP_KEYS_MAX      32 /* keys a root may list */
#define UP_ROLE_KEYS_MAX 8  /* keys one role may list */
#define UP_SIGS_MAX      16 /* signatures one envelope may carry */

typedef enum {
	UP_ROLE_ROOT = 0,
	UP_ROLE_TARGETS = 1,
	UP_ROLE_SNAPSHOT = 2,
	UP_ROLE_TIMESTAMP = 3,
} up_role;

#define UP_ROLE_COUNT 4

/* "root", "targets", "snapshot", "timestamp" (NULL for anything else). */
const char *up_role_name(up_role role);

/* ---- time ------------------------------------------------------------------------ */

/* Parses exactly that form (no fractions, no offsets), checking every field's range. */
int up_time_parse(const char *s, int64_t *t) PQ_MUST_CHECK;

/* ---- keys ------------------------------------------------------------------------ */

/* The key object of k's public half (new reference, caller json_decref's). */
int up_key_json(const pq_key *k, json_t **out) PQ_MUST_CHECK;
/* The key id of k: hex SHA-256 of the canonical key object, NUL-terminated. */
int up_keyid(const pq_key *k, char out[UP_KEYID_LEN + 1]) PQ_MUST_CHECK;

/* A role's signing keys (private; borrowed, the caller owns them). */
typedef struct {
	const pq_key *keys[UP_ROLE_KEYS_MAX];
	size_t n;
} up_keyset;

/* ---- building and signing ---------------------------------------------------------- */

/* A "signed" object with the common header: _type, spec_version, version, expires. */
int up_signed_new(up_role role, int64_t version, int64_t expires, json_t **out) PQ_MUST_CHECK;

/* The signed part of a root: keys and roles from the four key sets (public halves), each
 * role's threshold from threshold[role] (NULL or 0: the number of keys of the role), and
 * the signing policy the verifier enforces. */
int up_root_build(const up_keyset roles[UP_ROLE_COUNT], const int threshold[UP_ROLE_COUNT],
                  pq_sign_policy policy, int64_t version, int64_t expires,
                  json_t **out) PQ_MUST_CHECK;

/* Signs signed_obj as `role` with every key of each set in sets[0..nsets) (a key present in
 * two sets signs once) and writes the canonical envelope: *out malloc'd (caller frees),
 * NUL-terminated, at most max_len bytes or PQ_ERR_RANGE. */
int up_sign(up_role role, const json_t *signed_obj, const up_keyset *sets, size_t nsets,
            size_t max_len, char **out, size_t *out_len) PQ_MUST_CHECK;
/* The same; deterministic selects FIPS 204's deterministic ML-DSA (reproducible bytes for
 * test fixtures and fuzz corpora; ECDSA stays randomised). Production signs hedged. */
int up_sign_ex(up_role role, const json_t *signed_obj, const up_keyset *sets, size_t nsets,
               bool deterministic, size_t max_len, char **out, size_t *out_len) PQ_MUST_CHECK;

/* ---- verifying --------------------------------------------------------------------- */

typedef struct {
	char keyid[UP_KEYID_LEN + 1];
	pq_key *key; /* public; owned by the up_root */
} up_pubkey;

typedef struct {
	size_t n;
	size_t idx[UP_ROLE_KEYS_MAX]; /* into up_root.keys */
	int64_t threshold;
} up_rolekeys;

/* A parsed root (the trusted key and threshold table). */
typedef struct {
	int64_t version;
	int64_t expires;
	pq_sign_policy policy;
	size_t nkeys;
	up_pubkey keys[UP_KEYS_MAX];
	up_rolekeys roles[UP_ROLE_COUNT];
} up_root;

/* Parses the "signed" object of a root: header, policy, keys (each key id recomputed and
 * required to match), roles with 1 <= threshold <= keys, and the policy's key rules (hybrid:
 * every role lists a classical and an ML-DSA key and threshold >= 2; pq: ML-DSA keys only).
 * Does not check signatures or expiry. *out is freed with up_root_free. */
int up_root_parse(const json_t *signed_obj, up_root **out) PQ_MUST_CHECK;
void up_root_free(up_root *r);

/* True when the key ids and threshold of `role` are the same in a and b. */
bool up_root_role_equal(const up_root *a, const up_root *b, up_role role);

/* Checks one metadata file as `role` against root: at most max_len bytes, canonical JSON,
 * exactly {"signatures","signed"}, _type = role, at most UP_SIGS_MAX signatures each of
 * exactly {keyid, method, sig}; no key id twice; a signature whose key id the role does not
 * list is ignored (not counted); one from a listed key must name the key's algorithm as its
 * method and verify, or the whole file is refused; the valid ones must reach the role's
 * threshold and satisfy the root's policy (hybrid: a classical and an ML-DSA signature among
 * them; pq: ML-DSA only). On success *signed_out is a new reference to "signed". Does not
 * check version or expiry (up_signed_header reads them). */
int up_meta_check(const up_root *root, up_role role, const char *data, size_t len, size_t max_len,
                  json_t **signed_out) PQ_MUST_CHECK;

/* Reads and checks the common header of a signed object: _type = role, spec_version,
 * version >= 1 and a well-formed expiry. */
int up_signed_header(const json_t *signed_obj, up_role role, int64_t *version,
                     int64_t *expires) PQ_MUST_CHECK;

/* ---- the target model ---------------------------------------------------------------- */

#define UP_NAME_MAX 255 /* a target file name: [A-Za-z0-9._+-/], no "..", no leading '/' */
#define UP_ID_MAX   64  /* ECU ids, hardware ids, software types, version strings */

/* The versions of the four roles of one repository (0: none). */
typedef struct {
	int64_t root, targets, snapshot, timestamp;
} up_versions;

/* One image as the image repository lists it (inputs are borrowed). */
typedef struct {
	const char *name; /* target file name, the key in "targets" */
	int64_t length;   /* bytes */
	uint8_t sha256[32];
	bool has_sha512;
	uint8_t sha512[64];
	const char *hardware_id;   /* required */
	const char *ecu_id;        /* optional (NULL: omitted) */
	const char *software_type; /* optional, e.g. "APP" */
	const char *version;       /* optional, e.g. "3.0.1" */
	int64_t release_counter;   /* >= 0 */
} up_target;

/* One ECU's assignment in a vehicle's director targets (inputs are borrowed). With bundle,
 * the entry is instead the vehicle's bundle: a container of several ECUs' packages (the
 * campaign's full_package.bin) that the image repository lists with software type
 * UP_BUNDLE_TYPE; its director target's custom is exactly {"bundle": true}, ecu_id,
 * hardware_id and release_counter are not used, and a vehicle has at most one. */
typedef struct {
	bool bundle;
	const char *ecu_id; /* the ECU within the vehicle */
	const char *name;   /* the image's target file name in the image repository */
	int64_t length;
	uint8_t sha256[32];
	bool has_sha512;
	uint8_t sha512[64];
	const char *hardware_id;
	int64_t release_counter;
} up_director_entry;

#define UP_BUNDLE_TYPE "BUNDLE" /* the image repository's software type of a bundle */

/* Checks a target file name and an id (1..UP_ID_MAX of [A-Za-z0-9._+-]). */
int up_name_check(const char *name) PQ_MUST_CHECK;
int up_id_check(const char *id) PQ_MUST_CHECK;

#endif
