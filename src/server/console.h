/* console.h: the parsers of browser input that the console's routes use (session.c,
 * events.c), exposed for the fuzz harness tests/fuzz/fuzz_console.c. */
#ifndef PQOTA_SERVER_CONSOLE_H
#define PQOTA_SERVER_CONSOLE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* The value of cookie `name` in a Cookie header ("a=1; name=v; b=2") into out[cap]; false
 * when the header is NULL, has no such cookie, or its value needs more than cap - 1
 * bytes. */
bool srv_cookie_find(const char *header, const char *name, char *out, size_t cap);

/* A Last-Event-ID "<epoch>-<seq>" (decimal, epoch > 0) into its two numbers; false for
 * anything else. */
bool srv_event_id_parse(const char *h, int64_t *epoch, uint64_t *seq);

#endif
