/*
 * SwiGLU's elementwise part: y = silu(gate) * up, silu(g) = g * sigmoid(g). Backward, with s = sigmoid(g):
 *   dgate = dy * up * s * (1 + g * (1 - s)),   dup = dy * g * s
 */
#include "args.h"
#include "fastmath.h"
#include "kernels.h"
#include "pool.h"

typedef struct {
  const float *gate, *up, *dy;
  float *y, *dgate, *dup;
} SwiGluJob;

static void forward_items(void *ctx, int64_t begin, int64_t end, int worker) {
  const SwiGluJob *j = ctx;
  const float *g = j->gate, *u = j->up;
  float *y = j->y;
#pragma omp simd
  for (int64_t i = begin; i < end; i++) y[i] = g[i] * fast_sigmoidf(g[i]) * u[i];
}

static void backward_items(void *ctx, int64_t begin, int64_t end, int worker) {
  const SwiGluJob *j = ctx;
  const float *g = j->gate, *u = j->up, *dy = j->dy;
  if (j->dgate != NULL) {
    float *dg = j->dgate;
#pragma omp simd
    for (int64_t i = begin; i < end; i++) {
      float s = fast_sigmoidf(g[i]);
      dg[i] = dy[i] * u[i] * s * (1.0f + g[i] * (1.0f - s));
    }
  }
  if (j->dup != NULL) {
    float *du = j->dup;
#pragma omp simd
    for (int64_t i = begin; i < end; i++) du[i] = dy[i] * g[i] * fast_sigmoidf(g[i]);
  }
}

/* Elementwise work is memory-bound; 16K floats per chunk amortise the hand-out. */
#define SWIGLU_GRAIN 16384

/* swiglu(gate, up, size, y) */
napi_value SwiGlu(napi_env env, napi_callback_info info) {
  const char *fn = "swiglu";
  napi_value argv[4];
  F32View gate, up, y;
  int64_t size;
  if (!args_get(env, info, fn, 4, argv) || !arg_f32(env, argv[0], fn, "gate", false, &gate) ||
      !arg_f32(env, argv[1], fn, "up", false, &up) || !arg_int(env, argv[2], fn, "size", 0, INT32_MAX, &size) ||
      !arg_f32(env, argv[3], fn, "y", false, &y) || !arg_f32_min(env, fn, "gate", gate, size) ||
      !arg_f32_min(env, fn, "up", up, size) || !arg_f32_min(env, fn, "y", y, size)) {
    return NULL;
  }
  SwiGluJob j = {.gate = gate.data, .up = up.data, .y = y.data};
  pool_for(size, SWIGLU_GRAIN, forward_items, &j);
  return NULL;
}

/* swigluBackward(dy, gate, up, size, dgate | null, dup | null) */
napi_value SwiGluBackward(napi_env env, napi_callback_info info) {
  const char *fn = "swigluBackward";
  napi_value argv[6];
  F32View dy, gate, up, dgate, dup;
  int64_t size;
  if (!args_get(env, info, fn, 6, argv) || !arg_f32(env, argv[0], fn, "dy", false, &dy) ||
      !arg_f32(env, argv[1], fn, "gate", false, &gate) || !arg_f32(env, argv[2], fn, "up", false, &up) ||
      !arg_int(env, argv[3], fn, "size", 0, INT32_MAX, &size) || !arg_f32(env, argv[4], fn, "dgate", true, &dgate) ||
      !arg_f32(env, argv[5], fn, "dup", true, &dup) || !arg_f32_min(env, fn, "dy", dy, size) ||
      !arg_f32_min(env, fn, "gate", gate, size) || !arg_f32_min(env, fn, "up", up, size) ||
      (dgate.data != NULL && !arg_f32_min(env, fn, "dgate", dgate, size)) ||
      (dup.data != NULL && !arg_f32_min(env, fn, "dup", dup, size))) {
    return NULL;
  }
  SwiGluJob j = {.dy = dy.data, .gate = gate.data, .up = up.data, .dgate = dgate.data, .dup = dup.data};
  pool_for(size, SWIGLU_GRAIN, backward_items, &j);
  return NULL;
}
