"""A trained network -> an inference graph of sparse layers.

With ``torch.fx``: batch-norms folded into the convolutions before them, each ``Conv2d``
(groups 1, dilation 1, zero padding, equal strides and paddings) and ``Linear`` swapped for
a :mod:`~ticketzoo.sparse.layers` layer, and a ReLU or a residual add (+ ReLU) that follows
one fused into its call; a plain ``MaxPool2d`` runs on the C++ pooling kernel when it is
built. A network fx cannot trace gets its layers swapped in place, its batch-norms left as
they are. Every other module runs in torch as before.
"""

from __future__ import annotations

import copy
import logging
import operator

import torch
import torch.nn.functional as F
from torch import fx, nn

from ticketzoo.sparse.layers import MaxPool2d, SparseConv2d, SparseLinear

_log = logging.getLogger(__name__)

_RELU_FUNCS = {F.relu, torch.relu}
_ADD_FUNCS = {operator.add, operator.iadd, torch.add}


def supported_conv(m: nn.Module) -> bool:
    """Whether the direct sparse kernel computes this convolution."""
    return (isinstance(m, nn.Conv2d) and m.groups == 1 and m.dilation == (1, 1) and m.padding_mode == "zeros"
            and not isinstance(m.padding, str) and m.stride[0] == m.stride[1] and m.padding[0] == m.padding[1])


def _square(value) -> int | None:
    """An int, or a pair of equal ints, as one int; else None."""
    if isinstance(value, int):
        return value
    if isinstance(value, (tuple, list)) and len(value) == 2 and value[0] == value[1] and isinstance(value[0], int):
        return value[0]
    return None


def supported_pool(m: nn.Module) -> bool:
    """Whether the C++ max-pool kernel computes this pooling."""
    return (isinstance(m, nn.MaxPool2d) and not m.ceil_mode and not m.return_indices and _square(m.dilation) == 1
            and None not in (_square(m.kernel_size), _square(m.stride), _square(m.padding))
            and 2 * _square(m.padding) <= _square(m.kernel_size))


def swap(module: nn.Module, name: str, chooser) -> nn.Module | None:
    """The sparse layer for ``module``, or None when it stays as it is."""
    if supported_conv(module):
        return SparseConv2d(module.weight, module.bias, module.stride[0], module.padding[0], chooser, name)
    if isinstance(module, nn.Linear):
        return SparseLinear(module.weight, module.bias, chooser, name)
    if chooser.kernels is not None and supported_pool(module):
        return MaxPool2d(_square(module.kernel_size), _square(module.stride), _square(module.padding), chooser.kernels)
    return None


def convert(model: nn.Module, chooser) -> nn.Module:
    """An eval-mode copy of ``model`` running sparse layers (the original is not changed)."""
    model = copy.deepcopy(model).eval()
    try:
        graph_module = fx.symbolic_trace(model)
    except Exception as e:  # dynamic control flow fx cannot trace: swap layers, keep the code
        _log.info("sparse runtime: %s is not fx-traceable (%s); batch-norms not folded",
                  type(model).__name__, str(e).splitlines()[0][:120] if str(e) else type(e).__name__)
        return _swap_in_place(model, chooser)
    from torch.fx.experimental.optimization import fuse

    graph_module = fuse(graph_module, inplace=True)  # conv + BN -> conv with BN folded in
    modules = dict(graph_module.named_modules())
    calls: dict[str, int] = {}
    for node in graph_module.graph.nodes:
        if node.op == "call_module":
            calls[node.target] = calls.get(node.target, 0) + 1
    for node in list(graph_module.graph.nodes):
        if node.op != "call_module" or calls[node.target] != 1:
            continue
        new = swap(modules[node.target], node.target, chooser)
        if new is None:
            continue
        _set_submodule(graph_module, node.target, new)
        if not isinstance(new, MaxPool2d):  # a pool takes no residual or ReLU
            _fuse_epilogue(graph_module, node, modules)
    graph_module.graph.lint()
    graph_module.recompile()
    return graph_module


def _swap_in_place(model: nn.Module, chooser) -> nn.Module:
    for name, module in list(model.named_modules()):
        if name and (new := swap(module, name, chooser)) is not None:
            _set_submodule(model, name, new)
    return model


def _set_submodule(root: nn.Module, target: str, new: nn.Module) -> None:
    parent_name, _, leaf = target.rpartition(".")
    parent = root.get_submodule(parent_name) if parent_name else root
    setattr(parent, leaf, new)


def _is_relu(node: fx.Node, modules: dict[str, nn.Module]) -> bool:
    if node.op == "call_module":
        return isinstance(modules.get(node.target), nn.ReLU)
    if node.op == "call_function":
        return node.target in _RELU_FUNCS and len(node.args) == 1  # inplace or not: the layer's output has one user
    return node.op == "call_method" and node.target in ("relu", "relu_") and len(node.args) == 1


def _only_user(node: fx.Node) -> fx.Node | None:
    users = list(node.users)
    return users[0] if len(users) == 1 else None


def _fuse_epilogue(gm: fx.GraphModule, node: fx.Node, modules: dict[str, nn.Module]) -> None:
    """``relu(layer(x))``, ``layer(x) + r`` and ``relu(layer(x) + r)`` -> one ``layer(x, r, relu)`` call."""
    user = _only_user(node)
    if user is None:
        return
    residual, tail = None, node
    if (user.op == "call_function" and user.target in _ADD_FUNCS and len(user.args) == 2 and not user.kwargs
            and user.args.count(node) == 1 and isinstance(user.args[1 - user.args.index(node)], fx.Node)):
        residual, tail = user.args[1 - user.args.index(node)], user
    relu_node = _only_user(tail)
    relu = relu_node is not None and _is_relu(relu_node, modules)
    if residual is None and not relu:
        return
    last = relu_node if relu else tail
    with gm.graph.inserting_before(last):
        fused = gm.graph.call_module(node.target, (node.args[0],), {"residual": residual, "relu": relu})
    last.replace_all_uses_with(fused)
    for dead in ([relu_node] if relu else []) + ([user] if residual is not None else []) + [node]:
        gm.graph.erase_node(dead)
