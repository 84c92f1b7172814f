"""The run summary: one Markdown page and CSV tables over every dataset card (and, later, stage tables)."""

from __future__ import annotations

import json
import os
from collections.abc import Sequence
from pathlib import Path

import pandas as pd

from eolabels.atomic import atomic_path


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
        })
    return pd.DataFrame(rows)


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


def write_summary(
    card_paths: Sequence[str | os.PathLike[str]],
    out_markdown: str | os.PathLike[str],
    out_csv: str | os.PathLike[str],
    tables: Sequence[str | os.PathLike[str]] = (),
) -> pd.DataFrame:
    """Write the summary page and the datasets CSV; each result table (CSV) gets its own section."""
    cards = _cards(card_paths)
    datasets, quality = dataset_table(cards), label_quality_table(cards)
    lines = ["# eolabels run summary", ""]
    if any(c["source"] == "synthetic" for c in cards):
        lines += [
            "> **Synthetic world.** The numbers below describe the embedded synthetic world generated",
            "> offline by `eolabels.data.synthetic`; they are not the papers' datasets or results.",
            "",
        ]
    lines += ["## Datasets", "", datasets.to_markdown(index=False), ""]
    if not quality.empty:
        lines += [
            "## Imperfect labels against their reference",
            "",
            quality.to_markdown(index=False, floatfmt=".4f"),
            "",
            "Coarse layers are mapped to the reference classes before comparison (MODIS via",
            "IGBP→DFC2020→8 classes; NLCD by argmax p(ℓ|c), the naive LSR baseline).",
            "",
        ]
    lines += ["Each dataset's `results/data/<name>/preview.png` shows samples side by side.", ""]
    for path in tables:
        path = Path(path)
        lines += [f"## {path.stem}", "", f"From `{path}`.", "", pd.read_csv(path).to_markdown(index=False, floatfmt=".4f"), ""]
    merged = datasets.merge(quality, on="dataset", how="left") if not quality.empty else datasets
    with atomic_path(out_csv) as tmp:
        merged.to_csv(tmp, index=False)
    with atomic_path(out_markdown) as tmp:
        tmp.write_text("\n".join(lines))
    return merged
