"""CromSS pretraining costs, printed in one run; asserts nothing.

    python bench/cromss.py [--encoder resnet18] [--batch 8] [--size 256] [--device auto]

(a) step ratio: one CromSS step (mid and late fusion; forward, cross-modal selection, smoothed
    targets, consistency, backward, Adam) against two single-modal steps (S1 U-Net + S2 U-Net) on
    the same batch — goal ≤ 1.1×;
(b) loading ratio: samples/s of the pretraining dataset (4-season read, label-smoothing prior,
    joint augmentation; the config's default worker count) against the samples/s a training step
    consumes — goal ≥ 3×;
(c) peak memory per sample of a CromSS training step at the crop size: on CUDA
    ``torch.cuda.max_memory_allocated``; on CPU the growth of the peak RSS (/proc VmHWM, else
    ``resource.getrusage``) between two batch sizes, each measured in a fresh process.
"""

from __future__ import annotations

import argparse
import contextlib
import io
import multiprocessing
import resource
import tempfile
import time
from pathlib import Path
from typing import Callable

import torch
import yaml
from torch.utils.data import DataLoader

from eolabels.cromss.dataset import NoisyLabelPretrainDataset
from eolabels.cromss.losses import cromss_loss, segmentation_loss
from eolabels.cromss.models import build_pretrain_model
from eolabels.cromss.selection import SelectionConfig, cross_modal_selection
from eolabels.cromss.smoothing import smoothed_target
from eolabels.data.synthetic import generate_dataset
from eolabels.device import resolve_device

SCHEMA = Path(__file__).resolve().parents[1] / "config" / "schemas" / "cromss.yaml"
EPOCH = 40  # mid-ramp: r(40) = 0.857, selection active


def median_seconds(fns: dict[str, Callable[[], object]], device: torch.device, repeats: int) -> dict[str, float]:
    """Median wall time of each function after one warm-up call each.

    The functions take turns within every repeat, so a machine shared with other jobs slows
    them alike and the ratios stay meaningful.
    """
    for fn in fns.values():
        fn()
    times: dict[str, list[float]] = {name: [] for name in fns}
    for _ in range(repeats):
        for name, fn in fns.items():
            if device.type == "cuda":
                torch.cuda.synchronize()
            start = time.perf_counter()
            fn()
            if device.type == "cuda":
                torch.cuda.synchronize()
            times[name].append(time.perf_counter() - start)
    return {name: sorted(t)[len(t) // 2] for name, t in times.items()}


def fake_batch(b: int, s: int, device: torch.device) -> dict[str, torch.Tensor]:
    labels = torch.randint(0, 9, (b, s, s), device=device)
    return {"s1": torch.rand(b, 2, s, s, device=device), "s2": torch.rand(b, 13, s, s, device=device),
            "label": labels, "prior": torch.softmax(torch.randn(b, 9, s, s, device=device), dim=1)}


def cromss_step(kind: str, encoder: str, batch: dict[str, torch.Tensor], device: torch.device) -> Callable[[], None]:
    """One full CromSS training step, as PretrainTrainer runs it."""
    model = build_pretrain_model(kind, encoder).to(device).train()
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-4)

    def step() -> None:
        logits_1, logits_2 = model(batch["s1"], batch["s2"])
        target = smoothed_target(batch["label"], batch["prior"], (0.15, 0.05))
        selection = cross_modal_selection(logits_1, logits_2, batch["label"], EPOCH, SelectionConfig())
        optimizer.zero_grad(set_to_none=True)
        cromss_loss(logits_1, logits_2, target, selection).total.backward()
        optimizer.step()

    return step


def single_steps(encoder: str, batch: dict[str, torch.Tensor], device: torch.device) -> Callable[[], None]:
    """A single-modal S1 step followed by a single-modal S2 step (smoothed targets, no selection)."""
    parts = []
    for modality in ("s1", "s2"):
        model = build_pretrain_model("single", encoder, modality=modality).to(device).train()
        parts.append((modality, model, torch.optim.Adam(model.parameters(), lr=1e-4)))

    def step() -> None:
        for modality, model, optimizer in parts:
            target = smoothed_target(batch["label"], batch["prior"], (0.15, 0.05))
            optimizer.zero_grad(set_to_none=True)
            segmentation_loss(model(batch[modality]), target).backward()
            optimizer.step()

    return step


def loading_rate(root: Path, size: int, batch: int, workers: int, n_batches: int) -> float:
    """Samples/s the pretraining dataset delivers through a DataLoader (first batch excluded)."""
    dataset = NoisyLabelPretrainDataset(root, crop_size=size)
    loader = DataLoader(dataset, batch_size=batch, shuffle=True, num_workers=workers, drop_last=True)
    batches = iter(loader)
    next(batches)
    start = time.perf_counter()
    for _ in range(n_batches):
        next(batches)
    return n_batches * batch / (time.perf_counter() - start)


def _peak_rss_child(encoder: str, batch: int, size: int, queue: multiprocessing.Queue) -> None:
    torch.set_num_threads(1)
    step = cromss_step("mid_fusion", encoder, fake_batch(batch, size, torch.device("cpu")), torch.device("cpu"))
    step()
    step()
    queue.put(_peak_rss())


def _peak_rss() -> int:
    """This process's peak resident memory in bytes.

    Linux's VmHWM belongs to the process image, while ``ru_maxrss`` carries over the parent's
    peak across fork + exec (a spawned child of a large parent would report the parent's size).
    """
    status = Path("/proc/self/status")
    if status.is_file():
        for line in status.read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) * 1024
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024  # KiB on Linux


def memory_per_sample(encoder: str, size: int, batch: int, device: torch.device) -> tuple[float, str]:
    """Peak training memory per sample (bytes) and how it was measured."""
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats(device)
        before = torch.cuda.max_memory_allocated(device)
        cromss_step("mid_fusion", encoder, fake_batch(batch, size, device), device)()
        return (torch.cuda.max_memory_allocated(device) - before) / batch, "torch.cuda.max_memory_allocated"
    context = multiprocessing.get_context("spawn")
    peaks = []
    for b in (1, 1 + batch):
        queue = context.Queue()
        child = context.Process(target=_peak_rss_child, args=(encoder, b, size, queue))
        child.start()
        peaks.append(queue.get())
        child.join()
    how = (f"CPU peak RSS (/proc VmHWM, else resource.getrusage) of a fresh process: {peaks[0] / 2**20:.0f} MiB at batch 1, "
           f"{peaks[1] / 2**20:.0f} MiB at batch {1 + batch}; growth / {batch}")
    return (peaks[1] - peaks[0]) / batch, how


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--encoder", default="resnet18")
    parser.add_argument("--batch", type=int, default=8)
    parser.add_argument("--size", type=int, default=256)
    parser.add_argument("--repeats", type=int, default=3)
    default_workers = yaml.safe_load(SCHEMA.read_text())["properties"]["num_workers"]["default"]
    parser.add_argument("--workers", type=int, default=default_workers, help="default: the config's default")
    parser.add_argument("--device", default="auto")
    args = parser.parse_args()
    device = resolve_device(args.device)
    torch.manual_seed(0)
    b, s = args.batch, args.size
    batch = fake_batch(b, s, device)
    print(f"device {device}, torch threads {torch.get_num_threads()}, encoder {args.encoder}, batch {b}, crop {s}")

    steps = median_seconds({"single": single_steps(args.encoder, batch, device),
                            **{kind: cromss_step(kind, args.encoder, batch, device)
                               for kind in ("mid_fusion", "late_fusion")}}, device, args.repeats)
    two_single = steps.pop("single")
    print(f"(a) two single-modal steps            {two_single * 1e3:9.1f} ms")
    for kind, t in steps.items():
        print(f"    CromSS {kind:<12} step         {t * 1e3:9.1f} ms   ratio {t / two_single:5.2f}  (goal <= 1.1)")

    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp) / "noldo"
        with contextlib.redirect_stderr(io.StringIO()):  # the generator's progress bar
            generate_dataset("noldo", root, {"incomplete_fraction": 0.0, "n_locations": 2 * b, "tile_size": s + 8}, seed=0)
        rate = loading_rate(root, s, b, args.workers, n_batches=1)
    consumed = b / steps["mid_fusion"]
    print(f"(b) loading ({args.workers} workers, 4 seasons, prior, augmentation) {rate:7.1f} samples/s; "
          f"training consumes {consumed:7.2f} samples/s (mid fusion); ratio {rate / consumed:6.1f}  (goal >= 3)")

    per_sample, how = memory_per_sample(args.encoder, s, b, device)
    print(f"(c) peak memory per sample at crop {s}: {per_sample / 2**20:8.1f} MiB  [{how}]")


if __name__ == "__main__":
    main()
