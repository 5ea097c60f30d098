"""The registered model's aliases (MLflow 3: aliases, not stages), apart so that reading them needs no MLflow."""

CHALLENGER, CHAMPION, ROLLBACK = "challenger", "champion", "rollback"
