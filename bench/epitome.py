"""Benchmarks of the epitome log joint log p(x, s), of self-epitomic LSR and of epitomic LSR inference
against a U-Net: fastest path against the direct formulation, ratios measured in the same run.

    python bench/epitome.py [--repeats 5] [--threads N] [--lsr-samples 20000] [--lsr-side 512]
                            [--unet-side 512] [--topk-samples 20000] [--real-dir ../shared/real] [--quick]
                            [--epitome PATH] [--train-steps 200] [--trained-topk K,f,tail|plain ...]
                            [--skip-paths] [--skip-topk-lsr] [--skip-trained-accuracy]
                            [--skip-accuracy] [--no-keep-freed-memory]

1. log p(x, s) (issue 5 goals: ≥10× at 31×31, ≥2× at 11×11, never slower at 7×7, values equal to
   1e-4 relative).  Shapes are the paper's (spec §2, §3, §7): a 299×299 C=4 epitome with B=256
   patches of 11×11 and B=64 of 31×31, and a 512×512 self-epitome (λ = 100) with B=64 patches of
   7×7.  The 299² epitomes get λ ~ U(1, 100) (a trained epitome's range, spec §3 clamps): a fresh
   epitome has λ = 10 everywhere, which would let ``auto`` take the constant-λ specialisation and
   not measure the general path.  Every path is timed in turn (best of N); the table gives the path
   ``auto`` picks, direct/auto, the best path's ratio, and the largest |fast − direct| / max |direct|.
   Where the FFT path takes its blocked height engine (w = 31), its w-tap engine is timed beside it.
2. Self-epitomic LSR of one 512×512 tile end to end (20,000 7×7 patches, T = w², then 20 EM
   iterations; spec §7): ``method="auto"`` (fast log joint, fused posterior accumulation) against
   ``method="direct"`` (the direct formulation end to end: direct log joint, literal posterior,
   float64 lrmap), goal ≥ 5×, and the largest difference of the two p(ℓ|s) maps.  The tile is a
   smooth random 4-band image with 32-px coarse blocks of NLCD codes, the table is
   ``config/tables/nlcd_to_lsr4_prob.csv``.
3. Inference cost per pixel (goal ≤ 2×; the paper measured 10–18×): reconstruction of one tile
   from a trained 299² epitome and its p(ℓ|s) (spec §5: one sampled position per window,
   non-overlapping w×w windows covering the tile, w = 11 and 31; the epitome's fields built once,
   their one-off cost printed apart), against the forward pass of an smp U-Net with a ResNet-50
   encoder (random weights, 4 input bands, 4 classes) on the same tile.  The epitome is trained
   here (spec §3, ``--train-steps`` iterations of 64 11×11 patches, a few minutes on one thread,
   its loss curve printed) on the first half of the real Chesapeake patches (the synthetic
   world's ``lsr`` tiles when they are absent), or given by ``--epitome`` (a train_epitome
   output); its p(ℓ|s) comes from the exact embedding of the other half's coarse labels and EM
   (the lsr stage's defaults), and the tile is a mosaic of that half.  Self-epitomic LSR
   (benchmark 2) is printed beside them for scale: it fits a model per tile, so it has no
   inference goal.  With top-K posteriors (``--topk-samples`` > 0) the w = 11 reconstruction is
   timed with them, with and without the tail (goal ≤ 1×), and what they drop against the exact
   posterior is printed.
4. Approximate posteriors (:mod:`eolabels.epitome.topk`, the self-epitomic section's default K = 64,
   stride and check) against the fastest exact path, side by side (issue 14): top-K with its tail
   (the default: the subgrid points not refined stand for their blocks) and plain top-K (tail off);
   the accuracy also with K = 256, the embedding's and reconstruction's default.  Self-epitomic
   LSR of a 512² and a 1024² tile (random smooth tiles as in 2., T = w²), time ratio (goal ≥ 10×,
   the approximate time includes its check against the exact posterior); then OA and
   present-class mIoU with the stage's default settings on the real Chesapeake patches
   (``--real-dir``, read in place through the data layer) and on the synthetic world's ``lsr``
   tiles (goal: within 0.5 pt), with the exact mass outside the candidates and the total variation
   of the tail posterior from the exact one.
   4c. The same comparison for epitomic LSR with a trained epitome (as in 3., one per dataset, each
   trained on the first half of its tiles): the second half's coarse labels embedded (T = 1), EM,
   the tiles reconstructed (stride 4) and scored; top-K in the embedding, in the reconstruction and
   in both.  Both steps sample, and one seed's OA moves by about a point between seeds, so each
   variant runs with ``--accuracy-seeds`` seeds and the gap is the mean per-seed difference from
   exact ± its standard error; ``--trained-topk`` adds other settings.
Every path runs with freed memory kept for reuse (:mod:`eolabels.malloc`, as the workflow's epitome
stages run them); ``--no-keep-freed-memory`` measures them with glibc's default instead.
Not a test: nothing is asserted.
"""
# ruff: noqa: E402  (GOMP_SPINCOUNT must be set before torch is imported)

from __future__ import annotations

import argparse
import os
import tempfile
import time
from dataclasses import dataclass, replace
from pathlib import Path

from eolabels.openmp import use_short_spin

# As the workflow's no-gradient epitome stages: a short OpenMP spin (eolabels.openmp), unless
# GOMP_SPINCOUNT is given; GOMP_SPINCOUNT=300000 (libgomp's default) measures without it.
use_short_spin()

import torch
import torch.nn.functional as F

from eolabels.epitome import cost_model
from eolabels.epitome.fields import EpitomeFields
from eolabels.epitome.lsr import coarse_slots, self_epitomic_lsr
from eolabels.epitome.model import GaussianEpitome, log_joint, resolve_method
from eolabels.epitome.reconstruct import reconstruct_tile
from eolabels.epitome.settings import (
    EmbedSettings,
    EMSettings,
    ReconstructSettings,
    SelfEpitomicSettings,
)
from eolabels.epitome.topk import DroppedMass, TopK
from eolabels.epitome.transfer import LabelTransfer
from eolabels.malloc import keep_freed_memory
from eolabels.tables import load_schema, load_transfer_matrix

# the schema's defaults (config/schemas/epitome.yaml) with the switch on (the tail on by default), and
# plain top-K (tail off) for comparison
TOPK_SETTINGS = SelfEpitomicSettings(posterior="topk")
PLAIN_TOPK_SETTINGS = SelfEpitomicSettings(posterior="topk", topk_tail=False)
# the embedding's and reconstruction's K (16 refined blocks), for comparison in 4b
TOPK_256_SETTINGS = SelfEpitomicSettings(posterior="topk", topk_candidates=256)
# the reconstruction's (and embedding's) defaults with the switch on, with and without the tail: 3 and 4c
TRAINED_TOPK_SETTINGS = ReconstructSettings(posterior="topk")
TRAINED_PLAIN_SETTINGS = ReconstructSettings(posterior="topk", topk_tail=False)

SHAPES = [  # (label, epitome side, channels, batch, patch side, self-epitome, goal direct/auto)
    ("N=299 C=4 B=256 w=11", 299, 4, 256, 11, False, 2.0),
    ("N=299 C=4 B=64  w=31", 299, 4, 64, 31, False, 10.0),
    ("N=512 C=4 B=64  w=7 (self-epitome)", 512, 4, 64, 7, True, 1.0),
]


def interleaved_best_times(fns: dict, repeats: int) -> dict:
    """Best-of-``repeats`` seconds per function, the functions run in turn so that load from other
    processes on a shared machine hits all of them alike."""
    for fn in fns.values():
        fn()  # warm-up: allocations, oneDNN / FFT plans
    times = {name: [] for name in fns}
    for _ in range(repeats):
        for name, fn in fns.items():
            start = time.perf_counter()
            fn()
            times[name].append(time.perf_counter() - start)
    return {name: min(values) for name, values in times.items()}


W_TAP = "fft, w-tap height"


def w_tap_fft(fields: EpitomeFields, patches: torch.Tensor) -> torch.Tensor:
    """The FFT path with its w-tap height product where it would take the blocked engine."""
    blocked_from = cost_model.BLOCKED_FFT_MIN_PATCH
    cost_model.BLOCKED_FFT_MIN_PATCH = fields.patch_size + 1
    try:
        return log_joint(fields, patches, method="fft")
    finally:
        cost_model.BLOCKED_FFT_MIN_PATCH = blocked_from


def bench_epitome(side: int, channels: int, self_epitome: bool, generator: torch.Generator) -> GaussianEpitome:
    """The benchmark epitome: a self-epitome of a random image (λ = 100), or a 1-layer epitome with
    the paper's initial means and λ ~ U(1, 100)."""
    if self_epitome:
        return GaussianEpitome.from_image(torch.rand(channels, side, side, generator=generator))
    epitome = GaussianEpitome.initialise(1, channels, side, generator=generator)
    with torch.no_grad():
        epitome.ivar.copy_(1 + 99 * torch.rand(epitome.ivar.shape, generator=generator))
    return epitome


@torch.no_grad()
def run(repeats: int) -> None:
    print(
        f"torch {torch.__version__}, {torch.get_num_threads()} threads, best of {repeats}, "
        f"GOMP_SPINCOUNT={os.environ['GOMP_SPINCOUNT']}"
    )
    print("1. log p(x, s): direct formulation against the fast paths")
    generator = torch.Generator().manual_seed(0)
    for label, side, channels, batch, size, self_epitome, goal in SHAPES:
        epitome = bench_epitome(side, channels, self_epitome, generator)
        patches = torch.rand(batch, channels, size, size, generator=generator)
        fields = epitome.fields(size)
        constant = fields.constant_ivar is not None
        paths = ["direct", "fft"] + (["constant_ivar", "constant_ivar_fft"] if constant else [])
        direct = log_joint(fields, patches, method="direct")
        values = {m: log_joint(fields, patches, method=m) for m in paths}
        if fields.blocked(patches):  # the FFT path's other height engine, for comparison
            values[W_TAP] = w_tap_fft(fields, patches)
            paths.append(W_TAP)
        rel_diff = {m: float((values[m] - direct).abs().max() / direct.abs().max()) for m in paths[1:]}
        # float32 rounding of each path against a float64 evaluation of the direct formulation
        exact = log_joint(
            GaussianEpitome(*(t.double() for t in epitome.parameters())).fields(size), patches.double(), "direct"
        )
        rel_error = {m: float((values[m].double() - exact).abs().max() / exact.abs().max()) for m in paths}
        del values
        best = interleaved_best_times(
            {m: (lambda m=m: w_tap_fft(fields, patches) if m == W_TAP else log_joint(fields, patches, method=m))
             for m in paths},
            repeats,
        )
        chosen = resolve_method(fields)  # what method="auto" runs
        fastest = min(paths, key=best.get)
        ratio = best["direct"] / best[chosen]
        print(f"  {label}  (row DFT length {fields.fft_length})")
        for m in paths:
            diff = f"vs direct {rel_diff[m]:.1e}  " if m in rel_diff else " " * 19
            diff += f"vs float64 {rel_error[m]:.1e}"
            print(f"    {m:18s} {best[m]:8.3f} s  direct/{m} {best['direct'] / best[m]:6.2f}  {diff}")
        print(
            f"    -> auto = {chosen}: direct {best['direct']:.3f} s, auto {best[chosen]:.3f} s, "
            f"ratio {ratio:.2f} (goal >= {goal:g}: {'met' if ratio >= goal else 'MISSED'}); "
            f"fastest = {fastest} ({best['direct'] / best[fastest]:.2f}); "
            f"{batch * side * side / best[chosen] / 1e6:.1f} M (patch, position) pairs/s"
        )


def lsr_tile(side: int, generator: torch.Generator) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """A smooth random C=4 image in [0, 1], 32-px blocks of NLCD codes and the NLCD p(ℓ|c) table."""
    matrix, codes, _ = load_transfer_matrix("nlcd_to_lsr4_prob", row_sums="as_listed")
    noise = torch.rand(1, 4, side // 8, side // 8, generator=generator)
    image = F.interpolate(noise, size=(side, side), mode="bilinear", align_corners=False)[0]
    blocks = torch.tensor(codes)[torch.randint(len(codes), (side // 32, side // 32), generator=generator)]
    coarse = blocks.repeat_interleave(32, 0).repeat_interleave(32, 1)[:side, :side]
    return image, coarse_slots(coarse, codes), torch.from_numpy(matrix)


def time_self_epitomic_lsr(image, slots, table, samples: int, method: str, **options) -> tuple[float, torch.Tensor]:
    start = time.perf_counter()
    result = self_epitomic_lsr(
        image, slots, table, samples=samples, generator=torch.Generator().manual_seed(0), method=method, **options
    )
    return time.perf_counter() - start, result


def run_lsr(samples: int, side: int, breakdown: bool) -> float:
    """Self-epitomic LSR of one tile end to end, ``auto`` against ``direct`` (run in turn, one each);
    returns the ``auto`` seconds per pixel."""
    image, slots, table = lsr_tile(side, torch.Generator().manual_seed(1))
    seconds, results = {}, {}
    variants = {"auto": ("auto", {}), "direct": ("direct", {})}
    if breakdown:  # which part of the gain is the log joint, which the fused accumulation and EM
        variants["direct log joint + fused accumulation + factorised EM"] = ("direct", {"reference_accumulation": False})
    for name, (method, options) in variants.items():
        seconds[name], results[name] = time_self_epitomic_lsr(image, slots, table, samples, method, **options)
    with torch.no_grad():  # as self_epitomic_lsr evaluates it
        chosen = resolve_method(GaussianEpitome.from_image(image).fields(7))
    ratio = seconds["direct"] / seconds["auto"]
    diff = float((results["auto"] - results["direct"]).abs().max())
    print(f"2. self-epitomic LSR {side}x{side}, {samples} patches of 7x7 + 20 EM iterations, end to end")
    print(
        f"    direct {seconds['direct']:.1f} s, auto ({chosen} + fused accumulation) {seconds['auto']:.1f} s, "
        f"ratio {ratio:.2f} (goal >= 5: {'met' if ratio >= 5 else 'MISSED'}); "
        f"max |p(l|s) difference| {diff:.1e}; argmax agreement "
        f"{float((results['auto'].argmax(-1) == results['direct'].argmax(-1)).double().mean()):.6f}"
    )
    if breakdown:
        other = "direct log joint + fused accumulation + factorised EM"
        print(f"    {other}: {seconds[other]:.1f} s (direct/this {seconds['direct'] / seconds[other]:.2f})")
    return seconds["auto"] / side**2


# The all-tile epitome of benchmarks 3 and 4c: the paper's 299² side (spec §9), trained as spec §3 (Adam, tempering,
# location promotion, clamps) on 11×11 patches, batches of 64 (the schema's), a few minutes on one thread;
# embedding and reconstruction with the lsr stage's defaults (config/schemas/epitome.yaml).
TRAINED_SIDE = 299
EMBED_SETTINGS = EmbedSettings(patch_size=11, samples=4096)
RECONSTRUCT_SETTINGS = ReconstructSettings()


@dataclass
class TrainedEpitome:
    """A trained epitome, the tiles it labels (not among those it was trained on, unless given by
    ``--epitome``) and its p(ℓ|s) from their coarse labels (exact embedding, EM, seed 0)."""

    epitome: GaussianEpitome
    origin: str
    tiles: list
    transfer: LabelTransfer
    label_probs: torch.Tensor
    embed_seconds: float


def held_out_split(tiles: list) -> tuple[list, list]:
    """The first half of the tiles trains the epitome; the second half is labelled and scored."""
    half = max(1, len(tiles) // 2)
    return tiles[:half], tiles[half:] or tiles


def loss_curve(losses: list[float], points: int = 5) -> str:
    """Mean training loss over ``points`` equal stretches of the iterations, start to end."""
    stretch = max(1, len(losses) // points)
    means = [sum(losses[i : i + stretch]) / len(losses[i : i + stretch]) for i in range(0, len(losses), stretch)]
    return " -> ".join(f"{value:.1f}" for value in means[:points])


def train_bench_epitome(tiles: list, steps: int, patch_sizes: tuple[int, ...], seed: int = 0) -> tuple[GaussianEpitome, list]:
    """A 1-layer ``TRAINED_SIDE``² epitome trained ``steps`` iterations on the tiles' images, as the
    train_epitome stage trains one."""
    from eolabels.epitome.settings import EpitomeSettings
    from eolabels.epitome.variants import train_all_tile_epitome

    settings = EpitomeSettings(side=TRAINED_SIDE, iterations=steps, batch_size=64, patch_sizes=patch_sizes)
    epitome, history = train_all_tile_epitome(tiles, settings, seed, progress=False)
    return epitome.requires_grad_(False), history.loss


def load_epitome(path: Path) -> tuple[GaussianEpitome, list]:
    """An epitome saved by the workflow's train_epitome rule, and its training losses."""
    saved = torch.load(path, map_location="cpu", weights_only=False)
    state = saved["epitome"]
    epitome = GaussianEpitome(state["mean"], state["ivar"], state["prior_logits"]).requires_grad_(False)
    return epitome, list(saved.get("history", {}).get("loss", []))


def embed_label_probs(
    epitome: GaussianEpitome, tiles: list, transfer: LabelTransfer, settings: EmbedSettings, seed: int
) -> tuple[torch.Tensor, list[DroppedMass]]:
    """p(ℓ|s) (K×L×H×W) from the coarse labels of ``tiles`` embedded into the epitome, then EM (spec §5, §6)."""
    from eolabels.epitome.variants import embed_coarse, epitome_label_probs

    dropped: list[DroppedMass] = []
    lrmap = embed_coarse(epitome, tiles, transfer, settings, seed, dropped)
    return epitome_label_probs(lrmap, transfer, EMSettings(), seed), dropped


def reconstruct_tiles(
    epitome: GaussianEpitome, label_probs: torch.Tensor, tiles: list, settings: ReconstructSettings, seed: int
) -> tuple[list[torch.Tensor], list[DroppedMass]]:
    """Every tile's map by reconstruction with windows of the embedding's patch side (the stage's
    predict_epitome), with the top-K reports."""
    from eolabels.epitome.variants import predict_epitome

    dropped: list[DroppedMass] = []
    maps = predict_epitome(epitome, label_probs, tiles, EMBED_SETTINGS.patch_size, settings, seed, dropped)
    return maps, dropped


def trained_epitomes(
    datasets: dict, epitome_path: Path | None, steps: int, patch_sizes: tuple[int, ...], first_only: bool = False
) -> dict[str, TrainedEpitome]:
    """Per dataset: the epitome trained on its first half of tiles (``--epitome``: the given one, for
    the first dataset, the real patches when present) and p(ℓ|s) of its second half."""
    trained = {}
    for number, (name, (tiles, transfer)) in enumerate(datasets.items()):
        train, held_out = held_out_split(tiles)
        start = time.perf_counter()
        if number == 0 and epitome_path is not None:
            epitome, losses = load_epitome(epitome_path)
            origin = f"{epitome_path} (as given: its training tiles are not known here)"
        else:
            epitome, losses = train_bench_epitome(train, steps, patch_sizes)
            origin = (
                f"trained here on the first {len(train)} tiles' images, {steps} iterations of 64 patches "
                f"{'/'.join(map(str, patch_sizes))} px"
            )
        seconds = time.perf_counter() - start
        start = time.perf_counter()
        label_probs, _ = embed_label_probs(epitome, held_out, transfer, EMBED_SETTINGS, seed=0)
        embed_seconds = time.perf_counter() - start
        side = "x".join(map(str, epitome.shape[2:]))
        print(f"    {name}: {side} epitome {origin}, {seconds:.0f} s")
        if losses:
            print(f"      training loss (tempered -log p(x) per patch, mean of 5 stretches): {loss_curve(losses)}")
        print(f"      labels and scores the other {len(held_out)} tiles (their coarse labels embedded, exact, EM)")
        trained[name] = TrainedEpitome(epitome, origin, held_out, transfer, label_probs, embed_seconds)
        if first_only:
            break
    return trained


def mosaic(images: list[torch.Tensor], side: int) -> torch.Tensor:
    """A side×side tile of the images side by side (in turn, as often as needed)."""
    height, width = images[0].shape[-2:]
    rows, cols = -(-side // height), -(-side // width)
    pick = [images[i % len(images)] for i in range(rows * cols)]
    grid = torch.cat([torch.cat(pick[r * cols : (r + 1) * cols], dim=-1) for r in range(rows)], dim=-2)
    return grid[:, :side, :side].contiguous()


@torch.no_grad()
def run_inference_cost(
    side: int, repeats: int, lsr_seconds_per_pixel: float | None, trained: TrainedEpitome, topk: bool = False
) -> None:
    """Seconds per pixel of epitomic LSR inference against an smp U-Net (ResNet-50) forward pass.

    Inference is the reconstruction of a tile from a trained epitome and its p(ℓ|s) (spec §5); the
    tile is a mosaic of the labelled (held-out) tiles.  The epitome's parameter-only fields are
    built once per trained epitome and reused for every tile (``GaussianEpitome.fields`` caches
    them), so their one-off cost is printed apart from the per-tile cost.  ``topk``: the w = 11
    reconstruction with top-K posteriors too (timed without its dropped-mass check, which runs once
    apart)."""
    import segmentation_models_pytorch as smp

    epitome, label_probs = trained.epitome, trained.label_probs
    image = mosaic([tile.image for tile in trained.tiles], side)
    unet = smp.Unet("resnet50", encoder_weights=None, in_channels=image.shape[0], classes=4).eval()
    batch = image.unsqueeze(0)
    costs = {"U-Net ResNet-50 forward": lambda: unet(batch)}
    one_off = {}
    for size in (11, 31):
        start = time.perf_counter()
        fields = EpitomeFields(*epitome.parameters(), size)
        log_joint(fields, torch.rand(1, image.shape[0], size, size))  # builds the fields
        one_off[size] = time.perf_counter() - start
        costs[f"epitome reconstruction w={size}"] = lambda size=size: reconstruct_tile(
            epitome, image, label_probs, size, stride=size, samples=1, generator=torch.Generator().manual_seed(0)
        )
    dropped: list[DroppedMass] = []
    if topk:
        approximation = TRAINED_TOPK_SETTINGS.topk()
        for name, settings in (("top-K", TRAINED_TOPK_SETTINGS), ("plain top-K", TRAINED_PLAIN_SETTINGS)):
            costs[f"epitome reconstruction w=11 {name}"] = lambda settings=settings: reconstruct_tile(
                epitome, image, label_probs, 11, stride=11, samples=1, generator=torch.Generator().manual_seed(0),
                topk=replace(settings.topk(), check_patches=0),
            )
        reconstruct_tile(  # once with the check, for the dropped-mass report
            epitome, image, label_probs, 11, stride=11, samples=1, topk=approximation, dropped=dropped
        )
    best = interleaved_best_times(costs, repeats)
    unet_pp = best["U-Net ResNet-50 forward"] / side**2
    print(f"3. inference cost per pixel, {side}x{side} tile (a mosaic of the labelled tiles), best of {repeats}")
    for name, seconds in best.items():
        ratio = seconds / side**2 / unet_pp
        limit = 1 if name.endswith("top-K") else 2
        goal = "" if name.startswith("U-Net") else f"  goal <= {limit}: {'met' if ratio <= limit else 'MISSED'}"
        print(f"    {name:40s} {seconds:7.3f} s  {seconds / side**2 * 1e6:8.2f} us/px  {ratio:6.2f}x U-Net{goal}")
    for size, seconds in one_off.items():
        print(f"    (once per trained epitome: its w={size} fields, {seconds:.3f} s)")
    for report in dropped:  # plain top-K (same candidates) is off the exact posterior by the dropped mass
        print(f"    (top-K reconstruction w=11, T=1, {approximation}, trained epitome: {report}; plain top-K, the "
              "same candidates, is within total variation of the exact posterior the dropped mass)")
    if lsr_seconds_per_pixel is not None:
        ratio = lsr_seconds_per_pixel / unet_pp
        print(
            f"    {'self-epitomic LSR (from 2.)':40s} {'':9s} {lsr_seconds_per_pixel * 1e6:8.2f} us/px  "
            f"{ratio:6.2f}x U-Net  (no goal: it fits its own model on the tile, it is not inference)"
        )


def topk_lsr(image, slots, table, samples: int, settings: SelfEpitomicSettings) -> tuple[float, torch.Tensor, list]:
    dropped: list[DroppedMass] = []
    start = time.perf_counter()
    result = self_epitomic_lsr(
        image, slots, table, samples=samples, generator=torch.Generator().manual_seed(0),
        topk=settings.topk(), dropped=dropped,
    )
    return time.perf_counter() - start, result, dropped


def run_topk_speed(samples: int, sides: list[int]) -> None:
    """Self-epitomic LSR with exact (fastest path) and approximate posteriors, in turn, per tile side."""
    print(f"4a. self-epitomic LSR, exact ('auto') against top-K + tail ({TOPK_SETTINGS.topk()}) and plain "
          f"top-K (tail off), {samples} patches of 7x7, T = 49")
    for side in sides:
        image, slots, table = lsr_tile(side, torch.Generator().manual_seed(1))
        exact_seconds, exact = time_self_epitomic_lsr(image, slots, table, samples, "auto")
        print(f"    {side}x{side}: exact {exact_seconds:.1f} s")
        for name, settings in (("top-K + tail", TOPK_SETTINGS), ("plain top-K", PLAIN_TOPK_SETTINGS)):
            seconds, approximate, dropped = topk_lsr(image, slots, table, samples, settings)
            ratio = exact_seconds / seconds
            agreement = float((approximate.argmax(-1) == exact.argmax(-1)).double().mean())
            print(
                f"      {name:13s} {seconds:6.1f} s, ratio {ratio:5.2f} "
                f"(goal >= 10: {'met' if ratio >= 10 else 'MISSED'}); "
                f"argmax agreement with exact {agreement:.4f}; {dropped[0]}"
            )


def lsr_datasets(real_dir: Path | None, workdir: Path) -> dict:
    """(tiles, transfer) of the real Chesapeake patches (when present) and of the synthetic world's
    lsr tiles, both read through the data layer as the stage reads them."""
    from eolabels.data.local import import_chesapeake
    from eolabels.data.synthetic import generate_dataset
    from eolabels.epitome.stages import load_tiles, load_transfer

    table = {"kind": "file", "name": "nlcd_to_lsr4_prob"}
    datasets = {}
    patches = real_dir / "chesapeake_wv" / "patches" if real_dir is not None else None
    if patches is not None and patches.is_dir():
        import_chesapeake(patches, workdir / "chesapeake")
        tiles = load_tiles(workdir / "chesapeake", {"image_scale": 255})
        datasets["real Chesapeake WV (8 x 256^2)"] = (tiles, load_transfer(workdir / "chesapeake", table, tiles))
    else:
        print(f"    (no real Chesapeake patches under {real_dir}: skipped)")
    generate_dataset("lsr", workdir / "synthetic", {"n_tiles": 4, "tile_size": 240}, seed=0)
    tiles = load_tiles(workdir / "synthetic", {"image_scale": 255})
    datasets["synthetic world (4 x 240^2)"] = (tiles, load_transfer(workdir / "synthetic", table, tiles))
    return datasets


def run_topk_accuracy(real_dir: Path | None, samples: int | None = None) -> None:
    """OA and present-class mIoU of self-epitomic LSR, exact against top-K with and without the tail,
    with the stage's defaults (``samples``: patches per tile instead of the default)."""
    from eolabels.epitome.evaluate import POOLED, score_variants
    from eolabels.epitome.variants import predict_self_epitomic

    exact_settings, em = SelfEpitomicSettings(), EMSettings()
    if samples:
        exact_settings = replace(exact_settings, samples=samples)
    variants = {
        "exact": exact_settings,
        "top-K + tail": replace(TOPK_SETTINGS, samples=exact_settings.samples),
        "tail, K = 256": replace(TOPK_256_SETTINGS, samples=exact_settings.samples),
        "plain top-K": replace(PLAIN_TOPK_SETTINGS, samples=exact_settings.samples),
    }
    print(f"4b. self-epitomic LSR accuracy, exact against top-K + tail (K = {TOPK_SETTINGS.topk_candidates} and 256) "
          f"and plain top-K "
          f"({exact_settings.samples} patches per tile, seed 0)")
    with tempfile.TemporaryDirectory() as workdir:
        for name, (tiles, transfer) in lsr_datasets(real_dir, Path(workdir)).items():
            classes = load_schema(transfer.fine_schema).names
            maps, seconds = {}, {}
            for variant, settings in variants.items():
                start = time.perf_counter()
                maps[variant] = predict_self_epitomic(tiles, transfer, settings, em, seed=0)
                seconds[variant] = time.perf_counter() - start
            scores = score_variants(tiles, maps, classes, per_tile=False).set_index("variant")
            scores = scores[scores["tile"] == POOLED]
            print(f"    {name}")
            for variant in variants:
                line = f"      {variant:13s} {seconds[variant]:6.1f} s"
                if variant != "exact":
                    line += f" (exact/this {seconds['exact'] / seconds[variant]:5.2f})"
                else:
                    line += " " * 19
                for metric in ("OA", "mIoU_present"):
                    value = float(scores.loc[variant, metric])
                    line += f"  {metric} {value:.4f}"
                    if variant != "exact":
                        gap = 100 * (value - float(scores.loc["exact", metric]))
                        line += f" ({gap:+.2f} pt, {'met' if abs(gap) <= 0.5 else 'MISSED'})"
                print(line)
            for variant in ("top-K + tail", "tail, K = 256", "plain top-K"):
                reports = []
                for tile in tiles:  # what the approximation drops per tile (the stage logs the same report)
                    dropped: list[DroppedMass] = []
                    self_epitomic_lsr(
                        tile.image, transfer.slots(tile.coarse, tile.name), transfer.table, samples=64,
                        topk=variants[variant].topk(), dropped=dropped,
                    )
                    reports += dropped
                line = f"      {variant}: exact mass outside the candidates, per-tile means " + " ".join(
                    f"{r.mean:.3f}" for r in reports
                )
                if reports and reports[0].variation_mean is not None:
                    line += "; total variation from the exact posterior, per-tile means " + " ".join(
                        f"{r.variation_mean:.3f}" for r in reports
                    )
                print(line)


def parse_topk(text: str) -> tuple[str, TopK]:
    """``K,f,tail`` or ``K,f,plain`` (e.g. ``1024,4,plain``): a top-K setting for 4c."""
    try:
        candidates, stride, kind = text.split(",")
        if kind not in ("tail", "plain"):
            raise ValueError(kind)
        topk = TopK(int(candidates), int(stride), TRAINED_TOPK_SETTINGS.topk_check_patches, kind == "tail")
    except ValueError as err:
        raise argparse.ArgumentTypeError(f"want K,f,tail or K,f,plain (e.g. 1024,4,plain), got {text!r}: {err}")
    return f"{'top-K + tail' if topk.tail else 'plain top-K'} K={topk.candidates} f={topk.coarse_stride}", topk


def posterior_settings(settings, topk: TopK | None):
    """Embed or reconstruct settings with the posterior ``topk`` asks for (None: exact)."""
    if topk is None:
        return replace(settings, posterior="exact")
    return replace(
        settings, posterior="topk", topk_candidates=topk.candidates, topk_coarse_stride=topk.coarse_stride,
        topk_check_patches=topk.check_patches, topk_tail=topk.tail,
    )


def run_trained_accuracy(trained: dict[str, TrainedEpitome], extra: list[tuple[str, TopK]], seeds: int) -> None:
    """OA and present-class mIoU of epitomic LSR with a trained epitome (embedding of the coarse labels,
    EM, reconstruction; the lsr stage's defaults), exact against top-K with and without the tail in
    the embedding, in the reconstruction and in both; ``extra``: other top-K settings, in both.

    Embedding and reconstruction sample (patches, positions), and one seed's OA moves by about a
    point between seeds, so every variant runs with ``seeds`` seeds: the gap is the mean of the
    per-seed differences from exact (same seed), ± its standard error."""
    from eolabels.epitome.evaluate import POOLED, score_variants

    tail, plain = TRAINED_TOPK_SETTINGS.topk(), TRAINED_PLAIN_SETTINGS.topk()
    variants = {  # name: (embedding posterior, reconstruction posterior)
        "exact": (None, None),
        "tail: embedding": (tail, None),
        "tail: reconstruction": (None, tail),
        "tail: both": (tail, tail),
        "plain: embedding": (plain, None),
        "plain: reconstruction": (None, plain),
        "plain: both": (plain, plain),
        "tail: embedding, plain: reconstruction": (tail, plain),
    }
    variants.update({f"{name}: both": (topk, topk) for name, topk in extra})
    print(
        f"4c. epitomic LSR with the trained epitome, exact against top-K + tail ({tail}) and plain top-K "
        f"in the embedding ({EMBED_SETTINGS.samples} patches of {EMBED_SETTINGS.patch_size}x"
        f"{EMBED_SETTINGS.patch_size}, T = 1), the reconstruction (stride {RECONSTRUCT_SETTINGS.stride}, "
        f"{RECONSTRUCT_SETTINGS.samples} draw per window) or both; seeds 0..{seeds - 1}; seconds (mean over "
        "the seeds): embedding + reconstruction, top-K with its check"
    )
    for name, bench in trained.items():
        classes = load_schema(bench.transfer.fine_schema).names
        embeddings: dict = {(None, 0): (bench.embed_seconds, bench.label_probs, [])}  # built with the epitome
        seconds = {variant: [0.0, 0.0] for variant in variants}
        values = {variant: {"OA": [], "mIoU_present": []} for variant in variants}
        reports: dict = {}
        for seed in range(seeds):
            maps = {}
            for variant, (embed_topk, reconstruct_topk) in variants.items():
                if (embed_topk, seed) not in embeddings:
                    start = time.perf_counter()
                    probs, dropped = embed_label_probs(
                        bench.epitome, bench.tiles, bench.transfer, posterior_settings(EMBED_SETTINGS, embed_topk), seed
                    )
                    embeddings[embed_topk, seed] = (time.perf_counter() - start, probs, dropped)
                embed_seconds, probs, embed_dropped = embeddings[embed_topk, seed]
                start = time.perf_counter()
                maps[variant], dropped = reconstruct_tiles(
                    bench.epitome, probs, bench.tiles, posterior_settings(RECONSTRUCT_SETTINGS, reconstruct_topk), seed
                )
                seconds[variant][0] += embed_seconds / seeds
                seconds[variant][1] += (time.perf_counter() - start) / seeds
                if seed == 0:
                    reports[variant] = (embed_dropped, dropped)
            scores = score_variants(bench.tiles, maps, classes, per_tile=False).set_index("variant")
            scores = scores[scores["tile"] == POOLED]
            for variant in variants:
                for metric in values[variant]:
                    values[variant][metric].append(float(scores.loc[variant, metric]))
        print(f"    {name}, its second {len(bench.tiles)} tiles")
        exact_embed, exact_reconstruct = seconds["exact"]
        for variant, (embed_topk, reconstruct_topk) in variants.items():
            embed_seconds, reconstruct_seconds = seconds[variant]
            speed = []
            if embed_topk is not None:
                speed.append(f"embedding {exact_embed / embed_seconds:4.1f}x")
            if reconstruct_topk is not None:
                speed.append(f"reconstruction {exact_reconstruct / reconstruct_seconds:4.1f}x")
            line = f"      {variant:38s} {embed_seconds:5.1f} + {reconstruct_seconds:5.1f} s {', '.join(speed):36s}"
            for metric, found in values[variant].items():
                mean = sum(found) / seeds
                line += f"  {metric} {mean:.4f}"
                if variant == "exact":
                    spread = 100 * (max(found) - min(found))
                    line += f" (range over the seeds {spread:.2f} pt)"
                    continue
                gaps = [100 * (a - b) for a, b in zip(found, values["exact"][metric])]
                gap = sum(gaps) / seeds
                error = (sum((g - gap) ** 2 for g in gaps) / (seeds - 1) / seeds) ** 0.5 if seeds > 1 else float("nan")
                line += f" ({gap:+.2f} ± {error:.2f} pt, {'met' if abs(gap) <= 0.5 else 'MISSED'})"
            print(line)
        printed = set()
        for variant, (embed_topk, reconstruct_topk) in variants.items():
            for what, topk, found in (
                ("embedding", embed_topk, reports[variant][0]), ("reconstruction", reconstruct_topk, reports[variant][1])
            ):
                # the candidates, so the dropped mass, do not depend on the tail: printed once (with the tail's variation)
                if topk is None or (what, topk.candidates, topk.coarse_stride) in printed:
                    continue
                printed.add((what, topk.candidates, topk.coarse_stride))
                line = f"      {what}, K={topk.candidates} f={topk.coarse_stride}: exact mass outside the candidates, mean "
                line += " ".join(f"{r.mean:.3f}" for r in found)
                if found and found[0].variation_mean is not None:
                    line += "; tail's total variation from the exact posterior, mean " + " ".join(
                        f"{r.variation_mean:.3f}" for r in found
                    )
                print(line + (" (per tile, seed 0)" if what == "reconstruction" else " (over the tiles, seed 0)"))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--threads", type=int, default=None)
    parser.add_argument("--lsr-samples", type=int, default=20000, help="patches of the LSR benchmark (0 = skip it)")
    parser.add_argument("--lsr-side", type=int, default=512)
    parser.add_argument(
        "--lsr-breakdown", action="store_true", help="also time the direct log joint with the fused accumulation and EM"
    )
    parser.add_argument("--unet-side", type=int, default=512, help="tile side of benchmark 3 (0 = skip it)")
    parser.add_argument(
        "--topk-samples", type=int, default=20000, help="patches of the top-K LSR timing, 4a (0 = skip all of 4)"
    )
    parser.add_argument("--topk-sides", type=int, nargs="+", default=[512, 1024])
    parser.add_argument("--accuracy-samples", type=int, default=None, help="patches per tile in 4b (default: the stage's)")
    parser.add_argument(
        "--real-dir", type=Path, default=Path(__file__).resolve().parents[1] / ".." / "shared" / "real",
        help="the shared real data (chesapeake_wv/patches), read in place",
    )
    parser.add_argument(
        "--epitome", type=Path, default=None,
        help="an epitome saved by the workflow's train_epitome rule, for 3 and 4c on the real patches (no training)",
    )
    parser.add_argument("--train-steps", type=int, default=200, help="training iterations of the bench's epitomes")
    parser.add_argument("--train-patch-sizes", type=int, nargs="+", default=[11])
    parser.add_argument(
        "--trained-topk", type=parse_topk, nargs="*", default=[], metavar="K,f,tail|plain",
        help="other top-K settings for 4c (e.g. 1024,4,plain 256,2,tail)",
    )
    parser.add_argument("--accuracy-seeds", type=int, default=3, help="seeds per variant in 4c")
    parser.add_argument("--skip-topk-lsr", action="store_true", help="skip 4a and 4b (self-epitomic top-K)")
    parser.add_argument("--skip-trained-accuracy", action="store_true", help="skip 4c")
    parser.add_argument("--skip-paths", action="store_true", help="skip benchmarks 1 and 2")
    parser.add_argument("--skip-accuracy", action="store_true", help="skip 4b (the top-K accuracy)")
    parser.add_argument("--quick", action="store_true", help="2 repeats, 2,000 LSR patches, 256-px U-Net tile")
    parser.add_argument(
        "--no-keep-freed-memory", action="store_true", help="glibc's default: large blocks mapped and unmapped per batch"
    )
    args = parser.parse_args()
    kept = not args.no_keep_freed_memory and keep_freed_memory()
    print(f"freed memory kept for reuse (eolabels.malloc): {kept}")
    if args.quick:
        args.repeats, args.lsr_samples, args.unet_side = 2, min(args.lsr_samples, 2000), min(args.unet_side, 256)
        args.topk_samples, args.topk_sides, args.accuracy_samples = min(args.topk_samples, 2000), [256], 512
        args.train_steps, args.accuracy_seeds = min(args.train_steps, 50), min(args.accuracy_seeds, 2)
    if args.threads:
        torch.set_num_threads(args.threads)
    lsr_per_pixel = None
    if not args.skip_paths:
        run(args.repeats)
        lsr_per_pixel = run_lsr(args.lsr_samples, args.lsr_side, args.lsr_breakdown) if args.lsr_samples else None
    accuracy = args.topk_samples and not args.skip_trained_accuracy
    with tempfile.TemporaryDirectory() as workdir:
        trained = {}
        if args.unet_side or accuracy:
            print(f"trained epitomes of 3. and 4c ({torch.get_num_threads()} threads):")
            trained = trained_epitomes(
                lsr_datasets(args.real_dir, Path(workdir)), args.epitome, args.train_steps,
                tuple(args.train_patch_sizes), first_only=not accuracy,
            )
        if args.unet_side:
            first = next(iter(trained.values()))
            run_inference_cost(args.unet_side, args.repeats, lsr_per_pixel, first, topk=args.topk_samples > 0)
        if args.topk_samples and not args.skip_topk_lsr:
            run_topk_speed(args.topk_samples, args.topk_sides)
            if not args.skip_accuracy:
                run_topk_accuracy(args.real_dir, args.accuracy_samples)
        if accuracy:
            run_trained_accuracy(trained, args.trained_topk, args.accuracy_seeds)


if __name__ == "__main__":
    main()
