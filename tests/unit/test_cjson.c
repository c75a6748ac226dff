/* test_cjson.c: canonical JSON for signed metadata (RFC 8785 subset): order, escapes, limits. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>

#include "testutil.h"
#include "uptane/cjson.h"

#define BIG (1u << 20)

/* Canonicalises text (NUL-terminated) and checks the result is want, byte for byte. */
static void expect_n(const char *text, size_t len, const char *want, size_t want_len)
{
	char *out = NULL;
	size_t n = 0;
	int rc = cj_parse_and_encode(text, len, BIG, &out, &n);
	if (rc != PQ_OK)
		fail_msg("'%s' failed: %d (%s)", text, rc, pq_err_detail());
	if (n != want_len || memcmp(out, want, n) != 0)
		fail_msg("'%s'\n got '%.*s'\nwant '%s'", text, (int)n, out, want);
	assert_int_equal(out[n], '\0');
	free(out);
}

static void expect(const char *text, const char *want)
{
	expect_n(text, strlen(text), want, strlen(want));
}

/* Checks that text fails with rc and, when part is not NULL, that the detail contains it. */
static void expect_err_n(const char *text, size_t len, int want_rc, const char *part)
{
	char *out = (char *)"untouched";
	size_t n = 99;
	int rc = cj_parse_and_encode(text, len, BIG, &out, &n);
	if (rc != want_rc)
		fail_msg("'%.*s': got %d, want %d (%s)", (int)len, text, rc, want_rc,
		         pq_err_detail());
	assert_null(out);
	assert_int_equal(n, 0);
	if (part && !strstr(pq_err_detail(), part))
		fail_msg("'%.*s': detail '%s' lacks '%s'", (int)len, text, pq_err_detail(), part);
	assert_false(cj_is_canonical(text, len));
}

static void expect_err(const char *text, int want_rc, const char *part)
{
	expect_err_n(text, strlen(text), want_rc, part);
}

/* cj_encode of v must fail with want_rc and a detail containing part; consumes v. */
static void expect_encode_err(json_t *v, int want_rc, const char *part)
{
	char *out = NULL;
	size_t n = 0;
	assert_non_null(v);
	assert_rc(cj_encode(v, BIG, &out, &n), want_rc);
	assert_null(out);
	if (part && !strstr(pq_err_detail(), part))
		fail_msg("detail '%s' lacks '%s'", pq_err_detail(), part);
	json_decref(v);
}

/* RFC 8785 section 3.2.3, the sorting example: UTF-16 order puts the emoji (a surrogate
 * pair, D83D DE00) before U+FB33, although its code point is larger. */
static void test_rfc8785_sort_example(void **state)
{
	(void)state;
	expect("{\n"
	       "  \"\\u20ac\": \"Euro Sign\",\n"
	       "  \"\\r\": \"Carriage Return\",\n"
	       "  \"\\ufb33\": \"Hebrew Letter Dalet With Dagesh\",\n"
	       "  \"1\": \"One\",\n"
	       "  \"\\ud83d\\ude00\": \"Emoji: Grinning Face\",\n"
	       "  \"\\u0080\": \"Control\",\n"
	       "  \"\\u00f6\": \"Latin Small Letter O With Diaeresis\"\n"
	       "}",
	       "{\"\\r\":\"Carriage Return\",\"1\":\"One\",\"\xc2\x80\":\"Control\","
	       "\"\xc3\xb6\":\"Latin Small Letter O With Diaeresis\",\"\xe2\x82\xac\":\"Euro "
	       "Sign\",\"\xf0\x9f\x98\x80\":\"Emoji: Grinning Face\",\"\xef\xac\xb3\":\"Hebrew "
	       "Letter Dalet With Dagesh\"}");
}

/* Where UTF-16 order and code point (or UTF-8 byte) order disagree, UTF-16 wins. */
static void test_utf16_order(void **state)
{
	(void)state;
	/* U+FB33 vs U+1F600 */
	expect("{\"\\ufb33\":1,\"\\ud83d\\ude00\":2}",
	       "{\"\xf0\x9f\x98\x80\":2,\"\xef\xac\xb3\":1}");
	/* U+E000 (first after the surrogates) vs U+10000 (first supplementary) */
	expect("{\"\\ue000\":1,\"\\ud800\\udc00\":2}",
	       "{\"\xf0\x90\x80\x80\":2,\"\xee\x80\x80\":1}");
	/* U+D7FF stays below every supplementary character */
	expect("{\"\\udbff\\udfff\":1,\"\\ud7ff\":2}",
	       "{\"\xed\x9f\xbf\":2,\"\xf4\x8f\xbf\xbf\":1}");
	/* U+FFFF is above U+10FFFF */
	expect("{\"\\uffff\":1,\"\\udbff\\udfff\":2}",
	       "{\"\xf4\x8f\xbf\xbf\":2,\"\xef\xbf\xbf\":1}");
	/* two supplementary characters: code point order */
	expect("{\"\\ud83d\\ude01\":1,\"\\ud83d\\ude00\":2,\"\\ud83c\\udf00\":3}",
	       "{\"\xf0\x9f\x8c\x80\":3,\"\xf0\x9f\x98\x80\":2,\"\xf0\x9f\x98\x81\":1}");
	/* a prefix sorts first; upper case before lower; digits before letters */
	expect("{\"ab\":1,\"a\":2,\"b\":3,\"B\":4,\"0\":5,\"\":6}",
	       "{\"\":6,\"0\":5,\"B\":4,\"a\":2,\"ab\":1,\"b\":3}");
	/* the same prefix, then a supplementary character vs U+E000..U+FFFF */
	expect("{\"x\\uff21\":1,\"x\\ud800\\udc00\":2,\"x\":3}",
	       "{\"x\":3,\"x\xf0\x90\x80\x80\":2,\"x\xef\xbc\xa1\":1}");
}

/* ---- an independent reference for the order: UTF-8 -> UTF-16 units, then compare ---- */

static size_t to_utf16(const char *s, size_t n, uint16_t *u, size_t cap)
{
	size_t k = 0;
	const unsigned char *p = (const unsigned char *)s;
	for (size_t i = 0; i < n;) {
		uint32_t cp;
		if (p[i] < 0x80) {
			cp = p[i++];
		} else if (p[i] < 0xe0) {
			cp = (uint32_t)(p[i] & 0x1f) << 6 | (p[i + 1] & 0x3f);
			i += 2;
		} else if (p[i] < 0xf0) {
			cp = (uint32_t)(p[i] & 0x0f) << 12 | (uint32_t)(p[i + 1] & 0x3f) << 6 |
			     (p[i + 2] & 0x3f);
			i += 3;
		} else {
			cp = (uint32_t)(p[i] & 0x07) << 18 | (uint32_t)(p[i + 1] & 0x3f) << 12 |
			     (uint32_t)(p[i + 2] & 0x3f) << 6 | (p[i + 3] & 0x3f);
			i += 4;
		}
		assert_true(k + 2 <= cap);
		if (cp >= 0x10000) {
			u[k++] = (uint16_t)(0xd800 + ((cp - 0x10000) >> 10));
			u[k++] = (uint16_t)(0xdc00 + ((cp - 0x10000) & 0x3ff));
		} else {
			u[k++] = (uint16_t)cp;
		}
	}
	return k;
}

static int utf16_cmp(const char *a, size_t an, const char *b, size_t bn)
{
	uint16_t ua[64], ub[64];
	size_t na = to_utf16(a, an, ua, 64), nb = to_utf16(b, bn, ub, 64);
	for (size_t i = 0; i < na && i < nb; i++)
		if (ua[i] != ub[i])
			return ua[i] < ub[i] ? -1 : 1;
	return (na > nb) - (na < nb);
}

static size_t put_utf8(uint32_t cp, char *o)
{
	if (cp < 0x80) {
		o[0] = (char)cp;
		return 1;
	}
	if (cp < 0x800) {
		o[0] = (char)(0xc0 | cp >> 6);
		o[1] = (char)(0x80 | (cp & 0x3f));
		return 2;
	}
	if (cp < 0x10000) {
		o[0] = (char)(0xe0 | cp >> 12);
		o[1] = (char)(0x80 | (cp >> 6 & 0x3f));
		o[2] = (char)(0x80 | (cp & 0x3f));
		return 3;
	}
	o[0] = (char)(0xf0 | cp >> 18);
	o[1] = (char)(0x80 | (cp >> 12 & 0x3f));
	o[2] = (char)(0x80 | (cp >> 6 & 0x3f));
	o[3] = (char)(0x80 | (cp & 0x3f));
	return 4;
}

/* Random keys drawn from every region that matters, encoded; the output's keys (jansson keeps
 * insertion order when it parses) must be strictly increasing under the reference order. */
static void test_order_matches_reference(void **state)
{
	(void)state;
	static const uint32_t lo[] = {0x20, 0x80, 0x800, 0xd700, 0xe000, 0xfff0, 0x10000, 0x10fff0};
	static const uint32_t span[] = {0x60, 0x80, 0x100, 0x100, 0x100, 0x10, 0x100, 0x10};
	uint32_t seed = 12345;
	json_t *obj = json_object(), *back = NULL;
	char *out = NULL;
	size_t n = 0;
	for (int k = 0; k < 400; k++) {
		char key[32];
		size_t len = 0;
		seed = seed * 1103515245u + 12345u;
		int chars = 1 + (int)(seed >> 16) % 4;
		for (int c = 0; c < chars; c++) {
			seed = seed * 1103515245u + 12345u;
			size_t r = (seed >> 16) % 8;
			seed = seed * 1103515245u + 12345u;
			uint32_t cp = lo[r] + (seed >> 16) % span[r];
			if (cp >= 0xd800 && cp <= 0xdfff)
				cp = 0xd7ff;
			len += put_utf8(cp, key + len);
		}
		assert_int_equal(json_object_setn_new(obj, key, len, json_integer(k)), 0);
	}
	assert_ok(cj_encode(obj, BIG, &out, &n));
	back = json_loadb(out, n, 0, NULL);
	assert_non_null(back);
	assert_int_equal(json_object_size(back), json_object_size(obj));
	const char *prev = NULL;
	size_t prev_len = 0;
	for (void *it = json_object_iter(back); it; it = json_object_iter_next(back, it)) {
		const char *key = json_object_iter_key(it);
		size_t len = json_object_iter_key_len(it);
		if (prev && utf16_cmp(prev, prev_len, key, len) >= 0)
			fail_msg("keys out of UTF-16 order in %s", out);
		prev = key;
		prev_len = len;
	}
	json_decref(back);
	json_decref(obj);
	free(out);
}

/* RFC 8785 section 3.2.2.2: string serialisation, and the literals of section 3.2.2. */
static void test_rfc8785_strings_and_literals(void **state)
{
	(void)state;
	expect("{\n  \"string\": \"\\u20ac$\\u000F\\u000aA'\\u0042\\u0022\\u005c\\\\\\\"\\/\",\n"
	       "  \"literals\": [null, true, false]\n}",
	       "{\"literals\":[null,true,false],\"string\":\"\xe2\x82\xac$\\u000f\\nA'"
	       "B\\\"\\\\\\\\\\\""
	       "/\"}");
}

/* The RFC's main example carries reals: metadata does not, so it is refused, with a path. */
static void test_rfc8785_example_with_numbers_refused(void **state)
{
	(void)state;
	expect_err("{\"numbers\": [333333333.33333329, 1E30, 4.50, 2e-3, "
	           "0.000000000000000000000000001], \"literals\": [null, true, false]}",
	           PQ_ERR_FORMAT, "numbers[0]: 333333333.3333333 is not an integer");
}

/* Every control character, in a built value (cj_encode) and through the parser. */
static void test_control_escapes(void **state)
{
	(void)state;
	for (unsigned c = 0; c < 0x20; c++) {
		char raw[3] = {'a', (char)c, 'b'}, want[16], text[16], *out = NULL;
		size_t n = 0;
		const char *shortf = c == 8    ? "\\b"
		                     : c == 9  ? "\\t"
		                     : c == 10 ? "\\n"
		                     : c == 12 ? "\\f"
		                     : c == 13 ? "\\r"
		                               : NULL;
		if (shortf)
			snprintf(want, sizeof(want), "\"a%sb\"", shortf);
		else
			snprintf(want, sizeof(want), "\"a\\u%04xb\"", c);
		json_t *s = json_stringn(raw, 3);
		assert_non_null(s);
		assert_ok(cj_encode(s, BIG, &out, &n));
		assert_int_equal(n, strlen(want));
		assert_memory_equal(out, want, n);
		assert_true(cj_is_canonical(out, n));
		free(out);
		json_decref(s);
		/* upper-case hex escapes in the input give the same canonical string */
		snprintf(text, sizeof(text), "\"a\\u%04Xb\"", c);
		expect(text, want);
	}
	/* '"' and '\' take short forms; '/', DEL, C1 controls and U+2028 stay literal */
	expect("\"\\u0022\\u005c\\u002f\\/\\u007f\\u0085\\u2028\"",
	       "\"\\\"\\\\//\x7f\xc2\x85\xe2\x80\xa8\"");
	expect("\"\\u00e9\\u0041\"", "\"\xc3\xa9"
	                             "A\"");
	/* U+0000 is allowed in values (escaped), never emitted raw */
	expect_n("\"a\\u0000b\"", 10, "\"a\\u0000b\"", 10);
	/* but not in keys */
	expect_err("{\"a\\u0000\":1}", PQ_ERR_FORMAT, "NUL");
	json_t *o = json_object();
	assert_int_equal(json_object_setn_new_nocheck(o, "a\0b", 3, json_true()), 0);
	expect_encode_err(o, PQ_ERR_FORMAT, "key contains U+0000");
}

static void test_no_whitespace_and_nesting(void **state)
{
	(void)state;
	expect(" \t\r\n{ \"b\" : [ 1 , 2 , { \"z\" : null , \"y\" : [ ] } ] ,\n\t\"a\" : { } } \n",
	       "{\"a\":{},\"b\":[1,2,{\"y\":[],\"z\":null}]}");
	expect("{}", "{}");
	expect("[]", "[]");
	expect("[[],{},[[]],[{}],\"\"]", "[[],{},[[]],[{}],\"\"]");
	expect("[true, false, null]", "[true,false,null]");
	/* arrays keep their order; every object level is sorted */
	expect("[3,1,2,{\"c\":{\"f\":1,\"e\":2},\"a\":[{\"y\":1,\"x\":2}]}]",
	       "[3,1,2,{\"a\":[{\"x\":2,\"y\":1}],\"c\":{\"e\":2,\"f\":1}}]");
	/* any value may stand at top level */
	expect(" true ", "true");
	expect("false", "false");
	expect("null", "null");
	expect("\"x\"", "\"x\"");
	expect("42", "42");
}

static void test_integer_bounds(void **state)
{
	(void)state;
	expect("0", "0");
	expect("-0", "0");
	expect("[1,-1,10,-10,1234567890]", "[1,-1,10,-10,1234567890]");
	expect("9007199254740991", "9007199254740991");
	expect("-9007199254740991", "-9007199254740991");
	expect_err("9007199254740992", PQ_ERR_RANGE, "9007199254740992 is outside");
	expect_err("-9007199254740992", PQ_ERR_RANGE, "-9007199254740992 is outside");
	expect_err("{\"a\":[0,9223372036854775807]}", PQ_ERR_RANGE, "a[1]: integer");
	expect_err("-9223372036854775808", PQ_ERR_RANGE, NULL);
	expect_err("123456789012345678901234567890", PQ_ERR_RANGE, "too big integer");
	expect_encode_err(json_integer(CJ_INT_MAX + 1), PQ_ERR_RANGE, "(top level): integer");
	char *out = NULL;
	size_t n = 0;
	json_t *v = json_integer(-CJ_INT_MAX);
	assert_ok(cj_encode(v, BIG, &out, &n));
	assert_string_equal(out, "-9007199254740991");
	free(out);
	json_decref(v);
}

static void test_reals_rejected(void **state)
{
	(void)state;
	static const char *const reals[] = {"1.5",  "1.0", "1e2",  "1E+2",
	                                    "-0.0", "0.5", "2e-3", "[1,2.0]"};
	for (size_t i = 0; i < sizeof(reals) / sizeof(reals[0]); i++)
		expect_err(reals[i], PQ_ERR_FORMAT, "is not an integer");
	expect_err("1.0", PQ_ERR_FORMAT, "1.0 is not an integer");
	expect_err("1E400", PQ_ERR_RANGE, "overflow");
	/* the path names where the real is */
	json_t *v = json_pack("{s:{s:{s:{s:f,s:s}}}}", "signed", "targets", "ECU_011", "length",
	                      1.5, "name", "x");
	expect_encode_err(v, PQ_ERR_FORMAT, "signed.targets.ECU_011.length: 1.5 is not an integer");
}

static void test_duplicate_keys(void **state)
{
	(void)state;
	expect_err("{\"a\":1,\"a\":2}", PQ_ERR_FORMAT, "duplicate");
	expect_err("{\"a\":1,\"\\u0061\":1}", PQ_ERR_FORMAT, "duplicate");
	expect_err("{\"x\":{\"k\":1,\"j\":2,\"k\":3}}", PQ_ERR_FORMAT, "duplicate");
	expect_err("{\"\\ud83d\\ude00\":1,\"\xf0\x9f\x98\x80\":2}", PQ_ERR_FORMAT, "duplicate");
	/* equal keys in different objects are fine */
	expect("[{\"a\":1},{\"a\":2}]", "[{\"a\":1},{\"a\":2}]");
}

static void test_invalid_utf8_and_surrogates(void **state)
{
	(void)state;
	static const char *const bad[] = {
	    "\"\xff\"",             /* never valid */
	    "\"\x80\"",             /* lone continuation */
	    "\"\xc0\xaf\"",         /* overlong '/' */
	    "\"\xe0\x80\xaf\"",     /* overlong, 3 bytes */
	    "\"\xed\xa0\x80\"",     /* U+D800 encoded directly */
	    "\"\xed\xbf\xbf\"",     /* U+DFFF encoded directly */
	    "\"\xf4\x90\x80\x80\"", /* above U+10FFFF */
	    "\"\xe2\x82\"",         /* truncated */
	    "{\"\xc3\":1}",         /* truncated, in a key */
	    "\"\\ud800\"",          /* lone high surrogate */
	    "\"\\udc00\"",          /* lone low surrogate */
	    "\"\\ud800\\u0041\"",   /* high surrogate, then not a low one */
	    "\"\\ud800x\"",         /* high surrogate, then a plain character */
	    "\"\\udc00\\ud800\"",   /* pair in the wrong order */
	    "{\"\\udfff\":1}",      /* lone surrogate in a key */
	};
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
		expect_err(bad[i], PQ_ERR_FORMAT, NULL);
	/* values built without jansson's check are still validated */
	expect_encode_err(
	    json_pack("{s:[i,o]}", "signed", 1, json_stringn_nocheck("ok\xed\xa0\x80", 5)),
	    PQ_ERR_FORMAT, "signed[1]: string is not valid UTF-8 at offset 2");
	json_t *o = json_object();
	assert_int_equal(json_object_set_new_nocheck(o, "fw/\xc0\xae", json_true()), 0);
	expect_encode_err(o, PQ_ERR_FORMAT, "[\"fw/\\xc0\\xae\"]: key is not valid UTF-8");
	/* the largest code point and the last before the surrogates are fine */
	expect("\"\xf4\x8f\xbf\xbf\xed\x9f\xbf\xee\x80\x80\"",
	       "\"\xf4\x8f\xbf\xbf\xed\x9f\xbf\xee\x80\x80\"");
}

/* Builds "[" x depth + "]" x depth (or objects {"a": ...} when obj). */
static char *nested(size_t depth, bool obj, size_t *len)
{
	char *t = malloc(depth * 6 + 2);
	size_t n = 0;
	assert_non_null(t);
	for (size_t i = 0; i < depth; i++) {
		if (obj && i + 1 < depth) {
			memcpy(t + n, "{\"a\":", 5);
			n += 5;
		} else {
			t[n++] = obj ? '{' : '[';
		}
	}
	for (size_t i = 0; i < depth; i++)
		t[n++] = obj ? '}' : ']';
	t[n] = '\0';
	*len = n;
	return t;
}

static void test_depth_bound(void **state)
{
	(void)state;
	size_t len;
	char *t;
	for (int obj = 0; obj < 2; obj++) {
		t = nested(CJ_DEPTH_MAX, obj, &len);
		expect_n(t, len, t, len);
		free(t);
		t = nested(CJ_DEPTH_MAX + 1, obj, &len);
		expect_err_n(t, len, PQ_ERR_RANGE, "nesting deeper than 32");
		free(t);
	}
	/* far beyond jansson's own limit: refused before parsing */
	t = nested(100000, false, &len);
	expect_err_n(t, len, PQ_ERR_RANGE, "at offset 32: nesting");
	free(t);
	/* brackets inside strings do not count */
	expect("[\"[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[\\\"[[[[[[\"]",
	       "[\"[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[\\\"[[[[[[\"]");
	expect_err("]", PQ_ERR_FORMAT, NULL);
	/* a built tree: 33 levels refused, with the path */
	json_t *root = json_array(), *cur = root;
	for (int i = 1; i < CJ_DEPTH_MAX + 1; i++) {
		json_t *next = json_array();
		assert_int_equal(json_array_append_new(cur, next), 0);
		cur = next;
	}
	expect_encode_err(root, PQ_ERR_RANGE, "[0][0][0]");
	/* a cycle ends at the bound instead of looping */
	json_t *cyc = json_array();
	if (json_array_append(cyc, cyc) == 0) {
		char *out = NULL;
		size_t n = 0;
		assert_rc(cj_encode(cyc, BIG, &out, &n), PQ_ERR_RANGE);
		json_array_clear(cyc);
	}
	json_decref(cyc);
}

static void test_output_bound(void **state)
{
	(void)state;
	char *out = NULL;
	size_t n = 0;
	const char *text = "{ \"b\": [1, 2], \"a\": \"xyz\" }"; /* {"a":"xyz","b":[1,2]}: 21 */
	assert_ok(cj_parse_and_encode(text, strlen(text), 21, &out, &n));
	assert_int_equal(n, 21);
	free(out);
	for (size_t max = 0; max < 21; max++) {
		assert_rc(cj_parse_and_encode(text, strlen(text), max, &out, &n), PQ_ERR_RANGE);
		assert_null(out);
		assert_int_equal(n, 0);
	}
	assert_non_null(strstr(pq_err_detail(), "canonical JSON exceeds the limit of 20 bytes"));
	/* a long string, growing the buffer past its first allocation */
	size_t big = 100000;
	char *s = malloc(big + 3);
	assert_non_null(s);
	s[0] = '"';
	memset(s + 1, 'q', big);
	s[big + 1] = '"';
	s[big + 2] = '\0';
	expect_n(s, big + 2, s, big + 2);
	assert_rc(cj_parse_and_encode(s, big + 2, big + 1, &out, &n), PQ_ERR_RANGE);
	assert_ok(cj_parse_and_encode(s, big + 2, SIZE_MAX, &out, &n));
	free(out);
	free(s);
}

/* encode(parse(encode(x))) == encode(x), and the result is canonical. */
static void test_idempotence(void **state)
{
	(void)state;
	static const char *const inputs[] = {
	    "{\"z\":1,\"a\":{\"\\u00f6\":[1,2,{\"\\ud83d\\ude00\":\"\\u001f\\t\"}]}}",
	    "[\"\\\"\\\\\\/\\b\\f\\n\\r\\t\\u0000\\u007f\\u00ff\\uffff\"]",
	    " [ -9007199254740991 , 9007199254740991 , -0 , 0 ] ",
	    "{\"\\ufb33\":{\"\\ue000\":{\"\\ud800\\udc00\":{}}}}",
	    "\"\\u0061\\u0062\"",
	    "{}",
	};
	for (size_t i = 0; i < sizeof(inputs) / sizeof(inputs[0]); i++) {
		char *a = NULL, *b = NULL;
		size_t an = 0, bn = 0;
		assert_ok(cj_parse_and_encode(inputs[i], strlen(inputs[i]), BIG, &a, &an));
		assert_ok(cj_parse_and_encode(a, an, BIG, &b, &bn));
		assert_int_equal(an, bn);
		assert_memory_equal(a, b, an);
		assert_true(cj_is_canonical(a, an));
		/* and through a jansson tree too */
		json_t *v = json_loadb(a, an, JSON_ALLOW_NUL | JSON_DECODE_ANY, NULL);
		assert_non_null(v);
		free(b);
		assert_ok(cj_encode(v, BIG, &b, &bn));
		assert_int_equal(an, bn);
		assert_memory_equal(a, b, an);
		json_decref(v);
		free(a);
		free(b);
	}
}

static void test_is_canonical(void **state)
{
	(void)state;
	static const char *const yes[] = {
	    "{}",
	    "[]",
	    "0",
	    "-1",
	    "true",
	    "\"\"",
	    "{\"a\":1,\"b\":[true,false,null]}",
	    "\"\\u001f\\u0000\\n\\\"\\\\\"",
	    "{\"\xf0\x9f\x98\x80\":2,\"\xef\xac\xb3\":1}",
	    "\"\x7f\xc2\x80\"",
	};
	static const char *const no[] = {
	    "{\"b\":1,\"a\":2}",                           /* keys out of order */
	    "{\"\xef\xac\xb3\":1,\"\xf0\x9f\x98\x80\":2}", /* code point order, not UTF-16 */
	    "{\"a\": 1}",                                  /* a space */
	    " {}",                                         /* leading space */
	    "{}\n",                                        /* trailing newline */
	    "[1, 2]",                                      /* space after a comma */
	    "\"\\u0041\"",                                 /* a needless escape */
	    "\"\\/\"",                                     /* '/' escaped */
	    "\"\\u001F\"",                                 /* upper-case hex */
	    "\"\\u000a\"",                                 /* long form where \n exists */
	    "\"\\u00e9\"",                                 /* escaped non-ASCII */
	    "\"\\ud83d\\ude00\"",                          /* escaped surrogate pair */
	    "-0",                                          /* negative zero */
	    "1.0",                                         /* a real */
	    "{\"a\":1,\"a\":1}",                           /* duplicate */
	    "",                                            /* nothing */
	    "{",                                           /* truncated */
	    "\"\xff\"",                                    /* invalid UTF-8 */
	};
	for (size_t i = 0; i < sizeof(yes) / sizeof(yes[0]); i++)
		if (!cj_is_canonical(yes[i], strlen(yes[i])))
			fail_msg("'%s' should be canonical (%s)", yes[i], pq_err_detail());
	for (size_t i = 0; i < sizeof(no) / sizeof(no[0]); i++)
		if (cj_is_canonical(no[i], strlen(no[i])))
			fail_msg("'%s' should not be canonical", no[i]);
	assert_false(cj_is_canonical("{\"a\": 1}", 8));
	assert_non_null(strstr(pq_err_detail(), "at offset 5"));
	/* length-counted: the bytes after len do not count, a NUL inside does */
	assert_true(cj_is_canonical("[1]garbage", 3));
	assert_false(cj_is_canonical("[1]\0", 4));
	assert_false(cj_is_canonical(NULL, 0));
}

/* A realistic piece of signed metadata, pretty-printed, and its exact canonical bytes. */
static void test_uptane_golden(void **state)
{
	(void)state;
	expect(
	    "{\n"
	    "  \"signed\": {\n"
	    "    \"_type\": \"targets\",\n"
	    "    \"spec_version\": \"1.0.0\",\n"
	    "    \"version\": 7,\n"
	    "    \"expires\": \"2030-01-01T00:00:00Z\",\n"
	    "    \"targets\": {\n"
	    "      \"ZONE1/ECU_011.swpg\": {\n"
	    "        \"length\": 1048576,\n"
	    "        \"hashes\": {\"sha256\": \"9f86d081884c7d65\"},\n"
	    "        \"custom\": {\"ecu_serial\": \"ECU_011\", \"hardware_id\": \"zc-\\u00e9\"}\n"
	    "      }\n"
	    "    }\n"
	    "  },\n"
	    "  \"signatures\": [\n"
	    "    {\"keyid\": \"ab12\", \"method\": \"hybrid\", \"sig\": \"AAEC\"}\n"
	    "  ]\n"
	    "}\n",
	    "{\"signatures\":[{\"keyid\":\"ab12\",\"method\":\"hybrid\",\"sig\":\"AAEC\"}],"
	    "\"signed\":{\"_type\":\"targets\",\"expires\":\"2030-01-01T00:00:00Z\","
	    "\"spec_version\":\"1.0.0\",\"targets\":{\"ZONE1/ECU_011.swpg\":{\"custom\":{"
	    "\"ecu_serial\":\"ECU_011\",\"hardware_id\":\"zc-\xc3\xa9\"},\"hashes\":{"
	    "\"sha256\":\"9f86d081884c7d65\"},\"length\":1048576}},\"version\":7}}");
	/* error paths: array indices and quoted keys */
	expect_err("{\"signed\":{\"targets\":{\"ZONE1/ECU_011.swpg\":{\"length\":1.25}}}}",
	           PQ_ERR_FORMAT, "signed.targets[\"ZONE1/ECU_011.swpg\"].length: 1.25 is not");
	expect_err("{\"signatures\":[{\"sig\":\"a\"},{\"sig\":0.5}]}", PQ_ERR_FORMAT,
	           "signatures[1].sig: 0.5 is not an integer");
	expect_err("{\"a\\nb\":{\"\\u00e9\":1e1}}", PQ_ERR_FORMAT,
	           "[\"a\\x0ab\"][\"\\xc3\\xa9\"]: 10.0 is not an integer");
	expect_err("{\"a\":1,}", PQ_ERR_FORMAT, "JSON at line 1, column 8");
	expect_err("[1] [2]", PQ_ERR_FORMAT, "end of file expected");
}

static void test_arguments(void **state)
{
	(void)state;
	char *out = NULL;
	size_t n = 0;
	json_t *v = json_true();
	assert_rc(cj_encode(NULL, BIG, &out, &n), PQ_ERR_INVAL);
	assert_rc(cj_encode(v, BIG, NULL, &n), PQ_ERR_INVAL);
	assert_rc(cj_encode(v, BIG, &out, NULL), PQ_ERR_INVAL);
	assert_rc(cj_parse_and_encode("1", 1, BIG, NULL, &n), PQ_ERR_INVAL);
	assert_rc(cj_parse_and_encode(NULL, 1, BIG, &out, &n), PQ_ERR_INVAL);
	assert_rc(cj_parse_and_encode(NULL, 0, BIG, &out, &n), PQ_ERR_FORMAT);
	/* the text need not be NUL-terminated */
	char buf[3] = {'[', '7', ']'};
	assert_ok(cj_parse_and_encode(buf, sizeof(buf), BIG, &out, &n));
	assert_string_equal(out, "[7]");
	free(out);
	json_decref(v);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_rfc8785_sort_example),
	    cmocka_unit_test(test_utf16_order),
	    cmocka_unit_test(test_order_matches_reference),
	    cmocka_unit_test(test_rfc8785_strings_and_literals),
	    cmocka_unit_test(test_rfc8785_example_with_numbers_refused),
	    cmocka_unit_test(test_control_escapes),
	    cmocka_unit_test(test_no_whitespace_and_nesting),
	    cmocka_unit_test(test_integer_bounds),
	    cmocka_unit_test(test_reals_rejected),
	    cmocka_unit_test(test_duplicate_keys),
	    cmocka_unit_test(test_invalid_utf8_and_surrogates),
	    cmocka_unit_test(test_depth_bound),
	    cmocka_unit_test(test_output_bound),
	    cmocka_unit_test(test_idempotence),
	    cmocka_unit_test(test_is_canonical),
	    cmocka_unit_test(test_uptane_golden),
	    cmocka_unit_test(test_arguments),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
