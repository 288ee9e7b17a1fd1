// nnforge verification harness for the HLS C++ backend (plain g++ C simulation).
// usage: harness IN.bin OUT.bin N   (little-endian int32, see c_main.c)
#include <cstdio>
#include <cstdlib>
#include "nnforge_hls.h"

int main(int argc, char **argv)
{
    static nnforge_in_t in[NNFORGE_IN_SIZE];
    static nnforge_out_t out[NNFORGE_OUT_SIZE];
    static int32_t raw_in[NNFORGE_IN_SIZE];
    static int32_t raw_out[NNFORGE_OUT_SIZE];
    if (argc != 4) {
        std::fprintf(stderr, "usage: %s IN.bin OUT.bin N\n", argv[0]);
        return 2;
    }
    long n = std::atol(argv[3]);
    std::FILE *fi = std::fopen(argv[1], "rb");
    std::FILE *fo = std::fopen(argv[2], "wb");
    if (!fi || !fo) {
        std::fprintf(stderr, "cannot open the input or output file\n");
        return 2;
    }
    for (long s = 0; s < n; s++) {
        if (std::fread(raw_in, sizeof(int32_t), NNFORGE_IN_SIZE, fi) != NNFORGE_IN_SIZE) {
            std::fprintf(stderr, "short input at sample %ld\n", s);
            return 2;
        }
        for (int i = 0; i < NNFORGE_IN_SIZE; i++) {
            in[i] = (nnforge_in_t)raw_in[i];
        }
        nnforge_top(in, out);
        for (int i = 0; i < NNFORGE_OUT_SIZE; i++) {
            raw_out[i] = (int32_t)out[i];
        }
        if (std::fwrite(raw_out, sizeof(int32_t), NNFORGE_OUT_SIZE, fo) != NNFORGE_OUT_SIZE) {
            std::fprintf(stderr, "cannot write the output\n");
            return 2;
        }
    }
    std::fclose(fi);
    return std::fclose(fo) == 0 ? 0 : 2;
}
