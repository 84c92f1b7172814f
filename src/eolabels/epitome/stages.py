"""One function per workflow rule of rules/epitome.smk: read the inputs, call the math, write outputs.

Each takes keyword arguments only: paths, and the config's validated ``epitome.<dataset>``
subsections, from which it builds its settings (:mod:`eolabels.epitome.settings`) with
:func:`eolabels.settings.from_section`, so that it runs without Snakemake.  A rule that writes
several files gets them as one small frozen dataclass of paths, named as the rule's outputs.
Datasets are read through their index (:mod:`eolabels.epitome.data`); tensors between rules are
``torch.save`` files written atomically; every reported output names its data source, and an
oracle p(ℓ|c) table is named as such in every table and figure.
"""

from __future__ import annotations

import logging
import os
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, Mapping, Sequence

import pandas as pd
import torch

from eolabels.atomic import atomic_path
from eolabels.data.index import DatasetIndex
from eolabels.epitome.data import LabelledTile, lsr_layers, read_predictions, read_tiles, write_predictions
from eolabels.epitome.dfc import DistilledFCN, ensemble_colour_epitome, standardise_bands, train_distilled_fcn
from eolabels.epitome.evaluate import POOLED, score_variants
from eolabels.epitome.figures import (
    plot_epitome_means,
    plot_losses,
    plot_lsr_comparison,
    plot_posterior_usage,
    plot_promotion,
    posterior_usage,
)
from eolabels.epitome.model import GaussianEpitome
from eolabels.epitome.patches import crop, sample_origins
from eolabels.epitome.train import TrainHistory, patch_temperature
from eolabels.epitome.transfer import LabelTransfer, igbp_soft_table, oracle_table, table_from_file
from eolabels.epitome.settings import (
    ColourSettings,
    DistillSettings,
    EMSettings,
    EmbedSettings,
    EpitomeSettings,
    ReconstructSettings,
    SelfEpitomicSettings,
)
from eolabels.epitome.variants import (
    checkpoint_files,
    embed_coarse,
    epitome_label_probs,
    predict_colour,
    predict_epitome,
    predict_naive,
    predict_self_epitomic,
    train_all_tile_epitome,
)
from eolabels.report.figures import save_figure
from eolabels.report.tables import source_tag, write_table
from eolabels.settings import from_section
from eolabels.tables import load_schema
from eolabels.device import resolve_device

log = logging.getLogger(__name__)

def load_tiles(root: str | os.PathLike[str], reading: Mapping[str, Any]) -> list[LabelledTile]:
    """The tiles LSR works on: ``reading`` holds image_scale and optionally bands and split."""
    return read_tiles(root, reading["image_scale"], reading.get("bands"), reading.get("split"))


def _reference_schema(root: str | os.PathLike[str]) -> str:
    """Class schema of the high-resolution layer LSR is scored against (DFC2020: its 8-class labels)."""
    meta = DatasetIndex.open(root).meta
    return meta.layers[lsr_layers(meta).truth].schema


def load_transfer(
    root: str | os.PathLike[str], table: Mapping[str, Any], tiles: Sequence[LabelledTile]
) -> LabelTransfer:
    """p(ℓ|c) as configured (``kind``: file / soft_igbp / oracle), with a zero row for coarse no-data."""
    meta = DatasetIndex.open(root).meta
    layers = lsr_layers(meta)
    coarse, fine_schema = meta.layers[layers.coarse], meta.layers[layers.truth].schema
    if table["kind"] == "file":
        transfer = table_from_file(table["name"], fine_schema)
    elif table["kind"] == "soft_igbp":
        transfer = igbp_soft_table(table["confidence"], table["unscored_splits"])
    else:
        codes = load_schema(coarse.schema).ids
        transfer = oracle_table([t.coarse for t in tiles], [t.truth for t in tiles], codes, fine_schema)
    if transfer.fine_schema != fine_schema:
        raise ValueError(
            f"{root}: the p(l|c) table ({transfer.label}) gives {transfer.fine_schema!r} classes, "
            f"the truth is {fine_schema!r}"
        )
    return transfer.with_nodata(None if coarse.nodata is None else int(coarse.nodata))


@dataclass(frozen=True)
class EpitomeOutputs:
    """Files rule train_epitome writes: the epitome, its training history and four figures."""

    epitome: str
    history: str
    means: str
    usage: str
    promotion: str
    loss: str


@dataclass(frozen=True)
class DistillOutputs:
    """Files rule dfc2020_distill writes: the prediction index (with its dataset.json), the model and
    its loss curve."""

    index: str
    model: str
    loss: str


@dataclass(frozen=True)
class TableOutputs:
    """Files rules evaluate_lsr / dfc2020_evaluate write: the table as CSV and Markdown, the figure."""

    table: str
    markdown: str
    figure: str


def _save(obj: Any, path: str | os.PathLike[str]) -> None:
    with atomic_path(path) as tmp:
        torch.save(obj, tmp)


def _load_epitome(path: str | os.PathLike[str]) -> GaussianEpitome:
    state = torch.load(Path(path), map_location="cpu", weights_only=False)["epitome"]
    return GaussianEpitome(state["mean"], state["ivar"], state["prior_logits"])


def train_epitome(
    *, dataset: str, root: str, reading: Mapping[str, Any], settings: Mapping[str, Any], seed: int, device: str,
    threads: int, outputs: EpitomeOutputs,
) -> None:
    """Rule train_epitome: one epitome over all tiles (spec §3) and the training figures.

    ``checkpoint.pt`` beside the epitome lets an interrupted job resume; it is removed once the
    epitome is written, so a later run with other data never resumes from it.
    """
    torch.set_num_threads(threads)
    tiles = load_tiles(root, reading)
    config = from_section(EpitomeSettings, settings)
    checkpoint = Path(outputs.epitome).with_name("checkpoint.pt")
    log.info("training a %s epitome on %d %s tiles (%s)", config.side, len(tiles), dataset, config)
    epitome, history = train_all_tile_epitome(tiles, config, seed, resolve_device(device), checkpoint)
    epitome = epitome.cpu()
    _save({"epitome": epitome.state_dict(), "settings": asdict(config), "history": asdict(history)}, outputs.epitome)
    for path in checkpoint_files(checkpoint, config):
        path.unlink(missing_ok=True)
    write_history_csv(history, outputs.history)
    tag = source_tag(DatasetIndex.open(root).meta.source)
    save_figure(_titled(plot_epitome_means(epitome), f"{dataset} epitome means\n{tag}"), outputs.means)
    size = min(config.patch_sizes)
    generator = torch.Generator().manual_seed(seed)
    origins = sample_origins([tuple(t.image.shape[-2:]) for t in tiles], size, 512, generator)
    usage = posterior_usage(epitome, crop([t.image for t in tiles], origins), patch_temperature(size))
    usage_title = f"{dataset}: posterior usage, {size}×{size} patches\n{tag}"
    save_figure(_titled(plot_posterior_usage(usage), usage_title), outputs.usage)
    save_figure(_titled(plot_promotion(history), f"{dataset}: location promotion — {tag}"), outputs.promotion)
    save_figure(plot_losses(history.loss, f"{dataset} epitome training loss — {tag}"), outputs.loss)


def _titled(fig: Any, title: str) -> Any:
    fig.suptitle(title, fontsize=9)
    return fig


def embed_labels(
    *, dataset: str, root: str, reading: Mapping[str, Any], table: Mapping[str, Any], settings: Mapping[str, Any],
    seed: int, threads: int, in_epitome: str, out_lrmap: str,
) -> None:
    """Rule embed_labels: coarse labels of sampled patches into the epitome (spec §5)."""
    torch.set_num_threads(threads)
    tiles = load_tiles(root, reading)
    transfer = load_transfer(root, table, tiles)
    log.info("embedding coarse labels of %d tiles with p(l|c) %s", len(tiles), transfer.label)
    embed = from_section(EmbedSettings, settings)
    lrmap = embed_coarse(_load_epitome(in_epitome), tiles, transfer, embed, seed)
    _save({"lrmap": lrmap, "transfer": asdict(transfer)}, out_lrmap)


def lsr(*, in_lrmap: str, em: Mapping[str, Any], seed: int, threads: int, out_probs: str) -> None:
    """Rule lsr: p(ℓ|s) on the epitome positions by the EM of spec §6."""
    torch.set_num_threads(threads)
    state = torch.load(Path(in_lrmap), map_location="cpu", weights_only=False)
    transfer = LabelTransfer(**state["transfer"])
    probs = epitome_label_probs(state["lrmap"], transfer, from_section(EMSettings, em), seed)
    _save({"label_probs": probs, "transfer": state["transfer"]}, out_probs)


def predict_hr(
    *, dataset: str, variant: str, root: str, reading: Mapping[str, Any], table: Mapping[str, Any],
    settings: Mapping[str, Any], seed: int, threads: int, out_index: str,
    in_epitome: str | None = None, in_probs: str | None = None,
) -> None:
    """Rule predict_hr: one variant's high-res maps of every tile, written as GeoTIFFs on the input grids.

    ``settings`` holds the variant's subsections: ``colour``; ``self_epitomic`` + ``em``; or
    (``epitome``) ``reconstruct`` + ``patch_size`` of the embedding.
    """
    torch.set_num_threads(threads)
    tiles = load_tiles(root, reading)
    transfer = load_transfer(root, table, tiles)
    log.info("%s LSR of %d %s tiles, p(l|c) %s, settings %s", variant, len(tiles), dataset, transfer.label, settings)
    if variant == "naive":
        maps = predict_naive(tiles, transfer)
    elif variant == "colour":
        maps = predict_colour(tiles, transfer, from_section(ColourSettings, settings["colour"]), seed)
    elif variant == "self_epitomic":
        self_epitomic = from_section(SelfEpitomicSettings, settings["self_epitomic"])
        maps = predict_self_epitomic(tiles, transfer, self_epitomic, from_section(EMSettings, settings["em"]), seed)
    elif variant == "epitome":
        if in_epitome is None or in_probs is None:
            raise ValueError("the epitome variant needs the trained epitome and its p(l|s)")
        probs = torch.load(Path(in_probs), map_location="cpu", weights_only=False)["label_probs"]
        maps = predict_epitome(
            _load_epitome(in_epitome), probs, tiles, settings["patch_size"],
            from_section(ReconstructSettings, settings["reconstruct"]), seed,
        )
    else:
        raise ValueError(f"unknown LSR variant {variant!r}")
    source = DatasetIndex.open(root).meta.source
    write_predictions(
        Path(out_index).parent, tiles, maps, transfer.fine_schema,
        f"{variant} LSR of {dataset} ({source_tag(source)}); p(l|c): {transfer.label}", source,
    )


def dfc2020_ensemble(
    *, root: str, reading: Mapping[str, Any], colour_classes: Sequence[str], in_colour: str, in_epitome: str,
    out_index: str,
) -> None:
    """Rule dfc2020_ensemble (spec §9, interpretation): the colour model's label where it predicts one of
    ``colour_classes`` (shrubland, barren), the epitome model's elsewhere."""
    tiles = load_tiles(root, reading)
    schema = load_schema(_reference_schema(root))
    positions = [schema.names.index(name) for name in colour_classes]
    colour, epitome = read_predictions(Path(in_colour).parent, tiles), read_predictions(Path(in_epitome).parent, tiles)
    maps = [ensemble_colour_epitome(c, e, positions) for c, e in zip(colour, epitome)]
    meta = DatasetIndex.open(Path(in_epitome).parent).meta
    write_predictions(
        Path(out_index).parent, tiles, maps, schema.name,
        f"colour for {list(colour_classes)}, epitome elsewhere; {meta.description}", meta.source,
    )


def dfc2020_distill(
    *, root: str, reading: Mapping[str, Any], settings: Mapping[str, Any], seed: int, device: str, threads: int,
    in_ensemble: str, outputs: DistillOutputs,
) -> None:
    """Rule dfc2020_distill: the 5-layer FCN of spec §9 trained on the ensemble's hard labels, then
    applied to the same images."""
    torch.set_num_threads(threads)
    distill = from_section(DistillSettings, settings)
    torch.manual_seed(seed)  # weight initialisation
    tiles = load_tiles(root, reading)
    shapes = {tuple(t.image.shape) for t in tiles}
    if len(shapes) != 1:
        raise ValueError(f"{root}: the distilled FCN needs equally sized patches, got {sorted(shapes)}")
    schema = load_schema(_reference_schema(root))
    target = torch.stack(read_predictions(Path(in_ensemble).parent, tiles))
    images = standardise_bands(torch.stack([t.image for t in tiles]))
    run_on = resolve_device(device)
    model = DistilledFCN(images.shape[1], schema.num_classes, distill.width).to(run_on)
    losses = train_distilled_fcn(
        model, images.to(run_on), target.to(run_on), distill.epochs, distill.batch_size, distill.learning_rate,
        seed=seed,
    )
    model.eval()
    with torch.no_grad():
        maps = [model(image[None].to(run_on))[0].argmax(0).cpu() for image in images]
    _save({"model": model.cpu().state_dict(), "settings": asdict(distill), "losses": losses}, outputs.model)
    meta = DatasetIndex.open(Path(in_ensemble).parent).meta
    description = f"distilled FCN of: {meta.description}"
    write_predictions(Path(outputs.index).parent, tiles, maps, schema.name, description, meta.source)
    loss_title = f"distilled FCN (DFC2020, {source_tag(meta.source)})"
    save_figure(plot_losses(losses, loss_title, "cross-entropy"), outputs.loss)


def evaluate_lsr(
    *, dataset: str, root: str, reading: Mapping[str, Any], table: Mapping[str, Any],
    predictions: Mapping[str, str], per_tile: bool, preview_tiles: int, title: str, outputs: TableOutputs,
) -> pd.DataFrame:
    """Rules evaluate_lsr / dfc2020_evaluate: score every variant's maps against the truth (per tile when
    ``per_tile``, and pooled), write the table and the side-by-side figure.

    ``predictions`` maps the row name of each variant to its prediction index.
    """
    tiles = load_tiles(root, reading)
    transfer = load_transfer(root, table, tiles)
    meta = DatasetIndex.open(root).meta
    layers = lsr_layers(meta)
    fine, coarse = load_schema(meta.layers[layers.truth].schema), load_schema(meta.layers[layers.coarse].schema)
    maps = {name: read_predictions(Path(index).parent, tiles) for name, index in predictions.items()}
    oracle = " [ORACLE p(l|c)]" if transfer.oracle else ""
    maps = {f"{name}{oracle}": value for name, value in maps.items()}  # every row uses the table
    scores = score_variants(tiles, maps, fine.names, per_tile)
    full_title = f"{title} — {source_tag(meta.source)}"
    notes = [
        f"Data: {meta.description}.",
        f"p(l|c): {transfer.label}.",
        "mIoU averages over all classes (absent ones score 1); mIoU_present over classes present in the truth.",
    ]
    scores = write_table(
        scores, outputs.table, outputs.markdown, full_title, notes, source=meta.source, float_format="%.4f"
    )
    log.info("%s:\n%s", full_title, scores[scores.tile == POOLED].to_string(index=False))
    rgb = _rgb_channels(meta.layers[layers.image].bands, reading.get("bands"))
    fig = plot_lsr_comparison(tiles[:preview_tiles], {k: v[:preview_tiles] for k, v in maps.items()}, coarse, fine, rgb,
                              f"{full_title}\np(l|c): {transfer.label}")
    save_figure(fig, outputs.figure, dpi=90)
    return scores


def _rgb_channels(layer_bands: Sequence[str], picked: Sequence[str] | None) -> list[int]:
    """Positions of the red, green and blue bands among the bands read (NAIP R,G,B or S2 B4,B3,B2)."""
    bands = list(picked or layer_bands)
    for names in (("R", "G", "B"), ("B4", "B3", "B2")):
        if all(n in bands for n in names):
            return [bands.index(n) for n in names]
    return [0, 0, 0]


def write_history_csv(history: TrainHistory, path: str) -> None:
    """Per-iteration loss, patch size, masked fraction and whether the promotion counter reset."""
    resets = set(history.resets)
    table = pd.DataFrame({
        "iteration": range(1, len(history.loss) + 1), "loss": history.loss, "patch_size": history.patch_size,
        "masked_fraction": history.masked_fraction,
    })
    table["reset"] = table["iteration"].isin(resets)
    with atomic_path(path) as tmp:
        table.to_csv(tmp, index=False)
