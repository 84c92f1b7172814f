"""Freed memory kept for reuse (eolabels.malloc), in fresh interpreters: the page faults of a
64 MiB buffer allocated, touched and freed again and again."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

PAGES = 64 * 2**20 // 4096  # pages of one 64 MiB buffer

# minor page faults of 8 rounds of allocating, writing and freeing 64 MiB (above glibc's own
# largest mmap threshold, 32 MiB)
FAULTS = """
import resource, sys
from eolabels.malloc import keep_freed_memory
if sys.argv[1] == "keep":
    assert keep_freed_memory()
before = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
for _ in range(8):
    block = bytearray(64 * 2**20)
    block[::4096] = b"x" * len(block[::4096])
    del block
print(resource.getrusage(resource.RUSAGE_SELF).ru_minflt - before)
"""


def faults(mode: str) -> int:
    out = subprocess.run([sys.executable, "-c", FAULTS, mode], capture_output=True, text=True, check=True)
    return int(out.stdout)


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="mallopt is glibc's")
def test_freed_memory_is_reused_instead_of_faulted_in_again():
    # by default every round maps, faults in and unmaps its pages; kept, the first round faults them
    # in and the other 7 reuse them (a ratio: huge pages would shrink both counts alike)
    kept, default = faults("keep"), faults("default")
    assert kept < 2 * PAGES and 3 * kept < default


@pytest.mark.parametrize("script", ["embed_labels.py", "predict_hr.py"])
def test_no_gradient_epitome_stages_keep_freed_memory(script):
    source = (Path(__file__).parents[1] / "workflow_scripts" / script).read_text()
    assert "\nkeep_freed_memory()" in source
