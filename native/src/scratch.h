/*
 * Large scratch buffers that go back to the operating system when freed.
 *
 * glibc serves big malloc requests with mmap, but after the first such block is freed it raises its mmap threshold
 * to that block's size (up to 32 MB), so the next request of the same size comes from the brk heap, and a free
 * block there stays resident for the rest of the process (it is only trimmed above twice the new threshold). A
 * kernel that needs tens of MB once per training step would then hold them for good, on top of the peak the
 * step reaches elsewhere. Mapping such buffers directly returns the pages on every free.
 *
 * Under -std=c11, MAP_ANONYMOUS needs _DEFAULT_SOURCE, defined by the including file before any system header.
 */
#ifndef ADAPTER_SCRATCH_H
#define ADAPTER_SCRATCH_H

#include <stddef.h>
#include <stdlib.h>

#if defined(__unix__) || defined(__APPLE__)
#include <sys/mman.h>

/* Zero-filled, like calloc; NULL when out of memory. */
static inline void *scratch_alloc(size_t bytes) {
  if (bytes == 0) bytes = 1;
  void *p = mmap(NULL, bytes, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
  return p == MAP_FAILED ? NULL : p;
}

static inline void scratch_free(void *p, size_t bytes) {
  if (p != NULL) munmap(p, bytes == 0 ? 1 : bytes);
}
#else
static inline void *scratch_alloc(size_t bytes) { return calloc(bytes == 0 ? 1 : bytes, 1); }
static inline void scratch_free(void *p, size_t bytes) { (void)bytes; free(p); }
#endif

#endif
