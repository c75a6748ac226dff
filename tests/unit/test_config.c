/* test_config.c: unit tests of src/core/config: types, bounds, file syntax, sources, dumps. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/config.h"
#include "core/err.h"
#include "testutil.h"

/* Fails unless expr returns want with exactly the detail msg. */
#define assert_err(expr, want, msg)                                                                \
	do {                                                                                       \
		assert_rc(expr, want);                                                             \
		assert_string_equal(pq_err_detail(), (msg));                                       \
	} while (0)

/* ---- the sample program ---------------------------------------------------------------- */

typedef struct {
	char *listen;
	int64_t workers;
	bool verbose;
	int profile;
	int backend;
	char *url;
	uint64_t max_body;
	int64_t idle;
	int64_t rps;
	int64_t offset;
	cfg_list groups;
	char *token;
	int untouched; /* not in the table */
} tconf;

static const char *const profiles[] = {"classic", "hybrid", "pq", NULL};
static const char *const backends[] = {"sqlite", "postgres", NULL};

static const cfg_field fields[] = {
    CFG_STRING("listen", tconf, listen, "0.0.0.0:8443", "address and port to listen on"),
    CFG_INT("workers", tconf, workers, "4", 1, 256, "worker threads"),
    CFG_BOOL("log.verbose", tconf, verbose, "false", "log every request"),
    CFG_ENUM("tls.profile", tconf, profile, "hybrid", profiles, "TLS key exchange profile"),
    CFG_ENUM("store.backend", tconf, backend, "sqlite", backends, "database backend"),
    CFG_STRING("store.url", tconf, url, "pqota.db", "database file or conninfo"),
    CFG_SIZE("limits.max_body_bytes", tconf, max_body, "1M", 1024, CFG_GIB, "largest request body"),
    CFG_DURATION("limits.idle_timeout", tconf, idle, "30s", 100, 2 * CFG_HOUR,
                 "close idle connections after this long"),
    CFG_INT("ratelimit.global_rps", tconf, rps, "0", 0, 1000000,
            "requests per second for all clients (0: unlimited)"),
    CFG_INT("clock.offset", tconf, offset, "-5", INT64_MIN, INT64_MAX, "signed test value"),
    CFG_LIST("tls.groups", tconf, groups, "X25519MLKEM768, X25519", "key exchange groups"),
    CFG_SECRET("admin.token", tconf, token, "bearer token of the admin API"),
    CFG_END,
};

static const cfg_schema schema = {"pqota test", "PQOTA_", fields, sizeof(tconf)};

static cfg_ctx *fresh(tconf *t)
{
	cfg_ctx *c = NULL;
	memset(t, 0xa5, sizeof(*t)); /* cfg_new must not read the old members */
	t->untouched = 42;
	assert_ok(cfg_new(&schema, t, &c));
	return c;
}

static int load(cfg_ctx *c, const char *text)
{
	return cfg_load_text(c, "t.conf", text, strlen(text));
}

static void assert_list(const cfg_list *l, size_t n, ...)
{
	va_list ap;
	assert_int_equal(l->n, n);
	va_start(ap, n);
	for (size_t i = 0; i < n; i++)
		assert_string_equal(l->items[i], va_arg(ap, const char *));
	va_end(ap);
}

static void assert_same(const tconf *a, const tconf *b)
{
	assert_string_equal(a->listen, b->listen);
	assert_int_equal(a->workers, b->workers);
	assert_int_equal(a->verbose, b->verbose);
	assert_int_equal(a->profile, b->profile);
	assert_int_equal(a->backend, b->backend);
	assert_string_equal(a->url, b->url);
	assert_int_equal(a->max_body, b->max_body);
	assert_int_equal(a->idle, b->idle);
	assert_int_equal(a->rps, b->rps);
	assert_int_equal(a->offset, b->offset);
	assert_int_equal(a->groups.n, b->groups.n);
	for (size_t i = 0; i < a->groups.n; i++)
		assert_string_equal(a->groups.items[i], b->groups.items[i]);
	assert_string_equal(a->token, b->token);
}

static void assert_origin(cfg_ctx *c, const char *key, cfg_source src, const char *where)
{
	cfg_source s;
	const char *w = NULL;
	assert_ok(cfg_origin(c, key, &s, &w));
	assert_int_equal(s, src);
	if (where)
		assert_string_equal(w, where);
	else
		assert_null(w);
}

/* ---- tests ----------------------------------------------------------------------------- */

static void test_defaults(void **state)
{
	(void)state;
	tconf t;
	cfg_ctx *c = fresh(&t);
	assert_string_equal(t.listen, "0.0.0.0:8443");
	assert_int_equal(t.workers, 4);
	assert_false(t.verbose);
	assert_int_equal(t.profile, 1);
	assert_int_equal(t.backend, 0);
	assert_string_equal(t.url, "pqota.db");
	assert_int_equal(t.max_body, 1 << 20);
	assert_int_equal(t.idle, 30000);
	assert_int_equal(t.rps, 0);
	assert_int_equal(t.offset, -5);
	assert_list(&t.groups, 2, "X25519MLKEM768", "X25519");
	assert_string_equal(t.token, "");
	assert_int_equal(t.untouched, 42);
	assert_origin(c, "workers", CFG_SRC_DEFAULT, NULL);
	cfg_source s;
	const char *w;
	assert_rc(cfg_origin(c, "nope", &s, &w), PQ_ERR_NOTFOUND);
	assert_ok(cfg_check_schema(&schema));
	cfg_free(c);
	assert_null(t.listen);
	assert_null(t.groups.items);
	assert_int_equal(t.groups.n, 0);
	cfg_free(NULL);
}

typedef struct {
	int64_t i;
	int64_t j;
	char *s;
	int e;
} small;

static const char *const ab[] = {"a", "b", NULL};
static const char *const bad_token[] = {"a b", NULL};
static const char *const dup_vals[] = {"a", "a", NULL};
static const char *const no_vals[] = {NULL};

static void expect_bad_schema(const cfg_field *f, const char *why)
{
	cfg_schema s = {"bad", "X_", f, sizeof(small)};
	small sm;
	cfg_ctx *c = NULL;
	assert_rc(cfg_check_schema(&s), PQ_ERR_INVAL);
	if (!strstr(pq_err_detail(), why))
		fail_msg("detail '%s' lacks '%s'", pq_err_detail(), why);
	assert_rc(cfg_new(&s, &sm, &c), PQ_ERR_INVAL);
	assert_null(c);
}

static void test_schema_checks(void **state)
{
	(void)state;
	{
		const cfg_field f[] = {CFG_INT("Bad", small, i, "1", 0, 9, "h"), CFG_END};
		expect_bad_schema(f, "bad name");
	}
	{
		const cfg_field f[] = {CFG_INT("a..b", small, i, "1", 0, 9, "h"), CFG_END};
		expect_bad_schema(f, "bad name");
	}
	{
		const cfg_field f[] = {CFG_INT("a.b", small, i, "1", 0, 9, "h"),
		                       CFG_INT("a_b", small, j, "1", 0, 9, "h"), CFG_END};
		expect_bad_schema(f, "'a_b' repeats (or has the environment name of) 'a.b'");
	}
	{
		const cfg_field f[] = {CFG_INT("a", small, i, "1", 0, 9, "h"),
		                       CFG_INT("a", small, j, "1", 0, 9, "h"), CFG_END};
		expect_bad_schema(f, "repeats");
	}
	{
		const cfg_field f[] = {CFG_INT("a", small, i, "10", 0, 9, "h"), CFG_END};
		expect_bad_schema(f, "'a': default: 10 is above the maximum 9");
	}
	{
		const cfg_field f[] = {CFG_INT("a", small, i, NULL, 0, 9, "h"), CFG_END};
		expect_bad_schema(f, "a default is required");
	}
	{
		const cfg_field f[] = {CFG_INT("a", small, i, "1", 9, 0, "h"), CFG_END};
		expect_bad_schema(f, "minimum above maximum");
	}
	{
		const cfg_field f[] = {CFG_STRING("a", small, s, "x", "two\nlines"), CFG_END};
		expect_bad_schema(f, "help must be one non-empty line");
	}
	{
		cfg_field f[] = {CFG_STRING("a", small, s, "x", "h"), CFG_END};
		f[0].flags = CFG_F_SECRET;
		expect_bad_schema(f, "a secret cannot have a default");
	}
	{
		cfg_field f[] = {CFG_INT("a", small, i, "1", 0, 9, "h"), CFG_END};
		f[0].offset = sizeof(small) - 4;
		expect_bad_schema(f, "lies outside the struct");
	}
	{
		const cfg_field f[] = {CFG_ENUM("a", small, e, "a b", bad_token, "h"), CFG_END};
		expect_bad_schema(f, "bad enum value");
	}
	{
		const cfg_field f[] = {CFG_ENUM("a", small, e, "a", dup_vals, "h"), CFG_END};
		expect_bad_schema(f, "enum value 'a' repeats");
	}
	{
		const cfg_field f[] = {CFG_ENUM("a", small, e, "a", no_vals, "h"), CFG_END};
		expect_bad_schema(f, "enum without values");
	}
	{
		const cfg_field f[] = {CFG_ENUM("a", small, e, "c", ab, "h"), CFG_END};
		expect_bad_schema(f, "'c' is not one of: a, b");
	}
	{
		const cfg_field f[] = {CFG_END};
		cfg_schema s = {"empty", "X_", f, sizeof(small)};
		small sm;
		cfg_ctx *c = NULL;
		char *txt = NULL;
		assert_ok(cfg_new(&s, &sm, &c));
		assert_ok(cfg_load_text(c, "e", "# nothing\n", 10));
		assert_err(cfg_load_text(c, "e", "a = 1\n", 6), PQ_ERR_INVAL,
		           "e:1: unknown key 'a'");
		assert_ok(cfg_dump(c, 0, &txt));
		free(txt);
		cfg_free(c);
	}
	{
		const cfg_field f[] = {CFG_END};
		cfg_schema s = {"bad prefix", "x-", f, sizeof(small)};
		assert_rc(cfg_check_schema(&s), PQ_ERR_INVAL);
	}
}

static void test_strings(void **state)
{
	(void)state;
	tconf t;
	cfg_ctx *c = fresh(&t);
	assert_ok(cfg_set(c, "listen=[::]:443"));
	assert_string_equal(t.listen, "[::]:443");
	assert_ok(cfg_set(c, "store.url="));
	assert_string_equal(t.url, "");
	assert_ok(cfg_set(c, "store.url=a=b  # literal \"x\""));
	assert_string_equal(t.url, "a=b  # literal \"x\"");
	assert_ok(cfg_set(c, "store.url=tab\there"));
	assert_string_equal(t.url, "tab\there");
	assert_err(cfg_set(c, "store.url=two\nlines"), PQ_ERR_FORMAT,
	           "--set: key 'store.url': control character 0x0a in value");
	assert_err(cfg_set(c, "store.url=del\x7f"), PQ_ERR_FORMAT,
	           "--set: key 'store.url': control character 0x7f in value");
	assert_string_equal(t.url, "tab\there");

	/* the value limit */
	char big[CFG_VALUE_MAX + 32];
	memcpy(big, "listen=", 7);
	memset(big + 7, 'x', CFG_VALUE_MAX);
	big[7 + CFG_VALUE_MAX] = '\0';
	assert_ok(cfg_set(c, big));
	assert_int_equal(strlen(t.listen), CFG_VALUE_MAX);
	big[7 + CFG_VALUE_MAX] = 'x';
	big[8 + CFG_VALUE_MAX] = '\0';
	assert_err(cfg_set(c, big), PQ_ERR_RANGE,
	           "--set: key 'listen': value of 2001 bytes exceeds the limit of 2000");
	cfg_free(c);
}

static void test_ints(void **state)
{
	(void)state;
	tconf t;
	cfg_ctx *c = fresh(&t);
	assert_ok(cfg_set(c, "workers=1"));
	assert_int_equal(t.workers, 1);
	assert_ok(cfg_set(c, "workers=+256"));
	assert_int_equal(t.workers, 256);
	assert_ok(cfg_set(c, "workers=007"));
	assert_int_equal(t.workers, 7);
	assert_err(cfg_set(c, "workers=0"), PQ_ERR_RANGE,
	           "--set: key 'workers': 0 is below the minimum 1");
	assert_err(cfg_set(c, "workers=257"), PQ_ERR_RANGE,
	           "--set: key 'workers': 257 is above the maximum 256");
	assert_err(cfg_set(c, "workers=-1"), PQ_ERR_RANGE,
	           "--set: key 'workers': -1 is below the minimum 1");
	assert_err(cfg_set(c, "workers="), PQ_ERR_INVAL,
	           "--set: key 'workers': '' is not an integer");
	const char *bad[] = {"abc", "4x", "0x10", " 4", "4 ", "-", "+", "1e3", "4.0", "--4"};
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		char arg[64];
		snprintf(arg, sizeof(arg), "workers=%s", bad[i]);
		assert_rc(cfg_set(c, arg), PQ_ERR_INVAL);
		assert_non_null(strstr(pq_err_detail(), "is not an integer"));
	}
	assert_int_equal(t.workers, 7);

	/* the 64-bit edges */
	assert_ok(cfg_set(c, "clock.offset=9223372036854775807"));
	assert_int_equal(t.offset, INT64_MAX);
	assert_ok(cfg_set(c, "clock.offset=-9223372036854775808"));
	assert_int_equal(t.offset, INT64_MIN);
	assert_err(cfg_set(c, "clock.offset=9223372036854775808"), PQ_ERR_RANGE,
	           "--set: key 'clock.offset': '9223372036854775808' is out of range");
	assert_rc(cfg_set(c, "clock.offset=-9223372036854775809"), PQ_ERR_RANGE);
	assert_rc(cfg_set(c, "clock.offset=99999999999999999999999"), PQ_ERR_RANGE);
	assert_int_equal(t.offset, INT64_MIN);
	cfg_free(c);
}

static void test_bools(void **state)
{
	(void)state;
	tconf t;
	cfg_ctx *c = fresh(&t);
	const char *yes[] = {"true", "TRUE", "Yes", "on", "1"};
	const char *no[] = {"false", "False", "NO", "off", "0"};
	char arg[64];
	for (size_t i = 0; i < 5; i++) {
		snprintf(arg, sizeof(arg), "log.verbose=%s", yes[i]);
		assert_ok(cfg_set(c, arg));
		assert_true(t.verbose);
		snprintf(arg, sizeof(arg), "log.verbose=%s", no[i]);
		assert_ok(cfg_set(c, arg));
		assert_false(t.verbose);
	}
	assert_err(cfg_set(c, "log.verbose=maybe"), PQ_ERR_INVAL,
	           "--set: key 'log.verbose': 'maybe' is not a boolean (true/false, yes/no, "
	           "on/off, 1/0)");
	assert_rc(cfg_set(c, "log.verbose="), PQ_ERR_INVAL);
	assert_rc(cfg_set(c, "log.verbose=2"), PQ_ERR_INVAL);
	assert_rc(cfg_set(c, "log.verbose=truee"), PQ_ERR_INVAL);
	cfg_free(c);
}

static void test_sizes(void **state)
{
	(void)state;
	tconf t;
	cfg_ctx *c = fresh(&t);
	struct {
		const char *in;
		uint64_t want;
	} ok[] = {
	    {"1024", 1024},       {"1k", 1024},     {"1K", 1024},     {"64k", 65536},
	    {"1M", 1 << 20},      {"3m", 3u << 20}, {"1G", 1u << 30}, {"1g", 1u << 30},
	    {"1048577", 1048577}, {"0001k", 1024},
	};
	char arg[96];
	for (size_t i = 0; i < sizeof(ok) / sizeof(ok[0]); i++) {
		snprintf(arg, sizeof(arg), "limits.max_body_bytes=%s", ok[i].in);
		assert_ok(cfg_set(c, arg));
		assert_int_equal(t.max_body, ok[i].want);
	}
	assert_err(cfg_set(c, "limits.max_body_bytes=1023"), PQ_ERR_RANGE,
	           "--set: key 'limits.max_body_bytes': 1023 is below the minimum 1k");
	assert_err(cfg_set(c, "limits.max_body_bytes=2G"), PQ_ERR_RANGE,
	           "--set: key 'limits.max_body_bytes': 2G is above the maximum 1G");
	assert_err(cfg_set(c, "limits.max_body_bytes=1T"), PQ_ERR_INVAL,
	           "--set: key 'limits.max_body_bytes': '1T' is not a size (a whole number of "
	           "bytes, optionally with a suffix k, M or G)");
	const char *bad[] = {"", "k", "1 k", "1kb", "1KiB", "-1k", "+1k", "1.5M", "1kk", "M1"};
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		snprintf(arg, sizeof(arg), "limits.max_body_bytes=%s", bad[i]);
		assert_rc(cfg_set(c, arg), PQ_ERR_INVAL);
	}
	/* overflow: of the digits, and of the multiplication */
	assert_err(cfg_set(c, "limits.max_body_bytes=9223372036854775808"), PQ_ERR_RANGE,
	           "--set: key 'limits.max_body_bytes': '9223372036854775808' is too large");
	assert_err(cfg_set(c, "limits.max_body_bytes=8589934592G"), PQ_ERR_RANGE,
	           "--set: key 'limits.max_body_bytes': '8589934592G' is too large");
	assert_rc(cfg_set(c, "limits.max_body_bytes=9007199254740992k"), PQ_ERR_RANGE);
	assert_int_equal(t.max_body, 1024);
	cfg_free(c);
}

static void test_durations(void **state)
{
	(void)state;
	tconf t;
	cfg_ctx *c = fresh(&t);
	struct {
		const char *in;
		int64_t want;
	} ok[] = {
	    {"100ms", 100}, {"1500ms", 1500}, {"1s", 1000},      {"90s", 90000},
	    {"1m", 60000},  {"2h", 7200000},  {"120m", 7200000},
	};
	char arg[96];
	for (size_t i = 0; i < sizeof(ok) / sizeof(ok[0]); i++) {
		snprintf(arg, sizeof(arg), "limits.idle_timeout=%s", ok[i].in);
		assert_ok(cfg_set(c, arg));
		assert_int_equal(t.idle, ok[i].want);
	}
	assert_err(cfg_set(c, "limits.idle_timeout=99ms"), PQ_ERR_RANGE,
	           "--set: key 'limits.idle_timeout': 99ms is below the minimum 100ms");
	assert_err(cfg_set(c, "limits.idle_timeout=121m"), PQ_ERR_RANGE,
	           "--set: key 'limits.idle_timeout': 121m is above the maximum 2h");
	/* a bare 0 is a duration, but below this row's minimum */
	assert_err(cfg_set(c, "limits.idle_timeout=0"), PQ_ERR_RANGE,
	           "--set: key 'limits.idle_timeout': 0 is below the minimum 100ms");
	assert_err(cfg_set(c, "limits.idle_timeout=30"), PQ_ERR_INVAL,
	           "--set: key 'limits.idle_timeout': '30' is not a duration (a whole number with "
	           "a suffix ms, s, m or h)");
	const char *bad[] = {"", "s", "1d", "1S", "1 s", "-1s", "1.5s", "1h30m", "1sec", "ms"};
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		snprintf(arg, sizeof(arg), "limits.idle_timeout=%s", bad[i]);
		assert_rc(cfg_set(c, arg), PQ_ERR_INVAL);
	}
	assert_err(cfg_set(c, "limits.idle_timeout=2562047788016h"), PQ_ERR_RANGE,
	           "--set: key 'limits.idle_timeout': '2562047788016h' is too large");
	assert_rc(cfg_set(c, "limits.idle_timeout=99999999999999999999ms"), PQ_ERR_RANGE);
	assert_int_equal(t.idle, 7200000);
	cfg_free(c);
}

static void test_enums(void **state)
{
	(void)state;
	tconf t;
	cfg_ctx *c = fresh(&t);
	assert_ok(cfg_set(c, "tls.profile=pq"));
	assert_int_equal(t.profile, 2);
	assert_ok(cfg_set(c, "tls.profile=classic"));
	assert_int_equal(t.profile, 0);
	assert_ok(cfg_set(c, "store.backend=postgres"));
	assert_int_equal(t.backend, 1);
	assert_err(cfg_set(c, "tls.profile=PQ"), PQ_ERR_INVAL,
	           "--set: key 'tls.profile': 'PQ' is not one of: classic, hybrid, pq");
	assert_rc(cfg_set(c, "tls.profile="), PQ_ERR_INVAL);
	assert_rc(cfg_set(c, "tls.profile=pq "), PQ_ERR_INVAL);
	assert_int_equal(t.profile, 0);
	cfg_free(c);
}

static void test_lists(void **state)
{
	(void)state;
	tconf t;
	cfg_ctx *c = fresh(&t);
	assert_ok(cfg_set(c, "tls.groups=a"));
	assert_list(&t.groups, 1, "a");
	assert_ok(cfg_set(c, "tls.groups= a ,\tb c , d"));
	assert_list(&t.groups, 3, "a", "b c", "d");
	assert_ok(cfg_set(c, "tls.groups="));
	assert_list(&t.groups, 0);
	assert_null(t.groups.items);
	assert_ok(cfg_set(c, "tls.groups=  "));
	assert_list(&t.groups, 0);
	assert_err(cfg_set(c, "tls.groups=a,,b"), PQ_ERR_INVAL,
	           "--set: key 'tls.groups': empty item 2 in the list");
	assert_rc(cfg_set(c, "tls.groups=a,"), PQ_ERR_INVAL);
	assert_rc(cfg_set(c, "tls.groups=,a"), PQ_ERR_INVAL);
	assert_rc(cfg_set(c, "tls.groups=a, ,b"), PQ_ERR_INVAL);
	/* a file cannot override --set; in a fresh context it sets the list */
	assert_ok(load(c, "tls.groups = x\n"));
	assert_list(&t.groups, 0);
	cfg_free(c);
	c = fresh(&t);
	assert_ok(load(c, "tls.groups = \"x#1, y\\\"2\" # two\n"));
	assert_list(&t.groups, 2, "x#1", "y\"2");
	cfg_free(c);
}

static void test_file_syntax(void **state)
{
	(void)state;
	tconf t;
	cfg_ctx *c = fresh(&t);
	assert_ok(load(c, "\xef\xbb\xbf# a comment\n"
	                  "\n"
	                  "   \t\n"
	                  "  # indented comment\n"
	                  "listen=:1\n"
	                  "\tworkers\t=\t8\t# trailing comment\r\n"
	                  "store.url = \"  spaced # not a comment \"   # comment\n"
	                  "admin.token = \"q\\\"uote\\\\back\"\n"
	                  "log.verbose = yes #\n"));
	assert_string_equal(t.listen, ":1");
	assert_int_equal(t.workers, 8);
	assert_string_equal(t.url, "  spaced # not a comment ");
	assert_string_equal(t.token, "q\"uote\\back");
	assert_true(t.verbose);
	cfg_free(c);

	c = fresh(&t);
	assert_err(load(c, "ratelimit.global_rps = # empty\n"), PQ_ERR_INVAL,
	           "t.conf:1: key 'ratelimit.global_rps': '' is not an integer");
	assert_err(load(c, "\n\ntls.profile = a\"b\"c"), PQ_ERR_INVAL,
	           "t.conf:3: key 'tls.profile': 'a\"b\"c' is not one of: classic, hybrid, pq");
	assert_ok(load(c, "store.url = \"\"\nlisten = \"#\"\n"));
	assert_string_equal(t.url, "");
	assert_string_equal(t.listen, "#");

	assert_err(load(c, "workers 4\n"), PQ_ERR_FORMAT, "t.conf:1: expected 'key = value'");
	assert_err(load(c, "# x\n = 4\n"), PQ_ERR_FORMAT, "t.conf:2: missing key before '='");
	assert_err(load(c, "work ers = 4\n"), PQ_ERR_FORMAT, "t.conf:1: invalid key 'work ers'");
	assert_err(load(c, "store.url = \"abc\n"), PQ_ERR_FORMAT,
	           "t.conf:1: unterminated quoted value");
	assert_err(load(c, "store.url = \"abc\\\"\n"), PQ_ERR_FORMAT,
	           "t.conf:1: unterminated quoted value");
	assert_err(load(c, "store.url = \"a\\nb\"\n"), PQ_ERR_FORMAT,
	           "t.conf:1: unknown escape in quoted value (only \\\" and \\\\ are allowed)");
	assert_err(load(c, "store.url = \"a\\"), PQ_ERR_FORMAT,
	           "t.conf:1: unknown escape in quoted value (only \\\" and \\\\ are allowed)");
	assert_err(load(c, "store.url = \"a\" b\n"), PQ_ERR_FORMAT,
	           "t.conf:1: text after the closing quote");
	assert_err(load(c, "store.url = \"a\"\"b\"\n"), PQ_ERR_FORMAT,
	           "t.conf:1: text after the closing quote");
	assert_err(load(c, "store.url = a#b\n"), PQ_ERR_FORMAT,
	           "t.conf:1: '#' inside an unquoted value (quote the value, or put a space "
	           "before a comment)");
	assert_err(load(c, "store.url = a\rb\n"), PQ_ERR_FORMAT,
	           "t.conf:1: key 'store.url': control character 0x0d in value");
	static const char nul1[] = "a\nstore.url = x\0y\n";
	static const char nul2[] = "# a\nstore.url = x\0y\n";
	assert_err(cfg_load_text(c, "t.conf", nul1, sizeof(nul1) - 1), PQ_ERR_FORMAT,
	           "t.conf:1: expected 'key = value'");
	assert_err(cfg_load_text(c, "t.conf", nul2, sizeof(nul2) - 1), PQ_ERR_FORMAT,
	           "t.conf:2: NUL byte");
	assert_string_equal(t.url, "");
	cfg_free(c);
}

static void test_unknown_and_duplicate(void **state)
{
	(void)state;
	tconf t;
	cfg_ctx *c = fresh(&t);
	assert_err(load(c, "workers = 2\n\nworkerz = 3\n"), PQ_ERR_INVAL,
	           "t.conf:3: unknown key 'workerz'");
	assert_err(load(c, "Workers = 2\n"), PQ_ERR_INVAL, "t.conf:1: unknown key 'Workers'");
	assert_err(load(c, "workers = 2\n# again\nworkers = 2\n"), PQ_ERR_INVAL,
	           "t.conf:3: key 'workers' given twice (first on line 1)");
	assert_err(cfg_set(c, "workerz=3"), PQ_ERR_INVAL, "--set: unknown key 'workerz'");
	assert_err(cfg_set(c, "workers"), PQ_ERR_FORMAT, "--set 'workers': expected name=value");
	assert_err(cfg_set(c, " workers=2"), PQ_ERR_INVAL, "--set: unknown key ' workers'");
	/* nothing of the failed loads was applied */
	assert_int_equal(t.workers, 4);
	assert_origin(c, "workers", CFG_SRC_DEFAULT, NULL);
	/* --set twice: the later wins */
	assert_ok(cfg_set(c, "workers=2"));
	assert_ok(cfg_set(c, "workers=3"));
	assert_int_equal(t.workers, 3);
	cfg_free(c);
}

static void test_atomic_loads(void **state)
{
	(void)state;
	tconf t;
	cfg_ctx *c = fresh(&t);
	assert_err(load(c, "listen = :9\nworkers = 8\ntls.groups = a\nworkers = 0\n"), PQ_ERR_INVAL,
	           "t.conf:4: key 'workers' given twice (first on line 2)");
	assert_err(load(c, "listen = :9\nworkers = 8\ntls.groups = a\nlog.verbose = 3\n"),
	           PQ_ERR_INVAL,
	           "t.conf:4: key 'log.verbose': '3' is not a boolean (true/false, yes/no, on/off, "
	           "1/0)");
	assert_string_equal(t.listen, "0.0.0.0:8443");
	assert_int_equal(t.workers, 4);
	assert_list(&t.groups, 2, "X25519MLKEM768", "X25519");
	assert_origin(c, "listen", CFG_SRC_DEFAULT, NULL);

	char *env[] = {"PQOTA_LISTEN=:7", "PQOTA_WORKERS=zero", NULL};
	assert_err(cfg_load_env(c, env), PQ_ERR_INVAL,
	           "PQOTA_WORKERS: key 'workers': 'zero' is not an integer");
	assert_string_equal(t.listen, "0.0.0.0:8443");
	cfg_free(c);
}

static void test_precedence(void **state)
{
	(void)state;
	tconf t;
	char *env[] = {"PQOTA_WORKERS=6", "PQOTA_STORE_URL=env.db", NULL};
	const char *file = "workers = 5\nstore.url = file.db\nlisten = :5\n";

	/* in the usual order */
	cfg_ctx *c = fresh(&t);
	assert_ok(load(c, file));
	assert_ok(cfg_load_env(c, env));
	assert_ok(cfg_set(c, "workers=7"));
	assert_int_equal(t.workers, 7);
	assert_string_equal(t.url, "env.db");
	assert_string_equal(t.listen, ":5");
	assert_int_equal(t.rps, 0);
	assert_origin(c, "workers", CFG_SRC_SET, "--set");
	assert_origin(c, "store.url", CFG_SRC_ENV, "PQOTA_STORE_URL");
	assert_origin(c, "listen", CFG_SRC_FILE, "t.conf:3");
	assert_origin(c, "ratelimit.global_rps", CFG_SRC_DEFAULT, NULL);
	cfg_free(c);

	/* in reverse order: the same result, since precedence goes by source */
	c = fresh(&t);
	assert_ok(cfg_set(c, "workers=7"));
	assert_ok(cfg_load_env(c, env));
	assert_ok(load(c, file));
	assert_int_equal(t.workers, 7);
	assert_string_equal(t.url, "env.db");
	assert_string_equal(t.listen, ":5");
	assert_origin(c, "workers", CFG_SRC_SET, "--set");
	assert_origin(c, "store.url", CFG_SRC_ENV, "PQOTA_STORE_URL");
	/* a lower source is still validated */
	assert_err(load(c, "workers = 0\n"), PQ_ERR_RANGE,
	           "t.conf:1: key 'workers': 0 is below the minimum 1");
	/* a second file overrides the first */
	assert_ok(cfg_load_text(c, "second.conf", "listen = :6\n", 12));
	assert_string_equal(t.listen, ":6");
	assert_origin(c, "listen", CFG_SRC_FILE, "second.conf:1");
	cfg_free(c);
}

static void test_env(void **state)
{
	(void)state;
	tconf t;
	cfg_ctx *c = fresh(&t);
	char *env[] = {
	    "HOME=/root",
	    "PQOTA_TLS_PROFILE=pq",
	    "PQOTA_LIMITS_MAX_BODY_BYTES=2M",
	    "PQOTA_TESTVECTORS=/somewhere", /* prefixed but not a key: ignored */
	    "PQOTA_BIN=/x",
	    "pqota_workers=9", /* wrong case: ignored */
	    "PQOTA_workers=9",
	    "PQOTA_WORKERS",             /* no '=': ignored */
	    "PQOTA_TLS.PROFILE=classic", /* '.' is not the environment form */
	    "PQOTA_LISTEN=  spaced # literal",
	    "PQOTA_TLS_GROUPS=a, b",
	    "PQOTA_ADMIN_TOKEN=s3cret",
	    "PQOTA_TLS_PROFILE=classic", /* a repeat: the first wins */
	    "PQOTA_=1",
	    "PQOTA_RATELIMIT_GLOBAL_RPS_=1",
	    NULL,
	};
	assert_ok(cfg_load_env(c, env));
	assert_int_equal(t.profile, 2);
	assert_int_equal(t.max_body, 2u << 20);
	assert_int_equal(t.workers, 4);
	assert_string_equal(t.listen, "  spaced # literal");
	assert_list(&t.groups, 2, "a", "b");
	assert_string_equal(t.token, "s3cret");
	assert_int_equal(t.rps, 0);
	assert_origin(c, "tls.profile", CFG_SRC_ENV, "PQOTA_TLS_PROFILE");
	assert_origin(c, "limits.max_body_bytes", CFG_SRC_ENV, "PQOTA_LIMITS_MAX_BODY_BYTES");
	assert_ok(cfg_load_env(c, NULL));

	char *bad[] = {"PQOTA_LIMITS_IDLE_TIMEOUT=3h", NULL};
	assert_err(cfg_load_env(c, bad), PQ_ERR_RANGE,
	           "PQOTA_LIMITS_IDLE_TIMEOUT: key 'limits.idle_timeout': 3h is above the maximum "
	           "2h");
	char *empty[] = {"PQOTA_WORKERS=", NULL};
	assert_err(cfg_load_env(c, empty), PQ_ERR_INVAL,
	           "PQOTA_WORKERS: key 'workers': '' is not an integer");
	cfg_free(c);
}

static void test_secrets(void **state)
{
	(void)state;
	tconf t;
	cfg_ctx *c = fresh(&t);
	char *txt = NULL;
	assert_ok(cfg_set(c, "admin.token=hunter2-topsecret"));
	assert_ok(cfg_dump(c, 0, &txt));
	assert_null(strstr(txt, "hunter2"));
	assert_non_null(strstr(txt, "admin.token = \"***\"\n"));
	free(txt);
	assert_ok(cfg_dump(c, CFG_DUMP_ORIGINS, &txt));
	assert_null(strstr(txt, "hunter2"));
	assert_non_null(strstr(txt, "admin.token = \"***\"  # --set\n"));
	free(txt);
	assert_ok(cfg_dump(c, CFG_DUMP_SECRETS, &txt));
	assert_non_null(strstr(txt, "admin.token = \"hunter2-topsecret\"\n"));
	free(txt);
	/* a bad secret is not echoed */
	assert_err(cfg_set(c, "admin.token=bad\x01value"), PQ_ERR_FORMAT,
	           "--set: key 'admin.token': control character 0x01 in value");
	cfg_free(c);

	/* only strings and lists can be secret (a number needs a default, a secret has none) */
	typedef struct {
		int64_t pin;
	} sconf;
	cfg_field f[] = {CFG_INT("pin", sconf, pin, "0", 0, 9999, "a pin"), CFG_END};
	f[0].flags = CFG_F_SECRET;
	cfg_schema s = {"pins", "P_", f, sizeof(sconf)};
	sconf sc;
	assert_err(cfg_new(&s, &sc, &c), PQ_ERR_INVAL,
	           "config schema 'pins': 'pin': only strings and lists can be secret");
	f[0].flags = 0;
	assert_ok(cfg_new(&s, &sc, &c));
	cfg_free(c);
}

static void test_secret_messages(void **state)
{
	(void)state;
	typedef struct {
		char *key;
	} sconf;
	const cfg_field f[] = {CFG_SECRET("key", sconf, key, "a key"), CFG_END};
	cfg_schema s = {"keys", "K_", f, sizeof(sconf)};
	sconf sc;
	cfg_ctx *c = NULL;
	char *txt = NULL;
	assert_ok(cfg_new(&s, &sc, &c));
	assert_string_equal(sc.key, "");
	char big[CFG_VALUE_MAX + 16];
	memcpy(big, "key=", 4);
	memset(big + 4, 's', CFG_VALUE_MAX + 1);
	big[5 + CFG_VALUE_MAX] = '\0';
	assert_rc(cfg_set(c, big), PQ_ERR_RANGE);
	assert_null(strstr(pq_err_detail(), "sss"));
	assert_ok(cfg_write_example(&s, &txt));
	assert_non_null(strstr(txt, "# type: secret string; env: K_KEY\n#key = \"\"\n"));
	free(txt);
	cfg_free(c);
}

/* Loads text into a fresh struct and checks it equals want. */
static void reload_equals(const char *text, const tconf *want)
{
	tconf back;
	cfg_ctx *c = fresh(&back);
	assert_ok(load(c, text));
	assert_same(&back, want);
	cfg_free(c);
}

static void test_dump_roundtrip(void **state)
{
	(void)state;
	tconf t;
	cfg_ctx *c = fresh(&t);
	char *txt = NULL;

	/* defaults */
	assert_ok(cfg_dump(c, CFG_DUMP_SECRETS, &txt));
	reload_equals(txt, &t);
	free(txt);

	/* awkward values from every source */
	assert_ok(load(c, "listen = \" lead and # trail \"\n"
	                  "store.url = \"q\\\"\\\\ \\\\\\\"\"\n"
	                  "limits.max_body_bytes = 1025\n"
	                  "limits.idle_timeout = 1500ms\n"));
	char *env[] = {"PQOTA_TLS_GROUPS=a\"b, c\\\\d ,e#f",
	               "PQOTA_CLOCK_OFFSET=-9223372036854775808",
	               "PQOTA_ADMIN_TOKEN=p@ss \"word\" # x", NULL};
	assert_ok(cfg_load_env(c, env));
	assert_ok(cfg_set(c, "log.verbose=on"));
	assert_ok(cfg_set(c, "tls.profile=classic"));
	assert_ok(cfg_set(c, "store.backend=postgres"));
	assert_ok(cfg_set(c, "ratelimit.global_rps=1000000"));
	assert_ok(cfg_set(c, "workers=256"));
	assert_ok(cfg_dump(c, CFG_DUMP_SECRETS, &txt));
	reload_equals(txt, &t);
	free(txt);
	assert_ok(cfg_dump(c, CFG_DUMP_SECRETS | CFG_DUMP_ORIGINS, &txt));
	reload_equals(txt, &t);
	assert_non_null(strstr(txt, "workers = 256  # --set\n"));
	assert_non_null(strstr(txt, "limits.idle_timeout = 1500ms  # file t.conf:4\n"));
	assert_non_null(
	    strstr(txt, "tls.groups = \"a\\\"b,c\\\\\\\\d,e#f\"  # env PQOTA_TLS_GROUPS\n"));
	assert_non_null(strstr(txt, "limits.max_body_bytes = 1025  # file t.conf:3\n"));
	assert_non_null(strstr(txt, "log.verbose = true  # --set\n"));
	free(txt);

	/* an empty list, sizes and durations in each unit, a string at the value limit made of
	 * characters that need escaping: the escaped line still fits */
	assert_ok(cfg_set(c, "tls.groups="));
	assert_ok(cfg_set(c, "limits.idle_timeout=2h"));
	char big[CFG_VALUE_MAX + 16];
	memcpy(big, "store.url=", 10);
	memset(big + 10, '"', CFG_VALUE_MAX);
	big[10 + CFG_VALUE_MAX] = '\0';
	assert_rc(cfg_set(c, "limits.max_body_bytes=3G"), PQ_ERR_RANGE);
	assert_ok(cfg_set(c, "limits.max_body_bytes=64k"));
	assert_ok(cfg_set(c, big));
	assert_ok(cfg_dump(c, CFG_DUMP_SECRETS | CFG_DUMP_ORIGINS, &txt));
	assert_non_null(strstr(txt, "tls.groups = \"\"  # --set\n"));
	assert_non_null(strstr(txt, "limits.max_body_bytes = 64k"));
	reload_equals(txt, &t);
	free(txt);
	cfg_free(c);

	/* values the format cannot hold are refused rather than written wrong */
	c = fresh(&t);
	char *items[] = {"a,b"};
	cfg_list saved = t.groups;
	t.groups.items = items;
	t.groups.n = 1;
	assert_err(cfg_dump(c, 0, &txt), PQ_ERR_INVAL,
	           "key 'tls.groups': list item 1 cannot be written");
	char item[1001];
	memset(item, 'i', 1000);
	item[1000] = '\0';
	char *two[] = {item, item};
	t.groups.items = two;
	t.groups.n = 2;
	assert_err(cfg_dump(c, 0, &txt), PQ_ERR_INVAL,
	           "key 'tls.groups': list longer than 2000 bytes");
	t.groups = saved;
	t.profile = 3;
	assert_err(cfg_dump(c, 0, &txt), PQ_ERR_INVAL,
	           "key 'tls.profile': enum index 3 out of range");
	assert_null(txt);
	t.profile = 0;
	cfg_free(c);
}

/* Removes the '#' from "#key = ..." lines, keeping "# text" comments. */
static char *uncomment(const char *ex)
{
	size_t n = strlen(ex);
	char *out = malloc(n + 1), *w = out;
	assert_non_null(out);
	for (const char *p = ex; *p;) {
		const char *eol = strchr(p, '\n');
		size_t l = eol ? (size_t)(eol - p + 1) : strlen(p);
		if (p[0] == '#' && p[1] >= 'a' && p[1] <= 'z') {
			p++;
			l--;
		}
		memcpy(w, p, l);
		w += l;
		p += l;
	}
	*w = '\0';
	return out;
}

static void test_example(void **state)
{
	(void)state;
	tconf t, back;
	char *ex = NULL, *un;
	cfg_ctx *c = fresh(&t), *c2;

	assert_ok(cfg_write_example(&schema, &ex));
	assert_non_null(strstr(ex, "# pqota test: example configuration\n"));
	assert_non_null(strstr(ex, "\n# worker threads\n"
	                           "# type: integer, 1 .. 256; env: PQOTA_WORKERS\n"
	                           "#workers = 4\n"));
	assert_non_null(strstr(ex,
	                       "# type: size, 1k .. 1G (bytes; suffix k, M, G); "
	                       "env: PQOTA_LIMITS_MAX_BODY_BYTES\n#limits.max_body_bytes = 1M\n"));
	assert_non_null(strstr(ex, "# type: duration, 100ms .. 2h (suffix ms, s, m, h); "
	                           "env: PQOTA_LIMITS_IDLE_TIMEOUT\n#limits.idle_timeout = 30s\n"));
	assert_non_null(strstr(ex, "# type: one of: classic, hybrid, pq; env: PQOTA_TLS_PROFILE\n"
	                           "#tls.profile = hybrid\n"));
	assert_non_null(strstr(ex, "# type: boolean (true or false); env: PQOTA_LOG_VERBOSE\n"
	                           "#log.verbose = false\n"));
	assert_non_null(strstr(ex, "#tls.groups = \"X25519MLKEM768,X25519\"\n"));
	assert_non_null(strstr(ex, "# type: secret string; env: PQOTA_ADMIN_TOKEN\n"
	                           "#admin.token = \"\"\n"));
	assert_non_null(strstr(ex, "# type: integer, -9223372036854775808 .. 9223372036854775807"));

	/* as written, it sets nothing; uncommented, it sets every key to its default */
	assert_ok(load(c, ex));
	assert_origin(c, "workers", CFG_SRC_DEFAULT, NULL);
	un = uncomment(ex);
	c2 = fresh(&back);
	assert_ok(load(c2, un));
	assert_same(&back, &t);
	for (const cfg_field *f = fields; f->name; f++) {
		cfg_source s;
		const char *w;
		assert_ok(cfg_origin(c2, f->name, &s, &w));
		assert_int_equal(s, CFG_SRC_FILE);
	}
	free(un);
	free(ex);
	cfg_free(c2);
	cfg_free(c);
}

static void test_limits(void **state)
{
	(void)state;
	tconf t;
	cfg_ctx *c = fresh(&t);
	char *dir = tu_tmpdir("config");
	char path[512];
	const size_t big = CFG_FILE_MAX + 1;
	char *buf = malloc(big + 1);
	FILE *f;
	assert_non_null(buf);

	/* a line of exactly CFG_LINE_MAX bytes (plus CRLF) passes; one more byte does not */
	const char *pre = "# ";
	memset(buf, 'x', CFG_LINE_MAX);
	memcpy(buf, pre, 2);
	memcpy(buf + CFG_LINE_MAX, "\r\nworkers = 9\n", 14);
	assert_ok(cfg_load_text(c, "t.conf", buf, CFG_LINE_MAX + 14));
	assert_int_equal(t.workers, 9);
	memcpy(buf, "workers = 3\n", 12);
	memset(buf + 12, 'x', CFG_LINE_MAX + 1);
	buf[12] = '#';
	assert_err(cfg_load_text(c, "t.conf", buf, 12 + CFG_LINE_MAX + 1), PQ_ERR_RANGE,
	           "t.conf:2: line longer than 4096 bytes");
	assert_int_equal(t.workers, 9);

	/* files: one of CFG_FILE_MAX bytes of comments loads, one byte more does not */
	snprintf(path, sizeof(path), "%s/ok.conf", dir);
	memset(buf, '\n', big);
	memcpy(buf, "workers = 2\n", 12);
	f = fopen(path, "wb");
	assert_non_null(f);
	assert_int_equal(fwrite(buf, 1, CFG_FILE_MAX, f), CFG_FILE_MAX);
	assert_int_equal(fclose(f), 0);
	assert_ok(cfg_load_file(c, path));
	assert_int_equal(t.workers, 2);
	char where[600];
	snprintf(where, sizeof(where), "%s:1", path);
	assert_origin(c, "workers", CFG_SRC_FILE, where);

	snprintf(path, sizeof(path), "%s/big.conf", dir);
	memcpy(buf, "workers = 5\n", 12); /* never applied */
	f = fopen(path, "wb");
	assert_non_null(f);
	assert_int_equal(fwrite(buf, 1, big, f), big);
	assert_int_equal(fclose(f), 0);
	assert_rc(cfg_load_file(c, path), PQ_ERR_RANGE);
	assert_non_null(strstr(pq_err_detail(), "exceeds the limit of 1048576"));
	assert_rc(cfg_load_text(c, "t.conf", buf, big), PQ_ERR_RANGE);
	assert_int_equal(t.workers, 2);

	/* errors name the file and line */
	snprintf(path, sizeof(path), "%s/bad.conf", dir);
	f = fopen(path, "wb");
	assert_non_null(f);
	fputs("# header\nworkers = 0\n", f);
	assert_int_equal(fclose(f), 0);
	char want[700];
	snprintf(want, sizeof(want), "%s:2: key 'workers': 0 is below the minimum 1", path);
	assert_err(cfg_load_file(c, path), PQ_ERR_RANGE, want);

	/* missing file, directory */
	snprintf(path, sizeof(path), "%s/missing.conf", dir);
	assert_rc(cfg_load_file(c, path), PQ_ERR_NOTFOUND);
	assert_rc(cfg_load_file(c, dir), PQ_ERR_INVAL);

	free(buf);
	tu_rmtree(dir);
	free(dir);
	cfg_free(c);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_defaults),
	    cmocka_unit_test(test_schema_checks),
	    cmocka_unit_test(test_strings),
	    cmocka_unit_test(test_ints),
	    cmocka_unit_test(test_bools),
	    cmocka_unit_test(test_sizes),
	    cmocka_unit_test(test_durations),
	    cmocka_unit_test(test_enums),
	    cmocka_unit_test(test_lists),
	    cmocka_unit_test(test_file_syntax),
	    cmocka_unit_test(test_unknown_and_duplicate),
	    cmocka_unit_test(test_atomic_loads),
	    cmocka_unit_test(test_precedence),
	    cmocka_unit_test(test_env),
	    cmocka_unit_test(test_secrets),
	    cmocka_unit_test(test_secret_messages),
	    cmocka_unit_test(test_dump_roundtrip),
	    cmocka_unit_test(test_example),
	    cmocka_unit_test(test_limits),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
