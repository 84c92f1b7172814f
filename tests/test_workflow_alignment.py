"""The alignment stage as a user runs it: dry runs of every config, and two rounds end to end on
config/test.yaml in a temporary copy, down to the aligned dataset a filter can consume."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from eolabels.alignment.wiring import alignment_input, alignment_targets, round_inputs, table_inputs
from eolabels.data.geotiff import read_geotiff
from eolabels.data.index import DatasetIndex
from workflow_helpers import snakemake

SECTION = {"enabled": True, "dataset": "osm", "rounds": 3}


def test_wiring_of_the_rounds():
    assert alignment_input("osm", filtered=True) == "osm_joined"  # OSM as is, before the filter
    assert alignment_input("osm", filtered=False) == "osm"  # an imported, already-filtered set
    assert round_inputs("osm_joined", 1) == {"index": "results/data/osm_joined/index.csv",
                                             "meta": "results/data/osm_joined/dataset.json"}
    assert round_inputs("osm_joined", 3)["previous"] == "results/alignment/round2/dataset/index.csv"
    inputs = table_inputs(SECTION, "osm_joined")
    assert inputs["index"] == "results/data/osm_joined/index.csv"
    assert inputs["metrics"][-1] == "results/alignment/round3/metrics.json"
    assert inputs["networks"] == "results/alignment/round3/networks"
    assert "results/data/osm_aligned/index.csv" in alignment_targets(SECTION, ["osm"])
    assert alignment_targets(SECTION, ["noldo"]) == []
    assert alignment_targets({**SECTION, "enabled": False}, ["osm"]) == []  # the default, until it aligns


def _inputs_of(stdout: str, rule: str) -> str:
    """The input line of the first job of ``rule`` in a dry run's listing."""
    lines = stdout.splitlines()
    start = next(i for i, line in enumerate(lines) if line.strip() in (f"rule {rule}:", f"localrule {rule}:"))
    return next(line for line in lines[start:] if line.strip().startswith("input:"))


def test_dry_run_orders_alignment_before_the_filter(workflow_copy):
    """Alignment enabled: the rounds read the θ = 0 join, the filter keeps the aligned maps and reads the
    raw ones for its table; maps: raw keeps the raw ones (still comparing); alignment off: unchanged."""
    proc = snakemake(workflow_copy, "-n", "--configfile", "config/test.yaml")
    assert "results/data/osm_joined/index.csv" in _inputs_of(proc.stdout, "align_round")
    filter_inputs = _inputs_of(proc.stdout, "filter_osm").split(", ")
    assert filter_inputs[2:6] == ["results/data/osm_aligned/index.csv", "results/data/osm_aligned/dataset.json",
                                  "results/data/osm_raw/index.csv", "results/data/osm_raw/dataset.json"]
    (workflow_copy / "raw_maps.yaml").write_text("osm_filter: {threshold: 0.7, test_tiles: 1, input: {maps: raw}}\n")
    raw = snakemake(workflow_copy, "-n", "--configfile", "config/test.yaml", "raw_maps.yaml")
    assert _inputs_of(raw.stdout, "filter_osm").split(", ")[2:6] == [
        "results/data/osm_raw/index.csv", "results/data/osm_raw/dataset.json",
        "results/data/osm_aligned/index.csv", "results/data/osm_aligned/dataset.json"]
    default = snakemake(workflow_copy, "-n").stdout
    assert "join_osm" not in default and "align_round" not in default and "osm_aligned" not in default
    assert _inputs_of(default, "filter_osm").split(", ")[2:4] == [
        "results/data/osm_raw/index.csv", "results/data/osm_raw/dataset.json"]
    (workflow_copy / "aligned_maps.yaml").write_text("osm_filter: {input: {maps: aligned}}\n")
    bad = snakemake(workflow_copy, "-n", "--configfile", "config/config.yaml", "aligned_maps.yaml", check=False)
    assert bad.returncode != 0
    assert "config.osm_filter.input.maps is 'aligned' but config.alignment.enabled is false" in bad.stdout + bad.stderr


def test_the_default_run_leaves_the_stage_out_but_builds_it_on_request(workflow_copy):
    assert "rule align_round:" not in snakemake(workflow_copy, "-n").stdout
    proc = snakemake(workflow_copy, "-n", "results/tables/alignment.csv")
    assert "rule align_round:" in proc.stdout or "localrule align_round:" in proc.stdout


@pytest.mark.parametrize("configfile", ["config/test.yaml", "config/paper.yaml"])
def test_dry_run_plans_the_alignment_rounds(workflow_copy, configfile):
    # the paper config reads downloaded data; its synthetic twin plans without them
    extra = ["--config", "source=synthetic"] if configfile == "config/paper.yaml" else []
    proc = snakemake(workflow_copy, "-n", "--configfile", configfile, *extra)
    for rule in ("align_round", "tabulate_alignment"):
        assert f"rule {rule}:" in proc.stdout or f"localrule {rule}:" in proc.stdout, rule


@pytest.mark.slow
def test_alignment_rounds_end_to_end_on_test_config(workflow_copy):
    """Two rounds on the θ = 0 join, the aligned maps exported, and the OSM↔DW filter run on them with
    the raw maps' rows beside (C5)."""
    snakemake(workflow_copy, "results/tables/alignment.csv", "results/tables/osm_filter.csv",
              "--configfile", "config/test.yaml")
    results = workflow_copy / "results"
    table = pd.read_csv(results / "tables" / "alignment.csv")
    assert table["maps"].drop_duplicates().tolist() == ["D0", "D1", "D2"]
    assert set(table["split"]) == {"train", "test", "all"} and (table["data"] == "synthetic").all()
    d0 = table[(table["maps"] == "D0") & (table["split"] == "all")].iloc[0]
    assert 0.3 < d0["epe_px"] < 2.0  # the test world's misregistration: max 2 px
    assert np.isfinite(table.loc[table["maps"] == "D2", ["epe_px", "rho_median", "shift_px_median"]]).all().all()
    assert "Synthetic world" in (results / "tables" / "alignment.md").read_text()
    for png in ("threshold_curves.png", "tile.png", "similarity_histogram.png", "round1/neighbours.png",
                "round2/neighbours.png"):
        assert (results / "alignment" / png).stat().st_size > 5_000, png
    for r in (1, 2):  # the same patches each round: test.yaml's 8 patches, 2 queries, 2 neighbours
        groups = np.load(results / "alignment" / f"round{r}" / "neighbours.npz")
        assert groups["similarity"].shape == (8, 8) and groups["by_network"].shape == (2, 2)
        np.testing.assert_allclose(np.diag(groups["similarity"]), 1.0, atol=1e-6)

    joined = DatasetIndex.open(results / "data" / "osm_joined")
    dw = DatasetIndex.open(results / "data" / "dw")
    assert joined.table["id"].tolist() == dw.table["id"].tolist()  # every tile, before any filtering
    aligned = DatasetIndex.open(results / "data" / "osm_aligned")
    assert aligned.meta.name == "osm_aligned" and aligned.meta.layers == joined.meta.layers
    assert aligned.meta.layer("label", schema="osm") == "osm" and aligned.meta.extra["alignment_rounds"] == 2
    assert aligned.table["id"].tolist() == joined.table["id"].tolist()
    last = DatasetIndex.open(results / "alignment" / "round2" / "dataset")
    exported, grid, _ = read_geotiff(aligned.path(aligned.table.iloc[0], "osm"))
    final, _, _ = read_geotiff(last.path(last.table.iloc[0], "osm"))
    given, given_grid, _ = read_geotiff(joined.path(joined.table.iloc[0], "osm"))
    assert np.array_equal(exported, final) and grid == given_grid
    residual, _, names = read_geotiff(aligned.path(aligned.table.iloc[0], "displacement"))
    assert names == ("dy_px", "dx_px") and residual.shape == (2, *given.shape[1:])

    # the filter ran on the aligned maps; its table holds both maps' kept tiles, pixels and accuracy
    sweep = pd.read_csv(results / "tables" / "osm_filter.csv")
    assert sweep["maps"].drop_duplicates().tolist() == ["raw", "aligned"]
    for maps, rows in sweep.groupby("maps"):
        assert rows["kept"].is_monotonic_decreasing and 0.7 in rows["threshold"].tolist(), maps
        at_theta = rows[rows["threshold"] == 0.7].iloc[0]
        assert at_theta["kept_pixels"] > 0 and 0 < at_theta["osm_accuracy_kept"] <= 1, maps
        assert 0 < at_theta["registered_accuracy_kept"] <= 1, maps
    assert "maps: aligned" in (results / "tables" / "osm_filter.md").read_text()
    osm = DatasetIndex.open(results / "data" / "osm")
    assert osm.meta.extra["osm_filter"]["osm_maps"] == "aligned"
    tile = str(osm.table.iloc[0]["id"])
    kept, _, _ = read_geotiff(osm.path(osm.table.iloc[0], "osm"))
    row = aligned.table.iloc[aligned.table["id"].astype(str).tolist().index(tile)]
    source, _, _ = read_geotiff(aligned.path(row, "osm"))
    assert np.array_equal(kept, source)

    rerun = snakemake(workflow_copy, "-n", "results/tables/alignment.csv", "results/tables/osm_filter.csv",
                      "--configfile", "config/test.yaml")
    assert "Nothing to be done" in rerun.stdout + rerun.stderr
