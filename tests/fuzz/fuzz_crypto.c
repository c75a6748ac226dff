/* fuzz_crypto.c: libFuzzer harness for the crypto decoders that take untrusted bytes:
 * hybrid signatures, wrapped keys, streaming-AEAD headers and chunks, PEM keys, hex.
 *
 * The first input byte selects the decoder; the rest is its input. Keys come from fixed
 * seeds so every corpus file replays the same path. Built with clang -fsanitize=fuzzer by
 * `make fuzz`, and with replay.c (a plain main) into the ctest suite, which replays the
 * corpus in tests/fuzz/corpus/crypto. */
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "core/text.h"
#include "crypto/aead.h"
#include "crypto/hash.h"
#include "crypto/kem.h"
#include "crypto/key.h"
#include "crypto/sig.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static pq_key *ed, *dsa, *x25519, *mlkem;

static void init_keys(void)
{
	uint8_t seed[64];
	if (ed)
		return;
	memset(seed, 0x42, sizeof(seed));
	if (pq_key_from_seed(PQ_ALG_ED25519, seed, 32, &ed) != PQ_OK ||
	    pq_key_from_seed(PQ_ALG_MLDSA44, seed, 32, &dsa) != PQ_OK ||
	    pq_key_from_seed(PQ_ALG_X25519, seed, 32, &x25519) != PQ_OK ||
	    pq_key_from_seed(PQ_ALG_MLKEM768, seed, 64, &mlkem) != PQ_OK)
		abort();
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	if (size < 1)
		return 0;
	init_keys();
	uint8_t sel = data[0] % 6;
	data++;
	size--;
	switch (sel) {
	case 0: { /* hybrid signature over a fixed message */
		pq_hybrid_key hk = {.classical = ed, .pq = dsa};
		if (pq_hybrid_verify(&hk, (const uint8_t *)"ctx", 3, (const uint8_t *)"msg", 3,
		                     data, size) == PQ_OK)
			abort(); /* forging is not expected from a fuzzer */
		break;
	}
	case 1: { /* wrapped content key */
		pq_wrap_recipient r = {.x25519 = x25519, .mlkem = mlkem};
		uint8_t key[PQ_WRAP_KEY_MAX];
		size_t kl = sizeof(key);
		/* invariant: an accepted blob yields a key of its declared, bounded length */
		if (pq_unwrap(&r, (const uint8_t *)"VIN", 3, data, size, key, &kl) == PQ_OK &&
		    (kl == 0 || kl > PQ_WRAP_KEY_MAX || size != PQ_WRAP_OVERHEAD + kl))
			abort();
		break;
	}
	case 2: { /* streaming AEAD: header, then chunks of whatever lengths follow */
		uint8_t key[32] = {1};
		pq_aead *a = NULL;
		if (size < PQ_AEAD_HDR_LEN || pq_aead_open_init(key, data, &a) != PQ_OK)
			break;
		const uint8_t *p = data + PQ_AEAD_HDR_LEN;
		size_t left = size - PQ_AEAD_HDR_LEN;
		const pq_aead_info *info = pq_aead_get_info(a);
		for (uint64_t i = 0; i < info->chunks && left > 0 && i < 8; i++) {
			size_t n = pq_aead_chunk_plain_len(a, i) + PQ_AEAD_TAG_LEN;
			if (n > left)
				n = left;
			uint8_t *out = malloc(n ? n : 1);
			if (!out)
				break;
			/* invariant: only a chunk of exactly its expected size can open */
			if (pq_aead_open_chunk(a, i, p, n, out) == PQ_OK &&
			    n != pq_aead_chunk_plain_len(a, i) + PQ_AEAD_TAG_LEN)
				abort();
			free(out);
			p += n;
			left -= n;
		}
		pq_aead_free(a);
		break;
	}
	case 3: { /* PEM key */
		pq_key *k = NULL;
		if (pq_key_parse_pem((const char *)data, size, &k) == PQ_OK)
			pq_key_free(k);
		break;
	}
	case 4: { /* hex */
		char *s = malloc(size + 1);
		uint8_t bin[256];
		size_t n;
		if (!s)
			break;
		memcpy(s, data, size);
		s[size] = '\0';
		if (pq_hex_decode(s, bin, sizeof(bin), &n) == PQ_OK && 2 * n != strlen(s))
			abort();
		free(s);
		break;
	}
	case 5: { /* raw ML-KEM / ML-DSA public keys of any length */
		pq_key *k = NULL;
		if (pq_key_from_public(PQ_ALG_MLKEM768, data, size, &k) == PQ_OK)
			pq_key_free(k);
		k = NULL;
		if (pq_key_from_public(PQ_ALG_MLDSA65, data, size, &k) == PQ_OK)
			pq_key_free(k);
		break;
	}
	}
	return 0;
}
