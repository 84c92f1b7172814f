"""Reading the authors' Lightning checkpoints and handing encoders to fine-tuning (spec §1, §7).

The authors' checkpoints hold ``state_dict`` keys ``net.<model keys>``; our models use the same
names without ``net.``.  Fine-tuning keeps only one encoder, renamed to the ``encoder.*`` of an smp
model; the four encoders of the released weights are addressed by the reference's tags.  Our own
checkpoints also record the trainer's configuration, so :func:`load_branch` rebuilds any modality
branch of them without being told the architecture.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Mapping

import torch
from torch import Tensor, nn

from eolabels.atomic import atomic_path
from eolabels.cromss.models import (
    DECODER_CHANNELS,
    MODALITIES,
    ModalityBranch,
    build_encoder,
    build_pretrain_model,
    encoders_of,
    modality_branch,
)

LIGHTNING_PREFIX = "net."
# what a checkpoint of eolabels.cromss.train records of its PretrainConfig to be rebuilt and split
RECORDED_CONFIG = ("kind", "encoder_name", "in_channels_s2", "classes", "modality", "sample_selection",
                   "val_fraction", "split_seed")
ENCODERS_FORMAT = "eolabels.cromss.encoders/1"
# ``--weight_load_tag`` prefixes of utils/finetune.py: mid/late fusion, S1/S2 encoder
ENCODER_PREFIXES: dict[str, str] = {
    "mfs1": "net.encoder1.",
    "mfs2": "net.encoder.",
    "lfs1": "net.model1.encoder.",
    "lfs2": "net.model2.encoder.",
}


def _load_file(path: Path, what: str, weights_only: bool = True, hint: str = "") -> Any:
    """``torch.load`` onto the CPU; a missing or unreadable file fails naming ``what`` and the path."""
    if not path.is_file():
        raise FileNotFoundError(f"{what} not found: {path}")
    try:
        return torch.load(path, map_location="cpu", weights_only=weights_only)
    except Exception as err:  # torch raises UnpicklingError, RuntimeError or EOFError here
        raise ValueError(f"cannot read {what} {path}: {err}{hint}") from err


def read_lightning_state_dict(path: str | Path, weights_only: bool = True) -> dict[str, Tensor]:
    """The ``state_dict`` of a Lightning checkpoint file (or of a plain state-dict file).

    ``weights_only=True`` refuses arbitrary pickled objects; pass False only for a trusted file
    whose hyper-parameters were pickled as Python objects.
    """
    path = Path(path)
    hint = " (for a trusted file with pickled objects, pass weights_only=False)" if weights_only else ""
    payload = _load_file(path, "checkpoint", weights_only, hint)
    state = payload.get("state_dict", payload) if isinstance(payload, dict) else None
    if not isinstance(state, dict) or not all(isinstance(v, Tensor) for v in state.values()):
        raise ValueError(f"{path} holds no state_dict of tensors")
    return state


def strip_prefix(state: Mapping[str, Tensor], prefix: str) -> dict[str, Tensor]:
    """Keys starting with ``prefix``, with the prefix removed; other keys are dropped."""
    return {k[len(prefix):]: v for k, v in state.items() if k.startswith(prefix)}


def check_state_matches(model: nn.Module, state: Mapping[str, Tensor], source: str) -> None:
    """Raise a ValueError naming ``source`` and the differing keys unless ``state`` fits ``model`` exactly."""
    expected = model.state_dict()
    missing = sorted(set(expected) - set(state))
    unexpected = sorted(set(state) - set(expected))
    mismatched = sorted(
        f"{k} {tuple(state[k].shape)} vs {tuple(expected[k].shape)}"
        for k in set(expected) & set(state)
        if state[k].shape != expected[k].shape
    )
    if missing or unexpected or mismatched:
        parts = [
            f"{label} ({len(keys)}): {', '.join(keys[:5])}{' …' if len(keys) > 5 else ''}"
            for label, keys in (("missing", missing), ("unexpected", unexpected),
                                ("shape mismatch", mismatched))
            if keys
        ]
        raise ValueError(
            f"{source} does not match {type(model).__name__} (another architecture?): "
            + "; ".join(parts)
        )


def load_pretrain_checkpoint(model: nn.Module, path: str | Path, weights_only: bool = True) -> nn.Module:
    """Load an authors' (or our) pretraining checkpoint into ``model``, strictly (§1).

    Lightning keys lose their ``net.`` prefix; a checkpoint without that prefix loads as is.
    """
    state = read_lightning_state_dict(path, weights_only)
    if any(k.startswith(LIGHTNING_PREFIX) for k in state):
        state = strip_prefix(state, LIGHTNING_PREFIX)
    check_state_matches(model, state, str(path))
    model.load_state_dict(state, strict=True)
    return model


def export_encoders(model: nn.Module, modality: str | None = None) -> dict[str, dict[str, Tensor]]:
    """``{"s1": state_dict, "s2": state_dict}`` of a model's encoders, for fine-tuning.

    A single-modal U-Net gives one entry, under ``modality``.
    """
    return {
        name: {k: v.detach().cpu().clone() for k, v in encoder.state_dict().items()}
        for name, encoder in encoders_of(model, modality).items()
    }


def save_encoders(path: str | Path, encoders: Mapping[str, Mapping[str, Tensor]], encoder_name: str,
                  in_channels: Mapping[str, int], **meta: Any) -> None:
    """Write ``encoders.pt``: plain per-modality state_dicts plus what is needed to rebuild them.

    Layout: ``{"format", "encoder_name", "in_channels": {modality: n}, "encoders": {modality:
    state_dict}, "meta": {...}}``; it loads with ``torch.load(weights_only=True)``.
    """
    payload = {
        "format": ENCODERS_FORMAT,
        "encoder_name": encoder_name,
        "in_channels": {m: int(in_channels[m]) for m in encoders},
        "encoders": {m: dict(state) for m, state in encoders.items()},
        "meta": meta,
    }
    with atomic_path(path) as tmp:
        torch.save(payload, tmp)


def read_encoders(path: str | Path) -> dict[str, Any]:
    """The payload of an ``encoders.pt`` written by :func:`save_encoders`, checked for its format."""
    path = Path(path)
    payload = _load_file(path, "encoder file")
    if not isinstance(payload, dict) or payload.get("format") != ENCODERS_FORMAT:
        raise ValueError(f"{path} is not an encoder file of format {ENCODERS_FORMAT!r}")
    return payload


def load_pretrained_encoder(path: str | Path, modality: str, encoder: nn.Module | None = None) -> nn.Module:
    """The ``modality`` encoder of an ``encoders.pt``, loaded strictly into ``encoder``.

    Without ``encoder`` a fresh one of the recorded architecture is built; with one (e.g. the
    ``encoder`` of a fine-tuning smp model), a different architecture or band count fails with
    the file and the differing keys named.
    """
    payload = read_encoders(path)
    if modality not in payload["encoders"]:
        raise ValueError(f"{path} has no {modality!r} encoder (has {sorted(payload['encoders'])})")
    if encoder is None:
        encoder = build_encoder(payload["encoder_name"], payload["in_channels"][modality])
    return load_encoder(encoder, payload["encoders"][modality], f"{path} [{modality} encoder]")


def encoder_state_from_checkpoint(
    state: Mapping[str, Tensor], tag: str, source: str = "checkpoint"
) -> dict[str, Tensor]:
    """One encoder's weights from a Lightning ``state_dict`` by reference tag (``mfs1``…``lfs2``, §7)."""
    if tag not in ENCODER_PREFIXES:
        raise ValueError(f"unknown encoder tag {tag!r}; expected one of {sorted(ENCODER_PREFIXES)}")
    encoder_state = strip_prefix(state, ENCODER_PREFIXES[tag])
    if not encoder_state:
        raise ValueError(f"{source} has no keys with prefix {ENCODER_PREFIXES[tag]!r} (tag {tag})")
    return encoder_state


def load_encoder(encoder: nn.Module, state: Mapping[str, Tensor], source: str = "encoder state") -> nn.Module:
    """Put exported encoder weights into a fresh smp encoder, every tensor accounted for.

    The reference loads with ``strict=False`` into ``model.encoder``; a strict check here turns a
    wrong encoder or band count into an error instead of a silently random encoder.
    """
    check_state_matches(encoder, state, source)
    encoder.load_state_dict(dict(state), strict=True)
    return encoder


def read_pretrain_checkpoint(path: str | Path) -> dict[str, Any]:
    """The payload of a checkpoint written by :mod:`eolabels.cromss.train`, checked for its
    ``state_dict`` and recorded configuration; failures name the file."""
    path = Path(path)
    payload = _load_file(path, "pretraining checkpoint")
    if not isinstance(payload, dict) or not isinstance(payload.get("state_dict"), dict):
        raise ValueError(f"{path} holds no state_dict: not a CromSS pretraining checkpoint")
    config = payload.get("config")
    if not isinstance(config, dict) or any(k not in config for k in RECORDED_CONFIG):
        raise ValueError(
            f"{path} records no model configuration ({', '.join(RECORDED_CONFIG)}): only checkpoints written "
            "by eolabels.cromss.train can be rebuilt (the authors' files do not name their encoder)"
        )
    return payload


def load_branch(checkpoint: str | Path, modality: str) -> ModalityBranch:
    """The ``modality`` encoder + decoder + head of a CromSS checkpoint of ours, as one network.

    The full model is rebuilt from the recorded configuration and loaded strictly, so weights that
    do not fit it fail naming the file; a single-modal U-Net is its own branch whatever ``modality``
    says.  The branch is on the CPU in training mode, as ``nn.Module``s are built.
    """
    return branch_of_payload(read_pretrain_checkpoint(checkpoint), modality, str(checkpoint))


def branch_of_payload(payload: Mapping[str, Any], modality: str, source: str) -> ModalityBranch:
    """:func:`load_branch` of a checkpoint already read by :func:`read_pretrain_checkpoint` (``source``
    names it in errors), so a caller that also wants its provenance reads the file once."""
    if modality not in MODALITIES:
        raise ValueError(f"modality must be one of {MODALITIES}, got {modality!r}")
    config = payload["config"]
    kind = config["kind"]
    try:
        # checkpoints written before the decoder width was a setting have the reference's decoder
        decoder = tuple(config.get("decoder_channels", DECODER_CHANNELS))
        model = build_pretrain_model(kind, config["encoder_name"], in_channels_s2=int(config["in_channels_s2"]),
                                     classes=int(config["classes"]), modality=config["modality"],
                                     decoder_channels=decoder)
    except (ValueError, KeyError, RuntimeError) as err:
        raise ValueError(f"{source}: cannot rebuild its {kind} model ({err})") from err
    state = payload["state_dict"]
    if any(k.startswith(LIGHTNING_PREFIX) for k in state):
        state = strip_prefix(state, LIGHTNING_PREFIX)
    check_state_matches(model, state, source)
    model.load_state_dict(state, strict=True)
    return modality_branch(model, config["modality"] if kind == "single" else modality)
