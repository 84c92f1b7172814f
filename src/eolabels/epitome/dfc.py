"""DFC2020 application of LSR (spec §9): soft p(ℓ|c) from a class mapping, ensemble rule, distilled FCN."""

from __future__ import annotations

from typing import Mapping, Sequence

import torch
import torch.nn.functional as F
from torch import Tensor, nn
from tqdm.auto import tqdm


def soft_table_from_mapping(
    mapping: Mapping[int, Mapping[int, float]],
    source_codes: Sequence[int],
    target_classes: Sequence[int],
    confidence: float = 0.7,
) -> Tensor:
    """Non-leaky p(ℓ|c) (spec §9.2, option 2), |source_codes|×|target_classes|.

    ``mapping[c]`` gives the target class(es) of source code c with relative weights (one-hot for
    a plain mapping, a split such as savanna → shrubland/grassland/forest); the row puts
    ``confidence`` on that distribution and spreads 1 − confidence evenly over the other target
    classes.  Codes without a mapping (e.g. IGBP 0) get an all-zero row and so contribute nothing
    to the EM (as NLCD 0/255 do, spec §6).
    """
    if not 0 < confidence <= 1:
        raise ValueError(f"confidence must be in (0, 1], got {confidence}")
    column = {int(t): i for i, t in enumerate(target_classes)}
    table = torch.zeros(len(source_codes), len(target_classes), dtype=torch.float64)
    for row, code in enumerate(source_codes):
        targets = mapping.get(int(code), {})
        if not targets:
            continue
        unknown = [t for t in targets if int(t) not in column]
        if unknown:
            raise ValueError(
                f"source code {code} maps to {unknown}, not among the target classes {list(target_classes)}"
            )
        total = float(sum(targets.values()))
        mapped = torch.zeros(len(target_classes), dtype=torch.float64)
        for target, weight in targets.items():
            mapped[column[int(target)]] = weight / total
        others = mapped == 0
        if others.any():
            table[row] = confidence * mapped
            table[row, others] = (1 - confidence) / int(others.sum())
        else:
            table[row] = mapped
    return table


def weighted_mapping(
    one_to_one: Mapping[int, int], splits: Mapping[int, Mapping[int, float]]
) -> dict[int, dict[int, float]]:
    """Turn a one-to-one code map (e.g. IGBP → DFC2020, ``config/tables/igbp_to_dfc2020.csv``) into the
    weighted form of :func:`soft_table_from_mapping`; a target listed in ``splits`` (savanna) is
    replaced by its split, an empty split (snow/ice) leaves the code unmapped."""
    return {
        int(code): dict(splits[target]) if target in splits else {int(target): 1.0}
        for code, target in one_to_one.items()
    }


def ensemble_colour_epitome(colour: Tensor, epitome: Tensor, colour_classes: Sequence[int]) -> Tensor:
    """Spec §9 (interpretation): the colour model's label where it predicts one of ``colour_classes``
    (shrubland, barren), the epitome model's label elsewhere."""
    use_colour = torch.isin(colour, torch.as_tensor(list(colour_classes), dtype=colour.dtype))
    return torch.where(use_colour, colour, epitome)


class DistilledFCN(nn.Module):
    """5-layer FCN of spec §9: conv3×3, conv3×3, conv1×1, conv1×1, conv1×1 (class logits)."""

    def __init__(self, in_channels: int, num_classes: int = 8, width: int = 64) -> None:
        super().__init__()
        self.layers = nn.Sequential(
            nn.Conv2d(in_channels, width, 3, padding=1),
            nn.ReLU(inplace=True),
            nn.Conv2d(width, width, 3, padding=1),
            nn.ReLU(inplace=True),
            nn.Conv2d(width, width, 1),
            nn.ReLU(inplace=True),
            nn.Conv2d(width, width, 1),
            nn.ReLU(inplace=True),
            nn.Conv2d(width, num_classes, 1),
        )

    def forward(self, images: Tensor) -> Tensor:
        return self.layers(images)


def standardise_bands(images: Tensor) -> Tensor:
    """Per-band zero mean, unit variance over an N×C×H×W stack (spec §9 default input)."""
    mean = images.mean(dim=(0, 2, 3), keepdim=True)
    std = images.std(dim=(0, 2, 3), keepdim=True).clamp_min(1e-6)
    return (images - mean) / std


def train_distilled_fcn(
    model: DistilledFCN,
    images: Tensor,
    targets: Tensor,
    epochs: int = 10,
    batch_size: int = 8,
    learning_rate: float = 1e-3,
    ignore_index: int = 255,
    seed: int = 0,
    progress: bool = True,
) -> list[float]:
    """Per-pixel cross-entropy on the ensemble's hard labels (spec §9), Adam; returns epoch losses."""
    generator = torch.Generator().manual_seed(seed)
    optimizer = torch.optim.Adam(model.parameters(), lr=learning_rate)
    losses = []
    model.train()
    for _ in tqdm(range(epochs), disable=not progress, desc="distil"):
        order = torch.randperm(len(images), generator=generator)
        total = 0.0
        for batch in order.split(batch_size):
            loss = F.cross_entropy(model(images[batch]), targets[batch].long(), ignore_index=ignore_index)
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
            total += float(loss.detach()) * len(batch)
        losses.append(total / len(images))
    return losses
