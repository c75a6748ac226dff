/* fuzz_pkg.c: libFuzzer harness for SWPG package parsing and delta application.
 *
 * Input byte 0 selects: even = the rest is a package file (open, list, find, deep verify);
 * odd = bytes 1-2 give a base length L (little-endian), then L bytes of base image, then
 * a delta package, which is applied (with bit 1 of byte 0 set: resumable, in 8 MiB, as the
 * agent does). Files live in memfds; the output goes to a temporary directory. */
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include "core/fileio.h"
#include "pkg/pkg.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static char outdir[64];

static int memfile(const uint8_t *data, size_t len, char *path, size_t plen)
{
	int fd = memfd_create("pqota-fuzz", MFD_CLOEXEC);
	if (fd < 0)
		abort();
	if (len && pq_write_all(fd, data, len) != PQ_OK)
		abort();
	snprintf(path, plen, "/proc/self/fd/%d", fd);
	return fd;
}

static void package(const uint8_t *data, size_t size)
{
	char path[64];
	int fd = memfile(data, size, path, sizeof(path));
	pkg_reader *r = NULL;
	if (pkg_open(path, &r) == PQ_OK) {
		const pkg_entry *all, *e;
		size_t n;
		pkg_verify_report rep;
		if (pkg_list(r, &all, &n) == PQ_OK) {
			/* invariants of an accepted tree: inside the file, root first */
			if (n == 0 || all[0].offset != 0 || all[0].size != pkg_file_size(r))
				abort();
			for (size_t i = 1; i < n; i++)
				if (all[i].offset + all[i].size > pkg_file_size(r) ||
				    all[i].depth < 1 || all[i].depth > PKG_DEPTH_MAX)
					abort();
			/* a found entry is one of the listed ones */
			if ((pkg_find(r, "ZONE1/ECU_011", &e) == PQ_OK ||
			     pkg_find(r, "VMG", &e) == PQ_OK) &&
			    (e < all || e >= all + n))
				abort();
		}
		if (pkg_verify(r, &rep, NULL) == PQ_OK && rep.bytes_checked != pkg_file_size(r))
			abort();
		pkg_close(r);
	}
	close(fd);
}

static void delta(const uint8_t *data, size_t size, bool resume)
{
	char bpath[64], dpath[64], out[128], part[160];
	if (size < 2)
		return;
	size_t blen = (size_t)(data[0] | data[1] << 8);
	if (blen > size - 2)
		blen = size - 2;
	int bfd = memfile(data + 2, blen, bpath, sizeof(bpath));
	int dfd = memfile(data + 2 + blen, size - 2 - blen, dpath, sizeof(dpath));
	pkg_reader *r = NULL;
	const pkg_entry *e;
	pkg_apply_opts o = {.resume = resume, .mem_limit = resume ? PKG_DELTA_APPLY_MEM_MIN : 0};
	snprintf(out, sizeof(out), "%s/out", outdir);
	snprintf(part, sizeof(part), "%s.part", out);
	if (pkg_open(dpath, &r) == PQ_OK && pkg_find(r, "", &e) == PQ_OK &&
	    pkg_apply_delta_ex(r, e, bpath, out, &o) == PQ_OK)
		unlink(out); /* a (rare) valid patch: the target hash matched */
	else if (access(out, F_OK) == 0 || access(part, F_OK) == 0)
		abort(); /* a failed apply must leave nothing behind */
	pkg_close(r);
	close(bfd);
	close(dfd);
}

static void remove_outdir(void)
{
	rmdir(outdir);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	if (!outdir[0]) {
		snprintf(outdir, sizeof(outdir), "/tmp/pqota-fuzz-XXXXXX");
		if (!mkdtemp(outdir))
			abort();
		atexit(remove_outdir);
	}
	if (size < 1)
		return 0;
	if (data[0] & 1)
		delta(data + 1, size - 1, data[0] & 2);
	else
		package(data + 1, size - 1);
	return 0;
}
