"""The pretraining table: one row per variant × band set, from each run's ``summary.json``.

Branch columns are named by modality (S1 / S2), so a single-modal run fills only its own; scores
are the last epoch's validation metrics against the noisy labels and, when the dataset has a hidden
truth (the synthetic world), against the truth.
"""

from __future__ import annotations

import json
import os
from collections.abc import Sequence
from pathlib import Path

import pandas as pd

from eolabels.report.tables import DATA_COLUMN, write_table

SCORES = ("OA", "mIoU")


def pretraining_row(summary: dict) -> dict[str, object]:
    """One table row from a run summary (see :func:`eolabels.cromss.pretraining.write_summary`)."""
    final = summary["final"]
    row: dict[str, object] = {
        "variant": summary["variant"],
        "bands": summary["bands"] if "s2" in summary["modalities"] else "-",
        "encoder": summary["encoder"],
        "epochs": summary["epochs"],
        DATA_COLUMN: summary["source"],
    }
    for branch, modality in enumerate(summary["modalities"], start=1):
        for score in SCORES:
            row[f"{modality.upper()} {score} (truth)"] = final.get(f"v{branch}_truth_{score}")
            row[f"{modality.upper()} {score} (noisy)"] = final.get(f"v{branch}_{score}")
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
    score_cols = [f"{m} {s} ({ref})" for m in ("S1", "S2") for ref in ("truth", "noisy") for s in SCORES]
    ident = ["variant", "bands", "encoder", "epochs", DATA_COLUMN]
    rest = ["val loss", "selection ratio", "note"]
    table = table[[c for c in ident + score_cols + rest if c in table.columns]].dropna(axis=1, how="all")
    if (table["note"] == "").all():
        table = table.drop(columns="note")
    against = "the noisy labels and the hidden truth" if any("truth" in c for c in table.columns) else "the noisy labels"
    return write_table(table, out_csv, out_md, "CromSS pretraining",
                       [f"Last-epoch validation scores of each branch against {against}."])
