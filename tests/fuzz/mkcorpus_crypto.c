/* mkcorpus_crypto.c: writes the seed corpus for fuzz_crypto.c (structurally valid inputs
 * for each decoder, none of them a valid signature): mkcorpus_crypto DIR */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/fileio.h"
#include "crypto/aead.h"
#include "crypto/kem.h"
#include "crypto/key.h"
#include "crypto/sig.h"

static void put(const char *dir, const char *name, uint8_t sel, const void *data, size_t len)
{
	char p[1024];
	uint8_t *buf = malloc(len + 1);
	if (!buf)
		exit(1);
	buf[0] = sel;
	memcpy(buf + 1, data, len);
	snprintf(p, sizeof(p), "%s/%s", dir, name);
	if (pq_file_write_atomic(p, buf, len + 1, 0644, true) != PQ_OK) {
		fprintf(stderr, "mkcorpus: %s: %s\n", p, pq_err_detail());
		exit(1);
	}
	free(buf);
}

int main(int argc, char **argv)
{
	uint8_t seed[64], sig[PQ_HYBRID_SIG_MAX], blob[PQ_WRAP_MAX], ek[1184];
	size_t sl = sizeof(sig), bl = sizeof(blob), el = sizeof(ek);
	pq_key *ed = NULL, *dsa = NULL, *x = NULL, *kem = NULL;
	if (argc != 2) {
		fprintf(stderr, "usage: mkcorpus_crypto DIR\n");
		return 64;
	}
	memset(seed, 0x42, sizeof(seed)); /* the harness's keys */
	if (pq_key_from_seed(PQ_ALG_ED25519, seed, 32, &ed) ||
	    pq_key_from_seed(PQ_ALG_MLDSA44, seed, 32, &dsa) ||
	    pq_key_from_seed(PQ_ALG_X25519, seed, 32, &x) ||
	    pq_key_from_seed(PQ_ALG_MLKEM768, seed, 64, &kem))
		return 1;
	pq_hybrid_key hk = {.classical = ed, .pq = dsa};
	/* signed over another message: well-formed, but must not verify */
	if (pq_hybrid_sign(&hk, (const uint8_t *)"ctx", 3, (const uint8_t *)"other", 5, sig, &sl))
		return 1;
	put(argv[1], "hybrid-sig", 0, sig, sl);
	put(argv[1], "hybrid-sig-short", 0, sig, 8);
	pq_wrap_recipient r = {.x25519 = x, .mlkem = kem};
	uint8_t ck[32] = {9};
	if (pq_wrap(&r, (const uint8_t *)"VIN", 3, ck, 32, blob, &bl))
		return 1;
	put(argv[1], "wrap", 1, blob, bl);
	/* a 3-chunk AEAD stream under the harness's key */
	uint8_t key[32] = {1}, hdr[PQ_AEAD_HDR_LEN], plain[100] = {0},
	        stream[PQ_AEAD_HDR_LEN + 100 + 48];
	pq_aead *a = NULL;
	if (pq_aead_seal_init(key, sizeof(plain), 40, hdr, &a))
		return 1;
	memcpy(stream, hdr, sizeof(hdr));
	size_t off = sizeof(hdr);
	for (uint64_t i = 0; i < 3; i++) {
		size_t n = pq_aead_chunk_plain_len(a, i);
		if (pq_aead_seal_chunk(a, i, plain + i * 40, n, stream + off))
			return 1;
		off += n + PQ_AEAD_TAG_LEN;
	}
	pq_aead_free(a);
	put(argv[1], "aead-stream", 2, stream, off);
	char *pem = NULL;
	if (pq_key_public_pem(dsa, &pem))
		return 1;
	put(argv[1], "pem-mldsa", 3, pem, strlen(pem));
	free(pem);
	put(argv[1], "hex", 4, "00ff10Ab", 8);
	if (pq_key_public_raw(kem, ek, &el))
		return 1;
	put(argv[1], "mlkem-ek", 5, ek, el);
	pq_key_free(ed);
	pq_key_free(dsa);
	pq_key_free(x);
	pq_key_free(kem);
	printf("corpus written to %s\n", argv[1]);
	return 0;
}
