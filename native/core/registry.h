// Self-registration of native functions: each kernel file adds its exports with
//   MACLM_EXPORT(layernormForward, LayerNormForward);
// and binding.cc installs every registered function on the module object. Adding a kernel file therefore
// needs no edit to a central list (binding.gyp globs native/**/*.cc).
#pragma once
#include <napi.h>

#include <vector>

namespace maclm {

struct Export {
  const char* name;
  Napi::Value (*fn)(const Napi::CallbackInfo&);
};

// Function-local static: safe against static-initialisation order across translation units.
inline std::vector<Export>& registry() {
  static std::vector<Export> r;
  return r;
}

struct Registrar {
  Registrar(const char* name, Napi::Value (*fn)(const Napi::CallbackInfo&)) { registry().push_back({name, fn}); }
};

}  // namespace maclm

#define MACLM_CONCAT_(a, b) a##b
#define MACLM_CONCAT(a, b) MACLM_CONCAT_(a, b)
#define MACLM_EXPORT(jsName, fn) static ::maclm::Registrar MACLM_CONCAT(maclm_reg_, __LINE__)(#jsName, fn)
