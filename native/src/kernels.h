/*
 * The fused transformer kernels (forward and backward), as N-API functions. Each reads and writes Float32Arrays in
 * place (views on the tfjs wasm heap), validates every size against the arrays it was given, and runs over the
 * thread pool (pool.h). The engine-side wrappers and the math they implement: src-main/engine/backends/fused.ts.
 */
#ifndef ADAPTER_NATIVE_KERNELS_H
#define ADAPTER_NATIVE_KERNELS_H

#include <node_api.h>

napi_value RmsNorm(napi_env env, napi_callback_info info);
napi_value RmsNormBackward(napi_env env, napi_callback_info info);
napi_value RmsNormWeightGrad(napi_env env, napi_callback_info info);

napi_value Rope(napi_env env, napi_callback_info info);

napi_value SwiGlu(napi_env env, napi_callback_info info);
napi_value SwiGluBackward(napi_env env, napi_callback_info info);

napi_value CrossEntropy(napi_env env, napi_callback_info info);
napi_value CrossEntropyBackward(napi_env env, napi_callback_info info);
napi_value LmHeadCrossEntropy(napi_env env, napi_callback_info info);
napi_value ScaleRows(napi_env env, napi_callback_info info);

napi_value Attention(napi_env env, napi_callback_info info);
napi_value AttentionBackward(napi_env env, napi_callback_info info);

#endif
