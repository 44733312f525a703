"""One module per `seisfm` subcommand: each defines ``register(subparsers)``.

Command modules stay light at import time (heavy imports inside ``run``) so ``seisfm --help``
is quick. A new module here is a new subcommand; cli.py needs no edit.
"""
