"""Entry points of the CromSS rules (rules/pretrain.smk): keyword arguments in, files out.

Each takes the rule's schema-validated params and its outputs (a frozen dataclass where a rule
writes several files), so the workflow scripts only unpack ``snakemake``.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Mapping
from dataclasses import astuple, dataclass
from pathlib import Path
from typing import Any

import torch

from eolabels.cromss.figures import plot_selection_masks
from eolabels.cromss.pretraining import pretrain_variant
from eolabels.distributed import run_processes

log = logging.getLogger(__name__)
PathLike = str | os.PathLike[str]


@dataclass(frozen=True)
class PretrainOutputs:
    """The files rule ``pretrain_encoder`` declares; all lie in the run's folder."""

    encoders: Path
    checkpoint: Path
    metrics: Path
    summary: Path

    @property
    def run_dir(self) -> Path:
        folders = {Path(p).parent for p in astuple(self)}
        if len(folders) != 1:
            raise ValueError(f"pretraining outputs must share one folder, got {sorted(map(str, folders))}")
        return folders.pop()

    def check_written(self) -> None:
        """Fail naming the declared files the run did not write (e.g. a name the trainer does not use)."""
        missing = [str(p) for p in astuple(self) if not Path(p).is_file()]
        if missing:
            raise RuntimeError(f"pretraining finished without writing {', '.join(missing)}")


def pretrain_encoder(*, dataset_dir: str | Path, outputs: PretrainOutputs, variant: str, bands: str,
                     settings: Mapping[str, Any], seed: int, device: str = "auto", threads: int = 1,
                     test_dir: str | Path | None = None) -> None:
    """Rule ``pretrain_encoder``: in-process for one process, else ``torchrun`` with N processes;
    ``test_dir``, the DW dataset whose test split each branch is scored on per epoch (Fig. 8 a,b)."""
    out_dir = outputs.run_dir
    processes = int(settings["processes"])
    if processes == 1:
        torch.set_num_threads(threads)
        pretrain_variant(dataset_dir=dataset_dir, out_dir=out_dir, variant=variant, bands=bands,
                         settings=settings, seed=seed, device=device, test_dir=test_dir)
    else:
        run_processes(processes, threads, "eolabels.cromss.pretraining:pretrain_variant", {
            "dataset_dir": str(dataset_dir), "out_dir": str(out_dir), "variant": variant, "bands": bands,
            "settings": dict(settings), "seed": seed, "device": device,
            "test_dir": None if test_dir is None else str(test_dir), "progress": False,
        }, out_dir)
    outputs.check_written()


def selection_mask_figure(
    *, checkpoint: PathLike, dataset_dir: PathLike, figure: PathLike, variant: str, bands: str,
    settings: Mapping[str, Any], seed: int, locations: int,
) -> None:
    """Rule ``plot_selection_masks``: paper Fig. 11 of one fusion run."""
    plot_selection_masks(checkpoint, dataset_dir, figure, variant, bands, dict(settings), seed=seed, locations=locations)
