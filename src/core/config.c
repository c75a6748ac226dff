/* config.c: declarative configuration tables: values, the schema check, the context
 * (staging and precedence of loads), origins. Parsing is in config_value.c, loading in
 * config_load.c, writing in config_write.c. */
#include "core/config.h"

#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "core/config_int.h"

void cfg__list_free(cfg_list *l)
{
	for (size_t i = 0; i < l->n; i++)
		free(l->items[i]);
	free(l->items);
	l->items = NULL;
	l->n = 0;
}

void cfg__val_free(cfg_type t, cval *v)
{
	if (t == CFG_T_STRING) {
		free(v->s);
		v->s = NULL;
	} else if (t == CFG_T_LIST) {
		cfg__list_free(&v->l);
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
cval cfg__get_val(const void *conf, const cfg_field *f)
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
	cval old = cfg__get_val(conf, f);
	cfg__val_free(f->type, &old);
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
		if (!cfg__is_lower_alnum(s[i]) && s[i] != '_' && s[i] != '.')
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
			same_env = cfg__env_char(o[k]) == cfg__env_char(f->name[k]);
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
	rc = cfg__parse_value(f, f->def ? f->def : "", &v);
	if (rc) /* whatever the value's error, the table is what is wrong */
		return pq_err_wrap(PQ_ERR_INVAL, "'%s': default", f->name);
	cfg__val_free(f->type, &v);
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

int cfg__find_key(const cfg_ctx *c, const char *name, size_t len, size_t *idx)
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
		rc = cfg__parse_value(f, f->def ? f->def : "", &v);
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

void cfg__stage_free(const cfg_ctx *c, stage *st)
{
	if (!st)
		return;
	for (size_t i = 0; i < c->n; i++) {
		cfg__val_free(c->s->fields[i].type, &st[i].v);
		free(st[i].where);
	}
	free(st);
}

/* Moves the staged values into the struct where the source ranks at least as high as the
 * value's current origin. Cannot fail. */
void cfg__commit(cfg_ctx *c, stage *st, cfg_source src)
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
int cfg__stage_value(const cfg_ctx *c, stage *st, size_t idx, const char *text, char *where_owned)
{
	int rc;
	if (!where_owned)
		return pq_err_set(PQ_ERR_NOMEM, "config origin");
	rc = cfg__parse_value(&c->s->fields[idx], text, &st[idx].v);
	if (rc) {
		free(where_owned);
		return rc;
	}
	st[idx].set = true;
	st[idx].where = where_owned;
	return PQ_OK;
}
