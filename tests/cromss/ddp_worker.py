"""One torchrun process of tests/cromss/test_ddp.py: pretrain a few steps, save this rank's weights.

    python -m torch.distributed.run --nproc_per_node=2 ddp_worker.py DATASET OUT SETTINGS_JSON
"""

import json
import os
import sys

import torch

from eolabels.cromss.pretraining import pretrain_variant

if __name__ == "__main__":
    dataset, out, settings = sys.argv[1:]
    torch.set_num_threads(1)
    trainer = pretrain_variant(dataset_dir=dataset, out_dir=out, variant="cromss_midF", bands="b9",
                               settings=json.loads(settings), seed=3, device="cpu", progress=False)
    rank = torch.distributed.get_rank()
    torch.save({"state": trainer.model.state_dict(), "history": trainer.history,
                "world": int(os.environ["WORLD_SIZE"])}, f"{out}/rank{rank}.pt")
    torch.distributed.destroy_process_group()
