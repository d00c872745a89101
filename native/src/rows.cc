// Cache row overlay, mirroring src/engine/cache/rows.ts scatterRows and the compose loop of
// ActivationCache.readRows: a tensor [outer, R, inner] of float16 bits; a delta holds k rows
// (Int32 indices into R) as [outer, k, inner]. Pure copies: the result is bit-identical by construction.
#include <cstring>
#include <string>
#include "napi_util.h"

namespace fisedit {

struct Geometry {
  int64_t outer = 0, rows = 0, inner = 0;
};

static bool getGeometry(napi_env env, napi_value g, const char* where, Geometry* out) {
  return getInt(env, g, "outer", where, &out->outer) && getInt(env, g, "rows", where, &out->rows) &&
         getInt(env, g, "inner", where, &out->inner);
}

// Checks lengths and indices first so a bad delta leaves the target untouched.
static bool checkDelta(napi_env env, const char* where, const Geometry& g, const Typed& rows, const Typed& delta) {
  const size_t k = rows.length;
  if ((int64_t)delta.length != g.outer * (int64_t)k * g.inner) {
    std::string m = "delta has " + std::to_string(delta.length) + " values, not [" + std::to_string(g.outer) + ", " +
                    std::to_string(k) + ", " + std::to_string(g.inner) + "]";
    throwRange(env, where, m.c_str());
    return false;
  }
  const int32_t* r = (const int32_t*)rows.data;
  for (size_t i = 0; i < k; i++) {
    if (r[i] < 0 || r[i] >= g.rows) {
      std::string m = "row index " + std::to_string(r[i]) + " at position " + std::to_string(i) + " is outside 0.." +
                      std::to_string(g.rows - 1);
      throwRange(env, where, m.c_str());
      return false;
    }
  }
  return true;
}

static void scatter(uint16_t* target, const Geometry& g, const int32_t* rows, size_t k, const uint16_t* delta) {
  const size_t inner = (size_t)g.inner;
  const size_t bytes = inner * sizeof(uint16_t);
  for (int64_t o = 0; o < g.outer; o++) {
    uint16_t* dst = target + (size_t)o * (size_t)g.rows * inner;
    const uint16_t* src = delta + (size_t)o * k * inner;
    if (inner == 1) {
      for (size_t r = 0; r < k; r++) dst[rows[r]] = src[r];
    } else {
      for (size_t r = 0; r < k; r++) std::memcpy(dst + (size_t)rows[r] * inner, src + r * inner, bytes);
    }
  }
}

// scatterRows(target: Uint16Array, g: RowGeometry, rows: Int32Array, delta: Uint16Array): void
napi_value ScatterRows(napi_env env, napi_callback_info info) {
  const char* where = "rows.cc scatterRows";
  size_t argc = 4;
  napi_value argv[4];
  FN_CALL(napi_get_cb_info(env, info, &argc, argv, nullptr, nullptr));
  if (argc < 4) return throwType(env, where, "needs (target, geometry, rows, delta)");
  Typed target, rows, delta;
  Geometry g;
  if (!getTyped(env, argv[0], napi_uint16_array, where, "target", &target) || !getGeometry(env, argv[1], where, &g) ||
      !getTyped(env, argv[2], napi_int32_array, where, "rows", &rows) ||
      !getTyped(env, argv[3], napi_uint16_array, where, "delta", &delta))
    return nullptr;
  if ((int64_t)target.length != g.outer * g.rows * g.inner) return throwRange(env, where, "target length is not outer * rows * inner");
  if (!checkDelta(env, where, g, rows, delta)) return nullptr;
  scatter((uint16_t*)target.data, g, (const int32_t*)rows.data, rows.length, (const uint16_t*)delta.data);
  return nullptr;  // undefined
}

// overlayChain(base: Uint16Array, g: RowGeometry, deltas: {rows: Int32Array, data: Uint16Array}[], into?: Uint16Array): Uint16Array
// Copies base into `into` (or a fresh array) and applies the deltas in array order (oldest first).
napi_value OverlayChain(napi_env env, napi_callback_info info) {
  const char* where = "rows.cc overlayChain";
  size_t argc = 4;
  napi_value argv[4];
  FN_CALL(napi_get_cb_info(env, info, &argc, argv, nullptr, nullptr));
  if (argc < 3) return throwType(env, where, "needs (base, geometry, deltas, into?)");
  Typed base, into;
  Geometry g;
  if (!getTyped(env, argv[0], napi_uint16_array, where, "base", &base) || !getGeometry(env, argv[1], where, &g)) return nullptr;
  if ((int64_t)base.length != g.outer * g.rows * g.inner) return throwRange(env, where, "base length is not outer * rows * inner");
  bool isArray = false;
  FN_CALL(napi_is_array(env, argv[2], &isArray));
  if (!isArray) return throwType(env, where, "deltas must be an array of { rows, data }");
  uint32_t n = 0;
  FN_CALL(napi_get_array_length(env, argv[2], &n));
  // Validate every delta before writing anything.
  Typed* rows = new Typed[n ? n : 1];
  Typed* data = new Typed[n ? n : 1];
  bool ok = true;
  for (uint32_t i = 0; ok && i < n; i++) {
    napi_value d, r, v;
    ok = napi_get_element(env, argv[2], i, &d) == napi_ok && napi_get_named_property(env, d, "rows", &r) == napi_ok &&
         napi_get_named_property(env, d, "data", &v) == napi_ok &&
         getTyped(env, r, napi_int32_array, where, "deltas[i].rows", &rows[i]) &&
         getTyped(env, v, napi_uint16_array, where, "deltas[i].data", &data[i]) && checkDelta(env, where, g, rows[i], data[i]);
  }
  napi_value out = nullptr;
  if (ok) {
    napi_valuetype t = napi_undefined;
    if (argc >= 4) napi_typeof(env, argv[3], &t);
    if (t == napi_undefined) {
      out = newTyped(env, napi_uint16_array, 2, base.length, &into.data);
    } else if (getTyped(env, argv[3], napi_uint16_array, where, "into", &into)) {
      if (into.length != base.length) throwRange(env, where, "into must have the base's length");
      else out = argv[3];
    }
  }
  if (out) {
    if (into.data != base.data) std::memcpy(into.data, base.data, base.length * sizeof(uint16_t));
    for (uint32_t i = 0; i < n; i++) scatter((uint16_t*)into.data, g, (const int32_t*)rows[i].data, rows[i].length, (const uint16_t*)data[i].data);
  }
  delete[] rows;
  delete[] data;
  return out;
}

}  // namespace fisedit
