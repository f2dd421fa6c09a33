"""The README and docs/*.md cannot drift from the code: their Python blocks run, every
``ticketzoo COMMAND --flag`` they show exists, every script they name exists, and the README's
catalog table is what scripts/catalog_table.py prints from the cards.

A Python block that cannot run offline and quickly (the Hub, a long training, a fragment) is
marked in the markdown, on the line just above it, with ``<!-- not run: REASON -->``; the
test asserts the reason is there and says something. Blocks run in a temporary folder with
their own registry home (``isolated_home``) and a real ticket file, ``ticket.safetensors``
(the bundled ``fashionmnist-lenet-300-100-s79``), that the docs' examples open by that name.
"""

from __future__ import annotations

import importlib.util
import re
import shlex
import shutil
from dataclasses import dataclass
from pathlib import Path

import click
import pytest

ROOT = Path(__file__).resolve().parents[1]
README = ROOT / "README.md"
DOCS = sorted((ROOT / "docs").glob("*.md"))
PAGES = [README, *DOCS]
EXAMPLE_TICKET = ROOT / "cards" / "fashionmnist-lenet-300-100-s79" / "ticket.safetensors"

FENCE = re.compile(r"^(?P<indent>[ \t]*)```(?P<lang>[\w-]*)[ \t]*\n(?P<body>.*?)^(?P=indent)```[ \t]*$", re.M | re.S)
NOT_RUN = re.compile(r"<!--\s*not run:\s*(?P<reason>.*?)\s*-->\s*$")


@dataclass(frozen=True)
class Block:
    page: Path
    line: int  # 1-based line of the opening fence
    lang: str
    body: str
    skip: str | None  # the reason in a "not run" comment just above, if any

    @property
    def where(self) -> str:
        return f"{self.page.relative_to(ROOT)}:{self.line}"


def blocks(page: Path) -> list[Block]:
    text = page.read_text(encoding="utf-8")
    found = []
    for m in FENCE.finditer(text):
        line = text.count("\n", 0, m.start()) + 1
        above = text[: m.start()].rstrip("\n").rsplit("\n", 1)[-1]
        skip = NOT_RUN.search(above)
        body = "\n".join(row[len(m["indent"]):] if row.startswith(m["indent"]) else row
                         for row in m["body"].split("\n"))
        found.append(Block(page, line, m["lang"], body, skip["reason"] if skip else None))
    return found


ALL = [b for page in PAGES for b in blocks(page)]
PYTHON = [b for b in ALL if b.lang == "python"]


def test_the_pages_have_code_blocks():
    assert len(PYTHON) >= 5 and sum(b.page == README for b in PYTHON) >= 2
    assert all(b.lang in {"", "bash", "python", "text", "yaml"} for b in ALL), {b.lang for b in ALL}


@pytest.mark.parametrize("block", PYTHON, ids=[b.where for b in PYTHON])
def test_python_block_runs(block, tmp_path, monkeypatch, isolated_home):
    if block.skip is not None:
        assert len(block.skip) >= 10, f"{block.where}: a 'not run' comment must say why"
        pytest.skip(f"{block.where}: not run: {block.skip}")
    pytest.importorskip("torchvision")
    shutil.copy(EXAMPLE_TICKET, tmp_path / "ticket.safetensors")
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("SOURCE_DATE_EPOCH", "1700000000")
    exec(compile(block.body, block.where, "exec"), {"__name__": "readme"})


def test_not_run_comments_sit_above_python_blocks():
    """A 'not run' comment anywhere else (a typo'd fence, a moved block) would skip nothing."""
    for page in PAGES:
        text = page.read_text(encoding="utf-8")
        marked = {b.line - 1 for b in blocks(page) if b.skip is not None and b.lang == "python"}
        for i, row in enumerate(text.split("\n"), start=1):
            if "not run:" in row and row.lstrip().startswith("<!--"):
                assert i in marked, f"{page.relative_to(ROOT)}:{i}: 'not run' comment not just above a python block"


# -- commands and flags ------------------------------------------------------------------------------

def _cli():
    from ticketzoo.cli.main import cli

    return cli, click.Context(cli)


def command_lines() -> list[tuple[str, str]]:
    """``(where, command line)`` for every shell command the pages show: each line of a bash
    block, ``$ ``-prompted lines of other blocks, lines of untagged blocks that start with
    ``ticketzoo``, and inline code spans that start with ``ticketzoo ``. Backslash
    continuations are joined."""
    out = []
    for b in ALL:
        if b.lang not in {"bash", "text", ""}:
            continue
        rows = b.body.replace("\\\n", " ").split("\n")
        for i, row in enumerate(rows):
            row = row.strip()
            if b.lang == "bash":
                pass
            elif row.startswith("$ "):
                row = row[2:]
            elif b.lang == "" and row.startswith("ticketzoo "):
                pass
            else:
                continue
            if row:
                out.append((f"{b.where}+{i + 1}", row))
    for page in PAGES:
        prose = FENCE.sub("", page.read_text(encoding="utf-8"))
        for m in re.finditer(r"`(ticketzoo [^`\n]+)`", prose):
            out.append((f"{page.relative_to(ROOT)} (inline)", m.group(1)))
    return out


def invocations(line: str) -> list[tuple[str, list[str]]]:
    """``(subcommand, [--flags])`` of every ``ticketzoo`` call on a shell line (also
    ``python -m ticketzoo``, ``torchrun ... -m ticketzoo``, ``.venv/bin/ticketzoo``). A ``|``
    between two words (``PATH|NAME``, ``rewind|trained``) is a synopsis's "or", not a pipe."""
    line = re.sub(r"(?<=[^\s|])\|(?=[^\s|])", "/", line)
    lexer = shlex.shlex(line, posix=True, punctuation_chars=True)
    lexer.whitespace_split = True
    lexer.commenters = "#"
    try:
        tokens = list(lexer)
    except ValueError:  # an unbalanced quote in prose: plain words
        tokens = line.split("#", 1)[0].split()
    segments, current = [], []
    for tok in tokens:
        if tok and set(tok) <= set("|&;()<>"):
            segments.append(current)
            current = []
        else:
            current.append(tok)
    segments.append(current)
    found = []
    for seg in segments:
        for i, tok in enumerate(seg):
            if tok == "ticketzoo" or tok.endswith("/ticketzoo"):
                rest = seg[i + 1:]
                if not rest:
                    found.append(("", []))
                    break
                sub = rest[0]
                args = rest[1:] if not sub.startswith("-") else rest
                sub = "" if sub.startswith("-") else sub
                flags = [m.group(1) for a in args if (m := re.match(r"^[\[(]?(--[A-Za-z][\w-]*)", a))]
                found.append((sub, flags))
                break
    return found


def test_command_parser():
    assert invocations("ticketzoo rm NAME[@REV]; ticketzoo gc --dry-run  # tidy") == [("rm", []), ("gc", ["--dry-run"])]
    assert invocations("torchrun --nnodes 2 --rdzv-id x -m ticketzoo find --device cpu ...") == [("find", ["--device"])]
    assert invocations('HF_HUB_OFFLINE=1 ticketzoo pull hf://x/y@v1 | cat') == [("pull", [])]
    assert invocations("ticketzoo bench REF [--input-size N] [--weights rewind|trained]") == [
        ("bench", ["--input-size", "--weights"])]
    assert invocations('eval "$(_TICKETZOO_COMPLETE=bash_source ticketzoo)"') == []
    assert invocations("ticketzoo --version") == [("", ["--version"])]
    assert invocations("ticketzoo push PATH|NAME --registry hf://ORG [--tag TAG]") == [("push", ["--registry", "--tag"])]


def test_every_command_and_flag_shown_exists():
    cli, ctx = _cli()
    checked, problems = 0, []
    for where, line in command_lines():
        for sub, flags in invocations(line):
            if sub in {"", "COMMAND"}:  # the group itself, or "ticketzoo COMMAND --help"
                params = cli.params
            else:
                cmd = cli.get_command(ctx, sub)
                if cmd is None:
                    problems.append(f"{where}: no command 'ticketzoo {sub}': {line}")
                    continue
                params = cmd.params
            known = {o for p in params for o in (*p.opts, *p.secondary_opts)} | {"--help"}
            problems += [f"{where}: 'ticketzoo {sub}' has no option {f}: {line}" for f in flags if f not in known]
            checked += 1
    assert not problems, "\n".join(problems)
    assert checked >= 60  # the pages show many commands; a parser that finds none would pass


def test_scripts_named_exist():
    """``bash scripts/X.sh`` and ``python scripts/X.py`` in the pages name files that exist."""
    missing = []
    for page in PAGES:
        for m in re.finditer(r"\b(?:bash|python3?)\s+(scripts/[\w./-]+\.(?:sh|py))", page.read_text(encoding="utf-8")):
            if not (ROOT / m.group(1)).is_file():
                missing.append(f"{page.relative_to(ROOT)}: {m.group(1)}")
    assert not missing, missing


def test_readme_keeps_the_two_commands():
    """CI runs the README's test command; a fresh machine runs the demo."""
    bash = "\n".join(b.body for b in blocks(README) if b.lang == "bash")
    assert re.search(r"^bash scripts/demo\.sh\b", bash, re.M)
    assert re.search(r"^bash scripts/test\.sh\b", bash, re.M)
    assert "exec bash scripts/test.sh" in (ROOT / ".ci" / "run").read_text()


def anchors(page: Path) -> set[str]:
    """GitHub's heading anchors of a markdown page (code blocks left out)."""
    text = FENCE.sub("", page.read_text(encoding="utf-8"))
    return {re.sub(r"[^\w\- ]", "", h.strip().lower()).replace(" ", "-")
            for h in re.findall(r"^#{1,6} (.+)$", text, re.M)}


def test_docs_links_resolve():
    """Every relative markdown link (README and docs) names a file that exists, and a heading
    of it where it has an anchor."""
    broken = []
    for page in PAGES:
        for m in re.finditer(r"\]\(([^)\s#]*)(?:#([^)\s]*))?\)", page.read_text(encoding="utf-8")):
            target, anchor = m.group(1), m.group(2)
            if "://" in target or target.startswith("mailto:"):
                continue
            path = page.parent / target if target else page
            if not path.exists():
                broken.append(f"{page.relative_to(ROOT)}: {target}")
            elif anchor and path.suffix == ".md" and anchor not in anchors(path):
                broken.append(f"{page.relative_to(ROOT)}: {target}#{anchor}")
    assert not broken, broken


def test_readme_links_every_doc():
    text = README.read_text(encoding="utf-8")
    assert not [d.name for d in DOCS if f"(docs/{d.name})" not in text]


# -- the catalog table --------------------------------------------------------------------------------

def _catalog_script():
    spec = importlib.util.spec_from_file_location("catalog_table", ROOT / "scripts" / "catalog_table.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_readme_catalog_table_is_generated_from_the_cards():
    script = _catalog_script()
    table = script.render()
    assert script.embedded(README.read_text(encoding="utf-8")) == table, (
        "README's catalog table differs from the cards: run python scripts/catalog_table.py --write README.md")
    names = sorted(p.name for p in (ROOT / "cards").iterdir() if (p / "README.md").is_file())
    rows = table.splitlines()[2:]
    assert [r.split("`")[1] for r in rows] == names  # one row per card
    s97 = next(r for r in rows if "`cifar10-resnet50-s97`" in r)
    assert "82.1% / 81.5% (1 seed)" in s97 and "no difference shown (paired test)" in s97 and "7.7 MB" in s97
    assert "2.58x vs dense-fp32" in s97 and "AMD EPYC" in s97  # the revision-2 card's own measurement
    assert all(r.rstrip(" |").endswith("-") for r in rows if "lenet" in r)  # no speed recorded: "-"


def test_catalog_script_writes_between_the_markers(tmp_path):
    script = _catalog_script()
    page = tmp_path / "page.md"
    page.write_text(f"# x\n\n{script.START}\nold\n{script.END}\n\nafter\n")
    from click.testing import CliRunner

    result = CliRunner().invoke(script.main, ["--write", str(page)])
    assert result.exit_code == 0, result.output
    text = page.read_text()
    assert script.embedded(text) == script.render() and text.endswith(f"{script.END}\n\nafter\n") and "old" not in text
