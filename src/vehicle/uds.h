/* uds.h: UDS (ISO 14229-1) codec shared by the ECU simulator and the tester: service ids,
 * negative response codes (NRC) and their names, the DIDs and routines pqota's ECUs know,
 * bounded builders and parsers for the requests and responses the tester uses, and the
 * simulation's security-access key function (docs/vehicle.md).
 *
 * Parsers take untrusted bytes and a length, never read past it and return PQ_ERR_FORMAT on
 * malformed input; a negative response (7F sid nrc) is reported as PQ_ERR_VERIFY by the
 * response parsers, with the NRC in *nrc when nrc is not NULL. */
#ifndef PQOTA_VEHICLE_UDS_H
#define PQOTA_VEHICLE_UDS_H
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "core/err.h"

/* Service ids (requests; a positive response is sid + 0x40). */
#define UDS_SID_SESSION       0x10 /* DiagnosticSessionControl */
#define UDS_SID_RESET         0x11 /* ECUReset */
#define UDS_SID_CLEAR_DTC     0x14 /* ClearDiagnosticInformation */
#define UDS_SID_READ_DTC      0x19 /* ReadDTCInformation */
#define UDS_SID_READ_DID      0x22 /* ReadDataByIdentifier */
#define UDS_SID_SECURITY      0x27 /* SecurityAccess */
#define UDS_SID_WRITE_DID     0x2E /* WriteDataByIdentifier */
#define UDS_SID_ROUTINE       0x31 /* RoutineControl */
#define UDS_SID_DOWNLOAD      0x34 /* RequestDownload */
#define UDS_SID_TRANSFER      0x36 /* TransferData */
#define UDS_SID_TRANSFER_EXIT 0x37 /* RequestTransferExit */
#define UDS_SID_TESTER        0x3E /* TesterPresent */
#define UDS_NEG               0x7F /* negative response */
#define UDS_POS(sid)          ((uint8_t)((sid) + 0x40))
#define UDS_SPRMIB            0x80 /* suppressPosRspMsgIndicationBit in a sub-function byte */

/* Sub-functions. */
#define UDS_SESSION_DEFAULT     0x01
#define UDS_SESSION_PROGRAMMING 0x02
#define UDS_SESSION_EXTENDED    0x03
#define UDS_RESET_HARD          0x01
#define UDS_SEC_SEED            0x01
#define UDS_SEC_KEY             0x02
#define UDS_DTC_COUNT_BY_MASK   0x01
#define UDS_DTC_REPORT_BY_MASK  0x02
#define UDS_ROUTINE_START       0x01

/* Negative response codes. */
#define UDS_NRC_GENERAL_REJECT         0x10
#define UDS_NRC_SERVICE_NOT_SUPPORTED  0x11
#define UDS_NRC_SUBFUNC_NOT_SUPPORTED  0x12
#define UDS_NRC_BAD_LENGTH             0x13 /* incorrectMessageLengthOrInvalidFormat */
#define UDS_NRC_RESPONSE_TOO_LONG      0x14
#define UDS_NRC_BUSY                   0x21 /* busyRepeatRequest */
#define UDS_NRC_CONDITIONS             0x22 /* conditionsNotCorrect */
#define UDS_NRC_SEQUENCE               0x24 /* requestSequenceError */
#define UDS_NRC_NO_SUBNET_RESPONSE     0x25 /* noResponseFromSubnetComponent */
#define UDS_NRC_FAILURE_PREVENTS       0x26 /* failurePreventsExecutionOfRequestedAction */
#define UDS_NRC_OUT_OF_RANGE           0x31 /* requestOutOfRange */
#define UDS_NRC_SECURITY_DENIED        0x33 /* securityAccessDenied */
#define UDS_NRC_INVALID_KEY            0x35
#define UDS_NRC_EXCEEDED_ATTEMPTS      0x36 /* exceedNumberOfAttempts */
#define UDS_NRC_DELAY_NOT_EXPIRED      0x37 /* requiredTimeDelayNotExpired */
#define UDS_NRC_DOWNLOAD_NOT_ACCEPTED  0x70 /* uploadDownloadNotAccepted */
#define UDS_NRC_TRANSFER_SUSPENDED     0x71 /* transferDataSuspended */
#define UDS_NRC_PROGRAMMING_FAILURE    0x72 /* generalProgrammingFailure */
#define UDS_NRC_WRONG_BSC              0x73 /* wrongBlockSequenceCounter */
#define UDS_NRC_PENDING                0x78 /* requestCorrectlyReceived-ResponsePending */
#define UDS_NRC_SUBFUNC_NOT_IN_SESSION 0x7E
#define UDS_NRC_NOT_IN_SESSION         0x7F /* serviceNotSupportedInActiveSession */

/* Data identifiers. ASCII DIDs have a fixed size (uds_did_size) and are padded with 0x00. */
#define UDS_DID_PART_NUMBER  0xF187
#define UDS_DID_SW_NUMBER    0xF188
#define UDS_DID_APP_VERSION  0xF189
#define UDS_DID_SUPPLIER     0xF18A /* systemSupplierIdentifier (not served by pqota's ECUs) */
#define UDS_DID_SERIAL       0xF18C
#define UDS_DID_VIN          0xF190
#define UDS_DID_HW_NUMBER    0xF191
#define UDS_DID_SUPPLIER_SW  0xF195
#define UDS_DID_SYSTEM_NAME  0xF197 /* systemNameOrEngineType (not served by pqota's ECUs) */
#define UDS_DID_ACTIVE_BANK  0xF1A0 /* 'A' or 'B' */
#define UDS_DID_BOOT_VERSION 0xF1A1
#define UDS_DID_CAL_VERSION  0xF1A2
#define UDS_DID_IMAGE_SHA256 0xF1A3 /* 32 bytes */
#define UDS_DID_IMAGE_LENGTH 0xF1A4 /* u64 big-endian */

/* Routines (RoutineControl 0x31 01). */
#define UDS_RID_ERASE    0xFF00 /* erase the inactive bank */
#define UDS_RID_CHECK    0xFF01 /* check programming */
#define UDS_RID_ROLLBACK 0xFF02 /* activate the previous bank at the next reset */

/* DTCs the simulated ECUs set (3 bytes) and the status bits they use. */
#define UDS_DTC_PROG_CHECK       0xD00101u /* programming check failed */
#define UDS_DTC_SECURITY         0xD00102u /* security access: invalid key */
#define UDS_DTC_STATUS_FAILED    0x01      /* testFailed */
#define UDS_DTC_STATUS_CONFIRMED 0x08      /* confirmedDTC */
#define UDS_DTC_AVAILABILITY     0x09      /* the status bits the ECUs support */

/* Sizes. */
#define UDS_MAX_BLOCK     4096 /* data bytes per 0x36 block the ECUs accept */
#define UDS_MAX_REQ       (UDS_MAX_BLOCK + 2)
#define UDS_READ_DIDS_MAX 16 /* DIDs per 0x22 request */

/* Short name of an NRC ("invalidKey"), "unknownNRC" for codes not listed above. */
const char *uds_nrc_name(uint8_t nrc);
/* Short name of a service ("ReadDataByIdentifier"), "unknownService" otherwise. */
const char *uds_sid_name(uint8_t sid);

/* A readable one-line form of the response resp[0..n) (untrusted; n may be 0), written into
 * out[cap] and returned. Pure: no state, no error detail. The text is always NUL-terminated
 * when cap > 0, and cut with "..." at the end when it does not fit (cap >= 4).
 *  - a ReadDataByIdentifier answer for one of the identification DIDs shown as text (F187,
 *    F189, F18A, F18C, F190, F191, F195, F197) whose data is printable ASCII (one trailing
 *    0x00 allowed, nothing else): 62 F190 "WVWZZZ1JZXW000001" (VIN);
 *  - a negative response 7F sid nrc: NRC 0x31 requestOutOfRange (ReadDataByIdentifier);
 *  - anything else: the first byte in hex, a space, then up to 32 more bytes in hex
 *    ("..." when there are more): 62 F1A041. */
#define UDS_DESCRIBE_HEX_MAX 32
const char *uds_describe(const uint8_t *resp, size_t n, char *out, size_t cap);

/* The fixed size of a DID's data record, 0 for a DID pqota does not define. */
size_t uds_did_size(uint16_t did);
/* True for the DIDs whose record is an ASCII string padded with 0x00. */
bool uds_did_is_text(uint16_t did);

/* The simulated ECUs' SecurityAccess key: the first 4 bytes of
 * SHA-256("pqota-sim-key" || addr (u16 big-endian) || seed (4 bytes)). */
int uds_sim_key(uint16_t addr, const uint8_t seed[4], uint8_t key[4]) PQ_MUST_CHECK;

/* Big-endian helpers. */
uint16_t uds_get16(const uint8_t *p);
uint32_t uds_get32(const uint8_t *p);
uint64_t uds_get64(const uint8_t *p);
void uds_put16(uint8_t *p, uint16_t v);
void uds_put32(uint8_t *p, uint32_t v);
void uds_put64(uint8_t *p, uint64_t v);

/* Whether a service's second byte is a sub-function whose bit 7 is the
 * suppressPosRspMsgIndicationBit (ISO 14229-1): 0x10 DiagnosticSessionControl, 0x11
 * ECUReset, 0x27 SecurityAccess, 0x28 CommunicationControl, 0x31 RoutineControl, 0x3E
 * TesterPresent, 0x83 AccessTimingParameter, 0x84 SecuredDataTransmission, 0x85
 * ControlDTCSetting, 0x86 ResponseOnEvent, 0x87 LinkControl. For any other service bit 7
 * of the second byte means nothing (22 F1 90: the DID's high byte). Inline, so that the
 * ECU simulator, the tester, the VMG agent and the server (which link no common library
 * for it) apply one rule. */
static inline bool uds_sid_has_sprmib(uint8_t sid)
{
	switch (sid) {
	case 0x10:
	case 0x11:
	case 0x27:
	case 0x28:
	case 0x31:
	case 0x3E:
	case 0x83:
	case 0x84:
	case 0x85:
	case 0x86:
	case 0x87:
		return true;
	default:
		return false;
	}
}

/* True when a request asks for its positive response to be suppressed: a service with a
 * sub-function that allows it (uds_sid_has_sprmib) and bit 7 of the sub-function set. */
static inline bool uds_suppress_requested(const uint8_t *req, size_t n)
{
	return req && n >= 2 && (req[1] & UDS_SPRMIB) && uds_sid_has_sprmib(req[0]);
}

/* Writes a negative response 7F sid nrc; returns 3. */
size_t uds_negative(uint8_t out[3], uint8_t sid, uint8_t nrc);

/* Classifies a response to a request with service `sid`: PQ_OK for a positive response
 * (first byte sid + 0x40), PQ_ERR_VERIFY with *nrc for a negative response to that service,
 * PQ_ERR_FORMAT for anything else (empty, another service's response, a short 7F). */
int uds_check_response(uint8_t sid, const uint8_t *resp, size_t n, uint8_t *nrc) PQ_MUST_CHECK;

/* 0x10 response: 50 session P2(ms, u16) P2*(10 ms units, u16). */
int uds_parse_session_resp(const uint8_t *resp, size_t n, uint8_t session, uint16_t *p2_ms,
                           uint32_t *p2star_ms, uint8_t *nrc) PQ_MUST_CHECK;

/* 0x22 request for count DIDs (1..UDS_READ_DIDS_MAX) into out[cap]. */
int uds_build_read_did(const uint16_t *dids, size_t count, uint8_t *out, size_t cap,
                       size_t *written) PQ_MUST_CHECK;
/* One record of a 0x22 positive response. */
typedef struct {
	uint16_t did;
	const uint8_t *data; /* points into the response */
	size_t len;          /* uds_did_size(did) */
} uds_did_rec;
/* Splits a 0x22 response into records using the fixed DID sizes; every DID must be one
 * pqota defines, and at most cap records fit (PQ_ERR_RANGE otherwise). */
int uds_parse_read_did_resp(const uint8_t *resp, size_t n, uds_did_rec *recs, size_t cap,
                            size_t *count, uint8_t *nrc) PQ_MUST_CHECK;
/* Copies a text DID record into out[cap] as a C string (padding removed); PQ_ERR_FORMAT for
 * bytes that are not printable ASCII, PQ_ERR_RANGE when it does not fit. */
int uds_did_text(const uds_did_rec *rec, char *out, size_t cap) PQ_MUST_CHECK;

/* 0x27 01 response: 67 01 seed(4). */
int uds_parse_seed_resp(const uint8_t *resp, size_t n, uint8_t seed[4], uint8_t *nrc) PQ_MUST_CHECK;

/* 0x34 request: data format 0x00, address-and-length format 0x44 (or 0x84 when size does
 * not fit 32 bits), memory address addr, memory size size; returns the length (11 or 15). */
size_t uds_build_download(uint8_t out[20], uint32_t addr, uint64_t size);
/* 0x34 response: 74 LFID maxNumberOfBlockLength (1..8 bytes, the high nibble of LFID);
 * the value counts the SID and block counter bytes of a 0x36 request. */
int uds_parse_download_resp(const uint8_t *resp, size_t n, uint64_t *max_block_len,
                            uint8_t *nrc) PQ_MUST_CHECK;

/* The FF01 check-programming routine's option record, after 31 01 FF 01:
 * SHA-256(32) || CRC-32 BE(4) || length u64 BE(8) || software_type(1) || version length(1)
 * || version (1..24 printable characters). */
typedef struct {
	uint8_t sha256[32];
	uint32_t crc32;
	uint64_t len;
	uint8_t software_type; /* 1 APP, 2 BOOT, 3 CAL, 4 CFG */
	char version[32];      /* at most 24 chars used */
} uds_check_req;
#define UDS_CHECK_REQ_MAX (4 + 32 + 4 + 8 + 1 + 1 + 24)
int uds_build_check(const uds_check_req *c, uint8_t *out, size_t cap,
                    size_t *written) PQ_MUST_CHECK;
/* Parses a whole 31 01 FF 01 request. */
int uds_parse_check(const uint8_t *req, size_t n, uds_check_req *out) PQ_MUST_CHECK;

/* 0x31 01 response: 71 01 rid(2) [status]; *status is 0 when the response has none. */
int uds_parse_routine_resp(const uint8_t *resp, size_t n, uint16_t rid, uint8_t *status,
                           uint8_t *nrc) PQ_MUST_CHECK;

/* 0x19 01 response: 59 01 availability format count(u16). */
int uds_parse_dtc_count_resp(const uint8_t *resp, size_t n, unsigned *count,
                             uint8_t *nrc) PQ_MUST_CHECK;
/* 0x19 02 response: 59 02 availability then (DTC(3) status(1))*. */
typedef struct {
	uint32_t code;
	uint8_t status;
} uds_dtc;
int uds_parse_dtc_report_resp(const uint8_t *resp, size_t n, uds_dtc *dtcs, size_t cap,
                              size_t *count, uint8_t *nrc) PQ_MUST_CHECK;

#endif
