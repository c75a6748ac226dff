/* jsonv.h: typed, bounded reads of the members of an untrusted JSON object (jansson), with
 * one error format everywhere: "<what>: <path>: <problem>" (or "<path>: <problem>").
 *
 * Each reader takes the object, the member's key and the path of the object ("" at the top;
 * the member's path is "<path>.<key>"). An absent member leaves *out unchanged (the caller's
 * default) unless PQ_JV_REQUIRED is given; a JSON null counts as absent when the context
 * says so. Strings are refused when they hold a NUL byte; lengths are in bytes. Values are
 * borrowed from the object: they live as long as it does. */
#ifndef PQOTA_CORE_JSONV_H
#define PQOTA_CORE_JSONV_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <jansson.h>

#include "core/err.h"

typedef struct {
	int err;          /* the code every failure returns: PQ_ERR_INVAL or PQ_ERR_FORMAT */
	const char *what; /* message prefix ("metadata", "model"), NULL for none */
	bool null_absent; /* a JSON null member counts as absent */
} pq_jv;

enum {
	PQ_JV_REQUIRED = 1 << 0,  /* absent is an error */
	PQ_JV_EMPTY_OK = 1 << 1,  /* strings: "" is accepted (default: 1..max bytes) */
	PQ_JV_PRINTABLE = 1 << 2, /* strings: printable ASCII only */
	PQ_JV_NO_CTRL = 1 << 3,   /* strings: no control characters (below 0x20, 0x7f) */
};

/* Records "<what>: <path>[.<key>]: <problem>" and returns c->err; key may be NULL. */
int pq_jv_fail(const pq_jv *c, const char *path, const char *key, const char *fmt, ...)
    PQ_PRINTF(4, 5);

/* Fails on any member of obj whose key is not in the NULL-terminated `allowed`. */
int pq_jv_keys(const pq_jv *c, const json_t *obj, const char *path,
               const char *const *allowed) PQ_MUST_CHECK;

/* The member itself when present (NULL when absent, or null with null_absent). */
json_t *pq_jv_get(const pq_jv *c, const json_t *obj, const char *key);

/* A string of 1..max bytes (0..max with PQ_JV_EMPTY_OK); *out points into obj. */
int pq_jv_str(const pq_jv *c, const json_t *obj, const char *key, const char *path, unsigned flags,
              size_t max, const char **out) PQ_MUST_CHECK;
/* The same, copied with its NUL into out[cap] (so max = cap - 1). */
int pq_jv_str_copy(const pq_jv *c, const json_t *obj, const char *key, const char *path,
                   unsigned flags, char *out, size_t cap) PQ_MUST_CHECK;
/* An integer in min..max. */
int pq_jv_int(const pq_jv *c, const json_t *obj, const char *key, const char *path, unsigned flags,
              int64_t min, int64_t max, int64_t *out) PQ_MUST_CHECK;
/* true or false. */
int pq_jv_bool(const pq_jv *c, const json_t *obj, const char *key, const char *path, unsigned flags,
               bool *out) PQ_MUST_CHECK;
/* A number (integer or real) in min..max. */
int pq_jv_num(const pq_jv *c, const json_t *obj, const char *key, const char *path, unsigned flags,
              double min, double max, double *out) PQ_MUST_CHECK;
/* An object (*out borrowed). */
int pq_jv_obj(const pq_jv *c, const json_t *obj, const char *key, const char *path, unsigned flags,
              json_t **out) PQ_MUST_CHECK;
/* An array of 1..max_items strings of 1..max_len bytes each (*out borrowed). */
int pq_jv_str_array(const pq_jv *c, const json_t *obj, const char *key, const char *path,
                    unsigned flags, size_t max_items, size_t max_len, json_t **out) PQ_MUST_CHECK;

#endif
