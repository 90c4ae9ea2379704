// Native tensor memory. alloc(bytes, zero = true) returns an ArrayBuffer over 64-byte-aligned native memory, so
// typed arrays in JS see it without copies: zero-filled, or with zero = false uninitialised (for kernel outputs
// that are fully overwritten: skips the memset, which costs as much as a light kernel). Uninitialised blocks are
// filled with 0xFF bytes (NaN for floats, -1 for int32) under AddressSanitizer or with MACLM_POISON_UNINIT=1, so a
// kernel that leaves part of its output unwritten shows up in tests. Release is deterministic: free(buffer) detaches the ArrayBuffer (JS can
// no longer touch it) and returns the memory at once. The ArrayBuffer's finalizer is only a safety net for buffers
// that were never freed. The memory this allocator holds from the system (live blocks and the block cache below)
// is reported to V8 (napi_adjust_external_memory) so the GC sees native memory pressure; live bytes are counted
// here for leak tests (liveBytes()). Reporting holdings rather than every tensor's block matters: V8 starts a
// full GC whenever the reported amount grows by ~64 MiB, and a forward pass allocates and frees far more than
// that from the cache every call (~10 GCs per SmolLM2 forward when each block was reported); a block that moves
// between the cache and a tensor changes nothing V8 needs to know.
//
// Large blocks (>= 256 KiB) come from mmap, which the kernel hands out already zeroed, and freed large blocks are
// kept in a small cache keyed by size: a training step allocates the same sizes every step, and a fresh mapping
// costs a page fault per 4 KiB on first touch. Reused blocks are zeroed with a parallel memset. The cache holds at
// most MACLM_ALLOC_CACHE_MB (default 1024) MiB; trimAllocCache() empties it.
#include <malloc.h>
#include <napi.h>
#include <sys/mman.h>

#include <atomic>
#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <map>
#include <mutex>
#include <unordered_map>

#include "core/registry.h"
#include "core/threadpool.h"

namespace maclm {
namespace {

// Under AddressSanitizer every block comes from aligned_alloc (no mmap, no cache) so that ASan sees each one,
// and the tail padding is poisoned so an overrun into it is reported.
#if defined(__SANITIZE_ADDRESS__)
#include <sanitizer/asan_interface.h>
constexpr size_t kLarge = SIZE_MAX;
#define MACLM_POISON(p, n) ASAN_POISON_MEMORY_REGION(p, n)
#define MACLM_UNPOISON(p, n) ASAN_UNPOISON_MEMORY_REGION(p, n)
#else
constexpr size_t kLarge = 256 * 1024;
#define MACLM_POISON(p, n) ((void)(p), (void)(n))
#define MACLM_UNPOISON(p, n) ((void)(p), (void)(n))
#endif

struct Block {
  void* ptr;
  size_t bytes;  // capacity actually reserved
  bool freed;
};

std::atomic<int64_t> live_bytes{0};
// Bytes taken from (+) or given back to (-) the system since the last report to V8 (see flush_external).
std::atomic<int64_t> unreported_bytes{0};
std::atomic<int64_t> live_blocks{0};

// Only the JS thread allocates and frees; the mutex is for safety should a finalizer ever run elsewhere.
std::mutex mu;
std::unordered_map<void*, Block*> blocks;  // live blocks by data pointer, so free(arrayBuffer) finds its Block
std::multimap<size_t, void*> cache;        // freed large blocks by capacity
size_t cached_bytes = 0;

size_t cache_limit() {
  static size_t limit = [] {
    const char* env = std::getenv("MACLM_ALLOC_CACHE_MB");
    return static_cast<size_t>(env ? std::atoll(env) : 1024) << 20;
  }();
  return limit;
}

void zero(void* p, size_t bytes) {
  char* c = static_cast<char*>(p);
  parallel_for(static_cast<int64_t>(bytes), 1 << 20, [&](int64_t b, int64_t e) { std::memset(c + b, 0, e - b); });
}

bool poison_uninit() {
#if defined(__SANITIZE_ADDRESS__)
  return true;
#else
  static const bool on = [] {
    const char* env = std::getenv("MACLM_POISON_UNINIT");
    return env != nullptr && env[0] != '\0' && env[0] != '0';
  }();
  return on;
#endif
}

void poison(void* p, size_t bytes) {
  char* c = static_cast<char*>(p);
  parallel_for(static_cast<int64_t>(bytes), 1 << 20, [&](int64_t b, int64_t e) { std::memset(c + b, 0xFF, e - b); });
}

// zero_fill: the caller wants zeros; else the contents are unspecified (poisoned in checking builds).
void* raw_alloc(size_t bytes, bool zero_fill) {
  if (bytes < kLarge) {
    void* p = std::aligned_alloc(64, bytes);
    if (p && zero_fill) std::memset(p, 0, bytes);
    else if (p && poison_uninit()) std::memset(p, 0xFF, bytes);
    if (p) unreported_bytes += static_cast<int64_t>(bytes);
    return p;
  }
  {
    std::lock_guard<std::mutex> lk(mu);
    auto it = cache.find(bytes);
    if (it != cache.end()) {
      void* p = it->second;
      cache.erase(it);
      cached_bytes -= bytes;
      if (zero_fill) zero(p, bytes);
      else if (poison_uninit()) poison(p, bytes);
      return p;
    }
  }
  void* p = mmap(nullptr, bytes, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);  // zeroed by the kernel
  if (p == MAP_FAILED) return nullptr;
  unreported_bytes += static_cast<int64_t>(bytes);
  if (!zero_fill && poison_uninit()) poison(p, bytes);
  return p;
}

void raw_free(void* p, size_t bytes) {
  if (bytes < kLarge) {
    MACLM_UNPOISON(p, bytes);
    std::free(p);
    unreported_bytes -= static_cast<int64_t>(bytes);
    return;
  }
  std::lock_guard<std::mutex> lk(mu);
  if (bytes <= cache_limit()) {
    cache.emplace(bytes, p);
    cached_bytes += bytes;
    // Evict the largest blocks first until under the limit.
    while (cached_bytes > cache_limit() && !cache.empty()) {
      auto last = std::prev(cache.end());
      munmap(last->second, last->first);
      unreported_bytes -= static_cast<int64_t>(last->first);
      cached_bytes -= last->first;
      cache.erase(last);
    }
  } else {
    munmap(p, bytes);
    unreported_bytes -= static_cast<int64_t>(bytes);
  }
}

// Reports the system memory taken or given back since the last report to V8.
void flush_external(napi_env env) {
  const int64_t d = unreported_bytes.exchange(0);
  if (d == 0) return;
  int64_t ignored;
  napi_adjust_external_memory(env, d, &ignored);
}

void release(Napi::Env env, Block* b) {
  if (b->freed) return;
  {
    std::lock_guard<std::mutex> lk(mu);
    auto it = blocks.find(b->ptr);
    if (it != blocks.end() && it->second == b) blocks.erase(it);
  }
  raw_free(b->ptr, b->bytes);
  b->freed = true;
  live_bytes -= static_cast<int64_t>(b->bytes);
  live_blocks--;
  flush_external(env);
}

// Node runs external-buffer finalizers later on the JS thread (never synchronously inside detach), so a Block is
// deleted only here, after any explicit free.
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
  const bool zero_fill = info.Length() < 2 || info[1].IsUndefined() || info[1].ToBoolean().Value();
  // Zero-size tensors own no native memory.
  if (bytes == 0) return Napi::ArrayBuffer::New(env, 0);
  size_t cap = ((bytes + 63) / 64) * 64 + 64;  // room for vector tails
  if (cap >= kLarge) cap = ((cap + 65535) / 65536) * 65536;  // coarser sizes for large blocks: more cache hits
  void* p = raw_alloc(cap, zero_fill);
  if (!p) throw Napi::Error::New(env, "alloc: out of memory allocating " + std::to_string(bytes) + " bytes");
  MACLM_POISON(static_cast<char*>(p) + bytes, cap - bytes);
  Block* b = new Block{p, cap, false};
  {
    std::lock_guard<std::mutex> lk(mu);
    blocks[p] = b;
  }
  live_bytes += static_cast<int64_t>(cap);
  live_blocks++;
  flush_external(env);
  napi_value ab;
  if (napi_create_external_arraybuffer(env, p, bytes, finalize, b, &ab) != napi_ok) {
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
  if (ab.IsDetached() || ab.ByteLength() == 0) return env.Undefined();
  void* data = ab.Data();
  Block* b = nullptr;
  {
    std::lock_guard<std::mutex> lk(mu);
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
  std::lock_guard<std::mutex> lk(mu);
  o.Set("cachedBytes", Napi::Number::New(info.Env(), static_cast<double>(cached_bytes)));
  return o;
}

Napi::Value TrimAllocCache(const Napi::CallbackInfo& info) {
  std::lock_guard<std::mutex> lk(mu);
  for (auto& [bytes, p] : cache) {
    munmap(p, bytes);
    unreported_bytes -= static_cast<int64_t>(bytes);
  }
  cache.clear();
  cached_bytes = 0;
  // Also hand glibc's free heap memory back to the OS: kernels' scratch vectors, sized by sequence length, leave
  // freed chunks in the malloc arenas of the pool threads.
  malloc_trim(0);
  flush_external(info.Env());
  return info.Env().Undefined();
}

// mallocTrim(): returns free memory in glibc's arenas to the OS (cheap; long runs call it periodically).
Napi::Value MallocTrim(const Napi::CallbackInfo& info) {
  return Napi::Boolean::New(info.Env(), malloc_trim(0) != 0);
}

}  // namespace

MACLM_EXPORT(alloc, Alloc);
MACLM_EXPORT(free, Free);
MACLM_EXPORT(liveBytes, LiveBytes);
MACLM_EXPORT(trimAllocCache, TrimAllocCache);
MACLM_EXPORT(mallocTrim, MallocTrim);

}  // namespace maclm
