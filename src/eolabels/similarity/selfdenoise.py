"""The self-denoising stage (spec netsimilarity.md §5.b) on a noisy-label dataset directory.

``D_0`` = the dataset's noisy labels.  Each round trains a fresh ``SmallUNet`` on ``D_r`` (seed
offset per round), predicts every training tile and writes ``D_{r+1}`` (``denoise.self_denoise``:
confidence gate, optional density gate and cross-fitting, early stop).  Per round: a label dataset
directory, accuracy against the hidden truth, changed fraction, class histogram, the mIoU on
held-out true labels of the model trained on that round's labels, and on a fixed anchor sample the
denoising factor, ``n_eff`` and the stationarity residual (§3.3-3.4).  The last round's labels are
exported as a complete dataset (every layer of the source, ``dw`` replaced) for CromSS pretraining.
"""

from __future__ import annotations

import logging
import os
import shutil
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import pandas as pd
import torch
from torch import Tensor

from eolabels.atomic import atomic_path
from eolabels.data.geotiff import write_geotiff
from eolabels.data.index import DatasetMeta, grid_columns, write_index
from eolabels.data.writer import class_colormap
from eolabels.metrics import confusion_matrix, metrics_from_confusion
from eolabels.similarity.audit import tile_samples
from eolabels.similarity.density import accumulate_reference, grid_centres, score_patches
from eolabels.similarity.denoise import (
    centred_one_hot,
    collapsed_classes,
    denoising_factor,
    self_denoise,
    stationarity_residual,
)
from eolabels.similarity.jacobian import JacobianConfig, centring_basis, per_sample_jacobians
from eolabels.report.tables import source_tag, write_table
from eolabels.similarity.report import tile_sets_source
from eolabels.similarity.segmentation import (
    BandNormaliser,
    Segmenter,
    TrainSettings,
    evaluate_segmenter,
    predict_probabilities,
    train_segmenter,
)
from eolabels.similarity.selfdenoise_figures import plot_rounds
from eolabels.similarity.tiles import TileSet, load_tiles
from eolabels.tables import load_schema

log = logging.getLogger(__name__)
UNLABELLED = 255


@dataclass(frozen=True)
class DenoiseSettings:
    """Round options of spec §5.b and the diagnostics' anchor sample."""

    rounds: int = 3
    confidence: float = 0.0
    density_gate: bool = False
    cross_fit_folds: int = 1
    min_changed_fraction: float = 0.005
    subset: str = "last_block+head"
    stride: int = 16
    context: int = 32
    anchor_samples: int = 256
    anchor_sketch_dim: int | None = 1024


def label_accuracy(truth: np.ndarray, labels: np.ndarray, classes: int) -> float:
    """Pixel accuracy of ``labels`` against ``truth`` over labelled pixels (``eolabels.metrics``).

    Unlabelled label pixels count as wrong; the truth has no unlabelled pixels in the synthetic
    world.
    """
    labelled = labels != UNLABELLED
    matrix = confusion_matrix(truth[labelled], labels[labelled], classes)
    return metrics_from_confusion(matrix)["OA"] * labelled.mean()


def gate_from_grid(soft: Tensor, height: int, width: int, stride: int) -> Tensor:
    """Per-pixel density from a stride-s grid of ``N_S`` (each grid cell's value on its pixels)."""
    rows, cols = grid_centres(height, width, stride)
    grid = soft.reshape(len(rows), len(cols))
    full = grid.repeat_interleave(stride, 0).repeat_interleave(stride, 1)
    pad_rows, pad_cols = max(0, height - full.shape[0]), max(0, width - full.shape[1])
    full = torch.nn.functional.pad(full[None, None], (0, pad_cols, 0, pad_rows), mode="replicate")[0, 0]
    return full[:height, :width]


def _density_per_pixel(segmenter: Segmenter, images: Tensor, settings: DenoiseSettings) -> Tensor:
    """``N_S`` of every pixel (grid value of its cell), reference set = the given tiles (§5.b)."""
    config = JacobianConfig(subset=settings.subset, pixel="centre", centred=True)
    x = segmenter.normaliser(images.numpy())
    grids = [tile_samples(image, settings.stride, settings.context)[0] for image in x]
    accumulator = None
    for patches in grids:
        accumulator = accumulate_reference(segmenter.model, patches, config, accumulator=accumulator)
    maps = []
    for patches in grids:
        soft, _ = score_patches(accumulator, segmenter.model, patches, config)
        maps.append(gate_from_grid(soft.cpu(), x.shape[2], x.shape[3], settings.stride))
    return torch.stack(maps)


def anchor_patches(
    images: Tensor, labels: np.ndarray, settings: DenoiseSettings, seed: int
) -> tuple[Tensor, np.ndarray]:
    """A fixed sample of labelled grid centres (context windows) and their positions (tile, row, col)."""
    rows, cols = grid_centres(images.shape[2], images.shape[3], settings.stride)
    positions = np.array([(t, r, c) for t in range(images.shape[0]) for r in rows for c in cols])
    positions = positions[labels[positions[:, 0], positions[:, 1], positions[:, 2]] != UNLABELLED]
    rng = np.random.default_rng(seed)
    chosen = np.sort(rng.choice(len(positions), min(settings.anchor_samples, len(positions)), replace=False))
    positions = positions[chosen]
    half = settings.context // 2
    padded = torch.nn.functional.pad(images, (half, half, half, half), mode="reflect")
    patches = torch.stack([padded[t, :, r : r + settings.context, c : c + settings.context] for t, r, c in positions])
    return patches, positions


def round_diagnostics(
    segmenter: Segmenter, patches: Tensor, labels: np.ndarray, settings: DenoiseSettings, sketch_seed: int = 0
) -> dict[str, float]:
    """Denoising factor ``rho`` (median), ``n_eff = 1/rho^2`` at the median and the stationarity
    residual ``|E_k[p^] - E_k[y~]| / |E_k[y~]|`` on the anchor sample (spec §3.3, §3.4), with the
    unnormalised centred-logit kernel (sketched from ``sketch_seed`` when ``anchor_sketch_dim`` is
    set)."""
    config = JacobianConfig(
        subset=settings.subset, pixel="centre", centred=True, sketch_dim=settings.anchor_sketch_dim,
        sketch_seed=sketch_seed,
    )
    jac = per_sample_jacobians(segmenter.model, patches, config, progress=False).double().cpu()
    device = next(segmenter.model.parameters()).device
    with torch.no_grad():
        logits = segmenter.model(patches.to(device)).cpu()
    centre = logits[:, :, logits.shape[2] // 2, logits.shape[3] // 2]
    probabilities = torch.softmax(centre.double(), dim=1)
    basis = centring_basis(segmenter.classes)
    rho = denoising_factor(jac)
    median_rho = float(rho.median())
    return {
        "median_rho": median_rho,
        "n_eff": 1.0 / median_rho**2,
        "stationarity_residual": stationarity_residual(
            jac, probabilities @ basis, centred_one_hot(torch.as_tensor(labels), segmenter.classes)
        ),
    }


def write_label_dataset(
    source: TileSet, labels: np.ndarray, root: Path, name: str, description: str, extra: dict,
    copy_layers: tuple[str, ...] = (),
) -> Path:
    """A dataset directory with ``labels`` as the source's ``label`` layer on the source's grids, and
    copies of ``copy_layers`` of the source (so the directory stands alone)."""
    meta = source.index.meta
    label_layer = source.layer_names["label"]
    layers = {k: v for k, v in meta.layers.items() if k in copy_layers or k == label_layer}
    schema = load_schema(meta.layers[label_layer].schema or "")
    colormap = class_colormap(schema)
    rows = []
    for t, (_, row) in enumerate(source.table.iterrows()):
        grid = source.index.grid(row)
        entry: dict[str, object] = {
            "id": row["id"], "split": row["split"], "season": row["season"], **grid_columns(grid)
        }
        for layer in layers:
            rel = Path(str(row[layer]))
            if layer == label_layer:
                write_geotiff(
                    root / rel, labels[t].astype(np.uint8), grid, meta.layers[layer].bands,
                    nodata=meta.layers[layer].nodata, colormap=colormap,
                )
            elif str(row[layer]):
                (root / rel).parent.mkdir(parents=True, exist_ok=True)
                shutil.copy2(source.index.path(row, layer), root / rel)
            entry[layer] = rel.as_posix() if str(row[layer]) else ""
        rows.append(entry)
    quality = [
        q for q in meta.extra.get("label_quality", []) if q.get("label") in layers and q.get("reference") in layers
    ]
    new_meta = DatasetMeta(
        name=name, source=meta.source, layers=layers, seasons=meta.seasons, description=description,
        extra={**{k: v for k, v in meta.extra.items() if k != "label_quality"}, "label_quality": quality, **extra},
    )
    return write_index(root, new_meta, rows)


def _evaluate(models: list[Segmenter], heldout: TileSet) -> float:
    """Mean held-out mIoU over the models trained on one round's labels (one, or one per fold)."""
    return float(
        np.mean(
            [evaluate_segmenter(m, heldout.layers["image"], heldout.layers["truth"])["mIoU"] for m in models]
        )
    )


def run_self_denoising(
    noisy_root: str | os.PathLike[str],
    heldout_root: str | os.PathLike[str],
    rounds_dir: str | os.PathLike[str],
    export_root: str | os.PathLike[str],
    tables: dict[str, str | os.PathLike[str]],
    figure: str | os.PathLike[str],
    train_settings: TrainSettings = TrainSettings(),
    settings: DenoiseSettings = DenoiseSettings(),
    seed: int = 0,
    heldout_split: str | None = None,
    device: str = "cpu",
) -> pd.DataFrame:
    """Rounds ``D_0 -> D_1 -> ...`` with their bookkeeping (networks on ``device``); ``tables`` has keys ``csv``, ``md``,
    ``rounds`` (per-round details with class histograms).  Returns the summary table.

    Trains on the S2 image and the ``label`` layer of the noisy set, scores against ``truth``."""
    train = load_tiles(noisy_root, ["image", "label", "truth"])
    heldout = load_tiles(heldout_root, ["image", "truth"], heldout_split)
    label_layer = train.layer_names["label"]
    schema = load_schema(train.spec("label").schema or "")
    classes = schema.num_classes
    images = torch.as_tensor(train.layers["image"].astype(np.float32))
    noisy = torch.as_tensor(train.layers["label"].astype(np.int64))
    truth = train.layers["truth"]
    normaliser = BandNormaliser.fit(train.layers["image"])
    anchors, positions = anchor_patches(normaliser(train.layers["image"]), train.layers["label"], settings, seed)

    def fit(inputs: Tensor, labels: Tensor, fit_seed: int) -> Segmenter:
        log.info("training on %d tiles, seed %d", inputs.shape[0], fit_seed)
        return train_segmenter(
            inputs.numpy(), labels.numpy(), classes, train_settings, fit_seed, normaliser, device=device
        )

    def predict(model: Segmenter, inputs: Tensor) -> Tensor:
        return predict_probabilities(model, inputs.numpy())

    def density(model: Segmenter, inputs: Tensor) -> Tensor:
        return _density_per_pixel(model, inputs, settings)

    history = self_denoise(
        images, noisy, fit, predict, classes, rounds=settings.rounds,
        min_changed_fraction=settings.min_changed_fraction, confidence=settings.confidence,
        density=density if settings.density_gate else None, cross_fit_folds=settings.cross_fit_folds, seed=seed,
    )
    final_seed = seed + 1000 * len(history)
    label_sets = [noisy] + [r.labels for r in history]
    models = [r.models for r in history] + [[fit(images, history[-1].labels, final_seed)]]
    rows, details = [], []
    rounds_dir = Path(rounds_dir)
    for r, (labels, round_models) in enumerate(zip(label_sets, models)):
        label_array = labels.numpy().astype(np.uint8)
        anchor_labels = label_array[positions[:, 0], positions[:, 1], positions[:, 2]]
        diagnostics = round_diagnostics(round_models[0], anchors, anchor_labels, settings, sketch_seed=seed)
        histogram = np.bincount(label_array[label_array != UNLABELLED], minlength=classes)[:classes]
        collapsed = collapsed_classes(torch.as_tensor(truth), labels, classes)
        row = {
            "round": r,
            "labels": f"D{r}",
            "label_accuracy": label_accuracy(truth, label_array, classes),
            "changed_fraction": history[r - 1].changed_fraction if r > 0 else float("nan"),
            "heldout_mIoU": _evaluate(round_models, heldout),
            "collapsed_classes": ",".join(schema.names[c] for c in collapsed),
            **diagnostics,
        }
        rows.append(row)
        details.append({**row, **{f"share_{n}": h / max(histogram.sum(), 1) for n, h in zip(schema.names, histogram)}})
        if r > 0:
            write_label_dataset(
                train, label_array, rounds_dir / f"round{r}", f"{train.index.meta.name}_round{r}",
                f"self-denoised labels D{r} of {train.index.meta.name} (spec netsimilarity.md §5.b)",
                {"denoising_round": r, "derived_from": train.index.meta.name},
            )
        log.info("round %d: %s", r, row)
    table = _write_outputs(pd.DataFrame(rows), pd.DataFrame(details), train, heldout, tables, settings)
    plot_rounds(table, train, label_sets, schema, figure, source=tile_sets_source(train, heldout))
    write_label_dataset(
        train, label_sets[-1].numpy().astype(np.uint8), Path(export_root), f"{train.index.meta.name}_denoised",
        f"{train.index.meta.description} -- layer {label_layer!r} replaced by the self-denoised labels "
        f"D{len(history)} (spec netsimilarity.md §5.b)",
        {
            "label_source": f"{label_layer}_denoised",
            "derived_from": train.index.meta.name,
            "denoising_rounds": len(history),
            "denoising": {**asdict(settings), "train": asdict(train_settings), "seed": seed},
        },
        copy_layers=tuple(k for k in train.index.meta.layers if k != label_layer),
    )
    return table


def _write_outputs(
    table: pd.DataFrame, details: pd.DataFrame, train: TileSet, heldout: TileSet,
    tables: dict[str, str | os.PathLike[str]], settings: DenoiseSettings,
) -> pd.DataFrame:
    """The per-round details, and the summary with its ``data`` column and banner naming the
    datasets' source (``eolabels.report.tables``); returns the summary as written."""
    source = tile_sets_source(train, heldout)
    with atomic_path(tables["rounds"]) as tmp:
        details.to_csv(tmp, index=False)
    return write_table(
        table, tables["csv"], tables["md"], f"Self-denoising rounds (spec netsimilarity.md §5.b) — {source_tag(source)}",
        [
            f"Labels D_r of {train.index.meta.name} (D0 = the noisy labels); label_accuracy vs the hidden "
            f"truth; changed_fraction of D_r vs D_(r-1); heldout_mIoU of a model trained on D_r, on the "
            f"true labels of {heldout.index.meta.name}; median_rho, n_eff, stationarity_residual on "
            f"{settings.anchor_samples} anchor samples (spec §3.3-3.4). collapsed_classes: classes "
            "with >= 1 % true share that lost > 30 % of it. Noise that is systematic (not zero-mean "
            "over similar inputs) is not removed by this method (spec §3.4).",
        ],
        source=source,
    )
