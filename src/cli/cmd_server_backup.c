/* cmd_server_backup.c: `pqota server backup DIR` and `pqota server restore DIR [--force]`
 * (src/server/backup.h does the work; the configuration comes from cmd_server.c). */
#include <stdio.h>
#include <string.h>

#include "cli/cli.h"
#include "cli/server_backup.h"

void cmd_server_backup_usage(FILE *f)
{
	fputs("usage: pqota server [--config FILE] [--set KEY=VALUE]... backup DIR\n"
	      "       pqota server [--config FILE] [--set KEY=VALUE]... restore DIR [--force]\n"
	      "\n"
	      "backup copies, while the server runs, a consistent snapshot of the store (SQLite:\n"
	      "online backup API; PostgreSQL: pg_dump -Fc), then the data directory's packages,\n"
	      "images, deltas and download-token key, the PKI (tls.pki) and the key files set\n"
	      "one by one (tls.*, mqtt.*, uptane.keys, downloads.token_key_file) into DIR (new\n"
	      "or empty, made 0700), with DIR/manifest.json listing every file's size and\n"
	      "SHA-256. Uploads in progress are not included.\n"
	      "\n"
	      "restore checks every file of DIR against the manifest, then puts the store, the\n"
	      "files and the keys where the configuration says (owner-only modes). Stop the\n"
	      "server first. It refuses a data directory, PKI directory or key file that is not\n"
	      "empty and a store that holds data, unless --force (files of the same name are\n"
	      "replaced, the store is emptied first). PostgreSQL: the database and its role\n"
	      "must exist (docs/operations.md, PostgreSQL set-up).\n"
	      "\n"
	      "Progress goes to stderr. Exit status 0 on success, 2 on failure, 64 on usage.\n",
	      f);
}

static void progress(void *user, const char *line)
{
	fprintf(stderr, "pqota: %s: %s\n", (const char *)user, line);
}

int cmd_server_backup(const char *sub, bk_opts *o, char **pos, int npos, bool force)
{
	bool restore = strcmp(sub, "restore") == 0;
	if (npos != 1 || !pos[0][0])
		return cli_usage_error("server", "%s takes one directory", sub);
	if (force && !restore)
		return cli_usage_error("server", "--force is for restore only");
	o->progress = progress;
	o->progress_user = (void *)sub;
	int rc = restore ? bk_restore(o, pos[0], force) : bk_backup(o, pos[0]);
	return rc == PQ_OK ? CLI_EXIT_OK : cli_error(rc, "%s", sub);
}
