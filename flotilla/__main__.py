"""`python -m flotilla` is the `flotilla` command."""

from flotilla.cli import main

main()
