#pragma once
// sync_file_range(2), which Swift's Glibc module does not export (glibc declares it only
// under _GNU_SOURCE). Elsewhere than Linux the wrapper does nothing.
#if defined(__linux__)
extern int sync_file_range(int fd, long long offset, long long nbytes, unsigned int flags);

/// Starts write-back of a file's dirty pages without waiting:
/// sync_file_range(fd, 0, 0, SYNC_FILE_RANGE_WRITE). Returns 0 or -1 (errno set).
static inline int ds2_start_writeback(int fd) { return sync_file_range(fd, 0, 0, 2 /* SYNC_FILE_RANGE_WRITE */); }
#else
static inline int ds2_start_writeback(int fd) { (void)fd; return 0; }
#endif
