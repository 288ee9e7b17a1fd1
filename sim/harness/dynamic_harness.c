/* nnforge verification harness for the dynamic-quantization C (nnforge_dynamic.c), C99.
 * usage: dynamic_harness IN.bin OUT.bin FRAC.bin N [FLOAT.bin]
 * IN.bin holds N * NNFORGE_DYN_IN_SIZE little-endian float32 values; OUT.bin receives
 * N * NNFORGE_DYN_OUT_SIZE int64 values (nnforge_run_dynamic) and FRAC.bin N int32 fracs.
 * With FLOAT.bin, it also receives N * NNFORGE_DYN_OUT_SIZE float32 values from
 * nnforge_run_dynamic_float. */
#include <stdio.h>
#include <stdlib.h>

#include "nnforge_dynamic.h"

int main(int argc, char **argv)
{
    static float in[NNFORGE_DYN_IN_SIZE];
    static int64_t out[NNFORGE_DYN_OUT_SIZE];
    static float out_f[NNFORGE_DYN_OUT_SIZE];
    FILE *fi, *fo, *ff, *fl = NULL;
    long n, s;
    int frac;
    int32_t frac32;
    if (argc != 5 && argc != 6) {
        fprintf(stderr, "usage: %s IN.bin OUT.bin FRAC.bin N [FLOAT.bin]\n", argv[0]);
        return 2;
    }
    n = atol(argv[4]);
    fi = fopen(argv[1], "rb");
    fo = fopen(argv[2], "wb");
    ff = fopen(argv[3], "wb");
    if (argc == 6) {
        fl = fopen(argv[5], "wb");
    }
    if (!fi || !fo || !ff || (argc == 6 && !fl)) {
        fprintf(stderr, "cannot open the input or output files\n");
        return 2;
    }
    for (s = 0; s < n; s++) {
        if (fread(in, sizeof(float), NNFORGE_DYN_IN_SIZE, fi) != NNFORGE_DYN_IN_SIZE) {
            fprintf(stderr, "short input at sample %ld\n", s);
            return 2;
        }
        nnforge_run_dynamic(in, out, &frac);
        frac32 = (int32_t)frac;
        if (fwrite(out, sizeof(int64_t), NNFORGE_DYN_OUT_SIZE, fo) != NNFORGE_DYN_OUT_SIZE
            || fwrite(&frac32, sizeof frac32, 1, ff) != 1) {
            fprintf(stderr, "cannot write the output\n");
            return 2;
        }
        if (fl) {
            nnforge_run_dynamic_float(in, out_f);
            if (fwrite(out_f, sizeof(float), NNFORGE_DYN_OUT_SIZE, fl) != NNFORGE_DYN_OUT_SIZE) {
                fprintf(stderr, "cannot write the float output\n");
                return 2;
            }
        }
    }
    fclose(fi);
    if (fl && fclose(fl) != 0) {
        return 2;
    }
    if (fclose(ff) != 0) {
        return 2;
    }
    return fclose(fo) == 0 ? 0 : 2;
}
