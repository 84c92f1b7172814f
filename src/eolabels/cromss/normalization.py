"""Input normalisation of the CromSS datasets (spec §5–6).

The pretraining LMDBs already hold uint8 images (the SSL4EO-S12 release clipped each band to
[μ − 2σ, μ + 2σ] and scaled it to 0..255), so pretraining inputs are uint8/255.  Downstream
datasets hold physical values (S1 dB, S2 L1C digital numbers) and the scripts' default path
re-creates the same uint8 encoding on the fly: stretch, truncate to uint8, divide by 255.
"""

from __future__ import annotations

from typing import Sequence

import numpy as np

S1_MEAN = np.array([-12.54847273, -20.19237134])
S1_STD = np.array([5.25697717, 5.91150917])
# Sentinel-2 L1C statistics, band order B1, B2, B3, B4, B5, B6, B7, B8, B8A, B9, B10, B11, B12
S2C_MEAN = np.array([
    1605.57504906, 1390.78157673, 1314.8729939, 1363.52445545, 1549.44374991, 2091.74883118,
    2371.7172463, 2299.90463006, 2560.29504086, 830.06605044, 22.10351321, 2177.07172323,
    1524.06546312,
])
S2C_STD = np.array([
    786.78685367, 850.34818441, 875.06484736, 1138.84957046, 1122.17775652, 1161.59187054,
    1274.39184232, 1248.42891965, 1345.52684884, 577.31607053, 51.15431158, 1336.09932639,
    1136.53823676,
])
S2_BANDS = ("B1", "B2", "B3", "B4", "B5", "B6", "B7", "B8", "B8A", "B9", "B10", "B11", "B12")
# indices into the 13-band L1C array for ``--n_channels`` (spec §6)
S2_BAND_SETS: dict[int, tuple[int, ...]] = {
    13: tuple(range(13)),
    12: (0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 11, 12),
    10: (1, 2, 3, 4, 5, 6, 7, 8, 11, 12),
    9: (1, 2, 3, 4, 5, 6, 7, 11, 12),
    3: (3, 2, 1),
}


def s2_band_indices(n_channels: int) -> tuple[int, ...]:
    """Band indices into the 13-band L1C array for a given number of S2 input channels."""
    if n_channels not in S2_BAND_SETS:
        raise ValueError(f"no S2 band set with {n_channels} channels; choose from {sorted(S2_BAND_SETS)}")
    return S2_BAND_SETS[n_channels]


def uint8_stretch(image: np.ndarray, mean: Sequence[float], std: Sequence[float]) -> np.ndarray:
    """(C, H, W) physical values → float32 in [0, 1]: clip((x − (μ − 2σ))/(4σ)·255, 0, 255),
    truncated to uint8, then /255 (the scripts' default normalisation, §6)."""
    image = np.asarray(image)
    mean = np.asarray(mean, dtype=np.float64)
    std = np.asarray(std, dtype=np.float64)
    if image.ndim != 3 or image.shape[0] != mean.size or mean.size != std.size:
        raise ValueError(
            f"image of shape {image.shape} needs one mean/std per band, got {mean.size}/{std.size}"
        )
    low = (mean - 2 * std)[:, None, None]
    scaled = (image - low) / (4 * std[:, None, None]) * 255.0
    return (np.clip(scaled, 0, 255).astype(np.uint8) / 255.0).astype(np.float32)


def normalise_s1(s1_db: np.ndarray) -> np.ndarray:
    """Sentinel-1 (VV, VH) dB → [0, 1] with the S1 statistics (§6)."""
    return uint8_stretch(s1_db, S1_MEAN, S1_STD)


def normalise_s2(s2_dn: np.ndarray, band_indices: Sequence[int] | None = None) -> np.ndarray:
    """Sentinel-2 L1C digital numbers → [0, 1] with ``S2C_*`` of the selected bands (§6).

    ``s2_dn`` holds all 13 bands; ``band_indices`` (default: all) picks and orders the bands.
    """
    s2_dn = np.asarray(s2_dn)
    if s2_dn.ndim != 3 or s2_dn.shape[0] != 13:
        raise ValueError(f"S2 L1C image must be (13, H, W), got shape {s2_dn.shape}")
    bands = list(range(13)) if band_indices is None else list(band_indices)
    return uint8_stretch(s2_dn[bands], S2C_MEAN[bands], S2C_STD[bands])


def uint8_to_unit(image: np.ndarray) -> np.ndarray:
    """Pretraining input: the stored uint8 image divided by 255, as float32 (§5, no ``--norm``)."""
    image = np.asarray(image)
    if image.dtype != np.uint8:
        raise ValueError(f"pretraining images are stored as uint8, got {image.dtype}")
    return (image / 255.0).astype(np.float32)
