/* campaign_create.c: creating a campaign (cmp_create): the spec is checked member by
 * member (core/jsonv.h; a JSON null counts as absent), normalised with every default
 * filled in, and stored as a draft. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/buf.h"
#include "core/jsonv.h"
#include "core/semver.h"
#include "core/uuid.h"
#include "server/campaign.h"
#include "server/campaign_int.h"
#include "server/msg.h"

#define CMP_NOTES_MAX       16384     /* release_notes given in the spec */
#define CMP_NOTES_BUILT_MAX (1 << 20) /* the default release notes: the releases' titles */

/* Every failure is PQ_ERR_INVAL "<path>.<key>: <problem>"; null is absent. */
static const pq_jv JV = {.err = PQ_ERR_INVAL, .what = NULL, .null_absent = true};
/* The same where a null member is refused as the wrong type (a phase's count, percent). */
static const pq_jv JV_NULL = {.err = PQ_ERR_INVAL, .what = NULL, .null_absent = false};

/* "YYYY-MM-DDTHH:MM:SS[.f+]Z" with fields in range. */
static bool iso8601_ok(const char *s)
{
	static const char pat[] = "dddd-dd-ddTdd:dd:dd";
	size_t n = strlen(s);
	if (n < sizeof(pat) || n > 40 || s[n - 1] != 'Z')
		return false;
	for (size_t i = 0; i < sizeof(pat) - 1; i++) {
		if (pat[i] == 'd' ? (s[i] < '0' || s[i] > '9') : s[i] != pat[i])
			return false;
	}
	size_t i = sizeof(pat) - 1;
	if (s[i] == '.') {
		i++;
		if (s[i] == 'Z')
			return false;
		while (s[i] >= '0' && s[i] <= '9')
			i++;
	}
	if (i != n - 1)
		return false;
	int mo = (s[5] - '0') * 10 + (s[6] - '0'), d = (s[8] - '0') * 10 + (s[9] - '0');
	int h = (s[11] - '0') * 10 + (s[12] - '0'), mi = (s[14] - '0') * 10 + (s[15] - '0');
	int se = (s[17] - '0') * 10 + (s[18] - '0');
	return mo >= 1 && mo <= 12 && d >= 1 && d <= 31 && h <= 23 && mi <= 59 && se <= 60;
}

/* out[key] = a copy of obj[key] when it is an array of 1..max_items strings of
 * 1..max_len bytes (nothing when absent). */
static int copy_str_array(const json_t *obj, const char *key, const char *path, size_t max_items,
                          size_t max_len, json_t *out)
{
	json_t *arr = NULL;
	int rc = pq_jv_str_array(&JV, obj, key, path, 0, max_items, max_len, &arr);
	if (rc != PQ_OK || !arr)
		return rc;
	return cmp__set_new(out, key, json_deep_copy(arr));
}

/* ---- target ---------------------------------------------------------------------------- */

static int norm_versions(const json_t *t, json_t *out)
{
	static const char *const vk[] = {"version_min", "version_max"};
	semver sv[2];
	bool have[2] = {false, false};
	for (int i = 0; i < 2; i++) {
		const char *s = NULL;
		int rc = pq_jv_str(&JV, t, vk[i], "target", 0, STORE_VERSION_MAX, &s);
		if (rc != PQ_OK)
			return rc;
		if (!s)
			continue;
		if (semver_parse(s, &sv[i]) != PQ_OK)
			return pq_jv_fail(&JV, "target", vk[i], "not a semantic version");
		have[i] = true;
		rc = cmp__set_new(out, vk[i], json_string(s));
		if (rc != PQ_OK)
			return rc;
	}
	if (have[0] && have[1] && semver_cmp(&sv[0], &sv[1]) > 0)
		return pq_jv_fail(&JV, "target", "version_min", "greater than version_max");
	return PQ_OK;
}

static int norm_target(const json_t *t, json_t *out)
{
	static const char *const keys[] = {"vins",        "model",       "hardware_ids",
	                                   "version_min", "version_max", NULL};
	if (!t || json_is_null(t))
		return PQ_OK;
	if (!json_is_object(t))
		return pq_jv_fail(&JV, "target", NULL, "not an object");
	int rc = pq_jv_keys(&JV, t, "target", keys);
	if (rc != PQ_OK)
		return rc;
	rc = copy_str_array(t, "vins", "target", CMP_TARGET_VINS_MAX, STORE_VIN_MAX, out);
	if (rc != PQ_OK)
		return rc;
	rc = copy_str_array(t, "hardware_ids", "target", CMP_TARGET_HW_MAX, STORE_NAME_MAX, out);
	if (rc != PQ_OK)
		return rc;
	const char *model = NULL;
	rc = pq_jv_str(&JV, t, "model", "target", 0, STORE_NAME_MAX, &model);
	if (rc == PQ_OK && model)
		rc = cmp__set_new(out, "model", json_string(model));
	if (rc != PQ_OK)
		return rc;
	return norm_versions(t, out);
}

/* ---- policy ---------------------------------------------------------------------------- */

/* Each step below reads its members of the policy p (NULL when the spec has none: jansson
 * finds no member in NULL, so every default applies) into out. */

static int norm_consent(const json_t *p, json_t *out)
{
	bool b = false;
	int rc = pq_jv_bool(&JV, p, "consent_required", "policy", 0, &b);
	return rc != PQ_OK ? rc : cmp__set_new(out, "consent_required", json_boolean(b));
}

static int norm_deadline(const json_t *p, json_t *out)
{
	const char *s = NULL;
	int rc = pq_jv_str(&JV, p, "deadline", "policy", 0, 40, &s);
	if (rc != PQ_OK)
		return rc;
	if (s && !iso8601_ok(s))
		return pq_jv_fail(&JV, "policy", "deadline",
		                  "not an ISO-8601 UTC time (YYYY-MM-DDTHH:MM:SSZ)");
	return cmp__set_new(out, "deadline", s ? json_string(s) : json_null());
}

int cmp_prereq_norm(const json_t *pre, const char *path, json_t *npre)
{
	static const char *const keys[] = {"battery_min_pct", "parked", "ignition_off",
	                                   "storage_min_bytes", NULL};
	static const struct {
		const char *key;
		int64_t max;
	} ints[] = {{"battery_min_pct", 100}, {"storage_min_bytes", INT64_MAX / 2}};
	static const char *const bools[] = {"parked", "ignition_off"};
	int rc = pq_jv_keys(&JV, pre, path, keys);
	if (rc != PQ_OK)
		return rc;
	for (size_t i = 0; i < sizeof(ints) / sizeof(ints[0]); i++) {
		int64_t n = 0;
		if (!json_object_get(pre, ints[i].key))
			continue;
		if ((rc = pq_jv_int(&JV, pre, ints[i].key, path, 0, 0, ints[i].max, &n)) != PQ_OK ||
		    (rc = cmp__set_new(npre, ints[i].key, json_integer(n))) != PQ_OK)
			return rc;
	}
	for (size_t i = 0; i < sizeof(bools) / sizeof(bools[0]); i++) {
		bool b = false;
		if (!json_object_get(pre, bools[i]))
			continue;
		if ((rc = pq_jv_bool(&JV, pre, bools[i], path, 0, &b)) != PQ_OK ||
		    (rc = cmp__set_new(npre, bools[i], json_boolean(b))) != PQ_OK)
			return rc;
	}
	return PQ_OK;
}

static int norm_prereq(const json_t *p, json_t *out)
{
	json_t *pre = NULL;
	int rc = pq_jv_obj(&JV, p, "prerequisites", "policy", 0, &pre);
	if (rc != PQ_OK)
		return rc;
	json_t *npre = json_object();
	if (!npre)
		return pq_err_set(PQ_ERR_NOMEM, "policy");
	rc = pre ? cmp_prereq_norm(pre, "policy.prerequisites", npre) : PQ_OK;
	if (rc != PQ_OK) {
		json_decref(npre);
		return rc;
	}
	return cmp__set_new(out, "prerequisites", npre);
}

static int norm_install_order(const json_t *p, json_t *out)
{
	int rc = copy_str_array(p, "install_order", "policy", CMP_INSTALL_ORDER_MAX, STORE_NAME_MAX,
	                        out);
	if (rc != PQ_OK || json_object_get(out, "install_order"))
		return rc;
	return cmp__set_new(out, "install_order", json_array());
}

static int norm_rollback(const json_t *p, json_t *out)
{
	const char *s = "all_or_nothing";
	int rc = pq_jv_str(&JV, p, "rollback_policy", "policy", 0, 32, &s);
	if (rc != PQ_OK)
		return rc;
	if (strcmp(s, "all_or_nothing") != 0 && strcmp(s, "none") != 0)
		return pq_jv_fail(&JV, "policy", "rollback_policy", "not all_or_nothing or none");
	return cmp__set_new(out, "rollback_policy", json_string(s));
}

static int norm_durations(const json_t *p, json_t *out)
{
	static const struct {
		const char *key;
		int64_t def;
	} secs[] = {
	    {"vehicle_timeout_s", 3600}, {"postpone_retry_s", 3600}, {"readiness_retry_s", 300}};
	for (size_t i = 0; i < sizeof(secs) / sizeof(secs[0]); i++) {
		int64_t n = secs[i].def;
		int rc = pq_jv_int(&JV, p, secs[i].key, "policy", 0, 1, 365LL * 86400, &n);
		if (rc == PQ_OK)
			rc = cmp__set_new(out, secs[i].key, json_integer(n));
		if (rc != PQ_OK)
			return rc;
	}
	return PQ_OK;
}

static int norm_policy(const json_t *p, json_t *out)
{
	static const char *const keys[] = {
	    "consent_required", "deadline",          "prerequisites",
	    "install_order",    "rollback_policy",   "vehicle_timeout_s",
	    "postpone_retry_s", "readiness_retry_s", NULL};
	static int (*const steps[])(const json_t *, json_t *) = {norm_consent,  norm_deadline,
	                                                         norm_prereq,   norm_install_order,
	                                                         norm_rollback, norm_durations};
	if (json_is_null(p))
		p = NULL;
	if (p && !json_is_object(p))
		return pq_jv_fail(&JV, "policy", NULL, "not an object");
	int rc = p ? pq_jv_keys(&JV, p, "policy", keys) : PQ_OK;
	for (size_t i = 0; rc == PQ_OK && i < sizeof(steps) / sizeof(steps[0]); i++)
		rc = steps[i](p, out);
	return rc;
}

/* ---- phases ---------------------------------------------------------------------------- */

/* A phase's share: its count or its (cumulative) percent, exactly one of them;
 * *last_pct: the previous phase's percent. */
static int phase_share(const json_t *p, const char *path, double *last_pct, json_t *np)
{
	json_t *cnt = json_object_get(p, "count"), *pct = json_object_get(p, "percent");
	if ((!cnt) == (!pct))
		return pq_jv_fail(&JV, path, NULL, "needs exactly one of count and percent");
	int rc;
	if (cnt) {
		int64_t n = 0;
		rc = pq_jv_int(&JV_NULL, p, "count", path, 0, 0, CMP_TARGETS_MAX, &n);
		return rc != PQ_OK ? rc : cmp__set_new(np, "count", json_integer(n));
	}
	double v = 0;
	rc = pq_jv_num(&JV_NULL, p, "percent", path, 0, 0, 100, &v);
	if (rc != PQ_OK)
		return rc;
	if (v < *last_pct)
		return pq_jv_fail(&JV, path, "percent",
		                  "smaller than an earlier phase's (percent is cumulative)");
	*last_pct = v;
	return cmp__set_new(np, "percent", json_real(v));
}

/* A threshold in 0..1 (def when absent). */
static int phase_ratio(const json_t *p, const char *path, const char *key, double def, json_t *np)
{
	double r = def;
	int rc = pq_jv_num(&JV, p, key, path, 0, 0, 1, &r);
	return rc != PQ_OK ? rc : cmp__set_new(np, key, json_real(r));
}

static int norm_phase(const json_t *p, size_t i, double *last_pct, json_t *out)
{
	static const char *const keys[] = {"count", "percent", "success_threshold",
	                                   "error_threshold", NULL};
	char path[64];
	snprintf(path, sizeof(path), "phases[%zu]", i);
	if (!json_is_object(p))
		return pq_jv_fail(&JV, path, NULL, "not an object");
	int rc = pq_jv_keys(&JV, p, path, keys);
	if (rc != PQ_OK)
		return rc;
	json_t *np = json_object();
	if (!np)
		return pq_err_set(PQ_ERR_NOMEM, "%s", path);
	if ((rc = phase_share(p, path, last_pct, np)) != PQ_OK ||
	    (rc = phase_ratio(p, path, "success_threshold", 1.0, np)) != PQ_OK ||
	    (rc = phase_ratio(p, path, "error_threshold", 0.1, np)) != PQ_OK) {
		json_decref(np);
		return rc;
	}
	return cmp__append_new(out, np, path);
}

static int norm_phases(const json_t *ph, json_t *out)
{
	json_t *def = NULL;
	if (!ph || json_is_null(ph)) {
		ph = def = json_pack("[{s:i}]", "percent", 100);
		if (!def)
			return pq_err_set(PQ_ERR_NOMEM, "phases");
	}
	if (!json_is_array(ph) || json_array_size(ph) < 1 || json_array_size(ph) > CMP_PHASES_MAX) {
		json_decref(def);
		return pq_err_set(PQ_ERR_INVAL, "phases: not an array of 1..%d phases",
		                  CMP_PHASES_MAX);
	}
	int rc = PQ_OK;
	double last_pct = 0;
	for (size_t i = 0; rc == PQ_OK && i < json_array_size(ph); i++)
		rc = norm_phase(json_array_get(ph, i), i, &last_pct, out);
	json_decref(def);
	return rc;
}

/* ---- mode ----------------------------------------------------------------------------- */

/* policy.mode ("once" | "continuous") and policy.ends_at (continuous only; ISO-8601 UTC or
 * null) from the spec's top-level members. A continuous campaign's phases but the last are
 * sizes in admitted vehicles (count): its vehicle set grows, so a percent has no base. */
static int norm_mode(const json_t *spec, const json_t *phases, json_t *policy)
{
	const char *mode = "once", *ends = NULL;
	int rc = pq_jv_str(&JV, spec, "mode", "", 0, 16, &mode);
	if (rc == PQ_OK)
		rc = pq_jv_str(&JV, spec, "ends_at", "", 0, 40, &ends);
	if (rc != PQ_OK)
		return rc;
	bool cont = strcmp(mode, "continuous") == 0;
	if (!cont && strcmp(mode, "once") != 0)
		return pq_jv_fail(&JV, "", "mode", "not once or continuous");
	if (ends && !cont)
		return pq_jv_fail(&JV, "", "ends_at", "only for a continuous campaign");
	int64_t ends_ms = 0;
	if (ends && (!iso8601_ok(ends) || msg_parse_time(ends, &ends_ms) != PQ_OK))
		return pq_jv_fail(&JV, "", "ends_at",
		                  "not an ISO-8601 UTC time (YYYY-MM-DDTHH:MM:SSZ)");
	size_t n = json_array_size(phases);
	for (size_t i = 0; cont && i + 1 < n; i++)
		if (!json_object_get(json_array_get(phases, i), "count"))
			return pq_err_set(PQ_ERR_INVAL,
			                  "phases[%zu]: a continuous campaign's phases (but the "
			                  "last) need a count of admitted vehicles, not a percent",
			                  i);
	if ((rc = cmp__set_new(policy, "mode", json_string(mode))) != PQ_OK)
		return rc;
	return cont ? cmp__set_new(policy, "ends_at", ends ? json_string(ends) : json_null())
	            : PQ_OK;
}

/* ---- releases and release notes ---------------------------------------------------------- */

/* release_ids[i] (v, at path) into c, its title appended to titles; hw[0..i) holds the
 * hardware ids of the earlier releases, hw[i] receives its own. */
static int add_release(store *db, const json_t *v, const char *path, size_t i,
                       char (*hw)[STORE_NAME_MAX + 1], store_campaign *c, json_t *titles)
{
	if (!json_is_string(v) || json_string_length(v) == 0 ||
	    json_string_length(v) > STORE_ID_MAX)
		return pq_jv_fail(&JV, path, NULL, "not a release id");
	store_release rel;
	int rc = store_release_get(db, json_string_value(v), &rel);
	if (rc == PQ_ERR_NOTFOUND || rc == PQ_ERR_INVAL)
		return pq_err_set(PQ_ERR_INVAL, "%s: no release %s", path, json_string_value(v));
	if (rc != PQ_OK)
		return rc;
	for (size_t k = 0; k < i && rc == PQ_OK; k++)
		if (strcmp(hw[k], rel.hardware_id) == 0)
			rc =
			    pq_err_set(PQ_ERR_INVAL,
			               "%s: hardware id %s is already targeted by release_ids[%zu]",
			               path, rel.hardware_id, k);
	if (rc == PQ_OK) {
		snprintf(hw[i], sizeof(hw[i]), "%s", rel.hardware_id);
		snprintf(c->release_ids[i], sizeof(c->release_ids[i]), "%s", rel.id);
		c->nreleases = (int)i + 1;
		rc = cmp__append_new(titles, json_string(rel.title), "release notes");
	}
	store_release_clear(&rel);
	return rc;
}

static int read_releases(store *db, const json_t *spec, store_campaign *c, json_t *titles)
{
	json_t *ids = json_object_get(spec, "release_ids");
	if (!json_is_array(ids) || json_array_size(ids) < 1 ||
	    json_array_size(ids) > STORE_CAMPAIGN_RELEASES_MAX)
		return pq_err_set(PQ_ERR_INVAL, "release_ids: not an array of 1..%d release ids",
		                  STORE_CAMPAIGN_RELEASES_MAX);
	char hw[STORE_CAMPAIGN_RELEASES_MAX][STORE_NAME_MAX + 1];
	for (size_t i = 0; i < json_array_size(ids); i++) {
		char path[48];
		snprintf(path, sizeof(path), "release_ids[%zu]", i);
		int rc = add_release(db, json_array_get(ids, i), path, i, hw, c, titles);
		if (rc != PQ_OK)
			return rc;
	}
	return PQ_OK;
}

/* policy.release_notes: the spec's, else the releases' titles, one a line. */
static int release_notes(const char *notes, const json_t *titles, json_t *policy)
{
	if (notes)
		return cmp__set_new(policy, "release_notes", json_string(notes));
	pq_buf b;
	pq_buf_init(&b, CMP_NOTES_BUILT_MAX);
	for (size_t i = 0; i < json_array_size(titles); i++) {
		if (i)
			pq_buf_char(&b, '\n');
		pq_buf_str(&b, json_string_value(json_array_get(titles, i)));
	}
	char *text = NULL;
	int rc = pq_buf_finish(&b, &text, NULL, "release notes");
	if (rc != PQ_OK)
		return rc;
	rc = cmp__set_new(policy, "release_notes", json_string(text));
	free(text);
	return rc;
}

/* ---- the campaign ---------------------------------------------------------------------- */

/* policy.bundle_id: the spec's bundle_id (the caller put the bundle's releases in
 * release_ids), recorded so the campaign serves the bundle's file. */
static int note_bundle(const json_t *spec, json_t *policy)
{
	const char *id = NULL;
	int rc = pq_jv_str(&JV, spec, "bundle_id", "", 0, STORE_ID_MAX, &id);
	if (rc != PQ_OK || !id)
		return rc;
	return cmp__set_new(policy, "bundle_id", json_string(id));
}

static char *dump(const json_t *j)
{
	return json_dumps(j, JSON_COMPACT | JSON_SORT_KEYS);
}

bool cmp_id_valid(const char *id)
{
	static const char chars[] =
	    "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789_-";
	size_t n = strlen(id);
	return n >= 1 && n <= STORE_ID_MAX && strspn(id, chars) == n && id[0] != '_' &&
	       id[0] != '-';
}

/* The campaign's id: the spec's "id" when given (checked), else a new UUID. */
static int choose_id(const json_t *spec, store_campaign *c)
{
	const char *id = NULL;
	char uuid[PQ_UUID_LEN];
	int rc = pq_jv_str(&JV, spec, "id", "", 0, STORE_ID_MAX, &id);
	if (rc != PQ_OK)
		return rc;
	if (id && !cmp_id_valid(id))
		return pq_jv_fail(&JV, "", "id",
		                  "not a campaign id (1..40 of A-Z a-z 0-9 _ -, starting with a "
		                  "letter or a digit)");
	if (!id && (rc = pq_uuid4(uuid)) == PQ_OK)
		id = uuid;
	if (rc == PQ_OK)
		snprintf(c->id, sizeof(c->id), "%s", id);
	return rc;
}

/* The rest of the draft c: name, creator, times and the normalised JSON. */
static int fill_draft(store_campaign *c, const char *name, const char *actor, int64_t now_ms,
                      const json_t *target, const json_t *policy, const json_t *phases)
{
	snprintf(c->name, sizeof(c->name), "%s", name);
	snprintf(c->created_by, sizeof(c->created_by), "%.*s", STORE_ACTOR_MAX, actor ? actor : "");
	c->state = STORE_CMP_DRAFT;
	c->created_ms = c->updated_ms = now_ms;
	/* norm_policy always sets it */
	c->vehicle_timeout_ms =
	    (int64_t)json_integer_value(json_object_get(policy, "vehicle_timeout_s")) * 1000;
	c->target_filter = dump(target);
	c->policy = dump(policy);
	c->phases = dump(phases);
	if (!c->target_filter || !c->policy || !c->phases)
		return pq_err_set(PQ_ERR_NOMEM, "cmp_create");
	return PQ_OK;
}

/* The members of a campaign spec (cmp_create). */
static const char *const spec_keys[] = {"id",      "name",      "release_ids", "release_notes",
                                        "target",  "policy",    "phases",      "mode",
                                        "ends_at", "bundle_id", NULL};

/* The checks of cmp_create that need no store: target, policy, phases, mode. */
static int check_members(const json_t *spec)
{
	json_t *target = json_object(), *policy = json_object(), *phases = json_array();
	int rc = target && policy && phases ? PQ_OK : pq_err_set(PQ_ERR_NOMEM, "campaign");
	if (rc == PQ_OK && (rc = norm_target(json_object_get(spec, "target"), target)) == PQ_OK &&
	    (rc = norm_policy(json_object_get(spec, "policy"), policy)) == PQ_OK &&
	    (rc = norm_phases(json_object_get(spec, "phases"), phases)) == PQ_OK)
		rc = norm_mode(spec, phases, policy);
	json_decref(target);
	json_decref(policy);
	json_decref(phases);
	return rc;
}

int cmp_rollout_spec(const json_t *rollout, const char *release_id, const char *default_name,
                     json_t **spec_out)
{
	static const char *const keys[] = {"name",   "release_notes", "target", "policy",
	                                   "phases", "ends_at",       NULL};
	*spec_out = NULL;
	if (!json_is_object(rollout))
		return pq_jv_fail(&JV, "rollout", NULL, "not an object");
	int rc = pq_jv_keys(&JV, rollout, "rollout", keys);
	if (rc != PQ_OK)
		return rc;
	json_t *spec = json_deep_copy(rollout);
	if (!spec ||
	    (!json_object_get(spec, "name") &&
	     json_object_set_new(spec, "name", json_string(default_name)) != 0) ||
	    json_object_set_new(spec, "release_ids", json_pack("[s]", release_id)) != 0 ||
	    json_object_set_new(spec, "mode", json_string("continuous")) != 0) {
		json_decref(spec);
		return pq_err_set(PQ_ERR_NOMEM, "rollout");
	}
	const char *name = NULL, *notes = NULL;
	if ((rc = pq_jv_str(&JV, spec, "name", "rollout", PQ_JV_REQUIRED, STORE_CAMPAIGN_NAME_MAX,
	                    &name)) != PQ_OK ||
	    (rc = pq_jv_str(&JV, spec, "release_notes", "rollout", 0, CMP_NOTES_MAX, &notes)) !=
	        PQ_OK ||
	    (rc = check_members(spec)) != PQ_OK) {
		json_decref(spec);
		return rc;
	}
	*spec_out = spec;
	return PQ_OK;
}

int cmp_create(store *db, const json_t *spec, const char *actor, int64_t now_ms, char id_out[41])
{
	const char *const *keys = spec_keys;
	if (!db || !spec || !id_out)
		return pq_err_set(PQ_ERR_INVAL, "cmp_create: bad arguments");
	if (!json_is_object(spec))
		return pq_jv_fail(&JV, "campaign", NULL, "not an object");
	const char *name = NULL, *notes = NULL;
	int rc = pq_jv_keys(&JV, spec, "", keys);
	if (rc == PQ_OK)
		rc = pq_jv_str(&JV, spec, "name", "", PQ_JV_REQUIRED, STORE_CAMPAIGN_NAME_MAX,
		               &name);
	if (rc == PQ_OK)
		rc = pq_jv_str(&JV, spec, "release_notes", "", 0, CMP_NOTES_MAX, &notes);
	if (rc != PQ_OK)
		return rc;

	store_campaign c;
	memset(&c, 0, sizeof(c));
	json_t *target = json_object(), *policy = json_object(), *phases = json_array();
	json_t *titles = json_array();
	if (!target || !policy || !phases || !titles) {
		rc = pq_err_set(PQ_ERR_NOMEM, "cmp_create");
		goto out;
	}
	if ((rc = choose_id(spec, &c)) != PQ_OK ||
	    (rc = read_releases(db, spec, &c, titles)) != PQ_OK ||
	    (rc = norm_target(json_object_get(spec, "target"), target)) != PQ_OK ||
	    (rc = norm_policy(json_object_get(spec, "policy"), policy)) != PQ_OK ||
	    (rc = norm_phases(json_object_get(spec, "phases"), phases)) != PQ_OK ||
	    (rc = norm_mode(spec, phases, policy)) != PQ_OK ||
	    (rc = release_notes(notes, titles, policy)) != PQ_OK ||
	    (rc = note_bundle(spec, policy)) != PQ_OK ||
	    (rc = fill_draft(&c, name, actor, now_ms, target, policy, phases)) != PQ_OK ||
	    (rc = store_campaign_insert(db, &c)) != PQ_OK)
		goto out;
	snprintf(id_out, 41, "%s", c.id);
out:
	store_campaign_clear(&c);
	json_decref(target);
	json_decref(policy);
	json_decref(phases);
	json_decref(titles);
	return rc;
}
