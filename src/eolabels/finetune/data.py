"""The fine-tuning dataset over a downstream dataset directory (spec §6–7).

Images come by modality (S1 or S2 with its band set) through the uint8 encoding of the releases
(:mod:`eolabels.cromss.normalization`), labels by role and the task's class schema, so a dataset
with several label layers (OSM beside DW) gives the one the task scores.  Training samples go
through the reference's albumentations pipeline: random crop (DW/OSM), flip (p 0.5), rotation
(p 0.2); test samples are whole tiles.  Randomness is drawn from torch's global generator (saved
in the trainer's checkpoints), as in the pretraining dataset.
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import torch
from torch import Tensor
from torch.utils.data import Dataset

from eolabels.cromss.augmentation import augment_jointly
from eolabels.cromss.normalization import normalise_s1, normalise_s2
from eolabels.data.index import DatasetIndex
from eolabels.data.readers import TileReader
from eolabels.finetune.tasks import Task


class FinetuneDataError(ValueError):
    """A downstream sample cannot be used; the message names the dataset and sample."""


class FinetuneDataset(Dataset):
    """``{"image": (C, H, W) float32 in [0, 1], "label": (H, W) int64}`` of one split.

    ``band_indices`` picks the S2 bands (ignored for S1); ``crop_size`` None trains on whole tiles.
    """

    def __init__(self, root: str | os.PathLike[str], task: Task, split: str, modality: str,
                 band_indices: tuple[int, ...] | None = None, *, augment: bool = False,
                 crop_size: int | None = None, flip_p: float = 0.5, rotate_p: float = 0.2, seed: int = 0) -> None:
        self.root = Path(root)
        self.task = task
        self.index = DatasetIndex.open(self.root)
        meta = self.index.meta
        if not meta.has_layer("image", modality=modality):
            raise FinetuneDataError(f"{self.root}: no {modality} image layer for task {task.name}")
        self.image_layer = meta.layer("image", modality=modality)
        try:
            self.label_layer = meta.layer("label", schema=task.schema)
        except ValueError as err:
            raise FinetuneDataError(f"{self.root}: task {task.name} needs {task.schema} labels: {err}") from err
        self.modality = modality
        self.band_indices = band_indices
        self.augment = augment
        self.crop_size = crop_size if augment else None
        self.flip_p, self.rotate_p = flip_p, rotate_p
        self.seed = seed
        self._reader: TileReader | None = None
        self.rows = TileReader(self.index).rows(split)
        self.split = split
        if self.crop_size is not None:
            sizes = self.index.table.iloc[self.rows][["height", "width"]].to_numpy()
            if (sizes < self.crop_size).any():
                small = self.index.table.iloc[self.rows]["id"][(sizes < self.crop_size).any(axis=1)].tolist()
                raise FinetuneDataError(
                    f"{self.root}: crop_size {self.crop_size} is larger than {len(small)} {split} tile(s), "
                    f"e.g. {small[0]} ({int(sizes.min())} px)"
                )

    def __len__(self) -> int:
        return len(self.rows)

    def __getstate__(self) -> dict:
        return {**self.__dict__, "_reader": None}  # each loader worker opens its own rasters

    def sample_id(self, item: int) -> str:
        return str(self.index.table.iloc[self.rows[item]]["id"])

    def decode(self, item: int) -> tuple[np.ndarray, np.ndarray]:
        """Item ``item`` read, checked and normalised: image (C, H, W) float32, label (H, W) int64."""
        try:
            return self._decode(item)
        except FinetuneDataError:
            raise
        except ValueError as err:  # the reader's checks: truncated raster, NaN imagery, bad labels
            raise FinetuneDataError(f"{self.root}: sample {self.sample_id(item)}: {err}") from err

    def _decode(self, item: int) -> tuple[np.ndarray, np.ndarray]:
        if self._reader is None:
            self._reader = TileReader(self.index)
        arrays = self._reader.read(self.rows[item], [self.image_layer, self.label_layer])
        raw = arrays[self.image_layer]
        image = normalise_s1(raw) if self.modality == "s1" else normalise_s2(raw, self.band_indices)
        label = arrays[self.label_layer][0]
        nodata = self.index.meta.layers[self.label_layer].nodata
        if self.task.ignore_index is None and nodata is not None and (label == nodata).any():
            raise FinetuneDataError(
                f"{self.root}: sample {self.sample_id(item)} has unlabelled pixels, but task {self.task.name} "
                "has no ignore index (§7: every pixel is a class)"
            )
        label = label.astype(np.int64)
        if nodata is not None and self.task.ignore_index is not None:
            label[label == nodata] = self.task.ignore_index
        outside = (label != (self.task.ignore_index if self.task.ignore_index is not None else -1)) & (
            label >= self.task.classes)
        if outside.any():
            raise FinetuneDataError(
                f"{self.root}: sample {self.sample_id(item)} holds label id {int(label[outside][0])}, "
                f"outside the {self.task.classes} classes of task {self.task.name}"
            )
        return image.astype(np.float32), label

    def __getitem__(self, item: int) -> dict[str, Tensor]:
        return self.sample(*self.decode(item))

    def sample(self, image: np.ndarray, label: np.ndarray) -> dict[str, Tensor]:
        """A decoded tile as a training or test sample (augmented when the dataset augments)."""
        if self.augment:
            rng = np.random.default_rng([self.seed, int(torch.randint(0, 2**62, (), dtype=torch.int64))])
            image, label = augment_jointly(image, label, rng, self.crop_size, self.flip_p, self.rotate_p)
        return {"image": torch.from_numpy(np.ascontiguousarray(image)),
                "label": torch.from_numpy(np.ascontiguousarray(label))}

    def close(self) -> None:
        if self._reader is not None:
            self._reader.windows.close()
            self._reader = None


class CrossModalTestSet(Dataset):
    """One split's tiles in every modality a pretraining variant reads: ``{"s1", "s2", "label"}``.

    The paper's Fig. 8 a,b score the pretrained networks' own predictions (DW classes) on the DW
    test split; each modality is read and normalised exactly as the fine-tuning rows read it.
    """

    def __init__(self, root: str | os.PathLike[str], task: Task, split: str, modalities: tuple[str, ...],
                 band_indices: tuple[int, ...] | None = None) -> None:
        self.parts = {m: FinetuneDataset(root, task, split, m, band_indices if m == "s2" else None)
                      for m in modalities}
        if len(self) == 0:
            raise FinetuneDataError(f"{root}: the {split} split of task {task.name} holds no tile")

    def __len__(self) -> int:
        return len(next(iter(self.parts.values())))

    def __getitem__(self, item: int) -> dict[str, Tensor]:
        samples = {m: part[item] for m, part in self.parts.items()}
        return {**{m: s["image"] for m, s in samples.items()}, "label": next(iter(samples.values()))["label"]}
