/* config_value.c: text helpers and the parsing of one value by its row's type. */
#include "core/config.h"

#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "core/config_int.h"

/* ---- text helpers ---------------------------------------------------------------------- */

bool cfg__is_blank(char ch)
{
	return ch == ' ' || ch == '\t';
}

bool cfg__is_lower_alnum(char ch)
{
	return (ch >= 'a' && ch <= 'z') || (ch >= '0' && ch <= '9');
}

char cfg__env_char(char ch)
{
	if (ch == '.')
		return '_';
	if (ch >= 'a' && ch <= 'z')
		return (char)(ch - 'a' + 'A');
	return ch;
}

/* Does env name[0..len) spell prefix-less key `name` in environment form? */
bool cfg__env_matches(const char *key, const char *env, size_t len)
{
	size_t i;
	for (i = 0; i < len && key[i]; i++)
		if (cfg__env_char(key[i]) != env[i])
			return false;
	return i == len && key[i] == '\0';
}

/* Returns a malloc'd formatted string, or NULL when out of memory. */
char *cfg__str_printf(const char *fmt, ...)
{
	va_list ap;
	char *s;
	int n;

	va_start(ap, fmt);
	n = vsnprintf(NULL, 0, fmt, ap);
	va_end(ap);
	if (n < 0)
		return NULL;
	s = malloc((size_t)n + 1);
	if (!s)
		return NULL;
	va_start(ap, fmt);
	vsnprintf(s, (size_t)n + 1, fmt, ap);
	va_end(ap);
	return s;
}

/* ---- parsing values -------------------------------------------------------------------- */

/* How a value appears in an error: quoted (or bare) and cut, or hidden for secrets. */
static const char *show(const cfg_field *f, const char *text, bool quoted, char *buf, size_t cap)
{
	size_t len = strlen(text);
	if (f->flags & CFG_F_SECRET)
		snprintf(buf, cap, "the (secret) value");
	else
		snprintf(buf, cap, "%s%.*s%s%s", quoted ? "'" : "", SHOW_MAX, text,
		         len > SHOW_MAX ? "..." : "", quoted ? "'" : "");
	return buf;
}

static int check_text(const char *t)
{
	size_t len = strlen(t);
	if (len > CFG_VALUE_MAX)
		return pq_err_set(PQ_ERR_RANGE, "value of %zu bytes exceeds the limit of %d", len,
		                  CFG_VALUE_MAX);
	for (size_t i = 0; i < len; i++) {
		unsigned char ch = (unsigned char)t[i];
		if ((ch < 0x20 && ch != '\t') || ch == 0x7f)
			return pq_err_set(PQ_ERR_FORMAT, "control character 0x%02x in value", ch);
	}
	return PQ_OK;
}

/* Reads decimal digits at s, at least one, into *out (at most `limit`); *end is the first
 * byte after them. PQ_ERR_INVAL without digits, PQ_ERR_RANGE above the limit. */
static int read_digits(const char *s, const char **end, uint64_t limit, uint64_t *out)
{
	const char *p = s;
	uint64_t v = 0;
	while (*p >= '0' && *p <= '9') {
		unsigned d = (unsigned)(*p - '0');
		if (v > (limit - d) / 10)
			return PQ_ERR_RANGE;
		v = v * 10 + d;
		p++;
	}
	if (p == s)
		return PQ_ERR_INVAL;
	*end = p;
	*out = v;
	return PQ_OK;
}

static int parse_int(const char *t, int64_t *out)
{
	const char *p = t, *end = NULL;
	bool neg = false;
	uint64_t mag = 0;
	int rc;

	if (*p == '-' || *p == '+')
		neg = *p++ == '-';
	rc = read_digits(p, &end, neg ? (uint64_t)INT64_MAX + 1 : (uint64_t)INT64_MAX, &mag);
	if (rc)
		return rc;
	if (*end)
		return PQ_ERR_INVAL;
	if (!neg)
		*out = (int64_t)mag;
	else if (mag == (uint64_t)INT64_MAX + 1)
		*out = INT64_MIN;
	else
		*out = -(int64_t)mag;
	return PQ_OK;
}

typedef struct {
	const char *suffix;
	int64_t mult;
} unit;

static const unit size_units[] = {
    {"", 1},        {"k", CFG_KIB}, {"K", CFG_KIB}, {"m", CFG_MIB},
    {"M", CFG_MIB}, {"g", CFG_GIB}, {"G", CFG_GIB}, {NULL, 0},
};

static const unit duration_units[] = {
    {"ms", 1}, {"s", CFG_SECOND}, {"m", CFG_MINUTE}, {"h", CFG_HOUR}, {NULL, 0},
};

/* A whole number with a unit suffix; a bare "0" is accepted when bare_zero. */
static int parse_scaled(const char *t, const unit *units, bool bare_zero, int64_t *out)
{
	const char *end = NULL;
	uint64_t mag = 0;
	int rc = read_digits(t, &end, (uint64_t)INT64_MAX, &mag);
	if (rc)
		return rc;
	for (const unit *u = units; u->suffix; u++) {
		if (strcmp(end, u->suffix) != 0)
			continue;
		if (mag > (uint64_t)(INT64_MAX / u->mult))
			return PQ_ERR_RANGE;
		*out = (int64_t)mag * u->mult;
		return PQ_OK;
	}
	if (bare_zero && *end == '\0' && mag == 0) {
		*out = 0;
		return PQ_OK;
	}
	return PQ_ERR_INVAL;
}

static int parse_bool(const char *t, bool *out)
{
	static const char *const yes[] = {"true", "yes", "on", "1", NULL};
	static const char *const no[] = {"false", "no", "off", "0", NULL};
	for (size_t i = 0; yes[i]; i++) {
		if (strcasecmp(t, yes[i]) == 0) {
			*out = true;
			return PQ_OK;
		}
		if (strcasecmp(t, no[i]) == 0) {
			*out = false;
			return PQ_OK;
		}
	}
	return PQ_ERR_INVAL;
}

static int parse_list(const char *t, cfg_list *out)
{
	const char *p = t;
	size_t cap = 1;
	int rc = PQ_OK;
	cfg_list l = {NULL, 0};

	while (cfg__is_blank(*p))
		p++;
	if (*p == '\0') {
		*out = l;
		return PQ_OK;
	}
	for (const char *q = t; *q; q++)
		cap += *q == ',';
	l.items = calloc(cap, sizeof(*l.items));
	if (!l.items)
		return pq_err_set(PQ_ERR_NOMEM, "list of %zu items", cap);
	p = t;
	for (;;) {
		const char *comma = strchr(p, ',');
		const char *e = comma ? comma : p + strlen(p);
		while (p < e && cfg__is_blank(*p))
			p++;
		while (e > p && cfg__is_blank(e[-1]))
			e--;
		if (e == p) {
			rc = pq_err_set(PQ_ERR_INVAL, "empty item %zu in the list", l.n + 1);
			goto out;
		}
		l.items[l.n] = strndup(p, (size_t)(e - p));
		if (!l.items[l.n]) {
			rc = pq_err_set(PQ_ERR_NOMEM, "list item");
			goto out;
		}
		l.n++;
		if (!comma)
			break;
		p = comma + 1;
	}
out:
	if (rc)
		cfg__list_free(&l);
	else
		*out = l;
	return rc;
}

/* Parses text t as row f's type into *v and checks its bounds or membership. The detail
 * names neither key nor place; callers wrap it. */
int cfg__parse_value(const cfg_field *f, const char *t, cval *v)
{
	char sh[SHOW_MAX + 32], lim[32];
	int64_t n = 0;
	int rc;

	memset(v, 0, sizeof(*v));
	rc = check_text(t);
	if (rc)
		return rc;
	switch (f->type) {
	case CFG_T_STRING:
		v->s = strdup(t);
		if (!v->s)
			return pq_err_set(PQ_ERR_NOMEM, "string value");
		return PQ_OK;
	case CFG_T_LIST:
		return parse_list(t, &v->l);
	case CFG_T_BOOL:
		if (parse_bool(t, &v->b))
			return pq_err_set(PQ_ERR_INVAL,
			                  "%s is not a boolean (true/false, yes/no, on/off, 1/0)",
			                  show(f, t, true, sh, sizeof(sh)));
		return PQ_OK;
	case CFG_T_ENUM: {
		char allowed[512];
		size_t used = 0;
		for (int i = 0; f->values && f->values[i]; i++) {
			if (strcmp(t, f->values[i]) == 0) {
				v->e = i;
				return PQ_OK;
			}
			int w = snprintf(allowed + used, sizeof(allowed) - used, "%s%s",
			                 i ? ", " : "", f->values[i]);
			if (w > 0)
				used += (size_t)w < sizeof(allowed) - used
				            ? (size_t)w
				            : sizeof(allowed) - used - 1;
		}
		if (!used)
			allowed[0] = '\0';
		return pq_err_set(PQ_ERR_INVAL, "%s is not one of: %s",
		                  show(f, t, true, sh, sizeof(sh)), allowed);
	}
	case CFG_T_INT:
		rc = parse_int(t, &n);
		if (rc == PQ_ERR_INVAL)
			return pq_err_set(rc, "%s is not an integer",
			                  show(f, t, true, sh, sizeof(sh)));
		if (rc == PQ_ERR_RANGE)
			return pq_err_set(rc, "%s is out of range",
			                  show(f, t, true, sh, sizeof(sh)));
		break;
	case CFG_T_SIZE:
		rc = parse_scaled(t, size_units, false, &n);
		if (rc == PQ_ERR_INVAL)
			return pq_err_set(
			    rc,
			    "%s is not a size (a whole number of bytes, optionally with "
			    "a suffix k, M or G)",
			    show(f, t, true, sh, sizeof(sh)));
		break;
	case CFG_T_DURATION:
		rc = parse_scaled(t, duration_units, true, &n);
		if (rc == PQ_ERR_INVAL)
			return pq_err_set(
			    rc,
			    "%s is not a duration (a whole number with a suffix ms, s, "
			    "m or h)",
			    show(f, t, true, sh, sizeof(sh)));
		break;
	default:
		return pq_err_set(PQ_ERR_INVAL, "unknown type %d", (int)f->type);
	}
	/* numbers */
	if (rc == PQ_ERR_RANGE)
		return pq_err_set(rc, "%s is too large", show(f, t, true, sh, sizeof(sh)));
	if (n < f->min) {
		cfg__fmt_num(f->type, f->min, lim, sizeof(lim));
		return pq_err_set(PQ_ERR_RANGE, "%s is below the minimum %s",
		                  show(f, t, false, sh, sizeof(sh)), lim);
	}
	if (n > f->max) {
		cfg__fmt_num(f->type, f->max, lim, sizeof(lim));
		return pq_err_set(PQ_ERR_RANGE, "%s is above the maximum %s",
		                  show(f, t, false, sh, sizeof(sh)), lim);
	}
	if (f->type == CFG_T_SIZE)
		v->u = (uint64_t)n;
	else
		v->i = n;
	return PQ_OK;
}
