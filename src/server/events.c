/* events.c: the live event stream behind GET /api/v1/events (Server-Sent Events). */
#include <jansson.h>

#include "server/server.h"

void srv_event(srv *s, const char *type, json_t *data)
{
	(void)s;
	(void)type;
	json_decref(data);
}
