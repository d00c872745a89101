// Small helpers over the plain C N-API (node_api.h from Node's own headers; node-addon-api is not a
// dependency). Every exported function validates its arguments and throws a TypeError/RangeError whose
// message starts with "native/<file>:" instead of touching memory it was not given.
#pragma once
#include <node_api.h>
#include <cstddef>
#include <cstdint>

namespace fisedit {

// Returns from the enclosing function (with nullptr) when a N-API call fails; the pending exception
// (if any) propagates to JS.
#define FN_CALL(call)                         \
  do {                                        \
    if ((call) != napi_ok) return nullptr;    \
  } while (0)

struct Typed {
  void* data = nullptr;
  size_t length = 0;  // elements
  napi_typedarray_type type = napi_uint8_array;
};

// value must be a typed array of `want`; throws a TypeError naming `what` otherwise.
bool getTyped(napi_env env, napi_value value, napi_typedarray_type want, const char* where, const char* what, Typed* out);
bool getInt(napi_env env, napi_value obj, const char* key, const char* where, int64_t* out);
napi_value throwRange(napi_env env, const char* where, const char* msg);
napi_value throwType(napi_env env, const char* where, const char* msg);
// A fresh typed array of `length` elements of `type` (elementSize bytes each); *data points at its storage.
napi_value newTyped(napi_env env, napi_typedarray_type type, size_t elementSize, size_t length, void** data);

napi_value FloatsToHalves(napi_env env, napi_callback_info info);
napi_value HalvesToFloats(napi_env env, napi_callback_info info);
napi_value ScatterRows(napi_env env, napi_callback_info info);
napi_value OverlayChain(napi_env env, napi_callback_info info);
napi_value BuildConvTable(napi_env env, napi_callback_info info);

}  // namespace fisedit
