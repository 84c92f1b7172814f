"""The run summary: one Markdown page over every dataset card and every registered result table.

The page opens with one data banner per source among the cards and the tables' ``data`` columns
(:func:`eolabels.report.tables.data_banner`), so a run on the synthetic world says SYNTHETIC and a
run on real data does not.
"""

from __future__ import annotations

import json
import os
from collections.abc import Sequence
from pathlib import Path

import pandas as pd

from eolabels.atomic import atomic_path
from eolabels.report.tables import DATA_COLUMN, data_banner, data_sources, quote, table_markdown


def _cards(card_paths: Sequence[str | os.PathLike[str]]) -> list[dict]:
    return [json.loads(Path(p).read_text()) for p in card_paths]


def dataset_table(cards: list[dict]) -> pd.DataFrame:
    """One row per dataset: source, size, splits, tile shapes, misregistration where relevant."""
    rows = []
    for card in cards:
        mis = card.get("misregistration", {})
        rows.append({
            "dataset": card["name"],
            "source": card["source"],
            "samples": card["samples"],
            "locations": card["locations"],
            "splits": " ".join(f"{k}:{v}" for k, v in card["splits"].items()),
            "tile": " ".join(card["tile_shapes"]),
            "misregistration mean/max (px)": f"{mis['mean_px']:.2f} / {mis['max_px']:.2f}" if mis else "",
            "prepared": _preparation(card),
        })
    return pd.DataFrame(rows)


def _preparation(card: dict) -> str:
    """What assembly or the OSM↔DW filter kept of the acquired data, from the card."""
    parts = []
    if "assembly" in card:
        a = card["assembly"]
        why = ", ".join(f"{layer} {n}" for layer, n in a["dropped_by_layer"].items() if n)
        parts.append(
            f"assembled: {a['locations_kept']} of {a['locations_raw']} locations complete"
            + (f" (dropped lacking {why})" if why else "")
        )
    if "osm_filter" in card:
        f = card["osm_filter"]
        parts.append(
            f"OSM↔DW filter: {f['kept']} of {f['tiles']} DW tiles with OA ≥ {f['threshold']:g} "
            f"(train {f['train']}, test {f['test']} incl. {f['test_from_dw_train']} DW-train)"
        )
    return "; ".join(parts)


def label_quality_table(cards: list[dict]) -> pd.DataFrame:
    """One row per imperfect label layer: its accuracy against the reference layer."""
    rows = []
    for card in cards:
        for q in card.get("label_quality", []):
            how = q["how"] if isinstance(q["how"], str) else "; ".join(f"{k}={v}" for k, v in q["how"].items())
            by_season = q.get("pixel_accuracy_by_season", {})
            rows.append({
                "dataset": card["name"],
                "label": q["label"],
                "reference": q["reference"],
                "mapped": how,
                "OA": q["pixel_accuracy"],
                "mIoU": q["mIoU"],
                "mIoU (present classes)": q["mIoU_present_classes"],
                "labelled": q["labelled_fraction"],
                "OA by season": " ".join(f"{k}:{v:.3f}" for k, v in by_season.items()),
            })
    return pd.DataFrame(rows)


def _table_sources(table: pd.DataFrame) -> list[str]:
    """The sources a result table names in its ``data`` column (none for a table without one)."""
    return data_sources(table) if DATA_COLUMN in table.columns else []


def write_summary(
    *,
    card_paths: Sequence[str | os.PathLike[str]],
    out_markdown: str | os.PathLike[str],
    out_csv: str | os.PathLike[str],
    tables: Sequence[str | os.PathLike[str]] = (),
) -> pd.DataFrame:
    """Write the summary page and the datasets CSV; each result table (CSV) gets its own section."""
    cards = _cards(card_paths)
    datasets, quality = dataset_table(cards), label_quality_table(cards)
    results = [(Path(path), pd.read_csv(path)) for path in tables]
    sources = [card["source"] for card in cards] + [s for _, table in results for s in _table_sources(table)]
    lines = ["# eolabels run summary", ""]
    for source in dict.fromkeys(sources):
        lines += [quote(data_banner(source)), ""]
    lines += ["## Datasets", "", table_markdown(datasets), ""]
    if not quality.empty:
        lines += [
            "## Imperfect labels against their reference",
            "",
            table_markdown(quality),
            "",
            "Coarse layers are mapped to the reference classes before comparison (MODIS via",
            "IGBP→DFC2020→8 classes; NLCD by argmax p(ℓ|c), the naive LSR baseline).",
            "",
        ]
    lines += ["Each dataset's `results/data/<name>/preview.png` shows samples side by side.", ""]
    for path, table in results:
        data = ", ".join(_table_sources(table)) or ("no rows" if DATA_COLUMN in table.columns else "not recorded")
        lines += [f"## {path.stem}", "", f"From `{path}`; data: {data}.", "", table_markdown(table), ""]
    merged = datasets.merge(quality, on="dataset", how="left") if not quality.empty else datasets
    with atomic_path(out_csv) as tmp:
        merged.to_csv(tmp, index=False)
    with atomic_path(out_markdown) as tmp:
        tmp.write_text("\n".join(lines))
    return merged
