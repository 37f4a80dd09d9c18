"""The CRC-32 of a concatenation from the CRCs and lengths of its parts (zlib's crc32_combine).

A gzip member ends with the CRC-32 of everything it holds. The exposition keeps its body as one
chunk per family and re-renders only the families that changed; taking the CRC of the whole body
again after each render read all 10.8 MB at 10,000 tenants, when only the system collector's few
kilobytes were new. Each chunk's CRC is taken once, when it is made, and the body's is combined
from them: one step per chunk, whatever its length.

Python's zlib module does not expose crc32_combine, so the system's libz is called through
ctypes; where it cannot be loaded the same arithmetic runs in Python (zlib's crc32.c: appending
`length` bytes multiplies the first CRC by x^(8*length) modulo the CRC polynomial, in GF(2)).
"""
from __future__ import annotations

import ctypes
import ctypes.util
import functools

_POLYNOMIAL = 0xEDB88320  # CRC-32's polynomial, bit-reversed as zlib and gzip use it
_ONE = 1 << 31  # x^0 in that bit order


def _multiply(a: int, b: int) -> int:
    """a(x) * b(x) modulo the polynomial; `a` is never zero here (a power of x)."""
    product, bit = 0, _ONE
    while True:
        if a & bit:
            product ^= b
            if not a & (bit - 1):
                return product
        bit >>= 1
        b = (b >> 1) ^ _POLYNOMIAL if b & 1 else b >> 1


def _squares() -> list[int]:
    """x^(2^k) modulo the polynomial, for every k that a length's bits reach (8 * 2^63)."""
    powers, power = [], _ONE >> 1  # x^1
    for _ in range(67):
        powers.append(power)
        power = _multiply(power, power)
    return powers


_X_TO_2_TO_THE = _squares()


@functools.lru_cache(maxsize=4096)
def _shift(length: int) -> int:
    """x^(8 * length) modulo the polynomial: the operator that appends `length` bytes. Cached,
    so a chunk that keeps its length from one render to the next costs one multiplication."""
    power, k, n = _ONE, 3, length  # 8 * length = length * 2^3
    while n:
        if n & 1:
            power = _multiply(_X_TO_2_TO_THE[k], power)
        n >>= 1
        k += 1
    return power


def crc32_combine_python(crc1: int, crc2: int, length2: int) -> int:
    return _multiply(_shift(length2), crc1) ^ crc2


def _libz_combine():
    """zlib's crc32_combine64 (64-bit length on every platform), or None."""
    try:
        combine = ctypes.CDLL(ctypes.util.find_library("z") or "libz.so.1").crc32_combine64
    except (OSError, AttributeError):
        return None
    combine.argtypes = (ctypes.c_ulong, ctypes.c_ulong, ctypes.c_int64)
    combine.restype = ctypes.c_ulong
    return combine


_LIBZ_COMBINE = _libz_combine()


def crc32_combine(crc1: int, crc2: int, length2: int) -> int:
    """The CRC-32 of A + B from crc1 = crc32(A), crc2 = crc32(B) and length2 = len(B)."""
    if _LIBZ_COMBINE is not None:
        return _LIBZ_COMBINE(crc1, crc2, length2) & 0xFFFFFFFF
    return crc32_combine_python(crc1, crc2, length2)
