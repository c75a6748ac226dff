/* test_semver.c: semantic version parsing and precedence, incl. the original's cases. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include "core/semver.h"

static int cmp(const char *a, const char *b)
{
	int r = 99;
	if (semver_cmp_str(a, b, &r) != PQ_OK)
		fail_msg("'%s' or '%s' did not parse", a, b);
	return r;
}

static void test_original_cases(void **state)
{
	(void)state;
	assert_true(cmp("2.0.0", "1.9.9") > 0);
	assert_true(cmp("1.5.0", "1.4.10") > 0);
	assert_true(cmp("1.4.10", "1.4.9") > 0);
	assert_true(cmp("1.10.0", "1.9.0") > 0);
	assert_int_equal(cmp("1.2.3", "1.2.3"), 0);
	assert_true(cmp("1.2.3", "1.2.4") < 0);
}

static void test_precedence_chain(void **state)
{
	(void)state;
	/* semver.org 2.0.0 section 11: each is lower than the next */
	static const char *const chain[] = {"1.0.0-alpha", "1.0.0-alpha.1", "1.0.0-alpha.beta",
	                                    "1.0.0-beta",  "1.0.0-beta.2",  "1.0.0-beta.11",
	                                    "1.0.0-rc.1",  "1.0.0",         "2.0.0",
	                                    "2.1.0",       "2.1.1"};
	size_t n = sizeof(chain) / sizeof(chain[0]);
	for (size_t i = 0; i < n; i++)
		for (size_t j = 0; j < n; j++) {
			int r = cmp(chain[i], chain[j]);
			int want = i < j ? -1 : i > j;
			if ((r > 0) - (r < 0) != want)
				fail_msg("%s vs %s gave %d", chain[i], chain[j], r);
		}
	assert_int_equal(cmp("1.0.0+build.1", "1.0.0+other"), 0); /* build ignored */
	assert_true(cmp("18446744073709551615.0.0", "18446744073709551614.9.9") > 0);
}

static void test_rejects(void **state)
{
	(void)state;
	static const char *const bad[] = {
	    "",          "1",      "1.2",        "1.2.3.4",
	    "01.2.3",    "1.02.3", "1.2.03",     "v1.2.3",
	    "1.2.3-",    "1.2.3+", "1.2.3-a..b", "1.2.3-01",
	    "1.2.3 ",    " 1.2.3", "1.2.-3",     "18446744073709551616.0.0",
	    "1.2.3-a_b", "a.b.c"};
	semver v;
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
		if (semver_parse(bad[i], &v) == PQ_OK)
			fail_msg("'%s' accepted", bad[i]);
	assert_int_equal(semver_parse(NULL, &v), PQ_ERR_INVAL);
	assert_int_equal(semver_parse("1.0.0-rc.1+b.7", &v), PQ_OK);
	assert_string_equal(v.pre, "rc.1");
	assert_string_equal(v.build, "b.7");
	assert_int_equal(v.major, 1);
}

/* The release counter orders as the versions do, to pre-release granularity. */
static void test_counter(void **state)
{
	(void)state;
	int64_t a = 0, b = 0;
	assert_int_equal(semver_counter("1.10.0", &a), PQ_OK);
	assert_int_equal(a, 1000000000000LL + 10000000LL);
	assert_int_equal(semver_counter("1.9.1000000", &b), PQ_ERR_RANGE);
	assert_int_equal(semver_counter("1.9.999999", &b), PQ_OK);
	assert_true(a > b);
	assert_int_equal(semver_counter("1.10.0-rc.1", &b), PQ_OK);
	assert_int_equal(b, a - 1);
	assert_int_equal(semver_counter("0.0.0-rc.1", &b), PQ_OK);
	assert_int_equal(b, 0);
	assert_int_equal(semver_counter("nightly", &b), PQ_ERR_INVAL);
	pq_err_clear();
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_original_cases),
	    cmocka_unit_test(test_precedence_chain),
	    cmocka_unit_test(test_rejects),
	    cmocka_unit_test(test_counter),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
