"""``ticketzoo export REF --out FILE``: a dense state dict for plain PyTorch users."""

from __future__ import annotations

from pathlib import Path

import click

from ticketzoo.cli.console import console


@click.command("export")
@click.argument("ref")
@click.option("--out", "out", required=True, type=click.Path(dir_okay=False, path_type=Path), help="Output .safetensors file.")
@click.option("--weights", type=click.Choice(["rewind", "trained"]), default="rewind", show_default=True)
@click.option("--force", is_flag=True, help="Overwrite --out when it exists (never a file inside a registry).")
def command(ref: str, out: Path, weights: str, force: bool) -> None:
    """Write a dense safetensors state dict that loads into the plain model (pruned weights are 0)."""
    from safetensors.torch import save

    from ticketzoo.errors import RegistryError
    from ticketzoo.fileio import atomic_write_bytes, registry_holding
    from ticketzoo.registry.api import load

    # Checked before anything is read: a registry's files change only through the registry.
    if (root := registry_holding(out)) is not None:
        raise RegistryError(f"refusing to write {out}: it is inside the ticket registry {root}",
                            hint="export to a path outside it")
    if out.exists() and not force:
        raise click.BadParameter(f"{out} exists; pass --force to overwrite it", param_hint="--out")
    if not out.parent.exists():
        raise click.BadParameter(f"folder {out.parent} does not exist", param_hint="--out")
    ticket, _ = load(ref)
    state = ticket.state_dict(weights)  # checks every tensor against the architecture first
    meta = {"ticketzoo_ticket": ticket.name, "architecture": ticket.card.arch.name, "weights": weights}
    atomic_write_bytes(out, save(state, metadata=meta))
    console.print(f"wrote {out} ({ticket.card.arch.name}, {weights} weights, {len(state)} tensors)")
