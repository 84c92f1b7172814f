"""Joint spatial augmentation of image, prior and label (spec §5, albumentations 1.3.1 in the reference).

The reference stacks the 9 prior channels in front of the image channels so that one transform
moves both; the label goes through the same geometry with nearest-neighbour sampling.  Pipeline:
``RandomCrop(256)`` → ``Flip(p=0.5)`` (horizontal, vertical or both, 1/3 each) → ``Rotate(p=0.2)``
(angle uniform in [−90°, 90°], bilinear image, nearest label, border ``BORDER_REFLECT_101``).

The deterministic pieces are pure functions; :func:`augment_jointly` draws their parameters from
an explicit ``numpy.random.Generator`` so a dataset can make them reproducible per sample.
"""

from __future__ import annotations

from typing import Literal

import numpy as np
from scipy import ndimage

FlipCode = Literal["horizontal", "vertical", "both"]
FLIP_CODES: tuple[FlipCode, ...] = ("horizontal", "vertical", "both")


def _check_pair(image: np.ndarray, label: np.ndarray) -> None:
    if image.ndim != 3 or label.ndim != 2 or image.shape[1:] != label.shape:
        raise ValueError(f"image {image.shape} must be (C, H, W) over label {label.shape} (H, W)")


def crop(image: np.ndarray, label: np.ndarray, top: int, left: int, size: int) -> tuple[np.ndarray, np.ndarray]:
    """The ``size``×``size`` window at (top, left) of image (C, H, W) and label (H, W)."""
    _check_pair(image, label)
    h, w = label.shape
    if not (0 <= top <= h - size and 0 <= left <= w - size):
        raise ValueError(f"crop of {size} at ({top}, {left}) does not fit a {h}×{w} tile")
    return image[:, top:top + size, left:left + size], label[top:top + size, left:left + size]


def flip(image: np.ndarray, label: np.ndarray, code: FlipCode) -> tuple[np.ndarray, np.ndarray]:
    """Mirror left–right (``horizontal``), top–bottom (``vertical``) or both (cv2.flip codes 1, 0, −1)."""
    _check_pair(image, label)
    axes = {"horizontal": (-1,), "vertical": (-2,), "both": (-2, -1)}[code]
    return np.flip(image, axes).copy(), np.flip(label, axes).copy()


def rotate(image: np.ndarray, label: np.ndarray, angle: float) -> tuple[np.ndarray, np.ndarray]:
    """Rotate about the tile centre by ``angle`` degrees, keeping the size.

    Positive angles turn counter-clockwise, as OpenCV's.  Bilinear for the image, nearest for the
    label, and mirror borders (scipy's ``mirror`` reflects about the edge pixel, like OpenCV's
    ``BORDER_REFLECT_101``).
    """
    _check_pair(image, label)
    rotated = ndimage.rotate(image, angle, axes=(2, 1), reshape=False, order=1, mode="mirror")
    rotated_label = ndimage.rotate(label, angle, axes=(1, 0), reshape=False, order=0, mode="mirror")
    return rotated.astype(image.dtype, copy=False), rotated_label


def augment_jointly(
    image: np.ndarray,
    label: np.ndarray,
    rng: np.random.Generator,
    crop_size: int | None = 256,
    flip_p: float = 0.5,
    rotate_p: float = 0.2,
    rotate_limit: float = 90.0,
) -> tuple[np.ndarray, np.ndarray]:
    """Random crop, flip and rotation applied identically to image (C, H, W) and label (H, W) (§5)."""
    _check_pair(image, label)
    if crop_size is not None:
        h, w = label.shape
        if crop_size > min(h, w):
            raise ValueError(f"crop of {crop_size} does not fit a {h}×{w} tile")
        top = int(rng.integers(0, h - crop_size + 1))
        left = int(rng.integers(0, w - crop_size + 1))
        image, label = crop(image, label, top, left, crop_size)
    if rng.random() < flip_p:
        image, label = flip(image, label, FLIP_CODES[int(rng.integers(0, 3))])
    if rng.random() < rotate_p:
        image, label = rotate(image, label, float(rng.uniform(-rotate_limit, rotate_limit)))
    return np.ascontiguousarray(image), np.ascontiguousarray(label)
