/* bundle.c: vehicle bundle descriptions, building the package tree, the JSON manifest. */
#include "pkg/bundle.h"

#include <errno.h>
#include <libgen.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "core/fileio.h"
#include "crypto/hash.h"

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

/* Fails on any key of obj not in the NULL-terminated list. */
static int only_keys(json_t *obj, const char *where, const char *const *allowed)
{
	const char *k;
	json_t *v;
	json_object_foreach(obj, k, v)
	{
		size_t i = 0;
		while (allowed[i] && strcmp(allowed[i], k) != 0)
			i++;
		if (!allowed[i])
			return pq_err_set(PQ_ERR_INVAL, "%s: unknown key '%s'", where, k);
	}
	return PQ_OK;
}

static int get_str(json_t *obj, const char *key, const char *where, bool required, const char **out)
{
	json_t *v = json_object_get(obj, key);
	*out = NULL;
	if (!v) {
		if (required)
			return pq_err_set(PQ_ERR_INVAL, "%s: missing \"%s\"", where, key);
		return PQ_OK;
	}
	if (!json_is_string(v))
		return pq_err_set(PQ_ERR_INVAL, "%s: \"%s\" must be a string", where, key);
	*out = json_string_value(v);
	return PQ_OK;
}

/* Resolves a path relative to the description file's directory. */
static int resolve(const char *dir, const char *p, char *out, size_t len)
{
	int n = p[0] == '/' ? snprintf(out, len, "%s", p) : snprintf(out, len, "%s/%s", dir, p);
	if (n < 0 || (size_t)n >= len)
		return pq_err_set(PQ_ERR_RANGE, "path too long: %s", p);
	return PQ_OK;
}

static int parse_unit(json_t *o, const char *where, const char *dir, int zone,
                      const char *default_name, uint16_t default_ecu, uint8_t default_comp,
                      int default_level, pkg_bundle_desc *d)
{
	static const char *const keys[] = {"name",        "ecu_id", "image",      "version", "type",
	                                   "compression", "level",  "delta_from", NULL};
	static const char *const dkeys[] = {"image", "version", NULL};
	pkg_bundle_unit u = {0};
	const char *s = NULL;
	char img[PATH_MAX], base[PATH_MAX];
	int rc;

	if (!json_is_object(o))
		return pq_err_set(PQ_ERR_INVAL, "%s must be an object", where);
	rc = only_keys(o, where, keys);
	if (rc != PQ_OK)
		return rc;
	u.zone = zone;
	u.type = SWPG_TYPE_APP;
	u.compression = default_comp;
	u.level = default_level;
	u.ecu = default_ecu;
	rc = get_str(o, "name", where, default_name == NULL, &s);
	if (rc != PQ_OK)
		return rc;
	snprintf(u.name, sizeof(u.name), "%s", s ? s : default_name);
	if (strlen(s ? s : default_name) > PKG_NAME_MAX)
		return pq_err_set(PQ_ERR_INVAL, "%s: name '%s' longer than %d", where, s,
		                  PKG_NAME_MAX);
	if ((rc = get_str(o, "ecu_id", where, false, &s)) != PQ_OK)
		return rc;
	if (s) {
		if ((rc = swpg_ecu_parse(s, &u.ecu)) != PQ_OK)
			return pq_err_wrap(rc, "%s", where);
	} else if (!default_ecu && (rc = swpg_ecu_parse(u.name, &u.ecu)) != PQ_OK) {
		return pq_err_set(PQ_ERR_INVAL, "%s: give \"ecu_id\" (the name '%s' is not one)",
		                  where, u.name);
	}
	if ((rc = get_str(o, "image", where, true, &s)) != PQ_OK ||
	    (rc = resolve(dir, s, img, sizeof(img))) != PQ_OK)
		return rc;
	u.image = img;
	if ((rc = get_str(o, "version", where, true, &s)) != PQ_OK ||
	    (rc = swpg_version_parse(s, &u.version)) != PQ_OK)
		return pq_err_wrap(rc, "%s", where);
	if ((rc = get_str(o, "type", where, false, &s)) != PQ_OK)
		return rc;
	if (s && (rc = swpg_type_parse(s, &u.type)) != PQ_OK)
		return pq_err_wrap(rc, "%s", where);
	if ((rc = get_str(o, "compression", where, false, &s)) != PQ_OK)
		return rc;
	if (s && (rc = swpg_comp_parse(s, &u.compression)) != PQ_OK)
		return pq_err_wrap(rc, "%s", where);
	json_t *lv = json_object_get(o, "level");
	if (lv) {
		if (!json_is_integer(lv) || json_integer_value(lv) < 0 ||
		    json_integer_value(lv) > 19)
			return pq_err_set(PQ_ERR_INVAL, "%s: \"level\" must be 0..19", where);
		u.level = (int)json_integer_value(lv);
	}
	json_t *df = json_object_get(o, "delta_from");
	if (df) {
		char w[96];
		snprintf(w, sizeof(w), "%s.delta_from", where);
		if (!json_is_object(df))
			return pq_err_set(PQ_ERR_INVAL, "%s must be an object", w);
		if ((rc = only_keys(df, w, dkeys)) != PQ_OK)
			return rc;
		if ((rc = get_str(df, "image", w, true, &s)) != PQ_OK ||
		    (rc = resolve(dir, s, base, sizeof(base))) != PQ_OK)
			return rc;
		u.base_image = base;
		if ((rc = get_str(df, "version", w, true, &s)) != PQ_OK ||
		    (rc = swpg_version_parse(s, &u.base_version)) != PQ_OK)
			return pq_err_wrap(rc, "%s", w);
	}
	return pkg_bundle_add(d, &u);
}

int pkg_bundle_load(const char *path, pkg_bundle_desc *d)
{
	static const char *const top_keys[] = {"campaign_id", "version", "serial", "compression",
	                                       "level",       "vmg",     "zones",  NULL};
	static const char *const zone_keys[] = {"zone", "zgw", "ecus", NULL};
	char *text = NULL, dirbuf[PATH_MAX];
	size_t len;
	json_error_t jerr;
	json_t *root = NULL;
	const char *s;
	uint8_t comp = SWPG_COMP_ZSTD;
	int level = 0, rc;

	memset(d, 0, sizeof(*d));
	rc = pq_file_read(path, 4u << 20, &text, &len);
	if (rc != PQ_OK)
		return rc;
	root = json_loadb(text, len, JSON_REJECT_DUPLICATES, &jerr);
	free(text);
	if (!root)
		return pq_err_set(PQ_ERR_FORMAT, "%s:%d: %s", path, jerr.line, jerr.text);
	snprintf(dirbuf, sizeof(dirbuf), "%s", path);
	const char *dir = dirname(dirbuf);
	if (!json_is_object(root)) {
		rc = pq_err_set(PQ_ERR_INVAL, "%s: the description must be a JSON object", path);
		goto out;
	}
	if ((rc = only_keys(root, "description", top_keys)) != PQ_OK)
		goto out;
	if ((rc = get_str(root, "campaign_id", "description", true, &s)) != PQ_OK)
		goto out;
	if (strlen(s) == 0 || strlen(s) > PKG_CAMPAIGN_ID_MAX) {
		rc = pq_err_set(PQ_ERR_INVAL, "campaign_id must have 1..%d characters",
		                PKG_CAMPAIGN_ID_MAX);
		goto out;
	}
	snprintf(d->campaign_id, sizeof(d->campaign_id), "%s", s);
	if ((rc = get_str(root, "version", "description", false, &s)) != PQ_OK)
		goto out;
	if (s && (rc = swpg_version_parse(s, &d->version)) != PQ_OK)
		goto out;
	json_t *serial = json_object_get(root, "serial");
	if (serial) {
		if (!json_is_integer(serial) || json_integer_value(serial) < 0 ||
		    json_integer_value(serial) > UINT32_MAX) {
			rc = pq_err_set(PQ_ERR_INVAL, "serial must be 0..4294967295");
			goto out;
		}
		d->serial = (uint32_t)json_integer_value(serial);
	}
	if ((rc = get_str(root, "compression", "description", false, &s)) != PQ_OK)
		goto out;
	if (s && (rc = swpg_comp_parse(s, &comp)) != PQ_OK)
		goto out;
	json_t *lv = json_object_get(root, "level");
	if (lv) {
		if (!json_is_integer(lv) || json_integer_value(lv) < 0 ||
		    json_integer_value(lv) > 19) {
			rc = pq_err_set(PQ_ERR_INVAL, "level must be 0..19");
			goto out;
		}
		level = (int)json_integer_value(lv);
	}
	json_t *vmg = json_object_get(root, "vmg");
	if (vmg &&
	    (rc = parse_unit(vmg, "vmg", dir, 0, "VMG", SWPG_ECU_VMG, comp, level, d)) != PQ_OK)
		goto out;
	json_t *zones = json_object_get(root, "zones");
	if (zones && !json_is_array(zones)) {
		rc = pq_err_set(PQ_ERR_INVAL, "zones must be an array");
		goto out;
	}
	size_t zi;
	json_t *z;
	json_array_foreach(zones, zi, z)
	{
		char where[64];
		snprintf(where, sizeof(where), "zones[%zu]", zi);
		if (!json_is_object(z) || (rc = only_keys(z, where, zone_keys)) != PQ_OK) {
			if (rc == PQ_OK)
				rc = pq_err_set(PQ_ERR_INVAL, "%s must be an object", where);
			goto out;
		}
		json_t *zn = json_object_get(z, "zone");
		if (!json_is_integer(zn) || json_integer_value(zn) < 1 ||
		    json_integer_value(zn) > PKG_ZONES_MAX) {
			rc =
			    pq_err_set(PQ_ERR_INVAL, "%s.zone must be 1..%d", where, PKG_ZONES_MAX);
			goto out;
		}
		int zone = (int)json_integer_value(zn);
		json_t *zgw = json_object_get(z, "zgw");
		if (zgw) {
			char nm[8], w2[128];
			snprintf(nm, sizeof(nm), "ZGW%d", zone);
			snprintf(w2, sizeof(w2), "%s.zgw", where);
			rc = parse_unit(zgw, w2, dir, zone, nm,
			                (uint16_t)(SWPG_ECU_ZGW_BASE + (unsigned)zone), comp, level,
			                d);
			if (rc != PQ_OK)
				goto out;
		}
		json_t *ecus = json_object_get(z, "ecus");
		if (ecus && !json_is_array(ecus)) {
			rc = pq_err_set(PQ_ERR_INVAL, "%s.ecus must be an array", where);
			goto out;
		}
		size_t ei;
		json_t *e;
		json_array_foreach(ecus, ei, e)
		{
			char w2[128];
			snprintf(w2, sizeof(w2), "%s.ecus[%zu]", where, ei);
			rc = parse_unit(e, w2, dir, zone, NULL, 0, comp, level, d);
			if (rc != PQ_OK)
				goto out;
		}
	}
	if (d->n == 0)
		rc = pq_err_set(PQ_ERR_INVAL, "%s describes no units", path);
out:
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

json_t *pkg_unit_json(const pkg_unit *u, const char *file, int zone)
{
	char ecu[24], ecuhex[8], crc[9];
	json_t *o = json_object();
	swpg_ecu_name(u->hdr.target_ecu_id, ecu, sizeof(ecu));
	snprintf(ecuhex, sizeof(ecuhex), "0x%04X", u->hdr.target_ecu_id);
	snprintf(crc, sizeof(crc), "%08x", u->hdr.crc32);
	json_object_set_new(o, "path", json_string(u->path));
	if (file)
		json_object_set_new(o, "file", json_string(file));
	json_object_set_new(o, "target_ecu_id", json_string(ecuhex));
	json_object_set_new(o, "ecu", json_string(ecu));
	json_object_set_new(o, "zone", json_integer(zone));
	json_object_set_new(o, "type", json_string(swpg_type_name(u->hdr.software_type)));
	json_object_set_new(o, "version", version_json(u->hdr.version));
	json_object_set_new(o, "compression", json_string(swpg_comp_name(u->hdr.compression)));
	json_object_set_new(o, "length", json_integer((json_int_t)u->size));
	json_object_set_new(o, "sha256", hex_json(u->sha256, 32));
	json_object_set_new(o, "crc32", json_string(crc));
	json_object_set_new(o, "payload_size", json_integer(u->hdr.payload_size));
	if (!swpg_is_container(u->hdr.software_type)) {
		json_t *img = json_object();
		json_object_set_new(img, "length", json_integer((json_int_t)u->image_size));
		json_object_set_new(img, "sha256", hex_json(u->image_sha256, 32));
		json_object_set_new(o, "image", img);
	}
	if (u->delta) {
		json_t *b = json_object();
		json_object_set_new(b, "version", version_json(u->hdr.base_version));
		json_object_set_new(b, "length", json_integer((json_int_t)u->base_size));
		json_object_set_new(b, "sha256", hex_json(u->base_sha256, 32));
		json_object_set_new(o, "delta_base", b);
	}
	return o;
}

int pkg_bundle_build(const pkg_bundle_desc *d, const char *out_dir, const pkg_progress *p,
                     json_t **manifest_out)
{
	char pkgdir[PATH_MAX], path[PATH_MAX + 64], rel[64], when[32];
	pkg_unit unit;
	pkg_child *vkids = NULL, *zkids = NULL;
	char(*paths)[PATH_MAX + 64] = NULL;
	json_t *manifest = NULL, *units = NULL;
	size_t nv = 0;
	int rc;
	time_t now = d->timestamp ? (time_t)d->timestamp : time(NULL);
	struct tm tm;

	if (d->n == 0)
		return pq_err_set(PQ_ERR_INVAL, "nothing to build: no units");
	if (snprintf(pkgdir, sizeof(pkgdir), "%s/packages", out_dir) >= (int)sizeof(pkgdir))
		return pq_err_set(PQ_ERR_RANGE, "output path too long");
	rc = pq_mkdirs(pkgdir, 0755);
	if (rc != PQ_OK)
		return rc;
	/* one path slot per unit and per zone; the vehicle holds its top-level units (the VMG
	 * may have one per software type) and the zones */
	paths = calloc(d->n + PKG_ZONES_MAX, sizeof(*paths));
	vkids = calloc(d->n + PKG_ZONES_MAX, sizeof(*vkids));
	zkids = calloc(d->n, sizeof(*zkids));
	manifest = json_object();
	units = json_array();
	if (!paths || !vkids || !zkids || !manifest || !units) {
		rc = pq_err_set(PQ_ERR_NOMEM, "bundle state");
		goto out;
	}
	gmtime_r(&now, &tm);
	strftime(when, sizeof(when), "%Y-%m-%dT%H:%M:%SZ", &tm);

	/* leaves */
	for (size_t i = 0; i < d->n; i++) {
		const pkg_bundle_unit *u = &d->units[i];
		pkg_leaf_opts lo = {.ecu = u->ecu,
		                    .type = u->type,
		                    .version = u->version,
		                    .timestamp = (uint32_t)now,
		                    .serial = d->serial,
		                    .compression = u->compression,
		                    .level = u->level,
		                    .base_path = u->base_image,
		                    .base_version = u->base_version,
		                    .source_ecu = SWPG_ECU_VMG};
		if (p)
			lo.progress = *p;
		if (u->zone)
			snprintf(rel, sizeof(rel), "packages/ZONE%d-%s.swpg", u->zone, u->name);
		else
			snprintf(rel, sizeof(rel), "packages/%s.swpg", u->name);
		snprintf(paths[i], sizeof(paths[i]), "%s/%s", out_dir, rel);
		rc = pkg_build_leaf(u->image, &lo, paths[i], &unit);
		if (rc != PQ_OK) {
			rc = pq_err_wrap(rc, "unit %s", u->name);
			goto out;
		}
		if (u->zone)
			snprintf(unit.path, sizeof(unit.path), "ZONE%d/%s", u->zone, u->name);
		else
			snprintf(unit.path, sizeof(unit.path), "%s", u->name);
		snprintf(unit.name, sizeof(unit.name), "%s", u->name);
		json_array_append_new(units, pkg_unit_json(&unit, rel, u->zone));
		if (u->zone == 0) {
			vkids[nv].path = paths[i];
			vkids[nv].name = d->units[i].name;
			nv++;
		}
	}
	/* zones, in order: the ZGW first, then the ECUs as listed */
	for (int z = 1; z <= PKG_ZONES_MAX; z++) {
		size_t nz = 0;
		uint16_t zgw = (uint16_t)(SWPG_ECU_ZGW_BASE + (unsigned)z);
		for (int pass = 0; pass < 2; pass++)
			for (size_t i = 0; i < d->n; i++)
				if (d->units[i].zone == z &&
				    (d->units[i].ecu == zgw) == (pass == 0)) {
					zkids[nz].path = paths[i];
					zkids[nz].name = d->units[i].name;
					nz++;
				}
		if (nz == 0)
			continue;
		char *zpath = paths[d->n + (size_t)z - 1];
		const char *zname = zone_names[z];
		snprintf(rel, sizeof(rel), "packages/%s.swpg", zname);
		snprintf(zpath, PATH_MAX + 64, "%s/%s", out_dir, rel);
		pkg_container_opts co = {.type = SWPG_TYPE_ZONE,
		                         .ecu = zgw,
		                         .version = d->version,
		                         .timestamp = (uint32_t)now,
		                         .serial = d->serial};
		if (p)
			co.progress = *p;
		rc = pkg_build_container(zkids, nz, &co, zpath, &unit);
		if (rc != PQ_OK) {
			rc = pq_err_wrap(rc, "zone %d", z);
			goto out;
		}
		snprintf(unit.path, sizeof(unit.path), "%s", zname);
		json_array_append_new(units, pkg_unit_json(&unit, rel, z));
		vkids[nv].path = zpath;
		vkids[nv].name = zone_names[z];
		nv++;
	}
	snprintf(path, sizeof(path), "%s/full_package.bin", out_dir);
	pkg_container_opts vo = {.type = SWPG_TYPE_VEHICLE,
	                         .ecu = SWPG_ECU_VMG,
	                         .version = d->version,
	                         .timestamp = (uint32_t)now,
	                         .serial = d->serial};
	if (p)
		vo.progress = *p;
	rc = pkg_build_container(vkids, nv, &vo, path, &unit);
	if (rc != PQ_OK) {
		rc = pq_err_wrap(rc, "vehicle bundle");
		goto out;
	}
	json_t *bundle = pkg_unit_json(&unit, "full_package.bin", 0);
	json_object_set_new(manifest, "format", json_string("pqota-swpg-manifest-v1"));
	json_object_set_new(manifest, "campaign_id", json_string(d->campaign_id));
	json_object_set_new(manifest, "created", json_string(when));
	json_object_set_new(manifest, "bundle", bundle);
	json_object_set_new(manifest, "units", units);
	units = NULL;
	snprintf(path, sizeof(path), "%s/manifest.json", out_dir);
	char *text = json_dumps(manifest, JSON_INDENT(2) | JSON_SORT_KEYS);
	if (!text) {
		rc = pq_err_set(PQ_ERR_NOMEM, "manifest text");
		goto out;
	}
	size_t tl = strlen(text);
	text[tl] = '\n'; /* json_dumps leaves room for the NUL we overwrite */
	rc = pq_file_write_atomic(path, text, tl + 1, 0644, true);
	free(text);
	if (rc == PQ_OK && manifest_out) {
		*manifest_out = manifest;
		manifest = NULL;
	}
out:
	json_decref(manifest);
	json_decref(units);
	free(paths);
	free(vkids);
	free(zkids);
	return rc;
}
