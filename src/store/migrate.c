/* migrate.c: the schema, as numbered migration steps recorded in schema_version. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/log.h"
#include "core/time.h"
#include "store/store_int.h"

#define COMPONENT "store"

/*
 * Portable DDL: BIGINT, INTEGER, TEXT, ON CONFLICT and RETURNING mean the same on SQLite
 * >= 3.35 and PostgreSQL >= 10. Booleans are INTEGER 0/1 (SQLite has no BOOLEAN and
 * PostgreSQL would print 't'), JSON is TEXT (parsed by pqota, never by SQL), ids are UUID
 * text chosen by pqota, times are Unix milliseconds.
 *
 * The two backends' DDL differs in exactly two tokens, expanded per backend:
 *   {KEY}        key and ordering columns. SQLite: TEXT (byte order, BINARY collation).
 *                PostgreSQL: TEXT COLLATE "C", so that ORDER BY, and so pagination, is the
 *                same byte order whatever locale the database was created with.
 *   {SERIAL_PK}  an integer primary key the database assigns (audit_log.id only).
 *                SQLite: INTEGER PRIMARY KEY (the rowid: max+1, never reused while the
 *                newest row stays; audit_log is append-only). PostgreSQL: BIGINT GENERATED
 *                BY DEFAULT AS IDENTITY PRIMARY KEY (a sequence; never blocks concurrent
 *                appenders, unlike max+1 under a lock).
 * Everything else is one text for both.
 */

static const char *const schema_v1[] = {
    /* Vehicles, registered by VIN. cert_sha256 is the fingerprint of the client
     * certificate (lowercase hex, '' until one is issued). */
    "CREATE TABLE vehicles ("
    " vin {KEY} NOT NULL PRIMARY KEY,"
    " model TEXT NOT NULL DEFAULT '',"
    " cert_sha256 TEXT NOT NULL DEFAULT '',"
    " kem_x25519_pub TEXT,"
    " kem_mlkem_pub TEXT,"
    " online INTEGER NOT NULL DEFAULT 0 CHECK (online IN (0, 1)),"
    " last_seen_ms BIGINT NOT NULL DEFAULT 0,"
    " boot_seq BIGINT NOT NULL DEFAULT 0,"
    " last_vci TEXT,"
    " last_vci_ms BIGINT NOT NULL DEFAULT 0,"
    " created_ms BIGINT NOT NULL)",
    "CREATE INDEX vehicles_model ON vehicles (model, vin)",
    "CREATE INDEX vehicles_online ON vehicles (online, vin)",
    "CREATE INDEX vehicles_cert ON vehicles (cert_sha256)",

    /* The ECUs of each vehicle, as last reported (VCI) or seeded. */
    "CREATE TABLE ecus ("
    " vin {KEY} NOT NULL REFERENCES vehicles (vin) ON DELETE CASCADE,"
    " ecu_id {KEY} NOT NULL,"
    " hardware_id TEXT NOT NULL DEFAULT '',"
    " zone INTEGER NOT NULL DEFAULT 0,"
    " sw_app TEXT NOT NULL DEFAULT '',"
    " sw_boot TEXT NOT NULL DEFAULT '',"
    " sw_cal TEXT NOT NULL DEFAULT '',"
    " serial TEXT NOT NULL DEFAULT '',"
    " bank TEXT NOT NULL DEFAULT 'A',"
    " updated_ms BIGINT NOT NULL,"
    " PRIMARY KEY (vin, ecu_id))",
    /* campaign targeting: which vehicles carry a hardware id */
    "CREATE INDEX ecus_hardware ON ecus (hardware_id, vin)",

    /* Every version change of an ECU; seq counts per ECU from 1 (assigned under the ECU
     * row's lock, so it is gap-free and ordered). */
    "CREATE TABLE ecu_history ("
    " vin {KEY} NOT NULL,"
    " ecu_id {KEY} NOT NULL,"
    " seq BIGINT NOT NULL,"
    " software_type TEXT NOT NULL CHECK (software_type IN ('APP', 'BOOT', 'CAL')),"
    " from_version TEXT NOT NULL,"
    " to_version TEXT NOT NULL,"
    " at_ms BIGINT NOT NULL,"
    " PRIMARY KEY (vin, ecu_id, seq),"
    " FOREIGN KEY (vin, ecu_id) REFERENCES ecus (vin, ecu_id) ON DELETE CASCADE)",

    /* Releases: a full package and optionally a delta against delta_base_version. Hashes
     * are lowercase hex; delta fields are '' / 0 when there is no delta. One release per
     * (hardware, ECU, software type, version). */
    "CREATE TABLE releases ("
    " id {KEY} NOT NULL PRIMARY KEY,"
    " title TEXT NOT NULL,"
    " notes TEXT,"
    " version TEXT NOT NULL,"
    " hardware_id TEXT NOT NULL,"
    " software_type TEXT NOT NULL,"
    " ecu_id TEXT NOT NULL,"
    " file_sha256 TEXT NOT NULL,"
    " file_size BIGINT NOT NULL,"
    " image_sha256 TEXT NOT NULL,"
    " image_size BIGINT NOT NULL,"
    " delta_base_version TEXT NOT NULL DEFAULT '',"
    " delta_file_sha256 TEXT NOT NULL DEFAULT '',"
    " delta_file_size BIGINT NOT NULL DEFAULT 0,"
    " delta_base_sha256 TEXT NOT NULL DEFAULT '',"
    " created_ms BIGINT NOT NULL,"
    " created_by TEXT NOT NULL DEFAULT '',"
    " UNIQUE (hardware_id, ecu_id, software_type, version))",
    "CREATE INDEX releases_listing ON releases (hardware_id, created_ms)",
    "CREATE INDEX releases_created ON releases (created_ms)",
    "CREATE INDEX releases_file ON releases (file_sha256)",
    "CREATE INDEX releases_delta_file ON releases (delta_file_sha256)",

    /* API keys: only the SHA-256 of the secret. A name is unique among valid keys. */
    "CREATE TABLE api_keys ("
    " id {KEY} NOT NULL PRIMARY KEY,"
    " name {KEY} NOT NULL,"
    " role TEXT NOT NULL CHECK (role IN ('viewer', 'operator', 'admin')),"
    " key_sha256 TEXT NOT NULL UNIQUE,"
    " created_ms BIGINT NOT NULL,"
    " revoked_ms BIGINT NOT NULL DEFAULT 0)",
    "CREATE UNIQUE INDEX api_keys_active_name ON api_keys (name) WHERE revoked_ms = 0",

    /* Append-only audit trail of security-relevant events; detail is JSON. */
    "CREATE TABLE audit_log ("
    " id {SERIAL_PK},"
    " at_ms BIGINT NOT NULL,"
    " actor TEXT NOT NULL,"
    " action TEXT NOT NULL,"
    " target TEXT NOT NULL DEFAULT '',"
    " detail TEXT)",
    "CREATE INDEX audit_log_at ON audit_log (at_ms)",

    /* Campaigns (next issue). state: draft, scheduled, running, paused, completed,
     * cancelled, failed. target_filter, policy and phases are JSON documents: which
     * vehicles, how to roll out (windows, failure thresholds), and the phased waves. */
    "CREATE TABLE campaigns ("
    " id {KEY} NOT NULL PRIMARY KEY,"
    " name TEXT NOT NULL,"
    " state TEXT NOT NULL DEFAULT 'draft',"
    " target_filter TEXT NOT NULL DEFAULT '{}',"
    " policy TEXT NOT NULL DEFAULT '{}',"
    " phases TEXT NOT NULL DEFAULT '[]',"
    " created_by TEXT NOT NULL DEFAULT '',"
    " created_ms BIGINT NOT NULL,"
    " updated_ms BIGINT NOT NULL)",
    "CREATE INDEX campaigns_state ON campaigns (state, updated_ms)",
    "CREATE INDEX campaigns_created ON campaigns (created_ms)",

    /* The releases a campaign installs, in position order. No cascade from releases: a
     * referenced release cannot be deleted. */
    "CREATE TABLE campaign_releases ("
    " campaign_id {KEY} NOT NULL REFERENCES campaigns (id) ON DELETE CASCADE,"
    " release_id {KEY} NOT NULL REFERENCES releases (id),"
    " position INTEGER NOT NULL DEFAULT 0,"
    " PRIMARY KEY (campaign_id, release_id))",
    "CREATE INDEX campaign_releases_release ON campaign_releases (release_id)",

    /* One vehicle's progress in a campaign. A server worker claims a row (claimed_by,
     * claimed_until: a lease in ms) before acting on it; error_code is set on failure. */
    "CREATE TABLE deployments ("
    " campaign_id {KEY} NOT NULL REFERENCES campaigns (id) ON DELETE CASCADE,"
    " vin {KEY} NOT NULL REFERENCES vehicles (vin) ON DELETE CASCADE,"
    " state TEXT NOT NULL,"
    " phase INTEGER NOT NULL DEFAULT 0,"
    " attempt INTEGER NOT NULL DEFAULT 0,"
    " error_code TEXT,"
    " claimed_by TEXT,"
    " claimed_until BIGINT NOT NULL DEFAULT 0,"
    " updated_ms BIGINT NOT NULL,"
    " PRIMARY KEY (campaign_id, vin))",
    "CREATE INDEX deployments_vin ON deployments (vin)",
    "CREATE INDEX deployments_progress ON deployments (campaign_id, phase, state)",
    "CREATE INDEX deployments_claim ON deployments (state, claimed_until)",

    /* Every state change of a deployment; seq counts per deployment from 1. from_state
     * is '' for the first. */
    "CREATE TABLE deployment_transitions ("
    " campaign_id {KEY} NOT NULL,"
    " vin {KEY} NOT NULL,"
    " seq BIGINT NOT NULL,"
    " from_state TEXT NOT NULL DEFAULT '',"
    " to_state TEXT NOT NULL,"
    " at_ms BIGINT NOT NULL,"
    " cause TEXT NOT NULL DEFAULT '',"
    " PRIMARY KEY (campaign_id, vin, seq),"
    " FOREIGN KEY (campaign_id, vin) REFERENCES deployments (campaign_id, vin)"
    " ON DELETE CASCADE)",
    "CREATE INDEX deployment_transitions_at ON deployment_transitions (at_ms)",

    /* Diagnostic requests sent to a vehicle (ecu_id NULL: the whole vehicle); kind names
     * the operation ("read_dtc", ...), params is JSON. state: pending, sent, done,
     * failed, expired. */
    "CREATE TABLE diag_requests ("
    " id {KEY} NOT NULL PRIMARY KEY,"
    " vin {KEY} NOT NULL REFERENCES vehicles (vin) ON DELETE CASCADE,"
    " ecu_id TEXT,"
    " kind TEXT NOT NULL,"
    " params TEXT NOT NULL DEFAULT '{}',"
    " state TEXT NOT NULL DEFAULT 'pending',"
    " requested_by TEXT NOT NULL DEFAULT '',"
    " created_ms BIGINT NOT NULL,"
    " sent_ms BIGINT NOT NULL DEFAULT 0,"
    " expires_ms BIGINT NOT NULL DEFAULT 0,"
    " updated_ms BIGINT NOT NULL)",
    "CREATE INDEX diag_requests_vin ON diag_requests (vin, created_ms)",
    "CREATE INDEX diag_requests_state ON diag_requests (state, expires_ms)",

    /* The answers to a request, one per ECU (seq from 1); payload is JSON. */
    "CREATE TABLE diag_results ("
    " request_id {KEY} NOT NULL REFERENCES diag_requests (id) ON DELETE CASCADE,"
    " seq BIGINT NOT NULL,"
    " ecu_id TEXT NOT NULL DEFAULT '',"
    " status TEXT NOT NULL,"
    " payload TEXT,"
    " received_ms BIGINT NOT NULL,"
    " PRIMARY KEY (request_id, seq))",
};

/* Schema v2: the campaign engine (src/server/campaign.c, docs/protocol.md). */
static const char *const schema_v2[] = {
    /* next_ms: when the engine acts next on the deployment (a postponed vehicle's retry, a
     * readiness re-ask, a metadata re-send), 0 for nothing due; last_msg_ms: the last
     * message from the vehicle, or the notification (the timeout clock). */
    "ALTER TABLE deployments ADD COLUMN next_ms BIGINT NOT NULL DEFAULT 0",
    "ALTER TABLE deployments ADD COLUMN last_msg_ms BIGINT NOT NULL DEFAULT 0",
    "ALTER TABLE deployments ADD COLUMN notify_count INTEGER NOT NULL DEFAULT 0",
    "CREATE INDEX deployments_next ON deployments (state, next_ms)",
    /* current_phase: 0 while draft, then 1..; vehicle_timeout_ms: the policy's
     * vehicle_timeout_s, kept as a column for the timeout claim; resume_failures: the
     * failures of the current phase an operator accepted by resuming an auto-paused
     * campaign. */
    "ALTER TABLE campaigns ADD COLUMN current_phase INTEGER NOT NULL DEFAULT 0",
    "ALTER TABLE campaigns ADD COLUMN started_ms BIGINT NOT NULL DEFAULT 0",
    "ALTER TABLE campaigns ADD COLUMN pause_reason TEXT NOT NULL DEFAULT ''",
    "ALTER TABLE campaigns ADD COLUMN vehicle_timeout_ms BIGINT NOT NULL DEFAULT 3600000",
    "ALTER TABLE campaigns ADD COLUMN resume_failures BIGINT NOT NULL DEFAULT 0",

    /* What one deployment installs: one row per target ECU. */
    "CREATE TABLE deployment_targets ("
    " campaign_id {KEY} NOT NULL,"
    " vin {KEY} NOT NULL,"
    " ecu_id {KEY} NOT NULL,"
    " release_id TEXT NOT NULL,"
    " hardware_id TEXT NOT NULL,"
    " software_type TEXT NOT NULL,"
    " from_version TEXT NOT NULL,"
    " to_version TEXT NOT NULL,"
    " package TEXT NOT NULL CHECK (package IN ('delta', 'full')),"
    " file_sha256 TEXT NOT NULL,"
    " file_size BIGINT NOT NULL,"
    " PRIMARY KEY (campaign_id, vin, ecu_id),"
    " FOREIGN KEY (campaign_id, vin) REFERENCES deployments (campaign_id, vin)"
    " ON DELETE CASCADE)",

    /* MQTT messages processed, for idempotency (pruned after 7 days). */
    "CREATE TABLE mqtt_seen ("
    " vin {KEY} NOT NULL,"
    " message_id {KEY} NOT NULL,"
    " at_ms BIGINT NOT NULL,"
    " PRIMARY KEY (vin, message_id))",
    "CREATE INDEX mqtt_seen_at ON mqtt_seen (at_ms)",

    /* Generated Uptane metadata, every version kept: repo 'image' (vin '') or 'director'
     * (per vehicle). */
    "CREATE TABLE uptane_meta ("
    " repo {KEY} NOT NULL,"
    " vin {KEY} NOT NULL DEFAULT '',"
    " role {KEY} NOT NULL,"
    " version BIGINT NOT NULL,"
    " body TEXT NOT NULL,"
    " created_ms BIGINT NOT NULL,"
    " PRIMARY KEY (repo, vin, role, version))",
};

/* Schema v3: encrypted packages and fleet diagnostics (issue 6). */
static const char *const schema_v3[] = {
    /* Each SWPG package (full or delta, by its plaintext SHA-256) is also kept encrypted
     * (chunked AES-256-GCM, docs/security.md "Streaming AEAD") as DATA/files/<enc_sha256>;
     * content_key is the hex AES key, wrapped per vehicle into ota_campaign_metadata. */
    "CREATE TABLE package_keys ("
    " file_sha256 {KEY} NOT NULL PRIMARY KEY,"
    " enc_sha256 {KEY} NOT NULL UNIQUE,"
    " enc_size BIGINT NOT NULL,"
    " content_key TEXT NOT NULL,"
    " created_ms BIGINT NOT NULL)",
    /* A diagnostics request to a fleet is one diag_requests row per vehicle sharing a
     * batch_id (the id the API returns); results aggregate per batch. */
    "ALTER TABLE diag_requests ADD COLUMN batch_id TEXT NOT NULL DEFAULT ''",
    "CREATE INDEX diag_requests_batch ON diag_requests (batch_id)",
};

/* Schema v4: console sessions (issue 12, store/session.h): the SHA-256 of each session's
 * cookie secret, its API key (a revoked key ends its sessions: lookups join api_keys) and
 * its CSRF token. */
static const char *const schema_v4[] = {
    "CREATE TABLE console_sessions ("
    " id_sha256 {KEY} NOT NULL PRIMARY KEY,"
    " key_id {KEY} NOT NULL REFERENCES api_keys (id),"
    " csrf TEXT NOT NULL,"
    " created_ms BIGINT NOT NULL,"
    " expires_ms BIGINT NOT NULL,"
    " revoked_ms BIGINT NOT NULL DEFAULT 0)",
    "CREATE INDEX console_sessions_expiry ON console_sessions (expires_ms)",
};

/* Schema v5: the audit log's filters (issue 12, GET /api/v1/audit?actor=&action=&target=):
 * each an equality on one column, newest first (ORDER BY id DESC), so each has an index
 * ending with id; the time filters use audit_log_at. */
static const char *const schema_v5[] = {
    "CREATE INDEX audit_log_actor ON audit_log (actor, id)",
    "CREATE INDEX audit_log_action ON audit_log (action, id)",
    "CREATE INDEX audit_log_target ON audit_log (target, id)",
};

/* Schema v6: where a release's delta package came from (issue 12): "computed" by the server
 * from delta_from, or "uploaded" by the operator and checked against the base image. */
static const char *const schema_v6[] = {
    "ALTER TABLE releases ADD COLUMN delta_source TEXT NOT NULL DEFAULT 'computed'",
};

/* Schema v7: the progress replay (GET /api/v1/campaigns/{id}/progress) reads a campaign's
 * transitions in time order (WHERE campaign_id = ? ORDER BY at_ms, vin, seq); without an
 * index starting with campaign_id it sorted them all on each request. */
static const char *const schema_v7[] = {
    "CREATE INDEX deployment_transitions_replay ON deployment_transitions"
    " (campaign_id, at_ms, vin, seq)",
};

/* Schema v8: a release's deltas, one per base release, made in the background (issue 13,
 * store_release_delta): state queued, running, ready or failed, with the current step's
 * progress. The single delta of schema v1/v6 (releases.delta_*) moves here as a ready
 * delta (its base release found by hardware, software type and version, '' when gone),
 * and its columns go. input: an operator's delta file waiting for its check. */
static const char *const schema_v8[] = {
    "CREATE TABLE release_deltas ("
    " release_id {KEY} NOT NULL REFERENCES releases (id) ON DELETE CASCADE,"
    " base_version {KEY} NOT NULL,"
    " base_release_id TEXT NOT NULL DEFAULT '',"
    " base_sha256 TEXT NOT NULL,"
    " state TEXT NOT NULL CHECK (state IN ('queued', 'running', 'ready', 'failed')),"
    " progress_done BIGINT NOT NULL DEFAULT 0,"
    " progress_total BIGINT NOT NULL DEFAULT 0,"
    " error TEXT NOT NULL DEFAULT '',"
    " file_sha256 TEXT NOT NULL DEFAULT '',"
    " file_size BIGINT NOT NULL DEFAULT 0,"
    " source TEXT NOT NULL CHECK (source IN ('computed', 'uploaded')),"
    " input TEXT NOT NULL DEFAULT '',"
    " created_ms BIGINT NOT NULL,"
    " updated_ms BIGINT NOT NULL,"
    " PRIMARY KEY (release_id, base_version))",
    "CREATE INDEX release_deltas_queue ON release_deltas (state, created_ms)",
    "CREATE INDEX release_deltas_file ON release_deltas (file_sha256)",
    "INSERT INTO release_deltas (release_id, base_version, base_release_id, base_sha256,"
    " state, progress_done, progress_total, file_sha256, file_size, source, created_ms,"
    " updated_ms)"
    " SELECT r.id, r.delta_base_version, COALESCE((SELECT b.id FROM releases b"
    " WHERE b.hardware_id = r.hardware_id AND b.software_type = r.software_type"
    " AND b.version = r.delta_base_version ORDER BY b.created_ms, b.id LIMIT 1), ''),"
    " r.delta_base_sha256, 'ready', r.delta_file_size, r.delta_file_size,"
    " r.delta_file_sha256, r.delta_file_size, r.delta_source, r.created_ms, r.created_ms"
    " FROM releases r WHERE r.delta_base_version <> ''",
    "DROP INDEX releases_delta_file",
    "ALTER TABLE releases DROP COLUMN delta_base_version",
    "ALTER TABLE releases DROP COLUMN delta_file_sha256",
    "ALTER TABLE releases DROP COLUMN delta_file_size",
    "ALTER TABLE releases DROP COLUMN delta_base_sha256",
    "ALTER TABLE releases DROP COLUMN delta_source",
};

/* Schema v9: the vehicles' telemetry (issue 14, store/telemetry.h): the latest sample per
 * vehicle (the fleet gauges of /metrics aggregate it, by received_ms) and a history of the
 * newest samples per vehicle, seq counting from 1 (the oldest beyond the configured bound
 * are deleted as each sample is added). */
#define TELEMETRY_VALUES                                                                           \
	" at_ms BIGINT NOT NULL,"                                                                  \
	" received_ms BIGINT NOT NULL,"                                                            \
	" battery_pct INTEGER NOT NULL CHECK (battery_pct BETWEEN 0 AND 100),"                     \
	" battery_mv INTEGER NOT NULL CHECK (battery_mv >= 0),"                                    \
	" ignition_on INTEGER NOT NULL CHECK (ignition_on IN (0, 1)),"                             \
	" speed_dkmh INTEGER NOT NULL CHECK (speed_dkmh >= 0),"                                    \
	" parked INTEGER NOT NULL CHECK (parked IN (0, 1)),"                                       \
	" storage_free BIGINT NOT NULL CHECK (storage_free >= 0),"                                 \
	" storage_total BIGINT NOT NULL CHECK (storage_total >= storage_free),"
static const char *const schema_v9[] = {
    "CREATE TABLE telemetry_latest ("
    " vin {KEY} NOT NULL PRIMARY KEY REFERENCES vehicles (vin) ON DELETE CASCADE,"
    " seq BIGINT NOT NULL," TELEMETRY_VALUES " CHECK (seq >= 1))",
    "CREATE INDEX telemetry_latest_received ON telemetry_latest (received_ms)",
    "CREATE TABLE telemetry_history ("
    " vin {KEY} NOT NULL REFERENCES vehicles (vin) ON DELETE CASCADE,"
    " seq BIGINT NOT NULL," TELEMETRY_VALUES " PRIMARY KEY (vin, seq))",
};

/* Schema v10: API keys expire (expires_ms, 0: never) and record their last use
 * (last_used_ms, written at most once a minute per key; issue 14). */
static const char *const schema_v10[] = {
    "ALTER TABLE api_keys ADD COLUMN expires_ms BIGINT NOT NULL DEFAULT 0",
    "ALTER TABLE api_keys ADD COLUMN last_used_ms BIGINT NOT NULL DEFAULT 0",
};

/* Schema v11: the fleet-wide ECU registry (GET /api/v1/ecus, store/ecu_registry.h) filters
 * by ECU id, hardware id and APP version and pages by (vin, ecu_id): an index per filter
 * followed by the page order, so a page of a 1,000,000-ECU fleet reads about its own rows.
 * The hardware id has one since v1 (ecus_hardware), the primary key serves the unfiltered
 * list; ECU id and version together use the version's. */
static const char *const schema_v11[] = {
    "CREATE INDEX ecus_registry_ecu ON ecus (ecu_id, vin)",
    "CREATE INDEX ecus_registry_version ON ecus (sw_app, vin, ecu_id)",
};

/* Schema v12: on-demand readiness checks (POST /api/v1/vehicles/{vin}/readiness, issue 14,
 * store/readiness.h): the request (its id is the request_ota_readiness message id) and the
 * vehicle's answer, the newest few kept per vehicle. ready is NULL until answered. */
static const char *const schema_v12[] = {
    "CREATE TABLE readiness_checks ("
    " id {KEY} NOT NULL PRIMARY KEY,"
    " vin {KEY} NOT NULL REFERENCES vehicles (vin) ON DELETE CASCADE,"
    " actor TEXT NOT NULL DEFAULT '',"
    " prerequisites TEXT NOT NULL,"
    " requested_ms BIGINT NOT NULL,"
    " expires_ms BIGINT NOT NULL,"
    " answered_ms BIGINT NOT NULL DEFAULT 0,"
    " ready INTEGER CHECK (ready IN (0, 1)),"
    " answer TEXT)",
    "CREATE INDEX readiness_checks_vin ON readiness_checks (vin, requested_ms, id)",
};

/* Schema v13: campaign bundles (docs/api.md 18, store/bundle_store.h), which were files under
 * DATA/bundles before: the server imports such files at start (bundles.c). */
static const char *const schema_v13[] = {
    "CREATE TABLE bundles ("
    " id {KEY} NOT NULL PRIMARY KEY,"
    " file_sha256 TEXT NOT NULL,"
    " file_size BIGINT NOT NULL,"
    " created_ms BIGINT NOT NULL,"
    " record TEXT NOT NULL)",
    "CREATE INDEX bundles_created ON bundles (created_ms, id)",
};

/* Schema v14: presence of vehicles that poll over REST (GET /api/v1/ota/check, docs/api.md
 * 17.4) expires: online_until_ms is when (0: held by an MQTT session, no expiry); the engine
 * tick marks the expired ones offline through the partial index. */
static const char *const schema_v14[] = {
    "ALTER TABLE vehicles ADD COLUMN online_until_ms BIGINT NOT NULL DEFAULT 0",
    "CREATE INDEX vehicles_polled ON vehicles (online_until_ms) WHERE online_until_ms > 0",
    /* the newest release per (hardware id, ECU, software type) in one query
     * (store_release_latest, GET /api/firmware/latest): each release's version as one
     * comparable number (semver_counter; -1: not a semantic version), set by
     * store__release_counters_fill for the releases that exist, by the insert from then on */
    "ALTER TABLE releases ADD COLUMN version_counter BIGINT NOT NULL DEFAULT -1",
    ("CREATE INDEX releases_latest ON releases"
     " (hardware_id, ecu_id, software_type, version_counter)"),
};

typedef struct {
	const char *const *stmts;
	size_t n;
} migration;

/* migrations[i] takes the schema from version i to i + 1. */
static const migration migrations[STORE_SCHEMA_VERSION] = {
    {schema_v1, sizeof(schema_v1) / sizeof(schema_v1[0])},
    {schema_v2, sizeof(schema_v2) / sizeof(schema_v2[0])},
    {schema_v3, sizeof(schema_v3) / sizeof(schema_v3[0])},
    {schema_v4, sizeof(schema_v4) / sizeof(schema_v4[0])},
    {schema_v5, sizeof(schema_v5) / sizeof(schema_v5[0])},
    {schema_v6, sizeof(schema_v6) / sizeof(schema_v6[0])},
    {schema_v7, sizeof(schema_v7) / sizeof(schema_v7[0])},
    {schema_v8, sizeof(schema_v8) / sizeof(schema_v8[0])},
    {schema_v9, sizeof(schema_v9) / sizeof(schema_v9[0])},
    {schema_v10, sizeof(schema_v10) / sizeof(schema_v10[0])},
    {schema_v11, sizeof(schema_v11) / sizeof(schema_v11[0])},
    {schema_v12, sizeof(schema_v12) / sizeof(schema_v12[0])},
    {schema_v13, sizeof(schema_v13) / sizeof(schema_v13[0])},
    {schema_v14, sizeof(schema_v14) / sizeof(schema_v14[0])},
};

/* Steps that also fill in data the SQL cannot compute, after their statements and in their
 * transaction: the version to which the step migrates, and how. */
static const struct {
	int version;
	int (*fill)(store *s);
} fills[] = {
    {14, store__release_counters_fill},
};

/* Expands the {KEY} and {SERIAL_PK} tokens for s's backend into a malloc'd statement. */
static int expand(const store *s, const char *tmpl, char **out)
{
	static const char *const tokens[] = {"{KEY}", "{SERIAL_PK}"};
	const char *subst[] = {s->ops->ddl_key_text, s->ops->ddl_serial_pk};
	size_t cap = strlen(tmpl) + 1;
	for (const char *p = tmpl; (p = strchr(p, '{')) != NULL; p++)
		cap += strlen(s->ops->ddl_key_text) + strlen(s->ops->ddl_serial_pk);
	char *buf = malloc(cap);
	if (!buf)
		return pq_err_set(PQ_ERR_NOMEM, "migration statement");
	size_t o = 0;
	for (const char *p = tmpl; *p;) {
		size_t k = 0;
		for (; k < 2; k++)
			if (strncmp(p, tokens[k], strlen(tokens[k])) == 0)
				break;
		if (k < 2) {
			size_t n = strlen(subst[k]);
			memcpy(buf + o, subst[k], n);
			o += n;
			p += strlen(tokens[k]);
		} else {
			buf[o++] = *p++;
		}
	}
	buf[o] = '\0';
	*out = buf;
	return PQ_OK;
}

static int apply_step(store *s, int from)
{
	const migration *m = &migrations[from];
	for (size_t i = 0; i < m->n; i++) {
		char *sql = NULL;
		int rc = expand(s, m->stmts[i], &sql);
		if (rc == PQ_OK)
			rc = store_exec(s, sql, NULL, 0, NULL, NULL, NULL);
		free(sql);
		if (rc != PQ_OK)
			return pq_err_wrap(rc, "migration %d -> %d, statement %zu", from, from + 1,
			                   i + 1);
	}
	for (size_t i = 0; i < sizeof(fills) / sizeof(fills[0]); i++) {
		int rc = fills[i].version == from + 1 ? fills[i].fill(s) : PQ_OK;
		if (rc != PQ_OK)
			return pq_err_wrap(rc, "migration %d -> %d", from, from + 1);
	}
	store_val p[] = {SV_INT(from + 1), SV_INT(pq_real_ms())};
	return store_exec(s, "INSERT INTO schema_version (version, applied_ms) VALUES (?, ?)", p, 2,
	                  NULL, NULL, NULL);
}

/* Takes the migration lock and reads the schema version into *cur, in the transaction
 * migrate_step opened; prev is the version the previous step read (-1: none). */
static int locked_version(store *s, int64_t prev, int64_t *cur)
{
	int rc;
	if (s->ops->schema_lock_sql) {
		rc = store_exec(s, s->ops->schema_lock_sql, NULL, 0, NULL, NULL, NULL);
		if (rc != PQ_OK)
			return rc;
	}
	rc = store_exec(s,
	                "CREATE TABLE IF NOT EXISTS schema_version ("
	                " version BIGINT NOT NULL PRIMARY KEY,"
	                " applied_ms BIGINT NOT NULL)",
	                NULL, 0, NULL, NULL, NULL);
	if (rc != PQ_OK)
		return rc;
	rc = store__query_int(s, "SELECT MAX(version) FROM schema_version", NULL, 0, cur);
	if (rc != PQ_OK)
		return rc;
	if (*cur > STORE_SCHEMA_VERSION)
		return pq_err_set(PQ_ERR_UNSUPPORTED,
		                  "database schema version %lld is newer than this build's %d",
		                  (long long)*cur, STORE_SCHEMA_VERSION);
	if (*cur <= prev)
		return pq_err_set(PQ_ERR_IO, "schema version still %lld after migrating",
		                  (long long)*cur);
	if (*cur < 0)
		return pq_err_set(PQ_ERR_FORMAT, "bad schema version %lld", (long long)*cur);
	return PQ_OK;
}

/* One transaction: reads the version into *cur and, unless it is current, applies the step
 * from it. */
static int migrate_step(store *s, int64_t prev, int64_t *cur)
{
	int rc = store_begin(s);
	if (rc != PQ_OK)
		return rc;
	rc = locked_version(s, prev, cur);
	if (rc != PQ_OK)
		goto out;
	if (*cur < STORE_SCHEMA_VERSION)
		rc = apply_step(s, (int)*cur);
out:
	return store__end(s, rc);
}

/* One transaction per step, under the migration lock (SQLite: BEGIN IMMEDIATE holds the
 * database's write lock; PostgreSQL: a transaction-scoped advisory lock), re-reading the
 * version each time: a concurrent opener that migrated first leaves nothing to do. */
int store__migrate(store *s)
{
	for (int64_t prev = -1;;) {
		int64_t cur = 0;
		int rc = migrate_step(s, prev, &cur);
		if (rc != PQ_OK)
			return rc;
		if (cur == STORE_SCHEMA_VERSION) {
			s->schema_version = (int)cur;
			return PQ_OK;
		}
		pq_log(PQ_LOG_INFO, COMPONENT, "%s: schema migrated to version %lld", s->ops->name,
		       (long long)cur + 1);
		prev = cur;
	}
}
