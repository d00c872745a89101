// Bulk float32 <-> float16 bits, bit-identical to src/engine/cache/fp16.ts (and so to floatToHalf /
// halfToFloat in src/engine/model/tensor.ts): round to nearest, ties to even; |v| >= 65520 -> +-Inf;
// |v| <= 2^-25 -> +-0; subnormal halves kept; NaN -> sign | 0x7e00. half -> float of a NaN gives the
// canonical quiet NaN 0x7fc00000, which is what V8 stores for the TS table's NaN.
#include <cstdlib>
#include <cstring>
#include "napi_util.h"
#if defined(__x86_64__) && defined(__GNUC__)
#include <immintrin.h>
#define FISEDIT_F16C 1
#endif

namespace fisedit {

static inline uint16_t toHalf(uint32_t x) {
  const uint32_t sign = (x >> 16) & 0x8000u;
  const uint32_t a = x & 0x7fffffffu;
  uint32_t h;
  if (a >= 0x47800000u) {
    h = a > 0x7f800000u ? 0x7e00u : 0x7c00u;
  } else if (a >= 0x38800000u) {
    h = (a - 0x38000000u) >> 13;
    const uint32_t rem = a & 0x1fffu;
    if (rem > 0x1000u || (rem == 0x1000u && (h & 1u))) h++;
  } else if (a > 0x33000000u) {
    const uint32_t shift = 126u - (a >> 23);
    const uint32_t m = (a & 0x7fffffu) | 0x800000u;
    h = m >> shift;
    const uint32_t rem = m & ((1u << shift) - 1u);
    const uint32_t mid = 1u << (shift - 1u);
    if (rem > mid || (rem == mid && (h & 1u))) h++;
  } else {
    h = 0;
  }
  return (uint16_t)(sign | h);
}

static void toHalves(const uint32_t* s, uint16_t* d, size_t n) {
  for (size_t i = 0; i < n; i++) d[i] = toHalf(s[i]);
}

#ifdef FISEDIT_F16C
// Hardware VCVTPS2PH with round-to-nearest-even gives the same bits as toHalf for every non-NaN input
// (overflow to Inf, subnormal halves, the 2^-25 tie to 0); NaNs (hardware keeps the payload) are
// rewritten to sign | 0x7e00 as toHalf does. The scalar loop is branchy (~1.2x of V8 on random data).
__attribute__((target("avx,f16c,sse4.1"))) static void toHalvesF16C(const uint32_t* s, uint16_t* d, size_t n) {
  size_t i = 0;
  const __m128i absMask = _mm_set1_epi16(0x7fff), inf = _mm_set1_epi16(0x7c00), signMask = _mm_set1_epi16((short)0x8000),
                qnan = _mm_set1_epi16(0x7e00);
  for (; i + 8 <= n; i += 8) {
    __m128i h = _mm256_cvtps_ph(_mm256_loadu_ps((const float*)(s + i)), _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
    __m128i isNan = _mm_cmpgt_epi16(_mm_and_si128(h, absMask), inf);
    __m128i fixed = _mm_or_si128(_mm_and_si128(h, signMask), qnan);
    _mm_storeu_si128((__m128i*)(d + i), _mm_blendv_epi8(h, fixed, isNan));
  }
  for (; i < n; i++) d[i] = toHalf(s[i]);
}
static const bool hasF16C = __builtin_cpu_supports("f16c") && __builtin_cpu_supports("avx") && __builtin_cpu_supports("sse4.1");
#endif

static inline uint32_t toFloatBits(uint16_t h) {
  const uint32_t sign = (uint32_t)(h & 0x8000u) << 16;
  const uint32_t e = (h >> 10) & 0x1fu;
  uint32_t f = h & 0x3ffu;
  if (e == 31) return f ? 0x7fc00000u : (sign | 0x7f800000u);
  if (e == 0) {
    if (!f) return sign;
    // subnormal: normalise f * 2^-24
    int exp = 113;  // 127 - 15 + 1
    while (!(f & 0x400u)) {
      f <<= 1;
      exp--;
    }
    return sign | ((uint32_t)exp << 23) | ((f & 0x3ffu) << 13);
  }
  return sign | ((e + 112u) << 23) | (f << 13);
}

static uint32_t* halfTable() {
  static uint32_t* table = nullptr;  // 256 KiB, built once (same idea as the TS table)
  if (!table) {
    table = new uint32_t[65536];
    for (uint32_t h = 0; h < 65536; h++) table[h] = toFloatBits((uint16_t)h);
  }
  return table;
}

// floatsToHalves(src: Float32Array, dst?: Uint16Array): Uint16Array
napi_value FloatsToHalves(napi_env env, napi_callback_info info) {
  size_t argc = 2;
  napi_value argv[2];
  FN_CALL(napi_get_cb_info(env, info, &argc, argv, nullptr, nullptr));
  if (argc < 1) return throwType(env, "fp16.cc", "floatsToHalves(src, dst?) needs src");
  Typed src, dst;
  if (!getTyped(env, argv[0], napi_float32_array, "fp16.cc", "floatsToHalves: src", &src)) return nullptr;
  napi_valuetype t = napi_undefined;
  if (argc >= 2) FN_CALL(napi_typeof(env, argv[1], &t));
  napi_value out;
  if (t == napi_undefined) {
    out = newTyped(env, napi_uint16_array, 2, src.length, &dst.data);
    if (!out) return nullptr;
    dst.length = src.length;
  } else {
    if (!getTyped(env, argv[1], napi_uint16_array, "fp16.cc", "floatsToHalves: dst", &dst)) return nullptr;
    if (dst.length < src.length) return throwRange(env, "fp16.cc", "floatsToHalves: dst is shorter than src");
    out = argv[1];
  }
  const uint32_t* s = (const uint32_t*)src.data;  // typed arrays are element-aligned
  uint16_t* d = (uint16_t*)dst.data;
#ifdef FISEDIT_F16C
  if (hasF16C && !std::getenv("FISEDIT_NATIVE_SCALAR")) {
    toHalvesF16C(s, d, src.length);
    return out;
  }
#endif
  toHalves(s, d, src.length);
  return out;
}

// halvesToFloats(src: Uint16Array, dst?: Float32Array): Float32Array
napi_value HalvesToFloats(napi_env env, napi_callback_info info) {
  size_t argc = 2;
  napi_value argv[2];
  FN_CALL(napi_get_cb_info(env, info, &argc, argv, nullptr, nullptr));
  if (argc < 1) return throwType(env, "fp16.cc", "halvesToFloats(src, dst?) needs src");
  Typed src, dst;
  if (!getTyped(env, argv[0], napi_uint16_array, "fp16.cc", "halvesToFloats: src", &src)) return nullptr;
  napi_valuetype t = napi_undefined;
  if (argc >= 2) FN_CALL(napi_typeof(env, argv[1], &t));
  napi_value out;
  if (t == napi_undefined) {
    out = newTyped(env, napi_float32_array, 4, src.length, &dst.data);
    if (!out) return nullptr;
  } else {
    if (!getTyped(env, argv[1], napi_float32_array, "fp16.cc", "halvesToFloats: dst", &dst)) return nullptr;
    if (dst.length < src.length) return throwRange(env, "fp16.cc", "halvesToFloats: dst is shorter than src");
    out = argv[1];
  }
  const uint32_t* table = halfTable();
  const uint16_t* s = (const uint16_t*)src.data;
  uint32_t* d = (uint32_t*)dst.data;
  for (size_t i = 0; i < src.length; i++) d[i] = table[s[i]];
  return out;
}

}  // namespace fisedit
