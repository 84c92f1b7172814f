"""A short OpenMP spin-wait for processes that alternate torch's threads with pocketfft's.

After every parallel region libgomp's threads spin about 300,000 times before they sleep.  The
epitome's FFT paths hand their inverse row DFT to pocketfft's own threads right after a torch step,
so for a few milliseconds both pools share the cores and the inverse runs far slower than alone
(``python bench/epitome.py`` measures it). A short spin (``GOMP_SPINCOUNT``) removes that, but it
slows a U-Net training step, whose threads then sleep and wake between its many small regions, so
only the stages that evaluate the epitome without a gradient take it.
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
