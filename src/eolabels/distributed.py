"""How a data-parallel training job starts its processes: ``torchrun --standalone`` on one machine, or
``srun`` + torchrun's c10d rendezvous over the nodes and tasks a SLURM allocation holds.

Under SLURM, one torchrun agent runs per node (``srun --ntasks-per-node=1``) and starts the node's
share of the processes, so ``LOCAL_RANK`` numbers the node's GPUs; the rendezvous endpoint is the
allocation's first node, its port derived from the job id so that two jobs sharing a node do not
collide. The SLURM executor plugin strips the ``SLURM_*`` variables (all but the job id) before it
runs a job, so :func:`slurm_environment` asks ``scontrol`` for the allocation when they are missing.
"""

from __future__ import annotations

import json
import logging
import os
import re
import subprocess
import sys
import tempfile
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

log = logging.getLogger(__name__)

RENDEZVOUS_PORT_BASE = 29500


@dataclass(frozen=True)
class Allocation:
    """The part of a SLURM allocation a data-parallel launch needs."""

    job_id: str
    nodes: int
    tasks: int
    master: str
    cpus_per_node: int

    @property
    def per_node(self) -> int:
        return self.tasks // self.nodes


def first_host(nodelist: str) -> str:
    """The first host of a SLURM hostlist: ``gpu[07-09,12],cpu1`` -> ``gpu07``."""
    match = re.match(r"([^,\[]+)(?:\[([^\]]+)\])?", nodelist.strip())
    if not match or not match.group(1):
        raise ValueError(f"not a SLURM hostlist: {nodelist!r}")
    prefix, ranges = match.groups()
    if ranges is None:
        return prefix
    return prefix + re.split(r"[-,]", ranges, maxsplit=1)[0]


def slurm_allocation(env: Mapping[str, str]) -> Allocation | None:
    """The SLURM allocation this process runs in, when it holds more than one task; else ``None``
    (no SLURM, or a one-task job: the processes then start with ``--standalone``)."""
    if "SLURM_JOB_ID" not in env or "SLURM_NTASKS" not in env:
        return None
    tasks = int(env["SLURM_NTASKS"])
    nodes = int(env.get("SLURM_JOB_NUM_NODES") or env.get("SLURM_NNODES") or 1)
    if tasks <= 1:
        return None
    if tasks % nodes:
        raise ValueError(
            f"SLURM job {env['SLURM_JOB_ID']} has {tasks} tasks on {nodes} nodes: a data-parallel job needs "
            "the same number of tasks (processes) on every node"
        )
    cpus = int(env.get("SLURM_CPUS_ON_NODE") or 1)
    return Allocation(job_id=env["SLURM_JOB_ID"], nodes=nodes, tasks=tasks,
                      master=first_host(env["SLURM_JOB_NODELIST"]), cpus_per_node=cpus)


def parse_scontrol_job(text: str) -> dict[str, str]:
    """The ``SLURM_*`` variables of an allocation from ``scontrol show job -o <id>`` output."""
    fields = dict(re.findall(r"(\w+)=(\S*)", text))
    try:
        nodes = int(fields["NumNodes"].split("-")[0])
        return {
            "SLURM_JOB_ID": fields["JobId"],
            "SLURM_NTASKS": fields["NumTasks"],
            "SLURM_JOB_NUM_NODES": str(nodes),
            "SLURM_JOB_NODELIST": fields["NodeList"],
            "SLURM_CPUS_ON_NODE": str(int(fields["NumCPUs"]) // nodes),
        }
    except KeyError as missing:
        raise ValueError(f"scontrol show job gave no {missing} field: {text[:200]!r}") from None


def slurm_environment(env: Mapping[str, str]) -> dict[str, str]:
    """``env`` with the allocation's ``SLURM_*`` variables filled in from ``scontrol`` where only the
    job id survived (the executor plugin's jobs); unchanged outside SLURM or when they are present."""
    if "SLURM_JOB_ID" not in env or "SLURM_NTASKS" in env:
        return dict(env)
    out = subprocess.run(["scontrol", "show", "job", "-o", env["SLURM_JOB_ID"]],
                         capture_output=True, text=True, check=True).stdout
    return {**env, **parse_scontrol_job(out)}


def launch_command(processes: int, entry: Sequence[str], env: Mapping[str, str], python: str) -> list[str]:
    """The command that starts ``processes`` copies of ``entry`` (``-m module args``) as one process group.

    Inside a SLURM allocation of several tasks, ``srun`` starts one torchrun agent per node and they
    meet at the first node (c10d rendezvous); the allocation's task count must equal ``processes``.
    Elsewhere, one ``torchrun --standalone`` with ``processes`` local processes.
    """
    allocation = slurm_allocation(env)
    torchrun = [python, "-m", "torch.distributed.run"]
    if allocation is None:
        return [*torchrun, "--standalone", f"--nproc_per_node={processes}", *entry]
    if allocation.tasks != processes:
        raise ValueError(
            f"processes is {processes} but SLURM job {allocation.job_id} holds {allocation.tasks} tasks: "
            "submit the job with as many tasks as processes (rules ask for them through job_resources)"
        )
    port = RENDEZVOUS_PORT_BASE + int(allocation.job_id) % 1000
    return [
        "srun", f"--nodes={allocation.nodes}", f"--ntasks={allocation.nodes}", "--ntasks-per-node=1",
        f"--cpus-per-task={allocation.cpus_per_node}", "--kill-on-bad-exit=1",
        *torchrun, f"--nnodes={allocation.nodes}", f"--nproc_per_node={allocation.per_node}",
        "--rdzv_backend=c10d", f"--rdzv_endpoint={allocation.master}:{port}", f"--rdzv_id={allocation.job_id}",
        *entry,
    ]


def _stderr_sink() -> Any:
    """The stream child processes should write to: the rule's log when ``eolabels.workflow.logged``
    redirected stderr to it (torchrun's output would otherwise bypass the log), else inherit."""
    try:
        sys.stderr.flush()
        sys.stderr.fileno()
    except (AttributeError, OSError, ValueError):
        return None
    return sys.stderr


def run_processes(processes: int, threads: int, target: str, kwargs: Mapping[str, Any],
                  settings_dir: str | os.PathLike[str]) -> None:
    """Run ``target`` (``"package.module:function"``) with the JSON-able ``kwargs`` in ``processes``
    torchrun processes (``python -m eolabels.launch``), here or over a SLURM allocation's tasks.

    The settings file lies in ``settings_dir`` (beside the outputs: every node must read it) and is
    removed afterwards; the threads are shared out between the processes.
    """
    Path(settings_dir).mkdir(parents=True, exist_ok=True)
    with tempfile.NamedTemporaryFile("w", suffix=".json", dir=settings_dir, delete=False) as f:
        json.dump({"target": target, "kwargs": dict(kwargs)}, f)
    env = slurm_environment(os.environ)
    cmd = launch_command(processes, ["-m", "eolabels.launch", f.name], env, sys.executable)
    env["OMP_NUM_THREADS"] = str(max(1, threads // processes))
    log.info("launching %s", " ".join(cmd))
    try:
        sink = _stderr_sink()
        subprocess.run(cmd, check=True, env=env, stdout=sink, stderr=subprocess.STDOUT if sink else None)
    finally:
        os.unlink(f.name)


def join_process_group(device: str) -> str:
    """Join the torchrun group when started by torchrun (gloo on CPU, nccl on CUDA); returns the
    device this process trains on (its own GPU under torchrun)."""
    import torch
    import torch.distributed as dist

    if "LOCAL_RANK" not in os.environ or dist.is_initialized():
        return device
    use_cuda = device != "cpu" and torch.cuda.is_available()
    dist.init_process_group("nccl" if use_cuda else "gloo")
    if use_cuda:
        local = int(os.environ["LOCAL_RANK"])
        torch.cuda.set_device(local)
        return f"cuda:{local}"
    return "cpu"
