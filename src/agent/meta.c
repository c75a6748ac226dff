/* meta.c: ota_campaign_metadata on the vehicle: parsing and validation of the untrusted
 * message (bounded, typed, every member checked), and the matching of its images against
 * what Uptane verified. Pure functions, unit-tested in tests/unit/test_agent.c. */
#include <stdlib.h>
#include <string.h>

#include "agent/agent_int.h"
#include "crypto/hash.h"

#define ENC_SCHEME "aes-256-gcm-chunked+hybrid-wrap-v1"

static int bad(const char *path, const char *what)
{
	return pq_err_set(PQ_ERR_FORMAT, "metadata %s: %s", path, what);
}

/* Copies a required string member of 1..max bytes (printable ASCII). */
static int get_str(const json_t *o, const char *key, const char *path, char *out, size_t cap,
                   bool required)
{
	json_t *v = json_object_get(o, key);
	char p[160];
	snprintf(p, sizeof(p), "%s%s%s", path, path[0] ? "." : "", key);
	if (!v || json_is_null(v)) {
		out[0] = '\0';
		return required ? bad(p, "missing") : PQ_OK;
	}
	const char *s = json_is_string(v) ? json_string_value(v) : NULL;
	if (!s)
		return bad(p, "not a string");
	size_t n = json_string_length(v);
	if (n == 0 || n >= cap || strlen(s) != n)
		return bad(p, "empty or too long");
	for (size_t i = 0; i < n; i++)
		if ((unsigned char)s[i] < 0x20 || s[i] == 0x7f)
			return bad(p, "control character");
	memcpy(out, s, n + 1);
	return PQ_OK;
}

static int get_len(const json_t *o, const char *key, const char *path, uint64_t *out)
{
	json_t *v = json_object_get(o, key);
	char p[160];
	snprintf(p, sizeof(p), "%s.%s", path, key);
	if (!json_is_integer(v))
		return bad(p, "not an integer");
	json_int_t n = json_integer_value(v);
	if (n <= 0 || (uint64_t)n > AG_LEN_MAX)
		return bad(p, "out of range");
	*out = (uint64_t)n;
	return PQ_OK;
}

static int get_sha(const json_t *o, const char *key, const char *path, uint8_t out[32])
{
	char hex[80], p[160];
	snprintf(p, sizeof(p), "%s.%s", path, key);
	int rc = get_str(o, key, path, hex, sizeof(hex), true);
	if (rc != PQ_OK)
		return rc;
	size_t n = 0;
	if (strlen(hex) != 64 || pq_hex_decode(hex, out, 32, &n) != PQ_OK || n != 32)
		return bad(p, "not 64 hex digits");
	return PQ_OK;
}

static int b64val(char c)
{
	if (c >= 'A' && c <= 'Z')
		return c - 'A';
	if (c >= 'a' && c <= 'z')
		return c - 'a' + 26;
	if (c >= '0' && c <= '9')
		return c - '0' + 52;
	if (c == '+')
		return 62;
	if (c == '/')
		return 63;
	return -1;
}

/* Strict standard base64 with padding. */
static int b64_decode(const char *s, size_t n, uint8_t *out, size_t cap, size_t *out_len)
{
	if (n == 0 || n % 4 != 0)
		return -1;
	size_t o = 0;
	for (size_t i = 0; i < n; i += 4) {
		int v[4];
		int pad = 0;
		for (int k = 0; k < 4; k++) {
			if (s[i + k] == '=' && i + 4 == n && k >= 2) {
				v[k] = 0;
				pad++;
			} else if (pad) {
				return -1; /* data after padding */
			} else if ((v[k] = b64val(s[i + k])) < 0) {
				return -1;
			}
		}
		uint32_t w = (uint32_t)v[0] << 18 | (uint32_t)v[1] << 12 | (uint32_t)v[2] << 6 |
		             (uint32_t)v[3];
		size_t take = 3 - (size_t)pad;
		if (o + take > cap)
			return -1;
		uint8_t b[3] = {(uint8_t)(w >> 16), (uint8_t)(w >> 8), (uint8_t)w};
		memcpy(out + o, b, take);
		o += take;
	}
	*out_len = o;
	return 0;
}

static int parse_enc(const json_t *o, const char *path, const char *vin, const uint8_t pkg_sha[32],
                     ag_enc *e)
{
	char p[160], scheme[64], b64[2 * PQ_WRAP_MAX];
	memset(e, 0, sizeof(*e));
	snprintf(p, sizeof(p), "%s.encryption", path);
	if (!o || json_is_null(o))
		return PQ_OK;
	if (!json_is_object(o))
		return bad(p, "not an object or null");
	int rc = get_str(o, "scheme", p, scheme, sizeof(scheme), true);
	if (rc == PQ_OK && strcmp(scheme, ENC_SCHEME) != 0)
		return bad(p, "unknown scheme (" ENC_SCHEME " expected)");
	if (rc == PQ_OK)
		rc = get_sha(o, "sha256", p, e->sha256);
	if (rc == PQ_OK)
		rc = get_len(o, "length", p, &e->length);
	if (rc == PQ_OK)
		rc = get_str(o, "aad", p, e->aad, sizeof(e->aad), true);
	if (rc == PQ_OK)
		rc = get_str(o, "wrapped_key", p, b64, sizeof(b64), true);
	if (rc != PQ_OK)
		return rc;
	char want[AG_AAD_MAX + 1], hex[65];
	pq_hex_encode(pkg_sha, 32, hex);
	snprintf(want, sizeof(want), "%s|%s", vin, hex);
	if (strcmp(e->aad, want) != 0)
		return bad(p, "aad is not \"<this VIN>|<package sha256>\"");
	if (b64_decode(b64, strlen(b64), e->wrapped, sizeof(e->wrapped), &e->wrapped_len) != 0)
		return bad(p, "wrapped_key is not base64 of a wrapped key");
	e->present = true;
	return PQ_OK;
}

static int parse_url(const json_t *o, const char *path, char *out)
{
	int rc = get_str(o, "url", path, out, AG_URL_MAX + 1, true);
	if (rc != PQ_OK)
		return rc;
	if (strncmp(out, "https://", 8) != 0)
		return bad(path, "url is not https://");
	for (const char *c = out; *c; c++)
		if (*c == ' ' || (unsigned char)*c > 0x7e)
			return bad(path, "url has spaces or non-ASCII characters");
	return PQ_OK;
}

static int parse_file(const json_t *o, const char *path, const char *vin, ag_file *f)
{
	int rc = get_str(o, "name", path, f->name, sizeof(f->name), true);
	if (rc == PQ_OK && up_name_check(f->name) != PQ_OK)
		rc = bad(path, "name is not a target file name");
	if (rc == PQ_OK)
		rc = parse_url(o, path, f->url);
	if (rc == PQ_OK)
		rc = get_len(o, "length", path, &f->length);
	if (rc == PQ_OK)
		rc = get_sha(o, "sha256", path, f->sha256);
	if (rc == PQ_OK)
		rc = parse_enc(json_object_get(o, "encryption"), path, vin, f->sha256, &f->enc);
	return rc;
}

static int parse_image(const json_t *o, const char *path, const char *vin, ag_image *im)
{
	char kind[16];
	if (!json_is_object(o))
		return bad(path, "not an object");
	int rc = get_str(o, "ecu_id", path, im->ecu_id, sizeof(im->ecu_id), true);
	if (rc == PQ_OK && up_id_check(im->ecu_id) != PQ_OK)
		rc = bad(path, "ecu_id is not an id");
	if (rc == PQ_OK)
		rc = get_str(o, "release_id", path, im->release_id, sizeof(im->release_id), false);
	if (rc == PQ_OK)
		rc = parse_file(o, path, vin, &im->file);
	if (rc == PQ_OK)
		rc = get_str(o, "package", path, kind, sizeof(kind), false);
	if (rc == PQ_OK) {
		if (!kind[0] || strcmp(kind, "full") == 0)
			im->delta = false;
		else if (strcmp(kind, "delta") == 0)
			im->delta = true;
		else
			rc = bad(path, "package is neither \"delta\" nor \"full\"");
	}
	if (rc == PQ_OK)
		rc = get_str(o, "from_version", path, im->from_version, sizeof(im->from_version),
		             false);
	if (rc == PQ_OK)
		rc = get_str(o, "to_version", path, im->to_version, sizeof(im->to_version), true);
	if (rc == PQ_OK)
		rc = get_str(o, "software_type", path, im->software_type, sizeof(im->software_type),
		             false);
	if (rc == PQ_OK && !im->software_type[0])
		snprintf(im->software_type, sizeof(im->software_type), "APP");
	if (rc == PQ_OK)
		rc = get_str(o, "hardware_id", path, im->hardware_id, sizeof(im->hardware_id),
		             false);
	if (rc != PQ_OK)
		return rc;

	char p[160];
	json_t *img = json_object_get(o, "image");
	if (img && !json_is_null(img)) {
		snprintf(p, sizeof(p), "%s.image", path);
		if (!json_is_object(img))
			return bad(p, "not an object");
		if ((rc = get_sha(img, "sha256", p, im->image_sha256)) != PQ_OK ||
		    (rc = get_len(img, "length", p, &im->image_len)) != PQ_OK)
			return rc;
		im->has_image = true;
	}
	if (!im->delta)
		return PQ_OK;
	json_t *base = json_object_get(o, "delta_base");
	if (base && !json_is_null(base)) {
		snprintf(p, sizeof(p), "%s.delta_base", path);
		if (!json_is_object(base))
			return bad(p, "not an object");
		if ((rc = get_sha(base, "sha256", p, im->base_sha256)) != PQ_OK ||
		    (rc = get_str(base, "version", p, im->base_version, sizeof(im->base_version),
		                  false)) != PQ_OK)
			return rc;
		im->has_base = true;
	}
	json_t *fb = json_object_get(o, "fallback");
	if (fb && !json_is_null(fb)) {
		snprintf(p, sizeof(p), "%s.fallback", path);
		if (!json_is_object(fb))
			return bad(p, "not an object");
		if ((rc = parse_file(fb, p, vin, &im->fallback)) != PQ_OK)
			return rc;
		if (strcmp(im->fallback.name, im->file.name) == 0)
			return bad(p, "names the delta itself");
		im->has_fallback = true;
	}
	return PQ_OK;
}

static int parse_repo(const json_t *msg, const char *key, char *out)
{
	int rc = get_str(msg, key, "", out, AG_URL_MAX + 1, true);
	if (rc != PQ_OK)
		return rc;
	size_t n = strlen(out);
	if (strncmp(out, "https://", 8) != 0 || out[n - 1] != '/')
		return bad(key, "not an https:// URL ending in '/'");
	for (const char *c = out; *c; c++)
		if (*c == ' ' || *c == '?' || *c == '#' || (unsigned char)*c > 0x7e)
			return bad(key, "not a plain URL");
	return PQ_OK;
}

static int apply_order(ag_meta *m, const json_t *order)
{
	if (!json_is_array(order) || json_array_size(order) > AG_IMAGES_MAX)
		return bad("install_order", "not an array of ECU ids");
	ag_image *sorted = calloc(m->n_images, sizeof(ag_image));
	bool *used = calloc(m->n_images, sizeof(bool));
	size_t pos = 0;
	int rc = PQ_OK;
	if (!sorted || !used) {
		rc = pq_err_set(PQ_ERR_NOMEM, "install_order");
		goto out;
	}
	for (size_t k = 0; k < json_array_size(order); k++) {
		const char *id = json_string_value(json_array_get(order, k));
		if (!id) {
			rc = bad("install_order", "not an array of ECU ids");
			goto out;
		}
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
out:
	free(sorted);
	free(used);
	return rc;
}

int ag_meta_parse(const json_t *msg, const char *vin, ag_meta *out)
{
	memset(out, 0, sizeof(*out));
	if (!json_is_object(msg))
		return bad("", "not an object");
	int rc = get_str(msg, "campaign_id", "", out->campaign_id, sizeof(out->campaign_id), true);
	if (rc == PQ_OK)
		rc = parse_repo(msg, "image_repository", out->image_repo);
	if (rc == PQ_OK)
		rc = parse_repo(msg, "director_repository", out->director_repo);
	if (rc != PQ_OK)
		return rc;
	out->director_targets = json_object_get(msg, "director_targets");
	if (!json_is_object(out->director_targets))
		return bad("director_targets", "not an object");
	char policy[32];
	rc = get_str(msg, "rollback_policy", "", policy, sizeof(policy), false);
	if (rc != PQ_OK)
		return rc;
	if (!policy[0] || strcmp(policy, "all_or_nothing") == 0)
		out->rollback_all = true;
	else if (strcmp(policy, "none") == 0)
		out->rollback_all = false;
	else
		return bad("rollback_policy", "neither all_or_nothing nor none");

	json_t *imgs = json_object_get(msg, "images");
	if (!json_is_array(imgs) || json_array_size(imgs) == 0)
		return bad("images", "not a non-empty array");
	if (json_array_size(imgs) > AG_IMAGES_MAX)
		return bad("images", "too many");
	out->images = calloc(json_array_size(imgs), sizeof(ag_image));
	if (!out->images)
		return pq_err_set(PQ_ERR_NOMEM, "metadata images");
	for (size_t i = 0; i < json_array_size(imgs); i++) {
		char p[32];
		snprintf(p, sizeof(p), "images[%zu]", i);
		rc = parse_image(json_array_get(imgs, i), p, vin, &out->images[i]);
		for (size_t k = 0; rc == PQ_OK && k < i; k++)
			if (strcmp(out->images[k].ecu_id, out->images[i].ecu_id) == 0)
				rc = bad(p, "a second image for the same ECU");
		if (rc != PQ_OK) {
			ag_meta_free(out);
			return rc;
		}
		out->n_images = i + 1;
	}
	/* install_order, when given, reorders: the ECUs it names first, in its order, then
	 * the others in the order of images */
	json_t *order = json_object_get(msg, "install_order");
	if (order && !json_is_null(order)) {
		rc = apply_order(out, order);
		if (rc != PQ_OK) {
			ag_meta_free(out);
			return rc;
		}
	}
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

static int hex32(const char *s, uint8_t out[32])
{
	size_t n = 0;
	if (!s || strlen(s) != 64 || pq_hex_decode(s, out, 32, &n) != PQ_OK || n != 32)
		return -1;
	return 0;
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
	if (!json_is_integer(len_v) || !json_is_integer(rcnt) || !hw || hex32(sha, out->sha256)) {
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

static int copy_member(const json_t *o, const char *key, char *dst, size_t cap)
{
	json_t *v = json_object_get(o, key);
	if (!json_is_string(v) || json_string_length(v) >= cap)
		return pq_err_set(PQ_ERR_FORMAT, "verified target: %s", key);
	memcpy(dst, json_string_value(v), json_string_length(v) + 1);
	return PQ_OK;
}

int ag_up_image_parse(const json_t *o, up_image *out)
{
	memset(out, 0, sizeof(*out));
	json_t *len = json_object_get(o, "length"), *rc_v = json_object_get(o, "release_counter");
	if (!json_is_object(o) || !json_is_integer(len) || !json_is_integer(rc_v) ||
	    hex32(json_string_value(json_object_get(o, "sha256")), out->sha256))
		return pq_err_set(PQ_ERR_FORMAT, "verified target: malformed");
	out->length = json_integer_value(len);
	out->release_counter = json_integer_value(rc_v);
	int rc = copy_member(o, "ecu_id", out->ecu_id, sizeof(out->ecu_id));
	if (rc == PQ_OK)
		rc = copy_member(o, "hardware_id", out->hardware_id, sizeof(out->hardware_id));
	if (rc == PQ_OK)
		rc = copy_member(o, "name", out->name, sizeof(out->name));
	if (rc == PQ_OK)
		rc =
		    copy_member(o, "software_type", out->software_type, sizeof(out->software_type));
	if (rc == PQ_OK)
		rc = copy_member(o, "version", out->version, sizeof(out->version));
	return rc;
}
