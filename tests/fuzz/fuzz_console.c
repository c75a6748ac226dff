/* fuzz_console.c: libFuzzer harness for the parsers of browser input behind the console:
 * the Cookie header (the value found is a bounded, NUL-terminated piece of the header that
 * followed "name=") and Last-Event-ID (an accepted id prints back as itself). Input byte 0
 * selects the parser. */
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "server/console.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void cookie(const char *text, size_t cap)
{
	char out[80];
	if (cap > sizeof(out))
		cap = sizeof(out);
	if (cap == 0)
		cap = 1;
	if (!srv_cookie_find(text, "pqota_session", out, cap))
		return;
	size_t n = strlen(out);
	if (n >= cap || !strstr(text, "pqota_session=") || !strstr(text, out))
		abort();
}

static void event_id(const char *text)
{
	int64_t e = 0;
	uint64_t s = 0;
	char back[48];
	if (!srv_event_id_parse(text, &e, &s))
		return;
	snprintf(back, sizeof(back), "%" PRId64 "-%" PRIu64, e, s);
	/* leading zeros or a '+' may differ; the numbers may not */
	int64_t e2 = 0;
	uint64_t s2 = 0;
	if (e <= 0 || !srv_event_id_parse(back, &e2, &s2) || e2 != e || s2 != s)
		abort();
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	if (size < 1)
		return 0;
	char *text = malloc(size);
	if (!text)
		return 0;
	memcpy(text, data + 1, size - 1);
	text[size - 1] = '\0';
	if (data[0] & 1)
		event_id(text);
	else
		cookie(text, data[0] >> 1);
	free(text);
	return 0;
}
