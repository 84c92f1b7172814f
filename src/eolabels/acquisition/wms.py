"""OSM land-use labels through WMS (CromSS spec §9, steps 1–6), with OWSLib as the OGC client.

The service (by default HeiGIT's ``osmlanduse:osm_lulc``) renders land use as colours; the labels are
recovered by matching every pixel to the nearest colour of the layer's legend image:

1. legend colours from the layer's legend graphic, unique colours in order of first appearance:
   index 0 is the legend's background (unlabelled), 1..13 the classes in legend order;
2. request the tile's bounds in EPSG:3857, expanded by 10 % (the authors' code pads left and bottom
   by 10 % of the height and right and top by 10 % of the width), at 2.4 × the tile's pixel count;
3. each pixel gets the legend index at the smallest squared RGB distance;
4. per class, a binary opening (erosion then dilation, cross footprint); pixels claimed by more
   than one class become 0;
5. reprojection onto the tile grid: **nearest** by default. The authors resample the class ids
   *bilinearly* (kept as ``resampling="bilinear"``), which invents ids between two neighbours at
   every boundary (between ids 1 and 9 it yields 5, a class present on neither side); nearest keeps
   every output pixel one of the rendered classes;
6. the opening again; the tile is kept if any pixel is labelled.

Ids are written in the dataset's OSM schema through the transfer table ``osm_legend_to_osm`` (spec §6).
An HTTP 200 carrying a ServiceException XML or an HTML page is an error, never decoded as an image.
"""

from __future__ import annotations

import io
from dataclasses import dataclass

import numpy as np
from owslib.util import ServiceException, openURL
from owslib.wms import WebMapService
from PIL import Image
from rasterio.io import MemoryFile
from rasterio.transform import Affine
from rasterio.warp import Resampling, reproject, transform_bounds
from scipy import ndimage

from eolabels.acquisition.pool import LocationFailed, Transient
from eolabels.data.geotiff import GridSpec
from eolabels.tables import load_mapping, lookup_table

WEB_MERCATOR = "EPSG:3857"
CROSS = ndimage.generate_binary_structure(2, 1)


@dataclass(frozen=True)
class WmsSettings:
    """Config ``earthengine.osm``: the service, layer and the steps' parameters."""

    url: str = "https://maps.heigit.org/osmlanduse/service"
    layer: str = "osmlanduse:osm_lulc"
    style: str = ""
    image_format: str = "image/png"
    n_classes: int = 13
    bbox_buffer: float = 0.10
    oversample: float = 2.4
    resampling: str = "nearest"
    timeout: float = 60.0
    version: str = "1.1.1"


def legend_colours(legend: np.ndarray, n_classes: int) -> np.ndarray:
    """Step 1: the first ``n_classes + 1`` distinct RGB colours of the legend image, in order of first
    appearance (row-major): row 0 is the background (unlabelled), rows 1.. the classes.

    As in the authors' code, the legend must be swatches only: class names drawn in other colours
    before the last swatch would be taken for classes."""
    rgb = legend[..., :3].reshape(-1, 3)
    _, first = np.unique(rgb, axis=0, return_index=True)
    colours = rgb[np.sort(first)]
    if len(colours) < n_classes + 1:
        raise ValueError(f"legend image has {len(colours)} colours, need {n_classes + 1} (background + classes)")
    return colours[: n_classes + 1].astype(np.int64)


def request_box(grid: GridSpec, buffer: float) -> tuple[float, float, float, float]:
    """Step 2: the tile's bounds in EPSG:3857, padded as the authors pad them."""
    left, bottom, right, top = transform_bounds(grid.crs, WEB_MERCATOR, *grid.bounds)
    bw, bh = (right - left) * buffer, (top - bottom) * buffer
    return (left - bh, bottom - bh, right + bw, top + bw)  # height pad left/bottom, width pad right/top (authors' code)


def request_size(grid: GridSpec, oversample: float) -> tuple[int, int]:
    """Step 2: (width, height) in pixels of the GetMap request."""
    return (int(round(grid.width * oversample)), int(round(grid.height * oversample)))


def nearest_legend_index(rgb: np.ndarray, colours: np.ndarray) -> np.ndarray:
    """Step 3: per pixel, the legend index at the smallest squared RGB distance (first on ties)."""
    d = ((rgb[..., None, :3].astype(np.int64) - colours[None, None]) ** 2).sum(-1)
    return d.argmin(-1).astype(np.uint8)


def opening(mask: np.ndarray) -> np.ndarray:
    """Binary opening with the cross footprint; the erosion treats outside the image as set, so a
    class touching the border is not eaten from outside (skimage's behaviour the authors used)."""
    eroded = ndimage.binary_erosion(mask, CROSS, border_value=1)
    return ndimage.binary_dilation(eroded, CROSS, border_value=0)


def resolve_claims(masks: np.ndarray) -> np.ndarray:
    """Step 4's rule: index k where exactly mask k − 1 claims the pixel, 0 where none or several do."""
    claims = masks.sum(0)
    ids = masks.argmax(0).astype(np.uint8) + 1
    return np.where(claims == 1, ids, 0).astype(np.uint8)


def open_classes(index: np.ndarray, n_classes: int) -> np.ndarray:
    """Step 4 (and 6): open every class ≠ 0 separately, then resolve the pixels' claims."""
    masks = np.stack([opening(index == k) for k in range(1, n_classes + 1)])
    return resolve_claims(masks)


def onto_tile(index: np.ndarray, box: tuple[float, float, float, float], grid: GridSpec, resampling: str) -> np.ndarray:
    """Step 5: the rendered indices, georeferenced by the request box, reprojected onto the tile."""
    h, w = index.shape
    left, bottom, right, top = box
    src_transform = (right - left) / w, 0.0, left, 0.0, -(top - bottom) / h, top
    out = np.zeros((grid.height, grid.width), dtype=np.uint8)
    reproject(index, out, src_transform=Affine(*src_transform), src_crs=WEB_MERCATOR, dst_transform=grid.affine,
              dst_crs=grid.crs, resampling=Resampling[resampling], src_nodata=None, dst_nodata=0)
    return out


def to_schema_ids(index: np.ndarray) -> np.ndarray:
    """Legend index → OSM id through ``config/tables/osm_legend_to_osm.csv`` (k → k − 1, 0 → 255)."""
    return lookup_table(load_mapping("osm_legend_to_osm"))[index]


def decode_image(content: bytes, content_type: str, where: str) -> np.ndarray:
    """The (H, W, 3) RGB of a WMS response, or an error quoting what came back instead."""
    head = content[:400].lstrip()
    kind = content_type.split(";")[0].strip().lower()
    if "xml" in kind or "html" in kind or head[:1] == b"<":
        text = head.decode("utf-8", "replace")
        if "ServiceException" in text:
            raise LocationFailed(f"{where}: WMS ServiceException: {_service_message(content)}")
        raise LocationFailed(f"{where}: WMS returned {kind or 'no content type'} instead of an image: {text[:160]!r}")
    try:
        if content[:4] in (b"II*\x00", b"MM\x00*"):
            with MemoryFile(content) as mem, mem.open() as ds:
                return np.moveaxis(ds.read()[:3], 0, -1)
        return np.asarray(Image.open(io.BytesIO(content)).convert("RGB"))
    except Exception as err:  # noqa: BLE001 - any decoder failure is this tile's
        raise LocationFailed(f"{where}: WMS response is not a readable image ({err})") from None


def _service_message(content: bytes) -> str:
    from lxml import etree

    try:
        tree = etree.fromstring(content)
        texts = [t.strip() for t in tree.itertext() if t.strip()]
        return " ".join(texts)[:300] or "(empty)"
    except etree.XMLSyntaxError:
        return content[:300].decode("utf-8", "replace")


class OsmWms:
    """A WMS opened once per job (capabilities and legend), then one GetMap per tile."""

    def __init__(self, cfg: WmsSettings) -> None:
        self.cfg = cfg
        try:
            self.service = WebMapService(cfg.url, version=cfg.version, timeout=cfg.timeout)
        except ServiceException as err:
            raise LocationFailed(f"WMS {cfg.url}: GetCapabilities failed: {err}") from None
        if cfg.layer not in self.service.contents:
            raise LocationFailed(f"WMS {cfg.url}: no layer {cfg.layer!r} (has {sorted(self.service.contents)})")
        styles = self.service.contents[cfg.layer].styles
        style = styles.get(cfg.style or "default") or next(iter(styles.values()), {})
        legend_url = style.get("legend")
        if not legend_url:
            raise LocationFailed(f"WMS {cfg.url}: layer {cfg.layer!r} advertises no legend graphic")
        legend = openURL(legend_url, timeout=cfg.timeout)
        self.colours = legend_colours(decode_image(legend.read(), legend.info().get("Content-Type", ""),
                                                   f"WMS legend {cfg.layer}"), cfg.n_classes)

    def render(self, grid: GridSpec, where: str) -> tuple[np.ndarray, tuple[float, float, float, float]]:
        """GetMap of the padded tile box: the RGB image and the box it covers."""
        box = request_box(grid, self.cfg.bbox_buffer)
        try:
            response = self.service.getmap(layers=[self.cfg.layer], styles=[self.cfg.style], srs=WEB_MERCATOR,
                                           bbox=box, size=request_size(grid, self.cfg.oversample),
                                           format=self.cfg.image_format, transparent=False, timeout=self.cfg.timeout)
        except ServiceException as err:
            raise LocationFailed(f"{where}: WMS ServiceException: {err}") from None
        except Exception as err:  # noqa: BLE001 - OWSLib raises requests' errors for HTTP failures
            status = getattr(getattr(err, "response", None), "status_code", None)
            if status is None or status == 429 or status >= 500:
                raise Transient(f"{where}: WMS GetMap failed: {err}") from None
            raise LocationFailed(f"{where}: WMS GetMap failed: {err}") from None
        return decode_image(response.read(), response.info().get("Content-Type", ""), where), box

    def labels(self, grid: GridSpec, where: str) -> np.ndarray:
        """Steps 2–6 for one tile: uint8 OSM ids on ``grid`` (255 unlabelled); an empty tile fails."""
        rgb, box = self.render(grid, where)
        index = open_classes(nearest_legend_index(rgb, self.colours), self.cfg.n_classes)
        index = open_classes(onto_tile(index, box, grid, self.cfg.resampling), self.cfg.n_classes)
        if not index.any():
            raise LocationFailed(f"{where}: empty WMS image (no pixel carries an OSM land-use class)")
        return to_schema_ids(index)
