#pragma once
// glibc extensions that Swift's Glibc module does not export (they are declared only
// under _GNU_SOURCE, or in <malloc.h>). Wrapped so that Swift calls them through their C
// declarations. Elsewhere than Linux (glibc) the wrappers do nothing.
#if defined(__linux__)
#include <malloc.h>
extern int sync_file_range(int fd, long long offset, long long nbytes, unsigned int flags);

/// mallopt(3); returns 1 on success.
static inline int ds2_mallopt(int parameter, int value) { return mallopt(parameter, value); }
static inline int ds2_m_mmap_threshold(void) { return M_MMAP_THRESHOLD; }
static inline int ds2_m_trim_threshold(void) { return M_TRIM_THRESHOLD; }

/// Starts write-back of a file's dirty pages without waiting:
/// sync_file_range(fd, 0, 0, SYNC_FILE_RANGE_WRITE). Returns 0 or -1 (errno set).
static inline int ds2_start_writeback(int fd) { return sync_file_range(fd, 0, 0, 2 /* SYNC_FILE_RANGE_WRITE */); }
#else
static inline int ds2_mallopt(int parameter, int value) { (void)parameter; (void)value; return 0; }
static inline int ds2_m_mmap_threshold(void) { return 0; }
static inline int ds2_m_trim_threshold(void) { return 0; }
static inline int ds2_start_writeback(int fd) { (void)fd; return 0; }
#endif
