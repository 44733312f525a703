import os
from pathlib import Path

for _k in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ[_k] = "1"  # the product's thread policy (napari_seisfm/threads.py) for core calls made straight from tests

import pytest  # noqa: E402
from threadpoolctl import threadpool_limits  # noqa: E402

# Libraries loaded before this file (plugins) get the same: core functions called directly (the wave solver, the
# probe fit, kNN blocks) run one BLAS/OpenMP/torch thread, as they do inside every command and dock job. On a
# busy 2-core machine default threads made single tests 10x slower (tests/test_wavediff_forward.py's OpenFWI
# shot: 43 s against 4 s). tests/test_threads.py sets its own counts and checks the policy itself.
_LIMITS = threadpool_limits(limits=1)

SHARED = Path(__file__).resolve().parents[2] / "shared" / "data"


@pytest.fixture
def shared_data() -> Path:
    """../shared/data beside the repository; tests that need it skip cleanly elsewhere."""
    if not SHARED.is_dir():
        pytest.skip(f"shared test data not found at {SHARED}")
    return SHARED


@pytest.fixture
def user_models(tmp_path, monkeypatch) -> Path:
    """An empty user model directory (and HOME): models installed on this machine do not leak in,
    and nothing a test trains is listed in the real one."""
    d = tmp_path / "models"
    d.mkdir()
    monkeypatch.setenv("SEISFM_MODELS", str(d))
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    return d


@pytest.fixture
def reader_messages(monkeypatch) -> list:
    """What the napari readers tell the user (napari notifications), in order."""
    from napari_seisfm.plugin import refusal

    seen: list = []
    monkeypatch.setattr(refusal, "notify", seen.append)
    return seen


def refused_with(reader, path, messages: list) -> str:
    """A reader that refuses ``path``: it opens nothing (npe2's null-layer answer, so napari adds no
    message of its own) and says why once; returns what it said."""
    assert callable(reader), "a file of ours is claimed and refused, not declined to napari's generic error"
    before = len(messages)
    assert reader(str(path)) == [(None,)]
    assert len(messages) == before + 1
    return messages[-1]


GUI_FIXTURES = {"make_napari_viewer", "make_napari_viewer_proxy", "qtbot"}
GUI_DIR = Path(__file__).resolve().parent / "gui"


def pytest_collection_modifyitems(config, items):
    """Mark as ``gui`` (needs a display and OpenGL) every test under tests/gui/ and every test that takes a
    viewer or qtbot, directly or through its fixtures: ``-m "not gui"`` then runs without a display."""
    gui = pytest.mark.gui
    for item in items:
        if GUI_DIR in Path(str(item.fspath)).resolve().parents or GUI_FIXTURES & set(getattr(item, "fixturenames", ())):
            item.add_marker(gui)
