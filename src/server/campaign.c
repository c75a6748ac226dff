/* campaign.c: the campaign engine (server/campaign.h): creation and validation,
 * targeting, the per-vehicle state machine driven by vehicle messages, and the claimed
 * periodic work (notify, retry, timeout, phases, auto-pause, completion). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/log.h"
#include "core/semver.h"
#include "crypto/hash.h"
#include "server/campaign.h"
#include "server/msg.h"

#define CAMPAIGNS_PER_TICK 500
#define VEHICLE_LIST_CHUNK 200

/* ---- small helpers ------------------------------------------------------------------- */

static int lease_of(const cmp_env *env)
{
	return env && env->lease_ms > 0 ? (int)env->lease_ms : CMP_DEFAULT_LEASE_MS;
}

static int batch_of(const cmp_env *env)
{
	if (!env || env->batch <= 0)
		return CMP_DEFAULT_BATCH;
	return env->batch > STORE_PAGE_MAX ? STORE_PAGE_MAX : env->batch;
}

static bool is_failure(store_dep_state st)
{
	return st == STORE_DEP_FAILED || st == STORE_DEP_ROLLED_BACK || st == STORE_DEP_TIMED_OUT;
}

/* Publishes obj as compact JSON on oem/{vin}/{suffix}. */
static int publish_json(const cmp_env *env, const char *vin, const char *suffix, json_t *obj,
                        int qos)
{
	char topic[128];
	if (!env || !env->publish)
		return pq_err_set(PQ_ERR_INVAL, "campaign engine: no publish callback");
	int rc = msg_topic(topic, sizeof(topic), vin, suffix);
	if (rc != PQ_OK)
		return rc;
	char *text = json_dumps(obj, JSON_COMPACT);
	if (!text)
		return pq_err_set(PQ_ERR_NOMEM, "encoding a %s message", suffix);
	rc = env->publish(env->user, topic, text, strlen(text), qos, false);
	free(text);
	return rc;
}

static json_t *new_msg(const char *type, const char *vin, const char *campaign_id)
{
	json_t *m = msg_new(type, vin, NULL);
	if (m && campaign_id && json_object_set_new(m, "campaign_id", json_string(campaign_id))) {
		json_decref(m);
		m = NULL;
	}
	return m;
}

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

/* ---- the stored policy and phases ---------------------------------------------------- */

typedef struct {
	int64_t count; /* -1: by percent */
	double percent;
	double success;
	double error;
} phase_spec;

typedef struct {
	json_t *policy; /* the stored, normalised policy object */
	json_t *target;
	bool has_prereq;
	int64_t postpone_retry_ms;
	int64_t readiness_retry_ms;
	int nphases;
	phase_spec phases[CMP_PHASES_MAX];
} cmp_rules;

static void rules_clear(cmp_rules *r)
{
	json_decref(r->policy);
	json_decref(r->target);
	memset(r, 0, sizeof(*r));
}

static int64_t obj_int(const json_t *o, const char *k, int64_t def)
{
	json_t *v = json_object_get(o, k);
	return json_is_integer(v) ? (int64_t)json_integer_value(v) : def;
}

static double obj_real(const json_t *o, const char *k, double def)
{
	json_t *v = json_object_get(o, k);
	return json_is_number(v) ? json_number_value(v) : def;
}

/* Reads the normalised JSON cmp_create stored. */
static int rules_load(const store_campaign *c, cmp_rules *r)
{
	json_error_t e;
	memset(r, 0, sizeof(*r));
	r->policy = json_loads(c->policy ? c->policy : "{}", 0, &e);
	r->target = json_loads(c->target_filter ? c->target_filter : "{}", 0, &e);
	json_t *ph = json_loads(c->phases ? c->phases : "[]", 0, &e);
	int rc = PQ_OK;
	if (!json_is_object(r->policy) || !json_is_object(r->target) || !json_is_array(ph))
		rc = pq_err_set(PQ_ERR_FORMAT,
		                "campaign %s: stored policy, target or phases "
		                "unreadable",
		                c->id);
	if (rc == PQ_OK) {
		json_t *pre = json_object_get(r->policy, "prerequisites");
		r->has_prereq = json_is_object(pre) && json_object_size(pre) > 0;
		r->postpone_retry_ms = obj_int(r->policy, "postpone_retry_s", 3600) * 1000;
		r->readiness_retry_ms = obj_int(r->policy, "readiness_retry_s", 300) * 1000;
		size_t i;
		json_t *p;
		json_array_foreach(ph, i, p)
		{
			if (i >= CMP_PHASES_MAX)
				break;
			phase_spec *s = &r->phases[r->nphases++];
			s->count = json_object_get(p, "count") ? obj_int(p, "count", 0) : -1;
			s->percent = obj_real(p, "percent", 100.0);
			s->success = obj_real(p, "success_threshold", 1.0);
			s->error = obj_real(p, "error_threshold", 0.1);
		}
		if (r->nphases == 0)
			r->phases[r->nphases++] = (phase_spec){-1, 100.0, 1.0, 0.1};
	}
	json_decref(ph);
	if (rc != PQ_OK)
		rules_clear(r);
	return rc;
}

/* ---- creation and validation ----------------------------------------------------------- */

static int bad(const char *path, const char *why)
{
	return pq_err_set(PQ_ERR_INVAL, "%s: %s", path, why);
}

static int check_keys(const json_t *obj, const char *path, const char *const *allowed)
{
	const char *k;
	json_t *v;
	json_object_foreach((json_t *)obj, k, v)
	{
		(void)v;
		bool ok = false;
		for (size_t i = 0; allowed[i] && !ok; i++)
			ok = strcmp(k, allowed[i]) == 0;
		if (!ok)
			return pq_err_set(PQ_ERR_INVAL, "%s%s%.64s: unknown member", path,
			                  path[0] ? "." : "", k);
	}
	return PQ_OK;
}

static int get_text(const json_t *obj, const char *key, const char *path, size_t max, bool required,
                    const char **out)
{
	json_t *v = json_object_get(obj, key);
	*out = NULL;
	if (!v || json_is_null(v))
		return required ? bad(path, "required") : PQ_OK;
	if (!json_is_string(v))
		return bad(path, "not a string");
	size_t n = json_string_length(v);
	if (n == 0 || n > max)
		return pq_err_set(PQ_ERR_INVAL, "%s: length not 1..%zu", path, max);
	if (strlen(json_string_value(v)) != n)
		return bad(path, "contains NUL");
	*out = json_string_value(v);
	return PQ_OK;
}

static int get_int(const json_t *obj, const char *key, const char *path, int64_t min, int64_t max,
                   int64_t def, int64_t *out)
{
	json_t *v = json_object_get(obj, key);
	*out = def;
	if (!v || json_is_null(v))
		return PQ_OK;
	if (!json_is_integer(v) || json_integer_value(v) < min || json_integer_value(v) > max)
		return pq_err_set(PQ_ERR_INVAL, "%s: not an integer in %lld..%lld", path,
		                  (long long)min, (long long)max);
	*out = (int64_t)json_integer_value(v);
	return PQ_OK;
}

static int get_bool(const json_t *obj, const char *key, const char *path, bool def, bool *out)
{
	json_t *v = json_object_get(obj, key);
	*out = def;
	if (!v || json_is_null(v))
		return PQ_OK;
	if (!json_is_boolean(v))
		return bad(path, "not a boolean");
	*out = json_is_true(v);
	return PQ_OK;
}

static int get_ratio(const json_t *obj, const char *key, const char *path, double def, double *out)
{
	json_t *v = json_object_get(obj, key);
	*out = def;
	if (!v || json_is_null(v))
		return PQ_OK;
	if (!json_is_number(v) || json_number_value(v) < 0 || json_number_value(v) > 1)
		return bad(path, "not a number in 0..1");
	*out = json_number_value(v);
	return PQ_OK;
}

/* An array of 1..max distinct strings of 1..len bytes, copied into *out (new). */
static int get_str_array(const json_t *obj, const char *key, const char *path, size_t max,
                         size_t len, json_t **out)
{
	json_t *v = json_object_get(obj, key);
	*out = NULL;
	if (!v || json_is_null(v))
		return PQ_OK;
	if (!json_is_array(v) || json_array_size(v) == 0 || json_array_size(v) > max)
		return pq_err_set(PQ_ERR_INVAL, "%s: not an array of 1..%zu strings", path, max);
	size_t i;
	json_t *s;
	json_array_foreach(v, i, s)
	{
		if (!json_is_string(s) || json_string_length(s) == 0 ||
		    json_string_length(s) > len ||
		    strlen(json_string_value(s)) != json_string_length(s))
			return pq_err_set(PQ_ERR_INVAL, "%s[%zu]: not a string of 1..%zu bytes",
			                  path, i, len);
	}
	*out = json_deep_copy(v);
	return *out ? PQ_OK : pq_err_set(PQ_ERR_NOMEM, "%s", path);
}

static int set_new(json_t *o, const char *k, json_t *v)
{
	if (!v || json_object_set_new(o, k, v) != 0)
		return pq_err_set(PQ_ERR_NOMEM, "building %s", k);
	return PQ_OK;
}

static int norm_target(const json_t *t, json_t *out)
{
	static const char *const keys[] = {"vins",        "model",       "hardware_ids",
	                                   "version_min", "version_max", NULL};
	if (!t || json_is_null(t))
		return PQ_OK;
	if (!json_is_object(t))
		return bad("target", "not an object");
	int rc = check_keys(t, "target", keys);
	json_t *arr = NULL;
	const char *s = NULL;
	if (rc == PQ_OK)
		rc = get_str_array(t, "vins", "target.vins", CMP_TARGET_VINS_MAX, STORE_VIN_MAX,
		                   &arr);
	if (rc == PQ_OK && arr)
		rc = set_new(out, "vins", arr);
	if (rc == PQ_OK)
		rc = get_str_array(t, "hardware_ids", "target.hardware_ids", CMP_TARGET_HW_MAX,
		                   STORE_NAME_MAX, &arr);
	if (rc == PQ_OK && arr)
		rc = set_new(out, "hardware_ids", arr);
	if (rc == PQ_OK)
		rc = get_text(t, "model", "target.model", STORE_NAME_MAX, false, &s);
	if (rc == PQ_OK && s)
		rc = set_new(out, "model", json_string(s));
	static const char *const vk[] = {"version_min", "version_max"};
	semver sv[2];
	bool have[2] = {false, false};
	for (int i = 0; rc == PQ_OK && i < 2; i++) {
		char path[32];
		snprintf(path, sizeof(path), "target.%s", vk[i]);
		rc = get_text(t, vk[i], path, STORE_VERSION_MAX, false, &s);
		if (rc == PQ_OK && s) {
			if (semver_parse(s, &sv[i]) != PQ_OK)
				rc = bad(path, "not a semantic version");
			else
				have[i] = true;
		}
		if (rc == PQ_OK && s)
			rc = set_new(out, vk[i], json_string(s));
	}
	if (rc == PQ_OK && have[0] && have[1] && semver_cmp(&sv[0], &sv[1]) > 0)
		rc = bad("target.version_min", "greater than version_max");
	return rc;
}

static int norm_policy(const json_t *p, json_t *out)
{
	static const char *const keys[] = {
	    "consent_required", "deadline",          "prerequisites",
	    "install_order",    "rollback_policy",   "vehicle_timeout_s",
	    "postpone_retry_s", "readiness_retry_s", NULL};
	static const char *const pre_keys[] = {"battery_min_pct", "parked", "ignition_off",
	                                       "storage_min_bytes", NULL};
	json_t *empty = NULL;
	if (!p || json_is_null(p))
		p = empty = json_object();
	int rc = json_is_object(p) ? check_keys(p, "policy", keys) : bad("policy", "not an object");
	bool b = false;
	const char *s = NULL;
	int64_t n = 0;
	if (rc == PQ_OK)
		rc = get_bool(p, "consent_required", "policy.consent_required", false, &b);
	if (rc == PQ_OK)
		rc = set_new(out, "consent_required", json_boolean(b));
	if (rc == PQ_OK)
		rc = get_text(p, "deadline", "policy.deadline", 40, false, &s);
	if (rc == PQ_OK && s && !iso8601_ok(s))
		rc = bad("policy.deadline", "not an ISO-8601 UTC time (YYYY-MM-DDTHH:MM:SSZ)");
	if (rc == PQ_OK)
		rc = set_new(out, "deadline", s ? json_string(s) : json_null());
	json_t *pre = json_object_get(p, "prerequisites");
	json_t *npre = json_object();
	if (rc == PQ_OK && !npre)
		rc = pq_err_set(PQ_ERR_NOMEM, "policy");
	if (rc == PQ_OK && pre && !json_is_null(pre)) {
		if (!json_is_object(pre))
			rc = bad("policy.prerequisites", "not an object");
		if (rc == PQ_OK)
			rc = check_keys(pre, "policy.prerequisites", pre_keys);
		if (rc == PQ_OK && json_object_get(pre, "battery_min_pct")) {
			rc = get_int(pre, "battery_min_pct", "policy.prerequisites.battery_min_pct",
			             0, 100, 0, &n);
			if (rc == PQ_OK)
				rc = set_new(npre, "battery_min_pct", json_integer(n));
		}
		if (rc == PQ_OK && json_object_get(pre, "storage_min_bytes")) {
			rc = get_int(pre, "storage_min_bytes",
			             "policy.prerequisites.storage_min_bytes", 0, INT64_MAX / 2, 0,
			             &n);
			if (rc == PQ_OK)
				rc = set_new(npre, "storage_min_bytes", json_integer(n));
		}
		static const char *const bk[] = {"parked", "ignition_off"};
		for (int i = 0; rc == PQ_OK && i < 2; i++) {
			char path[48];
			snprintf(path, sizeof(path), "policy.prerequisites.%s", bk[i]);
			if (!json_object_get(pre, bk[i]))
				continue;
			rc = get_bool(pre, bk[i], path, false, &b);
			if (rc == PQ_OK)
				rc = set_new(npre, bk[i], json_boolean(b));
		}
	}
	if (rc == PQ_OK) {
		rc = set_new(out, "prerequisites", npre);
		npre = NULL;
	}
	json_decref(npre);
	json_t *arr = NULL;
	if (rc == PQ_OK)
		rc = get_str_array(p, "install_order", "policy.install_order",
		                   CMP_INSTALL_ORDER_MAX, STORE_NAME_MAX, &arr);
	if (rc == PQ_OK)
		rc = set_new(out, "install_order", arr ? arr : json_array());
	if (rc == PQ_OK)
		rc = get_text(p, "rollback_policy", "policy.rollback_policy", 32, false, &s);
	if (rc == PQ_OK && s && strcmp(s, "all_or_nothing") != 0 && strcmp(s, "none") != 0)
		rc = bad("policy.rollback_policy", "not all_or_nothing or none");
	if (rc == PQ_OK)
		rc = set_new(out, "rollback_policy", json_string(s ? s : "all_or_nothing"));
	static const struct {
		const char *key;
		int64_t def;
	} secs[] = {
	    {"vehicle_timeout_s", 3600}, {"postpone_retry_s", 3600}, {"readiness_retry_s", 300}};
	for (size_t i = 0; rc == PQ_OK && i < sizeof(secs) / sizeof(secs[0]); i++) {
		char path[48];
		snprintf(path, sizeof(path), "policy.%s", secs[i].key);
		rc = get_int(p, secs[i].key, path, 1, 365LL * 86400, secs[i].def, &n);
		if (rc == PQ_OK)
			rc = set_new(out, secs[i].key, json_integer(n));
	}
	json_decref(empty);
	return rc;
}

static int norm_phases(const json_t *ph, json_t *out)
{
	static const char *const keys[] = {"count", "percent", "success_threshold",
	                                   "error_threshold", NULL};
	json_t *def = NULL;
	if (!ph || json_is_null(ph))
		ph = def = json_pack("[{s:i}]", "percent", 100);
	if (!json_is_array(ph) || json_array_size(ph) < 1 || json_array_size(ph) > CMP_PHASES_MAX) {
		json_decref(def);
		return pq_err_set(PQ_ERR_INVAL, "phases: not an array of 1..%d phases",
		                  CMP_PHASES_MAX);
	}
	int rc = PQ_OK;
	double last_pct = 0;
	size_t i;
	json_t *p;
	json_array_foreach(ph, i, p)
	{
		char path[64];
		snprintf(path, sizeof(path), "phases[%zu]", i);
		json_t *np = json_object();
		if (!np) {
			rc = pq_err_set(PQ_ERR_NOMEM, "%s", path);
			break;
		}
		if (!json_is_object(p))
			rc = bad(path, "not an object");
		if (rc == PQ_OK)
			rc = check_keys(p, path, keys);
		json_t *cnt = json_object_get(p, "count"), *pct = json_object_get(p, "percent");
		if (rc == PQ_OK && (!cnt) == (!pct))
			rc = bad(path, "needs exactly one of count and percent");
		if (rc == PQ_OK && cnt) {
			if (!json_is_integer(cnt) || json_integer_value(cnt) < 0 ||
			    json_integer_value(cnt) > CMP_TARGETS_MAX)
				rc = pq_err_set(PQ_ERR_INVAL, "%s.count: not an integer in 0..%d",
				                path, CMP_TARGETS_MAX);
			else
				rc = set_new(np, "count", json_integer(json_integer_value(cnt)));
		}
		if (rc == PQ_OK && pct) {
			double v = json_is_number(pct) ? json_number_value(pct) : -1;
			if (v < 0 || v > 100)
				rc = pq_err_set(PQ_ERR_INVAL, "%s.percent: not a number in 0..100",
				                path);
			else if (v < last_pct)
				rc = pq_err_set(
				    PQ_ERR_INVAL,
				    "%s.percent: smaller than an earlier phase's (percent "
				    "is cumulative)",
				    path);
			else
				rc = set_new(np, "percent", json_real(v));
			last_pct = v;
		}
		double r = 0;
		char sub[96];
		snprintf(sub, sizeof(sub), "%s.success_threshold", path);
		if (rc == PQ_OK)
			rc = get_ratio(p, "success_threshold", sub, 1.0, &r);
		if (rc == PQ_OK)
			rc = set_new(np, "success_threshold", json_real(r));
		snprintf(sub, sizeof(sub), "%s.error_threshold", path);
		if (rc == PQ_OK)
			rc = get_ratio(p, "error_threshold", sub, 0.1, &r);
		if (rc == PQ_OK)
			rc = set_new(np, "error_threshold", json_real(r));
		if (rc == PQ_OK && json_array_append_new(out, np) != 0)
			rc = pq_err_set(PQ_ERR_NOMEM, "%s", path);
		else if (rc != PQ_OK)
			json_decref(np);
		if (rc != PQ_OK)
			break;
	}
	json_decref(def);
	return rc;
}

static char *dump(json_t *j)
{
	return json_dumps(j, JSON_COMPACT | JSON_SORT_KEYS);
}

int cmp_create(store *db, const json_t *spec, const char *actor, int64_t now_ms, char id_out[41])
{
	static const char *const keys[] = {
	    "name", "release_ids", "release_notes", "target", "policy", "phases", NULL};
	store_campaign c;
	store_release rel;
	json_t *target = json_object(), *policy = json_object(), *phases = json_array();
	memset(&c, 0, sizeof(c));
	memset(&rel, 0, sizeof(rel));
	int rc = PQ_OK;
	if (!db || !spec || !id_out)
		rc = pq_err_set(PQ_ERR_INVAL, "cmp_create: bad arguments");
	else if (!target || !policy || !phases)
		rc = pq_err_set(PQ_ERR_NOMEM, "cmp_create");
	else if (!json_is_object(spec))
		rc = bad("campaign", "not an object");
	if (rc == PQ_OK)
		rc = check_keys(spec, "", keys);
	const char *name = NULL, *notes = NULL;
	if (rc == PQ_OK)
		rc = get_text(spec, "name", "name", STORE_CAMPAIGN_NAME_MAX, true, &name);
	if (rc == PQ_OK)
		rc = get_text(spec, "release_notes", "release_notes", 16384, false, &notes);
	json_t *ids = json_object_get(spec, "release_ids");
	if (rc == PQ_OK && (!json_is_array(ids) || json_array_size(ids) < 1 ||
	                    json_array_size(ids) > STORE_CAMPAIGN_RELEASES_MAX))
		rc = pq_err_set(PQ_ERR_INVAL, "release_ids: not an array of 1..%d release ids",
		                STORE_CAMPAIGN_RELEASES_MAX);
	char hw[STORE_CAMPAIGN_RELEASES_MAX][STORE_NAME_MAX + 1];
	json_t *titles = json_array();
	for (size_t i = 0; rc == PQ_OK && i < json_array_size(ids); i++) {
		char path[48];
		snprintf(path, sizeof(path), "release_ids[%zu]", i);
		json_t *v = json_array_get(ids, i);
		if (!json_is_string(v) || json_string_length(v) == 0 ||
		    json_string_length(v) > STORE_ID_MAX) {
			rc = bad(path, "not a release id");
			break;
		}
		rc = store_release_get(db, json_string_value(v), &rel);
		if (rc == PQ_ERR_NOTFOUND || rc == PQ_ERR_INVAL) {
			rc = pq_err_set(PQ_ERR_INVAL, "%s: no release %s", path,
			                json_string_value(v));
			break;
		}
		if (rc != PQ_OK)
			break;
		for (size_t k = 0; k < i && rc == PQ_OK; k++)
			if (strcmp(hw[k], rel.hardware_id) == 0)
				rc = pq_err_set(
				    PQ_ERR_INVAL,
				    "%s: hardware id %s is already targeted by release_ids[%zu]",
				    path, rel.hardware_id, k);
		snprintf(hw[i], sizeof(hw[i]), "%s", rel.hardware_id);
		snprintf(c.release_ids[i], sizeof(c.release_ids[i]), "%s", rel.id);
		c.nreleases = (int)i + 1;
		if (titles)
			json_array_append_new(titles, json_string(rel.title));
		store_release_clear(&rel);
	}
	if (rc == PQ_OK)
		rc = norm_target(json_object_get(spec, "target"), target);
	if (rc == PQ_OK)
		rc = norm_policy(json_object_get(spec, "policy"), policy);
	if (rc == PQ_OK)
		rc = norm_phases(json_object_get(spec, "phases"), phases);
	if (rc == PQ_OK && !notes && titles) {
		/* default release notes: the releases' titles, one a line */
		size_t n = 0;
		for (size_t i = 0; i < json_array_size(titles); i++)
			n += json_string_length(json_array_get(titles, i)) + 1;
		char *buf = malloc(n + 1);
		if (buf) {
			buf[0] = '\0';
			for (size_t i = 0; i < json_array_size(titles); i++) {
				strcat(buf, i ? "\n" : "");
				strcat(buf, json_string_value(json_array_get(titles, i)));
			}
			rc = set_new(policy, "release_notes", json_string(buf));
			free(buf);
		}
	} else if (rc == PQ_OK && notes) {
		rc = set_new(policy, "release_notes", json_string(notes));
	}
	json_decref(titles);
	char uuid[37];
	if (rc == PQ_OK)
		rc = pq_uuid4(uuid);
	if (rc == PQ_OK) {
		snprintf(c.id, sizeof(c.id), "%s", uuid);
		snprintf(c.name, sizeof(c.name), "%s", name);
		snprintf(c.created_by, sizeof(c.created_by), "%.*s", STORE_ACTOR_MAX,
		         actor ? actor : "");
		c.state = STORE_CMP_DRAFT;
		c.created_ms = c.updated_ms = now_ms;
		c.vehicle_timeout_ms = obj_int(policy, "vehicle_timeout_s", 3600) * 1000;
		c.target_filter = dump(target);
		c.policy = dump(policy);
		c.phases = dump(phases);
		if (!c.target_filter || !c.policy || !c.phases)
			rc = pq_err_set(PQ_ERR_NOMEM, "cmp_create");
	}
	if (rc == PQ_OK)
		rc = store_campaign_insert(db, &c);
	if (rc == PQ_OK)
		snprintf(id_out, 41, "%s", c.id);
	store_campaign_clear(&c);
	json_decref(target);
	json_decref(policy);
	json_decref(phases);
	return rc;
}

/* ---- targeting --------------------------------------------------------------------------- */

typedef struct {
	store_target t;
	char model[STORE_NAME_MAX + 1];
	char installed[STORE_VERSION_MAX + 1];
} candidate;

typedef struct {
	candidate *v;
	size_t n, cap;
	const store_release *rel;
	const json_t *target;
	int rc;
} cand_list;

static bool in_str_array(const json_t *arr, const char *s)
{
	size_t i;
	json_t *v;
	json_array_foreach(arr, i, v) if (json_is_string(v) &&
	                                  strcmp(json_string_value(v), s) == 0) return true;
	return false;
}

static int cand_row(const store_ecu_match *m, void *user)
{
	cand_list *l = user;
	const store_release *r = l->rel;
	const char *inst = strcmp(r->software_type, "BOOT") == 0  ? m->sw_boot
	                   : strcmp(r->software_type, "CAL") == 0 ? m->sw_cal
	                                                          : m->sw_app;
	json_t *vins = json_object_get(l->target, "vins");
	json_t *model = json_object_get(l->target, "model");
	if (vins && !in_str_array(vins, m->vin))
		return PQ_OK;
	if (model && strcmp(json_string_value(model), m->model) != 0)
		return PQ_OK;
	int cmp = 0;
	if (semver_cmp_str(inst, r->version, &cmp) != PQ_OK || cmp >= 0)
		return PQ_OK; /* not installed, not a version, or not older */
	json_t *vmin = json_object_get(l->target, "version_min");
	json_t *vmax = json_object_get(l->target, "version_max");
	if (vmin && (semver_cmp_str(inst, json_string_value(vmin), &cmp) != PQ_OK || cmp < 0))
		return PQ_OK;
	if (vmax && (semver_cmp_str(inst, json_string_value(vmax), &cmp) != PQ_OK || cmp > 0))
		return PQ_OK;
	if (l->n == l->cap) {
		if (l->cap >= CMP_TARGETS_MAX)
			return pq_err_set(PQ_ERR_RANGE, "campaign targets more than %d ECUs",
			                  CMP_TARGETS_MAX);
		size_t nc = l->cap ? l->cap * 2 : 64;
		candidate *nv = realloc(l->v, nc * sizeof(*nv));
		if (!nv)
			return pq_err_set(PQ_ERR_NOMEM, "campaign targets");
		l->v = nv;
		l->cap = nc;
	}
	candidate *c = &l->v[l->n++];
	memset(c, 0, sizeof(*c));
	snprintf(c->t.vin, sizeof(c->t.vin), "%s", m->vin);
	snprintf(c->t.ecu_id, sizeof(c->t.ecu_id), "%s", m->ecu_id);
	snprintf(c->t.release_id, sizeof(c->t.release_id), "%s", r->id);
	snprintf(c->t.hardware_id, sizeof(c->t.hardware_id), "%s", r->hardware_id);
	snprintf(c->t.software_type, sizeof(c->t.software_type), "%s", r->software_type);
	snprintf(c->t.from_version, sizeof(c->t.from_version), "%s", inst);
	snprintf(c->t.to_version, sizeof(c->t.to_version), "%s", r->version);
	snprintf(c->installed, sizeof(c->installed), "%s", inst);
	/* the delta is decided after the query (it reads the vehicle's VCI) */
	bool delta_base = r->delta_base_version[0] && strcmp(inst, r->delta_base_version) == 0;
	snprintf(c->t.package, sizeof(c->t.package), "%s", delta_base ? "delta" : "full");
	snprintf(c->t.file_sha256, sizeof(c->t.file_sha256), "%s",
	         delta_base ? r->delta_file_sha256 : r->file_sha256);
	c->t.file_size = delta_base ? r->delta_file_size : r->file_size;
	return PQ_OK;
}

/* Whether the vehicle's stored VCI says capabilities.delta == false for the ECU. */
static int delta_refused(store *db, const char *vin, const char *ecu_id, bool *refused)
{
	store_vehicle v;
	*refused = false;
	int rc = store_vehicle_get(db, vin, &v);
	if (rc != PQ_OK)
		return rc;
	json_t *vci = v.last_vci ? json_loads(v.last_vci, 0, NULL) : NULL;
	json_t *ecus = json_object_get(vci, "ecus");
	size_t i;
	json_t *e;
	json_array_foreach(ecus, i, e)
	{
		json_t *id = json_object_get(e, "ecu_id");
		if (!json_is_string(id) || strcmp(json_string_value(id), ecu_id) != 0)
			continue;
		json_t *d = json_object_get(json_object_get(e, "capabilities"), "delta");
		*refused = json_is_false(d);
		break;
	}
	json_decref(vci);
	store_vehicle_clear(&v);
	return PQ_OK;
}

static int cand_cmp(const void *a, const void *b)
{
	const candidate *x = a, *y = b;
	int c = strcmp(x->t.vin, y->t.vin);
	return c ? c : strcmp(x->t.ecu_id, y->t.ecu_id);
}

/* Collects the applicable (vehicle, ECU) targets of c, sorted by VIN and ECU (vin: only
 * that vehicle's). */
static int resolve(store *db, const store_campaign *c, const cmp_rules *rules, const char *vin,
                   cand_list *l)
{
	int rc = PQ_OK;
	json_t *hw_filter = json_object_get(rules->target, "hardware_ids");
	l->target = rules->target;
	for (int i = 0; rc == PQ_OK && i < c->nreleases; i++) {
		store_release r;
		rc = store_release_get(db, c->release_ids[i], &r);
		if (rc != PQ_OK)
			break;
		if (!hw_filter || in_str_array(hw_filter, r.hardware_id)) {
			l->rel = &r;
			rc = store_ecu_by_hardware(db, r.hardware_id, vin, cand_row, l);
		}
		/* delta packages need the ECU's delta capability */
		for (size_t k = 0; rc == PQ_OK && k < l->n; k++) {
			candidate *cd = &l->v[k];
			if (strcmp(cd->t.release_id, r.id) != 0 ||
			    strcmp(cd->t.package, "delta") != 0)
				continue;
			bool refused = false;
			rc = delta_refused(db, cd->t.vin, cd->t.ecu_id, &refused);
			if (rc == PQ_OK && refused) {
				snprintf(cd->t.package, sizeof(cd->t.package), "full");
				snprintf(cd->t.file_sha256, sizeof(cd->t.file_sha256), "%s",
				         r.file_sha256);
				cd->t.file_size = r.file_size;
			}
		}
		store_release_clear(&r);
	}
	if (rc == PQ_OK && l->n > 1)
		qsort(l->v, l->n, sizeof(l->v[0]), cand_cmp);
	/* one release per hardware id (cmp_create), so an ECU appears once */
	return rc;
}

/* ceil(x) for 0 <= x, ignoring floating-point noise (no libm). */
static size_t round_up(double x)
{
	size_t n = (size_t)x;
	return (double)n < x - 1e-9 ? n + 1 : n;
}

typedef struct {
	char vin[STORE_VIN_MAX + 1];
	char key[65];        /* hex SHA-256(campaign id || VIN) */
	size_t first, count; /* its targets in the candidate list */
} vehicle_slot;

static int slot_cmp(const void *a, const void *b)
{
	const vehicle_slot *x = a, *y = b;
	int c = strcmp(x->key, y->key);
	return c ? c : strcmp(x->vin, y->vin);
}

static int phase_key(const char *cid, const char *vin, char out[65])
{
	char buf[STORE_ID_MAX + STORE_VIN_MAX + 2];
	uint8_t d[32];
	int n = snprintf(buf, sizeof(buf), "%s%s", cid, vin);
	int rc = pq_hash(PQ_HASH_SHA256, buf, (size_t)n, d);
	if (rc == PQ_OK)
		pq_hex_encode(d, sizeof(d), out);
	return rc;
}

/* Inserts the deployments for the candidates, phases assigned in key order. */
static int insert_deployments(store *db, const store_campaign *c, const cmp_rules *rules,
                              const cand_list *l, int fixed_phase, int64_t now_ms, int64_t *n_out)
{
	size_t nv = 0;
	for (size_t i = 0; i < l->n; i++)
		if (i == 0 || strcmp(l->v[i].t.vin, l->v[i - 1].t.vin) != 0)
			nv++;
	*n_out = (int64_t)nv;
	if (nv == 0)
		return PQ_OK;
	vehicle_slot *slots = calloc(nv, sizeof(*slots));
	store_deployment *deps = calloc(VEHICLE_LIST_CHUNK, sizeof(*deps));
	store_target *tg = calloc(l->n, sizeof(*tg));
	int rc = slots && deps && tg ? PQ_OK : pq_err_set(PQ_ERR_NOMEM, "deployments");
	size_t k = 0;
	for (size_t i = 0; rc == PQ_OK && i < l->n; i++) {
		if (i == 0 || strcmp(l->v[i].t.vin, l->v[i - 1].t.vin) != 0) {
			vehicle_slot *s = &slots[k++];
			snprintf(s->vin, sizeof(s->vin), "%s", l->v[i].t.vin);
			s->first = i;
			rc = phase_key(c->id, s->vin, s->key);
		}
		slots[k - 1].count++;
	}
	if (rc == PQ_OK)
		qsort(slots, nv, sizeof(*slots), slot_cmp);
	/* phase boundaries over the vehicles in key order: bounds[i] is the end (exclusive)
	 * of phase i + 1; the last phase takes every remaining vehicle */
	size_t bounds[CMP_PHASES_MAX], acc = 0;
	for (int i = 0; i < rules->nphases; i++) {
		const phase_spec *ps = &rules->phases[i];
		size_t end;
		if (i == rules->nphases - 1)
			end = nv;
		else if (ps->count >= 0)
			end = acc + (size_t)ps->count;
		else
			end = round_up(ps->percent * (double)nv / 100.0);
		if (end > nv)
			end = nv;
		if (end < acc)
			end = acc;
		bounds[i] = acc = end;
	}
	if (rc == PQ_OK)
		rc = store_begin(db);
	if (rc != PQ_OK)
		goto out;
	for (size_t i = 0; rc == PQ_OK && i < nv;) {
		size_t nd = 0, nt = 0;
		for (; i < nv && nd < VEHICLE_LIST_CHUNK; i++) {
			int phase = fixed_phase;
			for (int p = 0; phase <= 0 && p < rules->nphases; p++)
				if (i < bounds[p])
					phase = p + 1;
			store_deployment *d = &deps[nd++];
			memset(d, 0, sizeof(*d));
			snprintf(d->vin, sizeof(d->vin), "%s", slots[i].vin);
			d->phase = phase;
			for (size_t t = 0; t < slots[i].count; t++)
				tg[nt++] = l->v[slots[i].first + t].t;
		}
		rc = store_deployment_insert(db, c->id, deps, nd, tg, nt, now_ms);
	}
	if (rc != PQ_OK)
		store_rollback(db);
	else
		rc = store_commit(db);
out:
	free(slots);
	free(deps);
	free(tg);
	return rc;
}

int cmp_start(store *db, const cmp_env *env, const char *id, int64_t now_ms, int64_t *n_targeted)
{
	(void)env;
	store_campaign c;
	cmp_rules rules;
	cand_list l = {0};
	int64_t n = 0;
	memset(&rules, 0, sizeof(rules));
	if (n_targeted)
		*n_targeted = 0;
	if (!db || !id)
		return pq_err_set(PQ_ERR_INVAL, "cmp_start: bad arguments");
	int rc = store_campaign_get(db, id, &c);
	if (rc != PQ_OK)
		return rc;
	if (c.state != STORE_CMP_DRAFT)
		rc = pq_err_set(PQ_ERR_INVAL, "campaign %s is %s, not draft", id,
		                store_cmp_state_name(c.state));
	if (rc == PQ_OK)
		rc = rules_load(&c, &rules);
	if (rc == PQ_OK)
		rc = resolve(db, &c, &rules, NULL, &l);
	/* one transaction: the deployments and the state change, or nothing */
	if (rc == PQ_OK)
		rc = store_begin(db);
	if (rc == PQ_OK) {
		rc = insert_deployments(db, &c, &rules, &l, 0, now_ms, &n);
		bool changed = false;
		if (rc == PQ_OK)
			rc = store_campaign_set_state(db, id, STORE_CMP_DRAFT, STORE_CMP_RUNNING,
			                              NULL, 0, now_ms, &changed);
		if (rc == PQ_OK && !changed)
			rc = pq_err_set(PQ_ERR_INVAL, "campaign %s was started concurrently", id);
		if (rc == PQ_OK)
			rc = store_commit(db);
		else
			store_rollback(db);
	}
	if (rc == PQ_OK && n_targeted)
		*n_targeted = n;
	free(l.v);
	rules_clear(&rules);
	store_campaign_clear(&c);
	return rc;
}

/* ---- notifying ------------------------------------------------------------------------------ */

/* One campaign and its rules, loaded once per run of claimed work. */
typedef struct {
	store_campaign c;
	cmp_rules rules;
	bool loaded;
} cmp_cache;

static void cache_clear(cmp_cache *k)
{
	if (k->loaded) {
		store_campaign_clear(&k->c);
		rules_clear(&k->rules);
	}
	k->loaded = false;
}

static int cache_get(store *db, cmp_cache *k, const char *id)
{
	if (k->loaded && strcmp(k->c.id, id) == 0)
		return PQ_OK;
	cache_clear(k);
	int rc = store_campaign_get(db, id, &k->c);
	if (rc != PQ_OK)
		return rc;
	rc = rules_load(&k->c, &k->rules);
	if (rc != PQ_OK) {
		store_campaign_clear(&k->c);
		return rc;
	}
	k->loaded = true;
	return PQ_OK;
}

typedef struct {
	json_t *arr;
	int64_t size;
	int rc;
} targets_json_ctx;

static int target_json_row(const store_target *t, void *user)
{
	targets_json_ctx *c = user;
	json_t *o = json_pack("{s:s,s:s,s:s,s:s,s:s,s:s,s:s,s:s,s:I}", "ecu_id", t->ecu_id,
	                      "hardware_id", t->hardware_id, "software_type", t->software_type,
	                      "from_version", t->from_version, "to_version", t->to_version,
	                      "release_id", t->release_id, "package", t->package, "sha256",
	                      t->file_sha256, "size", (json_int_t)t->file_size);
	if (!o || json_array_append_new(c->arr, o) != 0)
		return pq_err_set(PQ_ERR_NOMEM, "targets");
	c->size += t->file_size;
	return PQ_OK;
}

static int targets_json(store *db, const char *cid, const char *vin, json_t **arr, int64_t *size)
{
	targets_json_ctx c = {.arr = json_array()};
	*arr = NULL;
	if (!c.arr)
		return pq_err_set(PQ_ERR_NOMEM, "targets");
	int rc = store_target_list(db, cid, vin, target_json_row, &c);
	if (rc != PQ_OK) {
		json_decref(c.arr);
		return rc;
	}
	*arr = c.arr;
	if (size)
		*size = c.size;
	return PQ_OK;
}

/* Publishes ota_campaign to the vehicle. */
static int send_campaign(store *db, const cmp_env *env, const cmp_cache *k, const char *vin)
{
	json_t *targets = NULL;
	int64_t size = 0;
	int rc = targets_json(db, k->c.id, vin, &targets, &size);
	if (rc != PQ_OK)
		return rc;
	json_t *m = new_msg("ota_campaign", vin, k->c.id);
	const json_t *p = k->rules.policy;
	json_t *deadline = json_object_get(p, "deadline");
	json_t *notes = json_object_get(p, "release_notes");
	json_t *pre = json_object_get(p, "prerequisites");
	if (!m || json_object_set_new(m, "name", json_string(k->c.name)) ||
	    json_object_set_new(m, "release_notes", notes ? json_copy(notes) : json_string("")) ||
	    json_object_set_new(m, "targets", targets) ||
	    json_object_set_new(m, "download_size", json_integer(size)) ||
	    json_object_set_new(
	        m, "consent_required",
	        json_boolean(json_is_true(json_object_get(p, "consent_required")))) ||
	    json_object_set_new(m, "deadline", deadline ? json_copy(deadline) : json_null()) ||
	    json_object_set_new(m, "prerequisites", pre ? json_copy(pre) : json_object()))
		rc = pq_err_set(PQ_ERR_NOMEM, "ota_campaign");
	if (!m)
		json_decref(targets);
	if (rc == PQ_OK)
		rc = publish_json(env, vin, "ota/campaign", m, 2);
	json_decref(m);
	return rc;
}

static int send_readiness(const cmp_env *env, const cmp_cache *k, const char *vin)
{
	json_t *m = new_msg("request_ota_readiness", vin, k->c.id);
	json_t *pre = json_object_get(k->rules.policy, "prerequisites");
	int rc = PQ_OK;
	if (!m || json_object_set_new(m, "prerequisites", pre ? json_copy(pre) : json_object()))
		rc = pq_err_set(PQ_ERR_NOMEM, "request_ota_readiness");
	if (rc == PQ_OK)
		rc = publish_json(env, vin, "command", m, 1);
	json_decref(m);
	return rc;
}

static int send_metadata(store *db, const cmp_env *env, const cmp_cache *k, const char *vin)
{
	json_t *body = NULL;
	if (!env || !env->metadata)
		return pq_err_set(PQ_ERR_INVAL, "campaign engine: no metadata callback");
	int rc = env->metadata(env->user, db, k->c.id, vin, &body);
	if (rc != PQ_OK)
		return pq_err_wrap(rc, "metadata for %s", vin);
	json_t *m = new_msg("ota_campaign_metadata", vin, k->c.id);
	json_t *order = json_object_get(k->rules.policy, "install_order");
	json_t *rb = json_object_get(k->rules.policy, "rollback_policy");
	if (!m || !json_is_object(body) || json_object_update_missing(m, body) ||
	    (order && !json_object_get(m, "install_order") &&
	     json_object_set(m, "install_order", order)) ||
	    (rb && !json_object_get(m, "rollback_policy") &&
	     json_object_set(m, "rollback_policy", rb)))
		rc = pq_err_set(PQ_ERR_NOMEM, "ota_campaign_metadata");
	if (rc == PQ_OK)
		rc = publish_json(env, vin, "ota/metadata", m, 2);
	json_decref(m);
	json_decref(body);
	return rc;
}

/* The next step for an accepted vehicle: ask for readiness when the campaign has
 * prerequisites, else send the metadata. Sets next_ms accordingly (0: nothing owed). */
static int accepted_step(store *db, const cmp_env *env, const cmp_cache *k, const char *vin,
                         int64_t now_ms, cmp_tick_stats *st, store_dep_update *u)
{
	int rc;
	u->set_next = true;
	if (k->rules.has_prereq) {
		rc = send_readiness(env, k, vin);
		u->next_ms =
		    now_ms + (rc == PQ_OK ? k->rules.readiness_retry_ms : CMP_PUBLISH_RETRY_MS);
		if (st && rc == PQ_OK)
			st->readiness_asked++;
	} else {
		rc = send_metadata(db, env, k, vin);
		u->next_ms = rc == PQ_OK ? 0 : now_ms + CMP_PUBLISH_RETRY_MS;
		if (st && rc == PQ_OK)
			st->metadata_sent++;
	}
	if (rc != PQ_OK && st)
		st->publish_failed++;
	return rc;
}

typedef struct {
	store *db;
	const cmp_env *env;
	int64_t now;
	cmp_tick_stats *st;
	cmp_cache cache;
} work_ctx;

static int do_notify(const store_deployment *d, void *user)
{
	work_ctx *w = user;
	int rc = cache_get(w->db, &w->cache, d->campaign_id);
	if (rc != PQ_OK)
		return rc;
	bool re = d->state == STORE_DEP_POSTPONED;
	rc = send_campaign(w->db, w->env, &w->cache, d->vin);
	if (rc != PQ_OK) {
		/* keep the claim: retried when its lease ends */
		if (w->st)
			w->st->publish_failed++;
		return PQ_OK;
	}
	store_dep_update u = {.notified = true,
	                      .set_last_msg = true,
	                      .last_msg_ms = w->now,
	                      .set_next = true,
	                      .next_ms = 0,
	                      .release_claim = true};
	bool changed = false;
	rc = store_deployment_transition(
	    w->db, d->campaign_id, d->vin, d->state, STORE_DEP_NOTIFIED,
	    re ? "engine: re-notified after postponement" : "engine: notified", w->now, &u,
	    &changed);
	if (rc == PQ_OK && changed && w->st) {
		if (re)
			w->st->renotified++;
		else
			w->st->notified++;
	}
	return rc;
}

static int do_retry(const store_deployment *d, void *user)
{
	work_ctx *w = user;
	if (d->state == STORE_DEP_POSTPONED)
		return do_notify(d, user);
	int rc = cache_get(w->db, &w->cache, d->campaign_id);
	if (rc != PQ_OK)
		return rc;
	store_dep_update u = {.release_claim = true};
	(void)accepted_step(w->db, w->env, &w->cache, d->vin, w->now, w->st, &u);
	return store_deployment_update(w->db, d->campaign_id, d->vin, STORE_DEP_ACCEPTED, w->now,
	                               &u, NULL);
}

static int do_timeout(const store_deployment *d, void *user)
{
	work_ctx *w = user;
	int rc = cache_get(w->db, &w->cache, d->campaign_id);
	if (rc != PQ_OK)
		return rc;
	store_dep_update u = {.error_code = "timeout",
	                      .release_claim = true,
	                      .idle_before = w->now - w->cache.c.vehicle_timeout_ms};
	char cause[96];
	snprintf(cause, sizeof(cause), "engine: no vehicle message for %lld s",
	         (long long)(w->cache.c.vehicle_timeout_ms / 1000));
	bool changed = false;
	rc = store_deployment_transition(w->db, d->campaign_id, d->vin, d->state,
	                                 STORE_DEP_TIMED_OUT, cause, w->now, &u, &changed);
	if (rc == PQ_OK && !changed)
		rc = store_deployment_release(w->db, d->campaign_id, d->vin, w->env->instance_id);
	if (rc == PQ_OK && changed && w->st)
		w->st->timed_out++;
	return rc;
}

/* ---- campaign upkeep --------------------------------------------------------------------- */

typedef struct {
	int64_t n[CMP_PHASES_MAX + 1][STORE_DEP_STATE_COUNT]; /* [phase][state], phase 1.. */
	int64_t total[STORE_DEP_STATE_COUNT];
	int64_t all;
} cmp_counts;

static int counts_row(int phase, store_dep_state st, int64_t n, void *user)
{
	cmp_counts *c = user;
	int p = phase < 0 ? 0 : phase > CMP_PHASES_MAX ? CMP_PHASES_MAX : phase;
	c->n[p][st] += n;
	c->total[st] += n;
	c->all += n;
	return PQ_OK;
}

static int load_counts(store *db, const char *id, cmp_counts *c)
{
	memset(c, 0, sizeof(*c));
	return store_deployment_counts(db, id, counts_row, c);
}

static int64_t phase_size(const cmp_counts *c, int p)
{
	int64_t n = 0;
	for (int s = 0; s < STORE_DEP_STATE_COUNT; s++)
		n += c->n[p][s];
	return n;
}

static int64_t phase_failures(const cmp_counts *c, int p)
{
	int64_t n = 0;
	for (int s = 0; s < STORE_DEP_STATE_COUNT; s++)
		if (is_failure((store_dep_state)s))
			n += c->n[p][s];
	return n;
}

static bool phase_ended(const cmp_counts *c, int p)
{
	for (int s = 0; s < STORE_DEP_STATE_COUNT; s++)
		if (!store_dep_state_terminal((store_dep_state)s) && c->n[p][s] > 0)
			return false;
	return true;
}

static int upkeep_one(store *db, const store_campaign *c, int64_t now_ms, cmp_tick_stats *st)
{
	cmp_rules rules;
	cmp_counts cnt;
	int rc = rules_load(c, &rules);
	if (rc != PQ_OK)
		return rc;
	rc = load_counts(db, c->id, &cnt);
	bool changed = false;
	int p = c->current_phase < 1 ? 1 : c->current_phase;
	if (p > rules.nphases)
		p = rules.nphases;
	const phase_spec *ps = &rules.phases[p - 1];
	int64_t size = phase_size(&cnt, p), fails = phase_failures(&cnt, p);
	bool all_ended = true;
	for (int s = 0; s < STORE_DEP_STATE_COUNT; s++)
		if (!store_dep_state_terminal((store_dep_state)s) && cnt.total[s] > 0)
			all_ended = false;
	char reason[STORE_REASON_MAX + 1];
	if (rc != PQ_OK) {
		/* nothing */
	} else if (all_ended) {
		rc = store_campaign_set_state(db, c->id, STORE_CMP_RUNNING, STORE_CMP_COMPLETED,
		                              NULL, 0, now_ms, &changed);
		if (rc == PQ_OK && changed && st)
			st->completed++;
	} else if (size > 0 && (double)(fails - c->resume_failures) > ps->error * (double)size) {
		snprintf(reason, sizeof(reason),
		         "auto_paused: phase %d: %lld of %lld deployments failed, more than the "
		         "error_threshold %.2f",
		         p, (long long)fails, (long long)size, ps->error);
		rc = store_campaign_set_state(db, c->id, STORE_CMP_RUNNING, STORE_CMP_PAUSED,
		                              reason, 0, now_ms, &changed);
		if (rc == PQ_OK && changed && st)
			st->auto_paused++;
	} else if (p < rules.nphases) {
		int64_t ok = cnt.n[p][STORE_DEP_COMPLETED];
		if ((double)ok >= ps->success * (double)size - 1e-9) {
			rc = store_campaign_set_phase(db, c->id, c->current_phase, p + 1, now_ms,
			                              &changed);
			if (rc == PQ_OK && changed && st)
				st->phases_advanced++;
		} else if (phase_ended(&cnt, p)) {
			snprintf(
			    reason, sizeof(reason),
			    "auto_paused: phase %d ended with %lld of %lld completed, below the "
			    "success_threshold %.2f",
			    p, (long long)ok, (long long)size, ps->success);
			rc =
			    store_campaign_set_state(db, c->id, STORE_CMP_RUNNING, STORE_CMP_PAUSED,
			                             reason, 0, now_ms, &changed);
			if (rc == PQ_OK && changed && st)
				st->auto_paused++;
		}
	}
	rules_clear(&rules);
	return rc;
}

typedef struct {
	store *db;
	int64_t now;
	cmp_tick_stats *st;
	int rc;
} upkeep_ctx;

static int upkeep_row(const store_campaign *c, void *user)
{
	upkeep_ctx *u = user;
	int rc = upkeep_one(u->db, c, u->now, u->st);
	if (rc != PQ_OK && u->rc == PQ_OK)
		u->rc = rc; /* the first failure is reported; the other campaigns go on */
	return PQ_OK;
}

int cmp_tick(store *db, const cmp_env *env, int64_t now_ms, cmp_tick_stats *st)
{
	if (!db || !env || !env->instance_id)
		return pq_err_set(PQ_ERR_INVAL, "cmp_tick: bad arguments");
	work_ctx w = {.db = db, .env = env, .now = now_ms, .st = st};
	int lease = lease_of(env), batch = batch_of(env);
	int rc = store_deployment_claim(db, env->instance_id, STORE_CLAIM_NOTIFY, now_ms, lease,
	                                batch, do_notify, &w, NULL);
	if (rc == PQ_OK)
		rc = store_deployment_claim(db, env->instance_id, STORE_CLAIM_RETRY, now_ms, lease,
		                            batch, do_retry, &w, NULL);
	if (rc == PQ_OK)
		rc = store_deployment_claim(db, env->instance_id, STORE_CLAIM_TIMEOUT, now_ms,
		                            lease, batch, do_timeout, &w, NULL);
	cache_clear(&w.cache);
	if (rc != PQ_OK)
		return rc;
	upkeep_ctx u = {.db = db, .now = now_ms, .st = st};
	store_page pg = {.limit = CAMPAIGNS_PER_TICK};
	rc = store_campaign_list(db, STORE_CMP_RUNNING, &pg, upkeep_row, &u, NULL);
	return rc != PQ_OK ? rc : u.rc;
}

/* A (re)connected vehicle may have missed what was published while the server took it
 * for online (MQTT clean sessions keep nothing for it): the offer of a deployment still
 * `notified`, the metadata of one `accepted` whose metadata went out. Both are sent again;
 * the state stays (a vehicle answers a repeated offer as before and ignores metadata for
 * a campaign it already works on). */
static int do_resend(const store_deployment *d, void *user)
{
	work_ctx *w = user;
	int rc = cache_get(w->db, &w->cache, d->campaign_id);
	if (rc != PQ_OK)
		return rc;
	bool offer = d->state == STORE_DEP_NOTIFIED;
	rc = offer ? send_campaign(w->db, w->env, &w->cache, d->vin)
	           : send_metadata(w->db, w->env, &w->cache, d->vin);
	if (rc == PQ_OK)
		pq_log(PQ_LOG_INFO, "engine", "%s: %s of campaign %s sent again after its wake-up",
		       d->vin, offer ? "ota_campaign" : "ota_campaign_metadata", d->campaign_id);
	else
		pq_log(PQ_LOG_WARN, "engine", "%s: sending campaign %s again: %s", d->vin,
		       d->campaign_id, pq_err_detail());
	return store_deployment_release(w->db, d->campaign_id, d->vin, w->env->instance_id);
}

int cmp_on_wakeup(store *db, const cmp_env *env, const char *vin, int64_t now_ms)
{
	if (!db || !env || !env->instance_id || !vin)
		return pq_err_set(PQ_ERR_INVAL, "cmp_on_wakeup: bad arguments");
	work_ctx w = {.db = db, .env = env, .now = now_ms};
	/* first what it may have missed, then the new notifications (else a deployment
	 * notified now would be offered twice) */
	int rc = store_deployment_claim_vin(db, env->instance_id, STORE_CLAIM_RESEND, vin, now_ms,
	                                    lease_of(env), batch_of(env), do_resend, &w, NULL);
	if (rc == PQ_OK)
		rc = store_deployment_claim_vin(db, env->instance_id, STORE_CLAIM_NOTIFY, vin,
		                                now_ms, lease_of(env), batch_of(env), do_notify, &w,
		                                NULL);
	cache_clear(&w.cache);
	return rc;
}

/* ---- operator actions ------------------------------------------------------------------- */

int cmp_deploy_one(store *db, const cmp_env *env, const char *id, const char *vin, int64_t now_ms)
{
	store_campaign c;
	cmp_rules rules;
	cand_list l = {0};
	int64_t n = 0;
	memset(&rules, 0, sizeof(rules));
	if (!db || !id || !vin)
		return pq_err_set(PQ_ERR_INVAL, "cmp_deploy_one: bad arguments");
	int rc = store_campaign_get(db, id, &c);
	if (rc != PQ_OK)
		return rc;
	store_vehicle v;
	if (store_vehicle_get(db, vin, &v) != PQ_OK) {
		store_campaign_clear(&c);
		return pq_err_set(PQ_ERR_NOTFOUND, "vehicle %s is not registered", vin);
	}
	store_vehicle_clear(&v);
	if (c.state == STORE_CMP_COMPLETED || c.state == STORE_CMP_CANCELLED)
		rc = pq_err_set(PQ_ERR_INVAL, "campaign %s is %s", id,
		                store_cmp_state_name(c.state));
	if (rc == PQ_OK)
		rc = rules_load(&c, &rules);
	if (rc == PQ_OK)
		rc = resolve(db, &c, &rules, vin, &l);
	if (rc == PQ_OK && l.n == 0)
		rc = pq_err_set(PQ_ERR_NOTFOUND,
		                "no ECU of vehicle %s needs campaign %s's releases", vin, id);
	if (rc == PQ_OK)
		rc = store_begin(db);
	if (rc == PQ_OK) {
		int phase = c.current_phase < 1 ? 1 : c.current_phase;
		rc = insert_deployments(db, &c, &rules, &l, phase, now_ms, &n);
		if (rc == PQ_OK && c.state == STORE_CMP_DRAFT)
			rc = store_campaign_set_state(db, id, STORE_CMP_DRAFT, STORE_CMP_RUNNING,
			                              NULL, 0, now_ms, NULL);
		if (rc == PQ_OK)
			rc = store_commit(db);
		else
			store_rollback(db);
	}
	free(l.v);
	rules_clear(&rules);
	store_campaign_clear(&c);
	if (rc == PQ_OK && env && env->instance_id && env->publish)
		rc = cmp_on_wakeup(db, env, vin, now_ms);
	return rc;
}

int cmp_pause(store *db, const char *id, const char *reason, int64_t now_ms)
{
	bool changed = false;
	if (!db || !id)
		return pq_err_set(PQ_ERR_INVAL, "cmp_pause: bad arguments");
	int rc =
	    store_campaign_set_state(db, id, STORE_CMP_RUNNING, STORE_CMP_PAUSED,
	                             reason && *reason ? reason : "operator", 0, now_ms, &changed);
	if (rc == PQ_OK && !changed)
		rc = pq_err_set(PQ_ERR_INVAL, "campaign %s is not running", id);
	return rc;
}

int cmp_resume(store *db, const char *id, int64_t now_ms)
{
	store_campaign c;
	cmp_counts cnt;
	bool changed = false;
	if (!db || !id)
		return pq_err_set(PQ_ERR_INVAL, "cmp_resume: bad arguments");
	int rc = store_campaign_get(db, id, &c);
	if (rc != PQ_OK)
		return rc;
	cmp_rules rules;
	if (c.state != STORE_CMP_PAUSED)
		rc = pq_err_set(PQ_ERR_INVAL, "campaign %s is %s, not paused", id,
		                store_cmp_state_name(c.state));
	if (rc == PQ_OK)
		rc = rules_load(&c, &rules);
	if (rc != PQ_OK) {
		store_campaign_clear(&c);
		return rc;
	}
	rc = load_counts(db, id, &cnt);
	int p = c.current_phase < 1 ? 1 : c.current_phase;
	if (rc == PQ_OK)
		rc = store_begin(db);
	if (rc == PQ_OK) {
		rc = store_campaign_set_state(db, id, STORE_CMP_PAUSED, STORE_CMP_RUNNING, NULL,
		                              p <= CMP_PHASES_MAX ? phase_failures(&cnt, p) : 0,
		                              now_ms, &changed);
		if (rc == PQ_OK && !changed)
			rc = pq_err_set(PQ_ERR_INVAL, "campaign %s changed state concurrently", id);
		/* the operator accepts a phase that ended below its success threshold */
		if (rc == PQ_OK && p < rules.nphases && phase_ended(&cnt, p))
			rc = store_campaign_set_phase(db, id, c.current_phase, p + 1, now_ms, NULL);
		if (rc == PQ_OK)
			rc = store_commit(db);
		else
			store_rollback(db);
	}
	rules_clear(&rules);
	store_campaign_clear(&c);
	return rc;
}

typedef struct {
	store_deployment *v;
	size_t n, cap;
} dep_vec;

static int dep_vec_add(const store_deployment *d, void *user)
{
	dep_vec *v = user;
	if (v->n == v->cap) {
		size_t nc = v->cap ? v->cap * 2 : 32;
		store_deployment *nv = realloc(v->v, nc * sizeof(*nv));
		if (!nv)
			return pq_err_set(PQ_ERR_NOMEM, "deployments");
		v->v = nv;
		v->cap = nc;
	}
	v->v[v->n++] = *d;
	return PQ_OK;
}

int cmp_cancel(store *db, const cmp_env *env, const char *id, int64_t now_ms)
{
	store_campaign c;
	if (!db || !id)
		return pq_err_set(PQ_ERR_INVAL, "cmp_cancel: bad arguments");
	int rc = store_campaign_get(db, id, &c);
	if (rc != PQ_OK)
		return rc;
	bool changed = false;
	if (c.state == STORE_CMP_COMPLETED || c.state == STORE_CMP_CANCELLED)
		rc = pq_err_set(PQ_ERR_INVAL, "campaign %s is %s", id,
		                store_cmp_state_name(c.state));
	if (rc == PQ_OK)
		rc = store_campaign_set_state(db, id, (int)c.state, STORE_CMP_CANCELLED,
		                              "cancelled", 0, now_ms, &changed);
	if (rc == PQ_OK && !changed)
		rc = pq_err_set(PQ_ERR_INVAL, "campaign %s changed state concurrently", id);
	store_campaign_clear(&c);
	/* every open deployment; a page at a time from the start, as cancelled ones leave the
	 * filter; stops when a page makes no progress (all moved by others) */
	store_deployment_filter f = {.state = -1, .phase = -1, .open = true};
	store_page pg = {.limit = STORE_PAGE_MAX};
	for (int round = 0; rc == PQ_OK && round < 100000; round++) {
		dep_vec v = {0};
		rc = store_deployment_list(db, id, &f, &pg, dep_vec_add, &v, NULL);
		size_t moved = 0;
		for (size_t i = 0; rc == PQ_OK && i < v.n; i++) {
			const store_deployment *d = &v.v[i];
			store_dep_update u = {
			    .release_claim = true, .set_next = true, .next_ms = 0};
			rc = store_deployment_transition(
			    db, id, d->vin, d->state, STORE_DEP_CANCELLED,
			    "operator: campaign cancelled", now_ms, &u, &changed);
			if (rc != PQ_OK || !changed)
				continue;
			moved++;
			if (d->state == STORE_DEP_PENDING || !env || !env->publish)
				continue;
			json_t *m = new_msg("cancel", d->vin, id);
			if (m && json_object_set_new(m, "reason",
			                             json_string("campaign cancelled")) == 0)
				(void)publish_json(env, d->vin, "command", m, 1);
			json_decref(m);
		}
		size_t got = v.n;
		free(v.v);
		if (got == 0 || moved == 0)
			break;
	}
	return rc;
}

/* ---- vehicle messages ------------------------------------------------------------------ */

typedef struct {
	const char *type;
	store_dep_state to;
} status_map;

static const status_map statuses[] = {
    {"ota_download_progress", STORE_DEP_DOWNLOADING},
    {"ota_download_complete", STORE_DEP_DOWNLOADED},
    {"ota_download_failed", STORE_DEP_FAILED},
    {"ota_error", STORE_DEP_FAILED},
    {"ota_installation_start", STORE_DEP_INSTALLING},
    {"ota_installation_progress", STORE_DEP_INSTALLING},
    {"ota_installation_complete", STORE_DEP_INSTALLED},
    {"ota_verification_complete", STORE_DEP_INSTALLED},
    {"ota_rollback", STORE_DEP_ROLLED_BACK},
};

/* Position on the main chain (postponed counts as notified); -1 for other states. */
static int chain_rank(store_dep_state st)
{
	if (st <= STORE_DEP_COMPLETED)
		return (int)st;
	return st == STORE_DEP_POSTPONED ? (int)STORE_DEP_NOTIFIED : -1;
}

static const char *msg_campaign(const json_t *root)
{
	json_t *v = json_object_get(root, "campaign_id");
	return json_is_string(v) && json_string_length(v) > 0 &&
	               json_string_length(v) <= STORE_ID_MAX
	           ? json_string_value(v)
	           : NULL;
}

/* Cuts an incomplete UTF-8 sequence off the end of s (left by a bounded snprintf). */
static void utf8_trim(char *s)
{
	size_t i = strlen(s), k = 0;
	while (i > 0 && k < 4 && ((unsigned char)s[i - 1] & 0xc0) == 0x80) {
		i--;
		k++;
	}
	if (i == 0) {
		s[0] = '\0';
		return;
	}
	unsigned char c = (unsigned char)s[i - 1];
	size_t need = c >= 0xf0 ? 3 : c >= 0xe0 ? 2 : c >= 0xc0 ? 1 : 0;
	if (need != k)
		s[i - 1] = '\0';
}

static void cause_of(char *buf, size_t cap, const char *type, const char *message_id,
                     const char *extra)
{
	snprintf(buf, cap, "%s %.80s%s%.120s", type, message_id ? message_id : "",
	         extra && *extra ? ": " : "", extra ? extra : "");
	utf8_trim(buf);
}

/* Moves (cid, vin) from its current state as decide() says, retrying the compare-and-set
 * a few times when the state changes under it. decide returns the target state or -1 to
 * leave it (then only last_msg_ms is updated). */
typedef int (*decide_fn)(store_dep_state cur, const void *arg);

static int apply_message(store *db, const char *cid, const char *vin, decide_fn decide,
                         const void *arg, const char *type, const char *message_id,
                         const char *extra, const char *error_code, int64_t now_ms,
                         store_dep_update *u, store_deployment *final, bool *moved)
{
	int rc = PQ_OK;
	*moved = false;
	for (int attempt = 0; attempt < 5; attempt++) {
		store_deployment d;
		rc = store_deployment_get(db, cid, vin, &d);
		if (rc != PQ_OK)
			return rc;
		*final = d;
		if (store_dep_state_terminal(d.state))
			return PQ_OK; /* terminal absorbs */
		int to = decide(d.state, arg);
		bool changed = false;
		u->set_last_msg = true;
		u->last_msg_ms = now_ms;
		if (to < 0 || to == (int)d.state) {
			rc = store_deployment_update(db, cid, vin, d.state, now_ms, u, &changed);
		} else {
			char cause[STORE_REASON_MAX + 1];
			char skip[64] = "";
			int rf = chain_rank(d.state), rt = chain_rank((store_dep_state)to);
			if (rf >= 0 && rt > rf + 1 && to != STORE_DEP_POSTPONED)
				snprintf(skip, sizeof(skip), " (skipped %d state%s)", rt - rf - 1,
				         rt - rf - 1 > 1 ? "s" : "");
			char ex[160];
			snprintf(ex, sizeof(ex) - sizeof(skip), "%s", extra ? extra : "");
			utf8_trim(ex);
			strcat(ex, skip);
			cause_of(cause, sizeof(cause), type, message_id, ex);
			u->error_code = error_code;
			rc = store_deployment_transition(db, cid, vin, d.state, (store_dep_state)to,
			                                 cause, now_ms, u, &changed);
			if (changed) {
				final->state = (store_dep_state)to;
				*moved = true;
			}
		}
		if (rc != PQ_OK || changed)
			return rc;
	}
	return pq_err_set(PQ_ERR_TIMEOUT, "deployment %s/%s kept changing", cid, vin);
}

static int decide_status(store_dep_state cur, const void *arg)
{
	store_dep_state to = *(const store_dep_state *)arg;
	if (to == STORE_DEP_FAILED || to == STORE_DEP_ROLLED_BACK)
		return (int)to; /* from any non-terminal state */
	int rc = chain_rank(cur), rt = chain_rank(to);
	return rc >= 0 && rt > rc ? (int)to : -1; /* forward only */
}

typedef struct {
	const char *decision;
} response_arg;

static int decide_response(store_dep_state cur, const void *arg)
{
	const char *dec = ((const response_arg *)arg)->decision;
	if (cur != STORE_DEP_NOTIFIED && cur != STORE_DEP_POSTPONED)
		return -1;
	if (strcmp(dec, "accepted") == 0)
		return STORE_DEP_ACCEPTED;
	if (strcmp(dec, "declined") == 0)
		return STORE_DEP_DECLINED;
	if (strcmp(dec, "postponed") == 0 && cur == STORE_DEP_NOTIFIED)
		return STORE_DEP_POSTPONED;
	return -1;
}

static int decide_stay(store_dep_state cur, const void *arg)
{
	(void)cur;
	(void)arg;
	return -1;
}

static int on_response(store *db, const cmp_env *env, const char *vin, const char *cid,
                       const char *message_id, const json_t *root, int64_t now_ms)
{
	json_t *dv = json_object_get(root, "decision");
	const char *dec = json_is_string(dv) ? json_string_value(dv) : "";
	if (strcmp(dec, "accepted") != 0 && strcmp(dec, "declined") != 0 &&
	    strcmp(dec, "postponed") != 0)
		return pq_err_set(PQ_ERR_INVAL, "ota_campaign_response: decision '%.16s'", dec);
	cmp_cache k = {0};
	int rc = cache_get(db, &k, cid);
	if (rc != PQ_OK)
		return rc;
	store_dep_update u = {0};
	if (strcmp(dec, "postponed") == 0) {
		json_t *ra = json_object_get(root, "retry_after_s");
		int64_t after = k.rules.postpone_retry_ms;
		if (json_is_integer(ra) && json_integer_value(ra) > 0 &&
		    json_integer_value(ra) <= 30LL * 86400)
			after = (int64_t)json_integer_value(ra) * 1000;
		u.set_next = true;
		u.next_ms = now_ms + after;
	}
	json_t *rv = json_object_get(root, "reason");
	char reason[128] = "";
	if (json_is_string(rv))
		snprintf(reason, sizeof(reason), "%s", json_string_value(rv));
	utf8_trim(reason);
	char extra[160];
	snprintf(extra, sizeof(extra), "%s%s%s", dec, reason[0] ? " - " : "", reason);
	response_arg a = {dec};
	store_deployment d;
	bool moved = false;
	rc = apply_message(db, cid, vin, decide_response, &a, "ota_campaign_response", message_id,
	                   extra, strcmp(dec, "declined") == 0 ? "declined" : NULL, now_ms, &u, &d,
	                   &moved);
	if (rc == PQ_OK && moved && d.state == STORE_DEP_ACCEPTED) {
		/* just accepted: readiness or metadata next */
		store_dep_update s = {0};
		(void)accepted_step(db, env, &k, vin, now_ms, NULL, &s);
		rc = store_deployment_update(db, cid, vin, STORE_DEP_ACCEPTED, now_ms, &s, NULL);
	}
	cache_clear(&k);
	return rc;
}

static int on_readiness(store *db, const cmp_env *env, const char *vin, const char *cid,
                        const char *message_id, const json_t *root, int64_t now_ms)
{
	(void)message_id;
	bool ready = json_is_true(json_object_get(root, "ready"));
	cmp_cache k = {0};
	int rc = cache_get(db, &k, cid);
	if (rc != PQ_OK)
		return rc;
	store_deployment d;
	store_dep_update u = {0};
	bool moved = false;
	rc = apply_message(db, cid, vin, decide_stay, NULL, "ota_readiness_response", message_id,
	                   NULL, NULL, now_ms, &u, &d, &moved);
	/* only while the engine waits for readiness (next_ms set): a late or repeated answer
	 * does not send the metadata twice */
	if (rc == PQ_OK && d.state == STORE_DEP_ACCEPTED && d.next_ms > 0) {
		store_dep_update s = {.set_next = true};
		if (ready) {
			rc = send_metadata(db, env, &k, vin);
			s.next_ms = rc == PQ_OK ? 0 : now_ms + CMP_PUBLISH_RETRY_MS;
			rc = PQ_OK;
		} else {
			s.next_ms = now_ms + k.rules.readiness_retry_ms;
		}
		rc = store_deployment_update(db, cid, vin, STORE_DEP_ACCEPTED, now_ms, &s, NULL);
	}
	cache_clear(&k);
	return rc;
}

typedef struct {
	const json_t *ecus;
	int match, mismatch, missing;
	char detail[192];
} vci_check;

static int vci_target(const store_target *t, void *user)
{
	vci_check *c = user;
	size_t i;
	json_t *e;
	json_array_foreach(c->ecus, i, e)
	{
		json_t *id = json_object_get(e, "ecu_id");
		if (!json_is_string(id) || strcmp(json_string_value(id), t->ecu_id) != 0)
			continue;
		json_t *ver = json_object_get(json_object_get(e, "software"), t->software_type);
		if (json_is_string(ver) && strcmp(json_string_value(ver), t->to_version) == 0) {
			c->match++;
		} else {
			if (!c->mismatch)
				snprintf(c->detail, sizeof(c->detail),
				         "%.64s %.7s is %.24s, not %.24s", t->ecu_id,
				         t->software_type,
				         json_is_string(ver) ? json_string_value(ver) : "(none)",
				         t->to_version);
			c->mismatch++;
		}
		return PQ_OK;
	}
	c->missing++;
	return PQ_OK;
}

static int on_vci(store *db, const char *vin, const char *message_id, const json_t *root,
                  int64_t now_ms)
{
	dep_vec v = {0};
	const json_t *ecus = json_object_get(root, "ecus");
	if (!json_is_array(ecus))
		return pq_err_set(PQ_ERR_INVAL, "vci_report: no ecus array");
	int rc = store_deployment_list_vin(db, vin, true, dep_vec_add, &v);
	for (size_t i = 0; rc == PQ_OK && i < v.n; i++) {
		const store_deployment *d = &v.v[i];
		/* From accepted on, a report with every target version means the update is
		 * installed: with several server instances the status messages before it may
		 * be handled after it, on another instance (shared subscription), so this does
		 * not wait for `installed`. A mismatch only counts after `installed`. */
		if (d->state != STORE_DEP_INSTALLED && d->state != STORE_DEP_ACCEPTED &&
		    d->state != STORE_DEP_DOWNLOADING && d->state != STORE_DEP_DOWNLOADED &&
		    d->state != STORE_DEP_INSTALLING)
			continue;
		vci_check c = {.ecus = ecus};
		rc = store_target_list(db, d->campaign_id, vin, vci_target, &c);
		if (rc != PQ_OK || (c.mismatch == 0 && c.missing > 0))
			continue; /* not every target reported yet */
		if (c.mismatch > 0 && d->state != STORE_DEP_INSTALLED)
			continue; /* the old versions, before the installation */
		char cause[STORE_REASON_MAX + 1];
		store_dep_update u = {.set_last_msg = true, .last_msg_ms = now_ms};
		bool ok = c.mismatch == 0;
		cause_of(cause, sizeof(cause), "vci_report", message_id,
		         ok ? "every target version installed" : c.detail);
		if (!ok)
			u.error_code = "version_mismatch";
		/* another instance may move the deployment at the same moment (installing ->
		 * installed): on a lost compare-and-set, read the state again and retry */
		store_dep_state from = d->state;
		for (int attempt = 0; rc == PQ_OK && attempt < 4; attempt++) {
			bool changed = false;
			rc =
			    store_deployment_transition(db, d->campaign_id, vin, from,
			                                ok ? STORE_DEP_COMPLETED : STORE_DEP_FAILED,
			                                cause, now_ms, &u, &changed);
			if (rc != PQ_OK || changed)
				break;
			store_deployment cur;
			rc = store_deployment_get(db, d->campaign_id, vin, &cur);
			if (rc != PQ_OK || store_dep_state_terminal(cur.state) ||
			    (!ok && cur.state != STORE_DEP_INSTALLED) ||
			    (cur.state != STORE_DEP_INSTALLED && cur.state != STORE_DEP_ACCEPTED &&
			     cur.state != STORE_DEP_DOWNLOADING &&
			     cur.state != STORE_DEP_DOWNLOADED &&
			     cur.state != STORE_DEP_INSTALLING))
				break;
			from = cur.state;
		}
	}
	free(v.v);
	return rc;
}

int cmp_on_message(store *db, const cmp_env *env, const char *vin, const char *msg_type,
                   const char *message_id, const json_t *root, int64_t now_ms)
{
	if (!db || !vin || !msg_type || !json_is_object(root))
		return pq_err_set(PQ_ERR_INVAL, "cmp_on_message: bad arguments");
	if (strcmp(msg_type, "vci_report") == 0)
		return on_vci(db, vin, message_id, root, now_ms);
	const status_map *sm = NULL;
	for (size_t i = 0; i < sizeof(statuses) / sizeof(statuses[0]); i++)
		if (strcmp(msg_type, statuses[i].type) == 0)
			sm = &statuses[i];
	bool response = strcmp(msg_type, "ota_campaign_response") == 0;
	bool readiness = strcmp(msg_type, "ota_readiness_response") == 0;
	if (!sm && !response && !readiness)
		return PQ_OK; /* not the engine's */
	const char *cid = msg_campaign(root);
	if (!cid)
		return pq_err_set(PQ_ERR_INVAL, "%s: no campaign_id", msg_type);
	if (response)
		return on_response(db, env, vin, cid, message_id, root, now_ms);
	if (readiness)
		return on_readiness(db, env, vin, cid, message_id, root, now_ms);
	char extra[160] = "", code[STORE_NAME_MAX + 1] = "";
	if (sm->to == STORE_DEP_FAILED || sm->to == STORE_DEP_ROLLED_BACK) {
		json_t *ec = json_object_get(root, "error_code"),
		       *er = json_object_get(root, "error");
		if (json_is_string(ec) && json_string_length(ec) <= STORE_NAME_MAX)
			snprintf(code, sizeof(code), "%s", json_string_value(ec));
		else if (json_is_integer(ec))
			snprintf(code, sizeof(code), "%lld", (long long)json_integer_value(ec));
		else
			snprintf(code, sizeof(code), "%s", msg_type);
		if (json_is_string(er))
			snprintf(extra, sizeof(extra), "%s", json_string_value(er));
	}
	json_t *ecu = json_object_get(root, "ecu_id");
	if (!extra[0] && json_is_string(ecu))
		snprintf(extra, sizeof(extra), "%s", json_string_value(ecu));
	utf8_trim(extra);
	store_dep_update u = {.set_next = true, .next_ms = 0};
	store_deployment d;
	store_dep_state to = sm->to;
	bool moved = false;
	return apply_message(db, cid, vin, decide_status, &to, msg_type, message_id, extra,
	                     code[0] ? code : NULL, now_ms, &u, &d, &moved);
}

/* ---- JSON views ---------------------------------------------------------------------------- */

static json_t *states_json(const int64_t *n)
{
	json_t *o = json_object();
	for (int s = 0; o && s < STORE_DEP_STATE_COUNT; s++)
		json_object_set_new(o, store_dep_state_name((store_dep_state)s),
		                    json_integer(n[s]));
	return o;
}

static int campaign_json(store *db, const store_campaign *c, json_t **out)
{
	cmp_counts cnt;
	*out = NULL;
	int rc = load_counts(db, c->id, &cnt);
	if (rc != PQ_OK)
		return rc;
	json_t *ids = json_array();
	for (int i = 0; ids && i < c->nreleases; i++)
		json_array_append_new(ids, json_string(c->release_ids[i]));
	json_t *target = json_loads(c->target_filter ? c->target_filter : "{}", 0, NULL);
	json_t *policy = json_loads(c->policy ? c->policy : "{}", 0, NULL);
	json_t *phases = json_loads(c->phases ? c->phases : "[]", 0, NULL);
	size_t i;
	json_t *p;
	json_array_foreach(phases, i, p)
	{
		if (i >= CMP_PHASES_MAX)
			break;
		int ph = (int)i + 1;
		json_object_set_new(p, "phase", json_integer(ph));
		json_object_set_new(p, "size", json_integer(phase_size(&cnt, ph)));
		json_object_set_new(p, "counts", states_json(cnt.n[ph]));
		json_object_set_new(p, "active", json_boolean(ph <= c->current_phase));
	}
	json_t *o = json_pack(
	    "{s:s,s:s,s:s,s:s,s:i,s:s,s:I,s:I,s:I,s:I,s:o,s:o*,s:o*,s:o*,s:o*,s:I}", "id", c->id,
	    "name", c->name, "state", store_cmp_state_name(c->state), "pause_reason",
	    c->pause_reason, "current_phase", c->current_phase, "created_by", c->created_by,
	    "created_ms", (json_int_t)c->created_ms, "updated_ms", (json_int_t)c->updated_ms,
	    "started_ms", (json_int_t)c->started_ms, "vehicle_timeout_ms",
	    (json_int_t)c->vehicle_timeout_ms, "release_ids", ids, "target", target, "policy",
	    policy, "phases", phases, "counts", states_json(cnt.total), "total",
	    (json_int_t)cnt.all);
	if (!o)
		return pq_err_set(PQ_ERR_NOMEM, "campaign JSON");
	*out = o;
	return PQ_OK;
}

int cmp_get_json(store *db, const char *id, json_t **out)
{
	store_campaign c;
	if (!db || !id || !out)
		return pq_err_set(PQ_ERR_INVAL, "cmp_get_json: bad arguments");
	*out = NULL;
	int rc = store_campaign_get(db, id, &c);
	if (rc != PQ_OK)
		return rc;
	rc = campaign_json(db, &c, out);
	store_campaign_clear(&c);
	return rc;
}

typedef struct {
	store *db;
	json_t *arr;
	int rc;
} list_json_ctx;

static int list_json_row(const store_campaign *c, void *user)
{
	list_json_ctx *l = user;
	json_t *o = NULL;
	int rc = campaign_json(l->db, c, &o);
	if (rc == PQ_OK && json_array_append_new(l->arr, o) != 0)
		rc = pq_err_set(PQ_ERR_NOMEM, "campaign list");
	return rc;
}

int cmp_list_json(store *db, const store_page *pg, json_t **out)
{
	if (!db || !out)
		return pq_err_set(PQ_ERR_INVAL, "cmp_list_json: bad arguments");
	*out = NULL;
	list_json_ctx l = {.db = db, .arr = json_array()};
	if (!l.arr)
		return pq_err_set(PQ_ERR_NOMEM, "campaign list");
	int64_t total = 0;
	int rc = store_campaign_list(db, -1, pg, list_json_row, &l, &total);
	if (rc != PQ_OK) {
		json_decref(l.arr);
		return rc;
	}
	*out = json_pack("{s:o,s:I,s:i,s:I}", "campaigns", l.arr, "total", (json_int_t)total,
	                 "limit", pg && pg->limit ? pg->limit : STORE_PAGE_DEFAULT, "offset",
	                 (json_int_t)(pg ? pg->offset : 0));
	return *out ? PQ_OK : pq_err_set(PQ_ERR_NOMEM, "campaign list");
}

static int transition_json_row(const store_transition *t, void *user)
{
	json_t *o =
	    json_pack("{s:I,s:s,s:s,s:I,s:s}", "seq", (json_int_t)t->seq, "from", t->from_state,
	              "to", t->to_state, "at_ms", (json_int_t)t->at_ms, "cause", t->cause);
	if (!o || json_array_append_new(user, o) != 0)
		return pq_err_set(PQ_ERR_NOMEM, "transitions");
	return PQ_OK;
}

int cmp_vehicle_json(store *db, const char *id, const char *vin, json_t **out)
{
	store_deployment d;
	if (!db || !id || !vin || !out)
		return pq_err_set(PQ_ERR_INVAL, "cmp_vehicle_json: bad arguments");
	*out = NULL;
	int rc = store_deployment_get(db, id, vin, &d);
	if (rc != PQ_OK)
		return rc;
	json_t *targets = NULL, *hist = json_array();
	if (!hist)
		return pq_err_set(PQ_ERR_NOMEM, "deployment");
	rc = targets_json(db, id, vin, &targets, NULL);
	if (rc == PQ_OK)
		rc = store_transition_list(db, id, vin, transition_json_row, hist);
	if (rc != PQ_OK) {
		json_decref(targets);
		json_decref(hist);
		return rc;
	}
	*out = json_pack("{s:s,s:s,s:s,s:i,s:i,s:s,s:i,s:I,s:I,s:I,s:o,s:o}", "campaign_id",
	                 d.campaign_id, "vin", d.vin, "state", store_dep_state_name(d.state),
	                 "phase", d.phase, "attempt", d.attempt, "error_code", d.error_code,
	                 "notify_count", d.notify_count, "next_ms", (json_int_t)d.next_ms,
	                 "last_msg_ms", (json_int_t)d.last_msg_ms, "updated_ms",
	                 (json_int_t)d.updated_ms, "targets", targets, "transitions", hist);
	return *out ? PQ_OK : pq_err_set(PQ_ERR_NOMEM, "deployment");
}
