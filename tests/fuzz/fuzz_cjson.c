/* fuzz_cjson.c: libFuzzer harness for canonical JSON: arbitrary bytes go to cj_parse_and_encode.
 *
 * Whenever it succeeds, the output must be canonical, re-encode to the same bytes, be no
 * longer than the input, hold no NUL and be NUL-terminated, and exceed any smaller bound;
 * the input counts as canonical exactly when it equals the output. Whenever it fails, the
 * input must not count as canonical. Violations abort. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "uptane/cjson.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define OUT_MAX (1u << 20)

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	const char *text = (const char *)data;
	char *out = NULL, *again = NULL, *small = NULL;
	size_t n = 0, m = 0, k = 0;
	bool canonical = cj_is_canonical(text, size);
	if (cj_parse_and_encode(text, size, OUT_MAX, &out, &n) != PQ_OK) {
		if (canonical || out || n)
			abort();
		return 0;
	}
	if (n > size || out[n] != '\0' || memchr(out, '\0', n))
		abort();
	if (canonical != (n == size && memcmp(out, text, n) == 0))
		abort();
	if (!cj_is_canonical(out, n))
		abort();
	if (cj_parse_and_encode(out, n, n, &again, &m) != PQ_OK || m != n ||
	    memcmp(out, again, n) != 0)
		abort();
	if (cj_parse_and_encode(out, n, n - 1, &small, &k) != PQ_ERR_RANGE || small || k)
		abort();
	free(again);
	free(out);
	return 0;
}
