"""FastAPI scoring service (`defi-scoring serve`)."""
