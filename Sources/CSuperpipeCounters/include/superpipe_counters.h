// Per-thread counters of lock acquisitions and system calls (Superpipe's instrumentation), the
// per-thread flag of Superpipe's fork gate, and the pthread mutex that Superpipe's lock uses in
// ThreadSanitizer builds. No other logic.
//
// The counters are C11 thread-locals incremented by the static inline functions below (one
// thread-local add: the lock and system-call paths stay as cheap as they were). Swift reads them
// through `Instrumentation` (`@_spi(Instrumentation) import Superpipe`).

#ifndef SUPERPIPE_COUNTERS_H
#define SUPERPIPE_COUNTERS_H

#include <stdint.h>

/// What the calling thread has done since it started.
typedef struct superpipe_thread_counts {
  /// Lock acquisitions by the Superpipe library (its `Mutex`).
  uint64_t library_locks;
  /// System calls made by the Superpipe library (`Syscall`: device calls, futex, sched_yield,
  /// nanosleep, thread creation).
  uint64_t library_syscalls;
  /// Lock acquisitions by the package's other modules (the mock, libcflsh_block, tools, tests).
  uint64_t other_locks;
  /// System calls the package's other modules count (the mock adapter's own calls).
  uint64_t other_syscalls;
} superpipe_thread_counts;

extern _Thread_local superpipe_thread_counts superpipe_thread_counts_tls;

static inline void superpipe_count_library_lock(void) { superpipe_thread_counts_tls.library_locks += 1; }
static inline void superpipe_count_library_syscall(void) { superpipe_thread_counts_tls.library_syscalls += 1; }
static inline void superpipe_count_other_lock(void) { superpipe_thread_counts_tls.other_locks += 1; }
static inline void superpipe_count_other_syscall(void) { superpipe_thread_counts_tls.other_syscalls += 1; }

/// The calling thread's counts.
static inline superpipe_thread_counts superpipe_thread_counts_get(void) { return superpipe_thread_counts_tls; }

/// 1 while the calling thread is inside Superpipe's fork gate (ForkGate.swift), else 0. Set and
/// cleared by the gate only; the library's blocking calls read it to step out of the gate.
extern _Thread_local uint32_t superpipe_fork_gate_inside_tls;

static inline uint32_t superpipe_fork_gate_inside(void) { return superpipe_fork_gate_inside_tls; }
static inline void superpipe_fork_gate_set_inside(uint32_t inside) { superpipe_fork_gate_inside_tls = inside; }

/// A heap-allocated, default-initialised `pthread_mutex_t` (ThreadSanitizer builds of Superpipe's
/// lock: TSan intercepts pthread_mutex_* and so sees the happens-before the lock provides). Never
/// NULL (aborts when out of memory).
void *superpipe_pthread_mutex_create(void);
void superpipe_pthread_mutex_destroy(void *mutex);
void superpipe_pthread_mutex_lock(void *mutex);
/// 1 when the mutex was taken, 0 when another thread holds it.
int superpipe_pthread_mutex_trylock(void *mutex);
void superpipe_pthread_mutex_unlock(void *mutex);

#endif
