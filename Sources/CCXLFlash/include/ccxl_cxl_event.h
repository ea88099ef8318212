/*
 * ccxl_cxl_event.h - the CAPI adapter-fd event ABI (what read() returns on a cxlflash adapter fd).
 *
 * Part of Superpipe's CCXLFlash shim, restated from Docs/driver-model.md section 1.4 (the
 * kernel's include/uapi/misc/cxl.h). The names carry a ccxl_/CCXL_ prefix so that this copy never
 * clashes with <misc/cxl.h> when a translation unit includes both; the layout is checked here and,
 * where the machine has <misc/cxl.h>, compared with it by the test suite.
 *
 * read() semantics (spec 3.6): the buffer must be at least CCXL_READ_MIN_SIZE bytes (EINVAL
 * otherwise); each call returns exactly one event of header.size bytes: pending AFU interrupts
 * first (lowest number first), then a data-storage fault, then an AFU error; EIO once the CXL
 * context is closed (adapter reset) and nothing is pending; EAGAIN with O_NONBLOCK.
 */
#ifndef CCXL_CXL_EVENT_H
#define CCXL_CXL_EVENT_H

#include "ccxl_base.h"

/* Minimum read() size on an adapter fd (CXL_READ_MIN_SIZE). */
#define CCXL_READ_MIN_SIZE 0x1000

/* Event types (enum cxl_event_type). */
#define CCXL_EVENT_RESERVED 0
#define CCXL_EVENT_AFU_INTERRUPT 1
#define CCXL_EVENT_DATA_STORAGE 2
#define CCXL_EVENT_AFU_ERROR 3
#define CCXL_EVENT_AFU_DRIVER 4

/* struct cxl_event_header (8 bytes). */
struct ccxl_event_header {
	__u16 type;
	__u16 size;            /* size of the whole event, header included */
	__u16 process_element; /* the context's process element (ctxid) */
	__u16 reserved1;
};

/* struct cxl_event_afu_interrupt: irq is the 1-based AFU interrupt number (LISN). */
struct ccxl_event_afu_interrupt {
	__u16 flags;
	__u16 irq;
	__u32 reserved1;
};

/* struct cxl_event_data_storage: addr is the effective address that could not be translated. */
struct ccxl_event_data_storage {
	__u16 flags;
	__u16 reserved1;
	__u32 reserved2;
	__u64 addr;
	__u64 dsisr;
	__u64 reserved3;
};

/* struct cxl_event_afu_error. */
struct ccxl_event_afu_error {
	__u16 flags;
	__u16 reserved1;
	__u32 reserved2;
	__u64 error;
};

/* struct cxl_event: header followed by one body. */
struct ccxl_event {
	struct ccxl_event_header header;
	union {
		struct ccxl_event_afu_interrupt irq;
		struct ccxl_event_data_storage fault;
		struct ccxl_event_afu_error afu_error;
	} body;
};

CCXL_ASSERT_SIZE(struct ccxl_event_header, 8);
CCXL_ASSERT_OFFSET(struct ccxl_event_header, type, 0);
CCXL_ASSERT_OFFSET(struct ccxl_event_header, size, 2);
CCXL_ASSERT_OFFSET(struct ccxl_event_header, process_element, 4);
CCXL_ASSERT_OFFSET(struct ccxl_event_header, reserved1, 6);
CCXL_ASSERT_SIZE(struct ccxl_event_afu_interrupt, 8);
CCXL_ASSERT_OFFSET(struct ccxl_event_afu_interrupt, flags, 0);
CCXL_ASSERT_OFFSET(struct ccxl_event_afu_interrupt, irq, 2);
CCXL_ASSERT_OFFSET(struct ccxl_event_afu_interrupt, reserved1, 4);
CCXL_ASSERT_SIZE(struct ccxl_event_data_storage, 32);
CCXL_ASSERT_OFFSET(struct ccxl_event_data_storage, addr, 8);
CCXL_ASSERT_OFFSET(struct ccxl_event_data_storage, dsisr, 16);
CCXL_ASSERT_OFFSET(struct ccxl_event_data_storage, reserved3, 24);
CCXL_ASSERT_SIZE(struct ccxl_event_afu_error, 16);
CCXL_ASSERT_OFFSET(struct ccxl_event_afu_error, error, 8);
CCXL_ASSERT_SIZE(struct ccxl_event, 40);
CCXL_ASSERT_OFFSET(struct ccxl_event, body, 8);
/* Event sizes as read() reports them in header.size. */
CCXL_STATIC_ASSERT(sizeof(struct ccxl_event_header) + sizeof(struct ccxl_event_afu_interrupt) == 16,
		   "AFU interrupt event is 16 bytes");
CCXL_STATIC_ASSERT(sizeof(struct ccxl_event_header) + sizeof(struct ccxl_event_data_storage) == 40,
		   "data storage event is 40 bytes");
CCXL_STATIC_ASSERT(sizeof(struct ccxl_event_header) + sizeof(struct ccxl_event_afu_error) == 24,
		   "AFU error event is 24 bytes");

#endif /* CCXL_CXL_EVENT_H */
