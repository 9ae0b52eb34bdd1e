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
#define _DEFAULT_SOURCE /* MAP_ANONYMOUS for scratch.h under -std=c11; must precede every system header */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "args.h"
#include "fastmath.h"
#include "gemm.h"
#include "kernels.h"
#include "pool.h"
#include "scratch.h"

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
 * tensor. With dunit given it also forms the loss's gradient with respect to the hidden states for a unit upstream
 * gradient, here in the forward, where the logits are at hand (backward then only scales rows by dnll):
 *   G = mask * (softmax(logits) - onehot(label)),   dunit[p(n)] = G[n] W^T      (rows nothing reads: 0)
 *
 * Counted rows go in chunks, and each chunk sweeps the vocabulary in tiles of columns with an online softmax (as
 * flash attention does): per row a running max m and sum s = sum exp(l - m), rescaled by exp(m_old - m_new) when
 * a tile raises the max, and, for the gradient, a running acc = sum exp(l - m) W[:, v]^T rescaled alike. At the end
 *   lse = m + log s,   nll = mask * (lse - l[label]),   dunit = mask * (acc / s - W[:, label]^T).
 * So memory is one tile of logits (TILE_FLOATS) however large the vocabulary, each chunk streams the weight through
 * two products once, and FLOPs are those of the separate head forward and its input gradient.
 */

/* Floats of one tile of logits (4 MB): ~1600 vocabulary columns for a chunk of ~650 rows. Small next to the step's
 * other memory; each tile's products stay large enough (hundreds of rows and columns) to run near sgemm peak. */
#define TILE_FLOATS ((int64_t)1 << 20)
/* Rows per chunk at most, and floats of a chunk's gathered hidden states (and of its gradient accumulator). */
#define CHUNK_ROWS_MAX 1024
#define CHUNK_FLOATS ((int64_t)1 << 20)

typedef struct {
  const XentJob *x;
  const int64_t *rows; /* logical rows of this chunk */
  float *tile;         /* [rows, width] logits of vocabulary columns [v0, v0 + width); exp(l - max) after a pass */
  int64_t v0, width, dim;
  float *max, *sum, *label_logit; /* per chunk row: running max, running sum of exp(l - max), logit of the label */
  float *acc;                     /* [rows, dim] running sum of exp(l - max) W[:, v]^T, or NULL without gradient */
} TileJob;

/* One tile's logits into each row's running max and sum (and, with a gradient, exp(l - max) in place). */
static void tile_rows(void *ctx, int64_t begin, int64_t end, int worker) {
  const TileJob *t = ctx;
  const XentJob *j = t->x;
  const int64_t W = t->width;
  for (int64_t r = begin; r < end; r++) {
    float *l = t->tile + r * W;
    const int64_t label = j->labels[t->rows[r]];
    if (label >= t->v0 && label < t->v0 + W) t->label_logit[r] = l[label - t->v0];
    float tile_max = -INFINITY;
#pragma omp simd reduction(max : tile_max)
    for (int64_t v = 0; v < W; v++) tile_max = l[v] > tile_max ? l[v] : tile_max;
    const float old = t->max[r];
    const float m = tile_max > old ? tile_max : old;
    const float rescale = old == -INFINITY ? 0.0f : fast_expf(old - m); /* the first tile starts the sums */
    float s = 0.0f;
    if (t->acc == NULL) {
#pragma omp simd reduction(+ : s)
      for (int64_t v = 0; v < W; v++) s += fast_expf(l[v] - m);
    } else {
#pragma omp simd reduction(+ : s)
      for (int64_t v = 0; v < W; v++) {
        const float e = fast_expf(l[v] - m);
        l[v] = e;
        s += e;
      }
      if (rescale != 1.0f) {
        float *acc = t->acc + r * t->dim;
#pragma omp simd
        for (int64_t d = 0; d < t->dim; d++) acc[d] *= rescale;
      }
    }
    t->sum[r] = t->sum[r] * rescale + s;
    t->max[r] = m;
  }
}

typedef struct {
  const TileJob *t;
  const float *weight;
  bool transpose_w;
  float *dunit; /* [physRows, dim] or NULL */
} FinishJob;

/* Each chunk row's loss and, with a gradient, its row of dunit. */
static void finish_rows(void *ctx, int64_t begin, int64_t end, int worker) {
  const FinishJob *f = ctx;
  const TileJob *t = f->t;
  const XentJob *j = t->x;
  const int64_t D = t->dim;
  for (int64_t r = begin; r < end; r++) {
    const int64_t n = t->rows[r];
    const float mask = j->mask[n];
    j->nll[n] = mask * (t->max[r] + logf(t->sum[r]) - t->label_logit[r]);
    if (f->dunit == NULL) continue;
    const float scale = mask / t->sum[r];
    const float *acc = t->acc + r * D;
    float *out = f->dunit + physical_row(j, n) * D;
    const int64_t label = j->labels[n];
    if (f->transpose_w) {
      const float *w = f->weight + label * D; /* W [V, dim]: the label's row */
#pragma omp simd
      for (int64_t d = 0; d < D; d++) out[d] = scale * acc[d] - mask * w[d];
    } else {
      const float *w = f->weight + label; /* W [dim, V]: the label's column */
      for (int64_t d = 0; d < D; d++) out[d] = scale * acc[d] - mask * w[d * j->vocab];
    }
  }
}

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
  j.labels = labels.data, j.mask = mask.data, j.nll = nll.data;
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
  const bool grad = dunit.data != NULL;
  int64_t *counted = malloc(sizeof(int64_t) * (j.n > 0 ? j.n : 1));
  if (counted == NULL) {
    throw_range(env, fn, "out of memory for the row list");
    return NULL;
  }
  int64_t count = 0;
  for (int64_t n = 0; n < j.n; n++) {
    if (j.mask[n] != 0.0f) counted[count++] = n;
    else j.nll[n] = 0.0f;
  }
  if (grad) memset(dunit.data, 0, sizeof(float) * j.phys_rows * dim);
  if (count == 0) {
    free(counted);
    return NULL;
  }
  /* Equal chunks of rows (so every product is as large as the others), then equal tiles of columns. */
  int64_t rows_max = CHUNK_FLOATS / dim;
  if (rows_max > CHUNK_ROWS_MAX) rows_max = CHUNK_ROWS_MAX;
  if (rows_max < 16) rows_max = 16;
  const int64_t chunks = (count + rows_max - 1) / rows_max;
  const int64_t chunk = (count + chunks - 1) / chunks;
  int64_t width = TILE_FLOATS / chunk;
  if (width < 16) width = 16;
  if (width > j.vocab) width = j.vocab;
  const int64_t tiles = (j.vocab + width - 1) / width;
  width = (j.vocab + tiles - 1) / tiles;

  /* Scratch, mapped rather than malloc'ed so that it leaves the process with the call (scratch.h): the tile, the
   * chunk's hidden states and gradient accumulator, and three floats per row. */
  const size_t floats = (size_t)(chunk * width + chunk * dim * (grad ? 2 : 1) + 3 * chunk);
  float *scratch = scratch_alloc(sizeof(float) * floats);
  if (scratch == NULL) {
    free(counted);
    throw_range(env, fn, "out of memory for a tile of logits");
    return NULL;
  }
  float *tile = scratch, *x = tile + chunk * width, *acc = grad ? x + chunk * dim : NULL;
  float *row_max = x + chunk * dim * (grad ? 2 : 1), *row_sum = row_max + chunk, *label_logit = row_sum + chunk;
  const int64_t ldw = transpose_w ? dim : j.vocab;
  for (int64_t c0 = 0; c0 < count; c0 += chunk) {
    const int64_t rows = count - c0 < chunk ? count - c0 : chunk;
    for (int64_t r = 0; r < rows; r++) {
      memcpy(x + r * dim, hidden.data + physical_row(&j, counted[c0 + r]) * dim, sizeof(float) * dim);
      row_max[r] = -INFINITY, row_sum[r] = 0.0f, label_logit[r] = 0.0f;
    }
    if (grad) memset(acc, 0, sizeof(float) * rows * dim);
    TileJob tj = {&j, counted + c0, tile, 0, 0, dim, row_max, row_sum, label_logit, acc};
    for (int64_t v0 = 0; v0 < j.vocab; v0 += width) {
      const int64_t w = j.vocab - v0 < width ? j.vocab - v0 : width;
      /* The tile's columns of W: [dim, w] with row stride V, or rows [w, dim] of W [V, dim]. */
      const float *wt = transpose_w ? weight.data + v0 * dim : weight.data + v0;
      /* logits [rows, w] = x [rows, dim] @ W[:, v0:v0 + w] */
      gemm_product(false, transpose_w, rows, w, dim, 1.0f, x, dim, wt, ldw, 0.0f, tile, w);
      tj.v0 = v0, tj.width = w;
      pool_for(rows, 1, tile_rows, &tj);
      /* acc [rows, dim] += exp(logits - max) [rows, w] @ W[:, v0:v0 + w]^T */
      if (grad) gemm_product(false, !transpose_w, rows, dim, w, 1.0f, tile, w, wt, ldw, 1.0f, acc, dim);
    }
    FinishJob fj = {&tj, weight.data, transpose_w, grad ? dunit.data : NULL};
    pool_for(rows, 4, finish_rows, &fj);
  }
  scratch_free(scratch, sizeof(float) * floats);
  free(counted);
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
