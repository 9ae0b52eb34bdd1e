/*
 * RMSNorm over the last axis, x viewed as [rows, cols]:
 *   rstd[r] = 1 / sqrt(mean_c(x[r, c]^2) + eps),   y[r, c] = x[r, c] * rstd[r] * w[c]
 * Backward, with xhat = x * rstd and g = dy * w:
 *   dx[r, c] = rstd[r] * (g[r, c] - xhat[r, c] * mean_c(g[r, :] * xhat[r, :]))
 *   dw[c]    = sum_r dy[r, c] * xhat[r, c]
 */
#include <math.h>

#include "args.h"
#include "kernels.h"
#include "pool.h"

typedef struct {
  const float *x, *w, *dy, *rstd_in;
  float *y, *rstd, *dx, *dw;
  int64_t rows, cols;
  float eps;
} NormJob;

static void forward_rows(void *ctx, int64_t begin, int64_t end, int worker) {
  const NormJob *j = ctx;
  const int64_t n = j->cols;
  for (int64_t r = begin; r < end; r++) {
    const float *x = j->x + r * n;
    float *y = j->y + r * n;
    float sum = 0.0f;
#pragma omp simd reduction(+ : sum)
    for (int64_t c = 0; c < n; c++) sum += x[c] * x[c];
    float s = 1.0f / sqrtf(sum / (float)n + j->eps);
    j->rstd[r] = s;
#pragma omp simd
    for (int64_t c = 0; c < n; c++) y[c] = x[c] * s * j->w[c];
  }
}

static void backward_rows(void *ctx, int64_t begin, int64_t end, int worker) {
  const NormJob *j = ctx;
  const int64_t n = j->cols;
  for (int64_t r = begin; r < end; r++) {
    const float *x = j->x + r * n, *dy = j->dy + r * n;
    float *dx = j->dx + r * n;
    const float s = j->rstd_in[r];
    float dot = 0.0f; /* sum_c g * xhat */
#pragma omp simd reduction(+ : dot)
    for (int64_t c = 0; c < n; c++) dot += dy[c] * j->w[c] * x[c] * s;
    const float mean = dot / (float)n;
#pragma omp simd
    for (int64_t c = 0; c < n; c++) dx[c] = s * (dy[c] * j->w[c] - x[c] * s * mean);
  }
}

/* Columns in blocks, so each thread owns its dw entries and the sum over rows needs no reduction afterwards. */
#define WEIGHT_GRAD_BLOCK 64

static void weight_grad_blocks(void *ctx, int64_t begin, int64_t end, int worker) {
  const NormJob *j = ctx;
  for (int64_t blk = begin; blk < end; blk++) {
    int64_t c0 = blk * WEIGHT_GRAD_BLOCK;
    int64_t c1 = c0 + WEIGHT_GRAD_BLOCK < j->cols ? c0 + WEIGHT_GRAD_BLOCK : j->cols;
    float acc[WEIGHT_GRAD_BLOCK] = {0};
    for (int64_t r = 0; r < j->rows; r++) {
      const float *x = j->x + r * j->cols + c0, *dy = j->dy + r * j->cols + c0;
      const float s = j->rstd_in[r];
#pragma omp simd
      for (int64_t c = 0; c < c1 - c0; c++) acc[c] += dy[c] * x[c] * s;
    }
    for (int64_t c = c0; c < c1; c++) j->dw[c] = acc[c - c0];
  }
}

static bool read_dims(napi_env env, const char *fn, napi_value rows, napi_value cols, NormJob *j) {
  return arg_int(env, rows, fn, "rows", 0, INT32_MAX, &j->rows) && arg_int(env, cols, fn, "cols", 1, INT32_MAX, &j->cols);
}

/* rmsNorm(x, weight, eps, rows, cols, y, rstd) */
napi_value RmsNorm(napi_env env, napi_callback_info info) {
  const char *fn = "rmsNorm";
  napi_value argv[7];
  NormJob j = {0};
  F32View x, w, y, rstd;
  double eps;
  if (!args_get(env, info, fn, 7, argv) || !arg_f32(env, argv[0], fn, "x", false, &x) ||
      !arg_f32(env, argv[1], fn, "weight", false, &w) || !arg_float(env, argv[2], fn, "eps", &eps) ||
      !read_dims(env, fn, argv[3], argv[4], &j) || !arg_f32(env, argv[5], fn, "y", false, &y) ||
      !arg_f32(env, argv[6], fn, "rstd", false, &rstd) || !arg_f32_min(env, fn, "x", x, j.rows * j.cols) ||
      !arg_f32_min(env, fn, "weight", w, j.cols) || !arg_f32_min(env, fn, "y", y, j.rows * j.cols) ||
      !arg_f32_min(env, fn, "rstd", rstd, j.rows)) {
    return NULL;
  }
  j.x = x.data, j.w = w.data, j.y = y.data, j.rstd = rstd.data, j.eps = (float)eps;
  pool_for(j.rows, 16, forward_rows, &j);
  return NULL;
}

/* rmsNormBackward(dy, x, weight, rstd, rows, cols, dx) */
napi_value RmsNormBackward(napi_env env, napi_callback_info info) {
  const char *fn = "rmsNormBackward";
  napi_value argv[7];
  NormJob j = {0};
  F32View dy, x, w, rstd, dx;
  if (!args_get(env, info, fn, 7, argv) || !arg_f32(env, argv[0], fn, "dy", false, &dy) ||
      !arg_f32(env, argv[1], fn, "x", false, &x) || !arg_f32(env, argv[2], fn, "weight", false, &w) ||
      !arg_f32(env, argv[3], fn, "rstd", false, &rstd) || !read_dims(env, fn, argv[4], argv[5], &j) ||
      !arg_f32(env, argv[6], fn, "dx", false, &dx) || !arg_f32_min(env, fn, "dy", dy, j.rows * j.cols) ||
      !arg_f32_min(env, fn, "x", x, j.rows * j.cols) || !arg_f32_min(env, fn, "weight", w, j.cols) ||
      !arg_f32_min(env, fn, "rstd", rstd, j.rows) || !arg_f32_min(env, fn, "dx", dx, j.rows * j.cols)) {
    return NULL;
  }
  j.dy = dy.data, j.x = x.data, j.w = w.data, j.rstd_in = rstd.data, j.dx = dx.data;
  pool_for(j.rows, 16, backward_rows, &j);
  return NULL;
}

/* rmsNormWeightGrad(dy, x, rstd, rows, cols, dw) */
napi_value RmsNormWeightGrad(napi_env env, napi_callback_info info) {
  const char *fn = "rmsNormWeightGrad";
  napi_value argv[6];
  NormJob j = {0};
  F32View dy, x, rstd, dw;
  if (!args_get(env, info, fn, 6, argv) || !arg_f32(env, argv[0], fn, "dy", false, &dy) ||
      !arg_f32(env, argv[1], fn, "x", false, &x) || !arg_f32(env, argv[2], fn, "rstd", false, &rstd) ||
      !read_dims(env, fn, argv[3], argv[4], &j) || !arg_f32(env, argv[5], fn, "dw", false, &dw) ||
      !arg_f32_min(env, fn, "dy", dy, j.rows * j.cols) || !arg_f32_min(env, fn, "x", x, j.rows * j.cols) ||
      !arg_f32_min(env, fn, "rstd", rstd, j.rows) || !arg_f32_min(env, fn, "dw", dw, j.cols)) {
    return NULL;
  }
  j.dy = dy.data, j.x = x.data, j.rstd_in = rstd.data, j.dw = dw.data;
  pool_for((j.cols + WEIGHT_GRAD_BLOCK - 1) / WEIGHT_GRAD_BLOCK, 1, weight_grad_blocks, &j);
  return NULL;
}
