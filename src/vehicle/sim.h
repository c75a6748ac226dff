/* sim.h: the in-vehicle simulation: one DoIP entity (ISO 13400-2 over TCP on 127.0.0.1) per
 * zone gateway, routing UDS (ISO 14229) diagnostic messages to simulated ECUs of its zone.
 *
 * Each ZGW accepts tester connections, answers routing activation (only the model's tester
 * address is accepted), alive checks, generic NACKs for bad frames, and diagnostic
 * messages: a DoIP diagnostic ack, then the ECU's UDS response (or a diagnostic NACK
 * 0x03 for an unknown target address). The ZGW itself answers UDS at its own address
 * (0x10, 0x3E, 0x22 F190/F18C/F191).
 *
 * Each ECU (ecu.h) has two banks (A/B), each with a version per software type and the
 * SHA-256, length and CRC-32 of its image; programming writes the inactive bank, a reset
 * after a successful check activates it, and the previous bank is kept for rollback. ECU
 * state is persisted (atomically, after every change that matters: a bank switch, a DTC,
 * a check) in state_dir/ecus.json, so a restarted simulation continues where it stopped.
 * The UDS services and routines are described in docs/vehicle.md and uds.h. */
#ifndef PQOTA_VEHICLE_SIM_H
#define PQOTA_VEHICLE_SIM_H
#include <stdint.h>
#include "core/err.h"
#include "vehicle/model.h"

/* Fault switches; each is a comma-separated list of ECU ids, or NULL / "" for none. */
typedef struct {
	const char *fail_program;  /* the 0x31 check routine of these ECUs fails (NRC 0x72) */
	const char *corrupt_block; /* one transferred block (the second) is corrupted in these
	                              ECUs' memory: the check routine then reports a mismatch */
	const char *deny_security; /* 0x27 send-key is always refused (NRC 0x35 invalidKey) */
	const char *slow_flash;    /* slow flash memory: each 0x36 block takes SIM_SLOW_FLASH_MS
	                              before its response (a programming that lasts seconds) */
} sim_faults;

#define SIM_SLOW_FLASH_MS 20

typedef struct sim sim;

/* Loads (or creates from the model's factory state) state_dir/ecus.json and starts one
 * DoIP server thread per zone, each listening on 127.0.0.1 at the zone's port (0: any
 * free port). The model is copied; faults are copied. */
int sim_start(const vm_model *m, const char *state_dir, const sim_faults *f,
              sim **out) PQ_MUST_CHECK;
/* The TCP port zone `zone` (1..n) listens on, 0 if there is no such zone. */
uint16_t sim_zone_port(const sim *s, int zone);
/* Sets the general inactivity timeout of tester connections (ISO 13400-2
 * T_TCP_General_Inactivity, default 5 minutes); for tests. */
void sim_set_idle_timeout(sim *s, int ms);
/* Stops the servers, closes every connection, saves the state and frees. NULL is a no-op. */
void sim_stop(sim *s);

#endif
