"""Inference layers with more than one kernel: sparse C++, torch.sparse and torch dense.

Each layer holds its (BN-folded) weight densely and as CSR over output channels, and runs
the kernel its :class:`~ticketzoo.sparse.choose.Chooser` picked for the input's shape. A
layer may fuse the residual add and the ReLU that follow it (``forward(x, residual, relu)``):
every kernel computes the same ``relu(conv(x) + bias + residual)``.
"""

from __future__ import annotations

import warnings

import torch
import torch.nn.functional as F
from torch import nn

DENSE, SPARSE, TORCH_SPARSE = "dense", "sparse", "torch-sparse"
SMALL_OUTPUT = 512  # output positions up to which torch.sparse is a candidate beside our kernel


def csr_of(weight: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """``(indptr, cols, values)`` (int32, int32, float32) of ``weight`` flattened to [out, -1];
    exact zeros are left out (a pruned weight, or a kept one trained to zero: the same sum)."""
    flat = weight.detach().reshape(weight.shape[0], -1).float()
    nonzero = flat != 0
    indptr = torch.zeros(flat.shape[0] + 1, dtype=torch.int32)
    indptr[1:] = nonzero.sum(1).cumsum(0)
    cols = nonzero.nonzero()[:, 1].to(torch.int32).contiguous()
    return indptr, cols, flat[nonzero].contiguous()


def _epilogue(y: torch.Tensor, residual: torch.Tensor | None, relu: bool) -> torch.Tensor:
    """In place: ``y`` is always a kernel's fresh output (a new tensor is a new allocation,
    and at ResNet-50's early layers that cost as much as the add)."""
    if residual is not None:
        y = y.add_(residual)
    return torch.relu_(y) if relu else y


class _Layer(nn.Module):
    """What a sparse conv and a sparse linear share: weights in both forms, the kernel choice."""

    def __init__(self, weight: torch.Tensor, bias: torch.Tensor | None, chooser, name: str) -> None:
        super().__init__()
        weight = weight.detach().float().contiguous()
        self.register_buffer("weight", weight)
        out = weight.shape[0]
        self.register_buffer("bias", (bias.detach().float() if bias is not None else torch.zeros(out)).contiguous())
        self.indptr, self.cols, self.values = csr_of(weight)
        self.nnz = int(self.values.numel())
        self.density = self.nnz / max(1, weight.numel())
        self.chooser = chooser
        self.layer_name = name
        self._torch_csr: torch.Tensor | None = None

    def torch_csr(self) -> torch.Tensor:
        if self._torch_csr is None:
            shape = (self.weight.shape[0], self.weight[0].numel())
            with warnings.catch_warnings():  # "CSR support is in beta": known, and checked by our tests
                warnings.simplefilter("ignore", UserWarning)
                self._torch_csr = torch.sparse_csr_tensor(self.indptr.long(), self.cols.long(), self.values, shape)
        return self._torch_csr

    def candidates(self, x: torch.Tensor) -> tuple[str, ...]:
        """The kernels timed for input ``x``. With the C++ kernels built, torch.sparse is
        timed too where outputs are few (MKL's CSR product beat ours on ResNet-50 at
        32 px, where late planes are 1-4 positions; it is 3-5x slower on large planes)."""
        if self.chooser.kernels is None:
            return (DENSE, TORCH_SPARSE)
        return (DENSE, SPARSE, TORCH_SPARSE) if self.positions(x) <= SMALL_OUTPUT else (DENSE, SPARSE)

    def positions(self, x: torch.Tensor) -> int:
        """Output positions the weight is applied at (batch times spatial)."""
        return x.numel() // max(1, x.shape[-1])

    def forward(self, x: torch.Tensor, residual: torch.Tensor | None = None, relu: bool = False) -> torch.Tensor:
        if x.dtype != torch.float32 or x.device.type != "cpu" or (torch.is_grad_enabled() and x.requires_grad):
            return self._plain(x, residual, relu)  # the kernels are fp32 CPU inference only
        kernel = self.chooser.choose(self, x, residual, relu)
        return self.run(kernel, x, residual, relu)

    def _plain(self, x, residual, relu):
        """Any dtype or device (autocast, CUDA): the dense kernel on the tensors as given."""
        return _epilogue(self.dense(x, self.weight.to(x.device), self.bias.to(x.device)), residual, relu)

    def run(self, kernel: str, x, residual=None, relu=False) -> torch.Tensor:
        if kernel == SPARSE:
            return self.sparse(x, residual, relu)
        if kernel == TORCH_SPARSE:
            return _epilogue(self.torch_sparse(x), residual, relu)
        return _epilogue(self.dense(x, self.weight, self.bias), residual, relu)

    def key(self, x: torch.Tensor, residual, relu: bool) -> str:
        """What a kernel's speed depends on: the layer's shape, kernel size, stride, nonzeros, input shape."""
        return (f"{type(self).__name__}|{list(self.weight.shape)}|{self.signature()}|nnz={self.nnz}|"
                f"x={list(x.shape)}|res={residual is not None}|relu={relu}")

    def signature(self) -> str:
        return ""


class SparseConv2d(_Layer):
    """A 2-D convolution (groups 1, dilation 1, zero padding) with a direct sparse kernel."""

    def __init__(self, weight, bias, stride: int, padding: int, chooser, name: str = "") -> None:
        super().__init__(weight, bias, chooser, name)
        self.stride, self.padding = int(stride), int(padding)

    def signature(self) -> str:
        return f"s={self.stride}|p={self.padding}"

    def positions(self, x: torch.Tensor) -> int:
        n, _, h, w = x.shape
        kh, kw = self.weight.shape[2:]
        return n * ((h + 2 * self.padding - kh) // self.stride + 1) * ((w + 2 * self.padding - kw) // self.stride + 1)

    def dense(self, x, weight, bias):
        return F.conv2d(x, weight, bias, stride=self.stride, padding=self.padding)

    def sparse(self, x, residual, relu):
        o, c, kh, kw = self.weight.shape
        return self.chooser.kernels.sparse_conv2d(x, self.indptr, self.cols, self.values, self.bias, c, kh, kw,
                                                  self.stride, self.padding, residual, relu,
                                                  torch.get_num_threads())

    def torch_sparse(self, x):
        """im2col (``unfold``) then one CSR matmul: the prototype the direct kernel replaces."""
        n, c, h, w = x.shape
        o, _, kh, kw = self.weight.shape
        hout = (h + 2 * self.padding - kh) // self.stride + 1
        wout = (w + 2 * self.padding - kw) // self.stride + 1
        if (kh, kw, self.stride, self.padding) == (1, 1, 1, 0):
            cols = x.permute(1, 0, 2, 3).reshape(c, n * h * w)
        else:
            u = F.unfold(x, (kh, kw), padding=self.padding, stride=self.stride)
            cols = u.permute(1, 0, 2).reshape(c * kh * kw, n * hout * wout)
        y = torch.sparse.mm(self.torch_csr(), cols).reshape(o, n, hout, wout).permute(1, 0, 2, 3)
        return (y + self.bias.view(1, -1, 1, 1)).contiguous()


class SparseLinear(_Layer):
    """A linear layer with a sparse kernel (a gathered dot product per output)."""

    def dense(self, x, weight, bias):
        return F.linear(x, weight, bias)

    def sparse(self, x, residual, relu):
        lead = x.shape[:-1]
        y = self.chooser.kernels.sparse_linear(x.reshape(-1, x.shape[-1]), self.indptr, self.cols, self.values,
                                               self.bias, relu and residual is None, torch.get_num_threads())
        y = y.reshape(*lead, y.shape[-1])
        return _epilogue(y, residual, relu) if residual is not None else y

    def torch_sparse(self, x):
        flat = x.reshape(-1, x.shape[-1])
        y = torch.sparse.mm(self.torch_csr(), flat.t()).t() + self.bias
        return y.reshape(*x.shape[:-1], y.shape[-1])


class MaxPool2d(nn.Module):
    """``nn.MaxPool2d`` (square window, dilation 1, floor mode) on the C++ kernel for fp32 CPU
    inputs; torch's for anything else."""

    def __init__(self, kernel_size: int, stride: int, padding: int, kernels) -> None:
        super().__init__()
        self.kernel_size, self.stride, self.padding = int(kernel_size), int(stride), int(padding)
        self.kernels = kernels

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if x.dtype != torch.float32 or x.device.type != "cpu" or x.dim() != 4 or x.requires_grad:
            return F.max_pool2d(x, self.kernel_size, self.stride, self.padding)
        return self.kernels.max_pool2d(x, self.kernel_size, self.stride, self.padding, torch.get_num_threads())
