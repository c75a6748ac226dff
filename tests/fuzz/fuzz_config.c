/* fuzz_config.c: libFuzzer harness for configuration text (cfg_load_text): any input is
 * refused or accepted without harm, and an accepted configuration, dumped with its secrets
 * and loaded again into a fresh context, dumps to the same text. */
#include <stdbool.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "core/config.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

typedef struct {
	char *name;
	int64_t count;
	bool flag;
	uint64_t size;
	int64_t wait_ms;
	int mode;
	cfg_list items;
	char *secret;
} conf;

static const char *const modes[] = {"fast", "safe", "slow", NULL};

static const cfg_field fields[] = {
    CFG_STRING("name", conf, name, "pqota", "a string"),
    CFG_INT("count", conf, count, "4", -1000, 1000, "an integer"),
    CFG_BOOL("flag", conf, flag, "false", "a boolean"),
    CFG_SIZE("size", conf, size, "1M", 0, CFG_GIB, "a size"),
    CFG_DURATION("net.wait", conf, wait_ms, "30s", 0, CFG_HOUR, "a duration"),
    CFG_ENUM("mode", conf, mode, "safe", modes, "an enum"),
    CFG_LIST("items", conf, items, "a,b", "a list"),
    CFG_SECRET("secret", conf, secret, "a secret"),
    CFG_END,
};

static const cfg_schema schema = {"fuzz", "FUZZ_", fields, sizeof(conf)};

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	conf a, b;
	cfg_ctx *ca = NULL, *cb = NULL;
	char *d1 = NULL, *d2 = NULL;
	if (cfg_new(&schema, &a, &ca) != PQ_OK)
		abort();
	if (cfg_load_text(ca, "fuzz.conf", (const char *)data, size) == PQ_OK) {
		if (cfg_dump(ca, CFG_DUMP_SECRETS, &d1) != PQ_OK)
			abort(); /* anything accepted can be written back */
		if (cfg_new(&schema, &b, &cb) != PQ_OK ||
		    cfg_load_text(cb, "dump", d1, strlen(d1)) != PQ_OK ||
		    cfg_dump(cb, CFG_DUMP_SECRETS, &d2) != PQ_OK || strcmp(d1, d2) != 0)
			abort(); /* ... and reads back to the same configuration */
	}
	free(d1);
	free(d2);
	cfg_free(cb);
	cfg_free(ca);
	return 0;
}
