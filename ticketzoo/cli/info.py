"""``ticketzoo info REF``: the card and the per-layer sparsity table."""

from __future__ import annotations

import click

from ticketzoo.cli.console import console, human_size, print_json


@click.command("info")
@click.argument("ref")
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
def command(ref: str, as_json: bool) -> None:
    """Show a ticket's card and per-layer sparsity (REF: name, name@rev, URL or path)."""
    from ticketzoo.card import seed_table
    from ticketzoo.registry.api import resolve_card

    card, entry = resolve_card(ref)
    if as_json:
        data = card.to_dict()
        if entry is not None:
            data["file"] = {"path": str(entry.file), "sha256": entry.sha256, "size": entry.size}
        print_json(data)
        return
    from rich.table import Table

    a, s, r = card.arch, card.source, card.recipe
    from rich.text import Text

    title = Text(card.name, style="bold")
    if card.lineage.control:
        title.append(f"  {card.lineage.control} control", style="yellow")
    console.print(title)
    if card.description:
        console.print(card.description)
    facts = [
        ("architecture", f"{a.name} ({a.in_channels}x{a.input_size}x{a.input_size}, {a.num_classes} classes) {a.kwargs or ''}"),
        ("source", f"{s.dataset} ({len(s.classes)} classes){' — ' + s.description if s.description else ''}"),
        ("sparsity", f"{card.sparsity:.2%} of prunable weights removed"),
        ("recipe", r.summary()),
        ("weight sets", ", ".join(card.weight_sets)),
        ("created", f"{card.created} with ticketzoo {card.versions.get('ticketzoo', '?')}, torch {card.versions.get('torch', '?')}"),
    ]
    if card.lineage.parent:
        facts.append(("parent", f"{card.lineage.parent} (sha256 {card.lineage.parent_sha256})"))
    if entry is not None:
        facts.append(("file", f"{entry.file} ({human_size(entry.size)}, sha256 {entry.sha256})"))
    for k, v in facts:
        console.print(f"  {k:<12} {v}")
    if card.metrics:
        t = Table("round", "sparsity", "val acc", "test acc", title="source metrics", box=None)
        for m in card.metrics:
            t.add_row(str(m.round), f"{m.sparsity:.4f}", _pct(m.val_accuracy), _pct(m.test_accuracy))
        console.print(t)
    seeds = seed_table(card)
    if seeds is not None:
        t = Table(*seeds[0], title=f"source test accuracy over seeds {card.extra['seeds']} "
                  "(mean ± std, Welch t-test)", box=None)
        for row in seeds[1]:
            t.add_row(*row)
        console.print(t)
    t = Table("tensor", "shape", "kept", "total", "sparsity", title="per-layer sparsity", box=None)
    for layer in card.layers:
        t.add_row(layer.name, "x".join(map(str, layer.shape)), str(layer.kept), str(layer.total), f"{layer.sparsity:.2%}")
    console.print(t)


def _pct(x):
    return "—" if x is None else f"{x:.2%}"
