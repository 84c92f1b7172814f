"""A real WMS 1.1.1 on 127.0.0.1 for the tests: GetCapabilities, GetMap, GetLegendGraphic.

GetMap renders a label field defined in EPSG:3857 (``label_at(x, y)`` → legend index) in the legend
colours of ``config/tables/osm_legend.csv`` (classes 1..13), the legend graphic shows the swatches on
a white background. ``mode`` makes it misbehave the ways real services do.
"""

from __future__ import annotations

import io
import threading
from collections.abc import Callable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs, urlparse

import numpy as np
from PIL import Image
from rasterio.io import MemoryFile
from rasterio.transform import from_bounds

from eolabels.tables import load_schema

LAYER = "osmlanduse:osm_lulc"
BACKGROUND = (255, 255, 255)


def legend_palette() -> np.ndarray:
    """(14, 3): the white legend background, then the 13 class colours in legend order."""
    schema = load_schema("osm_legend")
    rgb = (schema.rgb()[1:] * 255).round().astype(np.uint8)
    return np.vstack([np.array(BACKGROUND, np.uint8)[None], rgb])


def legend_png() -> bytes:
    palette = legend_palette()
    img = np.full((14 * 20, 60, 3), 255, np.uint8)
    for k in range(1, 14):
        img[(k - 1) * 20 + 2:(k - 1) * 20 + 18, 4:24] = palette[k]
    return png(img)


def png(rgb: np.ndarray) -> bytes:
    out = io.BytesIO()
    Image.fromarray(rgb).save(out, format="PNG")
    return out.getvalue()


CAPABILITIES = """<?xml version="1.0" encoding="UTF-8"?>
<WMT_MS_Capabilities version="1.1.1" xmlns:xlink="http://www.w3.org/1999/xlink">
<Service><Name>OGC:WMS</Name><Title>test osm land use</Title>
<OnlineResource xlink:type="simple" xlink:href="{base}"/></Service>
<Capability><Request>
<GetCapabilities><Format>application/vnd.ogc.wms_xml</Format><DCPType><HTTP><Get><OnlineResource xlink:type="simple" xlink:href="{base}?"/></Get></HTTP></DCPType></GetCapabilities>
<GetMap><Format>image/png</Format><Format>image/geotiff</Format><DCPType><HTTP><Get><OnlineResource xlink:type="simple" xlink:href="{base}?"/></Get></HTTP></DCPType></GetMap>
</Request>
<Exception><Format>application/vnd.ogc.se_xml</Format></Exception>
<Layer><Title>root</Title><SRS>EPSG:3857</SRS>
<Layer queryable="0"><Name>{layer}</Name><Title>OSM land use</Title><SRS>EPSG:3857</SRS>
<LatLonBoundingBox minx="-180" miny="-85" maxx="180" maxy="85"/>
<Style><Name>default</Name><Title>default</Title>
<LegendURL width="60" height="280"><Format>image/png</Format>
<OnlineResource xlink:type="simple" xlink:href="{base}?SERVICE=WMS&amp;REQUEST=GetLegendGraphic&amp;VERSION=1.1.1&amp;FORMAT=image/png&amp;LAYER={layer}"/>
</LegendURL></Style>
</Layer></Layer></Capability></WMT_MS_Capabilities>"""

SERVICE_EXCEPTION = b"""<?xml version="1.0" encoding="UTF-8"?>
<ServiceExceptionReport version="1.1.1"><ServiceException code="InvalidSRS">Rendering failed: layer osm_lulc has no data for this SRS</ServiceException></ServiceExceptionReport>"""


class WmsServer:
    """``with WmsServer(label_at) as url:`` — a threaded server; ``mode`` is read per request:
    normal | se_xml (200, application/vnd.ogc.se_xml) | xml_200 (200, text/xml exception) |
    html (200, an HTML error page) | empty (every pixel the background colour) | http<code> (GetMap
    answers that HTTP error)."""

    def __init__(self, label_at: Callable[[np.ndarray, np.ndarray], np.ndarray], mode: str = "normal") -> None:
        self.label_at, self.mode, self.requests = label_at, mode, []
        self.palette = legend_palette()

    def render(self, query: dict[str, str]) -> tuple[bytes, str]:
        minx, miny, maxx, maxy = (float(v) for v in query["BBOX"].split(","))
        w, h = int(query["WIDTH"]), int(query["HEIGHT"])
        xs = minx + (np.arange(w) + 0.5) * (maxx - minx) / w
        ys = maxy - (np.arange(h) + 0.5) * (maxy - miny) / h
        index = np.zeros((h, w), np.uint8) if self.mode == "empty" else self.label_at(*np.meshgrid(xs, ys))
        rgb = self.palette[index]
        if query.get("FORMAT", "").lower() == "image/geotiff":
            with MemoryFile() as mem:
                with mem.open(driver="GTiff", height=h, width=w, count=3, dtype="uint8", crs="EPSG:3857",
                              transform=from_bounds(minx, miny, maxx, maxy, w, h)) as ds:
                    ds.write(np.moveaxis(rgb, -1, 0))
                return bytes(mem.read()), "image/geotiff"
        return png(rgb), "image/png"

    def __enter__(self) -> str:
        server = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args) -> None:
                pass

            def do_GET(self) -> None:
                query = {k.upper(): v[0] for k, v in parse_qs(urlparse(self.path).query).items()}
                request = query.get("REQUEST", "")
                server.requests.append(request)
                if request == "GetCapabilities":
                    body, kind = CAPABILITIES.format(base=server.url, layer=LAYER).encode(), "application/vnd.ogc.wms_xml"
                elif request == "GetLegendGraphic":
                    body, kind = legend_png(), "image/png"
                elif request == "GetMap" and server.mode.startswith("http"):
                    self.send_error(int(server.mode[4:]), "backend trouble")
                    return
                elif request == "GetMap" and server.mode == "se_xml":
                    body, kind = SERVICE_EXCEPTION, "application/vnd.ogc.se_xml"
                elif request == "GetMap" and server.mode == "xml_200":
                    body, kind = SERVICE_EXCEPTION, "text/xml"
                elif request == "GetMap" and server.mode == "html":
                    body, kind = b"<!DOCTYPE html><html><body><h1>502 Bad Gateway</h1></body></html>", "text/html"
                elif request == "GetMap":
                    body, kind = server.render(query)
                else:
                    self.send_error(400, f"unknown request {request!r}")
                    return
                self.send_response(200)
                self.send_header("Content-Type", kind)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}/wms"
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)
        self.thread.start()
        return self.url

    def __exit__(self, *exc) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()
