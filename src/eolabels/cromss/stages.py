"""Entry points of the CromSS rules (rules/pretrain.smk): keyword arguments in, files out.

Each takes the rule's schema-validated params and its outputs (a frozen dataclass where a rule
writes several files), so the workflow scripts only unpack ``snakemake``.
"""

from __future__ import annotations

import json
import logging
import os
import subprocess
import sys
import tempfile
from collections.abc import Mapping, Sequence
from dataclasses import astuple, dataclass
from pathlib import Path
from typing import Any

import torch

from eolabels.cromss.curves import plot_pretrain_curves
from eolabels.cromss.figures import plot_selection_masks
from eolabels.cromss.pretraining import pretrain_variant
from eolabels.cromss.report import tabulate_pretraining
from eolabels.distributed import launch_command, slurm_environment

log = logging.getLogger(__name__)
PathLike = str | os.PathLike[str]


def _stderr_sink() -> Any:
    """The stream child processes should write to: the rule's log when ``eolabels.workflow.logged``
    redirected stderr to it (torchrun's output would otherwise bypass the log), else inherit."""
    try:
        sys.stderr.flush()
        sys.stderr.fileno()
    except (AttributeError, OSError, ValueError):
        return None
    return sys.stderr


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
        _launch_torchrun(processes, threads, {
            "dataset_dir": str(dataset_dir), "out_dir": str(out_dir), "variant": variant, "bands": bands,
            "settings": dict(settings), "seed": seed, "device": device,
            "test_dir": None if test_dir is None else str(test_dir),
        })
    outputs.check_written()


def _launch_torchrun(processes: int, threads: int, kwargs: dict[str, Any]) -> None:
    """``processes`` torchrun processes, each running :func:`pretrain_variant` with ``kwargs``: on this
    machine, or through ``srun`` over a SLURM allocation's tasks (:mod:`eolabels.distributed`)."""
    # the settings file lies beside the outputs: every node of an allocation must read it
    Path(kwargs["out_dir"]).mkdir(parents=True, exist_ok=True)
    with tempfile.NamedTemporaryFile("w", suffix=".json", dir=kwargs["out_dir"], delete=False) as f:
        json.dump(kwargs, f)
    env = slurm_environment(os.environ)
    cmd = launch_command(processes, ["-m", "eolabels.cromss.launch", f.name], env, sys.executable)
    env["OMP_NUM_THREADS"] = str(max(1, threads // processes))
    log.info("launching %s", " ".join(cmd))
    try:
        sink = _stderr_sink()
        subprocess.run(cmd, check=True, env=env, stdout=sink, stderr=subprocess.STDOUT if sink else None)
    finally:
        os.unlink(f.name)


def selection_mask_figure(
    *, checkpoint: PathLike, dataset_dir: PathLike, figure: PathLike, variant: str, bands: str,
    settings: Mapping[str, Any], seed: int, locations: int,
) -> None:
    """Rule ``plot_selection_masks``: paper Fig. 11 of one fusion run."""
    plot_selection_masks(checkpoint, dataset_dir, figure, variant, bands, dict(settings), seed=seed, locations=locations)


def pretrain_curves_figure(*, metrics: PathLike, summary: PathLike, figure: PathLike) -> None:
    """Rule ``plot_pretrain_curves``: paper Fig. 8 a, b of one run."""
    plot_pretrain_curves(metrics, summary, figure)


def pretraining_table(*, summaries: Sequence[PathLike], table: PathLike, markdown: PathLike) -> None:
    """Rule ``tabulate_pretraining``: one row per pretraining run."""
    tabulate_pretraining(summaries, table, markdown)
