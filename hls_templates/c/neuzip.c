/* NeuZip weight decoding (the blob formats: nnforge/passes/neuzip.py). No memory beyond
 * the output: the symbol of a state is found by walking the (few) exponent entries.
 * Define NNF_NZ_LOSSLESS and / or NNF_NZ_LOSSY for the decoders wanted. */
#ifdef NNF_NZ_LOSSLESS
static uint32_t nnf_nz_u32(const uint8_t *p)
{
    return (uint32_t)p[0] | ((uint32_t)p[1] << 8) | ((uint32_t)p[2] << 16) | ((uint32_t)p[3] << 24);
}
#endif

/* bits [pos, pos + bits) of a little-endian bit stream (bits <= 17; the blob is padded) */
static uint32_t nnf_nz_bits(const uint8_t *raw, uint32_t pos, int bits)
{
    const uint8_t *p = raw + (pos >> 3);
    uint32_t w = (uint32_t)p[0] | ((uint32_t)p[1] << 8) | ((uint32_t)p[2] << 16);
    return (w >> (pos & 7u)) & ((1u << bits) - 1u);
}

#ifdef NNF_NZ_LOSSLESS
/* lossless: n 16-bit float patterns with exp_bits exponent bits (rANS-coded exponents) */
static void nnf_nz_decode_lossless(const uint8_t *blob, uint16_t *out, uint32_t n, int exp_bits)
{
    int man = 15 - exp_bits;
    uint32_t k = (uint32_t)blob[4] | ((uint32_t)blob[5] << 8);
    const uint8_t *table = blob + 6;
    const uint8_t *stream = table + 3u * k + 4u;
    uint32_t slen = nnf_nz_u32(table + 3u * k);
    const uint8_t *raw = stream + slen;
    uint32_t x, pos = 4, i, j, slot, c, f = 1, v;
    uint32_t sym = 0;
    if (n == 0) {
        return;
    }
    x = ((uint32_t)stream[0] << 24) | ((uint32_t)stream[1] << 16) | ((uint32_t)stream[2] << 8) | stream[3];
    for (i = 0; i < n; i++) {
        slot = x & 0xFFFu;
        c = 0;
        for (j = 0; j < k; j++) {
            f = (uint32_t)table[3u * j + 1u] | ((uint32_t)table[3u * j + 2u] << 8);
            if (slot < c + f) {
                sym = table[3u * j];
                break;
            }
            c += f;
        }
        x = f * (x >> 12) + slot - c;
        while (x < (1u << 23) && pos < slen) {
            x = (x << 8) | stream[pos++];
        }
        v = nnf_nz_bits(raw, i * (uint32_t)(1 + man), 1 + man);
        out[i] = (uint16_t)(((v >> man) << 15) | (sym << man) | (v & ((1u << man) - 1u)));
    }
}

#endif

#ifdef NNF_NZ_LOSSY
/* lossy: n float weights, k mantissa bits, one exponent per block of `block` */
static void nnf_nz_decode_lossy(const uint8_t *blob, float *out, uint32_t n, int k, int block)
{
    uint32_t b, i, cnt, code, m, u;
    const uint8_t *p = blob;
    int e;
    float scale, lo;
    for (b = 0; b * (uint32_t)block < n; b++) {
        cnt = n - b * (uint32_t)block < (uint32_t)block ? n - b * (uint32_t)block : (uint32_t)block;
        e = (int)p[0] - 160 - k;  /* the value is m * 2^e */
        /* 2^e as the product of two powers of two that are normal floats: one rounding */
        lo = 1.0f;
        if (e < -126) {
            u = (uint32_t)(e + 64 + 127) << 23;
            memcpy(&scale, &u, sizeof scale);
            lo = 5.42101086242752217e-20f; /* 2^-64 */
        } else {
            u = (uint32_t)(e + 127) << 23;
            memcpy(&scale, &u, sizeof scale);
        }
        for (i = 0; i < cnt; i++) {
            code = nnf_nz_bits(p + 1, i * (uint32_t)(k + 2), k + 2);
            m = code & ((1u << (k + 1)) - 1u);
            if (p[0] == 0 || m == 0) {
                out[b * (uint32_t)block + i] = 0.0f;
                continue;
            }
            out[b * (uint32_t)block + i] = ((code >> (k + 1)) ? -((float)m * scale) : (float)m * scale) * lo;
        }
        p += 1 + (cnt * (uint32_t)(k + 2) + 7u) / 8u;
    }
}
#endif
