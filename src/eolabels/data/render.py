"""Rendering synthetic imagery from a layout: Sentinel-2 L1C-like, Sentinel-1-like and aerial RGBN.

Design choices that make the methods matter (DESIGN.md, "embedded default"):
- in summer crops and grass share one mean spectrum, and shrub and bare ground share one in every
  season: colour alone cannot separate them. Crops carry oriented row texture, shrub carries speckled
  bush texture, so a spatial model can;
- vegetation follows a seasonal vigour curve (phenology), so the 4 seasons differ. Crops follow their
  own: sown in spring, harvested by autumn, tilled dark soil in between, so outside summer their
  colour gives them away, as in real multi-season imagery (and a network trained for a CPU-sized
  budget has a signal it can learn, not only the slow-to-learn textures);
- S1 is weaker than S2: class backscatter means lie within a few dB of each other under multiplicative
  speckle, except water and built-up areas.
"""

from __future__ import annotations

import numpy as np
from scipy import ndimage

from eolabels.data.layout import (
    BARE,
    BUILT,
    CROPS,
    FLOODED,
    GRASS,
    SHRUB,
    SNOW,
    TREES,
    WATER,
    Layout,
    smooth_noise,
)


# Surface reflectance endmembers over the 13 S2 bands (443 ... 2190 nm); shapes of typical library
# spectra, not measurements.
_ENDMEMBERS = {
    "water": [0.06, 0.055, 0.05, 0.035, 0.025, 0.018, 0.016, 0.014, 0.012, 0.01, 0.002, 0.005, 0.003],
    "green": [0.03, 0.04, 0.08, 0.04, 0.12, 0.30, 0.38, 0.42, 0.43, 0.30, 0.003, 0.20, 0.10],
    "canopy": [0.02, 0.03, 0.05, 0.025, 0.08, 0.22, 0.28, 0.32, 0.33, 0.24, 0.002, 0.14, 0.06],
    "dry": [0.06, 0.07, 0.10, 0.13, 0.17, 0.22, 0.25, 0.27, 0.28, 0.22, 0.003, 0.33, 0.25],
    "soil": [0.10, 0.12, 0.16, 0.22, 0.25, 0.27, 0.29, 0.30, 0.31, 0.25, 0.004, 0.38, 0.32],
    "urban": [0.14, 0.15, 0.16, 0.17, 0.18, 0.19, 0.20, 0.21, 0.21, 0.18, 0.004, 0.24, 0.22],
    "snow": [0.90, 0.90, 0.88, 0.86, 0.84, 0.80, 0.78, 0.75, 0.74, 0.60, 0.010, 0.10, 0.08],
}
# Top-of-atmosphere path radiance added for L1C (stronger in the blue), per season (winter hazier).
_PATH_RADIANCE = np.array([0.07, 0.05, 0.03, 0.015, 0.01, 0.008, 0.006, 0.005, 0.005, 0.004, 0.0, 0.0, 0.0])
_HAZE_BY_SEASON = (1.0, 0.9, 1.1, 1.4)
# Vegetation vigour per season (spring, summer, autumn, winter).
_VIGOUR = {"herb": (0.6, 0.9, 0.5, 0.15), "tree": (0.75, 1.0, 0.6, 0.3)}
# Crops outside summer (spring sowing, autumn after harvest, winter): green share over tilled, moist
# soil darker than the dry bare ground. In summer they take the grass spectrum.
_CROP_GREEN = {0: 0.2, 2: 0.25, 3: 0.0}
_TILLED_SOIL = 0.55
_SUMMER = 1
# S1 backscatter means (dB) per class: (VV, VH); crops change with season.
_S1_DB = {
    WATER: (-21.0, -27.0),
    TREES: (-8.0, -14.0),
    GRASS: (-11.5, -18.5),
    FLOODED: (-9.5, -19.0),
    CROPS: (-11.5, -18.5),
    SHRUB: (-12.0, -19.5),
    BUILT: (-4.0, -11.0),
    BARE: (-14.0, -22.5),
    SNOW: (-15.0, -23.0),
}
_S1_CROP_SEASON_DB = (-1.5, 1.5, 0.5, -2.5)


def class_spectra(season: int) -> np.ndarray:
    """(9, 13) mean surface reflectance of each DW class in ``season`` (0 spring .. 3 winter)."""
    e = {k: np.asarray(v) for k, v in _ENDMEMBERS.items()}
    herb, tree = _VIGOUR["herb"][season], _VIGOUR["tree"][season]
    herbaceous = herb * e["green"] + (1 - herb) * e["dry"]
    bare_like = 0.75 * e["soil"] + 0.25 * e["dry"]
    spectra = np.zeros((9, 13))
    spectra[WATER] = e["water"]
    spectra[TREES] = tree * e["canopy"] + (1 - tree) * e["dry"] * 0.7
    spectra[GRASS] = herbaceous
    if season == _SUMMER:
        spectra[CROPS] = herbaceous  # same colour as grass: only texture differs
    else:
        green = _CROP_GREEN[season]
        spectra[CROPS] = green * e["green"] + (1 - green) * _TILLED_SOIL * e["soil"]
    spectra[FLOODED] = 0.45 * e["water"] + 0.55 * herbaceous
    spectra[SHRUB] = bare_like  # same colour as bare: only texture differs
    spectra[BARE] = bare_like
    spectra[BUILT] = e["urban"]
    spectra[SNOW] = e["snow"]
    return spectra


def _texture(rng: np.random.Generator, layout: Layout, scale: float) -> np.ndarray:
    """Zero-mean per-pixel texture amplitude along the vegetation direction, per class.

    Paired classes get the same per-pixel mean and variance and differ only in spatial correlation,
    so no per-pixel (colour) classifier separates them while a spatial one can:
    crops = oriented rows, grass = smooth patches; shrub = fine bush speckle, bare = smooth patches.
    """
    c = layout.classes
    shape = c.shape
    tex = np.zeros(shape)
    yy, xx = np.mgrid[: shape[0], : shape[1]].astype(np.float64)
    period = max(4.0, scale / 3)
    theta = layout.parcel_angle
    rows = np.sqrt(2) * np.sin(2 * np.pi * (xx * np.cos(theta) + yy * np.sin(theta)) / period)
    n_parcels = int(layout.parcel_id.max()) + 1
    parcel_vigour = rng.normal(0, 0.08, size=n_parcels)[layout.parcel_id]
    fine = smooth_noise(rng, shape, 0.6, octaves=1)
    patches = smooth_noise(rng, shape, max(3.0, scale), octaves=1)
    medium = smooth_noise(rng, shape, max(1.0, scale / 6), octaves=2)
    amplitude = 0.2  # unit-variance fields times this: equal variance within each pair
    for cls, field in (
        (CROPS, amplitude * rows + parcel_vigour),
        (GRASS, amplitude * patches + parcel_vigour),
        (SHRUB, amplitude * fine),
        (BARE, amplitude * patches),
        (TREES, 0.10 * medium),
        (FLOODED, 0.08 * medium),
    ):
        tex[c == cls] = field[c == cls]
    return tex


def render_reflectance(
    rng: np.random.Generator, layout: Layout, season: int, scale: float
) -> np.ndarray:
    """(13, H, W) surface reflectance: class spectra, mixed-pixel blur at borders, texture, noise."""
    spectra = class_spectra(season)
    refl = spectra[layout.classes].transpose(2, 0, 1).copy()
    built = layout.classes == BUILT
    h, w = built.shape
    roofs = rng.normal(0, 0.25, size=((h + 1) // 2, (w + 1) // 2)).repeat(2, 0).repeat(2, 1)[:h, :w]
    refl[:, built] *= 1 + roofs[built][None]  # 2x2-pixel roofs and yards
    refl *= rng.normal(1.0, 0.03)  # per-scene illumination
    refl = ndimage.gaussian_filter(refl, sigma=(0, 0.5, 0.5))  # mixed pixels at class borders
    veg_direction = np.asarray(_ENDMEMBERS["green"]) - np.asarray(_ENDMEMBERS["soil"])
    refl += veg_direction[:, None, None] * _texture(rng, layout, scale)[None]
    refl += rng.normal(0, 0.004, size=refl.shape)
    return np.clip(refl, 0.0, 1.5)


def render_s2(rng: np.random.Generator, layout: Layout, season: int, scale: float) -> np.ndarray:
    """(13, H, W) uint16 L1C-like digital numbers (TOA reflectance x 10000), bands B1..B12."""
    refl = render_reflectance(rng, layout, season, scale)
    toa = refl + (_PATH_RADIANCE * _HAZE_BY_SEASON[season])[:, None, None]
    return np.clip(np.round(toa * 10000), 1, 65535).astype(np.uint16)


def render_s1(
    rng: np.random.Generator, layout: Layout, season: int, looks: float = 4.5
) -> np.ndarray:
    """(2, H, W) float32 VV/VH backscatter in dB with multiplicative gamma speckle of ``looks``."""
    c = layout.classes
    db = np.zeros((2,) + c.shape)
    for cls, (vv, vh) in _S1_DB.items():
        db[0][c == cls], db[1][c == cls] = vv, vh
    crop = c == CROPS
    db[:, crop] += _S1_CROP_SEASON_DB[season]
    db += 0.8 * smooth_noise(rng, c.shape, 3.0)[None]  # terrain / moisture variation
    intensity = 10 ** (db / 10) * rng.gamma(looks, 1 / looks, size=db.shape)
    return (10 * np.log10(intensity)).astype(np.float32)


def render_aerial(rng: np.random.Generator, layout: Layout, scale: float) -> np.ndarray:
    """(4, H, W) uint8 NAIP-like R, G, B, NIR of a summer scene, from the S2 reflectance model."""
    refl = render_reflectance(rng, layout, season=1, scale=scale)
    rgbn = refl[[3, 2, 1, 7]]
    return np.clip(np.round(rgbn / 0.5 * 255), 0, 255).astype(np.uint8)
