/* uuid.c: version 4 UUIDs from OpenSSL's random generator. */
#include "core/uuid.h"

#include <stdint.h>
#include <string.h>

#include <openssl/rand.h>

#include "core/text.h"

int pq_uuid4(char out[PQ_UUID_LEN])
{
	uint8_t b[16];
	char hex[33];
	if (RAND_bytes(b, sizeof(b)) != 1)
		return pq_err_ssl(PQ_ERR_CRYPTO, "random bytes for a UUID");
	b[6] = (uint8_t)((b[6] & 0x0f) | 0x40); /* version 4 */
	b[8] = (uint8_t)((b[8] & 0x3f) | 0x80); /* RFC 4122 variant */
	pq_hex_encode(b, 16, hex);
	static const struct {
		size_t from, len;
	} groups[] = {{0, 8}, {8, 4}, {12, 4}, {16, 4}, {20, 12}};
	char *o = out;
	for (size_t g = 0; g < sizeof(groups) / sizeof(groups[0]); g++) {
		if (g)
			*o++ = '-';
		memcpy(o, hex + groups[g].from, groups[g].len);
		o += groups[g].len;
	}
	*o = '\0';
	return PQ_OK;
}
