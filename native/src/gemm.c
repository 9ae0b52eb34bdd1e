/*
 * Single-precision matrix products over Float32Arrays, row-major, with the BLAS conventions of cblas_sgemm:
 *   C = alpha * op(A) @ op(B) + beta * C,   op(X) = X or X^T,   op(A): [M, K], op(B): [K, N], C: [M, N].
 * The batched form repeats that over `batch` matrices spaced `stride*` floats apart; a stride of 0 broadcasts one
 * operand across the batch (what tfjs's BatchMatMul does when one side has batch size 1).
 */
#include "gemm.h"

#include <limits.h>
#include <stdio.h>

#include "args.h"
#include "blas.h"
#include "pool.h"

/* Arguments of one (possibly batched) product, after validation. */
typedef struct {
  bool trans_a, trans_b;
  int64_t m, n, k;
  double alpha, beta;
  F32View a, b, c;
  int64_t lda, ldb, ldc;
  int64_t stride_a, stride_b, stride_c;
  int64_t batch;
} GemmArgs;


/* ---- One product, split into blocks over the pool ---- */

/* Below this many multiply-adds a product is one BLAS call: splitting it costs more than it saves. A single row
 * (decoding) streams its weight from memory, and two threads stream faster than one, so it splits at a smaller
 * size. */
#define PARALLEL_MIN_WORK (1 << 20)
#define PARALLEL_MIN_WORK_ONE_ROW (1 << 16)
/* Blocks per product when the product is large enough to fill them: enough for the pool's threads (up to 16) to
 * balance when the OS delays one of them (a shared machine). */
#define TARGET_BLOCKS 16

typedef struct {
  bool ta, tb;
  int64_t m, n, k;
  float alpha, beta;
  const float *a, *b;
  float *c;
  int64_t lda, ldb, ldc;
  int64_t block; /* rows or columns of C per block */
  bool split_rows; /* split M (rows of C) rather than N */
} Split;

static void blas_gemm(bool ta, bool tb, int64_t m, int64_t n, int64_t k, float alpha, const float *a, int64_t lda,
                      const float *b, int64_t ldb, float beta, float *c, int64_t ldc) {
  if (m == 1 && !ta) {
    /* One row (decoding): a matrix-vector product streams B once instead of packing it. c = alpha a op(B) + beta c,
     * as op(B)^T a^T: B [k, n] row-major read transposed, or B^T stored [n, k] read as is. */
    cblas_sgemv(CblasRowMajor, tb ? CblasNoTrans : CblasTrans, (int)(tb ? n : k), (int)(tb ? k : n), alpha, b, (int)ldb,
                a, 1, beta, c, 1);
    return;
  }
  cblas_sgemm(CblasRowMajor, ta ? CblasTrans : CblasNoTrans, tb ? CblasTrans : CblasNoTrans, (int)m, (int)n, (int)k,
              alpha, a, (int)lda, b, (int)ldb, beta, c, (int)ldc);
}

static void split_part(void *ctx, int64_t begin, int64_t end, int worker) {
  (void)worker;
  const Split *s = ctx;
  for (int64_t part = begin; part < end; part++) {
    const int64_t side = s->split_rows ? s->m : s->n;
    const int64_t i0 = part * s->block, i1 = i0 + s->block < side ? i0 + s->block : side;
    if (i0 >= i1) continue;
    if (s->split_rows) {
      const float *a = s->ta ? s->a + i0 : s->a + i0 * s->lda;
      blas_gemm(s->ta, s->tb, i1 - i0, s->n, s->k, s->alpha, a, s->lda, s->b, s->ldb, s->beta, s->c + i0 * s->ldc,
                s->ldc);
    } else {
      const float *b = s->tb ? s->b + i0 * s->ldb : s->b + i0;
      blas_gemm(s->ta, s->tb, s->m, i1 - i0, s->k, s->alpha, s->a, s->lda, b, s->ldb, s->beta, s->c + i0, s->ldc);
    }
  }
}

/* `side` cut into about TARGET_BLOCKS blocks of at least `min_block`, in multiples of `multiple`. */
static int64_t block_size(int64_t side, int64_t min_block, int64_t multiple) {
  int64_t block = (side + TARGET_BLOCKS - 1) / TARGET_BLOCKS;
  if (block < min_block) block = min_block;
  return (block + multiple - 1) / multiple * multiple;
}

void gemm_product(bool ta, bool tb, int64_t m, int64_t n, int64_t k, float alpha, const float *a, int64_t lda,
                  const float *b, int64_t ldb, float beta, float *c, int64_t ldc) {
  /* The blocks depend on the problem only, never on the thread count: BLAS kernels round a block's edge rows and
   * columns differently from its interior, so a thread-dependent split would make results (and resumed runs)
   * depend on the threads. Each block is one single-threaded BLAS call; the pool hands blocks to threads as they
   * come free, and one thread runs the same blocks in order. */
  const int64_t min_work = m == 1 ? PARALLEL_MIN_WORK_ONE_ROW : PARALLEL_MIN_WORK;
  if (m * n * k < min_work) {
    blas_gemm(ta, tb, m, n, k, alpha, a, lda, b, ldb, beta, c, ldc);
    return;
  }
  /* Split the longer side of C (the columns for a single row). Every block packs the other operand again, so
   * blocks stay at least 256 columns or 64 rows wide (256 rows when that operand, B, is large), in whole register
   * blocks (multiples of 16 columns or 8 rows). */
  const bool split_rows = m >= 2 * n && m >= 128;
  const int64_t block = split_rows ? block_size(m, k * n > ((int64_t)2 << 20) ? 256 : 64, 8)
                                   : block_size(n, m == 1 ? 1024 : 256, 16);
  const int64_t side = split_rows ? m : n;
  Split s = {ta, tb, m, n, k, alpha, beta, a, b, c, lda, ldb, ldc, block, split_rows};
  pool_for((side + block - 1) / block, 1, split_part, &s);
}

static bool check_operand(napi_env env, const char *fn, const char *name, F32View view, int64_t rows, int64_t cols,
                          int64_t ld, int64_t stride, int64_t batch) {
  char message[256];
  int64_t min_ld = cols > 1 ? cols : 1;
  if (ld < min_ld) {
    snprintf(message, sizeof message, "leading dimension of %s is %lld but its rows hold %lld values", name,
             (long long)ld, (long long)cols);
    return throw_range(env, fn, message);
  }
  int64_t one = matrix_extent(rows, cols, ld);
  if (one == 0 || batch == 0) return true;
  int64_t needed = (batch - 1) * stride + one;
  if (needed > view.length) {
    snprintf(message, sizeof message, "%s needs %lld floats (%lld x %lld, ld %lld, stride %lld, batch %lld) but has %lld",
             name, (long long)needed, (long long)rows, (long long)cols, (long long)ld, (long long)stride,
             (long long)batch, (long long)view.length);
    return throw_range(env, fn, message);
  }
  return true;
}

static bool validate(napi_env env, const char *fn, const GemmArgs *g) {
  int64_t rows_a = g->trans_a ? g->k : g->m, cols_a = g->trans_a ? g->m : g->k;
  int64_t rows_b = g->trans_b ? g->n : g->k, cols_b = g->trans_b ? g->k : g->n;
  if (!check_operand(env, fn, "A", g->a, rows_a, cols_a, g->lda, g->stride_a, g->batch)) return false;
  if (!check_operand(env, fn, "B", g->b, rows_b, cols_b, g->ldb, g->stride_b, g->batch)) return false;
  if (!check_operand(env, fn, "C", g->c, g->m, g->n, g->ldc, g->stride_c, g->batch)) return false;
  int64_t c_one = matrix_extent(g->m, g->n, g->ldc);
  if (g->batch > 1 && c_one > 0 && g->stride_c < c_one) {
    return throw_range(env, fn, "strideC is smaller than one C matrix: batch outputs would overwrite each other");
  }
  /* The extents actually touched; outputs that alias inputs would be read after being written. */
  int64_t c_len = g->batch == 0 ? 0 : (g->batch - 1) * g->stride_c + c_one;
  int64_t a_len = g->batch == 0 ? 0 : (g->batch - 1) * g->stride_a + matrix_extent(rows_a, cols_a, g->lda);
  int64_t b_len = g->batch == 0 ? 0 : (g->batch - 1) * g->stride_b + matrix_extent(rows_b, cols_b, g->ldb);
  if (ranges_overlap(g->c.data, c_len, g->a.data, a_len) || ranges_overlap(g->c.data, c_len, g->b.data, b_len)) {
    return throw_range(env, fn, "C overlaps A or B");
  }
  return true;
}

static void run(const GemmArgs *g) {
  if (g->m == 0 || g->n == 0) return;
  for (int64_t i = 0; i < g->batch; i++) {
    float *c = g->c.data + i * g->stride_c;
    if (g->k == 0) {
      /* Nothing to multiply: C = beta * C. Done here because BLAS libraries disagree on k == 0. */
      for (int64_t r = 0; r < g->m; r++) {
        float *row = c + r * g->ldc;
        for (int64_t j = 0; j < g->n; j++) row[j] = g->beta == 0 ? 0.0f : (float)(g->beta * row[j]);
      }
      continue;
    }
    gemm_product(g->trans_a, g->trans_b, g->m, g->n, g->k, (float)g->alpha, g->a.data + i * g->stride_a, g->lda,
                 g->b.data + i * g->stride_b, g->ldb, (float)g->beta, c, g->ldc);
  }
}

/* Reads transA, transB, M, N, K, alpha: the first six arguments of both entry points. */
static bool read_shape(napi_env env, const char *fn, napi_value *argv, GemmArgs *g) {
  return arg_bool(env, argv[0], fn, "transA", &g->trans_a) && arg_bool(env, argv[1], fn, "transB", &g->trans_b) &&
         arg_int(env, argv[2], fn, "M", 0, INT_MAX, &g->m) && arg_int(env, argv[3], fn, "N", 0, INT_MAX, &g->n) &&
         arg_int(env, argv[4], fn, "K", 0, INT_MAX, &g->k) && arg_float(env, argv[5], fn, "alpha", &g->alpha);
}

/* sgemm(transA, transB, M, N, K, alpha, A, lda, B, ldb, beta, C, ldc) */
napi_value Sgemm(napi_env env, napi_callback_info info) {
  const char *fn = "sgemm";
  napi_value argv[13];
  GemmArgs g = {0};
  g.batch = 1;
  if (!args_get(env, info, fn, 13, argv) || !read_shape(env, fn, argv, &g) ||
      !arg_f32(env, argv[6], fn, "A", false, &g.a) || !arg_int(env, argv[7], fn, "lda", 1, INT_MAX, &g.lda) ||
      !arg_f32(env, argv[8], fn, "B", false, &g.b) || !arg_int(env, argv[9], fn, "ldb", 1, INT_MAX, &g.ldb) ||
      !arg_float(env, argv[10], fn, "beta", &g.beta) || !arg_f32(env, argv[11], fn, "C", false, &g.c) ||
      !arg_int(env, argv[12], fn, "ldc", 1, INT_MAX, &g.ldc) || !validate(env, fn, &g)) {
    return NULL;
  }
  run(&g);
  return NULL;
}

/* sgemmStridedBatched(transA, transB, M, N, K, alpha, A, lda, strideA, B, ldb, strideB, beta, C, ldc, strideC,
 *                     batch) */
napi_value SgemmStridedBatched(napi_env env, napi_callback_info info) {
  const char *fn = "sgemmStridedBatched";
  const int64_t max_stride = (int64_t)1 << 50;
  napi_value argv[17];
  GemmArgs g = {0};
  if (!args_get(env, info, fn, 17, argv) || !read_shape(env, fn, argv, &g) ||
      !arg_f32(env, argv[6], fn, "A", false, &g.a) || !arg_int(env, argv[7], fn, "lda", 1, INT_MAX, &g.lda) ||
      !arg_int(env, argv[8], fn, "strideA", 0, max_stride, &g.stride_a) ||
      !arg_f32(env, argv[9], fn, "B", false, &g.b) || !arg_int(env, argv[10], fn, "ldb", 1, INT_MAX, &g.ldb) ||
      !arg_int(env, argv[11], fn, "strideB", 0, max_stride, &g.stride_b) ||
      !arg_float(env, argv[12], fn, "beta", &g.beta) || !arg_f32(env, argv[13], fn, "C", false, &g.c) ||
      !arg_int(env, argv[14], fn, "ldc", 1, INT_MAX, &g.ldc) ||
      !arg_int(env, argv[15], fn, "strideC", 0, max_stride, &g.stride_c) ||
      !arg_int(env, argv[16], fn, "batch", 0, INT_MAX, &g.batch) || !validate(env, fn, &g)) {
    return NULL;
  }
  run(&g);
  return NULL;
}
