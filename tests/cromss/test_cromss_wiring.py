"""Runs, settings and paths of rules/pretrain.smk (cromss/wiring.py), against the section's schema."""

from __future__ import annotations

from snakemake.utils import validate

from eolabels.cromss.wiring import (
    JOB_KEYS,
    fusion_runs,
    pretrain_data,
    pretrain_root,
    pretrain_runs,
    schema_choices,
    training_settings,
)


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
