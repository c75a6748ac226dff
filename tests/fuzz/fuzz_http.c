/* fuzz_http.c: libFuzzer harness for the server's own parsers of request data: the Range
 * header (any accepted range lies inside the file) and VCI reports (JSON from vehicles,
 * stored in an in-memory SQLite store: refused or stored, never a crash or a partial
 * write). Input byte 0 selects the parser. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "core/log.h"
#include "server/routes.h"
#include "store/store.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static store *db;

static void init_store(void)
{
	store_config cfg = {.backend = STORE_SQLITE, .url = ":memory:"};
	store_vehicle v = {0};
	if (db)
		return;
	pq_log_set_level(PQ_LOG_WARN);
	if (store_open(&cfg, &db) != PQ_OK)
		abort();
	memcpy(v.vin, "FUZZVIN", 8);
	v.created_ms = 1;
	if (store_vehicle_insert(db, &v) != PQ_OK ||
	    store_ecu_seed_default(db, "FUZZVIN", 1) != PQ_OK)
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
	if (data[0] & 1) {
		init_store();
		if (store_vehicle_set_vci(db, "FUZZVIN", text, 2) == PQ_OK) {
			/* stored: the vehicle still has its 100 ECUs (a report never removes any)
			 */
			int64_t total = 0;
			store_page pg = {.limit = 1};
			if (store_ecu_list(db, "FUZZVIN", &pg, NULL, NULL, &total) != PQ_OK ||
			    total < 100)
				abort();
		}
	} else {
		/* the file size comes from the input too, so both small and huge files are seen */
		uint64_t fsize = 0;
		for (size_t i = 1; i < size && i < 9; i++)
			fsize = fsize << 8 | data[i];
		fsize >>= data[0] >> 2 & 63;
		uint64_t a = 0, b = 0;
		int r = route_parse_range(text, fsize, &a, &b);
		if (r > 0 && (a > b || b >= fsize))
			abort(); /* a satisfiable range always lies inside the file */
		if (r < -1 || r > 1)
			abort();
	}
	free(text);
	return 0;
}
