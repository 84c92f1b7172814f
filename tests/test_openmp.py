"""The short OpenMP spin of the no-gradient epitome stages (eolabels.openmp), in fresh interpreters:
libgomp reads GOMP_SPINCOUNT once, when torch loads it."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

from eolabels.openmp import SHORT_SPIN

REPORT = "import os, torch; print(os.environ.get('GOMP_SPINCOUNT'))"


def run(code: str, **env: str) -> subprocess.CompletedProcess:
    environment = {k: v for k, v in os.environ.items() if k != "GOMP_SPINCOUNT"} | env
    return subprocess.run([sys.executable, "-W", "error", "-c", code], capture_output=True, text=True, env=environment)


def test_set_before_torch_loads():
    out = run(f"from eolabels.openmp import use_short_spin; use_short_spin(); {REPORT}")
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == SHORT_SPIN


def test_a_given_spin_count_wins():
    out = run(f"from eolabels.openmp import use_short_spin; use_short_spin(); {REPORT}", GOMP_SPINCOUNT="300000")
    assert out.stdout.strip() == "300000"


def test_after_torch_it_warns_and_changes_nothing():
    out = run("import torch; from eolabels.openmp import use_short_spin; use_short_spin()")
    assert out.returncode != 0 and "no effect" in out.stderr  # -W error: the RuntimeWarning raised


@pytest.mark.parametrize("script", ["embed_labels.py", "predict_hr.py"])
def test_no_gradient_epitome_stages_set_it_before_torch(script):
    from pathlib import Path

    source = (Path(__file__).parents[1] / "workflow_scripts" / script).read_text()
    assert source.index("use_short_spin()") < source.index("from eolabels.epitome")
