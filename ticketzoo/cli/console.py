"""The CLI's one terminal: results on stdout, messages and progress on stderr.

Every command prints through :data:`terminal` (``console`` and ``err_console`` are its two
streams, under the names the commands import). The library never makes a console: it logs
and reports progress, and :mod:`ticketzoo.cli.progress` shows both on ``err_console``.
"""

from __future__ import annotations

import json
from typing import Any

from rich.console import Console



class Terminal:
    """Both streams of the command line: ``out`` (results) and ``err`` (messages, progress)."""

    def __init__(self) -> None:
        # markup=False: names, paths, class names and card text are data and may contain
        # brackets; styles are passed explicitly (style=...) where wanted.
        self.out = Console(highlight=False, markup=False, soft_wrap=True)
        self.err = Console(stderr=True, highlight=False, markup=False, soft_wrap=True)


terminal = Terminal()
console, err_console = terminal.out, terminal.err


def print_json(data: Any) -> None:
    """Machine-readable output: plain JSON on stdout, nothing else."""
    print(json.dumps(data, indent=2, sort_keys=True, default=str))


def pushed_json(pushed: Any) -> dict:
    """A push result under the keys every ``--json`` uses (``url`` null when there is none)."""
    return {**pushed.__dict__, "url": pushed.url or None}


def print_columns(header: list[str], rows: list[list[str]]) -> None:
    """Rows as aligned plain-text columns on stdout, cells never cut.

    Unlike a rich table (which fits itself into 80 columns when piped and shortens cells
    with an ellipsis), every cell is printed whole, so ``list | cat`` and a narrow terminal
    show full names and paths; a line wider than the terminal wraps instead."""
    widths = [max(len(str(c)) for c in col) for col in zip(header, *rows)]
    for line in [header, *rows]:
        cells = [str(c).ljust(w) for c, w in zip(line, widths)]
        print("  ".join(cells).rstrip())


def human_size(n: int) -> str:
    for unit in ("B", "KB", "MB", "GB"):
        if n < 1024 or unit == "GB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1024
    return f"{n} B"
