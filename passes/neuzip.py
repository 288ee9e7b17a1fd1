"""NeuZip-style weight storage for 16-bit float weights (after "NeuZip: Memory-Efficient
Training and Inference with Dynamic Compression of Neural Networks").

**Lossless.** The exponent field of trained weights takes few values, most of them
rarely, so it is entropy-coded with a range asymmetric numeral system (rANS); the sign
and mantissa bits are close to random and stay raw. Blob layout (little-endian)::

    u32 n                     weights
    u16 k                     distinct exponents, then k entries (u8 exponent, u16 frequency)
                              with frequencies summing to 2^PROB_BITS (each >= 1)
    u32 s                     bytes of the rANS stream, then the stream
    raw                       1 + MAN bits per weight (sign, then mantissa), bit i of the
                              stream at byte i // 8, bit i % 8; two zero bytes of padding

rANS (32-bit state ``x`` in ``[2^23, 2^31)``, bytes): encoding a symbol of frequency
``f`` and cumulative frequency ``c`` turns ``x`` into ``(x // f) * 2^PROB_BITS + x % f + c``
after shifting out low bytes while ``x >= f * 2^(31 - PROB_BITS)``. The weights are
encoded last to first and the byte stream reversed, so decoding runs first to last: the
stream starts with the final state (big-endian); for each weight ``slot = x mod
2^PROB_BITS`` names the symbol ``s`` with ``c_s <= slot < c_s + f_s``, then
``x = f_s * (x >> PROB_BITS) + slot - c_s`` and bytes are shifted in while ``x < 2^23``.

**Lossy (``lossy:K``).** The weights, flattened row-major, in blocks of ``block``: a block
shares the scale exponent ``E`` of its largest magnitude (``2^E <= max|w| < 2^(E+1)``);
each weight is a sign and ``m = round_half_even(|w| / 2^(E-K))``, at most
``2^(K+1) - 1``: its value is ``m * 2^(E-K)`` (rounded once to float32). Blob: per block
one byte ``E + 160`` (0: an all-zero block), then the block's codes of ``K + 2`` bits
(sign, then ``m``), bit-packed as above, each block starting on a byte.
"""

from __future__ import annotations

import struct

import numpy as np

PROB_BITS = 12
_L = 1 << 23
_E_OFFSET = 160  # lossy block exponents E in [-159, 95]


def _normalize(counts: dict[int, int], n: int) -> dict[int, int]:
    total = 1 << PROB_BITS
    freq = {s: max(1, c * total // n) for s, c in counts.items()}
    diff = total - sum(freq.values())
    order = sorted(freq, key=lambda s: -freq[s])
    i = 0
    while diff:  # give or take one at a time, largest first (never below 1)
        s = order[i % len(order)]
        if diff > 0:
            freq[s] += 1
            diff -= 1
        elif freq[s] > 1:
            freq[s] -= 1
            diff += 1
        i += 1
    return freq


def _pack_bits(values: np.ndarray, bits: int) -> bytes:
    v = np.asarray(values, dtype=np.uint64)
    if not v.size:
        return b"\0\0"
    shifts = np.arange(bits, dtype=np.uint64)
    stream = ((v[:, None] >> shifts) & np.uint64(1)).astype(np.uint8).reshape(-1)
    return np.packbits(stream, bitorder="little").tobytes() + b"\0\0"


def _unpack_bits(data: bytes, n: int, bits: int) -> np.ndarray:
    stream = np.unpackbits(np.frombuffer(data, dtype=np.uint8), bitorder="little")[:n * bits]
    weights = (np.uint64(1) << np.arange(bits, dtype=np.uint64))
    return (stream.reshape(n, bits).astype(np.uint64) * weights).sum(axis=1).astype(np.int64)


def encode_lossless(patterns: np.ndarray, exp_bits: int) -> bytes:
    """The blob of 16-bit float ``patterns`` with ``exp_bits`` exponent bits (module doc)."""
    if exp_bits not in (5, 8):
        raise ValueError(f"exponent bits must be 5 (fp16) or 8 (bf16), got {exp_bits}")
    p = np.asarray(patterns).astype(np.int64).reshape(-1)
    if p.size and (p.min() < 0 or p.max() > 0xFFFF):
        raise ValueError("patterns must be 16-bit")
    man = 15 - exp_bits
    exps = (p >> man) & ((1 << exp_bits) - 1)
    raw = ((p >> 15) << man) | (p & ((1 << man) - 1))
    n = len(p)
    syms, counts = np.unique(exps, return_counts=True)
    freq = _normalize(dict(zip(syms.tolist(), counts.tolist())), n) if n else {}
    cum, c = {}, 0
    for s in sorted(freq):
        cum[s] = c
        c += freq[s]
    out = bytearray()
    x = _L
    for s in reversed(exps.tolist()):
        f = freq[s]
        x_max = ((_L >> PROB_BITS) << 8) * f
        while x >= x_max:
            out.append(x & 0xFF)
            x >>= 8
        x = (x // f << PROB_BITS) + x % f + cum[s]
    out += x.to_bytes(4, "little")
    stream = bytes(reversed(out))
    head = struct.pack("<IH", n, len(freq)) + b"".join(struct.pack("<BH", s, freq[s]) for s in sorted(freq))
    return head + struct.pack("<I", len(stream)) + stream + _pack_bits(raw, 1 + man)


def decode_lossless(blob: bytes, n: int, exp_bits: int) -> np.ndarray:
    """The patterns of a lossless blob (uint16), as the C decoder computes them."""
    man = 15 - exp_bits
    n_blob, k = struct.unpack_from("<IH", blob, 0)
    if n_blob != n:
        raise ValueError(f"the blob holds {n_blob} weights, not {n}")
    at = 6
    table = []
    c = 0
    for _ in range(k):
        s, f = struct.unpack_from("<BH", blob, at)
        table.append((s, f, c))
        c += f
        at += 3
    (slen,) = struct.unpack_from("<I", blob, at)
    stream = blob[at + 4:at + 4 + slen]
    raw = _unpack_bits(blob[at + 4 + slen:], n, 1 + man)
    exps = np.zeros(n, dtype=np.int64)
    if n:
        x = int.from_bytes(stream[:4], "big")
        pos = 4
        mask = (1 << PROB_BITS) - 1
        for i in range(n):
            slot = x & mask
            s, f, c0 = next(t for t in table if t[2] <= slot < t[2] + t[1])
            exps[i] = s
            x = f * (x >> PROB_BITS) + slot - c0
            while x < _L and pos < len(stream):
                x = (x << 8) | stream[pos]
                pos += 1
    out = ((raw >> man) << 15) | (exps << man) | (raw & ((1 << man) - 1))
    return out.astype(np.uint16)


def ratio(patterns: np.ndarray, exp_bits: int) -> float:
    """Plain bytes over blob bytes."""
    p = np.asarray(patterns).reshape(-1)
    return 2 * len(p) / len(encode_lossless(p, exp_bits))


def _check_k(k: int, block: int) -> None:
    if not 1 <= k <= 10:
        raise ValueError(f"lossy NeuZip keeps 1..10 mantissa bits, got {k}")
    if block < 1:
        raise ValueError(f"the block size must be positive, got {block}")


def _blocks(w: np.ndarray, k: int, block: int):
    """Per weight: its block's exponent E (or None for a zero block), sign and code m."""
    w = np.asarray(w, dtype=np.float64).reshape(-1)
    if not np.all(np.isfinite(w)):
        raise ValueError("weights must be finite")
    nb = -(-len(w) // block)
    pad = np.zeros(nb * block)
    pad[:len(w)] = np.abs(w)
    top = pad.reshape(nb, block).max(axis=1)
    e = np.frexp(top)[1] - 1  # 2^E <= top < 2^(E+1)
    if np.any((top > 0) & ((e + _E_OFFSET < 1) | (e + _E_OFFSET > 255))):
        raise ValueError("a weight block's scale is outside 2^-159 .. 2^95")
    scale = np.ldexp(1.0, np.repeat(e - k, block)[:len(w)])
    m = np.minimum(np.rint(np.abs(w) / scale), (1 << (k + 1)) - 1).astype(np.int64)
    return top, e, np.signbit(w) & (m > 0), m, scale


def lossy_values(w: np.ndarray, k: int, block: int = 32) -> np.ndarray:
    """The float32 weights lossy storage with ``k`` mantissa bits keeps (module doc)."""
    _check_k(k, block)
    _, _, neg, m, scale = _blocks(w, k, block)
    v = (m * scale).astype(np.float32)
    return np.where(neg, -v, v).astype(np.float32).reshape(np.shape(w))


def encode_lossy(w: np.ndarray, k: int, block: int = 32) -> bytes:
    _check_k(k, block)
    top, e, neg, m, _ = _blocks(w, k, block)
    codes = (neg.astype(np.int64) << (k + 1)) | m
    out = bytearray()
    for b in range(len(top)):
        out.append(0 if top[b] == 0 else int(e[b]) + _E_OFFSET)
        out += _pack_bits(codes[b * block:(b + 1) * block], k + 2)[:-2]
    return bytes(out) + b"\0\0"


def decode_lossy(blob: bytes, n: int, k: int, block: int = 32) -> np.ndarray:
    _check_k(k, block)
    vals = np.zeros(n, dtype=np.float32)
    at = 0
    for b in range(-(-n // block)):
        cnt = min(block, n - b * block)
        eb = blob[at]
        nbytes = -(-cnt * (k + 2) // 8)
        codes = _unpack_bits(blob[at + 1:at + 1 + nbytes], cnt, k + 2)
        at += 1 + nbytes
        if eb:
            m = codes & ((1 << (k + 1)) - 1)
            v = (m * np.ldexp(1.0, eb - _E_OFFSET - k)).astype(np.float32)
            vals[b * block:b * block + cnt] = np.where(codes >> (k + 1), -v, v)
    return vals
