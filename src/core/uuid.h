/* uuid.h: random (version 4) UUIDs for ids of campaigns, releases, messages. */
#ifndef PQOTA_CORE_UUID_H
#define PQOTA_CORE_UUID_H

#include "core/err.h"

#define PQ_UUID_LEN 37 /* 36 characters and the NUL */

/* A random (version 4) UUID in canonical lowercase text (OpenSSL's CSPRNG). */
int pq_uuid4(char out[PQ_UUID_LEN]) PQ_MUST_CHECK;

#endif
