"""Interpretation quality on synthetic cubes (click-to-map IoU/AUC, kNN mIoU); prints JSON.

    .venv/bin/python benchmarks/quality.py --sizes 128 --seeds 0,1,2

The protocol and the code live in napari_seisfm/bench.py; docs/quality.md has the table.
"""

from napari_seisfm.bench import main

if __name__ == "__main__":
    raise SystemExit(main())
