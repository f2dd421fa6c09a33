"""A ticket as an ONNX model, for ONNX Runtime, TensorRT, OpenVINO and the like
(``ticketzoo export NAME --out model.onnx``).

The model is the dense network with one weight set, pruned weights exactly zero, in eval
mode: input ``input`` of shape ``(N, channels, size, size)`` with any batch ``N``, output
``logits`` ``(N, classes)``. Its metadata props say what it is and how to feed it
(:func:`onnx_metadata`). Needs the ``onnx`` extra: ``pip install 'ticketzoo[onnx]'``.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import TYPE_CHECKING, Mapping

from ticketzoo.errors import ConfigError, MissingDependencyError

if TYPE_CHECKING:
    import onnx

    from ticketzoo.ticket import Ticket

INPUT, OUTPUT = "input", "logits"
#: The lowest opset asked for that is written as asked: torch's exporter implements 18 and up,
#: and reaches a lower one only through onnx's version converter, which fails on common ops.
MIN_OPSET = 18


def require_onnx() -> None:
    """Raise :class:`~ticketzoo.errors.MissingDependencyError` unless ONNX export can run."""
    try:  # torch's exporter (torch.export based) translates through onnxscript into onnx
        import onnx  # noqa: F401
        import onnxscript  # noqa: F401
    except ImportError as e:
        raise MissingDependencyError(f"ONNX export needs the onnx extra: pip install 'ticketzoo[onnx]' "
                                     f"({e.name or 'onnx'} is not installed)") from None


def check_opset(opset: int | None) -> None:
    """Refuse an opset that cannot be written: below ``MIN_OPSET`` or above the installed
    onnx's newest (None, the exporter's default, passes)."""
    require_onnx()
    import onnx

    newest = onnx.defs.onnx_opset_version()
    if opset is not None and (isinstance(opset, bool) or not isinstance(opset, int)
                              or not MIN_OPSET <= opset <= newest):
        raise ConfigError(f"opset must be an integer from {MIN_OPSET} to {newest}, got {opset!r}", field="opset",
                          value=opset, hint=f"torch's exporter writes opset {MIN_OPSET} and later; "
                          f"the installed onnx knows up to {newest}")


def onnx_metadata(ticket: Ticket, weights: str) -> dict[str, str]:
    """The model's metadata props: ``ticketzoo.ticket``, ``.weights``, ``.architecture``,
    ``.sparsity``, ``.classes`` (JSON list) and ``.preprocess`` (JSON: the eval transform
    :meth:`Ticket.transforms` applies, so a deployer can feed it without ticketzoo)."""
    from ticketzoo import __version__

    arch, p = ticket.card.arch, ticket.preprocess
    preprocess = {
        "layout": "NCHW", "channels": arch.in_channels, "input_size": arch.input_size,
        "resize": p.resize, "mean": list(arch.mean), "std": list(arch.std),
        "steps": "convert to the channels; resize the shorter side to resize (bilinear) and keep the "
                 "central square; keep its central input_size crop; x / 255; (x - mean) / std per channel",
    }
    return {
        "ticketzoo.ticket": ticket.name,
        "ticketzoo.weights": weights,
        "ticketzoo.architecture": arch.name,
        "ticketzoo.sparsity": repr(float(ticket.sparsity)),
        "ticketzoo.classes": json.dumps(list(ticket.card.source.classes)),
        "ticketzoo.preprocess": json.dumps(preprocess),
        "ticketzoo.version": __version__,
    }


def to_onnx(ticket: Ticket, weights: str | None = None, path: str | Path | None = None, *,
            opset: int | None = None, metadata: Mapping[str, str] | None = None) -> bytes:
    """The ticket as ONNX model bytes; with ``path``, also written there atomically.

    ``weights`` defaults to :attr:`Ticket.ready_weights` (trained where there is one).
    ``opset`` is the ONNX opset (``MIN_OPSET`` or higher; None: the exporter's default);
    ``metadata`` adds key/value strings to :func:`onnx_metadata`'s.
    """
    data = onnx_model(ticket, weights, opset=opset, metadata=metadata).SerializeToString()
    if path is not None:
        from ticketzoo.fileio import atomic_write_bytes

        atomic_write_bytes(path, data)
    return data


def onnx_model(ticket: Ticket, weights: str | None = None, *, opset: int | None = None,
               metadata: Mapping[str, str] | None = None) -> onnx.ModelProto:
    """:func:`to_onnx`'s model as an ``onnx.ModelProto``, not yet serialized."""
    check_opset(opset)  # and that the onnx extra is installed
    import torch

    weights = weights or ticket.ready_weights
    model = ticket.to_model(weights).eval()
    arch = ticket.card.arch
    dtype = next(model.parameters()).dtype
    # Batch 2 to trace: torch.export specialises a dimension of size 1 to a constant.
    example = torch.zeros(2, arch.in_channels, arch.input_size, arch.input_size, dtype=dtype)
    # The torch.export-based exporter (dynamo=True, torch's default): the TorchScript one is
    # deprecated and to be removed, and this one exports LeNet, the conv nets and torchvision's
    # ResNets alike. external_data=False: one self-contained file (ResNet-50 is ~100 MB, far
    # under protobuf's 2 GB). verbose=False keeps its progress lines off stdout (--json).
    program = torch.onnx.export(model, (example,), dynamo=True, input_names=[INPUT], output_names=[OUTPUT],
                                dynamic_shapes=({0: torch.export.Dim("batch")},), opset_version=opset,
                                external_data=False, verbose=False)
    proto = program.model_proto
    written = opset_of(proto)
    if opset is not None and written != opset:  # the exporter keeps its own opset when it cannot reach one
        raise ConfigError(f"opset {opset} is not one torch's exporter writes (it wrote {written})",
                          field="opset", value=opset)
    proto.doc_string = f"ticketzoo ticket {ticket.name} ({arch.name}, {weights} weights)"
    for key, value in {**onnx_metadata(ticket, weights), **(metadata or {})}.items():
        entry = proto.metadata_props.add()
        entry.key, entry.value = key, str(value)
    return proto


def opset_of(model: onnx.ModelProto) -> int:
    """The version of the default (``ai.onnx``) opset a model imports."""
    return next(o.version for o in model.opset_import if o.domain in ("", "ai.onnx"))
