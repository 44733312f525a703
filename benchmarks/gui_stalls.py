"""Longest GUI-thread stalls while a dock runs its job: extraction, codec comparison, pretraining.

    xvfb-run -a .venv/bin/python benchmarks/gui_stalls.py [--only extract,codec,pretrain] [--repeat 1]

A QTimer fires every 10 ms on the GUI thread and records the time between consecutive firings;
a gap much longer than 10 ms is a stall. On a loaded machine a gap is also the GUI thread waiting
for a core (or for the GIL), so each gap also records the GUI thread's own CPU time in it
(``time.thread_time``): ``cpu_*`` is the work the GUI thread did (a re-layout, a redraw, a slot),
whatever the load; ``max_ms`` etc. are what a user on that machine saw. Each dock sits in a shown napari window (so layouts and the canvas really resize) and
runs one job from its Run button to its end. The baseline, measured in the same run, is the same
timer in the same window with no job running. Prints JSON: per scenario the longest gap, the 99th
percentile, the number of gaps over 50 ms and over 100 ms, the job's wall time and the gaps taken
while the job's final result was shown (layers added, table filled) separately from those during
the run, since a result can only be shown once.
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

TICK_MS = 10


class StallMeter:
    def __init__(self):
        from qtpy.QtCore import QTimer

        self.timer = QTimer()
        self.timer.setInterval(TICK_MS)
        self.timer.timeout.connect(self._tick)
        self.last = self.last_cpu = None
        # (time of the tick, wall gap before it, GUI-thread CPU time in that gap) in seconds
        self.gaps: list[tuple[float, float, float]] = []

    def _tick(self):
        now, cpu = time.perf_counter(), time.thread_time()
        if self.last is not None:
            self.gaps.append((now, now - self.last, cpu - self.last_cpu))
        self.last, self.last_cpu = now, cpu

    def start(self):
        self.last, self.last_cpu, self.gaps = None, None, []
        self.timer.start()

    def stop(self):
        self.timer.stop()

    @staticmethod
    def summary(gaps) -> dict:
        g = np.array([x for _, x, _ in gaps]) * 1000 if gaps else np.zeros(1)
        c = np.array([x for _, _, x in gaps]) * 1000 if gaps else np.zeros(1)
        return {
            "ticks": int(len(gaps)),
            "max_ms": round(float(g.max()), 1),
            "p99_ms": round(float(np.percentile(g, 99)), 1),
            "over_100ms": int((g > 100).sum()),
            "top3_ms": [round(x) for x in sorted(g)[::-1][:3]],
            "cpu_max_ms": round(float(c.max()), 1),
            "cpu_over_100ms": int((c > 100).sum()),
            "cpu_top3_ms": [round(x) for x in sorted(c)[::-1][:3]],
        }


def wait_until(app, cond, timeout_s=600.0):
    from qtpy.QtCore import QEventLoop

    end = time.perf_counter() + timeout_s
    while not cond():
        if time.perf_counter() > end:
            raise TimeoutError("job did not finish")
        app.processEvents(QEventLoop.ProcessEventsFlag.AllEvents, 5)
        time.sleep(0.002)


def run_job(app, meter, widget, start, ended=None):
    """Start the job, wait for its worker to end; split the gaps into run / result shown."""
    ended = ended or (lambda: widget.jobs.worker is None)
    meter.start()
    t0 = time.perf_counter()
    start()
    wait_until(app, ended)
    t1 = time.perf_counter()
    wait_until(app, lambda: time.perf_counter() > t1 + 0.5)  # let the result settle (layers, draws)
    meter.stop()
    # the result handler runs in the GUI thread right before the worker's "finished"; a gap that
    # ends within 50 ms of the end belongs to showing the result
    during = [x for x in meter.gaps if x[0] < t1 - 0.05 or x[0] - x[1] > t1]
    shown = [x for x in meter.gaps if not (x[0] < t1 - 0.05 or x[0] - x[1] > t1)]
    return {"job_s": round(t1 - t0, 2), "during_run": meter.summary(during), "showing_result": meter.summary(shown)}


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--only", default="extract,codec,pretrain")
    p.add_argument("--repeat", type=int, default=1)
    args = p.parse_args(argv)
    only = set(args.only.split(","))

    import napari
    from qtpy.QtWidgets import QApplication

    from napari_seisfm.plugin.widgets._dock import select
    from napari_seisfm.synthetic import make_survey

    work = Path(tempfile.mkdtemp(prefix="gui_stalls_"))
    os.environ.setdefault("SEISFM_MODELS", str(work / "models"))
    (work / "models").mkdir(exist_ok=True)
    viewer = napari.Viewer(show=True)
    app = QApplication.instance()
    viewer.window._qt_window.resize(1400, 900)
    cube = make_survey((48, 128, 128), seed=3).amplitude
    viewer.add_image(cube, name="cube", metadata={"kind": "seismic"})
    # the codec dock compares the section on screen: a 512 x 512 inline (as a real survey's)
    big = make_survey((32, 512, 512), seed=4).amplitude[:4]
    viewer.add_image(big, name="section cube", metadata={"kind": "seismic"})
    viewer.dims.order = (0, 2, 1)
    meter = StallMeter()
    wait_until(app, lambda: True)
    out = {
        "machine": {
            "cores": os.cpu_count(),
            "python": platform.python_version(),
            "omp_threads": os.environ.get("OMP_NUM_THREADS"),
            "load_avg_1min": round(os.getloadavg()[0], 2),
        },
        "tick_ms": TICK_MS,
    }

    # baseline: the same window and timer, nothing running
    meter.start()
    t_end = time.perf_counter() + 3.0
    wait_until(app, lambda: time.perf_counter() > t_end)
    meter.stop()
    out["baseline_idle_3s"] = meter.summary(meter.gaps)

    for rep in range(args.repeat):
        if "extract" in only:
            from napari_seisfm.plugin.widgets.extract import ExtractWidget

            w = ExtractWidget(viewer)
            dock = viewer.window.add_dock_widget(w, name="Extract embeddings")
            w.model.value = "seisfm-micro-2.5d"
            w.stride.value = "8"
            w.overwrite.value = True
            w.out.value = str(work / f"f{rep}.zarr")
            out[f"extract_micro_vit_{rep}"] = run_job(app, meter, w, w.run)
            viewer.window.remove_dock_widget(dock)
        if "codec" in only:
            from napari_seisfm.plugin.widgets.codecs import CodecWidget

            w = CodecWidget(viewer)
            dock = viewer.window.add_dock_widget(w, name="Codec comparison")
            select(w.layer, "section cube")
            w.codecs.value = "default"
            out[f"codec_default_{rep}"] = run_job(app, meter, w, w.run)
            out[f"codec_default_{rep}"]["rows"] = w.table.rowCount()
            viewer.window.remove_dock_widget(dock)
        if "pretrain" in only:
            from napari_seisfm.plugin.widgets.pretrain import PretrainWidget

            w = PretrainWidget(viewer)
            dock = viewer.window.add_dock_widget(w, name="Pretrain on this survey")
            select(w.layer, "cube")
            w.size.value = "test"
            w.budget_unit.value = "steps"
            w.budget.value = 40
            w.batch_size.value = 8
            w.device.value = "cpu"
            w.out.value = str(work / f"run{rep}")
            w.name.value = f"stalls{rep}"
            out[f"pretrain_test_40_steps_{rep}"] = run_job(app, meter, w, w.run)
            viewer.window.remove_dock_widget(dock)
    viewer.close()
    print(json.dumps(out, indent=1), flush=True)


if __name__ == "__main__":
    main()
