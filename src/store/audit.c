/* audit.c: the append-only audit log of security-relevant events (store.h), once for both
 * backends. */
#include <stdlib.h>
#include <string.h>

#include "core/buf.h"
#include "store/store_int.h"

static int check_audit(const char *actor, const char *action, const char *target,
                       const char *detail_json, int64_t at_ms)
{
	int rc = store__check_text(actor, STORE_ACTOR_MAX, true, "audit actor");
	if (rc != PQ_OK)
		return rc;
	rc = store__check_text(action, STORE_NAME_MAX, true, "audit action");
	if (rc != PQ_OK)
		return rc;
	rc = store__check_text(target, STORE_TARGET_MAX, false, "audit target");
	if (rc != PQ_OK)
		return rc;
	rc = store__check_json(detail_json, STORE_TEXT_MAX, "audit detail");
	if (rc != PQ_OK)
		return rc;
	return store__check_time(at_ms, "audit time");
}

int store_audit_append(store *s, const char *actor, const char *action, const char *target,
                       const char *detail_json, int64_t at_ms)
{
	if (!s)
		return pq_err_set(PQ_ERR_INVAL, "store_audit_append: no store");
	if (!target)
		target = "";
	int rc = check_audit(actor, action, target, detail_json, at_ms);
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
	store__rd rd = store__rd_at(r, 0);
	store__rd_i64(&rd, &a.id);
	store__rd_i64(&rd, &a.at_ms);
	store__rd_copy(&rd, a.actor, sizeof(a.actor));
	store__rd_copy(&rd, a.action, sizeof(a.action));
	store__rd_copy(&rd, a.target, sizeof(a.target));
	store__rd_dup(&rd, &a.detail);
	int rc = rd.rc == PQ_OK ? c->fn(&a, c->user) : rd.rc;
	free(a.detail);
	return rc;
}

/* The WHERE clause of f into where (" WHERE ..." or ""), its parameters into p (up to 5). */
static int audit_where(const store_audit_filter *f, char *where, size_t cap, store_val *p, int *np)
{
	pq_buf b;
	pq_buf_init_fixed(&b, where, cap);
	*np = 0;
	if (!f)
		return PQ_OK;
	const store__text_rule rules[] = {
	    {f->actor ? f->actor : "", STORE_ACTOR_MAX, false, "actor filter"},
	    {f->action ? f->action : "", STORE_NAME_MAX, false, "action filter"},
	    {f->target ? f->target : "", STORE_TARGET_MAX, false, "target filter"},
	};
	int rc = store__check_texts(rules, sizeof(rules) / sizeof(rules[0]));
	if (rc != PQ_OK)
		return rc;
	if (f->since_ms < 0 || f->until_ms < 0)
		return pq_err_set(PQ_ERR_INVAL, "audit time filter: negative time");
	const struct {
		bool on;
		const char *clause;
		store_val v;
	} conds[] = {
	    {f->actor != NULL, "actor = ?", SV_TEXT(f->actor)},
	    {f->action != NULL, "action = ?", SV_TEXT(f->action)},
	    {f->target != NULL, "target = ?", SV_TEXT(f->target)},
	    {f->since_ms > 0, "at_ms >= ?", SV_INT(f->since_ms)},
	    {f->until_ms > 0, "at_ms < ?", SV_INT(f->until_ms)},
	};
	for (size_t i = 0; i < sizeof(conds) / sizeof(conds[0]); i++) {
		if (!conds[i].on)
			continue;
		pq_buf_str(&b, *np ? " AND " : " WHERE ");
		pq_buf_str(&b, conds[i].clause);
		p[(*np)++] = conds[i].v;
	}
	if (b.cut) /* cannot happen: the clauses are fixed and fit */
		return pq_err_set(PQ_ERR_RANGE, "audit filter longer than %zu bytes", cap);
	return PQ_OK;
}

int store_audit_query(store *s, const store_audit_filter *f, const store_page *pg,
                      int (*fn)(const store_audit *a, void *user), void *user, int64_t *total)
{
	int64_t limit, offset;
	char where[160], from[200], sql[400];
	store_val p[7];
	int np = 0;
	if (total)
		*total = 0;
	if (!s)
		return pq_err_set(PQ_ERR_INVAL, "store_audit_query: no store");
	int rc = store__page_args(pg, &limit, &offset);
	if (rc == PQ_OK)
		rc = audit_where(f, where, sizeof(where), p, &np);
	if (rc == PQ_OK)
		rc = store__build_sql(from, sizeof(from), "audit_log", where, "");
	if (rc == PQ_OK)
		rc = store__count_rows(s, from, p, np, total);
	if (rc != PQ_OK || !fn)
		return rc;
	rc = store__build_sql(sql, sizeof(sql),
	                      "SELECT id, at_ms, actor, action, target, detail FROM audit_log",
	                      where, " ORDER BY id DESC LIMIT ? OFFSET ?");
	if (rc != PQ_OK)
		return rc;
	p[np++] = SV_INT(limit);
	p[np++] = SV_INT(offset);
	audit_list_ctx c = {.fn = fn, .user = user};
	return store_exec(s, sql, p, np, audit_row, &c, NULL);
}

int store_audit_list(store *s, const store_page *pg, int (*fn)(const store_audit *a, void *user),
                     void *user, int64_t *total)
{
	return store_audit_query(s, NULL, pg, fn, user, total);
}
