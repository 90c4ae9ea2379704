// Native tensor memory. alloc(bytes) returns an ArrayBuffer over 64-byte-aligned native memory, so typed
// arrays in JS see it without copies. Release is deterministic: free(buffer) detaches the ArrayBuffer (JS
// can no longer touch it) and frees the memory at once. The ArrayBuffer's finalizer is only a safety net
// for buffers that were never freed. Live bytes are reported to V8 (napi_adjust_external_memory) so the GC
// sees native memory pressure, and counted here for leak tests (liveBytes()).
#include <napi.h>

#include <atomic>
#include <cstdlib>
#include <cstring>
#include <mutex>
#include <unordered_map>

#include "core/registry.h"

namespace maclm {
namespace {

struct Block {
  void* ptr;
  size_t bytes;
  bool freed;
};

std::atomic<int64_t> live_bytes{0};
std::atomic<int64_t> live_blocks{0};

// Live blocks by data pointer, so free(arrayBuffer) finds its Block. Only the JS thread touches it; the
// mutex is for safety should a finalizer ever run elsewhere.
std::mutex blocks_mu;
std::unordered_map<void*, Block*> blocks;

void release(Napi::Env env, Block* b) {
  if (b->freed) return;
  {
    std::lock_guard<std::mutex> lk(blocks_mu);
    auto it = blocks.find(b->ptr);
    if (it != blocks.end() && it->second == b) blocks.erase(it);
  }
  std::free(b->ptr);
  b->freed = true;
  live_bytes -= static_cast<int64_t>(b->bytes);
  live_blocks--;
  int64_t ignored;
  napi_adjust_external_memory(env, -static_cast<int64_t>(b->bytes), &ignored);
}

// Node runs external-buffer finalizers later on the JS thread (never synchronously inside detach), so a
// Block is deleted only here, after any explicit free.
void finalize(napi_env env, void* /*data*/, void* hint) {
  Block* b = static_cast<Block*>(hint);
  release(Napi::Env(env), b);
  delete b;
}

Napi::Value Alloc(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  const double requested = info[0].As<Napi::Number>().DoubleValue();
  if (!(requested >= 0) || requested > 1e12) throw Napi::RangeError::New(env, "alloc: bad byte count");
  const size_t bytes = static_cast<size_t>(requested);
  const size_t padded = ((bytes + 63) / 64) * 64 + 64;  // never zero-sized; room for vector tails
  void* p = std::aligned_alloc(64, padded);
  if (!p) throw Napi::Error::New(env, "alloc: out of memory allocating " + std::to_string(bytes) + " bytes");
  std::memset(p, 0, padded);
  Block* b = new Block{p, padded, false};
  {
    std::lock_guard<std::mutex> lk(blocks_mu);
    blocks[p] = b;
  }
  live_bytes += static_cast<int64_t>(padded);
  live_blocks++;
  int64_t ignored;
  napi_adjust_external_memory(env, static_cast<int64_t>(padded), &ignored);
  napi_value ab;
  napi_status s = napi_create_external_arraybuffer(env, p, bytes, finalize, b, &ab);
  if (s != napi_ok) {
    release(env, b);
    delete b;
    throw Napi::Error::New(env, "alloc: napi_create_external_arraybuffer failed");
  }
  return Napi::Value(env, ab);
}

// free(arrayBuffer): detach, then free now. Safe to call twice; the finalizer later only deletes the record.
Napi::Value Free(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  if (!info[0].IsArrayBuffer()) throw Napi::TypeError::New(env, "free: expected an ArrayBuffer");
  Napi::ArrayBuffer ab = info[0].As<Napi::ArrayBuffer>();
  if (ab.IsDetached()) return env.Undefined();
  void* data = ab.Data();
  Block* b = nullptr;
  {
    std::lock_guard<std::mutex> lk(blocks_mu);
    auto it = blocks.find(data);
    if (it != blocks.end()) b = it->second;
  }
  if (!b) throw Napi::Error::New(env, "free: this ArrayBuffer was not allocated by mac-lm's native alloc");
  ab.Detach();
  release(env, b);
  return env.Undefined();
}

Napi::Value LiveBytes(const Napi::CallbackInfo& info) {
  Napi::Object o = Napi::Object::New(info.Env());
  o.Set("bytes", Napi::Number::New(info.Env(), static_cast<double>(live_bytes.load())));
  o.Set("blocks", Napi::Number::New(info.Env(), static_cast<double>(live_blocks.load())));
  return o;
}

}  // namespace

MACLM_EXPORT(alloc, Alloc);
MACLM_EXPORT(free, Free);
MACLM_EXPORT(liveBytes, LiveBytes);

}  // namespace maclm
