"""How fine-tuning changes a network: the analyses behind CromSS Figs. 8 c,d, 12 and 13 (spec §10).

The authors' code has none of these, so the spec's suggested approach is followed:

* Fig. 12: per layer, a discrete KL between the histograms of the weights before and after
  fine-tuning (100 equal bins over the joint range, ε-smoothed) — :func:`weight_kl`;
* Fig. 8 c,d: per BatchNorm layer, the same histogram KL on the running mean or running variance
  vector (:func:`bn_histogram_kl`), or the per-channel Gaussian KL averaged over channels
  (:func:`bn_gaussian_kl`, an assumption of the spec); encoder and decoder apart (:func:`group_layers`);
* Fig. 13: the cumulative explained variance of a PCA over the pixels of each encoder stage's
  features (:func:`stage_explained_variance`).

Every KL here is D_KL(P‖Q) with P the state *before* (pretrained / at the start of fine-tuning) and Q
the state *after* fine-tuning: the reference distribution is the one the encoder was pretrained to,
and the KL measures how much of it fine-tuning moved away — mass of the pretrained distribution that
the fine-tuned one no longer covers costs most. Swap the arguments for the other direction.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import Literal

import numpy as np
import torch
from torch import Tensor, nn

HISTOGRAM_BINS = 100
"""Bins of the discrete KL ("discrete KL, 100 even bins", paper Fig. 12)."""

HISTOGRAM_EPS = 1e-8
"""ε added to every bin probability before renormalising, so an empty bin of Q gives a finite KL.

An assumption (the paper gives no value): a bin that P fills with mass p and Q leaves empty then
contributes about p·log(p/ε), i.e. at most ≈ 18.4·p nats.
"""

BN_VARIANCE_EPS = 1e-5
"""Floor added to running variances in the Gaussian KL: BatchNorm2d's own ``eps``, the value the
layer itself adds to the variance when it normalises (a dead channel has running_var 0)."""

BN_STATISTICS: tuple[str, ...] = ("running_mean", "running_var")

StateLike = nn.Module | Mapping[str, Tensor]


def _state(x: StateLike) -> Mapping[str, Tensor]:
    return x.state_dict() if isinstance(x, nn.Module) else x


def _values(tensor: Tensor | np.ndarray, name: str) -> np.ndarray:
    """Flattened float64 copy; non-finite values fail naming the tensor."""
    if isinstance(tensor, Tensor):
        tensor = tensor.detach().to("cpu", torch.float64).numpy()
    values = np.asarray(tensor, dtype=np.float64).ravel()
    if values.size == 0:
        raise ValueError(f"{name}: empty tensor, no histogram possible")
    if not np.all(np.isfinite(values)):
        raise ValueError(f"{name}: {int(np.sum(~np.isfinite(values)))} non-finite values (NaN or inf)")
    return values


def smoothed_histogram(values: np.ndarray, bins: int, value_range: tuple[float, float], eps: float) -> np.ndarray:
    """Bin probabilities of ``values`` over ``bins`` equal bins of ``value_range``: (count/n + ε),
    renormalised to sum to 1. The last bin is closed on the right (numpy's convention)."""
    counts, _ = np.histogram(values, bins=bins, range=value_range)
    p = counts / values.size + eps
    return p / p.sum()


def histogram_kl(before: Tensor | np.ndarray, after: Tensor | np.ndarray, bins: int = HISTOGRAM_BINS,
                 eps: float = HISTOGRAM_EPS, name: str = "tensor") -> float:
    """Discrete D_KL(P‖Q) = Σ p log(p/q) of the value histograms of ``before`` (P) and ``after`` (Q),
    both binned over the joint range [min, max] of the two (paper Fig. 12, spec §10).

    The two may differ in size; ``name`` labels errors.
    """
    if bins < 1:
        raise ValueError(f"bins must be ≥ 1, got {bins}")
    if not eps > 0:
        raise ValueError(f"eps must be > 0 (an empty bin of Q would give an infinite KL), got {eps}")
    p_values, q_values = _values(before, f"{name} (before)"), _values(after, f"{name} (after)")
    lo = float(min(p_values.min(), q_values.min()))
    hi = float(max(p_values.max(), q_values.max()))
    if lo == hi:  # every value equal in both: identical histograms
        return 0.0
    p = smoothed_histogram(p_values, bins, (lo, hi), eps)
    q = smoothed_histogram(q_values, bins, (lo, hi), eps)
    return float(np.sum(p * np.log(p / q)))


def _paired_keys(before: Mapping[str, Tensor], after: Mapping[str, Tensor],
                 select: Callable[[str, Tensor], bool], strict: bool, what: str) -> list[str]:
    """Selected keys (in ``before``'s order) present in both; with ``strict`` a selected key in one
    state only fails; a shape mismatch always does."""
    chosen_before = [k for k, v in before.items() if select(k, v)]
    if strict:
        only_before = [k for k in chosen_before if k not in after]
        only_after = [k for k, v in after.items() if k not in before and select(k, v)]
        if only_before or only_after:
            raise KeyError(
                f"{what}: the two states differ — only before: {only_before[:5]}"
                f"{' …' if len(only_before) > 5 else ''}, only after: {only_after[:5]}"
                f"{' …' if len(only_after) > 5 else ''} (strict=False compares the common ones)"
            )
    paired = [k for k in chosen_before if k in after]
    if not paired:
        raise ValueError(f"{what}: the two states share no tensor to compare")
    for k in paired:
        if tuple(before[k].shape) != tuple(after[k].shape):
            raise ValueError(f"{what}: {k} has shape {tuple(before[k].shape)} before and "
                             f"{tuple(after[k].shape)} after")
    return paired


def weight_kl(before: StateLike, after: StateLike, bins: int = HISTOGRAM_BINS, eps: float = HISTOGRAM_EPS,
              kinds: Sequence[str] = ("weight",), min_ndim: int = 1, strict: bool = True) -> dict[str, float]:
    """Per weight tensor, D_KL(P_before‖Q_after) of its flattened values (paper Fig. 12).

    ``before`` and ``after`` are state dicts (or modules) of the same network, e.g. the model right
    after the pretrained encoder was loaded and after fine-tuning. Tensors are chosen by the last part
    of their key (``kinds``: ``weight``, and ``bias`` if asked), so BN running statistics and
    counters are never counted as weights; ``min_ndim=2`` keeps convolution and linear kernels only.
    A tensor that is constant before (a freshly initialised BN γ = 1) has all of P in one bin, so any
    spread after fine-tuning gives a KL near log(1/ε): the ε ceiling, not a measured distance.
    Returns {key: KL} in ``before``'s key order. With
    ``strict`` a chosen key present in only one state is an error; a shape mismatch always is.
    """
    a, b = _state(before), _state(after)
    def is_weight(key: str, tensor: Tensor) -> bool:
        return key.rsplit(".", 1)[-1] in kinds and tensor.is_floating_point() and tensor.ndim >= min_ndim

    keys = _paired_keys(a, b, is_weight, strict, "weight_kl")
    return {k: histogram_kl(a[k], b[k], bins, eps, name=k) for k in keys}


def bn_layer_names(keys: Iterable[str]) -> list[str]:
    """BatchNorm layers among state-dict ``keys``: every prefix with both a ``running_mean`` and a
    ``running_var`` (e.g. ``encoder.layer1.0.bn1``, ``encoder.layer1.0.downsample.1``,
    ``decoder.blocks.0.conv1.1``), in key order."""
    keys = list(keys)
    key_set = set(keys)
    suffix = ".running_mean"
    return [k[: -len(suffix)] for k in keys
            if k.endswith(suffix) and k[: -len(suffix)] + ".running_var" in key_set]


def _bn_pairs(before: StateLike, after: StateLike, strict: bool, what: str) -> tuple[
        Mapping[str, Tensor], Mapping[str, Tensor], list[str]]:
    a, b = _state(before), _state(after)
    layers_a, layers_b = bn_layer_names(a), bn_layer_names(b)
    if strict and layers_a != layers_b:
        only_a = [k for k in layers_a if k not in set(layers_b)]
        only_b = [k for k in layers_b if k not in set(layers_a)]
        raise KeyError(f"{what}: the BN layers differ — only before: {only_a[:5]}, only after: {only_b[:5]} "
                       "(strict=False compares the common ones)")
    common = [k for k in layers_a if k in set(layers_b)]
    if not common:
        raise ValueError(f"{what}: the two states share no BatchNorm layer")
    for layer in common:
        for stat in BN_STATISTICS:
            key = f"{layer}.{stat}"
            if tuple(a[key].shape) != tuple(b[key].shape):
                raise ValueError(f"{what}: {key} has shape {tuple(a[key].shape)} before and "
                                 f"{tuple(b[key].shape)} after")
    return a, b, common


def bn_histogram_kl(before: StateLike, after: StateLike,
                    statistic: Literal["running_mean", "running_var"] = "running_mean",
                    bins: int = HISTOGRAM_BINS, eps: float = HISTOGRAM_EPS, strict: bool = True) -> dict[str, float]:
    """Per BatchNorm layer, the histogram D_KL(P_before‖Q_after) of its ``statistic`` vector over the
    channels (paper Fig. 8 c,d as spec §10 suggests). Returns {layer: KL} in ``before``'s order."""
    if statistic not in BN_STATISTICS:
        raise ValueError(f"statistic must be one of {BN_STATISTICS}, got {statistic!r}")
    a, b, layers = _bn_pairs(before, after, strict, "bn_histogram_kl")
    key = f".{statistic}"
    return {layer: histogram_kl(a[layer + key], b[layer + key], bins, eps, name=layer + key) for layer in layers}


def gaussian_kl(mean_p: Tensor, var_p: Tensor, mean_q: Tensor, var_q: Tensor) -> Tensor:
    """Elementwise KL(N(μ_p, σ_p²)‖N(μ_q, σ_q²))
    = log(σ_q/σ_p) + (σ_p² + (μ_p − μ_q)²)/(2σ_q²) − ½ (closed form for two Gaussians)."""
    return 0.5 * torch.log(var_q / var_p) + (var_p + (mean_p - mean_q) ** 2) / (2 * var_q) - 0.5


def bn_gaussian_kl(before: StateLike, after: StateLike, var_eps: float = BN_VARIANCE_EPS,
                   strict: bool = True) -> dict[str, float]:
    """Per BatchNorm layer, the mean over channels of KL(N(μ_before, σ²_before)‖N(μ_after, σ²_after))
    from the running statistics, σ² = running_var + ``var_eps`` (paper Fig. 8 c,d; treating each
    channel's pre-BN feature as Gaussian is the spec's assumption). Returns {layer: KL}."""
    if var_eps < 0:
        raise ValueError(f"var_eps must be ≥ 0, got {var_eps}")
    a, b, layers = _bn_pairs(before, after, strict, "bn_gaussian_kl")
    out = {}
    for layer in layers:
        stats = [torch.as_tensor(_values(s[f"{layer}.{k}"], f"{layer}.{k}")) for s in (a, b) for k in BN_STATISTICS]
        mean_p, var_p, mean_q, var_q = stats
        var_p, var_q = var_p + var_eps, var_q + var_eps
        if bool((var_p <= 0).any() or (var_q <= 0).any()):
            raise ValueError(f"{layer}: running_var + var_eps must be > 0 (got a variance ≤ 0); "
                             "raise var_eps")
        out[layer] = float(gaussian_kl(mean_p, var_p, mean_q, var_q).mean())
    return out


def group_layers(per_layer: Mapping[str, float], groups: Sequence[str] = ("encoder", "decoder")
                 ) -> dict[str, dict[str, float]]:
    """Split a per-layer mapping by key prefix: {group: {layer without ``group.``: value}}, order kept.

    Layers outside every group (e.g. ``segmentation_head.*``) are left out; a group with no layer is
    an empty mapping, so a figure can still draw its panel.
    """
    out: dict[str, dict[str, float]] = {g: {} for g in groups}
    for layer, value in per_layer.items():
        for g in groups:
            if layer.startswith(g + "."):
                out[g][layer[len(g) + 1:]] = value
                break
    return out


@torch.no_grad()
def stage_features(encoder: nn.Module, images: Tensor) -> list[Tensor]:
    """Each stage's feature map (B, C_s, H_s, W_s) of an smp encoder (ResNet or ``tu-`` timm) on
    ``images``, in eval mode (running BN statistics), shallowest first.

    smp encoders return a list whose first entry is the input itself; it is not a stage and is
    dropped. The encoder's training mode is restored afterwards.
    """
    was_training = encoder.training
    encoder.eval()
    try:
        features = list(encoder(images))
    finally:
        encoder.train(was_training)
    if features and features[0].shape == images.shape and torch.equal(features[0], images):
        features = features[1:]
    if not features:
        raise ValueError(f"{type(encoder).__name__} returned no stage features")
    return features


def pixel_matrix(features: Tensor | np.ndarray, max_pixels: int | None = None, seed: int = 0) -> np.ndarray:
    """Features as an (N·H·W, C) float64 matrix, one row per pixel; at most ``max_pixels`` rows, drawn
    without replacement with ``seed``. A 2-D input is taken as already (pixels, C)."""
    x = features.detach().cpu().numpy() if isinstance(features, Tensor) else np.asarray(features)
    if x.ndim == 4:
        x = np.moveaxis(x, 1, -1).reshape(-1, x.shape[1])
    elif x.ndim != 2:
        raise ValueError(f"features must be (N, C, H, W) or (pixels, C), got shape {x.shape}")
    if max_pixels is not None and x.shape[0] > max_pixels:
        rows = np.random.default_rng(seed).choice(x.shape[0], size=max_pixels, replace=False)
        x = x[np.sort(rows)]
    return x.astype(np.float64, copy=False)


def cumulative_explained_variance(features: Tensor | np.ndarray, max_components: int,
                                  max_pixels: int | None = 100_000, seed: int = 0) -> np.ndarray:
    """Cumulative explained-variance ratio of a PCA (``sklearn.decomposition.PCA``) over pixels, for
    1..k components, k = min(``max_components``, C, pixels) (paper Fig. 13).

    Ratios are of the total variance of all C channels, so the curve reaches 1 only when k spans it.
    Features are centred by the PCA and not scaled.
    """
    from sklearn.decomposition import PCA

    if max_components < 1:
        raise ValueError(f"max_components must be ≥ 1, got {max_components}")
    x = pixel_matrix(features, max_pixels, seed)
    if not np.all(np.isfinite(x)):
        raise ValueError("features hold non-finite values (NaN or inf)")
    k = min(max_components, x.shape[1], x.shape[0])
    if x.shape[0] < 2 or float(x.var(axis=0).sum()) == 0.0:
        raise ValueError(f"features of shape {x.shape} have no variance: nothing to explain")
    pca = PCA(n_components=k, svd_solver="full").fit(x)
    return np.cumsum(pca.explained_variance_ratio_)


def stage_explained_variance(encoder: nn.Module, images: Tensor, max_components: int,
                             max_pixels: int = 100_000, seed: int = 0, batch_size: int = 8
                             ) -> dict[str, np.ndarray]:
    """{``stage{s}``: cumulative explained variance} for every encoder stage (paper Fig. 13).

    Images go through the encoder ``batch_size`` at a time and each batch keeps only its share of
    ``max_pixels`` random pixels per stage, so memory stays bounded for many large tiles.
    """
    if images.ndim != 4 or images.shape[0] == 0:
        raise ValueError(f"images must be a non-empty (N, C, H, W) batch, got shape {tuple(images.shape)}")
    n = images.shape[0]
    rng = np.random.default_rng(seed)
    rows: list[list[np.ndarray]] = []
    for start in range(0, n, batch_size):
        batch = images[start:start + batch_size]
        quota = math.ceil(max_pixels * batch.shape[0] / n)
        for s, feature in enumerate(stage_features(encoder, batch)):
            if s == len(rows):
                rows.append([])
            rows[s].append(pixel_matrix(feature, quota, int(rng.integers(2**31))))
    return {f"stage{s + 1}": cumulative_explained_variance(np.concatenate(r), max_components, max_pixels, seed)
            for s, r in enumerate(rows)}
