/* swpg.h: the 64-byte little-endian SWPG package header (docs/package-format.md).
 *
 *   off size field                 off size field
 *    0   4   magic 0x53575047       24   4   version_serial
 *    4   2   target_ecu_id          28   4   crc32 (zlib CRC-32 of the payload)
 *    6   1   software_type          32  12   reserved (signature): delta base, else 0
 *    7   1   compression            44   2   source_ecu_id
 *    8   4   payload_size           46   2   hop_count
 *   12   4   uncompressed_size      48   4   sequence_number
 *   16   4   version maj.min.pat.bld 52  12   reserved: delta base, else 0
 *   20   4   version_timestamp
 *
 * The payload (payload_size bytes) follows the header. Authenticity never comes from the
 * CRC: the Uptane metadata carries every file's SHA-256 and length. */
#ifndef PQOTA_PKG_SWPG_H
#define PQOTA_PKG_SWPG_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "core/err.h"

#define SWPG_HDR_LEN 64
#define SWPG_MAGIC   0x53575047u

#define SWPG_ECU_VMG       0x0E00u
#define SWPG_ECU_ZGW_BASE  0x0090u /* zone z's gateway is 0x0090 + z (zone 1: 0x0091) */
#define SWPG_ECU_BROADCAST 0xFFFFu

typedef enum {
	SWPG_TYPE_APP = 1,
	SWPG_TYPE_BOOT = 2,
	SWPG_TYPE_CAL = 3,
	SWPG_TYPE_CFG = 4,
	SWPG_TYPE_ZONE = 0x80,    /* container: a zone's ZGW and ECU packages */
	SWPG_TYPE_VEHICLE = 0x81, /* container: the vehicle bundle (VMG + zones) */
} swpg_type;

typedef enum {
	SWPG_COMP_NONE = 0,
	SWPG_COMP_ZLIB = 1,  /* zlib stream (RFC 1950), the original "gzip" */
	SWPG_COMP_ZSTD = 2,  /* zstd frame */
	SWPG_COMP_DELTA = 3, /* delta descriptor + zstd frame patched from the base image */
} swpg_comp;

/* Delta base as carried in the reserved bytes: version (4 bytes at 32) and the first 20
 * bytes of the base image's SHA-256 (8 at 36, 12 at 52). The full hash is in the delta
 * descriptor at the start of the payload. */
#define SWPG_BASE_HASH_PREFIX 20

typedef struct {
	uint8_t major, minor, patch, build;
} swpg_version;

typedef struct {
	uint16_t target_ecu_id;
	uint8_t software_type;
	uint8_t compression;
	uint32_t payload_size;
	uint32_t uncompressed_size;
	swpg_version version;
	uint32_t version_timestamp;
	uint32_t version_serial;
	uint32_t crc32;
	uint16_t source_ecu_id;
	uint16_t hop_count;
	uint32_t sequence_number;
	/* delta packages only (all zero otherwise) */
	swpg_version base_version;
	uint8_t base_sha256_prefix[SWPG_BASE_HASH_PREFIX];
} swpg_header;

/* Encodes h into exactly 64 bytes. Fails on values the format cannot hold. */
int swpg_encode(const swpg_header *h, uint8_t out[SWPG_HDR_LEN]) PQ_MUST_CHECK;

/* Decodes and validates 64 bytes: magic, known type and compression, reserved bytes zero
 * unless the package is a delta, sizes consistent with the compression. */
int swpg_decode(const uint8_t in[SWPG_HDR_LEN], swpg_header *h) PQ_MUST_CHECK;

bool swpg_is_container(uint8_t software_type);
const char *swpg_type_name(uint8_t software_type);
int swpg_type_parse(const char *s, uint8_t *out) PQ_MUST_CHECK;
const char *swpg_comp_name(uint8_t compression);
int swpg_comp_parse(const char *s, uint8_t *out) PQ_MUST_CHECK;

/* "2.1.0" or "2.1.0.7" (each part 0..255); "2.1.0.7" when printed. */
int swpg_version_parse(const char *s, swpg_version *out) PQ_MUST_CHECK;
void swpg_version_str(swpg_version v, char *buf, size_t len);
/* <0, 0, >0 like strcmp, comparing major, minor, patch, build numerically. */
int swpg_version_cmp(swpg_version a, swpg_version b);

/* ECU ids: "0x0E00" (hex), "3584" (decimal, also with leading zeros), "VMG", "ZGW1".."ZGW9",
 * "ECU_011" (0x1000 + BCD digits: 0x1011). */
int swpg_ecu_parse(const char *s, uint16_t *out) PQ_MUST_CHECK;
/* A readable name for an id: "VMG", "ZGW1", "ECU_011", "BROADCAST", else "0xNNNN". */
void swpg_ecu_name(uint16_t id, char *buf, size_t len);

#endif
