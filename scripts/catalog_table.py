"""The zoo catalog as a markdown table, generated from the bundled cards (``cards/*/README.md``).

    python scripts/catalog_table.py                 # print the table
    python scripts/catalog_table.py --write README.md   # replace the table between the markers

One row per card: name, architecture, source data, sparsity, source test accuracy of the
ticket and of the dense network (mean over the card's seeds), the random-reinit control, the
ticket file's size, and the CPU speed-up of the sparse runtime the card records
(``card.extra["speed"]``, written by ``ticketzoo bench`` through ``scripts/bundle_zoo_run.py``),
with the CPU, threads and input shape it was measured at; "-" where the card records none.
Only the cards' own records are read (no ticket file is decoded, no timing is taken), so the
table is the same on every machine. README.md embeds the output between
``<!-- catalog:start -->`` and ``<!-- catalog:end -->``; tests/test_readme.py checks they agree.
"""

from __future__ import annotations

import re
from pathlib import Path

import click

ROOT = Path(__file__).resolve().parents[1]
CARDS = ROOT / "cards"
START, END = "<!-- catalog:start -->", "<!-- catalog:end -->"
HEADER = ("ticket", "arch", "source data", "sparsity", "source test accuracy: ticket / dense",
          "vs random reinit", "size", "CPU speed-up of the sparse runtime (measured on)")


def _pct(x: float | None) -> str:
    return "-" if x is None else f"{x:.1%}"


def _cpu(name: str) -> str:
    """``Intel(R) Xeon(R) Processor`` -> ``Intel Xeon Processor``."""
    return re.sub(r"\s+", " ", re.sub(r"\((R|TM|tm)\)", "", name)).strip()


def speed_cell(speed) -> str:
    """The card's largest-batch ``ticketzoo bench`` record: ratio to dense fp32 and to the best
    dense option, and where it was measured."""
    if not isinstance(speed, list) or not speed:
        return "-"
    run = max(speed, key=lambda r: (r.get("batch_size", 0), r.get("input_size", 0)))
    ms = {k: v["ms"] for k, v in run.get("runs", {}).items()}
    dense = {k: v for k, v in ms.items() if k.startswith("dense")}
    if "sparse" not in ms or "dense-fp32" not in ms:
        return "-"
    best = min(dense, key=dense.get)  # the ratios as `bench` prints them: from the times
    where = (f"{_cpu(run.get('cpu', 'unknown CPU'))}, {run.get('threads', '?')} threads, "
             f"{run.get('input_size', '?')} px, batch {run.get('batch_size', '?')}")
    return (f"{ms['dense-fp32'] / ms['sparse']:.2f}x vs dense-fp32, {dense[best] / ms['sparse']:.2f}x vs {best} "
            f"({where})")


def rows(cards: Path = CARDS) -> list[tuple[str, ...]]:
    from ticketzoo.card import source_summary
    from ticketzoo.cli.console import human_size
    from ticketzoo.folder import read_entry

    out = []
    for folder in sorted(p for p in cards.iterdir() if (p / "README.md").is_file()):
        entry = read_entry(folder)
        card = entry.card
        s = source_summary(card)
        if s is None:
            accuracy, reinit = "-", "-"
        else:
            seeds = f"{s.seeds} seeds, mean" if s.seeds > 1 else "1 seed"
            accuracy = f"{_pct(s.ticket)} / {_pct(s.dense)} ({seeds})"
            if s.reinit is None:
                reinit = "-"
            elif s.seeds > 1:  # a Welch t-test over the seeds
                reinit = f"{_pct(s.reinit)}: {s.vs_reinit or 'not compared'} (t-test)"
            elif (s.vs_reinit or "").endswith(" (untested)"):  # one seed, no paired tests recorded
                reinit = f"{_pct(s.reinit)}: ticket {s.vs_reinit.removesuffix(' (untested)')} (no test)"
            else:  # one seed, paired per-image tests (McNemar and the training-noise bound)
                verdict = s.vs_reinit or "not compared"
                ticket = "ticket " if verdict in ("higher", "lower") else ""
                reinit = f"{_pct(s.reinit)}: {ticket}{verdict} (paired test)"
        out.append((f"`{entry.name}`", card.arch.name, card.source.dataset, f"{card.sparsity:.1%}", accuracy, reinit,
                    human_size(entry.size), speed_cell(card.extra.get("speed"))))
    return out


def render(cards: Path = CARDS) -> str:
    """The markdown table, one line per row, ending in a newline."""
    lines = ["| " + " | ".join(HEADER) + " |", "|" + "---|" * len(HEADER)]
    lines += ["| " + " | ".join(r) + " |" for r in rows(cards)]
    return "\n".join(lines) + "\n"


def embedded(text: str) -> str:
    """What a markdown text holds between the catalog markers."""
    start, end = text.index(START) + len(START), text.index(END)
    return text[start:end].strip("\n") + "\n"


@click.command()
@click.option("--cards", type=click.Path(exists=True, file_okay=False, path_type=Path), default=CARDS,
              show_default=True, help="The catalog folder.")
@click.option("--write", "target", type=click.Path(exists=True, dir_okay=False, path_type=Path),
              help="Replace the table between the catalog markers of this markdown file.")
def main(cards: Path, target: Path | None) -> None:
    """Print the catalog table (or write it into a markdown file)."""
    table = render(cards)
    if target is None:
        click.echo(table, nl=False)
        return
    text = target.read_text(encoding="utf-8")
    start, end = text.index(START) + len(START), text.index(END)
    target.write_text(text[:start] + "\n" + table + text[end:], encoding="utf-8")
    click.echo(f"{target}: catalog table written ({len(table.splitlines()) - 2} tickets)")


if __name__ == "__main__":
    main()
