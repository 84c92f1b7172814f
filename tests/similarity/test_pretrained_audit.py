"""The density audit of CromSS pretraining outputs (eolabels.similarity.pretrained): the branch
adapter reproduces the pretraining model's logits and inputs, the Jacobian subsets find the smp
decoder, wrong checkpoints fail naming the file, and the stage runs end to end on a tiny world."""

from __future__ import annotations

from dataclasses import asdict
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch
from snakemake.utils import validate

from eolabels.cromss.checkpoint import LIGHTNING_PREFIX, load_pretrain_checkpoint
from eolabels.cromss.dataset import NoisyLabelPretrainDataset
from eolabels.cromss.models import build_pretrain_model
from eolabels.cromss.normalization import normalise_s2, s2_band_indices
from eolabels.cromss.pretraining import pretrain_variant
from eolabels.cromss.train import PretrainConfig, PretrainTrainer
from eolabels.data.geotiff import read_geotiff
from eolabels.data.index import DatasetIndex
from eolabels.data.readers import TileReader
from eolabels.data.synthetic import generate_dataset
from eolabels.similarity.audit import AuditSettings
from eolabels.similarity.jacobian import JacobianConfig, centring_basis, per_sample_jacobians, select_parameters
from eolabels.similarity.pretrained import (
    CromssInput,
    audit_pretrained,
    load_pretrained_segmenter,
    pretraining_splits,
)
from eolabels.similarity.stages import AuditOutputs, audit_pretrained_stage
from eolabels.training import epoch_checkpoint_name
from workflow_helpers import snakemake

ENCODER = "tu-mobilenetv3_small_050"  # the test config's CPU-sized encoder


@pytest.fixture(scope="module")
def world(tmp_path_factory) -> dict[str, Path]:
    """A 3-location noisy-label set, a held-out set, and a real 2-epoch cromss_midF_b9 run on it."""
    root = tmp_path_factory.mktemp("pretrained_audit")
    generate_dataset("noldo", root / "noldo", {"incomplete_fraction": 0.0, "n_locations": 3, "tile_size": 48, "feature_size": 8.0}, seed=1)
    generate_dataset("dw", root / "dw", {"n_train": 1, "n_test": 1, "tile_size": 48}, seed=1)
    settings: dict = dict(encoder=ENCODER, epochs=2, max_batches_per_epoch=1, batch_size=2, val_batch_size=1,
                          val_fraction=0.25, crop_size=32, selection={"rampdown_epochs": 1})
    validate(settings, str(Path(__file__).parents[2] / "config" / "schemas" / "cromss.yaml"), set_default=True)
    torch.set_num_threads(1)
    pretrain_variant(dataset_dir=root / "noldo", out_dir=root / "run", variant="cromss_midF", bands="b9",
                     settings=settings, seed=0, device="cpu", progress=False)
    return {"root": root, "noldo": root / "noldo", "dw": root / "dw",
            "checkpoint": root / "run" / epoch_checkpoint_name(1)}


def _fake_checkpoint(path: Path, kind: str, bands: int = 9, modality: str = "s2", **config_overrides) -> Path:
    """A checkpoint in the trainer's layout (``net.`` keys + its config) with trained-looking BN statistics."""
    torch.manual_seed(1)
    model = build_pretrain_model(kind, ENCODER, in_channels_s2=bands, modality=modality)
    model.train()
    with torch.no_grad():  # move the BatchNorm running statistics away from their initial values
        x1, x2 = torch.rand(2, 2, 32, 32) * 3, torch.rand(2, bands, 32, 32) * 3
        model(x2) if kind == "single" else model(x1, x2)
    config = asdict(PretrainConfig(kind=kind, modality=modality, encoder_name=ENCODER, in_channels_s2=bands,
                                   sample_selection=False))
    config.update(config_overrides)
    state = {LIGHTNING_PREFIX + k: v for k, v in model.state_dict().items()}
    torch.save({"epoch": 2, "state_dict": state, "config": config}, path)
    return path


def test_branch_reproduces_the_trained_mid_fusion_logits_on_normalised_inputs(world):
    model = build_pretrain_model("mid_fusion", ENCODER, in_channels_s2=9)
    load_pretrain_checkpoint(model, world["checkpoint"]).eval()  # CromSS's own loader
    arrays = TileReader(DatasetIndex.open(world["noldo"])).read_location("loc00000", ["s1", "s2"])
    for modality in ("s2", "s1"):
        segmenter = load_pretrained_segmenter(world["checkpoint"], modality, "cromss_midF", "b9")
        assert segmenter.classes == 9 and segmenter.normaliser.in_channels == (9 if modality == "s2" else 2)
        x = {m: CromssInput(m, s2_band_indices(9) if m == "s2" else None)(arrays[m])[:, :, 8:40, 8:40]
             for m in ("s1", "s2")}
        with torch.no_grad():
            logits_s1, logits_s2 = model(x["s1"], x["s2"])
            ours = segmenter.model(segmenter.normaliser(arrays[modality])[:, :, 8:40, 8:40])
        expected = logits_s2 if modality == "s2" else logits_s1
        assert ours.shape == (4, 9, 32, 32)
        assert torch.equal(ours, expected), (ours - expected).abs().max()


@pytest.mark.parametrize("kind", ["late_fusion", "single"])
def test_branch_of_late_fusion_and_single_models_is_the_u_net_itself(tmp_path, kind):
    path = _fake_checkpoint(tmp_path / "c.ckpt", kind, bands=13)
    variant = {"late_fusion": "lateF", "single": "s2"}[kind]
    segmenter = load_pretrained_segmenter(path, "s2", variant, "b13")
    model = build_pretrain_model(kind, ENCODER, in_channels_s2=13, modality="s2")
    load_pretrain_checkpoint(model, path).eval()
    torch.manual_seed(0)
    x = torch.rand(2, 13, 64, 64)
    with torch.no_grad():
        expected = model(x) if kind == "single" else model(torch.rand(2, 2, 64, 64), x)[1]
        assert torch.equal(segmenter.model(x), expected)


def test_normaliser_is_the_pretraining_dataset_input(world):
    """The audit's input of a tile is exactly the pretraining sample of that tile (b9 selection,
    uint8 stretch, /255), for whichever season the dataset draws."""
    dataset = NoisyLabelPretrainDataset(world["noldo"], ("s1", "s2"), 9, prior_kind=None, crop_size=None,
                                        augment=False)
    arrays = TileReader(DatasetIndex.open(world["noldo"])).read_location(dataset.locations[2], ["s2", "dw"])
    audit_input = CromssInput("s2", s2_band_indices(9))(arrays["s2"])
    torch.manual_seed(0)
    for _ in range(3):
        sample = dataset[2]
        season = [s for s in range(4) if np.array_equal(sample["label"].numpy(), arrays["dw"][s, 0])][0]
        assert torch.equal(audit_input[season], sample["s2"])
    np.testing.assert_array_equal(audit_input[0].numpy(), normalise_s2(arrays["s2"][0], s2_band_indices(9)))
    with pytest.raises(ValueError, match="expected N x 13"):
        CromssInput("s2", s2_band_indices(9))(arrays["s2"][:, :9])


def test_subsets_select_the_smp_decoder_and_head_and_give_exact_jacobians(world):
    segmenter = load_pretrained_segmenter(world["checkpoint"], "s2")
    branch = segmenter.model
    names = segmenter.check_subset("last_block+head")
    last = len(branch.decoder.blocks) - 1
    assert names == [n for n, _ in branch.named_parameters()
                     if n.startswith((f"decoder.blocks.{last}.", "segmentation_head."))]
    assert select_parameters(branch, "head") == ["segmentation_head.0.weight", "segmentation_head.0.bias"]
    assert all(n.startswith(("decoder.", "segmentation_head.")) for n in select_parameters(branch, "decoder"))

    torch.manual_seed(0)
    x = torch.rand(3, 9, 32, 32)
    jac = per_sample_jacobians(branch, x, JacobianConfig(subset="last_block+head"), batch_size=3, progress=False)
    params = dict(branch.named_parameters())
    basis = centring_basis(9, torch.float32)
    for i in range(3):
        logits = branch(x[i : i + 1])[0, :, 16, 16]
        rows = [torch.cat([g.reshape(-1) for g in torch.autograd.grad(basis[:, k] @ logits, [params[n] for n in names],
                                                                      retain_graph=True)])
                for k in range(8)]
        torch.testing.assert_close(jac[i], torch.stack(rows), rtol=1e-4, atol=1e-6)


def test_a_branch_without_decoder_blocks_fails_clearly(world):
    segmenter = load_pretrained_segmenter(world["checkpoint"], "s2")
    segmenter.model.decoder = torch.nn.Identity()
    with pytest.raises(ValueError, match=r"epoch=001\.ckpt.*decoder"):
        segmenter.check_subset("last_block+head")


def test_wrong_checkpoints_fail_naming_the_file(world, tmp_path):
    ckpt = world["checkpoint"]
    with pytest.raises(ValueError, match=r"epoch=001\.ckpt does not hold the network of run cromss_midF_b13.*9 S2 bands"):
        load_pretrained_segmenter(ckpt, "s2", "cromss_midF", "b13")
    with pytest.raises(ValueError, match=r"epoch=001\.ckpt does not hold the network of run lateF_b9.*mid_fusion"):
        load_pretrained_segmenter(ckpt, "s2", "lateF", "b9")
    # midF and cromss_midF share the architecture and differ only in sample selection
    with pytest.raises(ValueError, match=r"run midF_b9: sample selection on, variant midF trains with it off"):
        load_pretrained_segmenter(ckpt, "s2", "midF", "b9")
    # weights of a 9-band network under a config that claims 13 bands: another architecture
    lying = _fake_checkpoint(tmp_path / "lying.ckpt", "late_fusion", bands=9, in_channels_s2=13)
    with pytest.raises(ValueError, match=r"lying\.ckpt does not match LateFusionUnet.*shape mismatch"):
        load_pretrained_segmenter(lying)
    # a different encoder than recorded
    other = _fake_checkpoint(tmp_path / "other.ckpt", "mid_fusion", encoder_name="resnet18")
    with pytest.raises(ValueError, match=r"other\.ckpt does not match MidFusionUnet"):
        load_pretrained_segmenter(other)
    # no recorded configuration (e.g. a plain state dict), and not a checkpoint at all
    payload = torch.load(ckpt, weights_only=True)
    torch.save({"state_dict": payload["state_dict"]}, tmp_path / "bare.ckpt")
    with pytest.raises(ValueError, match=r"bare\.ckpt records no model configuration"):
        load_pretrained_segmenter(tmp_path / "bare.ckpt")
    (tmp_path / "junk.ckpt").write_text("not a checkpoint")
    with pytest.raises(ValueError, match=r"cannot read pretraining checkpoint .*junk\.ckpt"):
        load_pretrained_segmenter(tmp_path / "junk.ckpt")
    with pytest.raises(FileNotFoundError, match="missing.ckpt"):
        load_pretrained_segmenter(tmp_path / "missing.ckpt")


def test_pretraining_splits_follow_the_trainer(world, tmp_path):
    splits = pretraining_splits(world["noldo"], 0.25, 42)
    # the validation locations of the trainer itself, built as the pretraining stage builds it
    dataset = NoisyLabelPretrainDataset(world["noldo"], s2_bands=9, crop_size=32)
    config = PretrainConfig(kind="mid_fusion", encoder_name=ENCODER, in_channels_s2=9, val_fraction=0.25,
                            split_seed=42, batch_size=1)
    trainer = PretrainTrainer(config, dataset, tmp_path / "run", device="cpu", progress=False)
    validation = {dataset.locations[i] for i in trainer.val_set.indices}
    assert {loc for loc, split in splits.items() if split == "validation"} == validation
    assert sorted(splits.values()) == ["train", "train", "validation"]


def _audit_stage(world: dict[str, Path], name: str, modality: str) -> tuple[pd.DataFrame, dict, dict]:
    """The rule's entry point on the tiny world's cromss_midF_b9 run, outputs under ``<root>/<name>``."""
    out = world["root"] / name
    outputs = AuditOutputs(
        density=out / "density", table=out / "summary.csv", markdown=out / "summary.md", tiles=out / "tiles.csv",
        samples=out / "samples.csv", figure=out / "tiles.png", deciles=out / "deciles.png",
    )
    defaults = {k: v for k, v in asdict(AuditSettings()).items() if k not in ("seed", "withheld_season")}
    summary = audit_pretrained_stage(
        checkpoint=world["checkpoint"], dataset_root=world["noldo"], heldout_root=world["dw"], outputs=outputs,
        run="cromss_midF_b9", modality=modality, audit={**defaults, "stride": 16, "context": 32, "figure_tiles": 1,
        "batch_size": 16}, seed=0, heldout_split=None,
    )
    return summary, outputs.tables(), outputs.figures()


@pytest.mark.slow
def test_audit_stage_end_to_end_on_a_tiny_world(world):
    summary, tables, figures = _audit_stage(world, "audit", "s2")
    noldo, dw = DatasetIndex.open(world["noldo"]), DatasetIndex.open(world["dw"])
    measures = summary.set_index("measure")["value"]
    # pass 1 = the locations the network trained on: the validation location's 4 seasons stay out
    assert measures["training samples"] == (len(noldo) - 4) * 9  # 48-px tiles, stride 16: 3 x 3 centres
    for measure in ("A2 ratio lowest / highest decile", "A3 AUROC of 1 - label support for wrong label"):
        assert np.isfinite(float(measures[measure])), measure
    assert measures["pretraining-validation locations (left out of pass 1, scored only)"] == 1
    assert (summary["network"] == "cromss_midF_b9 (S2 branch)").all()
    assert (pd.read_csv(tables["summary_csv"])["data"] == "synthetic").all()  # every result table names its data

    tiles = pd.read_csv(tables["tiles"])
    assert len(tiles) == len(noldo) + len(dw)
    assert set(tiles["pretrain_split"]) == {"train", "validation", "heldout"}
    assert (tiles["in_pass1"] == (tiles["pretrain_split"] == "train")).all()
    validation = set(tiles.loc[tiles["pretrain_split"] == "validation", "id"])
    density, grid, names = read_geotiff(tiles["density_map"][0])
    assert names == ("log_density",) and density.shape[1:] == (3, 3) and grid.transform[0] == pytest.approx(160.0)
    samples = pd.read_csv(tables["samples"])
    assert samples["label_support"].dropna().between(0, 1).all()
    assert {"unreliable", "suspicious_label", "p_label"} <= set(samples.columns)
    assert len(validation) == 1 and not validation & set(samples["id"])
    assert (samples["label"] < 9).all()  # the dw ids the run pretrained on, no remap
    markdown = tables["summary_md"].read_text()
    assert "Synthetic world" in markdown and "cromss_midF_b9" in markdown and "validation locations are left out" in markdown
    assert figures["tiles"].stat().st_size > 5_000 and figures["deciles"].stat().st_size > 5_000

    segmenter = load_pretrained_segmenter(world["checkpoint"], "s2")
    with pytest.raises(ValueError, match="not a multiple of 32"):
        audit_pretrained(segmenter, world["noldo"], world["dw"], world["root"] / "audit" / "d2", tables, figures,
                         AuditSettings(stride=16, context=48), "cromss_midF_b9")


@pytest.mark.slow
def test_dry_run_audits_the_labels_the_run_pretrained_on(workflow_copy):
    """Pretrained on the self-denoised labels: the audit reads that dataset and that run; an empty
    variant list plans no audit."""
    denoised = snakemake(workflow_copy, "-n", "--configfile", "config/test.yaml", "--config",
                         "cromss={'label_source': 'dw_denoised'}")
    inputs = denoised.stdout.split("rule audit_pretrained:")[1].splitlines()[1].strip()
    assert inputs.startswith("input: results/pretrain_dw_denoised/cromss_midF_b9/epoch=001.ckpt,")
    assert "results/data/noldo_denoised/index.csv" in inputs
    disabled = snakemake(workflow_copy, "-n", "--configfile", "config/test.yaml", "--config",
                         "similarity={'audit_pretrained': {'variants': []}}")
    assert "rule audit_pretrained:" not in disabled.stdout


@pytest.mark.slow
def test_audit_of_the_s1_branch_runs_and_titles_its_preview(world):
    # S1 tiles have no B4/B3/B2: the tile figure shows the VV/VH false colour instead of failing
    summary, tables, figures = _audit_stage(world, "audit_s1", "s1")
    assert (summary["network"] == "cromss_midF_b9 (S1 branch)").all()
    assert np.isfinite(float(summary.set_index("measure")["value"]["A3 AUROC of 1 - label support for wrong label"]))
    assert figures["tiles"].stat().st_size > 5_000
