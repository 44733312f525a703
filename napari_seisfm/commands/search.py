"""`seisfm search FEATURES --pos IL,XL,T ... [--neg ...] --out FILE`: the click-to-map map, headless
(the same ClickToMapSession the napari dock is a view of).

Decisions: ``probe`` (a logistic regression fitted to the clicks and a sample of background points; the
map is the target's probability, 0.5 its threshold), ``mlp`` (the same training set fed to a small MLP on
the vectors and their context once there are 2 positive and 1 negative clicks; the probe before that) or
``centroid`` (mean cosine to the positive clicks minus mean cosine to the negatives). The default was
chosen on `seisfm bench`'s dev seeds (docs/quality.md). ``--mask`` also writes what the widget shows as
"similarity > threshold": the default threshold and, unless ``--all-bodies``, only the bodies connected
to the positive clicks."""

from __future__ import annotations


def register(sub):
    from ..method_names import DECISIONS, DEFAULT_DECISION
    from ..parsing import integer, point, real

    p = sub.add_parser("search", help="target map of a feature volume from positive/negative example points", description=__doc__)
    p.add_argument("features", help="feature store (.zarr directory written by `seisfm embed`)")
    p.add_argument("--pos", action="append", default=[], type=point, metavar="IL,XL,T", help="positive example (repeat)")
    p.add_argument("--neg", action="append", default=[], type=point, metavar="IL,XL,T", help="negative example (repeat)")
    p.add_argument(
        "--coords",
        choices=("survey", "cube", "grid"),
        default="survey",
        help="units of --pos/--neg: survey (inline, crossline, time/depth; default), cube sample indices or feature-grid indices",
    )
    p.add_argument(
        "--out",
        required=True,
        metavar="FILE",
        help=".npy/.zarr on the feature grid; .sgy/.segy/.sgz (needs --cube) at full resolution",
    )
    p.add_argument(
        "--cube", metavar="CUBE", help="the cube the features came from: checked by fingerprint, needed for SEG-Y/.sgz output"
    )
    p.add_argument("--full-resolution", action="store_true", help="write .npy/.zarr on the cube grid too (needs --cube)")
    p.add_argument(
        "--top",
        type=integer("--top must be 0 or more, got {value}", lo=0),
        default=20,
        metavar="N",
        help="print the N best matches (default: %(default)s; 0: none)",
    )
    p.add_argument(
        "--radius",
        type=integer("--radius must be 0 or more grid points, got {value}", lo=0),
        default=2,
        help="non-maximum suppression radius of the match list, in grid points",
    )
    p.add_argument("--decision", choices=DECISIONS, default=DEFAULT_DECISION, help="decision rule (default: %(default)s)")
    p.add_argument("--mask", metavar="FILE", help="also write the thresholded map (same formats as --out)")
    p.add_argument(
        "--threshold",
        type=real("--threshold {value}: must be a finite number"),
        default=None,
        help="threshold of --mask (default: the decision's own: 0.5 for the probe)",
    )
    p.add_argument(
        "--all-bodies",
        action="store_true",
        help="--mask keeps every body above the threshold, not only those connected to the positive clicks",
    )
    p.add_argument("--kernel", default="auto", choices=("auto", "simsimd", "numkong", "numpy"), help="dot-product kernel")
    p.set_defaults(run=run)


def run(args) -> int:
    import json
    import time

    from ..errors import SeisfmError
    from ..io.output import prepare_output
    from ..search import FeatureMatrix
    from ..search.output import optional_cube, write_map
    from ..session import ClickToMapSession

    if not args.pos:
        raise SeisfmError("add a positive click first: give at least one --pos IL,XL,T")
    pos, neg = args.pos, args.neg
    for out in (args.out, args.mask):  # refuse a bad place before the work
        if out:
            prepare_output(out, folder_ok=str(out).lower().endswith(".zarr"))
    cube = optional_cube(args.cube)
    t0 = time.perf_counter()
    fm = FeatureMatrix.open(args.features, cube=cube)
    t_load = time.perf_counter() - t0
    session = ClickToMapSession(
        fm,
        decision=args.decision,
        kernel=args.kernel,
        connected=not args.all_bodies,
        n_matches=args.top,
        match_radius=args.radius,
    )
    refused = session.set_clicks(pos, neg, space=args.coords)
    if refused:
        raise SeisfmError(refused[0])
    if args.threshold is not None:
        session.set_threshold(args.threshold)
    t0 = time.perf_counter()
    result = session.update()
    t_map = time.perf_counter() - t0
    out = write_map(args.out, result.score, fm, cube=cube, full_resolution=args.full_resolution)
    if args.mask:
        write_map(args.mask, result.mask, fm, cube=cube, labels=True, full_resolution=args.full_resolution)
        print(
            f"mask at threshold {result.threshold:.3f}{'' if args.all_bodies else ', bodies connected to the clicks'}: "
            f"{int(result.mask.sum())} grid points -> {args.mask}"
        )
    print(
        f"{fm}: {args.decision} map {result.score.shape} with {len(pos)} positive / {len(neg)} negative clicks "
        f"(kernel {session.kernel_name}, load {t_load:.2f} s, map + matches + mask {1e3 * t_map:.0f} ms) -> {out}"
    )
    for m in result.matches:
        where = "" if m.survey is None else f"  inline {m.survey[0]:g} crossline {m.survey[1]:g} time {m.survey[2]:g}"
        print(json.dumps({"rank": m.rank, "grid": m.grid_index, "cube": m.cube_index, "score": round(m.score, 4)}) + where)
    return 0
