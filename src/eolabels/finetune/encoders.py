"""Encoder sources of the fine-tuning tables (spec §7): each a named row, each loaded strictly.

A source is where a fine-tuning model's encoder weights come from:

``random``       smp's random initialisation (the tables' baseline row);
``eolabels``     an ``encoders.pt`` of our pretraining runs, the S1 or S2 branch the task reads;
``lightning``    the authors' released Lightning checkpoints (``weights-cromss-*.ckpt``), one encoder
                 picked by their ``--weight_load_tag`` (``mfs1``, ``mfs2``, ``lfs1``, ``lfs2``);
``torchvision``  a ResNet state dict in torchvision/timm key layout (e.g. the SSL4EO-S12 MoCo, DINO or
                 DeCUR ResNet-50 weights), with wrapper prefixes such as ``module.`` or ``backbone.``
                 and the classifier head removed.

The reference loads with ``strict=False``; here every tensor of the encoder must be filled and
every tensor of the file used (a head excepted), so a wrong architecture or band count fails
before training, naming the row and the file, instead of silently training from random weights.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import torch
from torch import Tensor, nn

from eolabels.cromss.checkpoint import (
    check_state_matches,
    encoder_state_from_checkpoint,
    read_encoders,
    read_lightning_state_dict,
)

SourceKind = Literal["random", "eolabels", "lightning", "torchvision"]
# wrappers that self-supervised checkpoints put around a ResNet's keys (MoCo, DINO, torchgeo, DDP)
WRAPPER_PREFIXES = ("module.", "encoder_q.", "backbone.", "encoder.", "model.", "teacher.", "student.")
HEAD_PREFIXES = ("fc.", "head.", "classifier.")


class EncoderSourceError(ValueError):
    """An encoder source that cannot fill the model's encoder; the message names the row and file."""


@dataclass(frozen=True)
class EncoderSource:
    """One row's encoder weights: ``name`` labels the row, ``kind`` says how ``path`` is read."""

    name: str
    kind: SourceKind = "random"
    path: str | None = None
    tag: str | None = None  # the authors' encoder tag (lightning) or the branch modality (eolabels)

    def __post_init__(self) -> None:
        if self.kind != "random" and not self.path:
            raise EncoderSourceError(f"encoder source {self.name!r} ({self.kind}) needs a path")
        if self.kind == "lightning" and not self.tag:
            raise EncoderSourceError(f"encoder source {self.name!r}: a Lightning checkpoint needs a tag (mfs1…lfs2)")

    def check_exists(self) -> None:
        """Fail naming the row when its file is missing (checked before any training starts)."""
        if self.path and not Path(self.path).is_file():
            raise EncoderSourceError(f"encoder source {self.name!r}: weight file not found: {self.path}")


def _unwrap(state: Mapping[str, Tensor]) -> dict[str, Tensor]:
    """Strip wrapper prefixes shared by every key (repeatedly: ``module.encoder_q.``) and drop the head."""
    state = dict(state)
    changed = True
    while changed and state:
        changed = False
        for prefix in WRAPPER_PREFIXES:
            if all(k.startswith(prefix) for k in state):
                state = {k[len(prefix):]: v for k, v in state.items()}
                changed = True
    return {k: v for k, v in state.items() if not k.startswith(HEAD_PREFIXES)}


def torchvision_state(path: str | os.PathLike[str]) -> dict[str, Tensor]:
    """A ResNet's weights from a torchvision/timm-layout file (a bare state dict or one under
    ``state_dict`` / ``model``), without wrapper prefixes or classifier head."""
    payload = torch.load(path, map_location="cpu", weights_only=True)
    if isinstance(payload, dict):
        for key in ("state_dict", "model", "teacher"):
            if isinstance(payload.get(key), dict):
                payload = payload[key]
                break
    if not isinstance(payload, dict) or not all(isinstance(v, Tensor) for v in payload.values()):
        raise EncoderSourceError(f"{path} holds no state dict of tensors")
    return _unwrap(payload)


def _fit_to_encoder(encoder: nn.Module, state: Mapping[str, Tensor]) -> dict[str, Tensor]:
    """``state`` renamed to the encoder's keys: timm encoders of smp (``tu-``) nest the net in ``model.``."""
    expected = encoder.state_dict()
    if set(state) <= set(expected) or not state:
        return dict(state)
    nested = {f"model.{k}": v for k, v in state.items()}
    return nested if set(nested) <= set(expected) else dict(state)


def source_state(source: EncoderSource, modality: str) -> dict[str, Tensor] | None:
    """The encoder weights of ``source`` for a task reading ``modality`` (None for random init)."""
    if source.kind == "random":
        return None
    source.check_exists()
    path = str(source.path)
    try:
        if source.kind == "eolabels":
            encoders = read_encoders(path)["encoders"]
            if modality not in encoders:
                raise EncoderSourceError(
                    f"encoder source {source.name!r}: {path} has no {modality} encoder (it has {sorted(encoders)})")
            return dict(encoders[modality])
        if source.kind == "lightning":
            return encoder_state_from_checkpoint(read_lightning_state_dict(path), str(source.tag), path)
        return torchvision_state(path)
    except EncoderSourceError:
        raise
    except (ValueError, RuntimeError, OSError) as err:
        raise EncoderSourceError(f"encoder source {source.name!r}: {err}") from err


def load_source(encoder: nn.Module, source: EncoderSource, modality: str) -> int:
    """Fill ``encoder`` from ``source``; returns the number of tensors loaded (0 for random init).

    Every encoder tensor must be present with its shape; a first convolution of another band count
    is named as such, since it is the usual mistake (an S2 encoder for S1, 13 bands for 9).
    """
    state = source_state(source, modality)
    if state is None:
        return 0
    state = _fit_to_encoder(encoder, state)
    expected = encoder.state_dict()
    first = next(iter(expected))
    if first in state and state[first].dim() == 4 and state[first].shape[1] != expected[first].shape[1]:
        raise EncoderSourceError(
            f"encoder source {source.name!r} ({source.path}) takes {state[first].shape[1]} input bands, "
            f"the task's {modality} input has {expected[first].shape[1]}"
        )
    try:
        check_state_matches(encoder, state, f"encoder source {source.name!r} ({source.path})")
    except ValueError as err:
        raise EncoderSourceError(str(err)) from err
    encoder.load_state_dict(state, strict=True)
    return len(state)


def freeze_encoder(model: nn.Module) -> int:
    """The authors' ``efix``: no gradient for any parameter whose name contains "encoder"; returns
    how many tensors were frozen."""
    frozen = 0
    for name, parameter in model.named_parameters():
        if "encoder" in name:
            parameter.requires_grad_(False)
            frozen += 1
    return frozen


def encoder_norm_layers(model: nn.Module) -> list[nn.Module]:
    """The encoder's batch-norm layers (kept in eval mode when ``freeze_bn`` is set)."""
    return [m for name, m in model.named_modules()
            if "encoder" in name and isinstance(m, nn.modules.batchnorm._BatchNorm)]
