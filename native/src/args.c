#include "args.h"

#include <math.h>
#include <stdio.h>

static bool throw_type(napi_env env, const char *fn, const char *name, const char *expected) {
  char message[256];
  snprintf(message, sizeof message, "%s: argument '%s' must be %s", fn, name, expected);
  napi_throw_type_error(env, NULL, message);
  return false;
}

bool throw_range(napi_env env, const char *fn, const char *message) {
  char full[384];
  snprintf(full, sizeof full, "%s: %s", fn, message);
  napi_throw_range_error(env, NULL, full);
  return false;
}

bool args_get(napi_env env, napi_callback_info info, const char *fn, size_t expected, napi_value *argv) {
  size_t argc = expected;
  if (napi_get_cb_info(env, info, &argc, argv, NULL, NULL) != napi_ok) return false;
  if (argc != expected) {
    char message[160];
    snprintf(message, sizeof message, "%s: expected %zu arguments, got %zu", fn, expected, argc);
    napi_throw_type_error(env, NULL, message);
    return false;
  }
  return true;
}

bool arg_bool(napi_env env, napi_value value, const char *fn, const char *name, bool *out) {
  if (napi_get_value_bool(env, value, out) != napi_ok) return throw_type(env, fn, name, "a boolean");
  return true;
}

bool arg_int(napi_env env, napi_value value, const char *fn, const char *name, int64_t min, int64_t max,
             int64_t *out) {
  double number;
  if (napi_get_value_double(env, value, &number) != napi_ok) return throw_type(env, fn, name, "a number");
  if (!isfinite(number) || number != floor(number) || number < (double)min || number > (double)max) {
    char message[192];
    snprintf(message, sizeof message, "argument '%s' must be an integer in [%lld, %lld], got %g", name,
             (long long)min, (long long)max, number);
    return throw_range(env, fn, message);
  }
  *out = (int64_t)number;
  return true;
}

bool arg_float(napi_env env, napi_value value, const char *fn, const char *name, double *out) {
  if (napi_get_value_double(env, value, out) != napi_ok) return throw_type(env, fn, name, "a number");
  return true;
}

bool arg_f32(napi_env env, napi_value value, const char *fn, const char *name, bool optional, F32View *out) {
  napi_valuetype kind;
  if (napi_typeof(env, value, &kind) != napi_ok) return false;
  if (optional && (kind == napi_null || kind == napi_undefined)) {
    out->data = NULL;
    out->length = 0;
    return true;
  }
  bool is_typed_array = false;
  napi_is_typedarray(env, value, &is_typed_array);
  if (!is_typed_array) return throw_type(env, fn, name, optional ? "a Float32Array or null" : "a Float32Array");
  napi_typedarray_type type;
  size_t length;
  void *data;
  if (napi_get_typedarray_info(env, value, &type, &length, &data, NULL, NULL) != napi_ok) return false;
  if (type != napi_float32_array) return throw_type(env, fn, name, "a Float32Array");
  out->data = (float *)data;
  out->length = (int64_t)length;
  return true;
}

bool arg_i32(napi_env env, napi_value value, const char *fn, const char *name, I32View *out) {
  bool is_typed_array = false;
  napi_is_typedarray(env, value, &is_typed_array);
  if (!is_typed_array) return throw_type(env, fn, name, "an Int32Array");
  napi_typedarray_type type;
  size_t length;
  void *data;
  if (napi_get_typedarray_info(env, value, &type, &length, &data, NULL, NULL) != napi_ok) return false;
  if (type != napi_int32_array) return throw_type(env, fn, name, "an Int32Array");
  out->data = (int32_t *)data;
  out->length = (int64_t)length;
  return true;
}

bool arg_f32_min(napi_env env, const char *fn, const char *name, F32View view, int64_t needed) {
  if (view.length >= needed) return true;
  char message[192];
  snprintf(message, sizeof message, "%s holds %lld floats but the shapes given need %lld", name,
           (long long)view.length, (long long)needed);
  return throw_range(env, fn, message);
}

int64_t matrix_extent(int64_t rows, int64_t cols, int64_t ld) {
  if (rows == 0 || cols == 0) return 0;
  return (rows - 1) * ld + cols;
}

bool ranges_overlap(const float *a, int64_t a_len, const float *b, int64_t b_len) {
  if (a == NULL || b == NULL || a_len == 0 || b_len == 0) return false;
  return a < b + b_len && b < a + a_len;
}
