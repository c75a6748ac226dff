/* deployments.c: one vehicle's progress in a campaign: creating deployments with their
 * targets, reading and listing them, counts per phase and state (store/campaign.h), once for
 * both backends. State changes are in transitions.c, work claims in claims.c. */
#include <stdio.h>
#include <string.h>

#include "core/buf.h"
#include "store/campaign.h"
#include "store/store_int.h"

#define SQL_MAX 2048

/* SQL list of the terminal states, for NOT IN (...). */
#define TERMINAL_SQL "('completed', 'declined', 'failed', 'rolled_back', 'cancelled', 'timed_out')"

int store__row_deployment(const store_row *r, void *out)
{
	store_deployment *d = out;
	char state[16];
	memset(d, 0, sizeof(*d));
	store__rd rd = store__rd_at(r, 0);
	store__rd_copy(&rd, d->campaign_id, sizeof(d->campaign_id));
	store__rd_copy(&rd, d->vin, sizeof(d->vin));
	store__rd_copy(&rd, state, sizeof(state));
	if (rd.rc == PQ_OK)
		rd.rc = store_dep_state_parse(state, &d->state);
	store__rd_int(&rd, &d->phase);
	store__rd_int(&rd, &d->attempt);
	store__rd_copy(&rd, d->error_code, sizeof(d->error_code));
	store__rd_copy(&rd, d->claimed_by, sizeof(d->claimed_by));
	store__rd_i64(&rd, &d->claimed_until);
	store__rd_i64(&rd, &d->updated_ms);
	store__rd_i64(&rd, &d->next_ms);
	store__rd_i64(&rd, &d->last_msg_ms);
	store__rd_int(&rd, &d->notify_count);
	return rd.rc;
}

/* ---- creation ---------------------------------------------------------------------------- */

static int check_target(const store_target *t)
{
	const store__text_rule texts[] = {
	    {t->ecu_id, STORE_NAME_MAX, true, "target ECU"},
	    {t->release_id, STORE_ID_MAX, true, "target release"},
	    {t->hardware_id, STORE_NAME_MAX, false, "target hardware id"},
	    {t->software_type, sizeof(t->software_type) - 1, true, "target software type"},
	    {t->from_version, STORE_VERSION_MAX, false, "target from version"},
	    {t->to_version, STORE_VERSION_MAX, true, "target version"},
	};
	int rc = store__check_vin(t->vin);
	if (rc == PQ_OK)
		rc = store__check_texts(texts, sizeof(texts) / sizeof(texts[0]));
	if (rc != PQ_OK)
		return rc;
	if (strcmp(t->package, "delta") != 0 && strcmp(t->package, "full") != 0)
		return pq_err_set(PQ_ERR_INVAL, "target package '%.8s' not delta or full",
		                  t->package);
	rc = store__check_sha256(t->file_sha256, false, "target file");
	if (rc != PQ_OK)
		return rc;
	if (t->file_size < 0)
		return pq_err_set(PQ_ERR_INVAL, "target file size negative");
	return PQ_OK;
}

static int check_insert(const char *campaign_id, const store_deployment *d, size_t n,
                        const store_target *t, size_t nt)
{
	int rc = store__check_id(campaign_id, "campaign id");
	if (rc != PQ_OK)
		return rc;
	for (size_t i = 0; i < n; i++) {
		rc = store__check_vin(d[i].vin);
		if (rc != PQ_OK)
			return rc;
		if (d[i].phase < 1)
			return pq_err_set(PQ_ERR_INVAL, "deployment %s: phase %d < 1", d[i].vin,
			                  d[i].phase);
	}
	for (size_t i = 0; i < nt; i++) {
		rc = check_target(&t[i]);
		if (rc != PQ_OK)
			return rc;
	}
	return PQ_OK;
}

/* A pending deployment of d->vin, which must be registered, with its first transition. */
static int deployment_add(store *s, const char *campaign_id, const store_deployment *d,
                          int64_t now_ms)
{
	int rc = store__vehicle_exists(s, d->vin);
	if (rc != PQ_OK)
		return rc;
	store_val p[] = {SV_TEXT(campaign_id), SV_TEXT(d->vin), SV_INT(d->phase), SV_INT(now_ms)};
	rc = store_exec(s,
	                "INSERT INTO deployments (campaign_id, vin, state, phase, updated_ms)"
	                " VALUES (?, ?, 'pending', ?, ?)",
	                p, 4, NULL, NULL, NULL);
	if (rc == PQ_ERR_EXISTS)
		return pq_err_wrap(rc, "vehicle %s is in campaign %s already", d->vin, campaign_id);
	if (rc != PQ_OK)
		return rc;
	return store__add_transition(s, campaign_id, d->vin, "", "pending", "created", now_ms);
}

static int target_add(store *s, const char *campaign_id, const store_target *t)
{
	store_val p[] = {
	    SV_TEXT(campaign_id),     SV_TEXT(t->vin),         SV_TEXT(t->ecu_id),
	    SV_TEXT(t->release_id),   SV_TEXT(t->hardware_id), SV_TEXT(t->software_type),
	    SV_TEXT(t->from_version), SV_TEXT(t->to_version),  SV_TEXT(t->package),
	    SV_TEXT(t->file_sha256),  SV_INT(t->file_size)};
	int rc = store_exec(s,
	                    "INSERT INTO deployment_targets (campaign_id, vin, ecu_id,"
	                    " release_id, hardware_id, software_type, from_version, to_version,"
	                    " package, file_sha256, file_size)"
	                    " VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
	                    p, 11, NULL, NULL, NULL);
	if (rc != PQ_OK)
		pq_err_wrap(rc, "target %s/%s", t->vin, t->ecu_id);
	return rc;
}

/* The rows of store_deployment_insert, in the transaction it opened. */
static int deployments_add(store *s, const char *campaign_id, const store_deployment *d, size_t n,
                           const store_target *t, size_t nt, int64_t now_ms)
{
	int64_t cnt = 0;
	store_val cp[] = {SV_TEXT(campaign_id)};
	int rc = store__query_int(s, "SELECT COUNT(*) FROM campaigns WHERE id = ?", cp, 1, &cnt);
	if (rc != PQ_OK)
		return rc;
	if (cnt == 0)
		return pq_err_set(PQ_ERR_NOTFOUND, "no campaign %s", campaign_id);
	for (size_t i = 0; i < n; i++) {
		rc = deployment_add(s, campaign_id, &d[i], now_ms);
		if (rc != PQ_OK)
			return rc;
	}
	for (size_t i = 0; i < nt; i++) {
		rc = target_add(s, campaign_id, &t[i]);
		if (rc != PQ_OK)
			return rc;
	}
	return PQ_OK;
}

int store_deployment_insert(store *s, const char *campaign_id, const store_deployment *d, size_t n,
                            const store_target *t, size_t nt, int64_t now_ms)
{
	if (!s || (n && !d) || (nt && !t))
		return pq_err_set(PQ_ERR_INVAL, "store_deployment_insert: bad arguments");
	int rc = check_insert(campaign_id, d, n, t, nt);
	if (rc != PQ_OK)
		return rc;
	rc = store_begin(s);
	if (rc != PQ_OK)
		return rc;
	return store__end(s, deployments_add(s, campaign_id, d, n, t, nt, now_ms));
}

/* ---- reading ------------------------------------------------------------------------------ */

int store__check_dep_key(const char *campaign_id, const char *vin)
{
	int rc = store__check_id(campaign_id, "campaign id");
	if (rc != PQ_OK)
		return rc;
	return store__check_vin(vin);
}

int store_deployment_get(store *s, const char *campaign_id, const char *vin, store_deployment *out)
{
	if (!s || !out)
		return pq_err_set(PQ_ERR_INVAL, "store_deployment_get: bad arguments");
	memset(out, 0, sizeof(*out));
	int rc = store__check_dep_key(campaign_id, vin);
	if (rc != PQ_OK)
		return rc;
	bool found = false;
	store_val p[] = {SV_TEXT(campaign_id), SV_TEXT(vin)};
	rc = store__get_one(s,
	                    "SELECT " STORE__DEP_COLS " FROM deployments WHERE campaign_id = ? AND"
	                    " vin = ?",
	                    p, 2, store__row_deployment, out, "deployment", &found);
	if (rc == PQ_OK && !found)
		rc = pq_err_set(PQ_ERR_NOTFOUND, "vehicle %s is not in campaign %s", vin,
		                campaign_id);
	return rc;
}

typedef struct {
	int (*fn)(const store_deployment *d, void *user);
	void *user;
} dep_list_ctx;

static int dep_list_row(const store_row *r, void *user)
{
	dep_list_ctx *l = user;
	store_deployment d;
	int rc = store__row_deployment(r, &d);
	return rc == PQ_OK ? l->fn(&d, l->user) : rc;
}

/* The WHERE clause of a deployment list into where, its parameters into p (up to 3). */
static int dep_filter(const char *campaign_id, const store_deployment_filter *f, char *where,
                      size_t cap, store_val *p, int *np)
{
	pq_buf b;
	pq_buf_init_fixed(&b, where, cap);
	*np = 0;
	pq_buf_str(&b, " WHERE campaign_id = ?");
	p[(*np)++] = SV_TEXT(campaign_id);
	if (f && f->state >= 0) {
		const char *name = store_dep_state_name((store_dep_state)f->state);
		if (!name)
			return pq_err_set(PQ_ERR_INVAL, "deployment state %d", f->state);
		pq_buf_str(&b, " AND state = ?");
		p[(*np)++] = SV_TEXT(name);
	}
	if (f && f->phase >= 0) {
		pq_buf_str(&b, " AND phase = ?");
		p[(*np)++] = SV_INT(f->phase);
	}
	if (f && f->open)
		pq_buf_str(&b, " AND state NOT IN " TERMINAL_SQL);
	if (b.cut) /* cannot happen: the clauses are fixed and fit */
		return pq_err_set(PQ_ERR_RANGE, "deployment filter longer than %zu bytes", cap);
	return PQ_OK;
}

int store_deployment_list(store *s, const char *campaign_id, const store_deployment_filter *f,
                          const store_page *pg, int (*fn)(const store_deployment *d, void *user),
                          void *user, int64_t *total)
{
	int64_t limit, offset;
	char where[256], sql[SQL_MAX];
	store_val p[5];
	int np = 0;
	if (total)
		*total = 0;
	if (!s)
		return pq_err_set(PQ_ERR_INVAL, "store_deployment_list: no store");
	int rc = store__check_id(campaign_id, "campaign id");
	if (rc != PQ_OK)
		return rc;
	rc = store__page_args(pg, &limit, &offset);
	if (rc != PQ_OK)
		return rc;
	rc = dep_filter(campaign_id, f, where, sizeof(where), p, &np);
	if (rc != PQ_OK)
		return rc;
	if (total) {
		rc = store__build_sql(sql, sizeof(sql), "SELECT COUNT(*) FROM deployments", where,
		                      "");
		if (rc == PQ_OK)
			rc = store__query_int(s, sql, p, np, total);
		if (rc != PQ_OK)
			return rc;
	}
	if (!fn)
		return PQ_OK;
	rc = store__build_sql(sql, sizeof(sql), "SELECT " STORE__DEP_COLS " FROM deployments",
	                      where, " ORDER BY vin LIMIT ? OFFSET ?");
	if (rc != PQ_OK)
		return rc;
	p[np++] = SV_INT(limit);
	p[np++] = SV_INT(offset);
	dep_list_ctx l = {.fn = fn, .user = user};
	return store_exec(s, sql, p, np, dep_list_row, &l, NULL);
}

int store_deployment_list_vin(store *s, const char *vin, bool open_only,
                              int (*fn)(const store_deployment *d, void *user), void *user)
{
	if (!s || !fn)
		return pq_err_set(PQ_ERR_INVAL, "store_deployment_list_vin: bad arguments");
	int rc = store__check_vin(vin);
	if (rc != PQ_OK)
		return rc;
	store_val p[] = {SV_TEXT(vin), SV_INT(STORE_PAGE_MAX)};
	char sql[SQL_MAX];
	rc = store__build_sql(sql, sizeof(sql),
	                      "SELECT d.campaign_id, d.vin, d.state, d.phase, d.attempt,"
	                      " d.error_code, d.claimed_by, d.claimed_until, d.updated_ms,"
	                      " d.next_ms, d.last_msg_ms, d.notify_count FROM deployments d"
	                      " JOIN campaigns c ON c.id = d.campaign_id WHERE d.vin = ?",
	                      open_only ? " AND d.state NOT IN " TERMINAL_SQL : "",
	                      " ORDER BY c.created_ms DESC, d.campaign_id LIMIT ?");
	if (rc != PQ_OK)
		return rc;
	dep_list_ctx l = {.fn = fn, .user = user};
	return store_exec(s, sql, p, 2, dep_list_row, &l, NULL);
}

typedef struct {
	int (*fn)(int phase, store_dep_state st, int64_t n, void *user);
	void *user;
} count_ctx;

static int count_row(const store_row *r, void *user)
{
	count_ctx *c = user;
	int phase = 0;
	int64_t n = 0;
	store_dep_state st;
	int rc = store__col_int(r, 0, &phase);
	if (rc != PQ_OK)
		return rc;
	rc = store_dep_state_parse(store__col(r, 1), &st);
	if (rc != PQ_OK)
		return rc;
	rc = store__col_i64(r, 2, &n);
	if (rc != PQ_OK)
		return rc;
	return c->fn(phase, st, n, c->user);
}

int store_deployment_counts(store *s, const char *campaign_id,
                            int (*fn)(int phase, store_dep_state st, int64_t n, void *user),
                            void *user)
{
	if (!s || !fn)
		return pq_err_set(PQ_ERR_INVAL, "store_deployment_counts: bad arguments");
	int rc = store__check_id(campaign_id, "campaign id");
	if (rc != PQ_OK)
		return rc;
	count_ctx c = {.fn = fn, .user = user};
	store_val p[] = {SV_TEXT(campaign_id)};
	return store_exec(s,
	                  "SELECT phase, state, COUNT(*) FROM deployments WHERE campaign_id = ?"
	                  " GROUP BY phase, state ORDER BY phase, state",
	                  p, 1, count_row, &c, NULL);
}

static int live_dep_row(const store_row *r, void *user)
{
	int64_t *dep = user, n = 0;
	store_dep_state st;
	int rc = store_dep_state_parse(store__col(r, 0), &st);
	if (rc == PQ_OK)
		rc = store__col_i64(r, 1, &n);
	if (rc == PQ_OK)
		dep[st] = n;
	return rc;
}

static int cmp_state_row(const store_row *r, void *user)
{
	int64_t *cmp = user, n = 0;
	store_cmp_state st;
	int rc = store_cmp_state_parse(store__col(r, 0), &st);
	if (rc == PQ_OK)
		rc = store__col_i64(r, 1, &n);
	if (rc == PQ_OK)
		cmp[st] = n;
	return rc;
}

int store_rollout_counts(store *s, int64_t dep[STORE_DEP_STATE_COUNT],
                         int64_t cmp[STORE_CMP_STATE_COUNT])
{
	if (!s || !dep || !cmp)
		return pq_err_set(PQ_ERR_INVAL, "store_rollout_counts: bad arguments");
	memset(dep, 0, STORE_DEP_STATE_COUNT * sizeof(*dep));
	memset(cmp, 0, STORE_CMP_STATE_COUNT * sizeof(*cmp));
	int rc = store_exec(s,
	                    "SELECT d.state, COUNT(*) FROM deployments d JOIN campaigns c ON"
	                    " c.id = d.campaign_id WHERE c.state IN ('running', 'paused')"
	                    " GROUP BY d.state",
	                    NULL, 0, live_dep_row, dep, NULL);
	if (rc == PQ_OK)
		rc = store_exec(s, "SELECT state, COUNT(*) FROM campaigns GROUP BY state", NULL, 0,
		                cmp_state_row, cmp, NULL);
	return rc;
}

typedef struct {
	int (*fn)(const store_target *t, void *user);
	void *user;
} target_ctx;

/* A target's columns after its VIN: ecu_id, release_id, hardware_id, software_type,
 * from_version, to_version, package, file_sha256, file_size. */
static void rd_target(store__rd *rd, store_target *t)
{
	store__rd_copy(rd, t->ecu_id, sizeof(t->ecu_id));
	store__rd_copy(rd, t->release_id, sizeof(t->release_id));
	store__rd_copy(rd, t->hardware_id, sizeof(t->hardware_id));
	store__rd_copy(rd, t->software_type, sizeof(t->software_type));
	store__rd_copy(rd, t->from_version, sizeof(t->from_version));
	store__rd_copy(rd, t->to_version, sizeof(t->to_version));
	store__rd_copy(rd, t->package, sizeof(t->package));
	store__rd_copy(rd, t->file_sha256, sizeof(t->file_sha256));
	store__rd_i64(rd, &t->file_size);
}

static int target_row(const store_row *r, void *user)
{
	target_ctx *c = user;
	store_target t;
	memset(&t, 0, sizeof(t));
	store__rd rd = store__rd_at(r, 0);
	store__rd_copy(&rd, t.vin, sizeof(t.vin));
	rd_target(&rd, &t);
	return rd.rc == PQ_OK ? c->fn(&t, c->user) : rd.rc;
}

int store_target_list(store *s, const char *campaign_id, const char *vin,
                      int (*fn)(const store_target *t, void *user), void *user)
{
	if (!s || !fn)
		return pq_err_set(PQ_ERR_INVAL, "store_target_list: bad arguments");
	int rc = store__check_dep_key(campaign_id, vin);
	if (rc != PQ_OK)
		return rc;
	target_ctx c = {.fn = fn, .user = user};
	store_val p[] = {SV_TEXT(campaign_id), SV_TEXT(vin)};
	return store_exec(s,
	                  "SELECT vin, ecu_id, release_id, hardware_id, software_type,"
	                  " from_version, to_version, package, file_sha256, file_size"
	                  " FROM deployment_targets WHERE campaign_id = ? AND vin = ?"
	                  " ORDER BY ecu_id",
	                  p, 2, target_row, &c, NULL);
}

/* ---- a page with causes and targets ------------------------------------------------------- */

typedef struct {
	int (*fn)(const store_deployment *d, const char *cause, const store_target *t, void *user);
	void *user;
} page_ctx;

/* d.STORE__DEP_COLS, cause, then the target's columns (NULL without a target). */
static int page_row(const store_row *r, void *user)
{
	page_ctx *c = user;
	store_deployment d;
	store_target t;
	char cause[STORE_REASON_MAX + 1];
	int rc = store__row_deployment(r, &d);
	if (rc != PQ_OK)
		return rc;
	memset(&t, 0, sizeof(t));
	store__rd rd = store__rd_at(r, 12);
	store__rd_copy(&rd, cause, sizeof(cause));
	bool has_target = store__col(r, 13) != NULL;
	snprintf(t.vin, sizeof(t.vin), "%s", d.vin);
	rd_target(&rd, &t);
	if (rd.rc != PQ_OK)
		return rd.rc;
	return c->fn(&d, cause, has_target ? &t : NULL, c->user);
}

/* " AND state IN (?, ...)" for the states of mask into b, their names into p. */
static int state_in(uint32_t mask, pq_buf *b, store_val *p, int *np)
{
	if (mask == 0)
		return PQ_OK;
	if (mask >> STORE_DEP_STATE_COUNT)
		return pq_err_set(PQ_ERR_INVAL, "deployment state mask 0x%x", (unsigned)mask);
	pq_buf_str(b, " AND state IN (");
	bool first = true;
	for (int st = 0; st < STORE_DEP_STATE_COUNT; st++) {
		if (!(mask & (1u << st)))
			continue;
		pq_buf_str(b, first ? "?" : ", ?");
		first = false;
		p[(*np)++] = SV_TEXT(store_dep_state_name((store_dep_state)st));
	}
	pq_buf_str(b, ")");
	return PQ_OK;
}

int store_deployment_page(store *s, const char *campaign_id, uint32_t state_mask,
                          const store_page *pg,
                          int (*fn)(const store_deployment *d, const char *cause,
                                    const store_target *t, void *user),
                          void *user, int64_t *total)
{
	int64_t limit, offset;
	char where[512], sql[SQL_MAX];
	store_val p[STORE_DEP_STATE_COUNT + 4];
	int np = 0;
	pq_buf b;
	if (total)
		*total = 0;
	if (!s || !fn)
		return pq_err_set(PQ_ERR_INVAL, "store_deployment_page: bad arguments");
	int rc = store__check_id(campaign_id, "campaign id");
	if (rc == PQ_OK)
		rc = store__page_args(pg, &limit, &offset);
	if (rc != PQ_OK)
		return rc;
	pq_buf_init_fixed(&b, where, sizeof(where));
	pq_buf_str(&b, " WHERE campaign_id = ?");
	p[np++] = SV_TEXT(campaign_id);
	rc = state_in(state_mask, &b, p, &np);
	if (rc == PQ_OK && b.cut)
		rc = pq_err_set(PQ_ERR_RANGE, "deployment filter longer than %zu bytes",
		                sizeof(where));
	if (rc == PQ_OK && total) {
		rc = store__build_sql(sql, sizeof(sql), "SELECT COUNT(*) FROM deployments", where,
		                      "");
		if (rc == PQ_OK)
			rc = store__query_int(s, sql, p, np, total);
	}
	if (rc == PQ_OK)
		rc = store__build_sql(
		    sql, sizeof(sql),
		    "SELECT d.campaign_id, d.vin, d.state, d.phase, d.attempt, d.error_code,"
		    " d.claimed_by, d.claimed_until, d.updated_ms, d.next_ms, d.last_msg_ms,"
		    " d.notify_count, (SELECT x.cause FROM deployment_transitions x WHERE"
		    " x.campaign_id = d.campaign_id AND x.vin = d.vin ORDER BY x.seq DESC LIMIT 1),"
		    " g.ecu_id, g.release_id, g.hardware_id, g.software_type, g.from_version,"
		    " g.to_version, g.package, g.file_sha256, g.file_size"
		    " FROM (SELECT " STORE__DEP_COLS " FROM deployments",
		    where,
		    " ORDER BY vin LIMIT ? OFFSET ?) d LEFT JOIN deployment_targets g"
		    " ON g.campaign_id = d.campaign_id AND g.vin = d.vin ORDER BY d.vin, g.ecu_id");
	if (rc != PQ_OK)
		return rc;
	p[np++] = SV_INT(limit);
	p[np++] = SV_INT(offset);
	page_ctx c = {.fn = fn, .user = user};
	return store_exec(s, sql, p, np, page_row, &c, NULL);
}

int store_target_set_package(store *s, const char *campaign_id, const char *vin, const char *ecu_id,
                             const char *package, const char *file_sha256, int64_t file_size,
                             bool *changed)
{
	int64_t n = 0;
	if (changed)
		*changed = false;
	if (!s || !ecu_id || !package)
		return pq_err_set(PQ_ERR_INVAL, "store_target_set_package: bad arguments");
	int rc = store__check_dep_key(campaign_id, vin);
	if (rc == PQ_OK)
		rc = store__check_text(ecu_id, STORE_NAME_MAX, true, "target ECU");
	if (rc == PQ_OK)
		rc = store__check_sha256(file_sha256, false, "target file");
	if (rc != PQ_OK)
		return rc;
	if ((strcmp(package, "delta") != 0 && strcmp(package, "full") != 0) || file_size < 0)
		return pq_err_set(PQ_ERR_INVAL, "target package '%.8s' (%lld bytes)", package,
		                  (long long)file_size);
	store_val p[] = {SV_TEXT(package),     SV_TEXT(file_sha256), SV_INT(file_size),
	                 SV_TEXT(campaign_id), SV_TEXT(vin),         SV_TEXT(ecu_id),
	                 SV_TEXT(package),     SV_TEXT(file_sha256)};
	rc = store_exec(s,
	                "UPDATE deployment_targets SET package = ?, file_sha256 = ?, file_size = ?"
	                " WHERE campaign_id = ? AND vin = ? AND ecu_id = ? AND"
	                " (package <> ? OR file_sha256 <> ?)",
	                p, 8, NULL, NULL, &n);
	if (rc == PQ_OK && changed)
		*changed = n > 0;
	return rc;
}
