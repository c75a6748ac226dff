/* metrics_http.c: the parts of /metrics that describe requests and the process:
 *  - pqota_http_request_duration_seconds, a histogram per route pattern (the route table's
 *    patterns, one series each whatever the methods; route="-" for requests that matched
 *    none), from the router reaching the request to its response handed to the connection;
 *  - pqota_build_info; the standard process_* metrics read from /proc/self. */
#include <dirent.h>
#include <inttypes.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <event2/buffer.h>
#include <openssl/crypto.h>

#include "core/time.h"
#include "server/server_int.h"
#include "tls/tls.h"

#ifndef PQOTA_VERSION
#define PQOTA_VERSION "dev"
#endif
#define ROUTES_MAX 512

/* Upper bounds of the buckets, seconds. */
static const double bounds[SRV_DURATION_BUCKETS] = {0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05,
                                                    0.1,    0.25,  0.5,    1,     2.5,  10};

/* The route patterns, once per process: names[] distinct, keys[] every row's pattern
 * pointer with its name's index, sorted by pointer (the router hands the pointer). */
typedef struct {
	const char *ptr;
	int idx;
} route_key;

static route_key keys[ROUTES_MAX];
static const char *names[ROUTES_MAX];
static int nkeys, nnames;
static pthread_once_t once = PTHREAD_ONCE_INIT;

static int key_cmp(const void *a, const void *b)
{
	uintptr_t x = (uintptr_t)((const route_key *)a)->ptr,
	          y = (uintptr_t)((const route_key *)b)->ptr;
	return x < y ? -1 : x > y;
}

static void index_routes(void)
{
	for (size_t t = 0; srv_route_tables[t]; t++)
		for (const srv_route *r = srv_route_tables[t]; r->pattern && nkeys < ROUTES_MAX;
		     r++) {
			int i = 0;
			while (i < nnames && strcmp(names[i], r->pattern) != 0)
				i++;
			if (i == nnames)
				names[nnames++] = r->pattern;
			keys[nkeys++] = (route_key){r->pattern, i};
		}
	qsort(keys, (size_t)nkeys, sizeof(keys[0]), key_cmp);
}

/* The histogram slot of a route pattern pointer (nnames: none of the table's). */
static int slot_of_route(const char *route)
{
	route_key k = {route, 0};
	const route_key *hit =
	    route ? bsearch(&k, keys, (size_t)nkeys, sizeof(keys[0]), key_cmp) : NULL;
	return hit ? hit->idx : nnames;
}

int srv__route_hists_new(srv *s)
{
	pthread_once(&once, index_routes);
	s->m.routes = calloc((size_t)nnames + 1, sizeof(*s->m.routes));
	return s->m.routes ? PQ_OK : pq_err_set(PQ_ERR_NOMEM, "route histograms");
}

void srv__observe_duration(srv *s, const char *route, int64_t ns)
{
	if (!s->m.routes || ns < 0)
		return;
	srv_route_hist *h = &s->m.routes[slot_of_route(route)];
	double sec = (double)ns / 1e9;
	int b = 0;
	while (b < SRV_DURATION_BUCKETS && sec > bounds[b])
		b++;
	atomic_fetch_add(&h->bucket[b], 1); /* b == SRV_DURATION_BUCKETS: over the last bound */
	atomic_fetch_add(&h->sum_us, (uint64_t)(ns / 1000));
}

/* One route's series (those of a route no request took are left out): the buckets read
 * once each, so the cumulative counts and the count agree even while requests finish. */
static void route_series(struct evbuffer *out, const char *name, const srv_route_hist *h)
{
	uint64_t n[SRV_DURATION_BUCKETS + 1], cum = 0, count = 0;
	for (int b = 0; b <= SRV_DURATION_BUCKETS; b++)
		count += n[b] = atomic_load(&h->bucket[b]);
	if (count == 0)
		return;
	for (int b = 0; b < SRV_DURATION_BUCKETS; b++) {
		cum += n[b];
		evbuffer_add_printf(
		    out,
		    "pqota_http_request_duration_seconds_bucket{route=\"%s\",le=\"%g\"} "
		    "%" PRIu64 "\n",
		    name, bounds[b], cum);
	}
	evbuffer_add_printf(out,
	                    "pqota_http_request_duration_seconds_bucket{route=\"%s\",le=\"+Inf\"} "
	                    "%" PRIu64 "\n"
	                    "pqota_http_request_duration_seconds_sum{route=\"%s\"} %.6f\n"
	                    "pqota_http_request_duration_seconds_count{route=\"%s\"} %" PRIu64 "\n",
	                    name, count, name, (double)atomic_load(&h->sum_us) / 1e6, name, count);
}

static void duration_metrics(srv *s, struct evbuffer *out)
{
	if (!s->m.routes)
		return;
	evbuffer_add_printf(out, "# HELP pqota_http_request_duration_seconds Time from a request "
	                         "reaching the router to its response, by route pattern.\n"
	                         "# TYPE pqota_http_request_duration_seconds histogram\n");
	for (int i = 0; i < nnames; i++)
		route_series(out, names[i], &s->m.routes[i]);
	route_series(out, "-", &s->m.routes[nnames]);
}

/* ---- build and process ------------------------------------------------------------------- */

static int count_fds(void)
{
	DIR *d = opendir("/proc/self/fd");
	int n = 0;
	if (!d)
		return -1;
	for (struct dirent *e; (e = readdir(d)) != NULL;)
		n += e->d_name[0] != '.';
	closedir(d);
	return n - 1; /* the directory's own descriptor */
}

/* The seconds since boot (/proc/uptime); 0 when unknown. */
static double uptime_s(void)
{
	char buf[64];
	FILE *f = fopen("/proc/uptime", "r");
	size_t n = f ? fread(buf, 1, sizeof(buf) - 1, f) : 0;
	if (f)
		fclose(f);
	buf[n] = '\0';
	char *end = NULL;
	double up = strtod(buf, &end);
	return end && end != buf ? up : 0;
}

/* utime + stime, the start time (ticks after boot), virtual and resident size from
 * /proc/self/stat (fields 14, 15, 22, 23, 24 of proc(5)); false when it cannot be read. */
static bool proc_stat(double *cpu_s, double *start_s, uint64_t *vsize, uint64_t *rss)
{
	char buf[1024];
	unsigned long long f[22] = {0}; /* fields 3.. of proc(5), from index 0 */
	FILE *fp = fopen("/proc/self/stat", "r");
	size_t n = fp ? fread(buf, 1, sizeof(buf) - 1, fp) : 0;
	if (fp)
		fclose(fp);
	buf[n] = '\0';
	char *p = strrchr(buf, ')'); /* the command name may hold spaces */
	int i = 0;
	for (p = p ? p + 2 : NULL; p && *p && i < 22; i++) {
		char *end = NULL;
		f[i] = i == 0 ? 0 : strtoull(p, &end, 10); /* field 3 is the state letter */
		p = strchr(p, ' ');
		p = p ? p + 1 : NULL;
	}
	if (i < 22)
		return false;
	double hz = (double)sysconf(_SC_CLK_TCK), up = uptime_s();
	*cpu_s = (double)(f[11] + f[12]) / hz;
	*start_s = up > 0 ? (double)pq_real_ms() / 1000.0 - up + (double)f[19] / hz : 0;
	*vsize = f[20];
	*rss = f[21] * (uint64_t)sysconf(_SC_PAGESIZE);
	return true;
}

static void process_metrics(struct evbuffer *out)
{
	double cpu = 0, start = 0;
	uint64_t vsize = 0, rss = 0;
	int fds = count_fds();
	long maxfds = sysconf(_SC_OPEN_MAX);
	if (proc_stat(&cpu, &start, &vsize, &rss))
		evbuffer_add_printf(
		    out,
		    "# HELP process_cpu_seconds_total User and system CPU time spent in seconds.\n"
		    "# TYPE process_cpu_seconds_total counter\nprocess_cpu_seconds_total %.2f\n"
		    "# HELP process_start_time_seconds Start time of the process since the epoch "
		    "in "
		    "seconds.\n# TYPE process_start_time_seconds gauge\n"
		    "process_start_time_seconds %.2f\n"
		    "# HELP process_virtual_memory_bytes Virtual memory size in bytes.\n"
		    "# TYPE process_virtual_memory_bytes gauge\nprocess_virtual_memory_bytes "
		    "%" PRIu64
		    "\n# HELP process_resident_memory_bytes Resident memory size in bytes.\n"
		    "# TYPE process_resident_memory_bytes gauge\nprocess_resident_memory_bytes "
		    "%" PRIu64 "\n",
		    cpu, start, vsize, rss);
	if (fds >= 0)
		evbuffer_add_printf(out,
		                    "# HELP process_open_fds Number of open file descriptors.\n"
		                    "# TYPE process_open_fds gauge\nprocess_open_fds %d\n",
		                    fds);
	if (maxfds > 0)
		evbuffer_add_printf(
		    out,
		    "# HELP process_max_fds Maximum number of open file descriptors.\n"
		    "# TYPE process_max_fds gauge\nprocess_max_fds %ld\n",
		    maxfds);
}

void srv__metrics_http_text(srv *s, struct evbuffer *out)
{
	const srv_options *o = srv_get_options(s);
	evbuffer_add_printf(out,
	                    "# HELP pqota_build_info The pqota build: version, OpenSSL loaded, "
	                    "TLS profile and store backend (always 1).\n"
	                    "# TYPE pqota_build_info gauge\n"
	                    "pqota_build_info{version=\"%s\",openssl=\"%s\",profile=\"%d\","
	                    "group=\"%s\",backend=\"%s\"} 1\n",
	                    PQOTA_VERSION, OpenSSL_version(OPENSSL_VERSION_STRING), o->profile->id,
	                    o->profile->tls_group,
	                    o->store.backend == STORE_SQLITE ? "sqlite" : "postgres");
	duration_metrics(s, out);
	process_metrics(out);
}
