"""``ticketzoo export REF --out FILE``: a dense state dict for plain PyTorch users."""

from __future__ import annotations

from pathlib import Path

import click

from ticketzoo.cli.console import console


@click.command("export")
@click.argument("ref")
@click.option("--out", "out", required=True, type=click.Path(dir_okay=False, path_type=Path), help="Output .safetensors file.")
@click.option("--weights", type=click.Choice(["rewind", "trained"]), default="rewind", show_default=True)
def command(ref: str, out: Path, weights: str) -> None:
    """Write a dense safetensors state dict that loads into the plain model (pruned weights are 0)."""
    from safetensors.torch import save

    from ticketzoo.registry.api import load
    from ticketzoo.fileio import atomic_write_bytes

    ticket, _ = load(ref)
    state = ticket.state_dict(weights)
    meta = {"ticketzoo_ticket": ticket.name, "architecture": ticket.card.arch.name, "weights": weights}
    if not out.parent.exists():
        raise click.BadParameter(f"folder {out.parent} does not exist", param_hint="--out")
    atomic_write_bytes(out, save(state, metadata=meta))
    console.print(f"wrote {out} ({ticket.card.arch.name}, {weights} weights, {len(state)} tensors)")
