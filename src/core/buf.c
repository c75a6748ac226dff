/* buf.c: the size-capped text builder (growing or fixed storage). */
#include "core/buf.h"

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define BUF_FIRST 256

void pq_buf_init(pq_buf *b, size_t max)
{
	*b = (pq_buf){.max = max};
}

void pq_buf_init_fixed(pq_buf *b, char *mem, size_t cap)
{
	*b = (pq_buf){.p = mem, .cap = cap, .max = cap - 1, .fixed = true};
	mem[0] = '\0';
}

/* Makes room for n more bytes of text in a growing buffer. */
static bool grow(pq_buf *b, size_t n)
{
	if (n > b->max - b->len) {
		b->err = pq_err_set(PQ_ERR_RANGE, "text longer than %zu bytes", b->max);
		return false;
	}
	size_t need = b->len + n + 1;
	if (need <= b->cap)
		return true;
	size_t cap = b->cap ? b->cap : BUF_FIRST;
	while (cap < need)
		cap = cap > SIZE_MAX / 2 ? need : cap * 2;
	char *np = realloc(b->p, cap);
	if (!np) {
		b->err = pq_err_set(PQ_ERR_NOMEM, "%zu bytes of text", cap);
		return false;
	}
	b->p = np;
	b->cap = cap;
	return true;
}

/* Appends what fits of n bytes to a fixed buffer; a cut ends the text with "...". */
static void add_fixed(pq_buf *b, const void *data, size_t n)
{
	if (b->cut)
		return;
	size_t room = b->cap - 1 - b->len;
	if (n > room) {
		n = room;
		b->cut = true;
	}
	memcpy(b->p + b->len, data, n);
	b->len += n;
	b->p[b->len] = '\0';
	if (b->cut && b->len >= 3)
		memcpy(b->p + b->len - 3, "...", 3);
}

void pq_buf_add(pq_buf *b, const void *data, size_t n)
{
	if (b->fixed) {
		add_fixed(b, data, n);
		return;
	}
	if (b->err || !grow(b, n))
		return;
	if (n)
		memcpy(b->p + b->len, data, n);
	b->len += n;
	b->p[b->len] = '\0';
}

void pq_buf_str(pq_buf *b, const char *s)
{
	pq_buf_add(b, s, strlen(s));
}

void pq_buf_char(pq_buf *b, char c)
{
	pq_buf_add(b, &c, 1);
}

/* A fixed buffer formats in place; what does not fit is cut. */
PQ_PRINTF(2, 0) static void vprintf_fixed(pq_buf *b, const char *fmt, va_list ap)
{
	size_t room = b->cap - b->len;
	int n = vsnprintf(b->p + b->len, room, fmt, ap);
	if (n < 0) {
		b->p[b->len] = '\0';
		return;
	}
	if ((size_t)n < room) {
		b->len += (size_t)n;
		return;
	}
	b->len = b->cap - 1;
	b->cut = true;
	if (b->len >= 3)
		memcpy(b->p + b->len - 3, "...", 3);
}

void pq_buf_vprintf(pq_buf *b, const char *fmt, va_list ap)
{
	char small[256];
	va_list again;
	if (b->cut || b->err)
		return;
	if (b->fixed) {
		vprintf_fixed(b, fmt, ap);
		return;
	}
	va_copy(again, ap);
	int n = vsnprintf(small, sizeof(small), fmt, ap);
	if (n < 0) {
		va_end(again);
		b->err = pq_err_set(PQ_ERR_INVAL, "formatting text");
		return;
	}
	if ((size_t)n < sizeof(small)) {
		va_end(again);
		pq_buf_add(b, small, (size_t)n);
		return;
	}
	if (grow(b, (size_t)n))
		b->len += (size_t)vsnprintf(b->p + b->len, (size_t)n + 1, fmt, again);
	va_end(again);
}

void pq_buf_printf(pq_buf *b, const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	pq_buf_vprintf(b, fmt, ap);
	va_end(ap);
}

int pq_buf_err(const pq_buf *b)
{
	return b->err;
}

int pq_buf_finish(pq_buf *b, char **out, size_t *len, const char *what)
{
	*out = NULL;
	if (!b->err && !b->p && grow(b, 0))
		b->p[0] = '\0';
	if (b->err) {
		int err = b->err;
		free(b->p);
		*b = (pq_buf){.max = b->max};
		return pq_err_wrap(err, "%s", what);
	}
	*out = b->p;
	if (len)
		*len = b->len;
	*b = (pq_buf){.max = b->max};
	return PQ_OK;
}

void pq_buf_free(pq_buf *b)
{
	if (b->fixed) {
		b->len = 0;
		b->cut = false;
		b->p[0] = '\0';
		return;
	}
	free(b->p);
	*b = (pq_buf){.max = b->max};
}
