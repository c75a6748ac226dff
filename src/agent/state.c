/* state.c: the agent's state directory.
 *
 *   DIR/state.json        boot counter, trusted Uptane versions, the VMG bank, installed
 *                         images per ECU (current and previous), the campaign record
 *   DIR/state.json.prev   the previous state.json (used when state.json is corrupt)
 *   DIR/uptane/{image,director}-root.json   the trusted Uptane roots
 *
 * Every file is written atomically (temporary file, fsync, rename, directory fsync). */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "agent/agent_int.h"
#include "core/fileio.h"
#include "core/log.h"
#include "core/text.h"
#include "crypto/hash.h"

#define STATE_MAX (64u * 1024u * 1024u)
#define ROOT_MAX  (1024u * 1024u)

int ag_path(char *out, size_t len, const char *dir, const char *rel)
{
	int n = snprintf(out, len, "%s/%s", dir, rel);
	if (n < 0 || (size_t)n >= len)
		return pq_err_set(PQ_ERR_RANGE, "path too long: %s/%s", dir, rel);
	return PQ_OK;
}

static json_t *versions_json(const up_versions *v)
{
	return json_pack("{s:I,s:I,s:I,s:I}", "root", (json_int_t)v->root, "targets",
	                 (json_int_t)v->targets, "snapshot", (json_int_t)v->snapshot, "timestamp",
	                 (json_int_t)v->timestamp);
}

static int versions_parse(const json_t *o, up_versions *v)
{
	memset(v, 0, sizeof(*v));
	if (!o)
		return PQ_OK;
	json_t *r = json_object_get(o, "root"), *t = json_object_get(o, "targets"),
	       *s = json_object_get(o, "snapshot"), *ts = json_object_get(o, "timestamp");
	if (!json_is_integer(r) || !json_is_integer(t) || !json_is_integer(s) ||
	    !json_is_integer(ts))
		return pq_err_set(PQ_ERR_FORMAT, "uptane versions");
	v->root = json_integer_value(r);
	v->targets = json_integer_value(t);
	v->snapshot = json_integer_value(s);
	v->timestamp = json_integer_value(ts);
	return PQ_OK;
}

static json_t *installed_json(const ag_installed *in)
{
	if (!in->present)
		return json_null();
	char hex[65] = "";
	if (in->path[0])
		pq_hex_encode(in->sha256, 32, hex);
	return json_pack("{s:s,s:s,s:I,s:s,s:I}", "path", in->path, "sha256", hex, "length",
	                 (json_int_t)in->len, "version", in->version, "release_counter",
	                 (json_int_t)in->release_counter);
}

static int installed_parse(const json_t *o, ag_installed *in)
{
	memset(in, 0, sizeof(*in));
	if (!o || json_is_null(o))
		return PQ_OK;
	const char *path = ag_jstr(o, "path", PATH_MAX - 1);
	const char *sha = ag_jstr(o, "sha256", 64);
	const char *ver = ag_jstr(o, "version", VM_VER_MAX);
	json_t *len = json_object_get(o, "length"), *rc = json_object_get(o, "release_counter");
	if (!path || !sha || !ver || !json_is_integer(len) || !json_is_integer(rc))
		return pq_err_set(PQ_ERR_FORMAT, "installed image");
	size_t n = 0;
	if (path[0] && (strlen(sha) != 64 || pq_hex_decode(sha, in->sha256, 32, &n) != PQ_OK))
		return pq_err_set(PQ_ERR_FORMAT, "installed image sha256");
	in->present = true;
	snprintf(in->path, sizeof(in->path), "%s", path);
	snprintf(in->version, sizeof(in->version), "%s", ver);
	in->len = (uint64_t)json_integer_value(len);
	in->release_counter = json_integer_value(rc);
	return PQ_OK;
}

/* The factory state of one ECU: its APP version and, when the model has one, its image. */
static int factory(const char *ecu_id, const char *version, const char *image_path, ag_ecu_state *e)
{
	memset(e, 0, sizeof(*e));
	snprintf(e->ecu_id, sizeof(e->ecu_id), "%s", ecu_id);
	e->cur.present = true;
	snprintf(e->cur.version, sizeof(e->cur.version), "%s", version);
	if (image_path && image_path[0]) {
		struct stat st;
		if (stat(image_path, &st) != 0)
			return pq_err_set(PQ_ERR_IO, "%s: factory image %s: %s", ecu_id, image_path,
			                  strerror(errno));
		int rc = pq_hash_file(PQ_HASH_SHA256, image_path, e->cur.sha256);
		if (rc != PQ_OK)
			return pq_err_wrap(rc, "%s: factory image", ecu_id);
		snprintf(e->cur.path, sizeof(e->cur.path), "%s", image_path);
		e->cur.len = (uint64_t)st.st_size;
	}
	return PQ_OK;
}

static int parse_state(const char *text, size_t len, ag_state *s)
{
	json_error_t je;
	json_t *root = json_loadb(text, len, JSON_REJECT_DUPLICATES, &je);
	int rc = PQ_OK;
	if (!json_is_object(root)) {
		rc = pq_err_set(PQ_ERR_FORMAT, "not JSON: %s", je.text);
		goto out;
	}
	json_t *boot = json_object_get(root, "boot_seq");
	const char *bank = ag_jstr(root, "vmg_bank", 1);
	if (!json_is_integer(boot) || json_integer_value(boot) < 0 || !bank ||
	    (bank[0] != 'A' && bank[0] != 'B')) {
		rc = pq_err_set(PQ_ERR_FORMAT, "boot_seq or vmg_bank");
		goto out;
	}
	s->boot_seq = json_integer_value(boot);
	s->vmg_bank = bank[0];
	json_t *up = json_object_get(root, "uptane");
	if ((rc = versions_parse(json_object_get(up, "image"), &s->image_v)) != PQ_OK ||
	    (rc = versions_parse(json_object_get(up, "director"), &s->director_v)) != PQ_OK)
		goto out;
	json_t *ecus = json_object_get(root, "ecus");
	if (!json_is_object(ecus)) {
		rc = pq_err_set(PQ_ERR_FORMAT, "ecus");
		goto out;
	}
	for (size_t i = 0; i < s->n_ecus; i++) {
		json_t *e = json_object_get(ecus, s->ecus[i].ecu_id);
		if (!e)
			continue; /* new in the model: keeps its factory state */
		if ((rc = installed_parse(json_object_get(e, "cur"), &s->ecus[i].cur)) != PQ_OK ||
		    (rc = installed_parse(json_object_get(e, "prev"), &s->ecus[i].prev)) != PQ_OK) {
			rc = pq_err_wrap(rc, "ecus.%s", s->ecus[i].ecu_id);
			goto out;
		}
	}
	json_t *c = json_object_get(root, "campaign");
	if (c && !json_is_null(c)) {
		if (!json_is_object(c) || !ag_jstr(c, "campaign_id", AG_ID_MAX) ||
		    !ag_jstr(c, "phase", 32)) {
			rc = pq_err_set(PQ_ERR_FORMAT, "campaign");
			goto out;
		}
		s->campaign = json_incref(c);
	}
out:
	json_decref(root);
	return rc;
}

static int load_root(ag_state *s, const char *name, char **out, size_t *len)
{
	char p[PATH_MAX], rel[64];
	snprintf(rel, sizeof(rel), "uptane/%s-root.json", name);
	int rc = ag_path(p, sizeof(p), s->dir, rel);
	if (rc != PQ_OK)
		return rc;
	rc = pq_file_read(p, ROOT_MAX, out, len);
	if (rc == PQ_ERR_NOTFOUND || (rc == PQ_ERR_IO && errno == ENOENT)) {
		*out = NULL;
		*len = 0;
		pq_err_clear();
		return PQ_OK;
	}
	return rc;
}

int ag_state_load(const char *dir, const vm_model *m, ag_state *out)
{
	memset(out, 0, sizeof(*out));
	snprintf(out->dir, sizeof(out->dir), "%s", dir);
	out->vmg_bank = 'A';
	char p[PATH_MAX], prev[PATH_MAX];
	char *text = NULL;
	size_t len = 0;
	int rc = pq_mkdirs(dir, 0700);
	if (rc != PQ_OK)
		return pq_err_wrap(rc, "state directory %s", dir);
	chmod(dir, 0700);
	out->n_ecus = m->n_ecus + 1;
	out->ecus = calloc(out->n_ecus, sizeof(ag_ecu_state));
	if (!out->ecus)
		return pq_err_set(PQ_ERR_NOMEM, "state");
	for (size_t i = 0; i < m->n_ecus; i++) {
		const vm_ecu *e = &m->ecus[i];
		if ((rc = factory(e->ecu_id, e->version[VM_SW_APP], e->image_path,
		                  &out->ecus[i])) != PQ_OK)
			goto fail;
	}
	if ((rc = factory("VMG", m->vmg_version, m->vmg_image_path, &out->ecus[m->n_ecus])) !=
	    PQ_OK)
		goto fail;

	if ((rc = ag_path(p, sizeof(p), dir, "state.json")) != PQ_OK ||
	    (rc = ag_path(prev, sizeof(prev), dir, "state.json.prev")) != PQ_OK)
		goto fail;
	bool have = false;
	const char *which[2] = {p, prev};
	for (int k = 0; k < 2 && !have; k++) {
		struct stat st;
		if (stat(which[k], &st) != 0)
			continue;
		rc = pq_file_read(which[k], STATE_MAX, &text, &len);
		if (rc == PQ_OK)
			rc = parse_state(text, len, out);
		free(text);
		text = NULL;
		if (rc == PQ_OK) {
			have = true;
			out->recovered = k == 1;
			if (k == 1)
				pq_log(PQ_LOG_WARN, AG_LOGC, "%s is unreadable; using %s", p, prev);
		} else {
			char why[256];
			snprintf(why, sizeof(why), "%s", pq_err_detail());
			pq_log(PQ_LOG_WARN, AG_LOGC, "%s: %s", which[k], why);
			if (k == 1) {
				rc = pq_err_set(
				    PQ_ERR_FORMAT,
				    "%s and %s are both corrupt; move them away to start over", p,
				    prev);
				goto fail;
			}
			/* state.json corrupt without a readable .prev: refuse below unless .prev
			 * exists (the loop tries it next) */
			if (stat(prev, &st) != 0) {
				rc = pq_err_set(PQ_ERR_FORMAT,
				                "%s is corrupt (%s); move it away to start over", p,
				                why);
				goto fail;
			}
			/* reset what a partial parse may have set */
			json_decref(out->campaign);
			out->campaign = NULL;
		}
	}
	if ((rc = load_root(out, "image", &out->image_root, &out->image_root_len)) != PQ_OK ||
	    (rc = load_root(out, "director", &out->director_root, &out->director_root_len)) !=
	        PQ_OK)
		goto fail;
	return PQ_OK;
fail:
	ag_state_free(out);
	return rc;
}

int ag_state_save(const ag_state *s)
{
	char p[PATH_MAX], prev[PATH_MAX];
	int rc = ag_path(p, sizeof(p), s->dir, "state.json");
	if (rc == PQ_OK)
		rc = ag_path(prev, sizeof(prev), s->dir, "state.json.prev");
	if (rc != PQ_OK)
		return rc;
	json_t *ecus = json_object();
	json_t *root = json_pack("{s:i,s:I,s:s#,s:{s:o,s:o},s:o,s:O}", "version", 1, "boot_seq",
	                         (json_int_t)s->boot_seq, "vmg_bank", &s->vmg_bank, (size_t)1,
	                         "uptane", "image", versions_json(&s->image_v), "director",
	                         versions_json(&s->director_v), "ecus", ecus, "campaign",
	                         s->campaign ? s->campaign : json_null());
	if (!root)
		return pq_err_set(PQ_ERR_NOMEM, "state");
	for (size_t i = 0; i < s->n_ecus; i++) {
		json_t *e = json_pack("{s:o,s:o}", "cur", installed_json(&s->ecus[i].cur), "prev",
		                      installed_json(&s->ecus[i].prev));
		if (ag_jset(ecus, s->ecus[i].ecu_id, e) != PQ_OK) {
			json_decref(root);
			return pq_err_set(PQ_ERR_NOMEM, "state");
		}
	}
	char *text = json_dumps(root, JSON_COMPACT);
	json_decref(root);
	if (!text)
		return pq_err_set(PQ_ERR_NOMEM, "state");
	/* keep the last good file: a crash between the two steps leaves either */
	struct stat st;
	if (stat(p, &st) == 0 && rename(p, prev) != 0)
		rc = pq_err_set(PQ_ERR_IO, "%s: %s", prev, strerror(errno));
	if (rc == PQ_OK)
		rc = pq_file_write_atomic(p, text, strlen(text), 0600, true);
	free(text);
	return rc;
}

void ag_state_free(ag_state *s)
{
	free(s->ecus);
	free(s->image_root);
	free(s->director_root);
	json_decref(s->campaign);
	memset(s, 0, sizeof(*s));
}

ag_ecu_state *ag_state_ecu(ag_state *s, const char *ecu_id)
{
	for (size_t i = 0; i < s->n_ecus; i++)
		if (strcmp(s->ecus[i].ecu_id, ecu_id) == 0)
			return &s->ecus[i];
	return NULL;
}

static int set_root(ag_state *s, const char *name, const char *data, size_t len, char **slot,
                    size_t *slot_len)
{
	char p[PATH_MAX], rel[64];
	snprintf(rel, sizeof(rel), "uptane/%s-root.json", name);
	int rc = ag_path(p, sizeof(p), s->dir, rel);
	if (rc == PQ_OK)
		rc = ag_path(rel, sizeof(rel), "", "");
	char d[PATH_MAX];
	if (rc == PQ_OK)
		rc = ag_path(d, sizeof(d), s->dir, "uptane");
	if (rc == PQ_OK)
		rc = pq_mkdirs(d, 0700);
	if (rc == PQ_OK)
		rc = pq_file_write_atomic(p, data, len, 0600, true);
	if (rc != PQ_OK)
		return rc;
	char *copy = malloc(len + 1);
	if (!copy)
		return pq_err_set(PQ_ERR_NOMEM, "root");
	memcpy(copy, data, len);
	copy[len] = '\0';
	free(*slot);
	*slot = copy;
	*slot_len = len;
	return PQ_OK;
}

int ag_state_set_roots(ag_state *s, const char *image, size_t image_len, const char *director,
                       size_t director_len)
{
	int rc = PQ_OK;
	if (image && (image_len != s->image_root_len || !s->image_root ||
	              memcmp(image, s->image_root, image_len) != 0))
		rc = set_root(s, "image", image, image_len, &s->image_root, &s->image_root_len);
	if (rc == PQ_OK && director &&
	    (director_len != s->director_root_len || !s->director_root ||
	     memcmp(director, s->director_root, director_len) != 0))
		rc = set_root(s, "director", director, director_len, &s->director_root,
		              &s->director_root_len);
	return rc;
}
