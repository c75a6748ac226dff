/* routes.c: the route table and the handlers for metrics, vehicles, ECUs, download
 * tokens (the fleet list, vehicle deployments, VCI requests and audit: fleet_routes.c). Every
 * handler refuses query parameters it does not take (srv_query_only). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include <event2/buffer.h>
#include <event2/http.h>
#include <openssl/bio.h>
#include <openssl/pem.h>
#include <openssl/x509.h>

#include "core/text.h"
#include "crypto/hash.h"
#include "crypto/key.h"
#include "crypto/pki.h"
#include "server/diag.h"
#include "server/bundles.h"
#include "server/readiness.h"
#include "server/routes.h"
#include "server/server.h"
#include "server/server_int.h"
#include "server/telemetry.h"
#include "tls/tls.h"

#define GET  EVHTTP_REQ_GET
#define HEAD EVHTTP_REQ_HEAD
#define POST EVHTTP_REQ_POST
#define PUT  EVHTTP_REQ_PUT
#define DEL  EVHTTP_REQ_DELETE

/* Vehicles may only see themselves; API keys see every vehicle. */
const char *const route_page_query[] = {"limit", "offset", NULL};

bool route_own_vehicle(srv_ctx *c, const char *vin)
{
	if (c->has_key || strcmp(c->vin, vin) == 0)
		return true;
	srv_error(c, 403, "forbidden", "vehicle %s may not access vehicle %s", c->vin, vin);
	return false;
}

bool route_id_ok(srv_ctx *c, const char *id, const char *what)
{
	size_t n = strlen(id);
	if (n >= 1 && n <= STORE_ID_MAX && strspn(id, "0123456789abcdefABCDEF-") == n)
		return true;
	srv_error(c, 404, "not_found", "no %s '%.64s'", what, id);
	return false;
}

/* ---- health and metrics ------------------------------------------------------------- */

static void h_metrics(srv_ctx *c)
{
	if (!srv_query_only(c, NULL))
		return;
	if (srv_get_options(c->s)->metrics_require_key && !c->has_key) { /* a viewer's at least */
		srv__count_auth_failed(c->s);
		srv_error(c, 401, "unauthenticated",
		          "/metrics needs an API key here (metrics.require_key)");
		return;
	}
	struct evbuffer *out = evbuffer_new();
	if (!out) {
		srv_error(c, 500, "internal", "out of memory");
		return;
	}
	srv_count(c, 200, 0);
	srv_metrics_text(c->s, c->db, out);
	evhttp_add_header(evhttp_request_get_output_headers(c->req), "Content-Type",
	                  "text/plain; version=0.0.4");
	evhttp_send_reply(c->req, 200, NULL, out);
	evbuffer_free(out);
}

/* ---- vehicles (the list: fleet_routes.c)
 * ------------------------------------------------------------------------- */

static json_t *vehicle_json(const store_vehicle *v)
{
	return json_pack("{s:s,s:s,s:b,s:I,s:I,s:I,s:s}", "vin", v->vin, "model", v->model,
	                 "online", v->online, "last_seen_ms", (json_int_t)v->last_seen_ms,
	                 "boot_seq", (json_int_t)v->boot_seq, "created_ms",
	                 (json_int_t)v->created_ms, "certificate_sha256", v->cert_pem_sha256);
}

static json_t *str_or_null(const char *s)
{
	return s ? json_string(s) : json_null();
}

/* A vehicle with its KEM keys and last VCI report. */
static int vehicle_full_json(const store_vehicle *v, json_t **out)
{
	json_t *vci = NULL;
	int rc = srv_json_text(v->last_vci, "last VCI", &vci);
	if (rc != PQ_OK)
		return pq_err_wrap(rc, "vehicle %s", v->vin);
	json_t *j = vehicle_json(v);
	if (!j || json_object_set_new(j, "kem_x25519_pub", str_or_null(v->kem_x25519_pub)) ||
	    json_object_set_new(j, "kem_mlkem768_pub", str_or_null(v->kem_mlkem_pub)) ||
	    json_object_set_new(j, "last_vci", vci ? vci : json_null())) {
		json_decref(j);
		return pq_err_set(PQ_ERR_NOMEM, "vehicle");
	}
	*out = j;
	return PQ_OK;
}

/* Checks a vehicle certificate (PEM): parses, CN equals the VIN, issued by the server's CA
 * when one is configured. Fills the SHA-256 of its DER. */
static int check_vehicle_cert(srv_ctx *c, const char *pem, const char *vin, char sha_hex[65])
{
	BIO *bio = BIO_new_mem_buf(pem, -1);
	X509 *x = bio ? PEM_read_bio_X509(bio, NULL, NULL, NULL) : NULL;
	int rc = PQ_OK;
	BIO_free(bio);
	if (!x)
		return pq_err_set(PQ_ERR_FORMAT, "certificate is not PEM X.509");
	char cn[128] = "";
	X509_NAME_get_text_by_NID(X509_get_subject_name(x), NID_commonName, cn, sizeof(cn));
	if (strcmp(cn, vin) != 0)
		rc = pq_err_set(PQ_ERR_INVAL, "certificate CN '%s' is not the VIN %s", cn, vin);
	const srv_options *o = srv_get_options(c->s);
	if (rc == PQ_OK && o->ca_file) {
		X509_STORE *st = X509_STORE_new();
		X509_STORE_CTX *ctx = X509_STORE_CTX_new();
		if (!st || !ctx || X509_STORE_load_file(st, o->ca_file) != 1 ||
		    X509_STORE_CTX_init(ctx, st, x, NULL) != 1)
			rc = pq_err_ssl(PQ_ERR_IO, "loading the CA");
		else if (X509_verify_cert(ctx) != 1)
			rc = pq_err_set(
			    PQ_ERR_VERIFY, "certificate not issued by the deployment CA: %s",
			    X509_verify_cert_error_string(X509_STORE_CTX_get_error(ctx)));
		X509_STORE_CTX_free(ctx);
		X509_STORE_free(st);
	}
	if (rc == PQ_OK) {
		unsigned char *der = NULL;
		int n = i2d_X509(x, &der);
		uint8_t d[32];
		rc = n > 0 ? pq_hash(PQ_HASH_SHA256, der, (size_t)n, d) : PQ_ERR_CRYPTO;
		if (rc == PQ_OK)
			pq_hex_encode(d, 32, sha_hex);
		OPENSSL_free(der);
	}
	X509_free(x);
	return rc;
}

static int check_pub(const char *pem, pq_alg want, const char *what)
{
	pq_key *k = NULL;
	int rc = pq_key_parse_pem(pem, strlen(pem), &k);
	if (rc == PQ_OK && (pq_key_alg(k) != want || pq_key_has_private(k)))
		rc =
		    pq_err_set(PQ_ERR_INVAL, "%s must be a %s public key", what, pq_alg_name(want));
	pq_key_free(k);
	return rc;
}

static const char *jstr(json_t *o, const char *k)
{
	return json_string_value(json_object_get(o, k));
}

static void h_vehicles_register(srv_ctx *c)
{
	if (!srv_query_only(c, NULL))
		return;
	json_t *b = srv_body_json(c);
	store_vehicle v = {0};
	int rc;
	if (!b)
		return;
	const char *vin = jstr(b, "vin"), *model = jstr(b, "model"), *cert = jstr(b, "certificate"),
	           *kx = jstr(b, "kem_x25519_pub"), *km = jstr(b, "kem_mlkem768_pub");
	json_t *seed = json_object_get(b, "default_ecus");
	if (!vin || !cert || !kx || !km) {
		srv_error(c, 400, "bad_request",
		          "vin, certificate, kem_x25519_pub and kem_mlkem768_pub are required");
		goto out;
	}
	if (pq_vin_check(vin) != PQ_OK) {
		srv_error(c, 400, "bad_vin", "%s", pq_err_detail());
		goto out;
	}
	if (model && strlen(model) > STORE_NAME_MAX) {
		srv_error(c, 400, "bad_request", "model longer than %d", STORE_NAME_MAX);
		goto out;
	}
	if (strlen(cert) > 16384 || strlen(kx) > 16384 || strlen(km) > 16384) {
		srv_error(c, 400, "bad_request", "PEM fields are limited to 16 KiB");
		goto out;
	}
	rc = check_vehicle_cert(c, cert, vin, v.cert_pem_sha256);
	if (rc == PQ_OK)
		rc = check_pub(kx, PQ_ALG_X25519, "kem_x25519_pub");
	if (rc == PQ_OK)
		rc = check_pub(km, PQ_ALG_MLKEM768, "kem_mlkem768_pub");
	if (rc != PQ_OK) {
		srv_error(c, 400, "bad_credentials", "%s", pq_err_detail());
		goto out;
	}
	snprintf(v.vin, sizeof(v.vin), "%s", vin);
	snprintf(v.model, sizeof(v.model), "%s", model ? model : "");
	v.kem_x25519_pub = (char *)kx;
	v.kem_mlkem_pub = (char *)km;
	v.created_ms = c->now_ms;
	rc = store_begin(c->db);
	if (rc == PQ_OK)
		rc = store_vehicle_insert(c->db, &v);
	if (rc == PQ_OK && !json_is_false(seed))
		rc = store_ecu_seed_default(c->db, vin, c->now_ms);
	if (rc == PQ_OK)
		rc = store_commit(c->db);
	if (rc != PQ_OK) {
		store_rollback(c->db);
		srv_fail(c, rc, "registering the vehicle");
		goto out;
	}
	srv_audit(
	    c, "vehicle.register", vin,
	    json_pack("{s:s,s:s}", "model", v.model, "certificate_sha256", v.cert_pem_sha256));
	v.kem_x25519_pub = v.kem_mlkem_pub = NULL;
	char loc[128];
	snprintf(loc, sizeof(loc), "/api/v1/vehicles/%s", vin);
	evhttp_add_header(evhttp_request_get_output_headers(c->req), "Location", loc);
	srv_json(c, 201, vehicle_json(&v));
out:
	json_decref(b);
}

static int list_ecu_cb(const store_ecu *e, void *user);
static int hist_cb(const store_ecu_change *h, void *user);

/* A vehicle with its ECUs (all of them) and its latest 50 version changes. */
static int vehicle_view(srv_ctx *c, const char *vin, json_t **out)
{
	store_vehicle v = {0};
	store_page all = {.limit = STORE_PAGE_MAX}, recent = {.limit = 50};
	int64_t necu = 0, nhist = 0;
	json_t *j = NULL, *ecus = json_array(), *hist = json_array();
	int rc =
	    ecus && hist ? store_vehicle_get(c->db, vin, &v) : pq_err_set(PQ_ERR_NOMEM, "vehicle");
	for (int64_t off = 0; rc == PQ_OK && (off == 0 || off < necu); off += STORE_PAGE_MAX) {
		all.offset = off;
		rc = store_ecu_list(c->db, vin, &all, list_ecu_cb, ecus, &necu);
	}
	if (rc == PQ_OK)
		rc = store_vehicle_history(c->db, vin, &recent, hist_cb, hist, &nhist);
	if (rc == PQ_OK)
		rc = vehicle_full_json(&v, &j);
	store_vehicle_clear(&v);
	if (rc != PQ_OK)
		goto out;
	if (json_object_set(j, "ecus", ecus) || json_object_set(j, "history", hist) ||
	    json_object_set_new(j, "history_total", json_integer((json_int_t)nhist))) {
		rc = pq_err_set(PQ_ERR_NOMEM, "vehicle");
		goto out;
	}
	*out = j;
	j = NULL;
out:
	json_decref(j);
	json_decref(ecus);
	json_decref(hist);
	return rc;
}

static void h_vehicle_get(srv_ctx *c)
{
	json_t *j = NULL;
	if (!srv_query_only(c, NULL) || !route_own_vehicle(c, c->params[0]))
		return;
	int rc = vehicle_view(c, c->params[0], &j);
	if (rc != PQ_OK) {
		srv_fail(c, rc, "vehicle");
		return;
	}
	srv_json(c, 200, j);
}

static void h_vehicle_delete(srv_ctx *c)
{
	if (!srv_query_only(c, NULL))
		return;
	int rc = store_vehicle_delete(c->db, c->params[0]);
	if (rc != PQ_OK) {
		srv_fail(c, rc, "deleting the vehicle");
		return;
	}
	srv_audit(c, "vehicle.delete", c->params[0], NULL);
	srv_json(c, 204, NULL);
}

static void h_vehicle_vci_put(srv_ctx *c)
{
	const char *vin = c->params[0];
	if (!srv_query_only(c, NULL) || !route_own_vehicle(c, vin))
		return;
	json_t *b = srv_body_json(c);
	if (!b)
		return;
	char *text = json_dumps(b, JSON_COMPACT);
	int rc = text ? store_vehicle_set_vci(c->db, vin, text, c->now_ms)
	              : pq_err_set(PQ_ERR_NOMEM, "VCI");
	free(text);
	json_decref(b);
	if (rc != PQ_OK) {
		srv_fail(c, rc, "storing the VCI");
		return;
	}
	srv_audit(c, "vehicle.vci", vin, NULL);
	srv_event(c->s, "vci", json_pack("{s:s,s:I}", "vin", vin, "at_ms", (json_int_t)c->now_ms));
	srv_json(c, 200, json_pack("{s:s,s:I}", "vin", vin, "stored_ms", (json_int_t)c->now_ms));
}

static void h_vehicle_vci_get(srv_ctx *c)
{
	store_vehicle v = {0};
	const char *vin = c->params[0];
	if (!srv_query_only(c, NULL) || !route_own_vehicle(c, vin))
		return;
	int rc = store_vehicle_get(c->db, vin, &v);
	if (rc != PQ_OK) {
		srv_fail(c, rc, "vehicle");
		return;
	}
	json_t *vci = NULL;
	rc = srv_json_text(v.last_vci, "last VCI", &vci);
	store_vehicle_clear(&v);
	if (rc != PQ_OK) {
		srv_fail(c, rc, "vehicle");
		return;
	}
	if (!vci) {
		srv_error(c, 404, "not_found", "vehicle %s has not reported a VCI", vin);
		return;
	}
	srv_json(c, 200, vci);
}

json_t *route_ecu_json(const store_ecu *e)
{
	return json_pack("{s:s,s:s,s:i,s:{s:s,s:s,s:s},s:s,s:s,s:I}", "ecu_id", e->ecu_id,
	                 "hardware_id", e->hardware_id, "zone", e->zone, "software", "APP",
	                 e->sw_app, "BOOT", e->sw_boot, "CAL", e->sw_cal, "serial", e->serial,
	                 "bank", e->bank, "updated_ms", (json_int_t)e->updated_ms);
}

static int list_ecu_cb(const store_ecu *e, void *user)
{
	if (json_array_append_new(user, route_ecu_json(e)) != 0)
		return pq_err_set(PQ_ERR_NOMEM, "ECUs");
	return PQ_OK;
}

static void h_ecus_list(srv_ctx *c)
{
	store_page pg;
	int64_t total = 0;
	const char *vin = c->params[0];
	store_vehicle v = {0};
	if (!srv_query_only(c, route_page_query) || !route_own_vehicle(c, vin) || !srv_page(c, &pg))
		return;
	int rc = store_vehicle_get(c->db, vin, &v);
	store_vehicle_clear(&v);
	json_t *items = json_array();
	if (rc == PQ_OK && !items)
		rc = pq_err_set(PQ_ERR_NOMEM, "ECUs");
	if (rc == PQ_OK)
		rc = store_ecu_list(c->db, vin, &pg, list_ecu_cb, items, &total);
	if (rc != PQ_OK) {
		json_decref(items);
		srv_fail(c, rc, "listing ECUs");
		return;
	}
	srv_json(c, 200, srv_page_json(items, &pg, total));
}

static void h_ecu_get(srv_ctx *c)
{
	store_ecu e;
	if (!srv_query_only(c, NULL) || !route_own_vehicle(c, c->params[0]))
		return;
	int rc = store_ecu_get(c->db, c->params[0], c->params[1], &e);
	if (rc != PQ_OK) {
		srv_fail(c, rc, "ECU");
		return;
	}
	srv_json(c, 200, route_ecu_json(&e));
}

static int hist_cb(const store_ecu_change *h, void *user)
{
	json_t *j = json_pack("{s:s,s:s,s:s,s:s,s:I}", "ecu_id", h->ecu_id, "software_type",
	                      h->software_type, "from", h->from_version, "to", h->to_version,
	                      "at_ms", (json_int_t)h->at_ms);
	if (json_array_append_new(user, j) != 0)
		return pq_err_set(PQ_ERR_NOMEM, "history");
	return PQ_OK;
}

static void h_ecu_history(srv_ctx *c)
{
	store_page pg;
	store_ecu e;
	int64_t total = 0;
	if (!srv_query_only(c, route_page_query) || !route_own_vehicle(c, c->params[0]) ||
	    !srv_page(c, &pg))
		return;
	int rc = store_ecu_get(c->db, c->params[0], c->params[1], &e);
	json_t *items = json_array();
	if (rc == PQ_OK && !items)
		rc = pq_err_set(PQ_ERR_NOMEM, "ECU history");
	if (rc == PQ_OK)
		rc = store_ecu_history(c->db, c->params[0], c->params[1], &pg, hist_cb, items,
		                       &total);
	if (rc != PQ_OK) {
		json_decref(items);
		srv_fail(c, rc, "ECU history");
		return;
	}
	srv_json(c, 200, srv_page_json(items, &pg, total));
}

/* ---- download tokens ----------------------------------------------------------------------- */

/* POST /api/v1/vehicles/{vin}/download-tokens {"sha256": FILE}: a short-lived token that
 * lets that vehicle fetch that package without its certificate (e.g. through a CDN). */
static void h_download_token(srv_ctx *c)
{
	const char *vin = c->params[0];
	store_vehicle v = {0};
	bool known = false;
	char token[160], url[320];
	if (!srv_query_only(c, NULL))
		return;
	json_t *b = srv_body_json(c);
	if (!b)
		return;
	const char *sha = json_string_value(json_object_get(b, "sha256"));
	if (!sha || strlen(sha) != 64 || strspn(sha, "0123456789abcdef") != 64) {
		json_decref(b);
		srv_error(c, 400, "bad_request",
		          "sha256 must be a package's 64 lowercase hex digits");
		return;
	}
	int rc = store_vehicle_get(c->db, vin, &v);
	store_vehicle_clear(&v);
	if (rc == PQ_OK)
		rc = store_file_known(c->db, sha, &known);
	if (rc == PQ_OK && !known)
		known = bnd_file_known(c->s, sha); /* a campaign bundle's full_package.bin */
	if (rc == PQ_OK && !known)
		rc = pq_err_set(PQ_ERR_NOTFOUND, "no package %s", sha);
	int64_t exp = c->now_ms + srv_get_options(c->s)->token_ttl_ms;
	if (rc == PQ_OK)
		rc = srv_token_make(c->s, vin, sha, exp, token, sizeof(token));
	if (rc != PQ_OK) {
		json_decref(b);
		srv_fail(c, rc, "download token");
		return;
	}
	snprintf(url, sizeof(url), "/packages/%s?token=%s", sha, token);
	srv_audit(c, "token.issue", vin,
	          json_pack("{s:s,s:I}", "sha256", sha, "expires_ms", (json_int_t)exp));
	json_decref(b);
	srv_json(
	    c, 201,
	    json_pack("{s:s,s:I,s:s}", "token", token, "expires_ms", (json_int_t)exp, "url", url));
}

/* ---- the table ----------------------------------------------------------------------------- */

const srv_route srv_routes[] = {
    {GET, "/metrics", SRV_AUTH_PUBLIC, h_metrics, "Prometheus metrics"},
    {POST, "/api/v1/vehicles", SRV_AUTH_OPERATOR, h_vehicles_register, "register a vehicle"},
    {GET, "/api/v1/vehicles/{vin}", SRV_AUTH_ANY, h_vehicle_get, "a vehicle"},
    {DEL, "/api/v1/vehicles/{vin}", SRV_AUTH_ADMIN, h_vehicle_delete, "delete a vehicle"},
    {PUT, "/api/v1/vehicles/{vin}/vci", SRV_AUTH_ANY, h_vehicle_vci_put, "store a VCI report"},
    {GET, "/api/v1/vehicles/{vin}/vci", SRV_AUTH_ANY, h_vehicle_vci_get, "the latest VCI"},
    {GET, "/api/v1/vehicles/{vin}/ecus", SRV_AUTH_ANY, h_ecus_list, "a vehicle's ECUs"},
    {GET, "/api/v1/vehicles/{vin}/ecus/{ecu}", SRV_AUTH_ANY, h_ecu_get, "one ECU"},
    {GET, "/api/v1/vehicles/{vin}/ecus/{ecu}/history", SRV_AUTH_ANY, h_ecu_history,
     "an ECU's version history"},
    {POST, "/api/v1/vehicles/{vin}/download-tokens", SRV_AUTH_OPERATOR, h_download_token,
     "issue a short-lived download token for one package and vehicle"},
    {GET | HEAD, "/packages/{sha256}", SRV_AUTH_PUBLIC, route_download,
     "download a package (Range, ETag, If-Range; vehicle certificate, API key or token)"},
    /* seed routes of the original design */
    {GET, "/api/vehicles/{vin}/vci", SRV_AUTH_ANY, h_vehicle_vci_get, "alias (seed)"},
    {0, NULL, 0, NULL, NULL},
};

/* route_compat_table before the console's: its GET / answers API clients itself */
const srv_route *const srv_route_tables[] = {
    route_compat_table,  route_health_table,    srv_routes,          route_fleet_table,
    route_release_table, route_campaign_table,  route_uptane_table,  route_diag_table,
    route_session_table, route_events_table,    route_console_table, route_telemetry_table,
    route_apikey_table,  route_readiness_table, route_bundle_table,  NULL};
