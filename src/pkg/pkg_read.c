/* pkg_read.c: the package reader: opening a package file, listing its tree (headers and
 * indexes only, with their layout checked), finding an entry, streaming byte ranges. */
#include "pkg/pkg_int.h"

#include "pkg/delta.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

/* Checks that the open file fd is a regular file holding one whole package. */
static int check_package_file(int fd, const char *path, uint64_t *size)
{
	struct stat st;
	uint8_t hdr[SWPG_HDR_LEN];
	swpg_header h;
	if (fstat(fd, &st) != 0 || !S_ISREG(st.st_mode))
		return pq_err_set(PQ_ERR_IO, "%s: not a regular file", path);
	if (st.st_size < SWPG_HDR_LEN)
		return pq_err_set(PQ_ERR_FORMAT, "%s: %lld bytes is shorter than a package header",
		                  path, (long long)st.st_size);
	int rc = pkg__pread_full(fd, hdr, sizeof(hdr), 0);
	if (rc == PQ_OK)
		rc = swpg_decode(hdr, &h);
	if (rc == PQ_OK && (uint64_t)st.st_size != SWPG_HDR_LEN + (uint64_t)h.payload_size)
		rc = pq_err_set(PQ_ERR_FORMAT, "%lld bytes, the header announces %llu (%s)",
		                (long long)st.st_size,
		                (unsigned long long)SWPG_HDR_LEN + h.payload_size,
		                (uint64_t)st.st_size < SWPG_HDR_LEN + (uint64_t)h.payload_size
		                    ? "truncated"
		                    : "trailing data");
	if (rc != PQ_OK)
		return pq_err_wrap(rc, "%s", path);
	*size = (uint64_t)st.st_size;
	return PQ_OK;
}

int pkg_open(const char *path, pkg_reader **out)
{
	uint64_t size = 0;
	*out = NULL;
	int fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return pq_err_set(errno == ENOENT ? PQ_ERR_NOTFOUND : PQ_ERR_IO, "%s: %s", path,
		                  strerror(errno));
	int rc = check_package_file(fd, path, &size);
	if (rc != PQ_OK) {
		close(fd);
		return rc;
	}
	pkg_reader *r = calloc(1, sizeof(*r));
	if (!r) {
		close(fd);
		return pq_err_set(PQ_ERR_NOMEM, "%s: reader", path);
	}
	r->fd = fd;
	r->size = size;
	snprintf(r->name, sizeof(r->name), "%s", path);
	*out = r;
	return PQ_OK;
}

void pkg_close(pkg_reader *r)
{
	if (!r)
		return;
	close(r->fd);
	free(r->e);
	free(r);
}

uint64_t pkg_file_size(const pkg_reader *r)
{
	return r->size;
}

/* ---- listing ----------------------------------------------------------------------------- */

static int add_entry(pkg_reader *r, const pkg_entry *e)
{
	if (r->n == PKG__ENTRIES_MAX)
		return pq_err_set(PQ_ERR_RANGE, "more than %d packages in one file",
		                  PKG__ENTRIES_MAX);
	if (r->n == r->cap) {
		size_t cap = r->cap ? r->cap * 2 : 16;
		pkg_entry *ne = realloc(r->e, cap * sizeof(*ne));
		if (!ne)
			return pq_err_set(PQ_ERR_NOMEM, "package list");
		r->e = ne;
		r->cap = cap;
	}
	r->e[r->n++] = *e;
	return PQ_OK;
}

static const char *entry_label(const pkg_entry *e)
{
	return e->path[0] ? e->path : "root";
}

/* Reads and checks the index header of the container `parent`; *count receives its number
 * of entries and *index_len the index's size. */
static int read_index_header(pkg_reader *r, const pkg_entry *parent, uint32_t *count,
                             uint64_t *index_len)
{
	uint64_t plen = parent->hdr.payload_size;
	uint8_t ih[PKG_INDEX_HDR_LEN];
	if (plen < PKG_INDEX_HDR_LEN)
		return pq_err_set(PQ_ERR_FORMAT, "%s: container too small for its index",
		                  entry_label(parent));
	int rc = pkg__pread_full(r->fd, ih, sizeof(ih), parent->offset + SWPG_HDR_LEN);
	if (rc != PQ_OK)
		return rc;
	*count = pkg__get32(ih + 8);
	if (memcmp(ih, PKG_INDEX_MAGIC, 4) != 0 || pkg__get16(ih + 4) != 1 ||
	    pkg__get16(ih + 6) != PKG_INDEX_ENTRY_LEN || pkg__get32(ih + 12) != 0)
		return pq_err_set(PQ_ERR_FORMAT, "%s: bad container index header",
		                  entry_label(parent));
	if (*count == 0 || *count > PKG_CHILDREN_MAX)
		return pq_err_set(PQ_ERR_FORMAT, "%s: %u entries (1..%d allowed)",
		                  entry_label(parent), *count, PKG_CHILDREN_MAX);
	*index_len = PKG_INDEX_HDR_LEN + (uint64_t)*count * PKG_INDEX_ENTRY_LEN;
	if (*index_len > plen)
		return pq_err_set(PQ_ERR_FORMAT, "%s: index of %u entries overruns the container",
		                  entry_label(parent), *count);
	return PQ_OK;
}

/* Whether one of the entries first..r->n at depth `depth` is named `name`. */
static bool name_taken(const pkg_reader *r, size_t first, int depth, const char *name)
{
	for (size_t k = first; k < r->n; k++) {
		const char *slash = strrchr(r->e[k].path, '/');
		if (r->e[k].depth == depth && strcmp(slash ? slash + 1 : r->e[k].path, name) == 0)
			return true;
	}
	return false;
}

/* Reads index entry i of `parent` (its siblings so far start at r->e[first]) and checks its
 * name and place in the layout: it must start at *expect, which then moves past it. */
static int read_index_entry(pkg_reader *r, const pkg_entry *parent, size_t first, uint32_t i,
                            uint64_t *expect, pkg_entry *c, uint8_t ent[PKG_INDEX_ENTRY_LEN])
{
	uint64_t pstart = parent->offset + SWPG_HDR_LEN, plen = parent->hdr.payload_size;
	char name[PKG_NAME_MAX + 1] = {0};
	int rc = pkg__pread_full(r->fd, ent, PKG_INDEX_ENTRY_LEN,
	                         pstart + PKG_INDEX_HDR_LEN + (uint64_t)i * PKG_INDEX_ENTRY_LEN);
	if (rc != PQ_OK)
		return rc;
	memcpy(name, ent + 56, PKG_NAME_MAX);
	for (size_t k = strlen(name); k < PKG_NAME_MAX; k++)
		if (ent[56 + k])
			return pq_err_set(PQ_ERR_FORMAT, "entry %u: name not NUL-padded", i);
	if (pkg__check_name(name) != PQ_OK || pkg__get32(ent + 4) != 0)
		return pq_err_set(PQ_ERR_FORMAT, "entry %u: bad name or reserved bytes", i);
	uint64_t off = pkg__get64(ent + 8), size = pkg__get64(ent + 16);
	if (off != *expect || size < SWPG_HDR_LEN || size > plen - off)
		return pq_err_set(PQ_ERR_FORMAT,
		                  "entry %u (%s): offset %llu size %llu breaks the layout "
		                  "(expected offset %llu within %llu bytes)",
		                  i, name, (unsigned long long)off, (unsigned long long)size,
		                  (unsigned long long)*expect, (unsigned long long)plen);
	*expect = off + size;
	if (name_taken(r, first, parent->depth + 1, name))
		return pq_err_set(PQ_ERR_FORMAT, "entry name '%s' used twice", name);
	memset(c, 0, sizeof(*c));
	c->offset = pstart + off;
	c->size = size;
	c->depth = parent->depth + 1;
	c->has_sha256 = true;
	memcpy(c->sha256, ent + 24, 32);
	if (parent->path[0])
		snprintf(c->path, sizeof(c->path), "%.40s/%.8s", parent->path, name);
	else
		snprintf(c->path, sizeof(c->path), "%s", name);
	return PQ_OK;
}

/* Reads the header of child c and checks it against its index entry and its parent. */
static int check_child_header(pkg_reader *r, const pkg_entry *parent, pkg_entry *c,
                              const uint8_t ent[PKG_INDEX_ENTRY_LEN])
{
	uint8_t ch[SWPG_HDR_LEN];
	int rc = pkg__pread_full(r->fd, ch, sizeof(ch), c->offset);
	if (rc == PQ_OK)
		rc = swpg_decode(ch, &c->hdr);
	if (rc != PQ_OK)
		return pq_err_wrap(rc, "%s", c->path);
	if (SWPG_HDR_LEN + (uint64_t)c->hdr.payload_size != c->size)
		return pq_err_set(PQ_ERR_FORMAT, "%s: index says %llu bytes, header %llu", c->path,
		                  (unsigned long long)c->size,
		                  (unsigned long long)SWPG_HDR_LEN + c->hdr.payload_size);
	if (c->hdr.target_ecu_id != pkg__get16(ent) || c->hdr.software_type != ent[2] ||
	    c->hdr.compression != ent[3])
		return pq_err_set(PQ_ERR_FORMAT, "%s: index entry disagrees with its header",
		                  c->path);
	if (!pkg__may_hold(parent->hdr.software_type, c->hdr.software_type))
		return pq_err_set(PQ_ERR_FORMAT, "%s: a %s cannot hold a %s package", c->path,
		                  swpg_type_name(parent->hdr.software_type),
		                  swpg_type_name(c->hdr.software_type));
	return PQ_OK;
}

/* Reads and validates the index of the container entry `ci` and appends its children
 * (recursively). Layout rule: children follow the index back to back, in index order,
 * and exactly fill the payload; so no gaps, overlaps or self-references are possible. */
static int list_children(pkg_reader *r, size_t ci)
{
	pkg_entry parent = r->e[ci];
	uint64_t index_len = 0, expect;
	uint32_t count = 0;
	int rc = read_index_header(r, &parent, &count, &index_len);
	if (rc != PQ_OK)
		return rc;
	expect = index_len;
	size_t first = r->n;
	for (uint32_t i = 0; i < count; i++) {
		pkg_entry c;
		uint8_t ent[PKG_INDEX_ENTRY_LEN];
		rc = read_index_entry(r, &parent, first, i, &expect, &c, ent);
		if (rc != PQ_OK)
			return rc;
		rc = check_child_header(r, &parent, &c, ent);
		if (rc != PQ_OK)
			return rc;
		rc = add_entry(r, &c);
		if (rc != PQ_OK)
			return rc;
		if (swpg_is_container(c.hdr.software_type)) {
			rc = list_children(r, r->n - 1);
			if (rc != PQ_OK)
				return rc;
		}
	}
	if (expect != parent.hdr.payload_size)
		return pq_err_set(PQ_ERR_FORMAT, "%s: %llu bytes after the last entry",
		                  entry_label(&parent),
		                  (unsigned long long)(parent.hdr.payload_size - expect));
	return PQ_OK;
}

int pkg_list(pkg_reader *r, const pkg_entry **entries, size_t *n)
{
	if (!r->listed) {
		uint8_t hdr[SWPG_HDR_LEN];
		pkg_entry root = {0};
		int rc = pkg__pread_full(r->fd, hdr, sizeof(hdr), 0);
		if (rc == PQ_OK)
			rc = swpg_decode(hdr, &root.hdr);
		root.size = r->size;
		r->n = 0;
		if (rc == PQ_OK)
			rc = add_entry(r, &root);
		if (rc == PQ_OK && swpg_is_container(root.hdr.software_type))
			rc = list_children(r, 0);
		if (rc != PQ_OK) {
			r->n = 0;
			return pq_err_wrap(rc, "%s", r->name);
		}
		r->listed = true;
	}
	*entries = r->e;
	*n = r->n;
	return PQ_OK;
}

int pkg_find(pkg_reader *r, const char *what, const pkg_entry **out)
{
	const pkg_entry *all;
	size_t n;
	uint16_t ecu;
	int rc = pkg_list(r, &all, &n);
	*out = NULL;
	if (rc != PQ_OK)
		return rc;
	for (size_t i = 0; i < n; i++) {
		if (strcmp(all[i].path, what) == 0) {
			*out = &all[i];
			return PQ_OK;
		}
	}
	bool by_ecu = swpg_ecu_parse(what, &ecu) == PQ_OK;
	pq_err_clear();
	for (size_t i = 0; i < n; i++) {
		const char *slash = strrchr(all[i].path, '/');
		const char *base = slash ? slash + 1 : all[i].path;
		bool hit =
		    strcmp(base, what) == 0 || (by_ecu && all[i].hdr.target_ecu_id == ecu &&
		                                !swpg_is_container(all[i].hdr.software_type));
		if (!hit)
			continue;
		if (*out)
			return pq_err_set(PQ_ERR_INVAL, "'%s' matches %s and %s: give the path",
			                  what, (*out)->path, all[i].path);
		*out = &all[i];
	}
	if (!*out)
		return pq_err_set(PQ_ERR_NOTFOUND, "no package '%s' in %s", what, r->name);
	return PQ_OK;
}

/* ---- byte ranges ------------------------------------------------------------------------- */

int pkg__read_range(pkg_reader *r, uint64_t off, uint64_t len, pkg__range_fn fn, void *user,
                    const pkg_progress *p)
{
	uint8_t *buf = malloc(PKG__IO_BUF);
	uint64_t done = 0;
	int rc = PQ_OK;
	if (!buf)
		return pq_err_set(PQ_ERR_NOMEM, "I/O buffer");
	while (rc == PQ_OK && done < len) {
		size_t want = len - done < PKG__IO_BUF ? (size_t)(len - done) : PKG__IO_BUF;
		rc = pkg__cancelled(p);
		if (rc == PQ_OK)
			rc = pkg__pread_full(r->fd, buf, want, off + done);
		if (rc == PQ_OK)
			rc = fn(buf, want, off + done, user);
		done += want;
		pkg__progress(p, done, len);
	}
	free(buf);
	return rc;
}

int pkg__read_delta_desc(pkg_reader *r, const pkg_entry *e, pkg__delta_desc *d)
{
	uint8_t raw[PKG__D2_DESC_LEN];
	const char *what = e->path[0] ? e->path : r->name;
	int rc = PQ_OK;
	if (e->hdr.payload_size < PKG_DELTA_DESC_LEN)
		return pq_err_set(PQ_ERR_FORMAT, "%s: delta payload too small", what);
	rc = pkg__pread_full(r->fd, raw, PKG_DELTA_DESC_LEN, e->offset + SWPG_HDR_LEN);
	uint32_t version = rc == PQ_OK ? pkg__get32(raw + 4) : 0;
	bool v2 = version == PKG__D2_VERSION || version == PKG__D3_VERSION; /* segmented */
	if (v2 && e->hdr.payload_size < PKG__D2_DESC_LEN)
		rc = pq_err_set(PQ_ERR_FORMAT, "delta payload too small");
	if (v2 && rc == PQ_OK)
		rc = pkg__pread_full(r->fd, raw, PKG__D2_DESC_LEN, e->offset + SWPG_HDR_LEN);
	if (rc == PQ_OK)
		rc = v2 ? pkg__d2_desc_decode(raw, d) : pkg__delta_desc_decode(raw, d);
	if (rc != PQ_OK)
		return pq_err_wrap(rc, "%s", what);
	bool size_ok =
	    d->target_size == e->hdr.uncompressed_size ||
	    (v2 && e->hdr.uncompressed_size == UINT32_MAX && d->target_size >= UINT32_MAX);
	if (!size_ok || memcmp(d->base_sha, e->hdr.base_sha256_prefix, SWPG_BASE_HASH_PREFIX) != 0)
		return pq_err_set(PQ_ERR_FORMAT, "%s: delta descriptor disagrees with the header",
		                  what);
	if (!v2 && d->base_size > PKG_DELTA_MAX)
		return pq_err_set(PQ_ERR_FORMAT, "%s: delta base of %llu bytes exceeds the limit",
		                  what, (unsigned long long)d->base_size);
	if (v2 && (d->table_off > e->hdr.payload_size ||
	           e->hdr.payload_size - d->table_off != d->table_len))
		return pq_err_set(PQ_ERR_FORMAT, "%s: the delta's segment table is not at its end",
		                  what);
	return PQ_OK;
}

int pkg__delta_of(pkg_reader *r, const pkg_entry *e, pkg__delta_desc *d)
{
	if (e->hdr.compression != SWPG_COMP_DELTA)
		return pq_err_set(PQ_ERR_INVAL, "%s is not a delta package",
		                  e->path[0] ? e->path : r->name);
	return pkg__read_delta_desc(r, e, d);
}

int pkg_delta_info_read(pkg_reader *r, const pkg_entry *e, pkg_delta_info *out)
{
	pkg__delta_desc d;
	memset(out, 0, sizeof(*out));
	int rc = pkg__delta_of(r, e, &d);
	if (rc != PQ_OK)
		return rc;
	out->base_size = d.base_size;
	out->target_size = d.target_size;
	out->version = d.version;
	out->apply_memory = d.apply_memory;
	out->segments = d.segments;
	memcpy(out->base_sha256, d.base_sha, 32);
	memcpy(out->target_sha256, d.target_sha, 32);
	return PQ_OK;
}
