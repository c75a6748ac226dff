/* fuzz_msg.c: libFuzzer harness for the MQTT message parser (msg_parse).
 *
 * Input: "TOPIC\nPAYLOAD" (without a newline, or with a topic over 256 bytes, the whole
 * input is a payload on oem/VIN1/wake_up). Whenever parsing succeeds the result must obey
 * the envelope rules (valid VIN from the topic, bounded NUL-terminated fields, a JSON object
 * unless presence), and the object re-encoded must parse again to the same fields; whenever
 * it fails, nothing may be left allocated or filled in. Violations abort.
 *
 * A diag_response that parses is also checked as one (diag_response_parse): on success the
 * status is an answer, a negative one carries an NRC 0..255 equal to the response's third
 * byte, the stored payload is an object whose response (if any) is even-length hex; on
 * failure nothing is kept.
 *
 * A telemetry message that parses is also checked as one (tele_parse, at a fixed "now"): on
 * success every value is within the store's ranges (a parked vehicle stands, free storage
 * is at most the total) and the VIN is the topic's; on failure nothing is filled in. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "server/diag.h"
#include "server/msg.h"
#include "server/telemetry.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define TOPIC_MAX 256

static void check_str(const char *s, size_t cap)
{
	if (!memchr(s, '\0', cap))
		abort();
}

static void same(const msg_in *a, const msg_in *b, bool same_id)
{
	if (strcmp(a->vin, b->vin) || a->kind != b->kind || strcmp(a->msg_type, b->msg_type) ||
	    strcmp(a->correlation_id, b->correlation_id) ||
	    strcmp(a->campaign_id, b->campaign_id) || a->timestamp_ms != b->timestamp_ms ||
	    (same_id && strcmp(a->message_id, b->message_id)))
		abort();
}

static void check_diag(const msg_in *m)
{
	diag_response r;
	memset(&r, 0x5a, sizeof(r));
	if (diag_response_parse(m, &r) != PQ_OK) {
		if (r.payload || r.request_id[0] || r.ecu_id[0])
			abort();
		return;
	}
	check_str(r.request_id, sizeof(r.request_id));
	check_str(r.ecu_id, sizeof(r.ecu_id));
	if (r.status < STORE_DIAG_ST_POSITIVE || r.status >= STORE_DIAG_STATUS_COUNT ||
	    !json_is_object(r.payload) || !r.request_id[0] || !r.ecu_id[0])
		abort();
	const char *resp = json_string_value(json_object_get(r.payload, "response"));
	if (resp && !diag_hex_valid(resp, DIAG_REQUEST_BYTES_MAX))
		abort();
	if ((r.status == STORE_DIAG_ST_POSITIVE || r.status == STORE_DIAG_ST_NEGATIVE) != !!resp)
		abort();
	if (r.status == STORE_DIAG_ST_NEGATIVE) {
		if (r.nrc < 0 || r.nrc > 255 || strlen(resp) != 6 ||
		    json_integer_value(json_object_get(r.payload, "nrc")) != r.nrc)
			abort();
	} else if (r.nrc != -1 || json_object_get(r.payload, "nrc")) {
		abort();
	}
	diag_response_clear(&r);
	if (r.payload)
		abort();
}

static void check_telemetry(const msg_in *m)
{
	store_telemetry t;
	memset(&t, 0x5a, sizeof(t));
	if (tele_parse(m, 1796679000000LL, &t) != PQ_OK) {
		if (t.vin[0] || t.at_ms || t.storage_total)
			abort();
		return;
	}
	if (strcmp(t.vin, m->vin) || t.at_ms != m->timestamp_ms || t.battery_pct < 0 ||
	    t.battery_pct > 100 || t.battery_mv < 0 || t.battery_mv > STORE_TELE_MV_MAX ||
	    t.speed_dkmh < 0 || t.speed_dkmh > STORE_TELE_DKMH_MAX || (t.parked && t.speed_dkmh) ||
	    t.storage_total < 1 || t.storage_total > STORE_TELE_BYTES_MAX || t.storage_free < 0 ||
	    t.storage_free > t.storage_total)
		abort();
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	char topic[TOPIC_MAX + 1] = "oem/VIN1/wake_up";
	const uint8_t *nl = memchr(data, '\n', size < TOPIC_MAX + 1 ? size : TOPIC_MAX + 1);
	const uint8_t *payload = data;
	size_t len = size;
	if (nl) {
		size_t tl = (size_t)(nl - data);
		memcpy(topic, data, tl);
		topic[tl] = '\0';
		payload = nl + 1;
		len = size - tl - 1;
	}
	msg_in m, again;
	memset(&m, 0x5a, sizeof(m));
	if (msg_parse(topic, payload, len, &m) != PQ_OK) {
		if (m.root || m.vin[0] || m.msg_type[0] || m.message_id[0])
			abort();
		return 0;
	}
	check_str(m.vin, sizeof(m.vin));
	check_str(m.msg_type, sizeof(m.msg_type));
	check_str(m.message_id, sizeof(m.message_id));
	check_str(m.correlation_id, sizeof(m.correlation_id));
	check_str(m.campaign_id, sizeof(m.campaign_id));
	check_str(m.presence, sizeof(m.presence));
	if (!msg_vin_valid(m.vin) || strncmp(topic + 4, m.vin, strlen(m.vin)) != 0)
		abort();
	if (m.kind == MSG_T_PRESENCE) {
		if (m.root || (strcmp(m.presence, "online") && strcmp(m.presence, "offline")))
			abort();
		msg_in_clear(&m);
		return 0;
	}
	if (!json_is_object(m.root) || !m.msg_type[0] || !m.message_id[0] || m.presence[0] ||
	    m.timestamp_ms < 0)
		abort();
	if (strcmp(m.msg_type, "diag_response") == 0)
		check_diag(&m);
	if (m.kind == MSG_T_TELEMETRY)
		check_telemetry(&m);
	/* re-encoded, the same message (the derived sha256: id changes with the bytes) */
	char *text = json_dumps(m.root, JSON_COMPACT);
	if (!text)
		abort();
	int rc = msg_parse(topic, text, strlen(text), &again);
	if (rc == PQ_ERR_RANGE && strlen(text) > len) { /* e.g. 0.1 is written back longer */
		free(text);
		msg_in_clear(&m);
		return 0;
	}
	if (rc != PQ_OK)
		abort();
	same(&m, &again, strncmp(m.message_id, "sha256:", 7) != 0);
	msg_in_clear(&again);
	free(text);
	msg_in_clear(&m);
	return 0;
}
