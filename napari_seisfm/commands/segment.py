"""`seisfm segment FEATURES --labels FILE --k 5 --out FILE`: kNN segmentation of the whole feature grid
from labelled points, headless (the same KnnSegmenter the napari widget uses).

Labels: a .npy integer volume on the feature grid or on the cube grid (0 = unlabelled, class ids > 0),
or a CSV with rows ``il,xl,t,class`` (units as --coords; a header line is skipped)."""

from __future__ import annotations


def register(sub):
    p = sub.add_parser("segment", help="kNN segmentation of a feature volume from labelled points", description=__doc__)
    p.add_argument("features", help="feature store (.zarr directory written by `seisfm embed`)")
    p.add_argument("--labels", required=True, metavar="FILE", help=".npy label volume (feature or cube grid) or .csv of il,xl,t,class")
    p.add_argument("--coords", choices=("survey", "cube", "grid"), default="survey", help="units of CSV points (default: survey)")
    p.add_argument("--k", type=int, default=5, help="neighbours that vote (default: %(default)s)")
    p.add_argument("--weighted", action="store_true", help="weigh votes by 1 / cosine distance")
    p.add_argument("--out", required=True, metavar="FILE", help="class map: .npy/.zarr on the feature grid; .sgy/.segy/.sgz (needs --cube) at full resolution")
    p.add_argument("--probabilities", metavar="FILE", help="also write per-class probabilities (.npy, grid x classes)")
    p.add_argument("--confidence", metavar="FILE", help="also write the confidence map (same formats as --out)")
    p.add_argument("--cube", metavar="CUBE", help="the cube the features came from: checked by fingerprint, needed for SEG-Y/.sgz output")
    p.add_argument("--full-resolution", action="store_true", help="write .npy/.zarr on the cube grid too (needs --cube)")
    p.set_defaults(run=run)


def read_support(path, fm, coords: str = "survey"):
    """Labels FILE -> (grid indices, classes) on ``fm``'s grid."""
    from pathlib import Path

    import numpy as np

    from ..errors import SeisfmError
    from ..search import support_from_labels, support_from_points

    path = Path(path)
    if not path.exists():
        raise SeisfmError(f"{path}: no such labels file")
    if path.suffix.lower() == ".npy":
        try:
            labels = np.load(path, mmap_mode="r", allow_pickle=False)
        except ValueError as exc:
            raise SeisfmError(f"{path}: not a readable .npy array ({exc})") from None
        return support_from_labels(labels, fm.grid, cube_shape=fm.geometry.get("shape"), name=str(path))
    if path.suffix.lower() == ".csv":
        rows = []
        for n, line in enumerate(path.read_text().splitlines(), 1):
            parts = [p.strip() for p in line.split(",")]
            if not line.strip() or line.lstrip().startswith("#"):
                continue
            try:
                rows.append([float(p) for p in parts])
            except ValueError:
                if rows or n > 1:
                    raise SeisfmError(f"{path}:{n}: expected il,xl,t,class numbers, got {line!r}") from None
                continue  # header
            if len(rows[-1]) != 4:
                raise SeisfmError(f"{path}:{n}: expected 4 values il,xl,t,class, got {len(parts)}")
        if not rows:
            raise SeisfmError(f"{path}: no labelled points")
        arr = np.asarray(rows)
        return support_from_points(fm, arr[:, :3], arr[:, 3].astype(int), space=coords)
    raise SeisfmError(f"{path}: labels must be a .npy volume or a .csv of il,xl,t,class")


def run(args) -> int:
    import time

    import numpy as np
    from tqdm import tqdm

    from ..search import FeatureMatrix, KnnSegmenter
    from ..search.output import open_cube_for, write_map

    cube = open_cube_for(args.features, args.cube)
    fm = FeatureMatrix.open(args.features, cube=cube)
    points, classes = read_support(args.labels, fm, args.coords)
    seg = KnnSegmenter(fm, points, classes, k=args.k, weighted=args.weighted)
    t0 = time.perf_counter()
    with tqdm(total=fm.grid.size, unit="pt", unit_scale=True, desc="kNN") as bar:
        result = seg.segment(progress=lambda done, total: bar.update(done - bar.n))
    dt = time.perf_counter() - t0
    out = write_map(args.out, result.classes, fm, cube=cube, labels=True, full_resolution=args.full_resolution)
    if args.probabilities:
        np.save(args.probabilities, result.probabilities)
    if args.confidence:
        write_map(args.confidence, result.confidence, fm, cube=cube, full_resolution=args.full_resolution)
    counts = {c: int((result.classes == c).sum()) for c in result.class_ids}
    print(f"{fm}: {seg.n_support} support points, classes {list(result.class_ids)}, k={args.k}"
          f"{' weighted' if args.weighted else ''}, {dt:.2f} s -> {out}; grid points per class {counts}")
    return 0
