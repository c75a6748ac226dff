/* test_campaign.c: the campaign store entities (store/campaign.h) and the campaign engine
 * (server/campaign.h), against SQLite or PostgreSQL ($PQOTA_TEST_STORE, as test_store). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <inttypes.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <jansson.h>

#include "core/log.h"
#include "server/campaign.h"
#include "store/campaign.h"
#include "store/store.h"
#include "store_fixture.h"
#include "testutil.h"

/* Every test gets an empty database (store_fixture.h: $PQOTA_TEST_STORE, $PQOTA_TEST_PG). */

#define T0 1700000000000LL

static double now_s(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

/* ---- data helpers ---------------------------------------------------------------------- */

static void hex64(char out[65], unsigned long long n)
{
	snprintf(out, 65, "%064llx", n);
}

static void add_vehicle(store *s, const char *vin, bool online)
{
	store_vehicle v;
	memset(&v, 0, sizeof(v));
	snprintf(v.vin, sizeof(v.vin), "%s", vin);
	snprintf(v.model, sizeof(v.model), "zonal-1");
	v.created_ms = T0;
	assert_ok(store_vehicle_insert(s, &v));
	if (online)
		assert_ok(store_vehicle_set_online(s, vin, true, T0, 1));
}

static void add_ecu(store *s, const char *vin, const char *ecu, const char *hw, const char *app)
{
	store_ecu e;
	memset(&e, 0, sizeof(e));
	snprintf(e.vin, sizeof(e.vin), "%s", vin);
	snprintf(e.ecu_id, sizeof(e.ecu_id), "%s", ecu);
	snprintf(e.hardware_id, sizeof(e.hardware_id), "%s", hw);
	e.zone = 1;
	snprintf(e.sw_app, sizeof(e.sw_app), "%s", app);
	snprintf(e.sw_boot, sizeof(e.sw_boot), "1.0.0");
	snprintf(e.sw_cal, sizeof(e.sw_cal), "1.0.0");
	snprintf(e.bank, sizeof(e.bank), "A");
	e.updated_ms = T0;
	assert_ok(store_ecu_upsert(s, &e));
}

/* A vehicle with ECU_011 (HW-1-001) at app version `app`. */
static void add_car(store *s, const char *vin, bool online, const char *app)
{
	add_vehicle(s, vin, online);
	add_ecu(s, vin, "ECU_011", "HW-1-001", app);
}

/* A delta of release id from version base in state st (a ready one: file n, 5000 bytes). */
static void add_delta(store *s, const char *id, const char *base, store_delta_state st,
                      unsigned long long n)
{
	store_release_delta d;
	memset(&d, 0, sizeof(d));
	snprintf(d.release_id, sizeof(d.release_id), "%s", id);
	snprintf(d.base_version, sizeof(d.base_version), "%s", base);
	hex64(d.base_sha256, n + 1);
	d.state = st;
	snprintf(d.source, sizeof(d.source), "computed");
	if (st == STORE_DELTA_READY) {
		hex64(d.file_sha256, n);
		d.file_size = 5000;
	}
	if (st == STORE_DELTA_FAILED)
		snprintf(d.error, sizeof(d.error), "failed");
	d.created_ms = T0;
	assert_ok(store_release_delta_insert(s, &d));
}

static void add_release(store *s, const char *id, const char *hw, const char *version,
                        const char *delta_base, unsigned long long n)
{
	store_release r;
	memset(&r, 0, sizeof(r));
	snprintf(r.id, sizeof(r.id), "%s", id);
	snprintf(r.title, sizeof(r.title), "Release %s", version);
	snprintf(r.version, sizeof(r.version), "%s", version);
	snprintf(r.hardware_id, sizeof(r.hardware_id), "%s", hw);
	snprintf(r.software_type, sizeof(r.software_type), "APP");
	snprintf(r.ecu_id, sizeof(r.ecu_id), "ECU_011");
	hex64(r.file_sha256, n * 4 + 1);
	r.file_size = 100000;
	hex64(r.image_sha256, n * 4 + 2);
	r.image_size = 200000;
	r.created_ms = T0 + (int64_t)n;
	assert_ok(store_release_insert(s, &r));
	if (delta_base)
		add_delta(s, id, delta_base, STORE_DELTA_READY, n * 4 + 3);
}

static void vin_of(char out[18], int i)
{
	snprintf(out, 18, "WVWZZZ1JZXW%06d", i);
}

/* ---- fake environment ------------------------------------------------------------------- */

typedef struct {
	char topic[128];
	char *json;
	int qos;
} sent_msg;

typedef struct {
	sent_msg m[2048];
	int n;
	bool fail;       /* publish fails */
	bool count_only; /* only count the publishes (in `count`) */
	int64_t count;
	void *events; /* test_views_at_scale's event counter */
} recorder;

static int rec_publish(void *user, const char *topic, const char *json, size_t len, int qos,
                       bool retain)
{
	recorder *r = user;
	assert_false(retain);
	if (r->fail)
		return pq_err_set(PQ_ERR_IO, "broker down (test)");
	if (r->count_only) {
		r->count++;
		return PQ_OK;
	}
	assert_true(r->n < 2048);
	sent_msg *m = &r->m[r->n++];
	snprintf(m->topic, sizeof(m->topic), "%s", topic);
	m->json = strndup(json, len);
	m->qos = qos;
	return PQ_OK;
}

static int rec_metadata(void *user, store *db, const char *campaign_id, const char *vin,
                        json_t **out)
{
	(void)user;
	(void)db;
	*out = json_pack("{s:{},s:s,s:s,s:[],s:s}", "director_targets", "image_repository",
	                 "https://h/uptane/image/", "director_repository", vin, "images", "token",
	                 campaign_id);
	return *out ? PQ_OK : PQ_ERR_NOMEM;
}

static void rec_clear(recorder *r)
{
	for (int i = 0; i < r->n; i++)
		free(r->m[i].json);
	r->n = 0;
}

static cmp_env mk_env(recorder *r)
{
	return (cmp_env){.instance_id = "test-1",
	                 .lease_ms = 30000,
	                 .batch = 100,
	                 .publish = rec_publish,
	                 .metadata = rec_metadata,
	                 .user = r};
}

/* How many recorded messages went to a topic ending in suffix, for vin (NULL any). */
static int count_sent(const recorder *r, const char *vin, const char *suffix, const char *type)
{
	int n = 0;
	for (int i = 0; i < r->n; i++) {
		const char *t = r->m[i].topic;
		size_t tl = strlen(t), sl = strlen(suffix);
		if (tl < sl || strcmp(t + tl - sl, suffix) != 0)
			continue;
		if (vin && strstr(t, vin) == NULL)
			continue;
		json_t *j = json_loads(r->m[i].json, 0, NULL);
		assert_non_null(j);
		assert_string_equal(json_string_value(json_object_get(j, "msg_type")), type);
		assert_non_null(json_string_value(json_object_get(j, "message_id")));
		assert_non_null(json_string_value(json_object_get(j, "timestamp")));
		json_decref(j);
		n++;
	}
	return n;
}

static store_dep_state dep_state(store *s, const char *cid, const char *vin)
{
	store_deployment d;
	assert_ok(store_deployment_get(s, cid, vin, &d));
	return d.state;
}

static int g_msg_seq;

/* A vehicle message into the engine. */
static int send_msg(store *s, const cmp_env *env, const char *vin, const char *type,
                    const char *cid, int64_t now, const char *extra_json)
{
	char id[48];
	snprintf(id, sizeof(id), "m-%d", ++g_msg_seq);
	json_t *root = extra_json ? json_loads(extra_json, 0, NULL) : json_object();
	assert_non_null(root);
	json_object_set_new(root, "msg_type", json_string(type));
	json_object_set_new(root, "vin", json_string(vin));
	if (cid)
		json_object_set_new(root, "campaign_id", json_string(cid));
	int rc = cmp_on_message(s, env, vin, type, id, root, now);
	json_decref(root);
	return rc;
}

static void create_campaign(store *s, const char *spec_json, char id[41])
{
	json_error_t e;
	json_t *spec = json_loads(spec_json, 0, &e);
	if (!spec)
		fail_msg("spec: %s", e.text);
	assert_ok(cmp_create(s, spec, "apikey:test", T0, id));
	json_decref(spec);
}

typedef struct {
	char buf[4096];
} trail;

static int trail_row(const store_transition *t, void *user)
{
	trail *tr = user;
	size_t n = strlen(tr->buf);
	snprintf(tr->buf + n, sizeof(tr->buf) - n, "%s%s", n ? "," : "", t->to_state);
	return PQ_OK;
}

static const char *history(store *s, const char *cid, const char *vin, trail *tr)
{
	tr->buf[0] = '\0';
	assert_ok(store_transition_list(s, cid, vin, trail_row, tr));
	return tr->buf;
}

/* ---- store -------------------------------------------------------------------------------- */

static int count_dep(const store_deployment *d, void *user)
{
	(void)d;
	(*(int *)user)++;
	return PQ_OK;
}

static int sum_counts(int phase, store_dep_state st, int64_t n, void *user)
{
	int64_t *c = user;
	c[phase * STORE_DEP_STATE_COUNT + st] += n;
	return PQ_OK;
}

static void test_store_crud(void **state)
{
	sf_fixture *f = *state;
	store *s = f->s;
	int v = 0;
	assert_ok(store_schema_version(s, &v));
	assert_int_equal(v, STORE_SCHEMA_VERSION);
	add_release(s, "r1", "HW-1-001", "2.0.0", NULL, 1);
	add_release(s, "r2", "HW-1-002", "2.0.0", NULL, 2);
	for (int i = 0; i < 5; i++) {
		char vin[18];
		vin_of(vin, i);
		add_car(s, vin, i % 2 == 0, "1.0.0");
	}
	store_campaign c;
	memset(&c, 0, sizeof(c));
	snprintf(c.id, sizeof(c.id), "c1");
	snprintf(c.name, sizeof(c.name), "spring");
	c.policy = "{\"a\":1}";
	c.created_ms = c.updated_ms = T0;
	c.vehicle_timeout_ms = 60000;
	c.nreleases = 2;
	snprintf(c.release_ids[0], sizeof(c.release_ids[0]), "r2");
	snprintf(c.release_ids[1], sizeof(c.release_ids[1]), "r1");
	assert_ok(store_campaign_insert(s, &c));
	assert_rc(store_campaign_insert(s, &c), PQ_ERR_EXISTS);
	snprintf(c.id, sizeof(c.id), "c2");
	snprintf(c.release_ids[1], sizeof(c.release_ids[1]), "nope");
	assert_rc(store_campaign_insert(s, &c), PQ_ERR_NOTFOUND);
	snprintf(c.release_ids[1], sizeof(c.release_ids[1]), "r2");
	assert_rc(store_campaign_insert(s, &c), PQ_ERR_INVAL); /* listed twice */
	c.policy = "{bad";
	snprintf(c.release_ids[1], sizeof(c.release_ids[1]), "r1");
	assert_rc(store_campaign_insert(s, &c), PQ_ERR_INVAL);
	/* a release in a campaign cannot be deleted */
	assert_rc(store_release_delete(s, "r1"), PQ_ERR_EXISTS);

	store_campaign g;
	assert_ok(store_campaign_get(s, "c1", &g));
	assert_string_equal(g.name, "spring");
	assert_int_equal(g.state, STORE_CMP_DRAFT);
	assert_int_equal(g.nreleases, 2);
	assert_string_equal(g.release_ids[0], "r2");
	assert_string_equal(g.policy, "{\"a\":1}");
	assert_string_equal(g.phases, "[]");
	store_campaign_clear(&g);
	assert_rc(store_campaign_get(s, "c9", &g), PQ_ERR_NOTFOUND);

	/* state compare-and-set */
	bool changed = true;
	assert_ok(store_campaign_set_state(s, "c1", STORE_CMP_PAUSED, STORE_CMP_RUNNING, NULL, 0,
	                                   T0 + 1, &changed));
	assert_false(changed);
	assert_ok(store_campaign_set_state(s, "c1", STORE_CMP_DRAFT, STORE_CMP_RUNNING, NULL, 0,
	                                   T0 + 1, &changed));
	assert_true(changed);
	assert_ok(store_campaign_set_state(s, "c1", STORE_CMP_RUNNING, STORE_CMP_PAUSED,
	                                   "auto_paused: test", 0, T0 + 2, &changed));
	assert_true(changed);
	assert_ok(store_campaign_get(s, "c1", &g));
	assert_int_equal(g.state, STORE_CMP_PAUSED);
	assert_int_equal(g.current_phase, 1);
	assert_int_equal(g.started_ms, T0 + 1);
	assert_string_equal(g.pause_reason, "auto_paused: test");
	store_campaign_clear(&g);
	assert_rc(store_campaign_set_state(s, "zz", -1, STORE_CMP_PAUSED, NULL, 0, T0, NULL),
	          PQ_ERR_NOTFOUND);
	assert_ok(store_campaign_set_phase(s, "c1", 1, 2, T0 + 3, &changed));
	assert_true(changed);
	assert_ok(store_campaign_set_phase(s, "c1", 1, 2, T0 + 3, &changed));
	assert_false(changed);
	int64_t total = 0;
	assert_ok(store_campaign_list(s, STORE_CMP_PAUSED, NULL, NULL, NULL, &total));
	assert_int_equal(total, 1);
	assert_ok(store_campaign_list(s, STORE_CMP_RUNNING, NULL, NULL, NULL, &total));
	assert_int_equal(total, 0);

	/* deployments and targets */
	store_deployment d[5];
	store_target t[5];
	memset(d, 0, sizeof(d));
	memset(t, 0, sizeof(t));
	for (int i = 0; i < 5; i++) {
		vin_of(d[i].vin, i);
		d[i].phase = 1 + i / 3;
		snprintf(t[i].vin, sizeof(t[i].vin), "%s", d[i].vin);
		snprintf(t[i].ecu_id, sizeof(t[i].ecu_id), "ECU_011");
		snprintf(t[i].release_id, sizeof(t[i].release_id), "r1");
		snprintf(t[i].hardware_id, sizeof(t[i].hardware_id), "HW-1-001");
		snprintf(t[i].software_type, sizeof(t[i].software_type), "APP");
		snprintf(t[i].from_version, sizeof(t[i].from_version), "1.0.0");
		snprintf(t[i].to_version, sizeof(t[i].to_version), "2.0.0");
		snprintf(t[i].package, sizeof(t[i].package), "full");
		hex64(t[i].file_sha256, 5);
		t[i].file_size = 100;
	}
	snprintf(t[4].package, sizeof(t[4].package), "bogus");
	assert_rc(store_deployment_insert(s, "c1", d, 5, t, 5, T0), PQ_ERR_INVAL);
	snprintf(t[4].package, sizeof(t[4].package), "delta");
	assert_ok(store_deployment_insert(s, "c1", d, 5, t, 5, T0));
	assert_rc(store_deployment_insert(s, "c1", d, 1, NULL, 0, T0), PQ_ERR_EXISTS);
	store_deployment x[1];
	memset(x, 0, sizeof(x));
	snprintf(x[0].vin, sizeof(x[0].vin), "NOSUCHVIN");
	x[0].phase = 1;
	assert_rc(store_deployment_insert(s, "c1", x, 1, NULL, 0, T0), PQ_ERR_NOTFOUND);

	store_deployment_filter flt = {.state = STORE_DEP_PENDING, .phase = 2};
	int n = 0;
	assert_ok(store_deployment_list(s, "c1", &flt, NULL, count_dep, &n, &total));
	assert_int_equal(n, 2);
	assert_int_equal(total, 2);
	store_page pg = {.limit = 2, .offset = 4};
	n = 0;
	assert_ok(store_deployment_list(s, "c1", NULL, &pg, count_dep, &n, &total));
	assert_int_equal(n, 1);
	assert_int_equal(total, 5);

	/* compare-and-set transitions with history */
	char vin0[18];
	vin_of(vin0, 0);
	store_dep_update u = {.notified = true, .set_last_msg = true, .last_msg_ms = T0 + 5};
	assert_ok(store_deployment_transition(s, "c1", vin0, STORE_DEP_PENDING, STORE_DEP_NOTIFIED,
	                                      "engine: notified", T0 + 5, &u, &changed));
	assert_true(changed);
	/* a second one from the same expected state: it changed under it */
	assert_ok(store_deployment_transition(s, "c1", vin0, STORE_DEP_PENDING, STORE_DEP_NOTIFIED,
	                                      "engine: notified", T0 + 6, &u, &changed));
	assert_false(changed);
	assert_ok(store_deployment_transition(s, "c1", vin0, STORE_DEP_NOTIFIED, STORE_DEP_ACCEPTED,
	                                      "ota_campaign_response m1", T0 + 7, NULL, &changed));
	assert_true(changed);
	assert_rc(store_deployment_transition(s, "c1", "NOSUCHVIN", STORE_DEP_PENDING,
	                                      STORE_DEP_NOTIFIED, "", T0, NULL, &changed),
	          PQ_ERR_NOTFOUND);
	store_deployment dd;
	assert_ok(store_deployment_get(s, "c1", vin0, &dd));
	assert_int_equal(dd.state, STORE_DEP_ACCEPTED);
	assert_int_equal(dd.notify_count, 1);
	assert_int_equal(dd.last_msg_ms, T0 + 5);
	trail tr;
	assert_string_equal(history(s, "c1", vin0, &tr), "pending,notified,accepted");
	/* idle condition: last message at T0+5 is not before T0+5 */
	store_dep_update idle = {.idle_before = T0 + 5, .error_code = "timeout"};
	assert_ok(store_deployment_transition(s, "c1", vin0, STORE_DEP_ACCEPTED,
	                                      STORE_DEP_TIMED_OUT, "t", T0 + 8, &idle, &changed));
	assert_false(changed);
	/* an over-long or non-UTF-8 cause is refused */
	assert_rc(store_deployment_transition(s, "c1", vin0, STORE_DEP_ACCEPTED, STORE_DEP_FAILED,
	                                      "\xc3", T0 + 8, NULL, &changed),
	          PQ_ERR_INVAL);

	int64_t counts[(CMP_PHASES_MAX + 1) * STORE_DEP_STATE_COUNT] = {0};
	assert_ok(store_deployment_counts(s, "c1", sum_counts, counts));
	assert_int_equal(counts[1 * STORE_DEP_STATE_COUNT + STORE_DEP_PENDING], 2);
	assert_int_equal(counts[1 * STORE_DEP_STATE_COUNT + STORE_DEP_ACCEPTED], 1);
	assert_int_equal(counts[2 * STORE_DEP_STATE_COUNT + STORE_DEP_PENDING], 2);
	n = 0;
	assert_ok(store_deployment_list_vin(s, vin0, true, count_dep, &n));
	assert_int_equal(n, 1);

	/* mqtt_seen */
	bool dup = true;
	assert_ok(store_msg_seen(s, vin0, "m-1", T0, &dup));
	assert_false(dup);
	assert_ok(store_msg_seen(s, vin0, "m-1", T0 + 1, &dup));
	assert_true(dup);
	assert_ok(store_msg_seen(s, "OTHERVIN", "m-1", T0 + 1, &dup));
	assert_false(dup);
	int64_t removed = 0;
	assert_ok(store_msg_seen_prune(s, T0 + 1, &removed));
	assert_int_equal(removed, 1);
	assert_ok(store_msg_seen(s, vin0, "m-1", T0 + 2, &dup));
	assert_false(dup);

	/* Uptane metadata */
	char *body = NULL;
	int64_t ver = 0;
	assert_rc(store_uptane_get_latest(s, "image", "", "targets", &body, &ver), PQ_ERR_NOTFOUND);
	assert_ok(store_uptane_put(s, "image", "", "targets", 1, "{\"v\":1}", T0));
	assert_ok(store_uptane_put(s, "image", "", "targets", 2, "{\"v\":2}", T0));
	assert_rc(store_uptane_put(s, "image", "", "targets", 2, "{\"v\":2}", T0), PQ_ERR_EXISTS);
	assert_rc(store_uptane_put(s, "image", vin0, "targets", 3, "{}", T0), PQ_ERR_INVAL);
	assert_rc(store_uptane_put(s, "director", vin0, "snapshot", 1, "{x", T0), PQ_ERR_INVAL);
	assert_ok(store_uptane_put(s, "director", vin0, "targets", 1, "{\"d\":1}", T0));
	assert_ok(store_uptane_get_latest(s, "image", "", "targets", &body, &ver));
	assert_int_equal(ver, 2);
	assert_string_equal(body, "{\"v\":2}");
	free(body);
	assert_ok(store_uptane_get_version(s, "image", "", "targets", 1, &body));
	assert_string_equal(body, "{\"v\":1}");
	free(body);
	assert_ok(store_uptane_get_latest(s, "director", vin0, "targets", &body, NULL));
	assert_string_equal(body, "{\"d\":1}");
	free(body);
}

/* ---- claims: two instances, one vehicle each time -------------------------------------- */

#define CONC_VEHICLES 200

/* Both claimers start together, and both make their first claim before either goes on, so
 * that the first claims race and each instance gets work however the threads are
 * scheduled. */
static pthread_barrier_t g_barrier;

typedef struct {
	const char *url;
	const char *instance;
	int claimed;
	int claims; /* statements */
	int64_t per_vehicle[CONC_VEHICLES];
	int rc;
	char err[256];
} claimer;

static int claim_mark(const store_deployment *d, void *user)
{
	void **a = user;
	claimer *c = a[0];
	store *s = a[1];
	int idx = (int)strtol(d->vin + 11, NULL, 10);
	if (idx < 0 || idx >= CONC_VEHICLES)
		return PQ_ERR_RANGE;
	c->per_vehicle[idx]++;
	c->claimed++;
	store_dep_update u = {.notified = true, .release_claim = true};
	bool changed = false;
	int rc =
	    store_deployment_transition(s, d->campaign_id, d->vin, STORE_DEP_PENDING,
	                                STORE_DEP_NOTIFIED, c->instance, T0 + 10, &u, &changed);
	if (rc == PQ_OK && !changed)
		return pq_err_set(PQ_ERR_EXISTS, "claimed deployment %s changed under its claim",
		                  d->vin);
	return rc;
}

static void *claim_thread(void *arg)
{
	claimer *c = arg;
	store *s = NULL;
	store_config cfg = sf_config(c->url);
	c->rc = store_open(&cfg, &s);
	pthread_barrier_wait(&g_barrier);
	for (int round = 0; c->rc == PQ_OK && round < 10000; round++) {
		if (round == 1)
			pthread_barrier_wait(&g_barrier);
		int64_t got = 0;
		void *a[2] = {c, s};
		c->rc = store_deployment_claim(s, c->instance, STORE_CLAIM_NOTIFY, T0 + 10, 30000,
		                               5, claim_mark, a, &got);
		if (c->rc == PQ_ERR_TIMEOUT) /* SQLite lock wait ran out: try again */
			c->rc = PQ_OK;
		c->claims++;
		if (c->rc == PQ_OK && got == 0 && round > 0)
			break;
	}
	if (c->claims < 2) /* failed before the second barrier: do not leave the other waiting */
		pthread_barrier_wait(&g_barrier);
	if (c->rc != PQ_OK)
		snprintf(c->err, sizeof(c->err), "%s", pq_err_detail());
	store_close(s);
	return NULL;
}

static void test_claim_concurrency(void **state)
{
	sf_fixture *f = *state;
	store *s = f->s;
	add_release(s, "r1", "HW-1-001", "2.0.0", NULL, 1);
	for (int i = 0; i < CONC_VEHICLES; i++) {
		char vin[18];
		vin_of(vin, i);
		add_car(s, vin, true, "1.0.0");
	}
	char id[41];
	create_campaign(s, "{\"name\":\"conc\",\"release_ids\":[\"r1\"]}", id);
	int64_t n = 0;
	assert_ok(cmp_start(s, NULL, id, T0, &n));
	assert_int_equal(n, CONC_VEHICLES);

	static claimer c[2];
	memset(c, 0, sizeof(c));
	pthread_t th[2];
	assert_int_equal(pthread_barrier_init(&g_barrier, NULL, 2), 0);
	double t = now_s();
	for (int i = 0; i < 2; i++) {
		c[i].url = f->url;
		c[i].instance = i ? "instance-b" : "instance-a";
		assert_int_equal(pthread_create(&th[i], NULL, claim_thread, &c[i]), 0);
	}
	for (int i = 0; i < 2; i++)
		assert_int_equal(pthread_join(th[i], NULL), 0);
	t = now_s() - t;
	pthread_barrier_destroy(&g_barrier);
	for (int i = 0; i < 2; i++)
		if (c[i].rc != PQ_OK)
			fail_msg("%s: %d %s", c[i].instance, c[i].rc, c[i].err);
	for (int v = 0; v < CONC_VEHICLES; v++) {
		int64_t k = c[0].per_vehicle[v] + c[1].per_vehicle[v];
		if (k != 1)
			fail_msg("vehicle %d claimed %lld times", v, (long long)k);
	}
	assert_int_equal(c[0].claimed + c[1].claimed, CONC_VEHICLES);
	assert_true(c[0].claimed > 0);
	assert_true(c[1].claimed > 0);
	printf("[ figures  ] %s: %d deployments claimed and notified by 2 instances in %.3f s "
	       "(%.0f/s; a: %d, b: %d, claim statements %d)\n",
	       sf_backend_name(), CONC_VEHICLES, t, CONC_VEHICLES / t, c[0].claimed, c[1].claimed,
	       c[0].claims + c[1].claims);
	/* nothing is left, and every vehicle has exactly two transitions */
	int64_t got = -1;
	assert_ok(store_deployment_claim(s, "x", STORE_CLAIM_NOTIFY, T0 + 20, 1000, 10, NULL, NULL,
	                                 &got));
	assert_int_equal(got, 0);
	int64_t rows = 0;
	assert_ok(store_exec(s, "SELECT 1", NULL, 0, NULL, NULL, NULL));
	store_deployment_filter flt = {.state = STORE_DEP_NOTIFIED, .phase = -1};
	assert_ok(store_deployment_list(s, id, &flt, NULL, NULL, NULL, &rows));
	assert_int_equal(rows, CONC_VEHICLES);
}

static void test_claim_lease(void **state)
{
	sf_fixture *f = *state;
	store *s = f->s;
	add_release(s, "r1", "HW-1-001", "2.0.0", NULL, 1);
	char vin[18];
	vin_of(vin, 1);
	add_car(s, vin, true, "1.0.0");
	char vin2[18];
	vin_of(vin2, 2);
	add_car(s, vin2, false, "1.0.0");
	char id[41];
	create_campaign(s, "{\"name\":\"lease\",\"release_ids\":[\"r1\"]}", id);
	assert_ok(cmp_start(s, NULL, id, T0, NULL));
	int64_t got = 0;
	/* only the online vehicle */
	assert_ok(
	    store_deployment_claim(s, "a", STORE_CLAIM_NOTIFY, T0, 1000, 10, NULL, NULL, &got));
	assert_int_equal(got, 1);
	/* held by a until T0 + 1000 */
	assert_ok(store_deployment_claim(s, "b", STORE_CLAIM_NOTIFY, T0 + 999, 1000, 10, NULL, NULL,
	                                 &got));
	assert_int_equal(got, 0);
	assert_ok(store_deployment_claim(s, "b", STORE_CLAIM_NOTIFY, T0 + 1001, 1000, 10, NULL,
	                                 NULL, &got));
	assert_int_equal(got, 1);
	store_deployment d;
	assert_ok(store_deployment_get(s, id, vin, &d));
	assert_string_equal(d.claimed_by, "b");
	assert_ok(store_deployment_release(s, id, vin, "a")); /* not a's: no-op */
	assert_ok(store_deployment_get(s, id, vin, &d));
	assert_string_equal(d.claimed_by, "b");
	assert_ok(store_deployment_release(s, id, vin, "b"));
	assert_ok(store_deployment_claim_vin(s, "c", STORE_CLAIM_NOTIFY, vin2, T0 + 1001, 1000, 10,
	                                     NULL, NULL, &got));
	assert_int_equal(got, 0); /* offline */
	assert_ok(store_deployment_claim_vin(s, "c", STORE_CLAIM_NOTIFY, vin, T0 + 1001, 1000, 10,
	                                     NULL, NULL, &got));
	assert_int_equal(got, 1);
	assert_rc(store_deployment_claim(s, "c", STORE_CLAIM_NOTIFY, T0, 1000, 0, NULL, NULL, &got),
	          PQ_ERR_INVAL);
}

/* ---- engine ------------------------------------------------------------------------------- */

/* One online vehicle through the whole chain. */
static void test_engine_full_flow(void **state)
{
	sf_fixture *f = *state;
	store *s = f->s;
	recorder *r = calloc(1, sizeof(*r));
	cmp_env env = mk_env(r);
	add_release(s, "r1", "HW-1-001", "2.0.0", NULL, 1);
	const char *vin = "WVWZZZ1JZXW000001";
	add_car(s, vin, true, "1.0.0");
	char id[41];
	create_campaign(s, "{\"name\":\"full\",\"release_ids\":[\"r1\"]}", id);
	int64_t n = 0;
	assert_ok(cmp_start(s, &env, id, T0, &n));
	assert_int_equal(n, 1);
	assert_rc(cmp_start(s, &env, id, T0, &n), PQ_ERR_INVAL);
	cmp_tick_stats st = {0};
	assert_ok(cmp_tick(s, &env, T0 + 1000, &st));
	assert_int_equal(st.notified, 1);
	assert_int_equal(count_sent(r, vin, "/ota/campaign", "ota_campaign"), 1);
	assert_int_equal(r->m[0].qos, 2);
	assert_string_equal(r->m[0].topic, "oem/WVWZZZ1JZXW000001/ota/campaign");
	json_t *m = json_loads(r->m[0].json, 0, NULL);
	assert_string_equal(json_string_value(json_object_get(m, "campaign_id")), id);
	json_t *tg = json_array_get(json_object_get(m, "targets"), 0);
	assert_string_equal(json_string_value(json_object_get(tg, "ecu_id")), "ECU_011");
	assert_string_equal(json_string_value(json_object_get(tg, "from_version")), "1.0.0");
	assert_string_equal(json_string_value(json_object_get(tg, "to_version")), "2.0.0");
	assert_string_equal(json_string_value(json_object_get(tg, "package")), "full");
	assert_int_equal(json_integer_value(json_object_get(m, "download_size")), 100000);
	json_decref(m);
	/* a second tick does not notify again */
	assert_ok(cmp_tick(s, &env, T0 + 2000, &st));
	assert_int_equal(st.notified, 1);
	assert_int_equal(dep_state(s, id, vin), STORE_DEP_NOTIFIED);

	assert_ok(send_msg(s, &env, vin, "ota_campaign_response", id, T0 + 3000,
	                   "{\"decision\":\"accepted\"}"));
	assert_int_equal(dep_state(s, id, vin), STORE_DEP_ACCEPTED);
	assert_int_equal(count_sent(r, vin, "/ota/metadata", "ota_campaign_metadata"), 1);
	m = json_loads(r->m[1].json, 0, NULL);
	assert_int_equal(r->m[1].qos, 2);
	assert_string_equal(json_string_value(json_object_get(m, "token")), id);
	assert_string_equal(json_string_value(json_object_get(m, "rollback_policy")),
	                    "all_or_nothing");
	json_decref(m);
	/* the same decision again (another message id): no second metadata */
	assert_ok(send_msg(s, &env, vin, "ota_campaign_response", id, T0 + 3100,
	                   "{\"decision\":\"accepted\"}"));
	assert_int_equal(count_sent(r, vin, "/ota/metadata", "ota_campaign_metadata"), 1);

	static const char *const chain[] = {"ota_download_progress", "ota_download_complete",
	                                    "ota_installation_start", "ota_installation_progress",
	                                    "ota_installation_complete"};
	static const store_dep_state want[] = {STORE_DEP_DOWNLOADING, STORE_DEP_DOWNLOADED,
	                                       STORE_DEP_INSTALLING, STORE_DEP_INSTALLING,
	                                       STORE_DEP_INSTALLED};
	for (int i = 0; i < 5; i++) {
		if (i == 4) { /* an ECU outside the campaign: refused, nothing moves */
			assert_rc(send_msg(s, &env, vin, chain[i], id, T0 + 4000 + i,
			                   "{\"ecu_id\":\"ECU_099\"}"),
			          PQ_ERR_INVAL);
			assert_int_equal(dep_state(s, id, vin), want[i - 1]);
		}
		assert_ok(send_msg(s, &env, vin, chain[i], id, T0 + 4000 + i,
		                   "{\"ecu_id\":\"ECU_011\",\"progress\":50}"));
		assert_int_equal(dep_state(s, id, vin), want[i]);
	}
	/* a VCI report with another version: not yet (still installed? no: mismatch fails) —
	 * first one that does not list the target ECU leaves it installed */
	assert_ok(
	    send_msg(s, &env, vin, "vci_report", NULL, T0 + 5000,
	             "{\"ecus\":[{\"ecu_id\":\"ECU_099\",\"software\":{\"APP\":\"9.9.9\"}}]}"));
	assert_int_equal(dep_state(s, id, vin), STORE_DEP_INSTALLED);
	assert_ok(
	    send_msg(s, &env, vin, "vci_report", NULL, T0 + 6000,
	             "{\"ecus\":[{\"ecu_id\":\"ECU_011\",\"software\":{\"APP\":\"2.0.0\"}}]}"));
	assert_int_equal(dep_state(s, id, vin), STORE_DEP_COMPLETED);
	trail tr;
	assert_string_equal(history(s, id, vin, &tr),
	                    "pending,notified,accepted,downloading,downloaded,installing,installed,"
	                    "completed");
	/* terminal absorbs */
	assert_ok(send_msg(s, &env, vin, "ota_error", id, T0 + 7000, "{\"error_code\":\"E1\"}"));
	assert_int_equal(dep_state(s, id, vin), STORE_DEP_COMPLETED);
	/* the campaign completes */
	assert_ok(cmp_tick(s, &env, T0 + 8000, &st));
	assert_int_equal(st.completed, 1);
	json_t *cj = NULL;
	assert_ok(cmp_get_json(s, id, &cj));
	assert_string_equal(json_string_value(json_object_get(cj, "state")), "completed");
	assert_int_equal(
	    json_integer_value(json_object_get(json_object_get(cj, "counts"), "completed")), 1);
	json_decref(cj);
	json_t *vj = NULL;
	assert_ok(cmp_vehicle_json(s, id, vin, &vj));
	assert_int_equal(json_array_size(json_object_get(vj, "transitions")), 8);
	assert_int_equal(json_array_size(json_object_get(vj, "targets")), 1);
	json_decref(vj);
	json_t *lj = NULL;
	store_page pg = {.limit = 10};
	assert_ok(cmp_list_json(s, &pg, &lj));
	assert_int_equal(json_integer_value(json_object_get(lj, "total")), 1);
	json_decref(lj);
	/* stored policy text that no longer parses (a damaged row): the views leave the member
	 * out, as they always did, and one such campaign does not break the list */
	store_val bad[] = {SV_TEXT("{not json"), SV_TEXT(id)};
	assert_ok(store_exec(s, "UPDATE campaigns SET policy = ? WHERE id = ?", bad, 2, NULL, NULL,
	                     NULL));
	assert_ok(cmp_get_json(s, id, &cj));
	assert_null(json_object_get(cj, "policy"));
	assert_non_null(json_object_get(cj, "target"));
	assert_string_equal(json_string_value(json_object_get(cj, "state")), "completed");
	json_decref(cj);
	assert_ok(cmp_list_json(s, &pg, &lj));
	assert_int_equal(json_array_size(json_object_get(lj, "campaigns")), 1);
	json_decref(lj);
	/* a message for a campaign the vehicle is not in */
	assert_rc(send_msg(s, &env, vin, "ota_download_progress", "nope", T0, "{}"),
	          PQ_ERR_NOTFOUND);
	assert_rc(send_msg(s, &env, vin, "ota_download_progress", NULL, T0, "{}"), PQ_ERR_INVAL);
	rec_clear(r);
	free(r);
}

static void test_engine_declined_postponed(void **state)
{
	sf_fixture *f = *state;
	store *s = f->s;
	recorder *r = calloc(1, sizeof(*r));
	cmp_env env = mk_env(r);
	add_release(s, "r1", "HW-1-001", "2.0.0", NULL, 1);
	const char *a = "WVWZZZ1JZXW000001", *b = "WVWZZZ1JZXW000002";
	add_car(s, a, true, "1.0.0");
	add_car(s, b, true, "1.0.0");
	char id[41];
	create_campaign(s,
	                "{\"name\":\"dp\",\"release_ids\":[\"r1\"],"
	                "\"policy\":{\"postpone_retry_s\":600}}",
	                id);
	assert_ok(cmp_start(s, &env, id, T0, NULL));
	cmp_tick_stats st = {0};
	assert_ok(cmp_tick(s, &env, T0, &st));
	assert_int_equal(st.notified, 2);
	assert_ok(send_msg(s, &env, a, "ota_campaign_response", id, T0 + 10,
	                   "{\"decision\":\"declined\",\"reason\":\"not now, thanks\"}"));
	assert_int_equal(dep_state(s, id, a), STORE_DEP_DECLINED);
	assert_ok(send_msg(s, &env, b, "ota_campaign_response", id, T0 + 10,
	                   "{\"decision\":\"postponed\",\"retry_after_s\":60}"));
	assert_int_equal(dep_state(s, id, b), STORE_DEP_POSTPONED);
	/* declined is terminal: a late acceptance is ignored */
	assert_ok(send_msg(s, &env, a, "ota_campaign_response", id, T0 + 20,
	                   "{\"decision\":\"accepted\"}"));
	assert_int_equal(dep_state(s, id, a), STORE_DEP_DECLINED);
	int before = count_sent(r, b, "/ota/campaign", "ota_campaign");
	assert_ok(cmp_tick(s, &env, T0 + 30000, &st));
	assert_int_equal(count_sent(r, b, "/ota/campaign", "ota_campaign"), before);
	assert_ok(cmp_tick(s, &env, T0 + 61000, &st));
	assert_int_equal(st.renotified, 1);
	assert_int_equal(count_sent(r, b, "/ota/campaign", "ota_campaign"), before + 1);
	store_deployment d;
	assert_ok(store_deployment_get(s, id, b, &d));
	assert_int_equal(d.state, STORE_DEP_NOTIFIED);
	assert_int_equal(d.notify_count, 2);
	assert_int_equal(d.next_ms, 0);
	trail tr;
	assert_string_equal(history(s, id, b, &tr), "pending,notified,postponed,notified");
	/* a postponement without retry_after_s uses the campaign's (600 s) */
	assert_ok(send_msg(s, &env, b, "ota_campaign_response", id, T0 + 62000,
	                   "{\"decision\":\"postponed\"}"));
	assert_ok(store_deployment_get(s, id, b, &d));
	assert_int_equal(d.next_ms, T0 + 62000 + 600000);
	rec_clear(r);
	free(r);
}

static void test_engine_out_of_order(void **state)
{
	sf_fixture *f = *state;
	store *s = f->s;
	recorder *r = calloc(1, sizeof(*r));
	cmp_env env = mk_env(r);
	add_release(s, "r1", "HW-1-001", "2.0.0", NULL, 1);
	const char *vin = "WVWZZZ1JZXW000001";
	add_car(s, vin, true, "1.0.0");
	char id[41];
	create_campaign(s, "{\"name\":\"ooo\",\"release_ids\":[\"r1\"]}", id);
	assert_ok(cmp_start(s, &env, id, T0, NULL));
	assert_ok(cmp_tick(s, &env, T0, NULL));
	assert_ok(send_msg(s, &env, vin, "ota_campaign_response", id, T0 + 1,
	                   "{\"decision\":\"accepted\"}"));
	/* complete without any progress first: a recorded skip */
	assert_ok(send_msg(s, &env, vin, "ota_download_complete", id, T0 + 2, NULL));
	assert_int_equal(dep_state(s, id, vin), STORE_DEP_DOWNLOADED);
	/* late progress and a repeated complete: no backward move, no new transition */
	assert_ok(send_msg(s, &env, vin, "ota_download_progress", id, T0 + 3, NULL));
	assert_ok(send_msg(s, &env, vin, "ota_download_complete", id, T0 + 4, NULL));
	assert_int_equal(dep_state(s, id, vin), STORE_DEP_DOWNLOADED);
	assert_ok(send_msg(s, &env, vin, "ota_verification_complete", id, T0 + 5, NULL));
	assert_int_equal(dep_state(s, id, vin), STORE_DEP_INSTALLED);
	assert_ok(send_msg(s, &env, vin, "ota_installation_start", id, T0 + 6, NULL));
	assert_int_equal(dep_state(s, id, vin), STORE_DEP_INSTALLED);
	trail tr;
	assert_string_equal(history(s, id, vin, &tr),
	                    "pending,notified,accepted,downloaded,installed");
	json_t *vj = NULL;
	assert_ok(cmp_vehicle_json(s, id, vin, &vj));
	json_t *t3 = json_array_get(json_object_get(vj, "transitions"), 3);
	assert_non_null(strstr(json_string_value(json_object_get(t3, "cause")), "skipped 1 state"));
	json_decref(vj);
	store_deployment d;
	assert_ok(store_deployment_get(s, id, vin, &d));
	assert_int_equal(d.last_msg_ms, T0 + 6);
	/* a VCI report with another version: failed, version_mismatch */
	assert_ok(
	    send_msg(s, &env, vin, "vci_report", NULL, T0 + 7,
	             "{\"ecus\":[{\"ecu_id\":\"ECU_011\",\"software\":{\"APP\":\"1.0.0\"}}]}"));
	assert_ok(store_deployment_get(s, id, vin, &d));
	assert_int_equal(d.state, STORE_DEP_FAILED);
	assert_string_equal(d.error_code, "version_mismatch");
	rec_clear(r);
	free(r);
}

static void test_engine_readiness(void **state)
{
	sf_fixture *f = *state;
	store *s = f->s;
	recorder *r = calloc(1, sizeof(*r));
	cmp_env env = mk_env(r);
	add_release(s, "r1", "HW-1-001", "2.0.0", NULL, 1);
	const char *vin = "WVWZZZ1JZXW000001";
	add_car(s, vin, true, "1.0.0");
	char id[41];
	create_campaign(s,
	                "{\"name\":\"ready\",\"release_ids\":[\"r1\"],\"policy\":{"
	                "\"prerequisites\":{\"battery_min_pct\":40,\"parked\":true},"
	                "\"readiness_retry_s\":120}}",
	                id);
	assert_ok(cmp_start(s, &env, id, T0, NULL));
	assert_ok(cmp_tick(s, &env, T0, NULL));
	assert_ok(send_msg(s, &env, vin, "ota_campaign_response", id, T0 + 1,
	                   "{\"decision\":\"accepted\"}"));
	assert_int_equal(count_sent(r, vin, "/command", "request_ota_readiness"), 1);
	assert_int_equal(count_sent(r, vin, "/ota/metadata", "ota_campaign_metadata"), 0);
	assert_ok(send_msg(s, &env, vin, "ota_readiness_response", id, T0 + 2,
	                   "{\"ready\":false,\"checks\":[]}"));
	assert_int_equal(dep_state(s, id, vin), STORE_DEP_ACCEPTED);
	/* re-asked after readiness_retry_s */
	assert_ok(cmp_tick(s, &env, T0 + 60000, NULL));
	assert_int_equal(count_sent(r, vin, "/command", "request_ota_readiness"), 1);
	assert_ok(cmp_tick(s, &env, T0 + 123000, NULL));
	assert_int_equal(count_sent(r, vin, "/command", "request_ota_readiness"), 2);
	assert_ok(send_msg(s, &env, vin, "ota_readiness_response", id, T0 + 124000,
	                   "{\"ready\":true,\"checks\":[]}"));
	assert_int_equal(count_sent(r, vin, "/ota/metadata", "ota_campaign_metadata"), 1);
	/* a repeated ready sends nothing more */
	assert_ok(send_msg(s, &env, vin, "ota_readiness_response", id, T0 + 125000,
	                   "{\"ready\":true,\"checks\":[]}"));
	assert_int_equal(count_sent(r, vin, "/ota/metadata", "ota_campaign_metadata"), 1);
	assert_int_equal(dep_state(s, id, vin), STORE_DEP_ACCEPTED);
	rec_clear(r);
	free(r);
}

static void test_engine_timeout_and_publish_failure(void **state)
{
	sf_fixture *f = *state;
	store *s = f->s;
	recorder *r = calloc(1, sizeof(*r));
	cmp_env env = mk_env(r);
	add_release(s, "r1", "HW-1-001", "2.0.0", NULL, 1);
	const char *a = "WVWZZZ1JZXW000001", *b = "WVWZZZ1JZXW000002";
	add_car(s, a, true, "1.0.0");
	add_car(s, b, true, "1.0.0");
	char id[41];
	create_campaign(s,
	                "{\"name\":\"to\",\"release_ids\":[\"r1\"],"
	                "\"policy\":{\"vehicle_timeout_s\":60}}",
	                id);
	assert_ok(cmp_start(s, &env, id, T0, NULL));
	/* the broker is down: nothing moves, and the work is retried after the lease */
	r->fail = true;
	cmp_tick_stats st = {0};
	assert_ok(cmp_tick(s, &env, T0, &st));
	assert_int_equal(st.publish_failed, 2);
	assert_int_equal(dep_state(s, id, a), STORE_DEP_PENDING);
	r->fail = false;
	assert_ok(cmp_tick(s, &env, T0 + 1000, &st));
	assert_int_equal(st.notified, 0); /* still claimed */
	assert_ok(cmp_tick(s, &env, T0 + 31000, &st));
	assert_int_equal(st.notified, 2);
	/* b answers and downloads; a stays silent */
	assert_ok(send_msg(s, &env, b, "ota_campaign_response", id, T0 + 40000,
	                   "{\"decision\":\"accepted\"}"));
	assert_ok(send_msg(s, &env, b, "ota_download_progress", id, T0 + 80000, NULL));
	assert_ok(cmp_tick(s, &env, T0 + 92000, &st));
	assert_int_equal(st.timed_out, 1);
	assert_int_equal(dep_state(s, id, a), STORE_DEP_TIMED_OUT);
	assert_int_equal(dep_state(s, id, b), STORE_DEP_DOWNLOADING);
	assert_ok(cmp_tick(s, &env, T0 + 141000, &st));
	assert_int_equal(st.timed_out, 2);
	assert_int_equal(dep_state(s, id, b), STORE_DEP_TIMED_OUT);
	store_deployment d;
	assert_ok(store_deployment_get(s, id, a, &d));
	assert_string_equal(d.error_code, "timeout");
	/* a late message does not revive it */
	assert_ok(send_msg(s, &env, a, "ota_download_complete", id, T0 + 150000, NULL));
	assert_int_equal(dep_state(s, id, a), STORE_DEP_TIMED_OUT);
	rec_clear(r);
	free(r);
}

static int g_phase_of[10];

static void finish_vehicle(store *s, const cmp_env *env, const char *id, const char *vin, int64_t t)
{
	assert_ok(
	    send_msg(s, env, vin, "ota_campaign_response", id, t, "{\"decision\":\"accepted\"}"));
	assert_ok(send_msg(s, env, vin, "ota_installation_complete", id, t + 1, NULL));
	assert_ok(
	    send_msg(s, env, vin, "vci_report", NULL, t + 2,
	             "{\"ecus\":[{\"ecu_id\":\"ECU_011\",\"software\":{\"APP\":\"2.0.0\"}}]}"));
	assert_int_equal(dep_state(s, id, vin), STORE_DEP_COMPLETED);
}

static int phase_row(const store_deployment *d, void *user)
{
	(void)user;
	g_phase_of[(int)strtol(d->vin + 11, NULL, 10)] = d->phase;
	return PQ_OK;
}

static void test_engine_phases(void **state)
{
	sf_fixture *f = *state;
	store *s = f->s;
	recorder *r = calloc(1, sizeof(*r));
	cmp_env env = mk_env(r);
	add_release(s, "r1", "HW-1-001", "2.0.0", NULL, 1);
	for (int i = 0; i < 10; i++) {
		char vin[18];
		vin_of(vin, i);
		add_car(s, vin, true, "1.0.0");
	}
	char id[41];
	create_campaign(s,
	                "{\"name\":\"ph\",\"release_ids\":[\"r1\"],\"phases\":["
	                "{\"percent\":20,\"success_threshold\":1.0},{\"percent\":100}]}",
	                id);
	int64_t n = 0;
	assert_ok(cmp_start(s, &env, id, T0, &n));
	assert_int_equal(n, 10);
	store_page pg = {.limit = 100};
	assert_ok(store_deployment_list(s, id, NULL, &pg, phase_row, NULL, NULL));
	int in1 = 0;
	for (int i = 0; i < 10; i++)
		in1 += g_phase_of[i] == 1;
	assert_int_equal(in1, 2);
	cmp_tick_stats st = {0};
	assert_ok(cmp_tick(s, &env, T0 + 1000, &st));
	assert_int_equal(st.notified, 2);
	assert_int_equal(st.phases_advanced, 0);
	/* one of two completes: not yet */
	int done = 0;
	for (int i = 0; i < 10 && done < 1; i++) {
		if (g_phase_of[i] != 1)
			continue;
		char vin[18];
		vin_of(vin, i);
		finish_vehicle(s, &env, id, vin, T0 + 2000);
		done++;
	}
	assert_ok(cmp_tick(s, &env, T0 + 3000, &st));
	assert_int_equal(st.phases_advanced, 0);
	assert_int_equal(st.notified, 2);
	for (int i = 0, k = 0; i < 10; i++) {
		if (g_phase_of[i] != 1 || k++ < 1)
			continue;
		char vin[18];
		vin_of(vin, i);
		finish_vehicle(s, &env, id, vin, T0 + 4000);
	}
	assert_ok(cmp_tick(s, &env, T0 + 5000, &st));
	assert_int_equal(st.phases_advanced, 1);
	assert_ok(cmp_tick(s, &env, T0 + 6000, &st));
	assert_int_equal(st.notified, 10);
	json_t *cj = NULL;
	assert_ok(cmp_get_json(s, id, &cj));
	assert_int_equal(json_integer_value(json_object_get(cj, "current_phase")), 2);
	json_t *p1 = json_array_get(json_object_get(cj, "phases"), 0);
	assert_int_equal(json_integer_value(json_object_get(p1, "size")), 2);
	assert_int_equal(
	    json_integer_value(json_object_get(json_object_get(p1, "counts"), "completed")), 2);
	json_decref(cj);
	rec_clear(r);
	free(r);
}

static void test_engine_auto_pause(void **state)
{
	sf_fixture *f = *state;
	store *s = f->s;
	recorder *r = calloc(1, sizeof(*r));
	cmp_env env = mk_env(r);
	add_release(s, "r1", "HW-1-001", "2.0.0", NULL, 1);
	for (int i = 0; i < 10; i++) {
		char vin[18];
		vin_of(vin, i);
		add_car(s, vin, true, "1.0.0");
	}
	char id[41];
	create_campaign(s,
	                "{\"name\":\"ap\",\"release_ids\":[\"r1\"],\"phases\":["
	                "{\"percent\":100,\"error_threshold\":0.1}]}",
	                id);
	assert_ok(cmp_start(s, &env, id, T0, NULL));
	cmp_tick_stats st = {0};
	assert_ok(cmp_tick(s, &env, T0, &st));
	char vin[18];
	vin_of(vin, 0);
	assert_ok(send_msg(s, &env, vin, "ota_download_failed", id, T0 + 1,
	                   "{\"error_code\":\"E_HASH\",\"error\":\"hash mismatch\"}"));
	store_deployment d;
	assert_ok(store_deployment_get(s, id, vin, &d));
	assert_int_equal(d.state, STORE_DEP_FAILED);
	assert_string_equal(d.error_code, "E_HASH");
	assert_ok(cmp_tick(s, &env, T0 + 2, &st));
	assert_int_equal(st.auto_paused, 0); /* 1 of 10 is not more than 10 % */
	vin_of(vin, 1);
	assert_ok(
	    send_msg(s, &env, vin, "ota_rollback", id, T0 + 3, "{\"error_code\":\"E_BOOT\"}"));
	assert_ok(cmp_tick(s, &env, T0 + 4, &st));
	assert_int_equal(st.auto_paused, 1);
	store_campaign c;
	assert_ok(store_campaign_get(s, id, &c));
	assert_int_equal(c.state, STORE_CMP_PAUSED);
	assert_non_null(strstr(c.pause_reason, "auto_paused"));
	store_campaign_clear(&c);
	assert_rc(cmp_pause(s, id, NULL, T0 + 5), PQ_ERR_INVAL);
	/* resuming accepts those failures: one more is not yet too many */
	assert_ok(cmp_resume(s, id, T0 + 6));
	vin_of(vin, 2);
	assert_ok(send_msg(s, &env, vin, "ota_error", id, T0 + 7, NULL));
	assert_ok(cmp_tick(s, &env, T0 + 8, &st));
	assert_int_equal(st.auto_paused, 1);
	vin_of(vin, 3);
	assert_ok(send_msg(s, &env, vin, "ota_error", id, T0 + 9, NULL));
	assert_ok(cmp_tick(s, &env, T0 + 10, &st));
	assert_int_equal(st.auto_paused, 2);
	assert_ok(cmp_resume(s, id, T0 + 11));
	assert_ok(cmp_pause(s, id, "maintenance window", T0 + 12));
	assert_ok(store_campaign_get(s, id, &c));
	assert_string_equal(c.pause_reason, "maintenance window");
	store_campaign_clear(&c);
	rec_clear(r);
	free(r);
}

static void test_engine_cancel_and_wakeup(void **state)
{
	sf_fixture *f = *state;
	store *s = f->s;
	recorder *r = calloc(1, sizeof(*r));
	cmp_env env = mk_env(r);
	add_release(s, "r1", "HW-1-001", "2.0.0", NULL, 1);
	const char *a = "WVWZZZ1JZXW000001", *b = "WVWZZZ1JZXW000002", *c = "WVWZZZ1JZXW000003";
	add_car(s, a, true, "1.0.0");
	add_car(s, b, false, "1.0.0");
	add_car(s, c, false, "1.0.0");
	char id[41];
	create_campaign(s, "{\"name\":\"cx\",\"release_ids\":[\"r1\"]}", id);
	assert_ok(cmp_start(s, &env, id, T0, NULL));
	cmp_tick_stats st = {0};
	assert_ok(cmp_tick(s, &env, T0, &st));
	assert_int_equal(st.notified, 1);
	/* b wakes up: notified at once */
	assert_ok(store_vehicle_set_online(s, b, true, T0 + 5, 2));
	assert_ok(cmp_on_wakeup(s, &env, b, T0 + 5));
	assert_int_equal(dep_state(s, id, b), STORE_DEP_NOTIFIED);
	assert_int_equal(count_sent(r, b, "/ota/campaign", "ota_campaign"), 1);
	/* b wakes up again (a reconnect: the offer may have been lost with its old session):
	 * the offer is sent again, the state stays */
	assert_ok(cmp_on_wakeup(s, &env, b, T0 + 5));
	assert_int_equal(count_sent(r, b, "/ota/campaign", "ota_campaign"), 2);
	assert_int_equal(dep_state(s, id, b), STORE_DEP_NOTIFIED);
	assert_ok(send_msg(s, &env, a, "ota_campaign_response", id, T0 + 6,
	                   "{\"decision\":\"accepted\"}"));
	assert_int_equal(count_sent(r, a, "/ota/metadata", "ota_campaign_metadata"), 1);
	/* a, accepted with its metadata sent, wakes up: the metadata again, still accepted */
	assert_ok(cmp_on_wakeup(s, &env, a, T0 + 6));
	assert_int_equal(count_sent(r, a, "/ota/metadata", "ota_campaign_metadata"), 2);
	assert_int_equal(count_sent(r, a, "/ota/campaign", "ota_campaign"), 1);
	assert_int_equal(dep_state(s, id, a), STORE_DEP_ACCEPTED);
	/* paused: no notifications */
	assert_ok(cmp_pause(s, id, NULL, T0 + 7));
	assert_ok(store_vehicle_set_online(s, c, true, T0 + 8, 2));
	assert_ok(cmp_tick(s, &env, T0 + 8, &st));
	assert_int_equal(dep_state(s, id, c), STORE_DEP_PENDING);
	assert_ok(cmp_on_wakeup(s, &env, b, T0 + 8)); /* paused: nothing sent again either */
	assert_int_equal(count_sent(r, b, "/ota/campaign", "ota_campaign"), 2);
	assert_ok(cmp_cancel(s, &env, id, T0 + 9));
	assert_int_equal(dep_state(s, id, a), STORE_DEP_CANCELLED);
	assert_int_equal(dep_state(s, id, b), STORE_DEP_CANCELLED);
	assert_int_equal(dep_state(s, id, c), STORE_DEP_CANCELLED);
	assert_int_equal(count_sent(r, NULL, "/command", "cancel"), 2); /* a and b, not c */
	assert_rc(cmp_cancel(s, &env, id, T0 + 10), PQ_ERR_INVAL);
	assert_rc(cmp_resume(s, id, T0 + 10), PQ_ERR_INVAL);
	trail tr;
	assert_string_equal(history(s, id, a, &tr), "pending,notified,accepted,cancelled");
	rec_clear(r);
	free(r);
}

static int target_copy(const store_target *t, void *user)
{
	*(store_target *)user = *t;
	return PQ_OK;
}

static void test_engine_applicability(void **state)
{
	sf_fixture *f = *state;
	store *s = f->s;
	recorder *r = calloc(1, sizeof(*r));
	cmp_env env = mk_env(r);
	/* 2.0.0 with ready deltas from 1.5.0 and 1.2.0, one from 1.0.0 still being made and
	 * a failed one from 1.1.0: only ready deltas are offered */
	add_release(s, "r1", "HW-1-001", "2.0.0", "1.5.0", 1);
	add_delta(s, "r1", "1.2.0", STORE_DELTA_READY, 100);
	add_delta(s, "r1", "1.0.0", STORE_DELTA_RUNNING, 200);
	add_delta(s, "r1", "1.1.0", STORE_DELTA_FAILED, 300);
	const char *older = "WVWZZZ1JZXW000001", *same = "WVWZZZ1JZXW000002",
	           *newer = "WVWZZZ1JZXW000003", *otherhw = "WVWZZZ1JZXW000004",
	           *delta = "WVWZZZ1JZXW000005", *nodelta = "WVWZZZ1JZXW000006",
	           *pre = "WVWZZZ1JZXW000007", *second = "WVWZZZ1JZXW000008",
	           *failed = "WVWZZZ1JZXW000009";
	add_car(s, older, true, "1.0.0");
	add_car(s, same, true, "2.0.0");
	add_car(s, newer, true, "10.0.0");
	add_vehicle(s, otherhw, true);
	add_ecu(s, otherhw, "ECU_011", "HW-9-999", "1.0.0");
	add_car(s, delta, true, "1.5.0");
	add_car(s, nodelta, true, "1.5.0");
	add_car(s, pre, true, "2.0.0-rc.1"); /* a pre-release is older than its release */
	add_car(s, second, true, "1.2.0");
	add_car(s, failed, true, "1.1.0");
	assert_ok(store_vehicle_set_vci(
	    s, delta,
	    "{\"ecus\":[{\"ecu_id\":\"ECU_011\",\"software\":{\"APP\":\"1.5.0\"},"
	    "\"capabilities\":{\"delta\":true}}]}",
	    T0));
	assert_ok(store_vehicle_set_vci(
	    s, nodelta,
	    "{\"ecus\":[{\"ecu_id\":\"ECU_011\",\"software\":{\"APP\":\"1.5.0\"},"
	    "\"capabilities\":{\"delta\":false}}]}",
	    T0));
	char id[41];
	create_campaign(s, "{\"name\":\"app\",\"release_ids\":[\"r1\"]}", id);
	int64_t n = 0;
	assert_ok(cmp_start(s, &env, id, T0, &n));
	assert_int_equal(n, 6);
	store_deployment d;
	assert_ok(store_deployment_get(s, id, older, &d));
	assert_rc(store_deployment_get(s, id, same, &d), PQ_ERR_NOTFOUND);
	assert_rc(store_deployment_get(s, id, newer, &d), PQ_ERR_NOTFOUND);
	assert_rc(store_deployment_get(s, id, otherhw, &d), PQ_ERR_NOTFOUND);
	assert_ok(store_deployment_get(s, id, pre, &d));
	store_target t;
	assert_ok(store_target_list(s, id, older, target_copy, &t));
	assert_string_equal(t.package, "full");
	assert_int_equal(t.file_size, 100000);
	assert_ok(store_target_list(s, id, delta, target_copy, &t));
	assert_string_equal(t.package, "delta");
	assert_string_equal(t.from_version, "1.5.0");
	assert_int_equal(t.file_size, 5000);
	assert_ok(store_target_list(s, id, nodelta, target_copy, &t));
	assert_string_equal(t.package, "full");
	assert_ok(store_target_list(s, id, second, target_copy, &t));
	assert_string_equal(t.package, "delta"); /* the delta whose base it runs */
	assert_string_equal(t.from_version, "1.2.0");
	char want[65];
	hex64(want, 100);
	assert_string_equal(t.file_sha256, want);
	assert_ok(store_target_list(s, id, failed, target_copy, &t));
	assert_string_equal(t.package, "full");

	/* target filter: a VIN list and version bounds */
	char id2[41];
	create_campaign(s,
	                "{\"name\":\"flt\",\"release_ids\":[\"r1\"],\"target\":{\"vins\":["
	                "\"WVWZZZ1JZXW000001\",\"WVWZZZ1JZXW000005\"],\"version_min\":\"1.2.0\"}}",
	                id2);
	assert_ok(cmp_start(s, &env, id2, T0, &n));
	assert_int_equal(n, 1);
	assert_ok(store_deployment_get(s, id2, delta, &d));

	/* the seed route: one vehicle into a draft */
	char id3[41];
	create_campaign(s, "{\"name\":\"one\",\"release_ids\":[\"r1\"]}", id3);
	assert_rc(cmp_deploy_one(s, &env, id3, same, T0), PQ_ERR_NOTFOUND);
	assert_ok(cmp_deploy_one(s, &env, id3, older, T0));
	assert_int_equal(dep_state(s, id3, older), STORE_DEP_NOTIFIED);
	assert_rc(cmp_deploy_one(s, &env, id3, older, T0), PQ_ERR_EXISTS);
	assert_rc(cmp_deploy_one(s, &env, id3, "NOSUCH", T0), PQ_ERR_NOTFOUND);
	rec_clear(r);
	free(r);
}

static void test_engine_validation(void **state)
{
	sf_fixture *f = *state;
	store *s = f->s;
	add_release(s, "r1", "HW-1-001", "2.0.0", NULL, 1);
	add_release(s, "r2", "HW-1-001", "3.0.0", NULL, 2);
	static const struct {
		const char *spec, *detail;
	} bad[] = {
	    {"{\"release_ids\":[\"r1\"]}", "name"},
	    {"{\"name\":\"x\"}", "release_ids"},
	    {"{\"name\":\"x\",\"release_ids\":[]}", "release_ids"},
	    {"{\"name\":\"x\",\"release_ids\":[\"zz\"]}", "release_ids[0]"},
	    {"{\"name\":\"x\",\"release_ids\":[\"r1\",\"r2\"]}", "release_ids[1]"},
	    {"{\"name\":\"x\",\"release_ids\":[\"r1\"],\"bogus\":1}", "bogus"},
	    {"{\"name\":\"x\",\"release_ids\":[\"r1\"],\"policy\":{\"deadline\":\"tomorrow\"}}",
	     "policy.deadline"},
	    {"{\"name\":\"x\",\"release_ids\":[\"r1\"],\"policy\":{\"prerequisites\":"
	     "{\"battery_min_pct\":101}}}",
	     "policy.prerequisites.battery_min_pct"},
	    {"{\"name\":\"x\",\"release_ids\":[\"r1\"],\"policy\":{\"rollback_policy\":\"some\"}}",
	     "policy.rollback_policy"},
	    {"{\"name\":\"x\",\"release_ids\":[\"r1\"],\"policy\":{\"vehicle_timeout_s\":0}}",
	     "policy.vehicle_timeout_s"},
	    {"{\"name\":\"x\",\"release_ids\":[\"r1\"],\"phases\":[{\"count\":1,\"percent\":5}]}",
	     "phases[0]"},
	    {"{\"name\":\"x\",\"release_ids\":[\"r1\"],\"phases\":[{\"percent\":50},"
	     "{\"percent\":20}]}",
	     "phases[1].percent"},
	    {"{\"name\":\"x\",\"release_ids\":[\"r1\"],\"phases\":[{\"percent\":50,"
	     "\"error_threshold\":2}]}",
	     "phases[0].error_threshold"},
	    {"{\"name\":\"x\",\"release_ids\":[\"r1\"],\"target\":{\"version_min\":\"v1\"}}",
	     "target.version_min"},
	    {"{\"name\":\"x\",\"release_ids\":[\"r1\"],\"target\":{\"vins\":[1]}}",
	     "target.vins: [0]"},
	};
	char id[41];
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		json_t *spec = json_loads(bad[i].spec, 0, NULL);
		assert_non_null(spec);
		int rc = cmp_create(s, spec, "t", T0, id);
		if (rc != PQ_ERR_INVAL || !strstr(pq_err_detail(), bad[i].detail))
			fail_msg("spec %zu: rc %d, detail '%s', want '%s'", i, rc, pq_err_detail(),
			         bad[i].detail);
		json_decref(spec);
	}
	create_campaign(s,
	                "{\"name\":\"ok\",\"release_ids\":[\"r1\"],\"policy\":{"
	                "\"deadline\":\"2030-01-31T12:00:00.000Z\",\"consent_required\":true,"
	                "\"install_order\":[\"ECU_011\"],\"rollback_policy\":\"none\"}}",
	                id);
	json_t *cj = NULL;
	assert_ok(cmp_get_json(s, id, &cj));
	json_t *pol = json_object_get(cj, "policy");
	assert_int_equal(json_integer_value(json_object_get(pol, "vehicle_timeout_s")), 3600);
	assert_string_equal(json_string_value(json_object_get(pol, "rollback_policy")), "none");
	assert_int_equal(json_array_size(json_object_get(cj, "phases")), 1);
	assert_string_equal(json_string_value(json_object_get(cj, "state")), "draft");
	json_decref(cj);
}

/* The engine's own rate: ticks notify 200 online vehicles (figures only, no bound). */
static void test_engine_throughput(void **state)
{
	sf_fixture *f = *state;
	store *s = f->s;
	recorder *r = calloc(1, sizeof(*r));
	cmp_env env = mk_env(r);
	add_release(s, "r1", "HW-1-001", "2.0.0", NULL, 1);
	for (int i = 0; i < CONC_VEHICLES; i++) {
		char vin[18];
		vin_of(vin, i);
		add_car(s, vin, true, "1.0.0");
	}
	char id[41];
	create_campaign(s, "{\"name\":\"rate\",\"release_ids\":[\"r1\"]}", id);
	double t = now_s();
	int64_t n = 0;
	assert_ok(cmp_start(s, &env, id, T0, &n));
	double t_start = now_s() - t;
	cmp_tick_stats st = {0};
	t = now_s();
	for (int i = 0; i < 10 && st.notified < CONC_VEHICLES; i++)
		assert_ok(cmp_tick(s, &env, T0 + i, &st));
	t = now_s() - t;
	assert_int_equal(st.notified, CONC_VEHICLES);
	assert_int_equal(count_sent(r, NULL, "/ota/campaign", "ota_campaign"), CONC_VEHICLES);
	printf("[ figures  ] %s: cmp_start targeted %d vehicles in %.3f s; cmp_tick notified them "
	       "in %.3f s (%.0f notifications/s, batch 100)\n",
	       sf_backend_name(), CONC_VEHICLES, t_start, t, CONC_VEHICLES / t);
	rec_clear(r);
	free(r);
}

/* Live events handed to env->event: counted per type, the last deployment one kept. */
typedef struct {
	int deployment, campaign;
	json_t *last;
} ev_counter;

static void count_event(void *user, const char *type, json_t *data)
{
	ev_counter *c = ((recorder *)user)->events;
	if (c && strcmp(type, "deployment") == 0) {
		c->deployment++;
		json_decref(c->last);
		c->last = json_incref(data);
	} else if (c && strcmp(type, "campaign") == 0) {
		c->campaign++;
	}
	json_decref(data);
}

/* The console's views at 10,000 deployments: a page of deployments (with a state filter)
 * and the progress replay, each timed (figures, no timed assertion); and the engine's live
 * events through env->event. */
static void test_views_at_scale(void **state)
{
	enum {
		N = 10000
	};
	sf_fixture *f = *state;
	store *s = f->s;
	recorder *r = calloc(1, sizeof(*r));
	ev_counter ev = {0};
	r->events = &ev;
	r->count_only = true;
	cmp_env env = mk_env(r);
	env.event = count_event;
	env.batch = 1000;
	add_release(s, "r1", "HW-1-001", "2.0.0", NULL, 1);
	double t = now_s();
	for (int i = 0; i < N; i++) {
		char vin[18];
		vin_of(vin, i);
		add_car(s, vin, i % 2 == 0, "1.0.0");
	}
	printf("[ figures  ] %s: %d vehicles registered in %.2f s\n", sf_backend_name(), N,
	       now_s() - t);
	char id[41];
	create_campaign(s, "{\"name\":\"views\",\"release_ids\":[\"r1\"]}", id);
	int64_t n = 0;
	assert_ok(cmp_start(s, &env, id, T0, &n));
	assert_int_equal(n, N);
	cmp_tick_stats st = {0};
	for (int i = 0; i < 10 && st.notified < N / 2; i++)
		assert_ok(cmp_tick(s, &env, T0 + 1000 + i, &st));
	assert_int_equal(st.notified, N / 2); /* the online half */
	assert_int_equal(ev.deployment, N / 2);
	assert_string_equal(json_string_value(json_object_get(ev.last, "to")), "notified");
	assert_string_equal(json_string_value(json_object_get(ev.last, "cause")),
	                    "engine: notified");

	store_page pg = {.limit = 50, .offset = N - 50};
	json_t *j = NULL;
	uint32_t mask = 0;
	t = now_s();
	assert_ok(cmp_deployments_json(s, id, 0, &pg, &j));
	double t_last = now_s() - t;
	assert_int_equal(json_integer_value(json_object_get(j, "total")), N);
	json_t *items = json_object_get(j, "items");
	assert_int_equal(json_array_size(items), 50);
	char vin[18];
	vin_of(vin, N - 1);
	assert_string_equal(json_string_value(json_object_get(json_array_get(items, 49), "vin")),
	                    vin);
	assert_int_equal(json_array_size(json_object_get(json_array_get(items, 0), "targets")), 1);
	json_decref(j);
	assert_ok(cmp_parse_states("pending", &mask));
	pg.offset = 0;
	t = now_s();
	assert_ok(cmp_deployments_json(s, id, mask, &pg, &j));
	double t_filter = now_s() - t;
	assert_int_equal(json_integer_value(json_object_get(j, "total")), N / 2);
	json_t *first = json_array_get(json_object_get(j, "items"), 0);
	assert_string_equal(json_string_value(json_object_get(first, "state")), "pending");
	assert_string_equal(json_string_value(json_object_get(first, "cause")), "created");
	json_decref(j);
	assert_rc(cmp_parse_states("pending,bogus", &mask), PQ_ERR_INVAL);

	t = now_s();
	assert_ok(cmp_progress_json(s, id, T0 + 2000, 0, &j));
	double t_progress = now_s() - t;
	json_t *pts = json_object_get(j, "points");
	assert_true(json_array_size(pts) > 1 && json_array_size(pts) <= CMP_PROGRESS_POINTS);
	json_t *lastp = json_object_get(json_array_get(pts, json_array_size(pts) - 1), "counts");
	assert_true(json_equal(lastp, json_object_get(j, "counts")));
	assert_int_equal(json_integer_value(json_object_get(lastp, "notified")), N / 2);
	json_t *p0 = json_object_get(json_array_get(pts, 0), "counts");
	assert_int_equal(json_integer_value(json_object_get(p0, "pending")), N);
	assert_false(json_is_true(json_object_get(j, "truncated")));
	json_decref(j);
	printf("[ figures  ] %s: %d deployments: the last page of 50 in %.1f ms, the first page "
	       "filtered by state in %.1f ms, the progress replay (%d transitions) in %.1f ms\n",
	       sf_backend_name(), N, t_last * 1000, t_filter * 1000, N + N / 2, t_progress * 1000);
	assert_ok(cmp_cancel(s, &env, id, T0 + 3000));
	assert_int_equal(ev.deployment, N / 2 + N);
	assert_int_equal(ev.campaign, 0); /* an operator's cancel: the route's event */
	json_decref(ev.last);
	rec_clear(r);
	free(r);
}

static int count_replayed(store_dep_state from, bool has_from, store_dep_state to, int64_t at_ms,
                          void *user)
{
	(void)from;
	(void)has_from;
	(void)to;
	(void)at_ms;
	(*(int *)user)++;
	return PQ_OK;
}

/* The progress replay stops at its row cap and says so ("truncated"), in the store and in
 * GET .../progress; below the cap it is not truncated. */
static void test_progress_truncated(void **state)
{
	sf_fixture *f = *state;
	store *s = f->s;
	recorder *r = calloc(1, sizeof(*r));
	assert_non_null(r);
	r->count_only = true;
	cmp_env env = mk_env(r);
	add_release(s, "r1", "HW-1-001", "2.0.0", NULL, 1);
	for (int i = 0; i < 3; i++) {
		char vin[18];
		vin_of(vin, i);
		add_car(s, vin, true, "1.0.0");
	}
	char id[41];
	create_campaign(s, "{\"name\":\"cap\",\"release_ids\":[\"r1\"]}", id);
	assert_ok(cmp_start(s, &env, id, T0, NULL));
	cmp_tick_stats st = {0};
	assert_ok(cmp_tick(s, &env, T0 + 1000, &st));
	assert_int_equal(st.notified, 3); /* 6 transitions: 3 created, 3 notified */

	int n = 0;
	bool truncated = true;
	assert_ok(store_transition_replay(s, id, 0, count_replayed, &n, &truncated));
	assert_int_equal(n, 6);
	assert_false(truncated);
	n = 0;
	assert_ok(store_transition_replay(s, id, 6, count_replayed, &n, &truncated));
	assert_int_equal(n, 6);
	assert_false(truncated);
	n = 0;
	assert_ok(store_transition_replay(s, id, 4, count_replayed, &n, &truncated));
	assert_int_equal(n, 4);
	assert_true(truncated);
	assert_rc(
	    store_transition_replay(s, id, STORE_REPLAY_MAX + 1, count_replayed, &n, &truncated),
	    PQ_ERR_INVAL);

	json_t *j = NULL;
	assert_ok(cmp_progress_json(s, id, T0 + 2000, 0, &j));
	assert_true(json_is_false(json_object_get(j, "truncated")));
	json_decref(j);
	assert_ok(cmp_progress_json(s, id, T0 + 2000, 4, &j));
	assert_true(json_is_true(json_object_get(j, "truncated")));
	/* the points miss the transitions past the cap; the current counts do not */
	json_t *pts = json_object_get(j, "points");
	json_t *lastp = json_object_get(json_array_get(pts, json_array_size(pts) - 1), "counts");
	assert_int_equal(json_integer_value(json_object_get(lastp, "notified")), 1);
	assert_int_equal(
	    json_integer_value(json_object_get(json_object_get(j, "counts"), "notified")), 3);
	json_decref(j);
	rec_clear(r);
	free(r);
}

int main(void)
{
	if (!sf_init("campaign", 20000, PQ_LOG_WARN))
		return 1;
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test_setup_teardown(test_store_crud, sf_setup, sf_teardown),
	    cmocka_unit_test_setup_teardown(test_claim_lease, sf_setup, sf_teardown),
	    cmocka_unit_test_setup_teardown(test_claim_concurrency, sf_setup, sf_teardown),
	    cmocka_unit_test_setup_teardown(test_engine_full_flow, sf_setup, sf_teardown),
	    cmocka_unit_test_setup_teardown(test_engine_declined_postponed, sf_setup, sf_teardown),
	    cmocka_unit_test_setup_teardown(test_engine_out_of_order, sf_setup, sf_teardown),
	    cmocka_unit_test_setup_teardown(test_engine_readiness, sf_setup, sf_teardown),
	    cmocka_unit_test_setup_teardown(test_engine_timeout_and_publish_failure, sf_setup,
	                                    sf_teardown),
	    cmocka_unit_test_setup_teardown(test_engine_phases, sf_setup, sf_teardown),
	    cmocka_unit_test_setup_teardown(test_engine_auto_pause, sf_setup, sf_teardown),
	    cmocka_unit_test_setup_teardown(test_engine_cancel_and_wakeup, sf_setup, sf_teardown),
	    cmocka_unit_test_setup_teardown(test_engine_applicability, sf_setup, sf_teardown),
	    cmocka_unit_test_setup_teardown(test_engine_validation, sf_setup, sf_teardown),
	    cmocka_unit_test_setup_teardown(test_engine_throughput, sf_setup, sf_teardown),
	    cmocka_unit_test_setup_teardown(test_views_at_scale, sf_setup, sf_teardown),
	    cmocka_unit_test_setup_teardown(test_progress_truncated, sf_setup, sf_teardown),
	};
	return cmocka_run_group_tests_name(sf_group_name(), tests, sf_group_setup,
	                                   sf_group_teardown);
}
