"""docs/FORMAT.md is precise enough to write a reader from: its snippet reads a real ticket."""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np

from conftest import tiny_ticket

DOC = Path(__file__).parent.parent / "docs" / "FORMAT.md"


def test_spec_reader_snippet_reads_a_ticket(tmp_path, monkeypatch, capsys):
    ticket = tiny_ticket("conv2", 0.8)
    ticket.save(tmp_path / "ticket.safetensors")
    code = re.search(r"## 7\. Reading a ticket without ticketzoo\n\n```python\n(.*?)```", DOC.read_text(), re.S).group(1)
    monkeypatch.chdir(tmp_path)
    scope: dict = {}
    exec(compile(code, str(DOC), "exec"), scope)
    for name, m in ticket.masks.items():
        got, _ = scope["mask"](name)
        assert np.array_equal(got.toarray(), m.reshape(m.shape[0], -1).numpy())
        for s in ticket.weight_sets:
            assert np.array_equal(scope["weight"](name, s), ticket.state_dict(s)[name].numpy())
    assert "tiny-conv2-s80" in capsys.readouterr().out
