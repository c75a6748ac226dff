/* targets.c: issue 13's targets for pqota's delta on one pair, from the measured results of
 * every tool on it: size against the best of the others (10 % below it on code), encode
 * speed against bsdiff, the 1 GB encode time and the apply memory. */
#include "bench/bench.h"

#include <stdarg.h>
#include <stdio.h>

#define MB            1000000ull
#define SPEEDUP_MIN   10.0 /* encode >= 10x faster than bsdiff */
#define SPEED_MIN_IMG MB   /* ... on images of at least 1 MB */
#define GB_IMG        (1000 * MB)
#define GB_SECS       60.0

static const char *const target_names[BENCH_TGT_COUNT] = {"size<=best", "code:-10%", "10x bsdiff",
                                                          "1GB<60s", "apply mem"};

const char *bench_target_name(bench_target t)
{
	return (unsigned)t < BENCH_TGT_COUNT ? target_names[t] : "?";
}

static bool ok(const bench_delta_result *r)
{
	return r->ran && r->rc == PQ_OK;
}

static void set(bench_targets *t, bench_target k, bench_verdict v, const char *fmt, ...)
    PQ_PRINTF(4, 5);

static void set(bench_targets *t, bench_target k, bench_verdict v, const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	t->v[k] = v;
	vsnprintf(t->why[k], sizeof(t->why[k]), fmt, ap);
	va_end(ap);
}

static void size_targets(bench_class cls, const bench_delta_result *res, bench_targets *t)
{
	const bench_delta_result *p = &res[BENCH_TOOL_PQOTA];
	bool code = cls == BENCH_CLASS_CODE || cls == BENCH_CLASS_CODE_PACKED;
	if (t->best < 0) {
		set(t, BENCH_TGT_SIZE, BENCH_NA, "no other tool ran");
		set(t, BENCH_TGT_CODE10, BENCH_NA, "no other tool ran");
		return;
	}
	double best = (double)res[t->best].size, r = (double)p->size / best;
	set(t, BENCH_TGT_SIZE, r <= 1.0 ? BENCH_MET : BENCH_NOT_MET, "%.3fx the best (%.0f B)", r,
	    best);
	if (!code)
		set(t, BENCH_TGT_CODE10, BENCH_NA, "not code");
	else
		set(t, BENCH_TGT_CODE10, r <= 0.9 ? BENCH_MET : BENCH_NOT_MET,
		    "%.1f%% smaller than the best (%.0f B)", 100.0 * (1.0 - r), best);
}

static void speed_targets(uint64_t new_size, const bench_delta_result *res, bench_targets *t)
{
	const bench_delta_result *p = &res[BENCH_TOOL_PQOTA], *b = &res[BENCH_TOOL_BSDIFF];
	if (new_size < SPEED_MIN_IMG)
		set(t, BENCH_TGT_SPEED10X, BENCH_NA, "image < 1 MB");
	else if (!ok(b))
		set(t, BENCH_TGT_SPEED10X, BENCH_NA, "no bsdiff figure");
	else {
		double x = p->create_s > 0 ? b->create_s / p->create_s : 0;
		set(t, BENCH_TGT_SPEED10X, x >= SPEEDUP_MIN ? BENCH_MET : BENCH_NOT_MET,
		    "%.1fx faster than bsdiff (%.2f s)", x, b->create_s);
	}
	if (new_size < GB_IMG)
		set(t, BENCH_TGT_1G60S, BENCH_NA, "image < 1 GB");
	else
		set(t, BENCH_TGT_1G60S, p->create_s < GB_SECS ? BENCH_MET : BENCH_NOT_MET,
		    "encode %.1f s (limit %.0f s)", p->create_s, GB_SECS);
}

void bench_targets_eval(bench_class cls, uint64_t new_size, const bench_delta_result *res,
                        long apply_limit_kib, bench_targets *out)
{
	const bench_delta_result *p = &res[BENCH_TOOL_PQOTA];
	*out = (bench_targets){.best = -1};
	for (int i = BENCH_TOOL_PQOTA + 1; i < BENCH_TOOL_COUNT; i++)
		if (ok(&res[i]) && (out->best < 0 || res[i].size < res[out->best].size))
			out->best = i;
	if (!ok(p)) {
		for (int k = 0; k < BENCH_TGT_COUNT; k++)
			set(out, (bench_target)k, BENCH_NOT_MET, "pqota failed");
		return;
	}
	size_targets(cls, res, out);
	speed_targets(new_size, res, out);
	set(out, BENCH_TGT_APPLYMEM, p->apply_rss <= apply_limit_kib ? BENCH_MET : BENCH_NOT_MET,
	    "%.1f MiB (limit %.0f MiB)", (double)p->apply_rss / 1024.0,
	    (double)apply_limit_kib / 1024.0);
}
