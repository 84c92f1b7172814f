"""LSR variants on the real Chesapeake West Virginia patches (``shared/real/chesapeake_wv``).

Directory layout (README there): ``patches/*.npz``, key ``arr_0``, float32 (1, 29, 256, 256);
channels 0–3 the newer NAIP R, G, B, NIR (0–255), channel 8 the Chesapeake high-res classes,
channel 9 NLCD codes (30 m upsampled).  Fine classes are mapped to the 4 LSR classes and NLCD codes
to rows of the p(ℓ|c) table with tables passed in as data (``config/tables/``).

Variants (spec §7, §8, §3 + §5 + §6): self-epitomic LSR per patch, colour-mixture LSR per patch, one
epitome trained on all patches with coarse-label embedding and EM, and the naive baseline
argmax p(ℓ|c).  Scores come from :mod:`eolabels.metrics`.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Mapping, Sequence

import numpy as np
import pandas as pd
import torch
from torch import Tensor

from eolabels.epitome.embed import reconstruct_tile
from eolabels.epitome.lsr import (
    coarse_slots,
    colour_mixture_lsr,
    embed_coarse_dataset,
    lsr_em,
    naive_labels,
    self_epitomic_lsr,
)
from eolabels.epitome.model import GaussianEpitome
from eolabels.epitome.train import EpitomeTrainer, TrainConfig
from eolabels.metrics import IGNORE_INDEX, SegmentationMetrics

NAIP_CHANNELS = slice(0, 4)
FINE_CHANNEL = 8
NLCD_CHANNEL = 9


@dataclass(frozen=True)
class LabelledTile:
    """One patch: NAIP image in [0, 1] (4×H×W), fine LSR-class ids (255 = none), coarse table slots."""

    name: str
    image: Tensor
    fine: Tensor
    slots: Tensor


def load_chesapeake_tiles(
    directory: str | Path,
    fine_to_lsr: Mapping[int, int],
    nlcd_codes: Sequence[int],
    size: int | None = None,
) -> list[LabelledTile]:
    """Read every ``patches/*.npz``; ``size`` crops each to its top-left size×size (for quick runs)."""
    files = sorted(Path(directory, "patches").glob("*.npz"))
    if not files:
        raise FileNotFoundError(f"no patches/*.npz under {directory}")
    tiles = []
    for path in files:
        with np.load(path) as archive:
            if "arr_0" not in archive:
                raise ValueError(f"{path}: expected key 'arr_0', found {list(archive.keys())}")
            data = archive["arr_0"]
        if data.ndim != 4 or data.shape[:2] != (1, 29):
            raise ValueError(f"{path}: expected shape (1, 29, H, W), got {data.shape}")
        data = torch.from_numpy(data[0, :, :size, :size].copy())
        fine_codes = data[FINE_CHANNEL].long()
        fine = torch.full_like(fine_codes, IGNORE_INDEX)
        for code in torch.unique(fine_codes).tolist():
            if code not in fine_to_lsr:
                raise ValueError(f"{path}: fine class {code} has no entry in the fine→LSR mapping")
            fine[fine_codes == code] = fine_to_lsr[code]
        tiles.append(
            LabelledTile(
                name=path.stem,
                image=data[NAIP_CHANNELS] / 255.0,
                fine=fine,
                slots=coarse_slots(data[NLCD_CHANNEL].long(), nlcd_codes),
            )
        )
    return tiles


@dataclass(frozen=True)
class VariantSettings:
    """Sizes of the LSR variants.  Self-epitomic and colour defaults are the papers' (spec §7, §8);
    the all-patch epitome (128², 300 iterations) is far smaller than the paper's 499² epitomes
    trained for 50,000 iterations (§3), so that it runs on a CPU in minutes."""

    self_patch_size: int = 7
    self_samples: int = 20000
    colour_components: int = 48
    epitome_side: int = 128
    epitome_iterations: int = 300
    epitome_batch_size: int = 64
    epitome_patch_sizes: tuple[int, ...] = (11, 15, 21)
    embed_patch_size: int = 11
    embed_samples: int = 20000
    reconstruct_stride: int = 4
    variants: tuple[str, ...] = ("naive", "colour", "self_epitomic", "epitome")
    seed: int = 0
    progress: bool = False


def all_patch_epitome_predictions(
    tiles: Sequence[LabelledTile], table: Tensor, settings: VariantSettings
) -> list[Tensor]:
    """One epitome trained on all tiles (spec §3), coarse labels embedded and EM'd (§5, §6), tiles
    reconstructed (§5)."""
    generator = torch.Generator().manual_seed(settings.seed)
    images = [tile.image for tile in tiles]
    epitome = GaussianEpitome.initialise(1, images[0].shape[0], settings.epitome_side, generator=generator)
    config = TrainConfig(
        patch_sizes=settings.epitome_patch_sizes, batch_size=settings.epitome_batch_size, seed=settings.seed
    )
    EpitomeTrainer(epitome, images, config).train(settings.epitome_iterations, progress=settings.progress)
    lrmap = embed_coarse_dataset(
        epitome, images, [tile.slots for tile in tiles], table.shape[0], settings.embed_patch_size,
        settings.embed_samples, generator=generator,
    )
    label_probs = lsr_em(lrmap, table, generator=generator).permute(3, 0, 1, 2)  # Lc×L×N×N
    return [
        reconstruct_tile(
            epitome, tile.image, label_probs, settings.embed_patch_size, settings.reconstruct_stride,
            generator=generator,
        ).argmax(0)
        for tile in tiles
    ]


def evaluate_lsr_variants(
    tiles: Sequence[LabelledTile], table: Tensor, settings: VariantSettings = VariantSettings()
) -> pd.DataFrame:
    """Per-tile OA and mIoU of each variant, plus a pooled row per variant (one confusion matrix over
    all tiles)."""
    num_classes = table.shape[1]
    predictions: dict[str, list[Tensor]] = {}
    if "naive" in settings.variants:
        predictions["naive"] = [naive_labels(tile.slots, table) for tile in tiles]
    if "colour" in settings.variants:
        predictions["colour"] = [
            colour_mixture_lsr(
                tile.image, tile.slots, table, settings.colour_components, settings.seed
            ).argmax(-1)
            for tile in tiles
        ]
    if "self_epitomic" in settings.variants:
        predictions["self_epitomic"] = [
            self_epitomic_lsr(
                tile.image, tile.slots, table, settings.self_patch_size, settings.self_samples,
                generator=torch.Generator().manual_seed(settings.seed),
            ).argmax(-1)
            for tile in tiles
        ]
    if "epitome" in settings.variants:
        predictions["epitome"] = all_patch_epitome_predictions(tiles, table, settings)
    rows = []
    for variant, maps in predictions.items():
        pooled = SegmentationMetrics(num_classes)
        for tile, prediction in zip(tiles, maps):
            single = SegmentationMetrics(num_classes)
            single.update(tile.fine, prediction)
            pooled.update(tile.fine, prediction)
            rows.append({"variant": variant, "tile": tile.name, **score_row(single)})
        rows.append({"variant": variant, "tile": "pooled", **score_row(pooled)})
    return pd.DataFrame(rows)


def score_row(metrics: SegmentationMetrics) -> dict[str, float]:
    """OA, mIoU (absent classes score 1, the project convention) and mIoU over the classes that occur
    in target or prediction (the convention of the LSR papers' tables, absent classes left out)."""
    scores = metrics.compute()
    occurs = (metrics.matrix.sum(0) + metrics.matrix.sum(1)) > 0
    present = float(scores["iou"][occurs].mean()) if occurs.any() else float("nan")
    return {"OA": scores["OA"], "mIoU": scores["mIoU"], "mIoU_present": present}
