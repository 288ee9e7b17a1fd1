/* nnforge verification harness for the C and the HLS C++ backends: compiled as C99
 * against nnforge_model.h, or as C++ with -DNNFORGE_HARNESS_HLS against nnforge_hls.h.
 * usage: harness IN.bin OUT.bin N
 * IN.bin holds N * NNFORGE_IN_SIZE little-endian int32 values; OUT.bin receives
 * N * NNFORGE_OUT_SIZE int32 values. */
#include <stdio.h>
#include <stdlib.h>
#ifdef NNFORGE_HARNESS_HLS
#include "nnforge_hls.h"
#define NNFORGE_ENTRY nnforge_top
#else
#include "nnforge_model.h"
#define NNFORGE_ENTRY nnforge_run
#endif

int main(int argc, char **argv)
{
    static nnforge_in_t in[NNFORGE_IN_SIZE];
    static nnforge_out_t out[NNFORGE_OUT_SIZE];
    static int32_t raw_in[NNFORGE_IN_SIZE];
    static int32_t raw_out[NNFORGE_OUT_SIZE];
    FILE *fi, *fo;
    long n, s;
    int i;
    if (argc != 4) {
        fprintf(stderr, "usage: %s IN.bin OUT.bin N\n", argv[0]);
        return 2;
    }
    n = atol(argv[3]);
    fi = fopen(argv[1], "rb");
    fo = fopen(argv[2], "wb");
    if (!fi || !fo) {
        fprintf(stderr, "cannot open the input or output file\n");
        return 2;
    }
    for (s = 0; s < n; s++) {
        if (fread(raw_in, sizeof(int32_t), NNFORGE_IN_SIZE, fi) != NNFORGE_IN_SIZE) {
            fprintf(stderr, "short input at sample %ld\n", s);
            return 2;
        }
        for (i = 0; i < NNFORGE_IN_SIZE; i++) {
            in[i] = (nnforge_in_t)raw_in[i];
        }
        NNFORGE_ENTRY(in, out);
        for (i = 0; i < NNFORGE_OUT_SIZE; i++) {
            raw_out[i] = (int32_t)out[i];
        }
        if (fwrite(raw_out, sizeof(int32_t), NNFORGE_OUT_SIZE, fo) != NNFORGE_OUT_SIZE) {
            fprintf(stderr, "cannot write the output\n");
            return 2;
        }
    }
    fclose(fi);
    return fclose(fo) == 0 ? 0 : 2;
}
