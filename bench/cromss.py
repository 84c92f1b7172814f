"""Cost of CromSS's extras relative to plain multi-modal training; prints ratios, asserts nothing.

    python bench/cromss.py [--encoder resnet18] [--batch 8] [--size 128] [--device auto]

* selection / step: cross-modal sample selection (Eqs. 8–12) against a forward+backward step;
* CromSS loss / plain loss: selection-weighted, smoothed loss against the unweighted hard-label one;
* mid / late fusion: one step of the shared-decoder model against two independent U-Nets.
"""

from __future__ import annotations

import argparse
import time
from typing import Callable

import torch

from eolabels.cromss.losses import cromss_loss
from eolabels.cromss.models import build_pretrain_model
from eolabels.cromss.selection import SelectionConfig, cross_modal_selection
from eolabels.cromss.smoothing import smoothed_target
from eolabels.cromss.train import resolve_device


def seconds(fn: Callable[[], object], device: torch.device, repeats: int) -> float:
    """Median wall time of ``fn`` after one warm-up call."""
    fn()
    times = []
    for _ in range(repeats):
        if device.type == "cuda":
            torch.cuda.synchronize()
        start = time.perf_counter()
        fn()
        if device.type == "cuda":
            torch.cuda.synchronize()
        times.append(time.perf_counter() - start)
    return sorted(times)[len(times) // 2]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--encoder", default="resnet18")
    parser.add_argument("--batch", type=int, default=8)
    parser.add_argument("--size", type=int, default=128)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--device", default="auto")
    args = parser.parse_args()
    device = resolve_device(args.device)
    torch.manual_seed(0)
    b, s = args.batch, args.size
    x1 = torch.rand(b, 2, s, s, device=device)
    x2 = torch.rand(b, 13, s, s, device=device)
    labels = torch.randint(0, 9, (b, s, s), device=device)
    prior = torch.softmax(torch.randn(b, 9, s, s, device=device), dim=1)
    target = smoothed_target(labels, prior, [0.15, 0.05])

    steps = {}
    for kind in ("mid_fusion", "late_fusion"):
        model = build_pretrain_model(kind, args.encoder).to(device).train()

        def step(model=model) -> None:
            out1, out2 = model(x1, x2)
            cromss_loss(out1, out2, labels).total.backward()

        steps[kind] = seconds(step, device, args.repeats)

    logits1 = torch.randn(b, 9, s, s, device=device, requires_grad=True)
    logits2 = torch.randn(b, 9, s, s, device=device, requires_grad=True)
    selection = seconds(
        lambda: cross_modal_selection(logits1, logits2, labels, 40, SelectionConfig()), device, args.repeats
    )

    def cromss() -> None:
        sel = cross_modal_selection(logits1, logits2, labels, 40, SelectionConfig())
        cromss_loss(logits1, logits2, target, sel).total.backward()

    plain = seconds(lambda: cromss_loss(logits1, logits2, labels).total.backward(), device, args.repeats)
    full = seconds(cromss, device, args.repeats)

    print(f"device {device}, encoder {args.encoder}, batch {b}, {s}×{s} pixels")
    print(f"mid-fusion step      {steps['mid_fusion'] * 1e3:8.1f} ms")
    print(f"selection / step     {selection / steps['mid_fusion']:8.3f}")
    print(f"CromSS / plain loss  {full / plain:8.2f}")
    print(f"mid / late fusion    {steps['mid_fusion'] / steps['late_fusion']:8.2f}")


if __name__ == "__main__":
    main()
