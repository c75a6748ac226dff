/* mkcorpus_pkg.c: writes the seed corpus for fuzz_pkg.c: leaves of every compression, a
 * zone, a vehicle bundle, and a delta with its base. Usage: mkcorpus_pkg DIR */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "core/fileio.h"
#include "pkg/bundle.h"
#include "pkg/pkg.h"

static char dir[512], tmp[512];

/* Writes selector byte + prefix + the file at src as corpus entry `name`. */
static void put(const char *name, uint8_t sel, const uint8_t *prefix, size_t plen, const char *src)
{
	char *body = NULL, p[1024];
	size_t blen = 0;
	if (pq_file_read(src, 1 << 20, &body, &blen) != PQ_OK)
		exit(1);
	uint8_t *buf = malloc(1 + plen + blen);
	if (!buf)
		exit(1);
	buf[0] = sel;
	if (plen)
		memcpy(buf + 1, prefix, plen);
	memcpy(buf + 1 + plen, body, blen);
	snprintf(p, sizeof(p), "%s/%s", dir, name);
	if (pq_file_write_atomic(p, buf, 1 + plen + blen, 0644, true) != PQ_OK)
		exit(1);
	free(buf);
	free(body);
}

static void image(const char *path, size_t len, unsigned seed)
{
	uint8_t *b = malloc(len + 1);
	if (!b)
		exit(1);
	for (size_t i = 0; i < len; i++) /* compressible, not constant */
		b[i] = (uint8_t)((i / 7) * seed + (i % 13));
	if (pq_file_write_atomic(path, b, len, 0644, true) != PQ_OK)
		exit(1);
	free(b);
}

int main(int argc, char **argv)
{
	char p[700], q[600], base[600], target[600];
	pkg_unit u;
	if (argc != 2)
		return 64;
	snprintf(dir, sizeof(dir), "%s", argv[1]);
	snprintf(tmp, sizeof(tmp), "/tmp/pqota-mkcorpus-XXXXXX");
	if (!mkdtemp(tmp))
		return 1;
	snprintf(base, sizeof(base), "%s/base.bin", tmp);
	snprintf(target, sizeof(target), "%s/target.bin", tmp);
	image(base, 600, 3);
	image(target, 700, 3);
	static const char *const names[] = {"leaf-none", "leaf-zlib", "leaf-zstd"};
	for (uint8_t c = 0; c < 3; c++) {
		pkg_leaf_opts o = {.ecu = 0x1011,
		                   .type = SWPG_TYPE_APP,
		                   .compression = c,
		                   .version = {1, 2, 3, 4},
		                   .timestamp = 1};
		snprintf(p, sizeof(p), "%s/%s.swpg", tmp, names[c]);
		if (pkg_build_leaf(target, &o, p, &u) != PQ_OK)
			return 1;
		put(names[c], 0, NULL, 0, p);
	}
	/* a delta and its base: selector 1, then base length (LE16), base, delta */
	pkg_leaf_opts d = {.ecu = 0x1011,
	                   .type = SWPG_TYPE_APP,
	                   .base_path = base,
	                   .version = {2, 0, 0, 0},
	                   .base_version = {1, 0, 0, 0},
	                   .timestamp = 1};
	snprintf(p, sizeof(p), "%s/delta.swpg", tmp);
	if (pkg_build_leaf(target, &d, p, &u) != PQ_OK)
		return 1;
	char *b = NULL;
	size_t bl = 0;
	if (pq_file_read(base, 1 << 20, &b, &bl) != PQ_OK)
		return 1;
	uint8_t *pre = malloc(2 + bl);
	if (!pre)
		return 1;
	pre[0] = (uint8_t)bl;
	pre[1] = (uint8_t)(bl >> 8);
	memcpy(pre + 2, b, bl);
	put("delta-with-base", 1, pre, 2 + bl, p);
	put("delta-resumable-with-base", 3, pre, 2 + bl, p); /* applied as the agent does */
	put("delta-as-package", 0, NULL, 0, p);
	free(pre);
	free(b);
	/* a bundle: VMG + zone 1 (ZGW + ECU) */
	pkg_bundle_desc *bd = calloc(1, sizeof(*bd));
	if (!bd)
		return 1;
	snprintf(bd->campaign_id, sizeof(bd->campaign_id), "FUZZ");
	bd->timestamp = 1;
	pkg_bundle_unit units[3] = {
	    {.name = "VMG",
	     .ecu = 0x0E00,
	     .type = SWPG_TYPE_APP,
	     .image = target,
	     .zone = 0,
	     .compression = 2},
	    {.name = "ZGW1", .ecu = 0x0091, .type = SWPG_TYPE_APP, .image = base, .zone = 1},
	    {.name = "ECU_011",
	     .ecu = 0x1011,
	     .type = SWPG_TYPE_CAL,
	     .image = target,
	     .zone = 1,
	     .compression = 1}};
	for (int i = 0; i < 3; i++)
		if (pkg_bundle_add(bd, &units[i]) != PQ_OK)
			return 1;
	snprintf(q, sizeof(q), "%s/out", tmp);
	if (pkg_bundle_build(bd, q, NULL, NULL) != PQ_OK) {
		fprintf(stderr, "mkcorpus: %s\n", pq_err_detail());
		return 1;
	}
	pkg_bundle_free(bd);
	free(bd);
	snprintf(p, sizeof(p), "%s/full_package.bin", q);
	put("bundle", 0, NULL, 0, p);
	snprintf(p, sizeof(p), "%s/packages/ZONE1.swpg", q);
	put("zone", 0, NULL, 0, p);
	snprintf(p, sizeof(p), "rm -rf '%s'", tmp);
	if (system(p) != 0)
		return 1;
	printf("corpus written to %s\n", dir);
	return 0;
}
