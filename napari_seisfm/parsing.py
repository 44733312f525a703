"""Values typed by a user, parsed the same way by the `seisfm` options and the dock widgets' fields."""

from __future__ import annotations

from .errors import SeisfmError


def parse_triple(text, option: str, example: str) -> tuple[int, int, int]:
    """``N`` or ``NI,NX,NT`` (commas or ``x``) -> three positive integers, for --stride, --size and the like."""
    try:
        parts = [int(v) for v in str(text).replace(" ", "").replace("x", ",").split(",")]
    except ValueError:
        parts = []
    if len(parts) == 1:
        parts *= 3
    if len(parts) != 3 or min(parts) < 1:
        raise SeisfmError(f"{option} {text!r}: expected one positive integer or three separated by commas (e.g. {example})")
    return tuple(parts)


def parse_point(text) -> list[float]:
    """``IL,XL,T`` (commas or semicolons) -> three numbers, for --pos / --neg of `seisfm search` and `library search`."""
    try:
        vals = [float(v) for v in str(text).replace(";", ",").split(",")]
    except ValueError:
        vals = []
    if len(vals) != 3:
        raise SeisfmError(f"point {text!r}: expected three numbers IL,XL,T")
    return vals
