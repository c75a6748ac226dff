/* codec.c: zlib and zstd streaming (de)compression behind one incremental interface. */
#include "pkg/codec.h"

#include <stdlib.h>
#include <string.h>

#include <zlib.h>
#include <zstd.h>

#include "pkg/swpg.h"

struct pkg_enc {
	uint8_t comp;
	z_stream z;
	bool z_init;
	ZSTD_CCtx *zc;
	uint8_t *buf;
};

struct pkg_dec {
	uint8_t comp;
	uint64_t expect, produced;
	z_stream z;
	bool z_init;
	bool ended; /* the compressed stream reached its end marker */
	ZSTD_DCtx *zd;
	uint8_t *buf;
};

/* zstd window for a delta: large enough to reach back over the whole base. */
static int delta_window_log(uint64_t base, uint64_t target)
{
	uint64_t need = base + target;
	int log = 10;
	while (log < 31 && (1ull << log) < need)
		log++;
	return log;
}

int pkg_enc_new(uint8_t comp, int level, uint64_t pledged, const void *prefix, size_t prefix_len,
                pkg_enc **out)
{
	pkg_enc *e = calloc(1, sizeof(*e));
	size_t r;
	*out = NULL;
	if (!e)
		return pq_err_set(PQ_ERR_NOMEM, "encoder");
	e->comp = comp;
	e->buf = malloc(PKG_CODEC_BUF);
	if (!e->buf)
		goto nomem;
	switch (comp) {
	case SWPG_COMP_NONE:
		break;
	case SWPG_COMP_ZLIB:
		if (level < 0 || level > 9) {
			pkg_enc_free(e);
			return pq_err_set(PQ_ERR_INVAL, "zlib level %d outside 1..9 (0: default)",
			                  level);
		}
		if (deflateInit(&e->z, level ? level : PKG_ZLIB_LEVEL_DEFAULT) != Z_OK)
			goto nomem;
		e->z_init = true;
		break;
	case SWPG_COMP_ZSTD:
	case SWPG_COMP_DELTA:
		if (level < 0 || level > 19) {
			pkg_enc_free(e);
			return pq_err_set(PQ_ERR_INVAL, "zstd level %d outside 1..19 (0: default)",
			                  level);
		}
		e->zc = ZSTD_createCCtx();
		if (!e->zc)
			goto nomem;
		r = ZSTD_CCtx_setParameter(e->zc, ZSTD_c_compressionLevel,
		                           level ? level : PKG_ZSTD_LEVEL_DEFAULT);
		if (!ZSTD_isError(r))
			r = ZSTD_CCtx_setParameter(e->zc, ZSTD_c_checksumFlag, 1);
		if (!ZSTD_isError(r))
			r = ZSTD_CCtx_setPledgedSrcSize(e->zc, pledged);
		if (!ZSTD_isError(r) && comp == SWPG_COMP_DELTA) {
			r = ZSTD_CCtx_setParameter(e->zc, ZSTD_c_windowLog,
			                           delta_window_log(prefix_len, pledged));
			if (!ZSTD_isError(r))
				r = ZSTD_CCtx_setParameter(e->zc, ZSTD_c_enableLongDistanceMatching,
				                           1);
			if (!ZSTD_isError(r))
				r = ZSTD_CCtx_refPrefix(e->zc, prefix, prefix_len);
		}
		if (ZSTD_isError(r)) {
			int rc = pq_err_set(PQ_ERR_INVAL, "zstd setup: %s", ZSTD_getErrorName(r));
			pkg_enc_free(e);
			return rc;
		}
		break;
	default:
		pkg_enc_free(e);
		return pq_err_set(PQ_ERR_INVAL, "unknown compression %u", comp);
	}
	*out = e;
	return PQ_OK;
nomem:
	pkg_enc_free(e);
	return pq_err_set(PQ_ERR_NOMEM, "encoder state");
}

int pkg_enc_feed(pkg_enc *e, const uint8_t *in, size_t len, bool end, pkg_sink_fn sink, void *user)
{
	int rc;
	if (e->comp == SWPG_COMP_NONE)
		return len ? sink(in, len, user) : PQ_OK;
	if (e->comp == SWPG_COMP_ZLIB) {
		e->z.next_in = (Bytef *)in;
		e->z.avail_in = (uInt)len;
		for (;;) {
			e->z.next_out = e->buf;
			e->z.avail_out = PKG_CODEC_BUF;
			int zr = deflate(&e->z, end ? Z_FINISH : Z_NO_FLUSH);
			if (zr == Z_STREAM_ERROR)
				return pq_err_set(PQ_ERR_INVAL, "zlib compression failed");
			size_t n = PKG_CODEC_BUF - e->z.avail_out;
			if (n && (rc = sink(e->buf, n, user)) != PQ_OK)
				return rc;
			if (end ? zr == Z_STREAM_END : e->z.avail_in == 0 && e->z.avail_out != 0)
				return PQ_OK;
		}
	}
	ZSTD_inBuffer ib = {in, len, 0};
	for (;;) {
		ZSTD_outBuffer ob = {e->buf, PKG_CODEC_BUF, 0};
		size_t left =
		    ZSTD_compressStream2(e->zc, &ob, &ib, end ? ZSTD_e_end : ZSTD_e_continue);
		if (ZSTD_isError(left))
			return pq_err_set(PQ_ERR_INVAL, "zstd compression: %s",
			                  ZSTD_getErrorName(left));
		if (ob.pos && (rc = sink(e->buf, ob.pos, user)) != PQ_OK)
			return rc;
		if (end ? left == 0 : ib.pos == ib.size)
			return PQ_OK;
	}
}

void pkg_enc_free(pkg_enc *e)
{
	if (!e)
		return;
	if (e->z_init)
		deflateEnd(&e->z);
	ZSTD_freeCCtx(e->zc);
	free(e->buf);
	free(e);
}

int pkg_dec_new(uint8_t comp, uint64_t expect_out, const void *prefix, size_t prefix_len,
                pkg_dec **out)
{
	pkg_dec *d = calloc(1, sizeof(*d));
	size_t r = 0;
	*out = NULL;
	if (!d)
		return pq_err_set(PQ_ERR_NOMEM, "decoder");
	d->comp = comp;
	d->expect = expect_out;
	d->buf = malloc(PKG_CODEC_BUF);
	if (!d->buf)
		goto nomem;
	switch (comp) {
	case SWPG_COMP_NONE:
		break;
	case SWPG_COMP_ZLIB:
		if (inflateInit(&d->z) != Z_OK)
			goto nomem;
		d->z_init = true;
		break;
	case SWPG_COMP_ZSTD:
	case SWPG_COMP_DELTA:
		d->zd = ZSTD_createDCtx();
		if (!d->zd)
			goto nomem;
		r = ZSTD_DCtx_setParameter(d->zd, ZSTD_d_windowLogMax,
		                           comp == SWPG_COMP_DELTA
		                               ? delta_window_log(prefix_len, expect_out)
		                               : PKG_ZSTD_WINDOW_LOG_MAX);
		if (!ZSTD_isError(r) && comp == SWPG_COMP_DELTA)
			r = ZSTD_DCtx_refPrefix(d->zd, prefix, prefix_len);
		if (ZSTD_isError(r)) {
			int rc = pq_err_set(PQ_ERR_INVAL, "zstd setup: %s", ZSTD_getErrorName(r));
			pkg_dec_free(d);
			return rc;
		}
		break;
	default:
		pkg_dec_free(d);
		return pq_err_set(PQ_ERR_FORMAT, "unknown compression %u", comp);
	}
	*out = d;
	return PQ_OK;
nomem:
	pkg_dec_free(d);
	return pq_err_set(PQ_ERR_NOMEM, "decoder state");
}

static int emit(pkg_dec *d, const uint8_t *p, size_t n, pkg_sink_fn sink, void *user)
{
	if (n > d->expect - d->produced)
		return pq_err_set(PQ_ERR_FORMAT,
		                  "payload decodes to more than the announced %llu bytes",
		                  (unsigned long long)d->expect);
	d->produced += n;
	return sink && n ? sink(p, n, user) : PQ_OK;
}

int pkg_dec_feed(pkg_dec *d, const uint8_t *in, size_t len, pkg_sink_fn sink, void *user)
{
	int rc;
	if (d->comp == SWPG_COMP_NONE)
		return emit(d, in, len, sink, user);
	if (len && d->ended)
		return pq_err_set(PQ_ERR_FORMAT, "data after the end of the compressed stream");
	if (d->comp == SWPG_COMP_ZLIB) {
		d->z.next_in = (Bytef *)in;
		d->z.avail_in = (uInt)len;
		/* loops while input remains or the output buffer filled up (more may be pending) */
		do {
			d->z.next_out = d->buf;
			d->z.avail_out = PKG_CODEC_BUF;
			int zr = inflate(&d->z, Z_NO_FLUSH);
			if (zr != Z_OK && zr != Z_STREAM_END && zr != Z_BUF_ERROR)
				return pq_err_set(PQ_ERR_FORMAT, "zlib: %s",
				                  d->z.msg ? d->z.msg : "corrupt stream");
			rc = emit(d, d->buf, PKG_CODEC_BUF - d->z.avail_out, sink, user);
			if (rc != PQ_OK)
				return rc;
			if (zr == Z_STREAM_END) {
				d->ended = true;
				if (d->z.avail_in)
					return pq_err_set(PQ_ERR_FORMAT,
					                  "data after the end of the zlib stream");
				break;
			}
			if (zr == Z_BUF_ERROR)
				break; /* no progress possible: needs more input */
		} while (d->z.avail_in > 0 || d->z.avail_out == 0);
		return PQ_OK;
	}
	ZSTD_inBuffer ib = {in, len, 0};
	while (ib.pos < ib.size) {
		ZSTD_outBuffer ob = {d->buf, PKG_CODEC_BUF, 0};
		size_t r = ZSTD_decompressStream(d->zd, &ob, &ib);
		if (ZSTD_isError(r))
			return pq_err_set(PQ_ERR_FORMAT, "zstd: %s", ZSTD_getErrorName(r));
		rc = emit(d, d->buf, ob.pos, sink, user);
		if (rc != PQ_OK)
			return rc;
		if (r == 0) {
			d->ended = true;
			if (ib.pos < ib.size)
				return pq_err_set(PQ_ERR_FORMAT,
				                  "data after the end of the zstd frame");
		}
	}
	/* flush output the decoder still holds */
	while (!d->ended) {
		ZSTD_outBuffer ob = {d->buf, PKG_CODEC_BUF, 0};
		size_t r = ZSTD_decompressStream(d->zd, &ob, &ib);
		if (ZSTD_isError(r))
			return pq_err_set(PQ_ERR_FORMAT, "zstd: %s", ZSTD_getErrorName(r));
		rc = emit(d, d->buf, ob.pos, sink, user);
		if (rc != PQ_OK)
			return rc;
		if (r == 0)
			d->ended = true;
		if (ob.pos < ob.size)
			break;
	}
	return PQ_OK;
}

int pkg_dec_finish(pkg_dec *d)
{
	if (d->comp != SWPG_COMP_NONE && !d->ended)
		return pq_err_set(PQ_ERR_FORMAT, "compressed stream is truncated");
	if (d->produced != d->expect)
		return pq_err_set(PQ_ERR_FORMAT, "payload decodes to %llu bytes, header says %llu",
		                  (unsigned long long)d->produced, (unsigned long long)d->expect);
	return PQ_OK;
}

uint64_t pkg_dec_produced(const pkg_dec *d)
{
	return d->produced;
}

void pkg_dec_free(pkg_dec *d)
{
	if (!d)
		return;
	if (d->z_init)
		inflateEnd(&d->z);
	ZSTD_freeDCtx(d->zd);
	free(d->buf);
	free(d);
}
