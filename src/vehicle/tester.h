/* tester.h: the VMG's side of the in-vehicle network: a DoIP client (ISO 13400-2 over TCP)
 * to one zone gateway, a UDS request/response exchange over it, and the UDS sequences the
 * agent needs: reading an ECU's identification (for the VCI), programming an ECU's inactive
 * bank, and rolling an ECU back to its previous bank.
 *
 * A doipc is used by one thread at a time; use one connection per zone to work on zones in
 * parallel. Errors carry a message (pq_err_detail) that names the ECU, the service and the
 * NRC, e.g. "ECU_011: 0x27 send key: NRC 0x35 invalidKey". */
#ifndef PQOTA_VEHICLE_TESTER_H
#define PQOTA_VEHICLE_TESTER_H
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include "core/err.h"
#include "vehicle/model.h"

typedef struct doipc doipc;

/* Connects to host:port and activates routing for tester_addr (routing activation type
 * 0x00). PQ_ERR_IO / PQ_ERR_TIMEOUT on network trouble, PQ_ERR_VERIFY when routing
 * activation is refused. */
int doipc_connect(const char *host, uint16_t port, uint16_t tester_addr, int timeout_ms,
                  doipc **out) PQ_MUST_CHECK;
void doipc_close(doipc *c);

/* Sends one UDS request to target and waits for its response: the DoIP diagnostic ack
 * first (a diagnostic NACK is PQ_ERR_NOTFOUND for an unknown target, else PQ_ERR_IO), then
 * the response, skipping "response pending" (7F sid 78) answers. Any response, positive or
 * negative, is PQ_OK with its bytes in resp (at most cap; longer is PQ_ERR_RANGE).
 * PQ_ERR_TIMEOUT when nothing came within timeout_ms. */
int doipc_uds(doipc *c, uint16_t target, const uint8_t *req, size_t req_len, uint8_t *resp,
              size_t cap, size_t *resp_len, int timeout_ms) PQ_MUST_CHECK;

/* The NRC that made the last tester_* sequence on c fail, 0 when none did (network
 * trouble, malformed answers, or success). Sequence errors map NRCs to PQ_ERR_RANGE for
 * 0x70/0x71 and PQ_ERR_VERIFY for the others (tester_rollback: PQ_ERR_NOTFOUND for 0x22). */
uint8_t doipc_last_nrc(const doipc *c);

/* What an ECU says about itself, read over UDS (default session, DIDs of docs/vehicle.md). */
typedef struct {
	char vin[VM_ID_MAX + 1];               /* F190 */
	char hardware_id[VM_HW_MAX + 1];       /* F191 */
	char serial[VM_ID_MAX + 1];            /* F18C */
	char part_number[VM_ID_MAX + 1];       /* F187 */
	char version[VM_SW_N][VM_VER_MAX + 1]; /* F189 APP, F1A1 BOOT, F1A2 CAL (active bank) */
	char bank;                             /* 'A' or 'B': F1A0 */
	uint8_t image_sha256[32];              /* F1A3: SHA-256 of the active bank's APP image */
	uint64_t image_len;                    /* F1A4 */
	unsigned dtc_count;                    /* 0x19 01 (DTCs with status mask 0x09) */
} tester_ecu_info;
int tester_read_info(doipc *c, uint16_t ecu, tester_ecu_info *out) PQ_MUST_CHECK;

/* An image to program: the decoded image file, its length, SHA-256 and CRC-32, and what the
 * ECU records for the bank (the version of software_type, 1 APP, 2 BOOT, 3 CAL, 4 CFG). */
typedef struct {
	const char *path;
	uint64_t len;
	uint8_t sha256[32];
	uint32_t crc32;
	uint8_t software_type;
	char version[VM_VER_MAX + 1]; /* "1.1.0" */
} tester_image;
typedef void (*tester_progress)(void *user, uint64_t done, uint64_t total);

/* Programs the inactive bank and activates it: 0x10 02 (programming session), 0x27 01/02
 * (security access), 0x31 01 FF00 (erase the inactive bank), 0x34 (request download),
 * 0x36 blocks (the block counter starts at 1 and wraps 0xFF -> 0x00), 0x37, 0x31 01 FF01
 * (check: the ECU compares SHA-256, CRC-32 and length with what it received), 0x11 01
 * (reset: the ECU boots the new bank). progress may be NULL. On failure the ECU is left on
 * its previous bank (it was never switched) and the error names the step. */
int tester_program(doipc *c, uint16_t ecu, const tester_image *img, tester_progress progress,
                   void *user) PQ_MUST_CHECK;

/* Switches the ECU back to the bank it ran before the last successful programming: 0x10 02,
 * 0x27, 0x31 01 FF02 (activate previous bank), 0x11 01. PQ_ERR_NOTFOUND when the ECU has no
 * previous bank to go back to. */
int tester_rollback(doipc *c, uint16_t ecu) PQ_MUST_CHECK;

#endif
