#pragma once
// The compiler's prefetch builtin, which Swift cannot call: a hint that the cache line
// holding `address` will be read soon (kept in every cache level). It never faults, even
// on an address that is not mapped.
static inline void ds2_prefetch_for_reading(const void *address) { __builtin_prefetch(address, 0, 3); }
