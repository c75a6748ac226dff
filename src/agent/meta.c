/* meta.c: ota_campaign_metadata on the vehicle: parsing and validation of the untrusted
 * message (bounded, typed, every member checked), and the matching of its images against
 * what Uptane verified. Pure functions, unit-tested in tests/unit/test_agent.c. */
#include <stdlib.h>
#include <string.h>

#include "agent/agent_int.h"
#include "core/jsonv.h"
#include "core/text.h"
#include "crypto/hash.h"

#define ENC_SCHEME "aes-256-gcm-chunked+hybrid-wrap-v1"
#define PATH_LEN   160
#define SHA_HEX    64

/* Every refusal is "metadata: <path>: <problem>" (PQ_ERR_FORMAT); null members are absent. */
static const pq_jv JV = {.err = PQ_ERR_FORMAT, .what = "metadata", .null_absent = true};

/* The member's text (1..cap-1 bytes, no control character) into out[cap]; an absent
 * optional member leaves out as it is. */
static int get_str(const json_t *o, const char *key, const char *path, unsigned flags, char *out,
                   size_t cap)
{
	return pq_jv_str_copy(&JV, o, key, path, flags | PQ_JV_NO_CTRL, out, cap);
}

/* A length of 1..AG_LEN_MAX bytes (required). */
static int get_len(const json_t *o, const char *key, const char *path, uint64_t *out)
{
	int64_t n = 0;
	int rc = pq_jv_int(&JV, o, key, path, PQ_JV_REQUIRED, 1, (int64_t)AG_LEN_MAX, &n);
	if (rc == PQ_OK)
		*out = (uint64_t)n;
	return rc;
}

/* A SHA-256 as 64 hex digits (required). */
static int get_sha(const json_t *o, const char *key, const char *path, uint8_t out[32])
{
	const char *hex = NULL;
	size_t n = 0;
	int rc = pq_jv_str(&JV, o, key, path, PQ_JV_REQUIRED | PQ_JV_NO_CTRL, SHA_HEX, &hex);
	if (rc != PQ_OK)
		return rc;
	if (strlen(hex) != SHA_HEX || pq_hex_decode(hex, out, 32, &n) != PQ_OK || n != 32)
		return pq_jv_fail(&JV, path, key, "not %d hex digits", SHA_HEX);
	return PQ_OK;
}

/* "<path>.<key>" into out[PATH_LEN]. */
static const char *sub_path(char *out, const char *path, const char *key)
{
	snprintf(out, PATH_LEN, "%s%s%s", path, path[0] ? "." : "", key);
	return out;
}

/* The encryption member of a package file: absent or null for a plaintext package. */
static int parse_enc(const json_t *file, const char *path, const char *vin,
                     const uint8_t pkg_sha[32], ag_enc *e)
{
	char p[PATH_LEN], scheme[64], want[AG_AAD_MAX + 1], hex[SHA_HEX + 1];
	const char *b64 = NULL;
	json_t *o = NULL;
	memset(e, 0, sizeof(*e));
	int rc = pq_jv_obj(&JV, file, "encryption", path, 0, &o);
	if (rc != PQ_OK || !o)
		return rc;
	sub_path(p, path, "encryption");
	if ((rc = get_str(o, "scheme", p, PQ_JV_REQUIRED, scheme, sizeof(scheme))) != PQ_OK)
		return rc;
	if (strcmp(scheme, ENC_SCHEME) != 0)
		return pq_jv_fail(&JV, p, "scheme", "unknown (" ENC_SCHEME " expected)");
	if ((rc = get_sha(o, "sha256", p, e->sha256)) != PQ_OK ||
	    (rc = get_len(o, "length", p, &e->length)) != PQ_OK ||
	    (rc = get_str(o, "aad", p, PQ_JV_REQUIRED, e->aad, sizeof(e->aad))) != PQ_OK ||
	    (rc = pq_jv_str(&JV, o, "wrapped_key", p, PQ_JV_REQUIRED | PQ_JV_NO_CTRL,
	                    2 * PQ_WRAP_MAX - 1, &b64)) != PQ_OK)
		return rc;
	pq_hex_encode(pkg_sha, 32, hex);
	snprintf(want, sizeof(want), "%s|%s", vin, hex);
	if (strcmp(e->aad, want) != 0)
		return pq_jv_fail(&JV, p, "aad", "not \"<this VIN>|<package sha256>\"");
	if (pq_b64_decode(b64, strlen(b64), e->wrapped, sizeof(e->wrapped), &e->wrapped_len) !=
	    PQ_OK)
		return pq_jv_fail(&JV, p, "wrapped_key", "not base64 of a wrapped key");
	e->present = true;
	return PQ_OK;
}

static int parse_url(const json_t *o, const char *path, char *out)
{
	int rc = get_str(o, "url", path, PQ_JV_REQUIRED, out, AG_URL_MAX + 1);
	if (rc != PQ_OK)
		return rc;
	if (strncmp(out, "https://", 8) != 0)
		return pq_jv_fail(&JV, path, "url", "not https://");
	for (const char *c = out; *c; c++)
		if (*c == ' ' || (unsigned char)*c > 0x7e)
			return pq_jv_fail(&JV, path, "url", "spaces or non-ASCII characters");
	return PQ_OK;
}

static int parse_file(const json_t *o, const char *path, const char *vin, ag_file *f)
{
	int rc = get_str(o, "name", path, PQ_JV_REQUIRED, f->name, sizeof(f->name));
	if (rc != PQ_OK)
		return rc;
	if (up_name_check(f->name) != PQ_OK)
		return pq_jv_fail(&JV, path, "name", "not a target file name");
	if ((rc = parse_url(o, path, f->url)) != PQ_OK ||
	    (rc = get_len(o, "length", path, &f->length)) != PQ_OK ||
	    (rc = get_sha(o, "sha256", path, f->sha256)) != PQ_OK)
		return rc;
	return parse_enc(o, path, vin, f->sha256, &f->enc);
}

/* The members that say what is installed: ids, versions, kind of package. */
static int parse_target(const json_t *o, const char *path, ag_image *im)
{
	char kind[16] = "";
	int rc = get_str(o, "ecu_id", path, PQ_JV_REQUIRED, im->ecu_id, sizeof(im->ecu_id));
	if (rc != PQ_OK)
		return rc;
	if (up_id_check(im->ecu_id) != PQ_OK)
		return pq_jv_fail(&JV, path, "ecu_id", "not an id");
	if ((rc = get_str(o, "release_id", path, 0, im->release_id, sizeof(im->release_id))) !=
	        PQ_OK ||
	    (rc = get_str(o, "package", path, 0, kind, sizeof(kind))) != PQ_OK)
		return rc;
	if (!kind[0] || strcmp(kind, "full") == 0)
		im->delta = false;
	else if (strcmp(kind, "delta") == 0)
		im->delta = true;
	else
		return pq_jv_fail(&JV, path, "package", "neither \"delta\" nor \"full\"");
	if ((rc = get_str(o, "from_version", path, 0, im->from_version,
	                  sizeof(im->from_version))) != PQ_OK ||
	    (rc = get_str(o, "to_version", path, PQ_JV_REQUIRED, im->to_version,
	                  sizeof(im->to_version))) != PQ_OK ||
	    (rc = get_str(o, "software_type", path, 0, im->software_type,
	                  sizeof(im->software_type))) != PQ_OK ||
	    (rc = get_str(o, "hardware_id", path, 0, im->hardware_id, sizeof(im->hardware_id))) !=
	        PQ_OK)
		return rc;
	if (!im->software_type[0])
		snprintf(im->software_type, sizeof(im->software_type), "APP");
	return PQ_OK;
}

/* The optional objects: the decoded image, and for a delta its base and fallback. */
static int parse_extras(const json_t *o, const char *path, const char *vin, ag_image *im)
{
	char p[PATH_LEN];
	json_t *img = NULL, *base = NULL, *fb = NULL;
	int rc = pq_jv_obj(&JV, o, "image", path, 0, &img);
	if (rc != PQ_OK)
		return rc;
	if (img) {
		sub_path(p, path, "image");
		if ((rc = get_sha(img, "sha256", p, im->image_sha256)) != PQ_OK ||
		    (rc = get_len(img, "length", p, &im->image_len)) != PQ_OK)
			return rc;
		im->has_image = true;
	}
	if (!im->delta)
		return get_str(o, "bundle_path", path, 0, im->bundle_path, sizeof(im->bundle_path));
	if ((rc = pq_jv_obj(&JV, o, "delta_base", path, 0, &base)) != PQ_OK)
		return rc;
	if (base) {
		sub_path(p, path, "delta_base");
		if ((rc = get_sha(base, "sha256", p, im->base_sha256)) != PQ_OK ||
		    (rc = get_str(base, "version", p, 0, im->base_version,
		                  sizeof(im->base_version))) != PQ_OK)
			return rc;
		im->has_base = true;
	}
	if ((rc = pq_jv_obj(&JV, o, "fallback", path, 0, &fb)) != PQ_OK)
		return rc;
	if (fb) {
		sub_path(p, path, "fallback");
		if ((rc = parse_file(fb, p, vin, &im->fallback)) != PQ_OK)
			return rc;
		if (strcmp(im->fallback.name, im->file.name) == 0)
			return pq_jv_fail(&JV, p, NULL, "names the delta itself");
		im->has_fallback = true;
	}
	return PQ_OK;
}

static int parse_image(const json_t *o, const char *path, const char *vin, ag_image *im)
{
	if (!json_is_object(o))
		return pq_jv_fail(&JV, path, NULL, "not an object");
	int rc = parse_target(o, path, im);
	if (rc == PQ_OK)
		rc = parse_file(o, path, vin, &im->file);
	if (rc == PQ_OK)
		rc = parse_extras(o, path, vin, im);
	return rc;
}

static int parse_repo(const json_t *msg, const char *key, char *out)
{
	int rc = get_str(msg, key, "", PQ_JV_REQUIRED, out, AG_URL_MAX + 1);
	if (rc != PQ_OK)
		return rc;
	size_t n = strlen(out);
	if (strncmp(out, "https://", 8) != 0 || out[n - 1] != '/')
		return pq_jv_fail(&JV, "", key, "not an https:// URL ending in '/'");
	for (const char *c = out; *c; c++)
		if (*c == ' ' || *c == '?' || *c == '#' || (unsigned char)*c > 0x7e)
			return pq_jv_fail(&JV, "", key, "not a plain URL");
	return PQ_OK;
}

static int parse_policy(const json_t *msg, bool *rollback_all)
{
	char policy[32] = "";
	int rc = get_str(msg, "rollback_policy", "", 0, policy, sizeof(policy));
	if (rc != PQ_OK)
		return rc;
	if (!policy[0] || strcmp(policy, "all_or_nothing") == 0)
		*rollback_all = true;
	else if (strcmp(policy, "none") == 0)
		*rollback_all = false;
	else
		return pq_jv_fail(&JV, "", "rollback_policy", "neither all_or_nothing nor none");
	return PQ_OK;
}

static int parse_images(const json_t *msg, const char *vin, ag_meta *out)
{
	json_t *imgs = pq_jv_get(&JV, msg, "images");
	if (!json_is_array(imgs) || json_array_size(imgs) == 0)
		return pq_jv_fail(&JV, "", "images", "not a non-empty array");
	if (json_array_size(imgs) > AG_IMAGES_MAX)
		return pq_jv_fail(&JV, "", "images", "more than %d", AG_IMAGES_MAX);
	out->images = calloc(json_array_size(imgs), sizeof(ag_image));
	if (!out->images)
		return pq_err_set(PQ_ERR_NOMEM, "metadata images");
	for (size_t i = 0; i < json_array_size(imgs); i++) {
		char p[32];
		snprintf(p, sizeof(p), "images[%zu]", i);
		int rc = parse_image(json_array_get(imgs, i), p, vin, &out->images[i]);
		if (rc != PQ_OK)
			return rc;
		for (size_t k = 0; k < i; k++)
			if (strcmp(out->images[k].ecu_id, out->images[i].ecu_id) == 0)
				return pq_jv_fail(&JV, p, NULL, "a second image for the same ECU");
		out->n_images = i + 1;
	}
	return PQ_OK;
}

/* install_order, when given, reorders: the ECUs it names first, in its order, then the
 * others in the order of images. */
static int apply_order(ag_meta *m, const json_t *msg)
{
	json_t *order = pq_jv_get(&JV, msg, "install_order");
	if (!order)
		return PQ_OK;
	if (!json_is_array(order) || json_array_size(order) > AG_IMAGES_MAX)
		return pq_jv_fail(&JV, "", "install_order", "not an array of ECU ids");
	for (size_t k = 0; k < json_array_size(order); k++)
		if (!json_is_string(json_array_get(order, k)))
			return pq_jv_fail(&JV, "", "install_order", "not an array of ECU ids");
	ag_image *sorted = calloc(m->n_images, sizeof(ag_image));
	bool *used = calloc(m->n_images, sizeof(bool));
	if (!sorted || !used) {
		free(sorted);
		free(used);
		return pq_err_set(PQ_ERR_NOMEM, "install_order");
	}
	size_t pos = 0;
	for (size_t k = 0; k < json_array_size(order); k++) {
		const char *id = json_string_value(json_array_get(order, k));
		for (size_t i = 0; i < m->n_images; i++)
			if (!used[i] && strcmp(m->images[i].ecu_id, id) == 0) {
				sorted[pos++] = m->images[i];
				used[i] = true;
			}
	}
	for (size_t i = 0; i < m->n_images; i++)
		if (!used[i])
			sorted[pos++] = m->images[i];
	memcpy(m->images, sorted, m->n_images * sizeof(ag_image));
	free(sorted);
	free(used);
	return PQ_OK;
}

/* The optional "bundle": the campaign's full_package.bin, a file like any package's. */
static int parse_bundle(const json_t *msg, const char *vin, ag_meta *out)
{
	json_t *b = NULL;
	int rc = pq_jv_obj(&JV, msg, "bundle", "", 0, &b);
	if (rc != PQ_OK || !b)
		return rc;
	rc = parse_file(b, "bundle", vin, &out->bundle);
	out->has_bundle = rc == PQ_OK;
	return rc;
}

int ag_meta_parse(const json_t *msg, const char *vin, ag_meta *out)
{
	json_t *targets = NULL;
	memset(out, 0, sizeof(*out));
	if (!json_is_object(msg))
		return pq_err_set(JV.err, "metadata: not a JSON object");
	int rc = get_str(msg, "campaign_id", "", PQ_JV_REQUIRED, out->campaign_id,
	                 sizeof(out->campaign_id));
	if (rc == PQ_OK)
		rc = parse_repo(msg, "image_repository", out->image_repo);
	if (rc == PQ_OK)
		rc = parse_repo(msg, "director_repository", out->director_repo);
	if (rc == PQ_OK)
		rc = pq_jv_obj(&JV, msg, "director_targets", "", PQ_JV_REQUIRED, &targets);
	if (rc == PQ_OK)
		rc = parse_policy(msg, &out->rollback_all);
	if (rc == PQ_OK)
		rc = parse_images(msg, vin, out);
	if (rc == PQ_OK)
		rc = apply_order(out, msg);
	if (rc == PQ_OK)
		rc = parse_bundle(msg, vin, out);
	if (rc != PQ_OK) {
		ag_meta_free(out);
		return rc;
	}
	out->director_targets = targets;
	return PQ_OK;
}

void ag_meta_free(ag_meta *m)
{
	if (!m)
		return;
	free(m->images);
	m->images = NULL;
	m->n_images = 0;
}

/* ---- matching -------------------------------------------------------------------------- */

/* Whether s is 64 hex digits, decoded into out. */
static bool hex32(const char *s, uint8_t out[32])
{
	size_t n = 0;
	return s && strlen(s) == SHA_HEX && pq_hex_decode(s, out, 32, &n) == PQ_OK && n == 32;
}

static void copy_id(char *dst, size_t cap, const char *s)
{
	snprintf(dst, cap, "%s", s ? s : "");
}

int ag_image_target(const char *targets, size_t len, const char *name, up_image *out)
{
	json_error_t je;
	memset(out, 0, sizeof(*out));
	json_t *root = json_loadb(targets, len, JSON_REJECT_DUPLICATES, &je);
	json_t *t =
	    json_object_get(json_object_get(json_object_get(root, "signed"), "targets"), name);
	int rc = PQ_OK;
	if (!root) {
		rc = pq_err_set(PQ_ERR_FORMAT, "image targets: %s", je.text);
		goto out;
	}
	if (!json_is_object(t)) {
		rc = pq_err_set(PQ_ERR_NOTFOUND, "the image repository has no target %s", name);
		goto out;
	}
	json_t *custom = json_object_get(t, "custom");
	json_t *len_v = json_object_get(t, "length");
	json_t *rcnt = json_object_get(custom, "release_counter");
	const char *sha =
	    json_string_value(json_object_get(json_object_get(t, "hashes"), "sha256"));
	const char *hw = json_string_value(json_object_get(custom, "hardware_id"));
	if (!json_is_integer(len_v) || !json_is_integer(rcnt) || !hw || !hex32(sha, out->sha256)) {
		rc = pq_err_set(PQ_ERR_FORMAT, "image target %s is incomplete", name);
		goto out;
	}
	copy_id(out->name, sizeof(out->name), name);
	out->length = json_integer_value(len_v);
	out->release_counter = json_integer_value(rcnt);
	copy_id(out->hardware_id, sizeof(out->hardware_id), hw);
	copy_id(out->ecu_id, sizeof(out->ecu_id),
	        json_string_value(json_object_get(custom, "ecu_id")));
	copy_id(out->software_type, sizeof(out->software_type),
	        json_string_value(json_object_get(custom, "software_type")));
	copy_id(out->version, sizeof(out->version),
	        json_string_value(json_object_get(custom, "version")));
out:
	json_decref(root);
	return rc;
}

int ag_meta_match(const ag_meta *m, const up_verify_result *r, const char *image_targets,
                  size_t image_targets_len, ag_verified *out)
{
	for (size_t i = 0; i < m->n_images; i++) {
		const ag_image *im = &m->images[i];
		const up_image *t = NULL;
		memset(&out[i], 0, sizeof(out[i]));
		for (size_t k = 0; k < r->n_images && !t; k++)
			if (strcmp(r->images[k].ecu_id, im->ecu_id) == 0)
				t = &r->images[k];
		if (!t)
			return pq_err_set(PQ_ERR_VERIFY,
			                  "%s: the director has no target for this ECU",
			                  im->ecu_id);
		if (strcmp(t->name, im->file.name) != 0)
			return pq_err_set(PQ_ERR_VERIFY,
			                  "%s: the metadata names %s, the director %s", im->ecu_id,
			                  im->file.name, t->name);
		if (t->length < 0 || (uint64_t)t->length != im->file.length)
			return pq_err_set(PQ_ERR_VERIFY,
			                  "%s: %s is %llu bytes in the metadata, %lld verified",
			                  im->ecu_id, t->name, (unsigned long long)im->file.length,
			                  (long long)t->length);
		if (pq_memeq_ct(t->sha256, im->file.sha256, 32) != 0)
			return pq_err_set(PQ_ERR_VERIFY,
			                  "%s: the SHA-256 of %s differs from the verified one",
			                  im->ecu_id, t->name);
		if (im->hardware_id[0] && strcmp(im->hardware_id, t->hardware_id) != 0)
			return pq_err_set(PQ_ERR_VERIFY, "%s: hardware id %s, verified %s",
			                  im->ecu_id, im->hardware_id, t->hardware_id);
		out[i].target = *t;
		if (!im->has_fallback)
			continue;
		up_image fb;
		int rc = ag_image_target(image_targets, image_targets_len, im->fallback.name, &fb);
		if (rc != PQ_OK)
			return pq_err_wrap(PQ_ERR_VERIFY, "%s: fallback", im->ecu_id);
		if (fb.length < 0 || (uint64_t)fb.length != im->fallback.length ||
		    pq_memeq_ct(fb.sha256, im->fallback.sha256, 32) != 0)
			return pq_err_set(PQ_ERR_VERIFY,
			                  "%s: fallback %s differs from the image repository's",
			                  im->ecu_id, fb.name);
		if (strcmp(fb.hardware_id, t->hardware_id) != 0 ||
		    fb.release_counter != t->release_counter)
			return pq_err_set(PQ_ERR_VERIFY,
			                  "%s: fallback %s is another release (hardware id %s, "
			                  "release counter %lld; the director's: %s, %lld)",
			                  im->ecu_id, fb.name, fb.hardware_id,
			                  (long long)fb.release_counter, t->hardware_id,
			                  (long long)t->release_counter);
		copy_id(fb.ecu_id, sizeof(fb.ecu_id), t->ecu_id);
		out[i].has_fallback = true;
		out[i].fallback = fb;
	}
	return PQ_OK;
}

int ag_bundle_match(const ag_meta *m, const up_verify_result *r)
{
	if (!m->has_bundle)
		return PQ_OK;
	const up_image *b = &r->bundle;
	if (!r->has_bundle)
		return pq_err_set(PQ_ERR_VERIFY,
		                  "the metadata gives a bundle the director does not");
	if (strcmp(b->name, m->bundle.name) != 0)
		return pq_err_set(PQ_ERR_VERIFY, "the metadata's bundle is %s, the director's %s",
		                  m->bundle.name, b->name);
	if (b->length < 0 || (uint64_t)b->length != m->bundle.length ||
	    pq_memeq_ct(b->sha256, m->bundle.sha256, 32) != 0)
		return pq_err_set(PQ_ERR_VERIFY,
		                  "bundle %s: length or SHA-256 differs from the verified one",
		                  b->name);
	return PQ_OK;
}

/* ---- persistence of verified targets ----------------------------------------------------- */

json_t *ag_up_image_json(const up_image *im)
{
	char hex[65];
	pq_hex_encode(im->sha256, 32, hex);
	return json_pack("{s:s,s:s,s:s,s:I,s:s,s:I,s:s,s:s}", "ecu_id", im->ecu_id, "hardware_id",
	                 im->hardware_id, "name", im->name, "length", (json_int_t)im->length,
	                 "sha256", hex, "release_counter", (json_int_t)im->release_counter,
	                 "software_type", im->software_type, "version", im->version);
}

/* The persisted form is ours (state.json), but a corrupt file must not overflow anything. */
static const pq_jv JV_VERIFIED = {.err = PQ_ERR_FORMAT, .what = "verified target"};

int ag_up_image_parse(const json_t *o, up_image *out)
{
	const pq_jv *c = &JV_VERIFIED;
	const unsigned req = PQ_JV_REQUIRED, text = PQ_JV_REQUIRED | PQ_JV_EMPTY_OK;
	const char *sha = NULL;
	int rc;
	memset(out, 0, sizeof(*out));
	if (!json_is_object(o))
		return pq_jv_fail(c, "", NULL, "not an object");
	if ((rc = pq_jv_int(c, o, "length", "", req, INT64_MIN, INT64_MAX, &out->length)) !=
	        PQ_OK ||
	    (rc = pq_jv_int(c, o, "release_counter", "", req, INT64_MIN, INT64_MAX,
	                    &out->release_counter)) != PQ_OK ||
	    (rc = pq_jv_str(c, o, "sha256", "", req, SHA_HEX, &sha)) != PQ_OK)
		return rc;
	if (!hex32(sha, out->sha256))
		return pq_jv_fail(c, "", "sha256", "not %d hex digits", SHA_HEX);
	if ((rc = pq_jv_str_copy(c, o, "ecu_id", "", text, out->ecu_id, sizeof(out->ecu_id))) !=
	        PQ_OK ||
	    (rc = pq_jv_str_copy(c, o, "hardware_id", "", text, out->hardware_id,
	                         sizeof(out->hardware_id))) != PQ_OK ||
	    (rc = pq_jv_str_copy(c, o, "name", "", text, out->name, sizeof(out->name))) != PQ_OK ||
	    (rc = pq_jv_str_copy(c, o, "software_type", "", text, out->software_type,
	                         sizeof(out->software_type))) != PQ_OK)
		return rc;
	return pq_jv_str_copy(c, o, "version", "", text, out->version, sizeof(out->version));
}
