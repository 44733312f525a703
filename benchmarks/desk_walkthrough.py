"""The longest GUI stall of each step of a session at the desk, as a geoscientist goes through it.

    xvfb-run -a -s "-screen 0 1920x1080x24" .venv/bin/python benchmarks/desk_walkthrough.py [--size 128]

A 1920x1080 napari window; a 10 ms QTimer on the GUI thread (the heartbeat) records every gap between
its firings. Each step is timed from its action to the moment its result is on screen (plus 0.5 s to
settle), and reports the longest gap (wall time: what the user feels) and the GUI thread's own CPU time
in it (``time.thread_time``: our work, whatever the load). The baseline, in the same window and run, is the
heartbeat with nothing happening. Every dock is opened the way a user does: Plugins menu (the manifest).

Steps: open a synthetic SEG-Y cube; open the Extract dock; extract (default model, stride 4) to the end;
open Click-to-map (it picks the store up); 3 clicks, each to its map; a training layer, painted, segmented;
export the map to SEG-Y; open Pretrain; open Velocity <-> seismic and forward-model a slice; compare
codecs on the section; extract again and close the window mid-chunk (how long the close takes).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import tempfile
import time
from pathlib import Path

import numpy as np
from gui_stalls import StallMeter, wait_until  # noqa: E402  (run from benchmarks/)

SETTLE_S = 0.5


def step(app, meter, name, action, done, timeout_s=900.0) -> dict:
    meter.start()
    t0 = time.perf_counter()
    cpu0 = time.thread_time()
    action()
    wait_until(app, done, timeout_s)
    t1 = time.perf_counter()
    wait_until(app, lambda: time.perf_counter() > t1 + SETTLE_S)
    meter.stop()
    out = {
        "step": name,
        "seconds": round(t1 - t0, 2),
        "gui_cpu_s": round(time.thread_time() - cpu0, 2),
        **meter.summary(meter.gaps),
    }
    print(json.dumps(out), flush=True)
    return out


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--size", type=int, default=128, help="synthetic cube N^3 (default 128)")
    args = p.parse_args(argv)

    import napari
    from qtpy.QtWidgets import QApplication

    from napari_seisfm.io import open_cube
    from napari_seisfm.io.segy import write_segy
    from napari_seisfm.plugin import view
    from napari_seisfm.synthetic import CLASSES, make_survey, survey_geometry

    work = Path(tempfile.mkdtemp(prefix="desk_walkthrough_"))
    os.environ.setdefault("SEISFM_MODELS", str(work / "models"))
    (work / "models").mkdir(exist_ok=True)
    survey = make_survey((args.size,) * 3, seed=11)
    cube_path = write_segy(work / "survey.sgy", survey.amplitude, survey_geometry(survey))
    big = write_segy(work / "again.sgy", survey.amplitude, survey_geometry(survey))

    viewer = napari.Viewer(show=True)
    app = QApplication.instance()
    window = viewer.window._qt_window
    window.resize(1920, 1080)
    meter = StallMeter()
    wait_until(app, lambda: True)
    report = {
        "machine": {
            "cores": os.cpu_count(),
            "python": platform.python_version(),
            "omp_threads": os.environ.get("OMP_NUM_THREADS"),
            "load_avg_start": os.getloadavg()[0],
        },
        "size": args.size,
        "steps": [],
    }
    steps = report["steps"]

    meter.start()
    t_end = time.perf_counter() + 3.0
    wait_until(app, lambda: time.perf_counter() > t_end)
    meter.stop()
    report["baseline_idle_3s"] = meter.summary(meter.gaps)

    docks = {}

    def open_dock(name):
        docks[name] = viewer.window.add_plugin_dock_widget("napari-seisfm", name)[1]

    steps.append(
        step(
            app,
            meter,
            "open a cube (File > Open)",
            lambda: viewer.open(str(cube_path), plugin="napari-seisfm"),
            lambda: len(viewer.layers) == 1,
        )
    )
    steps.append(step(app, meter, "open Extract embeddings", lambda: open_dock("Extract embeddings"), lambda: True))
    ex = docks["Extract embeddings"]
    ex.out.value = str(work / "survey.zarr")
    steps.append(step(app, meter, "extract (attributes, stride 4)", ex.run, lambda: ex.jobs.worker is None and ex.result))
    steps.append(step(app, meter, "open Click-to-map", lambda: open_dock("Click-to-map"), lambda: True))
    ctm = docks["Click-to-map"]
    steps.append(
        step(app, meter, "load the store", lambda: ctm.load_features(str(work / "survey.zarr")), lambda: ctm.session is not None)
    )
    cube = open_cube(cube_path)
    g = cube.geometry
    flat = np.argwhere(survey.labels == CLASSES["flat_spot"])
    il = int(np.median(flat[:, 0]))
    on = flat[flat[:, 0] == il]
    clicks = [on[len(on) // 2], on[len(on) // 4]]
    viewer.dims.set_point(0, float(g.ilines[il]))
    pos = viewer.layers["Positive"]
    neg = viewer.layers["Negative"]
    for k, c in enumerate(clicks):
        survey_pt = [float(g.ilines[c[0]]), float(g.xlines[c[1]]), float(g.samples[c[2]])]
        n = len(ctm.session.positives)
        steps.append(
            step(
                app,
                meter,
                f"positive click {k + 1} -> its map",
                lambda p=survey_pt: pos.add(pos.world_to_data(view.to_world(viewer, p))),
                lambda n=n: (
                    len(ctm.session.positives) == n + 1
                    and ctm.result is not None
                    and ctm.session.is_current(ctm.result)
                    and not ctm.map_running
                ),
            )
        )
    survey_pt = [float(g.ilines[il]), float(g.xlines[5]), float(g.samples[5])]
    steps.append(
        step(
            app,
            meter,
            "negative click -> its map",
            lambda: neg.add(neg.world_to_data(view.to_world(viewer, survey_pt))),
            lambda: len(ctm.session.negatives) == 1 and ctm.session.is_current(ctm.result) and not ctm.map_running,
        )
    )
    seg = ctm.segmentation

    def paint_and_segment():
        layer = seg.new_training_labels()
        truth = np.asarray(survey.labels)[
            :: ctm.features.grid.stride[0], :: ctm.features.grid.stride[1], :: ctm.features.grid.stride[2]
        ]
        gi = il // ctm.features.grid.stride[0]
        layer.data[gi] = truth[gi][: layer.data.shape[1], : layer.data.shape[2]] + 1
        layer.refresh()
        seg.run_knn()

    steps.append(
        step(
            app,
            meter,
            "new training labels, paint a section, segment",
            paint_and_segment,
            lambda: seg.knn_result is not None and seg.jobs.worker is None,
        )
    )
    steps.append(
        step(
            app,
            meter,
            "export the map to SEG-Y",
            lambda: ctm.files.export("similarity", work / "map.sgy"),
            lambda: ctm.jobs.worker is None and (work / "map.sgy").exists(),
        )
    )
    steps.append(step(app, meter, "open Pretrain on this survey", lambda: open_dock("Pretrain on this survey"), lambda: True))
    steps.append(step(app, meter, "open Velocity <-> seismic", lambda: open_dock("Velocity <-> seismic"), lambda: True))
    wd = docks["Velocity <-> seismic"]
    v = viewer.add_image(np.full((2, 48, 48), 2500.0, np.float32), name="velocity", visible=False)
    from napari_seisfm.plugin.widgets._dock import select

    select(wd.layer, v.name)
    steps.append(
        step(
            app,
            meter,
            "forward model (first torch job)",
            wd.forward,
            lambda: wd.jobs.worker is None and wd.results_viewer is not None,
        )
    )
    steps.append(step(app, meter, "open Codec comparison", lambda: open_dock("Codec comparison"), lambda: True))
    cd = docks["Codec comparison"]
    select(cd.layer, viewer.layers[0].name)
    steps.append(step(app, meter, "compare the default codecs", cd.run, lambda: cd.jobs.worker is None and cd.result))

    # close the window while an extraction runs inside a chunk
    ex.out.value = str(work / "again.zarr")
    select(ex.cube, viewer.layers[0].name)
    ex.stride.value = "2"
    ex.run()
    wait_until(app, lambda: ex.jobs._latest is not None)
    done = ex.jobs.done_event
    t0 = time.perf_counter()
    viewer.close()
    closed = time.perf_counter() - t0
    report["close_mid_extraction"] = {
        "close_returned_s": round(closed, 2),
        "job_stopped": done.is_set(),
        "job_stopped_within_10s": done.wait(10),
    }
    report["machine"]["load_avg_end"] = os.getloadavg()[0]
    print(json.dumps(report, indent=1), flush=True)
    del big


if __name__ == "__main__":
    main()
