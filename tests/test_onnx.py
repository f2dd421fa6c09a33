"""``ticketzoo export NAME --out model.onnx`` and :mod:`ticketzoo.export_onnx` (issue 32): the
model ONNX Runtime runs gives torch's logits at any batch size, its pruned weights are zeros
in the file, its metadata says how to feed it, and the export refuses what the other formats
refuse, with a one-line error when the onnx extra is missing."""

from __future__ import annotations

import json
import sys

import numpy as np
import pytest
import torch

from conftest import tiny_ticket
from ticketzoo.errors import ConfigError, MissingDependencyError
from ticketzoo.export_onnx import INPUT, OUTPUT, onnx_model, to_onnx
from ticketzoo.registry.local import LocalRegistry
from ticketzoo.ticket import Ticket

MISSING = "ONNX export needs the onnx extra: pip install 'ticketzoo[onnx]'"


def resnet18_ticket() -> Ticket:
    torchvision = pytest.importorskip("torchvision")
    import ticketzoo

    model = torchvision.models.resnet18(num_classes=10)
    with torch.no_grad():  # BN statistics other than 0/1, so a mishandled BN shows in the logits
        for m in model.modules():
            if isinstance(m, torch.nn.BatchNorm2d):
                m.running_mean.uniform_(-0.5, 0.5)
                m.running_var.uniform_(0.5, 2.0)
    return Ticket.from_model(model, ticketzoo.prune(model, 0.9), name="onnx-r18", arch="resnet18", input_size=32)


def check_against_torch(ticket: Ticket, weights: str) -> None:
    ort = pytest.importorskip("onnxruntime")
    data = to_onnx(ticket, weights)
    session = ort.InferenceSession(data, providers=["CPUExecutionProvider"])
    assert [i.name for i in session.get_inputs()] == [INPUT] and [o.name for o in session.get_outputs()] == [OUTPUT]
    model = ticket.to_model(weights).eval()
    arch = ticket.card.arch
    g = torch.Generator().manual_seed(0)
    for batch in (1, 3):  # traced at batch 2: both run, so the batch dimension is dynamic
        x = torch.randn(batch, arch.in_channels, arch.input_size, arch.input_size, generator=g)
        with torch.no_grad():
            want = model(x).numpy()
        got = session.run(None, {INPUT: x.numpy()})[0]
        assert got.shape == (batch, arch.num_classes)
        # 1e-4 relative to the logits' scale: tiny_ticket's "trained" set is noise of std 1,
        # so its logits reach the thousands and float32 rounding scales with them.
        assert np.abs(got - want).max() <= 1e-4 * max(1.0, float(np.abs(want).max())), (batch, weights)


@pytest.mark.parametrize("arch", ["conv2", "lenet_300_100"])
def test_onnx_runtime_gives_torch_logits_at_any_batch(arch):
    ticket = tiny_ticket(arch, name=f"onnx-{arch.replace('_', '-')}", input_size=16)
    for weights in ("rewind", "trained"):
        check_against_torch(ticket, weights)


def test_a_torchvision_resnet18_ticket_runs_in_onnx_runtime():
    check_against_torch(resnet18_ticket(), "rewind")


def test_pruned_weights_are_zeros_in_the_file_and_the_metadata_says_how_to_feed_it():
    onnx = pytest.importorskip("onnx")
    from onnx import numpy_helper

    ticket = tiny_ticket()
    model = onnx.load_from_string(to_onnx(ticket, opset=18, metadata={"ticketzoo.revision": "abc123"}))
    onnx.checker.check_model(model)
    assert next(o.version for o in model.opset_import if o.domain in ("", "ai.onnx")) == 18
    stored = {t.name: numpy_helper.to_array(t) for t in model.graph.initializer}
    state = ticket.state_dict("trained")  # the ready weights by default
    for name, mask in ticket.masks.items():  # the exporter keeps the state dict's names
        assert np.array_equal(stored[name], state[name].numpy()), name
        assert (stored[name][~mask.numpy()] == 0).all() and (stored[name][mask.numpy()] != 0).all(), name
    dims = model.graph.input[0].type.tensor_type.shape.dim
    assert dims[0].dim_param and [d.dim_value for d in dims[1:]] == [3, 16, 16]
    meta = {p.key: p.value for p in model.metadata_props}
    assert meta["ticketzoo.ticket"] == "tiny-conv2-s80" and meta["ticketzoo.weights"] == "trained"
    assert meta["ticketzoo.architecture"] == "conv2" and meta["ticketzoo.revision"] == "abc123"
    assert float(meta["ticketzoo.sparsity"]) == ticket.sparsity
    assert json.loads(meta["ticketzoo.classes"]) == ["c0", "c1", "c2", "c3"]
    pre = json.loads(meta["ticketzoo.preprocess"])
    assert (pre["mean"], pre["std"], pre["input_size"], pre["channels"]) == ([0.5] * 3, [0.25] * 3, 16, 3)
    assert pre["resize"] == ticket.preprocess.resize and pre["layout"] == "NCHW"
    rewind = {p.key: p.value for p in onnx.load_from_string(to_onnx(ticket, "rewind")).metadata_props}
    assert rewind["ticketzoo.weights"] == "rewind"


def test_an_opset_torch_cannot_write_is_refused():
    pytest.importorskip("onnxscript")
    for opset in (17, 5, "18", 10_000):
        with pytest.raises(ConfigError, match="opset") as e:
            onnx_model(tiny_ticket(), opset=opset)
        assert e.value.field == "opset"


@pytest.fixture
def stored():
    return LocalRegistry().publish(tiny_ticket(name="kept", sparsity=0.75))


@pytest.fixture
def out_dir(tmp_path):
    """An empty folder to export into (tmp_path holds the registry home)."""
    (tmp_path / "out").mkdir()
    return tmp_path / "out"


def test_cli_export_onnx_json_and_text(cli, stored, out_dir):
    onnx = pytest.importorskip("onnx")
    import hashlib

    out = out_dir / "model.onnx"
    code, text, err = cli("export", "kept", "--out", out, "--json")
    result = json.loads(text)
    assert code == 0 and err == "" and result["format"] == "onnx" and result["weights"] == "trained"
    assert result["path"] == str(out) and result["sha256"] == hashlib.sha256(out.read_bytes()).hexdigest()
    assert result["revision"] == stored.revision and result["size"] == out.stat().st_size
    model = onnx.load(str(out))
    assert result["opset"] == next(o.version for o in model.opset_import if o.domain in ("", "ai.onnx"))
    meta = {p.key: p.value for p in model.metadata_props}
    assert meta["ticketzoo.ticket"] == "kept" and meta["ticketzoo.revision"] == stored.revision
    code, text, err = cli("export", "kept", "--out", out_dir / "k.onnx", "--weights", "rewind", "--opset", 19)
    assert code == 0 and err == "" and "rewind weights" in text and "opset 19" in text
    assert sorted(p.name for p in out_dir.iterdir()) == ["k.onnx", "model.onnx"]  # no temporary file left


def test_cli_export_onnx_refusals(cli, stored, out_dir):
    out = out_dir / "model.onnx"
    out.write_bytes(b"mine")
    code, _, err = cli("export", "kept", "--out", out)
    assert code == 2 and "--force" in err and out.read_bytes() == b"mine"
    code, _, err = cli("export", "kept", "--out", stored.folder / "model.onnx", "--force")
    assert code == 1 and "inside the ticket registry" in err and not (stored.folder / "model.onnx").exists()
    code, _, err = cli("export", "kept", "--out", out_dir / "nowhere" / "model.onnx")
    assert code == 2 and "does not exist" in err and not (out_dir / "nowhere").exists()
    code, _, err = cli("export", "kept", "--out", out_dir / "dense.pt", "--opset", 18)
    assert code == 2 and "--opset" in err
    if _importable("onnxscript"):
        code, _, err = cli("export", "kept", "--out", out_dir / "old.onnx", "--opset", 11)
        assert code == 2 and err.startswith("error: --opset must be an integer from 18 to")
    assert [p.name for p in out_dir.iterdir()] == ["model.onnx"]


def _importable(module: str) -> bool:
    import importlib.util

    return importlib.util.find_spec(module) is not None


@pytest.mark.parametrize("module", ["onnx", "onnxscript"])
def test_without_the_onnx_extra_export_says_how_to_get_it(cli, stored, out_dir, monkeypatch, module):
    monkeypatch.setitem(sys.modules, module, None)  # `import onnx` now fails as if it were not installed
    code, out, err = cli("export", "kept", "--out", out_dir / "model.onnx", "--json")
    assert code == 1 and out == "" and err.startswith(f"error: {MISSING}") and module in err
    assert list(out_dir.iterdir()) == []  # nothing written, not even a temporary file
    with pytest.raises(MissingDependencyError, match=r"pip install 'ticketzoo\[onnx\]'"):
        to_onnx(tiny_ticket(), path=out_dir / "lib.onnx")
    assert list(out_dir.iterdir()) == []
    assert cli("export", "kept", "--out", out_dir / "dense.safetensors")[0] == 0  # the other formats need none
