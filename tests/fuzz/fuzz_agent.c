/* fuzz_agent.c: libFuzzer harness for what the vehicle agent reads from MQTT (src/agent):
 * the envelope check (ag_msg_check), campaign prerequisites and the readiness checks
 * (ag_prereq_parse, ag_readiness), ota_campaign_metadata (ag_meta_parse) and, on the same
 * bytes, the lookup of a target in image repository targets.json (ag_image_target).
 *
 * Input: a message payload, as the agent parses it (JSON, duplicate keys refused, at most
 * 256 KiB) for vehicle FUZZVIN0000000001. Whatever parses must obey the parsers' promises,
 * else the harness aborts: an envelope's strings are present and bounded and its vin is the
 * vehicle's; prerequisites are in range; metadata has 1..AG_IMAGES_MAX images with distinct
 * ECU ids, https URLs, NUL-terminated bounded strings, lengths within AG_LEN_MAX, and an
 * encryption aad of exactly "<vin>|<package sha256>"; a failed parse leaves nothing
 * allocated. */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>

#include "agent/agent_int.h"
#include "core/fileio.h"
#include "core/text.h"
#include "crypto/hash.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define VIN       "FUZZVIN0000000001"
#define INPUT_MAX (256u * 1024)

static void bounded(const char *s, size_t cap)
{
	if (!memchr(s, '\0', cap))
		abort();
}

static void check_file(const ag_file *f)
{
	bounded(f->name, sizeof(f->name));
	bounded(f->url, sizeof(f->url));
	if (strncmp(f->url, "https://", 8) != 0 || f->length == 0 || f->length > AG_LEN_MAX)
		abort();
	if (f->enc.present) {
		char want[AG_AAD_MAX + 1], hex[65];
		pq_hex_encode(f->sha256, 32, hex);
		snprintf(want, sizeof(want), "%s|%s", VIN, hex);
		if (strcmp(f->enc.aad, want) != 0 || f->enc.wrapped_len == 0 ||
		    f->enc.wrapped_len > sizeof(f->enc.wrapped) || f->enc.length == 0 ||
		    f->enc.length > AG_LEN_MAX)
			abort();
	}
}

/* FUZZ_AGENT_VERBOSE=1: what each input parsed to (for seeding the corpus) */
static bool verbose(void)
{
	const char *v = getenv("FUZZ_AGENT_VERBOSE");
	return v && *v == '1';
}

static void check_meta(const json_t *m)
{
	ag_meta meta;
	if (ag_meta_parse(m, VIN, &meta) != PQ_OK) {
		if (verbose())
			fprintf(stderr, "  metadata: %s\n", pq_err_detail());
		if (meta.images || meta.n_images)
			abort();
		return;
	}
	if (verbose())
		fprintf(stderr, "  metadata: %zu images\n", meta.n_images);
	if (meta.n_images == 0 || meta.n_images > AG_IMAGES_MAX || !meta.director_targets ||
	    !json_is_object(meta.director_targets))
		abort();
	bounded(meta.campaign_id, sizeof(meta.campaign_id));
	bounded(meta.image_repo, sizeof(meta.image_repo));
	bounded(meta.director_repo, sizeof(meta.director_repo));
	if (strncmp(meta.image_repo, "https://", 8) || strncmp(meta.director_repo, "https://", 8))
		abort();
	for (size_t i = 0; i < meta.n_images; i++) {
		const ag_image *im = &meta.images[i];
		bounded(im->ecu_id, sizeof(im->ecu_id));
		bounded(im->to_version, sizeof(im->to_version));
		bounded(im->software_type, sizeof(im->software_type));
		if (!im->ecu_id[0] || !im->to_version[0] || !im->software_type[0])
			abort();
		check_file(&im->file);
		if (im->has_fallback) {
			if (!im->delta || strcmp(im->fallback.name, im->file.name) == 0)
				abort();
			check_file(&im->fallback);
		}
		if ((im->has_base || im->has_fallback) && !im->delta)
			abort();
		for (size_t k = 0; k < i; k++)
			if (strcmp(meta.images[k].ecu_id, im->ecu_id) == 0)
				abort();
	}
	ag_meta_free(&meta);
	if (meta.images || meta.n_images)
		abort();
}

static void check_prereq(const json_t *o)
{
	ag_prereq p;
	if (ag_prereq_parse(o, &p) != PQ_OK)
		return;
	if (p.battery_min_pct < -1 || p.battery_min_pct > 100 || p.parked < -1 || p.parked > 1 ||
	    p.ignition_off < -1 || p.ignition_off > 1 || p.storage_min < -1)
		abort();
	ag_vstate v = {
	    .battery_pct = 50, .parked = true, .ignition_off = false, .storage_free = 1u << 30};
	json_t *checks = NULL;
	char reason[256] = "";
	bool ok = ag_readiness(&v, &p, &checks, reason, sizeof(reason));
	if (verbose())
		fprintf(stderr, "  readiness: %s\n", ok ? "ready" : reason);
	if (!json_is_array(checks) || json_array_size(checks) != 4 || (!ok && !reason[0]))
		abort();
	bounded(reason, sizeof(reason));
	json_decref(checks);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	if (size > INPUT_MAX)
		return 0;
	up_image im;
	int trc = ag_image_target((const char *)data, size, "fuzz.full.swpg", &im);
	if (verbose() && trc == PQ_OK)
		fprintf(stderr, "image target: %s, %llu bytes\n", im.name,
		        (unsigned long long)im.length);

	json_error_t je;
	json_t *m = json_loadb((const char *)data, size, JSON_REJECT_DUPLICATES, &je);
	if (!m)
		return 0;
	ag_env env;
	int rc = ag_msg_check(m, VIN, false, &env);
	if (verbose())
		fprintf(stderr, "envelope: %s\n", rc == PQ_OK ? env.msg_type : pq_err_detail());
	if (rc == PQ_OK) {
		if (!env.msg_type || !env.message_id)
			abort();
		size_t n = strlen(env.message_id);
		if (n == 0 || n > 128 || (env.campaign_id && strlen(env.campaign_id) > 128))
			abort();
		const char *vin = json_string_value(json_object_get(m, "vin"));
		if (!vin || strcmp(vin, VIN) != 0)
			abort();
	}
	check_prereq(json_object_get(m, "prerequisites"));
	check_meta(m);
	json_decref(m);
	return 0;
}
