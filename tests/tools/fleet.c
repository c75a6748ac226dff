/* fleet.c: pqota-fleet, a scripted fleet of test vehicles in one process.
 *
 * Each vehicle has its own MQTT connection (client id = VIN, its own client certificate from
 * the PKI) to a mosquitto broker over TLS 1.3, and speaks docs/protocol.md: presence,
 * wake-up, VCI reports, campaign responses, readiness, downloads over HTTPS (libcurl, the
 * vehicle's certificate) with SHA-256 and length checks, installation and status messages.
 * An encrypted image (its "encryption" in the metadata) is checked as downloaded against
 * the encryption's SHA-256 and length, its content key unwrapped with the vehicle's KEM keys
 * (PKI/vehicles/VIN/kem-*.key) and the stream decrypted chunk by chunk as it arrives, and
 * the decrypted package checked against the image's SHA-256 and length.
 * How a vehicle answers a campaign is scripted (--behavior). One thread runs every vehicle:
 * a poll() loop over the vehicles' MQTT sockets and the sockets of the running downloads
 * (curl multi, socket interface). Every event goes to a JSON-lines log (--log) so black-box
 * tests can assert on what each vehicle saw and sent. */
#include <arpa/inet.h>
#include <errno.h>
#include <getopt.h>
#include <limits.h>
#include <poll.h>
#include <signal.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <sys/socket.h>
#include <unistd.h>

#include <curl/curl.h>
#include <jansson.h>
#include <mosquitto.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/rand.h>
#include <openssl/ssl.h>
#include <openssl/x509v3.h>

#include "crypto/aead.h"
#include "crypto/kem.h"
#include "crypto/key.h"

#define EXIT_SETUP 2
#define EXIT_USAGE 64

#define VIN_MAX            32
#define TS_MAX             96
#define ERR_MAX            8448
#define ID_MAX             128
#define KEEPALIVE_S        30
#define TICK_MS            100
#define DL_ATTEMPTS        3
#define DL_RETRY_MS        1000
#define BACKOFF_MIN_MS     250
#define BACKOFF_MAX_MS     5000
#define CONNECT_TIMEOUT_MS 10000

typedef enum {
	B_ACCEPT,
	B_DECLINE,
	B_POSTPONE,
	B_SILENT,
	B_FAIL_DOWNLOAD,
	B_FAIL_INSTALL,
	B_ROLLBACK,
} behavior_kind;

typedef struct {
	behavior_kind kind;
	int postpone_s;     /* B_POSTPONE: retry_after_s */
	int postpone_times; /* B_POSTPONE: how many offers of a campaign are postponed */
} behavior;

/* A vehicle's outcome for its latest campaign. */
typedef enum {
	O_IDLE, /* no campaign yet */
	O_ACCEPTED,
	O_POSTPONED,
	O_DOWNLOADING,
	O_INSTALLING,
	O_COMPLETED,
	O_DECLINED,
	O_FAILED,
	O_ROLLED_BACK,
	O_CANCELLED,
	O_IGNORED, /* silent: the campaign was received and not answered */
	O_COUNT
} outcome;

static const char *const outcome_names[O_COUNT] = {
    "idle",     "accepted", "postponed",   "downloading", "installing", "completed",
    "declined", "failed",   "rolled_back", "cancelled",   "ignored",
};

static bool outcome_terminal(outcome o)
{
	return o == O_COMPLETED || o == O_DECLINED || o == O_FAILED || o == O_ROLLED_BACK ||
	       o == O_CANCELLED || o == O_IGNORED;
}

struct fleet;

typedef struct vehicle {
	struct fleet *fl;
	char vin[VIN_MAX + 1];
	char cert[PATH_MAX];
	char key[PATH_MAX];
	behavior beh;
	SSL_CTX *ctx;
	struct mosquitto *mosq;
	bool connected;     /* CONNACK accepted */
	bool ever;          /* connected at least once */
	bool broken;        /* socket in an error state until the next connect attempt */
	bool wake_sent;     /* the wake-up is sent once per run (one boot) */
	int64_t connect_at; /* monotonic ms of the next connect attempt (0: none due) */
	int64_t connect_started;
	int unacked; /* QoS 1 publishes without PUBACK yet */
	int backoff_ms;
	unsigned attempts;
	/* inventory */
	json_t *ecus;  /* array of ECU objects (VCI) */
	json_t *extra; /* other top-level VCI fields (storage, dtc_count, ...) */
	/* campaign */
	char campaign_id[ID_MAX];
	json_t *targets; /* from ota_campaign */
	int postponed;
	outcome out;
	/* download job */
	json_t *meta; /* ota_campaign_metadata being worked on */
	size_t img;
	CURL *easy;
	EVP_MD_CTX *md;
	uint64_t got;
	uint64_t expect; /* 0: unknown */
	int64_t last_progress_ms;
	int attempt;
	int64_t retry_at;
	bool too_long;
	char url[4096];
	/* an encrypted image: the stream is decrypted as it arrives */
	bool enc;
	pq_key *kem_x, *kem_m; /* the vehicle's private KEM keys (loaded on first use) */
	uint8_t ckey[PQ_AEAD_KEY_LEN];
	uint8_t hdr[PQ_AEAD_HDR_LEN];
	size_t hdr_got;
	pq_aead *aead;
	uint8_t *sealed, *plain; /* one sealed chunk being collected, and its plaintext */
	size_t sealed_got;
	uint64_t chunk;     /* index of the chunk being collected */
	EVP_MD_CTX *pmd;    /* SHA-256 of the decrypted package */
	uint64_t plain_got; /* decrypted bytes */
	char dec_err[256];  /* why decryption stopped the transfer ("" while fine) */
} vehicle;

typedef struct {
	curl_socket_t fd;
	int what;
} curl_sock;

typedef struct fleet {
	/* options */
	const char *pki;
	char host[256];
	int port;
	const char *server; /* https://HOST:PORT or NULL */
	const char *groups;
	bool duplicate;
	bool out_of_order;
	long boot_seq;
	double duration_s; /* <= 0: none */
	bool until_done;
	double connect_timeout_s;
	char ca[PATH_MAX];
	/* state */
	vehicle *v;
	size_t n;
	FILE *log;
	CURLM *multi;
	curl_sock *cs;
	size_t ncs, cs_cap;
	int64_t curl_deadline; /* -1: no timer */
	int64_t start_ms;
	char last_error[512];
} fleet;

static volatile sig_atomic_t g_stop;

static void on_signal(int sig)
{
	(void)sig;
	g_stop = 1;
}

/* ---- time, ids, log -------------------------------------------------------------------- */

static int64_t mono_ms(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static void iso_now(char *buf, size_t len)
{
	struct timespec ts;
	struct tm tm;
	clock_gettime(CLOCK_REALTIME, &ts);
	gmtime_r(&ts.tv_sec, &tm);
	snprintf(buf, len, "%04d-%02d-%02dT%02d:%02d:%02d.%03dZ", tm.tm_year + 1900, tm.tm_mon + 1,
	         tm.tm_mday, tm.tm_hour, tm.tm_min, tm.tm_sec, (int)(ts.tv_nsec / 1000000));
}

static void uuid4(char out[37])
{
	unsigned char b[16];
	if (RAND_bytes(b, sizeof(b)) != 1) {
		for (size_t i = 0; i < sizeof(b); i++)
			b[i] = (unsigned char)rand();
	}
	b[6] = (unsigned char)((b[6] & 0x0f) | 0x40);
	b[8] = (unsigned char)((b[8] & 0x3f) | 0x80);
	snprintf(out, 37, "%02x%02x%02x%02x-%02x%02x-%02x%02x-%02x%02x-%02x%02x%02x%02x%02x%02x",
	         b[0], b[1], b[2], b[3], b[4], b[5], b[6], b[7], b[8], b[9], b[10], b[11], b[12],
	         b[13], b[14], b[15]);
}

/* One JSON line: {"ts","elapsed_ms","vin","event", ...fields}. Steals `fields`. */
static void logev(fleet *fl, const vehicle *v, const char *event, json_t *fields)
{
	if (!fl->log) {
		json_decref(fields);
		return;
	}
	char ts[TS_MAX];
	iso_now(ts, sizeof(ts));
	json_t *o = json_object();
	json_object_set_new(o, "ts", json_string(ts));
	json_object_set_new(o, "elapsed_ms", json_integer(mono_ms() - fl->start_ms));
	if (v)
		json_object_set_new(o, "vin", json_string(v->vin));
	json_object_set_new(o, "event", json_string(event));
	if (fields) {
		json_object_update(o, fields);
		json_decref(fields);
	}
	char *s = json_dumps(o, JSON_COMPACT);
	json_decref(o);
	if (s) {
		fprintf(fl->log, "%s\n", s);
		fflush(fl->log);
		free(s);
	}
}

static json_t *jerr(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
static json_t *jerr(const char *fmt, ...)
{
	char buf[1024];
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(buf, sizeof(buf), fmt, ap);
	va_end(ap);
	return json_pack("{s:s}", "error", buf);
}

static const char *jstr(json_t *o, const char *key)
{
	json_t *s = json_object_get(o, key);
	return json_is_string(s) ? json_string_value(s) : NULL;
}

static void set_outcome(vehicle *v, outcome o)
{
	if (v->out == o)
		return;
	v->out = o;
	logev(v->fl, v, "outcome",
	      json_pack("{s:s,s:s}", "outcome", outcome_names[o], "campaign_id", v->campaign_id));
}

/* ---- publishing -------------------------------------------------------------------------- */

static json_t *envelope(vehicle *v, const char *msg_type, const char *correlation_id)
{
	char id[37], ts[TS_MAX];
	uuid4(id);
	iso_now(ts, sizeof(ts));
	json_t *m = json_pack("{s:s,s:s,s:s,s:s}", "msg_type", msg_type, "message_id", id,
	                      "timestamp", ts, "vin", v->vin);
	if (correlation_id)
		json_object_set_new(m, "correlation_id", json_string(correlation_id));
	return m;
}

static json_t *campaign_envelope(vehicle *v, const char *msg_type, const char *correlation_id)
{
	json_t *m = envelope(v, msg_type, correlation_id);
	json_object_set_new(m, "campaign_id", json_string(v->campaign_id));
	return m;
}

static void publish_raw(vehicle *v, const char *sub, const char *payload, bool retain,
                        json_t *logfields)
{
	char topic[128];
	snprintf(topic, sizeof(topic), "oem/%s/%s", v->vin, sub);
	int rc = mosquitto_publish(v->mosq, NULL, topic, (int)strlen(payload), payload, 1, retain);
	if (rc == MOSQ_ERR_SUCCESS)
		v->unacked++;
	json_object_set_new(logfields, "topic", json_string(topic));
	if (rc != MOSQ_ERR_SUCCESS) {
		json_object_set_new(logfields, "error", json_string(mosquitto_strerror(rc)));
		logev(v->fl, v, "publish_failed", logfields);
	} else {
		logev(v->fl, v, "published", logfields);
	}
}

/* Publishes a JSON message on oem/{vin}/{sub} (QoS 1) and logs it; steals `m`. With
 * --duplicate, status messages and responses go out twice with the same message_id. */
static void publish(vehicle *v, const char *sub, json_t *m)
{
	char *s = json_dumps(m, JSON_COMPACT);
	if (!s) {
		json_decref(m);
		return;
	}
	int copies =
	    v->fl->duplicate && (!strcmp(sub, "ota/status") || !strcmp(sub, "response")) ? 2 : 1;
	for (int i = 0; i < copies; i++) {
		json_t *f = json_object();
		static const char *const keys[] = {"msg_type",    "message_id", "correlation_id",
		                                   "campaign_id", "ecu_id",     "decision",
		                                   "error_code",  "progress"};
		for (size_t k = 0; k < sizeof(keys) / sizeof(keys[0]); k++) {
			json_t *x = json_object_get(m, keys[k]);
			if (x)
				json_object_set(f, keys[k], x);
		}
		if (i > 0)
			json_object_set_new(f, "duplicate", json_true());
		publish_raw(v, sub, s, false, f);
	}
	free(s);
	json_decref(m);
}

/* ---- inventory --------------------------------------------------------------------------- */

static json_t *default_ecus(const char *vin, int n)
{
	json_t *a = json_array();
	for (int i = 1; i <= n; i++) {
		int zone = (i - 1) / 20 + 1;
		char id[16], hw[24], serial[64];
		snprintf(id, sizeof(id), "ECU_%03d", i);
		snprintf(hw, sizeof(hw), "HW-%d-%03d", zone, i);
		snprintf(serial, sizeof(serial), "SN-%s-%03d", vin, i);
		json_array_append_new(
		    a, json_pack("{s:s,s:s,s:i,s:s,s:s,s:{s:s,s:s,s:s},s:{s:b,s:I}}", "ecu_id", id,
		                 "hardware_id", hw, "zone", zone, "serial", serial, "bank", "A",
		                 "software", "APP", "1.0.0", "BOOT", "1.0.0", "CAL", "1.0.0",
		                 "capabilities", "delta", 1, "max_package_size",
		                 (json_int_t)256 * 1024 * 1024));
	}
	return a;
}

static void send_vci(vehicle *v, const char *correlation_id)
{
	json_t *m = envelope(v, "vci_report", correlation_id);
	json_object_update(m, v->extra);
	json_object_set(m, "ecus", v->ecus);
	publish(v, "vci", m);
}

static json_t *find_ecu(vehicle *v, const char *ecu_id)
{
	size_t i;
	json_t *e;
	json_array_foreach(v->ecus, i, e)
	{
		const char *id = jstr(e, "ecu_id");
		if (id && !strcmp(id, ecu_id))
			return e;
	}
	return NULL;
}

/* After a successful installation: each target ECU runs its to_version, from the other bank. */
static void apply_targets(vehicle *v)
{
	size_t i;
	json_t *t;
	if (!json_is_array(v->targets) || json_array_size(v->targets) == 0) {
		logev(v->fl, v, "warning",
		      jerr("no campaign targets known: installed versions unchanged"));
		return;
	}
	json_array_foreach(v->targets, i, t)
	{
		const char *ecu_id = jstr(t, "ecu_id"), *to = jstr(t, "to_version");
		const char *type = jstr(t, "software_type");
		if (!ecu_id || !to)
			continue;
		json_t *e = find_ecu(v, ecu_id);
		if (!e) {
			logev(v->fl, v, "warning", jerr("target ECU %s is not in the VCI", ecu_id));
			continue;
		}
		json_t *sw = json_object_get(e, "software");
		if (!json_is_object(sw)) {
			sw = json_object();
			json_object_set_new(e, "software", sw);
		}
		char up[8] = "APP";
		if (type) {
			size_t k;
			for (k = 0; type[k] && k < sizeof(up) - 1; k++)
				up[k] = (char)((type[k] >= 'a' && type[k] <= 'z') ? type[k] - 32
				                                                  : type[k]);
			up[k] = '\0';
		}
		json_object_set_new(sw, up, json_string(to));
		const char *bank = jstr(e, "bank");
		json_object_set_new(e, "bank", json_string(bank && !strcmp(bank, "B") ? "A" : "B"));
		logev(v->fl, v, "installed",
		      json_pack("{s:s,s:s,s:s}", "ecu_id", ecu_id, "software_type", up, "version",
		                to));
	}
}

/* ---- downloads --------------------------------------------------------------------------- */

/* Forgets the decryption of the current image (the content key stays). */
static void dec_reset(vehicle *v)
{
	pq_aead_free(v->aead);
	v->aead = NULL;
	free(v->sealed);
	free(v->plain);
	v->sealed = v->plain = NULL;
	v->hdr_got = v->sealed_got = 0;
	v->chunk = v->plain_got = 0;
	v->dec_err[0] = '\0';
	EVP_MD_CTX_free(v->pmd);
	v->pmd = NULL;
}

/* Starts decrypting the current image from its first byte. */
static int dec_start(vehicle *v)
{
	dec_reset(v);
	v->pmd = EVP_MD_CTX_new();
	return v->pmd && EVP_DigestInit_ex(v->pmd, EVP_sha256(), NULL) == 1 ? 0 : -1;
}

/* Feeds downloaded ciphertext: the header, then each sealed chunk as soon as it is complete
 * is opened and its plaintext hashed. -1 with dec_err set when the stream does not open. */
static int dec_feed(vehicle *v, const uint8_t *p, size_t n)
{
	while (n > 0) {
		if (v->hdr_got < PQ_AEAD_HDR_LEN) {
			size_t k =
			    PQ_AEAD_HDR_LEN - v->hdr_got < n ? PQ_AEAD_HDR_LEN - v->hdr_got : n;
			memcpy(v->hdr + v->hdr_got, p, k);
			v->hdr_got += k;
			p += k;
			n -= k;
			if (v->hdr_got < PQ_AEAD_HDR_LEN)
				continue;
			if (pq_aead_open_init(v->ckey, v->hdr, &v->aead) != PQ_OK) {
				snprintf(v->dec_err, sizeof(v->dec_err), "header: %s",
				         pq_err_detail());
				return -1;
			}
			size_t cs = pq_aead_get_info(v->aead)->chunk_size;
			v->sealed = malloc(cs + PQ_AEAD_TAG_LEN);
			v->plain = malloc(cs ? cs : 1);
			if (!v->sealed || !v->plain) {
				snprintf(v->dec_err, sizeof(v->dec_err), "out of memory");
				return -1;
			}
			continue;
		}
		if (v->chunk >= pq_aead_get_info(v->aead)->chunks) {
			snprintf(v->dec_err, sizeof(v->dec_err), "bytes after the last chunk");
			return -1;
		}
		size_t plen = pq_aead_chunk_plain_len(v->aead, v->chunk);
		size_t want = plen + PQ_AEAD_TAG_LEN - v->sealed_got;
		size_t k = want < n ? want : n;
		memcpy(v->sealed + v->sealed_got, p, k);
		v->sealed_got += k;
		p += k;
		n -= k;
		if (v->sealed_got < plen + PQ_AEAD_TAG_LEN)
			continue;
		if (pq_aead_open_chunk(v->aead, v->chunk, v->sealed, v->sealed_got, v->plain) !=
		    PQ_OK) {
			snprintf(v->dec_err, sizeof(v->dec_err), "chunk %llu: %s",
			         (unsigned long long)v->chunk, pq_err_detail());
			return -1;
		}
		EVP_DigestUpdate(v->pmd, v->plain, plen);
		v->plain_got += plen;
		v->chunk++;
		v->sealed_got = 0;
	}
	return 0;
}

/* Whether the whole stream arrived: the header and every chunk. */
static bool dec_complete(const vehicle *v)
{
	return v->aead && v->chunk == pq_aead_get_info(v->aead)->chunks && v->sealed_got == 0;
}

/* The content key of an encrypted image: "wrapped_key" (base64) unwrapped with the
 * vehicle's KEM private keys, for aad "VIN|<the package's sha256>" (built here, not taken
 * from the metadata). -1 with err set on failure. */
static int unwrap_key(vehicle *v, json_t *im, json_t *enc, char *err, size_t elen)
{
	const char *b64 = jstr(enc, "wrapped_key"), *sha = jstr(im, "sha256");
	const char *dir = v->fl->pki;
	char path[PATH_MAX], aad[VIN_MAX + 1 + 128];
	uint8_t blob[PQ_WRAP_MAX + 3];
	if (!b64 || !sha || strlen(b64) > 4 * ((PQ_WRAP_MAX + 2) / 3) || strlen(b64) % 4) {
		snprintf(err, elen, "no wrapped_key or sha256, or a wrapped_key of a bad size");
		return -1;
	}
	int n = EVP_DecodeBlock(blob, (const unsigned char *)b64, (int)strlen(b64));
	size_t len = strlen(b64);
	if (n < 0) {
		snprintf(err, elen, "wrapped_key is not base64");
		return -1;
	}
	for (size_t i = len; i > 0 && b64[i - 1] == '='; i--)
		n--; /* EVP_DecodeBlock counts the padding as zero bytes */
	if (!v->kem_x) {
		snprintf(path, sizeof(path), "%s/vehicles/%s/kem-x25519.key", dir, v->vin);
		if (pq_key_load(path, &v->kem_x) != PQ_OK) {
			snprintf(err, elen, "%.200s: %.200s", path, pq_err_detail());
			return -1;
		}
	}
	if (!v->kem_m) {
		snprintf(path, sizeof(path), "%s/vehicles/%s/kem-ml-kem-768.key", dir, v->vin);
		if (pq_key_load(path, &v->kem_m) != PQ_OK) {
			snprintf(err, elen, "%.200s: %.200s", path, pq_err_detail());
			return -1;
		}
	}
	snprintf(aad, sizeof(aad), "%s|%s", v->vin, sha);
	pq_wrap_recipient me = {.x25519 = v->kem_x, .mlkem = v->kem_m};
	size_t klen = sizeof(v->ckey);
	if (pq_unwrap(&me, (const uint8_t *)aad, strlen(aad), blob, (size_t)n, v->ckey, &klen) !=
	        PQ_OK ||
	    klen != sizeof(v->ckey)) {
		snprintf(err, elen, "unwrapping the content key: %s", pq_err_detail());
		return -1;
	}
	return 0;
}

static void job_free(vehicle *v)
{
	if (v->easy) {
		curl_multi_remove_handle(v->fl->multi, v->easy);
		curl_easy_cleanup(v->easy);
		v->easy = NULL;
	}
	EVP_MD_CTX_free(v->md);
	v->md = NULL;
	dec_reset(v);
	v->enc = false;
	OPENSSL_cleanse(v->ckey, sizeof(v->ckey));
	json_decref(v->meta);
	v->meta = NULL;
	v->retry_at = 0;
}

static json_t *images(vehicle *v)
{
	return json_object_get(v->meta, "images");
}

static const char *image_ecu(vehicle *v, size_t i)
{
	const char *e = jstr(json_array_get(images(v), i), "ecu_id");
	return e ? e : "";
}

static void download_failed(vehicle *v, const char *code, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
static void download_failed(vehicle *v, const char *code, const char *fmt, ...)
{
	char text[512];
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(text, sizeof(text), fmt, ap);
	va_end(ap);
	json_t *m = campaign_envelope(v, "ota_download_failed", NULL);
	json_object_set_new(m, "ecu_id", json_string(image_ecu(v, v->img)));
	json_object_set_new(m, "error_code", json_string(code));
	json_object_set_new(m, "error", json_string(text));
	publish(v, "ota/status", m);
	job_free(v);
	set_outcome(v, O_FAILED);
}

static void progress(vehicle *v, size_t img, int pct, uint64_t bytes, uint64_t total)
{
	json_t *m = campaign_envelope(v, "ota_download_progress", NULL);
	json_object_set_new(m, "ecu_id", json_string(image_ecu(v, img)));
	json_object_set_new(m, "progress", json_integer(pct));
	json_object_set_new(m, "bytes_downloaded", json_integer((json_int_t)bytes));
	if (total)
		json_object_set_new(m, "total_bytes", json_integer((json_int_t)total));
	publish(v, "ota/status", m);
}

static size_t on_data(char *p, size_t sz, size_t nm, void *ud)
{
	vehicle *v = ud;
	size_t n = sz * nm;
	if (v->expect && v->got + n > v->expect) {
		v->too_long = true;
		return 0; /* abort: more bytes than the metadata says */
	}
	EVP_DigestUpdate(v->md, p, n);
	if (v->enc && dec_feed(v, (const uint8_t *)p, n) != 0)
		return 0; /* abort: the stream does not decrypt */
	v->got += n;
	int64_t now = mono_ms();
	if (!v->fl->out_of_order && now - v->last_progress_ms >= 1000) {
		v->last_progress_ms = now;
		int pct = v->expect ? (int)(v->got * 100 / v->expect) : 0;
		progress(v, v->img, pct, v->got, v->expect);
	}
	return n;
}

/* Base URL (scheme://host:port) of the server for relative image URLs. */
static void base_url(vehicle *v, char *out, size_t len)
{
	out[0] = '\0';
	if (v->fl->server) {
		snprintf(out, len, "%s", v->fl->server);
	} else {
		const char *repo = jstr(v->meta, "image_repository");
		if (repo) {
			const char *p = strstr(repo, "://");
			const char *end = p ? strchr(p + 3, '/') : NULL;
			size_t k = end ? (size_t)(end - repo) : strlen(repo);
			snprintf(out, len, "%.*s", (int)k, repo);
		}
	}
	size_t k = strlen(out);
	while (k > 0 && out[k - 1] == '/')
		out[--k] = '\0';
}

static void start_image(vehicle *v);

static void start_transfer(vehicle *v)
{
	fleet *fl = v->fl;
	CURL *e = curl_easy_init();
	if (!e) {
		download_failed(v, "internal", "curl_easy_init failed");
		return;
	}
	v->easy = e;
	v->too_long = false;
	curl_easy_setopt(e, CURLOPT_URL, v->url);
	curl_easy_setopt(e, CURLOPT_PRIVATE, v);
	curl_easy_setopt(e, CURLOPT_WRITEFUNCTION, on_data);
	curl_easy_setopt(e, CURLOPT_WRITEDATA, v);
	curl_easy_setopt(e, CURLOPT_CAINFO, fl->ca);
	curl_easy_setopt(e, CURLOPT_SSLCERT, v->cert);
	curl_easy_setopt(e, CURLOPT_SSLKEY, v->key);
	curl_easy_setopt(e, CURLOPT_SSL_VERIFYPEER, 1L);
	curl_easy_setopt(e, CURLOPT_SSL_VERIFYHOST, 2L);
	curl_easy_setopt(e, CURLOPT_SSLVERSION, (long)CURL_SSLVERSION_TLSv1_3);
	if (fl->groups)
		curl_easy_setopt(e, CURLOPT_SSL_EC_CURVES, fl->groups);
	curl_easy_setopt(e, CURLOPT_FAILONERROR, 1L);
	curl_easy_setopt(e, CURLOPT_NOSIGNAL, 1L);
	curl_easy_setopt(e, CURLOPT_CONNECTTIMEOUT, 10L);
	curl_easy_setopt(e, CURLOPT_LOW_SPEED_LIMIT, 1L);
	curl_easy_setopt(e, CURLOPT_LOW_SPEED_TIME, 30L);
	curl_easy_setopt(e, CURLOPT_USERAGENT, "pqota-fleet");
	if (v->got > 0)
		curl_easy_setopt(e, CURLOPT_RESUME_FROM_LARGE, (curl_off_t)v->got);
	v->attempt++;
	json_t *f = json_pack("{s:s,s:i,s:I}", "ecu_id", image_ecu(v, v->img), "attempt",
	                      v->attempt, "offset", (json_int_t)v->got);
	/* the URL without its token */
	char shown[4096];
	snprintf(shown, sizeof(shown), "%s", v->url);
	char *q = strstr(shown, "token=");
	if (q)
		snprintf(q, sizeof(shown) - (size_t)(q - shown), "token=...");
	json_object_set_new(f, "url", json_string(shown));
	logev(fl, v, "download_start", f);
	CURLMcode mc = curl_multi_add_handle(fl->multi, e);
	if (mc != CURLM_OK)
		download_failed(v, "internal", "curl_multi_add_handle: %s",
		                curl_multi_strerror(mc));
}

static void start_image(vehicle *v);
static void downloads_done(vehicle *v);

static void start_image(vehicle *v)
{
	json_t *imgs = images(v);
	if (v->img >= json_array_size(imgs)) {
		downloads_done(v);
		return;
	}
	json_t *im = json_array_get(imgs, v->img);
	const char *url = jstr(im, "url");
	json_t *enc = json_object_get(im, "encryption");
	v->enc = json_is_object(enc);
	/* an encrypted image: what is downloaded is the encryption's file */
	json_t *len = json_object_get(v->enc ? enc : im, "length");
	v->expect = json_is_integer(len) && json_integer_value(len) > 0
	                ? (uint64_t)json_integer_value(len)
	                : 0;
	if (v->enc) {
		char err[512];
		if (unwrap_key(v, im, enc, err, sizeof(err)) != 0) {
			download_failed(v, "key_unwrap_failed", "image for %s: %s",
			                image_ecu(v, v->img), err);
			return;
		}
		if (dec_start(v) != 0) {
			download_failed(v, "internal", "SHA-256 unavailable");
			return;
		}
	}
	v->got = 0;
	v->attempt = 0;
	v->last_progress_ms = 0;
	EVP_MD_CTX_free(v->md);
	v->md = EVP_MD_CTX_new();
	if (!v->md || EVP_DigestInit_ex(v->md, EVP_sha256(), NULL) != 1) {
		download_failed(v, "internal", "SHA-256 unavailable");
		return;
	}
	if (!url) {
		const char *sha = jstr(im, "sha256");
		if (!sha) {
			download_failed(v, "bad_metadata", "image %zu has neither url nor sha256",
			                v->img);
			return;
		}
		url = NULL;
		snprintf(v->url, sizeof(v->url), "/packages/%s", sha);
	} else {
		snprintf(v->url, sizeof(v->url), "%s", url);
	}
	if (strncmp(v->url, "https://", 8) && strncmp(v->url, "http://", 7)) {
		char base[1024], rel[sizeof(v->url)];
		base_url(v, base, sizeof(base));
		if (!base[0]) {
			download_failed(
			    v, "no_server",
			    "relative image URL and neither --server nor image_repository");
			return;
		}
		snprintf(rel, sizeof(rel), "%s", v->url);
		if (snprintf(v->url, sizeof(v->url), "%s%s%s", base, rel[0] == '/' ? "" : "/",
		             rel) >= (int)sizeof(v->url)) {
			download_failed(v, "bad_metadata", "image URL too long");
			return;
		}
	}
	const char *token = jstr(v->meta, "token");
	if (!strstr(v->url, "token=") && token) {
		size_t k = strlen(v->url);
		snprintf(v->url + k, sizeof(v->url) - k, "%stoken=%s",
		         strchr(v->url, '?') ? "&" : "?", token);
	}
	start_transfer(v);
}

static void installation(vehicle *v)
{
	json_t *imgs = images(v);
	size_t n = json_array_size(imgs);
	set_outcome(v, O_INSTALLING);
	json_t *m = campaign_envelope(v, "ota_installation_start", NULL);
	json_t *order = json_object_get(v->meta, "install_order");
	if (json_is_array(order))
		json_object_set(m, "install_order", order);
	publish(v, "ota/status", m);
	if (v->beh.kind == B_FAIL_INSTALL) {
		m = campaign_envelope(v, "ota_error", NULL);
		json_object_set_new(m, "ecu_id", json_string(image_ecu(v, 0)));
		json_object_set_new(m, "error_code", json_string("install_failed"));
		json_object_set_new(m, "error",
		                    json_string("simulated installation failure (fail-install)"));
		publish(v, "ota/status", m);
		job_free(v);
		set_outcome(v, O_FAILED);
		return;
	}
	for (size_t i = 0; i < n; i++) {
		m = campaign_envelope(v, "ota_installation_progress", NULL);
		json_object_set_new(m, "ecu_id", json_string(image_ecu(v, i)));
		json_object_set_new(m, "progress",
		                    json_integer(v->beh.kind == B_ROLLBACK ? 50 : 100));
		publish(v, "ota/status", m);
		if (v->beh.kind == B_ROLLBACK)
			break;
	}
	if (v->beh.kind == B_ROLLBACK) {
		m = campaign_envelope(v, "ota_rollback", NULL);
		json_object_set_new(m, "ecu_id", json_string(image_ecu(v, 0)));
		json_object_set_new(m, "error_code", json_string("verification_failed"));
		json_object_set_new(
		    m, "error",
		    json_string(
		        "simulated verification failure: rolled back to the previous bank"));
		publish(v, "ota/status", m);
		job_free(v);
		set_outcome(v, O_ROLLED_BACK);
		return;
	}
	publish(v, "ota/status", campaign_envelope(v, "ota_installation_complete", NULL));
	publish(v, "ota/status", campaign_envelope(v, "ota_verification_complete", NULL));
	apply_targets(v);
	job_free(v);
	send_vci(v, NULL);
	set_outcome(v, O_COMPLETED);
}

static void downloads_done(vehicle *v)
{
	json_t *imgs = images(v);
	size_t i;
	json_t *im;
	json_t *m = campaign_envelope(v, "ota_download_complete", NULL);
	json_t *list = json_array();
	json_array_foreach(imgs, i, im)
	{
		json_t *x = json_object();
		const char *k[] = {"ecu_id", "sha256", "length"};
		for (size_t j = 0; j < 3; j++)
			if (json_object_get(im, k[j]))
				json_object_set(x, k[j], json_object_get(im, k[j]));
		json_array_append_new(list, x);
	}
	json_object_set_new(m, "images", list);
	publish(v, "ota/status", m);
	if (v->fl->out_of_order) {
		/* the progress that should have come first arrives after the completion */
		json_array_foreach(imgs, i, im)
		{
			json_t *len = json_object_get(im, "length");
			uint64_t l = json_is_integer(len) ? (uint64_t)json_integer_value(len) : 0;
			progress(v, i, 100, l, l);
		}
	}
	installation(v);
}

static void transfer_done(vehicle *v, CURLcode res)
{
	long status = 0;
	curl_easy_getinfo(v->easy, CURLINFO_RESPONSE_CODE, &status);
	curl_multi_remove_handle(v->fl->multi, v->easy);
	curl_easy_cleanup(v->easy);
	v->easy = NULL;
	const char *ecu = image_ecu(v, v->img);
	if (res != CURLE_OK) {
		const char *what =
		    v->too_long ? "more bytes than the metadata's length" : curl_easy_strerror(res);
		logev(v->fl, v, "download_error",
		      json_pack("{s:s,s:s,s:i,s:I,s:i}", "ecu_id", ecu, "error", what,
		                "http_status", (int)status, "bytes", (json_int_t)v->got, "attempt",
		                v->attempt));
		if (v->too_long) {
			download_failed(v, "length_mismatch",
			                "image for %s is longer than %llu bytes", ecu,
			                (unsigned long long)v->expect);
			return;
		}
		if (v->dec_err[0]) {
			download_failed(v, "decrypt_failed", "image for %s: %s", ecu, v->dec_err);
			return;
		}
		bool client_error = res == CURLE_HTTP_RETURNED_ERROR && status >= 400 &&
		                    status < 500 && status != 408 && status != 429;
		if (!client_error && v->attempt < DL_ATTEMPTS) {
			if (res == CURLE_RANGE_ERROR) { /* no resume: start over */
				v->got = 0;
				EVP_DigestInit_ex(v->md, EVP_sha256(), NULL);
				if (v->enc && dec_start(v) != 0) {
					download_failed(v, "internal", "SHA-256 unavailable");
					return;
				}
			}
			v->retry_at = mono_ms() + DL_RETRY_MS;
			return;
		}
		if (res == CURLE_HTTP_RETURNED_ERROR) {
			char code[16];
			snprintf(code, sizeof(code), "http_%ld", status);
			download_failed(v, code, "download of %s: HTTP %ld", ecu, status);
		} else {
			download_failed(v, "transport_error", "download of %s: %s", ecu, what);
		}
		return;
	}
	unsigned char dig[EVP_MAX_MD_SIZE];
	unsigned int dl = 0;
	char hex[2 * EVP_MAX_MD_SIZE + 1];
	EVP_DigestFinal_ex(v->md, dig, &dl);
	for (unsigned i = 0; i < dl; i++)
		snprintf(hex + 2 * i, 3, "%02x", dig[i]);
	hex[2 * dl] = '\0';
	json_t *im = json_array_get(images(v), v->img);
	const char *want = jstr(im, "sha256");
	bool len_ok = !v->expect || v->got == v->expect;
	bool sha_ok = !want || !strcasecmp(want, hex);
	if (v->enc) {
		/* the download against the encryption's hash and length, the decrypted package
		 * against the image's */
		json_t *enc = json_object_get(im, "encryption");
		const char *want_enc = jstr(enc, "sha256");
		json_t *plen = json_object_get(im, "length");
		bool enc_len_ok = len_ok, enc_sha_ok = want_enc && !strcasecmp(want_enc, hex);
		char phex[2 * EVP_MAX_MD_SIZE + 1];
		bool complete = dec_complete(v);
		EVP_DigestFinal_ex(v->pmd, dig, &dl);
		for (unsigned i = 0; i < dl; i++)
			snprintf(phex + 2 * i, 3, "%02x", dig[i]);
		phex[2 * dl] = '\0';
		len_ok = complete && (!json_is_integer(plen) ||
		                      (uint64_t)json_integer_value(plen) == v->plain_got);
		sha_ok = complete && (!want || !strcasecmp(want, phex));
		logev(v->fl, v, "download_done",
		      json_pack("{s:s,s:I,s:s,s:b,s:b,s:i,s:b,s:I,s:s,s:b,s:b}", "ecu_id", ecu,
		                "bytes", (json_int_t)v->plain_got, "sha256", phex, "length_ok",
		                len_ok, "sha256_ok", sha_ok, "http_status", (int)status,
		                "encrypted", 1, "enc_bytes", (json_int_t)v->got, "enc_sha256", hex,
		                "enc_length_ok", enc_len_ok, "enc_sha256_ok", enc_sha_ok));
		if (!enc_len_ok || !enc_sha_ok || !complete) {
			download_failed(v, !enc_len_ok ? "length_mismatch" : "sha256_mismatch",
			                "encrypted image for %s: %llu bytes, SHA-256 %s%s", ecu,
			                (unsigned long long)v->got, hex,
			                complete ? "" : " (the stream ends early)");
			return;
		}
		v->got = v->plain_got; /* progress and mismatch reports count the package */
		v->expect = json_is_integer(plen) ? (uint64_t)json_integer_value(plen) : 0;
		memcpy(hex, phex, sizeof(phex));
	} else {
		logev(v->fl, v, "download_done",
		      json_pack("{s:s,s:I,s:s,s:b,s:b,s:i}", "ecu_id", ecu, "bytes",
		                (json_int_t)v->got, "sha256", hex, "length_ok", len_ok, "sha256_ok",
		                sha_ok, "http_status", (int)status));
	}
	if (!len_ok) {
		download_failed(v, "length_mismatch", "image for %s: %llu bytes, expected %llu",
		                ecu, (unsigned long long)v->got, (unsigned long long)v->expect);
		return;
	}
	if (!sha_ok) {
		download_failed(v, "sha256_mismatch", "image for %s: SHA-256 %s, expected %s", ecu,
		                hex, want);
		return;
	}
	if (!v->fl->out_of_order)
		progress(v, v->img, 100, v->got, v->expect ? v->expect : v->got);
	v->img++;
	start_image(v);
}

/* ---- message handlers -------------------------------------------------------------------- */

static void respond_campaign(vehicle *v, const char *corr, const char *decision, int retry,
                             const char *reason)
{
	json_t *m = campaign_envelope(v, "ota_campaign_response", corr);
	json_object_set_new(m, "decision", json_string(decision));
	if (retry > 0)
		json_object_set_new(m, "retry_after_s", json_integer(retry));
	if (reason)
		json_object_set_new(m, "reason", json_string(reason));
	publish(v, "response", m);
}

static void on_campaign(vehicle *v, json_t *msg, const char *mid)
{
	const char *cid = jstr(msg, "campaign_id");
	if (!cid) {
		logev(v->fl, v, "rejected", jerr("ota_campaign without campaign_id"));
		return;
	}
	bool same = !strcmp(cid, v->campaign_id);
	if (!same) {
		job_free(v);
		snprintf(v->campaign_id, sizeof(v->campaign_id), "%s", cid);
		v->postponed = 0;
		v->out = O_IDLE;
		json_decref(v->targets);
		v->targets = NULL;
	}
	json_t *t = json_object_get(msg, "targets");
	if (json_is_array(t)) {
		json_decref(v->targets);
		v->targets = json_deep_copy(t);
	}
	switch (v->beh.kind) {
	case B_SILENT:
		logev(v->fl, v, "silent", json_pack("{s:s}", "campaign_id", cid));
		set_outcome(v, O_IGNORED);
		return;
	case B_DECLINE:
		respond_campaign(v, mid, "declined", 0, "declined by the driver (pqota-fleet)");
		set_outcome(v, O_DECLINED);
		return;
	case B_POSTPONE:
		if (v->postponed < v->beh.postpone_times) {
			v->postponed++;
			respond_campaign(v, mid, "postponed", v->beh.postpone_s,
			                 "postponed by the driver (pqota-fleet)");
			set_outcome(v, O_POSTPONED);
			return;
		}
		break;
	default:
		break;
	}
	respond_campaign(v, mid, "accepted", 0, NULL);
	if (!same || v->out == O_IDLE || v->out == O_POSTPONED)
		set_outcome(v, O_ACCEPTED);
}

static void on_metadata(vehicle *v, json_t *msg)
{
	const char *cid = jstr(msg, "campaign_id");
	json_t *imgs = json_object_get(msg, "images");
	if (!cid || !json_is_array(imgs)) {
		logev(v->fl, v, "rejected",
		      jerr("ota_campaign_metadata without campaign_id or images array"));
		return;
	}
	if (!strcmp(cid, v->campaign_id) && (v->meta || outcome_terminal(v->out))) {
		logev(
		    v->fl, v, "ignored",
		    json_pack("{s:s,s:s,s:s}", "msg_type", "ota_campaign_metadata", "campaign_id",
		              cid, "reason",
		              v->meta ? "already working on this campaign" : "campaign finished"));
		return;
	}
	if (strcmp(cid, v->campaign_id)) {
		job_free(v);
		snprintf(v->campaign_id, sizeof(v->campaign_id), "%s", cid);
		json_decref(v->targets);
		v->targets = NULL;
	}
	v->meta = json_incref(msg);
	v->img = 0;
	if (v->beh.kind == B_FAIL_DOWNLOAD) {
		download_failed(v, "download_failed", "simulated download failure (fail-download)");
		return;
	}
	set_outcome(v, O_DOWNLOADING);
	start_image(v);
}

static void on_readiness(vehicle *v, json_t *msg, const char *mid)
{
	const char *cid = jstr(msg, "campaign_id");
	json_t *m = envelope(v, "ota_readiness_response", mid);
	json_object_set_new(m, "campaign_id", json_string(cid ? cid : v->campaign_id));
	json_object_set_new(m, "ready", json_true());
	json_object_set_new(m, "checks",
	                    json_pack("[{s:s,s:i,s:b},{s:s,s:b,s:b},{s:s,s:b,s:b},{s:s,s:I,s:b}]",
	                              "name", "battery", "value", 87, "ok", 1, "name", "parked",
	                              "value", 1, "ok", 1, "name", "ignition_off", "value", 1, "ok",
	                              1, "name", "storage", "value",
	                              (json_int_t)8 * 1024 * 1024 * 1024, "ok", 1));
	publish(v, "response", m);
}

static void on_cancel(vehicle *v, json_t *msg, const char *mid)
{
	const char *cid = jstr(msg, "campaign_id");
	json_t *m = envelope(v, "command_ack", mid);
	if (cid)
		json_object_set_new(m, "campaign_id", json_string(cid));
	publish(v, "response", m);
	if ((!cid || !strcmp(cid, v->campaign_id)) && v->campaign_id[0] &&
	    !outcome_terminal(v->out)) {
		job_free(v);
		set_outcome(v, O_CANCELLED);
	}
}

static void on_message(struct mosquitto *mosq, void *ud, const struct mosquitto_message *msg)
{
	(void)mosq;
	vehicle *v = ud;
	json_error_t je;
	json_t *j =
	    json_loadb(msg->payload, (size_t)(msg->payloadlen > 0 ? msg->payloadlen : 0), 0, &je);
	if (!json_is_object(j)) {
		logev(v->fl, v, "rejected",
		      json_pack("{s:s,s:s}", "topic", msg->topic, "error", "not a JSON object"));
		json_decref(j);
		return;
	}
	const char *type = jstr(j, "msg_type"), *mid = jstr(j, "message_id");
	const char *vin = jstr(j, "vin");
	json_t *f = json_pack("{s:s}", "topic", msg->topic);
	const char *k[] = {"msg_type", "message_id", "correlation_id", "campaign_id"};
	for (size_t i = 0; i < 4; i++)
		if (json_object_get(j, k[i]))
			json_object_set(f, k[i], json_object_get(j, k[i]));
	if (msg->retain)
		json_object_set_new(f, "retained", json_true());
	logev(v->fl, v, "received", f);
	bool broadcast = !strncmp(msg->topic, "oem/broadcast/", 14);
	if (!type) {
		logev(v->fl, v, "rejected",
		      json_pack("{s:s,s:s}", "topic", msg->topic, "error", "no msg_type"));
	} else if (broadcast) {
		/* release announcements are only logged */
	} else if (!vin || strcmp(vin, v->vin)) {
		logev(v->fl, v, "rejected",
		      json_pack("{s:s,s:s,s:s}", "topic", msg->topic, "msg_type", type, "error",
		                vin ? "vin is not this vehicle's" : "no vin"));
	} else if (!strcmp(type, "request_vci")) {
		send_vci(v, mid);
	} else if (!strcmp(type, "request_ota_readiness")) {
		on_readiness(v, j, mid);
	} else if (!strcmp(type, "cancel")) {
		on_cancel(v, j, mid);
	} else if (!strcmp(type, "ota_campaign")) {
		on_campaign(v, j, mid);
	} else if (!strcmp(type, "ota_campaign_metadata")) {
		on_metadata(v, j);
	} else {
		logev(v->fl, v, "ignored",
		      json_pack("{s:s,s:s}", "msg_type", type, "reason", "unknown msg_type"));
	}
	json_decref(j);
}

/* ---- connections ------------------------------------------------------------------------- */

static void schedule_connect(vehicle *v)
{
	v->backoff_ms = v->backoff_ms ? v->backoff_ms * 2 : BACKOFF_MIN_MS;
	if (v->backoff_ms > BACKOFF_MAX_MS)
		v->backoff_ms = BACKOFF_MAX_MS;
	v->connect_at = mono_ms() + v->backoff_ms;
}

static void on_connect(struct mosquitto *mosq, void *ud, int rc)
{
	vehicle *v = ud;
	if (rc != 0) {
		snprintf(v->fl->last_error, sizeof(v->fl->last_error), "%s: broker refused: %s",
		         v->vin, mosquitto_connack_string(rc));
		logev(v->fl, v, "connect_refused",
		      json_pack("{s:s,s:i}", "error", mosquitto_connack_string(rc), "rc", rc));
		return;
	}
	v->connected = true;
	v->ever = true;
	v->backoff_ms = 0;
	logev(v->fl, v, "connected", json_pack("{s:i}", "attempts", (int)v->attempts));
	char t[128];
	const char *subs[] = {"command", "ota/campaign", "ota/metadata"};
	const int qos[] = {1, 2, 2};
	for (int i = 0; i < 3; i++) {
		snprintf(t, sizeof(t), "oem/%s/%s", v->vin, subs[i]);
		mosquitto_subscribe(mosq, NULL, t, qos[i]);
	}
	mosquitto_subscribe(mosq, NULL, "oem/broadcast/releases", 1);
	publish_raw(v, "presence", "online", true,
	            json_pack("{s:s,s:b}", "payload", "online", "retain", 1));
	if (!v->wake_sent) {
		v->wake_sent = true;
		json_t *m = envelope(v, "vehicle_wake_up", NULL);
		json_object_set_new(m, "boot_seq", json_integer(v->fl->boot_seq));
		json_object_set_new(m, "vmg_info",
		                    json_pack("{s:s,s:s,s:s}", "sw_version", "1.0.0", "hw_version",
		                              "VMG-HW-1", "simulator", "pqota-fleet"));
		publish(v, "wake_up", m);
	}
}

static void on_disconnect(struct mosquitto *mosq, void *ud, int rc)
{
	(void)mosq;
	vehicle *v = ud;
	bool was = v->connected;
	v->connected = false;
	v->broken = true; /* reported here; the loop's error code for it is not logged again */
	if (was || rc)
		logev(v->fl, v, "disconnected",
		      json_pack("{s:i,s:s}", "rc", rc, "reason",
		                rc ? mosquitto_strerror(rc) : "client disconnect"));
	if (!g_stop)
		schedule_connect(v);
}

static void on_publish(struct mosquitto *mosq, void *ud, int mid)
{
	(void)mosq;
	(void)mid;
	vehicle *v = ud;
	if (v->unacked > 0)
		v->unacked--;
}

static void on_log(struct mosquitto *mosq, void *ud, int level, const char *str)
{
	(void)mosq;
	vehicle *v = ud;
	if (level & (MOSQ_LOG_ERR | MOSQ_LOG_WARNING)) {
		snprintf(v->fl->last_error, sizeof(v->fl->last_error), "%s: %s", v->vin, str);
		logev(v->fl, v, "mqtt_log", json_pack("{s:s}", "message", str));
	}
}

static void try_connect(vehicle *v)
{
	fleet *fl = v->fl;
	v->attempts++;
	v->broken = false;
	v->connect_at = 0;
	v->connect_started = mono_ms();
	errno = 0;
	int rc = mosquitto_connect_async(v->mosq, fl->host, fl->port, KEEPALIVE_S);
	if (rc != MOSQ_ERR_SUCCESS) {
		const char *why =
		    rc == MOSQ_ERR_ERRNO && errno ? strerror(errno) : mosquitto_strerror(rc);
		snprintf(fl->last_error, sizeof(fl->last_error), "%s: connecting to %s:%d: %s",
		         v->vin, fl->host, fl->port, why);
		logev(fl, v, "connect_failed",
		      json_pack("{s:s,s:i}", "error", why, "attempt", (int)v->attempts));
		v->broken = true;
		schedule_connect(v);
	}
}

static int ssl_error(char *buf, size_t len)
{
	unsigned long e = ERR_get_error();
	if (e)
		ERR_error_string_n(e, buf, len);
	else
		snprintf(buf, len, "unknown error");
	ERR_clear_error();
	return -1;
}

static int make_ctx(fleet *fl, vehicle *v, char *err, size_t elen)
{
	SSL_CTX *c = SSL_CTX_new(TLS_client_method());
	if (!c)
		return ssl_error(err, elen);
	v->ctx = c;
	char why[256];
	SSL_CTX_set_min_proto_version(c, TLS1_3_VERSION);
	if (fl->groups && SSL_CTX_set1_groups_list(c, fl->groups) != 1) {
		ssl_error(why, sizeof(why));
		snprintf(err, elen, "--groups %s: %s", fl->groups, why);
		return -1;
	}
	if (SSL_CTX_load_verify_locations(c, fl->ca, NULL) != 1) {
		ssl_error(why, sizeof(why));
		snprintf(err, elen, "%s: %s", fl->ca, why);
		return -1;
	}
	if (SSL_CTX_use_certificate_chain_file(c, v->cert) != 1) {
		ssl_error(why, sizeof(why));
		snprintf(err, elen, "%s: %s", v->cert, why);
		return -1;
	}
	if (SSL_CTX_use_PrivateKey_file(c, v->key, SSL_FILETYPE_PEM) != 1 ||
	    SSL_CTX_check_private_key(c) != 1) {
		ssl_error(why, sizeof(why));
		snprintf(err, elen, "%s: %s", v->key, why);
		return -1;
	}
	SSL_CTX_set_verify(c, SSL_VERIFY_PEER, NULL);
	X509_VERIFY_PARAM *p = SSL_CTX_get0_param(c);
	unsigned char addr[16];
	if (inet_pton(AF_INET, fl->host, addr) == 1 || inet_pton(AF_INET6, fl->host, addr) == 1)
		X509_VERIFY_PARAM_set1_ip_asc(p, fl->host);
	else
		X509_VERIFY_PARAM_set1_host(p, fl->host, 0);
	return 0;
}

static int vehicle_setup(fleet *fl, vehicle *v, char *err, size_t elen)
{
	snprintf(v->cert, sizeof(v->cert), "%s/vehicles/%s/client.crt", fl->pki, v->vin);
	snprintf(v->key, sizeof(v->key), "%s/vehicles/%s/client.key", fl->pki, v->vin);
	if (access(v->cert, R_OK) || access(v->key, R_OK)) {
		snprintf(err, elen, "no readable %s (make it with: pqota keys vehicle %s --dir %s)",
		         access(v->cert, R_OK) ? v->cert : v->key, v->vin, fl->pki);
		return -1;
	}
	if (make_ctx(fl, v, err, elen))
		return -1;
	v->mosq = mosquitto_new(v->vin, true, v);
	if (!v->mosq) {
		snprintf(err, elen, "mosquitto_new: %s", strerror(errno));
		return -1;
	}
	mosquitto_int_option(v->mosq, MOSQ_OPT_SSL_CTX_WITH_DEFAULTS, 0);
	int rc = mosquitto_void_option(v->mosq, MOSQ_OPT_SSL_CTX, v->ctx);
	if (rc == MOSQ_ERR_SUCCESS) {
		char t[128];
		snprintf(t, sizeof(t), "oem/%s/presence", v->vin);
		rc = mosquitto_will_set(v->mosq, t, 7, "offline", 1, true);
	}
	if (rc != MOSQ_ERR_SUCCESS) {
		snprintf(err, elen, "MQTT client options: %s", mosquitto_strerror(rc));
		return -1;
	}
	mosquitto_connect_callback_set(v->mosq, on_connect);
	mosquitto_disconnect_callback_set(v->mosq, on_disconnect);
	mosquitto_message_callback_set(v->mosq, on_message);
	mosquitto_log_callback_set(v->mosq, on_log);
	mosquitto_publish_callback_set(v->mosq, on_publish);
	return 0;
}

/* ---- curl multi (socket interface) ------------------------------------------------------- */

static int curl_sock_cb(CURL *e, curl_socket_t s, int what, void *ud, void *sp)
{
	(void)e;
	(void)sp;
	fleet *fl = ud;
	size_t i;
	for (i = 0; i < fl->ncs; i++)
		if (fl->cs[i].fd == s)
			break;
	if (what == CURL_POLL_REMOVE) {
		if (i < fl->ncs)
			fl->cs[i] = fl->cs[--fl->ncs];
		return 0;
	}
	if (i == fl->ncs) {
		if (fl->ncs == fl->cs_cap) {
			size_t cap = fl->cs_cap ? fl->cs_cap * 2 : 16;
			curl_sock *n = realloc(fl->cs, cap * sizeof(*n));
			if (!n)
				return -1;
			fl->cs = n;
			fl->cs_cap = cap;
		}
		fl->ncs++;
	}
	fl->cs[i].fd = s;
	fl->cs[i].what = what;
	return 0;
}

static int curl_timer_cb(CURLM *m, long timeout_ms, void *ud)
{
	(void)m;
	fleet *fl = ud;
	fl->curl_deadline = timeout_ms < 0 ? -1 : mono_ms() + timeout_ms;
	return 0;
}

static void curl_finished(fleet *fl)
{
	CURLMsg *m;
	int left;
	while ((m = curl_multi_info_read(fl->multi, &left))) {
		if (m->msg != CURLMSG_DONE)
			continue;
		vehicle *v = NULL;
		curl_easy_getinfo(m->easy_handle, CURLINFO_PRIVATE, (char **)&v);
		if (v && v->easy == m->easy_handle)
			transfer_done(v, m->data.result);
	}
}

/* ---- options ----------------------------------------------------------------------------- */

static void usage(FILE *f)
{
	fprintf(
	    f,
	    "usage: pqota-fleet --pki DIR --broker HOST:PORT (--vins VIN1,VIN2,... | --vin-file "
	    "F)\n"
	    "                   [options]\n"
	    "\n"
	    "Simulates a fleet of test vehicles in one process. Each vehicle connects to the MQTT\n"
	    "broker with its own certificate (DIR/vehicles/VIN/client.{crt,key}, CA "
	    "DIR/ca/ca.crt;\n"
	    "client id = VIN, clean session, TLS 1.3), publishes retained 'online' on\n"
	    "oem/VIN/presence (last will: retained 'offline') and its vehicle_wake_up, and "
	    "answers\n"
	    "the server per docs/protocol.md: request_vci, ota_campaign, request_ota_readiness,\n"
	    "ota_campaign_metadata (downloads over HTTPS with the vehicle's certificate, length "
	    "and\n"
	    "SHA-256 checked, then installation and a new vci_report) and cancel.\n"
	    "\n"
	    "  --pki DIR              PKI made by 'pqota keys init' and 'pqota keys vehicle'\n"
	    "  --broker HOST:PORT     the MQTT broker (TLS); [IPv6]:PORT accepted\n"
	    "  --server URL           base of relative image URLs (https://HOST:PORT); default:\n"
	    "                         scheme, host and port of the metadata's image_repository\n"
	    "  --vins LIST            comma-separated VINs\n"
	    "  --vin-file F           one VIN per line ('#' comments, blank lines ignored)\n"
	    "  --behavior B           how every vehicle answers a campaign (default accept):\n"
	    "                           accept          accept, download, install, report\n"
	    "                           decline         answer declined\n"
	    "                           postpone:S[:N]  answer postponed with retry_after_s = S\n"
	    "                                           to the first N offers (default 1) of a\n"
	    "                                           campaign, then accept\n"
	    "                           silent          never answer ota_campaign\n"
	    "                           fail-download   ota_download_failed on the metadata\n"
	    "                           fail-install    download, then ota_error\n"
	    "                           rollback        download, then ota_rollback\n"
	    "  --behavior-for VIN=B   per-vehicle override (repeatable)\n"
	    "  --ecus N               default inventory: ECU_001..ECU_N, hardware ids\n"
	    "                         HW-<zone>-<nnn> (20 per zone), APP/BOOT/CAL 1.0.0 (default "
	    "3)\n"
	    "  --vci-template F.json  inventory from a file: {\"ecus\":[...], ...} or [...]\n"
	    "  --duplicate            publish every status message and response twice (same\n"
	    "                         message_id)\n"
	    "  --out-of-order         publish ota_download_complete before the progress messages\n"
	    "  --boot-seq N           boot_seq of the wake-up (default 1)\n"
	    "  --groups LIST          TLS key-exchange groups (OpenSSL list, e.g. "
	    "X25519MLKEM768);\n"
	    "                         default: OpenSSL's (X25519MLKEM768 first on 3.5)\n"
	    "  --duration S           stop after S seconds\n"
	    "  --until-done           stop when every vehicle's campaign reached a terminal "
	    "outcome\n"
	    "                         (completed, declined, failed, rolled_back, cancelled,\n"
	    "                         ignored); with --duration, whichever comes first\n"
	    "  --connect-timeout S    give up (exit 2) when no vehicle could connect within S\n"
	    "                         seconds of the start (default 10)\n"
	    "  --log FILE             JSON-lines event log (one object per event: ts, elapsed_ms,\n"
	    "                         vin, event, ...)\n"
	    "  --help                 this text\n"
	    "\n"
	    "Without --duration or --until-done it runs until SIGINT/SIGTERM. On exit each "
	    "vehicle\n"
	    "publishes retained 'offline', and stdout gets one line per outcome:\n"
	    "'outcome NAME COUNT VIN,...'. Exit status: 0; 2 setup error (PKI, log file, broker\n"
	    "unreachable); 64 usage error.\n");
}

static int parse_behavior(const char *s, behavior *b)
{
	memset(b, 0, sizeof(*b));
	if (!strcmp(s, "accept"))
		b->kind = B_ACCEPT;
	else if (!strcmp(s, "decline"))
		b->kind = B_DECLINE;
	else if (!strcmp(s, "silent"))
		b->kind = B_SILENT;
	else if (!strcmp(s, "fail-download"))
		b->kind = B_FAIL_DOWNLOAD;
	else if (!strcmp(s, "fail-install"))
		b->kind = B_FAIL_INSTALL;
	else if (!strcmp(s, "rollback"))
		b->kind = B_ROLLBACK;
	else if (!strncmp(s, "postpone:", 9)) {
		char *end;
		long sec = strtol(s + 9, &end, 10);
		long times = 1;
		if (end == s + 9 || sec < 0 || sec > 86400 * 30)
			return -1;
		if (*end == ':') {
			char *e2;
			times = strtol(end + 1, &e2, 10);
			if (e2 == end + 1 || *e2 || times < 0 || times > 1000000)
				return -1;
		} else if (*end) {
			return -1;
		}
		b->kind = B_POSTPONE;
		b->postpone_s = (int)sec;
		b->postpone_times = (int)times;
	} else
		return -1;
	return 0;
}

static bool vin_ok(const char *s)
{
	size_t n = strlen(s);
	if (n == 0 || n > VIN_MAX)
		return false;
	for (size_t i = 0; i < n; i++) {
		char c = s[i];
		if (!((c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') ||
		      c == '_' || c == '-'))
			return false;
	}
	return true;
}

static int add_vin(fleet *fl, const char *s)
{
	if (!vin_ok(s)) {
		fprintf(stderr, "pqota-fleet: '%s' is not a VIN (1..32 of A-Z a-z 0-9 _ -)\n", s);
		return -1;
	}
	for (size_t i = 0; i < fl->n; i++)
		if (!strcmp(fl->v[i].vin, s)) {
			fprintf(stderr, "pqota-fleet: VIN %s given twice\n", s);
			return -1;
		}
	vehicle *n = realloc(fl->v, (fl->n + 1) * sizeof(*n));
	if (!n)
		return -1;
	fl->v = n;
	memset(&fl->v[fl->n], 0, sizeof(vehicle));
	snprintf(fl->v[fl->n].vin, sizeof(fl->v[fl->n].vin), "%s", s);
	fl->v[fl->n].fl = fl;
	fl->n++;
	return 0;
}

static int parse_broker(fleet *fl, const char *s)
{
	const char *colon;
	if (s[0] == '[') {
		const char *e = strchr(s, ']');
		if (!e || e[1] != ':')
			return -1;
		snprintf(fl->host, sizeof(fl->host), "%.*s", (int)(e - s - 1), s + 1);
		colon = e + 1;
	} else {
		colon = strrchr(s, ':');
		if (!colon || colon == s)
			return -1;
		snprintf(fl->host, sizeof(fl->host), "%.*s", (int)(colon - s), s);
	}
	char *end;
	long p = strtol(colon + 1, &end, 10);
	if (*end || p < 1 || p > 65535)
		return -1;
	fl->port = (int)p;
	return 0;
}

static int parse_seconds(const char *s, double *out)
{
	char *end;
	double d = strtod(s, &end);
	if (end == s || *end || d < 0 || d > 1e7)
		return -1;
	*out = d;
	return 0;
}

typedef struct {
	char vin[VIN_MAX + 1];
	behavior b;
} override;

/* ---- main -------------------------------------------------------------------------------- */

static void print_summary(fleet *fl)
{
	size_t counts[O_COUNT] = {0};
	size_t connected = 0;
	for (size_t i = 0; i < fl->n; i++) {
		counts[fl->v[i].out]++;
		if (fl->v[i].ever)
			connected++;
	}
	json_t *f = json_object();
	printf("pqota-fleet: %zu vehicles, %zu connected, %.1f s\n", fl->n, connected,
	       (double)(mono_ms() - fl->start_ms) / 1000.0);
	for (int o = 0; o < O_COUNT; o++) {
		if (!counts[o])
			continue;
		printf("outcome %s %zu ", outcome_names[o], counts[o]);
		json_t *vins = json_array();
		bool first = true;
		for (size_t i = 0; i < fl->n; i++) {
			if ((int)fl->v[i].out != o)
				continue;
			printf("%s%s", first ? "" : ",", fl->v[i].vin);
			json_array_append_new(vins, json_string(fl->v[i].vin));
			first = false;
		}
		printf("\n");
		json_object_set_new(f, outcome_names[o], vins);
	}
	fflush(stdout);
	logev(fl, NULL, "summary",
	      json_pack("{s:o,s:I,s:I}", "outcomes", f, "vehicles", (json_int_t)fl->n, "connected",
	                (json_int_t)connected));
}

static bool all_done(fleet *fl)
{
	for (size_t i = 0; i < fl->n; i++)
		if (!outcome_terminal(fl->v[i].out))
			return false;
	return fl->n > 0;
}

/* One pass of the event loop: poll the MQTT and curl sockets for up to `wait_ms`. */
static void loop_once(fleet *fl, int wait_ms, struct pollfd *pfd, vehicle **owner)
{
	int64_t now = mono_ms();
	size_t n = 0;
	for (size_t i = 0; i < fl->n; i++) {
		vehicle *v = &fl->v[i];
		int s = mosquitto_socket(v->mosq);
		if (s < 0 || v->broken)
			continue;
		pfd[n].fd = s;
		pfd[n].events = (short)(POLLIN | (mosquitto_want_write(v->mosq) ? POLLOUT : 0));
		pfd[n].revents = 0;
		owner[n++] = v;
	}
	size_t nm = n;
	for (size_t i = 0; i < fl->ncs; i++) {
		pfd[n].fd = fl->cs[i].fd;
		pfd[n].events = (short)(((fl->cs[i].what & CURL_POLL_IN) ? POLLIN : 0) |
		                        ((fl->cs[i].what & CURL_POLL_OUT) ? POLLOUT : 0));
		pfd[n].revents = 0;
		owner[n++] = NULL;
	}
	int timeout = wait_ms;
	if (fl->curl_deadline >= 0) {
		int64_t d = fl->curl_deadline - now;
		if (d < timeout)
			timeout = d < 0 ? 0 : (int)d;
	}
	int r = poll(pfd, (nfds_t)n, timeout);
	if (r < 0 && errno != EINTR)
		return;
	for (size_t i = 0; i < nm; i++) {
		vehicle *v = owner[i];
		/* sockets still in the TLS handshake are serviced every pass (a failed non-blocking
		 * connect may only raise POLLERR) */
		if (!pfd[i].revents && v->connected)
			continue;
		if (!v->connected && ((pfd[i].revents & (POLLERR | POLLHUP)) ||
		                      now - v->connect_started > CONNECT_TIMEOUT_MS)) {
			/* the TCP connection or the TLS handshake failed (or hangs) */
			int soerr = 0;
			socklen_t sl = sizeof(soerr);
			const char *why;
			if (!getsockopt(pfd[i].fd, SOL_SOCKET, SO_ERROR, &soerr, &sl) && soerr)
				why = strerror(soerr);
			else if (pfd[i].revents & (POLLERR | POLLHUP))
				why = "connection refused or closed during the TLS handshake";
			else
				why = "no CONNACK within 10 s";
			snprintf(fl->last_error, sizeof(fl->last_error),
			         "%s: connecting to %s:%d: %s", v->vin, fl->host, fl->port, why);
			logev(fl, v, "connect_failed",
			      json_pack("{s:s,s:i}", "error", why, "attempt", (int)v->attempts));
			v->broken = true;
			schedule_connect(v);
			continue;
		}
		int rc = mosquitto_loop_read(v->mosq, 1);
		if (rc == MOSQ_ERR_SUCCESS && mosquitto_socket(v->mosq) >= 0 &&
		    mosquitto_want_write(v->mosq))
			rc = mosquitto_loop_write(v->mosq, 1);
		if (rc != MOSQ_ERR_SUCCESS && rc != MOSQ_ERR_NO_CONN) {
			if (!v->broken) {
				snprintf(fl->last_error, sizeof(fl->last_error), "%s: %s%s%s",
				         v->vin, mosquitto_strerror(rc),
				         rc == MOSQ_ERR_ERRNO && errno ? ": " : "",
				         rc == MOSQ_ERR_ERRNO && errno ? strerror(errno) : "");
				if (!v->connected)
					logev(fl, v, "connect_failed",
					      json_pack("{s:s,s:i}", "error", fl->last_error,
					                "attempt", (int)v->attempts));
			}
			v->connected = false;
			v->broken = true;
			if (!v->connect_at)
				schedule_connect(v);
		}
	}
	for (size_t i = nm; i < n; i++) {
		if (!pfd[i].revents)
			continue;
		int ev = ((pfd[i].revents & POLLIN) ? CURL_CSELECT_IN : 0) |
		         ((pfd[i].revents & POLLOUT) ? CURL_CSELECT_OUT : 0) |
		         ((pfd[i].revents & (POLLERR | POLLHUP)) ? CURL_CSELECT_ERR : 0);
		int running;
		curl_multi_socket_action(fl->multi, pfd[i].fd, ev, &running);
	}
	if (fl->curl_deadline >= 0 && mono_ms() >= fl->curl_deadline) {
		int running;
		fl->curl_deadline = -1;
		curl_multi_socket_action(fl->multi, CURL_SOCKET_TIMEOUT, 0, &running);
	}
	curl_finished(fl);
	now = mono_ms();
	for (size_t i = 0; i < fl->n; i++) {
		vehicle *v = &fl->v[i];
		if (!g_stop && v->connect_at && now >= v->connect_at && !v->connected)
			try_connect(v);
		if (v->retry_at && now >= v->retry_at && v->meta && !v->easy) {
			v->retry_at = 0;
			start_transfer(v);
		}
		if (v->connected && mosquitto_socket(v->mosq) >= 0)
			mosquitto_loop_misc(v->mosq);
	}
}

static int setup_fail(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
static int setup_fail(const char *fmt, ...)
{
	va_list ap;
	fprintf(stderr, "pqota-fleet: ");
	va_start(ap, fmt);
	vfprintf(stderr, fmt, ap);
	va_end(ap);
	fprintf(stderr, "\n");
	return EXIT_SETUP;
}

static int read_vin_file(fleet *fl, const char *path)
{
	FILE *f = fopen(path, "r");
	if (!f) {
		fprintf(stderr, "pqota-fleet: --vin-file %s: %s\n", path, strerror(errno));
		return -1;
	}
	char line[256];
	int rc = 0;
	while (rc == 0 && fgets(line, sizeof(line), f)) {
		char *p = line;
		while (*p == ' ' || *p == '\t')
			p++;
		size_t k = strcspn(p, " \t\r\n#");
		p[k] = '\0';
		if (*p)
			rc = add_vin(fl, p);
	}
	fclose(f);
	return rc;
}

static json_t *load_template(const char *path, json_t **extra)
{
	json_error_t je;
	json_t *t = json_load_file(path, 0, &je);
	if (!t) {
		fprintf(stderr, "pqota-fleet: --vci-template %s: %s (line %d)\n", path, je.text,
		        je.line);
		return NULL;
	}
	json_t *ecus;
	*extra = json_object();
	if (json_is_array(t)) {
		ecus = json_incref(t);
	} else if (json_is_object(t) && json_is_array(json_object_get(t, "ecus"))) {
		ecus = json_incref(json_object_get(t, "ecus"));
		json_object_update(*extra, t);
		const char *drop[] = {"ecus",      "msg_type", "message_id",
		                      "timestamp", "vin",      "correlation_id"};
		for (size_t i = 0; i < sizeof(drop) / sizeof(drop[0]); i++)
			json_object_del(*extra, drop[i]);
	} else {
		fprintf(stderr,
		        "pqota-fleet: --vci-template %s: neither an array of ECUs nor an "
		        "object with an \"ecus\" array\n",
		        path);
		json_decref(t);
		json_decref(*extra);
		return NULL;
	}
	json_decref(t);
	size_t i;
	json_t *e;
	json_array_foreach(ecus, i, e)
	{
		if (!json_is_object(e) || !jstr(e, "ecu_id")) {
			fprintf(stderr, "pqota-fleet: --vci-template %s: ecus[%zu] has no ecu_id\n",
			        path, i);
			json_decref(ecus);
			json_decref(*extra);
			return NULL;
		}
	}
	return ecus;
}

int main(int argc, char **argv)
{
	/* static: what an early setup error returns with stays reachable (no leak reports) */
	static fleet fl;
	memset(&fl, 0, sizeof(fl));
	fl.boot_seq = 1;
	fl.connect_timeout_s = 10;
	fl.curl_deadline = -1;
	behavior def = {B_ACCEPT, 0, 0};
	override *ovr = NULL;
	size_t novr = 0;
	const char *vins = NULL, *vin_file = NULL, *tmpl = NULL, *logfile = NULL, *broker = NULL;
	long ecus = 3;
	enum {
		O_PKI = 256,
		O_BROKER,
		O_SERVER,
		O_VINS,
		O_VIN_FILE,
		O_BEHAVIOR,
		O_BEHAVIOR_FOR,
		O_ECUS,
		O_TEMPLATE,
		O_DUPLICATE,
		O_OOO,
		O_BOOT_SEQ,
		O_DURATION,
		O_UNTIL_DONE,
		O_LOG,
		O_GROUPS,
		O_CONNECT_TIMEOUT,
		O_HELP
	};
	static const struct option opts[] = {
	    {"pki", required_argument, NULL, O_PKI},
	    {"broker", required_argument, NULL, O_BROKER},
	    {"server", required_argument, NULL, O_SERVER},
	    {"vins", required_argument, NULL, O_VINS},
	    {"vin-file", required_argument, NULL, O_VIN_FILE},
	    {"behavior", required_argument, NULL, O_BEHAVIOR},
	    {"behavior-for", required_argument, NULL, O_BEHAVIOR_FOR},
	    {"ecus", required_argument, NULL, O_ECUS},
	    {"vci-template", required_argument, NULL, O_TEMPLATE},
	    {"duplicate", no_argument, NULL, O_DUPLICATE},
	    {"out-of-order", no_argument, NULL, O_OOO},
	    {"boot-seq", required_argument, NULL, O_BOOT_SEQ},
	    {"duration", required_argument, NULL, O_DURATION},
	    {"until-done", no_argument, NULL, O_UNTIL_DONE},
	    {"log", required_argument, NULL, O_LOG},
	    {"groups", required_argument, NULL, O_GROUPS},
	    {"connect-timeout", required_argument, NULL, O_CONNECT_TIMEOUT},
	    {"help", no_argument, NULL, O_HELP},
	    {NULL, 0, NULL, 0},
	};
	int c;
	char *end;
	while ((c = getopt_long(argc, argv, "h", opts, NULL)) != -1) {
		switch (c) {
		case O_PKI:
			fl.pki = optarg;
			break;
		case O_BROKER:
			broker = optarg;
			break;
		case O_SERVER:
			fl.server = optarg;
			break;
		case O_VINS:
			vins = optarg;
			break;
		case O_VIN_FILE:
			vin_file = optarg;
			break;
		case O_BEHAVIOR:
			if (parse_behavior(optarg, &def)) {
				fprintf(stderr, "pqota-fleet: --behavior: unknown behavior '%s'\n",
				        optarg);
				return EXIT_USAGE;
			}
			break;
		case O_BEHAVIOR_FOR: {
			const char *eq = strchr(optarg, '=');
			override o;
			if (!eq || eq == optarg || (size_t)(eq - optarg) > VIN_MAX ||
			    parse_behavior(eq + 1, &o.b)) {
				fprintf(stderr,
				        "pqota-fleet: --behavior-for: expected VIN=BEHAVIOR, got "
				        "'%s'\n",
				        optarg);
				return EXIT_USAGE;
			}
			snprintf(o.vin, sizeof(o.vin), "%.*s", (int)(eq - optarg), optarg);
			override *n = realloc(ovr, (novr + 1) * sizeof(*n));
			if (!n)
				return EXIT_SETUP;
			ovr = n;
			ovr[novr++] = o;
			break;
		}
		case O_ECUS:
			ecus = strtol(optarg, &end, 10);
			if (*end || ecus < 1 || ecus > 1024) {
				fprintf(stderr, "pqota-fleet: --ecus: expected 1..1024\n");
				return EXIT_USAGE;
			}
			break;
		case O_TEMPLATE:
			tmpl = optarg;
			break;
		case O_DUPLICATE:
			fl.duplicate = true;
			break;
		case O_OOO:
			fl.out_of_order = true;
			break;
		case O_BOOT_SEQ:
			fl.boot_seq = strtol(optarg, &end, 10);
			if (*end || fl.boot_seq < 0) {
				fprintf(stderr,
				        "pqota-fleet: --boot-seq: expected an integer >= 0\n");
				return EXIT_USAGE;
			}
			break;
		case O_DURATION:
			if (parse_seconds(optarg, &fl.duration_s) || fl.duration_s <= 0) {
				fprintf(stderr, "pqota-fleet: --duration: expected seconds > 0\n");
				return EXIT_USAGE;
			}
			break;
		case O_UNTIL_DONE:
			fl.until_done = true;
			break;
		case O_LOG:
			logfile = optarg;
			break;
		case O_GROUPS:
			fl.groups = optarg;
			break;
		case O_CONNECT_TIMEOUT:
			if (parse_seconds(optarg, &fl.connect_timeout_s)) {
				fprintf(stderr,
				        "pqota-fleet: --connect-timeout: expected seconds\n");
				return EXIT_USAGE;
			}
			break;
		case O_HELP:
		case 'h':
			usage(stdout);
			return 0;
		default:
			usage(stderr);
			return EXIT_USAGE;
		}
	}
	if (optind < argc) {
		fprintf(stderr, "pqota-fleet: unexpected argument '%s'\n", argv[optind]);
		return EXIT_USAGE;
	}
	if (!fl.pki || !broker || (!vins && !vin_file)) {
		fprintf(stderr,
		        "pqota-fleet: --pki, --broker and --vins or --vin-file are required "
		        "(--help)\n");
		return EXIT_USAGE;
	}
	if (parse_broker(&fl, broker)) {
		fprintf(stderr, "pqota-fleet: --broker: expected HOST:PORT, got '%s'\n", broker);
		return EXIT_USAGE;
	}
	if (fl.server && strncmp(fl.server, "https://", 8) && strncmp(fl.server, "http://", 7)) {
		fprintf(stderr, "pqota-fleet: --server: expected https://HOST:PORT\n");
		return EXIT_USAGE;
	}
	if (vins) {
		char *copy = strdup(vins), *save = NULL;
		for (char *t = strtok_r(copy, ",", &save); t; t = strtok_r(NULL, ",", &save))
			if (add_vin(&fl, t)) {
				free(copy);
				return EXIT_USAGE;
			}
		free(copy);
	}
	if (vin_file && read_vin_file(&fl, vin_file))
		return EXIT_USAGE;
	if (fl.n == 0) {
		fprintf(stderr, "pqota-fleet: no VINs given\n");
		return EXIT_USAGE;
	}
	for (size_t i = 0; i < novr; i++) {
		size_t k;
		for (k = 0; k < fl.n; k++)
			if (!strcmp(fl.v[k].vin, ovr[i].vin))
				break;
		if (k == fl.n) {
			fprintf(stderr, "pqota-fleet: --behavior-for: %s is not in the fleet\n",
			        ovr[i].vin);
			return EXIT_USAGE;
		}
	}

	/* setup */
	snprintf(fl.ca, sizeof(fl.ca), "%s/ca/ca.crt", fl.pki);
	if (access(fl.ca, R_OK))
		return setup_fail("--pki %s: no readable %s (make a PKI with: pqota keys init DIR)",
		                  fl.pki, fl.ca);
	json_t *tecus = NULL, *textra = NULL;
	if (tmpl && !(tecus = load_template(tmpl, &textra)))
		return EXIT_SETUP;
	if (logfile) {
		fl.log = fopen(logfile, "a");
		if (!fl.log)
			return setup_fail("--log %s: %s", logfile, strerror(errno));
	}
	signal(SIGPIPE, SIG_IGN);
	signal(SIGINT, on_signal);
	signal(SIGTERM, on_signal);
	mosquitto_lib_init();
	if (curl_global_init(CURL_GLOBAL_DEFAULT) != CURLE_OK)
		return setup_fail("curl_global_init failed");
	fl.multi = curl_multi_init();
	curl_multi_setopt(fl.multi, CURLMOPT_SOCKETFUNCTION, curl_sock_cb);
	curl_multi_setopt(fl.multi, CURLMOPT_SOCKETDATA, &fl);
	curl_multi_setopt(fl.multi, CURLMOPT_TIMERFUNCTION, curl_timer_cb);
	curl_multi_setopt(fl.multi, CURLMOPT_TIMERDATA, &fl);
	fl.start_ms = mono_ms();
	for (size_t i = 0; i < fl.n; i++) {
		vehicle *v = &fl.v[i];
		v->beh = def;
		for (size_t k = 0; k < novr; k++)
			if (!strcmp(ovr[k].vin, v->vin))
				v->beh = ovr[k].b;
		char err[ERR_MAX];
		if (vehicle_setup(&fl, v, err, sizeof(err)))
			return setup_fail("vehicle %s: %s", v->vin, err);
		if (tecus) {
			v->ecus = json_deep_copy(tecus);
			v->extra = json_deep_copy(textra);
		} else {
			v->ecus = default_ecus(v->vin, (int)ecus);
			v->extra = json_pack("{s:{s:I},s:i}", "storage", "free_bytes",
			                     (json_int_t)8 * 1024 * 1024 * 1024, "dtc_count", 0);
		}
	}
	free(ovr);
	json_decref(tecus);
	json_decref(textra);
	logev(&fl, NULL, "start",
	      json_pack("{s:I,s:s,s:i,s:s*,s:b,s:b}", "vehicles", (json_int_t)fl.n, "broker_host",
	                fl.host, "broker_port", fl.port, "server", fl.server, "duplicate",
	                fl.duplicate, "out_of_order", fl.out_of_order));
	for (size_t i = 0; i < fl.n; i++)
		try_connect(&fl.v[i]);

	struct pollfd *pfd = calloc(fl.n + 64, sizeof(*pfd));
	vehicle **owner = calloc(fl.n + 64, sizeof(*owner));
	if (!pfd || !owner)
		return setup_fail("out of memory");
	size_t pcap = fl.n + 64;
	const char *reason = "signal";
	int status = 0;
	for (;;) {
		if (g_stop)
			break;
		int64_t el = mono_ms() - fl.start_ms;
		bool any = false;
		for (size_t i = 0; i < fl.n && !any; i++)
			any = fl.v[i].ever;
		if (!any && el >= (int64_t)(fl.connect_timeout_s * 1000)) {
			fprintf(
			    stderr,
			    "pqota-fleet: broker %s:%d unreachable: no vehicle connected within "
			    "%.0f s (last error: %s)\n",
			    fl.host, fl.port, fl.connect_timeout_s,
			    fl.last_error[0] ? fl.last_error : "none");
			logev(&fl, NULL, "setup_failed",
			      json_pack("{s:s}", "error",
			                fl.last_error[0] ? fl.last_error : "timeout"));
			status = EXIT_SETUP;
			reason = "broker unreachable";
			break;
		}
		if (fl.duration_s > 0 && el >= (int64_t)(fl.duration_s * 1000)) {
			reason = "duration";
			break;
		}
		if (fl.until_done && all_done(&fl)) {
			reason = "done";
			break;
		}
		if (fl.n + fl.ncs > pcap) {
			pcap = fl.n + fl.ncs + 64;
			pfd = realloc(pfd, pcap * sizeof(*pfd));
			owner = realloc(owner, pcap * sizeof(*owner));
			if (!pfd || !owner)
				return setup_fail("out of memory");
		}
		loop_once(&fl, TICK_MS, pfd, owner);
	}
	g_stop = 1;
	logev(&fl, NULL, "stopping", json_pack("{s:s}", "reason", reason));

	/* going to sleep: retained offline, then a clean disconnect (flushed for up to 2 s) */
	for (size_t i = 0; i < fl.n; i++) {
		vehicle *v = &fl.v[i];
		job_free(v);
		if (v->connected) {
			publish_raw(v, "presence", "offline", true,
			            json_pack("{s:s,s:b}", "payload", "offline", "retain", 1));
		}
	}
	int64_t until = mono_ms() + 2000;
	for (;;) {
		bool pending = false;
		for (size_t i = 0; i < fl.n; i++)
			if (fl.v[i].connected &&
			    (fl.v[i].unacked > 0 || mosquitto_want_write(fl.v[i].mosq)))
				pending = true;
		if (!pending || mono_ms() >= until)
			break;
		loop_once(&fl, 20, pfd, owner);
	}
	for (size_t i = 0; i < fl.n; i++)
		if (fl.v[i].connected)
			mosquitto_disconnect(fl.v[i].mosq);
	until = mono_ms() + 500;
	for (;;) {
		bool pending = false;
		for (size_t i = 0; i < fl.n; i++)
			if (mosquitto_socket(fl.v[i].mosq) >= 0 && !fl.v[i].broken)
				pending = true;
		if (!pending || mono_ms() >= until)
			break;
		loop_once(&fl, 20, pfd, owner);
	}
	if (status == 0)
		print_summary(&fl);
	for (size_t i = 0; i < fl.n; i++) {
		vehicle *v = &fl.v[i];
		mosquitto_destroy(v->mosq);
		SSL_CTX_free(v->ctx);
		pq_key_free(v->kem_x);
		pq_key_free(v->kem_m);
		json_decref(v->ecus);
		json_decref(v->extra);
		json_decref(v->targets);
	}
	free(pfd);
	free(owner);
	free(fl.cs);
	free(fl.v);
	curl_multi_cleanup(fl.multi);
	curl_global_cleanup();
	mosquitto_lib_cleanup();
	if (fl.log)
		fclose(fl.log);
	return status;
}
