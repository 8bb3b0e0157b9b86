"""`python -m telemeeting` is the `telemeeting` command."""

from telemeeting.cli import main

main()
