"""The fast exact paths of the log joint: FFT correlation, and the constant-λ specialisations.

Each returns the same L×B×H×W values as the reference path
(:func:`eolabels.epitome.model.log_joint_direct`; float32 rounding aside), as ``scale``·log p +
``shift``.  The FFT path correlates with a DFT along the width and, along the height, a batched
matrix product or for large patches blocked overlap-save (:mod:`eolabels.epitome.blocked_fft`).
When λ is constant over positions (per layer and channel, e.g. the self-epitome of spec §7) and no
gradient is needed, Z(x, s) = Σ_k λ_k ‖x_k‖² no longer depends on s, so the ``constant_ivar``
paths correlate only the C channels of μλ: an algebraic identity, not an approximation.  All of
them shift x and μ by the per-channel mean of μ (:attr:`EpitomeFields.centre`).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor

from eolabels.epitome.blocked_fft import correlate_blocked
from eolabels.epitome.dft import inverse_row_dft, row_dft_matrix
from eolabels.epitome.fields import EpitomeFields
from eolabels.epitome.terms import affine, gradient_tracked, patch_kernels, scaled


def log_joint_fft(fields: EpitomeFields, patches: Tensor, scale: float = 1.0, shift: float = 0.0) -> Tensor:
    """log p(x_b, s) with a DFT along the width and a matrix product along the height, L×B×H×W.

    Field rows (circular, or circularly extended by p for a linear correlation) and patch rows are
    transformed with length n = ``fields.fft_length``; the patch rows, only w of n samples non-zero,
    by a w×(2G) DFT matrix product.  Per frequency, the correlation along the height is one
    B×(2·2C·w) by (2·2C·w)×(2·L·H) real product (a complex product in real form) that sums R − Z/2
    over all channels and, through one extra kernel row, adds the spectrum of the parameter-only
    terms, so each output row needs a single inverse real DFT and nothing is added afterwards.  For
    large w (:func:`eolabels.epitome.cost_model.blocked_height_pays`) with no gradient to track, the
    height correlation is instead blocked overlap-save (:mod:`eolabels.epitome.blocked_fft`, fewer
    operations per output for large w) and the parameter-only terms are added to its output.  (A
    ``shift`` costs one pass over the output here, on the w-tap product only.)
    """
    fields.check_patches(patches)
    kernels = scaled(patch_kernels(fields.centred_patches(patches)), scale)
    if fields.blocked(patches):
        correlation = _correlate_blocked(fields, fields.blocked_spectra, kernels)
        return correlation.add_(affine(fields.centred_constant, scale, shift).unsqueeze(1))
    correlation = _correlate_rows_fft(fields, fields.product_matrices, kernels, impulse=scale)
    return correlation.add_(shift) if shift else correlation


def log_joint_constant_ivar(fields: EpitomeFields, patches: Tensor, scale: float = 1.0, shift: float = 0.0) -> Tensor:
    """log p(x_b, s) when λ is constant over positions: direct correlation of μλ alone, L×B×H×W.

    With λ_{l,k} constant, Z = Σ_k λ_{l,k}‖x_{b,k}‖² is a per-(layer, patch) offset, so
    log p = corr(μλ, x) − Z/2 + ½(V − A) + log_softmax(π): the same value as spec §2 eq. (1)
    with C instead of 2C correlated channels.
    """
    fields.check_patches(patches)
    centred = fields.centred_patches(patches)
    offset = affine(constant_ivar_offset(fields, centred), scale, shift)  # L×B×1×1
    kernels = scaled(centred, scale)
    if fields.layers == 1:  # the per-patch offset rides on the convolution's bias
        correlation = F.conv2d(fields.padded_mean_weighted, kernels, bias=offset[0, :, 0, 0])
    else:
        correlation = F.conv2d(fields.padded_mean_weighted, kernels).add_(offset)
    return correlation.add_(scaled(fields.centred_constant, scale).unsqueeze(1))


def log_joint_constant_ivar_fft(
    fields: EpitomeFields, patches: Tensor, scale: float = 1.0, shift: float = 0.0
) -> Tensor:
    """:func:`log_joint_constant_ivar` with the correlation of :func:`log_joint_fft`, L×B×H×W."""
    fields.check_patches(patches)
    centred = fields.centred_patches(patches)
    offset = affine(constant_ivar_offset(fields, centred), scale, shift)  # L×B×1×1
    if fields.blocked(patches):
        correlation = _correlate_blocked(fields, fields.mean_blocked_spectra, scaled(centred, scale))
        return correlation.add_(scaled(fields.centred_constant, scale).unsqueeze(1) + offset)
    return _correlate_rows_fft(
        fields, fields.mean_product_matrices, scaled(centred, scale), offset[:, :, 0, 0], impulse=scale
    )


def _correlate_blocked(fields: EpitomeFields, spectra: Tensor, kernels: Tensor) -> Tensor:
    return correlate_blocked(
        spectra, kernels, fields.block_plan, fields.layers, fields.height, fields.width, fields.fft_length,
        workspace=fields.workspace,
    )


def constant_ivar_offset(fields: EpitomeFields, centred: Tensor) -> Tensor:
    """−½ Σ_k λ_{l,k} ‖x_{b,k} − centre_k‖², L×B×1×1: the quadratic term Z/2 once λ is constant."""
    ivar = fields.require_constant_ivar()
    ivar = ivar.to(centred.dtype)
    squared_norms = (centred * centred).sum((-2, -1))  # B×C
    return -0.5 * (squared_norms @ ivar.T).T[:, :, None, None]


def _correlate_rows_fft(
    fields: EpitomeFields, matrices: Tensor, kernels: Tensor, offset: Tensor | None = None, impulse: float = 1.0
) -> Tensor:
    """Σ_k corr(field_k, kernel_{b,k}) + ``impulse``·``centred_constant`` (+ ``offset[l, b]``) on the
    torus, L×B×H×W, from the real product matrices of the field.  Both additions ride on the
    product: a kernel row that is an impulse of height ``impulse`` (row spectrum ``impulse`` at every
    frequency) meets the constant's spectrum in ``matrices``, and the offsets enter as frequency-0
    entries meeting one row per layer, so there is no accumulator to fill and no pass over the output."""
    layers, height, width, n = fields.layers, fields.height, fields.width, fields.fft_length
    batch, size = kernels.shape[0], kernels.shape[-1]
    frequencies = n // 2 + 1
    extras = matrices.shape[1] // 2 - kernels.shape[1] * size  # 1, or 1 + L with offsets
    dft = row_dft_matrix(size, n, kernels.dtype, kernels.device)  # (G·2)×w
    rows = kernels.permute(3, 1, 2, 0).reshape(size, -1)  # w×(K·w·B)
    impulses = rows.new_zeros(size, extras * batch)
    impulses[0, :batch] = impulse  # the constant's kernel entry: an impulse at j = 0
    spectrum = (dft @ torch.cat([rows, impulses], dim=1)).view(frequencies, -1, batch)  # G×(2·(K·w+E))×B
    if offset is not None:  # real part at frequency 0 of the per-layer offset entries
        spectrum.view(frequencies, 2, -1, batch)[0, 0, -layers:] = offset.to(spectrum.dtype)
    if gradient_tracked(spectrum, matrices):
        product = torch.bmm(spectrum.transpose(1, 2), matrices)  # G×B×(2·L·H)
    else:  # only the inverse DFT reads the product: it can live in the reused workspace
        shape = (frequencies, batch, matrices.shape[-1])
        product = torch.bmm(spectrum.transpose(1, 2), matrices, out=fields.workspace(shape, matrices, "product"))
    product = torch.view_as_complex(product.view(frequencies, batch, -1, 2))  # G×B×(L·H)
    out = inverse_row_dft(product.permute(1, 2, 0), n)  # B×(L·H)×n
    return out.view(batch, layers, height, n)[..., :width].transpose(0, 1)
