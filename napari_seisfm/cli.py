"""The `seisfm` command: headless twins of everything the napari widgets do."""

from __future__ import annotations

import argparse
import importlib
import pkgutil
import re
import sys
import warnings

from . import __version__, commands
from .errors import SeisfmCancelled, SeisfmError
from .extras import missing_extra, require_for_command
from .threads import one_thread_per_worker


class Parser(argparse.ArgumentParser):
    """argparse, with values such as ``-5,0,0`` (an IL,XL,T point of --pos/--neg, a list of numbers) read as
    values: argparse takes a word starting with a minus sign for an option unless it looks like a negative
    number, and its test (``_negative_number_matcher``, set per parser and inherited by the subcommands'
    parsers) knows no commas. No `seisfm` option looks like a negative number, so none is shadowed."""

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self._negative_number_matcher = NEGATIVE_VALUES


NEGATIVE_VALUES = re.compile(r"^-\.?\d[\d.,;xeE+-]*$")  # -5, -0.5, -5,0,0, -1e-3;2;3


def build_parser(command: str | None = None) -> argparse.ArgumentParser:
    """The whole `seisfm` parser; with ``command`` (a subcommand's name) only that subcommand's module is
    imported and registered. Some modules list their choices from the core (`seisfm search` and `segment`
    import the search package and scipy with it: 0.3-0.9 s), so a command never pays for another's."""
    parser = Parser(
        prog="seisfm",
        description="Seismic foundation-model embeddings: inspect cubes, extract features, map similarity, compare codecs.",
    )
    parser.add_argument("--version", action="version", version=f"seisfm {__version__}")
    parser.add_argument("--debug", action="store_true", help="show full tracebacks for unexpected errors")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    names = sorted(info.name for info in pkgutil.iter_modules(commands.__path__))  # module name = command name
    for name in [command] if command in names else names:
        importlib.import_module(f"{commands.__name__}.{name}").register(sub)
    return parser


DEVICES = re.compile(r"^(auto|cpu|mps|cuda(:\d+)?)$")


def check_common(args) -> None:
    """Options shared by several commands, checked before any work starts."""
    device = getattr(args, "device", None)
    if device is not None and not DEVICES.match(str(device)):
        raise SeisfmError(f"--device {device!r}: unknown device; use auto, cpu, cuda, cuda:N or mps")


def one_line_warning(message, category, filename, lineno, file=None, line=None) -> None:
    """Warnings for the user (damaged chunks, headers without geometry) as one line, like the errors."""
    print(f"seisfm: warning: {message}", file=file or sys.stderr)


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    command = next((a for a in argv if not a.startswith("-")), None)  # the subcommand (options come before it)
    args = None
    shown, warnings.showwarning = warnings.showwarning, one_line_warning
    try:
        args = build_parser(command).parse_args(argv)  # option values are checked here (parsing.py converters)
        check_common(args)
        require_for_command(args.command)  # a command that needs an extra says which before it starts
        with one_thread_per_worker():  # the product's thread policy, not OMP_NUM_THREADS (threads.py)
            return int(args.run(args) or 0)
    except SeisfmCancelled as exc:
        print(f"seisfm: cancelled: {exc}", file=sys.stderr)
        return 130
    except KeyboardInterrupt:
        print("seisfm: interrupted", file=sys.stderr)
        return 130
    except SeisfmError as exc:
        print(f"seisfm: error: {exc}", file=sys.stderr)
        return 2
    except BrokenPipeError:  # output piped into `head` and friends
        sys.stderr.close()
        return 0
    except OSError as exc:
        if exc.filename is None or getattr(args, "debug", False):
            return _internal(exc, args)
        # a file the user named cannot be read or written (read-only, permissions, disk full)
        print(f"seisfm: error: {exc.filename}: {exc.strerror or exc}", file=sys.stderr)
        return 2
    except ImportError as exc:
        error = missing_extra(exc, f"seisfm {args.command}")  # an option that needs an extra (extras.py)
        if error is None:
            return _internal(exc, args)
        print(f"seisfm: error: {error}", file=sys.stderr)
        return 2
    except Exception as exc:  # noqa: BLE001
        return _internal(exc, args)
    finally:
        warnings.showwarning = shown  # the CLI is also called in-process (tests, notebooks)


def _internal(exc: Exception, args) -> int:
    if getattr(args, "debug", False):
        raise exc
    print(f"seisfm: internal error: {exc.__class__.__name__}: {exc} (rerun with --debug for details)", file=sys.stderr)
    return 1


if __name__ == "__main__":
    sys.exit(main())
