"""`seisfm segment FEATURES --labels FILE --out FILE [--method NAME]`: segmentation of the whole feature
grid from labelled points, headless (the same segmenters the napari widget uses).

Methods (read-outs): ``linear`` (logistic regression on the standardised vectors and their context, class
probabilities smoothed over ``--smooth`` grid points), ``forest`` (random forest), ``boosting`` (histogram
gradient boosting), ``mlp`` (a small MLP) and ``conv`` (a small convolutional head), all on the same inputs
and with the same smoothing, and ``knn`` (k nearest labelled points vote: the NCS paper's evaluation
protocol). The default was chosen on `seisfm bench`'s dev seeds; docs/quality.md compares them.

Labels: a .npy integer volume on the feature grid or on the cube grid (0 = unlabelled, class ids > 0),
or a CSV with rows ``il,xl,t,class`` (units as --coords; a header line is skipped)."""

from __future__ import annotations

MAX_SMOOTH = 1000.0  # grid points of Gaussian smoothing: far beyond any grid


def register(sub):
    from ..method_names import CONTEXT, DEFAULT_SEGMENTER, SEGMENTERS, SMOOTH
    from ..parsing import real

    p = sub.add_parser("segment", help="segmentation of a feature volume from labelled points", description=__doc__)
    p.add_argument("features", help="feature store (.zarr directory written by `seisfm embed`)")
    p.add_argument(
        "--labels", required=True, metavar="FILE", help=".npy label volume (feature or cube grid) or .csv of il,xl,t,class"
    )
    p.add_argument("--coords", choices=("survey", "cube", "grid"), default="survey", help="units of CSV points (default: survey)")
    p.add_argument("--method", choices=SEGMENTERS, default=DEFAULT_SEGMENTER, help="segmentation method (default: %(default)s)")
    p.add_argument(
        "--smooth",
        type=real(f"--smooth {{value}}: must be 0 to {MAX_SMOOTH:g} grid points", lo=0, hi=MAX_SMOOTH),
        default=SMOOTH,
        help="every method but knn: Gaussian smoothing of the class probabilities, grid points (default: %(default)s; 0: none)",
    )
    p.add_argument(
        "--context",
        default=",".join(f"{c:g}" for c in CONTEXT),
        metavar="S,S",
        help="every method but knn: context scales in grid points, comma separated, or 'none' (default: %(default)s; "
        "scales of 4 or more are computed on a pooled grid)",
    )
    p.add_argument("--k", type=int, default=5, help="knn: neighbours that vote (default: %(default)s)")
    p.add_argument("--weighted", action="store_true", help="knn: weigh votes by 1 / cosine distance")
    p.add_argument(
        "--out",
        required=True,
        metavar="FILE",
        help="class map: .npy/.zarr on the feature grid; .sgy/.segy/.sgz (needs --cube) at full resolution",
    )
    p.add_argument("--probabilities", metavar="FILE", help="also write per-class probabilities (.npy, grid x classes)")
    p.add_argument("--confidence", metavar="FILE", help="also write the confidence map (same formats as --out)")
    p.add_argument(
        "--cube", metavar="CUBE", help="the cube the features came from: checked by fingerprint, needed for SEG-Y/.sgz output"
    )
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
        return support_from_labels(labels, fm.grid, cube_shape=fm.cube_summary.get("shape"), name=str(path))
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


def parse_context(text: str) -> tuple:
    from ..errors import SeisfmError

    if text.strip().lower() in ("", "none", "0"):
        return ()
    try:
        return tuple(float(v) for v in text.split(","))
    except ValueError:
        raise SeisfmError(f"--context: expected comma-separated grid-point scales or 'none', got {text!r}") from None


def check_support(path, fm, points, classes) -> int:
    """Refuse labels that cannot train a segmenter, naming the file: one class, a class with one point.
    Returns the number of usable labelled points."""
    import numpy as np

    from ..errors import SeisfmError

    cls = np.asarray(classes)
    flat = np.ravel_multi_index(tuple(np.asarray(points, int).reshape(-1, 3).T), fm.shape) if len(cls) else np.zeros(0, int)
    keep = (cls > 0) & fm.valid[flat]
    dead = int(((cls > 0) & ~fm.valid[flat]).sum())
    ids, counts = np.unique(cls[keep], return_counts=True)
    if len(ids) < 2:
        why = f" ({dead} labelled point(s) fall on dead traces or invalid embeddings)" if dead else ""
        raise SeisfmError(f"{path}: labels hold {len(ids)} class with valid embeddings{why}; label at least two classes")
    single = [int(c) for c, n in zip(ids, counts) if n < 2]
    if single:
        raise SeisfmError(
            f"{path}: class {', '.join(map(str, single))} has a single labelled point; label at least two per class"
        )
    if dead:
        print(f"seisfm: warning: {path}: {dead} labelled point(s) on dead traces or invalid embeddings are ignored")
    return int(keep.sum())


def run(args) -> int:
    import time
    from pathlib import Path

    from ..errors import SeisfmError
    from ..export import write_array
    from ..io.output import prepare_output
    from ..progress_bar import ProgressBar
    from ..search import FeatureMatrix
    from ..search.output import optional_cube, write_map
    from ..session import ClickToMapSession, SegmentationSettings, run_to_end

    if args.probabilities:
        prob = Path(args.probabilities)
        if prob.suffix.lower() != ".npy":
            raise SeisfmError(f"{prob}: probabilities are written as .npy (grid x classes)")
        if prob.exists() and not prob.is_file():
            raise SeisfmError(f"{prob}: exists and is not a file; choose another name for --probabilities")
        if prob.resolve() in (Path(args.features).resolve(), Path(args.out).resolve()):
            raise SeisfmError(f"{prob}: --probabilities would overwrite the features or the class map")
    for out in (args.out, args.probabilities, args.confidence):  # refuse a bad place before the work
        if out:
            prepare_output(out, folder_ok=Path(out).suffix.lower() == ".zarr")
    cube = optional_cube(args.cube)
    fm = FeatureMatrix.open(args.features, cube=cube)
    points, classes = read_support(args.labels, fm, args.coords)
    n_valid = check_support(args.labels, fm, points, classes)
    if args.method == "knn" and args.k > n_valid:
        raise SeisfmError(f"--k {args.k} is larger than the {n_valid} labelled points with valid embeddings in {args.labels}")
    settings = SegmentationSettings(
        args.method,
        k=args.k,
        weighted=args.weighted,
        smooth=args.smooth,
        context=None if args.method == "knn" else parse_context(args.context),
    )
    session = ClickToMapSession(fm, segmentation=settings)  # the dock's session: the same classes as the dock
    t0 = time.perf_counter()
    with ProgressBar(args.method, "pt", unit_scale=True) as bar:
        result = run_to_end(session.segment(points, classes, progress=bar))
    dt = time.perf_counter() - t0
    out = write_map(args.out, result.classes, fm, cube=cube, labels=True, full_resolution=args.full_resolution)
    if args.probabilities:
        write_array(args.probabilities, result.probabilities)
    if args.confidence:
        write_map(args.confidence, result.confidence, fm, cube=cube, full_resolution=args.full_resolution)
    counts = {c: int((result.classes == c).sum()) for c in result.class_ids}
    how = (
        f"k={args.k}{' weighted' if args.weighted else ''}"
        if args.method == "knn"
        else f"smooth {args.smooth:g}, context {args.context}"
    )
    print(
        f"{fm}: {n_valid} support points, classes {list(result.class_ids)}, {args.method} ({how}), "
        f"{dt:.2f} s -> {out}; grid points per class {counts}"
    )
    return 0
