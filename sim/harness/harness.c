/* nnforge verification harness for the C and the HLS C++ backends: compiled as C99
 * against nnforge_model.h, or as C++ with -DNNFORGE_HARNESS_HLS against nnforge_hls.h.
 * usage: harness IN.bin OUT.bin N
 * IN.bin holds N * NNFORGE_IN_SIZE little-endian int32 values; OUT.bin receives
 * N * NNFORGE_OUT_SIZE int32 values. Built with -DNNFORGE_TRACING it takes a fourth
 * argument, TRACE.bin, which receives every step's output as (int32 step, int64 value)
 * records, in the order the steps write them. */
#include <stdio.h>
#include <stdlib.h>
#ifdef NNFORGE_HARNESS_HLS
#include "nnforge_hls.h"
#define NNFORGE_ENTRY nnforge_top
#else
#include "nnforge_model.h"
#define NNFORGE_ENTRY nnforge_run
#endif

#ifdef NNFORGE_TRACING
static FILE *trace_file;

void nnforge_trace_value(int step, int64_t value)
{
    int32_t s = (int32_t)step;
    fwrite(&s, sizeof s, 1, trace_file);
    fwrite(&value, sizeof value, 1, trace_file);
}
#define NNFORGE_ARGS 5
#else
#define NNFORGE_ARGS 4
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
    if (argc != NNFORGE_ARGS) {
        fprintf(stderr, "usage: %s IN.bin OUT.bin N%s\n", argv[0], NNFORGE_ARGS == 5 ? " TRACE.bin" : "");
        return 2;
    }
#ifdef NNFORGE_TRACING
    trace_file = fopen(argv[4], "wb");
    if (!trace_file) {
        fprintf(stderr, "cannot open the trace file\n");
        return 2;
    }
#endif
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
#ifdef NNFORGE_TRACING
    if (fclose(trace_file) != 0) {
        return 2;
    }
#endif
    return fclose(fo) == 0 ? 0 : 2;
}
