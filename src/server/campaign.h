/* campaign.h: the campaign engine: campaigns, their targeting and phased rollout, and each
 * vehicle's deployment state machine (docs/protocol.md, "Deployment states" and
 * "Campaigns and rollouts").
 *
 * Pure logic over the store: no MQTT or HTTP inside. Messages to vehicles go through
 * env->publish, the vehicle's metadata body through env->metadata, so the engine runs the
 * same in the server, under several server instances on one database (every piece of
 * work is claimed in the store first, every state change is a compare-and-set) and in
 * unit tests with a recording fake.
 *
 * Times are Unix milliseconds passed in by the caller (now_ms), never read from a clock,
 * except the envelope timestamps of published messages (msg_new()).
 * Errors follow core/err.h; PQ_ERR_INVAL details name the offending field ("policy.
 * deadline: ..."). A store handle belongs to one thread at a time (store.h). */
#ifndef PQOTA_SERVER_CAMPAIGN_H
#define PQOTA_SERVER_CAMPAIGN_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <jansson.h>

#include "core/err.h"
#include "store/campaign.h"
#include "store/store.h"

#define CMP_PHASES_MAX        16
#define CMP_TARGET_VINS_MAX   100000 /* target.vins */
#define CMP_TARGET_HW_MAX     256    /* target.hardware_ids */
#define CMP_INSTALL_ORDER_MAX 1024
#define CMP_TARGETS_MAX       262144 /* (vehicle, ECU) targets of one campaign */
#define CMP_PUBLISH_RETRY_MS  30000  /* a failed metadata / readiness publish is retried */
#define CMP_DEFAULT_LEASE_MS  30000
#define CMP_DEFAULT_BATCH     100

typedef struct {
	const char *instance_id; /* claims are made in its name (required) */
	int64_t lease_ms;        /* 0: 30000 */
	int batch;               /* 0: 100 claims per tick per kind (at most STORE_PAGE_MAX) */
	/* Publishes a message (topic, JSON text); PQ_OK or an error, after which the work is
	 * retried later (when the claim's lease ends). Called from the thread calling the
	 * engine; must not keep json after returning. */
	int (*publish)(void *user, const char *topic, const char *json, size_t len, int qos,
	               bool retain);
	/* Builds the body of ota_campaign_metadata for (campaign, vin): director_targets,
	 * image_repository, director_repository, images, token, token_expires (a new object
	 * the engine then owns). The engine adds the envelope, campaign_id, install_order and
	 * rollback_policy where the body has none. */
	int (*metadata)(void *user, store *db, const char *campaign_id, const char *vin,
	                json_t **out);
	/* Optional: a live event (type "deployment" or "campaign", docs/api.md "Live events"),
	 * called after the change is stored; takes data. NULL: no events. */
	void (*event)(void *user, const char *type, json_t *data);
	void *user;
	/* When the engine handles a vehicle's message: the message's own timestamp (Unix ms,
	 * the vehicle's clock), given with the deployment events it causes as "vehicle_ms";
	 * 0 otherwise. */
	int64_t msg_sent_ms;
} cmp_env;

/* An env->event for an env whose user is the server (srv *): srv_event (campaign_routes.c).
 * ctl_worker_env and the control plane's env set it. */
void cmp_srv_event(void *user, const char *type, json_t *data);

typedef struct {
	int64_t notified;        /* ota_campaign published: first notifications */
	int64_t renotified;      /* ota_campaign published again after a postponement */
	int64_t readiness_asked; /* request_ota_readiness published */
	int64_t metadata_sent;   /* ota_campaign_metadata published */
	int64_t timed_out;       /* deployments moved to timed_out */
	int64_t publish_failed;  /* publishes that failed (work retried later) */
	int64_t phases_advanced; /* campaigns that activated their next phase */
	int64_t auto_paused;     /* campaigns paused by the engine */
	int64_t completed;       /* campaigns completed */
} cmp_tick_stats;

/* Whether id can name a campaign: 1..40 characters of A-Z a-z 0-9 '_' '-', the first a letter
 * or a digit (a generated UUID is one; so is an operator's "TEST-001"). */
bool cmp_id_valid(const char *id);

/* Creates a draft campaign from a JSON spec:
 *   {"id": an operator-chosen campaign id (optional; cmp_id_valid; default a new UUID),
 *    "name": text (1..128),
 *    "release_ids": [id, ...] (1..32, existing, at most one per hardware id),
 *    "release_notes": text (optional; default the releases' titles),
 *    "target": {"vins":[...], "model":"..", "hardware_ids":[...], "version_min":"1.0.0",
 *               "version_max":"2.0.0"}            (every member optional),
 *    "policy": {"consent_required": bool (false), "deadline": ISO-8601 UTC or null,
 *               "prerequisites": {"battery_min_pct": 0..100, "parked": bool,
 *                                 "ignition_off": bool, "storage_min_bytes": >= 0},
 *               "install_order": [ecu id, ...], "rollback_policy": "all_or_nothing"|"none",
 *               "vehicle_timeout_s": 1.. (3600), "postpone_retry_s": 1.. (3600),
 *               "readiness_retry_s": 1.. (300)},
 *    "mode": "once" (default) | "continuous", "ends_at": ISO-8601 UTC or null (continuous
 *            only; both stored in the policy),
 *    "phases": [{"count": n >= 0 | "percent": 0..100 (cumulative share of the targeted
 *                vehicles reached by the end of the phase), "success_threshold": 0..1
 *                (1.0), "error_threshold": 0..1 (0.1)}, ...]  (1..16; default one phase
 *                of 100 %; the last phase always takes every remaining vehicle; in a
 *                continuous campaign every phase but the last needs a count)}
 * Unknown members are refused. actor is recorded as created_by. id_out receives the new
 * campaign's id (the given one or a new UUID); PQ_ERR_EXISTS when the id is taken. */
int cmp_create(store *db, const json_t *spec, const char *actor, int64_t now_ms,
               char id_out[41]) PQ_MUST_CHECK;

/* A release's rollout (POST /api/v1/releases "rollout", docs/api.md 12.10): the spec of the
 * continuous campaign that rolls release_id out: rollout's members (name, default
 * default_name; release_notes, target, policy, phases, ends_at: as in cmp_create) with
 * release_ids [release_id] and mode "continuous". Checked as cmp_create checks them, but
 * for the release (so it can be checked before the release exists); PQ_ERR_INVAL names
 * the member ("rollout.bogus: unknown member", "policy.deadline: ..."). *spec_out: a new
 * object for cmp_create. */
int cmp_rollout_spec(const json_t *rollout, const char *release_id, const char *default_name,
                     json_t **spec_out) PQ_MUST_CHECK;

/* draft -> running: resolves the targeted vehicles from the stored ECUs (an ECU with a
 * release's hardware id whose installed version of the release's software type is older
 * by semver, within the target filter; the delta package when the installed version is
 * the release's delta base and the vehicle's stored VCI does not say capabilities.delta
 * false for that ECU, else the full package), creates their deployments (pending) and
 * targets, assigns phases in the stable order of SHA-256(campaign id || VIN), and
 * activates phase 1. A vehicle with no applicable ECU is not targeted. *n_targeted
 * (optional) receives the number of deployments. PQ_ERR_INVAL when not a draft. */
int cmp_start(store *db, const cmp_env *env, const char *id, int64_t now_ms,
              int64_t *n_targeted) PQ_MUST_CHECK;

/* Adds one vehicle to a campaign (the seed's deploy route), starting a draft with just
 * that vehicle (phase 1); the vehicle is notified at once when it is online and env is
 * given. PQ_ERR_EXISTS: the vehicle is in the campaign already; PQ_ERR_NOTFOUND: no such
 * campaign or vehicle, or none of its ECUs needs the campaign's releases; PQ_ERR_INVAL:
 * the campaign is completed or cancelled. */
int cmp_deploy_one(store *db, const cmp_env *env, const char *id, const char *vin,
                   int64_t now_ms) PQ_MUST_CHECK;

/* running -> paused (reason: NULL for "operator"); paused -> running. Resuming accepts
 * the current phase's failures so far (the auto-pause counts only new ones) and, when
 * every deployment of the current phase has ended, activates the next phase.
 * PQ_ERR_INVAL from another state. */
int cmp_pause(store *db, const char *id, const char *reason, int64_t now_ms) PQ_MUST_CHECK;
int cmp_resume(store *db, const char *id, int64_t now_ms) PQ_MUST_CHECK;
/* draft, running or paused -> cancelled: every non-terminal deployment becomes
 * cancelled, and each vehicle that was notified (any state past pending) gets a `cancel`
 * command. A publish failure is counted, not fatal (the deployment is cancelled anyway).
 * PQ_ERR_INVAL for a completed or cancelled campaign. */
int cmp_cancel(store *db, const cmp_env *env, const char *id, int64_t now_ms) PQ_MUST_CHECK;

/* One round of the engine: claims (up to env->batch per kind) and does the due work:
 * NOTIFY (ota_campaign on oem/{vin}/ota/campaign, QoS 2; pending -> notified),
 * RETRY (a postponed vehicle re-notified; an accepted one re-asked for readiness, or sent
 * its metadata again after a failed publish), TIMEOUT (-> timed_out); then per running
 * campaign: auto-pause, phase advance, completion. st (optional) accumulates counts. */
int cmp_tick(store *db, const cmp_env *env, int64_t now_ms, cmp_tick_stats *st) PQ_MUST_CHECK;

/* A vehicle woke up (the caller has marked it online): notifies its pending deployments
 * of active phases now, claimed like the tick's. */
int cmp_on_wakeup(store *db, const cmp_env *env, const char *vin, int64_t now_ms) PQ_MUST_CHECK;

/* A vehicle reported (its VCI stored: after a wake-up the server asks for one, and a vehicle
 * sends one when the retained release announcement names a newer version for its hardware):
 * admits it to every running continuous campaign (policy.mode "continuous") that is still
 * admitting (before its ends_at), that it is not in yet (a vehicle is admitted at most once
 * per campaign), and whose releases one of its ECUs needs under the target filter (the
 * rules of cmp_start, for this vehicle only). Its phase is the first not yet full (phase
 * counts are admitted vehicles; the last phase takes the rest). The vehicle is then
 * notified at once when it is online and its phase is active. Paused, completed and
 * cancelled campaigns admit nobody. Work per call: the running campaigns (at most 500)
 * and this vehicle's ECUs. *n_admitted (optional): campaigns it joined. A failure with one
 * campaign is logged and returned after the others were tried. */
int cmp_admit(store *db, const cmp_env *env, const char *vin, int64_t now_ms,
              int *n_admitted) PQ_MUST_CHECK;

/* A message from a vehicle, already parsed, checked and deduplicated by message id
 * (store_msg_seen) by the caller: ota_campaign_response, ota_readiness_response, the
 * ota_* status messages and vci_report act per docs/protocol.md; other types are
 * ignored (PQ_OK). Forward-only along the main chain (skips allowed and recorded),
 * terminal states absorb, earlier states are ignored. The deployment's last_msg_ms is
 * updated. PQ_ERR_INVAL: no campaign_id where one is needed; PQ_ERR_NOTFOUND: the vehicle
 * is not in that campaign. */
int cmp_on_message(store *db, const cmp_env *env, const char *vin, const char *msg_type,
                   const char *message_id, const json_t *root, int64_t now_ms) PQ_MUST_CHECK;

/* The campaign with its release ids, target, policy, phases (with sizes and counts per
 * state) and counts per state (a new object, caller json_decref's). */
int cmp_get_json(store *db, const char *id, json_t **out) PQ_MUST_CHECK;
/* {"campaigns":[...as cmp_get_json...],"total":n,"limit":l,"offset":o}, newest first. */
int cmp_list_json(store *db, const store_page *pg, json_t **out) PQ_MUST_CHECK;
/* One vehicle's deployment: state fields, "targets" and "transitions" (history). */
int cmp_vehicle_json(store *db, const char *id, const char *vin, json_t **out) PQ_MUST_CHECK;

/* campaign_views.c, for the operator console. */
#define CMP_PROGRESS_POINTS 200
/* {"items":[{"vin","state","phase","error_code","updated_ms","cause","targets":[...]}],
 * "total","limit","offset"}: a page of the campaign's deployments ordered by VIN whose state
 * is in state_mask (1 << store_dep_state; 0: any), cause = that of the latest transition.
 * PQ_ERR_NOTFOUND: no such campaign. */
int cmp_deployments_json(store *db, const char *id, uint32_t state_mask, const store_page *pg,
                         json_t **out) PQ_MUST_CHECK;
/* "failed,rolled_back" -> a state mask; PQ_ERR_INVAL naming an unknown state. */
int cmp_parse_states(const char *text, uint32_t *mask) PQ_MUST_CHECK;
/* {"campaign_id","from_ms","to_ms","points":[{"at_ms","counts":{state:n}}] (at most
 * CMP_PROGRESS_POINTS, evenly spaced from the start to the end, or to now_ms while the
 * campaign is not finished; none for a draft), "counts" (now), "total","truncated"}: the
 * deployment counts replayed from the stored transitions, at most max_rows of them (0:
 * STORE_REPLAY_MAX); "truncated" is true when the campaign has more, so the later points
 * miss the transitions past the cap (the current "counts" are exact). */
int cmp_progress_json(store *db, const char *id, int64_t now_ms, int64_t max_rows,
                      json_t **out) PQ_MUST_CHECK;

/* The checked prerequisites object pre (battery_min_pct 0..100, parked, ignition_off,
 * storage_min_bytes >= 0; no other member; null takes the default) copied into npre;
 * PQ_ERR_INVAL naming path and the member otherwise. Campaign policies and on-demand
 * readiness checks share it. */
int cmp_prereq_norm(const json_t *pre, const char *path, json_t *npre) PQ_MUST_CHECK;

#endif
