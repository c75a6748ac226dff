/* delta.c: one delta tool (pqota, bsdiff, xdelta3) on one pair of files: create, apply,
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

static const char *const tool_names[BENCH_TOOL_COUNT] = {"pqota", "bsdiff", "xdelta3"};

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
}

bool bench_tool_available(bench_tool tool, const bench_tools *t)
{
	return tool == BENCH_TOOL_PQOTA || (tool == BENCH_TOOL_BSDIFF    ? t->bsdiff
	                                    : tool == BENCH_TOOL_XDELTA3 ? t->xdelta3
	                                                                 : false);
}

/* The files of one run. */
typedef struct {
	const char *old_path, *new_path;
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

/* Creates the delta d->patch and applies it into d->out with one tool, measured. */
static int run_steps(bench_tool tool, const bench_tools *t, delta_files *d, bench_delta_result *res)
{
	bench_proc_cost mk = {0}, ap = {0};
	char *o = (char *)d->old_path, *nw = (char *)d->new_path;
	int rc;
	switch (tool) {
	case BENCH_TOOL_PQOTA:
		rc = bench_run_forked(pqota_delta_create, d, &mk);
		if (rc == PQ_OK)
			rc = bench_run_forked(pqota_delta_apply, d, &ap);
		break;
	case BENCH_TOOL_BSDIFF: {
		char *mkv[] = {(char *)t->bsdiff_path, o, nw, d->patch, NULL};
		char *apv[] = {(char *)t->bspatch_path, o, d->out, d->patch, NULL};
		rc = bench_run_tool(mkv, &mk);
		if (rc == PQ_OK)
			rc = bench_run_tool(apv, &ap);
		break;
	}
	default: {
		char *x = (char *)t->xdelta3_path;
		char *mkv[] = {x, "-e", "-9", "-s", o, nw, d->patch, NULL};
		char *apv[] = {x, "-d", "-s", o, d->patch, d->out, NULL};
		rc = bench_run_tool(mkv, &mk);
		if (rc == PQ_OK)
			rc = bench_run_tool(apv, &ap);
		break;
	}
	}
	res->create_s = mk.secs;
	res->create_rss = mk.rss_kib;
	res->apply_s = ap.secs;
	res->apply_rss = ap.rss_kib;
	return rc;
}

int bench_delta_run(bench_tool tool, const bench_tools *t, const char *dir, const char *old_path,
                    const char *new_path, bench_delta_result *res)
{
	delta_files d = {.old_path = old_path, .new_path = new_path};
	bool same = false;
	int rc;

	*res = (bench_delta_result){0};
	if (!bench_tool_available(tool, t)) {
		res->rc = pq_err_set(PQ_ERR_NOTFOUND, "%s is not installed", bench_tool_name(tool));
		snprintf(res->error, sizeof(res->error), "%s", pq_err_detail());
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

/* Where scripts/bootstrap keeps the current OpenSSL's libcrypto. */
static int cached_libcrypto(char *p, size_t len)
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
	pq_buf_str(&b, "/openssl-current/lib/libcrypto.so.3");
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
	int rc = cached_libcrypto(p, sizeof(p));
	if (rc != PQ_OK)
		return rc;
	if (!realpath(p, out))
		return pq_err_set(PQ_ERR_NOTFOUND, "cannot locate the loaded libcrypto (%s: %s)", p,
		                  strerror(errno));
	return PQ_OK;
}
