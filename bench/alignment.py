"""Benchmark of the alignment chain (spec netsimilarity.md §4, issue 13 "Performance").

Prints, for the CPU-sized scale networks of config/config.yaml (P = 2, bases 16/8/24, input 76 -> 20)
on a synthetic 128-px tile with the 4 default S2 bands:

1. chain inference per tile (scales 4, 2, 1; tiled with overlap 4) against one forward of a plain
   same-padded U-Net (``smallunet``) whose parameter count matches one scale network, on the same
   tile; goal <= 3x for 3 scales;
2. the chain's cost per output pixel against one forward of the scale network on one input window
   per output window (the per-pixel cost of tiled inference at one scale);
3. a training step through the shared training layer (:class:`ScaleTrainer`, hooks, metrics) against
   a bare PyTorch loop over the same network, pairs and loss; goal <= 1.05x.

Times are process CPU seconds (waiting for a core does not count on a shared machine) with
``--threads 1`` by default. Not a test: it prints ratios and asserts nothing.

Usage: ``python bench/alignment.py [--steps 20] [--repeats 3] [--threads 1]``.
"""

from __future__ import annotations

import argparse
import time

import numpy as np
import torch

from eolabels.alignment.chain import align_tile
from eolabels.alignment.channels import BandScaler, MapEncoder
from eolabels.alignment.fields import random_smooth_field
from eolabels.alignment.loss import displacement_loss, level_coefficients
from eolabels.alignment.pairs import PairSampler, pad_tile
from eolabels.alignment.trainer import NetworkSettings, ScaleNetwork, ScaleRun, ScaleTrainer, ScaleTrainSettings, build_network
from eolabels.alignment.warp import backward_warp
from eolabels.models import create_model

BANDS = ("B2", "B3", "B4", "B8")
TILE = 128


def cpu_seconds(fn, repeats: int) -> float:
    """Best process CPU time of ``repeats`` calls."""
    best = float("inf")
    for _ in range(repeats):
        start = time.process_time()
        fn()
        best = min(best, time.process_time() - start)
    return best


def params(model: torch.nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--steps", type=int, default=20)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--threads", type=int, default=1)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    rng = np.random.default_rng(0)
    labels = (np.add.outer(np.arange(TILE) // 16, np.arange(TILE) // 24) % 5).astype(np.uint8)
    misregistered = backward_warp(labels, random_smooth_field(rng, (TILE, TILE), 2.0, 24.0), 255)
    image = rng.uniform(0, 3000, (len(BANDS), TILE, TILE)).astype(np.float32)
    network = NetworkSettings()
    encoder = MapEncoder("osm", 255, "osm_to_osm_groups")
    scaler = BandScaler.fit([image], BANDS, BANDS)
    torch.manual_seed(0)
    nets = [ScaleNetwork(build_network(len(BANDS), encoder.channels, network).eval(), s, scaler, encoder, network, 2.0, 76)
            for s in (4, 2, 1)]
    one = params(nets[0].model)
    width = min(range(4, 64), key=lambda w: abs(params(create_model("smallunet", in_channels=len(BANDS), classes=2,
                                                                     width=w, depth=2)) - one))
    unet = create_model("smallunet", in_channels=len(BANDS), classes=2, width=width, depth=2).eval()
    x = torch.from_numpy(scaler(image, BANDS, "bench"))[None]

    with torch.no_grad():
        chain_s = cpu_seconds(lambda: align_tile(nets, image, BANDS, misregistered, overlap=4), args.repeats)
        unet_s = cpu_seconds(lambda: unet(x), args.repeats)
        window = (torch.zeros(1, len(BANDS), 76, 76), torch.zeros(1, encoder.channels, 76, 76))
        window_s = cpu_seconds(lambda: nets[-1].model(*window), args.repeats)
    print(f"scale network: {one} parameters; U-Net of width {width}: {params(unet)} parameters")
    print(f"1. chain inference per {TILE}-px tile (3 scales) / one U-Net forward: {chain_s / unet_s:.2f}x "
          f"(goal <= 3x)")
    per_pixel_chain = chain_s / TILE**2
    per_pixel_window = window_s / nets[-1].output_size**2
    print(f"2. chain per output pixel / one scale-network forward per output pixel: "
          f"{per_pixel_chain / per_pixel_window:.2f}x")

    tiles = [pad_tile("bench", scaler(image, BANDS, "bench"), labels, 28, 76, 255)]
    train = ScaleTrainSettings(steps=args.steps, steps_per_epoch=args.steps, batch_size=8)
    sampler = PairSampler(tiles, encoder, 76, 20, 2.0, 16.0)

    def layer() -> None:
        ScaleTrainer(ScaleRun(1, train, network), sampler, len(BANDS), seed=0, progress=False).fit()

    def bare() -> None:
        torch.manual_seed(0)
        model = build_network(len(BANDS), encoder.channels, network)
        opt = torch.optim.Adam(model.parameters(), lr=train.learning_rate)
        for step in range(train.steps):
            batch = sampler.batch(np.random.default_rng([0, step]), train.batch_size)
            out = model(batch["image"], batch["map"])
            target = batch["target"] / train.amplitude_px * 0.5
            loss = train.displacement_coefficient * displacement_loss(
                out["displacement"], target, batch["weights"], level_coefficients(step, train.steps, 2))
            opt.zero_grad()
            loss.backward()
            opt.step()

    layer_s, bare_s = cpu_seconds(layer, args.repeats), cpu_seconds(bare, args.repeats)
    print(f"3. training step, shared training layer / bare loop: {layer_s / bare_s:.3f}x (goal <= 1.05x)")


if __name__ == "__main__":
    main()
