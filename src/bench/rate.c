/* rate.c: the timing loop of the throughput benchmarks. */
#include "bench/bench.h"

#include "core/time.h"

double bench_rate(bench_op_fn fn, void *arg, double secs)
{
	double t0 = pq_mono_s(), t;
	long n = 0;
	do {
		for (int i = 0; i < 4; i++, n++)
			if (fn(arg) != PQ_OK)
				return -1;
		t = pq_mono_s();
	} while (t - t0 < secs);
	return (double)n / (t - t0);
}
