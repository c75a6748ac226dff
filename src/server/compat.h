/* compat.h: the handlers of the compatibility layer that are not aliases (compat_routes.c
 * holds the table; docs/api.md section 17). */
#ifndef PQOTA_SERVER_COMPAT_H
#define PQOTA_SERVER_COMPAT_H

#include "server/server.h"

/* GET /api/v1/ecus and /api/v1/ecus/{ecu_id} (compat_ecus.c). */
void compat_ecus(srv_ctx *c);
/* GET /api/v1/ecus/{ecu_id}/version (compat_ecus.c). */
void compat_ecu_versions(srv_ctx *c);

/* The REST update check of a vehicle polling with its certificate (compat_ota.c). */
void compat_ota_check(srv_ctx *c);
void compat_ota_packages(srv_ctx *c);
void compat_ota_package(srv_ctx *c);
void compat_ota_status(srv_ctx *c);

#endif
