/* bench.h: pqota's benchmark machinery (the pqota_bench library behind `pqota bench`).
 *
 * Contract for the whole library:
 *  - It never prints. Measurements come back in result structs or through a row callback;
 *    failures come back as pq_err codes with a detail (pq_err_detail()), and the command
 *    decides what to print. The only stdio it touches is fflush before a fork.
 *  - Paths and names it is given are borrowed for the duration of the call; everything it
 *    returns lives in caller-provided storage (no allocation is handed over).
 *  - Temporary files it makes live in a directory the caller made with bench_tmpdir_make and
 *    removes with bench_tmpdir_remove; each measurement removes its own files before
 *    returning, whatever the outcome.
 *  - Times are monotonic (core/time.h), in seconds; memory peaks in KiB as getrusage gives
 *    them (ru_maxrss). */
#ifndef PQOTA_BENCH_BENCH_H
#define PQOTA_BENCH_BENCH_H

#include <limits.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "core/err.h"

/* ---- timing loops and rows (rate.c) ------------------------------------------------------- */

/* One operation under measurement; PQ_OK or a pq_err code. */
typedef int (*bench_op_fn)(void *arg);

/* Runs fn(arg) in groups of 4 for about `secs` seconds; returns operations per second, or -1
 * as soon as one call fails (its detail is left in pq_err_detail()). */
double bench_rate(bench_op_fn fn, void *arg, double secs);

/* One measured row, handed to the caller as soon as it is measured (so a long run shows its
 * progress): ops_per_s < 0 when the operation failed, with the reason in pq_err_detail();
 * bytes_per_op > 0 for throughput rows. The strings live only during the call. */
typedef void (*bench_row_fn)(void *user, const char *group, const char *name, double ops_per_s,
                             double bytes_per_op);

/* ---- crypto benchmarks (crypto.c) ----------------------------------------------------------- */

/* Each primitive: hashes and CRC-32 over 1 MiB, an AES-256-GCM chunk of 64 KiB, keygen, sign and
 * verify per signature algorithm, keygen, encap and decap per KEM, the hybrid signature and the
 * hybrid key wrap; one row per operation, about `secs` each. A failing operation is a row with
 * ops_per_s < 0; the return value is a failure to set the benchmark up (allocation, keygen). */
int bench_crypto_primitives(double secs, bench_row_fn row, void *user) PQ_MUST_CHECK;

/* Full TLS 1.3 handshakes (no session resumption) per PQC profile, client and responder in this
 * process over loopback, one row per profile. The certificates and keys it makes are written
 * to dir (the caller's, e.g. from bench_tmpdir_make) and left there. */
int bench_crypto_handshakes(const char *dir, double secs, bench_row_fn row,
                            void *user) PQ_MUST_CHECK;

/* ---- processes and memory (proc.c) ---------------------------------------------------------- */

/* This process's peak RSS in KiB, -1 when unknown. */
long bench_peak_rss_kib(void);

/* Resets this process's RSS high-water mark (Linux >= 4.0), so that children started later do
 * not inherit it as their own peak (it is carried across fork and exec). Best effort. */
void bench_reset_peak_rss(void);

/* Finds an executable regular file `name` in $PATH (default /usr/local/bin:/usr/bin:/bin) and
 * writes its path into out[len]; false when there is none. */
bool bench_find_tool(const char *name, char *out, size_t len);

/* What one measured child process cost: wall time from start to reaping, and its peak RSS. */
typedef struct {
	double secs;
	long rss_kib;
} bench_proc_cost;

/* Runs argv (argv[0] an absolute path, argv NULL-terminated; no shell) with stdout on
 * /dev/null and waits. PQ_ERR_IO when it cannot start, is killed or exits non-zero. */
int bench_run_tool(char *const argv[], bench_proc_cost *cost) PQ_MUST_CHECK;

/* Code run in a forked child: PQ_OK or a pq_err code with a detail. */
typedef int (*bench_child_fn)(const void *arg);

/* Runs fn(arg) in a forked child, so that its time and peak RSS are measured the same way as
 * an external tool's. A failure's detail comes back through a pipe (then PQ_ERR_VERIFY with
 * that detail; PQ_ERR_IO when the child could not run or died). */
int bench_run_forked(bench_child_fn fn, const void *arg, bench_proc_cost *cost) PQ_MUST_CHECK;

/* ---- temporary directory and files (tmpdir.c, files.c) -------------------------------------- */

/* Makes a private directory $TMPDIR/pqota-bench-XXXXXX (or under /tmp) into dir[len]. */
int bench_tmpdir_make(char *dir, size_t len) PQ_MUST_CHECK;

/* Removes a flat temporary directory and the files left in it (not subdirectories). The
 * files go whatever happens; PQ_ERR_IO when the directory itself could not be removed. */
int bench_tmpdir_remove(const char *dir) PQ_MUST_CHECK;

/* The size of a file (following links). */
int bench_file_size(const char *path, uint64_t *size) PQ_MUST_CHECK;

/* Compares two files byte for byte into *equal (false on any failure). */
int bench_files_equal(const char *a, const char *b, bool *equal) PQ_MUST_CHECK;

/* Where the test images come from, and the largest file taken into one. */
#define BENCH_LIB_DIR      "/usr/lib/x86_64-linux-gnu"
#define BENCH_IMG_FILE_MAX (16u << 20)

/* Writes a new file `path` (mode 0600, refused if it exists) of exactly `size` bytes: the
 * shared libraries (*.so*) of `lib_dir` that are regular files of at most BENCH_IMG_FILE_MAX
 * bytes, each inode once, concatenated in strcmp order of their names, the last one cut short.
 * Real code, so that compression ratios mean something. *nfiles: how many went in.
 * PQ_ERR_NOTFOUND when lib_dir holds too few bytes; the file is removed on failure. */
int bench_make_image(const char *lib_dir, const char *path, uint64_t size,
                     size_t *nfiles) PQ_MUST_CHECK;

/* ---- packages (pack.c) ---------------------------------------------------------------------- */

/* The level pkg uses by default for a codec (SWPG_COMP_*); 0 for none. */
int bench_comp_level(uint8_t comp);

/* One codec on one image, timed step by step. */
typedef struct {
	uint64_t image_bytes;   /* the image, as built */
	uint64_t package_bytes; /* the leaf package */
	double build_s;         /* pkg_build_leaf */
	double verify_s;        /* pkg_open + pkg_verify */
	double extract_s;       /* pkg_list + pkg_extract_image */
} bench_pack_result;

/* Builds a leaf package of the image file img (`size` bytes) with codec comp in dir, opens and
 * deep-verifies it, extracts the image, and checks the extracted image is the input
 * (PQ_ERR_VERIFY otherwise). Its files in dir are removed before returning. */
int bench_pack_codec(const char *dir, const char *img, uint64_t size, uint8_t comp,
                     bench_pack_result *res) PQ_MUST_CHECK;

/* ---- deltas next to bsdiff, xdelta3 and zstd (delta.c) --------------------------------------- */

#define BENCH_DELTA_LEVEL 19 /* zstd level asked of pqota's deltas (the engine may ignore it) */
/* zstd --patch-from: --ultra -22 --single-thread --long=W (bench_zstd_wlog): its smallest
 * deltas (on a 100 MB image with 5 KiB edited: 13.6 KB, against 16.1 KB at -3..-15 and 24.6 KB
 * at -19; multi-threaded -19: 79 KB), at the cost of time and memory. */
#define BENCH_ZSTD_LEVEL 22

typedef enum {
	BENCH_TOOL_PQOTA,
	BENCH_TOOL_BSDIFF,
	BENCH_TOOL_XDELTA3,
	BENCH_TOOL_ZSTD,
	BENCH_TOOL_COUNT
} bench_tool;

/* "pqota", "bsdiff", "xdelta3", "zstd". */
const char *bench_tool_name(bench_tool t);

/* The external delta tools found in $PATH. */
typedef struct {
	bool bsdiff;  /* bsdiff and bspatch both found */
	bool xdelta3; /* xdelta3 found */
	bool zstd;    /* zstd found */
	char bsdiff_path[PATH_MAX], bspatch_path[PATH_MAX], xdelta3_path[PATH_MAX],
	    zstd_path[PATH_MAX];
} bench_tools;

void bench_tools_find(bench_tools *t);

/* Whether tool can run with what t found (pqota always can). */
bool bench_tool_available(bench_tool tool, const bench_tools *t);

/* The window log zstd --patch-from gets (--long=W, and the same for the decoder): the
 * smallest W with 2^W >= old + new, within 20..31 (zstd's maximum; above it the delta cannot
 * see the whole base). */
int bench_zstd_wlog(uint64_t old_size, uint64_t new_size);

/* The xdelta3 source window (-B): the base rounded up to a power of two, 64 MiB..1 GiB, so
 * that xdelta3 sees as much of the base as it can. */
uint64_t bench_xdelta3_srcwin(uint64_t old_size);

/* How the tools are run. */
typedef struct {
	uint64_t bsdiff_max; /* bsdiff is skipped on pairs with a file larger than this; 0: none */
} bench_delta_opts;

/* One tool's delta from one file to another. */
typedef struct {
	bool ran;        /* the tool was run (false: skipped, the reason in error) */
	int rc;          /* PQ_OK, or why it failed or was skipped */
	char error[512]; /* the failure's (or skip's) detail when rc != PQ_OK */
	uint64_t size;   /* delta bytes */
	double create_s; /* making the delta */
	double apply_s;  /* applying it to the old file */
	long create_rss; /* peak RSS of the creating process, KiB */
	long apply_rss;  /* peak RSS of the applying process, KiB */
} bench_delta_result;

/* Creates tool's delta from old_path to new_path, applies it to old_path and checks the
 * output is byte-identical to new_path; each step runs in its own process (forked for pqota:
 * pkg_build_leaf with base_path, then pkg_apply_delta, SHA-256 checks and fsync included;
 * bsdiff/bspatch; xdelta3 -9 -B bench_xdelta3_srcwin; zstd BENCH_ZSTD_LEVEL --patch-from). Its
 * files in dir are removed before returning. *res is always filled (res->ran, res->rc,
 * res->error); the return value is res->rc (PQ_ERR_NOTFOUND or PQ_ERR_RANGE with ran false
 * when skipped: not installed, or over opts->bsdiff_max). */
int bench_delta_run(bench_tool tool, const bench_tools *t, const bench_delta_opts *opts,
                    const char *dir, const char *old_path, const char *new_path,
                    bench_delta_result *res);

/* The peak RSS (KiB) of a forked child that does nothing: what every forked measurement
 * carries from this process. */
long bench_fork_baseline_kib(void);

/* A deadline for each measured child process (bench_run_tool, bench_run_forked): past it the
 * child is killed and the run fails with PQ_ERR_TIMEOUT. 0 (the default): none. */
void bench_set_timeout(double secs);

/* ---- synthetic pairs (synth.c) --------------------------------------------------------------- */

typedef enum {
	BENCH_SYNTH_EDIT,   /* 5 edits of 1 KiB */
	BENCH_SYNTH_INSERT, /* 3 insertions of 1500 bytes */
	BENCH_SYNTH_MOVE,   /* 2 blocks of size/64 (<= 4 MiB) moved */
	BENCH_SYNTH_MIXED,  /* edits, insertions and moves together */
	BENCH_SYNTH_RANDOM  /* incompressible: random bytes, 3 edits of 1 KiB */
} bench_synth_kind;

/* Writes a new file old_path of `size` bytes (>= 64 KiB) made from seed: 4 KiB blocks of
 * random bytes (30 %), code-like words, text, near-repeats of a recent block, tables and
 * padding (pure random bytes for BENCH_SYNTH_RANDOM); and new_path, the old image with kind's
 * change. The same arguments give the same bytes on every machine. A description of the
 * change goes into what[what_len]. Both files are refused if they exist; on failure neither
 * is left. */
int bench_synth_pair(bench_synth_kind kind, uint64_t size, uint64_t seed, const char *old_path,
                     const char *new_path, char *what, size_t what_len) PQ_MUST_CHECK;

/* ---- the pairs of the delta benchmark (pairs.c) -----------------------------------------------
 */

typedef enum {
	BENCH_CLASS_CODE,        /* executable code, uncompressed (ELF, PE, GRUB modules) */
	BENCH_CLASS_CODE_PACKED, /* executable firmware whose code is compressed inside (UEFI FVs)
	                          */
	BENCH_CLASS_DATA,        /* a synthetic image */
	BENCH_CLASS_RANDOM       /* incompressible */
} bench_class;

/* "code", "code-packed", "data", "random". */
const char *bench_class_name(bench_class c);

/* Which pairs a run takes (bits). */
#define BENCH_SET_QUICK 1u /* small pairs only (<= 8 MiB) */
#define BENCH_SET_FULL  2u /* the default run: firmware, system libraries, 100 MB images */
#define BENCH_SET_LARGE 4u /* adds the 1 GB images */

#define BENCH_PAIRS_MAX 32

typedef struct {
	char name[48];  /* e.g. "synth-100m-edit", "fw-ovmf-code" */
	char what[320]; /* what the pair is */
	bench_class cls;
	bool synthetic;        /* made by bench_pair_prepare in the run's directory */
	bench_synth_kind kind; /* synthetic: the change */
	uint64_t size;         /* synthetic: the old image's size */
	char old_path[PATH_MAX], new_path[PATH_MAX];
	char missing[256]; /* not empty: the pair cannot run (why) */
} bench_pair;

/* Where fetched firmware lives: $PQOTA_CACHE, $XDG_CACHE_HOME/pqota or ~/.cache/pqota, then
 * bench-firmware (scripts/fetch-firmware fills it). */
int bench_firmware_dir(char *out, size_t len) PQ_MUST_CHECK;

/* The pairs of `sets` into out[max] (*n of them), in run order: firmware from
 * bench_firmware_dir's pairs.tsv (lines "name<TAB>class<TAB>old<TAB>new<TAB>what", paths
 * relative to it; a missing manifest is one pair with `missing` set), the system's
 * libcrypto to the one pqota runs on, libLLVM 14 to 15 (full), the synthetic images and an
 * incompressible pair. */
int bench_pairs_list(unsigned sets, bench_pair *out, size_t max, size_t *n) PQ_MUST_CHECK;

/* Makes a synthetic pair's files in dir (after checking the file system has room for them,
 * a delta and an output: PQ_ERR_RANGE otherwise); nothing to do for the others. */
int bench_pair_prepare(bench_pair *p, const char *dir) PQ_MUST_CHECK;

/* Removes what bench_pair_prepare made. */
void bench_pair_cleanup(const bench_pair *p);

/* ---- the targets on one pair (targets.c) ----------------------------------------------
 */

typedef enum {
	BENCH_NA,
	BENCH_MET,
	BENCH_NOT_MET
} bench_verdict;

typedef enum {
	BENCH_TGT_SIZE,     /* delta <= the best of the others */
	BENCH_TGT_CODE10,   /* code: delta <= 90 % of the best of the others */
	BENCH_TGT_SPEED10X, /* images >= 1 MB: encode >= 10x faster than bsdiff */
	BENCH_TGT_1G60S,    /* images >= 1 GB: encode < 60 s */
	BENCH_TGT_APPLYMEM, /* apply peak RSS <= the limit */
	BENCH_TGT_COUNT
} bench_target;

/* A short name of each target ("size<=best", ...). */
const char *bench_target_name(bench_target t);

typedef struct {
	int best; /* the tool (not pqota) with the smallest delta, -1: none */
	bench_verdict v[BENCH_TGT_COUNT];
	char why[BENCH_TGT_COUNT][96]; /* the figures behind each verdict */
} bench_targets;

/* The targets of pqota's result on a pair of class cls whose new file has new_size bytes,
 * against the other tools' results (res[BENCH_TOOL_COUNT]); apply_limit_kib is the apply
 * memory limit. A target whose figures are missing (a tool skipped or failed) is BENCH_NA,
 * with the reason in why; a failed pqota is BENCH_NOT_MET everywhere. */
void bench_targets_eval(bench_class cls, uint64_t new_size, const bench_delta_result *res,
                        long apply_limit_kib, bench_targets *out);

/* tail under pqota's cache directory ($PQOTA_CACHE, else $XDG_CACHE_HOME/pqota, else
 * ~/.cache/pqota, as scripts/lib.sh's pqota_cache_root) into p[len]. */
int bench_cache_path(const char *tail, char *p, size_t len) PQ_MUST_CHECK;

/* The real path of the libcrypto.so.3 this process runs on (found through the loaded library,
 * else where scripts/bootstrap puts it: $PQOTA_CACHE, $XDG_CACHE_HOME/pqota or
 * ~/.cache/pqota, then openssl-current/lib/) into out[len] (len >= PATH_MAX). */
int bench_loaded_libcrypto(char *out, size_t len) PQ_MUST_CHECK;

#endif
