"""The CLI's one terminal: results on stdout, messages and progress on stderr.

Every command prints through :data:`terminal` (``console`` and ``err_console`` are its two
streams, under the names the commands import). The library never makes a console: it logs
and reports progress, and :mod:`ticketzoo.cli.progress` shows both on ``err_console``.
"""

from __future__ import annotations

import json
import re
from typing import Any

from rich.console import Console

# C0 controls but tab and newline, DEL, and C1 (0x9b is a one-byte CSI on some terminals)
_CONTROL = re.compile(r"[\x00-\x08\x0b-\x1f\x7f-\x9f]")
_CONTROL_OR_NEWLINE = re.compile(r"[\x00-\x1f\x7f-\x9f]")


def printable(text: str, *, one_line: bool = False) -> str:
    """``text`` with its control characters written out (ESC as ``\\x1b``), so that card
    text, names and paths cannot clear the screen, move the cursor or (``one_line``) split
    a row when printed."""
    pattern = _CONTROL_OR_NEWLINE if one_line else _CONTROL
    return pattern.sub(lambda m: m.group().encode("unicode_escape").decode("ascii"), text)


class _Console(Console):
    """A rich Console whose every string (messages, table cells) goes through
    :func:`printable` before it is rendered: data printed is never a terminal command."""

    def render_str(self, text: str, **kwargs: Any):
        return super().render_str(printable(text), **kwargs)


class Terminal:
    """Both streams of the command line: ``out`` (results) and ``err`` (messages, progress)."""

    def __init__(self) -> None:
        # markup=False: names, paths, class names and card text are data and may contain
        # brackets; styles are passed explicitly (style=...) where wanted.
        self.out = _Console(highlight=False, markup=False, soft_wrap=True)
        self.err = _Console(stderr=True, highlight=False, markup=False, soft_wrap=True)


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
    lines = [[printable(str(c), one_line=True) for c in line] for line in [header, *rows]]
    widths = [max(len(c) for c in col) for col in zip(*lines)]
    for line in lines:
        cells = [c.ljust(w) for c, w in zip(line, widths)]
        print("  ".join(cells).rstrip())


def human_size(n: int) -> str:
    for unit in ("B", "KB", "MB", "GB"):
        if n < 1024 or unit == "GB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1024
    return f"{n} B"
