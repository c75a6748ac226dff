/* pkg_extract.c: copying a package out of its parent, decoding a leaf's image, and applying
 * a delta to its base image. */
#include "pkg/pkg_int.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "core/text.h"
#include "pkg/codec.h"
#include "pkg/delta.h"

static int copy_fn(const uint8_t *data, size_t len, uint64_t pos, void *user)
{
	(void)pos;
	return pkg__out_sink(data, len, user);
}

int pkg_extract_package(pkg_reader *r, const pkg_entry *e, const char *out_path,
                        const pkg_progress *p)
{
	pkg__out_file out;
	uint8_t sha[32];
	int rc = pkg__out_open(&out, out_path, 0644);
	if (rc != PQ_OK)
		return rc;
	rc = pq_hash_new(PQ_HASH_SHA256, &out.sha);
	if (rc == PQ_OK)
		rc = pkg__read_range(r, e->offset, e->size, copy_fn, &out, p);
	if (rc == PQ_OK)
		rc = pq_hash_final(out.sha, sha);
	if (rc == PQ_OK && e->has_sha256 && pq_memeq_ct(sha, e->sha256, 32) != 0)
		rc = pq_err_set(PQ_ERR_VERIFY, "%s: SHA-256 does not match its index entry",
		                e->path);
	if (rc == PQ_OK)
		rc = pkg__out_commit(&out);
	if (rc != PQ_OK)
		pkg__out_abort(&out);
	pq_hash_free(out.sha);
	return rc;
}

/* Decoding a leaf's payload: CRC over the payload, decoder over the compressed bytes (after
 * the descriptor for deltas), output to a sink. */
struct decode_state {
	pq_hash_ctx *sha;       /* over the whole package, when its index names a hash */
	uint64_t payload_start; /* file offset of the payload */
	uint64_t skip;          /* payload bytes not fed to the decoder (delta descriptor) */
	uint32_t crc;
	pkg_dec *dec;
	pkg_sink_fn sink;
	void *sink_user;
};

static int decode_fn(const uint8_t *data, size_t len, uint64_t pos, void *user)
{
	struct decode_state *s = user;
	uint64_t rel = pos - s->payload_start;
	s->crc = pq_crc32(s->crc, data, len);
	if (s->sha) {
		int rc = pq_hash_update(s->sha, data, len);
		if (rc != PQ_OK)
			return rc;
	}
	if (rel + len <= s->skip)
		return PQ_OK;
	size_t from = rel < s->skip ? (size_t)(s->skip - rel) : 0;
	return pkg_dec_feed(s->dec, data + from, len - from, s->sink, s->sink_user);
}

/* Starts the hash of a child's whole package with its header (the payload follows). */
static int hash_header(pkg_reader *r, const pkg_entry *e, pq_hash_ctx **sha)
{
	uint8_t hdr[SWPG_HDR_LEN];
	int rc = pq_hash_new(PQ_HASH_SHA256, sha);
	if (rc == PQ_OK)
		rc = pkg__pread_full(r->fd, hdr, sizeof(hdr), e->offset);
	if (rc == PQ_OK)
		rc = pq_hash_update(*sha, hdr, sizeof(hdr));
	return rc;
}

/* Checks what decoding saw: the package hash (children), the CRC, the decoder's end. */
static int decode_check(pkg_reader *r, const pkg_entry *e, struct decode_state *s)
{
	if (s->sha) {
		uint8_t sha[32];
		int rc = pq_hash_final(s->sha, sha);
		if (rc != PQ_OK)
			return rc;
		if (pq_memeq_ct(sha, e->sha256, 32) != 0)
			return pq_err_set(PQ_ERR_VERIFY,
			                  "%s: SHA-256 does not match its index entry", e->path);
	}
	if (s->crc != e->hdr.crc32)
		return pq_err_set(PQ_ERR_VERIFY, "%s: payload CRC-32 %08x, header says %08x",
		                  e->path[0] ? e->path : r->name, s->crc, e->hdr.crc32);
	return s->dec ? pkg_dec_finish(s->dec) : PQ_OK;
}

/* Checks e's stored bytes (the CRC, and the index hash of a child) without decoding them:
 * a version-2 delta is checked this way before anything is written, as its segments are
 * decoded one by one later. */
static int check_stored(pkg_reader *r, const pkg_entry *e)
{
	struct decode_state s = {.payload_start = e->offset + SWPG_HDR_LEN,
	                         .skip = e->hdr.payload_size};
	int rc = e->has_sha256 ? hash_header(r, e, &s.sha) : PQ_OK;
	if (rc == PQ_OK)
		rc = pkg__read_range(r, s.payload_start, e->hdr.payload_size, decode_fn, &s, NULL);
	if (rc == PQ_OK)
		rc = decode_check(r, e, &s);
	pq_hash_free(s.sha);
	return rc;
}

/* Decodes entry e (a leaf) into sink; base is the delta's base image (or NULL). */
static int decode_leaf(pkg_reader *r, const pkg_entry *e, const void *base, size_t base_len,
                       pkg_sink_fn sink, void *user, const pkg_progress *p)
{
	struct decode_state s = {
	    .payload_start = e->offset + SWPG_HDR_LEN, .sink = sink, .sink_user = user};
	int rc;
	if (swpg_is_container(e->hdr.software_type))
		return pq_err_set(PQ_ERR_INVAL, "%s is a container: extract its packages",
		                  e->path[0] ? e->path : "the root");
	if (e->hdr.compression == SWPG_COMP_DELTA)
		s.skip = PKG_DELTA_DESC_LEN;
	rc = pkg_dec_new(e->hdr.compression, e->hdr.uncompressed_size, base, base_len, &s.dec);
	if (rc == PQ_OK && e->has_sha256)
		rc = hash_header(r, e, &s.sha);
	if (rc == PQ_OK)
		rc = pkg__read_range(r, s.payload_start, e->hdr.payload_size, decode_fn, &s, p);
	if (rc == PQ_OK)
		rc = decode_check(r, e, &s);
	pkg_dec_free(s.dec);
	pq_hash_free(s.sha);
	return rc;
}

int pkg_extract_image(pkg_reader *r, const pkg_entry *e, const char *base_path,
                      const char *out_path, const pkg_progress *p)
{
	if (e->hdr.compression == SWPG_COMP_DELTA) {
		if (!base_path)
			return pq_err_set(PQ_ERR_INVAL, "%s is a delta: give the base image",
			                  e->path[0] ? e->path : r->name);
		return pkg_apply_delta(r, e, base_path, out_path, p);
	}
	pkg__out_file out;
	int rc = pkg__out_open(&out, out_path, 0644);
	if (rc != PQ_OK)
		return rc;
	rc = decode_leaf(r, e, NULL, 0, pkg__out_sink, &out, p);
	if (rc == PQ_OK)
		rc = pkg__out_commit(&out);
	if (rc != PQ_OK)
		pkg__out_abort(&out);
	return rc;
}

/* The error for a base image that is not the one the delta patches. */
static int wrong_base(const pkg_entry *e, const char *what, const pkg__delta_desc *d,
                      const char *base_path, size_t base_len, const uint8_t base_sha[32])
{
	char want[65], got[65], v[24];
	pq_hex_encode(d->base_sha, 32, want);
	pq_hex_encode(base_sha, 32, got);
	swpg_version_str(e->hdr.base_version, v, sizeof(v));
	return pq_err_set(PQ_ERR_VERIFY,
	                  "wrong base for %s: it patches version %s (%llu bytes, sha256 %.16s...), "
	                  "%s is %zu bytes, sha256 %.16s...",
	                  what, v, (unsigned long long)d->base_size, want, base_path, base_len,
	                  got);
}

/* What applying a version-1 delta takes: its zstd window (base + target) and the decoder. */
static uint64_t v1_memory(const pkg__delta_desc *d)
{
	return d->base_size + d->target_size + (4u << 20);
}

/* A version-1 delta: the base mapped, one zstd frame with a window of base + target. */
static int apply_v1(pkg_reader *r, const pkg_entry *e, const pkg__delta_desc *d,
                    const char *base_path, const char *out_path, const pkg_apply_opts *o)
{
	void *base = NULL;
	size_t base_len = 0;
	uint8_t base_sha[32], target_sha[32];
	pkg__out_file out = {.fd = -1};
	const char *what = e->path[0] ? e->path : r->name;
	uint64_t limit = o->mem_limit ? o->mem_limit : PKG_DELTA_APPLY_MEM_DEFAULT;
	if (v1_memory(d) > limit)
		return pq_err_set(
		    PQ_ERR_RANGE,
		    "%s: this version-1 delta needs %llu MiB to apply (its window), more "
		    "than the limit of %llu MiB",
		    what, (unsigned long long)v1_memory(d) >> 20, (unsigned long long)limit >> 20);
	int rc = pkg__map_file(base_path, PKG_DELTA_MAX, &base, &base_len, base_sha);
	if (rc != PQ_OK)
		return rc;
	if (base_len != d->base_size || pq_memeq_ct(base_sha, d->base_sha, 32) != 0) {
		rc = wrong_base(e, what, d, base_path, base_len, base_sha);
		goto out;
	}
	rc = pkg__out_open(&out, out_path, 0644);
	if (rc == PQ_OK)
		rc = pq_hash_new(PQ_HASH_SHA256, &out.sha);
	if (rc == PQ_OK)
		rc = decode_leaf(r, e, base, base_len, pkg__out_sink, &out, &o->progress);
	if (rc == PQ_OK)
		rc = pq_hash_final(out.sha, target_sha);
	if (rc == PQ_OK && pq_memeq_ct(target_sha, d->target_sha, 32) != 0)
		rc = pq_err_set(PQ_ERR_VERIFY,
		                "%s: the patched image does not match the target SHA-256", what);
	if (rc == PQ_OK)
		rc = pkg__out_commit(&out);
	if (rc != PQ_OK)
		pkg__out_abort(&out);
out:
	pq_hash_free(out.sha);
	pkg__unmap_file(base, base_len);
	return rc;
}

/* A version-2 or -3 delta: the base opened, its size and hash checked, then delta_apply.c
 * (or delta_x.c). */
static int apply_v2(pkg_reader *r, const pkg_entry *e, const pkg__delta_desc *d,
                    const char *base_path, const char *out_path, pkg_apply_opts *o)
{
	const char *what = e->path[0] ? e->path : r->name;
	uint8_t base_sha[32];
	struct stat st;
	int rc = check_stored(r, e);
	if (rc != PQ_OK)
		return rc;
	int fd = open(base_path, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return pq_err_set(errno == ENOENT ? PQ_ERR_NOTFOUND : PQ_ERR_IO, "%s: %s",
		                  base_path, strerror(errno));
	rc = fstat(fd, &st) == 0 && S_ISREG(st.st_mode)
	         ? pq_hash_fd(PQ_HASH_SHA256, fd, base_sha)
	         : pq_err_set(PQ_ERR_IO, "%s: not a regular file", base_path);
	if (rc == PQ_OK &&
	    ((uint64_t)st.st_size != d->base_size || pq_memeq_ct(base_sha, d->base_sha, 32) != 0))
		rc = wrong_base(e, what, d, base_path, (size_t)st.st_size, base_sha);
	if (rc == PQ_OK)
		rc = d->version == PKG__D3_VERSION ? pkg__dx_apply(r, e, d, fd, out_path, o)
		                                   : pkg__d2_apply(r, e, d, fd, out_path, o);
	close(fd);
	return rc;
}

int pkg_apply_delta_ex(pkg_reader *r, const pkg_entry *e, const char *base_path,
                       const char *out_path, pkg_apply_opts *o)
{
	pkg__delta_desc d;
	o->resumed_bytes = 0;
	o->memory_needed = 0;
	int rc = pkg__delta_of(r, e, &d);
	if (rc != PQ_OK)
		return rc;
	o->memory_needed = d.version == 1 ? v1_memory(&d) : d.apply_memory;
	return d.version == 1 ? apply_v1(r, e, &d, base_path, out_path, o)
	                      : apply_v2(r, e, &d, base_path, out_path, o);
}

void pkg_apply_discard(const char *out_path)
{
	static const char *const kept[] = {".part", ".part.ckpt", ".x", ".x.part", ".x.part.ckpt"};
	char p[PATH_MAX];
	for (size_t i = 0; i < sizeof(kept) / sizeof(kept[0]); i++)
		if (snprintf(p, sizeof(p), "%s%s", out_path, kept[i]) < (int)sizeof(p))
			unlink(p);
}

int pkg_apply_delta(pkg_reader *r, const pkg_entry *e, const char *base_path, const char *out_path,
                    const pkg_progress *p)
{
	pkg_apply_opts o = {.progress = p ? *p : (pkg_progress){0}};
	return pkg_apply_delta_ex(r, e, base_path, out_path, &o);
}
