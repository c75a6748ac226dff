/* ratelimit.h: token buckets, one global and one per client (API key, vehicle, address),
 * shared by all worker threads. The per-client table has a fixed number of slots; when it
 * is full the least recently used bucket is recycled, so memory never grows with clients. */
#ifndef PQOTA_SERVER_RATELIMIT_H
#define PQOTA_SERVER_RATELIMIT_H

#include <stdbool.h>

#include "core/err.h"

#define RL_SLOTS 4096

typedef struct rl_limiter rl_limiter;

/* rate = tokens per second, burst = bucket size; rate 0 disables that bucket. */
int rl_new(double global_rate, double global_burst, double client_rate, double client_burst,
           rl_limiter **out) PQ_MUST_CHECK;
void rl_free(rl_limiter *l);
/* New rates and bursts (as rl_new's), in place: buckets keep their tokens, at most the new
 * burst. */
int rl_set(rl_limiter *l, double global_rate, double global_burst, double client_rate,
           double client_burst) PQ_MUST_CHECK;

/* Takes one token from the global and the client's bucket at time now (seconds). When
 * refused, *retry_after is the seconds until a token is available. */
bool rl_allow(rl_limiter *l, const char *client, double now, double *retry_after);

/* The Retry-After of a refusal whose bucket refills in `seconds`: whole seconds rounded up,
 * at least 1 (a 0 would tell the client to retry at once) and at most a day. */
int rl_retry_after_s(double seconds);

#endif
