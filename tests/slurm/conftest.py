"""A one-machine SLURM cluster for the tests, from Debian's packages (.ci/slurm/start.sh), started once per
test session and stopped at its end; the tests skip, saying why, where it cannot run."""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

import pytest

REPO_ROOT = Path(__file__).resolve().parents[2]
SLURM_SCRIPTS = REPO_ROOT / ".ci" / "slurm"
DAEMONS = ("munged", "slurmctld", "slurmd", "sbatch", "srun", "squeue", "scancel")


@pytest.fixture(scope="session")
def slurm_cluster(tmp_path_factory) -> Path:
    """The folder of a running cluster (slurm.conf, jobcomp.log, logs); SLURM_CONF points at it."""
    missing = [tool for tool in DAEMONS if shutil.which(tool) is None]
    if missing:
        pytest.skip(f"SLURM not installed ({', '.join(missing)} missing): "
                    "apt-get install slurmctld slurmd slurm-client munge (.ci/run does)")
    if os.geteuid() != 0:
        pytest.skip("a local SLURM cluster needs root (munge key, daemons, /etc/slurm/slurm.conf)")
    try:
        import snakemake_executor_plugin_slurm  # noqa: F401
    except ImportError:
        pytest.skip("snakemake-executor-plugin-slurm not installed (pip install -e '.[test]')")
    cluster = tmp_path_factory.mktemp("slurm")
    start = subprocess.run([str(SLURM_SCRIPTS / "start.sh"), str(cluster)], capture_output=True, text=True, timeout=120)
    if start.returncode == 4:  # a site's own /etc/slurm/slurm.conf: never replaced
        pytest.skip(start.stderr.strip())
    assert start.returncode == 0, f"start.sh failed:\n{start.stdout}\n{start.stderr}"
    old = os.environ.get("SLURM_CONF")
    os.environ["SLURM_CONF"] = str(cluster / "slurm.conf")
    yield cluster
    subprocess.run([str(SLURM_SCRIPTS / "stop.sh"), str(cluster)], timeout=60)
    if old is None:
        os.environ.pop("SLURM_CONF", None)
    else:
        os.environ["SLURM_CONF"] = old
