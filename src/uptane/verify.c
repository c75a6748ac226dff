/* verify.c: vehicle-side full verification of Uptane metadata (verify.h). */
#include "uptane/verify.h"

#include <stdlib.h>
#include <string.h>

#include "core/text.h"
#include "crypto/hash.h"
#include "uptane/repo.h"

#define ROOT_CHAIN_DEFAULT 64

/* One repository's verified state. */
typedef struct {
	const char *name; /* "image" or "director" */
	up_root *root;
	up_bytes root_bytes;
	json_t *targets; /* the verified "signed" of targets.json */
	up_versions v;
} repo_state;

typedef struct {
	bool has_sha512;
	uint8_t sha256[32], sha512[64];
} hashes;

static bool exact_members(const json_t *obj, const char *const *names, size_t n, size_t opt)
{
	/* names[0..n) required, names[n..n+opt) optional, nothing else */
	size_t have = 0;
	if (!json_is_object(obj))
		return false;
	for (size_t i = 0; i < n + opt; i++) {
		if (json_object_get(obj, names[i]))
			have++;
		else if (i < n)
			return false;
	}
	return json_object_size(obj) == have;
}

static int parse_hash(const json_t *v, uint8_t *out, size_t len)
{
	const char *hex = json_string_value(v);
	size_t n = 0;
	if (!hex || strlen(hex) != 2 * len || pq_hex_decode(hex, out, len, &n) != PQ_OK || n != len)
		return pq_err_set(PQ_ERR_FORMAT, "hash is not %zu bytes of hex", len);
	for (size_t i = 0; i < 2 * len; i++)
		if (hex[i] >= 'A' && hex[i] <= 'F')
			return pq_err_set(PQ_ERR_FORMAT, "hash is not lowercase hex");
	return PQ_OK;
}

static int parse_hashes(const json_t *h, hashes *out)
{
	static const char *const names[] = {"sha256", "sha512"};
	memset(out, 0, sizeof(*out));
	if (!exact_members(h, names, 1, 1))
		return pq_err_set(PQ_ERR_FORMAT,
		                  "hashes: needs sha256, allows sha512, nothing else");
	int rc = parse_hash(json_object_get(h, "sha256"), out->sha256, 32);
	if (rc == PQ_OK && json_object_get(h, "sha512")) {
		out->has_sha512 = true;
		rc = parse_hash(json_object_get(h, "sha512"), out->sha512, 64);
	}
	return rc;
}

static bool hashes_equal(const hashes *a, const hashes *b)
{
	return a->has_sha512 == b->has_sha512 && memcmp(a->sha256, b->sha256, 32) == 0 &&
	       (!a->has_sha512 || memcmp(a->sha512, b->sha512, 64) == 0);
}

/* The bytes match the hashes (every hash given) and the length. */
static int check_bytes(const char *what, const up_bytes *b, int64_t length, const hashes *h)
{
	uint8_t d[64];
	if ((int64_t)b->len != length)
		return pq_err_set(PQ_ERR_VERIFY, "%s: %zu bytes, the metadata says %lld", what,
		                  b->len, (long long)length);
	int rc = pq_hash(PQ_HASH_SHA256, b->data, b->len, d);
	if (rc == PQ_OK && pq_memeq_ct(d, h->sha256, 32) != 0)
		rc = pq_err_set(PQ_ERR_VERIFY, "%s: SHA-256 differs from the metadata", what);
	if (rc == PQ_OK && h->has_sha512) {
		rc = pq_hash(PQ_HASH_SHA512, b->data, b->len, d);
		if (rc == PQ_OK && pq_memeq_ct(d, h->sha512, 64) != 0)
			rc = pq_err_set(PQ_ERR_VERIFY, "%s: SHA-512 differs from the metadata",
			                what);
	}
	return rc;
}

static int64_t int_or(const json_t *v, int64_t dflt)
{
	return json_is_integer(v) ? (int64_t)json_integer_value(v) : dflt;
}

/* Parses a snapshot/timestamp "meta" naming exactly one file, `file`. length/hashes are
 * optional when allow_partial (snapshot's targets.json entry). */
static int parse_meta(const json_t *s, const char *role, const char *file, bool need_hashes,
                      int64_t *version, int64_t *length, hashes *h, bool *has_hashes)
{
	static const char *const sn[] = {"_type", "spec_version", "version", "expires", "meta"};
	static const char *const en[] = {"version", "length", "hashes"};
	const json_t *meta = json_object_get(s, "meta");
	const json_t *e = json_object_get(meta, file);
	if (!exact_members(s, sn, 5, 0) || !json_is_object(meta) || json_object_size(meta) != 1 ||
	    !exact_members(e, en, need_hashes ? 3 : 1, need_hashes ? 0 : 2))
		return pq_err_set(PQ_ERR_FORMAT, "%s: meta must name exactly %s with version%s",
		                  role, file, need_hashes ? ", length and hashes" : "");
	*version = int_or(json_object_get(e, "version"), -1);
	*length = int_or(json_object_get(e, "length"), -1);
	if (*version < 1 || (json_object_get(e, "length") && *length < 0))
		return pq_err_set(PQ_ERR_FORMAT, "%s: bad version or length of %s", role, file);
	*has_hashes = json_object_get(e, "hashes") != NULL;
	if (*has_hashes) {
		int rc = parse_hashes(json_object_get(e, "hashes"), h);
		if (rc != PQ_OK)
			return pq_err_wrap(rc, "%s.meta.%s", role, file);
	}
	return PQ_OK;
}

/* Header, rollback and freeze checks shared by every role after its signatures. */
static int check_header(const repo_state *rs, const json_t *s, up_role role, int64_t trusted,
                        int64_t now, int64_t *version)
{
	int64_t expires = 0;
	const char *rn = up_role_name(role);
	int rc = up_signed_header(s, role, version, &expires);
	if (rc != PQ_OK)
		return pq_err_wrap(rc, "%s %s", rs->name, rn);
	if (*version < trusted)
		return pq_err_set(PQ_ERR_VERIFY,
		                  "version %lld is lower than trusted %lld (rollback)",
		                  (long long)*version, (long long)trusted);
	if (expires <= now)
		return pq_err_set(PQ_ERR_VERIFY, "expired (freeze)");
	return PQ_OK;
}

static int load_root_unverified(const up_bytes *b, size_t max, up_root **out)
{
	json_t *doc = NULL;
	*out = NULL;
	if (!b->data)
		return pq_err_set(PQ_ERR_INVAL, "no trusted root");
	if (b->len > max)
		return pq_err_set(PQ_ERR_RANGE, "root: %zu bytes, more than %zu", b->len, max);
	doc = json_loadb(b->data, b->len, JSON_REJECT_DUPLICATES, NULL);
	int rc = doc ? up_root_parse(json_object_get(doc, "signed"), out)
	             : pq_err_set(PQ_ERR_FORMAT, "root: not JSON");
	json_decref(doc);
	return rc;
}

static int check_policy(const up_root *r, const pq_sign_policy *pin)
{
	if (pin && r->policy != *pin)
		return pq_err_set(PQ_ERR_VERIFY, "root version %lld declares policy %s, not %s",
		                  (long long)r->version, pq_policy_name(r->policy),
		                  pq_policy_name(*pin));
	return PQ_OK;
}

/* The root chain: trusted root, then each newer root in turn. */
static int verify_roots(repo_state *rs, const up_bytes *trusted, const up_bytes *chain, size_t n,
                        const up_verify_input *in, const up_limits *lim, up_versions *floor)
{
	json_t *s = NULL;
	up_root *next = NULL;
	int rc = load_root_unverified(trusted, lim->root, &rs->root);
	/* the stored root must still be self-consistent (its own keys sign it) */
	if (rc == PQ_OK)
		rc = up_meta_check(rs->root, UP_ROLE_ROOT, trusted->data, trusted->len, lim->root,
		                   &s);
	json_decref(s);
	s = NULL;
	if (rc == PQ_OK)
		rc = check_policy(rs->root, in->policy);
	if (rc != PQ_OK)
		return pq_err_wrap(rc, "%s trusted root", rs->name);
	rs->root_bytes = *trusted;
	if (n > lim->root_chain)
		return pq_err_set(PQ_ERR_RANGE, "%s: %zu new roots, at most %zu", rs->name, n,
		                  lim->root_chain);
	for (size_t i = 0; i < n; i++) {
		/* signed by the trusted root's root role ... */
		rc = up_meta_check(rs->root, UP_ROLE_ROOT, chain[i].data, chain[i].len, lim->root,
		                   &s);
		if (rc == PQ_OK)
			rc = up_root_parse(s, &next);
		json_decref(s);
		s = NULL;
		if (rc == PQ_OK && next->version != rs->root->version + 1)
			rc = pq_err_set(PQ_ERR_VERIFY, "version %lld follows %lld",
			                (long long)next->version, (long long)rs->root->version);
		/* ... and by its own */
		if (rc == PQ_OK)
			rc = up_meta_check(next, UP_ROLE_ROOT, chain[i].data, chain[i].len,
			                   lim->root, &s);
		json_decref(s);
		s = NULL;
		if (rc == PQ_OK)
			rc = check_policy(next, in->policy);
		if (rc != PQ_OK) {
			up_root_free(next);
			return pq_err_wrap(rc, "%s root %zu of the chain (after version %lld)",
			                   rs->name, i + 1, (long long)rs->root->version);
		}
		/* new timestamp or snapshot keys: forget their versions (fast-forward recovery) */
		if (!up_root_role_equal(rs->root, next, UP_ROLE_TIMESTAMP) ||
		    !up_root_role_equal(rs->root, next, UP_ROLE_SNAPSHOT)) {
			floor->timestamp = 0;
			floor->snapshot = 0;
		}
		up_root_free(rs->root);
		rs->root = next;
		next = NULL;
		rs->root_bytes = chain[i];
	}
	if (rs->root->expires <= in->now)
		return pq_err_set(PQ_ERR_VERIFY, "%s root version %lld: expired (freeze)", rs->name,
		                  (long long)rs->root->version);
	rs->v.root = rs->root->version;
	return PQ_OK;
}

static int verify_repo(repo_state *rs, const up_bytes *trusted, const up_bytes *chain,
                       size_t nchain, const up_bytes *ts, const up_bytes *sn, const up_bytes *tg,
                       up_versions floor, size_t targets_max, const up_verify_input *in,
                       const up_limits *lim)
{
	json_t *s = NULL;
	int64_t sn_ver = 0, sn_len = 0, tg_ver = 0, tg_len = -1, v = 0;
	hashes sn_h, tg_h;
	bool has = false, tg_has = false;
	int rc = verify_roots(rs, trusted, chain, nchain, in, lim, &floor);
	if (rc != PQ_OK)
		return rc;
	if (!ts->data || !sn->data || !tg->data)
		return pq_err_set(PQ_ERR_INVAL, "%s: metadata missing", rs->name);

	/* timestamp */
	rc = up_meta_check(rs->root, UP_ROLE_TIMESTAMP, ts->data, ts->len, lim->timestamp, &s);
	if (rc == PQ_OK)
		rc = check_header(rs, s, UP_ROLE_TIMESTAMP, floor.timestamp, in->now, &v);
	if (rc == PQ_OK)
		rc = parse_meta(s, "timestamp", "snapshot.json", true, &sn_ver, &sn_len, &sn_h,
		                &has);
	if (rc == PQ_OK && sn_ver < floor.snapshot)
		rc = pq_err_set(PQ_ERR_VERIFY,
		                "timestamp names snapshot version %lld, lower than "
		                "trusted %lld (rollback)",
		                (long long)sn_ver, (long long)floor.snapshot);
	json_decref(s);
	s = NULL;
	if (rc != PQ_OK)
		return pq_err_wrap(rc, "%s timestamp", rs->name);
	rs->v.timestamp = v;

	/* snapshot: the bytes the timestamp names, first (bounded by its length) */
	if (sn_len > (int64_t)lim->snapshot)
		rc =
		    pq_err_set(PQ_ERR_RANGE, "timestamp claims a %lld-byte snapshot, more than %zu",
		               (long long)sn_len, lim->snapshot);
	if (rc == PQ_OK)
		rc = check_bytes("snapshot", sn, sn_len, &sn_h);
	if (rc == PQ_OK)
		rc =
		    up_meta_check(rs->root, UP_ROLE_SNAPSHOT, sn->data, sn->len, lim->snapshot, &s);
	if (rc == PQ_OK)
		rc = check_header(rs, s, UP_ROLE_SNAPSHOT, floor.snapshot, in->now, &v);
	if (rc == PQ_OK && v != sn_ver)
		rc = pq_err_set(PQ_ERR_VERIFY, "version %lld, the timestamp names %lld",
		                (long long)v, (long long)sn_ver);
	if (rc == PQ_OK)
		rc = parse_meta(s, "snapshot", "targets.json", false, &tg_ver, &tg_len, &tg_h,
		                &tg_has);
	if (rc == PQ_OK && tg_ver < floor.targets)
		rc = pq_err_set(PQ_ERR_VERIFY,
		                "names targets version %lld, lower than trusted %lld "
		                "(rollback)",
		                (long long)tg_ver, (long long)floor.targets);
	json_decref(s);
	s = NULL;
	if (rc != PQ_OK)
		return pq_err_wrap(rc, "%s snapshot", rs->name);
	rs->v.snapshot = v;

	/* targets */
	size_t tmax = strcmp(rs->name, "image") == 0 ? lim->image_targets : lim->director_targets;
	if (tg->len > tmax)
		rc = pq_err_set(PQ_ERR_RANGE, "%zu bytes, more than %zu", tg->len, tmax);
	if (rc == PQ_OK && tg_len >= 0 && (int64_t)tg->len != tg_len)
		rc = pq_err_set(PQ_ERR_VERIFY, "%zu bytes, the snapshot says %lld", tg->len,
		                (long long)tg_len);
	if (rc == PQ_OK && tg_has)
		rc = check_bytes("targets", tg, (int64_t)tg->len, &tg_h);
	if (rc == PQ_OK)
		rc = up_meta_check(rs->root, UP_ROLE_TARGETS, tg->data, tg->len, tmax, &s);
	if (rc == PQ_OK)
		rc = check_header(rs, s, UP_ROLE_TARGETS, floor.targets, in->now, &v);
	if (rc == PQ_OK && v != tg_ver)
		rc = pq_err_set(PQ_ERR_VERIFY,
		                "version %lld, the snapshot names %lld (mix and "
		                "match)",
		                (long long)v, (long long)tg_ver);
	if (rc == PQ_OK && (!json_is_object(json_object_get(s, "targets")) ||
	                    json_object_size(json_object_get(s, "targets")) > targets_max))
		rc = pq_err_set(PQ_ERR_RANGE, "targets: an object of at most %zu entries",
		                targets_max);
	if (rc != PQ_OK) {
		json_decref(s);
		return pq_err_wrap(rc, "%s targets", rs->name);
	}
	rs->targets = s;
	rs->v.targets = v;
	return PQ_OK;
}

/* Parses one target's length and hashes and returns its custom object. */
static int parse_target(const char *name, const json_t *t, int64_t *length, hashes *h,
                        const json_t **custom)
{
	static const char *const tn[] = {"custom", "hashes", "length"};
	int rc = up_name_check(name);
	if (rc != PQ_OK)
		return rc;
	if (!exact_members(t, tn, 3, 0) || !json_is_object(json_object_get(t, "custom")))
		return pq_err_set(PQ_ERR_FORMAT,
		                  "target '%s': needs exactly custom, hashes, length", name);
	*length = int_or(json_object_get(t, "length"), -1);
	if (*length < 0)
		return pq_err_set(PQ_ERR_FORMAT, "target '%s': bad length", name);
	*custom = json_object_get(t, "custom");
	rc = parse_hashes(json_object_get(t, "hashes"), h);
	return rc == PQ_OK ? PQ_OK : pq_err_wrap(rc, "target '%s'", name);
}

static int copy_id(char *dst, const json_t *v, bool id)
{
	const char *s = json_string_value(v);
	if (!v) {
		dst[0] = 0;
		return PQ_OK;
	}
	if (!s || strlen(s) > UP_ID_MAX || (id && up_id_check(s) != PQ_OK) || (!id && !*s))
		return pq_err_set(PQ_ERR_FORMAT, "bad id or version string");
	memcpy(dst, s, strlen(s) + 1);
	return PQ_OK;
}

/* One image as both repositories describe it, checked to agree. */
typedef struct {
	const char *name;
	int64_t length;
	hashes h;
	int64_t release_counter;
	const json_t *ecus;      /* the director's ECU map */
	const json_t *icust;     /* the image repository's custom */
	const char *hardware_id; /* the image repository's */
} matched_target;

/* Both targets files have exactly their expected members, and the director's are for us. */
static int match_headers(const up_verify_input *in, const json_t *dir, const json_t *img)
{
	static const char *const dn[] = {"_type",   "spec_version", "version",
	                                 "expires", "targets",      "vin"};
	static const char *const in_[] = {"_type", "spec_version", "version", "expires", "targets"};
	const char *vin = json_string_value(json_object_get(dir, "vin"));
	if (!exact_members(dir, dn, 6, 0))
		return pq_err_set(PQ_ERR_FORMAT, "director targets: needs exactly the header, "
		                                 "targets and vin");
	if (!exact_members(img, in_, 5, 0))
		return pq_err_set(PQ_ERR_FORMAT, "image targets: needs exactly the header and "
		                                 "targets (delegations are not supported)");
	if (!vin || !in->vin || strcmp(vin, in->vin) != 0)
		return pq_err_set(PQ_ERR_VERIFY, "director targets are for another vehicle");
	return PQ_OK;
}

/* Whether a director target is a bundle's (custom has "bundle"; match_bundle checks it). */
static bool is_bundle(const json_t *t)
{
	return json_object_get(json_object_get(t, "custom"), "bundle") != NULL;
}

/* Allocates out->images for every ECU the director names (1..UP_ECUS_MAX in all). */
static int alloc_images(const json_t *dt, up_verify_result *out)
{
	const char *name;
	const json_t *t;
	size_t total = 0;
	json_object_foreach((json_t *)dt, name, t)
	{
		if (is_bundle(t))
			continue;
		size_t ne = json_object_size(json_object_get(json_object_get(t, "custom"), "ecus"));
		if (ne == 0 || ne > UP_ECUS_MAX || total + ne > UP_ECUS_MAX)
			return pq_err_set(PQ_ERR_RANGE, "director target '%.64s': 1..%d ECUs", name,
			                  UP_ECUS_MAX);
		total += ne;
	}
	out->images = calloc(total ? total : 1, sizeof(up_image));
	return out->images ? PQ_OK : pq_err_set(PQ_ERR_NOMEM, "images");
}

/* The director's target `name` and the image repository's entry of the same name agree on
 * length, hashes and release counter. */
static int match_target(const char *name, const json_t *t, const json_t *image_targets,
                        matched_target *m)
{
	static const char *const dc[] = {"ecus", "release_counter"};
	static const char *const ic[] = {"hardware_id", "release_counter", "ecu_id",
	                                 "software_type", "version"};
	int64_t ilen = 0;
	hashes ih;
	const json_t *dcust = NULL, *icust = NULL;
	m->name = name;
	int rc = parse_target(name, t, &m->length, &m->h, &dcust);
	if (rc != PQ_OK)
		return pq_err_wrap(rc, "director");
	m->release_counter = int_or(json_object_get(dcust, "release_counter"), -1);
	m->ecus = json_object_get(dcust, "ecus");
	if (!exact_members(dcust, dc, 2, 0) || !json_is_object(m->ecus) || m->release_counter < 0)
		return pq_err_set(PQ_ERR_FORMAT,
		                  "director target '%s': custom needs exactly "
		                  "ecus and release_counter",
		                  name);
	const json_t *i = json_object_get(image_targets, name);
	if (!i)
		return pq_err_set(PQ_ERR_VERIFY,
		                  "image '%s' of the director is not in the image repository",
		                  name);
	if ((rc = parse_target(name, i, &ilen, &ih, &icust)) != PQ_OK)
		return pq_err_wrap(rc, "image");
	int64_t irc = int_or(json_object_get(icust, "release_counter"), -1);
	m->icust = icust;
	m->hardware_id = json_string_value(json_object_get(icust, "hardware_id"));
	if (!exact_members(icust, ic, 2, 3) || irc < 0 || !m->hardware_id ||
	    up_id_check(m->hardware_id) != PQ_OK)
		return pq_err_set(PQ_ERR_FORMAT, "image target '%s': bad custom", name);
	if (m->length != ilen)
		return pq_err_set(PQ_ERR_VERIFY,
		                  "image '%s': the director says %lld bytes, the image repository "
		                  "%lld",
		                  name, (long long)m->length, (long long)ilen);
	if (!hashes_equal(&m->h, &ih))
		return pq_err_set(PQ_ERR_VERIFY,
		                  "image '%s': director and image repository hashes differ", name);
	if (m->release_counter != irc)
		return pq_err_set(PQ_ERR_VERIFY, "image '%s': release counters differ", name);
	return PQ_OK;
}

/* The director's bundle target `name` (custom exactly {"bundle": true}), the only one, and
 * the image repository's entry of that name: a bundle with the same length and hashes. */
static int match_bundle(const char *name, const json_t *t, const json_t *image_targets,
                        up_verify_result *out)
{
	static const char *const dc[] = {"bundle"};
	int64_t len = 0, ilen = 0;
	hashes h, ih;
	const json_t *dcust = NULL, *icust = NULL;
	int rc = parse_target(name, t, &len, &h, &dcust);
	if (rc != PQ_OK)
		return pq_err_wrap(rc, "director");
	if (!exact_members(dcust, dc, 1, 0) || !json_is_true(json_object_get(dcust, "bundle")))
		return pq_err_set(PQ_ERR_FORMAT,
		                  "director target '%s': a bundle's custom is exactly "
		                  "{\"bundle\": true}",
		                  name);
	if (out->has_bundle)
		return pq_err_set(PQ_ERR_VERIFY, "the director names two bundles");
	const json_t *i = json_object_get(image_targets, name);
	if (!i)
		return pq_err_set(PQ_ERR_VERIFY,
		                  "bundle '%s' of the director is not in the image repository",
		                  name);
	if ((rc = parse_target(name, i, &ilen, &ih, &icust)) != PQ_OK)
		return pq_err_wrap(rc, "image");
	const char *type = json_string_value(json_object_get(icust, "software_type"));
	if (!type || strcmp(type, UP_BUNDLE_TYPE) != 0)
		return pq_err_set(PQ_ERR_VERIFY, "'%s' is not a bundle in the image repository",
		                  name);
	if (len != ilen || !hashes_equal(&h, &ih))
		return pq_err_set(PQ_ERR_VERIFY,
		                  "bundle '%s': director and image repository disagree on its "
		                  "length or hashes",
		                  name);
	up_image *b = &out->bundle;
	memset(b, 0, sizeof(*b));
	memcpy(b->name, name, strlen(name) + 1);
	b->length = len;
	memcpy(b->sha256, h.sha256, 32);
	b->has_sha512 = h.has_sha512;
	memcpy(b->sha512, h.sha512, 64);
	memcpy(b->software_type, UP_BUNDLE_TYPE, sizeof(UP_BUNDLE_TYPE));
	out->has_bundle = true;
	return PQ_OK;
}

/* The vehicle's ECU `ecu_id`, once only, with the matched image's hardware id and a release
 * counter no lower than the installed one. */
static int check_ecu(const up_verify_input *in, const up_verify_result *out,
                     const matched_target *m, const char *ecu_id, const char *hw)
{
	const up_ecu *ecu = NULL;
	for (size_t k = 0; k < in->n_ecus && !ecu; k++)
		if (in->ecus[k].ecu_id && strcmp(in->ecus[k].ecu_id, ecu_id) == 0)
			ecu = &in->ecus[k];
	if (!ecu)
		return pq_err_set(PQ_ERR_VERIFY, "ECU '%s' is not in this vehicle", ecu_id);
	for (size_t k = 0; k < out->n_images; k++)
		if (strcmp(out->images[k].ecu_id, ecu_id) == 0)
			return pq_err_set(PQ_ERR_VERIFY, "ECU '%s' has two images", ecu_id);
	if (strcmp(hw, m->hardware_id) != 0 || !ecu->hardware_id ||
	    strcmp(hw, ecu->hardware_id) != 0)
		return pq_err_set(PQ_ERR_VERIFY,
		                  "ECU '%s': hardware id mismatch (director '%s', image '%s', ECU "
		                  "'%s')",
		                  ecu_id, hw, m->hardware_id,
		                  ecu->hardware_id ? ecu->hardware_id : "");
	if (m->release_counter < ecu->release_counter)
		return pq_err_set(PQ_ERR_VERIFY,
		                  "ECU '%s': release counter %lld is lower than the installed %lld "
		                  "(rollback)",
		                  ecu_id, (long long)m->release_counter,
		                  (long long)ecu->release_counter);
	return PQ_OK;
}

/* Appends the verified image of one ECU to out. */
static int add_image(up_verify_result *out, const matched_target *m, const char *ecu_id,
                     const char *hw)
{
	up_image *im = &out->images[out->n_images];
	memcpy(im->ecu_id, ecu_id, strlen(ecu_id) + 1);
	memcpy(im->hardware_id, hw, strlen(hw) + 1);
	memcpy(im->name, m->name, strlen(m->name) + 1);
	im->length = m->length;
	memcpy(im->sha256, m->h.sha256, 32);
	im->has_sha512 = m->h.has_sha512;
	memcpy(im->sha512, m->h.sha512, 64);
	im->release_counter = m->release_counter;
	const json_t *ecu = json_object_get(m->icust, "ecu_id");
	if (copy_id(im->software_type, json_object_get(m->icust, "software_type"), true) != PQ_OK ||
	    copy_id(im->version, json_object_get(m->icust, "version"), false) != PQ_OK ||
	    (ecu && copy_id((char[UP_ID_MAX + 1]){0}, ecu, true) != PQ_OK))
		return pq_err_wrap(PQ_ERR_FORMAT, "image target '%s'", m->name);
	out->n_images++;
	return PQ_OK;
}

/* Every ECU entry of a matched target: well-formed, checked, then added to out. */
static int add_ecus(const up_verify_input *in, const matched_target *m, up_verify_result *out)
{
	static const char *const ec[] = {"hardware_id"};
	const char *ecu_id;
	const json_t *ev;
	json_object_foreach((json_t *)m->ecus, ecu_id, ev)
	{
		const char *hw = json_string_value(json_object_get(ev, "hardware_id"));
		if (!exact_members(ev, ec, 1, 0) || up_id_check(ecu_id) != PQ_OK || !hw ||
		    up_id_check(hw) != PQ_OK)
			return pq_err_set(PQ_ERR_FORMAT, "director target '%s': bad ECU entry",
			                  m->name);
		int rc = check_ecu(in, out, m, ecu_id, hw);
		if (rc == PQ_OK)
			rc = add_image(out, m, ecu_id, hw);
		if (rc != PQ_OK)
			return rc;
	}
	return PQ_OK;
}

/* Director and image repository must agree on every image the director names. */
static int match(const up_verify_input *in, const json_t *dir, const json_t *img,
                 up_verify_result *out)
{
	const json_t *dt = json_object_get(dir, "targets"), *it = json_object_get(img, "targets");
	const char *name;
	const json_t *t;
	int rc = match_headers(in, dir, img);
	if (rc == PQ_OK)
		rc = alloc_images(dt, out);
	if (rc != PQ_OK)
		return rc;
	json_object_foreach((json_t *)dt, name, t)
	{
		matched_target m = {0};
		if (is_bundle(t)) {
			if ((rc = match_bundle(name, t, it, out)) != PQ_OK)
				return rc;
			continue;
		}
		if ((rc = match_target(name, t, it, &m)) != PQ_OK ||
		    (rc = add_ecus(in, &m, out)) != PQ_OK)
			return rc;
	}
	return PQ_OK;
}

void up_verify_result_free(up_verify_result *r)
{
	if (!r)
		return;
	free(r->images);
	memset(r, 0, sizeof(*r));
}

int up_verify(const up_verify_input *in, up_verify_result *out)
{
	up_limits lim = {0};
	repo_state dir = {.name = "director"}, img = {.name = "image"};
	memset(out, 0, sizeof(*out));
	if (!in || !in->vin || (in->n_ecus && !in->ecus) ||
	    (in->n_image_roots && !in->image_roots) ||
	    (in->n_director_roots && !in->director_roots))
		return pq_err_set(PQ_ERR_INVAL, "up_verify: bad arguments");
	if (in->limits)
		lim = *in->limits;
	lim.root = lim.root ? lim.root : UP_MAX_ROOT;
	lim.timestamp = lim.timestamp ? lim.timestamp : UP_MAX_TIMESTAMP;
	lim.snapshot = lim.snapshot ? lim.snapshot : UP_MAX_SNAPSHOT;
	lim.image_targets = lim.image_targets ? lim.image_targets : UP_MAX_IMAGE_TARGETS;
	lim.director_targets =
	    lim.director_targets ? lim.director_targets : UP_MAX_DIRECTOR_TARGETS;
	lim.root_chain = lim.root_chain ? lim.root_chain : ROOT_CHAIN_DEFAULT;

	/* Uptane full verification: the director first, then the image repository */
	int rc = verify_repo(&dir, &in->director_root, in->director_roots, in->n_director_roots,
	                     &in->director_timestamp, &in->director_snapshot, &in->director_targets,
	                     in->director_trusted, UP_ECUS_MAX, in, &lim);
	if (rc == PQ_OK)
		rc = verify_repo(&img, &in->image_root, in->image_roots, in->n_image_roots,
		                 &in->image_timestamp, &in->image_snapshot, &in->image_targets,
		                 in->image_trusted, UP_TARGETS_MAX, in, &lim);
	if (rc == PQ_OK)
		rc = match(in, dir.targets, img.targets, out);
	if (rc == PQ_OK) {
		out->image = img.v;
		out->director = dir.v;
		out->image_root = img.root_bytes;
		out->director_root = dir.root_bytes;
	} else {
		up_verify_result_free(out);
	}
	up_root_free(dir.root);
	up_root_free(img.root);
	json_decref(dir.targets);
	json_decref(img.targets);
	return rc;
}
