/* NeuZip weight decoders (blob formats: nnforge/passes/neuzip.py, module docstring).
 * Plain C99, pasted into generated C files: static functions only, prefix nnf_nz_,
 * needs <stdint.h> and <string.h>, no malloc. Define NNF_NZ_LOSSLESS and / or
 * NNF_NZ_LOSSY for the decoders wanted (neither: both). The blobs are trusted (made by
 * passes/neuzip.py): nothing is bounds-checked here; the Python decoders check.
 *
 * Lossless, memory: by default no table at all: the symbol of a state is found by
 * walking the blob's frequency table from its start (3 bytes an entry, read in place, so
 * the blob may sit in flash); the entries are sorted by decreasing frequency, so the
 * walk takes about 1-3 steps for trained weights. With NNF_NZ_SLOT_TABLE defined the
 * decoder instead builds a 2^12-entry slot -> entry table plus the cumulative
 * frequencies on the stack (4096 + 2 * 256 bytes) for a constant-time lookup.
 * Lossy needs no memory beyond the output. */
#if !defined(NNF_NZ_LOSSLESS) && !defined(NNF_NZ_LOSSY)
#define NNF_NZ_LOSSLESS
#define NNF_NZ_LOSSY
#endif

#ifdef NNF_NZ_LOSSLESS
#define NNF_NZ_PROB_BITS 12
#define NNF_NZ_RANS_L (1u << 23)

static uint32_t nnf_nz_u32(const uint8_t *p)
{
    return (uint32_t)p[0] | ((uint32_t)p[1] << 8) | ((uint32_t)p[2] << 16) | ((uint32_t)p[3] << 24);
}

/* n 16-bit float patterns with exp_bits exponent bits (1..8) from a lossless blob:
 * header (n, EXP, PROB_BITS, S, A, R), table of S (u8 symbol, u16 freq), rANS stream of
 * A bytes (exponents), raw stream of R bytes (sign and mantissa, 1 + MAN bits each). */
static void nnf_nz_decode_lossless(const uint8_t *blob, uint16_t *out, uint32_t n, int exp_bits)
{
    const int man = 15 - exp_bits, width = 16 - exp_bits;
    const uint32_t nsym = (uint32_t)blob[6] | ((uint32_t)blob[7] << 8);
    const uint32_t alen = nnf_nz_u32(blob + 8);
    const uint8_t *table = blob + 16;
    const uint8_t *ans = table + 3u * nsym;
    const uint8_t *raw = ans + alen;
    const uint32_t wmask = (1u << width) - 1u, mmask = (1u << man) - 1u;
    uint32_t x, i, slot, c, f, sym, r, bits = 0;
    const uint8_t *e;
    int nbits = 0;
#ifdef NNF_NZ_SLOT_TABLE
    uint8_t slot_entry[1u << NNF_NZ_PROB_BITS]; /* 4 KB of stack */
    uint16_t cum[256];                          /* at most 256 symbols (EXP <= 8) */
    uint32_t j, s;
    for (j = 0, c = 0; j < nsym; j++) {
        f = (uint32_t)table[3u * j + 1u] | ((uint32_t)table[3u * j + 2u] << 8);
        cum[j] = (uint16_t)c;
        for (s = 0; s < f; s++) {
            slot_entry[c + s] = (uint8_t)j;
        }
        c += f;
    }
#endif
    if (n == 0) {
        return;
    }
    x = nnf_nz_u32(ans);
    ans += 4;
    for (i = 0; i < n; i++) {
        slot = x & ((1u << NNF_NZ_PROB_BITS) - 1u);
#ifdef NNF_NZ_SLOT_TABLE
        e = table + 3u * slot_entry[slot];
        c = cum[slot_entry[slot]];
        f = (uint32_t)e[1] | ((uint32_t)e[2] << 8);
#else
        e = table;
        c = 0;
        for (;;) { /* the entry with c <= slot < c + f (the frequencies sum to 2^12) */
            f = (uint32_t)e[1] | ((uint32_t)e[2] << 8);
            if (slot - c < f) {
                break;
            }
            c += f;
            e += 3;
        }
#endif
        sym = e[0];
        x = f * (x >> NNF_NZ_PROB_BITS) + (slot - c);
        while (x < NNF_NZ_RANS_L) {
            x = (x << 8) | *ans++;
        }
        while (nbits < width) { /* sign and mantissa: next 1 + MAN raw bits, LSB first */
            bits |= (uint32_t)*raw++ << nbits;
            nbits += 8;
        }
        r = bits & wmask;
        bits >>= width;
        nbits -= width;
        out[i] = (uint16_t)(((r >> man) << 15) | (sym << man) | (r & mmask));
    }
}
#endif

#ifdef NNF_NZ_LOSSY
/* The float32 bit pattern of m * 2^e, built exactly (no FPU, so no flush-to-zero or
 * rounding mode can interfere): 0 < m < 2^16 and the value must be representable,
 * which lossy blobs guarantee (m < 2^11, e = E - K >= -138; subnormal below 2^-126). */
static uint32_t nnf_nz_f32_bits(uint32_t m, int e)
{
    uint32_t t = m;
    int p = 0; /* floor(log2 m) */
    if (t >= 1u << 8) {
        t >>= 8;
        p += 8;
    }
    if (t >= 1u << 4) {
        t >>= 4;
        p += 4;
    }
    if (t >= 1u << 2) {
        t >>= 2;
        p += 2;
    }
    if (t >= 1u << 1) {
        p += 1;
    }
    if (p + e >= -126) { /* normal: biased exponent p + e + 127, m's bits below the top */
        return ((uint32_t)(p + e + 127) << 23) | ((m << (23 - p)) & 0x7FFFFFu);
    }
    return m << (e + 149); /* subnormal: m * 2^e = (m << (e + 149)) * 2^-149 */
}

/* n float weights from a lossy blob (K = k mantissa bits, blocks of `block`): per block
 * one signed byte E, then its codes (sign << (k + 1)) | m of k + 2 bits, LSB first,
 * from a byte boundary; weight = (-1)^sign * m * 2^(E - k). */
static void nnf_nz_decode_lossy(const uint8_t *blob, float *out, uint32_t n, int k, int block)
{
    const uint8_t *p = blob;
    const int width = k + 2;
    const uint32_t cmask = (1u << width) - 1u, mmask = (1u << (k + 1)) - 1u;
    uint32_t done = 0, cnt, i, code, m, u, bits;
    int e, nbits;
    while (done < n) {
        cnt = n - done < (uint32_t)block ? n - done : (uint32_t)block;
        e = (p[0] >= 128u ? (int)p[0] - 256 : (int)p[0]) - k; /* E - K: weight = m * 2^e */
        p++;
        bits = 0;
        nbits = 0;
        for (i = 0; i < cnt; i++) {
            while (nbits < width) {
                bits |= (uint32_t)*p++ << nbits;
                nbits += 8;
            }
            code = bits & cmask;
            bits >>= width;
            nbits -= width;
            m = code & mmask;
            u = (m ? nnf_nz_f32_bits(m, e) : 0u) | ((code >> (k + 1)) << 31);
            memcpy(&out[done + i], &u, sizeof u);
        }
        done += cnt;
    }
}
#endif
