/*
 * A small libcflsh_block program: open a virtual LUN, size it, write, read back, an asynchronous
 * read, close. Build (from the package root, after `swift build`):
 *
 *   cc Examples/capiblock/example.c -I Sources/CCapiBlock/include -L .build/debug -lcflsh_block \
 *      -Wl,-rpath,$PWD/.build/debug -o capiblock-example
 *
 * Run against a mock: SUPERPIPE_MOCK=DIR ./capiblock-example /dev/sda   (Docs/capiblock.md)
 */
#include <capiblock.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

int main(int argc, char **argv) {
    const char *dev = argc > 1 ? argv[1] : "/dev/sda";
    if (cblk_init(NULL, 0) != 0) return 1;
    chunk_id_t id = cblk_open(dev, 64, O_RDWR, 0, CBLK_OPN_VIRT_LUN);
    if (id == NULL_CHUNK_ID) { perror("cblk_open"); return 1; }
    if (cblk_set_size(id, 1024, 0) != 0) { perror("cblk_set_size"); return 1; }

    char *out = aligned_alloc(4096, 8 * 4096), *in = aligned_alloc(4096, 8 * 4096);
    for (int i = 0; i < 8 * 4096; i++) out[i] = (char)(i * 7);
    if (cblk_write(id, out, 16, 8, 0) != 8) { perror("cblk_write"); return 1; }
    if (cblk_read(id, in, 16, 8, 0) != 8) { perror("cblk_read"); return 1; }
    if (memcmp(in, out, 8 * 4096) != 0) { fprintf(stderr, "data mismatch\n"); return 1; }

    int tag;
    uint64_t status;
    memset(in, 0, 8 * 4096);
    if (cblk_aread(id, in, 16, 8, &tag, NULL, 0) != 0) { perror("cblk_aread"); return 1; }
    if (cblk_aresult(id, &tag, &status, CBLK_ARESULT_BLOCKING) != 8) { perror("cblk_aresult"); return 1; }
    if (memcmp(in, out, 8 * 4096) != 0) { fprintf(stderr, "async data mismatch\n"); return 1; }

    if (cblk_close(id, 0) != 0) { perror("cblk_close"); return 1; }
    cblk_term(NULL, 0);
    printf("ok: wrote and read back 8 blocks (sync and async) on %s\n", dev);
    free(out);
    free(in);
    return 0;
}
