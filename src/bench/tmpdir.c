/* tmpdir.c: the benchmarks' private temporary directory. */
#include "bench/bench.h"

#include <dirent.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

int bench_tmpdir_make(char *dir, size_t len)
{
	const char *t = getenv("TMPDIR");
	if (!t || !*t)
		t = "/tmp";
	if ((size_t)snprintf(dir, len, "%s/pqota-bench-XXXXXX", t) >= len)
		return pq_err_set(PQ_ERR_RANGE, "TMPDIR too long");
	if (!mkdtemp(dir))
		return pq_err_set(PQ_ERR_IO, "temporary directory in %s: %s", t, strerror(errno));
	return PQ_OK;
}

int bench_tmpdir_remove(const char *dir)
{
	DIR *d = opendir(dir);
	if (d) {
		struct dirent *de;
		while ((de = readdir(d)) != NULL)
			if (strcmp(de->d_name, ".") != 0 && strcmp(de->d_name, "..") != 0)
				unlinkat(dirfd(d), de->d_name, 0);
		closedir(d);
	}
	if (rmdir(dir) != 0)
		return pq_err_set(PQ_ERR_IO, "could not remove %s: %s", dir, strerror(errno));
	return PQ_OK;
}
