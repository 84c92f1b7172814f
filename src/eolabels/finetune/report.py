"""Tables II–VI of CromSS from the rows' ``summary.json`` (mean ± std over repeats, spec §8 scores).

Table II (DFC2020), III (SSL4EO-S12@DW) and IV (SSL4EO-S12@OSM): one row per input × encoder source,
frozen then fine-tuned OA / AA / mIoU / mF1.  Table V: the ablation (random, single-modal, midF,
lateF, CromSS) on every task.  Table VI: CromSS-midF pretrained with each label-smoothing setting.
Cells read ``mean ± std`` (sample standard deviation over the repeats); each table has a twin
``*_runs.csv`` with every run's numbers.  A table is written only when every row it lists is
present, so a failed row never leaves a half-filled table.
"""

from __future__ import annotations

import json
import os
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import pandas as pd

from eolabels.atomic import atomic_path
from eolabels.finetune.tasks import SCORES, task
from eolabels.report.tables import DATA_COLUMN, combined_source, write_table

MODE_NAMES = {"frozen": "frozen", "finetuned": "fine-tuned"}
VARIANT_NAMES = {"random": "random init", "s1": "single-modal S1", "s2": "single-modal S2", "midF": "midF",
                 "lateF": "lateF", "cromss_midF": "CromSS-midF", "cromss_lateF": "CromSS-lateF"}
ABLATION = ("random", "s1", "s2", "midF", "lateF", "cromss_midF", "cromss_lateF")


def source_label(source: str) -> str:
    """The row label of an encoder source, as the paper names it."""
    if source.startswith("ext-"):
        return f"{source[4:]} (local weights)"
    if "-ls" in source:
        beta, alpha = source.split("-ls")[1].split("-")
        return f"CromSS-midF (β {beta}, α {alpha})"
    if source.endswith("-denoised"):
        return f"{VARIANT_NAMES.get(source[:-9], source[:-9])}, self-denoised labels"
    return VARIANT_NAMES.get(source, source)


def cell(mean: float, std: float) -> str:
    return f"{mean:.4f} ± {std:.4f}"


def load_summaries(paths: Sequence[str | os.PathLike[str]]) -> list[dict[str, Any]]:
    summaries = [json.loads(Path(p).read_text()) for p in paths]
    if not summaries:
        raise ValueError("no fine-tuning rows to tabulate")
    return summaries


def _scores(summary: Mapping[str, Any], mode: str, score: str) -> tuple[float, float] | None:
    entry = summary["modes"].get(mode)
    return None if entry is None else (entry["mean"][score], entry["std"][score])


def task_table(summaries: Sequence[Mapping[str, Any]], modes: Sequence[str]) -> pd.DataFrame:
    """Table II/III/IV of one task: input × source rows, each mode's four scores."""
    rows = []
    for s in summaries:
        row: dict[str, Any] = {"input": s["modality"].upper(), "bands": s["bands"] or "-",
                               "encoder weights": source_label(s["source"]), DATA_COLUMN: s["data"]}
        for mode in modes:
            for score in SCORES:
                value = _scores(s, mode, score)
                row[f"{MODE_NAMES[mode]} {score}"] = "" if value is None else cell(*value)
        rows.append(row)
    return pd.DataFrame(rows)


def runs_table(summaries: Sequence[Mapping[str, Any]]) -> pd.DataFrame:
    """Every run's scores (one line per row, mode and repeat) for re-analysis."""
    lines = []
    for s in summaries:
        for mode, entry in s["modes"].items():
            for repeat, scores in enumerate(entry["runs"]):
                lines.append({"task": s["task"], "input": s["input"], "source": s["source"], "mode": mode,
                              "repeat": repeat, **scores, DATA_COLUMN: s["data"]})
    return pd.DataFrame(lines)


def transfer_verdicts(summaries: Sequence[Mapping[str, Any]], modes: Sequence[str]) -> list[str]:
    """Per input and mode: does the best pretrained source beat random init on mIoU, by more than the
    spread of the repeats? Stated as measured."""
    notes = []
    by_input: dict[str, list[Mapping[str, Any]]] = {}
    for s in summaries:
        by_input.setdefault(s["input"], []).append(s)
    for ft_input, group in by_input.items():
        random = next((s for s in group if s["source"] == "random"), None)
        pretrained = [s for s in group if s["source"] != "random"]
        if random is None or not pretrained:
            continue
        for mode in modes:
            base = _scores(random, mode, "mIoU")
            ranked = [(v, s) for s in pretrained if (v := _scores(s, mode, "mIoU")) is not None]
            if base is None or not ranked:
                continue
            (mean, std), best = max(ranked, key=lambda x: x[0][0])
            gap = mean - base[0]
            spread = max(std, base[1])
            verdict = ("beats" if gap > spread else "does not clearly beat" if gap > 0 else "does not beat")
            notes.append(f"{ft_input}, {MODE_NAMES[mode]}: the best pretrained encoder ({source_label(best['source'])}, "
                         f"mIoU {mean:.4f}) {verdict} random init ({base[0]:.4f}); gap {gap:+.4f}, repeat std ≤ {spread:.4f}.")
    return notes


def tabulate_task(summary_paths: Sequence[str | os.PathLike[str]], modes: Sequence[str], out_csv: str | Path,
                  out_md: str | Path, runs_csv: str | Path) -> pd.DataFrame:
    """Write Table II, III or IV of one task and its per-run twin."""
    summaries = load_summaries(summary_paths)
    t = task(summaries[0]["task"])
    table = task_table(summaries, modes)
    with atomic_path(runs_csv) as tmp:
        runs_table(summaries).to_csv(tmp, index=False)
    repeats = max(len(e["runs"]) for s in summaries for e in s["modes"].values())
    notes = [f"Test-set scores after fine-tuning ({summaries[0].get('framework', '')}; {t.title}), "
             f"mean ± sample std over {repeats} repeat(s); every test tile scored unless drop_last_test."]
    return write_table(table, out_csv, out_md, t.title, notes + transfer_verdicts(summaries, modes))


def _miou_columns(summaries: Sequence[Mapping[str, Any]], modes: Sequence[str], tasks: Sequence[str],
                  row_keys: Sequence[tuple[str, str]], label: Any) -> pd.DataFrame:
    lookup = {(s["task"], s["input"], s["source"]): s for s in summaries}
    rows = []
    for ft_input, source in row_keys:
        row: dict[str, Any] = {"input": ft_input, **label(source)}
        sources = {}
        for t in tasks:
            s = lookup.get((t, ft_input, source))
            if s is not None:
                sources[t] = s["data"]
            for mode in modes:
                value = None if s is None else _scores(s, mode, "mIoU")
                row[f"{t} {MODE_NAMES[mode]} mIoU"] = "" if value is None else cell(*value)
        row[DATA_COLUMN] = combined_source(sources) if sources else ""
        rows.append(row)
    return pd.DataFrame(rows)


def tabulate_ablation(summary_paths: Sequence[str | os.PathLike[str]], modes: Sequence[str],
                      out_csv: str | Path, out_md: str | Path) -> pd.DataFrame:
    """Table V: random / single-modal / midF / lateF / CromSS encoders on every task (mIoU)."""
    summaries = load_summaries(summary_paths)
    tasks = list(dict.fromkeys(s["task"] for s in summaries))
    keys = list(dict.fromkeys((s["input"], s["source"]) for s in summaries if s["source"] in ABLATION))
    keys.sort(key=lambda k: (k[0], ABLATION.index(k[1])))
    table = _miou_columns(summaries, modes, tasks, keys, lambda src: {"encoder weights": source_label(src)})
    return write_table(table, out_csv, out_md, "Table V: ablation of the pretraining variants",
                       ["Test mIoU, mean ± sample std over the repeats, on each downstream task."])


def tabulate_smoothing(summary_paths: Sequence[str | os.PathLike[str]], modes: Sequence[str],
                       settings: Mapping[str, str], out_csv: str | Path, out_md: str | Path) -> pd.DataFrame:
    """Table VI: CromSS-midF pretrained with label-smoothing settings (β spatial-temporal, α uniform).

    ``settings`` maps each row's source to its setting ``ls<beta>-<alpha>`` (the main CromSS-midF row
    stands for the configured smoothing)."""
    summaries = [s for s in load_summaries(summary_paths) if s["source"] in settings]
    if not summaries:
        raise ValueError("no label-smoothing rows to tabulate")
    tasks = list(dict.fromkeys(s["task"] for s in summaries))
    keys = sorted(dict.fromkeys((s["input"], s["source"]) for s in summaries),
                  key=lambda k: [float(f) for f in settings[k[1]][2:].split("-")])

    def label(source: str) -> dict[str, str]:
        beta, alpha = settings[source][2:].split("-")
        return {"β (spatial-temporal)": beta, "α (uniform)": alpha}

    table = _miou_columns(summaries, modes, tasks, keys, label)
    return write_table(table, out_csv, out_md, "Table VI: label smoothing in CromSS-midF pretraining",
                       ["Test mIoU, mean ± sample std over the repeats; (0, 0) is pretraining on the hard noisy labels."])
