/* cjson.c: RFC 8785 canonical JSON, integers only, with a bounded parser for untrusted text. */
#include "uptane/cjson.h"

#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/buf.h"
#include "core/text.h"

/* Parse flags: duplicates are an error, any value may stand at top level, and U+0000 may
 * appear in string values (jansson still refuses it in keys). */
#define PARSE_FLAGS (JSON_REJECT_DUPLICATES | JSON_DECODE_ANY | JSON_ALLOW_NUL)

#define PATH_TEXT_MAX 400 /* rendered path in an error detail, truncated beyond */
#define KEY_SHOWN_MAX 48  /* bytes of one key shown in a path */
#define FIRST_CAP     256 /* first allocation of the output buffer */

/* One step from the root to the value being encoded: an object key or an array index. */
typedef struct {
	const char *key; /* NULL for an array element */
	size_t key_len;
	size_t index;
} cj_step;

/* Encoder state. buf holds len bytes and always has room for a NUL (len < cap). */
typedef struct {
	char *buf;
	size_t len, cap, max;
	cj_step path[CJ_DEPTH_MAX + 1];
	size_t depth; /* steps in path; also the number of containers open around the value */
} cj_enc;

/* An object member, gathered so that members can be sorted. */
typedef struct {
	const char *key;
	size_t key_len;
	json_t *val;
} cj_member;

/* ---- error details ---- */

/* Shows a key as it would need to be typed: bare when it is an identifier-like word, else
 * quoted, with bytes outside printable ASCII as \xHH (keys may be hostile or invalid UTF-8,
 * and the detail ends up in logs). */
static void tb_key(pq_buf *t, const char *key, size_t len, bool first)
{
	bool bare = len > 0;
	for (size_t i = 0; i < len && bare; i++) {
		char c = key[i];
		bare = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
		       c == '_' || c == '-';
	}
	size_t shown = len > KEY_SHOWN_MAX ? KEY_SHOWN_MAX : len;
	if (bare) {
		if (!first)
			pq_buf_add(t, ".", 1);
		pq_buf_add(t, key, shown);
		if (shown < len)
			pq_buf_str(t, "...");
		return;
	}
	pq_buf_str(t, "[\"");
	for (size_t i = 0; i < shown; i++) {
		unsigned char c = (unsigned char)key[i];
		if (c >= 0x20 && c < 0x7f && c != '"' && c != '\\')
			pq_buf_char(t, (char)c);
		else
			pq_buf_printf(t, "\\x%02x", c);
	}
	pq_buf_str(t, shown < len ? "...\"]" : "\"]");
}

static void render_path(const cj_enc *e, char *out, size_t cap)
{
	pq_buf t;
	pq_buf_init_fixed(&t, out, cap);
	if (e->depth == 0) {
		pq_buf_str(&t, "(top level)");
		return;
	}
	for (size_t i = 0; i < e->depth; i++) {
		const cj_step *s = &e->path[i];
		if (s->key) {
			tb_key(&t, s->key, s->key_len, i == 0);
		} else {
			pq_buf_printf(&t, "[%zu]", s->index);
		}
	}
}

/* Records "PATH: message" for the value being encoded and returns err. */
PQ_PRINTF(3, 4) static int fail(const cj_enc *e, int err, const char *fmt, ...)
{
	char path[PATH_TEXT_MAX], msg[512];
	va_list ap;
	render_path(e, path, sizeof(path));
	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	return pq_err_set(err, "%s: %s", path, msg);
}

/* ---- UTF-8 and key order ---- */

/* A number whose order between code points equals the order of their UTF-16 encodings.
 * UTF-16 puts supplementary characters (surrogate pairs, first unit D800-DBFF) between
 * U+D7FF and U+E000, so U+E000..U+FFFF move above every supplementary code point. */
static uint32_t utf16_rank(uint32_t cp)
{
	return cp >= 0xe000 && cp <= 0xffff ? cp + 0x110000 : cp;
}

/* RFC 8785 section 3.2.3: compares keys as arrays of UTF-16 code units. Comparing code point
 * by code point with utf16_rank is equivalent: the first differing code point decides, and
 * its first differing code unit orders the same way. A key that is a prefix sorts first. */
static int key_cmp(const void *a, const void *b)
{
	const cj_member *x = a, *y = b;
	const unsigned char *p = (const unsigned char *)x->key, *q = (const unsigned char *)y->key;
	size_t i = 0, j = 0;
	while (i < x->key_len && j < y->key_len) {
		uint32_t cx = p[i], cy = q[j];
		size_t lx = 1, ly = 1;
		if (cx >= 0x80 || cy >= 0x80) {
			/* keys are checked before sorting; a malformed byte counts as itself */
			lx = pq_utf8_decode(p + i, x->key_len - i, &cx);
			ly = pq_utf8_decode(q + j, y->key_len - j, &cy);
			if (lx == 0) {
				lx = 1;
				cx = p[i];
			}
			if (ly == 0) {
				ly = 1;
				cy = q[j];
			}
		}
		if (cx != cy)
			return utf16_rank(cx) < utf16_rank(cy) ? -1 : 1;
		i += lx;
		j += ly;
	}
	return (i < x->key_len) - (j < y->key_len);
}

/* ---- output buffer ---- */

static int put(cj_enc *e, const char *s, size_t n)
{
	if (n > e->max - e->len)
		return pq_err_set(PQ_ERR_RANGE, "canonical JSON exceeds the limit of %zu bytes",
		                  e->max);
	if (n >= e->cap - e->len) {
		/* e->max < SIZE_MAX, so e->max + 1 cannot wrap */
		size_t need = e->len + n + 1, cap = e->cap;
		while (cap < need)
			cap = cap > (e->max + 1) / 2 ? e->max + 1 : cap * 2;
		char *nb = realloc(e->buf, cap);
		if (!nb)
			return pq_err_set(PQ_ERR_NOMEM, "canonical JSON: %zu bytes", cap);
		e->buf = nb;
		e->cap = cap;
	}
	memcpy(e->buf + e->len, s, n);
	e->len += n;
	e->buf[e->len] = '\0';
	return PQ_OK;
}

/* ---- values ---- */

static int put_value(cj_enc *e, json_t *v);

/* A string: '"', '\\' and U+0000..U+001F escaped (short forms where JSON has them, else
 * \u00xx in lower case), every other character copied as its UTF-8 bytes. */
static int put_string(cj_enc *e, const char *str, size_t n)
{
	static const char hex[] = "0123456789abcdef";
	const unsigned char *s = (const unsigned char *)str;
	size_t i = 0, run = 0;
	int rc = put(e, "\"", 1);
	while (rc == PQ_OK && i < n) {
		unsigned char c = s[i];
		uint32_t cp;
		if (c >= 0x80) {
			size_t l = pq_utf8_decode(s + i, n - i, &cp);
			if (l == 0)
				return fail(e, PQ_ERR_FORMAT,
				            "string is not valid UTF-8 at offset %zu (or holds a "
				            "surrogate)",
				            i);
			i += l;
			continue;
		}
		if (c >= 0x20 && c != '"' && c != '\\') {
			i++;
			continue;
		}
		char esc[6] = {'\\', 'u', '0', '0', hex[c >> 4], hex[c & 15]};
		size_t elen = 2;
		switch (c) {
		case '"':
		case '\\':
			esc[1] = (char)c;
			break;
		case '\b':
			esc[1] = 'b';
			break;
		case '\t':
			esc[1] = 't';
			break;
		case '\n':
			esc[1] = 'n';
			break;
		case '\f':
			esc[1] = 'f';
			break;
		case '\r':
			esc[1] = 'r';
			break;
		default:
			elen = 6;
		}
		rc = put(e, str + run, i - run);
		if (rc == PQ_OK)
			rc = put(e, esc, elen);
		run = ++i;
	}
	if (rc == PQ_OK)
		rc = put(e, str + run, n - run);
	if (rc == PQ_OK)
		rc = put(e, "\"", 1);
	return rc;
}

/* Decimal digits of v, which lies within +/-CJ_INT_MAX (so negation cannot overflow). */
static int put_integer(cj_enc *e, json_int_t v)
{
	char d[24];
	size_t p = sizeof(d);
	unsigned long long u = v < 0 ? (unsigned long long)-v : (unsigned long long)v;
	do {
		d[--p] = (char)('0' + u % 10);
		u /= 10;
	} while (u);
	if (v < 0)
		d[--p] = '-';
	return put(e, d + p, sizeof(d) - p);
}

/* The shortest decimal text that reads back as d, for error details only: fixed notation for
 * exponents -7..20 (as ECMAScript prints numbers), else exponent notation, and marked as a
 * real ("1" becomes "1.0"). */
static void real_text(double d, char *buf, size_t cap)
{
	int digits = 1;
	while (digits < 17) {
		snprintf(buf, cap, "%.*e", digits - 1, d);
		if (strtod(buf, NULL) == d)
			break;
		digits++;
	}
	snprintf(buf, cap, "%.*e", digits - 1, d);
	const char *e = strchr(buf, 'e');
	long exp = e ? strtol(e + 1, NULL, 10) : 0;
	if (exp >= -7 && exp <= 20)
		snprintf(buf, cap, "%.*f", exp < digits - 1 ? (int)(digits - 1 - exp) : 0, d);
	if (!strpbrk(buf, ".eEnN")) {
		size_t n = strlen(buf);
		if (n + 3 <= cap)
			memcpy(buf + n, ".0", 3);
	}
}

static int put_object(cj_enc *e, json_t *obj)
{
	size_t n = json_object_size(obj), k = 0;
	cj_member *m = NULL;
	int rc = PQ_OK;
	if (n == 0)
		return put(e, "{}", 2);
	m = calloc(n, sizeof(*m));
	if (!m)
		return pq_err_set(PQ_ERR_NOMEM, "canonical JSON: %zu object members", n);
	for (void *it = json_object_iter(obj); it && k < n; it = json_object_iter_next(obj, it)) {
		cj_member *x = &m[k++];
		x->key = json_object_iter_key(it);
		x->key_len = json_object_iter_key_len(it);
		x->val = json_object_iter_value(it);
		e->path[e->depth] = (cj_step){.key = x->key, .key_len = x->key_len};
		e->depth++;
		if (memchr(x->key, '\0', x->key_len))
			rc = fail(e, PQ_ERR_FORMAT, "key contains U+0000");
		else if (pq_utf8_check((const unsigned char *)x->key, x->key_len) != x->key_len)
			rc =
			    fail(e, PQ_ERR_FORMAT, "key is not valid UTF-8 (or holds a surrogate)");
		e->depth--;
		if (rc != PQ_OK)
			goto out;
	}
	qsort(m, k, sizeof(*m), key_cmp);
	rc = put(e, "{", 1);
	for (size_t i = 0; rc == PQ_OK && i < k; i++) {
		if (i > 0 && key_cmp(&m[i - 1], &m[i]) == 0) {
			rc = fail(e, PQ_ERR_FORMAT, "duplicate key");
			goto out;
		}
		if (i > 0)
			rc = put(e, ",", 1);
		if (rc == PQ_OK)
			rc = put_string(e, m[i].key, m[i].key_len);
		if (rc == PQ_OK)
			rc = put(e, ":", 1);
		if (rc != PQ_OK)
			goto out;
		e->path[e->depth] = (cj_step){.key = m[i].key, .key_len = m[i].key_len};
		e->depth++;
		rc = put_value(e, m[i].val);
		e->depth--;
	}
	if (rc == PQ_OK)
		rc = put(e, "}", 1);
out:
	free(m);
	return rc;
}

static int put_array(cj_enc *e, json_t *arr)
{
	size_t n = json_array_size(arr);
	int rc = put(e, "[", 1);
	for (size_t i = 0; rc == PQ_OK && i < n; i++) {
		if (i > 0)
			rc = put(e, ",", 1);
		if (rc != PQ_OK)
			break;
		e->path[e->depth] = (cj_step){.index = i};
		e->depth++;
		rc = put_value(e, json_array_get(arr, i));
		e->depth--;
	}
	if (rc == PQ_OK)
		rc = put(e, "]", 1);
	return rc;
}

static int put_value(cj_enc *e, json_t *v)
{
	char num[40];
	switch (json_typeof(v)) {
	case JSON_OBJECT:
	case JSON_ARRAY:
		/* e->depth containers enclose this one */
		if (e->depth >= CJ_DEPTH_MAX)
			return fail(e, PQ_ERR_RANGE, "nesting deeper than %d levels", CJ_DEPTH_MAX);
		return json_is_object(v) ? put_object(e, v) : put_array(e, v);
	case JSON_STRING:
		return put_string(e, json_string_value(v), json_string_length(v));
	case JSON_INTEGER: {
		json_int_t i = json_integer_value(v);
		if (i > CJ_INT_MAX || i < -CJ_INT_MAX)
			return fail(e, PQ_ERR_RANGE,
			            "integer %lld is outside +/-(2^53 - 1), the range that "
			            "canonical JSON represents exactly",
			            (long long)i);
		return put_integer(e, i);
	}
	case JSON_REAL:
		real_text(json_real_value(v), num, sizeof(num));
		return fail(e, PQ_ERR_FORMAT, "%s is not an integer (signed metadata has no reals)",
		            num);
	case JSON_TRUE:
		return put(e, "true", 4);
	case JSON_FALSE:
		return put(e, "false", 5);
	case JSON_NULL:
		return put(e, "null", 4);
	}
	return fail(e, PQ_ERR_FORMAT, "unknown JSON type %d", (int)json_typeof(v));
}

int cj_encode(const json_t *v, size_t max_len, char **out, size_t *out_len)
{
	cj_enc *e = NULL;
	int rc;
	if (!out || !out_len)
		return pq_err_set(PQ_ERR_INVAL, "cj_encode: no output pointers");
	*out = NULL;
	*out_len = 0;
	if (!v)
		return pq_err_set(PQ_ERR_INVAL, "cj_encode: no value");
	e = calloc(1, sizeof(*e));
	if (!e)
		return pq_err_set(PQ_ERR_NOMEM, "cj_encode");
	e->max = max_len < SIZE_MAX ? max_len : SIZE_MAX - 1;
	e->cap = e->max < FIRST_CAP ? e->max + 1 : FIRST_CAP;
	e->buf = malloc(e->cap);
	if (!e->buf) {
		rc = pq_err_set(PQ_ERR_NOMEM, "cj_encode");
		goto out;
	}
	/* jansson's iterators and getters take non-const pointers; nothing below writes */
	rc = put_value(e, (json_t *)v);
	if (rc == PQ_OK) {
		*out = e->buf;
		*out_len = e->len;
		e->buf = NULL;
	}
out:
	free(e->buf);
	free(e);
	return rc;
}

/* ---- parsing ---- */

/* Refuses text that opens more than CJ_DEPTH_MAX containers, before jansson builds a tree
 * (its own limit is 2048). Inside strings brackets do not count; a backslash skips the next
 * byte. For valid JSON the count is exact; for malformed text jansson reports the error,
 * which it finds no later than the point where the count could go wrong. */
static int check_nesting(const char *t, size_t len)
{
	size_t depth = 0;
	bool in_str = false;
	for (size_t i = 0; i < len; i++) {
		char c = t[i];
		if (in_str) {
			if (c == '\\')
				i++;
			else if (c == '"')
				in_str = false;
		} else if (c == '"') {
			in_str = true;
		} else if (c == '[' || c == '{') {
			if (++depth > CJ_DEPTH_MAX)
				return pq_err_set(
				    PQ_ERR_RANGE,
				    "JSON at offset %zu: nesting deeper than %d levels", i,
				    CJ_DEPTH_MAX);
		} else if (c == ']' || c == '}') {
			if (depth == 0)
				return pq_err_set(PQ_ERR_FORMAT,
				                  "JSON at offset %zu: unmatched '%c'", i, c);
			depth--;
		}
	}
	return PQ_OK;
}

/* Turns a jansson error into a pq_err. Its text quotes the input near the error, so bytes
 * outside printable ASCII are replaced before the text goes into the detail. */
static int parse_error(const json_error_t *je)
{
	char text[JSON_ERROR_TEXT_LENGTH];
	int rc;
	size_t i;
	for (i = 0; i < sizeof(text) - 1 && je->text[i]; i++) {
		unsigned char c = (unsigned char)je->text[i];
		text[i] = (char)(c >= 0x20 && c < 0x7f ? c : '?');
	}
	text[i] = '\0';
	switch (json_error_code(je)) {
	case json_error_out_of_memory:
		rc = PQ_ERR_NOMEM;
		break;
	case json_error_numeric_overflow:
	case json_error_stack_overflow:
		rc = PQ_ERR_RANGE;
		break;
	default:
		rc = PQ_ERR_FORMAT;
	}
	return pq_err_set(rc, "JSON at line %d, column %d: %s", je->line, je->column, text);
}

int cj_parse_and_encode(const char *text, size_t len, size_t max_len, char **out, size_t *out_len)
{
	json_t *v = NULL;
	json_error_t je;
	int rc;
	if (!out || !out_len)
		return pq_err_set(PQ_ERR_INVAL, "cj_parse_and_encode: no output pointers");
	*out = NULL;
	*out_len = 0;
	if (!text && len)
		return pq_err_set(PQ_ERR_INVAL, "cj_parse_and_encode: no text");
	if (!text)
		text = "";
	rc = check_nesting(text, len);
	if (rc != PQ_OK)
		goto out;
	v = json_loadb(text, len, PARSE_FLAGS, &je);
	if (!v) {
		rc = parse_error(&je);
		goto out;
	}
	rc = cj_encode(v, max_len, out, out_len);
out:
	json_decref(v);
	return rc;
}

bool cj_is_canonical(const char *text, size_t len)
{
	char *c = NULL;
	size_t n = 0, i = 0;
	bool same;
	/* the canonical form is never longer than the text it came from */
	if (cj_parse_and_encode(text, len, len, &c, &n) != PQ_OK)
		return false;
	same = n == len && memcmp(c, text, n) == 0;
	if (!same) {
		while (i < n && i < len && c[i] == text[i])
			i++;
		pq_err_set(PQ_ERR_FORMAT, "not canonical JSON: first difference at offset %zu", i);
	}
	free(c);
	return same;
}
