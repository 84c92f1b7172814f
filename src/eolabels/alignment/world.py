"""The synthetic world the alignment's acceptance checks run on (spec netsimilarity.md §5.c), made as
the workflow makes its ``osm`` dataset: DW tiles (S2 images), OSM labels misregistered on them by a
known field, and the OSM↔DW filter joining both with every tile kept (θ = 0), so one dataset holds the
image, the misregistered map, the registered map and the true field of every tile.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from eolabels.data.stages import filter_osm
from eolabels.data.synthetic import DW_TILES, generate_dataset


def synthetic_osm_world(base: str | os.PathLike[str], tiles: Mapping[str, Any], osm: Mapping[str, Any],
                        seed: int, test_tiles: int = 1) -> Path:
    """Generate ``dw`` (section ``tiles``) and ``osm_raw`` (section ``osm``) under ``base`` and join them
    into ``base/osm`` (``test_tiles`` tiles in the test split); returns that dataset's folder."""
    base = Path(base)
    generate_dataset("dw", base / "dw", dict(tiles), seed=seed)
    generate_dataset("osm", base / "osm_raw", {**osm, DW_TILES: dict(tiles)}, seed=seed)
    out = base / "filter"
    filter_osm(dw_dir=base / "dw", osm_dir=base / "osm_raw", role="label", out_dir=base / "osm",
               agreement=out / "agreement.csv", table=out / "filter.csv", table_md=out / "filter.md",
               histogram=out / "agreement.png",
               settings={"threshold": 0.0, "sweep": [0.5], "test_tiles": test_tiles, "pad_moved_tiles": False},
               seed=seed)
    return base / "osm"
