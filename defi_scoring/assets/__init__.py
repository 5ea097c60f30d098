from defi_scoring.assets.ingestion import transaction_batches
from defi_scoring.assets.scoring import reference_scores, wallet_features

__all__ = ["transaction_batches", "wallet_features", "reference_scores"]
