"""`seisfm demo`: the whole click-to-map loop on a synthetic survey, with timings and quality.

Synthetic cube (SEG-Y) -> default embedder -> scripted clicks on the flat spot (positives from the
ground-truth flat-spot mask on one inline, negatives from background) -> probability map from the
default probe, the region connected to the clicks, top matches -> segmentation from 100 labelled grid
points per class (the default method, with the kNN protocol's mIoU beside it) -> PNGs of the overlays, a report, and an
interpretation file the Click-to-map widget can reopen. ``--gui`` opens napari with everything loaded.
"""

from __future__ import annotations

import time


def register(sub):
    p = sub.add_parser("demo", help="synthetic survey -> embeddings -> clicks on the flat spot -> map and segmentation",
                       description=__doc__)
    p.add_argument("--out", default="seisfm-demo", metavar="DIR", help="output folder (default: ./seisfm-demo)")
    p.add_argument("--size", type=int, default=128, help="cube size N for an N^3 survey (default: %(default)s)")
    p.add_argument("--seed", type=int, default=0, help="survey seed (default: %(default)s)")
    p.add_argument("--stride", type=int, default=2, help="feature grid stride (default: %(default)s)")
    p.add_argument("--clicks", type=int, default=3, help="positive clicks on the flat spot, and as many negatives (default: %(default)s)")
    p.add_argument("--model", default=None, help="embedder id (default: the registry default)")
    p.add_argument("--gui", action="store_true", help="open napari with all layers and the Click-to-map dock")
    p.set_defaults(run=run)


class _Clock:
    def __init__(self):
        self.times = {}

    def __call__(self, name):
        clock = self

        class _T:
            def __enter__(self):
                self.t0 = time.perf_counter()

            def __exit__(self, *exc):
                clock.times[name] = round(time.perf_counter() - self.t0, 3)

        return _T()


def run(args) -> int:
    import json
    from pathlib import Path

    import numpy as np

    from .. import bench
    from ..cube import open_cube
    from ..display import world_transform
    from ..errors import SeisfmError
    from ..extract import extract_features
    from ..io.segy import write_segy
    from ..search import DEFAULT_SEGMENTER, FeatureMatrix, KnnSegmenter, make_segmenter
    from ..session import ClickToMapSession
    from ..synthetic import make_survey, survey_geometry

    if args.size < 32:
        raise SeisfmError(f"--size: at least 32 samples per axis, got {args.size}")
    if args.clicks < 1:
        raise SeisfmError(f"--clicks {args.clicks}: at least one positive click (and as many negatives)")
    if args.seed < 0:
        raise SeisfmError(f"--seed {args.seed}: must be 0 or more")
    from .synth import check_memory

    check_memory((args.size,) * 3, "--size")
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    clock = _Clock()
    t_start = time.perf_counter()

    with clock("synthetic"):
        survey = make_survey((args.size,) * 3, seed=args.seed)
        cube_path = write_segy(out / "synthetic.sgy", survey.amplitude, survey_geometry(survey))
        np.save(out / "ground_truth.npy", survey.labels)
        cube = open_cube(cube_path)
    with clock("embed"):
        fv = extract_features(cube, out / "features.zarr", model=args.model, stride=args.stride, overwrite=True)
    with clock("load"):
        fm = FeatureMatrix.from_volume(fv, cube=cube)
    truth = bench.grid_labels(survey.labels, fm.grid)
    flat = survey.classes["flat_spot"]
    if not (truth == flat).any():
        raise SeisfmError(f"the {args.size}^3 survey has no flat spot on the stride-{args.stride} grid; try a larger --size")

    # --- scripted clicks on the flat spot, as a user would place them on one inline, through the same
    # session the Click-to-map dock is a view of (the default decision: a probe learned from the clicks)
    rng = np.random.default_rng(args.seed)
    inline, pos, neg = bench.pick_clicks(truth, flat, args.clicks, args.clicks, rng)
    session = ClickToMapSession(fm, n_matches=10, features_path=str(fv.path), cube_path=str(cube_path),
                                cube_fingerprint=cube.geometry.fingerprint())
    survey_pts = lambda g: [fm.to_survey(p) for p in g]  # noqa: E731
    with clock("first_map"):  # one click -> map, matches and mask, as the dock shows them
        session.add_click(survey_pts(pos[:1])[0])
        session.update()
    for p in survey_pts(pos[1:]):
        session.add_click(p)
    for p in survey_pts(neg[:-1]):
        session.add_click(p, negative=True)
    session.update()
    with clock("map_update_one_click"):
        session.add_click(survey_pts(neg[-1:])[0], negative=True)
        result = session.update()
    score, threshold, mask, matches = result.score, result.threshold, result.mask.astype(bool), result.matches
    target = truth == flat

    # --- segmentation from 100 labelled grid points per class: the default method, and kNN (the paper's protocol)
    present = [int(c) for c in np.unique(truth)]
    support, support_labels = bench.sample_support(truth, present, 100, rng, fm.valid)
    seg = make_segmenter(fm, support, support_labels)
    with clock("knn_slice"):
        seg.segment_slice(0, inline)
    with clock("knn_cube"):
        knn = seg.segment()
    pred = knn.classes - 1
    miou, per_class = bench.mean_iou(pred, truth, present)
    knn_miou = bench.mean_iou(KnnSegmenter(fm, support, support_labels, k=5).segment().classes - 1, truth, present)[0]
    names = survey.label_names()

    # --- files: maps on the feature grid, interpretation to reopen in the widget, PNGs
    np.save(out / "similarity.npy", score)
    np.save(out / "knn_classes.npy", knn.classes)
    placement = world_transform(fm.cube_geometry, fm.grid.stride, fm.grid.origin)
    training = np.zeros(fm.shape, np.int32)
    training[tuple(support.T)] = support_labels
    session.save(out / "interpretation.json", labels=training, labels_name="training labels",
                 labels_scale=placement["scale"], labels_translate=placement["translate"])
    with clock("pngs"):
        pngs, how = write_pngs(out, survey, cube, fm, score, mask, knn.classes, survey_pts(pos), survey_pts(neg), inline)

    il_number = fm.to_survey((inline, 0, 0))[0]
    report = {
        "size": args.size, "seed": args.seed, "stride": list(fm.grid.stride), "grid": list(fm.shape),
        "embedder": fv.model, "dim": fm.dim, "dtype": fm.dtype, "kernel": session.kernel_name,
        "clicks": {"inline": il_number, "positive": survey_pts(pos), "negative": survey_pts(neg)},
        "flat_spot": {"threshold": round(threshold, 4), "iou": round(bench.iou(mask, target), 4),
                      "auc": round(bench.auc(score, target), 4), "grid_points": int(target.sum()),
                      "selected": int(mask.sum())},
        "knn": {"method": DEFAULT_SEGMENTER, "support_per_class": 100, "miou": round(miou, 4),
                "knn_protocol_miou": round(knn_miou, 4),
                "iou_per_class": {names[c]: round(v, 4) for c, v in per_class.items()}},
        "top_matches": [{"rank": m.rank, "survey": m.survey, "score": round(m.score, 4),
                         "flat_spot": bool(target[m.grid_index])} for m in matches],
        "seconds": {**clock.times, "total": round(time.perf_counter() - t_start, 3)},
        "pngs": [p.name for p in pngs], "png_renderer": how,
    }
    (out / "report.json").write_text(json.dumps(report, indent=1))
    print_report(report, out)
    if args.gui:
        open_gui(out, cube_path, fv.path)
    return 0


def print_report(r: dict, out) -> None:
    s = r["seconds"]
    print(f"seisfm demo: {r['size']}^3 synthetic survey (seed {r['seed']}), {r['embedder']} embeddings "
          f"{r['dim']}-d {r['dtype']} on a {'x'.join(map(str, r['grid']))} grid (stride {r['stride'][0]})")
    print(f"  timings: synthetic {s['synthetic']:.2f} s, embed {s['embed']:.2f} s, load {s['load']:.2f} s, "
          f"first map {1e3 * s['first_map']:.1f} ms, map after one more click {1e3 * s['map_update_one_click']:.1f} ms "
          f"({r['kernel']}), segmentation slice {1e3 * s['knn_slice']:.0f} ms, cube {s['knn_cube']:.2f} s, PNGs {s['pngs']:.2f} s, "
          f"total {s['total']:.1f} s")
    f = r["flat_spot"]
    c = r["clicks"]
    print(f"  flat spot, {len(c['positive'])} positive + {len(c['negative'])} negative clicks on inline {c['inline']:g}: "
          f"IoU {f['iou']:.3f} at threshold {f['threshold']:.3f}, connected to the clicks (selects {f['selected']} grid points; the flat spot has "
          f"{f['grid_points']}), ROC AUC {f['auc']:.3f}; {sum(m['flat_spot'] for m in r['top_matches'])} of the top "
          f"{len(r['top_matches'])} matches on the flat spot")
    k = r["knn"]
    per = ", ".join(f"{n} {v:.2f}" for n, v in k["iou_per_class"].items())
    print(f"  segmentation ({k['method']}, 100 points per class): mIoU {k['miou']:.3f} ({per}); "
          f"kNN protocol (k=5) on the same points: {k['knn_protocol_miou']:.3f}")
    print(f"  wrote {out}/: {', '.join(r['pngs'])} ({r['png_renderer']}), similarity.npy, knn_classes.npy, "
          f"interpretation.json, report.json, synthetic.sgy, features.zarr")


# ---------------------------------------------------------------------- pictures
def write_pngs(out, survey, cube, fm, score, mask, classes, pos, neg, inline):
    """napari screenshots when a display is there (Xvfb counts), else matplotlib figures of the inline."""
    import os

    if os.environ.get("DISPLAY") or os.environ.get("WAYLAND_DISPLAY"):
        try:
            return napari_pngs(out, survey, cube, fm, score, mask, classes, pos, neg, inline), "napari"
        except Exception as exc:  # noqa: BLE001 - no OpenGL etc.: the figures still get made
            print(f"  (napari screenshot failed: {exc.__class__.__name__}: {exc}; using matplotlib)")
    return matplotlib_pngs(out, survey, fm, score, mask, classes, pos, neg, inline), "matplotlib"


def build_viewer(viewer, cube, fm, score, mask, classes, pos, neg, labels=None):
    """Add the demo's layers to ``viewer`` (shared by the screenshots and --gui)."""
    import numpy as np

    from ..display import KNN, SIMILARITY, SIMILARITY_COLORMAP, THRESHOLDED, cube_layer, orient_viewer, world_transform

    data, kw, _ = cube_layer(cube, name="synthetic")
    seismic = viewer.add_image(data, **kw)
    t = world_transform(fm.cube_geometry, fm.grid.stride, fm.grid.origin)
    if labels is not None:
        viewer.add_labels(labels, name="ground truth", opacity=0.4, visible=False, **world_transform(cube.geometry))
    finite = score[np.isfinite(score)]
    low = float(np.nanmin(score[mask])) if mask.any() else float(np.percentile(finite, 99))  # tint what the mask holds
    viewer.add_image(score, name=SIMILARITY, colormap=dict(SIMILARITY_COLORMAP), blending="translucent",
                     contrast_limits=(low, max(float(finite.max()), low + 1e-3)), **t)
    viewer.add_labels(mask.astype(np.uint8), name=THRESHOLDED, opacity=0.35, visible=False, **t)
    viewer.add_labels(classes, name=KNN, opacity=0.45, visible=False, **t)
    size = max(t["scale"])  # one grid cell along its longest side, in survey units
    viewer.add_points(np.asarray(pos, float), name="Positive", face_color="lime", size=size, out_of_slice_display=True)
    viewer.add_points(np.asarray(neg, float), name="Negative", face_color="magenta", size=size, out_of_slice_display=True)
    orient_viewer(viewer, seismic)
    return seismic


def napari_pngs(out, survey, cube, fm, score, mask, classes, pos, neg, inline):
    import napari

    from ..display import KNN, SIMILARITY

    viewer = napari.Viewer(show=True)  # a hidden window renders nothing here (no GL context until shown)
    try:
        build_viewer(viewer, cube, fm, score, mask, classes, pos, neg)
        viewer.dims.set_point(0, pos[0][0])
        viewer.window.resize(900, 700)
        viewer.reset_view()
        paths = []
        sim = out / "demo_similarity.png"
        viewer.screenshot(str(sim), canvas_only=True)
        paths.append(sim)
        viewer.layers[SIMILARITY].visible = False
        viewer.layers[KNN].visible = True
        knn = out / "demo_knn.png"
        viewer.screenshot(str(knn), canvas_only=True)
        paths.append(knn)
        return paths
    finally:
        viewer.close()


def matplotlib_pngs(out, survey, fm, score, mask, classes, pos, neg, inline):
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import numpy as np

    il = int(fm.grid.cube_index((inline, 0, 0))[0])
    amp = survey.amplitude[il].T  # (time, crossline)
    nx, nt = survey.amplitude.shape[1:]
    dt = survey.sample_interval_ms
    extent = (survey.first_crossline - 0.5, survey.first_crossline + nx - 0.5, (nt - 0.5) * dt, -0.5 * dt)
    s, st = fm.grid.stride, fm.grid.origin
    gextent = (survey.first_crossline + st[1] - s[1] / 2, survey.first_crossline + st[1] + s[1] * (fm.shape[1] - 0.5),
               (st[2] + s[2] * (fm.shape[2] - 0.5)) * dt, (st[2] - s[2] / 2) * dt)
    lim = float(np.percentile(np.abs(amp), 99))
    paths = []
    for name, over, cmap in (("similarity", score[inline].T, "hot"), ("knn", np.ma.masked_equal(classes[inline].T, 0), "tab10")):
        fig, ax = plt.subplots(figsize=(7, 5), dpi=90)
        ax.imshow(amp, cmap="gray", vmin=-lim, vmax=lim, extent=extent, aspect="auto")
        if name == "similarity":
            lo = np.nanpercentile(score, 50)
            im = ax.imshow(np.ma.masked_less(over, lo), cmap=cmap, alpha=0.6, extent=gextent, aspect="auto",
                           vmin=lo, vmax=np.nanmax(score))
            gx = survey.first_crossline + st[1] + s[1] * np.arange(fm.shape[1])
            gt = (st[2] + s[2] * np.arange(fm.shape[2])) * dt
            ax.contour(gx, gt, mask[inline].T.astype(float), levels=[0.5], colors="cyan", linewidths=0.8)
            fig.colorbar(im, ax=ax, label="similarity")
        else:
            ax.imshow(over, cmap=cmap, alpha=0.5, extent=gextent, aspect="auto", interpolation="nearest", vmin=1, vmax=10)
        truth = survey.masks["flat_spot"][il].T
        if truth.any():
            ax.contour(survey.first_crossline + np.arange(nx), np.arange(nt) * dt, truth.astype(float), levels=[0.5],
                       colors="lime", linewidths=0.8)
        for pts, colour in ((pos, "lime"), (neg, "magenta")):
            p = np.asarray(pts, float).reshape(-1, 3)
            ax.scatter(p[:, 1], p[:, 2], c=colour, s=30, edgecolors="white")
        ax.set_xlabel("crossline")
        ax.set_ylabel(f"time ({'ms'})")
        ax.set_title(f"inline {survey.first_inline + il}: {name} (green line: true flat spot"
                     + (", cyan: above threshold)" if name == "similarity" else ")"), fontsize=9)
        path = out / f"demo_{name}.png"
        fig.tight_layout()
        fig.savefig(path)
        plt.close(fig)
        paths.append(path)
    return paths


def open_gui(out, cube_path, features_path):
    """napari with the seismic, the Click-to-map dock loaded with the demo's store and interpretation."""
    import napari

    from ..cube import open_cube
    from ..display import cube_layer, orient_viewer

    viewer = napari.Viewer(title="seisfm demo")
    cube = open_cube(cube_path)
    data, kw, _ = cube_layer(cube, name="synthetic")
    seismic = viewer.add_image(data, **kw)
    orient_viewer(viewer, seismic)
    # the dock the Plugins menu opens, through the plugin manifest: the CLI never imports the widgets
    _, widget = viewer.window.add_plugin_dock_widget("napari-seisfm", "Click-to-map")
    widget.load_features(str(features_path))

    def _when_loaded():
        if widget.features is None:
            return
        timer.stop()
        widget.open_interpretation(out / "interpretation.json")
        widget.run_knn()

    from qtpy.QtCore import QTimer

    timer = QTimer()
    timer.timeout.connect(_when_loaded)
    timer.start(100)
    napari.run()
