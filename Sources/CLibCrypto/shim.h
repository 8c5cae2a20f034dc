#ifndef PLATFORM_LEDGER_CLIBCRYPTO_SHIM_H
#define PLATFORM_LEDGER_CLIBCRYPTO_SHIM_H
/* SHA256_Init/Update/Final are deprecated in OpenSSL 3 in favour of EVP, whose per-call context
 * and provider lookups are what the append path cannot afford: the low-level state is a plain
 * 112-byte struct, copied by value to resume a hash (the envelope head's state) at no cost. */
#define OPENSSL_SUPPRESS_DEPRECATED 1
#include <openssl/evp.h>
#include <openssl/sha.h>

static inline void ledger_sha256_init(SHA256_CTX *c) { SHA256_Init(c); }
static inline void ledger_sha256_update(SHA256_CTX *c, const void *bytes, size_t count) { SHA256_Update(c, bytes, count); }
static inline void ledger_sha256_final(SHA256_CTX *c, unsigned char *out) { SHA256_Final(out, c); }
static inline void ledger_sha1(const void *bytes, size_t count, unsigned char *out) { SHA1(bytes, count, out); }
#endif
