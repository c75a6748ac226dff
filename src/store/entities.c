/* entities.c: vehicles, ECUs, releases, API keys and the audit log, once for both backends. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>

#include "store/store_int.h"

#define SQL_MAX 1024

/* ---- input checks ------------------------------------------------------------------ */

/* Whether s[0..n) is UTF-8 (no overlong forms, surrogates or code points past U+10FFFF):
 * PostgreSQL refuses anything else, SQLite would store it; both refuse it here. */
bool store__utf8_valid(const unsigned char *s, size_t n)
{
	size_t i = 0;
	while (i < n) {
		unsigned char c = s[i];
		size_t len;
		uint32_t cp;
		if (c < 0x80) {
			i++;
			continue;
		} else if (c >= 0xc2 && c <= 0xdf) {
			len = 2;
			cp = c & 0x1f;
		} else if (c >= 0xe0 && c <= 0xef) {
			len = 3;
			cp = c & 0x0f;
		} else if (c >= 0xf0 && c <= 0xf4) {
			len = 4;
			cp = c & 0x07;
		} else {
			return false;
		}
		if (n - i < len)
			return false;
		for (size_t k = 1; k < len; k++) {
			if ((s[i + k] & 0xc0) != 0x80)
				return false;
			cp = (cp << 6) | (s[i + k] & 0x3f);
		}
		if ((len == 3 && cp < 0x800) || (len == 4 && cp < 0x10000) || cp > 0x10ffff ||
		    (cp >= 0xd800 && cp <= 0xdfff))
			return false;
		i += len;
	}
	return true;
}

/* A UTF-8 string of at most max bytes (required: at least one). Reads at most max + 1
 * bytes, so a fixed-size field without its NUL is rejected rather than overrun. */
int store__check_text(const char *v, size_t max, bool required, const char *what)
{
	if (!v)
		return pq_err_set(PQ_ERR_INVAL, "%s: missing", what);
	size_t n = strnlen(v, max + 1);
	if (n > max)
		return pq_err_set(PQ_ERR_INVAL, "%s: longer than %zu bytes", what, max);
	if (required && n == 0)
		return pq_err_set(PQ_ERR_INVAL, "%s: empty", what);
	if (!store__utf8_valid((const unsigned char *)v, n))
		return pq_err_set(PQ_ERR_INVAL, "%s: not UTF-8", what);
	return PQ_OK;
}

/* A SHA-256 as 64 lowercase hex digits (or "" when allow_empty). */
int store__check_sha256(const char *v, bool allow_empty, const char *what)
{
	if (!v)
		return pq_err_set(PQ_ERR_INVAL, "%s: missing", what);
	size_t n = strnlen(v, 65);
	if (n == 0 && allow_empty)
		return PQ_OK;
	if (n != 64)
		return pq_err_set(PQ_ERR_INVAL, "%s: not a SHA-256 (64 hex digits)", what);
	for (size_t i = 0; i < 64; i++)
		if (!((v[i] >= '0' && v[i] <= '9') || (v[i] >= 'a' && v[i] <= 'f')))
			return pq_err_set(PQ_ERR_INVAL, "%s: not lowercase hex", what);
	return PQ_OK;
}

/* Optional JSON text (NULL allowed) of at most max bytes. */
int store__check_json(const char *v, size_t max, const char *what)
{
	if (!v)
		return PQ_OK;
	size_t n = strnlen(v, max + 1);
	if (n > max)
		return pq_err_set(PQ_ERR_INVAL, "%s: longer than %zu bytes", what, max);
	json_error_t jerr;
	json_t *j = json_loadb(v, n, JSON_DECODE_ANY, &jerr);
	if (!j)
		return pq_err_set(PQ_ERR_INVAL, "%s: not JSON: %s (at %d)", what, jerr.text,
		                  jerr.position);
	json_decref(j);
	return PQ_OK;
}

static int check_time(int64_t ms, const char *what)
{
	if (ms < 0)
		return pq_err_set(PQ_ERR_INVAL, "%s: negative time", what);
	return PQ_OK;
}

int store__page_args(const store_page *pg, int64_t *limit, int64_t *offset)
{
	*limit = STORE_PAGE_DEFAULT;
	*offset = 0;
	if (!pg)
		return PQ_OK;
	if (pg->limit < 0 || pg->limit > STORE_PAGE_MAX)
		return pq_err_set(PQ_ERR_INVAL, "page limit %d outside 1..%d", pg->limit,
		                  STORE_PAGE_MAX);
	if (pg->offset < 0)
		return pq_err_set(PQ_ERR_INVAL, "negative page offset");
	if (pg->limit > 0)
		*limit = pg->limit;
	*offset = pg->offset;
	return PQ_OK;
}

/* ---- row decoding -------------------------------------------------------------------- */

const char *store__col(const store_row *r, int i)
{
	return i < r->ncols ? r->cols[i] : NULL;
}

/* Copies a column into a fixed buffer; a value that does not fit is an error (never cut). */
int store__col_copy(const store_row *r, int i, char *dst, size_t cap)
{
	const char *v = store__col(r, i);
	if (!v) {
		dst[0] = '\0';
		return PQ_OK;
	}
	size_t n = strlen(v);
	if (n >= cap)
		return pq_err_set(PQ_ERR_FORMAT, "stored value of %zu bytes exceeds %zu", n,
		                  cap - 1);
	memcpy(dst, v, n + 1);
	return PQ_OK;
}

int store__col_dup(const store_row *r, int i, char **dst)
{
	const char *v = store__col(r, i);
	*dst = NULL;
	if (!v)
		return PQ_OK;
	*dst = strdup(v);
	if (!*dst)
		return pq_err_set(PQ_ERR_NOMEM, "copying a %zu-byte value", strlen(v));
	return PQ_OK;
}

int store__col_i64(const store_row *r, int i, int64_t *out)
{
	const char *v = store__col(r, i);
	*out = 0;
	return v ? store__parse_i64(v, out) : PQ_OK;
}

int store__col_int(const store_row *r, int i, int *out)
{
	int64_t v = 0;
	int rc = store__col_i64(r, i, &v);
	if (rc == PQ_OK && (v < -2147483647 - 1 || v > 2147483647))
		rc = pq_err_set(PQ_ERR_FORMAT, "stored integer %lld out of range", (long long)v);
	*out = (int)v;
	return rc;
}

/* Builds "<head><where> <tail>" into buf. */
static int build_sql(char *buf, size_t cap, const char *head, const char *where, const char *tail)
{
	int n = snprintf(buf, cap, "%s%s%s", head, where, tail);
	if (n < 0 || (size_t)n >= cap)
		return pq_err_set(PQ_ERR_RANGE, "statement longer than %zu bytes", cap);
	return PQ_OK;
}

/* Counts rows: SELECT COUNT(*) ... into *total when total is wanted. */
static int count_rows(store *s, const char *from_where, const store_val *p, int np, int64_t *total)
{
	char sql[SQL_MAX];
	if (!total)
		return PQ_OK;
	int rc = build_sql(sql, sizeof(sql), "SELECT COUNT(*) FROM ", from_where, "");
	if (rc == PQ_OK)
		rc = store__query_int(s, sql, p, np, total);
	return rc;
}

static int exists(store *s, const char *sql, const store_val *p, int np, bool *found)
{
	int64_t n = 0;
	int rc = store__query_int(s, sql, p, np, &n);
	*found = n > 0;
	return rc;
}

/* ---- vehicles ------------------------------------------------------------------------ */

#define VEHICLE_COLS                                                                               \
	"vin, model, cert_sha256, kem_x25519_pub, kem_mlkem_pub, online, last_seen_ms, "           \
	"boot_seq, last_vci, created_ms"

void store_vehicle_clear(store_vehicle *v)
{
	if (!v)
		return;
	free(v->kem_x25519_pub);
	free(v->kem_mlkem_pub);
	free(v->last_vci);
	memset(v, 0, sizeof(*v));
}

/* Fills a zeroed v; on failure v holds nothing to free. */
static int row_vehicle(const store_row *r, store_vehicle *v)
{
	int64_t online = 0;
	int rc = store__col_copy(r, 0, v->vin, sizeof(v->vin));
	if (rc == PQ_OK)
		rc = store__col_copy(r, 1, v->model, sizeof(v->model));
	if (rc == PQ_OK)
		rc = store__col_copy(r, 2, v->cert_pem_sha256, sizeof(v->cert_pem_sha256));
	if (rc == PQ_OK)
		rc = store__col_dup(r, 3, &v->kem_x25519_pub);
	if (rc == PQ_OK)
		rc = store__col_dup(r, 4, &v->kem_mlkem_pub);
	if (rc == PQ_OK)
		rc = store__col_i64(r, 5, &online);
	if (rc == PQ_OK)
		rc = store__col_i64(r, 6, &v->last_seen_ms);
	if (rc == PQ_OK)
		rc = store__col_i64(r, 7, &v->boot_seq);
	if (rc == PQ_OK)
		rc = store__col_dup(r, 8, &v->last_vci);
	if (rc == PQ_OK)
		rc = store__col_i64(r, 9, &v->created_ms);
	v->online = online != 0;
	if (rc != PQ_OK)
		store_vehicle_clear(v);
	return rc;
}

static int check_vin(const char *vin)
{
	return store__check_text(vin, STORE_VIN_MAX, true, "VIN");
}

int store_vehicle_insert(store *s, const store_vehicle *v)
{
	if (!s || !v)
		return pq_err_set(PQ_ERR_INVAL, "store_vehicle_insert: bad arguments");
	int rc = check_vin(v->vin);
	if (rc == PQ_OK)
		rc = store__check_text(v->model, STORE_NAME_MAX, false, "model");
	if (rc == PQ_OK)
		rc = store__check_sha256(v->cert_pem_sha256, true, "certificate fingerprint");
	if (rc == PQ_OK && v->kem_x25519_pub)
		rc =
		    store__check_text(v->kem_x25519_pub, STORE_PEM_MAX, false, "X25519 public key");
	if (rc == PQ_OK && v->kem_mlkem_pub)
		rc = store__check_text(v->kem_mlkem_pub, STORE_PEM_MAX, false, "ML-KEM public key");
	if (rc == PQ_OK)
		rc = store__check_json(v->last_vci, STORE_VCI_MAX, "VCI");
	if (rc == PQ_OK)
		rc = check_time(v->last_seen_ms, "last seen");
	if (rc == PQ_OK)
		rc = check_time(v->created_ms, "created");
	if (rc != PQ_OK)
		return rc;
	store_val p[] = {SV_TEXT(v->vin),
	                 SV_TEXT(v->model),
	                 SV_TEXT(v->cert_pem_sha256),
	                 SV_TEXT(v->kem_x25519_pub),
	                 SV_TEXT(v->kem_mlkem_pub),
	                 SV_INT(v->online ? 1 : 0),
	                 SV_INT(v->last_seen_ms),
	                 SV_INT(v->boot_seq),
	                 SV_TEXT(v->last_vci),
	                 SV_INT(v->last_vci ? v->last_seen_ms : 0),
	                 SV_INT(v->created_ms)};
	rc = store_exec(s,
	                "INSERT INTO vehicles (vin, model, cert_sha256, kem_x25519_pub,"
	                " kem_mlkem_pub, online, last_seen_ms, boot_seq, last_vci, last_vci_ms,"
	                " created_ms) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
	                p, 11, NULL, NULL, NULL);
	if (rc == PQ_ERR_EXISTS)
		pq_err_wrap(rc, "vehicle %s is already registered", v->vin);
	return rc;
}

typedef struct {
	store_vehicle *out;
	bool found;
} vehicle_get_ctx;

static int vehicle_get_row(const store_row *r, void *user)
{
	vehicle_get_ctx *c = user;
	if (c->found)
		return pq_err_set(PQ_ERR_FORMAT, "more than one vehicle with one VIN");
	c->found = true;
	return row_vehicle(r, c->out);
}

int store_vehicle_get(store *s, const char *vin, store_vehicle *out)
{
	if (!s || !out)
		return pq_err_set(PQ_ERR_INVAL, "store_vehicle_get: bad arguments");
	memset(out, 0, sizeof(*out));
	int rc = check_vin(vin);
	if (rc != PQ_OK)
		return rc;
	vehicle_get_ctx c = {.out = out};
	store_val p[] = {SV_TEXT(vin)};
	rc = store_exec(s, "SELECT " VEHICLE_COLS " FROM vehicles WHERE vin = ?", p, 1,
	                vehicle_get_row, &c, NULL);
	if (rc == PQ_OK && !c.found)
		rc = pq_err_set(PQ_ERR_NOTFOUND, "vehicle %s is not registered", vin);
	if (rc != PQ_OK)
		store_vehicle_clear(out);
	return rc;
}

typedef struct {
	int (*fn)(const store_vehicle *v, void *user);
	void *user;
} vehicle_list_ctx;

static int vehicle_list_row(const store_row *r, void *user)
{
	vehicle_list_ctx *c = user;
	store_vehicle v;
	memset(&v, 0, sizeof(v));
	int rc = row_vehicle(r, &v);
	if (rc == PQ_OK)
		rc = c->fn(&v, c->user);
	store_vehicle_clear(&v);
	return rc;
}

int store_vehicle_list(store *s, const store_vehicle_filter *f, const store_page *pg,
                       int (*fn)(const store_vehicle *v, void *user), void *user, int64_t *total)
{
	char where[256] = "", sql[SQL_MAX];
	store_val p[6];
	int np = 0;
	int64_t limit, offset;
	if (total)
		*total = 0;
	if (!s)
		return pq_err_set(PQ_ERR_INVAL, "store_vehicle_list: no store");
	int rc = store__page_args(pg, &limit, &offset);
	if (rc != PQ_OK)
		return rc;
	if (f && f->model) {
		rc = store__check_text(f->model, STORE_NAME_MAX, false, "model filter");
		if (rc != PQ_OK)
			return rc;
		strncat(where, np ? " AND model = ?" : " WHERE model = ?",
		        sizeof(where) - strlen(where) - 1);
		p[np++] = SV_TEXT(f->model);
	}
	if (f && f->online >= 0) {
		if (f->online > 1)
			return pq_err_set(PQ_ERR_INVAL, "online filter %d not -1, 0 or 1",
			                  f->online);
		strncat(where, np ? " AND online = ?" : " WHERE online = ?",
		        sizeof(where) - strlen(where) - 1);
		p[np++] = SV_INT(f->online);
	} else if (f && f->online < -1) {
		return pq_err_set(PQ_ERR_INVAL, "online filter %d not -1, 0 or 1", f->online);
	}
	if (f && f->vin_prefix && f->vin_prefix[0]) {
		rc = store__check_text(f->vin_prefix, STORE_VIN_MAX, false, "VIN prefix");
		if (rc != PQ_OK)
			return rc;
		/* substr and length count characters on both backends; LIKE would not do:
		 * SQLite's ignores case and both need the pattern escaped. */
		strncat(where,
		        np ? " AND substr(vin, 1, length(?)) = ?"
		           : " WHERE substr(vin, 1, length(?)) = ?",
		        sizeof(where) - strlen(where) - 1);
		p[np++] = SV_TEXT(f->vin_prefix);
		p[np++] = SV_TEXT(f->vin_prefix);
	}
	char from[300];
	rc = build_sql(from, sizeof(from), "vehicles", where, "");
	if (rc == PQ_OK)
		rc = count_rows(s, from, p, np, total);
	if (rc != PQ_OK || !fn)
		return rc;
	rc = build_sql(sql, sizeof(sql), "SELECT " VEHICLE_COLS " FROM vehicles", where,
	               " ORDER BY vin LIMIT ? OFFSET ?");
	if (rc != PQ_OK)
		return rc;
	p[np++] = SV_INT(limit);
	p[np++] = SV_INT(offset);
	vehicle_list_ctx c = {.fn = fn, .user = user};
	return store_exec(s, sql, p, np, vehicle_list_row, &c, NULL);
}

int store_vehicle_set_online(store *s, const char *vin, bool online, int64_t when_ms,
                             int64_t boot_seq)
{
	int64_t changes = 0;
	if (!s)
		return pq_err_set(PQ_ERR_INVAL, "store_vehicle_set_online: no store");
	int rc = check_vin(vin);
	if (rc == PQ_OK)
		rc = check_time(when_ms, "last seen");
	if (rc != PQ_OK)
		return rc;
	store_val p[] = {SV_INT(online ? 1 : 0), SV_INT(when_ms), SV_INT(boot_seq), SV_TEXT(vin)};
	rc = store_exec(s,
	                "UPDATE vehicles SET online = ?, last_seen_ms = ?, boot_seq = ?"
	                " WHERE vin = ?",
	                p, 4, NULL, NULL, &changes);
	if (rc == PQ_OK && changes == 0)
		rc = pq_err_set(PQ_ERR_NOTFOUND, "vehicle %s is not registered", vin);
	return rc;
}

int store_vehicle_delete(store *s, const char *vin)
{
	int64_t changes = 0;
	if (!s)
		return pq_err_set(PQ_ERR_INVAL, "store_vehicle_delete: no store");
	int rc = check_vin(vin);
	if (rc != PQ_OK)
		return rc;
	store_val p[] = {SV_TEXT(vin)};
	rc = store_exec(s, "DELETE FROM vehicles WHERE vin = ?", p, 1, NULL, NULL, &changes);
	if (rc == PQ_OK && changes == 0)
		rc = pq_err_set(PQ_ERR_NOTFOUND, "vehicle %s is not registered", vin);
	return rc;
}

static int vehicle_exists(store *s, const char *vin)
{
	bool found = false;
	store_val p[] = {SV_TEXT(vin)};
	int rc = exists(s, "SELECT COUNT(*) FROM vehicles WHERE vin = ?", p, 1, &found);
	if (rc == PQ_OK && !found)
		rc = pq_err_set(PQ_ERR_NOTFOUND, "vehicle %s is not registered", vin);
	return rc;
}

/* ---- ECUs ---------------------------------------------------------------------------- */

#define ECU_COLS "vin, ecu_id, hardware_id, zone, sw_app, sw_boot, sw_cal, serial, bank, updated_ms"
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

static int row_ecu(const store_row *r, store_ecu *e)
{
	int rc = store__col_copy(r, 0, e->vin, sizeof(e->vin));
	if (rc == PQ_OK)
		rc = store__col_copy(r, 1, e->ecu_id, sizeof(e->ecu_id));
	if (rc == PQ_OK)
		rc = store__col_copy(r, 2, e->hardware_id, sizeof(e->hardware_id));
	if (rc == PQ_OK)
		rc = store__col_int(r, 3, &e->zone);
	if (rc == PQ_OK)
		rc = store__col_copy(r, 4, e->sw_app, sizeof(e->sw_app));
	if (rc == PQ_OK)
		rc = store__col_copy(r, 5, e->sw_boot, sizeof(e->sw_boot));
	if (rc == PQ_OK)
		rc = store__col_copy(r, 6, e->sw_cal, sizeof(e->sw_cal));
	if (rc == PQ_OK)
		rc = store__col_copy(r, 7, e->serial, sizeof(e->serial));
	if (rc == PQ_OK)
		rc = store__col_copy(r, 8, e->bank, sizeof(e->bank));
	if (rc == PQ_OK)
		rc = store__col_i64(r, 9, &e->updated_ms);
	return rc;
}

static int check_ecu(const store_ecu *e)
{
	int rc = check_vin(e->vin);
	if (rc == PQ_OK)
		rc = store__check_text(e->ecu_id, STORE_NAME_MAX, true, "ECU id");
	if (rc == PQ_OK)
		rc = store__check_text(e->hardware_id, STORE_NAME_MAX, false, "hardware id");
	if (rc == PQ_OK && (e->zone < 0 || e->zone > ZONE_MAX))
		rc = pq_err_set(PQ_ERR_INVAL, "zone %d outside 0..%d", e->zone, ZONE_MAX);
	if (rc == PQ_OK)
		rc = store__check_text(e->sw_app, STORE_VERSION_MAX, false, "APP version");
	if (rc == PQ_OK)
		rc = store__check_text(e->sw_boot, STORE_VERSION_MAX, false, "BOOT version");
	if (rc == PQ_OK)
		rc = store__check_text(e->sw_cal, STORE_VERSION_MAX, false, "CAL version");
	if (rc == PQ_OK)
		rc = store__check_text(e->serial, STORE_NAME_MAX, false, "serial");
	if (rc == PQ_OK)
		rc = store__check_text(e->bank, sizeof(e->bank) - 1, false, "bank");
	if (rc == PQ_OK)
		rc = check_time(e->updated_ms, "updated");
	return rc;
}

typedef struct {
	store_ecu *out;
	bool found;
} ecu_get_ctx;

static int ecu_get_row(const store_row *r, void *user)
{
	ecu_get_ctx *c = user;
	if (c->found)
		return pq_err_set(PQ_ERR_FORMAT, "more than one ECU with one id");
	c->found = true;
	return row_ecu(r, c->out);
}

/* Reads an ECU; inside a transaction on PostgreSQL, locks its row until the end. */
static int ecu_read(store *s, const char *vin, const char *ecu_id, bool lock, store_ecu *out,
                    bool *found)
{
	char sql[SQL_MAX];
	memset(out, 0, sizeof(*out));
	int rc = build_sql(sql, sizeof(sql), "SELECT " ECU_COLS " FROM ecus",
	                   " WHERE vin = ? AND ecu_id = ?", lock ? s->ops->for_update : "");
	if (rc != PQ_OK)
		return rc;
	ecu_get_ctx c = {.out = out};
	store_val p[] = {SV_TEXT(vin), SV_TEXT(ecu_id)};
	rc = store_exec(s, sql, p, 2, ecu_get_row, &c, NULL);
	*found = c.found;
	return rc;
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
	if (rc == PQ_OK)
		rc = history_add(s, e, "APP", old->sw_app, e->sw_app);
	if (rc == PQ_OK)
		rc = history_add(s, e, "BOOT", old->sw_boot, e->sw_boot);
	if (rc == PQ_OK)
		rc = history_add(s, e, "CAL", old->sw_cal, e->sw_cal);
	return rc;
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
	rc = vehicle_exists(s, e->vin);
	if (rc == PQ_OK)
		rc = ecu_apply(s, &p);
	if (rc == PQ_OK)
		rc = store_commit(s);
	else
		store_rollback(s);
	return rc;
}

int store_ecu_get(store *s, const char *vin, const char *ecu_id, store_ecu *out)
{
	bool found = false;
	if (!s || !out)
		return pq_err_set(PQ_ERR_INVAL, "store_ecu_get: bad arguments");
	memset(out, 0, sizeof(*out));
	int rc = check_vin(vin);
	if (rc == PQ_OK)
		rc = store__check_text(ecu_id, STORE_NAME_MAX, true, "ECU id");
	if (rc == PQ_OK)
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
	int rc = row_ecu(r, &e);
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
	int rc = check_vin(vin);
	if (rc == PQ_OK)
		rc = store__page_args(pg, &limit, &offset);
	if (rc == PQ_OK)
		rc = vehicle_exists(s, vin);
	store_val p[] = {SV_TEXT(vin), SV_INT(0), SV_INT(0)};
	if (rc == PQ_OK)
		rc = count_rows(s, "ecus WHERE vin = ?", p, 1, total);
	if (rc != PQ_OK || !fn)
		return rc;
	p[1] = SV_INT(limit);
	p[2] = SV_INT(offset);
	ecu_list_ctx c = {.fn = fn, .user = user};
	return store_exec(s,
	                  "SELECT " ECU_COLS " FROM ecus WHERE vin = ? ORDER BY ecu_id"
	                  " LIMIT ? OFFSET ?",
	                  p, 3, ecu_list_row, &c, NULL);
}

typedef struct {
	int (*fn)(const store_ecu_change *c, void *user);
	void *user;
} history_ctx;

static int history_row(const store_row *r, void *user)
{
	history_ctx *c = user;
	store_ecu_change ch;
	memset(&ch, 0, sizeof(ch));
	int rc = store__col_copy(r, 0, ch.software_type, sizeof(ch.software_type));
	if (rc == PQ_OK)
		rc = store__col_copy(r, 1, ch.from_version, sizeof(ch.from_version));
	if (rc == PQ_OK)
		rc = store__col_copy(r, 2, ch.to_version, sizeof(ch.to_version));
	if (rc == PQ_OK)
		rc = store__col_i64(r, 3, &ch.at_ms);
	if (rc == PQ_OK)
		rc = store__col_copy(r, 4, ch.ecu_id, sizeof(ch.ecu_id));
	return rc == PQ_OK ? c->fn(&ch, c->user) : rc;
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
	int rc = check_vin(vin);
	if (rc == PQ_OK)
		rc = store__check_text(ecu_id, STORE_NAME_MAX, true, "ECU id");
	if (rc == PQ_OK)
		rc = store__page_args(pg, &limit, &offset);
	store_val p[] = {SV_TEXT(vin), SV_TEXT(ecu_id), SV_INT(0), SV_INT(0)};
	if (rc == PQ_OK)
		rc = exists(s, "SELECT COUNT(*) FROM ecus WHERE vin = ? AND ecu_id = ?", p, 2,
		            &found);
	if (rc == PQ_OK && !found)
		rc = pq_err_set(PQ_ERR_NOTFOUND, "vehicle %s has no ECU %s", vin, ecu_id);
	if (rc == PQ_OK)
		rc = count_rows(s, "ecu_history WHERE vin = ? AND ecu_id = ?", p, 2, total);
	if (rc != PQ_OK || !fn)
		return rc;
	p[2] = SV_INT(limit);
	p[3] = SV_INT(offset);
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
	int rc = check_vin(vin);
	if (rc == PQ_OK)
		rc = store__page_args(pg, &limit, &offset);
	store_val p[] = {SV_TEXT(vin), SV_INT(0), SV_INT(0)};
	if (rc == PQ_OK)
		rc = exists(s, "SELECT COUNT(*) FROM vehicles WHERE vin = ?", p, 1, &found);
	if (rc == PQ_OK && !found)
		rc = pq_err_set(PQ_ERR_NOTFOUND, "no vehicle %s", vin);
	if (rc == PQ_OK)
		rc = count_rows(s, "ecu_history WHERE vin = ?", p, 1, total);
	if (rc != PQ_OK || !fn)
		return rc;
	p[1] = SV_INT(limit);
	p[2] = SV_INT(offset);
	history_ctx c = {.fn = fn, .user = user};
	return store_exec(s,
	                  "SELECT software_type, from_version, to_version, at_ms, ecu_id"
	                  " FROM ecu_history WHERE vin = ?"
	                  " ORDER BY at_ms DESC, ecu_id, seq DESC LIMIT ? OFFSET ?",
	                  p, 3, history_row, &c, NULL);
}

int store_ecu_seed_default(store *s, const char *vin, int64_t now_ms)
{
	if (!s)
		return pq_err_set(PQ_ERR_INVAL, "store_ecu_seed_default: no store");
	int rc = check_vin(vin);
	if (rc == PQ_OK)
		rc = check_time(now_ms, "seed time");
	if (rc != PQ_OK)
		return rc;
	rc = store_begin(s);
	if (rc != PQ_OK)
		return rc;
	rc = vehicle_exists(s, vin);
	for (int i = 1; i <= STORE_SEED_ECUS && rc == PQ_OK; i++) {
		store_ecu e;
		int64_t changes = 0;
		memset(&e, 0, sizeof(e));
		snprintf(e.vin, sizeof(e.vin), "%s", vin);
		e.zone = (i - 1) / STORE_SEED_ECUS_PER_ZONE + 1;
		snprintf(e.ecu_id, sizeof(e.ecu_id), "ECU_%03d", i);
		snprintf(e.hardware_id, sizeof(e.hardware_id), "HW-%d-%03d", e.zone, i);
		snprintf(e.sw_app, sizeof(e.sw_app), "1.0.0");
		snprintf(e.sw_boot, sizeof(e.sw_boot), "1.0.0");
		snprintf(e.sw_cal, sizeof(e.sw_cal), "1.0.0");
		snprintf(e.bank, sizeof(e.bank), "A");
		e.updated_ms = now_ms;
		rc = ecu_insert(s, &e, &changes); /* an ECU already there is left as it is */
	}
	if (rc == PQ_OK)
		rc = store_commit(s);
	else
		store_rollback(s);
	return rc;
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
	if (rc == PQ_OK)
		rc = vci_string(j, "serial", STORE_NAME_MAX, p->e.serial, ECU_SERIAL, &p->present,
		                idx);
	if (rc == PQ_OK)
		rc = vci_string(j, "bank", sizeof(p->e.bank) - 1, p->e.bank, ECU_BANK, &p->present,
		                idx);
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
	json_t *sw = json_object_get(j, "software");
	if (sw && !json_is_null(sw)) {
		if (!json_is_object(sw))
			return pq_err_set(PQ_ERR_INVAL, "VCI ecus[%zu].software: not an object",
			                  idx);
		rc = vci_string(sw, "APP", STORE_VERSION_MAX, p->e.sw_app, ECU_APP, &p->present,
		                idx);
		if (rc == PQ_OK)
			rc = vci_string(sw, "BOOT", STORE_VERSION_MAX, p->e.sw_boot, ECU_BOOT,
			                &p->present, idx);
		if (rc == PQ_OK)
			rc = vci_string(sw, "CAL", STORE_VERSION_MAX, p->e.sw_cal, ECU_CAL,
			                &p->present, idx);
	}
	return rc;
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

int store_vehicle_set_vci(store *s, const char *vin, const char *vci_json, int64_t when_ms)
{
	ecu_patch *patches = NULL;
	size_t n = 0;
	int64_t changes = 0;
	if (!s)
		return pq_err_set(PQ_ERR_INVAL, "store_vehicle_set_vci: no store");
	int rc = check_vin(vin);
	if (rc == PQ_OK)
		rc = store__check_text(vci_json, STORE_VCI_MAX, true, "VCI");
	if (rc == PQ_OK)
		rc = check_time(when_ms, "VCI time");
	if (rc == PQ_OK)
		rc = vci_parse(vin, vci_json, strlen(vci_json), when_ms, &patches, &n);
	if (rc != PQ_OK)
		return rc;
	rc = store_begin(s);
	if (rc != PQ_OK)
		goto out;
	/* First, so that on PostgreSQL the vehicle's row lock serialises its reports. */
	store_val p[] = {SV_TEXT(vci_json), SV_INT(when_ms), SV_TEXT(vin)};
	rc = store_exec(s, "UPDATE vehicles SET last_vci = ?, last_vci_ms = ? WHERE vin = ?", p, 3,
	                NULL, NULL, &changes);
	if (rc == PQ_OK && changes == 0)
		rc = pq_err_set(PQ_ERR_NOTFOUND, "vehicle %s is not registered", vin);
	for (size_t i = 0; i < n && rc == PQ_OK; i++)
		rc = ecu_apply(s, &patches[i]);
	if (rc == PQ_OK)
		rc = store_commit(s);
	else
		store_rollback(s);
out:
	free(patches);
	return rc;
}

/* ---- releases ------------------------------------------------------------------------ */

#define RELEASE_COLS                                                                               \
	"id, title, notes, version, hardware_id, software_type, ecu_id, file_sha256, "             \
	"file_size, image_sha256, image_size, delta_base_version, delta_file_sha256, "             \
	"delta_file_size, delta_base_sha256, created_ms, created_by"

void store_release_clear(store_release *r)
{
	if (!r)
		return;
	free(r->notes);
	memset(r, 0, sizeof(*r));
}

static int row_release(const store_row *row, store_release *r)
{
	int rc = store__col_copy(row, 0, r->id, sizeof(r->id));
	if (rc == PQ_OK)
		rc = store__col_copy(row, 1, r->title, sizeof(r->title));
	if (rc == PQ_OK)
		rc = store__col_dup(row, 2, &r->notes);
	if (rc == PQ_OK)
		rc = store__col_copy(row, 3, r->version, sizeof(r->version));
	if (rc == PQ_OK)
		rc = store__col_copy(row, 4, r->hardware_id, sizeof(r->hardware_id));
	if (rc == PQ_OK)
		rc = store__col_copy(row, 5, r->software_type, sizeof(r->software_type));
	if (rc == PQ_OK)
		rc = store__col_copy(row, 6, r->ecu_id, sizeof(r->ecu_id));
	if (rc == PQ_OK)
		rc = store__col_copy(row, 7, r->file_sha256, sizeof(r->file_sha256));
	if (rc == PQ_OK)
		rc = store__col_i64(row, 8, &r->file_size);
	if (rc == PQ_OK)
		rc = store__col_copy(row, 9, r->image_sha256, sizeof(r->image_sha256));
	if (rc == PQ_OK)
		rc = store__col_i64(row, 10, &r->image_size);
	if (rc == PQ_OK)
		rc = store__col_copy(row, 11, r->delta_base_version, sizeof(r->delta_base_version));
	if (rc == PQ_OK)
		rc = store__col_copy(row, 12, r->delta_file_sha256, sizeof(r->delta_file_sha256));
	if (rc == PQ_OK)
		rc = store__col_i64(row, 13, &r->delta_file_size);
	if (rc == PQ_OK)
		rc = store__col_copy(row, 14, r->delta_base_sha256, sizeof(r->delta_base_sha256));
	if (rc == PQ_OK)
		rc = store__col_i64(row, 15, &r->created_ms);
	if (rc == PQ_OK)
		rc = store__col_copy(row, 16, r->created_by, sizeof(r->created_by));
	if (rc != PQ_OK)
		store_release_clear(r);
	return rc;
}

static int check_release(const store_release *r)
{
	int rc = store__check_text(r->id, STORE_ID_MAX, true, "release id");
	if (rc == PQ_OK)
		rc = store__check_text(r->title, STORE_TITLE_MAX, true, "title");
	if (rc == PQ_OK && r->notes)
		rc = store__check_text(r->notes, STORE_TEXT_MAX, false, "notes");
	if (rc == PQ_OK)
		rc = store__check_text(r->version, STORE_VERSION_MAX, true, "version");
	if (rc == PQ_OK)
		rc = store__check_text(r->hardware_id, STORE_NAME_MAX, true, "hardware id");
	if (rc == PQ_OK)
		rc = store__check_text(r->software_type, sizeof(r->software_type) - 1, true,
		                       "software type");
	if (rc == PQ_OK)
		rc = store__check_text(r->ecu_id, STORE_NAME_MAX, true, "ECU id");
	if (rc == PQ_OK)
		rc = store__check_sha256(r->file_sha256, false, "package SHA-256");
	if (rc == PQ_OK && r->file_size <= 0)
		rc = pq_err_set(PQ_ERR_INVAL, "package size %lld", (long long)r->file_size);
	if (rc == PQ_OK)
		rc = store__check_sha256(r->image_sha256, false, "image SHA-256");
	if (rc == PQ_OK && r->image_size < 0)
		rc = pq_err_set(PQ_ERR_INVAL, "image size %lld", (long long)r->image_size);
	if (rc == PQ_OK)
		rc = store__check_text(r->delta_base_version, STORE_VERSION_MAX, false,
		                       "delta base");
	if (rc != PQ_OK)
		return rc;
	bool delta = r->delta_base_version[0] != '\0';
	rc = store__check_sha256(r->delta_file_sha256, !delta, "delta SHA-256");
	if (rc == PQ_OK)
		rc = store__check_sha256(r->delta_base_sha256, !delta, "delta base SHA-256");
	if (rc == PQ_OK && delta && r->delta_file_size <= 0)
		rc = pq_err_set(PQ_ERR_INVAL, "delta size %lld", (long long)r->delta_file_size);
	if (rc == PQ_OK && !delta &&
	    (r->delta_file_sha256[0] || r->delta_base_sha256[0] || r->delta_file_size != 0))
		rc = pq_err_set(PQ_ERR_INVAL, "delta fields set without a delta base version");
	if (rc == PQ_OK)
		rc = check_time(r->created_ms, "created");
	if (rc == PQ_OK)
		rc = store__check_text(r->created_by, STORE_NAME_MAX, false, "created by");
	return rc;
}

int store_release_insert(store *s, const store_release *r)
{
	if (!s || !r)
		return pq_err_set(PQ_ERR_INVAL, "store_release_insert: bad arguments");
	int rc = check_release(r);
	if (rc != PQ_OK)
		return rc;
	store_val p[] = {SV_TEXT(r->id),
	                 SV_TEXT(r->title),
	                 SV_TEXT(r->notes),
	                 SV_TEXT(r->version),
	                 SV_TEXT(r->hardware_id),
	                 SV_TEXT(r->software_type),
	                 SV_TEXT(r->ecu_id),
	                 SV_TEXT(r->file_sha256),
	                 SV_INT(r->file_size),
	                 SV_TEXT(r->image_sha256),
	                 SV_INT(r->image_size),
	                 SV_TEXT(r->delta_base_version),
	                 SV_TEXT(r->delta_file_sha256),
	                 SV_INT(r->delta_file_size),
	                 SV_TEXT(r->delta_base_sha256),
	                 SV_INT(r->created_ms),
	                 SV_TEXT(r->created_by)};
	rc = store_exec(s,
	                "INSERT INTO releases (" RELEASE_COLS ") VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?,"
	                " ?, ?, ?, ?, ?, ?, ?, ?)",
	                p, 17, NULL, NULL, NULL);
	if (rc == PQ_ERR_EXISTS)
		pq_err_wrap(rc, "release %s, or %s %s %s for %s, exists already", r->id, r->ecu_id,
		            r->software_type, r->version, r->hardware_id);
	return rc;
}

typedef struct {
	store_release *out;
	bool found;
} release_get_ctx;

static int release_get_row(const store_row *r, void *user)
{
	release_get_ctx *c = user;
	if (c->found)
		return pq_err_set(PQ_ERR_FORMAT, "more than one release with one id");
	c->found = true;
	return row_release(r, c->out);
}

int store_release_get(store *s, const char *id, store_release *out)
{
	if (!s || !out)
		return pq_err_set(PQ_ERR_INVAL, "store_release_get: bad arguments");
	memset(out, 0, sizeof(*out));
	int rc = store__check_text(id, STORE_ID_MAX, true, "release id");
	if (rc != PQ_OK)
		return rc;
	release_get_ctx c = {.out = out};
	store_val p[] = {SV_TEXT(id)};
	rc = store_exec(s, "SELECT " RELEASE_COLS " FROM releases WHERE id = ?", p, 1,
	                release_get_row, &c, NULL);
	if (rc == PQ_OK && !c.found)
		rc = pq_err_set(PQ_ERR_NOTFOUND, "no release %s", id);
	if (rc != PQ_OK)
		store_release_clear(out);
	return rc;
}

typedef struct {
	int (*fn)(const store_release *r, void *user);
	void *user;
} release_list_ctx;

static int release_list_row(const store_row *row, void *user)
{
	release_list_ctx *c = user;
	store_release r;
	memset(&r, 0, sizeof(r));
	int rc = row_release(row, &r);
	if (rc == PQ_OK)
		rc = c->fn(&r, c->user);
	store_release_clear(&r);
	return rc;
}

int store_release_list(store *s, const char *hardware_id, const store_page *pg,
                       int (*fn)(const store_release *r, void *user), void *user, int64_t *total)
{
	int64_t limit, offset;
	char sql[SQL_MAX];
	store_val p[3];
	int np = 0;
	if (total)
		*total = 0;
	if (!s)
		return pq_err_set(PQ_ERR_INVAL, "store_release_list: no store");
	int rc = store__page_args(pg, &limit, &offset);
	if (rc == PQ_OK && hardware_id)
		rc = store__check_text(hardware_id, STORE_NAME_MAX, false, "hardware id");
	if (rc != PQ_OK)
		return rc;
	const char *where = hardware_id ? " WHERE hardware_id = ?" : "";
	if (hardware_id)
		p[np++] = SV_TEXT(hardware_id);
	rc = build_sql(sql, sizeof(sql), "releases", where, "");
	if (rc == PQ_OK)
		rc = count_rows(s, sql, p, np, total);
	if (rc == PQ_OK)
		rc = build_sql(sql, sizeof(sql), "SELECT " RELEASE_COLS " FROM releases", where,
		               " ORDER BY created_ms DESC, id LIMIT ? OFFSET ?");
	if (rc != PQ_OK || !fn)
		return rc;
	p[np++] = SV_INT(limit);
	p[np++] = SV_INT(offset);
	release_list_ctx c = {.fn = fn, .user = user};
	return store_exec(s, sql, p, np, release_list_row, &c, NULL);
}

int store_release_delete(store *s, const char *id)
{
	int64_t used = 0, changes = 0;
	if (!s)
		return pq_err_set(PQ_ERR_INVAL, "store_release_delete: no store");
	int rc = store__check_text(id, STORE_ID_MAX, true, "release id");
	if (rc != PQ_OK)
		return rc;
	rc = store_begin(s);
	if (rc != PQ_OK)
		return rc;
	store_val p[] = {SV_TEXT(id)};
	/* campaign_releases has no cascade: the foreign key refuses the delete anyway; this
	 * check names the reason. */
	rc = store__query_int(s, "SELECT COUNT(*) FROM campaign_releases WHERE release_id = ?", p,
	                      1, &used);
	if (rc == PQ_OK && used > 0)
		rc = pq_err_set(PQ_ERR_EXISTS, "release %s is part of %lld campaign(s)", id,
		                (long long)used);
	if (rc == PQ_OK)
		rc = store_exec(s, "DELETE FROM releases WHERE id = ?", p, 1, NULL, NULL, &changes);
	if (rc == PQ_OK && changes == 0)
		rc = pq_err_set(PQ_ERR_NOTFOUND, "no release %s", id);
	if (rc == PQ_OK)
		rc = store_commit(s);
	else
		store_rollback(s);
	return rc;
}

int store_file_known(store *s, const char *sha256, bool *known)
{
	if (!s || !known)
		return pq_err_set(PQ_ERR_INVAL, "store_file_known: bad arguments");
	*known = false;
	int rc = store__check_sha256(sha256, false, "file SHA-256");
	if (rc != PQ_OK)
		return rc;
	store_val p[] = {SV_TEXT(sha256), SV_TEXT(sha256)};
	return exists(s,
	              "SELECT COUNT(*) FROM (SELECT 1 AS one FROM releases WHERE file_sha256 = ?"
	              " OR delta_file_sha256 = ? LIMIT 1) AS hit",
	              p, 2, known);
}

/* ---- API keys ------------------------------------------------------------------------ */

static const char *const role_names[] = {"viewer", "operator", "admin"};

const char *store_role_name(store_role r)
{
	if ((int)r < 0 || (size_t)r >= sizeof(role_names) / sizeof(role_names[0]))
		return "?";
	return role_names[r];
}

int store_role_parse(const char *s, store_role *out)
{
	if (!s || !out)
		return pq_err_set(PQ_ERR_INVAL, "store_role_parse: bad arguments");
	for (size_t i = 0; i < sizeof(role_names) / sizeof(role_names[0]); i++)
		if (strcmp(s, role_names[i]) == 0) {
			*out = (store_role)i;
			return PQ_OK;
		}
	return pq_err_set(PQ_ERR_INVAL, "unknown role '%.32s' (viewer, operator, admin)", s);
}

#define APIKEY_COLS "id, name, role, key_sha256, created_ms, revoked_ms"

static int row_apikey(const store_row *r, store_apikey *k)
{
	int rc = store__col_copy(r, 0, k->id, sizeof(k->id));
	if (rc == PQ_OK)
		rc = store__col_copy(r, 1, k->name, sizeof(k->name));
	if (rc == PQ_OK) {
		const char *role = store__col(r, 2);
		rc = store_role_parse(role ? role : "", &k->role);
		if (rc != PQ_OK)
			rc = pq_err_set(PQ_ERR_FORMAT, "stored role '%.32s' unknown",
			                role ? role : "");
	}
	if (rc == PQ_OK)
		rc = store__col_copy(r, 3, k->key_sha256, sizeof(k->key_sha256));
	if (rc == PQ_OK)
		rc = store__col_i64(r, 4, &k->created_ms);
	if (rc == PQ_OK)
		rc = store__col_i64(r, 5, &k->revoked_ms);
	return rc;
}

int store_apikey_insert(store *s, const store_apikey *k)
{
	if (!s || !k)
		return pq_err_set(PQ_ERR_INVAL, "store_apikey_insert: bad arguments");
	int rc = store__check_text(k->id, STORE_ID_MAX, true, "API key id");
	if (rc == PQ_OK)
		rc = store__check_text(k->name, STORE_NAME_MAX, true, "API key name");
	if (rc == PQ_OK && ((int)k->role < 0 || k->role > STORE_ROLE_ADMIN))
		rc = pq_err_set(PQ_ERR_INVAL, "API key role %d", (int)k->role);
	if (rc == PQ_OK)
		rc = store__check_sha256(k->key_sha256, false, "API key hash");
	if (rc == PQ_OK)
		rc = check_time(k->created_ms, "created");
	if (rc == PQ_OK)
		rc = check_time(k->revoked_ms, "revoked");
	if (rc != PQ_OK)
		return rc;
	store_val p[] = {
	    SV_TEXT(k->id),         SV_TEXT(k->name),      SV_TEXT(store_role_name(k->role)),
	    SV_TEXT(k->key_sha256), SV_INT(k->created_ms), SV_INT(k->revoked_ms)};
	rc = store_exec(s, "INSERT INTO api_keys (" APIKEY_COLS ") VALUES (?, ?, ?, ?, ?, ?)", p, 6,
	                NULL, NULL, NULL);
	if (rc == PQ_ERR_EXISTS)
		pq_err_wrap(rc, "API key %s, a valid key named %s, or its secret exists already",
		            k->id, k->name);
	return rc;
}

typedef struct {
	store_apikey *out;
	bool found;
} apikey_get_ctx;

static int apikey_get_row(const store_row *r, void *user)
{
	apikey_get_ctx *c = user;
	if (c->found)
		return pq_err_set(PQ_ERR_FORMAT, "more than one API key with one hash");
	c->found = true;
	return row_apikey(r, c->out);
}

int store_apikey_find(store *s, const char *key_sha256, store_apikey *out)
{
	if (!s || !out)
		return pq_err_set(PQ_ERR_INVAL, "store_apikey_find: bad arguments");
	memset(out, 0, sizeof(*out));
	int rc = store__check_sha256(key_sha256, false, "API key hash");
	if (rc != PQ_OK)
		return rc;
	apikey_get_ctx c = {.out = out};
	store_val p[] = {SV_TEXT(key_sha256)};
	rc = store_exec(s,
	                "SELECT " APIKEY_COLS " FROM api_keys WHERE key_sha256 = ?"
	                " AND revoked_ms = 0",
	                p, 1, apikey_get_row, &c, NULL);
	if (rc == PQ_OK && !c.found)
		rc = pq_err_set(PQ_ERR_NOTFOUND, "no valid API key with that secret");
	if (rc != PQ_OK)
		memset(out, 0, sizeof(*out));
	return rc;
}

int store_apikey_revoke(store *s, const char *id, int64_t when_ms)
{
	int64_t changes = 0;
	bool found = false;
	if (!s)
		return pq_err_set(PQ_ERR_INVAL, "store_apikey_revoke: no store");
	int rc = store__check_text(id, STORE_ID_MAX, true, "API key id");
	if (rc == PQ_OK && when_ms <= 0)
		rc = pq_err_set(PQ_ERR_INVAL, "revocation time must be positive");
	if (rc != PQ_OK)
		return rc;
	store_val p[] = {SV_INT(when_ms), SV_TEXT(id)};
	rc = store_exec(s, "UPDATE api_keys SET revoked_ms = ? WHERE id = ? AND revoked_ms = 0", p,
	                2, NULL, NULL, &changes);
	if (rc != PQ_OK || changes > 0)
		return rc;
	/* revoked already (the first time stays) or unknown */
	rc = exists(s, "SELECT COUNT(*) FROM api_keys WHERE id = ?", &p[1], 1, &found);
	if (rc == PQ_OK && !found)
		rc = pq_err_set(PQ_ERR_NOTFOUND, "no API key %s", id);
	return rc;
}

typedef struct {
	int (*fn)(const store_apikey *k, void *user);
	void *user;
} apikey_list_ctx;

static int apikey_list_row(const store_row *r, void *user)
{
	apikey_list_ctx *c = user;
	store_apikey k;
	memset(&k, 0, sizeof(k));
	int rc = row_apikey(r, &k);
	return rc == PQ_OK ? c->fn(&k, c->user) : rc;
}

int store_apikey_list(store *s, int (*fn)(const store_apikey *k, void *user), void *user)
{
	if (!s || !fn)
		return pq_err_set(PQ_ERR_INVAL, "store_apikey_list: bad arguments");
	apikey_list_ctx c = {.fn = fn, .user = user};
	return store_exec(s, "SELECT " APIKEY_COLS " FROM api_keys ORDER BY name, created_ms, id",
	                  NULL, 0, apikey_list_row, &c, NULL);
}

/* ---- audit log ----------------------------------------------------------------------- */

int store_audit_append(store *s, const char *actor, const char *action, const char *target,
                       const char *detail_json, int64_t at_ms)
{
	if (!s)
		return pq_err_set(PQ_ERR_INVAL, "store_audit_append: no store");
	if (!target)
		target = "";
	int rc = store__check_text(actor, STORE_ACTOR_MAX, true, "audit actor");
	if (rc == PQ_OK)
		rc = store__check_text(action, STORE_NAME_MAX, true, "audit action");
	if (rc == PQ_OK)
		rc = store__check_text(target, STORE_TARGET_MAX, false, "audit target");
	if (rc == PQ_OK)
		rc = store__check_json(detail_json, STORE_TEXT_MAX, "audit detail");
	if (rc == PQ_OK)
		rc = check_time(at_ms, "audit time");
	if (rc != PQ_OK)
		return rc;
	store_val p[] = {SV_INT(at_ms), SV_TEXT(actor), SV_TEXT(action), SV_TEXT(target),
	                 SV_TEXT(detail_json)};
	return store_exec(s,
	                  "INSERT INTO audit_log (at_ms, actor, action, target, detail)"
	                  " VALUES (?, ?, ?, ?, ?)",
	                  p, 5, NULL, NULL, NULL);
}

typedef struct {
	int (*fn)(const store_audit *a, void *user);
	void *user;
} audit_list_ctx;

static int audit_row(const store_row *r, void *user)
{
	audit_list_ctx *c = user;
	store_audit a;
	memset(&a, 0, sizeof(a));
	int rc = store__col_i64(r, 0, &a.id);
	if (rc == PQ_OK)
		rc = store__col_i64(r, 1, &a.at_ms);
	if (rc == PQ_OK)
		rc = store__col_copy(r, 2, a.actor, sizeof(a.actor));
	if (rc == PQ_OK)
		rc = store__col_copy(r, 3, a.action, sizeof(a.action));
	if (rc == PQ_OK)
		rc = store__col_copy(r, 4, a.target, sizeof(a.target));
	if (rc == PQ_OK)
		rc = store__col_dup(r, 5, &a.detail);
	if (rc == PQ_OK)
		rc = c->fn(&a, c->user);
	free(a.detail);
	return rc;
}

int store_audit_list(store *s, const store_page *pg, int (*fn)(const store_audit *a, void *user),
                     void *user, int64_t *total)
{
	int64_t limit, offset;
	if (total)
		*total = 0;
	if (!s)
		return pq_err_set(PQ_ERR_INVAL, "store_audit_list: no store");
	int rc = store__page_args(pg, &limit, &offset);
	if (rc == PQ_OK)
		rc = count_rows(s, "audit_log", NULL, 0, total);
	if (rc != PQ_OK || !fn)
		return rc;
	store_val p[] = {SV_INT(limit), SV_INT(offset)};
	audit_list_ctx c = {.fn = fn, .user = user};
	return store_exec(s,
	                  "SELECT id, at_ms, actor, action, target, detail FROM audit_log"
	                  " ORDER BY id DESC LIMIT ? OFFSET ?",
	                  p, 2, audit_row, &c, NULL);
}
