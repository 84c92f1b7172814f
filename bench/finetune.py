"""Fine-tuning costs, printed in one run; asserts nothing.

    python bench/finetune.py [--framework fpn] [--encoder tu-mobilenetv3_small_050] [--batch 8] [--size 96]

(a) step ratio: one FinetuneTrainer step (CE + Dice, Adam, the trainer's skeleton) against a bare
    PyTorch loop on the same smp model and batch — goal ≤ 1.05×;
(b) loading ratio: training samples/s of the fine-tuning dataset (decoded tiles cached as a row job
    keeps them, crop + flip + rotate; and read from GeoTIFF without the cache) against the samples/s a
    training step consumes — goal ≥ 3×;
(c) the Tables II–VI grid of config/config.yaml: jobs, runs, and the CPU time it took when a
    benchmarks/finetune_row/ folder from a run is present; and a paper-scale GPU estimate.
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import torch
import yaml
from snakemake.utils import validate

from eolabels.cromss.losses import finetune_loss
from eolabels.data.synthetic import generate_dataset
from eolabels.finetune.data import FinetuneDataset
from eolabels.finetune.rows import CachedTiles
from eolabels.finetune.settings import FinetuneConfig
from eolabels.finetune.tasks import task
from eolabels.finetune.trainer import FinetuneTrainer, build_model
from eolabels.finetune.wiring import rows

ROOT = Path(__file__).resolve().parents[1]


def timed(step, repeats: int) -> float:
    for _ in range(2):
        step()
    start = time.perf_counter()
    for _ in range(repeats):
        step()
    return (time.perf_counter() - start) / repeats


def step_ratio(args) -> float:
    config = FinetuneConfig(task="osm", framework=args.framework, encoder_name=args.encoder, in_channels=13,
                            amp=False, batch_size=args.batch)
    image = torch.rand(args.batch, 13, args.size, args.size)
    label = torch.randint(0, 13, (args.batch, args.size, args.size))
    trainer = FinetuneTrainer(config, [], [], device="cpu", progress=False)
    trainer.network.train()

    def ours():
        loss, _ = trainer.training_step({"image": image, "label": label}, 0)
        trainer.optimizer_step(loss)

    torch.manual_seed(0)
    model = build_model(config)
    optimizer = torch.optim.Adam(model.parameters(), lr=5e-4, weight_decay=1e-8)
    model.train()

    def bare():
        loss = finetune_loss(model(image), label, 255)[0]
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()

    t_bare, t_ours = timed(bare, args.repeats), timed(ours, args.repeats)
    print(f"(a) step: bare loop {t_bare * 1e3:.1f} ms, FinetuneTrainer {t_ours * 1e3:.1f} ms, "
          f"ratio {t_ours / t_bare:.3f} (goal <= 1.05)")
    return t_ours


def loading_ratio(args, step_seconds: float) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp) / "osm"
        generate_dataset("osm", root, {"n_train": 8, "n_test": 2, "tile_size": 128}, seed=0)
        dataset = FinetuneDataset(root, task("osm"), "train", "s2", None, augment=True, crop_size=args.size)
        consumed = args.batch / step_seconds
        for name, data in (("cached (row job)", CachedTiles(dataset)), ("GeoTIFF reads", dataset)):
            n = 64
            start = time.perf_counter()
            for i in range(n):
                data[i % len(data)]
            produced = n / (time.perf_counter() - start)
            print(f"(b) loading, {name}: {produced:.0f} samples/s vs {consumed:.1f} consumed, "
                  f"ratio {produced / consumed:.1f}x (goal >= 3; num_workers 0)")


def grid() -> None:
    config = yaml.safe_load((ROOT / "config" / "config.yaml").read_text())
    for section in ("cromss", "finetune"):
        config.setdefault(section, {})
        validate(config[section], str(ROOT / "config" / "schemas" / f"{section}.yaml"), set_default=True)
    f = config["finetune"]
    grid_rows = rows(f, config["cromss"], config["datasets"], denoised_available=True)
    runs = len(grid_rows) * len(f["modes"]) * f["repeats"]
    print(f"(c) default grid: {len(grid_rows)} row jobs, {runs} fine-tuning runs")
    bench_dir = ROOT / "benchmarks" / "finetune_row"
    if bench_dir.is_dir():
        seconds = [float(p.read_text().splitlines()[1].split("\t")[0]) for p in bench_dir.rglob("*.tsv")]
        print(f"    measured in benchmarks/: {len(seconds)} jobs, {sum(seconds) / 60:.1f} CPU-job minutes")
    # paper scale: 3 tasks x (S1 6 + S2 2 band sets x 6 + Table VI 3 + 1) rows x 2 modes x 3 repeats,
    # 50 epochs of ResNet-50 on 986 / 3,574 / 1,372 training tiles
    per_epoch_gpu_s = {"dfc2020": 986 * 0.012, "dw": 3574 * 0.05, "osm": 1372 * 0.05}
    rows_per_task = 6 + 2 * 6 + 4
    hours = sum(50 * s * rows_per_task * 2 * 3 for s in per_epoch_gpu_s.values()) / 3600
    print(f"    paper-scale estimate: {3 * rows_per_task} rows, {3 * rows_per_task * 6} runs, "
          f"~{hours:.0f} A100-hours (assumed 12 ms per 256-px DFC tile, 50 ms per 496-px tile and epoch)")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--framework", default="fpn")
    parser.add_argument("--encoder", default="tu-mobilenetv3_small_050")
    parser.add_argument("--batch", type=int, default=8)
    parser.add_argument("--size", type=int, default=96)
    parser.add_argument("--repeats", type=int, default=10)
    args = parser.parse_args()
    torch.set_num_threads(1)
    loading_ratio(args, step_ratio(args))
    grid()


if __name__ == "__main__":
    main()
