"""Independent reference of the epitome tests: the log joint written with explicit loops (spec §12)."""

from __future__ import annotations

import numpy as np


def brute_force(mean, ivar, logits, patches) -> np.ndarray:
    """Wrapped per-position Gaussian log density + per-layer log prior, explicit loops (float64)."""
    mean, ivar, logits, x = (t.detach().double().numpy() for t in (mean, ivar, logits, patches))
    layers, _, height, width = mean.shape
    size = x.shape[-1]
    half = size // 2
    out = np.zeros((layers, len(x), height, width))
    for l in range(layers):
        log_prior = logits[l] - np.log(np.exp(logits[l]).sum())
        for u in range(height):
            for v in range(width):
                rows = [(u + i - half) % height for i in range(size)]
                cols = [(v + j - half) % width for j in range(size)]
                mu = mean[l][:, rows][:, :, cols]
                lam = ivar[l][:, rows][:, :, cols]
                for b in range(len(x)):
                    out[l, b, u, v] = 0.5 * np.sum(-lam * (x[b] - mu) ** 2 + np.log(lam)) + log_prior[u, v]
    return out
