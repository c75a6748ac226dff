/* msg.c: parsing and checking the vehicles' MQTT messages and building the server's
 * (docs/protocol.md: topics, envelope, seed compatibility). */
#include "server/msg.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/log.h"
#include "core/text.h"
#include "core/time.h"
#include "core/uuid.h"
#include "crypto/hash.h"

/* years 1970..9999 */
#define MSG_TIME_MAX_S 253402300799LL

static const char *const status_types[] = {
    "ota_download_progress",
    "ota_download_complete",
    "ota_download_failed",
    "ota_installation_start",
    "ota_installation_progress",
    "ota_installation_complete",
    "ota_verification_complete",
    "ota_rollback",
    "ota_error",
    NULL,
};
static const char *const response_types[] = {
    "ota_campaign_response",
    "ota_readiness_response",
    "command_ack",
    NULL,
};
static const char *const wake_types[] = {"vehicle_wake_up", NULL};
static const char *const vci_types[] = {"vci_report", NULL};
static const char *const telemetry_types[] = {"telemetry", NULL};

static const struct {
	const char *suffix;
	msg_topic_kind kind;
	const char *const *types; /* NULL: any */
} kinds[] = {
    {"wake_up", MSG_T_WAKE_UP, wake_types},       {"vci", MSG_T_VCI, vci_types},
    {"response", MSG_T_RESPONSE, response_types}, {"ota/status", MSG_T_STATUS, status_types},
    {"presence", MSG_T_PRESENCE, NULL},           {"telemetry", MSG_T_TELEMETRY, telemetry_types},
};

msg_topic_kind msg_kind_of_suffix(const char *suffix)
{
	for (size_t i = 0; i < sizeof(kinds) / sizeof(kinds[0]); i++)
		if (strcmp(kinds[i].suffix, suffix) == 0)
			return kinds[i].kind;
	return MSG_T_OTHER;
}

const char *msg_kind_name(msg_topic_kind k)
{
	for (size_t i = 0; i < sizeof(kinds) / sizeof(kinds[0]); i++)
		if (kinds[i].kind == k)
			return kinds[i].suffix;
	return "other";
}

static const char *const *kind_types(msg_topic_kind k)
{
	for (size_t i = 0; i < sizeof(kinds) / sizeof(kinds[0]); i++)
		if (kinds[i].kind == k)
			return kinds[i].types;
	return NULL;
}

static bool is_alnum(char c)
{
	return (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9');
}

static bool is_digit(char c)
{
	return c >= '0' && c <= '9';
}

bool msg_vin_valid(const char *s)
{
	size_t n = 0;
	if (!s)
		return false;
	for (; s[n]; n++) {
		if (n >= MSG_VIN_MAX || !(is_alnum(s[n]) || s[n] == '_' || s[n] == '-'))
			return false;
	}
	return n > 0;
}

/* [A-Za-z0-9_.:-]{1,max} */
static bool id_valid(const char *s, size_t max)
{
	size_t n = 0;
	for (; s[n]; n++) {
		char c = s[n];
		if (n >= max || !(is_alnum(c) || c == '_' || c == '.' || c == ':' || c == '-'))
			return false;
	}
	return n > 0;
}

/* [a-z0-9_]{1,max}: message types */
static bool type_valid(const char *s, size_t max)
{
	size_t n = 0;
	for (; s[n]; n++) {
		char c = s[n];
		if (n >= max || !((c >= 'a' && c <= 'z') || is_digit(c) || c == '_'))
			return false;
	}
	return n > 0;
}

/* ---- time ---------------------------------------------------------------------------- */

/* Days since 1970-01-01 of a proleptic Gregorian date (era arithmetic, 400-year cycles). */
static int64_t days_from_date(int64_t y, int m, int d)
{
	y -= m <= 2;
	int64_t era = (y >= 0 ? y : y - 399) / 400;
	int64_t yoe = y - era * 400;
	int64_t mp = (m + 9) % 12; /* March = 0 */
	int64_t doy = (153 * mp + 2) / 5 + d - 1;
	int64_t doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
	return era * 146097 + doe - 719468;
}

static int month_days(int64_t y, int m)
{
	static const int days[] = {31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31};
	if (m == 2 && ((y % 4 == 0 && y % 100 != 0) || y % 400 == 0))
		return 29;
	return days[m - 1];
}

int msg_format_time(int64_t ms, char out[32])
{
	if (ms < 0 || ms / 1000 > MSG_TIME_MAX_S) {
		out[0] = '\0';
		return pq_err_set(PQ_ERR_RANGE, "time %lld ms outside 1970..9999", (long long)ms);
	}
	pq_iso_time_ms(ms, out);
	return PQ_OK;
}

/* Reads exactly n digits. */
static bool digits(const char **p, int n, int *out)
{
	int v = 0;
	for (int i = 0; i < n; i++) {
		if (!is_digit((*p)[i]))
			return false;
		v = v * 10 + ((*p)[i] - '0');
	}
	*p += n;
	*out = v;
	return true;
}

int msg_parse_time(const char *s, int64_t *ms)
{
	const char *p = s;
	int y, mo, d, h, mi, se, frac = 0;
	*ms = 0;
	if (!digits(&p, 4, &y) || *p++ != '-' || !digits(&p, 2, &mo) || *p++ != '-' ||
	    !digits(&p, 2, &d) || (*p != 'T' && *p != 't') || !(p++, digits(&p, 2, &h)) ||
	    *p++ != ':' || !digits(&p, 2, &mi) || *p++ != ':' || !digits(&p, 2, &se))
		return pq_err_set(PQ_ERR_FORMAT, "time '%.40s' is not YYYY-MM-DDTHH:MM:SS[.fff]Z",
		                  s);
	if (*p == '.') {
		int n = 0;
		p++;
		for (; is_digit(*p); p++, n++) {
			if (n >= 9)
				return pq_err_set(PQ_ERR_FORMAT,
				                  "time '%.40s': too many fraction digits", s);
			if (n < 3)
				frac = frac * 10 + (*p - '0');
		}
		if (n == 0)
			return pq_err_set(PQ_ERR_FORMAT, "time '%.40s': empty fraction", s);
		for (; n < 3; n++)
			frac *= 10;
	}
	if ((*p != 'Z' && *p != 'z') || p[1] != '\0')
		return pq_err_set(PQ_ERR_FORMAT, "time '%.40s' must be UTC ending in 'Z'", s);
	if (y < 1970 || mo < 1 || mo > 12 || d < 1 || d > month_days(y, mo) || h > 23 || mi > 59 ||
	    se > 59)
		return pq_err_set(PQ_ERR_RANGE, "time '%.40s' out of range", s);
	int64_t days = days_from_date(y, mo, d);
	*ms = ((days * 86400 + h * 3600 + mi * 60 + se) * 1000) + frac;
	return PQ_OK;
}

/* ---- ids, topics, builders ----------------------------------------------------------- */

void msg_uuid4(char out[37])
{
	if (pq_uuid4(out) != PQ_OK && pq_uuid4(out) != PQ_OK) {
		/* no randomness: ids would collide and break idempotency, so stop here */
		pq_log(PQ_LOG_ERROR, "msg", "no random bytes for a message id: %s",
		       pq_err_detail());
		abort();
	}
}

int msg_topic(char *buf, size_t len, const char *vin, const char *suffix)
{
	if (len)
		buf[0] = '\0';
	if (!msg_vin_valid(vin))
		return pq_err_set(PQ_ERR_INVAL, "invalid VIN '%.40s' for a topic", vin ? vin : "");
	if (!suffix || !*suffix || strpbrk(suffix, "+#") || suffix[0] == '/')
		return pq_err_set(PQ_ERR_INVAL, "invalid topic suffix '%.40s'",
		                  suffix ? suffix : "");
	int n = snprintf(buf, len, "oem/%s/%s", vin, suffix);
	if (n < 0 || (size_t)n >= len) {
		if (len)
			buf[0] = '\0';
		return pq_err_set(PQ_ERR_RANGE, "topic oem/%s/%.40s does not fit %zu bytes", vin,
		                  suffix, len);
	}
	return PQ_OK;
}

json_t *msg_new(const char *msg_type, const char *vin, const char *correlation_id)
{
	char id[37], ts[32];
	if (!msg_type || !type_valid(msg_type, MSG_TYPE_MAX) || !msg_vin_valid(vin) ||
	    (correlation_id && !id_valid(correlation_id, MSG_ID_MAX)))
		return NULL;
	msg_uuid4(id);
	if (msg_format_time(pq_real_ms(), ts) != PQ_OK)
		return NULL;
	json_t *o = json_object();
	if (!o || json_object_set_new(o, "msg_type", json_string(msg_type)) ||
	    json_object_set_new(o, "message_id", json_string(id)) ||
	    json_object_set_new(o, "timestamp", json_string(ts)) ||
	    json_object_set_new(o, "vin", json_string(vin)) ||
	    (correlation_id &&
	     json_object_set_new(o, "correlation_id", json_string(correlation_id)))) {
		json_decref(o);
		return NULL;
	}
	return o;
}

/* ---- parsing ------------------------------------------------------------------------- */

void msg_in_clear(msg_in *m)
{
	if (!m)
		return;
	json_decref(m->root);
	memset(m, 0, sizeof(*m));
}

/* Splits "oem/{vin}/{suffix}". */
static int parse_topic(const char *topic, msg_in *out, const char **suffix)
{
	if (!topic || strncmp(topic, "oem/", 4) != 0)
		return pq_err_set(PQ_ERR_INVAL, "topic '%.80s' is not oem/{vin}/...",
		                  topic ? topic : "(null)");
	const char *v = topic + 4, *slash = strchr(v, '/');
	size_t n = slash ? (size_t)(slash - v) : 0;
	if (!slash || n == 0 || n > MSG_VIN_MAX)
		return pq_err_set(PQ_ERR_INVAL, "topic '%.80s': no VIN of 1..%d characters", topic,
		                  MSG_VIN_MAX);
	memcpy(out->vin, v, n);
	out->vin[n] = '\0';
	if (!msg_vin_valid(out->vin))
		return pq_err_set(PQ_ERR_INVAL, "topic '%.80s': VIN must be [A-Za-z0-9_-]", topic);
	*suffix = slash + 1;
	if (!**suffix)
		return pq_err_set(PQ_ERR_INVAL, "topic '%.80s' has no suffix after the VIN", topic);
	out->kind = msg_kind_of_suffix(*suffix);
	return PQ_OK;
}

/* depth: the nesting level of v, counting objects and arrays only (the root is 1) */
static int check_depth(json_t *v, int depth)
{
	if (!json_is_object(v) && !json_is_array(v))
		return PQ_OK;
	if (depth > MSG_MAX_DEPTH)
		return pq_err_set(PQ_ERR_RANGE, "JSON nested deeper than %d", MSG_MAX_DEPTH);
	if (json_is_object(v)) {
		const char *k;
		json_t *c;
		json_object_foreach(v, k, c)
		{
			int rc = check_depth(c, depth + 1);
			if (rc != PQ_OK)
				return rc;
		}
	} else if (json_is_array(v)) {
		size_t i;
		json_t *c;
		json_array_foreach(v, i, c)
		{
			int rc = check_depth(c, depth + 1);
			if (rc != PQ_OK)
				return rc;
		}
	}
	return PQ_OK;
}

/* An optional string field copied into buf (cap bytes): absent -> "" and *present false. */
static int opt_string(json_t *root, const char *key, char *buf, size_t cap, bool *present)
{
	json_t *v = json_object_get(root, key);
	buf[0] = '\0';
	if (present)
		*present = v != NULL;
	if (!v)
		return PQ_OK;
	if (!json_is_string(v))
		return pq_err_set(PQ_ERR_FORMAT, "'%s' must be a string", key);
	size_t n = json_string_length(v);
	const char *s = json_string_value(v);
	if (n >= cap)
		return pq_err_set(PQ_ERR_RANGE, "'%s' longer than %zu characters", key, cap - 1);
	if (strlen(s) != n)
		return pq_err_set(PQ_ERR_FORMAT, "'%s' contains a NUL character", key);
	memcpy(buf, s, n + 1);
	return PQ_OK;
}

static int parse_presence(const void *payload, size_t len, msg_in *out)
{
	static const char *const states[] = {"online", "offline"};
	for (size_t i = 0; i < 2; i++) {
		if (len == strlen(states[i]) && memcmp(payload, states[i], len) == 0) {
			memcpy(out->presence, states[i], len + 1);
			return PQ_OK;
		}
	}
	return pq_err_set(PQ_ERR_FORMAT, "presence must be 'online' or 'offline' (%zu bytes)", len);
}

static int parse_vin(json_t *root, msg_in *out, bool seed)
{
	char vin[MSG_VIN_MAX + 2];
	bool has = false, has_seed = false;
	int rc = opt_string(root, "vin", vin, sizeof(vin), &has);
	if (rc == PQ_ERR_RANGE)
		return pq_err_set(PQ_ERR_INVAL, "'vin' does not match the topic's VIN %s",
		                  out->vin);
	if (rc != PQ_OK)
		return rc;
	if (has && strcmp(vin, out->vin) != 0)
		return pq_err_set(PQ_ERR_INVAL, "'vin' %s does not match the topic's VIN %s", vin,
		                  out->vin);
	json_t *veh = json_object_get(root, "vehicle");
	if (seed && veh) {
		if (!json_is_object(veh))
			return pq_err_set(PQ_ERR_FORMAT, "'vehicle' must be an object");
		rc = opt_string(veh, "vin", vin, sizeof(vin), &has_seed);
		if (rc == PQ_ERR_RANGE)
			return pq_err_set(PQ_ERR_INVAL,
			                  "'vehicle.vin' does not match the topic's VIN %s",
			                  out->vin);
		if (rc != PQ_OK)
			return pq_err_wrap(rc, "vehicle");
		if (has_seed && strcmp(vin, out->vin) != 0)
			return pq_err_set(PQ_ERR_INVAL,
			                  "'vehicle.vin' %s does not match the topic's VIN %s", vin,
			                  out->vin);
	}
	if (!has && !has_seed)
		return pq_err_set(PQ_ERR_FORMAT, "'vin' is missing");
	return PQ_OK;
}

static int parse_timestamp(json_t *root, msg_in *out, bool seed)
{
	json_t *t = json_object_get(root, "timestamp");
	if (!t)
		return pq_err_set(PQ_ERR_FORMAT, "'timestamp' is missing");
	if (json_is_string(t)) {
		if (json_string_length(t) > 40)
			return pq_err_set(PQ_ERR_RANGE, "'timestamp' too long");
		int rc = msg_parse_time(json_string_value(t), &out->timestamp_ms);
		return rc == PQ_OK ? rc : pq_err_wrap(rc, "'timestamp'");
	}
	if (seed && json_is_number(t)) {
		double s = json_number_value(t);
		if (!(s >= 0 && s <= (double)MSG_TIME_MAX_S))
			return pq_err_set(PQ_ERR_RANGE, "'timestamp' %g s outside 1970..9999", s);
		out->timestamp_ms = json_is_integer(t) ? (int64_t)json_integer_value(t) * 1000
		                                       : (int64_t)(s * 1000.0);
		return PQ_OK;
	}
	return pq_err_set(PQ_ERR_FORMAT, seed ? "'timestamp' must be an ISO-8601 string or seconds"
	                                      : "'timestamp' must be an ISO-8601 string");
}

static int parse_envelope(const void *payload, size_t len, msg_in *out)
{
	json_error_t jerr;
	bool has;
	int rc;

	/* JSON_REJECT_DUPLICATES: two "vin" keys could otherwise mean different VINs to
	 * different readers; jansson also bounds nesting itself (2048) before check_depth. */
	json_t *root = json_loadb(payload, len, JSON_REJECT_DUPLICATES, &jerr);
	if (!root)
		return pq_err_set(PQ_ERR_FORMAT, "not JSON: %s (line %d, column %d)", jerr.text,
		                  jerr.line, jerr.column);
	out->root = root;
	if (!json_is_object(root))
		return pq_err_set(PQ_ERR_FORMAT, "the message is not a JSON object");
	rc = check_depth(root, 1);
	if (rc != PQ_OK)
		return rc;

	rc = opt_string(root, "msg_type", out->msg_type, sizeof(out->msg_type), &has);
	if (rc != PQ_OK)
		return rc;
	if (!has)
		return pq_err_set(PQ_ERR_FORMAT, "'msg_type' is missing");
	if (!type_valid(out->msg_type, MSG_TYPE_MAX))
		return pq_err_set(PQ_ERR_INVAL, "'msg_type' '%s' is not a message type",
		                  out->msg_type);
	const char *const *types = kind_types(out->kind);
	if (types) {
		size_t i = 0;
		while (types[i] && strcmp(types[i], out->msg_type) != 0)
			i++;
		if (!types[i])
			return pq_err_set(PQ_ERR_INVAL, "'%s' is not a message for the %s topic",
			                  out->msg_type, msg_kind_name(out->kind));
	}
	bool seed = strcmp(out->msg_type, "vehicle_wake_up") == 0;

	rc = parse_vin(root, out, seed);
	if (rc != PQ_OK)
		return rc;
	rc = parse_timestamp(root, out, seed);
	if (rc != PQ_OK)
		return rc;

	rc = opt_string(root, "message_id", out->message_id, sizeof(out->message_id), &has);
	if (rc != PQ_OK)
		return rc;
	if (has && !id_valid(out->message_id, MSG_ID_MAX))
		return pq_err_set(PQ_ERR_FORMAT, "'message_id' must be 1..%d of [A-Za-z0-9_.:-]",
		                  MSG_ID_MAX);
	if (!has && !seed)
		return pq_err_set(PQ_ERR_FORMAT, "'message_id' is missing");
	if (!has) {
		uint8_t h[32];
		char hex[65];
		rc = pq_hash(PQ_HASH_SHA256, payload, len, h);
		if (rc != PQ_OK)
			return rc;
		pq_hex_encode(h, sizeof(h), hex);
		snprintf(out->message_id, sizeof(out->message_id), "sha256:%s", hex);
	}

	rc = opt_string(root, "correlation_id", out->correlation_id, sizeof(out->correlation_id),
	                &has);
	if (rc != PQ_OK)
		return rc;
	if (has && !id_valid(out->correlation_id, MSG_ID_MAX))
		return pq_err_set(PQ_ERR_FORMAT,
		                  "'correlation_id' must be 1..%d of [A-Za-z0-9_.:-]", MSG_ID_MAX);
	rc = opt_string(root, "campaign_id", out->campaign_id, sizeof(out->campaign_id), &has);
	if (rc != PQ_OK)
		return rc;
	if (has && !id_valid(out->campaign_id, MSG_CAMPAIGN_MAX))
		return pq_err_set(PQ_ERR_FORMAT, "'campaign_id' must be 1..%d of [A-Za-z0-9_.:-]",
		                  MSG_CAMPAIGN_MAX);
	return PQ_OK;
}

int msg_parse(const char *topic, const void *payload, size_t len, msg_in *out)
{
	const char *suffix = NULL;
	memset(out, 0, sizeof(*out));
	int rc = parse_topic(topic, out, &suffix);
	if (rc == PQ_OK) {
		size_t max = out->kind == MSG_T_VCI         ? MSG_VCI_MAX_BYTES
		             : out->kind == MSG_T_TELEMETRY ? MSG_TELEMETRY_MAX_BYTES
		                                            : MSG_MAX_BYTES;
		if (len > max)
			rc = pq_err_set(PQ_ERR_RANGE, "%zu-byte message on %s exceeds %zu bytes",
			                len, msg_kind_name(out->kind), max);
		else if (!payload && len)
			rc = pq_err_set(PQ_ERR_INVAL, "no payload");
		else if (out->kind == MSG_T_PRESENCE)
			rc = parse_presence(payload, len, out);
		else
			rc = parse_envelope(payload ? payload : "", len, out);
	}
	if (rc != PQ_OK)
		msg_in_clear(out);
	return rc;
}
