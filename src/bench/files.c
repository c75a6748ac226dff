/* files.c: file sizes and comparisons, and the test images made of real code. */
#include "bench/bench.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "core/fileio.h"

#define IO_BUF (1u << 20)

int bench_file_size(const char *path, uint64_t *size)
{
	struct stat st;
	if (stat(path, &st) != 0)
		return pq_err_set(PQ_ERR_NOTFOUND, "%s: %s", path, strerror(errno));
	*size = (uint64_t)st.st_size;
	return PQ_OK;
}

/* Compares the open files fa and fb (of the same size) block by block. */
static int compare_fds(int fa, int fb, uint8_t *ba, uint8_t *bb, bool *equal)
{
	for (;;) {
		size_t ga = 0, gb = 0;
		int rc = pq_read_full(fa, ba, IO_BUF, &ga);
		if (rc == PQ_OK)
			rc = pq_read_full(fb, bb, IO_BUF, &gb);
		if (rc != PQ_OK)
			return rc;
		if (ga != gb || memcmp(ba, bb, ga) != 0)
			return PQ_OK;
		if (ga < IO_BUF) {
			*equal = true;
			return PQ_OK;
		}
	}
}

int bench_files_equal(const char *a, const char *b, bool *equal)
{
	int fa = open(a, O_RDONLY | O_CLOEXEC), fb = open(b, O_RDONLY | O_CLOEXEC);
	uint8_t *ba = malloc(IO_BUF), *bb = malloc(IO_BUF);
	struct stat sa, sb;
	int rc = PQ_OK;

	*equal = false;
	if (fa < 0 || fb < 0)
		rc = pq_err_set(PQ_ERR_IO, "%s: %s", fa < 0 ? a : b, strerror(errno));
	else if (!ba || !bb)
		rc = pq_err_set(PQ_ERR_NOMEM, "comparison buffers");
	else if (fstat(fa, &sa) != 0 || fstat(fb, &sb) != 0)
		rc = pq_err_set(PQ_ERR_IO, "stat: %s", strerror(errno));
	if (rc == PQ_OK && sa.st_size == sb.st_size)
		rc = compare_fds(fa, fb, ba, bb, equal);
	if (rc != PQ_OK)
		*equal = false;
	if (fa >= 0)
		close(fa);
	if (fb >= 0)
		close(fb);
	free(ba);
	free(bb);
	return rc;
}

/* ---- images ------------------------------------------------------------------------------ */

static int by_name(const struct dirent **a, const struct dirent **b)
{
	return strcmp((*a)->d_name, (*b)->d_name);
}

static int is_lib_name(const struct dirent *de)
{
	return strstr(de->d_name, ".so") != NULL;
}

/* The image under construction. */
typedef struct {
	int out;       /* the image file */
	uint64_t size; /* bytes wanted */
	uint64_t done; /* bytes written */
	size_t nfiles; /* libraries taken */
	ino_t *seen;   /* their inodes (hard links count once) */
	size_t nseen;
	uint8_t *buf; /* IO_BUF bytes */
} image;

/* Whether the library at path joins the image: a regular file of 1..BENCH_IMG_FILE_MAX bytes
 * not seen before (remembered when it joins). */
static bool image_takes(image *im, const char *path)
{
	struct stat st;
	if (lstat(path, &st) != 0 || !S_ISREG(st.st_mode) || st.st_size == 0 ||
	    st.st_size > BENCH_IMG_FILE_MAX)
		return false;
	for (size_t k = 0; k < im->nseen; k++)
		if (im->seen[k] == st.st_ino)
			return false;
	im->seen[im->nseen++] = st.st_ino;
	return true;
}

/* Appends the file at path (or as much of it as the image still wants). An unreadable file is
 * left out. */
static int image_append(image *im, const char *path)
{
	int fd = open(path, O_RDONLY | O_CLOEXEC);
	int rc = PQ_OK;
	if (fd < 0)
		return PQ_OK;
	im->nfiles++;
	while (rc == PQ_OK && im->done < im->size) {
		size_t want = im->size - im->done < IO_BUF ? (size_t)(im->size - im->done) : IO_BUF;
		size_t got = 0;
		rc = pq_read_full(fd, im->buf, want, &got);
		if (rc == PQ_OK)
			rc = pq_write_all(im->out, im->buf, got);
		im->done += got;
		if (got < want)
			break;
	}
	close(fd);
	return rc;
}

int bench_make_image(const char *lib_dir, const char *path, uint64_t size, size_t *nfiles)
{
	struct dirent **names = NULL;
	image im = {.out = -1, .size = size};
	int rc = PQ_OK;
	int n = scandir(lib_dir, &names, is_lib_name, by_name);

	*nfiles = 0;
	if (n < 0)
		return pq_err_set(PQ_ERR_IO, "%s: %s", lib_dir, strerror(errno));
	im.seen = calloc((size_t)n + 1, sizeof(*im.seen));
	im.buf = malloc(IO_BUF);
	if (!im.seen || !im.buf)
		rc = pq_err_set(PQ_ERR_NOMEM, "image buffers");
	if (rc == PQ_OK) {
		im.out = open(path, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
		if (im.out < 0)
			rc = pq_err_set(PQ_ERR_IO, "%s: %s", path, strerror(errno));
	}
	for (int i = 0; rc == PQ_OK && i < n && im.done < size; i++) {
		char p[PATH_MAX];
		if (pq_path_join(p, sizeof(p), lib_dir, names[i]->d_name) == PQ_OK &&
		    image_takes(&im, p))
			rc = image_append(&im, p);
	}
	if (rc == PQ_OK && im.done < size)
		rc = pq_err_set(PQ_ERR_NOTFOUND,
		                "%s holds only %llu bytes of shared libraries, %llu wanted",
		                lib_dir, (unsigned long long)im.done, (unsigned long long)size);
	if (im.out >= 0 && close(im.out) != 0 && rc == PQ_OK)
		rc = pq_err_set(PQ_ERR_IO, "%s: %s", path, strerror(errno));
	if (rc != PQ_OK && im.out >= 0)
		unlink(path);
	for (int i = 0; i < n; i++)
		free(names[i]);
	free(names);
	free(im.seen);
	free(im.buf);
	*nfiles = im.nfiles;
	return rc;
}
