"""The CLI's consoles: results on stdout, messages and progress on stderr."""

from __future__ import annotations

import json
from typing import Any

from rich.console import Console

# markup=False: names, paths, class names and card text are data and may contain brackets;
# styles are passed explicitly (style=...) where wanted.
console = Console(highlight=False, markup=False, soft_wrap=True)
err_console = Console(stderr=True, highlight=False, markup=False, soft_wrap=True)


def print_json(data: Any) -> None:
    """Machine-readable output: plain JSON on stdout, nothing else."""
    print(json.dumps(data, indent=2, sort_keys=True, default=str))


def human_size(n: int) -> str:
    for unit in ("B", "KB", "MB", "GB"):
        if n < 1024 or unit == "GB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1024
    return f"{n} B"
