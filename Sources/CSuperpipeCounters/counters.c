#include "superpipe_counters.h"

#include <pthread.h>
#include <stdlib.h>

_Thread_local superpipe_thread_counts superpipe_thread_counts_tls;
_Thread_local uint32_t superpipe_fork_gate_inside_tls;

void *superpipe_pthread_mutex_create(void) {
  pthread_mutex_t *mutex = malloc(sizeof *mutex);
  if (mutex == NULL) abort();
  if (pthread_mutex_init(mutex, NULL) != 0) abort();
  return mutex;
}

void superpipe_pthread_mutex_destroy(void *mutex) {
  pthread_mutex_destroy(mutex);
  free(mutex);
}

void superpipe_pthread_mutex_lock(void *mutex) {
  if (pthread_mutex_lock(mutex) != 0) abort();
}

int superpipe_pthread_mutex_trylock(void *mutex) { return pthread_mutex_trylock(mutex) == 0; }

void superpipe_pthread_mutex_unlock(void *mutex) {
  if (pthread_mutex_unlock(mutex) != 0) abort();
}
