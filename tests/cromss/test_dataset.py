"""The pretraining dataset over a NoLDO-shaped directory: sample contents, seeding, single-modal
one-season data, and bad inputs failing with the location or file named."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import rasterio
import torch
from torch.utils.data import DataLoader

from eolabels.cromss.checkpoint import export_encoders, load_pretrained_encoder, save_encoders
from eolabels.cromss.dataset import NoisyLabelPretrainDataset, PretrainDataError
from eolabels.cromss.models import build_encoder, build_pretrain_model
from eolabels.cromss.normalization import normalise_s1, normalise_s2, s2_band_indices
from eolabels.cromss.smoothing import label_smoothing_prior, spatial_prior
from eolabels.data.geotiff import read_geotiff, write_geotiff
from eolabels.data.index import DatasetIndex
from eolabels.data.readers import TileReader
from eolabels.data.synthetic import generate_dataset


@pytest.fixture(scope="module")
def noldo(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("noldo")
    generate_dataset("noldo", root, {"incomplete_fraction": 0.0, "n_locations": 3, "tile_size": 48, "feature_size": 8.0}, seed=1)
    return root


@pytest.fixture()
def copy(noldo, tmp_path) -> Path:
    """A writable copy of the tiny dataset, to break one thing at a time."""
    return Path(shutil.copytree(noldo, tmp_path / "noldo"))


def _season_of(sample, arrays) -> int:
    """The season whose label the (unaugmented) sample carries."""
    matches = [s for s in range(4) if np.array_equal(sample["label"].numpy(), arrays["dw"][s, 0])]
    assert matches, "the label is none of the location's seasons"
    return matches[0]


def test_unaugmented_sample_shares_one_season_and_the_full_tile_prior(noldo):
    ds = NoisyLabelPretrainDataset(noldo, augment=False)
    arrays = TileReader(DatasetIndex.open(noldo)).read_location(ds.locations[1], ["s1", "s2", "dw", "truth"])
    torch.manual_seed(3)
    for _ in range(4):
        sample = ds[1]
        s = _season_of(sample, arrays)
        np.testing.assert_array_equal(sample["s2"].numpy(), normalise_s2(arrays["s2"][s]))
        np.testing.assert_array_equal(sample["s1"].numpy(), normalise_s1(arrays["s1"][s]))
        np.testing.assert_array_equal(sample["truth"].numpy(), arrays["truth"][s, 0])
        np.testing.assert_allclose(sample["prior"].numpy(), label_smoothing_prior(arrays["dw"][:, 0], s, "ts"))
    assert not ds.prior_note


def test_augmented_sample_shapes_bands_and_alignment(noldo):
    ds = NoisyLabelPretrainDataset(noldo, s2_bands=9, crop_size=32)
    torch.manual_seed(0)
    sample = ds[0]
    assert {k: tuple(v.shape) for k, v in sample.items()} == {
        "s1": (2, 32, 32), "s2": (9, 32, 32), "label": (32, 32), "truth": (32, 32), "prior": (9, 32, 32)}
    assert sample["label"].dtype == torch.int64 and 0 <= float(sample["s2"].min()) <= float(sample["s2"].max()) <= 1
    # the synthetic labels are ~70 % right: crop, flip and rotation moved label and truth together
    assert (sample["label"] == sample["truth"]).float().mean() > 0.4
    assert (sample["prior"].argmax(0) == sample["label"]).float().mean() > 0.4
    assert ds.band_indices == s2_band_indices(9)


def test_items_follow_torch_seed_and_loader_workers_differ(noldo):
    ds = NoisyLabelPretrainDataset(noldo, crop_size=32)
    torch.manual_seed(5)
    a = ds[0]
    torch.manual_seed(5)
    b = ds[0]
    c = ds[0]
    assert torch.equal(a["s2"], b["s2"]) and not torch.equal(a["s2"], c["s2"])

    def batches(seed: int) -> list[torch.Tensor]:
        loader = DataLoader(ds, batch_size=1, num_workers=2, generator=torch.Generator().manual_seed(seed))
        return [batch["s2"] for batch in loader]

    first, again = batches(11), batches(11)
    assert all(torch.equal(x, y) for x, y in zip(first, again))
    assert not all(torch.equal(x, y) for x, y in zip(first, batches(12)))


def _one_season_s2_only(root: Path) -> Path:
    """Keep only the first season and the s2/dw layers: the shape of the real S2 scene set."""
    meta = json.loads((root / "dataset.json").read_text())
    meta["seasons"] = ["spring"]
    for layer in ("s1", "truth"):
        meta["layers"].pop(layer)
    (root / "dataset.json").write_text(json.dumps(meta))
    table = pd.read_csv(root / "index.csv")
    table[table["season"] == 0].drop(columns=["s1", "truth"]).to_csv(root / "index.csv", index=False)
    return root


def test_single_modal_s2_with_one_season_uses_the_spatial_prior(copy):
    root = _one_season_s2_only(copy)
    ds = NoisyLabelPretrainDataset(root, modalities=("s2",), augment=False)
    sample = ds[2]
    assert set(sample) == {"s2", "label", "prior"}
    np.testing.assert_allclose(sample["prior"].numpy(), spatial_prior(sample["label"].numpy()), rtol=1e-6)
    assert "temporal prior P_t equals the spatial prior" in ds.prior_note
    with pytest.raises(PretrainDataError, match=r"no layer\(s\) \['s1'\]"):
        NoisyLabelPretrainDataset(root, modalities=("s1", "s2"))


def test_missing_season_names_the_location(copy):
    table = pd.read_csv(copy / "index.csv")
    table.drop(index=table[(table["id"] == "loc00001") & (table["season"] == 2)].index).to_csv(
        copy / "index.csv", index=False)
    with pytest.raises(PretrainDataError, match=r"location loc00001 is missing season\(s\) \['autumn'\]"):
        NoisyLabelPretrainDataset(copy)


def _rewrite(root: Path, location: str, season: str, layer: str, change) -> Path:
    path = root / "samples" / location / season / f"{layer}.tif"
    data, grid, names = read_geotiff(path)
    data, grid = change(data, grid)
    path.unlink()
    write_geotiff(path, data, grid, names)
    return path


def test_modalities_on_different_grids_name_the_file(copy):
    def shift(data, grid):
        t = list(grid.transform)
        t[2] += 10.0
        return data, type(grid)(crs=grid.crs, transform=tuple(t), height=grid.height, width=grid.width)

    path = _rewrite(copy, "loc00000", "summer", "s1", shift)
    ds = NoisyLabelPretrainDataset(copy)
    with pytest.raises(PretrainDataError, match=rf"location loc00000: {path}: transform"):
        ds[0]


@pytest.mark.parametrize("value, message", [(9, "label id 9 is not in schema 'dw'"),
                                            (255, "label id 255 out of range 0..8")])
def test_label_id_out_of_range_names_the_sample(copy, value, message):
    def corrupt(data, grid):
        data = data.copy()
        data[0, 5, 5] = value
        return data, grid

    _rewrite(copy, "loc00002", "winter", "dw", corrupt)
    ds = NoisyLabelPretrainDataset(copy)
    with pytest.raises(PretrainDataError, match=f"location loc00002: .*{message}"):
        ds[2]


def test_nan_in_imagery_names_the_file(copy):
    path = copy / "samples" / "loc00001" / "spring" / "s1.tif"
    with rasterio.open(path, "r+") as ds:  # write_geotiff itself refuses NaN, so patch in place
        data = ds.read()
        data[1, 0, 0] = np.nan
        ds.write(data)
    with pytest.raises(PretrainDataError, match=rf"{path}.*1 NaN/inf values"):
        NoisyLabelPretrainDataset(copy)[1]


def test_encoder_file_round_trip_and_another_architecture_fails(tmp_path):
    model = build_pretrain_model("late_fusion", "resnet18", in_channels_s2=9)
    path = tmp_path / "encoders.pt"
    save_encoders(path, export_encoders(model), "resnet18", {"s1": 2, "s2": 9}, variant="lateF")
    s2 = load_pretrained_encoder(path, "s2")
    for k, v in model.model2.encoder.state_dict().items():
        assert torch.equal(s2.state_dict()[k], v)
    with pytest.raises(ValueError, match=rf"{path} \[s2 encoder\] does not match .*another architecture"):
        load_pretrained_encoder(path, "s2", build_encoder("tu-mobilenetv3_small_050", 9))
    with pytest.raises(ValueError, match="shape mismatch"):
        load_pretrained_encoder(path, "s2", build_encoder("resnet18", 13))
    with pytest.raises(ValueError, match="not an encoder file"):
        torch.save({"state_dict": {}}, tmp_path / "other.pt")
        load_pretrained_encoder(tmp_path / "other.pt", "s2")


def test_cached_locations_give_the_samples_of_uncached_reads(copy):
    cached = NoisyLabelPretrainDataset(copy, crop_size=32, cache=True)
    plain = NoisyLabelPretrainDataset(copy, crop_size=32)
    samples = {}
    for item in (0, 1, 0):
        torch.manual_seed(item)
        samples[item] = cached[item]
        torch.manual_seed(item)
        uncached = plain[item]
        assert all(torch.equal(samples[item][k], uncached[k]) for k in uncached)
    assert sorted(cached._arrays) == [0, 1] and not plain._arrays
    # the prior of each drawn (location, season) is kept too, and gives the samples above
    assert {item for item, _ in cached._priors} == {0, 1} and not plain._priors
    shutil.rmtree(copy / "samples")  # a cached location is never read again
    torch.manual_seed(0)
    assert torch.equal(cached[0]["s2"], samples[0]["s2"])
