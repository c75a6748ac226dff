/* text.h: byte-to-text encodings and text checks shared by every module: hex, base64
 * (OpenSSL's codec with a strict check), UTF-8 well-formedness. */
#ifndef PQOTA_CORE_TEXT_H
#define PQOTA_CORE_TEXT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "core/err.h"

/* Lowercase hex: hex must hold 2*len+1 bytes. */
void pq_hex_encode(const uint8_t *bin, size_t len, char *hex);
/* Uppercase hex (UDS traces): hex must hold 2*len+1 bytes. */
void pq_hex_encode_upper(const uint8_t *bin, size_t len, char *hex);
/* Decodes exactly strlen(hex)/2 bytes (either case); fails on odd length (PQ_ERR_FORMAT),
 * a non-hex character (PQ_ERR_FORMAT) or more than cap bytes (PQ_ERR_RANGE). */
int pq_hex_decode(const char *hex, uint8_t *bin, size_t cap, size_t *out_len) PQ_MUST_CHECK;

/* Standard base64 with padding (RFC 4648 section 4). pq_b64_encode writes
 * PQ_B64_LEN(len) bytes including the NUL into out (out_cap must be at least that). */
#define PQ_B64_LEN(n) (4 * (((n) + 2) / 3) + 1)
int pq_b64_encode(const uint8_t *bin, size_t len, char *out, size_t out_cap) PQ_MUST_CHECK;
/* Strict decoding of s[0..n): a non-empty multiple of 4 characters of the standard alphabet,
 * "=" only as the last one or two characters, no whitespace, at most cap bytes out. Fails
 * with PQ_ERR_FORMAT (or PQ_ERR_RANGE when the result exceeds cap). */
int pq_b64_decode(const char *s, size_t n, uint8_t *out, size_t cap, size_t *out_len) PQ_MUST_CHECK;

/* Length (1-4) of the well-formed UTF-8 sequence at s, n > 0 bytes available, with its code
 * point in *cp; 0 when malformed (RFC 3629: no overlong forms, no surrogates D800-DFFF,
 * nothing above U+10FFFF, no truncated sequence). */
size_t pq_utf8_decode(const unsigned char *s, size_t n, uint32_t *cp);
/* Offset of the first malformed UTF-8 sequence in s[0..n), or n when all is well-formed. */
size_t pq_utf8_check(const unsigned char *s, size_t n);
/* Whether s[0..n) is well-formed UTF-8. */
bool pq_utf8_valid(const unsigned char *s, size_t n);
/* Cuts an incomplete UTF-8 sequence off the end of the NUL-terminated s (as a bounded
 * snprintf may leave). */
void pq_utf8_trim(char *s);

/* Replaces every byte of the NUL-terminated s that does not start a well-formed UTF-8
 * sequence (a cut sequence at the end included) with '?', so s is valid UTF-8 (a JSON string,
 * a log line) whatever bytes it quoted. */
void pq_utf8_scrub(char *s);

/* Whether every byte of the NUL-terminated s is printable ASCII (0x20..0x7e). */
bool pq_ascii_printable(const char *s);

#endif
