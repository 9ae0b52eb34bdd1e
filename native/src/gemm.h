#ifndef ADAPTER_NATIVE_GEMM_H
#define ADAPTER_NATIVE_GEMM_H

#include <node_api.h>

napi_value Sgemm(napi_env env, napi_callback_info info);
napi_value SgemmStridedBatched(napi_env env, napi_callback_info info);

#endif
