/* fleet.h: registering vehicles through the API, one (`pqota vehicle register`) or many
 * (`pqota vehicle import`, fleet_import.c). */
#ifndef PQOTA_CLI_FLEET_H
#define PQOTA_CLI_FLEET_H

#include <stdbool.h>

#include <jansson.h>

#include "cli/api.h"
#include "core/err.h"

#define FLEET_IMPORT_MAX 100000 /* vehicles of one import (CSV rows, VINs) */

typedef struct {
	const char *pki; /* DIR: DIR/vehicles/VIN/{client.crt,kem-x25519.pub,kem-ml-kem-768.pub} */
	const char *model; /* NULL: none */
	bool no_default_ecus;
} fleet_reg;

/* The credentials of one vehicle: files[0..2] the certificate and the X25519 and ML-KEM-768
 * public keys (PEM), or NULL for those of reg->pki. */
typedef struct {
	const char *files[3];
	const char *model; /* overrides reg->model when not NULL */
} fleet_src;

/* The POST /api/v1/vehicles body of vin (files of at most 16 KiB each): *out (caller's),
 * or an error with the file named. */
int fleet_reg_body(const fleet_reg *reg, const char *vin, const fleet_src *src,
                   json_t **out) PQ_MUST_CHECK;

/* Registers many vehicles: the rows of csv, else the VINs given, else every directory of
 * reg->pki/vehicles. Prints one line per vehicle (or, with --json, one summary object);
 * the exit code: 0 every vehicle registered or there already, 1 some failed, 2 an error
 * before any (the CSV, the directory). */
int fleet_import(cli_conn *c, const fleet_reg *reg, const char *csv, char **vins, int nvins);

#endif
