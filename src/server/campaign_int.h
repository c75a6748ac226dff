/* campaign_int.h: what the files of the campaign engine (campaign*.c) share and nothing
 * else sees: the stored policy and phases read back (cmp_rules), the per-run campaign cache,
 * deployment counts, the targeting list, and the helpers named cmp__*.
 *
 * The files: campaign.c (these helpers), campaign_create.c (creation and validation),
 * campaign_target.c (targeting, cmp_start), campaign_notify.c (notifying, the claimed
 * periodic work, campaign upkeep), campaign_ops.c (operator actions), campaign_msg.c
 * (vehicle messages), campaign_json.c (JSON views). */
#ifndef PQOTA_SERVER_CAMPAIGN_INT_H
#define PQOTA_SERVER_CAMPAIGN_INT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <jansson.h>

#include "core/err.h"
#include "server/campaign.h"
#include "store/campaign.h"
#include "store/store.h"

/* ---- the stored policy and phases ---------------------------------------------------- */

typedef struct {
	int64_t count; /* -1: by percent */
	double percent;
	double success;
	double error;
} cmp_phase_spec;

typedef struct {
	json_t *policy; /* the stored, normalised policy object */
	json_t *target;
	bool has_prereq;
	int64_t postpone_retry_ms;
	int64_t readiness_retry_ms;
	bool continuous; /* policy.mode "continuous": admits vehicles while running */
	int64_t ends_ms; /* policy.ends_at of a continuous campaign (0: none) */
	int nphases;
	cmp_phase_spec phases[CMP_PHASES_MAX];
} cmp_rules;

/* Reads the normalised JSON cmp_create stored (PQ_ERR_FORMAT when unreadable); on success
 * the caller clears r with cmp__rules_clear. */
int cmp__rules_load(const store_campaign *c, cmp_rules *r) PQ_MUST_CHECK;
/* Frees r's JSON and zeroes it (a zeroed r is fine). */
void cmp__rules_clear(cmp_rules *r);

/* One campaign and its rules, loaded once per run of claimed work (start zeroed). */
typedef struct {
	store_campaign c;
	cmp_rules rules;
	bool loaded;
} cmp_cache;

/* Loads campaign id into k unless it holds it already. */
int cmp__cache_get(store *db, cmp_cache *k, const char *id) PQ_MUST_CHECK;
void cmp__cache_clear(cmp_cache *k);

/* ---- deployment counts --------------------------------------------------------------- */

typedef struct {
	int64_t n[CMP_PHASES_MAX + 1][STORE_DEP_STATE_COUNT]; /* [phase][state], phase 1.. */
	int64_t total[STORE_DEP_STATE_COUNT];
	int64_t all;
} cmp_counts;

int cmp__load_counts(store *db, const char *id, cmp_counts *c) PQ_MUST_CHECK;
/* Deployments of phase p (1..CMP_PHASES_MAX), those that failed, whether all ended. */
int64_t cmp__phase_size(const cmp_counts *c, int p);
int64_t cmp__phase_failures(const cmp_counts *c, int p);
bool cmp__phase_ended(const cmp_counts *c, int p);

/* ---- small helpers ------------------------------------------------------------------- */

/* A growing list of deployments (copies), filled by cmp__dep_vec_add as a store row
 * callback; the caller frees v. */
typedef struct {
	store_deployment *v;
	size_t n, cap;
} cmp_dep_vec;

int cmp__dep_vec_add(const store_deployment *d, void *user);

/* Sets o[k] = v, taking v (NULL: an allocation failed); PQ_ERR_NOMEM on failure. */
int cmp__set_new(json_t *o, const char *k, json_t *v) PQ_MUST_CHECK;
/* One member for cmp__set_members. */
typedef struct {
	const char *key;
	json_t *val; /* NULL: its allocation failed */
} cmp_member;

/* Sets the n members of o, taking every value even on failure (o NULL: they are freed);
 * PQ_ERR_NOMEM when o or any value is NULL or a set fails. */
int cmp__set_members(json_t *o, cmp_member *m, size_t n) PQ_MUST_CHECK;
/* Appends v to arr, taking v (NULL: an allocation failed); PQ_ERR_NOMEM on failure. */
int cmp__append_new(json_t *arr, json_t *v, const char *what) PQ_MUST_CHECK;

/* A new message envelope of type for vin with campaign_id (when not NULL); NULL on OOM. */
json_t *cmp__new_msg(const char *type, const char *vin, const char *campaign_id);
/* Publishes obj as compact JSON on oem/{vin}/{suffix}. */
int cmp__publish_json(const cmp_env *env, const char *vin, const char *suffix, json_t *obj,
                      int qos) PQ_MUST_CHECK;

/* ---- live events ---------------------------------------------------------------------- */

/* Hands data to env->event (freed when there is none). */
void cmp__event(const cmp_env *env, const char *type, json_t *data);
/* store_deployment_transition, then, when it moved the deployment, the "deployment" event
 * {"campaign_id","vin","from","to","cause","at_ms"}. changed may be NULL. */
int cmp__transition(store *db, const cmp_env *env, const char *cid, const char *vin,
                    store_dep_state from, store_dep_state to, const char *cause, int64_t now_ms,
                    const store_dep_update *u, bool *changed) PQ_MUST_CHECK;
/* The "campaign" event {"id","state","pause_reason","at_ms"} of campaign id as stored now. */
void cmp__campaign_event(store *db, const cmp_env *env, const char *id, int64_t now_ms);

/* ---- targeting (campaign_target.c) ---------------------------------------------------- */

typedef struct {
	store_target t;
	char model[STORE_NAME_MAX + 1];
	char installed[STORE_VERSION_MAX + 1];
} cmp_candidate;

/* The applicable (vehicle, ECU) targets of a campaign (start zeroed; free v). */
typedef struct {
	cmp_candidate *v;
	size_t n, cap;
} cmp_cand_list;

/* Collects the applicable (vehicle, ECU) targets of c, sorted by VIN and ECU (vin: only
 * that vehicle's). */
int cmp__resolve(store *db, const store_campaign *c, const cmp_rules *rules, const char *vin,
                 cmp_cand_list *l) PQ_MUST_CHECK;
/* Inserts the deployments of l's vehicles (*n_out of them) in one transaction, phases
 * assigned in key order (fixed_phase > 0: all in that phase). */
int cmp__insert_deployments(store *db, const store_campaign *c, const cmp_rules *rules,
                            const cmp_cand_list *l, int fixed_phase, int64_t now_ms,
                            int64_t *n_out) PQ_MUST_CHECK;

/* ---- continuous campaigns (campaign_continuous.c) --------------------------------------- */

/* Whether a continuous campaign admits vehicles at now_ms (before its ends_at). */
bool cmp__admitting(const cmp_rules *r, int64_t now_ms);
/* The phase a continuous campaign's next admitted vehicle joins: the first phase (but the
 * last) whose count is not reached yet by the admitted vehicles cnt, else the last. */
int cmp__admit_phase(const cmp_rules *r, const cmp_counts *cnt);
/* Whether phase p of a continuous campaign has all its vehicles (a count reached; the last
 * phase never is). A campaign of mode once: always true. */
bool cmp__phase_full(const cmp_rules *r, const cmp_counts *cnt, int p);

/* ---- notifying (campaign_notify.c) ---------------------------------------------------- */

/* Publishes ota_campaign_metadata (the env->metadata body completed) to vin. */
int cmp__send_metadata(store *db, const cmp_env *env, const cmp_cache *k,
                       const char *vin) PQ_MUST_CHECK;
/* The next step for an accepted vehicle: asks for readiness when the campaign has
 * prerequisites, else sends the metadata; sets u's next_ms accordingly (0: nothing owed).
 * st (optional) counts it. */
int cmp__accepted_step(store *db, const cmp_env *env, const cmp_cache *k, const char *vin,
                       int64_t now_ms, cmp_tick_stats *st, store_dep_update *u);

/* Notifies vin's pending deployments of active phases now (claimed as NOTIFY work). */
int cmp__notify_vin(store *db, const cmp_env *env, const char *vin, int64_t now_ms) PQ_MUST_CHECK;

/* ---- JSON views (campaign_json.c) ----------------------------------------------------- */

/* The targets of (cid, vin) as a new JSON array (*arr) and their total size (optional). */
int cmp__targets_json(store *db, const char *cid, const char *vin, json_t **arr,
                      int64_t *size) PQ_MUST_CHECK;

#endif
