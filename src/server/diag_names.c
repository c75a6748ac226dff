/* diag_names.c: what makes a UDS answer readable in the API (docs/api.md 14.3): the ISO
 * 14229-1 names of negative response codes, and the text of a ReadDataByIdentifier answer
 * whose data is printable ASCII once its padding is cut. */
#include <string.h>

#include "core/text.h"
#include "core/uds_names.h"
#include "server/diag.h"

const char *diag_nrc_name(int nrc)
{
	return nrc >= 0 && nrc <= 0xFF ? pq_uds_nrc_name((uint8_t)nrc) : NULL;
}

bool diag_did_text(const char *response_hex, char *out, size_t cap)
{
	uint8_t b[DIAG_REQUEST_BYTES_MAX];
	size_t n = 0;
	out[0] = '\0';
	if (!response_hex || !diag_hex_valid(response_hex, DIAG_REQUEST_BYTES_MAX) ||
	    pq_hex_decode(response_hex, b, sizeof(b), &n) != PQ_OK || n < 4 || b[0] != 0x62)
		return false;
	/* 62 <DID hi> <DID lo> <data>: the data without trailing NUL, 0xFF or space padding */
	while (n > 3 && (b[n - 1] == 0x00 || b[n - 1] == 0xFF || b[n - 1] == ' '))
		n--;
	if (n == 3 || n - 3 >= cap)
		return false;
	for (size_t i = 3; i < n; i++)
		if (b[i] < 0x20 || b[i] > 0x7E)
			return false;
	memcpy(out, b + 3, n - 3);
	out[n - 3] = '\0';
	return true;
}
