/* test_server_api.c: black-box tests of `pqota server` over real HTTPS: the real binary on
 * a free port with a temporary PKI, a libcurl client on OpenSSL 3.5 that offers only
 * X25519MLKEM768 and checks it, vehicles with client certificates, API keys of each role.
 * The store backend comes from PQOTA_TEST_STORE (sqlite, or postgres with PQOTA_TEST_PG). */
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

#include "core/fileio.h"
#include "crypto/hash.h"
#include "crypto/pki.h"
#include "pkg/pkg.h"
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
static uint8_t *image;
static size_t image_len = 150 * 1000;

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

/* A second release built as a delta against the first: the server makes the delta package;
 * a vehicle downloads it and the package library patches the first image into the second. */
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
	char dsha[65];
	snprintf(dsha, sizeof(dsha), "%s", json_string_value(json_object_get(delta, "sha256")));
	json_decref(j);
	resp_free(&r);
	/* the vehicle downloads the delta and patches its installed (first) image */
	snprintf(path, sizeof(path), "/packages/%s", dsha);
	request("GET", path, "vehicle:VINAAAAAAAAAAAAA1", NULL, 0, NULL, &r);
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
	/* a vehicle downloads the package byte for byte */
	request("GET", path, "vehicle:VINAAAAAAAAAAAAA1", NULL, 0, NULL, &r);
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
	request("GET", path, "vehicle:VINAAAAAAAAAAAAA1", NULL, 0, rng, &r);
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

int main(void)
{
	if (!getenv("PQOTA_BIN")) {
		fprintf(stderr, "PQOTA_BIN must name the pqota binary\n");
		return 1;
	}
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_health_over_pqc_tls), cmocka_unit_test(test_session_resumption),
	    cmocka_unit_test(test_auth_and_roles),      cmocka_unit_test(test_vehicles),
	    cmocka_unit_test(test_upload_and_release),  cmocka_unit_test(test_delta_release),
	    cmocka_unit_test(test_downloads),           cmocka_unit_test(test_rate_limit),
	};
	return cmocka_run_group_tests(tests, setup, teardown);
}
