/* uds_names.h: the names ISO 14229-1 gives UDS negative response codes, one table for the
 * vehicle side (src/vehicle/uds.c) and the server's diagnostics (src/server/diag_names.c). */
#ifndef PQOTA_CORE_UDS_NAMES_H
#define PQOTA_CORE_UDS_NAMES_H

#include <stdint.h>

/* "requestOutOfRange" for 0x31 ...; NULL for a code ISO 14229-1 does not name. */
const char *pq_uds_nrc_name(uint8_t nrc);

#endif
