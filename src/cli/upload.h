/* upload.h: the resumable upload of a file through the server's uploads (docs/api.md 7.2-7.4),
 * shared by `pqota release upload` and `pqota bundle upload`: the file is hashed, an upload
 * started (or an earlier one continued) and sent in pieces (PUT /api/v1/uploads/{id}?offset=N)
 * that survive a dropped connection: after a failed piece the client waits, asks the server
 * where the upload stands (GET /api/v1/uploads/{id}) and goes on from there. */
#ifndef PQOTA_CLI_UPLOAD_H
#define PQOTA_CLI_UPLOAD_H

#include <stddef.h>

#include "cli/api.h"

#define CLI_PIECE_DEFAULT   (8L * 1024 * 1024) /* limits.max_body_bytes' default */
#define CLI_PIECE_MIN       (64L * 1024)
#define CLI_PIECE_MAX       (64L << 20)
#define CLI_RETRIES_DEFAULT 10
#define CLI_RETRIES_MAX     1000

/* The usage lines of the options every uploading command takes. */
#define CLI_UPLOAD_USAGE                                                                           \
	"  --piece-size BYTES   bytes per piece (default 8 MiB, the server's\n"                    \
	"                       limits.max_body_bytes; halved when the server refuses)\n"          \
	"  --retries N          failed pieces in a row before giving up (default 10)\n"            \
	"  --upload-id ID       continue an upload an earlier run left (FILE's)\n"

/* Uploads file (or continues upload resume_id, which must be of file's size) in pieces of
 * piece bytes (halved down to CLI_PIECE_MIN when the server answers 413), giving up after
 * retries failed pieces in a row (a dropped connection, 429, 5xx: then the upload id is
 * printed for --upload-id). The upload's id into id[cap]. CLI_EXIT_OK, or the exit code of
 * the failure (printed; a resume_id that is no id is a usage error). Progress bars on a
 * terminal. */
int cli_upload(cli_conn *c, const char *file, const char *resume_id, long piece, long retries,
               char *id, size_t cap);

#endif
