"""ticketzoo: a model zoo and registry for sparse lottery tickets.

    import ticketzoo
    masks = ticketzoo.prune(model, 0.9)                        # magnitude pruning -> Mask
    ticket = ticketzoo.Ticket.from_model(model, masks, name="my-ticket", arch="resnet18")
    ticketzoo.push(ticket, "file:///srv/zoo")
    ticket = ticketzoo.load("file:///srv/zoo/my-ticket")       # a name, name@rev, hf://, file:// or a path
    model = ticket.to_model(num_classes=5)                     # θk; create_model(ref, ...): trained where there is one
    ticketzoo.keep_masks(model, ticket.head_masks_dropped())   # pruned weights stay 0 in your own loop
    # or: ticketzoo.apply_torch_prune(model, ticket.head_masks_dropped())  # as torch.nn.utils.prune would

Names load on first use (PEP 562), so ``import ticketzoo`` does not import torch.
"""

from __future__ import annotations

import importlib
import logging

__version__ = "0.1.0"

# The library logs under "ticketzoo" and shows nothing by itself (not even warnings, which
# logging's last-resort handler would print): the caller configures logging, the CLI renders.
logging.getLogger(__name__).addHandler(logging.NullHandler())

# public name -> the module that defines it
_EXPORTS = {
    "Ticket": "ticketzoo.ticket",
    "Mask": "ticketzoo.masks",
    "keep_masks": "ticketzoo.masks",
    "apply_torch_prune": "ticketzoo.interop",
    "prune": "ticketzoo.pruning",
    "load": "ticketzoo.api",
    "create_model": "ticketzoo.api",
    "pull": "ticketzoo.api",
    "push": "ticketzoo.api",
    "list_tickets": "ticketzoo.api",
    "TicketzooError": "ticketzoo.errors",
}

__all__ = ["__version__", *_EXPORTS]


def __getattr__(name: str):
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module 'ticketzoo' has no attribute {name!r}")
    value = getattr(importlib.import_module(module), name)
    globals()[name] = value  # the next access skips this function
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(__all__))
