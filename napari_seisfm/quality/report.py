"""The quality suite's results as a reader meets them: Markdown tables (one per model, the best read-out of
each task in bold), JSON, and the figures (mIoU bars, NoC curves, the prediction panels).

Kept apart from :mod:`.suite`, which runs the tasks: a result dict from any run (or a results.json read
back) can be reported again without running anything.
"""

from __future__ import annotations

import json
from collections import defaultdict
from pathlib import Path

import numpy as np

from ..search.methods import DEFAULT_DECISION, DEFAULT_SEGMENTER
from . import protocols as P
from .suite import METHODS


def _mean(rows, key):
    vals = [r[key] for r in rows if r.get(key) is not None and np.isfinite(r[key])]
    return float(np.mean(vals)) if vals else float("nan")


def segmentation_tables(result: dict) -> list[str]:
    """One table per model: tasks x read-outs (mIoU, mean over seeds), the best read-out of each task in bold
    and named, the mean over the synthetic tasks, and the read-outs' mean seconds (fit + whole grid)."""
    seg = defaultdict(list)
    for r in result["segmentation"]:
        seg[(r["task"], r["model"], r["method"])].append(r)
    if not seg:
        return []
    present = {k[2] for k in seg}
    methods = [m for m in (result.get("methods") or METHODS) if m in present] + sorted(present - set(METHODS))
    models = list(dict.fromkeys(k[1] for k in seg))
    tasks = list(dict.fromkeys(k[0] for k in seg))
    synthetic = [t for t in tasks if any("size" in r for m in models for me in methods for r in seg.get((t, m, me), []))]
    default = result.get("default_method", DEFAULT_SEGMENTER)
    lines = []
    for model in models:
        lines += [
            f"**Segmentation from labelled points, {model}** (mIoU, mean over seeds; `knn` = the NCS protocol, k = 5; "
            f"`{default}` = the product's default; best read-out of each task in bold)",
            "",
            "| task | " + " | ".join(methods) + " | best |",
            "|---|" + "---|" * (len(methods) + 1),
        ]
        means = {}
        for task in tasks:
            vals = {me: _mean(seg[(task, model, me)], "miou") for me in methods if seg.get((task, model, me))}
            if not vals:
                continue
            for me, v in vals.items():
                means.setdefault(me, {})[task] = v
            lines.append(_row(task, methods, vals))
        if len(synthetic) > 1:
            vals = {
                me: float(np.mean([means[me][t] for t in synthetic]))
                for me in methods
                if me in means and all(t in means[me] for t in synthetic)
            }
            if vals:
                lines.append(_row(f"mean of the {len(synthetic)} synthetic tasks", methods, vals))
        secs = {me: _mean([r for t in tasks for r in seg.get((t, model, me), [])], "seconds") for me in methods}
        lines.append(
            "| seconds (fit + every grid point), mean | "
            + " | ".join(f"{secs[me]:.2f}" if np.isfinite(secs[me]) else "-" for me in methods)
            + " | |"
        )
        lines.append("")
    return lines


def _row(label: str, methods, vals: dict) -> str:
    finite = {m: v for m, v in vals.items() if np.isfinite(v)}
    best = max(finite.values()) if finite else None
    cells = []
    for m in methods:
        if m not in vals:
            cells.append("-")
        elif best is not None and np.isfinite(vals[m]) and round(vals[m], 3) == round(best, 3):
            cells.append(f"**{vals[m]:.3f}**")
        else:
            cells.append(f"{vals[m]:.3f}")
    winners = [m for m in methods if m in finite and round(finite[m], 3) == round(best, 3)] if best is not None else []
    return f"| {label} | " + " | ".join(cells) + f" | {', '.join(winners) or '-'} |"


def markdown(result: dict) -> str:
    """Tables of means over seeds and sizes: segmentation (kNN protocol vs default), clicks, facies."""
    lines = [
        f"Models: {', '.join(result['models'])}; seeds {result['seeds']}; sizes {result['sizes']}; "
        f"stride {result['stride']}; {result.get('seconds', '?')} s in all.",
        "",
    ]
    lines += segmentation_tables(result)
    inter = defaultdict(list)
    fixed = defaultdict(list)
    for r in result["clicks"]:
        (inter if r["protocol"] == "interpreter" else fixed)[(r["target"], r["model"], r["decision"], r["grow"])].append(r)
    if inter:
        cap = max(len(r["ious"]) for rs in inter.values() for r in rs) + 1
        lines += [
            "**Simulated interpreter** (IoU of the mask the product shows after n clicks; NoC@0.8: clicks to reach "
            f"IoU 0.8, {cap} = not within {cap - 1}; the fewest clicks per target and model in bold)",
            "",
            "| target | model | decision | IoU@1 | IoU@3 | IoU@5 | IoU@10 | NoC@0.8 | ms/click |",
            "|---|---|---|---|---|---|---|---|---|",
        ]
        best = defaultdict(lambda: np.inf)
        for (target, model, _, _), rs in inter.items():
            best[(target, model)] = min(best[(target, model)], round(_mean(rs, "noc"), 1))
        for (target, model, decision, grow), rs in inter.items():
            at = lambda c: np.mean([r["ious"][c - 1] if c <= len(r["ious"]) else np.nan for r in rs])  # noqa: B023, E731
            label = decision + (" + connected" if grow else "") + (" (default)" if decision == DEFAULT_DECISION else "")
            f3 = lambda v: f"{v:.3f}" if np.isfinite(v) else "-"  # noqa: E731
            noc = round(_mean(rs, "noc"), 1)
            noc_cell = f"**{noc:.1f}**" if noc == best[(target, model)] and noc < cap else f"{noc:.1f}"
            lines.append(
                f"| {target} | {model} | {label} | {f3(at(1))} | {f3(at(3))} | {f3(at(5))} | {f3(at(10))} | "
                f"{noc_cell} | {_mean(rs, 'ms_per_click'):.0f} |"
            )
        lines.append("")
    if fixed:
        lines += [
            "**3 + 3 fixed clicks on one inline** (IoU of the product's mask; oracle = best threshold; AUC of the map)",
            "",
            "| target | model | decision | IoU | IoU best (oracle) | AUC |",
            "|---|---|---|---|---|---|",
        ]
        for (target, model, decision, grow), rs in fixed.items():
            label = decision + (" + connected" if grow else "")
            lines.append(
                f"| {target} | {model} | {label} | {_mean(rs, 'iou'):.3f} | {_mean(rs, 'iou_best'):.3f} | {_mean(rs, 'auc'):.3f} |"
            )
        lines.append("")
    if result["facies"]:
        fac = defaultdict(list)
        for r in result["facies"]:
            fac[r["model"]].append(r)
        lines += [
            "**k-means facies vs packages** (adjusted Rand index; `seisfm cluster`'s k-means, k = number of packages)",
            "",
            "| model | ARI | seconds |",
            "|---|---|---|",
        ]
        for m, rs in fac.items():
            lines.append(f"| {m} | {_mean(rs, 'ari'):.3f} | {_mean(rs, 'seconds'):.2f} |")
    return "\n".join(lines).rstrip() + "\n"


def to_json(result: dict) -> str:
    clean = {k: v for k, v in result.items() if k != "panels"}
    return json.dumps(clean, indent=1, default=lambda o: o.tolist() if hasattr(o, "tolist") else str(o))


# ---------------------------------------------------------------------- figures
def figures(result: dict, out_dir) -> list[Path]:
    """Figure-6-like bars (mIoU per task per model), Figure-7-like panels, NoC curves; PNGs in ``out_dir``."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    written = []
    seg = defaultdict(list)
    for r in result["segmentation"]:
        seg[(r["task"], f"{r['model']} {r['method']}")].append(r["miou"])
    if seg:
        tasks = list(dict.fromkeys(k[0] for k in seg))
        series = list(dict.fromkeys(k[1] for k in seg))
        fig, ax = plt.subplots(figsize=(max(8, 1.1 * len(tasks) + 2), 4.2))
        width = 0.8 / len(series)
        for i, s in enumerate(series):
            vals = [np.mean(seg.get((t, s), [np.nan])) for t in tasks]
            ax.bar(np.arange(len(tasks)) + i * width, vals, width, label=s)
        ax.set_xticks(np.arange(len(tasks)) + 0.4 - width / 2, tasks, rotation=30, ha="right")
        ax.set_ylabel("mIoU")
        ax.set_ylim(0, 1)
        ax.legend(fontsize=7, ncol=2)
        ax.set_title("Segmentation from labelled points (mean over seeds)")
        fig.tight_layout()
        written.append(out_dir / "bench-miou.png")
        fig.savefig(written[-1], dpi=110)
        plt.close(fig)
    curves = defaultdict(list)
    for r in result["clicks"]:
        if r["protocol"] == "interpreter":
            curves[(r["target"], f"{r['model']} {r['decision']}{' + connected' if r['grow'] else ''}")].append(r["ious"])
    if curves:
        targets = list(dict.fromkeys(k[0] for k in curves))
        cols = min(4, len(targets))
        rows_ = int(np.ceil(len(targets) / cols))
        fig, axes = plt.subplots(rows_, cols, figsize=(3.2 * cols, 2.6 * rows_), squeeze=False)
        for ax, t in zip(axes.ravel(), targets):
            for (tt, label), runs in curves.items():
                if tt == t:
                    ax.plot(np.arange(1, len(runs[0]) + 1), np.mean(runs, axis=0), label=label)
            ax.axhline(P.NOC_IOU, color="0.6", lw=0.8, ls="--")
            ax.set_title(t, fontsize=9)
            ax.set_ylim(0, 1)
            ax.set_xlabel("clicks", fontsize=8)
        for ax in axes.ravel()[len(targets) :]:
            ax.axis("off")
        axes[0, 0].set_ylabel("IoU")
        axes[0, 0].legend(fontsize=6)
        fig.tight_layout()
        written.append(out_dir / "bench-noc.png")
        fig.savefig(written[-1], dpi=110)
        plt.close(fig)
    panel = result.get("panels", {}).get("classes")
    if panel and panel["pred"]:
        n = 1 + len(panel["pred"])
        fig, axes = plt.subplots(1, n, figsize=(2.6 * n, 2.9))
        il = panel["inline"]
        vmax = len(panel["names"]) - 1
        for ax, (title, img) in zip(axes, [("ground truth", panel["truth"])] + list(panel["pred"].items())):
            ax.imshow(np.asarray(img)[il].T, cmap="tab10", vmin=0, vmax=9 if vmax < 10 else vmax, interpolation="nearest")
            ax.set_title(title, fontsize=8)
            ax.set_xticks([])
            ax.set_yticks([])
        from matplotlib.patches import Patch

        cmap = plt.get_cmap("tab10")
        top = 9 if vmax < 10 else vmax
        fig.legend(
            handles=[Patch(color=cmap(i / top), label=name) for i, name in enumerate(panel["names"])],
            loc="lower center",
            ncol=len(panel["names"]),
            fontsize=7,
            frameon=False,
        )
        fig.suptitle(f"grid inline {il} (time down): ground truth and predictions from 100 points per class", fontsize=8)
        fig.tight_layout(rect=(0, 0.08, 1, 1))
        written.append(out_dir / "bench-panels.png")
        fig.savefig(written[-1], dpi=110)
        plt.close(fig)
    return written
