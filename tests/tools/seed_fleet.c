/* seed_fleet: inserts N registered vehicles into a pqota server's SQLite store directly
 * (store API, one transaction), for the console's fleet-page tests at 10,000 vehicles.
 *
 *   seed_fleet --db DATA/pqota.db --count 10000 --prefix WSEED --model Model-X
 *              [--vmg VERSION] [--default-ecus] [--online-every K]
 *
 * VINs are PREFIX followed by a zero-padded number (PREFIX00000 ..), each with the model, a
 * fixed fake certificate fingerprint (these vehicles never connect) and no KEM keys.
 * --vmg adds an ECU "VMG" at that APP version (the fleet page's VMG column); --default-ecus
 * creates the 100 default ECUs as registration does (slower: 100 rows per vehicle);
 * --online-every K marks every K-th vehicle online. The server may be running (SQLite waits
 * for its lock). Prints "seed_fleet: N vehicles in T s"; exit 0, 1 on a store error, 64 on
 * a usage error. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "core/err.h"
#include "core/log.h"
#include "store/store.h"

#define FAKE_CERT_SHA256 "5eed5eed5eed5eed5eed5eed5eed5eed5eed5eed5eed5eed5eed5eed5eed5eed"

typedef struct {
	const char *db, *prefix, *model, *vmg;
	long count;
	long online_every;
	int default_ecus;
} seed_opts;

static int usage(void)
{
	fprintf(stderr, "usage: seed_fleet --db FILE --count N --prefix TEXT --model TEXT"
	                " [--vmg VERSION] [--default-ecus] [--online-every K]\n");
	return 64;
}

static int64_t now_ms(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_REALTIME, &ts);
	return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static double mono_s(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static long parse_long(const char *s, long max)
{
	char *end = NULL;
	long v = strtol(s, &end, 10);
	return *s && !*end && v >= 0 && v <= max ? v : -1;
}

static int parse_args(int argc, char **argv, seed_opts *o)
{
	memset(o, 0, sizeof(*o));
	o->count = -1;
	o->model = "";
	for (int i = 1; i < argc; i++) {
		const char *a = argv[i], *v = i + 1 < argc ? argv[i + 1] : NULL;
		if (strcmp(a, "--default-ecus") == 0) {
			o->default_ecus = 1;
			continue;
		}
		if (!v)
			return -1;
		if (strcmp(a, "--db") == 0)
			o->db = v;
		else if (strcmp(a, "--prefix") == 0)
			o->prefix = v;
		else if (strcmp(a, "--model") == 0)
			o->model = v;
		else if (strcmp(a, "--vmg") == 0)
			o->vmg = v;
		else if (strcmp(a, "--count") == 0)
			o->count = parse_long(v, 10000000);
		else if (strcmp(a, "--online-every") == 0)
			o->online_every = parse_long(v, 10000000);
		else
			return -1;
		i++;
	}
	if (!o->db || !o->prefix || o->count < 0 || o->online_every < 0)
		return -1;
	return 0;
}

static int add_vmg(store *s, const char *vin, const char *version, int64_t t)
{
	store_ecu e;
	memset(&e, 0, sizeof(e));
	snprintf(e.vin, sizeof(e.vin), "%s", vin);
	snprintf(e.ecu_id, sizeof(e.ecu_id), "VMG");
	snprintf(e.hardware_id, sizeof(e.hardware_id), "VMG-HW");
	snprintf(e.sw_app, sizeof(e.sw_app), "%s", version);
	snprintf(e.bank, sizeof(e.bank), "A");
	e.updated_ms = t;
	return store_ecu_upsert(s, &e);
}

static int seed_one(store *s, const seed_opts *o, long i, int64_t t)
{
	store_vehicle v;
	memset(&v, 0, sizeof(v));
	int n = snprintf(v.vin, sizeof(v.vin), "%s%05ld", o->prefix, i);
	if (n < 0 || (size_t)n >= sizeof(v.vin))
		return pq_err_set(PQ_ERR_INVAL, "VIN %s%05ld is longer than %d", o->prefix, i,
		                  STORE_VIN_MAX);
	snprintf(v.model, sizeof(v.model), "%s", o->model);
	snprintf(v.cert_pem_sha256, sizeof(v.cert_pem_sha256), "%s", FAKE_CERT_SHA256);
	v.created_ms = t;
	v.online = o->online_every > 0 && i % o->online_every == 0;
	v.last_seen_ms = v.online ? t : 0;
	int rc = store_vehicle_insert(s, &v);
	if (rc == PQ_OK && o->default_ecus)
		rc = store_ecu_seed_default(s, v.vin, t);
	if (rc == PQ_OK && o->vmg)
		rc = add_vmg(s, v.vin, o->vmg, t);
	return rc;
}

int main(int argc, char **argv)
{
	seed_opts o;
	if (parse_args(argc, argv, &o) != 0)
		return usage();
	pq_log_set_level(PQ_LOG_WARN);
	store_config cfg = {.backend = STORE_SQLITE, .url = o.db, .busy_timeout_ms = 30000};
	store *s = NULL;
	double t0 = mono_s();
	int64_t t = now_ms();
	int rc = store_open(&cfg, &s);
	if (rc == PQ_OK)
		rc = store_begin(s);
	for (long i = 0; rc == PQ_OK && i < o.count; i++)
		rc = seed_one(s, &o, i, t);
	if (rc == PQ_OK)
		rc = store_commit(s);
	else if (s)
		store_rollback(s);
	store_close(s);
	if (rc != PQ_OK) {
		fprintf(stderr, "seed_fleet: %s\n", pq_err_detail());
		return 1;
	}
	printf("seed_fleet: %ld vehicles in %.2f s\n", o.count, mono_s() - t0);
	return 0;
}
