"""The sparse training kernels inside training (``TrainConfig.runtime``, ``--runtime``): the
same run as the dense kernels within float tolerance, recorded per run, not hashed (issue 29)."""

from __future__ import annotations

import json

import pytest
import torch

from conftest import tiny_ticket
from test_sparse_training import train_compiled  # noqa: F401 - fixture
from sparse_build import sparse_cache  # noqa: F401 - fixture
from ticketzoo.config.data import DataConfig
from ticketzoo.config.finetune import FinetuneConfig
from ticketzoo.train import TrainConfig


def _finetune(tmp_path, runtime, folder):
    from ticketzoo.finetune import finetune

    train = TrainConfig(max_epochs=8, lr=0.01, optimizer="adam", batch_size=8, device="cpu", milestones=(),
                        patience=None, runtime=runtime)
    ticket = tiny_ticket(sparsity=0.85, name="tiny-s85", width=0.5)  # its convs under 20% density: eligible
    out = tmp_path / runtime
    result = finetune(ticket, folder, FinetuneConfig(train=train, data=DataConfig(split=(0.5, 0.1, 0.4))),
                      out_dir=out)
    return result, json.loads((out / "metrics.json").read_text())


def test_a_finetune_trains_the_same_run_on_sparse_and_dense_kernels(train_compiled, tmp_path):
    from test_finetune import quick

    folder = quick(tmp_path / "data")
    sparse, ms = _finetune(tmp_path, "sparse", folder)
    dense, md = _finetune(tmp_path, "dense", folder)
    ks, kd = ms["runs"][0]["kernels"], md["runs"][0]["kernels"]
    assert ks["runtime"] == "sparse" and ks["sparse"] >= 1 and ks["reason"] is None
    assert kd == {"runtime": "dense", "layers": kd["layers"], "sparse": 0, "reason": "runtime dense"}
    # the same run: losses and weights equal within float tolerance (not bitwise: sums in another order)
    for a, b in zip(ms["runs"][0]["epochs"], md["runs"][0]["epochs"]):
        assert a["train_loss"] == pytest.approx(b["train_loss"], rel=1e-4, abs=1e-5)
    ws, wd = sparse.ticket.state_dict("trained"), dense.ticket.state_dict("trained")
    assert max(float((ws[k] - wd[k]).abs().max()) for k in ws) < 1e-3
    assert sparse.ticket.masks.keys() == dense.ticket.masks.keys()
    # a runtime choice: the same config hash, the same run folder and resume fingerprint
    assert TrainConfig(runtime="sparse").hash() == TrainConfig(runtime="dense").hash() == TrainConfig().hash()


def test_the_model_leaves_training_with_its_own_forwards(train_compiled):
    from ticketzoo.train import train

    ticket = tiny_ticket(sparsity=0.95, name="tiny-s95", width=0.5)
    model = ticket.to_model("rewind")
    x, y = torch.randn(16, 3, 16, 16), torch.randint(0, 4, (16,))
    loader = [(x[:8], y[:8]), (x[8:], y[8:])]
    config = TrainConfig(max_epochs=1, batch_size=8, device="cpu", milestones=(), patience=None, runtime="sparse")
    result = train(model, ticket.masks, loader, None, config)
    assert result.kernels["sparse"] >= 1
    assert all("forward" not in m.__dict__ for m in model.modules())  # restored


def test_runtime_is_an_option_of_every_training_command():
    from click.testing import CliRunner

    from ticketzoo.cli.main import cli

    for command in ("find", "finetune", "compare"):
        out = CliRunner().invoke(cli, [command, "--help"]).output
        assert "--runtime [auto|dense|sparse]" in out, command


def test_bench_train_times_a_training_step_of_every_runtime(train_compiled, tmp_path):
    from test_cli import run

    path = tmp_path / "t.safetensors"
    tiny_ticket(sparsity=0.9, name="tiny-s90", width=0.5).save(path)
    p = run("bench", str(path), "--train", "--batch-size", "4", "--repeat", "1", "--json", check=0)
    r = json.loads(p.stdout)
    assert set(r["runs"]) == {"dense-fp32", "dense-best", "sparse", "auto"}
    assert all(v["ms"] > 0 for v in r["runs"].values()) and r["layers_total"] >= 2 and r["cpu"]
    assert r["speedup_vs_best_dense"] == pytest.approx(
        min(r["runs"]["dense-fp32"]["ms"], r["runs"]["dense-best"]["ms"]) / r["runs"]["auto"]["ms"], rel=0.01)
    text = run("bench", str(path), "--train", "--batch-size", "4", "--repeat", "1", check=0).stdout
    assert "one training step" in text and "vs best dense" in text
