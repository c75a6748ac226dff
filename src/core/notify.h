/* notify.h: the systemd service notification protocol (sd_notify(3)) without libsystemd:
 * datagrams to the AF_UNIX socket named by $NOTIFY_SOCKET (a path, or '@' for Linux's
 * abstract namespace) carrying "READY=1", "STATUS=...", "WATCHDOG=1", "STOPPING=1"; and
 * the watchdog interval the manager expects pings within ($WATCHDOG_USEC, for the process
 * $WATCHDOG_PID names when set). Outside a service manager (no NOTIFY_SOCKET) every call is
 * a no-op, so programs call them unconditionally. `pqota supervise` speaks the same protocol
 * (docs/operations.md "Services"). */
#ifndef PQOTA_CORE_NOTIFY_H
#define PQOTA_CORE_NOTIFY_H

#include <stdint.h>
#include <sys/socket.h>
#include <sys/un.h>

#include "core/err.h"

#define PQ_NOTIFY_MAX 1024 /* longest notification sent */

/* Sends STATE (newline-separated KEY=VALUE assignments, at most PQ_NOTIFY_MAX bytes) to
 * $NOTIFY_SOCKET. PQ_OK when sent or when NOTIFY_SOCKET is unset or empty; PQ_ERR_INVAL
 * for a socket name that is neither a path nor abstract or is too long, PQ_ERR_RANGE for
 * a STATE too long, PQ_ERR_IO when sending failed (the detail names the socket). */
int pq_notify(const char *state) PQ_MUST_CHECK;

/* pq_notify with a printf-formatted STATE. */
int pq_notifyf(const char *fmt, ...) PQ_MUST_CHECK PQ_PRINTF(1, 2);

/* Fills *ADDR and *LEN from a socket name as NOTIFY_SOCKET gives it: "/path", or "@name"
 * for the abstract namespace. PQ_ERR_INVAL for another form or a name too long. */
int pq_notify_sockaddr(const char *name, struct sockaddr_un *addr, socklen_t *len) PQ_MUST_CHECK;

/* The watchdog interval in microseconds: $WATCHDOG_USEC when it is a positive decimal
 * number and $WATCHDOG_PID is unset or this process's id; 0 (no watchdog) otherwise. A
 * supervised program sends "WATCHDOG=1" at least every half of it while it is healthy. */
uint64_t pq_notify_watchdog_usec(void);

#endif
