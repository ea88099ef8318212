/* ccxlflash_probe.h - the C compiler's view of the CCXLFlash ABI, for the conformance tests. */
#ifndef CCXLFLASH_PROBE_H
#define CCXLFLASH_PROBE_H
#include <stddef.h>

/* One row per struct (field == NULL: the whole type) or field. */
struct ccxl_probe_layout {
  const char *type;
  const char *field;
  size_t size;
  size_t offset;
};

struct ccxl_probe_constant {
  const char *name;
  unsigned long long value;
};

const struct ccxl_probe_layout *ccxl_probe_layouts(size_t *count);
const struct ccxl_probe_constant *ccxl_probe_constants(size_t *count);
/* The machine's <misc/cxl.h>; count 0 when the header does not exist. */
const struct ccxl_probe_layout *ccxl_probe_system_cxl_layouts(size_t *count);
const struct ccxl_probe_constant *ccxl_probe_system_cxl_constants(size_t *count);
#endif
