#include "core/threadpool.h"

#include <algorithm>
#include <atomic>
#include <condition_variable>
#include <cstdlib>
#include <mutex>
#include <thread>
#include <vector>

#include "core/registry.h"

namespace maclm {
namespace {

thread_local bool in_parallel_region = false;

class Pool {
 public:
  explicit Pool(int n) { resize(n); }
  ~Pool() { stop(); }

  int size() const { return static_cast<int>(workers_.size()) + 1; }

  void resize(int n) {
    stop();
    n = std::max(1, n);
    quit_ = false;
    // Workers start from the current generation, so a pool resized after earlier work never reruns a finished
    // task, and cannot miss one posted right after this returns.
    const uint64_t gen = generation_;
    for (int i = 1; i < n; i++) workers_.emplace_back([this, i, gen] { loop(i, gen); });
  }

  void run(int64_t n, const std::function<void(int64_t, int64_t)>& fn) {
    const int nt = size();
    std::unique_lock<std::mutex> lk(mu_);
    task_ = &fn;
    total_ = n;
    pending_ = nt - 1;
    generation_++;
    lk.unlock();
    cv_.notify_all();
    run_chunk(0, nt, n, fn);
    lk.lock();
    done_cv_.wait(lk, [this] { return pending_ == 0; });
    task_ = nullptr;
  }

 private:
  static void run_chunk(int i, int nt, int64_t n, const std::function<void(int64_t, int64_t)>& fn) {
    const int64_t per = (n + nt - 1) / nt;
    const int64_t b = std::min<int64_t>(n, per * i), e = std::min<int64_t>(n, b + per);
    if (b < e) {
      in_parallel_region = true;
      fn(b, e);
      in_parallel_region = false;
    }
  }

  void loop(int i, uint64_t seen) {
    for (;;) {
      std::unique_lock<std::mutex> lk(mu_);
      cv_.wait(lk, [&] { return quit_ || generation_ != seen; });
      if (quit_) return;
      seen = generation_;
      const auto* fn = task_;
      const int64_t n = total_;
      const int nt = size();
      lk.unlock();
      run_chunk(i, nt, n, *fn);
      lk.lock();
      if (--pending_ == 0) done_cv_.notify_one();
    }
  }

  void stop() {
    {
      std::lock_guard<std::mutex> lk(mu_);
      quit_ = true;
    }
    cv_.notify_all();
    for (auto& t : workers_) t.join();
    workers_.clear();
  }

  std::vector<std::thread> workers_;
  std::mutex mu_;
  std::condition_variable cv_, done_cv_;
  const std::function<void(int64_t, int64_t)>* task_ = nullptr;
  int64_t total_ = 0;
  int pending_ = 0;
  uint64_t generation_ = 0;
  bool quit_ = false;
};

int default_threads() {
  if (const char* env = std::getenv("MACLM_NUM_THREADS")) {
    int n = std::atoi(env);
    if (n > 0) return n;
  }
  return std::max(1u, std::thread::hardware_concurrency());
}

Pool& pool() {
  static Pool p(default_threads());
  return p;
}

Napi::Value NumThreads(const Napi::CallbackInfo& info) { return Napi::Number::New(info.Env(), num_threads()); }

Napi::Value SetNumThreads(const Napi::CallbackInfo& info) {
  set_num_threads(info[0].As<Napi::Number>().Int32Value());
  return info.Env().Undefined();
}

}  // namespace

int num_threads() { return pool().size(); }
void set_num_threads(int n) { pool().resize(n); }

void parallel_for(int64_t n, int64_t grain, const std::function<void(int64_t, int64_t)>& fn) {
  if (n <= 0) return;
  Pool& p = pool();
  if (in_parallel_region || p.size() == 1 || n < 2 * std::max<int64_t>(1, grain)) {
    fn(0, n);
    return;
  }
  p.run(n, fn);
}

MACLM_EXPORT(numThreads, NumThreads);
MACLM_EXPORT(setNumThreads, SetNumThreads);

}  // namespace maclm
