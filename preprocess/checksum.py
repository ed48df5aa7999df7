"""HDF5's fletcher32 chunk checksum, for chunks the extractor writes directly (store/writer.py).

The same arithmetic as HDF5's H5_checksum_fletcher32: big-endian 16-bit words (an odd last
byte counts as a word with a zero low byte), two running sums folded with end-around carry
every 360 words; the filter appends the result as 4 little-endian bytes. A numba kernel:
in NumPy it cost a quarter of a millisecond a residual frame, a fifth of the frame's budget.
"""
import sys

import numba
import numpy as np


@numba.njit(cache=True, nogil=True)
def _sums(data, little_endian):
    # Per block of n <= 360 words w_1..w_n: sum1 grows by their total and sum2 by
    # n * sum1 + sum_i (n - i + 1) w_i, so the loop carries no sum from word to word and
    # vectorises (half the time of the word-by-word recurrence, measured).
    first, second = np.int64(0), np.int64(0)  # int64: a block keeps both far below 2**63
    words = len(data) // 2
    native = data[:2 * words].view(np.uint16)  # the host's byte order; big-endian wanted
    start = 0
    while start < words:
        n = min(words - start, 360)
        total, weighted = np.int64(0), np.int64(0)
        for i in range(n):
            raw = np.int64(native[start + i])
            word = ((raw & 0xFF) << 8) | (raw >> 8) if little_endian else raw
            total += word
            weighted += (n - i) * word
        second += n * first + weighted
        first += total
        first = (first & 0xFFFF) + (first >> 16)
        second = (second & 0xFFFF) + (second >> 16)
        start += n
    if len(data) % 2:
        first += np.int64(data[len(data) - 1]) << 8
        second += first
        first = (first & 0xFFFF) + (first >> 16)
        second = (second & 0xFFFF) + (second >> 16)
    first = (first & 0xFFFF) + (first >> 16)
    second = (second & 0xFFFF) + (second >> 16)
    return (second << 16) | first


def fletcher32(data):
    """The 4 bytes HDF5's fletcher32 filter appends to a chunk of these bytes."""
    sums = _sums(np.frombuffer(data, np.uint8), sys.byteorder == "little")
    return int(sums).to_bytes(4, "little")
