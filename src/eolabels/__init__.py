"""eolabels: learning land-cover maps from imperfect (coarse, noisy, misregistered) labels."""

__version__ = "0.1.0"


def open_dataset(path, **kwargs):
    """A dataset directory as a lazy ``xarray.Dataset`` (:func:`eolabels.data.lazy.open_dataset`)."""
    from eolabels.data.lazy import open_dataset as _open

    return _open(path, **kwargs)
