"""Pydantic models of every message that crosses the system's edges (CONTRACTS.md §1–3).

Input models are tolerant where the contract says so (a missing token or amount counts 0, unknown
extra fields are ignored) and strict where a wrong value would silently change a score (negative or
non-finite USD amounts, timestamps outside the blockchain era, unknown DEX actions).
"""

from __future__ import annotations

import re
from typing import Annotated, Any, Literal

from pydantic import (
    BaseModel,
    ConfigDict,
    Discriminator,
    Field,
    Tag,
    field_validator,
)

# Ethereum mainnet genesis (2015-07-30) .. 2100-01-01: anything outside is a unit error
# (milliseconds, microseconds) or garbage, never a real on-chain timestamp.
MIN_TIMESTAMP = 1_438_214_400
MAX_TIMESTAMP = 4_102_444_800

ADDRESS_PATTERN = re.compile(r"^0x[0-9a-fA-F]{40}$")
MAX_MESSAGE_BYTES = 5_000_000  # a longer message is refused unparsed (docs/bad_input.md row 3)

DEX_ACTIONS = ("swap", "deposit", "withdraw")
TRANSFER_ACTIONS = ("send", "receive")
LENDING_ACTIONS = ("deposit", "withdraw", "borrow", "repay", "liquidation")
ACTIONS_BY_TYPE = {"dexes": DEX_ACTIONS, "transfers": TRANSFER_ACTIONS, "lending": LENDING_ACTIONS}

NonNegativeUsd = Annotated[float, Field(ge=0, allow_inf_nan=False)]
NonNegativeNumber = Annotated[float, Field(ge=0, allow_inf_nan=False)]
Timestamp = Annotated[int, Field(ge=MIN_TIMESTAMP, le=MAX_TIMESTAMP)]


class _InputModel(BaseModel):
    model_config = ConfigDict(extra="ignore", frozen=False)


class Token(_InputModel):
    """One side of a swap or an LP position; every field may be missing (counts 0 / unknown)."""

    amount: float | None = None
    amountUSD: NonNegativeUsd | None = None
    address: str | None = None
    symbol: str | None = None


class DexTransaction(_InputModel):
    """A swap, deposit or withdraw on a DEX (CONTRACTS.md §1)."""

    document_id: Annotated[str, Field(min_length=1, max_length=256)]
    action: Literal["swap", "deposit", "withdraw"]
    timestamp: Timestamp
    caller: str | None = None
    protocol: str | None = None
    poolId: str | None = None
    poolName: str | None = None
    tokenIn: Token | None = None
    tokenOut: Token | None = None
    token0: Token | None = None
    token1: Token | None = None


class Asset(_InputModel):
    """A token moved by a transfer or a lending action (CONTRACTS.md §1b): the amount in token units
    must be a finite number >= 0 when given (a negative amount is a sign error, not a direction)."""

    amount: NonNegativeNumber | None = None
    amountUSD: NonNegativeUsd | None = None
    address: str | None = None
    symbol: str | None = None


class TransferTransaction(_InputModel):
    """An ETH or token transfer as seen from the wallet (CONTRACTS.md §1b)."""

    document_id: Annotated[str, Field(min_length=1, max_length=256)]
    action: Literal["send", "receive"]
    timestamp: Timestamp
    counterparty: Annotated[str, Field(min_length=1)]
    token: Asset | None = None
    method: str | None = None
    failed: Annotated[bool, Field(strict=True)] | None = None
    gasUsed: NonNegativeNumber | None = None
    gasPrice: NonNegativeNumber | None = None


class LendingTransaction(_InputModel):
    """A lending-market action (CONTRACTS.md §1b); a liquidation carries collateral, debt and liquidator."""

    document_id: Annotated[str, Field(min_length=1, max_length=256)]
    action: Literal["deposit", "withdraw", "borrow", "repay", "liquidation"]
    timestamp: Timestamp
    protocol: str | None = None
    asset: Asset | None = None
    collateral: Asset | None = None
    debt: Asset | None = None
    liquidator: str | None = None


class DexSection(_InputModel):
    protocolType: Literal["dexes"]
    transactions: list[DexTransaction]


class TransfersSection(_InputModel):
    protocolType: Literal["transfers"]
    transactions: list[TransferTransaction]


class LendingSection(_InputModel):
    protocolType: Literal["lending"]
    transactions: list[LendingTransaction]


class OtherSection(_InputModel):
    """A protocol type without features yet (nft, staking, …): ignored with a warning."""

    protocolType: str
    transactions: list[dict[str, Any]] = Field(default_factory=list)


def _section_tag(section: Any) -> str:
    protocol_type = section.get("protocolType") if isinstance(section, dict) else None
    return protocol_type if protocol_type in ACTIONS_BY_TYPE else "other"


ProtocolSection = Annotated[
    Annotated[DexSection, Tag("dexes")]
    | Annotated[TransfersSection, Tag("transfers")]
    | Annotated[LendingSection, Tag("lending")]
    | Annotated[OtherSection, Tag("other")],
    Discriminator(_section_tag),
]


class WalletTransactionsMessage(_InputModel):
    """The input message: one wallet and its transactions grouped by protocol type."""

    wallet_address: str
    data: list[ProtocolSection]

    @field_validator("wallet_address")
    @classmethod
    def _is_evm_address(cls, value: str) -> str:
        if not ADDRESS_PATTERN.match(value):
            raise ValueError("must be a 0x-prefixed 40-hex-digit address")
        return value


# --------------------------------------------------------------------------------------------
# Output messages (CONTRACTS.md §2–3). Extra fields are additive and allowed.


class _OutputModel(BaseModel):
    model_config = ConfigDict(extra="allow")


class CategoryScore(_OutputModel):
    category: str
    score: float
    transaction_count: int
    features: dict[str, float | int]


class Recommendation(_OutputModel):
    """What to do about one detected manipulation pattern (additive field `recommendations`)."""

    pattern: str = Field(description="the detected pattern, as in `patterns`")
    action: str = Field(description="short action id, e.g. exit_positions")
    severity: str = Field(
        description="critical (the alert severity of high_risk_pattern): the pattern raised the high-risk alert; "
        "warning: it counts towards the score; info: detected below the counting threshold"
    )
    text: str = Field(description="the recommendation as a sentence")


class SuccessMessage(_OutputModel):
    wallet_address: str
    zscore: str
    timestamp: int
    processing_time_ms: int
    categories: list[CategoryScore]
    # Additive (CONTRACTS.md §2): one per detected pattern, [] when none; absent from older messages.
    recommendations: list[Recommendation] | None = None


class CategoryFailure(_OutputModel):
    category: str
    error: str
    transaction_count: int


class FailureMessage(_OutputModel):
    wallet_address: str
    error: str
    timestamp: int
    processing_time_ms: int
    categories: list[CategoryFailure] = Field(default_factory=list)
