"""CromSS pretraining outputs as networks for the density audit (spec netsimilarity.md §1.3, §5.a).

A pretraining run (``results/pretrain*/<variant>_<bands>/``, rules/pretrain.smk) keeps its final
full checkpoint ``epoch=<last>.ckpt``: the authors' ``net.<keys>`` state dict plus the trainer's
``config`` (model kind, encoder, S2 band count, classes).  ``encoders.pt`` holds the encoders only,
so the audit reads the checkpoint.  :func:`load_pretrained_segmenter` has the model rebuilt exactly
(strict load, ``eolabels.cromss.checkpoint.load_branch``) and hands the audit one modality branch
as a single-input segmentation network:

* ``single`` (``s1``, ``s2``): the U-Net itself;
* ``late_fusion``: ``model1`` (S1) or ``model2`` (S2);
* ``mid_fusion``: ``encoder1`` (S1) or ``encoder`` (S2) followed by the shared decoder and head —
  the very computation of ``MidFusionUnet.forward`` for that modality.  Its decoder BatchNorm
  statistics mix both modalities (the decoder saw both batches in training); that is the network.

The branch (``eolabels.cromss.models.ModalityBranch``) names its parts ``encoder``, ``decoder`` (smp ``UnetDecoder``
with ``decoder.blocks``) and ``segmentation_head``, the names the parameter subsets of
:mod:`eolabels.similarity.jacobian` select by.  The input normaliser (:class:`CromssInput`) is the
pretraining dataset's own: the 13-band L1C digital numbers (or S1 dB) through
``eolabels.cromss.normalization`` (band selection of ``b13``/``b9``, the uint8 stretch, /255), so the
audit sees what the network saw in training.  Labels need no remap: pretraining trains on the
dataset's ``label`` layer (Dynamic World ids 0..8) as stored (``NoisyLabelPretrainDataset``), which is
what the audit reads.

:class:`PretrainedSegmenter` carries what ``run_density_audit`` and ``predict_probabilities`` use of
a ``segmentation.Network`` (``model``, ``normaliser``, ``classes``) plus where the network came from.
:func:`audit_pretrained` (called by ``stages.audit_pretrained_stage``, the rule's entry point) is the
audit of :mod:`eolabels.similarity.audit` over one branch, with every training sample tagged by the
pretraining split of its location (the trainer's seeded validation split) and A3 also reported on
the locations the network was trained on.
"""

from __future__ import annotations

import logging
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import torch
from torch import Tensor

from eolabels.atomic import atomic_path
from eolabels.cromss.checkpoint import branch_of_payload, read_pretrain_checkpoint
from eolabels.cromss.models import ModalityBranch
from eolabels.cromss.normalization import normalise_s1, normalise_s2, s2_band_indices, uint8_to_unit
from eolabels.cromss.pretraining import s2_channels
from eolabels.cromss.train import VARIANTS, split_train_val
from eolabels.data.index import DatasetIndex
from eolabels.data.kinds import IMAGES
from eolabels.data.readers import TileReader
from eolabels.device import resolve_device
from eolabels.report.tables import combined_source, source_tag, write_table
from eolabels.similarity.audit import AuditSettings, run_density_audit
from eolabels.similarity.jacobian import select_parameters

log = logging.getLogger(__name__)
PathLike = str | os.PathLike[str]
MODALITIES = ("s1", "s2")


@dataclass(frozen=True)
class CromssInput:
    """The pretraining input normalisation of one modality (cromss spec §5–6).

    Takes the raster layer as stored (N x 13 x H x W S2 L1C digital numbers, or N x 2 x H x W S1
    dB), selects ``band_indices`` (S2 only: the ``b13``/``b9`` set), clips to μ ± 2σ, truncates to
    uint8 and divides by 255, tile by tile (``normalise_s2`` / ``normalise_s1``, the functions the
    pretraining dataset applies); a layer a release already stores in that uint8 encoding is only
    divided by 255.
    """

    modality: str
    band_indices: tuple[int, ...] | None = None

    def __post_init__(self) -> None:
        if self.modality not in MODALITIES:
            raise ValueError(f"modality must be one of {MODALITIES}, got {self.modality!r}")
        if self.modality == "s1" and self.band_indices is not None:
            raise ValueError("S1 has no band selection")

    @property
    def in_channels(self) -> int:
        """Channels the network receives."""
        if self.modality == "s1":
            return len(IMAGES["s1"].bands)
        return len(IMAGES["s2"].bands) if self.band_indices is None else len(self.band_indices)

    def __call__(self, images: np.ndarray) -> Tensor:
        """N x in_channels x H x W float32 tensor in [0, 1]."""
        images = np.asarray(images)
        bands = len(IMAGES[self.modality].bands)
        if images.ndim != 4 or images.shape[1] != bands:
            raise ValueError(
                f"{self.modality.upper()} images of shape {images.shape}: expected N x {bands} x H x W "
                "(the stored layer, before the band selection of the pretraining)"
            )
        if images.dtype == np.uint8:  # a released source's SSL4EO-S12 uint8 encoding (the NoL LMDBs): /255
            selected = images if self.band_indices is None else images[:, list(self.band_indices)]
            return torch.from_numpy(uint8_to_unit(selected))
        if self.modality == "s1":
            tiles = [normalise_s1(image) for image in images]
        else:
            tiles = [normalise_s2(image, self.band_indices) for image in images]
        return torch.from_numpy(np.stack(tiles))


@dataclass
class PretrainedSegmenter:
    """A CromSS branch as a ``segmentation.Network`` (``model``, ``normaliser``,
    ``classes``) and its provenance."""

    model: ModalityBranch
    normaliser: CromssInput
    classes: int
    checkpoint: str
    kind: str
    encoder_name: str
    epoch: int | None
    val_fraction: float
    split_seed: int

    @property
    def modality(self) -> str:
        return self.normaliser.modality

    def check_subset(self, subset: str) -> list[str]:
        """The parameter names of ``subset`` in this branch; a clear error when it has none."""
        try:
            names = select_parameters(self.model, subset)
        except ValueError as err:
            raise ValueError(f"{self.checkpoint}: {err}") from err
        if not names:
            raise ValueError(f"{self.checkpoint}: parameter subset {subset!r} selects no parameters")
        return names


def _check_expected(path: Path, config: dict[str, Any], variant: str | None, bands: str | None) -> None:
    """The checkpoint's recorded architecture against the run it should belong to."""
    problems = []
    if variant is not None:
        if variant not in VARIANTS:
            raise ValueError(f"unknown pretraining variant {variant!r}; expected one of {sorted(VARIANTS)}")
        expected = VARIANTS[variant]
        if config["kind"] != expected["kind"]:
            problems.append(f"model kind {config['kind']!r}, variant {variant} trains {expected['kind']!r}")
        if bool(config["sample_selection"]) != bool(expected["sample_selection"]):
            problems.append(
                f"sample selection {'on' if config['sample_selection'] else 'off'}, variant {variant} trains "
                f"with it {'on' if expected['sample_selection'] else 'off'}"
            )
        elif expected["kind"] == "single" and config["modality"] != expected["modality"]:
            problems.append(f"a single-modal {config['modality']} U-Net, variant {variant} is {expected['modality']}")
    if bands is not None and int(config["in_channels_s2"]) != s2_channels(bands):
        problems.append(f"{config['in_channels_s2']} S2 bands, band set {bands} has {s2_channels(bands)}")
    if problems:
        run = "_".join(x for x in (variant, bands) if x)
        raise ValueError(f"{path} does not hold the network of run {run}: " + "; ".join(problems))


def load_pretrained_segmenter(
    checkpoint: PathLike,
    modality: str = "s2",
    variant: str | None = None,
    bands: str | None = None,
    device: str = "cpu",
) -> PretrainedSegmenter:
    """The ``modality`` branch of the CromSS checkpoint at ``checkpoint``, in eval mode.

    A single-modal run is audited on its own modality whatever ``modality`` says.  ``variant`` and
    ``bands`` (e.g. ``"cromss_midF"``, ``"b9"``), when given, must match what the checkpoint
    records; the weights must fit the recorded architecture exactly.  Failures name the file.
    """
    path = Path(checkpoint)
    payload = read_pretrain_checkpoint(path)
    config = payload["config"]
    _check_expected(path, config, variant, bands)
    kind = config["kind"]
    if kind == "single":
        if modality != config["modality"]:
            log.info("%s: single-modal %s U-Net, auditing its %s input", path, config["modality"], config["modality"])
        modality = config["modality"]
    in_channels_s2 = int(config["in_channels_s2"])
    bands_used = None if modality == "s1" else s2_band_indices(in_channels_s2)
    branch = branch_of_payload(payload, modality, str(path)).to(resolve_device(device)).eval()
    epoch = payload.get("epoch")
    return PretrainedSegmenter(
        model=branch,
        normaliser=CromssInput(modality, bands_used),
        classes=int(config["classes"]),
        checkpoint=str(path),
        kind=kind,
        encoder_name=config["encoder_name"],
        epoch=None if epoch is None else int(epoch),
        val_fraction=float(config["val_fraction"]),
        split_seed=int(config["split_seed"]),
    )


def pretraining_splits(dataset_root: PathLike, val_fraction: float, split_seed: int) -> dict[str, str]:
    """``{location id: "train" | "validation"}``: the trainer's seeded split over the locations of
    the pretraining dataset (``split_train_val`` over the ``TileReader``'s location order, cromss spec §5)."""
    with TileReader(DatasetIndex.open(Path(dataset_root))) as reader:
        locations = reader.locations
    _, validation = split_train_val(list(range(len(locations))), val_fraction, split_seed)
    held = {locations[i] for i in validation.indices}
    return {location: "validation" if location in held else "train" for location in locations}


def audit_pretrained(
    segmenter: PretrainedSegmenter,
    dataset_root: PathLike,
    heldout_root: PathLike,
    density_dir: PathLike,
    tables: dict[str, PathLike],
    figures: dict[str, PathLike],
    settings: AuditSettings,
    run: str,
    heldout_split: str | None = None,
) -> pd.DataFrame:
    """The density audit of spec §5.a over one CromSS branch; returns the summary table.

    ``dataset_root`` must be the dataset the run pretrained on (its ``label`` layer holds the training
    labels).  Pass 1 and the training-sample measures (A3, flags) cover the locations the network
    trained on: the pretraining's validation locations are left out and only scored; the per-tile
    table says which split each tile was in (``pretrain_split``).
    """
    segmenter.check_subset(settings.subset)
    divisor = segmenter.model.divisor
    if settings.context % divisor:
        raise ValueError(
            f"audit context {settings.context} px is not a multiple of {divisor}, the output stride of "
            f"the {segmenter.encoder_name} encoder of {segmenter.checkpoint}"
        )
    splits = pretraining_splits(dataset_root, segmenter.val_fraction, segmenter.split_seed)
    summary = run_density_audit(
        segmenter,
        dataset_root, heldout_root, density_dir, tables, figures, settings,
        modality=segmenter.modality, heldout_split=heldout_split,
        exclude_ids=[location for location, split in splits.items() if split == "validation"],
    )
    tiles = pd.read_csv(tables["tiles"], dtype={"id": str})
    dataset_name = DatasetIndex.open(Path(dataset_root)).meta.name
    tiles["pretrain_split"] = np.where(tiles["dataset"] == dataset_name, tiles["id"].map(splits), "heldout")
    unknown = tiles.loc[tiles["pretrain_split"].isna(), "id"].unique()
    if len(unknown):
        raise ValueError(f"{dataset_root}: locations {list(unknown)} are not among the pretraining's locations")
    with atomic_path(tables["tiles"]) as tmp:
        tiles.to_csv(tmp, index=False)
    validation = sorted(location for location, split in splits.items() if split == "validation")
    extra = pd.DataFrame(
        [("pretraining-validation locations (left out of pass 1, scored only)", len(validation), "", "")],
        columns=["measure", "value", "target", "meets_target"],
    )
    for column in summary.columns.difference(extra.columns):  # data sets and sources, as in every row
        extra[column] = summary[column].iloc[0]
    summary = pd.concat([summary, extra], ignore_index=True)
    summary.insert(1, "network", f"{run} ({segmenter.modality.upper()} branch)")  # after `data`
    summary["checkpoint"] = segmenter.checkpoint
    notes = [
        f"Network: the {segmenter.modality.upper()} branch of the CromSS pretraining run {run} "
        f"({segmenter.kind}, {segmenter.encoder_name}, after {segmenter.epoch} epochs), inputs normalised as in "
        "its pretraining; training labels are the noisy labels it was pretrained on.",
        "A2: error of the network's prediction vs the truth on held-out tiles, by soft neighbour count "
        "N_S decile. A3: ranking of wrong training labels by 1 - label support, next to the 1 - "
        "p(noisy label) baseline, over the locations the network trained on (the pretraining's "
        "validation locations are left out of pass 1 and only scored). Targets are the spec's proposals; values are measured.",
    ]
    # the ``data`` column and banner of every result table (eolabels.report.tables), as the audit's own
    source = combined_source(
        {meta.name: meta.source for meta in (DatasetIndex.open(Path(r)).meta for r in (dataset_root, heldout_root))}
    )
    return write_table(
        summary, tables["summary_csv"], tables["summary_md"],
        f"Density audit of the pretrained network {run} (network input similarity, spec §5.a) — {source_tag(source)}",
        notes, source=source,
    )
