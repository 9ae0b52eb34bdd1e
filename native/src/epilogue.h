#ifndef ADAPTER_NATIVE_EPILOGUE_H
#define ADAPTER_NATIVE_EPILOGUE_H

#include <node_api.h>

/* Activation codes shared with JavaScript through the addon's `activations` export. */
typedef enum {
  ACT_LINEAR = 0,
  ACT_RELU = 1,
  ACT_RELU6 = 2,
  ACT_ELU = 3,
  ACT_LEAKYRELU = 4,
  ACT_PRELU = 5,
  ACT_SIGMOID = 6,
  ACT_COUNT = 7
} Activation;

napi_value BiasActivation(napi_env env, napi_callback_info info);

#endif
