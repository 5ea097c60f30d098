"""One module per schema revision of the score store, oldest first."""
