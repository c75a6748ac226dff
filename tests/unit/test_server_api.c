/* test_server_api.c: black-box tests of `pqota server` over real HTTPS: the real binary on
 * a free port with a temporary PKI, a libcurl client on OpenSSL 3.5 that offers only
 * X25519MLKEM768 and checks it, vehicles with client certificates, API keys of each role.
 * The store backend comes from PQOTA_TEST_STORE (sqlite, or postgres with PQOTA_TEST_PG).
 * Package encryption is checked from both sides: the test opens the server's store to read
 * the content keys, and builds campaign metadata in process (srv_new on the same data
 * directory, store and token key, never run) to unwrap its keys with the vehicles' own. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <spawn.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <curl/curl.h>
#include <jansson.h>
#include <openssl/ssl.h>

#include <openssl/evp.h>

#include "core/fileio.h"
#include "core/text.h"
#include "crypto/aead.h"
#include "crypto/hash.h"
#include "crypto/kem.h"
#include "crypto/key.h"
#include "crypto/pki.h"
#include "crypto/profile.h"
#include "pkg/pkg.h"
#include "server/ratelimit.h"
#include "server/server.h"
#include "server/uptane_srv.h"
#include "store/store.h"
#include "server/ratelimit.h"
#include "testutil.h"

extern char **environ;

static char *dir;
static char pki[600], cfgpath[700];
static int port;
static pid_t server_pid = -1;
static char key_admin[96], key_operator[96], key_viewer[96];

/* ---- helpers ---------------------------------------------------------------------------- */

static void write_text(const char *path, const char *text)
{
	assert_int_equal(pq_file_write_atomic(path, text, strlen(text), 0644, true), PQ_OK);
}

/* Runs pqota with args, capturing stdout into out (may be NULL); returns the exit code. */
static int run_pqota(char *const args[], char *out, size_t outlen)
{
	char tmpl[700];
	snprintf(tmpl, sizeof(tmpl), "%s/out.txt", dir);
	posix_spawn_file_actions_t fa;
	posix_spawn_file_actions_init(&fa);
	posix_spawn_file_actions_addopen(&fa, 1, tmpl, O_WRONLY | O_CREAT | O_TRUNC, 0644);
	pid_t pid;
	assert_int_equal(posix_spawn(&pid, getenv("PQOTA_BIN"), &fa, NULL, args, environ), 0);
	posix_spawn_file_actions_destroy(&fa);
	int st;
	assert_int_equal(waitpid(pid, &st, 0), pid);
	if (out) {
		char *text = NULL;
		size_t len = 0;
		assert_int_equal(pq_file_read(tmpl, 1 << 20, &text, &len), PQ_OK);
		snprintf(out, outlen, "%s", text);
		free(text);
	}
	return WIFEXITED(st) ? WEXITSTATUS(st) : -1;
}

static void make_key(const char *role, char *out)
{
	char *args[] = {
	    getenv("PQOTA_BIN"), "server", "--config",   cfgpath, "apikey", "create", "--role",
	    (char *)role,        "--name", (char *)role, NULL};
	char text[256];
	assert_int_equal(run_pqota(args, text, sizeof(text)), 0);
	char *nl = strchr(text, '\n');
	if (nl)
		*nl = '\0';
	assert_true(strncmp(text, "pqk_", 4) == 0);
	snprintf(out, 96, "%.90s", text);
}

static void write_config(const char *path, const char *extra, const char *portfile)
{
	char text[4096];
	const char *backend = getenv("PQOTA_TEST_STORE");
	bool pg = backend && strcmp(backend, "postgres") == 0;
	snprintf(text, sizeof(text),
	         "listen = 127.0.0.1:0\n"
	         "workers = 2\n"
	         "tls.pki = %s\n"
	         "data_dir = %s/data\n"
	         "port_file = %s\n"
	         "store.backend = %s\n"
	         "%s%s%s"
	         "limits.max_body_bytes = 64k\n"
	         "limits.drain = 2s\n"
	         "log.level = warn\n"
	         "%s",
	         pki, dir, portfile, pg ? "postgres" : "sqlite", pg ? "store.url = \"" : "",
	         pg ? getenv("PQOTA_TEST_PG") : "", pg ? "\"\n" : "", extra ? extra : "");
	write_text(path, text);
}

static pid_t start_server(const char *config, const char *portfile, int *out_port)
{
	char *args[] = {getenv("PQOTA_BIN"), "server", "--config", (char *)config, NULL};
	pid_t pid;
	unlink(portfile);
	assert_int_equal(posix_spawn(&pid, getenv("PQOTA_BIN"), NULL, NULL, args, environ), 0);
	for (int i = 0; i < 400; i++) { /* up to 20 s, polling the port file */
		char *text = NULL;
		size_t len = 0;
		if (pq_file_read(portfile, 64, &text, &len) == PQ_OK) {
			*out_port = atoi(text);
			free(text);
			return pid;
		}
		int st;
		if (waitpid(pid, &st, WNOHANG) == pid)
			fail_msg("the server exited during start-up (status %d)", st);
		struct timespec ts = {0, 50 * 1000 * 1000};
		nanosleep(&ts, NULL);
	}
	kill(pid, SIGKILL);
	fail_msg("the server did not write its port file");
	return -1;
}

/* Sends SIGTERM and expects a clean exit within 10 s. */
static void stop_server(pid_t pid)
{
	int st = 0;
	kill(pid, SIGTERM);
	for (int i = 0; i < 200; i++) {
		if (waitpid(pid, &st, WNOHANG) == pid) {
			assert_true(WIFEXITED(st));
			assert_int_equal(WEXITSTATUS(st), 0);
			return;
		}
		struct timespec ts = {0, 50 * 1000 * 1000};
		nanosleep(&ts, NULL);
	}
	kill(pid, SIGKILL);
	fail_msg("the server did not stop on SIGTERM");
}

typedef struct {
	CURL *h; /* during the transfer: the live connection's TLS session */
	long status;
	char *body;
	size_t len;
	char headers[8192];
	char group[64];
	char proto[16];
} resp;

static size_t on_body(char *p, size_t sz, size_t n, void *u)
{
	resp *r = u;
	size_t add = sz * n;
	char *nb = realloc(r->body, r->len + add + 1);
	assert_non_null(nb);
	memcpy(nb + r->len, p, add);
	r->body = nb;
	r->len += add;
	r->body[r->len] = '\0';
	return add;
}

static size_t on_header(char *p, size_t sz, size_t n, void *u)
{
	resp *r = u;
	size_t add = sz * n, used = strlen(r->headers);
	/* the negotiated group, read from the live connection during the transfer */
	struct curl_tlssessioninfo *ti = NULL;
	if (!r->group[0] && curl_easy_getinfo(r->h, CURLINFO_TLS_SSL_PTR, &ti) == CURLE_OK && ti &&
	    ti->backend == CURLSSLBACKEND_OPENSSL && ti->internals) {
		SSL *ssl = ti->internals;
		snprintf(r->group, sizeof(r->group), "%s", SSL_get0_group_name(ssl));
		snprintf(r->proto, sizeof(r->proto), "%s", SSL_get_version(ssl));
	}
	if (used + add < sizeof(r->headers)) {
		memcpy(r->headers + used, p, add);
		r->headers[used + add] = '\0';
	}
	return add;
}

static void resp_free(resp *r)
{
	free(r->body);
	memset(r, 0, sizeof(*r));
}

/* One request. who: NULL, an API key ("pqk_..."), or "vehicle:VIN" for its certificate. */
static void request(const char *method, const char *path, const char *who, const void *body,
                    size_t blen, const char *extra_header, resp *r)
{
	CURL *h = curl_easy_init();
	char url[1024], ca[700], auth[160], cert[800], key[800];
	struct curl_slist *hdr = NULL;
	memset(r, 0, sizeof(*r));
	assert_non_null(h);
	r->h = h;
	snprintf(url, sizeof(url), "https://127.0.0.1:%d%s", port, path);
	snprintf(ca, sizeof(ca), "%s/ca/ca.crt", pki);
	curl_easy_setopt(h, CURLOPT_URL, url);
	curl_easy_setopt(h, CURLOPT_CAINFO, ca);
	curl_easy_setopt(h, CURLOPT_SSLVERSION, (long)CURL_SSLVERSION_TLSv1_3);
	curl_easy_setopt(h, CURLOPT_SSL_EC_CURVES, "X25519MLKEM768");
	curl_easy_setopt(h, CURLOPT_CUSTOMREQUEST, method);
	if (strcmp(method, "HEAD") == 0)
		curl_easy_setopt(h, CURLOPT_NOBODY, 1L);
	curl_easy_setopt(h, CURLOPT_WRITEFUNCTION, on_body);
	curl_easy_setopt(h, CURLOPT_WRITEDATA, r);
	curl_easy_setopt(h, CURLOPT_HEADERFUNCTION, on_header);
	curl_easy_setopt(h, CURLOPT_HEADERDATA, r);
	curl_easy_setopt(h, CURLOPT_TIMEOUT, 30L);
	if (who && strncmp(who, "vehicle:", 8) == 0) {
		snprintf(cert, sizeof(cert), "%s/vehicles/%s/client.crt", pki, who + 8);
		snprintf(key, sizeof(key), "%s/vehicles/%s/client.key", pki, who + 8);
		curl_easy_setopt(h, CURLOPT_SSLCERT, cert);
		curl_easy_setopt(h, CURLOPT_SSLKEY, key);
	} else if (who) {
		snprintf(auth, sizeof(auth), "Authorization: Bearer %s", who);
		hdr = curl_slist_append(hdr, auth);
	}
	if (extra_header)
		hdr = curl_slist_append(hdr, extra_header);
	if (body) {
		curl_easy_setopt(h, CURLOPT_POSTFIELDS, body);
		curl_easy_setopt(h, CURLOPT_POSTFIELDSIZE_LARGE, (curl_off_t)blen);
		hdr = curl_slist_append(hdr, "Content-Type: application/octet-stream");
	}
	hdr = curl_slist_append(hdr, "Expect:");
	curl_easy_setopt(h, CURLOPT_HTTPHEADER, hdr);
	CURLcode cc = curl_easy_perform(h);
	if (cc != CURLE_OK)
		fail_msg("%s %s: %s", method, path, curl_easy_strerror(cc));
	curl_easy_getinfo(h, CURLINFO_RESPONSE_CODE, &r->status);
	curl_slist_free_all(hdr);
	curl_easy_cleanup(h);
	r->h = NULL;
}

static json_t *jbody(const resp *r)
{
	json_error_t e;
	json_t *j = r->body ? json_loads(r->body, 0, &e) : NULL;
	if (!j)
		fail_msg("not JSON (status %ld): %s", r->status, r->body ? r->body : "(empty)");
	return j;
}

static const char *err_code(json_t *j)
{
	return json_string_value(json_object_get(json_object_get(j, "error"), "code"));
}

static bool has_header(const resp *r, const char *needle)
{
	return strcasestr(r->headers, needle) != NULL;
}

/* ---- fixture ------------------------------------------------------------------------------ */

static int setup(void **state)
{
	(void)state;
	curl_global_init(CURL_GLOBAL_DEFAULT);
	dir = tu_tmpdir("srv");
	snprintf(pki, sizeof(pki), "%s/pki", dir);
	pq_pki_opts o = {0};
	assert_int_equal(pq_pki_init(pki, &o), PQ_OK);
	assert_int_equal(pq_pki_vehicle(pki, "VINAAAAAAAAAAAAA1", false), PQ_OK);
	assert_int_equal(pq_pki_vehicle(pki, "VINBBBBBBBBBBBBB2", false), PQ_OK);
	char pf[700];
	snprintf(cfgpath, sizeof(cfgpath), "%s/server.conf", dir);
	snprintf(pf, sizeof(pf), "%s/port", dir);
	write_config(cfgpath, NULL, pf);
	make_key("admin", key_admin);
	make_key("operator", key_operator);
	make_key("viewer", key_viewer);
	server_pid = start_server(cfgpath, pf, &port);
	return 0;
}

static int teardown(void **state)
{
	(void)state;
	if (server_pid > 0)
		stop_server(server_pid);
	tu_rmtree(dir);
	free(dir);
	curl_global_cleanup();
	return 0;
}

/* ---- tests --------------------------------------------------------------------------------- */

static void test_health_over_pqc_tls(void **state)
{
	(void)state;
	resp r;
	request("GET", "/health", NULL, NULL, 0, NULL, &r);
	assert_int_equal(r.status, 200);
	assert_string_equal(r.proto, "TLSv1.3");
	assert_string_equal(r.group, "X25519MLKEM768");
	json_t *j = jbody(&r);
	assert_string_equal(json_string_value(json_object_get(j, "status")), "ok");
	assert_non_null(strstr(json_string_value(json_object_get(j, "openssl")), "OpenSSL 3."));
	json_decref(j);
	resp_free(&r);
	request("GET", "/metrics", NULL, NULL, 0, NULL, &r);
	assert_int_equal(r.status, 200);
	assert_non_null(strstr(r.body, "pqota_http_requests_total"));
	assert_non_null(strstr(r.body, "pqota_tls_requests_total{group=\"X25519MLKEM768\"}"));
	resp_free(&r);
}

/* A client that resumes its TLS session (a ticket from the first connection) is served:
 * with client certificates requested, this needs a session id context on the server. */
static void test_session_resumption(void **state)
{
	(void)state;
	CURL *h = curl_easy_init();
	char url[256], ca[700];
	long status = 0;
	struct curl_slist *hdr = curl_slist_append(NULL, "Connection: close");
	snprintf(url, sizeof(url), "https://127.0.0.1:%d/health", port);
	snprintf(ca, sizeof(ca), "%s/ca/ca.crt", pki);
	curl_easy_setopt(h, CURLOPT_URL, url);
	curl_easy_setopt(h, CURLOPT_CAINFO, ca);
	curl_easy_setopt(h, CURLOPT_SSL_EC_CURVES, "X25519MLKEM768");
	curl_easy_setopt(h, CURLOPT_HTTPHEADER, hdr);
	curl_easy_setopt(h, CURLOPT_WRITEFUNCTION, on_body);
	resp r;
	memset(&r, 0, sizeof(r));
	curl_easy_setopt(h, CURLOPT_WRITEDATA, &r);
	for (int i = 0; i < 3; i++) { /* new connection each time: the 2nd and 3rd resume */
		CURLcode cc = curl_easy_perform(h);
		if (cc != CURLE_OK)
			fail_msg("request %d: %s", i, curl_easy_strerror(cc));
		curl_easy_getinfo(h, CURLINFO_RESPONSE_CODE, &status);
		assert_int_equal(status, 200);
	}
	long conns = 0;
	curl_easy_getinfo(h, CURLINFO_NUM_CONNECTS, &conns);
	assert_int_equal(conns, 1); /* the last request opened its own connection */
	resp_free(&r);
	curl_slist_free_all(hdr);
	curl_easy_cleanup(h);
}

static void test_auth_and_roles(void **state)
{
	(void)state;
	resp r;
	request("GET", "/api/v1/vehicles", NULL, NULL, 0, NULL, &r);
	assert_int_equal(r.status, 401);
	json_t *j = jbody(&r);
	assert_string_equal(err_code(j), "unauthenticated");
	json_decref(j);
	resp_free(&r);
	request("GET", "/api/v1/vehicles", "pqk_0000000000000000000000000000000000000000", NULL, 0,
	        NULL, &r);
	assert_int_equal(r.status, 401); /* unknown key */
	resp_free(&r);
	request("GET", "/api/v1/vehicles", key_viewer, NULL, 0, NULL, &r);
	assert_int_equal(r.status, 200);
	resp_free(&r);
	const char *body = "{\"vin\":\"X\"}";
	request("POST", "/api/v1/vehicles", key_viewer, body, strlen(body), NULL, &r);
	assert_int_equal(r.status, 403); /* a viewer may not register vehicles */
	j = jbody(&r);
	assert_string_equal(err_code(j), "forbidden");
	json_decref(j);
	resp_free(&r);
	request("GET", "/api/v1/audit", key_operator, NULL, 0, NULL, &r);
	assert_int_equal(r.status, 403); /* admin only */
	resp_free(&r);
	request("GET", "/api/v1/audit", key_admin, NULL, 0, NULL, &r);
	assert_int_equal(r.status, 200);
	resp_free(&r);
	request("PATCH", "/api/v1/vehicles", key_admin, NULL, 0, NULL, &r);
	assert_int_equal(r.status, 405);
	assert_true(has_header(&r, "Allow: GET, POST"));
	resp_free(&r);
	request("GET", "/api/v1/nothing-here", key_admin, NULL, 0, NULL, &r);
	assert_int_equal(r.status, 404);
	resp_free(&r);
}

static void register_vehicle(const char *vin)
{
	char p[800], *cert = NULL, *kx = NULL, *km = NULL;
	size_t n;
	snprintf(p, sizeof(p), "%s/vehicles/%s/client.crt", pki, vin);
	assert_int_equal(pq_file_read(p, 1 << 16, &cert, &n), PQ_OK);
	snprintf(p, sizeof(p), "%s/vehicles/%s/kem-x25519.pub", pki, vin);
	assert_int_equal(pq_file_read(p, 1 << 16, &kx, &n), PQ_OK);
	snprintf(p, sizeof(p), "%s/vehicles/%s/kem-ml-kem-768.pub", pki, vin);
	assert_int_equal(pq_file_read(p, 1 << 16, &km, &n), PQ_OK);
	json_t *b = json_pack("{s:s,s:s,s:s,s:s,s:s}", "vin", vin, "model", "demo-suv",
	                      "certificate", cert, "kem_x25519_pub", kx, "kem_mlkem768_pub", km);
	char *text = json_dumps(b, JSON_COMPACT);
	resp r;
	request("POST", "/api/v1/vehicles", key_operator, text, strlen(text), NULL, &r);
	if (r.status != 201)
		fail_msg("register %s: %ld %s", vin, r.status, r.body);
	resp_free(&r);
	/* twice: conflict */
	request("POST", "/api/v1/vehicles", key_operator, text, strlen(text), NULL, &r);
	assert_int_equal(r.status, 409);
	resp_free(&r);
	free(text);
	json_decref(b);
	free(cert);
	free(kx);
	free(km);
}

static void test_vehicles(void **state)
{
	(void)state;
	resp r;
	register_vehicle("VINAAAAAAAAAAAAA1");
	register_vehicle("VINBBBBBBBBBBBBB2");
	request("GET", "/api/v1/vehicles?limit=1", key_viewer, NULL, 0, NULL, &r);
	assert_int_equal(r.status, 200);
	json_t *j = jbody(&r);
	assert_int_equal(json_integer_value(json_object_get(j, "total")), 2);
	assert_int_equal(json_array_size(json_object_get(j, "items")), 1);
	json_decref(j);
	resp_free(&r);
	/* a vehicle reads its own data, and only its own */
	request("GET", "/api/v1/vehicles/VINAAAAAAAAAAAAA1", "vehicle:VINAAAAAAAAAAAAA1", NULL, 0,
	        NULL, &r);
	assert_int_equal(r.status, 200);
	resp_free(&r);
	request("GET", "/api/v1/vehicles/VINBBBBBBBBBBBBB2", "vehicle:VINAAAAAAAAAAAAA1", NULL, 0,
	        NULL, &r);
	assert_int_equal(r.status, 403);
	resp_free(&r);
	request("GET", "/api/v1/vehicles/VINBBBBBBBBBBBBB2/ecus", "vehicle:VINAAAAAAAAAAAAA1", NULL,
	        0, NULL, &r);
	assert_int_equal(r.status, 403);
	resp_free(&r);
	/* the default model: 100 ECUs in 5 zones */
	request("GET", "/api/v1/vehicles/VINAAAAAAAAAAAAA1/ecus?limit=500",
	        "vehicle:VINAAAAAAAAAAAAA1", NULL, 0, NULL, &r);
	assert_int_equal(r.status, 200);
	j = jbody(&r);
	assert_int_equal(json_integer_value(json_object_get(j, "total")), 100);
	json_decref(j);
	resp_free(&r);
	/* a VCI report changes versions and leaves history */
	const char *vci = "{\"ecus\":[{\"ecu_id\":\"ECU_011\",\"hardware_id\":\"HW-1-011\","
	                  "\"zone\":1,\"software\":{\"APP\":\"1.2.0\",\"BOOT\":\"1.0.0\","
	                  "\"CAL\":\"1.0.0\"},\"serial\":\"S011\",\"bank\":\"B\"}]}";
	request("PUT", "/api/v1/vehicles/VINAAAAAAAAAAAAA1/vci", "vehicle:VINAAAAAAAAAAAAA1", vci,
	        strlen(vci), NULL, &r);
	assert_int_equal(r.status, 200);
	resp_free(&r);
	request("GET", "/api/v1/vehicles/VINAAAAAAAAAAAAA1/ecus/ECU_011/history", key_viewer, NULL,
	        0, NULL, &r);
	assert_int_equal(r.status, 200);
	j = jbody(&r);
	assert_true(json_integer_value(json_object_get(j, "total")) >= 1);
	json_decref(j);
	resp_free(&r);
	/* the vehicle with its ECUs and its recent version changes */
	request("GET", "/api/v1/vehicles/VINAAAAAAAAAAAAA1", key_viewer, NULL, 0, NULL, &r);
	assert_int_equal(r.status, 200);
	j = jbody(&r);
	assert_int_equal(json_array_size(json_object_get(j, "ecus")), 100);
	json_t *h0 = json_array_get(json_object_get(j, "history"), 0);
	assert_string_equal(json_string_value(json_object_get(h0, "ecu_id")), "ECU_011");
	assert_string_equal(json_string_value(json_object_get(h0, "to")), "1.2.0");
	json_decref(j);
	resp_free(&r);
	request("GET", "/api/vehicles/VINAAAAAAAAAAAAA1/vci", key_viewer, NULL, 0, NULL, &r);
	assert_int_equal(r.status, 200); /* seed alias */
	resp_free(&r);
	/* malformed bodies are 4xx and the server keeps serving */
	request("POST", "/api/v1/vehicles", key_operator, "{not json", 9, NULL, &r);
	assert_int_equal(r.status, 400);
	resp_free(&r);
	request("POST", "/api/v1/vehicles", key_operator, "[]", 2, NULL, &r);
	assert_int_equal(r.status, 400);
	resp_free(&r);
	const char *badvin = "{\"vin\":\"a/b\",\"certificate\":\"x\",\"kem_x25519_pub\":\"x\","
	                     "\"kem_mlkem768_pub\":\"x\"}";
	request("POST", "/api/v1/vehicles", key_operator, badvin, strlen(badvin), NULL, &r);
	assert_int_equal(r.status, 400);
	resp_free(&r);
	size_t big = 200 * 1024; /* above limits.max_body_bytes = 64k */
	char *huge = malloc(big);
	assert_non_null(huge);
	memset(huge, 'a', big);
	request("POST", "/api/v1/vehicles", key_operator, huge, big, NULL, &r);
	assert_int_equal(r.status, 413);
	resp_free(&r);
	free(huge);
	request("GET", "/health", NULL, NULL, 0, NULL, &r);
	assert_int_equal(r.status, 200);
	resp_free(&r);
}

static char release_pkg[65];
static char release_id[40];
static char image1_sha[65];
static uint8_t *image;
static size_t image_len = 150 * 1000;
/* the second release (3.2.0, a delta from the first) */
static char release2_id[40], release2_full[65], release2_delta[65], image2_sha[65];
static size_t image2_len;

/* Uploads `image` in pieces (resuming after a deliberate offset mismatch) and creates a
 * release; returns its package hash. */
static void test_upload_and_release(void **state)
{
	(void)state;
	resp r;
	image = malloc(image_len);
	assert_non_null(image);
	for (size_t i = 0; i < image_len; i++)
		image[i] = (uint8_t)(i * 7 + i / 300);
	uint8_t d[32];
	char sha[65], body[512], path[256];
	assert_int_equal(pq_hash(PQ_HASH_SHA256, image, image_len, d), PQ_OK);
	pq_hex_encode(d, 32, sha);
	memcpy(image1_sha, sha, sizeof(image1_sha));
	snprintf(body, sizeof(body), "{\"size\":%zu,\"sha256\":\"%s\"}", image_len, sha);
	request("POST", "/api/v1/uploads", key_operator, body, strlen(body), NULL, &r);
	assert_int_equal(r.status, 201);
	json_t *j = jbody(&r);
	char id[40];
	snprintf(id, sizeof(id), "%s", json_string_value(json_object_get(j, "id")));
	json_decref(j);
	resp_free(&r);
	size_t piece = 60000, off = 0;
	/* a piece at the wrong offset is refused with where to resume */
	snprintf(path, sizeof(path), "/api/v1/uploads/%s?offset=5", id);
	request("PUT", path, key_operator, image, 10, NULL, &r);
	assert_int_equal(r.status, 409);
	j = jbody(&r);
	assert_int_equal(json_integer_value(json_object_get(j, "received")), 0);
	json_decref(j);
	resp_free(&r);
	while (off < image_len) {
		size_t n = image_len - off < piece ? image_len - off : piece;
		snprintf(path, sizeof(path), "/api/v1/uploads/%s?offset=%zu", id, off);
		request("PUT", path, key_operator, image + off, n, NULL, &r);
		assert_int_equal(r.status, 200);
		resp_free(&r);
		off += n;
	}
	snprintf(body, sizeof(body),
	         "{\"title\":\"ECU_011 app 3.1.0\",\"version\":\"3.1.0\",\"hardware_id\":"
	         "\"HW-1-011\",\"ecu_id\":\"ECU_011\",\"upload_id\":\"%s\"}",
	         id);
	request("POST", "/api/v1/releases", key_operator, body, strlen(body), NULL, &r);
	if (r.status != 201)
		fail_msg("release: %ld %s", r.status, r.body);
	j = jbody(&r);
	json_t *pkg = json_object_get(j, "package");
	snprintf(release_pkg, sizeof(release_pkg), "%s",
	         json_string_value(json_object_get(pkg, "sha256")));
	snprintf(release_id, sizeof(release_id), "%s", json_string_value(json_object_get(j, "id")));
	assert_string_equal(
	    json_string_value(json_object_get(json_object_get(j, "image"), "sha256")), sha);
	json_decref(j);
	resp_free(&r);
	request("GET", "/api/v1/releases", key_viewer, NULL, 0, NULL, &r);
	assert_int_equal(r.status, 200);
	j = jbody(&r);
	assert_int_equal(json_integer_value(json_object_get(j, "total")), 1);
	json_decref(j);
	resp_free(&r);
}

/* Polls the release until its (first) delta is ready (the delta worker makes it in the
 * background); its package SHA-256 into sha. */
static void wait_delta_ready(const char *rel, char sha[65])
{
	char path[128];
	snprintf(path, sizeof(path), "/api/v1/releases/%s", rel);
	for (int i = 0; i < 3000; i++) {
		resp r;
		request("GET", path, key_viewer, NULL, 0, NULL, &r);
		assert_int_equal(r.status, 200);
		json_t *j = jbody(&r), *d = json_array_get(json_object_get(j, "deltas"), 0);
		const char *st = json_string_value(json_object_get(d, "state"));
		bool ready = st && strcmp(st, "ready") == 0;
		if (ready)
			snprintf(sha, 65, "%s", json_string_value(json_object_get(d, "sha256")));
		if (st && strcmp(st, "failed") == 0)
			fail_msg("delta failed: %s", r.body);
		json_decref(j);
		resp_free(&r);
		if (ready)
			return;
		struct timespec ts = {0, 20 * 1000 * 1000};
		nanosleep(&ts, NULL); /* between polls */
	}
	fail_msg("release %s: its delta is not ready after 60 s", rel);
}

/* A second release built as a delta against the first: the server queues its delta, which
 * the delta worker makes in the background; a vehicle downloads it and the package library
 * patches the first image into the second. */
static void test_delta_release(void **state)
{
	(void)state;
	resp r;
	char body[512], path[256];
	size_t len2 = image_len + 3000;
	uint8_t *image2 = malloc(len2);
	assert_non_null(image2);
	memcpy(image2, image, image_len);
	for (size_t i = 0; i < 3000; i++)
		image2[image_len + i] = (uint8_t)(i * 13);
	image2[500] ^= 0xff; /* and a change inside */
	snprintf(body, sizeof(body), "{\"size\":%zu}", len2);
	request("POST", "/api/v1/uploads", key_operator, body, strlen(body), NULL, &r);
	assert_int_equal(r.status, 201);
	json_t *j = jbody(&r);
	char id[40];
	snprintf(id, sizeof(id), "%s", json_string_value(json_object_get(j, "id")));
	json_decref(j);
	resp_free(&r);
	for (size_t off = 0; off < len2; off += 60000) { /* pieces under the 64k body limit */
		size_t n = len2 - off < 60000 ? len2 - off : 60000;
		snprintf(path, sizeof(path), "/api/v1/uploads/%s?offset=%zu", id, off);
		request("PUT", path, key_operator, image2 + off, n, NULL, &r);
		assert_int_equal(r.status, 200);
		resp_free(&r);
	}
	/* a release that is not complete yet, or a duplicate version, is refused without
	 * losing the upload */
	snprintf(body, sizeof(body),
	         "{\"title\":\"dup\",\"version\":\"3.1.0\",\"hardware_id\":\"HW-1-011\","
	         "\"ecu_id\":\"ECU_011\",\"upload_id\":\"%s\"}",
	         id);
	request("POST", "/api/v1/releases", key_operator, body, strlen(body), NULL, &r);
	assert_int_equal(r.status, 409);
	resp_free(&r);
	snprintf(body, sizeof(body),
	         "{\"title\":\"ECU_011 app 3.2.0\",\"version\":\"3.2.0\",\"hardware_id\":"
	         "\"HW-1-011\",\"ecu_id\":\"ECU_011\",\"upload_id\":\"%s\",\"delta_from\":\"%s\"}",
	         id, release_id);
	request("POST", "/api/v1/releases", key_operator, body, strlen(body), NULL, &r);
	if (r.status != 201)
		fail_msg("delta release: %ld %s", r.status, r.body);
	j = jbody(&r);
	json_t *delta = json_object_get(j, "delta");
	assert_true(json_is_object(delta));
	assert_string_equal(json_string_value(json_object_get(delta, "base_version")), "3.1.0");
	assert_int_equal(json_array_size(json_object_get(j, "deltas")), 1);
	/* queued for the delta worker: no file yet */
	const char *st = json_string_value(json_object_get(delta, "state"));
	assert_true(st &&
	            (!strcmp(st, "queued") || !strcmp(st, "running") || !strcmp(st, "ready")));
	snprintf(release2_id, sizeof(release2_id), "%s",
	         json_string_value(json_object_get(j, "id")));
	char dsha[65];
	wait_delta_ready(release2_id, dsha);
	snprintf(release2_delta, sizeof(release2_delta), "%s", dsha);
	snprintf(release2_full, sizeof(release2_full), "%s",
	         json_string_value(json_object_get(json_object_get(j, "package"), "sha256")));
	json_decref(j);
	resp_free(&r);
	/* the deltas route: the same base again is a conflict, an unknown one refused */
	snprintf(path, sizeof(path), "/api/v1/releases/%s/deltas", release2_id);
	request("POST", path, key_operator, "{\"from\":\"3.1.0\"}", 16, NULL, &r);
	assert_int_equal(r.status, 409);
	resp_free(&r);
	request("POST", path, key_operator, "{\"from\":\"0.0.1\"}", 16, NULL, &r);
	assert_int_equal(r.status, 400);
	resp_free(&r);
	request("GET", path, key_viewer, NULL, 0, NULL, &r);
	assert_int_equal(r.status, 200);
	j = jbody(&r);
	json_t *d0 = json_array_get(json_object_get(j, "items"), 0);
	assert_string_equal(json_string_value(json_object_get(d0, "sha256")), dsha);
	assert_string_equal(json_string_value(json_object_get(d0, "source")), "computed");
	assert_int_equal(
	    json_integer_value(json_object_get(json_object_get(d0, "progress"), "percent")), 100);
	json_decref(j);
	resp_free(&r);
	uint8_t d2[32];
	assert_int_equal(pq_hash(PQ_HASH_SHA256, image2, len2, d2), PQ_OK);
	pq_hex_encode(d2, 32, image2_sha);
	image2_len = len2;
	/* vehicles get packages encrypted (downloads.encrypt): the plaintext needs a key or
	 * a token */
	snprintf(path, sizeof(path), "/packages/%s", dsha);
	request("GET", path, "vehicle:VINAAAAAAAAAAAAA1", NULL, 0, NULL, &r);
	assert_int_equal(r.status, 403);
	resp_free(&r);
	/* the delta patches the installed (first) image */
	request("GET", path, key_viewer, NULL, 0, NULL, &r);
	assert_int_equal(r.status, 200);
	assert_true(r.len < len2 / 4); /* a delta, not the image again */
	char dpath[700], bpath[700], opath[700];
	snprintf(dpath, sizeof(dpath), "%s/delta.swpg", dir);
	snprintf(bpath, sizeof(bpath), "%s/base.img", dir);
	snprintf(opath, sizeof(opath), "%s/patched.img", dir);
	write_text(dpath, ""); /* created, then replaced with the bytes */
	assert_int_equal(pq_file_write_atomic(dpath, r.body, r.len, 0644, true), PQ_OK);
	assert_int_equal(pq_file_write_atomic(bpath, image, image_len, 0644, true), PQ_OK);
	resp_free(&r);
	pkg_reader *rd = NULL;
	const pkg_entry *e = NULL;
	assert_int_equal(pkg_open(dpath, &rd), PQ_OK);
	assert_int_equal(pkg_find(rd, "", &e), PQ_OK);
	assert_int_equal(pkg_apply_delta(rd, e, bpath, opath, NULL), PQ_OK);
	pkg_close(rd);
	char *out = NULL;
	size_t olen = 0;
	assert_int_equal(pq_file_read(opath, 1 << 24, &out, &olen), PQ_OK);
	assert_int_equal(olen, len2);
	assert_memory_equal(out, image2, len2);
	free(out);
	free(image2);
}

static void test_downloads(void **state)
{
	(void)state;
	resp r;
	char path[256], rng[128], file[800];
	char *pkg = NULL;
	size_t plen = 0;
	assert_true(release_pkg[0]);
	snprintf(file, sizeof(file), "%s/data/files/%s", dir, release_pkg);
	assert_int_equal(pq_file_read(file, 16 << 20, &pkg, &plen), PQ_OK);
	snprintf(path, sizeof(path), "/packages/%s", release_pkg);
	/* no credentials: refused */
	request("GET", path, NULL, NULL, 0, NULL, &r);
	assert_int_equal(r.status, 401);
	resp_free(&r);
	/* a vehicle by its certificate only gets encrypted copies */
	request("GET", path, "vehicle:VINAAAAAAAAAAAAA1", NULL, 0, NULL, &r);
	assert_int_equal(r.status, 403);
	resp_free(&r);
	/* an operator downloads the package byte for byte */
	request("GET", path, key_viewer, NULL, 0, NULL, &r);
	assert_int_equal(r.status, 200);
	assert_int_equal(r.len, plen);
	assert_memory_equal(r.body, pkg, plen);
	char etag[90];
	snprintf(etag, sizeof(etag), "ETag: \"%s\"", release_pkg);
	assert_true(has_header(&r, etag));
	resp_free(&r);
	/* resume from the middle */
	size_t mid = plen / 2;
	snprintf(rng, sizeof(rng), "Range: bytes=%zu-", mid);
	request("GET", path, key_viewer, NULL, 0, rng, &r);
	assert_int_equal(r.status, 206);
	assert_int_equal(r.len, plen - mid);
	assert_memory_equal(r.body, pkg + mid, plen - mid);
	char cr[128];
	snprintf(cr, sizeof(cr), "Content-Range: bytes %zu-%zu/%zu", mid, plen - 1, plen);
	assert_true(has_header(&r, cr));
	resp_free(&r);
	/* a closed range, a suffix range */
	request("GET", path, key_viewer, NULL, 0, "Range: bytes=10-19", &r);
	assert_int_equal(r.status, 206);
	assert_int_equal(r.len, 10);
	assert_memory_equal(r.body, pkg + 10, 10);
	resp_free(&r);
	request("GET", path, key_viewer, NULL, 0, "Range: bytes=-100", &r);
	assert_int_equal(r.status, 206);
	assert_memory_equal(r.body, pkg + plen - 100, 100);
	resp_free(&r);
	/* unsatisfiable */
	snprintf(rng, sizeof(rng), "Range: bytes=%zu-", plen + 5);
	request("GET", path, key_viewer, NULL, 0, rng, &r);
	assert_int_equal(r.status, 416);
	snprintf(cr, sizeof(cr), "Content-Range: bytes */%zu", plen);
	assert_true(has_header(&r, cr));
	resp_free(&r);
	/* If-Range with another ETag: the whole file */
	CURL *dummy = NULL;
	(void)dummy;
	request("GET", path, key_viewer, NULL, 0, "If-Range: \"0000\"", &r);
	assert_int_equal(r.status, 200);
	resp_free(&r);
	/* HEAD */
	request("HEAD", path, key_viewer, NULL, 0, NULL, &r);
	assert_int_equal(r.status, 200);
	snprintf(cr, sizeof(cr), "Content-Length: %zu", plen);
	assert_true(has_header(&r, cr));
	assert_int_equal(r.len, 0);
	resp_free(&r);
	/* unknown files and non-hash names */
	request("GET", "/packages/0000000000000000000000000000000000000000000000000000000000000000",
	        key_viewer, NULL, 0, NULL, &r);
	assert_int_equal(r.status, 404);
	resp_free(&r);
	request("GET", "/packages/..%2F..%2Fetc%2Fpasswd", key_viewer, NULL, 0, NULL, &r);
	assert_true(r.status == 400 || r.status == 404);
	resp_free(&r);
	/* a download token: an operator issues it for one vehicle and one package */
	char body[160], tpath[512];
	snprintf(body, sizeof(body), "{\"sha256\":\"%s\"}", release_pkg);
	request("POST", "/api/v1/vehicles/VINAAAAAAAAAAAAA1/download-tokens", key_viewer, body,
	        strlen(body), NULL, &r);
	assert_int_equal(r.status, 403); /* viewers may not issue tokens */
	resp_free(&r);
	request("POST", "/api/v1/vehicles/VINAAAAAAAAAAAAA1/download-tokens", key_operator, body,
	        strlen(body), NULL, &r);
	assert_int_equal(r.status, 201);
	json_t *j = jbody(&r);
	snprintf(tpath, sizeof(tpath), "%s", json_string_value(json_object_get(j, "url")));
	json_decref(j);
	resp_free(&r);
	request("GET", tpath, NULL, NULL, 0, NULL, &r); /* no certificate, no key: the token */
	assert_int_equal(r.status, 200);
	assert_int_equal(r.len, plen);
	assert_memory_equal(r.body, pkg, plen);
	resp_free(&r);
	/* a vehicle with an operator's token for the plaintext gets it */
	request("GET", tpath, "vehicle:VINAAAAAAAAAAAAA1", NULL, 0, NULL, &r);
	assert_int_equal(r.status, 200);
	assert_int_equal(r.len, plen);
	resp_free(&r);
	char *t = strstr(tpath, "token=") + 6;
	t[strlen(t) - 1] ^= 1; /* tampered: its last hex digit */
	request("GET", tpath, NULL, NULL, 0, NULL, &r);
	assert_int_equal(r.status, 403);
	resp_free(&r);
	t[strlen(t) - 1] ^= 1;
	/* the same token for another file is refused */
	char other[600];
	snprintf(other, sizeof(other),
	         "/packages/1111111111111111111111111111111111111111111111111111111111111111?%s",
	         strstr(tpath, "token="));
	request("GET", other, NULL, NULL, 0, NULL, &r);
	assert_int_equal(r.status, 403);
	resp_free(&r);
	free(pkg);
	free(image);
	image = NULL;
}

/* ---- package encryption ------------------------------------------------------------------- */

/* The server's store, as the running server opens it. */
static store_config server_store(void)
{
	static char url[800];
	const char *backend = getenv("PQOTA_TEST_STORE");
	if (backend && strcmp(backend, "postgres") == 0)
		return (store_config){.backend = STORE_POSTGRES, .url = getenv("PQOTA_TEST_PG")};
	snprintf(url, sizeof(url), "%s/data/pqota.db", dir);
	return (store_config){.backend = STORE_SQLITE, .url = url};
}

static store *open_store(void)
{
	store_config sc = server_store();
	store *db = NULL;
	assert_int_equal(store_open(&sc, &db), PQ_OK);
	return db;
}

static void sha_hex(const void *data, size_t len, char hex[65])
{
	uint8_t d[32];
	assert_int_equal(pq_hash(PQ_HASH_SHA256, data, len, d), PQ_OK);
	pq_hex_encode(d, 32, hex);
}

static char *read_all(const char *path, size_t *len)
{
	char *data = NULL;
	assert_int_equal(pq_file_read(path, 64 << 20, &data, len), PQ_OK);
	return data;
}

/* A package's stored key row and its content key bytes. */
static void package_key(store *db, const char *file_sha, store_package_key *k, uint8_t key[32])
{
	size_t n = 0;
	if (store_package_key_get(db, file_sha, k) != PQ_OK)
		fail_msg("no encrypted copy of %s: %s", file_sha, pq_err_detail());
	assert_int_equal(pq_hex_decode(k->content_key, key, 32, &n), PQ_OK);
	assert_int_equal(n, 32);
}

/* Decrypts ciphertext (in a file) with key and checks the result against the package
 * DATA/files/<plain_sha> byte for byte; a key with one bit changed does not open it. */
static void check_decrypts(const char *enc_path, const uint8_t key[32], const char *plain_sha)
{
	char plain[800], out[800];
	size_t plen = 0, olen = 0;
	snprintf(plain, sizeof(plain), "%s/data/files/%s", dir, plain_sha);
	snprintf(out, sizeof(out), "%s/decrypted.bin", dir);
	assert_int_equal(pq_aead_decrypt_file(key, enc_path, out), PQ_OK);
	char *p = read_all(plain, &plen), *o = read_all(out, &olen);
	assert_int_equal(olen, plen);
	assert_memory_equal(o, p, plen);
	char hex[65];
	sha_hex(o, olen, hex);
	assert_string_equal(hex, plain_sha);
	free(p);
	free(o);
	unlink(out);
	uint8_t bad[32];
	memcpy(bad, key, 32);
	bad[7] ^= 0x10;
	assert_int_equal(pq_aead_decrypt_file(bad, enc_path, out), PQ_ERR_VERIFY);
	assert_int_equal(access(out, F_OK), -1); /* nothing left behind */
}

/* The stored copy DATA/files/<enc> is named by its SHA-256, has the stored size and
 * decrypts to the package. */
static void check_copy(const store_package_key *k, const uint8_t key[32])
{
	char enc[800], hex[65];
	size_t len = 0;
	snprintf(enc, sizeof(enc), "%s/data/files/%s", dir, k->enc_sha256);
	char *data = read_all(enc, &len);
	sha_hex(data, len, hex);
	assert_string_equal(hex, k->enc_sha256);
	assert_int_equal(len, k->enc_size);
	assert_memory_equal(data, "PQAE", 4); /* the streaming AEAD header */
	free(data);
	check_decrypts(enc, key, k->file_sha256);
}

/* Creating a release made an encrypted copy of each package under its own key; the copies
 * are served under their own names with the package rules (Range, ETag, HEAD). */
static void test_encrypted_copies(void **state)
{
	(void)state;
	store *db = open_store();
	const char *pkgs[] = {release_pkg, release2_full, release2_delta};
	store_package_key k[3];
	uint8_t key[3][32];
	for (int i = 0; i < 3; i++) {
		package_key(db, pkgs[i], &k[i], key[i]);
		assert_string_equal(k[i].file_sha256, pkgs[i]);
		check_copy(&k[i], key[i]);
	}
	assert_memory_not_equal(key[0], key[1], 32); /* a fresh key per package */
	assert_memory_not_equal(key[1], key[2], 32);
	store_package_key other;
	assert_int_equal(store_package_key_find_enc(db, k[2].enc_sha256, &other), PQ_OK);
	assert_string_equal(other.file_sha256, release2_delta);
	assert_int_equal(store_package_key_find_enc(db, release2_delta, &other), PQ_ERR_NOTFOUND);
	/* the package key table refuses a second copy of a package */
	other = k[0];
	other.enc_sha256[0] = other.enc_sha256[0] == 'a' ? 'b' : 'a';
	assert_int_equal(store_package_key_insert(db, &other), PQ_ERR_EXISTS);
	store_close(db);

	char path[256], file[800], rng[128], cr[160];
	size_t elen = 0;
	snprintf(file, sizeof(file), "%s/data/files/%s", dir, k[0].enc_sha256);
	char *enc = read_all(file, &elen);
	snprintf(path, sizeof(path), "/packages/%s", k[0].enc_sha256);
	resp r;
	request("GET", path, NULL, NULL, 0, NULL, &r);
	assert_int_equal(r.status, 401);
	resp_free(&r);
	request("GET", path, "vehicle:VINAAAAAAAAAAAAA1", NULL, 0, NULL, &r);
	assert_int_equal(r.status, 200);
	assert_int_equal(r.len, elen);
	assert_memory_equal(r.body, enc, elen);
	char etag[90];
	snprintf(etag, sizeof(etag), "ETag: \"%s\"", k[0].enc_sha256);
	assert_true(has_header(&r, etag));
	resp_free(&r);
	/* resumed in the middle */
	size_t off = elen / 2;
	snprintf(rng, sizeof(rng), "Range: bytes=%zu-", off);
	request("GET", path, "vehicle:VINAAAAAAAAAAAAA1", NULL, 0, rng, &r);
	assert_int_equal(r.status, 206);
	assert_int_equal(r.len, elen - off);
	assert_memory_equal(r.body, enc + off, elen - off);
	snprintf(cr, sizeof(cr), "Content-Range: bytes %zu-%zu/%zu", off, elen - 1, elen);
	assert_true(has_header(&r, cr));
	resp_free(&r);
	request("HEAD", path, key_viewer, NULL, 0, NULL, &r);
	assert_int_equal(r.status, 200);
	snprintf(cr, sizeof(cr), "Content-Length: %zu", elen);
	assert_true(has_header(&r, cr));
	resp_free(&r);
	free(enc);
}

/* An in-process server on the running one's data directory, store and token key (never
 * run), whose metadata URLs point at the running server. */
static srv *metadata_server(bool encrypt)
{
	static char cert[700], key[700], ca[700], url[64], data[700];
	static store_config sc;
	srv_options o = {0};
	srv *s = NULL;
	snprintf(cert, sizeof(cert), "%s/server/server.crt", pki);
	snprintf(key, sizeof(key), "%s/server/server.key", pki);
	snprintf(ca, sizeof(ca), "%s/ca/ca.crt", pki);
	snprintf(url, sizeof(url), "https://127.0.0.1:%d", port);
	snprintf(data, sizeof(data), "%s/data", dir);
	sc = server_store();
	o.listen = "127.0.0.1:0";
	o.workers = 1;
	o.profile = pq_profile_by_id(2);
	o.cert_file = cert;
	o.key_file = key;
	o.ca_file = ca;
	o.store = sc;
	o.data_dir = data;
	o.max_header_bytes = 16384;
	o.max_body_bytes = 65536;
	o.timeout_ms = 10000;
	o.token_ttl_ms = 3600 * 1000;
	o.uptane_dir = pki;
	o.public_url = url;
	o.downloads_encrypt = encrypt;
	if (srv_new(&o, &s) != PQ_OK)
		fail_msg("srv_new: %s", pq_err_detail());
	return s;
}

static int64_t wall_ms(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_REALTIME, &ts);
	return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* Unwraps an image's "wrapped_key" as `vin` (its private KEM keys from the PKI) with aad;
 * returns the pq_unwrap result. */
static int unwrap_as(const char *vin, json_t *enc, const char *aad, uint8_t key[32])
{
	char p[800];
	pq_key *kx = NULL, *km = NULL;
	const char *b64 = json_string_value(json_object_get(enc, "wrapped_key"));
	assert_non_null(b64);
	size_t n = strlen(b64);
	uint8_t *blob = malloc(n);
	assert_non_null(blob);
	int len = EVP_DecodeBlock(blob, (const unsigned char *)b64, (int)n);
	assert_true(len > 2);
	while (n > 0 && b64[n - 1] == '=') {
		n--;
		len--;
	}
	assert_int_equal(len, PQ_WRAP_OVERHEAD + 32);
	snprintf(p, sizeof(p), "%s/vehicles/%s/kem-x25519.key", pki, vin);
	assert_int_equal(pq_key_load(p, &kx), PQ_OK);
	snprintf(p, sizeof(p), "%s/vehicles/%s/kem-ml-kem-768.key", pki, vin);
	assert_int_equal(pq_key_load(p, &km), PQ_OK);
	pq_wrap_recipient me = {.x25519 = kx, .mlkem = km};
	size_t klen = 32;
	int rc = pq_unwrap(&me, (const uint8_t *)aad, strlen(aad), blob, (size_t)len, key, &klen);
	if (rc == PQ_OK)
		assert_int_equal(klen, 32);
	pq_key_free(kx);
	pq_key_free(km);
	free(blob);
	return rc;
}

/* Downloads a metadata URL from the running server with no credentials but its token. */
static void fetch_url(const char *url, resp *r)
{
	char prefix[64];
	snprintf(prefix, sizeof(prefix), "https://127.0.0.1:%d/", port);
	assert_non_null(url);
	assert_true(strncmp(url, prefix, strlen(prefix)) == 0);
	request("GET", url + strlen(prefix) - 1, NULL, NULL, 0, NULL, r);
}

/* One package of the metadata (an image or its fallback), as `vin` sees it: the URL serves
 * the encrypted copy to the token alone; the ciphertext has the encryption's hash and
 * length; the wrapped key opens only for this vehicle and this aad, is the stored content
 * key, and decrypts the download to the package's hash and length. */
static void check_package(store *db, const char *vin, const char *other_vin, json_t *p,
                          const char *want_sha, char enc_out[65])
{
	json_t *enc = json_object_get(p, "encryption");
	const char *sha = json_string_value(json_object_get(p, "sha256"));
	char aad[128], bad_aad[128], hex[65], path[800];
	uint8_t key[32], stored[32];
	store_package_key k;
	assert_string_equal(sha, want_sha);
	assert_true(json_is_object(enc));
	assert_string_equal(json_string_value(json_object_get(enc, "scheme")),
	                    "aes-256-gcm-chunked+hybrid-wrap-v1");
	snprintf(aad, sizeof(aad), "%s|%s", vin, sha);
	assert_string_equal(json_string_value(json_object_get(enc, "aad")), aad);
	package_key(db, sha, &k, stored);
	assert_string_equal(json_string_value(json_object_get(enc, "sha256")), k.enc_sha256);
	assert_int_equal(json_integer_value(json_object_get(enc, "length")), k.enc_size);
	snprintf(enc_out, 65, "%s", k.enc_sha256);
	/* the URL names the encrypted copy */
	const char *url = json_string_value(json_object_get(p, "url"));
	char want_path[128];
	snprintf(want_path, sizeof(want_path), "/packages/%s?token=", k.enc_sha256);
	assert_non_null(strstr(url, want_path));
	/* unwrapping */
	assert_int_equal(unwrap_as(vin, enc, aad, key), PQ_OK);
	assert_memory_equal(key, stored, 32);
	assert_int_equal(unwrap_as(other_vin, enc, aad, key), PQ_ERR_VERIFY);
	snprintf(bad_aad, sizeof(bad_aad), "%s|%s", other_vin, sha);
	assert_int_equal(unwrap_as(vin, enc, bad_aad, key), PQ_ERR_VERIFY);
	snprintf(bad_aad, sizeof(bad_aad), "%s|%s", vin, release_pkg);
	assert_int_equal(unwrap_as(vin, enc, bad_aad, key), PQ_ERR_VERIFY);
	assert_int_equal(unwrap_as(vin, enc, aad, key), PQ_OK);
	/* the download, decrypted */
	resp r;
	fetch_url(url, &r);
	assert_int_equal(r.status, 200);
	assert_int_equal(r.len, k.enc_size);
	sha_hex(r.body, r.len, hex);
	assert_string_equal(hex, k.enc_sha256);
	snprintf(path, sizeof(path), "%s/download.enc", dir);
	assert_int_equal(pq_file_write_atomic(path, r.body, r.len, 0644, true), PQ_OK);
	resp_free(&r);
	check_decrypts(path, key, sha);
	struct stat st;
	snprintf(path, sizeof(path), "%s/data/files/%s", dir, sha);
	assert_int_equal(stat(path, &st), 0);
	assert_int_equal(json_integer_value(json_object_get(p, "length")), st.st_size);
}

/* A token from the metadata is bound to its file: refused for any other. */
static void check_token_bound(json_t *p, const char *other_sha)
{
	const char *url = json_string_value(json_object_get(p, "url"));
	char path[600];
	const char *t = strstr(url, "?token=");
	assert_non_null(t);
	snprintf(path, sizeof(path), "/packages/%s%s", other_sha, t);
	resp r;
	request("GET", path, NULL, NULL, 0, NULL, &r);
	assert_int_equal(r.status, 403);
	resp_free(&r);
}

/* Starts a campaign of releases for VINs (both JSON array texts); returns its id. */
static void start_campaign(const char *name, const char *releases, const char *vins,
                           const char *policy, char id[40])
{
	char body[1024], path[256];
	resp r;
	snprintf(body, sizeof(body),
	         "{\"name\":\"%s\",\"release_ids\":%s,\"target\":{\"vins\":%s}%s%s}", name,
	         releases, vins, policy ? ",\"policy\":" : "", policy ? policy : "");
	request("POST", "/api/v1/campaigns", key_operator, body, strlen(body), NULL, &r);
	if (r.status != 201)
		fail_msg("campaign: %ld %s", r.status, r.body);
	json_t *j = jbody(&r);
	snprintf(id, 40, "%s", json_string_value(json_object_get(j, "id")));
	json_decref(j);
	resp_free(&r);
	snprintf(path, sizeof(path), "/api/v1/campaigns/%s/start", id);
	request("POST", path, key_operator, "{}", 2, NULL, &r);
	if (r.status != 200)
		fail_msg("start: %ld %s", r.status, r.body);
	resp_free(&r);
}

/* usrv_campaign_metadata: per-vehicle wrapped keys, encrypted URLs with bound tokens, the
 * delta's base and full fallback, the installation plan. */
static void test_campaign_metadata(void **state)
{
	(void)state;
	const char *va = "VINAAAAAAAAAAAAA1", *vb = "VINBBBBBBBBBBBBB2";
	resp r;
	/* vehicle B runs 3.1.0 on ECU_011, the delta's base: it gets the delta; A (1.2.0)
	 * gets the full package */
	const char *vci = "{\"ecus\":[{\"ecu_id\":\"ECU_011\",\"hardware_id\":\"HW-1-011\","
	                  "\"zone\":1,\"software\":{\"APP\":\"3.1.0\",\"BOOT\":\"1.0.0\","
	                  "\"CAL\":\"1.0.0\"},\"capabilities\":{\"delta\":true}}]}";
	request("PUT", "/api/v1/vehicles/VINBBBBBBBBBBBBB2/vci", "vehicle:VINBBBBBBBBBBBBB2", vci,
	        strlen(vci), NULL, &r);
	assert_int_equal(r.status, 200);
	resp_free(&r);
	char cid[40], rels[64];
	snprintf(rels, sizeof(rels), "[\"%s\"]", release2_id);
	start_campaign("encrypted", rels, "[\"VINAAAAAAAAAAAAA1\",\"VINBBBBBBBBBBBBB2\"]",
	               "{\"rollback_policy\":\"none\"}", cid);
	srv *s = metadata_server(true);
	store *db = open_store();
	json_t *mb = NULL, *ma = NULL, *mb2 = NULL;
	if (usrv_campaign_metadata(s, db, cid, vb, wall_ms(), &mb) != PQ_OK)
		fail_msg("metadata: %s", pq_err_detail());
	assert_int_equal(json_array_size(json_object_get(mb, "images")), 1);
	json_t *im = json_array_get(json_object_get(mb, "images"), 0);
	char name[96], enc_delta[65], enc_full[65];
	snprintf(name, sizeof(name), "%s.delta.3.1.0.swpg", release2_id);
	assert_string_equal(json_string_value(json_object_get(im, "name")), name);
	assert_string_equal(json_string_value(json_object_get(im, "package")), "delta");
	assert_string_equal(json_string_value(json_object_get(im, "ecu_id")), "ECU_011");
	assert_string_equal(json_string_value(json_object_get(im, "release_id")), release2_id);
	assert_string_equal(json_string_value(json_object_get(im, "software_type")), "APP");
	assert_string_equal(json_string_value(json_object_get(im, "hardware_id")), "HW-1-011");
	assert_string_equal(json_string_value(json_object_get(im, "from_version")), "3.1.0");
	assert_string_equal(json_string_value(json_object_get(im, "to_version")), "3.2.0");
	json_t *img = json_object_get(im, "image");
	assert_string_equal(json_string_value(json_object_get(img, "sha256")), image2_sha);
	assert_int_equal(json_integer_value(json_object_get(img, "length")), image2_len);
	json_t *base = json_object_get(im, "delta_base");
	assert_string_equal(json_string_value(json_object_get(base, "sha256")), image1_sha);
	assert_string_equal(json_string_value(json_object_get(base, "version")), "3.1.0");
	check_package(db, vb, va, im, release2_delta, enc_delta);
	json_t *fb = json_object_get(im, "fallback");
	snprintf(name, sizeof(name), "%s.full.swpg", release2_id);
	assert_string_equal(json_string_value(json_object_get(fb, "name")), name);
	check_package(db, vb, va, fb, release2_full, enc_full);
	/* each token opens only its own file: not the other copy, not the plaintext */
	check_token_bound(im, enc_full);
	check_token_bound(im, release2_delta);
	check_token_bound(fb, enc_delta);
	json_t *order = json_object_get(mb, "install_order");
	assert_int_equal(json_array_size(order), 1);
	assert_string_equal(json_string_value(json_array_get(order, 0)), "ECU_011");
	assert_string_equal(json_string_value(json_object_get(mb, "rollback_policy")), "none");
	/* the director signs the plaintext package the vehicle installs */
	json_t *dt = json_object_get(
	    json_object_get(json_object_get(mb, "director_targets"), "signed"), "targets");
	snprintf(name, sizeof(name), "%s.delta.3.1.0.swpg", release2_id);
	assert_string_equal(json_string_value(json_object_get(
	                        json_object_get(json_object_get(dt, name), "hashes"), "sha256")),
	                    release2_delta);
	/* nothing secret in the clear */
	char *text = json_dumps(mb, JSON_COMPACT);
	store_package_key k;
	uint8_t key[32];
	package_key(db, release2_delta, &k, key);
	assert_null(strstr(text, k.content_key));
	free(text);

	/* again: the same encrypted copy (nothing re-encrypted), a freshly wrapped key */
	assert_int_equal(usrv_campaign_metadata(s, db, cid, vb, wall_ms(), &mb2), PQ_OK);
	json_t *im2 = json_array_get(json_object_get(mb2, "images"), 0);
	json_t *e1 = json_object_get(im, "encryption"), *e2 = json_object_get(im2, "encryption");
	assert_string_equal(json_string_value(json_object_get(e2, "sha256")), enc_delta);
	assert_string_not_equal(json_string_value(json_object_get(e1, "wrapped_key")),
	                        json_string_value(json_object_get(e2, "wrapped_key")));

	/* vehicle A: the full package, wrapped for A */
	assert_int_equal(usrv_campaign_metadata(s, db, cid, va, wall_ms(), &ma), PQ_OK);
	json_t *ia = json_array_get(json_object_get(ma, "images"), 0);
	assert_string_equal(json_string_value(json_object_get(ia, "package")), "full");
	assert_null(json_object_get(ia, "fallback"));
	assert_null(json_object_get(ia, "delta_base"));
	char enc_a[65];
	check_package(db, va, vb, ia, release2_full, enc_a);
	assert_string_equal(enc_a, enc_full); /* one copy per package, keys wrapped per vehicle */
	json_decref(ma);
	json_decref(mb);
	json_decref(mb2);
	store_close(db);
	srv_free(s);
}

/* With downloads.encrypt = false a release gets no encrypted copy and vehicles download
 * plaintext; the metadata of a server with encryption on then encrypts it once. */
static void test_plaintext_and_lazy_encryption(void **state)
{
	(void)state;
	char cfg2[700], pf2[700], body[512], path[256], id[40], rel[40], sha[65];
	int port2 = 0, saved = port;
	snprintf(cfg2, sizeof(cfg2), "%s/server3.conf", dir);
	snprintf(pf2, sizeof(pf2), "%s/port3", dir);
	write_config(cfg2, "downloads.encrypt = false\n", pf2);
	pid_t pid = start_server(cfg2, pf2, &port2);
	port = port2;
	size_t len = 40000;
	uint8_t *img = malloc(len);
	assert_non_null(img);
	for (size_t i = 0; i < len; i++)
		img[i] = (uint8_t)(i * 31 + 7);
	resp r;
	snprintf(body, sizeof(body), "{\"size\":%zu}", len);
	request("POST", "/api/v1/uploads", key_operator, body, strlen(body), NULL, &r);
	assert_int_equal(r.status, 201);
	json_t *j = jbody(&r);
	snprintf(id, sizeof(id), "%s", json_string_value(json_object_get(j, "id")));
	json_decref(j);
	resp_free(&r);
	snprintf(path, sizeof(path), "/api/v1/uploads/%s?offset=0", id);
	request("PUT", path, key_operator, img, len, NULL, &r);
	assert_int_equal(r.status, 200);
	resp_free(&r);
	snprintf(body, sizeof(body),
	         "{\"title\":\"plain\",\"version\":\"3.3.0\",\"hardware_id\":\"HW-1-012\","
	         "\"ecu_id\":\"ECU_012\",\"upload_id\":\"%s\"}",
	         id);
	request("POST", "/api/v1/releases", key_operator, body, strlen(body), NULL, &r);
	assert_int_equal(r.status, 201);
	j = jbody(&r);
	snprintf(rel, sizeof(rel), "%s", json_string_value(json_object_get(j, "id")));
	snprintf(sha, sizeof(sha), "%s",
	         json_string_value(json_object_get(json_object_get(j, "package"), "sha256")));
	json_decref(j);
	resp_free(&r);
	free(img);
	store *db = open_store();
	store_package_key k;
	assert_int_equal(store_package_key_get(db, sha, &k), PQ_ERR_NOTFOUND);
	/* encryption off: a vehicle downloads the plaintext with its certificate */
	snprintf(path, sizeof(path), "/packages/%s", sha);
	request("GET", path, "vehicle:VINAAAAAAAAAAAAA1", NULL, 0, NULL, &r);
	assert_int_equal(r.status, 200);
	resp_free(&r);
	port = saved;
	stop_server(pid);

	char cid[40];
	/* with 3.2.0 for ECU_011 too; the campaign installs ECU_012 first */
	char rels[128];
	snprintf(rels, sizeof(rels), "[\"%s\",\"%s\"]", release2_id, rel);
	start_campaign("lazy", rels, "[\"VINAAAAAAAAAAAAA1\"]", "{\"install_order\":[\"ECU_012\"]}",
	               cid);
	/* a server with encryption off: plaintext URLs, "encryption": null */
	srv *s = metadata_server(false);
	json_t *m = NULL;
	assert_int_equal(usrv_campaign_metadata(s, db, cid, "VINAAAAAAAAAAAAA1", wall_ms(), &m),
	                 PQ_OK);
	json_t *im = json_array_get(json_object_get(m, "images"), 0);
	assert_true(json_is_null(json_object_get(im, "encryption")));
	snprintf(path, sizeof(path), "/packages/%s?token=", sha);
	assert_non_null(strstr(json_string_value(json_object_get(im, "url")), path));
	fetch_url(json_string_value(json_object_get(im, "url")), &r);
	assert_int_equal(r.status, 200);
	resp_free(&r);
	assert_string_equal(json_string_value(json_object_get(m, "rollback_policy")),
	                    "all_or_nothing");
	/* images in the policy's order, then by ECU id; install_order lists them */
	json_t *images = json_object_get(m, "images"), *order = json_object_get(m, "install_order");
	assert_int_equal(json_array_size(images), 2);
	assert_int_equal(json_array_size(order), 2);
	const char *want[] = {"ECU_012", "ECU_011"};
	for (size_t i = 0; i < 2; i++) {
		assert_string_equal(json_string_value(json_array_get(order, i)), want[i]);
		assert_string_equal(
		    json_string_value(json_object_get(json_array_get(images, i), "ecu_id")),
		    want[i]);
	}
	json_decref(m);
	srv_free(s);
	assert_int_equal(store_package_key_get(db, sha, &k), PQ_ERR_NOTFOUND);
	/* encryption on: the first metadata makes the copy, later ones reuse it */
	s = metadata_server(true);
	assert_int_equal(usrv_campaign_metadata(s, db, cid, "VINAAAAAAAAAAAAA1", wall_ms(), &m),
	                 PQ_OK);
	im = json_array_get(json_object_get(m, "images"), 0);
	char enc[65];
	check_package(db, "VINAAAAAAAAAAAAA1", "VINBBBBBBBBBBBBB2", im, sha, enc);
	json_decref(m);
	assert_int_equal(usrv_campaign_metadata(s, db, cid, "VINAAAAAAAAAAAAA1", wall_ms(), &m),
	                 PQ_OK);
	im = json_array_get(json_object_get(m, "images"), 0);
	assert_string_equal(
	    json_string_value(json_object_get(json_object_get(im, "encryption"), "sha256")), enc);
	json_decref(m);
	uint8_t key[32];
	package_key(db, sha, &k, key);
	check_copy(&k, key);
	srv_free(s);
	store_close(db);
}

/* A second server with a per-client bucket of 2 at 1/s: the third immediate request is
 * refused with 429 and Retry-After. */
static void test_rate_limit(void **state)
{
	(void)state;
	char cfg2[700], pf2[700];
	int port2 = 0, saved = port;
	snprintf(cfg2, sizeof(cfg2), "%s/server2.conf", dir);
	snprintf(pf2, sizeof(pf2), "%s/port2", dir);
	write_config(cfg2, "ratelimit.client_rps = 1\nratelimit.client_burst = 2\n", pf2);
	pid_t pid = start_server(cfg2, pf2, &port2);
	port = port2;
	resp r;
	request("GET", "/api/v1/vehicles", key_viewer, NULL, 0, NULL, &r);
	assert_int_equal(r.status, 200);
	resp_free(&r);
	request("GET", "/api/v1/vehicles", key_viewer, NULL, 0, NULL, &r);
	assert_int_equal(r.status, 200);
	resp_free(&r);
	request("GET", "/api/v1/vehicles", key_viewer, NULL, 0, NULL, &r);
	assert_int_equal(r.status, 429);
	assert_true(has_header(&r, "Retry-After: 1"));
	json_t *j = jbody(&r);
	assert_string_equal(err_code(j), "rate_limited");
	json_decref(j);
	resp_free(&r);
	port = saved;
	stop_server(pid);
}

/* Retry-After is whole seconds, rounded up, never 0. */
static void test_retry_after(void **state)
{
	(void)state;
	assert_int_equal(rl_retry_after_s(0.0), 1);
	assert_int_equal(rl_retry_after_s(0.0004), 1); /* was "0": retry at once */
	assert_int_equal(rl_retry_after_s(-3.0), 1);
	assert_int_equal(rl_retry_after_s(1.0), 1);
	assert_int_equal(rl_retry_after_s(1.2), 2);
	assert_int_equal(rl_retry_after_s(59.9999), 60);
	assert_int_equal(rl_retry_after_s(1e12), 86400);
}

int main(void)
{
	if (!getenv("PQOTA_BIN")) {
		fprintf(stderr, "PQOTA_BIN must name the pqota binary\n");
		return 1;
	}
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_health_over_pqc_tls),
	    cmocka_unit_test(test_retry_after),
	    cmocka_unit_test(test_session_resumption),
	    cmocka_unit_test(test_auth_and_roles),
	    cmocka_unit_test(test_vehicles),
	    cmocka_unit_test(test_upload_and_release),
	    cmocka_unit_test(test_delta_release),
	    cmocka_unit_test(test_downloads),
	    cmocka_unit_test(test_encrypted_copies),
	    cmocka_unit_test(test_campaign_metadata),
	    cmocka_unit_test(test_plaintext_and_lazy_encryption),
	    cmocka_unit_test(test_rate_limit),
	};
	return cmocka_run_group_tests(tests, setup, teardown);
}
