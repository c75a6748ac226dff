/* telemetry.c: the vehicle's telemetry samples on oem/{vin}/telemetry (docs/protocol.md,
 * "Telemetry"), published from the main loop every ag_opts.telemetry_period_s while the
 * MQTT session is up: battery, ignition, speed and parked from the simulated vehicle state,
 * storage from the state directory's file system. */
#include <errno.h>
#include <string.h>
#include <sys/statvfs.h>

#include "agent/agent_int.h"
#include "core/log.h"
#include "core/time.h"

#define SPEED_DRIVING_KMH 50.0 /* the simulation's speed with ignition on, not parked */
#define VOLT_CHARGING     14.1 /* battery voltage with the engine running */

json_t *ag_telemetry_body(const ag_vstate *v, uint64_t storage_free, uint64_t storage_total)
{
	bool ignition_on = !v->ignition_off;
	double speed = ignition_on && !v->parked ? SPEED_DRIVING_KMH : 0.0;
	/* a resting 12 V battery: about 11.9 V empty to 12.7 V full */
	double volts = ignition_on ? VOLT_CHARGING : 11.9 + 0.008 * v->battery_pct;
	return json_pack("{s:{s:i,s:f},s:b,s:f,s:b,s:{s:I,s:I}}", "battery", "soc_pct",
	                 v->battery_pct, "voltage_v", volts, "ignition_on", ignition_on,
	                 "speed_kmh", speed, "parked", v->parked, "storage", "free_bytes",
	                 (json_int_t)storage_free, "total_bytes", (json_int_t)storage_total);
}

int ag_storage(const char *dir, int64_t free_override, uint64_t *free_bytes, uint64_t *total_bytes)
{
	struct statvfs st;
	if (statvfs(dir, &st) != 0)
		return pq_err_set(PQ_ERR_IO, "statvfs %s: %s", dir, strerror(errno));
	*total_bytes = (uint64_t)st.f_blocks * st.f_frsize;
	*free_bytes = (uint64_t)st.f_bavail * st.f_frsize;
	if (free_override >= 0) {
		*free_bytes = (uint64_t)free_override;
		if (*total_bytes < *free_bytes)
			*total_bytes = *free_bytes;
	}
	return PQ_OK;
}

void ag_telemetry_tick(ag_main *g)
{
	ag_agent *a = &g->a;
	int64_t now = pq_mono_ms();
	uint64_t free_b = 0, total_b = 0;
	if (a->o->telemetry_period_s <= 0 || now < g->telemetry_next_ms || !ag_mq_connected(a->mq))
		return; /* QoS 0: a sample is not queued while the session is down */
	g->telemetry_next_ms = now + (int64_t)a->o->telemetry_period_s * 1000;
	if (ag_storage(a->o->state_dir, a->o->storage_free, &free_b, &total_b) != PQ_OK) {
		pq_log(PQ_LOG_WARN, AG_LOGC, "telemetry not sent: %s", pq_err_detail());
		return;
	}
	json_t *body = ag_telemetry_body(&a->vstate, free_b, total_b);
	json_t *m = ag_msg_new(a->o->vin, "telemetry", NULL, NULL);
	if (!m) {
		json_decref(body);
	} else if (ag_jmerge(m, body, "telemetry") != PQ_OK) {
		json_decref(m);
		m = NULL;
	}
	ag_publish(a, "telemetry", m, 0);
}
