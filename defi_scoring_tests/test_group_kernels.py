"""The group kernels the feature code is built on give exactly what the plain NumPy formulation gives
(np.unique, np.lexsort, per-wallet loops), on random data with ties, NaN, empty groups and both the
dense (flag array) and the sorting paths."""

import numpy as np
import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from defi_scoring.core import features
from defi_scoring.core.counterparty_pairs import CounterpartyPairs
from defi_scoring.core.features import sorted_unique, unique_inverse_counts
from defi_scoring.core.sequence_stats import (
    distinct_count,
    group_quantile,
    share_of_top_and_hhi,
    sorted_group_min_max,
    top_share_and_hhi,
    value_ranks,
    wallet_time_order,
)
from defi_scoring.core.transfer_features import _same_address

keys = st.lists(st.integers(0, 2**40), max_size=300).map(lambda v: np.array(v, dtype=np.int64))
small_keys = st.lists(st.integers(0, 50), max_size=300).map(lambda v: np.array(v, dtype=np.int64))


@settings(max_examples=150, deadline=None)
@given(st.one_of(keys, small_keys))
def test_unique_inverse_counts_is_np_unique(values):
    expected = np.unique(values, return_inverse=True, return_counts=True)
    for got, want in zip(unique_inverse_counts(values), expected, strict=True):
        np.testing.assert_array_equal(got, want)
    np.testing.assert_array_equal(sorted_unique(values), expected[0])


def test_both_paths_of_unique_are_taken(monkeypatch):
    """The dense path for packed keys of few items, the sorting path for wide keys."""
    dense, wide = np.array([3, 1, 3, 0]), np.array([3, 2**50, 3, 7])
    assert features._presence(dense) is not None and features._presence(wide) is None
    monkeypatch.setattr(features, "_presence", lambda values: None)  # force the sorting path
    np.testing.assert_array_equal(unique_inverse_counts(dense)[1], np.unique(dense, return_inverse=True)[1])


def _lexsort_quantile(codes, values, n, q):
    out = np.zeros(n)
    for wallet in range(n):
        own = np.sort(values[codes == wallet])  # NaN last, as lexsort puts it
        if len(own):
            out[wallet] = own[int(np.floor(q * (len(own) - 1)))]
    return out


groups = st.integers(1, 12).flatmap(
    lambda n: st.tuples(
        st.just(n),
        st.lists(st.tuples(st.integers(0, n - 1), st.sampled_from([0.0, 1.5, 2.0, 7.25, 1e9, np.nan])), max_size=80),
    )
)


@settings(max_examples=150, deadline=None)
@given(groups, st.sampled_from([0.0, 0.25, 0.5, 1.0]))
def test_group_quantile_matches_sorting_each_wallet(data, q):
    n, rows = data
    codes = np.array([r[0] for r in rows], dtype=np.int64)
    values = np.array([r[1] for r in rows], dtype=float)
    np.testing.assert_array_equal(group_quantile(codes, values, n, q), _lexsort_quantile(codes, values, n, q))
    whole = values[~np.isnan(values)]  # whole non-negative numbers take the integer-key path
    whole_codes = codes[~np.isnan(values)]
    np.testing.assert_array_equal(
        group_quantile(whole_codes, np.floor(whole), n, q), _lexsort_quantile(whole_codes, np.floor(whole), n, q)
    )
    # ranks of a superset, subset like the values: the same quantiles
    part = np.arange(len(values)) % 2 == 0
    np.testing.assert_array_equal(
        group_quantile(codes[part], values[part], n, q, value_ranks(values)[part]),
        _lexsort_quantile(codes[part], values[part], n, q),
    )


@settings(max_examples=100, deadline=None)
@given(groups)
def test_sorted_group_min_max_is_quantile_0_and_1(data):
    n, rows = data
    rows = sorted(rows, key=lambda r: r[0])
    codes = np.array([r[0] for r in rows], dtype=np.int64)
    values = np.array([r[1] for r in rows], dtype=float)
    low, high = sorted_group_min_max(codes, values, n)
    np.testing.assert_array_equal(low, _lexsort_quantile(codes, values, n, 0.0))
    np.testing.assert_array_equal(high, _lexsort_quantile(codes, values, n, 1.0))


@settings(max_examples=100, deadline=None)
@given(st.lists(st.tuples(st.integers(0, 20), st.integers(-(10**9), 10**9)), max_size=120), st.booleans())
def test_wallet_time_order_is_lexsort(rows, presorted):
    rows = sorted(rows) if presorted else rows
    codes = np.array([r[0] for r in rows], dtype=np.int64)
    ts = np.array([r[1] for r in rows], dtype=np.int64)
    np.testing.assert_array_equal(wallet_time_order(codes, ts), np.lexsort((ts, codes)))


@settings(max_examples=100, deadline=None)
@given(
    st.integers(1, 6).flatmap(
        lambda n: st.tuples(
            st.just(n),
            st.lists(
                st.tuples(st.integers(0, n - 1), st.integers(-1, 8), st.booleans(), st.floats(0, 100)), max_size=80
            ),
        )
    )
)
def test_counterparty_pairs_match_the_per_feature_functions(data):
    n, rows = data
    rows = sorted(rows, key=lambda r: r[0])
    wallet = np.array([r[0] for r in rows], dtype=np.int64)
    partner = np.array([r[1] for r in rows], dtype=np.int64)
    send = np.array([r[2] for r in rows], dtype=bool)
    usd = np.array([r[3] for r in rows], dtype=float)
    pairs = CounterpartyPairs.of(wallet, partner, send, n)
    np.testing.assert_array_equal(pairs.partners, distinct_count(wallet, partner, n))
    np.testing.assert_array_equal(pairs.fan_in, distinct_count(wallet[~send], partner[~send], n))
    np.testing.assert_array_equal(pairs.fan_out, distinct_count(wallet[send], partner[send], n))
    top, hhi = share_of_top_and_hhi(wallet, partner, n)
    got_top, got_hhi = top_share_and_hhi(pairs.owner, pairs.count, n)
    np.testing.assert_array_equal(got_top, top)
    np.testing.assert_array_equal(got_hhi, hhi)
    for i in range(len(rows)):  # rows with the same partner, both directions
        same = (wallet == wallet[i]) & (partner == partner[i])
        assert pairs.row_pair_count()[i] == (same.sum() if partner[i] >= 0 else 0)
    value_top = np.zeros(n)
    for w in range(n):
        mine = (wallet == w) & send & (partner >= 0) & (usd > 0)
        if mine.any():
            per = pd.Series(usd[mine]).groupby(partner[mine]).sum()
            value_top[w] = per.max() / per.sum()
    np.testing.assert_allclose(pairs.top_value_share(send & (usd > 0), usd, n), value_top, rtol=1e-12)


@pytest.mark.parametrize("categorical", [True, False])
def test_same_address_compares_strings_row_by_row(categorical):
    wallet = pd.Series(["0xa", "0xb", "0xa", "0xc"])
    counterparty = pd.Series(["0xa", "0xa", None, "0xc"])
    if categorical:
        wallet, counterparty = wallet.astype("category"), counterparty.astype("category")
    assert _same_address(counterparty, wallet).tolist() == [True, False, False, True]


@settings(max_examples=100, deadline=None)
@given(
    st.lists(
        st.tuples(st.integers(0, 9), st.integers(-1, 30), st.booleans(), st.integers(-1, 5), st.integers(-1, 5)),
        max_size=120,
    )
)
def test_pool_and_symbol_pairs_match_np_unique(rows):
    wallet = np.array([r[0] for r in rows], dtype=np.int64)
    pool = np.array([r[1] for r in rows], dtype=np.int64)
    swap = np.array([r[2] for r in rows], dtype=bool)
    token_in = np.array([r[3] for r in rows], dtype=np.int64)
    token_out = np.array([r[4] for r in rows], dtype=np.int64)

    def pairs_of(w, items, width):
        keep = items >= 0
        return np.unique(w[keep] * width + items[keep]) // width

    pool_wallets, swap_pool_wallets = features._pools_per_wallet(wallet, pool, swap)
    np.testing.assert_array_equal(pool_wallets, pairs_of(wallet, pool, 31))
    np.testing.assert_array_equal(swap_pool_wallets, pairs_of(wallet[swap], pool[swap], 31))
    got_wallet, got_item = features._distinct_of_two(wallet, token_in, token_out, 6)
    stacked = np.unique(
        np.concatenate(
            [
                wallet[token_in >= 0] * 6 + token_in[token_in >= 0],
                wallet[token_out >= 0] * 6 + token_out[token_out >= 0],
            ]
        )
    )
    np.testing.assert_array_equal(got_wallet, stacked // 6)
    np.testing.assert_array_equal(got_item, stacked % 6)


@pytest.mark.parametrize("categorical", [True, False])
def test_codes_in_common_and_value_kinds(categorical):
    first = pd.Series(["ETH", "USDC", None, "DAI", "ETH"])
    second = pd.Series(["WBTC", None, "ETH", "ETH", "USDC"])
    if categorical:
        first, second = first.astype("category"), second.astype("category")
    a, b, names = features.codes_in_common(first, second)
    decoded = [[names[c] if c >= 0 else None for c in codes] for codes in (a, b)]
    assert decoded == [
        first.astype(object).where(first.notna(), None).tolist(),
        second.astype(object).where(second.notna(), None).tolist(),
    ]
    assert features.value_kinds(first, ["ETH", "UNI", "DAI"]).tolist() == [0, 3, 3, 2, 0]


@settings(max_examples=100, deadline=None)
@given(st.lists(st.tuples(st.integers(0, 8), st.integers(0, 40 * 86_400)), min_size=1, max_size=120))
def test_active_days_and_unique_keys_are_the_same_for_sorted_rows(rows):
    from defi_scoring.core.sequence_stats import relative_active_days

    codes = np.array([r[0] for r in rows], dtype=np.int64)
    ts = np.array([r[1] for r in rows], dtype=np.int64)
    order = np.lexsort((ts, codes))  # the sorted layout takes the shortcuts, the shuffled one does not
    np.testing.assert_array_equal(relative_active_days(codes[order], ts[order], 9), relative_active_days(codes, ts, 9))
    expected = [
        len({(t - min(x for c2, x in rows if c2 == c)) // 86_400 for c2, t in rows if c2 == c}) for c in range(9)
    ]
    np.testing.assert_array_equal(relative_active_days(codes, ts, 9), expected)
    wide = codes[order] * 2**45 + ts[order]  # sorted and too wide for flags
    np.testing.assert_array_equal(sorted_unique(wide), np.unique(wide))


def test_frame_columns_read_what_the_frame_holds():
    from defi_scoring.core.frame_columns import FrameColumns

    frame = pd.DataFrame(
        {
            "score": [1.5, np.nan, 3.0],
            "count": np.array([1, 2, 3], dtype=np.int64),
            "flag": [True, False, True],
            "level": pd.Categorical(["low", "high", "low"]),
            "tags": [["a"], [], ["b", "c"]],
        }
    )
    frame["late"] = frame["score"] * 2  # a second float block
    columns = FrameColumns(frame)
    assert len(columns) == 3 and "late" in columns and "nope" not in columns
    for name in frame.columns:
        assert pd.Series(columns[name], name=name).equals(frame[name]), name
    np.testing.assert_array_equal(columns.floats("score"), frame["score"].to_numpy(float))
    np.testing.assert_array_equal(columns.floats("late"), frame["late"].to_numpy(float))
    with pytest.raises(KeyError):
        columns["nope"]
    duplicated = pd.DataFrame([[1.0, 2.0]], columns=["x", "x"])
    assert FrameColumns(duplicated)._arrays == {}  # left to plain reads


@pytest.mark.parametrize("rows", [0, 1, 5])
def test_frame_of_builds_the_frame_pandas_builds(rows):
    from defi_scoring.core.frame_columns import frame_of

    rng = np.random.default_rng(rows)
    index = pd.Index([f"0x{i:040x}" for i in range(rows)], name="wallet")
    tags = np.empty(rows, dtype=object)
    tags[:] = [["a"] * (i % 2) for i in range(rows)]
    columns = {
        "score": rng.random(rows),
        "count": np.arange(rows, dtype=np.int64),
        "small": np.arange(rows, dtype=np.int32),
        "flag": rng.random(rows) > 0.5,
        "level": np.select([np.arange(rows) > 2], ["high"], default="low"),  # NumPy strings
        "name": np.array(["x"] * rows, dtype=object),
        "tags": tags,
        "kind": pd.Categorical(["b", "a"] * (rows // 2) + ["a"] * (rows % 2)),
        "missing": np.nan,
        "zero": 0,
        "off": False,
    }
    built = frame_of(columns, index)
    pd.testing.assert_frame_equal(built, pd.DataFrame(columns, index=index), check_exact=True)
    assert built.columns.dtype == object
    if rows:
        built.iloc[0, 0] = -1.0  # a copy, as pandas makes: the caller's arrays are not the frame's
        assert columns["score"][0] != -1.0
    # what it does not take goes to pandas' constructor, which gives the same frame or the same error
    aligned = {"s": pd.Series(np.arange(rows, dtype=float), index=index[::-1])}
    pd.testing.assert_frame_equal(frame_of(aligned, index), pd.DataFrame(aligned, index=index))
    pd.testing.assert_frame_equal(frame_of({}, index), pd.DataFrame({}, index=index))
    with pytest.raises(ValueError):
        frame_of({"short": np.zeros(rows + 2)}, index)


@pytest.mark.parametrize("rows", [0, 7, 40, 300])
def test_repeated_keys_are_what_pandas_calls_duplicated(rows):
    from defi_scoring.core.normalise import _repeated_keys

    rng = np.random.default_rng(rows)
    wallets = rng.choice(["0xa", "0xb", "0xc"], rows).astype(object)
    frame = pd.DataFrame({"wallet": wallets, "document_id": rng.choice(["1", "2", "3", "4"], rows).astype(object)})
    expected = frame.duplicated(["wallet", "document_id"], keep="first").to_numpy()
    np.testing.assert_array_equal(_repeated_keys(frame), expected)
    frame["wallet"] = pd.Categorical(wallets)
    np.testing.assert_array_equal(_repeated_keys(frame), expected)
    assert rows < 40 or expected.any()  # the case is exercised


@pytest.mark.parametrize("rows", [0, 1, 6])
def test_side_by_side_is_concat_without_the_copies(rows):
    from defi_scoring.core.frame_columns import side_by_side

    index = pd.Index([f"w{i}" for i in range(rows)], name="wallet")
    first = pd.DataFrame({"a": np.arange(rows, dtype=float), "b": np.arange(rows)}, index=index)
    first["c"] = first["a"] * 2  # a second float block
    second = pd.DataFrame(
        {"kind": pd.Categorical(["x", "y"] * (rows // 2) + ["x"] * (rows % 2)), "flag": np.ones(rows, bool)},
        index=index,
    )
    third = pd.DataFrame({"text": np.array(["t"] * rows, dtype=object), "d": np.zeros(rows)}, index=index)
    joined = side_by_side([first, second, third])
    pd.testing.assert_frame_equal(joined, pd.concat([first, second, third], axis=1), check_exact=True)
    if rows:
        assert np.shares_memory(joined["a"].to_numpy(), first["a"].to_numpy())  # no copy made
        joined["new"] = 1.0  # a joined frame takes new columns and row selections like any other
        pd.testing.assert_frame_equal(
            joined.iloc[[0]][["d", "kind"]], pd.concat([third, second], axis=1).iloc[[0]][["d", "kind"]]
        )
    shifted = third.set_axis(index[::-1])  # another index: pandas aligns, and so does this
    pd.testing.assert_frame_equal(side_by_side([first, shifted]), pd.concat([first, shifted], axis=1))


def test_widening_refuses_a_column_computed_twice():
    from defi_scoring.core.wallet_scoring import _widened

    index = pd.Index(["0xa", "0xb"])
    table = pd.DataFrame({"score": [1.0, 2.0], "count": [1, 2]}, index=index)
    widened = _widened(table, pd.DataFrame({"late": [3.0, 4.0]}, index=index[::-1]))
    assert widened["late"].tolist() == [4.0, 3.0]  # a part on another order is aligned to the table's rows
    with pytest.raises(ValueError, match=r"columns computed twice: \['score'\]"):
        _widened(table, pd.DataFrame({"score": [0.0, 0.0]}, index=index))


def test_column_reads_what_frame_getitem_reads():
    from defi_scoring.core.frame_columns import column, floats

    frame = pd.DataFrame(
        {
            "score": [1.5, np.nan],
            "count": np.array([1, 2]),
            "flag": [True, False],
            "kind": pd.Categorical(["a", "b"]),
            "name": ["x", None],
        }
    )
    frame["late"] = frame["score"] + 1  # another block
    for name in frame.columns:
        assert pd.Series(column(frame, name), name=name).equals(frame[name]), name
    np.testing.assert_array_equal(floats(frame, "count"), frame["count"].to_numpy(float))
    with pytest.raises(KeyError):
        column(frame, "nope")
    twice = pd.DataFrame([[1.0, 2.0]], columns=["x", "x"])
    np.testing.assert_array_equal(np.asarray(column(twice, "x")), twice["x"].to_numpy())  # pandas' own read


@pytest.mark.parametrize("rows", [0, 1, 4])
def test_without_columns_is_the_column_selection(rows):
    from defi_scoring.core.frame_columns import without_columns

    frame = pd.DataFrame(
        {
            "a": np.arange(rows, dtype=float),
            "b": np.arange(rows),
            "kind": pd.Categorical(["x"] * rows),
            "c": np.ones(rows),
            "flag": np.zeros(rows, bool),
        },
        index=pd.Index([f"w{i}" for i in range(rows)]),
    )
    frame["d"] = frame["a"] + 1
    for names in [set(), {"a"}, {"a", "c", "d"}, {"kind", "b"}, {"flag"}, set(frame.columns)]:
        expected = frame[[c for c in frame.columns if c not in names]]
        pd.testing.assert_frame_equal(without_columns(frame, names), expected, check_exact=True)


protocol_values = st.lists(st.sampled_from(["dexes", "transfers", "lending", None]), max_size=60)


@settings(max_examples=150, deadline=None)
@given(protocol_values, st.sampled_from(["dexes", "transfers", "lending", "other"]), st.booleans())
def test_rows_with_equals_pandas_comparison(values, wanted, as_categorical):
    frame = pd.DataFrame(
        {"protocol_type": pd.Categorical(values) if as_categorical else pd.Series(values, dtype=object)}
    )
    got = features.rows_with(frame, "protocol_type", wanted)
    assert got.dtype == bool
    np.testing.assert_array_equal(got, (frame["protocol_type"] == wanted).to_numpy())


symbol_lists = st.lists(st.sampled_from(["USDC", "WETH", "DAI", "LINK", "ÄØ", None]), max_size=40)


@settings(max_examples=300, deadline=None)
@given(symbol_lists, symbol_lists, st.randoms(use_true_random=False))
def test_codes_in_common_of_few_categories_equals_pandas_index_union(first, second, rng):
    def categorical(values: list) -> pd.Series:  # categories in any order, as merged histories may have
        categories = sorted({v for v in values if v is not None})
        rng.shuffle(categories)
        return pd.Series(pd.Categorical(values, categories=categories))

    a, b = categorical(first), categorical(second)
    short_a, short_b, short_names = features.codes_in_common(a, b)
    names = a.cat.categories.union(b.cat.categories)  # what the many-category path and pandas give
    assert short_names.equals(names) and list(short_names) == list(names)
    for column, codes in ((a, short_a), (b, short_b)):
        expected = np.append(names.get_indexer(column.cat.categories), -1)[column.cat.codes.to_numpy()]
        np.testing.assert_array_equal(codes, expected)


wallet_names = st.sampled_from([f"0x{c * 40}" for c in "abcdef"])


@settings(max_examples=150, deadline=None)
@given(
    st.dictionaries(wallet_names, st.one_of(st.floats(0, 100), st.just(float("nan"))), max_size=6),
    st.lists(wallet_names, unique=True, max_size=6),
)
def test_previous_scores_of_few_wallets_equal_a_reindex(previous, wallets):
    from defi_scoring.core.alerts import _previous_scores

    series = pd.Series(
        np.fromiter(previous.values(), float, len(previous)), index=pd.Index(list(previous), dtype=object)
    )
    index = pd.Index(wallets, dtype=object)
    np.testing.assert_array_equal(_previous_scores(series, index), series.reindex(index).to_numpy(float))
    assert np.isnan(_previous_scores(None, index)).all()


@pytest.mark.parametrize("n", [0, 1, 7])
def test_zeros_frame_and_an_empty_frame_equal_pandas_constructors(n):
    from defi_scoring.core.frame_columns import frame_of, zeros_frame
    from defi_scoring.core.transfer_features import TRANSFER_FEATURES

    index = pd.Index([f"0x{i:040x}" for i in range(n)], name="wallet")
    expected = pd.DataFrame(0.0, index=index, columns=TRANSFER_FEATURES)
    pd.testing.assert_frame_equal(zeros_frame(index, TRANSFER_FEATURES), expected, check_exact=True)
    empty = frame_of({}, index)
    assert empty.shape == (n, 0) and empty.index.equals(index)


@settings(max_examples=150, deadline=None)
@given(st.lists(st.sampled_from(["0xa", "0xb", None]), min_size=0, max_size=30), st.booleans())
def test_codes_equal_pandas_factorize_including_one_value_columns(values, extra_category):
    categorical = pd.Categorical(values, categories=["0xa", "0xb"] if extra_category else None)
    series = pd.Series(categorical)
    codes, labels = features._codes(series)
    expected_codes, expected_uniques = pd.factorize(series, sort=False)
    np.testing.assert_array_equal(codes, expected_codes)
    expected = pd.Index(expected_uniques)
    assert labels.equals(expected) and labels.dtype == expected.dtype and type(labels) is type(expected)
