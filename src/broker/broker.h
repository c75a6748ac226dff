/* broker.h: configuration for Debian's mosquitto 2.0 as a pqota deployment's MQTT broker.
 *
 * pq_broker_config_write() checks a PKI (pq_pki_init's layout) and writes four files into an
 * output directory (docs/broker.md):
 *   mosquitto.conf  one TLS 1.3 listener with mutual TLS: the client certificate's CN is the
 *                   MQTT username (a VIN, or the server's CN); no anonymous access
 *   mosquitto.acl   a vehicle may read and write oem/<its VIN>/# and read oem/broadcast/#;
 *                   the server's identity may read and write oem/#; nothing else
 *   openssl.cnf     the profile's TLS key-exchange group (mosquitto has no option for it),
 *                   applied through OPENSSL_CONF
 *   run-broker.sh   execs mosquitto with LD_LIBRARY_PATH (pqota's OpenSSL) and OPENSSL_CONF
 * The library never prints: what it found (the PKI's profile, the server certificate's CN)
 * comes back in pq_broker_result for the caller to report. */
#ifndef PQOTA_BROKER_BROKER_H
#define PQOTA_BROKER_BROKER_H

#include <limits.h>
#include <stdbool.h>
#include <stdint.h>
#include <sys/types.h>

#include "core/err.h"
#include "crypto/profile.h"

#define PQ_BROKER_DEFAULT_HOST "127.0.0.1"
#define PQ_BROKER_DEFAULT_PORT 8883

/* The files written into the output directory, in this order. */
#define PQ_BROKER_CONF     "mosquitto.conf"
#define PQ_BROKER_ACL      "mosquitto.acl"
#define PQ_BROKER_SSL_CONF "openssl.cnf"
#define PQ_BROKER_RUN      "run-broker.sh"
#define PQ_BROKER_LOG      "mosquitto.log" /* with PQ_BROKER_LOG_FILE */
#define PQ_BROKER_DATA     "data"          /* persistence directory, with persistence */
#define PQ_BROKER_NFILES   4

typedef enum {
	PQ_BROKER_LOG_STDERR = 0, /* log_dest stderr (systemd, a terminal, a test's capture) */
	PQ_BROKER_LOG_FILE = 1,   /* log_dest file OUT/mosquitto.log */
} pq_broker_log_dest;

typedef struct {
	const char *pki_dir;       /* required: holds ca/ca.crt, broker/broker.{crt,key} */
	const char *out_dir;       /* required: created (mode 0755) when missing */
	const char *listen_host;   /* bind address (IP or host name); NULL: 127.0.0.1 */
	int port;                  /* 1..65535; 0: 8883 */
	const pq_profile *profile; /* TLS group; NULL: the PKI's (pki.json), else profile 2 */
	const char *server_cn;     /* the server's MQTT identity; NULL: "pqota-server" */
	const char *user;          /* write "user NAME" (mosquitto drops to it when started as
	                            * root); NULL: no line, mosquitto's default "mosquitto" */
	pq_broker_log_dest log_dest;
	bool persistence;           /* persistence true, in OUT/data/ (created, mode 0700) */
	const char *openssl_libdir; /* LD_LIBRARY_PATH for run-broker.sh; NULL: the directory
	                             * of the libcrypto this process runs on, "" when that is
	                             * the system's; "": none */
	bool force;                 /* replace existing files (otherwise PQ_ERR_EXISTS) */
	uint64_t memory_limit;      /* mosquitto's memory_limit, bytes; 0: PQ_BROKER_MEMORY */
	/* Topics under oem/<VIN>/ a vehicle may publish on besides the protocol's (each at
	 * most PQ_BROKER_TOPIC_MAX of [A-Za-z0-9_/#-], '#' only last); NULL-terminated or
	 * NULL. Each one adds up to PQ_BROKER_PACKET_MAX of retained memory per vehicle. */
	const char *const *vehicle_topics;
} pq_broker_opts;

/* The limits the configuration sets (docs/broker.md "Limits"), from the protocol's largest
 * messages: a VCI report of 1 MiB (the server's MSG_VCI_MAX_BYTES); everything else is at
 * most 256 KiB. */
#define PQ_BROKER_PACKET_MAX   (1024u * 1024u + 64u * 1024u) /* max_packet_size */
#define PQ_BROKER_INFLIGHT     20                            /* max_inflight_messages */
#define PQ_BROKER_INFLIGHT_MAX (4u * 1024u * 1024u)          /* max_inflight_bytes */
#define PQ_BROKER_QUEUED       10000                         /* max_queued_messages */
#define PQ_BROKER_QUEUED_MAX   (64u * 1024u * 1024u)         /* max_queued_bytes */
#define PQ_BROKER_MEMORY       (2048ull * 1024u * 1024u)     /* memory_limit default */
#define PQ_BROKER_TOPIC_MAX    64
#define PQ_BROKER_TOPICS_MAX   16 /* extra vehicle topics */

typedef struct {
	char out_dir[PATH_MAX];                      /* absolute */
	char pki_dir[PATH_MAX];                      /* absolute */
	char files[PQ_BROKER_NFILES][PATH_MAX + 32]; /* absolute paths of the files written */
	const pq_profile *profile;                   /* the profile whose group openssl.cnf sets */
	const pq_profile *pki_profile;               /* the PKI's (pki.json); NULL when unknown */
	char server_cn[65];                          /* the identity granted oem/# */
	char server_cert_cn[128];       /* CN of PKI/server-client/client.crt; "" if absent */
	char openssl_libdir[PATH_MAX];  /* what run-broker.sh puts in LD_LIBRARY_PATH */
	char broker_key[PATH_MAX + 32]; /* PKI/broker/broker.key */
	uid_t broker_key_uid;           /* its owner and permission bits, so the caller can */
	mode_t broker_key_mode;         /* say whether mosquitto's user can read it */
	bool broker_key_checked;        /* the key was readable here and matches the cert */
} pq_broker_result;

/* Checks the PKI and the options, then writes the four files atomically (each one renamed
 * into place; run-broker.sh mode 0755, the others 0644). Refuses, before writing anything,
 * when one of them exists and !force. Errors: PQ_ERR_NOTFOUND (a PKI file is missing),
 * PQ_ERR_VERIFY (the broker certificate is not issued by the CA, or its key does not match),
 * PQ_ERR_INVAL (a bad host, CN, user or path), PQ_ERR_UNSUPPORTED (the loaded OpenSSL does
 * not know the profile's group), PQ_ERR_EXISTS. */
int pq_broker_config_write(const pq_broker_opts *opts, pq_broker_result *res) PQ_MUST_CHECK;

/* The directory of the libcrypto this process runs on ("" when it is a system directory,
 * where mosquitto finds it without LD_LIBRARY_PATH). */
int pq_broker_openssl_libdir(char *buf, size_t len) PQ_MUST_CHECK;

/* Checks a name the ACL grants oem/# to: 1..64 characters of [A-Za-z0-9_.@-], and not a
 * possible VIN (pq_vin_check), so no vehicle certificate can carry it. */
int pq_broker_server_cn_check(const char *cn) PQ_MUST_CHECK;

/* Checks an extra vehicle topic: 1..PQ_BROKER_TOPIC_MAX of [A-Za-z0-9_/#-], no empty level,
 * '#' only as the whole last level. */
int pq_broker_vehicle_topic_check(const char *topic) PQ_MUST_CHECK;

#endif
