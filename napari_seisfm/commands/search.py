"""`seisfm search FEATURES --pos IL,XL,T ... [--neg ...] --out FILE`: the click-to-map similarity map,
headless (the same CentroidSearch the napari widget uses)."""

from __future__ import annotations


def register(sub):
    p = sub.add_parser("search", help="similarity map of a feature volume from positive/negative example points",
                       description=__doc__)
    p.add_argument("features", help="feature store (.zarr directory written by `seisfm embed`)")
    p.add_argument("--pos", action="append", default=[], metavar="IL,XL,T", help="positive example (repeat)")
    p.add_argument("--neg", action="append", default=[], metavar="IL,XL,T", help="negative example (repeat)")
    p.add_argument("--coords", choices=("survey", "cube", "grid"), default="survey",
                   help="units of --pos/--neg: survey (inline, crossline, time/depth; default), cube sample indices or feature-grid indices")
    p.add_argument("--out", required=True, metavar="FILE", help=".npy/.zarr on the feature grid; .sgy/.segy/.sgz (needs --cube) at full resolution")
    p.add_argument("--cube", metavar="CUBE", help="the cube the features came from: checked by fingerprint, needed for SEG-Y/.sgz output")
    p.add_argument("--full-resolution", action="store_true", help="write .npy/.zarr on the cube grid too (needs --cube)")
    p.add_argument("--top", type=int, default=20, metavar="N", help="print the N best matches (default: %(default)s; 0: none)")
    p.add_argument("--radius", type=int, default=2, help="non-maximum suppression radius of the match list, in grid points")
    p.add_argument("--kernel", default="auto", choices=("auto", "simsimd", "numkong", "numpy"), help="dot-product kernel")
    p.set_defaults(run=run)


def parse_point(text: str):
    from ..errors import SeisfmError

    try:
        vals = [float(v) for v in text.replace(";", ",").split(",")]
    except ValueError:
        vals = []
    if len(vals) != 3:
        raise SeisfmError(f"point {text!r}: expected three numbers IL,XL,T")
    return vals


def run(args) -> int:
    import json
    import time

    from ..errors import SeisfmError
    from ..search import CentroidSearch, FeatureMatrix
    from ..search.output import open_cube_for, write_map

    if not args.pos:
        raise SeisfmError("add a positive click first: give at least one --pos IL,XL,T")
    pos = [parse_point(t) for t in args.pos]
    neg = [parse_point(t) for t in args.neg]
    cube = open_cube_for(args.features, args.cube)
    t0 = time.perf_counter()
    fm = FeatureMatrix.open(args.features, cube=cube)
    t_load = time.perf_counter() - t0
    search = CentroidSearch(fm, kernel=args.kernel)
    search.set_clicks(pos, neg, space=args.coords)
    t0 = time.perf_counter()
    score = search.score_map()
    t_map = time.perf_counter() - t0
    out = write_map(args.out, score, fm, cube=cube, full_resolution=args.full_resolution)
    print(f"{fm}: map {score.shape} with {len(pos)} positive / {len(neg)} negative clicks "
          f"(kernel {search.kernel.name}, load {t_load:.2f} s, map {1e3 * t_map:.0f} ms) -> {out}")
    if args.top > 0:
        for m in search.top_matches(args.top, radius=args.radius):
            where = "" if m.survey is None else f"  inline {m.survey[0]:g} crossline {m.survey[1]:g} time {m.survey[2]:g}"
            print(json.dumps({"rank": m.rank, "grid": m.grid_index, "cube": m.cube_index, "score": round(m.score, 4)}) + where)
    return 0
