/* config_int.h: what the files of the configuration module share (not for users of
 * core/config.h); cross-file names are cfg__name:
 *   config.c        values, the schema check, the context, staging and precedence, origins
 *   config_value.c  text helpers and the parsing of one value by its row's type
 *   config_load.c   loading text, files, the environment and --set
 *   config_write.c  the effective configuration (dump) and the example file */
#ifndef PQOTA_CORE_CONFIG_INT_H
#define PQOTA_CORE_CONFIG_INT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "core/config.h"

#define SHOW_MAX 64 /* bytes of a value shown in an error */

/* A parsed value, before it is moved into the program's struct. */
typedef union {
	char *s;
	int64_t i;  /* INT, DURATION */
	uint64_t u; /* SIZE */
	bool b;
	int e;
	cfg_list l;
} cval;

/* A key's origin: source and a malloc'd place (NULL for defaults). */
typedef struct {
	cfg_source src;
	char *where;
} origin;

struct cfg_ctx {
	const cfg_schema *s;
	void *conf;
	size_t n;
	origin *orig; /* one per row */
};

/* One load's pending assignments, one slot per row, committed only when the load succeeds. */
typedef struct {
	bool set;
	unsigned line;
	cval v;
	char *where;
} stage;

/* config.c: values and staging */
void cfg__commit(cfg_ctx *c, stage *st, cfg_source src);
int cfg__find_key(const cfg_ctx *c, const char *name, size_t len, size_t *idx);
cval cfg__get_val(const void *conf, const cfg_field *f);
void cfg__list_free(cfg_list *l);
void cfg__stage_free(const cfg_ctx *c, stage *st);
int cfg__stage_value(const cfg_ctx *c, stage *st, size_t idx, const char *text, char *where_owned);
void cfg__val_free(cfg_type t, cval *v);

/* config_value.c: text helpers and value parsing */
char cfg__env_char(char ch);
bool cfg__env_matches(const char *key, const char *env, size_t len);
bool cfg__is_blank(char ch);
bool cfg__is_lower_alnum(char ch);
int cfg__parse_value(const cfg_field *f, const char *t, cval *v);
char *cfg__str_printf(const char *fmt, ...) PQ_PRINTF(1, 2);

/* config_write.c */
void cfg__fmt_num(cfg_type t, int64_t v, char *buf, size_t cap);

#endif
