/* delta.c: one delta tool (pqota, bsdiff, xdelta3, zstd) on one pair of files: create, apply,
 * check, each step measured in its own process; and the libcrypto this process runs on. */
#include "bench/bench.h"

#include <dlfcn.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "core/buf.h"
#include "core/fileio.h"
#include "pkg/pkg.h"

#define BENCH_ECU 0x1011 /* ECU_011 */

static const char *const tool_names[BENCH_TOOL_COUNT] = {"pqota", "bsdiff", "xdelta3", "zstd"};

const char *bench_tool_name(bench_tool t)
{
	return (unsigned)t < BENCH_TOOL_COUNT ? tool_names[t] : "?";
}

void bench_tools_find(bench_tools *t)
{
	*t = (bench_tools){0};
	t->bsdiff = bench_find_tool("bsdiff", t->bsdiff_path, sizeof(t->bsdiff_path)) &&
	            bench_find_tool("bspatch", t->bspatch_path, sizeof(t->bspatch_path));
	t->xdelta3 = bench_find_tool("xdelta3", t->xdelta3_path, sizeof(t->xdelta3_path));
	t->zstd = bench_find_tool("zstd", t->zstd_path, sizeof(t->zstd_path));
}

bool bench_tool_available(bench_tool tool, const bench_tools *t)
{
	switch (tool) {
	case BENCH_TOOL_PQOTA:
		return true;
	case BENCH_TOOL_BSDIFF:
		return t->bsdiff;
	case BENCH_TOOL_XDELTA3:
		return t->xdelta3;
	case BENCH_TOOL_ZSTD:
		return t->zstd;
	default:
		return false;
	}
}

int bench_zstd_wlog(uint64_t old_size, uint64_t new_size)
{
	int w = 20;
	while (w < 31 && (1ull << w) < old_size + new_size)
		w++;
	return w;
}

uint64_t bench_xdelta3_srcwin(uint64_t old_size)
{
	uint64_t b = 64ull << 20;
	while (b < old_size && b < (1ull << 30))
		b <<= 1;
	return b;
}

/* The files of one run. */
typedef struct {
	const char *old_path, *new_path;
	uint64_t old_size, new_size;
	char patch[PATH_MAX], out[PATH_MAX];
} delta_files;

static int pqota_delta_create(const void *a)
{
	const delta_files *d = a;
	pkg_leaf_opts o = {.ecu = BENCH_ECU,
	                   .type = SWPG_TYPE_APP,
	                   .version = {2, 0, 0, 0},
	                   .timestamp = 1,
	                   .level = BENCH_DELTA_LEVEL,
	                   .base_path = d->old_path,
	                   .base_version = {1, 0, 0, 0}};
	pkg_unit u;
	return pkg_build_leaf(d->new_path, &o, d->patch, &u);
}

static int pqota_delta_apply(const void *a)
{
	const delta_files *d = a;
	pkg_reader *r = NULL;
	const pkg_entry *all = NULL;
	size_t n = 0;
	int rc = pkg_open(d->patch, &r);
	if (rc == PQ_OK)
		rc = pkg_list(r, &all, &n);
	if (rc == PQ_OK)
		rc = pkg_apply_delta(r, &all[0], d->old_path, d->out, NULL);
	pkg_close(r);
	return rc;
}

/* Runs the create command, then (when it worked) the apply command, measured. */
static int run_pair(char *const mk[], char *const ap[], bench_proc_cost *c, bench_proc_cost *a)
{
	int rc = bench_run_tool(mk, c);
	return rc == PQ_OK ? bench_run_tool(ap, a) : rc;
}

static int run_xdelta3(const bench_tools *t, delta_files *d, bench_proc_cost *c, bench_proc_cost *a)
{
	char *x = (char *)t->xdelta3_path, *o = (char *)d->old_path, b[32];
	snprintf(b, sizeof(b), "-B%llu", (unsigned long long)bench_xdelta3_srcwin(d->old_size));
	char *mk[] = {x, "-e", "-9", "-f", b, "-s", o, (char *)d->new_path, d->patch, NULL};
	char *ap[] = {x, "-d", "-f", b, "-s", o, d->patch, d->out, NULL};
	return run_pair(mk, ap, c, a);
}

static int run_zstd(const bench_tools *t, delta_files *d, bench_proc_cost *c, bench_proc_cost *a)
{
	char *z = (char *)t->zstd_path, lv[8], lg[24], pf[PATH_MAX + 16];
	snprintf(lv, sizeof(lv), "-%d", BENCH_ZSTD_LEVEL);
	snprintf(lg, sizeof(lg), "--long=%d", bench_zstd_wlog(d->old_size, d->new_size));
	if ((size_t)snprintf(pf, sizeof(pf), "--patch-from=%s", d->old_path) >= sizeof(pf))
		return pq_err_set(PQ_ERR_RANGE, "path too long");
	/* -qq: no advice on stderr; a failure still shows in the exit status */
	char *mk[] = {
	    z,    "-qq",    "-f", "--ultra", lv, "--single-thread", lg, pf, (char *)d->new_path,
	    "-o", d->patch, NULL};
	char *ap[] = {z, "-qq", "-d", "-f", lg, pf, d->patch, "-o", d->out, NULL};
	return run_pair(mk, ap, c, a);
}

/* Creates the delta d->patch and applies it into d->out with one tool, measured. */
static int run_steps(bench_tool tool, const bench_tools *t, delta_files *d, bench_delta_result *res)
{
	bench_proc_cost mk = {0}, ap = {0};
	int rc;
	switch (tool) {
	case BENCH_TOOL_PQOTA:
		rc = bench_run_forked(pqota_delta_create, d, &mk);
		if (rc == PQ_OK)
			rc = bench_run_forked(pqota_delta_apply, d, &ap);
		break;
	case BENCH_TOOL_BSDIFF: {
		char *o = (char *)d->old_path, *nw = (char *)d->new_path;
		char *mkv[] = {(char *)t->bsdiff_path, o, nw, d->patch, NULL};
		char *apv[] = {(char *)t->bspatch_path, o, d->out, d->patch, NULL};
		rc = run_pair(mkv, apv, &mk, &ap);
		break;
	}
	case BENCH_TOOL_XDELTA3:
		rc = run_xdelta3(t, d, &mk, &ap);
		break;
	default:
		rc = run_zstd(t, d, &mk, &ap);
		break;
	}
	res->create_s = mk.secs;
	res->create_rss = mk.rss_kib;
	res->apply_s = ap.secs;
	res->apply_rss = ap.rss_kib;
	return rc;
}

/* Why tool does not run on this pair (res filled), or PQ_OK. */
static int skip_reason(bench_tool tool, const bench_tools *t, const bench_delta_opts *opts,
                       const delta_files *d, bench_delta_result *res)
{
	uint64_t big = d->old_size > d->new_size ? d->old_size : d->new_size;
	int rc = PQ_OK;
	if (!bench_tool_available(tool, t))
		rc = pq_err_set(PQ_ERR_NOTFOUND, "%s is not installed", bench_tool_name(tool));
	else if (tool == BENCH_TOOL_BSDIFF && opts->bsdiff_max && big > opts->bsdiff_max)
		rc = pq_err_set(PQ_ERR_RANGE,
		                "over the bsdiff size cap of %llu MiB (bsdiff needs about 17x the "
		                "file in memory and hours on 1 GB; --bsdiff-max)",
		                (unsigned long long)(opts->bsdiff_max >> 20));
	if (rc != PQ_OK) {
		res->rc = rc;
		snprintf(res->error, sizeof(res->error), "%s", pq_err_detail());
	}
	return rc;
}

int bench_delta_run(bench_tool tool, const bench_tools *t, const bench_delta_opts *opts,
                    const char *dir, const char *old_path, const char *new_path,
                    bench_delta_result *res)
{
	delta_files d = {.old_path = old_path, .new_path = new_path};
	bool same = false;
	int rc;

	*res = (bench_delta_result){0};
	rc = bench_file_size(old_path, &d.old_size);
	if (rc == PQ_OK)
		rc = bench_file_size(new_path, &d.new_size);
	if (rc != PQ_OK || skip_reason(tool, t, opts, &d, res) != PQ_OK) {
		if (rc != PQ_OK) {
			res->rc = rc;
			snprintf(res->error, sizeof(res->error), "%s", pq_err_detail());
		}
		return res->rc;
	}
	res->ran = true;
	rc = pq_path_join(d.patch, sizeof(d.patch), dir, "delta.patch");
	if (rc == PQ_OK)
		rc = pq_path_join(d.out, sizeof(d.out), dir, "delta.out");
	if (rc == PQ_OK) {
		unlink(d.patch);
		unlink(d.out);
		rc = run_steps(tool, t, &d, res);
	}
	if (rc == PQ_OK)
		rc = bench_file_size(d.patch, &res->size);
	if (rc == PQ_OK)
		rc = bench_files_equal(d.out, new_path, &same);
	if (rc == PQ_OK && !same)
		rc = pq_err_set(PQ_ERR_VERIFY, "the patched output is not byte-identical to %s",
		                new_path);
	unlink(d.patch);
	unlink(d.out);
	if (rc != PQ_OK) {
		rc = pq_err_wrap(rc, "%s", bench_tool_name(tool));
		snprintf(res->error, sizeof(res->error), "%s", pq_err_detail());
	}
	res->rc = rc;
	return rc;
}

int bench_cache_path(const char *tail, char *p, size_t len)
{
	const char *c = getenv("PQOTA_CACHE"), *x = getenv("XDG_CACHE_HOME"), *h = getenv("HOME");
	pq_buf b;
	pq_buf_init_fixed(&b, p, len);
	if (c && *c)
		pq_buf_str(&b, c);
	else if (x && *x)
		pq_buf_printf(&b, "%s/pqota", x);
	else
		pq_buf_printf(&b, "%s/.cache/pqota", h ? h : "");
	pq_buf_printf(&b, "/%s", tail);
	if (b.cut)
		return pq_err_set(PQ_ERR_RANGE, "cache path too long");
	return PQ_OK;
}

int bench_loaded_libcrypto(char *out, size_t len)
{
	Dl_info info;
	char p[PATH_MAX];
	if (len < PATH_MAX)
		return pq_err_set(PQ_ERR_RANGE, "libcrypto path buffer of %zu bytes", len);
	void *sym = dlsym(RTLD_DEFAULT, "OpenSSL_version");
	if (sym && dladdr(sym, &info) && info.dli_fname && strstr(info.dli_fname, "libcrypto") &&
	    realpath(info.dli_fname, out))
		return PQ_OK;
	int rc = bench_cache_path("openssl-current/lib/libcrypto.so.3", p, sizeof(p));
	if (rc != PQ_OK)
		return rc;
	if (!realpath(p, out))
		return pq_err_set(PQ_ERR_NOTFOUND, "cannot locate the loaded libcrypto (%s: %s)", p,
		                  strerror(errno));
	return PQ_OK;
}
