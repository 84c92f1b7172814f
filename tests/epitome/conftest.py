"""Epitome tests run single-threaded: their tensors are tiny, and on a shared CPU thread
contention, not arithmetic, dominates (measured ~25× slower with 2 threads under load)."""

from __future__ import annotations

import pytest
import torch


@pytest.fixture(autouse=True)
def single_thread():
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)
