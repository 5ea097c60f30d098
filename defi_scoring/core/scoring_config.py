"""`scoring.yaml`, validated: dimensions, factor weights, risk bands, ML rules, patterns, alerts.

A typo in a factor name or a band that can never be reached fails at load time with the field at
fault, not halfway through a scoring run.
"""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from defi_scoring.core.config_files import load_validated


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class DimensionConfig(_Strict):
    weight: float = Field(ge=0)
    factors: dict[str, float]

    @field_validator("factors")
    @classmethod
    def _positive_weights(cls, factors: dict[str, float]) -> dict[str, float]:
        if not factors:
            raise ValueError("a dimension needs at least one factor")
        bad = {k: v for k, v in factors.items() if v < 0}
        if bad:
            raise ValueError(f"factor weights must be >= 0, got {bad}")
        return factors


class Anchor(_Strict):
    """Feature values that score 0 (`bad`) and 100 (`good`) for an anchored factor."""

    bad: float
    good: float
    source: str = "hand-set"  # where the values come from (e.g. the labelled accounts they were fitted on)


class RiskBand(_Strict):
    name: str
    min_score: float = Field(ge=0, le=100)


class ThinHistoryConfig(_Strict):
    min_transactions: int = Field(3, ge=1)
    confidence_cap: float = Field(0.35, ge=0, le=0.5)


class MlAdjustmentConfig(_Strict):
    scale: float = Field(0.3, ge=0)
    cap: float = Field(15.0, ge=0)
    confidence_gate: float = Field(0.8, ge=0, le=1)
    anomaly_threshold: float = Field(0.8, ge=0, le=1)
    anomaly_penalty: float = Field(10.0, ge=0)
    model_confidence_weight: float = Field(0.4, ge=0, le=1)
    no_model_confidence_factor: float = Field(0.8, ge=0, le=1)
    # a wallet some ensemble member could not score (its error degraded the wallet to fewer members or none)
    degraded_confidence_factor: float = Field(0.8, ge=0, le=1)


class _Detector(_Strict):
    risk: float = Field(80, ge=0, le=100)


class WashTradingConfig(_Detector):
    min_swaps: int = 10


class MevBotConfig(_Detector):
    min_swaps: int = 10


class SybilConfig(_Detector):
    min_transactions: int = 3
    min_peers: int = 2


class RugPullConfig(_Detector):
    min_deposit_usd: float = Field(10_000, gt=0)
    min_withdraw_ratio: float = Field(0.8, ge=0, lt=1)
    max_exit_hours: float = Field(72, gt=0)
    # Population evidence: the pulled position held at least this share of its pool's liquidity…
    min_pool_share: float = Field(0.5, gt=0, le=1)
    # …while at least this many other wallets traded in the pool or provided liquidity to it.
    min_other_wallets: int = Field(3, ge=1)


class PumpAndDumpConfig(_Detector):
    window_hours: float = 2
    min_wallets: int = 6
    lift: float = 4.0
    dump_hours: float = 48


class FanInCollectorConfig(_Detector):
    min_senders: int = 30
    min_fan_ratio: float = 1.0  # log1p(senders) − log1p(recipients)


class PatternsConfig(_Strict):
    min_confidence: float = Field(0.6, ge=0, le=1)
    wash_trading: WashTradingConfig = WashTradingConfig()
    mev_bot: MevBotConfig = MevBotConfig()
    sybil_cluster: SybilConfig = SybilConfig()
    rug_pull: RugPullConfig = RugPullConfig()
    pump_and_dump: PumpAndDumpConfig = PumpAndDumpConfig()
    fan_in_collector: FanInCollectorConfig = FanInCollectorConfig()


class RecommendationConfig(_Strict):
    """What a user of the score should do about a detected pattern: a short action id and a sentence."""

    action: str = Field(pattern=r"^[a-z][a-z0-9_]*$")
    text: str = Field(min_length=1)


DEFAULT_RECOMMENDATIONS = {
    "rug_pull": RecommendationConfig(
        action="exit_positions",
        text="Exit positions in pools this wallet controls and do not provide liquidity to them: it has pulled "
        "the liquidity it dominated out of a pool that others were using.",
    ),
    "pump_and_dump": RecommendationConfig(
        action="avoid_pump_window",
        text="Avoid trading the token during the pump window: this wallet bought and dumped it together with "
        "many others.",
    ),
    "wash_trading": RecommendationConfig(
        action="discount_volume",
        text="Treat this wallet's trading volume as unreliable: it trades back and forth with itself.",
    ),
    "sybil_cluster": RecommendationConfig(
        action="review_community_metrics",
        text="Treat community metrics involving this wallet (airdrops, votes, user counts) as compromised: it "
        "acts in lockstep with other wallets.",
    ),
    "mev_bot": RecommendationConfig(
        action="use_protected_execution",
        text="Route other users' trades through protected execution (a private mempool or MEV protection): "
        "this wallet trades like an MEV bot.",
    ),
    "fan_in_collector": RecommendationConfig(
        action="block_transfers",
        text="Do not send funds to this address: it collects from many addresses and forwards to few, as "
        "phishing and scam collectors do.",
    ),
}


class ReasonsConfig(_Strict):
    top_factors: int = Field(3, ge=1, le=10)
    top_model_features: int = Field(2, ge=0, le=10)


class AlertsConfig(_Strict):
    score_drop_points: float = Field(15, gt=0)
    low_confidence: float = Field(0.3, ge=0, le=1)
    high_risk_pattern_score: float = Field(70, ge=0, le=100)
    severities: dict[str, str] = Field(
        default_factory=lambda: {"high_risk_pattern": "critical", "score_drop": "warning", "low_confidence": "info"}
    )


DEFAULT_SEVERITIES = {
    "sanctioned": 100.0,
    "exploit": 90.0,
    "phishing": 80.0,
    "scam": 70.0,
    "mixer": 60.0,
    "other-risk": 25.0,
    "benign-context": 0.0,
    "exchange": 0.0,
    "bridge": 0.0,
    "mev-bot": 0.0,
}


class ExposureFloors(_Strict):
    """Least risk level per category: of a wallet that is itself listed (`owner`), or that dealt
    with a listed address directly (`direct`)."""

    owner: dict[str, str] = Field(default_factory=lambda: {"sanctioned": "critical"})
    direct: dict[str, str] = Field(default_factory=lambda: {"sanctioned": "high"})


class ExposureConfig(_Strict):
    """Counterparty exposure (core/exposure.py): category severities, hop decay, strength of a link,
    its weight as a dimension of the hybrid score, and the risk floors of sanctioned links."""

    weight: float = Field(1.0, ge=0)  # of the exposure dimension, against the behaviour dimensions
    severities: dict[str, float] = Field(default_factory=lambda: dict(DEFAULT_SEVERITIES))
    unknown_severity: float = Field(25.0, ge=0, le=100)  # a category missing from `severities`
    hop_decay: float = Field(0.5, gt=0, le=1)  # an indirect link at h hops counts decay**h
    direct_floor: float = Field(0.6, ge=0, le=1)  # strength of a single small link (share → 0)
    full_share: float = Field(0.25, gt=0, le=1)  # share of the wallet's volume at full strength
    max_hops: int = Field(2, ge=0, le=2)
    max_intermediate_degree: int = Field(1000, ge=1)  # hubs (services) pass no exposure on
    risk_floors: ExposureFloors = ExposureFloors()
    critical_level: str = "critical"  # a level worse than every band of `risk_levels`
    critical_max_score: float = Field(10.0, ge=0, le=100)  # hybrid score cap of that level
    alert_score: float = Field(50.0, ge=0, le=100)  # exposure score that raises an exposure alert
    max_items: int = Field(5, ge=1, le=50)  # entries per list in a message's `exposure` object

    @field_validator("severities")
    @classmethod
    def _in_range(cls, severities: dict[str, float]) -> dict[str, float]:
        bad = {k: v for k, v in severities.items() if not 0 <= v <= 100}
        if bad:
            raise ValueError(f"severities must be within 0-100, got {bad}")
        return severities

    def severity(self, category: str) -> float:
        return self.severities.get(category, self.unknown_severity)


class ScoringConfig(_Strict):
    dimensions: dict[str, DimensionConfig]
    risk_levels: list[RiskBand]
    anchors: dict[str, Anchor] = Field(default_factory=dict)
    thin_history: ThinHistoryConfig = ThinHistoryConfig()
    ml_adjustment: MlAdjustmentConfig = MlAdjustmentConfig()
    patterns: PatternsConfig = PatternsConfig()
    reasons: ReasonsConfig = ReasonsConfig()
    alerts: AlertsConfig = AlertsConfig()
    exposure: ExposureConfig = ExposureConfig()
    # per pattern; a pattern not listed keeps its default (an older copy of this file still loads)
    recommendations: dict[str, RecommendationConfig] = Field(default_factory=lambda: dict(DEFAULT_RECOMMENDATIONS))

    @field_validator("recommendations")
    @classmethod
    def _known_patterns(cls, given: dict[str, RecommendationConfig]) -> dict[str, RecommendationConfig]:
        unknown = sorted(set(given) - set(DEFAULT_RECOMMENDATIONS))
        if unknown:
            raise ValueError(
                f"recommendations for unknown pattern(s) {unknown}; known: {sorted(DEFAULT_RECOMMENDATIONS)}"
            )
        return {**DEFAULT_RECOMMENDATIONS, **given}

    @model_validator(mode="after")
    def _check(self) -> ScoringConfig:
        from defi_scoring.core.factors import FACTORS  # the registry is the source of valid names

        unknown = sorted({f for d in self.dimensions.values() for f in d.factors} - set(FACTORS))
        if unknown:
            raise ValueError(f"unknown factor(s) {unknown}; known factors: {sorted(FACTORS)}")
        unanchored = sorted(
            f for d in self.dimensions.values() for f in d.factors if FACTORS[f].anchored and f not in self.anchors
        )
        if unanchored:
            raise ValueError(
                f"factor(s) {unanchored} need `anchors` (bad/good values); "
                "run bench/calibrate_factors.py on labelled accounts to fit them"
            )
        if not self.dimensions or sum(d.weight for d in self.dimensions.values()) <= 0:
            raise ValueError("at least one dimension with a positive weight is required")
        minimums = [b.min_score for b in self.risk_levels]
        if not minimums or minimums != sorted(minimums, reverse=True) or minimums[-1] != 0:
            raise ValueError("risk_levels must be ordered from the highest min_score down to a band at 0")
        levels = {b.name for b in self.risk_levels} | {self.exposure.critical_level}
        floors = self.exposure.risk_floors
        unknown_levels = sorted({v for v in (*floors.owner.values(), *floors.direct.values())} - levels)
        if unknown_levels:
            raise ValueError(f"exposure.risk_floors name unknown level(s) {unknown_levels}; known: {sorted(levels)}")
        if "exposure" in self.dimensions:
            raise ValueError("`exposure` is configured in its own section, not as a dimension")
        return self

    @property
    def factor_names(self) -> list[str]:
        return [f for d in self.dimensions.values() for f in d.factors]


def load_scoring_config(path: str | Path | None = None) -> ScoringConfig:
    """Read and validate a scoring YAML (default: see `config_files.resolve_config`)."""
    return load_validated("scoring.yaml", ScoringConfig, path)


@lru_cache(maxsize=4)
def default_scoring_config() -> ScoringConfig:
    return load_scoring_config()
