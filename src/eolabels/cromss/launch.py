"""``python -m eolabels.cromss.launch settings.json``: one torchrun process of a pretraining run.

``settings.json`` holds the keyword arguments of :func:`eolabels.cromss.pretraining.pretrain_variant`;
torchrun sets RANK / WORLD_SIZE / LOCAL_RANK, and the process group is joined there.
"""

from __future__ import annotations

import json
import logging
import sys
from pathlib import Path

import torch.distributed as dist

from eolabels.cromss.pretraining import pretrain_variant


def main(argv: list[str]) -> None:
    if len(argv) != 1:
        raise SystemExit("usage: python -m eolabels.cromss.launch settings.json")
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    kwargs = json.loads(Path(argv[0]).read_text())
    try:
        pretrain_variant(**kwargs, progress=False)
    finally:
        if dist.is_initialized():
            dist.destroy_process_group()


if __name__ == "__main__":
    main(sys.argv[1:])
