"""``python -m eolabels.launch settings.json``: one torchrun process of a data-parallel job.

``settings.json`` names the function to run (``{"target": "package.module:function", "kwargs": {...}}``,
written by :func:`eolabels.distributed.run_processes`); torchrun sets RANK / WORLD_SIZE / LOCAL_RANK,
and the function joins the process group itself (:func:`eolabels.distributed.join_process_group`).
"""

from __future__ import annotations

import importlib
import json
import logging
import sys
from pathlib import Path

import torch.distributed as dist


def main(argv: list[str]) -> None:
    if len(argv) != 1:
        raise SystemExit("usage: python -m eolabels.launch settings.json")
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    settings = json.loads(Path(argv[0]).read_text())
    module, _, name = settings["target"].partition(":")
    function = getattr(importlib.import_module(module), name)
    try:
        function(**settings["kwargs"])
    finally:
        if dist.is_initialized():
            dist.destroy_process_group()


if __name__ == "__main__":
    main(sys.argv[1:])
