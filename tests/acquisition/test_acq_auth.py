"""Credentials: a clear error naming the fix; a live request only where credentials exist."""

from __future__ import annotations

import os

import pytest

from eolabels.acquisition import earthengine as eeq
from eolabels.acquisition.transport import LiveHttp


def test_unauthenticated_names_the_command(tmp_path, monkeypatch):
    monkeypatch.setenv("HOME", str(tmp_path))
    monkeypatch.delenv("GOOGLE_APPLICATION_CREDENTIALS", raising=False)
    monkeypatch.setenv("NO_GCE_CHECK", "True")  # no metadata-server probe: this is not a cloud VM
    monkeypatch.setenv("CLOUDSDK_CONFIG", str(tmp_path / "gcloud"))
    with pytest.raises(eeq.NotAuthenticated, match="earthengine authenticate"):
        eeq.initialize_live("some-project", LiveHttp(timeout=5))


def test_project_from_config_then_environment(monkeypatch):
    for var in eeq.PROJECT_ENV:
        monkeypatch.delenv(var, raising=False)
    with pytest.raises(eeq.NotAuthenticated, match="earthengine.project"):
        eeq.resolve_project(None)
    monkeypatch.setenv("GOOGLE_CLOUD_PROJECT", "from-env")
    assert eeq.resolve_project(None) == "from-env" and eeq.resolve_project("from-config") == "from-config"


def credentials_present() -> bool:
    home = os.path.expanduser("~/.config/earthengine/credentials")
    return os.path.isfile(home) or bool(os.environ.get("GOOGLE_APPLICATION_CREDENTIALS"))


@pytest.mark.ee
@pytest.mark.skipif(not credentials_present(), reason="no Earth Engine credentials (run `earthengine authenticate`)")
def test_live_pairing_query(tmp_path):
    """One real pairing query over the 18SVG scene's area (needs credentials and a project)."""
    from eolabels.acquisition.client import EarthEngineClient
    from eolabels.acquisition.pool import Backoff, RateLimiter

    eeq.initialize_live(None, LiveHttp(timeout=120))
    client = EarthEngineClient(RateLimiter(60), Backoff())
    result = client.value(eeq.noldo_pairing(-75.62, 37.68, eeq.Window("2021-06-01", "2021-09-01"), 20), "live test")
    assert result["s2_count"] > 0 and result["best"][0][0].endswith("T18SVG")
