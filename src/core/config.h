/* config.h: declarative configuration: one table of typed keys per program, filled from
 * defaults, a config file, the environment and --set, validated, with each value's origin.
 *
 * A program describes its settings once, as rows of a cfg_field table (built with the
 * CFG_* row macros, which check at compile time that the struct member has the right
 * type), wraps the table in a cfg_schema, and loads:
 *
 *	static const cfg_field server_fields[] = {
 *		CFG_STRING("listen", server_conf, listen, "0.0.0.0:8443", "address:port to serve"),
 *		CFG_INT("workers", server_conf, workers, "4", 1, 256, "worker threads"),
 *		CFG_END,
 *	};
 *	static const cfg_schema server_schema = {"pqota server", "PQOTA_", server_fields,
 *	                                         sizeof(server_conf)};
 *	server_conf sc;
 *	cfg_ctx *c = NULL;
 *	rc = cfg_new(&server_schema, &sc, &c);          (defaults)
 *	rc = cfg_load_file(c, path);                     (optional)
 *	rc = cfg_load_env(c, environ);
 *	rc = cfg_set(c, "workers=8");                    (each --set argument)
 *	...
 *	cfg_free(c);                                      (frees sc's strings and lists too)
 *
 * Precedence is by source, not by call order: defaults < file < environment < --set. A
 * value from a lower source never replaces one from a higher source; within one source
 * the later call wins (a second file overrides the first).
 *
 * Every load is all-or-nothing: when it fails, the struct and the origins are unchanged,
 * and pq_err_detail() names the place ("server.conf:12: key 'workers': 0 is below the
 * minimum 1"). Values of secret keys never appear in error details or (unless asked) in
 * dumps.
 *
 * File format (also written by cfg_dump and cfg_write_example):
 *  - one `key = value` per line; blank lines and lines starting with '#' are ignored;
 *  - an unquoted value ends at a '#' preceded by a space or tab (a comment) and has
 *    surrounding blanks removed; a '#' inside an unquoted value is an error (quote it);
 *  - a value in double quotes keeps spaces and '#'; \" and \\ are its only escapes;
 *  - lists are comma-separated; items are trimmed; empty items are an error;
 *  - unknown keys and keys given twice are errors; control characters are refused;
 *  - a line is at most CFG_LINE_MAX bytes, a value CFG_VALUE_MAX, the file CFG_FILE_MAX;
 *    lines may end in CRLF and the file may start with a UTF-8 byte order mark.
 *
 * Types and the C member each one writes:
 *	CFG_T_STRING	char *		any text (malloc'd, never NULL after cfg_new)
 *	CFG_T_INT	int64_t		decimal, optional sign, within [min, max]
 *	CFG_T_BOOL	bool		true/false, yes/no, on/off, 1/0 (any case)
 *	CFG_T_SIZE	uint64_t	bytes; suffix k, M or G (1k = 1024; any case), [min, max]
 *	CFG_T_DURATION	int64_t		milliseconds; suffix ms, s, m or h ("0" alone is
 *					allowed), within [min, max]
 *	CFG_T_ENUM	int		index into the row's values[] (exact, case-sensitive match)
 *	CFG_T_LIST	cfg_list	comma-separated strings
 *
 * Threading: a cfg_ctx belongs to one thread; once loading is over, the struct may be read
 * from any thread. */
#ifndef PQOTA_CORE_CONFIG_H
#define PQOTA_CORE_CONFIG_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "core/err.h"

#define CFG_LINE_MAX 4096
#define CFG_FILE_MAX (1024 * 1024)
#define CFG_NAME_MAX 64
/* The longest value (after unquoting) from any source: small enough that any value, quoted
 * and escaped by cfg_dump, still fits in one CFG_LINE_MAX line. */
#define CFG_VALUE_MAX 2000

/* Units for the min/max of size and duration rows. */
#define CFG_KIB    ((int64_t)1 << 10)
#define CFG_MIB    ((int64_t)1 << 20)
#define CFG_GIB    ((int64_t)1 << 30)
#define CFG_SECOND ((int64_t)1000)
#define CFG_MINUTE ((int64_t)60 * 1000)
#define CFG_HOUR   ((int64_t)60 * 60 * 1000)

typedef enum {
	CFG_T_STRING = 1,
	CFG_T_INT,
	CFG_T_BOOL,
	CFG_T_SIZE,
	CFG_T_DURATION,
	CFG_T_ENUM,
	CFG_T_LIST,
} cfg_type;

/* A list value: n malloc'd strings (items is NULL when n is 0). Owned by the struct. */
typedef struct {
	char **items;
	size_t n;
} cfg_list;

/* Row flags. CFG_F_SECRET: masked in dumps and error details; strings and lists only, and
 * without a default. */
#define CFG_F_SECRET 1u

/* One key. Rows are normally written with the CFG_* macros below. */
typedef struct cfg_field {
	const char *name; /* [a-z][a-z0-9_.]*, at most CFG_NAME_MAX; NULL ends the table */
	cfg_type type;
	size_t offset; /* of the member in the program's struct */
	/* The default, in config-file syntax without quotes ("4", "30s", "1M", "a,b"). NULL is
	 * the empty string or list; numbers, bools and enums need one. */
	const char *def;
	int64_t min, max;          /* INT, SIZE, DURATION (ms): inclusive bounds */
	const char *const *values; /* ENUM: the allowed values, NULL-terminated */
	unsigned flags;            /* CFG_F_* */
	const char *help;          /* one line */
} cfg_field;

/* A program's configuration: everything the functions below need besides the struct. */
typedef struct {
	const char *title;       /* "pqota server": heads dumps and the example file */
	const char *env_prefix;  /* "PQOTA_": environment name = prefix + upper(name), '.'->'_' */
	const cfg_field *fields; /* ends with CFG_END */
	size_t conf_size;        /* sizeof the struct: every row must lie inside it */
} cfg_schema;

/* Compile-time check that member m of T has type ctype; yields its offset. */
/* NOLINTNEXTLINE(bugprone-macro-parentheses): a type name in _Generic cannot be parenthesized */
#define CFG_OFFSET_(T, m, ctype) (offsetof(T, m) + 0u * _Generic(((T *)0)->m, ctype : 1u))

#define CFG_STRING(nm, T, m, dflt, hlp)                                                            \
	{                                                                                          \
		.name = (nm), .type = CFG_T_STRING, .offset = CFG_OFFSET_(T, m, char *),           \
		.def = (dflt), .help = (hlp)                                                       \
	}
/* A secret string: empty by default, masked when shown. */
#define CFG_SECRET(nm, T, m, hlp)                                                                  \
	{                                                                                          \
		.name = (nm), .type = CFG_T_STRING, .offset = CFG_OFFSET_(T, m, char *),           \
		.flags = CFG_F_SECRET, .help = (hlp)                                               \
	}
#define CFG_INT(nm, T, m, dflt, lo, hi, hlp)                                                       \
	{                                                                                          \
		.name = (nm), .type = CFG_T_INT, .offset = CFG_OFFSET_(T, m, int64_t),             \
		.def = (dflt), .min = (lo), .max = (hi), .help = (hlp)                             \
	}
#define CFG_BOOL(nm, T, m, dflt, hlp)                                                              \
	{                                                                                          \
		.name = (nm), .type = CFG_T_BOOL, .offset = CFG_OFFSET_(T, m, bool),               \
		.def = (dflt), .help = (hlp)                                                       \
	}
#define CFG_SIZE(nm, T, m, dflt, lo, hi, hlp)                                                      \
	{                                                                                          \
		.name = (nm), .type = CFG_T_SIZE, .offset = CFG_OFFSET_(T, m, uint64_t),           \
		.def = (dflt), .min = (lo), .max = (hi), .help = (hlp)                             \
	}
#define CFG_DURATION(nm, T, m, dflt, lo, hi, hlp)                                                  \
	{                                                                                          \
		.name = (nm), .type = CFG_T_DURATION, .offset = CFG_OFFSET_(T, m, int64_t),        \
		.def = (dflt), .min = (lo), .max = (hi), .help = (hlp)                             \
	}
#define CFG_ENUM(nm, T, m, dflt, vals, hlp)                                                        \
	{                                                                                          \
		.name = (nm), .type = CFG_T_ENUM, .offset = CFG_OFFSET_(T, m, int), .def = (dflt), \
		.values = (vals), .help = (hlp)                                                    \
	}
#define CFG_LIST(nm, T, m, dflt, hlp)                                                              \
	{                                                                                          \
		.name = (nm), .type = CFG_T_LIST, .offset = CFG_OFFSET_(T, m, cfg_list),           \
		.def = (dflt), .help = (hlp)                                                       \
	}
#define CFG_END                                                                                    \
	{                                                                                          \
		.name = NULL                                                                       \
	}

/* Where a value came from. Ordered: a higher source overrides a lower one. */
typedef enum {
	CFG_SRC_DEFAULT = 0,
	CFG_SRC_FILE = 1,
	CFG_SRC_ENV = 2,
	CFG_SRC_SET = 3,
} cfg_source;

typedef struct cfg_ctx cfg_ctx;

/* Checks a schema: names well-formed and unique (environment names too), types, bounds,
 * enum values, help texts, members inside conf_size, defaults parse and lie in bounds,
 * secrets have no default. cfg_new runs it; a program's unit test may too. */
int cfg_check_schema(const cfg_schema *s) PQ_MUST_CHECK;

/* Checks the schema, then writes every row's default into conf (other members are left
 * alone; the string and list members are overwritten without being freed). On success
 * *out owns the strings and lists in conf until cfg_free; conf must outlive it. */
int cfg_new(const cfg_schema *s, void *conf, cfg_ctx **out) PQ_MUST_CHECK;

/* Loads a config file (a regular file of at most CFG_FILE_MAX bytes). A missing file is
 * PQ_ERR_NOTFOUND, so that an optional file can be skipped. Syntax errors are
 * PQ_ERR_FORMAT, unknown or repeated keys and bad values PQ_ERR_INVAL, values out of bounds
 * and over-long lines or files PQ_ERR_RANGE. */
int cfg_load_file(cfg_ctx *c, const char *path) PQ_MUST_CHECK;

/* The same over text in memory; `name` stands for the file in origins and messages. The
 * text need not be NUL-terminated; a NUL byte inside it is an error. */
int cfg_load_text(cfg_ctx *c, const char *name, const char *text, size_t len) PQ_MUST_CHECK;

/* Applies the variables of envp (NULL-terminated "NAME=value" strings, e.g. environ; NULL
 * is empty) whose name is the prefix plus a table key upper-cased with '.' as '_'. Other
 * variables, including other prefixed ones, are ignored. Values are taken literally (no
 * quotes or comments); when a name occurs twice the first wins, as with getenv. */
int cfg_load_env(cfg_ctx *c, char *const *envp) PQ_MUST_CHECK;

/* Applies one command-line "name=value" (the value literal, as the shell passed it).
 * Unknown names are PQ_ERR_INVAL, a missing '=' PQ_ERR_FORMAT. */
int cfg_set(cfg_ctx *c, const char *name_eq_value) PQ_MUST_CHECK;

/* The origin of a key's current value. *where (owned by c, valid until the key changes or
 * cfg_free) is NULL for a default, "path:line" for a file, the variable's name for the
 * environment and "--set" for --set. PQ_ERR_NOTFOUND for an unknown key. */
int cfg_origin(const cfg_ctx *c, const char *name, cfg_source *src,
               const char **where) PQ_MUST_CHECK;

#define CFG_DUMP_SECRETS 1u /* show secret values instead of "***" */
#define CFG_DUMP_ORIGINS 2u /* annotate each line with where its value came from */

/* The effective configuration (read from the struct now) as a config file, every key in
 * table order. With CFG_DUMP_SECRETS, loading the text back yields the same values.
 * Fails (PQ_ERR_INVAL) for values the file format cannot hold, which loading never
 * produces: a list item that is empty, has a comma or surrounding blanks, a control
 * character, an enum index out of range. Caller frees *out. */
int cfg_dump(const cfg_ctx *c, unsigned flags, char **out) PQ_MUST_CHECK;

/* A commented example file: a header on the format, then for each key its help, type,
 * bounds, allowed values and environment name, and a commented-out `#key = default`
 * line (removing the leading '#' of those lines gives a file that loads). Caller frees
 * *out. */
int cfg_write_example(const cfg_schema *s, char **out) PQ_MUST_CHECK;

/* Frees the strings and lists in conf (setting them to NULL/empty) and the context.
 * NULL-tolerant. */
void cfg_free(cfg_ctx *c);

#endif
