/* semver.c: parsing and precedence of semantic versions. */
#include "core/semver.h"

#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

/* A numeric identifier: digits, no leading zero unless "0", fits in uint64. */
static bool parse_num(const char **p, uint64_t *out)
{
	const char *s = *p;
	uint64_t v = 0;
	if (*s < '0' || *s > '9')
		return false;
	if (*s == '0' && s[1] >= '0' && s[1] <= '9')
		return false;
	while (*s >= '0' && *s <= '9') {
		uint64_t d = (uint64_t)(*s - '0');
		if (v > (UINT64_MAX - d) / 10)
			return false;
		v = v * 10 + d;
		s++;
	}
	*p = s;
	*out = v;
	return true;
}

static bool ident_char(char c)
{
	return (c >= '0' && c <= '9') || (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') ||
	       c == '-';
}

/* Dot-separated non-empty identifiers up to the end or `stop`; copies them to out. */
static bool parse_idents(const char **p, char stop, bool prerelease, char *out, size_t len)
{
	const char *s = *p, *start = s;
	while (*s && *s != stop) {
		const char *id = s;
		while (ident_char(*s))
			s++;
		if (s == id)
			return false;
		/* numeric pre-release identifiers must not have leading zeros */
		bool numeric = strspn(id, "0123456789") >= (size_t)(s - id);
		if (prerelease && numeric && s - id > 1 && *id == '0')
			return false;
		if (*s == '.') {
			s++;
			if (!*s || *s == stop)
				return false;
		} else if (*s && *s != stop) {
			return false;
		}
	}
	size_t n = (size_t)(s - start);
	if (n == 0 || n >= len)
		return false;
	memcpy(out, start, n);
	out[n] = '\0';
	*p = s;
	return true;
}

int semver_parse(const char *s, semver *out)
{
	const char *p = s;
	memset(out, 0, sizeof(*out));
	if (!s || strlen(s) >= SEMVER_MAX)
		return pq_err_set(PQ_ERR_INVAL, "version missing or longer than %d",
		                  SEMVER_MAX - 1);
	if (!parse_num(&p, &out->major) || *p++ != '.' || !parse_num(&p, &out->minor) ||
	    *p++ != '.' || !parse_num(&p, &out->patch))
		goto bad;
	if (*p == '-') {
		p++;
		if (!parse_idents(&p, '+', true, out->pre, sizeof(out->pre)))
			goto bad;
	}
	if (*p == '+') {
		p++;
		if (!parse_idents(&p, '\0', false, out->build, sizeof(out->build)))
			goto bad;
	}
	if (*p)
		goto bad;
	return PQ_OK;
bad:
	return pq_err_set(PQ_ERR_INVAL, "'%s' is not a semantic version (MAJOR.MINOR.PATCH)", s);
}

static int cmp_u64(uint64_t a, uint64_t b)
{
	return a < b ? -1 : a > b;
}

/* Pre-release precedence: identifiers left to right; numeric < alphanumeric; numbers
 * compare numerically; a longer list wins when all shared ones are equal. */
static int cmp_pre(const char *a, const char *b)
{
	if (!*a || !*b)
		return !*a && !*b ? 0 : !*a ? 1 : -1; /* no pre-release ranks higher */
	while (*a && *b) {
		size_t la = strcspn(a, "."), lb = strcspn(b, ".");
		bool na = strspn(a, "0123456789") >= la, nb = strspn(b, "0123456789") >= lb;
		int c;
		if (na && nb) {
			c = la != lb ? (la < lb ? -1 : 1) : strncmp(a, b, la);
		} else if (na != nb) {
			c = na ? -1 : 1;
		} else {
			size_t m = la < lb ? la : lb;
			c = strncmp(a, b, m);
			if (c == 0 && la != lb)
				c = la < lb ? -1 : 1;
		}
		if (c)
			return c < 0 ? -1 : 1;
		a += la + (a[la] == '.');
		b += lb + (b[lb] == '.');
	}
	return *a ? 1 : *b ? -1 : 0;
}

int semver_cmp(const semver *a, const semver *b)
{
	int c = cmp_u64(a->major, b->major);
	if (!c)
		c = cmp_u64(a->minor, b->minor);
	if (!c)
		c = cmp_u64(a->patch, b->patch);
	if (!c)
		c = cmp_pre(a->pre, b->pre);
	return c;
}

int semver_cmp_str(const char *a, const char *b, int *result)
{
	semver x, y;
	int rc = semver_parse(a, &x);
	if (rc == PQ_OK)
		rc = semver_parse(b, &y);
	if (rc == PQ_OK)
		*result = semver_cmp(&x, &y);
	return rc;
}

int semver_counter(const char *version, int64_t *out)
{
	semver v;
	int rc = semver_parse(version, &v);
	if (rc != PQ_OK)
		return rc;
	if (v.major >= 1000000 || v.minor >= 1000000 || v.patch >= 1000000)
		return pq_err_set(PQ_ERR_RANGE, "version %s: a field is 1000000 or more", version);
	int64_t c =
	    (int64_t)v.major * 1000000000000LL + (int64_t)v.minor * 1000000LL + (int64_t)v.patch;
	*out = v.pre[0] && c > 0 ? c - 1 : c;
	return PQ_OK;
}
