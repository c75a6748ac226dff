/* test_core.c: the shared helpers of src/core: clocks, the capped text builder, path
 * joining, hex, base64, UTF-8, UUIDs and the JSON member readers. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdlib.h>
#include <string.h>

#include "core/buf.h"
#include "core/fileio.h"
#include "core/jsonv.h"
#include "core/text.h"
#include "core/time.h"
#include "core/uuid.h"
#include "testutil.h"

static void test_clocks(void **state)
{
	(void)state;
	int64_t m0 = pq_mono_ms(), n0 = pq_mono_ns();
	pq_sleep_ms(20);
	assert_true(pq_mono_ms() - m0 >= 20);
	assert_true(pq_mono_ns() - n0 >= 20 * 1000000LL);
	assert_true(pq_real_ms() > 1700000000000LL); /* after November 2023 */
	char iso[PQ_ISO_TIME_LEN], isoms[PQ_ISO_TIME_MS_LEN];
	assert_ok(pq_iso_time(0, iso));
	assert_string_equal(iso, "1970-01-01T00:00:00Z");
	assert_ok(pq_iso_time(253402300799LL, iso));
	assert_string_equal(iso, "9999-12-31T23:59:59Z");
	assert_rc(pq_iso_time(-1, iso), PQ_ERR_RANGE);
	assert_rc(pq_iso_time(253402300800LL, iso), PQ_ERR_RANGE);
	pq_iso_time_ms(1700000000123LL, isoms);
	assert_string_equal(isoms, "2023-11-14T22:13:20.123Z");
}

static void test_buf_growing(void **state)
{
	(void)state;
	pq_buf b;
	char *out = NULL;
	size_t len = 0;
	pq_buf_init(&b, 1 << 20);
	for (int i = 0; i < 1000; i++)
		pq_buf_printf(&b, "%04d,", i);
	pq_buf_str(&b, "end");
	pq_buf_char(&b, '!');
	assert_ok(pq_buf_finish(&b, &out, &len, "numbers"));
	assert_int_equal(len, 5000 + 4);
	assert_memory_equal(out, "0000,0001,", 10);
	assert_string_equal(out + 5000, "end!");
	free(out);

	/* nothing appended: an empty string, not NULL */
	pq_buf_init(&b, 10);
	assert_ok(pq_buf_finish(&b, &out, NULL, "empty"));
	assert_string_equal(out, "");
	free(out);

	/* past the cap: the first failure sticks and nothing leaks */
	pq_buf_init(&b, 8);
	pq_buf_str(&b, "12345678");
	assert_ok(pq_buf_err(&b));
	pq_buf_str(&b, "9");
	assert_rc(pq_buf_err(&b), PQ_ERR_RANGE);
	pq_buf_str(&b, "x");
	assert_rc(pq_buf_finish(&b, &out, NULL, "capped"), PQ_ERR_RANGE);
	assert_null(out);
	assert_non_null(strstr(pq_err_detail(), "capped"));

	/* a long printf past the small stack buffer */
	pq_buf_init(&b, 4096);
	pq_buf_printf(&b, "%0700d|%s", 7, "tail");
	assert_ok(pq_buf_finish(&b, &out, &len, "long"));
	assert_int_equal(len, 705);
	assert_string_equal(out + 700, "|tail");
	free(out);
}

static void test_buf_fixed(void **state)
{
	(void)state;
	char mem[12];
	pq_buf b;
	pq_buf_init_fixed(&b, mem, sizeof(mem));
	pq_buf_str(&b, "abc");
	pq_buf_printf(&b, "%d", 42);
	assert_string_equal(mem, "abc42");
	assert_false(b.cut);
	pq_buf_str(&b, "0123456789");
	assert_true(b.cut);
	assert_string_equal(mem, "abc42012...");
	pq_buf_str(&b, "more");
	assert_string_equal(mem, "abc42012...");
	assert_ok(pq_buf_err(&b));
	pq_buf_free(&b);
	pq_buf_printf(&b, "%s-%s", "0123456789", "x");
	assert_string_equal(mem, "01234567...");
}

static void test_path_join(void **state)
{
	(void)state;
	char p[16];
	assert_ok(pq_path_join(p, sizeof(p), "pki", "ca.crt"));
	assert_string_equal(p, "pki/ca.crt");
	assert_ok(pq_path_join(p, sizeof(p), "", "rel"));
	assert_string_equal(p, "rel");
	assert_ok(pq_path_join(p, sizeof(p), "d", "a..b/c.."));
	assert_string_equal(p, "d/a..b/c..");
	/* a name never leaves its directory */
	static const char *const out_of_dir[] = {"/etc/x", "..", "../x", "x/..", "x/../y"};
	for (size_t i = 0; i < sizeof(out_of_dir) / sizeof(out_of_dir[0]); i++)
		if (pq_path_join(p, sizeof(p), "pki", out_of_dir[i]) != PQ_ERR_INVAL)
			fail_msg("'%s' accepted as a name", out_of_dir[i]);
	/* a path the user wrote: absolute stays, relative is taken from the base */
	assert_ok(pq_path_resolve(p, sizeof(p), "pki", "/abs"));
	assert_string_equal(p, "/abs");
	assert_ok(pq_path_resolve(p, sizeof(p), "desc", "../img"));
	assert_string_equal(p, "desc/../img");
	assert_ok(pq_path_resolve(p, sizeof(p), "", "rel"));
	assert_string_equal(p, "rel");
	assert_rc(pq_path_resolve(p, sizeof(p), "0123456", "012345678"), PQ_ERR_RANGE);
	assert_ok(pq_path_join(p, sizeof(p), "012345", "01234567"));
	assert_rc(pq_path_join(p, sizeof(p), "0123456", "012345678"), PQ_ERR_RANGE);
	assert_string_equal(p, "");
}

static void test_hex(void **state)
{
	(void)state;
	uint8_t bin[4] = {0x00, 0x7f, 0xab, 0xff}, back[4];
	char hex[9];
	size_t n = 0;
	pq_hex_encode(bin, 4, hex);
	assert_string_equal(hex, "007fabff");
	pq_hex_encode_upper(bin, 4, hex);
	assert_string_equal(hex, "007FABFF");
	assert_ok(pq_hex_decode("007FabFF", back, sizeof(back), &n));
	assert_int_equal(n, 4);
	assert_memory_equal(back, bin, 4);
	assert_rc(pq_hex_decode("abc", back, sizeof(back), &n), PQ_ERR_FORMAT);
	assert_rc(pq_hex_decode("zz", back, sizeof(back), &n), PQ_ERR_FORMAT);
	assert_rc(pq_hex_decode("0011223344", back, sizeof(back), &n), PQ_ERR_RANGE);
}

static void test_base64(void **state)
{
	(void)state;
	/* RFC 4648 section 10 */
	static const char *const plain[] = {"", "f", "fo", "foo", "foob", "fooba", "foobar"};
	static const char *const enc[] = {"",         "Zg==",     "Zm8=",    "Zm9v",
	                                  "Zm9vYg==", "Zm9vYmE=", "Zm9vYmFy"};
	for (size_t i = 0; i < 7; i++) {
		char out[16];
		uint8_t back[8];
		size_t n = 99;
		assert_ok(
		    pq_b64_encode((const uint8_t *)plain[i], strlen(plain[i]), out, sizeof(out)));
		assert_string_equal(out, enc[i]);
		if (i == 0)
			continue; /* empty input is refused by the strict decoder */
		assert_ok(pq_b64_decode(enc[i], strlen(enc[i]), back, sizeof(back), &n));
		assert_int_equal(n, strlen(plain[i]));
		assert_memory_equal(back, plain[i], n);
	}
	/* large enough to cross the codec's chunks */
	uint8_t big[10000], back[10000];
	char *text = malloc(PQ_B64_LEN(sizeof(big)));
	size_t n = 0;
	for (size_t i = 0; i < sizeof(big); i++)
		big[i] = (uint8_t)(i * 7 + 3);
	assert_non_null(text);
	assert_ok(pq_b64_encode(big, sizeof(big), text, PQ_B64_LEN(sizeof(big))));
	assert_ok(pq_b64_decode(text, strlen(text), back, sizeof(back), &n));
	assert_int_equal(n, sizeof(big));
	assert_memory_equal(back, big, n);
	free(text);

	static const char *const bad[] = {
	    "",     "Zg=",      "Zg",   "Z===",     "Zm9v\n", " Zm9v",
	    "Zm=v", "Zm9v====", "Zm9-", "Zg==Zg==", "=Zg=",   "Zm9vYg=\n"};
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		uint8_t out[16];
		if (pq_b64_decode(bad[i], strlen(bad[i]), out, sizeof(out), &n) == PQ_OK)
			fail_msg("'%s' accepted", bad[i]);
	}
	uint8_t small[2];
	assert_rc(pq_b64_decode("Zm9v", 4, small, sizeof(small), &n), PQ_ERR_RANGE);
	char tiny[4];
	assert_rc(pq_b64_encode((const uint8_t *)"foo", 3, tiny, sizeof(tiny)), PQ_ERR_RANGE);
}

static void test_utf8(void **state)
{
	(void)state;
	static const char *const good[] = {
	    "", "plain", "\xc3\xa9", "\xe2\x82\xac", "\xf0\x9f\x9a\x97", "\xf4\x8f\xbf\xbf"};
	static const char *const bad[] = {"\xc0\xaf",         "\xe0\x80\xaf", "\xed\xa0\x80",
	                                  "\xf4\x90\x80\x80", "\xf5\x80",     "\x80",
	                                  "ok\xe2\x82"};
	for (size_t i = 0; i < sizeof(good) / sizeof(good[0]); i++)
		assert_true(pq_utf8_valid((const unsigned char *)good[i], strlen(good[i])));
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
		if (pq_utf8_valid((const unsigned char *)bad[i], strlen(bad[i])))
			fail_msg("bad sequence %zu accepted", i);
	assert_int_equal(pq_utf8_check((const unsigned char *)"ab\xff", 3), 2);
	char s[] = "caf\xc3\xa9\xe2\x82";
	pq_utf8_trim(s);
	assert_string_equal(s, "caf\xc3\xa9");
	pq_utf8_trim(s);
	assert_string_equal(s, "caf\xc3\xa9");
	char dirty[] = "ok \xff\xc3\xa9 \xe2\x82";
	pq_utf8_scrub(dirty);
	assert_string_equal(dirty, "ok ?\xc3\xa9 ??");
	assert_true(pq_ascii_printable("Hello, world ~"));
	assert_false(pq_ascii_printable("tab\there"));
	assert_false(pq_ascii_printable("caf\xc3\xa9"));
}

static void test_uuid(void **state)
{
	(void)state;
	char a[PQ_UUID_LEN], b[PQ_UUID_LEN];
	assert_ok(pq_uuid4(a));
	assert_ok(pq_uuid4(b));
	assert_int_equal(strlen(a), 36);
	assert_string_not_equal(a, b);
	assert_int_equal(a[8], '-');
	assert_int_equal(a[14], '4');
	assert_non_null(strchr("89ab", a[19]));
}

static void test_jsonv(void **state)
{
	(void)state;
	json_error_t je;
	json_t *o = json_loads("{\"name\":\"n1\",\"n\":7,\"b\":true,\"r\":0.5,\"nul\":null,"
	                       "\"tags\":[\"x\",\"y\"],\"ctl\":\"a\\u0001\",\"zero\":\"a\\u0000b\","
	                       "\"sub\":{},\"empty\":\"\"}",
	                       JSON_ALLOW_NUL, &je);
	assert_non_null(o);
	pq_jv c = {.err = PQ_ERR_INVAL, .what = "campaign", .null_absent = true};
	static const char *const keys[] = {"name", "n",    "b",   "r",     "nul", "tags",
	                                   "ctl",  "zero", "sub", "empty", NULL};
	static const char *const fewer[] = {"name", NULL};
	assert_ok(pq_jv_keys(&c, o, "", keys));
	assert_rc(pq_jv_keys(&c, o, "top", fewer), PQ_ERR_INVAL);
	assert_non_null(strstr(pq_err_detail(), "campaign: top."));
	assert_non_null(strstr(pq_err_detail(), "unknown member"));

	const char *s = "default";
	assert_ok(pq_jv_str(&c, o, "absent", "", 0, 10, &s));
	assert_string_equal(s, "default");
	assert_ok(pq_jv_str(&c, o, "nul", "", 0, 10, &s));
	assert_string_equal(s, "default");
	assert_rc(pq_jv_str(&c, o, "absent", "p", PQ_JV_REQUIRED, 10, &s), PQ_ERR_INVAL);
	assert_string_equal(pq_err_detail(), "campaign: p.absent: missing");
	assert_ok(pq_jv_str(&c, o, "name", "", PQ_JV_PRINTABLE, 10, &s));
	assert_string_equal(s, "n1");
	assert_rc(pq_jv_str(&c, o, "name", "", 0, 1, &s), PQ_ERR_INVAL);
	assert_rc(pq_jv_str(&c, o, "n", "", 0, 10, &s), PQ_ERR_INVAL);
	assert_rc(pq_jv_str(&c, o, "ctl", "", PQ_JV_NO_CTRL, 10, &s), PQ_ERR_INVAL);
	assert_rc(pq_jv_str(&c, o, "ctl", "", PQ_JV_PRINTABLE, 10, &s), PQ_ERR_INVAL);
	assert_rc(pq_jv_str(&c, o, "zero", "", 0, 10, &s), PQ_ERR_INVAL);
	assert_rc(pq_jv_str(&c, o, "empty", "", 0, 10, &s), PQ_ERR_INVAL);
	assert_ok(pq_jv_str(&c, o, "empty", "", PQ_JV_EMPTY_OK, 10, &s));
	assert_string_equal(s, "");
	char copy[3];
	assert_ok(pq_jv_str_copy(&c, o, "name", "", 0, copy, sizeof(copy)));
	assert_string_equal(copy, "n1");

	int64_t n = -1;
	assert_ok(pq_jv_int(&c, o, "n", "", 0, 0, 10, &n));
	assert_int_equal(n, 7);
	assert_rc(pq_jv_int(&c, o, "n", "", 0, 8, 10, &n), PQ_ERR_INVAL);
	assert_rc(pq_jv_int(&c, o, "r", "", 0, 0, 10, &n), PQ_ERR_INVAL);
	bool b = false;
	assert_ok(pq_jv_bool(&c, o, "b", "", 0, &b));
	assert_true(b);
	assert_rc(pq_jv_bool(&c, o, "n", "", 0, &b), PQ_ERR_INVAL);
	double r = 0;
	assert_ok(pq_jv_num(&c, o, "r", "", 0, 0, 1, &r));
	assert_true(r == 0.5);
	assert_ok(pq_jv_num(&c, o, "n", "", 0, 0, 10, &r));
	assert_rc(pq_jv_num(&c, o, "n", "", 0, 0, 1, &r), PQ_ERR_INVAL);
	json_t *sub = NULL, *arr = NULL;
	assert_ok(pq_jv_obj(&c, o, "sub", "", 0, &sub));
	assert_true(json_is_object(sub));
	assert_rc(pq_jv_obj(&c, o, "tags", "", 0, &sub), PQ_ERR_INVAL);
	assert_ok(pq_jv_str_array(&c, o, "tags", "", 0, 2, 1, &arr));
	assert_int_equal(json_array_size(arr), 2);
	assert_rc(pq_jv_str_array(&c, o, "tags", "", 0, 1, 1, &arr), PQ_ERR_INVAL);

	/* null counts as present when the context says so */
	pq_jv strict = {.err = PQ_ERR_FORMAT, .what = NULL, .null_absent = false};
	assert_rc(pq_jv_str(&strict, o, "nul", "x", 0, 10, &s), PQ_ERR_FORMAT);
	assert_string_equal(pq_err_detail(), "x.nul: not a string");
	json_decref(o);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_clocks),    cmocka_unit_test(test_buf_growing),
	    cmocka_unit_test(test_buf_fixed), cmocka_unit_test(test_path_join),
	    cmocka_unit_test(test_hex),       cmocka_unit_test(test_base64),
	    cmocka_unit_test(test_utf8),      cmocka_unit_test(test_uuid),
	    cmocka_unit_test(test_jsonv),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
