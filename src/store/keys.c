/* keys.c: package keys, the content keys of the encrypted copies of SWPG packages
 * (table package_keys, schema v3), once for both backends. */
#include <string.h>

#include "store/store_int.h"

#define KEY_COLS "file_sha256, enc_sha256, enc_size, content_key, created_ms"

static void wipe(void *p, size_t n)
{
	volatile unsigned char *v = p;
	while (n--)
		*v++ = 0;
}

static int check_key(const store_package_key *k)
{
	int rc = store__check_sha256(k->file_sha256, false, "package SHA-256");
	if (rc != PQ_OK)
		return rc;
	rc = store__check_sha256(k->enc_sha256, false, "encrypted package SHA-256");
	if (rc != PQ_OK)
		return rc;
	/* the key is 32 bytes in lowercase hex: the same shape as a SHA-256 */
	if (store__check_sha256(k->content_key, false, "content key") != PQ_OK)
		return pq_err_set(PQ_ERR_INVAL, "content key: not 64 lowercase hex digits");
	if (k->enc_size <= 0)
		return pq_err_set(PQ_ERR_INVAL, "encrypted package size %lld",
		                  (long long)k->enc_size);
	return PQ_OK;
}

int store_package_key_insert(store *s, const store_package_key *k)
{
	if (!s || !k)
		return pq_err_set(PQ_ERR_INVAL, "store_package_key_insert: bad arguments");
	int rc = check_key(k);
	if (rc != PQ_OK)
		return rc;
	store_val p[] = {SV_TEXT(k->file_sha256), SV_TEXT(k->enc_sha256), SV_INT(k->enc_size),
	                 SV_TEXT(k->content_key), SV_INT(k->created_ms)};
	rc = store_exec(s, "INSERT INTO package_keys (" KEY_COLS ") VALUES (?, ?, ?, ?, ?)", p, 5,
	                NULL, NULL, NULL);
	if (rc == PQ_ERR_EXISTS)
		pq_err_wrap(rc, "package %s has an encrypted copy already", k->file_sha256);
	return rc;
}

typedef struct {
	store_package_key *out;
	bool found;
} key_ctx;

static int key_row(const store_row *r, void *user)
{
	key_ctx *c = user;
	if (c->found)
		return pq_err_set(PQ_ERR_FORMAT, "two package keys for one hash");
	c->found = true;
	store__rd rd = store__rd_at(r, 0);
	store__rd_copy(&rd, c->out->file_sha256, sizeof(c->out->file_sha256));
	store__rd_copy(&rd, c->out->enc_sha256, sizeof(c->out->enc_sha256));
	store__rd_i64(&rd, &c->out->enc_size);
	store__rd_copy(&rd, c->out->content_key, sizeof(c->out->content_key));
	store__rd_i64(&rd, &c->out->created_ms);
	if (rd.rc != PQ_OK)
		return rd.rc;
	if (strlen(c->out->content_key) != 64)
		return pq_err_set(PQ_ERR_FORMAT, "stored content key of package %s: bad length",
		                  c->out->file_sha256);
	return PQ_OK;
}

static int key_lookup(store *s, bool by_enc, const char *sha, store_package_key *out)
{
	if (!s || !out)
		return pq_err_set(PQ_ERR_INVAL, "package key lookup: bad arguments");
	memset(out, 0, sizeof(*out));
	int rc = store__check_sha256(sha, false, "package SHA-256");
	if (rc != PQ_OK)
		return rc;
	key_ctx c = {.out = out};
	store_val p[] = {SV_TEXT(sha)};
	rc = store_exec(s,
	                by_enc ? "SELECT " KEY_COLS " FROM package_keys WHERE enc_sha256 = ?"
	                       : "SELECT " KEY_COLS " FROM package_keys WHERE file_sha256 = ?",
	                p, 1, key_row, &c, NULL);
	if (rc == PQ_OK && !c.found)
		rc = pq_err_set(
		    PQ_ERR_NOTFOUND,
		    by_enc ? "no encrypted package %s" : "no encrypted copy of package %s", sha);
	if (rc != PQ_OK)
		wipe(out, sizeof(*out));
	return rc;
}

int store_package_key_get(store *s, const char *file_sha256, store_package_key *out)
{
	return key_lookup(s, false, file_sha256, out);
}

int store_package_key_find_enc(store *s, const char *enc_sha256, store_package_key *out)
{
	return key_lookup(s, true, enc_sha256, out);
}

int store_package_key_delete(store *s, const char *file_sha256)
{
	if (!s)
		return pq_err_set(PQ_ERR_INVAL, "store_package_key_delete: no store");
	int rc = store__check_sha256(file_sha256, false, "package SHA-256");
	if (rc != PQ_OK)
		return rc;
	int64_t changes = 0;
	store_val p[] = {SV_TEXT(file_sha256)};
	rc = store_exec(s, "DELETE FROM package_keys WHERE file_sha256 = ?", p, 1, NULL, NULL,
	                &changes);
	if (rc == PQ_OK && changes == 0)
		rc = pq_err_set(PQ_ERR_NOTFOUND, "package %s has no encrypted copy", file_sha256);
	return rc;
}
