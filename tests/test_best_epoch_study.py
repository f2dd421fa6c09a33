"""scripts/best_epoch_study.py: its probe sees every epoch without changing the training."""

from __future__ import annotations

import dataclasses
import importlib.util
from pathlib import Path

from conftest import tiny_ticket
from test_finetune import qcfg, quick
from ticketzoo.finetune import finetune

ROOT = Path(__file__).resolve().parents[1]


def _script():
    spec = importlib.util.spec_from_file_location("best_epoch_study", ROOT / "scripts" / "best_epoch_study.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_probe_scores_every_epoch_and_leaves_training_unchanged(tmp_path):
    script = _script()
    ticket = tiny_ticket(sparsity=0.5)
    path = tmp_path / "t.safetensors"
    ticket.save(path)
    data = quick(tmp_path / "quick")
    config = dataclasses.replace(qcfg(epochs=4), seeds=2)
    rows = script.study([str(path)], [str(data)], config, tmp_path / "study")
    plain = finetune(ticket, data, config, out_dir=tmp_path / "plain")
    assert [r["seed"] for r in rows] == [0, 1]
    for row, run in zip(rows, plain.runs):
        assert row["epochs"] == 4 and [e["epoch"] for e in row["per_epoch"]] == [1, 2, 3, 4]
        assert row["test_images"] == run.test.num_samples and row["val_images"] > 0
        # the probe draws no random numbers the training sees: the same run, the same result
        assert row["reported_test"] == run.test.accuracy
        assert row["best_epoch"] == run.train.best_epoch
        # what finetune keeps is the val-loss pick, scored by the probe as finetune scored it
        assert row["picks"]["val-loss"]["epoch"] == run.train.best_epoch
        assert abs(row["picks"]["val-loss"]["test_accuracy"] - run.test.accuracy) < 1e-9
        oracle = row["picks"]["oracle (test)"]["test_accuracy"]
        assert all(p["test_accuracy"] <= oracle for p in row["picks"].values())
        assert row["picks"]["last epoch"]["epoch"] == 4


def test_criteria_pick_their_epochs():
    script = _script()

    def rec(epoch, val_loss, val_hit, test_hit):
        return {"epoch": epoch, "val": {"loss": val_loss, "hit": val_hit}, "test": {"loss": [0.0], "hit": test_hit}}

    records = [
        rec(1, [0.1] * 19 + [900.0], [1] * 19 + [0], [1, 1, 1, 0]),  # one outlier image: mean loss 45
        rec(2, [0.5] * 20, [1] * 15 + [0] * 5, [1, 0, 0, 0]),  # mean loss 0.5, fewer hits
        rec(3, [0.3] * 19 + [1.0], [1] * 18 + [0] * 2, [1, 1, 0, 0]),
    ]
    picks = script.picks(records)
    assert picks["val-loss"]["epoch"] == 3  # 0.335 < 0.5 < 45.1
    assert picks["val-acc"]["epoch"] == 1  # 19/20 hits
    assert picks["trimmed-loss"]["epoch"] == 1  # the outlier dropped: 0.1
    assert picks["last epoch"]["epoch"] == 3 and picks["oracle (test)"]["epoch"] == 1
    assert picks["oracle (test)"]["test_accuracy"] == 0.75
