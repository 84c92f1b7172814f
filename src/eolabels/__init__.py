"""eolabels: learning land-cover maps from imperfect (coarse, noisy, misregistered) labels."""

__version__ = "0.1.0"
