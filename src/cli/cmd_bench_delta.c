/* cmd_bench_delta.c: the delta part of `pqota bench pack`: every pair through pqota, bsdiff,
 * xdelta3 and zstd --patch-from (src/bench/delta.c), one table per pair, pqota's ratios to
 * each tool and to the best of them, issue 13's targets, and a markdown summary at the end.
 * Ratios are pqota / other: below 1 pqota is smaller, faster or leaner. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "bench/bench.h"
#include "cli/bench_out.h"
#include "cli/cli.h"

/* One pair's outcome, kept for the summary. */
typedef struct {
	const bench_pair *pair;
	uint64_t new_size;
	bool ran;
	char skipped[320]; /* why the pair did not run */
	bench_delta_result res[BENCH_TOOL_COUNT];
	bench_targets tg;
} outcome;

static double mib(long kib)
{
	return (double)kib / 1024.0;
}

static bool ok(const bench_delta_result *r)
{
	return r->ran && r->rc == PQ_OK;
}

static const char *verdict(bench_verdict v)
{
	return v == BENCH_MET ? "met" : v == BENCH_NOT_MET ? "NOT met" : "n/a";
}

/* ---- one pair ------------------------------------------------------------------------------- */

static void pair_header(const bench_pair *p, uint64_t old_size, uint64_t new_size)
{
	if (cli_bench_json) {
		cli_json_row("delta-pair");
		cli_json_field("pair", p->name);
		cli_json_field("class", bench_class_name(p->cls));
		cli_json_field("what", p->what);
		printf(",\"old_bytes\":%llu,\"new_bytes\":%llu,\"zstd_wlog\":%d}",
		       (unsigned long long)old_size, (unsigned long long)new_size,
		       bench_zstd_wlog(old_size, new_size));
	} else {
		printf("\n== %s [%s]: %s\n   old %llu bytes, new %llu bytes\n"
		       "   %-8s %13s %9s %9s %10s %9s %10s  %s\n",
		       p->name, bench_class_name(p->cls), p->what, (unsigned long long)old_size,
		       (unsigned long long)new_size, "tool", "delta bytes", "% of new", "encode s",
		       "enc MiB", "apply s", "apply MiB", "output");
	}
	fflush(stdout);
}

static void tool_row(const char *pair, bench_tool tool, const bench_delta_result *r,
                     uint64_t new_size)
{
	const char *name = bench_tool_name(tool);
	if (cli_bench_json) {
		cli_json_row("delta");
		cli_json_field("pair", pair);
		cli_json_field("tool", name);
		if (!r->ran)
			cli_json_field("skipped", r->error);
		else if (r->rc != PQ_OK)
			cli_json_field("error", r->error);
		else
			printf(",\"delta_bytes\":%llu,\"create_s\":%.4f,\"apply_s\":%.4f,"
			       "\"create_rss_kib\":%ld,\"apply_rss_kib\":%ld,\"identical\":true",
			       (unsigned long long)r->size, r->create_s, r->apply_s, r->create_rss,
			       r->apply_rss);
		printf("}");
	} else if (!r->ran) {
		printf("   %-8s skipped: %s\n", name, r->error);
	} else if (r->rc != PQ_OK) {
		printf("   %-8s FAILED: %s\n", name, r->error);
	} else {
		printf("   %-8s %13llu %8.3f%% %9.3f %10.1f %9.3f %10.1f  identical\n", name,
		       (unsigned long long)r->size, 100.0 * (double)r->size / (double)new_size,
		       r->create_s, mib(r->create_rss), r->apply_s, mib(r->apply_rss));
	}
	fflush(stdout);
}

static double ratio(double a, double b)
{
	return b > 0 ? a / b : 0;
}

/* pqota / other on each figure; label names the other ("xdelta3", "best=zstd"). */
static void ratio_row(const char *pair, const char *label, const bench_delta_result *p,
                      const bench_delta_result *o)
{
	double sz = ratio((double)p->size, (double)o->size), ct = ratio(p->create_s, o->create_s),
	       cm = ratio((double)p->create_rss, (double)o->create_rss),
	       at = ratio(p->apply_s, o->apply_s),
	       am = ratio((double)p->apply_rss, (double)o->apply_rss);
	if (cli_bench_json) {
		cli_json_row("delta-ratio");
		cli_json_field("pair", pair);
		cli_json_field("vs", label);
		printf(
		    ",\"size\":%.4f,\"create_time\":%.4f,\"create_mem\":%.4f,\"apply_time\":%.4f,"
		    "\"apply_mem\":%.4f}",
		    sz, ct, cm, at, am);
	} else {
		printf("   pqota/%-13s %8.3f %9.3f %10.3f %9.3f %10.3f\n", label, sz, ct, cm, at,
		       am);
	}
}

static void ratios(const char *pair, const bench_delta_result *res, int best)
{
	const bench_delta_result *p = &res[BENCH_TOOL_PQOTA];
	if (!ok(p))
		return;
	if (!cli_bench_json)
		printf("   %-19s %8s %9s %10s %9s %10s   (pqota / other: < 1 is better)\n",
		       "ratios", "size", "encode s", "enc mem", "apply s", "apply mem");
	for (int i = BENCH_TOOL_PQOTA + 1; i < BENCH_TOOL_COUNT; i++)
		if (ok(&res[i]))
			ratio_row(pair, bench_tool_name(i), p, &res[i]);
	if (best >= 0) {
		char label[32];
		snprintf(label, sizeof(label), "best=%s", bench_tool_name(best));
		ratio_row(pair, label, p, &res[best]);
	}
}

static void targets_rows(const char *pair, const bench_targets *tg)
{
	if (cli_bench_json) {
		cli_json_row("delta-targets");
		cli_json_field("pair", pair);
		for (int k = 0; k < BENCH_TGT_COUNT; k++) {
			printf(",\"%s\":{\"verdict\":\"%s\"", bench_target_name(k),
			       verdict(tg->v[k]));
			cli_json_field("why", tg->why[k]);
			printf("}");
		}
		printf("}");
		return;
	}
	printf("   targets:\n");
	for (int k = 0; k < BENCH_TGT_COUNT; k++)
		printf("     %-11s %-8s %s\n", bench_target_name(k), verdict(tg->v[k]), tg->why[k]);
}

static void skipped_row(const char *pair, const char *why)
{
	if (cli_bench_json) {
		cli_json_row("delta-pair");
		cli_json_field("pair", pair);
		cli_json_field("skipped", why);
		printf("}");
	} else {
		printf("\n== %s skipped: %s\n", pair, why);
	}
	fflush(stdout);
}

/* Every tool on the prepared pair o->pair; the first failure (not a skip, not a timeout). */
static int run_tools(const char *dir, const bench_tools *t, const cli_delta_run *run, outcome *o)
{
	const bench_pair *p = o->pair;
	uint64_t old_size = 0;
	int rc = bench_file_size(p->old_path, &old_size);
	if (rc == PQ_OK)
		rc = bench_file_size(p->new_path, &o->new_size);
	if (rc != PQ_OK)
		return rc;
	pair_header(p, old_size, o->new_size);
	int failed = PQ_OK;
	char detail[sizeof(o->res[0].error) + 64] = "";
	for (int i = 0; i < BENCH_TOOL_COUNT; i++) {
		bench_reset_peak_rss();
		bench_delta_result *r = &o->res[i];
		if (bench_delta_run(i, t, &run->opts, dir, p->old_path, p->new_path, r) != PQ_OK &&
		    r->ran && r->rc != PQ_ERR_TIMEOUT && failed == PQ_OK) {
			failed = r->rc;
			snprintf(detail, sizeof(detail), "%.48s: %s", p->name, r->error);
		}
		tool_row(p->name, i, r, o->new_size);
	}
	o->ran = true;
	bench_targets_eval(p->cls, o->new_size, o->res, run->apply_limit_kib, &o->tg);
	ratios(p->name, o->res, o->tg.best);
	targets_rows(p->name, &o->tg);
	fflush(stdout);
	return failed == PQ_OK ? PQ_OK : pq_err_set(failed, "%s", detail);
}

/* One pair: made (synthetic), run, removed. */
static int run_pair(const char *dir, const bench_tools *t, const cli_delta_run *run, outcome *o)
{
	bench_pair *p = (bench_pair *)o->pair;
	if (p->missing[0]) {
		snprintf(o->skipped, sizeof(o->skipped), "%s", p->missing);
		skipped_row(p->name, o->skipped);
		return PQ_OK;
	}
	int rc = bench_pair_prepare(p, dir);
	if (rc == PQ_ERR_RANGE) { /* no room in TMPDIR */
		snprintf(o->skipped, sizeof(o->skipped), "%s", pq_err_detail());
		skipped_row(p->name, o->skipped);
		bench_pair_cleanup(p);
		return PQ_OK;
	}
	if (rc == PQ_OK)
		rc = run_tools(dir, t, run, o);
	bench_pair_cleanup(p);
	return rc;
}

/* ---- the summary ---------------------------------------------------------------------------- */

/* A markdown cell of a tool's delta size (or why there is none). */
static void size_cell(const bench_delta_result *r)
{
	if (ok(r))
		printf(" %llu |", (unsigned long long)r->size);
	else if (!r->ran)
		printf(" skipped |");
	else if (r->rc == PQ_ERR_TIMEOUT)
		printf(" timeout |");
	else
		printf(" FAILED |");
}

static void summary_row(const outcome *o)
{
	const bench_delta_result *p = &o->res[BENCH_TOOL_PQOTA], *b = &o->res[BENCH_TOOL_BSDIFF];
	printf("| %s | %s | ", o->pair->name, bench_class_name(o->pair->cls));
	if (!o->ran) {
		printf("skipped: %s ||||||||||||||\n", o->skipped);
		return;
	}
	printf("%.1f |", (double)o->new_size / 1e6);
	for (int i = 0; i < BENCH_TOOL_COUNT; i++)
		size_cell(&o->res[i]);
	if (ok(p) && o->tg.best >= 0)
		printf(" %.3f (%s) |", ratio((double)p->size, (double)o->res[o->tg.best].size),
		       bench_tool_name(o->tg.best));
	else
		printf(" - |");
	if (ok(p))
		printf(" %.2f |", p->create_s);
	else
		printf(" - |");
	if (ok(b))
		printf(" %.2f |", b->create_s);
	else
		printf(" - |");
	printf(ok(p) ? " %.1f |" : " - |", mib(p->apply_rss));
	for (int k = 0; k < BENCH_TGT_COUNT; k++)
		printf(" %s |", verdict(o->tg.v[k]));
	printf("\n");
}

static void summary(const outcome *all, size_t n, const cli_delta_run *run)
{
	if (cli_bench_json)
		return;
	printf(
	    "\n## Delta benchmark summary\n\n"
	    "Delta bytes per tool; pqota/best: pqota's size over the smallest other delta; "
	    "encode in seconds; apply: pqota's apply peak RSS (MiB, limit %.0f). "
	    "Targets (issue 13): size <= best; code: >= 10%% smaller than best; encode >= 10x "
	    "faster than bsdiff (images >= 1 MB); 1 GB encode < 60 s; apply memory <= limit.\n\n",
	    (double)run->apply_limit_kib / 1024.0);
	printf("| pair | class | new MB | pqota | bsdiff | xdelta3 | zstd | pqota/best "
	       "| pqota enc s | bsdiff enc s | pqota apply MiB |");
	for (int k = 0; k < BENCH_TGT_COUNT; k++)
		printf(" %s |", bench_target_name(k));
	printf("\n|---|---|--:|--:|--:|--:|--:|--:|--:|--:|--:|");
	for (int k = 0; k < BENCH_TGT_COUNT; k++)
		printf("---|");
	printf("\n");
	for (size_t i = 0; i < n; i++)
		summary_row(&all[i]);
	fflush(stdout);
}

/* ---- the run -------------------------------------------------------------------------------- */

static bool wanted(const cli_delta_run *run, const char *name)
{
	if (!run->only[0])
		return true;
	for (size_t i = 0; run->only[i]; i++)
		if (strcmp(run->only[i], name) == 0)
			return true;
	return false;
}

/* Every --pair name must name a pair. */
static int check_names(const cli_delta_run *run, const bench_pair *pairs, size_t n)
{
	for (size_t i = 0; run->only[i]; i++) {
		size_t k = 0;
		while (k < n && strcmp(pairs[k].name, run->only[i]) != 0)
			k++;
		if (k == n)
			return pq_err_set(PQ_ERR_NOTFOUND, "no pair named '%s' (see --list)",
			                  run->only[i]);
	}
	return PQ_OK;
}

static void tools_note(const bench_tools *t)
{
	long base = bench_fork_baseline_kib();
	if (!t->bsdiff || !t->xdelta3 || !t->zstd)
		fprintf(stderr, "pqota: missing%s%s%s, skipped: %s\n", t->bsdiff ? "" : " bsdiff",
		        t->xdelta3 ? "" : " xdelta3", t->zstd ? "" : " zstd", BOOTSTRAP_HINT);
	if (cli_bench_json) {
		cli_json_row("delta-setup");
		printf(",\"zstd_level\":%d,\"pqota_level\":%d,\"fork_baseline_kib\":%ld}",
		       BENCH_ZSTD_LEVEL, BENCH_DELTA_LEVEL, base);
		return;
	}
	printf(
	    "\nDeltas: pqota (pkg_build_leaf with a base, level %d asked; apply: "
	    "pkg_apply_delta,\nSHA-256 checks and fsync included), bsdiff/bspatch, xdelta3 -9 "
	    "-B<base>,\nzstd --ultra -%d --single-thread --long=W --patch-from. Each step in its "
	    "own process;\nMiB: its peak RSS (a forked child starts at %.1f MiB).\n",
	    BENCH_DELTA_LEVEL, BENCH_ZSTD_LEVEL, mib(base));
}

int cli_bench_deltas(const char *dir, const cli_delta_run *run)
{
	bench_pair *pairs = calloc(BENCH_PAIRS_MAX, sizeof(*pairs));
	outcome *all = calloc(BENCH_PAIRS_MAX, sizeof(*all));
	size_t n = 0, nrun = 0;
	bench_tools t;
	int rc = pairs && all ? PQ_OK : pq_err_set(PQ_ERR_NOMEM, "pairs");
	if (rc == PQ_OK)
		rc = bench_pairs_list(run->sets, pairs, BENCH_PAIRS_MAX, &n);
	if (rc == PQ_OK)
		rc = check_names(run, pairs, n);
	if (rc == PQ_OK) {
		bench_tools_find(&t);
		tools_note(&t);
	}
	int first = PQ_OK;
	char detail[512] = "";
	for (size_t i = 0; rc == PQ_OK && i < n; i++) {
		if (!wanted(run, pairs[i].name))
			continue;
		outcome *o = &all[nrun++];
		o->pair = &pairs[i];
		int prc = run_pair(dir, &t, run, o);
		if (prc != PQ_OK && first == PQ_OK) {
			first = prc;
			snprintf(detail, sizeof(detail), "%s", pq_err_detail());
		}
	}
	if (rc == PQ_OK)
		summary(all, nrun, run);
	free(all);
	free(pairs);
	if (rc == PQ_OK && first != PQ_OK)
		rc = pq_err_set(first, "%s", detail);
	return rc;
}

int cli_bench_list_pairs(unsigned sets)
{
	bench_pair *pairs = calloc(BENCH_PAIRS_MAX, sizeof(*pairs));
	size_t n = 0;
	if (!pairs)
		return pq_err_set(PQ_ERR_NOMEM, "pairs");
	int rc = bench_pairs_list(sets, pairs, BENCH_PAIRS_MAX, &n);
	for (size_t i = 0; rc == PQ_OK && i < n; i++) {
		const bench_pair *p = &pairs[i];
		if (p->synthetic)
			printf("%-22s %-11s synthetic, %llu MB (made when run)\n", p->name,
			       bench_class_name(p->cls), (unsigned long long)(p->size / 1000000));
		else
			printf("%-22s %-11s %s%s%s\n", p->name, bench_class_name(p->cls),
			       p->missing[0] ? "unavailable: " : "",
			       p->missing[0] ? p->missing : p->what, "");
	}
	free(pairs);
	return rc;
}

int cli_bench_make_pairs(const cli_delta_run *run, const char *dir)
{
	bench_pair *pairs = calloc(BENCH_PAIRS_MAX, sizeof(*pairs));
	size_t n = 0;
	int rc = pairs ? bench_pairs_list(run->sets, pairs, BENCH_PAIRS_MAX, &n)
	               : pq_err_set(PQ_ERR_NOMEM, "pairs");
	if (rc == PQ_OK)
		rc = check_names(run, pairs, n);
	for (size_t i = 0; rc == PQ_OK && i < n; i++) {
		bench_pair *p = &pairs[i];
		if (!wanted(run, p->name))
			continue;
		if (!p->synthetic)
			rc = pq_err_set(PQ_ERR_INVAL, "%s is not a synthetic pair", p->name);
		else
			rc = bench_pair_prepare(p, dir);
		if (rc == PQ_OK)
			printf("%s %s  (%s)\n", p->old_path, p->new_path, p->what);
	}
	free(pairs);
	return rc;
}
