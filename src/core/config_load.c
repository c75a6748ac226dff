/* config_load.c: loading configuration text, files, the environment and --set. */
#include "core/config.h"

#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "core/config_int.h"
#include "core/fileio.h"

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
	while (p < end && cfg__is_blank(*p))
		p++;
	if (p == end || *p == '#')
		return PQ_OK;
	eq = memchr(p, '=', (size_t)(end - p));
	if (!eq)
		return pq_err_set(PQ_ERR_FORMAT, "expected 'key = value'");
	k = p;
	ke = eq;
	while (ke > k && cfg__is_blank(ke[-1]))
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
	while (p < end && cfg__is_blank(*p))
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
		for (p++; p < end && cfg__is_blank(*p); p++)
			;
		if (p < end && *p != '#') {
			free(val);
			return pq_err_set(PQ_ERR_FORMAT, "text after the closing quote");
		}
	} else {
		const char *v = p;
		while (p < end && *p != '#')
			p++;
		if (p < end && p > v && !cfg__is_blank(p[-1])) {
			free(val);
			return pq_err_set(PQ_ERR_FORMAT, "'#' inside an unquoted value (quote the "
			                                 "value, or put a space before a comment)");
		}
		while (p > v && cfg__is_blank(p[-1]))
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
		if (cfg__find_key(c, key, keylen, &idx)) {
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
		rc = cfg__stage_value(c, st, idx, val, cfg__str_printf("%s:%u", name, lineno));
		if (rc) {
			rc = pq_err_wrap(rc, "%s:%u: key '%s'", name, lineno,
			                 c->s->fields[idx].name);
			goto out;
		}
		st[idx].line = lineno;
		free(val);
		val = NULL;
	}
	cfg__commit(c, st, CFG_SRC_FILE);
out:
	free(val);
	cfg__stage_free(c, st);
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
			if (cfg__env_matches(c->s->fields[i].name, nm, (size_t)(eq - nm))) {
				idx = i;
				found = true;
			}
		}
		if (!found || st[idx].set)
			continue;
		rc = cfg__stage_value(c, st, idx, eq + 1,
		                      cfg__str_printf("%.*s", (int)(eq - var), var));
		if (rc) {
			rc = pq_err_wrap(rc, "%.*s: key '%s'", (int)(eq - var), var,
			                 c->s->fields[idx].name);
			goto out;
		}
	}
	cfg__commit(c, st, CFG_SRC_ENV);
out:
	cfg__stage_free(c, st);
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
	if (cfg__find_key(c, name_eq_value, nlen, &idx))
		return pq_err_set(PQ_ERR_INVAL, "--set: unknown key '%.*s'",
		                  (int)(nlen > SHOW_MAX ? SHOW_MAX : nlen), name_eq_value);
	st = calloc(c->n, sizeof(*st));
	if (!st)
		return pq_err_set(PQ_ERR_NOMEM, "config staging");
	rc = cfg__stage_value(c, st, idx, eq + 1, strdup("--set"));
	if (rc)
		rc = pq_err_wrap(rc, "--set: key '%s'", c->s->fields[idx].name);
	else
		cfg__commit(c, st, CFG_SRC_SET);
	cfg__stage_free(c, st);
	return rc;
}

int cfg_origin(const cfg_ctx *c, const char *name, cfg_source *src, const char **where)
{
	size_t idx = 0;
	if (cfg__find_key(c, name, strlen(name), &idx))
		return pq_err_set(PQ_ERR_NOTFOUND, "unknown key '%.*s'", SHOW_MAX, name);
	*src = c->orig[idx].src;
	*where = c->orig[idx].where;
	return PQ_OK;
}
