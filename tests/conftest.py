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
