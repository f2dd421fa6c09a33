"""Read commands import no torch (issue 32): ``list``, ``info``, ``cache``, ``gc --dry-run``,
``rm`` and shell completion read folders and JSON, and importing torch would cost them
seconds. Each runs as ``python -X importtime -m ticketzoo ...`` in a subprocess against the
test's registry home (a pushed tiny ticket) and the bundled catalog, and no line of its
import-time report may name ``torch`` or a ``torch.*`` module.

``verify`` is not among them: it decodes every tensor (the payload digest, the masks), builds
the architecture on the meta device and looks for NaN, all with torch.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

import ticketzoo
from conftest import tiny_ticket

ROOT = Path(__file__).resolve().parents[1]
LOCAL = "tiny-conv2-s80"
CATALOG = "fashionmnist-lenet-300-100-s93"  # bundled: its file ships in cards/


def imported_modules(importtime: str) -> list[str]:
    """The modules of ``python -X importtime``'s report (``import time: self | cumulative | name``)."""
    return [line.rsplit("|", 1)[-1].strip() for line in importtime.splitlines() if line.startswith("import time:")]


def torch_modules(modules: list[str]) -> list[str]:
    return [m for m in modules if m == "torch" or m.startswith("torch.")]


def test_the_report_parser_finds_torch():
    report = ("import time: self [us] | cumulative | imported package\n"
              "import time:       120 |        120 |       torch._utils\n"
              "import time:    110435 |    1477306 |     torch\n"
              "import time:       500 |        500 | torchvision_like\n"
              "import time:      1003 |       1003 | ticketzoo.fileformat\n")
    modules = imported_modules(report)
    assert modules == ["imported package", "torch._utils", "torch", "torchvision_like", "ticketzoo.fileformat"]
    assert torch_modules(modules) == ["torch._utils", "torch"]


def _run(args: list[str], env: dict[str, str] | None = None) -> subprocess.CompletedProcess:
    path = os.pathsep.join([str(ROOT), *filter(None, [os.environ.get("PYTHONPATH")])])
    e = {**os.environ, "PYTHONPATH": path, **(env or {})}
    return subprocess.run([sys.executable, "-X", "importtime", "-m", "ticketzoo", *args], capture_output=True,
                          text=True, env=e, cwd=ROOT)


def _complete(words: str) -> tuple[list[str], dict[str, str]]:
    """click's bash protocol: the words typed so far and the index of the one to complete."""
    return [], {"_TICKETZOO_COMPLETE": "bash_complete", "COMP_WORDS": words,
                "COMP_CWORD": str(len(words.split()) - 1)}


@pytest.mark.parametrize(("args", "env", "shows"), [
    (["list"], None, [LOCAL, CATALOG]),
    (["list", "--wide"], None, [LOCAL, CATALOG]),
    (["info", LOCAL], None, [LOCAL, "per-layer sparsity"]),
    (["info", CATALOG, "--json"], None, [CATALOG, '"location": "catalog"']),
    (["cache"], None, [LOCAL, "1 ticket(s)"]),
    (["gc", "--dry-run"], None, ["would remove 0 item(s)"]),
    (["rm", LOCAL], None, [f"removed {LOCAL}"]),
    (*_complete("ticketzoo info fash"), [f"plain,{CATALOG}"]),
    (*_complete("ticketzoo rm tiny"), [f"plain,{LOCAL}"]),
], ids=["list", "list-wide", "info", "info-catalog-json", "cache", "gc-dry-run", "rm", "complete-info",
        "complete-rm"])
def test_read_commands_import_no_torch(args, env, shows):
    ticketzoo.push(tiny_ticket(name=LOCAL))  # into the test's $TICKETZOO_HOME
    p = _run(args, env)
    assert p.returncode == 0, p.stderr[-2000:]
    for text in shows:
        assert text in p.stdout, p.stdout
    modules = imported_modules(p.stderr)
    assert "ticketzoo.registry.api" in modules or "ticketzoo.registry.local" in modules  # the report was read
    assert torch_modules(modules) == [], f"{' '.join(args) or env} imported {torch_modules(modules)[:5]}"
