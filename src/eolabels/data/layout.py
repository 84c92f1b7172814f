"""Procedural land-cover layouts: the hidden truth of the synthetic world.

A layout is painted in the Dynamic World 9-class schema (0 water, 1 trees, 2 grass, 3 flooded
vegetation, 4 crops, 5 shrub & scrub, 6 built, 7 bare, 8 snow & ice) because every other schema of
the workflow (OSM 13, DFC2020 8, the 4 LSR classes) is a function of it.  Layers are painted in a
fixed order so that the result is spatially coherent, as real land cover is: agricultural parcels
(crops / grass / woodlots), forest and dry (shrub / bare) zones from smooth noise, lakes and rivers,
wetland margins along water, settlements joined by roads, rare snow on high ground.

Besides the class map the layout keeps per-pixel *parcel ids* and *parcel orientations*: the
renderer uses them to give crops oriented row texture, which is what separates crops from grass
(same colour, different texture) in the synthetic imagery.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy import ndimage

WATER, TREES, GRASS, FLOODED, CROPS, SHRUB, BUILT, BARE, SNOW = range(9)


@dataclass(frozen=True)
class LayoutParams:
    """Shape of the world, in pixels of the target grid.

    ``feature_size`` is the typical parcel / patch side; everything else scales with it, so the same
    generator draws a 10 m Sentinel-2 world (parcels ~10 px) and a 1 m aerial world (parcels ~60 px).
    """

    feature_size: float = 12.0
    water_fraction: float = 0.08
    forest_fraction: float = 0.25
    dry_fraction: float = 0.15
    n_settlements: float = 1.5
    n_rivers: float = 0.8
    road_width: float = 1.0
    snow_fraction: float = 0.01


@dataclass
class Layout:
    """The truth of one tile: class map, parcel ids and parcel orientation (radians)."""

    classes: np.ndarray  # (H, W) uint8, DW ids
    parcel_id: np.ndarray  # (H, W) int32, 0 outside agricultural parcels
    parcel_angle: np.ndarray  # (H, W) float32, row direction of crop parcels


def smooth_noise(
    rng: np.random.Generator, shape: tuple[int, int], scale: float, octaves: int = 3
) -> np.ndarray:
    """Zero-mean, unit-variance smooth random field with correlation length ~``scale`` pixels."""
    field = np.zeros(shape, dtype=np.float64)
    amp = 1.0
    for k in range(octaves):
        sigma = max(scale / (2**k), 0.5)
        layer = ndimage.gaussian_filter(rng.standard_normal(shape), sigma, mode="wrap")
        layer /= layer.std() + 1e-12
        field += amp * layer
        amp *= 0.5
    field -= field.mean()
    return field / (field.std() + 1e-12)


def _quantile_mask(field: np.ndarray, fraction: float) -> np.ndarray:
    """The ``fraction`` of pixels where ``field`` is highest (empty for fraction <= 0)."""
    if fraction <= 0:
        return np.zeros(field.shape, dtype=bool)
    return field >= np.quantile(field, 1.0 - min(fraction, 1.0))


def _parcels(
    rng: np.random.Generator, shape: tuple[int, int], size: float
) -> tuple[np.ndarray, np.ndarray]:
    """Jittered rectangular parcels: rows of random height, each cut at its own random columns."""
    h, w = shape
    ids = np.zeros(shape, dtype=np.int32)
    angles = np.zeros(shape, dtype=np.float32)
    y, next_id = 0, 1
    while y < h:
        row_h = int(np.clip(rng.normal(size, size / 3), 3, 3 * size))
        x = 0
        while x < w:
            col_w = int(np.clip(rng.normal(1.4 * size, size / 2), 3, 4 * size))
            ids[y : y + row_h, x : x + col_w] = next_id
            angles[y : y + row_h, x : x + col_w] = rng.choice([0.0, np.pi / 2]) + rng.normal(0, 0.15)
            next_id += 1
            x += col_w
        y += row_h
    return ids, angles


def _river_mask(rng: np.random.Generator, shape: tuple[int, int], width: float) -> np.ndarray:
    """A meandering river crossing the tile: a smooth random walk, thickened to ``width`` pixels."""
    h, w = shape
    n_steps = 4 * (h + w)
    start_edge = rng.integers(4)
    y, x = (0.0, rng.uniform(0, w)) if start_edge < 2 else (rng.uniform(0, h), 0.0)
    heading = (np.pi / 2 if start_edge < 2 else 0.0) + rng.normal(0, 0.3)
    turn = ndimage.gaussian_filter1d(rng.normal(0, 0.25, n_steps), 8)
    path = np.zeros(shape, dtype=bool)
    for k in range(n_steps):
        iy, ix = int(y), int(x)
        if not (0 <= iy < h and 0 <= ix < w):
            if k > 2:
                break
        else:
            path[iy, ix] = True
        heading += turn[k]
        y += np.sin(heading) * 0.7
        x += np.cos(heading) * 0.7
    return ndimage.distance_transform_edt(~path) <= width / 2


def _roads(
    rng: np.random.Generator, shape: tuple[int, int], centres: list[tuple[float, float]], width: float
) -> np.ndarray:
    """Straight roads joining settlements, plus one through-road across the tile."""
    h, w = shape
    points = list(centres)
    points += [(rng.uniform(0, h), 0.0), (rng.uniform(0, h), float(w - 1))]
    mask = np.zeros(shape, dtype=bool)
    for (y0, x0), (y1, x1) in zip(points[:-1], points[1:]):
        n = int(max(abs(y1 - y0), abs(x1 - x0))) + 1
        ys = np.clip(np.linspace(y0, y1, n).astype(int), 0, h - 1)
        xs = np.clip(np.linspace(x0, x1, n).astype(int), 0, w - 1)
        mask[ys, xs] = True
    if width > 1:
        mask = ndimage.distance_transform_edt(~mask) <= width / 2
    return mask


def generate_layout(
    rng: np.random.Generator, shape: tuple[int, int], params: LayoutParams = LayoutParams()
) -> Layout:
    """Paint one tile's land cover, in a fixed order so later layers overwrite earlier ones."""
    h, w = shape
    s = params.feature_size
    elevation = smooth_noise(rng, shape, 4 * s)
    moisture = smooth_noise(rng, shape, 3 * s)
    zone = smooth_noise(rng, shape, 3 * s)

    parcel_id, parcel_angle = _parcels(rng, shape, s)
    n_parcels = int(parcel_id.max()) + 1
    parcel_class = rng.choice([CROPS, GRASS, TREES], size=n_parcels, p=[0.55, 0.35, 0.10])
    classes = parcel_class[parcel_id].astype(np.uint8)

    forest = _quantile_mask(zone + 0.5 * moisture, params.forest_fraction)
    classes[forest] = TREES
    clearing = forest & _quantile_mask(smooth_noise(rng, shape, s / 2), 0.12)
    classes[clearing] = GRASS

    dry = _quantile_mask(-moisture - 0.6 * zone, params.dry_fraction) & ~forest
    dry_split = smooth_noise(rng, shape, s / 1.5) > 0
    classes[dry & dry_split] = SHRUB
    classes[dry & ~dry_split] = BARE

    centres: list[tuple[float, float]] = []
    for _ in range(rng.poisson(params.n_settlements * h * w / (12 * s) ** 2)):
        cy, cx = rng.uniform(0, h), rng.uniform(0, w)
        centres.append((cy, cx))
        yy, xx = np.ogrid[:h, :w]
        radius = s * rng.uniform(0.8, 2.0) * (1 + 0.3 * smooth_noise(rng, shape, s / 2))
        classes[(yy - cy) ** 2 + (xx - cx) ** 2 <= radius**2] = BUILT
    classes[_roads(rng, shape, centres, params.road_width)] = BUILT

    water = _quantile_mask(-elevation, params.water_fraction)
    for _ in range(rng.poisson(params.n_rivers * (h + w) / (2 * 16 * s)) if s > 0 else 0):
        water |= _river_mask(rng, shape, max(1.5, s / 4))
    margin = ndimage.binary_dilation(water, iterations=max(1, int(s / 6))) & ~water
    classes[margin & (moisture > 0.3)] = FLOODED
    classes[water] = WATER

    if params.snow_fraction > 0:
        classes[_quantile_mask(elevation, params.snow_fraction) & ~water] = SNOW

    is_crop_parcel = (classes == CROPS) | (classes == GRASS)
    parcel_id = np.where(is_crop_parcel, parcel_id, 0).astype(np.int32)
    return Layout(classes=classes, parcel_id=parcel_id, parcel_angle=parcel_angle)
