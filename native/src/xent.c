/*
 * Softmax cross-entropy over the vocabulary, masked, straight from the logits of a whole batch.
 *
 * Logical row n (one predicted token) reads physical logits row p(n) = (n / rowsPerSeq) * seqStride + n % rowsPerSeq,
 * so the logits of [B, T, V] serve next-token targets [B * (T - 1)] without slicing off each sequence's last
 * position (rowsPerSeq = T - 1, seqStride = T); plain [N, V] logits use rowsPerSeq = seqStride = N.
 *   lse[n] = log sum_v exp(logits[p(n), v]),   nll[n] = mask[n] * (lse[n] - logits[p(n), label[n]])
 * Rows with mask 0 are skipped (nll 0); their labels are not read.
 * Backward: dlogits[p(n), v] = dnll[n] * mask[n] * (exp(logits[p(n), v] - lse[n]) - [v == label[n]]); physical rows
 * no logical row reads, and masked rows, get 0.
 */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "args.h"
#include "fastmath.h"
#include "gemm.h"
#include "kernels.h"
#include "pool.h"

typedef struct {
  const float *logits, *mask, *lse_in, *dnll;
  const int32_t *labels;
  float *nll, *lse, *dlogits;
  int64_t n, vocab, rows_per_seq, seq_stride, phys_rows;
} XentJob;

static inline int64_t physical_row(const XentJob *j, int64_t n) {
  return (n / j->rows_per_seq) * j->seq_stride + n % j->rows_per_seq;
}

static void forward_rows(void *ctx, int64_t begin, int64_t end, int worker) {
  const XentJob *j = ctx;
  const int64_t V = j->vocab;
  for (int64_t n = begin; n < end; n++) {
    if (j->mask[n] == 0.0f) {
      j->nll[n] = 0.0f;
      j->lse[n] = 0.0f;
      continue;
    }
    const float *x = j->logits + physical_row(j, n) * V;
    float max = -INFINITY;
#pragma omp simd reduction(max : max)
    for (int64_t v = 0; v < V; v++) max = x[v] > max ? x[v] : max;
    float sum = 0.0f;
#pragma omp simd reduction(+ : sum)
    for (int64_t v = 0; v < V; v++) sum += fast_expf(x[v] - max);
    const float lse = max + logf(sum);
    j->lse[n] = lse;
    j->nll[n] = j->mask[n] * (lse - x[j->labels[n]]);
  }
}

static void backward_rows(void *ctx, int64_t begin, int64_t end, int worker) {
  const XentJob *j = ctx;
  const int64_t V = j->vocab;
  for (int64_t p = begin; p < end; p++) {
    float *d = j->dlogits + p * V;
    const int64_t in_seq = p % j->seq_stride;
    const int64_t n = (p / j->seq_stride) * j->rows_per_seq + in_seq;
    const bool read = in_seq < j->rows_per_seq && n < j->n && j->mask[n] != 0.0f;
    if (!read) {
      for (int64_t v = 0; v < V; v++) d[v] = 0.0f;
      continue;
    }
    const float *x = j->logits + p * V;
    const float scale = j->dnll[n] * j->mask[n], lse = j->lse_in[n];
#pragma omp simd
    for (int64_t v = 0; v < V; v++) d[v] = scale * fast_expf(x[v] - lse);
    d[j->labels[n]] -= scale;
  }
}

/* Shared argument checks: labels of counted rows in range, and every physical row inside the logits. */
static bool check_rows(napi_env env, const char *fn, const XentJob *j, F32View logits, I32View labels, F32View mask) {
  char message[192];
  if (labels.length < j->n || mask.length < j->n) return throw_range(env, fn, "labels and mask need one entry per row");
  if (j->n > 0 && (physical_row(j, j->n - 1) + 1) * j->vocab > logits.length) {
    return throw_range(env, fn, "logits are smaller than the rows and vocabulary given");
  }
  for (int64_t n = 0; n < j->n; n++) {
    if (j->mask[n] != 0.0f && (labels.data[n] < 0 || labels.data[n] >= j->vocab)) {
      snprintf(message, sizeof message, "label at index %lld is %d, outside the vocabulary [0, %lld)", (long long)n,
               labels.data[n], (long long)j->vocab);
      return throw_range(env, fn, message);
    }
  }
  return true;
}

static bool read_layout(napi_env env, const char *fn, napi_value *argv, XentJob *j) {
  return arg_int(env, argv[0], fn, "rows", 0, INT32_MAX, &j->n) &&
         arg_int(env, argv[1], fn, "vocab", 1, INT32_MAX, &j->vocab) &&
         arg_int(env, argv[2], fn, "rowsPerSeq", 1, INT32_MAX, &j->rows_per_seq) &&
         arg_int(env, argv[3], fn, "seqStride", 1, INT32_MAX, &j->seq_stride);
}

/* crossEntropy(logits, labels, mask, rows, vocab, rowsPerSeq, seqStride, nll, lse) */
napi_value CrossEntropy(napi_env env, napi_callback_info info) {
  const char *fn = "crossEntropy";
  napi_value argv[9];
  XentJob j = {0};
  F32View logits, mask, nll, lse;
  I32View labels;
  if (!args_get(env, info, fn, 9, argv) || !arg_f32(env, argv[0], fn, "logits", false, &logits) ||
      !arg_i32(env, argv[1], fn, "labels", &labels) || !arg_f32(env, argv[2], fn, "mask", false, &mask) ||
      !read_layout(env, fn, argv + 3, &j) || !arg_f32(env, argv[7], fn, "nll", false, &nll) ||
      !arg_f32(env, argv[8], fn, "lse", false, &lse)) {
    return NULL;
  }
  if (j.rows_per_seq > j.seq_stride) {
    throw_range(env, fn, "rowsPerSeq is larger than seqStride");
    return NULL;
  }
  j.logits = logits.data, j.labels = labels.data, j.mask = mask.data, j.nll = nll.data, j.lse = lse.data;
  if (!check_rows(env, fn, &j, logits, labels, mask) || !arg_f32_min(env, fn, "nll", nll, j.n) ||
      !arg_f32_min(env, fn, "lse", lse, j.n)) {
    return NULL;
  }
  pool_for(j.n, 4, forward_rows, &j);
  return NULL;
}

/* crossEntropyBackward(dnll, logits, labels, mask, lse, rows, vocab, rowsPerSeq, seqStride, physRows, dlogits) */
napi_value CrossEntropyBackward(napi_env env, napi_callback_info info) {
  const char *fn = "crossEntropyBackward";
  napi_value argv[11];
  XentJob j = {0};
  F32View dnll, logits, mask, lse, dlogits;
  I32View labels;
  if (!args_get(env, info, fn, 11, argv) || !arg_f32(env, argv[0], fn, "dnll", false, &dnll) ||
      !arg_f32(env, argv[1], fn, "logits", false, &logits) || !arg_i32(env, argv[2], fn, "labels", &labels) ||
      !arg_f32(env, argv[3], fn, "mask", false, &mask) || !arg_f32(env, argv[4], fn, "lse", false, &lse) ||
      !read_layout(env, fn, argv + 5, &j) || !arg_int(env, argv[9], fn, "physRows", 0, INT32_MAX, &j.phys_rows) ||
      !arg_f32(env, argv[10], fn, "dlogits", false, &dlogits)) {
    return NULL;
  }
  if (j.rows_per_seq > j.seq_stride) {
    throw_range(env, fn, "rowsPerSeq is larger than seqStride");
    return NULL;
  }
  j.dnll = dnll.data, j.logits = logits.data, j.labels = labels.data, j.mask = mask.data, j.lse_in = lse.data;
  j.dlogits = dlogits.data;
  if (!check_rows(env, fn, &j, logits, labels, mask) || !arg_f32_min(env, fn, "dnll", dnll, j.n) ||
      !arg_f32_min(env, fn, "lse", lse, j.n) || !arg_f32_min(env, fn, "logits", logits, j.phys_rows * j.vocab) ||
      !arg_f32_min(env, fn, "dlogits", dlogits, j.phys_rows * j.vocab)) {
    return NULL;
  }
  pool_for(j.phys_rows, 4, backward_rows, &j);
  return NULL;
}

/* ---- The vocabulary projection and the loss in one kernel ---- */

/*
 * lmHeadCrossEntropy: the same loss computed from the final hidden states [physRows, dim] and the head's weight
 * (W [dim, V], or [V, dim] tied to the embedding with transposeW), so the logits of the whole batch are never a
 * tensor. Counted rows go in chunks: logits of a chunk (one threaded product), then lse / nll per row, and, when
 * dunit is given, the loss's gradient with respect to the hidden states for a unit upstream gradient:
 *   G = mask * (softmax(logits) - onehot(label)),   dunit[p(n)] = G[n] W^T      (rows nothing reads: 0)
 * computed here, in the forward, because the chunk's logits are at hand: backward then only scales rows by dnll.
 * FLOPs are those of the separate head forward and its input gradient; memory is one chunk of logits.
 */
typedef struct {
  const XentJob *x;
  const int64_t *rows; /* logical rows of this chunk */
  float *logits;       /* [count, vocab] */
  float *lse;
} ChunkJob;

static void chunk_rows(void *ctx, int64_t begin, int64_t end, int worker) {
  const ChunkJob *c = ctx;
  const XentJob *j = c->x;
  const int64_t V = j->vocab;
  for (int64_t r = begin; r < end; r++) {
    const int64_t n = c->rows[r];
    float *x = c->logits + r * V;
    float max = -INFINITY;
#pragma omp simd reduction(max : max)
    for (int64_t v = 0; v < V; v++) max = x[v] > max ? x[v] : max;
    float sum = 0.0f;
#pragma omp simd reduction(+ : sum)
    for (int64_t v = 0; v < V; v++) sum += fast_expf(x[v] - max);
    const float lse = max + logf(sum);
    j->nll[n] = j->mask[n] * (lse - x[j->labels[n]]);
    if (j->dlogits == NULL) continue;
    const float m = j->mask[n];
#pragma omp simd
    for (int64_t v = 0; v < V; v++) x[v] = m * fast_expf(x[v] - lse);
    x[j->labels[n]] -= m;
  }
}

/* Floats of logits one chunk may hold (32 MB): ~260 rows of a 32K vocabulary, large enough that the products stay
 * efficient (each chunk packs the head's weight once) and small enough that the loss adds little to peak memory. */
#define CHUNK_FLOATS ((int64_t)8 << 20)

/* lmHeadCrossEntropy(hidden, weight, transposeW, labels, mask, rows, dim, vocab, rowsPerSeq, seqStride, physRows,
 *                    nll, dunit | null) */
napi_value LmHeadCrossEntropy(napi_env env, napi_callback_info info) {
  const char *fn = "lmHeadCrossEntropy";
  napi_value argv[13];
  XentJob j = {0};
  F32View hidden, weight, mask, nll, dunit;
  I32View labels;
  bool transpose_w;
  int64_t dim;
  if (!args_get(env, info, fn, 13, argv) || !arg_f32(env, argv[0], fn, "hidden", false, &hidden) ||
      !arg_f32(env, argv[1], fn, "weight", false, &weight) || !arg_bool(env, argv[2], fn, "transposeW", &transpose_w) ||
      !arg_i32(env, argv[3], fn, "labels", &labels) || !arg_f32(env, argv[4], fn, "mask", false, &mask) ||
      !arg_int(env, argv[5], fn, "rows", 0, INT32_MAX, &j.n) || !arg_int(env, argv[6], fn, "dim", 1, INT32_MAX, &dim) ||
      !arg_int(env, argv[7], fn, "vocab", 1, INT32_MAX, &j.vocab) ||
      !arg_int(env, argv[8], fn, "rowsPerSeq", 1, INT32_MAX, &j.rows_per_seq) ||
      !arg_int(env, argv[9], fn, "seqStride", 1, INT32_MAX, &j.seq_stride) ||
      !arg_int(env, argv[10], fn, "physRows", 0, INT32_MAX, &j.phys_rows) ||
      !arg_f32(env, argv[11], fn, "nll", false, &nll) || !arg_f32(env, argv[12], fn, "dunit", true, &dunit)) {
    return NULL;
  }
  if (j.rows_per_seq > j.seq_stride) {
    throw_range(env, fn, "rowsPerSeq is larger than seqStride");
    return NULL;
  }
  j.labels = labels.data, j.mask = mask.data, j.nll = nll.data, j.dlogits = dunit.data;
  if (labels.length < j.n || mask.length < j.n) {
    throw_range(env, fn, "labels and mask need one entry per row");
    return NULL;
  }
  if (j.n > 0 && physical_row(&j, j.n - 1) >= j.phys_rows) {
    throw_range(env, fn, "rows do not fit physRows with this rowsPerSeq and seqStride");
    return NULL;
  }
  for (int64_t n = 0; n < j.n; n++) {
    if (j.mask[n] != 0.0f && (labels.data[n] < 0 || labels.data[n] >= j.vocab)) {
      char message[160];
      snprintf(message, sizeof message, "label at index %lld is %d, outside the vocabulary [0, %lld)", (long long)n,
               labels.data[n], (long long)j.vocab);
      throw_range(env, fn, message);
      return NULL;
    }
  }
  if (!arg_f32_min(env, fn, "hidden", hidden, j.phys_rows * dim) || !arg_f32_min(env, fn, "weight", weight, dim * j.vocab) ||
      !arg_f32_min(env, fn, "nll", nll, j.n) || (dunit.data != NULL && !arg_f32_min(env, fn, "dunit", dunit, j.phys_rows * dim))) {
    return NULL;
  }
  int64_t *counted = malloc(sizeof(int64_t) * (j.n > 0 ? j.n : 1));
  int64_t count = 0;
  for (int64_t n = 0; n < j.n; n++) {
    if (j.mask[n] != 0.0f) counted[count++] = n;
    else j.nll[n] = 0.0f;
  }
  if (dunit.data != NULL) memset(dunit.data, 0, sizeof(float) * j.phys_rows * dim);
  /* Equal chunks (656 rows at most ~260 per chunk: three of 219, not 262 + 262 + 132), each product as large as
   * the others. */
  int64_t chunk = CHUNK_FLOATS / j.vocab;
  if (chunk < 16) chunk = 16;
  if (count > 0) {
    const int64_t chunks = (count + chunk - 1) / chunk;
    chunk = (count + chunks - 1) / chunks;
  }
  float *x = malloc(sizeof(float) * (chunk > 0 ? chunk : 1) * dim);
  float *logits = malloc(sizeof(float) * (chunk > 0 ? chunk : 1) * j.vocab);
  float *dx = dunit.data != NULL ? malloc(sizeof(float) * (chunk > 0 ? chunk : 1) * dim) : NULL;
  if (counted == NULL || x == NULL || logits == NULL || (dunit.data != NULL && dx == NULL)) {
    free(counted), free(x), free(logits), free(dx);
    throw_range(env, fn, "out of memory for a chunk of logits");
    return NULL;
  }
  for (int64_t c0 = 0; c0 < count; c0 += chunk) {
    const int64_t rows = count - c0 < chunk ? count - c0 : chunk;
    for (int64_t r = 0; r < rows; r++) {
      memcpy(x + r * dim, hidden.data + physical_row(&j, counted[c0 + r]) * dim, sizeof(float) * dim);
    }
    /* logits [rows, V] = x [rows, dim] @ W [dim, V]  (or @ W^T for W stored [V, dim]) */
    gemm_product(false, transpose_w, rows, j.vocab, dim, 1.0f, x, dim, weight.data, transpose_w ? dim : j.vocab, 0.0f,
                 logits, j.vocab);
    ChunkJob cj = {&j, counted + c0, logits, NULL};
    pool_for(rows, 1, chunk_rows, &cj);
    if (dx == NULL) continue;
    /* dx [rows, dim] = G [rows, V] @ W^T */
    gemm_product(false, !transpose_w, rows, dim, j.vocab, 1.0f, logits, j.vocab, weight.data,
                 transpose_w ? dim : j.vocab, 0.0f, dx, dim);
    for (int64_t r = 0; r < rows; r++) {
      memcpy(dunit.data + physical_row(&j, counted[c0 + r]) * dim, dx + r * dim, sizeof(float) * dim);
    }
  }
  free(counted), free(x), free(logits), free(dx);
  return NULL;
}

/* scaleRows(x, dnll, rows, cols, rowsPerSeq, seqStride, physRows, y): y[p(n)] = dnll[n] * x[p(n)], other rows 0. */
napi_value ScaleRows(napi_env env, napi_callback_info info) {
  const char *fn = "scaleRows";
  napi_value argv[8];
  XentJob j = {0};
  F32View x, dnll, y;
  int64_t cols;
  if (!args_get(env, info, fn, 8, argv) || !arg_f32(env, argv[0], fn, "x", false, &x) ||
      !arg_f32(env, argv[1], fn, "dnll", false, &dnll) || !arg_int(env, argv[2], fn, "rows", 0, INT32_MAX, &j.n) ||
      !arg_int(env, argv[3], fn, "cols", 1, INT32_MAX, &cols) ||
      !arg_int(env, argv[4], fn, "rowsPerSeq", 1, INT32_MAX, &j.rows_per_seq) ||
      !arg_int(env, argv[5], fn, "seqStride", 1, INT32_MAX, &j.seq_stride) ||
      !arg_int(env, argv[6], fn, "physRows", 0, INT32_MAX, &j.phys_rows) || !arg_f32(env, argv[7], fn, "y", false, &y) ||
      !arg_f32_min(env, fn, "x", x, j.phys_rows * cols) || !arg_f32_min(env, fn, "y", y, j.phys_rows * cols) ||
      !arg_f32_min(env, fn, "dnll", dnll, j.n)) {
    return NULL;
  }
  if (j.rows_per_seq > j.seq_stride || (j.n > 0 && physical_row(&j, j.n - 1) >= j.phys_rows)) {
    throw_range(env, fn, "rows do not fit physRows with this rowsPerSeq and seqStride");
    return NULL;
  }
  memset(y.data, 0, sizeof(float) * j.phys_rows * cols);
  for (int64_t n = 0; n < j.n; n++) {
    const int64_t p = physical_row(&j, n);
    const float s = dnll.data[n];
    for (int64_t c = 0; c < cols; c++) y.data[p * cols + c] = s * x.data[p * cols + c];
  }
  return NULL;
}
