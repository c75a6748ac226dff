/* delta_fixture.c: the files of a delta test (delta_fixture.h). */
#include "delta_fixture.h"

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <sys/stat.h>

#include "testutil.h"

void delta_files_init(delta_files *f, const char *tag)
{
	f->tmp = tu_tmpdir(tag);
	snprintf(f->dir, sizeof(f->dir), "%s", f->tmp);
	tu_join(f->base, sizeof(f->base), f->dir, "base.bin");
	tu_join(f->target, sizeof(f->target), f->dir, "target.bin");
	tu_join(f->pkg, sizeof(f->pkg), f->dir, "delta.swpg");
	tu_join(f->out, sizeof(f->out), f->dir, "out.bin");
	snprintf(f->part, sizeof(f->part), "%s.part", f->out);
	snprintf(f->ckpt, sizeof(f->ckpt), "%s.part.ckpt", f->out);
	snprintf(f->x, sizeof(f->x), "%s.x", f->out);
	snprintf(f->xpart, sizeof(f->xpart), "%s.x.part", f->out);
	snprintf(f->xckpt, sizeof(f->xckpt), "%s.x.part.ckpt", f->out);
}

void delta_files_free(delta_files *f)
{
	tu_rmtree(f->tmp);
	free(f->tmp);
}

bool delta_exists(const char *path)
{
	struct stat st;
	return stat(path, &st) == 0;
}

int delta_apply_from(const delta_files *f, const char *base, pkg_apply_opts *o)
{
	pkg_reader *r = NULL;
	const pkg_entry *all = NULL;
	size_t n = 0;
	int rc = pkg_open(f->pkg, &r);
	if (rc == PQ_OK)
		rc = pkg_list(r, &all, &n);
	if (rc == PQ_OK)
		rc = pkg_apply_delta_ex(r, &all[0], base, f->out, o);
	pkg_close(r);
	return rc;
}

int delta_apply(const delta_files *f, pkg_apply_opts *o)
{
	return delta_apply_from(f, f->base, o);
}

pkg_delta_info delta_info_of(const char *pkg)
{
	pkg_reader *r = NULL;
	const pkg_entry *all = NULL;
	size_t n = 0;
	pkg_delta_info di;
	assert_ok(pkg_open(pkg, &r));
	assert_ok(pkg_list(r, &all, &n));
	assert_ok(pkg_delta_info_read(r, &all[0], &di));
	pkg_close(r);
	return di;
}
