/* ecu_registry.c: the fleet-wide ECU registry (ecu_registry.h), once for both backends. */
#include <stdio.h>
#include <string.h>

#include "store/ecu_registry.h"
#include "store/store_int.h"

#define REG_WHERE_MAX 5 /* three filters, the page key's two values */

typedef struct {
	int (*fn)(const store_ecu *e, void *user);
	void *user;
	int limit, seen;
} reg_ctx;

/* Rows arrive limit + 1 at most: the extra one only says that another page follows. */
static int reg_row(const store_row *r, void *user)
{
	reg_ctx *c = user;
	if (++c->seen > c->limit)
		return PQ_OK;
	store_ecu e;
	memset(&e, 0, sizeof(e));
	int rc = store__row_ecu(r, &e);
	return rc == PQ_OK ? c->fn(&e, c->user) : rc;
}

static int check_filter(const store_ecu_filter *f, int limit)
{
	const char *av = f->after_vin && f->after_vin[0] ? f->after_vin : NULL;
	const char *ae = f->after_ecu && f->after_ecu[0] ? f->after_ecu : NULL;
	if (limit < 1 || limit > STORE_PAGE_MAX)
		return pq_err_set(PQ_ERR_INVAL, "limit must be 1..%d", STORE_PAGE_MAX);
	if (!av != !ae)
		return pq_err_set(PQ_ERR_INVAL, "the page key needs a VIN and an ECU id");
	const store__text_rule rules[] = {
	    {f->ecu_id, STORE_NAME_MAX, true, "ecu_id"},
	    {f->hardware_id, STORE_NAME_MAX, true, "hardware_id"},
	    {f->version, STORE_VERSION_MAX, true, "version"},
	    {av, STORE_VIN_MAX, true, "page key VIN"},
	    {ae, STORE_NAME_MAX, true, "page key ECU id"},
	};
	/* the filters given (NULL: none) are not empty */
	for (size_t i = 0; i < sizeof(rules) / sizeof(rules[0]); i++) {
		int rc = rules[i].v ? store__check_texts(&rules[i], 1) : PQ_OK;
		if (rc != PQ_OK)
			return rc;
	}
	return PQ_OK;
}

int store_ecu_registry(store *s, const store_ecu_filter *f, int limit,
                       int (*fn)(const store_ecu *e, void *user), void *user, bool *more)
{
	*more = false;
	if (!s || !f || !fn)
		return pq_err_set(PQ_ERR_INVAL, "store_ecu_registry: bad arguments");
	int rc = check_filter(f, limit);
	if (rc != PQ_OK)
		return rc;
	char sql[768];
	store_val p[REG_WHERE_MAX + 1];
	int np = 0;
	size_t n =
	    (size_t)snprintf(sql, sizeof(sql), "SELECT %s FROM ecus WHERE 1 = 1", STORE__ECU_COLS);
	const struct {
		const char *v, *cond;
	} eq[] = {{f->ecu_id, " AND ecu_id = ?"},
	          {f->hardware_id, " AND hardware_id = ?"},
	          {f->version, " AND sw_app = ?"}};
	for (size_t i = 0; i < sizeof(eq) / sizeof(eq[0]); i++) {
		if (!eq[i].v)
			continue;
		n += (size_t)snprintf(sql + n, sizeof(sql) - n, "%s", eq[i].cond);
		p[np++] = SV_TEXT(eq[i].v);
	}
	if (f->after_vin && f->after_vin[0]) {
		/* a row value: both backends seek the index to it */
		n += (size_t)snprintf(sql + n, sizeof(sql) - n, " AND (vin, ecu_id) > (?, ?)");
		p[np++] = SV_TEXT(f->after_vin);
		p[np++] = SV_TEXT(f->after_ecu);
	}
	snprintf(sql + n, sizeof(sql) - n, " ORDER BY vin, ecu_id LIMIT ?");
	p[np++] = SV_INT(limit + 1);
	reg_ctx c = {.fn = fn, .user = user, .limit = limit};
	rc = store_exec(s, sql, p, np, reg_row, &c, NULL);
	*more = rc == PQ_OK && c.seen > limit;
	return rc;
}

typedef struct {
	int (*fn)(const store_ecu_version_count *v, void *user);
	void *user;
} ver_ctx;

static int ver_row(const store_row *r, void *user)
{
	ver_ctx *c = user;
	store_ecu_version_count v;
	memset(&v, 0, sizeof(v));
	store__rd rd = store__rd_at(r, 0);
	store__rd_copy(&rd, v.version, sizeof(v.version));
	store__rd_i64(&rd, &v.vehicles);
	return rd.rc == PQ_OK ? c->fn(&v, c->user) : rd.rc;
}

int store_ecu_versions(store *s, const char *ecu_id, int limit,
                       int (*fn)(const store_ecu_version_count *v, void *user), void *user,
                       int64_t *total)
{
	*total = 0;
	if (!s || !fn)
		return pq_err_set(PQ_ERR_INVAL, "store_ecu_versions: bad arguments");
	int rc = store__check_text(ecu_id, STORE_NAME_MAX, true, "ecu_id");
	if (rc == PQ_OK && (limit < 1 || limit > STORE_PAGE_MAX))
		rc = pq_err_set(PQ_ERR_INVAL, "limit must be 1..%d", STORE_PAGE_MAX);
	if (rc != PQ_OK)
		return rc;
	store_val p[] = {SV_TEXT(ecu_id), SV_INT(limit)};
	ver_ctx c = {.fn = fn, .user = user};
	rc = store_exec(s,
	                "SELECT sw_app, COUNT(*) FROM ecus WHERE ecu_id = ? GROUP BY sw_app"
	                " ORDER BY COUNT(*) DESC, sw_app LIMIT ?",
	                p, 2, ver_row, &c, NULL);
	if (rc == PQ_OK)
		rc = store__count_rows(s, "ecus WHERE ecu_id = ?", p, 1, total);
	return rc;
}
