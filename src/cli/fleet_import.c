/* fleet_import.c: registering vehicles through the API (fleet.h): one vehicle's body from
 * its PKI files, and `pqota vehicle import`: the rows of a CSV file (checked whole before
 * anything is sent), the VINs given, or every vehicle of a PKI directory. */
#include <dirent.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "cli/cli.h"
#include "cli/fleet.h"
#include "core/fileio.h"
#include "crypto/pki.h"

#define PEM_MAX   16384                 /* the server's limit per PEM field */
#define CSV_MAX   (64u * 1024u * 1024u) /* a CSV file */
#define FIELD_MAX 4096                  /* one CSV field */
#define PATH_CAP  4096

static const char *const pki_files[3] = {"client.crt", "kem-x25519.pub", "kem-ml-kem-768.pub"};
static const char *const body_keys[3] = {"certificate", "kem_x25519_pub", "kem_mlkem768_pub"};

int fleet_reg_body(const fleet_reg *reg, const char *vin, const fleet_src *src, json_t **out)
{
	char dir[PATH_CAP], vdir[PATH_CAP], path[PATH_CAP];
	const char *model = src && src->model ? src->model : reg->model;
	json_t *b = json_pack("{s:s}", "vin", vin);
	int rc = b ? PQ_OK : pq_err_set(PQ_ERR_NOMEM, "vehicle %s", vin);
	*out = NULL;
	if (rc == PQ_OK && model && json_object_set_new(b, "model", json_string(model)) != 0)
		rc = pq_err_set(PQ_ERR_NOMEM, "vehicle %s", vin);
	if (rc == PQ_OK && reg->no_default_ecus &&
	    json_object_set_new(b, "default_ecus", json_false()) != 0)
		rc = pq_err_set(PQ_ERR_NOMEM, "vehicle %s", vin);
	for (int i = 0; rc == PQ_OK && i < 3; i++) {
		char *pem = NULL;
		size_t len = 0;
		if (src && src->files[i]) {
			snprintf(path, sizeof(path), "%s", src->files[i]);
		} else if (!reg->pki) {
			rc = pq_err_set(PQ_ERR_INVAL, "vehicle %s: no %s file (give --pki DIR)",
			                vin, body_keys[i]);
			break;
		} else {
			rc = pq_path_resolve(dir, sizeof(dir), reg->pki, "vehicles");
			if (rc == PQ_OK)
				rc = pq_path_join(vdir, sizeof(vdir), dir, vin);
			if (rc == PQ_OK)
				rc = pq_path_join(path, sizeof(path), vdir, pki_files[i]);
			if (rc != PQ_OK)
				break;
		}
		rc = pq_file_read(path, PEM_MAX, &pem, &len);
		if (rc == PQ_OK &&
		    json_object_set_new(b, body_keys[i], json_stringn(pem, len)) != 0)
			rc = pq_err_set(PQ_ERR_FORMAT, "%s: not text", path);
		if (rc != PQ_OK)
			rc = pq_err_wrap(rc, "vehicle %s", vin);
		free(pem);
	}
	if (rc != PQ_OK) {
		json_decref(b);
		return rc;
	}
	*out = b;
	return PQ_OK;
}

/* ---- the vehicles of an import ------------------------------------------------------------ */

typedef struct {
	char vin[40];
	char *model;    /* NULL: none */
	char *files[3]; /* NULL: from --pki */
} row;

typedef struct {
	row *v;
	size_t n, cap;
} rows;

static void rows_free(rows *r)
{
	for (size_t i = 0; i < r->n; i++) {
		free(r->v[i].model);
		for (int k = 0; k < 3; k++)
			free(r->v[i].files[k]);
	}
	free(r->v);
}

/* A new row for vin (checked, not yet in r): *out. */
static int rows_add(rows *r, const char *vin, row **out)
{
	if (pq_vin_check(vin) != PQ_OK)
		return pq_err_set(PQ_ERR_INVAL, "'%.40s' is not a VIN", vin);
	for (size_t i = 0; i < r->n; i++)
		if (strcmp(r->v[i].vin, vin) == 0)
			return pq_err_set(PQ_ERR_INVAL, "VIN %s appears twice", vin);
	if (r->n >= FLEET_IMPORT_MAX)
		return pq_err_set(PQ_ERR_RANGE, "more than %d vehicles", FLEET_IMPORT_MAX);
	if (r->n == r->cap) {
		size_t cap = r->cap ? r->cap * 2 : 64;
		row *nv = realloc(r->v, cap * sizeof(*nv));
		if (!nv)
			return pq_err_set(PQ_ERR_NOMEM, "import");
		r->v = nv;
		r->cap = cap;
	}
	row *w = &r->v[r->n++];
	memset(w, 0, sizeof(*w));
	snprintf(w->vin, sizeof(w->vin), "%s", vin);
	*out = w;
	return PQ_OK;
}

static int cmp_row(const void *a, const void *b)
{
	return strcmp(((const row *)a)->vin, ((const row *)b)->vin);
}

/* Every directory of DIR/vehicles named by a VIN that holds a client.crt, sorted. */
static int rows_from_pki(const char *pki, rows *r)
{
	char dir[PATH_CAP], path[PATH_CAP];
	struct stat st;
	int rc = pq_path_resolve(dir, sizeof(dir), pki, "vehicles");
	if (rc != PQ_OK)
		return rc;
	DIR *d = opendir(dir);
	if (!d)
		return pq_err_set(PQ_ERR_IO, "%s: cannot open the directory", dir);
	struct dirent *e;
	row *w;
	while (rc == PQ_OK && (e = readdir(d)) != NULL) {
		if (pq_vin_check(e->d_name) != PQ_OK ||
		    (size_t)snprintf(path, sizeof(path), "%s/%s/client.crt", dir, e->d_name) >=
		        sizeof(path) ||
		    stat(path, &st) != 0)
			continue;
		rc = rows_add(r, e->d_name, &w);
	}
	closedir(d);
	if (rc == PQ_OK && r->n == 0)
		rc = pq_err_set(PQ_ERR_NOTFOUND, "%s: no vehicle directories", dir);
	if (rc == PQ_OK)
		qsort(r->v, r->n, sizeof(*r->v), cmp_row);
	return rc;
}

/* ---- CSV --------------------------------------------------------------------------------- */

enum {
	COL_VIN,
	COL_MODEL,
	COL_CERT,
	COL_X25519,
	COL_MLKEM,
	NCOLS
};
static const char *const col_names[NCOLS] = {"vin", "model", "certificate", "kem_x25519_pub",
                                             "kem_mlkem768_pub"};
#define MAX_FIELDS 16

/* One field of a CSV line at *p (RFC 4180 quoting, no line breaks inside quotes) into
 * out[FIELD_MAX]; *p moves past it and its comma, *more tells whether a comma ended it.
 * PQ_ERR_FORMAT with the problem. */
static int csv_field(const char **p, const char *end, char *out, bool *more)
{
	size_t n = 0;
	const char *s = *p;
	bool quoted = s < end && *s == '"';
	*more = false;
	for (s += quoted; s < end; s++) {
		if (quoted && *s == '"' && s + 1 < end && s[1] == '"') {
			s++; /* "" is one quote */
		} else if (quoted && *s == '"') {
			quoted = false;
			if (s + 1 < end && s[1] != ',')
				return pq_err_set(PQ_ERR_FORMAT, "text after a quoted field");
			continue;
		} else if (!quoted && *s == ',') {
			*more = true;
			s++;
			break;
		} else if (!quoted && *s == '"') {
			return pq_err_set(PQ_ERR_FORMAT, "a quote inside an unquoted field");
		} else if ((unsigned char)*s < 0x20 && *s != '\t') {
			return pq_err_set(PQ_ERR_FORMAT, "a control character");
		}
		if (n + 1 >= FIELD_MAX)
			return pq_err_set(PQ_ERR_FORMAT, "a field longer than %d bytes",
			                  FIELD_MAX - 1);
		out[n++] = *s;
	}
	if (quoted)
		return pq_err_set(PQ_ERR_FORMAT, "an unterminated quoted field");
	out[n] = '\0';
	*p = s;
	return PQ_OK;
}

/* Splits one line into fields[] (each FIELD_MAX): *n, at most MAX_FIELDS. */
static int csv_line(const char *p, const char *end, char (*fields)[FIELD_MAX], int *n)
{
	bool more = true;
	*n = 0;
	if (end > p && end[-1] == '\r')
		end--;
	while (more) {
		if (*n >= MAX_FIELDS)
			return pq_err_set(PQ_ERR_FORMAT, "more than %d fields", MAX_FIELDS);
		int rc = csv_field(&p, end, fields[(*n)++], &more);
		if (rc != PQ_OK)
			return rc;
	}
	return PQ_OK;
}

/* The header: which column each field is (map[i]), every name known and once, vin there. */
static int csv_header(char (*f)[FIELD_MAX], int n, int *map)
{
	bool seen[NCOLS] = {false};
	for (int i = 0; i < n; i++) {
		int k = 0;
		while (k < NCOLS && strcmp(f[i], col_names[k]) != 0)
			k++;
		if (k == NCOLS)
			return pq_err_set(PQ_ERR_FORMAT,
			                  "unknown column '%.64s' (vin, model, certificate, "
			                  "kem_x25519_pub, kem_mlkem768_pub)",
			                  f[i]);
		if (seen[k])
			return pq_err_set(PQ_ERR_FORMAT, "column '%s' twice", col_names[k]);
		seen[k] = true;
		map[i] = k;
	}
	if (!seen[COL_VIN])
		return pq_err_set(PQ_ERR_FORMAT, "no 'vin' column");
	return PQ_OK;
}

/* One data line into a new row; file paths are relative to base (the CSV's directory). */
static int csv_row(char (*f)[FIELD_MAX], int n, const int *map, const char *base, rows *r)
{
	const char *vin = "";
	row *w = NULL;
	for (int i = 0; i < n; i++)
		if (map[i] == COL_VIN)
			vin = f[i];
	int rc = rows_add(r, vin, &w);
	for (int i = 0; rc == PQ_OK && i < n; i++) {
		char path[PATH_CAP];
		if (map[i] == COL_VIN || !f[i][0])
			continue;
		if (map[i] == COL_MODEL) {
			w->model = strdup(f[i]);
			rc = w->model ? PQ_OK : pq_err_set(PQ_ERR_NOMEM, "import");
			continue;
		}
		rc = pq_path_resolve(path, sizeof(path), base, f[i]);
		char **slot = &w->files[map[i] - COL_CERT];
		if (rc == PQ_OK && !(*slot = strdup(path)))
			rc = pq_err_set(PQ_ERR_NOMEM, "import");
	}
	return rc;
}

static int rows_from_csv(const char *csv, rows *r)
{
	char *text = NULL, base[PATH_CAP];
	size_t len = 0;
	int map[MAX_FIELDS] = {0}, ncols = 0, rc;
	char(*f)[FIELD_MAX] = malloc(sizeof(char[MAX_FIELDS][FIELD_MAX]));
	if (!f)
		return pq_err_set(PQ_ERR_NOMEM, "import");
	rc = pq_file_read(csv, CSV_MAX, &text, &len);
	snprintf(base, sizeof(base), "%s", csv);
	char *slash = strrchr(base, '/');
	if (slash)
		*slash = '\0';
	else
		base[0] = '\0';
	const char *p = text, *end = text + len;
	for (long line = 1; rc == PQ_OK && p < end; line++) {
		const char *nl = memchr(p, '\n', (size_t)(end - p));
		const char *le = nl ? nl : end;
		int n = 0;
		bool blank = le == p || (le == p + 1 && *p == '\r') || *p == '#';
		if (!blank && memchr(p, '\0', (size_t)(le - p)))
			rc = pq_err_set(PQ_ERR_FORMAT, "a NUL byte");
		if (rc == PQ_OK && !blank)
			rc = csv_line(p, le, f, &n);
		if (rc == PQ_OK && !blank && ncols == 0) {
			rc = csv_header(f, n, map);
			ncols = n;
		} else if (rc == PQ_OK && !blank && n != ncols) {
			rc = pq_err_set(PQ_ERR_FORMAT, "%d fields, the header has %d", n, ncols);
		} else if (rc == PQ_OK && !blank) {
			rc = csv_row(f, n, map, base, r);
		}
		if (rc != PQ_OK)
			rc = pq_err_wrap(rc, "%s line %ld", csv, line);
		p = nl ? nl + 1 : end;
	}
	if (rc == PQ_OK && r->n == 0)
		rc = pq_err_set(PQ_ERR_FORMAT, "%s: no vehicles", csv);
	free(text);
	free(f);
	return rc;
}

/* ---- registering ------------------------------------------------------------------------- */

typedef struct {
	json_t *registered, *existing, *failed;
	bool ok;
} outcome;

/* Registers one row: appends its VIN to the outcome's list, prints a line without --json. */
static void register_row(cli_conn *c, const fleet_reg *reg, const row *w, outcome *o)
{
	fleet_src src = {.files = {w->files[0], w->files[1], w->files[2]}, .model = w->model};
	json_t *body = NULL, *ans = NULL;
	long status = 0;
	char err[512] = "";
	int rc = fleet_reg_body(reg, w->vin, &src, &body);
	char *text = rc == PQ_OK ? json_dumps(body, JSON_COMPACT) : NULL;
	if (rc == PQ_OK && !text)
		rc = pq_err_set(PQ_ERR_NOMEM, "vehicle %s", w->vin);
	if (rc == PQ_OK)
		rc = cli_api(c, "POST", "/api/v1/vehicles", text, &status, &ans);
	if (rc != PQ_OK)
		snprintf(err, sizeof(err), "%s", pq_err_detail());
	else if (status != 201 && status != 409)
		snprintf(err, sizeof(err), "HTTP %ld %s: %s", status,
		         cli_jstr(json_object_get(ans, "error"), "code"),
		         cli_jstr(json_object_get(ans, "error"), "message"));
	free(text);
	json_decref(body);
	json_decref(ans);
	pq_err_clear();
	if (*err) {
		cli_jappend(o->failed, json_pack("{s:s,s:s}", "vin", w->vin, "error", err), &o->ok);
		if (!c->json)
			printf("FAILED     %s: %s\n", w->vin, err);
	} else {
		cli_jappend(status == 201 ? o->registered : o->existing, json_string(w->vin),
		            &o->ok);
		if (!c->json)
			printf("%-10s %s\n", status == 201 ? "registered" : "exists", w->vin);
	}
	fflush(stdout);
}

int fleet_import(cli_conn *c, const fleet_reg *reg, const char *csv, char **vins, int nvins)
{
	rows r = {0};
	row *w;
	int rc = PQ_OK;
	if (csv && nvins > 0)
		return cli_usage_error("vehicle", "import: --csv FILE or VINs, not both");
	if (!csv && !reg->pki)
		return cli_usage_error("vehicle", "import: --pki DIR or --csv FILE is required");
	if (csv)
		rc = rows_from_csv(csv, &r);
	else if (nvins > 0)
		for (int i = 0; rc == PQ_OK && i < nvins; i++)
			rc = rows_add(&r, vins[i], &w);
	else
		rc = rows_from_pki(reg->pki, &r);
	if (rc != PQ_OK) {
		rows_free(&r);
		return cli_error(rc, "vehicle import");
	}
	outcome o = {json_array(), json_array(), json_array(), true};
	o.ok = o.registered && o.existing && o.failed;
	for (size_t i = 0; o.ok && i < r.n; i++)
		register_row(c, reg, &r.v[i], &o);
	size_t nfailed = json_array_size(o.failed);
	int ex = nfailed ? CLI_EXIT_FAIL : CLI_EXIT_OK;
	if (!o.ok) {
		ex = cli_error(PQ_ERR_NOMEM, "vehicle import");
	} else if (c->json) {
		json_t *j = json_pack("{s:O,s:O,s:O,s:I}", "registered", o.registered, "existing",
		                      o.existing, "failed", o.failed, "total", (json_int_t)r.n);
		if (cli_print_json(j, true, JSON_INDENT(2) | JSON_SORT_KEYS) != PQ_OK)
			ex = cli_error(PQ_ERR_IO, "vehicle import");
	} else {
		printf("%zu vehicle(s): %zu registered, %zu there already, %zu failed\n", r.n,
		       json_array_size(o.registered), json_array_size(o.existing), nfailed);
	}
	json_decref(o.registered);
	json_decref(o.existing);
	json_decref(o.failed);
	rows_free(&r);
	return ex;
}
