/* audit.c: the append-only audit log of security-relevant events (store.h), once for both
 * backends. */
#include <stdlib.h>
#include <string.h>

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

int store_audit_list(store *s, const store_page *pg, int (*fn)(const store_audit *a, void *user),
                     void *user, int64_t *total)
{
	int64_t limit, offset;
	if (total)
		*total = 0;
	if (!s)
		return pq_err_set(PQ_ERR_INVAL, "store_audit_list: no store");
	int rc = store__page_args(pg, &limit, &offset);
	if (rc != PQ_OK)
		return rc;
	rc = store__count_rows(s, "audit_log", NULL, 0, total);
	if (rc != PQ_OK || !fn)
		return rc;
	store_val p[] = {SV_INT(limit), SV_INT(offset)};
	audit_list_ctx c = {.fn = fn, .user = user};
	return store_exec(s,
	                  "SELECT id, at_ms, actor, action, target, detail FROM audit_log"
	                  " ORDER BY id DESC LIMIT ? OFFSET ?",
	                  p, 2, audit_row, &c, NULL);
}
