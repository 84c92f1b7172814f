"""Running the workflow as a user does, for the end-to-end tests (imported by tests/test_workflow*.py)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path


def snakemake(workdir: Path, *args: str, check: bool = True) -> subprocess.CompletedProcess:
    """``snakemake --cores 2 <args>`` in ``workdir``; a failure shows the tail of its output."""
    cmd = [sys.executable, "-m", "snakemake", "--cores", "2", *args]
    proc = subprocess.run(cmd, cwd=workdir, capture_output=True, text=True, timeout=1200)
    if check and proc.returncode != 0:
        raise AssertionError(
            f"{' '.join(cmd)} failed ({proc.returncode}):\n{proc.stdout[-3000:]}\n{proc.stderr[-5000:]}"
        )
    return proc
