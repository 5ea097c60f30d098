"""Finding a short byte string in a large buffer at memory speed.

Why: a decoded batch is first scanned for literals Arrow accepts and orjson refuses (NaN, Infinity),
over every byte of the batch. `bytes.find` runs at ~1.1 GB/s here; the C library's `memmem` at
1.7–3 GB/s (measured on 136 MB of messages), and it runs without the GIL. Where the C library has
no `memmem` (or cannot be loaded), `bytes.find` gives the same positions.
"""

from __future__ import annotations

import ctypes
import ctypes.util
from collections.abc import Iterator
from functools import cache


def find_all(haystack: bytes, needle: bytes) -> Iterator[int]:
    """Every start position of `needle` in `haystack`, in order (overlapping ones included)."""
    memmem = _memmem()
    if memmem is None or not needle or type(haystack) is not bytes:
        at = haystack.find(needle)
        while at != -1:
            yield at
            at = haystack.find(needle, at + 1)
        return
    buffer = ctypes.c_char_p(haystack)  # the bytes object's own buffer, not a copy
    base = ctypes.cast(buffer, ctypes.c_void_p).value or 0
    start, end = 0, len(haystack)
    while start <= end - len(needle):
        found = memmem(base + start, end - start, needle, len(needle))
        if not found:
            return
        yield found - base
        start = found - base + 1


@cache
def _memmem():
    """The C library's memmem, or None."""
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c"))
        function = libc.memmem
    except (OSError, AttributeError, TypeError):
        return None
    function.restype = ctypes.c_void_p
    function.argtypes = [ctypes.c_void_p, ctypes.c_size_t, ctypes.c_char_p, ctypes.c_size_t]
    return function
