/* jsonv.c: typed, bounded member reads with one error format. */
#include "core/jsonv.h"

#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#include "core/buf.h"
#include "core/text.h"

#define JV_DETAIL_MAX 512

int pq_jv_fail(const pq_jv *c, const char *path, const char *key, const char *fmt, ...)
{
	char text[JV_DETAIL_MAX];
	pq_buf b;
	va_list ap;
	pq_buf_init_fixed(&b, text, sizeof(text));
	if (c->what)
		pq_buf_printf(&b, "%s: ", c->what);
	pq_buf_str(&b, path ? path : "");
	if (key)
		pq_buf_printf(&b, "%s%.64s", path && path[0] ? "." : "", key);
	pq_buf_str(&b, ": ");
	va_start(ap, fmt);
	pq_buf_vprintf(&b, fmt, ap);
	va_end(ap);
	return pq_err_set(c->err, "%s", text);
}

int pq_jv_keys(const pq_jv *c, const json_t *obj, const char *path, const char *const *allowed)
{
	const char *k;
	json_t *v;
	json_object_foreach((json_t *)obj, k, v)
	{
		(void)v;
		size_t i = 0;
		while (allowed[i] && strcmp(k, allowed[i]) != 0)
			i++;
		if (!allowed[i])
			return pq_jv_fail(c, path, k, "unknown member");
	}
	return PQ_OK;
}

json_t *pq_jv_get(const pq_jv *c, const json_t *obj, const char *key)
{
	json_t *v = json_object_get(obj, key);
	return v && c->null_absent && json_is_null(v) ? NULL : v;
}

/* The member, or NULL with *rc telling whether its absence is an error. */
static json_t *member(const pq_jv *c, const json_t *obj, const char *key, const char *path,
                      unsigned flags, int *rc)
{
	json_t *v = pq_jv_get(c, obj, key);
	*rc = !v && (flags & PQ_JV_REQUIRED) ? pq_jv_fail(c, path, key, "missing") : PQ_OK;
	return v;
}

static int check_text(const pq_jv *c, const char *path, const char *key, unsigned flags,
                      const json_t *v, size_t max)
{
	if (!json_is_string(v))
		return pq_jv_fail(c, path, key, "not a string");
	const char *s = json_string_value(v);
	size_t n = json_string_length(v);
	size_t min = flags & PQ_JV_EMPTY_OK ? 0 : 1;
	if (n < min || n > max)
		return pq_jv_fail(c, path, key, "length not %zu..%zu", min, max);
	if (strlen(s) != n)
		return pq_jv_fail(c, path, key, "contains NUL");
	if ((flags & PQ_JV_PRINTABLE) && !pq_ascii_printable(s))
		return pq_jv_fail(c, path, key, "not printable ASCII");
	if (flags & PQ_JV_NO_CTRL)
		for (size_t i = 0; i < n; i++)
			if ((unsigned char)s[i] < 0x20 || s[i] == 0x7f)
				return pq_jv_fail(c, path, key, "control character");
	return PQ_OK;
}

int pq_jv_str(const pq_jv *c, const json_t *obj, const char *key, const char *path, unsigned flags,
              size_t max, const char **out)
{
	int rc;
	json_t *v = member(c, obj, key, path, flags, &rc);
	if (!v)
		return rc;
	if ((rc = check_text(c, path, key, flags, v, max)) != PQ_OK)
		return rc;
	*out = json_string_value(v);
	return PQ_OK;
}

int pq_jv_str_copy(const pq_jv *c, const json_t *obj, const char *key, const char *path,
                   unsigned flags, char *out, size_t cap)
{
	const char *s = NULL;
	int rc = pq_jv_str(c, obj, key, path, flags, cap - 1, &s);
	if (rc == PQ_OK && s)
		memcpy(out, s, strlen(s) + 1);
	return rc;
}

int pq_jv_int(const pq_jv *c, const json_t *obj, const char *key, const char *path, unsigned flags,
              int64_t min, int64_t max, int64_t *out)
{
	int rc;
	json_t *v = member(c, obj, key, path, flags, &rc);
	if (!v)
		return rc;
	if (!json_is_integer(v) || json_integer_value(v) < min || json_integer_value(v) > max)
		return pq_jv_fail(c, path, key, "not an integer in %lld..%lld", (long long)min,
		                  (long long)max);
	*out = (int64_t)json_integer_value(v);
	return PQ_OK;
}

int pq_jv_bool(const pq_jv *c, const json_t *obj, const char *key, const char *path, unsigned flags,
               bool *out)
{
	int rc;
	json_t *v = member(c, obj, key, path, flags, &rc);
	if (!v)
		return rc;
	if (!json_is_boolean(v))
		return pq_jv_fail(c, path, key, "not a boolean");
	*out = json_is_true(v);
	return PQ_OK;
}

int pq_jv_num(const pq_jv *c, const json_t *obj, const char *key, const char *path, unsigned flags,
              double min, double max, double *out)
{
	int rc;
	json_t *v = member(c, obj, key, path, flags, &rc);
	if (!v)
		return rc;
	if (!json_is_number(v) || json_number_value(v) < min || json_number_value(v) > max)
		return pq_jv_fail(c, path, key, "not a number in %g..%g", min, max);
	*out = json_number_value(v);
	return PQ_OK;
}

int pq_jv_obj(const pq_jv *c, const json_t *obj, const char *key, const char *path, unsigned flags,
              json_t **out)
{
	int rc;
	json_t *v = member(c, obj, key, path, flags, &rc);
	if (!v)
		return rc;
	if (!json_is_object(v))
		return pq_jv_fail(c, path, key, "not an object");
	*out = v;
	return PQ_OK;
}

int pq_jv_str_array(const pq_jv *c, const json_t *obj, const char *key, const char *path,
                    unsigned flags, size_t max_items, size_t max_len, json_t **out)
{
	int rc;
	json_t *v = member(c, obj, key, path, flags, &rc);
	if (!v)
		return rc;
	if (!json_is_array(v) || json_array_size(v) == 0 || json_array_size(v) > max_items)
		return pq_jv_fail(c, path, key, "not an array of 1..%zu strings", max_items);
	size_t i;
	json_t *s;
	json_array_foreach(v, i, s)
	{
		if (!json_is_string(s) || json_string_length(s) == 0 ||
		    json_string_length(s) > max_len ||
		    strlen(json_string_value(s)) != json_string_length(s))
			return pq_jv_fail(c, path, key, "[%zu] not a string of 1..%zu bytes", i,
			                  max_len);
	}
	*out = v;
	return PQ_OK;
}
