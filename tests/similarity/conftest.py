"""Fixtures for the similarity tests."""

from __future__ import annotations

import pytest
import torch
from similarity_nets import PlainUNet


@pytest.fixture
def plain_unet() -> PlainUNet:
    torch.manual_seed(0)
    return PlainUNet().double()


@pytest.fixture(scope="module", autouse=True)
def single_thread():
    """Tiny networks on a shared 2-core machine: extra intra-op threads only spin."""
    previous = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(previous)
