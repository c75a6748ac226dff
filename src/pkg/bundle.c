/* bundle.c: vehicle bundle descriptions, building the package tree, the JSON manifest. */
#include "pkg/bundle.h"

#include <libgen.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/fileio.h"
#include "core/jsonv.h"
#include "core/text.h"
#include "core/time.h"

static const char *const zone_names[PKG_ZONES_MAX + 1] = {
    "", "ZONE1", "ZONE2", "ZONE3", "ZONE4", "ZONE5", "ZONE6", "ZONE7", "ZONE8", "ZONE9"};

int pkg_default_zone(uint16_t ecu)
{
	if ((ecu & 0xF000) != 0x1000)
		return 0;
	unsigned n = (ecu >> 8 & 0xF) * 100 + (ecu >> 4 & 0xF) * 10 + (ecu & 0xF);
	if (n == 0 || n > 180)
		return 0;
	return (int)((n - 1) / 20 + 1);
}

static char *dup_or_null(const char *s)
{
	return s ? strdup(s) : NULL;
}

int pkg_bundle_add(pkg_bundle_desc *d, const pkg_bundle_unit *u)
{
	if (d->n == PKG_BUNDLE_UNITS_MAX)
		return pq_err_set(PQ_ERR_RANGE, "more than %d units", PKG_BUNDLE_UNITS_MAX);
	if (!u->image || !*u->image)
		return pq_err_set(PQ_ERR_INVAL, "unit %s has no image", u->name);
	if (u->zone < 0 || u->zone > PKG_ZONES_MAX)
		return pq_err_set(PQ_ERR_INVAL, "unit %s: zone %d outside 0..%d", u->name, u->zone,
		                  PKG_ZONES_MAX);
	if (u->type < SWPG_TYPE_APP || u->type > SWPG_TYPE_CFG)
		return pq_err_set(PQ_ERR_INVAL, "unit %s: bad software type", u->name);
	if (u->zone == 0 && u->ecu != SWPG_ECU_VMG)
		return pq_err_set(PQ_ERR_INVAL, "unit %s: only the VMG sits outside a zone",
		                  u->name);
	size_t nl = strlen(u->name);
	if (nl == 0 || nl > PKG_NAME_MAX)
		return pq_err_set(PQ_ERR_INVAL, "unit name '%s' must have 1..%d characters",
		                  u->name, PKG_NAME_MAX);
	/* the name becomes an index entry name and part of a file name */
	if (strspn(u->name, "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789_-") !=
	    nl)
		return pq_err_set(PQ_ERR_INVAL, "unit name '%s': only A-Z a-z 0-9 _ -", u->name);
	for (size_t i = 0; i < d->n; i++) {
		if (strcmp(d->units[i].name, u->name) == 0 ||
		    (d->units[i].ecu == u->ecu && d->units[i].type == u->type))
			return pq_err_set(PQ_ERR_INVAL, "unit %s (ECU 0x%04X, %s) appears twice",
			                  u->name, u->ecu, swpg_type_name(u->type));
	}
	pkg_bundle_unit *c = &d->units[d->n];
	*c = *u;
	c->image = strdup(u->image);
	c->base_image = dup_or_null(u->base_image);
	if (!c->image || (u->base_image && !c->base_image)) {
		free(c->image);
		free(c->base_image);
		return pq_err_set(PQ_ERR_NOMEM, "unit paths");
	}
	d->n++;
	return PQ_OK;
}

void pkg_bundle_free(pkg_bundle_desc *d)
{
	for (size_t i = 0; i < d->n; i++) {
		free(d->units[i].image);
		free(d->units[i].base_image);
	}
	d->n = 0;
}

/* ---- description files ----------------------------------------------------------------- */

/* Members are read with jsonv: a JSON null is an error, not an absent member. */
static const pq_jv jv = {.err = PQ_ERR_INVAL, .what = NULL, .null_absent = false};

#define DESC_MAX  (4u << 20) /* description file */
#define SHORT_MAX 64         /* versions, types, compressions, ECU ids */

/* "<path>.<key>: <error>" for a member whose text does not parse. */
static int member_err(const char *path, const char *key, int rc)
{
	return pq_err_wrap(rc, "%s%s%s", path, path[0] ? "." : "", key);
}

/* What a unit takes from where it sits in the description. */
typedef struct {
	const char *dir;  /* of the description file: image paths are relative to it */
	int zone;         /* 0 for the VMG */
	const char *name; /* the default name; NULL: "name" is required */
	uint16_t ecu;     /* the default ECU id; 0: from "ecu_id" or the name */
	uint8_t comp;     /* the description's default compression and level */
	int level;
} unit_ctx;

/* "name" and "ecu_id" (or the ECU id the name spells). */
static int parse_unit_id(json_t *o, const char *where, const unit_ctx *x, pkg_bundle_unit *u)
{
	const char *s = NULL;
	int rc = pq_jv_str(&jv, o, "name", where, x->name ? 0 : PQ_JV_REQUIRED, PKG_NAME_MAX, &s);
	if (rc != PQ_OK)
		return rc;
	snprintf(u->name, sizeof(u->name), "%s", s ? s : x->name);
	s = NULL;
	rc = pq_jv_str(&jv, o, "ecu_id", where, 0, SHORT_MAX, &s);
	if (rc != PQ_OK)
		return rc;
	if (s) {
		rc = swpg_ecu_parse(s, &u->ecu);
		return rc == PQ_OK ? PQ_OK : member_err(where, "ecu_id", rc);
	}
	if (!x->ecu && swpg_ecu_parse(u->name, &u->ecu) != PQ_OK)
		return pq_err_set(PQ_ERR_INVAL, "%s: give \"ecu_id\" (the name '%s' is not one)",
		                  where, u->name);
	return PQ_OK;
}

/* "image" (resolved into img) and "version". */
static int parse_unit_image(json_t *o, const char *where, const char *dir, char img[PATH_MAX],
                            pkg_bundle_unit *u)
{
	const char *s = NULL;
	int rc = pq_jv_str(&jv, o, "image", where, PQ_JV_REQUIRED, PATH_MAX - 1, &s);
	if (rc != PQ_OK)
		return rc;
	rc = pq_path_resolve(img, PATH_MAX, dir, s);
	if (rc != PQ_OK)
		return member_err(where, "image", rc);
	u->image = img;
	rc = pq_jv_str(&jv, o, "version", where, PQ_JV_REQUIRED, SHORT_MAX, &s);
	if (rc != PQ_OK)
		return rc;
	rc = swpg_version_parse(s, &u->version);
	return rc == PQ_OK ? PQ_OK : member_err(where, "version", rc);
}

/* "type", "compression" and "level": absent keeps the default. */
static int parse_unit_codec(json_t *o, const char *where, pkg_bundle_unit *u)
{
	const char *s = NULL;
	int64_t level = u->level;
	int rc = pq_jv_str(&jv, o, "type", where, 0, SHORT_MAX, &s);
	if (rc != PQ_OK)
		return rc;
	if (s && (rc = swpg_type_parse(s, &u->type)) != PQ_OK)
		return member_err(where, "type", rc);
	s = NULL;
	rc = pq_jv_str(&jv, o, "compression", where, 0, SHORT_MAX, &s);
	if (rc != PQ_OK)
		return rc;
	if (s && (rc = swpg_comp_parse(s, &u->compression)) != PQ_OK)
		return member_err(where, "compression", rc);
	rc = pq_jv_int(&jv, o, "level", where, 0, 0, 19, &level);
	if (rc != PQ_OK)
		return rc;
	u->level = (int)level;
	return PQ_OK;
}

/* "delta_from": {"image", "version"} of the base (resolved into base). */
static int parse_unit_delta(json_t *o, const char *where, const char *dir, char base[PATH_MAX],
                            pkg_bundle_unit *u)
{
	static const char *const keys[] = {"image", "version", NULL};
	json_t *df = NULL;
	const char *s = NULL;
	char w[96];
	int rc = pq_jv_obj(&jv, o, "delta_from", where, 0, &df);
	if (rc != PQ_OK || !df)
		return rc;
	snprintf(w, sizeof(w), "%s.delta_from", where);
	rc = pq_jv_keys(&jv, df, w, keys);
	if (rc != PQ_OK)
		return rc;
	rc = pq_jv_str(&jv, df, "image", w, PQ_JV_REQUIRED, PATH_MAX - 1, &s);
	if (rc != PQ_OK)
		return rc;
	rc = pq_path_resolve(base, PATH_MAX, dir, s);
	if (rc != PQ_OK)
		return member_err(w, "image", rc);
	u->base_image = base;
	rc = pq_jv_str(&jv, df, "version", w, PQ_JV_REQUIRED, SHORT_MAX, &s);
	if (rc != PQ_OK)
		return rc;
	rc = swpg_version_parse(s, &u->base_version);
	return rc == PQ_OK ? PQ_OK : member_err(w, "version", rc);
}

static int parse_unit(json_t *o, const char *where, const unit_ctx *x, pkg_bundle_desc *d)
{
	static const char *const keys[] = {"name",        "ecu_id", "image",      "version", "type",
	                                   "compression", "level",  "delta_from", NULL};
	pkg_bundle_unit u = {.zone = x->zone,
	                     .type = SWPG_TYPE_APP,
	                     .compression = x->comp,
	                     .level = x->level,
	                     .ecu = x->ecu};
	char img[PATH_MAX], base[PATH_MAX];
	int rc;

	if (!json_is_object(o))
		return pq_jv_fail(&jv, where, NULL, "not an object");
	if ((rc = pq_jv_keys(&jv, o, where, keys)) != PQ_OK ||
	    (rc = parse_unit_id(o, where, x, &u)) != PQ_OK ||
	    (rc = parse_unit_image(o, where, x->dir, img, &u)) != PQ_OK ||
	    (rc = parse_unit_codec(o, where, &u)) != PQ_OK ||
	    (rc = parse_unit_delta(o, where, x->dir, base, &u)) != PQ_OK)
		return rc;
	return pkg_bundle_add(d, &u);
}

/* One element of "zones": {"zone", "zgw", "ecus"}. */
static int parse_zone(json_t *z, size_t zi, const unit_ctx *top, pkg_bundle_desc *d)
{
	static const char *const keys[] = {"zone", "zgw", "ecus", NULL};
	char where[64], w2[128], zgw_name[8];
	unit_ctx x = *top;
	int64_t zone = 0;
	json_t *zgw = NULL;
	int rc;

	snprintf(where, sizeof(where), "zones[%zu]", zi);
	if (!json_is_object(z))
		return pq_jv_fail(&jv, where, NULL, "not an object");
	if ((rc = pq_jv_keys(&jv, z, where, keys)) != PQ_OK ||
	    (rc = pq_jv_int(&jv, z, "zone", where, PQ_JV_REQUIRED, 1, PKG_ZONES_MAX, &zone)) !=
	        PQ_OK ||
	    (rc = pq_jv_obj(&jv, z, "zgw", where, 0, &zgw)) != PQ_OK)
		return rc;
	x.zone = (int)zone;
	if (zgw) {
		snprintf(zgw_name, sizeof(zgw_name), "ZGW%d", x.zone);
		snprintf(w2, sizeof(w2), "%s.zgw", where);
		x.name = zgw_name;
		x.ecu = (uint16_t)(SWPG_ECU_ZGW_BASE + (unsigned)x.zone);
		if ((rc = parse_unit(zgw, w2, &x, d)) != PQ_OK)
			return rc;
	}
	json_t *ecus = pq_jv_get(&jv, z, "ecus");
	if (ecus && !json_is_array(ecus))
		return pq_jv_fail(&jv, where, "ecus", "not an array");
	x.name = NULL;
	x.ecu = 0;
	size_t ei;
	json_t *e;
	json_array_foreach(ecus, ei, e)
	{
		snprintf(w2, sizeof(w2), "%s.ecus[%zu]", where, ei);
		if ((rc = parse_unit(e, w2, &x, d)) != PQ_OK)
			return rc;
	}
	return PQ_OK;
}

/* The top-level members: the campaign, version, serial, default compression and level. */
static int parse_top(json_t *root, unit_ctx *x, pkg_bundle_desc *d)
{
	static const char *const keys[] = {"campaign_id", "version", "serial", "compression",
	                                   "level",       "vmg",     "zones",  NULL};
	const char *s = NULL;
	int64_t serial = 0, level = 0;
	int rc;

	if (!json_is_object(root))
		return pq_err_set(PQ_ERR_INVAL, "the description must be a JSON object");
	if ((rc = pq_jv_keys(&jv, root, "", keys)) != PQ_OK ||
	    (rc = pq_jv_str_copy(&jv, root, "campaign_id", "", PQ_JV_REQUIRED, d->campaign_id,
	                         sizeof(d->campaign_id))) != PQ_OK ||
	    (rc = pq_jv_str(&jv, root, "version", "", 0, SHORT_MAX, &s)) != PQ_OK)
		return rc;
	if (s && (rc = swpg_version_parse(s, &d->version)) != PQ_OK)
		return member_err("", "version", rc);
	if ((rc = pq_jv_int(&jv, root, "serial", "", 0, 0, UINT32_MAX, &serial)) != PQ_OK)
		return rc;
	d->serial = (uint32_t)serial;
	s = NULL;
	if ((rc = pq_jv_str(&jv, root, "compression", "", 0, SHORT_MAX, &s)) != PQ_OK)
		return rc;
	if (s && (rc = swpg_comp_parse(s, &x->comp)) != PQ_OK)
		return member_err("", "compression", rc);
	if ((rc = pq_jv_int(&jv, root, "level", "", 0, 0, 19, &level)) != PQ_OK)
		return rc;
	x->level = (int)level;
	return PQ_OK;
}

/* "vmg" and "zones". */
static int parse_units(json_t *root, const unit_ctx *top, pkg_bundle_desc *d)
{
	unit_ctx x = *top;
	json_t *vmg = NULL;
	int rc = pq_jv_obj(&jv, root, "vmg", "", 0, &vmg);
	if (rc != PQ_OK)
		return rc;
	if (vmg) {
		x.zone = 0;
		x.name = "VMG";
		x.ecu = SWPG_ECU_VMG;
		if ((rc = parse_unit(vmg, "vmg", &x, d)) != PQ_OK)
			return rc;
	}
	json_t *zones = pq_jv_get(&jv, root, "zones");
	if (zones && !json_is_array(zones))
		return pq_jv_fail(&jv, "", "zones", "not an array");
	size_t zi;
	json_t *z;
	json_array_foreach(zones, zi, z)
	{
		if ((rc = parse_zone(z, zi, top, d)) != PQ_OK)
			return rc;
	}
	return PQ_OK;
}

int pkg_bundle_load(const char *path, pkg_bundle_desc *d)
{
	char *text = NULL, dirbuf[PATH_MAX];
	size_t len;
	json_error_t jerr;
	json_t *root;
	unit_ctx x = {.comp = SWPG_COMP_ZSTD};
	int rc;

	memset(d, 0, sizeof(*d));
	rc = pq_file_read(path, DESC_MAX, &text, &len);
	if (rc != PQ_OK)
		return rc;
	root = json_loadb(text, len, JSON_REJECT_DUPLICATES, &jerr);
	free(text);
	if (!root)
		return pq_err_set(PQ_ERR_FORMAT, "%s:%d: %s", path, jerr.line, jerr.text);
	snprintf(dirbuf, sizeof(dirbuf), "%s", path);
	x.dir = dirname(dirbuf);
	rc = parse_top(root, &x, d);
	if (rc == PQ_OK)
		rc = parse_units(root, &x, d);
	if (rc == PQ_OK && d->n == 0)
		rc = pq_err_set(PQ_ERR_INVAL, "%s describes no units", path);
	json_decref(root);
	if (rc != PQ_OK) {
		pkg_bundle_free(d);
		return pq_err_wrap(rc, "%s", path);
	}
	return PQ_OK;
}

/* ---- building ---------------------------------------------------------------------------- */

static json_t *hex_json(const uint8_t *b, size_t n)
{
	char h[2 * 64 + 1];
	pq_hex_encode(b, n, h);
	return json_string(h);
}

static json_t *version_json(swpg_version v)
{
	char s[24];
	swpg_version_str(v, s, sizeof(s));
	return json_string(s);
}

/* An object of "version" (when has_version), "length" and "sha256"; NULL when out of
 * memory. */
static json_t *image_json(bool has_version, swpg_version v, uint64_t len, const uint8_t sha[32])
{
	json_t *o = json_object();
	int fail = 0;
	if (has_version)
		fail |= json_object_set_new(o, "version", version_json(v));
	fail |= json_object_set_new(o, "length", json_integer((json_int_t)len));
	fail |= json_object_set_new(o, "sha256", hex_json(sha, 32));
	if (fail) {
		json_decref(o);
		return NULL;
	}
	return o;
}

json_t *pkg_unit_json(const pkg_unit *u, const char *file, int zone)
{
	char ecu[24], ecuhex[8], crc[9];
	json_t *o = json_object();
	int fail = 0;
	swpg_ecu_name(u->hdr.target_ecu_id, ecu, sizeof(ecu));
	snprintf(ecuhex, sizeof(ecuhex), "0x%04X", u->hdr.target_ecu_id);
	snprintf(crc, sizeof(crc), "%08x", u->hdr.crc32);
	/* json_object_set_new fails (and frees the value) on a NULL object or value */
	fail |= json_object_set_new(o, "path", json_string(u->path));
	if (file)
		fail |= json_object_set_new(o, "file", json_string(file));
	fail |= json_object_set_new(o, "target_ecu_id", json_string(ecuhex));
	fail |= json_object_set_new(o, "ecu", json_string(ecu));
	fail |= json_object_set_new(o, "zone", json_integer(zone));
	fail |= json_object_set_new(o, "type", json_string(swpg_type_name(u->hdr.software_type)));
	fail |= json_object_set_new(o, "version", version_json(u->hdr.version));
	fail |=
	    json_object_set_new(o, "compression", json_string(swpg_comp_name(u->hdr.compression)));
	fail |= json_object_set_new(o, "length", json_integer((json_int_t)u->size));
	fail |= json_object_set_new(o, "sha256", hex_json(u->sha256, 32));
	fail |= json_object_set_new(o, "crc32", json_string(crc));
	fail |= json_object_set_new(o, "payload_size", json_integer(u->hdr.payload_size));
	if (!swpg_is_container(u->hdr.software_type))
		fail |= json_object_set_new(
		    o, "image", image_json(false, u->hdr.version, u->image_size, u->image_sha256));
	if (u->delta)
		fail |= json_object_set_new(
		    o, "delta_base",
		    image_json(true, u->hdr.base_version, u->base_size, u->base_sha256));
	if (fail) {
		json_decref(o);
		return NULL;
	}
	return o;
}

/* A bundle being built: one path slot per unit and per zone; the vehicle holds its
 * top-level units (the VMG may have one per software type) and the zones. */
typedef struct {
	const pkg_bundle_desc *d;
	const char *out_dir;
	const pkg_progress *p;
	uint32_t now; /* every package's timestamp */
	char (*paths)[PATH_MAX + 64];
	pkg_child *vkids, *zkids;
	size_t nv;
	json_t *units; /* the manifest's "units" */
} bundle_build;

/* Appends the manifest entry of u (file: its path relative to the output directory). */
static int add_unit_json(bundle_build *b, const pkg_unit *u, const char *file, int zone)
{
	if (json_array_append_new(b->units, pkg_unit_json(u, file, zone)) != 0)
		return pq_err_set(PQ_ERR_NOMEM, "manifest");
	return PQ_OK;
}

/* Builds unit i's leaf package as packages/[ZONE<z>-]<name>.swpg. */
static int build_unit(bundle_build *b, size_t i)
{
	const pkg_bundle_unit *u = &b->d->units[i];
	char rel[64];
	pkg_unit unit;
	pkg_leaf_opts lo = {.ecu = u->ecu,
	                    .type = u->type,
	                    .version = u->version,
	                    .timestamp = b->now,
	                    .serial = b->d->serial,
	                    .compression = u->compression,
	                    .level = u->level,
	                    .base_path = u->base_image,
	                    .base_version = u->base_version,
	                    .source_ecu = SWPG_ECU_VMG};
	if (b->p)
		lo.progress = *b->p;
	if (u->zone)
		snprintf(rel, sizeof(rel), "packages/ZONE%d-%s.swpg", u->zone, u->name);
	else
		snprintf(rel, sizeof(rel), "packages/%s.swpg", u->name);
	int rc = pq_path_join(b->paths[i], sizeof(b->paths[i]), b->out_dir, rel);
	if (rc == PQ_OK)
		rc = pkg_build_leaf(u->image, &lo, b->paths[i], &unit);
	if (rc != PQ_OK)
		return pq_err_wrap(rc, "unit %s", u->name);
	if (u->zone)
		snprintf(unit.path, sizeof(unit.path), "ZONE%d/%s", u->zone, u->name);
	else
		snprintf(unit.path, sizeof(unit.path), "%s", u->name);
	snprintf(unit.name, sizeof(unit.name), "%s", u->name);
	rc = add_unit_json(b, &unit, rel, u->zone);
	if (rc != PQ_OK)
		return rc;
	if (u->zone == 0) {
		b->vkids[b->nv].path = b->paths[i];
		b->vkids[b->nv].name = u->name;
		b->nv++;
	}
	return PQ_OK;
}

/* Builds zone z's container (its ZGW first, then its ECUs as listed), if it has units. */
static int build_zone(bundle_build *b, int z)
{
	const pkg_bundle_desc *d = b->d;
	uint16_t zgw = (uint16_t)(SWPG_ECU_ZGW_BASE + (unsigned)z);
	size_t nz = 0;
	char rel[64];
	pkg_unit unit;
	for (int pass = 0; pass < 2; pass++)
		for (size_t i = 0; i < d->n; i++)
			if (d->units[i].zone == z && (d->units[i].ecu == zgw) == (pass == 0)) {
				b->zkids[nz].path = b->paths[i];
				b->zkids[nz].name = d->units[i].name;
				nz++;
			}
	if (nz == 0)
		return PQ_OK;
	char *zpath = b->paths[d->n + (size_t)z - 1];
	snprintf(rel, sizeof(rel), "packages/%s.swpg", zone_names[z]);
	pkg_container_opts co = {.type = SWPG_TYPE_ZONE,
	                         .ecu = zgw,
	                         .version = d->version,
	                         .timestamp = b->now,
	                         .serial = d->serial};
	if (b->p)
		co.progress = *b->p;
	int rc = pq_path_join(zpath, sizeof(b->paths[0]), b->out_dir, rel);
	if (rc == PQ_OK)
		rc = pkg_build_container(b->zkids, nz, &co, zpath, &unit);
	if (rc != PQ_OK)
		return pq_err_wrap(rc, "zone %d", z);
	snprintf(unit.path, sizeof(unit.path), "%s", zone_names[z]);
	rc = add_unit_json(b, &unit, rel, z);
	if (rc != PQ_OK)
		return rc;
	b->vkids[b->nv].path = zpath;
	b->vkids[b->nv].name = zone_names[z];
	b->nv++;
	return PQ_OK;
}

/* Builds full_package.bin; *out receives its manifest entry. */
static int build_vehicle(bundle_build *b, json_t **out)
{
	char path[PATH_MAX];
	pkg_unit unit;
	pkg_container_opts vo = {.type = SWPG_TYPE_VEHICLE,
	                         .ecu = SWPG_ECU_VMG,
	                         .version = b->d->version,
	                         .timestamp = b->now,
	                         .serial = b->d->serial};
	if (b->p)
		vo.progress = *b->p;
	int rc = pq_path_join(path, sizeof(path), b->out_dir, "full_package.bin");
	if (rc == PQ_OK)
		rc = pkg_build_container(b->vkids, b->nv, &vo, path, &unit);
	if (rc != PQ_OK)
		return pq_err_wrap(rc, "vehicle bundle");
	*out = pkg_unit_json(&unit, "full_package.bin", 0);
	return *out ? PQ_OK : pq_err_set(PQ_ERR_NOMEM, "manifest");
}

/* The manifest object; takes `bundle` and `units` (also on failure). */
static int manifest_json(const bundle_build *b, json_t *bundle, json_t *units, json_t **out)
{
	char when[PQ_ISO_TIME_LEN];
	int rc = pq_iso_time(b->now, when);
	if (rc != PQ_OK) {
		json_decref(bundle);
		json_decref(units);
		return rc;
	}
	json_t *m = json_object();
	int fail = 0;
	fail |= json_object_set_new(m, "format", json_string("pqota-swpg-manifest-v1"));
	fail |= json_object_set_new(m, "campaign_id", json_string(b->d->campaign_id));
	fail |= json_object_set_new(m, "created", json_string(when));
	fail |= json_object_set_new(m, "bundle", bundle);
	fail |= json_object_set_new(m, "units", units);
	if (fail) {
		json_decref(m);
		return pq_err_set(PQ_ERR_NOMEM, "manifest");
	}
	*out = m;
	return PQ_OK;
}

/* Writes the manifest as DIR/manifest.json (indented, keys sorted, a final newline). */
static int write_manifest(const json_t *manifest, const char *out_dir)
{
	char path[PATH_MAX];
	int rc = pq_path_join(path, sizeof(path), out_dir, "manifest.json");
	if (rc != PQ_OK)
		return rc;
	char *text = json_dumps(manifest, JSON_INDENT(2) | JSON_SORT_KEYS);
	if (!text)
		return pq_err_set(PQ_ERR_NOMEM, "manifest text");
	size_t tl = strlen(text);
	text[tl] = '\n'; /* json_dumps leaves room for the NUL we overwrite */
	rc = pq_file_write_atomic(path, text, tl + 1, 0644, true);
	free(text);
	return rc;
}

int pkg_bundle_build(const pkg_bundle_desc *d, const char *out_dir, const pkg_progress *p,
                     json_t **manifest_out)
{
	char pkgdir[PATH_MAX];
	bundle_build b = {.d = d, .out_dir = out_dir, .p = p};
	json_t *manifest = NULL, *bundle = NULL;
	int rc;

	if (d->n == 0)
		return pq_err_set(PQ_ERR_INVAL, "nothing to build: no units");
	rc = pq_path_join(pkgdir, sizeof(pkgdir), out_dir, "packages");
	if (rc != PQ_OK)
		return pq_err_wrap(rc, "output path");
	rc = pq_mkdirs(pkgdir, 0755);
	if (rc != PQ_OK)
		return rc;
	b.now = d->timestamp ? d->timestamp : (uint32_t)(pq_real_ms() / 1000);
	b.paths = calloc(d->n + PKG_ZONES_MAX, sizeof(*b.paths));
	b.vkids = calloc(d->n + PKG_ZONES_MAX, sizeof(*b.vkids));
	b.zkids = calloc(d->n, sizeof(*b.zkids));
	b.units = json_array();
	if (!b.paths || !b.vkids || !b.zkids || !b.units) {
		rc = pq_err_set(PQ_ERR_NOMEM, "bundle state");
		goto out;
	}
	for (size_t i = 0; i < d->n; i++)
		if ((rc = build_unit(&b, i)) != PQ_OK)
			goto out;
	for (int z = 1; z <= PKG_ZONES_MAX; z++)
		if ((rc = build_zone(&b, z)) != PQ_OK)
			goto out;
	if ((rc = build_vehicle(&b, &bundle)) != PQ_OK)
		goto out;
	rc = manifest_json(&b, bundle, b.units, &manifest);
	b.units = NULL;
	if (rc != PQ_OK)
		goto out;
	rc = write_manifest(manifest, out_dir);
	if (rc == PQ_OK && manifest_out) {
		*manifest_out = manifest;
		manifest = NULL;
	}
out:
	json_decref(manifest);
	json_decref(b.units);
	free(b.paths);
	free(b.vkids);
	free(b.zkids);
	return rc;
}
