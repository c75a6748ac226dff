/* diag_names.c: what makes a UDS answer readable in the API (docs/api.md 14.3): the ISO
 * 14229-1 names of negative response codes, and the text of a ReadDataByIdentifier answer
 * whose data is printable ASCII once its padding is cut. */
#include <string.h>

#include "core/text.h"
#include "server/diag.h"

typedef struct {
	uint8_t code;
	const char *name;
} nrc_entry;

/* ISO 14229-1:2020 Annex A.1 */
static const nrc_entry nrcs[] = {
    {0x10, "generalReject"},
    {0x11, "serviceNotSupported"},
    {0x12, "subFunctionNotSupported"},
    {0x13, "incorrectMessageLengthOrInvalidFormat"},
    {0x14, "responseTooLong"},
    {0x21, "busyRepeatRequest"},
    {0x22, "conditionsNotCorrect"},
    {0x24, "requestSequenceError"},
    {0x25, "noResponseFromSubnetComponent"},
    {0x26, "failurePreventsExecutionOfRequestedAction"},
    {0x31, "requestOutOfRange"},
    {0x33, "securityAccessDenied"},
    {0x34, "authenticationRequired"},
    {0x35, "invalidKey"},
    {0x36, "exceedNumberOfAttempts"},
    {0x37, "requiredTimeDelayNotExpired"},
    {0x70, "uploadDownloadNotAccepted"},
    {0x71, "transferDataSuspended"},
    {0x72, "generalProgrammingFailure"},
    {0x73, "wrongBlockSequenceCounter"},
    {0x78, "requestCorrectlyReceivedResponsePending"},
    {0x7E, "subFunctionNotSupportedInActiveSession"},
    {0x7F, "serviceNotSupportedInActiveSession"},
    {0x81, "rpmTooHigh"},
    {0x82, "rpmTooLow"},
    {0x83, "engineIsRunning"},
    {0x84, "engineIsNotRunning"},
    {0x85, "engineRunTimeTooLow"},
    {0x86, "temperatureTooHigh"},
    {0x87, "temperatureTooLow"},
    {0x88, "vehicleSpeedTooHigh"},
    {0x89, "vehicleSpeedTooLow"},
    {0x8A, "throttlePedalTooHigh"},
    {0x8B, "throttlePedalTooLow"},
    {0x8C, "transmissionRangeNotInNeutral"},
    {0x8D, "transmissionRangeNotInGear"},
    {0x8F, "brakeSwitchesNotClosed"},
    {0x90, "shifterLeverNotInPark"},
    {0x91, "torqueConverterClutchLocked"},
    {0x92, "voltageTooHigh"},
    {0x93, "voltageTooLow"},
};

const char *diag_nrc_name(int nrc)
{
	for (size_t i = 0; i < sizeof(nrcs) / sizeof(nrcs[0]); i++)
		if (nrcs[i].code == nrc)
			return nrcs[i].name;
	return NULL;
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
