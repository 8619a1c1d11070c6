#pragma once
// mallopt(3) from glibc's <malloc.h>, which Swift's Glibc module does not export.
// Elsewhere than Linux (glibc) the wrappers do nothing.
#if defined(__linux__)
#include <malloc.h>

/// mallopt(3); returns 1 on success.
static inline int ds2_mallopt(int parameter, int value) { return mallopt(parameter, value); }
static inline int ds2_m_mmap_threshold(void) { return M_MMAP_THRESHOLD; }
static inline int ds2_m_trim_threshold(void) { return M_TRIM_THRESHOLD; }
#else
static inline int ds2_mallopt(int parameter, int value) { (void)parameter; (void)value; return 0; }
static inline int ds2_m_mmap_threshold(void) { return 0; }
static inline int ds2_m_trim_threshold(void) { return 0; }
#endif
