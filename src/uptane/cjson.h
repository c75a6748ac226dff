/* cjson.h: canonical JSON (RFC 8785 subset) for the bytes that Uptane metadata signs.
 *
 * The encoding is RFC 8785 (JSON Canonicalization Scheme) restricted to what metadata
 * needs; docs/canonical-json.md gives the rules and the reasons. In short: no whitespace,
 * object members sorted by the UTF-16 code units of their keys, strings escaped minimally
 * (only '"', '\\' and U+0000..U+001F), integers only and only within +/-(2^53 - 1), valid
 * UTF-8 only, at most CJ_DEPTH_MAX nested containers, and an output size the caller bounds.
 *
 * Errors follow core/err.h. PQ_ERR_FORMAT: malformed or unsupported input (syntax, reals,
 * invalid UTF-8, lone surrogates, duplicate keys, U+0000 in a key). PQ_ERR_RANGE: a bound
 * (integer range, nesting depth, output size). PQ_ERR_INVAL: bad arguments. PQ_ERR_NOMEM.
 * The detail names the path of the offending value where there is one, for example
 * "signed.targets.ECU_011.length: 1.5 is not an integer". Thread-safe (no shared state). */
#ifndef PQOTA_UPTANE_CJSON_H
#define PQOTA_UPTANE_CJSON_H

#include <stdbool.h>
#include <stddef.h>

#include <jansson.h>

#include "core/err.h"

/* Maximum nesting of arrays and objects: "[]" is depth 1, "[[]]" depth 2. */
#define CJ_DEPTH_MAX 32

/* The largest magnitude an integer may have: 2^53 - 1, the limit of integers that an IEEE-754
 * double holds exactly and without ambiguity (I-JSON, RFC 7493 section 2.2). */
#define CJ_INT_MAX 9007199254740991LL

/* Encodes v canonically. On success *out is a malloc'd buffer that the caller frees with
 * free(); it holds *out_len bytes of canonical JSON followed by a NUL that *out_len does not
 * count (the canonical form itself never contains a NUL byte). The encoding may be at most
 * max_len bytes, or PQ_ERR_RANGE. On failure *out is NULL and *out_len 0. v is only read
 * (jansson's iterators take a non-const object, but nothing is changed), and cycles are
 * caught by the depth bound. Any json_t is accepted at top level, not only objects. */
int cj_encode(const json_t *v, size_t max_len, char **out, size_t *out_len) PQ_MUST_CHECK;

/* Parses len bytes of untrusted JSON text (no NUL terminator needed) and encodes the result
 * as cj_encode does. The parser rejects syntax errors, trailing data, duplicate keys (also
 * when spelled differently, "a" and "\u0061"), invalid UTF-8, lone surrogate escapes, U+0000
 * in keys, integers outside the range, reals, and nesting deeper than CJ_DEPTH_MAX (checked
 * before any tree is built). Text at top level may be any JSON value. The input itself is
 * not size-checked here: callers bound what they read. Output ownership as cj_encode. */
int cj_parse_and_encode(const char *text, size_t len, size_t max_len, char **out,
                        size_t *out_len) PQ_MUST_CHECK;

/* True when text[0..len) is exactly the canonical encoding of the value it denotes, that is,
 * when cj_parse_and_encode would return the same bytes. A verifier calls this on received
 * signed bytes before checking signatures, so only one byte string is ever accepted for a
 * given piece of metadata. When false, pq_err_detail() says why (a parse error, or the first
 * byte at which text differs from its canonical form). */
bool cj_is_canonical(const char *text, size_t len);

#endif
