"""NeuZip-style storage of 16-bit float weights (the idea of "NeuZip: Memory-Efficient
Training and Inference with Dynamic Compression of Neural Networks": the exponent bits of
trained weights have low entropy, so they are entropy-coded; sign and mantissa stay raw).

A weight is a 16-bit pattern ``p`` of a float format with ``EXP`` exponent bits and
``MAN = 15 - EXP`` mantissa bits (fp16: 5 / 10, bf16: 8 / 7; any ``EXP`` in 1..8 works):
sign ``p >> 15``, exponent field ``(p >> MAN) & (2^EXP - 1)``, mantissa
``p & (2^MAN - 1)``. The C decoders are ``hls_templates/c/neuzip.c``.

Lossless storage
----------------
The exponent fields are coded with range ANS (rANS) under one static frequency table per
blob; the sign and mantissa bits are stored raw. Blob layout, every integer little-endian::

    offset  size        field
    0       u32         n          number of weights
    4       u8          EXP        exponent bits (1..8)
    5       u8          PROB_BITS  frequency precision, always 12 (M = 2^12 = 4096)
    6       u16         S          table entries (0 if n == 0, else 1 .. 2^EXP)
    8       u32         A          bytes of the rANS stream (0 if n == 0, else >= 4)
    12      u32         R          bytes of the raw stream = ceil(n * (1 + MAN) / 8)
    16      3 * S       table      S entries (u8 symbol, u16 frequency f >= 1)
    16+3S   A           rANS stream
    16+3S+A R           raw stream

Table: each symbol is an exponent field value that occurs in the weights (once each);
the frequencies sum to M. The *order of the entries* defines the cumulative frequencies
``c_j = f_0 + ... + f_(j-1)``; the encoder writes them by decreasing frequency (ties:
ascending symbol), so a decoder that walks the table from the start finds the common
exponents after one or two steps. Frequencies are the counts scaled to M and rounded
(at least 1), then adjusted one unit at a time where that costs the fewest bits.

rANS (state ``x`` 32 bits, ``L = 2^23``, byte-wise renormalization, so ``x`` stays in
``[L, 2^31)``): to encode a symbol ``(f, c)``, first emit the low byte of ``x`` and shift
``x`` right by 8 while ``x >= 2^19 * f`` (= ``(L / M) * 256 * f``), then
``x = (x // f) * M + (x mod f) + c``. The encoder starts at ``x = L``, encodes the weights
last to first and finally emits ``x`` (4 bytes); the stream is the emitted bytes in
reverse order. So the stream begins with the final state as a little-endian u32 and a
decoder runs first to last:

    x = u32 at stream[0..4]; pos = 4
    for each weight: slot = x mod M; find the entry j with c_j <= slot < c_j + f_j;
                     exponent = symbol_j; x = f_j * (x >> 12) + slot - c_j;
                     while x < L: x = (x << 8) | stream[pos++]

Decoding is the exact inverse of encoding (``x >> 12 = x // f`` of the encoder,
``slot - c = x mod f``), and after the last weight ``x == L`` and every stream byte is
consumed (:func:`decode_lossless` checks both). With one symbol (``f = M``) the state
never changes and the stream is 4 bytes.

Raw stream: weight ``i`` contributes ``r_i = (sign << MAN) | mantissa`` (``1 + MAN``
bits) at stream bits ``[i * (1 + MAN), (i + 1) * (1 + MAN))``, least significant bit
first; stream bit ``b`` is bit ``b mod 8`` of byte ``b // 8``; the unused high bits of the
last byte are 0. The pattern is ``((r >> MAN) << 15) | (exponent << MAN) | (r & (2^MAN - 1))``.

Lossy storage (``lossy:K``, K = 1..10 mantissa bits kept)
--------------------------------------------------------
The weights (float32, flattened row-major) go in blocks of ``block`` (the last block may
be shorter). A block with largest magnitude ``t > 0`` has the scale exponent
``E = floor(log2 t)`` (``2^E <= t < 2^(E+1)``, computed exactly with ``frexp``); an
all-zero block has ``E = 0`` and only zero codes. Each weight ``w`` becomes a sign ``s``
and a magnitude ``m = min(round_half_even(|w| / 2^(E-K)), 2^(K+1) - 1)`` (``K + 1``
bits: ``|w| / 2^(E-K) < 2^(K+1)``, and only values that round up to ``2^(K+1)`` are
clamped); ``s = 1`` only for a negative ``w`` with ``m > 0`` (zero is +0). The stored
value is ``(-1)^s * m * 2^(E-K)``, exact in float32 (``m`` has at most 11 significant
bits, and ``E - K >= -138 > -149``), so ``|w - value| <= 2^(E-K-1)`` for every weight
that was not clamped.

Blob, for each block in order (no header; ``n``, ``K`` and ``block`` are given)::

    i8      E       valid range -128 .. 127 (0 for an all-zero block)
    ceil(cnt * (K + 2) / 8) bytes
            the block's cnt codes ``(s << (K + 1)) | m`` of K + 2 bits each, bit-packed
            as the raw stream above, starting on a byte boundary (unused bits 0)

All of float32 except tiny subnormals fits: a block whose largest magnitude is below
2^-128 (E in -149 .. -129) cannot be stored, and :func:`lossy_values` and
:func:`encode_lossy` raise :class:`ValueError` for it, as for NaN and infinities.
"""

from __future__ import annotations

import heapq
import math
import struct
from numbers import Integral

import numpy as np

PROB_BITS = 12  # rANS frequency precision: frequencies sum to 2^PROB_BITS
_M = 1 << PROB_BITS
_L = 1 << 23  # rANS lower state bound; states live in [2^23, 2^31)
_HEADER = struct.Struct("<IBBHII")  # n, EXP, PROB_BITS, S, A, R (16 bytes)
E_MIN, E_MAX = -128, 127  # lossy block exponents (one signed byte)


# ---------------------------------------------------------------------------- helpers

def _check_int(name: str, v, lo: int, hi: int | None = None) -> int:
    if isinstance(v, bool) or not isinstance(v, Integral):
        raise ValueError(f"{name} must be an integer, got {v!r}")
    v = int(v)
    if v < lo or (hi is not None and v > hi):
        raise ValueError(f"{name} must be in {lo}..{hi if hi is not None else 'inf'}, got {v}")
    return v


def _pack_bits(values: np.ndarray, width: int) -> bytes:
    """``values`` (each < 2^width) as a little-endian bit stream, last byte zero-padded."""
    v = np.asarray(values, dtype=np.uint32).reshape(-1)
    bits = ((v[:, None] >> np.arange(width, dtype=np.uint32)) & np.uint32(1)).astype(np.uint8)
    return np.packbits(bits.reshape(-1), bitorder="little").tobytes()


def _unpack_bits(data: bytes, count: int, width: int) -> np.ndarray:
    """The first ``count`` values of ``width`` bits of a :func:`_pack_bits` stream (uint32)."""
    bits = np.unpackbits(np.frombuffer(data, dtype=np.uint8), count=count * width, bitorder="little")
    return (bits.reshape(count, width).astype(np.uint32) << np.arange(width, dtype=np.uint32)).sum(
        axis=1, dtype=np.uint32)


def _packed_bytes(count: int, width: int) -> int:
    return (count * width + 7) // 8


def _normalize(counts: dict[int, int]) -> list[tuple[int, int]]:
    """Frequencies summing to M for the symbols of ``counts`` (every count > 0): the
    counts scaled to M, rounded, at least 1, then moved one unit at a time where the
    coded size (sum of count * log2(M / f)) grows least. Table order: decreasing
    frequency, ties ascending symbol."""
    total = sum(counts.values())
    freq = {s: max(1, (2 * c * _M + total) // (2 * total)) for s, c in counts.items()}
    diff = _M - sum(freq.values())
    if diff > 0:  # give units where they save the most bits
        heap = [(-c * math.log2((freq[s] + 1) / freq[s]), s) for s, c in counts.items()]
        heapq.heapify(heap)
        for _ in range(diff):
            _, s = heapq.heappop(heap)
            freq[s] += 1
            heapq.heappush(heap, (-counts[s] * math.log2((freq[s] + 1) / freq[s]), s))
    elif diff < 0:  # take units where they cost the fewest bits (never below 1; S <= 256 < M)
        heap = [(c * math.log2(freq[s] / (freq[s] - 1)), s) for s, c in counts.items() if freq[s] > 1]
        heapq.heapify(heap)
        for _ in range(-diff):
            _, s = heapq.heappop(heap)
            freq[s] -= 1
            if freq[s] > 1:
                heapq.heappush(heap, (counts[s] * math.log2(freq[s] / (freq[s] - 1)), s))
    assert sum(freq.values()) == _M and min(freq.values()) >= 1
    return sorted(freq.items(), key=lambda sf: (-sf[1], sf[0]))


# ---------------------------------------------------------------------------- lossless

def _patterns(patterns) -> np.ndarray:
    p = np.asarray(patterns)
    if p.dtype == np.bool_ or not np.issubdtype(p.dtype, np.integer):
        raise ValueError(f"patterns must be an integer array of 16-bit float bit patterns, got dtype {p.dtype}")
    p = p.reshape(-1)
    if p.size and (int(p.min()) < 0 or int(p.max()) > 0xFFFF):
        raise ValueError("patterns must be in 0..65535 (16-bit float bit patterns)")
    if p.size >= 1 << 32:
        raise ValueError("at most 2^32 - 1 weights per blob")
    return p.astype(np.uint32)


def encode_lossless(patterns: np.ndarray, exp_bits: int) -> bytes:
    """The lossless blob (module doc) of 16-bit float ``patterns`` (any shape, read
    row-major; integer dtype, values 0..65535) with ``exp_bits`` exponent bits (fp16: 5,
    bf16: 8; 1..8 accepted). Every bit pattern is allowed (Inf / NaN are just bits)."""
    exp_bits = _check_int("exp_bits", exp_bits, 1, 8)
    p = _patterns(patterns)
    n, man = len(p), 15 - exp_bits
    exps = (p >> man) & ((1 << exp_bits) - 1)
    raw = ((p >> 15) << man) | (p & ((1 << man) - 1))
    if n == 0:
        return _HEADER.pack(0, exp_bits, PROB_BITS, 0, 0, 0)
    counts = np.bincount(exps, minlength=1 << exp_bits)
    table = _normalize({s: int(c) for s, c in enumerate(counts.tolist()) if c})
    freq = [0] * (1 << exp_bits)
    cum = [0] * (1 << exp_bits)
    c = 0
    for s, f in table:
        freq[s], cum[s] = f, c
        c += f
    x_max = [(_L >> PROB_BITS << 8) * f for f in freq]
    out = bytearray()
    x = _L
    for s in reversed(exps.tolist()):
        f, top = freq[s], x_max[s]
        while x >= top:
            out.append(x & 0xFF)
            x >>= 8
        q, r = divmod(x, f)
        x = (q << PROB_BITS) + r + cum[s]
    out += x.to_bytes(4, "big")  # reversed below: the stream starts with x little-endian
    out.reverse()
    rawb = _pack_bits(raw, 1 + man)
    head = _HEADER.pack(n, exp_bits, PROB_BITS, len(table), len(out), len(rawb))
    return head + b"".join(struct.pack("<BH", s, f) for s, f in table) + bytes(out) + rawb


def decode_lossless(blob: bytes, n: int, exp_bits: int) -> np.ndarray:
    """The ``n`` patterns (uint16) of a lossless blob, computed as the C decoder does; the
    blob is checked throughout (:class:`ValueError` if it is not a valid blob of ``n``
    weights with ``exp_bits`` exponent bits)."""
    exp_bits = _check_int("exp_bits", exp_bits, 1, 8)
    n = _check_int("n", n, 0, (1 << 32) - 1)
    blob = bytes(blob)
    if len(blob) < _HEADER.size:
        raise ValueError(f"a lossless blob has a {_HEADER.size}-byte header; got {len(blob)} bytes")
    n_b, e_b, pb, nsym, alen, rlen = _HEADER.unpack_from(blob, 0)
    man = 15 - exp_bits
    if n_b != n:
        raise ValueError(f"the blob holds {n_b} weights, not {n}")
    if e_b != exp_bits:
        raise ValueError(f"the blob has {e_b} exponent bits, not {exp_bits}")
    if pb != PROB_BITS:
        raise ValueError(f"the blob has PROB_BITS {pb}, this decoder {PROB_BITS}")
    if rlen != _packed_bytes(n, 1 + man) or len(blob) != _HEADER.size + 3 * nsym + alen + rlen:
        raise ValueError("the blob's stream lengths do not match its size and n")
    if n == 0:
        if nsym or alen:
            raise ValueError("an empty blob has no table and no rANS stream")
        return np.zeros(0, dtype=np.uint16)
    if not 1 <= nsym <= 1 << exp_bits or alen < 4:
        raise ValueError("bad table size or rANS stream length")
    table = [struct.unpack_from("<BH", blob, _HEADER.size + 3 * j) for j in range(nsym)]
    syms = [s for s, _ in table]
    if len(set(syms)) != nsym or max(syms) >= 1 << exp_bits or min(f for _, f in table) < 1 \
            or sum(f for _, f in table) != _M:
        raise ValueError("bad frequency table (symbols must be distinct exponents, frequencies >= 1 "
                         f"summing to {_M})")
    slot_entry = np.repeat(np.arange(nsym), [f for _, f in table]).tolist()
    cums = np.concatenate([[0], np.cumsum([f for _, f in table])[:-1]]).tolist()
    freqs = [f for _, f in table]
    at = _HEADER.size + 3 * nsym
    stream = blob[at:at + alen]
    x = int.from_bytes(stream[:4], "little")
    pos = 4
    if not _L <= x < _L << 8:
        raise ValueError("bad rANS initial state")
    out = [0] * n
    mask = _M - 1
    for i in range(n):
        slot = x & mask
        j = slot_entry[slot]
        out[i] = j
        x = freqs[j] * (x >> PROB_BITS) + slot - cums[j]
        while x < _L:
            if pos >= alen:
                raise ValueError("the rANS stream ends early")
            x = (x << 8) | stream[pos]
            pos += 1
    if x != _L or pos != alen:
        raise ValueError("the rANS stream does not end in the encoder's initial state")
    exps = np.array(syms, dtype=np.uint32)[np.array(out, dtype=np.int64)]
    raw = _unpack_bits(blob[at + alen:], n, 1 + man)
    p = ((raw >> man) << 15) | (exps << man) | (raw & ((1 << man) - 1))
    return p.astype(np.uint16)


def ratio(patterns: np.ndarray, exp_bits: int) -> float:
    """Plain size over lossless blob size: ``2 * n / len(encode_lossless(...))``."""
    n = np.asarray(patterns).size
    return 2 * n / len(encode_lossless(patterns, exp_bits))


# ---------------------------------------------------------------------------- lossy

def _check_lossy(k: int, block: int) -> tuple[int, int]:
    return _check_int("k (mantissa bits kept)", k, 1, 10), _check_int("block", block, 1)


def _per_weight(e: np.ndarray, n: int, block: int) -> np.ndarray:
    """The block values ``e`` repeated for each of the ``n`` weights."""
    return np.repeat(e, np.minimum(block, n - block * np.arange(len(e), dtype=np.int64)))


def _lossy_codes(w, k: int, block: int):
    """Per block E (int64), per weight sign (bool) and m (int64) of lossy storage."""
    w32 = np.asarray(w, dtype=np.float32).reshape(-1)
    if not np.all(np.isfinite(w32)):
        raise ValueError("lossy NeuZip stores finite weights only (NaN or infinity found)")
    a = np.abs(w32).astype(np.float64)  # exact
    top = np.maximum.reduceat(a, np.arange(0, len(a), block)) if len(a) else np.zeros(0)
    e = np.where(top > 0, np.frexp(top)[1] - 1, 0).astype(np.int64)  # 2^E <= top < 2^(E+1)
    bad = np.flatnonzero(e < E_MIN)
    if bad.size:
        raise ValueError(f"block {int(bad[0])}: largest magnitude {top[bad[0]]:.3g} is below 2^{E_MIN}, "
                         f"outside the lossy scale range 2^{E_MIN} .. 2^{E_MAX} (one signed byte)")
    ew = _per_weight(e, len(a), block)
    m = np.minimum(np.rint(np.ldexp(a, k - ew)), (1 << (k + 1)) - 1).astype(np.int64)  # rint: half to even
    neg = np.signbit(w32) & (m > 0)
    return e, neg, m


def _lossy_float(e_w: np.ndarray, neg: np.ndarray, m: np.ndarray, k: int) -> np.ndarray:
    v = np.ldexp(m.astype(np.float64), e_w - k).astype(np.float32)  # exact (module doc)
    return np.where(neg, -v, v).astype(np.float32)


def lossy_values(w: np.ndarray, k: int, block: int = 32) -> np.ndarray:
    """The weights as lossy storage with ``k`` mantissa bits keeps them (float32, the
    shape of ``w``; ``w`` is made float32 first): per block of ``block`` weights
    (row-major) ``(-1)^s * m * 2^(E-K)``, see the module doc."""
    k, block = _check_lossy(k, block)
    e, neg, m = _lossy_codes(w, k, block)
    return _lossy_float(_per_weight(e, len(m), block), neg, m, k).reshape(np.shape(w))


def encode_lossy(w: np.ndarray, k: int, block: int = 32) -> bytes:
    """The lossy blob (module doc) of the float weights ``w`` (flattened row-major)."""
    k, block = _check_lossy(k, block)
    e, neg, m = _lossy_codes(w, k, block)
    n, width = len(m), k + 2
    codes = (neg.astype(np.uint32) << (k + 1)) | m.astype(np.uint32)
    full = n // block  # whole blocks, packed row by row; then the last, shorter block
    rows = np.empty((full, 1 + _packed_bytes(block, width)), dtype=np.uint8)
    rows[:, 0] = e[:full].astype(np.int8).view(np.uint8)
    rows[:, 1:] = _pack_rows(codes[:full * block].reshape(full, block), width)
    out = rows.tobytes()
    if full * block < n:
        out += bytes([int(e[full]) & 0xFF]) + _pack_bits(codes[full * block:], width)
    return out


def _pack_rows(codes: np.ndarray, width: int) -> np.ndarray:
    """Each row of codes bit-packed on its own (each row starts on a byte boundary)."""
    nb, block = codes.shape
    bits = ((codes[:, :, None] >> np.arange(width, dtype=np.uint32)) & np.uint32(1)).astype(np.uint8)
    return np.packbits(bits.reshape(nb, block * width), axis=1, bitorder="little")


def _unpack_rows(data: np.ndarray, block: int, width: int) -> np.ndarray:
    """Inverse of :func:`_pack_rows` (uint32 codes, one row per block)."""
    bits = np.unpackbits(data, axis=1, bitorder="little")[:, :block * width]
    return (bits.reshape(len(data), block, width).astype(np.uint32) << np.arange(width, dtype=np.uint32)).sum(
        axis=2, dtype=np.uint32)


def lossy_blob_size(n: int, k: int, block: int = 32) -> int:
    """Bytes of the lossy blob of ``n`` weights."""
    k, block = _check_lossy(k, block)
    nb = -(-n // block)
    if nb == 0:
        return 0
    return (nb - 1) * (1 + _packed_bytes(block, k + 2)) + 1 + _packed_bytes(n - (nb - 1) * block, k + 2)


def decode_lossy(blob: bytes, n: int, k: int, block: int = 32) -> np.ndarray:
    """The ``n`` float32 weights of a lossy blob, bit for bit :func:`lossy_values` of the
    weights it was made from (and what the C decoder computes)."""
    k, block = _check_lossy(k, block)
    n = _check_int("n", n, 0, (1 << 32) - 1)
    blob = bytes(blob)
    size = lossy_blob_size(n, k, block)
    if len(blob) != size:
        raise ValueError(f"a lossy blob of {n} weights (K={k}, block {block}) has {size} bytes, got {len(blob)}")
    if n == 0:
        return np.zeros(0, dtype=np.float32)
    width, per = k + 2, 1 + _packed_bytes(block, k + 2)
    full = n // block
    data = np.frombuffer(blob, dtype=np.uint8)
    rows = data[:full * per].reshape(full, per)
    e = rows[:, 0].view(np.int8).astype(np.int64)
    codes = _unpack_rows(rows[:, 1:], block, width).reshape(-1)
    if full * block < n:
        e = np.append(e, np.int64(data[full * per:full * per + 1].view(np.int8)[0]))
        codes = np.concatenate([codes, _unpack_bits(data[full * per + 1:].tobytes(), n - full * block, width)])
    m = (codes & ((1 << (k + 1)) - 1)).astype(np.int64)
    neg = (codes >> (k + 1)).astype(bool)
    return _lossy_float(_per_weight(e, n, block), neg, m, k)
