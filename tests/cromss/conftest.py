"""Golden cases of the authors' CromSS functions (spec cromss.md, fixtures/cromss_cases.npz)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Callable, Iterator

import numpy as np
import pytest
import torch

RTOL, ATOL = 1e-5, 1e-6


@pytest.fixture(scope="session")
def cases(fixtures_dir: Path) -> dict[str, np.ndarray]:
    with np.load(fixtures_dir / "cromss_cases.npz") as npz:
        return {k: npz[k] for k in npz.files}


@pytest.fixture(scope="session")
def arch(fixtures_dir: Path) -> dict[str, Any]:
    return json.loads((fixtures_dir / "cromss_arch.json").read_text())


@pytest.fixture(scope="session")
def golden(cases: dict[str, np.ndarray]) -> Callable[[str, Any], None]:
    """``golden(key, value)`` asserts value equals the fixture within rtol 1e-5, atol 1e-6."""

    def check(key: str, value: Any) -> None:
        if isinstance(value, torch.Tensor):
            value = value.detach().cpu().numpy()
        expected = cases[key]
        value = np.asarray(value)
        assert value.shape == expected.shape, f"{key}: shape {value.shape} != {expected.shape}"
        np.testing.assert_allclose(value, expected, rtol=RTOL, atol=ATOL, err_msg=key)

    return check


@pytest.fixture(autouse=True)
def _one_thread() -> Iterator[None]:
    # the test machine is shared; one thread keeps timings stable (restored for other folders)
    previous = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(previous)
