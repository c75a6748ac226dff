/* delta_routes.c: a release's deltas (docs/api.md 7.10, 7.11): one per earlier release of
 * the same hardware and software type, queued here for the delta worker (delta_jobs.c),
 * which computes it, or checks the operator's own delta package, in the background. */
#include <errno.h>
#include <limits.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include <event2/http.h>

#include "core/fileio.h"
#include "core/log.h"
#include "core/semver.h"
#include "core/uuid.h"
#include "server/releases_int.h"

json_t *rel_delta_json(const store_release_delta *d)
{
	char url[128];
	bool ready = d->state == STORE_DELTA_READY;
	int64_t pct = d->progress_total > 0 ? d->progress_done * 100 / d->progress_total : 0;
	snprintf(url, sizeof(url), "/packages/%s", d->file_sha256);
	return json_pack(
	    "{s:s,s:s,s:s?,s:s,s:s,s:s,s:{s:I,s:I,s:I},s:s?,s:s?,s:o,s:s?,s:I,s:I}", "release_id",
	    d->release_id, "base_version", d->base_version, "base_release_id",
	    d->base_release_id[0] ? d->base_release_id : NULL, "base_image_sha256", d->base_sha256,
	    "state", store_delta_state_name(d->state), "source", d->source, "progress", "done",
	    (json_int_t)d->progress_done, "total", (json_int_t)d->progress_total, "percent",
	    (json_int_t)(ready ? 100 : pct), "error", d->error[0] ? d->error : NULL, "sha256",
	    ready ? d->file_sha256 : NULL, "length",
	    ready ? json_integer(d->file_size) : json_null(), "url", ready ? url : NULL,
	    "created_ms", (json_int_t)d->created_ms, "updated_ms", (json_int_t)d->updated_ms);
}

void rel_delta_event(srv *s, const store_release_delta *d)
{
	srv_event(s, "release_delta", rel_delta_json(d));
}

/* Reads the release `from` names: its id, or its version among r's hardware, ECU and type. */
static int find_base(srv_ctx *c, const store_release *r, const char *from, store_release *base)
{
	if (rel_valid_id(from))
		return store_release_get(c->db, from, base);
	if (strlen(from) > STORE_VERSION_MAX)
		return pq_err_set(PQ_ERR_NOTFOUND, "no release %.40s", from);
	return store_release_find(c->db, r->hardware_id, r->ecu_id, r->software_type, from, base);
}

bool rel_delta_base(srv_ctx *c, const store_release *r, const char *from, store_release *base)
{
	int cmp = 0;
	int rc = find_base(c, r, from, base);
	if (rc == PQ_ERR_NOTFOUND || rc == PQ_ERR_INVAL) {
		srv_error(
		    c, 400, "bad_request",
		    "no release %.40s (a release id, or a version of %s %s for %s) to make the "
		    "delta from",
		    from, r->ecu_id, r->software_type, r->hardware_id);
		return false;
	}
	if (rc != PQ_OK) {
		srv_fail(c, rc, "the delta's base release");
		return false;
	}
	/* a delta's base is what the same ECU's hardware runs: another hardware id's image
	 * would give a delta no vehicle of this release can apply */
	if (strcmp(base->hardware_id, r->hardware_id) != 0 ||
	    strcmp(base->software_type, r->software_type) != 0) {
		srv_error(c, 400, "bad_request",
		          "release %s is for %s %s, not %s %s: a delta's base must be an earlier "
		          "release for the same hardware and software type",
		          base->id, base->hardware_id, base->software_type, r->hardware_id,
		          r->software_type);
		return false;
	}
	if (semver_cmp_str(base->version, r->version, &cmp) != PQ_OK || cmp >= 0) {
		srv_error(c, 400, "bad_request",
		          "release %s is version %s, not earlier than %s: vehicles update only "
		          "from an older version",
		          base->id, base->version, r->version);
		return false;
	}
	return true;
}

bool rel_delta_room(srv_ctx *c)
{
	int64_t n = 0;
	int rc = store_release_delta_pending(c->db, &n);
	if (rc != PQ_OK) {
		srv_fail(c, rc, "the delta queue");
		return false;
	}
	if (n < REL_DELTA_QUEUE_MAX)
		return true;
	evhttp_add_header(evhttp_request_get_output_headers(c->req), "Retry-After", "30");
	srv_error(c, 503, "busy",
	          "the delta queue is full (%lld deltas queued or being made, at most %d): try "
	          "again later",
	          (long long)n, REL_DELTA_QUEUE_MAX);
	return false;
}

int rel_delta_prepare(srv_ctx *c, const store_release *r, const store_release *base,
                      const char *upload_path, store_release_delta *d)
{
	char id[PQ_UUID_LEN], dir[PATH_MAX], dst[PATH_MAX];
	memset(d, 0, sizeof(*d));
	snprintf(d->release_id, sizeof(d->release_id), "%s", r->id);
	snprintf(d->base_version, sizeof(d->base_version), "%s", base->version);
	snprintf(d->base_release_id, sizeof(d->base_release_id), "%s", base->id);
	snprintf(d->base_sha256, sizeof(d->base_sha256), "%s", base->image_sha256);
	snprintf(d->source, sizeof(d->source), "%s", upload_path ? "uploaded" : "computed");
	d->state = STORE_DELTA_QUEUED;
	d->created_ms = d->updated_ms = c->now_ms;
	if (!upload_path)
		return PQ_OK;
	int rc = pq_uuid4(id);
	if (rc == PQ_OK)
		rc = pq_path_join(dir, sizeof(dir), srv_get_options(c->s)->data_dir, REL_DELTA_DIR);
	if (rc == PQ_OK)
		rc = pq_mkdirs(dir, PQ_PRIVATE_DIR_MODE);
	if (rc == PQ_OK) {
		snprintf(d->input, sizeof(d->input), "%s.swpg", id);
		rc = pq_path_join(dst, sizeof(dst), dir, d->input);
	}
	/* a second name: the upload stays whole until the delta is stored */
	if (rc == PQ_OK && link(upload_path, dst) != 0)
		rc = pq_err_set(PQ_ERR_IO, "keeping the delta upload: %s", strerror(errno));
	if (rc != PQ_OK)
		d->input[0] = '\0';
	return rc;
}

void rel_delta_unprepare(srv *s, const store_release_delta *d)
{
	char p[PATH_MAX];
	if (!d->input[0] || rel_data_path(s, REL_DELTA_DIR, d->input, p) != PQ_OK)
		return;
	if (unlink(p) != 0 && errno != ENOENT)
		pq_log(PQ_LOG_WARN, "releases", "%s: %s", p, strerror(errno));
}

bool rel_delta_upload_ok(srv_ctx *c, const char *upload, const store_release *r,
                         const store_release *base)
{
	char up[PATH_MAX], bimg[PATH_MAX];
	rel_delta_want w = {.base_image = bimg,
	                    .base_sha = base->image_sha256,
	                    .full_size = (uint64_t)r->image_size,
	                    .full_sha = r->image_sha256};
	int rc = rel_upload_path(c, upload, "part", up);
	if (rc == PQ_OK)
		rc = rel_data_path(c->s, "images", base->image_sha256, bimg);
	if (rc == PQ_OK)
		rc = rel_delta_precheck(up, &w);
	if (rc == PQ_ERR_VERIFY)
		srv_error(c, 422, "delta_mismatch", "the delta upload: %s", pq_err_detail());
	else if (rc != PQ_OK)
		srv_fail(c, rc, "checking the delta upload");
	return rc == PQ_OK;
}

/* A delta of r from base may be queued: none yet, or a failed one, which is replaced (a
 * retry); false when an error was sent (409 with the existing delta's state). */
static bool delta_is_new(srv_ctx *c, const store_release *r, const store_release *base)
{
	store_release_delta old;
	int rc = store_release_delta_get(c->db, r->id, base->version, &old);
	if (rc == PQ_ERR_NOTFOUND)
		return true;
	if (rc == PQ_OK && old.state == STORE_DELTA_FAILED)
		rc = store_release_delta_delete(c->db, r->id, base->version);
	else if (rc == PQ_OK) {
		srv_error(c, 409, "conflict", "release %s has a delta from %s already (%s)", r->id,
		          base->version, store_delta_state_name(old.state));
		return false;
	}
	if (rc != PQ_OK) {
		srv_fail(c, rc, "the release's deltas");
		return false;
	}
	rel_delta_unprepare(c->s, &old);
	return true;
}

/* The body of POST /api/v1/releases/{id}/deltas: "from", and optionally "upload_id" (the
 * operator's delta package, complete: want its declared hash); false when an error was sent. */
static bool delta_body(srv_ctx *c, json_t *b, const char **from, const char **upload, char want[65])
{
	*from = json_string_value(json_object_get(b, "from"));
	*upload = json_string_value(json_object_get(b, "upload_id"));
	json_t *u = json_object_get(b, "upload_id");
	if (!*from || (u && !json_is_null(u) && !*upload)) {
		srv_error(c, 400, "bad_request",
		          "from (the base release: its id or version) is required; upload_id, if "
		          "given, is a string");
		return false;
	}
	return !*upload || rel_upload_ready(c, *upload, want);
}

/* Queues the delta of r from base (with upload: the operator's, hashed against want); the
 * 202 sent, or an error. */
static void queue_delta(srv_ctx *c, const store_release *r, const store_release *base,
                        const char *upload, const char *want)
{
	store_release_delta d = {0};
	char sha[65], up[PATH_MAX];
	if (!delta_is_new(c, r, base) || !rel_delta_room(c) ||
	    (upload &&
	     (!rel_hash_upload(c, upload, want, sha) || !rel_delta_upload_ok(c, upload, r, base))))
		return;
	int rc = upload ? rel_upload_path(c, upload, "part", up) : PQ_OK;
	if (rc == PQ_OK)
		rc = rel_delta_prepare(c, r, base, upload ? up : NULL, &d);
	if (rc == PQ_OK)
		rc = store_release_delta_insert(c->db, &d);
	if (rc != PQ_OK) {
		rel_delta_unprepare(c->s, &d);
		if (rc == PQ_ERR_EXISTS)
			srv_error(c, 409, "conflict", "release %s has a delta from %s already",
			          r->id, base->version);
		else
			srv_fail(c, rc, "queueing the delta");
		return;
	}
	if (upload && rel_upload_remove(c, upload) != PQ_OK)
		pq_log(PQ_LOG_WARN, "releases", "upload: %s", pq_err_detail());
	srv_audit(c, "release.delta", r->id,
	          json_pack("{s:s,s:s,s:s}", "base_version", d.base_version, "base_release_id",
	                    d.base_release_id, "source", d.source));
	rel_delta_event(c->s, &d);
	rel_jobs_wake(c->s);
	srv_json(c, 202, rel_delta_json(&d));
}

void rel_delta_create(srv_ctx *c)
{
	json_t *b = srv_body_json(c);
	store_release r = {0}, base = {0};
	const char *from = NULL, *upload = NULL;
	char want[65];
	if (!b || !srv_query_only(c, NULL) || !delta_body(c, b, &from, &upload, want))
		goto out;
	int rc = store_release_get(c->db, c->params[0], &r);
	if (rc != PQ_OK) {
		srv_fail(c, rc, "release");
		goto out;
	}
	if (rel_delta_base(c, &r, from, &base))
		queue_delta(c, &r, &base, upload, want);
out:
	store_release_clear(&r);
	store_release_clear(&base);
	json_decref(b);
}

static int list_cb(const store_release_delta *d, void *user)
{
	if (json_array_append_new(user, rel_delta_json(d)) != 0)
		return pq_err_set(PQ_ERR_NOMEM, "deltas");
	return PQ_OK;
}

void rel_delta_list(srv_ctx *c)
{
	store_release r = {0};
	if (!srv_query_only(c, NULL))
		return;
	int rc = store_release_get(c->db, c->params[0], &r);
	store_release_clear(&r);
	json_t *items = rc == PQ_OK ? json_array() : NULL;
	if (rc == PQ_OK)
		rc = items ? store_release_delta_list(c->db, c->params[0], list_cb, items)
		           : pq_err_set(PQ_ERR_NOMEM, "deltas");
	if (rc != PQ_OK) {
		json_decref(items);
		srv_fail(c, rc, "the release's deltas");
		return;
	}
	srv_json(c, 200, json_pack("{s:o}", "items", items));
}
