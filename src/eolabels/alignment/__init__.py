"""Multi-scale alignment of misregistered map labels to imagery (spec netsimilarity.md §4, §5.c).

Modules: ``fields`` (random smooth displacement fields, §4.4), ``warp`` (backward warping, field
composition and resampling, sign convention of §4.2), ``channels`` (network inputs), ``network`` (the
two-branch scale network of §4.3), ``loss``, ``pairs`` (training pairs), ``trainer`` (the shared
training layer's hooks), ``chain`` (coarse-to-fine tiled inference), ``evaluate`` (end-point errors and
threshold accuracies against a known field), ``diagnostics`` (denoising factor and shift of §3.3),
``rounds`` (the authors' self-denoising rounds, §3.1), ``figures``, ``stages`` and ``wiring``.
"""
