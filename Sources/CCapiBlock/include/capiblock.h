/*
 * capiblock.h: the CAPI Flash block API (libcflsh_block), served by Superpipe.
 *
 * Source-compatible with IBM capiflash's public header of the same name: the same type names,
 * structure layouts, flag values and function signatures, so C and C++ programs written for
 * capiflash compile unchanged. Link with -lcflsh_block. Behaviour and the differences from
 * capiflash: Docs/capiblock.md.
 *
 * Units are 4 KiB blocks. Calls return -1 and set errno on failure.
 */
#ifndef _H_CFLASH_BLOCK
#define _H_CFLASH_BLOCK

#include <sys/types.h>
#include <inttypes.h>
#include <stdint.h>
#include <stddef.h>
#if defined(__linux__)
#include <linux/types.h>
#endif

#ifdef __cplusplus
extern "C" {
#endif

#define NULL_CHUNK_ID  -1
#define NULL_CHUNK_CG_ID NULL_CHUNK_ID

typedef int chunk_id_t;
typedef int chunk_cg_id_t;
typedef int chunk_r0_id_t;

typedef uint64_t chunk_ext_arg_t;

/* Per-chunk counters (cblk_get_stats). Which ones Superpipe counts: Docs/capiblock.md. */
typedef struct chunk_stats_s {
    uint32_t block_size;              /* bytes per block                                  */
    uint32_t num_paths;               /* paths the chunk uses                             */
    uint64_t max_transfer_size;       /* largest request, in blocks                       */
    uint64_t num_reads;               /* cblk_read calls                                  */
    uint64_t num_writes;              /* cblk_write calls                                 */
    uint64_t num_areads;              /* cblk_aread calls                                 */
    uint64_t num_awrites;             /* cblk_awrite calls                                */
    uint32_t num_act_reads;           /* cblk_read calls in progress                      */
    uint32_t num_act_writes;          /* cblk_write calls in progress                     */
    uint32_t num_act_areads;          /* async reads in progress                          */
    uint32_t num_act_awrites;         /* async writes in progress                         */
    uint32_t max_num_act_writes;      /* high-water marks of the four above               */
    uint32_t max_num_act_reads;
    uint32_t max_num_act_awrites;
    uint32_t max_num_act_areads;
    uint64_t num_blocks_read;
    uint64_t num_blocks_written;
    uint64_t num_errors;              /* requests that failed                             */
    uint64_t num_aresult_no_cmplt;    /* cblk_aresult returns without a completion        */
    uint64_t num_retries;
    uint64_t num_timeouts;
    uint64_t num_fail_timeouts;
    uint64_t num_no_cmds_free;
    uint64_t num_no_cmd_room ;
    uint64_t num_no_cmds_free_fail;
    uint64_t num_fc_errors;
    uint64_t num_port0_linkdowns;
    uint64_t num_port1_linkdowns;
    uint64_t num_port0_no_logins;
    uint64_t num_port1_no_logins;
    uint64_t num_port0_fc_errors;
    uint64_t num_port1_fc_errors;
    uint64_t num_cc_errors;
    uint64_t num_afu_errors;
    uint64_t num_capi_false_reads;
    uint64_t num_capi_read_fails;
    uint64_t num_capi_adap_resets;
    uint64_t num_capi_adap_chck_err;
    uint64_t num_capi_reserved_errs;
    uint64_t num_capi_data_st_errs;
    uint64_t num_capi_afu_errors;
    uint64_t num_capi_afu_intrpts;
    uint64_t num_capi_unexp_afu_intrpts;
    uint64_t num_success_threads;
    uint64_t num_failed_threads;
    uint64_t num_canc_threads;
    uint64_t num_fail_canc_threads;
    uint64_t num_fail_detach_threads;
    uint64_t num_active_threads;
    uint64_t max_num_act_threads;
    uint64_t num_cache_hits;
    uint64_t num_reset_contexts;
    uint64_t num_reset_contxt_fails;
    uint32_t primary_path_id;
    uint64_t num_path_fail_overs;
} chunk_stats_t;

/* Chunk attributes (cblk_get_attrs). */
typedef struct chunk_attrs_s {
    uint64_t flags1;
#define CFLSH_ATTR_UNMAP 0x0001           /* the chunk supports unmap                    */
    uint64_t flags2;
    uint32_t block_size;
    uint32_t num_paths;
    uint64_t max_transfer_size;           /* in blocks                                   */
    union {
        uint64_t data[64];
    };
} chunk_attrs_t;

#define CBLK_SCRUB_DATA_FLG  1            /* zero a virtual LUN's blocks when freed      */

typedef off_t cflash_offset_t;

/* cblk_open flags */
#define CBLK_OPN_SCRUB_DATA       CBLK_SCRUB_DATA_FLG
#define CBLK_OPN_VIRT_LUN         2       /* a virtual LUN, size 0 until cblk_set_size   */
#define CBLK_OPN_NO_INTRP_THREADS 4       /* complete by polling, no interrupt thread    */
#define CBLK_OPN_SHARE_CTXT       8       /* share one adapter context per LUN           */
#define CBLK_OPN_MPIO_FO          0x40    /* multipath failover (physical LUNs)          */
#define CBLK_OPN_GROUP            0x100   /* open a chunk group (as cblk_cg_open)        */

/* Flags of the calls that take an id */
#define CBLK_GROUP_ID           0x100     /* the id is a chunk group id                  */
#define CBLK_GROUP_RAID0        0x200     /* the id is a RAID-0 group id                 */
#define CBLK_GROUP_MASK         (CBLK_GROUP_ID|CBLK_GROUP_RAID0)

/* cblk_aread, cblk_awrite, cblk_aunmap flags */
#define CBLK_ARW_WAIT_CMD_FLAGS   1       /* wait for a free command, not EAGAIN         */
#define CBLK_ARW_USER_TAG_FLAG    2       /* *tag is the caller's own tag                */
#define CBLK_ARW_USER_STATUS_FLAG 4       /* completion is posted to *status             */

typedef enum {
    CBLK_ARW_STATUS_PENDING = 0,
    CBLK_ARW_STATUS_SUCCESS = 1,
    CBLK_ARW_STATUS_INVALID = 2,
    CBLK_ARW_STATUS_FAIL    = 3,
} cblk_status_type_t;

typedef struct cblk_arw_status_s {
    cblk_status_type_t status;
    size_t blocks_transferred;
    int    fail_errno;                    /* with CBLK_ARW_STATUS_FAIL                   */
} cblk_arw_status_t;

/* cblk_aresult flags */
#define CBLK_ARESULT_NEXT_TAG   1         /* any completion; its tag is stored in *tag   */
#define CBLK_ARESULT_BLOCKING   2         /* wait for the completion                     */
#define CBLK_ARESULT_USER_TAG   4         /* *tag is a user tag                          */
#define CBLK_ARESULT_NO_HARVEST 8         /* look only at completions already collected  */

/* cblk_listio */
#define CBLK_LISTIO_WAIT_ISSUE_CMD 1      /* wait for free commands for the issue list   */

typedef struct cblk_io {
    uint8_t version;
    int   flags;
#define CBLK_IO_USER_TAG     0x0001
#define CBLK_IO_USER_STATUS  0x0002
#define CBLK_IO_PRIORITY_REQ 0x0004
    uint8_t request_type;
#define CBLK_IO_TYPE_READ  0x01
#define CBLK_IO_TYPE_WRITE 0x02
#define CBLK_IO_TYPE_UNMAP 0x03
    void *buf;
    cflash_offset_t lba;
    size_t nblocks;
    int tag;
    cblk_arw_status_t stat;
} cblk_io_t;

int cblk_init(void *arg, uint64_t flags);
int cblk_term(void *arg, uint64_t flags);

chunk_id_t cblk_open(const char *path, int max_num_requests, int mode, chunk_ext_arg_t ext, int flags);
int cblk_close(chunk_id_t chunk_id, int flags);

int cblk_get_lun_size(chunk_id_t chunk_id, size_t *nblocks, int flags);
int cblk_get_size(chunk_id_t chunk_id, size_t *nblocks, int flags);
int cblk_set_size(chunk_id_t chunk_id, size_t nblocks, int flags);
int cblk_get_stats(chunk_id_t chunk_id, chunk_stats_t *stats, int flags);
int cblk_get_attrs(chunk_id_t chunk_id, chunk_attrs_t *attr, int flags);

int cblk_read(chunk_id_t chunk_id, void *buf, cflash_offset_t lba, size_t nblocks, int flags);
int cblk_write(chunk_id_t chunk_id, void *buf, cflash_offset_t lba, size_t nblocks, int flags);
int cblk_unmap(chunk_id_t chunk_id, void *buf, cflash_offset_t lba, size_t nblocks, int flags);

int cblk_aread(chunk_id_t chunk_id, void *buf, cflash_offset_t lba, size_t nblocks, int *tag,
               cblk_arw_status_t *status, int flags);
int cblk_awrite(chunk_id_t chunk_id, void *buf, cflash_offset_t lba, size_t nblocks, int *tag,
                cblk_arw_status_t *status, int flags);
int cblk_aunmap(chunk_id_t chunk_id, void *buf, cflash_offset_t lba, size_t nblocks, int *tag,
                cblk_arw_status_t *status, int flags);
int cblk_aresult(chunk_id_t chunk_id, int *tag, uint64_t *status, int flags);

int cblk_listio(chunk_id_t chunk_id,
                cblk_io_t *issue_io_list[], int issue_items,
                cblk_io_t *pending_io_list[], int pending_items,
                cblk_io_t *wait_io_list[], int wait_items,
                cblk_io_t *completion_io_list[], int *completion_items,
                uint64_t timeout, int flags);

int cblk_clone_after_fork(chunk_id_t chunk_id, int mode, int flags);

typedef struct cflsh_cg_tag_s {
    chunk_id_t id;
    int        tag;
} cflsh_cg_tag_t;

chunk_cg_id_t cblk_cg_open(const char *path, int max_num_requests, int mode, int num_chunks,
                           chunk_ext_arg_t ext, int flags);
int cblk_cg_close(chunk_cg_id_t cgid, int flags);
int cblk_cg_get_stats(chunk_cg_id_t cgid, chunk_stats_t *stats, int flags);
int cblk_cg_get_lun_size(chunk_cg_id_t cgid, size_t *nblocks, int flags);
int cblk_cg_get_size(chunk_cg_id_t cgid, size_t *nblocks, int flags);
int cblk_cg_set_size(chunk_cg_id_t cgid, size_t nblocks, int flags);
int cblk_cg_read(chunk_cg_id_t cgid, void *pbuf, cflash_offset_t lba, size_t nblocks, int flags);
int cblk_cg_write(chunk_cg_id_t cgid, void *pbuf, cflash_offset_t lba, size_t nblocks, int flags);
int cblk_cg_unmap(chunk_cg_id_t cgid, void *pbuf, cflash_offset_t lba, size_t nblocks, int flags);
int cblk_cg_aread(chunk_cg_id_t cgid, void *pbuf, cflash_offset_t lba, size_t nblocks,
                  cflsh_cg_tag_t *ptag, cblk_arw_status_t *p_arwstatus, int flags);
int cblk_cg_awrite(chunk_cg_id_t cgid, void *pbuf, cflash_offset_t lba, size_t nblocks,
                   cflsh_cg_tag_t *ptag, cblk_arw_status_t *p_arwstatus, int flags);
int cblk_cg_aunmap(chunk_cg_id_t cgid, void *pbuf, cflash_offset_t lba, size_t nblocks,
                   cflsh_cg_tag_t *ptag, cblk_arw_status_t *p_arwstatus, int flags);
int cblk_cg_aresult(chunk_cg_id_t cgid, cflsh_cg_tag_t *ptag, uint64_t *p_arwstatus, int flags);
int cblk_cg_clone_after_fork(chunk_cg_id_t cgid, int mode, int flags);
int cblk_cg_get_num_chunks(chunk_cg_id_t cgid, int flags);

#ifdef __cplusplus
}
#endif

#endif /* _H_CFLASH_BLOCK */
