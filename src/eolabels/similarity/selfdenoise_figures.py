"""Figure of the self-denoising rounds (spec §5.b): accuracy / changed fraction / held-out mIoU per
round, and one tile's truth and labels D_0 ... D_R side by side in the schema's colours."""

from __future__ import annotations

import os
from collections.abc import Sequence

import numpy as np
import pandas as pd
from torch import Tensor

from eolabels.report.tables import source_tag
from eolabels.report.figures import save_figure
from eolabels.similarity.report import image_preview
from eolabels.similarity.tiles import TileSet
from eolabels.tables import ClassSchema


def plot_rounds(
    table: pd.DataFrame,
    train: TileSet,
    label_sets: Sequence[Tensor],
    schema: ClassSchema,
    path: str | os.PathLike[str],
    source: str | None = None,
) -> None:
    """Top: the round curves; bottom: the tile whose labels changed most, image, truth, D_r.
    ``source`` names the data in the title (``eolabels.report.tables.source_tag``; default: the
    training set's meta ``source``)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    panels = 2 + len(label_sets)
    fig = plt.figure(figsize=(2.6 * panels, 6.4))
    grid = fig.add_gridspec(2, panels, height_ratios=(1, 1.1))
    ax = fig.add_subplot(grid[0, : panels // 2])
    ax.plot(table["round"], table["label_accuracy"], "o-", label="label accuracy vs truth")
    ax.plot(table["round"], table["heldout_mIoU"], "s-", label="held-out mIoU of a model on D_r")
    ax.set(xlabel="round r (labels D_r)", ylim=(0, 1), xticks=table["round"])
    ax.legend(fontsize=8)
    ax.set_title(f"Self-denoising rounds — {source_tag(source or train.index.meta.source)}", fontsize=10)
    ax2 = fig.add_subplot(grid[0, panels // 2 :])
    ax2.bar(table["round"][1:], table["changed_fraction"][1:], color="tab:orange")
    ax2.set(xlabel="round r", ylabel="changed fraction D_r vs D_(r-1)", xticks=table["round"][1:])
    first, last = label_sets[0].numpy(), label_sets[-1].numpy()
    tile = int(np.argmax((first != last).reshape(len(first), -1).mean(axis=1)))
    maps = [("truth", train.layers["truth"][tile])] + [
        (f"D{r}" + (" (noisy)" if r == 0 else ""), labels[tile].numpy()) for r, labels in enumerate(label_sets)
    ]
    image_ax = fig.add_subplot(grid[1, 0])
    image_ax.imshow(image_preview(train.layers["image"][tile], train.spec("image").bands)[0])
    image_ax.set_title(train.names()[tile], fontsize=9)
    for k, (title, labels) in enumerate(maps, start=1):
        map_ax = fig.add_subplot(grid[1, k])
        map_ax.imshow(
            np.ma.masked_equal(labels, 255), cmap=schema.listed_colormap(),
            vmin=-0.5, vmax=schema.num_classes - 0.5, interpolation="nearest",
        )
        map_ax.set_title(title, fontsize=9)
    for a in fig.axes[2:]:
        a.set_xticks([])
        a.set_yticks([])
    handles = [matplotlib.patches.Patch(color=c, label=n) for c, n in zip(schema.colors, schema.names)]
    fig.legend(handles=handles, loc="lower center", ncol=min(9, len(handles)), fontsize=8)
    fig.tight_layout(rect=(0, 0.06, 1, 1))
    save_figure(fig, path, dpi=110)
