/* uds_names.h: what makes UDS answers readable, one definition for the vehicle side
 * (src/vehicle/uds.c) and the server's diagnostics (src/server/diag_names.c): the names ISO
 * 14229-1 gives negative response codes, and the text of an identification DID. */
#ifndef PQOTA_CORE_UDS_NAMES_H
#define PQOTA_CORE_UDS_NAMES_H

#include <stddef.h>
#include <stdint.h>

/* "requestOutOfRange" for 0x31 ...; NULL for a code ISO 14229-1 does not name. */
const char *pq_uds_nrc_name(uint8_t nrc);

/* The length of data[0..n) as text: without its trailing NUL, 0xFF or space padding, and
 * only if what is left is printable ASCII; 0 when it is not text (or nothing is left). */
size_t pq_uds_text_len(const uint8_t *data, size_t n);

#endif
