/*
 * adapter_native: BLAS-backed kernels for the engine's `native` backend (src-main/engine/backends/native.ts).
 *
 * All functions are synchronous and work in place on Float32Arrays, which the engine passes as views on the tfjs
 * wasm heap, so nothing is copied. They block the calling thread for the duration of the product; the BLAS itself
 * may use several threads (setThreads/getThreads).
 */
#include <node_api.h>
#include <stdio.h>
#include <string.h>

#include "args.h"
#include "blas.h"
#include "epilogue.h"
#include "gemm.h"
#include "kernels.h"
#include "pool.h"

#if defined(ADAPTER_BLAS_OPENBLAS)
void blas_set_threads(int threads) { openblas_set_num_threads(threads); }
int blas_get_threads(void) { return openblas_get_num_threads(); }
const char *blas_describe(void) {
  static char description[256];
  snprintf(description, sizeof description, "%s", openblas_get_config());
  return description;
}
#elif defined(ADAPTER_BLAS_ACCELERATE)
#include <unistd.h>
static int requested_threads = 0;
void blas_set_threads(int threads) { requested_threads = threads; }
int blas_get_threads(void) {
  return requested_threads > 0 ? requested_threads : (int)sysconf(_SC_NPROCESSORS_ONLN);
}
const char *blas_describe(void) { return "Accelerate (threads managed by macOS)"; }
#endif

/*
 * Threads: the pool (pool.h) runs every kernel and splits large products into blocks (gemm.h), each a
 * single-threaded BLAS call; the BLAS's own threads stay at one so the two never compete for cores and results do
 * not depend on how many threads there are.
 */
static void apply_threads(int threads) {
  pool_set_threads(threads);
  blas_set_threads(1);
}

/* setThreads(n): threads for kernels and products, 1..POOL_MAX_THREADS. */
static napi_value SetThreads(napi_env env, napi_callback_info info) {
  napi_value argv[1];
  int64_t threads;
  if (!args_get(env, info, "setThreads", 1, argv) ||
      !arg_int(env, argv[0], "setThreads", "threads", 1, POOL_MAX_THREADS, &threads)) {
    return NULL;
  }
  apply_threads((int)threads);
  return NULL;
}

static napi_value GetThreads(napi_env env, napi_callback_info info) {
  napi_value result;
  napi_create_int32(env, pool_threads(), &result);
  return result;
}

static napi_value BlasInfo(napi_env env, napi_callback_info info) {
  napi_value result;
  napi_create_string_utf8(env, blas_describe(), NAPI_AUTO_LENGTH, &result);
  return result;
}

/*
 * redirectStderr(path) -> saved fd; restoreStderr(saved): point file descriptor 2 at a log file and back. Native
 * libraries in this process (Dawn probing for a GPU) write warnings straight to fd 2, below anything Node can
 * intercept; the engine sends them to a debug log so that every command's stderr stays the user's.
 */
#if defined(_WIN32)
#include <fcntl.h>
#include <io.h>
#define dup _dup
#define dup2 _dup2
#define close _close
#define open _open
#define O_FLAGS (_O_WRONLY | _O_CREAT | _O_APPEND)
#else
#include <fcntl.h>
#include <unistd.h>
#define O_FLAGS (O_WRONLY | O_CREAT | O_APPEND)
#endif

static napi_value RedirectStderr(napi_env env, napi_callback_info info) {
  napi_value argv[1];
  char path[4096];
  size_t length = 0;
  if (!args_get(env, info, "redirectStderr", 1, argv)) return NULL;
  if (napi_get_value_string_utf8(env, argv[0], path, sizeof path, &length) != napi_ok || length == 0 || length >= sizeof path - 1) {
    napi_throw_type_error(env, NULL, "redirectStderr: path must be a non-empty string shorter than 4096 bytes");
    return NULL;
  }
  fflush(stderr);
  int saved = dup(2);
  int fd = open(path, O_FLAGS, 0644);
  int result = -1;
  if (saved >= 0 && fd >= 0 && dup2(fd, 2) >= 0) result = saved;
  else if (saved >= 0) close(saved);
  if (fd >= 0) close(fd);
  napi_value out;
  napi_create_int32(env, result, &out);
  return out;
}

static napi_value RestoreStderr(napi_env env, napi_callback_info info) {
  napi_value argv[1];
  int64_t saved;
  if (!args_get(env, info, "restoreStderr", 1, argv) || !arg_int(env, argv[0], "restoreStderr", "fd", 0, 1 << 20, &saved)) return NULL;
  fflush(stderr);
  dup2((int)saved, 2);
  close((int)saved);
  return NULL;
}

static void set_function(napi_env env, napi_value exports, const char *name, napi_callback callback) {
  napi_value fn;
  napi_create_function(env, name, NAPI_AUTO_LENGTH, callback, NULL, &fn);
  napi_set_named_property(env, exports, name, fn);
}

static void set_int(napi_env env, napi_value object, const char *name, int value) {
  napi_value number;
  napi_create_int32(env, value, &number);
  napi_set_named_property(env, object, name, number);
}

static napi_value Init(napi_env env, napi_value exports) {
  set_function(env, exports, "sgemm", Sgemm);
  set_function(env, exports, "sgemmStridedBatched", SgemmStridedBatched);
  set_function(env, exports, "biasActivation", BiasActivation);
  set_function(env, exports, "setThreads", SetThreads);
  set_function(env, exports, "redirectStderr", RedirectStderr);
  set_function(env, exports, "restoreStderr", RestoreStderr);
  set_function(env, exports, "getThreads", GetThreads);
  set_function(env, exports, "rmsNorm", RmsNorm);
  set_function(env, exports, "rmsNormBackward", RmsNormBackward);
  set_function(env, exports, "rmsNormWeightGrad", RmsNormWeightGrad);
  set_function(env, exports, "rope", Rope);
  set_function(env, exports, "swiglu", SwiGlu);
  set_function(env, exports, "swigluBackward", SwiGluBackward);
  set_function(env, exports, "crossEntropy", CrossEntropy);
  set_function(env, exports, "crossEntropyBackward", CrossEntropyBackward);
  set_function(env, exports, "lmHeadCrossEntropy", LmHeadCrossEntropy);
  set_function(env, exports, "scaleRows", ScaleRows);
  set_function(env, exports, "attention", Attention);
  set_function(env, exports, "attentionBackward", AttentionBackward);
  apply_threads(pool_default_threads());
  set_function(env, exports, "blasInfo", BlasInfo);

  /* tfjs activation names -> codes for biasActivation, so JavaScript never hard-codes the numbers. */
  napi_value activations;
  napi_create_object(env, &activations);
  set_int(env, activations, "linear", ACT_LINEAR);
  set_int(env, activations, "relu", ACT_RELU);
  set_int(env, activations, "relu6", ACT_RELU6);
  set_int(env, activations, "elu", ACT_ELU);
  set_int(env, activations, "leakyrelu", ACT_LEAKYRELU);
  set_int(env, activations, "prelu", ACT_PRELU);
  set_int(env, activations, "sigmoid", ACT_SIGMOID);
  napi_object_freeze(env, activations);
  napi_set_named_property(env, exports, "activations", activations);
  return exports;
}

NAPI_MODULE(NODE_GYP_MODULE_NAME, Init)
