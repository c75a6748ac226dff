/* text.c: hex, base64 (OpenSSL's EVP codec, strictly checked), UTF-8. */
#include "core/text.h"

#include <string.h>

#include <openssl/evp.h>

static void hex_encode(const uint8_t *bin, size_t len, char *hex, const char digits[16])
{
	for (size_t i = 0; i < len; i++) {
		hex[2 * i] = digits[bin[i] >> 4];
		hex[2 * i + 1] = digits[bin[i] & 15];
	}
	hex[2 * len] = '\0';
}

void pq_hex_encode(const uint8_t *bin, size_t len, char *hex)
{
	hex_encode(bin, len, hex, "0123456789abcdef");
}

void pq_hex_encode_upper(const uint8_t *bin, size_t len, char *hex)
{
	hex_encode(bin, len, hex, "0123456789ABCDEF");
}

static int hexval(char c)
{
	if (c >= '0' && c <= '9')
		return c - '0';
	if (c >= 'a' && c <= 'f')
		return c - 'a' + 10;
	if (c >= 'A' && c <= 'F')
		return c - 'A' + 10;
	return -1;
}

int pq_hex_decode(const char *hex, uint8_t *bin, size_t cap, size_t *out_len)
{
	size_t n = strlen(hex);
	if (n % 2)
		return pq_err_set(PQ_ERR_FORMAT, "hex string of odd length %zu", n);
	if (n / 2 > cap)
		return pq_err_set(PQ_ERR_RANGE, "hex string of %zu bytes exceeds %zu", n / 2, cap);
	for (size_t i = 0; i < n / 2; i++) {
		int hi = hexval(hex[2 * i]), lo = hexval(hex[2 * i + 1]);
		if (hi < 0 || lo < 0)
			return pq_err_set(PQ_ERR_FORMAT, "non-hex character at %zu", 2 * i);
		bin[i] = (uint8_t)(hi << 4 | lo);
	}
	*out_len = n / 2;
	return PQ_OK;
}

/* ---- base64 ------------------------------------------------------------------------ */

#define B64_CHUNK 3072 /* input bytes per EVP call: a multiple of 3 (and of 4 below) */

int pq_b64_encode(const uint8_t *bin, size_t len, char *out, size_t out_cap)
{
	if (len > (SIZE_MAX - 3) / 4 || out_cap < PQ_B64_LEN(len))
		return pq_err_set(PQ_ERR_RANGE, "base64 of %zu bytes needs more room", len);
	size_t o = 0;
	for (size_t i = 0; i < len; i += B64_CHUNK) {
		size_t take = len - i < B64_CHUNK ? len - i : B64_CHUNK;
		o += (size_t)EVP_EncodeBlock((unsigned char *)out + o, bin + i, (int)take);
	}
	out[o] = '\0';
	return PQ_OK;
}

static bool b64_char(char c)
{
	return (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') ||
	       c == '+' || c == '/';
}

/* EVP_DecodeBlock skips leading and trailing blanks and reports padding as zero bytes, so
 * the strict shape is checked here first: only the alphabet, "=" at the end only. */
static int b64_shape(const char *s, size_t n, size_t *pad)
{
	if (n == 0 || n % 4 != 0)
		return pq_err_set(PQ_ERR_FORMAT,
		                  "base64 length %zu is not a positive multiple of 4", n);
	*pad = s[n - 1] == '=' ? (s[n - 2] == '=' ? 2 : 1) : 0;
	for (size_t i = 0; i < n - *pad; i++)
		if (!b64_char(s[i]))
			return pq_err_set(PQ_ERR_FORMAT, "base64: invalid character at %zu", i);
	return PQ_OK;
}

int pq_b64_decode(const char *s, size_t n, uint8_t *out, size_t cap, size_t *out_len)
{
	size_t pad = 0;
	int rc = b64_shape(s, n, &pad);
	if (rc != PQ_OK)
		return rc;
	size_t len = n / 4 * 3 - pad;
	if (len > cap)
		return pq_err_set(PQ_ERR_RANGE, "base64 of %zu bytes exceeds %zu", len, cap);
	unsigned char block[B64_CHUNK];
	size_t o = 0;
	for (size_t i = 0; i < n; i += 4 * (B64_CHUNK / 3)) {
		size_t take = n - i < 4 * (B64_CHUNK / 3) ? n - i : 4 * (B64_CHUNK / 3);
		int got = EVP_DecodeBlock(block, (const unsigned char *)s + i, (int)take);
		if (got < 0)
			return pq_err_set(PQ_ERR_FORMAT, "base64: invalid encoding");
		size_t keep = (size_t)got;
		if (i + take == n)
			keep -= pad;
		memcpy(out + o, block, keep);
		o += keep;
	}
	*out_len = o;
	return PQ_OK;
}

/* ---- UTF-8 -------------------------------------------------------------------------- */

size_t pq_utf8_decode(const unsigned char *s, size_t n, uint32_t *cp)
{
	unsigned char c = s[0], lo = 0x80, hi = 0xbf;
	size_t len;
	uint32_t v;
	if (c < 0x80) {
		*cp = c;
		return 1;
	}
	if (c < 0xc2 || c >= 0xf5)
		return 0; /* a continuation byte, a lead that could only be overlong, or past
		             U+10FFFF */
	if (c < 0xe0) {
		len = 2;
		v = c & 0x1f;
	} else if (c < 0xf0) {
		len = 3;
		v = c & 0x0f;
		if (c == 0xe0)
			lo = 0xa0; /* below: overlong */
		else if (c == 0xed)
			hi = 0x9f; /* above: a surrogate */
	} else {
		len = 4;
		v = c & 0x07;
		if (c == 0xf0)
			lo = 0x90; /* below: overlong */
		else if (c == 0xf4)
			hi = 0x8f; /* above: beyond U+10FFFF */
	}
	if (n < len || s[1] < lo || s[1] > hi)
		return 0;
	v = v << 6 | (s[1] & 0x3fu);
	for (size_t k = 2; k < len; k++) {
		if ((s[k] & 0xc0) != 0x80)
			return 0;
		v = v << 6 | (s[k] & 0x3fu);
	}
	*cp = v;
	return len;
}

size_t pq_utf8_check(const unsigned char *s, size_t n)
{
	size_t i = 0;
	uint32_t cp;
	while (i < n) {
		if (s[i] < 0x80) {
			i++;
			continue;
		}
		size_t l = pq_utf8_decode(s + i, n - i, &cp);
		if (l == 0)
			return i;
		i += l;
	}
	return n;
}

bool pq_utf8_valid(const unsigned char *s, size_t n)
{
	return pq_utf8_check(s, n) == n;
}

void pq_utf8_trim(char *s)
{
	size_t i = strlen(s), k = 0;
	while (i > 0 && k < 4 && ((unsigned char)s[i - 1] & 0xc0) == 0x80) {
		i--;
		k++;
	}
	if (i == 0) {
		s[0] = '\0';
		return;
	}
	unsigned char c = (unsigned char)s[i - 1];
	size_t need = c >= 0xf0 ? 3 : c >= 0xe0 ? 2 : c >= 0xc0 ? 1 : 0;
	if (need != k)
		s[i - 1] = '\0';
}

void pq_utf8_scrub(char *s)
{
	size_t n = strlen(s);
	for (size_t i = 0; i < n;) {
		uint32_t cp;
		size_t k = pq_utf8_decode((const unsigned char *)s + i, n - i, &cp);
		if (k == 0) {
			s[i] = '?';
			k = 1;
		}
		i += k;
	}
}

bool pq_ascii_printable(const char *s)
{
	for (; *s; s++)
		if ((unsigned char)*s < 0x20 || (unsigned char)*s > 0x7e)
			return false;
	return true;
}
