"""Shared pytest fixtures: where ../shared lives, and skips with a reason when it is absent."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

REPO_ROOT = Path(__file__).resolve().parents[1]
SHARED_DIR = Path(os.environ.get("EOLABELS_SHARED", REPO_ROOT.parent / "shared"))


@pytest.fixture(scope="session")
def repo_root() -> Path:
    return REPO_ROOT


@pytest.fixture(scope="session")
def fixtures_dir() -> Path:
    """The authors' golden cases (../shared/specs/fixtures), read in place."""
    d = SHARED_DIR / "specs" / "fixtures"
    if not d.is_dir():
        pytest.skip(f"golden fixtures not found at {d} (set EOLABELS_SHARED to the shared/ folder)")
    return d


@pytest.fixture(scope="session")
def real_dir() -> Path:
    """Small real datasets (../shared/real), read in place, never copied into the repo."""
    d = SHARED_DIR / "real"
    if not d.is_dir():
        pytest.skip(f"real data not found at {d} (set EOLABELS_SHARED to the shared/ folder)")
    return d


WORKFLOW_PARTS = ("Snakefile", "rules", "workflow_scripts", "config", "envs")


@pytest.fixture(scope="module")
def workflow_copy(tmp_path_factory, request) -> Path:
    """A copy of the workflow per test module, so tests never touch the repository's results/."""
    import shutil

    dest = tmp_path_factory.mktemp(request.module.__name__.rsplit(".", 1)[-1])
    for part in WORKFLOW_PARTS:
        src = REPO_ROOT / part
        (shutil.copytree if src.is_dir() else shutil.copy2)(src, dest / part)
    return dest
