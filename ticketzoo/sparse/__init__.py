"""A sparse CPU runtime for pruned networks: inference (``Ticket.to_model(runtime="sparse")``)
and training.

    from ticketzoo.sparse import sparsify
    fast = sparsify(model, example=(1, 3, 224, 224))   # eval-mode nn.Module, same outputs

    from ticketzoo.sparse import enable_sparse_training
    plan = enable_sparse_training(model, masks, runtime="auto", example_shape=(32, 3, 224, 224))

Batch-norms are folded into the convolutions, pruned convolutions run a direct sparse
kernel (C++, compiled for this machine on first use) and pruned linear layers a sparse one;
each layer keeps torch's dense kernel where timing says it is faster. Without a compiler
the sparse candidates are torch.sparse's (one logged line says so). See docs/SPARSE.md.
Training keeps the model's own modules and parameters and swaps the forward of each masked
conv/linear layer for sparse forward and backward kernels (:mod:`ticketzoo.sparse.training`).
"""

from __future__ import annotations

from ticketzoo.sparse.runtime import SparseModel, sparsify
from ticketzoo.sparse.training import SparseTrainingPlan, enable_sparse_training

__all__ = ["SparseModel", "SparseTrainingPlan", "enable_sparse_training", "sparsify"]
