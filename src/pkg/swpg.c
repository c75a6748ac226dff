/* swpg.c: byte-exact encoding and validation of the SWPG header; names and versions. */
#include "pkg/swpg.h"

#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

static void put16(uint8_t *p, uint16_t v)
{
	p[0] = (uint8_t)v;
	p[1] = (uint8_t)(v >> 8);
}

static void put32(uint8_t *p, uint32_t v)
{
	p[0] = (uint8_t)v;
	p[1] = (uint8_t)(v >> 8);
	p[2] = (uint8_t)(v >> 16);
	p[3] = (uint8_t)(v >> 24);
}

static uint16_t get16(const uint8_t *p)
{
	return (uint16_t)(p[0] | p[1] << 8);
}

static uint32_t get32(const uint8_t *p)
{
	return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24;
}

static bool known_type(uint8_t t)
{
	return (t >= SWPG_TYPE_APP && t <= SWPG_TYPE_CFG) || t == SWPG_TYPE_ZONE ||
	       t == SWPG_TYPE_VEHICLE;
}

bool swpg_is_container(uint8_t t)
{
	return t == SWPG_TYPE_ZONE || t == SWPG_TYPE_VEHICLE;
}

/* Checks what encode and decode both require. */
static int check(const swpg_header *h)
{
	if (!known_type(h->software_type))
		return pq_err_set(PQ_ERR_FORMAT, "unknown software type %u", h->software_type);
	if (h->compression > SWPG_COMP_DELTA)
		return pq_err_set(PQ_ERR_FORMAT, "unknown compression %u", h->compression);
	if (swpg_is_container(h->software_type) && h->compression != SWPG_COMP_NONE)
		return pq_err_set(PQ_ERR_FORMAT, "a %s container must not be compressed",
		                  swpg_type_name(h->software_type));
	if (h->compression == SWPG_COMP_NONE && h->payload_size != h->uncompressed_size)
		return pq_err_set(PQ_ERR_FORMAT,
		                  "uncompressed package: payload_size %u != uncompressed_size %u",
		                  h->payload_size, h->uncompressed_size);
	bool base_set = h->base_version.major || h->base_version.minor || h->base_version.patch ||
	                h->base_version.build;
	for (int i = 0; i < SWPG_BASE_HASH_PREFIX; i++)
		base_set = base_set || h->base_sha256_prefix[i];
	if (h->compression != SWPG_COMP_DELTA && base_set)
		return pq_err_set(PQ_ERR_FORMAT, "reserved bytes set in a non-delta package");
	return PQ_OK;
}

int swpg_encode(const swpg_header *h, uint8_t out[SWPG_HDR_LEN])
{
	int rc = check(h);
	if (rc != PQ_OK)
		return rc;
	memset(out, 0, SWPG_HDR_LEN);
	put32(out + 0, SWPG_MAGIC);
	put16(out + 4, h->target_ecu_id);
	out[6] = h->software_type;
	out[7] = h->compression;
	put32(out + 8, h->payload_size);
	put32(out + 12, h->uncompressed_size);
	out[16] = h->version.major;
	out[17] = h->version.minor;
	out[18] = h->version.patch;
	out[19] = h->version.build;
	put32(out + 20, h->version_timestamp);
	put32(out + 24, h->version_serial);
	put32(out + 28, h->crc32);
	if (h->compression == SWPG_COMP_DELTA) {
		out[32] = h->base_version.major;
		out[33] = h->base_version.minor;
		out[34] = h->base_version.patch;
		out[35] = h->base_version.build;
		memcpy(out + 36, h->base_sha256_prefix, 8);
		memcpy(out + 52, h->base_sha256_prefix + 8, 12);
	}
	put16(out + 44, h->source_ecu_id);
	put16(out + 46, h->hop_count);
	put32(out + 48, h->sequence_number);
	return PQ_OK;
}

int swpg_decode(const uint8_t in[SWPG_HDR_LEN], swpg_header *h)
{
	memset(h, 0, sizeof(*h));
	uint32_t magic = get32(in);
	if (magic != SWPG_MAGIC)
		return pq_err_set(PQ_ERR_FORMAT, "bad magic 0x%08x (want 0x%08x)", magic,
		                  SWPG_MAGIC);
	h->target_ecu_id = get16(in + 4);
	h->software_type = in[6];
	h->compression = in[7];
	h->payload_size = get32(in + 8);
	h->uncompressed_size = get32(in + 12);
	h->version = (swpg_version){in[16], in[17], in[18], in[19]};
	h->version_timestamp = get32(in + 20);
	h->version_serial = get32(in + 24);
	h->crc32 = get32(in + 28);
	h->base_version = (swpg_version){in[32], in[33], in[34], in[35]};
	memcpy(h->base_sha256_prefix, in + 36, 8);
	memcpy(h->base_sha256_prefix + 8, in + 52, 12);
	h->source_ecu_id = get16(in + 44);
	h->hop_count = get16(in + 46);
	h->sequence_number = get32(in + 48);
	return check(h);
}

static const char *const type_names[] = {"", "APP", "BOOT", "CAL", "CFG"};

const char *swpg_type_name(uint8_t t)
{
	if (t >= SWPG_TYPE_APP && t <= SWPG_TYPE_CFG)
		return type_names[t];
	if (t == SWPG_TYPE_ZONE)
		return "ZONE";
	if (t == SWPG_TYPE_VEHICLE)
		return "VEHICLE";
	return "?";
}

int swpg_type_parse(const char *s, uint8_t *out)
{
	for (int t = SWPG_TYPE_APP; t <= SWPG_TYPE_CFG; t++) {
		if (strcasecmp(s, type_names[t]) == 0) {
			*out = (uint8_t)t;
			return PQ_OK;
		}
	}
	return pq_err_set(PQ_ERR_INVAL, "unknown software type '%s' (APP, BOOT, CAL, CFG)", s);
}

static const char *const comp_names[] = {"none", "zlib", "zstd", "delta"};

const char *swpg_comp_name(uint8_t c)
{
	return c <= SWPG_COMP_DELTA ? comp_names[c] : "?";
}

int swpg_comp_parse(const char *s, uint8_t *out)
{
	if (strcasecmp(s, "gzip") == 0) { /* the original's name for zlib */
		*out = SWPG_COMP_ZLIB;
		return PQ_OK;
	}
	for (int c = 0; c < SWPG_COMP_DELTA; c++) {
		if (strcasecmp(s, comp_names[c]) == 0) {
			*out = (uint8_t)c;
			return PQ_OK;
		}
	}
	return pq_err_set(PQ_ERR_INVAL, "unknown compression '%s' (none, zlib/gzip, zstd)", s);
}

/* Parses a decimal 0..255 at *p, advancing it. */
static int parse_u8(const char **p, uint8_t *out)
{
	unsigned v = 0;
	int digits = 0;
	while (**p >= '0' && **p <= '9' && digits < 4) {
		v = v * 10 + (unsigned)(**p - '0');
		(*p)++;
		digits++;
	}
	if (digits == 0 || digits > 3 || v > 255)
		return -1;
	*out = (uint8_t)v;
	return 0;
}

int swpg_version_parse(const char *s, swpg_version *out)
{
	const char *p = s;
	uint8_t v[4] = {0};
	int n = 0;
	if (!s)
		return pq_err_set(PQ_ERR_INVAL, "no version");
	if (*p == 'v' || *p == 'V')
		p++;
	for (;;) {
		if (n == 4 || parse_u8(&p, &v[n]) != 0)
			return pq_err_set(
			    PQ_ERR_INVAL,
			    "bad version '%s' (MAJOR.MINOR.PATCH[.BUILD], each 0..255)", s);
		n++;
		if (*p == '\0')
			break;
		if (*p != '.')
			return pq_err_set(PQ_ERR_INVAL, "bad version '%s'", s);
		p++;
	}
	if (n < 3)
		return pq_err_set(PQ_ERR_INVAL, "bad version '%s' (needs MAJOR.MINOR.PATCH)", s);
	*out = (swpg_version){v[0], v[1], v[2], v[3]};
	return PQ_OK;
}

void swpg_version_str(swpg_version v, char *buf, size_t len)
{
	snprintf(buf, len, "%u.%u.%u.%u", v.major, v.minor, v.patch, v.build);
}

int swpg_version_cmp(swpg_version a, swpg_version b)
{
	uint32_t x =
	    (uint32_t)a.major << 24 | (uint32_t)a.minor << 16 | (uint32_t)a.patch << 8 | a.build;
	uint32_t y =
	    (uint32_t)b.major << 24 | (uint32_t)b.minor << 16 | (uint32_t)b.patch << 8 | b.build;
	return x < y ? -1 : x > y;
}

int swpg_ecu_parse(const char *s, uint16_t *out)
{
	char *end = NULL;
	if (!s || !*s)
		return pq_err_set(PQ_ERR_INVAL, "empty ECU id");
	if (strcasecmp(s, "VMG") == 0) {
		*out = SWPG_ECU_VMG;
		return PQ_OK;
	}
	if (strcasecmp(s, "BROADCAST") == 0) {
		*out = SWPG_ECU_BROADCAST;
		return PQ_OK;
	}
	if (strncasecmp(s, "ZGW", 3) == 0 && s[3] >= '1' && s[3] <= '9' && s[4] == '\0') {
		*out = (uint16_t)(SWPG_ECU_ZGW_BASE + (unsigned)(s[3] - '0'));
		return PQ_OK;
	}
	if (strncasecmp(s, "ECU_", 4) == 0 && strlen(s) == 7 && strspn(s + 4, "0123456789") == 3) {
		*out = (uint16_t)(0x1000 | (s[4] - '0') << 8 | (s[5] - '0') << 4 | (s[6] - '0'));
		return PQ_OK;
	}
	/* hex with 0x, else decimal: a leading zero is not octal */
	bool hex = s[0] == '0' && (s[1] == 'x' || s[1] == 'X');
	unsigned long v = strtoul(hex ? s + 2 : s, &end, hex ? 16 : 10);
	if (hex && !isxdigit((unsigned char)s[2]))
		end = (char *)s; /* "0x" alone */
	if (*end || v > 0xFFFF || (s[0] < '0' || s[0] > '9'))
		return pq_err_set(PQ_ERR_INVAL,
		                  "bad ECU id '%s' (0x0E00, VMG, ZGW1..ZGW9, ECU_001..ECU_999)", s);
	*out = (uint16_t)v;
	return PQ_OK;
}

void swpg_ecu_name(uint16_t id, char *buf, size_t len)
{
	unsigned d2 = id >> 8 & 0xF, d1 = id >> 4 & 0xF, d0 = id & 0xF;
	if (id == SWPG_ECU_VMG)
		snprintf(buf, len, "VMG");
	else if (id == SWPG_ECU_BROADCAST)
		snprintf(buf, len, "BROADCAST");
	else if (id > SWPG_ECU_ZGW_BASE && id <= SWPG_ECU_ZGW_BASE + 9)
		snprintf(buf, len, "ZGW%u", id - SWPG_ECU_ZGW_BASE);
	else if ((id & 0xF000) == 0x1000 && d2 < 10 && d1 < 10 && d0 < 10)
		snprintf(buf, len, "ECU_%u%u%u", d2, d1, d0);
	else
		snprintf(buf, len, "0x%04X", id);
}
