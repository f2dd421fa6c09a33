"""``ticketzoo gc``: delete what no command can use from the local registry (or ``--registry``)."""

from __future__ import annotations

import click

from ticketzoo.cli.console import console, err_console, human_size, print_json


@click.command("gc")
@click.option("--dry-run", is_flag=True, help="Say what would be removed; remove nothing.")
@click.option("--old-revisions", is_flag=True,
              help="Also remove every intact revision other than each ticket's current one (HEAD), "
              "except the revision pulled last (local registry).")
@click.option("--registry", metavar="URL", help="Collect in this folder registry (file:///DIR or a folder) "
              "instead of the local one.")
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
def command(dry_run: bool, old_revisions: bool, registry: str | None, as_json: bool) -> None:
    """Remove leftovers of interrupted writes, tickets whose first push never finished, and
    damaged revisions that are not current; with --old-revisions, old intact revisions too.
    A damaged current revision is reported, never removed.

    \b
    Examples:
      ticketzoo gc --dry-run
      ticketzoo gc --old-revisions --json
    """
    from ticketzoo.api import collect_garbage

    report = collect_garbage(registry=registry, dry_run=dry_run, old_revisions=old_revisions)
    if as_json:
        print_json({"dry_run": report.dry_run, "freed": report.freed,
                    "removed": [{"path": str(i.path), "reason": i.reason, "size": i.size} for i in report.removed],
                    "kept": [{"path": str(i.path), "reason": i.reason} for i in report.kept]})
        return
    verb = "would remove" if dry_run else "removed"
    for i in report.removed:
        console.print(f"{verb} {i.path} ({i.reason}, {human_size(i.size)})")
    for i in report.kept:
        err_console.print(f"warning: {i.path}: {i.reason}")
    console.print(f"{verb} {len(report.removed)} item(s), {human_size(report.freed)}")
