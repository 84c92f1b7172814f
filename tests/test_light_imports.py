"""The table and curve jobs import no torch: dozens of them run per DAG, and importing torch, timm and
smp costs each several seconds of a 2-core machine for a few lines of pandas or matplotlib."""

import ast
import subprocess
import sys
from pathlib import Path

import pytest

SCRIPTS = Path(__file__).parents[1] / "workflow_scripts"
LIGHT = ["tabulate_pretraining.py", "plot_pretrain_curves.py", "tabulate_finetune.py", "summarize_results.py"]


@pytest.mark.parametrize("script", LIGHT)
def test_table_and_curve_scripts_do_not_import_torch(script):
    tree = ast.parse((SCRIPTS / script).read_text())
    imports = [ast.unparse(node) for node in tree.body if isinstance(node, (ast.Import, ast.ImportFrom))]
    code = "; ".join(imports + ["import sys", "print('torch' in sys.modules)"])
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "False", f"{script} imports torch through: {imports}"
