// Module entry: installs every function registered with MACLM_EXPORT (see core/registry.h).
#include <napi.h>

#include "core/registry.h"

namespace {

Napi::Object Init(Napi::Env env, Napi::Object exports) {
  for (const auto& e : maclm::registry()) exports.Set(e.name, Napi::Function::New(env, e.fn, e.name));
  return exports;
}

}  // namespace

NODE_API_MODULE(mac_lm, Init)
