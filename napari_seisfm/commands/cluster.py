"""`seisfm cluster FEATURES --k 8 --out FILE`: an unsupervised facies map, k-means over the whole
feature grid (cosine, fitted on a seeded sample of at most 2^20 grid points), headless.

Classes are 1..k by size (largest first); 0 = no valid embedding. The same store and --seed give the
same map. docs/search.md ("Facies (k-means)") has the method and the measured speed."""

from __future__ import annotations


def register(sub):
    from ..parsing import integer

    p = sub.add_parser("cluster", help="unsupervised facies map: k-means over a feature volume", description=__doc__)
    p.add_argument("features", help="feature store (.zarr directory written by `seisfm embed`)")
    p.add_argument("--k", type=int, required=True, help="number of facies classes (at least 2)")
    p.add_argument(
        "--out",
        required=True,
        metavar="FILE",
        help="class map: .npy/.zarr on the feature grid; .sgy/.segy/.sgz (needs --cube) at full resolution",
    )
    p.add_argument(
        "--cube", metavar="CUBE", help="the cube the features came from: checked by fingerprint, needed for SEG-Y/.sgz output"
    )
    p.add_argument(
        "--seed",
        type=integer("--seed {value}: must be 0 or more", lo=0),
        default=0,
        help="seeds the fit sample and the k-means++ start (default: %(default)s)",
    )
    p.add_argument("--sample", type=int, default=None, metavar="N", help="grid points the fit sees (default: 1048576)")
    p.add_argument("--max-iterations", type=int, default=50, metavar="N", help="cap on k-means iterations (default: %(default)s)")
    p.add_argument(
        "--engine",
        choices=("lloyd", "usearch"),
        default="lloyd",
        help="lloyd (default, reproducible) or usearch's kmeans (ignores --seed in usearch 2.26)",
    )
    p.add_argument("--full-resolution", action="store_true", help="write .npy/.zarr on the cube grid too (needs --cube)")
    p.set_defaults(run=run)


def run(args) -> int:
    from ..progress_bar import ProgressBar
    from ..search import FeatureMatrix, kmeans_facies
    from ..search.output import optional_cube, write_map

    cube = optional_cube(args.cube)
    fm = FeatureMatrix.open(args.features, cube=cube)
    with ProgressBar("k-means", "step") as bar:
        result = kmeans_facies(
            fm, args.k, seed=args.seed, sample=args.sample, max_iterations=args.max_iterations, engine=args.engine, progress=bar
        )
    out = write_map(args.out, result.classes, fm, cube=cube, labels=True, full_resolution=args.full_resolution)
    counts = {c + 1: int(n) for c, n in enumerate(result.counts)}
    print(
        f"{fm}: k={args.k} ({result.engine}, {result.iterations} iterations on {result.sample_size} sampled points), "
        f"{result.seconds:.2f} s -> {out}; grid points per class {counts}"
    )
    return 0
