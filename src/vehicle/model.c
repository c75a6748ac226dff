/* model.c: the vehicle model: the default 5-zone / 100-ECU model, and the model file (JSON,
 * docs/vehicle.md "Vehicle model file") with strict, bounded parsing and its writer. */
#include "vehicle/model.h"

#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/fileio.h"
#include "core/jsonv.h"
#include "core/semver.h"
#include "pkg/swpg.h"

#define VM_FILE_MAX         (4u << 20)
#define VM_DEFAULT_ZONES    5
#define VM_DEFAULT_PER_ZONE 20
#define VM_DEFAULT_MAX_PKG  (256ull << 20)
#define VM_DEFAULT_STORAGE  (8ull << 30)
#define VM_DEFAULT_SUPPLIER "PQSIM"

static const char *const sw_keys[VM_SW_N] = {"APP", "BOOT", "CAL"};

static bool vin_ok(const char *s)
{
	size_t n = strlen(s);
	if (n < 1 || n > VM_ID_MAX)
		return false;
	for (size_t i = 0; i < n; i++) {
		char c = s[i];
		if (!((c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') ||
		      c == '-' || c == '_'))
			return false;
	}
	return true;
}

/* "SN-<last 6 characters of the VIN>-<nnn>" */
static void default_serial(const char *vin, const char *num, char *out, size_t cap)
{
	size_t len = strlen(vin);
	const char *suffix = len > 6 ? vin + len - 6 : vin;
	snprintf(out, cap, "SN-%.6s-%.20s", suffix, num);
}

static void model_init(vm_model *m)
{
	memset(m, 0, sizeof(*m));
	m->tester_addr = VM_TESTER_ADDR;
	snprintf(m->vmg_hardware_id, sizeof(m->vmg_hardware_id), "VMG-1");
	snprintf(m->vmg_version, sizeof(m->vmg_version), "1.0.0");
	m->battery_pct = 90;
	m->parked = true;
	m->ignition_off = true;
	m->storage_free = VM_DEFAULT_STORAGE;
}

static void zone_init(vm_zone *z, int zone, uint16_t port)
{
	z->zone = zone;
	z->addr = (uint16_t)(SWPG_ECU_ZGW_BASE + (unsigned)zone);
	z->port = port;
}

int vm_model_default(const char *vin, vm_model *out)
{
	if (!vin || !out)
		return pq_err_set(PQ_ERR_INVAL, "model: NULL argument");
	if (!vin_ok(vin))
		return pq_err_set(PQ_ERR_INVAL, "model: bad VIN '%s'", vin);
	vm_model m;
	model_init(&m);
	snprintf(m.vin, sizeof(m.vin), "%s", vin);
	size_t n = VM_DEFAULT_ZONES * VM_DEFAULT_PER_ZONE;
	m.ecus = calloc(n, sizeof(*m.ecus));
	if (!m.ecus)
		return pq_err_set(PQ_ERR_NOMEM, "model: no memory");
	for (int z = 1; z <= VM_DEFAULT_ZONES; z++)
		zone_init(&m.zones[m.n_zones++], z, 0);
	for (size_t i = 0; i < n; i++) {
		vm_ecu *e = &m.ecus[i];
		int num = (int)i + 1;
		e->zone = (int)(i / VM_DEFAULT_PER_ZONE) + 1;
		snprintf(e->ecu_id, sizeof(e->ecu_id), "ECU_%03d", num);
		snprintf(e->hardware_id, sizeof(e->hardware_id), "HW-%d-%03d", e->zone, num);
		char digits[8];
		snprintf(digits, sizeof(digits), "%03d", num);
		default_serial(vin, digits, e->serial, sizeof(e->serial));
		snprintf(e->part_number, sizeof(e->part_number), "PN-%d-%03d", e->zone, num);
		snprintf(e->supplier, sizeof(e->supplier), VM_DEFAULT_SUPPLIER);
		for (int t = 0; t < VM_SW_N; t++)
			snprintf(e->version[t], sizeof(e->version[t]), "1.0.0");
		e->delta = true;
		e->max_package_size = VM_DEFAULT_MAX_PKG;
		int rc = swpg_ecu_parse(e->ecu_id, &e->addr);
		if (rc != PQ_OK) {
			free(m.ecus);
			return rc;
		}
	}
	m.n_ecus = n;
	*out = m;
	return PQ_OK;
}

void vm_model_free(vm_model *m)
{
	if (!m)
		return;
	free(m->ecus);
	m->ecus = NULL;
	m->n_ecus = 0;
}

const vm_ecu *vm_model_find(const vm_model *m, const char *ecu_id)
{
	if (!m || !ecu_id)
		return NULL;
	for (size_t i = 0; i < m->n_ecus; i++)
		if (strcmp(m->ecus[i].ecu_id, ecu_id) == 0)
			return &m->ecus[i];
	return NULL;
}

const vm_ecu *vm_model_find_addr(const vm_model *m, uint16_t addr)
{
	if (!m)
		return NULL;
	for (size_t i = 0; i < m->n_ecus; i++)
		if (m->ecus[i].addr == addr)
			return &m->ecus[i];
	return NULL;
}

/* ---- loading ------------------------------------------------------------------------------ */

/* Members are read with jsonv: errors are PQ_ERR_FORMAT "model: <path>.<key>: <problem>",
 * a JSON null is an error, and an absent optional member keeps the default. */
static const pq_jv jv = {.err = PQ_ERR_FORMAT, .what = "model", .null_absent = false};

/* A printable ASCII string member copied into out[cap] (flags: PQ_JV_REQUIRED,
 * PQ_JV_EMPTY_OK). */
static int get_text(const json_t *obj, const char *key, const char *path, unsigned flags, char *out,
                    size_t cap)
{
	return pq_jv_str_copy(&jv, obj, key, path, flags | PQ_JV_PRINTABLE, out, cap);
}

/* An unsigned integer member in lo..hi (absent keeps *out unless PQ_JV_REQUIRED). */
static int get_uint(const json_t *obj, const char *key, const char *path, unsigned flags,
                    uint64_t lo, uint64_t hi, uint64_t *out)
{
	int64_t v = (int64_t)*out;
	int rc = pq_jv_int(&jv, obj, key, path, flags, (int64_t)lo, (int64_t)hi, &v);
	if (rc == PQ_OK)
		*out = (uint64_t)v;
	return rc;
}

/* s, the member path.key, is "" or a semantic version. */
static int check_version(const char *s, const char *path, const char *key)
{
	semver sv;
	if (s[0] && semver_parse(s, &sv) != PQ_OK)
		return pq_jv_fail(&jv, path, key, "'%s' is not a semantic version", s);
	return PQ_OK;
}

/* "image": a path relative to the model file's directory (dir), resolved into out; absent
 * or "" leaves out as it is. */
static int load_image(const json_t *obj, const char *path, const char *dir, char out[VM_PATH_MAX])
{
	const char *s = NULL;
	int rc = pq_jv_str(&jv, obj, "image", path, PQ_JV_EMPTY_OK | PQ_JV_PRINTABLE,
	                   VM_PATH_MAX - 1, &s);
	if (rc != PQ_OK || !s || !s[0])
		return rc;
	if (pq_path_resolve(out, VM_PATH_MAX, dir, s) != PQ_OK)
		return pq_jv_fail(&jv, path, "image", "path too long");
	return PQ_OK;
}

/* "ecu_id": an ECU's id, its address, and the serial and part number it defaults. */
static int load_ecu_id(const json_t *j, const char *path, const vm_model *m, vm_ecu *e)
{
	int rc = get_text(j, "ecu_id", path, PQ_JV_REQUIRED, e->ecu_id, sizeof(e->ecu_id));
	if (rc != PQ_OK)
		return rc;
	if (swpg_ecu_parse(e->ecu_id, &e->addr) != PQ_OK)
		return pq_jv_fail(&jv, path, "ecu_id", "bad ECU id '%s' (ECU_001..ECU_999)",
		                  e->ecu_id);
	if (e->addr == SWPG_ECU_VMG || e->addr == SWPG_ECU_BROADCAST || e->addr == m->tester_addr ||
	    (e->addr > SWPG_ECU_ZGW_BASE && e->addr <= SWPG_ECU_ZGW_BASE + VM_ZONES_MAX))
		return pq_jv_fail(&jv, path, "ecu_id", "'%s' is not an ECU address", e->ecu_id);
	const char *num = strncmp(e->ecu_id, "ECU_", 4) == 0 ? e->ecu_id + 4 : e->ecu_id;
	default_serial(m->vin, num, e->serial, sizeof(e->serial));
	snprintf(e->part_number, sizeof(e->part_number), "PN-%.29s", e->ecu_id);
	return PQ_OK;
}

/* "versions": {"APP", "BOOT", "CAL"}, each "" or a semantic version. */
static int load_versions(const json_t *j, const char *path, vm_ecu *e)
{
	static const char *const vkeys[] = {"APP", "BOOT", "CAL", NULL};
	json_t *vers = NULL;
	char p[160];
	int rc = pq_jv_obj(&jv, j, "versions", path, 0, &vers);
	if (rc != PQ_OK || !vers)
		return rc;
	snprintf(p, sizeof(p), "%s.versions", path);
	if ((rc = pq_jv_keys(&jv, vers, p, vkeys)) != PQ_OK)
		return rc;
	for (int t = 0; t < VM_SW_N; t++) {
		if ((rc = get_text(vers, sw_keys[t], p, PQ_JV_EMPTY_OK, e->version[t],
		                   sizeof(e->version[t]))) != PQ_OK ||
		    (rc = check_version(e->version[t], p, sw_keys[t])) != PQ_OK)
			return rc;
	}
	return PQ_OK;
}

static int load_ecu(const json_t *j, const char *path, const vm_model *m, int zone, const char *dir,
                    vm_ecu *e)
{
	static const char *const keys[] = {
	    "ecu_id",   "hardware_id", "serial", "part_number",      "supplier",
	    "versions", "image",       "delta",  "max_package_size", NULL};
	int rc;
	if (!json_is_object(j))
		return pq_jv_fail(&jv, path, NULL, "not an object");
	if ((rc = pq_jv_keys(&jv, j, path, keys)) != PQ_OK)
		return rc;
	memset(e, 0, sizeof(*e));
	e->zone = zone;
	e->delta = true;
	e->max_package_size = VM_DEFAULT_MAX_PKG;
	snprintf(e->supplier, sizeof(e->supplier), VM_DEFAULT_SUPPLIER);
	for (int t = 0; t < VM_SW_N; t++)
		snprintf(e->version[t], sizeof(e->version[t]), "1.0.0");
	if ((rc = load_ecu_id(j, path, m, e)) != PQ_OK ||
	    (rc = get_text(j, "hardware_id", path, PQ_JV_REQUIRED, e->hardware_id,
	                   sizeof(e->hardware_id))) != PQ_OK ||
	    (rc = get_text(j, "serial", path, PQ_JV_EMPTY_OK, e->serial, sizeof(e->serial))) !=
	        PQ_OK ||
	    (rc = get_text(j, "part_number", path, PQ_JV_EMPTY_OK, e->part_number,
	                   sizeof(e->part_number))) != PQ_OK ||
	    (rc = get_text(j, "supplier", path, PQ_JV_EMPTY_OK, e->supplier,
	                   sizeof(e->supplier))) != PQ_OK ||
	    (rc = pq_jv_bool(&jv, j, "delta", path, 0, &e->delta)) != PQ_OK ||
	    (rc = get_uint(j, "max_package_size", path, 0, 1, UINT64_C(1) << 40,
	                   &e->max_package_size)) != PQ_OK ||
	    (rc = load_versions(j, path, e)) != PQ_OK)
		return rc;
	return load_image(j, path, dir, e->image_path);
}

static int cmp_ecu(const void *a, const void *b)
{
	const vm_ecu *x = a, *y = b;
	if (x->zone != y->zone)
		return x->zone < y->zone ? -1 : 1;
	return strcmp(x->ecu_id, y->ecu_id);
}

/* The VIN: the caller's (vin, when not NULL) or the file's "vin". */
static int load_vin(const json_t *root, const char *vin, vm_model *m)
{
	if (vin) {
		if (!vin_ok(vin))
			return pq_err_set(PQ_ERR_INVAL, "model: bad VIN '%s'", vin);
		snprintf(m->vin, sizeof(m->vin), "%s", vin);
		return PQ_OK;
	}
	int rc = get_text(root, "vin", "$", PQ_JV_REQUIRED, m->vin, sizeof(m->vin));
	if (rc != PQ_OK)
		return rc;
	if (!vin_ok(m->vin))
		return pq_jv_fail(&jv, "$", "vin", "1..32 characters of A-Z a-z 0-9 - _");
	return PQ_OK;
}

/* "vmg": {"hardware_id", "version", "image"}. */
static int load_vmg(const json_t *root, const char *dir, vm_model *m)
{
	static const char *const keys[] = {"hardware_id", "version", "image", NULL};
	json_t *vmg = NULL;
	int rc = pq_jv_obj(&jv, root, "vmg", "$", 0, &vmg);
	if (rc != PQ_OK || !vmg)
		return rc;
	if ((rc = pq_jv_keys(&jv, vmg, "$.vmg", keys)) != PQ_OK ||
	    (rc = get_text(vmg, "hardware_id", "$.vmg", 0, m->vmg_hardware_id,
	                   sizeof(m->vmg_hardware_id))) != PQ_OK ||
	    (rc = get_text(vmg, "version", "$.vmg", 0, m->vmg_version, sizeof(m->vmg_version))) !=
	        PQ_OK ||
	    (rc = check_version(m->vmg_version, "$.vmg", "version")) != PQ_OK)
		return rc;
	return load_image(vmg, "$.vmg", dir, m->vmg_image_path);
}

/* "state": the simulated vehicle state the readiness checks read. */
static int load_state(const json_t *root, vm_model *m)
{
	static const char *const keys[] = {"battery_pct", "parked", "ignition_off", "storage_free",
	                                   NULL};
	json_t *st = NULL;
	uint64_t pct = (uint64_t)m->battery_pct;
	int rc = pq_jv_obj(&jv, root, "state", "$", 0, &st);
	if (rc != PQ_OK || !st)
		return rc;
	if ((rc = pq_jv_keys(&jv, st, "$.state", keys)) != PQ_OK ||
	    (rc = get_uint(st, "battery_pct", "$.state", 0, 0, 100, &pct)) != PQ_OK ||
	    (rc = pq_jv_bool(&jv, st, "parked", "$.state", 0, &m->parked)) != PQ_OK ||
	    (rc = pq_jv_bool(&jv, st, "ignition_off", "$.state", 0, &m->ignition_off)) != PQ_OK ||
	    (rc = get_uint(st, "storage_free", "$.state", 0, 0, UINT64_C(1) << 50,
	                   &m->storage_free)) != PQ_OK)
		return rc;
	m->battery_pct = (int)pct;
	return PQ_OK;
}

/* "zones": 1..VM_ZONES_MAX zones of at most VM_ECUS_MAX ECUs in all, for which m->ecus is
 * allocated. */
static int alloc_zones(const json_t *root, vm_model *m, json_t **out)
{
	json_t *zones = json_object_get(root, "zones");
	if (!json_is_array(zones) || json_array_size(zones) < 1 ||
	    json_array_size(zones) > VM_ZONES_MAX)
		return pq_jv_fail(&jv, "$", "zones", "must be an array of 1..%d zones",
		                  VM_ZONES_MAX);
	size_t total = 0, zi;
	json_t *z;
	json_array_foreach(zones, zi, z)
	{
		json_t *ecus = json_object_get(z, "ecus");
		if (json_is_array(ecus))
			total += json_array_size(ecus);
	}
	if (total > VM_ECUS_MAX)
		return pq_jv_fail(&jv, "$", "zones", "%zu ECUs, at most %d", total, VM_ECUS_MAX);
	m->ecus = calloc(total ? total : 1, sizeof(*m->ecus));
	if (!m->ecus)
		return pq_err_set(PQ_ERR_NOMEM, "model: no memory");
	*out = zones;
	return PQ_OK;
}

/* One element of "zones": {"zone", "port", "ecus"}; its ECUs are appended to m->ecus. */
static int load_zone(const json_t *z, size_t zi, const char *dir, vm_model *m)
{
	static const char *const keys[] = {"zone", "port", "ecus", NULL};
	char zp[64], ep[96];
	uint64_t zone = 0, port = 0;
	int rc;
	snprintf(zp, sizeof(zp), "$.zones[%zu]", zi);
	if (!json_is_object(z))
		return pq_jv_fail(&jv, zp, NULL, "not an object");
	if ((rc = pq_jv_keys(&jv, z, zp, keys)) != PQ_OK)
		return rc;
	if ((rc = get_uint(z, "zone", zp, PQ_JV_REQUIRED, 1, VM_ZONES_MAX, &zone)) != PQ_OK ||
	    (rc = get_uint(z, "port", zp, 0, 0, 65535, &port)) != PQ_OK)
		return rc;
	for (size_t k = 0; k < m->n_zones; k++)
		if (m->zones[k].zone == (int)zone)
			return pq_jv_fail(&jv, zp, "zone", "zone %d twice", (int)zone);
	zone_init(&m->zones[m->n_zones++], (int)zone, (uint16_t)port);
	json_t *ecus = json_object_get(z, "ecus");
	if (!json_is_array(ecus))
		return pq_jv_fail(&jv, zp, "ecus", "must be an array");
	size_t ei;
	json_t *ej;
	json_array_foreach(ecus, ei, ej)
	{
		snprintf(ep, sizeof(ep), "%s.ecus[%zu]", zp, ei);
		vm_ecu *e = &m->ecus[m->n_ecus];
		if ((rc = load_ecu(ej, ep, m, (int)zone, dir, e)) != PQ_OK)
			return rc;
		for (size_t k = 0; k < m->n_ecus; k++)
			if (m->ecus[k].addr == e->addr)
				return pq_jv_fail(&jv, ep, "ecu_id",
				                  "'%s' twice (or the same address as '%s')",
				                  e->ecu_id, m->ecus[k].ecu_id);
		m->n_ecus++;
	}
	return PQ_OK;
}

static int load_root(const json_t *root, const char *vin, const char *dir, vm_model *m)
{
	static const char *const keys[] = {"vin", "model", "vmg", "state", "zones", NULL};
	json_t *zones = NULL, *z;
	size_t zi;
	int rc;
	if (!json_is_object(root))
		return pq_jv_fail(&jv, "$", NULL, "not an object");
	if ((rc = pq_jv_keys(&jv, root, "$", keys)) != PQ_OK ||
	    (rc = load_vin(root, vin, m)) != PQ_OK ||
	    (rc = get_text(root, "model", "$", PQ_JV_EMPTY_OK, m->model, sizeof(m->model))) !=
	        PQ_OK ||
	    (rc = load_vmg(root, dir, m)) != PQ_OK || (rc = load_state(root, m)) != PQ_OK ||
	    (rc = alloc_zones(root, m, &zones)) != PQ_OK)
		return rc;
	json_array_foreach(zones, zi, z)
	{
		if ((rc = load_zone(z, zi, dir, m)) != PQ_OK)
			return rc;
	}
	qsort(m->ecus, m->n_ecus, sizeof(*m->ecus), cmp_ecu);
	return PQ_OK;
}

int vm_model_load(const char *path, const char *vin, vm_model *out)
{
	if (!path || !out)
		return pq_err_set(PQ_ERR_INVAL, "model: NULL argument");
	char *text = NULL;
	size_t len = 0;
	json_t *root = NULL;
	vm_model m;
	model_init(&m);
	char dir[VM_PATH_MAX];
	const char *slash = strrchr(path, '/');
	int rc;
	if (slash) {
		size_t dl = (size_t)(slash - path);
		if (dl >= sizeof(dir))
			return pq_err_set(PQ_ERR_RANGE, "model: path too long: %s", path);
		memcpy(dir, path, dl);
		dir[dl] = '\0';
		if (dl == 0)
			snprintf(dir, sizeof(dir), "/");
	} else {
		dir[0] = '\0';
	}
	rc = pq_file_read(path, VM_FILE_MAX, &text, &len);
	if (rc != PQ_OK) {
		rc = pq_err_wrap(rc, "model %s", path);
		goto out;
	}
	json_error_t jerr;
	root = json_loadb(text, len, JSON_REJECT_DUPLICATES, &jerr);
	if (!root) {
		rc = pq_err_set(PQ_ERR_FORMAT, "model %s: line %d: %s", path, jerr.line, jerr.text);
		goto out;
	}
	rc = load_root(root, vin, dir, &m);
	if (rc != PQ_OK) {
		rc = pq_err_wrap(rc, "%s", path);
		goto out;
	}
	*out = m;
	m.ecus = NULL;
out:
	vm_model_free(&m);
	json_decref(root);
	free(text);
	return rc;
}

/* ---- writing ------------------------------------------------------------------------------ */

static json_t *ecu_json(const vm_ecu *e)
{
	json_t *v = json_pack("{s:s,s:s,s:s}", "APP", e->version[VM_SW_APP], "BOOT",
	                      e->version[VM_SW_BOOT], "CAL", e->version[VM_SW_CAL]);
	if (!v)
		return NULL;
	json_t *j = json_pack("{s:s,s:s,s:s,s:s,s:s,s:o,s:b,s:I}", "ecu_id", e->ecu_id,
	                      "hardware_id", e->hardware_id, "serial", e->serial, "part_number",
	                      e->part_number, "supplier", e->supplier, "versions", v, "delta",
	                      e->delta, "max_package_size", (json_int_t)e->max_package_size);
	if (j && e->image_path[0] &&
	    json_object_set_new(j, "image", json_string(e->image_path)) != 0) {
		json_decref(j);
		return NULL;
	}
	return j;
}

int vm_model_save(const vm_model *m, const char *path)
{
	if (!m || !path)
		return pq_err_set(PQ_ERR_INVAL, "model: NULL argument");
	int rc = PQ_ERR_NOMEM;
	char *text = NULL;
	json_t *zones = json_array();
	json_t *root =
	    json_pack("{s:s,s:s,s:{s:s,s:s},s:{s:i,s:b,s:b,s:I}}", "vin", m->vin, "model", m->model,
	              "vmg", "hardware_id", m->vmg_hardware_id, "version", m->vmg_version, "state",
	              "battery_pct", m->battery_pct, "parked", m->parked, "ignition_off",
	              m->ignition_off, "storage_free", (json_int_t)m->storage_free);
	if (!zones || !root)
		goto out;
	if (m->vmg_image_path[0] && json_object_set_new(json_object_get(root, "vmg"), "image",
	                                                json_string(m->vmg_image_path)) != 0)
		goto out;
	for (size_t z = 0; z < m->n_zones; z++) {
		json_t *ecus = json_array();
		json_t *zj = ecus ? json_pack("{s:i,s:i,s:o}", "zone", m->zones[z].zone, "port",
		                              (int)m->zones[z].port, "ecus", ecus)
		                  : NULL;
		if (!zj || json_array_append_new(zones, zj) != 0)
			goto out;
		for (size_t i = 0; i < m->n_ecus; i++) {
			if (m->ecus[i].zone != m->zones[z].zone)
				continue;
			json_t *ej = ecu_json(&m->ecus[i]);
			if (!ej || json_array_append_new(ecus, ej) != 0)
				goto out;
		}
	}
	if (json_object_set_new(root, "zones", zones) != 0) {
		zones = NULL;
		goto out;
	}
	zones = NULL;
	text = json_dumps(root, JSON_INDENT(2) | JSON_PRESERVE_ORDER);
	if (!text)
		goto out;
	size_t len = strlen(text);
	rc = pq_file_write_atomic(path, text, len, 0644, true);
	if (rc != PQ_OK)
		rc = pq_err_wrap(rc, "model %s", path);
out:
	if (rc == PQ_ERR_NOMEM)
		pq_err_set(rc, "model: no memory");
	free(text);
	json_decref(zones);
	json_decref(root);
	return rc;
}
