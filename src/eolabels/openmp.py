"""A short OpenMP spin-wait for processes that alternate torch's threads with pocketfft's.

After every parallel region libgomp's threads spin about 300,000 times before they sleep.  The
epitome's FFT paths hand their inverse row DFT to pocketfft's own threads right after a torch step,
so for a few milliseconds both pools share the cores: on the 2-core bench machine the in-path
inverse took 12–17 ms against 6 ms alone, and the 31×31 log joint ran in 38 ms instead of 32 ms.
A short spin (``GOMP_SPINCOUNT``) removes that, but it slowed a U-Net training step by 12–30 %
(323 → 361–427 ms, the threads then sleep and wake between its many small regions), so only the
stages that evaluate the epitome without a gradient take it.
"""

from __future__ import annotations

import os
import sys
import warnings

SHORT_SPIN = "10000"


def use_short_spin() -> None:
    """Set ``GOMP_SPINCOUNT`` to ``SHORT_SPIN`` for this process unless it is set already.

    libgomp reads it once, when torch loads it: after ``import torch`` this only warns (the run is
    then just slower, never different)."""
    if "torch" in sys.modules:
        warnings.warn("use_short_spin() after torch was imported has no effect", RuntimeWarning, stacklevel=2)
        return
    os.environ.setdefault("GOMP_SPINCOUNT", SHORT_SPIN)
