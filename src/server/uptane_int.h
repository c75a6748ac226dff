/* uptane_int.h: what the two files of the server's Uptane repositories share:
 *   uptane_srv.c   the repositories over the store, the image repository, the /uptane/ routes
 *   uptane_meta.c  the director's targets and the body of ota_campaign_metadata
 * Cross-file names are usrv__name. */
#ifndef PQOTA_SERVER_UPTANE_INT_H
#define PQOTA_SERVER_UPTANE_INT_H

#include <pthread.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>

#include "server/uptane_srv.h"
#include "uptane/repo.h"

#define USRV_REPO_IMAGE    "image"
#define USRV_REPO_DIRECTOR "director"

struct usrv {
	pthread_mutex_t lock; /* the up_repo and the fields below */
	up_repo *repo;
	up_repo_opts opts;
	char *dir;            /* the PKI directory holding the role keys */
	char published[65];   /* digest of the target list last seen published */
	int64_t ts_signed_ms; /* when this instance last signed or saw a timestamp */
	int64_t next_check_ms;
	bool director_root_ok; /* the director root is in the store */
};

/* The image target name of a release's full package, "<release id>.full.swpg", or of its
 * delta from base_version (not NULL), "<release id>.delta.<base version>.swpg": a release
 * has one delta per base version. */
#define USRV_NAME_MAX 80
static inline void usrv__target_name(char out[USRV_NAME_MAX], const char *release_id,
                                     const char *base_version)
{
	if (base_version)
		snprintf(out, USRV_NAME_MAX, "%.40s.delta.%.24s.swpg", release_id, base_version);
	else
		snprintf(out, USRV_NAME_MAX, "%.40s.full.swpg", release_id);
}

/* The image repository's name of bundle bundle_id's full_package.bin (docs/api.md 18.5). */
static inline void usrv__bundle_name(char out[USRV_NAME_MAX], const char *bundle_id)
{
	snprintf(out, USRV_NAME_MAX, "%.40s.bundle.swpg", bundle_id);
}

/* The expiry (seconds) of the newest stored metadata of a role of repo (USRV_REPO_*) for key
 * ("" for the image repository, the VIN for the director); 0 when there is none. */
int usrv__stored_expiry(store *db, const char *repo, const char *key, const char *role,
                        int64_t *exp_s) PQ_MUST_CHECK;

/* Reopens the repository at the store's versions (after a start or a lost race). Under
 * u->lock. */
int usrv__sync_repo(usrv *u, store *db) PQ_MUST_CHECK;

/* Publishes the image repository when the releases changed (force: now, not at most every
 * 2 s). Under u->lock. */
int usrv__image_refresh_locked(usrv *u, store *db, int64_t now_ms, bool force) PQ_MUST_CHECK;

/* Stores a signed metadata set of repo for vin in one transaction (the director root under
 * vin ""). PQ_ERR_EXISTS when another instance stored one of those versions first. */
int usrv__store_set(store *db, const char *repo, const char *vin, const up_meta_set *m,
                    int64_t now_ms) PQ_MUST_CHECK;

#endif
