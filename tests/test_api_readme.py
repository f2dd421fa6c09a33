"""The README's "## Python" examples run as written (prune -> ticket -> push -> pull -> keep_masks
training step -> save; torch.nn.utils.prune both ways), in a temporary folder with its own
registry home."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

README = Path(__file__).resolve().parents[1] / "README.md"


def python_examples() -> list[str]:
    text = README.read_text(encoding="utf-8")
    start = text.index("\n## Python\n")
    end = text.find("\n## ", start + 1)
    blocks = re.findall(r"```python\n(.*?)```", text[start : end if end >= 0 else None], re.S)
    assert len(blocks) == 2, "the Python section holds two python code blocks: the tour and torch's pruning"
    return blocks


def python_example() -> str:
    return python_examples()[0]


def test_readme_python_example_runs(tmp_path, monkeypatch, isolated_home):
    pytest.importorskip("torchvision")
    code = python_example()
    assert len([line for line in code.splitlines() if line.strip()]) <= 16  # "about 10 lines"
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("SOURCE_DATE_EPOCH", "1700000000")
    exec(compile(code, str(README) + ":python", "exec"), {"__name__": "readme"})

    import ticketzoo

    saved = ticketzoo.load(str(tmp_path / "ft.safetensors"))
    assert saved.card.arch.num_classes == 3 and saved.sparsity > 0.85  # the body kept its 90% mask
    assert [r.name for r in ticketzoo.list_tickets(arch="resnet18")] == ["my-resnet18-s90"]  # pulled, local
    assert (tmp_path / "zoo" / "tickets").is_dir() or any((tmp_path / "zoo").iterdir())


def test_readme_torch_prune_example_runs(tmp_path, monkeypatch, isolated_home):
    pytest.importorskip("torchvision")
    code = python_examples()[1]
    assert len([line for line in code.splitlines() if line.strip()]) <= 6
    monkeypatch.chdir(tmp_path)
    scope = {"__name__": "readme"}
    exec(compile(code, str(README) + ":python-torch-prune", "exec"), scope)
    model, ticket = scope["model"], scope["ticket"]
    assert abs(ticket.sparsity - 0.9) < 1e-3 and len(ticket.masks) == 21
    for name, mask in ticket.masks.items():  # torch's pruning again, with the ticket's masks
        module = model.get_submodule(name.rsplit(".", 1)[0])
        assert module.weight_mask.bool().equal(mask) and (module.weight[~mask] == 0).all()
