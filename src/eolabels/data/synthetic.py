"""The embedded synthetic world: every dataset the workflow needs, generated offline and deterministically.

Five datasets, each written in the common layout of :mod:`eolabels.data.index`:

``noldo``   SSL4EO-S12-shaped raw pretraining set: per location 4 seasons of S2 L1C (13 bands), S1 VV/VH
            (dB, speckled), Dynamic-World-like **noisy** labels per season, and the hidden truth; a
            fraction of locations lacks a season's label or image, as SSL4EO-S12 lacks DW labels
            where Dynamic World had none (assembly into NoLDO-S12 drops them: data/assembly.py).
``dw``      downstream DW set: S1/S2 with clean DW labels that leave unlabelled areas (255).
``osm``     OSM land use fetched for the ``dw`` tiles (same ids and grids): 13-class labels
            **misregistered** by a smooth displacement field (saved as layer ``displacement``, dy/dx in
            pixels), with unmapped areas and out-of-date regions, so that tiles agree with DW to varying
            degrees (the OSM↔DW filter, data/osm_filter.py, makes the downstream ``osm`` set of them).
``dfc2020`` DFC2020-shaped set: S1/S2 patches with MODIS-IGBP-like coarse labels (blocks) and the
            8-class high-resolution labels; splits ``validation`` (training) and ``test``.
``lsr``     label-super-resolution tiles: aerial RGBN at high resolution with NLCD-like coarse labels
            (blocks, drawn through the NLCD→4-class p(ℓ|c) table) and the 4-class truth.

Every sample draws from its own generator ``default_rng([seed, dataset, sample])``, so a sample does
not depend on how many others are generated or in which order.  Class-transfer tables come from
``config/tables`` (never literals): the per-season noise confusions, DW→OSM subtypes, DW→4 classes,
IGBP→DFC2020 and NLCD→4-class p(ℓ|c).
"""

from __future__ import annotations

import logging
import shutil
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from scipy import ndimage
from tqdm import tqdm

from eolabels.data.geotiff import GridSpec
from eolabels.data.kinds import DFC2020, DW, LSR, NOLDO, OSM_LABELS, SEASONS
from eolabels.data.layout import SNOW, LayoutParams, generate_layout
from eolabels.data.noise import displacement_field, missing_mask, noisy_labels, warp_labels
from eolabels.data.render import render_aerial, render_s1, render_s2
from eolabels.data.writer import DatasetWriter
from eolabels.tables import UNLABELLED, load_mapping, load_schema, load_transfer_matrix, lookup_table

log = logging.getLogger(__name__)

CRS = "EPSG:32632"  # UTM 32N: an arbitrary but real projected CRS so files open in GIS software
DATASETS = ("noldo", "dw", "osm", "dfc2020", "lsr")
_DATASET_CODE = {name: i for i, name in enumerate(DATASETS)}


@dataclass
class NoldoParams:
    n_locations: int = 21
    tile_size: int = 96
    target_accuracy: float = 0.70
    season_accuracy_offsets: tuple[float, float, float, float] = (0.0, 0.03, 0.01, -0.04)
    shift_amplitude: float = 1.5
    blob_scale: float = 6.0
    feature_size: float = 10.0
    incomplete_fraction: float = 0.25
    missing_label_share: float = 0.6


@dataclass
class DwParams:
    n_train: int = 6
    n_test: int = 3
    tile_size: int = 128
    unlabelled_fraction: float = 0.15
    boundary_unlabelled: float = 0.5
    feature_size: float = 10.0


@dataclass
class OsmParams:
    misregistration_px: float = 3.0
    misregistration_scale: float = 24.0
    missing_fraction: float = 0.2
    stale_fraction_max: float = 0.5


@dataclass
class Dfc2020Params:
    n_validation: int = 12
    n_test: int = 12
    patch_size: int = 64
    modis_block: int = 16
    modis_noise: float = 0.15
    feature_size: float = 8.0


@dataclass
class LsrParams:
    n_tiles: int = 2
    tile_size: int = 240
    block: int = 30
    feature_size: float = 40.0
    nlcd_confidence: float = 40.0
    # NLCD classes of the conterminous US (the Alaska-only 51, 72-74 and ice 12 never occur there)
    nlcd_classes: tuple[int, ...] = (11, 21, 22, 23, 24, 31, 41, 42, 43, 52, 71, 81, 82, 90, 95)


# key of the osm generator's section that holds the dw section (the tiles it labels)
DW_TILES = "dw_tiles"
PARAMS = {"noldo": NoldoParams, "dw": DwParams, "osm": OsmParams, "dfc2020": Dfc2020Params, "lsr": LsrParams}


def dataset_params(name: str, section: dict | None = None):
    """Typed generator settings of one dataset from its (schema-validated) config section."""
    if name not in PARAMS:
        raise ValueError(f"unknown synthetic dataset {name!r}; choose from {DATASETS}")
    values = dict(section or {})
    if name == "osm":  # the OSM labels lie on the dw tiles: their sizes come from the dw section
        values.pop(DW_TILES, None)
    for key in ("season_accuracy_offsets", "nlcd_classes"):
        if key in values:
            values[key] = tuple(values[key])
    try:
        return PARAMS[name](**values)
    except TypeError as err:
        raise ValueError(f"synthetic.{name}: {err}") from err


def _rng(seed: int, dataset: str, sample: int) -> np.random.Generator:
    return np.random.default_rng([seed, _DATASET_CODE[dataset], sample])


def _grid(dataset: str, sample: int, size: int, resolution: float) -> GridSpec:
    """Samples sit side by side on a fake UTM grid, one row of tiles per dataset."""
    x0 = 300_000.0 + sample * size * resolution * 1.5
    y0 = 5_000_000.0 - _DATASET_CODE[dataset] * 100_000.0
    return GridSpec(crs=CRS, transform=(resolution, 0.0, x0, 0.0, -resolution, y0), height=size, width=size)


def _sample_by_region(
    rng: np.random.Generator, classes: np.ndarray, probs: np.ndarray
) -> np.ndarray:
    """Relabel each connected region of a class with one subtype drawn from ``probs[class]``."""
    out = np.zeros_like(classes)
    for c in np.unique(classes):
        regions, n = ndimage.label(classes == c)
        picks = rng.choice(probs.shape[1], size=n + 1, p=probs[c])
        out[classes == c] = picks[regions[classes == c]]
    return out


def _boundary(classes: np.ndarray) -> np.ndarray:
    """Pixels whose 3x3 neighbourhood holds more than one class."""
    return ndimage.maximum_filter(classes, 3) != ndimage.minimum_filter(classes, 3)


def incomplete_items(p: NoldoParams, seed: int) -> dict[int, set[tuple[int, str]]]:
    """Which (season, layer) items each incomplete location lacks: {location: {(season, layer)}}.

    ``round(incomplete_fraction * n_locations)`` locations (those with the smallest draws of their own
    generator, so the pixels of every location stay independent of the count) each lack one to two
    seasons of one layer: the noisy label with probability ``missing_label_share`` (Dynamic World
    had no cloud-free prediction), else S1 or S2 alike.
    """
    n_incomplete = int(np.floor(p.incomplete_fraction * p.n_locations + 0.5))
    draws = [np.random.default_rng([seed, _DATASET_CODE["noldo"], i, 1]) for i in range(p.n_locations)]
    order = np.argsort([d.random() for d in draws], kind="stable")
    out: dict[int, set[tuple[int, str]]] = {}
    other = (1.0 - p.missing_label_share) / 2
    for i in sorted(int(k) for k in order[:n_incomplete]):
        rng = draws[i]
        layer = str(rng.choice(["dw", "s1", "s2"], p=[p.missing_label_share, other, other]))
        seasons = rng.choice(len(SEASONS), size=int(rng.integers(1, 3)), replace=False)
        out[i] = {(int(s), layer) for s in seasons}
    return out


def generate_noldo(root: Path, p: NoldoParams, seed: int) -> Path:
    """SSL4EO-S12-shaped raw pretraining set: 4 seasons per location, noisy DW labels + hidden truth.

    Items :func:`incomplete_items` names are left out (an empty path in the index); their pixels are
    still drawn, so the other items do not depend on which ones are missing.
    """
    meta = NOLDO.meta(
        source="synthetic",
        description="SSL4EO-S12-shaped: S1/S2 x 4 seasons with Dynamic-World-like noisy labels, some "
        "locations incomplete (synthetic)",
        extra={
            "target_accuracy": p.target_accuracy,
            "season_accuracy_offsets": list(p.season_accuracy_offsets),
            "incomplete_fraction": p.incomplete_fraction,
            "label_quality": [{"label": "dw", "reference": "truth"}],
        },
    )
    confusions = [load_transfer_matrix(f"synthetic_dw_noise_{s}")[0] for s in SEASONS]
    missing = incomplete_items(p, seed)
    w = DatasetWriter(root, meta)
    for i in tqdm(range(p.n_locations), desc="noldo", unit="loc"):
        rng = _rng(seed, "noldo", i)
        layout = generate_layout(rng, (p.tile_size,) * 2, LayoutParams(feature_size=p.feature_size))
        grid = _grid("noldo", i, p.tile_size, 10.0)
        for s in range(len(SEASONS)):
            target = float(np.clip(p.target_accuracy + p.season_accuracy_offsets[s], 0.05, 1.0))
            noisy = noisy_labels(rng, layout.classes, confusions[s], target, p.shift_amplitude, p.blob_scale)
            layers = {
                "s2": render_s2(rng, layout, s, p.feature_size),
                "s1": render_s1(rng, layout, s),
                "dw": noisy,
                "truth": layout.classes,
            }
            w.add(f"loc{i:05d}", "train", s, grid, {
                name: data for name, data in layers.items() if (s, name) not in missing.get(i, ())
            })
    return w.close()


def _dw_splits(p: DwParams) -> list[str]:
    return ["train"] * p.n_train + ["test"] * p.n_test


def _dw_tile(seed: int, i: int, p: DwParams):
    """DW tile ``i``'s generator, layout and season: the same for the dw set and the OSM labels on it."""
    rng = _rng(seed, "dw", i)
    layout = generate_layout(rng, (p.tile_size,) * 2, LayoutParams(feature_size=p.feature_size))
    return rng, layout, int(rng.integers(len(SEASONS)))


def generate_dw(root: Path, p: DwParams, seed: int) -> Path:
    """DW downstream set: one acquisition per tile, expert-like labels with unlabelled areas."""
    meta = DW.meta(
        source="synthetic",
        description="SSL4EO-S12@DW-shaped: S1/S2 with clean DW labels, 255 = unlabelled (synthetic)",
        extra={"label_quality": [{"label": "dw", "reference": "truth"}]},
    )
    w = DatasetWriter(root, meta)
    for i, split in enumerate(tqdm(_dw_splits(p), desc="dw", unit="tile")):
        rng, layout, season = _dw_tile(seed, i, p)
        labels = layout.classes.copy()
        gaps = missing_mask(rng, labels.shape, p.unlabelled_fraction, 2 * p.feature_size)
        gaps |= _boundary(layout.classes) & (rng.random(labels.shape) < p.boundary_unlabelled)
        labels[gaps] = UNLABELLED
        w.add(f"dw{i:05d}", split, season, _grid("dw", i, p.tile_size, 10.0), {
            "s2": render_s2(rng, layout, season, p.feature_size),
            "s1": render_s1(rng, layout, season),
            "dw": labels,
            "truth": layout.classes,
        })
    return w.close()


def _stale_regions(rng: np.random.Generator, osm: np.ndarray, fraction: float, n_classes: int) -> np.ndarray:
    """Out-of-date mapping: each connected region of a class becomes another class with prob. ``fraction``."""
    out = osm.copy()
    for c in np.unique(osm):
        regions, n = ndimage.label(osm == c)
        stale = np.flatnonzero(rng.random(n) < fraction) + 1
        for region in stale:
            out[regions == region] = (c + rng.integers(1, n_classes)) % n_classes
    return out


def generate_osm(root: Path, p: OsmParams, seed: int, tiles: DwParams | None = None) -> Path:
    """OSM land use on the DW tiles (``tiles``, the dw section): ids, splits, seasons and grids of the
    dw set; 13-class labels drawn per region from the true classes, partly out of date (per tile a
    fraction drawn uniformly in [0, ``stale_fraction_max``]), misregistered and with unmapped areas."""
    tiles = tiles or DwParams()
    meta = OSM_LABELS.meta(
        source="synthetic",
        description="OSM land use on the DW tiles: misregistered by a smooth field, partly out of date (synthetic)",
        extra={
            "misregistration_px": p.misregistration_px,
            "tiles": "dw",
            "label_quality": [{"label": "osm", "reference": "osm_registered"}],
        },
    )
    subtypes = load_transfer_matrix("synthetic_dw_to_osm")[0]
    w = DatasetWriter(root, meta)
    for i, split in enumerate(tqdm(_dw_splits(tiles), desc="osm", unit="tile")):
        _, layout, season = _dw_tile(seed, i, tiles)
        rng = _rng(seed, "osm", i)
        current = _sample_by_region(rng, layout.classes, subtypes).astype(np.uint8)
        registered = _stale_regions(rng, current, rng.uniform(0, p.stale_fraction_max), subtypes.shape[1])
        field_ = displacement_field(rng, registered.shape, p.misregistration_px, p.misregistration_scale)
        shifted = warp_labels(registered, field_, fill=UNLABELLED)
        shifted[missing_mask(rng, shifted.shape, p.missing_fraction, 2 * tiles.feature_size)] = UNLABELLED
        w.add(f"dw{i:05d}", split, season, _grid("dw", i, tiles.tile_size, 10.0), {
            "osm": shifted,
            "osm_registered": registered,
            "displacement": field_,
        })
    return w.close()


def _igbp_candidates() -> dict[int, list[int]]:
    """IGBP codes per DFC2020 8-class id, through IGBP→DFC2020 and DFC2020→DW-like ids."""
    igbp_to_dfc = load_mapping("igbp_to_dfc2020")
    dfc_to_8 = load_mapping("dfc2020_to_dw")
    n_classes = load_schema("dfc2020").num_classes
    out: dict[int, list[int]] = {k: [] for k in range(n_classes)}
    for igbp, dfc in igbp_to_dfc.items():
        k = dfc_to_8[dfc]
        if k in out:
            out[k].append(igbp)
    return out


def _modis_labels(
    rng: np.random.Generator, truth8: np.ndarray, block: int, noise: float, candidates: dict[int, list[int]]
) -> np.ndarray:
    """MODIS-like IGBP labels: per block, an IGBP class of the dominant (or, with prob. ``noise``,
    the runner-up) high-res class, upsampled to the high-res grid as in SEN12MS."""
    h, w = truth8.shape
    out = np.zeros_like(truth8)
    for y in range(0, h, block):
        for x in range(0, w, block):
            counts = np.bincount(truth8[y : y + block, x : x + block].ravel(), minlength=len(candidates))
            ranked = [k for k in np.argsort(-counts, kind="stable") if counts[k] > 0 and candidates[k]]
            k = ranked[1] if len(ranked) > 1 and rng.random() < noise else ranked[0]
            out[y : y + block, x : x + block] = rng.choice(candidates[k])
    return out


def generate_dfc2020(root: Path, p: Dfc2020Params, seed: int) -> Path:
    """DFC2020-shaped set: S1/S2 patches, MODIS-IGBP-like coarse labels, 8-class high-res labels."""
    meta = DFC2020.meta(
        source="synthetic",
        description="DFC2020-shaped: S1/S2 with MODIS IGBP coarse labels and 8-class labels (synthetic)",
        extra={
            "modis_block_px": p.modis_block,
            "label_quality": [{"label": "modis", "reference": "dfc", "via_mappings": ["igbp_to_dfc2020", "dfc2020_to_dw"]}],
        },
    )
    candidates = _igbp_candidates()
    w = DatasetWriter(root, meta)
    splits = ["validation"] * p.n_validation + ["test"] * p.n_test
    for i, split in enumerate(tqdm(splits, desc="dfc2020", unit="patch")):
        rng = _rng(seed, "dfc2020", i)
        layout = generate_layout(
            rng, (p.patch_size,) * 2, LayoutParams(feature_size=p.feature_size, snow_fraction=0.0)
        )
        truth8 = layout.classes
        if (truth8 == SNOW).any():  # DFC2020's 8 classes have no snow
            raise AssertionError("snow in a DFC2020 layout")
        season = int(rng.integers(len(SEASONS)))
        w.add(f"dfc{i:05d}", split, season, _grid("dfc2020", i, p.patch_size, 10.0), {
            "s2": render_s2(rng, layout, season, p.feature_size),
            "s1": render_s1(rng, layout, season),
            "modis": _modis_labels(rng, truth8, p.modis_block, p.modis_noise, candidates),
            "dfc": truth8,
        })
    return w.close()


def nlcd_from_blocks(
    rng: np.random.Generator, truth4: np.ndarray, block: int, p_label_given_nlcd: np.ndarray,
    nlcd_ids: list[int], confidence: float,
) -> np.ndarray:
    """NLCD-like coarse labels: per block, draw c with probability ∝ Π_ℓ p(ℓ|c)^(confidence·f_ℓ).

    f_ℓ is the block's fraction of high-res class ℓ, so the coarse class is a noisy but informative
    summary of the block through the same p(ℓ|c) table the LSR methods assume.
    """
    h, w = truth4.shape
    n_labels = p_label_given_nlcd.shape[1]
    log_p = np.log(p_label_given_nlcd + 1e-3)
    out = np.zeros(truth4.shape, dtype=np.uint8)
    for y in range(0, h, block):
        for x in range(0, w, block):
            frac = np.bincount(truth4[y : y + block, x : x + block].ravel(), minlength=n_labels) / truth4[
                y : y + block, x : x + block
            ].size
            score = confidence * log_p @ frac
            prob = np.exp(score - score.max())
            out[y : y + block, x : x + block] = nlcd_ids[rng.choice(len(nlcd_ids), p=prob / prob.sum())]
    return out


def generate_lsr(root: Path, p: LsrParams, seed: int) -> Path:
    """Label-super-resolution tiles: aerial RGBN, NLCD-like coarse labels, 4-class truth."""
    meta = LSR.meta(
        source="synthetic",
        description="NAIP+NLCD-shaped label super-resolution tiles at 1 m (synthetic)",
        extra={
            "block_px": p.block,
            "label_quality": [{"label": "nlcd", "reference": "truth", "via_argmax": "nlcd_to_lsr4_prob"}],
        },
    )
    p_table, nlcd_ids, _ = load_transfer_matrix("nlcd_to_lsr4_prob", row_sums="renormalize")
    unknown = sorted(set(p.nlcd_classes) - set(nlcd_ids))
    if unknown:
        raise ValueError(f"synthetic.lsr.nlcd_classes: {unknown} are not rows of nlcd_to_lsr4_prob")
    keep = [nlcd_ids.index(c) for c in p.nlcd_classes]
    p_table, nlcd_ids = p_table[keep], [nlcd_ids[k] for k in keep]
    to4 = load_mapping("synthetic_dw_to_lsr4")
    w = DatasetWriter(root, meta)
    for i in tqdm(range(p.n_tiles), desc="lsr", unit="tile"):
        rng = _rng(seed, "lsr", i)
        layout = generate_layout(
            rng, (p.tile_size,) * 2,
            LayoutParams(feature_size=p.feature_size, road_width=max(2.0, p.feature_size / 10), snow_fraction=0.0),
        )
        truth4 = lookup_table(to4)[layout.classes]
        w.add(f"lsr{i:05d}", "test", 1, _grid("lsr", i, p.tile_size, 1.0), {
            "image": render_aerial(rng, layout, p.feature_size),
            "nlcd": nlcd_from_blocks(rng, truth4, p.block, p_table, nlcd_ids, p.nlcd_confidence),
            "truth": truth4,
        })
    return w.close()


GENERATORS: dict[str, Callable[..., Path]] = {
    "noldo": generate_noldo,
    "dw": generate_dw,
    "osm": generate_osm,
    "dfc2020": generate_dfc2020,
    "lsr": generate_lsr,
}


def generate_dataset(name: str, root: str | Path, section: dict | None = None, seed: int = 0) -> Path:
    """Generate one named dataset under ``root`` (stale samples removed first); returns the index path."""
    params = dataset_params(name, section)
    root = Path(root)
    shutil.rmtree(root / "samples", ignore_errors=True)
    log.info("generating synthetic %s (seed %d): %s", name, seed, params)
    if name == "osm":
        tiles = dataset_params("dw", (section or {}).get(DW_TILES))
        index = generate_osm(root, params, seed, tiles)
    else:
        index = GENERATORS[name](root, params, seed)
    log.info("wrote %s", index)
    return index


__all__ = ["DATASETS", "DW_TILES", "dataset_params", "generate_dataset", "incomplete_items", "nlcd_from_blocks"]
