/* campaign.h: shared by `pqota campaign` (cmd_campaign.c) and its watch
 * (campaign_watch.c). */
#ifndef PQOTA_CLI_CAMPAIGN_H
#define PQOTA_CLI_CAMPAIGN_H

#include <stddef.h>

#include <jansson.h>

#include "cli/api.h"

/* The non-zero counts of a counts object, "completed 3, failed 1" (or "no deployments"). */
void campaign_counts_text(const json_t *counts, char *out, size_t cap);
/* A campaign object as text on stdout. */
void campaign_print(const json_t *cp);
/* Follows campaign id until it ends (or timeout_s, 0: none): 0 completed, 1 cancelled or
 * the timeout, 2 an error. */
int campaign_watch(cli_conn *c, const char *id, long timeout_s);

#endif
