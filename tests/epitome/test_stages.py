"""Rule-level functions (epitome/stages.py) on a tiny synthetic lsr dataset: files, labels, oracle naming."""

from __future__ import annotations

import inspect
import json
import shutil

import pandas as pd
import pytest

from eolabels.data.index import META_FILE, DatasetIndex
from eolabels.data.synthetic import generate_dataset
from eolabels.epitome import stages
from eolabels.epitome.stages import TableOutputs, evaluate_lsr, load_tiles, load_transfer, predict_hr
from eolabels.report.tables import data_banner, source_tag

ORACLE = {"kind": "oracle"}
TABLE = {"kind": "file", "name": "nlcd_to_lsr4_prob"}
READING = {"image_scale": 255}


def table_outputs(folder) -> TableOutputs:
    return TableOutputs(table=str(folder / "t.csv"), markdown=str(folder / "t.md"), figure=str(folder / "t.png"))


def naive_maps(root, table, out) -> None:
    predict_hr(dataset="lsr", variant="naive", root=str(root), reading=READING, table=table, settings={}, seed=0,
               threads=1, out_index=str(out))


@pytest.fixture(scope="module")
def lsr_root(tmp_path_factory):
    root = tmp_path_factory.mktemp("lsr")
    generate_dataset("lsr", root, {"n_tiles": 2, "tile_size": 32, "block": 8, "feature_size": 8.0}, seed=5)
    return root


def test_oracle_table_is_named_in_every_output(lsr_root, tmp_path):
    out = tmp_path / "lsr" / "naive" / "index.csv"
    naive_maps(lsr_root, ORACLE, out)
    assert "ORACLE" in DatasetIndex.open(out.parent).meta.description
    scores = evaluate_lsr(
        dataset="lsr", root=str(lsr_root), reading=READING, table=ORACLE, predictions={"naive": str(out)},
        per_tile=True, preview_tiles=2, title="hand run", outputs=table_outputs(tmp_path),
    )
    assert set(pd.read_csv(tmp_path / "t.csv").variant) == {"naive [ORACLE p(l|c)]"} == set(scores.variant)
    markdown = (tmp_path / "t.md").read_text()
    assert "ORACLE" in markdown and "SYNTHETIC" in markdown
    assert (tmp_path / "t.png").stat().st_size > 5000


@pytest.mark.parametrize("source", ["synthetic", "local:chesapeake_npz"])
def test_lsr_table_names_its_data(lsr_root, tmp_path, source):
    root = tmp_path / "lsr"
    shutil.copytree(lsr_root, root)
    meta = json.loads((root / META_FILE).read_text())
    (root / META_FILE).write_text(json.dumps({**meta, "source": source}))
    out = tmp_path / "naive" / "index.csv"
    naive_maps(root, TABLE, out)
    scores = evaluate_lsr(
        dataset="lsr", root=str(root), reading=READING, table=TABLE, predictions={"naive": str(out)},
        per_tile=False, preview_tiles=1, title="source run", outputs=table_outputs(tmp_path),
    )
    table = pd.read_csv(tmp_path / "t.csv")
    assert list(table.columns[:2]) == ["data", "variant"] and list(table.data) == [source] == list(scores.data)
    markdown = (tmp_path / "t.md").read_text()
    assert markdown.startswith(f"# source run — {source_tag(source)}\n\n> {data_banner(source)}\n")
    assert ("SYNTHETIC" in markdown) == (source == "synthetic")
    assert source_tag(source) in DatasetIndex.open(out.parent).meta.description


def test_oracle_naive_is_at_least_as_good_as_the_table_naive(lsr_root):
    # argmax of the truth's own co-occurrence maximises pixel accuracy per coarse class: a sanity bound
    tiles = load_tiles(lsr_root, READING)
    def accuracy(transfer):
        hits = sum(int((transfer.table.argmax(1)[transfer.slots(t.coarse, t.name)] == t.truth).sum()) for t in tiles)
        return hits / sum(int((t.truth != 255).sum()) for t in tiles)
    oracle = load_transfer(lsr_root, ORACLE, tiles)
    listed = load_transfer(lsr_root, {"kind": "file", "name": "nlcd_to_lsr4_prob"}, tiles)
    assert accuracy(oracle) >= accuracy(listed)


def test_wrong_table_for_the_truth_fails_naming_it(lsr_root):
    with pytest.raises(ValueError, match="soft IGBP"):
        load_transfer(lsr_root, {"kind": "soft_igbp", "confidence": 0.7, "unscored_splits": {}}, [])


def test_train_epitome_stage_writes_a_layered_epitome_and_removes_every_checkpoint(lsr_root, tmp_path):
    import torch

    from eolabels.epitome.stages import EpitomeOutputs, train_epitome

    settings = {"side": 8, "layers": 2, "layer_training": "individual", "iterations": 3, "batch_size": 8,
                "patch_sizes": [3], "checkpoint_every": 1, "learning_rate": 0.003, "diversify": False}
    figures = {name: str(tmp_path / f"{name}.png") for name in ("means", "usage", "promotion", "loss")}
    outputs = EpitomeOutputs(epitome=str(tmp_path / "epitome.pt"), history=str(tmp_path / "history.csv"), **figures)
    train_epitome(dataset="lsr", root=str(lsr_root), reading=READING, settings=settings, seed=0, device="cpu",
                  threads=1, outputs=outputs)
    saved = torch.load(tmp_path / "epitome.pt", weights_only=False)
    assert saved["epitome"]["mean"].shape[0] == 2 and saved["settings"]["layer_training"] == "individual"
    assert len(pd.read_csv(tmp_path / "history.csv")) == 2 * 3  # the two layers' runs one after the other
    assert sorted(p.name for p in tmp_path.iterdir() if "checkpoint" in p.name) == []


RULES = ["train_epitome", "embed_labels", "lsr", "predict_hr", "dfc2020_ensemble", "dfc2020_distill", "evaluate_lsr"]


@pytest.mark.parametrize("rule", RULES)
def test_rule_entry_points_take_keywords_only(rule):
    parameters = inspect.signature(getattr(stages, rule)).parameters.values()
    assert all(p.kind is inspect.Parameter.KEYWORD_ONLY for p in parameters)
