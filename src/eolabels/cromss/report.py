"""The pretraining table: one row per variant × band set, from each run's ``summary.json``.

Branch columns are named by modality (S1 / S2), so a single-modal run fills only its own; scores
are the final model's on every season of the held-out locations, against the noisy labels and, when
the dataset has a hidden truth (the synthetic world), against the truth — beside the noisy labels'
own accuracy there, the bar a network trained on them has to clear; and, when the runs scored it,
on the DW task's test split.
"""

from __future__ import annotations

import json
import os
from collections.abc import Sequence
from pathlib import Path

import pandas as pd

from eolabels.report.tables import DATA_COLUMN, write_table

SCORES = ("OA", "mIoU")
LABELS_COLUMN = "noisy labels OA (truth)"


def pretraining_row(summary: dict) -> dict[str, object]:
    """One table row from a run summary (see :func:`eolabels.cromss.pretraining.write_summary`)."""
    final, heldout = summary["final"], summary["heldout"]
    row: dict[str, object] = {
        "variant": summary["variant"],
        "bands": summary["bands"] if "s2" in summary["modalities"] else "-",
        "encoder": summary["encoder"],
        "epochs": summary["epochs"],
        DATA_COLUMN: summary["source"],
    }
    for branch, modality in enumerate(summary["modalities"], start=1):
        for score in SCORES:
            row[f"{modality.upper()} {score} (truth)"] = heldout.get(f"h{branch}_truth_{score}")
            row[f"{modality.upper()} {score} (noisy)"] = heldout.get(f"h{branch}_{score}")
            row[f"{modality.upper()} {score} (DW test)"] = final.get(f"t{branch}_{score}")
    row[LABELS_COLUMN] = heldout.get("labels_truth_OA")
    row["val loss"] = final.get("v_loss")
    row["selection ratio"] = final.get("sel_ratio")
    row["note"] = summary.get("prior_note", "")
    return row


def tabulate_pretraining(summaries: Sequence[str | os.PathLike[str]], out_csv: str | os.PathLike[str],
                         out_md: str | os.PathLike[str]) -> pd.DataFrame:
    """Write ``pretraining.csv`` and its Markdown twin; each row names its data, the Markdown says when
    they are synthetic."""
    runs = [json.loads(Path(p).read_text()) for p in summaries]
    if not runs:
        raise ValueError("no pretraining summaries to tabulate")
    table = pd.DataFrame([pretraining_row(r) for r in runs])
    # fixed column order: identity, S1 then S2 scores, the rest; empty columns dropped
    score_cols = [f"{m} {s} ({ref})" for m in ("S1", "S2") for ref in ("truth", "noisy", "DW test") for s in SCORES]
    ident = ["variant", "bands", "encoder", "epochs", DATA_COLUMN]
    rest = [LABELS_COLUMN, "val loss", "selection ratio", "note"]
    table = table[[c for c in ident + score_cols + rest if c in table.columns]].dropna(axis=1, how="all")
    if (table["note"] == "").all():
        table = table.drop(columns="note")
    if LABELS_COLUMN in table.columns:
        notes = ["Each branch's final scores on every season of the held-out locations, against the noisy "
                 f"labels and the hidden truth; '{LABELS_COLUMN}' is the noisy labels' own accuracy there.",
                 *_verdicts(table)]
    else:
        notes = ["Each branch's final scores on every season of the held-out locations, against the noisy labels."]
    if any(c.endswith("(DW test)") for c in table.columns):
        notes.append("'(DW test)': the final model's own predictions on the DW task's test split, against its "
                     "labels (the paper's Fig. 8 a,b evaluation), before any fine-tuning.")
    return write_table(table, out_csv, out_md, "CromSS pretraining", notes)


def _verdicts(table: pd.DataFrame) -> list[str]:
    """Per modality: which runs end above the noisy labels they learned from, against the truth."""
    lines = []
    for modality in ("S1", "S2"):
        column = f"{modality} OA (truth)"
        if column not in table.columns:
            continue
        rows = table.dropna(subset=[column])
        gains = rows[column] - rows[LABELS_COLUMN]
        lines.append(f"{modality} branches above their noisy labels: {int((gains > 0).sum())} of {len(rows)} "
                     f"(OA − labels OA from {gains.min():+.3f} to {gains.max():+.3f}).")
    return lines
