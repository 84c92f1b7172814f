"""resolve_device: auto picks what is there; a CUDA device the machine lacks is named, not crashed into."""

import pytest
import torch

from eolabels.device import resolve_device


def test_auto_and_cpu():
    assert resolve_device("cpu") == torch.device("cpu")
    assert resolve_device("auto") == torch.device("cuda" if torch.cuda.is_available() else "cpu")


def test_a_missing_cuda_device_names_the_setting(monkeypatch):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    with pytest.raises(RuntimeError, match=r"device 'cuda' \(config key `device`\): this machine has no CUDA devices"):
        resolve_device("cuda")


def test_a_cuda_index_beyond_the_devices_is_named(monkeypatch):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 2)
    assert resolve_device("cuda:1") == torch.device("cuda:1")
    with pytest.raises(RuntimeError, match=r"device 'cuda:2' \(config key `device`\): this machine has 2 CUDA devices"):
        resolve_device("cuda:2")
