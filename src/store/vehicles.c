/* vehicles.c: registered vehicles (store.h), once for both backends. */
#include <stdlib.h>
#include <string.h>

#include "core/buf.h"
#include "store/fleet.h"
#include "store/store_int.h"

#define SQL_MAX 2048
/* model, online, VIN prefix (4: range and substr), ECU id and version */
#define VEHICLE_FILTER_PARAMS 8

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
static int row_vehicle(const store_row *r, void *dst)
{
	store_vehicle *v = dst;
	int64_t online = 0;
	store__rd rd = store__rd_at(r, 0);
	store__rd_copy(&rd, v->vin, sizeof(v->vin));
	store__rd_copy(&rd, v->model, sizeof(v->model));
	store__rd_copy(&rd, v->cert_pem_sha256, sizeof(v->cert_pem_sha256));
	store__rd_dup(&rd, &v->kem_x25519_pub);
	store__rd_dup(&rd, &v->kem_mlkem_pub);
	store__rd_i64(&rd, &online);
	store__rd_i64(&rd, &v->last_seen_ms);
	store__rd_i64(&rd, &v->boot_seq);
	store__rd_dup(&rd, &v->last_vci);
	store__rd_i64(&rd, &v->created_ms);
	v->online = online != 0;
	if (rd.rc != PQ_OK)
		store_vehicle_clear(v);
	return rd.rc;
}

static int check_vehicle(const store_vehicle *v)
{
	int rc = store__check_vin(v->vin);
	if (rc != PQ_OK)
		return rc;
	rc = store__check_text(v->model, STORE_NAME_MAX, false, "model");
	if (rc != PQ_OK)
		return rc;
	rc = store__check_sha256(v->cert_pem_sha256, true, "certificate fingerprint");
	if (rc != PQ_OK)
		return rc;
	if (v->kem_x25519_pub) {
		rc =
		    store__check_text(v->kem_x25519_pub, STORE_PEM_MAX, false, "X25519 public key");
		if (rc != PQ_OK)
			return rc;
	}
	if (v->kem_mlkem_pub) {
		rc = store__check_text(v->kem_mlkem_pub, STORE_PEM_MAX, false, "ML-KEM public key");
		if (rc != PQ_OK)
			return rc;
	}
	rc = store__check_json(v->last_vci, STORE_VCI_MAX, "VCI");
	if (rc != PQ_OK)
		return rc;
	rc = store__check_time(v->last_seen_ms, "last seen");
	if (rc != PQ_OK)
		return rc;
	return store__check_time(v->created_ms, "created");
}

int store_vehicle_insert(store *s, const store_vehicle *v)
{
	if (!s || !v)
		return pq_err_set(PQ_ERR_INVAL, "store_vehicle_insert: bad arguments");
	int rc = check_vehicle(v);
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

int store_vehicle_get(store *s, const char *vin, store_vehicle *out)
{
	if (!s || !out)
		return pq_err_set(PQ_ERR_INVAL, "store_vehicle_get: bad arguments");
	memset(out, 0, sizeof(*out));
	int rc = store__check_vin(vin);
	if (rc != PQ_OK)
		return rc;
	bool found = false;
	store_val p[] = {SV_TEXT(vin)};
	rc = store__get_one(s, "SELECT " VEHICLE_COLS " FROM vehicles WHERE vin = ?", p, 1,
	                    row_vehicle, out, "vehicle", &found);
	if (rc == PQ_OK && !found)
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

/* The WHERE clause of a vehicle list (" WHERE ... AND ...", or "") and its parameters. */
typedef struct {
	char where[512];
	store_val p[VEHICLE_FILTER_PARAMS + 2]; /* + LIMIT and OFFSET */
	int np;
	char upper[STORE_VIN_MAX + 1]; /* the end of a VIN prefix's range */
} vehicle_where;

static void where_add(vehicle_where *w, pq_buf *b, const char *clause)
{
	pq_buf_str(b, w->np ? " AND " : " WHERE ");
	pq_buf_str(b, clause);
}

/* vin_prefix: substr and length count characters on both backends; LIKE would not do
 * (SQLite's ignores case and both need the pattern escaped). An ASCII prefix also bounds
 * the primary key's range (vin >= prefix AND vin < prefix with its last byte + 1, byte
 * order on both backends), so the index finds the page and the count. */
static int where_prefix(vehicle_where *w, pq_buf *b, const char *prefix)
{
	int rc = store__check_text(prefix, STORE_VIN_MAX, false, "VIN prefix");
	if (rc != PQ_OK)
		return rc;
	size_t n = strlen(prefix);
	bool ascii = true;
	for (size_t i = 0; i < n; i++)
		ascii = ascii && (unsigned char)prefix[i] < 0x7f;
	if (ascii) {
		memcpy(w->upper, prefix, n + 1);
		w->upper[n - 1]++;
		where_add(w, b, "vin >= ? AND vin < ?");
		w->p[w->np++] = SV_TEXT(prefix);
		w->p[w->np++] = SV_TEXT(w->upper);
	}
	where_add(w, b, "substr(vin, 1, length(?)) = ?");
	w->p[w->np++] = SV_TEXT(prefix);
	w->p[w->np++] = SV_TEXT(prefix);
	return PQ_OK;
}

/* ecu_id and version: vehicles whose ECU ecu_id runs APP version (a primary-key probe of
 * ecus per vehicle). */
static int where_ecu(vehicle_where *w, pq_buf *b, const store_vehicle_filter *f)
{
	if (!f->ecu_id && !f->version)
		return PQ_OK;
	if (!f->ecu_id)
		return pq_err_set(PQ_ERR_INVAL, "a version filter needs an ECU id");
	int rc = store__check_text(f->ecu_id, STORE_NAME_MAX, true, "ECU filter");
	if (rc == PQ_OK && f->version)
		rc = store__check_text(f->version, STORE_VERSION_MAX, false, "version filter");
	if (rc != PQ_OK)
		return rc;
	where_add(w, b,
	          f->version ? "EXISTS (SELECT 1 FROM ecus e WHERE e.vin = vehicles.vin"
	                       " AND e.ecu_id = ? AND e.sw_app = ?)"
	                     : "EXISTS (SELECT 1 FROM ecus e WHERE e.vin = vehicles.vin"
	                       " AND e.ecu_id = ?)");
	w->p[w->np++] = SV_TEXT(f->ecu_id);
	if (f->version)
		w->p[w->np++] = SV_TEXT(f->version);
	return PQ_OK;
}

static int vehicle_filter(const store_vehicle_filter *f, vehicle_where *w)
{
	pq_buf b;
	int rc;
	pq_buf_init_fixed(&b, w->where, sizeof(w->where));
	w->np = 0;
	if (!f)
		return PQ_OK;
	if (f->model) {
		rc = store__check_text(f->model, STORE_NAME_MAX, false, "model filter");
		if (rc != PQ_OK)
			return rc;
		where_add(w, &b, "model = ?");
		w->p[w->np++] = SV_TEXT(f->model);
	}
	if (f->online < -1 || f->online > 1)
		return pq_err_set(PQ_ERR_INVAL, "online filter %d not -1, 0 or 1", f->online);
	if (f->online >= 0) {
		where_add(w, &b, "online = ?");
		w->p[w->np++] = SV_INT(f->online);
	}
	if (f->vin_prefix && f->vin_prefix[0]) {
		rc = where_prefix(w, &b, f->vin_prefix);
		if (rc != PQ_OK)
			return rc;
	}
	rc = where_ecu(w, &b, f);
	if (rc != PQ_OK)
		return rc;
	if (b.cut) /* cannot happen: the clauses are fixed and fit */
		return pq_err_set(PQ_ERR_RANGE, "vehicle filter longer than %zu bytes",
		                  sizeof(w->where));
	return PQ_OK;
}

/* The filter's WHERE clause into *w, the page into *limit and *offset, and the number of
 * matching vehicles into *total (when given): what both vehicle lists do first. */
static int filter_and_count(store *s, const store_vehicle_filter *f, const store_page *pg,
                            vehicle_where *w, int64_t *limit, int64_t *offset, int64_t *total)
{
	char from[600];
	if (total)
		*total = 0;
	if (!s)
		return pq_err_set(PQ_ERR_INVAL, "vehicle list: no store");
	int rc = store__page_args(pg, limit, offset);
	if (rc == PQ_OK)
		rc = vehicle_filter(f, w);
	if (rc == PQ_OK)
		rc = store__build_sql(from, sizeof(from), "vehicles", w->where, "");
	if (rc == PQ_OK)
		rc = store__count_rows(s, from, w->p, w->np, total);
	return rc;
}

int store_vehicle_list(store *s, const store_vehicle_filter *f, const store_page *pg,
                       int (*fn)(const store_vehicle *v, void *user), void *user, int64_t *total)
{
	char sql[SQL_MAX];
	vehicle_where w;
	int64_t limit, offset;
	int rc = filter_and_count(s, f, pg, &w, &limit, &offset, total);
	if (rc != PQ_OK || !fn)
		return rc;
	rc = store__build_sql(sql, sizeof(sql), "SELECT " VEHICLE_COLS " FROM vehicles", w.where,
	                      " ORDER BY vin LIMIT ? OFFSET ?");
	if (rc != PQ_OK)
		return rc;
	w.p[w.np++] = SV_INT(limit);
	w.p[w.np++] = SV_INT(offset);
	vehicle_list_ctx c = {.fn = fn, .user = user};
	return store_exec(s, sql, w.p, w.np, vehicle_list_row, &c, NULL);
}

/* The presence UPDATE sql (p: its parameters) of vin seen at when_ms, both checked first;
 * PQ_ERR_NOTFOUND when vin is not registered. */
static int presence_update(store *s, const char *vin, int64_t when_ms, const char *sql,
                           const store_val *p, int np)
{
	int64_t changes = 0;
	int rc = store__check_vin(vin);
	if (rc == PQ_OK)
		rc = store__check_time(when_ms, "last seen");
	if (rc == PQ_OK)
		rc = store_exec(s, sql, p, np, NULL, NULL, &changes);
	if (rc == PQ_OK && changes == 0)
		rc = pq_err_set(PQ_ERR_NOTFOUND, "vehicle %s is not registered", vin);
	return rc;
}

int store_vehicle_set_online(store *s, const char *vin, bool online, int64_t when_ms,
                             int64_t boot_seq)
{
	if (!s)
		return pq_err_set(PQ_ERR_INVAL, "store_vehicle_set_online: no store");
	store_val p[] = {SV_INT(online ? 1 : 0), SV_INT(when_ms), SV_INT(boot_seq), SV_TEXT(vin)};
	return presence_update(s, vin, when_ms,
	                       "UPDATE vehicles SET online = ?, last_seen_ms = ?, boot_seq = ?,"
	                       " online_until_ms = 0 WHERE vin = ?",
	                       p, 4);
}

int store_vehicle_set_polled(store *s, const char *vin, int64_t when_ms, int64_t until_ms)
{
	if (!s)
		return pq_err_set(PQ_ERR_INVAL, "store_vehicle_set_polled: no store");
	if (until_ms <= when_ms)
		return pq_err_set(PQ_ERR_INVAL, "presence must last beyond %lld",
		                  (long long)when_ms);
	/* SET reads the row as it was: an MQTT session's presence (online, no expiry) stays */
	store_val p[] = {SV_INT(until_ms), SV_INT(when_ms), SV_TEXT(vin)};
	return presence_update(s, vin, when_ms,
	                       "UPDATE vehicles SET online_until_ms = CASE WHEN online = 1 AND"
	                       " online_until_ms = 0 THEN 0 ELSE ? END, online = 1,"
	                       " last_seen_ms = ? WHERE vin = ?",
	                       p, 3);
}

int store_vehicle_expire_polled(store *s, int64_t now_ms, int64_t *n)
{
	if (!s)
		return pq_err_set(PQ_ERR_INVAL, "store_vehicle_expire_polled: no store");
	store_val p[] = {SV_INT(now_ms)};
	return store_exec(s,
	                  "UPDATE vehicles SET online = 0, online_until_ms = 0"
	                  " WHERE online_until_ms > 0 AND online_until_ms < ?",
	                  p, 1, NULL, NULL, n);
}

int store_vehicle_count_online(store *s, int64_t *n)
{
	if (!s || !n)
		return pq_err_set(PQ_ERR_INVAL, "store_vehicle_count_online: bad arguments");
	return store__count_rows(s, "vehicles WHERE online = 1", NULL, 0, n);
}

int store_vehicle_delete(store *s, const char *vin)
{
	int64_t changes = 0;
	if (!s)
		return pq_err_set(PQ_ERR_INVAL, "store_vehicle_delete: no store");
	int rc = store__check_vin(vin);
	if (rc != PQ_OK)
		return rc;
	store_val p[] = {SV_TEXT(vin)};
	rc = store_exec(s, "DELETE FROM vehicles WHERE vin = ?", p, 1, NULL, NULL, &changes);
	if (rc == PQ_OK && changes == 0)
		rc = pq_err_set(PQ_ERR_NOTFOUND, "vehicle %s is not registered", vin);
	return rc;
}

int store__vehicle_exists(store *s, const char *vin)
{
	bool found = false;
	store_val p[] = {SV_TEXT(vin)};
	int rc = store__exists(s, "SELECT COUNT(*) FROM vehicles WHERE vin = ?", p, 1, &found);
	if (rc == PQ_OK && !found)
		rc = pq_err_set(PQ_ERR_NOTFOUND, "vehicle %s is not registered", vin);
	return rc;
}

/* ---- the fleet page (fleet.h) ---------------------------------------------------------- */

/* The page is chosen first (the filter, ORDER BY and LIMIT on vehicles alone, so the index
 * serves it), then joined with the VMG ECU (a primary-key probe) and the outstanding
 * deployment of the newest campaign (deployments_vin). */
#define FLEET_HEAD                                                                                 \
	"SELECT v.vin, v.model, v.cert_sha256, v.online, v.last_seen_ms, v.boot_seq,"              \
	" v.created_ms, v.last_vci_ms, e.sw_app, d.campaign_id, c.name, d.state FROM"              \
	" (SELECT vin, model, cert_sha256, online, last_seen_ms, boot_seq, created_ms,"            \
	" last_vci_ms FROM vehicles"
#define FLEET_TAIL                                                                                 \
	" ORDER BY vin LIMIT ? OFFSET ?) v"                                                        \
	" LEFT JOIN ecus e ON e.vin = v.vin AND e.ecu_id = '" STORE_VMG_ECU "'"                    \
	" LEFT JOIN deployments d ON d.vin = v.vin AND d.campaign_id = (SELECT d2.campaign_id"     \
	" FROM deployments d2 JOIN campaigns c2 ON c2.id = d2.campaign_id WHERE d2.vin = v.vin"    \
	" AND d2.state NOT IN ('completed', 'declined', 'failed', 'rolled_back', 'cancelled',"     \
	" 'timed_out') ORDER BY c2.created_ms DESC, d2.campaign_id LIMIT 1)"                       \
	" LEFT JOIN campaigns c ON c.id = d.campaign_id ORDER BY v.vin"

typedef struct {
	int (*fn)(const store_fleet_vehicle *v, void *user);
	void *user;
} fleet_list_ctx;

static int fleet_row(const store_row *r, void *user)
{
	fleet_list_ctx *c = user;
	store_fleet_vehicle f;
	int64_t online = 0;
	memset(&f, 0, sizeof(f));
	store__rd rd = store__rd_at(r, 0);
	store__rd_copy(&rd, f.v.vin, sizeof(f.v.vin));
	store__rd_copy(&rd, f.v.model, sizeof(f.v.model));
	store__rd_copy(&rd, f.v.cert_pem_sha256, sizeof(f.v.cert_pem_sha256));
	store__rd_i64(&rd, &online);
	store__rd_i64(&rd, &f.v.last_seen_ms);
	store__rd_i64(&rd, &f.v.boot_seq);
	store__rd_i64(&rd, &f.v.created_ms);
	store__rd_i64(&rd, &f.last_vci_ms);
	f.has_vmg = store__col(r, rd.col) != NULL;
	store__rd_copy(&rd, f.vmg_version, sizeof(f.vmg_version));
	f.has_campaign = store__col(r, rd.col) != NULL;
	store__rd_copy(&rd, f.campaign_id, sizeof(f.campaign_id));
	store__rd_copy(&rd, f.campaign_name, sizeof(f.campaign_name));
	store__rd_copy(&rd, f.dep_state, sizeof(f.dep_state));
	f.v.online = online != 0;
	return rd.rc == PQ_OK ? c->fn(&f, c->user) : rd.rc;
}

int store_fleet_list(store *s, const store_vehicle_filter *f, const store_page *pg,
                     int (*fn)(const store_fleet_vehicle *v, void *user), void *user,
                     int64_t *total)
{
	char sql[SQL_MAX];
	vehicle_where w;
	int64_t limit, offset;
	int rc = filter_and_count(s, f, pg, &w, &limit, &offset, total);
	if (rc != PQ_OK || !fn)
		return rc;
	rc = store__build_sql(sql, sizeof(sql), FLEET_HEAD, w.where, FLEET_TAIL);
	if (rc != PQ_OK)
		return rc;
	w.p[w.np++] = SV_INT(limit);
	w.p[w.np++] = SV_INT(offset);
	fleet_list_ctx c = {.fn = fn, .user = user};
	return store_exec(s, sql, w.p, w.np, fleet_row, &c, NULL);
}
