"""Click -> updated map in the Click-to-map dock, in a real napari window, against the session's own compute.

    OMP_NUM_THREADS=1 xvfb-run -a .venv/bin/python benchmarks/click_latency.py [--sizes 64,128,192] [--clicks 8]

For each grid size (n^3 grid points, 64-d int8 vectors, the default probe decision) a dock is given a
session and clicks are added to the Positive/Negative layers one at a time, as a user's clicks arrive. The
latency of a click is from ``layer.add`` to the "similarity" layer showing the map of that click, with the
GUI event loop running, twice: the section on screen (the dock's preview of the visible slice) and the whole
map (the session's ``map_changed``). Baseline in the
same run: the session's ``compute`` alone for the same clicks (no GUI). Printed as JSON with ratios, and a linear projection to 16.7 M points (256^3) from the sizes run.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import time

import numpy as np
from gui_stalls import wait_until


def session_for(n: int, dim: int = 64, stride: int = 4, seed: int = 0):
    from napari_seisfm.cube import Geometry
    from napari_seisfm.search import FeatureMatrix
    from napari_seisfm.session import ClickToMapSession
    from napari_seisfm.store.grid import GridSpec

    rng = np.random.default_rng(seed)
    centres = rng.normal(size=(8, dim)).astype(np.float32)
    label = rng.integers(0, 8, size=(n // 8 + 1,) * 3).repeat(8, 0).repeat(8, 1).repeat(8, 2)[:n, :n, :n]
    v = np.empty((n, n, n, dim), np.int8)
    for i in range(n):  # a slab at a time: the float copy of a 192^3 x 64 grid would need 7 GB
        f = centres[label[i]] + 0.7 * rng.standard_normal((n, n, dim), np.float32)
        f /= np.linalg.norm(f, axis=-1, keepdims=True)
        v[i] = np.clip(np.rint(f * 127), -127, 127)
    geometry = Geometry.regular((n * stride,) * 3, first_inline=1000, first_crossline=2000, sample_interval=4.0)
    fm = FeatureMatrix.from_array(
        v.reshape(-1, dim), GridSpec((n,) * 3, (stride,) * 3), cube_summary=geometry.summary(), fingerprint=geometry.fingerprint()
    )
    return ClickToMapSession(fm, cube_fingerprint=geometry.fingerprint()), geometry


def clicks(geometry, n_clicks: int, seed: int = 1):
    rng = np.random.default_rng(seed)
    shape = np.asarray(geometry.shape)
    out = []
    for i in range(n_clicks):
        idx = rng.integers(0, shape)
        out.append((i % 3 == 2, geometry.to_survey(idx)))  # every third click negative
    return out


def gui_latencies(app, viewer, session, geometry, points) -> tuple[list[float], list[float]]:
    """(click -> section on screen updated, click -> whole map shown) per click, in seconds."""
    from napari_seisfm.cube import Cube
    from napari_seisfm.display import cube_layer
    from napari_seisfm.plugin.widgets.click_to_map import NEGATIVE, POSITIVE, ClickToMapWidget

    viewer.layers.clear()
    cube = Cube.from_array(np.broadcast_to(np.float32(0), geometry.shape), geometry)  # no memory: only geometry matters
    data, kw, _ = cube_layer(cube, name="seismic", in_memory=False)
    layer = viewer.add_image(data, **kw)
    widget = ClickToMapWidget(viewer)
    widget._on_session(session, layer)
    shown, drawn = [], []
    session.map_changed.connect(lambda r: shown.append(time.perf_counter()))
    set_similarity = widget._set_similarity
    widget._set_similarity = lambda *a: (set_similarity(*a), drawn.append(time.perf_counter()))
    section, whole = [], []
    for i, (negative, p) in enumerate(points):
        before, drawn_before = len(shown), len(drawn)
        t0 = time.perf_counter()
        viewer.layers[NEGATIVE if negative else POSITIVE].add(list(p))
        wait_until(app, lambda: len(session.positives) + len(session.negatives) == i + 1, 10)  # noqa: B023
        if not session.grid_positives:
            continue
        wait_until(app, lambda: len(shown) > before and widget._map_worker is None, 120)  # noqa: B023
        whole.append(shown[-1] - t0)
        section.append(drawn[drawn_before] - t0)  # the first redraw of the similarity layer after the click
    session.map_changed.disconnect()
    session.clicks_changed.disconnect()
    session.clear()
    widget.close()
    return section, whole


def compute_latencies(session, points) -> list[float]:
    out = []
    session.clear()
    for negative, p in points:
        session.add_click(p, negative=negative)
        if not session.grid_positives:
            continue
        t0 = time.perf_counter()
        session.accept(session.compute())
        out.append(time.perf_counter() - t0)
    session.clear()
    return out


def stats(x) -> dict:
    a = np.asarray(x[1:] if len(x) > 2 else x) * 1000  # the first map also builds the probe's background sample
    return {"median_ms": round(float(np.median(a)), 1), "max_ms": round(float(a.max()), 1), "n": int(len(a))}


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--sizes", default="64,128,192")
    ap.add_argument("--clicks", type=int, default=8)
    args = ap.parse_args()

    import napari
    from qtpy.QtWidgets import QApplication

    viewer = napari.Viewer(show=True)
    viewer.window._qt_window.resize(1400, 900)
    app = QApplication.instance()
    report = {
        "machine": {
            "cpus": os.cpu_count(),
            "load": [round(x, 2) for x in os.getloadavg()],
            "python": platform.python_version(),
            "omp": os.environ.get("OMP_NUM_THREADS"),
        },
        "sizes": {},
    }
    for n in (int(s) for s in args.sizes.split(",")):
        session, geometry = session_for(n)
        points = clicks(geometry, args.clicks)
        compute = stats(compute_latencies(session, points))
        section, whole = gui_latencies(app, viewer, session, geometry, points)
        section, dock = stats(section), stats(whole)
        report["sizes"][f"{n}^3"] = {
            "points": n**3,
            "compute": compute,
            "dock_section_on_screen": section,
            "dock": dock,
            "dock_over_compute": round(dock["median_ms"] / compute["median_ms"], 2),
        }
        print(json.dumps({f"{n}^3": report["sizes"][f"{n}^3"]}), flush=True)
    pts = np.array([v["points"] for v in report["sizes"].values()], float)
    med = np.array([v["dock"]["median_ms"] for v in report["sizes"].values()], float)
    if len(pts) >= 2:
        slope, icpt = np.polyfit(pts, med, 1)
        report["dock_projected_256^3_ms"] = round(float(slope * 256**3 + icpt), 1)
    report["machine"]["load_after"] = [round(x, 2) for x in os.getloadavg()]
    print(json.dumps(report, indent=1))
    viewer.close()


if __name__ == "__main__":
    main()
