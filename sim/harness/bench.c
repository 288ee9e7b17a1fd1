/* nnforge timing harness for the C backend: usage: bench IN.bin N REPEATS
 * IN.bin holds N * NNFORGE_IN_SIZE little-endian int32 values. Runs nnforge_run on every
 * sample, REPEATS times over the whole set, and prints the fastest pass's nanoseconds
 * per inference and a checksum of the outputs (so that no pass can be left out). */
#define _POSIX_C_SOURCE 199309L
#include <stdio.h>
#include <stdlib.h>
#include <time.h>
#include "nnforge_model.h"

static double now_ns(void)
{
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (double)t.tv_sec * 1e9 + (double)t.tv_nsec;
}

int main(int argc, char **argv)
{
    static int32_t raw[NNFORGE_IN_SIZE];
    static nnforge_out_t out[NNFORGE_OUT_SIZE];
    nnforge_in_t *in;
    FILE *fi;
    long n, r, reps, s;
    int i;
    double best = -1.0;
    long long sum = 0;
    if (argc != 4) {
        fprintf(stderr, "usage: %s IN.bin N REPEATS\n", argv[0]);
        return 2;
    }
    n = atol(argv[2]);
    reps = atol(argv[3]);
    fi = fopen(argv[1], "rb");
    in = malloc(sizeof(nnforge_in_t) * NNFORGE_IN_SIZE * (size_t)(n > 0 ? n : 1));
    if (!fi || !in || n < 1 || reps < 1) {
        fprintf(stderr, "bad arguments or cannot open the input\n");
        return 2;
    }
    for (s = 0; s < n; s++) {
        if (fread(raw, sizeof(int32_t), NNFORGE_IN_SIZE, fi) != NNFORGE_IN_SIZE) {
            fprintf(stderr, "short input at sample %ld\n", s);
            return 2;
        }
        for (i = 0; i < NNFORGE_IN_SIZE; i++) {
            in[s * NNFORGE_IN_SIZE + i] = (nnforge_in_t)raw[i];
        }
    }
    fclose(fi);
    for (r = 0; r < reps; r++) {
        double t0 = now_ns(), dt;
        for (s = 0; s < n; s++) {
            nnforge_run(in + s * NNFORGE_IN_SIZE, out);
            for (i = 0; i < NNFORGE_OUT_SIZE; i++) {
                sum += (long long)out[i];
            }
        }
        dt = (now_ns() - t0) / (double)n;
        if (best < 0 || dt < best) {
            best = dt;
        }
    }
    printf("%.3f %lld\n", best, sum);
    free(in);
    return 0;
}
