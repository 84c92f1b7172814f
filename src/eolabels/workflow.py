"""Helpers for the thin Snakemake entry points in ``workflow_scripts/``."""

from __future__ import annotations

import contextlib
import logging
import os
import sys
from collections.abc import Iterator
from pathlib import Path


@contextlib.contextmanager
def logged(log_path: str | os.PathLike[str], level: int = logging.INFO) -> Iterator[logging.Logger]:
    """Send logging *and* stderr (tqdm progress bars, warnings) of a rule to its ``log:`` file.

    A failure is written to the log with its traceback before it propagates, so
    ``logs/<rule>/<wildcards>.log`` always says why a job died.
    """
    path = Path(log_path)
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("a", buffering=1) as stream:
        handler = logging.StreamHandler(stream)
        handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
        root = logging.getLogger()
        root.addHandler(handler)
        old_level = root.level
        root.setLevel(level)
        log = logging.getLogger("eolabels")
        try:
            with contextlib.redirect_stderr(stream):
                yield log
        except BaseException:
            log.exception("rule failed")
            raise
        finally:
            root.removeHandler(handler)
            root.setLevel(old_level)
            sys.stderr.flush()
