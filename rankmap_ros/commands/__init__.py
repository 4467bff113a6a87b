"""Subcommands of `rankmap`, one module per area; each has register(subparsers, experiments)."""
