/* config.c: declarative configuration tables: parsing, validation, precedence, dump. */
#include "core/config.h"

#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "core/fileio.h"

/* ---- values ---------------------------------------------------------------------------- */

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

static void list_free(cfg_list *l)
{
	for (size_t i = 0; i < l->n; i++)
		free(l->items[i]);
	free(l->items);
	l->items = NULL;
	l->n = 0;
}

static void val_free(cfg_type t, cval *v)
{
	if (t == CFG_T_STRING) {
		free(v->s);
		v->s = NULL;
	} else if (t == CFG_T_LIST) {
		list_free(&v->l);
	}
}

static void *member(void *conf, const cfg_field *f)
{
	return (char *)conf + f->offset;
}

static const void *cmember(const void *conf, const cfg_field *f)
{
	return (const char *)conf + f->offset;
}

static size_t member_size(cfg_type t)
{
	switch (t) {
	case CFG_T_STRING:
		return sizeof(char *);
	case CFG_T_INT:
	case CFG_T_DURATION:
		return sizeof(int64_t);
	case CFG_T_SIZE:
		return sizeof(uint64_t);
	case CFG_T_BOOL:
		return sizeof(bool);
	case CFG_T_ENUM:
		return sizeof(int);
	case CFG_T_LIST:
		return sizeof(cfg_list);
	}
	return 0;
}

/* Reads a member (borrowing its strings). */
static cval get_val(const void *conf, const cfg_field *f)
{
	const void *p = cmember(conf, f);
	cval v;
	memset(&v, 0, sizeof(v));
	switch (f->type) {
	case CFG_T_STRING:
		memcpy(&v.s, p, sizeof(v.s));
		break;
	case CFG_T_INT:
	case CFG_T_DURATION:
		memcpy(&v.i, p, sizeof(v.i));
		break;
	case CFG_T_SIZE:
		memcpy(&v.u, p, sizeof(v.u));
		break;
	case CFG_T_BOOL:
		memcpy(&v.b, p, sizeof(v.b));
		break;
	case CFG_T_ENUM:
		memcpy(&v.e, p, sizeof(v.e));
		break;
	case CFG_T_LIST:
		memcpy(&v.l, p, sizeof(v.l));
		break;
	}
	return v;
}

/* Moves *v into the member, freeing what the member held; *v is left empty. */
static void put_val(void *conf, const cfg_field *f, cval *v)
{
	void *p = member(conf, f);
	cval old = get_val(conf, f);
	val_free(f->type, &old);
	switch (f->type) {
	case CFG_T_STRING:
		memcpy(p, &v->s, sizeof(v->s));
		break;
	case CFG_T_INT:
	case CFG_T_DURATION:
		memcpy(p, &v->i, sizeof(v->i));
		break;
	case CFG_T_SIZE:
		memcpy(p, &v->u, sizeof(v->u));
		break;
	case CFG_T_BOOL:
		memcpy(p, &v->b, sizeof(v->b));
		break;
	case CFG_T_ENUM:
		memcpy(p, &v->e, sizeof(v->e));
		break;
	case CFG_T_LIST:
		memcpy(p, &v->l, sizeof(v->l));
		break;
	}
	memset(v, 0, sizeof(*v));
}

/* ---- text helpers ---------------------------------------------------------------------- */

static bool is_blank(char ch)
{
	return ch == ' ' || ch == '\t';
}

static bool is_lower_alnum(char ch)
{
	return (ch >= 'a' && ch <= 'z') || (ch >= '0' && ch <= '9');
}

static char env_char(char ch)
{
	if (ch == '.')
		return '_';
	if (ch >= 'a' && ch <= 'z')
		return (char)(ch - 'a' + 'A');
	return ch;
}

/* Does env name[0..len) spell prefix-less key `name` in environment form? */
static bool env_matches(const char *key, const char *env, size_t len)
{
	size_t i;
	for (i = 0; i < len && key[i]; i++)
		if (env_char(key[i]) != env[i])
			return false;
	return i == len && key[i] == '\0';
}

/* Returns a malloc'd formatted string, or NULL when out of memory. */
PQ_PRINTF(1, 2) static char *str_printf(const char *fmt, ...)
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

/* A growable output buffer; an allocation failure is remembered and reported at the end. */
typedef struct {
	char *p;
	size_t len, cap;
	bool oom;
} sbuf;

static void sb_put(sbuf *b, const char *s, size_t n)
{
	if (b->oom)
		return;
	if (b->len + n + 1 > b->cap) {
		size_t cap = b->cap ? b->cap : 1024;
		while (cap < b->len + n + 1)
			cap *= 2;
		char *np = realloc(b->p, cap);
		if (!np) {
			b->oom = true;
			return;
		}
		b->p = np;
		b->cap = cap;
	}
	memcpy(b->p + b->len, s, n);
	b->len += n;
	b->p[b->len] = '\0';
}

static void sb_str(sbuf *b, const char *s)
{
	sb_put(b, s, strlen(s));
}

PQ_PRINTF(2, 3) static void sb_printf(sbuf *b, const char *fmt, ...)
{
	char tmp[512];
	va_list ap;
	int n;

	va_start(ap, fmt);
	n = vsnprintf(tmp, sizeof(tmp), fmt, ap);
	va_end(ap);
	if (n < 0) {
		b->oom = true;
		return;
	}
	if ((size_t)n < sizeof(tmp)) {
		sb_put(b, tmp, (size_t)n);
		return;
	}
	char *big = malloc((size_t)n + 1);
	if (!big) {
		b->oom = true;
		return;
	}
	va_start(ap, fmt);
	vsnprintf(big, (size_t)n + 1, fmt, ap);
	va_end(ap);
	sb_put(b, big, (size_t)n);
	free(big);
}

/* Hands the buffer to *out, or frees it and reports the allocation failure. */
static int sb_finish(sbuf *b, char **out)
{
	if (b->oom || !b->p) {
		free(b->p);
		return pq_err_set(PQ_ERR_NOMEM, "building configuration text");
	}
	*out = b->p;
	return PQ_OK;
}

/* ---- formatting numbers ---------------------------------------------------------------- */

static void fmt_size(int64_t v, char *buf, size_t cap)
{
	if (v != 0 && v % CFG_GIB == 0)
		snprintf(buf, cap, "%" PRId64 "G", v / CFG_GIB);
	else if (v != 0 && v % CFG_MIB == 0)
		snprintf(buf, cap, "%" PRId64 "M", v / CFG_MIB);
	else if (v != 0 && v % CFG_KIB == 0)
		snprintf(buf, cap, "%" PRId64 "k", v / CFG_KIB);
	else
		snprintf(buf, cap, "%" PRId64, v);
}

static void fmt_duration(int64_t v, char *buf, size_t cap)
{
	if (v == 0)
		snprintf(buf, cap, "0s");
	else if (v % CFG_HOUR == 0)
		snprintf(buf, cap, "%" PRId64 "h", v / CFG_HOUR);
	else if (v % CFG_MINUTE == 0)
		snprintf(buf, cap, "%" PRId64 "m", v / CFG_MINUTE);
	else if (v % CFG_SECOND == 0)
		snprintf(buf, cap, "%" PRId64 "s", v / CFG_SECOND);
	else
		snprintf(buf, cap, "%" PRId64 "ms", v);
}

/* A number of the row's type as config text ("1M", "30s", "-4"). */
static void fmt_num(cfg_type t, int64_t v, char *buf, size_t cap)
{
	if (t == CFG_T_SIZE)
		fmt_size(v, buf, cap);
	else if (t == CFG_T_DURATION)
		fmt_duration(v, buf, cap);
	else
		snprintf(buf, cap, "%" PRId64, v);
}

/* ---- parsing values -------------------------------------------------------------------- */

#define SHOW_MAX 64

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

	while (is_blank(*p))
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
		while (p < e && is_blank(*p))
			p++;
		while (e > p && is_blank(e[-1]))
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
		list_free(&l);
	else
		*out = l;
	return rc;
}

/* Parses text t as row f's type into *v and checks its bounds or membership. The detail
 * names neither key nor place; callers wrap it. */
static int parse_value(const cfg_field *f, const char *t, cval *v)
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
		fmt_num(f->type, f->min, lim, sizeof(lim));
		return pq_err_set(PQ_ERR_RANGE, "%s is below the minimum %s",
		                  show(f, t, false, sh, sizeof(sh)), lim);
	}
	if (n > f->max) {
		fmt_num(f->type, f->max, lim, sizeof(lim));
		return pq_err_set(PQ_ERR_RANGE, "%s is above the maximum %s",
		                  show(f, t, false, sh, sizeof(sh)), lim);
	}
	if (f->type == CFG_T_SIZE)
		v->u = (uint64_t)n;
	else
		v->i = n;
	return PQ_OK;
}

/* ---- schema ---------------------------------------------------------------------------- */

static size_t count_rows(const cfg_field *t)
{
	size_t n = 0;
	while (t[n].name)
		n++;
	return n;
}

static bool name_ok(const char *s)
{
	size_t len = strlen(s);
	if (len == 0 || len > CFG_NAME_MAX || !(s[0] >= 'a' && s[0] <= 'z') || s[len - 1] == '.')
		return false;
	for (size_t i = 0; i < len; i++) {
		if (s[i] == '.' && s[i + 1] == '.')
			return false;
		if (!is_lower_alnum(s[i]) && s[i] != '_' && s[i] != '.')
			return false;
	}
	return true;
}

/* One line of printable text. */
static bool line_ok(const char *s)
{
	for (; *s; s++)
		if ((unsigned char)*s < 0x20 || *s == 0x7f)
			return false;
	return true;
}

/* An enum value that cfg_dump can write unquoted and the parser reads back. */
static bool token_ok(const char *s)
{
	if (!*s || strlen(s) > CFG_NAME_MAX)
		return false;
	for (; *s; s++)
		if (!((*s >= 'a' && *s <= 'z') || (*s >= 'A' && *s <= 'Z') ||
		      (*s >= '0' && *s <= '9') || strchr("_.:+-/", *s)))
			return false;
	return true;
}

static int check_row(const cfg_schema *s, const cfg_field *f, size_t idx)
{
	cval v;
	int rc;

	if (!name_ok(f->name))
		return pq_err_set(PQ_ERR_INVAL, "row %zu: bad name", idx);
	for (size_t j = 0; j < idx; j++) {
		const char *o = s->fields[j].name;
		bool same_env = strlen(o) == strlen(f->name);
		for (size_t k = 0; same_env && o[k]; k++)
			same_env = env_char(o[k]) == env_char(f->name[k]);
		if (same_env)
			return pq_err_set(PQ_ERR_INVAL,
			                  "'%s' repeats (or has the environment name "
			                  "of) '%s'",
			                  f->name, o);
	}
	if (member_size(f->type) == 0)
		return pq_err_set(PQ_ERR_INVAL, "'%s': unknown type %d", f->name, (int)f->type);
	if (f->offset > s->conf_size || member_size(f->type) > s->conf_size - f->offset)
		return pq_err_set(PQ_ERR_INVAL,
		                  "'%s': member at %zu lies outside the struct of %zu", f->name,
		                  f->offset, s->conf_size);
	if (!f->help || !*f->help || !line_ok(f->help))
		return pq_err_set(PQ_ERR_INVAL, "'%s': help must be one non-empty line", f->name);
	if (f->flags & ~CFG_F_SECRET)
		return pq_err_set(PQ_ERR_INVAL, "'%s': unknown flags %#x", f->name, f->flags);
	if ((f->flags & CFG_F_SECRET) && f->type != CFG_T_STRING && f->type != CFG_T_LIST)
		return pq_err_set(PQ_ERR_INVAL, "'%s': only strings and lists can be secret",
		                  f->name);
	if ((f->flags & CFG_F_SECRET) && f->def && *f->def)
		return pq_err_set(PQ_ERR_INVAL, "'%s': a secret cannot have a default", f->name);
	switch (f->type) {
	case CFG_T_INT:
	case CFG_T_SIZE:
	case CFG_T_DURATION:
		if (f->min > f->max)
			return pq_err_set(PQ_ERR_INVAL, "'%s': minimum above maximum", f->name);
		if (f->type != CFG_T_INT && f->min < 0)
			return pq_err_set(PQ_ERR_INVAL, "'%s': negative minimum", f->name);
		break;
	case CFG_T_ENUM:
		if (!f->values || !f->values[0])
			return pq_err_set(PQ_ERR_INVAL, "'%s': enum without values", f->name);
		for (size_t i = 0; f->values[i]; i++) {
			if (!token_ok(f->values[i]))
				return pq_err_set(PQ_ERR_INVAL, "'%s': bad enum value %zu", f->name,
				                  i);
			for (size_t j = 0; j < i; j++)
				if (strcmp(f->values[i], f->values[j]) == 0)
					return pq_err_set(PQ_ERR_INVAL,
					                  "'%s': enum value '%s' repeats", f->name,
					                  f->values[i]);
		}
		break;
	default:
		break;
	}
	if (!f->def && f->type != CFG_T_STRING && f->type != CFG_T_LIST)
		return pq_err_set(PQ_ERR_INVAL, "'%s': a default is required", f->name);
	rc = parse_value(f, f->def ? f->def : "", &v);
	if (rc) /* whatever the value's error, the table is what is wrong */
		return pq_err_wrap(PQ_ERR_INVAL, "'%s': default", f->name);
	val_free(f->type, &v);
	return PQ_OK;
}

int cfg_check_schema(const cfg_schema *s)
{
	int rc;
	if (!s || !s->fields || !s->title || !line_ok(s->title) || !s->env_prefix)
		return pq_err_set(PQ_ERR_INVAL, "config schema: missing title, prefix or table");
	for (const char *p = s->env_prefix; *p; p++)
		if (!((*p >= 'A' && *p <= 'Z') || (*p >= '0' && *p <= '9') || *p == '_'))
			return pq_err_set(PQ_ERR_INVAL, "config schema: bad environment prefix");
	for (size_t i = 0; s->fields[i].name; i++) {
		rc = check_row(s, &s->fields[i], i);
		if (rc)
			return pq_err_wrap(rc, "config schema '%s'", s->title);
	}
	return PQ_OK;
}

/* ---- context --------------------------------------------------------------------------- */

static int find_key(const cfg_ctx *c, const char *name, size_t len, size_t *idx)
{
	for (size_t i = 0; i < c->n; i++) {
		const char *k = c->s->fields[i].name;
		if (strlen(k) == len && memcmp(k, name, len) == 0) {
			*idx = i;
			return PQ_OK;
		}
	}
	return PQ_ERR_NOTFOUND;
}

void cfg_free(cfg_ctx *c)
{
	if (!c)
		return;
	for (size_t i = 0; i < c->n; i++) {
		const cfg_field *f = &c->s->fields[i];
		cval empty;
		memset(&empty, 0, sizeof(empty));
		if (f->type == CFG_T_STRING || f->type == CFG_T_LIST)
			put_val(c->conf, f, &empty);
		if (c->orig)
			free(c->orig[i].where);
	}
	free(c->orig);
	free(c);
}

int cfg_new(const cfg_schema *s, void *conf, cfg_ctx **out)
{
	cfg_ctx *c = NULL;
	int rc;

	*out = NULL;
	rc = cfg_check_schema(s);
	if (rc)
		return rc;
	if (!conf)
		return pq_err_set(PQ_ERR_INVAL, "config: no struct");
	c = calloc(1, sizeof(*c));
	if (!c)
		return pq_err_set(PQ_ERR_NOMEM, "config context");
	c->s = s;
	c->conf = conf;
	c->n = count_rows(s->fields);
	c->orig = calloc(c->n ? c->n : 1, sizeof(*c->orig));
	if (!c->orig) {
		free(c);
		return pq_err_set(PQ_ERR_NOMEM, "config origins");
	}
	/* clear the owned members first so that cfg_free is safe at any point below */
	for (size_t i = 0; i < c->n; i++) {
		const cfg_field *f = &s->fields[i];
		if (f->type == CFG_T_STRING || f->type == CFG_T_LIST)
			memset(member(conf, f), 0, member_size(f->type));
	}
	for (size_t i = 0; i < c->n; i++) {
		const cfg_field *f = &s->fields[i];
		cval v;
		rc = parse_value(f, f->def ? f->def : "", &v);
		if (rc) {
			rc = pq_err_wrap(rc, "config '%s': default of '%s'", s->title, f->name);
			goto out;
		}
		put_val(conf, f, &v);
	}
	*out = c;
	c = NULL;
out:
	cfg_free(c);
	return rc;
}

static void stage_free(const cfg_ctx *c, stage *st)
{
	if (!st)
		return;
	for (size_t i = 0; i < c->n; i++) {
		val_free(c->s->fields[i].type, &st[i].v);
		free(st[i].where);
	}
	free(st);
}

/* Moves the staged values into the struct where the source ranks at least as high as the
 * value's current origin. Cannot fail. */
static void commit(cfg_ctx *c, stage *st, cfg_source src)
{
	for (size_t i = 0; i < c->n; i++) {
		if (!st[i].set || c->orig[i].src > src)
			continue;
		put_val(c->conf, &c->s->fields[i], &st[i].v);
		free(c->orig[i].where);
		c->orig[i].src = src;
		c->orig[i].where = st[i].where;
		st[i].where = NULL;
		st[i].set = false;
	}
}

/* Parses text into slot idx, recording where; errors are left for the caller to wrap. */
static int stage_value(const cfg_ctx *c, stage *st, size_t idx, const char *text, char *where_owned)
{
	int rc;
	if (!where_owned)
		return pq_err_set(PQ_ERR_NOMEM, "config origin");
	rc = parse_value(&c->s->fields[idx], text, &st[idx].v);
	if (rc) {
		free(where_owned);
		return rc;
	}
	st[idx].set = true;
	st[idx].where = where_owned;
	return PQ_OK;
}

/* ---- file ------------------------------------------------------------------------------ */

static bool key_char(char ch)
{
	return (ch >= 'a' && ch <= 'z') || (ch >= 'A' && ch <= 'Z') || (ch >= '0' && ch <= '9') ||
	       ch == '_' || ch == '.' || ch == '-';
}

/* Splits one line (without its terminator) into key and unquoted value. *key points into
 * the line (keylen bytes); *value is malloc'd, NULL for a blank or comment line. */
static int parse_line(const char *line, size_t len, const char **key, size_t *keylen, char **value)
{
	const char *p = line, *end = line + len, *eq, *k, *ke;
	char *val = NULL, *w;

	*value = NULL;
	while (p < end && is_blank(*p))
		p++;
	if (p == end || *p == '#')
		return PQ_OK;
	eq = memchr(p, '=', (size_t)(end - p));
	if (!eq)
		return pq_err_set(PQ_ERR_FORMAT, "expected 'key = value'");
	k = p;
	ke = eq;
	while (ke > k && is_blank(ke[-1]))
		ke--;
	if (ke == k)
		return pq_err_set(PQ_ERR_FORMAT, "missing key before '='");
	for (const char *q = k; q < ke; q++)
		if (!key_char(*q))
			return pq_err_set(PQ_ERR_FORMAT, "invalid key '%.*s'",
			                  (int)((ke - k) > SHOW_MAX ? SHOW_MAX : (ke - k)), k);
	*key = k;
	*keylen = (size_t)(ke - k);

	p = eq + 1;
	while (p < end && is_blank(*p))
		p++;
	val = malloc((size_t)(end - p) + 1);
	if (!val)
		return pq_err_set(PQ_ERR_NOMEM, "config value");
	w = val;
	if (p < end && *p == '"') {
		for (p++;; p++) {
			if (p == end) {
				free(val);
				return pq_err_set(PQ_ERR_FORMAT, "unterminated quoted value");
			}
			if (*p == '"')
				break;
			if (*p == '\\') {
				if (p + 1 == end || (p[1] != '"' && p[1] != '\\')) {
					free(val);
					return pq_err_set(
					    PQ_ERR_FORMAT,
					    "unknown escape in quoted value (only \\\" and "
					    "\\\\ are allowed)");
				}
				p++;
			}
			*w++ = *p;
		}
		for (p++; p < end && is_blank(*p); p++)
			;
		if (p < end && *p != '#') {
			free(val);
			return pq_err_set(PQ_ERR_FORMAT, "text after the closing quote");
		}
	} else {
		const char *v = p;
		while (p < end && *p != '#')
			p++;
		if (p < end && p > v && !is_blank(p[-1])) {
			free(val);
			return pq_err_set(PQ_ERR_FORMAT, "'#' inside an unquoted value (quote the "
			                                 "value, or put a space before a comment)");
		}
		while (p > v && is_blank(p[-1]))
			p--;
		memcpy(w, v, (size_t)(p - v));
		w += p - v;
	}
	*w = '\0';
	*value = val;
	return PQ_OK;
}

int cfg_load_text(cfg_ctx *c, const char *name, const char *text, size_t len)
{
	const char *p = text, *end = text + len;
	stage *st = NULL;
	char *val = NULL;
	unsigned lineno = 0;
	int rc = PQ_OK;

	if (len > CFG_FILE_MAX)
		return pq_err_set(PQ_ERR_RANGE, "%s: %zu bytes exceeds the limit of %d", name, len,
		                  CFG_FILE_MAX);
	st = calloc(c->n ? c->n : 1, sizeof(*st));
	if (!st)
		return pq_err_set(PQ_ERR_NOMEM, "config staging");
	if (len >= 3 && memcmp(p, "\xef\xbb\xbf", 3) == 0)
		p += 3;
	while (p < end) {
		const char *eol = memchr(p, '\n', (size_t)(end - p));
		size_t l = eol ? (size_t)(eol - p) : (size_t)(end - p);
		const char *key = NULL;
		size_t keylen = 0, idx = 0;

		lineno++;
		if (l && p[l - 1] == '\r')
			l--;
		if (l > CFG_LINE_MAX) {
			rc = pq_err_set(PQ_ERR_RANGE, "%s:%u: line longer than %d bytes", name,
			                lineno, CFG_LINE_MAX);
			goto out;
		}
		if (memchr(p, '\0', l)) {
			rc = pq_err_set(PQ_ERR_FORMAT, "%s:%u: NUL byte", name, lineno);
			goto out;
		}
		rc = parse_line(p, l, &key, &keylen, &val);
		if (rc) {
			rc = pq_err_wrap(rc, "%s:%u", name, lineno);
			goto out;
		}
		p = eol ? eol + 1 : end;
		if (!val)
			continue;
		if (find_key(c, key, keylen, &idx)) {
			rc = pq_err_set(PQ_ERR_INVAL, "%s:%u: unknown key '%.*s'", name, lineno,
			                (int)keylen, key);
			goto out;
		}
		if (st[idx].set) {
			rc = pq_err_set(PQ_ERR_INVAL,
			                "%s:%u: key '%s' given twice (first on line %u)", name,
			                lineno, c->s->fields[idx].name, st[idx].line);
			goto out;
		}
		rc = stage_value(c, st, idx, val, str_printf("%s:%u", name, lineno));
		if (rc) {
			rc = pq_err_wrap(rc, "%s:%u: key '%s'", name, lineno,
			                 c->s->fields[idx].name);
			goto out;
		}
		st[idx].line = lineno;
		free(val);
		val = NULL;
	}
	commit(c, st, CFG_SRC_FILE);
out:
	free(val);
	stage_free(c, st);
	return rc;
}

int cfg_load_file(cfg_ctx *c, const char *path)
{
	char *buf = NULL;
	size_t len = 0;
	int rc = pq_file_read(path, CFG_FILE_MAX, &buf, &len);
	if (rc)
		return rc;
	rc = cfg_load_text(c, path, buf, len);
	free(buf);
	return rc;
}

/* ---- environment and --set ------------------------------------------------------------- */

int cfg_load_env(cfg_ctx *c, char *const *envp)
{
	const char *prefix = c->s->env_prefix;
	size_t plen = strlen(prefix);
	stage *st = NULL;
	int rc = PQ_OK;

	if (!envp)
		return PQ_OK;
	st = calloc(c->n ? c->n : 1, sizeof(*st));
	if (!st)
		return pq_err_set(PQ_ERR_NOMEM, "config staging");
	for (size_t e = 0; envp[e]; e++) {
		const char *var = envp[e], *eq, *nm;
		size_t idx = 0;
		bool found = false;

		if (strncmp(var, prefix, plen) != 0 || !(eq = strchr(var, '=')))
			continue;
		nm = var + plen;
		for (size_t i = 0; i < c->n && !found; i++) {
			if (env_matches(c->s->fields[i].name, nm, (size_t)(eq - nm))) {
				idx = i;
				found = true;
			}
		}
		if (!found || st[idx].set)
			continue;
		rc = stage_value(c, st, idx, eq + 1, str_printf("%.*s", (int)(eq - var), var));
		if (rc) {
			rc = pq_err_wrap(rc, "%.*s: key '%s'", (int)(eq - var), var,
			                 c->s->fields[idx].name);
			goto out;
		}
	}
	commit(c, st, CFG_SRC_ENV);
out:
	stage_free(c, st);
	return rc;
}

int cfg_set(cfg_ctx *c, const char *name_eq_value)
{
	const char *eq = strchr(name_eq_value, '=');
	size_t idx = 0, nlen;
	stage *st = NULL;
	int rc;

	if (!eq)
		return pq_err_set(PQ_ERR_FORMAT, "--set '%.*s': expected name=value", SHOW_MAX,
		                  name_eq_value);
	nlen = (size_t)(eq - name_eq_value);
	if (find_key(c, name_eq_value, nlen, &idx))
		return pq_err_set(PQ_ERR_INVAL, "--set: unknown key '%.*s'",
		                  (int)(nlen > SHOW_MAX ? SHOW_MAX : nlen), name_eq_value);
	st = calloc(c->n, sizeof(*st));
	if (!st)
		return pq_err_set(PQ_ERR_NOMEM, "config staging");
	rc = stage_value(c, st, idx, eq + 1, strdup("--set"));
	if (rc)
		rc = pq_err_wrap(rc, "--set: key '%s'", c->s->fields[idx].name);
	else
		commit(c, st, CFG_SRC_SET);
	stage_free(c, st);
	return rc;
}

int cfg_origin(const cfg_ctx *c, const char *name, cfg_source *src, const char **where)
{
	size_t idx = 0;
	if (find_key(c, name, strlen(name), &idx))
		return pq_err_set(PQ_ERR_NOTFOUND, "unknown key '%.*s'", SHOW_MAX, name);
	*src = c->orig[idx].src;
	*where = c->orig[idx].where;
	return PQ_OK;
}

/* ---- writing --------------------------------------------------------------------------- */

static void put_quoted(sbuf *b, const char *s)
{
	sb_put(b, "\"", 1);
	for (; *s; s++) {
		if (*s == '"' || *s == '\\')
			sb_put(b, "\\", 1);
		sb_put(b, s, 1);
	}
	sb_put(b, "\"", 1);
}

/* Can the text be written and read back unchanged (as a list item when item)? */
static bool writable(const char *s, bool item)
{
	size_t len = strlen(s);
	if (len > CFG_VALUE_MAX)
		return false;
	for (size_t i = 0; i < len; i++)
		if (((unsigned char)s[i] < 0x20 && s[i] != '\t') || s[i] == 0x7f)
			return false;
	if (item && (len == 0 || strchr(s, ',') || is_blank(s[0]) || is_blank(s[len - 1])))
		return false;
	return true;
}

/* Writes v as row f's value in config syntax (masked as "***" when mask). */
static int put_value(sbuf *b, const cfg_field *f, const cval *v, bool mask)
{
	char num[32];

	if (mask) {
		sb_str(b, "\"***\"");
		return PQ_OK;
	}
	switch (f->type) {
	case CFG_T_STRING:
		if (v->s && !writable(v->s, false))
			return pq_err_set(PQ_ERR_INVAL, "key '%s': string cannot be written",
			                  f->name);
		put_quoted(b, v->s ? v->s : "");
		break;
	case CFG_T_INT:
		sb_printf(b, "%" PRId64, v->i);
		break;
	case CFG_T_SIZE:
		if (v->u > (uint64_t)INT64_MAX)
			return pq_err_set(PQ_ERR_INVAL, "key '%s': size too large", f->name);
		fmt_size((int64_t)v->u, num, sizeof(num));
		sb_str(b, num);
		break;
	case CFG_T_DURATION:
		if (v->i < 0)
			return pq_err_set(PQ_ERR_INVAL, "key '%s': negative duration", f->name);
		fmt_duration(v->i, num, sizeof(num));
		sb_str(b, num);
		break;
	case CFG_T_BOOL:
		sb_str(b, v->b ? "true" : "false");
		break;
	case CFG_T_ENUM: {
		int n = 0;
		while (f->values[n])
			n++;
		if (v->e < 0 || v->e >= n)
			return pq_err_set(PQ_ERR_INVAL, "key '%s': enum index %d out of range",
			                  f->name, v->e);
		sb_str(b, f->values[v->e]);
		break;
	}
	case CFG_T_LIST: {
		size_t total = 0;
		for (size_t i = 0; i < v->l.n; i++)
			total += (i ? 1 : 0) + (v->l.items[i] ? strlen(v->l.items[i]) : 0);
		if (total > CFG_VALUE_MAX)
			return pq_err_set(PQ_ERR_INVAL, "key '%s': list longer than %d bytes",
			                  f->name, CFG_VALUE_MAX);
		sb_put(b, "\"", 1);
		for (size_t i = 0; i < v->l.n; i++) {
			const char *it = v->l.items[i];
			if (!it || !writable(it, true))
				return pq_err_set(PQ_ERR_INVAL,
				                  "key '%s': list item %zu cannot be written",
				                  f->name, i + 1);
			if (i)
				sb_put(b, ",", 1);
			for (; *it; it++) {
				if (*it == '"' || *it == '\\')
					sb_put(b, "\\", 1);
				sb_put(b, it, 1);
			}
		}
		sb_put(b, "\"", 1);
		break;
	}
	}
	return PQ_OK;
}

int cfg_dump(const cfg_ctx *c, unsigned flags, char **out)
{
	sbuf b = {NULL, 0, 0, false};
	int rc = PQ_OK;

	*out = NULL;
	sb_printf(&b, "# %s: effective configuration\n", c->s->title);
	if (!(flags & CFG_DUMP_SECRETS))
		sb_str(&b, "# secret values are shown as \"***\"\n");
	for (size_t i = 0; i < c->n; i++) {
		const cfg_field *f = &c->s->fields[i];
		cval v = get_val(c->conf, f);
		size_t line_start = b.len;
		bool mask = (f->flags & CFG_F_SECRET) && !(flags & CFG_DUMP_SECRETS);

		sb_printf(&b, "%s = ", f->name);
		rc = put_value(&b, f, &v, mask);
		if (rc)
			goto out;
		if (flags & CFG_DUMP_ORIGINS) {
			static const char *const names[] = {"default", "file", "env", "--set"};
			const origin *o = &c->orig[i];
			char *note = o->where && o->src != CFG_SRC_SET
			                 ? str_printf("%s %s", names[o->src], o->where)
			                 : strdup(names[o->src]);
			size_t used = b.oom ? 0 : b.len - line_start;
			if (!note) {
				rc = pq_err_set(PQ_ERR_NOMEM, "config dump");
				goto out;
			}
			/* the note is a comment: cut it rather than exceed a line */
			if (used + 4 < CFG_LINE_MAX)
				sb_printf(&b, "  # %.*s", (int)(CFG_LINE_MAX - used - 4), note);
			free(note);
		}
		sb_put(&b, "\n", 1);
	}
	return sb_finish(&b, out);
out:
	free(b.p);
	return rc;
}

static void put_type(sbuf *b, const cfg_field *f)
{
	char lo[32], hi[32];
	fmt_num(f->type, f->min, lo, sizeof(lo));
	fmt_num(f->type, f->max, hi, sizeof(hi));
	switch (f->type) {
	case CFG_T_STRING:
		sb_str(b, (f->flags & CFG_F_SECRET) ? "secret string" : "string");
		return;
	case CFG_T_INT:
		sb_printf(b, "integer, %s .. %s", lo, hi);
		break;
	case CFG_T_SIZE:
		sb_printf(b, "size, %s .. %s (bytes; suffix k, M, G)", lo, hi);
		break;
	case CFG_T_DURATION:
		sb_printf(b, "duration, %s .. %s (suffix ms, s, m, h)", lo, hi);
		break;
	case CFG_T_BOOL:
		sb_str(b, "boolean (true or false)");
		break;
	case CFG_T_ENUM:
		sb_str(b, "one of");
		for (size_t i = 0; f->values[i]; i++)
			sb_printf(b, "%s %s", i ? "," : ":", f->values[i]);
		break;
	case CFG_T_LIST:
		sb_str(b, "list of strings, comma-separated");
		break;
	}
	if (f->flags & CFG_F_SECRET)
		sb_str(b, ", secret");
}

int cfg_write_example(const cfg_schema *s, char **out)
{
	sbuf b = {NULL, 0, 0, false};
	int rc;

	*out = NULL;
	rc = cfg_check_schema(s);
	if (rc)
		return rc;
	sb_printf(&b, "# %s: example configuration\n", s->title);
	sb_str(&b,
	       "#\n"
	       "# Every key is listed with its default, commented out: remove the '#' to set it.\n"
	       "# Syntax: key = value. A '#' after a blank starts a comment. Double-quote a value\n"
	       "# to keep surrounding spaces or a '#'; inside quotes, write \\\" and \\\\.\n"
	       "# Sizes: bytes, or k, M, G (1k = 1024). Durations: ms, s, m, h. Lists: a, b, c.\n");
	sb_printf(&b,
	          "# Precedence: defaults < this file < environment (%s<KEY>, with '.' as '_')\n"
	          "# < --set key=value. Unknown and repeated keys are errors.\n",
	          s->env_prefix);
	for (size_t i = 0; s->fields[i].name; i++) {
		const cfg_field *f = &s->fields[i];
		cval v;
		sb_printf(&b, "\n# %s\n# type: ", f->help);
		put_type(&b, f);
		sb_printf(&b, "; env: %s", s->env_prefix);
		for (const char *p = f->name; *p; p++) {
			char ch = env_char(*p);
			sb_put(&b, &ch, 1);
		}
		sb_printf(&b, "\n#%s = ", f->name);
		rc = parse_value(f, f->def ? f->def : "", &v);
		if (rc)
			goto out;
		rc = put_value(&b, f, &v, false);
		val_free(f->type, &v);
		if (rc)
			goto out;
		sb_put(&b, "\n", 1);
	}
	return sb_finish(&b, out);
out:
	free(b.p);
	return rc;
}
