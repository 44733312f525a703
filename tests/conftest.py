from pathlib import Path

import pytest

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
    import napari_seisfm.plugin.reader as reader

    seen: list = []
    monkeypatch.setattr(reader, "_notify", seen.append)
    return seen


def refused_with(reader, path, messages: list) -> str:
    """A reader that refuses ``path``: it opens nothing (npe2's null-layer answer, so napari adds no
    message of its own) and says why once; returns what it said."""
    assert callable(reader), "a file of ours is claimed and refused, not declined to napari's generic error"
    before = len(messages)
    assert reader(str(path)) == [(None,)]
    assert len(messages) == before + 1
    return messages[-1]
