/* watchdog.c: the server's notifications to a service manager (core/notify.h; systemd's
 * Type=notify units in dist/systemd, or `pqota supervise`): READY=1 once every worker
 * listens (after the start-up self-check of srv_new), STOPPING=1 when it drains, and the
 * watchdog. What a WATCHDOG=1 ping proves: every worker's event loop turned within half
 * the interval (each stamps alive_ms from a timer of its own loop), and the main thread,
 * which sends it, is not blocked. A wedged worker stops the pings, and the manager kills
 * and restarts the server. */
#include <event2/event.h>

#include "core/log.h"
#include "core/notify.h"
#include "core/time.h"
#include "server/server_int.h"

#define LOGC "server"

static void on_alive(evutil_socket_t fd, short what, void *arg)
{
	srv_worker *w = arg;
	(void)fd;
	(void)what;
	atomic_store(&w->alive_ms, pq_mono_ms());
}

/* The timer's period: a quarter of the interval (at most 1 s, at least 10 ms), so a
 * working loop always stamps within half of it. */
static int64_t alive_period_ms(const srv *s)
{
	int64_t p = s->watchdog_ms / 4;
	return p > 1000 ? 1000 : p < 10 ? 10 : p;
}

int srv__alive_init(srv_worker *w)
{
	const srv *s = w->s;
	atomic_store(&w->alive_ms, pq_mono_ms());
	if (s->watchdog_ms <= 0)
		return PQ_OK;
	int64_t p = alive_period_ms(s);
	struct timeval tv = {.tv_sec = p / 1000, .tv_usec = (p % 1000) * 1000};
	w->alive_ev = event_new(w->base, -1, EV_PERSIST, on_alive, w);
	if (!w->alive_ev || event_add(w->alive_ev, &tv) != 0)
		return pq_err_set(PQ_ERR_NOMEM, "worker %d: watchdog timer", w->index);
	return PQ_OK;
}

void srv__alive_free(srv_worker *w)
{
	if (w->alive_ev)
		event_free(w->alive_ev);
	w->alive_ev = NULL;
}

static void notify(const char *state)
{
	if (pq_notify(state) != PQ_OK)
		pq_log(PQ_LOG_WARN, LOGC, "service manager: %s", pq_err_detail());
}

void srv__notify_ready(srv *s)
{
	if (pq_notifyf("READY=1\nSTATUS=listening on %s:%d", s->listen_host, s->port) != PQ_OK)
		pq_log(PQ_LOG_WARN, LOGC, "service manager: %s", pq_err_detail());
	else if (s->watchdog_ms > 0)
		pq_log(PQ_LOG_INFO, LOGC, "watchdog: a ping every %lld ms while the workers run",
		       (long long)alive_period_ms(s));
}

void srv__notify_stopping(void)
{
	notify("STOPPING=1");
}

int srv__watchdog_wait(const srv *s)
{
	return s->watchdog_ms > 0 ? (int)alive_period_ms(s) : -1;
}

void srv__watchdog_tick(srv *s)
{
	if (s->watchdog_ms <= 0)
		return;
	int64_t now = pq_mono_ms();
	for (int i = 0; i < s->nworkers; i++) {
		int64_t idle = now - (int64_t)atomic_load(&s->workers[i].alive_ms);
		if (s->workers[i].started && idle > s->watchdog_ms / 2) {
			pq_log(PQ_LOG_ERROR, LOGC,
			       "watchdog: worker %d has not run for %lld ms: no ping (the service "
			       "manager restarts the server after %lld ms without one)",
			       i, (long long)idle, (long long)s->watchdog_ms);
			return;
		}
	}
	notify("WATCHDOG=1");
}
