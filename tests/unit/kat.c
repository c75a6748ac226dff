/* kat.c: known-answer vector file helpers shared by the ML-KEM and ML-DSA tests. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "kat.h"
#include "testutil.h"

/* ---- vector file helpers ------------------------------------------------------------ */

json_t *kat_load(const char *name, size_t want_cases)
{
	char path[1024];
	json_error_t jerr;
	json_t *root, *cases;

	snprintf(path, sizeof(path), "%s/%s", tu_vectors_dir(), name);
	root = json_load_file(path, 0, &jerr);
	if (!root)
		fail_msg("%s: %s (line %d)", path, jerr.text, jerr.line);
	cases = json_object_get(root, "cases");
	assert_true(json_is_array(cases));
	if (json_array_size(cases) != want_cases)
		fail_msg("%s holds %zu cases, the README says %zu", name, json_array_size(cases),
		         want_cases);
	return root;
}

const char *kat_str(json_t *c, const char *key)
{
	const char *s = json_string_value(json_object_get(c, key));
	if (!s)
		fail_msg("case %s: no string field '%s'",
		         json_string_value(json_object_get(c, "id")), key);
	return s;
}

bool kat_has(json_t *c, const char *key)
{
	return json_object_get(c, key) != NULL;
}

bool kat_bool(json_t *c, const char *key)
{
	json_t *v = json_object_get(c, key);
	if (!json_is_boolean(v))
		fail_msg("case %s: no boolean field '%s'", kat_str(c, "id"), key);
	return json_is_true(v);
}

uint8_t *kat_hex(json_t *c, const char *key, size_t *len)
{
	return tu_unhex(kat_str(c, key), len);
}

/* ---- case reporting ----------------------------------------------------------------- */

bool kat_fail(const char *id, const char *fmt, ...)
{
	va_list ap;
	printf("FAIL %s: ", id);
	va_start(ap, fmt);
	vprintf(fmt, ap);
	va_end(ap);
	printf("\n");
	return false;
}

static void print_hex8(const char *tag, const uint8_t *b, size_t len, size_t at)
{
	printf("  %s[%zu..]:", tag, at);
	for (size_t i = at; i < len && i < at + 8; i++)
		printf(" %02x", b[i]);
	printf("\n");
}

bool kat_bytes_match(const char *id, const char *what, const uint8_t *got, size_t got_len,
                     const uint8_t *want, size_t want_len)
{
	size_t i = 0;
	if (got_len == want_len && memcmp(got, want, want_len) == 0)
		return true;
	while (i < got_len && i < want_len && got[i] == want[i])
		i++;
	kat_fail(id, "%s differs: got %zu bytes, want %zu, first difference at byte %zu", what,
	         got_len, want_len, i);
	print_hex8("got", got, got_len, i);
	print_hex8("want", want, want_len, i);
	return false;
}

/* ---- per-group tallies checked against the file's counts block ---------------------- */

static struct kat_tally_entry *kat_tally_find(struct kat_tally *t, const char *key)
{
	for (int i = 0; i < t->n; i++)
		if (strcmp(t->e[i].key, key) == 0)
			return &t->e[i];
	return NULL;
}

/* Records one case that ran under counts key `key`; ok = false when it failed. */
void kat_tally_case(struct kat_tally *t, const char *label, const char *key, bool ok)
{
	struct kat_tally_entry *e = kat_tally_find(t, key);
	if (!e) {
		assert_true(t->n < KAT_MAX_GROUPS);
		e = &t->e[t->n++];
		snprintf(e->key, sizeof(e->key), "%s", key);
		e->label = label;
		e->ran = e->failed = 0;
	}
	e->ran++;
	if (!ok)
		e->failed++;
}

/* Prints one line per label, then asserts that every counts key ran exactly its number of
 * cases, that nothing ran outside them, that the total is `total` and that nothing failed. */
void kat_tally_finish(struct kat_tally *t, json_t *root, long total)
{
	json_t *counts = json_object_get(root, "counts"), *val;
	const char *key;
	long ran = 0, failed = 0, listed = 0;
	int bad = 0;

	assert_true(json_is_object(counts));
	for (int i = 0; i < t->n; i++) {
		bool seen = false;
		long lran = 0, lfailed = 0;
		for (int j = 0; j < i; j++)
			seen = seen || strcmp(t->e[j].label, t->e[i].label) == 0;
		if (seen)
			continue;
		for (int j = i; j < t->n; j++) {
			if (strcmp(t->e[j].label, t->e[i].label) == 0) {
				lran += t->e[j].ran;
				lfailed += t->e[j].failed;
			}
		}
		if (lfailed)
			printf("%s: %ld cases, %ld FAILED\n", t->e[i].label, lran, lfailed);
		else
			printf("%s: %ld cases ok\n", t->e[i].label, lran);
	}
	json_object_foreach(counts, key, val)
	{
		struct kat_tally_entry *e = kat_tally_find(t, key);
		long want = json_integer_value(val);
		listed += want;
		if (!e || e->ran != want) {
			printf("count mismatch for %s: ran %ld, counts block says %ld\n", key,
			       e ? e->ran : 0L, want);
			bad++;
		}
	}
	for (int i = 0; i < t->n; i++) {
		ran += t->e[i].ran;
		failed += t->e[i].failed;
		if (!json_object_get(counts, t->e[i].key)) {
			printf("ran %ld cases under %s, which the counts block lacks\n",
			       t->e[i].ran, t->e[i].key);
			bad++;
		}
	}
	fflush(stdout);
	if (bad)
		fail_msg("%d groups ran a different number of cases than the counts block lists",
		         bad);
	if (listed != total || ran != total)
		fail_msg("ran %ld cases, the counts block lists %ld, the README %ld", ran, listed,
		         total);
	if (failed)
		fail_msg("%ld of %ld cases failed", failed, ran);
}
