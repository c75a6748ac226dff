/* campaign_watch.c: `pqota campaign watch ID`: the campaign's deployment transitions as
 * they happen, from the server's event stream (GET /api/v1/events, docs/api.md 15.2), and
 * its counts, re-read after every event of the campaign and every few seconds (events of
 * other server instances are not in one stream; a "reset" means some were missed), until
 * the campaign is completed or cancelled. A continuous campaign (docs/api.md 12) ends only
 * when cancelled (or after its ends_at): watched with --timeout, it exits 0 when the time
 * is up while it still runs (admitting), 1 when it was paused. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli/campaign.h"
#include "cli/cli.h"
#include "core/time.h"

#define LINE_MAX_BYTES  (256u * 1024u) /* one event-stream line (the server's batches are less) */
#define REFRESH_MS      5000
#define POLL_MS         500
#define RECONNECT_MS    1000
#define CONNECT_WAIT_MS 5000

typedef struct {
	cli_conn *c;
	const char *id;
	char *line; /* the line being assembled */
	size_t len;
	char event[32];
	char *data; /* the event's data lines, joined */
	size_t dlen;
	bool dirty;      /* an event of the campaign (or a reset): re-read it */
	bool connected;  /* the stream's ": connected" arrived */
	char last[640];  /* the last counts line printed */
	bool continuous; /* the campaign's mode is continuous: it ends only when cancelled */
} watcher;

static void now_text(char out[16])
{
	char t[24];
	cli_time(pq_real_ms(), t);
	snprintf(out, 16, "%s", t + 11);
}

/* One complete event: the campaign's deployments and state changes are printed. */
static void dispatch(watcher *w)
{
	json_error_t je;
	json_t *d = w->dlen ? json_loadb(w->data, w->dlen, 0, &je) : NULL;
	bool deployment = strcmp(w->event, "deployment") == 0;
	bool campaign = strcmp(w->event, "campaign") == 0;
	if (strcmp(w->event, "reset") == 0)
		w->dirty = true;
	if (d && ((deployment && !strcmp(cli_jstr(d, "campaign_id"), w->id)) ||
	          (campaign && !strcmp(cli_jstr(d, "id"), w->id)))) {
		char t[16];
		now_text(t);
		w->dirty = true;
		if (w->c->json) {
			json_object_set_new(d, "event", json_string(w->event));
			char *s = json_dumps(d, JSON_COMPACT | JSON_SORT_KEYS);
			if (s)
				printf("%s\n", s);
			free(s);
		} else if (deployment) {
			printf("%s  %-20s %-11s -> %-11s %s\n", t, cli_jstr(d, "vin"),
			       *cli_jstr(d, "from") ? cli_jstr(d, "from") : "-", cli_jstr(d, "to"),
			       cli_jstr(d, "cause"));
		} else {
			printf("%s  campaign %s%s%s\n", t, cli_jstr(d, "state"),
			       *cli_jstr(d, "pause_reason") ? ": " : "",
			       cli_jstr(d, "pause_reason"));
		}
		fflush(stdout);
	}
	json_decref(d);
	w->event[0] = '\0';
	w->dlen = 0;
}

/* One line of the stream (without its newline). */
static bool on_line(watcher *w, char *l, size_t n)
{
	if (n && l[n - 1] == '\r')
		l[--n] = '\0';
	if (n == 0) {
		dispatch(w);
	} else if (!strncmp(l, "event:", 6)) {
		snprintf(w->event, sizeof(w->event), "%s", l + 6 + (l[6] == ' '));
	} else if (!strncmp(l, "data:", 5)) {
		const char *v = l + 5 + (l[5] == ' ');
		size_t vn = strlen(v);
		if (w->dlen + vn + 1 > LINE_MAX_BYTES)
			return false;
		if (w->dlen)
			w->data[w->dlen++] = '\n';
		memcpy(w->data + w->dlen, v, vn);
		w->dlen += vn;
	} else if (!strncmp(l, ": connected", 11)) {
		w->connected = true;
	} /* other comments, id: and retry: need nothing */
	return true;
}

/* cli_stream_fn: bytes of the stream, cut into lines. */
static bool on_bytes(const char *p, size_t n, void *user)
{
	watcher *w = user;
	for (size_t i = 0; i < n; i++) {
		if (p[i] != '\n') {
			if (w->len + 1 >= LINE_MAX_BYTES)
				return false; /* a line this long is not the server's: reconnect */
			w->line[w->len++] = p[i];
			continue;
		}
		w->line[w->len] = '\0';
		bool ok = on_line(w, w->line, w->len);
		w->len = 0;
		if (!ok)
			return false;
	}
	return true;
}

/* Re-reads the campaign; prints its counts when they changed. *state its state. */
static int refresh(watcher *w, char *state, size_t cap)
{
	char path[160], counts[512], line[640], t[16];
	json_t *cp = NULL;
	snprintf(path, sizeof(path), "/api/v1/campaigns/%s", w->id);
	int ex = cli_call(w->c, "GET", path, NULL, 200, &cp, "campaign watch");
	if (ex != CLI_EXIT_OK)
		return ex;
	snprintf(state, cap, "%s", cli_jstr(cp, "state"));
	w->continuous = !strcmp(cli_jstr(cp, "mode"), "continuous");
	campaign_counts_text(json_object_get(cp, "counts"), counts, sizeof(counts));
	snprintf(line, sizeof(line), "%s%s, phase %lld, %lld vehicle(s)%s: %s", state,
	         w->continuous ? " (continuous)" : "", cli_jint(cp, "current_phase"),
	         cli_jint(cp, "total"), w->continuous ? " admitted" : "", counts);
	if (strcmp(line, w->last) != 0) {
		snprintf(w->last, sizeof(w->last), "%s", line);
		now_text(t);
		if (w->c->json) {
			json_t *j = json_pack(
			    "{s:s,s:s,s:s,s:s,s:I,s:I,s:O}", "event", "counts", "id", w->id,
			    "state", state, "mode", w->continuous ? "continuous" : "once",
			    "current_phase", (json_int_t)cli_jint(cp, "current_phase"), "total",
			    (json_int_t)cli_jint(cp, "total"), "counts",
			    json_object_get(cp, "counts"));
			char *s = j ? json_dumps(j, JSON_COMPACT | JSON_SORT_KEYS) : NULL;
			if (s)
				printf("%s\n", s);
			free(s);
			json_decref(j);
		} else {
			printf("%s  == %s\n", t, line);
		}
		fflush(stdout);
	}
	json_decref(cp);
	return CLI_EXIT_OK;
}

static bool ended(const char *state)
{
	return !strcmp(state, "completed") || !strcmp(state, "cancelled");
}

/* Opens the event stream and waits (a few seconds at most) until the server says it is
 * connected: events from then on are in it. NULL when it cannot be used (then the watch
 * polls only). */
static cli_stream *connect_stream(watcher *w, bool *usable)
{
	long status = 0;
	w->len = w->dlen = 0;
	w->connected = false;
	cli_stream *st = cli_stream_open(w->c, "/api/v1/events", on_bytes, w);
	if (!st) {
		*usable = false;
		return NULL;
	}
	int64_t until = pq_mono_ms() + CONNECT_WAIT_MS;
	while (!w->connected && pq_mono_ms() < until) {
		if (!cli_stream_poll(st, POLL_MS, &status)) {
			cli_stream_close(st);
			if (status != 0 &&
			    status != 200) /* refused (a role, the limit): poll only */
				*usable = false;
			return NULL;
		}
	}
	w->dirty = true; /* what happened before the stream opened */
	return st;
}

int campaign_watch(cli_conn *c, const char *id, long timeout_s)
{
	watcher w = {
	    .c = c, .id = id, .line = malloc(LINE_MAX_BYTES), .data = malloc(LINE_MAX_BYTES)};
	cli_stream *st = NULL;
	char state[32] = "";
	bool use_stream = true, admitting = false;
	int64_t start = pq_mono_ms(), next_refresh = 0, next_connect = 0;
	int ex = w.line && w.data ? CLI_EXIT_OK : cli_error(PQ_ERR_NOMEM, "campaign watch");
	while (ex == CLI_EXIT_OK) {
		int64_t now = pq_mono_ms();
		if (!st && use_stream && now >= next_connect) {
			st = connect_stream(&w, &use_stream);
			next_connect = pq_mono_ms() + RECONNECT_MS;
			now = pq_mono_ms();
		}
		if (w.dirty || now >= next_refresh) {
			w.dirty = false;
			next_refresh = now + REFRESH_MS;
			ex = refresh(&w, state, sizeof(state));
			if (ex != CLI_EXIT_OK || ended(state))
				break;
		}
		if (timeout_s && now - start >= timeout_s * 1000) {
			/* a continuous campaign that still admits is where it should be */
			admitting = w.continuous && !strcmp(state, "running");
			fprintf(stderr, "pqota: %scampaign %s is still %s after %ld s\n",
			        w.continuous ? "continuous " : "", id, state, timeout_s);
			ex = admitting ? CLI_EXIT_OK : CLI_EXIT_FAIL;
			break;
		}
		long status = 0;
		if (st && !cli_stream_poll(st, POLL_MS, &status)) {
			cli_stream_close(st);
			st = NULL;
			if (status != 0 && status != 200)
				use_stream = false;
		} else if (!st) {
			pq_sleep_ms(POLL_MS);
		}
	}
	cli_stream_close(st);
	free(w.line);
	free(w.data);
	if (ex == CLI_EXIT_OK && !admitting && strcmp(state, "completed") != 0)
		ex = CLI_EXIT_FAIL;
	return ex;
}
