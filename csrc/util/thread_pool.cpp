#include "util/thread_pool.h"

#include <sched.h>

#include <algorithm>
#include <chrono>
#include <stdexcept>
#include <string>
#include <system_error>

#if defined(__x86_64__)
#include <immintrin.h>
#define SC_CPU_RELAX() _mm_pause()
#elif defined(__aarch64__)
#define SC_CPU_RELAX() __asm__ __volatile__("yield")
#else
#define SC_CPU_RELAX() ((void)0)
#endif

namespace sc {
namespace {
// How long a worker keeps polling for the next job before it sleeps: long
// enough to cover the gap between two ops of a decode step (and the Python
// call between two tokens), short enough that an idle model frees the core.
constexpr auto kSpinTime = std::chrono::microseconds(2000);
}  // namespace

int default_thread_count() {
  cpu_set_t set;
  if (sched_getaffinity(0, sizeof(set), &set) == 0) {
    const int n = CPU_COUNT(&set);
    if (n > 0) return n;
  }
  const unsigned n = std::thread::hardware_concurrency();
  return n > 0 ? int(n) : 1;
}

int max_thread_count() { return 4 * default_thread_count(); }

int resolve_thread_count(int requested) {
  if (requested <= 0) return default_thread_count();
  if (requested > max_thread_count())
    throw std::invalid_argument("n_threads " + std::to_string(requested) + " is more than " +
                                std::to_string(max_thread_count()) + " (4 x the " +
                                std::to_string(default_thread_count()) +
                                " cores this process may use); threads beyond the cores only slow it down");
  return requested;
}

ThreadPool::ThreadPool(int n_threads) : n_threads_(std::max(1, n_threads)) {
  threads_.reserve(size_t(n_threads_ - 1));
  for (int i = 1; i < n_threads_; ++i) {
    try {
      threads_.emplace_back(&ThreadPool::worker, this, i);
    } catch (const std::system_error& e) {
      // The destructor does not run for a half-built pool: stop and join the
      // workers already started here, or their std::thread objects would
      // call std::terminate when the vector is destroyed.
      stop_and_join();
      throw std::runtime_error("cannot start thread " + std::to_string(i + 1) + " of " + std::to_string(n_threads_) +
                               " (" + e.what() + "); ask for fewer threads");
    }
  }
}

ThreadPool::~ThreadPool() { stop_and_join(); }

void ThreadPool::stop_and_join() {
  {
    std::lock_guard<std::mutex> lock(mu_);
    stop_ = true;
  }
  start_cv_.notify_all();
  for (auto& t : threads_) t.join();
  threads_.clear();
}

void ThreadPool::parallel_for(int64_t n, int64_t grain, const std::function<void(int64_t, int64_t, int)>& fn,
                              int64_t chunks_per_thread) {
  if (n <= 0) return;
  grain = std::max<int64_t>(1, grain);
  const int64_t n_grains = (n + grain - 1) / grain;
  const int n_used = int(std::min<int64_t>(n_threads_, n_grains));
  if (n_used == 1) {
    fn(0, n, 0);
    return;
  }
  // Up to chunks_per_thread chunks per thread: each thread first runs the
  // chunk of its own index, then takes the chunks left over in turn.
  const int64_t n_chunks_max = std::min<int64_t>(n_grains, int64_t(n_used) * std::max<int64_t>(1, chunks_per_thread));
  const int64_t chunk = (n_grains + n_chunks_max - 1) / n_chunks_max * grain;
  job_ = &fn;
  job_n_ = n;
  job_chunk_ = chunk;
  next_chunk_.store(n_threads_, std::memory_order_relaxed);
  pending_.store(n_threads_ - 1);
  generation_.fetch_add(1);  // publishes the job (seq_cst: ordered before the read of sleeping_)
  if (sleeping_.load() > 0) {
    // Taking the lock orders this wake-up after any sleeper's predicate check.
    { std::lock_guard<std::mutex> lock(mu_); }
    start_cv_.notify_all();
  }
  run_chunks(0);
  // Spin for the others; after a while yield the core, in case a worker is
  // waiting for it (more runnable threads than cores).
  for (int i = 0; pending_.load(std::memory_order_acquire) != 0; ++i) {
    if (i < 4096) SC_CPU_RELAX();
    else std::this_thread::yield();
  }
  job_ = nullptr;
}

bool ThreadPool::wait_for_job(uint64_t seen) {
  const auto until = std::chrono::steady_clock::now() + kSpinTime;
  for (int i = 0;; ++i) {
    if (generation_.load(std::memory_order_acquire) != seen) return true;
    if (stop_.load()) return false;
    if (i < 4096) {
      SC_CPU_RELAX();
    } else {
      std::this_thread::yield();  // let a thread that has work run first
      if (std::chrono::steady_clock::now() > until) break;
    }
  }
  std::unique_lock<std::mutex> lock(mu_);
  sleeping_.fetch_add(1);
  start_cv_.wait(lock, [&] { return stop_.load() || generation_.load() != seen; });
  sleeping_.fetch_sub(1);
  return !stop_.load();
}

void ThreadPool::run_chunks(int index) {
  const int64_t n = job_n_, chunk = job_chunk_, n_chunks = (n + chunk - 1) / chunk;
  for (int64_t c = index; c < n_chunks; c = next_chunk_.fetch_add(1, std::memory_order_relaxed)) {
    const int64_t begin = c * chunk;
    (*job_)(begin, std::min(n, begin + chunk), index);
  }
}

void ThreadPool::worker(int index) {
  uint64_t seen = 0;
  while (wait_for_job(seen)) {
    seen = generation_.load(std::memory_order_acquire);
    run_chunks(index);
    pending_.fetch_sub(1, std::memory_order_release);
  }
}

}  // namespace sc
