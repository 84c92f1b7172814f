"""Entry points of rules/finetune.smk: keyword arguments in, files out (the scripts only unpack
``snakemake``).  The analysis figures rebuild each shown row's model exactly as its first fine-tuning
run started (same seed, same encoder source), so "before" means the weights training began from."""

from __future__ import annotations

import logging
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np
import torch

from eolabels.cromss.normalization import s2_band_indices
from eolabels.cromss.pretraining import s2_channels
from eolabels.data.index import DatasetIndex
from eolabels.finetune.analysis import bn_gaussian_kl, group_layers, stage_explained_variance, weight_kl
from eolabels.finetune.data import FinetuneDataset
from eolabels.finetune.encoders import EncoderSource, load_source
from eolabels.finetune.figures import plot_explained_variance, plot_layer_kl, plot_segmentation_maps, rgb_composite
from eolabels.finetune.report import source_label
from eolabels.finetune.rows import finetune_config, parse_input
from eolabels.finetune.tasks import task
from eolabels.finetune.trainer import build_model, predict
from eolabels.report.figures import save_figure
from eolabels.tables import load_schema
from eolabels.training import seed_everything

log = logging.getLogger(__name__)
PathLike = str | Path


def _test_images(dataset_dir: PathLike, task_name: str, ft_input: str, samples: int) -> tuple[Any, list[int]]:
    modality, bands = parse_input(ft_input)
    indices = s2_band_indices(s2_channels(bands)) if bands else None
    t = task(task_name)
    dataset = FinetuneDataset(dataset_dir, t, t.test_split, modality, indices)
    return dataset, list(range(min(samples, len(dataset))))


def _initial_model(task_name: str, ft_input: str, settings: Mapping[str, Any], encoder_name: str, seed: int,
                   source: EncoderSource) -> torch.nn.Module:
    """The first fine-tuned run's model as it began: seeded like the trainer, encoder source loaded."""
    config = finetune_config(task_name, ft_input, "finetuned", 0, settings, encoder_name, seed)
    seed_everything(config.seed)
    model = build_model(config)
    load_source(model.encoder, source, config.modality)
    return model


def plot_maps(*, dataset_dir: PathLike, task_name: str, ft_input: str, rows: Mapping[str, tuple[EncoderSource, PathLike]],
              settings: Mapping[str, Any], encoder_name: str, seed: int, samples: int, out_png: PathLike) -> None:
    """Figs. 6–7: image, ground truth and each shown row's fine-tuned prediction on test tiles."""
    dataset, items = _test_images(dataset_dir, task_name, ft_input, samples)
    rgb = FinetuneDataset(dataset_dir, task(task_name), task(task_name).test_split, "s2", s2_band_indices(3))
    images = [rgb_composite(rgb.decode(i)[0], (0, 1, 2)) for i in items]
    truths = [dataset.decode(i)[1] for i in items]
    predictions: dict[str, list[np.ndarray]] = {}
    for name, (source, weights) in rows.items():
        model = _initial_model(task_name, ft_input, settings, encoder_name, seed, source)
        model.load_state_dict(torch.load(weights, map_location="cpu", weights_only=True))
        model.eval()
        with torch.no_grad():
            predictions[source_label(name)] = [
                predict(model, torch.from_numpy(dataset.decode(i)[0])[None])[0].numpy() for i in items]
    schema = load_schema(task(task_name).schema)  # the tasks' schemas number their classes 0..C-1
    data = DatasetIndex.open(dataset_dir).meta.source
    fig = plot_segmentation_maps(images, truths, predictions, schema, data,
                                 title=f"{task(task_name).title}: fine-tuned predictions ({ft_input})",
                                 sample_names=[dataset.sample_id(i) for i in items])
    save_figure(fig, out_png)


def plot_kl(*, dataset_dir: PathLike, task_name: str, ft_input: str, rows: Mapping[str, tuple[EncoderSource, PathLike]],
            settings: Mapping[str, Any], encoder_name: str, seed: int, weights_png: PathLike, bn_png: PathLike) -> None:
    """Fig. 12 (histogram KL of each layer's weights, before vs after fine-tuning) and Fig. 8 c,d
    (Gaussian KL of each BN layer's statistics), encoder and decoder panels, one line per row."""
    weight_curves, bn_curves = {}, {}
    for name, (source, weights) in rows.items():
        before = _initial_model(task_name, ft_input, settings, encoder_name, seed, source)
        after = torch.load(weights, map_location="cpu", weights_only=True)
        weight_curves[source_label(name)] = group_layers(weight_kl(before, after, min_ndim=2))
        bn_curves[source_label(name)] = group_layers(bn_gaussian_kl(before, after))
    data = DatasetIndex.open(dataset_dir).meta.source
    title = f"{task(task_name).title} ({ft_input})"
    save_figure(plot_layer_kl(weight_curves, data, f"Fig. 12: weight KL before vs after fine-tuning, {title}"),
                weights_png)
    save_figure(plot_layer_kl(bn_curves, data, f"Fig. 8 c,d: BN statistics KL, start vs fine-tuned, {title}",
                              log_y=True), bn_png)


def plot_pca(*, dataset_dir: PathLike, task_name: str, ft_input: str, sources: Mapping[str, EncoderSource],
             settings: Mapping[str, Any], encoder_name: str, seed: int, samples: int, out_png: PathLike) -> None:
    """Fig. 13: cumulative explained variance of PCA on each encoder stage's features of test tiles,
    one line per encoder source (before fine-tuning)."""
    dataset, items = _test_images(dataset_dir, task_name, ft_input, samples)
    images = torch.from_numpy(np.stack([dataset.decode(i)[0] for i in items]))
    curves = {}
    for name, source in sources.items():
        model = _initial_model(task_name, ft_input, settings, encoder_name, seed, source)
        curves[source_label(name)] = stage_explained_variance(model.encoder, images, max_components=32,
                                                              max_pixels=20_000, seed=seed)
    data = DatasetIndex.open(dataset_dir).meta.source
    save_figure(plot_explained_variance(curves, data, title=f"Fig. 13: PCA of encoder features, "
                                        f"{task(task_name).title} ({ft_input})"), out_png)
