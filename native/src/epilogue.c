/*
 * The part of tfjs's _FusedMatMul that follows the product: out = activation(out + bias), in place.
 *
 * `out` is viewed as [batch, rows, cols]. The bias and the PReLU weights broadcast against it through per-axis
 * strides (0 on a broadcast axis), so [cols], [rows, 1], [batch, rows, cols] and scalars all take the same loop.
 * Formulas follow tfjs-core's applyActivation (ops/fused_util.ts).
 */
#include "epilogue.h"

#include <math.h>
#include <stdio.h>

#include "args.h"

typedef struct {
  F32View view;
  int64_t stride_batch, stride_row, stride_col;
} Broadcast;

static bool read_broadcast(napi_env env, const char *fn, napi_value *argv, const char *name, const char *stride_names[3],
                           Broadcast *out) {
  const int64_t max_stride = (int64_t)1 << 50;
  return arg_f32(env, argv[0], fn, name, true, &out->view) &&
         arg_int(env, argv[1], fn, stride_names[0], 0, max_stride, &out->stride_batch) &&
         arg_int(env, argv[2], fn, stride_names[1], 0, max_stride, &out->stride_row) &&
         arg_int(env, argv[3], fn, stride_names[2], 0, max_stride, &out->stride_col);
}

static bool check_broadcast(napi_env env, const char *fn, const char *name, const Broadcast *b, int64_t batch,
                            int64_t rows, int64_t cols) {
  if (b->view.data == NULL || batch == 0 || rows == 0 || cols == 0) return true;
  int64_t last = (batch - 1) * b->stride_batch + (rows - 1) * b->stride_row + (cols - 1) * b->stride_col;
  if (last >= b->view.length) {
    char message[192];
    snprintf(message, sizeof message, "%s has %lld floats but its strides reach index %lld", name,
             (long long)b->view.length, (long long)last);
    return throw_range(env, fn, message);
  }
  return true;
}

static inline float activate(float x, Activation act, float leaky_alpha, float prelu_weight) {
  switch (act) {
    case ACT_RELU: return x > 0.0f ? x : 0.0f;
    case ACT_RELU6: return x < 0.0f ? 0.0f : (x > 6.0f ? 6.0f : x);
    case ACT_ELU: return x > 0.0f ? x : expm1f(x);
    case ACT_LEAKYRELU: return x < 0.0f ? leaky_alpha * x : x;
    case ACT_PRELU: return x < 0.0f ? prelu_weight * x : x;
    case ACT_SIGMOID: return 1.0f / (1.0f + expf(-x));
    default: return x;
  }
}

/* biasActivation(out, batch, rows, cols, bias, biasStrideBatch, biasStrideRow, biasStrideCol, activation,
 *                leakyreluAlpha, prelu, preluStrideBatch, preluStrideRow, preluStrideCol) */
napi_value BiasActivation(napi_env env, napi_callback_info info) {
  const char *fn = "biasActivation";
  static const char *bias_strides[3] = {"biasStrideBatch", "biasStrideRow", "biasStrideCol"};
  static const char *prelu_strides[3] = {"preluStrideBatch", "preluStrideRow", "preluStrideCol"};
  napi_value argv[14];
  F32View out;
  int64_t batch, rows, cols, act_code;
  double leaky_alpha;
  Broadcast bias, prelu;
  if (!args_get(env, info, fn, 14, argv) || !arg_f32(env, argv[0], fn, "out", false, &out) ||
      !arg_int(env, argv[1], fn, "batch", 0, INT32_MAX, &batch) ||
      !arg_int(env, argv[2], fn, "rows", 0, INT32_MAX, &rows) ||
      !arg_int(env, argv[3], fn, "cols", 0, INT32_MAX, &cols) ||
      !read_broadcast(env, fn, argv + 4, "bias", bias_strides, &bias) ||
      !arg_int(env, argv[8], fn, "activation", 0, ACT_COUNT - 1, &act_code) ||
      !arg_float(env, argv[9], fn, "leakyreluAlpha", &leaky_alpha) ||
      !read_broadcast(env, fn, argv + 10, "prelu", prelu_strides, &prelu)) {
    return NULL;
  }
  Activation act = (Activation)act_code;
  if (batch * rows * cols > out.length) {
    throw_range(env, fn, "out is smaller than batch * rows * cols");
    return NULL;
  }
  if (act == ACT_PRELU && prelu.view.data == NULL) {
    throw_range(env, fn, "the prelu activation needs its weights");
    return NULL;
  }
  if (!check_broadcast(env, fn, "bias", &bias, batch, rows, cols) ||
      !check_broadcast(env, fn, "prelu", &prelu, batch, rows, cols)) {
    return NULL;
  }
  if (ranges_overlap(out.data, batch * rows * cols, bias.view.data, bias.view.length) ||
      ranges_overlap(out.data, batch * rows * cols, prelu.view.data, prelu.view.length)) {
    throw_range(env, fn, "out overlaps bias or prelu weights");
    return NULL;
  }

  float *x = out.data;
  for (int64_t b = 0; b < batch; b++) {
    for (int64_t r = 0; r < rows; r++) {
      const float *bias_row =
          bias.view.data == NULL ? NULL : bias.view.data + b * bias.stride_batch + r * bias.stride_row;
      const float *prelu_row =
          prelu.view.data == NULL ? NULL : prelu.view.data + b * prelu.stride_batch + r * prelu.stride_row;
      for (int64_t c = 0; c < cols; c++, x++) {
        float v = *x;
        if (bias_row != NULL) v += bias_row[c * bias.stride_col];
        *x = activate(v, act, (float)leaky_alpha, prelu_row != NULL ? prelu_row[c * prelu.stride_col] : 0.0f);
      }
    }
  }
  return NULL;
}
