"""Freed heap memory kept for reuse in processes that allocate a large tensor every batch.

glibc hands out blocks above its mmap threshold (which it raises itself to at most 32 MiB) as fresh
mmap'd pages and gives them back to the kernel when they are freed.  The epitome's no-gradient
stages allocate tens of MiB per batch (a batch's log joint over every position, the top-K search's
coarse log joint), so every batch pays one page fault per 4 KiB page, more than the arithmetic of
the memory-bound passes over them: ``python bench/epitome.py`` measures both posterior paths with
this setting, and ``--no-keep-freed-memory`` without it.  Raising the mmap and trim thresholds
makes such blocks come from the heap and stay there once freed, so the next batch reuses warm
pages.  The process then keeps what it freed until it exits, and a freed block a larger one cannot
fit in stays unused beside it, so it can hold more than its live peak: a stage process that works
tile by tile at one batch shape can afford that.  Older glibc releases refuse thresholds above 32 MiB
(half their heap size); the setting then falls back to 32 MiB, which still keeps smaller blocks.
"""

from __future__ import annotations

import ctypes
import ctypes.util

# mallopt parameters (glibc's malloc.h)
M_TRIM_THRESHOLD = -1
M_MMAP_THRESHOLD = -3

# blocks up to this size come from the heap; freed heap memory is returned to the kernel only above
# twice this much at its top
KEEP_BELOW = 1 << 30
OLD_GLIBC_LIMIT = 32 << 20  # the largest mmap threshold older glibc accepts


def keep_freed_memory(threshold: int = KEEP_BELOW) -> bool:
    """Serve allocations below ``threshold`` bytes from the heap and keep freed memory for reuse
    (glibc's ``mallopt``); returns whether the C library took the setting (False where it is not
    glibc: the process then runs as before, only slower)."""
    name = ctypes.util.find_library("c")
    if name is None:  # no C library found by name (e.g. Windows)
        return False
    try:
        libc = ctypes.CDLL(name)
    except OSError:
        return False
    mallopt = getattr(libc, "mallopt", None)
    if mallopt is None:  # not glibc (e.g. macOS)
        return False
    mallopt.argtypes, mallopt.restype = [ctypes.c_int, ctypes.c_int], ctypes.c_int
    for value in (min(threshold, 2**31 - 1), min(threshold, OLD_GLIBC_LIMIT)):
        if mallopt(M_MMAP_THRESHOLD, value):
            return bool(mallopt(M_TRIM_THRESHOLD, min(2 * value, 2**31 - 1)))
    return False
