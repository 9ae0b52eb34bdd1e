/*
 * Argument checking shared by the addon's functions.
 *
 * Every exported function validates its arguments and throws a JavaScript error naming the function and the
 * argument; nothing reads or writes memory outside the Float32Arrays it was given. The arrays are normally views on
 * the tfjs wasm heap, so a bad index would corrupt other tensors silently: the bounds checks are not optional.
 */
#ifndef ADAPTER_NATIVE_ARGS_H
#define ADAPTER_NATIVE_ARGS_H

#include <node_api.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* A Float32Array's data: `data` already includes the view's byte offset. */
typedef struct {
  float *data;
  int64_t length;
} F32View;

/* Reads exactly `expected` arguments into argv; throws (returns false) on a different count. */
bool args_get(napi_env env, napi_callback_info info, const char *fn, size_t expected, napi_value *argv);

bool arg_bool(napi_env env, napi_value value, const char *fn, const char *name, bool *out);
/* A finite integer in [min, max]. */
bool arg_int(napi_env env, napi_value value, const char *fn, const char *name, int64_t min, int64_t max,
             int64_t *out);
bool arg_float(napi_env env, napi_value value, const char *fn, const char *name, double *out);
/* A Float32Array; when `optional`, null/undefined give {NULL, 0}. */
bool arg_f32(napi_env env, napi_value value, const char *fn, const char *name, bool optional, F32View *out);

/* An Int32Array's data (token ids). */
typedef struct {
  int32_t *data;
  int64_t length;
} I32View;

bool arg_i32(napi_env env, napi_value value, const char *fn, const char *name, I32View *out);
/* Checks that `view` holds at least `needed` floats; throws naming the argument otherwise. */
bool arg_f32_min(napi_env env, const char *fn, const char *name, F32View view, int64_t needed);

/* Throws a RangeError "<fn>: <message>" and returns false. */
bool throw_range(napi_env env, const char *fn, const char *message);

/* Elements a row-major matrix of `rows` x `cols` with leading dimension `ld` spans (0 for an empty matrix). */
int64_t matrix_extent(int64_t rows, int64_t cols, int64_t ld);

/* True when [a, a + aLen) and [b, b + bLen) share any float. */
bool ranges_overlap(const float *a, int64_t a_len, const float *b, int64_t b_len);

#endif
