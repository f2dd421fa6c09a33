"""``ticketzoo cache``: what the local registry holds on disk, like ``hf cache scan``.

One row per ticket revision: its size on disk, when it was last used (the newest access
or modification time of its files, as ``hf cache scan`` reports), whether it is the
ticket's current revision (HEAD), and its folder; then the total. ``rm`` and ``gc`` free
the space.
"""

from __future__ import annotations

from datetime import datetime, timezone
from pathlib import Path

import click

from ticketzoo.cli.console import console, human_size, print_columns, print_json


def _files(folder: Path) -> list[Path]:
    return [p for p in folder.rglob("*") if p.is_file() and not p.is_symlink()]


def _last_used(files: list[Path]) -> float | None:
    times = []
    for p in files:
        try:
            st = p.stat()
        except OSError:
            continue
        times.append(max(st.st_atime, st.st_mtime))
    return max(times) if times else None


def scan(home: Path | None = None) -> list[dict]:
    """Every ticket revision of the local registry with its size, last use and HEAD flag."""
    from ticketzoo.registry.cleanup import head_of
    from ticketzoo.registry.local import LocalRegistry

    reg = LocalRegistry(home)
    rows = []
    for name in reg.names():
        base = reg.tickets / name
        head = head_of(base)
        for rev in reg.revisions(name):
            files = _files(base / rev)
            used = _last_used(files)
            rows.append({"name": name, "revision": rev, "head": rev == head,
                         "size": sum(p.stat().st_size for p in files),
                         "last_used": datetime.fromtimestamp(used, timezone.utc).replace(microsecond=0).isoformat()
                         if used is not None else None,
                         "path": str(base / rev)})
    return rows


def revision_sizes(ref: str, home: Path | None = None) -> dict[str, int]:
    """Bytes on disk of each local revision of the ticket ``ref`` names (``rm`` reports them)."""
    from ticketzoo.registry.refs import parse_ref

    parsed = parse_ref(ref)
    if parsed.kind != "name":
        return {}
    return {r["revision"]: r["size"] for r in scan(home) if r["name"] == parsed.name}


def _ago(iso: str | None) -> str:
    if iso is None:
        return "-"
    seconds = (datetime.now(timezone.utc) - datetime.fromisoformat(iso)).total_seconds()
    for unit, span in (("day", 86400), ("hour", 3600), ("minute", 60)):
        if seconds >= span:
            n = int(seconds // span)
            return f"{n} {unit}{'s' if n > 1 else ''} ago"
    return "just now"


@click.command("cache")
@click.option("--json", "as_json", is_flag=True, help="Print JSON: revisions (name, revision, head, size, "
              "last_used, path), tickets, revision_count, total_size, root.")
def command(as_json: bool) -> None:
    """Show what the local registry ($TICKETZOO_HOME) holds: size per ticket revision, when it
    was last used, which revision is current (HEAD), and the total.

    \b
    Examples:
      ticketzoo cache
      ticketzoo cache --json
      ticketzoo rm NAME@REV        # then free a revision
    """
    from ticketzoo.registry.local import LocalRegistry

    rows = scan()
    total = sum(r["size"] for r in rows)
    tickets = len({r["name"] for r in rows})
    if as_json:
        print_json({"root": str(LocalRegistry().root), "revisions": rows, "tickets": tickets,
                    "revision_count": len(rows), "total_size": total})
        return
    if rows:
        print_columns(["name", "revision", "head", "size", "last used", "path"],
                      [[r["name"], r["revision"], "*" if r["head"] else "", human_size(r["size"]),
                        _ago(r["last_used"]), r["path"]] for r in rows])
    console.print(f"{tickets} ticket(s), {len(rows)} revision(s), {human_size(total)} in {LocalRegistry().root}")
