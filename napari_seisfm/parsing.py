"""Values typed by a user, parsed the same way by the `seisfm` options and the dock widgets' fields.

The ``parse_*`` functions take text and return values; the converters (:func:`triple`, :func:`point`,
:func:`integer`, :func:`real`) wrap them for argparse's ``type=``, so a `seisfm` command's options are
checked while the command line is parsed, before ``run`` starts any work. A value out of range is a
one-line :class:`SeisfmError` (``seisfm: error: ...``, exit 2), as before; text that is no number at all
stays argparse's own usage error ("invalid int value"), as with ``type=int``.
"""

from __future__ import annotations

import math
from collections.abc import Callable

from .errors import SeisfmError


def parse_triple(text, option: str, example: str, *, minimum: int | None = 1, single: bool = True) -> tuple[int, int, int]:
    """``N`` or ``NI,NX,NT`` (commas or ``x``) -> three integers of at least ``minimum`` (None: any), for
    --stride, --size, --origin, --blockshape and the like; ``single=False``: three values are needed."""
    try:
        parts = [int(v) for v in str(text).replace(" ", "").replace("x", ",").split(",")]
    except ValueError:
        parts = []
    if len(parts) == 1 and single:
        parts *= 3
    if len(parts) != 3 or (minimum is not None and min(parts) < minimum):
        what = {1: "positive integer", 0: "non-negative integer"}.get(minimum, "integer")
        expected = f"one {what} or three separated by commas" if single else f"three {what}s separated by commas"
        raise SeisfmError(f"{option} {text!r}: expected {expected} (e.g. {example})")
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


def _named(name: str, convert: Callable) -> Callable:
    convert.__name__ = name  # argparse names the type in its own messages ("invalid int value: 'x'")
    return convert


def triple(option: str, example: str, **kw) -> Callable[[str], tuple[int, int, int]]:
    """argparse ``type=`` for :func:`parse_triple`."""
    return _named("triple", lambda text: parse_triple(text, option, example, **kw))


def point(text: str) -> list[float]:
    """argparse ``type=`` for :func:`parse_point` (a value may start with a minus sign: see ``cli.Parser``)."""
    return parse_point(text)


def integer(message: str, lo: int | None = None, hi: int | None = None) -> Callable[[str], int]:
    """argparse ``type=``: an integer from ``lo`` to ``hi`` (None: unbounded); outside, a SeisfmError of
    ``message`` formatted with ``value``, ``lo`` and ``hi``."""

    def convert(text: str) -> int:
        value = int(text)  # ValueError: argparse's "invalid int value"
        if (lo is not None and value < lo) or (hi is not None and value > hi):
            raise SeisfmError(message.format(value=value, lo=lo, hi=hi))
        return value

    return _named("int", convert)


def real(message: str, lo: float | None = None, hi: float | None = None, *, above: float | None = None) -> Callable[[str], float]:
    """argparse ``type=``: a finite number from ``lo`` to ``hi`` (and greater than ``above``); anything else
    (NaN and infinities included), a SeisfmError of ``message`` formatted with ``value``, ``lo`` and ``hi``."""

    def convert(text: str) -> float:
        value = float(text)  # ValueError: argparse's "invalid float value"
        bad = (
            not math.isfinite(value)
            or (lo is not None and value < lo)
            or (hi is not None and value > hi)
            or (above is not None and value <= above)
        )
        if bad:
            raise SeisfmError(message.format(value=value, lo=lo, hi=hi))
        return value

    return _named("float", convert)
