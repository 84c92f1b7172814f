"""``python -m eolabels.cluster_plan --gpus N [snakemake args]``: what a run asks a cluster for, from the
resources its rules declare (a dry run's ``resources:`` lines): jobs, GPUs and time limit per rule, the
GPU hours those limits add up to, and the wall time on N GPUs if every GPU job ran to its limit.

The figures are limits (``runtime``), not measurements: an upper bound to plan an allocation with.
Dependencies are ignored, so the wall time is that of the GPU jobs packed onto N GPUs (longest first).
"""

from __future__ import annotations

import re
import subprocess
import sys
from collections.abc import Sequence
from dataclasses import dataclass


@dataclass(frozen=True)
class Job:
    rule: str
    gpus: int
    runtime_min: int


def planned_jobs(dry_run: str) -> list[Job]:
    """The jobs of a ``snakemake -n`` output, each with the GPUs and minutes its resources ask for."""
    jobs, rule = [], None
    for line in dry_run.splitlines():
        if match := re.match(r"^(?:local)?rule (\w+):", line):
            rule = None if match.group(1) == "all" else match.group(1)  # the target rule runs nothing
        elif rule and (match := re.match(r"^\s+resources: (.*)$", line)):
            values = dict(re.findall(r"(\w+)=([^,]+)", match.group(1)))
            jobs.append(Job(rule, int(values.get("gpu", 0)), int(values.get("runtime", 0))))
            rule = None
    return jobs


def gpu_wall_hours(jobs: Sequence[Job], gpus: int) -> float:
    """Hours until the GPU jobs, each held for its whole limit, are done on ``gpus`` GPUs (longest first)."""
    free = [0.0] * gpus  # when each GPU is next free, in hours
    for job in sorted((j for j in jobs if j.gpus), key=lambda j: -j.runtime_min):
        if job.gpus > gpus:
            raise ValueError(f"rule {job.rule} asks for {job.gpus} GPUs, more than the {gpus} planned")
        taken = sorted(free)[: job.gpus]  # the earliest-free GPUs; the job starts when all are free
        start = max(taken)
        for t in taken:
            free.remove(t)
        free.extend([start + job.runtime_min / 60] * job.gpus)
    return max(free, default=0.0)


def plan_table(jobs: Sequence[Job], gpus: int) -> str:
    """A Markdown table, one row per rule, with totals and the wall time on ``gpus`` GPUs."""
    rows = ["| rule | jobs | GPUs per job | time limit (h) | GPU hours (limit) |", "|---|---:|---:|---:|---:|"]
    by_rule: dict[str, list[Job]] = {}
    for job in jobs:
        by_rule.setdefault(job.rule, []).append(job)
    total = 0.0
    for rule, group in sorted(by_rule.items(), key=lambda kv: -sum(j.gpus * j.runtime_min for j in kv[1])):
        hours = sum(j.gpus * j.runtime_min for j in group) / 60
        total += hours
        limits = sorted({j.runtime_min / 60 for j in group})
        rows.append(f"| {rule} | {len(group)} | {max(j.gpus for j in group)} | "
                    f"{'/'.join(f'{h:.3g}' for h in limits)} | {hours:g} |")
    rows.append(f"| **total** | {len(jobs)} | | | {total:g} |")
    return "\n".join(rows) + f"\n\nGPU jobs on {gpus} GPUs, each to its limit: {gpu_wall_hours(jobs, gpus):g} h wall time.\n"


def main(argv: list[str]) -> None:
    if len(argv) < 2 or argv[0] != "--gpus":
        raise SystemExit("usage: python -m eolabels.cluster_plan --gpus N [snakemake arguments, e.g. --configfile config/paper.yaml]")
    dry = subprocess.run([sys.executable, "-m", "snakemake", "-n", *argv[2:]], capture_output=True, text=True)
    if dry.returncode != 0:
        raise SystemExit(dry.stderr[-3000:])
    print(plan_table(planned_jobs(dry.stdout + dry.stderr), int(argv[1])), end="")


if __name__ == "__main__":
    main(sys.argv[1:])
