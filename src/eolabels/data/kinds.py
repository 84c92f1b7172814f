"""Dataset contracts: one declaration per dataset kind, shared by every writer and every reader.

A kind names its layers, each layer's role, bands, dtype and class schema, its seasons and splits.
Writers (the synthetic world, the local importers, later the released-layout readers and Earth
Engine) build their ``dataset.json`` with :meth:`DatasetKind.meta`; consumers never hard-code a layer
name but ask the dataset's description for a role (``meta.layer("label")``,
``meta.layer("image", modality="s2")``), so any source that honours the contract feeds every stage.

Every kind is written in the common layout of :mod:`eolabels.data.index`::

    results/data/<kind>/
      dataset.json                          this contract, filled in (source, description, extra)
      index.csv                             one row per sample (and season), a relative path per layer
      samples/<id>[/<season>]/<layer>.tif   one GeoTIFF per layer; the season folder only where the
                                            kind has seasons

The kinds' own docstrings (``KINDS[name].description``) say what each layer is.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from eolabels.data.index import DatasetMeta, IndexError_, LayerSpec, find_layer
from eolabels.tables import UNLABELLED

S2_BANDS = ("B1", "B2", "B3", "B4", "B5", "B6", "B7", "B8", "B8A", "B9", "B10", "B11", "B12")
S1_BANDS = ("VV", "VH")
AERIAL_BANDS = ("R", "G", "B", "NIR")
SEASONS = ("spring", "summer", "autumn", "winter")

S2 = LayerSpec(bands=S2_BANDS, dtype="uint16", role="image", modality="s2")
S1 = LayerSpec(bands=S1_BANDS, dtype="float32", role="image", modality="s1")
AERIAL = LayerSpec(bands=AERIAL_BANDS, dtype="uint8", role="image", modality="aerial")
IMAGES = {spec.modality: spec for spec in (S2, S1, AERIAL)}  # the stored image layer of each modality


def label_layer(schema: str, role: str = "label", nodata: float | None = UNLABELLED) -> LayerSpec:
    """A single-band uint8 class-id layer of ``schema`` (band named ``<schema>_label``)."""
    return LayerSpec(bands=(f"{schema}_label",), dtype="uint8", role=role, schema=schema, nodata=nodata)


@dataclass(frozen=True)
class DatasetKind:
    """The contract of one dataset kind; ``optional`` layers may be absent from a source."""

    name: str
    description: str
    layers: Mapping[str, LayerSpec]
    seasons: tuple[str, ...] = ()
    splits: tuple[str, ...] = ("train",)
    optional: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        unknown = [n for n in self.optional if n not in self.layers]
        if unknown:
            raise IndexError_(f"kind {self.name!r}: optional layers {unknown} are not layers")

    def layer(self, role: str, *, modality: str | None = None, schema: str | None = None) -> LayerSpec:
        """The contract's one layer with ``role`` (see :meth:`DatasetMeta.layer`)."""
        return self.layers[find_layer(self.layers, f"kind {self.name!r}", role, modality=modality, schema=schema)]

    def meta(
        self,
        *,
        source: str,
        description: str,
        layers: Sequence[str] | None = None,
        seasons: Sequence[str] | None = None,
        extra: dict[str, Any] | None = None,
    ) -> DatasetMeta:
        """The ``dataset.json`` of one dataset of this kind.

        ``layers`` picks the layers a source provides (all when None; every non-optional one is
        required); ``seasons`` replaces the kind's seasons for a source that has other dates (a
        single-date scene is one season).
        """
        chosen = list(self.layers) if layers is None else list(layers)
        unknown = [n for n in chosen if n not in self.layers]
        missing = [n for n in self.layers if n not in chosen and n not in self.optional]
        if unknown or missing:
            raise IndexError_(
                f"kind {self.name!r}: unknown layers {unknown}, missing required layers {missing} "
                f"(layers {list(self.layers)}, optional {list(self.optional)})"
            )
        return DatasetMeta(
            name=self.name,
            source=source,
            layers={n: self.layers[n] for n in self.layers if n in chosen},
            seasons=tuple(self.seasons if seasons is None else seasons),
            description=description,
            extra=dict(extra or {}),
        )


NOLDO = DatasetKind(
    name="noldo",
    description="""NoLDO-S12-shaped pretraining set (CromSS §II-A): one row per location and season.

    s2     image (s2)   uint16  13 bands B1…B12 with B8A: Sentinel-2 L1C digital numbers
    s1     image (s1)   float32 VV, VH backscatter in dB (optional: a single-modal S2 source has none)
           (a released source may store both as uint8 in the SSL4EO-S12 μ ± 2σ encoding instead:
           dtype uint8 in dataset.json, read as /255)
    dw     label        uint8   Dynamic World ids 0–8, noisy (model predictions), 255 unlabelled
    truth  truth        uint8   the true Dynamic World classes (synthetic world only)
    seasons spring, summer, autumn, winter; split train""",
    layers={"s2": S2, "s1": S1, "dw": label_layer("dw"), "truth": label_layer("dw", role="truth")},
    seasons=SEASONS,
    optional=("s1", "truth"),
)

DW = DatasetKind(
    name="dw",
    description="""SSL4EO-S12@DW-shaped downstream set: one acquisition per tile.

    s2, s1  images as in noldo
    dw      label   uint8  clean (expert) Dynamic World ids 0–8, 255 unlabelled
    truth   truth   uint8  the true classes (synthetic world only)
    splits train, test""",
    layers={"s2": S2, "s1": S1, "dw": label_layer("dw"), "truth": label_layer("dw", role="truth")},
    splits=("train", "test"),
    optional=("s1", "truth"),
)

OSM = DatasetKind(
    name="osm",
    description="""SSL4EO-S12@OSM-shaped downstream set: OSM land use misregistered against the imagery.

    s2, s1          images as in noldo
    osm             label         uint8    13 OSM classes as mapped (misregistered), 255 unmapped
    dw              label         uint8    Dynamic World ids 0–8 on the imagery's grid
    osm_registered  truth         uint8    the OSM labels before misregistration (synthetic only)
    displacement    displacement  float32  dy, dx (px) of the misregistration (synthetic only)
    splits train, test""",
    layers={
        "s2": S2, "s1": S1, "osm": label_layer("osm"), "dw": label_layer("dw"),
        "osm_registered": label_layer("osm", role="truth"),
        "displacement": LayerSpec(bands=("dy_px", "dx_px"), dtype="float32", role="displacement"),
    },
    splits=("train", "test"),
    optional=("s1", "dw", "osm_registered", "displacement"),
)

OSM_LABELS = DatasetKind(
    name="osm_labels",
    description="""OSM land use fetched for the DW tiles (CromSS spec §9), before the OSM↔DW filter.

    One row per DW tile, with the tile's id, split, season and grid; the imagery and DW labels stay in
    the dw dataset (the filter pairs the two by id).
    osm             label         uint8    13 OSM classes as mapped (misregistered), 255 unmapped
    osm_registered  truth         uint8    the OSM labels before misregistration (synthetic only)
    displacement    displacement  float32  dy, dx (px) of the misregistration (synthetic only)
    splits train, test (those of the DW tiles)""",
    layers={
        "osm": label_layer("osm"),
        "osm_registered": label_layer("osm", role="truth"),
        "displacement": LayerSpec(bands=("dy_px", "dx_px"), dtype="float32", role="displacement"),
    },
    splits=("train", "test"),
    optional=("osm_registered", "displacement"),
)

DFC2020 = DatasetKind(
    name="dfc2020",
    description="""DFC2020-shaped set (SEN12MS ROIs): S1/S2 patches with MODIS and high-res labels.

    s2, s1  images as in noldo
    modis   coarse_label  uint8  MODIS IGBP land-cover codes (SEN12MS lc layer 1), 0 no data
    dfc     label         uint8  the 8 DFC2020 classes (config/tables/dfc2020.csv), 255 unlabelled
    splits validation (training), test""",
    layers={
        "s2": S2, "s1": S1,
        "modis": LayerSpec(bands=("igbp",), dtype="uint8", role="coarse_label", schema="igbp", nodata=0),
        "dfc": label_layer("dfc2020"),
    },
    splits=("validation", "test"),
    optional=("s1", "modis"),  # the authors' DFC2020 LMDBs carry no MODIS layer
)

LSR = DatasetKind(
    name="lsr",
    description="""Label-super-resolution tiles (NAIP + NLCD + Chesapeake land cover, CVPR 2019 layout).

    image  image (aerial)  uint8  R, G, B, NIR at 1 m
    nlcd   coarse_label    uint8  NLCD 2011 codes upsampled from 30 m, 0 no data
    truth  truth           uint8  the 4 LSR classes (water, forest, field, built), 255 unlabelled
    split test""",
    layers={
        "image": AERIAL,
        "nlcd": LayerSpec(bands=("nlcd",), dtype="uint8", role="coarse_label", schema="nlcd", nodata=0),
        "truth": label_layer("lsr4", role="truth"),
    },
    splits=("test",),
)

KINDS: dict[str, DatasetKind] = {k.name: k for k in (NOLDO, DW, OSM, OSM_LABELS, DFC2020, LSR)}


def dataset_kind(name: str) -> DatasetKind:
    """The contract of kind ``name``; an unknown name raises ``KeyError`` listing the kinds."""
    try:
        return KINDS[name]
    except KeyError:
        raise KeyError(f"unknown dataset kind {name!r}; kinds: {sorted(KINDS)}") from None
