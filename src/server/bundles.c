/* bundles.c: a `pqota pack build` bundle as one release set (docs/api.md 18). The upload of
 * full_package.bin is checked against its manifest (the bundle's length and SHA-256, every
 * unit's path, length and SHA-256) and deeply verified (pkg_verify: every header, index
 * hash, CRC and leaf); then each leaf unit becomes a release of its own (its package copied
 * out byte for byte, its image decoded), so campaigns, Uptane metadata and per-vehicle
 * encryption treat them like any release. The record lists them (the store's bundles). */
#include <dirent.h>
#include <errno.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <event2/http.h>

#include "core/fileio.h"
#include "core/log.h"
#include "core/text.h"
#include "core/uuid.h"
#include "crypto/hash.h"
#include "pkg/bundle.h"
#include "pkg/pkg.h"
#include "server/bundles.h"
#include "server/releases_int.h"
#include "server/routes.h"
#include "store/bundle_store.h"

#define BND_FORMAT "pqota-swpg-manifest-v1"

/* One leaf unit of the bundle being taken in. */
typedef struct {
	const pkg_entry *e;
	const json_t *unit; /* its manifest object */
	store_release r;
} bnd_unit;

typedef struct {
	const char *upload, *title;
	const json_t *manifest, *hw_map;
	char sha[65];
	uint64_t size;
	pkg_reader *rd;
	bnd_unit *u;
	size_t n;
} bnd_req;

int bnd_load(store *db, const char *id, json_t **out)
{
	store_bundle b;
	json_error_t je;
	*out = NULL;
	int rc = store_bundle_get(db, id, &b);
	if (rc != PQ_OK)
		return rc;
	*out = json_loads(b.record, 0, &je);
	store_bundle_clear(&b);
	return *out ? PQ_OK : pq_err_set(PQ_ERR_FORMAT, "bundle %s: %s", id, je.text);
}

/* One record file of an older server (DATA/bundles/<id>.json) into the store, then renamed
 * <id>.json.imported; a record the store has already is only renamed. */
static int import_file(store *db, const char *dir, const char *name)
{
	char path[PATH_MAX], done[PATH_MAX + 16], *text = NULL;
	size_t len = 0;
	json_error_t je;
	json_t *rec = NULL;
	store_bundle b = {0};
	int rc = pq_path_join(path, sizeof(path), dir, name);
	if (rc == PQ_OK)
		rc = pq_file_read(path, STORE_BUNDLE_RECORD_MAX, &text, &len);
	if (rc == PQ_OK && !(rec = json_loadb(text, len, 0, &je)))
		rc = pq_err_set(PQ_ERR_FORMAT, "%s", je.text);
	const char *id = json_string_value(json_object_get(rec, "id"));
	const char *sha = json_string_value(json_object_get(rec, "file_sha256"));
	if (rc == PQ_OK && (!id || !sha || strlen(sha) != 64))
		rc = pq_err_set(PQ_ERR_FORMAT, "no id or file_sha256");
	if (rc == PQ_OK) {
		snprintf(b.id, sizeof(b.id), "%.*s", (int)sizeof(b.id) - 1, id);
		snprintf(b.file_sha256, sizeof(b.file_sha256), "%s", sha);
		b.file_size = json_integer_value(json_object_get(rec, "file_size"));
		b.created_ms = json_integer_value(json_object_get(rec, "created_ms"));
		b.record = text;
		rc = store_bundle_insert(db, &b);
		if (rc == PQ_ERR_EXISTS)
			rc = PQ_OK;
	}
	snprintf(done, sizeof(done), "%s.imported", path);
	if (rc == PQ_OK && rename(path, done) != 0)
		rc = pq_err_set(PQ_ERR_IO, "rename: %s", strerror(errno));
	json_decref(rec);
	free(text);
	return rc == PQ_OK ? PQ_OK : pq_err_wrap(rc, "bundle record %s", path);
}

int bnd_import_files(const char *data_dir, const store_config *sc, int *imported)
{
	char dir[PATH_MAX];
	store *db = NULL;
	*imported = 0;
	if (pq_path_join(dir, sizeof(dir), data_dir, "bundles") != PQ_OK)
		return pq_err_set(PQ_ERR_RANGE, "data directory path too long");
	DIR *d = opendir(dir);
	if (!d)
		return errno == ENOENT ? PQ_OK
		                       : pq_err_set(PQ_ERR_IO, "%s: %s", dir, strerror(errno));
	int rc = store_open(sc, &db);
	for (struct dirent *e; rc == PQ_OK && (e = readdir(d)) != NULL;) {
		size_t n = strlen(e->d_name);
		if (n <= 5 || strcmp(e->d_name + n - 5, ".json") != 0)
			continue;
		if ((rc = import_file(db, dir, e->d_name)) == PQ_OK)
			++*imported;
	}
	closedir(d);
	store_close(db);
	return rc;
}

bool bnd_file_known(srv *s, const char *sha)
{
	char path[PATH_MAX];
	struct stat st;
	return strlen(sha) == 64 && strspn(sha, "0123456789abcdef") == 64 &&
	       rel_data_path(s, "files", sha, path) == PQ_OK && stat(path, &st) == 0 &&
	       S_ISREG(st.st_mode);
}

/* ---- checks ---------------------------------------------------------------------------- */

static const char *jstr(const json_t *o, const char *key)
{
	return json_string_value(json_object_get(o, key));
}

/* hardware_ids: an object of at most 4096 strings. */
static bool hw_map_ok(const json_t *m)
{
	const char *k;
	json_t *v;
	if (!json_is_object(m) || json_object_size(m) > 4096)
		return false;
	json_object_foreach((json_t *)m, k, v)
	{
		if (!json_is_string(v))
			return false;
	}
	return true;
}

/* The body's members; false when an error was sent. */
static bool parse_body(srv_ctx *c, const json_t *b, bnd_req *q)
{
	static const char *const keys[] = {"upload_id", "manifest", "title", "hardware_ids", NULL};
	const char *k;
	json_t *v;
	json_object_foreach((json_t *)b, k, v)
	{
		size_t i = 0;
		while (keys[i] && strcmp(keys[i], k) != 0)
			i++;
		if (!keys[i]) {
			srv_error(c, 400, "bad_request", "unknown member '%.32s'", k);
			return false;
		}
	}
	q->upload = jstr(b, "upload_id");
	q->manifest = json_object_get(b, "manifest");
	q->title = jstr(b, "title");
	q->hw_map = json_object_get(b, "hardware_ids");
	if (!q->upload || !json_is_object(q->manifest)) {
		srv_error(c, 400, "bad_request",
		          "upload_id (the upload of full_package.bin) and manifest (its "
		          "manifest.json object) are required");
		return false;
	}
	if ((q->title && (strlen(q->title) < 1 || strlen(q->title) > 64)) ||
	    (q->hw_map && !hw_map_ok(q->hw_map))) {
		srv_error(
		    c, 400, "bad_request",
		    "title: 1..64 characters; hardware_ids: an object {unit name: hardware id}");
		return false;
	}
	return true;
}

/* The manifest's object for path (NULL when none or several). */
static const json_t *manifest_unit(const json_t *m, const char *path)
{
	const json_t *found = NULL, *u;
	size_t i;
	json_array_foreach(json_object_get(m, "units"), i, u)
	{
		const char *p = jstr(u, "path");
		if (p && strcmp(p, path) == 0) {
			if (found)
				return NULL;
			found = u;
		}
	}
	return found;
}

/* Whether the manifest object u names a file of length len and SHA-256 sha (hex). */
static bool same_file(const json_t *u, uint64_t len, const char *sha)
{
	const json_t *l = json_object_get(u, "length");
	const char *s = jstr(u, "sha256");
	return json_is_integer(l) && (uint64_t)json_integer_value(l) == len && s &&
	       strcmp(s, sha) == 0;
}

/* The manifest against the upload (format, bundle length and hash); PQ_ERR_VERIFY. */
static int check_manifest_top(const bnd_req *q)
{
	const char *f = jstr(q->manifest, "format");
	if (!f || strcmp(f, BND_FORMAT) != 0)
		return pq_err_set(PQ_ERR_VERIFY, "manifest: format is not %s", BND_FORMAT);
	if (!json_is_array(json_object_get(q->manifest, "units")) ||
	    json_array_size(json_object_get(q->manifest, "units")) > 4096)
		return pq_err_set(PQ_ERR_VERIFY, "manifest: no units array (at most 4096)");
	if (!same_file(json_object_get(q->manifest, "bundle"), q->size, q->sha))
		return pq_err_set(PQ_ERR_VERIFY,
		                  "manifest: bundle.length and bundle.sha256 are not those of the "
		                  "upload (%llu bytes, %s)",
		                  (unsigned long long)q->size, q->sha);
	return PQ_OK;
}

/* Every package of the tree (but the root) is a unit of the manifest with its length and
 * index SHA-256, and the manifest lists nothing else; the leaves (no delta) go into q->u. */
static int check_tree(bnd_req *q, const pkg_entry *es, size_t n)
{
	q->u = calloc(n, sizeof(*q->u));
	if (!q->u)
		return pq_err_set(PQ_ERR_NOMEM, "bundle");
	if (json_array_size(json_object_get(q->manifest, "units")) != n - 1)
		return pq_err_set(PQ_ERR_VERIFY, "manifest: %zu units, the bundle holds %zu",
		                  json_array_size(json_object_get(q->manifest, "units")), n - 1);
	for (size_t i = 1; i < n; i++) {
		const pkg_entry *e = &es[i];
		char hex[65];
		pq_hex_encode(e->sha256, 32, hex);
		const json_t *u = manifest_unit(q->manifest, e->path);
		if (!u || !e->has_sha256 || !same_file(u, 64 + (uint64_t)e->hdr.payload_size, hex))
			return pq_err_set(
			    PQ_ERR_VERIFY,
			    "%s: not in the manifest once with its length and SHA-256", e->path);
		if (e->hdr.software_type >= SWPG_TYPE_ZONE)
			continue;
		if (e->hdr.compression == SWPG_COMP_DELTA)
			return pq_err_set(PQ_ERR_VERIFY,
			                  "%s: a delta unit (bundles of full images only, so far)",
			                  e->path);
		q->u[q->n].e = e;
		q->u[q->n].unit = u;
		q->n++;
	}
	return q->n ? PQ_OK : pq_err_set(PQ_ERR_VERIFY, "the bundle has no leaf package");
}

/* ---- the releases ---------------------------------------------------------------------- */

/* The hardware id of unit name in zone z: the body's, else the default model's
 * ("HW-<z>-<nnn>" for ECU_nnn), else the name. */
static const char *hardware_id(const bnd_req *q, const char *name, int zone, char buf[32])
{
	const char *hw = q->hw_map ? jstr(q->hw_map, name) : NULL;
	if (hw)
		return hw;
	if (strlen(name) == 7 && strncmp(name, "ECU_", 4) == 0 && zone >= 1 &&
	    strspn(name + 4, "0123456789") == 3) {
		snprintf(buf, 32, "HW-%d-%s", zone, name + 4);
		return buf;
	}
	return name;
}

/* The release record of unit u (everything but the image), checked: the version has
 * three parts, the names fit. */
static int fill_unit(srv_ctx *c, const bnd_req *q, bnd_unit *u)
{
	const swpg_header *h = &u->e->hdr;
	const char *slash = strrchr(u->e->path, '/');
	const char *name = slash ? slash + 1 : u->e->path;
	const char *p = u->e->path;
	/* "ZONE<z>/<name>": z is 1..9 (PKG_ZONES_MAX) */
	int zone = slash && strncmp(p, "ZONE", 4) == 0 && p[4] >= '1' && p[4] <= '9' && p[5] == '/'
	               ? p[4] - '0'
	               : 0;
	char hwbuf[32];
	const char *hw = hardware_id(q, name, zone, hwbuf);
	store_release *r = &u->r;
	if (h->version.build != 0)
		return pq_err_set(PQ_ERR_VERIFY,
		                  "%s: version %u.%u.%u.%u: a release's has three parts",
		                  u->e->path, h->version.major, h->version.minor, h->version.patch,
		                  h->version.build);
	if (strlen(hw) < 1 || strlen(hw) > STORE_NAME_MAX)
		return pq_err_set(PQ_ERR_INVAL, "%s: hardware id of 1..%d characters", name,
		                  STORE_NAME_MAX);
	int rc = pq_uuid4(r->id);
	if (rc != PQ_OK)
		return rc;
	const char *prefix = q->title ? q->title : jstr(q->manifest, "campaign_id");
	snprintf(r->title, sizeof(r->title), "%.40s %.63s %u.%u.%u", prefix ? prefix : "bundle",
	         u->e->path, h->version.major, h->version.minor, h->version.patch);
	snprintf(r->version, sizeof(r->version), "%u.%u.%u", h->version.major, h->version.minor,
	         h->version.patch);
	snprintf(r->hardware_id, sizeof(r->hardware_id), "%s", hw);
	snprintf(r->software_type, sizeof(r->software_type), "%s",
	         swpg_type_name(h->software_type));
	snprintf(r->ecu_id, sizeof(r->ecu_id), "%s", name);
	pq_hex_encode(u->e->sha256, 32, r->file_sha256);
	r->file_size = 64 + (int64_t)h->payload_size;
	snprintf(r->created_by, sizeof(r->created_by), "%.64s", c->actor);
	r->created_ms = c->now_ms;
	return PQ_OK;
}

/* Each unit's release is new (PQ_ERR_EXISTS names the first that is not). */
static int units_new(srv_ctx *c, const bnd_req *q)
{
	for (size_t i = 0; i < q->n; i++) {
		const store_release *r = &q->u[i].r;
		bool found = false;
		int rc = store_release_exists(c->db, r->hardware_id, r->ecu_id, r->software_type,
		                              r->version, &found);
		if (rc != PQ_OK)
			return rc;
		if (found)
			return pq_err_set(PQ_ERR_EXISTS,
			                  "a release %s %s of %s for %s exists already", r->ecu_id,
			                  r->version, r->software_type, r->hardware_id);
	}
	return PQ_OK;
}

/* DATA/<dir>/<name> (*out), DATA/<dir> made if missing. */
static int data_path_made(srv *s, const char *dir, const char *name, char out[PATH_MAX])
{
	char d[PATH_MAX];
	int rc = rel_data_path(s, dir, "", d);
	if (rc == PQ_OK)
		rc = pq_mkdirs(d, PQ_PRIVATE_DIR_MODE);
	return rc == PQ_OK ? rel_data_path(s, dir, name, out) : rc;
}

/* tmp renamed to DATA/<dir>/<sha> (dropped when that exists already: same content). */
static int into_store(srv *s, const char *tmp, const char *dir, const char *sha)
{
	char dst[PATH_MAX];
	int rc = rel_data_path(s, dir, sha, dst);
	if (rc == PQ_OK && access(dst, F_OK) != 0 && rename(tmp, dst) != 0)
		rc = pq_err_set(PQ_ERR_IO, "storing %s: %s", dst, strerror(errno));
	unlink(tmp);
	return rc;
}

/* Unit u's package copied out (its index hash checked) to DATA/files/, its image decoded
 * (CRC, size, index hash checked) to DATA/images/ with its length and SHA-256 in u->r. */
static int extract_unit(srv *s, pkg_reader *rd, bnd_unit *u)
{
	char tmp[PATH_MAX], name[64], id[PQ_UUID_LEN];
	uint8_t d[32];
	struct stat st;
	int rc = pq_uuid4(id);
	if (rc == PQ_OK) {
		snprintf(name, sizeof(name), ".bundle-%s", id);
		rc = data_path_made(s, "files", name, tmp);
	}
	if (rc == PQ_OK)
		rc = pkg_extract_package(rd, u->e, tmp, NULL);
	if (rc == PQ_OK)
		rc = into_store(s, tmp, "files", u->r.file_sha256);
	if (rc == PQ_OK)
		rc = data_path_made(s, "images", name, tmp);
	if (rc == PQ_OK)
		rc = pkg_extract_image(rd, u->e, NULL, tmp, NULL);
	if (rc == PQ_OK)
		rc = pq_hash_file(PQ_HASH_SHA256, tmp, d);
	if (rc == PQ_OK && stat(tmp, &st) != 0)
		rc = pq_err_set(PQ_ERR_IO, "%s: %s", tmp, strerror(errno));
	if (rc == PQ_OK) {
		pq_hex_encode(d, 32, u->r.image_sha256);
		u->r.image_size = st.st_size;
		const json_t *img = json_object_get(u->unit, "image");
		if (img && !same_file(img, (uint64_t)st.st_size, u->r.image_sha256))
			rc = pq_err_set(PQ_ERR_VERIFY, "%s: its image is not the manifest's",
			                u->e->path);
	}
	if (rc == PQ_OK)
		return into_store(s, tmp, "images", u->r.image_sha256);
	unlink(tmp);
	return pq_err_wrap(rc, "%s", u->e->path);
}

/* The units' releases and the bundle's record, in one transaction. */
static int insert_all(store *db, const bnd_req *q, const store_bundle *b)
{
	int rc = store_begin(db);
	for (size_t i = 0; rc == PQ_OK && i < q->n; i++)
		rc = store_release_insert(db, &q->u[i].r);
	if (rc == PQ_OK)
		rc = store_bundle_insert(db, b);
	if (rc == PQ_OK)
		return store_commit(db);
	store_rollback(db);
	return rc;
}

/* ---- the record ------------------------------------------------------------------------ */

static json_t *record_json(srv_ctx *c, const bnd_req *q, const char *id)
{
	json_t *units = json_array(), *ids = json_array();
	for (size_t i = 0; units && ids && i < q->n; i++) {
		const store_release *r = &q->u[i].r;
		json_array_append_new(
		    units, json_pack("{s:s,s:s,s:s,s:s,s:s,s:s,s:I}", "path", q->u[i].e->path,
		                     "release_id", r->id, "ecu_id", r->ecu_id, "hardware_id",
		                     r->hardware_id, "version", r->version, "file_sha256",
		                     r->file_sha256, "file_size", (json_int_t)r->file_size));
		json_array_append_new(ids, json_string(r->id));
	}
	return json_pack("{s:s,s:s?,s:s?,s:s,s:I,s:I,s:s,s:o,s:o,s:O}", "id", id, "title", q->title,
	                 "campaign_id", jstr(q->manifest, "campaign_id"), "file_sha256", q->sha,
	                 "file_size", (json_int_t)q->size, "created_ms", (json_int_t)c->now_ms,
	                 "created_by", c->actor, "units", units, "release_ids", ids, "manifest",
	                 q->manifest);
}

/* The upload linked as DATA/files/<sha>, then the releases and the record stored. */
static int store_all(srv_ctx *c, const bnd_req *q, const json_t *rec, const char *id)
{
	char up[PATH_MAX], dst[PATH_MAX];
	int rc = rel_upload_path(c, q->upload, "part", up);
	if (rc == PQ_OK)
		rc = rel_data_path(c->s, "files", q->sha, dst);
	if (rc == PQ_OK && link(up, dst) != 0 && errno != EEXIST)
		rc = pq_err_set(PQ_ERR_IO, "storing the bundle: %s", strerror(errno));
	store_bundle b = {.file_size = (int64_t)q->size, .created_ms = c->now_ms};
	snprintf(b.id, sizeof(b.id), "%s", id);
	snprintf(b.file_sha256, sizeof(b.file_sha256), "%s", q->sha);
	b.record = rc == PQ_OK ? json_dumps(rec, JSON_COMPACT | JSON_SORT_KEYS) : NULL;
	if (rc == PQ_OK && !b.record)
		rc = pq_err_set(PQ_ERR_NOMEM, "bundle record");
	if (rc == PQ_OK)
		rc = insert_all(c->db, q, &b);
	free(b.record);
	return rc;
}

/* ---- routes ---------------------------------------------------------------------------- */

/* The upload complete, hashed, opened, verified and matched with the manifest; the units'
 * releases filled and new. PQ_ERR_VERIFY (422) when the bundle or manifest is wrong. */
static int take_in(srv_ctx *c, bnd_req *q)
{
	char up[PATH_MAX];
	const pkg_entry *es;
	size_t n = 0;
	pkg_verify_report rep;
	int rc = rel_upload_path(c, q->upload, "part", up);
	if (rc == PQ_OK)
		rc = check_manifest_top(q);
	if (rc == PQ_OK && (rc = pkg_open(up, &q->rd)) != PQ_OK)
		rc = pq_err_wrap(PQ_ERR_VERIFY, "not a package");
	if (rc == PQ_OK && (rc = pkg_list(q->rd, &es, &n)) == PQ_OK &&
	    es[0].hdr.software_type != SWPG_TYPE_VEHICLE)
		rc = pq_err_set(PQ_ERR_VERIFY, "not a vehicle bundle (full_package.bin)");
	if (rc == PQ_OK && (rc = pkg_verify(q->rd, &rep, NULL)) != PQ_OK)
		rc = pq_err_wrap(PQ_ERR_VERIFY, "verification failed at '%s'", rep.failed_path);
	if (rc == PQ_OK)
		rc = check_tree(q, es, n);
	for (size_t i = 0; rc == PQ_OK && i < q->n; i++)
		rc = fill_unit(c, q, &q->u[i]);
	return rc == PQ_OK ? units_new(c, q) : rc;
}

static void fail(srv_ctx *c, int rc)
{
	if (rc == PQ_ERR_VERIFY)
		srv_error(c, 422, "bundle_invalid", "%s", pq_err_detail());
	else if (rc == PQ_ERR_EXISTS)
		srv_error(c, 409, "conflict", "%s", pq_err_detail());
	else
		srv_fail(c, rc, "bundle");
}

/* The units' packages and images copied out, the record made, and all of it stored, under
 * the files lock (files_gc.c: a release deleted meanwhile does not take a file a unit
 * shares with it); what a failure leaves that nothing names is removed. */
static int make_all(srv_ctx *c, bnd_req *q, json_t **rec, char id[PQ_UUID_LEN])
{
	rel_files_lock(c->s);
	int rc = PQ_OK;
	for (size_t i = 0; rc == PQ_OK && i < q->n; i++)
		rc = extract_unit(c->s, q->rd, &q->u[i]);
	if (rc == PQ_OK)
		rc = pq_uuid4(id);
	if (rc == PQ_OK && !(*rec = record_json(c, q, id)))
		rc = pq_err_set(PQ_ERR_NOMEM, "bundle record");
	if (rc == PQ_OK)
		rc = store_all(c, q, *rec, id);
	if (rc != PQ_OK) {
		char why[512]; /* the error the caller answers with, kept across the cleanup */
		snprintf(why, sizeof(why), "%s", pq_err_detail());
		for (size_t i = 0; i < q->n; i++) {
			const char *made[] = {q->u[i].r.file_sha256, q->u[i].r.image_sha256};
			if (rel_files_forget(c->s, c->db, made, 2) != PQ_OK)
				pq_log(PQ_LOG_WARN, "bundles", "cleaning up: %s", pq_err_detail());
		}
		rc = pq_err_set(rc, "%s", why);
	}
	rel_files_unlock(c->s);
	return rc;
}

void bnd_create(srv_ctx *c)
{
	json_t *b = srv_body_json(c), *rec = NULL;
	bnd_req q = {0};
	char want[65], id[PQ_UUID_LEN];
	if (!b || !srv_query_only(c, NULL) || !parse_body(c, b, &q) ||
	    !rel_upload_ready(c, q.upload, want) || !rel_hash_upload(c, q.upload, want, q.sha))
		goto out;
	int rc = rel_upload_received(c, q.upload, &q.size);
	if (rc == PQ_OK)
		rc = take_in(c, &q);
	if (rc == PQ_OK)
		rc = make_all(c, &q, &rec, id);
	if (rc != PQ_OK) {
		fail(c, rc);
		goto out;
	}
	if (rel_upload_remove(c, q.upload) != PQ_OK)
		pq_log(PQ_LOG_WARN, "bundles", "upload: %s", pq_err_detail());
	srv_audit(c, "bundle.create", id,
	          json_pack("{s:s,s:I}", "sha256", q.sha, "units", (json_int_t)q.n));
	char loc[80];
	snprintf(loc, sizeof(loc), "/api/v1/bundles/%s", id);
	evhttp_add_header(evhttp_request_get_output_headers(c->req), "Location", loc);
	srv_json(c, 201, json_incref(rec));
out:
	for (size_t i = 0; i < q.n; i++)
		store_release_clear(&q.u[i].r);
	free(q.u);
	pkg_close(q.rd);
	json_decref(rec);
	json_decref(b);
}

void bnd_get(srv_ctx *c)
{
	json_t *j = NULL;
	if (!srv_query_only(c, NULL))
		return;
	int rc = bnd_load(c->db, c->params[0], &j);
	if (rc != PQ_OK)
		srv_fail(c, rc, "bundle");
	else
		srv_json(c, 200, j);
}

/* One bundle of a page: its record without the manifest (the list stays small: a record
 * may carry a 4096-unit manifest; GET /api/v1/bundles/{id} has it). */
static int list_cb(const store_bundle *b, void *user)
{
	json_t *rec = NULL;
	int rc = srv_json_text(b->record, "bundle record", &rec);
	if (rc == PQ_OK && !rec)
		rc = pq_err_set(PQ_ERR_FORMAT, "bundle %s: no record", b->id);
	if (rc == PQ_OK) {
		json_object_del(rec, "manifest");
		if (json_array_append_new(user, rec) != 0)
			rc = pq_err_set(PQ_ERR_NOMEM, "bundles");
	}
	return rc;
}

void bnd_list(srv_ctx *c)
{
	static const char *const allowed[] = {"limit", "offset", NULL};
	store_page pg;
	int64_t total = 0;
	if (!srv_query_only(c, allowed) || !srv_page(c, &pg))
		return;
	json_t *items = json_array();
	int rc = items ? store_bundle_list(c->db, &pg, list_cb, items, &total)
	               : pq_err_set(PQ_ERR_NOMEM, "bundles");
	if (rc == PQ_OK) {
		srv_json(c, 200, srv_page_json(items, &pg, total));
	} else {
		json_decref(items);
		srv_fail(c, rc, "listing bundles");
	}
}
