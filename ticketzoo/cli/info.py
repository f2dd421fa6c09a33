"""``ticketzoo info REF``: the card and the per-layer sparsity table."""

from __future__ import annotations

import click

from ticketzoo.cli.console import console, human_size, print_columns, print_json
from ticketzoo.cli.options import complete_ticket_names


@click.command("info")
@click.argument("ref", shell_complete=complete_ticket_names)
@click.option("--registry", metavar="URL", help="Show NAME as stored in this registry: file:///DIR, a folder, "
              "or hf://ORG[/REPO].")
@click.option("--json", "as_json", is_flag=True, help="Print JSON: the card's fields, plus the file's "
              "name/revision/sha256/size/path/location.")
def command(ref: str, registry: str | None, as_json: bool) -> None:
    """Show a ticket's card and per-layer sparsity (REF: name, name@rev, URL or path).

    \b
    Examples:
      ticketzoo info fashionmnist-lenet-300-100-s79
      ticketzoo info NAME --registry file:///srv/zoo --json
      ticketzoo info ./ticket.safetensors
    """
    from ticketzoo.card import family_caption, family_table, seed_table
    from ticketzoo.api import newer_revision, resolve_card

    if registry is not None:
        ref = _located(ref, registry)
    card, entry = resolve_card(ref)
    where = _where(ref, entry)
    newer = newer_revision(card.name, where["revision"]) if where["revision"] else None
    where["newer_revision"] = newer  # the catalog's HEAD when this is an earlier revision
    if as_json:
        data = card.to_dict()
        data.update(where)
        if entry is not None:  # the key of earlier versions
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
    if where["sha256"]:
        facts.append(("revision", f"{where['revision']} ({where['location']})"))
    if newer:
        facts.append(("superseded", f"a newer revision is the catalog's HEAD: {card.name}@{newer} "
                                    f"(`ticketzoo pull {card.name}`); this one stays pullable as {card.name}@{where['revision']}"))
        facts.append(("file", f"{where['path'] or '(not local yet)'} ({human_size(where['size'])}, "
                              f"sha256 {where['sha256']})"))
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
    family = family_table(card)
    if family is not None:  # wider than 80 columns: plain columns, every cell whole on one line
        console.print(family_caption(card))
        print_columns(list(family[0]), [list(row) for row in family[1]])
    t = Table("tensor", "shape", "kept", "total", "sparsity", title="per-layer sparsity", box=None)
    for layer in card.layers:
        t.add_row(layer.name, "x".join(map(str, layer.shape)), str(layer.kept), str(layer.total), f"{layer.sparsity:.2%}")
    console.print(t)


def _pct(x):
    return "—" if x is None else f"{x:.2%}"


def _located(ref: str, registry: str) -> str:
    """The reference of ticket NAME[@REV] in ``registry`` (as ``pull NAME --registry`` finds it)."""
    from ticketzoo.registry.base import backend_for
    from ticketzoo.registry.refs import parse_ref, parse_registry_url

    name, revision = backend_for(parse_ref(ref).kind).as_name(parse_ref(ref))
    target = parse_registry_url(registry)
    return backend_for(target.kind).locate(target, name, revision).text


def _where(ref: str, entry) -> dict:
    """name/revision/sha256/size/path/location of the ticket file, as every ``--json`` names them;
    a catalog ticket not pulled yet answers from its catalog card (path: its bundled file, if any)."""
    if entry is None:
        from ticketzoo.registry.catalog import load_catalog
        from ticketzoo.registry.refs import parse_ref

        parsed = parse_ref(ref)
        head = load_catalog().get(parsed.name) if parsed.kind == "name" else None
        item = head.revision(parsed.revision) if head is not None else None  # NAME@REV: maybe an earlier one
        if item is None:
            return {"revision": None, "sha256": None, "size": None, "path": ref if parsed.kind == "path" else None,
                    "location": "file" if parsed.kind == "path" else None}
        entry, location = item.entry, "catalog"
    else:
        location = entry.location or "local"
    return {"revision": entry.revision, "sha256": entry.sha256, "size": entry.size,
            "path": str(entry.file) if entry.file.is_file() else None, "location": location}
