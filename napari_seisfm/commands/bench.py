"""`seisfm bench`: measure interpretation quality on synthetic surveys, a labelled image set or your own
labelled cube, for every installed embedder and a random-weight control.

Protocols (docs/quality.md): segmentation from labelled points (the NCS kNN protocol, k = 5, 100 points
per class, and the product's default method on the same points), the simulated interpreter (IoU after
1/3/5/10 clicks, NoC@0.8) and 3 + 3 fixed clicks (IoU, oracle IoU, AUC). Defaults are chosen on the dev
seeds (0, 1, 2); quote the report seeds (--seeds report: 100, 101, 102)."""

from __future__ import annotations


def register(sub):
    from ..method_names import DECISIONS, SEGMENTERS
    from ..parsing import integer

    p = sub.add_parser("bench", help="interpretation quality: kNN protocol, product default, clicks-to-IoU", description=__doc__)
    p.add_argument("--quick", action="store_true", help="a small, fast run (one 48^3 survey, the default embedder, 5 clicks)")
    p.add_argument("--seeds", default="dev", help="dev, report, or comma-separated seeds (default: dev)")
    p.add_argument("--sizes", default="96", help="synthetic cube sizes, comma separated (default: %(default)s)")
    p.add_argument("--stride", type=int, default=2, help="feature grid stride (default: %(default)s)")
    p.add_argument("--models", default=None, help="comma-separated model ids (default: every installed one + random-vit)")
    p.add_argument("--targets", default=None, help="synthetic targets, comma separated (default: all)")
    p.add_argument(
        "--max-clicks",
        type=integer("--max-clicks must be 1 or more, got {value}", lo=1),
        default=20,
        help="simulated interpreter's click budget (default: %(default)s)",
    )
    p.add_argument(
        "--images", metavar="FILE.npz", help="labelled images (arrays images, masks: N x H x W), e.g. the TGS salt set"
    )
    p.add_argument(
        "--image-split",
        default="100,400",
        metavar="SUPPORT,EVAL",
        help="images for support points, images scored (default: %(default)s)",
    )
    p.add_argument("--cube", metavar="CUBE", help="your cube (SEG-Y, .sgz, .npy) ...")
    p.add_argument("--labels", metavar="FILE.npy", help="... and its label volume on the cube grid")
    p.add_argument("--no-synthetic", action="store_true", help="skip the synthetic surveys")
    p.add_argument(
        "--adapt-steps",
        type=integer("--adapt-steps must be 1 or more, got {value}", lo=1),
        default=None,
        metavar="N",
        help="pretraining steps of the survey-adapted model (model id 'adapted', also in combinations such as "
        "attributes+adapted): the bundled model's shape trained on each task's data alone, no labels (default: 4000)",
    )
    p.add_argument(
        "--readouts",
        default=None,
        metavar="NAMES",
        help="read-outs of labelled points to compare, comma separated (default: all: "
        + ", ".join(help_readouts(SEGMENTERS))
        + ")",
    )
    p.add_argument(
        "--decisions",
        default=None,
        metavar="NAMES",
        help="click decisions the simulated interpreter runs, comma separated (default: all: " + ", ".join(DECISIONS) + ")",
    )
    p.add_argument("--out", metavar="DIR", help="write results.json, quality.md and the figures here")
    p.add_argument("--json", action="store_true", help="print JSON instead of the tables")
    p.set_defaults(run=run)


def help_readouts(segmenters) -> tuple[str, ...]:
    """The read-outs `seisfm bench` compares, in its order (kNN first: the reference every table shows), from
    the names alone (``quality.suite.METHODS`` is the same list; tests/test_cli_light.py checks it)."""
    return ("knn", *(m for m in segmenters if m != "knn"))


def _methods():
    from ..quality.suite import METHODS

    return METHODS


def _decisions():
    from ..quality.suite import DECISIONS

    return DECISIONS


def _names(text, known, what: str):
    from ..errors import SeisfmError

    names = [t.strip() for t in text.split(",") if t.strip()]
    bad = [t for t in names if t not in known]
    if not names:
        raise SeisfmError(f"{what}: give at least one name; choose from {', '.join(known)}")
    if bad:
        raise SeisfmError(f"{what}: unknown {', '.join(map(repr, bad))}; choose from {', '.join(known)}")
    return names


def _ints(text: str, what: str):
    from ..errors import SeisfmError

    try:
        vals = tuple(int(v) for v in text.split(","))
    except ValueError:
        raise SeisfmError(f"{what}: expected comma-separated integers, got {text!r}") from None
    if not vals or min(vals) < 0:
        raise SeisfmError(f"{what}: expected non-negative integers, got {text!r}")
    return vals


def run(args) -> int:
    import sys
    from pathlib import Path

    from .. import quality
    from ..errors import SeisfmError
    from ..extras import require

    if (args.cube is None) != (args.labels is None):
        raise SeisfmError("--cube and --labels go together: a cube and its label volume")
    if args.images:
        from ..images import load_image_set

        load_image_set(args.images)  # a bad file fails now, before anything is computed
    if args.out:
        require("plots", "seisfm bench --out")  # the figures, written after the whole run: say so before it
    seeds = {"dev": quality.DEV_SEEDS, "report": quality.REPORT_SEEDS}.get(args.seeds) or _ints(args.seeds, "--seeds")
    models = args.models.split(",") if args.models else None
    sizes, max_clicks, targets = _ints(args.sizes, "--sizes"), args.max_clicks, args.targets
    split = _ints(args.image_split, "--image-split")
    if args.quick:
        seeds, sizes, models, max_clicks = seeds[:1], (48,), models or ["attributes"], min(max_clicks, 5)
        targets, split = targets or "flat_spot,salt", (20, 40)
    if len(split) != 2:
        raise SeisfmError(f"--image-split: expected SUPPORT,EVAL, got {args.image_split!r}")
    methods = _names(args.readouts, _methods(), "--readouts") if args.readouts is not None else _methods()
    known = dict(_decisions())
    decisions = (
        [(d, known[d]) for d in _names(args.decisions, list(known), "--decisions")]
        if args.decisions is not None
        else list(_decisions())
    )
    result = quality.run(
        models=models,
        seeds=seeds,
        sizes=sizes,
        stride=args.stride,
        images=args.images,
        cube=args.cube,
        labels=args.labels,
        synthetic=not args.no_synthetic,
        max_clicks=max_clicks,
        targets=targets.split(",") if targets else None,
        n_images=split,
        adapt_steps=args.adapt_steps or quality.ADAPT_STEPS,
        methods=methods,
        decisions=decisions,
        progress=lambda m: print(f"bench: {m}", file=sys.stderr, flush=True),
    )
    text = quality.to_json(result) if args.json else quality.markdown(result)
    if args.out:
        out = Path(args.out)
        out.mkdir(parents=True, exist_ok=True)
        (out / "results.json").write_text(quality.to_json(result))
        (out / "quality.md").write_text(quality.markdown(result))
        for f in quality.figures(result, out):
            print(f"bench: wrote {f}", file=sys.stderr)
    print(text, end="")
    return 0
