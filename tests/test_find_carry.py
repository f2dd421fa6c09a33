"""Carrying an IMP run between machines that keep nothing: time budget, carry out, carry in."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from ticketzoo.config.data import DataConfig
from ticketzoo.errors import CheckpointError
from conftest import colour_folder
from ticketzoo.find import FindRecipe, find_tickets, resolve_data
from ticketzoo.find import imp as imp_module
from ticketzoo.find.carry import export_carry
from ticketzoo.ticket import Ticket
from ticketzoo.train import TrainConfig


@pytest.fixture(scope="module")
def folder(tmp_path_factory) -> Path:
    return colour_folder(tmp_path_factory.mktemp("data") / "carry-colours", seed=1)


def _recipe(folder: Path, **kw) -> FindRecipe:
    spec = resolve_data(str(folder))
    cfg = TrainConfig(max_epochs=2, lr=0.03, batch_size=8, milestones=(), patience=None, device="cpu")
    base = dict(arch="conv2", source=spec.source, data_kind=spec.kind, rounds=3, rewind="1ep",
                data=DataConfig(input_size=16, channels=3), arch_kwargs={"width": 0.125}, control="reinit", train=cfg)
    return FindRecipe(**{**base, **kw})


def _stop_before(round_: int):
    """An ``_out_of_time`` that says the budget runs out before ``round_``."""
    def out_of_time(self, started, budget, i):
        return max((r.round for r in self.results), default=0) >= round_ - 1
    return out_of_time


def test_a_carried_run_ends_with_the_same_tickets(folder, tmp_path, monkeypatch):
    monkeypatch.setenv("SOURCE_DATE_EPOCH", "1700000000")  # same `created` in both runs
    recipe = _recipe(folder)
    full = find_tickets(recipe, str(folder), run_dir=tmp_path / "full", threads=1)
    assert not full.stopped

    with monkeypatch.context() as m:  # job 1: rounds 0 and 1, then the budget runs out
        m.setattr(imp_module._IMP, "_out_of_time", _stop_before(2))
        first = find_tickets(recipe, str(folder), run_dir=tmp_path / "job1",
                             threads=1, time_budget=1.0)
    assert first.stopped and max(r.round for r in first.rounds) == 1
    ticket = export_carry(first.run_dir, tmp_path / "carry")
    assert sorted(p.name for p in (tmp_path / "carry").iterdir()) == sorted(["log.json", ticket.name])
    assert ticket.name == "carry-colours-conv2-s20"  # a ticket folder, as everywhere
    assert sorted(p.name for p in ticket.iterdir()) == ["README.md", "ticket.safetensors"]

    # job 2, on a machine that has only the carry folder
    second = find_tickets(recipe, str(folder), run_dir=tmp_path / "job2", threads=1,
                          carry_in=tmp_path / "carry")
    assert not second.stopped
    assert [(r.round, r.line) for r in second.rounds] == [(r.round, r.line) for r in full.rounds]
    for a, b in zip(full.rounds, second.rounds):
        assert (a.ticket, a.sha256, a.test_accuracy) == (b.ticket, b.sha256, b.test_accuracy)
    for r in second.rounds:
        if r.round >= 2:  # trained in job 2: byte-identical to the uninterrupted run's
            assert (second.run_dir / r.file).read_bytes() == (full.run_dir / r.file).read_bytes()
    last = Ticket.load(second.run_dir / second.rounds[-2].file)
    assert [m.round for m in last.card.metrics] == [0, 1, 2, 3]  # dense round 0 carried along


def test_carry_refuses_another_recipe_and_missing_rounds(folder, tmp_path, monkeypatch):
    recipe = _recipe(folder, rounds=2)
    with monkeypatch.context() as m:
        m.setattr(imp_module._IMP, "_out_of_time", _stop_before(1))
        early = find_tickets(recipe, str(folder), run_dir=tmp_path / "early", threads=1,
                             time_budget=1.0)
    assert early.stopped
    with pytest.raises(CheckpointError, match="no pruning round has finished"):
        export_carry(early.run_dir, tmp_path / "c0")

    done = find_tickets(recipe, str(folder), run_dir=tmp_path / "early", threads=1)
    export_carry(done.run_dir, tmp_path / "c1")
    other = _recipe(folder, rounds=2, seed=1)
    with pytest.raises(CheckpointError, match="different recipe"):
        find_tickets(other, str(folder), run_dir=tmp_path / "other", threads=1,
                     carry_in=tmp_path / "c1")

    log = json.loads((tmp_path / "c1" / "log.json").read_text())
    ticket = tmp_path / "c1" / log["rounds"][-2]["ticket"] / "ticket.safetensors"
    data = ticket.read_bytes()
    ticket.write_bytes(data[:-1] + bytes([data[-1] ^ 0xFF]))
    with pytest.raises(CheckpointError, match="sha256"):
        find_tickets(recipe, str(folder), run_dir=tmp_path / "tampered", threads=1,
                     carry_in=tmp_path / "c1")


def test_a_carry_folder_of_bare_files_still_continues(folder, tmp_path, monkeypatch):
    """Carry folders written before tickets were folders: ``<carry>/<name>.safetensors``."""
    monkeypatch.setenv("SOURCE_DATE_EPOCH", "1700000000")
    recipe = _recipe(folder, rounds=2)
    full = find_tickets(recipe, str(folder), run_dir=tmp_path / "full", threads=1)
    with monkeypatch.context() as m:
        m.setattr(imp_module._IMP, "_out_of_time", _stop_before(2))
        first = find_tickets(recipe, str(folder), run_dir=tmp_path / "job1",
                             threads=1, time_budget=1.0)
    carried = export_carry(first.run_dir, tmp_path / "carry")
    bare = tmp_path / "carry" / f"{carried.name}.safetensors"
    (carried / "ticket.safetensors").rename(bare)
    shutil.rmtree(carried)
    log = json.loads((tmp_path / "carry" / "log.json").read_text())
    for row in log["rounds"]:
        if row["ticket"]:
            row["file"] = f"tickets/{row['ticket']}.safetensors"
    (tmp_path / "carry" / "log.json").write_text(json.dumps(log))
    second = find_tickets(recipe, str(folder), run_dir=tmp_path / "job2", threads=1,
                          carry_in=tmp_path / "carry")
    assert (second.run_dir / second.rounds[-1].file).read_bytes() == (full.run_dir / full.rounds[-1].file).read_bytes()


def _set_epoch_times(run_dir: Path, seconds: float, wall: float) -> None:
    """Rewrite round 0's per-epoch times (train.csv) and its recorded wall time (result.json,
    log.json), as a run paused for hours (wall) whose epochs took ``seconds`` each would."""
    csv_path = run_dir / "round_00" / "train.csv"
    lines = csv_path.read_text().splitlines()
    col = lines[0].split(",").index("time_s")
    rows = [line.split(",") for line in lines[1:]]
    for row in rows:
        row[col] = str(seconds)
    csv_path.write_text("\n".join([lines[0], *(",".join(r) for r in rows)]) + "\n")
    for path in (run_dir / "round_00" / "result.json", run_dir / "log.json"):
        data = json.loads(path.read_text())
        for row in data["rounds"] if "rounds" in data else [data]:
            row["time_s"] = wall
        path.write_text(json.dumps(data))


def test_the_time_budget_costs_epochs_not_paused_wall_time(folder, tmp_path, monkeypatch):
    """A round 0 that took 10^6 s of wall time (the job paused for days) with 1200 s epochs
    does not stop the next round under a 1-hour budget (its two lines train 1 epoch each,
    from the rewind point after epoch 1 of 2: 2400 s); 10^4 s epochs do."""
    recipe = _recipe(folder, rounds=1)
    with monkeypatch.context() as m:
        m.setattr(imp_module._IMP, "_out_of_time", _stop_before(1))
        early = find_tickets(recipe, str(folder), run_dir=tmp_path / "run", threads=1, time_budget=1.0)
    assert early.stopped and [r.round for r in early.rounds] == [0]

    _set_epoch_times(early.run_dir, seconds=1e4, wall=1.0)  # 1 epoch x 2 lines x 10^4 s > 1 h
    again = find_tickets(recipe, str(folder), run_dir=tmp_path / "run", threads=1, time_budget=3600)
    assert again.stopped and [r.round for r in again.rounds] == [0]

    _set_epoch_times(early.run_dir, seconds=1200, wall=1e6)  # costed as 2 epochs per line: 4800 s, stopped
    done = find_tickets(recipe, str(folder), run_dir=tmp_path / "run", threads=1, time_budget=3600)
    assert not done.stopped and [(r.round, r.line) for r in done.rounds] == [(0, "imp"), (1, "imp"), (1, "reinit")]


def test_find_carry_out_after_a_stop_before_round_1_is_a_note(folder, tmp_path, monkeypatch, capsys):
    """`find --time-budget --carry-out` that stops before any pruning round finished exits 0
    and says the run folder holds the run; no carry folder is written."""
    from ticketzoo.cli.main import main

    monkeypatch.setattr(imp_module._IMP, "_out_of_time", _stop_before(1))
    args = ["find", "--arch", "conv2", "--width", "0.125", "--data", str(folder), "--input-size", "16",
            "--rounds", "2", "--epochs", "2", "--rewind", "1ep", "--batch-size", "8", "--lr", "0.03",
            "--patience", "0", "--threads", "1",
            "--run-dir", str(tmp_path / "runs"), "--time-budget", "60", "--carry-out", str(tmp_path / "carry")]
    with pytest.raises(SystemExit) as info:
        main(args)
    out = capsys.readouterr()
    assert info.value.code == 0, out.err
    assert "nothing carried to" in out.out and "no pruning round has finished yet" in out.out
    assert "stopped early by --time-budget" in out.out
    assert not (tmp_path / "carry").exists()
