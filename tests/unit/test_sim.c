/* test_sim.c: the in-vehicle simulation over real TCP: zone gateways (DoIP servers on
 * 127.0.0.1) with simulated ECUs, driven by the tester: identification from two threads,
 * programming a 300 KB image (the block counter wraps), persistence across a restart,
 * rollback, the fault switches, and the DoIP error paths with a raw socket. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>

#include <arpa/inet.h>
#include <netinet/in.h>
#include <poll.h>
#include <pthread.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "testutil.h"
#include "core/fileio.h"
#include "crypto/hash.h"
#include "vehicle/doip.h"
#include "vehicle/model.h"
#include "vehicle/sim.h"
#include "vehicle/tester.h"
#include "vehicle/uds.h"

#define VIN       "SIMTEST0001"
#define ECU_1     0x1001 /* zone 1, factory image */
#define ECU_2     0x1002 /* zone 1 */
#define ECU_21    0x1021 /* zone 2 */
#define FACTORY_N 1000

typedef struct {
	char *dir;
	char model_path[512];
	char state_dir[512];
	char factory[512];
	uint8_t factory_sha[32];
	vm_model m;
} fixture;

static const char model_json[] =
    "{\"vin\":\"" VIN "\",\"model\":\"Sim-1\",\n"
    " \"zones\":[{\"zone\":1,\"ecus\":[\n"
    "   {\"ecu_id\":\"ECU_001\",\"hardware_id\":\"HW-1-001\",\"serial\":\"SER-1\",\n"
    "    \"part_number\":\"PN-A\",\"versions\":{\"APP\":\"1.0.0\",\"BOOT\":\"2.0.0\","
    "\"CAL\":\"3.0.0\"},\n"
    "    \"image\":\"factory.bin\",\"max_package_size\":8388608},\n"
    "   {\"ecu_id\":\"ECU_002\",\"hardware_id\":\"HW-1-002\"}]},\n"
    "  {\"zone\":2,\"ecus\":[{\"ecu_id\":\"ECU_021\",\"hardware_id\":\"HW-2-021\"}]}]}\n";

static void fill(uint8_t *p, size_t n, uint32_t seed)
{
	for (size_t i = 0; i < n; i++) {
		seed = seed * 1103515245u + 12345u;
		p[i] = (uint8_t)(seed >> 16);
	}
}

static int setup(void **state)
{
	fixture *f = calloc(1, sizeof(*f));
	assert_non_null(f);
	f->dir = tu_tmpdir("sim");
	tu_join(f->model_path, sizeof(f->model_path), f->dir, "model.json");
	tu_join(f->state_dir, sizeof(f->state_dir), f->dir, "state");
	tu_join(f->factory, sizeof(f->factory), f->dir, "factory.bin");
	uint8_t img[FACTORY_N];
	fill(img, sizeof(img), 7);
	tu_write_file(f->factory, img, sizeof(img));
	assert_ok(pq_hash(PQ_HASH_SHA256, img, sizeof(img), f->factory_sha));
	tu_write_file(f->model_path, model_json, strlen(model_json));
	assert_ok(vm_model_load(f->model_path, NULL, &f->m));
	*state = f;
	return 0;
}

static int teardown(void **state)
{
	fixture *f = *state;
	vm_model_free(&f->m);
	tu_rmtree(f->dir);
	free(f->dir);
	free(f);
	return 0;
}

static doipc *connect_zone(sim *s, int zone)
{
	doipc *c = NULL;
	assert_ok(doipc_connect("127.0.0.1", sim_zone_port(s, zone), VM_TESTER_ADDR, 2000, &c));
	return c;
}

/* Writes an image of n bytes and describes it. */
static void make_image(const fixture *f, const char *name, size_t n, uint32_t seed,
                       const char *version, tester_image *img, char *path, size_t cap)
{
	uint8_t *p = malloc(n);
	assert_non_null(p);
	fill(p, n, seed);
	tu_join(path, cap, f->dir, name);
	tu_write_file(path, p, n);
	memset(img, 0, sizeof(*img));
	img->path = path;
	img->len = n;
	assert_ok(pq_hash(PQ_HASH_SHA256, p, n, img->sha256));
	img->crc32 = pq_crc32(0, p, n);
	img->software_type = 1;
	snprintf(img->version, sizeof(img->version), "%s", version);
	free(p);
}

typedef struct {
	sim *s;
	int zone;
	uint16_t ecus[2];
	size_t n;
	int failures;
	char err[256];
} reader_arg;

static void *reader(void *arg)
{
	reader_arg *a = arg;
	doipc *c = NULL;
	if (doipc_connect("127.0.0.1", sim_zone_port(a->s, a->zone), VM_TESTER_ADDR, 2000, &c) !=
	    PQ_OK) {
		a->failures++;
		snprintf(a->err, sizeof(a->err), "%s", pq_err_detail());
		return NULL;
	}
	for (int round = 0; round < 25; round++) {
		for (size_t i = 0; i < a->n; i++) {
			tester_ecu_info info;
			if (tester_read_info(c, a->ecus[i], &info) != PQ_OK) {
				a->failures++;
				snprintf(a->err, sizeof(a->err), "%s", pq_err_detail());
				continue;
			}
			char want[16];
			snprintf(want, sizeof(want), "HW-%d-%03x", a->zone, a->ecus[i] & 0xFFF);
			if (strcmp(info.vin, VIN) != 0 || strcmp(info.hardware_id, want) != 0 ||
			    info.bank != 'A')
				a->failures++;
		}
	}
	doipc_close(c);
	return NULL;
}

static void test_read_info_two_zones(void **state)
{
	fixture *f = *state;
	sim *s = NULL;
	assert_ok(sim_start(&f->m, f->state_dir, NULL, &s));
	assert_int_not_equal(sim_zone_port(s, 1), 0);
	assert_int_not_equal(sim_zone_port(s, 2), 0);
	assert_int_not_equal(sim_zone_port(s, 1), sim_zone_port(s, 2));
	assert_int_equal(sim_zone_port(s, 3), 0);

	reader_arg a1 = {s, 1, {ECU_1, ECU_2}, 2, 0, ""};
	reader_arg a2 = {s, 2, {ECU_21}, 1, 0, ""};
	pthread_t t1, t2;
	assert_int_equal(pthread_create(&t1, NULL, reader, &a1), 0);
	assert_int_equal(pthread_create(&t2, NULL, reader, &a2), 0);
	pthread_join(t1, NULL);
	pthread_join(t2, NULL);
	if (a1.failures || a2.failures)
		fail_msg("read_info failures: %d (%s), %d (%s)", a1.failures, a1.err, a2.failures,
		         a2.err);

	/* the details of one ECU: model values and the factory image */
	doipc *c = connect_zone(s, 1);
	tester_ecu_info info;
	assert_ok(tester_read_info(c, ECU_1, &info));
	assert_string_equal(info.serial, "SER-1");
	assert_string_equal(info.part_number, "PN-A");
	assert_string_equal(info.version[VM_SW_APP], "1.0.0");
	assert_string_equal(info.version[VM_SW_BOOT], "2.0.0");
	assert_string_equal(info.version[VM_SW_CAL], "3.0.0");
	assert_memory_equal(info.image_sha256, f->factory_sha, 32);
	assert_int_equal(info.image_len, FACTORY_N);
	assert_int_equal(info.dtc_count, 0);
	/* ECU_002: no factory image, default serial */
	assert_ok(tester_read_info(c, ECU_2, &info));
	static const uint8_t zero[32];
	assert_memory_equal(info.image_sha256, zero, 32);
	assert_int_equal(info.image_len, 0);
	assert_string_equal(info.serial, "SN-ST0001-002");
	/* an ECU of zone 2 is not behind ZGW1 */
	assert_rc(tester_read_info(c, ECU_21, &info), PQ_ERR_NOTFOUND);
	/* the gateway answers at its own address: 22 F190, 3E 00 */
	uint8_t resp[256];
	size_t rlen = 0;
	static const uint8_t vin_req[3] = {0x22, 0xF1, 0x90};
	assert_ok(doipc_uds(c, 0x0091, vin_req, 3, resp, sizeof(resp), &rlen, 2000));
	assert_true(rlen == 3 + 32);
	assert_memory_equal(resp, "\x62\xF1\x90" VIN, 3 + strlen(VIN));
	static const uint8_t tp[2] = {0x3E, 0x00};
	assert_ok(doipc_uds(c, 0x0091, tp, 2, resp, sizeof(resp), &rlen, 2000));
	assert_int_equal(rlen, 2);
	assert_int_equal(resp[0], 0x7E);
	/* suppressed positive response: nothing comes back, and the next exchange still pairs */
	static const uint8_t tp_s[2] = {0x3E, 0x80};
	assert_ok(doipc_uds(c, ECU_2, tp_s, 2, resp, sizeof(resp), &rlen, 2000));
	assert_int_equal(rlen, 0);
	/* an unknown DID */
	static const uint8_t bad_did[3] = {0x22, 0xFF, 0xFF};
	assert_ok(doipc_uds(c, ECU_2, bad_did, 3, resp, sizeof(resp), &rlen, 2000));
	assert_int_equal(rlen, 3);
	assert_memory_equal(resp, "\x7F\x22\x31", 3);
	doipc_close(c);
	sim_stop(s);
}

typedef struct {
	uint64_t calls, last, total;
} progress_rec;

static void on_progress(void *user, uint64_t done, uint64_t total)
{
	progress_rec *p = user;
	assert_true(done > p->last);
	p->calls++;
	p->last = done;
	p->total = total;
}

static void test_program_restart_rollback(void **state)
{
	fixture *f = *state;
	sim *s = NULL;
	char path[512];
	tester_image img;
	make_image(f, "app-1.1.0.bin", 300 * 1000, 11, "1.1.0", &img, path, sizeof(path));
	assert_ok(sim_start(&f->m, f->state_dir, NULL, &s));
	doipc *c = connect_zone(s, 1);

	/* no previous bank yet */
	assert_rc(tester_rollback(c, ECU_1), PQ_ERR_NOTFOUND);
	assert_int_equal(doipc_last_nrc(c), 0x22);
	assert_non_null(strstr(pq_err_detail(), "ECU_001: 0x31 FF02"));

	progress_rec pr = {0, 0, 0};
	assert_ok(tester_program(c, ECU_1, &img, on_progress, &pr));
	assert_int_equal(pr.last, img.len);
	assert_int_equal(pr.total, img.len);
	assert_int_equal(pr.calls, (img.len + 4095) / 4096); /* 74 blocks */
	tester_ecu_info info;
	assert_ok(tester_read_info(c, ECU_1, &info));
	assert_int_equal(info.bank, 'B');
	assert_string_equal(info.version[VM_SW_APP], "1.1.0");
	assert_string_equal(info.version[VM_SW_BOOT], "2.0.0"); /* carried over */
	assert_memory_equal(info.image_sha256, img.sha256, 32);
	assert_int_equal(info.image_len, img.len);
	doipc_close(c);
	sim_stop(s);

	/* the state file holds it; a new process continues from there */
	char state_file[600];
	tu_join(state_file, sizeof(state_file), f->state_dir, "ecus.json");
	char *text = NULL;
	size_t len = 0;
	assert_ok(pq_file_read(state_file, 1 << 20, &text, &len));
	assert_non_null(strstr(text, "\"active\": \"B\""));
	free(text);
	s = NULL;
	assert_ok(sim_start(&f->m, f->state_dir, NULL, &s));
	c = connect_zone(s, 1);
	assert_ok(tester_read_info(c, ECU_1, &info));
	assert_int_equal(info.bank, 'B');
	assert_string_equal(info.version[VM_SW_APP], "1.1.0");

	/* rollback: bank A with the factory image again */
	assert_ok(tester_rollback(c, ECU_1));
	assert_ok(tester_read_info(c, ECU_1, &info));
	assert_int_equal(info.bank, 'A');
	assert_string_equal(info.version[VM_SW_APP], "1.0.0");
	assert_memory_equal(info.image_sha256, f->factory_sha, 32);
	assert_int_equal(info.image_len, FACTORY_N);
	/* another ECU was not touched */
	assert_ok(tester_read_info(c, ECU_2, &info));
	assert_int_equal(info.bank, 'A');
	doipc_close(c);
	sim_stop(s);

	/* a malformed state file is a clear error, not a crash, and is left alone */
	tu_write_file(state_file, "{\"version\":1,\"ecus\":{\"ECU_001\":{\"active\":\"C\"}}}", 47);
	s = NULL;
	assert_rc(sim_start(&f->m, f->state_dir, NULL, &s), PQ_ERR_FORMAT);
	assert_null(s);
	assert_non_null(strstr(pq_err_detail(), "ECU_001"));
	assert_ok(pq_file_read(state_file, 1 << 20, &text, &len));
	assert_int_equal(len, 47);
	free(text);
	unlink(state_file);
}

static void expect_program_fails(sim *s, int zone, uint16_t ecu, const tester_image *img,
                                 int want_rc, const char *want_msg, unsigned want_dtcs)
{
	doipc *c = connect_zone(s, zone);
	tester_ecu_info before, after;
	assert_ok(tester_read_info(c, ecu, &before));
	assert_rc(tester_program(c, ecu, img, NULL, NULL), want_rc);
	if (!strstr(pq_err_detail(), want_msg))
		fail_msg("error '%s' lacks '%s'", pq_err_detail(), want_msg);
	assert_ok(tester_read_info(c, ecu, &after));
	assert_int_equal(after.bank, before.bank);
	assert_string_equal(after.version[VM_SW_APP], before.version[VM_SW_APP]);
	assert_memory_equal(after.image_sha256, before.image_sha256, 32);
	assert_int_equal(after.dtc_count, want_dtcs);
	doipc_close(c);
}

static void test_faults(void **state)
{
	fixture *f = *state;
	char path[512];
	tester_image img;
	make_image(f, "app-2.0.0.bin", 20000, 5, "2.0.0", &img, path, sizeof(path));
	sim *s = NULL;
	sim_faults bad = {"ECU_404", NULL, NULL, NULL};
	assert_rc(sim_start(&f->m, f->state_dir, &bad, &s), PQ_ERR_INVAL);
	sim_faults bad_slow = {NULL, NULL, NULL, "ECU_001,ECU_999"};
	assert_rc(sim_start(&f->m, f->state_dir, &bad_slow, &s), PQ_ERR_INVAL);
	sim_faults faults = {"ECU_001", " ECU_002 ", "ECU_021", NULL};
	assert_ok(sim_start(&f->m, f->state_dir, &faults, &s));
	expect_program_fails(s, 1, ECU_1, &img, PQ_ERR_VERIFY,
	                     "ECU_001: 0x31 FF01 check programming: NRC 0x72 "
	                     "generalProgrammingFailure",
	                     1);
	expect_program_fails(s, 1, ECU_2, &img, PQ_ERR_VERIFY,
	                     "ECU_002: 0x31 FF01 check programming: NRC 0x72", 1);
	expect_program_fails(s, 2, ECU_21, &img, PQ_ERR_VERIFY,
	                     "ECU_021: 0x27 send key: NRC 0x35 invalidKey", 1);
	sim_stop(s);

	/* without faults the same image programs, and a wrong description fails the check */
	s = NULL;
	assert_ok(sim_start(&f->m, f->state_dir, NULL, &s));
	tester_image wrong = img;
	wrong.crc32 ^= 1;
	/* (the check DTC of ECU_002 is still set: the state persisted) */
	expect_program_fails(s, 1, ECU_2, &wrong, PQ_ERR_VERIFY, "NRC 0x72", 1);
	doipc *c = connect_zone(s, 1);
	assert_ok(tester_program(c, ECU_2, &img, NULL, NULL));
	tester_ecu_info info;
	assert_ok(tester_read_info(c, ECU_2, &info));
	assert_int_equal(info.bank, 'B');
	/* too large for the ECU: 0x34 refused with 0x70 */
	tester_image big = img;
	big.len = 9ull << 20;
	assert_rc(tester_program(c, ECU_1, &big, NULL, NULL), PQ_ERR_RANGE);
	assert_non_null(strstr(pq_err_detail(), "0x34 request download: NRC 0x70"));
	doipc_close(c);
	sim_stop(s);

	/* slow flash: ECU_021 programs, but every block (20000 bytes: 5) waits 20 ms at least */
	s = NULL;
	sim_faults slow = {NULL, NULL, NULL, "ECU_021"};
	assert_ok(sim_start(&f->m, f->state_dir, &slow, &s));
	c = connect_zone(s, 2);
	struct timespec t0, t1;
	clock_gettime(CLOCK_MONOTONIC, &t0);
	assert_ok(tester_program(c, ECU_21, &img, NULL, NULL));
	clock_gettime(CLOCK_MONOTONIC, &t1);
	long ms = (t1.tv_sec - t0.tv_sec) * 1000 + (t1.tv_nsec - t0.tv_nsec) / 1000000;
	assert_true(ms >= 5 * SIM_SLOW_FLASH_MS);
	assert_ok(tester_read_info(c, ECU_21, &info));
	assert_string_equal(info.version[VM_SW_APP], "2.0.0");
	doipc_close(c);
	sim_stop(s);
}

/* ---- the model ----------------------------------------------------------------------------- */

static void test_model_default(void **state)
{
	(void)state;
	vm_model m;
	assert_ok(vm_model_default("VIN123ABCDEF", &m));
	assert_string_equal(m.vin, "VIN123ABCDEF");
	assert_int_equal(m.n_zones, 5);
	assert_int_equal(m.n_ecus, 100);
	assert_int_equal(m.tester_addr, 0x0E00);
	for (size_t i = 0; i < m.n_ecus; i++) {
		const vm_ecu *e = &m.ecus[i];
		char id[32], hw[48];
		snprintf(id, sizeof(id), "ECU_%03zu", i + 1);
		snprintf(hw, sizeof(hw), "HW-%zu-%03zu", i / 20 + 1, i + 1);
		assert_string_equal(e->ecu_id, id);
		assert_string_equal(e->hardware_id, hw);
		assert_int_equal(e->zone, (int)(i / 20) + 1);
		for (int t = 0; t < VM_SW_N; t++)
			assert_string_equal(e->version[t], "1.0.0");
		assert_true(e->delta);
		assert_int_equal(e->max_package_size, 256u << 20);
	}
	const vm_ecu *e = vm_model_find(&m, "ECU_011");
	assert_non_null(e);
	assert_int_equal(e->addr, 0x1011);
	assert_string_equal(e->serial, "SN-ABCDEF-011");
	assert_ptr_equal(vm_model_find_addr(&m, 0x1100), vm_model_find(&m, "ECU_100"));
	assert_null(vm_model_find(&m, "ecu_011"));
	assert_null(vm_model_find_addr(&m, 0x1101));
	assert_int_equal(m.zones[2].addr, 0x0093);
	assert_int_equal(m.battery_pct, 90);
	assert_true(m.parked && m.ignition_off);
	vm_model_free(&m);
	assert_rc(vm_model_default("bad vin", &m), PQ_ERR_INVAL);
}

static void test_model_file(void **state)
{
	fixture *f = *state;
	/* the fixture's file: defaults filled in, ECUs ordered, image path resolved */
	vm_model *m = &f->m;
	assert_string_equal(m->model, "Sim-1");
	assert_string_equal(m->vmg_hardware_id, "VMG-1");
	assert_int_equal(m->n_zones, 2);
	assert_int_equal(m->n_ecus, 3);
	assert_string_equal(m->ecus[2].ecu_id, "ECU_021");
	assert_int_equal(m->ecus[2].zone, 2);
	assert_string_equal(m->ecus[0].image_path, f->factory);
	assert_string_equal(m->ecus[1].supplier, "PQSIM");
	assert_string_equal(m->ecus[1].part_number, "PN-ECU_002");
	assert_int_equal(m->ecus[0].max_package_size, 8388608);

	/* save and load again: the same model; a VIN given replaces the file's */
	char path[600];
	tu_join(path, sizeof(path), f->dir, "saved.json");
	assert_ok(vm_model_save(m, path));
	vm_model m2;
	assert_ok(vm_model_load(path, "OTHERVIN", &m2));
	assert_string_equal(m2.vin, "OTHERVIN");
	assert_int_equal(m2.n_ecus, 3);
	for (size_t i = 0; i < 3; i++) {
		assert_string_equal(m2.ecus[i].ecu_id, m->ecus[i].ecu_id);
		assert_string_equal(m2.ecus[i].serial, m->ecus[i].serial);
		assert_string_equal(m2.ecus[i].image_path, m->ecus[i].image_path);
		assert_int_equal(m2.ecus[i].addr, m->ecus[i].addr);
		assert_string_equal(m2.ecus[i].version[VM_SW_BOOT], m->ecus[i].version[VM_SW_BOOT]);
	}
	vm_model_free(&m2);

	/* bad files: the error names the field */
	static const struct {
		const char *json, *want;
	} bad[] = {
	    {"{\"vin\":\"V\",\"zones\":[{\"zone\":1,\"ecus\":[]}],\"colour\":1}", "$.colour"},
	    {"{\"vin\":\"V\",\"zones\":[{\"zone\":1,\"ecus\":[{\"ecu_id\":\"ECU_001\","
	     "\"hardware_id\":\"H\",\"versoins\":{}}]}]}",
	     "$.zones[0].ecus[0].versoins"},
	    {"{\"vin\":\"V\",\"zones\":[{\"zone\":1,\"ecus\":[{\"ecu_id\":\"ECU_1\","
	     "\"hardware_id\":\"H\"}]}]}",
	     "$.zones[0].ecus[0].ecu_id"},
	    {"{\"vin\":\"V\",\"zones\":[{\"zone\":1,\"ecus\":[{\"ecu_id\":\"ZGW1\","
	     "\"hardware_id\":\"H\"}]}]}",
	     "not an ECU address"},
	    {"{\"vin\":\"V\",\"zones\":[{\"zone\":1,\"ecus\":[{\"ecu_id\":\"ECU_001\","
	     "\"hardware_id\":\"H\"}]},{\"zone\":2,\"ecus\":[{\"ecu_id\":\"0x1001\","
	     "\"hardware_id\":\"H\"}]}]}",
	     "twice"},
	    {"{\"vin\":\"V\",\"zones\":[{\"zone\":1,\"ecus\":[]},{\"zone\":1,\"ecus\":[]}]}",
	     "zone 1 twice"},
	    {"{\"vin\":\"V\",\"zones\":[{\"zone\":10,\"ecus\":[]}]}", "$.zones[0].zone"},
	    {"{\"vin\":\"V\",\"zones\":[]}", "$.zones"},
	    {"{\"vin\":\"V W\",\"zones\":[{\"zone\":1,\"ecus\":[]}]}", "$.vin"},
	    {"{\"vin\":\"V\",\"state\":{\"battery_pct\":101},\"zones\":[{\"zone\":1,\"ecus\":[]}]}",
	     "$.state.battery_pct"},
	    {"{\"vin\":\"V\",\"zones\":[{\"zone\":1,\"ecus\":[{\"ecu_id\":\"ECU_001\","
	     "\"hardware_id\":\"H\",\"versions\":{\"APP\":\"1.0\"}}]}]}",
	     "$.zones[0].ecus[0].versions.APP"},
	    {"{\"vin\":\"V\",\"zones\":[{\"zone\":1,\"ecus\":[{\"ecu_id\":\"ECU_001\"}]}]}",
	     "$.zones[0].ecus[0].hardware_id"},
	    {"{\"vin\":\"V\",\"vin\":\"W\",\"zones\":[]}", "duplicate"},
	    {"[1,2", "line 1"},
	};
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		tu_join(path, sizeof(path), f->dir, "bad.json");
		tu_write_file(path, bad[i].json, strlen(bad[i].json));
		vm_model mb;
		assert_rc(vm_model_load(path, NULL, &mb), PQ_ERR_FORMAT);
		if (!strstr(pq_err_detail(), bad[i].want))
			fail_msg("case %zu: '%s' lacks '%s'", i, pq_err_detail(), bad[i].want);
	}
	/* too large */
	size_t big = (4u << 20) + 1;
	char *text = malloc(big);
	assert_non_null(text);
	memset(text, ' ', big);
	tu_write_file(path, text, big);
	free(text);
	vm_model mb;
	assert_rc(vm_model_load(path, NULL, &mb), PQ_ERR_RANGE);
	tu_join(path, sizeof(path), f->dir, "missing.json");
	assert_true(vm_model_load(path, NULL, &mb) != PQ_OK);
}

/* ---- raw DoIP ---------------------------------------------------------------------------- */

static int raw_connect(uint16_t port)
{
	int fd = socket(AF_INET, SOCK_STREAM, 0);
	assert_true(fd >= 0);
	struct sockaddr_in a;
	memset(&a, 0, sizeof(a));
	a.sin_family = AF_INET;
	a.sin_port = htons(port);
	a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	assert_int_equal(connect(fd, (struct sockaddr *)&a, sizeof(a)), 0);
	return fd;
}

/* Reads exactly n bytes (or fewer at EOF) within 3 s. */
static size_t raw_read(int fd, uint8_t *buf, size_t n)
{
	size_t have = 0;
	while (have < n) {
		struct pollfd pf = {fd, POLLIN, 0};
		if (poll(&pf, 1, 3000) <= 0)
			break;
		ssize_t r = recv(fd, buf + have, n - have, 0);
		if (r <= 0)
			break;
		have += (size_t)r;
	}
	return have;
}

static bool raw_closed(int fd)
{
	uint8_t b;
	struct pollfd pf = {fd, POLLIN, 0};
	if (poll(&pf, 1, 3000) <= 0)
		return false;
	return recv(fd, &b, 1, 0) == 0;
}

static void test_doip_errors(void **state)
{
	fixture *f = *state;
	sim *s = NULL;
	assert_ok(sim_start(&f->m, f->state_dir, NULL, &s));
	uint16_t port = sim_zone_port(s, 1);

	/* bad pattern: generic NACK 0x00, then the entity closes */
	int fd = raw_connect(port);
	static const uint8_t badpat[8] = {0x02, 0xFC, 0x80, 0x01, 0, 0, 0, 5};
	assert_int_equal(send(fd, badpat, 8, 0), 8);
	uint8_t b[64];
	assert_int_equal(raw_read(fd, b, 9), 9);
	static const uint8_t nack0[9] = {0x02, 0xFD, 0x00, 0x00, 0, 0, 0, 1, 0x00};
	assert_memory_equal(b, nack0, 9);
	assert_true(raw_closed(fd));
	close(fd);

	/* an unknown payload type: NACK 0x01, the connection stays */
	fd = raw_connect(port);
	static const uint8_t unk[10] = {0x02, 0xFD, 0x12, 0x34, 0, 0, 0, 2, 0xAA, 0xBB};
	assert_int_equal(send(fd, unk, sizeof(unk), 0), (ssize_t)sizeof(unk));
	assert_int_equal(raw_read(fd, b, 9), 9);
	assert_int_equal(b[8], DOIP_NACK_UNKNOWN_TYPE);
	/* a diagnostic message before routing activation: NACK 0x02 and close */
	size_t n = 0;
	static const uint8_t tp[2] = {0x3E, 0x00};
	doip_diag d = {VM_TESTER_ADDR, ECU_1, tp, 2};
	assert_ok(doip_build_diag(b, sizeof(b), DOIP_V2012, &d, &n));
	assert_int_equal(send(fd, b, n, 0), (ssize_t)n);
	assert_int_equal(raw_read(fd, b, 13), 13);
	assert_int_equal(b[2] << 8 | b[3], DOIP_DIAG_NACK);
	assert_int_equal(b[12], DOIP_DIAG_NACK_INVALID_SOURCE);
	assert_true(raw_closed(fd));
	close(fd);

	/* routing activation from a source that is not the tester: code 0x00, refused */
	doipc *c = NULL;
	assert_rc(doipc_connect("127.0.0.1", port, 0x0E01, 2000, &c), PQ_ERR_VERIFY);
	assert_null(c);
	assert_non_null(strstr(pq_err_detail(), "code 0x00"));

	/* unknown target: diagnostic NACK 0x03 */
	c = connect_zone(s, 1);
	uint8_t resp[64];
	size_t rlen = 0;
	assert_rc(doipc_uds(c, 0x1999, tp, 2, resp, sizeof(resp), &rlen, 2000), PQ_ERR_NOTFOUND);
	assert_non_null(strstr(pq_err_detail(), "NACK 0x03"));
	/* the connection is still usable, several at once */
	doipc *c2 = connect_zone(s, 1);
	assert_ok(doipc_uds(c, ECU_1, tp, 2, resp, sizeof(resp), &rlen, 2000));
	assert_ok(doipc_uds(c2, ECU_1, tp, 2, resp, sizeof(resp), &rlen, 2000));
	doipc_close(c2);

	/* idle connections are closed (the general inactivity timer, shortened) */
	sim_set_idle_timeout(s, 300);
	struct timespec ts = {0, 700 * 1000 * 1000};
	nanosleep(&ts, NULL);
	assert_rc(doipc_uds(c, ECU_1, tp, 2, resp, sizeof(resp), &rlen, 2000), PQ_ERR_IO);
	doipc_close(c);
	sim_stop(s);
}

static double now_s(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

/* Programming throughput over DoIP on loopback (reported, not asserted beyond sanity). */
static void test_throughput(void **state)
{
	fixture *f = *state;
	char path[512];
	tester_image img;
	make_image(f, "big.bin", 4u << 20, 3, "4.0.0", &img, path, sizeof(path));
	sim *s = NULL;
	assert_ok(sim_start(&f->m, f->state_dir, NULL, &s));
	doipc *c = connect_zone(s, 1);
	double t0 = now_s();
	assert_ok(tester_program(c, ECU_1, &img, NULL, NULL));
	double dt = now_s() - t0;
	printf("tester_program: 4 MiB over DoIP in %.3f s = %.1f MB/s\n", dt,
	       (double)img.len / 1e6 / dt);
	tester_ecu_info info;
	assert_ok(tester_read_info(c, ECU_1, &info));
	assert_memory_equal(info.image_sha256, img.sha256, 32);
	doipc_close(c);
	sim_stop(s);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_model_default),
	    cmocka_unit_test_setup_teardown(test_model_file, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_read_info_two_zones, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_program_restart_rollback, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_faults, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_doip_errors, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_throughput, setup, teardown),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
