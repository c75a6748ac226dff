/* cmd_pack.c: `pqota pack build|verify|inspect|extract|delta|apply`. */
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <jansson.h>

#include "cli/cli.h"
#include "core/fileio.h"
#include "core/text.h"
#include "core/time.h"
#include "crypto/hash.h"
#include "pkg/bundle.h"
#include "pkg/pkg.h"

static const char usage_text[] =
    "usage: pqota pack build (--manifest FILE | --vmg-binary F ...) --output-dir DIR\n"
    "       pqota pack verify FILE [--manifest manifest.json] [--json]\n"
    "       pqota pack inspect FILE [--json]\n"
    "       pqota pack extract FILE [ENTRY] -o OUT [--image [--base OLD]]\n"
    "       pqota pack delta --from OLD --to NEW -o OUT [--ecu ID] [--type T]\n"
    "                        [--from-version V] [--to-version V] [--level N]\n"
    "                        [--memory-limit MIB] [--apply-memory MIB]\n"
    "       pqota pack apply DELTA --base OLD -o OUT [--entry ENTRY] [--ecu ID]\n"
    "                        [--memory-limit MIB] [--no-resume]\n"
    "\n"
    "build: make every unit's package, the zone containers, DIR/full_package.bin and\n"
    "  DIR/manifest.json, from a description file (--manifest; docs/package-format.md)\n"
    "  or from the original builder's flags:\n"
    "  --campaign-id ID --vmg-binary F --vmg-version V --zgw-binary F [--zgw-version V]\n"
    "  --ecu-NNN-binary F --ecu-NNN-version V (NNN 001..180, e.g. --ecu-011-binary;\n"
    "  zone as in the default model: 20 ECUs per zone)\n"
    "  --compress [none|zlib|gzip|zstd] (the flag alone: zlib, the original's gzip;\n"
    "  default zstd) --level N (0 = default) --output-dir DIR\n"
    "verify: deep check of every header, the layout, every index SHA-256, payload\n"
    "  CRC-32 and decoded size; --manifest also checks the bundle's SHA-256 and length.\n"
    "inspect: the tree with targets, versions, types, sizes, compression ratio.\n"
    "extract: ENTRY is a path (ZONE1/ECU_011), a name or an ECU id; default the root.\n"
    "  Writes the package bytes, or with --image the decoded image (--base for deltas).\n"
    "delta: a delta package of NEW against OLD naming OLD's version and SHA-256 (defaults:\n"
    "  --ecu BROADCAST --type APP, versions 0.0.0, --level 19). --memory-limit: what making\n"
    "  it may use (default 1024 MiB); --apply-memory: what applying it may need on the\n"
    "  vehicle (default 64, at least 8). Images up to 4 GiB (the SWPG header's sizes).\n"
    "apply: refuses any base but the one named (and, with --ecu, a delta for another ECU),\n"
    "  checks each segment and the result's SHA-256, within --memory-limit MiB (default\n"
    "  64). It works in OUT.part and resumes there after an interruption (--no-resume:\n"
    "  start over).\n"
    "Exit: 0 ok; 1 a package failed verification or is malformed, or a delta's base is\n"
    "  wrong; 2 any other error (I/O, bad description or image, limits); 64 usage.\n";

static void usage(FILE *f)
{
	fputs(usage_text, f);
}

/* ---- progress bar on a terminal ------------------------------------------------------- */

struct bar {
	bool on;
	double last;
	const char *label;
};

static void bar_fn(uint64_t done, uint64_t total, void *user)
{
	struct bar *b = user;
	double t = pq_mono_s();
	if (!b->on || total < (8u << 20) || (t - b->last < 0.1 && done < total))
		return;
	b->last = t;
	int w = 30, fill = (int)(done * (uint64_t)w / (total ? total : 1));
	fprintf(stderr, "\r%-10s [%.*s%*s] %3d%% %8.1f / %.1f MB", b->label, fill,
	        "##############################", w - fill, "", (int)(done * 100 / total),
	        (double)done / 1e6, (double)total / 1e6);
	if (done >= total)
		fputc('\n', stderr);
}

static pkg_progress make_progress(struct bar *b, const char *label)
{
	b->on = isatty(STDERR_FILENO);
	b->last = 0;
	b->label = label;
	return (pkg_progress){.fn = bar_fn, .user = b};
}

/* ---- build ------------------------------------------------------------------------------- */

/* --ecu-NNN-binary / --ecu-NNN-version, collected before getopt sees argv */
struct ecu_arg {
	char num[4];
	const char *binary, *version;
};

/* Takes the --ecu-NNN-* options (and their values) out of argv into ecus[max]; CLI_EXIT_OK, or
 * a usage error's exit code (printed). */
static int take_ecu_args(int *argc, char **argv, struct ecu_arg *ecus, int *n, int max)
{
	int w = 0;
	for (int i = 0; i < *argc; i++) {
		const char *a = argv[i];
		if (strncmp(a, "--ecu-", 6) == 0 && strlen(a) > 9 &&
		    strspn(a + 6, "0123456789") == 3 &&
		    (strcmp(a + 9, "-binary") == 0 || strcmp(a + 9, "-version") == 0)) {
			if (i + 1 >= *argc)
				return cli_usage_error("pack", "%s needs a value", a);
			struct ecu_arg *e = NULL;
			for (int k = 0; k < *n; k++)
				if (strncmp(ecus[k].num, a + 6, 3) == 0)
					e = &ecus[k];
			if (!e) {
				if (*n == max)
					return cli_usage_error("pack",
					                       "too many --ecu-NNN options");
				e = &ecus[(*n)++];
				memcpy(e->num, a + 6, 3);
				e->num[3] = '\0';
			}
			if (a[10] == 'b')
				e->binary = argv[++i];
			else
				e->version = argv[++i];
			continue;
		}
		argv[w++] = argv[i];
	}
	*argc = w;
	return CLI_EXIT_OK;
}

/* The arguments of pack build. */
typedef struct {
	struct ecu_arg ecus[64];
	int necu;
	const char *manifest, *campaign, *vmg, *vmg_ver, *zgw, *zgw_ver, *outdir;
	uint8_t comp;
	long level;
	bool json, comp_set;
} build_args;

/* One option of pack build into *a: CLI_EXIT_OK, or a usage error's exit code (printed). */
static int build_option(int c, build_args *a)
{
	switch (c) {
	case 'm':
		a->manifest = optarg;
		break;
	case 'c':
		a->campaign = optarg;
		break;
	case 'v':
		a->vmg = optarg;
		break;
	case 'V':
		a->vmg_ver = optarg;
		break;
	case 'z':
		a->zgw = optarg;
		break;
	case 'Z':
		a->zgw_ver = optarg;
		break;
	case 'C':
		a->comp_set = true;
		a->comp = SWPG_COMP_ZLIB; /* the original's --compress meant gzip */
		if (optarg && swpg_comp_parse(optarg, &a->comp) != PQ_OK)
			return cli_usage_error("pack", "%s", pq_err_detail());
		break;
	case 'l':
		if (cli_parse_long(optarg, 0, 19, &a->level) != PQ_OK)
			return cli_usage_error("pack", "--level takes 0..19");
		break;
	case 'o':
		a->outdir = optarg;
		break;
	case 'j':
		a->json = true;
		break;
	default:
		return cli_usage_error("pack", "bad option");
	}
	return CLI_EXIT_OK;
}

/* Parses pack build's arguments into *a; true to go on, false to exit with *exit_code (help,
 * usage errors). */
static bool build_parse(int argc, char **argv, build_args *a, int *exit_code)
{
	static const struct option lo[] = {{"manifest", required_argument, NULL, 'm'},
	                                   {"campaign-id", required_argument, NULL, 'c'},
	                                   {"vmg-binary", required_argument, NULL, 'v'},
	                                   {"vmg-version", required_argument, NULL, 'V'},
	                                   {"zgw-binary", required_argument, NULL, 'z'},
	                                   {"zgw-version", required_argument, NULL, 'Z'},
	                                   {"compress", optional_argument, NULL, 'C'},
	                                   {"level", required_argument, NULL, 'l'},
	                                   {"output-dir", required_argument, NULL, 'o'},
	                                   {"json", no_argument, NULL, 'j'},
	                                   {"help", no_argument, NULL, 'h'},
	                                   {NULL, 0, NULL, 0}};
	int c;
	*exit_code = take_ecu_args(&argc, argv, a->ecus, &a->necu, 64);
	if (*exit_code != CLI_EXIT_OK)
		return false;
	optind = 1;
	while ((c = getopt_long(argc, argv, "o:h", lo, NULL)) != -1) {
		if (c == 'h') {
			usage(stdout);
			*exit_code = CLI_EXIT_OK;
			return false;
		}
		*exit_code = build_option(c, a);
		if (*exit_code != CLI_EXIT_OK)
			return false;
	}
	if (optind != argc)
		*exit_code = cli_usage_error("pack", "unexpected argument '%s'", argv[optind]);
	else if (!a->outdir)
		*exit_code = cli_usage_error("pack", "pack build needs --output-dir DIR");
	else if (a->manifest && (a->vmg || a->zgw || a->necu || a->campaign))
		*exit_code = cli_usage_error("pack", "--manifest excludes the per-unit flags");
	else if (!a->manifest && !a->campaign)
		*exit_code = cli_usage_error("pack", "give --manifest FILE or --campaign-id");
	else if (!a->manifest &&
	         (strlen(a->campaign) == 0 || strlen(a->campaign) > PKG_CAMPAIGN_ID_MAX))
		*exit_code = cli_usage_error("pack", "--campaign-id has 1..%d characters",
		                             PKG_CAMPAIGN_ID_MAX);
	else
		return true;
	return false;
}

/* The description file, with --compress and --level applied to every unit. */
static int desc_from_manifest(const build_args *a, pkg_bundle_desc *d)
{
	int rc = pkg_bundle_load(a->manifest, d);
	if (rc != PQ_OK)
		return rc;
	for (size_t i = 0; i < d->n; i++) {
		if (a->comp_set)
			d->units[i].compression = a->comp;
		if (a->level)
			d->units[i].level = (int)a->level;
	}
	return PQ_OK;
}

/* --vmg-binary: the VMG unit, whose version is also the bundle's. */
static int add_vmg(const build_args *a, pkg_bundle_desc *d)
{
	pkg_bundle_unit u = {.name = "VMG",
	                     .ecu = SWPG_ECU_VMG,
	                     .type = SWPG_TYPE_APP,
	                     .image = (char *)a->vmg,
	                     .compression = a->comp,
	                     .level = (int)a->level};
	int rc = swpg_version_parse(a->vmg_ver ? a->vmg_ver : "", &u.version);
	if (rc != PQ_OK)
		rc = pq_err_wrap(rc, "--vmg-version");
	else
		rc = pkg_bundle_add(d, &u);
	d->version = u.version;
	return rc;
}

/* --zgw-binary: ZGW1 in zone 1 (version: --zgw-version, else --vmg-version, else 1.0.0). */
static int add_zgw(const build_args *a, pkg_bundle_desc *d)
{
	pkg_bundle_unit u = {.name = "ZGW1",
	                     .ecu = SWPG_ECU_ZGW_BASE + 1,
	                     .type = SWPG_TYPE_APP,
	                     .image = (char *)a->zgw,
	                     .zone = 1,
	                     .compression = a->comp,
	                     .level = (int)a->level};
	const char *v = a->zgw_ver ? a->zgw_ver : a->vmg_ver ? a->vmg_ver : "1.0.0";
	int rc = swpg_version_parse(v, &u.version);
	if (rc == PQ_OK)
		rc = pkg_bundle_add(d, &u);
	return rc;
}

/* --ecu-NNN-binary/--ecu-NNN-version: ECU_NNN in its zone of the default model. */
static int add_ecu(const build_args *a, const struct ecu_arg *e, pkg_bundle_desc *d)
{
	pkg_bundle_unit u = {.type = SWPG_TYPE_APP,
	                     .image = (char *)e->binary,
	                     .compression = a->comp,
	                     .level = (int)a->level};
	snprintf(u.name, sizeof(u.name), "ECU_%.3s", e->num);
	if (!e->binary)
		return pq_err_set(PQ_ERR_INVAL, "--ecu-%s-version without --ecu-%s-binary", e->num,
		                  e->num);
	int rc = swpg_ecu_parse(u.name, &u.ecu);
	if (rc == PQ_OK && !(u.zone = pkg_default_zone(u.ecu)))
		rc = pq_err_set(PQ_ERR_INVAL, "%s has no zone in the default model", u.name);
	if (rc == PQ_OK)
		rc = swpg_version_parse(e->version ? e->version : "", &u.version);
	if (rc != PQ_OK)
		return pq_err_wrap(rc, "--ecu-%s", e->num);
	return pkg_bundle_add(d, &u);
}

/* The original builder's flags: --campaign-id and the per-unit binaries and versions. */
static int desc_from_flags(const build_args *a, pkg_bundle_desc *d)
{
	int rc = PQ_OK;
	snprintf(d->campaign_id, sizeof(d->campaign_id), "%s", a->campaign);
	if (a->vmg)
		rc = add_vmg(a, d);
	if (rc == PQ_OK && a->zgw)
		rc = add_zgw(a, d);
	for (int i = 0; rc == PQ_OK && i < a->necu; i++)
		rc = add_ecu(a, &a->ecus[i], d);
	if (rc == PQ_OK && d->n == 0)
		rc = pq_err_set(PQ_ERR_INVAL,
		                "no units: give --vmg-binary, --zgw-binary or --ecu-NNN-binary");
	return rc;
}

/* Builds the bundle of d into a->outdir and prints the result (or its manifest). */
static int build_and_report(const build_args *a, const pkg_bundle_desc *d)
{
	struct bar b;
	pkg_progress p = make_progress(&b, "packing");
	json_t *m = NULL;
	double t0 = pq_mono_s();
	int rc = pkg_bundle_build(d, a->outdir, &p, &m);
	double secs = pq_mono_s() - t0;
	if (rc != PQ_OK)
		return cli_error(rc, "pack build");
	if (a->json) {
		json_dumpf(m, stdout, JSON_INDENT(2) | JSON_SORT_KEYS);
		putchar('\n');
	} else {
		json_t *bundle = json_object_get(m, "bundle");
		printf("built %s/full_package.bin: %lld bytes, sha256 %s, %zu units, %.2f s\n"
		       "manifest: %s/manifest.json\n",
		       a->outdir, (long long)json_integer_value(json_object_get(bundle, "length")),
		       json_string_value(json_object_get(bundle, "sha256")),
		       json_array_size(json_object_get(m, "units")), secs, a->outdir);
	}
	json_decref(m);
	return CLI_EXIT_OK;
}

static int pack_build(int argc, char **argv)
{
	build_args a = {.comp = SWPG_COMP_ZSTD};
	int ex;
	if (!build_parse(argc, argv, &a, &ex))
		return ex;
	pkg_bundle_desc *d = calloc(1, sizeof(*d));
	if (!d)
		return cli_error(PQ_ERR_NOMEM, "pack build");
	int rc = a.manifest ? desc_from_manifest(&a, d) : desc_from_flags(&a, d);
	ex = rc == PQ_OK ? build_and_report(&a, d) : cli_error(rc, "pack build");
	pkg_bundle_free(d);
	free(d);
	return ex;
}

/* ---- verify / inspect --------------------------------------------------------------------- */

static int open_or_fail(const char *path, pkg_reader **r)
{
	int rc = pkg_open(path, r);
	if (rc != PQ_OK)
		return rc == PQ_ERR_FORMAT ? CLI_EXIT_FAIL : CLI_EXIT_ERROR;
	return 0;
}

/* With a manifest: the whole file's length and SHA-256 must match its bundle entry. */
static int check_against_manifest(const char *file, const char *manifest)
{
	json_error_t jerr;
	uint8_t sha[32];
	char hex[65];
	json_t *m = json_load_file(manifest, JSON_REJECT_DUPLICATES, &jerr);
	if (!m)
		return pq_err_set(PQ_ERR_FORMAT, "%s:%d: %s", manifest, jerr.line, jerr.text);
	json_t *b = json_object_get(m, "bundle");
	const char *want = json_string_value(json_object_get(b, "sha256"));
	json_int_t len = json_integer_value(json_object_get(b, "length"));
	int rc = want ? pq_hash_file(PQ_HASH_SHA256, file, sha)
	              : pq_err_set(PQ_ERR_FORMAT, "%s has no bundle.sha256", manifest);
	if (rc == PQ_OK) {
		pq_hex_encode(sha, 32, hex);
		if (strcmp(hex, want) != 0)
			rc = pq_err_set(PQ_ERR_VERIFY,
			                "%s: SHA-256 %.16s... differs from the "
			                "manifest's %.16s...",
			                file, hex, want);
	}
	pkg_reader *r = NULL;
	if (rc == PQ_OK && pkg_open(file, &r) == PQ_OK && (json_int_t)pkg_file_size(r) != len)
		rc = pq_err_set(PQ_ERR_VERIFY, "%s: length differs from the manifest's", file);
	pkg_close(r);
	json_decref(m);
	return rc;
}

static int pack_verify(int argc, char **argv)
{
	static const struct option lo[] = {{"json", no_argument, NULL, 'j'},
	                                   {"manifest", required_argument, NULL, 'm'},
	                                   {"help", no_argument, NULL, 'h'},
	                                   {NULL, 0, NULL, 0}};
	bool json = false;
	const char *manifest = NULL;
	int c, rc;
	optind = 1;
	while ((c = getopt_long(argc, argv, "h", lo, NULL)) != -1) {
		if (c == 'j')
			json = true;
		else if (c == 'm')
			manifest = optarg;
		else if (c == 'h')
			return usage(stdout), CLI_EXIT_OK;
		else
			return cli_usage_error("pack", "bad option");
	}
	if (optind + 1 != argc)
		return cli_usage_error("pack", "pack verify takes one FILE");
	const char *file = argv[optind];
	pkg_reader *r = NULL;
	pkg_verify_report rep;
	struct bar b;
	pkg_progress p = make_progress(&b, "verifying");
	if (open_or_fail(file, &r)) {
		rc = pkg_open(file, &r); /* for the detail */
		if (json) {
			json_t *o = json_pack("{s:s,s:b,s:s}", "file", file, "ok", 0, "error",
			                      pq_err_detail());
			json_dumpf(o, stdout, JSON_COMPACT);
			putchar('\n');
			json_decref(o);
		}
		return cli_error(rc, "pack verify"),
		       rc == PQ_ERR_FORMAT ? CLI_EXIT_FAIL : CLI_EXIT_ERROR;
	}
	rc = pkg_verify(r, &rep, &p);
	pkg_close(r);
	if (rc == PQ_OK && manifest) {
		rc = check_against_manifest(file, manifest);
		/* an unreadable manifest is an error of its own, not a failed package */
		if (rc == PQ_ERR_FORMAT)
			rc = PQ_ERR_INVAL;
	}
	bool bad = rc == PQ_ERR_VERIFY || rc == PQ_ERR_FORMAT;
	if (json) {
		json_t *o = json_pack("{s:s,s:b,s:i,s:i,s:I}", "file", file, "ok", rc == PQ_OK,
		                      "packages", (int)rep.packages, "leaves", (int)rep.leaves,
		                      "bytes", (json_int_t)rep.bytes_checked);
		bool ok = true;
		if (rc != PQ_OK) {
			cli_jset(o, "error", json_string(pq_err_detail()), &ok);
			cli_jset(o, "failed", json_string(rep.failed_path), &ok);
		}
		/* a successful print leaves the verdict's detail for the message below */
		int prc = cli_print_json(o, ok, JSON_COMPACT);
		if (prc != PQ_OK)
			return cli_error(prc, "pack verify %s: JSON output", file);
	}
	if (rc != PQ_OK) {
		cli_error(rc, "pack verify %s", file);
		return bad ? CLI_EXIT_FAIL : CLI_EXIT_ERROR;
	}
	if (!json)
		printf("%s: OK (%zu packages, %zu leaves, %llu bytes checked%s)\n", file,
		       rep.packages, rep.leaves, (unsigned long long)rep.bytes_checked,
		       manifest ? ", matches the manifest" : "");
	return CLI_EXIT_OK;
}

/* One entry for inspect --json; NULL when out of memory. */
static json_t *entry_json(const pkg_entry *e)
{
	bool ok = true;
	char ecu[24], ver[24], bver[24], crc[9];
	swpg_ecu_name(e->hdr.target_ecu_id, ecu, sizeof(ecu));
	swpg_version_str(e->hdr.version, ver, sizeof(ver));
	snprintf(crc, sizeof(crc), "%08x", e->hdr.crc32);
	json_t *o = json_pack(
	    "{s:s,s:i,s:s,s:i,s:s,s:s,s:s,s:I,s:I,s:I,s:I,s:s,s:I,s:I}", "path", e->path, "depth",
	    e->depth, "ecu", ecu, "target_ecu_id", e->hdr.target_ecu_id, "type",
	    swpg_type_name(e->hdr.software_type), "version", ver, "compression",
	    swpg_comp_name(e->hdr.compression), "offset", (json_int_t)e->offset, "length",
	    (json_int_t)e->size, "payload_size", (json_int_t)e->hdr.payload_size,
	    "uncompressed_size", (json_int_t)e->hdr.uncompressed_size, "crc32", crc, "timestamp",
	    (json_int_t)e->hdr.version_timestamp, "serial", (json_int_t)e->hdr.version_serial);
	if (e->has_sha256) {
		char h[65];
		pq_hex_encode(e->sha256, 32, h);
		cli_jset(o, "sha256", json_string(h), &ok);
	}
	if (e->hdr.compression == SWPG_COMP_DELTA) {
		char h[41];
		swpg_version_str(e->hdr.base_version, bver, sizeof(bver));
		pq_hex_encode(e->hdr.base_sha256_prefix, SWPG_BASE_HASH_PREFIX, h);
		cli_jset(o, "delta_base",
		         json_pack("{s:s,s:s}", "version", bver, "sha256_prefix", h), &ok);
	}
	if (!ok) {
		json_decref(o);
		return NULL;
	}
	return o;
}

static int pack_inspect(int argc, char **argv)
{
	static const struct option lo[] = {
	    {"json", no_argument, NULL, 'j'}, {"help", no_argument, NULL, 'h'}, {NULL, 0, NULL, 0}};
	bool json = false;
	int c, rc;
	optind = 1;
	while ((c = getopt_long(argc, argv, "h", lo, NULL)) != -1) {
		if (c == 'j')
			json = true;
		else if (c == 'h')
			return usage(stdout), CLI_EXIT_OK;
		else
			return cli_usage_error("pack", "bad option");
	}
	if (optind + 1 != argc)
		return cli_usage_error("pack", "pack inspect takes one FILE");
	const char *file = argv[optind];
	pkg_reader *r = NULL;
	const pkg_entry *all;
	size_t n;
	rc = pkg_open(file, &r);
	if (rc == PQ_OK)
		rc = pkg_list(r, &all, &n);
	if (rc != PQ_OK) {
		pkg_close(r);
		cli_error(rc, "pack inspect %s", file);
		return rc == PQ_ERR_FORMAT ? CLI_EXIT_FAIL : CLI_EXIT_ERROR;
	}
	if (json) {
		bool ok = true;
		json_t *arr = json_array();
		for (size_t i = 0; i < n; i++)
			cli_jappend(arr, entry_json(&all[i]), &ok);
		json_t *o = arr ? json_pack("{s:s,s:I,s:o}", "file", file, "length",
		                            (json_int_t)pkg_file_size(r), "entries", arr)
		                : NULL;
		rc = cli_print_json(o, ok, JSON_INDENT(2));
	} else {
		printf("%-24s %-10s %-8s %-11s %-6s %12s %12s %7s\n", "package", "ecu", "type",
		       "version", "comp", "length", "image", "ratio");
		for (size_t i = 0; i < n; i++) {
			const pkg_entry *e = &all[i];
			char ecu[24], ver[24], name[96];
			swpg_ecu_name(e->hdr.target_ecu_id, ecu, sizeof(ecu));
			swpg_version_str(e->hdr.version, ver, sizeof(ver));
			const char *base = strrchr(e->path, '/');
			snprintf(name, sizeof(name), "%*s%s", e->depth * 2, "",
			         e->depth == 0 ? "(bundle)"
			         : base        ? base + 1
			                       : e->path);
			if (swpg_is_container(e->hdr.software_type)) {
				printf("%-24s %-10s %-8s %-11s %-6s %12llu %12s %7s\n", name, ecu,
				       swpg_type_name(e->hdr.software_type), ver, "-",
				       (unsigned long long)e->size, "-", "-");
			} else {
				double ratio = e->hdr.uncompressed_size
				                   ? (double)e->hdr.payload_size /
				                         (double)e->hdr.uncompressed_size
				                   : 1.0;
				printf("%-24s %-10s %-8s %-11s %-6s %12llu %12u %6.1f%%\n", name,
				       ecu, swpg_type_name(e->hdr.software_type), ver,
				       swpg_comp_name(e->hdr.compression),
				       (unsigned long long)e->size, e->hdr.uncompressed_size,
				       ratio * 100);
				if (e->hdr.compression == SWPG_COMP_DELTA) {
					char bv[24], h[17];
					swpg_version_str(e->hdr.base_version, bv, sizeof(bv));
					pq_hex_encode(e->hdr.base_sha256_prefix, 8, h);
					printf("%*s  delta from %s (sha256 %s...)\n", e->depth * 2,
					       "", bv, h);
				}
			}
		}
		printf("%zu packages, %llu bytes\n", n, (unsigned long long)pkg_file_size(r));
	}
	pkg_close(r);
	return rc == PQ_OK ? CLI_EXIT_OK : cli_error(rc, "pack inspect %s", file);
}

/* ---- extract / delta / apply ---------------------------------------------------------------- */

static int pack_extract(int argc, char **argv)
{
	static const struct option lo[] = {{"output", required_argument, NULL, 'o'},
	                                   {"image", no_argument, NULL, 'i'},
	                                   {"base", required_argument, NULL, 'b'},
	                                   {"help", no_argument, NULL, 'h'},
	                                   {NULL, 0, NULL, 0}};
	const char *out = NULL, *base = NULL;
	bool image = false;
	int c, rc;
	optind = 1;
	while ((c = getopt_long(argc, argv, "o:h", lo, NULL)) != -1) {
		if (c == 'o')
			out = optarg;
		else if (c == 'i')
			image = true;
		else if (c == 'b')
			base = optarg;
		else if (c == 'h')
			return usage(stdout), CLI_EXIT_OK;
		else
			return cli_usage_error("pack", "bad option");
	}
	if (optind >= argc || argc - optind > 2 || !out)
		return cli_usage_error("pack", "pack extract FILE [ENTRY] -o OUT");
	const char *file = argv[optind], *what = optind + 1 < argc ? argv[optind + 1] : "";
	pkg_reader *r = NULL;
	const pkg_entry *e = NULL;
	struct bar b;
	pkg_progress p = make_progress(&b, "extracting");
	rc = pkg_open(file, &r);
	if (rc == PQ_OK)
		rc = pkg_find(r, what, &e);
	if (rc == PQ_OK)
		rc = image ? pkg_extract_image(r, e, base, out, &p)
		           : pkg_extract_package(r, e, out, &p);
	if (rc == PQ_OK)
		printf("%s%s -> %s\n", e->path[0] ? e->path : "(root)", image ? " (image)" : "",
		       out);
	pkg_close(r);
	if (rc != PQ_OK) {
		cli_error(rc, "pack extract");
		return rc == PQ_ERR_VERIFY || rc == PQ_ERR_FORMAT ? CLI_EXIT_FAIL : CLI_EXIT_ERROR;
	}
	return CLI_EXIT_OK;
}

static int pack_delta(int argc, char **argv)
{
	static const struct option lo[] = {{"from", required_argument, NULL, 'f'},
	                                   {"to", required_argument, NULL, 't'},
	                                   {"output", required_argument, NULL, 'o'},
	                                   {"ecu", required_argument, NULL, 'e'},
	                                   {"type", required_argument, NULL, 'T'},
	                                   {"from-version", required_argument, NULL, 'F'},
	                                   {"to-version", required_argument, NULL, 'V'},
	                                   {"level", required_argument, NULL, 'l'},
	                                   {"memory-limit", required_argument, NULL, 'm'},
	                                   {"apply-memory", required_argument, NULL, 'a'},
	                                   {"help", no_argument, NULL, 'h'},
	                                   {NULL, 0, NULL, 0}};
	const char *from = NULL, *to = NULL, *out = NULL, *ecu = "BROADCAST", *type = "APP",
	           *fv = NULL, *tv = NULL;
	long level = 19, mem = 1024, apply_mem = 64;
	int c, rc;
	optind = 1;
	while ((c = getopt_long(argc, argv, "o:h", lo, NULL)) != -1) {
		switch (c) {
		case 'f':
			from = optarg;
			break;
		case 't':
			to = optarg;
			break;
		case 'o':
			out = optarg;
			break;
		case 'e':
			ecu = optarg;
			break;
		case 'T':
			type = optarg;
			break;
		case 'F':
			fv = optarg;
			break;
		case 'V':
			tv = optarg;
			break;
		case 'l':
			if (cli_parse_long(optarg, 1, 19, &level) != 0)
				return cli_usage_error("pack", "--level takes 1..19");
			break;
		case 'm':
			if (cli_parse_long(optarg, 64, 1L << 20, &mem) != 0)
				return cli_usage_error("pack",
				                       "--memory-limit takes 64..1048576 (MiB)");
			break;
		case 'a':
			if (cli_parse_long(optarg, 8, 1L << 16, &apply_mem) != 0)
				return cli_usage_error("pack",
				                       "--apply-memory takes 8..65536 (MiB)");
			break;
		case 'h':
			usage(stdout);
			return CLI_EXIT_OK;
		default:
			return cli_usage_error("pack", "bad option");
		}
	}
	if (!from || !to || !out || optind != argc)
		return cli_usage_error("pack", "pack delta --from OLD --to NEW -o OUT");
	pkg_leaf_opts o = {.level = (int)level,
	                   .mem_limit = (uint64_t)mem << 20,
	                   .apply_limit = (uint64_t)apply_mem << 20};
	if (swpg_ecu_parse(ecu, &o.ecu) != PQ_OK || swpg_type_parse(type, &o.type) != PQ_OK ||
	    swpg_version_parse(fv ? fv : "0.0.0", &o.base_version) != PQ_OK ||
	    swpg_version_parse(tv ? tv : "0.0.0", &o.version) != PQ_OK)
		return cli_usage_error("pack", "%s", pq_err_detail());
	o.base_path = from;
	struct bar b;
	o.progress = make_progress(&b, "delta");
	pkg_unit u;
	double t0 = pq_mono_s();
	rc = pkg_build_leaf(to, &o, out, &u);
	if (rc != PQ_OK)
		return cli_error(rc, "pack delta");
	printf("delta %s -> %s: %llu bytes for a %llu-byte image (%.1f%%), base sha256 ", from, to,
	       (unsigned long long)u.size, (unsigned long long)u.image_size,
	       u.image_size ? 100.0 * (double)u.size / (double)u.image_size : 0.0);
	for (int i = 0; i < 8; i++)
		printf("%02x", u.base_sha256[i]);
	printf("..., %.2f s\n", pq_mono_s() - t0);
	return CLI_EXIT_OK;
}

static int pack_apply(int argc, char **argv)
{
	static const struct option lo[] = {
	    {"base", required_argument, NULL, 'b'},  {"output", required_argument, NULL, 'o'},
	    {"entry", required_argument, NULL, 'e'}, {"memory-limit", required_argument, NULL, 'm'},
	    {"no-resume", no_argument, NULL, 'n'},   {"ecu", required_argument, NULL, 'E'},
	    {"help", no_argument, NULL, 'h'},        {NULL, 0, NULL, 0}};
	const char *base = NULL, *out = NULL, *entry = "", *ecu = NULL;
	long mem = 64;
	pkg_apply_opts ao = {.resume = true};
	int c, rc;
	optind = 1;
	while ((c = getopt_long(argc, argv, "o:h", lo, NULL)) != -1) {
		if (c == 'm') {
			if (cli_parse_long(optarg, 8, 1L << 16, &mem) != 0)
				return cli_usage_error("pack",
				                       "--memory-limit takes 8..65536 (MiB)");
		} else if (c == 'n') {
			ao.resume = false;
		} else if (c == 'E') {
			ecu = optarg;
		} else if (c == 'b')
			base = optarg;
		else if (c == 'o')
			out = optarg;
		else if (c == 'e')
			entry = optarg;
		else if (c == 'h')
			return usage(stdout), CLI_EXIT_OK;
		else
			return cli_usage_error("pack", "bad option");
	}
	if (optind + 1 != argc || !base || !out)
		return cli_usage_error("pack", "pack apply DELTA --base OLD -o OUT");
	uint16_t want = 0;
	if (ecu && swpg_ecu_parse(ecu, &want) != PQ_OK)
		return cli_usage_error("pack", "%s", pq_err_detail());
	pkg_reader *r = NULL;
	const pkg_entry *e = NULL;
	struct bar b;
	ao.progress = make_progress(&b, "patching");
	ao.mem_limit = (uint64_t)mem << 20;
	rc = pkg_open(argv[optind], &r);
	if (rc == PQ_OK)
		rc = pkg_find(r, entry, &e);
	/* as the vehicle does: a delta for another ECU is refused before anything is read */
	if (rc == PQ_OK && ecu && e->hdr.target_ecu_id != SWPG_ECU_BROADCAST &&
	    e->hdr.target_ecu_id != want)
		rc = pq_err_set(PQ_ERR_VERIFY, "%s is for ECU 0x%04x, not %s", argv[optind],
		                e->hdr.target_ecu_id, ecu);
	if (rc == PQ_OK)
		rc = pkg_apply_delta_ex(r, e, base, out, &ao);
	pkg_close(r);
	if (rc != PQ_OK) {
		cli_error(rc, "pack apply");
		return rc == PQ_ERR_VERIFY || rc == PQ_ERR_FORMAT ? CLI_EXIT_FAIL : CLI_EXIT_ERROR;
	}
	printf("patched %s with %s -> %s (target SHA-256 verified", base, argv[optind], out);
	if (ao.resumed_bytes)
		printf("; resumed after %llu bytes", (unsigned long long)ao.resumed_bytes);
	printf(", %llu MiB needed)\n",
	       (unsigned long long)(ao.memory_needed + (1u << 20) - 1) >> 20);
	return CLI_EXIT_OK;
}

int cmd_pack(int argc, char **argv)
{
	if (argc < 2) {
		usage(stderr);
		return CLI_EXIT_USAGE;
	}
	const char *sub = argv[1];
	if (strcmp(sub, "build") == 0)
		return pack_build(argc - 1, argv + 1);
	if (strcmp(sub, "verify") == 0)
		return pack_verify(argc - 1, argv + 1);
	if (strcmp(sub, "inspect") == 0)
		return pack_inspect(argc - 1, argv + 1);
	if (strcmp(sub, "extract") == 0)
		return pack_extract(argc - 1, argv + 1);
	if (strcmp(sub, "delta") == 0)
		return pack_delta(argc - 1, argv + 1);
	if (strcmp(sub, "apply") == 0)
		return pack_apply(argc - 1, argv + 1);
	if (strcmp(sub, "--help") == 0 || strcmp(sub, "-h") == 0) {
		usage(stdout);
		return CLI_EXIT_OK;
	}
	return cli_usage_error("pack", "unknown pack command '%s'", sub);
}
