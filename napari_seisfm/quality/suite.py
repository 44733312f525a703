"""`seisfm bench`: the quality suite over tasks x models, its tables, JSON and figures.

Tasks:
- **synthetic** surveys (``synthetic.make_survey``) at the dev or report seeds: every class at once
  (``classes``), the stratigraphic ``packages`` (the NCS package task), each target against the rest
  (injectites from a single labelled line, as in the paper), and the click protocols per target;
- **images**: a labelled image set such as the TGS salt patches (``--images FILE.npz``): support points
  from a subset of the images, every pixel of other images scored;
- **cube**: a user's cube with a label volume on its grid (``--cube FILE --labels FILE.npy``).

Models: the installed embedders, plus ``random-vit`` (the bundled micro ViT's architecture with random
weights: the control every learned model must beat) and, for images, ``raw-window`` (the standardised
amplitudes of a 7 x 7 neighbourhood, the floor).

Dev seeds choose defaults; report seeds are what the docs quote. They never overlap.
"""

from __future__ import annotations

import tempfile
import time
from pathlib import Path

import numpy as np

from ..errors import SeisfmError
from ..search.linear_segmenter import CONTEXT, SMOOTH
from ..search.methods import DECISIONS as ALL_DECISIONS
from ..search.methods import DEFAULT_SEGMENTER, SEGMENTERS
from . import protocols as P

DEV_SEEDS = (0, 1, 2)
REPORT_SEEDS = (100, 101, 102)
# every read-out of labelled points, the paper's kNN first (the reference every table keeps)
METHODS = ("knn", *(m for m in SEGMENTERS if m != "knn"))
# every click decision by name (the probe: the product's default; the nonlinear read-outs; the earlier cosine rule),
# the probe and the read-outs with the bodies connected to the clicks, as the product shows them
DECISIONS = tuple((d, d != "centroid") for d in ALL_DECISIONS)
CONTROL = "random-vit"
RAW = "raw-window"
ADAPTED = "adapted"  # a model pretrained on the evaluated survey or image set alone (no labels)
ADAPT_STEPS = 4000  # ~8 min of one core at the bundled model's size
BUNDLED = "seisfm-micro-2.5d"


# ---------------------------------------------------------------------- models
def installed_models() -> list[str]:
    from ..encoders import registry

    return [c.id for c in registry.list_cards() if registry.is_installed(c)]


def make_embedder(model: str, *, images: bool = False, adapted=None):
    """An embedder by id; ``random-vit`` is the bundled micro ViT's shape with seeded random weights
    (tokenised 2-D for images, which have no neighbouring lines for the 2.5-D views); ``adapted``
    (alone or in a combination such as ``attributes+adapted``) is the model folder ``adapted``."""
    import dataclasses

    from ..encoders import registry

    if ADAPTED in model.split("+"):
        if adapted is None:
            raise SeisfmError(f"model {model!r}: no survey-adapted model was trained for this task")
        model = "+".join(str(adapted) if m == ADAPTED else m for m in model.split("+"))
    if model != CONTROL:
        return registry.get_embedder(model)
    import torch

    from ..encoders.vit import build_encoder
    from ..encoders.vit_embedder import ViTEmbedder

    card = registry.card(BUNDLED)
    if images:
        card = dataclasses.replace(card, tokenization="2d")
    torch.manual_seed(0)
    return ViTEmbedder(card, build_encoder(card), device="cpu")


def raw_windows(images: np.ndarray, stride: int, half: int = 3) -> np.ndarray:
    """(N, H, W) standardised images -> (N, H', W', (2 half + 1)^2) neighbourhood amplitudes (edges mirrored)."""
    pad = np.pad(images, ((0, 0), (half, half), (half, half)), mode="reflect")
    h, w = images.shape[1:]
    rows, cols = np.arange(0, h, stride), np.arange(0, w, stride)
    out = [pad[:, half + dy + rows][:, :, half + dx + cols] for dy in range(-half, half + 1) for dx in range(-half, half + 1)]
    return np.stack(out, axis=-1).astype(np.float32)


# ---------------------------------------------------------------------- tasks
def prepare(size: int, seed: int, stride: int, workdir, model: str | None = None, noise: float = 0.1, embedder=None):
    """Synthetic survey + its feature store + FeatureMatrix + ground truth on the grid (bench, tests, demo)."""
    from ..cube import Cube
    from ..extract import extract_features
    from ..search import FeatureMatrix
    from ..synthetic import make_survey, survey_geometry

    survey = make_survey((size, size, size), seed=seed, noise=noise)
    cube = Cube.from_array(survey.amplitude, survey_geometry(survey))
    t0 = time.perf_counter()
    fv = extract_features(
        cube,
        Path(workdir) / f"features_{size}_{seed}_s{stride}.zarr",
        model=model,
        stride=stride,
        overwrite=True,
        embedder=embedder,
    )
    fm = FeatureMatrix.from_volume(fv, cube=cube)
    return survey, cube, fm, P.grid_labels(survey.labels, fm.grid), {"extract_s": time.perf_counter() - t0, "model": fv.model}


def _segmentation_rows(fm, tasks: dict, methods, seed: int, base: dict, keep: dict | None = None) -> list[dict]:
    """One row per task and method; ``keep`` collects the "classes" task's results for the panels."""
    rows = []
    for task, (truth, classes, opts) in tasks.items():
        for method in methods:
            r = P.segmentation_quality(fm, truth, classes, method=method, seed=seed, **opts)
            if keep is not None and task == "classes":
                keep[(task, method)] = r["result"]
            rows.append(
                {
                    **base,
                    "task": task,
                    "method": method,
                    "miou": r["miou"],
                    "support": r["support"],
                    "iou_per_class": r["iou_per_class"],
                    "seconds": r["seconds"],
                }
            )
    return rows


def synthetic_case(
    model: str,
    size: int,
    seed: int,
    *,
    stride: int = 2,
    workdir,
    methods=METHODS,
    decisions=DECISIONS,
    max_clicks: int = P.MAX_CLICKS,
    targets=None,
    panels: dict | None = None,
    adapted=None,
) -> dict:
    """Every protocol on one synthetic survey embedded by one model."""
    survey, _, fm, truth, times = prepare(size, seed, stride, workdir, embedder=make_embedder(model, adapted=adapted))
    t_embed = times["extract_s"]
    packages = P.grid_labels(survey.horizons, fm.grid)
    names = survey.label_names()
    targets = [n for n in (targets or names[1:]) if n in survey.classes and (truth == survey.classes[n]).any()]
    base = {"model": model, "size": size, "seed": seed}

    tasks = {
        "classes": (truth, [int(c) for c in np.unique(truth)], {}),
        "packages": (packages, [int(c) for c in np.unique(packages)], {}),
    }
    for name in targets:
        y = (truth == survey.classes[name]).astype(np.int16)
        tasks[f"{name} vs rest"] = (y, [0, 1], {"line": True, "target": 1} if name == "injectite" else {})
    kept = {}
    seg_rows = _segmentation_rows(fm, tasks, methods, seed, base, keep=kept if panels is not None else None)
    if panels is not None:
        panel = panels.setdefault(
            "classes", {"truth": truth, "names": names, "pred": {}, "inline": int(np.argmax((truth > 0).sum(axis=(1, 2))))}
        )
        first = not panel["pred"]  # every read-out of the first model; kNN and the default of the others
        for method in methods:
            if first or method in ("knn", DEFAULT_SEGMENTER):
                panel["pred"][f"{model} {method}"] = kept[("classes", method)].classes - 1

    click_rows = []
    for name in targets:
        target = truth == survey.classes[name]
        for decision, grow in decisions:
            r = P.simulated_interpreter(fm, target, decision=decision, grow=grow, max_clicks=max_clicks)
            click_rows.append({**base, "target": name, "protocol": "interpreter", **dict(r.items())})
            if name in ("flat_spot", "salt"):
                q = P.click_quality(fm, truth, survey.classes[name], n_pos=3, n_neg=3, seed=seed, decision=decision, grow=grow)
                click_rows.append(
                    {
                        **base,
                        "target": name,
                        "protocol": "3+3 clicks",
                        "decision": decision,
                        "grow": grow,
                        "iou": q["iou"],
                        "iou_best": q["iou_best"],
                        "auc": q["auc"],
                    }
                )
    extra = _facies_row(fm, packages, seed, base)
    return {"segmentation": seg_rows, "clicks": click_rows, "facies": extra, "embed_seconds": round(t_embed, 2)}


def _facies_row(fm, packages, seed, base) -> list[dict]:
    """k-means facies (`seisfm cluster`) against the package labels: adjusted Rand index."""
    from ..search import adjusted_rand_index, kmeans_facies

    k = len(np.unique(packages))
    r = kmeans_facies(fm, k, seed=seed)
    return [
        {
            **base,
            "k": k,
            "ari": round(float(adjusted_rand_index(r.classes.ravel(), packages.ravel())), 4),
            "seconds": round(r.seconds, 3),
        }
    ]


def image_task(
    path,
    model: str,
    *,
    n_support_images: int = 100,
    n_eval_images: int = 400,
    stride: int = 2,
    seed: int = 0,
    n_per_class: int = 100,
    adapted=None,
) -> dict:
    """An image set embedded as a stack of sections: its FeatureMatrix, the truth on the grid, the support
    points (``n_per_class`` per class from the first ``n_sup`` images) and the images scored (the rest)."""
    from ..images import embed_images, load_image_set
    from ..search import FeatureMatrix

    s = load_image_set(path)
    rng = np.random.default_rng(seed)
    order = rng.permutation(len(s.images))
    n_sup = min(n_support_images, len(order) // 2)
    pick = order[: n_sup + min(n_eval_images, len(order) - n_sup)]
    images, masks = s.images[pick], s.masks[pick]
    t0 = time.perf_counter()
    if model == RAW:
        std = images.reshape(len(images), -1).std(axis=1)[:, None, None] + 1e-6
        z = np.clip((images - images.mean(axis=(1, 2), keepdims=True)) / std, -3, 3)
        vectors = raw_windows(z, stride)
    else:
        vectors = embed_images(images, embedder=make_embedder(model, images=True, adapted=adapted), stride=stride)
    t_embed = time.perf_counter() - t0
    n, h, w = vectors.shape[:3]
    truth = masks[:, ::stride, ::stride][:, :h, :w].astype(np.int16)
    fm = FeatureMatrix.from_array(vectors, (n, h, w), dtype="int8")
    support_truth = truth.copy()
    support_truth[n_sup:] = -1  # labels come from the support images only
    classes = [int(c) for c in np.unique(truth)]
    pts, lab = P.sample_support(support_truth, classes, n_per_class, rng, fm.valid)
    return {
        "name": s.name,
        "fm": fm,
        "truth": truth,
        "classes": classes,
        "points": pts,
        "labels": lab,
        "n_sup": n_sup,
        "embed_seconds": t_embed,
        "n_per_class": n_per_class,
    }


def image_options(method: str, context=CONTEXT, smooth=SMOOTH) -> dict:
    """A read-out's options on an image stack: smoothing and context within each image, never across the
    unrelated patches of axis 0 (the conv head is 2-D there)."""
    if method == "knn":
        return {"k": 5}
    opts = {"smooth": (0.0, smooth, smooth), "context": [(0.0, c, c) for c in context]}
    if method == "conv":
        opts["axes"] = (0, 1, 1)
    return opts


def image_rows(task: dict, model: str, seed: int, methods=METHODS, **options) -> list[dict]:
    """mIoU of each read-out over every grid pixel of the scored images."""
    from ..search import make_segmenter

    fm, truth, classes, n_sup = task["fm"], task["truth"], task["classes"], task["n_sup"]
    rows = []
    for method in methods:
        t1 = time.perf_counter()
        result = make_segmenter(fm, task["points"], task["labels"], method, **image_options(method, **options)).segment()
        pred = result.classes[n_sup:] - 1
        m, per = P.mean_iou(pred, truth[n_sup:], classes)
        rows.append(
            {
                "model": model,
                "seed": seed,
                "task": f"images: {task['name']}",
                "method": method,
                "miou": round(m, 4),
                "iou_per_class": {str(c): round(v, 4) for c, v in per.items()},
                "support": f"{task['n_per_class']} per class",
                "support_images": n_sup,
                "eval_images": len(truth) - n_sup,
                "seconds": round(time.perf_counter() - t1, 3),
                "embed_seconds": round(task["embed_seconds"], 2),
            }
        )
    return rows


def image_case(
    path,
    model: str,
    *,
    n_support_images: int = 100,
    n_eval_images: int = 400,
    stride: int = 2,
    seed: int = 0,
    methods=METHODS,
    n_per_class: int = 100,
    adapted=None,
) -> list[dict]:
    """Support points from ``n_support_images`` images, mIoU over every grid pixel of ``n_eval_images`` others."""
    task = image_task(
        path,
        model,
        n_support_images=n_support_images,
        n_eval_images=n_eval_images,
        stride=stride,
        seed=seed,
        n_per_class=n_per_class,
        adapted=adapted,
    )
    return image_rows(task, model, seed, methods)


def cube_case(
    cube_path,
    labels_path,
    model: str,
    *,
    stride: int = 2,
    workdir,
    seed: int = 0,
    methods=METHODS,
    decisions=DECISIONS,
    max_clicks: int = P.MAX_CLICKS,
    adapted=None,
) -> dict:
    """A user's cube and label volume (same shape as the cube; 0 = a class too, as in the synthetic tasks)."""
    from ..extract import extract_features
    from ..io import open_cube
    from ..search import FeatureMatrix

    labels = _read_label_volume(labels_path)
    cube = open_cube(cube_path)
    if labels.shape != tuple(cube.shape):
        raise SeisfmError(
            f"{labels_path}: label volume {labels.shape} does not match the cube {tuple(cube.shape)} of {cube_path}"
        )
    fv = extract_features(
        cube, Path(workdir) / "user.zarr", embedder=make_embedder(model, adapted=adapted), stride=stride, overwrite=True
    )
    fm = FeatureMatrix.from_volume(fv, cube=cube)
    truth = P.grid_labels(labels, fm.grid)
    classes = [int(c) for c in np.unique(truth)]
    missing = sorted({int(c) for c in np.unique(labels)} - set(classes))
    if missing:
        raise SeisfmError(
            f"{labels_path}: class {', '.join(map(str, missing))} has no labelled point on the stride-{stride} "
            "feature grid; label more of it or use --stride 1"
        )
    if len(classes) < 2:
        raise SeisfmError(f"{labels_path}: only one class ({classes[0]}) on the feature grid; need two or more")
    base = {"model": model, "seed": seed, "cube": str(cube_path)}
    seg = _segmentation_rows(fm, {"classes": (truth, classes, {})}, methods, seed, base)
    clicks = []
    for c in classes:
        if (truth == c).mean() > 0.5:
            continue  # the background of a click task
        for decision, grow in decisions:
            r = P.simulated_interpreter(fm, truth == c, decision=decision, grow=grow, max_clicks=max_clicks)
            clicks.append({**base, "target": f"class {c}", "protocol": "interpreter", **r})
    return {"segmentation": seg, "clicks": clicks, "facies": []}


def _read_label_volume(path) -> np.ndarray:
    path = Path(path)
    if not path.is_file():
        raise SeisfmError(f"{path}: no such label file")
    try:
        labels = np.load(path, allow_pickle=False)
    except (ValueError, OSError) as exc:
        raise SeisfmError(f"{path}: not a readable .npy label volume ({exc})") from None
    if labels.ndim != 3 or labels.dtype.kind not in "iub":
        raise SeisfmError(f"{path}: need a 3-D integer label volume, got {labels.dtype} {labels.shape}")
    return labels


# ---------------------------------------------------------------------- the suite
def adapt(key: str, sources, workdir, steps: int, progress=print) -> Path:
    """Pretrain a model of the bundled model's shape on one task's data alone (no labels)."""
    from ..encoders import registry
    from ..pretrain.run import pretrain

    arch = dict(registry.card(BUNDLED).extra.get("architecture", {}))
    size = arch.pop("size", "micro")
    out = Path(workdir) / f"adapted-{key}"
    t0 = time.perf_counter()
    r = pretrain(
        out=out,
        sources=sources,
        name=f"adapted-{key}",
        tokenization="2.5d",
        size=size,
        steps=steps,
        batch_size=32,
        seed=0,
        device="cpu",
        install=False,
        architecture=arch,
        checkpoint_every=10**9,
    )
    progress(
        f"adapted model {key}: {steps} steps in {time.perf_counter() - t0:.0f} s, loss {r.first_loss:.3f} -> {r.last_loss:.3f}"
    )
    return out


def _sources():
    """The pretraining data sources (torch), imported only when a survey-adapted model is trained."""
    from ..pretrain import data

    return data


def _needs_adapting(models) -> bool:
    return any(ADAPTED in m.split("+") for m in models)


def run(
    *,
    models=None,
    seeds=DEV_SEEDS,
    sizes=(96,),
    stride: int = 2,
    images=None,
    cube=None,
    labels=None,
    synthetic: bool = True,
    max_clicks: int = P.MAX_CLICKS,
    targets=None,
    n_images=(100, 400),
    adapt_steps: int = ADAPT_STEPS,
    methods=METHODS,
    decisions=DECISIONS,
    progress=print,
) -> dict:
    from ..synthetic import make_survey

    models = list(models or installed_models() + [CONTROL])
    methods = [m for m in METHODS if m in methods]  # the tables' order
    out = {
        "models": models,
        "seeds": list(seeds),
        "sizes": list(sizes),
        "stride": stride,
        "methods": methods,
        "decisions": [list(d) for d in decisions],
        "default_method": DEFAULT_SEGMENTER,
        "segmentation": [],
        "clicks": [],
        "facies": [],
        "embed_seconds": [],
        "panels": {},
    }
    if _needs_adapting(models):
        out["adapt_steps"] = adapt_steps
    adapted: dict[str, Path] = {}

    def adapted_for(model, key, make_sources):
        """The survey-adapted model for this task, trained once, if ``model`` uses it."""
        if ADAPTED not in model.split("+"):
            return None
        if key not in adapted:
            adapted[key] = adapt(key, make_sources(), tmp, adapt_steps, progress)
        return adapted[key]

    t_all = time.perf_counter()
    with tempfile.TemporaryDirectory() as tmp:
        if synthetic:
            for model in models:
                for size in sizes:
                    for seed in seeds:
                        progress(f"synthetic {size}^3 seed {seed}: {model}")
                        panels = out["panels"] if (seed == seeds[0] and size == sizes[0]) else None
                        ad = adapted_for(
                            model,
                            f"synthetic-{size}-{seed}",
                            lambda: [_sources().array_source("survey", make_survey((size, size, size), seed=seed).amplitude)],  # noqa: B023
                        )
                        r = synthetic_case(
                            model,
                            size,
                            seed,
                            stride=stride,
                            workdir=tmp,
                            max_clicks=max_clicks,
                            targets=targets,
                            panels=panels,
                            adapted=ad,
                            methods=methods,
                            decisions=decisions,
                        )
                        for key in ("segmentation", "clicks", "facies"):
                            out[key] += r[key]
                        out["embed_seconds"].append({"model": model, "size": size, "seed": seed, "seconds": r["embed_seconds"]})
        if images is not None:
            for model in models + [RAW]:
                for seed in seeds:
                    progress(f"images {Path(images).name} seed {seed}: {model}")
                    try:
                        ad = adapted_for(model, "images", lambda: [_sources().images_source(images)])
                        out["segmentation"] += image_case(
                            images,
                            model,
                            seed=seed,
                            n_support_images=n_images[0],
                            n_eval_images=n_images[1],
                            adapted=ad,
                            methods=methods,
                        )
                    except SeisfmError as exc:  # e.g. a 2.5-D model: an image has no neighbouring lines
                        progress(f"images: {model} skipped ({exc})")
                        out.setdefault("skipped", []).append({"model": model, "task": "images", "why": str(exc)})
                        break
        if cube is not None:
            for model in models:
                progress(f"cube {Path(cube).name}: {model}")
                ad = adapted_for(model, "cube", lambda: [_sources().open_cube_source(cube)])
                r = cube_case(
                    cube,
                    labels,
                    model,
                    stride=stride,
                    workdir=tmp,
                    max_clicks=max_clicks,
                    adapted=ad,
                    methods=methods,
                    decisions=decisions,
                )
                out["segmentation"] += r["segmentation"]
                out["clicks"] += r["clicks"]
    out["seconds"] = round(time.perf_counter() - t_all, 1)
    return out


# ---------------------------------------------------------------------- tables
