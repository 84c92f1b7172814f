"""One row of a fine-tuning table: an encoder source on one task and input, frozen and fine-tuned,
each repeated with several seeds (spec §7: the paper reports 3 runs).

A row is one Snakemake job: its runs share the imported libraries and the decoded tiles, and
changing one row's settings re-runs that row only.  With ``processes`` > 1 the job starts that many
torchrun processes (:func:`finetune_row_job`); each runs every run of the row data-parallel and only
the first writes files.  Each run trains in its own folder
(``<mode>/rep<k>``) and leaves ``result.json`` when done, so a killed job resumes at the run it was
in (from that run's ``last.ckpt``) and finished runs of the same settings are not repeated.
"""

from __future__ import annotations

import json
import logging
import shutil
from collections.abc import Mapping, Sequence
from dataclasses import asdict
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.distributed as dist

from eolabels.atomic import atomic_path
from eolabels.cromss.normalization import s2_band_indices
from eolabels.cromss.pretraining import s2_channels
from eolabels.data.index import DatasetIndex
from eolabels.data.kinds import IMAGES
from eolabels.distributed import join_process_group, run_processes
from eolabels.finetune.data import FinetuneDataset
from eolabels.finetune.encoders import EncoderSource
from eolabels.finetune.settings import FinetuneConfig
from eolabels.finetune.tasks import SCORES, Task, task
from eolabels.finetune.trainer import FinetuneTrainer
from eolabels.settings import from_section
from eolabels.training import is_distributed, is_main_process, plain, world_size

log = logging.getLogger(__name__)
MODES = ("frozen", "finetuned")
RESULT_FILE = "result.json"
WEIGHTS_FILE = "weights.pt"


def parse_input(ft_input: str) -> tuple[str, str | None]:
    """``s1`` → (s1, None); ``s2_b13`` → (s2, b13): a task's input modality and S2 band set."""
    modality, _, bands = ft_input.partition("_")
    if modality == "s1" and not bands:
        return "s1", None
    if modality == "s2" and bands:
        s2_channels(bands)  # an unknown band set fails here
        return "s2", bands
    raise ValueError(f"fine-tuning input {ft_input!r}: expected 's1' or 's2_<bands>' (s2_b13, s2_b9)")


def crop_for(t: Task, framework: str, setting: Any) -> int | None:
    """The training crop: ``auto`` = the paper's rule for the framework, an integer, or null (whole tiles)."""
    if setting == "auto":
        return t.paper_crop(framework)
    return None if setting is None else int(setting)


def finetune_config(task_name: str, ft_input: str, mode: str, repeat: int, settings: Mapping[str, Any],
                    encoder_name: str, seed: int) -> FinetuneConfig:
    """The settings of one run from the validated ``finetune:`` section."""
    if mode not in MODES:
        raise ValueError(f"unknown fine-tuning mode {mode!r}; expected one of {MODES}")
    t = task(task_name)
    modality, bands = parse_input(ft_input)
    framework = settings["frameworks"][task_name]
    return from_section(
        FinetuneConfig, settings,
        task=task_name,
        framework=framework,
        encoder_name=encoder_name,
        model_kwargs=tuple(sorted(dict(settings["model_kwargs"].get(framework, {})).items())),
        modality=modality,
        in_channels=len(IMAGES["s1"].bands) if modality == "s1" else s2_channels(str(bands)),
        frozen=mode == "frozen",
        freeze_bn=mode == "frozen" and settings["freeze_bn"],
        crop_size=crop_for(t, framework, settings["crop_size"][task_name]),
        seed=seed + repeat,
    )


class CachedTiles(torch.utils.data.Dataset):
    """A split's decoded tiles held in memory: the row's runs read each GeoTIFF once, then only
    augment (``FinetuneDataset`` with ``augment`` re-draws crops and flips per item)."""

    def __init__(self, dataset: FinetuneDataset) -> None:
        self.dataset = dataset
        self.tiles = [dataset.decode(i) for i in range(len(dataset))]

    def __len__(self) -> int:
        return len(self.tiles)

    def __getitem__(self, item: int) -> dict[str, torch.Tensor]:
        return self.dataset.sample(*self.tiles[item])


def _datasets(dataset_dir: str | Path, config: FinetuneConfig, cache: bool, bands: str | None
              ) -> tuple[torch.utils.data.Dataset, torch.utils.data.Dataset]:
    t = task(config.task)
    indices = s2_band_indices(s2_channels(bands)) if bands else None
    train = FinetuneDataset(dataset_dir, t, t.train_split, config.modality, indices, augment=True,
                            crop_size=config.crop_size, flip_p=config.flip_p, rotate_p=config.rotate_p,
                            seed=config.seed)
    test = FinetuneDataset(dataset_dir, t, t.test_split, config.modality, indices)
    return (CachedTiles(train), CachedTiles(test)) if cache else (train, test)


def _finished(run_dir: Path, config: FinetuneConfig) -> dict[str, Any] | None:
    path = run_dir / RESULT_FILE
    if not path.is_file():
        return None
    result = json.loads(path.read_text())
    same = result.get("config") == plain(asdict(config)) and result.get("processes", 1) == world_size()
    return result if same else None


def run_once(dataset_dir: str | Path, config: FinetuneConfig, source: EncoderSource, run_dir: Path,
             datasets: tuple[Any, Any], device: str, keep_weights: bool) -> dict[str, Any]:
    """Train and score one run (resuming from its ``last.ckpt``); returns and writes its result."""
    done = _finished(run_dir, config)
    if done is not None and (not keep_weights or (run_dir / WEIGHTS_FILE).is_file()):
        log.info("%s: finished earlier with these settings; reusing it", run_dir)
        return done
    trainer = FinetuneTrainer(config, *datasets, source=source, out_dir=run_dir, device=device)
    last = run_dir / "last.ckpt"
    if is_main_process() and last.is_file() and not trainer.can_resume_from(last):
        last.unlink()
    if is_distributed():
        dist.barrier()  # every process decides to resume after the first one did
    trainer.fit()
    scores = trainer.last_scores or trainer.evaluate()
    result = {
        "config": plain(asdict(config)),
        "epochs": trainer.epoch,
        "loaded_tensors": trainer.loaded_tensors,
        "scores": {k: float(scores[k]) for k in SCORES},
        "per_class_iou": [float(v) for v in scores["iou"]],
        "test_pixels": int(scores["n_pixels"]),
        "processes": world_size(),
    }
    if not is_main_process():
        return result
    if keep_weights:
        with atomic_path(run_dir / WEIGHTS_FILE) as tmp:
            torch.save(trainer.model.state_dict(), tmp)
    with atomic_path(run_dir / RESULT_FILE) as tmp:
        tmp.write_text(json.dumps(result, indent=2))
    for checkpoint in run_dir.glob("*.ckpt"):  # resuming is no longer needed; keep the disk small
        checkpoint.unlink()
    return result


def mean_std(values: Sequence[float]) -> tuple[float, float]:
    """Mean and sample standard deviation (ddof 1; 0 for a single run) of the repeats."""
    array = np.asarray(values, dtype=np.float64)
    return float(array.mean()), float(array.std(ddof=1)) if len(array) > 1 else 0.0


def finetune_row(*, dataset_dir: str | Path, out_dir: str | Path, summary_path: str | Path,
                 weights: Mapping[str, str | Path], task_name: str, ft_input: str, source: EncoderSource,
                 encoder_name: str, settings: Mapping[str, Any], seed: int, device: str = "auto",
                 threads: int = 1) -> dict[str, Any]:
    """Every run of one row; writes ``summary.json`` (per-run and mean ± std scores per mode) and the
    first repeat's fine-tuned weights per mode (``weights``: mode → path) for the figures."""
    torch.set_num_threads(threads)
    source.check_exists()  # before anything trains
    device = join_process_group(device)
    out_dir = Path(out_dir)
    modes = list(settings["modes"])
    repeats = int(settings["repeats"])
    modality, bands = parse_input(ft_input)
    summary: dict[str, Any] = {"task": task_name, "input": ft_input, "modality": modality, "bands": bands,
                               "source": source.name, "source_kind": source.kind, "encoder": encoder_name,
                               "processes": world_size(), "modes": {}}
    datasets = None
    for mode in modes:
        runs = []
        for repeat in range(repeats):
            config = finetune_config(task_name, ft_input, mode, repeat, settings, encoder_name, seed)
            if datasets is None:
                datasets = _datasets(dataset_dir, config, settings["cache_tiles"], bands)
                summary.update(framework=config.framework, train_tiles=len(datasets[0]),
                               test_tiles=len(datasets[1]))
            log.info("%s %s %s: %s run %d/%d", task_name, ft_input, source.name, mode, repeat + 1, repeats)
            runs.append(run_once(dataset_dir, config, source, out_dir / mode / f"rep{repeat}", datasets,
                                 device, keep_weights=repeat == 0))
        stats = {k: mean_std([r["scores"][k] for r in runs]) for k in SCORES}
        summary["modes"][mode] = {
            "runs": [r["scores"] for r in runs],
            "mean": {k: mean for k, (mean, _) in stats.items()},
            "std": {k: std for k, (_, std) in stats.items()},
            "loaded_tensors": runs[0]["loaded_tensors"],
            "epochs": runs[0]["epochs"],
        }
    summary["data"] = DatasetIndex.open(dataset_dir).meta.source
    if not is_main_process():
        return summary
    for mode, path in weights.items():
        with atomic_path(path) as tmp:
            shutil.copyfile(out_dir / mode / "rep0" / WEIGHTS_FILE, tmp)
    with atomic_path(summary_path) as tmp:
        tmp.write_text(json.dumps(summary, indent=2))
    return summary


def finetune_row_job(*, source_record: Mapping[str, Any], threads: int = 1, **row: Any) -> dict[str, Any] | None:
    """Rule ``finetune_row``: the row in this process, or in ``settings["processes"]`` torchrun
    processes (here or over a SLURM allocation's tasks); ``source_record`` is the rule's source param
    and ``row`` the other arguments of :func:`finetune_row`, all JSON-able."""
    processes = int(row["settings"]["processes"])
    if processes == 1:
        return finetune_row_process(source_record=source_record, threads=threads, **row)
    kwargs = {**row, "source_record": dict(source_record), "threads": max(1, threads // processes),
              "dataset_dir": str(row["dataset_dir"]), "out_dir": str(row["out_dir"]),
              "summary_path": str(row["summary_path"]), "weights": {k: str(v) for k, v in row["weights"].items()},
              "settings": dict(row["settings"])}
    run_processes(processes, threads, "eolabels.finetune.rows:finetune_row_process", kwargs, row["out_dir"])
    return None


def finetune_row_process(*, source_record: Mapping[str, Any], **row: Any) -> dict[str, Any]:
    """:func:`finetune_row` with its encoder source given as the rule's record (name, kind, path, tag,
    encoder): the form a torchrun process receives it in."""
    source = EncoderSource(source_record["name"], source_record["kind"], source_record["path"], source_record["tag"])
    return finetune_row(source=source, encoder_name=source_record["encoder"], **row)
