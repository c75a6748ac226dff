/* meta.c: Uptane metadata envelope, key ids, signing and threshold verification (meta.h). */
#include "uptane/meta.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "core/text.h"
#include "core/time.h"
#include "crypto/hash.h"
#include "crypto/sig.h"
#include "uptane/cjson.h"

#define KEY_JSON_MAX 8192 /* a key object: ML-DSA-87 public key in hex is 5184 characters */
#define PUB_MAX      2592 /* largest raw public key (ML-DSA-87) */

static const char *const role_names[UP_ROLE_COUNT] = {"root", "targets", "snapshot", "timestamp"};

const char *up_role_name(up_role role)
{
	if ((int)role < 0 || (int)role >= UP_ROLE_COUNT)
		return NULL;
	return role_names[role];
}

/* ---- time ------------------------------------------------------------------------ */

/* Days since 1970-01-01 of a proleptic Gregorian date (the usual era arithmetic). */
static int64_t days_from_civil(int64_t y, int64_t m, int64_t d)
{
	y -= m <= 2;
	int64_t era = (y >= 0 ? y : y - 399) / 400;
	int64_t yoe = y - era * 400;
	int64_t doy = (153 * (m + (m > 2 ? -3 : 9)) + 2) / 5 + d - 1;
	int64_t doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
	return era * 146097 + doe - 719468;
}

static bool leap(int64_t y)
{
	return (y % 4 == 0 && y % 100 != 0) || y % 400 == 0;
}

static bool digits(const char *s, size_t n, int64_t *v)
{
	*v = 0;
	for (size_t i = 0; i < n; i++) {
		if (s[i] < '0' || s[i] > '9')
			return false;
		*v = *v * 10 + (s[i] - '0');
	}
	return true;
}

int up_time_parse(const char *s, int64_t *t)
{
	static const int mdays[12] = {31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31};
	int64_t y, mo, d, h, mi, se;
	if (!s || strlen(s) != 20 || s[4] != '-' || s[7] != '-' || s[10] != 'T' || s[13] != ':' ||
	    s[16] != ':' || s[19] != 'Z' || !digits(s, 4, &y) || !digits(s + 5, 2, &mo) ||
	    !digits(s + 8, 2, &d) || !digits(s + 11, 2, &h) || !digits(s + 14, 2, &mi) ||
	    !digits(s + 17, 2, &se))
		return pq_err_set(PQ_ERR_FORMAT, "time '%.40s' is not YYYY-MM-DDTHH:MM:SSZ",
		                  s ? s : "");
	if (y < 1970 || mo < 1 || mo > 12 || d < 1 ||
	    d > mdays[mo - 1] + (mo == 2 && leap(y) ? 1 : 0) || h > 23 || mi > 59 || se > 59)
		return pq_err_set(PQ_ERR_FORMAT, "time '%s' out of range", s);
	*t = days_from_civil(y, mo, d) * 86400 + h * 3600 + mi * 60 + se;
	return PQ_OK;
}

/* ---- keys ------------------------------------------------------------------------ */

int up_key_json(const pq_key *k, json_t **out)
{
	uint8_t pub[PUB_MAX];
	char hex[2 * PUB_MAX + 1];
	size_t n = sizeof(pub);
	*out = NULL;
	if (!k || !pq_alg_is_sig(pq_key_alg(k)))
		return pq_err_set(PQ_ERR_INVAL, "not a signature key");
	int rc = pq_key_public_raw(k, pub, &n);
	if (rc != PQ_OK)
		return rc;
	pq_hex_encode(pub, n, hex);
	const char *alg = pq_alg_name(pq_key_alg(k));
	*out = json_pack("{s:s, s:{s:s}, s:s}", "keytype", alg, "keyval", "public", hex, "scheme",
	                 alg);
	return *out ? PQ_OK : pq_err_set(PQ_ERR_NOMEM, "key object");
}

static int keyid_of_json(const json_t *kj, char out[UP_KEYID_LEN + 1])
{
	char *text = NULL;
	size_t n = 0;
	uint8_t d[32];
	int rc = cj_encode(kj, KEY_JSON_MAX, &text, &n);
	if (rc == PQ_OK)
		rc = pq_hash(PQ_HASH_SHA256, text, n, d);
	if (rc == PQ_OK)
		pq_hex_encode(d, sizeof(d), out);
	free(text);
	return rc;
}

int up_keyid(const pq_key *k, char out[UP_KEYID_LEN + 1])
{
	json_t *kj = NULL;
	int rc = up_key_json(k, &kj);
	if (rc == PQ_OK)
		rc = keyid_of_json(kj, out);
	json_decref(kj);
	return rc;
}

/* ---- building and signing ---------------------------------------------------------- */

int up_signed_new(up_role role, int64_t version, int64_t expires, json_t **out)
{
	char exp[21];
	*out = NULL;
	if (!up_role_name(role) || version < 1 || version > CJ_INT_MAX)
		return pq_err_set(PQ_ERR_INVAL, "bad role or version %lld", (long long)version);
	int rc = pq_iso_time(expires, exp);
	if (rc != PQ_OK)
		return rc;
	*out = json_pack("{s:s, s:s, s:I, s:s}", "_type", up_role_name(role), "spec_version",
	                 UP_SPEC_VERSION, "version", (json_int_t)version, "expires", exp);
	return *out ? PQ_OK : pq_err_set(PQ_ERR_NOMEM, "signed object");
}

int up_root_build(const up_keyset roles[UP_ROLE_COUNT], const int threshold[UP_ROLE_COUNT],
                  pq_sign_policy policy, int64_t version, int64_t expires, json_t **out)
{
	json_t *s = NULL, *keys = json_object(), *rj = json_object();
	int rc = up_signed_new(UP_ROLE_ROOT, version, expires, &s);
	if (rc == PQ_OK && (!keys || !rj))
		rc = pq_err_set(PQ_ERR_NOMEM, "root");
	for (int r = 0; rc == PQ_OK && r < UP_ROLE_COUNT; r++) {
		json_t *ids = json_array();
		if (!ids) {
			rc = pq_err_set(PQ_ERR_NOMEM, "root");
			break;
		}
		if (roles[r].n == 0 || roles[r].n > UP_ROLE_KEYS_MAX)
			rc = pq_err_set(PQ_ERR_INVAL, "role %s: %zu keys", role_names[r],
			                roles[r].n);
		for (size_t i = 0; rc == PQ_OK && i < roles[r].n; i++) {
			char id[UP_KEYID_LEN + 1];
			json_t *kj = NULL;
			rc = up_key_json(roles[r].keys[i], &kj);
			if (rc == PQ_OK)
				rc = keyid_of_json(kj, id);
			if (rc == PQ_OK && json_object_set(keys, id, kj) != 0)
				rc = pq_err_set(PQ_ERR_NOMEM, "root keys");
			json_decref(kj);
			if (rc == PQ_OK && json_array_append_new(ids, json_string(id)) != 0)
				rc = pq_err_set(PQ_ERR_NOMEM, "root keys");
		}
		int64_t th = threshold && threshold[r] ? threshold[r] : (int64_t)roles[r].n;
		if (rc == PQ_OK && json_object_set_new(rj, role_names[r],
		                                       json_pack("{s:o, s:I}", "keyids", ids,
		                                                 "threshold", (json_int_t)th)) != 0)
			rc = pq_err_set(PQ_ERR_NOMEM, "root roles");
		else if (rc != PQ_OK)
			json_decref(ids);
	}
	if (rc == PQ_OK &&
	    (json_object_set(s, "keys", keys) != 0 || json_object_set(s, "roles", rj) != 0 ||
	     json_object_set_new(s, "policy", json_string(pq_policy_name(policy))) != 0))
		rc = pq_err_set(PQ_ERR_NOMEM, "root");
	json_decref(keys);
	json_decref(rj);
	if (rc != PQ_OK) {
		json_decref(s);
		s = NULL;
	}
	*out = s;
	return rc;
}

/* The ML-DSA context "pqota-uptane-v1:ROLE". */
static size_t domain(up_role role, char *buf, size_t cap)
{
	int n = snprintf(buf, cap, "%s:%s", UP_SIG_DOMAIN, up_role_name(role));
	return n > 0 && (size_t)n < cap ? (size_t)n : 0;
}

/* For classical keys: domain || 0x00 || msg in a malloc'd buffer. */
static uint8_t *classical_msg(const char *dom, size_t dl, const char *msg, size_t len,
                              size_t *out_len)
{
	uint8_t *m = malloc(dl + 1 + len);
	if (!m)
		return NULL;
	memcpy(m, dom, dl);
	m[dl] = 0;
	memcpy(m + dl + 1, msg, len);
	*out_len = dl + 1 + len;
	return m;
}

static int sign_one(up_role role, const pq_key *k, bool det, const char *msg, size_t len,
                    char **hex)
{
	char dom[64];
	size_t dl = domain(role, dom, sizeof(dom));
	uint8_t sig[PQ_SIG_MAX];
	size_t sl = sizeof(sig);
	int rc;
	*hex = NULL;
	if (pq_alg_is_pq(pq_key_alg(k))) {
		pq_sig_opts o = {
		    .context = (const uint8_t *)dom, .context_len = dl, .deterministic = det};
		rc = pq_sign(k, &o, (const uint8_t *)msg, len, sig, &sl);
	} else {
		size_t ml = 0;
		uint8_t *m = classical_msg(dom, dl, msg, len, &ml);
		if (!m)
			return pq_err_set(PQ_ERR_NOMEM, "signing");
		rc = pq_sign(k, NULL, m, ml, sig, &sl);
		free(m);
	}
	if (rc != PQ_OK)
		return rc;
	*hex = malloc(2 * sl + 1);
	if (!*hex)
		return pq_err_set(PQ_ERR_NOMEM, "signing");
	pq_hex_encode(sig, sl, *hex);
	return PQ_OK;
}

int up_sign(up_role role, const json_t *signed_obj, const up_keyset *sets, size_t nsets,
            size_t max_len, char **out, size_t *out_len)
{
	return up_sign_ex(role, signed_obj, sets, nsets, false, max_len, out, out_len);
}

int up_sign_ex(up_role role, const json_t *signed_obj, const up_keyset *sets, size_t nsets,
               bool deterministic, size_t max_len, char **out, size_t *out_len)
{
	char *msg = NULL;
	size_t mlen = 0;
	json_t *sigs = json_array(), *env = NULL;
	char seen[UP_SIGS_MAX][UP_KEYID_LEN + 1];
	size_t nseen = 0;
	*out = NULL;
	*out_len = 0;
	int rc = sigs ? PQ_OK : pq_err_set(PQ_ERR_NOMEM, "signing");
	if (rc == PQ_OK && (!up_role_name(role) || !json_is_object(signed_obj)))
		rc = pq_err_set(PQ_ERR_INVAL, "up_sign: bad role or signed object");
	if (rc == PQ_OK)
		rc = cj_encode(signed_obj, max_len, &msg, &mlen);
	for (size_t s = 0; rc == PQ_OK && s < nsets; s++) {
		for (size_t i = 0; rc == PQ_OK && i < sets[s].n; i++) {
			char id[UP_KEYID_LEN + 1], *hex = NULL;
			bool dup = false;
			rc = up_keyid(sets[s].keys[i], id);
			for (size_t j = 0; rc == PQ_OK && j < nseen; j++)
				dup = dup || strcmp(seen[j], id) == 0;
			if (rc != PQ_OK || dup)
				continue;
			if (nseen == UP_SIGS_MAX) {
				rc = pq_err_set(PQ_ERR_RANGE, "more than %d signing keys",
				                UP_SIGS_MAX);
				break;
			}
			memcpy(seen[nseen++], id, sizeof(id));
			rc = sign_one(role, sets[s].keys[i], deterministic, msg, mlen, &hex);
			if (rc == PQ_OK &&
			    json_array_append_new(
			        sigs, json_pack("{s:s, s:s, s:s}", "keyid", id, "method",
			                        pq_alg_name(pq_key_alg(sets[s].keys[i])), "sig",
			                        hex)) != 0)
				rc = pq_err_set(PQ_ERR_NOMEM, "signing");
			free(hex);
		}
	}
	if (rc == PQ_OK && nseen == 0)
		rc = pq_err_set(PQ_ERR_INVAL, "up_sign: no keys");
	if (rc == PQ_OK) {
		env = json_pack("{s:O, s:O}", "signatures", sigs, "signed", signed_obj);
		rc = env ? cj_encode(env, max_len, out, out_len)
		         : pq_err_set(PQ_ERR_NOMEM, "signing");
	}
	if (rc != PQ_OK)
		rc = pq_err_wrap(rc, "signing %s", up_role_name(role) ? up_role_name(role) : "?");
	json_decref(env);
	json_decref(sigs);
	free(msg);
	return rc;
}

/* ---- verifying --------------------------------------------------------------------- */

void up_root_free(up_root *r)
{
	if (!r)
		return;
	for (size_t i = 0; i < r->nkeys; i++)
		pq_key_free(r->keys[i].key);
	free(r);
}

static bool is_hex_lower(const char *s, size_t n)
{
	for (size_t i = 0; i < n; i++)
		if (!((s[i] >= '0' && s[i] <= '9') || (s[i] >= 'a' && s[i] <= 'f')))
			return false;
	return true;
}

static bool is_keyid(const char *s)
{
	return s && strlen(s) == UP_KEYID_LEN && is_hex_lower(s, UP_KEYID_LEN);
}

/* True when obj is an object whose member names are exactly names[0..n). */
static bool exact_members(const json_t *obj, const char *const *names, size_t n)
{
	if (!json_is_object(obj) || json_object_size(obj) != n)
		return false;
	for (size_t i = 0; i < n; i++)
		if (!json_object_get(obj, names[i]))
			return false;
	return true;
}

int up_signed_header(const json_t *s, up_role role, int64_t *version, int64_t *expires)
{
	const char *type = json_string_value(json_object_get(s, "_type"));
	const char *spec = json_string_value(json_object_get(s, "spec_version"));
	const json_t *v = json_object_get(s, "version");
	const char *exp = json_string_value(json_object_get(s, "expires"));
	if (!json_is_object(s) || !type || !up_role_name(role) ||
	    strcmp(type, up_role_name(role)) != 0)
		return pq_err_set(PQ_ERR_FORMAT, "_type is not \"%s\"",
		                  up_role_name(role) ? up_role_name(role) : "?");
	if (!spec || strncmp(spec, "1.", 2) != 0)
		return pq_err_set(PQ_ERR_FORMAT, "%s: unsupported spec_version", type);
	if (!json_is_integer(v) || json_integer_value(v) < 1)
		return pq_err_set(PQ_ERR_FORMAT, "%s: version must be an integer >= 1", type);
	int rc = up_time_parse(exp, expires);
	if (rc != PQ_OK)
		return pq_err_wrap(rc, "%s.expires", type);
	*version = json_integer_value(v);
	return PQ_OK;
}

static int parse_key(const char *id, const json_t *kj, up_pubkey *out)
{
	static const char *const kn[] = {"keytype", "keyval", "scheme"};
	static const char *const vn[] = {"public"};
	const char *kt = json_string_value(json_object_get(kj, "keytype"));
	const char *sc = json_string_value(json_object_get(kj, "scheme"));
	const json_t *kv = json_object_get(kj, "keyval");
	const char *pub = json_string_value(json_object_get(kv, "public"));
	uint8_t raw[PUB_MAX];
	size_t rl = 0;
	char want[UP_KEYID_LEN + 1];
	pq_alg alg = PQ_ALG_NONE;
	if (!is_keyid(id))
		return pq_err_set(PQ_ERR_FORMAT, "root.keys: bad key id");
	if (!exact_members(kj, kn, 3) || !exact_members(kv, vn, 1) || !kt || !sc || !pub ||
	    strcmp(kt, sc) != 0)
		return pq_err_set(PQ_ERR_FORMAT, "root.keys.%.16s: malformed key", id);
	/* only pqota's own names: pq_alg_from_name also knows OpenSSL spellings */
	for (int a = 1; a < PQ_ALG_COUNT; a++)
		if (pq_alg_is_sig((pq_alg)a) && strcmp(kt, pq_alg_name((pq_alg)a)) == 0)
			alg = (pq_alg)a;
	if (alg == PQ_ALG_NONE)
		return pq_err_set(PQ_ERR_FORMAT, "root.keys.%.16s: key type '%.32s' unsupported",
		                  id, kt);
	if (strlen(pub) > 2 * PUB_MAX || !is_hex_lower(pub, strlen(pub)) ||
	    pq_hex_decode(pub, raw, sizeof(raw), &rl) != PQ_OK)
		return pq_err_set(PQ_ERR_FORMAT, "root.keys.%.16s: public key is not lowercase hex",
		                  id);
	int rc = keyid_of_json(kj, want);
	if (rc != PQ_OK)
		return rc;
	if (strcmp(want, id) != 0)
		return pq_err_set(PQ_ERR_FORMAT, "root.keys.%.16s: key id does not match the key",
		                  id);
	rc = pq_key_from_public(alg, raw, rl, &out->key);
	if (rc != PQ_OK)
		return pq_err_wrap(PQ_ERR_FORMAT, "root.keys.%.16s", id);
	memcpy(out->keyid, id, sizeof(out->keyid));
	return PQ_OK;
}

static int parse_role(up_root *r, up_role role, const json_t *rj)
{
	static const char *const rn[] = {"keyids", "threshold"};
	const char *name = up_role_name(role);
	const json_t *ids = json_object_get(rj, "keyids");
	const json_t *th = json_object_get(rj, "threshold");
	up_rolekeys *rk = &r->roles[role];
	size_t i;
	const json_t *v;
	if (!exact_members(rj, rn, 2) || !json_is_array(ids) || !json_is_integer(th))
		return pq_err_set(PQ_ERR_FORMAT, "root.roles.%s: malformed", name);
	if (json_array_size(ids) == 0 || json_array_size(ids) > UP_ROLE_KEYS_MAX)
		return pq_err_set(PQ_ERR_RANGE, "root.roles.%s: 1..%d keys", name,
		                  UP_ROLE_KEYS_MAX);
	json_array_foreach(ids, i, v)
	{
		const char *id = json_string_value(v);
		size_t k;
		for (k = 0; id && k < r->nkeys; k++)
			if (strcmp(r->keys[k].keyid, id) == 0)
				break;
		if (!id || k == r->nkeys)
			return pq_err_set(PQ_ERR_FORMAT, "root.roles.%s: key id not in root.keys",
			                  name);
		for (size_t j = 0; j < rk->n; j++)
			if (rk->idx[j] == k)
				return pq_err_set(PQ_ERR_FORMAT,
				                  "root.roles.%s: key id listed twice", name);
		rk->idx[rk->n++] = k;
	}
	rk->threshold = json_integer_value(th);
	if (rk->threshold < 1 || rk->threshold > (int64_t)rk->n)
		return pq_err_set(PQ_ERR_FORMAT, "root.roles.%s: threshold %lld not in 1..%zu",
		                  name, (long long)rk->threshold, rk->n);
	/* the policy's rules on the role's keys */
	size_t npq = 0;
	for (size_t j = 0; j < rk->n; j++)
		npq += pq_alg_is_pq(pq_key_alg(r->keys[rk->idx[j]].key));
	if (r->policy == PQ_POLICY_HYBRID && (npq == 0 || npq == rk->n || rk->threshold < 2))
		return pq_err_set(PQ_ERR_FORMAT,
		                  "root.roles.%s: the hybrid policy needs classical and ML-DSA "
		                  "keys and a threshold of at least 2",
		                  name);
	if (r->policy == PQ_POLICY_PQ && npq != rk->n)
		return pq_err_set(PQ_ERR_FORMAT,
		                  "root.roles.%s: the pq policy allows ML-DSA keys only", name);
	return PQ_OK;
}

int up_root_parse(const json_t *s, up_root **out)
{
	static const char *const names[] = {"_type", "spec_version", "version", "expires",
	                                    "keys",  "roles",        "policy"};
	up_root *r = NULL;
	const json_t *keys = json_object_get(s, "keys"), *roles = json_object_get(s, "roles");
	const char *pol = json_string_value(json_object_get(s, "policy"));
	const char *id;
	const json_t *kj;
	int rc;
	*out = NULL;
	if (!exact_members(s, names, 7) || !json_is_object(keys) || !json_is_object(roles) ||
	    json_object_size(roles) != UP_ROLE_COUNT || !pol)
		return pq_err_set(
		    PQ_ERR_FORMAT,
		    "root: needs exactly _type, spec_version, version, expires, keys, "
		    "roles (the four roles) and policy");
	if (json_object_size(keys) == 0 || json_object_size(keys) > UP_KEYS_MAX)
		return pq_err_set(PQ_ERR_RANGE, "root.keys: 1..%d keys", UP_KEYS_MAX);
	r = calloc(1, sizeof(*r));
	if (!r)
		return pq_err_set(PQ_ERR_NOMEM, "root");
	rc = up_signed_header(s, UP_ROLE_ROOT, &r->version, &r->expires);
	if (rc == PQ_OK && pq_policy_from_name(pol, &r->policy) != PQ_OK)
		rc = pq_err_set(PQ_ERR_FORMAT, "root.policy: unknown policy");
	json_object_foreach((json_t *)keys, id, kj)
	{
		if (rc != PQ_OK)
			break;
		rc = parse_key(id, kj, &r->keys[r->nkeys]);
		if (rc == PQ_OK)
			r->nkeys++;
	}
	for (int i = 0; rc == PQ_OK && i < UP_ROLE_COUNT; i++) {
		const json_t *rj = json_object_get(roles, role_names[i]);
		rc = rj ? parse_role(r, (up_role)i, rj)
		        : pq_err_set(PQ_ERR_FORMAT, "root.roles: %s missing", role_names[i]);
	}
	if (rc != PQ_OK) {
		up_root_free(r);
		return rc;
	}
	*out = r;
	return PQ_OK;
}

bool up_root_role_equal(const up_root *a, const up_root *b, up_role role)
{
	const up_rolekeys *x = &a->roles[role], *y = &b->roles[role];
	if (x->n != y->n || x->threshold != y->threshold)
		return false;
	for (size_t i = 0; i < x->n; i++) {
		bool found = false;
		for (size_t j = 0; j < y->n && !found; j++)
			found = strcmp(a->keys[x->idx[i]].keyid, b->keys[y->idx[j]].keyid) == 0;
		if (!found)
			return false;
	}
	return true;
}

/* Verifies one signature entry. *counted: the key is listed for the role and verified.
 * *is_pq: the key is ML-DSA. Non-listed key ids are ignored (PQ_OK, not counted). */
static int check_sig(const up_root *root, up_role role, const json_t *e, const char *msg,
                     size_t mlen, size_t *key_index, bool *counted)
{
	static const char *const en[] = {"keyid", "method", "sig"};
	const char *id = json_string_value(json_object_get(e, "keyid"));
	const char *method = json_string_value(json_object_get(e, "method"));
	const char *hex = json_string_value(json_object_get(e, "sig"));
	const up_rolekeys *rk = &root->roles[role];
	const up_pubkey *pk = NULL;
	uint8_t sig[PQ_SIG_MAX];
	size_t sl = 0;
	char dom[64];
	size_t dl = domain(role, dom, sizeof(dom));
	int rc;
	*counted = false;
	if (!exact_members(e, en, 3) || !is_keyid(id) || !method || !hex)
		return pq_err_set(PQ_ERR_FORMAT, "signatures: malformed entry");
	for (size_t i = 0; i < rk->n && !pk; i++)
		if (strcmp(root->keys[rk->idx[i]].keyid, id) == 0) {
			pk = &root->keys[rk->idx[i]];
			*key_index = rk->idx[i];
		}
	if (!pk)
		return PQ_OK; /* not a key of this role: not counted */
	pq_alg alg = pq_key_alg(pk->key);
	if (strcmp(method, pq_alg_name(alg)) != 0)
		return pq_err_set(PQ_ERR_VERIFY, "signature by %.16s: method '%.32s' is not %s", id,
		                  method, pq_alg_name(alg));
	if (strlen(hex) == 0 || strlen(hex) > 2 * pq_sig_max_len(alg) ||
	    !is_hex_lower(hex, strlen(hex)) || pq_hex_decode(hex, sig, sizeof(sig), &sl) != PQ_OK)
		return pq_err_set(PQ_ERR_VERIFY,
		                  "signature by %.16s: not lowercase hex of a %s "
		                  "signature",
		                  id, pq_alg_name(alg));
	if (pq_alg_is_pq(alg)) {
		pq_sig_opts o = {.context = (const uint8_t *)dom, .context_len = dl};
		rc = pq_verify(pk->key, &o, (const uint8_t *)msg, mlen, sig, sl);
	} else {
		size_t ml = 0;
		uint8_t *m = classical_msg(dom, dl, msg, mlen, &ml);
		if (!m)
			return pq_err_set(PQ_ERR_NOMEM, "verifying");
		rc = pq_verify(pk->key, NULL, m, ml, sig, sl);
		free(m);
	}
	if (rc != PQ_OK)
		return pq_err_set(PQ_ERR_VERIFY, "signature by %.16s (%s) does not verify", id,
		                  pq_alg_name(alg));
	*counted = true;
	return PQ_OK;
}

int up_meta_check(const up_root *root, up_role role, const char *data, size_t len, size_t max_len,
                  json_t **signed_out)
{
	static const char *const names[] = {"signatures", "signed"};
	const char *rname = up_role_name(role);
	json_t *doc = NULL;
	char *msg = NULL;
	size_t mlen = 0, i;
	const json_t *e;
	int rc = PQ_OK;
	*signed_out = NULL;
	if (!root || !rname || !data)
		return pq_err_set(PQ_ERR_INVAL, "up_meta_check: bad arguments");
	if (len > max_len)
		return pq_err_set(PQ_ERR_RANGE, "%s: %zu bytes, more than the %zu allowed", rname,
		                  len, max_len);
	if (!cj_is_canonical(data, len))
		return pq_err_wrap(PQ_ERR_FORMAT, "%s: not canonical JSON", rname);
	doc = json_loadb(data, len, JSON_REJECT_DUPLICATES, NULL);
	const json_t *sigs = json_object_get(doc, "signatures");
	json_t *s = json_object_get(doc, "signed");
	if (!doc || !exact_members(doc, names, 2) || !json_is_array(sigs) || !json_is_object(s)) {
		rc = pq_err_set(PQ_ERR_FORMAT, "%s: not a signed envelope", rname);
		goto out;
	}
	const char *type = json_string_value(json_object_get(s, "_type"));
	if (!type || strcmp(type, rname) != 0) {
		rc = pq_err_set(PQ_ERR_FORMAT, "%s: _type is not \"%s\"", rname, rname);
		goto out;
	}
	if (json_array_size(sigs) > UP_SIGS_MAX) {
		rc = pq_err_set(PQ_ERR_RANGE, "%s: more than %d signatures", rname, UP_SIGS_MAX);
		goto out;
	}
	rc = cj_encode(s, max_len, &msg, &mlen);
	if (rc != PQ_OK)
		goto out;
	/* duplicates first: one key may never appear twice, counted or not */
	json_array_foreach(sigs, i, e)
	{
		const char *id = json_string_value(json_object_get(e, "keyid"));
		for (size_t j = 0; id && j < i; j++) {
			const char *o =
			    json_string_value(json_object_get(json_array_get(sigs, j), "keyid"));
			if (o && strcmp(o, id) == 0) {
				rc = pq_err_set(PQ_ERR_VERIFY, "%s: two signatures by key %.16s",
				                rname, id);
				goto out;
			}
		}
	}
	size_t valid = 0, valid_pq = 0;
	json_array_foreach(sigs, i, e)
	{
		size_t k = 0;
		bool counted = false;
		rc = check_sig(root, role, e, msg, mlen, &k, &counted);
		if (rc != PQ_OK) {
			rc = pq_err_wrap(rc, "%s", rname);
			goto out;
		}
		if (counted) {
			valid++;
			valid_pq += pq_alg_is_pq(pq_key_alg(root->keys[k].key));
		}
	}
	if ((int64_t)valid < root->roles[role].threshold) {
		rc = pq_err_set(PQ_ERR_VERIFY, "%s: %zu valid signatures, threshold %lld", rname,
		                valid, (long long)root->roles[role].threshold);
		goto out;
	}
	if (root->policy == PQ_POLICY_HYBRID && (valid_pq == 0 || valid_pq == valid)) {
		rc = pq_err_set(PQ_ERR_VERIFY,
		                "%s: the hybrid policy needs both a classical and an ML-DSA "
		                "signature",
		                rname);
		goto out;
	}
	if (root->policy == PQ_POLICY_PQ && valid_pq == 0) {
		rc =
		    pq_err_set(PQ_ERR_VERIFY, "%s: the pq policy needs an ML-DSA signature", rname);
		goto out;
	}
	*signed_out = json_incref(s);
out:
	free(msg);
	json_decref(doc);
	return rc;
}

/* ---- the target model ---------------------------------------------------------------- */

static bool name_char(char c)
{
	return (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') ||
	       c == '.' || c == '_' || c == '-' || c == '+';
}

int up_name_check(const char *name)
{
	size_t n = name ? strlen(name) : 0;
	if (n == 0 || n > UP_NAME_MAX || name[0] == '/' || name[n - 1] == '/')
		return pq_err_set(PQ_ERR_FORMAT,
		                  "target name: 1..%d characters, no leading or "
		                  "trailing '/'",
		                  UP_NAME_MAX);
	for (size_t i = 0, seg = 0; i <= n; i++) {
		if (i == n || name[i] == '/') {
			size_t sl = i - seg;
			if (sl == 0 || (sl == 2 && name[seg] == '.' && name[seg + 1] == '.') ||
			    (sl == 1 && name[seg] == '.'))
				return pq_err_set(PQ_ERR_FORMAT, "target name: empty, '.' or '..' "
				                                 "segment");
			seg = i + 1;
		} else if (!name_char(name[i])) {
			return pq_err_set(PQ_ERR_FORMAT,
			                  "target name: character 0x%02x not allowed",
			                  (unsigned char)name[i]);
		}
	}
	return PQ_OK;
}

int up_id_check(const char *id)
{
	size_t n = id ? strlen(id) : 0;
	if (n == 0 || n > UP_ID_MAX)
		return pq_err_set(PQ_ERR_FORMAT, "id: 1..%d characters", UP_ID_MAX);
	for (size_t i = 0; i < n; i++)
		if (!name_char(id[i]))
			return pq_err_set(PQ_ERR_FORMAT, "id: character 0x%02x not allowed",
			                  (unsigned char)id[i]);
	return PQ_OK;
}
