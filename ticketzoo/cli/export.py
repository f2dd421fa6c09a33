"""``ticketzoo export REF --out FILE``: a dense state dict for plain PyTorch users, or an ONNX model."""

from __future__ import annotations

from pathlib import Path

import click

from ticketzoo.cli.console import console, err_console, print_json
from ticketzoo.cli.options import complete_ticket_names

#: The format each file name means: what ``torch.load`` / ``safetensors.torch.load_file`` read,
#: or an ONNX model (:mod:`ticketzoo.export_onnx`).
FORMATS = {".safetensors": "safetensors", ".pt": "torch", ".pth": "torch", ".bin": "torch", ".onnx": "onnx"}


@click.command("export")
@click.argument("ref", shell_complete=complete_ticket_names)
@click.option("--out", "out", required=True, type=click.Path(dir_okay=False, path_type=Path),
              help="Output file: .safetensors (safetensors), .pt/.pth/.bin (torch.save of the state dict) "
              "or .onnx (the model, any batch size; needs the onnx extra).")
@click.option("--weights", type=click.Choice(["rewind", "trained"]), default=None,
              help="Weight set [default: trained where the ticket has it, else rewind (θk), with a note].")
@click.option("--opset", type=int, default=None,
              help="ONNX opset of a .onnx file (18 or later) [default: torch's exporter's].")
@click.option("--force", is_flag=True, help="Overwrite --out when it exists (never a file inside a registry).")
@click.option("--json", "as_json", is_flag=True, help="Print JSON: name, revision, weights, format, tensors, path, "
              "sha256 (of the written file), size; a .onnx file adds opset.")
def command(ref: str, out: Path, weights: str | None, opset: int | None, force: bool, as_json: bool) -> None:
    """Write a dense state dict that loads into the plain model (pruned weights are 0), or an ONNX model.

    The weights are the trained ones where the ticket has them (as bench and predict use),
    else its rewind weights θk (a note on stderr says so); --weights picks either. The format
    follows the file name: .safetensors, or .pt/.pth/.bin for torch.save (load it with
    torch.load(path, weights_only=True)), or .onnx for the eval-mode model itself: input
    "input" (N, channels, size, size) for any batch N, output "logits"; its metadata props
    name the ticket, weights, architecture, sparsity, classes and preprocessing
    (pip install 'ticketzoo[onnx]').

    \b
    Examples:
      ticketzoo export fashionmnist-lenet-300-100-s79 --out dense.safetensors
      ticketzoo export fashionmnist-lenet-300-100-s79 --weights rewind --out theta-k.pt --json
      ticketzoo export fashionmnist-lenet-300-100-s79 --out model.onnx
    """
    import io

    import torch
    from safetensors.torch import save

    from ticketzoo.errors import RegistryError
    from ticketzoo.fileio import atomic_write_bytes, registry_holding, sha256_bytes
    from ticketzoo.api import open_ticket

    fmt = FORMATS.get(out.suffix.lower())
    if fmt is None:  # writing safetensors under another name misleads whoever loads it
        raise click.BadParameter(f"{out.name}: name the file .safetensors, .pt/.pth/.bin for torch.save, "
                                 "or .onnx", param_hint="--out")
    if opset is not None and fmt != "onnx":
        raise click.BadParameter(f"an opset goes with a .onnx file, not {out.name}", param_hint="--opset")
    # Checked before anything is read: a registry's files change only through the registry.
    if (root := registry_holding(out)) is not None:
        raise RegistryError(f"refusing to write {out}: it is inside the ticket registry {root}",
                            hint="export to a path outside it")
    if out.exists() and not force:
        raise click.BadParameter(f"{out} exists; pass --force to overwrite it", param_hint="--out")
    if not out.parent.exists():
        raise click.BadParameter(f"folder {out.parent} does not exist", param_hint="--out")
    if fmt == "onnx":  # before any ticket is read or pulled
        from ticketzoo.export_onnx import check_opset

        check_opset(opset)  # and that the onnx extra is installed
    ticket, entry = open_ticket(ref)
    if weights is None:
        weights = ticket.ready_weights
        if weights != "trained":
            err_console.print(f"note: {ticket.name} has no trained weights; exporting its {weights} weights (θk)")
    if weights not in ticket.weight_sets:
        raise click.BadParameter(f"ticket {ticket.name} has no {weights!r} weights "
                                 f"(it has: {', '.join(ticket.weight_sets)})", param_hint="--weights")
    state = ticket.state_dict(weights)  # checks every tensor against the architecture first
    meta = {"ticketzoo_ticket": ticket.name, "architecture": ticket.card.arch.name, "weights": weights}
    written_opset = None
    if fmt == "onnx":
        from ticketzoo.export_onnx import onnx_model, opset_of

        model = onnx_model(ticket, weights, opset=opset,
                           metadata={"ticketzoo.revision": entry.revision} if entry else None)
        written_opset = opset_of(model)
        data = model.SerializeToString()
    elif fmt == "safetensors":
        data = save(state, metadata=meta)
    else:
        buffer = io.BytesIO()
        torch.save(state, buffer)  # plain tensors only: loads with weights_only=True
        data = buffer.getvalue()
    atomic_write_bytes(out, data)
    if as_json:
        result = {"name": ticket.name, "revision": entry.revision if entry else None, "weights": weights,
                  "format": fmt, "tensors": len(state), "path": str(out), "sha256": sha256_bytes(data),
                  "size": len(data)}
        print_json(result if written_opset is None else {**result, "opset": written_opset})
    else:
        what = f"opset {written_opset}" if written_opset is not None else f"{len(state)} tensors"
        console.print(f"wrote {out} ({fmt}; {ticket.card.arch.name}, {weights} weights, {what})")
