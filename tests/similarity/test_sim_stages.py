"""Helpers of the audit and self-denoising stages, by hand, and the label dataset writer."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from eolabels.data.geotiff import GridSpec, read_geotiff
from eolabels.data.index import DatasetIndex
from eolabels.data.synthetic import generate_dataset
from eolabels.similarity.audit import auroc, coarse_grid, decile_error_rates
from eolabels.similarity.selfdenoise import gate_from_grid, label_accuracy, write_label_dataset
from eolabels.similarity.tiles import load_tiles


def test_coarse_grid_scales_the_pixel_size_only():
    grid = GridSpec("EPSG:32632", (10.0, 0.0, 300000.0, 0.0, -10.0, 5000000.0), 96, 96)
    coarse = coarse_grid(grid, 16, 6, 6)
    assert coarse.transform == (160.0, 0.0, 300000.0, 0.0, -160.0, 5000000.0)
    assert coarse.bounds == grid.bounds  # 6 cells of 16 px cover the 96-px tile


def test_decile_error_rates_and_auroc_by_hand():
    soft = np.arange(20.0)  # deciles: samples 0-1 (lowest), 18-19 (highest)
    errors = np.zeros(20, bool)
    errors[[0, 19]] = True
    errors[1] = True
    assert decile_error_rates(soft, errors) == (1.0, 0.5)
    # 3 of the 4 (positive, negative) pairs are ordered: only 0.4 < 0.5 is not
    assert auroc(np.array([0.1, 0.4, 0.5, 0.8]), np.array([False, True, False, True])) == 0.75
    assert np.isnan(auroc(np.ones(3), np.ones(3, bool)))


def test_gate_from_grid_by_hand():
    soft = torch.tensor([1.0, 2.0, 3.0, 4.0])  # a 2 x 2 grid of a 5 x 6 tile at stride 3
    expected = torch.tensor(
        [[1, 1, 1, 2, 2, 2]] * 3 + [[3, 3, 3, 4, 4, 4]] * 2, dtype=torch.float32
    )
    torch.testing.assert_close(gate_from_grid(soft, 5, 6, 3), expected)


def test_label_accuracy_counts_unlabelled_as_wrong():
    truth = np.array([[0, 1], [2, 2]])
    labels = np.array([[0, 1], [255, 1]], dtype=np.uint8)
    assert label_accuracy(truth, labels, 3) == pytest.approx(0.5)


def test_write_label_dataset_replaces_one_layer_and_copies_the_rest(tmp_path):
    generate_dataset("noldo", tmp_path / "noldo", {"incomplete_fraction": 0.0, "n_locations": 1, "tile_size": 16}, seed=0)
    source = load_tiles(tmp_path / "noldo", ["image", "label", "truth"])
    labels = np.full_like(source.layers["label"], 3)
    write_label_dataset(source, labels, tmp_path / "out", "noldo_denoised", "test", {"label_source": "dw_denoised"},
                        copy_layers=("s2", "s1", "truth"))
    written = DatasetIndex.open(tmp_path / "out")
    assert set(written.meta.layers) == {"s2", "s1", "dw", "truth"}
    assert written.meta.extra["label_source"] == "dw_denoised"
    assert written.meta.extra["label_quality"] == [{"label": "dw", "reference": "truth"}]
    row = written.table.iloc[2]
    dw, grid, _ = read_geotiff(written.path(row, "dw"))
    assert (dw == 3).all() and grid == source.index.grid(source.table.iloc[2])
    s2_copy, _, _ = read_geotiff(written.path(row, "s2"))
    assert np.array_equal(s2_copy, source.layers["image"][2])
    labels_only = write_label_dataset(source, labels, tmp_path / "labels", "round1", "test", {})
    assert list(DatasetIndex.open(labels_only.parent).meta.layers) == ["dw"]
    assert DatasetIndex.open(labels_only.parent).meta.extra["label_quality"] == []


def test_density_audit_of_any_segmentation_network(tmp_path):
    from similarity_nets import untrained_audit_setup

    from eolabels.similarity.audit import AuditSettings, run_density_audit

    generate_dataset("noldo", tmp_path / "noldo", {"incomplete_fraction": 0.0, "n_locations": 2, "tile_size": 16}, seed=0)
    generate_dataset("dw", tmp_path / "dw", {"n_train": 1, "n_test": 1, "tile_size": 16}, seed=0)
    segmenter, tables, figures = untrained_audit_setup(tmp_path / "noldo", tmp_path)
    summary = run_density_audit(
        segmenter, tmp_path / "noldo", tmp_path / "dw", tmp_path / "density", tables, figures,
        AuditSettings(stride=8, context=8, figure_tiles=1),
    )
    assert summary.set_index("measure").loc["training samples", "value"] == 8 * 4  # 2 x 2 per tile
    assert len(list((tmp_path / "density" / "noldo").glob("*.tif"))) == 8
    assert len(list((tmp_path / "density" / "dw").glob("*.tif"))) == 2
    assert figures["tiles"].stat().st_size > 5_000
