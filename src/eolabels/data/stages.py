"""Entry points of the data rules (rules/acquire.smk): keyword arguments in, a dataset directory out.

Each writes or describes one dataset in the common layout; the workflow scripts only unpack
``snakemake``.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from eolabels.data.datacard import plot_preview, write_datacard
from eolabels.data.local import import_local
from eolabels.data.synthetic import generate_dataset

PathLike = str | os.PathLike[str]


def acquire_synthetic(*, dataset: str, out_dir: PathLike, generator: Mapping[str, Any], seed: int) -> Path:
    """Rule ``acquire_synthetic``: one dataset of the embedded world; returns its index."""
    return generate_dataset(dataset, out_dir, dict(generator), seed=seed)


def acquire_local(*, dataset: str, settings: Mapping[str, Any], out_dir: PathLike) -> Path:
    """Rule ``acquire_local``: one dataset imported from downloaded files; returns its index."""
    return import_local(dataset, dict(settings), out_dir)


def describe_dataset(*, dataset_dir: PathLike, card: PathLike, preview: PathLike, preview_samples: int) -> None:
    """Rule ``write_datacard``: the data card (sizes, class histograms, label quality) and a preview figure."""
    write_datacard(Path(dataset_dir), card)
    plot_preview(Path(dataset_dir), preview, n_samples=preview_samples)
