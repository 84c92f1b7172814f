"""Training curves of CromSS pretraining (paper Fig. 8 a,b) from a run's ``metrics.csv``.

Kept free of torch so the plotting job starts in a second; a figure from the synthetic world says
so in its title.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import pandas as pd

from eolabels.report.figures import save_figure
from eolabels.report.tables import source_tag


def pyplot() -> Any:
    """matplotlib.pyplot on the file-only Agg backend (jobs run without a display)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def plot_pretrain_curves(metrics_csv: str | os.PathLike[str], summary_json: str | os.PathLike[str],
                         out_png: str | os.PathLike[str]) -> Path:
    """(a) training and validation losses, (b) accuracy and mIoU per branch on the validation split,
    against the noisy labels and, where present, the truth, (c) the same on the DW test split when the
    run scored it (the paper's Fig. 8 a,b), (d) learning rate and selection ratio r(e) — per epoch."""
    plt = pyplot()
    m = pd.read_csv(metrics_csv)
    summary = json.loads(Path(summary_json).read_text())
    branches = {i: modality.upper() for i, modality in enumerate(summary["modalities"], start=1)}
    has_test = any(f"t{i}_OA" in m for i in branches)
    fig, axes = plt.subplots(1, 4 if has_test else 3, figsize=(20 if has_test else 15, 4.2))
    ax = axes[0]
    for col in ("tr_loss", "tr_segloss_1", "tr_segloss_2", "tr_conloss", "v_loss"):
        if col in m:
            ax.plot(m["epoch"], m[col], marker=".", label=col, ls="--" if col == "v_loss" else "-")
    ax.set(title="(a) losses", xlabel="epoch", ylabel="loss")
    ax.legend(fontsize=7)
    ax = axes[1]
    prefixes = {f"v{i}_": name for i, name in branches.items()}
    for col in [c for c in m.columns if c[:3] in prefixes and c.endswith(("_OA", "_mIoU"))]:
        label = prefixes[col[:3]] + " " + col[3:].replace("truth_", "").replace("_", " ")
        ax.plot(m["epoch"], m[col], marker=".", label=label + (" (truth)" if "truth" in col else " (noisy)"),
                ls="-" if "truth" in col else ":")
    ax.set(title="(b) validation split: OA / mIoU per branch (dotted = vs noisy labels, solid = vs truth)",
           xlabel="epoch", ylim=(0, 1))
    ax.title.set_fontsize(8)
    ax.legend(fontsize=6, ncol=2)
    if has_test:
        ax = axes[2]
        for i, name in branches.items():
            for score in ("OA", "mIoU"):
                scored = m[["epoch", f"t{i}_{score}"]].dropna()
                ax.plot(scored["epoch"], scored[f"t{i}_{score}"], marker=".", label=f"{name} {score}",
                        ls="-" if score == "OA" else "--")
        ax.set(title="(c) DW test split: OA / mIoU per branch (the task's labels)", xlabel="epoch", ylim=(0, 1))
        ax.title.set_fontsize(8)
        ax.legend(fontsize=6, ncol=2)
    ax = axes[-1]
    ax.plot(m["epoch"], m["lr"], marker=".", color="k", label="lr")
    ax.set(title=f"({'d' if has_test else 'c'}) learning rate and selection", xlabel="epoch", ylabel="lr")
    ax.set_yscale("log")
    if "sel_ratio" in m:
        twin = ax.twinx()
        for col in ("sel_ratio", "tr_selweight_1", "tr_selweight_2"):
            twin.plot(m["epoch"], m[col], marker=".", label=col)
        twin.set(ylim=(0, 1.05), ylabel="ratio / mean weight")
        twin.legend(fontsize=7, loc="lower left")
    title = f"{summary['variant']}_{summary['bands']} ({summary['encoder']}, {'+'.join(summary['modalities'])})"
    note = f"\n{summary['prior_note']}" if summary.get("prior_note") else ""
    fig.suptitle(f"CromSS pretraining {title} — {source_tag(summary['source'])}{note}", fontsize=10)
    fig.tight_layout(rect=(0, 0, 1, 0.9 if note else 0.94))
    return save_figure(fig, out_png, dpi=90)
