"""Earth Engine: initialisation, and the expression graphs of the NoLDO-S12 and DW-tile requests.

Everything here builds real ``ee`` objects with the real client; :mod:`.client` sends them. The
collection ids and band names are the catalogue's; the pairing follows CromSS spec §9 and the issue:
per location and season the least-cloudy Sentinel-2 L1C image *that has a Dynamic World image of the
same product* (joined on ``system:index``, which DW V1 copies from its S2 source), then the
Sentinel-1 GRD IW VV+VH image nearest in time.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Any

import ee

from eolabels.data.geotiff import GridSpec

S2_L1C = "COPERNICUS/S2_HARMONIZED"  # L1C; the spec's COPERNICUS/S2 is its deprecated predecessor
DYNAMIC_WORLD = "GOOGLE/DYNAMICWORLD/V1"
S1_GRD = "COPERNICUS/S1_GRD"
S2_BANDS = ("B1", "B2", "B3", "B4", "B5", "B6", "B7", "B8", "B8A", "B9", "B10", "B11", "B12")
S1_BANDS = ("VV", "VH")
PROJECT_ENV = ("EARTHENGINE_PROJECT", "GOOGLE_CLOUD_PROJECT")
AUTH_HINT = (
    "Earth Engine is not authenticated on this machine: run `earthengine authenticate` "
    "(or point GOOGLE_APPLICATION_CREDENTIALS at a service-account key), then run again"
)


class NotAuthenticated(RuntimeError):
    """No Earth Engine credentials, or a project the credentials may not use."""


def resolve_project(configured: str | None) -> str:
    """The Cloud project: config ``earthengine.project``, else $EARTHENGINE_PROJECT / $GOOGLE_CLOUD_PROJECT."""
    project = configured or next((os.environ[v] for v in PROJECT_ENV if os.environ.get(v)), None)
    if not project:
        raise NotAuthenticated(
            "no Earth Engine project: set earthengine.project in the config or $EARTHENGINE_PROJECT "
            "(a Google Cloud project registered for Earth Engine)"
        )
    return project


def initialize_live(project: str | None, http: Any) -> str:
    """``ee.Initialize(project=…)`` with the stored credentials and our HTTP seam; returns the project.

    The credentials object stays inside the client: nothing here logs or stores it. The client's own
    retries are switched off, so the pool's backoff and rate limit are the only ones.
    """
    project = resolve_project(project)
    try:
        credentials = ee.data.get_persistent_credentials()
    except ee.EEException as err:
        raise NotAuthenticated(f"{AUTH_HINT} ({err})") from None
    if credentials is None:
        raise NotAuthenticated(AUTH_HINT)
    try:
        ee.Initialize(credentials, project=project, http_transport=http)
    except ee.EEException as err:
        raise NotAuthenticated(f"Earth Engine refused project {project!r}: {err}. {AUTH_HINT}") from None
    ee.data.setMaxRetries(0)
    return project


def initialize_offline(http: Any, project: str = "replay") -> None:
    """Initialise the real client without a network, as ``ee/apitestcase.py`` (shipped in the wheel)
    does: algorithm signatures and the REST discovery document come from the wheel, and ``http``
    (a replay) answers the compute calls."""
    from ee import _state, apitestcase

    install, algorithms = ee.data._install_cloud_api_resource, ee.data.getAlgorithms
    ee.Reset()
    ee.data._install_cloud_api_resource = lambda: None
    ee.data.getAlgorithms = apitestcase.GetAlgorithms
    try:
        ee.Initialize(None, "", project=project)
    finally:
        ee.data._install_cloud_api_resource, ee.data.getAlgorithms = install, algorithms
    state = _state.get_state()
    state.cloud_api_resource = apitestcase._GenerateCloudApiResource(http, False)
    state.cloud_api_resource_raw = apitestcase._GenerateCloudApiResource(http, True)
    ee.data.setMaxRetries(0)


@dataclass(frozen=True)
class Window:
    """A half-open date window [start, end) in ISO dates."""

    start: str
    end: str


def s2_with_dw(point: ee.Geometry, window: Window, cloud_max: float) -> tuple[ee.ImageCollection, ee.ImageCollection]:
    """(S2 L1C images over ``point`` in ``window`` below ``cloud_max`` %, those of them with a DW image)."""
    s2 = (ee.ImageCollection(S2_L1C).filterBounds(point).filterDate(window.start, window.end)
          .filter(ee.Filter.lt("CLOUDY_PIXEL_PERCENTAGE", float(cloud_max))))
    dw = ee.ImageCollection(DYNAMIC_WORLD).filterBounds(point).filterDate(window.start, window.end)
    same_product = ee.Filter.equals(leftField="system:index", rightField="system:index")
    paired = ee.ImageCollection(ee.Join.simple().apply(s2, dw, same_product))
    return s2, paired


def noldo_pairing(lon: float, lat: float, window: Window, cloud_max: float) -> ee.Dictionary:
    """One season's S2/DW query: how many S2 images, and the least-cloudy one with a DW twin as
    ``[[system:index, cloud %, time_start ms]]`` (empty when no S2 product has DW labels)."""
    point = ee.Geometry.Point([lon, lat])
    s2, paired = s2_with_dw(point, window, cloud_max)
    best = paired.sort("CLOUDY_PIXEL_PERCENTAGE").limit(1).reduceColumns(
        ee.Reducer.toList(3), ["system:index", "CLOUDY_PIXEL_PERCENTAGE", "system:time_start"]
    )
    return ee.Dictionary({"s2_count": s2.size(), "best": best.get("list")})


def s1_iw_vv_vh(region: ee.Geometry) -> ee.ImageCollection:
    """Sentinel-1 GRD over ``region`` in IW mode with both VV and VH."""
    return (ee.ImageCollection(S1_GRD).filterBounds(region)
            .filter(ee.Filter.listContains("transmitterReceiverPolarisation", "VV"))
            .filter(ee.Filter.listContains("transmitterReceiverPolarisation", "VH"))
            .filter(ee.Filter.eq("instrumentMode", "IW")))


def s1_nearest(lon: float, lat: float, time_ms: int, max_days: int) -> ee.Dictionary:
    """The S1 GRD IW VV/VH image nearest in time to ``time_ms`` within ±``max_days``, as
    ``[[system:index, |Δt| ms]]`` (empty when none)."""
    point = ee.Geometry.Point([lon, lat])
    t = ee.Date(time_ms)
    near = s1_iw_vv_vh(point).filterDate(t.advance(-max_days, "day"), t.advance(max_days, "day"))
    timed = near.map(lambda im: im.set("dt", ee.Number(im.get("system:time_start")).subtract(time_ms).abs()))
    return ee.Dictionary(timed.sort("dt").limit(1).reduceColumns(ee.Reducer.toList(2), ["system:index", "dt"]))


def s2_pixels(system_index: str, resample: str) -> ee.Image:
    """The 13 L1C bands of one product as uint16 digital numbers."""
    image = ee.Image(f"{S2_L1C}/{system_index}").select(list(S2_BANDS))
    return (image.resample(resample) if resample != "nearest" else image).toUint16()


def dw_pixels(system_index: str) -> ee.Image:
    """Dynamic World's ``label`` band (class ids 0-8) of the same product, nearest neighbour."""
    return ee.Image(f"{DYNAMIC_WORLD}/{system_index}").select(["label"]).toUint8()


def s1_pixels(system_index: str, resample: str) -> ee.Image:
    """VV and VH backscatter (dB) as float32."""
    image = ee.Image(f"{S1_GRD}/{system_index}").select(list(S1_BANDS))
    return (image.resample(resample) if resample != "nearest" else image).toFloat()


def grid_request(grid: GridSpec) -> dict[str, Any]:
    """The REST ``PixelGrid`` of a tile: explicit affine transform, dimensions and CRS code."""
    a = grid.transform
    return {
        "dimensions": {"width": grid.width, "height": grid.height},
        "affineTransform": {"scaleX": a[0], "shearX": a[1], "translateX": a[2],
                            "shearY": a[3], "scaleY": a[4], "translateY": a[5]},
        "crsCode": grid.crs,
    }


def pixels_request(expression: ee.Image, grid: GridSpec) -> dict[str, Any]:
    """``ee.data.computePixels`` parameters for one tile (or strip): a GeoTIFF on exactly ``grid``."""
    return {"expression": expression, "fileFormat": "GEO_TIFF", "grid": grid_request(grid)}
