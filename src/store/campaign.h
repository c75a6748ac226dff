/* campaign.h: the store's campaign entities (schema v2): campaigns and their releases,
 * deployments (one vehicle in one campaign) with their targets and transition history,
 * work claims for the campaign engine, MQTT message ids seen (idempotency) and generated
 * Uptane metadata. Written once for both backends, like store.h's entities; the same
 * bounds rules apply (over-long or non-UTF-8 text is PQ_ERR_INVAL, never truncated).
 *
 * Deployment states and their transitions are defined in docs/protocol.md; the store
 * only enforces compare-and-set (a change applies when the current state is the expected
 * one) and records every change in deployment_transitions. */
#ifndef PQOTA_STORE_CAMPAIGN_H
#define PQOTA_STORE_CAMPAIGN_H

#include <stdbool.h>
#include <stdint.h>

#include "store/store.h"

#define STORE_CAMPAIGN_RELEASES_MAX 32
#define STORE_CAMPAIGN_NAME_MAX     128
#define STORE_REASON_MAX            256               /* pause reason, transition cause */
#define STORE_CAMPAIGN_JSON_MAX     (256 * 1024)      /* target filter, policy, phases */
#define STORE_MSG_ID_MAX            128               /* an MQTT message id */
#define STORE_UPTANE_MAX            (8 * 1024 * 1024) /* one metadata file */
#define STORE_INSTANCE_MAX          STORE_NAME_MAX

/* ---- states ---------------------------------------------------------------------- */

typedef enum {
	STORE_CMP_DRAFT = 0,
	STORE_CMP_RUNNING = 1,
	STORE_CMP_PAUSED = 2,
	STORE_CMP_COMPLETED = 3,
	STORE_CMP_CANCELLED = 4,
} store_cmp_state;
#define STORE_CMP_STATE_COUNT 5

/* The main chain in order (PENDING..COMPLETED), then the side and terminal states. */
typedef enum {
	STORE_DEP_PENDING = 0,
	STORE_DEP_NOTIFIED = 1,
	STORE_DEP_ACCEPTED = 2,
	STORE_DEP_DOWNLOADING = 3,
	STORE_DEP_DOWNLOADED = 4,
	STORE_DEP_INSTALLING = 5,
	STORE_DEP_INSTALLED = 6,
	STORE_DEP_COMPLETED = 7,
	STORE_DEP_POSTPONED = 8,
	STORE_DEP_DECLINED = 9,
	STORE_DEP_FAILED = 10,
	STORE_DEP_ROLLED_BACK = 11,
	STORE_DEP_CANCELLED = 12,
	STORE_DEP_TIMED_OUT = 13,
} store_dep_state;
#define STORE_DEP_STATE_COUNT 14

/* "draft", "running", ... (NULL out of range); parse: PQ_ERR_INVAL for unknown text. */
const char *store_cmp_state_name(store_cmp_state st);
int store_cmp_state_parse(const char *s, store_cmp_state *out) PQ_MUST_CHECK;
/* "pending", "notified", ..., "rolled_back", "timed_out". */
const char *store_dep_state_name(store_dep_state st);
int store_dep_state_parse(const char *s, store_dep_state *out) PQ_MUST_CHECK;
/* completed, declined, failed, rolled_back, cancelled, timed_out */
bool store_dep_state_terminal(store_dep_state st);

/* ---- campaigns ------------------------------------------------------------------- */

typedef struct {
	char id[STORE_ID_MAX + 1];
	char name[STORE_CAMPAIGN_NAME_MAX + 1];
	store_cmp_state state;
	char *
	    target_filter; /* JSON text, malloc'd (store_campaign_clear frees); insert: NULL = {} */
	char *policy;      /* JSON text, malloc'd; NULL = {} */
	char *phases;      /* JSON text, malloc'd; NULL = [] */
	char created_by[STORE_ACTOR_MAX + 1];
	int64_t created_ms;
	int64_t updated_ms;
	int64_t started_ms; /* 0 until started */
	int current_phase;  /* 0 while draft; phases are numbered from 1 */
	char pause_reason[STORE_REASON_MAX + 1];
	int64_t vehicle_timeout_ms; /* no vehicle message for this long: timed_out (> 0) */
	int64_t resume_failures;    /* failures of the current phase accepted by a resume */
	int nreleases;
	char release_ids[STORE_CAMPAIGN_RELEASES_MAX][STORE_ID_MAX + 1]; /* in position order */
} store_campaign;

void store_campaign_clear(store_campaign *c);
/* Inserts the campaign and its release list in one transaction. PQ_ERR_EXISTS: the id is
 * taken; PQ_ERR_NOTFOUND: a release does not exist; PQ_ERR_INVAL: bad field, no release
 * or one listed twice. */
int store_campaign_insert(store *s, const store_campaign *c) PQ_MUST_CHECK;
int store_campaign_get(store *s, const char *id, store_campaign *out) PQ_MUST_CHECK;
/* Newest first (created_ms, then id); state < 0 for all. */
int store_campaign_list(store *s, int state, const store_page *pg,
                        int (*fn)(const store_campaign *c, void *user), void *user,
                        int64_t *total) PQ_MUST_CHECK;
/* Compare-and-set of the campaign state: applies only when the state is from (or any
 * state when from < 0); sets pause_reason (NULL: "") and updated_ms; entering RUNNING
 * the first time sets started_ms and current_phase 1 (when it is 0), and every resume
 * stores resume_failures. *changed (optional) tells whether it applied. PQ_ERR_NOTFOUND
 * for an unknown id. */
int store_campaign_set_state(store *s, const char *id, int from, store_cmp_state to,
                             const char *pause_reason, int64_t resume_failures, int64_t now_ms,
                             bool *changed) PQ_MUST_CHECK;
/* Compare-and-set of current_phase (from -> to), resetting resume_failures. */
int store_campaign_set_phase(store *s, const char *id, int from, int to, int64_t now_ms,
                             bool *changed) PQ_MUST_CHECK;

/* ---- deployments ----------------------------------------------------------------- */

typedef struct {
	char campaign_id[STORE_ID_MAX + 1];
	char vin[STORE_VIN_MAX + 1];
	store_dep_state state;
	int phase; /* 1.. */
	int attempt;
	char error_code[STORE_NAME_MAX + 1];
	char claimed_by[STORE_INSTANCE_MAX + 1];
	int64_t claimed_until;
	int64_t updated_ms;
	int64_t next_ms;     /* when the engine acts next (postponed retry, readiness re-ask) */
	int64_t last_msg_ms; /* last vehicle message, or the notification: the timeout clock */
	int notify_count;
} store_deployment;

typedef struct {
	char vin[STORE_VIN_MAX + 1];
	char ecu_id[STORE_NAME_MAX + 1];
	char release_id[STORE_ID_MAX + 1];
	char hardware_id[STORE_NAME_MAX + 1];
	char software_type[8];
	char from_version[STORE_VERSION_MAX + 1];
	char to_version[STORE_VERSION_MAX + 1];
	char package[8]; /* "delta" or "full" */
	char file_sha256[65];
	int64_t file_size;
} store_target;

/* Inserts n deployments (state pending, each with its first transition '' -> pending,
 * cause "created") and their targets (each target's vin must be one of them) in one
 * transaction. PQ_ERR_EXISTS: a vehicle is in the campaign already; PQ_ERR_NOTFOUND: no
 * such campaign or vehicle. */
int store_deployment_insert(store *s, const char *campaign_id, const store_deployment *d, size_t n,
                            const store_target *t, size_t nt, int64_t now_ms) PQ_MUST_CHECK;
int store_deployment_get(store *s, const char *campaign_id, const char *vin,
                         store_deployment *out) PQ_MUST_CHECK;

typedef struct {
	int state; /* a store_dep_state, or -1 for any */
	int phase; /* or -1 for any */
	bool open; /* only non-terminal states */
} store_deployment_filter;

/* Ordered by VIN. */
int store_deployment_list(store *s, const char *campaign_id, const store_deployment_filter *f,
                          const store_page *pg, int (*fn)(const store_deployment *d, void *user),
                          void *user, int64_t *total) PQ_MUST_CHECK;
/* A page of a campaign's deployments ordered by VIN, only those whose state is in
 * state_mask (bit 1 << store_dep_state; 0: every state), each with the cause of its latest
 * transition and its targets, in one statement: fn is called once per (deployment,
 * target) row, the rows of one deployment consecutive and its targets ordered by ECU id
 * (t NULL for a deployment without targets). *total (optional): the deployments that
 * match. */
int store_deployment_page(store *s, const char *campaign_id, uint32_t state_mask,
                          const store_page *pg,
                          int (*fn)(const store_deployment *d, const char *cause,
                                    const store_target *t, void *user),
                          void *user, int64_t *total) PQ_MUST_CHECK;
/* One vehicle's deployments (every campaign, at most STORE_PAGE_MAX, newest campaign
 * first); open_only: non-terminal ones. */
int store_deployment_list_vin(store *s, const char *vin, bool open_only,
                              int (*fn)(const store_deployment *d, void *user),
                              void *user) PQ_MUST_CHECK;
/* Calls fn(phase, state, count) for every (phase, state) present in the campaign. */
int store_deployment_counts(store *s, const char *campaign_id,
                            int (*fn)(int phase, store_dep_state st, int64_t n, void *user),
                            void *user) PQ_MUST_CHECK;
/* The fleet's rollouts: dep[state] the deployments of running and paused campaigns by
 * state, cmp[state] the campaigns by state (both zeroed first). */
int store_rollout_counts(store *s, int64_t dep[STORE_DEP_STATE_COUNT],
                         int64_t cmp[STORE_CMP_STATE_COUNT]) PQ_MUST_CHECK;

/* The targets of one deployment, ordered by ECU id. */
int store_target_list(store *s, const char *campaign_id, const char *vin,
                      int (*fn)(const store_target *t, void *user), void *user) PQ_MUST_CHECK;

/* Fields changed along with a state (or alone, store_deployment_update). */
typedef struct {
	bool set_next; /* next_ms = next_ms */
	int64_t next_ms;
	bool set_last_msg; /* last_msg_ms = max(last_msg_ms, last_msg_ms) */
	int64_t last_msg_ms;
	bool notified;          /* notify_count + 1 */
	const char *error_code; /* non-NULL: set it */
	bool release_claim;     /* claimed_by NULL, claimed_until 0 */
	int64_t idle_before;    /* > 0: apply only when last_msg_ms < idle_before (timeouts) */
} store_dep_update;

/* Compare-and-set: moves the deployment from `from` to `to` (and applies upd, may be
 * NULL) only when its state is `from` (and upd's idle_before condition holds), appending
 * a deployment_transitions row (seq = last + 1, cause at most STORE_REASON_MAX) in the
 * same transaction. *changed is false when the state was another (someone moved it
 * first): nothing is written then. PQ_ERR_NOTFOUND: no such deployment. */
int store_deployment_transition(store *s, const char *campaign_id, const char *vin,
                                store_dep_state from, store_dep_state to, const char *cause,
                                int64_t now_ms, const store_dep_update *upd,
                                bool *changed) PQ_MUST_CHECK;
/* Applies upd without a state change, only when the state is `expect`. */
int store_deployment_update(store *s, const char *campaign_id, const char *vin,
                            store_dep_state expect, int64_t now_ms, const store_dep_update *upd,
                            bool *changed) PQ_MUST_CHECK;

typedef struct {
	int64_t seq;
	char from_state[16]; /* "" for the first */
	char to_state[16];
	int64_t at_ms;
	char cause[STORE_REASON_MAX + 1];
} store_transition;

/* Every transition of a campaign's deployments in time order (at_ms, then VIN and seq), at
 * most max_rows of them (0: STORE_REPLAY_MAX, also the largest cap): fn(from ("" for the
 * first), to, at_ms). *truncated: whether the campaign has more transitions than were
 * replayed. Served by the index deployment_transitions_replay (campaign_id, at_ms, vin,
 * seq): no sort. */
#define STORE_REPLAY_MAX 4000000
int store_transition_replay(store *s, const char *campaign_id, int64_t max_rows,
                            int (*fn)(store_dep_state from, bool has_from, store_dep_state to,
                                      int64_t at_ms, void *user),
                            void *user, bool *truncated) PQ_MUST_CHECK;
/* The target of (campaign, vin, ecu_id) now installs another package (a vehicle fell back
 * from the delta to the full package): package "full" or "delta", its file SHA-256 and
 * size. *changed (optional): whether a row changed. */
int store_target_set_package(store *s, const char *campaign_id, const char *vin, const char *ecu_id,
                             const char *package, const char *file_sha256, int64_t file_size,
                             bool *changed) PQ_MUST_CHECK;

/* In order (seq ascending), at most STORE_PAGE_MAX * 10 rows. */
int store_transition_list(store *s, const char *campaign_id, const char *vin,
                          int (*fn)(const store_transition *t, void *user),
                          void *user) PQ_MUST_CHECK;

/* ---- work claims ----------------------------------------------------------------- */

typedef enum {
	/* pending, phase <= the campaign's current phase, campaign running, vehicle online */
	STORE_CLAIM_NOTIFY = 0,
	/* campaign running; postponed or accepted with 0 < next_ms <= now */
	STORE_CLAIM_RETRY = 1,
	/* campaign running or paused; notified .. installed and last_msg_ms +
	 * campaigns.vehicle_timeout_ms < now */
	STORE_CLAIM_TIMEOUT = 2,
	/* campaign running; notified, or accepted with next_ms = 0 (the metadata was sent):
	 * what a vehicle that (re)connects may have missed (with store_deployment_claim_vin) */
	STORE_CLAIM_RESEND = 3,
} store_claim_kind;

/* Atomically claims up to limit (1..STORE_PAGE_MAX) deployments needing work of a kind
 * whose claim has expired (claimed_until < now), setting claimed_by = instance_id and
 * claimed_until = now + lease_ms in one statement (PostgreSQL: the candidate rows are
 * selected FOR UPDATE SKIP LOCKED, so concurrent claimers get disjoint sets; SQLite:
 * the statement holds the write lock). fn is then called for each claimed row, outside
 * the statement (it may use s); a non-PQ_OK return stops the calls and is returned (the
 * remaining rows stay claimed until their lease ends). *claimed (optional): rows
 * claimed. */
int store_deployment_claim(store *s, const char *instance_id, store_claim_kind kind, int64_t now_ms,
                           int64_t lease_ms, int limit,
                           int (*fn)(const store_deployment *d, void *user), void *user,
                           int64_t *claimed) PQ_MUST_CHECK;
/* The same, restricted to one vehicle. */
int store_deployment_claim_vin(store *s, const char *instance_id, store_claim_kind kind,
                               const char *vin, int64_t now_ms, int64_t lease_ms, int limit,
                               int (*fn)(const store_deployment *d, void *user), void *user,
                               int64_t *claimed) PQ_MUST_CHECK;
/* Drops instance_id's claim on a deployment (no-op when another holds it). */
int store_deployment_release(store *s, const char *campaign_id, const char *vin,
                             const char *instance_id) PQ_MUST_CHECK;

/* ---- vehicles by hardware (campaign targeting) ----------------------------------- */

typedef struct {
	char vin[STORE_VIN_MAX + 1];
	char model[STORE_NAME_MAX + 1];
	char ecu_id[STORE_NAME_MAX + 1];
	char sw_app[STORE_VERSION_MAX + 1];
	char sw_boot[STORE_VERSION_MAX + 1];
	char sw_cal[STORE_VERSION_MAX + 1];
} store_ecu_match;

/* Every ECU with this hardware id (vin NULL: of any vehicle), ordered by VIN, ECU id. */
int store_ecu_by_hardware(store *s, const char *hardware_id, const char *vin,
                          int (*fn)(const store_ecu_match *m, void *user),
                          void *user) PQ_MUST_CHECK;

/* ---- MQTT idempotency ------------------------------------------------------------- */

/* Records (vin, message_id); *duplicate is true when it was recorded before. */
int store_msg_seen(store *s, const char *vin, const char *message_id, int64_t now_ms,
                   bool *duplicate) PQ_MUST_CHECK;
/* Forgets one recorded id: its message failed to apply and may come again. */
int store_msg_forget(store *s, const char *vin, const char *message_id) PQ_MUST_CHECK;
/* Forgets ids recorded before older_than_ms; *removed optional. */
int store_msg_seen_prune(store *s, int64_t older_than_ms, int64_t *removed) PQ_MUST_CHECK;

/* ---- Uptane metadata --------------------------------------------------------------- */

/* repo "image" or "director", vin "" for the image repository, role "root", "targets",
 * "snapshot" or "timestamp", version >= 1, body JSON text. PQ_ERR_EXISTS: that version
 * is stored. */
int store_uptane_put(store *s, const char *repo, const char *vin, const char *role, int64_t version,
                     const char *body, int64_t now_ms) PQ_MUST_CHECK;
/* The newest version: *body malloc'd (caller frees), *version (optional).
 * PQ_ERR_NOTFOUND when none. */
int store_uptane_get_latest(store *s, const char *repo, const char *vin, const char *role,
                            char **body, int64_t *version) PQ_MUST_CHECK;
int store_uptane_get_version(store *s, const char *repo, const char *vin, const char *role,
                             int64_t version, char **body) PQ_MUST_CHECK;

#endif
