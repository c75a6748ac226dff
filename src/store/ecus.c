/* ecus.c: the ECUs of each vehicle, their version history, the seeded defaults, VCI reports
 * (store.h) and the ECUs by hardware id that campaigns target (store/campaign.h), once for
 * both backends. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>

#include "store/campaign.h"
#include "store/store_int.h"

#define SQL_MAX 1024

#define ECU_COLS STORE__ECU_COLS
#define ZONE_MAX 255

/* Which fields of an ECU a report carries (the rest keep their stored values). */
enum {
	ECU_HW = 1u << 0,
	ECU_ZONE = 1u << 1,
	ECU_APP = 1u << 2,
	ECU_BOOT = 1u << 3,
	ECU_CAL = 1u << 4,
	ECU_SERIAL = 1u << 5,
	ECU_BANK = 1u << 6,
	ECU_ALL = 0x7f,
};

typedef struct {
	store_ecu e;
	unsigned present;
} ecu_patch;

int store__row_ecu(const store_row *r, void *dst)
{
	store_ecu *e = dst;
	store__rd rd = store__rd_at(r, 0);
	store__rd_copy(&rd, e->vin, sizeof(e->vin));
	store__rd_copy(&rd, e->ecu_id, sizeof(e->ecu_id));
	store__rd_copy(&rd, e->hardware_id, sizeof(e->hardware_id));
	store__rd_int(&rd, &e->zone);
	store__rd_copy(&rd, e->sw_app, sizeof(e->sw_app));
	store__rd_copy(&rd, e->sw_boot, sizeof(e->sw_boot));
	store__rd_copy(&rd, e->sw_cal, sizeof(e->sw_cal));
	store__rd_copy(&rd, e->serial, sizeof(e->serial));
	store__rd_copy(&rd, e->bank, sizeof(e->bank));
	store__rd_i64(&rd, &e->updated_ms);
	return rd.rc;
}

static int check_ecu_key(const char *vin, const char *ecu_id)
{
	int rc = store__check_vin(vin);
	if (rc != PQ_OK)
		return rc;
	return store__check_text(ecu_id, STORE_NAME_MAX, true, "ECU id");
}

static int check_ecu(const store_ecu *e)
{
	int rc = check_ecu_key(e->vin, e->ecu_id);
	if (rc != PQ_OK)
		return rc;
	rc = store__check_text(e->hardware_id, STORE_NAME_MAX, false, "hardware id");
	if (rc != PQ_OK)
		return rc;
	if (e->zone < 0 || e->zone > ZONE_MAX)
		return pq_err_set(PQ_ERR_INVAL, "zone %d outside 0..%d", e->zone, ZONE_MAX);
	const store__text_rule texts[] = {
	    {e->sw_app, STORE_VERSION_MAX, false, "APP version"},
	    {e->sw_boot, STORE_VERSION_MAX, false, "BOOT version"},
	    {e->sw_cal, STORE_VERSION_MAX, false, "CAL version"},
	    {e->serial, STORE_NAME_MAX, false, "serial"},
	    {e->bank, sizeof(e->bank) - 1, false, "bank"},
	};
	rc = store__check_texts(texts, sizeof(texts) / sizeof(texts[0]));
	if (rc != PQ_OK)
		return rc;
	return store__check_time(e->updated_ms, "updated");
}

/* Reads an ECU; inside a transaction on PostgreSQL, locks its row until the end. */
static int ecu_read(store *s, const char *vin, const char *ecu_id, bool lock, store_ecu *out,
                    bool *found)
{
	char sql[SQL_MAX];
	memset(out, 0, sizeof(*out));
	int rc = store__build_sql(sql, sizeof(sql), "SELECT " ECU_COLS " FROM ecus",
	                          " WHERE vin = ? AND ecu_id = ?", lock ? s->ops->for_update : "");
	if (rc != PQ_OK)
		return rc;
	store_val p[] = {SV_TEXT(vin), SV_TEXT(ecu_id)};
	return store__get_one(s, sql, p, 2, store__row_ecu, out, "ECU", found);
}

/* The ECU after applying patch p to old (NULL: a new ECU, defaults for absent fields). */
static void ecu_merge(store_ecu *out, const store_ecu *old, const ecu_patch *p)
{
	if (old) {
		*out = *old;
	} else {
		memset(out, 0, sizeof(*out));
		snprintf(out->bank, sizeof(out->bank), "A");
	}
	snprintf(out->vin, sizeof(out->vin), "%s", p->e.vin);
	snprintf(out->ecu_id, sizeof(out->ecu_id), "%s", p->e.ecu_id);
	if (p->present & ECU_HW)
		memcpy(out->hardware_id, p->e.hardware_id, sizeof(out->hardware_id));
	if (p->present & ECU_ZONE)
		out->zone = p->e.zone;
	if (p->present & ECU_APP)
		memcpy(out->sw_app, p->e.sw_app, sizeof(out->sw_app));
	if (p->present & ECU_BOOT)
		memcpy(out->sw_boot, p->e.sw_boot, sizeof(out->sw_boot));
	if (p->present & ECU_CAL)
		memcpy(out->sw_cal, p->e.sw_cal, sizeof(out->sw_cal));
	if (p->present & ECU_SERIAL)
		memcpy(out->serial, p->e.serial, sizeof(out->serial));
	if (p->present & ECU_BANK)
		memcpy(out->bank, p->e.bank, sizeof(out->bank));
	out->updated_ms = p->e.updated_ms;
}

static int history_add(store *s, const store_ecu *e, const char *type, const char *from,
                       const char *to)
{
	if (strcmp(from, to) == 0)
		return PQ_OK;
	store_val p[] = {SV_TEXT(e->vin), SV_TEXT(e->ecu_id), SV_TEXT(type),
	                 SV_TEXT(from),   SV_TEXT(to),        SV_INT(e->updated_ms),
	                 SV_TEXT(e->vin), SV_TEXT(e->ecu_id)};
	/* seq: the next per ECU; the ECU row's lock (or SQLite's write lock) serialises it. */
	return store_exec(s,
	                  "INSERT INTO ecu_history (vin, ecu_id, seq, software_type, from_version,"
	                  " to_version, at_ms) SELECT ?, ?, COALESCE(MAX(seq), 0) + 1, ?, ?, ?, ?"
	                  " FROM ecu_history WHERE vin = ? AND ecu_id = ?",
	                  p, 8, NULL, NULL, NULL);
}

static int ecu_insert(store *s, const store_ecu *e, int64_t *changes)
{
	store_val p[] = {SV_TEXT(e->vin),      SV_TEXT(e->ecu_id), SV_TEXT(e->hardware_id),
	                 SV_INT(e->zone),      SV_TEXT(e->sw_app), SV_TEXT(e->sw_boot),
	                 SV_TEXT(e->sw_cal),   SV_TEXT(e->serial), SV_TEXT(e->bank),
	                 SV_INT(e->updated_ms)};
	return store_exec(s,
	                  "INSERT INTO ecus (" ECU_COLS ") VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)"
	                  " ON CONFLICT (vin, ecu_id) DO NOTHING",
	                  p, 10, NULL, NULL, changes);
}

static int ecu_update(store *s, const store_ecu *old, const store_ecu *e)
{
	store_val p[] = {SV_TEXT(e->hardware_id), SV_INT(e->zone),       SV_TEXT(e->sw_app),
	                 SV_TEXT(e->sw_boot),     SV_TEXT(e->sw_cal),    SV_TEXT(e->serial),
	                 SV_TEXT(e->bank),        SV_INT(e->updated_ms), SV_TEXT(e->vin),
	                 SV_TEXT(e->ecu_id)};
	int rc = store_exec(s,
	                    "UPDATE ecus SET hardware_id = ?, zone = ?, sw_app = ?, sw_boot = ?,"
	                    " sw_cal = ?, serial = ?, bank = ?, updated_ms = ?"
	                    " WHERE vin = ? AND ecu_id = ?",
	                    p, 10, NULL, NULL, NULL);
	if (rc != PQ_OK)
		return rc;
	rc = history_add(s, e, "APP", old->sw_app, e->sw_app);
	if (rc != PQ_OK)
		return rc;
	rc = history_add(s, e, "BOOT", old->sw_boot, e->sw_boot);
	if (rc != PQ_OK)
		return rc;
	return history_add(s, e, "CAL", old->sw_cal, e->sw_cal);
}

/* Applies a patch inside a transaction whose vehicle exists. A new ECU has no history (its
 * first versions are its state, not a change). */
static int ecu_apply(store *s, const ecu_patch *p)
{
	store_ecu old, merged;
	for (int attempt = 0; attempt < 2; attempt++) {
		bool found = false;
		int64_t changes = 0;
		int rc = ecu_read(s, p->e.vin, p->e.ecu_id, true, &old, &found);
		if (rc != PQ_OK)
			return rc;
		ecu_merge(&merged, found ? &old : NULL, p);
		if (found)
			return ecu_update(s, &old, &merged);
		rc = ecu_insert(s, &merged, &changes);
		if (rc != PQ_OK || changes == 1)
			return rc;
		/* another connection inserted it meanwhile: read it again, update */
	}
	return pq_err_set(PQ_ERR_IO, "ECU %s/%s: inserted and deleted concurrently", p->e.vin,
	                  p->e.ecu_id);
}

int store_ecu_upsert(store *s, const store_ecu *e)
{
	if (!s || !e)
		return pq_err_set(PQ_ERR_INVAL, "store_ecu_upsert: bad arguments");
	int rc = check_ecu(e);
	if (rc != PQ_OK)
		return rc;
	ecu_patch p = {.e = *e, .present = ECU_ALL};
	rc = store_begin(s);
	if (rc != PQ_OK)
		return rc;
	rc = store__vehicle_exists(s, e->vin);
	if (rc != PQ_OK)
		goto out;
	rc = ecu_apply(s, &p);
out:
	return store__end(s, rc);
}

int store_ecu_get(store *s, const char *vin, const char *ecu_id, store_ecu *out)
{
	bool found = false;
	if (!s || !out)
		return pq_err_set(PQ_ERR_INVAL, "store_ecu_get: bad arguments");
	memset(out, 0, sizeof(*out));
	int rc = check_ecu_key(vin, ecu_id);
	if (rc != PQ_OK)
		return rc;
	rc = ecu_read(s, vin, ecu_id, false, out, &found);
	if (rc == PQ_OK && !found)
		rc = pq_err_set(PQ_ERR_NOTFOUND, "vehicle %s has no ECU %s", vin, ecu_id);
	if (rc != PQ_OK)
		memset(out, 0, sizeof(*out));
	return rc;
}

typedef struct {
	int (*fn)(const store_ecu *e, void *user);
	void *user;
} ecu_list_ctx;

static int ecu_list_row(const store_row *r, void *user)
{
	ecu_list_ctx *c = user;
	store_ecu e;
	memset(&e, 0, sizeof(e));
	int rc = store__row_ecu(r, &e);
	return rc == PQ_OK ? c->fn(&e, c->user) : rc;
}

int store_ecu_list(store *s, const char *vin, const store_page *pg,
                   int (*fn)(const store_ecu *e, void *user), void *user, int64_t *total)
{
	int64_t limit, offset;
	if (total)
		*total = 0;
	if (!s)
		return pq_err_set(PQ_ERR_INVAL, "store_ecu_list: no store");
	int rc = store__check_vin(vin);
	if (rc != PQ_OK)
		return rc;
	rc = store__page_args(pg, &limit, &offset);
	if (rc != PQ_OK)
		return rc;
	rc = store__vehicle_exists(s, vin);
	if (rc != PQ_OK)
		return rc;
	store_val p[] = {SV_TEXT(vin), SV_INT(limit), SV_INT(offset)};
	rc = store__count_rows(s, "ecus WHERE vin = ?", p, 1, total);
	if (rc != PQ_OK || !fn)
		return rc;
	ecu_list_ctx c = {.fn = fn, .user = user};
	return store_exec(s,
	                  "SELECT " ECU_COLS " FROM ecus WHERE vin = ? ORDER BY ecu_id"
	                  " LIMIT ? OFFSET ?",
	                  p, 3, ecu_list_row, &c, NULL);
}

/* ---- history --------------------------------------------------------------------------- */

typedef struct {
	int (*fn)(const store_ecu_change *c, void *user);
	void *user;
} history_ctx;

static int history_row(const store_row *r, void *user)
{
	history_ctx *c = user;
	store_ecu_change ch;
	memset(&ch, 0, sizeof(ch));
	store__rd rd = store__rd_at(r, 0);
	store__rd_copy(&rd, ch.software_type, sizeof(ch.software_type));
	store__rd_copy(&rd, ch.from_version, sizeof(ch.from_version));
	store__rd_copy(&rd, ch.to_version, sizeof(ch.to_version));
	store__rd_i64(&rd, &ch.at_ms);
	store__rd_copy(&rd, ch.ecu_id, sizeof(ch.ecu_id));
	return rd.rc == PQ_OK ? c->fn(&ch, c->user) : rd.rc;
}

int store_ecu_history(store *s, const char *vin, const char *ecu_id, const store_page *pg,
                      int (*fn)(const store_ecu_change *c, void *user), void *user, int64_t *total)
{
	int64_t limit, offset;
	bool found = false;
	if (total)
		*total = 0;
	if (!s)
		return pq_err_set(PQ_ERR_INVAL, "store_ecu_history: no store");
	int rc = check_ecu_key(vin, ecu_id);
	if (rc != PQ_OK)
		return rc;
	rc = store__page_args(pg, &limit, &offset);
	if (rc != PQ_OK)
		return rc;
	store_val p[] = {SV_TEXT(vin), SV_TEXT(ecu_id), SV_INT(limit), SV_INT(offset)};
	rc = store__exists(s, "SELECT COUNT(*) FROM ecus WHERE vin = ? AND ecu_id = ?", p, 2,
	                   &found);
	if (rc != PQ_OK)
		return rc;
	if (!found)
		return pq_err_set(PQ_ERR_NOTFOUND, "vehicle %s has no ECU %s", vin, ecu_id);
	rc = store__count_rows(s, "ecu_history WHERE vin = ? AND ecu_id = ?", p, 2, total);
	if (rc != PQ_OK || !fn)
		return rc;
	history_ctx c = {.fn = fn, .user = user};
	return store_exec(s,
	                  "SELECT software_type, from_version, to_version, at_ms, ecu_id"
	                  " FROM ecu_history"
	                  " WHERE vin = ? AND ecu_id = ? ORDER BY seq DESC LIMIT ? OFFSET ?",
	                  p, 4, history_row, &c, NULL);
}

int store_vehicle_history(store *s, const char *vin, const store_page *pg,
                          int (*fn)(const store_ecu_change *c, void *user), void *user,
                          int64_t *total)
{
	int64_t limit, offset;
	bool found = false;
	if (total)
		*total = 0;
	if (!s)
		return pq_err_set(PQ_ERR_INVAL, "store_vehicle_history: no store");
	int rc = store__check_vin(vin);
	if (rc != PQ_OK)
		return rc;
	rc = store__page_args(pg, &limit, &offset);
	if (rc != PQ_OK)
		return rc;
	store_val p[] = {SV_TEXT(vin), SV_INT(limit), SV_INT(offset)};
	rc = store__exists(s, "SELECT COUNT(*) FROM vehicles WHERE vin = ?", p, 1, &found);
	if (rc != PQ_OK)
		return rc;
	if (!found)
		return pq_err_set(PQ_ERR_NOTFOUND, "no vehicle %s", vin);
	rc = store__count_rows(s, "ecu_history WHERE vin = ?", p, 1, total);
	if (rc != PQ_OK || !fn)
		return rc;
	history_ctx c = {.fn = fn, .user = user};
	return store_exec(s,
	                  "SELECT software_type, from_version, to_version, at_ms, ecu_id"
	                  " FROM ecu_history WHERE vin = ?"
	                  " ORDER BY at_ms DESC, ecu_id, seq DESC LIMIT ? OFFSET ?",
	                  p, 3, history_row, &c, NULL);
}

/* ---- seeded defaults -------------------------------------------------------------------- */

/* The i-th (1..STORE_SEED_ECUS) default ECU of vin. */
static void seed_ecu(store_ecu *e, const char *vin, int i, int64_t now_ms)
{
	memset(e, 0, sizeof(*e));
	snprintf(e->vin, sizeof(e->vin), "%s", vin);
	e->zone = (i - 1) / STORE_SEED_ECUS_PER_ZONE + 1;
	snprintf(e->ecu_id, sizeof(e->ecu_id), "ECU_%03d", i);
	snprintf(e->hardware_id, sizeof(e->hardware_id), "HW-%d-%03d", e->zone, i);
	snprintf(e->sw_app, sizeof(e->sw_app), "1.0.0");
	snprintf(e->sw_boot, sizeof(e->sw_boot), "1.0.0");
	snprintf(e->sw_cal, sizeof(e->sw_cal), "1.0.0");
	snprintf(e->bank, sizeof(e->bank), "A");
	e->updated_ms = now_ms;
}

int store_ecu_seed_default(store *s, const char *vin, int64_t now_ms)
{
	if (!s)
		return pq_err_set(PQ_ERR_INVAL, "store_ecu_seed_default: no store");
	int rc = store__check_vin(vin);
	if (rc != PQ_OK)
		return rc;
	rc = store__check_time(now_ms, "seed time");
	if (rc != PQ_OK)
		return rc;
	rc = store_begin(s);
	if (rc != PQ_OK)
		return rc;
	rc = store__vehicle_exists(s, vin);
	for (int i = 1; i <= STORE_SEED_ECUS && rc == PQ_OK; i++) {
		store_ecu e;
		int64_t changes = 0;
		seed_ecu(&e, vin, i, now_ms);
		rc = ecu_insert(s, &e, &changes); /* an ECU already there is left as it is */
	}
	return store__end(s, rc);
}

/* ---- VCI --------------------------------------------------------------------------------- */

static int vci_string(json_t *obj, const char *key, size_t max, char *dst, unsigned bit,
                      unsigned *present, size_t idx)
{
	json_t *v = json_object_get(obj, key);
	if (!v || json_is_null(v))
		return PQ_OK;
	if (!json_is_string(v))
		return pq_err_set(PQ_ERR_INVAL, "VCI ecus[%zu].%s: not a string", idx, key);
	size_t n = json_string_length(v);
	const char *t = json_string_value(v);
	if (n > max || memchr(t, '\0', n))
		return pq_err_set(PQ_ERR_INVAL, "VCI ecus[%zu].%s: longer than %zu bytes", idx, key,
		                  max);
	memcpy(dst, t, n);
	dst[n] = '\0';
	*present |= bit;
	return PQ_OK;
}

/* The software versions of an ECU's VCI entry (sw: its "software" member). */
static int vci_software(json_t *sw, size_t idx, ecu_patch *p)
{
	if (!sw || json_is_null(sw))
		return PQ_OK;
	if (!json_is_object(sw))
		return pq_err_set(PQ_ERR_INVAL, "VCI ecus[%zu].software: not an object", idx);
	int rc = vci_string(sw, "APP", STORE_VERSION_MAX, p->e.sw_app, ECU_APP, &p->present, idx);
	if (rc != PQ_OK)
		return rc;
	rc = vci_string(sw, "BOOT", STORE_VERSION_MAX, p->e.sw_boot, ECU_BOOT, &p->present, idx);
	if (rc != PQ_OK)
		return rc;
	return vci_string(sw, "CAL", STORE_VERSION_MAX, p->e.sw_cal, ECU_CAL, &p->present, idx);
}

static int vci_ecu(json_t *j, size_t idx, ecu_patch *p)
{
	if (!json_is_object(j))
		return pq_err_set(PQ_ERR_INVAL, "VCI ecus[%zu]: not an object", idx);
	unsigned has_id = 0;
	int rc = vci_string(j, "ecu_id", STORE_NAME_MAX, p->e.ecu_id, 1, &has_id, idx);
	if (rc != PQ_OK)
		return rc;
	if (!has_id || !p->e.ecu_id[0])
		return pq_err_set(PQ_ERR_INVAL, "VCI ecus[%zu]: no ecu_id", idx);
	rc = vci_string(j, "hardware_id", STORE_NAME_MAX, p->e.hardware_id, ECU_HW, &p->present,
	                idx);
	if (rc != PQ_OK)
		return rc;
	rc = vci_string(j, "serial", STORE_NAME_MAX, p->e.serial, ECU_SERIAL, &p->present, idx);
	if (rc != PQ_OK)
		return rc;
	rc = vci_string(j, "bank", sizeof(p->e.bank) - 1, p->e.bank, ECU_BANK, &p->present, idx);
	if (rc != PQ_OK)
		return rc;
	json_t *zone = json_object_get(j, "zone");
	if (zone && !json_is_null(zone)) {
		if (!json_is_integer(zone) || json_integer_value(zone) < 0 ||
		    json_integer_value(zone) > ZONE_MAX)
			return pq_err_set(PQ_ERR_INVAL, "VCI ecus[%zu].zone: not an integer 0..%d",
			                  idx, ZONE_MAX);
		p->e.zone = (int)json_integer_value(zone);
		p->present |= ECU_ZONE;
	}
	return vci_software(json_object_get(j, "software"), idx, p);
}

/* Parses a VCI report into patches (malloc'd, *n of them). */
static int vci_parse(const char *vin, const char *text, size_t len, int64_t when_ms,
                     ecu_patch **out, size_t *n)
{
	json_error_t jerr;
	ecu_patch *patches = NULL;
	*out = NULL;
	*n = 0;
	int rc = PQ_OK;
	json_t *root = json_loadb(text, len, JSON_REJECT_DUPLICATES, &jerr);
	if (!root && json_error_code(&jerr) == json_error_out_of_memory)
		return pq_err_set(PQ_ERR_NOMEM, "VCI: parsing %zu bytes", len);
	if (!root)
		return pq_err_set(PQ_ERR_INVAL, "VCI: not JSON: %s (at %d)", jerr.text,
		                  jerr.position);
	json_t *ecus = json_object_get(root, "ecus");
	if (!json_is_array(ecus)) {
		rc = pq_err_set(PQ_ERR_INVAL, "VCI: \"ecus\" is not an array");
		goto out;
	}
	size_t count = json_array_size(ecus);
	if (count > STORE_VCI_ECUS_MAX) {
		rc = pq_err_set(PQ_ERR_INVAL, "VCI: %zu ECUs, more than %d", count,
		                STORE_VCI_ECUS_MAX);
		goto out;
	}
	if (count > 0) {
		patches = calloc(count, sizeof(*patches));
		if (!patches) {
			rc = pq_err_set(PQ_ERR_NOMEM, "VCI: %zu ECUs", count);
			goto out;
		}
	}
	for (size_t i = 0; i < count; i++) {
		ecu_patch *p = &patches[i];
		snprintf(p->e.vin, sizeof(p->e.vin), "%s", vin);
		p->e.updated_ms = when_ms;
		rc = vci_ecu(json_array_get(ecus, i), i, p);
		if (rc != PQ_OK)
			goto out;
		for (size_t k = 0; k < i; k++)
			if (strcmp(patches[k].e.ecu_id, p->e.ecu_id) == 0) {
				rc = pq_err_set(PQ_ERR_INVAL, "VCI: ECU %s listed twice",
				                p->e.ecu_id);
				goto out;
			}
	}
	*out = patches;
	*n = count;
	patches = NULL;
out:
	free(patches);
	json_decref(root);
	return rc;
}

/* Stores the report and applies its patches, in the transaction store_vehicle_set_vci
 * opened. */
static int vci_store(store *s, const char *vin, const char *vci_json, int64_t when_ms,
                     const ecu_patch *patches, size_t n)
{
	int64_t changes = 0;
	/* First, so that on PostgreSQL the vehicle's row lock serialises its reports. */
	store_val p[] = {SV_TEXT(vci_json), SV_INT(when_ms), SV_TEXT(vin)};
	int rc = store_exec(s, "UPDATE vehicles SET last_vci = ?, last_vci_ms = ? WHERE vin = ?", p,
	                    3, NULL, NULL, &changes);
	if (rc != PQ_OK)
		return rc;
	if (changes == 0)
		return pq_err_set(PQ_ERR_NOTFOUND, "vehicle %s is not registered", vin);
	for (size_t i = 0; i < n; i++) {
		rc = ecu_apply(s, &patches[i]);
		if (rc != PQ_OK)
			return rc;
	}
	return PQ_OK;
}

int store_vehicle_set_vci(store *s, const char *vin, const char *vci_json, int64_t when_ms)
{
	ecu_patch *patches = NULL;
	size_t n = 0;
	if (!s)
		return pq_err_set(PQ_ERR_INVAL, "store_vehicle_set_vci: no store");
	int rc = store__check_vin(vin);
	if (rc != PQ_OK)
		return rc;
	rc = store__check_text(vci_json, STORE_VCI_MAX, true, "VCI");
	if (rc != PQ_OK)
		return rc;
	rc = store__check_time(when_ms, "VCI time");
	if (rc != PQ_OK)
		return rc;
	rc = vci_parse(vin, vci_json, strlen(vci_json), when_ms, &patches, &n);
	if (rc != PQ_OK)
		return rc;
	rc = store_begin(s);
	if (rc == PQ_OK)
		rc = store__end(s, vci_store(s, vin, vci_json, when_ms, patches, n));
	free(patches);
	return rc;
}

/* ---- ECUs by hardware id (campaign targeting) ------------------------------------------- */

typedef struct {
	int (*fn)(const store_ecu_match *m, void *user);
	void *user;
} match_ctx;

static int match_row(const store_row *r, void *user)
{
	match_ctx *c = user;
	store_ecu_match m;
	memset(&m, 0, sizeof(m));
	store__rd rd = store__rd_at(r, 0);
	store__rd_copy(&rd, m.vin, sizeof(m.vin));
	store__rd_copy(&rd, m.model, sizeof(m.model));
	store__rd_copy(&rd, m.ecu_id, sizeof(m.ecu_id));
	store__rd_copy(&rd, m.sw_app, sizeof(m.sw_app));
	store__rd_copy(&rd, m.sw_boot, sizeof(m.sw_boot));
	store__rd_copy(&rd, m.sw_cal, sizeof(m.sw_cal));
	return rd.rc == PQ_OK ? c->fn(&m, c->user) : rd.rc;
}

int store_ecu_by_hardware(store *s, const char *hardware_id, const char *vin,
                          int (*fn)(const store_ecu_match *m, void *user), void *user)
{
	if (!s || !fn)
		return pq_err_set(PQ_ERR_INVAL, "store_ecu_by_hardware: bad arguments");
	int rc = store__check_text(hardware_id, STORE_NAME_MAX, true, "hardware id");
	if (rc != PQ_OK)
		return rc;
	if (vin) {
		rc = store__check_vin(vin);
		if (rc != PQ_OK)
			return rc;
	}
	match_ctx c = {.fn = fn, .user = user};
	store_val p[] = {SV_TEXT(hardware_id), SV_TEXT(vin)};
	return store_exec(s,
	                  vin ? "SELECT e.vin, v.model, e.ecu_id, e.sw_app, e.sw_boot, e.sw_cal"
	                        " FROM ecus e JOIN vehicles v ON v.vin = e.vin"
	                        " WHERE e.hardware_id = ? AND e.vin = ? ORDER BY e.vin, e.ecu_id"
	                      : "SELECT e.vin, v.model, e.ecu_id, e.sw_app, e.sw_boot, e.sw_cal"
	                        " FROM ecus e JOIN vehicles v ON v.vin = e.vin"
	                        " WHERE e.hardware_id = ? ORDER BY e.vin, e.ecu_id",
	                  p, vin ? 2 : 1, match_row, &c, NULL);
}
