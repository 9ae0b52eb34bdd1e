#ifndef ADAPTER_NATIVE_GEMM_H
#define ADAPTER_NATIVE_GEMM_H

#include <node_api.h>
#include <stdbool.h>
#include <stdint.h>

/* Who threads a large product: our pool, each thread running single-threaded BLAS on a block of C (the default:
 * one threading system for every kernel), or the BLAS library's own threads. */
typedef enum { GEMM_THREADS_POOL = 0, GEMM_THREADS_BLAS = 1 } GemmThreading;
void gemm_set_threading(GemmThreading mode);
GemmThreading gemm_get_threading(void);

/* C = alpha op(A) op(B) + beta C, row-major, k > 0; threaded per gemm_set_threading; one row uses gemv. */
void gemm_product(bool ta, bool tb, int64_t m, int64_t n, int64_t k, float alpha, const float *a, int64_t lda,
                  const float *b, int64_t ldb, float beta, float *c, int64_t ldc);

napi_value Sgemm(napi_env env, napi_callback_info info);
napi_value SgemmStridedBatched(napi_env env, napi_callback_info info);

#endif
