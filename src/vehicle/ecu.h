/* ecu.h: a simulated ECU (or zone gateway) as a pure UDS state machine: ecu_handle() takes
 * one UDS request and the current time and writes the response. No I/O, no clocks, no
 * threads: the DoIP servers (sim.c) feed it, the unit tests and fuzzer call it directly.
 *
 * State: two banks (A/B) with per-bank versions and the APP image's SHA-256, length and
 * CRC-32, the active bank, the previous bank (rollback target), a bank checked and waiting
 * for the next reset, DTCs and the writable serial. These are "persistent" (ecu_state_json /
 * ecu_state_load, and ecu_take_dirty says when they changed). Session, security access and
 * an unfinished download are volatile, as in a real ECU after a power cycle.
 * Services, DIDs, routines and NRCs: docs/vehicle.md ("ECU simulator"). */
#ifndef PQOTA_VEHICLE_ECU_H
#define PQOTA_VEHICLE_ECU_H
#include <jansson.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "core/err.h"
#include "crypto/hash.h"
#include "vehicle/model.h"

#define ECU_DTCS_MAX     16
#define ECU_S3_MS        5000 /* non-default session without requests -> default session */
#define ECU_LOCKOUT_MS   1000 /* delay after ECU_MAX_ATTEMPTS invalid keys */
#define ECU_MAX_ATTEMPTS 3
#define ECU_P2_MS        50
#define ECU_P2STAR_MS    5000

typedef struct {
	bool valid;
	char version[VM_SW_N][VM_VER_MAX + 1];
	uint8_t sha256[32]; /* of the APP image */
	uint64_t len;
	uint32_t crc32;
} ecu_bank;

typedef struct {
	uint32_t code; /* 3 bytes */
	uint8_t status;
} ecu_dtc;

typedef struct {
	/* identity */
	char ecu_id[VM_ID_MAX + 1];
	char vin[VM_ID_MAX + 1];
	char hardware_id[VM_HW_MAX + 1];
	char serial[VM_ID_MAX + 1];
	char part_number[VM_ID_MAX + 1];
	char supplier[VM_ID_MAX + 1];
	uint16_t addr;
	uint64_t max_package_size;
	bool gateway; /* a zone gateway: only 0x10, 0x3E and 0x22 F190/F18C/F191 */
	/* fault switches (sim.h) */
	bool fail_program, corrupt_block, deny_security, slow_flash;

	/* persistent state */
	ecu_bank bank[2]; /* 0 = A, 1 = B */
	int active;       /* 0 or 1 */
	int previous;     /* rollback target, -1 = none */
	int pending;      /* activated at the next reset, -1 = none */
	ecu_dtc dtcs[ECU_DTCS_MAX];
	size_t n_dtcs;
	bool dirty; /* persistent state changed since ecu_take_dirty */

	/* volatile state */
	uint8_t session;
	int64_t last_req_ms;
	bool unlocked;
	bool seed_issued;
	uint8_t seed[4];
	unsigned failed_keys;
	int64_t locked_until_ms;
	bool erased;      /* the inactive bank was erased in this programming session */
	bool downloading; /* between 0x34 and 0x37 */
	bool transferred; /* 0x37 done, waiting for the check routine */
	uint64_t dl_size, dl_got;
	uint8_t bsc_next; /* expected block sequence counter */
	bool any_block;
	uint64_t blocks; /* distinct blocks accepted */
	pq_hash_ctx *sha;
	uint32_t crc;
	uint8_t got_sha256[32];
} ecu;

/* Sets up an ECU from its model entry: bank A valid with the model's versions and the
 * factory image's record (image_sha256 NULL: no known image, zero hash, length 0), bank B
 * empty, default session, locked. */
int ecu_init(ecu *e, const vm_ecu *m, const char *vin, const uint8_t *image_sha256,
             uint64_t image_len, uint32_t image_crc) PQ_MUST_CHECK;
/* Sets up a zone gateway's own UDS responder. */
int ecu_init_gateway(ecu *e, int zone, uint16_t addr, const char *vin) PQ_MUST_CHECK;
void ecu_free(ecu *e);

/* Handles one UDS request (n >= 1 bytes) at time now_ms (any monotonic milliseconds). Writes
 * the response (positive or negative) to resp[cap] and its length to *resp_len; 0 when the
 * positive response is suppressed (sub-function bit 7). cap must be at least 3; a response
 * longer than cap is answered with NRC 0x14. PQ_ERR_INVAL on bad arguments only. */
int ecu_handle(ecu *e, const uint8_t *req, size_t n, uint8_t *resp, size_t cap, size_t *resp_len,
               int64_t now_ms) PQ_MUST_CHECK;
/* Applies the S3 timeout without a request (a server may call it periodically). */
void ecu_tick(ecu *e, int64_t now_ms);
/* True (once) when the persistent state changed since the last call. */
bool ecu_take_dirty(ecu *e);

/* The persistent state as a JSON object (docs/vehicle.md "State file"); NULL on no memory. */
json_t *ecu_state_json(const ecu *e);
/* Restores the persistent state from ecu_state_json's object; PQ_ERR_FORMAT naming the
 * field on anything malformed (the ECU is then unchanged). */
int ecu_state_load(ecu *e, const json_t *j) PQ_MUST_CHECK;

/* "A" / "B" */
const char *ecu_bank_name(int bank);

#endif
