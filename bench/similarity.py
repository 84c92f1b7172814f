"""Benchmark of the network-input-similarity library (spec netsimilarity.md §1.3, §2.2, §2.3).

Prints, for an smp U-Net (ResNet-18 encoder by default; 13 bands, 9 classes, 64-px patches as in
spec §5.a):

1. the two-pass soft density time per patch (pass 1 accumulates ``S_train`` over n patches, pass 2
   scores the same n patches) against one forward + backward of the same network per patch
   (training mode, cross-entropy over all pixels, batch 16); goal <= 3x with ``last_block+head``;
   with the tail differentiated on its whole input and on the window around the centre pixel
   (``JacobianConfig.crop_tail``, the default);
2. the Gaussian sketch's speed-up over exact Jacobians at equal n, timing everything needed for
   the full n x n similarity matrix (Jacobians, whitening, Gram), for ``last_block+head`` and,
   optionally, for the much larger ``decoder`` subset.

Times are reported as wall clock and as process CPU time; on a shared machine run with
``--threads 1`` and compare CPU times (waiting for a core does not count there).

Usage: ``python bench/similarity.py [--n 64] [--threads 1] [--n-decoder 8]``.  Not a test: it
prints ratios and asserts nothing.
"""

from __future__ import annotations

import argparse
import time

import segmentation_models_pytorch as smp
import torch

from eolabels.similarity.density import accumulate_reference, score_patches
from eolabels.similarity.jacobian import JacobianConfig, per_sample_jacobians, select_parameters
from eolabels.similarity.kernel import feature_map, similarity_matrix

BANDS, CLASSES, PATCH = 13, 9, 64


class Clock:
    """Wall-clock and process CPU seconds of a ``with`` block."""

    def __enter__(self) -> Clock:
        self.wall, self.cpu = -time.perf_counter(), -time.process_time()
        return self

    def __exit__(self, *exc: object) -> None:
        self.wall += time.perf_counter()
        self.cpu += time.process_time()


def build_network(encoder: str, device: str) -> torch.nn.Module:
    torch.manual_seed(0)
    return smp.Unet(encoder, encoder_weights=None, in_channels=BANDS, classes=CLASSES).to(device)


def forward_backward_per_patch(
    model: torch.nn.Module, patches: torch.Tensor, repeats: int = 3
) -> tuple[float, float]:
    """(wall, cpu) seconds per patch of one training forward + backward, best of ``repeats``."""
    model.train()
    labels = torch.randint(0, CLASSES, (patches.shape[0], PATCH, PATCH), device=patches.device)
    clocks = []
    for _ in range(repeats + 1):
        model.zero_grad()
        with Clock() as clock:
            torch.nn.functional.cross_entropy(model(patches), labels).backward()
        clocks.append(clock)
    model.eval()
    n = patches.shape[0]  # the first call warms up
    return min(c.wall for c in clocks[1:]) / n, min(c.cpu for c in clocks[1:]) / n


def two_pass_per_patch(
    model: torch.nn.Module, patches: torch.Tensor, config: JacobianConfig
) -> tuple[float, float]:
    """(wall, cpu) seconds per patch of pass 1 + pass 2 over the same patches."""
    with Clock() as clock:
        accumulator = accumulate_reference(model, patches, config, batch_size=16)
        score_patches(accumulator, model, patches, config, batch_size=16)
    return clock.wall / patches.shape[0], clock.cpu / patches.shape[0]


def full_similarity_seconds(
    model: torch.nn.Module, patches: torch.Tensor, config: JacobianConfig, batch_size: int
) -> tuple[float, float]:
    """(wall, cpu) seconds for all n x n similarities of ``patches``."""
    with Clock() as clock:
        jac = per_sample_jacobians(model, patches, config, batch_size=batch_size, progress=False)
        similarity_matrix(feature_map(jac)[0])
    return clock.wall, clock.cpu


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=64, help="patches per density pass")
    parser.add_argument(
        "--n-decoder",
        type=int,
        default=0,
        help="patches for the decoder-subset sketch comparison (0: skip; slow, its sketch of "
        "3.2M parameters is redrawn per batch)",
    )
    parser.add_argument("--sketch-dim", type=int, default=1024)
    parser.add_argument("--encoder", default="resnet18", help="smp encoder (CromSS: resnet50)")
    parser.add_argument("--threads", type=int, default=torch.get_num_threads())
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    model = build_network(args.encoder, args.device).eval()
    gen = torch.Generator().manual_seed(1)
    patches = torch.randn(args.n, BANDS, PATCH, PATCH, generator=gen).to(args.device)
    sizes = {k: v.numel() for k, v in model.named_parameters()}
    p = {
        s: sum(sizes[k] for k in select_parameters(model, s))
        for s in ("last_block+head", "decoder")
    }
    print(
        f"smp U-Net {args.encoder}, {BANDS} bands, {CLASSES} classes, {PATCH}-px patches, "
        f"device {args.device}, {args.threads} threads"
    )
    print(
        f"parameters: all {sum(sizes.values())}, last_block+head {p['last_block+head']}, "
        f"decoder {p['decoder']}"
    )

    # forward+backward measured before and after the density passes: the machine may be shared
    fb_before = forward_backward_per_patch(model, patches[:16])
    uncropped = two_pass_per_patch(model, patches, JacobianConfig(crop_tail=False))
    two_pass = two_pass_per_patch(model, patches, JacobianConfig())
    fb_after = forward_backward_per_patch(model, patches[:16])
    fb = [(a + b) / 2 for a, b in zip(fb_before, fb_after)]
    for i, kind in enumerate(("wall", "cpu")):
        for label, seconds in (("whole tail input", uncropped), ("cropped tail input", two_pass)):
            print(
                f"[{kind:4s}] forward+backward {fb[i] * 1e3:7.1f} ms/patch, two-pass soft density "
                f"(n={args.n}, {label}) {seconds[i] * 1e3:7.1f} ms/patch, "
                f"ratio {seconds[i] / fb[i]:5.2f} (goal <= 3)"
            )

    runs = [("last_block+head", args.n, 16)]
    if args.n_decoder > 0:
        runs.append(("decoder", args.n_decoder, args.n_decoder))
    for subset, n, batch in runs:
        exact = full_similarity_seconds(model, patches[:n], JacobianConfig(subset=subset), batch)
        sketch_config = JacobianConfig(subset=subset, sketch_dim=args.sketch_dim)
        sketched = full_similarity_seconds(model, patches[:n], sketch_config, batch)
        for i, kind in enumerate(("wall", "cpu")):
            print(
                f"[{kind:4s}] {subset} n={n}: exact {exact[i]:7.2f} s, sketch m={args.sketch_dim} "
                f"{sketched[i]:7.2f} s, speed-up {exact[i] / sketched[i]:5.2f}x"
            )


if __name__ == "__main__":
    main()
