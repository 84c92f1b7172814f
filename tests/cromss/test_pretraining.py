"""Config section → trainer settings, and the pretraining table from run summaries."""

import json

import pandas as pd
import pytest
from snakemake.utils import validate

from eolabels.cromss.report import tabulate_pretraining
from eolabels.cromss.selection import SelectionConfig
from eolabels.cromss.pretraining import pretrain_config, s2_channels, smoothing_settings
from eolabels.cromss.stages import PretrainOutputs
from eolabels.cromss.train import PretrainConfig
from eolabels.report.tables import data_banner
from schema_defaults import assert_defaults_match, schema_section


@pytest.fixture()
def settings(repo_root) -> dict:
    """The ``cromss:`` section with every schema default filled in."""
    section: dict = {}
    validate(section, str(repo_root / "config" / "schemas" / "cromss.yaml"), set_default=True)
    return section


def test_paper_settings_reach_the_trainer(settings, repo_root):
    import yaml

    paper = yaml.safe_load((repo_root / "config" / "paper.yaml").read_text())["cromss"]
    validate(paper, str(repo_root / "config" / "schemas" / "cromss.yaml"), set_default=True)
    c = pretrain_config("cromss_midF", "b9", paper, seed=42)
    assert (c.kind, c.sample_selection, c.encoder_name, c.in_channels_s2) == ("mid_fusion", True, "resnet50", 9)
    assert (c.epochs, c.batch_size, c.lr, c.val_fraction, c.label_smoothing) == (200, 128, 0.005, 0.01, (0.15, 0.05))
    assert (c.selection.final_ratio, c.selection.rampdown_epochs, c.selection.ramp) == (0.5, 80, "exp")
    assert c.modalities == ("s1", "s2") and pretrain_config("s1", "b13", paper, 0).modalities == ("s1",)


def test_schema_defaults_reach_the_trainer_unchanged(settings):
    # the workflow's defaults come from the schema alone; the Python API's defaults are the same
    c = pretrain_config("cromss_midF", "b13", settings, seed=0)
    assert c == PretrainConfig(in_channels_s2=13, seed=0)
    with pytest.raises(KeyError, match=r"PretrainConfig.*lr"):
        pretrain_config("cromss_midF", "b13", {k: v for k, v in settings.items() if k != "lr"}, seed=0)
    with pytest.raises(ValueError, match="unknown pretraining variant"):
        pretrain_config("earlyF", "b13", settings, seed=0)


def test_dataclass_defaults_are_the_schema_defaults():
    assert_defaults_match(SelectionConfig, "schemas/cromss.yaml", "selection")
    # fields the variant, band set, class table or reference fix, or that the section names differently
    derived = ("kind", "modality", "sample_selection", "in_channels_s2", "classes", "split_seed", "seed",
               "encoder_name", "selection", "label_smoothing", "use_prior", "consistency", "consistency_weight",
               "plateau_factor", "plateau_patience", "plateau_threshold")
    assert_defaults_match(PretrainConfig, "schemas/cromss.yaml", skip=derived)
    props, c = schema_section("schemas/cromss.yaml"), PretrainConfig()
    plateau, consistency = props["plateau"]["properties"], props["consistency"]["properties"]
    smoothing = props["label_smoothing"]["properties"]
    assert c.encoder_name == props["encoder"]["default"]
    assert (c.plateau_factor, c.plateau_patience, c.plateau_threshold) == tuple(
        plateau[k]["default"] for k in ("factor", "patience", "threshold"))
    assert (c.consistency, c.consistency_weight) == (consistency["kind"]["default"], consistency["weight"]["default"])
    assert c.label_smoothing == tuple(smoothing["factors"]["default"]) and c.use_prior == (
        smoothing["prior"]["default"] != "none")
    assert c.seed == schema_section("schema.yaml")["seed"]["default"]


def test_outputs_share_the_run_folder(tmp_path):
    outputs = PretrainOutputs(encoders=tmp_path / "encoders.pt", checkpoint=tmp_path / "epoch=001.ckpt",
                              metrics=tmp_path / "metrics.csv", summary=tmp_path / "summary.json")
    assert outputs.run_dir == tmp_path
    with pytest.raises(RuntimeError, match=r"without writing .*encoders\.pt"):
        outputs.check_written()
    with pytest.raises(ValueError, match="share one folder"):
        PretrainOutputs(encoders=tmp_path / "a" / "encoders.pt", checkpoint=outputs.checkpoint,
                        metrics=outputs.metrics, summary=outputs.summary).run_dir


def test_smoothing_settings(settings):
    assert smoothing_settings(settings) == ((0.15, 0.05), "ts")
    assert smoothing_settings({"label_smoothing": {"factors": [], "prior": "ts"}}) == (None, None)
    assert smoothing_settings({"label_smoothing": {"factors": [0.1], "prior": "none"}}) == ((0.1,), None)
    with pytest.raises(ValueError, match="takes one factor"):
        smoothing_settings({"label_smoothing": {"factors": [0.15, 0.05], "prior": "none"}})
    with pytest.raises(ValueError, match="unknown S2 band set"):
        s2_channels("b12")


def _summary(path, variant, modalities, heldout, synthetic=True, note="", final=None):
    path.write_text(json.dumps({"variant": variant, "bands": "b13", "modalities": modalities, "encoder": "e",
                                "epochs": 2, "synthetic": synthetic, "source": "synthetic" if synthetic else "local:x",
                                "prior_note": note, "final": final or {}, "heldout": heldout}))
    return path


def test_table_puts_each_branch_under_its_modality(tmp_path):
    runs = [
        _summary(tmp_path / "a.json", "s1", ["s1"], {"h1_OA": 0.5, "h1_truth_OA": 0.6, "labels_truth_OA": 0.7},
                 final={"v1_truth_OA": 0.99, "v_loss": 1.0}),
        _summary(tmp_path / "b.json", "cromss_midF", ["s1", "s2"],
                 {"h1_OA": 0.1, "h2_OA": 0.2, "h1_truth_OA": 0.3, "h2_truth_OA": 0.75, "labels_truth_OA": 0.7},
                 final={"sel_ratio": 0.5}),
    ]
    table = tabulate_pretraining(runs, tmp_path / "t.csv", tmp_path / "t.md")
    # the held-out scores, not the last epoch's validation draw
    assert table.loc[0, "S1 OA (truth)"] == 0.6 and pd.isna(table.loc[0, "S2 OA (truth)"])
    assert table.loc[1, "S2 OA (noisy)"] == 0.2 and table.loc[1, "selection ratio"] == 0.5
    assert table.loc[0, "val loss"] == 1.0 and table.loc[1, "noisy labels OA (truth)"] == 0.7
    assert table.loc[0, "bands"] == "-" and "note" not in table
    md = (tmp_path / "t.md").read_text()
    assert "Synthetic world" in md
    # S1: 0.6 and 0.3 against labels at 0.7; S2: 0.75
    assert "S1 branches above their noisy labels: 0 of 2 (OA − labels OA from -0.400 to -0.100)" in md
    assert "S2 branches above their noisy labels: 1 of 1 (OA − labels OA from +0.050 to +0.050)" in md
    # every row names its data, in the CSV too; only synthetic data get the SYNTHETIC banner
    assert list(pd.read_csv(tmp_path / "t.csv")["data"]) == ["synthetic", "synthetic"]
    assert data_banner("synthetic") in md
    real = tabulate_pretraining([_summary(tmp_path / "c.json", "s2", ["s2"], {"h1_OA": 0.7}, False, "one season")],
                                tmp_path / "r.csv", tmp_path / "r.md")
    assert real.loc[0, "data"] == "local:x" and real.loc[0, "note"] == "one season"
    assert list(pd.read_csv(tmp_path / "r.csv")["data"]) == ["local:x"]
    assert data_banner("local:x") in (tmp_path / "r.md").read_text()
    assert "Synthetic" not in (tmp_path / "r.md").read_text() and "truth" not in (tmp_path / "r.md").read_text()
    assert "SYNTHETIC" not in (tmp_path / "r.md").read_text()


def test_killed_run_resumes_and_finished_or_changed_runs_restart(tmp_path, settings):
    from eolabels.cromss.pretraining import pretrain_dataset, pretrain_variant
    from eolabels.cromss.train import PretrainTrainer
    from eolabels.data.synthetic import generate_dataset

    generate_dataset("noldo", tmp_path / "noldo", {"incomplete_fraction": 0.0, "n_locations": 3, "tile_size": 48, "feature_size": 8.0}, seed=1)
    settings.update(epochs=2, batch_size=2, val_batch_size=1, crop_size=32)
    config = pretrain_config("s2", "b9", settings, seed=0)
    killed = PretrainTrainer(config, pretrain_dataset(tmp_path / "noldo", config, settings, 0), tmp_path / "run",
                             progress=False)
    killed.fit(stop_after=1)
    run = dict(dataset_dir=tmp_path / "noldo", out_dir=tmp_path / "run", variant="s2", bands="b9", seed=0,
               progress=False)
    resumed = pretrain_variant(settings=settings, **run)
    assert [row["epoch"] for row in resumed.history] == [0, 1]
    assert resumed.history[0] == killed.history[0]
    assert (tmp_path / "run" / "epoch=001.ckpt").is_file() and (tmp_path / "run" / "encoders.pt").is_file()
    again = pretrain_variant(settings=settings, **run)
    # retrained from scratch with the same seed: the same numbers, fresh timings
    assert len(again.history) == 2 and again.history[0]["seconds"] != resumed.history[0]["seconds"]
    assert {k: v for k, v in again.history[0].items() if k != "seconds"} == {
        k: v for k, v in resumed.history[0].items() if k != "seconds"}
    changed = pretrain_variant(settings={**settings, "lr": 1e-4}, **run)
    assert len(changed.history) == 2 and changed.history[0]["lr"] == 1e-4


def test_heldout_scores_cover_every_season_of_the_held_out_locations(tmp_path, settings):
    """The final scores, recomputed here from the rasters and the model's own forward pass."""
    import numpy as np
    import torch

    from eolabels.cromss.pretraining import pretrain_dataset
    from eolabels.cromss.train import PretrainTrainer
    from eolabels.data.readers import TileReader
    from eolabels.data.synthetic import generate_dataset

    generate_dataset("noldo", tmp_path / "noldo", {"incomplete_fraction": 0.0, "n_locations": 4, "tile_size": 48,
                                                   "feature_size": 8.0}, seed=2)
    settings.update(epochs=1, batch_size=2, val_batch_size=3, crop_size=32, val_fraction=0.5)
    config = pretrain_config("cromss_midF", "b9", settings, seed=0)
    dataset = pretrain_dataset(tmp_path / "noldo", config, settings, 0)
    trainer = PretrainTrainer(config, dataset, tmp_path / "run", progress=False)
    trainer.fit()
    scores = trainer.evaluate_heldout()

    reader = TileReader(dataset.index)
    labels_hits = branch_hits = pixels = 0
    trainer.network.eval()
    for item in trainer.val_set.indices:
        arrays = reader.read_location(dataset.locations[item], [dataset.label_layer, dataset.truth_layer])
        for season in range(4):
            window = (slice(8, 40), slice(8, 40))  # the centre 32 of 48 px
            label = arrays[dataset.label_layer][season, 0][window]
            truth = arrays[dataset.truth_layer][season, 0][window]
            labels_hits += int((label == truth).sum())
            sample = dataset.sample(item, season)
            with torch.no_grad():
                _, s2_logits = trainer.network(sample["s1"][None, :, 8:40, 8:40], sample["s2"][None, :, 8:40, 8:40])
            branch_hits += int((s2_logits[0].argmax(0).numpy() == truth).sum())
            pixels += truth.size
    assert len(trainer.val_set) == 2 and pixels == 2 * 4 * 32 * 32
    assert scores["labels_truth_OA"] == pytest.approx(labels_hits / pixels)
    assert scores["h2_truth_OA"] == pytest.approx(branch_hits / pixels)
    assert {"h1_OA", "h1_truth_mIoU", "h2_mF1", "labels_truth_mIoU"} <= set(scores)
    assert np.isfinite(list(scores.values())).all()


def test_dw_test_split_scores_are_the_branches_own_predictions(tmp_path, settings):
    """Fig. 8 a,b's scores on the DW test split, recomputed from the rasters: whole 40-px tiles
    (mirrored to 64 for the encoder), 255 ignored, scored on the epochs ``dw_test_every`` asks for."""
    import numpy as np
    import torch

    from eolabels.cromss.normalization import normalise_s1, normalise_s2, s2_band_indices
    from eolabels.cromss.pretraining import dw_test_set, pretrain_dataset
    from eolabels.cromss.train import PretrainTrainer
    from eolabels.data.index import DatasetIndex
    from eolabels.data.readers import TileReader
    from eolabels.data.synthetic import generate_dataset
    from finetune_data import write_dw

    def unlabel_corner(i, labels):
        labels[:5, :7] = 255
        return labels

    generate_dataset("noldo", tmp_path / "noldo", {"incomplete_fraction": 0.0, "n_locations": 4, "tile_size": 48,
                                                   "feature_size": 8.0}, seed=2)
    dw = write_dw(tmp_path / "dw", n_train=1, n_test=3, size=40, label_fn=unlabel_corner)
    settings.update(epochs=3, batch_size=2, val_batch_size=2, crop_size=32, val_fraction=0.5, dw_test_every=2)
    config = pretrain_config("midF", "b9", settings, seed=0)
    trainer = PretrainTrainer(config, pretrain_dataset(tmp_path / "noldo", config, settings, 0), tmp_path / "run",
                              progress=False, test_set=dw_test_set(dw, config))
    trainer.fit()
    assert ["t2_OA" in row for row in trainer.history] == [False, True, True]

    index = DatasetIndex.open(dw)
    reader = TileReader(index)
    hits, pixels = np.zeros(2, dtype=np.int64), 0
    trainer.network.eval()
    for row in reader.rows("test"):
        arrays = reader.read(row, ["s1", "s2", "dw"])
        s1 = torch.from_numpy(normalise_s1(arrays["s1"]).astype(np.float32))[None]
        s2 = torch.from_numpy(normalise_s2(arrays["s2"], s2_band_indices(9)).astype(np.float32))[None]
        pad = lambda x: torch.nn.functional.pad(x, (0, 24, 0, 24), mode="reflect")  # noqa: E731
        with torch.no_grad():
            logits = trainer.network(pad(s1), pad(s2))
        label = arrays["dw"][0]
        labelled = label != 255
        for branch, x in enumerate(logits):
            hits[branch] += int((x[0, :, :40, :40].argmax(0).numpy() == label)[labelled].sum())
        pixels += int(labelled.sum())
    assert pixels == 3 * (40 * 40 - 5 * 7)
    final = trainer.history[-1]
    assert final["t1_OA"] == pytest.approx(hits[0] / pixels)
    assert final["t2_OA"] == pytest.approx(hits[1] / pixels)
    assert {"t1_mIoU", "t2_AA", "t2_mF1"} <= set(final)
    # scoring leaves the training's random stream where it was (it would change the next epochs)
    state = torch.get_rng_state()
    trainer.evaluate_test()
    assert torch.equal(state, torch.get_rng_state())


def test_table_adds_the_dw_test_columns_when_runs_scored_them(tmp_path):
    summary = {"variant": "s2", "bands": "b13", "encoder": "e", "epochs": 2, "modalities": ["s2"],
               "source": "synthetic", "prior_note": "", "heldout": {"h1_OA": 0.8, "h1_mIoU": 0.5},
               "final": {"v_loss": 1.0, "t1_OA": 0.625, "t1_mIoU": 0.25}}
    (tmp_path / "s.json").write_text(json.dumps(summary))
    table = tabulate_pretraining([tmp_path / "s.json"], tmp_path / "t.csv", tmp_path / "t.md")
    assert table.loc[0, "S2 OA (DW test)"] == 0.625 and table.loc[0, "S2 mIoU (DW test)"] == 0.25
    assert "DW task's test split" in (tmp_path / "t.md").read_text()
