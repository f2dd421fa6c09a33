"""A boolean mask stored as CSR over its tensor flattened to 2-D (``ticketzoo-csr``).

``[d0, d1, ..., dn]`` is viewed as ``[d0, d1*...*dn]`` in row-major order: a row is one
output filter (conv) or unit (linear). Decoding uses numpy, whose calloc-backed zeros
and fancy indexing are several times faster than torch's on CPU.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import torch

_INT16_MAX_COLS = 2**15  # column indices 0..32767 fit int16
_INT32_MAX_NNZ = 2**31 - 1


@dataclass(frozen=True)
class CSRMask:
    """A boolean mask of ``shape`` stored as CSR over the tensor flattened to 2-D."""

    shape: tuple[int, ...]
    indptr: torch.Tensor
    indices: torch.Tensor

    @property
    def rows(self) -> int:
        return self.shape[0] if self.shape else 1

    @property
    def cols(self) -> int:
        return math.prod(self.shape[1:]) if len(self.shape) > 1 else 1

    @property
    def numel(self) -> int:
        return math.prod(self.shape)

    @property
    def nnz(self) -> int:
        return int(self.indices.numel())

    @classmethod
    def from_dense(cls, mask: torch.Tensor) -> "CSRMask":
        """Encode a boolean tensor (any shape with ndim >= 1)."""
        shape = tuple(mask.shape)
        rows = shape[0] if shape else 1
        m2 = mask.detach().to("cpu", torch.bool).reshape(rows, -1)
        cols = m2.shape[1]
        flat = m2.reshape(-1).nonzero().squeeze(1)
        nnz = flat.numel()
        index_dtype = torch.int16 if cols <= _INT16_MAX_COLS else torch.int32
        ptr_dtype = torch.int32 if nnz <= _INT32_MAX_NNZ else torch.int64
        indptr = torch.zeros(rows + 1, dtype=torch.int64)
        torch.cumsum(m2.sum(dim=1), dim=0, out=indptr[1:])
        indices = (flat % cols).to(index_dtype) if cols else flat.to(index_dtype)
        return cls(shape, indptr.to(ptr_dtype), indices)

    def positions(self) -> np.ndarray:
        """Flat (row-major) int64 positions of the kept entries, in CSR order."""
        ptr = self.indptr.numpy().astype(np.int64, copy=False)
        rows = np.repeat(np.arange(self.rows, dtype=np.int64), np.diff(ptr))
        rows *= self.cols
        rows += self.indices.numpy()
        return rows

    def to_dense(self) -> torch.Tensor:
        out = np.zeros(self.numel, dtype=np.bool_)
        out[self.positions()] = True
        return torch.from_numpy(out).reshape(self.shape)

    def scatter(self, values: torch.Tensor) -> torch.Tensor:
        """A dense tensor of ``shape`` holding ``values`` at the kept positions, 0 elsewhere."""
        # numpy's calloc-backed zeros and fancy indexing are several times faster than
        # torch's on CPU; bit patterns are moved as same-width integers (bfloat16 too),
        # and the all-zero pattern is +0.0 in every float format.
        as_int = {1: torch.uint8, 2: torch.int16, 4: torch.int32, 8: torch.int64}[values.element_size()]
        bits = values.contiguous().view(as_int).numpy()
        out = np.zeros(self.numel, dtype=bits.dtype)
        out[self.positions()] = bits
        return torch.from_numpy(out).view(values.dtype).reshape(self.shape)


def mask_to_scipy(indptr, indices, shape):
    """Rebuild a mask as a ``scipy.sparse.csr_array`` of shape ``[shape[0], prod(shape[1:])]``.

    Accepts numpy arrays or torch tensors; needs only numpy and scipy.
    """
    from scipy.sparse import csr_array

    indptr = np.asarray(indptr, dtype=np.int64)
    indices = np.asarray(indices, dtype=np.int64)
    shape = [int(s) for s in np.asarray(shape).reshape(-1)]
    rows = shape[0] if shape else 1
    cols = math.prod(shape[1:]) if len(shape) > 1 else 1
    data = np.ones(indices.shape[0], dtype=bool)
    return csr_array((data, indices, indptr), shape=(rows, cols))
