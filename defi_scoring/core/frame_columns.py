"""Columns ↔ wide, short tables, without pandas' per-column overhead.

One API call scores one wallet through ~20 small frames of up to ~300 columns, and pandas' fixed
costs per column and per frame were most of its time (README, "Performance"). Here:
- `FrameColumns` takes a table's arrays from its blocks in one pass (~0.8 µs a column, views);
- `column`/`floats` read one column's values without the Series pandas builds on a first read
  (~1 µs against ~12 µs);
- `frame_of` builds a frame from a dict of per-wallet arrays as one block per dtype (pandas'
  constructor checks every column and makes a block per run of equal dtypes, then merges them);
- `side_by_side` and `without_columns` join and select columns by listing blocks, not copying them.
Each gives what the pandas call it replaces gives (tested against it) and falls back to that call for
anything it does not expect: a Series to align, a datetime, a repeated name, different internals.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

import numpy as np
import pandas as pd


class FrameColumns:
    """`columns[name]` → that column's values (a NumPy array or an extension array such as a
    Categorical); `len()` and `.columns` as the frame's, so row-wise helpers take it like a frame."""

    def __init__(self, frame: pd.DataFrame) -> None:
        self.frame = frame
        self.columns = frame.columns
        self._arrays = _block_arrays(frame) if frame.columns.is_unique else {}

    def __len__(self) -> int:
        return len(self.frame)

    def __contains__(self, name: object) -> bool:  # as `name in frame`: a column name
        return name in self.columns

    def __getitem__(self, name: str) -> Any:
        found = self._arrays.get(name)
        if found is None:
            found = self._arrays[name] = self.frame[name].array  # KeyError for an unknown column
        return found

    def floats(self, name: str) -> np.ndarray:
        return np.asarray(self[name], dtype=float)


def _block_arrays(frame: pd.DataFrame) -> dict[str, Any]:
    """Column name → values, from the frame's blocks (pandas 2 internals; {} if they look different)."""
    try:
        names = frame.columns.tolist()  # a list: indexing a pandas Index costs ~0.6 µs a name
        arrays: dict[str, Any] = {}
        for block in frame._mgr.blocks:
            values = block.values
            locations = block.mgr_locs.as_array.tolist()
            if isinstance(values, np.ndarray) and values.ndim == 2:
                for row, location in enumerate(locations):
                    arrays[names[location]] = values[row]
            elif len(locations) == 1:
                arrays[names[locations[0]]] = values
            else:
                return {}
        return arrays
    except (AttributeError, TypeError, IndexError):
        return {}


def frame_of(columns: Mapping[str, Any], index: pd.Index) -> pd.DataFrame:
    """`pd.DataFrame(columns, index=index)` for columns of arrays (or scalars, broadcast), each the
    length of `index`: the same frame, dtypes and copies included, built without pandas' per-column
    checks. Anything else (a Series, a datetime, a wrong length) takes pandas' own constructor."""
    n = len(index)
    if not columns or not isinstance(index, pd.Index):
        return pd.DataFrame(columns, index=index)
    by_dtype: dict[np.dtype, list[int]] = {}
    arrays: list[Any] = []
    categoricals: list[int] = []
    for position, value in enumerate(columns.values()):
        if isinstance(value, np.ndarray):
            if value.ndim != 1 or len(value) != n or value.dtype.kind in "MmV":
                return pd.DataFrame(columns, index=index)
            if value.dtype.kind in "US":
                value = value.astype(object)  # how pandas stores NumPy strings
            by_dtype.setdefault(value.dtype, []).append(position)
        elif isinstance(value, pd.Categorical) and len(value) == n:
            value = value.copy()  # pandas keeps an extension array as it is, a copy of the caller's
            categoricals.append(position)
        elif isinstance(value, (float, int, bool, np.floating, np.integer, np.bool_)):
            value = np.full(n, value)
            by_dtype.setdefault(value.dtype, []).append(position)
        else:
            return pd.DataFrame(columns, index=index)
        arrays.append(value)
    try:
        return _from_blocks(arrays, by_dtype, categoricals, shared_index(tuple(columns)), index)
    except (ImportError, AttributeError, TypeError):  # a pandas whose internals look different
        return pd.DataFrame(columns, index=index)


def _from_blocks(arrays, by_dtype, categoricals, names: pd.Index, index: pd.Index) -> pd.DataFrame:
    """One 2-D block per dtype (pandas' constructor makes one per run of equal dtypes and merges them
    after: 8x slower for the interleaved float/bool columns of the hybrid score), stacked as copies."""
    BlockManager, block = _internals()
    blocks = [block(np.stack([arrays[p] for p in positions]), positions) for positions in by_dtype.values()]
    blocks += [block(arrays[p], [p]) for p in categoricals]
    manager = BlockManager(blocks, [names, index], verify_integrity=False)
    return pd.DataFrame._from_mgr(manager, axes=manager.axes)


def side_by_side(frames: list[pd.DataFrame]) -> pd.DataFrame:
    """`pd.concat(frames, axis=1)` of frames on one index, by listing their blocks under the joined
    columns: no copy and no merge of blocks (pandas' concat copies every part, then merges; for one
    wallet that was ~0.3 ms per call whatever the row count). The result shares the parts' arrays,
    so it suits parts made to be joined; frames on different indexes go to pd.concat."""
    index = frames[0].index
    if any(not f.index.equals(index) for f in frames[1:]):
        return pd.concat(frames, axis=1)
    try:
        BlockManager, block = _internals()
        blocks, names = [], []
        for frame in frames:
            offset = len(names)
            blocks += [block(b.values, b.mgr_locs.as_array + offset) for b in frame._mgr.blocks]
            names += frame.columns.tolist()
        manager = BlockManager(blocks, [shared_index(tuple(names)), index], verify_integrity=False)
        return pd.DataFrame._from_mgr(manager, axes=manager.axes)
    except (ImportError, AttributeError, TypeError, ValueError):  # internals that look different
        return pd.concat(frames, axis=1)


def _internals():
    """pandas' BlockManager and a block maker for values that are already block-ready (2-D NumPy
    arrays or 1-D extension arrays of the frame's length): ~0.8 µs a block, against ~3 µs for the
    checks of pandas.core.internals.api.make_block (what pyarrow's to_pandas uses)."""
    from pandas._libs.internals import BlockPlacement
    from pandas.core.internals import BlockManager
    from pandas.core.internals.blocks import new_block

    def block(values, positions):
        return new_block(values, BlockPlacement(np.asarray(positions, dtype=np.intp)), ndim=2)

    return BlockManager, block


def column(frame: pd.DataFrame, name: str) -> Any:
    """`frame[name]`'s values (a NumPy array, or an extension array such as a Categorical) without
    the Series pandas builds on a column's first read (~12 µs against ~1 µs; one API call reads ~130
    columns of frames it has just built). A repeated or unknown name goes through `frame[name]`."""
    loc = frame.columns.get_loc(name)  # KeyError for an unknown column, as frame[name]
    if isinstance(loc, int):
        try:
            return frame._get_column_array(loc)
        except AttributeError:  # a pandas without this accessor
            pass
    values = frame[name]  # a repeated name: a frame of those columns
    return values.array if isinstance(values, pd.Series) else values.to_numpy()


def floats(frame: pd.DataFrame, name: str) -> np.ndarray:
    """A column as floats (`frame[name].to_numpy(float)`), read as `column` reads it."""
    return np.asarray(column(frame, name), dtype=float)


def zeros_frame(index: pd.Index, columns: list[str]) -> pd.DataFrame:
    """`pd.DataFrame(0.0, index=index, columns=columns)` — the features of a protocol type a batch has
    no rows of — from one zero block (pandas' scalar broadcast costs ~30 µs against ~8; a lone
    wallet's call makes two or three)."""
    return pd.DataFrame(
        np.zeros((len(index), len(columns))), index=index, columns=shared_index(tuple(columns)), copy=False
    )


def without_columns(frame: pd.DataFrame, names: set[str]) -> pd.DataFrame:
    """`frame[[c for c in frame.columns if c not in names]]`, block by block: pandas' column take
    costs ~0.2 ms for a ~120-column frame of one wallet whatever its length."""
    keep = np.array([c not in names for c in frame.columns.tolist()], dtype=bool)
    if keep.all():
        return frame
    try:
        BlockManager, block = _internals()
        new_position = np.cumsum(keep) - 1
        blocks = []
        for b in frame._mgr.blocks:
            locations = b.mgr_locs.as_array
            rows = keep[locations]
            if not rows.any():
                continue
            values = b.values if rows.all() else b.values[rows]  # (a 1-D extension block is one column)
            blocks.append(block(values, new_position[locations[rows]]))
        manager = BlockManager(blocks, [frame.columns[keep], frame.index], verify_integrity=False)
        return pd.DataFrame._from_mgr(manager, axes=manager.axes)
    except (ImportError, AttributeError, TypeError, ValueError):
        return frame.loc[:, keep]


# Up to this many rows (an API call: one wallet, ~20 transactions), plain Python (dicts, sets) beats
# pandas' per-call overheads of hashing, reindexing and Categorical construction.
SHORT_COLUMN = 256

_SHARED_INDEXES: dict[tuple, pd.Index] = {}
_SHARED_DTYPES: dict[tuple, pd.CategoricalDtype] = {}


def shared_index(names: tuple) -> pd.Index:
    """The Index of these labels, made once: a scoring call builds ~20 frames whose column names (and
    ten Categoricals whose categories) are mostly the same from call to call, and pandas infers an
    Index's type anew each time (~10 µs for 80 names). An Index is immutable, so frames and
    Categoricals can share one (nothing here renames columns in place)."""
    return _made_once(_SHARED_INDEXES, names, lambda: pd.Index(list(names)))


def shared_categorical_dtype(categories: tuple) -> pd.CategoricalDtype:
    """The unordered CategoricalDtype of these categories, made once: building one validates its
    categories each time (~10 µs; ten per call); a dtype is immutable, so Categoricals share it."""
    return _made_once(_SHARED_DTYPES, categories, lambda: pd.CategoricalDtype(shared_index(categories)))


def _made_once(store: dict, key: tuple, make: Callable[[], Any]) -> Any:
    found = store.get(key)
    if found is None:
        if len(store) >= 1024:  # keys that change per call (wallet addresses as categories): start again
            store.clear()
        found = store[key] = make()
    return found
