"""A sparse CPU inference runtime for pruned networks (``Ticket.to_model(runtime="sparse")``).

    from ticketzoo.sparse import sparsify
    fast = sparsify(model, example=(1, 3, 224, 224))   # eval-mode nn.Module, same outputs

Batch-norms are folded into the convolutions, pruned convolutions run a direct sparse
kernel (C++, compiled for this machine on first use) and pruned linear layers a sparse one;
each layer keeps torch's dense kernel where timing says it is faster. Without a compiler
the sparse candidates are torch.sparse's (one logged line says so). See docs/SPARSE.md.
"""

from __future__ import annotations

from ticketzoo.sparse.runtime import SparseModel, sparsify

__all__ = ["SparseModel", "sparsify"]
