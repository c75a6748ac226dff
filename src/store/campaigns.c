/* campaigns.c: campaigns, deployments, work claims, MQTT ids seen and Uptane metadata
 * (store/campaign.h), once for both backends. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>

#include "store/campaign.h"
#include "store/store_int.h"

#define SQL_MAX         2048
#define TRANSITIONS_MAX (STORE_PAGE_MAX * 10)

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

/* SQL list of the terminal states, for NOT IN (...). */
#define TERMINAL_SQL "('completed', 'declined', 'failed', 'rolled_back', 'cancelled', 'timed_out')"

/* ---- checks ----------------------------------------------------------------------------- */

static int chk_sha256(const char *v, const char *what)
{
	return store__check_sha256(v, false, what);
}

static int chk_id(const char *id, const char *what)
{
	return store__check_text(id, STORE_ID_MAX, true, what);
}

static int chk_vin(const char *vin)
{
	return store__check_text(vin, STORE_VIN_MAX, true, "VIN");
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

static int row_campaign(const store_row *r, store_campaign *c)
{
	char state[16];
	int rc = store__col_copy(r, 0, c->id, sizeof(c->id));
	if (rc == PQ_OK)
		rc = store__col_copy(r, 1, c->name, sizeof(c->name));
	if (rc == PQ_OK)
		rc = store__col_copy(r, 2, state, sizeof(state));
	if (rc == PQ_OK)
		rc = store_cmp_state_parse(state, &c->state);
	if (rc == PQ_OK)
		rc = store__col_dup(r, 3, &c->target_filter);
	if (rc == PQ_OK)
		rc = store__col_dup(r, 4, &c->policy);
	if (rc == PQ_OK)
		rc = store__col_dup(r, 5, &c->phases);
	if (rc == PQ_OK)
		rc = store__col_copy(r, 6, c->created_by, sizeof(c->created_by));
	if (rc == PQ_OK)
		rc = store__col_i64(r, 7, &c->created_ms);
	if (rc == PQ_OK)
		rc = store__col_i64(r, 8, &c->updated_ms);
	if (rc == PQ_OK)
		rc = store__col_i64(r, 9, &c->started_ms);
	if (rc == PQ_OK)
		rc = store__col_int(r, 10, &c->current_phase);
	if (rc == PQ_OK)
		rc = store__col_copy(r, 11, c->pause_reason, sizeof(c->pause_reason));
	if (rc == PQ_OK)
		rc = store__col_i64(r, 12, &c->vehicle_timeout_ms);
	if (rc == PQ_OK)
		rc = store__col_i64(r, 13, &c->resume_failures);
	if (rc != PQ_OK)
		store_campaign_clear(c);
	return rc;
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

int store_campaign_insert(store *s, const store_campaign *c)
{
	if (!s || !c)
		return pq_err_set(PQ_ERR_INVAL, "store_campaign_insert: bad arguments");
	int rc = chk_id(c->id, "campaign id");
	if (rc == PQ_OK)
		rc = store__check_text(c->name, STORE_CAMPAIGN_NAME_MAX, true, "campaign name");
	if (rc == PQ_OK && !store_cmp_state_name(c->state))
		rc = pq_err_set(PQ_ERR_INVAL, "campaign state %d", (int)c->state);
	if (rc == PQ_OK)
		rc = store__check_json(c->target_filter, STORE_CAMPAIGN_JSON_MAX, "target filter");
	if (rc == PQ_OK)
		rc = store__check_json(c->policy, STORE_CAMPAIGN_JSON_MAX, "policy");
	if (rc == PQ_OK)
		rc = store__check_json(c->phases, STORE_CAMPAIGN_JSON_MAX, "phases");
	if (rc == PQ_OK)
		rc = store__check_text(c->created_by, STORE_ACTOR_MAX, false, "created by");
	if (rc == PQ_OK)
		rc = store__check_text(c->pause_reason, STORE_REASON_MAX, false, "pause reason");
	if (rc == PQ_OK && (c->created_ms < 0 || c->updated_ms < 0 || c->started_ms < 0))
		rc = pq_err_set(PQ_ERR_INVAL, "campaign: negative time");
	if (rc == PQ_OK && c->vehicle_timeout_ms <= 0)
		rc = pq_err_set(PQ_ERR_INVAL, "campaign: vehicle timeout must be positive");
	if (rc == PQ_OK && (c->nreleases < 1 || c->nreleases > STORE_CAMPAIGN_RELEASES_MAX))
		rc = pq_err_set(PQ_ERR_INVAL, "campaign: %d releases (1..%d)", c->nreleases,
		                STORE_CAMPAIGN_RELEASES_MAX);
	for (int i = 0; rc == PQ_OK && i < c->nreleases; i++) {
		rc = chk_id(c->release_ids[i], "release id");
		for (int k = 0; rc == PQ_OK && k < i; k++)
			if (strcmp(c->release_ids[k], c->release_ids[i]) == 0)
				rc = pq_err_set(PQ_ERR_INVAL, "release %s listed twice",
				                c->release_ids[i]);
	}
	if (rc != PQ_OK)
		return rc;
	rc = store_begin(s);
	if (rc != PQ_OK)
		return rc;
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
	rc = store_exec(s,
	                "INSERT INTO campaigns (id, name, state, target_filter, policy, phases,"
	                " created_by, created_ms, updated_ms, started_ms, current_phase,"
	                " pause_reason, vehicle_timeout_ms)"
	                " VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
	                p, 13, NULL, NULL, NULL);
	if (rc == PQ_ERR_EXISTS)
		pq_err_wrap(rc, "campaign %s exists", c->id);
	for (int i = 0; rc == PQ_OK && i < c->nreleases; i++) {
		int64_t n = 0;
		store_val q[] = {SV_TEXT(c->release_ids[i])};
		rc = store__query_int(s, "SELECT COUNT(*) FROM releases WHERE id = ?", q, 1, &n);
		if (rc == PQ_OK && n == 0)
			rc = pq_err_set(PQ_ERR_NOTFOUND, "release %s does not exist",
			                c->release_ids[i]);
		store_val r[] = {SV_TEXT(c->id), SV_TEXT(c->release_ids[i]), SV_INT(i)};
		if (rc == PQ_OK)
			rc = store_exec(s,
			                "INSERT INTO campaign_releases (campaign_id, release_id,"
			                " position) VALUES (?, ?, ?)",
			                r, 3, NULL, NULL, NULL);
	}
	if (rc != PQ_OK) {
		store_rollback(s);
		return rc;
	}
	return store_commit(s);
}

typedef struct {
	store_campaign *out;
	bool found;
} campaign_get_ctx;

static int campaign_get_row(const store_row *r, void *user)
{
	campaign_get_ctx *g = user;
	if (g->found)
		return pq_err_set(PQ_ERR_FORMAT, "two campaigns with one id");
	g->found = true;
	return row_campaign(r, g->out);
}

int store_campaign_get(store *s, const char *id, store_campaign *out)
{
	if (!s || !out)
		return pq_err_set(PQ_ERR_INVAL, "store_campaign_get: bad arguments");
	memset(out, 0, sizeof(*out));
	int rc = chk_id(id, "campaign id");
	if (rc != PQ_OK)
		return rc;
	campaign_get_ctx g = {.out = out};
	store_val p[] = {SV_TEXT(id)};
	rc = store_exec(s, "SELECT " CAMPAIGN_COLS " FROM campaigns WHERE id = ?", p, 1,
	                campaign_get_row, &g, NULL);
	if (rc == PQ_OK && !g.found)
		rc = pq_err_set(PQ_ERR_NOTFOUND, "no campaign %s", id);
	if (rc == PQ_OK)
		rc = load_release_ids(s, out);
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

int store_campaign_list(store *s, int state, const store_page *pg,
                        int (*fn)(const store_campaign *c, void *user), void *user, int64_t *total)
{
	int64_t limit, offset;
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
	store_val p[3];
	int np = 0;
	if (state >= 0)
		p[np++] = SV_TEXT(store_cmp_state_name((store_cmp_state)state));
	char sql[SQL_MAX];
	if (total) {
		snprintf(sql, sizeof(sql), "SELECT COUNT(*) FROM campaigns%s", where);
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
	snprintf(sql, sizeof(sql),
	         "SELECT " CAMPAIGN_COLS " FROM campaigns%s"
	         " ORDER BY created_ms DESC, id DESC LIMIT ? OFFSET ?",
	         where);
	rc = store_exec(s, sql, p, np, campaign_list_row, &l, NULL);
	for (int i = 0; i < l.n; i++) {
		if (rc == PQ_OK)
			rc = load_release_ids(s, &l.rows[i]);
		if (rc == PQ_OK)
			rc = fn(&l.rows[i], user);
		store_campaign_clear(&l.rows[i]);
	}
	free(l.rows);
	return rc;
}

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
	int rc = chk_id(id, "campaign id");
	if (rc == PQ_OK)
		rc = store__check_text(pause_reason ? pause_reason : "", STORE_REASON_MAX, false,
		                       "pause reason");
	if (rc == PQ_OK && (!store_cmp_state_name(to) || from >= STORE_CMP_STATE_COUNT))
		rc = pq_err_set(PQ_ERR_INVAL, "campaign state %d -> %d", from, (int)to);
	if (rc != PQ_OK)
		return rc;
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
	int rc = chk_id(id, "campaign id");
	if (rc == PQ_OK && (from < 0 || to < 0))
		rc = pq_err_set(PQ_ERR_INVAL, "campaign phase %d -> %d", from, to);
	if (rc != PQ_OK)
		return rc;
	store_val p[] = {SV_INT(to), SV_INT(now_ms), SV_TEXT(id), SV_INT(from)};
	int64_t changes = 0;
	rc = store_exec(s,
	                "UPDATE campaigns SET current_phase = ?, resume_failures = 0,"
	                " updated_ms = ? WHERE id = ? AND current_phase = ?",
	                p, 4, NULL, NULL, &changes);
	return campaign_missing(s, id, rc, changes, changed);
}

/* ---- deployments --------------------------------------------------------------------- */

#define DEP_COLS                                                                                   \
	"campaign_id, vin, state, phase, attempt, error_code, claimed_by, claimed_until,"          \
	" updated_ms, next_ms, last_msg_ms, notify_count"

static int row_deployment(const store_row *r, int o, store_deployment *d)
{
	char state[16];
	memset(d, 0, sizeof(*d));
	int rc = store__col_copy(r, o + 0, d->campaign_id, sizeof(d->campaign_id));
	if (rc == PQ_OK)
		rc = store__col_copy(r, o + 1, d->vin, sizeof(d->vin));
	if (rc == PQ_OK)
		rc = store__col_copy(r, o + 2, state, sizeof(state));
	if (rc == PQ_OK)
		rc = store_dep_state_parse(state, &d->state);
	if (rc == PQ_OK)
		rc = store__col_int(r, o + 3, &d->phase);
	if (rc == PQ_OK)
		rc = store__col_int(r, o + 4, &d->attempt);
	if (rc == PQ_OK)
		rc = store__col_copy(r, o + 5, d->error_code, sizeof(d->error_code));
	if (rc == PQ_OK)
		rc = store__col_copy(r, o + 6, d->claimed_by, sizeof(d->claimed_by));
	if (rc == PQ_OK)
		rc = store__col_i64(r, o + 7, &d->claimed_until);
	if (rc == PQ_OK)
		rc = store__col_i64(r, o + 8, &d->updated_ms);
	if (rc == PQ_OK)
		rc = store__col_i64(r, o + 9, &d->next_ms);
	if (rc == PQ_OK)
		rc = store__col_i64(r, o + 10, &d->last_msg_ms);
	if (rc == PQ_OK)
		rc = store__col_int(r, o + 11, &d->notify_count);
	return rc;
}

static int chk_target(const store_target *t)
{
	int rc = chk_vin(t->vin);
	if (rc == PQ_OK)
		rc = store__check_text(t->ecu_id, STORE_NAME_MAX, true, "target ECU");
	if (rc == PQ_OK)
		rc = chk_id(t->release_id, "target release");
	if (rc == PQ_OK)
		rc = store__check_text(t->hardware_id, STORE_NAME_MAX, false, "target hardware id");
	if (rc == PQ_OK)
		rc = store__check_text(t->software_type, sizeof(t->software_type) - 1, true,
		                       "target software type");
	if (rc == PQ_OK)
		rc = store__check_text(t->from_version, STORE_VERSION_MAX, false,
		                       "target from version");
	if (rc == PQ_OK)
		rc = store__check_text(t->to_version, STORE_VERSION_MAX, true, "target version");
	if (rc == PQ_OK && strcmp(t->package, "delta") != 0 && strcmp(t->package, "full") != 0)
		rc =
		    pq_err_set(PQ_ERR_INVAL, "target package '%.8s' not delta or full", t->package);
	if (rc == PQ_OK)
		rc = chk_sha256(t->file_sha256, "target file");
	if (rc == PQ_OK && t->file_size < 0)
		rc = pq_err_set(PQ_ERR_INVAL, "target file size negative");
	return rc;
}

static int add_transition(store *s, const char *cid, const char *vin, const char *from,
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

int store_deployment_insert(store *s, const char *campaign_id, const store_deployment *d, size_t n,
                            const store_target *t, size_t nt, int64_t now_ms)
{
	if (!s || (n && !d) || (nt && !t))
		return pq_err_set(PQ_ERR_INVAL, "store_deployment_insert: bad arguments");
	int rc = chk_id(campaign_id, "campaign id");
	for (size_t i = 0; rc == PQ_OK && i < n; i++) {
		rc = chk_vin(d[i].vin);
		if (rc == PQ_OK && d[i].phase < 1)
			rc = pq_err_set(PQ_ERR_INVAL, "deployment %s: phase %d < 1", d[i].vin,
			                d[i].phase);
	}
	for (size_t i = 0; rc == PQ_OK && i < nt; i++)
		rc = chk_target(&t[i]);
	if (rc != PQ_OK)
		return rc;
	rc = store_begin(s);
	if (rc != PQ_OK)
		return rc;
	int64_t cnt = 0;
	store_val cp[] = {SV_TEXT(campaign_id)};
	rc = store__query_int(s, "SELECT COUNT(*) FROM campaigns WHERE id = ?", cp, 1, &cnt);
	if (rc == PQ_OK && cnt == 0)
		rc = pq_err_set(PQ_ERR_NOTFOUND, "no campaign %s", campaign_id);
	for (size_t i = 0; rc == PQ_OK && i < n; i++) {
		store_val q[] = {SV_TEXT(d[i].vin)};
		rc = store__query_int(s, "SELECT COUNT(*) FROM vehicles WHERE vin = ?", q, 1, &cnt);
		if (rc == PQ_OK && cnt == 0)
			rc = pq_err_set(PQ_ERR_NOTFOUND, "vehicle %s is not registered", d[i].vin);
		store_val p[] = {SV_TEXT(campaign_id), SV_TEXT(d[i].vin), SV_INT(d[i].phase),
		                 SV_INT(now_ms)};
		if (rc == PQ_OK)
			rc = store_exec(s,
			                "INSERT INTO deployments (campaign_id, vin, state, phase,"
			                " updated_ms) VALUES (?, ?, 'pending', ?, ?)",
			                p, 4, NULL, NULL, NULL);
		if (rc == PQ_ERR_EXISTS)
			pq_err_wrap(rc, "vehicle %s is in campaign %s already", d[i].vin,
			            campaign_id);
		if (rc == PQ_OK)
			rc = add_transition(s, campaign_id, d[i].vin, "", "pending", "created",
			                    now_ms);
	}
	for (size_t i = 0; rc == PQ_OK && i < nt; i++) {
		store_val p[] = {SV_TEXT(campaign_id),       SV_TEXT(t[i].vin),
		                 SV_TEXT(t[i].ecu_id),       SV_TEXT(t[i].release_id),
		                 SV_TEXT(t[i].hardware_id),  SV_TEXT(t[i].software_type),
		                 SV_TEXT(t[i].from_version), SV_TEXT(t[i].to_version),
		                 SV_TEXT(t[i].package),      SV_TEXT(t[i].file_sha256),
		                 SV_INT(t[i].file_size)};
		rc = store_exec(s,
		                "INSERT INTO deployment_targets (campaign_id, vin, ecu_id,"
		                " release_id, hardware_id, software_type, from_version, to_version,"
		                " package, file_sha256, file_size)"
		                " VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
		                p, 11, NULL, NULL, NULL);
		if (rc != PQ_OK)
			pq_err_wrap(rc, "target %s/%s", t[i].vin, t[i].ecu_id);
	}
	if (rc != PQ_OK) {
		store_rollback(s);
		return rc;
	}
	return store_commit(s);
}

typedef struct {
	store_deployment *out;
	bool found;
} dep_get_ctx;

static int dep_get_row(const store_row *r, void *user)
{
	dep_get_ctx *g = user;
	if (g->found)
		return pq_err_set(PQ_ERR_FORMAT, "two deployments with one key");
	g->found = true;
	return row_deployment(r, 0, g->out);
}

int store_deployment_get(store *s, const char *campaign_id, const char *vin, store_deployment *out)
{
	if (!s || !out)
		return pq_err_set(PQ_ERR_INVAL, "store_deployment_get: bad arguments");
	memset(out, 0, sizeof(*out));
	int rc = chk_id(campaign_id, "campaign id");
	if (rc == PQ_OK)
		rc = chk_vin(vin);
	if (rc != PQ_OK)
		return rc;
	dep_get_ctx g = {.out = out};
	store_val p[] = {SV_TEXT(campaign_id), SV_TEXT(vin)};
	rc = store_exec(s, "SELECT " DEP_COLS " FROM deployments WHERE campaign_id = ? AND vin = ?",
	                p, 2, dep_get_row, &g, NULL);
	if (rc == PQ_OK && !g.found)
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
	int rc = row_deployment(r, 0, &d);
	return rc == PQ_OK ? l->fn(&d, l->user) : rc;
}

int store_deployment_list(store *s, const char *campaign_id, const store_deployment_filter *f,
                          const store_page *pg, int (*fn)(const store_deployment *d, void *user),
                          void *user, int64_t *total)
{
	int64_t limit, offset;
	if (total)
		*total = 0;
	if (!s)
		return pq_err_set(PQ_ERR_INVAL, "store_deployment_list: no store");
	int rc = chk_id(campaign_id, "campaign id");
	if (rc == PQ_OK)
		rc = store__page_args(pg, &limit, &offset);
	if (rc != PQ_OK)
		return rc;
	char where[256] = " WHERE campaign_id = ?";
	store_val p[5];
	int np = 0;
	p[np++] = SV_TEXT(campaign_id);
	if (f && f->state >= 0) {
		if (!store_dep_state_name((store_dep_state)f->state))
			return pq_err_set(PQ_ERR_INVAL, "deployment state %d", f->state);
		strcat(where, " AND state = ?");
		p[np++] = SV_TEXT(store_dep_state_name((store_dep_state)f->state));
	}
	if (f && f->phase >= 0) {
		strcat(where, " AND phase = ?");
		p[np++] = SV_INT(f->phase);
	}
	if (f && f->open)
		strcat(where, " AND state NOT IN " TERMINAL_SQL);
	char sql[SQL_MAX];
	if (total) {
		snprintf(sql, sizeof(sql), "SELECT COUNT(*) FROM deployments%s", where);
		rc = store__query_int(s, sql, p, np, total);
		if (rc != PQ_OK)
			return rc;
	}
	if (!fn)
		return PQ_OK;
	p[np++] = SV_INT(limit);
	p[np++] = SV_INT(offset);
	snprintf(sql, sizeof(sql),
	         "SELECT " DEP_COLS " FROM deployments%s ORDER BY vin LIMIT ? OFFSET ?", where);
	dep_list_ctx l = {.fn = fn, .user = user};
	return store_exec(s, sql, p, np, dep_list_row, &l, NULL);
}

int store_deployment_list_vin(store *s, const char *vin, bool open_only,
                              int (*fn)(const store_deployment *d, void *user), void *user)
{
	if (!s || !fn)
		return pq_err_set(PQ_ERR_INVAL, "store_deployment_list_vin: bad arguments");
	int rc = chk_vin(vin);
	if (rc != PQ_OK)
		return rc;
	store_val p[] = {SV_TEXT(vin), SV_INT(STORE_PAGE_MAX)};
	char sql[SQL_MAX];
	snprintf(sql, sizeof(sql),
	         "SELECT d.campaign_id, d.vin, d.state, d.phase, d.attempt, d.error_code,"
	         " d.claimed_by, d.claimed_until, d.updated_ms, d.next_ms, d.last_msg_ms,"
	         " d.notify_count FROM deployments d JOIN campaigns c ON c.id = d.campaign_id"
	         " WHERE d.vin = ?%s ORDER BY c.created_ms DESC, d.campaign_id LIMIT ?",
	         open_only ? " AND d.state NOT IN " TERMINAL_SQL : "");
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
	if (rc == PQ_OK)
		rc = store_dep_state_parse(store__col(r, 1), &st);
	if (rc == PQ_OK)
		rc = store__col_i64(r, 2, &n);
	return rc == PQ_OK ? c->fn(phase, st, n, c->user) : rc;
}

int store_deployment_counts(store *s, const char *campaign_id,
                            int (*fn)(int phase, store_dep_state st, int64_t n, void *user),
                            void *user)
{
	if (!s || !fn)
		return pq_err_set(PQ_ERR_INVAL, "store_deployment_counts: bad arguments");
	int rc = chk_id(campaign_id, "campaign id");
	if (rc != PQ_OK)
		return rc;
	count_ctx c = {.fn = fn, .user = user};
	store_val p[] = {SV_TEXT(campaign_id)};
	return store_exec(s,
	                  "SELECT phase, state, COUNT(*) FROM deployments WHERE campaign_id = ?"
	                  " GROUP BY phase, state ORDER BY phase, state",
	                  p, 1, count_row, &c, NULL);
}

typedef struct {
	int (*fn)(const store_target *t, void *user);
	void *user;
} target_ctx;

static int target_row(const store_row *r, void *user)
{
	target_ctx *c = user;
	store_target t;
	memset(&t, 0, sizeof(t));
	int rc = store__col_copy(r, 0, t.vin, sizeof(t.vin));
	if (rc == PQ_OK)
		rc = store__col_copy(r, 1, t.ecu_id, sizeof(t.ecu_id));
	if (rc == PQ_OK)
		rc = store__col_copy(r, 2, t.release_id, sizeof(t.release_id));
	if (rc == PQ_OK)
		rc = store__col_copy(r, 3, t.hardware_id, sizeof(t.hardware_id));
	if (rc == PQ_OK)
		rc = store__col_copy(r, 4, t.software_type, sizeof(t.software_type));
	if (rc == PQ_OK)
		rc = store__col_copy(r, 5, t.from_version, sizeof(t.from_version));
	if (rc == PQ_OK)
		rc = store__col_copy(r, 6, t.to_version, sizeof(t.to_version));
	if (rc == PQ_OK)
		rc = store__col_copy(r, 7, t.package, sizeof(t.package));
	if (rc == PQ_OK)
		rc = store__col_copy(r, 8, t.file_sha256, sizeof(t.file_sha256));
	if (rc == PQ_OK)
		rc = store__col_i64(r, 9, &t.file_size);
	return rc == PQ_OK ? c->fn(&t, c->user) : rc;
}

int store_target_list(store *s, const char *campaign_id, const char *vin,
                      int (*fn)(const store_target *t, void *user), void *user)
{
	if (!s || !fn)
		return pq_err_set(PQ_ERR_INVAL, "store_target_list: bad arguments");
	int rc = chk_id(campaign_id, "campaign id");
	if (rc == PQ_OK)
		rc = chk_vin(vin);
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

/* Appends upd's assignments to sql and its parameters to p. */
static int update_sets(const store_dep_update *u, char *sql, size_t cap, store_val *p, int *np)
{
	if (!u)
		return PQ_OK;
	if (u->error_code) {
		int rc = store__check_text(u->error_code, STORE_NAME_MAX, false, "error code");
		if (rc != PQ_OK)
			return rc;
	}
	if (u->set_next) {
		strncat(sql, ", next_ms = ?", cap - strlen(sql) - 1);
		p[(*np)++] = SV_INT(u->next_ms);
	}
	if (u->set_last_msg) {
		strncat(sql,
		        ", last_msg_ms = CASE WHEN last_msg_ms > ? THEN last_msg_ms ELSE ? END",
		        cap - strlen(sql) - 1);
		p[(*np)++] = SV_INT(u->last_msg_ms);
		p[(*np)++] = SV_INT(u->last_msg_ms);
	}
	if (u->notified)
		strncat(sql, ", notify_count = notify_count + 1", cap - strlen(sql) - 1);
	if (u->error_code) {
		strncat(sql, ", error_code = ?", cap - strlen(sql) - 1);
		p[(*np)++] = SV_TEXT(u->error_code);
	}
	if (u->release_claim)
		strncat(sql, ", claimed_by = NULL, claimed_until = 0", cap - strlen(sql) - 1);
	return PQ_OK;
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
	char sql[SQL_MAX] = "UPDATE deployments SET state = ?, updated_ms = ?";
	store_val p[16];
	int np = 0;
	p[np++] = SV_TEXT(store_dep_state_name(to));
	p[np++] = SV_INT(now_ms);
	int rc = update_sets(upd, sql, sizeof(sql), p, &np);
	if (rc != PQ_OK)
		return rc;
	strncat(sql, " WHERE campaign_id = ? AND vin = ? AND state = ?",
	        sizeof(sql) - strlen(sql) - 1);
	p[np++] = SV_TEXT(cid);
	p[np++] = SV_TEXT(vin);
	p[np++] = SV_TEXT(store_dep_state_name(from));
	if (upd && upd->idle_before > 0) {
		strncat(sql, " AND last_msg_ms < ?", sizeof(sql) - strlen(sql) - 1);
		p[np++] = SV_INT(upd->idle_before);
	}
	return store_exec(s, sql, p, np, NULL, NULL, changes);
}

static int dep_key_checks(store *s, const char *cid, const char *vin, store_dep_state from,
                          store_dep_state to)
{
	if (!s)
		return pq_err_set(PQ_ERR_INVAL, "deployment change: no store");
	int rc = chk_id(cid, "campaign id");
	if (rc == PQ_OK)
		rc = chk_vin(vin);
	if (rc == PQ_OK && (!store_dep_state_name(from) || !store_dep_state_name(to)))
		rc = pq_err_set(PQ_ERR_INVAL, "deployment state %d -> %d", (int)from, (int)to);
	return rc;
}

int store_deployment_transition(store *s, const char *campaign_id, const char *vin,
                                store_dep_state from, store_dep_state to, const char *cause,
                                int64_t now_ms, const store_dep_update *upd, bool *changed)
{
	if (changed)
		*changed = false;
	int rc = dep_key_checks(s, campaign_id, vin, from, to);
	if (rc == PQ_OK)
		rc = store__check_text(cause ? cause : "", STORE_REASON_MAX, false,
		                       "transition cause");
	if (rc != PQ_OK)
		return rc;
	rc = store_begin(s);
	if (rc != PQ_OK)
		return rc;
	int64_t changes = 0;
	rc = dep_cas(s, campaign_id, vin, from, to, now_ms, upd, &changes);
	if (rc == PQ_OK && changes == 1)
		rc = add_transition(s, campaign_id, vin, store_dep_state_name(from),
		                    store_dep_state_name(to), cause ? cause : "", now_ms);
	else if (rc == PQ_OK)
		rc = dep_exists(s, campaign_id, vin);
	if (rc != PQ_OK) {
		store_rollback(s);
		return rc;
	}
	rc = store_commit(s);
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
	int rc = store__col_i64(r, 0, &t.seq);
	if (rc == PQ_OK)
		rc = store__col_copy(r, 1, t.from_state, sizeof(t.from_state));
	if (rc == PQ_OK)
		rc = store__col_copy(r, 2, t.to_state, sizeof(t.to_state));
	if (rc == PQ_OK)
		rc = store__col_i64(r, 3, &t.at_ms);
	if (rc == PQ_OK)
		rc = store__col_copy(r, 4, t.cause, sizeof(t.cause));
	return rc == PQ_OK ? c->fn(&t, c->user) : rc;
}

int store_transition_list(store *s, const char *campaign_id, const char *vin,
                          int (*fn)(const store_transition *t, void *user), void *user)
{
	if (!s || !fn)
		return pq_err_set(PQ_ERR_INVAL, "store_transition_list: bad arguments");
	int rc = chk_id(campaign_id, "campaign id");
	if (rc == PQ_OK)
		rc = chk_vin(vin);
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

/* ---- claims ------------------------------------------------------------------------------ */

typedef struct {
	store_deployment *rows;
	int n, cap;
} claim_rows;

static int claim_row(const store_row *r, void *user)
{
	claim_rows *c = user;
	if (c->n >= c->cap)
		return pq_err_set(PQ_ERR_FORMAT, "claim returned more rows than its limit");
	int rc = row_deployment(r, 0, &c->rows[c->n]);
	if (rc == PQ_OK)
		c->n++;
	return rc;
}

static int claim(store *s, const char *instance_id, store_claim_kind kind, const char *vin,
                 int64_t now_ms, int64_t lease_ms, int limit,
                 int (*fn)(const store_deployment *d, void *user), void *user, int64_t *claimed)
{
	if (claimed)
		*claimed = 0;
	if (!s)
		return pq_err_set(PQ_ERR_INVAL, "store_deployment_claim: no store");
	int rc = store__check_text(instance_id, STORE_INSTANCE_MAX, true, "instance id");
	if (rc == PQ_OK && vin)
		rc = chk_vin(vin);
	if (rc == PQ_OK && (limit < 1 || limit > STORE_PAGE_MAX))
		rc =
		    pq_err_set(PQ_ERR_INVAL, "claim limit %d outside 1..%d", limit, STORE_PAGE_MAX);
	if (rc == PQ_OK && (lease_ms <= 0 || now_ms < 0))
		rc = pq_err_set(PQ_ERR_INVAL, "claim: lease %lld ms, now %lld", (long long)lease_ms,
		                (long long)now_ms);
	if (rc != PQ_OK)
		return rc;
	/* The candidates per kind; d is the deployment, c its campaign. */
	const char *cond;
	store_val p[8];
	int np = 0;
	p[np++] = SV_TEXT(instance_id);
	p[np++] = SV_INT(now_ms + lease_ms);
	p[np++] = SV_INT(now_ms); /* claimed_until < now */
	switch (kind) {
	case STORE_CLAIM_NOTIFY:
		cond =
		    " AND d.state = 'pending' AND c.state = 'running'"
		    " AND d.phase <= c.current_phase"
		    " AND EXISTS (SELECT 1 FROM vehicles v WHERE v.vin = d.vin AND v.online = 1)";
		break;
	case STORE_CLAIM_RETRY:
		cond = " AND d.state IN ('postponed', 'accepted') AND c.state = 'running'"
		       " AND d.next_ms > 0 AND d.next_ms <= ?";
		p[np++] = SV_INT(now_ms);
		break;
	case STORE_CLAIM_TIMEOUT:
		cond = " AND d.state IN ('notified', 'accepted', 'downloading', 'downloaded',"
		       " 'installing', 'installed') AND c.state IN ('running', 'paused')"
		       " AND d.last_msg_ms + c.vehicle_timeout_ms < ?";
		p[np++] = SV_INT(now_ms);
		break;
	case STORE_CLAIM_RESEND:
		cond = " AND c.state = 'running' AND (d.state = 'notified'"
		       " OR (d.state = 'accepted' AND d.next_ms = 0))";
		break;
	default:
		return pq_err_set(PQ_ERR_INVAL, "claim kind %d", (int)kind);
	}
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
	                 " RETURNING " DEP_COLS,
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
	int rc = chk_id(campaign_id, "campaign id");
	if (rc == PQ_OK)
		rc = chk_vin(vin);
	if (rc == PQ_OK)
		rc = store__check_text(instance_id, STORE_INSTANCE_MAX, true, "instance id");
	if (rc != PQ_OK)
		return rc;
	store_val p[] = {SV_TEXT(campaign_id), SV_TEXT(vin), SV_TEXT(instance_id)};
	return store_exec(s,
	                  "UPDATE deployments SET claimed_by = NULL, claimed_until = 0"
	                  " WHERE campaign_id = ? AND vin = ? AND claimed_by = ?",
	                  p, 3, NULL, NULL, NULL);
}

/* ---- ECUs by hardware id ------------------------------------------------------------- */

typedef struct {
	int (*fn)(const store_ecu_match *m, void *user);
	void *user;
} match_ctx;

static int match_row(const store_row *r, void *user)
{
	match_ctx *c = user;
	store_ecu_match m;
	memset(&m, 0, sizeof(m));
	int rc = store__col_copy(r, 0, m.vin, sizeof(m.vin));
	if (rc == PQ_OK)
		rc = store__col_copy(r, 1, m.model, sizeof(m.model));
	if (rc == PQ_OK)
		rc = store__col_copy(r, 2, m.ecu_id, sizeof(m.ecu_id));
	if (rc == PQ_OK)
		rc = store__col_copy(r, 3, m.sw_app, sizeof(m.sw_app));
	if (rc == PQ_OK)
		rc = store__col_copy(r, 4, m.sw_boot, sizeof(m.sw_boot));
	if (rc == PQ_OK)
		rc = store__col_copy(r, 5, m.sw_cal, sizeof(m.sw_cal));
	return rc == PQ_OK ? c->fn(&m, c->user) : rc;
}

int store_ecu_by_hardware(store *s, const char *hardware_id, const char *vin,
                          int (*fn)(const store_ecu_match *m, void *user), void *user)
{
	if (!s || !fn)
		return pq_err_set(PQ_ERR_INVAL, "store_ecu_by_hardware: bad arguments");
	int rc = store__check_text(hardware_id, STORE_NAME_MAX, true, "hardware id");
	if (rc == PQ_OK && vin)
		rc = chk_vin(vin);
	if (rc != PQ_OK)
		return rc;
	match_ctx c = {.fn = fn, .user = user};
	store_val p[] = {SV_TEXT(hardware_id), SV_TEXT(vin)};
	return store_exec(s,
	                  vin ? "SELECT e.vin, v.model, e.ecu_id, e.sw_app, e.sw_boot, e.sw_cal"
	                        " FROM ecus e JOIN vehicles v ON v.vin = e.vin"
	                        " WHERE e.hardware_id = ? AND e.vin = ? ORDER BY e.vin, e.ecu_id"
	                      : "SELECT e.vin, v.model, e.ecu_id, e.sw_app, e.sw_boot, e.sw_cal"
	                        " FROM ecus e JOIN vehicles v ON v.vin = e.vin"
	                        " WHERE e.hardware_id = ? ORDER BY e.vin, e.ecu_id",
	                  p, vin ? 2 : 1, match_row, &c, NULL);
}

/* ---- MQTT ids seen ------------------------------------------------------------------------ */

int store_msg_seen(store *s, const char *vin, const char *message_id, int64_t now_ms,
                   bool *duplicate)
{
	if (!s || !duplicate)
		return pq_err_set(PQ_ERR_INVAL, "store_msg_seen: bad arguments");
	*duplicate = false;
	int rc = chk_vin(vin);
	if (rc == PQ_OK)
		rc = store__check_text(message_id, STORE_MSG_ID_MAX, true, "message id");
	if (rc != PQ_OK)
		return rc;
	int64_t changes = 0;
	store_val p[] = {SV_TEXT(vin), SV_TEXT(message_id), SV_INT(now_ms)};
	rc = store_exec(s,
	                "INSERT INTO mqtt_seen (vin, message_id, at_ms) VALUES (?, ?, ?)"
	                " ON CONFLICT (vin, message_id) DO NOTHING",
	                p, 3, NULL, NULL, &changes);
	if (rc == PQ_OK)
		*duplicate = changes == 0;
	return rc;
}

int store_msg_seen_prune(store *s, int64_t older_than_ms, int64_t *removed)
{
	if (!s)
		return pq_err_set(PQ_ERR_INVAL, "store_msg_seen_prune: no store");
	store_val p[] = {SV_INT(older_than_ms)};
	return store_exec(s, "DELETE FROM mqtt_seen WHERE at_ms < ?", p, 1, NULL, NULL, removed);
}

/* ---- Uptane metadata ---------------------------------------------------------------------- */

static int uptane_key(const char *repo, const char *vin, const char *role)
{
	if (!repo || (strcmp(repo, "image") != 0 && strcmp(repo, "director") != 0))
		return pq_err_set(PQ_ERR_INVAL, "Uptane repository not image or director");
	int rc = store__check_text(vin, STORE_VIN_MAX, false, "VIN");
	if (rc != PQ_OK)
		return rc;
	/* the image repository has no VIN; director metadata is per VIN, except the director
	 * root, which every vehicle shares (stored once, VIN "") */
	bool image = strcmp(repo, "image") == 0;
	bool shared_root = !image && role && strcmp(role, "root") == 0 && vin[0] == '\0';
	if (image != (vin[0] == '\0') && !shared_root)
		return pq_err_set(PQ_ERR_INVAL,
		                  "the image repository has no VIN, a director one has (but for "
		                  "its shared root)");
	static const char *const roles[] = {"root", "targets", "snapshot", "timestamp"};
	for (size_t i = 0; role && i < sizeof(roles) / sizeof(roles[0]); i++)
		if (strcmp(role, roles[i]) == 0)
			return PQ_OK;
	return pq_err_set(PQ_ERR_INVAL, "Uptane role '%.16s' unknown", role ? role : "(null)");
}

int store_uptane_put(store *s, const char *repo, const char *vin, const char *role, int64_t version,
                     const char *body, int64_t now_ms)
{
	if (!s || !body)
		return pq_err_set(PQ_ERR_INVAL, "store_uptane_put: bad arguments");
	int rc = uptane_key(repo, vin, role);
	if (rc == PQ_OK && version < 1)
		rc = pq_err_set(PQ_ERR_INVAL, "Uptane version %lld < 1", (long long)version);
	if (rc == PQ_OK)
		rc = store__check_json(body, STORE_UPTANE_MAX, "Uptane metadata");
	if (rc != PQ_OK)
		return rc;
	store_val p[] = {SV_TEXT(repo),   SV_TEXT(vin),  SV_TEXT(role),
	                 SV_INT(version), SV_TEXT(body), SV_INT(now_ms)};
	rc = store_exec(s,
	                "INSERT INTO uptane_meta (repo, vin, role, version, body, created_ms)"
	                " VALUES (?, ?, ?, ?, ?, ?)",
	                p, 6, NULL, NULL, NULL);
	if (rc == PQ_ERR_EXISTS)
		pq_err_wrap(rc, "%s %s version %lld is stored", repo, role, (long long)version);
	return rc;
}

typedef struct {
	char *body;
	int64_t version;
	bool found;
} uptane_ctx;

static int uptane_row(const store_row *r, void *user)
{
	uptane_ctx *c = user;
	c->found = true;
	int rc = store__col_i64(r, 0, &c->version);
	if (rc == PQ_OK)
		rc = store__col_dup(r, 1, &c->body);
	return rc;
}

static int uptane_get(store *s, const char *repo, const char *vin, const char *role,
                      int64_t version, char **body, int64_t *version_out)
{
	if (!s || !body)
		return pq_err_set(PQ_ERR_INVAL, "store_uptane_get: bad arguments");
	*body = NULL;
	int rc = uptane_key(repo, vin, role);
	if (rc != PQ_OK)
		return rc;
	uptane_ctx c = {0};
	store_val p[] = {SV_TEXT(repo), SV_TEXT(vin), SV_TEXT(role), SV_INT(version)};
	rc = store_exec(s,
	                version > 0 ? "SELECT version, body FROM uptane_meta WHERE repo = ? AND"
	                              " vin = ? AND role = ? AND version = ?"
	                            : "SELECT version, body FROM uptane_meta WHERE repo = ? AND"
	                              " vin = ? AND role = ? ORDER BY version DESC LIMIT 1",
	                p, version > 0 ? 4 : 3, uptane_row, &c, NULL);
	if (rc == PQ_OK && !c.found)
		rc = pq_err_set(PQ_ERR_NOTFOUND, "no %s %s metadata", repo, role);
	if (rc != PQ_OK) {
		free(c.body);
		return rc;
	}
	*body = c.body;
	if (version_out)
		*version_out = c.version;
	return PQ_OK;
}

int store_uptane_get_latest(store *s, const char *repo, const char *vin, const char *role,
                            char **body, int64_t *version)
{
	return uptane_get(s, repo, vin, role, 0, body, version);
}

int store_uptane_get_version(store *s, const char *repo, const char *vin, const char *role,
                             int64_t version, char **body)
{
	if (version < 1)
		return pq_err_set(PQ_ERR_INVAL, "Uptane version %lld < 1", (long long)version);
	return uptane_get(s, repo, vin, role, version, body, NULL);
}
