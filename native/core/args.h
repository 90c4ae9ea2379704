// Argument access for kernel bindings. Kernels receive typed arrays (views of native buffers, see buffer.cc) plus
// integer dims; the TypeScript side has already checked shapes and names the op in its errors, and these checks are
// the last line of defence: a wrong length or dtype throws a JS TypeError/RangeError instead of reading out of
// bounds.
#pragma once
#include <napi.h>

#include <cstdint>
#include <string>

namespace maclm {

enum class DType { F32, F64, I32, U8 };

inline const char* dtype_name(DType d) {
  switch (d) {
    case DType::F32: return "float32";
    case DType::F64: return "float64";
    case DType::I32: return "int32";
    case DType::U8: return "uint8";
  }
  return "?";
}

// A typed-array argument: data pointer, element count and dtype.
struct Arr {
  void* data = nullptr;
  int64_t length = 0;
  DType dtype = DType::F32;
  bool present = false;  // false for null/undefined optional arguments

  template <typename T>
  T* as() const { return static_cast<T*>(data); }
};

inline Arr arr_at(const Napi::CallbackInfo& info, size_t i, const char* op, bool optional = false) {
  Arr a;
  Napi::Value v = info[i];
  if (optional && (v.IsNull() || v.IsUndefined())) return a;
  if (!v.IsTypedArray()) {
    throw Napi::TypeError::New(info.Env(), std::string(op) + ": argument " + std::to_string(i) + " must be a typed array");
  }
  Napi::TypedArray t = v.As<Napi::TypedArray>();
  switch (t.TypedArrayType()) {
    case napi_float32_array: a.dtype = DType::F32; break;
    case napi_float64_array: a.dtype = DType::F64; break;
    case napi_int32_array: a.dtype = DType::I32; break;
    case napi_uint8_array: a.dtype = DType::U8; break;
    default:
      throw Napi::TypeError::New(info.Env(), std::string(op) + ": argument " + std::to_string(i) + " has an unsupported typed-array type");
  }
  a.data = static_cast<uint8_t*>(t.ArrayBuffer().Data()) + t.ByteOffset();
  a.length = static_cast<int64_t>(t.ElementLength());
  a.present = true;
  return a;
}

inline int64_t int_at(const Napi::CallbackInfo& info, size_t i, const char* op) {
  Napi::Value v = info[i];
  if (!v.IsNumber()) throw Napi::TypeError::New(info.Env(), std::string(op) + ": argument " + std::to_string(i) + " must be a number");
  return v.As<Napi::Number>().Int64Value();
}

inline double num_at(const Napi::CallbackInfo& info, size_t i, const char* op) {
  Napi::Value v = info[i];
  if (!v.IsNumber()) throw Napi::TypeError::New(info.Env(), std::string(op) + ": argument " + std::to_string(i) + " must be a number");
  return v.As<Napi::Number>().DoubleValue();
}

inline bool bool_at(const Napi::CallbackInfo& info, size_t i) { return info[i].ToBoolean().Value(); }

// Throws unless `a` holds at least `n` elements of dtype `d`.
inline void expect(const Napi::CallbackInfo& info, const Arr& a, DType d, int64_t n, const char* op, const char* what) {
  if (!a.present) throw Napi::TypeError::New(info.Env(), std::string(op) + ": " + what + " is missing");
  if (a.dtype != d)
    throw Napi::TypeError::New(info.Env(), std::string(op) + ": " + what + " is " + dtype_name(a.dtype) + ", expected " + dtype_name(d));
  if (a.length < n)
    throw Napi::RangeError::New(info.Env(), std::string(op) + ": " + what + " has " + std::to_string(a.length) +
                                                " elements, needs " + std::to_string(n));
}

// Calls f(float*) or f(double*)-style generic lambdas on the floating dtype of `a` (the dtype all float operands share).
template <typename F>
void dispatch_float(const Napi::CallbackInfo& info, const Arr& a, const char* op, F&& f) {
  if (a.dtype == DType::F32) f(float{});
  else if (a.dtype == DType::F64) f(double{});
  else throw Napi::TypeError::New(info.Env(), std::string(op) + ": expected a float32 or float64 tensor, got " + dtype_name(a.dtype));
}

template <typename T>
constexpr DType dtype_of();
template <>
constexpr DType dtype_of<float>() { return DType::F32; }
template <>
constexpr DType dtype_of<double>() { return DType::F64; }

}  // namespace maclm
