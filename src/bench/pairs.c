/* pairs.c: the pairs of the delta benchmark: real firmware fetched from Debian (listed in the
 * cache's manifest by scripts/fetch-firmware), two real builds of the system's libraries,
 * synthetic images of 4 MB to 1 GB with small changes, and an incompressible pair. */
#include "bench/bench.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/statvfs.h>
#include <unistd.h>

#include "core/fileio.h"

#define MANIFEST       "pairs.tsv"
#define MANIFEST_MAX   (64u << 10)
#define QUICK_FILE_MAX (8u << 20)
#define MB             1000000ull

static const char *const class_names[] = {"code", "code-packed", "data", "random"};

const char *bench_class_name(bench_class c)
{
	return (unsigned)c < sizeof(class_names) / sizeof(class_names[0]) ? class_names[c] : "?";
}

int bench_firmware_dir(char *out, size_t len)
{
	return bench_cache_path("bench-firmware", out, len);
}

/* ---- the list under construction ------------------------------------------------------------ */

typedef struct {
	bench_pair *p;
	size_t max, n;
} plist;

static bench_pair *plist_add(plist *l, const char *name, bench_class cls)
{
	if (l->n == l->max)
		return NULL;
	bench_pair *p = &l->p[l->n++];
	*p = (bench_pair){.cls = cls};
	snprintf(p->name, sizeof(p->name), "%s", name);
	return p;
}

/* ---- firmware from the cache's manifest ----------------------------------------------------- */

static bool name_ok(const char *s)
{
	if (!*s || strlen(s) >= 48)
		return false;
	for (; *s; s++)
		if (!((*s >= 'a' && *s <= 'z') || (*s >= '0' && *s <= '9') || *s == '-' ||
		      *s == '.' || *s == '_'))
			return false;
	return true;
}

static bool rel_ok(const char *s)
{
	return *s && *s != '/' && !strstr(s, "..");
}

static int class_parse(const char *s, bench_class *c)
{
	for (size_t i = 0; i < sizeof(class_names) / sizeof(class_names[0]); i++)
		if (strcmp(s, class_names[i]) == 0) {
			*c = (bench_class)i;
			return PQ_OK;
		}
	return PQ_ERR_FORMAT;
}

/* One manifest line "name\tclass\told\tnew\twhat" (modified in place) into the list. */
static int manifest_line(plist *l, const char *dir, char *line, unsigned lineno, bool quick)
{
	char *f[5];
	int nf = 0;
	for (char *s = line; nf < 5; nf++) {
		f[nf] = s;
		char *tab = nf < 4 ? strchr(s, '\t') : NULL;
		if (nf < 4 && !tab)
			break;
		if (tab) {
			*tab = '\0';
			s = tab + 1;
		}
	}
	bench_class cls;
	if (nf != 5 || !name_ok(f[0]) || class_parse(f[1], &cls) != PQ_OK || !rel_ok(f[2]) ||
	    !rel_ok(f[3]))
		return pq_err_set(PQ_ERR_FORMAT, "%s/" MANIFEST " line %u is malformed", dir,
		                  lineno);
	char o[PATH_MAX], n[PATH_MAX];
	uint64_t so = 0, sn = 0;
	if (pq_path_join(o, sizeof(o), dir, f[2]) != PQ_OK ||
	    pq_path_join(n, sizeof(n), dir, f[3]) != PQ_OK)
		return pq_err_set(PQ_ERR_RANGE, "%s/" MANIFEST " line %u: path too long", dir,
		                  lineno);
	bool there = bench_file_size(o, &so) == PQ_OK && bench_file_size(n, &sn) == PQ_OK;
	if (quick && there && (so > QUICK_FILE_MAX || sn > QUICK_FILE_MAX))
		return PQ_OK;
	bench_pair *p = plist_add(l, f[0], cls);
	if (!p)
		return pq_err_set(PQ_ERR_RANGE, "more than %zu pairs", l->max);
	snprintf(p->what, sizeof(p->what), "%s", f[4]);
	snprintf(p->old_path, sizeof(p->old_path), "%s", o);
	snprintf(p->new_path, sizeof(p->new_path), "%s", n);
	if (!there)
		snprintf(p->missing, sizeof(p->missing),
		         "files missing in the cache: run scripts/fetch-firmware");
	return PQ_OK;
}

static int firmware_pairs(plist *l, bool quick)
{
	char dir[PATH_MAX], path[PATH_MAX];
	int rc = bench_firmware_dir(dir, sizeof(dir));
	if (rc == PQ_OK)
		rc = pq_path_join(path, sizeof(path), dir, MANIFEST);
	if (rc != PQ_OK)
		return rc;
	FILE *f = fopen(path, "re");
	if (!f) {
		bench_pair *p = plist_add(l, "firmware", BENCH_CLASS_CODE);
		if (p)
			snprintf(p->missing, sizeof(p->missing),
			         "no firmware in %.150s: run scripts/fetch-firmware (needs the "
			         "network once)",
			         dir);
		return PQ_OK;
	}
	char line[2048];
	unsigned lineno = 0;
	size_t total = 0;
	while (rc == PQ_OK && fgets(line, sizeof(line), f)) {
		lineno++;
		total += strlen(line);
		if (total > MANIFEST_MAX || !strchr(line, '\n')) {
			rc = pq_err_set(PQ_ERR_RANGE, "%s: too long (line %u)", path, lineno);
			break;
		}
		line[strcspn(line, "\n")] = '\0';
		if (line[0] && line[0] != '#')
			rc = manifest_line(l, dir, line, lineno, quick);
	}
	fclose(f);
	return rc;
}

/* ---- the system's libraries ----------------------------------------------------------------- */

/* The system's libcrypto.so.3 to the one pqota runs on, when they differ. */
static void openssl_pair(plist *l)
{
	static const char sys_crypto[] = BENCH_LIB_DIR "/libcrypto.so.3";
	bench_pair *p = plist_add(l, "libcrypto", BENCH_CLASS_CODE);
	if (!p)
		return;
	snprintf(p->what, sizeof(p->what),
	         "libcrypto.so.3 (x86-64 ELF): the system's (Debian OpenSSL 3.0) to the OpenSSL "
	         "pqota runs on");
	if (bench_loaded_libcrypto(p->new_path, sizeof(p->new_path)) != PQ_OK)
		snprintf(p->missing, sizeof(p->missing), "%s", pq_err_detail());
	else if (!realpath(sys_crypto, p->old_path))
		snprintf(p->missing, sizeof(p->missing), "%s: %s", sys_crypto, strerror(errno));
	else if (strcmp(p->old_path, p->new_path) == 0)
		snprintf(p->missing, sizeof(p->missing),
		         "pqota runs on the system's libcrypto: no second build");
}

/* Debian's libLLVM 14 to 15, when both are installed. */
static void llvm_pair(plist *l)
{
	bench_pair *p = plist_add(l, "libllvm", BENCH_CLASS_CODE);
	if (!p)
		return;
	snprintf(p->what, sizeof(p->what),
	         "libLLVM (x86-64 ELF): Debian libllvm14 (14.0.6) to libllvm15 (15.0.6)");
	snprintf(p->old_path, sizeof(p->old_path), "%s", BENCH_LIB_DIR "/libLLVM-14.so.1");
	snprintf(p->new_path, sizeof(p->new_path), "%s", BENCH_LIB_DIR "/libLLVM-15.so.1");
	if (access(p->old_path, R_OK) != 0 || access(p->new_path, R_OK) != 0)
		snprintf(p->missing, sizeof(p->missing),
		         "libLLVM-14.so.1 and libLLVM-15.so.1 are not both in "
		         "%s",
		         BENCH_LIB_DIR);
}

/* ---- synthetic pairs ------------------------------------------------------------------------ */

typedef struct {
	const char *name;
	bench_synth_kind kind;
	uint64_t size;
	unsigned sets;
} synth_spec;

static const synth_spec synths[] = {
    {"synth-4m-edit", BENCH_SYNTH_EDIT, 4 * MB, BENCH_SET_QUICK},
    {"synth-4m-insert", BENCH_SYNTH_INSERT, 4 * MB, BENCH_SET_QUICK},
    {"synth-4m-move", BENCH_SYNTH_MOVE, 4 * MB, BENCH_SET_QUICK},
    {"random-4m", BENCH_SYNTH_RANDOM, 4 * MB, BENCH_SET_QUICK},
    {"synth-100m-edit", BENCH_SYNTH_EDIT, 100 * MB, BENCH_SET_FULL | BENCH_SET_LARGE},
    {"synth-100m-insert", BENCH_SYNTH_INSERT, 100 * MB, BENCH_SET_FULL | BENCH_SET_LARGE},
    {"synth-100m-move", BENCH_SYNTH_MOVE, 100 * MB, BENCH_SET_FULL | BENCH_SET_LARGE},
    {"random-32m", BENCH_SYNTH_RANDOM, 32 * MB, BENCH_SET_FULL | BENCH_SET_LARGE},
    {"synth-1g-edit", BENCH_SYNTH_EDIT, 1000 * MB, BENCH_SET_LARGE},
    {"synth-1g-mixed", BENCH_SYNTH_MIXED, 1000 * MB, BENCH_SET_LARGE},
};

static int synth_pairs(plist *l, unsigned sets)
{
	for (size_t i = 0; i < sizeof(synths) / sizeof(synths[0]); i++) {
		if (!(synths[i].sets & sets))
			continue;
		bench_pair *p = plist_add(l, synths[i].name,
		                          synths[i].kind == BENCH_SYNTH_RANDOM ? BENCH_CLASS_RANDOM
		                                                               : BENCH_CLASS_DATA);
		if (!p)
			return pq_err_set(PQ_ERR_RANGE, "more than %zu pairs", l->max);
		p->synthetic = true;
		p->kind = synths[i].kind;
		p->size = synths[i].size;
	}
	return PQ_OK;
}

int bench_pairs_list(unsigned sets, bench_pair *out, size_t max, size_t *n)
{
	plist l = {.p = out, .max = max};
	bool quick = (sets & BENCH_SET_QUICK) && !(sets & (BENCH_SET_FULL | BENCH_SET_LARGE));
	int rc = firmware_pairs(&l, quick);
	if (rc == PQ_OK) {
		openssl_pair(&l);
		if (!quick)
			llvm_pair(&l);
		rc = synth_pairs(&l, sets);
	}
	*n = l.n;
	return rc;
}

/* ---- making and removing the synthetic files ------------------------------------------------ */

/* Room for the pair (old and new), a delta as large as the image and the patched output. */
static int check_room(const char *dir, uint64_t size)
{
	struct statvfs v;
	if (statvfs(dir, &v) != 0)
		return pq_err_set(PQ_ERR_IO, "statvfs %s: %s", dir, strerror(errno));
	uint64_t avail = (uint64_t)v.f_bavail * v.f_frsize, need = 4 * size + 64 * MB;
	if (avail < need)
		return pq_err_set(
		    PQ_ERR_RANGE, "%s has %llu MB free, the pair needs about %llu MB (TMPDIR)", dir,
		    (unsigned long long)(avail / MB), (unsigned long long)(need / MB));
	return PQ_OK;
}

int bench_pair_prepare(bench_pair *p, const char *dir)
{
	if (!p->synthetic)
		return PQ_OK;
	char on[64], nn[64], what[256];
	snprintf(on, sizeof(on), "%s.old", p->name);
	snprintf(nn, sizeof(nn), "%s.new", p->name);
	int rc = check_room(dir, p->size);
	if (rc == PQ_OK)
		rc = pq_path_join(p->old_path, sizeof(p->old_path), dir, on);
	if (rc == PQ_OK)
		rc = pq_path_join(p->new_path, sizeof(p->new_path), dir, nn);
	if (rc == PQ_OK)
		rc = bench_synth_pair(p->kind, p->size, 0x9071A000u + p->size, p->old_path,
		                      p->new_path, what, sizeof(what));
	if (rc == PQ_OK)
		snprintf(p->what, sizeof(p->what), "synthetic %llu MB image (seeded): %s",
		         (unsigned long long)(p->size / MB), what);
	return rc;
}

void bench_pair_cleanup(const bench_pair *p)
{
	if (!p->synthetic)
		return;
	if (p->old_path[0])
		unlink(p->old_path);
	if (p->new_path[0])
		unlink(p->new_path);
}
