#include "pool.h"

#include <pthread.h>
#include <sched.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <unistd.h>

/* Polls of the job counter before an idle worker sleeps: about 0.1 ms, shorter than the gap between kernels. */
#define SPIN_POLLS 4000

static inline void cpu_relax(void) {
#if defined(__x86_64__) || defined(__i386__)
  __builtin_ia32_pause();
#elif defined(__aarch64__)
  __asm__ __volatile__("yield");
#endif
}

typedef struct {
  pool_body body;
  void *ctx;
  int64_t n, chunk;
  atomic_llong next;  /* first item not yet handed out */
} Job;

static pthread_mutex_t lock = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t wake = PTHREAD_COND_INITIALIZER;
static pthread_t workers[POOL_MAX_THREADS];
static int started_workers = 0;     /* worker threads alive (threads - 1 once started) */
static int wanted_threads = 0;      /* 0 until first use: then pool_default_threads() */
static atomic_int generation = 0;   /* bumped once per job; workers run each generation once */
static atomic_int busy_workers = 0; /* workers still inside the current job */
static atomic_int sleepers = 0;
static atomic_bool stopping = false;
static Job job;

int pool_default_threads(void) {
  long cores = sysconf(_SC_NPROCESSORS_ONLN);
  if (cores < 1) return 1;
  return cores > POOL_MAX_THREADS ? POOL_MAX_THREADS : (int)cores;
}

static void run_chunks(int worker) {
  for (;;) {
    int64_t begin = atomic_fetch_add(&job.next, job.chunk);
    if (begin >= job.n) return;
    int64_t end = begin + job.chunk < job.n ? begin + job.chunk : job.n;
    job.body(job.ctx, begin, end, worker);
  }
}

static int start_generation; /* the generation when workers were started: the first one they wait past */

static void *worker_main(void *arg) {
  int worker = (int)(intptr_t)arg;
  /* Not atomic_load(&generation): a job may already have been posted by the time this thread first runs. */
  int seen = start_generation;
  for (;;) {
    int now = seen;
    for (int i = 0; i < SPIN_POLLS && (now = atomic_load_explicit(&generation, memory_order_acquire)) == seen; i++) {
      cpu_relax();
    }
    if (now == seen) {
      pthread_mutex_lock(&lock);
      atomic_fetch_add(&sleepers, 1);
      while ((now = atomic_load(&generation)) == seen && !atomic_load(&stopping)) pthread_cond_wait(&wake, &lock);
      atomic_fetch_sub(&sleepers, 1);
      pthread_mutex_unlock(&lock);
    }
    if (atomic_load(&stopping)) return NULL;
    seen = now;
    run_chunks(worker);
    atomic_fetch_sub_explicit(&busy_workers, 1, memory_order_release);
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
  start_generation = atomic_load(&generation);
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
  int threads = pool_threads();
  if (grain < 1) grain = 1;
  if (threads == 1 || n <= grain) {
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
  atomic_store(&job.next, 0);
  atomic_store(&busy_workers, started_workers);
  atomic_fetch_add_explicit(&generation, 1, memory_order_release);
  if (atomic_load(&sleepers) > 0) {
    pthread_mutex_lock(&lock);
    pthread_cond_broadcast(&wake);
    pthread_mutex_unlock(&lock);
  }
  run_chunks(0);
  /* Workers may still be finishing their last chunk; the job's ctx lives on this stack until they are done. */
  for (int i = 0; atomic_load_explicit(&busy_workers, memory_order_acquire) > 0; i++) {
    if (i < SPIN_POLLS) cpu_relax();
    else sched_yield();
  }
}
