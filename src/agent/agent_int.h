/* agent_int.h: internals of the VMG agent shared by the files of src/agent (prefix ag_).
 *
 *   msg.c      envelopes, checked JSON updates, readiness checks, VCI entries (pure)
 *   meta.c     ota_campaign_metadata: parsing, validation, matching against Uptane (pure)
 *   state.c    the state directory: state.json (atomic, with a fallback copy), roots
 *   http.c     HTTPS with libcurl over our OpenSSL: small fetches, resumable downloads
 *   mqtt.c     the MQTT session (libmosquitto's thread, TLS 1.3 mutual auth)
 *   vnet.c     the in-vehicle network seen from the VMG: zone connections, VCI, diagnostics
 *   update.c   the campaign worker: the campaign record, the phases in order, the outcome
 *   uptane.c   the worker's Uptane step: fetch, verify, match, keep what was verified
 *   prepare.c  the worker's images: download, decryption, decoding, the full-package fallback
 *   install.c  installation, verification by VCI, rollback
 *   report.c   the status file and the JSON-lines event log
 *   agent.c    ag_run: set-up, the message queue, the main loop, outcomes, teardown
 *   handle.c   message dispatch: metadata, readiness, cancel, releases, the wake-up
 *   consent.c  offers and the driver's answer: auto, decline, postpone, the consent callback
 *   telemetry.c  the periodic telemetry sample
 *
 * Out of memory: every JSON update is checked (ag_jset, ag_jappend, ag_jmerge). A message
 * that cannot be built whole is not sent; a campaign record update that fails fails what it
 * was part of (the worker fails the campaign with error_code "internal", rolling back what it
 * flashed; the main thread leaves the message unanswered, as if it were lost); an event whose
 * fields cannot be built is dropped with a log record. */
#ifndef PQOTA_AGENT_AGENT_INT_H
#define PQOTA_AGENT_AGENT_INT_H

#include <limits.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#include <jansson.h>

#include "agent/agent.h"
#include "core/err.h"
#include "crypto/kem.h"
#include "crypto/profile.h"
#include "uptane/meta.h"
#include "uptane/verify.h"
#include "vehicle/model.h"
#include "vehicle/tester.h"

#define AG_LOGC       "agent"
#define AG_MSG_MAX    (256u * 1024u) /* an incoming message (docs/protocol.md) */
#define AG_IMAGES_MAX 512            /* images in one campaign (UP_ECUS_MAX) */
#define AG_URL_MAX    2048
#define AG_ID_MAX     128 /* campaign, release, request and message ids */
#define AG_TOKEN_MAX  256
#define AG_AAD_MAX    160
#define AG_LEN_MAX    (1ull << 40) /* a package or image: 1 TiB at most */
#define AG_SEEN_MAX   512          /* message ids remembered for de-duplication */
#define AG_ERR_MAX    512

/* ---- msg.c: envelopes and pure message helpers ---------------------------------------- */

/* A new message {msg_type, message_id (UUIDv4), timestamp ("2026-11-23T15:32:01.123Z"),
 * vin[, correlation_id][, campaign_id]}; NULL when out of memory. */
json_t *ag_msg_new(const char *vin, const char *msg_type, const char *correlation_id,
                   const char *campaign_id);

/* The envelope of an incoming message, borrowed from the JSON object. */
typedef struct {
	const char *msg_type;
	const char *message_id;
	const char *campaign_id; /* NULL when absent */
} ag_env;

/* Checks an incoming message: a JSON object with string msg_type and message_id (1..128
 * characters), timestamp (string or number), vin equal to `vin` (not required for
 * broadcasts) and, when present, a string campaign_id of 1..128 characters.
 * PQ_ERR_FORMAT with the reason. */
int ag_msg_check(const json_t *m, const char *vin, bool broadcast, ag_env *out) PQ_MUST_CHECK;

/* A string member of at most max bytes, or NULL (absent, not a string, too long). */
const char *ag_jstr(const json_t *o, const char *key, size_t max);

/* Checked JSON updates: each steals v (or fields), counts a NULL one as a constructor that
 * ran out of memory, and returns PQ_OK or PQ_ERR_NOMEM naming the member. */
int ag_jset(json_t *o, const char *key, json_t *v) PQ_MUST_CHECK;         /* o[key] = v */
int ag_jappend(json_t *arr, json_t *v) PQ_MUST_CHECK;                     /* arr += [v] */
int ag_jmerge(json_t *o, json_t *fields, const char *what) PQ_MUST_CHECK; /* o += fields */

/* Remembers message ids (a ring of the last AG_SEEN_MAX). */
typedef struct {
	char id[AG_SEEN_MAX][AG_ID_MAX + 1];
	size_t next, n;
} ag_seen;
/* True when id was seen before; otherwise records it and returns false. */
bool ag_seen_check(ag_seen *s, const char *id);

/* The simulated vehicle state the readiness checks read. */
typedef struct {
	int battery_pct;
	bool parked;
	bool ignition_off;
	uint64_t storage_free;
} ag_vstate;

/* A campaign's prerequisites; absent members are not required. */
typedef struct {
	int battery_min_pct; /* -1: none */
	int parked;          /* -1: none; 1 required */
	int ignition_off;    /* -1: none; 1 required */
	int64_t storage_min; /* -1: none */
} ag_prereq;

/* Parses prerequisites (NULL or an object; unknown members are ignored). */
int ag_prereq_parse(const json_t *o, ag_prereq *out) PQ_MUST_CHECK;
/* Runs the four checks; *checks (when not NULL) receives the array of docs/protocol.md
 * ({"name","value","ok"[,"reason"]}), or NULL when out of memory. reason receives the first
 * failing check's reason. Returns whether every check passed. */
bool ag_readiness(const ag_vstate *v, const ag_prereq *p, json_t **checks, char *reason,
                  size_t reason_len);

/* A VCI entry for an ECU of the model, from what it reported over UDS (info) or, when
 * info is NULL, from the model (unreachable ECU: "reachable": false); NULL when out of
 * memory. */
json_t *ag_vci_ecu(const vm_ecu *e, const tester_ecu_info *info);

/* The index of software type "APP"/"BOOT"/"CAL" (VM_SW_*), or -1 (CFG, unknown). */
int ag_sw_index(const char *software_type);

/* ---- meta.c: ota_campaign_metadata --------------------------------------------------- */

/* The outer encryption layer of a download. */
typedef struct {
	bool present;
	uint8_t sha256[32]; /* of the ciphertext */
	uint64_t length;
	char aad[AG_AAD_MAX + 1];
	uint8_t wrapped[PQ_WRAP_MAX];
	size_t wrapped_len;
} ag_enc;

/* One downloadable package file. */
typedef struct {
	char name[UP_NAME_MAX + 1];
	char url[AG_URL_MAX + 1];
	uint64_t length;    /* of the plaintext package */
	uint8_t sha256[32]; /* of the plaintext package */
	ag_enc enc;
} ag_file;

typedef struct {
	char ecu_id[VM_ID_MAX + 1];
	char release_id[AG_ID_MAX + 1];
	ag_file file;
	bool delta;
	char from_version[VM_VER_MAX + 1];
	char to_version[VM_VER_MAX + 1];
	char software_type[16]; /* "APP" when the message gives none */
	char hardware_id[VM_HW_MAX + 1];
	bool has_image; /* the decoded image's hash and length */
	uint8_t image_sha256[32];
	uint64_t image_len;
	bool has_base; /* delta: the base it applies to */
	uint8_t base_sha256[32];
	char base_version[VM_VER_MAX + 1];
	bool has_fallback; /* delta: the full package of the same release */
	ag_file fallback;
	char bundle_path[64]; /* a full image that is a unit of the campaign's bundle: where */
} ag_image;

typedef struct {
	char campaign_id[AG_ID_MAX + 1];
	char image_repo[AG_URL_MAX + 1];    /* ends in '/' */
	char director_repo[AG_URL_MAX + 1]; /* ends in '/' */
	const json_t *director_targets;     /* borrowed from the message */
	ag_image *images;                   /* installation order */
	size_t n_images;
	bool rollback_all; /* "all_or_nothing" (the default) */
	bool has_bundle;   /* the campaign's full_package.bin (docs/api.md 18), an Uptane target */
	ag_file bundle;    /* itself: the images with a bundle_path are taken from it */
} ag_meta;

/* Parses and validates a metadata message for vehicle `vin`: every member's type, size and
 * form (https URLs, 64-hex hashes, lengths within AG_LEN_MAX, base64 wrapped keys with the
 * aad "<vin>|<package sha256>", at most one image per ECU). PQ_ERR_FORMAT with the member's
 * path. The result borrows director_targets from msg. */
int ag_meta_parse(const json_t *msg, const char *vin, ag_meta *out) PQ_MUST_CHECK;
void ag_meta_free(ag_meta *m);

/* What Uptane verified for one image of the metadata. */
typedef struct {
	up_image target;   /* the director's target (as up_verify returned it) */
	bool has_fallback; /* the image repository's target for the fallback */
	up_image fallback;
} ag_verified;

/* Matches every metadata image with a verified director target for its ECU (same name,
 * SHA-256 and length), and each fallback with the verified image repository targets
 * (image_targets: the verified targets.json bytes): same name, SHA-256 and length as the
 * message says, and the director target's hardware id and release counter. out holds
 * m->n_images entries. PQ_ERR_VERIFY naming the image on any mismatch. */
int ag_meta_match(const ag_meta *m, const up_verify_result *r, const char *image_targets,
                  size_t image_targets_len, ag_verified *out) PQ_MUST_CHECK;

/* The metadata's bundle, if any, is the one the director and the image repository agreed on
 * (r->bundle: same name, length and SHA-256). PQ_ERR_VERIFY otherwise. */
int ag_bundle_match(const ag_meta *m, const up_verify_result *r) PQ_MUST_CHECK;

/* Finds target `name` in image repository targets.json bytes (already verified). */
int ag_image_target(const char *targets, size_t len, const char *name, up_image *out) PQ_MUST_CHECK;

/* up_image <-> JSON, for the persisted campaign. */
json_t *ag_up_image_json(const up_image *im);
int ag_up_image_parse(const json_t *o, up_image *out) PQ_MUST_CHECK;

/* ---- state.c: the state directory ------------------------------------------------------ */

/* An image installed on an ECU (the VMG included), as the agent knows it. */
typedef struct {
	bool present;
	char path[PATH_MAX]; /* the image file ("" when not known) */
	uint8_t sha256[32];  /* valid when path is set */
	uint64_t len;
	char version[VM_VER_MAX + 1];
	int64_t release_counter;
} ag_installed;

typedef struct {
	char ecu_id[VM_ID_MAX + 1];
	ag_installed cur;  /* the running image: the base for deltas */
	ag_installed prev; /* the one before the last installation (rollback) */
} ag_ecu_state;

typedef struct {
	char dir[PATH_MAX];
	int64_t boot_seq;
	up_versions image_v, director_v;  /* trusted Uptane versions */
	char *image_root, *director_root; /* trusted roots (NULL: not provisioned) */
	size_t image_root_len, director_root_len;
	ag_ecu_state *ecus; /* the model's ECUs and "VMG" */
	size_t n_ecus;
	char vmg_bank;    /* 'A' or 'B': the VMG's active bank */
	json_t *campaign; /* the current or last campaign record (see update.c), or NULL */
	bool recovered;   /* state.json was unreadable and state.json.prev was used */
} ag_state;

/* Loads dir/state.json (falling back to state.json.prev when state.json is missing or
 * corrupt) or, when neither exists, makes a fresh state from the model (factory images as
 * the installed images). ECUs of the model missing from the file are added; ECUs not in the
 * model are dropped. PQ_ERR_FORMAT when both files exist and are corrupt. */
int ag_state_load(const char *dir, const vm_model *m, ag_state *out) PQ_MUST_CHECK;
/* Saves atomically: the old file becomes state.json.prev, then state.json is written
 * (temporary file, fsync, rename, directory fsync). */
int ag_state_save(const ag_state *s) PQ_MUST_CHECK;
void ag_state_free(ag_state *s);
ag_ecu_state *ag_state_ecu(ag_state *s, const char *ecu_id);
/* Stores new trusted roots (either may be NULL: unchanged), atomically, as
 * dir/uptane/{image,director}-root.json. */
int ag_state_set_roots(ag_state *s, const char *image, size_t image_len, const char *director,
                       size_t director_len) PQ_MUST_CHECK;
/* path = dir/rel */
int ag_path(char *out, size_t len, const char *dir, const char *rel) PQ_MUST_CHECK;

/* ---- http.c --------------------------------------------------------------------------- */

typedef struct {
	const char *ca, *cert, *key;
	const pq_profile *profile;
	int64_t max_rate; /* bytes/s of downloads (0: no limit) */
	char group[48];   /* key-exchange group of the last connection ("" unknown) */
} ag_http;

/* One-time libcurl set-up (call before threads start). */
int ag_http_global_init(void) PQ_MUST_CHECK;
/* GET url into memory, at most max bytes. PQ_ERR_NOTFOUND on 404, PQ_ERR_RANGE when
 * longer, PQ_ERR_IO otherwise; *status the HTTP status (0: no answer). */
int ag_http_get(ag_http *h, const char *url, size_t max, char **body, size_t *len,
                long *status) PQ_MUST_CHECK;

/* Progress of a download: bytes in the file so far. A non-zero return aborts. */
typedef int (*ag_dl_fn)(void *user, uint64_t have);
/* Appends url's bytes from the current size of part_path on (Range), at most `expect` in
 * total. PQ_OK when the file holds expect bytes. PQ_ERR_RANGE when the server has more;
 * PQ_ERR_IO on transport errors (retry), PQ_ERR_VERIFY for HTTP client errors (4xx, no
 * retry; *status tells), PQ_ERR_TIMEOUT when aborted by fn. A server that ignores the
 * Range starts the file over. */
int ag_http_download(ag_http *h, const char *url, const char *part_path, uint64_t expect,
                     ag_dl_fn fn, void *user, long *status) PQ_MUST_CHECK;

/* ---- mqtt.c ---------------------------------------------------------------------------- */

typedef struct ag_mq ag_mq;
typedef void (*ag_mq_msg_fn)(void *user, const char *topic, const void *payload, size_t len);
typedef void (*ag_mq_conn_fn)(void *user);

typedef struct {
	const char *vin;
	const char *host;
	int port;
	const char *ca, *cert, *key;
	const pq_profile *profile;
	ag_mq_msg_fn on_message;  /* called on libmosquitto's thread */
	ag_mq_conn_fn on_connect; /* after the subscriptions and presence went out */
	void *user;
} ag_mq_opts;

/* Starts the MQTT session on libmosquitto's own thread: connects (retrying with backoff),
 * last will "offline" (retained) on oem/VIN/presence, subscribes the vehicle's topics, and
 * publishes retained "online" on every connect. */
int ag_mq_start(const ag_mq_opts *o, ag_mq **out) PQ_MUST_CHECK;
/* Publishes m (borrowed) on oem/VIN/sub; thread-safe. Queued while disconnected. */
int ag_mq_publish(ag_mq *q, const char *sub, const json_t *m, int qos) PQ_MUST_CHECK;
bool ag_mq_connected(ag_mq *q);
/* The negotiated TLS group of the current connection ("" unknown). */
void ag_mq_group(ag_mq *q, char *out, size_t len);
/* Publishes retained "offline", disconnects, stops the thread and frees. */
void ag_mq_stop(ag_mq *q);

/* ---- report.c: status file and event log ---------------------------------------------- */

/* Opens the JSON-lines log file (append; path NULL: none). Log records reach it through
 * ag_log_record (agent.h), events through ag_event. */
int ag_log_open(const char *path) PQ_MUST_CHECK;
void ag_log_close(void);
/* An event line {"ts","event",...fields} to the log file (steals fields). NULL fields (a
 * json_pack that failed) drop the event, with an error log record naming it. */
void ag_event(const char *event, json_t *fields);

/* ---- the agent ---------------------------------------------------------------------- */

typedef struct ag_agent ag_agent;

/* update.c / install.c */
typedef enum {
	AG_W_IDLE = 0,
	AG_W_RUNNING,
	AG_W_DONE, /* finished; join it */
} ag_wstate;

struct ag_agent {
	const ag_opts *o;
	vm_model model;
	ag_vstate vstate;
	char ca[PATH_MAX], cert[PATH_MAX], key[PATH_MAX];
	const pq_profile *profile;
	pq_key *kem_x25519, *kem_mlkem;
	struct sim *sim;
	ag_mq *mq;
	/* the state: shared by the main thread and the worker */
	pthread_mutex_t lock;
	ag_state st;
	/* the main thread's zone connections (VCI, diagnostics) */
	doipc *zc[VM_ZONES_MAX + 1];
	/* the campaign worker */
	pthread_t worker;
	ag_wstate wstate;
	atomic_bool cancel;   /* the campaign was cancelled */
	atomic_bool stopping; /* the agent stops: keep the campaign for the next start */
	char https_group[48]; /* negotiated on the last HTTPS connection */
	char mqtt_group[48];  /* negotiated on the current MQTT connection */
	/* set by the worker, read by the main loop after the join */
	ag_outcome wout;
	int wake_fd; /* write end of the main loop's wake-up pipe */
};

/* Campaign record phases (st.campaign "phase"). */
#define AG_PH_OFFERED     "offered"   /* ota_campaign seen, no decision yet (interactive) */
#define AG_PH_POSTPONED   "postponed" /* answered postponed */
#define AG_PH_ACCEPTED    "accepted"  /* waiting for metadata */
#define AG_PH_VERIFYING   "verifying" /* metadata received: Uptane */
#define AG_PH_DOWNLOADING "downloading"
#define AG_PH_INSTALLING  "installing"
#define AG_PH_CHECKING    "checking" /* installed: VCI verification */
#define AG_PH_COMPLETED   "completed"
#define AG_PH_FAILED      "failed"
#define AG_PH_ROLLED_BACK "rolled_back"
#define AG_PH_DECLINED    "declined"
#define AG_PH_CANCELLED   "cancelled"

/* Whether a phase is final (completed .. cancelled). */
bool ag_phase_final(const char *phase);
/* Whether the worker owns a campaign in this phase (verifying .. checking). */
bool ag_phase_worker(const char *phase);
ag_outcome ag_phase_outcome(const char *phase);

/* Publishes a status message on ota/status (steals m; NULL: one that could not be built,
 * logged as not sent). */
void ag_status_msg(ag_agent *a, json_t *m);
/* Publishes a vci_report (correlation_id may be NULL). */
void ag_send_vci(ag_agent *a, doipc **zc, const char *correlation_id);
/* Writes the status file (when configured) from the campaign record; takes a->lock. */
void ag_write_status(ag_agent *a);
/* Saves the state under a->lock (the caller holds it); logs failures. */
void ag_save_locked(ag_agent *a);
/* Wakes the main loop. */
void ag_wake(ag_agent *a);

/* The campaign record (callers hold a->lock). */
const char *ag_rec_phase(ag_agent *a);
/* Sets "phase" and "updated_ms"; on PQ_ERR_NOMEM the phase may not have changed. */
int ag_rec_set_phase(ag_agent *a, const char *phase) PQ_MUST_CHECK;
/* The record's entry of image i (NULL when there is none). */
json_t *ag_rec_image(ag_agent *a, size_t i);
/* Records error_code/error (and phase, when not NULL) in the record, saves, and publishes
 * msg_type (ota_error, ota_download_failed, ota_rollback) with them. Takes a->lock. */
void ag_fail(ag_agent *a, const char *msg_type, const char *phase, const char *ecu_id,
             const char *code, const char *fmt, ...) PQ_PRINTF(6, 7);
/* A message of the current campaign ({campaign_id[, ecu_id]}); takes a->lock. */
json_t *ag_campaign_msg(ag_agent *a, const char *msg_type, const char *ecu_id);
/* Whether the worker should stop: the agent stops or the campaign was cancelled. */
bool ag_interrupted(ag_agent *a);

/* update.c: starts the worker for st.campaign (phase verifying .. checking). */
int ag_worker_start(ag_agent *a) PQ_MUST_CHECK;

/* uptane.c: verifies the campaign's metadata with Uptane (the image repository's and the
 * director's metadata fetched with h) and matches m's images with what was verified; stores
 * the new trusted versions and roots and the record's "verified". code receives the
 * error_code on failure (uptane_verification_failed, metadata_mismatch). Runs on the worker. */
int ag_uptane(ag_agent *a, ag_http *h, const ag_meta *m, char *code, size_t code_len) PQ_MUST_CHECK;

/* prepare.c: downloads, decrypts, checks and decodes every image of m not yet prepared (in
 * the record: "verified" and its file readable), in installation order; reports a failure
 * with ag_fail (unless interrupted). Runs on the worker. */
int ag_prepare_images(ag_agent *a, ag_http *h, const ag_meta *m) PQ_MUST_CHECK;
/* SHA-256, CRC-32 and length of a file. */
int ag_file_digest(const char *path, uint8_t sha[32], uint32_t *crc, uint64_t *len) PQ_MUST_CHECK;

/* install.c: installs the decoded images of the campaign record, verifies by VCI, and rolls
 * back on failure. Sets the record's phase to completed or rolled_back (or failed when
 * nothing was flashed). Runs on the worker. */
void ag_install(ag_agent *a, const ag_meta *m);

/* vnet.c: the in-vehicle network */
/* Connects zone z's connection in zc (when not connected). */
int ag_zone_conn(ag_agent *a, doipc **zc, int zone) PQ_MUST_CHECK;
void ag_zone_close(doipc **zc, int zone);
/* Reads every ECU's information, zones in parallel, each on its connection zc[zone]. */
json_t *ag_collect_vci(ag_agent *a, doipc **zc);
/* Adds a UDS response to the diag_response r: "response" (upper-case hex) and, for a
 * negative one, "nrc" and "nrc_name" (uds_nrc_name). *status: "positive" or "negative".
 * PQ_ERR_NOMEM; PQ_ERR_FORMAT for an empty response. */
int ag_diag_answer(json_t *r, const uint8_t *resp, size_t len, const char **status) PQ_MUST_CHECK;
/* Handles a diag_request (validated here) and returns the diag_response to publish (NULL
 * when out of memory). */
json_t *ag_diag(ag_agent *a, doipc **zc, const json_t *req, const ag_env *env);

/* ---- agent.c, handle.c, consent.c: the main thread ------------------------------------- */

typedef struct ag_qitem ag_qitem;

typedef struct {
	ag_agent a;
	int wake_rd;
	pthread_mutex_t qlock;
	ag_qitem *head, *tail;
	size_t qlen;
	ag_seen seen;
	/* AG_CONSENT_INTERACTIVE: the offer waiting for the driver's answer */
	bool asking;
	char ask_cid[AG_ID_MAX + 1], ask_mid[AG_ID_MAX + 1];
	ag_outcome outcome;
	bool done;                    /* --once: a final outcome was reached */
	int64_t telemetry_next_ms;    /* monotonic time of the next telemetry sample */
	char last_ann[AG_ID_MAX + 1]; /* message id of the last announcement answered by a VCI */
} ag_main;

/* agent.c */
/* Publishes m (stolen; NULL: a message that could not be built, logged) on oem/VIN/sub and
 * logs a "sent" event. */
void ag_publish(ag_agent *a, const char *sub, json_t *m, int qos);
/* Records a final outcome (AG_OUT_NONE: nothing); with --once, the loop ends. */
void ag_final_outcome(ag_main *g, ag_outcome o);
/* After a final outcome: downloads and work files go, and images nobody runs or may roll
 * back to. */
void ag_cleanup_files(ag_agent *a);
/* Joins a worker that finished, and records its outcome. */
void ag_worker_reap(ag_main *g);

/* handle.c */
/* Handles one message from the broker (payload NUL-terminated). */
void ag_handle(ag_main *g, const char *topic, const char *payload, size_t len);
/* The MQTT session (re)connected: wake-up and status. */
void ag_on_connected(ag_main *g);

/* telemetry.c */
/* The members of a telemetry message (docs/protocol.md) for state v and the storage
 * figures; NULL when out of memory. The speed is 50 km/h with ignition on and not parked,
 * else 0; the voltage follows the charge (14.1 V with ignition on). */
json_t *ag_telemetry_body(const ag_vstate *v, uint64_t storage_free, uint64_t storage_total);
/* The file system of dir: its size and the bytes free for the agent (statvfs); a
 * free_override >= 0 replaces the free bytes (total raised to it when smaller). */
int ag_storage(const char *dir, int64_t free_override, uint64_t *free_bytes,
               uint64_t *total_bytes) PQ_MUST_CHECK;
/* Publishes a telemetry sample (QoS 0) when one is due and the session is up. */
void ag_telemetry_tick(ag_main *g);

/* consent.c */
/* Handles an ota_campaign: records the offer and answers it by a->o->consent. */
void ag_on_campaign(ag_main *g, const json_t *m, const ag_env *env);
/* At the start: asks the driver again about an offer the last run left unanswered. */
void ag_consent_resume(ag_main *g);
/* consent_fd is readable while asking: the callback reads the driver's input. */
void ag_consent_input(ag_main *g);

#endif
