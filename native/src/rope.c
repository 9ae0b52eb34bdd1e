/*
 * Rotary position embedding, Hugging Face's rotate-half form, on x viewed as [outer, T, inner, headDim] with the
 * position on axis 1: [B, T, heads, hd] is (outer B, inner heads), [B, heads, T, hd] is (outer B * heads, inner 1).
 * With h = headDim / 2 and tables cos, sin [T, headDim]:
 *   forward:  y[i] = x[i] cos[i] - x[i+h] sin[i],      y[i+h] = x[i+h] cos[i+h] + x[i] sin[i+h]
 *   backward (the transposed rotation):
 *             dx[i] = dy[i] cos[i] + dy[i+h] sin[i+h],  dx[i+h] = dy[i+h] cos[i+h] - dy[i] sin[i]
 */
#include "args.h"
#include "kernels.h"
#include "pool.h"

typedef struct {
  const float *x, *cos, *sin;
  float *y;
  int64_t T, inner, hd;
  bool backward;
} RopeJob;

/* Items are (outer, t) pairs: every head vector at one position shares one row of the tables. */
static void rope_rows(void *ctx, int64_t begin, int64_t end, int worker) {
  const RopeJob *j = ctx;
  const int64_t h = j->hd / 2, row = j->inner * j->hd;
  for (int64_t item = begin; item < end; item++) {
    const int64_t t = item % j->T;
    const float *c = j->cos + t * j->hd, *s = j->sin + t * j->hd;
    for (int64_t head = 0; head < j->inner; head++) {
      const float *x = j->x + item * row + head * j->hd;
      float *y = j->y + item * row + head * j->hd;
      if (!j->backward) {
#pragma omp simd
        for (int64_t i = 0; i < h; i++) {
          y[i] = x[i] * c[i] - x[i + h] * s[i];
          y[i + h] = x[i + h] * c[i + h] + x[i] * s[i + h];
        }
      } else {
#pragma omp simd
        for (int64_t i = 0; i < h; i++) {
          y[i] = x[i] * c[i] + x[i + h] * s[i + h];
          y[i + h] = x[i + h] * c[i + h] - x[i] * s[i];
        }
      }
    }
  }
}

/* rope(x, cos, sin, outer, T, inner, headDim, backward, y): y = rotate(x), or its transpose when backward. */
napi_value Rope(napi_env env, napi_callback_info info) {
  const char *fn = "rope";
  napi_value argv[9];
  RopeJob j = {0};
  F32View x, cos, sin, y;
  int64_t outer;
  if (!args_get(env, info, fn, 9, argv) || !arg_f32(env, argv[0], fn, "x", false, &x) ||
      !arg_f32(env, argv[1], fn, "cos", false, &cos) || !arg_f32(env, argv[2], fn, "sin", false, &sin) ||
      !arg_int(env, argv[3], fn, "outer", 0, INT32_MAX, &outer) || !arg_int(env, argv[4], fn, "T", 1, INT32_MAX, &j.T) ||
      !arg_int(env, argv[5], fn, "inner", 1, INT32_MAX, &j.inner) ||
      !arg_int(env, argv[6], fn, "headDim", 2, INT32_MAX, &j.hd) || !arg_bool(env, argv[7], fn, "backward", &j.backward) ||
      !arg_f32(env, argv[8], fn, "y", false, &y)) {
    return NULL;
  }
  if (j.hd % 2 != 0) {
    throw_range(env, fn, "headDim must be even");
    return NULL;
  }
  const int64_t size = outer * j.T * j.inner * j.hd;
  if (!arg_f32_min(env, fn, "x", x, size) || !arg_f32_min(env, fn, "y", y, size) ||
      !arg_f32_min(env, fn, "cos", cos, j.T * j.hd) || !arg_f32_min(env, fn, "sin", sin, j.T * j.hd)) {
    return NULL;
  }
  if (ranges_overlap(x.data, size, y.data, size)) {
    throw_range(env, fn, "y overlaps x");
    return NULL;
  }
  j.x = x.data, j.cos = cos.data, j.sin = sin.data, j.y = y.data;
  pool_for(outer * j.T, 8, rope_rows, &j);
  return NULL;
}
