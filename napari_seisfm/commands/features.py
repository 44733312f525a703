"""`seisfm features import|export|info`: feature volumes computed elsewhere in, stores out, a store described.

``import`` turns a 4-D array (``.npy``, ``.npz``, ``.zarr``, ``.h5``) of embeddings computed on a cluster
into an ordinary feature store (the same PCA + int8 reduction as `seisfm embed`, resumable, with
provenance); ``export`` writes a store back to ``.npy``/``.h5`` for other tools; ``info`` says what a
store holds. docs/feature-store.md.
"""

from __future__ import annotations

from ..parsing import triple


def register(subparsers) -> None:
    p = subparsers.add_parser(
        "features", help="import precomputed feature arrays, export stores, describe a store", description=__doc__
    )
    sub = p.add_subparsers(dest="features_command", required=True, metavar="ACTION")

    imp = sub.add_parser(
        "import",
        help="import a 4-D feature array (.npy/.npz/.zarr/.h5) computed elsewhere into a feature store",
        description="Read ARRAY in chunks, check its grid against CUBE, reduce like `seisfm embed` and write a resumable store.",
    )
    imp.add_argument("array", metavar="ARRAY", help="feature array: .npy, .npz (uncompressed), .zarr, .h5/.hdf5")
    imp.add_argument(
        "--cube", required=True, metavar="CUBE", help="the cube the features were computed on (.sgy, .segy, .sgz, .npy)"
    )
    imp.add_argument("--out", required=True, metavar="FEATURES.zarr", help="feature store to write")
    imp.add_argument(
        "--layout", default=None, metavar="AXES", help="the array's axis order: il,xl,t,c or c,il,xl,t (default: inferred)"
    )
    imp.add_argument(
        "--stride",
        default=None,
        type=triple("--stride", "4 or 4,4,2"),
        help="grid stride on the cube: one number or three (default: inferred from the shapes)",
    )
    imp.add_argument(
        "--origin",
        default=None,
        type=triple("--origin", "0 or 2,2,0", minimum=0),
        metavar="I,X,T",
        help="cube index of the first grid point (default 0,0,0)",
    )
    imp.add_argument(
        "--dataset", default=None, metavar="NAME", help="array inside an .npz/.zarr group/.h5 file (default: its only 4-D array)"
    )
    imp.add_argument(
        "--pca",
        type=int,
        default=None,
        metavar="DIMS",
        help="reduce to DIMS with PCA when wider; 0 keeps all (default 64; 0 for arrays exported by seisfm)",
    )
    imp.add_argument("--dtype", default="i8", choices=("i8", "f16", "f32"), help="stored vector type (default i8)")
    imp.add_argument("--model-name", default=None, metavar="NAME", help="what computed the features, recorded in the store")
    imp.add_argument("--overwrite", action="store_true", help="replace an existing store")
    imp.add_argument(
        "--no-resume", dest="resume", action="store_false", help="do not continue a partial store (error if it exists)"
    )
    imp.set_defaults(run=run_import)

    exp = sub.add_parser(
        "export",
        help="write a feature store's vectors to .npy or .h5 for other tools",
        description="Decoded unit vectors, channel-last (il, xl, t, dim), invalid points NaN; the grid in a side-car / attributes.",
    )
    exp.add_argument("store", metavar="FEATURES.zarr", help="complete feature store")
    exp.add_argument("out", metavar="OUT", help="OUT.npy (with OUT.npy.json) or OUT.h5/.hdf5 (dataset 'features')")
    exp.add_argument("--dtype", default="f32", choices=("f32", "f16"), help="array dtype (default f32)")
    exp.add_argument("--overwrite", action="store_true", help="replace an existing file")
    exp.set_defaults(run=run_export)

    inf = sub.add_parser("info", help="describe a feature store: grid, model, dims, completeness, size, cube")
    inf.add_argument("store", metavar="FEATURES.zarr")
    inf.add_argument("--json", action="store_true", help="print JSON instead of text")
    inf.set_defaults(run=run_info)


def _bar(desc):
    from ..progress_bar import ProgressBar

    bar = ProgressBar(desc)

    def progress(done, total):
        if not bar.started and done and desc == "import":
            print(f"resuming: {done}/{total} chunks already done")
        bar(int(done), total)

    return bar, progress


def run_import(args) -> int:
    from ..store.interchange import import_features
    from ..store.sources import parse_layout

    stride, origin = args.stride, args.origin
    layout = parse_layout(args.layout) if args.layout else None
    bar, progress = _bar("import")
    with bar:
        fv = import_features(
            args.array,
            args.cube,
            args.out,
            layout=layout,
            stride=stride,
            origin=origin,
            dataset=args.dataset,
            pca=args.pca,
            dtype=args.dtype,
            model_name=args.model_name,
            resume=args.resume,
            overwrite=args.overwrite,
            progress=progress,
        )
    print(
        f"wrote {fv.path}: grid {fv.grid.shape} (stride {fv.grid.stride}, origin {fv.grid.origin}), {fv.dim}-d {fv.dtype}, "
        f"model {fv.model}, layout {fv.provenance.get('layout')}"
    )
    return 0


def run_export(args) -> int:
    from ..store.interchange import export_features

    bar, progress = _bar("export")
    with bar:
        out = export_features(args.store, args.out, dtype=args.dtype, overwrite=args.overwrite, progress=progress)
    print(f"wrote {out}")
    return 0


def run_info(args) -> int:
    import json

    from ..store.interchange import describe_store

    d = describe_store(args.store)
    if args.json:
        print(json.dumps(d, indent=2))
        return 0
    state = "yes" if d["complete"] else "no"
    print(d["path"])
    print(f"  model       {d['model']}")
    print(
        f"  grid        {' x '.join(map(str, d['grid_shape']))} points, stride {tuple(d['stride'])}, origin {tuple(d['origin'])}"
    )
    reduced = f" (PCA from {d['dim_in']})" if d["pca"] else ""
    print(f"  vectors     {d['dim']}-d {d['dtype']}{reduced}")
    print(f"  complete    {state} ({d['chunks_done']}/{d['chunks_total']} chunks)")
    print(f"  size        {d['size_bytes'] / 2**20:.1f} MiB on disk")
    print(f"  cube        {d['cube']['source']}, shape {d['cube']['shape']}, fingerprint {str(d['cube']['fingerprint'])[:16]}")
    p = d["provenance"]
    if p:
        print(
            f"  imported    from {p.get('imported_from')}"
            + (f" [{p['dataset']}]" if p.get("dataset") and p.get("source_format") != "npy" else "")
            + f", layout {p.get('layout')}, {p.get('source_dtype')} {tuple(p.get('source_shape', ()))}, sha256 {p.get('source_sha256')}"
            + (f", {p['imported_at']}" if p.get("imported_at") else "")
        )
    return 0
