"""``ticketzoo export REF --out FILE``: a dense state dict for plain PyTorch users."""

from __future__ import annotations

from pathlib import Path

import click

from ticketzoo.cli.console import console, err_console, print_json
from ticketzoo.cli.options import complete_ticket_names

#: The format each file name means: what ``torch.load`` / ``safetensors.torch.load_file`` read.
FORMATS = {".safetensors": "safetensors", ".pt": "torch", ".pth": "torch", ".bin": "torch"}


@click.command("export")
@click.argument("ref", shell_complete=complete_ticket_names)
@click.option("--out", "out", required=True, type=click.Path(dir_okay=False, path_type=Path),
              help="Output file: .safetensors (safetensors) or .pt/.pth/.bin (torch.save of the state dict).")
@click.option("--weights", type=click.Choice(["rewind", "trained"]), default=None,
              help="Weight set [default: trained where the ticket has it, else rewind (θk), with a note].")
@click.option("--force", is_flag=True, help="Overwrite --out when it exists (never a file inside a registry).")
@click.option("--json", "as_json", is_flag=True, help="Print JSON: name, revision, weights, format, tensors, path, "
              "sha256 (of the written file).")
def command(ref: str, out: Path, weights: str | None, force: bool, as_json: bool) -> None:
    """Write a dense state dict that loads into the plain model (pruned weights are 0).

    The weights are the trained ones where the ticket has them (as bench and predict use),
    else its rewind weights θk (a note on stderr says so); --weights picks either. The format
    follows the file name: .safetensors, or .pt/.pth/.bin for torch.save (load it with
    torch.load(path, weights_only=True)).

    \b
    Examples:
      ticketzoo export fashionmnist-lenet-300-100-s79 --out dense.safetensors
      ticketzoo export fashionmnist-lenet-300-100-s79 --weights rewind --out theta-k.pt --json
    """
    import io

    import torch
    from safetensors.torch import save

    from ticketzoo.errors import RegistryError
    from ticketzoo.fileio import atomic_write_bytes, registry_holding, sha256_bytes
    from ticketzoo.api import open_ticket

    fmt = FORMATS.get(out.suffix.lower())
    if fmt is None:  # writing safetensors under another name misleads whoever loads it
        raise click.BadParameter(f"{out.name}: name the file .safetensors, or .pt/.pth/.bin for torch.save",
                                 param_hint="--out")
    # Checked before anything is read: a registry's files change only through the registry.
    if (root := registry_holding(out)) is not None:
        raise RegistryError(f"refusing to write {out}: it is inside the ticket registry {root}",
                            hint="export to a path outside it")
    if out.exists() and not force:
        raise click.BadParameter(f"{out} exists; pass --force to overwrite it", param_hint="--out")
    if not out.parent.exists():
        raise click.BadParameter(f"folder {out.parent} does not exist", param_hint="--out")
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
    if fmt == "safetensors":
        data = save(state, metadata=meta)
    else:
        buffer = io.BytesIO()
        torch.save(state, buffer)  # plain tensors only: loads with weights_only=True
        data = buffer.getvalue()
    atomic_write_bytes(out, data)
    if as_json:
        print_json({"name": ticket.name, "revision": entry.revision if entry else None, "weights": weights,
                    "format": fmt, "tensors": len(state), "path": str(out), "sha256": sha256_bytes(data),
                    "size": len(data)})
    else:
        console.print(f"wrote {out} ({fmt}; {ticket.card.arch.name}, {weights} weights, {len(state)} tensors)")
