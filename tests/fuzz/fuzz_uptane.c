/* fuzz_uptane.c: libFuzzer harness for the vehicle-side Uptane verifier.
 *
 * At start-up it builds a valid image and director repository (hybrid policy, Ed25519 and
 * ML-DSA-65 keys from fixed seeds, so the corpus's valid metadata verifies under them) for
 * one vehicle at a fixed time. Each input is a selector byte and untrusted metadata bytes:
 * the selector picks which file of an otherwise valid set the bytes replace (a trusted root,
 * a newer root, a timestamp, snapshot or targets of either repository), or feeds them to
 * the root parser and the signature checker directly. Nothing may crash, leak or read out
 * of bounds; a success must yield a bounded result naming only known ECUs.
 *
 * Setting PQOTA_UPTANE_MKCORPUS=DIR writes the seed corpus (the valid files under each
 * selector, and a few damaged ones) to DIR at start-up. */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "uptane/cjson.h"
#include "uptane/meta.h"
#include "uptane/repo.h"
#include "uptane/verify.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define NOW   1767225600LL /* 2026-01-01T00:00:00Z */
#define VIN   "WVWZZZ1JZXW000001"
#define SLOTS 11

enum {
	S_IMG_ROOT,
	S_IMG_TS,
	S_IMG_SN,
	S_IMG_TG,
	S_DIR_ROOT,
	S_DIR_TS,
	S_DIR_SN,
	S_DIR_TG,
	S_IMG_CHAIN,
	S_ROOT_PARSE,
	S_META_CHECK,
};

static up_meta_set img, dir;
static up_blob chain2; /* image root version 2 (same keys) */
static up_root *img_root;
static const up_ecu ecus[2] = {{"ECU_011", "HW-011", 0}, {"VMG", "HW-VMG", 0}};

static void die(const char *what)
{
	fprintf(stderr, "fuzz_uptane: %s: %s\n", what, pq_err_detail());
	abort();
}

static void write_seed(const char *dirname, const char *name, int slot, const char *d, size_t n)
{
	char path[4096];
	snprintf(path, sizeof(path), "%s/%s", dirname, name);
	FILE *f = fopen(path, "wb");
	if (!f)
		die(path);
	fputc(slot, f);
	fwrite(d, 1, n, f);
	fclose(f);
}

static void mkcorpus(const char *d)
{
	const up_blob *b[8] = {&img.root, &img.timestamp, &img.snapshot, &img.targets,
	                       &dir.root, &dir.timestamp, &dir.snapshot, &dir.targets};
	char name[64];
	for (int s = 0; s < 8; s++) {
		snprintf(name, sizeof(name), "valid-%d", s);
		write_seed(d, name, s, b[s]->data, b[s]->len);
		snprintf(name, sizeof(name), "truncated-%d", s);
		write_seed(d, name, s, b[s]->data, b[s]->len / 2);
		/* the signed part alone, without the envelope */
		const char *p = strstr(b[s]->data, "\"signed\":");
		snprintf(name, sizeof(name), "signed-only-%d", s);
		if (p)
			write_seed(d, name, s, p + 9, b[s]->len - (size_t)(p + 9 - b[s]->data) - 1);
		/* no signatures */
		json_t *j = json_loadb(b[s]->data, b[s]->len, 0, NULL);
		char *t = NULL;
		size_t n = 0;
		json_array_clear(json_object_get(j, "signatures"));
		if (cj_encode(j, 1u << 20, &t, &n) == PQ_OK) {
			snprintf(name, sizeof(name), "unsigned-%d", s);
			write_seed(d, name, s, t, n);
		}
		free(t);
		json_decref(j);
	}
	write_seed(d, "chain-2", S_IMG_CHAIN, chain2.data, chain2.len);
	write_seed(d, "chain-1", S_IMG_CHAIN, img.root.data, img.root.len);
	write_seed(d, "parse-root", S_ROOT_PARSE, img.root.data, img.root.len);
	write_seed(d, "check-timestamp", S_META_CHECK, img.timestamp.data, img.timestamp.len);
	write_seed(d, "check-root", S_META_CHECK, img.root.data, img.root.len);
	static const char *const small[] = {
	    "{}",
	    "[]",
	    "{\"signatures\":[],\"signed\":{}}",
	    "{\"signatures\":[{\"keyid\":\"00\",\"method\":\"ed25519\",\"sig\":\"00\"}],"
	    "\"signed\":{\"_type\":\"timestamp\",\"expires\":\"2030-01-01T00:00:00Z\","
	    "\"meta\":{\"snapshot.json\":{\"hashes\":{\"sha256\":\"00\"},\"length\":1,"
	    "\"version\":1}},\"spec_version\":\"1.0.0\",\"version\":1}}",
	    "{\"signatures\":[],\"signed\":{\"_type\":\"root\",\"expires\":\"2030-01-01T00:00:"
	    "00Z\",\"keys\":{},\"policy\":\"pq\",\"roles\":{},\"spec_version\":\"1.0.0\","
	    "\"version\":1}}",
	};
	for (size_t i = 0; i < sizeof(small) / sizeof(small[0]); i++) {
		for (int s = 0; s < SLOTS; s += 3) {
			snprintf(name, sizeof(name), "small-%zu-%d", i, s);
			write_seed(d, name, s, small[i], strlen(small[i]));
		}
	}
}

static void init(void)
{
	static pq_key *keys[2][UP_ROLE_COUNT][2];
	up_keyset ks[2][UP_ROLE_COUNT];
	uint8_t seed[32];
	up_repo *r = NULL;
	for (int k = 0; k < 2; k++)
		for (int role = 0; role < UP_ROLE_COUNT; role++) {
			pq_alg algs[2] = {PQ_ALG_ED25519, PQ_ALG_MLDSA65};
			ks[k][role].n = 2;
			for (int a = 0; a < 2; a++) {
				memset(seed, 0x10 * k + 4 * role + a + 1, sizeof(seed));
				if (pq_key_from_seed(algs[a], seed, 32, &keys[k][role][a]) != PQ_OK)
					die("key");
				ks[k][role].keys[a] = keys[k][role][a];
			}
		}
	up_target t[2] = {
	    {.name = "ecu011.bin",
	     .length = 1000,
	     .hardware_id = "HW-011",
	     .ecu_id = "ECU_011",
	     .software_type = "APP",
	     .version = "3.0.1",
	     .release_counter = 1},
	    {.name = "vmg.bin", .length = 5000, .has_sha512 = true, .hardware_id = "HW-VMG"},
	};
	up_director_entry e[2] = {
	    {.ecu_id = "ECU_011",
	     .name = "ecu011.bin",
	     .length = 1000,
	     .hardware_id = "HW-011",
	     .release_counter = 1},
	    {.ecu_id = "VMG",
	     .name = "vmg.bin",
	     .length = 5000,
	     .has_sha512 = true,
	     .hardware_id = "HW-VMG"},
	};
	up_repo_opts o = {.policy = PQ_POLICY_HYBRID, .deterministic = true};
	if (up_repo_new(ks[0], ks[1], &o, NULL, &r) != PQ_OK ||
	    up_image_publish(r, t, 2, NOW, &img) != PQ_OK ||
	    up_director_publish(r, VIN, e, 2, 1, NOW, &dir) != PQ_OK ||
	    up_repo_rotate_root(r, UP_REPO_IMAGE, NULL, NOW, &chain2) != PQ_OK)
		die("repository");
	up_repo_free(r);
	json_t *j = json_loadb(img.root.data, img.root.len, 0, NULL);
	if (up_root_parse(json_object_get(j, "signed"), &img_root) != PQ_OK)
		die("root");
	json_decref(j);
	const char *d = getenv("PQOTA_UPTANE_MKCORPUS");
	if (d)
		mkcorpus(d);
	/* the keys stay alive for the process (the root holds its own public copies) */
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static int ready;
	if (!ready) {
		init();
		ready = 1;
	}
	if (size == 0)
		return 0;
	int slot = data[0] % SLOTS;
	up_bytes b = {(const char *)data + 1, size - 1};
	/* an empty input still needs a valid pointer */
	if (b.len == 0)
		b.data = "";

	if (slot == S_ROOT_PARSE) {
		json_t *j = json_loadb(b.data, b.len, JSON_REJECT_DUPLICATES, NULL);
		up_root *r = NULL;
		if (j && up_root_parse(json_object_get(j, "signed"), &r) == PQ_OK) {
			if (r->nkeys == 0 || r->nkeys > UP_KEYS_MAX)
				abort();
			up_root_free(r);
		}
		json_decref(j);
		return 0;
	}
	if (slot == S_META_CHECK) {
		for (int role = 0; role < UP_ROLE_COUNT; role++) {
			json_t *s = NULL;
			if (up_meta_check(img_root, (up_role)role, b.data, b.len, UP_MAX_ROOT,
			                  &s) == PQ_OK) {
				if (!json_is_object(s))
					abort();
				json_decref(s);
			} else if (s) {
				abort();
			}
		}
		return 0;
	}

	up_verify_input in = {
	    .vin = VIN,
	    .now = NOW + 60,
	    .image_root = {img.root.data, img.root.len},
	    .director_root = {dir.root.data, dir.root.len},
	    .image_timestamp = {img.timestamp.data, img.timestamp.len},
	    .image_snapshot = {img.snapshot.data, img.snapshot.len},
	    .image_targets = {img.targets.data, img.targets.len},
	    .director_timestamp = {dir.timestamp.data, dir.timestamp.len},
	    .director_snapshot = {dir.snapshot.data, dir.snapshot.len},
	    .director_targets = {dir.targets.data, dir.targets.len},
	    .ecus = ecus,
	    .n_ecus = 2,
	};
	up_bytes *slots[8] = {&in.image_root,        &in.image_timestamp, &in.image_snapshot,
	                      &in.image_targets,     &in.director_root,   &in.director_timestamp,
	                      &in.director_snapshot, &in.director_targets};
	if (slot == S_IMG_CHAIN) {
		in.image_roots = &b;
		in.n_image_roots = 1;
	} else {
		*slots[slot] = b;
	}
	up_verify_result res;
	if (up_verify(&in, &res) == PQ_OK) {
		if (res.n_images > 2 || !res.images)
			abort();
		for (size_t i = 0; i < res.n_images; i++)
			if (strcmp(res.images[i].ecu_id, "ECU_011") != 0 &&
			    strcmp(res.images[i].ecu_id, "VMG") != 0)
				abort();
		up_verify_result_free(&res);
	} else if (res.images || res.n_images) {
		abort();
	}
	return 0;
}
