/* bundle.h: a vehicle's update as one bundle: the description of its units (VMG, and per
 * zone the ZGW and ECUs: images, versions, types, compression, delta bases), building
 * every package, the zone containers and full_package.bin, and the JSON manifest (every
 * unit's target, type, version, length, SHA-256, CRC-32, delta base) that the image
 * repository signs. Description format: docs/package-format.md, "Bundle description". */
#ifndef PQOTA_PKG_BUNDLE_H
#define PQOTA_PKG_BUNDLE_H

#include <stddef.h>
#include <stdint.h>

#include <jansson.h>

#include "core/err.h"
#include "pkg/pkg.h"

#define PKG_BUNDLE_UNITS_MAX 1024
#define PKG_ZONES_MAX        9
#define PKG_CAMPAIGN_ID_MAX  64

typedef struct {
	char name[PKG_NAME_MAX + 1]; /* "VMG", "ZGW1", "ECU_011" */
	uint16_t ecu;
	uint8_t type;
	swpg_version version;
	char *image; /* path of the image */
	int zone;    /* 0 for the VMG (top level), 1..9 */
	uint8_t compression;
	int level;
	char *base_image; /* delta base, NULL for a full image */
	swpg_version base_version;
} pkg_bundle_unit;

typedef struct {
	char campaign_id[PKG_CAMPAIGN_ID_MAX + 1];
	swpg_version version; /* of the bundle and zone containers */
	uint32_t serial;
	uint32_t timestamp; /* 0: now */
	pkg_bundle_unit units[PKG_BUNDLE_UNITS_MAX];
	size_t n;
} pkg_bundle_desc;

/* The default vehicle model's zone of ECU_nnn: 20 ECUs per zone (ECU_011 is in zone 1). */
int pkg_default_zone(uint16_t ecu);

/* Adds a unit (copies the strings). Checks the name (1..8 of A-Z a-z 0-9 _ -), zone, type
 * and duplicates. */
int pkg_bundle_add(pkg_bundle_desc *d, const pkg_bundle_unit *u) PQ_MUST_CHECK;

/* Reads a description file (JSON; unknown keys are errors; image paths are relative to
 * the file's directory). */
int pkg_bundle_load(const char *path, pkg_bundle_desc *d) PQ_MUST_CHECK;

void pkg_bundle_free(pkg_bundle_desc *d);

/* Builds DIR/packages/<name>.swpg for the VMG's units, DIR/packages/ZONE<z>-<name>.swpg
 * for each unit of zone z, DIR/packages/ZONE<z>.swpg per zone, DIR/full_package.bin and
 * DIR/manifest.json. *manifest (optional) receives the manifest
 * (caller json_decref()s it). */
int pkg_bundle_build(const pkg_bundle_desc *d, const char *out_dir, const pkg_progress *p,
                     json_t **manifest) PQ_MUST_CHECK;

/* The manifest object of one unit (NULL when out of memory; caller json_decref()s it). */
json_t *pkg_unit_json(const pkg_unit *u, const char *file, int zone);

#endif
