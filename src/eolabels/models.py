"""The one model builder of every stage, in the spirit of ``smp.create_model``: a name picks the class.

Our own networks are registered by lower-cased name; any segmentation-models-pytorch architecture
(``unet``, ``fpn``, ``pspnet``, ``deeplabv3plus``, …) falls through to ``smp.create_model`` with
random weights, so building a model never downloads anything.  An unknown name raises ``KeyError``
listing every valid one.
"""

from __future__ import annotations

import importlib
from typing import Any

import segmentation_models_pytorch as smp
from segmentation_models_pytorch.base import SegmentationModel
from torch import Tensor, nn

# name -> "module:attribute". Resolved on use because the modules holding the classes build their
# models through this one (an import at the top would be circular).
_REGISTRY: dict[str, str] = {
    "cromss_unet": "eolabels.cromss.models:single_unet",
    "cromss_midf": "eolabels.cromss.models:MidFusionUnet",
    "cromss_latef": "eolabels.cromss.models:LateFusionUnet",
    "smallunet": "eolabels.similarity.segmentation:SmallUNet",
    "distilledfcn": "eolabels.epitome.dfc:DistilledFCN",
    "alignnet": "eolabels.alignment.network:AlignNet",
}


def smp_architectures() -> dict[str, type[nn.Module]]:
    """The installed smp's architectures by lower-cased class name (smp 0.3 has no public list)."""
    return {
        name.lower(): obj
        for name, obj in vars(smp).items()
        if isinstance(obj, type) and issubclass(obj, SegmentationModel)
    }


def model_names() -> list[str]:
    """Every name :func:`create_model` accepts: ours, then smp's."""
    return sorted(_REGISTRY) + sorted(smp_architectures())


def create_model(name: str, **kwargs: Any) -> nn.Module:
    """A freshly initialised network ``name`` (case-insensitive) built with ``kwargs``.

    smp architectures get ``encoder_weights=None``; asking for pretrained encoder weights is an
    error, since the workflow runs offline and its numbers must not depend on a download.
    """
    key = name.lower()
    if key in _REGISTRY:
        module, attribute = _REGISTRY[key].split(":")
        return getattr(importlib.import_module(module), attribute)(**kwargs)
    if key in smp_architectures():
        if kwargs.get("encoder_weights") is not None:
            raise ValueError(
                f"{name}: encoder_weights={kwargs['encoder_weights']!r} would download weights; "
                "models are built with random weights (encoder_weights=None)"
            )
        return smp.create_model(key, **{**kwargs, "encoder_weights": None})
    raise KeyError(f"unknown model {name!r}; valid names: {', '.join(model_names())}")


def forward_whole_tiles(model: nn.Module, *inputs: Tensor, multiple: int = 32) -> tuple[Tensor, ...]:
    """The model's outputs on whole tiles of any size (DW train tiles are 510 px): the inputs mirrored
    up to a multiple of the deepest encoder stride, every output cropped back to the tile."""
    h, w = inputs[0].shape[-2:]
    pad = (0, -w % multiple, 0, -h % multiple)
    if any(pad):
        inputs = tuple(nn.functional.pad(x, pad, mode="reflect") for x in inputs)
    out = model(*inputs)
    return tuple(x[..., :h, :w] for x in (out if isinstance(out, (tuple, list)) else (out,)))
