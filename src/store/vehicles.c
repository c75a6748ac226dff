/* vehicles.c: registered vehicles (store.h), once for both backends. */
#include <stdlib.h>
#include <string.h>

#include "core/buf.h"
#include "store/store_int.h"

#define SQL_MAX 1024

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

/* The WHERE clause of a vehicle list (" WHERE ... AND ...", or "") into where, and its
 * parameters into p (up to 4). */
static int vehicle_filter(const store_vehicle_filter *f, char *where, size_t cap, store_val *p,
                          int *np)
{
	pq_buf b;
	int rc;
	pq_buf_init_fixed(&b, where, cap);
	*np = 0;
	if (!f)
		return PQ_OK;
	if (f->model) {
		rc = store__check_text(f->model, STORE_NAME_MAX, false, "model filter");
		if (rc != PQ_OK)
			return rc;
		pq_buf_str(&b, *np ? " AND model = ?" : " WHERE model = ?");
		p[(*np)++] = SV_TEXT(f->model);
	}
	if (f->online < -1 || f->online > 1)
		return pq_err_set(PQ_ERR_INVAL, "online filter %d not -1, 0 or 1", f->online);
	if (f->online >= 0) {
		pq_buf_str(&b, *np ? " AND online = ?" : " WHERE online = ?");
		p[(*np)++] = SV_INT(f->online);
	}
	if (f->vin_prefix && f->vin_prefix[0]) {
		rc = store__check_text(f->vin_prefix, STORE_VIN_MAX, false, "VIN prefix");
		if (rc != PQ_OK)
			return rc;
		/* substr and length count characters on both backends; LIKE would not do:
		 * SQLite's ignores case and both need the pattern escaped. */
		pq_buf_str(&b, *np ? " AND substr(vin, 1, length(?)) = ?"
		                   : " WHERE substr(vin, 1, length(?)) = ?");
		p[(*np)++] = SV_TEXT(f->vin_prefix);
		p[(*np)++] = SV_TEXT(f->vin_prefix);
	}
	if (b.cut) /* cannot happen: the clauses are fixed and fit */
		return pq_err_set(PQ_ERR_RANGE, "vehicle filter longer than %zu bytes", cap);
	return PQ_OK;
}

int store_vehicle_list(store *s, const store_vehicle_filter *f, const store_page *pg,
                       int (*fn)(const store_vehicle *v, void *user), void *user, int64_t *total)
{
	char where[256], from[300], sql[SQL_MAX];
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
	rc = vehicle_filter(f, where, sizeof(where), p, &np);
	if (rc != PQ_OK)
		return rc;
	rc = store__build_sql(from, sizeof(from), "vehicles", where, "");
	if (rc != PQ_OK)
		return rc;
	rc = store__count_rows(s, from, p, np, total);
	if (rc != PQ_OK || !fn)
		return rc;
	rc = store__build_sql(sql, sizeof(sql), "SELECT " VEHICLE_COLS " FROM vehicles", where,
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
	int rc = store__check_vin(vin);
	if (rc != PQ_OK)
		return rc;
	rc = store__check_time(when_ms, "last seen");
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
