"""The scoring service every door calls (scoring_service.py)."""
