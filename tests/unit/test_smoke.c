/* test_smoke.c: temporary */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include "crypto/hash.h"
static void t(void **s) { (void)s; uint8_t d[32]; assert_int_equal(pq_hash(PQ_HASH_SHA256, "abc", 3, d), 0); assert_int_equal(d[0], 0xba); }
int main(void) { const struct CMUnitTest tests[] = { cmocka_unit_test(t) }; return cmocka_run_group_tests(tests, NULL, NULL); }
