/*
 * libcflsh_block tests as a C user writes them: one test per behaviour, selected by argv[1].
 * Run by Tests/SuperpipeTests/CapiBlock/CapiBlockCTests.swift against a mock (SUPERPIPE_MOCK).
 * Exit status 0: passed; otherwise the failing check is printed.
 */
#define _GNU_SOURCE
#include <capiblock.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/wait.h>
#include <unistd.h>

#define BS 4096
static const char *disk;   /* argv[2]: the LUN (e.g. /dev/sda) */
static const char *disk2;  /* argv[3]: a second LUN (physical and virtual use of one LUN exclude each other) */
static const char *marker; /* argv[4]: a marker file or directory the test process creates */

#define CHECK(cond) do { if (!(cond)) { \
    fprintf(stderr, "FAIL %s:%d: %s (errno %d: %s)\n", __FILE__, __LINE__, #cond, errno, strerror(errno)); \
    exit(1); } } while (0)
#define CHECK_ERR(call, err) do { errno = 0; int rc_ = (call); \
    if (rc_ != -1 || errno != (err)) { \
        fprintf(stderr, "FAIL %s:%d: %s returned %d errno %d, expected -1 errno %d\n", \
                __FILE__, __LINE__, #call, rc_, errno, (err)); exit(1); } } while (0)

static void *blocks(size_t n) {
    void *p = NULL;
    CHECK(posix_memalign(&p, BS, n * BS) == 0);
    memset(p, 0, n * BS);
    return p;
}

static void stamp(char *buf, size_t n, unsigned seed) {
    for (size_t i = 0; i < n * BS; i++) buf[i] = (char)((i * 31 + seed * 7 + i / BS) & 0xff);
}

static chunk_id_t open_vlun(size_t size, int mode, int flags) {
    chunk_id_t id = cblk_open(disk, 0, mode, 0, CBLK_OPN_VIRT_LUN | flags);
    CHECK(id != NULL_CHUNK_ID);
    if (size) CHECK(cblk_set_size(id, size, 0) == 0);
    return id;
}

static void wait_for_file(const char *path) {
    for (int i = 0; i < 20000 && access(path, F_OK) != 0; i++) usleep(1000);
    CHECK(access(path, F_OK) == 0);
}

static void say(const char *line) { printf("%s\n", line); fflush(stdout); }

static int test_open_close(void) {
    CHECK(cblk_init(NULL, 0) == 0);
    chunk_id_t p = cblk_open(disk2, 64, O_RDWR, 0, 0);
    CHECK(p != NULL_CHUNK_ID);
    chunk_id_t v = cblk_open(disk, 0, O_RDWR, 0, CBLK_OPN_VIRT_LUN | CBLK_OPN_NO_INTRP_THREADS);
    CHECK(v != NULL_CHUNK_ID && v != p);
    chunk_id_t s1 = cblk_open(disk, 16, O_RDWR, 0, CBLK_OPN_VIRT_LUN | CBLK_OPN_SHARE_CTXT);
    chunk_id_t s2 = cblk_open(disk, 16, O_RDWR, 0, CBLK_OPN_VIRT_LUN | CBLK_OPN_SHARE_CTXT);
    CHECK(s1 != NULL_CHUNK_ID && s2 != NULL_CHUNK_ID);
    CHECK(cblk_close(s1, 0) == 0 && cblk_close(s2, 0) == 0);
    CHECK(cblk_close(v, 0) == 0);
    CHECK(cblk_close(p, 0) == 0);
    CHECK_ERR(cblk_close(p, 0), EINVAL);
    errno = 0;
    CHECK(cblk_open(disk, 8193, O_RDWR, 0, 0) == NULL_CHUNK_ID && errno == ENOMEM);
    errno = 0;
    CHECK(cblk_open(NULL, 0, O_RDWR, 0, 0) == NULL_CHUNK_ID && errno == EINVAL);
    errno = 0;
    CHECK(cblk_open(disk, -1, O_RDWR, 0, 0) == NULL_CHUNK_ID && errno == EINVAL);
    errno = 0;
    CHECK(cblk_open("/nonexistent/sdz", 0, O_RDWR, 0, 0) == NULL_CHUNK_ID && errno != 0);
    CHECK(cblk_term(NULL, 0) == 0);
    return 0;
}

static int test_sizes(void) {
    size_t lun = 0, n = 1;
    chunk_id_t p = cblk_open(disk, 0, O_RDWR, 0, 0);
    CHECK(p != NULL_CHUNK_ID);
    CHECK(cblk_get_lun_size(p, &lun, 0) == 0);
    CHECK(lun == (size_t)strtoull(marker, NULL, 0));
    CHECK(cblk_get_size(p, &n, 0) == 0 && n == lun);
    CHECK_ERR(cblk_set_size(p, 10, 0), EINVAL);
    CHECK(cblk_close(p, 0) == 0);
    p = cblk_open(disk2, 0, O_RDWR, 0, 0);
    CHECK(p != NULL_CHUNK_ID);
    chunk_id_t v = open_vlun(0, O_RDWR, 0);
    CHECK(cblk_get_size(v, &n, 0) == 0 && n == 0);
    CHECK(cblk_get_lun_size(v, &n, 0) == 0 && n == lun);
    CHECK_ERR(cblk_set_size(v, lun + 1, 0), EINVAL);
    CHECK_ERR(cblk_get_size(v, NULL, 0), EINVAL);
    CHECK(cblk_close(v, 0) == 0 && cblk_close(p, 0) == 0);
    return 0;
}

static int test_set_size(void) {
    char *buf = blocks(1);
    chunk_id_t v = open_vlun(0, O_RDWR, 0);
    CHECK_ERR(cblk_read(v, buf, 0, 1, 0), EINVAL);      /* size 0: no I/O yet */
    CHECK(cblk_set_size(v, 100, 0) == 0);
    size_t n = 0;
    CHECK(cblk_get_size(v, &n, 0) == 0 && n == 100);
    CHECK(cblk_write(v, buf, 99, 1, 0) == 1);
    CHECK_ERR(cblk_write(v, buf, 100, 1, 0), EINVAL);
    CHECK(cblk_set_size(v, 70000, 0) == 0);              /* grows past one 256 MiB chunk */
    CHECK(cblk_write(v, buf, 69999, 1, 0) == 1);
    CHECK(cblk_set_size(v, 10, 0) == 0);                 /* shrink */
    CHECK(cblk_get_size(v, &n, 0) == 0 && n == 10);
    CHECK_ERR(cblk_read(v, buf, 50, 1, 0), EINVAL);
    CHECK(cblk_read(v, buf, 9, 1, 0) == 1);
    CHECK(cblk_close(v, 0) == 0);
    free(buf);
    return 0;
}

static void round_trip(chunk_id_t id, cflash_offset_t lba, size_t n, unsigned seed) {
    char *w = blocks(n), *r = blocks(n);
    stamp(w, n, seed);
    CHECK(cblk_write(id, w, lba, n, 0) == (int)n);
    CHECK(cblk_read(id, r, lba, n, 0) == (int)n);
    CHECK(memcmp(w, r, n * BS) == 0);
    free(w); free(r);
}

static int test_read_write(void) {
    chunk_id_t v = open_vlun(1000, O_RDWR, 0);
    round_trip(v, 0, 1, 1);
    round_trip(v, 10, 64, 2);     /* multi-block transfers on a virtual LUN */
    round_trip(v, 999, 1, 3);
    chunk_id_t p = cblk_open(disk2, 0, O_RDWR, 0, CBLK_OPN_NO_INTRP_THREADS);
    CHECK(p != NULL_CHUNK_ID);
    round_trip(p, 5000, 8, 4);
    round_trip(p, 7000, 5000, 5); /* beyond 16 MiB: split by the library */
    CHECK(cblk_close(p, 0) == 0 && cblk_close(v, 0) == 0);
    return 0;
}

static int test_unmap(void) {
    chunk_id_t v = open_vlun(100, O_RDWR, 0);
    chunk_attrs_t attrs;
    memset(&attrs, 0xff, sizeof attrs);
    CHECK(cblk_get_attrs(v, &attrs, 0) == 0);
    CHECK(attrs.flags1 & CFLSH_ATTR_UNMAP);
    CHECK(attrs.block_size == BS && attrs.num_paths >= 1 && attrs.max_transfer_size >= 1);
    char *w = blocks(4), *r = blocks(4), *zero = blocks(4);
    stamp(w, 4, 9);
    CHECK(cblk_write(v, w, 20, 4, 0) == 4);
    CHECK(cblk_unmap(v, NULL, 21, 2, 0) == 2);
    CHECK(cblk_read(v, r, 20, 4, 0) == 4);
    CHECK(memcmp(r, w, BS) == 0);
    CHECK(memcmp(r + BS, zero, 2 * BS) == 0);
    CHECK(memcmp(r + 3 * BS, w + 3 * BS, BS) == 0);
    int tag = -1;
    CHECK(cblk_aunmap(v, NULL, 20, 1, &tag, NULL, 0) == 0);
    uint64_t status = 0;
    CHECK(cblk_aresult(v, &tag, &status, CBLK_ARESULT_BLOCKING) == 1 && status == 1);
    CHECK(cblk_read(v, r, 20, 1, 0) == 1 && memcmp(r, zero, BS) == 0);
    CHECK(cblk_close(v, 0) == 0);
    return 0;
}

static int test_async(void) {
    enum { N = 16 };
    chunk_id_t v = open_vlun(1024, O_RDWR, 0);
    char *w = blocks(N * 4), *r = blocks(N * 4);
    stamp(w, N * 4, 11);
    int tags[N];
    cblk_arw_status_t st[N];
    for (int i = 0; i < N; i++) {               /* user tags and user statuses */
        tags[i] = 1000 + i;
        CHECK(cblk_awrite(v, w + i * 4 * BS, i * 4, 4, &tags[i], &st[i],
                          CBLK_ARW_USER_TAG_FLAG | CBLK_ARW_USER_STATUS_FLAG | CBLK_ARW_WAIT_CMD_FLAGS) == 0);
        CHECK(tags[i] == 1000 + i);
    }
    for (int i = 0; i < N; i++) {
        for (int spins = 0; spins < 100000 && ((volatile cblk_arw_status_t *)&st[i])->status == CBLK_ARW_STATUS_PENDING; spins++)
            usleep(100);
        CHECK(st[i].status == CBLK_ARW_STATUS_SUCCESS && st[i].blocks_transferred == 4 && st[i].fail_errno == 0);
    }
    /* library tags, reaped by tag with BLOCKING */
    for (int i = 0; i < N; i++) CHECK(cblk_aread(v, r + i * 4 * BS, i * 4, 4, &tags[i], NULL, 0) == 0);
    for (int i = 0; i < N; i++) {
        uint64_t status = 0;
        CHECK(cblk_aresult(v, &tags[i], &status, CBLK_ARESULT_BLOCKING) == 4 && status == 4);
    }
    CHECK(memcmp(w, r, N * 4 * BS) == 0);
    /* a user tag reaped with CBLK_ARESULT_USER_TAG */
    int t = 77;
    CHECK(cblk_aread(v, r, 0, 1, &t, NULL, CBLK_ARW_USER_TAG_FLAG) == 0);
    uint64_t status = 0;
    CHECK(cblk_aresult(v, &t, &status, CBLK_ARESULT_BLOCKING | CBLK_ARESULT_USER_TAG) == 1);
    /* a failing async request: its errno at aresult */
    CHECK_ERR(cblk_aread(v, r, 1024, 1, &t, NULL, 0), EINVAL);
    CHECK(cblk_close(v, 0) == 0);
    return 0;
}

static int test_aresult_flags(void) {
    chunk_id_t v = open_vlun(64, O_RDWR, CBLK_OPN_NO_INTRP_THREADS);
    char *b = blocks(8);
    int tag = 0;
    uint64_t status = 0;
    CHECK_ERR(cblk_aresult(v, &tag, &status, CBLK_ARESULT_NEXT_TAG), ENOENT);  /* nothing active */
    tag = 12345;
    CHECK_ERR(cblk_aresult(v, &tag, &status, 0), EINVAL);                      /* unknown tag */
    int tags[8], seen[8] = {0};
    for (int i = 0; i < 8; i++) CHECK(cblk_awrite(v, b + i * BS, i, 1, &tags[i], NULL, 0) == 0);
    for (int done = 0; done < 8;) {
        int t = -1;
        int rc = cblk_aresult(v, &t, &status, CBLK_ARESULT_NEXT_TAG | CBLK_ARESULT_BLOCKING);
        CHECK(rc == 1);
        for (int i = 0; i < 8; i++) if (tags[i] == t) { CHECK(!seen[i]); seen[i] = 1; done++; }
    }
    /* non-blocking: 0 until complete, then the count */
    CHECK(cblk_aread(v, b, 0, 1, &tag, NULL, 0) == 0);
    int rc;
    for (int i = 0; i < 100000 && (rc = cblk_aresult(v, &tag, &status, CBLK_ARESULT_NO_HARVEST)) == 0; i++) usleep(50);
    CHECK(rc == 1 && status == 1);
    CHECK_ERR(cblk_aresult(v, &tag, &status, 0), EINVAL);                      /* already reaped */
    /* EAGAIN without CBLK_ARW_WAIT_CMD_FLAGS when every command is taken */
    chunk_id_t small = cblk_open(disk, 1, O_RDWR, 0, CBLK_OPN_VIRT_LUN);
    CHECK(small != NULL_CHUNK_ID && cblk_set_size(small, 8, 0) == 0);
    int t1, t2;
    CHECK(cblk_aread(small, b, 0, 1, &t1, NULL, 0) == 0);
    CHECK_ERR(cblk_aread(small, b + BS, 1, 1, &t2, NULL, 0), EAGAIN);
    CHECK(cblk_aresult(small, &t1, &status, CBLK_ARESULT_BLOCKING) == 1);
    CHECK(cblk_close(small, 0) == 0 && cblk_close(v, 0) == 0);
    return 0;
}

static int test_listio(void) {
    /* marker: the directory for marker files the test process creates */
    char hold[512], resume[512];
    snprintf(hold, sizeof hold, "%s/held", marker);
    snprintf(resume, sizeof resume, "%s/resumed", marker);
    chunk_id_t v = open_vlun(64, O_RDWR, 0);
    enum { N = 4 };
    cblk_io_t io[N], *issue[N], *wait_list[N], *done[N];
    char *b = blocks(N);
    stamp(b, N, 21);
    for (int i = 0; i < N; i++) {
        memset(&io[i], 0, sizeof io[i]);
        io[i].request_type = CBLK_IO_TYPE_WRITE;
        io[i].buf = b + i * BS;
        io[i].lba = i;
        io[i].nblocks = 1;
        issue[i] = &io[i];
        wait_list[i] = &io[i];
    }
    int ncomp = N;
    CHECK(cblk_listio(v, issue, N, NULL, 0, wait_list, N, done, &ncomp, 0, 0) == 0);
    for (int i = 0; i < N; i++) CHECK(io[i].stat.status == CBLK_ARW_STATUS_SUCCESS && io[i].stat.blocks_transferred == 1);
    /* issue without waiting; collect from the completion list */
    for (int i = 0; i < N; i++) { io[i].request_type = CBLK_IO_TYPE_READ; io[i].flags = CBLK_IO_USER_TAG; io[i].tag = 500 + i; }
    ncomp = 0;
    CHECK(cblk_listio(v, issue, N, NULL, 0, NULL, 0, done, &ncomp, 0, 0) == 0);
    int got = 0;
    for (int round = 0; round < 10000 && got < N; round++) {
        ncomp = N;
        CHECK(cblk_listio(v, NULL, 0, issue, N, NULL, 0, done, &ncomp, 1000, 0) == 0);
        got = ncomp;
        if (got < N) usleep(100);
    }
    CHECK(got == N && io[0].tag == 500);
    /* a held adapter: ETIMEDOUT, then the pending requests complete once resumed */
    say("hold");
    wait_for_file(hold);
    for (int i = 0; i < N; i++) { io[i].request_type = CBLK_IO_TYPE_WRITE; io[i].flags = 0; }
    ncomp = N;
    CHECK_ERR(cblk_listio(v, issue, N, NULL, 0, wait_list, N, done, &ncomp, 100000, 0), ETIMEDOUT);
    CHECK(io[0].stat.status == CBLK_ARW_STATUS_PENDING);
    CHECK_ERR(cblk_close(v, 0), EBUSY);             /* commands active */
    say("resume");
    wait_for_file(resume);
    ncomp = N;
    CHECK(cblk_listio(v, NULL, 0, issue, N, wait_list, N, done, &ncomp, 10000000, 0) == 0);
    for (int i = 0; i < N; i++) CHECK(io[i].stat.status == CBLK_ARW_STATUS_SUCCESS);
    CHECK(cblk_close(v, 0) == 0);
    return 0;
}

static int test_stats(void) {
    chunk_id_t v = open_vlun(256, O_RDWR, 0);
    char *b = blocks(8);
    for (int i = 0; i < 5; i++) CHECK(cblk_write(v, b, i * 8, 8, 0) == 8);
    for (int i = 0; i < 3; i++) CHECK(cblk_read(v, b, i * 2, 2, 0) == 2);
    int tag;
    uint64_t st;
    for (int i = 0; i < 4; i++) {
        CHECK(cblk_aread(v, b, i, 1, &tag, NULL, 0) == 0);
        CHECK(cblk_aresult(v, &tag, &st, CBLK_ARESULT_BLOCKING) == 1);
    }
    CHECK(cblk_awrite(v, b, 100, 3, &tag, NULL, 0) == 0);
    CHECK(cblk_aresult(v, &tag, &st, CBLK_ARESULT_BLOCKING) == 3);
    CHECK_ERR(cblk_read(v, b, 256, 1, 0), EINVAL);   /* refused before issue: not counted */
    chunk_stats_t s;
    memset(&s, 0xff, sizeof s);
    CHECK(cblk_get_stats(v, &s, 0) == 0);
    CHECK(s.block_size == BS && s.num_paths == 1);
    CHECK(s.num_writes == 5 && s.num_reads == 3 && s.num_areads == 4 && s.num_awrites == 1);
    CHECK(s.num_blocks_written == 43 && s.num_blocks_read == 10);
    CHECK(s.num_act_reads == 0 && s.num_act_writes == 0 && s.num_act_areads == 0 && s.num_act_awrites == 0);
    CHECK(s.max_num_act_reads == 1 && s.max_num_act_writes == 1 && s.max_num_act_areads == 1);
    CHECK(s.num_errors == 0 && s.num_cache_hits == 0 && s.num_capi_adap_resets == 0);
    /* filled from the handle's statistics (the 0xff fill would show a field left out) */
    CHECK(s.num_fc_errors == 0 && s.num_cc_errors == 0 && s.num_afu_errors == 0 && s.num_retries == 0);
    CHECK(s.num_port0_linkdowns == 0 && s.num_port1_no_logins == 0 && s.num_reset_contexts == 0);
    CHECK_ERR(cblk_get_stats(v, NULL, 0), EINVAL);
    CHECK(cblk_close(v, 0) == 0);
    return 0;
}

static int test_bad_input(void) {
    chunk_id_t v = open_vlun(16, O_RDWR, 0);
    char *b = blocks(3), *r = blocks(2);
    stamp(b, 3, 5);
    CHECK(cblk_write(v, b, 15, 1, 0) == 1);
    CHECK_ERR(cblk_read(v, NULL, 0, 1, 0), EINVAL);
    CHECK_ERR(cblk_write(v, NULL, 0, 1, 0), EINVAL);
    CHECK_ERR(cblk_write(v, b + 1, 0, 1, 0), EINVAL);   /* not 16-byte aligned */
    CHECK_ERR(cblk_write(v, b + 8, 0, 1, 0), EINVAL);
    CHECK(cblk_write(v, b + 16, 0, 1, 0) == 1);          /* 16-byte aligned is enough */
    CHECK_ERR(cblk_read(9999, r, 0, 1, 0), EINVAL);      /* no such chunk */
    CHECK_ERR(cblk_write(v, b + BS, 15, 2, 0), EINVAL);  /* out of range: nothing written */
    CHECK_ERR(cblk_write(v, b, -1, 1, 0), EINVAL);
    CHECK_ERR(cblk_read(v, r, 0, 0, 0), EINVAL);
    CHECK(cblk_read(v, r, 15, 1, 0) == 1 && memcmp(r, b, BS) == 0);
    int tag;
    CHECK_ERR(cblk_awrite(v, b, 16, 1, &tag, NULL, 0), EINVAL);
    CHECK_ERR(cblk_awrite(v, b, 0, 1, NULL, NULL, 0), EINVAL);
    chunk_id_t ro = cblk_open(disk2, 0, O_RDONLY, 0, 0); /* access enforced per I/O */
    CHECK(ro != NULL_CHUNK_ID);
    CHECK(cblk_read(ro, r, 0, 1, 0) == 1);
    CHECK_ERR(cblk_write(ro, b, 0, 1, 0), EINVAL);
    CHECK(cblk_close(ro, 0) == 0);
    CHECK(cblk_close(v, 0) == 0);
    CHECK_ERR(cblk_read(v, r, 0, 1, 0), EINVAL);         /* closed */
    CHECK_ERR(cblk_get_size(v, (size_t *)&tag, 0), EINVAL);
    return 0;
}

static int test_fork(void) {
    chunk_id_t p = cblk_open(disk2, 0, O_RDWR, 0, 0);
    CHECK(p != NULL_CHUNK_ID);
    chunk_id_t v = open_vlun(32, O_RDWR, 0);
    chunk_id_t ro = open_vlun(0, O_RDONLY, 0);
    char *w = blocks(2), *r = blocks(2);
    stamp(w, 2, 33);
    CHECK(cblk_write(p, w, 300, 2, 0) == 2);
    CHECK(cblk_write(v, w, 3, 2, 0) == 2);
    pid_t child = fork();
    CHECK(child >= 0);
    if (child == 0) {
        /* physical: usable in the child without a call */
        CHECK(cblk_read(p, r, 300, 2, 0) == 2 && memcmp(r, w, 2 * BS) == 0);
        /* virtual: EINVAL until cblk_clone_after_fork */
        CHECK_ERR(cblk_read(v, r, 3, 2, 0), EINVAL);
        CHECK_ERR(cblk_clone_after_fork(ro, O_RDWR, 0), EINVAL);   /* may not widen */
        CHECK(cblk_clone_after_fork(v, O_RDWR, 0) == 0);
        memset(r, 0, 2 * BS);
        CHECK(cblk_read(v, r, 3, 2, 0) == 2 && memcmp(r, w, 2 * BS) == 0);
        CHECK(cblk_write(v, w, 10, 1, 0) == 1);   /* the clone shares the parent's blocks */
        CHECK(cblk_close(v, 0) == 0 && cblk_close(p, 0) == 0);
        _exit(0);
    }
    int status = 0;
    CHECK(waitpid(child, &status, 0) == child);
    CHECK(WIFEXITED(status) && WEXITSTATUS(status) == 0);
    CHECK(cblk_read(v, r, 10, 1, 0) == 1 && memcmp(r, w, BS) == 0);
    CHECK_ERR(cblk_clone_after_fork(v, O_RDWR, 0), EINVAL);         /* not a child */
    CHECK(cblk_close(ro, 0) == 0 && cblk_close(v, 0) == 0 && cblk_close(p, 0) == 0);
    return 0;
}

/* A synchronous call polls for its completion whatever the open flags, as capiflash's
 * CBLK_WAIT_FOR_IO_COMPLETE_PATH does: with capiflash's default flags (interrupt threads allowed)
 * too, most reads end without the calling thread going to sleep (no voluntary context switch).
 * A thread that slept for each completion ran 10x slower against a served mock. The server may
 * be late now and then on a loaded machine (the poller then sleeps), so half the reads must stay
 * awake: polling kept 1991-2000 of 2000 awake, the library's interrupt mode (sleep at once) 372. */
static int test_sync_polls(void) {
    const int flags[2] = {0, CBLK_OPN_NO_INTRP_THREADS};
    char *r = blocks(1);
    for (int f = 0; f < 2; f++) {
        chunk_id_t p = cblk_open(disk2, 8, O_RDONLY, 0, flags[f]);
        CHECK(p != NULL_CHUNK_ID);
        for (int i = 0; i < 100; i++) CHECK(cblk_read(p, r, (cflash_offset_t)i, 1, 0) == 1); /* warm up */
        const int reads = 2000;
        int awake = 0;
        for (int i = 0; i < reads; i++) {
            struct rusage before, after;
            CHECK(getrusage(RUSAGE_THREAD, &before) == 0);
            CHECK(cblk_read(p, r, (cflash_offset_t)(i * 7 % 4096), 1, 0) == 1);
            CHECK(getrusage(RUSAGE_THREAD, &after) == 0);
            if (after.ru_nvcsw == before.ru_nvcsw) awake++;
        }
        printf("flags %d: %d of %d synchronous reads ended without the thread sleeping\n", flags[f], awake, reads);
        CHECK(awake * 2 >= reads);
        CHECK(cblk_close(p, 0) == 0);
    }
    free(r);
    return 0;
}

/* fork() while async requests are in flight and the chunk's reaper thread runs (interrupt threads
 * on: flags 0): the fork gate holds fork() until the reaper is outside Swift code, so the child never
 * inherits a runtime lock the reaper held; the child does I/O of its own, the parent's requests all
 * complete. Many rounds: a fork landing in the reaper's first Swift calls is what once hung. */
static int test_fork_reaper(void) {
    chunk_id_t p = cblk_open(disk2, 8, O_RDWR, 0, 0);
    CHECK(p != NULL_CHUNK_ID);
    char *w = blocks(1), *r = blocks(8);
    stamp(w, 1, 44);
    CHECK(cblk_write(p, w, 400, 1, 0) == 1);
    for (int round = 0; round < 20; round++) {
        int tags[8];
        memset(r, 0, 8 * BS);
        for (int i = 0; i < 8; i++) CHECK(cblk_aread(p, r + i * BS, 400, 1, &tags[i], NULL, 0) == 0);
        pid_t child = fork();
        CHECK(child >= 0);
        if (child == 0) {
            char *c = blocks(1);
            _exit(cblk_read(p, c, 400, 1, 0) == 1 && memcmp(c, w, BS) == 0 && cblk_close(p, 0) == 0 ? 0 : 1);
        }
        int status = 0;
        CHECK(waitpid(child, &status, 0) == child);
        CHECK(WIFEXITED(status) && WEXITSTATUS(status) == 0);
        for (int i = 0; i < 8; i++) {
            uint64_t done = 0;
            CHECK(cblk_aresult(p, &tags[i], &done, CBLK_ARESULT_BLOCKING) == 1 && done == 1);
            CHECK(memcmp(r + i * BS, w, BS) == 0);
        }
    }
    CHECK(cblk_close(p, 0) == 0);
    return 0;
}

static int test_groups(void) {
    /* a plain group: 3 chunks of one LUN, round-robin */
    chunk_cg_id_t g = cblk_cg_open(disk, 0, O_RDWR, 3, 0, 0);
    CHECK(g != NULL_CHUNK_CG_ID);
    CHECK(cblk_cg_get_num_chunks(g, 0) == 3);
    char *w = blocks(16), *r = blocks(16);
    stamp(w, 16, 44);
    for (int i = 0; i < 6; i++) CHECK(cblk_cg_write(g, w + i * BS, 100 + i, 1, 0) == 1);
    CHECK(cblk_cg_read(g, r, 100, 6, 0) == 6 && memcmp(r, w, 6 * BS) == 0);
    cflsh_cg_tag_t ct;
    uint64_t st;
    CHECK(cblk_cg_aread(g, r, 100, 2, &ct, NULL, 0) == 0);
    CHECK(cblk_cg_aresult(g, &ct, &st, CBLK_ARESULT_BLOCKING) == 2);
    chunk_stats_t s;
    CHECK(cblk_cg_get_stats(g, &s, 0) == 0 && s.num_writes == 6 && s.num_reads == 1 && s.num_areads == 1);
    CHECK(cblk_get_stats(g, &s, CBLK_GROUP_ID) == 0 && s.num_writes == 6);
    CHECK_ERR(cblk_cg_open(disk, 0, O_RDWR, 2, 0, CBLK_OPN_VIRT_LUN), EINVAL);
    CHECK(cblk_cg_close(g, 0) == 0);
    /* RAID-0 over two LUNs: group block b on LUN b % 2 at block b / 2 */
    char paths[512];
    snprintf(paths, sizeof paths, "%s:%s", disk, disk2);
    chunk_cg_id_t r0 = cblk_cg_open(paths, 0, O_RDWR, 0, 0, CBLK_GROUP_RAID0);
    CHECK(r0 != NULL_CHUNK_CG_ID);
    CHECK(cblk_cg_get_num_chunks(r0, 0) == 2);
    size_t size = 0, lun = 0;
    CHECK(cblk_cg_get_size(r0, &size, 0) == 0);
    chunk_id_t a = cblk_open(disk, 0, O_RDWR, 0, 0), b = cblk_open(disk2, 0, O_RDWR, 0, 0);
    CHECK(a != NULL_CHUNK_ID && b != NULL_CHUNK_ID);
    CHECK(cblk_get_lun_size(a, &lun, 0) == 0 && size == 2 * lun);
    CHECK(cblk_cg_write(r0, w, 10, 7, 0) == 7);
    memset(r, 0, 16 * BS);
    CHECK(cblk_cg_read(r0, r, 10, 7, 0) == 7 && memcmp(r, w, 7 * BS) == 0);
    /* blocks 10, 12, 14, 16 on the first LUN at 5..8; 11, 13, 15 on the second at 5..7 */
    CHECK(cblk_read(a, r, 5, 4, 0) == 4);
    for (int i = 0; i < 4; i++) CHECK(memcmp(r + i * BS, w + (2 * i) * BS, BS) == 0);
    CHECK(cblk_read(b, r, 5, 3, 0) == 3);
    for (int i = 0; i < 3; i++) CHECK(memcmp(r + i * BS, w + (2 * i + 1) * BS, BS) == 0);
    CHECK(cblk_cg_awrite(r0, w, 20, 3, &ct, NULL, 0) == 0);
    CHECK(cblk_cg_aresult(r0, &ct, &st, CBLK_ARESULT_BLOCKING) == 3);
    CHECK(cblk_read(r0, r, 20, 3, CBLK_GROUP_RAID0) == 3 && memcmp(r, w, 3 * BS) == 0);
    CHECK_ERR(cblk_cg_read(r0, r, size, 1, 0), EINVAL);
    CHECK(cblk_close(a, 0) == 0 && cblk_close(b, 0) == 0);
    CHECK(cblk_cg_close(r0, 0) == 0);
    CHECK_ERR(cblk_cg_close(r0, 0), EINVAL);
    return 0;
}

static int test_reset(void) {
    /* marker: a file the test process creates once it has reset the adapter */
    chunk_id_t v = open_vlun(512, O_RDWR, 0);
    chunk_id_t p = cblk_open(disk2, 0, O_RDWR, 0, CBLK_OPN_NO_INTRP_THREADS);
    CHECK(p != NULL_CHUNK_ID);
    char *w = blocks(8), *r = blocks(8);
    say("ready");
    int after = 0;
    for (unsigned i = 0; after < 100; i++) {
        if (access(marker, F_OK) == 0) after++;
        stamp(w, 8, i);
        chunk_id_t id = (i & 1) ? v : p;
        cflash_offset_t lba = (i * 8) % 504;
        CHECK(cblk_write(id, w, lba, 8, 0) == 8);
        int tag;
        uint64_t st;
        CHECK(cblk_aread(id, r, lba, 8, &tag, NULL, 0) == 0);
        CHECK(cblk_aresult(id, &tag, &st, CBLK_ARESULT_BLOCKING) == 8);
        CHECK(memcmp(w, r, 8 * BS) == 0);
        CHECK(i < 200000);
    }
    chunk_stats_t s1, s2;
    CHECK(cblk_get_stats(v, &s1, 0) == 0 && cblk_get_stats(p, &s2, 0) == 0);
    CHECK(s1.num_errors == 0 && s2.num_errors == 0);
    CHECK(s1.num_reset_contexts + s2.num_reset_contexts >= 1);
    CHECK(cblk_close(v, 0) == 0 && cblk_close(p, 0) == 0);
    return 0;
}

static chunk_stats_t stats_of(chunk_id_t id) {
    chunk_stats_t s;
    memset(&s, 0xff, sizeof s);
    CHECK(cblk_get_stats(id, &s, 0) == 0);
    return s;
}

static int test_reaper(void) {
    /* The reaper harvests while the program makes no call: library tags (seen by a NO_HARVEST
       look, which only reads posted completions) and user statuses (written with no poller). */
    enum { N = 64 };
    chunk_id_t v = open_vlun(N, O_RDWR, 0);
    char *w = blocks(N), *r = blocks(N);
    stamp(w, N, 61);
    int tags[N];
    cblk_arw_status_t st[N];
    for (int i = 0; i < N; i++)
        CHECK(cblk_awrite(v, w + i * BS, i, 1, &tags[i], &st[i], CBLK_ARW_USER_STATUS_FLAG) == 0);
    for (int i = 0; i < N; i++) {          /* no call into the library while waiting */
        for (int spins = 0; spins < 200000 && ((volatile cblk_arw_status_t *)&st[i])->status == CBLK_ARW_STATUS_PENDING; spins++)
            usleep(50);
        if (st[i].status != CBLK_ARW_STATUS_SUCCESS)
            fprintf(stderr, "request %d: status %d, fail_errno %d\n", i, st[i].status, st[i].fail_errno);
        CHECK(st[i].status == CBLK_ARW_STATUS_SUCCESS && st[i].blocks_transferred == 1 && st[i].fail_errno == 0);
    }
    for (int i = 0; i < N; i++) CHECK(cblk_aread(v, r + i * BS, i, 1, &tags[i], NULL, 0) == 0);
    for (int i = 0; i < 200 && stats_of(v).num_act_areads != 0; i++) usleep(10000);   /* 2 s at most */
    chunk_stats_t s = stats_of(v);
    CHECK(s.num_act_areads == 0 && s.num_areads == N);
    uint64_t status = 0;
    for (int i = 0; i < N; i++) CHECK(cblk_aresult(v, &tags[i], &status, CBLK_ARESULT_NO_HARVEST) == 1 && status == 1);
    CHECK(memcmp(w, r, N * BS) == 0);
    CHECK(stats_of(v).num_aresult_no_cmplt == 0);
    /* CBLK_OPN_NO_INTRP_THREADS: no thread of the library's harvests; the program's calls do
       (fewer requests than the adapter's command room: with none, cblk_aread harvests) */
    enum { Q = 8 };
    chunk_id_t q = open_vlun(N, O_RDWR, CBLK_OPN_NO_INTRP_THREADS);
    for (int i = 0; i < Q; i++) CHECK(cblk_aread(q, r + i * BS, i, 1, &tags[i], NULL, 0) == 0);
    usleep(100000);
    CHECK(stats_of(q).num_act_areads == Q);
    for (int done = 0; done < Q; done++) {
        int t = -1;
        CHECK(cblk_aresult(q, &t, &status, CBLK_ARESULT_NEXT_TAG | CBLK_ARESULT_BLOCKING) == 1);
    }
    CHECK(stats_of(q).num_act_areads == 0);
    CHECK_ERR(cblk_aresult(q, &tags[0], &status, CBLK_ARESULT_NEXT_TAG), ENOENT);
    CHECK(cblk_close(q, 0) == 0 && cblk_close(v, 0) == 0);
    free(w); free(r);
    return 0;
}

static void reap_all(chunk_id_t id, int n, int nblocks) {
    for (int done = 0; done < n; done++) {
        int t = -1;
        uint64_t status = 0;
        CHECK(cblk_aresult(id, &t, &status, CBLK_ARESULT_NEXT_TAG | CBLK_ARESULT_BLOCKING) == nblocks);
        CHECK(status == (uint64_t)nblocks);
    }
}

static int test_reset_async(void) {
    /* 32 async requests in flight on each of two chunks (one with a reaper, one without) while the
       adapter is reset: every one completes successfully, with its data. marker: a directory for
       the files the test process creates once it has held, then reset. */
    enum { N = 32 };
    char held[512], reset[512];
    chunk_id_t v = open_vlun(N, O_RDWR, 0);
    chunk_id_t p = cblk_open(disk2, N, O_RDWR, 0, CBLK_OPN_NO_INTRP_THREADS);
    CHECK(p != NULL_CHUNK_ID);
    char *w = blocks(2 * N), *r = blocks(2 * N);
    int tags[2 * N];
    for (int round = 0; round < 2; round++) {   /* round 0: writes; round 1: reads of them */
        snprintf(held, sizeof held, "%s/held%d", marker, round);
        snprintf(reset, sizeof reset, "%s/reset%d", marker, round);
        say(round == 0 ? "hold0" : "hold1");
        wait_for_file(held);
        if (round == 0) stamp(w, 2 * N, 71);
        for (int i = 0; i < N; i++) {
            if (round == 0) {
                CHECK(cblk_awrite(v, w + i * BS, i, 1, &tags[i], NULL, 0) == 0);
                CHECK(cblk_awrite(p, w + (N + i) * BS, 1000 + i, 1, &tags[N + i], NULL, 0) == 0);
            } else {
                CHECK(cblk_aread(v, r + i * BS, i, 1, &tags[i], NULL, 0) == 0);
                CHECK(cblk_aread(p, r + (N + i) * BS, 1000 + i, 1, &tags[N + i], NULL, 0) == 0);
            }
        }
        CHECK(stats_of(v).num_act_awrites + stats_of(v).num_act_areads == N);
        say(round == 0 ? "reset0" : "reset1");
        wait_for_file(reset);
        reap_all(v, N, 1);
        reap_all(p, N, 1);
    }
    CHECK(memcmp(w, r, 2 * N * BS) == 0);
    memset(r, 0, 2 * N * BS);
    CHECK(cblk_read(v, r, 0, N, 0) == N && cblk_read(p, r + N * BS, 1000, N, 0) == N);
    CHECK(memcmp(w, r, 2 * N * BS) == 0);
    chunk_stats_t s1 = stats_of(v), s2 = stats_of(p);
    CHECK(s1.num_errors == 0 && s2.num_errors == 0);
    CHECK(s1.num_reset_contexts >= 1 && s2.num_reset_contexts >= 1);
    CHECK(s1.num_retries >= N && s2.num_retries >= N);   /* each lost command was re-issued */
    CHECK(cblk_close(v, 0) == 0 && cblk_close(p, 0) == 0);
    free(w); free(r);
    return 0;
}

static int test_cmd_room(void) {
    /* More requests than the adapter's command room (the mock's default, 16): cblk_aread does not
       block; the rest wait in the library's queue (num_no_cmd_room) and are submitted as room
       comes back. marker: a directory for the files the test process creates once it has held,
       then resumed, the adapter. */
    enum { ROOM = 16, N = 32 };
    char held[512], resumed[512];
    snprintf(held, sizeof held, "%s/held", marker);
    snprintf(resumed, sizeof resumed, "%s/resumed", marker);
    chunk_id_t q = open_vlun(N, O_RDWR, CBLK_OPN_NO_INTRP_THREADS);
    char *w = blocks(N), *r = blocks(N);
    stamp(w, N, 91);
    CHECK(cblk_write(q, w, 0, N, 0) == N);
    say("hold");
    wait_for_file(held);
    int tags[N];
    for (int i = 0; i < N; i++) CHECK(cblk_aread(q, r + i * BS, i, 1, &tags[i], NULL, 0) == 0);
    chunk_stats_t s = stats_of(q);
    CHECK(s.num_act_areads == N && s.num_no_cmd_room == N - ROOM);
    say("resume");
    wait_for_file(resumed);
    usleep(100000);     /* the held commands complete and the adapter has its room back */
    reap_all(q, N, 1);
    CHECK(memcmp(w, r, N * BS) == 0);
    CHECK(stats_of(q).num_errors == 0);
    CHECK(cblk_close(q, 0) == 0);
    free(w); free(r);
    return 0;
}

static int test_adapter_fail(void) {
    /* The adapter fails for good (FAILTERM) with async requests in flight, on a chunk with a reaper
       and one without: every request ends, with -1 and an errno, and is counted as an error.
       marker: a directory for the files the test process creates once it has held, then failed,
       the adapter. */
    enum { N = 8 };
    char held[512], failed[512];
    snprintf(held, sizeof held, "%s/held", marker);
    snprintf(failed, sizeof failed, "%s/failed", marker);
    chunk_id_t v = open_vlun(N, O_RDWR, 0);
    chunk_id_t p = cblk_open(disk2, 0, O_RDWR, 0, CBLK_OPN_NO_INTRP_THREADS);
    CHECK(p != NULL_CHUNK_ID);
    char *b = blocks(2 * N);
    say("hold");
    wait_for_file(held);
    int tags[2 * N];
    for (int i = 0; i < N; i++) {
        CHECK(cblk_aread(v, b + i * BS, i, 1, &tags[i], NULL, 0) == 0);
        CHECK(cblk_aread(p, b + (N + i) * BS, i, 1, &tags[N + i], NULL, 0) == 0);
    }
    say("fail");
    wait_for_file(failed);
    chunk_id_t ids[2] = {v, p};
    for (int c = 0; c < 2; c++) {
        for (int i = 0; i < N; i++) {
            int t = -1;
            uint64_t status = 0;
            errno = 0;
            CHECK(cblk_aresult(ids[c], &t, &status, CBLK_ARESULT_NEXT_TAG | CBLK_ARESULT_BLOCKING) == -1);
            CHECK(errno != 0 && status == (uint64_t)errno);
        }
        chunk_stats_t s = stats_of(ids[c]);
        CHECK(s.num_errors == N && s.num_act_areads == 0);
    }
    free(b);
    return 0;
}

static int test_async_retry(void) {
    /* Statuses injected by the test process before each step (it answers "inject-N" with marker
       file N): a retryable status is re-issued (the request succeeds), a UNIT ATTENTION is answered
       with VERIFY and re-issued, a medium error fails the request with EIO. */
    char file[512];
    chunk_id_t v = open_vlun(64, O_RDWR, CBLK_OPN_NO_INTRP_THREADS);
    char *w = blocks(16), *r = blocks(16);
    stamp(w, 16, 81);
    CHECK(cblk_write(v, w, 0, 16, 0) == 16);
    int tags[16];
    uint64_t status = 0;
    const char *steps[] = {"inject-retry", "inject-ua"};
    for (int step = 0; step < 2; step++) {
        snprintf(file, sizeof file, "%s/%s", marker, steps[step]);
        say(steps[step]);
        wait_for_file(file);
        memset(r, 0, 16 * BS);
        for (int i = 0; i < 16; i++) CHECK(cblk_aread(v, r + i * BS, i, 1, &tags[i], NULL, 0) == 0);
        reap_all(v, 16, 1);
        CHECK(memcmp(w, r, 16 * BS) == 0);
    }
    chunk_stats_t s = stats_of(v);
    CHECK(s.num_errors == 0 && s.num_retries >= 5);
    /* counted by the library's data path: the 4 AFU errors, the UNIT ATTENTION (a CHECK CONDITION) */
    CHECK(s.num_afu_errors == 4 && s.num_cc_errors == 1 && s.num_fc_errors == 0);
    snprintf(file, sizeof file, "%s/inject-fatal", marker);
    say("inject-fatal");
    wait_for_file(file);
    CHECK(cblk_aread(v, r, 3, 1, &tags[0], NULL, 0) == 0);
    CHECK_ERR(cblk_aresult(v, &tags[0], &status, CBLK_ARESULT_BLOCKING), EIO);
    CHECK(status == EIO);
    s = stats_of(v);
    CHECK(s.num_errors == 1 && s.num_act_areads == 0);
    CHECK(s.num_cc_errors == 2 && s.num_afu_errors == 4);
    CHECK(cblk_close(v, 0) == 0);
    free(w); free(r);
    return 0;
}

static int test_compat(void) {
    /* run with CFLSH_BLK_COMPAT=1: capiflash's limits */
    chunk_id_t v = open_vlun(100, O_RDWR, 0);
    char *b = blocks(2);
    CHECK(cblk_write(v, b, 0, 1, 0) == 1);
    CHECK_ERR(cblk_write(v, b, 0, 2, 0), EINVAL);    /* one block per request on a virtual LUN */
    chunk_attrs_t a;
    CHECK(cblk_get_attrs(v, &a, 0) == 0 && a.max_transfer_size == 1);
    CHECK(cblk_set_size(v, 10, 0) == 0);             /* a shrink that keeps the space */
    size_t n;
    CHECK(cblk_get_size(v, &n, 0) == 0 && n == 10);
    CHECK_ERR(cblk_read(v, b, 10, 1, 0), EINVAL);
    CHECK(cblk_close(v, 0) == 0);
    return 0;
}

int main(int argc, char **argv) {
    if (argc < 3) { fprintf(stderr, "usage: %s TEST DISK [ARG]\n", argv[0]); return 2; }
    disk = argv[2];
    disk2 = argc > 3 ? argv[3] : "";
    marker = argc > 4 ? argv[4] : "";
    setvbuf(stdout, NULL, _IOLBF, 0);
    static const struct { const char *name; int (*run)(void); } tests[] = {
        {"open-close", test_open_close}, {"sizes", test_sizes}, {"set-size", test_set_size},
        {"read-write", test_read_write}, {"unmap", test_unmap}, {"async", test_async},
        {"aresult-flags", test_aresult_flags}, {"listio", test_listio}, {"stats", test_stats},
        {"bad-input", test_bad_input}, {"fork", test_fork}, {"fork-reaper", test_fork_reaper}, {"groups", test_groups},
        {"reset", test_reset}, {"compat", test_compat}, {"reaper", test_reaper},
        {"reset-async", test_reset_async}, {"async-retry", test_async_retry}, {"cmd-room", test_cmd_room},
        {"adapter-fail", test_adapter_fail}, {"sync-polls", test_sync_polls},
    };
    for (size_t i = 0; i < sizeof tests / sizeof tests[0]; i++)
        if (strcmp(argv[1], tests[i].name) == 0) {
            int rc = tests[i].run();
            if (rc == 0) say("PASS");
            return rc;
        }
    fprintf(stderr, "unknown test %s\n", argv[1]);
    return 2;
}
