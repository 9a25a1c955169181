// A persistent pool of worker threads: parallel_for splits [0, n) into a
// few contiguous chunks per thread, which the threads take in turn (so a
// thread slowed by its neighbours does not hold up the rest); no thread is
// created per call.
//
// A forward pass makes ~10 parallel calls per layer, each a few tens of
// microseconds at decode. Waking a thread through a condition variable costs
// about that much again, so workers spin (with a pause) for a short while
// after each job before they block, and the caller spins for the others to
// finish. Spinning is bounded: an idle pool sleeps and costs nothing.
#pragma once
#include <atomic>
#include <condition_variable>
#include <cstdint>
#include <functional>
#include <mutex>
#include <thread>
#include <vector>

namespace sc {

class ThreadPool {
 public:
  // Starts n_threads - 1 workers. Throws std::runtime_error (after joining
  // those already started) when the system cannot create one.
  explicit ThreadPool(int n_threads);
  ~ThreadPool();
  ThreadPool(const ThreadPool&) = delete;
  ThreadPool& operator=(const ThreadPool&) = delete;

  int size() const { return n_threads_; }
  // Calls fn(begin, end, thread_index) on disjoint chunks covering [0, n);
  // a thread may get several chunks, or none. Thread i starts with chunk i
  // (the caller with chunk 0), so with at most one chunk per thread the
  // split is static. Returns when all chunks are done. Chunks start at
  // multiples of `grain`, up to chunks_per_thread per thread: one
  // contiguous slice per thread left the caller waiting 14% of a Q4_0
  // decode step for the other thread (2 vCPUs, Zen 3: the same number of
  // rows took them different times); with a few chunks each, the faster
  // thread takes the slower one's last chunk. Not reentrant: one
  // caller at a time (each Model owns its pool and serialises its calls).
  static constexpr int64_t kChunksPerThread = 4;
  void parallel_for(int64_t n, int64_t grain, const std::function<void(int64_t, int64_t, int)>& fn,
                    int64_t chunks_per_thread = kChunksPerThread);

 private:
  void worker(int index);
  // Runs chunk `index`, then claims chunks from next_chunk_ until none is left.
  void run_chunks(int index);
  void stop_and_join();
  // Waits until generation_ differs from `seen` (or stop); returns false on stop.
  bool wait_for_job(uint64_t seen);

  int n_threads_;
  std::vector<std::thread> threads_;
  // The current job (written before generation_ is bumped, read after).
  const std::function<void(int64_t, int64_t, int)>* job_ = nullptr;
  int64_t job_n_ = 0, job_chunk_ = 0;
  std::atomic<int64_t> next_chunk_{0};
  std::atomic<uint64_t> generation_{0};
  std::atomic<int> pending_{0};
  std::atomic<int> sleeping_{0};
  std::atomic<bool> stop_{false};
  std::mutex mu_;
  std::condition_variable start_cv_;
};

// Default thread count: the cores this process may run on.
int default_thread_count();

// Most threads a caller may ask for: 4x default_thread_count(). More threads
// than cores only take turns on them, and the pool's spinning makes each
// turn cost a scheduler slice, so a much larger count is a mistake, not a
// setting (n_threads=1000 on 2 cores turned a completion into minutes).
int max_thread_count();

// `requested` threads, or default_thread_count() when it is <= 0. Throws
// std::invalid_argument naming the limit when it exceeds max_thread_count().
int resolve_thread_count(int requested);

}  // namespace sc
