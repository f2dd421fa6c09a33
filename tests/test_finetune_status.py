"""Per-run status in ticketzoo.finetune: ok / diverged / chance, what is saved, resume, --out."""

from __future__ import annotations

import json

import numpy as np
import pytest
from PIL import Image

from conftest import tiny_ticket
from test_finetune import QUICK_ARGS, cli, qcfg, quick
from ticketzoo.errors import CheckpointError
from ticketzoo.finetune import NoTrainedRunError, finetune, summarize
from ticketzoo.finetune import training as runs_mod
from ticketzoo.finetune.report import comparison_notes
from ticketzoo.train.status import judge
from ticketzoo.ticket import Ticket
from ticketzoo.train import Callback, DivergedError, EvalResult, TrainResult

real_train = runs_mod.train


def test_judge_binomial_and_single_class():
    assert judge([[10, 0, 0], [0, 10, 0], [0, 0, 10]], "test").status == "ok"
    v = judge([[4, 3, 3], [3, 4, 3], [3, 3, 4]], "test")  # 40% against a 33% majority share
    assert v.status == "chance" and "12/30" in v.reason and v.p_value > 0.05
    assert v.chance_level == pytest.approx(1 / 3)
    one = judge([[8, 0], [2, 0]], "test")  # 80% correct, but one class for every image
    assert one.status == "chance" and "one class for every test image" in one.reason
    skewed = judge([[18, 0], [1, 1]], "val")  # 95% correct, majority share 90%: not shown
    assert skewed.status == "chance" and "90%" in skewed.reason
    tiny = judge([[1, 0], [0, 1]], "test")
    assert tiny.status == "chance" and "too small to tell" in tiny.reason


def _fake_run(init, seed, status, acc):
    from ticketzoo.finetune import RunResult

    train = TrainResult([], 1, 0.5, False, 1, 1)
    test = EvalResult(0.5, acc, [acc], [[1]], 10)
    return RunResult(init, seed, 0.5, train, test, 0.1, "log", status=status,
                     reason=None if status == "ok" else "it did not")


def test_summary_uses_ok_runs_and_claims_no_difference_on_one_baseline_run():
    runs = [_fake_run("rewind", 0, "ok", 0.8), _fake_run("rewind", 1, "ok", 0.7),
            _fake_run("rewind", 2, "diverged", 0.2), _fake_run("dense", 0, "ok", 0.4),
            _fake_run("dense", 1, "chance", 0.2), _fake_run("dense", 2, "chance", 0.2)]
    rows = summarize(runs)
    assert [(r.init, r.n, r.runs, r.mean) for r in rows] == [("rewind", 2, 3, pytest.approx(0.75)),
                                                             ("dense", 1, 3, pytest.approx(0.4))]
    assert rows[1].failed_text() == "2 chance" and rows[0].failed_text() == "1 diverged"
    notes = comparison_notes(rows, "rewind")
    assert "no difference is claimed" in notes[0] and "p =" not in notes[0]
    assert any(n.startswith("rewind: 1 of 3 run(s) did not train (seed 2 diverged") for n in notes)
    assert any(n.startswith("dense: 2 of 3 run(s) did not train") for n in notes)
    gone = summarize([r for r in runs if r.init == "rewind"] + [_fake_run("dense", 0, "chance", 0.2)])
    assert "no dense run trained" in " ".join(comparison_notes(gone, "rewind"))


def _diverge_on(monkeypatch, *, init_masked: bool, seeds: set[int]):
    """Make the training of the chosen runs diverge; the others train for real."""
    real = runs_mod.train

    def fake(model, masks, *args, **kw):
        if (masks is not None) == init_masked and args[2].seed in seeds:
            raise DivergedError("training diverged in epoch 2: the train loss is nan",
                                epoch=2, lr=0.5, loss=float("nan"))
        return real(model, masks, *args, **kw)

    monkeypatch.setattr(runs_mod, "train", fake)


def test_a_diverged_run_is_recorded_and_the_others_go_on(tmp_path, monkeypatch):
    data = quick(tmp_path / "f")
    _diverge_on(monkeypatch, init_masked=True, seeds={0})
    base = tiny_ticket()
    result = finetune(base, data, qcfg(seeds=2, compare="dense"), out_dir=tmp_path / "o")
    assert [(r.init, r.seed, r.status) for r in result.runs] == [
        ("rewind", 0, "diverged"), ("rewind", 1, "ok"), ("dense", 0, "ok"), ("dense", 1, "ok")]
    assert result.saved is result.runs[1]  # never the diverged one
    card = Ticket.load(result.path).card
    assert card.extra["saved_seed"] == 1 and card.recipe.seed == 1 and "seed 1 is saved" in card.description
    m = json.loads(result.metrics_path.read_text())
    assert m["ticket"]["seed"] == 1 and m["runs"][0]["status"] == "diverged"
    assert m["runs"][0]["diverged"] == {"epoch": 2, "lr": 0.5, "loss": None}
    assert "epoch 2 at lr 0.5" in m["runs"][0]["reason"]
    assert m["summary"][0]["n"] == 1 and m["summary"][0]["runs"] == 2
    assert m["summary"][0]["not_trained"][0]["status"] == "diverged"
    assert any("rewind: 1 of 2 run(s) did not train" in n for n in m["notes"])
    assert "no difference is claimed" in m["notes"][0]
    # resumed, the diverged run is not trained again and the finished ones return at once
    calls = []
    monkeypatch.setattr(runs_mod, "train", lambda *a, **k: calls.append(a[4].seed) or real_train(*a, **k))
    again = finetune(base, data, qcfg(seeds=2, compare="dense"), out_dir=tmp_path / "o", resume=True)
    assert [r.status for r in again.runs] == ["diverged", "ok", "ok", "ok"] and calls == [1, 0, 1]
    assert all(r.train.resumed for r in again.runs[1:])


def test_no_trained_run_writes_metrics_and_exits_1(tmp_path, capsys):
    base = tmp_path / "base.safetensors"
    tiny_ticket().save(base)
    data = quick(tmp_path / "f")
    code, out, err = cli(capsys, base, "--data", data, "--out", tmp_path / "o", "--epochs", 3,
                         *QUICK_ARGS, "--lr", 1e9, "--seeds", 2, "--compare", "dense")
    assert code == 1
    lines = err.strip().splitlines()
    assert lines[-1].startswith("error: no rewind run trained (seed 0 diverged; seed 1 diverged)")
    assert "the other runs go on" in err and "runs" in out and "diverged" in out
    assert not (tmp_path / "o" / "ticket.safetensors").exists()
    m = json.loads((tmp_path / "o" / "metrics.json").read_text())
    assert m["ticket"] is None and m["test_accuracy"] is None
    assert {r["status"] for r in m["runs"]} == {"diverged"}
    assert all(r["diverged"]["lr"] > 0 and r["diverged"]["epoch"] >= 1 for r in m["runs"])
    # the output folder now holds a run without a ticket: a plain re-run is refused
    code, _, err = cli(capsys, base, "--data", data, "--out", tmp_path / "o", *QUICK_ARGS)
    assert code == 1 and "saved no ticket" in err and "--resume" in err and "--force" in err


def test_a_run_at_chance_is_not_saved(tmp_path):
    root = tmp_path / "noise"
    rng = np.random.default_rng(0)
    for cls in ("a", "b"):
        (root / cls).mkdir(parents=True)
        for i in range(30):
            Image.fromarray(rng.integers(0, 256, (16, 16, 3), dtype=np.uint8)).save(root / cls / f"{i}.png")
    with pytest.raises(NoTrainedRunError, match="no rewind run trained .seed 0 chance") as info:
        finetune(tiny_ticket(), root, qcfg(2), out_dir=tmp_path / "o")
    run = info.value.result.runs[0]
    assert run.status == "chance" and run.p_value > 0.05 and run.chance_level == 0.5
    assert not (tmp_path / "o" / "ticket.safetensors").exists()
    assert json.loads((tmp_path / "o" / "metrics.json").read_text())["runs"][0]["status"] == "chance"


def test_killed_compare_resumes_without_redoing_finished_runs(tmp_path, monkeypatch, capsys):
    data, base = quick(tmp_path / "f"), tiny_ticket()
    trained = []

    def crash(model, masks, *args, callbacks=(), **kw):
        class Count(Callback):
            def on_epoch_end(self, state, metrics):
                trained.append((masks is None, metrics["epoch"]))
                if masks is None and metrics["epoch"] == 2 and not kw.get("resume"):
                    raise KeyboardInterrupt

        return real_train(model, masks, *args, callbacks=[*callbacks, Count()], **kw)

    monkeypatch.setattr(runs_mod, "train", crash)
    with pytest.raises(KeyboardInterrupt):
        finetune(base, data, qcfg(4, compare="dense"), out_dir=tmp_path / "o")
    assert trained == [(False, e) for e in range(1, 5)] + [(True, 1), (True, 2)]
    with pytest.raises(CheckpointError, match="unfinished fine-tuning run .2 run checkpoint.s.: "
                                              "dense-seed0, rewind-seed0; no ticket") as info:
        finetune(base, data, qcfg(4, compare="dense"), out_dir=tmp_path / "o")
    # the library names its own arguments; the CLI turns them into --resume / --force (line 118)
    assert "`resume`" in info.value.hint and "`overwrite`" in info.value.hint
    trained.clear()
    result = finetune(base, data, qcfg(4, compare="dense"), out_dir=tmp_path / "o", resume=True)
    assert trained == [(True, 2), (True, 3), (True, 4)]  # rewind was finished; dense redoes epoch 2
    assert [r.status for r in result.runs] == ["ok", "ok"]


def test_cli_unfinished_out_is_refused_in_one_line_and_force_starts_over(tmp_path, capsys):
    base = tmp_path / "base.safetensors"
    tiny_ticket().save(base)
    data = quick(tmp_path / "f")
    (tmp_path / "o" / "checkpoints" / "rewind-seed0").mkdir(parents=True)
    code, out, err = cli(capsys, base, "--data", data, "--out", tmp_path / "o", *QUICK_ARGS)
    assert code == 1 and out == ""
    lines = err.strip().splitlines()
    assert len(lines) == 1 and "unfinished fine-tuning run" in lines[0]
    assert "--resume to continue it, --force to start over" in lines[0]
    code, _, err = cli(capsys, base, "--data", data, "--out", tmp_path / "o", "--epochs", 8,
                       *QUICK_ARGS, "--force")
    assert code == 0, err
    assert (tmp_path / "o" / "ticket.safetensors").exists()


def test_force_leaves_no_old_ticket_beside_a_failed_run(tmp_path):
    data, base = quick(tmp_path / "f"), tiny_ticket()
    assert finetune(base, data, qcfg(), out_dir=tmp_path / "o").path.exists()
    with pytest.raises(NoTrainedRunError):
        finetune(base, data, qcfg(2, lr=1e9), out_dir=tmp_path / "o", overwrite=True)
    assert not (tmp_path / "o" / "ticket.safetensors").exists()
    assert not (tmp_path / "o" / "README.md").exists()
    assert sorted(p.name for p in (tmp_path / "o" / "checkpoints").iterdir()) == ["rewind-seed0", "run.json"]


def _history(*losses, lr=0.1):
    return [{"epoch": i, "lr": lr, "train_loss": loss} for i, loss in enumerate(losses, 1)]


def test_an_exploded_loss_is_diverged():
    from ticketzoo.train.status import exploded, verdict

    blown = exploded(_history(1.69, 40.0, 962.0), 10)  # the 100-image lenet run of the report
    assert blown.status == "diverged" and blown.where == {"epoch": 3, "lr": 0.1, "loss": 962.0}
    assert blown.reason == ("train loss exploded: 962 in epoch 3 is over 10x epoch 1's 1.69 and above "
                            "ln(10) = 2.30, a uniform guess's loss (lr 0.1)")
    assert exploded(_history(1.69, 0.9, 0.2), 10) is None  # learning
    assert exploded(_history(0.05, 0.6), 10) is None  # 12x a tiny first loss, still below ln(10)
    assert exploded(_history(1.0, 9.0), 10) is None  # 9x: not more than 10x
    assert exploded(_history(1.0, 10.5), 10).status == "diverged"
    # blown up within epoch 1: then the yardstick is ln(C), not the first epoch's loss
    assert "over 10x ln(2) = 0.69" in exploded(_history(5e5, 87.0), 2).reason
    assert exploded(_history(5e5, 3.0), 2) is None
    assert exploded(_history(962.0), 10) is None  # one epoch: nothing to compare
    # the verdict: exploded first, then the binomial test
    good = [[10, 0], [0, 10]]
    assert verdict(_history(1.0, 0.5), good, "test", 2).status == "ok"
    assert verdict(_history(1.0, 50.0), good, "test", 2).status == "diverged"
    assert verdict(_history(1.0, 0.9), [[5, 5], [5, 5]], "test", 2).status == "chance"
    assert verdict(_history(1.0, 0.9), None, "test", 2).status == "ok"  # nothing held out


def test_finetune_records_an_exploded_run_as_diverged(tmp_path):
    data = quick(tmp_path / "f")
    with pytest.raises(NoTrainedRunError) as info:  # Adam at lr 10: finite, and blown up
        finetune(tiny_ticket(), data, qcfg(3, lr=10.0), out_dir=tmp_path / "o")
    run = info.value.result.runs[0]
    assert run.status == "diverged" and run.reason.startswith("train loss exploded: ")
    assert run.train is not None and run.diverged["epoch"] == 3 and run.diverged["loss"] > 100
    assert not (tmp_path / "o" / "ticket.safetensors").exists()
    m = json.loads((tmp_path / "o" / "metrics.json").read_text())
    assert m["runs"][0]["status"] == "diverged" and "exploded" in m["runs"][0]["reason"]
