/* mqtt_seen.c: the ids of the MQTT messages processed, so that a message delivered twice is
 * acted on once (store/campaign.h), once for both backends. */
#include "store/campaign.h"
#include "store/store_int.h"

int store_msg_seen(store *s, const char *vin, const char *message_id, int64_t now_ms,
                   bool *duplicate)
{
	if (!s || !duplicate)
		return pq_err_set(PQ_ERR_INVAL, "store_msg_seen: bad arguments");
	*duplicate = false;
	int rc = store__check_vin(vin);
	if (rc != PQ_OK)
		return rc;
	rc = store__check_text(message_id, STORE_MSG_ID_MAX, true, "message id");
	if (rc != PQ_OK)
		return rc;
	int64_t changes = 0;
	store_val p[] = {SV_TEXT(vin), SV_TEXT(message_id), SV_INT(now_ms)};
	rc = store_exec(s,
	                "INSERT INTO mqtt_seen (vin, message_id, at_ms) VALUES (?, ?, ?)"
	                " ON CONFLICT (vin, message_id) DO NOTHING",
	                p, 3, NULL, NULL, &changes);
	if (rc == PQ_OK)
		*duplicate = changes == 0;
	return rc;
}

int store_msg_forget(store *s, const char *vin, const char *message_id)
{
	if (!s || !vin || !message_id)
		return pq_err_set(PQ_ERR_INVAL, "store_msg_forget: bad arguments");
	store_val p[] = {SV_TEXT(vin), SV_TEXT(message_id)};
	return store_exec(s, "DELETE FROM mqtt_seen WHERE vin = ? AND message_id = ?", p, 2, NULL,
	                  NULL, NULL);
}

int store_msg_seen_prune(store *s, int64_t older_than_ms, int64_t *removed)
{
	if (!s)
		return pq_err_set(PQ_ERR_INVAL, "store_msg_seen_prune: no store");
	store_val p[] = {SV_INT(older_than_ms)};
	return store_exec(s, "DELETE FROM mqtt_seen WHERE at_ms < ?", p, 1, NULL, NULL, removed);
}
