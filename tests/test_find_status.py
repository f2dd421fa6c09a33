"""Every IMP round of ``find`` is judged as a fine-tuning run is: ok / diverged / chance.

A dense round 0 that did not train stops the run before any ticket; a pruned round that did
not train saves no ticket and ends the winning-ticket line; a control that did not train is
recorded and the run goes on. Statuses and reasons reach result.json, log.json and the CLI.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

import ticketzoo.train as train_pkg
from conftest import colour_folder
from ticketzoo.config.data import DataConfig
from ticketzoo.errors import RoundNotTrainedError
from ticketzoo.find import FindRecipe, find_tickets, resolve_data
from ticketzoo.train import DivergedError, TrainConfig

real_train = train_pkg.train


@pytest.fixture(scope="module")
def folder(tmp_path_factory) -> Path:
    return colour_folder(tmp_path_factory.mktemp("data") / "tiny-colours")


def _args(folder: Path, run_dir: Path, *extra: str) -> list[str]:
    return ["find", "--arch", "conv2", "--width", "0.125", "--data", str(folder), "--input-size", "16",
            "--rounds", "2", "--epochs", "3", "--rewind", "1ep", "--batch-size", "8", "--milestones",
            "none", "--patience", "0", "--device", "cpu", "--run-dir", str(run_dir), "-q", *extra]


def _recipe(folder: Path, **kw) -> FindRecipe:
    spec = resolve_data(str(folder))
    cfg = TrainConfig(max_epochs=3, lr=0.03, batch_size=8, milestones=(), patience=None, device="cpu")
    base = dict(arch="conv2", source=spec.source, data_kind=spec.kind, rounds=3, rewind="1ep",
                data=DataConfig(input_size=16, channels=3), arch_kwargs={"width": 0.125}, train=cfg)
    return FindRecipe(**{**base, **kw})


def _tickets(run_dir: Path) -> list[Path]:
    return sorted(run_dir.rglob("tickets/**/*.safetensors"))


@pytest.mark.parametrize("recipe, reason", [
    (["--lr", "1e4"], "loss became NaN/inf in epoch 1 at lr 10000"),
    # Adam at lr 10: finite, but 4.9e7 after three epochs
    (["--optimizer", "adam", "--lr", "10"], "train loss exploded: "),
], ids=["nan", "exploded"])
def test_a_diverging_dense_round_exits_1_and_saves_no_ticket(folder, tmp_path, cli, monkeypatch, recipe, reason):
    code, out, err = cli(*_args(folder, tmp_path / "runs", *recipe))
    assert code == 1 and out == ""
    assert err.startswith("error: round 0 (the dense network) diverged: ") and reason in err
    assert "IMP stopped, no ticket saved" in err and "(lower the learning rate --lr: it was " in err
    run = next((tmp_path / "runs").iterdir())
    assert _tickets(tmp_path / "runs") == [] and not (run / "round_01").exists()
    row = json.loads((run / "round_00" / "result.json").read_text())
    assert row["status"] == "diverged" and reason in row["reason"] and row["ticket"] is None
    assert [(r["round"], r["status"]) for r in json.loads((run / "log.json").read_text())["rounds"]] == \
        [(0, "diverged")]
    assert "diverged" in (run / "log.csv").read_text()
    # run again, the recorded verdict stops it at once: a diverged round is not trained again
    monkeypatch.setattr(train_pkg, "train", lambda *a, **k: pytest.fail("trained again"))
    assert cli(*_args(folder, tmp_path / "runs", *recipe)) == (code, out, err)


def test_the_library_raises_with_fields(folder, tmp_path):
    recipe = _recipe(folder, train=TrainConfig(max_epochs=2, lr=1e4, batch_size=8, milestones=(),
                                               patience=None, device="cpu"))
    with pytest.raises(RoundNotTrainedError) as info:
        find_tickets(recipe, str(folder), run_dir=tmp_path)
    e = info.value
    assert (e.round, e.status) == (0, "diverged") and e.reason.startswith("loss became NaN/inf")
    assert isinstance(e, RuntimeError) and e.run_dir and _tickets(tmp_path) == []


def test_a_healthy_run_saves_its_tickets_with_status_ok(folder, tmp_path, cli):
    code, out, err = cli(*_args(folder, tmp_path / "runs", "--lr", "0.03", "--json"))
    assert code == 0, err
    rows = json.loads(out)["rounds"]
    assert [(r["round"], r["status"], r["reason"]) for r in rows] == [(0, "ok", None), (1, "ok", None),
                                                                      (2, "ok", None)]
    assert all((Path(json.loads(out)["run_dir"]) / r["file"]).is_file() for r in rows[1:])
    assert len(_tickets(tmp_path / "runs")) == 2
    code, out, _ = cli(*_args(folder, tmp_path / "runs", "--lr", "0.03"))  # resumed: the table
    assert code == 0 and "status" in out and out.count(" ok ") == 3


def _diverge(monkeypatch, when):
    """Make the trainings for which ``when(masks, checkpoint_dir)`` holds diverge in epoch 2."""
    def fake(model, masks, *args, checkpoint_dir=None, **kw):
        if when(masks, Path(checkpoint_dir)):
            raise DivergedError("training diverged in epoch 2: the train loss is nan", epoch=2, lr=0.03,
                                loss=float("nan"))
        return real_train(model, masks, *args, checkpoint_dir=checkpoint_dir, **kw)

    monkeypatch.setattr(train_pkg, "train", fake)


def test_a_pruned_round_that_did_not_train_ends_the_run(folder, tmp_path, monkeypatch, caplog):
    _diverge(monkeypatch, lambda masks, where: where.name == "round_02")
    result = find_tickets(_recipe(folder, rounds=3), str(folder), run_dir=tmp_path)
    assert [(r.round, r.status) for r in result.rounds] == [(0, "ok"), (1, "ok"), (2, "diverged")]
    assert result.failed == result.rounds[2] and result.rounds[2].ticket is None
    assert [p.parent.name for p in result.tickets] == ["tiny-colours-conv2-s20"]
    assert _tickets(tmp_path) == result.tickets and not (result.run_dir / "round_03").exists()
    assert "round 2 did not train (diverged: loss became NaN/inf in epoch 2 at lr 0.03): no ticket " \
           "saved; IMP ends here, the tickets up to round 1 stay" in caplog.text
    log = json.loads((result.run_dir / "log.json").read_text())["rounds"]
    assert log[2]["status"] == "diverged" and "epoch 2" in log[2]["reason"]
    again = find_tickets(_recipe(folder, rounds=3), str(folder), run_dir=tmp_path)  # resumed
    assert again.failed == result.failed and again.tickets == result.tickets


def test_round_1_that_did_not_train_leaves_no_ticket_and_raises(folder, tmp_path, monkeypatch):
    _diverge(monkeypatch, lambda masks, where: where.name == "round_01")
    with pytest.raises(RoundNotTrainedError, match=r"^round 1 \(the first ticket, 20% of the weights "
                                                   r"pruned\) diverged: loss became NaN/inf") as info:
        find_tickets(_recipe(folder, rounds=3), str(folder), run_dir=tmp_path)
    assert info.value.round == 1 and _tickets(tmp_path) == []


def test_a_control_that_did_not_train_is_recorded_and_the_run_goes_on(folder, tmp_path, monkeypatch, cli):
    _diverge(monkeypatch, lambda masks, where: where.name == "reinit" and where.parent.name == "round_01")
    code, out, err = cli(*_args(folder, tmp_path / "runs", "--lr", "0.03", "--control", "reinit"))
    assert code == 0, err
    assert "round 1 (reinit) did not train, no ticket: diverged: loss became NaN/inf in epoch 2 at lr " \
           "0.03; the run went on" in " ".join(out.split())
    assert "no ticket saved for this baseline; the run goes on" in err
    names = [p.parent.name for p in _tickets(tmp_path / "runs")]
    assert names == ["tiny-colours-conv2-s20", "tiny-colours-conv2-s36", "tiny-colours-conv2-s36-reinit"]
