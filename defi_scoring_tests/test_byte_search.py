"""The C library's substring search gives exactly the positions `bytes.find` gives (the NaN/Infinity
scan of the native decoder depends on it), and the fallback without it gives the same."""

from hypothesis import given, settings
from hypothesis import strategies as st

from defi_scoring.core import byte_search
from defi_scoring.core.byte_search import find_all


def _positions_by_find(haystack: bytes, needle: bytes) -> list[int]:
    out, at = [], haystack.find(needle)
    while at != -1:
        out.append(at)
        at = haystack.find(needle, at + 1)
    return out


alphabet = st.sampled_from(list(b"NaInfity\n\x00{}"))
haystacks = st.lists(alphabet, max_size=200).map(bytes)
needles = st.sampled_from([b"NaN", b"Infinity", b"N", b"aN", b"NaNaN", b"\x00"])


@settings(max_examples=400, deadline=None)
@given(haystacks, needles)
def test_memmem_positions_equal_bytes_find(haystack, needle):
    assert byte_search._memmem() is not None  # the C library's search is what runs on Linux
    assert list(find_all(haystack, needle)) == _positions_by_find(haystack, needle)


@given(haystacks, needles)
def test_the_fallback_for_other_buffers_gives_the_same_positions(haystack, needle):
    assert list(find_all(bytearray(haystack), needle)) == _positions_by_find(haystack, needle)


def test_a_large_buffer_with_a_late_hit():
    haystack = b"x" * 50_000_000 + b"NaN" + b"y" * 10 + b"NaN"
    assert list(find_all(haystack, b"NaN")) == [50_000_000, 50_000_013]
    assert list(find_all(haystack, b"Infinity")) == []
