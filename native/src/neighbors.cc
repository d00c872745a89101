// 3x3 stride-1 neighbour table of an active set, mirroring buildConvTable in src/engine/mask/pyramid.ts
// (see its header for the index convention): active rows in ascending pixel order, halo pixels in
// ascending order, neighbors [N, 9] with tap t = (dy+1)*3 + (dx+1) indexing
// concat(active rows; halo rows; zero row), zeroRow = N + M.
#include <string>
#include <vector>
#include "napi_util.h"

namespace fisedit {

// buildConvTable(mask: { width, height, data: Uint8Array }): { halo: Int32Array, neighbors: Int32Array, zeroRow: number }
napi_value BuildConvTable(napi_env env, napi_callback_info info) {
  const char* where = "neighbors.cc buildConvTable";
  size_t argc = 1;
  napi_value argv[1];
  FN_CALL(napi_get_cb_info(env, info, &argc, argv, nullptr, nullptr));
  if (argc < 1) return throwType(env, where, "needs a mask { width, height, data }");
  int64_t w, h;
  Typed mask;
  napi_value dataValue;
  if (!getInt(env, argv[0], "width", where, &w) || !getInt(env, argv[0], "height", where, &h)) return nullptr;
  FN_CALL(napi_get_named_property(env, argv[0], "data", &dataValue));
  if (!getTyped(env, dataValue, napi_uint8_array, where, "mask.data", &mask)) return nullptr;
  if (w < 1 || h < 1 || w * h > (1LL << 30)) return throwRange(env, where, "mask size must be positive and below 2^30 pixels");
  if ((int64_t)mask.length != w * h) return throwRange(env, where, "mask data length is not width * height");
  const uint8_t* m = (const uint8_t*)mask.data;
  const int32_t P = (int32_t)(w * h), W = (int32_t)w, H = (int32_t)h;
  std::vector<int32_t> rowOf(P, -1), active;
  for (int32_t p = 0; p < P; p++) {
    if (m[p] > 1) return throwRange(env, where, ("mask value " + std::to_string(m[p]) + " at index " + std::to_string(p) + "; only 0 and 1 are allowed").c_str());
    if (m[p]) {
      rowOf[p] = (int32_t)active.size();
      active.push_back(p);
    }
  }
  const int32_t N = (int32_t)active.size();
  // Pass 1: mark halo pixels; pass 2: number them in ascending pixel order; pass 3: write indices.
  std::vector<int32_t> haloRow(P, -1);
  for (int32_t r = 0; r < N; r++) {
    const int32_t y = active[r] / W, x = active[r] - y * W;
    for (int32_t dy = -1; dy <= 1; dy++) {
      const int32_t yy = y + dy;
      if (yy < 0 || yy >= H) continue;
      for (int32_t dx = -1; dx <= 1; dx++) {
        const int32_t xx = x + dx;
        if (xx < 0 || xx >= W) continue;
        const int32_t p = yy * W + xx;
        if (rowOf[p] < 0) haloRow[p] = 0;
      }
    }
  }
  int32_t M = 0;
  for (int32_t p = 0; p < P; p++) if (haloRow[p] == 0) M++;
  int32_t *halo, *nb;
  napi_value haloArr = newTyped(env, napi_int32_array, 4, (size_t)M, (void**)&halo);
  if (!haloArr) return nullptr;
  napi_value nbArr = newTyped(env, napi_int32_array, 4, (size_t)N * 9, (void**)&nb);
  if (!nbArr) return nullptr;
  for (int32_t p = 0, j = 0; p < P; p++) {
    if (haloRow[p] == 0) {
      halo[j] = p;
      haloRow[p] = j++;
    }
  }
  const int32_t zeroRow = N + M;
  for (int32_t r = 0; r < N; r++) {
    const int32_t y = active[r] / W, x = active[r] - y * W;
    int32_t* out = nb + (size_t)r * 9;
    for (int32_t t = 0; t < 9; t++) {
      const int32_t yy = y + t / 3 - 1, xx = x + t % 3 - 1;
      if (yy < 0 || xx < 0 || yy >= H || xx >= W) {
        out[t] = zeroRow;
      } else {
        const int32_t p = yy * W + xx;
        out[t] = rowOf[p] >= 0 ? rowOf[p] : N + haloRow[p];
      }
    }
  }
  napi_value obj, z;
  FN_CALL(napi_create_object(env, &obj));
  FN_CALL(napi_create_int32(env, zeroRow, &z));
  FN_CALL(napi_set_named_property(env, obj, "halo", haloArr));
  FN_CALL(napi_set_named_property(env, obj, "neighbors", nbArr));
  FN_CALL(napi_set_named_property(env, obj, "zeroRow", z));
  return obj;
}

}  // namespace fisedit
