#ifndef PLATFORM_LEDGER_CLZ4_SHIM_H
#define PLATFORM_LEDGER_CLZ4_SHIM_H
#include <lz4.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

/* Asks the CPU to bring the cache line at `p` in (a hint: never faults, never required). The
 * sequencer prefetches the index slots of requests a few ahead of the one it checks. */
static inline void ledger_prefetch(const void *p) { __builtin_prefetch(p, 0, 3); }

/* CRC-32C (Castagnoli) with the CPU's CRC32 instruction (SSE 4.2), for the record batches that
 * are sealed and checked beside their LZ4 payloads. `ledger_crc32c_hardware()` says whether the
 * CPU has it; without it the Swift side uses its slicing-by-8 tables. Both give the same values
 * (tested on random buffers). `crc` continues a previous value; 0 starts. */
static inline int ledger_crc32c_hardware(void) {
#if defined(__x86_64__)
    __builtin_cpu_init();
    return __builtin_cpu_supports("sse4.2");
#else
    return 0;
#endif
}

#if defined(__x86_64__)
__attribute__((target("sse4.2")))
static inline uint32_t ledger_crc32c(uint32_t crc, const unsigned char *p, size_t n) {
    uint64_t c = (uint32_t)~crc;
    while (n > 0 && ((uintptr_t)p & 7) != 0) {
        c = __builtin_ia32_crc32qi((uint32_t)c, *p++);
        n--;
    }
    while (n >= 8) {
        uint64_t word;
        memcpy(&word, p, 8);
        c = __builtin_ia32_crc32di(c, word);
        p += 8;
        n -= 8;
    }
    while (n > 0) {
        c = __builtin_ia32_crc32qi((uint32_t)c, *p++);
        n--;
    }
    return ~(uint32_t)c;
}
#else
static inline uint32_t ledger_crc32c(uint32_t crc, const unsigned char *p, size_t n) { (void)p; (void)n; return crc; }
#endif
#endif
