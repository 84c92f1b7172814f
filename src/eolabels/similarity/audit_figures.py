"""Figures of the density audit (spec §5.a): image, labels, log-density map and flagged samples per
tile, and the held-out error rate per density decile.  Class colours come from the label schema."""

from __future__ import annotations

import os
from collections.abc import Sequence

import numpy as np
import pandas as pd

from eolabels.report.tables import source_tag
from eolabels.similarity.density import density_grid
from eolabels.report.figures import save_figure
from eolabels.similarity.report import image_preview
from eolabels.similarity.tiles import TileSet
from eolabels.tables import ClassSchema


def plot_audit_tiles(
    train: TileSet,
    samples: pd.DataFrame,
    scores: Sequence[tuple],
    schema: ClassSchema,
    n_tiles: int,
    path: str | os.PathLike[str],
) -> None:
    """One row per tile (the ``n_tiles`` with most suspicious labels): true colour, noisy labels,
    ``log N_S`` at the sample centres, and the labels with ``suspicious label`` (x) and
    ``unreliable`` (o) samples marked."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    per_tile = samples.groupby(["id", "season"], sort=False)["suspicious_label"].sum().to_numpy()
    chosen = np.argsort(-per_tile, kind="stable")[: max(1, n_tiles)]
    fig, axes = plt.subplots(len(chosen), 4, figsize=(13, 3.2 * len(chosen)), squeeze=False)
    bands = train.spec("image").bands
    cmap = schema.listed_colormap()
    names = train.names()
    for ax_row, t in zip(axes, chosen):
        soft, _, rows, cols = scores[t]
        tile = samples[(samples["id"] == train.table.iloc[t]["id"]) & (samples["season"] == train.table.iloc[t]["season"])]
        labels = np.ma.masked_equal(train.layers["label"][t], 255)
        height, width = labels.shape
        stride = int(rows[1] - rows[0]) if len(rows) > 1 else height
        preview, shown = image_preview(train.layers["image"][t], bands)
        ax_row[0].imshow(preview)
        ax_row[0].set_title(f"{names[t]} {train.layer_names['image'].upper()} {shown}", fontsize=9)
        ax_row[1].imshow(labels, cmap=cmap, vmin=-0.5, vmax=schema.num_classes - 0.5, interpolation="nearest")
        ax_row[1].set_title(f"training labels ({train.layer_names['label']})", fontsize=9)
        extent = (0, len(cols) * stride, len(rows) * stride, 0)
        image = ax_row[2].imshow(density_grid(soft, len(rows), len(cols)), cmap="magma", extent=extent)
        fig.colorbar(image, ax=ax_row[2], fraction=0.046, label="log N_S")
        ax_row[2].set(xlim=(0, width), ylim=(height, 0))
        ax_row[2].set_title("log-density (soft count)", fontsize=9)
        ax_row[3].imshow(labels, cmap=cmap, vmin=-0.5, vmax=schema.num_classes - 0.5, interpolation="nearest", alpha=0.6)
        sus = tile[tile["suspicious_label"]]
        unr = tile[tile["unreliable"]]
        ax_row[3].scatter(sus["col"], sus["row"], marker="x", c="red", s=40, label="suspicious label")
        ax_row[3].scatter(unr["col"], unr["row"], marker="o", facecolors="none", edgecolors="black", s=40, label="unreliable")
        ax_row[3].set_title("flagged samples", fontsize=9)
        ax_row[3].legend(fontsize=7, loc="lower right")
        for ax in ax_row:
            ax.set_xticks([])
            ax.set_yticks([])
    handles = [matplotlib.patches.Patch(color=c, label=n) for c, n in zip(schema.colors, schema.names)]
    fig.legend(handles=handles, loc="lower center", ncol=min(9, len(handles)), fontsize=8)
    fig.suptitle(f"Density audit, training tiles — {source_tag(train.index.meta.source)}", fontsize=10)
    fig.tight_layout(rect=(0, 0.05, 1, 0.97))
    save_figure(fig, path, dpi=110)


def plot_density_deciles(
    soft: np.ndarray,
    errors: np.ndarray,
    path: str | os.PathLike[str],
    source: str,
    season: str | None = None,
    season_groups: tuple[Sequence[np.ndarray], Sequence[np.ndarray]] | None = None,
) -> None:
    """Acceptance A2 on held-out tiles: the prediction error rate per ``N_S`` decile and, with a
    withheld ``season``, each tile's median ``N_S`` (dots; its samples' ``N_S`` as a box) for the
    tiles of that season vs those of the trained seasons (``season_groups`` = per-tile ``N_S``
    arrays of both groups).  Titled with the data ``source`` (a ``data`` value of
    ``eolabels.report.tables``)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    edges = np.quantile(soft, np.linspace(0, 1, 11))
    decile = np.clip(np.searchsorted(edges, soft, side="right") - 1, 0, 9)
    rates = [errors[decile == k].mean() if (decile == k).any() else np.nan for k in range(10)]
    panels = 1 if season_groups is None else 2
    fig, axes = plt.subplots(1, panels, figsize=(6 * panels, 3.5), constrained_layout=True, squeeze=False)
    ax = axes[0, 0]
    ax.bar(np.arange(1, 11), rates, color="tab:blue")
    ax.set(xlabel="decile of soft neighbour count N_S (1 = fewest neighbours)", ylabel="error rate vs truth")
    ax.set_title("Held-out prediction error by density decile", fontsize=10)
    if season_groups is not None:
        ax = axes[0, 1]
        labels = [f"{season} (withheld)", "trained seasons"]
        for k, group in enumerate(season_groups):
            if len(group):
                ax.boxplot(np.concatenate(group), positions=[k], widths=0.5, showfliers=False)
                medians = [np.median(g) for g in group]
                jitter = np.linspace(-0.12, 0.12, len(medians)) if len(medians) > 1 else [0.0]
                ax.scatter(k + np.asarray(jitter), medians, color="tab:red", zorder=3, s=25)
        ax.set_xticks([0, 1], labels)
        ax.set(xlim=(-0.6, 1.6), ylabel="N_S (box: samples; dots: tile medians)")
        ax.set_title("Held-out tiles by season", fontsize=10)
    fig.suptitle(f"Density audit A2 — {source_tag(source)}", fontsize=10)
    save_figure(fig, path, dpi=110)
