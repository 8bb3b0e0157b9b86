"""`python -m telemeeting.client …`: the client subcommands and `demo`, without the server CLI.

Handy where only the SDK matters; `telemeeting client …` and `telemeeting demo` are the same.
"""

from telemeeting.client.cli import client_cli, demo

client_cli.command("demo")(demo)
client_cli()
