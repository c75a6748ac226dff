/* delta_sa.c: bsdiff's alignment for small images (delta_enc.c tries it on a target that fits
 * one segment, next to its other plans): a suffix array of the base (libdivsufsort) gives,
 * at every target offset, the longest match in the base; runs along one alignment, where
 * most bytes agree, become approximate matches (adds) and the rest literals. This follows
 * the algorithm of Colin Percival's "Naive differences of executable code" (2003): code that
 * moved keeps its alignment although the addresses inside it changed, so the differences
 * are mostly zeros and a few repeated values, which the literal coder shrinks well. */
#include "pkg/delta.h"

#include <divsufsort.h>
#include <stdlib.h>
#include <string.h>

/* The search state: the base, its suffix array, the target. */
typedef struct {
	const uint8_t *o, *n;
	int64_t on, nn;
	const saidx_t *sa;
} sa_ctx;

static int64_t common(const uint8_t *a, int64_t an, const uint8_t *b, int64_t bn)
{
	int64_t i = 0;
	while (i < an && i < bn && a[i] == b[i])
		i++;
	return i;
}

/* The longest match of n[at..] in the base: its length, its base offset in *pos. */
static int64_t longest(const sa_ctx *c, int64_t at, int64_t *pos)
{
	const uint8_t *p = c->n + at;
	int64_t pn = c->nn - at, lo = 0, hi = c->on - 1;
	while (hi - lo >= 2) {
		int64_t mid = lo + (hi - lo) / 2, sn = c->on - c->sa[mid];
		int r = memcmp(c->o + c->sa[mid], p, (size_t)(sn < pn ? sn : pn));
		if (r < 0 || (r == 0 && sn < pn))
			lo = mid;
		else
			hi = mid;
	}
	int64_t x = common(c->o + c->sa[lo], c->on - c->sa[lo], p, pn);
	int64_t y = hi < c->on ? common(c->o + c->sa[hi], c->on - c->sa[hi], p, pn) : 0;
	*pos = x >= y ? c->sa[lo] : c->sa[hi];
	return x >= y ? x : y;
}

static bool eq_at(const sa_ctx *c, int64_t t, int64_t b)
{
	return b >= 0 && b < c->on && t < c->nn && c->o[b] == c->n[t];
}

/* How far the previous alignment (target last_t, base last_b) reaches forward into
 * [last_t, scan): the length maximising twice the equal bytes minus the length. */
static int64_t reach_fwd(const sa_ctx *c, int64_t last_t, int64_t last_b, int64_t scan)
{
	int64_t s = 0, best = 0, len = 0;
	for (int64_t i = 0; last_t + i < scan && last_b + i < c->on;) {
		s += eq_at(c, last_t + i, last_b + i);
		i++;
		if (2 * s - i > 2 * best - len) {
			best = s;
			len = i;
		}
	}
	return len;
}

/* How far the new alignment (target scan, base pos) reaches back into [last_t, scan). */
static int64_t reach_back(const sa_ctx *c, int64_t last_t, int64_t scan, int64_t pos)
{
	int64_t s = 0, best = 0, len = 0;
	for (int64_t i = 1; scan - i >= last_t && pos - i >= 0; i++) {
		s += eq_at(c, scan - i, pos - i);
		if (2 * s - i > 2 * best - len) {
			best = s;
			len = i;
		}
	}
	return len;
}

/* Where two reaches overlap, the split that keeps the most equal bytes. */
static void split_overlap(const sa_ctx *c, int64_t last_t, int64_t last_b, int64_t scan,
                          int64_t pos, int64_t *lenf, int64_t *lenb)
{
	int64_t over = last_t + *lenf - (scan - *lenb);
	if (over <= 0)
		return;
	int64_t s = 0, best = 0, keep = 0;
	for (int64_t i = 0; i < over; i++) {
		s += eq_at(c, last_t + *lenf - over + i, last_b + *lenf - over + i);
		s -= eq_at(c, scan - *lenb + i, pos - *lenb + i);
		if (s > best) {
			best = s;
			keep = i + 1;
		}
	}
	*lenf += keep - over;
	*lenb -= keep;
}

/* Scans forward from *scan (after a match of *len) to the next offset where a new alignment
 * beats the current one (last_off: base minus target of the current one) by 8 bytes; *pos
 * gets its base offset; the return value is how many of the bytes it covers the current
 * alignment has right. */
static int64_t next_alignment(const sa_ctx *c, int64_t *scan, int64_t *len, int64_t *pos,
                              int64_t last_off)
{
	int64_t old_score = 0, sc = *scan += *len;
	for (; *scan < c->nn; (*scan)++) {
		*len = longest(c, *scan, pos);
		for (; sc < *scan + *len; sc++)
			old_score += eq_at(c, sc, sc + last_off);
		if ((*len == old_score && *len != 0) || *len > old_score + 8)
			break;
		old_score -= eq_at(c, *scan, *scan + last_off);
	}
	return old_score;
}

int pkg__d2_sa_plan(const uint8_t *base, uint64_t base_len, const uint8_t *target,
                    uint64_t target_len, pkg__d2_sa_fn fn, void *user)
{
	if (base_len > PKG__D2_SA_MAX || target_len > PKG__D2_SA_MAX)
		return pq_err_set(PQ_ERR_RANGE, "too large for the suffix-array plan");
	saidx_t *sa = malloc((base_len + 1) * sizeof(*sa));
	if (!sa)
		return pq_err_set(PQ_ERR_NOMEM, "suffix array");
	if (base_len && divsufsort(base, sa, (saidx_t)base_len) != 0) {
		free(sa);
		return pq_err_set(PQ_ERR_NOMEM, "suffix array");
	}
	sa_ctx c = {
	    .o = base, .n = target, .on = (int64_t)base_len, .nn = (int64_t)target_len, .sa = sa};
	int64_t scan = 0, len = 0, pos = 0, last_t = 0, last_b = 0, last_off = 0;
	while (base_len && scan < c.nn) {
		int64_t old_score = next_alignment(&c, &scan, &len, &pos, last_off);
		if (len == old_score && scan != c.nn)
			continue; /* the current alignment covers it as well */
		int64_t lenf = reach_fwd(&c, last_t, last_b, scan);
		int64_t lenb = scan < c.nn ? reach_back(&c, last_t, scan, pos) : 0;
		split_overlap(&c, last_t, last_b, scan, pos, &lenf, &lenb);
		if (lenf > 0)
			fn(user, PKG__D2_OP_ADD, (uint64_t)last_t, (uint64_t)(last_t + lenf),
			   (uint64_t)last_b);
		if (scan - lenb > last_t + lenf)
			fn(user, PKG__D2_OP_LIT, (uint64_t)(last_t + lenf), (uint64_t)(scan - lenb),
			   0);
		last_t = scan - lenb;
		last_b = pos - lenb;
		last_off = pos - scan;
	}
	if (!base_len && target_len)
		fn(user, PKG__D2_OP_LIT, 0, target_len, 0);
	free(sa);
	return PQ_OK;
}
