/*
 * Causal self-attention with LLaMA-Adapter's gated prompt attention, forward and backward, in the layout the
 * projections produce, so no transposes are ever made:
 *   q [B, T, H * hd],  k, v [B, S, Hkv * hd],  out [B, T, H * hd]   (query head h reads kv head h / (H / Hkv))
 *   prompt keys/values kp, vp [Bp, K, Hkv * hd] with Bp = 1 (shared by the batch) or B; gate [G].
 * Query row i sits at position past + i and sees keys 0 .. past + i (S = past + T when decoding from a cache).
 *
 *   P   = softmax_causal(scale * q k^T)            lse[b, h, i]  = log of P's normaliser
 *   Pp  = softmax(scale * q kp^T)   (no mask)      lseP[b, h, i] = log of Pp's normaliser
 *   out = P v + g_h * Pp vp,   g_h = tanh(gate[h]) | gate[h] | gate[0]   (per-head-tanh | per-head | per-layer)
 *
 * Backward recomputes P and Pp from q, k and the saved log-normalisers (nothing of size T x S is kept between
 * forward and backward), FlashAttention-style:
 *   dP = dO v^T,  dS = P * (dP - rowsum(P * dP)),  dq = scale dS k,  dk = scale dS^T q,  dv = P^T dO
 *   and the same for the prompt with dO scaled by g_h; dg_h = sum(dO * (Pp vp)), through tanh when the mode has it.
 *
 * Work is split over (batch, head) in the forward and over (batch, kv head) in the backward, so each task owns the
 * rows of dk / dv it accumulates; query rows go in blocks of QUERY_BLOCK, and a causal block multiplies only the
 * keys its last row can see. Products are single-threaded BLAS calls inside the pool's tasks.
 */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "args.h"
#include "blas.h"
#include "fastmath.h"
#include "kernels.h"
#include "pool.h"

#define QUERY_BLOCK 64

enum { GATE_NONE = 0, GATE_PER_HEAD_TANH = 1, GATE_PER_HEAD = 2, GATE_PER_LAYER = 3 };

typedef struct {
  int64_t B, T, S, H, Hkv, hd, past, K, Bp;
  int gate_mode;
  bool causal;
  float scale;
  /* forward */
  const float *q, *k, *v, *kp, *vp, *gate;
  float *out, *lse, *lse_p;
  /* backward */
  const float *dout, *lse_in, *lse_p_in;
  float *dq, *dk, *dv;
  float *dkp_part, *dvp_part; /* [B, Hkv, K, hd] */
  float *dg_part;             /* [B, H] gradient with respect to g_h */
} AttnJob;

static inline float gate_value(const AttnJob *j, int64_t h) {
  switch (j->gate_mode) {
    case GATE_PER_HEAD_TANH: return tanhf(j->gate[h]);
    case GATE_PER_HEAD: return j->gate[h];
    case GATE_PER_LAYER: return j->gate[0];
    default: return 0.0f;
  }
}

/* Keys query row i may read: 0 .. limit - 1. */
static inline int64_t visible_keys(const AttnJob *j, int64_t i) {
  if (!j->causal) return j->S;
  int64_t limit = j->past + i + 1;
  return limit < j->S ? limit : j->S;
}

static void gemm(bool ta, bool tb, int64_t m, int64_t n, int64_t k, float alpha, const float *a, int64_t lda,
                 const float *b, int64_t ldb, float beta, float *c, int64_t ldc) {
  cblas_sgemm(CblasRowMajor, ta ? CblasTrans : CblasNoTrans, tb ? CblasTrans : CblasNoTrans, (int)m, (int)n, (int)k,
              alpha, a, (int)lda, b, (int)ldb, beta, c, (int)ldc);
}

/* In place over rows [rows, cols] of `s` (row length ld): s = exp(s - max) / sum over the first limit(i) entries,
 * 0 beyond; writes log-normalisers. `first_row` is the block's first query row (for the causal limit). */
static void softmax_rows(const AttnJob *j, float *s, int64_t rows, int64_t cols, int64_t ld, int64_t first_row,
                         bool causal, float *lse_out) {
  for (int64_t r = 0; r < rows; r++) {
    float *row = s + r * ld;
    const int64_t limit = causal ? visible_keys(j, first_row + r) : cols;
    float max = -INFINITY;
#pragma omp simd reduction(max : max)
    for (int64_t c = 0; c < limit; c++) max = row[c] > max ? row[c] : max;
    float sum = 0.0f;
#pragma omp simd reduction(+ : sum)
    for (int64_t c = 0; c < limit; c++) {
      row[c] = fast_expf(row[c] - max);
      sum += row[c];
    }
    const float inv = 1.0f / sum;
#pragma omp simd
    for (int64_t c = 0; c < limit; c++) row[c] *= inv;
    for (int64_t c = limit; c < cols; c++) row[c] = 0.0f;
    lse_out[r] = max + logf(sum);
  }
}

/* P recomputed from scores (already scaled) and saved log-normalisers. */
static void probabilities_rows(const AttnJob *j, float *s, int64_t rows, int64_t cols, int64_t ld, int64_t first_row,
                               bool causal, const float *lse) {
  for (int64_t r = 0; r < rows; r++) {
    float *row = s + r * ld;
    const int64_t limit = causal ? visible_keys(j, first_row + r) : cols;
    const float l = lse[r];
#pragma omp simd
    for (int64_t c = 0; c < limit; c++) row[c] = fast_expf(row[c] - l);
    for (int64_t c = limit; c < cols; c++) row[c] = 0.0f;
  }
}

/* dP <- P * (dP - rowsum(P * dP)), in place over dp. */
static void softmax_backward_rows(const float *p, float *dp, int64_t rows, int64_t cols, int64_t ld) {
  for (int64_t r = 0; r < rows; r++) {
    const float *pr = p + r * ld;
    float *dr = dp + r * ld;
    float dot = 0.0f;
#pragma omp simd reduction(+ : dot)
    for (int64_t c = 0; c < cols; c++) dot += pr[c] * dr[c];
#pragma omp simd
    for (int64_t c = 0; c < cols; c++) dr[c] = pr[c] * (dr[c] - dot);
  }
}

static void forward_heads(void *ctx, int64_t begin, int64_t end, int worker) {
  const AttnJob *j = ctx;
  const int64_t ldq = j->H * j->hd, ldkv = j->Hkv * j->hd, rep = j->H / j->Hkv;
  const int64_t block = j->T < QUERY_BLOCK ? j->T : QUERY_BLOCK;
  float *scores = malloc(sizeof(float) * block * (j->S > j->K ? j->S : j->K));
  if (scores == NULL) abort();
  for (int64_t task = begin; task < end; task++) {
    const int64_t b = task / j->H, h = task % j->H, kvh = h / rep;
    const float *q = j->q + b * j->T * ldq + h * j->hd;
    const float *k = j->k + b * j->S * ldkv + kvh * j->hd, *v = j->v + b * j->S * ldkv + kvh * j->hd;
    float *out = j->out + b * j->T * ldq + h * j->hd;
    float *lse = j->lse + (b * j->H + h) * j->T;
    for (int64_t i0 = 0; i0 < j->T; i0 += block) {
      const int64_t rows = j->T - i0 < block ? j->T - i0 : block;
      const int64_t keys = visible_keys(j, i0 + rows - 1);
      gemm(false, true, rows, keys, j->hd, j->scale, q + i0 * ldq, ldq, k, ldkv, 0.0f, scores, keys);
      softmax_rows(j, scores, rows, keys, keys, i0, j->causal, lse + i0);
      gemm(false, false, rows, j->hd, keys, 1.0f, scores, keys, v, ldkv, 0.0f, out + i0 * ldq, ldq);
      if (j->kp == NULL) continue;
      const int64_t pb = j->Bp == 1 ? 0 : b;
      const float *kp = j->kp + pb * j->K * ldkv + kvh * j->hd, *vp = j->vp + pb * j->K * ldkv + kvh * j->hd;
      gemm(false, true, rows, j->K, j->hd, j->scale, q + i0 * ldq, ldq, kp, ldkv, 0.0f, scores, j->K);
      softmax_rows(j, scores, rows, j->K, j->K, i0, false, j->lse_p + (b * j->H + h) * j->T + i0);
      gemm(false, false, rows, j->hd, j->K, gate_value(j, h), scores, j->K, vp, ldkv, 1.0f, out + i0 * ldq, ldq);
    }
  }
  free(scores);
}

static void zero_rows(float *x, int64_t rows, int64_t cols, int64_t ld) {
  for (int64_t r = 0; r < rows; r++) memset(x + r * ld, 0, sizeof(float) * cols);
}

static void backward_groups(void *ctx, int64_t begin, int64_t end, int worker) {
  const AttnJob *j = ctx;
  const int64_t ldq = j->H * j->hd, ldkv = j->Hkv * j->hd, rep = j->H / j->Hkv;
  const int64_t block = j->T < QUERY_BLOCK ? j->T : QUERY_BLOCK;
  const int64_t width = j->S > j->K ? j->S : j->K;
  float *p = malloc(sizeof(float) * block * width);
  float *dp = malloc(sizeof(float) * block * width);
  float *opp = malloc(sizeof(float) * block * j->hd);
  if (p == NULL || dp == NULL || opp == NULL) abort();
  for (int64_t task = begin; task < end; task++) {
    const int64_t b = task / j->Hkv, kvh = task % j->Hkv;
    const float *k = j->k + b * j->S * ldkv + kvh * j->hd, *v = j->v + b * j->S * ldkv + kvh * j->hd;
    float *dk = j->dk + b * j->S * ldkv + kvh * j->hd, *dv = j->dv + b * j->S * ldkv + kvh * j->hd;
    zero_rows(dk, j->S, j->hd, ldkv);
    zero_rows(dv, j->S, j->hd, ldkv);
    const int64_t pb = j->Bp == 1 ? 0 : b;
    const float *kp = j->kp == NULL ? NULL : j->kp + pb * j->K * ldkv + kvh * j->hd;
    const float *vp = j->vp == NULL ? NULL : j->vp + pb * j->K * ldkv + kvh * j->hd;
    float *dkp = j->kp == NULL ? NULL : j->dkp_part + task * j->K * j->hd;
    float *dvp = j->kp == NULL ? NULL : j->dvp_part + task * j->K * j->hd;
    if (dkp != NULL) {
      memset(dkp, 0, sizeof(float) * j->K * j->hd);
      memset(dvp, 0, sizeof(float) * j->K * j->hd);
    }
    for (int64_t h = kvh * rep; h < (kvh + 1) * rep; h++) {
      const float *q = j->q + b * j->T * ldq + h * j->hd, *dout = j->dout + b * j->T * ldq + h * j->hd;
      float *dq = j->dq + b * j->T * ldq + h * j->hd;
      const float *lse = j->lse_in + (b * j->H + h) * j->T;
      const float g = gate_value(j, h);
      float dg = 0.0f;
      for (int64_t i0 = 0; i0 < j->T; i0 += block) {
        const int64_t rows = j->T - i0 < block ? j->T - i0 : block;
        const int64_t keys = visible_keys(j, i0 + rows - 1);
        const float *qb = q + i0 * ldq, *dob = dout + i0 * ldq;
        gemm(false, true, rows, keys, j->hd, j->scale, qb, ldq, k, ldkv, 0.0f, p, keys);
        probabilities_rows(j, p, rows, keys, keys, i0, j->causal, lse + i0);
        gemm(false, true, rows, keys, j->hd, 1.0f, dob, ldq, v, ldkv, 0.0f, dp, keys);
        softmax_backward_rows(p, dp, rows, keys, keys);
        gemm(false, false, rows, j->hd, keys, j->scale, dp, keys, k, ldkv, 0.0f, dq + i0 * ldq, ldq);
        gemm(true, false, keys, j->hd, rows, j->scale, dp, keys, qb, ldq, 1.0f, dk, ldkv);
        gemm(true, false, keys, j->hd, rows, 1.0f, p, keys, dob, ldq, 1.0f, dv, ldkv);
        if (kp == NULL) continue;
        const float *lse_p = j->lse_p_in + (b * j->H + h) * j->T + i0;
        gemm(false, true, rows, j->K, j->hd, j->scale, qb, ldq, kp, ldkv, 0.0f, p, j->K);
        probabilities_rows(j, p, rows, j->K, j->K, i0, false, lse_p);
        /* dg_h = sum(dO * (Pp vp)) */
        gemm(false, false, rows, j->hd, j->K, 1.0f, p, j->K, vp, ldkv, 0.0f, opp, j->hd);
        for (int64_t r = 0; r < rows; r++) {
          const float *o = opp + r * j->hd, *d = dob + r * ldq;
          float sum = 0.0f;
#pragma omp simd reduction(+ : sum)
          for (int64_t c = 0; c < j->hd; c++) sum += o[c] * d[c];
          dg += sum;
        }
        gemm(false, true, rows, j->K, j->hd, g, dob, ldq, vp, ldkv, 0.0f, dp, j->K);
        softmax_backward_rows(p, dp, rows, j->K, j->K);
        gemm(false, false, rows, j->hd, j->K, j->scale, dp, j->K, kp, ldkv, 1.0f, dq + i0 * ldq, ldq);
        gemm(true, false, j->K, j->hd, rows, j->scale, dp, j->K, qb, ldq, 1.0f, dkp, j->hd);
        gemm(true, false, j->K, j->hd, rows, g, p, j->K, dob, ldq, 1.0f, dvp, j->hd);
      }
      if (j->dg_part != NULL) j->dg_part[b * j->H + h] = dg;
    }
  }
  free(p);
  free(dp);
  free(opp);
}

/* Holds BLAS at one thread while pool tasks call it, so its threads and ours never compete for the cores. */
static int blas_single_begin(void) {
  int before = blas_get_threads();
  if (before != 1) blas_set_threads(1);
  return before;
}
static void blas_single_end(int before) {
  if (before != 1) blas_set_threads(before);
}

/* Reads dims = [B, T, S, H, Hkv, hd, past, K, Bp, gateMode, causal] and checks them. */
static bool read_dims(napi_env env, const char *fn, napi_value array, AttnJob *j) {
  int64_t values[11];
  const char *names[11] = {"B", "T", "S", "H", "Hkv", "hd", "past", "K", "Bp", "gateMode", "causal"};
  bool is_array = false;
  uint32_t length = 0;
  napi_is_array(env, array, &is_array);
  if (!is_array || napi_get_array_length(env, array, &length) != napi_ok || length != 11) {
    return throw_range(env, fn, "dims must be [B, T, S, H, Hkv, hd, past, K, Bp, gateMode, causal]");
  }
  for (uint32_t i = 0; i < 11; i++) {
    napi_value item;
    napi_get_element(env, array, i, &item);
    if (!arg_int(env, item, fn, names[i], 0, INT32_MAX, &values[i])) return false;
  }
  j->B = values[0], j->T = values[1], j->S = values[2], j->H = values[3], j->Hkv = values[4], j->hd = values[5];
  j->past = values[6], j->K = values[7], j->Bp = values[8], j->gate_mode = (int)values[9], j->causal = values[10] != 0;
  if (j->H == 0 || j->Hkv == 0 || j->hd == 0 || j->H % j->Hkv != 0) {
    return throw_range(env, fn, "heads must be positive and H a multiple of Hkv");
  }
  if (j->gate_mode > GATE_PER_LAYER) return throw_range(env, fn, "gateMode must be 0..3");
  if (j->causal && j->T > 0 && j->past + j->T > j->S) return throw_range(env, fn, "past + T exceeds the keys S");
  if (j->K > 0 && j->Bp != 1 && j->Bp != j->B) return throw_range(env, fn, "Bp must be 1 or B");
  if ((j->K > 0) != (j->gate_mode != GATE_NONE)) return throw_range(env, fn, "a prompt (K > 0) needs a gate mode, and only then");
  return true;
}

static bool check_sizes(napi_env env, const char *fn, const AttnJob *j, F32View q, F32View k, F32View v, F32View kp,
                        F32View vp, F32View gate) {
  const int64_t qs = j->B * j->T * j->H * j->hd, kvs = j->B * j->S * j->Hkv * j->hd;
  if (!arg_f32_min(env, fn, "q", q, qs) || !arg_f32_min(env, fn, "k", k, kvs) || !arg_f32_min(env, fn, "v", v, kvs)) {
    return false;
  }
  if (j->K == 0) return true;
  const int64_t ps = j->Bp * j->K * j->Hkv * j->hd;
  const int64_t gs = j->gate_mode == GATE_PER_LAYER ? 1 : j->H;
  if (kp.data == NULL || vp.data == NULL || gate.data == NULL) return throw_range(env, fn, "the prompt needs kp, vp and gate");
  return arg_f32_min(env, fn, "kp", kp, ps) && arg_f32_min(env, fn, "vp", vp, ps) && arg_f32_min(env, fn, "gate", gate, gs);
}

/* Below this much work (multiply-adds) a call runs on the calling thread: decoding one token, tiny tests. */
static int64_t grain_for(const AttnJob *j, int64_t tasks) {
  const int64_t work = j->B * j->H * j->T * (j->S + j->K) * j->hd;
  return work < (1 << 18) ? tasks : 1;
}

/* attention(q, k, v, kp | null, vp | null, gate | null, dims, scale, out, lse, lseP | null) */
napi_value Attention(napi_env env, napi_callback_info info) {
  const char *fn = "attention";
  napi_value argv[11];
  AttnJob j = {0};
  F32View q, k, v, kp, vp, gate, out, lse, lse_p;
  double scale;
  if (!args_get(env, info, fn, 11, argv) || !arg_f32(env, argv[0], fn, "q", false, &q) ||
      !arg_f32(env, argv[1], fn, "k", false, &k) || !arg_f32(env, argv[2], fn, "v", false, &v) ||
      !arg_f32(env, argv[3], fn, "kp", true, &kp) || !arg_f32(env, argv[4], fn, "vp", true, &vp) ||
      !arg_f32(env, argv[5], fn, "gate", true, &gate) || !read_dims(env, fn, argv[6], &j) ||
      !arg_float(env, argv[7], fn, "scale", &scale) || !arg_f32(env, argv[8], fn, "out", false, &out) ||
      !arg_f32(env, argv[9], fn, "lse", false, &lse) || !arg_f32(env, argv[10], fn, "lseP", true, &lse_p) ||
      !check_sizes(env, fn, &j, q, k, v, kp, vp, gate) ||
      !arg_f32_min(env, fn, "out", out, j.B * j.T * j.H * j.hd) || !arg_f32_min(env, fn, "lse", lse, j.B * j.H * j.T) ||
      (j.K > 0 && !arg_f32_min(env, fn, "lseP", lse_p, j.B * j.H * j.T))) {
    return NULL;
  }
  j.q = q.data, j.k = k.data, j.v = v.data, j.kp = j.K > 0 ? kp.data : NULL, j.vp = j.K > 0 ? vp.data : NULL;
  j.gate = gate.data, j.out = out.data, j.lse = lse.data, j.lse_p = lse_p.data, j.scale = (float)scale;
  if (j.T == 0) return NULL;
  int before = blas_single_begin();
  pool_for(j.B * j.H, grain_for(&j, j.B * j.H), forward_heads, &j);
  blas_single_end(before);
  return NULL;
}

/*
 * attentionBackward(dout, q, k, v, kp | null, vp | null, gate | null, lse, lseP | null, dims, scale,
 *                   dq, dk, dv, dkp | null, dvp | null, dgate | null)
 * dkp / dvp have kp's shape [Bp, K, Hkv * hd] and dgate the gate's; all outputs are overwritten.
 */
napi_value AttentionBackward(napi_env env, napi_callback_info info) {
  const char *fn = "attentionBackward";
  napi_value argv[17];
  AttnJob j = {0};
  F32View dout, q, k, v, kp, vp, gate, lse, lse_p, dq, dk, dv, dkp, dvp, dgate;
  double scale;
  if (!args_get(env, info, fn, 17, argv) || !arg_f32(env, argv[0], fn, "dout", false, &dout) ||
      !arg_f32(env, argv[1], fn, "q", false, &q) || !arg_f32(env, argv[2], fn, "k", false, &k) ||
      !arg_f32(env, argv[3], fn, "v", false, &v) || !arg_f32(env, argv[4], fn, "kp", true, &kp) ||
      !arg_f32(env, argv[5], fn, "vp", true, &vp) || !arg_f32(env, argv[6], fn, "gate", true, &gate) ||
      !arg_f32(env, argv[7], fn, "lse", false, &lse) || !arg_f32(env, argv[8], fn, "lseP", true, &lse_p) ||
      !read_dims(env, fn, argv[9], &j) || !arg_float(env, argv[10], fn, "scale", &scale) ||
      !arg_f32(env, argv[11], fn, "dq", false, &dq) || !arg_f32(env, argv[12], fn, "dk", false, &dk) ||
      !arg_f32(env, argv[13], fn, "dv", false, &dv) || !arg_f32(env, argv[14], fn, "dkp", true, &dkp) ||
      !arg_f32(env, argv[15], fn, "dvp", true, &dvp) || !arg_f32(env, argv[16], fn, "dgate", true, &dgate) ||
      !check_sizes(env, fn, &j, q, k, v, kp, vp, gate)) {
    return NULL;
  }
  const int64_t qs = j.B * j.T * j.H * j.hd, kvs = j.B * j.S * j.Hkv * j.hd;
  const int64_t ps = j.Bp * j.K * j.Hkv * j.hd, gs = j.gate_mode == GATE_PER_LAYER ? 1 : j.H;
  if (!arg_f32_min(env, fn, "dout", dout, qs) || !arg_f32_min(env, fn, "lse", lse, j.B * j.H * j.T) ||
      !arg_f32_min(env, fn, "dq", dq, qs) || !arg_f32_min(env, fn, "dk", dk, kvs) || !arg_f32_min(env, fn, "dv", dv, kvs)) {
    return NULL;
  }
  if (j.K > 0 && (!arg_f32_min(env, fn, "lseP", lse_p, j.B * j.H * j.T) || !arg_f32_min(env, fn, "dkp", dkp, ps) ||
                  !arg_f32_min(env, fn, "dvp", dvp, ps) || !arg_f32_min(env, fn, "dgate", dgate, gs))) {
    return NULL;
  }
  j.dout = dout.data, j.q = q.data, j.k = k.data, j.v = v.data, j.lse_in = lse.data, j.scale = (float)scale;
  j.dq = dq.data, j.dk = dk.data, j.dv = dv.data;
  const int64_t tasks = j.B * j.Hkv, part = j.K * j.hd;
  float *parts = NULL;
  if (j.K > 0) {
    j.kp = kp.data, j.vp = vp.data, j.gate = gate.data, j.lse_p_in = lse_p.data;
    parts = calloc((size_t)(2 * tasks * part + j.B * j.H), sizeof(float));
    if (parts == NULL) {
      throw_range(env, fn, "out of memory for the prompt's partial gradients");
      return NULL;
    }
    j.dkp_part = parts, j.dvp_part = parts + tasks * part, j.dg_part = parts + 2 * tasks * part;
  }
  if (j.T > 0) {
    int before = blas_single_begin();
    pool_for(tasks, grain_for(&j, tasks), backward_groups, &j);
    blas_single_end(before);
  } else {
    memset(dk.data, 0, sizeof(float) * kvs);
    memset(dv.data, 0, sizeof(float) * kvs);
  }
  if (j.K > 0) {
    /* Partials [B, Hkv, K, hd] -> [Bp, K, Hkv * hd], summing over the batch when the prompt is shared. */
    memset(dkp.data, 0, sizeof(float) * ps);
    memset(dvp.data, 0, sizeof(float) * ps);
    for (int64_t b = 0; b < j.B; b++) {
      const int64_t pb = j.Bp == 1 ? 0 : b;
      for (int64_t kvh = 0; kvh < j.Hkv; kvh++) {
        const float *sk = j.dkp_part + (b * j.Hkv + kvh) * part, *sv = j.dvp_part + (b * j.Hkv + kvh) * part;
        for (int64_t t = 0; t < j.K; t++) {
          float *tk = dkp.data + (pb * j.K + t) * j.Hkv * j.hd + kvh * j.hd;
          float *tv = dvp.data + (pb * j.K + t) * j.Hkv * j.hd + kvh * j.hd;
          for (int64_t c = 0; c < j.hd; c++) {
            tk[c] += sk[t * j.hd + c];
            tv[c] += sv[t * j.hd + c];
          }
        }
      }
    }
    /* d gate from d g_h: summed over the batch (and heads for per-layer), through tanh when the mode has it. */
    for (int64_t i = 0; i < gs; i++) dgate.data[i] = 0.0f;
    for (int64_t b = 0; b < j.B; b++) {
      for (int64_t h = 0; h < j.H; h++) {
        const float dg = j.dg_part[b * j.H + h];
        if (j.gate_mode == GATE_PER_LAYER) {
          dgate.data[0] += dg;
        } else if (j.gate_mode == GATE_PER_HEAD) {
          dgate.data[h] += dg;
        } else {
          const float t = tanhf(j.gate[h]);
          dgate.data[h] += dg * (1.0f - t * t);
        }
      }
    }
    free(parts);
  }
  return NULL;
}
