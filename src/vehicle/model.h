/* model.h: the vehicle model: the VMG, its zones (one zone gateway each) and their ECUs,
 * with ids, DoIP logical addresses, hardware ids, factory software versions, capabilities
 * and the simulated vehicle state the readiness checks read (docs/vehicle.md).
 *
 * A model comes from a JSON file (vm_model_load) or is generated (vm_model_default: the
 * 5-zone / 100-ECU model the server creates at registration: ECU_001..ECU_100, 20 per zone,
 * hardware ids "HW-<zone>-<nnn>", versions 1.0.0). Addresses: an ECU's DoIP logical address
 * is its SWPG ECU id (ECU_011 -> 0x1011, swpg_ecu_parse), zone n's gateway is ZGWn
 * (SWPG_ECU_ZGW_BASE + n), the VMG's tester address is 0x0E00. */
#ifndef PQOTA_VEHICLE_MODEL_H
#define PQOTA_VEHICLE_MODEL_H
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include "core/err.h"

#define VM_ZONES_MAX   9 /* ZGW1..ZGW9 */
#define VM_ECUS_MAX    1024
#define VM_ID_MAX      32 /* ecu ids, serials, part numbers */
#define VM_HW_MAX      64 /* hardware ids (the server's limit) */
#define VM_VER_MAX     24 /* version strings (the server's limit) */
#define VM_PATH_MAX    1024
#define VM_TESTER_ADDR 0x0E00

/* Software types a VCI reports per ECU. */
enum {
	VM_SW_APP,
	VM_SW_BOOT,
	VM_SW_CAL,
	VM_SW_N
};

typedef struct {
	char ecu_id[VM_ID_MAX + 1];            /* "ECU_011" */
	char hardware_id[VM_HW_MAX + 1];       /* "HW-1-011" */
	char serial[VM_ID_MAX + 1];            /* F18C */
	char part_number[VM_ID_MAX + 1];       /* F187 */
	char supplier[VM_ID_MAX + 1];          /* F195 prefix */
	uint16_t addr;                         /* DoIP logical address */
	int zone;                              /* 1..n_zones */
	char version[VM_SW_N][VM_VER_MAX + 1]; /* factory versions (bank A); "" = none */
	/* The factory image of the APP software (optional, "" = none): its bytes are what bank A
	 * holds at first start, so a delta against that version applies. Without one, bank A
	 * holds no known image and any delta for the ECU falls back to the full package. */
	char image_path[VM_PATH_MAX];
	bool delta;                /* capability: accepts delta packages */
	uint64_t max_package_size; /* capability */
} vm_ecu;

typedef struct {
	int zone;      /* 1..VM_ZONES_MAX */
	uint16_t addr; /* the ZGW's DoIP logical address */
	uint16_t port; /* loopback TCP port of its DoIP server; 0 = any free port */
} vm_zone;

typedef struct {
	char vin[VM_ID_MAX + 1];
	char model[VM_HW_MAX + 1];
	char vmg_hardware_id[VM_HW_MAX + 1]; /* "VMG-1" */
	char vmg_version[VM_VER_MAX + 1];    /* the VMG's own factory APP version */
	char vmg_image_path[VM_PATH_MAX];    /* the VMG's factory image ("" = none), as for ECUs */
	uint16_t tester_addr;                /* VM_TESTER_ADDR */
	vm_zone zones[VM_ZONES_MAX];
	size_t n_zones;
	vm_ecu *ecus; /* malloc'd, n_ecus entries, ordered by zone then ecu_id */
	size_t n_ecus;
	/* simulated vehicle state, read by the readiness checks */
	int battery_pct;       /* 0..100 */
	bool parked;           /* gear in P */
	bool ignition_off;     /* ignition off */
	uint64_t storage_free; /* bytes free for downloads */
} vm_model;

/* The default model for a VIN (5 zones x 20 ECUs, battery 90 %, parked, ignition off,
 * 8 GiB free, every ECU delta-capable with max_package_size 256 MiB). */
int vm_model_default(const char *vin, vm_model *out) PQ_MUST_CHECK;
/* Loads a model file (JSON, docs/vehicle.md; at most 4 MiB). vin, when not NULL, replaces
 * the file's VIN. Unknown fields are refused (a typo must not pass silently); relative
 * image paths are resolved against the file's directory. PQ_ERR_FORMAT with the field's
 * path in the message on bad input. */
int vm_model_load(const char *path, const char *vin, vm_model *out) PQ_MUST_CHECK;
/* Writes the model as JSON (the same format vm_model_load reads). */
int vm_model_save(const vm_model *m, const char *path) PQ_MUST_CHECK;
void vm_model_free(vm_model *m);
/* The ECU with this id (case-sensitive), or NULL. */
const vm_ecu *vm_model_find(const vm_model *m, const char *ecu_id);
/* The ECU with this logical address, or NULL. */
const vm_ecu *vm_model_find_addr(const vm_model *m, uint16_t addr);

#endif
