/*
 * probe.c - lists every ABI struct and
 * field with the C compiler's sizeof/offsetof, so the Swift tests can compare the C view, the Swift
 * view and the specification's table. Also reports the machine's <misc/cxl.h> event layout when
 * that header exists, and the request numbers as the C preprocessor spells them.
 */
#include "ccxlflash_probe.h"
#include <ccxlflash.h>
#include <stddef.h>

#if defined(__has_include)
#if __has_include(<misc/cxl.h>)
#include <misc/cxl.h>
#define PROBE_HAVE_SYSTEM_CXL_H 1
#endif
#endif

static const struct ccxl_probe_layout our_layouts[] = {
  {"struct dk_cxlflash_hdr", NULL, sizeof(struct dk_cxlflash_hdr), 0},
  {"struct dk_cxlflash_hdr", "version", sizeof(((struct dk_cxlflash_hdr *)0)->version), offsetof(struct dk_cxlflash_hdr, version)},
  {"struct dk_cxlflash_hdr", "rsvd", sizeof(((struct dk_cxlflash_hdr *)0)->rsvd), offsetof(struct dk_cxlflash_hdr, rsvd)},
  {"struct dk_cxlflash_hdr", "flags", sizeof(((struct dk_cxlflash_hdr *)0)->flags), offsetof(struct dk_cxlflash_hdr, flags)},
  {"struct dk_cxlflash_hdr", "return_flags", sizeof(((struct dk_cxlflash_hdr *)0)->return_flags), offsetof(struct dk_cxlflash_hdr, return_flags)},
  {"struct dk_cxlflash_attach", NULL, sizeof(struct dk_cxlflash_attach), 0},
  {"struct dk_cxlflash_attach", "hdr", sizeof(((struct dk_cxlflash_attach *)0)->hdr), offsetof(struct dk_cxlflash_attach, hdr)},
  {"struct dk_cxlflash_attach", "num_interrupts", sizeof(((struct dk_cxlflash_attach *)0)->num_interrupts), offsetof(struct dk_cxlflash_attach, num_interrupts)},
  {"struct dk_cxlflash_attach", "context_id", sizeof(((struct dk_cxlflash_attach *)0)->context_id), offsetof(struct dk_cxlflash_attach, context_id)},
  {"struct dk_cxlflash_attach", "mmio_size", sizeof(((struct dk_cxlflash_attach *)0)->mmio_size), offsetof(struct dk_cxlflash_attach, mmio_size)},
  {"struct dk_cxlflash_attach", "block_size", sizeof(((struct dk_cxlflash_attach *)0)->block_size), offsetof(struct dk_cxlflash_attach, block_size)},
  {"struct dk_cxlflash_attach", "adap_fd", sizeof(((struct dk_cxlflash_attach *)0)->adap_fd), offsetof(struct dk_cxlflash_attach, adap_fd)},
  {"struct dk_cxlflash_attach", "last_lba", sizeof(((struct dk_cxlflash_attach *)0)->last_lba), offsetof(struct dk_cxlflash_attach, last_lba)},
  {"struct dk_cxlflash_attach", "max_xfer", sizeof(((struct dk_cxlflash_attach *)0)->max_xfer), offsetof(struct dk_cxlflash_attach, max_xfer)},
  {"struct dk_cxlflash_attach", "reserved", sizeof(((struct dk_cxlflash_attach *)0)->reserved), offsetof(struct dk_cxlflash_attach, reserved)},
  {"struct dk_cxlflash_detach", NULL, sizeof(struct dk_cxlflash_detach), 0},
  {"struct dk_cxlflash_detach", "hdr", sizeof(((struct dk_cxlflash_detach *)0)->hdr), offsetof(struct dk_cxlflash_detach, hdr)},
  {"struct dk_cxlflash_detach", "context_id", sizeof(((struct dk_cxlflash_detach *)0)->context_id), offsetof(struct dk_cxlflash_detach, context_id)},
  {"struct dk_cxlflash_detach", "reserved", sizeof(((struct dk_cxlflash_detach *)0)->reserved), offsetof(struct dk_cxlflash_detach, reserved)},
  {"struct dk_cxlflash_udirect", NULL, sizeof(struct dk_cxlflash_udirect), 0},
  {"struct dk_cxlflash_udirect", "hdr", sizeof(((struct dk_cxlflash_udirect *)0)->hdr), offsetof(struct dk_cxlflash_udirect, hdr)},
  {"struct dk_cxlflash_udirect", "context_id", sizeof(((struct dk_cxlflash_udirect *)0)->context_id), offsetof(struct dk_cxlflash_udirect, context_id)},
  {"struct dk_cxlflash_udirect", "rsrc_handle", sizeof(((struct dk_cxlflash_udirect *)0)->rsrc_handle), offsetof(struct dk_cxlflash_udirect, rsrc_handle)},
  {"struct dk_cxlflash_udirect", "last_lba", sizeof(((struct dk_cxlflash_udirect *)0)->last_lba), offsetof(struct dk_cxlflash_udirect, last_lba)},
  {"struct dk_cxlflash_udirect", "reserved", sizeof(((struct dk_cxlflash_udirect *)0)->reserved), offsetof(struct dk_cxlflash_udirect, reserved)},
  {"struct dk_cxlflash_uvirtual", NULL, sizeof(struct dk_cxlflash_uvirtual), 0},
  {"struct dk_cxlflash_uvirtual", "hdr", sizeof(((struct dk_cxlflash_uvirtual *)0)->hdr), offsetof(struct dk_cxlflash_uvirtual, hdr)},
  {"struct dk_cxlflash_uvirtual", "context_id", sizeof(((struct dk_cxlflash_uvirtual *)0)->context_id), offsetof(struct dk_cxlflash_uvirtual, context_id)},
  {"struct dk_cxlflash_uvirtual", "lun_size", sizeof(((struct dk_cxlflash_uvirtual *)0)->lun_size), offsetof(struct dk_cxlflash_uvirtual, lun_size)},
  {"struct dk_cxlflash_uvirtual", "rsrc_handle", sizeof(((struct dk_cxlflash_uvirtual *)0)->rsrc_handle), offsetof(struct dk_cxlflash_uvirtual, rsrc_handle)},
  {"struct dk_cxlflash_uvirtual", "last_lba", sizeof(((struct dk_cxlflash_uvirtual *)0)->last_lba), offsetof(struct dk_cxlflash_uvirtual, last_lba)},
  {"struct dk_cxlflash_uvirtual", "reserved", sizeof(((struct dk_cxlflash_uvirtual *)0)->reserved), offsetof(struct dk_cxlflash_uvirtual, reserved)},
  {"struct dk_cxlflash_release", NULL, sizeof(struct dk_cxlflash_release), 0},
  {"struct dk_cxlflash_release", "hdr", sizeof(((struct dk_cxlflash_release *)0)->hdr), offsetof(struct dk_cxlflash_release, hdr)},
  {"struct dk_cxlflash_release", "context_id", sizeof(((struct dk_cxlflash_release *)0)->context_id), offsetof(struct dk_cxlflash_release, context_id)},
  {"struct dk_cxlflash_release", "rsrc_handle", sizeof(((struct dk_cxlflash_release *)0)->rsrc_handle), offsetof(struct dk_cxlflash_release, rsrc_handle)},
  {"struct dk_cxlflash_release", "reserved", sizeof(((struct dk_cxlflash_release *)0)->reserved), offsetof(struct dk_cxlflash_release, reserved)},
  {"struct dk_cxlflash_resize", NULL, sizeof(struct dk_cxlflash_resize), 0},
  {"struct dk_cxlflash_resize", "hdr", sizeof(((struct dk_cxlflash_resize *)0)->hdr), offsetof(struct dk_cxlflash_resize, hdr)},
  {"struct dk_cxlflash_resize", "context_id", sizeof(((struct dk_cxlflash_resize *)0)->context_id), offsetof(struct dk_cxlflash_resize, context_id)},
  {"struct dk_cxlflash_resize", "rsrc_handle", sizeof(((struct dk_cxlflash_resize *)0)->rsrc_handle), offsetof(struct dk_cxlflash_resize, rsrc_handle)},
  {"struct dk_cxlflash_resize", "req_size", sizeof(((struct dk_cxlflash_resize *)0)->req_size), offsetof(struct dk_cxlflash_resize, req_size)},
  {"struct dk_cxlflash_resize", "last_lba", sizeof(((struct dk_cxlflash_resize *)0)->last_lba), offsetof(struct dk_cxlflash_resize, last_lba)},
  {"struct dk_cxlflash_resize", "reserved", sizeof(((struct dk_cxlflash_resize *)0)->reserved), offsetof(struct dk_cxlflash_resize, reserved)},
  {"struct dk_cxlflash_clone", NULL, sizeof(struct dk_cxlflash_clone), 0},
  {"struct dk_cxlflash_clone", "hdr", sizeof(((struct dk_cxlflash_clone *)0)->hdr), offsetof(struct dk_cxlflash_clone, hdr)},
  {"struct dk_cxlflash_clone", "context_id_src", sizeof(((struct dk_cxlflash_clone *)0)->context_id_src), offsetof(struct dk_cxlflash_clone, context_id_src)},
  {"struct dk_cxlflash_clone", "context_id_dst", sizeof(((struct dk_cxlflash_clone *)0)->context_id_dst), offsetof(struct dk_cxlflash_clone, context_id_dst)},
  {"struct dk_cxlflash_clone", "adap_fd_src", sizeof(((struct dk_cxlflash_clone *)0)->adap_fd_src), offsetof(struct dk_cxlflash_clone, adap_fd_src)},
  {"struct dk_cxlflash_clone", "reserved", sizeof(((struct dk_cxlflash_clone *)0)->reserved), offsetof(struct dk_cxlflash_clone, reserved)},
  {"struct dk_cxlflash_verify", NULL, sizeof(struct dk_cxlflash_verify), 0},
  {"struct dk_cxlflash_verify", "hdr", sizeof(((struct dk_cxlflash_verify *)0)->hdr), offsetof(struct dk_cxlflash_verify, hdr)},
  {"struct dk_cxlflash_verify", "context_id", sizeof(((struct dk_cxlflash_verify *)0)->context_id), offsetof(struct dk_cxlflash_verify, context_id)},
  {"struct dk_cxlflash_verify", "rsrc_handle", sizeof(((struct dk_cxlflash_verify *)0)->rsrc_handle), offsetof(struct dk_cxlflash_verify, rsrc_handle)},
  {"struct dk_cxlflash_verify", "hint", sizeof(((struct dk_cxlflash_verify *)0)->hint), offsetof(struct dk_cxlflash_verify, hint)},
  {"struct dk_cxlflash_verify", "last_lba", sizeof(((struct dk_cxlflash_verify *)0)->last_lba), offsetof(struct dk_cxlflash_verify, last_lba)},
  {"struct dk_cxlflash_verify", "sense_data", sizeof(((struct dk_cxlflash_verify *)0)->sense_data), offsetof(struct dk_cxlflash_verify, sense_data)},
  {"struct dk_cxlflash_verify", "pad", sizeof(((struct dk_cxlflash_verify *)0)->pad), offsetof(struct dk_cxlflash_verify, pad)},
  {"struct dk_cxlflash_verify", "reserved", sizeof(((struct dk_cxlflash_verify *)0)->reserved), offsetof(struct dk_cxlflash_verify, reserved)},
  {"struct dk_cxlflash_recover_afu", NULL, sizeof(struct dk_cxlflash_recover_afu), 0},
  {"struct dk_cxlflash_recover_afu", "hdr", sizeof(((struct dk_cxlflash_recover_afu *)0)->hdr), offsetof(struct dk_cxlflash_recover_afu, hdr)},
  {"struct dk_cxlflash_recover_afu", "reason", sizeof(((struct dk_cxlflash_recover_afu *)0)->reason), offsetof(struct dk_cxlflash_recover_afu, reason)},
  {"struct dk_cxlflash_recover_afu", "context_id", sizeof(((struct dk_cxlflash_recover_afu *)0)->context_id), offsetof(struct dk_cxlflash_recover_afu, context_id)},
  {"struct dk_cxlflash_recover_afu", "mmio_size", sizeof(((struct dk_cxlflash_recover_afu *)0)->mmio_size), offsetof(struct dk_cxlflash_recover_afu, mmio_size)},
  {"struct dk_cxlflash_recover_afu", "adap_fd", sizeof(((struct dk_cxlflash_recover_afu *)0)->adap_fd), offsetof(struct dk_cxlflash_recover_afu, adap_fd)},
  {"struct dk_cxlflash_recover_afu", "reserved", sizeof(((struct dk_cxlflash_recover_afu *)0)->reserved), offsetof(struct dk_cxlflash_recover_afu, reserved)},
  {"struct dk_cxlflash_manage_lun", NULL, sizeof(struct dk_cxlflash_manage_lun), 0},
  {"struct dk_cxlflash_manage_lun", "hdr", sizeof(((struct dk_cxlflash_manage_lun *)0)->hdr), offsetof(struct dk_cxlflash_manage_lun, hdr)},
  {"struct dk_cxlflash_manage_lun", "wwid", sizeof(((struct dk_cxlflash_manage_lun *)0)->wwid), offsetof(struct dk_cxlflash_manage_lun, wwid)},
  {"struct dk_cxlflash_manage_lun", "reserved", sizeof(((struct dk_cxlflash_manage_lun *)0)->reserved), offsetof(struct dk_cxlflash_manage_lun, reserved)},
  {"union cxlflash_ioctls", NULL, sizeof(union cxlflash_ioctls), 0},
  {"struct ht_cxlflash_hdr", NULL, sizeof(struct ht_cxlflash_hdr), 0},
  {"struct ht_cxlflash_hdr", "version", sizeof(((struct ht_cxlflash_hdr *)0)->version), offsetof(struct ht_cxlflash_hdr, version)},
  {"struct ht_cxlflash_hdr", "subcmd", sizeof(((struct ht_cxlflash_hdr *)0)->subcmd), offsetof(struct ht_cxlflash_hdr, subcmd)},
  {"struct ht_cxlflash_hdr", "rsvd", sizeof(((struct ht_cxlflash_hdr *)0)->rsvd), offsetof(struct ht_cxlflash_hdr, rsvd)},
  {"struct ht_cxlflash_hdr", "flags", sizeof(((struct ht_cxlflash_hdr *)0)->flags), offsetof(struct ht_cxlflash_hdr, flags)},
  {"struct ht_cxlflash_hdr", "return_flags", sizeof(((struct ht_cxlflash_hdr *)0)->return_flags), offsetof(struct ht_cxlflash_hdr, return_flags)},
  {"struct ht_cxlflash_lun_provision", NULL, sizeof(struct ht_cxlflash_lun_provision), 0},
  {"struct ht_cxlflash_lun_provision", "hdr", sizeof(((struct ht_cxlflash_lun_provision *)0)->hdr), offsetof(struct ht_cxlflash_lun_provision, hdr)},
  {"struct ht_cxlflash_lun_provision", "port", sizeof(((struct ht_cxlflash_lun_provision *)0)->port), offsetof(struct ht_cxlflash_lun_provision, port)},
  {"struct ht_cxlflash_lun_provision", "reserved16", sizeof(((struct ht_cxlflash_lun_provision *)0)->reserved16), offsetof(struct ht_cxlflash_lun_provision, reserved16)},
  {"struct ht_cxlflash_lun_provision", "size", sizeof(((struct ht_cxlflash_lun_provision *)0)->size), offsetof(struct ht_cxlflash_lun_provision, size)},
  {"struct ht_cxlflash_lun_provision", "lun_id", sizeof(((struct ht_cxlflash_lun_provision *)0)->lun_id), offsetof(struct ht_cxlflash_lun_provision, lun_id)},
  {"struct ht_cxlflash_lun_provision", "wwid", sizeof(((struct ht_cxlflash_lun_provision *)0)->wwid), offsetof(struct ht_cxlflash_lun_provision, wwid)},
  {"struct ht_cxlflash_lun_provision", "max_num_luns", sizeof(((struct ht_cxlflash_lun_provision *)0)->max_num_luns), offsetof(struct ht_cxlflash_lun_provision, max_num_luns)},
  {"struct ht_cxlflash_lun_provision", "cur_num_luns", sizeof(((struct ht_cxlflash_lun_provision *)0)->cur_num_luns), offsetof(struct ht_cxlflash_lun_provision, cur_num_luns)},
  {"struct ht_cxlflash_lun_provision", "max_cap_port", sizeof(((struct ht_cxlflash_lun_provision *)0)->max_cap_port), offsetof(struct ht_cxlflash_lun_provision, max_cap_port)},
  {"struct ht_cxlflash_lun_provision", "cur_cap_port", sizeof(((struct ht_cxlflash_lun_provision *)0)->cur_cap_port), offsetof(struct ht_cxlflash_lun_provision, cur_cap_port)},
  {"struct ht_cxlflash_lun_provision", "reserved", sizeof(((struct ht_cxlflash_lun_provision *)0)->reserved), offsetof(struct ht_cxlflash_lun_provision, reserved)},
  {"struct ht_cxlflash_afu_debug", NULL, sizeof(struct ht_cxlflash_afu_debug), 0},
  {"struct ht_cxlflash_afu_debug", "hdr", sizeof(((struct ht_cxlflash_afu_debug *)0)->hdr), offsetof(struct ht_cxlflash_afu_debug, hdr)},
  {"struct ht_cxlflash_afu_debug", "reserved8", sizeof(((struct ht_cxlflash_afu_debug *)0)->reserved8), offsetof(struct ht_cxlflash_afu_debug, reserved8)},
  {"struct ht_cxlflash_afu_debug", "afu_subcmd", sizeof(((struct ht_cxlflash_afu_debug *)0)->afu_subcmd), offsetof(struct ht_cxlflash_afu_debug, afu_subcmd)},
  {"struct ht_cxlflash_afu_debug", "data_ea", sizeof(((struct ht_cxlflash_afu_debug *)0)->data_ea), offsetof(struct ht_cxlflash_afu_debug, data_ea)},
  {"struct ht_cxlflash_afu_debug", "data_len", sizeof(((struct ht_cxlflash_afu_debug *)0)->data_len), offsetof(struct ht_cxlflash_afu_debug, data_len)},
  {"struct ht_cxlflash_afu_debug", "reserved32", sizeof(((struct ht_cxlflash_afu_debug *)0)->reserved32), offsetof(struct ht_cxlflash_afu_debug, reserved32)},
  {"struct ht_cxlflash_afu_debug", "reserved", sizeof(((struct ht_cxlflash_afu_debug *)0)->reserved), offsetof(struct ht_cxlflash_afu_debug, reserved)},
  {"union cxlflash_ht_ioctls", NULL, sizeof(union cxlflash_ht_ioctls), 0},
  {"struct ccxl_event_header", NULL, sizeof(struct ccxl_event_header), 0},
  {"struct ccxl_event_header", "type", sizeof(((struct ccxl_event_header *)0)->type), offsetof(struct ccxl_event_header, type)},
  {"struct ccxl_event_header", "size", sizeof(((struct ccxl_event_header *)0)->size), offsetof(struct ccxl_event_header, size)},
  {"struct ccxl_event_header", "process_element", sizeof(((struct ccxl_event_header *)0)->process_element), offsetof(struct ccxl_event_header, process_element)},
  {"struct ccxl_event_header", "reserved1", sizeof(((struct ccxl_event_header *)0)->reserved1), offsetof(struct ccxl_event_header, reserved1)},
  {"struct ccxl_event_afu_interrupt", NULL, sizeof(struct ccxl_event_afu_interrupt), 0},
  {"struct ccxl_event_afu_interrupt", "flags", sizeof(((struct ccxl_event_afu_interrupt *)0)->flags), offsetof(struct ccxl_event_afu_interrupt, flags)},
  {"struct ccxl_event_afu_interrupt", "irq", sizeof(((struct ccxl_event_afu_interrupt *)0)->irq), offsetof(struct ccxl_event_afu_interrupt, irq)},
  {"struct ccxl_event_afu_interrupt", "reserved1", sizeof(((struct ccxl_event_afu_interrupt *)0)->reserved1), offsetof(struct ccxl_event_afu_interrupt, reserved1)},
  {"struct ccxl_event_data_storage", NULL, sizeof(struct ccxl_event_data_storage), 0},
  {"struct ccxl_event_data_storage", "flags", sizeof(((struct ccxl_event_data_storage *)0)->flags), offsetof(struct ccxl_event_data_storage, flags)},
  {"struct ccxl_event_data_storage", "reserved1", sizeof(((struct ccxl_event_data_storage *)0)->reserved1), offsetof(struct ccxl_event_data_storage, reserved1)},
  {"struct ccxl_event_data_storage", "reserved2", sizeof(((struct ccxl_event_data_storage *)0)->reserved2), offsetof(struct ccxl_event_data_storage, reserved2)},
  {"struct ccxl_event_data_storage", "addr", sizeof(((struct ccxl_event_data_storage *)0)->addr), offsetof(struct ccxl_event_data_storage, addr)},
  {"struct ccxl_event_data_storage", "dsisr", sizeof(((struct ccxl_event_data_storage *)0)->dsisr), offsetof(struct ccxl_event_data_storage, dsisr)},
  {"struct ccxl_event_data_storage", "reserved3", sizeof(((struct ccxl_event_data_storage *)0)->reserved3), offsetof(struct ccxl_event_data_storage, reserved3)},
  {"struct ccxl_event_afu_error", NULL, sizeof(struct ccxl_event_afu_error), 0},
  {"struct ccxl_event_afu_error", "flags", sizeof(((struct ccxl_event_afu_error *)0)->flags), offsetof(struct ccxl_event_afu_error, flags)},
  {"struct ccxl_event_afu_error", "reserved1", sizeof(((struct ccxl_event_afu_error *)0)->reserved1), offsetof(struct ccxl_event_afu_error, reserved1)},
  {"struct ccxl_event_afu_error", "reserved2", sizeof(((struct ccxl_event_afu_error *)0)->reserved2), offsetof(struct ccxl_event_afu_error, reserved2)},
  {"struct ccxl_event_afu_error", "error", sizeof(((struct ccxl_event_afu_error *)0)->error), offsetof(struct ccxl_event_afu_error, error)},
  {"struct ccxl_event", NULL, sizeof(struct ccxl_event), 0},
  {"struct ccxl_event", "header", sizeof(((struct ccxl_event *)0)->header), offsetof(struct ccxl_event, header)},
  {"struct ccxl_event", "body", sizeof(((struct ccxl_event *)0)->body), offsetof(struct ccxl_event, body)},
  {"struct sisl_ioarcb", NULL, sizeof(struct sisl_ioarcb), 0},
  {"struct sisl_ioarcb", "ctx_id", sizeof(((struct sisl_ioarcb *)0)->ctx_id), offsetof(struct sisl_ioarcb, ctx_id)},
  {"struct sisl_ioarcb", "req_flags", sizeof(((struct sisl_ioarcb *)0)->req_flags), offsetof(struct sisl_ioarcb, req_flags)},
  {"struct sisl_ioarcb", "res_hndl", sizeof(((struct sisl_ioarcb *)0)->res_hndl), offsetof(struct sisl_ioarcb, res_hndl)},
  {"struct sisl_ioarcb", "port_sel", sizeof(((struct sisl_ioarcb *)0)->port_sel), offsetof(struct sisl_ioarcb, port_sel)},
  {"struct sisl_ioarcb", "lun_id", sizeof(((struct sisl_ioarcb *)0)->lun_id), offsetof(struct sisl_ioarcb, lun_id)},
  {"struct sisl_ioarcb", "data_len", sizeof(((struct sisl_ioarcb *)0)->data_len), offsetof(struct sisl_ioarcb, data_len)},
  {"struct sisl_ioarcb", "ioadl_len", sizeof(((struct sisl_ioarcb *)0)->ioadl_len), offsetof(struct sisl_ioarcb, ioadl_len)},
  {"struct sisl_ioarcb", "data_ea", sizeof(((struct sisl_ioarcb *)0)->data_ea), offsetof(struct sisl_ioarcb, data_ea)},
  {"struct sisl_ioarcb", "ioadl_ea", sizeof(((struct sisl_ioarcb *)0)->ioadl_ea), offsetof(struct sisl_ioarcb, ioadl_ea)},
  {"struct sisl_ioarcb", "msi", sizeof(((struct sisl_ioarcb *)0)->msi), offsetof(struct sisl_ioarcb, msi)},
  {"struct sisl_ioarcb", "rrq", sizeof(((struct sisl_ioarcb *)0)->rrq), offsetof(struct sisl_ioarcb, rrq)},
  {"struct sisl_ioarcb", "timeout", sizeof(((struct sisl_ioarcb *)0)->timeout), offsetof(struct sisl_ioarcb, timeout)},
  {"struct sisl_ioarcb", "rsvd1", sizeof(((struct sisl_ioarcb *)0)->rsvd1), offsetof(struct sisl_ioarcb, rsvd1)},
  {"struct sisl_ioarcb", "cdb", sizeof(((struct sisl_ioarcb *)0)->cdb), offsetof(struct sisl_ioarcb, cdb)},
  {"struct sisl_ioarcb", "reserved", sizeof(((struct sisl_ioarcb *)0)->reserved), offsetof(struct sisl_ioarcb, reserved)},
  {"struct sisl_ioarcb", "ioasa_ea", sizeof(((struct sisl_ioarcb *)0)->ioasa_ea), offsetof(struct sisl_ioarcb, ioasa_ea)},
  {"struct sisl_rc", NULL, sizeof(struct sisl_rc), 0},
  {"struct sisl_rc", "flags", sizeof(((struct sisl_rc *)0)->flags), offsetof(struct sisl_rc, flags)},
  {"struct sisl_rc", "afu_rc", sizeof(((struct sisl_rc *)0)->afu_rc), offsetof(struct sisl_rc, afu_rc)},
  {"struct sisl_rc", "scsi_rc", sizeof(((struct sisl_rc *)0)->scsi_rc), offsetof(struct sisl_rc, scsi_rc)},
  {"struct sisl_rc", "fc_rc", sizeof(((struct sisl_rc *)0)->fc_rc), offsetof(struct sisl_rc, fc_rc)},
  {"struct sisl_ioasa", NULL, sizeof(struct sisl_ioasa), 0},
  {"struct sisl_ioasa", "rc", sizeof(((struct sisl_ioasa *)0)->rc), offsetof(struct sisl_ioasa, rc)},
  {"struct sisl_ioasa", "ioasc", sizeof(((struct sisl_ioasa *)0)->ioasc), offsetof(struct sisl_ioasa, ioasc)},
  {"struct sisl_ioasa", "resid", sizeof(((struct sisl_ioasa *)0)->resid), offsetof(struct sisl_ioasa, resid)},
  {"struct sisl_ioasa", "lunid_hi", sizeof(((struct sisl_ioasa *)0)->lunid_hi), offsetof(struct sisl_ioasa, lunid_hi)},
  {"struct sisl_ioasa", "port", sizeof(((struct sisl_ioasa *)0)->port), offsetof(struct sisl_ioasa, port)},
  {"struct sisl_ioasa", "afu_extra", sizeof(((struct sisl_ioasa *)0)->afu_extra), offsetof(struct sisl_ioasa, afu_extra)},
  {"struct sisl_ioasa", "scsi_extra", sizeof(((struct sisl_ioasa *)0)->scsi_extra), offsetof(struct sisl_ioasa, scsi_extra)},
  {"struct sisl_ioasa", "fc_extra", sizeof(((struct sisl_ioasa *)0)->fc_extra), offsetof(struct sisl_ioasa, fc_extra)},
  {"struct sisl_ioasa", "sense_data", sizeof(((struct sisl_ioasa *)0)->sense_data), offsetof(struct sisl_ioasa, sense_data)},
  {"struct sisl_ioasa", "lunid_lo", sizeof(((struct sisl_ioasa *)0)->lunid_lo), offsetof(struct sisl_ioasa, lunid_lo)},
  {"struct sisl_ioasa", "wwid", sizeof(((struct sisl_ioasa *)0)->wwid), offsetof(struct sisl_ioasa, wwid)},
  {"struct sisl_ioasa", "host_use", sizeof(((struct sisl_ioasa *)0)->host_use), offsetof(struct sisl_ioasa, host_use)},
  {"struct sisl_ioasa", "host_use_b", sizeof(((struct sisl_ioasa *)0)->host_use_b), offsetof(struct sisl_ioasa, host_use_b)},
  {"struct sisl_host_map", NULL, sizeof(struct sisl_host_map), 0},
  {"struct sisl_host_map", "endian_ctrl", sizeof(((struct sisl_host_map *)0)->endian_ctrl), offsetof(struct sisl_host_map, endian_ctrl)},
  {"struct sisl_host_map", "intr_status", sizeof(((struct sisl_host_map *)0)->intr_status), offsetof(struct sisl_host_map, intr_status)},
  {"struct sisl_host_map", "intr_clear", sizeof(((struct sisl_host_map *)0)->intr_clear), offsetof(struct sisl_host_map, intr_clear)},
  {"struct sisl_host_map", "intr_mask", sizeof(((struct sisl_host_map *)0)->intr_mask), offsetof(struct sisl_host_map, intr_mask)},
  {"struct sisl_host_map", "ioarrin", sizeof(((struct sisl_host_map *)0)->ioarrin), offsetof(struct sisl_host_map, ioarrin)},
  {"struct sisl_host_map", "rrq_start", sizeof(((struct sisl_host_map *)0)->rrq_start), offsetof(struct sisl_host_map, rrq_start)},
  {"struct sisl_host_map", "rrq_end", sizeof(((struct sisl_host_map *)0)->rrq_end), offsetof(struct sisl_host_map, rrq_end)},
  {"struct sisl_host_map", "cmd_room", sizeof(((struct sisl_host_map *)0)->cmd_room), offsetof(struct sisl_host_map, cmd_room)},
  {"struct sisl_host_map", "ctx_ctrl", sizeof(((struct sisl_host_map *)0)->ctx_ctrl), offsetof(struct sisl_host_map, ctx_ctrl)},
  {"struct sisl_host_map", "mbox_w", sizeof(((struct sisl_host_map *)0)->mbox_w), offsetof(struct sisl_host_map, mbox_w)},
  {"struct sisl_host_map", "sq_start", sizeof(((struct sisl_host_map *)0)->sq_start), offsetof(struct sisl_host_map, sq_start)},
  {"struct sisl_host_map", "sq_end", sizeof(((struct sisl_host_map *)0)->sq_end), offsetof(struct sisl_host_map, sq_end)},
  {"struct sisl_host_map", "sq_head", sizeof(((struct sisl_host_map *)0)->sq_head), offsetof(struct sisl_host_map, sq_head)},
  {"struct sisl_host_map", "sq_tail", sizeof(((struct sisl_host_map *)0)->sq_tail), offsetof(struct sisl_host_map, sq_tail)},
  {"struct sisl_host_map", "sq_ctx_reset", sizeof(((struct sisl_host_map *)0)->sq_ctx_reset), offsetof(struct sisl_host_map, sq_ctx_reset)},
  {"struct sisl_rht_entry", NULL, sizeof(struct sisl_rht_entry), 0},
  {"struct sisl_rht_entry", "lxt_start", sizeof(((struct sisl_rht_entry *)0)->lxt_start), offsetof(struct sisl_rht_entry, lxt_start)},
  {"struct sisl_rht_entry", "lxt_cnt", sizeof(((struct sisl_rht_entry *)0)->lxt_cnt), offsetof(struct sisl_rht_entry, lxt_cnt)},
  {"struct sisl_rht_entry", "rsvd", sizeof(((struct sisl_rht_entry *)0)->rsvd), offsetof(struct sisl_rht_entry, rsvd)},
  {"struct sisl_rht_entry", "fp", sizeof(((struct sisl_rht_entry *)0)->fp), offsetof(struct sisl_rht_entry, fp)},
  {"struct sisl_rht_entry", "nmask", sizeof(((struct sisl_rht_entry *)0)->nmask), offsetof(struct sisl_rht_entry, nmask)},
  {"struct sisl_rht_entry_f1", NULL, sizeof(struct sisl_rht_entry_f1), 0},
  {"struct sisl_rht_entry_f1", "lun_id", sizeof(((struct sisl_rht_entry_f1 *)0)->lun_id), offsetof(struct sisl_rht_entry_f1, lun_id)},
  {"struct sisl_rht_entry_f1", "valid", sizeof(((struct sisl_rht_entry_f1 *)0)->valid), offsetof(struct sisl_rht_entry_f1, valid)},
  {"struct sisl_rht_entry_f1", "rsvd", sizeof(((struct sisl_rht_entry_f1 *)0)->rsvd), offsetof(struct sisl_rht_entry_f1, rsvd)},
  {"struct sisl_rht_entry_f1", "fp", sizeof(((struct sisl_rht_entry_f1 *)0)->fp), offsetof(struct sisl_rht_entry_f1, fp)},
  {"struct sisl_rht_entry_f1", "port_sel", sizeof(((struct sisl_rht_entry_f1 *)0)->port_sel), offsetof(struct sisl_rht_entry_f1, port_sel)},
  {"struct sisl_lxt_entry", NULL, sizeof(struct sisl_lxt_entry), 0},
  {"struct sisl_lxt_entry", "rlba_base", sizeof(((struct sisl_lxt_entry *)0)->rlba_base), offsetof(struct sisl_lxt_entry, rlba_base)},
};

const struct ccxl_probe_layout *ccxl_probe_layouts(size_t *count) {
  *count = sizeof(our_layouts) / sizeof(our_layouts[0]);
  return our_layouts;
}

#ifdef PROBE_HAVE_SYSTEM_CXL_H
static const struct ccxl_probe_layout system_layouts[] = {
  {"struct cxl_event_header", NULL, sizeof(struct cxl_event_header), 0},
  {"struct cxl_event_header", "type", sizeof(((struct cxl_event_header *)0)->type), offsetof(struct cxl_event_header, type)},
  {"struct cxl_event_header", "size", sizeof(((struct cxl_event_header *)0)->size), offsetof(struct cxl_event_header, size)},
  {"struct cxl_event_header", "process_element", sizeof(((struct cxl_event_header *)0)->process_element), offsetof(struct cxl_event_header, process_element)},
  {"struct cxl_event_header", "reserved1", sizeof(((struct cxl_event_header *)0)->reserved1), offsetof(struct cxl_event_header, reserved1)},
  {"struct cxl_event_afu_interrupt", NULL, sizeof(struct cxl_event_afu_interrupt), 0},
  {"struct cxl_event_afu_interrupt", "flags", sizeof(((struct cxl_event_afu_interrupt *)0)->flags), offsetof(struct cxl_event_afu_interrupt, flags)},
  {"struct cxl_event_afu_interrupt", "irq", sizeof(((struct cxl_event_afu_interrupt *)0)->irq), offsetof(struct cxl_event_afu_interrupt, irq)},
  {"struct cxl_event_afu_interrupt", "reserved1", sizeof(((struct cxl_event_afu_interrupt *)0)->reserved1), offsetof(struct cxl_event_afu_interrupt, reserved1)},
  {"struct cxl_event_data_storage", NULL, sizeof(struct cxl_event_data_storage), 0},
  {"struct cxl_event_data_storage", "flags", sizeof(((struct cxl_event_data_storage *)0)->flags), offsetof(struct cxl_event_data_storage, flags)},
  {"struct cxl_event_data_storage", "reserved1", sizeof(((struct cxl_event_data_storage *)0)->reserved1), offsetof(struct cxl_event_data_storage, reserved1)},
  {"struct cxl_event_data_storage", "reserved2", sizeof(((struct cxl_event_data_storage *)0)->reserved2), offsetof(struct cxl_event_data_storage, reserved2)},
  {"struct cxl_event_data_storage", "addr", sizeof(((struct cxl_event_data_storage *)0)->addr), offsetof(struct cxl_event_data_storage, addr)},
  {"struct cxl_event_data_storage", "dsisr", sizeof(((struct cxl_event_data_storage *)0)->dsisr), offsetof(struct cxl_event_data_storage, dsisr)},
  {"struct cxl_event_data_storage", "reserved3", sizeof(((struct cxl_event_data_storage *)0)->reserved3), offsetof(struct cxl_event_data_storage, reserved3)},
  {"struct cxl_event_afu_error", NULL, sizeof(struct cxl_event_afu_error), 0},
  {"struct cxl_event_afu_error", "flags", sizeof(((struct cxl_event_afu_error *)0)->flags), offsetof(struct cxl_event_afu_error, flags)},
  {"struct cxl_event_afu_error", "reserved1", sizeof(((struct cxl_event_afu_error *)0)->reserved1), offsetof(struct cxl_event_afu_error, reserved1)},
  {"struct cxl_event_afu_error", "reserved2", sizeof(((struct cxl_event_afu_error *)0)->reserved2), offsetof(struct cxl_event_afu_error, reserved2)},
  {"struct cxl_event_afu_error", "error", sizeof(((struct cxl_event_afu_error *)0)->error), offsetof(struct cxl_event_afu_error, error)},
  {"struct cxl_event", NULL, sizeof(struct cxl_event), 0},
  {"struct cxl_event", "header", sizeof(((struct cxl_event *)0)->header), offsetof(struct cxl_event, header)},
};
static const struct ccxl_probe_constant system_constants[] = {
  {"CXL_READ_MIN_SIZE", CXL_READ_MIN_SIZE},
  {"CXL_EVENT_RESERVED", CXL_EVENT_RESERVED},
  {"CXL_EVENT_AFU_INTERRUPT", CXL_EVENT_AFU_INTERRUPT},
  {"CXL_EVENT_DATA_STORAGE", CXL_EVENT_DATA_STORAGE},
  {"CXL_EVENT_AFU_ERROR", CXL_EVENT_AFU_ERROR},
  {"CXL_EVENT_AFU_DRIVER", CXL_EVENT_AFU_DRIVER},
  {"CXL_MAGIC", CXL_MAGIC},
};
#endif

const struct ccxl_probe_layout *ccxl_probe_system_cxl_layouts(size_t *count) {
#ifdef PROBE_HAVE_SYSTEM_CXL_H
  *count = sizeof(system_layouts) / sizeof(system_layouts[0]);
  return system_layouts;
#else
  *count = 0;
  return NULL;
#endif
}

const struct ccxl_probe_constant *ccxl_probe_system_cxl_constants(size_t *count) {
#ifdef PROBE_HAVE_SYSTEM_CXL_H
  *count = sizeof(system_constants) / sizeof(system_constants[0]);
  return system_constants;
#else
  *count = 0;
  return NULL;
#endif
}

static const struct ccxl_probe_constant our_constants[] = {
  {"DK_CXLFLASH_ATTACH", DK_CXLFLASH_ATTACH},
  {"DK_CXLFLASH_USER_DIRECT", DK_CXLFLASH_USER_DIRECT},
  {"DK_CXLFLASH_RELEASE", DK_CXLFLASH_RELEASE},
  {"DK_CXLFLASH_DETACH", DK_CXLFLASH_DETACH},
  {"DK_CXLFLASH_VERIFY", DK_CXLFLASH_VERIFY},
  {"DK_CXLFLASH_RECOVER_AFU", DK_CXLFLASH_RECOVER_AFU},
  {"DK_CXLFLASH_MANAGE_LUN", DK_CXLFLASH_MANAGE_LUN},
  {"DK_CXLFLASH_USER_VIRTUAL", DK_CXLFLASH_USER_VIRTUAL},
  {"DK_CXLFLASH_VLUN_RESIZE", DK_CXLFLASH_VLUN_RESIZE},
  {"DK_CXLFLASH_VLUN_CLONE", DK_CXLFLASH_VLUN_CLONE},
  {"HT_CXLFLASH_LUN_PROVISION", HT_CXLFLASH_LUN_PROVISION},
  {"HT_CXLFLASH_AFU_DEBUG", HT_CXLFLASH_AFU_DEBUG},
  {"MAX_CXLFLASH_IOCTL_SZ", MAX_CXLFLASH_IOCTL_SZ},
  {"MAX_HT_CXLFLASH_IOCTL_SZ", MAX_HT_CXLFLASH_IOCTL_SZ},
  {"CXL_MAGIC", CXL_MAGIC},
  {"CCXL_READ_MIN_SIZE", CCXL_READ_MIN_SIZE},
  {"CCXL_EVENT_RESERVED", CCXL_EVENT_RESERVED},
  {"CCXL_EVENT_AFU_INTERRUPT", CCXL_EVENT_AFU_INTERRUPT},
  {"CCXL_EVENT_DATA_STORAGE", CCXL_EVENT_DATA_STORAGE},
  {"CCXL_EVENT_AFU_ERROR", CCXL_EVENT_AFU_ERROR},
  {"CCXL_EVENT_AFU_DRIVER", CCXL_EVENT_AFU_DRIVER},
};

const struct ccxl_probe_constant *ccxl_probe_constants(size_t *count) {
  *count = sizeof(our_constants) / sizeof(our_constants[0]);
  return our_constants;
}
