"""`seisfm library add|search|remove|info`: many cubes' feature stores in one usearch index, searched from a click.

``add`` indexes stores (int8, cosine; every ``--stride``-th grid point) in a library folder, by default
``seisfm-library`` beside the first store, and picks each cube's seabed band; ``search`` takes clicks in one
store and lists the best places across every cube of the library, one per body, with their survey coordinates
(hits in the seabed band left out unless ``--keep-seabed``); ``remove`` takes stores out (also stores
deleted from disk); ``info`` lists what a library holds.
docs/search.md ("Survey library").
"""

from __future__ import annotations

from ..parsing import integer, point, triple


def register(subparsers) -> None:
    p = subparsers.add_parser(
        "library", help="index many feature stores with usearch and search them all from a click", description=__doc__
    )
    sub = p.add_subparsers(dest="library_command", required=True, metavar="ACTION")

    add = sub.add_parser(
        "add",
        help="add feature stores to a survey library (created if new)",
        description="Index the stores' vectors (usearch HNSW, int8, cosine); a store already in the library is skipped, one re-embedded with other settings at the same path is replaced.",
    )
    add.add_argument("stores", nargs="+", metavar="STORE", help="complete feature stores (.zarr) of one model")
    add.add_argument("--library", metavar="DIR", help="library folder (default: seisfm-library beside the first store)")
    add.add_argument(
        "--stride",
        default="1",
        type=triple("--stride", "2 or 2,2,1"),
        metavar="N|A,B,C",
        help="index every N-th feature-grid point per axis (default 1: all; 2 makes the index 8x smaller)",
    )
    add.add_argument(
        "--threads",
        type=integer("--threads must be 0 or more, got {value}", lo=0),
        default=0,
        help="usearch threads (default 0: all cores)",
    )
    add.set_defaults(run=run_add)

    s = sub.add_parser(
        "search",
        help="clicks in one store -> the best matches across every cube of the library",
        description="The mean of the clicked vectors is the query; matches are ranked by cosine similarity.",
    )
    s.add_argument("--from", dest="source", required=True, metavar="STORE", help="feature store the clicks are in")
    s.add_argument("--pos", action="append", default=[], type=point, metavar="IL,XL,T", help="clicked point (repeat)")
    s.add_argument(
        "--coords",
        choices=("survey", "cube", "grid"),
        default="survey",
        help="units of --pos: survey (inline, crossline, time/depth; default), cube sample or feature-grid indices",
    )
    s.add_argument("--library", metavar="DIR", help="library folder (default: seisfm-library beside --from)")
    s.add_argument(
        "--top",
        type=integer("--top must be at least 1, got {value}", lo=1),
        default=20,
        metavar="N",
        help="number of matches (default: %(default)s)",
    )
    s.add_argument(
        "--radius",
        type=integer("--radius must be 0 or more grid points, got {value}", lo=0),
        default=1,
        metavar="R",
        help="one entry per body: hits of one cube within R indexed grid points of each other are one body, "
        "listed at its best hit (default: %(default)s: connected; 0: the raw nearest vectors)",
    )
    s.add_argument(
        "--keep-seabed",
        action="store_true",
        help="also list hits in the cubes' seabed bands (left out by default unless a click is in its cube's band)",
    )
    s.add_argument("--json", action="store_true", help="print the matches as one JSON list")
    s.set_defaults(run=run_search)

    r = sub.add_parser(
        "remove",
        help="take feature stores out of a survey library (also stores gone from disk)",
        description="Remove the stores' vectors from the index and their entries from the manifest.",
    )
    r.add_argument("stores", nargs="+", metavar="STORE", help="store paths as the library lists them")
    r.add_argument("--library", required=True, metavar="DIR", help="library folder")
    r.set_defaults(run=run_remove)

    i = sub.add_parser("info", help="what a survey library holds", description="Model, size and stores of a library.")
    i.add_argument(
        "library", nargs="?", default="seisfm-library", metavar="DIR", help="library folder (default: ./seisfm-library)"
    )
    i.add_argument("--json", action="store_true", help="print JSON")
    i.set_defaults(run=run_info)


def run_remove(args) -> int:
    from ..search.library import remove_stores

    for store, n in remove_stores(args.library, args.stores):
        print(f"removed {store}: {n} vectors")
    return 0


def run_add(args) -> int:
    import time
    from pathlib import Path

    from ..search.library import Library, add_stores, default_library

    step = args.stride
    library = args.library or default_library(args.stores[0])
    t0 = time.perf_counter()
    report = add_stores(library, args.stores, step=step, threads=args.threads)
    dt = time.perf_counter() - t0
    added = sum(n for _, n in report)
    notes = {str(Path(e["path"]).resolve()): (e.get("seabed") or {}).get("note") for e in Library.open(library).stores}
    for store, n in report:
        note = notes.get(str(Path(store).resolve()))
        print(
            (f"{store}: {n} vectors added" if n else f"{store}: already in the library, skipped") + (f"; {note}" if note else "")
        )
    rate = f" ({added / dt / 1e6:.2f} M vectors/s)" if added and dt > 0 else ""
    print(f"library {library}: {added} vectors added in {dt:.1f} s{rate}")
    return 0


def run_search(args) -> int:
    import json

    from ..errors import SeisfmError
    from ..search.library import Library, default_library, describe_search, search_library

    if not args.pos:
        raise SeisfmError("give at least one --pos IL,XL,T in the --from store")
    points = args.pos
    lib = Library.open(args.library or default_library(args.source))
    matches = search_library(
        lib, args.source, points, space=args.coords, top=args.top, radius=args.radius, seabed=args.keep_seabed
    )
    if args.json:
        print(json.dumps([m.as_dict() for m in matches]))
        return 0
    for m in matches:
        where = "" if m.survey is None else f"inline {m.survey[0]:g} crossline {m.survey[1]:g} time {m.survey[2]:g}  "
        body = f"  ({m.hits} hits)" if m.hits > 1 else ""
        print(f"{m.rank:>4}  {m.score:.4f}  {where}grid {m.grid_index}  {m.store}{body}")
    print(describe_search(lib.last))
    return 0


def run_info(args) -> int:
    import json

    from ..search.library import Library

    info = Library.open(args.library).info()
    if args.json:
        print(json.dumps(info))
        return 0
    print(
        f"{info['library']}: model {info['model']}, {info['dim']}-d, {info['vectors']} vectors, "
        f"index {info['index_bytes'] / 1e6:.1f} MB (usearch HNSW, i8, cosine)"
    )
    for s in info["stores"]:
        state = "" if s["on_disk"] else "  MISSING from disk"
        print(
            f"  [{s['id']}] {s['path']}: {s['vectors']} vectors, grid {tuple(s['grid'])}, every {tuple(s['index_step'])}{state}"
        )
        print(f"      cube {s['cube']}; {s['seabed']}")
    return 0
