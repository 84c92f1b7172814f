"""Per-sample Jacobians of a network output w.r.t. a parameter subset (spec netsimilarity.md
§1.3, §2.3).

The output map is either the network's output vector (``pixel=None``: MLPs, classifiers) or the
output at one pixel of a dense prediction (``pixel="centre"`` or ``(row, col)``), optionally
projected on the sum-zero subspace of the logits (``centred=True``, the gauge-free logits of
§1.3 step 1), or reduced to the scalar ``m^T log_softmax(z)`` of a posnegflat or random mask
(``projection``, §1.3 step 5).  Jacobians are computed with ``torch.func`` (``functional_call`` + ``vmap`` +
``jacrev``) w.r.t. the chosen subset only; the other parameters enter as constants, so the trunk is
evaluated without building any autograd graph and the backward passes stop at the subset (§1.3
step 4).  An optional Gaussian Johnson–Lindenstrauss sketch (§2.3 ii) is generated per parameter
tensor from a seed and applied block-wise; it is never written out, and is kept in memory across
the batches of one call only when it fits in ``SKETCH_CACHE_BYTES``.

Parameter subsets (§1.3 step 3), by module names:

* ``all``: every trainable parameter, in ``named_parameters`` order.
* ``head``: the child module ``segmentation_head`` (smp) or ``head``.
* ``decoder``: the child module ``decoder`` plus the head.
* ``last_block+head`` (default): the last decoder block plus the head.  The decoder blocks are
  ``decoder.blocks`` (smp U-Nets) or ``decoder`` itself when it is a ``ModuleList``/``Sequential``
  (a plain U-Net); the last block is the highest-index block holding trainable parameters.
"""

from __future__ import annotations

import hashlib
import math
from collections.abc import Iterator, Sequence
from dataclasses import asdict, dataclass
from typing import Literal

import torch
from torch import Tensor, nn
from torch.func import functional_call, jacrev, vmap
from tqdm.auto import tqdm

SUBSETS = ("last_block+head", "head", "decoder", "all")
PROJECTIONS = ("posnegflat", "random")
HEAD_NAMES = ("segmentation_head", "head")
SKETCH_CHUNK_COLUMNS = 65536
SKETCH_CACHE_BYTES = 512 * 2**20

Pixel = tuple[int, int] | Literal["centre"] | None


@dataclass(frozen=True)
class JacobianConfig:
    """What is differentiated: parameter ``subset``, output ``pixel``, logit centring, sketch.

    ``sketch_dim=None`` keeps the exact Jacobian (m = p); otherwise m = ``sketch_dim`` with the
    seeded Gaussian sketch of spec §2.3.  ``crop_tail`` lets a tail subset be differentiated on the
    window of its input that reaches the output pixel only (same numbers, checked per batch).

    ``projection`` (spec §1.3.5): ``None`` differentiates the output vector (centred logits when
    ``centred``, d = C - 1); ``"posnegflat"`` or ``"random"`` differentiate the scalar
    ``s = m^T log_softmax(z)`` (d = 1, ``centred`` plays no part: log-softmax is gauge-free) with
    the mask of ``output_mask``: class ``projection_class`` for posnegflat, and for random a
    Gaussian mask drawn from ``projection_seed``.  The authors re-draw the random mask at every call;
    here it is fixed by its seed so that passes 1 and 2 of a density count use the same scalar
    output (vary the seed to re-draw).
    """

    subset: str = "last_block+head"
    pixel: Pixel = "centre"
    centred: bool = True
    sketch_dim: int | None = None
    sketch_seed: int = 0
    crop_tail: bool = True
    projection: str | None = None
    projection_class: int = 0
    projection_seed: int = 0

    def __post_init__(self) -> None:
        if self.subset not in SUBSETS:
            raise ValueError(f"unknown parameter subset {self.subset!r}; choose one of {SUBSETS}")
        if self.projection is not None and self.projection not in PROJECTIONS:
            raise ValueError(
                f"unknown output projection {self.projection!r}; choose one of {PROJECTIONS} or None"
            )
        if self.projection_class < 0:
            raise ValueError(f"projection_class must be >= 0, got {self.projection_class}")
        if isinstance(self.pixel, list):  # e.g. from a YAML config; keeps the fingerprint stable
            object.__setattr__(self, "pixel", tuple(self.pixel))
        if self.sketch_dim is not None and self.sketch_dim < 1:
            raise ValueError(f"sketch_dim must be a positive integer, got {self.sketch_dim}")


def centring_basis(num_classes: int, dtype: torch.dtype = torch.float64) -> Tensor:
    """Orthonormal basis ``U`` (C x (C-1)) of the sum-zero subspace, Helmert contrasts (§1.3.1).

    Column k-1 is ``(1, ..., 1, -k, 0, ..., 0) / sqrt(k (k+1))`` with k ones.
    """
    if num_classes < 2:
        raise ValueError(f"centred logits need at least 2 classes, got {num_classes}")
    basis = torch.zeros(num_classes, num_classes - 1, dtype=dtype)
    for k in range(1, num_classes):
        basis[:k, k - 1] = 1.0
        basis[k, k - 1] = -float(k)
        basis[:, k - 1] /= math.sqrt(k * (k + 1))
    return basis


def output_mask(
    kind: str, num_classes: int, target_class: int = 0, seed: int = 0, dtype: torch.dtype = torch.float64
) -> Tensor:
    """Mask ``m`` (C,) of a scalar output projection ``s = m^T log_softmax(z)`` (spec §1.3.5).

    ``"posnegflat"``: ``e_c - (1 - e_c) / (C - 1)``, +1 on class ``target_class`` and -1/(C-1)
    elsewhere (sums to 0); ``"random"``: ``m ~ N(0, I)`` from a generator seeded by ``seed``.
    """
    if num_classes < 2:
        raise ValueError(f"an output projection needs at least 2 classes, got {num_classes}")
    if kind == "posnegflat":
        if not 0 <= target_class < num_classes:
            raise ValueError(f"projection class {target_class} outside 0..{num_classes - 1}")
        mask = torch.full((num_classes,), -1.0 / (num_classes - 1), dtype=dtype)
        mask[target_class] = 1.0
        return mask
    if kind == "random":
        gen = torch.Generator().manual_seed(_tensor_seed(seed, "random output mask"))
        return torch.randn(num_classes, generator=gen, dtype=torch.float64).to(dtype)
    raise ValueError(f"unknown output projection {kind!r}; choose one of {PROJECTIONS}")


def _trainable_names(module: nn.Module, prefix: str) -> list[str]:
    return [prefix + n for n, p in module.named_parameters() if p.requires_grad]


def _subset_error(model: nn.Module, subset: str, what: str) -> ValueError:
    children = [name for name, _ in model.named_children()]
    return ValueError(
        f"parameter subset {subset!r} needs {what}, but {type(model).__name__} has top-level "
        f"modules {children}; name the head 'segmentation_head' or 'head' and the decoder "
        f"'decoder' (indexed blocks, or 'decoder.blocks'), or use subset='all'"
    )


def _head(model: nn.Module, subset: str) -> tuple[str, nn.Module]:
    for name in HEAD_NAMES:
        child = getattr(model, name, None)
        if isinstance(child, nn.Module) and _trainable_names(child, ""):
            return name, child
    raise _subset_error(model, subset, "a head module with trainable parameters")


def _last_decoder_block(model: nn.Module, subset: str) -> tuple[str, nn.Module]:
    decoder = getattr(model, "decoder", None)
    if not isinstance(decoder, nn.Module):
        raise _subset_error(model, subset, "a 'decoder' module")
    blocks, prefix = decoder, "decoder."
    if isinstance(getattr(decoder, "blocks", None), (nn.ModuleList, nn.Sequential)):
        blocks, prefix = decoder.blocks, "decoder.blocks."
    if not isinstance(blocks, (nn.ModuleList, nn.Sequential)):
        raise _subset_error(model, subset, "indexed decoder blocks (ModuleList/Sequential)")
    with_params = [(i, b) for i, b in blocks.named_children() if _trainable_names(b, "")]
    if not with_params:
        raise _subset_error(model, subset, "a decoder block with trainable parameters")
    index, block = with_params[-1]
    return f"{prefix}{index}", block


def tail_modules(model: nn.Module, subset: str) -> list[tuple[str, nn.Module]]:
    """The modules holding ``subset`` when it is a tail of the network: ``[head]`` for ``head``,
    ``[last block, head]`` for ``last_block+head``; empty for ``decoder`` and ``all``."""
    if subset == "head":
        return [_head(model, subset)]
    if subset == "last_block+head":
        return [_last_decoder_block(model, subset), _head(model, subset)]
    return []


def select_parameters(model: nn.Module, subset: str) -> list[str]:
    """Names of the parameters differentiated for ``subset``, in model order (§1.3.3)."""
    if subset not in SUBSETS:
        raise ValueError(f"unknown parameter subset {subset!r}; choose one of {SUBSETS}")
    if subset == "all":
        chosen = set(_trainable_names(model, ""))
    elif subset == "decoder":
        decoder = getattr(model, "decoder", None)
        if not isinstance(decoder, nn.Module) or not _trainable_names(decoder, ""):
            raise _subset_error(model, subset, "a 'decoder' module with trainable parameters")
        head_name, head = _head(model, subset)
        chosen = set(_trainable_names(decoder, "decoder.")) | set(
            _trainable_names(head, head_name + ".")
        )
    else:
        chosen = {
            n for name, m in tail_modules(model, subset) for n in _trainable_names(m, name + ".")
        }
    return [n for n, _ in model.named_parameters() if n in chosen]


def _tensor_seed(seed: int, name: str) -> int:
    digest = hashlib.sha256(f"{seed}:{name}".encode()).digest()
    return int.from_bytes(digest[:8], "little") >> 1


def sketch_matrix_chunks(
    name: str, n_columns: int, sketch_dim: int, seed: int, dtype: torch.dtype
) -> Iterator[tuple[slice, Tensor]]:
    """Column chunks of ``Pi_t`` (m x p_t, entries N(0, 1/m)) for the parameter tensor ``name``
    (spec §2.3 ii): drawn from a generator seeded by (seed, tensor name) in fixed chunks of
    columns, so the matrix is the same in every call and never needs to be held whole."""
    gen = torch.Generator().manual_seed(_tensor_seed(seed, name))
    scale = 1.0 / math.sqrt(sketch_dim)
    for start in range(0, n_columns, SKETCH_CHUNK_COLUMNS):
        stop = min(start + SKETCH_CHUNK_COLUMNS, n_columns)
        yield (
            slice(start, stop),
            torch.randn(sketch_dim, stop - start, generator=gen, dtype=dtype) * scale,
        )


def sketch_tensor_jacobian(
    jac: Tensor,
    name: str,
    sketch_dim: int,
    seed: int,
    chunks: Sequence[tuple[slice, Tensor]] | None = None,
) -> Tensor:
    """``J_t Pi_t^T`` for one parameter tensor's block ``J_t`` (b x d x p_t) (spec §2.3 ii).

    ``chunks`` are precomputed ``sketch_matrix_chunks`` (reused across batches); by default they
    are drawn afresh.
    """
    if chunks is None:
        chunks = sketch_matrix_chunks(name, jac.shape[-1], sketch_dim, seed, jac.dtype)
    out = jac.new_zeros(*jac.shape[:-1], sketch_dim)
    for cols, block in chunks:
        out += jac[..., cols] @ block.to(jac.device).T
    return out


def _select_output(out: Tensor, pixel: Pixel) -> Tensor:
    if pixel is None:
        return out.reshape(-1)
    if out.ndim != 3:
        raise ValueError(f"pixel={pixel!r} needs a dense output C x H x W, got {tuple(out.shape)}")
    row, col = (out.shape[1] // 2, out.shape[2] // 2) if pixel == "centre" else pixel
    return out[:, row, col]


def _capture_tail_input(
    model: nn.Module,
    first: nn.Module,
    params: tuple[dict[str, Tensor], dict[str, Tensor]],
    xb: Tensor,
) -> tuple[tuple, dict, Tensor] | None:
    """Run the whole network without autograd; return the first tail module's call arguments and
    the network output, or ``None`` when the split does not apply (the module ran other than
    once, or received tensors nested in containers)."""
    calls: list[tuple[tuple, dict]] = []
    hook = first.register_forward_pre_hook(lambda m, a, k: calls.append((a, k)), with_kwargs=True)
    try:
        with torch.no_grad():
            out = functional_call(model, params, (xb,))
    finally:
        hook.remove()
    if len(calls) != 1:
        return None
    args, kwargs = calls[0]
    nested = [v for v in (*args, *kwargs.values()) if isinstance(v, (list, tuple, dict))]
    return None if nested else (args, kwargs, out)


# Leaf modules that act on each pixel's neighbourhood only (no pooling, no global context).
LOCAL_LEAVES = (
    nn.Conv2d,
    nn.BatchNorm2d,
    nn.ReLU,
    nn.ReLU6,
    nn.LeakyReLU,
    nn.ELU,
    nn.GELU,
    nn.SiLU,
    nn.Tanh,
    nn.Sigmoid,
    nn.Identity,
    nn.Dropout,
    nn.Dropout2d,
)


def tail_radius(modules: list[tuple[str, nn.Module]]) -> int | None:
    """Receptive-field radius (output pixels) of a tail made of stride-1 convolutions and
    pixel-wise layers; ``None`` when another kind of layer could see beyond it."""
    radius = 0
    for _, module in modules:
        for leaf in (m for m in module.modules() if not list(m.children())):
            if not isinstance(leaf, LOCAL_LEAVES):
                return None
            if isinstance(leaf, nn.Conv2d):
                if any(s != 1 for s in leaf.stride):
                    return None
                radius += max((k - 1) // 2 * d for k, d in zip(leaf.kernel_size, leaf.dilation))
    return radius


def _crop_tail_input(
    args: tuple, kwargs: dict, out: Tensor, pixel: tuple[int, int], radius: int
) -> tuple[tuple, dict, tuple[int, int]] | None:
    """The tail's tensor inputs cropped to the window that determines output ``pixel``, and the
    pixel's position in the cropped output; ``None`` when the inputs are not one grid whose size
    divides the output's (an upsampling factor) or the window is the whole input.

    Why: the tail runs d backward passes per sample; over a whole patch most of that work is for
    pixels that never reach the centre output (the cheap fix of bench/similarity.py).
    """
    tensors = [v for v in (*args, *kwargs.values()) if isinstance(v, Tensor)]
    if not tensors or any(t.ndim != 4 or t.shape[2:] != tensors[0].shape[2:] for t in tensors):
        return None
    height, width = tensors[0].shape[2:]
    out_height, out_width = out.shape[2:]
    if out_height % height or out_width % width or out_height // height != out_width // width:
        return None
    scale = out_height // height
    half = -(-radius // scale) + 1
    starts, stops = [], []
    for position, size in zip(pixel, (height, width)):
        starts.append(max(0, position // scale - half))
        stops.append(min(size, position // scale + half + 1))
    if stops[0] - starts[0] >= height and stops[1] - starts[1] >= width:
        return None

    rows, cols = (scale * (stop - start) for start, stop in zip(starts, stops))
    sizes = [v for v in (*args, *kwargs.values()) if isinstance(v, int) and not isinstance(v, bool)]
    if rows != cols and out_height == out_width and out_height in sizes:
        return None  # an explicit square target size would be ambiguous

    def crop(v: object) -> object:
        """Tensors are cropped; integers equal to the output size (an explicit upsampling target,
        as smp's decoder blocks take) become the cropped output size."""
        if isinstance(v, Tensor):
            return v[:, :, starts[0] : stops[0], starts[1] : stops[1]]
        if isinstance(v, int) and not isinstance(v, bool) and v in (out_height, out_width):
            return rows if v == out_height else cols
        return v

    new_pixel = (pixel[0] - scale * starts[0], pixel[1] - scale * starts[1])
    return tuple(crop(v) for v in args), {k: crop(v) for k, v in kwargs.items()}, new_pixel


def _sketch_cache(
    tail: dict[str, Tensor], names: list[str], config: JacobianConfig, device: torch.device
) -> dict[str, list[tuple[slice, Tensor]]]:
    """The sketch matrices of one call, kept in memory across batches when they fit in
    ``SKETCH_CACHE_BYTES``; otherwise empty (each batch redraws them)."""
    dtype = tail[names[0]].dtype
    sketch_dim = int(config.sketch_dim or 0)
    size = sum(tail[k].numel() for k in names) * sketch_dim * dtype.itemsize
    if size > SKETCH_CACHE_BYTES:
        return {}
    return {
        k: [
            (cols, block.to(device))
            for cols, block in sketch_matrix_chunks(
                k, tail[k].numel(), sketch_dim, config.sketch_seed, dtype
            )
        ]
        for k in names
    }


def per_sample_jacobians(
    model: nn.Module,
    inputs: Tensor,
    config: JacobianConfig = JacobianConfig(),
    batch_size: int = 32,
    progress: bool = True,
) -> Tensor:
    """Per-sample Jacobians of the chosen output w.r.t. the chosen subset, n x d x m (§1.3, §5.d).

    ``inputs`` holds one sample per row (``n x ...``); the model runs in eval mode (BatchNorm uses
    running statistics).  Parameter blocks are concatenated in ``named_parameters`` order, each
    flattened row-major; with a sketch, m = ``sketch_dim``.

    Frozen trunk (§1.3 step 4): for ``head`` and ``last_block+head`` the whole network runs once per
    batch without autograd, the tail's input is captured, and only ``head(last_block(...))`` is
    differentiated per sample.  The split is used when it reproduces the network output (to
    rounding); otherwise (e.g. something runs after the head) the whole network is differentiated.
    With a pixel output and a tail of local layers, the tail input is further cropped to the
    pixel's receptive field when that reproduces the pixel's output (``tail_radius``).
    """
    names = select_parameters(model, config.subset)
    state = {k: v.detach() for k, v in model.named_parameters()}
    state.update({k: v.detach() for k, v in model.named_buffers()})
    tail = {k: state.pop(k) for k in names}
    some = next(iter(tail.values()))
    modules = tail_modules(model, config.subset)
    module_params = [
        {k[len(prefix) + 1 :]: v for k, v in tail.items() if k.startswith(prefix + ".")}
        for prefix, _ in modules
    ]
    was_training = model.training
    model.eval()
    try:
        basis: Tensor | None = None
        mask: Tensor | None = None
        ready = False

        def set_basis(out: Tensor) -> None:
            """Centring basis or projection mask for the class count of a network output (first
            batch)."""
            nonlocal basis, mask, ready
            if ready:
                return
            n_classes = _select_output(out[0], config.pixel).shape[0]
            if config.projection is not None:
                mask = output_mask(
                    config.projection, n_classes, config.projection_class, config.projection_seed, some.dtype
                ).to(some.device)
            elif config.centred:
                basis = centring_basis(n_classes, some.dtype).to(some.device)
            ready = True

        def project(out: Tensor, pixel: Pixel = config.pixel) -> Tensor:
            z = _select_output(out, pixel)
            if mask is not None:
                return (mask @ torch.log_softmax(z, dim=0)).unsqueeze(0)
            return z if basis is None else basis.T @ z

        def whole_network(tail_params: dict[str, Tensor], x: Tensor) -> Tensor:
            return project(functional_call(model, (tail_params, state), (x.unsqueeze(0),))[0])

        def run_tail(params: list[dict[str, Tensor]], args: tuple, kwargs: dict) -> Tensor:
            h = functional_call(modules[0][1], params[0], args, kwargs)
            for (_, module), p in zip(modules[1:], params[1:]):
                h = functional_call(module, p, (h,))
            return h

        def tail_jacobians(xb: Tensor) -> dict[str, Tensor] | None:
            captured = (
                _capture_tail_input(model, modules[0][1], (tail, state), xb) if modules else None
            )
            if captured is None:
                return None
            args, kwargs, out = captured
            set_basis(out)
            with torch.no_grad():
                if not torch.allclose(run_tail(module_params, args, kwargs), out, 1e-5, 1e-7):
                    return None
            pixel = config.pixel
            if pixel is not None and radius is not None and out.ndim == 4:
                centre = (out.shape[2] // 2, out.shape[3] // 2) if pixel == "centre" else pixel
                cropped = _crop_tail_input(args, kwargs, out, centre, radius)
                if cropped is not None:
                    with torch.no_grad():
                        crop_out = run_tail(module_params, *cropped[:2])
                    row, col = cropped[2]
                    if torch.allclose(
                        crop_out[:, :, row, col], out[:, :, centre[0], centre[1]], 1e-5, 1e-7
                    ):
                        args, kwargs, pixel = cropped
            tensors = [v for v in (*args, *kwargs.values()) if isinstance(v, Tensor)]

            def tail_output(params: list[dict[str, Tensor]], sample: list[Tensor]) -> Tensor:
                it = iter(t.unsqueeze(0) for t in sample)
                a = tuple(next(it) if isinstance(v, Tensor) else v for v in args)
                k = {key: next(it) if isinstance(v, Tensor) else v for key, v in kwargs.items()}
                return project(run_tail(params, a, k)[0], pixel)

            grads = vmap(jacrev(tail_output), in_dims=(None, 0))(module_params, tensors)
            return {
                f"{prefix}.{k}": v for (prefix, _), g in zip(modules, grads) for k, v in g.items()
            }

        radius = tail_radius(modules) if config.crop_tail else None
        sketches = _sketch_cache(tail, names, config, some.device) if config.sketch_dim else {}
        chunks = []
        starts = range(0, inputs.shape[0], batch_size)
        for start in tqdm(starts, desc="jacobians", disable=not progress or len(starts) < 4):
            xb = inputs[start : start + batch_size].to(device=some.device, dtype=some.dtype)
            jac = tail_jacobians(xb)
            if jac is None:
                if not ready and (config.centred or config.projection is not None):
                    with torch.no_grad():
                        set_basis(functional_call(model, (tail, state), (xb[:1],)))
                jac = vmap(jacrev(whole_network), in_dims=(None, 0))(tail, xb)
            blocks = [jac[k].reshape(xb.shape[0], -1, tail[k].numel()) for k in names]
            if config.sketch_dim is None:
                chunks.append(torch.cat(blocks, dim=2))
                continue
            sketched = [
                sketch_tensor_jacobian(b, k, config.sketch_dim, config.sketch_seed, sketches.get(k))
                for b, k in zip(blocks, names)
            ]
            chunks.append(torch.stack(sketched).sum(0))
    finally:
        model.train(was_training)
    return torch.cat(chunks)


@dataclass(frozen=True)
class NetworkFingerprint:
    """Identity of (network weights, parameter subset, output map and projection, sketch, input bands)
    (spec §2.2).

    Two Jacobian spaces are comparable only if every field agrees.
    """

    architecture: str
    weights: str
    subset: str
    n_parameters: int
    pixel: str
    centred: bool
    sketch_dim: int | None
    sketch_seed: int | None
    input_channels: int
    projection: str | None = None

    def mismatches(self, other: NetworkFingerprint) -> list[str]:
        """Human-readable differences, empty when compatible."""
        labels = {
            "architecture": "network architecture (parameter names/shapes)",
            "weights": "network weights",
            "input_channels": "band count",
        }
        mine, theirs = asdict(self), asdict(other)
        return [
            f"{labels.get(k, k)}: {mine[k]!r} vs {theirs[k]!r}"
            for k in mine
            if mine[k] != theirs[k]
        ]


def network_fingerprint(
    model: nn.Module, config: JacobianConfig, input_channels: int
) -> NetworkFingerprint:
    """Fingerprint of ``model`` under ``config`` for patches with ``input_channels`` bands."""
    arch, weights = hashlib.sha256(), hashlib.sha256()
    for name, tensor in list(model.named_parameters()) + list(model.named_buffers()):
        arch.update(f"{name}:{tuple(tensor.shape)}:{tensor.dtype};".encode())
        weights.update(tensor.detach().cpu().contiguous().reshape(-1).view(torch.uint8).numpy())
    names = select_parameters(model, config.subset)
    sizes = dict((k, v.numel()) for k, v in model.named_parameters())
    return NetworkFingerprint(
        architecture=arch.hexdigest()[:16],
        weights=weights.hexdigest()[:16],
        subset=config.subset,
        n_parameters=sum(sizes[k] for k in names),
        pixel=repr(config.pixel),
        centred=config.centred,
        sketch_dim=config.sketch_dim,
        sketch_seed=None if config.sketch_dim is None else config.sketch_seed,
        input_channels=input_channels,
        projection=_projection_label(config),
    )


def _projection_label(config: JacobianConfig) -> str | None:
    """What fixes the scalar output of ``config`` (kind and class, or kind and mask seed)."""
    if config.projection == "posnegflat":
        return f"posnegflat(class={config.projection_class})"
    if config.projection == "random":
        return f"random(seed={config.projection_seed})"
    return None
