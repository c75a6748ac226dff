/* sim.c: the in-vehicle simulation: one DoIP (ISO 13400-2) server thread per zone gateway
 * on 127.0.0.1, routing diagnostic messages to the zone's simulated ECUs (ecu.c), with the
 * ECUs' persistent state in state_dir/ecus.json. */
#include "vehicle/sim.h"

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <jansson.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

#include "core/fileio.h"
#include "core/log.h"
#include "core/time.h"
#include "crypto/hash.h"
#include "vehicle/doip.h"
#include "vehicle/ecu.h"
#include "vehicle/uds.h"

#define SIM_MAX_CONN      8
#define SIM_RX_BUF        (DOIP_HDR_LEN + 4 + UDS_MAX_REQ + 246) /* one frame */
#define SIM_IDLE_MS       (5 * 60 * 1000)                        /* T_TCP_General_Inactivity */
#define SIM_INITIAL_MS    2000 /* T_TCP_Initial_Inactivity: no routing activation */
#define SIM_STATE_MAX     (16u << 20)
#define SIM_STATE_VERSION 1

/* Routing activation response codes (ISO 13400-2). */
#define RA_UNKNOWN_SOURCE 0x00
#define RA_NO_SOCKET      0x01
#define RA_DIFFERENT_SA   0x02
#define RA_UNSUPPORTED    0x06
#define RA_OK             0x10

typedef struct {
	int fd; /* -1: free slot */
	doip_reader rd;
	uint8_t buf[SIM_RX_BUF];
	bool active; /* routing activated */
	uint16_t tester;
	int64_t opened_ms, last_ms;
} sim_conn;

typedef struct {
	struct sim *s;
	int zone;
	uint16_t addr;
	uint16_t port;
	int lfd;
	pthread_t th;
	bool started;
	ecu gw;
	ecu **ecus; /* into s->ecus */
	size_t n_ecus;
	sim_conn conn[SIM_MAX_CONN];
} sim_zone;

struct sim {
	vm_model m; /* own copy */
	char state_path[VM_PATH_MAX + 16];
	ecu *ecus;
	size_t n_ecus;
	sim_zone zones[VM_ZONES_MAX];
	size_t n_zones;
	pthread_mutex_t lock; /* the ECUs and the state file */
	bool lock_init;
	bool state_ok; /* the state was loaded or created: saved again at stop */
	int wake[2];
	atomic_bool stop;
	atomic_int idle_ms;
};

/* ---- state file ------------------------------------------------------------------------- */

/* Caller holds s->lock (or runs before the threads). */
static int save_state(sim *s)
{
	json_t *ecus = json_object();
	json_t *root = json_pack("{s:i,s:s}", "version", SIM_STATE_VERSION, "vin", s->m.vin);
	char *text = NULL;
	int rc = PQ_ERR_NOMEM;
	if (!ecus || !root)
		goto out;
	for (size_t i = 0; i < s->n_ecus; i++) {
		json_t *e = ecu_state_json(&s->ecus[i]);
		if (!e || json_object_set_new(ecus, s->ecus[i].ecu_id, e) != 0)
			goto out;
	}
	if (json_object_set_new(root, "ecus", ecus) != 0) {
		ecus = NULL;
		goto out;
	}
	ecus = NULL;
	text = json_dumps(root, JSON_INDENT(1) | JSON_SORT_KEYS);
	if (!text)
		goto out;
	rc = pq_file_write_atomic(s->state_path, text, strlen(text), 0600, true);
	if (rc != PQ_OK)
		rc = pq_err_wrap(rc, "sim: saving %s", s->state_path);
out:
	if (rc == PQ_ERR_NOMEM)
		pq_err_set(rc, "sim: no memory for the state");
	free(text);
	json_decref(ecus);
	json_decref(root);
	return rc;
}

/* Loads state_path into the ECUs; *found = false when there is no file. */
static int load_state(sim *s, bool *found)
{
	char *text = NULL;
	size_t len = 0;
	json_t *root = NULL;
	struct stat st;
	int rc = PQ_OK;
	*found = false;
	if (stat(s->state_path, &st) != 0 && errno == ENOENT)
		return PQ_OK;
	*found = true;
	rc = pq_file_read(s->state_path, SIM_STATE_MAX, &text, &len);
	if (rc != PQ_OK)
		return pq_err_wrap(rc, "sim: state");
	json_error_t jerr;
	root = json_loadb(text, len, JSON_REJECT_DUPLICATES, &jerr);
	if (!root) {
		rc = pq_err_set(PQ_ERR_FORMAT, "sim: state file %s: line %d: %s", s->state_path,
		                jerr.line, jerr.text);
		goto out;
	}
	json_t *ver = json_object_get(root, "version");
	json_t *ecus = json_object_get(root, "ecus");
	if (!json_is_object(root) || !json_is_integer(ver) ||
	    json_integer_value(ver) != SIM_STATE_VERSION || !json_is_object(ecus)) {
		rc = pq_err_set(PQ_ERR_FORMAT,
		                "sim: state file %s: not a version %d state (version, ecus)",
		                s->state_path, SIM_STATE_VERSION);
		goto out;
	}
	for (size_t i = 0; i < s->n_ecus; i++) {
		json_t *e = json_object_get(ecus, s->ecus[i].ecu_id);
		if (!e)
			continue; /* an ECU added to the model: factory state */
		rc = ecu_state_load(&s->ecus[i], e);
		if (rc != PQ_OK) {
			rc = pq_err_wrap(rc, "sim: state file %s", s->state_path);
			goto out;
		}
	}
out:
	json_decref(root);
	free(text);
	return rc;
}

/* SHA-256, length and CRC-32 of a factory image. */
static int image_digest(const char *path, uint8_t sha[32], uint64_t *len, uint32_t *crc)
{
	pq_hash_ctx *h = NULL;
	uint8_t *buf = NULL;
	int fd = open(path, O_RDONLY | O_CLOEXEC);
	int rc;
	if (fd < 0)
		return pq_err_set(errno == ENOENT ? PQ_ERR_NOTFOUND : PQ_ERR_IO,
		                  "sim: factory image %s: %s", path, strerror(errno));
	*len = 0;
	*crc = 0;
	buf = malloc(65536);
	rc = buf ? pq_hash_new(PQ_HASH_SHA256, &h) : pq_err_set(PQ_ERR_NOMEM, "sim: no memory");
	while (rc == PQ_OK) {
		size_t got = 0;
		rc = pq_read_full(fd, buf, 65536, &got);
		if (rc != PQ_OK || got == 0)
			break;
		rc = pq_hash_update(h, buf, got);
		*crc = pq_crc32(*crc, buf, got);
		*len += got;
	}
	if (rc == PQ_OK)
		rc = pq_hash_final(h, sha);
	if (rc != PQ_OK)
		rc = pq_err_wrap(rc, "sim: factory image %s", path);
	pq_hash_free(h);
	free(buf);
	close(fd);
	return rc;
}

/* The next item of a comma-separated list at p, spaces trimmed: *item and its length *n
 * (0 for an empty item). Returns where the rest of the list starts. */
static const char *next_item(const char *p, const char **item, size_t *n)
{
	while (*p == ' ' || *p == ',')
		p++;
	const char *end = p;
	while (*end && *end != ',')
		end++;
	size_t len = (size_t)(end - p);
	while (len > 0 && p[len - 1] == ' ')
		len--;
	*item = p;
	*n = len;
	return end;
}

/* True when id is in the comma-separated list (NULL: empty). */
static bool in_list(const char *list, const char *id)
{
	size_t idlen = strlen(id);
	if (!list)
		return false;
	for (const char *p = list; *p;) {
		const char *item;
		size_t n;
		p = next_item(p, &item, &n);
		if (n == idlen && n > 0 && memcmp(item, id, n) == 0)
			return true;
	}
	return false;
}

/* Every id in the list (NULL: empty) must be an ECU of the model. */
static int check_list(const vm_model *m, const char *list, const char *name)
{
	if (!list)
		return PQ_OK;
	for (const char *p = list; *p;) {
		const char *item;
		size_t n;
		p = next_item(p, &item, &n);
		if (n == 0)
			continue;
		char id[VM_ID_MAX + 1];
		if (n > VM_ID_MAX)
			return pq_err_set(PQ_ERR_INVAL, "sim: %s: id too long", name);
		memcpy(id, item, n);
		id[n] = '\0';
		if (!vm_model_find(m, id))
			return pq_err_set(PQ_ERR_INVAL, "sim: %s: no ECU '%s' in the model", name,
			                  id);
	}
	return PQ_OK;
}

/* ---- DoIP server ------------------------------------------------------------------------- */

static void conn_close(sim_conn *c)
{
	if (c->fd >= 0)
		close(c->fd);
	c->fd = -1;
	c->active = false;
}

static bool send_frame(sim_conn *c, const uint8_t *f, size_t n)
{
	if (pq_write_all(c->fd, f, n) != PQ_OK) {
		conn_close(c);
		return false;
	}
	return true;
}

static void send_generic_nack(sim_conn *c, uint8_t version, uint8_t code)
{
	uint8_t f[16];
	size_t n = 0;
	if (doip_build_generic_nack(f, sizeof(f), version, code, &n) == PQ_OK)
		(void)send_frame(c, f, n);
}

static void on_routing(sim_zone *z, sim_conn *c, const doip_frame *fr, uint8_t v)
{
	doip_routing_req rq;
	if (doip_parse_routing_req(fr->payload, fr->hdr.len, &rq) != PQ_OK) {
		send_generic_nack(c, v, DOIP_NACK_INVALID_LEN);
		conn_close(c);
		return;
	}
	doip_routing_resp rs;
	memset(&rs, 0, sizeof(rs));
	rs.tester = rq.source;
	rs.entity = z->addr;
	if (rq.source != z->s->m.tester_addr)
		rs.code = RA_UNKNOWN_SOURCE;
	else if (rq.activation_type != 0x00 && rq.activation_type != 0x01)
		rs.code = RA_UNSUPPORTED;
	else if (c->active && c->tester != rq.source)
		rs.code = RA_DIFFERENT_SA;
	else
		rs.code = RA_OK;
	uint8_t f[32];
	size_t n = 0;
	if (doip_build_routing_resp(f, sizeof(f), v, &rs, &n) != PQ_OK || !send_frame(c, f, n))
		return;
	if (rs.code != RA_OK) {
		pq_log(PQ_LOG_INFO, "sim", "ZGW%d: routing activation from 0x%04X refused (0x%02X)",
		       z->zone, rq.source, rs.code);
		conn_close(c); /* the standard closes the socket after a denial */
		return;
	}
	c->active = true;
	c->tester = rq.source;
}

static void send_diag_ack(sim_conn *c, uint8_t v, bool positive, uint16_t src, uint16_t dst,
                          uint8_t code)
{
	doip_diag_ack a = {src, dst, code, NULL, 0};
	uint8_t f[32];
	size_t n = 0;
	if (doip_build_diag_ack(f, sizeof(f), v, positive, &a, &n) == PQ_OK)
		(void)send_frame(c, f, n);
}

static void on_diag(sim_zone *z, sim_conn *c, const doip_frame *fr, uint8_t v)
{
	doip_diag d;
	if (doip_parse_diag(fr->payload, fr->hdr.len, &d) != PQ_OK) {
		send_generic_nack(c, v, DOIP_NACK_INVALID_LEN);
		conn_close(c);
		return;
	}
	if (!c->active || d.source != c->tester) {
		/* the source is not activated on this socket: NACK 0x02 and close */
		send_diag_ack(c, v, false, d.target, d.source, DOIP_DIAG_NACK_INVALID_SOURCE);
		conn_close(c);
		return;
	}
	ecu *e = NULL;
	if (d.target == z->addr) {
		e = &z->gw;
	} else {
		for (size_t i = 0; i < z->n_ecus && !e; i++)
			if (z->ecus[i]->addr == d.target)
				e = z->ecus[i];
	}
	if (!e) {
		send_diag_ack(c, v, false, d.target, d.source, DOIP_DIAG_NACK_UNKNOWN_TARGET);
		return;
	}
	if (d.len > UDS_MAX_REQ) {
		send_diag_ack(c, v, false, d.target, d.source, DOIP_DIAG_NACK_TOO_LARGE);
		return;
	}
	send_diag_ack(c, v, true, d.target, d.source, DOIP_DIAG_ACK_OK);
	if (c->fd < 0)
		return;
	uint8_t resp[1024];
	size_t rlen = 0;
	sim *s = z->s;
	pthread_mutex_lock(&s->lock);
	int rc = ecu_handle(e, d.data, d.len, resp, sizeof(resp), &rlen, pq_mono_ms());
	if (rc == PQ_OK && ecu_take_dirty(e)) {
		int src = save_state(s);
		if (src != PQ_OK)
			pq_log(PQ_LOG_ERROR, "sim", "%s", pq_err_detail());
	}
	bool slow = e->slow_flash && d.len > 0 && d.data[0] == UDS_SID_TRANSFER;
	pthread_mutex_unlock(&s->lock);
	if (slow) /* the fault: the block takes a while to reach the flash */
		pq_sleep_ms(SIM_SLOW_FLASH_MS);
	if (rc != PQ_OK || rlen == 0)
		return;
	doip_diag out = {d.target, d.source, resp, rlen};
	uint8_t f[DOIP_HDR_LEN + 4 + sizeof(resp)];
	size_t n = 0;
	if (doip_build_diag(f, sizeof(f), v, &out, &n) == PQ_OK)
		(void)send_frame(c, f, n);
}

static void on_frame(sim_zone *z, sim_conn *c, const doip_frame *fr)
{
	uint8_t v = fr->hdr.version == DOIP_V2019 ? DOIP_V2019 : DOIP_V2012;
	switch (fr->hdr.type) {
	case DOIP_ROUTING_REQ:
		on_routing(z, c, fr, v);
		break;
	case DOIP_ALIVE_REQ: {
		uint8_t f[16];
		size_t n = 0;
		if (doip_build_alive_resp(f, sizeof(f), v, z->addr, &n) == PQ_OK)
			(void)send_frame(c, f, n);
		break;
	}
	case DOIP_ALIVE_RESP:
	case DOIP_GENERIC_NACK:
		break; /* activity only */
	case DOIP_DIAG_MSG:
		on_diag(z, c, fr, v);
		break;
	default:
		/* vehicle identification (UDP only), and messages only an entity sends */
		send_generic_nack(c, v, DOIP_NACK_UNKNOWN_TYPE);
		break;
	}
}

static void on_readable(sim_zone *z, sim_conn *c)
{
	uint8_t in[8192];
	ssize_t got = recv(c->fd, in, sizeof(in), 0);
	if (got <= 0) {
		if (got < 0 && (errno == EINTR || errno == EAGAIN))
			return;
		conn_close(c);
		return;
	}
	c->last_ms = pq_mono_ms();
	size_t pos = 0;
	while (pos < (size_t)got && c->fd >= 0) {
		size_t used = 0;
		doip_frame fr;
		uint8_t nack = 0;
		int rc = doip_reader_feed(&c->rd, in + pos, (size_t)got - pos, &used, &fr, &nack);
		pos += used;
		if (rc == 1) {
			on_frame(z, c, &fr);
		} else if (rc == PQ_ERR_FORMAT) {
			send_generic_nack(c, DOIP_V2012, nack);
			if (c->fd >= 0 && doip_reader_closed(&c->rd))
				conn_close(c);
		} else if (rc != 0) {
			conn_close(c);
		}
	}
}

static void on_accept(sim_zone *z)
{
	int fd = accept4(z->lfd, NULL, NULL, SOCK_CLOEXEC);
	if (fd < 0)
		return;
	sim_conn *c = NULL;
	for (size_t i = 0; i < SIM_MAX_CONN && !c; i++)
		if (z->conn[i].fd < 0)
			c = &z->conn[i];
	if (!c) {
		close(fd); /* all sockets in use */
		return;
	}
	int one = 1;
	(void)setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
	struct timeval tv = {5, 0};
	(void)setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof(tv));
	c->fd = fd;
	c->active = false;
	c->tester = 0;
	c->opened_ms = c->last_ms = pq_mono_ms();
	if (doip_reader_init(&c->rd, c->buf, sizeof(c->buf)) != PQ_OK)
		conn_close(c);
}

static void *zone_main(void *arg)
{
	sim_zone *z = arg;
	sim *s = z->s;
	struct pollfd pf[2 + SIM_MAX_CONN];
	sim_conn *map[2 + SIM_MAX_CONN];
	while (!atomic_load(&s->stop)) {
		size_t n = 0;
		pf[n].fd = s->wake[0];
		pf[n].events = POLLIN;
		map[n++] = NULL;
		pf[n].fd = z->lfd;
		pf[n].events = POLLIN;
		map[n++] = NULL;
		for (size_t i = 0; i < SIM_MAX_CONN; i++) {
			if (z->conn[i].fd < 0)
				continue;
			pf[n].fd = z->conn[i].fd;
			pf[n].events = POLLIN;
			map[n++] = &z->conn[i];
		}
		int r = poll(pf, n, 200);
		if (r < 0 && errno != EINTR)
			break;
		if (atomic_load(&s->stop))
			break;
		if (r > 0) {
			if (pf[1].revents & POLLIN)
				on_accept(z);
			for (size_t i = 2; i < n; i++)
				if (pf[i].revents & (POLLIN | POLLHUP | POLLERR) && map[i]->fd >= 0)
					on_readable(z, map[i]);
		}
		/* inactivity timers, and the S3 session timeout of idle ECUs */
		int64_t now = pq_mono_ms();
		int idle = atomic_load(&s->idle_ms);
		for (size_t i = 0; i < SIM_MAX_CONN; i++) {
			sim_conn *c = &z->conn[i];
			if (c->fd < 0)
				continue;
			if (c->active ? now - c->last_ms > idle
			              : now - c->opened_ms > SIM_INITIAL_MS)
				conn_close(c);
		}
		pthread_mutex_lock(&s->lock);
		for (size_t i = 0; i < z->n_ecus; i++)
			ecu_tick(z->ecus[i], now);
		ecu_tick(&z->gw, now);
		pthread_mutex_unlock(&s->lock);
	}
	for (size_t i = 0; i < SIM_MAX_CONN; i++)
		conn_close(&z->conn[i]);
	return NULL;
}

static int listen_on(uint16_t port, int *fd_out, uint16_t *port_out)
{
	int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (fd < 0)
		return pq_err_set(PQ_ERR_IO, "sim: socket: %s", strerror(errno));
	int one = 1;
	(void)setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
	struct sockaddr_in a;
	memset(&a, 0, sizeof(a));
	a.sin_family = AF_INET;
	a.sin_port = htons(port);
	a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	socklen_t alen = sizeof(a);
	if (bind(fd, (struct sockaddr *)&a, sizeof(a)) != 0 || listen(fd, 16) != 0 ||
	    getsockname(fd, (struct sockaddr *)&a, &alen) != 0) {
		int e = errno;
		close(fd);
		return pq_err_set(PQ_ERR_IO, "sim: listening on 127.0.0.1:%u: %s", port,
		                  strerror(e));
	}
	*fd_out = fd;
	*port_out = ntohs(a.sin_port);
	return PQ_OK;
}

/* ---- lifecycle ----------------------------------------------------------------------------- */

static int copy_model(const vm_model *m, vm_model *out)
{
	*out = *m;
	out->ecus = calloc(m->n_ecus ? m->n_ecus : 1, sizeof(*m->ecus));
	if (!out->ecus)
		return pq_err_set(PQ_ERR_NOMEM, "sim: no memory");
	if (m->n_ecus)
		memcpy(out->ecus, m->ecus, m->n_ecus * sizeof(*m->ecus));
	return PQ_OK;
}

static int setup_ecus(sim *s, const sim_faults *f)
{
	s->ecus = calloc(s->m.n_ecus ? s->m.n_ecus : 1, sizeof(*s->ecus));
	if (!s->ecus)
		return pq_err_set(PQ_ERR_NOMEM, "sim: no memory");
	for (size_t i = 0; i < s->m.n_ecus; i++) {
		const vm_ecu *me = &s->m.ecus[i];
		uint8_t sha[32];
		uint64_t len = 0;
		uint32_t crc = 0;
		bool have = me->image_path[0] != '\0';
		int rc = PQ_OK;
		if (have)
			rc = image_digest(me->image_path, sha, &len, &crc);
		if (rc == PQ_OK)
			rc = ecu_init(&s->ecus[i], me, s->m.vin, have ? sha : NULL, len, crc);
		if (rc != PQ_OK)
			return pq_err_wrap(rc, "sim: %s", me->ecu_id);
		s->n_ecus++;
		ecu *e = &s->ecus[i];
		if (f) {
			e->fail_program = in_list(f->fail_program, e->ecu_id);
			e->corrupt_block = in_list(f->corrupt_block, e->ecu_id);
			e->deny_security = in_list(f->deny_security, e->ecu_id);
			e->slow_flash = in_list(f->slow_flash, e->ecu_id);
		}
	}
	return PQ_OK;
}

/* Every ECU named in a fault list must be in the model. */
static int check_faults(const vm_model *m, const sim_faults *f)
{
	int rc = PQ_OK;
	if (!f)
		return PQ_OK;
	rc = check_list(m, f->fail_program, "fail_program");
	if (rc == PQ_OK)
		rc = check_list(m, f->corrupt_block, "corrupt_block");
	if (rc == PQ_OK)
		rc = check_list(m, f->deny_security, "deny_security");
	if (rc == PQ_OK)
		rc = check_list(m, f->slow_flash, "slow_flash");
	return rc;
}

/* A simulation with nothing open yet, holding its own copy of the model. */
static int sim_new(const vm_model *m, sim **out)
{
	sim *s = calloc(1, sizeof(*s));
	if (!s)
		return pq_err_set(PQ_ERR_NOMEM, "sim: no memory");
	s->wake[0] = s->wake[1] = -1;
	atomic_init(&s->stop, false);
	atomic_init(&s->idle_ms, SIM_IDLE_MS);
	for (size_t i = 0; i < VM_ZONES_MAX; i++) {
		s->zones[i].lfd = -1;
		for (size_t k = 0; k < SIM_MAX_CONN; k++)
			s->zones[i].conn[k].fd = -1;
	}
	int rc = copy_model(m, &s->m);
	if (rc != PQ_OK) {
		free(s);
		return rc;
	}
	*out = s;
	return PQ_OK;
}

/* The ECUs, with their state from state_dir/ecus.json (created when absent). */
static int open_state(sim *s, const char *state_dir, const sim_faults *f)
{
	bool found = false;
	int rc = pq_path_join(s->state_path, sizeof(s->state_path), state_dir, "ecus.json");
	if (rc != PQ_OK)
		return pq_err_wrap(rc, "sim: state directory");
	rc = pq_mkdirs(state_dir, 0700);
	if (rc != PQ_OK)
		return rc;
	rc = setup_ecus(s, f);
	if (rc != PQ_OK)
		return rc;
	rc = load_state(s, &found);
	if (rc == PQ_OK && !found)
		rc = save_state(s);
	if (rc != PQ_OK)
		return rc;
	s->state_ok = true;
	return PQ_OK;
}

/* Zone zi's gateway, its ECUs and its listening socket. */
static int open_zone(sim *s, size_t zi)
{
	sim_zone *z = &s->zones[zi];
	const vm_zone *mz = &s->m.zones[zi];
	z->s = s;
	z->zone = mz->zone;
	z->addr = mz->addr;
	int rc = ecu_init_gateway(&z->gw, mz->zone, mz->addr, s->m.vin);
	if (rc != PQ_OK)
		return rc;
	z->ecus = calloc(s->n_ecus ? s->n_ecus : 1, sizeof(ecu *));
	if (!z->ecus)
		return pq_err_set(PQ_ERR_NOMEM, "sim: no memory");
	for (size_t i = 0; i < s->n_ecus; i++)
		if (s->m.ecus[i].zone == mz->zone)
			z->ecus[z->n_ecus++] = &s->ecus[i];
	return listen_on(mz->port, &z->lfd, &z->port);
}

int sim_start(const vm_model *m, const char *state_dir, const sim_faults *f, sim **out)
{
	sim *s = NULL;
	int rc;
	if (!m || !state_dir || !out)
		return pq_err_set(PQ_ERR_INVAL, "sim: NULL argument");
	*out = NULL;
	if (m->n_zones == 0 || m->n_zones > VM_ZONES_MAX)
		return pq_err_set(PQ_ERR_INVAL, "sim: the model has %zu zones", m->n_zones);
	rc = check_faults(m, f);
	if (rc != PQ_OK)
		return rc;
	rc = sim_new(m, &s);
	if (rc != PQ_OK)
		return rc;
	if (pthread_mutex_init(&s->lock, NULL) != 0) {
		rc = pq_err_set(PQ_ERR_NOMEM, "sim: mutex");
		goto fail;
	}
	s->lock_init = true;
	rc = open_state(s, state_dir, f);
	if (rc != PQ_OK)
		goto fail;
	if (pipe2(s->wake, O_CLOEXEC) != 0) {
		rc = pq_err_set(PQ_ERR_IO, "sim: pipe: %s", strerror(errno));
		goto fail;
	}
	for (size_t zi = 0; zi < s->m.n_zones; zi++) {
		rc = open_zone(s, zi);
		if (rc != PQ_OK)
			goto fail;
		s->n_zones++;
	}
	for (size_t zi = 0; zi < s->n_zones; zi++) {
		if (pthread_create(&s->zones[zi].th, NULL, zone_main, &s->zones[zi]) != 0) {
			rc = pq_err_set(PQ_ERR_IO, "sim: cannot start the ZGW%d thread",
			                s->zones[zi].zone);
			goto fail;
		}
		s->zones[zi].started = true;
	}
	*out = s;
	return PQ_OK;
fail:
	sim_stop(s);
	return rc;
}

uint16_t sim_zone_port(const sim *s, int zone)
{
	if (!s)
		return 0;
	for (size_t i = 0; i < s->n_zones; i++)
		if (s->zones[i].zone == zone)
			return s->zones[i].port;
	return 0;
}

void sim_set_idle_timeout(sim *s, int ms)
{
	if (s && ms > 0)
		atomic_store(&s->idle_ms, ms);
}

void sim_stop(sim *s)
{
	if (!s)
		return;
	atomic_store(&s->stop, true);
	if (s->wake[1] >= 0) {
		ssize_t w = write(s->wake[1], "x", 1);
		(void)w;
	}
	for (size_t i = 0; i < VM_ZONES_MAX; i++) {
		sim_zone *z = &s->zones[i];
		if (z->started)
			pthread_join(z->th, NULL);
		for (size_t k = 0; k < SIM_MAX_CONN; k++)
			conn_close(&z->conn[k]);
		if (z->lfd >= 0)
			close(z->lfd);
		free(z->ecus);
		ecu_free(&z->gw);
	}
	if (s->state_ok) {
		if (save_state(s) != PQ_OK)
			pq_log(PQ_LOG_ERROR, "sim", "%s", pq_err_detail());
	}
	for (size_t i = 0; i < s->n_ecus; i++)
		ecu_free(&s->ecus[i]);
	free(s->ecus);
	if (s->wake[0] >= 0)
		close(s->wake[0]);
	if (s->wake[1] >= 0)
		close(s->wake[1]);
	if (s->lock_init)
		pthread_mutex_destroy(&s->lock);
	vm_model_free(&s->m);
	free(s);
}
