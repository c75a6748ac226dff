/* err.c: error codes, thread-local failure details, OpenSSL error queue capture. */
#include "core/err.h"

#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#include <openssl/err.h>

#define DETAIL_MAX 1024

static _Thread_local char detail[DETAIL_MAX];

const char *pq_strerror(int err)
{
	switch (err) {
	case PQ_OK:
		return "success";
	case PQ_ERR_NOMEM:
		return "out of memory";
	case PQ_ERR_INVAL:
		return "invalid argument";
	case PQ_ERR_CRYPTO:
		return "cryptographic operation failed";
	case PQ_ERR_VERIFY:
		return "verification failed";
	case PQ_ERR_IO:
		return "I/O error";
	case PQ_ERR_FORMAT:
		return "malformed data";
	case PQ_ERR_UNSUPPORTED:
		return "not supported";
	case PQ_ERR_TLS:
		return "TLS error";
	case PQ_ERR_NOTFOUND:
		return "not found";
	case PQ_ERR_RANGE:
		return "out of range";
	case PQ_ERR_EXISTS:
		return "already exists";
	case PQ_ERR_TIMEOUT:
		return "timed out";
	case PQ_ERR_CANCELLED:
		return "cancelled";
	default:
		return "unknown error";
	}
}

const char *pq_err_detail(void)
{
	return detail;
}

__attribute__((format(printf, 1, 0))) static void vset(const char *fmt, va_list ap)
{
	vsnprintf(detail, sizeof(detail), fmt, ap);
}

int pq_err_set(int err, const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	vset(fmt, ap);
	va_end(ap);
	return err;
}

/* Appends "; openssl: <lib:reason>, ..." for each queued OpenSSL error. */
static void append_ssl_queue(void)
{
	size_t used = strlen(detail);
	unsigned long e;
	int first = 1;
	while ((e = ERR_get_error()) != 0) {
		char buf[256];
		ERR_error_string_n(e, buf, sizeof(buf));
		if (used + 16 >= sizeof(detail))
			continue; /* keep draining the queue */
		int n = snprintf(detail + used, sizeof(detail) - used, "%s%s",
		                 first ? " (openssl: " : "; ", buf);
		if (n > 0)
			used += (size_t)n < sizeof(detail) - used ? (size_t)n
			                                          : sizeof(detail) - used - 1;
		first = 0;
	}
	if (!first && used + 2 < sizeof(detail)) {
		detail[used++] = ')';
		detail[used] = '\0';
	}
}

int pq_err_ssl(int err, const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	vset(fmt, ap);
	va_end(ap);
	append_ssl_queue();
	return err;
}

int pq_err_wrap(int err, const char *fmt, ...)
{
	char prev[DETAIL_MAX];
	char ctx[DETAIL_MAX / 2];
	va_list ap;
	memcpy(prev, detail, sizeof(prev));
	va_start(ap, fmt);
	vsnprintf(ctx, sizeof(ctx), fmt, ap);
	va_end(ap);
	/* context first; the previous detail is cut if both do not fit */
	size_t n = strlen(ctx);
	memcpy(detail, ctx, n);
	const char *rest = prev[0] ? prev : pq_strerror(err);
	size_t room = sizeof(detail) - n - 1;
	if (room > 2) {
		detail[n++] = ':';
		detail[n++] = ' ';
		room -= 2;
		size_t r = strlen(rest);
		if (r > room)
			r = room;
		memcpy(detail + n, rest, r);
		n += r;
	}
	detail[n] = '\0';
	return err;
}

void pq_err_clear(void)
{
	detail[0] = '\0';
	ERR_clear_error();
}
