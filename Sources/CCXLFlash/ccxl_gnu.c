/* ccxl_gnu.c - see ccxl_gnu.h. */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <sys/eventfd.h>
#include <limits.h>
#include <linux/futex.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <sys/uio.h>
#include <time.h>
#include <unistd.h>

#include "ccxl_gnu.h"

int ccxl_memfd_create(const char *name, unsigned int flags) { return memfd_create(name, flags); }

ssize_t ccxl_send_with_fds(int sock, const void *buffer, size_t length, const int *fds, int nfds) {
	struct iovec iov = {.iov_base = (void *)buffer, .iov_len = length};
	union {
		char bytes[CMSG_SPACE(sizeof(int) * CCXL_MAX_PASSED_FDS)];
		struct cmsghdr align;
	} control;
	struct msghdr message;
	memset(&message, 0, sizeof message);
	message.msg_iov = &iov;
	message.msg_iovlen = 1;
	if (nfds < 0 || nfds > CCXL_MAX_PASSED_FDS) {
		errno = EINVAL;
		return -1;
	}
	if (nfds > 0) {
		memset(&control, 0, sizeof control);
		message.msg_control = control.bytes;
		message.msg_controllen = CMSG_SPACE(sizeof(int) * (size_t)nfds);
		struct cmsghdr *header = CMSG_FIRSTHDR(&message);
		header->cmsg_level = SOL_SOCKET;
		header->cmsg_type = SCM_RIGHTS;
		header->cmsg_len = CMSG_LEN(sizeof(int) * (size_t)nfds);
		memcpy(CMSG_DATA(header), fds, sizeof(int) * (size_t)nfds);
	}
	return sendmsg(sock, &message, MSG_NOSIGNAL);
}

ssize_t ccxl_recv_with_fds(int sock, void *buffer, size_t length, int flags, int *fds, int *nfds,
			   int *truncated) {
	struct iovec iov = {.iov_base = buffer, .iov_len = length};
	union {
		char bytes[CMSG_SPACE(sizeof(int) * CCXL_MAX_PASSED_FDS)];
		struct cmsghdr align;
	} control;
	struct msghdr message;
	memset(&message, 0, sizeof message);
	message.msg_iov = &iov;
	message.msg_iovlen = 1;
	message.msg_control = control.bytes;
	message.msg_controllen = sizeof control.bytes;
	*nfds = 0;
	*truncated = 0;
	ssize_t n = recvmsg(sock, &message, flags | MSG_CMSG_CLOEXEC);
	if (n < 0)
		return n;
	for (struct cmsghdr *header = CMSG_FIRSTHDR(&message); header != NULL;
	     header = CMSG_NXTHDR(&message, header)) {
		if (header->cmsg_level != SOL_SOCKET || header->cmsg_type != SCM_RIGHTS)
			continue;
		size_t count = (header->cmsg_len - CMSG_LEN(0)) / sizeof(int);
		for (size_t i = 0; i < count; i++) {
			int fd;
			memcpy(&fd, CMSG_DATA(header) + i * sizeof(int), sizeof fd);
			if (*nfds < CCXL_MAX_PASSED_FDS)
				fds[(*nfds)++] = fd;
			else
				close(fd);
		}
	}
	if (message.msg_flags & (MSG_TRUNC | MSG_CTRUNC))
		*truncated = 1;
	return n;
}

int ccxl_peer_credentials(int sock, pid_t *pid, uid_t *uid, gid_t *gid) {
	struct ucred credentials;
	socklen_t size = sizeof credentials;
	if (getsockopt(sock, SOL_SOCKET, SO_PEERCRED, &credentials, &size) != 0)
		return -1;
	*pid = credentials.pid;
	*uid = credentials.uid;
	*gid = credentials.gid;
	return 0;
}

ssize_t ccxl_process_vm_read(pid_t pid, void *local, const void *remote, size_t length) {
	struct iovec l = {.iov_base = local, .iov_len = length};
	struct iovec r = {.iov_base = (void *)remote, .iov_len = length};
	return process_vm_readv(pid, &l, 1, &r, 1, 0);
}

ssize_t ccxl_process_vm_write(pid_t pid, const void *local, void *remote, size_t length) {
	struct iovec l = {.iov_base = (void *)local, .iov_len = length};
	struct iovec r = {.iov_base = remote, .iov_len = length};
	return process_vm_writev(pid, &l, 1, &r, 1, 0);
}

ssize_t ccxl_process_vm_write_ranges(pid_t pid, void *const *local, void *const *remote, const size_t *lengths,
				     int count) {
	struct iovec l[256], r[256];
	if (count < 0 || count > 256) {
		errno = EINVAL;
		return -1;
	}
	for (int i = 0; i < count; i++) {
		l[i].iov_base = local[i];
		l[i].iov_len = lengths[i];
		r[i].iov_base = remote[i];
		r[i].iov_len = lengths[i];
	}
	return process_vm_writev(pid, l, (unsigned long)count, r, (unsigned long)count, 0);
}

int ccxl_futex_wait(const void *word, unsigned int expected, long long timeout_ns) {
	struct timespec timeout;
	struct timespec *pointer = NULL;
	if (timeout_ns >= 0) {
		timeout.tv_sec = (time_t)(timeout_ns / 1000000000LL);
		timeout.tv_nsec = (long)(timeout_ns % 1000000000LL);
		pointer = &timeout;
	}
	return (int)syscall(SYS_futex, word, FUTEX_WAIT, expected, pointer, NULL, 0);
}

int ccxl_futex_wake(const void *word, int count) {
	return (int)syscall(SYS_futex, word, FUTEX_WAKE, count, NULL, NULL, 0);
}

int ccxl_punch_hole(int fd, long long offset, long long length) {
	return fallocate(fd, FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE, (off_t)offset, (off_t)length);
}

int ccxl_eventfd(void) { return eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK); }

int ccxl_accept_cloexec_nonblock(int listener) {
	return accept4(listener, NULL, NULL, SOCK_CLOEXEC | SOCK_NONBLOCK);
}
