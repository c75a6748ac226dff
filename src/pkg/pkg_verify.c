/* pkg_verify.c: deep verification of a package file in one sequential pass: every index
 * SHA-256, every payload CRC, every (non-delta) leaf decoded to its announced size. */
#include "pkg/pkg_int.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "pkg/codec.h"

typedef struct {
	const pkg_entry *e;
	pq_hash_ctx *sha; /* over the whole package (children only) */
	uint32_t crc;     /* over the payload */
	bool decode;      /* a leaf that can be decoded (not a delta) */
	pkg_dec *dec;     /* its decoder, alive only while the leaf streams by */
	uint64_t skip;    /* payload bytes not decoded (delta descriptor) */
} verify_slot;

struct verify_state {
	verify_slot *slots;
	size_t n;
	pkg_verify_report *rep;
	int failed_at; /* slot index of the first failure, -1 */
};

static const char *slot_label(const verify_slot *s)
{
	return s->e->path[0] ? s->e->path : "root";
}

static int verify_fail(struct verify_state *vs, size_t i, int rc)
{
	if (vs->failed_at < 0) {
		vs->failed_at = (int)i;
		snprintf(vs->rep->failed_path, sizeof(vs->rep->failed_path), "%s",
		         vs->slots[i].e->path[0] ? vs->slots[i].e->path : "(root)");
	}
	return rc;
}

/* Feeds bytes [from, to) of the file (at p) to slot s, whose package spans [a, b). */
static int verify_slot_feed(verify_slot *s, const uint8_t *p, uint64_t from, uint64_t to)
{
	uint64_t a = s->e->offset, b = s->e->offset + s->e->size;
	size_t n = (size_t)(to - from);
	int rc = PQ_OK;
	/* one decoder at a time: created as the leaf starts, freed as it ends */
	if (s->decode && !s->dec && from == a)
		rc = pkg_dec_new(s->e->hdr.compression, s->e->hdr.uncompressed_size, NULL, 0,
		                 &s->dec);
	if (rc == PQ_OK && s->sha)
		rc = pq_hash_update(s->sha, p, n);
	/* payload part */
	uint64_t ps = a + SWPG_HDR_LEN;
	if (rc == PQ_OK && to > ps) {
		uint64_t pf = from > ps ? from : ps;
		const uint8_t *pp = p + (pf - from);
		size_t pn = (size_t)(to - pf);
		s->crc = pq_crc32(s->crc, pp, pn);
		uint64_t rel = pf - ps;
		if (s->dec && rel + pn > s->skip) {
			size_t cut = rel < s->skip ? (size_t)(s->skip - rel) : 0;
			rc = pkg_dec_feed(s->dec, pp + cut, pn - cut, NULL, NULL);
		}
	}
	if (rc == PQ_OK && s->dec && to == b) {
		rc = pkg_dec_finish(s->dec);
		pkg_dec_free(s->dec);
		s->dec = NULL;
		s->decode = false;
	}
	return rc;
}

static int verify_fn(const uint8_t *data, size_t len, uint64_t pos, void *user)
{
	struct verify_state *vs = user;
	uint64_t end = pos + len;
	/* entries are few and sorted by offset; each block touches the chain root..leaf */
	for (size_t i = 0; i < vs->n; i++) {
		verify_slot *s = &vs->slots[i];
		uint64_t a = s->e->offset, b = s->e->offset + s->e->size;
		if (b <= pos || a >= end)
			continue;
		uint64_t from = a > pos ? a : pos, to = b < end ? b : end;
		int rc = verify_slot_feed(s, data + (from - pos), from, to);
		if (rc != PQ_OK)
			return verify_fail(vs, i, pq_err_wrap(rc, "%s", slot_label(s)));
	}
	return PQ_OK;
}

/* One slot per entry: a hash for children, a decoder to come for non-delta leaves, the
 * descriptor checked for deltas (the base is not at hand). */
static int verify_setup(pkg_reader *r, struct verify_state *vs, const pkg_entry *all)
{
	int rc = PQ_OK;
	for (size_t i = 0; rc == PQ_OK && i < vs->n; i++) {
		verify_slot *s = &vs->slots[i];
		s->e = &all[i];
		if (all[i].has_sha256)
			rc = pq_hash_new(PQ_HASH_SHA256, &s->sha);
		if (rc != PQ_OK || swpg_is_container(all[i].hdr.software_type))
			continue;
		vs->rep->leaves++;
		if (all[i].hdr.compression == SWPG_COMP_DELTA) {
			pkg__delta_desc d;
			rc = pkg__read_delta_desc(r, &all[i], &d);
		} else {
			s->decode = true;
		}
		if (rc != PQ_OK)
			verify_fail(vs, i, rc);
	}
	return rc;
}

/* After the pass: each slot's CRC, hash and decoder end. */
static int verify_results(struct verify_state *vs)
{
	for (size_t i = 0; i < vs->n; i++) {
		verify_slot *s = &vs->slots[i];
		const char *what = slot_label(s);
		int rc;
		if (s->crc != s->e->hdr.crc32)
			return verify_fail(vs, i,
			                   pq_err_set(PQ_ERR_VERIFY,
			                              "%s: payload CRC-32 %08x, header says %08x",
			                              what, s->crc, s->e->hdr.crc32));
		if (s->sha) {
			uint8_t sha[32];
			rc = pq_hash_final(s->sha, sha);
			if (rc != PQ_OK)
				return rc;
			if (pq_memeq_ct(sha, s->e->sha256, 32) != 0)
				return verify_fail(
				    vs, i,
				    pq_err_set(PQ_ERR_VERIFY,
				               "%s: SHA-256 does not match its index entry", what));
		}
		if (s->dec) {
			rc = pkg_dec_finish(s->dec);
			if (rc != PQ_OK)
				return verify_fail(vs, i, pq_err_wrap(rc, "%s", what));
		}
	}
	return PQ_OK;
}

int pkg_verify(pkg_reader *r, pkg_verify_report *rep, const pkg_progress *p)
{
	const pkg_entry *all;
	size_t n;
	struct verify_state vs = {.rep = rep, .failed_at = -1};
	int rc;

	memset(rep, 0, sizeof(*rep));
	rc = pkg_list(r, &all, &n);
	if (rc != PQ_OK) {
		snprintf(rep->failed_path, sizeof(rep->failed_path), "(layout)");
		return rc;
	}
	vs.slots = calloc(n, sizeof(*vs.slots));
	if (!vs.slots)
		return pq_err_set(PQ_ERR_NOMEM, "verification state");
	vs.n = n;
	rc = verify_setup(r, &vs, all);
	rep->packages = n;
	if (rc == PQ_OK)
		rc = pkg__read_range(r, 0, r->size, verify_fn, &vs, p);
	if (rc == PQ_OK)
		rc = verify_results(&vs);
	if (rc == PQ_OK)
		rep->bytes_checked = r->size;
	for (size_t i = 0; i < n; i++) {
		pq_hash_free(vs.slots[i].sha);
		pkg_dec_free(vs.slots[i].dec);
	}
	free(vs.slots);
	return rc;
}
