#ifndef PLATFORM_LEDGER_CLIBCRYPTO_SHIM_H
#define PLATFORM_LEDGER_CLIBCRYPTO_SHIM_H
#include <openssl/evp.h>
#endif
