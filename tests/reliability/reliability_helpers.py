"""Helpers of the reliability matrix (imported by its tests; conftest.py holds the fixtures)."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path


def leftovers(folder: Path) -> list[str]:
    """Everything under ``folder`` (temporary files included): what a failed step left there."""
    return sorted(str(p.relative_to(folder)) for p in folder.rglob("*")) if folder.exists() else []


def snakemake(workdir: Path, *args: str, check: bool = True) -> subprocess.CompletedProcess:
    """``snakemake --cores 1 <args>`` in ``workdir``, as a user runs it."""
    proc = subprocess.run([sys.executable, "-m", "snakemake", "--cores", "1", *args], cwd=workdir,
                          capture_output=True, text=True, timeout=600)
    if check and proc.returncode != 0:
        raise AssertionError(f"snakemake {' '.join(args)} failed ({proc.returncode}):\n{proc.stderr[-4000:]}")
    return proc


def start_snakemake(workdir: Path, *args: str) -> subprocess.Popen:
    """The same, in the background and in its own process group (to be killed with its jobs)."""
    return subprocess.Popen([sys.executable, "-m", "snakemake", "--cores", "1", *args], cwd=workdir,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)


def wait_for(condition, what: str, timeout: float = 300, proc: subprocess.Popen | None = None) -> None:
    """Poll ``condition()`` every 0.1 s; fail naming ``what`` (or an early exit of ``proc``)."""
    deadline = time.monotonic() + timeout
    while not condition():
        if proc is not None and proc.poll() is not None:
            raise AssertionError(f"snakemake exited ({proc.returncode}) before {what}")
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.1)


def kill_group(proc: subprocess.Popen) -> None:
    """kill -9 of snakemake and every job it started, as when its node dies."""
    os.killpg(proc.pid, signal.SIGKILL)
    proc.wait()
