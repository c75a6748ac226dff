/* util.c: error printing and argument helpers for the pqota subcommands. */
#include "cli/cli.h"

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/err.h"
#include "core/fileio.h"

int cli_error(int rc, const char *fmt, ...)
{
	va_list ap;
	fputs("pqota: error: ", stderr);
	va_start(ap, fmt);
	vfprintf(stderr, fmt, ap);
	va_end(ap);
	const char *d = pq_err_detail();
	fprintf(stderr, ": %s\n", d && *d ? d : pq_strerror(rc));
	return CLI_EXIT_ERROR;
}

int cli_usage_error(const char *cmd, const char *fmt, ...)
{
	va_list ap;
	fputs("pqota: ", stderr);
	va_start(ap, fmt);
	vfprintf(stderr, fmt, ap);
	va_end(ap);
	fprintf(stderr, "\nTry 'pqota %s --help'.\n", cmd);
	return CLI_EXIT_USAGE;
}

int cli_split_hostport(const char *s, const char *def_host, char *host, size_t hlen, char *port,
                       size_t plen)
{
	const char *colon;
	size_t hl;
	if (!s || !*s)
		return pq_err_set(PQ_ERR_INVAL, "empty address");
	if (s[0] == '[') {
		const char *end = strchr(s, ']');
		if (!end || end[1] != ':' || !end[2])
			return pq_err_set(PQ_ERR_INVAL, "'%s': expected [ADDRESS]:PORT", s);
		hl = (size_t)(end - s - 1);
		if (hl == 0 || hl >= hlen || strlen(end + 2) >= plen)
			return pq_err_set(PQ_ERR_RANGE, "'%s': bad host or port length", s);
		memcpy(host, s + 1, hl);
		host[hl] = '\0';
		snprintf(port, plen, "%s", end + 2);
	} else if ((colon = strrchr(s, ':')) != NULL) {
		hl = (size_t)(colon - s);
		if (hl >= hlen || strlen(colon + 1) >= plen || !colon[1] || memchr(s, ':', hl))
			return pq_err_set(PQ_ERR_INVAL, "'%s': expected HOST:PORT", s);
		if (hl == 0)
			snprintf(host, hlen, "%s", def_host);
		else {
			memcpy(host, s, hl);
			host[hl] = '\0';
		}
		snprintf(port, plen, "%s", colon + 1);
	} else {
		if (strlen(s) >= plen)
			return pq_err_set(PQ_ERR_RANGE, "'%s': port too long", s);
		snprintf(host, hlen, "%s", def_host);
		snprintf(port, plen, "%s", s);
	}
	long p;
	return cli_parse_long(port, 0, 65535, &p);
}

int cli_parse_long(const char *s, long min, long max, long *out)
{
	char *end = NULL;
	if (!s || !*s)
		return pq_err_set(PQ_ERR_INVAL, "empty number");
	errno = 0;
	long v = strtol(s, &end, 10);
	if (errno == ERANGE || v < min || v > max)
		return pq_err_set(PQ_ERR_RANGE, "'%s' is not in %ld..%ld", s, min, max);
	if (errno || *end)
		return pq_err_set(PQ_ERR_INVAL, "'%s' is not a decimal number", s);
	*out = v;
	return PQ_OK;
}

void cli_jset(json_t *o, const char *key, json_t *v, bool *ok)
{
	if (!v || !o || json_object_set_new(o, key, v) != 0)
		*ok = false;
}

void cli_jappend(json_t *a, json_t *v, bool *ok)
{
	if (!v || !a || json_array_append_new(a, v) != 0)
		*ok = false;
}

int cli_read_json_object(const char *path, size_t max, json_t **out)
{
	char *text = NULL;
	size_t len = 0;
	json_error_t je;
	int rc = pq_file_read(path, max, &text, &len);
	if (rc != PQ_OK)
		return cli_error(rc, "%s", path);
	*out = json_loadb(text, len, JSON_REJECT_DUPLICATES, &je);
	free(text);
	if (json_is_object(*out))
		return CLI_EXIT_OK;
	json_decref(*out);
	*out = NULL;
	fprintf(stderr, "pqota: error: %s: line %d: %s (a JSON object expected)\n", path, je.line,
	        je.text);
	return CLI_EXIT_ERROR;
}

int cli_print_json(json_t *j, bool ok, size_t flags)
{
	int rc = PQ_OK;
	if (!j || !ok)
		rc = pq_err_set(PQ_ERR_NOMEM, "building the JSON output");
	else if (json_dumpf(j, stdout, flags) != 0 || putchar('\n') == EOF || fflush(stdout) != 0)
		rc = pq_err_set(PQ_ERR_IO, "writing to stdout: %s", strerror(errno));
	json_decref(j);
	return rc;
}
