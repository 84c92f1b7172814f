"""Faults of a whole run, through Snakemake as a user meets them: bad config (named by file and key,
nothing run), two runs in one directory (the lock), and kill -9 of Snakemake mid-training followed by
``--unlock`` and ``--rerun-incomplete`` (the same numbers as an uninterrupted run)."""

from __future__ import annotations

import csv
import shutil
from pathlib import Path

import pytest
import torch
from reliability_helpers import kill_group, snakemake, start_snakemake, wait_for

pytestmark = pytest.mark.slow


def _dry_run_fails(workdir: Path, overlay: str) -> str:
    (workdir / "config" / "fault.yaml").write_text(overlay)
    proc = snakemake(workdir, "-n", "--configfile", "config/test.yaml", "config/fault.yaml", check=False)
    text = proc.stdout + proc.stderr
    assert proc.returncode != 0 and "config/fault.yaml" in text and len(text.splitlines()) < 25, text[-3000:]
    assert not (workdir / "results" / "data").exists()  # nothing ran
    return text


def test_config_key_of_the_wrong_type(workflow_copy):
    text = _dry_run_fails(workflow_copy, "cromss: {epochs: many}\n")
    assert "config.cromss.epochs: 'many' is not of type 'integer'" in text


def test_unknown_config_key(workflow_copy):
    text = _dry_run_fails(workflow_copy, "cromss: {epoch: 3}\n")
    assert "config.cromss: Additional properties are not allowed ('epoch' was unexpected)" in text


def test_crop_larger_than_the_tiles(workflow_copy):
    text = _dry_run_fails(workflow_copy, "cromss: {crop_size: 64}\n")
    assert "config.cromss.crop_size: 64 is larger than config.synthetic.noldo.tile_size 48" in text


def test_patch_larger_than_the_epitome(workflow_copy):
    text = _dry_run_fails(workflow_copy, "epitome: {dfc2020: {embed: {patch_size: 17}}}\n")
    assert "config.epitome.dfc2020.embed.patch_size: 17 is larger than the epitome (config.epitome.dfc2020.epitome.side 16)" in text


def test_a_second_run_in_the_same_directory_hits_the_lock(workflow_copy):
    (workflow_copy / "config" / "lock.yaml").write_text("cromss: {variants: [midF], epochs: 4}\n")
    config = ["--configfile", "config/test.yaml", "config/lock.yaml"]
    first = start_snakemake(workflow_copy, "results/pretrain/midF_b9/summary.json", *config)
    locks = workflow_copy / ".snakemake" / "locks"
    wait_for(lambda: locks.is_dir() and any(locks.iterdir()), "the first run's lock", proc=first)
    second = snakemake(workflow_copy, "results/pretrain/midF_b9/summary.json", *config, check=False)
    assert first.poll() is None, "the first run ended before the second one planned"
    assert second.returncode != 0 and "Directory cannot be locked" in second.stderr
    assert first.wait(timeout=300) == 0  # and the first finishes undisturbed
    assert (workflow_copy / "results" / "pretrain" / "midF_b9" / "summary.json").is_file()
    assert not locks.exists() or not any(locks.iterdir())  # and releases its lock


def _interrupted_and_resumed(workflow_copy: Path, name: str, target: str, overlay: str, mid_run) -> tuple[Path, Path]:
    """The target run uninterrupted (A) and, from the same inputs, killed -9 once ``mid_run(dir)`` holds,
    then unlocked and rerun with --rerun-incomplete (B)."""
    args = [target, "--configfile", "config/test.yaml", f"config/{name}.yaml"]
    (workflow_copy / "config" / f"{name}.yaml").write_text(overlay)
    whole = workflow_copy.parent / f"{name}_whole"
    killed = workflow_copy.parent / f"{name}_killed"
    shutil.copytree(workflow_copy, whole)
    snakemake(whole, *args, "--until", "acquire_synthetic")  # the data, shared by both runs
    shutil.copytree(whole, killed)
    snakemake(whole, *args)
    run = start_snakemake(killed, *args)
    wait_for(lambda: mid_run(killed), "a checkpoint mid-run", proc=run)
    kill_group(run)
    assert not (killed / target).exists(), "the run finished before it was killed"
    # a plain rerun refuses, pointing at the lock the kill left or (once the job had started) at the
    # files it left incomplete
    rerun = snakemake(killed, *args, check=False)
    assert rerun.returncode != 0
    if "--rerun-incomplete" in rerun.stderr:
        assert str(Path(target).parent) in rerun.stderr.split("Incomplete files:", 1)[1]
    else:
        assert "can be removed with the --unlock argument" in rerun.stderr
    snakemake(killed, "--unlock", *args)
    snakemake(killed, "--rerun-incomplete", *args)
    return whole, killed


def _rows(path: Path, drop: tuple[str, ...] = ("seconds",)) -> list[dict[str, str]]:
    with path.open(newline="") as f:
        return [{k: v for k, v in row.items() if k not in drop} for row in csv.DictReader(f)]


def test_kill_during_pretraining_then_rerun_incomplete_gives_the_same_metrics(workflow_copy):
    run = "results/pretrain/lateF_b9"  # not the lock test's run: this module's runs share a folder
    whole, killed = _interrupted_and_resumed(
        workflow_copy, "kill_pretrain", f"{run}/summary.json", "cromss: {variants: [lateF], epochs: 6}\n",
        lambda d: (d / run / "last.ckpt").is_file())
    assert "resumed from" in (killed / "logs" / "pretrain_encoder" / "lateF_b9.log").read_text()
    assert _rows(killed / run / "metrics.csv") == _rows(whole / run / "metrics.csv")
    a, b = (torch.load(d / run / "last.ckpt", weights_only=True)["state_dict"] for d in (whole, killed))
    assert all(torch.equal(a[k], b[k]) for k in a)


def test_kill_during_epitome_training_then_rerun_incomplete_gives_the_same_epitome(workflow_copy):
    out = "results/epitome/lsr"
    whole, killed = _interrupted_and_resumed(
        workflow_copy, "kill_epitome", f"{out}/epitome.pt",
        "epitome: {lsr: {epitome: {side: 24, iterations: 300, batch_size: 32, patch_sizes: [7, 11], checkpoint_every: 10}}}\n",
        lambda d: any((d / out).glob("checkpoint*.pt")))
    assert _rows(killed / out / "training.csv") == _rows(whole / out / "training.csv")
    a, b = (torch.load(d / out / "epitome.pt", weights_only=True) for d in (whole, killed))
    assert a["epitome"].keys() == b["epitome"].keys() and a["settings"] == b["settings"]
    assert all(torch.equal(v, b["epitome"][k]) for k, v in a["epitome"].items())
    assert not list((killed / out).glob("checkpoint*.pt"))  # removed once the epitome is written
