"""The "Pretrain on this survey" dock in a real napari viewer (run under xvfb-run): a short run
lists its model, Cancel leaves a run that Resume finishes, a too-small layer is one line."""

from __future__ import annotations

import numpy as np
import pytest

from napari_seisfm.encoders import registry
from napari_seisfm.errors import SeisfmCancelled
from napari_seisfm.plugin.widgets._dock import select

pytestmark = pytest.mark.gui


@pytest.fixture
def messages(monkeypatch):
    from napari_seisfm.plugin.widgets import _notify

    seen = {"info": [], "error": []}
    monkeypatch.setattr(_notify, "show_info", seen["info"].append)
    monkeypatch.setattr(_notify, "show_error", seen["error"].append)
    return seen


def cube(shape=(40, 40, 64), seed=0):
    return np.random.default_rng(seed).standard_normal(shape).astype(np.float32)


def dock(viewer, steps=3, batch=2):
    from napari_seisfm.plugin.widgets.pretrain import PretrainWidget

    w = PretrainWidget(viewer)
    w.size.value = "test"
    w.budget_unit.value = "steps"
    w.budget.value = steps
    w.batch_size.value = batch
    w.device.value = "cpu"
    return w


def test_short_run_lists_the_model(make_napari_viewer, qtbot, user_models, messages, tmp_path):
    viewer = make_napari_viewer()
    viewer.add_image(cube(), name="my survey")
    w = dock(viewer)
    assert w.layer.value.name == "my survey"
    assert w.run_button.text() == "Run"
    out, name = w.run_folder()  # default: <user model dir>/<layer>-<time>
    assert out.parent == user_models and name.startswith("my-survey-") and out.name == name
    w.name.value = "mine"
    w.out.value = str(tmp_path / "run")
    w.run_button.click()
    assert w.jobs.worker is not None and not w.run_button.isEnabled() and w.cancel_button.isEnabled()
    qtbot.waitUntil(lambda: w.jobs.worker is None, timeout=60_000)
    assert not messages["error"], messages["error"]
    r = w.result
    assert r is not None and r.model_id == "mine" and r.steps == 3
    assert r.card.is_file() and r.card.parent == tmp_path / "run"
    assert r.installed == user_models / "mine.toml"
    assert "mine" in [c.id for c in registry.list_cards()]
    assert len(w.loss_line.get_xdata()) == 3 and list(w.loss_line.get_xdata()) == [1, 2, 3]
    assert w.progress.value() == w.progress.maximum()
    assert "'mine' is ready" in messages["info"][-1] and "Extract embeddings" in messages["info"][-1]
    assert not w.thumbnail.pixmap().isNull() and "reconstructions.png" in w.thumbnail.toolTip()
    assert w.run_button.isEnabled() and w.run_button.text() == "Run"


def test_new_model_shows_in_an_open_extraction_dock(make_napari_viewer, qtbot, user_models, messages):
    from napari_seisfm.plugin.widgets.extract import ExtractWidget

    viewer = make_napari_viewer()
    viewer.add_image(cube(), name="s")
    extract = ExtractWidget(viewer)
    viewer.window.add_dock_widget(extract, name="Extract embeddings")
    w = dock(viewer, steps=1)
    w.name.value = "fresh"
    w.run()
    qtbot.waitUntil(lambda: w.jobs.worker is None, timeout=60_000)
    assert w.result is not None, messages
    assert "fresh" in extract.model.choices
    assert "now in the Extract embeddings dock" in messages["info"][-1]


def test_cancel_leaves_a_run_that_resume_finishes(make_napari_viewer, qtbot, user_models, messages):
    viewer = make_napari_viewer()
    viewer.add_image(cube(), name="s")
    w = dock(viewer, steps=100_000)
    w.run()
    qtbot.waitUntil(lambda: len(w.steps) >= 1, timeout=60_000)
    w.cancel()
    qtbot.waitUntil(lambda: w.jobs.worker is None, timeout=60_000)
    out = w._run_out
    assert (out / "checkpoint.pt").is_file() and not list(out.glob("*.toml"))
    assert w.result is None and not messages["error"]
    assert "stopped at step" in messages["info"][-1] and "of 100000; Resume continues it" in messages["info"][-1]
    k = int(messages["info"][-1].split("step ")[1].split(" ")[0])
    assert k >= 1
    # the form keeps the run's folder: the button resumes it
    assert w.out.value == str(out) and w.run_button.text() == "Resume"
    assert out.name not in [c.id for c in registry.list_cards()]


def test_resume_an_unfinished_folder(make_napari_viewer, qtbot, user_models, messages, tmp_path):
    from napari_seisfm.pretrain.data import array_source
    from napari_seisfm.pretrain.run import pretrain

    data = cube(seed=3)
    out = tmp_path / "half"
    seen = []
    with pytest.raises(SeisfmCancelled):  # 1 of 3 steps done, then stopped: an unfinished run
        pretrain(
            out=out,
            sources=[array_source("layer:s", data)],
            size="test",
            steps=3,
            batch_size=2,
            device="cpu",
            progress=seen.append,
            cancel=lambda: len(seen) >= 1,
        )
    viewer = make_napari_viewer()
    viewer.add_image(data, name="s")
    w = dock(viewer, steps=999)  # the run's own settings win on resume
    assert w.run_button.text() == "Run"
    w.out.value = str(out)
    assert w.run_button.text() == "Resume"
    w.run_button.click()
    qtbot.waitUntil(lambda: w.jobs.worker is None, timeout=60_000)
    assert not messages["error"], messages["error"]
    assert w.result is not None and w.result.steps == 3 and (out / "half.toml").is_file()
    assert [int(s) for s in w.loss_line.get_xdata()] == [2, 3]
    assert "half" in [c.id for c in registry.list_cards()]
    assert w.run_button.text() == "Run"  # the folder now holds a model


def test_resume_needs_the_runs_layer(make_napari_viewer, qtbot, user_models, messages, tmp_path):
    from napari_seisfm.pretrain.data import array_source
    from napari_seisfm.pretrain.run import pretrain

    out = tmp_path / "half"
    with pytest.raises(SeisfmCancelled):
        pretrain(
            out=out,
            sources=[array_source("layer:s", cube())],
            size="test",
            steps=3,
            batch_size=2,
            device="cpu",
            cancel=lambda: True,
        )
    viewer = make_napari_viewer()
    viewer.add_image(cube(), name="other")
    w = dock(viewer)
    w.out.value = str(out)
    w.run()
    qtbot.waitUntil(lambda: w.jobs.worker is None, timeout=60_000)
    assert len(messages["error"]) == 1 and "layer:s" in messages["error"][0]
    assert "\n" not in messages["error"][0]


def test_too_small_layer_is_one_line_and_no_folder(make_napari_viewer, qtbot, user_models, messages):
    viewer = make_napari_viewer()
    viewer.add_image(cube((40, 40, 16)), name="thin")
    w = dock(viewer)
    out, _ = w.run_folder()
    w.run()
    qtbot.waitUntil(lambda: w.jobs.worker is None, timeout=60_000)
    assert len(messages["error"]) == 1
    msg = messages["error"][0]
    assert "\n" not in msg and "too small" in msg and "16 along sample" in msg
    assert not out.exists() and not list(user_models.glob("*.toml"))
    assert w.result is None and w.run_button.text() == "Run" and w.run_button.isEnabled()


def test_no_layer_is_one_line(make_napari_viewer, user_models, messages):
    viewer = make_napari_viewer()
    w = dock(viewer)
    w.run()
    assert w.jobs.worker is None and len(messages["error"]) == 1 and "no seismic layer" in messages["error"][0]


def test_closing_the_viewer_stops_the_run(make_napari_viewer, qtbot, user_models, messages):
    viewer = make_napari_viewer()
    viewer.add_image(cube(), name="s")
    w = dock(viewer, steps=100_000)
    viewer.window.add_dock_widget(w, name="Pretrain on this survey")
    w.run()
    qtbot.waitUntil(lambda: len(w.steps) >= 1, timeout=60_000)
    done, out = w.jobs.done_event, w._run_out
    viewer.close()
    assert done.wait(30), "the run kept going after the viewer closed"
    assert (out / "checkpoint.pt").is_file() and not list(out.glob("*.toml"))


def test_layer_with_a_cube_file_and_held_out_loss(make_napari_viewer, qtbot, user_models, messages, tmp_path):
    np.save(tmp_path / "train.npy", cube(seed=1))
    np.save(tmp_path / "val.npy", cube(seed=2))
    viewer = make_napari_viewer()
    viewer.add_image(np.zeros((40, 40, 64), np.float32), name="train", metadata={"path": str(tmp_path / "train.npy")})
    viewer.add_image(np.zeros((40, 40, 64), np.float32), name="val", metadata={"path": str(tmp_path / "val.npy")})
    viewer.add_image(cube(), name="in memory")
    w = dock(viewer, steps=2)
    assert [w.heldout.native.itemText(i) for i in range(w.heldout.native.count())] == ["none", "train", "val"]
    select(w.layer, "train")  # zeros on screen: the file is what trains
    select(w.heldout, "val")
    w.run()
    qtbot.waitUntil(lambda: w.jobs.worker is None, timeout=60_000)
    assert not messages["error"], messages["error"]
    assert w.result.card.is_file()
    assert f"cube:{(tmp_path / 'train.npy').resolve()}" in w.result.card.read_text()
    assert list(w.val_line.get_xdata()) == [2] and w.val_line.get_label() == "held out"


def test_opening_the_dock_leaves_torch_to_a_worker_thread(tmp_path):
    """Opening the Pretrain dock froze napari for 4-16 s: it imported torch to list the devices. Now torch is
    imported by a worker thread, whatever finds it first, and the device list fills in when it is ready."""
    import subprocess
    import sys
    import textwrap

    script = tmp_path / "open_dock.py"
    script.write_text(
        textwrap.dedent("""
        import sys, threading
        first = []

        class Spy:
            def find_spec(self, name, path=None, target=None):
                if name == "torch" and not first:
                    first.append(threading.current_thread() is threading.main_thread())
                return None

        sys.meta_path.insert(0, Spy())
        import napari
        from napari_seisfm.plugin.widgets.pretrain import PretrainWidget

        viewer = napari.Viewer(show=False)
        w = PretrainWidget(viewer)
        w._devices.done_event.wait(120)
        from qtpy.QtWidgets import QApplication
        for _ in range(50):
            QApplication.processEvents()
        print("first import on the GUI thread:", first, "devices:", w.device.choices)
        viewer.close()
    """)
    )
    run = subprocess.run([sys.executable, str(script)], capture_output=True, text=True, timeout=300)
    assert run.returncode == 0, run.stderr[-2000:]
    assert "first import on the GUI thread: [False]" in run.stdout, run.stdout
    assert "'cpu'" in run.stdout
