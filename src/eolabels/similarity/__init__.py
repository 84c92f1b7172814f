"""Network input similarity, neighbour density and self-denoising (spec netsimilarity.md).

Modules (spec §5.d): ``jacobian`` (per-sample Jacobians over a parameter subset, sketch,
fingerprint), ``kernel`` (whitening, kernels, neighbour counts), ``density`` (two-pass soft counts
with a stored accumulator, density audit), ``denoise`` (kernel means, denoising factors, shift,
self-denoising rounds), ``toy`` (the paper's sinusoid toy).
"""
