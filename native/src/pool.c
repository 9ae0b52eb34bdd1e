#include "pool.h"

#include <pthread.h>
#include <sched.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <unistd.h>

/* Polls of the job word before an idle worker sleeps: about 0.1 ms, longer than the gap between two kernels. */
#define SPIN_POLLS 4000

static inline void cpu_relax(void) {
#if defined(__x86_64__) || defined(__i386__)
  __builtin_ia32_pause();
#elif defined(__aarch64__)
  __asm__ __volatile__("yield");
#endif
}

/*
 * The current job. Its fields are written by the caller before it publishes the job in `state`, and stay fixed
 * until every item is done, so a worker that claimed an item (see claim) reads them consistently.
 */
static struct {
  pool_body body;
  void *ctx;
  int64_t n, chunk;
} job;

/*
 * state = (generation << 32) | next item. Items are claimed by compare-and-swap on the whole word, so a worker
 * that read an old generation can never claim (and run) an item of a newer job. The caller waits for `done` to
 * reach n, not for the workers: a worker the OS has not scheduled yet costs nothing, the caller (or another
 * worker) takes its items. That keeps small kernels fast on a loaded machine.
 */
static _Atomic uint64_t state = 0;
static atomic_llong done = 0;

static pthread_mutex_t lock = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t wake = PTHREAD_COND_INITIALIZER;
static pthread_t workers[POOL_MAX_THREADS];
static int started_workers = 0; /* worker threads alive (threads - 1 once started) */
static int wanted_threads = 0;  /* 0 until first use: then pool_default_threads() */
static atomic_int sleepers = 0;
static atomic_bool stopping = false;
static uint32_t generation = 0; /* the caller's count of jobs (only pool_for writes it) */

int pool_default_threads(void) {
  long cores = sysconf(_SC_NPROCESSORS_ONLN);
  if (cores < 1) return 1;
  return cores > POOL_MAX_THREADS ? POOL_MAX_THREADS : (int)cores;
}

/* Claims and runs items of job `gen` until none are left; returns when the job is exhausted or superseded. */
static void run_items(uint32_t gen, int worker) {
  for (;;) {
    uint64_t s = atomic_load_explicit(&state, memory_order_acquire);
    if ((uint32_t)(s >> 32) != gen) return;
    const int64_t begin = (int64_t)(uint32_t)s, n = job.n, chunk = job.chunk;
    if (begin >= n) return;
    const int64_t end = begin + chunk < n ? begin + chunk : n;
    if (!atomic_compare_exchange_weak_explicit(&state, &s, s + (uint64_t)(end - begin), memory_order_acq_rel,
                                               memory_order_relaxed)) {
      continue;
    }
    job.body(job.ctx, begin, end, worker);
    atomic_fetch_add_explicit(&done, end - begin, memory_order_release);
  }
}

static void *worker_main(void *arg) {
  const int worker = (int)(intptr_t)arg;
  uint32_t seen = (uint32_t)(atomic_load(&state) >> 32);
  for (;;) {
    uint32_t now = seen;
    for (int i = 0; i < SPIN_POLLS; i++) {
      now = (uint32_t)(atomic_load_explicit(&state, memory_order_acquire) >> 32);
      if (now != seen) break;
      cpu_relax();
    }
    if (now == seen) {
      pthread_mutex_lock(&lock);
      atomic_fetch_add(&sleepers, 1);
      while ((now = (uint32_t)(atomic_load(&state) >> 32)) == seen && !atomic_load(&stopping)) {
        pthread_cond_wait(&wake, &lock);
      }
      atomic_fetch_sub(&sleepers, 1);
      pthread_mutex_unlock(&lock);
    }
    if (atomic_load(&stopping)) return NULL;
    seen = now;
    run_items(now, worker);
  }
}

static void stop_workers(void) {
  pthread_mutex_lock(&lock);
  atomic_store(&stopping, true);
  pthread_cond_broadcast(&wake);
  pthread_mutex_unlock(&lock);
  for (int i = 0; i < started_workers; i++) pthread_join(workers[i], NULL);
  started_workers = 0;
  atomic_store(&stopping, false);
}

static void start_workers(int count) {
  for (int i = 0; i < count; i++) {
    if (pthread_create(&workers[i], NULL, worker_main, (void *)(intptr_t)(i + 1)) != 0) break;
    started_workers++;
  }
}

void pool_set_threads(int threads) {
  if (threads < 1) threads = 1;
  if (threads > POOL_MAX_THREADS) threads = POOL_MAX_THREADS;
  if (threads == wanted_threads && started_workers == threads - 1) return;
  stop_workers();
  wanted_threads = threads;
  start_workers(threads - 1);
}

int pool_threads(void) {
  if (wanted_threads == 0) pool_set_threads(pool_default_threads());
  return started_workers + 1;
}

void pool_for(int64_t n, int64_t grain, pool_body body, void *ctx) {
  if (n <= 0) return;
  const int threads = pool_threads();
  if (grain < 1) grain = 1;
  /* Item indices share a 64-bit word with the generation; larger loops (none today) simply run inline. */
  if (threads == 1 || n <= grain || n >= ((int64_t)1 << 32)) {
    body(ctx, 0, n, 0);
    return;
  }
  /* About four chunks per thread: enough to balance uneven items without much hand-out traffic. */
  int64_t chunk = (n + 4 * threads - 1) / (4 * threads);
  if (chunk < grain) chunk = grain;
  job.body = body;
  job.ctx = ctx;
  job.n = n;
  job.chunk = chunk;
  atomic_store_explicit(&done, 0, memory_order_relaxed);
  generation++;
  atomic_store_explicit(&state, (uint64_t)generation << 32, memory_order_release);
  if (atomic_load(&sleepers) > 0) {
    pthread_mutex_lock(&lock);
    pthread_cond_broadcast(&wake);
    pthread_mutex_unlock(&lock);
  }
  run_items(generation, 0);
  /* Items other threads claimed may still be running; ctx lives on the caller's stack until they finish. */
  for (int i = 0; atomic_load_explicit(&done, memory_order_acquire) < n; i++) {
    if (i < SPIN_POLLS) cpu_relax();
    else sched_yield();
  }
}
