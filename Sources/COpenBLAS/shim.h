#pragma once
// OpenBLAS (Debian: libopenblas0, the 32-bit-integer build libopenblas-dev installs) is
// not linked: Training's `OpenBLASLibrary` opens it with dlopen the first time a command
// multiplies matrices. Loading the library starts its thread pool, whose threads spin for a
// while; every command that does no linear algebra (prepare, merge, inspect, ...) would
// otherwise pay for that at start. These are the entry points used, as the library exports
// them (the CBLAS ABI: enumerations are C ints, `blasint` is int).

enum {
  DS2_CBLAS_ROW_MAJOR = 101,  // CblasRowMajor
  DS2_CBLAS_NO_TRANS = 111,  // CblasNoTrans
  DS2_CBLAS_TRANS = 112  // CblasTrans
};

typedef void (*ds2_cblas_sgemm)(
    int order, int transposeA, int transposeB, int m, int n, int k, float alpha, const float *a, int lda,
    const float *b, int ldb, float beta, float *c, int ldc);
typedef void (*ds2_cblas_dgemm)(
    int order, int transposeA, int transposeB, int m, int n, int k, double alpha, const double *a, int lda,
    const double *b, int ldb, double beta, double *c, int ldc);
typedef char *(*ds2_openblas_get_string)(void);  // openblas_get_corename, openblas_get_config
typedef int (*ds2_openblas_get_num_threads)(void);
typedef void (*ds2_openblas_set_num_threads)(int threads);
// blas_thread_shutdown_: exported but not declared in cblas.h; stops the worker threads
// (the next threaded call recreates them).
typedef int (*ds2_blas_thread_shutdown)(void);
