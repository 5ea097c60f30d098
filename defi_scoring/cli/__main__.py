"""`python -m defi_scoring.cli`."""

from defi_scoring.cli import main

main()
