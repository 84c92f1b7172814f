"""Measures the alignment acceptance checks C1-C4 and C6 of spec netsimilarity.md §5.c on the synthetic
world, and C1 on the real S2 scene with its Dynamic World labels warped by a known field (issue 13 item 8).

Prints every measured value next to its threshold; asserts nothing (the thresholds are the spec's,
never loosened here). CPU-heavy: size it with ``--steps`` and ``--rounds``.

Usage: ``python bench/alignment_acceptance.py [--steps 300] [--rounds 3] [--scales 4 2 1] [--real]``.
"""

from __future__ import annotations

import argparse
import json
import tempfile
from pathlib import Path

import numpy as np
import torch

from eolabels.alignment.chain import align_tile
from eolabels.alignment.rounds import AlignSettings, RoundOutputs, align_all, run_round, score, train_chain
from eolabels.alignment.tiles import load_align_dataset, read_maps
from eolabels.alignment.trainer import NetworkSettings, ScaleTrainSettings
from eolabels.alignment.warp import backward_warp
from eolabels.alignment.world import synthetic_osm_world

SHARED_DW = Path(__file__).resolve().parents[1].parent / "shared" / "real" / "s2_18SVG" / "dw_label.tif"


def rounds(root: Path, work: Path, settings: AlignSettings, train: ScaleTrainSettings, network: NetworkSettings,
           count: int, seed: int) -> list[dict]:
    dataset = load_align_dataset(root, settings.label_schema)
    out, maps = [], [t.labels for t in dataset.tiles]
    for r in range(count):
        d = work / f"round{r + 1}"
        metrics = run_round(dataset, maps, r, settings, train, network,
                            RoundOutputs(d / "networks", d / "dataset", d / "fields.npz", d / "metrics.json"), seed,
                            progress=False)
        out.append(metrics)
        maps = read_maps(d / "dataset", dataset.tiles, settings.label_schema)
        s = metrics["scores"]["all"]
        print(f"round {r + 1}: EPE {s['epe_before_px']:.3f} -> {s['epe_after_px']:.3f} px "
              f"(reduction {s['epe_reduction']:.1%}); within 1 px {s.get('within1px_before', np.nan):.3f} -> "
              f"{s.get('within1px_after', np.nan):.3f}; {json.dumps({k: round(v, 3) for k, v in s.items() if k.endswith('contract')})}; "
              f"diagnostics {json.dumps({k: round(v, 4) for k, v in metrics['diagnostics'].items()})}", flush=True)
    return out


def identity_and_translation(root: Path, work: Path, settings: AlignSettings) -> None:
    """C2 with the round-1 networks: registered maps in, and one tile shifted by (2, -1)."""
    from eolabels.alignment.trainer import load_scale_network

    dataset = load_align_dataset(root, settings.label_schema)
    nets = [load_scale_network(work / "round1" / "networks" / f"scale{s}" / "network.pt", scale=s) for s in settings.scales]
    magnitudes, agree_before, agree_after = [], [], []
    for t in dataset.tiles:
        result = align_tile(nets, t.image, dataset.bands, t.truth, settings.overlap)
        magnitudes.append(np.hypot(*result.field).ravel())
        valid = (t.truth != dataset.nodata) & (result.aligned != dataset.nodata)
        agree_after.append((result.aligned[valid] == t.truth[valid]).mean())
        agree_before.append(1.0)
    print(f"C2 identity: median |D^| {np.median(np.concatenate(magnitudes)):.3f} px (<= 0.3); label agreement "
          f"drop {100 * (np.mean(agree_before) - np.mean(agree_after)):.2f} pt (< 0.5)")
    tile = dataset.tiles[0]
    shift = np.stack([np.full(tile.truth.shape, 2.0, np.float32), np.full(tile.truth.shape, -1.0, np.float32)])
    shifted = backward_warp(tile.truth, shift, dataset.nodata)
    result = align_tile(nets, tile.image, dataset.bands, shifted, settings.overlap)
    inner = (slice(8, -8), slice(8, -8))
    mean = result.field[:, inner[0], inner[1]].reshape(2, -1).mean(1)
    print(f"C2 translation (2, -1): recovered ({mean[0]:.2f}, {mean[1]:.2f}); error "
          f"{np.hypot(*(mean - [2.0, -1.0])):.2f} px (<= 0.5)")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--steps", type=int, default=300)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--scales", type=int, nargs="+", default=[4, 2, 1])
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--real", action="store_true", help="also C1 on the real scene (needs ../shared/real)")
    parser.add_argument("--skip-synthetic", action="store_true")
    parser.add_argument("--c6", action="store_true", help="also C6 (one scale, tiny net)")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    work = Path(tempfile.mkdtemp(prefix="align_acceptance_"))
    network = NetworkSettings()
    train = ScaleTrainSettings(steps=args.steps, steps_per_epoch=args.steps)
    if not args.skip_synthetic:
        root = synthetic_osm_world(work / "world", {}, {}, seed=0, test_tiles=3)  # the default world (max 3 px)
        settings = AlignSettings(scales=tuple(args.scales))
        history = rounds(root, work / "synthetic", settings, train, network, args.rounds, 0)
        epe = [history[0]["scores"]["all"]["epe_before_px"]] + [h["scores"]["all"]["epe_after_px"] for h in history]
        print(f"C1: EPE {epe[0]:.3f} -> {epe[1]:.3f} px, reduction {1 - epe[1] / epe[0]:.1%} (>= 50%)")
        print(f"C4: EPE per D_r {[round(e, 3) for e in epe]}; EPE(D1) < EPE(D0): {epe[1] < epe[0]}; "
              f"EPE(D_last) <= EPE(D1) + 0.05: {epe[-1] <= epe[1] + 0.05}")
        identity_and_translation(root, work / "synthetic", settings)
    if args.c6:
        root = synthetic_osm_world(work / "world64", {"tile_size": 64},
                                   {"misregistration_px": 2.0, "misregistration_scale": 16.0}, seed=0, test_tiles=3)
        dataset = load_align_dataset(root, "osm")
        tiny = NetworkSettings(pool_count=2, image_base=8, map_base=4, common_base=8)
        settings = AlignSettings(scales=(1,))
        nets = train_chain(dataset, [t.labels for t in dataset.tiles], settings, train, tiny, work / "c6", 0,
                           progress=False)
        s = score(dataset, align_all(dataset, nets, settings.overlap), settings.scales)["all"]
        print(f"C6: EPE {s['epe_before_px']:.3f} -> {s['epe_after_px']:.3f} px, reduction {s['epe_reduction']:.1%} (>= 30%)")
    if args.real:
        from eolabels.alignment.real import misregistered_scene

        root = work / "dw_misregistered"
        misregistered_scene(SHARED_DW, root, patch_size=128, patches=12, amplitude=2.0, correlation=24.0, seed=0)
        settings = AlignSettings(scales=tuple(args.scales), label_schema="dw", map_groups=None)
        history = rounds(root, work / "real", settings, train, network, 1, 0)
        s = history[0]["scores"]
        for split in ("train", "test", "all"):
            print(f"real C1 ({split}): EPE {s[split]['epe_before_px']:.3f} -> {s[split]['epe_after_px']:.3f} px, "
                  f"reduction {s[split]['epe_reduction']:.1%} (>= 50%); within 1 px {s[split]['within1px_before']:.3f} -> "
                  f"{s[split]['within1px_after']:.3f} (>= 0.80)")
    print(f"work folder: {work}")


if __name__ == "__main__":
    main()
