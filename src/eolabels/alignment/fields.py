"""Random smooth displacement fields for training pairs (spec netsimilarity.md §4.4).

Each component is a sum of signed, normalised Gaussian bumps with random SPD covariances, min-max
stretched to [-1, 1] and scaled to the per-scale maximum ``amplitude``. For tiles the field is
parameterised by ``amplitude`` (px, per component) and a correlation length ``L`` (px): bump standard
deviations are ``L sqrt(lambda)`` with eigenvalues ``lambda ~ U[1, 2]``, and the bump count keeps the
reference's density, ``M = max(4, round(30 (0.054 T / L)^2))`` for a tile of side ``T``.
"""

from __future__ import annotations

import numpy as np

REFERENCE_BUMPS = 30  # bumps per component over a whole image in the authors' code
REFERENCE_BUMP_STD = 0.054  # their mean bump std, in units of the image side


class FieldRequestError(ValueError):
    """A displacement field that cannot be drawn on the tile asked for."""


def bump_count(side: float, correlation_length: float) -> int:
    """Bumps per component on a tile of ``side`` px (spec §4.4: the reference's density)."""
    return max(4, round(REFERENCE_BUMPS * (REFERENCE_BUMP_STD * side / correlation_length) ** 2))


def random_spd(rng: np.random.Generator, low: float = 1.0, high: float = 2.0) -> np.ndarray:
    """A 2x2 SPD matrix with eigenvalues drawn from U[low, high] and a uniform random orientation."""
    angle = rng.uniform(0, np.pi)
    rotation = np.array([[np.cos(angle), -np.sin(angle)], [np.sin(angle), np.cos(angle)]])
    return rotation @ np.diag(rng.uniform(low, high, size=2)) @ rotation.T


def gaussian_bumps(rng: np.random.Generator, shape: tuple[int, int], count: int, length: float) -> np.ndarray:
    """Sum of ``count`` signed normalised Gaussian pdfs (covariance ``length^2 * SPD``), H x W.

    Each bump has peak ``1 / (2 pi sqrt(det cov))``, so narrower bumps are taller, as in the reference.
    """
    h, w = shape
    yy, xx = np.mgrid[:h, :w].astype(np.float64)
    total = np.zeros(shape)
    for _ in range(count):
        cov = length**2 * random_spd(rng)
        inv = np.linalg.inv(cov)
        cy, cx = rng.uniform(0, h), rng.uniform(0, w)
        dy, dx = yy - cy, xx - cx
        quad = inv[0, 0] * dy * dy + 2 * inv[0, 1] * dy * dx + inv[1, 1] * dx * dx
        sign = 1.0 if rng.random() < 0.5 else -1.0
        total += sign * np.exp(-0.5 * quad) / (2 * np.pi * np.sqrt(np.linalg.det(cov)))
    return total


def min_max_stretch(values: np.ndarray) -> np.ndarray:
    """``values`` mapped linearly onto [-1, 1] (reaching both ends); a constant map gives zeros."""
    low, high = float(values.min()), float(values.max())
    if high - low <= 0:
        return np.zeros_like(values)
    return 2.0 * (values - low) / (high - low) - 1.0


def random_smooth_field(
    rng: np.random.Generator, shape: tuple[int, int], amplitude: float, correlation_length: float
) -> np.ndarray:
    """(2, H, W) float32 field (dy, dx) in px; each component's extremes are exactly ±``amplitude``.

    A field whose amplitude reaches the tile's side is refused (:class:`FieldRequestError`): every
    sample would fall outside the tile.
    """
    h, w = shape
    if amplitude < 0 or correlation_length <= 0:
        raise FieldRequestError(f"amplitude {amplitude} must be >= 0 and correlation length {correlation_length} > 0")
    if amplitude >= min(h, w):
        raise FieldRequestError(f"a field of max {amplitude} px is larger than the {h}x{w} tile it is drawn on")
    if amplitude == 0:
        return np.zeros((2, h, w), dtype=np.float32)
    count = bump_count(max(h, w), correlation_length)
    components = [min_max_stretch(gaussian_bumps(rng, shape, count, correlation_length)) for _ in range(2)]
    return (amplitude * np.stack(components)).astype(np.float32)
