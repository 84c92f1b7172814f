"""A small plain U-Net for the similarity tests (module names as eolabels' subset rules expect), and the
untrained segmenter and output paths the density-audit tests share."""

from __future__ import annotations

from pathlib import Path

import torch
from torch import nn


def conv_block(c_in: int, c_out: int) -> nn.Sequential:
    return nn.Sequential(nn.Conv2d(c_in, c_out, 3, padding=1), nn.Tanh())


class PlainUNet(nn.Module):
    """Two-level U-Net: ``encoder`` and ``decoder`` (ModuleLists of blocks), 1x1 conv ``head``."""

    def __init__(self, in_channels: int = 3, classes: int = 4, width: int = 4):
        super().__init__()
        self.encoder = nn.ModuleList([conv_block(in_channels, width), conv_block(width, 2 * width)])
        self.decoder = nn.ModuleList([conv_block(3 * width, width), conv_block(width, width)])
        self.head = nn.Conv2d(width, classes, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        skip = self.encoder[0](x)
        bottom = self.encoder[1](nn.functional.max_pool2d(skip, 2))
        up = nn.functional.interpolate(bottom, scale_factor=2.0, mode="nearest")
        features = self.decoder[1](self.decoder[0](torch.cat([up, skip], dim=1)))
        return self.head(features)


def untrained_audit_setup(train_root: Path, out_dir: Path):
    """A fresh (seeded) 13-band, 9-class PlainUNet segmenter normalised on ``train_root``'s S2 tiles,
    and the table and figure paths of :func:`eolabels.similarity.audit.run_density_audit` in ``out_dir``."""
    from eolabels.similarity.segmentation import BandNormaliser, Segmenter, TrainSettings
    from eolabels.similarity.tiles import load_tiles

    train = load_tiles(train_root, ["image"])
    torch.manual_seed(0)
    segmenter = Segmenter(PlainUNet(13, 9), BandNormaliser.fit(train.layers["image"]), TrainSettings(), 9)
    tables = {k: out_dir / f"{k}.csv" for k in ("summary_csv", "tiles", "samples")}
    tables["summary_md"] = out_dir / "summary.md"
    figures = {"tiles": out_dir / "tiles.png", "deciles": out_dir / "deciles.png"}
    return segmenter, tables, figures
