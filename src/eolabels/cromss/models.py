"""CromSS pretraining networks built from segmentation_models_pytorch parts (spec §1).

* ``single``: one ``smp.Unet`` on one modality (the single-modal baseline).
* ``late_fusion``: two independent U-Nets, ``model1`` (S1) and ``model2`` (S2).
* ``mid_fusion``: two encoders, ``encoder1`` (S1) and ``encoder`` (S2), and ONE decoder and head,
  run once per modality (S1 first), so the decoder's BN layers see two batches per step.

Attribute names reproduce the authors' checkpoint keys without their ``net.`` prefix.  The fusion
models take ``(x_s1, x_s2)`` and return ``(logits_s1, logits_s2)``.  All three are registered with
:func:`eolabels.models.create_model` (``cromss_unet``, ``cromss_midf``, ``cromss_latef``);
:class:`ModalityBranch` runs one modality of any of them as a single-input network.
"""

from __future__ import annotations

import inspect
from typing import Literal, Sequence

import segmentation_models_pytorch as smp
from segmentation_models_pytorch.base import SegmentationHead
from segmentation_models_pytorch.base import initialization as smp_init
from segmentation_models_pytorch.decoders.unet.decoder import UnetDecoder
from segmentation_models_pytorch.encoders import get_encoder
from torch import Tensor, nn

from eolabels.models import create_model

ModelKind = Literal["single", "late_fusion", "mid_fusion"]
MODEL_KINDS: tuple[str, ...] = ("single", "late_fusion", "mid_fusion")
# the registered model (eolabels.models) of each kind
KIND_MODELS: dict[str, str] = {"single": "cromss_unet", "late_fusion": "cromss_latef", "mid_fusion": "cromss_midf"}
MODALITIES: tuple[str, ...] = ("s1", "s2")
DECODER_CHANNELS: tuple[int, ...] = (256, 128, 64, 32, 16)

# smp ≥ 0.4 names the decoder's BN switch ``use_norm`` and takes the feature list as one argument;
# smp 0.3.3 (the authors' pin) used ``use_batchnorm`` and ``*features``.  Both build the same keys.
_DECODER_PARAMS = inspect.signature(UnetDecoder.__init__).parameters
_DECODER_TAKES_STARRED = any(
    p.kind is inspect.Parameter.VAR_POSITIONAL
    for p in inspect.signature(UnetDecoder.forward).parameters.values()
)
_UNET_BATCHNORM = (
    {"decoder_use_norm": "batchnorm"}
    if "decoder_use_norm" in inspect.signature(smp.Unet.__init__).parameters
    else {"decoder_use_batchnorm": True}
)


def _unet_decoder(encoder_channels: Sequence[int], decoder_channels: Sequence[int]) -> UnetDecoder:
    """UNet decoder with BatchNorm, no attention, no centre block (§1)."""
    norm = {"use_norm": "batchnorm"} if "use_norm" in _DECODER_PARAMS else {"use_batchnorm": True}
    return UnetDecoder(
        encoder_channels=encoder_channels,
        decoder_channels=decoder_channels,
        n_blocks=len(decoder_channels),
        attention_type=None,
        **norm,
    )


def _decode(decoder: UnetDecoder, features: list[Tensor]) -> Tensor:
    return decoder(*features) if _DECODER_TAKES_STARRED else decoder(features)


def _check_pair(x_s1: Tensor, x_s2: Tensor, divisor: int = 32) -> None:
    if x_s1.dim() != 4 or x_s2.dim() != 4:
        raise ValueError(f"inputs must be (B, C, H, W), got {tuple(x_s1.shape)} and {tuple(x_s2.shape)}")
    if x_s1.shape[0] != x_s2.shape[0] or x_s1.shape[2:] != x_s2.shape[2:]:
        raise ValueError(
            f"S1 input {tuple(x_s1.shape)} and S2 input {tuple(x_s2.shape)} differ in batch or size"
        )
    h, w = x_s1.shape[2:]
    if h % divisor or w % divisor:
        raise ValueError(f"input height and width must be divisible by {divisor}, got {h}×{w}")


def single_unet(encoder_name: str, in_channels: int, classes: int,
                decoder_channels: Sequence[int] = DECODER_CHANNELS) -> smp.Unet:
    """The single-modal U-Net (``Unet`` of the reference): BatchNorm decoder, no attention (§1)."""
    return smp.Unet(
        encoder_name=encoder_name,
        encoder_weights=None,
        in_channels=in_channels,
        classes=classes,
        decoder_channels=tuple(decoder_channels),
        decoder_attention_type=None,
        **_UNET_BATCHNORM,
    )


class LateFusionUnet(nn.Module):
    """Two independent U-Nets, one per modality (``Unet_lateF_2branch``, §1)."""

    def __init__(self, encoder_name: str, in_channels_s1: int, in_channels_s2: int, classes: int,
                 decoder_channels: Sequence[int] = DECODER_CHANNELS) -> None:
        super().__init__()
        self.model1 = single_unet(encoder_name, in_channels_s1, classes, decoder_channels)
        self.model2 = single_unet(encoder_name, in_channels_s2, classes, decoder_channels)

    def forward(self, x_s1: Tensor, x_s2: Tensor) -> tuple[Tensor, Tensor]:
        _check_pair(x_s1, x_s2)
        return self.model1(x_s1), self.model2(x_s2)


class MidFusionUnet(nn.Module):
    """Two encoders sharing one UNet decoder and head (``Unet_midF_2branch``, §1).

    The decoder can be shared because it drops the input-resolution skip, the only feature whose
    channel count depends on the modality.
    """

    def __init__(self, encoder_name: str, in_channels_s1: int, in_channels_s2: int, classes: int,
                 decoder_channels: Sequence[int] = DECODER_CHANNELS) -> None:
        super().__init__()
        depth = len(decoder_channels)
        self.encoder1 = get_encoder(encoder_name, in_channels=in_channels_s1, depth=depth, weights=None)
        self.encoder = get_encoder(encoder_name, in_channels=in_channels_s2, depth=depth, weights=None)
        if list(self.encoder1.out_channels[1:]) != list(self.encoder.out_channels[1:]):
            raise ValueError(
                f"encoders of {encoder_name} give different feature channels "
                f"{self.encoder1.out_channels} and {self.encoder.out_channels}; cannot share a decoder"
            )
        self.decoder = _unet_decoder(self.encoder1.out_channels, decoder_channels)
        self.segmentation_head = SegmentationHead(decoder_channels[-1], classes, kernel_size=3)
        smp_init.initialize_decoder(self.decoder)
        smp_init.initialize_head(self.segmentation_head)

    def forward(self, x_s1: Tensor, x_s2: Tensor) -> tuple[Tensor, Tensor]:
        _check_pair(x_s1, x_s2)
        features_s1 = self.encoder1(x_s1)
        features_s2 = self.encoder(x_s2)
        logits_s1 = self.segmentation_head(_decode(self.decoder, features_s1))
        logits_s2 = self.segmentation_head(_decode(self.decoder, features_s2))
        return logits_s1, logits_s2


def build_pretrain_model(
    kind: ModelKind,
    encoder_name: str = "resnet50",
    in_channels_s1: int = 2,
    in_channels_s2: int = 13,
    classes: int = 9,
    modality: Literal["s1", "s2"] = "s2",
    decoder_channels: Sequence[int] = DECODER_CHANNELS,
) -> nn.Module:
    """The pretraining network of ``kind``, randomly initialised (``encoder_weights=None``).

    ``modality`` only matters for ``single``: which input the one U-Net takes.  The paper uses
    ``resnet50``; smaller encoders (``resnet18``) keep CPU runs cheap.
    """
    if kind not in KIND_MODELS:
        raise ValueError(f"unknown model kind {kind!r}; expected one of {MODEL_KINDS}")
    if kind == "single":
        if modality not in MODALITIES:
            raise ValueError(f"modality must be 's1' or 's2', got {modality!r}")
        in_channels = in_channels_s1 if modality == "s1" else in_channels_s2
        return create_model(KIND_MODELS[kind], encoder_name=encoder_name, in_channels=in_channels,
                            classes=classes, decoder_channels=decoder_channels)
    return create_model(KIND_MODELS[kind], encoder_name=encoder_name, in_channels_s1=in_channels_s1,
                        in_channels_s2=in_channels_s2, classes=classes, decoder_channels=decoder_channels)


def count_parameters(model: nn.Module) -> int:
    """Number of parameters (trainable or not), as in the spec's counts."""
    return sum(p.numel() for p in model.parameters())


def encoders_of(model: nn.Module, modality: str | None = None) -> dict[str, nn.Module]:
    """The per-modality encoders: ``{"s1": …, "s2": …}`` of a fusion model, or
    ``{modality: encoder}`` of a single-modal U-Net (whose input the model itself does not record)."""
    if isinstance(model, MidFusionUnet):
        return {"s1": model.encoder1, "s2": model.encoder}
    if isinstance(model, LateFusionUnet):
        return {"s1": model.model1.encoder, "s2": model.model2.encoder}
    if isinstance(model, smp.Unet):
        if modality not in MODALITIES:
            raise ValueError(f"a single-modal U-Net needs its modality ('s1' or 's2'), got {modality!r}")
        return {modality: model.encoder}
    raise ValueError(f"{type(model).__name__} is not a CromSS pretraining model")


def build_encoder(encoder_name: str, in_channels: int, depth: int = len(DECODER_CHANNELS)) -> nn.Module:
    """A fresh, randomly initialised smp encoder, the shape the pretraining models use."""
    return get_encoder(encoder_name, in_channels=in_channels, depth=depth, weights=None)



class ModalityBranch(nn.Module):
    """One modality branch of a CromSS model: ``segmentation_head(decoder(encoder(x)))``.

    Inputs whose sides are not multiples of ``divisor`` (the encoder's output stride) are
    reflect-padded symmetrically and the logits cropped back; inputs that are multiples (training
    crops, audit context windows) run unpadded, exactly as in the pretraining model.
    """

    def __init__(self, encoder: nn.Module, decoder: nn.Module, segmentation_head: nn.Module, divisor: int = 32):
        super().__init__()
        self.encoder = encoder
        self.decoder = decoder
        self.segmentation_head = segmentation_head
        self.divisor = divisor

    def forward(self, x: Tensor) -> Tensor:
        height, width = x.shape[-2:]
        pad_h, pad_w = -height % self.divisor, -width % self.divisor
        top, left = pad_h // 2, pad_w // 2
        if pad_h or pad_w:
            # reflection needs a pad smaller than the side; tiny tiles fall back to replication
            mode = "reflect" if pad_h < height and pad_w < width else "replicate"
            x = nn.functional.pad(x, (left, pad_w - left, top, pad_h - top), mode=mode)
        logits = self.segmentation_head(_decode(self.decoder, self.encoder(x)))
        if pad_h or pad_w:
            logits = logits[..., top : top + height, left : left + width]
        return logits


def modality_branch(model: nn.Module, modality: str) -> ModalityBranch:
    """The ``modality`` branch of a pretraining model, sharing its modules (fusion: the S1 or S2
    encoder with its decoder and head — mid fusion's shared ones; ``single``: the U-Net itself)."""
    if modality not in MODALITIES:
        raise ValueError(f"modality must be one of {MODALITIES}, got {modality!r}")
    if isinstance(model, MidFusionUnet):
        encoder = model.encoder1 if modality == "s1" else model.encoder
        parts = (encoder, model.decoder, model.segmentation_head)
    else:
        if isinstance(model, LateFusionUnet):
            model = model.model1 if modality == "s1" else model.model2
        parts = (getattr(model, "encoder", None), getattr(model, "decoder", None),
                 getattr(model, "segmentation_head", None))
        if any(p is None for p in parts) or getattr(model, "classification_head", None) is not None:
            raise ValueError(f"{type(model).__name__} is not a CromSS pretraining model")
    divisor = int(getattr(parts[0], "output_stride", 32))
    return ModalityBranch(*parts, divisor=divisor)
