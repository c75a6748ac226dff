/* assets.h: the operator console's files (docs/console.md), embedded into the binary at build
 * time (src/tools/embed.c writes the table from console/) or read from a directory the
 * configuration names (console.dir). Each file is served with its content type and an
 * ETag; every file but index.html is served under /console/<build>/, where <build> is a
 * hash over all of them, so a browser may keep them for good (a new build is a new path).
 * index.html names them through "@BUILD@", replaced when the assets are loaded. */
#ifndef PQOTA_SERVER_ASSETS_H
#define PQOTA_SERVER_ASSETS_H

#include <stddef.h>

#include "core/err.h"

/* One embedded file (the generated table ends with a NULL name). */
typedef struct {
	const char *name; /* relative to console/: "app.js", "pages/fleet.js" */
	const unsigned char *data;
	size_t len;
} srv_embedded;

extern const srv_embedded srv_console_embedded[];

#define SRV_ASSETS_MAX      512                /* files */
#define SRV_ASSET_MAX_BYTES (16 * 1024 * 1024) /* one file */
#define SRV_ASSET_NAME_MAX  160

typedef struct {
	char name[SRV_ASSET_NAME_MAX + 1];
	const unsigned char *data; /* embedded, or owned */
	size_t len;
	unsigned char *owned; /* what to free: a file read from a directory, index.html */
	const char *type;     /* Content-Type */
	char etag[20];        /* "\"" + 16 hex digits of its SHA-256 + "\"" */
} srv_asset;

typedef struct {
	srv_asset *items;
	size_t n;
	char build[17]; /* 16 hex digits */
} srv_assets;

/* Loads the embedded files (dir NULL) or every regular file under dir (dotfiles skipped,
 * at most SRV_ASSETS_MAX of at most SRV_ASSET_MAX_BYTES each). An index.html is required. */
int srv_assets_load(const char *dir, srv_assets **out) PQ_MUST_CHECK;
void srv_assets_free(srv_assets *a);
/* The file of that name, or NULL. */
const srv_asset *srv_assets_find(const srv_assets *a, const char *name);

#endif
