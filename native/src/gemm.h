#ifndef ADAPTER_NATIVE_GEMM_H
#define ADAPTER_NATIVE_GEMM_H

#include <node_api.h>
#include <stdbool.h>
#include <stdint.h>

/* C = alpha op(A) op(B) + beta C, row-major, k > 0. A large product is cut into blocks whose size depends on the
 * problem alone, each one single-threaded BLAS call run on the pool, so the result does not depend on the thread
 * count; one row uses gemv. BLAS's own threads must be held at one (addon.c does). */
void gemm_product(bool ta, bool tb, int64_t m, int64_t n, int64_t k, float alpha, const float *a, int64_t lda,
                  const float *b, int64_t ldb, float beta, float *c, int64_t ldc);

napi_value Sgemm(napi_env env, napi_callback_info info);
napi_value SgemmStridedBatched(napi_env env, napi_callback_info info);

#endif
