"""Runs, inputs and targets of rules/similarity.smk (similarity/wiring.py), on known answers."""

from __future__ import annotations

from snakemake.utils import validate

from eolabels.similarity.wiring import (
    audit_inputs,
    audit_settings,
    audit_tables,
    audit_targets,
    audited_runs,
    similarity_tables,
    similarity_targets,
    trains_segmenter,
    training_inputs,
)

ALL = ["noldo", "dw", "osm", "dfc2020", "lsr"]


def _sections(repo_root, similarity: dict, cromss: dict) -> tuple[dict, dict]:
    for section, name in ((similarity, "similarity"), (cromss, "cromss")):
        validate(section, str(repo_root / "config" / "schemas" / f"{name}.yaml"), set_default=True)
    return similarity, cromss


def test_audited_runs_are_the_pretraining_runs_of_the_listed_variants(repo_root):
    similarity, cromss = _sections(
        repo_root,
        {"audit_pretrained": {"variants": ["s1", "cromss_midF"]}},
        {"variants": ["s1", "s2", "cromss_midF"], "bands": ["b13", "b9"]},
    )
    assert audited_runs(similarity, cromss, ALL) == ["s1_b13", "cromss_midF_b13", "cromss_midF_b9"]
    # no held-out truth, or no pretraining data: nothing to audit
    assert audited_runs(similarity, cromss, ["noldo"]) == []
    assert audited_runs(similarity, cromss, ["dw"]) == []
    assert audit_tables(similarity, cromss, ALL)[0] == "results/tables/density_audit_pretrain_s1_b13.csv"
    assert audit_targets(similarity, cromss, ALL)[3:] == [
        f"results/similarity/audit_pretrain/{run}/tiles.png" for run in ("s1_b13", "cromss_midF_b13", "cromss_midF_b9")
    ]


def test_audit_reads_the_final_checkpoint_and_the_pretraining_labels(repo_root):
    similarity, cromss = _sections(repo_root, {}, {"epochs": 3, "label_source": "dw_denoised"})
    assert audit_inputs(similarity, cromss, "{variant}") == {
        "checkpoint": "results/pretrain_dw_denoised/{variant}/epoch=002.ckpt",
        "index": "results/data/noldo_denoised/index.csv",
        "meta": "results/data/noldo_denoised/dataset.json",
        "heldout_index": "results/data/dw/index.csv",
        "heldout_meta": "results/data/dw/dataset.json",
    }
    settings = audit_settings(similarity)
    assert list(settings) == sorted(settings) and not {"variants", "modality"} & set(settings)


def test_segmenter_branch_needs_both_datasets(repo_root):
    similarity, _ = _sections(repo_root, {}, {})
    assert trains_segmenter(similarity, ALL) and not trains_segmenter(similarity, ["noldo", "lsr"])
    assert training_inputs(similarity)["heldout_meta"] == "results/data/dw/dataset.json"
    assert similarity_tables(similarity, ["lsr"]) == ["results/tables/similarity_toy.csv"]
    assert similarity_targets(similarity, ["lsr"]) == [
        "results/tables/similarity_toy.csv", "results/similarity/toy/density_soft.png",
    ]
    assert similarity_targets(similarity, ALL)[3:] == [
        "results/similarity/toy/density_soft.png",
        "results/similarity/audit/tiles.png",
        "results/similarity/denoise/rounds.png",
    ]
