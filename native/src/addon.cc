// fisedit_native: hot paths of the engine that run outside ONNX graphs (see native/README.md).
// Module registration and shared argument helpers.
#include <cstdio>
#include <cstring>
#include <string>
#include "napi_util.h"

namespace fisedit {

napi_value throwRange(napi_env env, const char* where, const char* msg) {
  std::string m = std::string("native/") + where + ": " + msg;
  napi_throw_range_error(env, nullptr, m.c_str());
  return nullptr;
}

napi_value throwType(napi_env env, const char* where, const char* msg) {
  std::string m = std::string("native/") + where + ": " + msg;
  napi_throw_type_error(env, nullptr, m.c_str());
  return nullptr;
}

bool getTyped(napi_env env, napi_value value, napi_typedarray_type want, const char* where, const char* what, Typed* out) {
  bool is = false;
  if (napi_is_typedarray(env, value, &is) != napi_ok || !is) {
    throwType(env, where, (std::string(what) + " must be a typed array").c_str());
    return false;
  }
  napi_value ab;
  size_t offset;
  if (napi_get_typedarray_info(env, value, &out->type, &out->length, &out->data, &ab, &offset) != napi_ok) return false;
  if (out->type != want) {
    static const char* names[] = {"Int8Array", "Uint8Array", "Uint8ClampedArray", "Int16Array", "Uint16Array", "Int32Array",
                                  "Uint32Array", "Float32Array", "Float64Array", "BigInt64Array", "BigUint64Array"};
    std::string m = std::string(what) + " must be a " + (want <= napi_biguint64_array ? names[want] : "?");
    throwType(env, where, m.c_str());
    return false;
  }
  return true;
}

bool getInt(napi_env env, napi_value obj, const char* key, const char* where, int64_t* out) {
  napi_value v;
  napi_valuetype t;
  if (napi_get_named_property(env, obj, key, &v) != napi_ok || napi_typeof(env, v, &t) != napi_ok) return false;
  double d = -1;
  if (t == napi_number) napi_get_value_double(env, v, &d);
  if (t != napi_number || d < 0 || d != (double)(int64_t)d || d > 9.0e15) {
    throwType(env, where, (std::string(key) + " must be a non-negative integer").c_str());
    return false;
  }
  *out = (int64_t)d;
  return true;
}

napi_value newTyped(napi_env env, napi_typedarray_type type, size_t elementSize, size_t length, void** data) {
  napi_value ab, arr;
  FN_CALL(napi_create_arraybuffer(env, length * elementSize, data, &ab));
  if (length) std::memset(*data, 0, length * elementSize);
  FN_CALL(napi_create_typedarray(env, type, length, ab, 0, &arr));
  return arr;
}

static napi_value Info(napi_env env, napi_callback_info) {
  napi_value obj, v;
  FN_CALL(napi_create_object(env, &obj));
  FN_CALL(napi_create_uint32(env, NAPI_VERSION, &v));
  FN_CALL(napi_set_named_property(env, obj, "napiVersion", v));
  FN_CALL(napi_create_string_utf8(env, "fisedit_native 1 (cpu)", NAPI_AUTO_LENGTH, &v));
  FN_CALL(napi_set_named_property(env, obj, "build", v));
  return obj;
}

static napi_value Init(napi_env env, napi_value exports) {
  napi_property_descriptor props[] = {
      {"info", nullptr, Info, nullptr, nullptr, nullptr, napi_enumerable, nullptr},
      {"floatsToHalves", nullptr, FloatsToHalves, nullptr, nullptr, nullptr, napi_enumerable, nullptr},
      {"halvesToFloats", nullptr, HalvesToFloats, nullptr, nullptr, nullptr, napi_enumerable, nullptr},
      {"scatterRows", nullptr, ScatterRows, nullptr, nullptr, nullptr, napi_enumerable, nullptr},
      {"overlayChain", nullptr, OverlayChain, nullptr, nullptr, nullptr, napi_enumerable, nullptr},
      {"buildConvTable", nullptr, BuildConvTable, nullptr, nullptr, nullptr, napi_enumerable, nullptr},
  };
  if (napi_define_properties(env, exports, sizeof(props) / sizeof(props[0]), props) != napi_ok) return nullptr;
  return exports;
}

}  // namespace fisedit

NAPI_MODULE(NODE_GYP_MODULE_NAME, fisedit::Init)
