/* agent.h: the VMG agent, `pqota vehicle` (docs/vehicle.md, "The agent").
 *
 * The agent is the vehicle's gateway: it keeps an MQTT session with the pqota server
 * (TLS 1.3 with the vehicle certificate and the PKI's PQC profile), answers the server's
 * commands and campaigns (docs/protocol.md), verifies every update with Uptane, downloads
 * and decrypts the packages over HTTPS, decodes them (deltas against the installed image,
 * with the full package as fallback) and programs the simulated zone gateways' ECUs over
 * DoIP/UDS, all-or-nothing with rollback. Its state (boot counter, trusted Uptane roots and
 * versions, installed images, the campaign in progress) lives in a state directory, so a
 * restarted agent continues where it stopped. ag_run is the whole program; the CLI parses
 * arguments and owns the terminal: the agent never prints. It logs through pq_log
 * (core/log.h: the program's sink decides the format) and asks the driver through a
 * callback. */
#ifndef PQOTA_AGENT_AGENT_H
#define PQOTA_AGENT_AGENT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "core/err.h"

/* How the driver answers an ota_campaign. */
typedef enum {
	AG_CONSENT_AUTO = 0,    /* accept */
	AG_CONSENT_DECLINE,     /* decline */
	AG_CONSENT_POSTPONE,    /* postpone the first offer of a campaign, accept the next */
	AG_CONSENT_INTERACTIVE, /* ask the driver through ag_opts.consent_fn */
} ag_consent;

/* The driver's answer to an offered campaign (AG_CONSENT_INTERACTIVE). */
typedef enum {
	AG_ANSWER_PENDING = 0, /* not yet: ask again when consent_fd is readable */
	AG_ANSWER_ACCEPT,
	AG_ANSWER_DECLINE,
	AG_ANSWER_POSTPONE, /* retry_after_s 300 */
} ag_answer;

/* One target of an offer, as the server's ota_campaign gives it (NULL: absent). */
typedef struct {
	const char *ecu_id; /* never NULL */
	const char *from_version;
	const char *to_version;
} ag_offer_target;

/* An offered campaign waiting for the driver; borrowed for the duration of the call. */
typedef struct {
	const char *vin;
	const char *campaign_id;
	const char *name; /* NULL when the offer has none */
	const ag_offer_target *targets;
	size_t n_targets;
} ag_offer;

/* Asks the driver about an offer; called on ag_run's thread, first when the offer arrives
 * (input false: present it), then each time consent_fd is readable or closed while the
 * answer is pending (input true: read it). Returns the answer, or AG_ANSWER_PENDING to keep
 * waiting. The agent goes on meanwhile (commands, diagnostics, other messages); a cancel of
 * the campaign ends the question without a further call. */
typedef ag_answer (*ag_consent_fn)(void *user, const ag_offer *offer, bool input);

typedef struct {
	const char *vin;        /* required */
	const char *pki;        /* required: DIR of `pqota keys init` / `keys vehicle` */
	const char *broker;     /* required: HOST:PORT of the MQTT broker (TLS) */
	const char *state_dir;  /* required; created with mode 0700 */
	const char *model_path; /* NULL: vm_model_default(vin) */
	ag_consent consent;
	int postpone_s;           /* AG_CONSENT_POSTPONE: retry_after_s (1..2592000) */
	ag_consent_fn consent_fn; /* AG_CONSENT_INTERACTIVE: required */
	void *consent_user;
	int consent_fd; /* AG_CONSENT_INTERACTIVE: the driver's input, polled while asking */
	/* Overrides of the model's simulated vehicle state; negative: the model's value. */
	int battery_pct;
	int parked;       /* 0 / 1 */
	int ignition_off; /* 0 / 1 */
	int64_t storage_free;
	/* Fault switches of the simulation (comma-separated ECU ids, NULL for none). */
	const char *fail_program;
	const char *corrupt_block;
	const char *deny_security;
	const char *slow_flash;
	/* The trusted Uptane roots provisioned at the first start (ignored once the state holds
	 * roots: the state's may be newer). */
	const char *image_root;
	const char *director_root;
	int64_t max_rate;        /* download bandwidth limit, bytes/s (0: none) */
	int64_t delta_memory;    /* memory applying a delta may use, bytes (0: 64 MiB); a delta
	                          * that needs more falls back to the full package */
	bool once;               /* exit after the first campaign's final outcome */
	const char *log_path;    /* JSON lines of events (and of the log records the program's
	                          * pq_log sink passes to ag_log_record); NULL: none */
	const char *status_file; /* JSON summary after each phase; NULL: none */
	int telemetry_period_s;  /* seconds between telemetry samples (0: none) */
} ag_opts;

/* The outcome of a campaign as --once reports it. */
typedef enum {
	AG_OUT_NONE = 0,    /* stopped before any campaign reached a final outcome */
	AG_OUT_COMPLETED,   /* installed and verified */
	AG_OUT_FAILED,      /* verification, download or decode failed; nothing flashed */
	AG_OUT_ROLLED_BACK, /* installation or its verification failed; rolled back */
	AG_OUT_DECLINED,
	AG_OUT_CANCELLED,
} ag_outcome;

/* Runs the agent until ag_request_stop() (or, with once, the first campaign's final
 * outcome). *outcome receives that outcome. Setup errors (PKI, state, roots, simulation)
 * return an error with a detail; a run that started returns PQ_OK. */
int ag_run(const ag_opts *o, ag_outcome *outcome) PQ_MUST_CHECK;

/* Asks a running ag_run to stop cleanly (state saved; an interrupted download resumes on
 * the next start). Async-signal-safe. */
void ag_request_stop(void);

/* Appends a log record {"ts","level","component","msg"} to the log file of the running ag_run
 * (ag_opts.log_path; nothing when none is open). Thread-safe. The agent does not install a
 * pq_log sink: a program that wants its log records in that file passes them on from its
 * own sink, with the level's name ("info", "warn", ...). */
void ag_log_record(const char *level, const char *component, const char *msg);

#endif
