// A persistent pool of worker threads: parallel_for hands each thread one
// contiguous slice of [0, n); no thread is created per call.
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
  // Calls fn(begin, end, thread_index) on disjoint slices covering [0, n),
  // the calling thread taking slice 0. Returns when all slices are done.
  // Slices are multiples of `grain` (except the last). Not reentrant: one
  // caller at a time (each Model owns its pool and serialises its calls).
  void parallel_for(int64_t n, int64_t grain, const std::function<void(int64_t, int64_t, int)>& fn);

 private:
  void worker(int index);
  void stop_and_join();
  // Waits until generation_ differs from `seen` (or stop); returns false on stop.
  bool wait_for_job(uint64_t seen);

  int n_threads_;
  std::vector<std::thread> threads_;
  // The current job (written before generation_ is bumped, read after).
  const std::function<void(int64_t, int64_t, int)>* job_ = nullptr;
  int64_t job_n_ = 0, job_chunk_ = 0;
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
