"""The LSR variants on a set of labelled tiles, each returning one fine-label map per tile.

* ``naive``: every pixel takes argmax p(ℓ|c) of its coarse class (the baseline);
* ``colour``: a diagonal colour GMM whose components play the positions (spec §8);
* ``self_epitomic``: each tile is its own epitome (spec §7);
* ``epitome``: one epitome trained over all tiles (the paper's all-tile setting, spec §3), coarse
  labels embedded (§5), EM (§6) and tiles reconstructed by sampling positions (§5).

Their settings are the dataclasses of :mod:`eolabels.epitome.settings`.
"""

from __future__ import annotations

import logging
from dataclasses import replace
from pathlib import Path
from typing import Sequence

import torch
from torch import Tensor

from eolabels.epitome.data import LabelledTile
from eolabels.epitome.lsr import colour_mixture_lsr, embed_coarse_dataset, lsr_em, naive_labels, self_epitomic_lsr
from eolabels.epitome.model import GaussianEpitome
from eolabels.epitome.reconstruct import reconstruct_tile
from eolabels.epitome.settings import (
    ColourSettings,
    EMSettings,
    EmbedSettings,
    EpitomeSettings,
    ReconstructSettings,
    SelfEpitomicSettings,
)
from eolabels.epitome.topk import DroppedMass
from eolabels.epitome.train import EpitomeTrainer, TrainHistory
from eolabels.epitome.transfer import LabelTransfer

log = logging.getLogger(__name__)


def predict_naive(tiles: Sequence[LabelledTile], transfer: LabelTransfer) -> list[Tensor]:
    """argmax p(ℓ|c) of each pixel's coarse class."""
    return [naive_labels(transfer.slots(tile.coarse, tile.name), transfer.table) for tile in tiles]


def predict_colour(
    tiles: Sequence[LabelledTile], transfer: LabelTransfer, settings: ColourSettings, seed: int
) -> list[Tensor]:
    """Colour LSR per tile (spec §8), or over all tiles at once when ``settings.pooled`` (the DFC2020
    colour model is fitted on the whole validation set, spec §9)."""
    slots = [transfer.slots(tile.coarse, tile.name) for tile in tiles]

    def run(image: Tensor, slot_map: Tensor) -> Tensor:
        return colour_mixture_lsr(
            image, slot_map, transfer.table, settings.components, seed, settings.soft, settings.fit_pixels
        ).argmax(-1)

    if not settings.pooled:
        return [run(tile.image, slot_map) for tile, slot_map in zip(tiles, slots)]
    # pixels side by side: the mixture only sees pixel values, so tiles may be concatenated
    flat_images = torch.cat([tile.image.flatten(1) for tile in tiles], dim=1)[:, None]
    flat_slots = torch.cat([slot_map.flatten() for slot_map in slots])[None]
    labels = run(flat_images, flat_slots)[0].split([tile.truth.numel() for tile in tiles])
    return [part.view(tile.truth.shape) for part, tile in zip(labels, tiles)]


def predict_self_epitomic(
    tiles: Sequence[LabelledTile], transfer: LabelTransfer, settings: SelfEpitomicSettings, em: EMSettings, seed: int
) -> list[Tensor]:
    """Self-epitomic LSR of every tile separately (spec §7); with top-K posteriors the exact mass they
    drop is logged per tile."""
    maps = []
    for tile in tiles:
        dropped: list[DroppedMass] = []
        maps.append(self_epitomic_lsr(
            tile.image, transfer.slots(tile.coarse, tile.name), transfer.table, settings.patch_size,
            settings.samples, settings.batch_size, settings.ivar, settings.temperature, em.iterations,
            torch.Generator().manual_seed(seed), weight_by_class_frequency=em.weight_by_class_frequency,
            restrict_to_present_classes=em.restrict_to_present_classes, topk=settings.topk(), dropped=dropped,
        ).argmax(-1))
        _log_dropped(f"self-epitomic LSR of tile {tile.name}", dropped)
    return maps


def _log_dropped(what: str, dropped: list[DroppedMass]) -> None:
    for report in dropped:
        log.info("%s: %s", what, report)


def train_all_tile_epitome(
    tiles: Sequence[LabelledTile],
    settings: EpitomeSettings,
    seed: int,
    device: torch.device | str = "cpu",
    checkpoint: str | Path | None = None,
    progress: bool = True,
) -> tuple[GaussianEpitome, TrainHistory]:
    """One epitome over all tiles (spec §3), resuming from ``checkpoint`` when it is an unfinished run
    with the same settings. A finished checkpoint is not reused: Snakemake only re-runs a finished job
    when something changed (e.g. the tiles), so the run starts over, exactly as a fresh one would.
    With ``layer_training="individual"`` the layers are trained one after the other (see
    :func:`train_layers_individually`)."""
    if settings.layer_training == "individual" and settings.layers > 1:
        return train_layers_individually(tiles, settings, seed, device, checkpoint, progress)
    images = [tile.image for tile in tiles]
    generator = torch.Generator().manual_seed(seed)
    epitome = GaussianEpitome.initialise(settings.layers, images[0].shape[0], settings.side, generator=generator)
    trainer = EpitomeTrainer(epitome.to(device), images, settings.train_config(seed))
    if checkpoint is not None and Path(checkpoint).is_file():
        try:
            trainer.load_checkpoint(checkpoint)
        except (ValueError, RuntimeError, KeyError) as err:
            log.warning("not resuming from %s (%s: %s); training from the start", checkpoint, type(err).__name__, err)
            trainer = None  # unreadable, or written with other settings or shapes
        if trainer is None or trainer.iteration >= settings.iterations:
            channels = images[0].shape[0]
            generator = torch.Generator().manual_seed(seed)  # same start as a fresh run
            epitome = GaussianEpitome.initialise(settings.layers, channels, settings.side, generator=generator)
            trainer = EpitomeTrainer(epitome.to(device), images, settings.train_config(seed))
    history = trainer.train(settings.iterations, checkpoint, settings.checkpoint_every, progress)
    return trainer.epitome, history


def layer_checkpoint(checkpoint: str | Path, layer: int) -> Path:
    """Where layer ``layer`` of an individually trained epitome keeps its checkpoint."""
    path = Path(checkpoint)
    return path.with_name(f"{path.stem}.layer{layer}{path.suffix}")


def checkpoint_files(checkpoint: str | Path, settings: EpitomeSettings) -> list[Path]:
    """Every checkpoint file a training with ``settings`` may leave beside ``checkpoint``."""
    if settings.layer_training == "individual" and settings.layers > 1:
        return [layer_checkpoint(checkpoint, layer) for layer in range(settings.layers)]
    return [Path(checkpoint)]


def _saved_iteration(path: Path | None) -> int | None:
    if path is None or not path.is_file():
        return None
    try:
        return int(torch.load(path, map_location="cpu", weights_only=False)["iteration"])
    except (OSError, RuntimeError, KeyError, EOFError) as err:
        log.warning("not resuming from %s (%s: %s)", path, type(err).__name__, err)
        return None


def train_layers_individually(
    tiles: Sequence[LabelledTile],
    settings: EpitomeSettings,
    seed: int,
    device: torch.device | str = "cpu",
    checkpoint: str | Path | None = None,
    progress: bool = True,
) -> tuple[GaussianEpitome, TrainHistory]:
    """The paper's multi-epitome setting (spec §4): layer l is a one-layer epitome trained alone with seed
    ``seed + l``; the L epitomes are then stacked as the components of one mixture (each keeps its own
    normalised position prior). The history is the layers' histories one after the other.

    Checkpoints: one per layer (:func:`layer_checkpoint`). After an interruption (some layer's checkpoint
    unfinished) the finished layers before it are reused and that layer resumes; when every layer's
    checkpoint is finished the job re-ran because something changed, so all layers start over.
    """
    single = replace(settings, layers=1, layer_training="joint")
    paths = [None if checkpoint is None else layer_checkpoint(checkpoint, layer) for layer in range(settings.layers)]
    saved = [_saved_iteration(path) for path in paths]
    interrupted = next((layer for layer, it in enumerate(saved) if it is not None and it < settings.iterations), None)
    layers, histories = [], []
    for layer, path in enumerate(paths):
        finished = None
        if interrupted is not None and layer < interrupted and saved[layer] == settings.iterations:
            finished = _load_finished_layer(tiles, single, seed + layer, path)
        epitome, history = finished or train_all_tile_epitome(tiles, single, seed + layer, device, path, progress)
        layers.append(epitome.to("cpu"))
        histories.append(history)
    stacked = GaussianEpitome(
        torch.cat([e.mean.detach() for e in layers]),
        torch.cat([e.ivar.detach() for e in layers]),
        torch.cat([e.prior_logits.detach() for e in layers]),
    ).to(device)
    merged = TrainHistory()
    for layer, history in enumerate(histories):
        merged.loss += history.loss
        merged.patch_size += history.patch_size
        merged.masked_fraction += history.masked_fraction
        merged.resets += [reset + layer * settings.iterations for reset in history.resets]
    return stacked, merged


def _load_finished_layer(
    tiles: Sequence[LabelledTile], single: EpitomeSettings, seed: int, path: Path
) -> tuple[GaussianEpitome, TrainHistory] | None:
    """A finished layer's epitome and history, or None if its checkpoint has other settings or shapes."""
    images = [tile.image for tile in tiles]
    epitome = GaussianEpitome.initialise(1, images[0].shape[0], single.side)
    trainer = EpitomeTrainer(epitome, images, single.train_config(seed))
    try:
        trainer.load_checkpoint(path)
    except (ValueError, RuntimeError, KeyError):
        return None
    return trainer.epitome, trainer.history


def embed_coarse(
    epitome: GaussianEpitome,
    tiles: Sequence[LabelledTile],
    transfer: LabelTransfer,
    settings: EmbedSettings,
    seed: int,
    dropped: list[DroppedMass] | None = None,
) -> Tensor:
    """lrmap K×L×H×W: posterior mass that patches of each coarse slot put on every position (spec §5);
    with top-K posteriors the exact mass they drop is logged (and appended to ``dropped``)."""
    reports: list[DroppedMass] = []
    lrmap = embed_coarse_dataset(
        epitome, [tile.image for tile in tiles], [transfer.slots(tile.coarse, tile.name) for tile in tiles],
        transfer.table.shape[0], settings.patch_size, settings.samples, settings.batch_size, settings.temperature,
        torch.Generator().manual_seed(seed), topk=settings.topk(), dropped=reports,
    )
    _log_dropped("coarse-label embedding", reports)
    if dropped is not None:
        dropped += reports
    return lrmap


def epitome_label_probs(lrmap: Tensor, transfer: LabelTransfer, em: EMSettings, seed: int) -> Tensor:
    """p(ℓ | s) on the epitome positions by EM (spec §6), Lc×L×H×W."""
    probs = lsr_em(
        lrmap, transfer.table, em.iterations, em.weight_by_class_frequency, em.restrict_to_present_classes,
        torch.Generator().manual_seed(seed),
    )
    return probs.permute(3, 0, 1, 2).contiguous()


def predict_epitome(
    epitome: GaussianEpitome,
    label_probs: Tensor,
    tiles: Sequence[LabelledTile],
    patch_size: int,
    settings: ReconstructSettings,
    seed: int,
    dropped: list[DroppedMass] | None = None,
) -> list[Tensor]:
    """Reconstruct every tile from sampled epitome positions (spec §5), argmax over classes; with
    top-K posteriors the exact mass they drop is logged per tile (and appended to ``dropped``)."""
    generator = torch.Generator().manual_seed(seed)
    maps = []
    for tile in tiles:
        reports: list[DroppedMass] = []
        maps.append(reconstruct_tile(
            epitome, tile.image.to(epitome.mean.device), label_probs.to(epitome.mean), patch_size,
            settings.stride, settings.samples, settings.temperature, generator, topk=settings.topk(), dropped=reports,
        ).argmax(0))
        _log_dropped(f"reconstruction of tile {tile.name}", reports)
        if dropped is not None:
            dropped += reports
    return maps
