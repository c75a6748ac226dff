/* claims.c: work claims: a server instance leases the deployments it acts on, so that
 * several instances share one database (store/campaign.h), once for both backends. */
#include <stdio.h>
#include <stdlib.h>

#include "store/campaign.h"
#include "store/store_int.h"

#define SQL_MAX 2048

typedef struct {
	store_deployment *rows;
	int n, cap;
} claim_rows;

static int claim_row(const store_row *r, void *user)
{
	claim_rows *c = user;
	if (c->n >= c->cap)
		return pq_err_set(PQ_ERR_FORMAT, "claim returned more rows than its limit");
	int rc = store__row_deployment(r, &c->rows[c->n]);
	if (rc == PQ_OK)
		c->n++;
	return rc;
}

static int check_claim(const char *instance_id, const char *vin, int64_t now_ms, int64_t lease_ms,
                       int limit)
{
	int rc = store__check_text(instance_id, STORE_INSTANCE_MAX, true, "instance id");
	if (rc != PQ_OK)
		return rc;
	if (vin) {
		rc = store__check_vin(vin);
		if (rc != PQ_OK)
			return rc;
	}
	if (limit < 1 || limit > STORE_PAGE_MAX)
		return pq_err_set(PQ_ERR_INVAL, "claim limit %d outside 1..%d", limit,
		                  STORE_PAGE_MAX);
	if (lease_ms <= 0 || now_ms < 0)
		return pq_err_set(PQ_ERR_INVAL, "claim: lease %lld ms, now %lld",
		                  (long long)lease_ms, (long long)now_ms);
	return PQ_OK;
}

/* The candidates of a claim kind (d is the deployment, c its campaign), as a condition that
 * takes *extra_now parameters bound to now (0 or 1); NULL for an unknown kind. */
static const char *claim_cond(store_claim_kind kind, int *extra_now)
{
	*extra_now = 0;
	switch (kind) {
	case STORE_CLAIM_NOTIFY:
		return " AND d.state = 'pending' AND c.state = 'running'"
		       " AND d.phase <= c.current_phase"
		       " AND EXISTS (SELECT 1 FROM vehicles v WHERE v.vin = d.vin AND v.online = "
		       "1)";
	case STORE_CLAIM_RETRY:
		*extra_now = 1;
		return " AND d.state IN ('postponed', 'accepted') AND c.state = 'running'"
		       " AND d.next_ms > 0 AND d.next_ms <= ?";
	case STORE_CLAIM_TIMEOUT:
		*extra_now = 1;
		return " AND d.state IN ('notified', 'accepted', 'downloading', 'downloaded',"
		       " 'installing', 'installed') AND c.state IN ('running', 'paused')"
		       " AND d.last_msg_ms + c.vehicle_timeout_ms < ?";
	case STORE_CLAIM_RESEND:
		return " AND c.state = 'running' AND (d.state = 'notified'"
		       " OR (d.state = 'accepted' AND d.next_ms = 0))";
	default:
		return NULL;
	}
}

static int claim(store *s, const char *instance_id, store_claim_kind kind, const char *vin,
                 int64_t now_ms, int64_t lease_ms, int limit,
                 int (*fn)(const store_deployment *d, void *user), void *user, int64_t *claimed)
{
	store_val p[8];
	int np = 0, extra_now;
	if (claimed)
		*claimed = 0;
	if (!s)
		return pq_err_set(PQ_ERR_INVAL, "store_deployment_claim: no store");
	int rc = check_claim(instance_id, vin, now_ms, lease_ms, limit);
	if (rc != PQ_OK)
		return rc;
	const char *cond = claim_cond(kind, &extra_now);
	if (!cond)
		return pq_err_set(PQ_ERR_INVAL, "claim kind %d", (int)kind);
	p[np++] = SV_TEXT(instance_id);
	p[np++] = SV_INT(now_ms + lease_ms);
	p[np++] = SV_INT(now_ms); /* claimed_until < now */
	if (extra_now)
		p[np++] = SV_INT(now_ms);
	if (vin)
		p[np++] = SV_TEXT(vin);
	p[np++] = SV_INT(limit);
	/* PostgreSQL: lock the chosen deployment rows (not the campaigns) and skip rows
	 * another claimer holds; SQLite: the UPDATE holds the database's write lock. */
	const char *lock =
	    store_get_backend(s) == STORE_POSTGRES ? " FOR UPDATE OF d SKIP LOCKED" : "";
	char sql[SQL_MAX];
	int w = snprintf(sql, sizeof(sql),
	                 "UPDATE deployments SET claimed_by = ?, claimed_until = ?"
	                 " WHERE (campaign_id, vin) IN (SELECT d.campaign_id, d.vin"
	                 " FROM deployments d JOIN campaigns c ON c.id = d.campaign_id"
	                 " WHERE d.claimed_until < ?%s%s"
	                 " ORDER BY d.campaign_id, d.phase, d.vin LIMIT ?%s)"
	                 " RETURNING " STORE__DEP_COLS,
	                 cond, vin ? " AND d.vin = ?" : "", lock);
	if (w < 0 || (size_t)w >= sizeof(sql))
		return pq_err_set(PQ_ERR_RANGE, "claim statement too long");
	claim_rows rows = {.rows = calloc((size_t)limit, sizeof(store_deployment)), .cap = limit};
	if (!rows.rows)
		return pq_err_set(PQ_ERR_NOMEM, "claim");
	rc = store_exec(s, sql, p, np, claim_row, &rows, NULL);
	if (rc == PQ_OK && claimed)
		*claimed = rows.n;
	for (int i = 0; rc == PQ_OK && fn && i < rows.n; i++)
		rc = fn(&rows.rows[i], user);
	free(rows.rows);
	return rc;
}

int store_deployment_claim(store *s, const char *instance_id, store_claim_kind kind, int64_t now_ms,
                           int64_t lease_ms, int limit,
                           int (*fn)(const store_deployment *d, void *user), void *user,
                           int64_t *claimed)
{
	return claim(s, instance_id, kind, NULL, now_ms, lease_ms, limit, fn, user, claimed);
}

int store_deployment_claim_vin(store *s, const char *instance_id, store_claim_kind kind,
                               const char *vin, int64_t now_ms, int64_t lease_ms, int limit,
                               int (*fn)(const store_deployment *d, void *user), void *user,
                               int64_t *claimed)
{
	if (!vin)
		return pq_err_set(PQ_ERR_INVAL, "store_deployment_claim_vin: no VIN");
	return claim(s, instance_id, kind, vin, now_ms, lease_ms, limit, fn, user, claimed);
}

int store_deployment_release(store *s, const char *campaign_id, const char *vin,
                             const char *instance_id)
{
	if (!s)
		return pq_err_set(PQ_ERR_INVAL, "store_deployment_release: no store");
	int rc = store__check_dep_key(campaign_id, vin);
	if (rc != PQ_OK)
		return rc;
	rc = store__check_text(instance_id, STORE_INSTANCE_MAX, true, "instance id");
	if (rc != PQ_OK)
		return rc;
	store_val p[] = {SV_TEXT(campaign_id), SV_TEXT(vin), SV_TEXT(instance_id)};
	return store_exec(s,
	                  "UPDATE deployments SET claimed_by = NULL, claimed_until = 0"
	                  " WHERE campaign_id = ? AND vin = ? AND claimed_by = ?",
	                  p, 3, NULL, NULL, NULL);
}
