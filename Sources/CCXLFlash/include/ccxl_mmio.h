/*
 * ccxl_mmio.h - 64-bit big-endian MMIO accessors and host-memory ordering helpers.
 *
 * Part of Superpipe's CCXLFlash shim (Docs/driver-model.md 7.1, 7.6, 7.7). The SISLite
 * per-context registers are 64 bits wide, big-endian, and accept only 64-bit accesses, so every
 * access below is a single naturally aligned 64-bit volatile load or store, byte-swapped on
 * little-endian hosts (what capiflash does with ldbrx/stdbrx).
 *
 * Ordering contract:
 *  - ccxl_mmio_write64: every earlier store to ordinary memory (the IOARCB, a zeroed IOASA, a
 *    re-zeroed RRQ) is visible to the adapter before the register store (a doorbell such as
 *    IOARRIN). powerpc: hwsync ("sync"), which also orders cacheable before cache-inhibited
 *    stores. x86-64: stores are not reordered with older stores (also for UC mappings), so a
 *    compiler barrier suffices. Other architectures: a full fence.
 *  - ccxl_mmio_read64: the register load completes before any later load (powerpc: twi+isync as
 *    the kernel's in_be64; x86-64: compiler barrier; others: full fence).
 *  - ccxl_load_acquire64 / ccxl_store_release64: for memory the adapter writes coherently (RRQ
 *    entries, IOASA): observe an RRQ entry with acquire, then read the IOASA it points at.
 */
#ifndef CCXL_MMIO_H
#define CCXL_MMIO_H

#include "ccxl_base.h"

static inline uint64_t ccxl_bswap64_if_le(uint64_t v) {
#if defined(__BYTE_ORDER__) && (__BYTE_ORDER__ == __ORDER_BIG_ENDIAN__)
	return v;
#else
	return __builtin_bswap64(v);
#endif
}

/* Converts a host value to the register (big-endian) representation and back. */
static inline uint64_t ccxl_cpu_to_be64(uint64_t v) { return ccxl_bswap64_if_le(v); }
static inline uint64_t ccxl_be64_to_cpu(uint64_t v) { return ccxl_bswap64_if_le(v); }

/* Barrier before an MMIO store: all earlier ordinary stores become visible first. */
static inline void ccxl_mmio_wmb(void) {
#if defined(__powerpc64__) || defined(__powerpc__)
	__asm__ __volatile__("sync" ::: "memory");
#elif defined(__x86_64__) || defined(__i386__)
	__asm__ __volatile__("" ::: "memory");
#else
	__atomic_thread_fence(__ATOMIC_SEQ_CST);
#endif
}

/* Barrier after an MMIO load: the load completes before later loads. */
static inline void ccxl_mmio_rmb_after_load(uint64_t loaded) {
#if defined(__powerpc64__) || defined(__powerpc__)
	__asm__ __volatile__("twi 0,%0,0; isync" : : "r"(loaded) : "memory");
#elif defined(__x86_64__) || defined(__i386__)
	(void)loaded;
	__asm__ __volatile__("" ::: "memory");
#else
	(void)loaded;
	__atomic_thread_fence(__ATOMIC_SEQ_CST);
#endif
}

/* Reads the 64-bit big-endian register at window + offset; returns it in host order.
 * 0xFFFFFFFFFFFFFFFF means the context is in the error state or the slot is frozen (spec 7.10). */
static inline uint64_t ccxl_mmio_read64(const void *window, size_t offset) {
	const volatile uint64_t *reg = (const volatile uint64_t *)((const char *)window + offset);
	uint64_t raw = *reg;
	ccxl_mmio_rmb_after_load(raw);
	return ccxl_be64_to_cpu(raw);
}

/* Writes the host-order value to the 64-bit big-endian register at window + offset, after
 * ordering all earlier stores to memory before it. */
static inline void ccxl_mmio_write64(void *window, size_t offset, uint64_t value) {
	volatile uint64_t *reg = (volatile uint64_t *)((char *)window + offset);
	ccxl_mmio_wmb();
	*reg = ccxl_cpu_to_be64(value);
}

/* Acquire load of a host-memory u64 the adapter writes (an RRQ entry). */
static inline uint64_t ccxl_load_acquire64(const void *address) {
	return __atomic_load_n((const uint64_t *)address, __ATOMIC_ACQUIRE);
}

/* Release store of a host-memory u64 (the adapter side of an RRQ entry). */
static inline void ccxl_store_release64(void *address, uint64_t value) {
	__atomic_store_n((uint64_t *)address, value, __ATOMIC_RELEASE);
}

/* Acquire load of a host-memory u32 (an IOASA's ioasc, or a doorbell word). */
static inline uint32_t ccxl_load_acquire32(const void *address) {
	return __atomic_load_n((const uint32_t *)address, __ATOMIC_ACQUIRE);
}

/* ---- Atomics on memory shared between processes (the mock adapter's control page) -------- */

static inline uint64_t ccxl_atomic_load_acquire_u64(const void *address) {
	return __atomic_load_n((const uint64_t *)address, __ATOMIC_ACQUIRE);
}
static inline uint64_t ccxl_atomic_load_relaxed_u64(const void *address) {
	return __atomic_load_n((const uint64_t *)address, __ATOMIC_RELAXED);
}
static inline void ccxl_atomic_store_release_u64(void *address, uint64_t value) {
	__atomic_store_n((uint64_t *)address, value, __ATOMIC_RELEASE);
}
static inline int ccxl_atomic_cas_u64(void *address, uint64_t expected, uint64_t desired) {
	return __atomic_compare_exchange_n((uint64_t *)address, &expected, desired, 0, __ATOMIC_ACQ_REL,
					   __ATOMIC_RELAXED);
}
static inline int ccxl_atomic_cas_u32(void *address, uint32_t expected, uint32_t desired) {
	return __atomic_compare_exchange_n((uint32_t *)address, &expected, desired, 0, __ATOMIC_ACQ_REL,
					   __ATOMIC_RELAXED);
}
static inline uint32_t ccxl_atomic_load_acquire_u32(const void *address) {
	return __atomic_load_n((const uint32_t *)address, __ATOMIC_ACQUIRE);
}
static inline void ccxl_atomic_store_release_u32(void *address, uint32_t value) {
	__atomic_store_n((uint32_t *)address, value, __ATOMIC_RELEASE);
}
static inline uint32_t ccxl_atomic_fetch_add_u32(void *address, uint32_t value) {
	return __atomic_fetch_add((uint32_t *)address, value, __ATOMIC_ACQ_REL);
}
static inline uint32_t ccxl_atomic_fetch_or_u32(void *address, uint32_t value) {
	return __atomic_fetch_or((uint32_t *)address, value, __ATOMIC_ACQ_REL);
}
static inline uint32_t ccxl_atomic_fetch_and_u32(void *address, uint32_t value) {
	return __atomic_fetch_and((uint32_t *)address, value, __ATOMIC_ACQ_REL);
}
static inline uint32_t ccxl_atomic_exchange_u32(void *address, uint32_t value) {
	return __atomic_exchange_n((uint32_t *)address, value, __ATOMIC_ACQ_REL);
}
/* A full fence (store-load ordering: publish, then check whether the other side sleeps). */
static inline void ccxl_atomic_fence(void) { __atomic_thread_fence(__ATOMIC_SEQ_CST); }

/* A spin-wait hint (x86 pause, powerpc low priority). */
static inline void ccxl_cpu_relax(void) {
#if defined(__x86_64__) || defined(__i386__)
	__builtin_ia32_pause();
#elif defined(__powerpc64__) || defined(__powerpc__)
	__asm__ __volatile__("or 1,1,1; or 2,2,2" ::: "memory");
#elif defined(__aarch64__)
	__asm__ __volatile__("yield" ::: "memory");
#endif
}

#endif /* CCXL_MMIO_H */
