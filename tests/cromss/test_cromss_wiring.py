"""Runs, settings and paths of rules/pretrain.smk (cromss/wiring.py), against the section's schema."""

from __future__ import annotations

import re

import pytest
from snakemake.utils import validate

from eolabels.cromss.wiring import (
    JOB_KEYS,
    dw_test_inputs,
    SchemaChoices,
    final_checkpoint,
    fusion_runs,
    pretrain_data,
    pretrain_pairs,
    pretrain_root,
    pretrain_runs,
    pretrain_tables,
    pretrain_targets,
    run_dir,
    run_name,
    run_pattern,
    schema_choices,
    split_run,
    training_settings,
)

CHOICES = SchemaChoices(["s1", "s2", "midF", "cromss_midF"], ["b13", "b9"])


def _section(repo_root, **overrides) -> dict:
    section = dict(overrides)
    validate(section, str(repo_root / "config" / "schemas" / "cromss.yaml"), set_default=True)
    return section


def test_schema_lists_every_variant_and_band_set(repo_root):
    variants, band_sets = schema_choices(repo_root / "config" / "schemas" / "cromss.yaml")
    assert variants == ["s1", "s2", "midF", "lateF", "cromss_midF", "cromss_lateF"]
    assert band_sets == ["b13", "b9"]


def test_s1_runs_once_and_nothing_runs_without_the_dataset(repo_root):
    section = _section(repo_root, variants=["s1", "s2", "cromss_midF"], bands=["b9", "b13"])
    runs = pretrain_runs(section, ["noldo", "dw"])
    assert runs == ["s1_b9", "s2_b9", "s2_b13", "cromss_midF_b9", "cromss_midF_b13"]
    assert fusion_runs(runs) == ["cromss_midF_b9", "cromss_midF_b13"]
    assert pretrain_runs(section, ["dw", "lsr"]) == []


def test_params_are_training_settings_only_in_sorted_order(repo_root):
    section = _section(repo_root, epochs=3, threads=8, mem_mb=2000, runtime=20)
    settings = training_settings(section)
    assert list(settings) == sorted(settings) and settings["epochs"] == 3
    assert not JOB_KEYS & set(settings) and set(settings) | JOB_KEYS == set(section)
    # resizing a job leaves the params (and so the jobs) as they are
    assert training_settings({**section, "threads": 1, "runtime": 999, "figure_locations": 1}) == settings


def test_label_source_picks_dataset_and_folder(repo_root):
    dw = _section(repo_root)
    assert (pretrain_data(dw), pretrain_root(dw)) == ("noldo", "results/pretrain")
    denoised = _section(repo_root, label_source="dw_denoised")
    assert (pretrain_data(denoised), pretrain_root(denoised)) == ("noldo_denoised", "results/pretrain_dw_denoised")


def test_run_name_and_split_run_are_inverse():
    assert run_name("cromss_midF", "b9") == "cromss_midF_b9"
    assert split_run("cromss_midF_b9", CHOICES) == ("cromss_midF", "b9")
    assert split_run("s1_b13", CHOICES) == ("s1", "b13")
    for variant in CHOICES.variants:
        for bands in CHOICES.band_sets:
            assert split_run(run_name(variant, bands), CHOICES) == (variant, bands)
    with pytest.raises(ValueError, match="no pretraining run.*cromss_midF_b9"):
        split_run("cromss_lateF_b9", CHOICES)


def test_run_pattern_matches_the_schema_runs_only(repo_root):
    pattern = re.compile(run_pattern(CHOICES))
    assert pattern.fullmatch("cromss_midF_b9") and pattern.fullmatch("s1_b13")
    assert not pattern.fullmatch("cromss_b9") and not pattern.fullmatch("midF_b12")
    # the workflow's constraint, as it was written out by hand before
    choices = schema_choices(repo_root / "config" / "schemas" / "cromss.yaml")
    assert run_pattern(choices) == "(s1|s2|midF|lateF|cromss_midF|cromss_lateF)_(b13|b9)"


def test_pairs_and_names_agree(repo_root):
    section = _section(repo_root, variants=["s1", "midF"], bands=["b13", "b9"])
    assert pretrain_pairs(section, ["noldo"]) == [("s1", "b13"), ("midF", "b13"), ("midF", "b9")]
    assert pretrain_runs(section, ["noldo"]) == ["s1_b13", "midF_b13", "midF_b9"]


def test_paths_of_a_run(repo_root):
    section = _section(repo_root, epochs=2)
    assert run_dir(section, "s2_b9") == "results/pretrain/s2_b9"
    assert final_checkpoint(section, "s2_b9") == "results/pretrain/s2_b9/epoch=001.ckpt"
    # as a pattern of the rules' wildcards, and with the denoised labels' folder
    denoised = _section(repo_root, epochs=100, label_source="dw_denoised")
    run = run_name("{pretrain_variant}", "{s2_bands}")
    assert final_checkpoint(denoised, run) == "results/pretrain_dw_denoised/{pretrain_variant}_{s2_bands}/epoch=099.ckpt"


def test_targets_of_the_stage(repo_root):
    section = _section(repo_root, variants=["s1", "cromss_midF"], bands=["b9"])
    assert pretrain_targets(section, ["noldo"]) == [
        "results/pretrain/s1_b9/encoders.pt",
        "results/pretrain/cromss_midF_b9/encoders.pt",
        "results/pretrain/s1_b9/curves.png",
        "results/pretrain/cromss_midF_b9/curves.png",
        "results/pretrain/cromss_midF_b9/selection_masks.png",
        "results/tables/pretraining.csv",
    ]
    assert pretrain_tables(section, ["noldo"]) == ["results/tables/pretraining.csv"]
    assert pretrain_targets(section, ["dw"]) == pretrain_tables(section, ["dw"]) == []


def test_dw_test_split_is_an_input_only_when_scored(repo_root):
    assert dw_test_inputs(_section(repo_root), ["noldo", "dw"]) == ["results/data/dw/index.csv"]
    assert dw_test_inputs(_section(repo_root, dw_test_every=0), ["noldo", "dw"]) == []
    assert dw_test_inputs(_section(repo_root, dw_test_every=2), ["noldo"]) == []  # a run without DW data
