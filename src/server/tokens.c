/* tokens.c: download tokens (server.h) and their HMAC key. A token is
 * "EXPIRY_MS.VIN.HEX(HMAC-SHA256(key, 'pqota-dl-v1|VIN|SHA256|EXPIRY'))": it binds a
 * vehicle, one file and an expiry. The key is DATA/token.key (or token_secret_file), 32
 * random bytes made at the first start, so tokens outlive restarts and are shared by every
 * instance on the same data directory. */
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/crypto.h>
#include <openssl/evp.h>

#include "core/fileio.h"
#include "core/text.h"
#include "crypto/hash.h"
#include "server/server_int.h"

static int token_mac(const srv *s, const char *vin, const char *sha256, int64_t exp, char hex[65])
{
	char msg[256];
	uint8_t mac[32];
	size_t mlen = 0;
	int n = snprintf(msg, sizeof(msg), "pqota-dl-v1|%s|%s|%lld", vin, sha256, (long long)exp);
	if (n < 0 || n >= (int)sizeof(msg))
		return pq_err_set(PQ_ERR_RANGE, "token fields too long");
	if (!EVP_Q_mac(NULL, "HMAC", NULL, "SHA256", NULL, s->token_key, sizeof(s->token_key),
	               (const unsigned char *)msg, (size_t)n, mac, sizeof(mac), &mlen) ||
	    mlen != 32)
		return pq_err_ssl(PQ_ERR_CRYPTO, "HMAC");
	pq_hex_encode(mac, 32, hex);
	return PQ_OK;
}

int srv_token_make(const srv *s, const char *vin, const char *sha256, int64_t expires_ms, char *out,
                   size_t len)
{
	char hex[65];
	int rc = token_mac(s, vin, sha256, expires_ms, hex);
	if (rc != PQ_OK)
		return rc;
	int n = snprintf(out, len, "%lld.%s.%s", (long long)expires_ms, vin, hex);
	if (n < 0 || (size_t)n >= len)
		return pq_err_set(PQ_ERR_RANGE, "token buffer too small");
	return PQ_OK;
}

int srv_token_check(const srv *s, const char *token, const char *sha256, int64_t now, char *vin_out,
                    size_t vin_len)
{
	char buf[160], hex[65];
	if (!token || strlen(token) >= sizeof(buf))
		return pq_err_set(PQ_ERR_VERIFY, "malformed download token");
	memcpy(buf, token, strlen(token) + 1);
	char *d1 = strchr(buf, '.'), *d2 = d1 ? strchr(d1 + 1, '.') : NULL;
	if (!d1 || !d2 || strlen(d2 + 1) != 64)
		return pq_err_set(PQ_ERR_VERIFY, "malformed download token");
	*d1 = *d2 = '\0';
	/* the expiry exactly as srv_token_make writes it: digits only, no sign or blank */
	char *end = NULL;
	long long exp = buf[0] >= '1' && buf[0] <= '9' ? strtoll(buf, &end, 10) : 0;
	if (!end || *end || exp <= 0 || exp == LLONG_MAX)
		return pq_err_set(PQ_ERR_VERIFY, "malformed download token");
	if (exp < now)
		return pq_err_set(PQ_ERR_VERIFY, "download token expired");
	int rc = token_mac(s, d1 + 1, sha256, exp, hex);
	if (rc != PQ_OK)
		return rc;
	if (CRYPTO_memcmp(hex, d2 + 1, 64) != 0)
		return pq_err_set(PQ_ERR_VERIFY, "download token not valid for this file");
	if (strlen(d1 + 1) >= vin_len)
		return pq_err_set(PQ_ERR_RANGE, "download token: VIN longer than %zu", vin_len - 1);
	memcpy(vin_out, d1 + 1, strlen(d1 + 1) + 1);
	return PQ_OK;
}

int srv__token_key_load(srv *s)
{
	char path[PATH_MAX];
	char *data = NULL;
	size_t len = 0;
	int rc = s->o.token_secret_file
	             ? pq_path_resolve(path, sizeof(path), "", s->o.token_secret_file)
	             : pq_path_join(path, sizeof(path), s->o.data_dir, "token.key");
	if (rc != PQ_OK)
		return pq_err_wrap(rc, "download-token key");
	rc = pq_file_read(path, 1024, &data, &len);
	if (rc == PQ_ERR_NOTFOUND) {
		rc = pq_random(s->token_key, sizeof(s->token_key));
		if (rc == PQ_OK)
			rc = pq_file_write_atomic(path, s->token_key, sizeof(s->token_key),
			                          PQ_PRIVATE_FILE_MODE, false);
		return rc == PQ_OK ? PQ_OK : pq_err_wrap(rc, "creating the download-token key");
	}
	if (rc != PQ_OK)
		return pq_err_wrap(rc, "download-token key");
	if (len == sizeof(s->token_key))
		memcpy(s->token_key, data, sizeof(s->token_key));
	else
		rc = pq_err_set(PQ_ERR_FORMAT, "%s must hold exactly 32 bytes", path);
	OPENSSL_cleanse(data, len);
	free(data);
	return rc;
}
