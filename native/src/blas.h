/* The one place that knows which BLAS the addon links: OpenBLAS on Linux, Accelerate on macOS (binding.gyp). */
#ifndef ADAPTER_NATIVE_BLAS_H
#define ADAPTER_NATIVE_BLAS_H

#if defined(ADAPTER_BLAS_ACCELERATE)
#include <Accelerate/Accelerate.h>
#elif defined(ADAPTER_BLAS_OPENBLAS)
#include <cblas.h>
#else
#error "binding.gyp defines no BLAS for this platform"
#endif

/* Threads the BLAS may use for one call. Accelerate chooses for itself, so there this only records the request. */
void blas_set_threads(int threads);
int blas_get_threads(void);
/* A short human-readable description, e.g. "OpenBLAS 0.3.21 DYNAMIC_ARCH NO_AFFINITY Zen MAX_THREADS=64". */
const char *blas_describe(void);

#endif
