/* assets.c: the console's files, embedded or read from a directory (assets.h). */
#include "server/assets.h"

#include <dirent.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "core/fileio.h"
#include "core/text.h"
#include "crypto/hash.h"

#define BUILD_MARK "@BUILD@"

static const struct {
	const char *ext;
	const char *type;
} types[] = {
    {".html", "text/html; charset=utf-8"},
    {".js", "text/javascript; charset=utf-8"},
    {".mjs", "text/javascript; charset=utf-8"},
    {".css", "text/css; charset=utf-8"},
    {".svg", "image/svg+xml"},
    {".png", "image/png"},
    {".ico", "image/x-icon"},
    {".json", "application/json"},
    {".txt", "text/plain; charset=utf-8"},
    {".woff2", "font/woff2"},
};

static const char *type_of(const char *name)
{
	size_t nl = strlen(name);
	for (size_t i = 0; i < sizeof(types) / sizeof(types[0]); i++) {
		size_t el = strlen(types[i].ext);
		if (nl > el && strcmp(name + nl - el, types[i].ext) == 0)
			return types[i].type;
	}
	return "application/octet-stream";
}

/* Appends a file (its bytes borrowed, or owned when `owned`). */
static int add(srv_assets *a, const char *name, const unsigned char *data, size_t len,
               unsigned char *owned)
{
	if (a->n == SRV_ASSETS_MAX || strlen(name) > SRV_ASSET_NAME_MAX) {
		free(owned);
		return pq_err_set(PQ_ERR_RANGE,
		                  "console: too many files, or a name over %d bytes: %s",
		                  SRV_ASSET_NAME_MAX, name);
	}
	srv_asset *x = &a->items[a->n++];
	snprintf(x->name, sizeof(x->name), "%s", name);
	x->data = data;
	x->len = len;
	x->owned = owned;
	x->type = type_of(name);
	return PQ_OK;
}

static int load_dir(srv_assets *a, const char *root, const char *rel, int depth)
{
	char path[PATH_MAX];
	int rc = rel[0] ? pq_path_join(path, sizeof(path), root, rel) : PQ_OK;
	if (!rel[0])
		snprintf(path, sizeof(path), "%s", root);
	DIR *d = rc == PQ_OK ? opendir(path) : NULL;
	if (!d)
		return rc != PQ_OK ? rc
		                   : pq_err_set(PQ_ERR_IO, "console.dir %s: cannot open", path);
	struct dirent *e;
	while (rc == PQ_OK && (e = readdir(d)) != NULL) {
		char sub[PATH_MAX], full[PATH_MAX];
		struct stat st;
		if (e->d_name[0] == '.')
			continue; /* ".", "..", dotfiles */
		int n = snprintf(sub, sizeof(sub), "%s%s%s", rel, rel[0] ? "/" : "", e->d_name);
		if (n < 0 || (size_t)n >= sizeof(sub))
			rc = pq_err_set(PQ_ERR_RANGE, "console.dir: name too long: %s", e->d_name);
		else
			rc = pq_path_join(full, sizeof(full), root, sub);
		if (rc != PQ_OK || stat(full, &st) != 0)
			continue;
		if (S_ISDIR(st.st_mode) && depth < 4) {
			rc = load_dir(a, root, sub, depth + 1);
		} else if (S_ISREG(st.st_mode)) {
			char *data = NULL;
			size_t len = 0;
			rc = pq_file_read(full, SRV_ASSET_MAX_BYTES, &data, &len);
			if (rc == PQ_OK)
				rc = add(a, sub, (unsigned char *)data, len, (unsigned char *)data);
		}
	}
	closedir(d);
	return rc;
}

static int by_name(const void *x, const void *y)
{
	return strcmp(((const srv_asset *)x)->name, ((const srv_asset *)y)->name);
}

/* ETags, then the build hash over every name and content hash, then index.html with the
 * build hash in place of each "@BUILD@" (and its ETag again). */
static int seal(srv_assets *a)
{
	uint8_t d[32];
	pq_hash_ctx *h = NULL;
	int rc = pq_hash_new(PQ_HASH_SHA256, &h);
	for (size_t i = 0; rc == PQ_OK && i < a->n; i++) {
		srv_asset *x = &a->items[i];
		char hex[65];
		rc = pq_hash(PQ_HASH_SHA256, x->data, x->len, d);
		if (rc != PQ_OK)
			break;
		pq_hex_encode(d, 32, hex);
		snprintf(x->etag, sizeof(x->etag), "\"%.16s\"", hex);
		rc = pq_hash_update(h, x->name, strlen(x->name) + 1);
		if (rc == PQ_OK)
			rc = pq_hash_update(h, hex, 64);
	}
	if (rc == PQ_OK)
		rc = pq_hash_final(h, d);
	pq_hash_free(h);
	if (rc != PQ_OK)
		return rc;
	char hex[65];
	pq_hex_encode(d, 32, hex);
	snprintf(a->build, sizeof(a->build), "%.16s", hex);
	return PQ_OK;
}

/* index.html with every "@BUILD@" replaced by the build hash, owned by the asset. */
static int stamp_index(srv_assets *a, srv_asset *x)
{
	size_t ml = strlen(BUILD_MARK), bl = strlen(a->build), cap = x->len + 1, n = 0;
	for (const unsigned char *p = x->data; p + ml <= x->data + x->len; p++)
		if (memcmp(p, BUILD_MARK, ml) == 0)
			cap += bl;
	unsigned char *out = malloc(cap);
	if (!out)
		return pq_err_set(PQ_ERR_NOMEM, "console index");
	for (size_t i = 0; i < x->len;) {
		if (i + ml <= x->len && memcmp(x->data + i, BUILD_MARK, ml) == 0) {
			memcpy(out + n, a->build, bl);
			n += bl;
			i += ml;
		} else {
			out[n++] = x->data[i++];
		}
	}
	free(x->owned);
	x->owned = out;
	x->data = out;
	x->len = n;
	uint8_t d[32];
	char hex[65];
	int rc = pq_hash(PQ_HASH_SHA256, out, n, d);
	if (rc == PQ_OK) {
		pq_hex_encode(d, 32, hex);
		snprintf(x->etag, sizeof(x->etag), "\"%.16s\"", hex);
	}
	return rc;
}

int srv_assets_load(const char *dir, srv_assets **out)
{
	*out = NULL;
	srv_assets *a = calloc(1, sizeof(*a));
	if (a)
		a->items = calloc(SRV_ASSETS_MAX, sizeof(*a->items));
	if (!a || !a->items) {
		free(a);
		return pq_err_set(PQ_ERR_NOMEM, "console assets");
	}
	int rc = PQ_OK;
	if (dir)
		rc = load_dir(a, dir, "", 0);
	for (size_t i = 0; !dir && rc == PQ_OK && srv_console_embedded[i].name; i++)
		rc = add(a, srv_console_embedded[i].name, srv_console_embedded[i].data,
		         srv_console_embedded[i].len, NULL);
	if (rc == PQ_OK) {
		qsort(a->items, a->n, sizeof(*a->items), by_name);
		rc = seal(a);
	}
	srv_asset *index = rc == PQ_OK ? (srv_asset *)srv_assets_find(a, "index.html") : NULL;
	if (rc == PQ_OK && !index)
		rc = pq_err_set(PQ_ERR_NOTFOUND, "console: no index.html in %s",
		                dir ? dir : "the embedded files");
	if (rc == PQ_OK)
		rc = stamp_index(a, index);
	if (rc != PQ_OK) {
		srv_assets_free(a);
		return rc;
	}
	*out = a;
	return PQ_OK;
}

void srv_assets_free(srv_assets *a)
{
	if (!a)
		return;
	for (size_t i = 0; i < a->n; i++)
		free(a->items[i].owned);
	free(a->items);
	free(a);
}

const srv_asset *srv_assets_find(const srv_assets *a, const char *name)
{
	srv_asset key = {0};
	if (!a || strlen(name) > SRV_ASSET_NAME_MAX)
		return NULL;
	snprintf(key.name, sizeof(key.name), "%s", name);
	return bsearch(&key, a->items, a->n, sizeof(*a->items), by_name);
}
