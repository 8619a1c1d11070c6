#pragma once
#include <cblas.h>

// Exported by OpenBLAS but not declared in cblas.h: stops the library's worker threads
// (they are recreated by the next threaded call).
int blas_thread_shutdown_(void);
