from defi_scoring.assets.ingestion import transaction_batches
from defi_scoring.assets.scoring import reference_scores, scored_wallets, wallet_features

__all__ = ["reference_scores", "scored_wallets", "transaction_batches", "wallet_features"]
