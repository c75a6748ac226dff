/* delta_fmt.c: the pieces of the version-2 delta format (docs/package-format.md 5.3): the
 * descriptor, varints and the segment table, with every bound a reader needs. */
#include "pkg/delta.h"

#include <stdlib.h>
#include <string.h>

/* ---- descriptor ---------------------------------------------------------------------------- */

void pkg__d2_desc_encode(uint8_t out[PKG__D2_DESC_LEN], const pkg__delta_desc *d)
{
	memset(out, 0, PKG__D2_DESC_LEN);
	/* NOLINTNEXTLINE(bugprone-not-null-terminated-result): 4 magic bytes, no string */
	memcpy(out, PKG_DELTA_MAGIC, 4);
	pkg__put32(out + 4, d->version);
	pkg__put64(out + 8, d->base_size);
	memcpy(out + 16, d->base_sha, 32);
	pkg__put64(out + 48, d->target_size);
	memcpy(out + 56, d->target_sha, 32);
	pkg__put32(out + 88, d->segments);
	pkg__put32(out + 92, d->table_len);
	pkg__put64(out + 96, d->table_off);
	pkg__put64(out + 104, d->apply_memory);
}

int pkg__d2_desc_decode(const uint8_t in[PKG__D2_DESC_LEN], pkg__delta_desc *d)
{
	memset(d, 0, sizeof(*d));
	uint32_t version = pkg__get32(in + 4);
	if (memcmp(in, PKG_DELTA_MAGIC, 4) != 0 ||
	    (version != PKG__D2_VERSION && version != PKG__D3_VERSION))
		return pq_err_set(PQ_ERR_FORMAT, "not a version-2 or -3 delta descriptor");
	for (int i = 112; i < PKG__D2_DESC_LEN; i++)
		if (in[i])
			return pq_err_set(PQ_ERR_FORMAT, "delta descriptor: reserved bytes set");
	d->version = version;
	d->base_size = pkg__get64(in + 8);
	memcpy(d->base_sha, in + 16, 32);
	d->target_size = pkg__get64(in + 48);
	memcpy(d->target_sha, in + 56, 32);
	d->segments = pkg__get32(in + 88);
	d->table_len = pkg__get32(in + 92);
	d->table_off = pkg__get64(in + 96);
	d->apply_memory = pkg__get64(in + 104);
	if (d->base_size > PKG__D2_IMAGE_MAX || d->target_size > PKG__D2_IMAGE_MAX)
		return pq_err_set(PQ_ERR_FORMAT, "delta: base or target over %llu bytes",
		                  (unsigned long long)PKG__D2_IMAGE_MAX);
	if (d->segments > PKG__D2_SEGS_MAX || d->table_len > PKG__D2_TABLE_MAX ||
	    d->table_off < PKG__D2_DESC_LEN)
		return pq_err_set(PQ_ERR_FORMAT, "delta: segment table out of bounds");
	if ((d->segments == 0) != (d->target_size == 0))
		return pq_err_set(PQ_ERR_FORMAT, "delta: %u segments for %llu target bytes",
		                  d->segments, (unsigned long long)d->target_size);
	return PQ_OK;
}

/* ---- varints ----------------------------------------------------------------------- */

void pkg__varint_put(pq_buf *b, uint64_t v)
{
	uint8_t t[10];
	size_t n = 0;
	while (v >= 0x80) {
		t[n++] = (uint8_t)(v | 0x80);
		v >>= 7;
	}
	t[n++] = (uint8_t)v;
	pq_buf_add(b, t, n);
}

bool pkg__varint_get(const uint8_t *p, size_t len, size_t *pos, uint64_t *v)
{
	uint64_t r = 0;
	for (unsigned shift = 0; shift < 64; shift += 7) {
		if (*pos >= len)
			return false;
		uint8_t c = p[(*pos)++];
		if (shift == 63 && c > 1)
			return false;
		r |= (uint64_t)(c & 0x7f) << shift;
		if (!(c & 0x80)) {
			*v = r;
			return true;
		}
	}
	return false;
}

/* ---- the segment table ------------------------------------------------------------------------
 */

void pkg__d2_seg_encode(pq_buf *b, const pkg__d2_seg *s)
{
	pkg__varint_put(b, s->target_len);
	pkg__varint_put(b, s->flags);
	pkg__varint_put(b, s->ops_len);
	if (s->flags & PKG__D2_OPS_ZSTD)
		pkg__varint_put(b, s->ops_size);
	if (pkg__d2_lit_codec(s) != PKG__D2_LIT_NONE) {
		pkg__varint_put(b, s->lit_len);
		pkg__varint_put(b, s->lit_size);
	}
	pkg__varint_put(b, s->n_ext);
	for (uint32_t i = 0; i < s->n_ext; i++) {
		pkg__varint_put(b, s->ext[i].off);
		pkg__varint_put(b, s->ext[i].len);
	}
	pq_buf_add(b, s->hash, PKG__D2_HASH_LEN);
}

uint64_t pkg__d2_seg_memory(const pkg__d2_seg *s)
{
	uint64_t win = 0;
	for (uint32_t i = 0; i < s->n_ext; i++)
		win += s->ext[i].len;
	uint64_t m = win + s->lit_len + s->lit_size + s->ops_len + s->ops_size;
	if (pkg__d2_lit_codec(s) == PKG__D2_LIT_LZMA2)
		m += win + s->lit_len + (64u << 10); /* its dictionary and state */
	return m;
}

/* Reads the fields of one segment at *pos and checks each against its bound. */
static int seg_decode(const uint8_t *t, size_t len, size_t *pos, const pkg__delta_desc *d,
                      pkg__d2_seg *s)
{
	uint64_t n_ext = 0, win = 0, flags = 0;
	bool ok = pkg__varint_get(t, len, pos, &s->target_len) &&
	          pkg__varint_get(t, len, pos, &flags) && flags <= PKG__D2_FLAGS_KNOWN &&
	          pkg__varint_get(t, len, pos, &s->ops_len);
	s->flags = (uint32_t)flags;
	s->ops_size = s->ops_len;
	if (ok && (s->flags & PKG__D2_OPS_ZSTD))
		ok = pkg__varint_get(t, len, pos, &s->ops_size);
	if (ok && pkg__d2_lit_codec(s) != PKG__D2_LIT_NONE)
		ok = pkg__varint_get(t, len, pos, &s->lit_len) &&
		     pkg__varint_get(t, len, pos, &s->lit_size);
	if (!ok || !pkg__varint_get(t, len, pos, &n_ext))
		return pq_err_set(PQ_ERR_FORMAT, "delta: segment table cut short or unknown flags");
	if (s->target_len == 0 || s->target_len > PKG__D2_SEG_MAX || s->lit_len > s->target_len ||
	    s->lit_len > PKG__D2_LIT_MAX || s->ops_len == 0 || s->ops_len > PKG__D2_OPS_MAX ||
	    s->ops_size == 0 || s->ops_size > PKG__D2_OPS_MAX || s->lit_size > PKG__D2_LIT_MAX ||
	    (pkg__d2_lit_codec(s) == PKG__D2_LIT_RAW && s->lit_size != s->lit_len) ||
	    (pkg__d2_lit_codec(s) != PKG__D2_LIT_NONE && (s->lit_len == 0 || s->lit_size == 0)) ||
	    n_ext > PKG__D2_EXT_MAX ||
	    (n_ext &&
	     (pkg__d2_lit_codec(s) == PKG__D2_LIT_NONE || pkg__d2_lit_codec(s) == PKG__D2_LIT_RAW)))
		return pq_err_set(PQ_ERR_FORMAT, "delta: a segment's sizes are out of bounds");
	s->n_ext = (uint32_t)n_ext;
	for (uint32_t i = 0; i < s->n_ext; i++) {
		pkg__d2_ext *x = &s->ext[i];
		if (!pkg__varint_get(t, len, pos, &x->off) ||
		    !pkg__varint_get(t, len, pos, &x->len))
			return pq_err_set(PQ_ERR_FORMAT, "delta: segment table cut short");
		if (x->len == 0 || x->off > d->base_size || x->len > d->base_size - x->off)
			return pq_err_set(PQ_ERR_FORMAT, "delta: a window range outside the base");
		win += x->len;
		if (win > PKG__D2_WINDOW_MAX)
			return pq_err_set(PQ_ERR_FORMAT, "delta: a segment's window is too large");
	}
	if (len - *pos < PKG__D2_HASH_LEN)
		return pq_err_set(PQ_ERR_FORMAT, "delta: segment table cut short");
	memcpy(s->hash, t + *pos, PKG__D2_HASH_LEN);
	*pos += PKG__D2_HASH_LEN;
	return PQ_OK;
}

int pkg__d2_table_decode(const uint8_t *t, size_t len, const pkg__delta_desc *d, pkg__d2_seg **segs)
{
	pkg__d2_seg *s = calloc(d->segments ? d->segments : 1, sizeof(*s));
	uint64_t data = PKG__D2_DESC_LEN, target = 0;
	size_t pos = 0;
	int rc = PQ_OK;
	*segs = NULL;
	if (!s)
		return pq_err_set(PQ_ERR_NOMEM, "delta segment table");
	for (uint32_t i = 0; rc == PQ_OK && i < d->segments; i++) {
		rc = seg_decode(t, len, &pos, d, &s[i]);
		if (rc != PQ_OK)
			break;
		s[i].data_off = data;
		s[i].target_off = target;
		data += s[i].ops_size + s[i].lit_size;
		target += s[i].target_len;
		if (data > d->table_off || target > d->target_size)
			rc = pq_err_set(PQ_ERR_FORMAT, "delta: segments run past their data");
	}
	if (rc == PQ_OK && (pos != len || data != d->table_off || target != d->target_size))
		rc = pq_err_set(PQ_ERR_FORMAT,
		                "delta: the segment table does not add up to the descriptor");
	if (rc != PQ_OK) {
		free(s);
		return rc;
	}
	*segs = s;
	return PQ_OK;
}
