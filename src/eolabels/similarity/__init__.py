"""Network input similarity, neighbour density and self-denoising (spec netsimilarity.md).

Library (spec §5.d): ``jacobian`` (per-sample Jacobians over a parameter subset, cropped tail,
sketch, fingerprint), ``kernel`` (whitening, kernels, neighbour counts), ``density`` (two-pass soft
counts with a stored accumulator, audit formulas), ``denoise`` (kernel means, denoising factors,
shift, self-denoising rounds), ``toy`` (the paper's sinusoid toy).

Stages on dataset directories: ``segmentation`` (the small U-Net and its checkpoint), ``tiles``
(whole tiles in memory), ``audit`` (density audit, §5.a), ``selfdenoise`` (rounds and the denoised
dataset, §5.b), ``stages`` (the rules' entry points); figures in ``audit_figures`` and
``selfdenoise_figures``, tables in ``report``.
"""
