/* campaigns.c: the state names of campaigns and deployments, and campaigns themselves
 * (store/campaign.h), once for both backends. */
#include <stdlib.h>
#include <string.h>

#include "store/campaign.h"
#include "store/store_int.h"

#define SQL_MAX 2048

/* ---- names ---------------------------------------------------------------------------- */

static const char *const cmp_names[STORE_CMP_STATE_COUNT] = {"draft", "running", "paused",
                                                             "completed", "cancelled"};
static const char *const dep_names[STORE_DEP_STATE_COUNT] = {
    "pending",   "notified",  "accepted", "downloading", "downloaded",  "installing", "installed",
    "completed", "postponed", "declined", "failed",      "rolled_back", "cancelled",  "timed_out"};

const char *store_cmp_state_name(store_cmp_state st)
{
	return (unsigned)st < STORE_CMP_STATE_COUNT ? cmp_names[st] : NULL;
}

int store_cmp_state_parse(const char *s, store_cmp_state *out)
{
	for (int i = 0; s && i < STORE_CMP_STATE_COUNT; i++)
		if (strcmp(s, cmp_names[i]) == 0) {
			*out = (store_cmp_state)i;
			return PQ_OK;
		}
	return pq_err_set(PQ_ERR_INVAL, "unknown campaign state '%.32s'", s ? s : "(null)");
}

const char *store_dep_state_name(store_dep_state st)
{
	return (unsigned)st < STORE_DEP_STATE_COUNT ? dep_names[st] : NULL;
}

int store_dep_state_parse(const char *s, store_dep_state *out)
{
	for (int i = 0; s && i < STORE_DEP_STATE_COUNT; i++)
		if (strcmp(s, dep_names[i]) == 0) {
			*out = (store_dep_state)i;
			return PQ_OK;
		}
	return pq_err_set(PQ_ERR_INVAL, "unknown deployment state '%.32s'", s ? s : "(null)");
}

bool store_dep_state_terminal(store_dep_state st)
{
	switch (st) {
	case STORE_DEP_COMPLETED:
	case STORE_DEP_DECLINED:
	case STORE_DEP_FAILED:
	case STORE_DEP_ROLLED_BACK:
	case STORE_DEP_CANCELLED:
	case STORE_DEP_TIMED_OUT:
		return true;
	default:
		return false;
	}
}

/* ---- campaigns -------------------------------------------------------------------------- */

#define CAMPAIGN_COLS                                                                              \
	"id, name, state, target_filter, policy, phases, created_by, created_ms, updated_ms,"      \
	" started_ms, current_phase, pause_reason, vehicle_timeout_ms, resume_failures"

void store_campaign_clear(store_campaign *c)
{
	if (!c)
		return;
	free(c->target_filter);
	free(c->policy);
	free(c->phases);
	memset(c, 0, sizeof(*c));
}

static int row_campaign(const store_row *r, void *dst)
{
	store_campaign *c = dst;
	char state[16];
	store__rd rd = store__rd_at(r, 0);
	store__rd_copy(&rd, c->id, sizeof(c->id));
	store__rd_copy(&rd, c->name, sizeof(c->name));
	store__rd_copy(&rd, state, sizeof(state));
	if (rd.rc == PQ_OK)
		rd.rc = store_cmp_state_parse(state, &c->state);
	store__rd_dup(&rd, &c->target_filter);
	store__rd_dup(&rd, &c->policy);
	store__rd_dup(&rd, &c->phases);
	store__rd_copy(&rd, c->created_by, sizeof(c->created_by));
	store__rd_i64(&rd, &c->created_ms);
	store__rd_i64(&rd, &c->updated_ms);
	store__rd_i64(&rd, &c->started_ms);
	store__rd_int(&rd, &c->current_phase);
	store__rd_copy(&rd, c->pause_reason, sizeof(c->pause_reason));
	store__rd_i64(&rd, &c->vehicle_timeout_ms);
	store__rd_i64(&rd, &c->resume_failures);
	if (rd.rc != PQ_OK)
		store_campaign_clear(c);
	return rd.rc;
}

static int release_id_row(const store_row *r, void *user)
{
	store_campaign *c = user;
	if (c->nreleases >= STORE_CAMPAIGN_RELEASES_MAX)
		return pq_err_set(PQ_ERR_FORMAT, "campaign with more than %d releases",
		                  STORE_CAMPAIGN_RELEASES_MAX);
	return store__col_copy(r, 0, c->release_ids[c->nreleases++], STORE_ID_MAX + 1);
}

static int load_release_ids(store *s, store_campaign *c)
{
	store_val p[] = {SV_TEXT(c->id)};
	c->nreleases = 0;
	return store_exec(s,
	                  "SELECT release_id FROM campaign_releases WHERE campaign_id = ?"
	                  " ORDER BY position, release_id",
	                  p, 1, release_id_row, c, NULL);
}

/* The release ids of a new campaign: 1..STORE_CAMPAIGN_RELEASES_MAX, none twice. */
static int check_release_ids(const store_campaign *c)
{
	if (c->nreleases < 1 || c->nreleases > STORE_CAMPAIGN_RELEASES_MAX)
		return pq_err_set(PQ_ERR_INVAL, "campaign: %d releases (1..%d)", c->nreleases,
		                  STORE_CAMPAIGN_RELEASES_MAX);
	for (int i = 0; i < c->nreleases; i++) {
		int rc = store__check_id(c->release_ids[i], "release id");
		if (rc != PQ_OK)
			return rc;
		for (int k = 0; k < i; k++)
			if (strcmp(c->release_ids[k], c->release_ids[i]) == 0)
				return pq_err_set(PQ_ERR_INVAL, "release %s listed twice",
				                  c->release_ids[i]);
	}
	return PQ_OK;
}

static int check_campaign(const store_campaign *c)
{
	int rc = store__check_id(c->id, "campaign id");
	if (rc != PQ_OK)
		return rc;
	rc = store__check_text(c->name, STORE_CAMPAIGN_NAME_MAX, true, "campaign name");
	if (rc != PQ_OK)
		return rc;
	if (!store_cmp_state_name(c->state))
		return pq_err_set(PQ_ERR_INVAL, "campaign state %d", (int)c->state);
	rc = store__check_json(c->target_filter, STORE_CAMPAIGN_JSON_MAX, "target filter");
	if (rc != PQ_OK)
		return rc;
	rc = store__check_json(c->policy, STORE_CAMPAIGN_JSON_MAX, "policy");
	if (rc != PQ_OK)
		return rc;
	rc = store__check_json(c->phases, STORE_CAMPAIGN_JSON_MAX, "phases");
	if (rc != PQ_OK)
		return rc;
	rc = store__check_text(c->created_by, STORE_ACTOR_MAX, false, "created by");
	if (rc != PQ_OK)
		return rc;
	rc = store__check_text(c->pause_reason, STORE_REASON_MAX, false, "pause reason");
	if (rc != PQ_OK)
		return rc;
	if (c->created_ms < 0 || c->updated_ms < 0 || c->started_ms < 0)
		return pq_err_set(PQ_ERR_INVAL, "campaign: negative time");
	if (c->vehicle_timeout_ms <= 0)
		return pq_err_set(PQ_ERR_INVAL, "campaign: vehicle timeout must be positive");
	return check_release_ids(c);
}

/* Links release i of campaign c, which must exist. */
static int campaign_add_release(store *s, const store_campaign *c, int i)
{
	int64_t n = 0;
	store_val q[] = {SV_TEXT(c->release_ids[i])};
	int rc = store__query_int(s, "SELECT COUNT(*) FROM releases WHERE id = ?", q, 1, &n);
	if (rc != PQ_OK)
		return rc;
	if (n == 0)
		return pq_err_set(PQ_ERR_NOTFOUND, "release %s does not exist", c->release_ids[i]);
	store_val p[] = {SV_TEXT(c->id), SV_TEXT(c->release_ids[i]), SV_INT(i)};
	return store_exec(s,
	                  "INSERT INTO campaign_releases (campaign_id, release_id, position)"
	                  " VALUES (?, ?, ?)",
	                  p, 3, NULL, NULL, NULL);
}

/* The rows of a new campaign, in the transaction store_campaign_insert opened. */
static int campaign_insert(store *s, const store_campaign *c)
{
	store_val p[] = {SV_TEXT(c->id),
	                 SV_TEXT(c->name),
	                 SV_TEXT(store_cmp_state_name(c->state)),
	                 SV_TEXT(c->target_filter ? c->target_filter : "{}"),
	                 SV_TEXT(c->policy ? c->policy : "{}"),
	                 SV_TEXT(c->phases ? c->phases : "[]"),
	                 SV_TEXT(c->created_by),
	                 SV_INT(c->created_ms),
	                 SV_INT(c->updated_ms),
	                 SV_INT(c->started_ms),
	                 SV_INT(c->current_phase),
	                 SV_TEXT(c->pause_reason),
	                 SV_INT(c->vehicle_timeout_ms)};
	int rc = store_exec(s,
	                    "INSERT INTO campaigns (id, name, state, target_filter, policy, phases,"
	                    " created_by, created_ms, updated_ms, started_ms, current_phase,"
	                    " pause_reason, vehicle_timeout_ms)"
	                    " VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
	                    p, 13, NULL, NULL, NULL);
	if (rc == PQ_ERR_EXISTS)
		return pq_err_wrap(rc, "campaign %s exists", c->id);
	if (rc != PQ_OK)
		return rc;
	for (int i = 0; i < c->nreleases; i++) {
		rc = campaign_add_release(s, c, i);
		if (rc != PQ_OK)
			return rc;
	}
	return PQ_OK;
}

int store_campaign_insert(store *s, const store_campaign *c)
{
	if (!s || !c)
		return pq_err_set(PQ_ERR_INVAL, "store_campaign_insert: bad arguments");
	int rc = check_campaign(c);
	if (rc != PQ_OK)
		return rc;
	rc = store_begin(s);
	if (rc != PQ_OK)
		return rc;
	return store__end(s, campaign_insert(s, c));
}

int store_campaign_get(store *s, const char *id, store_campaign *out)
{
	if (!s || !out)
		return pq_err_set(PQ_ERR_INVAL, "store_campaign_get: bad arguments");
	memset(out, 0, sizeof(*out));
	int rc = store__check_id(id, "campaign id");
	if (rc != PQ_OK)
		return rc;
	bool found = false;
	store_val p[] = {SV_TEXT(id)};
	rc = store__get_one(s, "SELECT " CAMPAIGN_COLS " FROM campaigns WHERE id = ?", p, 1,
	                    row_campaign, out, "campaign", &found);
	if (rc != PQ_OK)
		goto out;
	if (!found) {
		rc = pq_err_set(PQ_ERR_NOTFOUND, "no campaign %s", id);
		goto out;
	}
	rc = load_release_ids(s, out);
out:
	if (rc != PQ_OK)
		store_campaign_clear(out);
	return rc;
}

/* Rows of a list are copied first, then handed out with their release ids (a second
 * query may not run while the first one's rows are being read on every backend). */
typedef struct {
	store_campaign *rows;
	int n;
} campaign_rows;

static int campaign_list_row(const store_row *r, void *user)
{
	campaign_rows *l = user;
	memset(&l->rows[l->n], 0, sizeof(l->rows[0]));
	int rc = row_campaign(r, &l->rows[l->n]);
	if (rc == PQ_OK)
		l->n++;
	return rc;
}

/* Reads one page of campaigns into l (rows for limit of them) and hands each out. */
static int campaign_page(store *s, const char *where, store_val *p, int np, campaign_rows *l,
                         int (*fn)(const store_campaign *c, void *user), void *user)
{
	char sql[SQL_MAX];
	int rc = store__build_sql(sql, sizeof(sql), "SELECT " CAMPAIGN_COLS " FROM campaigns",
	                          where, " ORDER BY created_ms DESC, id DESC LIMIT ? OFFSET ?");
	if (rc != PQ_OK)
		return rc;
	rc = store_exec(s, sql, p, np, campaign_list_row, l, NULL);
	for (int i = 0; i < l->n && rc == PQ_OK; i++) {
		rc = load_release_ids(s, &l->rows[i]);
		if (rc == PQ_OK)
			rc = fn(&l->rows[i], user);
	}
	return rc;
}

int store_campaign_list(store *s, int state, const store_page *pg,
                        int (*fn)(const store_campaign *c, void *user), void *user, int64_t *total)
{
	int64_t limit, offset;
	char sql[SQL_MAX];
	store_val p[3];
	int np = 0;
	if (total)
		*total = 0;
	if (!s)
		return pq_err_set(PQ_ERR_INVAL, "store_campaign_list: no store");
	int rc = store__page_args(pg, &limit, &offset);
	if (rc != PQ_OK)
		return rc;
	if (state >= STORE_CMP_STATE_COUNT)
		return pq_err_set(PQ_ERR_INVAL, "campaign state %d", state);
	const char *where = state >= 0 ? " WHERE state = ?" : "";
	if (state >= 0)
		p[np++] = SV_TEXT(store_cmp_state_name((store_cmp_state)state));
	if (total) {
		rc =
		    store__build_sql(sql, sizeof(sql), "SELECT COUNT(*) FROM campaigns", where, "");
		if (rc == PQ_OK)
			rc = store__query_int(s, sql, p, np, total);
		if (rc != PQ_OK)
			return rc;
	}
	if (!fn)
		return PQ_OK;
	campaign_rows l = {.rows = calloc((size_t)limit, sizeof(store_campaign))};
	if (!l.rows)
		return pq_err_set(PQ_ERR_NOMEM, "campaign list");
	p[np++] = SV_INT(limit);
	p[np++] = SV_INT(offset);
	rc = campaign_page(s, where, p, np, &l, fn, user);
	for (int i = 0; i < l.n; i++)
		store_campaign_clear(&l.rows[i]);
	free(l.rows);
	return rc;
}

/* After an UPDATE of campaign id that changed `changes` rows: *changed, and whether a
 * campaign that changed nothing exists (PQ_ERR_NOTFOUND when not). */
static int campaign_missing(store *s, const char *id, int rc, int64_t changes, bool *changed)
{
	if (changed)
		*changed = changes > 0;
	if (rc != PQ_OK || changes > 0)
		return rc;
	int64_t n = 0;
	store_val p[] = {SV_TEXT(id)};
	rc = store__query_int(s, "SELECT COUNT(*) FROM campaigns WHERE id = ?", p, 1, &n);
	if (rc == PQ_OK && n == 0)
		rc = pq_err_set(PQ_ERR_NOTFOUND, "no campaign %s", id);
	return rc;
}

int store_campaign_set_state(store *s, const char *id, int from, store_cmp_state to,
                             const char *pause_reason, int64_t resume_failures, int64_t now_ms,
                             bool *changed)
{
	if (changed)
		*changed = false;
	if (!s)
		return pq_err_set(PQ_ERR_INVAL, "store_campaign_set_state: no store");
	int rc = store__check_id(id, "campaign id");
	if (rc != PQ_OK)
		return rc;
	rc = store__check_text(pause_reason ? pause_reason : "", STORE_REASON_MAX, false,
	                       "pause reason");
	if (rc != PQ_OK)
		return rc;
	if (!store_cmp_state_name(to) || from >= STORE_CMP_STATE_COUNT)
		return pq_err_set(PQ_ERR_INVAL, "campaign state %d -> %d", from, (int)to);
	const char *tn = store_cmp_state_name(to);
	int running = to == STORE_CMP_RUNNING;
	store_val p[] = {
	    SV_TEXT(tn),     SV_TEXT(pause_reason ? pause_reason : ""),
	    SV_INT(now_ms),  SV_INT(running),
	    SV_INT(now_ms),  SV_INT(running),
	    SV_INT(running), SV_INT(resume_failures),
	    SV_TEXT(id),     SV_TEXT(from >= 0 ? store_cmp_state_name((store_cmp_state)from) : ""),
	    SV_INT(from < 0)};
	int64_t changes = 0;
	rc = store_exec(s,
	                "UPDATE campaigns SET state = ?, pause_reason = ?, updated_ms = ?,"
	                " started_ms = CASE WHEN ? = 1 AND started_ms = 0 THEN ?"
	                " ELSE started_ms END,"
	                " current_phase = CASE WHEN ? = 1 AND current_phase = 0 THEN 1"
	                " ELSE current_phase END,"
	                " resume_failures = CASE WHEN ? = 1 THEN ? ELSE resume_failures END"
	                " WHERE id = ? AND (state = ? OR ? = 1)",
	                p, 11, NULL, NULL, &changes);
	return campaign_missing(s, id, rc, changes, changed);
}

int store_campaign_set_phase(store *s, const char *id, int from, int to, int64_t now_ms,
                             bool *changed)
{
	if (changed)
		*changed = false;
	if (!s)
		return pq_err_set(PQ_ERR_INVAL, "store_campaign_set_phase: no store");
	int rc = store__check_id(id, "campaign id");
	if (rc != PQ_OK)
		return rc;
	if (from < 0 || to < 0)
		return pq_err_set(PQ_ERR_INVAL, "campaign phase %d -> %d", from, to);
	store_val p[] = {SV_INT(to), SV_INT(now_ms), SV_TEXT(id), SV_INT(from)};
	int64_t changes = 0;
	rc = store_exec(s,
	                "UPDATE campaigns SET current_phase = ?, resume_failures = 0,"
	                " updated_ms = ? WHERE id = ? AND current_phase = ?",
	                p, 4, NULL, NULL, &changes);
	return campaign_missing(s, id, rc, changes, changed);
}
