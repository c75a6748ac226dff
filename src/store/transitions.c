/* transitions.c: deployment state changes, each a compare-and-set on the stored state, and
 * their history (store/campaign.h), once for both backends. */
#include <string.h>

#include "core/buf.h"
#include "store/campaign.h"
#include "store/store_int.h"

#define SQL_MAX         2048
#define TRANSITIONS_MAX (STORE_PAGE_MAX * 10)

int store__add_transition(store *s, const char *cid, const char *vin, const char *from,
                          const char *to, const char *cause, int64_t now_ms)
{
	store_val p[] = {SV_TEXT(cid),   SV_TEXT(vin),   SV_TEXT(from), SV_TEXT(to),
	                 SV_INT(now_ms), SV_TEXT(cause), SV_TEXT(cid),  SV_TEXT(vin)};
	return store_exec(s,
	                  "INSERT INTO deployment_transitions (campaign_id, vin, seq, from_state,"
	                  " to_state, at_ms, cause)"
	                  " SELECT ?, ?, COALESCE(MAX(seq), 0) + 1, ?, ?, ?, ?"
	                  " FROM deployment_transitions WHERE campaign_id = ? AND vin = ?",
	                  p, 8, NULL, NULL, NULL);
}

/* Appends u's assignments to the statement in b and their parameters to p. */
static void update_sets(const store_dep_update *u, pq_buf *b, store_val *p, int *np)
{
	if (u->set_next) {
		pq_buf_str(b, ", next_ms = ?");
		p[(*np)++] = SV_INT(u->next_ms);
	}
	if (u->set_last_msg) {
		pq_buf_str(b,
		           ", last_msg_ms = CASE WHEN last_msg_ms > ? THEN last_msg_ms ELSE ? END");
		p[(*np)++] = SV_INT(u->last_msg_ms);
		p[(*np)++] = SV_INT(u->last_msg_ms);
	}
	if (u->notified)
		pq_buf_str(b, ", notify_count = notify_count + 1");
	if (u->error_code) {
		pq_buf_str(b, ", error_code = ?");
		p[(*np)++] = SV_TEXT(u->error_code);
	}
	if (u->release_claim)
		pq_buf_str(b, ", claimed_by = NULL, claimed_until = 0");
}

static int dep_exists(store *s, const char *cid, const char *vin)
{
	int64_t n = 0;
	store_val p[] = {SV_TEXT(cid), SV_TEXT(vin)};
	int rc = store__query_int(s,
	                          "SELECT COUNT(*) FROM deployments WHERE campaign_id = ? AND"
	                          " vin = ?",
	                          p, 2, &n);
	if (rc == PQ_OK && n == 0)
		rc = pq_err_set(PQ_ERR_NOTFOUND, "vehicle %s is not in campaign %s", vin, cid);
	return rc;
}

/* UPDATE deployments SET state = to ... WHERE key AND state = from [AND idle]. */
static int dep_cas(store *s, const char *cid, const char *vin, store_dep_state from,
                   store_dep_state to, int64_t now_ms, const store_dep_update *upd,
                   int64_t *changes)
{
	char sql[SQL_MAX];
	store_val p[16];
	int np = 0;
	pq_buf b;
	if (upd && upd->error_code) {
		int rc = store__check_text(upd->error_code, STORE_NAME_MAX, false, "error code");
		if (rc != PQ_OK)
			return rc;
	}
	pq_buf_init_fixed(&b, sql, sizeof(sql));
	pq_buf_str(&b, "UPDATE deployments SET state = ?, updated_ms = ?");
	p[np++] = SV_TEXT(store_dep_state_name(to));
	p[np++] = SV_INT(now_ms);
	if (upd)
		update_sets(upd, &b, p, &np);
	pq_buf_str(&b, " WHERE campaign_id = ? AND vin = ? AND state = ?");
	p[np++] = SV_TEXT(cid);
	p[np++] = SV_TEXT(vin);
	p[np++] = SV_TEXT(store_dep_state_name(from));
	if (upd && upd->idle_before > 0) {
		pq_buf_str(&b, " AND last_msg_ms < ?");
		p[np++] = SV_INT(upd->idle_before);
	}
	if (b.cut) /* cannot happen: the clauses are fixed and fit */
		return pq_err_set(PQ_ERR_RANGE, "deployment update longer than %zu bytes",
		                  sizeof(sql));
	return store_exec(s, sql, p, np, NULL, NULL, changes);
}

static int dep_key_checks(store *s, const char *cid, const char *vin, store_dep_state from,
                          store_dep_state to)
{
	if (!s)
		return pq_err_set(PQ_ERR_INVAL, "deployment change: no store");
	int rc = store__check_dep_key(cid, vin);
	if (rc != PQ_OK)
		return rc;
	if (!store_dep_state_name(from) || !store_dep_state_name(to))
		return pq_err_set(PQ_ERR_INVAL, "deployment state %d -> %d", (int)from, (int)to);
	return PQ_OK;
}

/* The change and its history entry, in the transaction store_deployment_transition opened;
 * *changes: 1 when the deployment was in state from, else 0. */
static int transition(store *s, const char *cid, const char *vin, store_dep_state from,
                      store_dep_state to, const char *cause, int64_t now_ms,
                      const store_dep_update *upd, int64_t *changes)
{
	int rc = dep_cas(s, cid, vin, from, to, now_ms, upd, changes);
	if (rc != PQ_OK)
		return rc;
	if (*changes != 1)
		return dep_exists(s, cid, vin);
	return store__add_transition(s, cid, vin, store_dep_state_name(from),
	                             store_dep_state_name(to), cause, now_ms);
}

int store_deployment_transition(store *s, const char *campaign_id, const char *vin,
                                store_dep_state from, store_dep_state to, const char *cause,
                                int64_t now_ms, const store_dep_update *upd, bool *changed)
{
	if (changed)
		*changed = false;
	int rc = dep_key_checks(s, campaign_id, vin, from, to);
	if (rc != PQ_OK)
		return rc;
	if (!cause)
		cause = "";
	rc = store__check_text(cause, STORE_REASON_MAX, false, "transition cause");
	if (rc != PQ_OK)
		return rc;
	rc = store_begin(s);
	if (rc != PQ_OK)
		return rc;
	int64_t changes = 0;
	rc = store__end(s, transition(s, campaign_id, vin, from, to, cause, now_ms, upd, &changes));
	if (rc == PQ_OK && changed)
		*changed = changes == 1;
	return rc;
}

int store_deployment_update(store *s, const char *campaign_id, const char *vin,
                            store_dep_state expect, int64_t now_ms, const store_dep_update *upd,
                            bool *changed)
{
	if (changed)
		*changed = false;
	int rc = dep_key_checks(s, campaign_id, vin, expect, expect);
	if (rc != PQ_OK)
		return rc;
	int64_t changes = 0;
	rc = dep_cas(s, campaign_id, vin, expect, expect, now_ms, upd, &changes);
	if (rc == PQ_OK && changes == 0)
		rc = dep_exists(s, campaign_id, vin);
	if (rc == PQ_OK && changed)
		*changed = changes > 0;
	return rc;
}

typedef struct {
	int (*fn)(const store_transition *t, void *user);
	void *user;
} trans_ctx;

static int trans_row(const store_row *r, void *user)
{
	trans_ctx *c = user;
	store_transition t;
	memset(&t, 0, sizeof(t));
	store__rd rd = store__rd_at(r, 0);
	store__rd_i64(&rd, &t.seq);
	store__rd_copy(&rd, t.from_state, sizeof(t.from_state));
	store__rd_copy(&rd, t.to_state, sizeof(t.to_state));
	store__rd_i64(&rd, &t.at_ms);
	store__rd_copy(&rd, t.cause, sizeof(t.cause));
	return rd.rc == PQ_OK ? c->fn(&t, c->user) : rd.rc;
}

int store_transition_list(store *s, const char *campaign_id, const char *vin,
                          int (*fn)(const store_transition *t, void *user), void *user)
{
	if (!s || !fn)
		return pq_err_set(PQ_ERR_INVAL, "store_transition_list: bad arguments");
	int rc = store__check_dep_key(campaign_id, vin);
	if (rc != PQ_OK)
		return rc;
	trans_ctx c = {.fn = fn, .user = user};
	store_val p[] = {SV_TEXT(campaign_id), SV_TEXT(vin), SV_INT(TRANSITIONS_MAX)};
	return store_exec(s,
	                  "SELECT seq, from_state, to_state, at_ms, cause FROM"
	                  " deployment_transitions WHERE campaign_id = ? AND vin = ?"
	                  " ORDER BY seq LIMIT ?",
	                  p, 3, trans_row, &c, NULL);
}

typedef struct {
	int (*fn)(store_dep_state from, bool has_from, store_dep_state to, int64_t at_ms,
	          void *user);
	void *user;
	int64_t rows, max; /* rows seen; the caller's cap (one more row is read) */
	bool *truncated;
} replay_ctx;

static int replay_row(const store_row *r, void *user)
{
	replay_ctx *c = user;
	if (++c->rows > c->max) { /* the row past the cap: only says there are more */
		*c->truncated = true;
		return PQ_OK;
	}
	const char *from = store__col(r, 0), *to = store__col(r, 1);
	store_dep_state f = STORE_DEP_PENDING, t;
	int64_t at = 0;
	bool has_from = from && from[0];
	int rc = has_from ? store_dep_state_parse(from, &f) : PQ_OK;
	if (rc == PQ_OK)
		rc = store_dep_state_parse(to ? to : "", &t);
	if (rc == PQ_OK)
		rc = store__col_i64(r, 2, &at);
	return rc == PQ_OK ? c->fn(f, has_from, t, at, c->user) : rc;
}

int store_transition_replay(store *s, const char *campaign_id, int64_t max_rows,
                            int (*fn)(store_dep_state from, bool has_from, store_dep_state to,
                                      int64_t at_ms, void *user),
                            void *user, bool *truncated)
{
	if (!s || !fn || !truncated || max_rows < 0 || max_rows > STORE_REPLAY_MAX)
		return pq_err_set(PQ_ERR_INVAL, "store_transition_replay: bad arguments");
	*truncated = false;
	int rc = store__check_id(campaign_id, "campaign id");
	if (rc != PQ_OK)
		return rc;
	replay_ctx c = {.fn = fn,
	                .user = user,
	                .max = max_rows ? max_rows : STORE_REPLAY_MAX,
	                .truncated = truncated};
	store_val p[] = {SV_TEXT(campaign_id), SV_INT(c.max + 1)};
	/* deployment_transitions_replay (schema v7) serves the order: no sort */
	return store_exec(s,
	                  "SELECT from_state, to_state, at_ms FROM deployment_transitions"
	                  " WHERE campaign_id = ? ORDER BY at_ms, vin, seq LIMIT ?",
	                  p, 2, replay_row, &c, NULL);
}
