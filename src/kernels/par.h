/* What kernels know of threads: a pool they may split work over.
 *
 * Kernels take a `kiln_threads *` (NULL: run on the calling thread) and never
 * an operator context. kiln_threads_run splits [0, n) into at most one
 * contiguous range per thread, each at least `grain` long; the calling
 * thread takes the first range. fn must not allocate outputs.
 */
#ifndef KILN_PAR_H
#define KILN_PAR_H

#include <stddef.h>

typedef struct kiln_threads kiln_threads;
typedef void (*kiln_range_fn)(void *arg, size_t begin, size_t end);

void kiln_threads_run(kiln_threads *t, size_t n, size_t grain, kiln_range_fn fn, void *arg);
int kiln_threads_count(const kiln_threads *t);

#endif
