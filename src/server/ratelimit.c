/* ratelimit.c: token buckets with a fixed-size, mutex-protected per-client table. */
#include "server/ratelimit.h"

#include <pthread.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

typedef struct {
	double tokens;
	double last; /* seconds */
} bucket;

typedef struct {
	uint64_t hash;
	char key[96];
	bucket b;
	bool used;
} slot;

struct rl_limiter {
	pthread_mutex_t mu;
	double g_rate, g_burst, c_rate, c_burst;
	bucket global;
	slot *slots;
};

static uint64_t fnv1a(const char *s)
{
	uint64_t h = 1469598103934665603ull;
	for (; *s; s++) {
		h ^= (unsigned char)*s;
		h *= 1099511628211ull;
	}
	return h;
}

int rl_new(double gr, double gb, double cr, double cb, rl_limiter **out)
{
	rl_limiter *l = calloc(1, sizeof(*l));
	*out = NULL;
	if (!l)
		return pq_err_set(PQ_ERR_NOMEM, "rate limiter");
	if (gr < 0 || gb < 0 || cr < 0 || cb < 0) {
		free(l);
		return pq_err_set(PQ_ERR_INVAL, "rate limits must not be negative");
	}
	l->slots = calloc(RL_SLOTS, sizeof(*l->slots));
	if (!l->slots) {
		free(l);
		return pq_err_set(PQ_ERR_NOMEM, "rate limiter table");
	}
	pthread_mutex_init(&l->mu, NULL);
	l->g_rate = gr;
	l->g_burst = gb > 0 ? gb : gr;
	l->c_rate = cr;
	l->c_burst = cb > 0 ? cb : cr;
	l->global.tokens = l->g_burst;
	l->global.last = -1;
	*out = l;
	return PQ_OK;
}

int rl_set(rl_limiter *l, double gr, double gb, double cr, double cb)
{
	if (gr < 0 || gb < 0 || cr < 0 || cb < 0)
		return pq_err_set(PQ_ERR_INVAL, "rate limits must not be negative");
	pthread_mutex_lock(&l->mu);
	l->g_rate = gr;
	l->g_burst = gb > 0 ? gb : gr;
	l->c_rate = cr;
	l->c_burst = cb > 0 ? cb : cr;
	if (l->global.tokens > l->g_burst)
		l->global.tokens = l->g_burst;
	for (size_t i = 0; i < RL_SLOTS; i++)
		if (l->slots[i].b.tokens > l->c_burst)
			l->slots[i].b.tokens = l->c_burst;
	pthread_mutex_unlock(&l->mu);
	return PQ_OK;
}

void rl_free(rl_limiter *l)
{
	if (!l)
		return;
	pthread_mutex_destroy(&l->mu);
	free(l->slots);
	free(l);
}

/* Refills b to now; returns whether a token can be taken, and the wait otherwise. */
static bool refill_ok(bucket *b, double rate, double burst, double now, double *wait)
{
	if (b->last < 0) {
		b->tokens = burst;
		b->last = now;
	}
	if (now > b->last) {
		b->tokens += (now - b->last) * rate;
		if (b->tokens > burst)
			b->tokens = burst;
		b->last = now;
	}
	if (b->tokens >= 1.0)
		return true;
	*wait = (1.0 - b->tokens) / rate;
	return false;
}

/* The client's slot: found by hash with linear probing over 8 slots, else the stalest of
 * those 8 is recycled. */
static bucket *client_bucket(rl_limiter *l, const char *key, double now)
{
	uint64_t h = fnv1a(key);
	size_t base = (size_t)(h % RL_SLOTS), victim = base;
	for (size_t i = 0; i < 8; i++) {
		slot *s = &l->slots[(base + i) % RL_SLOTS];
		if (s->used && s->hash == h && strcmp(s->key, key) == 0)
			return &s->b;
		if (!s->used) {
			victim = (base + i) % RL_SLOTS;
			break;
		}
		if (s->b.last < l->slots[victim].b.last)
			victim = (base + i) % RL_SLOTS;
	}
	slot *s = &l->slots[victim];
	s->used = true;
	s->hash = h;
	size_t n = strlen(key);
	if (n >= sizeof(s->key))
		n = sizeof(s->key) - 1;
	memcpy(s->key, key, n);
	s->key[n] = '\0';
	s->b.tokens = l->c_burst;
	s->b.last = now;
	return &s->b;
}

bool rl_allow(rl_limiter *l, const char *client, double now, double *retry_after)
{
	double wait = 0;
	bool ok = true;
	*retry_after = 0;
	pthread_mutex_lock(&l->mu);
	bucket *cb = l->c_rate > 0 ? client_bucket(l, client, now) : NULL;
	if (l->g_rate > 0 && !refill_ok(&l->global, l->g_rate, l->g_burst, now, &wait)) {
		ok = false;
		*retry_after = wait;
	}
	if (cb && !refill_ok(cb, l->c_rate, l->c_burst, now, &wait)) {
		ok = false;
		if (wait > *retry_after)
			*retry_after = wait;
	}
	if (ok) { /* take from both only when both allow */
		if (l->g_rate > 0)
			l->global.tokens -= 1.0;
		if (cb)
			cb->tokens -= 1.0;
	}
	pthread_mutex_unlock(&l->mu);
	return ok;
}

int rl_retry_after_s(double seconds)
{
	if (!(seconds > 1.0)) /* also NaN */
		return 1;
	if (seconds >= 86400.0)
		return 86400;
	int s = (int)seconds;
	return (double)s < seconds ? s + 1 : s;
}
