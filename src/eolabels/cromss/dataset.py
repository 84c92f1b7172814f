"""The CromSS pretraining dataset over a NoLDO-S12-shaped dataset directory (spec §4–5).

A dataset of kind ``noldo`` (:data:`eolabels.data.kinds.NOLDO`, the layout in its description): the
S1 / S2 images, the noisy ``label`` layer (Dynamic World ids 0–8, no unlabelled pixels in pretraining)
and, where the source has it, the ``truth`` (evaluation only, never a training target), all asked for
by role.

One item is one location: a season drawn uniformly and shared by S1, S2 and the label; the
label-smoothing prior computed on the full tile from the labels of *all* seasons; then the joint
random crop / flip / rotation.  Imagery goes through the uint8 encoding of the SSL4EO-S12 release
(clip to μ ± 2σ, 0..255, truncate) and is divided by 255, as the reference's uint8 LMDB input.
With a single season the temporal prior P_t equals the spatial prior P_s, so every prior kind
gives P_s (:attr:`prior_note` says so for logs and outputs).

Randomness comes from torch's generator: in the main process it is the global one (saved in the
trainer's checkpoints, so a resumed run draws the same samples), in a loader worker the one
PyTorch seeds per worker from the loader's generator.
"""

from __future__ import annotations

import logging
import os
from pathlib import Path
from typing import Sequence

import numpy as np
import torch
from torch import Tensor
from torch.utils.data import Dataset

from eolabels.cromss.normalization import normalise_s1, normalise_s2, s2_band_indices, uint8_to_unit
from eolabels.cromss.pretrain_sample import assemble_sample
from eolabels.cromss.smoothing import PriorKind, label_smoothing_prior
from eolabels.data.index import DatasetIndex
from eolabels.data.readers import TileReader

log = logging.getLogger(__name__)
MODALITIES = ("s1", "s2")


class PretrainDataError(ValueError):
    """A sample of the pretraining set cannot be used; the message names the location or file."""


class NoisyLabelPretrainDataset(Dataset):
    """Pretraining samples ``{"s1", "s2", "label", "prior"[, "truth"]}`` from a dataset directory.

    ``modalities`` picks the inputs (``("s2",)`` for single-modal S2 without any S1 layer);
    ``s2_bands`` is 13 or 9 (spec §6); ``prior_kind`` None drops the prior; ``augment`` False
    returns the full tile of a random season without crop, flip or rotation.
    """

    def __init__(
        self,
        root: str | os.PathLike[str],
        modalities: Sequence[str] = MODALITIES,
        s2_bands: int = 13,
        prior_kind: PriorKind | None = "ts",
        crop_size: int | None = 256,
        augment: bool = True,
        with_truth: bool = True,
        seed: int = 0,
        num_classes: int = 9,
        cache: bool = False,
    ) -> None:
        self.root = Path(root)
        self.index = DatasetIndex.open(self.root)
        meta = self.index.meta
        unknown = [m for m in modalities if m not in MODALITIES]
        if unknown or not modalities:
            raise PretrainDataError(f"modalities must be a non-empty subset of {MODALITIES}, got {modalities}")
        # images by modality, and the noisy labels by role
        missing = [m for m in modalities if not meta.has_layer("image", modality=m)]
        missing += [] if meta.has_layer("label") else ["label"]
        if missing:
            roles = {name: spec.role for name, spec in meta.layers.items()}
            raise PretrainDataError(f"{self.root}: dataset has no layer(s) {missing} (layers and roles: {roles})")
        self.image_layers = {m: meta.layer("image", modality=m) for m in modalities}
        self.label_layer = meta.layer("label")
        self.truth_layer = meta.layer("truth") if with_truth and meta.has_layer("truth") else None
        self.modalities = tuple(modalities)
        self.band_indices = s2_band_indices(s2_bands)
        self.prior_kind = prior_kind
        self.crop_size = crop_size
        self.augment = augment
        self.with_truth = self.truth_layer is not None
        self.seed = seed
        self.num_classes = num_classes
        self.layers = [*self.image_layers.values(), self.label_layer] + ([self.truth_layer] if self.with_truth else [])
        try:
            # checks every location for missing or duplicated seasons up front
            self.locations = TileReader(self.index).locations
        except ValueError as err:
            raise PretrainDataError(str(err)) from err
        self.n_seasons = len(self.index.meta.seasons) or 1
        self._reader: TileReader | None = None
        # every location's rasters once decoded, when asked for: reading 4 seasons of GeoTIFFs costs
        # several times a CPU training step on small data (off for NoLDO-sized sets)
        self.cache = cache
        self._arrays: dict[int, dict[str, np.ndarray]] = {}
        # the label-smoothing prior of a (location, season) depends on the labels only: with the
        # cache on it is computed once, not at every draw (its blur costs more than the sample)
        self._priors: dict[tuple[int, int], np.ndarray] = {}
        if self.prior_note:
            log.info("%s: %s", self.root, self.prior_note)

    @property
    def prior_note(self) -> str:
        """Why the temporal prior adds nothing here ("" when there are several seasons)."""
        if self.prior_kind is None or self.n_seasons > 1:
            return ""
        return (f"one season only: the temporal prior P_t equals the spatial prior P_s, so the "
                f"'{self.prior_kind}' label-smoothing prior is the spatial prior of that season")

    def __len__(self) -> int:
        return len(self.locations)

    def __getstate__(self) -> dict:
        # rasterio handles do not cross process boundaries: each loader worker opens its own
        return {**self.__dict__, "_reader": None}

    def _tile_reader(self) -> TileReader:
        if self._reader is None:
            self._reader = TileReader(self.index)
        return self._reader

    def _rng(self) -> np.random.Generator:
        draw = int(torch.randint(0, 2**62, (), dtype=torch.int64))
        return np.random.default_rng([self.seed, draw])

    def __getitem__(self, item: int) -> dict[str, Tensor]:
        return self.sample(item)

    def sample(self, item: int, season: int | None = None) -> dict[str, Tensor]:
        """Location ``item`` in ``season``; without one, a random season (the training draw),
        augmented when the dataset augments. A given season is never augmented (evaluation)."""
        location = self.locations[item]
        rng = self._rng() if season is None else None
        try:
            arrays = self._arrays.get(item) or self._tile_reader().read_location(location, self.layers)
            if self.cache:
                self._arrays[item] = arrays
            if rng is not None:
                season = int(rng.integers(0, self.n_seasons))
            images = {}
            if "s1" in self.modalities:
                images["s1"] = self._unit("s1", arrays[self.image_layers["s1"]][season])
            if "s2" in self.modalities:
                images["s2"] = self._unit("s2", arrays[self.image_layers["s2"]][season])
            truth = arrays[self.truth_layer][season, 0] if self.truth_layer else None
            labels = arrays[self.label_layer][:, 0]
            prior = None
            if self.cache and self.prior_kind is not None:
                prior = self._priors.get((item, season))
                if prior is None:
                    prior = label_smoothing_prior(labels, season, self.prior_kind, self.num_classes)
                    self._priors[(item, season)] = prior
            return assemble_sample(
                images, labels, season, self.prior_kind,
                rng if self.augment else None, self.crop_size, self.num_classes, truth, prior,
            )
        except ValueError as err:
            raise PretrainDataError(f"{self.root}: location {location}: {err}") from err

    def _unit(self, modality: str, image: np.ndarray) -> np.ndarray:
        """Model input in [0, 1]: physical values through the uint8 encoding, or a layer a release
        already stores in that encoding (dtype uint8, e.g. the CromSS LMDBs) divided by 255."""
        encoded = self.index.meta.layers[self.image_layers[modality]].dtype == "uint8"
        if modality == "s2":
            return uint8_to_unit(image[list(self.band_indices)]) if encoded else normalise_s2(image, self.band_indices)
        return uint8_to_unit(image) if encoded else normalise_s1(image)

    def close(self) -> None:
        if self._reader is not None:
            self._reader.close()
            self._reader = None
