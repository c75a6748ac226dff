/* pack.c: package build, verify and extract, timed per codec on one image. */
#include "bench/bench.h"

#include <unistd.h>

#include "core/fileio.h"
#include "core/time.h"
#include "pkg/codec.h"
#include "pkg/pkg.h"

#define BENCH_ECU 0x1011 /* ECU_011 */

int bench_comp_level(uint8_t comp)
{
	return comp == SWPG_COMP_ZLIB   ? PKG_ZLIB_LEVEL_DEFAULT
	       : comp == SWPG_COMP_ZSTD ? PKG_ZSTD_LEVEL_DEFAULT
	                                : 0;
}

/* Opens pkg, verifies it deeply (timed into res->verify_s), then extracts its image to out
 * (res->extract_s). */
static int verify_and_extract(const char *pkg, const char *out, bench_pack_result *res)
{
	pkg_reader *r = NULL;
	pkg_verify_report rep;
	const pkg_entry *all = NULL;
	size_t n = 0;
	double t0 = pq_mono_s();
	int rc = pkg_open(pkg, &r);
	if (rc == PQ_OK)
		rc = pkg_verify(r, &rep, NULL);
	double t1 = pq_mono_s();
	if (rc == PQ_OK)
		rc = pkg_list(r, &all, &n);
	if (rc == PQ_OK)
		rc = pkg_extract_image(r, &all[0], NULL, out, NULL);
	res->verify_s = t1 - t0;
	res->extract_s = pq_mono_s() - t1;
	pkg_close(r);
	return rc;
}

int bench_pack_codec(const char *dir, const char *img, uint64_t size, uint8_t comp,
                     bench_pack_result *res)
{
	char pkg[PATH_MAX], out[PATH_MAX];
	pkg_leaf_opts o = {.ecu = BENCH_ECU,
	                   .type = SWPG_TYPE_APP,
	                   .version = {2, 1, 0, 0},
	                   .timestamp = 1,
	                   .compression = comp};
	pkg_unit u;
	bool same = false;
	int rc = pq_path_join(pkg, sizeof(pkg), dir, "image.swpg");
	if (rc == PQ_OK)
		rc = pq_path_join(out, sizeof(out), dir, "image.out");
	if (rc != PQ_OK)
		return rc;

	*res = (bench_pack_result){0};
	double t0 = pq_mono_s();
	rc = pkg_build_leaf(img, &o, pkg, &u);
	res->build_s = pq_mono_s() - t0;
	if (rc == PQ_OK)
		rc = verify_and_extract(pkg, out, res);
	if (rc == PQ_OK)
		rc = bench_files_equal(img, out, &same);
	if (rc == PQ_OK && !same)
		rc = pq_err_set(PQ_ERR_VERIFY, "the extracted image differs from the input");
	if (rc == PQ_OK && u.image_size != size)
		rc = pq_err_set(PQ_ERR_VERIFY, "built %llu image bytes, not %llu",
		                (unsigned long long)u.image_size, (unsigned long long)size);
	unlink(pkg);
	unlink(out);
	if (rc != PQ_OK)
		return pq_err_wrap(rc, "%s, %llu-byte image", swpg_comp_name(comp),
		                   (unsigned long long)size);
	res->image_bytes = u.image_size;
	res->package_bytes = u.size;
	return PQ_OK;
}
