"""One module per `minivivit` subcommand, each with `add_parser(subparsers)` and `run(args) -> int`.

Modules import heavy dependencies inside `run`, so `minivivit --help` stays fast.
"""
