/* readiness.c: the check of a vehicle's answer to an on-demand readiness request and its
 * storing (server/readiness.h); the routes are in readiness_routes.c. */
#include <stdlib.h>
#include <string.h>

#include "server/readiness.h"

static const char *const check_names[] = {"battery", "parked", "ignition_off", "storage"};
#define N_CHECK_NAMES (sizeof(check_names) / sizeof(check_names[0]))

/* Bounded text without control characters. */
static bool text_ok(const json_t *s, size_t max)
{
	const char *v = json_string_value(s);
	size_t n = json_string_length(s);
	if (!v || n > max || strlen(v) != n)
		return false;
	for (size_t i = 0; i < n; i++)
		if ((unsigned char)v[i] < 0x20 || v[i] == 0x7f)
			return false;
	return true;
}

/* The index of a check's name in check_names, -1 when it is none of them. */
static int name_index(const json_t *name)
{
	for (size_t i = 0; json_is_string(name) && i < N_CHECK_NAMES; i++)
		if (strcmp(json_string_value(name), check_names[i]) == 0)
			return (int)i;
	return -1;
}

/* One check, its members checked and copied; *ok its verdict; seen marks its name. */
static int read_check(const json_t *c, size_t at, bool seen[N_CHECK_NAMES], bool *ok, json_t **out)
{
	const char *key;
	json_t *v;
	if (!json_is_object(c))
		return pq_err_set(PQ_ERR_FORMAT, "readiness answer: checks[%zu] is not an object",
		                  at);
	json_object_foreach((json_t *)c, key, v)
	{
		if (strcmp(key, "name") && strcmp(key, "ok") && strcmp(key, "value") &&
		    strcmp(key, "reason"))
			return pq_err_set(PQ_ERR_FORMAT,
			                  "readiness answer: checks[%zu] has member '%.32s'", at,
			                  key);
	}
	int ni = name_index(json_object_get(c, "name"));
	json_t *okv = json_object_get(c, "ok"), *value = json_object_get(c, "value");
	json_t *reason = json_object_get(c, "reason");
	if (ni < 0 || seen[ni])
		return pq_err_set(PQ_ERR_FORMAT,
		                  "readiness answer: checks[%zu] names no check or one seen before",
		                  at);
	if (!json_is_boolean(okv) ||
	    (value && !json_is_number(value) && !json_is_boolean(value) && !json_is_null(value)))
		return pq_err_set(PQ_ERR_FORMAT, "readiness answer: checks[%zu]: bad ok or value",
		                  at);
	if (reason && !json_is_null(reason) && !text_ok(reason, RDY_REASON_MAX))
		return pq_err_set(PQ_ERR_RANGE, "readiness answer: checks[%zu]: bad reason", at);
	seen[ni] = true;
	*ok = json_is_true(okv);
	*out = json_pack("{s:s,s:O,s:b,s:O*}", "name", check_names[ni], "value",
	                 value ? value : json_null(), "ok", *ok, "reason",
	                 json_is_string(reason) ? reason : NULL);
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
	json_t *r = json_object_get(root, "ready"), *reason = json_object_get(root, "reason");
	json_t *checks = json_array();
	bool all_ok = false;
	*answer = NULL;
	int rc = checks ? PQ_OK : pq_err_set(PQ_ERR_NOMEM, "readiness answer");
	if (rc == PQ_OK && !json_is_boolean(r))
		rc = pq_err_set(PQ_ERR_FORMAT, "readiness answer: ready is not a boolean");
	if (rc == PQ_OK && reason && !json_is_null(reason) && !text_ok(reason, RDY_REASON_MAX))
		rc = pq_err_set(PQ_ERR_RANGE, "readiness answer: bad reason");
	if (rc == PQ_OK)
		rc = read_checks(json_object_get(root, "checks"), &all_ok, checks);
	if (rc == PQ_OK && all_ok != json_is_true(r))
		rc = pq_err_set(PQ_ERR_FORMAT, "readiness answer: ready is %s but %s",
		                json_is_true(r) ? "true" : "false",
		                all_ok ? "every check is ok" : "a check failed");
	if (rc == PQ_OK) {
		*ready = json_is_true(r);
		*answer = json_pack("{s:o,s:O*}", "checks", checks, "reason",
		                    json_is_string(reason) && !*ready ? reason : NULL);
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
