"""Writing a dataset in the common layout: one GeoTIFF per sample and layer, then the index.

Every writer (the synthetic world, the local importers) goes through :class:`DatasetWriter`, so the
layout, dtypes, label checks and embedded class colours are the same whatever the source.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from eolabels.data.geotiff import GridSpec, write_geotiff
from eolabels.data.index import DatasetMeta, grid_columns, write_index
from eolabels.tables import ClassSchema, load_schema


def class_colormap(schema: ClassSchema) -> dict[int, tuple[int, int, int]]:
    """GeoTIFF palette of a class schema, so label rasters open in QGIS in the schema's colours."""
    rgb = (schema.rgb() * 255).round().astype(int)
    return {cid: tuple(int(v) for v in rgb[i]) for i, cid in enumerate(schema.ids)}


class DatasetWriter:
    """Collects index rows while writing one dataset's GeoTIFFs; :meth:`close` writes the index.

    Samples go to ``samples/<id>/<season>/<layer>.tif`` when the dataset has seasons, else
    ``samples/<id>/<layer>.tif``. Label layers are checked against their class schema (their nodata
    value allowed) before writing.
    """

    def __init__(self, root: str | Path, meta: DatasetMeta) -> None:
        self.root, self.meta, self.rows = Path(root), meta, []
        self.schemas = {name: load_schema(spec.schema) for name, spec in meta.layers.items() if spec.schema}

    def add(self, sample_id: str, split: str, season: int, grid: GridSpec, layers: dict[str, np.ndarray]) -> None:
        """Write one sample's layers (a layer left out gets an empty path in the index)."""
        unknown = sorted(set(layers) - set(self.meta.layers))
        if unknown:
            raise ValueError(f"{self.meta.name}/{sample_id}: layers {unknown} are not in the dataset's contract")
        row: dict[str, object] = {"id": sample_id, "split": split, "season": season, **grid_columns(grid)}
        folder = Path("samples") / sample_id / (self.meta.seasons[season] if self.meta.seasons else "")
        for name, spec in self.meta.layers.items():
            if name not in layers:
                row[name] = ""
                continue
            data = layers[name].astype(spec.dtype)
            schema = self.schemas.get(name)
            if schema is not None:
                ignore = None if spec.nodata is None else int(spec.nodata)
                schema.validate_labels(data, ignore_index=ignore, where=f"{self.meta.name}/{sample_id}/{name}")
            rel = folder / f"{name}.tif"
            write_geotiff(
                self.root / rel, data, grid, spec.bands, nodata=spec.nodata,
                colormap=class_colormap(schema) if schema is not None and max(schema.ids) < 255 else None,
            )
            row[name] = rel.as_posix()
        self.rows.append(row)

    def close(self) -> Path:
        return write_index(self.root, self.meta, self.rows)
