"""One module per `seisfm` subcommand: each defines ``register(subparsers)``.

Command modules stay light at import time (heavy imports inside ``run``) so ``seisfm --help``
is quick. A new module here is a new subcommand; cli.py needs no edit.
"""


def parse_triple(text, option: str, example: str) -> tuple[int, int, int]:
    """``N`` or ``NI,NX,NT`` (commas or ``x``) -> three positive integers, for --stride, --size and the like."""
    from ..errors import SeisfmError

    try:
        parts = [int(v) for v in str(text).replace(" ", "").replace("x", ",").split(",")]
    except ValueError:
        parts = []
    if len(parts) == 1:
        parts *= 3
    if len(parts) != 3 or min(parts) < 1:
        raise SeisfmError(f"{option} {text!r}: expected one positive integer or three separated by commas (e.g. {example})")
    return tuple(parts)
