"""Selection-mask figure of CromSS pretraining (paper Fig. 11), from a run's checkpoint.

The PNG is written atomically; a figure from the synthetic world says so in its title.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import Tensor

from eolabels.cromss.checkpoint import load_pretrain_checkpoint
from eolabels.cromss.curves import pyplot
from eolabels.report.figures import save_figure
from eolabels.cromss.dataset import NoisyLabelPretrainDataset
from eolabels.cromss.models import build_pretrain_model
from eolabels.cromss.schedules import selection_ramp, selection_ratio
from eolabels.cromss.selection import (
    classwise_label_weights,
    cross_modal_enhancement,
    entity_confidence,
    entity_weights,
    label_confidence,
)
from eolabels.cromss.pretraining import pretrain_config, pretrain_dataset
from eolabels.report.tables import source_tag
from eolabels.tables import load_schema

RGB_BANDS = (3, 2, 1)  # B4, B3, B2 in the 13-band L1C order


def _centre_crop(x: Tensor, multiple: int = 32) -> Tensor:
    h, w = x.shape[-2:]
    ch, cw = h - h % multiple, w - w % multiple
    if ch == 0 or cw == 0:
        raise ValueError(f"tile {h}×{w} is smaller than {multiple} px; no selection figure possible")
    top, left = (h - ch) // 2, (w - cw) // 2
    return x[..., top:top + ch, left:left + cw]


def _batch(dataset: NoisyLabelPretrainDataset, n: int, seed: int) -> dict[str, Tensor]:
    torch.manual_seed(seed)
    items = [dataset[i] for i in range(min(n, len(dataset)))]
    return {k: _centre_crop(torch.stack([it[k] for it in items])) for k in items[0]}


def selection_maps(logits_s1: Tensor, logits_s2: Tensor, labels: Tensor, epoch: int,
                   final_ratio: float, rampdown_epochs: int, ramp: str, confidence: str,
                   zero_k_weight: float) -> dict[str, tuple[Tensor, Tensor]]:
    """Every intermediate mask of Eqs. 8–12 per modality, for display (same maths as selection.py)."""
    logits = (logits_s1.float(), logits_s2.float())
    classes = logits_s1.shape[1]
    ent = tuple(entity_confidence(x, confidence) for x in logits)
    lbl = tuple(label_confidence(x, labels) for x in logits)
    ent_enh = (cross_modal_enhancement(ent[0], ent[1]), cross_modal_enhancement(ent[1], ent[0]))
    lbl_enh = (cross_modal_enhancement(lbl[0], lbl[1]), cross_modal_enhancement(lbl[1], lbl[0]))
    ratio = selection_ratio(epoch, final_ratio, rampdown_epochs, ramp)
    lam = selection_ramp(ramp, epoch, rampdown_epochs)
    return {
        "entity confidence (Eq. 9)": ent,
        "enhanced entity (Eq. 10)": ent_enh,
        "consistency weight (Eq. 12)": tuple(entity_weights(e, lam) for e in ent_enh),
        "label confidence (Eq. 8)": lbl,
        "enhanced label (Eq. 10)": lbl_enh,
        "segmentation weight (Eq. 11)": tuple(
            classwise_label_weights(e, labels, ratio, classes, zero_k_weight) for e in lbl_enh),
    }


@torch.no_grad()
def plot_selection_masks(checkpoint: str | os.PathLike[str], dataset_dir: str | os.PathLike[str],
                         out_png: str | os.PathLike[str], variant: str, bands: str,
                         settings: dict[str, Any], seed: int = 0, locations: int = 4) -> Path:
    """Paper Fig. 11 for one fusion variant at its last epoch: input, noisy label (and truth), per
    modality the confidences, their cross-modal enhancement and the final weights.

    The masks are computed over a batch of ``locations`` full tiles (class-wise thresholds
    are batch statistics, §3) and the first tile is shown.
    """
    plt = pyplot()
    config = pretrain_config(variant, bands, settings, seed)
    if config.kind == "single":
        raise ValueError(f"variant {variant} has one modality; cross-modal selection masks need two")
    dataset = pretrain_dataset(dataset_dir, config, settings, seed)
    dataset.augment = False
    colours = load_schema(dataset.index.meta.layers[dataset.label_layer].schema).rgb()  # class id -> RGB
    model = build_pretrain_model(config.kind, config.encoder_name, in_channels_s2=config.in_channels_s2,
                                 decoder_channels=config.decoder_channels)
    load_pretrain_checkpoint(model, checkpoint)
    epoch = int(torch.load(checkpoint, map_location="cpu", weights_only=True)["epoch"]) - 1
    model.eval()
    batch = _batch(dataset, locations, seed)
    logits = model(batch["s1"], batch["s2"])
    sel = config.selection
    maps = selection_maps(*logits, batch["label"], max(epoch, 0), sel.final_ratio, sel.rampdown_epochs,
                          sel.ramp, sel.confidence, sel.zero_k_weight)
    rgb_pos = [dataset.band_indices.index(b) for b in RGB_BANDS]
    rgb = batch["s2"][0, rgb_pos].permute(1, 2, 0).numpy()
    inputs = [("S2 RGB (uint8 stretch)", np.clip(rgb / max(rgb.max(), 1e-6), 0, 1), None),
              ("S1 VV", batch["s1"][0, 0].numpy(), "gray"),
              ("noisy DW label", colours[batch["label"][0].numpy()], None)]
    if "truth" in batch:
        inputs.append(("truth (evaluation only)", colours[batch["truth"][0].numpy()], None))
    inputs += [(f"{name} prediction", colours[x[0].argmax(0).numpy()], None)
               for name, x in zip(("S1", "S2"), logits)]
    n_cols = max(len(inputs), len(maps))
    fig, axes = plt.subplots(3, n_cols, figsize=(2.4 * n_cols, 7.8), squeeze=False)
    for ax in axes.ravel():
        ax.set_axis_off()
    for c, (title, image, cmap) in enumerate(inputs):
        axes[0, c].imshow(image, cmap=cmap, interpolation="nearest")
        axes[0, c].set_title(title, fontsize=7)
    for r, modality in enumerate(("S1", "S2"), start=1):
        for c, (title, pair) in enumerate(maps.items()):
            im = axes[r, c].imshow(pair[r - 1][0].numpy(), cmap="viridis", vmin=0, vmax=1)
            axes[r, c].set_title(f"{modality}: {title}", fontsize=7)
    fig.colorbar(im, ax=axes[1:, :].ravel().tolist(), fraction=0.02)
    used = "used in training" if config.sample_selection else "NOT used in training (no-selection baseline)"
    ratio = selection_ratio(max(epoch, 0), sel.final_ratio, sel.rampdown_epochs, sel.ramp)
    fig.suptitle(f"Selection masks, {variant}_{bands}, epoch {epoch} (r = {ratio:.3f}; {used}) — "
                 f"{source_tag(dataset.index.meta.source)}", fontsize=9)
    return save_figure(fig, out_png, dpi=90)
