#ifndef PLATFORM_LEDGER_CLIBCRYPTO_SHIM_H
#define PLATFORM_LEDGER_CLIBCRYPTO_SHIM_H
/* SHA256_Init/Update/Final are deprecated in OpenSSL 3 in favour of EVP, whose per-call context
 * and provider lookups are what the append path cannot afford: the low-level state is a plain
 * 112-byte struct, copied by value to resume a hash (the envelope head's state) at no cost. */
#define OPENSSL_SUPPRESS_DEPRECATED 1
#include <openssl/evp.h>
#include <openssl/sha.h>
#include <string.h>

static inline void ledger_sha256_init(SHA256_CTX *c) { SHA256_Init(c); }
static inline void ledger_sha256_update(SHA256_CTX *c, const void *bytes, size_t count) { SHA256_Update(c, bytes, count); }
static inline void ledger_sha256_final(SHA256_CTX *c, unsigned char *out) { SHA256_Final(out, c); }
/* RFC 9162 Merkle hashes of fixed-size inputs, straight through the compression function: the
 * padding of a 33-byte leaf input (one block) and of a 65-byte node input (two blocks) is fixed,
 * so no update/final bookkeeping is needed. `out` gets the 32-byte digest. */
/* SHA-256 of `count` blocks that already carry their padding: the compression function only. */
static inline void ledger_sha256_padded(const unsigned char *blocks, int count, unsigned char *out) {
    SHA256_CTX c;
    SHA256_Init(&c);
    for (int b = 0; b < count; b++) SHA256_Transform(&c, blocks + 64 * b);
    for (int i = 0; i < 8; i++) {
        out[4 * i] = (unsigned char)(c.h[i] >> 24);
        out[4 * i + 1] = (unsigned char)(c.h[i] >> 16);
        out[4 * i + 2] = (unsigned char)(c.h[i] >> 8);
        out[4 * i + 3] = (unsigned char)c.h[i];
    }
}
static inline void ledger_merkle_leaf(const unsigned char *eventHash, unsigned char *out) {
    unsigned char block[64] = {0};
    block[0] = 0x00;
    memcpy(block + 1, eventHash, 32);
    block[33] = 0x80;
    block[62] = (33 * 8) >> 8;
    block[63] = (33 * 8) & 0xFF;
    ledger_sha256_padded(block, 1, out);
}
static inline void ledger_merkle_node(const unsigned char *left, const unsigned char *right, unsigned char *out) {
    unsigned char block[128] = {0};
    block[0] = 0x01;
    memcpy(block + 1, left, 32);
    memcpy(block + 33, right, 32);
    block[65] = 0x80;
    block[126] = (65 * 8) >> 8;
    block[127] = (65 * 8) & 0xFF;
    ledger_sha256_padded(block, 2, out);
}
static inline void ledger_sha1(const void *bytes, size_t count, unsigned char *out) { SHA1(bytes, count, out); }
#endif
