#ifndef PLATFORM_LEDGER_CLZ4_SHIM_H
#define PLATFORM_LEDGER_CLZ4_SHIM_H
#include <lz4.h>
#endif
