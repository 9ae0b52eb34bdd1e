/*
 * A small persistent thread pool for the fused kernels (pthreads, so it builds wherever the addon does, including
 * macOS, whose compiler has no OpenMP).
 *
 * One threading system for the whole addon: while the pool runs, BLAS is held at one thread, and each pool thread
 * calls single-threaded BLAS on its own block. So OpenBLAS's own threads never run at the same time as ours and the
 * machine is not oversubscribed. Idle workers spin briefly (a kernel usually follows another within microseconds)
 * and then sleep on a condition variable, so an idle addon costs no CPU.
 */
#ifndef ADAPTER_NATIVE_POOL_H
#define ADAPTER_NATIVE_POOL_H

#include <stdint.h>

/* Runs items [begin, end) of a parallel loop; `worker` is in [0, pool_threads()), for per-thread scratch. */
typedef void (*pool_body)(void *ctx, int64_t begin, int64_t end, int worker);

/* Threads the pool uses, the caller included (1..POOL_MAX_THREADS). Starts or stops workers as needed. */
void pool_set_threads(int threads);
int pool_threads(void);
/* Online cores, the default thread count. */
int pool_default_threads(void);

#define POOL_MAX_THREADS 64

/*
 * Splits [0, n) into chunks of at least `grain` items and runs `body` on them over the pool; returns when every
 * chunk is done. Chunks are handed out dynamically, so uneven items (causal attention rows) balance. Runs inline
 * when n is small or the pool has one thread. Not reentrant: a body must not call pool_for.
 */
void pool_for(int64_t n, int64_t grain, pool_body body, void *ctx);

#endif
