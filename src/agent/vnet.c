/* vnet.c: the in-vehicle network as the VMG sees it: one DoIP connection per zone gateway
 * (reconnected on failure), the vehicle configuration (VCI) read over UDS from every ECU
 * with the zones in parallel, and remote diagnostics (diag_request routed to the ECU's
 * zone gateway; the VMG answers its own few DIDs itself). */
#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#include "agent/agent_int.h"
#include "core/log.h"
#include "core/text.h"
#include "core/time.h"
#include "vehicle/sim.h"
#include "vehicle/uds.h"

#define CONNECT_TIMEOUT_MS 3000
#define READ_TIMEOUT_MS    3000
#define DIAG_TIMEOUT_MAX   60000
#define UDS_MAX            4095
#define UDS_RESP_MAX       16384
#define VMG_MAX_PACKAGE    (1ll << 30) /* what the VMG accepts for itself */

int ag_zone_conn(ag_agent *a, doipc **zc, int zone)
{
	if (zone < 1 || zone > VM_ZONES_MAX)
		return pq_err_set(PQ_ERR_INVAL, "zone %d", zone);
	if (zc[zone])
		return PQ_OK;
	uint16_t port = sim_zone_port(a->sim, zone);
	if (!port)
		return pq_err_set(PQ_ERR_NOTFOUND, "no zone %d", zone);
	int rc =
	    doipc_connect("127.0.0.1", port, a->model.tester_addr, CONNECT_TIMEOUT_MS, &zc[zone]);
	if (rc != PQ_OK)
		return pq_err_wrap(rc, "ZGW%d (127.0.0.1:%u)", zone, port);
	return PQ_OK;
}

void ag_zone_close(doipc **zc, int zone)
{
	if (zone >= 1 && zone <= VM_ZONES_MAX && zc[zone]) {
		doipc_close(zc[zone]);
		zc[zone] = NULL;
	}
}

/* ---- VCI ------------------------------------------------------------------------------- */

typedef struct {
	ag_agent *a;
	doipc **zc;
	int zone;
	tester_ecu_info *info; /* per model ECU */
	bool *ok;
} zone_job;

/* Reads one ECU, reconnecting the zone once on a network error. */
static int read_one(ag_agent *a, doipc **zc, int zone, const vm_ecu *e, tester_ecu_info *info)
{
	int rc = PQ_OK;
	for (int attempt = 0; attempt < 2; attempt++) {
		rc = ag_zone_conn(a, zc, zone);
		if (rc == PQ_OK)
			rc = tester_read_info(zc[zone], e->addr, info);
		if (rc == PQ_OK || (rc != PQ_ERR_IO && rc != PQ_ERR_TIMEOUT))
			break;
		ag_zone_close(zc, zone);
	}
	return rc;
}

static void *zone_vci(void *arg)
{
	zone_job *j = arg;
	const vm_model *m = &j->a->model;
	for (size_t i = 0; i < m->n_ecus; i++) {
		if (m->ecus[i].zone != j->zone)
			continue;
		int rc = read_one(j->a, j->zc, j->zone, &m->ecus[i], &j->info[i]);
		j->ok[i] = rc == PQ_OK;
		if (rc != PQ_OK)
			pq_log(PQ_LOG_WARN, AG_LOGC, "VCI: %s: %s", m->ecus[i].ecu_id,
			       pq_err_detail());
	}
	return NULL;
}

json_t *ag_collect_vci(ag_agent *a, doipc **zc)
{
	const vm_model *m = &a->model;
	tester_ecu_info *info = calloc(m->n_ecus ? m->n_ecus : 1, sizeof(*info));
	bool *ok = calloc(m->n_ecus ? m->n_ecus : 1, sizeof(bool));
	zone_job jobs[VM_ZONES_MAX];
	pthread_t th[VM_ZONES_MAX];
	bool started[VM_ZONES_MAX] = {false};
	json_t *out = NULL, *ecus = json_array();
	if (!info || !ok || !ecus)
		goto done;
	for (size_t z = 0; z < m->n_zones; z++) {
		jobs[z] = (zone_job){a, zc, m->zones[z].zone, info, ok};
		started[z] = pthread_create(&th[z], NULL, zone_vci, &jobs[z]) == 0;
		if (!started[z])
			zone_vci(&jobs[z]);
	}
	for (size_t z = 0; z < m->n_zones; z++)
		if (started[z])
			pthread_join(th[z], NULL);

	/* the VMG itself */
	pthread_mutex_lock(&a->lock);
	ag_ecu_state *vmg = ag_state_ecu(&a->st, "VMG");
	char bank[2] = {a->st.vmg_bank, '\0'};
	json_t *v =
	    json_pack("{s:s,s:s,s:i,s:s,s:s,s:{s:s},s:{s:b,s:I}}", "ecu_id", "VMG", "hardware_id",
	              m->vmg_hardware_id, "zone", 0, "serial", m->vin, "bank", bank, "software",
	              "APP", vmg && vmg->cur.version[0] ? vmg->cur.version : m->vmg_version,
	              "capabilities", "delta", 1, "max_package_size", (json_int_t)VMG_MAX_PACKAGE);
	pthread_mutex_unlock(&a->lock);
	if (ag_jappend(ecus, v) != PQ_OK)
		goto done;
	unsigned dtcs = 0;
	for (size_t i = 0; i < m->n_ecus; i++) {
		if (ag_jappend(ecus, ag_vci_ecu(&m->ecus[i], ok[i] ? &info[i] : NULL)) != PQ_OK)
			goto done;
		if (ok[i])
			dtcs += info[i].dtc_count;
	}
	out = json_pack("{s:o,s:{s:I},s:I}", "ecus", ecus, "storage", "free_bytes",
	                (json_int_t)a->vstate.storage_free, "dtc_count", (json_int_t)dtcs);
	ecus = NULL;
done:
	json_decref(ecus);
	free(info);
	free(ok);
	return out;
}

/* ---- diagnostics ----------------------------------------------------------------------- */

/* The VMG's own UDS server: 0x3E tester present, 0x22 with F190 (VIN), F189 (software
 * version), F191 (hardware number); anything else is a negative response. */
static size_t vmg_uds(ag_agent *a, const uint8_t *req, size_t len, uint8_t *resp)
{
	const char *val = NULL;
	char ver[VM_VER_MAX + 1];
	if (len == 2 && req[0] == 0x3E && (req[1] & 0x7F) == 0) {
		if (uds_suppress_requested(req, len))
			return 0; /* 3E 80: no positive response */
		resp[0] = 0x7E;
		resp[1] = 0x00;
		return 2;
	}
	if (req[0] != 0x22 && req[0] != 0x3E) {
		resp[0] = 0x7F;
		resp[1] = req[0];
		resp[2] = 0x11;
		return 3;
	}
	if (req[0] == 0x3E || len != 3) {
		resp[0] = 0x7F;
		resp[1] = req[0];
		resp[2] = 0x13;
		return 3;
	}
	uint16_t did = (uint16_t)(req[1] << 8 | req[2]);
	pthread_mutex_lock(&a->lock);
	ag_ecu_state *vmg = ag_state_ecu(&a->st, "VMG");
	snprintf(ver, sizeof(ver), "%s", vmg ? vmg->cur.version : a->model.vmg_version);
	pthread_mutex_unlock(&a->lock);
	if (did == 0xF190)
		val = a->model.vin;
	else if (did == 0xF189)
		val = ver;
	else if (did == 0xF191)
		val = a->model.vmg_hardware_id;
	if (!val) {
		resp[0] = 0x7F;
		resp[1] = 0x22;
		resp[2] = 0x31;
		return 3;
	}
	size_t n = strlen(val);
	resp[0] = 0x62;
	resp[1] = req[1];
	resp[2] = req[2];
	memcpy(resp + 3, val, n);
	return 3 + n;
}

/* Where a diagnostic target is: zone (0 = the VMG itself) and logical address. */
static int diag_target(const vm_model *m, const char *ecu_id, int *zone, uint16_t *addr)
{
	if (strcmp(ecu_id, "VMG") == 0) {
		*zone = 0;
		*addr = m->tester_addr;
		return PQ_OK;
	}
	const vm_ecu *e = vm_model_find(m, ecu_id);
	if (e) {
		*zone = e->zone;
		*addr = e->addr;
		return PQ_OK;
	}
	if (strncmp(ecu_id, "ZGW", 3) == 0 && ecu_id[3] >= '1' && ecu_id[3] <= '9' && !ecu_id[4])
		for (size_t z = 0; z < m->n_zones; z++)
			if (m->zones[z].zone == ecu_id[3] - '0') {
				*zone = m->zones[z].zone;
				*addr = m->zones[z].addr;
				return PQ_OK;
			}
	return pq_err_set(PQ_ERR_NOTFOUND, "this vehicle has no ECU %s", ecu_id);
}

int ag_diag_answer(json_t *r, const uint8_t *resp, size_t len, const char **status)
{
	if (len == 0)
		return pq_err_set(PQ_ERR_FORMAT, "empty UDS response");
	char *hex = malloc(2 * len + 1);
	if (!hex)
		return pq_err_set(PQ_ERR_NOMEM, "out of memory");
	pq_hex_encode_upper(resp, len, hex);
	bool negative = resp[0] == 0x7F && len >= 3;
	json_t *f = negative ? json_pack("{s:s,s:i,s:s}", "response", hex, "nrc", (int)resp[2],
	                                 "nrc_name", uds_nrc_name(resp[2]))
	                     : json_pack("{s:s}", "response", hex);
	free(hex);
	int rc = ag_jmerge(r, f, "diag_response");
	if (rc == PQ_OK)
		*status = negative ? "negative" : "positive";
	return rc;
}

/* A diag_request's members, checked. */
typedef struct {
	const char *request_id, *ecu_id, *hex; /* NULL when missing or malformed */
	uint8_t q[UDS_MAX];
	size_t qlen;
	int timeout_ms;
} diag_req;

static int diag_parse(const json_t *req, diag_req *d, char *err, size_t err_len)
{
	json_t *to = json_object_get(req, "timeout_ms");
	d->request_id = ag_jstr(req, "request_id", AG_ID_MAX);
	d->ecu_id = ag_jstr(req, "ecu_id", VM_ID_MAX);
	d->hex = ag_jstr(req, "request", 2 * UDS_MAX);
	d->timeout_ms = 5000;
	if (!d->request_id || !d->ecu_id || !d->hex) {
		snprintf(err, err_len, "request_id, ecu_id and request must be strings");
		return PQ_ERR_FORMAT;
	}
	size_t hl = strlen(d->hex);
	if (hl < 2 || hl % 2 || pq_hex_decode(d->hex, d->q, sizeof(d->q), &d->qlen) != PQ_OK) {
		snprintf(err, err_len, "request is not 1..%d bytes of hex", UDS_MAX);
		return PQ_ERR_FORMAT;
	}
	if (!to || json_is_null(to))
		return PQ_OK;
	if (!json_is_integer(to) || json_integer_value(to) < 1 ||
	    json_integer_value(to) > DIAG_TIMEOUT_MAX) {
		snprintf(err, err_len, "timeout_ms is not 1..%d", DIAG_TIMEOUT_MAX);
		return PQ_ERR_FORMAT;
	}
	d->timeout_ms = (int)json_integer_value(to);
	return PQ_OK;
}

/* Sends the request to its ECU over its zone's connection (reconnected once when it broke),
 * or answers it for the VMG. *status becomes "timeout" when no answer came in time. */
static int diag_send(ag_agent *a, doipc **zc, const diag_req *d, uint8_t *resp, size_t *rlen,
                     const char **status)
{
	int zone = 0;
	uint16_t addr = 0;
	int rc = diag_target(&a->model, d->ecu_id, &zone, &addr);
	if (rc != PQ_OK)
		return rc;
	if (zone == 0) {
		*rlen = vmg_uds(a, d->q, d->qlen, resp);
		return PQ_OK;
	}
	for (int attempt = 0; attempt < 2; attempt++) {
		rc = ag_zone_conn(a, zc, zone);
		if (rc == PQ_OK)
			rc = doipc_uds(zc[zone], addr, d->q, d->qlen, resp, UDS_RESP_MAX, rlen,
			               d->timeout_ms);
		if (rc != PQ_ERR_IO)
			break;
		ag_zone_close(zc, zone); /* the connection broke: once more */
	}
	if (rc == PQ_ERR_TIMEOUT) {
		*status = "timeout";
		ag_zone_close(zc, zone); /* a late answer must not confuse the next request */
	}
	return rc;
}

json_t *ag_diag(ag_agent *a, doipc **zc, const json_t *req, const ag_env *env)
{
	int64_t t0 = pq_mono_ms();
	diag_req *d = calloc(1, sizeof(*d));
	uint8_t *resp = malloc(UDS_RESP_MAX);
	json_t *r = ag_msg_new(a->o->vin, "diag_response", env->message_id, NULL);
	char err[AG_ERR_MAX] = "";
	const char *status = "error";
	size_t rlen = 0;
	if (!d || !resp || !r)
		goto oom;
	bool parsed = diag_parse(req, d, err, sizeof(err)) == PQ_OK;
	if (ag_jmerge(r,
	              json_pack("{s:s,s:s}", "request_id", d->request_id ? d->request_id : "",
	                        "ecu_id", d->ecu_id ? d->ecu_id : ""),
	              "diag_response") != PQ_OK)
		goto oom;
	bool failed = parsed && diag_send(a, zc, d, resp, &rlen, &status) != PQ_OK;
	if (parsed && !failed && rlen == 0 && uds_suppress_requested(d->q, d->qlen))
		status = "suppressed"; /* no answer was expected, and no NRC came: the rule
		                        * the server checks too (src/server/diag.c) */
	else if (parsed && !failed)
		failed = ag_diag_answer(r, resp, rlen, &status) != PQ_OK;
	if (failed)
		snprintf(err, sizeof(err), "%s", pq_err_detail());
	if (ag_jmerge(r,
	              json_pack("{s:s,s:s*,s:I}", "status", status, "error", err[0] ? err : NULL,
	                        "elapsed_ms", (json_int_t)(pq_mono_ms() - t0)),
	              "diag_response") != PQ_OK)
		goto oom;
	pq_log(PQ_LOG_INFO, AG_LOGC, "diag %s %s %s: %s%s%s", d->request_id ? d->request_id : "?",
	       d->ecu_id ? d->ecu_id : "?", d->hex ? d->hex : "?", status, err[0] ? ": " : "", err);
	goto out;
oom: /* ag_publish logs the message that could not be built */
	json_decref(r);
	r = NULL;
out:
	free(resp);
	free(d);
	return r;
}
