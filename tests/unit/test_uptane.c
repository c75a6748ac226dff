/* test_uptane.c: Uptane metadata, repositories and full verification: the happy path under
 * each signing policy, root rotation, and every attack of docs/security.md "Uptane metadata"
 * refused (rollback, freeze, mix-and-match, endless data, arbitrary software, director and
 * image repository disagreement). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>

#include "crypto/hash.h"
#include "crypto/pki.h"
#include "testutil.h"
#include "core/time.h"
#include "uptane/cjson.h"
#include "uptane/meta.h"
#include "uptane/repo.h"
#include "uptane/verify.h"

#define NOW 1767225600LL /* 2026-01-01T00:00:00Z */
#define VIN "WVWZZZ1JZXW000001"

/* ---- fixture ----------------------------------------------------------------------- */

typedef struct {
	pq_key *k[2][UP_ROLE_COUNT][2];
	up_keyset ks[2][UP_ROLE_COUNT];
	up_repo *r;
	up_meta_set img, dir;       /* the latest publication (roots moved out) */
	up_blob img_root, dir_root; /* version 1 roots */
	up_target t[3];
	up_director_entry e[2];
	up_ecu ecus[2];
} fx;

static void gen_keys(pq_sign_policy p, pq_alg classical, pq_key *k[UP_ROLE_COUNT][2],
                     up_keyset ks[UP_ROLE_COUNT])
{
	pq_alg algs[2];
	int n = pq_policy_algs(p, classical, algs);
	for (int r = 0; r < UP_ROLE_COUNT; r++) {
		ks[r].n = 0;
		for (int a = 0; a < n; a++) {
			assert_ok(pq_key_generate(algs[a], &k[r][a]));
			ks[r].keys[ks[r].n++] = k[r][a];
		}
	}
}

static void free_keys(pq_key *k[UP_ROLE_COUNT][2])
{
	for (int r = 0; r < UP_ROLE_COUNT; r++)
		for (int a = 0; a < 2; a++) {
			pq_key_free(k[r][a]);
			k[r][a] = NULL;
		}
}

static void take_root(up_meta_set *m, up_blob *dst)
{
	if (m->root.data) {
		up_blob_free(dst);
		*dst = m->root;
		memset(&m->root, 0, sizeof(m->root));
	}
}

static void publish_image(fx *f, int64_t now)
{
	up_meta_set_free(&f->img);
	assert_ok(up_image_publish(f->r, f->t, 3, now, &f->img));
	take_root(&f->img, &f->img_root);
}

static void publish_director(fx *f, int64_t version, int64_t now)
{
	up_meta_set_free(&f->dir);
	assert_ok(up_director_publish(f->r, VIN, f->e, 2, version, now, &f->dir));
	take_root(&f->dir, &f->dir_root);
}

static void fill_model(fx *f)
{
	f->t[0] = (up_target){.name = "ecu011-3.0.1.bin",
	                      .length = 1000,
	                      .hardware_id = "HW-011",
	                      .ecu_id = "ECU_011",
	                      .software_type = "APP",
	                      .version = "3.0.1",
	                      .release_counter = 3};
	memset(f->t[0].sha256, 0x11, 32);
	f->t[1] = (up_target){.name = "vmg/vmg-2.1.0.bin",
	                      .length = 5000,
	                      .has_sha512 = true,
	                      .hardware_id = "HW-VMG",
	                      .release_counter = 1};
	memset(f->t[1].sha256, 0x22, 32);
	memset(f->t[1].sha512, 0x23, 64);
	f->t[2] = (up_target){.name = "other.bin", .length = 7, .hardware_id = "HW-X"};
	memset(f->t[2].sha256, 0x33, 32);
	for (int i = 0; i < 2; i++) {
		f->e[i] = (up_director_entry){.ecu_id = i ? "VMG" : "ECU_011",
		                              .name = f->t[i].name,
		                              .length = f->t[i].length,
		                              .has_sha512 = f->t[i].has_sha512,
		                              .hardware_id = f->t[i].hardware_id,
		                              .release_counter = f->t[i].release_counter};
		memcpy(f->e[i].sha256, f->t[i].sha256, 32);
		memcpy(f->e[i].sha512, f->t[i].sha512, 64);
	}
	f->ecus[0] = (up_ecu){"ECU_011", "HW-011", 2};
	f->ecus[1] = (up_ecu){"VMG", "HW-VMG", 0};
}

static fx *fx_new_opts(pq_sign_policy p, pq_alg classical, const up_repo_opts *o)
{
	fx *f = calloc(1, sizeof(*f));
	up_repo_opts opts = {.policy = p, .classical = classical};
	assert_non_null(f);
	if (o)
		opts = *o;
	opts.policy = p;
	for (int k = 0; k < 2; k++)
		gen_keys(p, classical, f->k[k], f->ks[k]);
	assert_ok(up_repo_new(f->ks[0], f->ks[1], &opts, NULL, &f->r));
	fill_model(f);
	publish_image(f, NOW);
	publish_director(f, 1, NOW);
	return f;
}

static fx *fx_new(pq_sign_policy p)
{
	return fx_new_opts(p, PQ_ALG_ECDSA_P256, NULL);
}

static void fx_free(fx *f)
{
	up_repo_free(f->r);
	up_meta_set_free(&f->img);
	up_meta_set_free(&f->dir);
	up_blob_free(&f->img_root);
	up_blob_free(&f->dir_root);
	for (int k = 0; k < 2; k++)
		free_keys(f->k[k]);
	free(f);
}

static up_bytes B(const up_blob *b)
{
	return (up_bytes){b->data, b->len};
}

static void fx_input(fx *f, up_verify_input *in)
{
	memset(in, 0, sizeof(*in));
	in->vin = VIN;
	in->now = NOW + 60;
	in->image_root = B(&f->img_root);
	in->director_root = B(&f->dir_root);
	in->image_timestamp = B(&f->img.timestamp);
	in->image_snapshot = B(&f->img.snapshot);
	in->image_targets = B(&f->img.targets);
	in->director_timestamp = B(&f->dir.timestamp);
	in->director_snapshot = B(&f->dir.snapshot);
	in->director_targets = B(&f->dir.targets);
	in->ecus = f->ecus;
	in->n_ecus = 2;
}

static void expect_ok(const up_verify_input *in, up_verify_result *res)
{
	assert_ok(up_verify(in, res));
}

/* Fails unless verification fails with `want` and a detail containing `part`. */
static void expect_fail(const up_verify_input *in, int want, const char *part)
{
	up_verify_result res;
	int rc = up_verify(in, &res);
	if (rc != want)
		fail_msg("got %d, want %d (%s)", rc, want, pq_err_detail());
	if (getenv("UPTANE_DEBUG"))
		fprintf(stderr, "refused: %s\n", pq_err_detail());
	if (part && !strstr(pq_err_detail(), part))
		fail_msg("detail '%s' lacks '%s'", pq_err_detail(), part);
	assert_null(res.images);
	assert_int_equal(res.n_images, 0);
}

/* ---- envelope surgery ---------------------------------------------------------------- */

static json_t *load(const char *data, size_t len)
{
	json_t *j = json_loadb(data, len, JSON_REJECT_DUPLICATES, NULL);
	assert_non_null(j);
	return j;
}

/* Canonical bytes of j (j released). */
static up_blob encode(json_t *j)
{
	up_blob b = {0};
	assert_ok(cj_encode(j, 16u << 20, &b.data, &b.len));
	json_decref(j);
	return b;
}

/* A copy of b with signature i removed (i < 0: all). */
static up_blob drop_sig(const up_blob *b, int i)
{
	json_t *j = load(b->data, b->len);
	json_t *sigs = json_object_get(j, "signatures");
	if (i < 0)
		json_array_clear(sigs);
	else
		assert_int_equal(json_array_remove(sigs, (size_t)i), 0);
	return encode(j);
}

/* Index of the signature whose method is or is not ML-DSA. */
static int sig_index(const up_blob *b, bool pq)
{
	json_t *j = load(b->data, b->len);
	json_t *sigs = json_object_get(j, "signatures"), *e;
	size_t i;
	int found = -1;
	json_array_foreach(sigs, i, e)
	{
		const char *m = json_string_value(json_object_get(e, "method"));
		if (found < 0 && (strncmp(m, "ml-dsa", 6) == 0) == pq)
			found = (int)i;
	}
	json_decref(j);
	assert_true(found >= 0);
	return found;
}

/* Re-signs b's signed part after edit() with the given key sets. */
static up_blob resign(const up_blob *b, up_role role, void (*edit)(json_t *s, void *arg), void *arg,
                      const up_keyset *sets, size_t nsets)
{
	json_t *j = load(b->data, b->len);
	json_t *s = json_object_get(j, "signed");
	up_blob out = {0};
	if (edit)
		edit(s, arg);
	assert_ok(up_sign(role, s, sets, nsets, 16u << 20, &out.data, &out.len));
	json_decref(j);
	return out;
}

static void set_version(json_t *s, void *arg)
{
	json_object_set_new(s, "version", json_integer(*(int64_t *)arg));
}

/* ---- happy paths ------------------------------------------------------------------- */

static void check_images(const up_verify_result *res)
{
	assert_int_equal(res->n_images, 2);
	const up_image *a = &res->images[0], *v = &res->images[1];
	assert_string_equal(a->ecu_id, "ECU_011");
	assert_string_equal(a->name, "ecu011-3.0.1.bin");
	assert_string_equal(a->hardware_id, "HW-011");
	assert_string_equal(a->software_type, "APP");
	assert_string_equal(a->version, "3.0.1");
	assert_int_equal(a->length, 1000);
	assert_int_equal(a->release_counter, 3);
	assert_int_equal(a->sha256[0], 0x11);
	assert_false(a->has_sha512);
	assert_string_equal(v->ecu_id, "VMG");
	assert_string_equal(v->name, "vmg/vmg-2.1.0.bin");
	assert_true(v->has_sha512);
	assert_int_equal(v->sha512[63], 0x23);
	assert_string_equal(v->version, "");
}

static void happy(pq_sign_policy p, pq_alg classical)
{
	fx *f = fx_new_opts(p, classical, NULL);
	up_verify_input in;
	up_verify_result res;
	fx_input(f, &in);
	expect_ok(&in, &res);
	check_images(&res);
	assert_int_equal(res.image.root, 1);
	assert_int_equal(res.image.targets, 1);
	assert_int_equal(res.image.snapshot, 1);
	assert_int_equal(res.image.timestamp, 1);
	assert_int_equal(res.director.targets, 1);
	assert_ptr_equal(res.image_root.data, f->img_root.data);
	up_verify_result_free(&res);

	/* a second publication verifies against the versions trusted after the first */
	publish_image(f, NOW);
	publish_director(f, 2, NOW);
	fx_input(f, &in);
	in.image_trusted = (up_versions){1, 1, 1, 1};
	in.director_trusted = (up_versions){1, 1, 1, 1};
	expect_ok(&in, &res);
	assert_int_equal(res.image.targets, 2);
	assert_int_equal(res.director.timestamp, 2);
	up_verify_result_free(&res);

	/* a refreshed timestamp alone */
	up_blob ts = {0};
	assert_ok(up_image_timestamp(f->r, NOW + 10, &ts));
	assert_int_equal(ts.version, 3);
	in.image_timestamp = B(&ts);
	in.image_trusted = (up_versions){1, 2, 2, 2};
	expect_ok(&in, &res);
	assert_int_equal(res.image.timestamp, 3);
	up_verify_result_free(&res);
	up_blob_free(&ts);

	/* a signing policy pinned by the vehicle must match the roots */
	pq_sign_policy other = p == PQ_POLICY_HYBRID ? PQ_POLICY_CLASSICAL : PQ_POLICY_HYBRID;
	in.image_timestamp = B(&f->img.timestamp);
	in.policy = &p;
	expect_ok(&in, &res);
	up_verify_result_free(&res);
	in.policy = &other;
	expect_fail(&in, PQ_ERR_VERIFY, "policy");
	fx_free(f);
}

static void test_happy_hybrid(void **state)
{
	(void)state;
	happy(PQ_POLICY_HYBRID, PQ_ALG_ECDSA_P256);
	happy(PQ_POLICY_HYBRID, PQ_ALG_ED25519);
}

static void test_happy_pq(void **state)
{
	(void)state;
	happy(PQ_POLICY_PQ, PQ_ALG_NONE);
}

static void test_happy_classical(void **state)
{
	(void)state;
	happy(PQ_POLICY_CLASSICAL, PQ_ALG_ECDSA_P256);
	happy(PQ_POLICY_CLASSICAL, PQ_ALG_ED25519);
}

/* The metadata is canonical JSON with the documented shape. */
static void test_format(void **state)
{
	(void)state;
	fx *f = fx_new(PQ_POLICY_HYBRID);
	const up_blob *all[] = {&f->img_root, &f->img.targets, &f->img.snapshot, &f->img.timestamp,
	                        &f->dir_root, &f->dir.targets, &f->dir.snapshot, &f->dir.timestamp};
	for (size_t i = 0; i < 8; i++) {
		assert_true(cj_is_canonical(all[i]->data, all[i]->len));
		assert_int_equal(all[i]->data[all[i]->len], '\0');
		assert_int_equal(sig_index(all[i], true) + sig_index(all[i], false), 1);
	}
	json_t *j = load(f->img_root.data, f->img_root.len);
	json_t *s = json_object_get(j, "signed");
	assert_string_equal(json_string_value(json_object_get(s, "_type")), "root");
	assert_string_equal(json_string_value(json_object_get(s, "policy")), "hybrid");
	assert_string_equal(json_string_value(json_object_get(s, "expires")),
	                    "2027-01-01T00:00:00Z");
	assert_int_equal(json_object_size(json_object_get(s, "keys")), 8);
	json_t *rr = json_object_get(json_object_get(s, "roles"), "timestamp");
	assert_int_equal(json_integer_value(json_object_get(rr, "threshold")), 2);
	/* the key id is SHA-256 of the canonical key object */
	char id[UP_KEYID_LEN + 1];
	assert_ok(up_keyid(f->k[0][UP_ROLE_TIMESTAMP][1], id));
	assert_non_null(json_object_get(json_object_get(s, "keys"), id));
	json_decref(j);

	j = load(f->dir.targets.data, f->dir.targets.len);
	s = json_object_get(j, "signed");
	assert_string_equal(json_string_value(json_object_get(s, "vin")), VIN);
	assert_string_equal(json_string_value(json_object_get(s, "expires")),
	                    "2026-01-08T00:00:00Z");
	json_t *t = json_object_get(json_object_get(s, "targets"), "ecu011-3.0.1.bin");
	assert_string_equal(
	    json_string_value(json_object_get(
	        json_object_get(json_object_get(json_object_get(t, "custom"), "ecus"), "ECU_011"),
	        "hardware_id")),
	    "HW-011");
	json_decref(j);

	int64_t tt = 0;
	char buf[21];
	assert_ok(up_time_parse("2024-02-29T23:59:59Z", &tt));
	assert_ok(pq_iso_time(tt, buf));
	assert_string_equal(buf, "2024-02-29T23:59:59Z");
	assert_rc(up_time_parse("2023-02-29T00:00:00Z", &tt), PQ_ERR_FORMAT);
	assert_rc(up_time_parse("2026-01-01T00:00:00+00:00", &tt), PQ_ERR_FORMAT);
	assert_rc(up_time_parse("2026-01-01 00:00:00Z", &tt), PQ_ERR_FORMAT);
	assert_ok(up_name_check("a/b-1.2_3+x.bin"));
	assert_rc(up_name_check("../x"), PQ_ERR_FORMAT);
	assert_rc(up_name_check("/x"), PQ_ERR_FORMAT);
	assert_rc(up_name_check("a//b"), PQ_ERR_FORMAT);
	assert_rc(up_name_check("a b"), PQ_ERR_FORMAT);
	fx_free(f);
}

/* ---- root rotation ------------------------------------------------------------------- */

static void test_rotation(void **state)
{
	(void)state;
	fx *f = fx_new(PQ_POLICY_HYBRID);
	pq_key *k2[UP_ROLE_COUNT][2] = {0}, *k3[UP_ROLE_COUNT][2] = {0};
	up_keyset ks2[UP_ROLE_COUNT], ks3[UP_ROLE_COUNT];
	up_blob r2 = {0}, r3 = {0};
	up_verify_input in;
	up_verify_result res;
	gen_keys(PQ_POLICY_HYBRID, PQ_ALG_ECDSA_P256, k2, ks2);
	gen_keys(PQ_POLICY_HYBRID, PQ_ALG_ECDSA_P256, k3, ks3);

	assert_ok(up_repo_rotate_root(f->r, UP_REPO_IMAGE, ks2, NOW, &r2));
	assert_int_equal(r2.version, 2);
	assert_ok(up_repo_rotate_root(f->r, UP_REPO_IMAGE, ks3, NOW, &r3));
	assert_int_equal(r3.version, 3);
	assert_int_equal(up_repo_state_get(f->r)->image.root, 3);
	publish_image(f, NOW); /* now signed by the version 3 keys */

	up_bytes chain[2] = {B(&r2), B(&r3)};
	fx_input(f, &in);
	in.image_roots = chain;
	in.n_image_roots = 2;
	in.image_trusted = (up_versions){1, 1, 1, 1};
	expect_ok(&in, &res);
	assert_int_equal(res.image.root, 3);
	assert_ptr_equal(res.image_root.data, r3.data);
	up_verify_result_free(&res);

	/* without the chain, the old root does not accept the new keys */
	in.n_image_roots = 0;
	expect_fail(&in, PQ_ERR_VERIFY, "threshold");
	/* a gap (1 -> 3) and a repeated version (1 -> 2 -> 2) */
	in.image_roots = &chain[1];
	in.n_image_roots = 1;
	expect_fail(&in, PQ_ERR_VERIFY, NULL);
	up_bytes again[2] = {B(&r2), B(&r2)};
	in.image_roots = again;
	in.n_image_roots = 2;
	expect_fail(&in, PQ_ERR_VERIFY, NULL);
	/* trusting root 2, root 2 again as "newer" is a rollback */
	in.image_root = B(&r2);
	in.image_roots = chain;
	in.n_image_roots = 1;
	expect_fail(&in, PQ_ERR_VERIFY, "follows");
	/* trusting root 3, a root signed by older keys is refused */
	in.image_root = B(&r3);
	expect_fail(&in, PQ_ERR_VERIFY, "threshold");
	in.n_image_roots = 0;
	expect_ok(&in, &res);
	up_verify_result_free(&res);

	/* version 2 signed only by the new keys, or only by the old ones: refused */
	json_t *s = NULL;
	up_blob only_new = {0}, only_old = {0};
	assert_ok(up_root_build(ks2, NULL, PQ_POLICY_HYBRID, 2, NOW + 86400, &s));
	assert_ok(up_sign(UP_ROLE_ROOT, s, &ks2[UP_ROLE_ROOT], 1, UP_MAX_ROOT, &only_new.data,
	                  &only_new.len));
	assert_ok(up_sign(UP_ROLE_ROOT, s, &f->ks[0][UP_ROLE_ROOT], 1, UP_MAX_ROOT, &only_old.data,
	                  &only_old.len));
	json_decref(s);
	fx_input(f, &in);
	in.image_root = B(&f->img_root);
	up_bytes c1 = B(&only_new);
	in.image_roots = &c1;
	in.n_image_roots = 1;
	expect_fail(&in, PQ_ERR_VERIFY, "threshold");
	c1 = B(&only_old);
	expect_fail(&in, PQ_ERR_VERIFY, "threshold");
	/* old keys complete but the new root's ML-DSA half missing: refused */
	up_keyset both[2] = {f->ks[0][UP_ROLE_ROOT], {.keys = {ks2[UP_ROLE_ROOT].keys[0]}, .n = 1}};
	up_blob half = {0};
	assert_ok(up_root_build(ks2, NULL, PQ_POLICY_HYBRID, 2, NOW + 86400, &s));
	assert_ok(up_sign(UP_ROLE_ROOT, s, both, 2, UP_MAX_ROOT, &half.data, &half.len));
	json_decref(s);
	c1 = B(&half);
	expect_fail(&in, PQ_ERR_VERIFY, NULL);

	/* an expired final root (freeze), even with fresh other roles */
	up_repo_opts o = {.policy = PQ_POLICY_HYBRID};
	o.expiry[UP_REPO_IMAGE][UP_ROLE_ROOT] = 30;
	up_repo *r = NULL;
	up_meta_set m = {0};
	assert_ok(up_repo_new(f->ks[0], f->ks[1], &o, NULL, &r));
	assert_ok(up_image_publish(r, f->t, 3, NOW, &m));
	fx_input(f, &in);
	in.image_root = B(&m.root);
	in.image_timestamp = B(&m.timestamp);
	in.image_snapshot = B(&m.snapshot);
	in.image_targets = B(&m.targets);
	in.now = NOW + 10;
	expect_ok(&in, &res);
	up_verify_result_free(&res);
	in.now = NOW + 31;
	expect_fail(&in, PQ_ERR_VERIFY, "root version 1: expired");
	up_meta_set_free(&m);
	up_repo_free(r);

	up_blob_free(&half);
	up_blob_free(&only_new);
	up_blob_free(&only_old);
	up_blob_free(&r2);
	up_blob_free(&r3);
	free_keys(k2);
	free_keys(k3);
	fx_free(f);
}

/* Rotation of the director root, and renewal with the same keys. */
static void test_rotation_director(void **state)
{
	(void)state;
	fx *f = fx_new(PQ_POLICY_PQ);
	pq_key *k2[UP_ROLE_COUNT][2] = {0};
	up_keyset ks2[UP_ROLE_COUNT];
	up_blob r2 = {0}, r3 = {0};
	up_verify_input in;
	up_verify_result res;
	gen_keys(PQ_POLICY_PQ, PQ_ALG_NONE, k2, ks2);
	assert_ok(up_repo_rotate_root(f->r, UP_REPO_DIRECTOR, ks2, NOW, &r2));
	assert_ok(up_repo_rotate_root(f->r, UP_REPO_DIRECTOR, NULL, NOW, &r3)); /* renewal */
	publish_director(f, 2, NOW);
	up_bytes chain[2] = {B(&r2), B(&r3)};
	fx_input(f, &in);
	in.director_roots = chain;
	in.n_director_roots = 2;
	in.director_trusted = (up_versions){1, 1, 1, 1};
	expect_ok(&in, &res);
	assert_int_equal(res.director.root, 3);
	assert_int_equal(res.director.targets, 2);
	up_verify_result_free(&res);
	/* the chain bound */
	up_limits lim = {.root_chain = 1};
	in.limits = &lim;
	expect_fail(&in, PQ_ERR_RANGE, NULL);
	up_blob_free(&r2);
	up_blob_free(&r3);
	free_keys(k2);
	fx_free(f);
}

/* ---- rollback ---------------------------------------------------------------------- */

static void test_rollback(void **state)
{
	(void)state;
	fx *f = fx_new(PQ_POLICY_HYBRID);
	up_verify_input in;
	for (int repo = 0; repo < 2; repo++) {
		for (int role = UP_ROLE_TARGETS; role <= UP_ROLE_TIMESTAMP; role++) {
			fx_input(f, &in);
			up_versions *v = repo ? &in.director_trusted : &in.image_trusted;
			if (role == UP_ROLE_TARGETS)
				v->targets = 2;
			else if (role == UP_ROLE_SNAPSHOT)
				v->snapshot = 2;
			else
				v->timestamp = 2;
			expect_fail(&in, PQ_ERR_VERIFY, "rollback");
		}
	}
	/* a newer timestamp naming the old snapshot, after the newer snapshot was seen */
	up_blob old_ts = f->img.timestamp, old_sn = f->img.snapshot, old_tg = f->img.targets;
	memset(&f->img.timestamp, 0, sizeof(up_blob));
	memset(&f->img.snapshot, 0, sizeof(up_blob));
	memset(&f->img.targets, 0, sizeof(up_blob));
	publish_image(f, NOW); /* version 2 */
	int64_t nine = 9;
	up_blob ts9 =
	    resign(&old_ts, UP_ROLE_TIMESTAMP, set_version, &nine, &f->ks[0][UP_ROLE_TIMESTAMP], 1);
	fx_input(f, &in);
	in.image_trusted = (up_versions){1, 2, 2, 2};
	in.image_timestamp = B(&ts9);
	in.image_snapshot = B(&old_sn);
	in.image_targets = B(&old_tg);
	expect_fail(&in, PQ_ERR_VERIFY, "rollback");
	/* the same old set against nothing trusted verifies (the signatures are fine) */
	in.image_trusted = (up_versions){0};
	up_verify_result res;
	expect_ok(&in, &res);
	up_verify_result_free(&res);
	/* the director: a lower vehicle version than trusted */
	up_meta_set old_dir = f->dir;
	memset(&f->dir, 0, sizeof(f->dir));
	publish_director(f, 5, NOW);
	fx_input(f, &in);
	in.director_trusted = (up_versions){1, 5, 5, 5};
	in.director_timestamp = B(&old_dir.timestamp);
	in.director_snapshot = B(&old_dir.snapshot);
	in.director_targets = B(&old_dir.targets);
	expect_fail(&in, PQ_ERR_VERIFY, "rollback");
	/* an image release counter lower than the installed one */
	fx_input(f, &in);
	f->ecus[0].release_counter = 4;
	expect_fail(&in, PQ_ERR_VERIFY, "release counter");
	f->ecus[0].release_counter = 2;
	up_meta_set_free(&old_dir);
	up_blob_free(&ts9);
	up_blob_free(&old_ts);
	up_blob_free(&old_sn);
	up_blob_free(&old_tg);
	fx_free(f);
}

/* ---- freeze ------------------------------------------------------------------------ */

static void test_freeze(void **state)
{
	(void)state;
	fx *f = fx_new(PQ_POLICY_HYBRID);
	up_verify_input in;
	up_verify_result res;
	fx_input(f, &in);
	in.now = NOW + UP_EXPIRY_TIMESTAMP; /* the timestamp expires exactly now */
	expect_fail(&in, PQ_ERR_VERIFY, "director timestamp: expired");
	fx_free(f);

	/* each other role expiring first */
	for (int role = UP_ROLE_TARGETS; role <= UP_ROLE_SNAPSHOT; role++) {
		for (int repo = 0; repo < 2; repo++) {
			up_repo_opts o = {0};
			o.expiry[repo][role] = 100;
			f = fx_new_opts(PQ_POLICY_HYBRID, PQ_ALG_ED25519, &o);
			fx_input(f, &in);
			expect_ok(&in, &res);
			up_verify_result_free(&res);
			in.now = NOW + 100;
			char want[64];
			snprintf(want, sizeof(want), "%s %s: expired", repo ? "director" : "image",
			         up_role_name((up_role)role));
			expect_fail(&in, PQ_ERR_VERIFY, want);
			fx_free(f);
		}
	}
}

/* ---- mix and match ------------------------------------------------------------------- */

static void test_mix_and_match(void **state)
{
	(void)state;
	fx *f = fx_new(PQ_POLICY_HYBRID);
	up_verify_input in;
	up_blob old_tg = f->img.targets;
	memset(&f->img.targets, 0, sizeof(up_blob));
	publish_image(f, NOW);
	/* snapshot 2 names targets 2; targets 1 delivered */
	fx_input(f, &in);
	in.image_targets = B(&old_tg);
	expect_fail(&in, PQ_ERR_VERIFY, "targets");
	/* a snapshot re-signed at the same version: the timestamp's hash no longer matches */
	int64_t two = 2;
	up_blob sn = resign(&f->img.snapshot, UP_ROLE_SNAPSHOT, set_version, &two,
	                    &f->ks[0][UP_ROLE_SNAPSHOT], 1);
	fx_input(f, &in);
	in.image_snapshot = B(&sn);
	expect_fail(&in, PQ_ERR_VERIFY, "snapshot");
	/* the director's snapshot delivered as the image snapshot: wrong keys and hash */
	fx_input(f, &in);
	in.image_snapshot = B(&f->dir.snapshot);
	expect_fail(&in, PQ_ERR_VERIFY, NULL);
	/* another vehicle's director targets (same director keys) */
	up_meta_set other = {0};
	assert_ok(up_director_publish(f->r, "WVWZZZ1JZXW000002", f->e, 2, 1, NOW, &other));
	fx_input(f, &in);
	in.director_timestamp = B(&other.timestamp);
	in.director_snapshot = B(&other.snapshot);
	in.director_targets = B(&other.targets);
	expect_fail(&in, PQ_ERR_VERIFY, "another vehicle");
	/* a role's metadata in another role's place */
	fx_input(f, &in);
	in.image_timestamp = B(&f->img.snapshot);
	expect_fail(&in, PQ_ERR_FORMAT, "_type");
	up_meta_set_free(&other);
	up_blob_free(&sn);
	up_blob_free(&old_tg);
	fx_free(f);
}

/* ---- endless data ------------------------------------------------------------------- */

static void test_endless_data(void **state)
{
	(void)state;
	fx *f = fx_new(PQ_POLICY_HYBRID);
	up_verify_input in;
	up_limits lim = {.image_targets = 512};
	fx_input(f, &in);
	in.limits = &lim;
	expect_fail(&in, PQ_ERR_RANGE, "image targets");
	lim = (up_limits){.timestamp = 1000};
	expect_fail(&in, PQ_ERR_RANGE, "timestamp");
	lim = (up_limits){.snapshot = 1000};
	expect_fail(&in, PQ_ERR_RANGE, "snapshot");
	lim = (up_limits){.root = 1000};
	expect_fail(&in, PQ_ERR_RANGE, "root");
	lim = (up_limits){.director_targets = 100};
	expect_fail(&in, PQ_ERR_RANGE, "director targets");
	/* targets longer than the snapshot says (extra bytes appended) */
	fx_input(f, &in);
	char *big = malloc(f->img.targets.len + 1);
	memcpy(big, f->img.targets.data, f->img.targets.len);
	big[f->img.targets.len] = ' ';
	in.image_targets = (up_bytes){big, f->img.targets.len + 1};
	expect_fail(&in, PQ_ERR_VERIFY, "the snapshot says");
	free(big);
	/* the image repository claims a larger image than the director */
	f->t[0].length = 2000;
	publish_image(f, NOW);
	fx_input(f, &in);
	expect_fail(&in, PQ_ERR_VERIFY, "bytes");
	fx_free(f);
}

/* ---- arbitrary software ------------------------------------------------------------- */

static void swap_method(json_t *env, const char *to)
{
	json_t *e = json_array_get(json_object_get(env, "signatures"), 0);
	json_object_set_new(e, "method", json_string(to));
}

static void test_signatures(void **state)
{
	(void)state;
	fx *f = fx_new(PQ_POLICY_HYBRID);
	up_verify_input in;
	up_verify_result res;
	up_blob b;

	/* a flipped signature byte */
	json_t *j = load(f->img.targets.data, f->img.targets.len);
	json_t *e = json_array_get(json_object_get(j, "signatures"), 0);
	char *sig = strdup(json_string_value(json_object_get(e, "sig")));
	sig[10] = sig[10] == '0' ? '1' : '0';
	json_object_set_new(e, "sig", json_string(sig));
	free(sig);
	b = encode(j);
	fx_input(f, &in);
	in.image_targets = B(&b);
	/* the snapshot's hash of the targets refuses it before its signatures are checked */
	expect_fail(&in, PQ_ERR_VERIFY, NULL);
	up_blob_free(&b);

	/* the same check on a role nothing hashes: the image root, and the timestamp */
	j = load(f->img.timestamp.data, f->img.timestamp.len);
	e = json_array_get(json_object_get(j, "signatures"), 1);
	sig = strdup(json_string_value(json_object_get(e, "sig")));
	sig[20] = sig[20] == 'a' ? 'b' : 'a';
	json_object_set_new(e, "sig", json_string(sig));
	free(sig);
	b = encode(j);
	fx_input(f, &in);
	in.image_timestamp = B(&b);
	expect_fail(&in, PQ_ERR_VERIFY, "does not verify");
	up_blob_free(&b);

	/* no signatures; only the classical half; only the ML-DSA half */
	b = drop_sig(&f->img.timestamp, -1);
	in.image_timestamp = B(&b);
	expect_fail(&in, PQ_ERR_VERIFY, "threshold");
	up_blob_free(&b);
	b = drop_sig(&f->img.timestamp, sig_index(&f->img.timestamp, true));
	in.image_timestamp = B(&b);
	expect_fail(&in, PQ_ERR_VERIFY, "threshold");
	up_blob_free(&b);
	b = drop_sig(&f->img.timestamp, sig_index(&f->img.timestamp, false));
	in.image_timestamp = B(&b);
	expect_fail(&in, PQ_ERR_VERIFY, "threshold");
	up_blob_free(&b);
	/* the same for the director's targets (re-signed snapshot and timestamp not needed:
	 * the timestamp/snapshot hash chain refuses it anyway, so test the root instead) */
	b = drop_sig(&f->dir_root, sig_index(&f->dir_root, true));
	fx_input(f, &in);
	in.director_root = B(&b);
	expect_fail(&in, PQ_ERR_VERIFY, "threshold");
	up_blob_free(&b);

	/* a wrong method for the key */
	j = load(f->img.timestamp.data, f->img.timestamp.len);
	swap_method(j, "ed25519");
	b = encode(j);
	fx_input(f, &in);
	in.image_timestamp = B(&b);
	expect_fail(&in, PQ_ERR_VERIFY, "method");
	up_blob_free(&b);

	/* one key's signature twice, standing in for the missing other half */
	j = load(f->img.timestamp.data, f->img.timestamp.len);
	json_t *sigs = json_object_get(j, "signatures");
	int ci = sig_index(&f->img.timestamp, false);
	json_t *dup = json_deep_copy(json_array_get(sigs, (size_t)ci));
	json_array_remove(sigs, (size_t)(1 - ci));
	json_array_append_new(sigs, dup);
	b = encode(j);
	in.image_timestamp = B(&b);
	expect_fail(&in, PQ_ERR_VERIFY, "two signatures");
	up_blob_free(&b);
	/* also refused next to a complete set */
	j = load(f->img.timestamp.data, f->img.timestamp.len);
	sigs = json_object_get(j, "signatures");
	json_array_append_new(sigs, json_deep_copy(json_array_get(sigs, 0)));
	b = encode(j);
	in.image_timestamp = B(&b);
	expect_fail(&in, PQ_ERR_VERIFY, "two signatures");
	up_blob_free(&b);

	/* keys not listed for the role: the snapshot keys signing the timestamp, and fresh
	 * keys; they are not counted */
	b = resign(&f->img.timestamp, UP_ROLE_TIMESTAMP, NULL, NULL, &f->ks[0][UP_ROLE_SNAPSHOT],
	           1);
	in.image_timestamp = B(&b);
	expect_fail(&in, PQ_ERR_VERIFY, "threshold");
	up_blob_free(&b);
	pq_key *fresh[UP_ROLE_COUNT][2] = {0};
	up_keyset fks[UP_ROLE_COUNT];
	gen_keys(PQ_POLICY_HYBRID, PQ_ALG_ECDSA_P256, fresh, fks);
	b = resign(&f->img.timestamp, UP_ROLE_TIMESTAMP, NULL, NULL, &fks[UP_ROLE_TIMESTAMP], 1);
	in.image_timestamp = B(&b);
	expect_fail(&in, PQ_ERR_VERIFY, "threshold");
	up_blob_free(&b);
	/* an extra unlisted signature beside a valid set is ignored */
	up_keyset two[2] = {f->ks[0][UP_ROLE_TIMESTAMP], fks[UP_ROLE_TIMESTAMP]};
	b = resign(&f->img.timestamp, UP_ROLE_TIMESTAMP, NULL, NULL, two, 2);
	in.image_timestamp = B(&b);
	expect_ok(&in, &res);
	up_verify_result_free(&res);
	up_blob_free(&b);
	/* a signature made for another role (domain separation): timestamp keys, role
	 * "snapshot" context, presented as a timestamp */
	j = load(f->img.timestamp.data, f->img.timestamp.len);
	{
		up_blob other = {0};
		assert_ok(up_sign(UP_ROLE_SNAPSHOT, json_object_get(j, "signed"),
		                  &f->ks[0][UP_ROLE_TIMESTAMP], 1, 1u << 20, &other.data,
		                  &other.len));
		json_t *oj = load(other.data, other.len);
		json_object_set(j, "signatures", json_object_get(oj, "signatures"));
		json_decref(oj);
		up_blob_free(&other);
	}
	b = encode(j);
	in.image_timestamp = B(&b);
	expect_fail(&in, PQ_ERR_VERIFY, "does not verify");
	up_blob_free(&b);

	/* non-canonical bytes (a space) */
	char *sp = malloc(f->img.timestamp.len + 2);
	sp[0] = ' ';
	memcpy(sp + 1, f->img.timestamp.data, f->img.timestamp.len + 1);
	in.image_timestamp = (up_bytes){sp, f->img.timestamp.len + 1};
	expect_fail(&in, PQ_ERR_FORMAT, "canonical");
	free(sp);

	free_keys(fresh);
	fx_free(f);
}

/* Thresholds under the single-key policies, and roots that break the policy's rules. */
static void test_thresholds(void **state)
{
	(void)state;
	pq_sign_policy ps[2] = {PQ_POLICY_PQ, PQ_POLICY_CLASSICAL};
	up_verify_input in;
	for (int i = 0; i < 2; i++) {
		fx *f = fx_new(ps[i]);
		up_blob b = drop_sig(&f->img.timestamp, 0);
		fx_input(f, &in);
		in.image_timestamp = B(&b);
		expect_fail(&in, PQ_ERR_VERIFY, "threshold");
		up_blob_free(&b);
		/* a key of the other role signing */
		b = resign(&f->img.timestamp, UP_ROLE_TIMESTAMP, NULL, NULL,
		           &f->ks[0][UP_ROLE_TARGETS], 1);
		in.image_timestamp = B(&b);
		expect_fail(&in, PQ_ERR_VERIFY, "threshold");
		up_blob_free(&b);
		fx_free(f);
	}

	/* hybrid roots must list both kinds and a threshold >= 2; pq roots ML-DSA only */
	fx *f = fx_new(PQ_POLICY_HYBRID);
	int th1[UP_ROLE_COUNT] = {2, 2, 2, 1};
	json_t *s = NULL;
	up_root *r = NULL;
	assert_ok(up_root_build(f->ks[0], th1, PQ_POLICY_HYBRID, 1, NOW + 100, &s));
	assert_rc(up_root_parse(s, &r), PQ_ERR_FORMAT);
	json_decref(s);
	assert_ok(up_root_build(f->ks[0], NULL, PQ_POLICY_PQ, 1, NOW + 100, &s));
	assert_rc(up_root_parse(s, &r), PQ_ERR_FORMAT);
	json_decref(s);
	/* classical keys only under hybrid */
	up_keyset cl[UP_ROLE_COUNT];
	for (int k = 0; k < UP_ROLE_COUNT; k++)
		cl[k] = (up_keyset){.keys = {f->ks[0][k].keys[0]}, .n = 1};
	assert_ok(up_root_build(cl, NULL, PQ_POLICY_HYBRID, 1, NOW + 100, &s));
	assert_rc(up_root_parse(s, &r), PQ_ERR_FORMAT);
	json_decref(s);
	/* threshold above the keys */
	int th3[UP_ROLE_COUNT] = {3, 2, 2, 2};
	assert_ok(up_root_build(f->ks[0], th3, PQ_POLICY_HYBRID, 1, NOW + 100, &s));
	assert_rc(up_root_parse(s, &r), PQ_ERR_FORMAT);
	/* a key id that does not match its key */
	json_t *keys = json_object_get(s, "keys");
	const char *id = NULL;
	json_t *kv = NULL;
	json_object_foreach(keys, id, kv)
	{
		json_t *k2 = json_deep_copy(kv);
		json_object_set_new(
		    keys, "0000000000000000000000000000000000000000000000000000000000000000", k2);
		break;
	}
	json_object_set_new(json_object_get(json_object_get(s, "roles"), "root"), "threshold",
	                    json_integer(2));
	assert_rc(up_root_parse(s, &r), PQ_ERR_FORMAT);
	json_decref(s);
	assert_null(r);
	fx_free(f);
}

/* ---- director and image repository disagree ----------------------------------------- */

static void test_disagreement(void **state)
{
	(void)state;
	fx *f = fx_new(PQ_POLICY_HYBRID);
	up_verify_input in;
	/* hash */
	f->e[0].sha256[5] ^= 1;
	publish_director(f, 2, NOW);
	fx_input(f, &in);
	expect_fail(&in, PQ_ERR_VERIFY, "hashes differ");
	f->e[0].sha256[5] ^= 1;
	/* sha512 given by one side only */
	f->e[1].has_sha512 = false;
	publish_director(f, 3, NOW);
	fx_input(f, &in);
	expect_fail(&in, PQ_ERR_VERIFY, "hashes differ");
	f->e[1].has_sha512 = true;
	/* length */
	f->e[1].length = 4999;
	publish_director(f, 4, NOW);
	fx_input(f, &in);
	expect_fail(&in, PQ_ERR_VERIFY, "bytes");
	f->e[1].length = 5000;
	/* not in the image repository */
	f->e[1].name = "missing.bin";
	publish_director(f, 5, NOW);
	fx_input(f, &in);
	expect_fail(&in, PQ_ERR_VERIFY, "not in the image repository");
	f->e[1].name = f->t[1].name;
	/* release counter */
	f->e[0].release_counter = 4;
	publish_director(f, 6, NOW);
	fx_input(f, &in);
	expect_fail(&in, PQ_ERR_VERIFY, "release counters");
	f->e[0].release_counter = 3;
	/* hardware id: director vs image, and vs the ECU */
	f->e[0].hardware_id = "HW-999";
	publish_director(f, 7, NOW);
	fx_input(f, &in);
	expect_fail(&in, PQ_ERR_VERIFY, "hardware id");
	f->e[0].hardware_id = "HW-011";
	publish_director(f, 8, NOW);
	f->ecus[0].hardware_id = "HW-012";
	fx_input(f, &in);
	expect_fail(&in, PQ_ERR_VERIFY, "hardware id");
	f->ecus[0].hardware_id = "HW-011";
	/* an ECU the vehicle does not have */
	fx_input(f, &in);
	in.n_ecus = 1;
	expect_fail(&in, PQ_ERR_VERIFY, "not in this vehicle");
	/* and all is well again */
	up_verify_result res;
	fx_input(f, &in);
	expect_ok(&in, &res);
	check_images(&res);
	up_verify_result_free(&res);
	fx_free(f);
}

/* ---- bundles ------------------------------------------------------------------------ */

/* Publishes the director with f->e and one more entry b (version v). */
static void publish_with(fx *f, const up_director_entry *b, size_t nb, int64_t v)
{
	up_director_entry e[4] = {f->e[0], f->e[1]};
	for (size_t i = 0; i < nb; i++)
		e[2 + i] = b[i];
	up_meta_set_free(&f->dir);
	assert_ok(up_director_publish(f->r, VIN, e, 2 + nb, v, NOW, &f->dir));
	take_root(&f->dir, &f->dir_root);
}

/* A director target for the vehicle's bundle: verified against the image repository's
 * bundle target, returned apart from the ECUs' images; every disagreement refused. */
static void test_bundle_target(void **state)
{
	(void)state;
	fx *f = fx_new(PQ_POLICY_HYBRID);
	up_target t[4] = {f->t[0], f->t[1], f->t[2]};
	t[3] = (up_target){.name = "bundles/b1/full_package.bin",
	                   .length = 9000,
	                   .hardware_id = "BUNDLE",
	                   .software_type = UP_BUNDLE_TYPE};
	memset(t[3].sha256, 0x44, 32);
	up_meta_set_free(&f->img);
	assert_ok(up_image_publish(f->r, t, 4, NOW, &f->img));
	up_director_entry b = {.bundle = true, .name = t[3].name, .length = 9000};
	memcpy(b.sha256, t[3].sha256, 32);
	up_verify_input in;
	up_verify_result res;

	publish_with(f, &b, 1, 2);
	fx_input(f, &in);
	expect_ok(&in, &res);
	assert_true(res.has_bundle);
	assert_string_equal(res.bundle.name, "bundles/b1/full_package.bin");
	assert_int_equal(res.bundle.length, 9000);
	assert_memory_equal(res.bundle.sha256, t[3].sha256, 32);
	assert_string_equal(res.bundle.ecu_id, "");
	assert_int_equal(res.n_images, 2); /* the bundle is not an ECU's image */
	check_images(&res);
	up_verify_result_free(&res);
	/* without a bundle entry there is none */
	publish_director(f, 3, NOW);
	fx_input(f, &in);
	expect_ok(&in, &res);
	assert_false(res.has_bundle);
	up_verify_result_free(&res);
	/* the director's hash or length not the image repository's */
	b.sha256[0] ^= 1;
	publish_with(f, &b, 1, 4);
	fx_input(f, &in);
	expect_fail(&in, PQ_ERR_VERIFY, "disagree");
	b.sha256[0] ^= 1;
	b.length = 9001;
	publish_with(f, &b, 1, 5);
	fx_input(f, &in);
	expect_fail(&in, PQ_ERR_VERIFY, "disagree");
	b.length = 9000;
	/* an ECU image named as the bundle */
	up_director_entry other = b;
	other.name = t[2].name;
	other.length = t[2].length;
	memcpy(other.sha256, t[2].sha256, 32);
	publish_with(f, &other, 1, 6);
	fx_input(f, &in);
	expect_fail(&in, PQ_ERR_VERIFY, "not a bundle");
	/* a bundle the image repository does not list */
	other.name = "bundles/b2/full_package.bin";
	publish_with(f, &other, 1, 7);
	fx_input(f, &in);
	expect_fail(&in, PQ_ERR_VERIFY, "not in the image repository");
	/* the repository signs one bundle per vehicle, never an ECU's image as one */
	up_director_entry two[2] = {b, b};
	two[1].name = "bundles/b2/full_package.bin";
	up_director_entry e[4] = {f->e[0], f->e[1], two[0], two[1]};
	up_meta_set m = {0};
	assert_rc(up_director_publish(f->r, VIN, e, 4, 8, NOW, &m), PQ_ERR_INVAL);
	e[2] = f->e[0];
	e[2].bundle = true;
	assert_rc(up_director_publish(f->r, VIN, e, 3, 8, NOW, &m), PQ_ERR_INVAL);
	fx_free(f);
}

/* up_director_same: the stored targets name the same entries, or not. */
static void test_director_same(void **state)
{
	(void)state;
	fx *f = fx_new(PQ_POLICY_CLASSICAL);
	bool same = false;
	assert_ok(up_director_same(f->dir.targets.data, f->dir.targets.len, VIN, f->e, 2, &same));
	assert_true(same);
	assert_ok(up_director_same(f->dir.targets.data, f->dir.targets.len, VIN, f->e, 1, &same));
	assert_false(same); /* one ECU fewer */
	f->e[1].sha256[0] ^= 1;
	assert_ok(up_director_same(f->dir.targets.data, f->dir.targets.len, VIN, f->e, 2, &same));
	assert_false(same); /* another image */
	f->e[1].sha256[0] ^= 1;
	assert_ok(up_director_same(f->dir.targets.data, f->dir.targets.len, "WVWZZZ1JZXW000002",
	                           f->e, 2, &same));
	assert_false(same); /* another vehicle */
	up_director_entry b = {.bundle = true, .name = "x.bundle.swpg", .length = 1};
	up_director_entry e3[3] = {f->e[0], f->e[1], b};
	assert_ok(up_director_same(f->dir.targets.data, f->dir.targets.len, VIN, e3, 3, &same));
	assert_false(same); /* a bundle more */
	assert_rc(up_director_same("{}", 2, VIN, f->e, 2, &same), PQ_ERR_FORMAT);
	assert_false(same);
	fx_free(f);
}

/* ---- repository API --------------------------------------------------------------- */

static void test_repo_inputs(void **state)
{
	(void)state;
	fx *f = fx_new(PQ_POLICY_CLASSICAL);
	up_meta_set m = {0};
	char *out = NULL;
	size_t len = 0;
	up_target t[2] = {f->t[0], f->t[0]};
	assert_rc(up_image_publish(f->r, t, 2, NOW, &m), PQ_ERR_EXISTS);
	t[1].name = "../escape";
	assert_rc(up_image_publish(f->r, t, 2, NOW, &m), PQ_ERR_FORMAT);
	t[1] = f->t[1];
	t[1].hardware_id = NULL;
	assert_rc(up_image_publish(f->r, t, 2, NOW, &m), PQ_ERR_FORMAT);
	assert_null(m.targets.data);
	/* failures do not advance versions */
	assert_int_equal(up_repo_state_get(f->r)->image.targets, 1);
	up_director_entry e[2] = {f->e[0], f->e[0]};
	assert_rc(up_director_publish(f->r, VIN, e, 2, 2, NOW, &m), PQ_ERR_EXISTS);
	assert_rc(up_director_publish(f->r, "bad vin", f->e, 2, 2, NOW, &m), PQ_ERR_INVAL);
	assert_rc(up_director_publish(f->r, VIN, f->e, 2, 0, NOW, &m), PQ_ERR_INVAL);
	e[1].ecu_id = "OTHER";
	e[1].length = 1;
	assert_rc(up_director_publish(f->r, VIN, e, 2, 2, NOW, &m), PQ_ERR_INVAL);
	/* two ECUs sharing one image */
	e[1].length = e[0].length;
	assert_ok(up_director_publish(f->r, VIN, e, 2, 2, NOW, &m));
	assert_null(m.root.data); /* the director root exists already */
	up_meta_set_free(&m);
	assert_ok(up_director_targets(f->r, VIN, f->e, 2, 3, NOW, &out, &len));
	assert_true(cj_is_canonical(out, len));
	free(out);

	/* state file round trip */
	char *dir = tu_tmpdir("uptane-state");
	char path[4096];
	up_repo_state st;
	tu_join(path, sizeof(path), dir, "state.json");
	assert_ok(up_repo_state_save(up_repo_state_get(f->r), path));
	assert_ok(up_repo_state_load(path, &st));
	assert_memory_equal(&st, up_repo_state_get(f->r), sizeof(st));
	tu_write_file(path, "{\"x\":1}", 7);
	assert_rc(up_repo_state_load(path, &st), PQ_ERR_FORMAT);
	tu_rmtree(dir);
	free(dir); /* tu_tmpdir strdup()s */
	fx_free(f);
}

/* The PKI directory layout of `pqota keys init`, and a repository reopened from state. */
static void test_repo_from_pki(void **state)
{
	(void)state;
	char *dir = tu_tmpdir("uptane-pki");
	pq_pki_opts po = {.policy = PQ_POLICY_HYBRID, .classical = PQ_ALG_ED25519};
	up_repo *r = NULL, *r2 = NULL;
	up_meta_set img = {0}, dir_m = {0}, img2 = {0};
	up_repo_opts o = {.policy = PQ_POLICY_HYBRID};
	fx *f = fx_new(PQ_POLICY_HYBRID); /* only for its model */
	assert_ok(pq_pki_init(dir, &po));
	assert_ok(up_repo_open(dir, &o, NULL, &r));
	assert_ok(up_image_publish(r, f->t, 3, NOW, &img));
	assert_ok(up_director_publish(r, VIN, f->e, 2, 1, NOW, &dir_m));
	up_verify_input in;
	up_verify_result res;
	fx_input(f, &in);
	in.image_root = B(&img.root);
	in.image_timestamp = B(&img.timestamp);
	in.image_snapshot = B(&img.snapshot);
	in.image_targets = B(&img.targets);
	in.director_root = B(&dir_m.root);
	in.director_timestamp = B(&dir_m.timestamp);
	in.director_snapshot = B(&dir_m.snapshot);
	in.director_targets = B(&dir_m.targets);
	expect_ok(&in, &res);
	up_verify_result_free(&res);
	/* reopen with the saved state: versions continue */
	assert_ok(up_repo_open(dir, &o, up_repo_state_get(r), &r2));
	assert_ok(up_image_publish(r2, f->t, 3, NOW, &img2));
	assert_null(img2.root.data);
	assert_int_equal(img2.targets.version, 2);
	in.image_timestamp = B(&img2.timestamp);
	in.image_snapshot = B(&img2.snapshot);
	in.image_targets = B(&img2.targets);
	in.image_trusted = (up_versions){1, 1, 1, 1};
	expect_ok(&in, &res);
	up_verify_result_free(&res);
	/* the wrong policy for the files */
	up_repo *r3 = NULL;
	o.policy = PQ_POLICY_PQ;
	assert_ok(up_repo_open(dir, &o, NULL, &r3)); /* ML-DSA files exist */
	up_repo_free(r3);
	o.policy = PQ_POLICY_CLASSICAL;
	o.classical = PQ_ALG_ECDSA_P256;
	assert_rc(up_repo_open(dir, &o, NULL, &r3), PQ_ERR_NOTFOUND);
	up_meta_set_free(&img);
	up_meta_set_free(&img2);
	up_meta_set_free(&dir_m);
	up_repo_free(r);
	up_repo_free(r2);
	fx_free(f);
	tu_rmtree(dir);
	free(dir); /* tu_tmpdir strdup()s */
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_happy_hybrid),    cmocka_unit_test(test_happy_pq),
	    cmocka_unit_test(test_happy_classical), cmocka_unit_test(test_format),
	    cmocka_unit_test(test_rotation),        cmocka_unit_test(test_rotation_director),
	    cmocka_unit_test(test_rollback),        cmocka_unit_test(test_freeze),
	    cmocka_unit_test(test_mix_and_match),   cmocka_unit_test(test_endless_data),
	    cmocka_unit_test(test_signatures),      cmocka_unit_test(test_thresholds),
	    cmocka_unit_test(test_disagreement),    cmocka_unit_test(test_bundle_target),
	    cmocka_unit_test(test_director_same),   cmocka_unit_test(test_repo_inputs),
	    cmocka_unit_test(test_repo_from_pki),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
