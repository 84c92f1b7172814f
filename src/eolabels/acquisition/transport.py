"""The one seam between the real Earth Engine client and the network: an httplib2-like ``http``.

``ee.Initialize(..., http_transport=...)`` and ``ee.data.computePixels`` / ``computeValue`` stay
real (they serialise the expression graph, build the REST request, translate errors); only the object
that moves bytes is ours:

* :class:`LiveHttp`: requests over HTTPS with a per-request timeout (the client adds the OAuth
  header around it, so credentials never reach this module's storage);
* :class:`RecordingHttp`: live, and every compute response is stored under the request's key;
* :class:`ReplayHttp`: answers from the store, with an optional simulated latency, offline.

Every response's status is kept per thread (:func:`last_status`), because the client turns HTTP
errors into ``EEException(message)`` without the code that decides retry or give up.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import threading
import time
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import httplib2
import requests

from eolabels.atomic import atomic_path

_LOCAL = threading.local()
COMPUTE_ENDPOINTS = ("image:computePixels", "value:compute")


class ReplayMiss(LookupError):
    """Replay mode met a request that was never recorded."""


def last_status() -> int | None:
    """HTTP status of this thread's last response through the seam (None before any)."""
    return getattr(_LOCAL, "status", None)


def _set_status(status: int | None) -> None:
    _LOCAL.status = status


def reset_status() -> None:
    """Forget this thread's last status (before a new attempt)."""
    _set_status(None)


def endpoint_of(uri: str) -> str | None:
    """``image:computePixels`` / ``value:compute`` for a compute call, else None."""
    path = uri.split("?", 1)[0]
    return next((e for e in COMPUTE_ENDPOINTS if path.endswith(e)), None)


def request_key(endpoint: str, body: Mapping[str, Any]) -> str:
    """Digest of what a compute request asks for: endpoint, expression, grid, format and bands.

    The project, workload tag and headers are left out, so a recording made under one project
    replays under another and never depends on who asked.
    """
    wanted = {k: body.get(k) for k in ("expression", "grid", "fileFormat", "bandIds")}
    text = json.dumps({"endpoint": endpoint, **wanted}, sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(text.encode()).hexdigest()[:32]


def _response(status: int, content_type: str) -> httplib2.Response:
    return httplib2.Response({"status": status, "content-type": content_type})


class ResponseStore:
    """Recorded responses on disk: ``<key>.json`` (status, content type, endpoint, request) +
    ``<key>.bin`` (the body), each written atomically so a killed recording leaves no half entry."""

    def __init__(self, root: str | os.PathLike[str]) -> None:
        self.root = Path(root)

    def put(self, endpoint: str, body: Mapping[str, Any], status: int, content: bytes,
            content_type: str = "application/octet-stream") -> str:
        key = request_key(endpoint, body)
        with atomic_path(self.root / f"{key}.bin") as tmp:
            tmp.write_bytes(content)
        meta = {"endpoint": endpoint, "status": status, "content_type": content_type,
                "grid": body.get("grid"), "fileFormat": body.get("fileFormat")}
        with atomic_path(self.root / f"{key}.json") as tmp:
            tmp.write_text(json.dumps(meta, indent=1, sort_keys=True))
        return key

    def get(self, endpoint: str, body: Mapping[str, Any]) -> tuple[int, str, bytes]:
        key = request_key(endpoint, body)
        meta_path = self.root / f"{key}.json"
        if not meta_path.is_file():
            raise ReplayMiss(
                f"no recorded response for this {endpoint} request (key {key}) in {self.root}: "
                "record it first (earthengine.transport: record, with credentials)"
            )
        meta = json.loads(meta_path.read_text())
        return int(meta["status"]), meta["content_type"], (self.root / f"{key}.bin").read_bytes()


class LiveHttp:
    """HTTPS through a requests session, with a per-request timeout in seconds."""

    def __init__(self, timeout: float) -> None:
        self.timeout, self.session = timeout, requests.Session()

    def request(self, uri: str, method: str = "GET", body: Any = None, headers: dict | None = None,
                redirections: Any = None, connection_type: Any = None) -> tuple[httplib2.Response, bytes]:
        try:
            r = self.session.request(method, uri, data=body, headers=headers, timeout=self.timeout)
        except requests.exceptions.Timeout as err:
            _set_status(None)
            raise TimeoutError(f"no response within {self.timeout} s") from err
        _set_status(r.status_code)
        return httplib2.Response({**r.headers, "status": r.status_code}), r.content


class RecordingHttp:
    """Live requests whose compute responses (errors included) are stored for replay."""

    def __init__(self, inner: LiveHttp, store: ResponseStore) -> None:
        self.inner, self.store = inner, store

    def request(self, uri: str, method: str = "GET", body: Any = None, headers: dict | None = None,
                redirections: Any = None, connection_type: Any = None) -> tuple[httplib2.Response, bytes]:
        response, content = self.inner.request(uri, method, body, headers)
        endpoint = endpoint_of(uri)
        if endpoint and body:
            self.store.put(endpoint, json.loads(body), int(response.status), content,
                           response.get("content-type", "application/octet-stream"))
        return response, content


class ReplayHttp:
    """Answers compute requests from a :class:`ResponseStore`, offline.

    ``latency`` seconds are slept per request (the bench's simulated network); a response stored with
    status 0 stands for a request that never answered and raises ``TimeoutError`` after ``timeout``.
    ``on_request`` (for tests) sees every endpoint and decoded body.
    """

    def __init__(self, store: ResponseStore, latency: float = 0.0, timeout: float = 60.0,
                 on_request: Callable[[str, dict], None] | None = None) -> None:
        self.store, self.latency, self.timeout, self.on_request = store, latency, timeout, on_request

    def request(self, uri: str, method: str = "GET", body: Any = None, headers: dict | None = None,
                redirections: Any = None, connection_type: Any = None) -> tuple[httplib2.Response, bytes]:
        endpoint = endpoint_of(uri)
        if endpoint is None or not body:
            raise ReplayMiss(f"replay serves compute requests only, not {method} {re.sub(r'key=[^&]*', 'key=…', uri)}")
        decoded = json.loads(body)
        if self.on_request is not None:
            self.on_request(endpoint, decoded)
        status, content_type, content = self.store.get(endpoint, decoded)
        if status == 0:
            time.sleep(min(self.timeout, 0.05))
            _set_status(None)
            raise TimeoutError(f"no response within {self.timeout} s")
        if self.latency:
            time.sleep(self.latency)
        _set_status(status)
        return _response(status, content_type), content


def compute_body(params: Mapping[str, Any]) -> dict[str, Any]:
    """The JSON body the client sends for ``params`` (the expression serialised as
    ``ee.data.computePixels`` / ``computeValue`` serialise it), for keying constructed responses."""
    import ee

    return {**params, "expression": ee.serializer.encode(params["expression"], for_cloud_api=True)}
