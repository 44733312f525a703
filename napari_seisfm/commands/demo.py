"""`seisfm demo`: the whole click-to-map loop on a synthetic survey, with timings and quality.

Synthetic cube (SEG-Y) -> default embedder -> the simulated interpreter of `seisfm bench` on the flat
spot (one click at the centre of the largest error region at a time, against the mask the product shows
with its default decision; IoU after every click and the clicks to IoU 0.8) -> scripted clicks as a user
would place them (positives on the ground-truth flat spot of one inline, negatives on background) through
the session the Click-to-map dock is a view of: map, the region connected to the clicks, top matches ->
segmentation from 100 labelled grid points per class (the default method, with the kNN protocol's mIoU
beside it) -> figures in survey units (matplotlib), the maps as .npy, a report, and an interpretation file
the Click-to-map dock can reopen. ``--gui`` opens napari with the cube and the dock loaded.
"""

from __future__ import annotations

import time

FIGURES = ("demo_interpreter.png", "demo_clicks.png", "demo_segmentation.png")
FIGURE_INCHES, FIGURE_DPI = (11.0, 4.8), 100  # every figure is 1100 x 480 pixels


def register(sub):
    from ..parsing import integer

    p = sub.add_parser(
        "demo", help="synthetic survey -> embeddings -> clicks on the flat spot -> map and segmentation", description=__doc__
    )
    p.add_argument("--out", default="seisfm-demo", metavar="DIR", help="output folder (default: ./seisfm-demo)")
    p.add_argument(
        "--size",
        type=integer("--size: at least 32 samples per axis, got {value}", lo=32),
        default=128,
        help="cube size N for an N^3 survey (default: %(default)s)",
    )
    p.add_argument(
        "--seed", type=integer("--seed {value}: must be 0 or more", lo=0), default=0, help="survey seed (default: %(default)s)"
    )
    p.add_argument("--stride", type=int, default=2, help="feature grid stride (default: %(default)s)")
    p.add_argument(
        "--clicks",
        type=integer("--clicks {value}: at least one positive click (and as many negatives)", lo=1),
        default=3,
        help="scripted positive clicks on the flat spot, and as many negatives (default: %(default)s)",
    )
    p.add_argument(
        "--max-clicks",
        type=integer("--max-clicks must be at least 1, got {value}", lo=1),
        default=None,
        metavar="N",
        help="clicks the simulated interpreter may make (default: as in `seisfm bench`)",
    )
    p.add_argument("--model", default=None, help="embedder id (default: the registry default)")
    p.add_argument("--gui", action="store_true", help="open napari with the cube and the Click-to-map dock")
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

    from .. import quality
    from ..display import world_transform
    from ..errors import SeisfmError
    from ..extract import extract_features
    from ..io import open_cube
    from ..io.segy import write_segy
    from ..search import DEFAULT_SEGMENTER, FeatureMatrix, KnnSegmenter, make_segmenter
    from ..session import ClickToMapSession
    from ..synthetic import make_survey, survey_geometry

    if args.max_clicks is None:
        args.max_clicks = quality.MAX_CLICKS
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
    truth = quality.grid_labels(survey.labels, fm.grid)
    flat = survey.classes["flat_spot"]
    target = truth == flat
    if not target.any():
        raise SeisfmError(f"the {args.size}^3 survey has no flat spot on the stride-{args.stride} grid; try a larger --size")
    session = ClickToMapSession(
        fm, n_matches=10, features_path=str(fv.path), cube_path=str(cube_path), cube_fingerprint=cube.geometry.fingerprint()
    )
    survey_pts = lambda g: [fm.grid_to_survey(p) for p in g]  # noqa: E731

    # --- the headline: `seisfm bench`'s simulated interpreter with the product's defaults (the session's
    # decision and its "connected to the clicks" mask), IoU after every click
    with clock("interpreter"):
        sim = quality.simulated_interpreter(
            fm, target, decision=session.decision, grow=session.connected, max_clicks=args.max_clicks, trace=True
        )
    reached = sim["noc"] <= args.max_clicks
    shown = sim["noc"] if reached else len(sim["clicks"])  # the figure shows the mask at NoC (or after the last click)
    sim_score, sim_mask = _interpreter_map(fm, sim, shown)

    # --- scripted clicks on the flat spot, as a user would place them on one inline, through the same
    # session the Click-to-map dock is a view of
    rng = np.random.default_rng(args.seed)
    inline, pos, neg = quality.pick_clicks(truth, flat, args.clicks, args.clicks, rng)
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

    # --- segmentation from 100 labelled grid points per class: the default method, and kNN (the paper's protocol)
    present = [int(c) for c in np.unique(truth)]
    support, support_labels = quality.sample_support(truth, present, 100, rng, fm.valid)
    seg = make_segmenter(fm, support, support_labels)
    with clock("knn_slice"):
        seg.segment_slice(0, inline)
    with clock("knn_cube"):
        knn = seg.segment()
    pred = knn.classes - 1
    miou, per_class = quality.mean_iou(pred, truth, present)
    knn_miou = quality.mean_iou(KnnSegmenter(fm, support, support_labels, k=5).segment().classes - 1, truth, present)[0]
    names = survey.label_names()

    # --- files: maps on the feature grid, interpretation to reopen in the dock, figures
    np.save(out / "similarity.npy", score)
    np.save(out / "knn_classes.npy", knn.classes)
    placement = world_transform(fm.cube_geometry, fm.grid.stride, fm.grid.origin)
    training = np.zeros(fm.shape, np.int32)
    training[tuple(support.T)] = support_labels
    session.save(
        out / "interpretation.json",
        labels=training,
        labels_name="training labels",
        labels_scale=placement["scale"],
        labels_translate=placement["translate"],
    )
    il_number = fm.grid_to_survey((inline, 0, 0))[0]
    report = {
        "size": args.size,
        "seed": args.seed,
        "stride": list(fm.grid.stride),
        "grid": list(fm.shape),
        "embedder": fv.model,
        "dim": fm.dim,
        "dtype": fm.dtype,
        "kernel": session.kernel_name,
        "interpreter": {
            "decision": sim["decision"],
            "connected": sim["grow"],
            "max_clicks": args.max_clicks,
            "ious": sim["ious"][: len(sim["clicks"])],
            "noc": sim["noc"] if reached else None,
            "noc_iou": quality.NOC_IOU,
            "shown_after": shown,
            "shown_iou": round(quality.iou(sim_mask, target & fm.valid.reshape(fm.shape)), 4),
            "clicks": [{"survey": fm.grid_to_survey(c[:3]), "positive": c[3] > 0} for c in sim["clicks"]],
        },
        "clicks": {"inline": il_number, "positive": survey_pts(pos), "negative": survey_pts(neg)},
        "flat_spot": {
            "decision": session.decision,
            "threshold": round(threshold, 4),
            "iou": round(quality.iou(mask, target), 4),
            "auc": round(quality.auc(score, target), 4),
            "grid_points": int(target.sum()),
            "selected": int(mask.sum()),
        },
        "knn": {
            "method": DEFAULT_SEGMENTER,
            "support_per_class": 100,
            "miou": round(miou, 4),
            "knn_protocol_miou": round(knn_miou, 4),
            "iou_per_class": {names[c]: round(v, 4) for c, v in per_class.items()},
        },
        "top_matches": [
            {"rank": m.rank, "survey": m.survey, "score": round(m.score, 4), "flat_spot": bool(target[m.grid_index])}
            for m in matches
        ],
    }
    with clock("figures"):
        pngs = write_figures(
            out, report, survey, fm, truth, sim["clicks"], (sim_score, sim_mask), (score, mask, pos, neg, inline), knn.classes
        )
    report["seconds"] = {**clock.times, "total": round(time.perf_counter() - t_start, 3)}
    report["pngs"] = [p.name for p in pngs]
    (out / "report.json").write_text(json.dumps(report, indent=1))
    print_report(report, out)
    if args.gui:
        open_gui(out, cube_path, fv.path)
    return 0


def _interpreter_map(fm, sim: dict, n: int):
    """The map and the mask the product shows after the interpreter's first ``n`` clicks (the same calls as
    the protocol: the decision by name, its default threshold, the region connected to the clicks)."""
    from .. import quality
    from ..search import make_search

    search = make_search(fm, sim["decision"])
    for *g, sign in sim["clicks"][:n]:
        search.add(tuple(g), negative=sign < 0)
    score = search.score_map()
    return score, quality.product_mask(search, score, sim["grow"])


def _ious_text(ious) -> str:
    return " ".join(f"{v:.2f}" for v in ious)


def headline(r: dict) -> str:
    """The interpreter's line: IoU after each click and the clicks to IoU 0.8 (or that it was not reached)."""
    s = r["interpreter"]
    mask = "connected to the clicks" if s["connected"] else "every body above the threshold"
    if s["noc"] is not None:
        result = f"IoU {s['noc_iou']:g} reached after {s['noc']} click{'s' * (s['noc'] > 1)} (NoC@{s['noc_iou']:g} = {s['noc']})"
    else:
        result = (
            f"IoU {s['noc_iou']:g} not reached in {s['max_clicks']} clicks (best {max(s['ious']):.2f}, last {s['ious'][-1]:.2f})"
        )
    return (
        f"  flat spot, simulated interpreter ({s['decision']} decision, mask {mask}; each click at the centre "
        f"of the largest error region): {result}; IoU after each click: {_ious_text(s['ious'])}"
    )


def print_report(r: dict, out) -> None:
    s = r["seconds"]
    print(
        f"seisfm demo: {r['size']}^3 synthetic survey (seed {r['seed']}), {r['embedder']} embeddings "
        f"{r['dim']}-d {r['dtype']} on a {'x'.join(map(str, r['grid']))} grid (stride {r['stride'][0]})"
    )
    print(headline(r))
    f = r["flat_spot"]
    c = r["clicks"]
    print(
        f"  flat spot, {len(c['positive'])} positive + {len(c['negative'])} negative fixed clicks on inline {c['inline']:g}: "
        f"IoU {f['iou']:.3f} at threshold {f['threshold']:.3f} ({f['decision']}), connected to the clicks (selects "
        f"{f['selected']} grid points; the flat spot has {f['grid_points']}), ROC AUC {f['auc']:.3f}; "
        f"{sum(m['flat_spot'] for m in r['top_matches'])} of the top {len(r['top_matches'])} matches on the flat spot"
    )
    k = r["knn"]
    per = ", ".join(f"{n} {v:.2f}" for n, v in k["iou_per_class"].items())
    print(
        f"  segmentation ({k['method']}, 100 points per class): mIoU {k['miou']:.3f} ({per}); "
        f"kNN protocol (k=5) on the same points: {k['knn_protocol_miou']:.3f}"
    )
    print(
        f"  timings: synthetic {s['synthetic']:.2f} s, embed {s['embed']:.2f} s, load {s['load']:.2f} s, "
        f"interpreter {s['interpreter']:.2f} s ({len(r['interpreter']['ious'])} clicks), "
        f"first map {1e3 * s['first_map']:.1f} ms, map after one more click {1e3 * s['map_update_one_click']:.1f} ms "
        f"({r['kernel']}), segmentation slice {1e3 * s['knn_slice']:.0f} ms, cube {s['knn_cube']:.2f} s, "
        f"figures {s['figures']:.2f} s, total {s['total']:.1f} s"
    )
    print(
        f"  wrote {out}/: {', '.join(r['pngs'])}, similarity.npy, knn_classes.npy, ground_truth.npy, "
        f"interpretation.json, report.json, synthetic.sgy, features.zarr"
    )


# ---------------------------------------------------------------------- figures
class _Section:
    """One inline of the cube and of the feature grid, placed in survey units (crossline, time/depth)."""

    def __init__(self, survey, fm, grid_inline: int):
        import numpy as np

        geo = fm.cube_geometry
        self.grid_inline = int(grid_inline)
        self.cube_inline = int(fm.grid.cube_index((grid_inline, 0, 0))[0])
        self.number = float(geo.ilines[self.cube_inline])
        self.amplitude = survey.amplitude[self.cube_inline].T  # (time, crossline)
        self.xlines, self.samples = np.asarray(geo.xlines, float), np.asarray(geo.samples, float)
        self.unit, self.domain = geo.sample_unit, geo.domain
        dx, dt = geo.spacing[1:]
        self.extent = (self.xlines[0] - dx / 2, self.xlines[-1] + dx / 2, self.samples[-1] + dt / 2, self.samples[0] - dt / 2)
        xg = np.array([fm.grid_to_survey((grid_inline, j, 0))[1] for j in range(fm.shape[1])])
        tg = np.array([fm.grid_to_survey((grid_inline, 0, k))[2] for k in range(fm.shape[2])])
        gx, gt = dx * fm.grid.stride[1], dt * fm.grid.stride[2]
        self.grid_x, self.grid_t = xg, tg
        self.grid_extent = (xg[0] - gx / 2, xg[-1] + gx / 2, tg[-1] + gt / 2, tg[0] - gt / 2)
        self.clip = float(np.percentile(np.abs(self.amplitude), 99)) or 1.0  # symmetric robust contrast
        self.truth = survey.masks["flat_spot"][self.cube_inline].T

    def draw(self, ax, title: str):
        ax.imshow(
            self.amplitude,
            cmap="gray",
            vmin=-self.clip,
            vmax=self.clip,
            extent=self.extent,
            aspect="auto",
            interpolation="bilinear",
        )
        ax.set_xlim(self.extent[:2])
        ax.set_ylim(self.extent[2:])
        ax.set_xlabel("crossline")
        ax.set_ylabel(f"{self.domain} ({self.unit})")
        ax.set_title(title, fontsize=10)

    def outline(self, ax, grid_mask, **style):
        """Contour of a mask on the feature grid."""
        if grid_mask.any():
            ax.contour(self.grid_x, self.grid_t, grid_mask.T.astype(float), levels=[0.5], **style)

    def outline_truth(self, ax, **style):
        if self.truth.any():
            ax.contour(self.xlines, self.samples, self.truth.astype(float), levels=[0.5], **style)


def _figure():
    from matplotlib.figure import Figure  # no pyplot: no GUI backend, nothing global changed

    return Figure(figsize=FIGURE_INCHES, dpi=FIGURE_DPI, layout="constrained")


def _map_panel(fig, ax, sec, grid_score, decision: str):
    """The decision's map as a translucent colour over the seismic, with its colour bar."""
    import numpy as np
    from matplotlib.colors import LinearSegmentedColormap

    from ..display import SIMILARITY_COLORMAP

    finite = grid_score[np.isfinite(grid_score)]
    lo, hi = (0.0, 1.0) if decision == "probe" else (float(np.percentile(finite, 50)), float(finite.max()))
    cmap = LinearSegmentedColormap.from_list("similarity", SIMILARITY_COLORMAP["colors"])  # the desk's: clear -> red
    im = ax.imshow(
        np.ma.masked_invalid(grid_score.T),
        cmap=cmap,
        vmin=lo,
        vmax=hi,
        extent=sec.grid_extent,
        aspect="auto",
        interpolation="nearest",
    )
    label = "flat-spot probability (probe)" if decision == "probe" else f"{decision} similarity"
    fig.colorbar(im, ax=ax, label=label, fraction=0.05, pad=0.02)


def _click_markers(ax, sec, fm, clicks):
    """Clicks on the section's grid inline: (grid index, positive) pairs; returns legend handles."""
    from matplotlib.lines import Line2D

    handles = []
    for positive, colour, marker, name in ((True, "lime", "o", "positive click"), (False, "magenta", "X", "negative click")):
        every = [g for g, p in clicks if p == positive]
        pts = [fm.grid_to_survey(g) for g in every if int(g[0]) == sec.grid_inline]
        if pts:
            ax.scatter(
                [p[1] for p in pts],
                [p[2] for p in pts],
                s=70,
                c=colour,
                marker=marker,
                edgecolors="black",
                linewidths=0.8,
                zorder=5,
            )
            handles.append(
                Line2D(
                    [],
                    [],
                    ls="",
                    marker=marker,
                    markerfacecolor=colour,
                    markeredgecolor="black",
                    markersize=8,
                    label=f"{name}s on this inline: {len(pts)} of {len(every)}",
                )
            )
    return handles


def _outline_handles(mask_label: str):
    from matplotlib.lines import Line2D

    return [
        Line2D([], [], color="cyan", lw=1.5, label=mask_label),
        Line2D([], [], color="lime", lw=1.2, ls="--", label="true flat spot"),
    ]


def write_figures(out, r: dict, survey, fm, truth, sim_clicks, interpreter, fixed, classes) -> list:
    """Three PNGs of FIGURE_INCHES at FIGURE_DPI, drawn with matplotlib from the arrays, in survey units.
    ``truth``: the class labels on the feature grid; ``sim_clicks``: the interpreter's (i, j, k, +1/-1)."""
    import numpy as np
    from matplotlib.colors import BoundaryNorm, ListedColormap

    sim_score, sim_mask = interpreter
    score, mask, pos, neg, inline = fixed
    s = r["interpreter"]
    paths = []

    # 1. the headline: the interpreter's mask when it reached IoU 0.8 (or after its last click), and its IoU curve
    clicks = [(tuple(int(v) for v in c[:3]), c[3] > 0) for c in sim_clicks]
    first = clicks[0][0]
    sec = _Section(survey, fm, first[0])
    fig = _figure()
    ax, ax2 = fig.subplots(1, 2, width_ratios=[2.2, 1])
    n = s["shown_after"]
    sec.draw(ax, f"inline {sec.number:g}: mask after {n} click{'s' * (n > 1)}, IoU {s['shown_iou']:.2f}")
    _map_panel(fig, ax, sec, sim_score[sec.grid_inline], s["decision"])
    sec.outline(ax, sim_mask[sec.grid_inline], colors="cyan", linewidths=1.5)
    sec.outline_truth(ax, colors="lime", linewidths=1.2, linestyles="--")
    handles = _outline_handles("mask shown (threshold, connected)") + _click_markers(ax, sec, fm, clicks[:n])
    ax.legend(handles=handles, loc="lower left", fontsize=8, framealpha=0.85)
    ious = s["ious"]
    ax2.plot(np.arange(1, len(ious) + 1), ious, "o-", color="tab:blue", ms=4, label="IoU of the mask shown")
    ax2.axhline(s["noc_iou"], color="gray", ls="--", lw=1, label=f"IoU {s['noc_iou']:g}")
    if s["noc"] is not None:
        ax2.axvline(s["noc"], color="tab:green", ls=":", lw=1.5, label=f"NoC@{s['noc_iou']:g} = {s['noc']}")
    ax2.set_xlim(0.5, s["max_clicks"] + 0.5)
    ax2.set_ylim(0, 1.02)
    ax2.set_xlabel("click")
    ax2.set_ylabel("IoU with the true flat spot")
    ax2.grid(alpha=0.3)
    ax2.legend(loc="lower right", fontsize=8)
    ax2.set_title(
        "IoU after each click" if s["noc"] is not None else f"IoU {s['noc_iou']:g} not reached in {s['max_clicks']} clicks",
        fontsize=10,
    )
    fig.suptitle(
        f"Simulated interpreter on the flat spot, default decision ({s['decision']}): "
        + (f"NoC@{s['noc_iou']:g} = {s['noc']}" if s["noc"] is not None else f"IoU {s['noc_iou']:g} not reached"),
        fontsize=11,
    )
    paths.append(_save(fig, out / FIGURES[0]))

    # 2. the fixed clicks: 3 + 3 on one inline, the map and the mask the dock shows
    f = r["flat_spot"]
    sec = _Section(survey, fm, inline)
    fig = _figure()
    ax = fig.subplots()
    sec.draw(
        ax,
        f"inline {sec.number:g}: {len(pos)} positive + {len(neg)} negative fixed clicks, "
        f"IoU {f['iou']:.3f} at threshold {f['threshold']:.2f}, ROC AUC {f['auc']:.3f}",
    )
    _map_panel(fig, ax, sec, score[inline], f["decision"])
    sec.outline(ax, mask[inline], colors="cyan", linewidths=1.5)
    sec.outline_truth(ax, colors="lime", linewidths=1.2, linestyles="--")
    fixed_clicks = [(tuple(p), True) for p in pos] + [(tuple(p), False) for p in neg]
    handles = _outline_handles("mask shown (threshold, connected)") + _click_markers(ax, sec, fm, fixed_clicks)
    ax.legend(handles=handles, loc="lower left", fontsize=8, framealpha=0.85)
    paths.append(_save(fig, out / FIGURES[1]))

    # 3. segmentation next to the ground truth, one colour per class and the class names on the colour bar
    k = r["knn"]
    names = survey.label_names()
    colours = ["#ffffff00"] + [_CLASS_COLOURS[i % len(_CLASS_COLOURS)] for i in range(len(names) - 1)]
    cmap, norm = ListedColormap(colours), BoundaryNorm(np.arange(len(names) + 1) - 0.5, len(names))
    fig = _figure()
    axes = fig.subplots(1, 2, sharey=True)
    for ax, grid_classes, title in (
        (axes[0], truth[inline], "ground truth (on the feature grid)"),
        (axes[1], classes[inline] - 1, f"{k['method']} segmentation, mIoU {k['miou']:.3f}"),
    ):
        sec.draw(ax, f"inline {sec.number:g}: {title}")
        im = ax.imshow(
            np.ma.masked_less(grid_classes.T, 0),
            cmap=cmap,
            norm=norm,
            alpha=0.6,
            extent=sec.grid_extent,
            aspect="auto",
            interpolation="nearest",
        )
    axes[1].set_ylabel("")
    bar = fig.colorbar(im, ax=axes, ticks=np.arange(len(names)), fraction=0.04, pad=0.02)
    bar.ax.set_yticklabels([n.replace("_", " ") + (" (not drawn)" if i == 0 else "") for i, n in enumerate(names)], fontsize=8)
    fig.suptitle(
        f"Segmentation from 100 labelled grid points per class ({k['method']}); kNN protocol mIoU {k['knn_protocol_miou']:.3f}",
        fontsize=11,
    )
    paths.append(_save(fig, out / FIGURES[2]))
    return paths


_CLASS_COLOURS = ["#e6194b", "#ffe119", "#3cb44b", "#f58231", "#911eb4", "#42d4f4", "#f032e6", "#bfef45", "#4363d8"]


def _save(fig, path):
    fig.savefig(path, dpi=FIGURE_DPI)
    return path


def open_gui(out, cube_path, features_path):
    """napari with the seismic, the Click-to-map dock loaded with the demo's store and interpretation."""
    import napari

    viewer = napari.Viewer(title="seisfm demo")
    # the cube through the plugin's reader (survey units, inline view) and the dock the Plugins menu opens,
    # both through the plugin manifest: the CLI never imports the napari glue
    viewer.open(str(cube_path), plugin="napari-seisfm")
    _, widget = viewer.window.add_plugin_dock_widget("napari-seisfm", "Click-to-map")
    widget.load_features(str(features_path))

    def _when_loaded():
        if widget.features is None:
            return
        timer.stop()
        interp = widget.files.open_interpretation(out / "interpretation.json")
        if interp is not None and interp.labels is not None:
            widget.segmentation.run_knn()

    from qtpy.QtCore import QTimer

    timer = QTimer()
    timer.timeout.connect(_when_loaded)
    timer.start(100)
    napari.run()
