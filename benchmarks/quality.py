"""Interpretation quality: the same as `seisfm bench` (tables by default, --json for JSON).

    .venv/bin/python benchmarks/quality.py --seeds report --out docs/bench

The protocols and the suite live in napari_seisfm/quality/; docs/quality.md has the tables.
"""

import sys

from napari_seisfm.cli import main

if __name__ == "__main__":
    raise SystemExit(main(["bench", *sys.argv[1:]]))
