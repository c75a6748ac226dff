/* server_backup.h: `pqota server backup|restore` (cmd_server_backup.c), called by
 * cmd_server.c with the locations its configuration names. */
#ifndef PQOTA_CLI_SERVER_BACKUP_H
#define PQOTA_CLI_SERVER_BACKUP_H

#include <stdbool.h>
#include <stdio.h>

#include "server/backup.h"

void cmd_server_backup_usage(FILE *f);
/* sub is "backup" or "restore", pos its arguments; o gains the progress printer. */
int cmd_server_backup(const char *sub, bk_opts *o, char **pos, int npos, bool force);

#endif
