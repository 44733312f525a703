"""The `seisfm` command: headless twins of everything the napari widgets do."""

from __future__ import annotations

import argparse
import importlib
import pkgutil
import sys

from . import __version__, commands
from .errors import SeisfmCancelled, SeisfmError


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="seisfm",
        description="Seismic foundation-model embeddings: inspect cubes, extract features, map similarity, compare codecs.",
    )
    parser.add_argument("--version", action="version", version=f"seisfm {__version__}")
    parser.add_argument("--debug", action="store_true", help="show full tracebacks for unexpected errors")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for info in sorted(pkgutil.iter_modules(commands.__path__), key=lambda m: m.name):
        importlib.import_module(f"{commands.__name__}.{info.name}").register(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
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
    except Exception as exc:
        if args.debug:
            raise
        print(f"seisfm: internal error: {exc.__class__.__name__}: {exc} (rerun with --debug for details)", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
