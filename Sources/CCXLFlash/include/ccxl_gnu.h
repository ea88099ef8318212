/*
 * ccxl_gnu.h - thin wrappers for Linux calls that glibc declares only under _GNU_SOURCE, or whose
 * use needs C macros that do not import into Swift (CMSG_*). No policy: each returns what the call
 * returns and leaves errno as the call set it. _GNU_SOURCE is defined only in ccxl_gnu.c.
 */
#ifndef CCXL_GNU_H
#define CCXL_GNU_H

#include <stddef.h>
#include <sys/types.h>

/* memfd_create(2): an anonymous shared-memory file (the mock's MMIO windows). */
int ccxl_memfd_create(const char *name, unsigned int flags);

/* MFD_CLOEXEC for ccxl_memfd_create. */
#define CCXL_MFD_CLOEXEC 0x0001U

/* The most descriptors one message carries. */
#define CCXL_MAX_PASSED_FDS 4

/* sendmsg(2) of one buffer plus nfds (0...CCXL_MAX_PASSED_FDS) descriptors as SCM_RIGHTS, with
 * MSG_NOSIGNAL. Returns bytes sent or -1. */
ssize_t ccxl_send_with_fds(int sock, const void *buffer, size_t length, const int *fds, int nfds);

/* recvmsg(2) of one message into buffer, collecting up to CCXL_MAX_PASSED_FDS SCM_RIGHTS
 * descriptors (received with MSG_CMSG_CLOEXEC) into fds and their count into *nfds. *truncated is
 * set when the message or its control data did not fit. Returns bytes received, 0 at end of file,
 * or -1. */
ssize_t ccxl_recv_with_fds(int sock, void *buffer, size_t length, int flags, int *fds, int *nfds,
			   int *truncated);

/* SO_PEERCRED of a connected Unix socket: the process, user and group that connected. */
int ccxl_peer_credentials(int sock, pid_t *pid, uid_t *uid, gid_t *gid);

/* process_vm_readv/process_vm_writev(2) of one local and one remote range. */
ssize_t ccxl_process_vm_read(pid_t pid, void *local, const void *remote, size_t length);
ssize_t ccxl_process_vm_write(pid_t pid, const void *local, void *remote, size_t length);

/* process_vm_writev(2) of count ranges in one call: lengths[i] bytes from local[i] to remote[i]
 * (count <= 256). Returns the bytes written (the kernel stops at the first range it cannot write)
 * or -1. */
ssize_t ccxl_process_vm_write_ranges(pid_t pid, void *const *local, void *const *remote, const size_t *lengths,
				     int count);

/* futex(2) FUTEX_WAIT (shared, not private: the word may live in memory shared between
 * processes) with a relative timeout in nanoseconds (negative: none). */
int ccxl_futex_wait(const void *word, unsigned int expected, long long timeout_ns);

/* futex(2) FUTEX_WAKE (shared) of up to count waiters. */
int ccxl_futex_wake(const void *word, int count);

/* fallocate(2) FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE: deallocate a byte range (reads back
 * zeros). */
int ccxl_punch_hole(int fd, long long offset, long long length);

/* accept4(2) with SOCK_CLOEXEC | SOCK_NONBLOCK (atomic: no window in which a concurrently spawned
 * child inherits the descriptor). */
int ccxl_accept_cloexec_nonblock(int listener);

/* eventfd(2) with EFD_CLOEXEC | EFD_NONBLOCK. */
int ccxl_eventfd(void);

#endif /* CCXL_GNU_H */
