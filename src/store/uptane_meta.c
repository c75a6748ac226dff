/* uptane_meta.c: the generated Uptane metadata, every version kept: the image repository's
 * and each vehicle's director repository (store/campaign.h), once for both backends. */
#include <stdlib.h>
#include <string.h>

#include "store/campaign.h"
#include "store/store_int.h"

static int uptane_key(const char *repo, const char *vin, const char *role)
{
	if (!repo || (strcmp(repo, "image") != 0 && strcmp(repo, "director") != 0))
		return pq_err_set(PQ_ERR_INVAL, "Uptane repository not image or director");
	int rc = store__check_text(vin, STORE_VIN_MAX, false, "VIN");
	if (rc != PQ_OK)
		return rc;
	/* the image repository has no VIN; director metadata is per VIN, except the director
	 * root, which every vehicle shares (stored once, VIN "") */
	bool image = strcmp(repo, "image") == 0;
	bool shared_root = !image && role && strcmp(role, "root") == 0 && vin[0] == '\0';
	if (image != (vin[0] == '\0') && !shared_root)
		return pq_err_set(PQ_ERR_INVAL,
		                  "the image repository has no VIN, a director one has (but for "
		                  "its shared root)");
	static const char *const roles[] = {"root", "targets", "snapshot", "timestamp"};
	for (size_t i = 0; role && i < sizeof(roles) / sizeof(roles[0]); i++)
		if (strcmp(role, roles[i]) == 0)
			return PQ_OK;
	return pq_err_set(PQ_ERR_INVAL, "Uptane role '%.16s' unknown", role ? role : "(null)");
}

int store_uptane_put(store *s, const char *repo, const char *vin, const char *role, int64_t version,
                     const char *body, int64_t now_ms)
{
	if (!s || !body)
		return pq_err_set(PQ_ERR_INVAL, "store_uptane_put: bad arguments");
	int rc = uptane_key(repo, vin, role);
	if (rc != PQ_OK)
		return rc;
	if (version < 1)
		return pq_err_set(PQ_ERR_INVAL, "Uptane version %lld < 1", (long long)version);
	rc = store__check_json(body, STORE_UPTANE_MAX, "Uptane metadata");
	if (rc != PQ_OK)
		return rc;
	store_val p[] = {SV_TEXT(repo),   SV_TEXT(vin),  SV_TEXT(role),
	                 SV_INT(version), SV_TEXT(body), SV_INT(now_ms)};
	rc = store_exec(s,
	                "INSERT INTO uptane_meta (repo, vin, role, version, body, created_ms)"
	                " VALUES (?, ?, ?, ?, ?, ?)",
	                p, 6, NULL, NULL, NULL);
	if (rc == PQ_ERR_EXISTS)
		pq_err_wrap(rc, "%s %s version %lld is stored", repo, role, (long long)version);
	return rc;
}

typedef struct {
	char *body;
	int64_t version;
	bool found;
} uptane_ctx;

static int uptane_row(const store_row *r, void *user)
{
	uptane_ctx *c = user;
	c->found = true;
	store__rd rd = store__rd_at(r, 0);
	store__rd_i64(&rd, &c->version);
	store__rd_dup(&rd, &c->body);
	return rd.rc;
}

static int uptane_get(store *s, const char *repo, const char *vin, const char *role,
                      int64_t version, char **body, int64_t *version_out)
{
	if (!s || !body)
		return pq_err_set(PQ_ERR_INVAL, "store_uptane_get: bad arguments");
	*body = NULL;
	int rc = uptane_key(repo, vin, role);
	if (rc != PQ_OK)
		return rc;
	uptane_ctx c = {0};
	store_val p[] = {SV_TEXT(repo), SV_TEXT(vin), SV_TEXT(role), SV_INT(version)};
	rc = store_exec(s,
	                version > 0 ? "SELECT version, body FROM uptane_meta WHERE repo = ? AND"
	                              " vin = ? AND role = ? AND version = ?"
	                            : "SELECT version, body FROM uptane_meta WHERE repo = ? AND"
	                              " vin = ? AND role = ? ORDER BY version DESC LIMIT 1",
	                p, version > 0 ? 4 : 3, uptane_row, &c, NULL);
	if (rc == PQ_OK && !c.found)
		rc = pq_err_set(PQ_ERR_NOTFOUND, "no %s %s metadata", repo, role);
	if (rc != PQ_OK) {
		free(c.body);
		return rc;
	}
	*body = c.body;
	if (version_out)
		*version_out = c.version;
	return PQ_OK;
}

int store_uptane_get_latest(store *s, const char *repo, const char *vin, const char *role,
                            char **body, int64_t *version)
{
	return uptane_get(s, repo, vin, role, 0, body, version);
}

int store_uptane_get_version(store *s, const char *repo, const char *vin, const char *role,
                             int64_t version, char **body)
{
	if (version < 1)
		return pq_err_set(PQ_ERR_INVAL, "Uptane version %lld < 1", (long long)version);
	return uptane_get(s, repo, vin, role, version, body, NULL);
}
