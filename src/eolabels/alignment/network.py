"""The scale network of Girard et al. (ACCV 2018) in PyTorch (spec netsimilarity.md §4.3).

Two input branches (image, map), a common part joining them level by level, a displacement branch
(and optionally a segmentation branch) decoding back to level 0 with a 1x1 head at every decoder
level (deep supervision). Every 3x3 convolution of the conv blocks is *valid* (no padding), so an
input of side R gives an output of side ``output_size(R)`` centred in it: P = 2: 76 -> 20, 92 -> 36;
P = 3: 220 -> 100, 124 -> 4. Displacements come out of a tanh: ``px = out / 0.5 * amplitude``.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import Tensor, nn


def _init(conv: nn.Conv2d) -> nn.Conv2d:
    """Truncated normal weights of std sqrt(2 / (fan_in + fan_out)), bias -0.01 (the reference's)."""
    k = conv.kernel_size[0] * conv.kernel_size[1]
    std = math.sqrt(2.0 / (conv.in_channels * k + conv.out_channels * k))
    nn.init.trunc_normal_(conv.weight, std=std, a=-2 * std, b=2 * std)
    nn.init.constant_(conv.bias, -0.01)
    return conv


def conv_block(c_in: int, c_out: int) -> nn.Sequential:
    """2 x (valid conv3 + ELU): side - 4."""
    return nn.Sequential(_init(nn.Conv2d(c_in, c_out, 3)), nn.ELU(), _init(nn.Conv2d(c_out, c_out, 3)), nn.ELU())


def centre_crop(x: Tensor, size: int) -> Tensor:
    """The central ``size`` x ``size`` window of an N x C x H x W tensor."""
    top, left = (x.shape[-2] - size) // 2, (x.shape[-1] - size) // 2
    return x[..., top : top + size, left : left + size]


def output_size(input_size: int, pool_count: int) -> int:
    """Output side for an input of side ``input_size`` (every pooled side must be even); raises
    ``ValueError`` for sizes the valid convolutions cannot take."""
    side, sizes = input_size, []
    for level in range(pool_count + 1):
        side -= 4
        sizes.append(side)
        if level < pool_count:
            if side <= 0 or side % 2:
                raise ValueError(f"input side {input_size}: level-{level} side {side} cannot be pooled by 2")
            side //= 2
    common = [size - 4 for size in sizes]
    side = common[-1]
    for level in reversed(range(pool_count)):
        side *= 2  # upsampled, then cropped out of the common level-l features
        if side > common[level] or side - 4 <= 0:
            raise ValueError(f"input side {input_size} leaves no output at decoder level {level}")
        side -= 4
    return side


def input_size_for(min_output: int, pool_count: int) -> int:
    """The smallest valid input side whose output side is at least ``min_output``."""
    size = 4
    while True:
        size += 1
        try:
            if output_size(size, pool_count) >= min_output:
                return size
        except ValueError:
            continue


class Branch(nn.Module):
    """One input branch: conv blocks with ``base * 2^l`` filters, max-pooling between levels."""

    def __init__(self, c_in: int, base: int, pool_count: int) -> None:
        super().__init__()
        widths = [base * 2**level for level in range(pool_count + 1)]
        self.blocks = nn.ModuleList([conv_block(c_in, widths[0])] + [conv_block(widths[i], widths[i + 1])
                                                                      for i in range(pool_count)])

    def forward(self, x: Tensor) -> list[Tensor]:
        levels = []
        for level, block in enumerate(self.blocks):
            x = block(x if level == 0 else F.max_pool2d(x, 2))
            levels.append(x)
        return levels


class Decoder(nn.Module):
    """Output branch: from the common bottom level up to level 0, a 1x1 head at each decoder level."""

    def __init__(self, common_base: int, pool_count: int, out_channels: int) -> None:
        super().__init__()
        widths = [common_base * 2**level for level in range(pool_count + 1)]
        self.up = nn.ModuleList([_init(nn.Conv2d(widths[level + 1], widths[level], 3, padding=1))
                                 for level in reversed(range(pool_count))])
        self.blocks = nn.ModuleList([conv_block(2 * widths[level], widths[level])
                                     for level in reversed(range(pool_count))])
        self.heads = nn.ModuleList([_init(nn.Conv2d(widths[level], out_channels, 1))
                                    for level in reversed(range(pool_count))])

    def forward(self, common: list[Tensor]) -> list[Tensor]:
        """Head outputs from the coarsest decoder level to level 0, each at its own resolution."""
        x, outputs = common[-1], []
        for i, (up, block, head) in enumerate(zip(self.up, self.blocks, self.heads)):
            skip = common[len(common) - 2 - i]
            x = F.relu(up(F.interpolate(x, scale_factor=2, mode="bilinear", align_corners=False)))
            x = block(torch.cat([centre_crop(skip, x.shape[-1]), x], dim=1))
            outputs.append(head(x))
        return outputs


def deep_supervision(outputs: list[Tensor]) -> list[Tensor]:
    """Level outputs (coarsest first) brought to the level-0 size: bilinear x2^l and centre crop;
    returned finest first (level 0, 1, ...)."""
    size = outputs[-1].shape[-1]
    levels = []
    for i, out in enumerate(reversed(outputs)):
        if i:
            out = centre_crop(F.interpolate(out, scale_factor=2**i, mode="bilinear", align_corners=False), size)
        levels.append(out)
    return levels


class AlignNet(nn.Module):
    """The double-input scale network; ``forward(image, map)`` returns ``{"displacement": [levels],
    "segmentation": [levels]}`` (level 0 first, all at the output size; segmentation only with
    ``seg_channels`` > 0). Displacements are tanh outputs (network units)."""

    def __init__(self, image_channels: int, map_channels: int, pool_count: int = 2, image_base: int = 16,
                 map_base: int = 8, common_base: int = 24, seg_channels: int = 0) -> None:
        super().__init__()
        self.pool_count = pool_count
        self.image_branch = Branch(image_channels, image_base, pool_count)
        self.map_branch = Branch(map_channels, map_base, pool_count)
        self.common = nn.ModuleList([
            conv_block((image_base + map_base) * 2**level, common_base * 2**level) for level in range(pool_count + 1)
        ])
        self.displacement = Decoder(common_base, pool_count, 2)
        self.segmentation = Decoder(common_base, pool_count, seg_channels) if seg_channels else None

    def output_size(self, input_size: int) -> int:
        return output_size(input_size, self.pool_count)

    def forward(self, image: Tensor, map_channels: Tensor) -> dict[str, list[Tensor]]:
        if image.shape[-2:] != map_channels.shape[-2:]:
            raise ValueError(f"image {tuple(image.shape[-2:])} and map {tuple(map_channels.shape[-2:])} differ in size")
        common = [block(torch.cat([a, b], dim=1)) for block, a, b in
                  zip(self.common, self.image_branch(image), self.map_branch(map_channels))]
        out = {"displacement": [torch.tanh(x) for x in deep_supervision(self.displacement(common))]}
        if self.segmentation is not None:
            out["segmentation"] = deep_supervision(self.segmentation(common))
        return out


class JointInput(nn.Module):
    """The level-0 displacement of an :class:`AlignNet` as a function of one tensor holding the image
    channels then the map channels: the single-input form the Jacobian tools differentiate."""

    def __init__(self, net: AlignNet, image_channels: int) -> None:
        super().__init__()
        self.net, self.image_channels = net, image_channels

    def forward(self, x: Tensor) -> Tensor:
        c = self.image_channels
        return self.net(x[:, :c], x[:, c:])["displacement"][0]
