"""The workflow on a real (one-machine) SLURM cluster through profiles/slurm: every job an sbatch job, a
job killed by scancel submitted again, a 2-task data-parallel pretraining started by srun + torchrun
rendezvous, and the same numbers as a local run of the same config and targets."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch

pytestmark = pytest.mark.slow

# pretraining one variant with 2 data-parallel processes, scored on the DW test split every epoch:
# acquire_synthetic (noldo, dw), assemble_noldo, pretrain_encoder, tabulate_pretraining
OVERLAY = "cromss: {variants: [cromss_midF], processes: 2}\n"
TARGETS = ["results/tables/pretraining.csv"]
RUN = "results/pretrain/cromss_midF_b9"
# the test cluster has no accounting (squeue answers status queries) and no accounts
SLURM_ARGS = ["--profile", "profiles/slurm", "--slurm-no-account", "--slurm-status-command", "squeue",
              "--slurm-init-seconds-before-status-checks", "1"]


def _snakemake(workdir: Path, *args: str) -> list[str]:
    return [sys.executable, "-m", "snakemake", *TARGETS, *args, "--configfile", "config/test.yaml", "config/slurm_test.yaml"]


def _jobcomp(cluster: Path) -> dict[str, dict[str, str]]:
    """SLURM's job completion log (jobcomp/filetxt): one record per finished job, by job id."""
    records = [dict(re.findall(r"(\w+)=(\S*)", line)) for line in (cluster / "jobcomp.log").read_text().splitlines()]
    return {r["JobId"]: r for r in records}


@pytest.fixture(scope="module")
def runs(workflow_copy, slurm_cluster):
    """The same targets run locally and through SLURM (the SLURM run's pretraining job cancelled once)."""
    shutil.copytree(Path(__file__).parents[2] / "profiles", workflow_copy / "profiles")
    (workflow_copy / "config" / "slurm_test.yaml").write_text(OVERLAY)
    local = workflow_copy.parent / "local_run"
    shutil.copytree(workflow_copy, local)
    proc = subprocess.run(_snakemake(local, "--cores", "2"), cwd=local, capture_output=True, text=True, timeout=900)
    assert proc.returncode == 0, proc.stderr[-4000:]

    output = workflow_copy / "snakemake_slurm.out"
    with output.open("w") as sink:
        snakemake = subprocess.Popen(_snakemake(workflow_copy, *SLURM_ARGS), cwd=workflow_copy,
                                     stdout=sink, stderr=subprocess.STDOUT, text=True)
        cancelled = _cancel_pretraining_once(snakemake, output)
        rc = snakemake.wait(timeout=900)
    text = output.read_text()
    assert rc == 0, text[-5000:]
    return {"local": local, "slurm": workflow_copy, "output": text, "cancelled": cancelled, "cluster": slurm_cluster}


def _cancel_pretraining_once(snakemake: subprocess.Popen, output: Path) -> str:
    """scancel the pretraining job once it has run a few seconds; returns its SLURM job id."""
    deadline = time.monotonic() + 600
    running_since: dict[str, float] = {}
    while time.monotonic() < deadline and snakemake.poll() is None:
        match = re.search(r"Job \d+ has been submitted with SLURM jobid (\d+) \(log: \S*rule_pretrain_encoder/",
                          output.read_text())
        if match:
            job = match.group(1)
            state = subprocess.run(["squeue", "-h", "-t", "all", "-j", job, "-o", "%T"],
                                   capture_output=True, text=True).stdout.strip()
            if state == "RUNNING":
                running_since.setdefault(job, time.monotonic())
                if time.monotonic() - running_since[job] > 5:
                    subprocess.run(["scancel", job], check=True)
                    return job
        time.sleep(0.3)
    raise AssertionError("the pretraining job never ran long enough to be cancelled:\n" + output.read_text()[-3000:])


def _submissions(text: str) -> list[tuple[str, str]]:
    """(SLURM job id, rule) of every submission Snakemake reported."""
    return re.findall(r"submitted with SLURM jobid (\d+) \(log: \S*/slurm_logs/rule_(\w+)/", text)


def test_every_job_went_through_sbatch(runs):
    submitted = _submissions(runs["output"])
    rules = sorted(rule for _, rule in submitted)
    # the five jobs, the pretraining twice (cancelled, then again)
    assert rules == ["acquire_synthetic", "acquire_synthetic", "assemble_noldo", "pretrain_encoder",
                     "pretrain_encoder", "tabulate_pretraining"]
    finished = _jobcomp(runs["cluster"])
    for job, rule in submitted:
        record = finished[job]  # SLURM's own record of the job
        assert record["WorkDir"] == str(runs["slurm"])
        expected = "CANCELLED" if job == runs["cancelled"] else "COMPLETED"
        assert record["JobState"] == expected, (rule, record)
    # the training rule went to the GPU partition of the profile's set-resources, the others to cpu
    assert {finished[j]["Partition"] for j, r in submitted if r == "pretrain_encoder"} == {"gpu"}
    assert {finished[j]["Partition"] for j, r in submitted if r != "pretrain_encoder"} == {"cpu"}


def test_a_cancelled_job_is_submitted_again(runs):
    pretraining = [job for job, rule in _submissions(runs["output"]) if rule == "pretrain_encoder"]
    assert pretraining[0] == runs["cancelled"] and int(pretraining[1]) > int(pretraining[0])
    assert _jobcomp(runs["cluster"])[pretraining[1]]["JobState"] == "COMPLETED"
    assert "(100%) done" in runs["output"]


def test_data_parallel_pretraining_ran_under_srun_with_two_tasks(runs):
    log = (runs["slurm"] / "logs" / "pretrain_encoder" / "cromss_midF_b9.log").read_text()
    launch = log.rsplit("launching ", 1)[1].splitlines()[0]
    assert launch.startswith("srun ") and "--rdzv_backend=c10d" in launch and "--nproc_per_node=2" in launch
    local_log = (runs["local"] / "logs" / "pretrain_encoder" / "cromss_midF_b9.log").read_text()
    assert "--standalone --nproc_per_node=2" in local_log
    for where in ("slurm", "local"):
        summary = json.loads((runs[where] / RUN / "summary.json").read_text())
        assert summary["processes"] == 2 and summary["epochs"] == 2


def test_results_equal_the_local_run(runs):
    table = "results/tables/pretraining.csv"
    assert (runs["slurm"] / table).read_text() == (runs["local"] / table).read_text()
    drop_time = lambda p: [line.rsplit(",", 1)[0] for line in p.read_text().splitlines()]  # noqa: E731
    assert drop_time(runs["slurm"] / RUN / "metrics.csv") == drop_time(runs["local"] / RUN / "metrics.csv")
    a = torch.load(runs["slurm"] / RUN / "encoders.pt", weights_only=False)
    b = torch.load(runs["local"] / RUN / "encoders.pt", weights_only=False)
    tensors = {k: v for k, v in _flatten(a).items() if isinstance(v, torch.Tensor)}
    assert tensors and tensors.keys() == {k for k, v in _flatten(b).items() if isinstance(v, torch.Tensor)}
    for key, value in tensors.items():
        assert torch.equal(value, _flatten(b)[key]), key


def _flatten(tree, prefix=""):
    if isinstance(tree, dict):
        return {k: v for key, sub in tree.items() for k, v in _flatten(sub, f"{prefix}{key}.").items()}
    return {prefix.rstrip("."): tree}
