/* msg.c: the agent's messages: envelopes, checked JSON updates, de-duplication, readiness
 * checks and VCI entries. Pure functions (no I/O), unit-tested in tests/unit/test_agent.c. */
#include <string.h>

#include "agent/agent_int.h"
#include "core/text.h"
#include "core/time.h"
#include "core/uuid.h"

int ag_jset(json_t *o, const char *key, json_t *v)
{
	if (json_object_set_new(o, key, v) != 0)
		return pq_err_set(PQ_ERR_NOMEM, "setting %s: out of memory", key);
	return PQ_OK;
}

int ag_jappend(json_t *arr, json_t *v)
{
	if (json_array_append_new(arr, v) != 0)
		return pq_err_set(PQ_ERR_NOMEM, "appending to an array: out of memory");
	return PQ_OK;
}

int ag_jmerge(json_t *o, json_t *fields, const char *what)
{
	if (!fields || json_object_update_new(o, fields) != 0)
		return pq_err_set(PQ_ERR_NOMEM, "updating the %s: out of memory", what);
	return PQ_OK;
}

json_t *ag_msg_new(const char *vin, const char *msg_type, const char *correlation_id,
                   const char *campaign_id)
{
	char id[PQ_UUID_LEN], ts[PQ_ISO_TIME_MS_LEN];
	if (pq_uuid4(id) != PQ_OK)
		return NULL;
	pq_iso_time_ms(pq_real_ms(), ts);
	json_t *m = json_pack("{s:s,s:s,s:s,s:s,s:s*,s:s*}", "msg_type", msg_type, "message_id", id,
	                      "timestamp", ts, "vin", vin, "correlation_id", correlation_id,
	                      "campaign_id", campaign_id);
	return m;
}

const char *ag_jstr(const json_t *o, const char *key, size_t max)
{
	json_t *s = json_object_get(o, key);
	if (!json_is_string(s) || json_string_length(s) > max)
		return NULL;
	const char *v = json_string_value(s);
	/* an embedded NUL would make the C string differ from the JSON one */
	if (strlen(v) != json_string_length(s))
		return NULL;
	return v;
}

/* 1..max printable ASCII characters */
static bool id_ok(const char *s, size_t max)
{
	size_t n = strlen(s);
	if (n == 0 || n > max)
		return false;
	for (size_t i = 0; i < n; i++)
		if (s[i] < 0x21 || s[i] > 0x7e)
			return false;
	return true;
}

int ag_msg_check(const json_t *m, const char *vin, bool broadcast, ag_env *out)
{
	memset(out, 0, sizeof(*out));
	if (!json_is_object(m))
		return pq_err_set(PQ_ERR_FORMAT, "not a JSON object");
	out->msg_type = ag_jstr(m, "msg_type", 64);
	if (!out->msg_type || !id_ok(out->msg_type, 64))
		return pq_err_set(PQ_ERR_FORMAT, "no msg_type string");
	out->message_id = ag_jstr(m, "message_id", AG_ID_MAX);
	if (!out->message_id || !id_ok(out->message_id, AG_ID_MAX))
		return pq_err_set(PQ_ERR_FORMAT, "%s: no message_id string (1..%d characters)",
		                  out->msg_type, AG_ID_MAX);
	json_t *ts = json_object_get(m, "timestamp");
	if (!json_is_string(ts) && !json_is_number(ts))
		return pq_err_set(PQ_ERR_FORMAT, "%s: no timestamp", out->msg_type);
	if (!broadcast) {
		const char *v = ag_jstr(m, "vin", VM_ID_MAX);
		if (!v)
			return pq_err_set(PQ_ERR_FORMAT, "%s: no vin", out->msg_type);
		if (strcmp(v, vin) != 0)
			return pq_err_set(PQ_ERR_FORMAT, "%s: for vin %s, not this vehicle",
			                  out->msg_type, v);
	}
	json_t *cid = json_object_get(m, "campaign_id");
	if (cid && !json_is_null(cid)) {
		out->campaign_id = ag_jstr(m, "campaign_id", AG_ID_MAX);
		if (!out->campaign_id || !id_ok(out->campaign_id, AG_ID_MAX))
			return pq_err_set(PQ_ERR_FORMAT, "%s: campaign_id is not 1..%d characters",
			                  out->msg_type, AG_ID_MAX);
	}
	return PQ_OK;
}

bool ag_seen_check(ag_seen *s, const char *id)
{
	for (size_t i = 0; i < s->n; i++)
		if (strcmp(s->id[i], id) == 0)
			return true;
	snprintf(s->id[s->next], sizeof(s->id[0]), "%s", id);
	s->next = (s->next + 1) % AG_SEEN_MAX;
	if (s->n < AG_SEEN_MAX)
		s->n++;
	return false;
}

/* ---- readiness --------------------------------------------------------------------------- */

static int get_req_bool(const json_t *o, const char *key, int *out)
{
	json_t *v = json_object_get(o, key);
	*out = -1;
	if (!v || json_is_null(v))
		return PQ_OK;
	if (!json_is_boolean(v))
		return pq_err_set(PQ_ERR_FORMAT, "prerequisites.%s is not a boolean", key);
	*out = json_is_true(v) ? 1 : -1; /* false: not required */
	return PQ_OK;
}

int ag_prereq_parse(const json_t *o, ag_prereq *out)
{
	out->battery_min_pct = -1;
	out->parked = -1;
	out->ignition_off = -1;
	out->storage_min = -1;
	if (!o || json_is_null(o))
		return PQ_OK;
	if (!json_is_object(o))
		return pq_err_set(PQ_ERR_FORMAT, "prerequisites is not an object");
	json_t *b = json_object_get(o, "battery_min_pct");
	if (b && !json_is_null(b)) {
		if (!json_is_integer(b) || json_integer_value(b) < 0 || json_integer_value(b) > 100)
			return pq_err_set(PQ_ERR_FORMAT,
			                  "prerequisites.battery_min_pct is not 0..100");
		out->battery_min_pct = (int)json_integer_value(b);
	}
	json_t *s = json_object_get(o, "storage_min_bytes");
	if (s && !json_is_null(s)) {
		if (!json_is_integer(s) || json_integer_value(s) < 0)
			return pq_err_set(PQ_ERR_FORMAT,
			                  "prerequisites.storage_min_bytes is not an integer >= 0");
		out->storage_min = json_integer_value(s);
	}
	int rc = get_req_bool(o, "parked", &out->parked);
	if (rc == PQ_OK)
		rc = get_req_bool(o, "ignition_off", &out->ignition_off);
	return rc;
}

/* One check: the first failing one's reason goes to first; arr (when not NULL) receives
 * its entry, *oom is set when that fails. */
static bool add_check(json_t *arr, const char *name, json_t *value, bool ok, const char *reason,
                      char *first, size_t first_len, bool *oom)
{
	if (!ok && first && first_len && !first[0])
		snprintf(first, first_len, "%s", reason);
	if (!arr) {
		json_decref(value);
		return ok;
	}
	json_t *c = json_pack("{s:s,s:o,s:b,s:s*}", "name", name, "value", value, "ok", ok,
	                      "reason", ok ? NULL : reason);
	if (ag_jappend(arr, c) != PQ_OK)
		*oom = true;
	return ok;
}

bool ag_readiness(const ag_vstate *v, const ag_prereq *p, json_t **checks, char *reason,
                  size_t reason_len)
{
	json_t *arr = checks ? json_array() : NULL;
	char why[128];
	bool all = true, oom = checks && !arr;
	if (reason && reason_len)
		reason[0] = '\0';

	bool ok = p->battery_min_pct < 0 || v->battery_pct >= p->battery_min_pct;
	snprintf(why, sizeof(why), "battery %d %% is below the required %d %%", v->battery_pct,
	         p->battery_min_pct);
	all &= add_check(arr, "battery", json_integer(v->battery_pct), ok, why, reason, reason_len,
	                 &oom);
	ok = p->parked != 1 || v->parked;
	all &= add_check(arr, "parked", json_boolean(v->parked), ok, "the vehicle is not parked",
	                 reason, reason_len, &oom);
	ok = p->ignition_off != 1 || v->ignition_off;
	all &= add_check(arr, "ignition_off", json_boolean(v->ignition_off), ok,
	                 "the ignition is on", reason, reason_len, &oom);
	ok = p->storage_min < 0 || v->storage_free >= (uint64_t)p->storage_min;
	snprintf(why, sizeof(why), "%llu bytes free, %lld required",
	         (unsigned long long)v->storage_free, (long long)p->storage_min);
	all &= add_check(arr, "storage", json_integer((json_int_t)v->storage_free), ok, why, reason,
	                 reason_len, &oom);
	if (checks) {
		if (oom) {
			json_decref(arr);
			arr = NULL;
		}
		*checks = arr;
	}
	return all;
}

/* ---- VCI ------------------------------------------------------------------------------ */

int ag_sw_index(const char *t)
{
	if (!t)
		return -1;
	if (strcmp(t, "APP") == 0)
		return VM_SW_APP;
	if (strcmp(t, "BOOT") == 0)
		return VM_SW_BOOT;
	if (strcmp(t, "CAL") == 0)
		return VM_SW_CAL;
	return -1;
}

static const char *const sw_names[VM_SW_N] = {"APP", "BOOT", "CAL"};

json_t *ag_vci_ecu(const vm_ecu *e, const tester_ecu_info *info)
{
	json_t *sw = json_object();
	if (!sw)
		return NULL;
	for (int i = 0; i < VM_SW_N; i++) {
		const char *v = info ? info->version[i] : e->version[i];
		if (v[0] && ag_jset(sw, sw_names[i], json_string(v)) != PQ_OK) {
			json_decref(sw);
			return NULL;
		}
	}
	char bank[2] = {(char)(info && info->bank ? info->bank : 'A'), '\0'};
	json_t *o = json_pack("{s:s,s:s,s:i,s:s,s:s,s:o,s:{s:b,s:I}}", "ecu_id", e->ecu_id,
	                      "hardware_id", e->hardware_id, "zone", e->zone, "serial",
	                      info && info->serial[0] ? info->serial : e->serial, "bank", bank,
	                      "software", sw, "capabilities", "delta", e->delta, "max_package_size",
	                      (json_int_t)e->max_package_size);
	if (!o)
		return NULL;
	json_t *more;
	if (info) {
		char hex[65];
		pq_hex_encode(info->image_sha256, 32, hex);
		more = json_pack("{s:s,s:s,s:I,s:I}", "part_number", info->part_number,
		                 "image_sha256", hex, "image_length", (json_int_t)info->image_len,
		                 "dtc_count", (json_int_t)info->dtc_count);
	} else {
		more = json_pack("{s:b}", "reachable", 0);
	}
	if (ag_jmerge(o, more, "VCI entry") != PQ_OK) {
		json_decref(o);
		return NULL;
	}
	return o;
}
