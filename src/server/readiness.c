/* readiness.c: the check of a vehicle's answer to an on-demand readiness request and its
 * storing (server/readiness.h); the routes are in readiness_routes.c. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/jsonv.h"
#include "server/readiness.h"

static const pq_jv JV = {.err = PQ_ERR_FORMAT, .what = "readiness answer", .null_absent = true};

static const char *const check_names[] = {"battery", "parked", "ignition_off", "storage"};
#define N_CHECK_NAMES (sizeof(check_names) / sizeof(check_names[0]))

/* The index of a check's name in check_names, -1 when it is none of them. */
static int name_index(const char *name)
{
	for (size_t i = 0; i < N_CHECK_NAMES; i++)
		if (strcmp(name, check_names[i]) == 0)
			return (int)i;
	return -1;
}

/* One check, its members checked and copied; *ok its verdict; seen marks its name. */
static int read_check(const json_t *c, size_t at, bool seen[N_CHECK_NAMES], bool *ok, json_t **out)
{
	static const char *const keys[] = {"name", "ok", "value", "reason", NULL};
	const char *name = NULL, *reason = NULL;
	char path[24];
	snprintf(path, sizeof(path), "checks[%zu]", at);
	if (!json_is_object(c))
		return pq_jv_fail(&JV, path, NULL, "not an object");
	int rc = pq_jv_keys(&JV, c, path, keys);
	if (rc == PQ_OK)
		rc = pq_jv_str(&JV, c, "name", path, PQ_JV_REQUIRED, 16, &name);
	if (rc == PQ_OK)
		rc = pq_jv_bool(&JV, c, "ok", path, PQ_JV_REQUIRED, ok);
	if (rc == PQ_OK)
		rc = pq_jv_str(&JV, c, "reason", path, PQ_JV_NO_CTRL | PQ_JV_EMPTY_OK,
		               RDY_REASON_MAX, &reason);
	if (rc != PQ_OK)
		return rc;
	int ni = name_index(name);
	json_t *value = json_object_get(c, "value");
	if (ni < 0 || seen[ni])
		return pq_jv_fail(&JV, path, "name", "not a known check, or one seen before");
	if (value && !json_is_number(value) && !json_is_boolean(value) && !json_is_null(value))
		return pq_jv_fail(&JV, path, "value", "not a number, boolean or null");
	seen[ni] = true;
	*out = json_pack("{s:s,s:O,s:b,s:s*}", "name", check_names[ni], "value",
	                 value ? value : json_null(), "ok", *ok, "reason", reason);
	return *out ? PQ_OK : pq_err_set(PQ_ERR_NOMEM, "readiness answer");
}

static int read_checks(const json_t *checks, bool *all_ok, json_t *out)
{
	bool seen[N_CHECK_NAMES] = {false};
	size_t n = json_array_size(checks);
	if (!json_is_array(checks) || n == 0 || n > RDY_CHECKS_MAX)
		return pq_err_set(PQ_ERR_FORMAT,
		                  "readiness answer: checks is not an array of 1..%d",
		                  RDY_CHECKS_MAX);
	*all_ok = true;
	for (size_t i = 0; i < n; i++) {
		bool ok = false;
		json_t *c = NULL;
		int rc = read_check(json_array_get(checks, i), i, seen, &ok, &c);
		if (rc == PQ_OK && json_array_append_new(out, c) != 0)
			rc = pq_err_set(PQ_ERR_NOMEM, "readiness answer");
		if (rc != PQ_OK)
			return rc;
		*all_ok &= ok;
	}
	return PQ_OK;
}

int rdy_answer_parse(const json_t *root, bool *ready, json_t **answer)
{
	const char *reason = NULL;
	json_t *checks = json_array();
	bool all_ok = false;
	*answer = NULL;
	int rc = checks ? PQ_OK : pq_err_set(PQ_ERR_NOMEM, "readiness answer");
	if (rc == PQ_OK)
		rc = pq_jv_bool(&JV, root, "ready", "", PQ_JV_REQUIRED, ready);
	if (rc == PQ_OK)
		rc = pq_jv_str(&JV, root, "reason", "", PQ_JV_NO_CTRL | PQ_JV_EMPTY_OK,
		               RDY_REASON_MAX, &reason);
	if (rc == PQ_OK)
		rc = read_checks(json_object_get(root, "checks"), &all_ok, checks);
	if (rc == PQ_OK && all_ok != *ready)
		rc = pq_jv_fail(&JV, "", "ready", "%s but %s", *ready ? "true" : "false",
		                all_ok ? "every check is ok" : "a check failed");
	if (rc == PQ_OK) {
		*answer =
		    json_pack("{s:o,s:s*}", "checks", checks, "reason", *ready ? NULL : reason);
		return *answer ? PQ_OK : pq_err_set(PQ_ERR_NOMEM, "readiness answer");
	}
	json_decref(checks);
	return rc;
}

int rdy_on_response(store *db, const msg_in *m, int64_t now_ms, bool *ours, bool *stored)
{
	store_readiness r;
	bool ready = false;
	json_t *answer = NULL;
	*ours = *stored = false;
	if (!m->correlation_id[0])
		return PQ_OK;
	int rc = store_readiness_get(db, m->vin, m->correlation_id, &r);
	store_readiness_clear(&r);
	if (rc == PQ_ERR_NOTFOUND || (rc == PQ_ERR_INVAL && m->campaign_id[0]))
		return PQ_OK; /* not one of ours (a campaign's correlation id may be any text) */
	if (rc != PQ_OK)
		return rc;
	*ours = true;
	rc = rdy_answer_parse(m->root, &ready, &answer);
	char *text = rc == PQ_OK ? json_dumps(answer, JSON_COMPACT) : NULL;
	if (rc == PQ_OK && !text)
		rc = pq_err_set(PQ_ERR_NOMEM, "readiness answer");
	if (rc == PQ_OK)
		rc = store_readiness_answer(db, m->vin, m->correlation_id, ready, text, now_ms,
		                            stored);
	free(text);
	json_decref(answer);
	return rc;
}

json_t *rdy_json(const store_readiness *r, int64_t now_ms)
{
	json_t *pre = NULL, *answer = NULL;
	if (srv_json_text(r->prerequisites, "readiness prerequisites", &pre) != PQ_OK ||
	    srv_json_text(r->answer, "readiness answer", &answer) != PQ_OK) {
		json_decref(pre);
		return NULL;
	}
	const char *state = r->answered_ms           ? "answered"
	                    : now_ms > r->expires_ms ? "expired"
	                                             : "pending";
	json_t *j = json_pack(
	    "{s:s,s:s,s:s,s:o,s:O,s:O,s:o,s:I,s:I,s:o,s:s}", "id", r->id, "vin", r->vin, "state",
	    state, "ready", r->ready < 0 ? json_null() : json_boolean(r->ready), "checks",
	    answer ? json_object_get(answer, "checks") : json_null(), "reason",
	    answer && json_object_get(answer, "reason") ? json_object_get(answer, "reason")
	                                                : json_null(),
	    "prerequisites", pre ? pre : json_object(), "requested_ms", (json_int_t)r->requested_ms,
	    "expires_ms", (json_int_t)r->expires_ms, "answered_ms",
	    r->answered_ms ? json_integer(r->answered_ms) : json_null(), "requested_by", r->actor);
	json_decref(answer);
	return j;
}
