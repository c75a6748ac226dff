/* config_write.c: the effective configuration (dump) and the example file. */
#include "core/config.h"

#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "core/buf.h"
#include "core/config_int.h"

/* the most text a dump or an example may take (many times any table here) */
#define CFG_TEXT_MAX (16u << 20)

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
void cfg__fmt_num(cfg_type t, int64_t v, char *buf, size_t cap)
{
	if (t == CFG_T_SIZE)
		fmt_size(v, buf, cap);
	else if (t == CFG_T_DURATION)
		fmt_duration(v, buf, cap);
	else
		snprintf(buf, cap, "%" PRId64, v);
}

/* ---- writing --------------------------------------------------------------------------- */

static void put_quoted(pq_buf *b, const char *s)
{
	pq_buf_add(b, "\"", 1);
	for (; *s; s++) {
		if (*s == '"' || *s == '\\')
			pq_buf_add(b, "\\", 1);
		pq_buf_add(b, s, 1);
	}
	pq_buf_add(b, "\"", 1);
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
	if (item &&
	    (len == 0 || strchr(s, ',') || cfg__is_blank(s[0]) || cfg__is_blank(s[len - 1])))
		return false;
	return true;
}

/* Writes v as row f's value in config syntax (masked as "***" when mask). */
static int put_value(pq_buf *b, const cfg_field *f, const cval *v, bool mask)
{
	char num[32];

	if (mask) {
		pq_buf_str(b, "\"***\"");
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
		pq_buf_printf(b, "%" PRId64, v->i);
		break;
	case CFG_T_SIZE:
		if (v->u > (uint64_t)INT64_MAX)
			return pq_err_set(PQ_ERR_INVAL, "key '%s': size too large", f->name);
		fmt_size((int64_t)v->u, num, sizeof(num));
		pq_buf_str(b, num);
		break;
	case CFG_T_DURATION:
		if (v->i < 0)
			return pq_err_set(PQ_ERR_INVAL, "key '%s': negative duration", f->name);
		fmt_duration(v->i, num, sizeof(num));
		pq_buf_str(b, num);
		break;
	case CFG_T_BOOL:
		pq_buf_str(b, v->b ? "true" : "false");
		break;
	case CFG_T_ENUM: {
		int n = 0;
		while (f->values[n])
			n++;
		if (v->e < 0 || v->e >= n)
			return pq_err_set(PQ_ERR_INVAL, "key '%s': enum index %d out of range",
			                  f->name, v->e);
		pq_buf_str(b, f->values[v->e]);
		break;
	}
	case CFG_T_LIST: {
		size_t total = 0;
		for (size_t i = 0; i < v->l.n; i++)
			total += (i ? 1 : 0) + (v->l.items[i] ? strlen(v->l.items[i]) : 0);
		if (total > CFG_VALUE_MAX)
			return pq_err_set(PQ_ERR_INVAL, "key '%s': list longer than %d bytes",
			                  f->name, CFG_VALUE_MAX);
		pq_buf_add(b, "\"", 1);
		for (size_t i = 0; i < v->l.n; i++) {
			const char *it = v->l.items[i];
			if (!it || !writable(it, true))
				return pq_err_set(PQ_ERR_INVAL,
				                  "key '%s': list item %zu cannot be written",
				                  f->name, i + 1);
			if (i)
				pq_buf_add(b, ",", 1);
			for (; *it; it++) {
				if (*it == '"' || *it == '\\')
					pq_buf_add(b, "\\", 1);
				pq_buf_add(b, it, 1);
			}
		}
		pq_buf_add(b, "\"", 1);
		break;
	}
	}
	return PQ_OK;
}

int cfg_dump(const cfg_ctx *c, unsigned flags, char **out)
{
	pq_buf b;
	int rc = PQ_OK;

	*out = NULL;
	pq_buf_init(&b, CFG_TEXT_MAX);
	pq_buf_printf(&b, "# %s: effective configuration\n", c->s->title);
	if (!(flags & CFG_DUMP_SECRETS))
		pq_buf_str(&b, "# secret values are shown as \"***\"\n");
	for (size_t i = 0; i < c->n; i++) {
		const cfg_field *f = &c->s->fields[i];
		cval v = cfg__get_val(c->conf, f);
		size_t line_start = b.len;
		bool mask = (f->flags & CFG_F_SECRET) && !(flags & CFG_DUMP_SECRETS);

		pq_buf_printf(&b, "%s = ", f->name);
		rc = put_value(&b, f, &v, mask);
		if (rc)
			goto out;
		if (flags & CFG_DUMP_ORIGINS) {
			static const char *const names[] = {"default", "file", "env", "--set"};
			const origin *o = &c->orig[i];
			char *note = o->where && o->src != CFG_SRC_SET
			                 ? cfg__str_printf("%s %s", names[o->src], o->where)
			                 : strdup(names[o->src]);
			size_t used = pq_buf_err(&b) ? 0 : b.len - line_start;
			if (!note) {
				rc = pq_err_set(PQ_ERR_NOMEM, "config dump");
				goto out;
			}
			/* the note is a comment: cut it rather than exceed a line */
			if (used + 4 < CFG_LINE_MAX)
				pq_buf_printf(&b, "  # %.*s", (int)(CFG_LINE_MAX - used - 4), note);
			free(note);
		}
		pq_buf_add(&b, "\n", 1);
	}
	return pq_buf_finish(&b, out, NULL, "building configuration text");
out:
	pq_buf_free(&b);
	return rc;
}

static void put_type(pq_buf *b, const cfg_field *f)
{
	char lo[32], hi[32];
	cfg__fmt_num(f->type, f->min, lo, sizeof(lo));
	cfg__fmt_num(f->type, f->max, hi, sizeof(hi));
	switch (f->type) {
	case CFG_T_STRING:
		pq_buf_str(b, (f->flags & CFG_F_SECRET) ? "secret string" : "string");
		return;
	case CFG_T_INT:
		pq_buf_printf(b, "integer, %s .. %s", lo, hi);
		break;
	case CFG_T_SIZE:
		pq_buf_printf(b, "size, %s .. %s (bytes; suffix k, M, G)", lo, hi);
		break;
	case CFG_T_DURATION:
		pq_buf_printf(b, "duration, %s .. %s (suffix ms, s, m, h)", lo, hi);
		break;
	case CFG_T_BOOL:
		pq_buf_str(b, "boolean (true or false)");
		break;
	case CFG_T_ENUM:
		pq_buf_str(b, "one of");
		for (size_t i = 0; f->values[i]; i++)
			pq_buf_printf(b, "%s %s", i ? "," : ":", f->values[i]);
		break;
	case CFG_T_LIST:
		pq_buf_str(b, "list of strings, comma-separated");
		break;
	}
	if (f->flags & CFG_F_SECRET)
		pq_buf_str(b, ", secret");
}

int cfg_write_example(const cfg_schema *s, char **out)
{
	pq_buf b;
	int rc;

	*out = NULL;
	rc = cfg_check_schema(s);
	if (rc)
		return rc;
	pq_buf_init(&b, CFG_TEXT_MAX);
	pq_buf_printf(&b, "# %s: example configuration\n", s->title);
	pq_buf_str(
	    &b,
	    "#\n"
	    "# Every key is listed with its default, commented out: remove the '#' to set it.\n"
	    "# Syntax: key = value. A '#' after a blank starts a comment. Double-quote a value\n"
	    "# to keep surrounding spaces or a '#'; inside quotes, write \\\" and \\\\.\n"
	    "# Sizes: bytes, or k, M, G (1k = 1024). Durations: ms, s, m, h. Lists: a, b, c.\n");
	pq_buf_printf(
	    &b,
	    "# Precedence: defaults < this file < environment (%s<KEY>, with '.' as '_')\n"
	    "# < --set key=value. Unknown and repeated keys are errors.\n",
	    s->env_prefix);
	for (size_t i = 0; s->fields[i].name; i++) {
		const cfg_field *f = &s->fields[i];
		cval v;
		pq_buf_printf(&b, "\n# %s\n# type: ", f->help);
		put_type(&b, f);
		pq_buf_printf(&b, "; env: %s", s->env_prefix);
		for (const char *p = f->name; *p; p++) {
			char ch = cfg__env_char(*p);
			pq_buf_add(&b, &ch, 1);
		}
		pq_buf_printf(&b, "\n#%s = ", f->name);
		rc = cfg__parse_value(f, f->def ? f->def : "", &v);
		if (rc)
			goto out;
		rc = put_value(&b, f, &v, false);
		cfg__val_free(f->type, &v);
		if (rc)
			goto out;
		pq_buf_add(&b, "\n", 1);
	}
	return pq_buf_finish(&b, out, NULL, "building configuration text");
out:
	pq_buf_free(&b);
	return rc;
}
