"""Patch sampling and cropping shared by training, embedding and reconstruction (spec §3, §5, §7)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Sequence

import torch
from torch import Tensor


@dataclass(frozen=True)
class PatchOrigins:
    """Top-left corners of w×w patches: which image, which row, which column (1-D int64 tensors)."""

    image: Tensor
    top: Tensor
    left: Tensor
    size: int

    def __len__(self) -> int:
        return int(self.top.numel())

    def __getitem__(self, index: slice | Tensor) -> "PatchOrigins":
        return PatchOrigins(self.image[index], self.top[index], self.left[index], self.size)

    @staticmethod
    def joined(parts: Sequence["PatchOrigins"]) -> "PatchOrigins":
        """The origins of several batches (of one patch size) as one, in order."""
        return PatchOrigins(
            torch.cat([p.image for p in parts]), torch.cat([p.top for p in parts]),
            torch.cat([p.left for p in parts]), parts[0].size,
        )

    def centres(self) -> tuple[Tensor, Tensor]:
        half = self.size // 2
        return self.top + half, self.left + half


def sample_origins(
    shapes: Sequence[tuple[int, int]], size: int, count: int, generator: torch.Generator
) -> PatchOrigins:
    """``count`` uniform w×w windows fully inside uniformly chosen images of the given H×W shapes."""
    for height, width in shapes:
        if size > min(height, width):
            raise ValueError(f"patch side {size} exceeds an image of {height}×{width}")
    image = torch.randint(len(shapes), (count,), generator=generator)
    heights = torch.tensor([h for h, _ in shapes])[image]
    widths = torch.tensor([w for _, w in shapes])[image]
    top = (torch.rand(count, generator=generator, dtype=torch.float64) * (heights - size + 1)).long()
    left = (torch.rand(count, generator=generator, dtype=torch.float64) * (widths - size + 1)).long()
    return PatchOrigins(image, top, left, size)


def crop(images: Sequence[Tensor], origins: PatchOrigins) -> Tensor:
    """B×C×w×w (or B×w×w for 2-D label maps) crops at ``origins``, in origin order."""
    offsets = torch.arange(origins.size)
    first = images[0]
    out = first.new_empty((len(origins), *first.shape[:-2], origins.size, origins.size))
    for index in torch.unique(origins.image).tolist():
        rows_of = (origins.image == index).nonzero().squeeze(1)
        rows = (origins.top[rows_of][:, None] + offsets)[:, :, None]
        cols = (origins.left[rows_of][:, None] + offsets)[:, None, :]
        out[rows_of] = torch.movedim(images[index][..., rows, cols], -3, 0)
    return out


def window_starts(length: int, size: int, stride: int) -> list[int]:
    """Window starts along one axis covering every pixel: stride steps, the last flush with the end."""
    if size > length:
        raise ValueError(f"window {size} exceeds the tile side {length}")
    if not 1 <= stride <= size:
        raise ValueError(f"stride {stride} must be in 1..{size} for windows to cover every pixel")
    starts = list(range(0, length - size + 1, stride))
    if starts[-1] != length - size:
        starts.append(length - size)
    return starts


def covering_origins(height: int, width: int, size: int, stride: int) -> PatchOrigins:
    """Sliding windows over one H×W tile such that every pixel lies in at least one window (spec §5)."""
    rows = torch.tensor(window_starts(height, size, stride))
    cols = torch.tensor(window_starts(width, size, stride))
    top, left = torch.meshgrid(rows, cols, indexing="ij")
    return PatchOrigins(torch.zeros(top.numel(), dtype=torch.long), top.flatten(), left.flatten(), size)
