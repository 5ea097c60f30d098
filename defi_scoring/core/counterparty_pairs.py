"""Distinct (wallet, counterparty) pairs of transfers, found once and read by every counterparty
feature: diversity, fan-in/fan-out, concentration per direction, one-off contacts, value per contact.

One hash-and-sort of packed (wallet, counterparty, direction) keys instead of one per feature; the
undirected pairs are runs of the directed ones (both directions of a pair sort next to each other).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from defi_scoring.core.features import unique_inverse_counts
from defi_scoring.core.sequence_stats import safe_ratio


@dataclass(frozen=True)
class CounterpartyPairs:
    has_partner: np.ndarray  # per row: the counterparty is known
    row_directed: np.ndarray  # per row with a partner: index of its directed pair
    directed_owner: np.ndarray  # per directed pair: wallet code (sorted)
    directed_send: np.ndarray  # per directed pair: True for sends to, False for receives from
    directed_count: np.ndarray  # per directed pair: rows
    directed_undirected: np.ndarray  # per directed pair: index of its undirected pair
    owner: np.ndarray  # per undirected pair: wallet code (sorted)
    count: np.ndarray  # per undirected pair: rows in both directions
    partners: np.ndarray  # per wallet: distinct counterparties
    fan_in: np.ndarray  # per wallet: distinct senders to it
    fan_out: np.ndarray  # per wallet: distinct recipients of it

    @classmethod
    def of(cls, wallet: np.ndarray, counterparty: np.ndarray, is_send: np.ndarray, n: int) -> CounterpartyPairs:
        """Rows' wallet codes, counterparty codes (-1 = unknown) and direction, for `n` wallets."""
        has_partner = counterparty >= 0
        width = int(counterparty.max()) + 1 if has_partner.any() else 1
        key = (wallet[has_partner] * width + counterparty[has_partner]) * 2 + is_send[has_partner]
        directed, row_directed, directed_count = unique_inverse_counts(key)
        directed_owner = directed // (2 * width)
        directed_send = (directed % 2).astype(bool)
        undirected = directed // 2
        first = np.r_[True, undirected[1:] != undirected[:-1]] if len(undirected) else np.zeros(0, bool)
        directed_undirected = np.cumsum(first) - 1
        owner = directed_owner[first]
        return cls(
            has_partner=has_partner,
            row_directed=row_directed,
            directed_owner=directed_owner,
            directed_send=directed_send,
            directed_count=directed_count,
            directed_undirected=directed_undirected,
            owner=owner,
            count=np.bincount(directed_undirected, weights=directed_count, minlength=len(owner)).astype(np.int64),
            partners=np.bincount(owner, minlength=n).astype(float),
            fan_in=np.bincount(directed_owner[~directed_send], minlength=n).astype(float),
            fan_out=np.bincount(directed_owner[directed_send], minlength=n).astype(float),
        )

    def row_pair_count(self) -> np.ndarray:
        """Per row: how many rows (both directions) its wallet has with its counterparty (0 if unknown)."""
        out = np.zeros(len(self.has_partner), dtype=np.int64)
        out[self.has_partner] = self.count[self.directed_undirected[self.row_directed]]
        return out

    def top_value_share(self, rows: np.ndarray, values: np.ndarray, n: int) -> np.ndarray:
        """Per wallet: the largest share of the value of `rows` (a row mask) that went to one
        counterparty (rows without one are left out)."""
        keep = rows[self.has_partner]
        per_pair = np.bincount(
            self.row_directed[keep], weights=values[self.has_partner][keep], minlength=len(self.directed_owner)
        )
        top = np.zeros(n)
        np.maximum.at(top, self.directed_owner, per_pair)
        return safe_ratio(top, np.bincount(self.directed_owner, weights=per_pair, minlength=n))
