"""Sparse training on the CPU: masked conv2d and linear layers run sparse forward and backward kernels.

    from ticketzoo.sparse import enable_sparse_training
    plan = enable_sparse_training(model, masks, runtime="auto", example_shape=(32, 3, 224, 224))
    ...                 # train as usual: MaskSet / keep_masks still re-zero the pruned weights
    plan.layers()       # per layer: density, kernel chosen, dense and sparse milliseconds
    plan.restore()      # the modules' own forwards again

Only the forward of each eligible masked ``nn.Conv2d``/``nn.Linear`` is swapped (in place, on
the module instance): the parameter stays its dense ``weight``, so state-dict keys, checkpoints,
the optimizer and mask re-zeroing are unchanged. The forward gathers the kept values from
``weight`` (flat indices precomputed from the fixed mask) and runs ``csrc/sparse_train.cpp``;
the backward computes grad-input as a transposed sparse conv and grad-weight at the kept
positions only, returned as a dense gradient that is exactly zero off the mask. Pruned weights
are assumed to be zero (what the masked training loop keeps): the sparse layers compute as if
they were.
"""

from __future__ import annotations

import logging
import types
from pathlib import Path
from typing import Mapping, Sequence

import torch
import torch.nn.functional as F
from torch import nn

from ticketzoo.sparse.choose import TrainingChooser
from ticketzoo.sparse.layers import DENSE, SPARSE

_log = logging.getLogger(__name__)

RUNTIMES = ("auto", SPARSE, DENSE)
MAX_DENSITY = 0.2  # above this the dense kernels win everywhere we measured; such layers stay dense
_ATTR = "_ticketzoo_sparse_training"  # the module attribute holding its _Layer (not in the state dict)


# --- a layer's fixed mask as index arrays -------------------------------------------------------


class Pattern:
    """The kept positions of one ``[O, C, KH, KW]`` mask (a linear layer's ``[O, IN]`` as
    ``[O, IN, 1, 1]``), in the forms the kernels take. Built once: the mask is fixed; the
    kernels read the values from the dense weight at every call.

    ``indptr``/``cols``: CSR over output channels, cols ``c*KH*KW + r*KW + s``;
    ``t_indptr``/``t_cols``/``t_perm``: the transposed weight for grad-input, rows ``(phase
    (r % S, s % S), input channel)``, cols ``o*KH*KW + r*KW + s``, and where each of its nonzeros
    is in CSR order.
    """

    def __init__(self, mask: torch.Tensor, stride: int) -> None:
        mask = mask.detach().to("cpu", torch.bool)
        if mask.dim() == 2:
            mask = mask[:, :, None, None]
        o, c, kh, kw = mask.shape
        kk, s = kh * kw, int(stride)
        self.shape = (o, c, kh, kw)
        flat = mask.reshape(-1).nonzero().reshape(-1)  # sorted: CSR order
        self.nnz = int(flat.numel())
        self.density = self.nnz / max(1, mask.numel())
        self.indptr = torch.zeros(o + 1, dtype=torch.int32)
        self.indptr[1:] = mask.reshape(o, -1).sum(1).cumsum(0)
        col = flat % (c * kk)
        self.cols = col.to(torch.int32)
        out, ch, r, q = flat // (c * kk), col // kk, (col % kk) // kw, col % kw
        row = ((r % s) * s + q % s) * c + ch
        order = torch.argsort(row, stable=True)  # stable: each row stays sorted by output channel
        self.t_indptr = torch.zeros(s * s * c + 1, dtype=torch.int32)
        self.t_indptr[1:] = torch.bincount(row, minlength=s * s * c).cumsum(0)
        self.t_cols = (out * kk + r * kw + q)[order].to(torch.int32)
        self.t_perm = order.to(torch.int32)


_MODULES: dict = {}  # build folder -> the loaded kernels (finding the folder hashes the source: 0.4 ms)


def _kernels(build_dir: Path | None):
    module = _MODULES.get(build_dir)
    if module is None:
        from ticketzoo.sparse.kernels import train_kernels

        module = _MODULES[build_dir] = train_kernels(build_dir)
    return module


class _SparseConv(torch.autograd.Function):
    """conv2d(x, weight, bias) with weight's kept values only; ``geom`` = (pattern, stride, padding,
    kernels' build folder)."""

    @staticmethod
    @torch.amp.custom_fwd(device_type="cpu", cast_inputs=torch.float32)  # bf16 autocast: run in fp32
    def forward(ctx, x, weight, bias, geom):
        pattern, stride, padding, build_dir = geom
        b = bias.detach() if bias is not None else torch.empty(0)
        y, src, vals = _kernels(build_dir).conv_forward(x, weight.detach(), pattern.indptr, pattern.cols, b, stride,
                                                        padding, torch.get_num_threads())
        # src: what grad-weight reads (x, its padded phases or im2col rows); vals: the kept weights,
        # read once (the optimizer changes the weight only after the backward)
        ctx.save_for_backward(src, vals)
        ctx.geom, ctx.in_shape, ctx.w_shape = geom, tuple(x.shape), list(weight.shape)
        return y

    @staticmethod
    @torch.amp.custom_bwd(device_type="cpu")
    def backward(ctx, gy):
        src, vals = ctx.saved_tensors
        pattern, stride, padding, build_dir = ctx.geom
        need_x, need_w, need_b = ctx.needs_input_grad[:3]
        gy = gy.float()
        _, _, h, w = ctx.in_shape
        # gw: dense, exactly zero off the mask (what the optimizer and the checkpoints expect)
        gx, gw = _kernels(build_dir).conv_backward(gy, src, vals, ctx.w_shape, pattern.indptr, pattern.cols,
                                                   pattern.t_indptr, pattern.t_cols, pattern.t_perm, h, w, stride,
                                                   padding, need_x, need_w, torch.get_num_threads())
        gb = gy.sum((0, 2, 3)) if need_b else None
        return gx, gw, gb, None


# --- one swapped layer --------------------------------------------------------------------------


class _Layer:
    """One masked Conv2d/Linear: its pattern, the kernel it runs per input shape, its report row.

    Holds no reference to its module (the module holds it), so a deep copy of the model copies
    a working sparse layer along with it."""

    def __init__(self, name: str, module: nn.Module, mask: torch.Tensor, max_density: float) -> None:
        self.name = name
        self.kind = "conv" if isinstance(module, nn.Conv2d) else "linear"
        self.weight_shape = list(module.weight.shape)
        self.has_bias = module.bias is not None
        self.stride, self.padding = 1, 0
        self.reason = self._ineligible(module, max_density, mask)
        self.pattern = None if self.reason else Pattern(mask, self.stride)
        kept = int(mask.sum())
        self.density = kept / max(1, mask.numel())
        self.nnz = kept
        self.force: str | None = None  # runtime "sparse"/"dense": no timing
        self.chooser: TrainingChooser | None = None
        self.calibrating = None  # the example input while the plan calibrates
        self.previous = None  # an instance-level forward the module had before the swap
        self.build_dir: Path | None = None  # where the kernels were built (None: the default folder)
        self.row = {"name": name, "kind": self.kind, "shape": self.weight_shape, "density": round(self.density, 6),
                    "kernel": DENSE, "dense_ms": None, "sparse_ms": None, "input": None, "grad_input": None,
                    "reason": self.reason}

    def _ineligible(self, module: nn.Module, max_density: float, mask: torch.Tensor) -> str | None:
        """Why this layer keeps torch's kernels (None: it can run sparse)."""
        density = float(mask.float().mean()) if mask.numel() else 1.0
        if density > max_density:
            return f"density {density:.3f} > {max_density:g}"
        if self.kind == "linear":
            return None
        m: nn.Conv2d = module
        stride, padding = tuple(m.stride), m.padding
        if m.groups != 1 or tuple(m.dilation) != (1, 1) or m.padding_mode != "zeros":
            return "groups, dilation or padding mode not supported"
        if isinstance(padding, str) or stride[0] != stride[1] or padding[0] != padding[1]:
            return "non-square stride or padding not supported"
        self.stride, self.padding = int(stride[0]), int(padding[0])
        return None

    # the two ways to compute the layer, on given tensors
    def run_sparse(self, x: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor | None) -> torch.Tensor:
        geom = (self.pattern, self.stride, self.padding, self.build_dir)
        if self.kind == "conv":
            return _SparseConv.apply(x, weight, bias, geom)
        o, i = self.weight_shape
        y = _SparseConv.apply(x.reshape(-1, i, 1, 1), weight.reshape(o, i, 1, 1), bias, geom)  # a 1x1 conv on 1x1
        return y.reshape(*x.shape[:-1], o)

    def run_dense(self, x: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor | None) -> torch.Tensor:
        if self.kind == "conv":
            return F.conv2d(x, weight, bias, self.stride, self.padding)
        return F.linear(x, weight, bias)

    def kernel_for(self, module: nn.Module, x: torch.Tensor) -> str:
        """The kernel for this call: dense for anything the sparse kernels do not take."""
        w = module.weight
        if (self.pattern is None or w.dtype != torch.float32 or w.device.type != "cpu" or x.device.type != "cpu"
                or (self.kind == "conv" and x.dim() != 4) or not x.is_floating_point()
                or (x.dtype != torch.float32 and not torch.is_autocast_enabled("cpu"))):
            return DENSE
        if self.force is not None:
            self.row.update(kernel=self.force, input=list(x.shape))
            return self.force
        if self.calibrating is not None:  # no grad while calibrating: training computes grad-input
            needs_gx = x is not self.calibrating  # for every layer but one fed the data directly
        else:
            needs_gx = x.requires_grad and torch.is_grad_enabled()
        return self.chooser.choose(self, module, tuple(x.shape), needs_gx)

    def key(self, shape: tuple, needs_gx: bool) -> str:
        """What the kernels' speed depends on: layer shape, stride, padding, kept count, input shape."""
        return (f"{self.kind}|{self.weight_shape}|s={self.stride}|p={self.padding}|nnz={self.nnz}|"
                f"bias={self.has_bias}|x={list(shape)}|gx={needs_gx}")


def _sparse_forward(module: nn.Module, x: torch.Tensor) -> torch.Tensor:
    """The swapped-in forward (bound to the module): sparse kernels where chosen, else the module's own."""
    layer: _Layer = module.__dict__[_ATTR]
    if layer.kernel_for(module, x) == SPARSE:
        return layer.run_sparse(x, module.weight, module.bias)
    if layer.previous is not None:
        return layer.previous(x)
    return type(module).forward(module, x)


# --- kernel choice ------------------------------------------------------------------------------


# --- the plan -----------------------------------------------------------------------------------


class SparseTrainingPlan:
    """What :func:`enable_sparse_training` swapped: report with :meth:`layers`, undo with :meth:`restore`
    (also on leaving a ``with`` block)."""

    def __init__(self, model: nn.Module, runtime: str, layers: dict[nn.Module, _Layer], reason: str | None) -> None:
        self.model = model
        self.runtime = runtime
        self.reason = reason  # why every layer trains dense (no compiler, runtime "dense"), else None
        self._layers = layers

    def layers(self) -> list[dict]:
        """One row per masked Conv2d/Linear: ``name``, ``kind`` ("conv"/"linear"), weight ``shape``,
        mask ``density``, ``kernel`` ("sparse"/"dense", the last one chosen), ``dense_ms`` and
        ``sparse_ms`` (forward+backward at ``input``, the input shape timed; None where not timed),
        ``grad_input`` (whether that timing computed the input's gradient) and ``reason`` (why the
        layer cannot run sparse; None where it can)."""
        return [dict(layer.row, reason=layer.reason or self.reason) for layer in self._layers.values()]

    @property
    def active(self) -> bool:
        return any(_ATTR in m.__dict__ for m in self._layers)

    def calibrate(self, example_shape: Sequence[int]) -> None:
        """Choose every eligible layer's kernel for model inputs of ``example_shape`` now (runtime
        "auto"; otherwise only records the input shapes): one forward pass in eval mode, without
        grad, on zeros; batch-norm statistics are left as they were."""
        modes = [(m, m.training) for m in self.model.modules()]
        x = torch.zeros(tuple(example_shape))
        for layer in self._layers.values():
            layer.calibrating = x
        try:
            self.model.eval()
            with torch.no_grad():
                self.model(x)
        finally:
            for m, training in modes:
                m.training = training
            for layer in self._layers.values():
                layer.calibrating = None

    def restore(self) -> None:
        """Give every swapped module its own forward back (idempotent)."""
        for module, layer in self._layers.items():
            if module.__dict__.pop(_ATTR, None) is None:
                continue
            if layer.previous is not None:
                module.forward = layer.previous
            else:
                module.__dict__.pop("forward", None)

    def __enter__(self) -> "SparseTrainingPlan":
        return self

    def __exit__(self, *exc) -> None:
        self.restore()

    def __repr__(self) -> str:
        rows = self.layers()
        sparse = sum(r["kernel"] == SPARSE for r in rows)
        return f"SparseTrainingPlan(runtime={self.runtime!r}, {sparse} of {len(rows)} masked layers sparse)"


def enable_sparse_training(model: nn.Module, masks: Mapping[str, torch.Tensor], runtime: str = "auto",
                           example_shape: Sequence[int] | None = None, *, max_density: float = MAX_DENSITY,
                           reps: int = 3, cache: bool = True, dense_autocast: torch.dtype | None = None,
                           build_dir: Path | None = None) -> SparseTrainingPlan:
    """Train ``model``'s masked Conv2d/Linear layers on sparse CPU kernels; returns the plan.

    ``masks`` maps parameter names (``"layer1.0.conv1.weight"``) to bool tensors, as
    :class:`ticketzoo.masks.Mask`. A layer is eligible with a mask of density <= ``max_density``
    (conv: groups 1, dilation 1, square stride and padding); it runs sparse for fp32 CPU inputs,
    and under CPU bf16 autocast (its inputs cast to fp32), dense otherwise.

    ``runtime``: ``"sparse"`` every eligible layer; ``"auto"`` each eligible layer's forward+backward
    is timed dense and sparse (min of ``reps``) at its input shape, for ``example_shape`` now or
    for each new input shape at its first forward, and the faster kept, the choice cached per
    machine (``cache``) under :func:`ticketzoo.sparse.kernels.cache_dir`; ``dense_autocast`` (e.g.
    ``torch.bfloat16``) times the dense candidate under that autocast; ``"dense"`` swaps nothing.
    Without a C++ compiler every layer stays dense (the reason logged and kept in ``plan.reason``).
    """
    from ticketzoo.errors import ConfigError
    from ticketzoo.interop import unwrap
    from ticketzoo.masks import Mask
    from ticketzoo.sparse import kernels as K

    if runtime not in RUNTIMES:
        raise ConfigError(f"runtime must be one of {', '.join(RUNTIMES)}, got {runtime!r}", field="runtime",
                          value=runtime)
    net = unwrap(model)
    masks = masks if isinstance(masks, Mask) else Mask(masks)
    masks.check_fits(net)
    layers: dict[nn.Module, _Layer] = {}
    for name, module in net.named_modules():
        mask = masks.get(f"{name}.weight" if name else "weight")
        if mask is None or not isinstance(module, (nn.Conv2d, nn.Linear)) or \
                type(module).forward not in (nn.Conv2d.forward, nn.Linear.forward):  # a subclass's own forward
            continue
        if _ATTR in module.__dict__:
            raise ConfigError(f"sparse training is already enabled on {name}: restore() its plan first")
        layers[module] = _Layer(name, module, mask, max_density)

    reason = None
    if runtime == DENSE:
        reason = "runtime dense"
    elif any(layer.pattern is not None for layer in layers.values()) and K.train_kernels(build_dir) is None:
        reason = K.why_not(build_dir, K.TRAIN_SOURCE) or "the sparse training kernels are not available"
        _log.warning("sparse training: every layer trains dense (%s)", reason)
    plan = SparseTrainingPlan(model, runtime, layers, reason)
    if reason is not None:
        return plan

    path = K.cache_dir() / f"train-choices-{K.machine_fingerprint(K.TRAIN_SOURCE)}.json" if cache else None
    chooser = TrainingChooser(path, reps, dense_autocast) if runtime == "auto" else None
    for module, layer in layers.items():
        if layer.pattern is None:
            continue
        layer.force = SPARSE if runtime == SPARSE else None
        layer.row["kernel"] = layer.force or layer.row["kernel"]
        layer.chooser = chooser
        layer.build_dir = build_dir
        layer.previous = module.__dict__.get("forward")
        module.__dict__[_ATTR] = layer
        module.forward = types.MethodType(_sparse_forward, module)
    if example_shape is not None:
        plan.calibrate(example_shape)
    return plan


__all__ = ["Pattern", "SparseTrainingPlan", "enable_sparse_training", "RUNTIMES", "MAX_DENSITY"]
