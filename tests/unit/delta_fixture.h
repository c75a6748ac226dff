/* delta_fixture.h: the files of a delta test (test_delta.c, test_lzx.c): a temporary directory
 * with the base, the target, the package, the output and what an apply keeps for resuming. */
#ifndef PQOTA_TESTS_DELTA_FIXTURE_H
#define PQOTA_TESTS_DELTA_FIXTURE_H

#include <limits.h>
#include <stdbool.h>

#include "pkg/pkg.h"

typedef struct {
	char dir[PATH_MAX], base[PATH_MAX], target[PATH_MAX], pkg[PATH_MAX], out[PATH_MAX];
	char part[PATH_MAX + 16], ckpt[PATH_MAX + 16];                    /* <out>.part[.ckpt] */
	char x[PATH_MAX + 8], xpart[PATH_MAX + 16], xckpt[PATH_MAX + 24]; /* version 3 */
	char *tmp;
} delta_files;

/* A new temporary directory named after tag, and the paths in it. */
void delta_files_init(delta_files *f, const char *tag);
/* Removes the directory and everything in it. */
void delta_files_free(delta_files *f);
bool delta_exists(const char *path);

/* Applies f->pkg (its first entry) to base, or to f->base, into f->out with o. */
int delta_apply_from(const delta_files *f, const char *base, pkg_apply_opts *o);
int delta_apply(const delta_files *f, pkg_apply_opts *o);
/* The delta descriptor of the package at pkg (asserted readable). */
pkg_delta_info delta_info_of(const char *pkg);

#endif
